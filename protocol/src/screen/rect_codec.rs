//! One rectangle of an update: its header (x u16, y u16, w u8, h u8, kind u8, then a solid
//! colour, or a palette's size and colours) in the shapes stream, then its pixels: nothing for
//! a solid colour; a palette of up to 16 colours with its indices bit-packed (text, icons,
//! window chrome), also in the shapes stream; or, in the photo stream, lossless pixels as
//! residuals of the median edge predictor (LOCO-I), which turns gradients and photos into small
//! numbers the stream compresses well; or, only for regions
//! the encoder sees in motion (video), a lossy picture at half resolution and 6 bits per
//! channel, which the encoder replaces losslessly once the region stands still. Text is never
//! sent lossy: a region with 16 colours or fewer always travels exactly.

use super::{FrameView, Rect, TILE};
use crate::wire::{DecodeError, Reader};

/// Most colours a palette rectangle has.
pub const MAX_PALETTE: usize = 16;
/// Most bytes a rectangle's header takes in the shapes stream.
pub const MAX_RECT_HEADER: usize = 8 + 3 * MAX_PALETTE;

/// How a rectangle's pixels travel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RectPixels {
    /// Every pixel has this colour (0x00RRGGBB).
    Solid(u32),
    /// Up to 16 colours (0x00RRGGBB) and the packed indices.
    Palette(Vec<u32>),
    /// The pixels, predicted, as residuals.
    Lossless,
    /// Half the resolution in each direction, 6 bits per channel, predicted, as residuals.
    Lossy,
}

impl RectPixels {
    /// Whether the pixels travel in the photo stream (else in the shapes stream, after the
    /// header).
    pub fn in_photo_stream(&self) -> bool {
        matches!(self, Self::Lossless | Self::Lossy)
    }
}

/// Bits per palette index for a palette of `n` colours.
fn index_bits(n: usize) -> usize {
    match n {
        0..=2 => 1,
        3..=4 => 2,
        _ => 4,
    }
}

/// Bytes of pixels (after the header) a rectangle of this kind takes in the stream.
pub fn pixel_len(rect: Rect, pixels: &RectPixels) -> usize {
    let (w, h) = (rect.w as usize, rect.h as usize);
    match pixels {
        RectPixels::Solid(_) => 0,
        RectPixels::Palette(c) => h * (w * index_bits(c.len())).div_ceil(8),
        RectPixels::Lossless => w * h * 3,
        RectPixels::Lossy => w.div_ceil(2) * h.div_ceil(2) * 3,
    }
}

fn rgb(p: &[u8]) -> u32 {
    u32::from_le_bytes([p[0], p[1], p[2], 0])
}

/// The median edge predictor: the left, above or their gradient, whichever an edge suggests.
fn med(a: u8, b: u8, c: u8) -> u8 {
    if c >= a.max(b) {
        a.min(b)
    } else if c <= a.min(b) {
        a.max(b)
    } else {
        a.wrapping_add(b).wrapping_sub(c)
    }
}

/// Appends the residuals of an RGB picture (`w*3` bytes per row) against the median edge
/// predictor: the first pixel against black, the first row against the left neighbour, the
/// first column against the one above.
fn med_residuals(rgb: &[u8], w: usize, h: usize, out: &mut Vec<u8>) {
    let stride = w * 3;
    out.reserve(stride * h);
    for y in 0..h {
        let row = &rgb[y * stride..][..stride];
        if y == 0 {
            out.extend_from_slice(&row[..3]);
            out.extend((3..stride).map(|i| row[i].wrapping_sub(row[i - 3])));
        } else {
            let up = &rgb[(y - 1) * stride..][..stride];
            out.extend((0..3).map(|i| row[i].wrapping_sub(up[i])));
            out.extend((3..stride).map(|i| row[i].wrapping_sub(med(row[i - 3], up[i], up[i - 3]))));
        }
    }
}

/// The inverse of [`med_residuals`]: rebuilds the RGB picture into `rgb`.
fn med_reconstruct(residuals: &[u8], w: usize, h: usize, rgb: &mut [u8]) {
    let stride = w * 3;
    for y in 0..h {
        let (done, rest) = rgb.split_at_mut(y * stride);
        let row = &mut rest[..stride];
        let res = &residuals[y * stride..][..stride];
        if y == 0 {
            row[..3].copy_from_slice(&res[..3]);
            for i in 3..stride {
                row[i] = res[i].wrapping_add(row[i - 3]);
            }
        } else {
            let up = &done[(y - 1) * stride..][..stride];
            for i in 0..3 {
                row[i] = res[i].wrapping_add(up[i]);
            }
            for i in 3..stride {
                row[i] = res[i].wrapping_add(med(row[i - 3], up[i], up[i - 3]));
            }
        }
    }
}

/// The lossy picture of a rectangle: half the resolution in each direction (the mean of each
/// 2×2 block), 6 bits per channel, RGB row by row.
pub fn lossy_small(frame: &FrameView<'_>, rect: Rect) -> Vec<u8> {
    let (x0, y0, w, h) = (
        rect.x as usize,
        rect.y as usize,
        rect.w as usize,
        rect.h as usize,
    );
    let (dw, dh) = (w.div_ceil(2), h.div_ceil(2));
    let mut small = vec![0u8; dw * dh * 3];
    // BGRX in the frame, RGB on the wire; an odd last column or row pairs with itself.
    let mean = |a: &[u8], b: &[u8], c: &[u8], d: &[u8], out: &mut [u8]| {
        for (o, ch) in out.iter_mut().zip([2, 1, 0]) {
            let sum = a[ch] as u32 + b[ch] as u32 + c[ch] as u32 + d[ch] as u32;
            *o = (((sum + 2) / 4) >> 2) as u8;
        }
    };
    for (dy, out) in small.chunks_exact_mut(dw * 3).enumerate() {
        let top = frame.row(x0, y0 + 2 * dy, w);
        let bottom = frame.row(x0, (y0 + 2 * dy + 1).min(y0 + h - 1), w);
        let mut out = out.chunks_exact_mut(3);
        for ((t, b), o) in top
            .chunks_exact(8)
            .zip(bottom.chunks_exact(8))
            .zip(&mut out)
        {
            mean(&t[..4], &t[4..], &b[..4], &b[4..], o);
        }
        if w % 2 == 1 {
            let (t, b) = (&top[(w - 1) * 4..], &bottom[(w - 1) * 4..]);
            mean(
                t,
                t,
                b,
                b,
                out.next().expect("one pixel left for an odd width"),
            );
        }
    }
    small
}

/// Shows a lossy picture at full size: hands each row of the `w`×`h` rectangle, as
/// 0x00RRGGBB pixels, to `put_row(row, pixels)`.
pub fn expand_lossy(small: &[u8], w: usize, h: usize, mut put_row: impl FnMut(usize, &[u32])) {
    let dw = w.div_ceil(2);
    if dw == 0 {
        return;
    }
    let mut row = vec![0u32; dw * 2];
    for (y, line) in (0..h).step_by(2).zip(small.chunks_exact(dw * 3)) {
        for (pair, p) in row.chunks_exact_mut(2).zip(line.chunks_exact(3)) {
            pair.fill(u32::from_be_bytes([
                0,
                expand6(p[0]),
                expand6(p[1]),
                expand6(p[2]),
            ]));
        }
        put_row(y, &row[..w]);
        if y + 1 < h {
            put_row(y + 1, &row[..w]);
        }
    }
}

/// A 6-bit channel value back to 8 bits, spreading 0..=63 over 0..=255.
fn expand6(q: u8) -> u8 {
    let q = q.min(63);
    (q << 2) | (q >> 4)
}

fn push_colour(stream: &mut Vec<u8>, c: u32) {
    stream.extend_from_slice(&c.to_be_bytes()[1..]);
}

/// Classifies the rectangle's pixels, appends its header to `shapes` and its pixels to
/// `shapes` or `photo` (see [`RectPixels::in_photo_stream`]), and says how they travel. With
/// `lossy` given, a rectangle of more than 16 colours goes lossy, and
/// `lossy` receives its small picture (see [`lossy_small`]). The rectangle must lie inside the
/// frame and be at most a tile.
pub fn encode_rect(
    frame: &FrameView<'_>,
    rect: Rect,
    lossy: Option<&mut Vec<u8>>,
    shapes: &mut Vec<u8>,
    photo: &mut Vec<u8>,
) -> RectPixels {
    debug_assert!(rect.w as usize <= TILE && rect.h as usize <= TILE);
    shapes.extend_from_slice(&rect.x.to_be_bytes());
    shapes.extend_from_slice(&rect.y.to_be_bytes());
    shapes.extend_from_slice(&[rect.w as u8, rect.h as u8]);
    let (x0, y0, w, h) = (
        rect.x as usize,
        rect.y as usize,
        rect.w as usize,
        rect.h as usize,
    );
    let mut colours: Vec<u32> = Vec::with_capacity(MAX_PALETTE + 1);
    'scan: for y in y0..y0 + h {
        for p in frame.row(x0, y, w).chunks_exact(4) {
            let c = rgb(p);
            if colours.last() != Some(&c) && !colours.contains(&c) {
                colours.push(c);
                if colours.len() > MAX_PALETTE {
                    break 'scan;
                }
            }
        }
    }
    match colours.len() {
        1 => {
            shapes.push(1);
            push_colour(shapes, colours[0]);
            RectPixels::Solid(colours[0])
        }
        2..=MAX_PALETTE => {
            shapes.extend_from_slice(&[2, colours.len() as u8]);
            for c in &colours {
                push_colour(shapes, *c);
            }
            let bits = index_bits(colours.len());
            for y in y0..y0 + h {
                let (mut acc, mut filled) = (0u8, 0);
                for p in frame.row(x0, y, w).chunks_exact(4) {
                    let i = colours.iter().position(|c| *c == rgb(p)).unwrap_or(0) as u8;
                    acc = (acc << bits) | i;
                    filled += bits;
                    if filled == 8 {
                        shapes.push(acc);
                        (acc, filled) = (0, 0);
                    }
                }
                if filled > 0 {
                    shapes.push(acc << (8 - filled));
                }
            }
            RectPixels::Palette(colours)
        }
        _ if lossy.is_some() => {
            shapes.push(3);
            let small = lossy.expect("checked");
            *small = lossy_small(frame, rect);
            med_residuals(small, w.div_ceil(2), h.div_ceil(2), photo);
            RectPixels::Lossy
        }
        _ => {
            shapes.push(0);
            let mut rgb = Vec::with_capacity(w * h * 3);
            for y in y0..y0 + h {
                for p in frame.row(x0, y, w).chunks_exact(4) {
                    rgb.extend_from_slice(&[p[2], p[1], p[0]]);
                }
            }
            med_residuals(&rgb, w, h, photo);
            RectPixels::Lossless
        }
    }
}

fn read_colour(r: &mut Reader<'_>) -> Result<u32, DecodeError> {
    let [a, b, c] = r.array::<3>()?;
    Ok(u32::from_be_bytes([0, a, b, c]))
}

/// Reads the next rectangle's header from the decompressed shapes stream and checks it against a
/// screen of this size.
pub fn read_rect_header(
    r: &mut Reader<'_>,
    width: usize,
    height: usize,
) -> Result<(Rect, RectPixels), DecodeError> {
    let rect = Rect {
        x: r.u16()?,
        y: r.u16()?,
        w: r.u8()? as u16,
        h: r.u8()? as u16,
    };
    if !rect.inside(width, height) || rect.w as usize > TILE || rect.h as usize > TILE {
        return Err(DecodeError::Invalid {
            what: "rectangle",
            reason: "empty, larger than a tile or outside the screen",
        });
    }
    let pixels = match r.u8()? {
        0 => RectPixels::Lossless,
        3 => RectPixels::Lossy,
        1 => RectPixels::Solid(read_colour(r)?),
        2 => {
            let n = r.u8()? as usize;
            if !(2..=MAX_PALETTE).contains(&n) {
                return Err(DecodeError::Invalid {
                    what: "palette",
                    reason: "not 2 to 16 colours",
                });
            }
            RectPixels::Palette((0..n).map(|_| read_colour(r)).collect::<Result<_, _>>()?)
        }
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "rectangle kind",
                tag,
            })
        }
    };
    Ok((rect, pixels))
}

/// Writes a rectangle into a 0x00RRGGBB screen of `stride` pixels per row; `data` is exactly
/// the rectangle's [`pixel_len`] bytes of its stream.
pub fn decode_rect(
    screen: &mut [u32],
    stride: usize,
    rect: Rect,
    pixels: &RectPixels,
    data: &[u8],
) {
    let (x0, y0, w, h) = (
        rect.x as usize,
        rect.y as usize,
        rect.w as usize,
        rect.h as usize,
    );
    match pixels {
        RectPixels::Solid(c) => {
            for y in y0..y0 + h {
                screen[y * stride + x0..][..w].fill(*c);
            }
        }
        RectPixels::Palette(colours) => {
            let bits = index_bits(colours.len());
            let row_bytes = (w * bits).div_ceil(8);
            let mask = (1u8 << bits) - 1;
            for (y, packed) in (y0..y0 + h).zip(data.chunks_exact(row_bytes)) {
                for (x, px) in screen[y * stride + x0..][..w].iter_mut().enumerate() {
                    let bit = x * bits;
                    let i = (packed[bit / 8] >> (8 - bits - bit % 8)) & mask;
                    // An index beyond the palette (hostile agent) shows as the first colour.
                    *px = colours.get(i as usize).copied().unwrap_or(colours[0]);
                }
            }
        }
        RectPixels::Lossless => {
            let mut rgb = vec![0u8; w * h * 3];
            med_reconstruct(data, w, h, &mut rgb);
            for (y, row) in (y0..y0 + h).zip(rgb.chunks_exact(w * 3)) {
                for (px, p) in screen[y * stride + x0..][..w]
                    .iter_mut()
                    .zip(row.chunks_exact(3))
                {
                    *px = u32::from_be_bytes([0, p[0], p[1], p[2]]);
                }
            }
        }
        RectPixels::Lossy => {
            let (dw, dh) = (w.div_ceil(2), h.div_ceil(2));
            let mut small = vec![0u8; dw * dh * 3];
            med_reconstruct(data, dw, dh, &mut small);
            expand_lossy(&small, w, h, |y, row| {
                screen[(y0 + y) * stride + x0..][..w].copy_from_slice(row);
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(w: usize, h: usize, f: impl Fn(usize, usize) -> u32) -> RectPixels {
        let mut bgrx = Vec::new();
        for y in 0..h {
            for x in 0..w {
                let [_, r, g, b] = f(x, y).to_be_bytes();
                bgrx.extend_from_slice(&[b, g, r, 0xFF]);
            }
        }
        let frame = FrameView {
            width: w,
            height: h,
            stride: w * 4,
            bgrx: &bgrx,
        };
        let rect = Rect {
            x: 1,
            y: 1,
            w: (w - 2) as u16,
            h: (h - 2) as u16,
        };
        let (mut shapes, mut photo) = (Vec::new(), Vec::new());
        let kind = encode_rect(&frame, rect, None, &mut shapes, &mut photo);
        let mut r = Reader::new(&shapes);
        let (read, pixels) = read_rect_header(&mut r, w, h).unwrap();
        assert_eq!((read, &pixels), (rect, &kind));
        let mut p = Reader::new(&photo);
        let from = if kind.in_photo_stream() {
            &mut p
        } else {
            &mut r
        };
        let data = from.bytes(pixel_len(rect, &kind)).unwrap();
        r.finish().unwrap();
        p.finish().unwrap();
        let mut screen = vec![0xABCDEF; w * h];
        decode_rect(&mut screen, w, rect, &kind, data);
        for y in 0..h {
            for x in 0..w {
                let inside = (1..w - 1).contains(&x) && (1..h - 1).contains(&y);
                let want = if inside { f(x, y) } else { 0xABCDEF };
                assert_eq!(screen[y * w + x], want, "pixel {x},{y} of {kind:?}");
            }
        }
        kind
    }

    #[test]
    fn every_kind_roundtrips_exactly() {
        assert_eq!(
            roundtrip(10, 9, |_, _| 0x123456),
            RectPixels::Solid(0x123456)
        );
        for n in [2u32, 3, 4, 5, 16] {
            let kind = roundtrip(13, 7, |x, y| ((x as u32 * 3 + y as u32) % n) * 0x010203);
            assert!(matches!(kind, RectPixels::Palette(c) if c.len() == n as usize));
        }
        let kind = roundtrip(66, 66, |x, y| {
            u32::from_be_bytes([0, (x * 7) as u8, (y * 13) as u8, (x * y) as u8])
        });
        assert_eq!(kind, RectPixels::Lossless);
    }

    #[test]
    fn the_lossy_picture_is_the_mean_of_each_block_at_any_size() {
        let f = |x: usize, y: usize| {
            u32::from_be_bytes([0, (x * 37 + y) as u8, (y * 11) as u8, (x ^ y) as u8])
        };
        for (w, h) in [(1, 1), (1, 4), (2, 2), (3, 5), (63, 64), (64, 63)] {
            let px: Vec<u8> = (0..w * h)
                .flat_map(|i| f(i % w, i / w).to_le_bytes())
                .collect();
            let frame = FrameView {
                width: w,
                height: h,
                stride: w * 4,
                bgrx: &px,
            };
            let rect = Rect {
                x: 0,
                y: 0,
                w: w as u16,
                h: h as u16,
            };
            let small = lossy_small(&frame, rect);
            let mut shown = vec![0u32; w * h];
            expand_lossy(&small, w, h, |y, row| {
                shown[y * w..][..w].copy_from_slice(row)
            });
            for y in 0..h {
                for x in 0..w {
                    // The block this pixel belongs to; at an odd edge it repeats its last pixel.
                    let (bx, by) = (x & !1, y & !1);
                    let corners = [(bx, by), (bx + 1, by), (bx, by + 1), (bx + 1, by + 1)]
                        .map(|(cx, cy)| f(cx.min(w - 1), cy.min(h - 1)).to_be_bytes());
                    let want = [1, 2, 3].map(|ch| {
                        let sum: u32 = corners.iter().map(|c| c[ch] as u32).sum();
                        expand6((((sum + 2) / 4) >> 2) as u8)
                    });
                    let want = u32::from_be_bytes([0, want[0], want[1], want[2]]);
                    assert_eq!(shown[y * w + x], want, "{w}x{h} pixel {x},{y}");
                }
            }
        }
    }

    #[test]
    fn indices_beyond_the_palette_stay_inside_it() {
        let rect = Rect {
            x: 0,
            y: 0,
            w: 2,
            h: 1,
        };
        let pal = RectPixels::Palette(vec![1, 2, 3]);
        let mut screen = vec![0; 2];
        decode_rect(&mut screen, 2, rect, &pal, &[0xFF]);
        assert_eq!(screen, vec![1, 1]);
    }
}
