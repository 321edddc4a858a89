//! Windows: DXGI Desktop Duplication. `AcquireNextFrame` blocks until the desktop changes, so
//! a static screen costs nothing, and it says where: the dirty rectangles become the
//! encoder's damage and the move rectangles (a dragged window, a scroll the compositor did)
//! its move hints. Only the dirty rows are copied out of the GPU's staging texture. Where
//! duplication is not available (older systems, some RDP sessions, Wine) the agent falls back
//! to GDI (`gdi.rs`).

use super::{CursorState, ScreenSource};
use protocol::screen::{FrameChanges, FrameView, MoveHint, Rect};
use std::io;
use std::time::Duration;
use windows::core::Interface;
use windows::Win32::Foundation::{POINT, RECT};
use windows::Win32::Graphics::Direct3D::D3D_DRIVER_TYPE_HARDWARE;
use windows::Win32::Graphics::Direct3D11::{
    D3D11CreateDevice, ID3D11Device, ID3D11DeviceContext, ID3D11Texture2D, D3D11_CPU_ACCESS_READ,
    D3D11_CREATE_DEVICE_BGRA_SUPPORT, D3D11_MAPPED_SUBRESOURCE, D3D11_MAP_READ, D3D11_SDK_VERSION,
    D3D11_TEXTURE2D_DESC, D3D11_USAGE_STAGING,
};
use windows::Win32::Graphics::Dxgi::{
    IDXGIDevice, IDXGIOutput1, IDXGIOutputDuplication, IDXGIResource, DXGI_ERROR_ACCESS_LOST,
    DXGI_ERROR_WAIT_TIMEOUT, DXGI_OUTDUPL_FRAME_INFO, DXGI_OUTDUPL_MOVE_RECT,
};
use windows::Win32::UI::WindowsAndMessaging::GetCursorPos;

/// More dirty or move rectangles than this in one frame: compare the whole screen instead.
const MAX_RECTS: usize = 512;

/// The primary output through Desktop Duplication.
pub struct DxgiScreen {
    device: ID3D11Device,
    context: ID3D11DeviceContext,
    duplication: IDXGIOutputDuplication,
    staging: Option<ID3D11Texture2D>,
    width: usize,
    height: usize,
    /// The desktop as last copied out, BGRA, `width*4` bytes per row.
    pixels: Vec<u8>,
    /// Where it changed since the last `with_frame`; `None`: compare everything.
    damage: Option<Vec<Rect>>,
    moves: Vec<MoveHint>,
    last_pointer: Option<(i16, i16)>,
}

fn dxgi_err(what: &str, e: windows::core::Error) -> io::Error {
    io::Error::other(format!("DXGI {what}: {e}"))
}

fn rect(r: &RECT) -> Option<Rect> {
    let (x, y) = (r.left.max(0), r.top.max(0));
    (r.right > x && r.bottom > y).then(|| Rect {
        x: x as u16,
        y: y as u16,
        w: (r.right - x) as u16,
        h: (r.bottom - y) as u16,
    })
}

/// Opens a duplication of the first output of the device's adapter.
fn duplicate(device: &ID3D11Device) -> io::Result<(IDXGIOutputDuplication, usize, usize)> {
    // SAFETY: COM calls on live interfaces; the results are owned COM pointers.
    unsafe {
        let dxgi: IDXGIDevice = device.cast().map_err(|e| dxgi_err("device", e))?;
        let adapter = dxgi.GetAdapter().map_err(|e| dxgi_err("adapter", e))?;
        let output = adapter.EnumOutputs(0).map_err(|e| dxgi_err("output", e))?;
        let desc = output
            .GetDesc()
            .map_err(|e| dxgi_err("output description", e))?;
        let output: IDXGIOutput1 = output.cast().map_err(|e| dxgi_err("output 1.1", e))?;
        let duplication = output
            .DuplicateOutput(device)
            .map_err(|e| dxgi_err("duplication", e))?;
        let r = desc.DesktopCoordinates;
        Ok((
            duplication,
            (r.right - r.left).max(1) as usize,
            (r.bottom - r.top).max(1) as usize,
        ))
    }
}

impl DxgiScreen {
    /// Creates a Direct3D device and duplicates the primary output.
    pub fn open() -> io::Result<Self> {
        let mut device = None;
        let mut context = None;
        // SAFETY: D3D11CreateDevice writes the two out pointers it is given.
        unsafe {
            D3D11CreateDevice(
                None,
                D3D_DRIVER_TYPE_HARDWARE,
                Default::default(),
                D3D11_CREATE_DEVICE_BGRA_SUPPORT,
                None,
                D3D11_SDK_VERSION,
                Some(&mut device),
                None,
                Some(&mut context),
            )
            .map_err(|e| dxgi_err("Direct3D device", e))?;
        }
        let device = device.ok_or_else(|| io::Error::other("DXGI: no Direct3D device"))?;
        let context = context.ok_or_else(|| io::Error::other("DXGI: no device context"))?;
        let (duplication, width, height) = duplicate(&device)?;
        let mut screen = Self {
            device,
            context,
            duplication,
            staging: None,
            width,
            height,
            pixels: vec![0; width * height * 4],
            damage: None,
            moves: Vec::new(),
            last_pointer: None,
        };
        // The first frame is the whole desktop; it may take a moment to come.
        screen.acquire(Duration::from_millis(500))?;
        screen.damage = None;
        Ok(screen)
    }

    /// Takes the next desktop frame if one comes within `limit`: copies the changed rows out
    /// and collects where they are. `Ok(false)` when nothing changed.
    fn acquire(&mut self, limit: Duration) -> io::Result<bool> {
        let mut info = DXGI_OUTDUPL_FRAME_INFO::default();
        let mut resource: Option<IDXGIResource> = None;
        // SAFETY: AcquireNextFrame writes the info and the resource pointer; every acquired
        // frame is released below before the next acquire.
        let acquired = unsafe {
            self.duplication.AcquireNextFrame(
                limit.as_millis().min(u32::MAX as u128) as u32,
                &mut info,
                &mut resource,
            )
        };
        match acquired {
            Ok(()) => {}
            Err(e) if e.code() == DXGI_ERROR_WAIT_TIMEOUT => return Ok(false),
            Err(e) if e.code() == DXGI_ERROR_ACCESS_LOST => {
                // A desktop switch (UAC, lock screen, resolution): duplicate again.
                let (duplication, width, height) = duplicate(&self.device)?;
                self.duplication = duplication;
                if (width, height) != (self.width, self.height) {
                    self.width = width;
                    self.height = height;
                    self.pixels = vec![0; width * height * 4];
                    self.staging = None;
                }
                self.damage = None;
                return Ok(true);
            }
            Err(e) => return Err(dxgi_err("next frame", e)),
        }
        let copied = if info.LastPresentTime != 0 {
            let known = info.TotalMetadataBufferSize > 0;
            resource.map(|r| self.copy_out(&r, known)).transpose()
        } else {
            // Only the pointer moved.
            Ok(None)
        };
        // SAFETY: the frame acquired above.
        let _ = unsafe { self.duplication.ReleaseFrame() };
        Ok(copied?.is_some() || info.LastMouseUpdateTime != 0)
    }

    /// Reads the frame's move and dirty rectangles (`metadata`: the frame has them) and copies
    /// the dirty rows out, or everything where they are unknown.
    fn copy_out(&mut self, resource: &IDXGIResource, metadata: bool) -> io::Result<()> {
        let (moves, dirty) = self.frame_rects();
        let dirty = dirty.filter(|_| metadata);
        // SAFETY: COM calls on the acquired frame's texture and our staging texture of the
        // same size; the mapping is read within its row pitch and unmapped before returning.
        unsafe {
            let texture: ID3D11Texture2D = resource.cast().map_err(|e| dxgi_err("frame", e))?;
            if self.staging.is_none() {
                let mut desc = D3D11_TEXTURE2D_DESC::default();
                texture.GetDesc(&mut desc);
                desc.Usage = D3D11_USAGE_STAGING;
                desc.CPUAccessFlags = D3D11_CPU_ACCESS_READ.0 as u32;
                desc.BindFlags = 0;
                desc.MiscFlags = 0;
                desc.MipLevels = 1;
                desc.ArraySize = 1;
                let mut staging = None;
                self.device
                    .CreateTexture2D(&desc, None, Some(&mut staging))
                    .map_err(|e| dxgi_err("staging texture", e))?;
                self.staging = staging;
            }
            let staging = self.staging.as_ref().expect("created above");
            self.context.CopyResource(staging, &texture);
            let mut mapped = D3D11_MAPPED_SUBRESOURCE::default();
            self.context
                .Map(staging, 0, D3D11_MAP_READ, 0, Some(&mut mapped))
                .map_err(|e| dxgi_err("map", e))?;
            let pitch = mapped.RowPitch as usize;
            let src = std::slice::from_raw_parts(mapped.pData as *const u8, pitch * self.height);
            let whole = Rect {
                x: 0,
                y: 0,
                w: self.width as u16,
                h: self.height as u16,
            };
            let rows: Vec<Rect> = match &dirty {
                Some(d) => d.clone(),
                None => vec![whole],
            };
            for r in rows.iter().filter_map(|r| r.clip(self.width, self.height)) {
                for y in r.y as usize..r.bottom() {
                    let from = &src[y * pitch + r.x as usize * 4..][..r.w as usize * 4];
                    self.pixels[(y * self.width + r.x as usize) * 4..][..r.w as usize * 4]
                        .copy_from_slice(from);
                }
            }
            self.context.Unmap(staging, 0);
        }
        match (self.damage.as_mut(), dirty) {
            (Some(all), Some(d)) if all.len() + d.len() <= MAX_RECTS => all.extend(d),
            _ => self.damage = None,
        }
        self.moves.extend(moves);
        Ok(())
    }

    /// The frame's move rectangles (as hints) and dirty rectangles (`None`: unknown).
    fn frame_rects(&self) -> (Vec<MoveHint>, Option<Vec<Rect>>) {
        let mut moves = vec![DXGI_OUTDUPL_MOVE_RECT::default(); MAX_RECTS];
        let mut dirty = vec![RECT::default(); MAX_RECTS];
        let (mut moves_len, mut dirty_len) = (0u32, 0u32);
        // SAFETY: each buffer is MAX_RECTS entries long and its size in bytes is passed.
        let got_moves = unsafe {
            self.duplication.GetFrameMoveRects(
                (moves.len() * std::mem::size_of::<DXGI_OUTDUPL_MOVE_RECT>()) as u32,
                moves.as_mut_ptr(),
                &mut moves_len,
            )
        };
        let got_dirty = unsafe {
            self.duplication.GetFrameDirtyRects(
                (dirty.len() * std::mem::size_of::<RECT>()) as u32,
                dirty.as_mut_ptr(),
                &mut dirty_len,
            )
        };
        // Dirty rectangles leave out where moved pixels landed: without the moves, the dirty
        // rectangles do not say everything that changed.
        let moves_known = got_moves.is_ok();
        let moves = match got_moves {
            Ok(()) => moves
                .iter()
                .take(moves_len as usize / std::mem::size_of::<DXGI_OUTDUPL_MOVE_RECT>())
                .filter_map(|m| {
                    let to = rect(&m.DestinationRect)?;
                    Some(MoveHint {
                        from: Rect {
                            x: m.SourcePoint.x.max(0) as u16,
                            y: m.SourcePoint.y.max(0) as u16,
                            ..to
                        },
                        to_x: to.x as i32,
                        to_y: to.y as i32,
                    })
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        let dirty = got_dirty.ok().filter(|_| moves_known).map(|()| {
            dirty
                .iter()
                .take(dirty_len as usize / std::mem::size_of::<RECT>())
                .filter_map(rect)
                .chain(moves.iter().map(|m: &MoveHint| Rect {
                    x: m.to_x as u16,
                    y: m.to_y as u16,
                    ..m.from
                }))
                .collect()
        });
        (moves, dirty)
    }

    fn pointer() -> Option<(i16, i16)> {
        let mut p = POINT::default();
        // SAFETY: GetCursorPos writes one POINT.
        unsafe { GetCursorPos(&mut p) }
            .ok()
            .map(|_| (p.x as i16, p.y as i16))
    }
}

impl ScreenSource for DxgiScreen {
    fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn wait_for_change(&mut self, max_wait: Duration) -> bool {
        match self.acquire(max_wait) {
            Ok(changed) => changed || Self::pointer() != self.last_pointer,
            Err(e) => {
                tracing::warn!(error = %e, "desktop duplication failed");
                std::thread::sleep(max_wait.min(Duration::from_millis(100)));
                true
            }
        }
    }

    fn with_frame(
        &mut self,
        f: &mut dyn FnMut(&FrameView<'_>, &FrameChanges<'_>),
    ) -> io::Result<()> {
        let damage = self.damage.replace(Vec::new());
        let moves = std::mem::take(&mut self.moves);
        f(
            &FrameView {
                width: self.width,
                height: self.height,
                stride: self.width * 4,
                bgrx: &self.pixels,
            },
            &FrameChanges::captured_now(damage.as_deref(), &moves),
        );
        Ok(())
    }

    fn cursor(&mut self) -> CursorState {
        let position = Self::pointer();
        self.last_pointer = position;
        CursorState {
            position,
            shape: None,
        }
    }
}
