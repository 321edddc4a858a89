//! The capture thread: captures when the screen changed, encodes against what the viewer has,
//! and hands updates to the session. It never queues: with [`MAX_IN_FLIGHT`] updates not yet
//! acknowledged it waits — woken by the acknowledgement, not by a timer — then encodes what is
//! on screen at that moment (latest frame wins). So the link's own round trip and throughput
//! set the pace: on a slow link fewer, larger updates travel, each showing the newest screen.

use crate::capture::{PlatformScreen, ScreenSource};
use crate::consent_gate::ConsentGate;
use protocol::screen::ScreenEncoder;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// Updates sent but not acknowledged before the agent stops encoding new ones: two, so the
/// next update is encoded while the last one travels, and never more than one waits behind it.
pub const MAX_IN_FLIGHT: u64 = 2;
/// How often a capture thread whose viewing was withdrawn looks whether it is granted again.
const GATE_POLL: Duration = Duration::from_millis(10);
/// Longest wait for a change before the loop looks at its own state again.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// While lossy regions wait for their exact picture: how often to look whether they are due.
const REFINE_POLL: Duration = Duration::from_millis(50);

/// An encoded screen update and its sequence number.
pub type EncodedUpdate = (u64, Vec<u8>);

/// Shared between the capture thread and the session: what was produced, written and
/// acknowledged, and whether the session is over.
#[derive(Clone, Default)]
pub struct ScreenPacing {
    state: Arc<(Mutex<PacingState>, Condvar)>,
}

#[derive(Default)]
struct PacingState {
    /// Highest sequence number the viewer acknowledged.
    acked: u64,
    /// Highest sequence number written to the viewer; acknowledging more is a violation.
    written: u64,
    stop: bool,
}

/// An acknowledgement for an update that was never written: the viewer lies.
#[derive(Debug)]
pub struct AckBeyondWritten;

impl ScreenPacing {
    fn lock(&self) -> std::sync::MutexGuard<'_, PacingState> {
        self.state.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The writer wrote update `seq` to the viewer.
    pub fn written(&self, seq: u64) {
        let mut s = self.lock();
        s.written = s.written.max(seq);
    }

    /// The viewer acknowledged update `seq`; wakes the capture thread.
    pub fn acknowledged(&self, seq: u64) -> Result<(), AckBeyondWritten> {
        let mut s = self.lock();
        if seq > s.written {
            return Err(AckBeyondWritten);
        }
        s.acked = s.acked.max(seq);
        self.state.1.notify_all();
        Ok(())
    }

    /// Ends the capture loop.
    pub fn stop(&self) {
        self.lock().stop = true;
        self.state.1.notify_all();
    }

    fn stopped(&self) -> bool {
        self.lock().stop
    }

    /// Waits until fewer than [`MAX_IN_FLIGHT`] of the updates up to `produced` await their
    /// acknowledgement, at most `limit`; `false` if there is still no room (or it stopped).
    fn wait_for_room(&self, produced: u64, limit: Duration) -> bool {
        let guard = self.lock();
        let (s, _) = self
            .state
            .1
            .wait_timeout_while(guard, limit, |s| {
                !s.stop && produced.saturating_sub(s.acked) >= MAX_IN_FLIGHT
            })
            .unwrap_or_else(|e| e.into_inner());
        !s.stop && produced.saturating_sub(s.acked) < MAX_IN_FLIGHT
    }
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
    let mut produced = 0u64;
    let mut first = true;
    while !pacing.stopped() {
        if !gate.may_view() {
            std::thread::sleep(GATE_POLL);
            continue;
        }
        if !pacing.wait_for_room(produced, Duration::from_millis(100)) {
            continue;
        }
        // Lossy regions (video) are sent again exactly once they stand still, also when
        // nothing else changes: then the thread looks again soon, not only on damage.
        let refine = encoder.needs_refinement();
        let wait = if refine { REFINE_POLL } else { IDLE_WAIT };
        if !screen.wait_for_change(wait) && !first && !refine {
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
            produced = encoder.last_seq();
            if tx.blocking_send((produced, bytes)).is_err() {
                break;
            }
        }
    }
    let s = encoder.stats();
    tracing::info!(
        updates = s.updates,
        bytes = s.bytes,
        copies = s.copies,
        solid = s.solid_rects,
        palette = s.palette_rects,
        lossless = s.lossless_rects,
        lossy = s.lossy_rects,
        refined = s.refined_rects,
        "screen sharing ended"
    );
}
