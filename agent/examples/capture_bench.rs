//! Benchmark: how long one full-screen capture takes with the agent's own capture backend
//! (GDI on Windows, also under Wine; XShm on X11). Prints one line:
//! `capture WIDTHxHEIGHT frames=N p50_ms=… p99_ms=… mean_ms=…`.
//!
//! Usage: capture_bench [FRAMES]   (default 200). bench/wine_capture.sh runs it side by side.

// The agent is a binary crate: the benchmark compiles the agent's capture module itself, so it
// measures exactly the code the agent runs.
#[allow(dead_code)]
#[path = "../src/capture/mod.rs"]
mod capture;

use capture::{PlatformScreen, ScreenSource};
use std::time::Instant;

fn main() -> std::io::Result<()> {
    let frames: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(200);
    let mut screen = PlatformScreen::open()?;
    let (w, h) = screen.size();
    let mut checksum = 0u64;
    // One capture to warm up (first use maps shared memory or the DIB section).
    screen.with_frame(&mut |f, _| checksum ^= f.bgrx[0] as u64)?;
    let mut times = Vec::with_capacity(frames);
    for _ in 0..frames {
        let start = Instant::now();
        // Touch the whole frame so no backend can skip the copy.
        screen.with_frame(&mut |f, _| {
            checksum = checksum.wrapping_add(f.bgrx.iter().step_by(4096).map(|b| *b as u64).sum())
        })?;
        times.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let pct = |p: f64| times[((times.len() - 1) as f64 * p).round() as usize];
    println!(
        "capture {w}x{h} frames={frames} p50_ms={:.2} p99_ms={:.2} mean_ms={:.2} checksum={checksum}",
        pct(0.5),
        pct(0.99),
        times.iter().sum::<f64>() / times.len() as f64
    );
    Ok(())
}
