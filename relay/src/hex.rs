//! Bytes as text, as token hashes, record hashes and signatures are shown and stored.

/// Lowercase hex, two digits a byte.
pub fn lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
