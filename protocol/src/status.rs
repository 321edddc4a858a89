//! The lines agent and viewer print on standard output for the people and scripts that run
//! them (`scripts/demo.sh`, the benchmarks, the end-to-end tests): one enum, printed with
//! `Display` and read back with `FromStr`, so a line's wording lives in one place and a
//! changed line breaks the build, not a test at run time.

use crate::consent::Grant;
use crate::peer::PathKind;
use crate::session::EndReason;
use crate::session_limits::Limit;
use std::fmt;
use std::str::FromStr;

/// One status line of the agent's or the viewer's session.
#[derive(Debug, Clone, PartialEq)]
pub enum Status {
    /// Agent: the end-to-end connection with the viewer is up.
    E2eConnected,
    /// Agent: the consent dialog is shown.
    ConsentAsked,
    /// Agent: the person at the PC answered the dialog.
    Consent(Grant),
    /// Agent: the person changed the grant in the indicator.
    GrantChanged(Grant),
    /// Agent: the indicator warns that the session ends by `limit` in `ends_in_s` seconds.
    LimitWarning { limit: Limit, ends_in_s: u64 },
    /// Agent: a limit warning no longer holds.
    LimitCleared,
    /// Agent: the person at the PC chose to go on.
    ContinuedAtPc,
    /// Agent: the session ended.
    SessionEnded(EndReason),
    /// Either side: the session's path changed (the viewer adds when and the relay's RTT).
    Path {
        kind: PathKind,
        rtt_ms: u32,
        after_ms: Option<u64>,
        relay_rtt_ms: Option<u64>,
    },
    /// Viewer: the end-to-end connection is up, this long after the pairing.
    ViewerConnected { ms: f64 },
    /// Viewer: the first screen update arrived, this long after the grant.
    FirstFrame { ms: f64, bytes: usize, rects: usize },
}

fn grant_name(g: Grant) -> &'static str {
    match g {
        Grant::Denied => "Denied",
        Grant::View => "View",
        Grant::Control => "Control",
    }
}

fn parse_grant(s: &str) -> Option<Grant> {
    [Grant::Denied, Grant::View, Grant::Control]
        .into_iter()
        .find(|g| grant_name(*g) == s)
}

fn parse_reason(s: &str) -> Option<EndReason> {
    EndReason::ALL.into_iter().find(|r| format!("{r:?}") == s)
}

fn parse_limit(s: &str) -> Option<Limit> {
    [Limit::Idle, Limit::Max]
        .into_iter()
        .find(|l| format!("{l:?}") == s)
}

fn path_word(kind: PathKind) -> String {
    kind.label().replace(' ', "_")
}

fn parse_path(s: &str) -> Option<PathKind> {
    [PathKind::Relayed, PathKind::Direct, PathKind::DirectLan]
        .into_iter()
        .find(|k| path_word(*k) == s)
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Status::E2eConnected => f.write_str("e2e connected"),
            Status::ConsentAsked => f.write_str("consent asked"),
            Status::Consent(g) => write!(f, "consent {}", grant_name(*g)),
            Status::GrantChanged(g) => write!(f, "grant {}", grant_name(*g)),
            Status::LimitWarning { limit, ends_in_s } => {
                write!(f, "limit warning {limit:?} ends_in_s={ends_in_s}")
            }
            Status::LimitCleared => f.write_str("limit warning cleared"),
            Status::ContinuedAtPc => f.write_str("session continued at the PC"),
            Status::SessionEnded(r) => write!(f, "session ended reason={r:?}"),
            Status::Path {
                kind,
                rtt_ms,
                after_ms,
                relay_rtt_ms,
            } => {
                write!(f, "path {} rtt_ms={rtt_ms}", path_word(*kind))?;
                if let Some(a) = after_ms {
                    write!(f, " after_ms={a}")?;
                }
                if let Some(r) = relay_rtt_ms {
                    write!(f, " relay_rtt_ms={r}")?;
                }
                Ok(())
            }
            Status::ViewerConnected { ms } => write!(f, "e2e-connected ms={ms:.1}"),
            Status::FirstFrame { ms, bytes, rects } => {
                write!(f, "first-frame ms={ms:.1} bytes={bytes} rects={rects}")
            }
        }
    }
}

/// A line that is not a [`Status`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a status line: {0:?}")]
pub struct NotAStatus(pub String);

/// The value of `key=` among the words of a line.
fn field<T: FromStr>(words: &[&str], key: &str) -> Option<T> {
    words
        .iter()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

impl FromStr for Status {
    type Err = NotAStatus;

    fn from_str(line: &str) -> Result<Self, NotAStatus> {
        let words: Vec<&str> = line.split(' ').collect();
        let parsed = match words.as_slice() {
            ["e2e", "connected"] => Some(Status::E2eConnected),
            ["consent", "asked"] => Some(Status::ConsentAsked),
            ["consent", g] => parse_grant(g).map(Status::Consent),
            ["grant", g] => parse_grant(g).map(Status::GrantChanged),
            ["limit", "warning", "cleared"] => Some(Status::LimitCleared),
            ["limit", "warning", l, rest @ ..] => parse_limit(l).and_then(|limit| {
                Some(Status::LimitWarning {
                    limit,
                    ends_in_s: field(rest, "ends_in_s")?,
                })
            }),
            ["session", "continued", "at", "the", "PC"] => Some(Status::ContinuedAtPc),
            ["session", "ended", r] => r
                .strip_prefix("reason=")
                .and_then(parse_reason)
                .map(Status::SessionEnded),
            ["path", k, rest @ ..] => parse_path(k).and_then(|kind| {
                Some(Status::Path {
                    kind,
                    rtt_ms: field(rest, "rtt_ms")?,
                    after_ms: field(rest, "after_ms"),
                    relay_rtt_ms: field(rest, "relay_rtt_ms"),
                })
            }),
            ["e2e-connected", rest @ ..] => {
                field(rest, "ms").map(|ms| Status::ViewerConnected { ms })
            }
            ["first-frame", rest @ ..] => (|| {
                Some(Status::FirstFrame {
                    ms: field(rest, "ms")?,
                    bytes: field(rest, "bytes")?,
                    rects: field(rest, "rects")?,
                })
            })(),
            _ => None,
        };
        parsed.ok_or_else(|| NotAStatus(line.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line reads back as what was printed, and the wording scripts grep for holds.
    #[test]
    fn every_status_reads_back_as_printed() {
        let lines = [
            (Status::E2eConnected, "e2e connected"),
            (Status::ConsentAsked, "consent asked"),
            (Status::Consent(Grant::Control), "consent Control"),
            (Status::GrantChanged(Grant::View), "grant View"),
            (
                Status::LimitWarning {
                    limit: Limit::Idle,
                    ends_in_s: 59,
                },
                "limit warning Idle ends_in_s=59",
            ),
            (Status::LimitCleared, "limit warning cleared"),
            (Status::ContinuedAtPc, "session continued at the PC"),
            (
                Status::SessionEnded(EndReason::EndedAtAgent),
                "session ended reason=EndedAtAgent",
            ),
            (
                Status::Path {
                    kind: PathKind::DirectLan,
                    rtt_ms: 3,
                    after_ms: None,
                    relay_rtt_ms: None,
                },
                "path direct_LAN rtt_ms=3",
            ),
            (
                Status::Path {
                    kind: PathKind::Relayed,
                    rtt_ms: 40,
                    after_ms: Some(120),
                    relay_rtt_ms: Some(41),
                },
                "path relayed rtt_ms=40 after_ms=120 relay_rtt_ms=41",
            ),
            (
                Status::ViewerConnected { ms: 12.5 },
                "e2e-connected ms=12.5",
            ),
            (
                Status::FirstFrame {
                    ms: 80.0,
                    bytes: 1234,
                    rects: 7,
                },
                "first-frame ms=80.0 bytes=1234 rects=7",
            ),
        ];
        for (status, line) in lines {
            assert_eq!(status.to_string(), line);
            assert_eq!(line.parse::<Status>(), Ok(status), "{line}");
        }
        for other in [
            "code 123 456",
            "consent Maybe",
            "session ended reason=",
            "path x rtt_ms=1",
        ] {
            assert!(other.parse::<Status>().is_err(), "{other}");
        }
    }
}
