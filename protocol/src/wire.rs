//! Bounded binary encoding: a cursor that checks every length before it reads, and the
//! length-prefixed framing used on every stream.

use thiserror::Error;

/// Why bytes from a peer could not be decoded; the peer is disconnected with this reason.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("message truncated: needed {needed} more bytes")]
    Truncated { needed: usize },
    #[error("{what} too large: {len} > {max}")]
    TooLarge {
        what: &'static str,
        len: usize,
        max: usize,
    },
    #[error("unknown {what} tag {tag}")]
    UnknownTag { what: &'static str, tag: u8 },
    #[error("invalid {what}: {reason}")]
    Invalid {
        what: &'static str,
        reason: &'static str,
    },
    #[error("{0} trailing bytes after message")]
    Trailing(usize),
}

/// Refuses a whole message longer than `max` before any field is read.
pub fn check_len(what: &'static str, buf: &[u8], max: usize) -> Result<(), DecodeError> {
    if buf.len() > max {
        return Err(DecodeError::TooLarge {
            what,
            len: buf.len(),
            max,
        });
    }
    Ok(())
}

/// Reads values from a byte slice, never past its end.
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    /// Starts reading at the beginning of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Takes exactly `n` bytes.
    pub fn bytes(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated {
                needed: n - self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// Takes a fixed-size array.
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N)?);
        Ok(out)
    }

    /// Takes one byte.
    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.bytes(1)?[0])
    }

    /// Takes a big-endian u16.
    pub fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    /// Takes a big-endian i16.
    pub fn i16(&mut self) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    /// Takes a big-endian u32.
    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    /// Takes a big-endian u64.
    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    /// Takes a boolean encoded as 0 or 1.
    pub fn bool(&mut self, what: &'static str) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError::Invalid {
                what,
                reason: "boolean is neither 0 nor 1",
            }),
        }
    }

    /// Takes a u32-length-prefixed byte string of at most `max` bytes.
    pub fn blob(&mut self, what: &'static str, max: usize) -> Result<&'a [u8], DecodeError> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(DecodeError::TooLarge { what, len, max });
        }
        self.bytes(len)
    }

    /// Takes a u16-length-prefixed UTF-8 string of at most `max` bytes.
    pub fn string(&mut self, what: &'static str, max: usize) -> Result<String, DecodeError> {
        let len = self.u16()? as usize;
        if len > max {
            return Err(DecodeError::TooLarge { what, len, max });
        }
        let raw = self.bytes(len)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| DecodeError::Invalid {
                what,
                reason: "not UTF-8",
            })
    }

    /// Fails unless every byte was consumed: trailing bytes mean a confused or hostile peer.
    pub fn finish(self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::Trailing(self.buf.len()))
        }
    }
}

/// Appends values in the encoding [`Reader`] reads.
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }
    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    /// Appends a big-endian u16.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Appends a big-endian i16.
    pub fn i16(&mut self, v: i16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Appends a big-endian u32.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Appends a big-endian u64.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// Appends a boolean as 0 or 1.
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u8(v as u8)
    }
    /// Appends raw bytes with no length.
    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
    /// Appends a u32-length-prefixed byte string.
    pub fn blob(&mut self, v: &[u8]) -> &mut Self {
        self.u32(v.len() as u32).bytes(v)
    }
    /// Appends a u16-length-prefixed string; callers keep strings under their decode bound.
    pub fn string(&mut self, v: &str) -> &mut Self {
        let len = v.len().min(u16::MAX as usize);
        self.u16(len as u16).bytes(&v.as_bytes()[..len])
    }
    /// The encoded bytes.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// Largest frame any Fernhilfe stream carries; a screen update of a 8K screen in raw tiles
/// stays below it, and a peer that announces more is disconnected before we allocate.
pub const MAX_FRAME_LEN: usize = 64 * 1024 * 1024;

/// The 4-byte length that precedes a message of `len` bytes on a stream.
pub fn frame_prefix(len: usize) -> [u8; 4] {
    (len as u32).to_be_bytes()
}

/// Prepends the 4-byte length to one message.
pub fn encode_frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + payload.len());
    out.extend_from_slice(&frame_prefix(payload.len()));
    out.extend_from_slice(payload);
    out
}

/// Splits a byte stream into length-prefixed frames; sans-IO, fed with whatever arrived.
///
/// Frames are taken from a read offset, and the consumed front of the buffer is dropped once
/// per [`FrameDecoder::push`], not once per frame: a peer that packs thousands of tiny frames
/// into one read costs one move of the buffer, not one per frame (which grew with the square
/// of the read).
pub struct FrameDecoder {
    max_len: usize,
    buf: Vec<u8>,
    /// Where the next frame starts in `buf`.
    start: usize,
    /// Bytes moved to the front by compaction so far (what a tiny-frame flood costs).
    moved: u64,
}

impl FrameDecoder {
    /// A decoder that refuses frames longer than `max_len` (at most [`MAX_FRAME_LEN`]).
    pub fn new(max_len: usize) -> Self {
        Self {
            max_len: max_len.min(MAX_FRAME_LEN),
            buf: Vec::new(),
            start: 0,
            moved: 0,
        }
    }

    /// Announced length of the frame now being received, once its prefix is in.
    pub fn pending_len(&self) -> Result<Option<usize>, DecodeError> {
        let Some(p) = self.buf.get(self.start..self.start + 4) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes([p[0], p[1], p[2], p[3]]) as usize;
        if len > self.max_len {
            return Err(DecodeError::TooLarge {
                what: "frame",
                len,
                max: self.max_len,
            });
        }
        Ok(Some(len))
    }

    /// Adds received bytes; the frame length is checked as soon as its prefix is in, so a
    /// peer cannot make us buffer more than one frame's worth.
    pub fn push(&mut self, data: &[u8]) -> Result<(), DecodeError> {
        if self.start > 0 {
            self.moved += (self.buf.len() - self.start) as u64;
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(data);
        self.pending_len().map(|_| ())
    }

    /// Takes the next complete frame, if one is in.
    pub fn next_frame(&mut self) -> Result<Option<Vec<u8>>, DecodeError> {
        match self.pending_len()? {
            Some(len) if self.buf.len() - self.start >= 4 + len => {
                let body = self.start + 4;
                let frame = self.buf[body..body + len].to_vec();
                self.start = body + len;
                if self.start == self.buf.len() {
                    // All consumed: nothing to move.
                    self.buf.clear();
                    self.start = 0;
                }
                Ok(Some(frame))
            }
            _ => Ok(None),
        }
    }

    /// Bytes moved within the buffer so far; bounded by what was received, whatever the
    /// frames' sizes.
    pub fn bytes_moved(&self) -> u64 {
        self.moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn frames_split_across_pushes() {
        let mut d = FrameDecoder::new(100);
        let mut bytes = encode_frame(b"hello");
        bytes.extend(encode_frame(b""));
        bytes.extend(encode_frame(b"world"));
        for chunk in bytes.chunks(3) {
            d.push(chunk).unwrap();
        }
        assert_eq!(d.next_frame().unwrap().unwrap(), b"hello");
        assert_eq!(d.next_frame().unwrap().unwrap(), b"");
        assert_eq!(d.next_frame().unwrap().unwrap(), b"world");
        assert_eq!(d.next_frame().unwrap(), None);
    }

    /// 64 KiB of empty frames in one read, as a flooding peer sends them: taking them out
    /// moves each received byte at most once, where a move per frame moved 512 MiB.
    #[test]
    fn a_read_of_tiny_frames_costs_one_move() {
        let mut d = FrameDecoder::new(100);
        let mut total = 0u64;
        for _ in 0..4 {
            let mut read: Vec<u8> = std::iter::repeat_n(encode_frame(b""), 16 * 1024)
                .flatten()
                .collect();
            // Half a frame at the end, so something is left to move.
            read.extend_from_slice(&[0, 0]);
            total += read.len() as u64;
            d.push(&read).unwrap();
            let mut n = 0;
            while d.next_frame().unwrap().is_some() {
                n += 1;
            }
            assert!(n >= 16 * 1024 - 1);
        }
        assert!(
            d.bytes_moved() <= total,
            "moved {} bytes for {total} received",
            d.bytes_moved()
        );
    }

    #[test]
    fn oversized_frame_is_refused_before_buffering() {
        let mut d = FrameDecoder::new(10);
        assert!(matches!(
            d.push(&1000u32.to_be_bytes()),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn reader_rejects_truncation_and_trailing() {
        let mut r = Reader::new(&[0, 5, b'a']);
        assert!(matches!(
            r.string("s", 10),
            Err(DecodeError::Truncated { .. })
        ));
        let mut r = Reader::new(&[1, 2]);
        r.u8().unwrap();
        assert_eq!(r.finish(), Err(DecodeError::Trailing(1)));
    }

    proptest! {
        #[test]
        fn frame_decoder_never_panics(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..16)) {
            let mut d = FrameDecoder::new(256);
            for c in chunks {
                if d.push(&c).is_err() { break; }
                while let Ok(Some(f)) = d.next_frame() { prop_assert!(f.len() <= 256); }
            }
        }
    }
}
