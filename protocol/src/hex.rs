//! Bytes as text, as token hashes, record hashes and signatures are shown and stored.

/// Lowercase hex, two digits a byte.
pub fn lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The bytes of lowercase or uppercase hex, two digits a byte; `None` for anything else.
pub fn parse(s: &str) -> Option<Vec<u8>> {
    // from_str_radix would take a '+' sign as well.
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip_and_refusals() {
        assert_eq!(super::lower(&[0, 0xab, 0xff]), "00abff");
        assert_eq!(super::parse("00abFF"), Some(vec![0, 0xab, 0xff]));
        for bad in ["0", "0g", "+1", "é1"] {
            assert_eq!(super::parse(bad), None, "{bad}");
        }
    }
}
