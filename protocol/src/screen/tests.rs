//! The codec end to end: encoder → bytes → decoder, against the captured pixels.

use super::pixel_stream::{PixelCompressor, StreamKind};
use super::*;
use proptest::prelude::*;

/// A test screen: RGB per pixel, turned into BGRX frames.
#[derive(Clone)]
struct Screen {
    w: usize,
    h: usize,
    rgb: Vec<u32>,
}

impl Screen {
    fn new(w: usize, h: usize, f: impl Fn(usize, usize) -> u32) -> Self {
        let rgb = (0..w * h).map(|i| f(i % w, i / w)).collect();
        Self { w, h, rgb }
    }

    fn bgrx(&self) -> Vec<u8> {
        self.rgb
            .iter()
            .flat_map(|p| {
                let [_, r, g, b] = p.to_be_bytes();
                [b, g, r, 0xFF]
            })
            .collect()
    }

    fn fill(&mut self, x: usize, y: usize, w: usize, h: usize, f: impl Fn(usize, usize) -> u32) {
        for yy in y..(y + h).min(self.h) {
            for xx in x..(x + w).min(self.w) {
                self.rgb[yy * self.w + xx] = f(xx, yy);
            }
        }
    }
}

/// Text-like content: dark glyph strokes on a light background.
fn text(x: usize, y: usize) -> u32 {
    let cell = ((x / 7) as u32).wrapping_mul(2654435761) ^ ((y / 13) as u32).wrapping_mul(40503);
    let glyph = (cell ^ (cell >> 13)).wrapping_mul(2246822519) >> 27;
    if (x % 7) < 5
        && (y % 13) < 9
        && ((x % 7) as u32 * 3 + (y % 13) as u32 + glyph).is_multiple_of(4)
    {
        0x202020
    } else {
        0xF0F0F0
    }
}

struct Pair {
    enc: ScreenEncoder,
    dec: ScreenDecoder,
    fb: Framebuffer,
    /// What a window shows that draws only the framebuffer's dirty box after each update.
    shown: Vec<u32>,
}

impl Pair {
    fn new() -> Self {
        Self {
            enc: ScreenEncoder::new(),
            dec: ScreenDecoder::new(),
            fb: Framebuffer::default(),
            shown: Vec::new(),
        }
    }

    /// Encodes the screen, applies the update, checks the result; returns the update's size.
    fn send(&mut self, s: &Screen, changes: &FrameChanges<'_>) -> Option<(usize, Applied)> {
        let data = s.bgrx();
        let frame = FrameView {
            width: s.w,
            height: s.h,
            stride: s.w * 4,
            bgrx: &data,
        };
        let bytes = self.enc.encode(&frame, changes, None, None)?;
        let applied = self
            .dec
            .apply(&bytes, &mut self.fb)
            .expect("own updates decode");
        let (w, h) = (self.fb.width, self.fb.height);
        self.shown.resize(w * h, 0);
        if let Some(r) = self.fb.take_dirty() {
            for y in r.y as usize..r.bottom() {
                let row = y * w + r.x as usize..y * w + r.right();
                self.shown[row.clone()].copy_from_slice(&self.fb.screen()[row]);
            }
        }
        assert!(
            self.shown == self.fb.screen(),
            "a window drawing only the dirty box differs from the framebuffer"
        );
        // Exact unless regions in motion travelled lossy (they are refined once still).
        if !self.enc.needs_refinement() {
            assert!(
                self.fb.screen() == &s.rgb[..],
                "viewer differs from the screen"
            );
        }
        Some((bytes.len(), applied))
    }
}

#[test]
fn roundtrip_is_exact_and_a_static_screen_sends_nothing() {
    let s = Screen::new(200, 130, |x, y| {
        u32::from_be_bytes([0, (x * 7) as u8, (y * 3) as u8, ((x ^ y) & 0xFF) as u8])
    });
    let mut p = Pair::new();
    let (_, first) = p.send(&s, &FrameChanges::default()).unwrap();
    assert!(first.reset);
    assert_eq!(first.rects, 4 * 3);
    assert!(p.send(&s, &FrameChanges::default()).is_none());
    // One pixel changes: one rectangle of one pixel travels.
    let mut s2 = s.clone();
    s2.rgb[100 * 200 + 150] ^= 0xFF;
    let (len, a) = p.send(&s2, &FrameChanges::default()).unwrap();
    assert_eq!((a.rects, a.copies, a.reset), (1, 0, false));
    assert!(len < 40, "one pixel cost {len} bytes");
}

#[test]
fn a_glyph_typed_again_costs_a_few_bytes() {
    let mut s = Screen::new(640, 400, |_, _| 0xF0F0F0);
    let mut p = Pair::new();
    p.send(&s, &FrameChanges::default()).unwrap();
    let mut sizes = Vec::new();
    for i in 0..40 {
        // The same word typed again and again, further along the line.
        let x0 = 10 + i * 14;
        let y0 = 20 + (i / 40) * 16;
        s.fill(x0, y0, 14, 13, |x, y| text(x - x0 + 7, y - y0));
        let (len, _) = p.send(&s, &FrameChanges::default()).unwrap();
        sizes.push(len);
    }
    let later: usize = sizes[10..].iter().sum::<usize>() / sizes[10..].len();
    println!("a glyph typed again: {later} bytes on average; each update: {sizes:?}");
    assert!(
        later <= 24,
        "a repeated glyph costs {later} bytes: {sizes:?}"
    );
}

#[test]
fn a_scrolled_text_travels_as_one_copy_and_the_new_line() {
    let (w, h) = (480, 320);
    let mut lines: Vec<usize> = (0..h / 13).collect();
    let draw = |lines: &[usize]| {
        Screen::new(w, h, |x, y| {
            let line = lines.get(y / 13).copied().unwrap_or(0);
            if y / 13 >= lines.len() {
                0xF0F0F0
            } else {
                text(x + line * 7, y % 13)
            }
        })
    };
    let mut p = Pair::new();
    let (full, _) = p.send(&draw(&lines), &FrameChanges::default()).unwrap();
    for n in 0..10 {
        lines.remove(0);
        lines.push(100 + n);
        let (len, a) = p.send(&draw(&lines), &FrameChanges::default()).unwrap();
        assert_eq!(a.copies, 1, "scroll {n} not found");
        // About what the new line's 480×13 pixels cost on their own.
        assert!(
            len * 8 < full,
            "a scroll cost {len} bytes, the whole screen {full}"
        );
    }
    assert_eq!(p.enc.stats().copies, 10);
}

#[test]
fn a_moved_window_travels_as_a_copy_when_the_hint_holds() {
    let bg = |x: usize, y: usize| u32::from_be_bytes([0, (x / 3) as u8, (y / 2) as u8, 90]);
    let win = |x: usize, y: usize| text(x, y) ^ ((x * y) as u32 & 0x0F0F0F);
    let (w, h) = (640, 480);
    let mut s = Screen::new(w, h, bg);
    s.fill(100, 80, 200, 150, |x, y| win(x - 100, y - 80));
    let mut p = Pair::new();
    p.send(&s, &FrameChanges::default()).unwrap();
    let mut moved = Screen::new(w, h, bg);
    moved.fill(137, 101, 200, 150, |x, y| win(x - 137, y - 101));
    let hint = MoveHint {
        from: Rect {
            x: 100,
            y: 80,
            w: 200,
            h: 150,
        },
        to_x: 137,
        to_y: 101,
    };
    let (len, a) = p
        .send(
            &moved,
            &FrameChanges {
                damage: None,
                moves: &[hint],
                now: None,
            },
        )
        .unwrap();
    assert!(a.copies >= 1);
    // The same move without the hint, for comparison.
    let mut q = Pair::new();
    q.send(&s, &FrameChanges::default()).unwrap();
    let (plain, _) = q.send(&moved, &FrameChanges::default()).unwrap();
    assert!(len * 3 < plain, "with hint {len} bytes, without {plain}");
    // A hint that is wrong costs nothing but stays exact.
    let mut r = Pair::new();
    r.send(&s, &FrameChanges::default()).unwrap();
    let wrong = MoveHint { to_x: 10, ..hint };
    r.send(
        &moved,
        &FrameChanges {
            damage: None,
            moves: &[wrong],
            now: None,
        },
    )
    .unwrap();
}

#[test]
fn a_region_in_motion_goes_lossy_and_is_refined_when_still() {
    let mut s = Screen::new(320, 240, text);
    let mut p = Pair::new();
    p.send(&s, &FrameChanges::default()).unwrap();
    let noise = |seed: u32| {
        move |x: usize, y: usize| {
            let v = (x as u32 * 7 + seed).wrapping_mul(2654435761) ^ (y as u32 * 13 + seed);
            (v.wrapping_mul(40503) >> 8) & 0xFF_FFFF
        }
    };
    let t0 = std::time::Instant::now();
    let at = |ms: u64| FrameChanges {
        now: Some(t0 + std::time::Duration::from_millis(ms)),
        ..FrameChanges::default()
    };
    let mut sizes = Vec::new();
    for frame in 0..6 {
        s.fill(64, 64, 128, 128, noise(frame as u32));
        sizes.push(p.send(&s, &at(frame * 33)).unwrap().0);
    }
    assert!(p.enc.needs_refinement(), "no tile went lossy");
    assert!(p.fb.screen() != &s.rgb[..]);
    assert!(
        sizes[5] * 3 < sizes[0],
        "lossy frames are not smaller: {sizes:?}"
    );
    // A still region waits before it is refined; then it is exact.
    assert!(
        p.send(&s, &at(5 * 33 + 40)).is_none(),
        "refined before it was due"
    );
    p.send(&s, &at(5 * 33 + REFINE_AFTER.as_millis() as u64))
        .unwrap();
    assert!(!p.enc.needs_refinement());
    assert!(p.fb.screen() == &s.rgb[..], "not exact after refinement");
    assert_eq!(p.enc.stats().refined_rects, 4);
    // Text never goes lossy, however often it changes.
    for frame in 0..6 {
        s.fill(0, 0, 64, 64, |x, y| text(x + (frame + 1) * 7, y));
        p.send(&s, &FrameChanges::default()).unwrap();
    }
    assert!(!p.enc.needs_refinement());
}

#[test]
fn a_lossy_tile_the_viewer_shows_exactly_needs_no_refinement() {
    // 2×2 blocks of colours that survive 6 bits, and a zero fourth byte as XShm gives it:
    // the lossy picture is the picture.
    let frame = |t: usize| -> Vec<u8> {
        (0..64 * 64)
            .flat_map(|i| {
                let (x, y) = (i % 64 / 2, i / 64 / 2);
                let q = ((x * 3 + y * 5 + t * 7) % 64) as u8;
                let six = |q: u8| (q << 2) | (q >> 4);
                [six(q), six(q / 2), six(63 - q), 0]
            })
            .collect()
    };
    let mut enc = ScreenEncoder::new();
    let mut dec = ScreenDecoder::new();
    let mut fb = Framebuffer::default();
    let none = FrameChanges::default();
    let mut send = |data: &[u8]| {
        let view = FrameView {
            width: 64,
            height: 64,
            stride: 256,
            bgrx: data,
        };
        let update = enc.encode(&view, &none, None, None);
        if let Some(u) = &update {
            dec.apply(u, &mut fb).unwrap();
        }
        (update.is_some(), enc.needs_refinement())
    };
    for t in 0..4 {
        send(&frame(t));
    }
    assert_eq!(send(&frame(4)), (true, true), "the tile did not go lossy");
    assert_eq!(
        send(&frame(4)),
        (false, false),
        "an exact lossy tile still waits"
    );
}

#[test]
fn damage_limits_where_the_encoder_looks() {
    let s = Screen::new(256, 256, |_, _| 0x112233);
    let mut p = Pair::new();
    p.send(&s, &FrameChanges::default()).unwrap();
    let mut s2 = s.clone();
    s2.fill(10, 10, 5, 5, |_, _| 0xFFFFFF);
    s2.fill(200, 200, 5, 5, |_, _| 0xFFFFFF);
    let damage = [
        Rect {
            x: 8,
            y: 8,
            w: 10,
            h: 10,
        },
        Rect {
            x: 198,
            y: 198,
            w: 10,
            h: 10,
        },
    ];
    let (_, a) = p
        .send(
            &s2,
            &FrameChanges {
                damage: Some(&damage),
                moves: &[],
                now: None,
            },
        )
        .unwrap();
    assert_eq!(a.rects, 2);
}

#[test]
fn cursor_moves_alone_and_is_drawn_and_taken_off() {
    let s = Screen::new(64, 64, |_, _| 0x010203);
    let data = s.bgrx();
    let frame = FrameView {
        width: 64,
        height: 64,
        stride: 256,
        bgrx: &data,
    };
    let shape = CursorShape {
        width: 1,
        height: 1,
        hot_x: 0,
        hot_y: 0,
        rgba: vec![255, 0, 0, 255],
    };
    let mut enc = ScreenEncoder::new();
    let mut dec = ScreenDecoder::new();
    let mut fb = Framebuffer::default();
    let none = FrameChanges::default();
    dec.apply(
        &enc.encode(&frame, &none, Some((1, 1)), Some(&shape))
            .unwrap(),
        &mut fb,
    )
    .unwrap();
    let bytes = enc
        .encode(&frame, &none, Some((2, 2)), Some(&shape))
        .unwrap();
    let u = ScreenUpdate::decode(&bytes, Some((64, 64))).unwrap();
    assert!(u.rect_count == 0 && u.cursor.shape.is_none());
    dec.apply(&bytes, &mut fb).unwrap();
    fb.take_dirty();
    fb.show_cursor();
    assert_eq!(fb.pixels[2 * 64 + 2], 0xFF0000);
    // Drawing the cursor and taking it off both change pixels a window must draw again.
    let under_cursor = Rect {
        x: 2,
        y: 2,
        w: 1,
        h: 1,
    };
    assert_eq!(fb.take_dirty(), Some(under_cursor));
    fb.hide_cursor();
    assert_eq!(fb.take_dirty(), Some(under_cursor));
    assert_eq!(fb.take_dirty(), None);
    assert_eq!(fb.screen(), &s.rgb[..]);
}

/// A reset update for a 100×100 screen whose stream holds exactly `raw`.
fn forged(rect_count: usize, raw: &[u8], copies: Vec<CopyRect>) -> Vec<u8> {
    ScreenUpdate {
        seq: 1,
        ack_requested: false,
        reset: Some((100, 100)),
        cursor: CursorUpdate::default(),
        copies,
        rect_count,
        shapes: StreamPiece {
            len: raw.len(),
            chunk: PixelCompressor::new(StreamKind::Shapes).compress(raw),
        },
        photo: StreamPiece::default(),
    }
    .encode()
}

fn refused(bytes: &[u8]) -> bool {
    ScreenDecoder::new()
        .apply(bytes, &mut Framebuffer::default())
        .is_err()
}

#[test]
fn hostile_updates_are_refused() {
    // A solid 10×10 rectangle at (0,0): the well-formed baseline.
    let solid = |x: u16, y: u16, w: u8, h: u8| {
        let mut v = x.to_be_bytes().to_vec();
        v.extend_from_slice(&y.to_be_bytes());
        v.extend_from_slice(&[w, h, 1, 9, 9, 9]);
        v
    };
    assert!(!refused(&forged(1, &solid(0, 0, 10, 10), vec![])));
    // Screen larger than 8K.
    let mut big = forged(1, &solid(0, 0, 10, 10), vec![]);
    big[2..6].copy_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF]);
    assert!(refused(&big));
    // Rectangles outside the screen, larger than a tile, empty; an unknown kind.
    for bad in [solid(95, 0, 10, 5), solid(0, 0, 65, 5), solid(0, 0, 0, 5)] {
        assert!(refused(&forged(1, &bad, vec![])));
    }
    let mut unknown = solid(0, 0, 10, 10);
    unknown[6] = 7;
    assert!(refused(&forged(1, &unknown, vec![])));
    // More rectangles than tiles; more than the stream holds; a stream with bytes left over.
    assert!(refused(&forged(5, &solid(0, 0, 10, 10).repeat(5), vec![])));
    assert!(refused(&forged(2, &solid(0, 0, 10, 10), vec![])));
    assert!(refused(&forged(0, &solid(0, 0, 10, 10), vec![])));
    // Rectangles covering more than the screen, one tile at a time.
    let over: Vec<u8> = (0..4).flat_map(|_| solid(0, 0, 64, 64)).collect();
    assert!(refused(&forged(4, &over, vec![])));
    // A copy from outside the screen.
    let copy = CopyRect {
        src_x: 60,
        src_y: 0,
        dst: Rect {
            x: 0,
            y: 0,
            w: 50,
            h: 10,
        },
    };
    assert!(refused(&forged(1, &solid(0, 0, 10, 10), vec![copy])));
    // A zip bomb: a piece that unpacks to far more than the update announces.
    let mut bomb = ScreenUpdate::decode(&forged(1, &solid(0, 0, 10, 10), vec![]), None).unwrap();
    bomb.shapes.chunk = PixelCompressor::new(StreamKind::Shapes).compress(&vec![0; 1 << 22]);
    assert!(refused(&bomb.encode()));
    // A stream length beyond what any update of this screen can need.
    let mut huge = bomb.clone();
    huge.shapes.len = 1 << 30;
    assert!(refused(&huge.encode()));
    // The same bomb in the photo stream; a photo length beyond what is left of the bound.
    let mut photo_bomb =
        ScreenUpdate::decode(&forged(1, &solid(0, 0, 10, 10), vec![]), None).unwrap();
    photo_bomb.photo = StreamPiece {
        len: 16,
        chunk: PixelCompressor::new(StreamKind::Photo).compress(&vec![0; 1 << 22]),
    };
    assert!(refused(&photo_bomb.encode()));
    let mut photo_huge = photo_bomb.clone();
    photo_huge.photo.len = update::max_stream_len(100, 100) - photo_huge.shapes.len + 1;
    assert!(refused(&photo_huge.encode()));
    // A lossless rectangle whose pixels the photo stream does not hold; pixels left over in it.
    let mut lossless = solid(0, 0, 2, 2);
    lossless.truncate(6);
    lossless.push(0);
    let mut short = ScreenUpdate::decode(&forged(1, &lossless, vec![]), None).unwrap();
    short.photo = StreamPiece {
        len: 11,
        chunk: PixelCompressor::new(StreamKind::Photo).compress(&[1; 11]),
    };
    assert!(refused(&short.encode()));
    let mut exact = short.clone();
    exact.photo = StreamPiece {
        len: 12,
        chunk: PixelCompressor::new(StreamKind::Photo).compress(&[1; 12]),
    };
    assert!(!refused(&exact.encode()));
    let mut extra = short.clone();
    extra.photo = StreamPiece {
        len: 13,
        chunk: PixelCompressor::new(StreamKind::Photo).compress(&[1; 13]),
    };
    assert!(refused(&extra.encode()));
    // A shapes piece announced longer than the update.
    let mut cut = forged(1, &solid(0, 0, 10, 10), vec![]);
    cut.truncate(cut.len() - 3);
    assert!(refused(&cut));
    // An update that continues a stream the decoder never saw.
    let mut cont = bomb.clone();
    cont.reset = None;
    assert!(refused(&cont.encode()));
}

fn arb_edit() -> impl Strategy<Value = (u8, usize, usize, usize, usize, u32)> {
    (
        0u8..4,
        0usize..300,
        0usize..200,
        1usize..150,
        1usize..120,
        any::<u32>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any sequence of edits (fills, noise, text, scrolls) arrives exactly.
    #[test]
    fn every_sequence_of_changes_arrives_exactly(edits in proptest::collection::vec(arb_edit(), 1..12)) {
        let mut s = Screen::new(300, 200, text);
        let mut p = Pair::new();
        p.send(&s, &FrameChanges::default());
        for (kind, x, y, w, h, seed) in edits {
            match kind {
                0 => s.fill(x, y, w, h, |_, _| seed & 0xFF_FFFF),
                1 => s.fill(x, y, w, h, |xx, yy| (seed ^ (xx * 7919 + yy * 104729) as u32).wrapping_mul(2654435761) & 0xFF_FFFF),
                2 => s.fill(x, y, w, h, |xx, yy| text(xx + seed as usize % 50, yy)),
                _ => {
                    let dy = 1 + seed as usize % 40;
                    let old = s.clone();
                    s.fill(0, 0, 300, 200 - dy, |xx, yy| old.rgb[(yy + dy) * 300 + xx]);
                }
            }
            p.send(&s, &FrameChanges::default());
        }
        // Once the screen stands still, lossy regions are refined and everything is exact.
        p.send(&s, &FrameChanges::default());
        prop_assert!(!p.enc.needs_refinement());
        prop_assert!(p.fb.screen() == &s.rgb[..]);
    }

    #[test]
    fn decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut fb = Framebuffer::default();
        if ScreenDecoder::new().apply(&bytes, &mut fb).is_ok() {
            fb.show_cursor();
            fb.hide_cursor();
        }
    }

    #[test]
    fn mutated_updates_never_panic(flip in 0usize..4000, val in any::<u8>()) {
        let s = Screen::new(130, 70, |x, y| text(x, y) ^ (x * y) as u32);
        let data = s.bgrx();
        let frame = FrameView { width: 130, height: 70, stride: 520, bgrx: &data };
        let mut enc = ScreenEncoder::new();
        let first = enc.encode(&frame, &FrameChanges::default(), Some((5, 5)), None).unwrap();
        let mut bytes = first.clone();
        let i = flip % bytes.len();
        bytes[i] = val;
        let mut fb = Framebuffer::default();
        if ScreenDecoder::new().apply(&bytes, &mut fb).is_ok() {
            fb.show_cursor();
        }
    }
}
