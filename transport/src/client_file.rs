//! The config file a carrier ships next to the agent or the viewer (`fernhilfe-agent.toml`,
//! `fernhilfe-viewer.toml`, as `fernhilfe-relay agent-bundle` and `viewer-bundle` write them):
//! which relay, and how its certificate is pinned, so a school only double-clicks.

use serde::de::DeserializeOwned;
use std::path::{Path, PathBuf};

/// A config file that is there but cannot be used. The texts are in German and English: the
/// agent shows them to the person at the school.
#[derive(Debug, thiserror::Error)]
pub enum ClientFileError {
    #[error("cannot read config file {path}: {source} / Konfigurationsdatei nicht lesbar")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {source} (ask your IT for a new one) / Konfigurationsdatei ungültig (bitte bei der IT eine neue anfordern)")]
    Invalid {
        path: PathBuf,
        source: toml::de::Error,
    },
}

/// Reads `explicit` (which must exist), or else `file_name` next to the running binary if it
/// is there; the defaults if neither.
pub fn load<T: DeserializeOwned + Default>(
    explicit: Option<&Path>,
    file_name: &str,
) -> Result<T, ClientFileError> {
    let (path, required) = match explicit {
        Some(p) => (p.to_owned(), true),
        None => match std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(|d| d.join(file_name)))
        {
            Some(p) => (p, false),
            None => return Ok(T::default()),
        },
    };
    match std::fs::read_to_string(&path) {
        Ok(s) => toml::from_str(&s).map_err(|source| ClientFileError::Invalid { path, source }),
        Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(source) => Err(ClientFileError::Read { path, source }),
    }
}
