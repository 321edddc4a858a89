//! Test builds only: writes every captured frame and its damage to a directory, so a real
//! session's screens can be replayed through the codec offline
//! (`protocol/examples/replay_frames.rs`) and two encoders compared on exactly the same input.
//! Release builds have no way to write the screen to disk.

use protocol::screen::{FrameChanges, FrameView};
use std::path::PathBuf;

/// Where `FERNHILFE_TEST_RECORD_FRAMES` asks frames to go, and how many were written.
pub(crate) struct FrameRecorder {
    dir: PathBuf,
    written: usize,
}

impl FrameRecorder {
    /// A recorder if the environment asks for one.
    pub(crate) fn from_env() -> Option<Self> {
        let dir = std::env::var_os("FERNHILFE_TEST_RECORD_FRAMES").filter(|d| !d.is_empty())?;
        let dir = PathBuf::from(dir);
        Some(Self { dir, written: 0 })
    }

    /// Writes `NNNNN.bgrx` (packed rows) and `NNNNN.damage` (`x y w h` per line, or `none`).
    pub(crate) fn record(&mut self, frame: &FrameView<'_>, changes: &FrameChanges<'_>) {
        let name = format!("{:05}", self.written);
        self.written += 1;
        let mut pixels = Vec::with_capacity(frame.width * frame.height * 4);
        for y in 0..frame.height {
            pixels.extend_from_slice(&frame.bgrx[y * frame.stride..][..frame.width * 4]);
        }
        let damage = changes.damage.map_or_else(
            || "none".to_string(),
            |d| {
                d.iter()
                    .map(|r| format!("{} {} {} {}\n", r.x, r.y, r.w, r.h))
                    .collect()
            },
        );
        let result = std::fs::write(self.dir.join(format!("{name}.bgrx")), pixels)
            .and_then(|()| std::fs::write(self.dir.join(format!("{name}.damage")), damage));
        if let Err(e) = result {
            tracing::warn!(error = %e, "cannot record a frame");
        }
    }
}
