//! The capture thread: captures when the screen changed, encodes against what the viewer has,
//! and hands updates to the session. It never queues: with [`MAX_IN_FLIGHT`] updates not yet
//! acknowledged it waits, then encodes what is on screen at that moment (latest frame wins).

use crate::capture::{PlatformScreen, ScreenSource};
use crate::consent_gate::ConsentGate;
use protocol::screen::ScreenEncoder;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// Updates sent but not acknowledged before the agent stops encoding new ones.
pub const MAX_IN_FLIGHT: u64 = 2;

/// An encoded screen update and its sequence number.
pub type EncodedUpdate = (u64, Vec<u8>);

/// Shared between the capture thread and the session.
#[derive(Clone, Default)]
pub struct ScreenPacing {
    /// Highest sequence number the viewer acknowledged.
    pub acked: Arc<AtomicU64>,
    /// Highest sequence number written to the viewer; acknowledging more is a violation.
    pub sent: Arc<AtomicU64>,
    /// Set when the session ends.
    pub stop: Arc<AtomicBool>,
}

/// The capture thread, started before the session so a screen that cannot be captured is
/// reported at once; it captures nothing until [`CaptureThread::stream`] starts it.
pub struct CaptureThread {
    size: (usize, usize),
    start: std::sync::mpsc::Sender<(ConsentGate, ScreenPacing, mpsc::Sender<EncodedUpdate>)>,
}

impl CaptureThread {
    /// Opens the platform screen on a thread of its own (capturers are not `Send`).
    pub fn open() -> anyhow::Result<Self> {
        let (size_tx, size_rx) = std::sync::mpsc::channel();
        let (start, start_rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("capture".into())
            .spawn(move || {
                let screen = match PlatformScreen::open() {
                    Ok(s) => {
                        let _ = size_tx.send(Ok(s.size()));
                        s
                    }
                    Err(e) => {
                        let _ = size_tx.send(Err(e));
                        return;
                    }
                };
                if let Ok((gate, pacing, tx)) = start_rx.recv() {
                    capture_loop(screen, gate, pacing, tx);
                }
            })?;
        let size = size_rx.recv()?.map_err(|e| {
            anyhow::anyhow!(
                "cannot capture the screen: {e} / Bildschirm kann nicht aufgenommen werden"
            )
        })?;
        Ok(Self { size, start })
    }

    /// Screen size in pixels.
    pub fn size(&self) -> (usize, usize) {
        self.size
    }

    /// Starts capturing; encoded updates arrive on the returned channel.
    pub fn stream(self, gate: ConsentGate, pacing: ScreenPacing) -> mpsc::Receiver<EncodedUpdate> {
        let (tx, rx) = mpsc::channel(1);
        let _ = self.start.send((gate, pacing, tx));
        rx
    }
}

fn capture_loop(
    mut screen: PlatformScreen,
    gate: ConsentGate,
    pacing: ScreenPacing,
    tx: mpsc::Sender<EncodedUpdate>,
) {
    let mut encoder = ScreenEncoder::new();
    let mut sent = 0u64;
    let mut first = true;
    while !pacing.stop.load(Ordering::Relaxed) {
        if !gate.may_view()
            || sent.saturating_sub(pacing.acked.load(Ordering::SeqCst)) >= MAX_IN_FLIGHT
        {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        if !screen.wait_for_change(Duration::from_millis(100)) && !first {
            continue;
        }
        let cursor = screen.cursor();
        let mut update = None;
        if let Err(e) = screen.with_frame(&mut |f, changes| {
            update = encoder.encode(f, changes, cursor.position, cursor.shape.as_ref())
        }) {
            tracing::warn!(error = %e, "screen capture failed");
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        first = false;
        if let Some(bytes) = update {
            // Consent may have changed while encoding: check again at the last moment.
            if !gate.may_view() {
                encoder.reset();
                continue;
            }
            sent = encoder.last_seq();
            if tx.blocking_send((sent, bytes)).is_err() {
                break;
            }
        }
    }
}
