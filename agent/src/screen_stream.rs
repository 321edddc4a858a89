//! The capture thread: captures when the screen changed, encodes against what the viewer has,
//! and hands updates to the session. It never queues: while the viewer has not acknowledged
//! enough ([`UpdatePacing`]) it waits — woken by the acknowledgement, not by a timer — then
//! encodes what is on screen at that moment (latest frame wins). So the link's own round trip
//! and throughput set the pace: on a slow link fewer, larger updates travel, each showing the
//! newest screen.

use crate::capture::{PlatformScreen, ScreenSource};
use crate::consent_gate::ConsentGate;
use protocol::screen::pacing::AckBeyondWritten;
use protocol::screen::{ScreenEncoder, UpdatePacing};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;

/// How often a capture thread whose viewing was withdrawn looks whether it is granted again.
const GATE_POLL: Duration = Duration::from_millis(10);
/// Longest wait for a change before the loop looks at its own state again.
const IDLE_WAIT: Duration = Duration::from_millis(100);
/// While lossy regions wait for their exact picture: how often to look whether they are due.
const REFINE_POLL: Duration = Duration::from_millis(50);

/// An encoded screen update and its sequence number.
pub(crate) type EncodedUpdate = (u64, Vec<u8>);

/// Shared between the capture thread and the session: the pacing state and whether the
/// session is over.
#[derive(Clone, Default)]
pub(crate) struct ScreenPacing {
    state: Arc<(Mutex<PacingState>, Condvar)>,
}

#[derive(Default)]
struct PacingState {
    pacing: UpdatePacing,
    stop: bool,
}

impl ScreenPacing {
    fn lock(&self) -> std::sync::MutexGuard<'_, PacingState> {
        self.state.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The encoder made update `seq`: decides (and marks in it) whether the viewer is to
    /// acknowledge it.
    fn encoded(&self, seq: u64, update: &mut [u8]) {
        self.lock().pacing.encoded(seq, update);
    }

    /// The writer wrote update `seq` to the viewer.
    pub(crate) fn written(&self, seq: u64) {
        self.lock().pacing.written(seq);
    }

    /// The writer did not write update `seq` (viewing was withdrawn on its way).
    pub(crate) fn dropped(&self, seq: u64) {
        self.lock().pacing.dropped(seq);
        self.state.1.notify_all();
    }

    /// The viewer acknowledged the updates up to `seq`; wakes the capture thread.
    pub(crate) fn acknowledged(&self, seq: u64) -> Result<(), AckBeyondWritten> {
        self.lock().pacing.acknowledged(seq)?;
        self.state.1.notify_all();
        Ok(())
    }

    /// Ends the capture loop.
    pub(crate) fn stop(&self) {
        self.lock().stop = true;
        self.state.1.notify_all();
    }

    fn stopped(&self) -> bool {
        self.lock().stop
    }

    /// Waits until a new update may be encoded, at most `limit`; `false` if there is still no
    /// room (or it stopped).
    fn wait_for_room(&self, limit: Duration) -> bool {
        let guard = self.lock();
        let (s, _) = self
            .state
            .1
            .wait_timeout_while(guard, limit, |s| !s.stop && !s.pacing.has_room())
            .unwrap_or_else(|e| e.into_inner());
        !s.stop && s.pacing.has_room()
    }
}

/// The capture thread, started before the session so a screen that cannot be captured is
/// reported at once; it captures nothing until [`CaptureThread::stream`] starts it.
pub(crate) struct CaptureThread {
    size: (usize, usize),
    start: std::sync::mpsc::Sender<(ConsentGate, ScreenPacing, mpsc::Sender<EncodedUpdate>)>,
}

impl CaptureThread {
    /// Opens the platform screen on a thread of its own (capturers are not `Send`).
    pub(crate) fn open() -> anyhow::Result<Self> {
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
    pub(crate) fn size(&self) -> (usize, usize) {
        self.size
    }

    /// Starts capturing; encoded updates arrive on the returned channel.
    pub(crate) fn stream(
        self,
        gate: ConsentGate,
        pacing: ScreenPacing,
    ) -> mpsc::Receiver<EncodedUpdate> {
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
    let mut first = true;
    #[cfg(feature = "test-aids")]
    let mut recorder = crate::frame_recorder::FrameRecorder::from_env();
    while !pacing.stopped() {
        if !gate.may_view() {
            std::thread::sleep(GATE_POLL);
            continue;
        }
        if !pacing.wait_for_room(Duration::from_millis(100)) {
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
            #[cfg(feature = "test-aids")]
            if let Some(r) = recorder.as_mut() {
                r.record(f, changes);
            }
            update = encoder.encode(f, changes, cursor.position, cursor.shape.as_ref())
        }) {
            tracing::warn!(error = %e, "screen capture failed");
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        first = false;
        if let Some(mut bytes) = update {
            // Consent may have changed while encoding: check again at the last moment.
            if !gate.may_view() {
                encoder.reset();
                continue;
            }
            let seq = encoder.last_seq();
            pacing.encoded(seq, &mut bytes);
            if tx.blocking_send((seq, bytes)).is_err() {
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
