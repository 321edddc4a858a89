//! Replays a recorded screen session through the encoder and the decoder: the bytes every
//! update costs, the encoder's time, and a check that the viewer's picture ends equal to the
//! last screen. The recording is a directory of `NNNNN.bgrx` files (packed BGRX, the screen's
//! width × height × 4 bytes) and `NNNNN.damage` files (one `x y w h` per line, or `none`), as a
//! test build of the agent writes them with `FERNHILFE_TEST_RECORD_FRAMES=DIR`.
//!
//! Run: `cargo run --release -p protocol --example replay_frames DIR [WIDTH HEIGHT]`
//! (default 1920 1080); `VERBOSE=1` prints every update.

// Test and benchmark code: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used)]

use protocol::screen::{FrameChanges, FrameView, Framebuffer, Rect, ScreenDecoder, ScreenEncoder};
use std::path::Path;
use std::time::Instant;

fn damage(path: &Path) -> Option<Vec<Rect>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|_| "none".into());
    (text.trim() != "none").then(|| {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let v: Vec<u16> = l
                    .split_whitespace()
                    .map(|x| x.parse().expect("damage: x y w h"))
                    .collect();
                Rect {
                    x: v[0],
                    y: v[1],
                    w: v[2],
                    h: v[3],
                }
            })
            .collect()
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let dir = args
        .next()
        .expect("usage: replay_frames DIR [WIDTH HEIGHT]");
    let w: usize = args.next().map_or(1920, |a| a.parse().expect("width"));
    let h: usize = args.next().map_or(1080, |a| a.parse().expect("height"));
    let verbose = std::env::var_os("VERBOSE").is_some();
    let mut frames: Vec<_> = std::fs::read_dir(&dir)
        .expect("a readable directory")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "bgrx"))
        .collect();
    frames.sort();
    assert!(!frames.is_empty(), "no .bgrx frames in {dir}");
    let (mut enc, mut dec, mut fb) = (
        ScreenEncoder::new(),
        ScreenDecoder::new(),
        Framebuffer::default(),
    );
    let (mut first, mut bytes, mut updates, mut encode_s) = (0, 0, 0, 0.0);
    let mut last = Vec::new();
    for (n, path) in frames.iter().enumerate() {
        let bgrx = std::fs::read(path).expect("a readable frame");
        assert_eq!(bgrx.len(), w * h * 4, "{}: not {w}×{h}", path.display());
        let damage = damage(&path.with_extension("damage"));
        let view = FrameView {
            width: w,
            height: h,
            stride: w * 4,
            bgrx: &bgrx,
        };
        let changes = FrameChanges {
            damage: damage.as_deref(),
            moves: &[],
            now: None,
        };
        let t = Instant::now();
        let update = enc.encode(&view, &changes, None, None);
        let took = t.elapsed().as_secs_f64();
        if let Some(u) = &update {
            dec.apply(u, &mut fb).expect("the decoder takes the update");
            if n == 0 {
                first = u.len();
                println!("first update: {} bytes, {:.1} ms", u.len(), took * 1e3);
            } else {
                bytes += u.len();
                updates += 1;
                encode_s += took;
                if verbose {
                    println!("{n}: {} bytes, {:.2} ms", u.len(), took * 1e3);
                }
            }
        }
        last = bgrx;
    }
    let exact = fb.pixels[..w * h]
        .iter()
        .zip(last.chunks_exact(4))
        .all(|(p, q)| *p == u32::from_le_bytes([q[0], q[1], q[2], 0]));
    println!(
        "{} frames; first update {first} bytes; then {updates} updates, {bytes} bytes, encoded in {:.0} ms; viewer's picture equals the last frame: {exact}",
        frames.len(),
        encode_s * 1e3
    );
    println!("{:?}", enc.stats());
    assert!(exact, "the viewer's picture differs from the last frame");
}
