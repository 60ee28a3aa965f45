//! The strict JSON check every line passes before toolgate looks at it.
//!
//! The official MCP SDKs are lenient in ways an attacker can use to make a gate and a server read
//! different messages out of the same bytes (duplicate keys are last-wins, a lone `\r` ends a
//! line in Python, a batch is valid JSON). This module refuses every such shape, so that the one
//! reading toolgate decides on is the only reading there is.

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Why a line was refused before it was understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    #[error("the line starts with a byte-order mark")]
    Bom,
    #[error("the line is not valid UTF-8 (at byte {at})")]
    InvalidUtf8 { at: usize },
    #[error("the line holds a raw carriage return at byte {at}; only one right before the newline is allowed")]
    RawCarriageReturn { at: usize },
    #[error("the line is not valid JSON: {0}")]
    Syntax(String),
    #[error("the key {key:?} appears twice in one object")]
    DuplicateKey { key: String },
    #[error("the key {key:?} is one that toolgate's JSON reader takes as an instruction, not as a key")]
    ReservedKey { key: String },
    #[error("the message nests deeper than {limit} levels")]
    TooDeep { limit: usize },
    #[error("the line is a JSON array (a batch); toolgate refuses batches")]
    Batch,
    #[error("the line is not a JSON object")]
    NotAnObject,
}

impl Violation {
    /// The JSON-RPC error code for a reply: -32700 when the bytes are not one JSON value,
    /// -32600 when they are valid JSON that is not an acceptable message.
    pub fn code(&self) -> i64 {
        match self {
            Violation::Bom
            | Violation::InvalidUtf8 { .. }
            | Violation::RawCarriageReturn { .. }
            | Violation::Syntax(_)
            | Violation::TooDeep { .. } => -32700,
            Violation::DuplicateKey { .. }
            | Violation::ReservedKey { .. }
            | Violation::Batch
            | Violation::NotAnObject => -32600,
        }
    }
}

/// Keys serde_json treats as markers of its own rather than as keys: an object whose first key is
/// `$serde_json::private::RawValue` and whose value is a string is read as `serde_json::Value`
/// as the JSON *inside* that string (with the `raw_value` feature, which toolgate uses), and the
/// number marker does the same with `arbitrary_precision`. toolgate would then decide on another
/// value than the one the server receives, so an object with either key, anywhere, is refused.
/// (Found by the `envelope` fuzz target.)
const RESERVED_KEYS: [&str; 2] = ["$serde_json::private::RawValue", "$serde_json::private::Number"];

/// Checks one line (with or without its `\n`) and returns its text without the line ending.
/// The proxy uses [`check_members`], the same walk that also notes where the top-level keys lie.
pub fn check(line: &[u8], max_depth: usize) -> Result<&str, Violation> {
    let text = text_of(line)?;
    walk(text, max_depth, None)?;
    Ok(text)
}

/// Walks the whole line strictly; with `top_keys`, notes where each top-level key lies.
fn walk<'de>(text: &'de str, max_depth: usize, top_keys: Option<&TopKeys<'de>>) -> Result<(), Violation> {
    let found = RefCell::new(None);
    let keys = RefCell::new(Vec::new());
    let mut de = serde_json::Deserializer::from_str(text);
    let result = Strict { depth: 0, max_depth, found: &found, keys: &keys, top: true, top_keys }
        .deserialize(&mut de)
        .and_then(|()| de.end());
    outcome(result, found.into_inner(), max_depth)
}

/// The members of a message's top-level object that the envelope is made of, each value's JSON
/// text as written in the line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Members<'a> {
    pub jsonrpc: Option<&'a str>,
    pub id: Option<&'a str>,
    pub method: Option<&'a str>,
    pub params: Option<&'a str>,
    pub result: Option<&'a str>,
    pub error: Option<&'a str>,
}

impl<'a> Members<'a> {
    fn slot(&mut self, key: &str) -> Option<&mut Option<&'a str>> {
        match key {
            "jsonrpc" => Some(&mut self.jsonrpc),
            "id" => Some(&mut self.id),
            "method" => Some(&mut self.method),
            "params" => Some(&mut self.params),
            "result" => Some(&mut self.result),
            "error" => Some(&mut self.error),
            _ => None,
        }
    }
}

/// Checks one line as [`check`] does and, in the same pass, finds its envelope's members: the
/// walk is the same, and where each top-level key lies in the line tells where the value
/// before it ends, so that reading the envelope takes no second pass over the line.
pub fn check_members(line: &[u8], max_depth: usize) -> Result<(&str, Members<'_>), Violation> {
    let text = text_of(line)?;
    let top_keys = TopKeys { text, keys: RefCell::new(Vec::new()) };
    walk(text, max_depth, Some(&top_keys))?;
    Ok((text, members_of(text, &top_keys.keys.into_inner())?))
}

/// Where a top-level key's text lies in the line (between its quotes); `None` for a key written
/// with escapes, which is decoded into a copy.
type KeyAt<'de> = (Cow<'de, str>, Option<std::ops::Range<usize>>);

/// The top-level keys of a line as the walk meets them.
struct TopKeys<'de> {
    /// The line, which borrowed keys point into.
    text: &'de str,
    keys: RefCell<Vec<KeyAt<'de>>>,
}

impl<'de> TopKeys<'de> {
    #[expect(clippy::ptr_arg, reason = "whether the key is borrowed from the line is what tells where it lies")]
    fn note(&self, key: &Cow<'de, str>) {
        let at = match key {
            Cow::Borrowed(k) => {
                let start = k.as_ptr() as usize - self.text.as_ptr() as usize;
                Some(start..start + k.len())
            }
            Cow::Owned(_) => None,
        };
        self.keys.borrow_mut().push((key.clone(), at));
    }
}

/// The members as a second, lenient read of the line finds them (the line is known to be valid
/// and free of duplicate keys).
fn members_read_again(text: &str) -> Result<Members<'_>, Violation> {
    let all: std::collections::HashMap<String, &RawValue> =
        serde_json::from_str(text).map_err(|e| Violation::Syntax(e.to_string()))?;
    let mut members = Members::default();
    for (key, raw) in all {
        if let Some(slot) = members.slot(&key) {
            *slot = Some(raw.get());
        }
    }
    Ok(members)
}

/// The envelope's members of a line that passed the check, given where its top-level keys are.
fn members_of<'a>(text: &'a str, keys: &[KeyAt<'a>]) -> Result<Members<'a>, Violation> {
    if keys.iter().any(|(_, at)| at.is_none()) {
        // A key written with escapes tells nothing of where it was.
        return members_read_again(text);
    }
    let mut members = Members::default();
    // A member's value is what lies between its key's closing quote and the next key's opening
    // quote (or the object's closing brace), less the `:`, the `,` and whitespace around it.
    let close = trim_whitespace_end(text).len() - 1;
    for (i, (key, at)) in keys.iter().enumerate() {
        let Some(slot) = members.slot(key) else { continue };
        let from = at.as_ref().map_or(0, |at| at.end + 1);
        let to = keys.get(i + 1).and_then(|(_, next)| next.as_ref()).map_or(close, |next| next.start - 1);
        let value = trim_whitespace(&text[from..to]);
        let value = value.strip_prefix(':').unwrap_or(value);
        let value = value.strip_suffix(',').unwrap_or(value);
        *slot = Some(trim_whitespace(value));
    }
    Ok(members)
}

/// Whether a byte is what JSON counts as whitespace between tokens.
fn is_json_whitespace(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// `text` without JSON whitespace at its end. (Bytewise: a `str` pattern of several chars
/// decodes every char it looks at, a tenth of the envelope's cost.)
fn trim_whitespace_end(text: &str) -> &str {
    let end = text.bytes().rposition(|b| !is_json_whitespace(b)).map_or(0, |i| i + 1);
    &text[..end]
}

/// `text` without JSON whitespace around it.
fn trim_whitespace(text: &str) -> &str {
    let text = trim_whitespace_end(text);
    let start = text.bytes().position(|b| !is_json_whitespace(b)).unwrap_or(text.len());
    &text[start..]
}

/// The line's text without its line ending, once it passes the byte-level checks.
fn text_of(line: &[u8]) -> Result<&str, Violation> {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    if body.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Err(Violation::Bom);
    }
    if let Some(at) = memchr::memchr(b'\r', body) {
        return Err(Violation::RawCarriageReturn { at });
    }
    std::str::from_utf8(body).map_err(|e| Violation::InvalidUtf8 { at: e.valid_up_to() })
}

/// The first violation met, or a syntax error from serde_json.
fn outcome(result: Result<(), serde_json::Error>, found: Option<Violation>, limit: usize) -> Result<(), Violation> {
    match (result, found) {
        (_, Some(violation)) => Err(violation),
        // With a limit of ours above serde_json's own (128), serde_json's is met first.
        (Err(e), None) if e.to_string().starts_with("recursion limit exceeded") => Err(Violation::TooDeep { limit }),
        (Err(e), None) => Err(Violation::Syntax(e.to_string())),
        (Ok(()), None) => Ok(()),
    }
}

/// How many keys of one object are compared one by one before they go into a hash set. Objects
/// in MCP traffic are small, and a linear scan beats hashing until they are not; past this, each
/// new key would cost a scan of all before it, and one object of N keys O(N²) (100k keys held
/// all traffic for seconds).
const HASHED_FROM: usize = 16;

/// The keys of one object seen so far, compared as decoded (`"n\u0061me"` is `"name"`).
enum Seen<'de> {
    /// Few: they are the top of the walk's shared stack, from this index.
    Few(usize),
    /// Many: in a set of their own, hashed with `RandomState`'s per-process random keys, so that
    /// no sender can choose keys that collide.
    Many(HashSet<Cow<'de, str>>),
}

/// Refuses a key that must not pass: a marker serde_json reads as an instruction, or a key
/// already seen in the same object.
fn check_key(key: &str, seen: &Seen<'_>, stack: &[Cow<'_, str>]) -> Result<(), Violation> {
    if RESERVED_KEYS.contains(&key) {
        return Err(Violation::ReservedKey { key: key.to_owned() });
    }
    let twice = match seen {
        Seen::Few(base) => stack[*base..].iter().any(|k| k == key),
        Seen::Many(set) => set.contains(key),
    };
    if twice {
        return Err(Violation::DuplicateKey { key: key.to_owned() });
    }
    Ok(())
}

/// A visitor that walks a whole value, remembering the first violation it meets.
struct Strict<'a, 'de> {
    depth: usize,
    max_depth: usize,
    found: &'a RefCell<Option<Violation>>,
    /// The keys of every object being walked, outermost first: one stack for the whole line,
    /// so that a small object costs no allocation of its own (a large result holds thousands);
    /// an object past [`HASHED_FROM`] keys moves its own into a set.
    keys: &'a RefCell<Vec<Cow<'de, str>>>,
    top: bool,
    /// At the top level, where its keys lie, when the caller wants to know.
    top_keys: Option<&'a TopKeys<'de>>,
}

impl<'de> Strict<'_, 'de> {
    /// Keeps the first violation met, and turns it into the error that stops serde_json.
    fn fail<E: serde::de::Error>(&self, violation: Violation) -> E {
        let message = violation.to_string();
        self.found.borrow_mut().get_or_insert(violation);
        E::custom(message)
    }

    fn nested(&self) -> Strict<'_, 'de> {
        Strict {
            depth: self.depth + 1,
            max_depth: self.max_depth,
            found: self.found,
            keys: self.keys,
            top: false,
            top_keys: None,
        }
    }

    fn scalar<E: serde::de::Error>(&self) -> Result<(), E> {
        if self.top { Err(self.fail(Violation::NotAnObject)) } else { Ok(()) }
    }

    fn enter<E: serde::de::Error>(&self) -> Result<(), E> {
        if self.depth >= self.max_depth {
            return Err(self.fail(Violation::TooDeep { limit: self.max_depth }));
        }
        Ok(())
    }
}

impl<'de> DeserializeSeed<'de> for Strict<'_, 'de> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Strict<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<(), E> {
        self.scalar()
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<(), E> {
        self.scalar()
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<(), E> {
        self.scalar()
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<(), E> {
        self.scalar()
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.top {
            return Err(self.fail(Violation::Batch));
        }
        self.enter()?;
        while seq.next_element_seed(self.nested())?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        self.enter()?;
        // This object's keys are the top of the stack, from `base`; nested objects push theirs
        // above and take them off again before the next key of this one is read. (On an error
        // the stack is left as it is: the whole check ends there.)
        // Past `HASHED_FROM` keys they move off the stack into a set of this object's own.
        let base = self.keys.borrow().len();
        let mut seen = Seen::Few(base);
        while let Some(key) = map.next_key_seed(Key)? {
            check_key(&key, &seen, &self.keys.borrow()).map_err(|v| self.fail(v))?;
            if let Some(top_keys) = self.top_keys {
                top_keys.note(&key);
            }
            match &mut seen {
                Seen::Few(_) => {
                    let mut keys = self.keys.borrow_mut();
                    keys.push(key);
                    if keys.len() - base == HASHED_FROM {
                        seen = Seen::Many(keys.drain(base..).collect());
                    }
                }
                Seen::Many(set) => {
                    set.insert(key);
                }
            }
            map.next_value_seed(self.nested())?;
        }
        self.keys.borrow_mut().truncate(base);
        Ok(())
    }
}

/// Reads an object key, borrowing it when it has no escapes.
struct Key;

impl<'de> DeserializeSeed<'de> for Key {
    type Value = Cow<'de, str>;

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for Key {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Cow::Borrowed(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Cow::Owned(v.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(line: &[u8]) -> Result<(), Violation> {
        check(line, 8).map(|_| ())
    }

    #[test]
    fn accepts_an_ordinary_message_with_one_trailing_cr() {
        assert_eq!(verdict(b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r\n"), Ok(()));
    }

    #[test]
    fn duplicate_method_key_is_refused() {
        let line = br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}"#;
        assert_eq!(verdict(line), Err(Violation::DuplicateKey { key: "method".into() }));
    }

    #[test]
    fn duplicate_key_deep_inside_arguments_is_refused() {
        let line = br#"{"params":{"arguments":{"a":{"path":"/ok","path":"/etc/passwd"}}}}"#;
        assert_eq!(verdict(line), Err(Violation::DuplicateKey { key: "path".into() }));
    }

    #[test]
    fn duplicate_key_spelled_with_an_escape_is_still_a_duplicate() {
        let line = br#"{"name":"a","n\u0061me":"b"}"#;
        assert_eq!(verdict(line), Err(Violation::DuplicateKey { key: "name".into() }));
    }

    #[test]
    fn keys_are_compared_only_within_their_own_object() {
        // The same names in a parent, its children and their siblings are not duplicates.
        assert_eq!(verdict(br#"{"a":{"a":1,"b":[{"a":1},{"a":2}]},"b":{"a":2,"b":3}}"#), Ok(()));
        // A duplicate after a nested object, and one inside the second of two siblings.
        let after_nested = br#"{"a":{"x":{"y":1}},"b":2,"a":3}"#;
        assert_eq!(verdict(after_nested), Err(Violation::DuplicateKey { key: "a".into() }));
        let second_sibling = br#"{"l":[{"k":1},{"k":1,"j":2,"k":3}]}"#;
        assert_eq!(verdict(second_sibling), Err(Violation::DuplicateKey { key: "k".into() }));
    }

    #[test]
    fn lone_cr_between_two_messages_is_refused() {
        let line = b"{\"id\":1,\"method\":\"tools/list\"}\r{\"id\":2,\"method\":\"tools/call\"}\n";
        assert_eq!(verdict(line), Err(Violation::RawCarriageReturn { at: 30 }));
    }

    #[test]
    fn bom_invalid_utf8_batch_scalar_and_trailing_data_are_refused() {
        assert_eq!(verdict(b"\xEF\xBB\xBF{}"), Err(Violation::Bom));
        assert_eq!(verdict(b"{\"a\":\"\xff\"}"), Err(Violation::InvalidUtf8 { at: 6 }));
        assert_eq!(verdict(b"[{\"id\":1}]"), Err(Violation::Batch));
        assert_eq!(verdict(b"17"), Err(Violation::NotAnObject));
        assert!(matches!(verdict(b"{} {}"), Err(Violation::Syntax(_))));
    }

    #[test]
    fn nesting_is_limited() {
        // The limit counts containers: the object and seven arrays make eight.
        assert_eq!(verdict(b"{\"a\":[[[[[[[1]]]]]]]}"), Ok(()));
        assert_eq!(verdict(b"{\"a\":[[[[[[[[1]]]]]]]]}"), Err(Violation::TooDeep { limit: 8 }));
    }

    #[test]
    fn the_one_pass_check_refuses_exactly_what_the_whole_line_check_refuses() {
        let lines: [&[u8]; 16] = [
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}\r\n",
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","method":"tools/call"}"#,
            br#"{"params":{"arguments":{"a":{"path":"/ok","path":"/etc/passwd"}}}}"#,
            br#"{"name":"a","n\u0061me":"b"}"#,
            br#"{"a":{"a":1,"b":[{"a":1},{"a":2}]},"b":{"a":2,"b":3}}"#,
            br#"{"a":{"x":{"y":1}},"b":2,"a":3}"#,
            br#"{"l":[{"k":1},{"k":1,"j":2,"k":3}]}"#,
            b"{\"id\":1}\r{\"id\":2}\n",
            b"\xEF\xBB\xBF{}",
            b"{\"a\":\"\xff\"}",
            b"[{\"id\":1}]",
            b"17",
            b"{} {}",
            b"{\"a\":[[[[[[[1]]]]]]]}",
            b"{\"a\":[[[[[[[[1]]]]]]]]}",
            br#"{"params":{"a":1,"a":2},"params":3}"#,
        ];
        for line in lines {
            let whole = check(line, 8);
            let one_pass = check_members(line, 8);
            assert_eq!(whole.is_ok(), one_pass.is_ok(), "{}: {whole:?} / {one_pass:?}", line.escape_ascii());
            if let (Err(a), Err(b)) = (&whole, &one_pass) {
                assert_eq!(a, b, "{}", line.escape_ascii());
            }
        }
    }

    #[test]
    fn the_one_pass_check_finds_the_envelope_members_where_they_lie() {
        let line = br#"{"id":"x","jsonrpc":"2.0","other":{"params":1},"method":"tools/call","params":{"name":"a"}}"#;
        let (_, m) = check_members(line, 8).unwrap();
        assert_eq!(m.id, Some(r#""x""#));
        assert_eq!(m.jsonrpc, Some(r#""2.0""#));
        assert_eq!(m.method, Some(r#""tools/call""#));
        assert_eq!(m.params, Some(r#"{"name":"a"}"#));
        assert!(m.result.is_none() && m.error.is_none());
    }

    #[test]
    fn members_found_from_where_keys_lie_are_the_values_as_written_whatever_the_spacing() {
        let lines: [&[u8]; 8] = [
            br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"a, b: }"}]}}"#,
            b" { \"jsonrpc\" : \"2.0\" ,\t\"id\"\t:\t\"a,\\\"b\" , \"method\" :\"x\" ,\"params\": [ 1 , {\"k\":\"}\"} ] } \r\n",
            br#"{"params":{},"id":-1.5e3,"method":"m"}"#,
            br#"{"error":{"code":-1,"message":"\"}\","},"id":null,"jsonrpc":"2.0"}"#,
            br#"{"result":null,"id":"","jsonrpc":"2.0"}"#,
            br#"{"a":1,"b":true,"c":false,"params":null}"#,
            br#"{"id":7,"par\u0061ms":{"x":1},"method":"escaped key"}"#,
            br#"{"\u006dethod":"m","id":1}"#,
        ];
        for line in lines {
            let (text, members) = check_members(line, 8).unwrap_or_else(|e| panic!("{}: {e}", line.escape_ascii()));
            assert_eq!(members, members_read_again(text).unwrap(), "{}", line.escape_ascii());
        }
    }

    /// An object of `n` keys `k0`, `k1`, ..., each with the value `0`, then `tail` inside it.
    fn object_of(n: usize, tail: &str) -> Vec<u8> {
        let mut line = String::with_capacity(n * 12 + tail.len() + 2);
        line.push('{');
        for i in 0..n {
            line.push_str(&format!("\"k{i}\":0,"));
        }
        line.push_str(tail);
        line.push('}');
        line.into_bytes()
    }

    /// Would take hours with a key compared to every key before it (5·10¹¹ comparisons).
    #[test]
    fn an_object_of_a_million_keys_passes() {
        let line = object_of(1_000_000, r#""last":0"#);
        assert_eq!(verdict(&line), Ok(()));
        let (_, members) = check_members(&line, 8).unwrap();
        assert_eq!(members, Members::default());
    }

    #[test]
    fn a_64_mib_string_passes() {
        let line = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{{"text":"{}"}}}}"#, "x".repeat(64 << 20));
        let (_, members) = check_members(line.as_bytes(), 8).unwrap();
        assert_eq!(members.result.map(str::len), Some(64 * 1024 * 1024 + 11));
    }

    #[test]
    fn a_duplicate_is_refused_whether_the_keys_before_it_are_scanned_or_hashed() {
        // Around the switch from the scan to the set, and far past it.
        for n in (1..HASHED_FROM + 3).chain([200_000]) {
            let line = object_of(n, r#""k0":1"#);
            assert_eq!(verdict(&line), Err(Violation::DuplicateKey { key: "k0".into() }), "after {n} keys");
            let line = object_of(n, &format!(r#""k{}":1"#, n - 1));
            assert_eq!(verdict(&line), Err(Violation::DuplicateKey { key: format!("k{}", n - 1) }), "after {n} keys");
            // The same key spelled with an escape.
            let line = object_of(n, r#""k\u0030":1"#);
            assert_eq!(verdict(&line), Err(Violation::DuplicateKey { key: "k0".into() }), "after {n} keys");
            assert_eq!(verdict(&object_of(n, r#""k\u0030x":1"#)), Ok(()), "after {n} keys");
        }
    }

    #[test]
    fn hashed_keys_stay_with_their_own_object() {
        let big = |tail: &str| String::from_utf8(object_of(HASHED_FROM * 2, tail)).unwrap();
        // A large object inside a large one: the same names in both, and after it.
        let line = big(&format!(r#""inner":{},"k{}":0"#, big(r#""x":0"#), HASHED_FROM * 2 + 1));
        assert_eq!(verdict(line.as_bytes()), Ok(()));
        let line = big(&format!(r#""inner":{},"k3":0"#, big(r#""x":0"#)));
        assert_eq!(verdict(line.as_bytes()), Err(Violation::DuplicateKey { key: "k3".into() }));
        let line = big(&format!(r#""inner":{}"#, big(r#""k3":0"#)));
        assert_eq!(verdict(line.as_bytes()), Err(Violation::DuplicateKey { key: "k3".into() }));
        // A large object inside a small one: the small one's keys stay its own.
        let line = format!(r#"{{"k20":0,"inner":{},"x":0}}"#, big(r#""x":0"#));
        assert_eq!(verdict(line.as_bytes()), Ok(()));
        let line = format!(r#"{{"k3":0,"inner":{},"k3":1}}"#, big(r#""x":0"#));
        assert_eq!(verdict(line.as_bytes()), Err(Violation::DuplicateKey { key: "k3".into() }));
        // A small object after a large one at the same depth starts empty.
        let line = format!(r#"{{"a":{},"b":{{"k1":0,"k2":0}}}}"#, big(r#""x":0"#));
        assert_eq!(verdict(line.as_bytes()), Ok(()));
    }

    #[test]
    fn the_members_of_an_envelope_with_many_keys_are_found() {
        let line = object_of(100_000, r#""jsonrpc":"2.0","id":7,"method":"m","params":{"a":1}"#);
        let (text, members) = check_members(&line, 8).unwrap();
        assert_eq!((members.id, members.method, members.params), (Some("7"), Some(r#""m""#), Some(r#"{"a":1}"#)));
        assert_eq!(members, members_read_again(text).unwrap());
    }

    /// Why the reserved keys are refused: serde_json reads such an object as another value.
    #[test]
    fn serde_json_reads_an_object_with_its_raw_value_marker_as_the_json_inside_it() {
        let hidden = r#"{"$serde_json::private::RawValue":"\"/tmp/allowed\""}"#;
        assert_eq!(serde_json::from_str::<serde_json::Value>(hidden).unwrap(), "/tmp/allowed");
    }

    #[test]
    fn reserved_keys_are_refused_anywhere_however_they_are_spelled() {
        let lines: [&[u8]; 5] = [
            br#"{"params":{"arguments":{"path":{"$serde_json::private::RawValue":"\"/tmp/ok\""}}}}"#,
            br#"{"$serde_json::private::RawValue":"{}"}"#,
            br#"{"a":[{"x":1,"$serde_json::private::Number":"1"}]}"#,
            br#"{"a":{"$serde_json::private::RawVal\u0075e":"1"}}"#,
            // The fuzz target's find, as it came.
            b"{\"jsonrp\\\\\":\"2.=\",\"method\":\"notifications/cancelled\",\"params\":{\"$serde_json::private::RawValue\":2}}",
        ];
        for line in lines {
            for verdict in [check(line, 8).map(|_| ()), check_members(line, 8).map(|_| ())] {
                assert!(matches!(verdict, Err(Violation::ReservedKey { .. })), "{}: {verdict:?}", line.escape_ascii());
            }
        }
    }
}
