//! Messages of the end-to-end session on its control stream (the screen travels on its own
//! stream, see [`crate::screen`]). The relay never sees these: they are inside the end-to-end
//! QUIC connection.

use crate::consent::Grant;
use crate::wire::{check_len, DecodeError, Reader, Writer};

/// Largest control message.
pub const MAX_CONTROL_LEN: usize = 1024;
/// Longest text typed in one message.
pub const MAX_TEXT_LEN: usize = 256;
/// Most wheel notches one event may scroll on each axis. A real wheel flicked hard gives a few
/// per window frame; more is a viewer asking for a long injection (on X11 each notch is a
/// round trip), which the decoder refuses as a protocol violation.
pub const MAX_WHEEL_NOTCHES: i16 = 16;

/// A mouse button.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MouseButton {
    Left,
    Middle,
    Right,
}

/// A key that is not a character.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedKey {
    Return,
    Backspace,
    Tab,
    Escape,
    Delete,
    Insert,
    Left,
    Right,
    Up,
    Down,
    Home,
    End,
    PageUp,
    PageDown,
    Space,
    Shift,
    Control,
    Alt,
    Meta,
    CapsLock,
    /// F1 to F12.
    F(u8),
}

/// A key on the keyboard, as the viewer saw it pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    Named(NamedKey),
    /// A character key, used with modifiers (Ctrl+C); plain text travels as [`InputEvent::Text`].
    Char(char),
}

/// One input event from the viewer, in the coordinates of the remote screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputEvent {
    PointerMove { x: u16, y: u16 },
    Button { button: MouseButton, pressed: bool },
    Wheel { dx: i16, dy: i16 },
    Key { key: Key, pressed: bool },
    Text(String),
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The person at the PC clicked *Beenden* or closed the indicator.
    EndedAtAgent,
    /// The support technician ended it.
    EndedByViewer,
    /// The person at the PC declined, or closed the consent dialog.
    ConsentDenied,
    /// The other side sent something it must not.
    ProtocolViolation,
    /// An error on the other side.
    Failure,
    /// Nobody used the session for the agent's idle limit, and nobody at the PC chose to go on.
    IdleTimeout,
    /// The session reached the agent's longest duration, and nobody at the PC chose to go on.
    MaxDuration,
}

/// Control messages from viewer to agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViewerMessage {
    /// Input, injected only while *control* is granted.
    Input(InputEvent),
    /// The viewer applied the screen update with this sequence number.
    FrameAck { seq: u64 },
    /// The technician ends the session.
    End(EndReason),
}

/// Control messages from agent to viewer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentMessage {
    /// What the person at the PC granted now (first answer, upgrade or downgrade).
    Grant(Grant),
    /// The session ends.
    End(EndReason),
}

impl EndReason {
    /// Every reason, in wire order.
    pub const ALL: [EndReason; 7] = [
        EndReason::EndedAtAgent,
        EndReason::EndedByViewer,
        EndReason::ConsentDenied,
        EndReason::ProtocolViolation,
        EndReason::Failure,
        EndReason::IdleTimeout,
        EndReason::MaxDuration,
    ];
}

pub(crate) fn encode_reason(w: &mut Writer, r: EndReason) {
    w.u8(match r {
        EndReason::EndedAtAgent => 1,
        EndReason::EndedByViewer => 2,
        EndReason::ConsentDenied => 3,
        EndReason::ProtocolViolation => 4,
        EndReason::Failure => 5,
        EndReason::IdleTimeout => 6,
        EndReason::MaxDuration => 7,
    });
}

pub(crate) fn decode_reason(r: &mut Reader<'_>) -> Result<EndReason, DecodeError> {
    Ok(match r.u8()? {
        1 => EndReason::EndedAtAgent,
        2 => EndReason::EndedByViewer,
        3 => EndReason::ConsentDenied,
        4 => EndReason::ProtocolViolation,
        5 => EndReason::Failure,
        6 => EndReason::IdleTimeout,
        7 => EndReason::MaxDuration,
        tag => {
            return Err(DecodeError::UnknownTag {
                what: "end reason",
                tag,
            })
        }
    })
}

fn named_code(k: NamedKey) -> u8 {
    use NamedKey::*;
    match k {
        Return => 1,
        Backspace => 2,
        Tab => 3,
        Escape => 4,
        Delete => 5,
        Insert => 6,
        Left => 7,
        Right => 8,
        Up => 9,
        Down => 10,
        Home => 11,
        End => 12,
        PageUp => 13,
        PageDown => 14,
        Space => 15,
        Shift => 16,
        Control => 17,
        Alt => 18,
        Meta => 19,
        CapsLock => 20,
        F(n) => 100 + n,
    }
}

fn named_from(code: u8) -> Result<NamedKey, DecodeError> {
    use NamedKey::*;
    Ok(match code {
        1 => Return,
        2 => Backspace,
        3 => Tab,
        4 => Escape,
        5 => Delete,
        6 => Insert,
        7 => Left,
        8 => Right,
        9 => Up,
        10 => Down,
        11 => Home,
        12 => End,
        13 => PageUp,
        14 => PageDown,
        15 => Space,
        16 => Shift,
        17 => Control,
        18 => Alt,
        19 => Meta,
        20 => CapsLock,
        101..=112 => F(code - 100),
        tag => return Err(DecodeError::UnknownTag { what: "key", tag }),
    })
}

impl ViewerMessage {
    /// Encodes the message body.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            ViewerMessage::Input(ev) => {
                w.u8(1);
                match ev {
                    InputEvent::PointerMove { x, y } => w.u8(1).u16(*x).u16(*y),
                    InputEvent::Button { button, pressed } => w
                        .u8(2)
                        .u8(match button {
                            MouseButton::Left => 1,
                            MouseButton::Middle => 2,
                            MouseButton::Right => 3,
                        })
                        .bool(*pressed),
                    InputEvent::Wheel { dx, dy } => w.u8(3).i16(*dx).i16(*dy),
                    InputEvent::Key { key, pressed } => {
                        w.u8(4);
                        match key {
                            Key::Named(k) => w.u8(1).u8(named_code(*k)),
                            Key::Char(c) => w.u8(2).u32(*c as u32),
                        };
                        w.bool(*pressed)
                    }
                    InputEvent::Text(t) => w.u8(5).string(t),
                };
            }
            ViewerMessage::FrameAck { seq } => {
                w.u8(2).u64(*seq);
            }
            ViewerMessage::End(r) => {
                w.u8(3);
                encode_reason(&mut w, *r);
            }
        }
        w.finish()
    }

    /// Decodes one message, checking every bound.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        check_len("control message", buf, MAX_CONTROL_LEN)?;
        let mut r = Reader::new(buf);
        let msg = match r.u8()? {
            1 => ViewerMessage::Input(match r.u8()? {
                1 => InputEvent::PointerMove {
                    x: r.u16()?,
                    y: r.u16()?,
                },
                2 => InputEvent::Button {
                    button: match r.u8()? {
                        1 => MouseButton::Left,
                        2 => MouseButton::Middle,
                        3 => MouseButton::Right,
                        tag => {
                            return Err(DecodeError::UnknownTag {
                                what: "mouse button",
                                tag,
                            })
                        }
                    },
                    pressed: r.bool("button state")?,
                },
                3 => {
                    let (dx, dy) = (r.i16()?, r.i16()?);
                    if dx.unsigned_abs().max(dy.unsigned_abs()) > MAX_WHEEL_NOTCHES as u16 {
                        return Err(DecodeError::Invalid {
                            what: "wheel event",
                            reason: "more notches than one event may scroll",
                        });
                    }
                    InputEvent::Wheel { dx, dy }
                }
                4 => {
                    let key = match r.u8()? {
                        1 => Key::Named(named_from(r.u8()?)?),
                        2 => Key::Char(char::from_u32(r.u32()?).ok_or(DecodeError::Invalid {
                            what: "key",
                            reason: "not a Unicode scalar",
                        })?),
                        tag => {
                            return Err(DecodeError::UnknownTag {
                                what: "key kind",
                                tag,
                            })
                        }
                    };
                    InputEvent::Key {
                        key,
                        pressed: r.bool("key state")?,
                    }
                }
                5 => {
                    let t = r.string("text", MAX_TEXT_LEN)?;
                    if t.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                        return Err(DecodeError::Invalid {
                            what: "text",
                            reason: "control characters",
                        });
                    }
                    InputEvent::Text(t)
                }
                tag => {
                    return Err(DecodeError::UnknownTag {
                        what: "input event",
                        tag,
                    })
                }
            }),
            2 => ViewerMessage::FrameAck { seq: r.u64()? },
            3 => ViewerMessage::End(decode_reason(&mut r)?),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "viewer message",
                    tag,
                })
            }
        };
        r.finish()?;
        Ok(msg)
    }
}

impl AgentMessage {
    /// Encodes the message body.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            AgentMessage::Grant(g) => {
                w.u8(1).u8(g.code());
            }
            AgentMessage::End(r) => {
                w.u8(2);
                encode_reason(&mut w, *r);
            }
        }
        w.finish()
    }

    /// Decodes one message, checking every bound.
    pub fn decode(buf: &[u8]) -> Result<Self, DecodeError> {
        check_len("control message", buf, MAX_CONTROL_LEN)?;
        let mut r = Reader::new(buf);
        let msg = match r.u8()? {
            1 => AgentMessage::Grant(Grant::from_code(r.u8()?)?),
            2 => AgentMessage::End(decode_reason(&mut r)?),
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "agent message",
                    tag,
                })
            }
        };
        r.finish()?;
        Ok(msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn roundtrips() {
        let msgs = [
            ViewerMessage::Input(InputEvent::PointerMove { x: 1919, y: 1079 }),
            ViewerMessage::Input(InputEvent::Button {
                button: MouseButton::Right,
                pressed: true,
            }),
            ViewerMessage::Input(InputEvent::Wheel { dx: 0, dy: -3 }),
            ViewerMessage::Input(InputEvent::Key {
                key: Key::Named(NamedKey::F(12)),
                pressed: false,
            }),
            ViewerMessage::Input(InputEvent::Key {
                key: Key::Char('€'),
                pressed: true,
            }),
            ViewerMessage::Input(InputEvent::Text("Grüße ß €".into())),
            ViewerMessage::FrameAck { seq: 42 },
            ViewerMessage::End(EndReason::EndedByViewer),
        ];
        for m in msgs {
            assert_eq!(ViewerMessage::decode(&m.encode()).unwrap(), m);
        }
        for m in [
            AgentMessage::Grant(Grant::Control),
            AgentMessage::Grant(Grant::Denied),
            AgentMessage::End(EndReason::ConsentDenied),
        ] {
            assert_eq!(AgentMessage::decode(&m.encode()).unwrap(), m);
        }
    }

    /// A wheel event beyond the bound, on either axis and either sign, is refused; the bound
    /// itself passes.
    #[test]
    fn refuses_long_wheel_events() {
        for (dx, dy) in [
            (0, i16::MIN),
            (0, i16::MAX),
            (i16::MIN, 0),
            (17, 0),
            (0, -17),
        ] {
            let m = ViewerMessage::Input(InputEvent::Wheel { dx, dy }).encode();
            assert!(ViewerMessage::decode(&m).is_err(), "{dx} {dy}");
        }
        let max = MAX_WHEEL_NOTCHES;
        for (dx, dy) in [(max, -max), (-max, max)] {
            let m = ViewerMessage::Input(InputEvent::Wheel { dx, dy });
            assert_eq!(ViewerMessage::decode(&m.encode()).unwrap(), m);
        }
    }

    #[test]
    fn refuses_bad_keys_and_text() {
        assert!(ViewerMessage::decode(&[1, 4, 2, 0, 0, 0xD8, 0x00, 1]).is_err()); // surrogate
        assert!(ViewerMessage::decode(&[1, 4, 1, 113, 1]).is_err()); // F13
        assert!(ViewerMessage::decode(
            &ViewerMessage::Input(InputEvent::Text("a\u{7}".into())).encode()
        )
        .is_err());
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = ViewerMessage::decode(&bytes);
            let _ = AgentMessage::decode(&bytes);
        }
    }
}
