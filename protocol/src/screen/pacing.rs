//! Latest frame wins, on the wire: how many updates may travel before the agent waits for the
//! viewer, and which updates the viewer must acknowledge.
//!
//! An acknowledgement is a message of its own, and the agent's QUIC stack answers every
//! message the viewer sends with an ACK packet of ~36 bytes, so an acknowledged keystroke costs
//! the agent two packets instead of one (measured: 94 ACK-only packets for 92 keystrokes, a
//! third of the typing bytes). So only updates that matter for pacing ask for one: those larger
//! than a packet, and every [`MAX_SMALL_UNASKED`]-th small one (or the one that brings the
//! small ones since the last ask to [`MAX_SMALL_UNASKED_BYTES`]), so a run of small updates is
//! paced by the link too. The agent encodes a new update only while fewer than
//! [`MAX_ASKED_IN_FLIGHT`] asking updates await their acknowledgement; what a slow link holds
//! is therefore bounded (two asking updates and the small ones between them), and the next
//! update shows the screen as it is when there is room, never a queued old one.
//!
//! Pure: the agent's capture thread and writer task call it under a lock.

use super::update::request_ack;
use std::collections::VecDeque;

/// Updates that asked for an acknowledgement and may be on their way at once: two, so the next
/// one is encoded while the last one travels, and never more than one waits behind it.
pub const MAX_ASKED_IN_FLIGHT: usize = 2;
/// Updates up to this size ask for no acknowledgement: they fit one packet, so the ACK packet an
/// acknowledgement costs would be as large as the update itself.
pub const SMALL_UPDATE_BYTES: usize = 1_000;
/// At most this many small updates go out in a row without asking (three seconds of typing at
/// ten keys a second: three acknowledgements per 92 keys instead of 92).
pub const MAX_SMALL_UNASKED: u32 = 32;
/// ... and at most this many bytes of them, so even a link flooded with small updates holds no
/// more than a few kilobytes beyond the asking ones (16 ms at 2 Mbit/s).
pub const MAX_SMALL_UNASKED_BYTES: usize = 4_000;

/// The agent's side of the pacing.
#[derive(Debug, Default)]
pub struct UpdatePacing {
    /// Sequence numbers of updates that asked, not yet acknowledged, oldest first.
    asked: VecDeque<u64>,
    /// Small updates since the last asking one, and their bytes.
    unasked: u32,
    unasked_bytes: usize,
    /// Highest sequence number written to the viewer; an acknowledgement beyond it is a lie.
    written: u64,
    /// Highest sequence number the viewer acknowledged.
    acked: u64,
}

/// An acknowledgement for an update that was never written: the viewer lies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("acknowledgement for screen update {0}, which was never sent")]
pub struct AckBeyondWritten(pub u64);

impl UpdatePacing {
    /// Whether a new update may be encoded now.
    pub fn has_room(&self) -> bool {
        self.asked.len() < MAX_ASKED_IN_FLIGHT
    }

    /// Takes the encoded update `seq` and decides whether it asks for an acknowledgement; if so,
    /// sets the flag in its header. Says whether it asks.
    pub fn encoded(&mut self, seq: u64, update: &mut [u8]) -> bool {
        let ask = update.len() > SMALL_UPDATE_BYTES
            || self.unasked + 1 >= MAX_SMALL_UNASKED
            || self.unasked_bytes + update.len() >= MAX_SMALL_UNASKED_BYTES;
        if ask {
            request_ack(update);
            self.asked.push_back(seq);
            self.unasked = 0;
            self.unasked_bytes = 0;
        } else {
            self.unasked += 1;
            self.unasked_bytes += update.len();
        }
        ask
    }

    /// Update `seq` was written to the viewer.
    pub fn written(&mut self, seq: u64) {
        self.written = self.written.max(seq);
    }

    /// Update `seq` was not written after all (viewing was withdrawn on its way): nobody will
    /// acknowledge it.
    pub fn dropped(&mut self, seq: u64) {
        self.asked.retain(|&s| s != seq);
    }

    /// The viewer acknowledged every update up to `seq`.
    pub fn acknowledged(&mut self, seq: u64) -> Result<(), AckBeyondWritten> {
        if seq > self.written {
            return Err(AckBeyondWritten(seq));
        }
        self.acked = self.acked.max(seq);
        while self.asked.front().is_some_and(|&s| s <= self.acked) {
            self.asked.pop_front();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::screen::update::asks_ack;

    fn update(len: usize) -> Vec<u8> {
        vec![0; len]
    }

    #[test]
    fn small_updates_ask_only_every_32nd_time() {
        let mut p = UpdatePacing::default();
        let mut asked = Vec::new();
        for seq in 1..=96 {
            let mut u = update(40);
            assert!(p.has_room(), "seq {seq}");
            if p.encoded(seq, &mut u) {
                assert!(asks_ack(&u));
                asked.push(seq);
            } else {
                assert_eq!(u[0], 0);
            }
            p.written(seq);
            if seq % 32 == 0 {
                p.acknowledged(seq).unwrap();
            }
        }
        assert_eq!(asked, [32, 64, 96]);
    }

    #[test]
    fn small_updates_ask_once_their_bytes_add_up() {
        let mut p = UpdatePacing::default();
        let asked: Vec<u64> = (1..=20)
            .filter(|&seq| p.encoded(seq, &mut update(900)))
            .collect();
        // 900 bytes each: the fifth would make 4,500 unasked bytes.
        assert_eq!(asked, [5, 10, 15, 20]);
    }

    #[test]
    fn large_updates_ask_and_two_unanswered_ones_stop_the_encoder() {
        let mut p = UpdatePacing::default();
        for seq in 1..=2 {
            assert!(p.has_room());
            assert!(p.encoded(seq, &mut update(SMALL_UPDATE_BYTES + 1)));
            p.written(seq);
        }
        assert!(!p.has_room(), "two large updates in flight");
        p.acknowledged(1).unwrap();
        assert!(p.has_room());
        assert!(p.encoded(3, &mut update(50_000)));
        assert!(!p.has_room());
        // Cumulative: one acknowledgement answers everything before it.
        p.written(3);
        p.acknowledged(3).unwrap();
        assert!(p.has_room());
    }

    #[test]
    fn a_flood_of_small_updates_is_paced_too() {
        let mut p = UpdatePacing::default();
        let mut seq = 0;
        while p.has_room() {
            seq += 1;
            p.encoded(seq, &mut update(100));
            p.written(seq);
            assert!(seq < 100, "never stopped");
        }
        assert_eq!(seq, 2 * MAX_SMALL_UNASKED as u64);
        let mut p = UpdatePacing::default();
        let mut bytes = 0;
        while p.has_room() {
            p.encoded(1, &mut update(SMALL_UPDATE_BYTES));
            bytes += SMALL_UPDATE_BYTES;
        }
        assert!(
            bytes <= 2 * MAX_SMALL_UNASKED_BYTES,
            "{bytes} bytes in flight"
        );
    }

    #[test]
    fn an_acknowledgement_beyond_what_was_written_is_refused() {
        let mut p = UpdatePacing::default();
        p.encoded(1, &mut update(5_000));
        assert_eq!(p.acknowledged(1), Err(AckBeyondWritten(1)));
        p.written(1);
        assert_eq!(p.acknowledged(1), Ok(()));
        assert_eq!(p.acknowledged(2), Err(AckBeyondWritten(2)));
    }

    #[test]
    fn a_dropped_update_does_not_block_the_encoder() {
        let mut p = UpdatePacing::default();
        p.encoded(1, &mut update(5_000));
        p.encoded(2, &mut update(5_000));
        assert!(!p.has_room());
        p.dropped(1);
        p.dropped(2);
        assert!(p.has_room());
    }
}
