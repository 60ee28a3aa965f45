//! Making one stdio line of one message from an HTTP server.
//!
//! A JSON body or an SSE event's data may hold raw line breaks between tokens; raw CR and LF
//! in JSON text are always insignificant whitespace there, since a string must escape them.
//! So each becomes a space, and that is the one change toolgate makes to what a remote server
//! sends. A raw line break inside a string (not JSON, so the strict check will refuse the
//! line) becomes 0x1F, a control character JSON forbids in strings just the same, so that the
//! line is still refused, whole, and not cut in two.

/// Turns `message` into one line (without its `\n`), in place.
pub fn one_line(message: &mut [u8]) {
    let mut in_string = false;
    let mut escaped = false;
    for byte in message.iter_mut() {
        match *byte {
            b'\n' | b'\r' => *byte = if in_string { 0x1F } else { b' ' },
            _ if escaped => escaped = false,
            b'\\' if in_string => escaped = true,
            b'"' => in_string = !in_string,
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(text: &[u8]) -> Vec<u8> {
        let mut bytes = text.to_vec();
        one_line(&mut bytes);
        bytes
    }

    #[test]
    fn line_breaks_between_tokens_become_spaces_and_nothing_else_changes() {
        let body = b"{\r\n  \"a\": \"x\\ny\\\"\",\n  \"b\": [1,\r2]\n}";
        assert_eq!(framed(body), b"{    \"a\": \"x\\ny\\\"\",   \"b\": [1, 2] }".to_vec());
        let value: serde_json::Value = serde_json::from_slice(&framed(body)).unwrap();
        assert_eq!(value, serde_json::from_slice::<serde_json::Value>(body).unwrap());
    }

    #[test]
    fn a_raw_line_break_inside_a_string_stays_invalid() {
        let out = framed(b"{\"a\":\"x\ny\"}\n");
        assert_eq!(out, b"{\"a\":\"x\x1fy\"} ".to_vec());
        assert!(serde_json::from_slice::<serde_json::Value>(&out).is_err());
        assert!(!out.contains(&b'\n'));
    }
}
