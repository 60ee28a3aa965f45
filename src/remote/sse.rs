//! Server-sent events, parsed as the HTML standard says (`text/event-stream`), on bytes.
//!
//! Lines end at CRLF, LF or a lone CR (also when a chunk ends between the CR and the LF);
//! `data:` lines are joined with `\n`; a line starting with `:` is a comment; `id:` sets the
//! last event id (unless it holds a NUL) and `retry:` the reconnection time (digits only); an
//! event is dispatched at a blank line, and one with no data is not dispatched at all; an
//! event the stream ends in the middle of is dropped. The data stays bytes: nothing is decoded,
//! so what the server sent is what toolgate's strict check reads.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// `None` for the default type, `message`.
    pub event: Option<Vec<u8>>,
    pub data: Vec<u8>,
}

impl Event {
    /// Whether it carries a message: only the default type does in MCP.
    pub fn is_message(&self) -> bool {
        self.event.as_deref().is_none_or(|e| e == b"message")
    }
}

/// Why a stream cannot be read on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("an event of the server's stream is longer than {0} bytes")]
pub struct TooLong(pub usize);

/// A parser fed chunks of a stream as they arrive.
#[derive(Debug)]
pub struct Parser {
    /// The line being read.
    line: Vec<u8>,
    /// The last byte fed was a CR: an LF right after it ends nothing.
    after_cr: bool,
    /// A BOM may still come (nothing was read yet).
    at_start: bool,
    data: Vec<u8>,
    /// Some `data:` field was seen in this event (it may have been empty).
    has_data: bool,
    event: Option<Vec<u8>>,
    last_id: Option<Vec<u8>>,
    retry: Option<u64>,
    /// Bytes an event (its line and data) may take.
    limit: usize,
}

impl Parser {
    /// A parser refusing events over `limit` bytes.
    pub fn new(limit: usize) -> Parser {
        Parser {
            line: Vec::new(),
            after_cr: false,
            at_start: true,
            data: Vec::new(),
            has_data: false,
            event: None,
            last_id: None,
            retry: None,
            limit,
        }
    }

    /// The last event id the stream set, for `Last-Event-ID` when it is resumed.
    pub fn last_id(&self) -> Option<&[u8]> {
        self.last_id.as_deref()
    }

    /// The reconnection time the stream asked for, in milliseconds.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// Reads `chunk`, returning the events it completed.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<Vec<Event>, TooLong> {
        let mut events = Vec::new();
        if self.at_start && !chunk.is_empty() {
            // A BOM may be split over chunks; only a whole one at the very start is skipped.
            const BOM: &[u8] = b"\xEF\xBB\xBF";
            let have = self.line.len() + chunk.len();
            if have < BOM.len() && BOM.starts_with(&[self.line.as_slice(), chunk].concat()) {
                self.line.extend_from_slice(chunk);
                return Ok(events);
            }
            self.at_start = false;
            let mut start = std::mem::take(&mut self.line);
            start.extend_from_slice(chunk);
            let rest = start.strip_prefix(BOM).unwrap_or(&start).to_vec();
            return self.feed_lines(&rest, events);
        }
        if self.after_cr && chunk.first() == Some(&b'\n') {
            chunk = &chunk[1..];
        }
        self.after_cr = false;
        events = self.feed_lines(chunk, events)?;
        Ok(events)
    }

    fn feed_lines(&mut self, mut chunk: &[u8], mut events: Vec<Event>) -> Result<Vec<Event>, TooLong> {
        while let Some(end) = memchr::memchr2(b'\n', b'\r', chunk) {
            self.take(&chunk[..end])?;
            let line = std::mem::take(&mut self.line);
            self.field(&line, &mut events);
            self.line = line;
            self.line.clear();
            if chunk[end] == b'\r' {
                if chunk.get(end + 1) == Some(&b'\n') {
                    chunk = &chunk[end + 2..];
                } else if end + 1 == chunk.len() {
                    self.after_cr = true;
                    chunk = &[];
                } else {
                    chunk = &chunk[end + 1..];
                }
            } else {
                chunk = &chunk[end + 1..];
            }
        }
        self.take(chunk)?;
        Ok(events)
    }

    fn take(&mut self, bytes: &[u8]) -> Result<(), TooLong> {
        if self.line.len() + bytes.len() + self.data.len() > self.limit {
            return Err(TooLong(self.limit));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    /// One whole line.
    fn field(&mut self, line: &[u8], events: &mut Vec<Event>) {
        if line.is_empty() {
            if self.has_data {
                let mut data = std::mem::take(&mut self.data);
                // Every data line added an LF; the last one is not part of the data.
                data.pop();
                events.push(Event { event: self.event.take(), data });
            }
            self.has_data = false;
            self.data.clear();
            self.event = None;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (name, value) = match memchr::memchr(b':', line) {
            Some(at) => {
                let value = &line[at + 1..];
                (&line[..at], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match name {
            b"event" => self.event = Some(value.to_vec()),
            b"data" => {
                self.has_data = true;
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
            }
            b"id" if !value.contains(&0) => self.last_id = Some(value.to_vec()),
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.retry = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(parser: &mut Parser, chunks: &[&[u8]]) -> Vec<Event> {
        chunks.iter().flat_map(|c| parser.feed(c).unwrap()).collect()
    }

    fn message(data: &str) -> Event {
        Event { event: None, data: data.as_bytes().to_vec() }
    }

    #[test]
    fn data_lines_join_with_lf_and_an_event_ends_at_a_blank_line() {
        let mut p = Parser::new(1 << 20);
        let events = all(&mut p, &[b"data: {\"a\":\ndata:1}\n\n", b"data: two\n"]);
        assert_eq!(events, vec![message("{\"a\":\n1}")]);
        // The second event never ended: nothing more is dispatched.
        assert_eq!(p.feed(b"").unwrap(), vec![]);
        assert_eq!(p.feed(b"\n").unwrap(), vec![message("two")]);
    }

    #[test]
    fn every_line_ending_counts_even_split_over_chunks() {
        let mut p = Parser::new(1 << 20);
        let events = all(&mut p, &[b"data: a\r", b"\n\r", b"\ndata: b\r\rdata: c\n", b"\n"]);
        assert_eq!(events, vec![message("a"), message("b"), message("c")]);
    }

    #[test]
    fn comments_ids_retry_types_and_empty_events() {
        let mut p = Parser::new(1 << 20);
        let events = all(
            &mut p,
            &[b": keep-alive\n\nid: 7\nretry: 1500\ndata\n\n", b"event: ping\ndata: x\n\nretry: soon\nid: a\0b\n\n"],
        );
        assert_eq!(events[0], Event { event: None, data: vec![] }, "a `data` field with no colon is empty data");
        assert!(events[0].is_message());
        assert_eq!(events[1], Event { event: Some(b"ping".to_vec()), data: b"x".to_vec() });
        assert!(!events[1].is_message());
        assert_eq!(events.len(), 2, "an event with no data field is not dispatched");
        assert_eq!(p.last_id(), Some(&b"7"[..]), "an id with a NUL is ignored");
        assert_eq!(p.retry(), Some(1500), "a retry that is not digits is ignored");
    }

    #[test]
    fn one_space_after_the_colon_is_dropped_and_no_more() {
        let mut p = Parser::new(1 << 20);
        assert_eq!(p.feed(b"data:  two\n\n").unwrap(), vec![message(" two")]);
    }

    #[test]
    fn a_bom_at_the_start_is_skipped_even_split() {
        let mut p = Parser::new(1 << 20);
        assert_eq!(all(&mut p, &[b"\xEF", b"\xBB\xBFdata: x\n\n"]), vec![message("x")]);
        let mut p = Parser::new(1 << 20);
        assert_eq!(p.feed(b"\xEF\xBB\xBFdata: y\n\n\xEF\xBB\xBFdata: z\n\n").unwrap().len(), 1, "only at the start");
    }

    #[test]
    fn bytes_stay_bytes() {
        let mut p = Parser::new(1 << 20);
        assert_eq!(p.feed(b"data: \xff\xfe\n\n").unwrap(), vec![Event { event: None, data: b"\xff\xfe".to_vec() }]);
    }

    #[test]
    fn an_event_over_the_limit_is_refused() {
        let mut p = Parser::new(16);
        assert_eq!(p.feed(b"data: 0123456789ab\n"), Err(TooLong(16)));
        let mut p = Parser::new(16);
        assert!(p.feed(b"data: 0123\ndata: 4567\n").is_ok());
        assert!(p.feed(b"data: 89ab").is_err(), "the data of the event so far counts");
    }
}
