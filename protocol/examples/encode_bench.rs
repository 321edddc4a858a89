//! The encoder alone, on one core: frames per second for a 1920×1080 screen that changes
//! entirely every frame (a photo panning while its brightness pulses, as in a film), and the
//! bytes per frame. Run: `cargo run --release -p protocol --example encode_bench [FRAMES]`.

// Test and benchmark code: a failed unwrap is a failed run.
#![allow(clippy::unwrap_used)]

use protocol::screen::{FrameChanges, FrameView, Framebuffer, ScreenDecoder, ScreenEncoder};
use std::time::Instant;

/// Frames before the tiles count as in motion and go lossy.
const WARM_UP: usize = 3;

fn main() {
    let frames: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(60)
        .max(WARM_UP + 1);
    let (w, h) = (1920usize, 1080usize);
    // A smooth, photo-like picture with fine noise, twice as wide as the screen to pan over.
    let pw = w * 2;
    let mut seed = 0x1234_5678u32;
    let photo: Vec<[u8; 3]> = (0..pw * h)
        .map(|i| {
            let (x, y) = ((i % pw) as f32, (i / pw) as f32);
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let n = (seed & 7) as f32;
            [
                (128.0 + 100.0 * (x / 170.0).sin() * (y / 230.0).cos() + n) as u8,
                (128.0 + 90.0 * (x / 310.0 + y / 190.0).sin() + n) as u8,
                (128.0 + 80.0 * (y / 120.0).sin() + n) as u8,
            ]
        })
        .collect();
    let mut frame = vec![0u8; w * h * 4];
    let mut enc = ScreenEncoder::new();
    let mut dec = ScreenDecoder::new();
    let mut fb = Framebuffer::default();
    let (mut encode_s, mut decode_s, mut bytes) = (0.0, 0.0, 0usize);
    for f in 0..frames + WARM_UP {
        let shift = f * 12;
        let gain = 200 + (f % 16) as u32 * 4;
        for y in 0..h {
            for x in 0..w {
                let p = photo[y * pw + (x + shift) % pw];
                let px = &mut frame[(y * w + x) * 4..][..4];
                for c in 0..3 {
                    px[2 - c] = (p[c] as u32 * gain / 256).min(255) as u8;
                }
            }
        }
        let view = FrameView {
            width: w,
            height: h,
            stride: w * 4,
            bgrx: &frame,
        };
        let t = Instant::now();
        let update = enc
            .encode(&view, &FrameChanges::default(), None, None)
            .expect("every frame changes");
        let took = t.elapsed().as_secs_f64();
        let t = Instant::now();
        dec.apply(&update, &mut fb).expect("own update decodes");
        // The first frames go lossless until the tiles count as in motion: steady state only.
        if f >= WARM_UP {
            encode_s += took;
            decode_s += t.elapsed().as_secs_f64();
            bytes += update.len();
        }
    }
    println!(
        "1920x1080, every pixel changes, {frames} frames after {WARM_UP} to warm up: encode {:.1} ms/frame ({:.1} frames/s on one core), decode {:.1} ms/frame, {:.0} kB/frame; {:?}",
        encode_s * 1000.0 / frames as f64,
        frames as f64 / encode_s,
        decode_s * 1000.0 / frames as f64,
        bytes as f64 / frames as f64 / 1000.0,
        enc.stats()
    );
}
