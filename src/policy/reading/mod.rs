//! Readings: every way a real server may read the value an argument condition tests.
//!
//! The bytes of a call are checked strictly (`wire/strict.rs`), so there is one JSON value. But
//! a server does not stop at JSON: pydantic reads `"true"`, `1` and `"yes"` as `True` and
//! `"5_000"` as 5000, the Python SDK decodes an object sent as JSON text, JavaScript's `Number()`
//! reads `"0x1388"`, and a path means what the server's file system makes of it. Each such
//! interpretation is a *reading*, and a condition is judged under all of them:
//!
//! - a rule that restricts (deny, queue, ask, hold, notify, `always_ask`, `min_confidence`)
//!   matches when its conditions hold under ANY reading;
//! - a rule that lowers the gate below the default applies only when they hold under EVERY
//!   reading (see `rule.rs` for how the two combine).
//!
//! Where the tool's schema declares exactly the type the value has, the server's validator has
//! nothing to coerce, and only the readings of that type remain (a number is that number, not a
//! boolean). What a server's own code makes of a value of the declared type stays a reading: the
//! numbers a string holds, the JSON text in it (the Python SDK decodes it even for parameters it
//! lists as strings), the path it names. Anywhere else (no schema, no `type`, a union, a value of
//! another type) every coercion is a reading.

pub mod declared;
pub mod number;
pub mod path;

use std::borrow::Cow;
use std::collections::HashMap;
use std::fmt;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

pub use declared::{Declared, SchemaAt};
pub use number::{Family, Number};
pub use path::{Lexical, Local, PathReading, Place};

/// What the readings of a call's arguments know beyond the arguments themselves.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// The tool's input schema as the server listed it, when toolgate knows it.
    pub schema: Option<&'a Value>,
    /// The arguments as written, so that a number a double cannot hold is read exactly.
    pub text: Option<&'a str>,
    /// Where the server stands, for paths.
    pub place: &'a dyn Place,
}

impl Context<'_> {
    /// Readings of the values alone: no schema, no text, no server.
    pub fn lexical() -> Context<'static> {
        Context { schema: None, text: None, place: &Lexical }
    }
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context").field("schema", &self.schema.is_some()).field("text", &self.text.is_some()).finish()
    }
}

/// The value a pointer names under one reading of the arguments.
#[derive(Debug, Clone)]
pub struct Found<'a> {
    /// `None`: under this reading the pointer names nothing.
    pub value: Option<Cow<'a, Value>>,
    /// The schema's word on this place.
    at: SchemaAt<'a>,
    /// Where JSON text was decoded on the way, if it was (`/options`).
    pub decoded: Option<String>,
    /// The JSON text the value was parsed from and its place in it, for exact numbers.
    source: Option<Source<'a>>,
    /// A value toolgate cannot read, where a server may (JSON text nested beyond its limit).
    unreadable: bool,
}

/// Where a value is written: a JSON text, and the pointer to the value in it (borrowed from the
/// condition's own tokens). An array's elements are looked up in one pass by `texts`.
#[derive(Debug, Clone)]
struct Source<'a> {
    text: Cow<'a, str>,
    path: &'a [String],
}

impl Source<'_> {
    /// The text of the value, as written.
    fn raw(&self) -> Option<&str> {
        raw_at(&self.text, self.path)
    }
}

impl<'a> Found<'a> {
    fn missing(at: SchemaAt<'a>, decoded: Option<String>) -> Found<'a> {
        Found { value: None, at, decoded, source: None, unreadable: false }
    }

    /// A value toolgate cannot read where a server may.
    pub fn is_unreadable(&self) -> bool {
        self.unreadable
    }

    /// Whether the server's validator may coerce this value into another type.
    fn coercible(&self) -> bool {
        self.value.as_deref().is_some_and(|v| !self.at.declared().exactly(v))
    }
}

/// Every value `tokens` (a parsed JSON pointer) names in the arguments, one per reading: the
/// value as sent, and where a string on the way holds JSON text a server may decode (the Python
/// SDK decodes it for any parameter that is not a plain string), the value inside it.
pub fn resolve<'a>(arguments: &'a Map<String, Value>, tokens: &'a [String], cx: &Context<'a>) -> Vec<Found<'a>> {
    let Some(first) = tokens.first() else { return Vec::new() };
    let at = SchemaAt::arguments(cx.schema).child(first);
    let mut current = vec![match arguments.get(first.as_str()) {
        Some(value) => Found {
            value: Some(Cow::Borrowed(value)),
            at: at.clone(),
            decoded: None,
            source: cx.text.map(|t| Source { text: Cow::Borrowed(t), path: &tokens[..1] }),
            unreadable: false,
        },
        None => Found::missing(at.clone(), None),
    }];
    // A key the schema does not name may be another name (an alias) for the one the pointer
    // names: pydantic's `validation_alias` takes `file_path` for `path`, and the schema lists only
    // `path`. Such a key's value is one more reading of it, at the same place in the schema
    // (looked up once: there may be a million such keys).
    if let Some(schema) = cx.schema {
        let declared = schema.get("properties").and_then(Value::as_object);
        if declared.is_some_and(|d| d.contains_key(first.as_str())) {
            for (key, value) in arguments {
                if declared.is_some_and(|d| !d.contains_key(key.as_str())) {
                    current.push(Found {
                        value: Some(Cow::Borrowed(value)),
                        at: at.clone(),
                        decoded: None,
                        source: None,
                        unreadable: false,
                    });
                }
            }
        }
    }
    for i in 1..tokens.len() {
        let mut next = Vec::with_capacity(current.len());
        for found in current {
            step(found, tokens, i, &mut next);
        }
        current = next;
    }
    current
}

/// The pointer made of the first `n` tokens, for `explain`.
fn pointer_of(tokens: &[String], n: usize) -> String {
    tokens[..n].iter().map(|t| format!("/{}", t.replace('~', "~0").replace('/', "~1"))).collect()
}

/// One step of a pointer (to `tokens[i]`) from one reading of a value.
fn step<'a>(found: Found<'a>, tokens: &'a [String], i: usize, out: &mut Vec<Found<'a>>) {
    let token = tokens[i].as_str();
    let at = found.at.child(token);
    let Some(value) = found.value else {
        out.push(Found { at, ..found });
        return;
    };
    let source = found.source.map(|s| Source { path: &tokens[i - s.path.len()..=i], ..s });
    let member: Option<Cow<'a, Value>> = match &value {
        Cow::Borrowed(v) => member(v, token).map(Cow::Borrowed),
        Cow::Owned(v) => member(v, token).cloned().map(Cow::Owned),
    };
    match member {
        Some(m) => out.push(Found { value: Some(m), at, decoded: found.decoded, source, unreadable: false }),
        None => out.push(Found::missing(at, found.decoded)),
    }
    if let Value::String(s) = value.as_ref() {
        decoded_step(s, &found.at, tokens, i, out);
    }
}

/// The member `token` of an object, or the element it indexes of an array.
fn member<'v>(value: &'v Value, token: &str) -> Option<&'v Value> {
    match value {
        Value::Object(map) => map.get(token),
        Value::Array(items) => items.get(array_index(token)?),
        _ => None,
    }
}

/// The member `tokens[i]` of a string read as JSON text. A pointer that goes into a string can
/// only mean the structure in it, whatever the schema declares: a server that takes the string
/// and parses it itself reads just that.
fn decoded_step<'a>(text: &str, at: &SchemaAt<'a>, tokens: &'a [String], i: usize, out: &mut Vec<Found<'a>>) {
    match json_text(text) {
        JsonText::Container(decoded) => {
            let inner = Found {
                value: Some(Cow::Owned(decoded)),
                at: at.clone(),
                decoded: Some(pointer_of(tokens, i)),
                source: Some(Source { text: Cow::Owned(text.to_owned()), path: &tokens[i..i] }),
                unreadable: false,
            };
            step(inner, tokens, i, out);
        }
        JsonText::Unreadable => out.push(Found {
            value: None,
            at: at.child(&tokens[i]),
            decoded: Some(pointer_of(tokens, i)),
            source: None,
            unreadable: true,
        }),
        JsonText::Other(_) | JsonText::Not => {}
    }
}

fn array_index(token: &str) -> Option<usize> {
    if token.len() > 1 && token.starts_with('0') {
        return None;
    }
    token.parse().ok()
}

/// What a string is, read as JSON text.
enum JsonText {
    /// An object or an array.
    Container(Value),
    /// A scalar (the Python SDK leaves those as strings, except `null`).
    Other(Value),
    /// JSON text nested deeper than toolgate reads, which Python's parser still reads.
    Unreadable,
    /// Not JSON.
    Not,
}

/// Reads a string as Python's `json.loads` does: JSON whitespace around it; the `NaN`,
/// `Infinity` and `-Infinity` that Python accepts (read here as `null`, which no test is about);
/// a lone surrogate escape (`"\ud800"`, which Python keeps) read as U+FFFD. What Python reads and
/// toolgate cannot (numbers beyond a double's range, which Python reads as big integers or
/// infinity; nesting beyond serde_json's limit) is unreadable: restricting tests count it.
fn json_text(text: &str) -> JsonText {
    let trimmed = text.trim_matches([' ', '\t', '\n', '\r']);
    if trimmed.is_empty() {
        return JsonText::Not;
    }
    let repaired = python_leniencies(trimmed);
    if repaired.as_ref().is_some_and(|(_, non_finite)| *non_finite) {
        // Python reads NaN and Infinity as numbers, which compare as no JSON value does.
        return JsonText::Unreadable;
    }
    let parsed = serde_json::from_str::<Value>(repaired.as_ref().map_or(trimmed, |(r, _)| r.as_str()));
    match parsed {
        Ok(v @ (Value::Object(_) | Value::Array(_))) => JsonText::Container(v),
        Ok(v) => JsonText::Other(v),
        Err(e) => {
            let why = e.to_string();
            if why.contains("recursion limit") || why.contains("number out of range") {
                JsonText::Unreadable
            } else {
                JsonText::Not
            }
        }
    }
}

/// The text with what Python's `json` accepts and serde_json does not made readable: the
/// non-finite number literals outside strings replaced by `null`, and lone surrogate escapes
/// inside strings by `\ufffd`; `None` when there is none of either.
fn python_leniencies(text: &str) -> Option<(String, bool)> {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut changed = false;
    let mut non_finite = false;
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        if in_string {
            match c {
                '\\' if rest[1..].starts_with('u') => {
                    let (escape, used, fixed) = unicode_escape(rest);
                    out.push_str(escape);
                    changed |= fixed;
                    rest = &rest[used..];
                    continue;
                }
                '\\' => {
                    // Any other escape: the backslash and the character it escapes.
                    let next = rest[1..].chars().next().map_or(0, char::len_utf8);
                    out.push_str(&rest[..1 + next]);
                    rest = &rest[1 + next..];
                    continue;
                }
                '"' => in_string = false,
                _ => {}
            }
        } else if c == '"' {
            in_string = true;
        } else {
            let literal = ["-Infinity", "Infinity", "NaN"].into_iter().find(|l| rest.starts_with(l));
            if let Some(literal) = literal {
                out.push_str("null");
                rest = &rest[literal.len()..];
                changed = true;
                non_finite = true;
                continue;
            }
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    changed.then_some((out, non_finite))
}

/// A `\uXXXX` escape at the start of `rest` (and the low half after a high surrogate): the text to
/// keep, how much of `rest` it used, and whether a lone surrogate was replaced.
fn unicode_escape(rest: &str) -> (&str, usize, bool) {
    let code = |at: usize| -> Option<u32> {
        let hex = rest.get(at..at + 6)?.strip_prefix("\\u")?;
        u32::from_str_radix(hex, 16).ok()
    };
    match code(0) {
        None => (&rest[..2], 2, false),
        Some(high @ 0xD800..=0xDBFF) => match code(6) {
            Some(0xDC00..=0xDFFF) => (&rest[..12], 12, false),
            _ => {
                let _ = high;
                ("\\ufffd", 6, true)
            }
        },
        Some(0xDC00..=0xDFFF) => ("\\ufffd", 6, true),
        Some(_) => (&rest[..6], 6, false),
    }
}

/// What one reading makes of a value.
#[derive(Debug, Clone)]
pub enum Seen<'v> {
    /// The pointer names nothing.
    Missing,
    /// A value toolgate cannot read where a server may: every restricting test holds for it,
    /// and no test holds under every reading.
    Unreadable,
    /// A JSON value.
    Json(Cow<'v, Value>),
    /// A number.
    Number(Number),
    /// A text, for a pattern.
    Text(Cow<'v, str>),
    /// A path, for a glob.
    Path(PathReading),
    /// A value that has no text (an object, `null`, an empty array), for a pattern.
    NoText,
    /// A value no server reads as a number, for a comparison.
    NotNumber,
}

/// How a reading was come by, for `explain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum How {
    AsSent,
    /// Element `i` of an array (a pattern holds for an array when it holds for its elements).
    Element(usize),
    /// Read from a string by a number parser.
    NumberFrom(Family),
    /// A double's rounding of the number as sent.
    Rounded,
    /// A coercion between types, named.
    Coerced(&'static str),
}

/// One reading: what it makes of the value, how, and from where.
#[derive(Debug, Clone)]
pub struct Reading<'v> {
    pub seen: Seen<'v>,
    pub how: How,
    /// The value it was read from.
    pub from: Option<Cow<'v, Value>>,
    /// Where JSON text was decoded on the way to it.
    pub decoded: Option<String>,
}

impl Reading<'_> {
    /// A sentence for `explain`: "the number 5000, read from the string \"5_000\" by Python's
    /// int()/Decimal(), pydantic".
    pub fn describe(&self) -> String {
        let what = match &self.seen {
            Seen::Missing => "a missing argument".to_owned(),
            Seen::Unreadable => {
                "a value toolgate cannot read (JSON text nested too deep), which a server may".to_owned()
            }
            Seen::Json(v) => format!("the value {v}"),
            Seen::Number(n) => format!("the number {n}"),
            Seen::Text(t) => format!("the text {t:?}"),
            Seen::Path(p) => format!("the path {:?}", p.path),
            Seen::NoText => "a value without text".to_owned(),
            Seen::NotNumber => "no number".to_owned(),
        };
        let from = self.from.as_deref().map(|v| format!(", read from {}", describe_value(v))).unwrap_or_default();
        let how = match (&self.how, &self.seen) {
            (How::AsSent, Seen::Path(p)) if !p.steps.is_empty() => {
                let steps: Vec<&str> = p.steps.iter().map(|s| s.describe()).collect();
                format!(" ({})", steps.join(", "))
            }
            (How::AsSent, _) => String::new(),
            (How::Element(i), _) => format!(" (element {i})"),
            (How::NumberFrom(f), _) => format!(" by {}", f.describe()),
            (How::Rounded, _) => " (as a double)".to_owned(),
            (How::Coerced(name), _) => format!(" ({name})"),
        };
        let decoded = self.decoded.as_deref().map(|p| format!(", in the JSON text at {p}")).unwrap_or_default();
        let from =
            if matches!(self.how, How::AsSent) && !matches!(self.seen, Seen::Path(_)) { String::new() } else { from };
        format!("{what}{from}{how}{decoded}")
    }
}

fn describe_value(v: &Value) -> String {
    match v {
        Value::String(s) => format!("the string {s:?}"),
        other => {
            let text = other.to_string();
            if text.len() > 60 { format!("{}…", text.chars().take(60).collect::<String>()) } else { text }
        }
    }
}

/// The exact number a JSON number is: from its text where a double cannot hold it.
fn exact(n: &serde_json::Number, source: Option<&Source<'_>>) -> Number {
    if let Some(i) = n.as_i64() {
        return Number::from_i128(i.into());
    }
    if let Some(u) = n.as_u64() {
        return Number::from_i128(u.into());
    }
    source
        .and_then(Source::raw)
        .and_then(|raw| number::decimal_literal(raw.trim()))
        .unwrap_or_else(|| Number::from_f64(n.as_f64().unwrap_or(f64::NAN)))
}

/// The text of the value at `path` in a JSON text.
fn raw_at<'t>(text: &'t str, path: &[String]) -> Option<&'t str> {
    let mut current: &'t RawValue = serde_json::from_str(text).ok()?;
    for token in path {
        let inner = current.get().trim_start();
        current = if inner.starts_with('{') {
            let members: HashMap<String, &'t RawValue> = serde_json::from_str(current.get()).ok()?;
            members.get(token.as_str()).copied()?
        } else if inner.starts_with('[') {
            let items: Vec<&'t RawValue> = serde_json::from_str(current.get()).ok()?;
            items.get(array_index(token)?).copied()?
        } else {
            return None;
        };
    }
    Some(current.get())
}

/// Elements of an array read at most, and texts read as paths at most: beyond them, a value
/// counts as unreadable (every restricting test holds for it), so that no argument can make a
/// decision slow.
const MAX_ELEMENTS: usize = 4096;

/// The readings a pattern test (regex) judges: texts. An array is read through its elements
/// (nested arrays too), and as its elements joined by a space (an argument vector a server runs)
/// and by a comma (JavaScript's `String()`). A JSON string that a server decodes is read decoded,
/// whatever the schema declares: the Python SDK decodes JSON text for any parameter not
/// annotated a plain `str`, even one it lists as a string.
pub fn texts<'v>(found: &'v [Found<'v>]) -> Vec<Reading<'v>> {
    let mut out = Vec::new();
    for f in found {
        let base = Reading { seen: Seen::Missing, how: How::AsSent, from: None, decoded: f.decoded.clone() };
        let Some(value) = f.value.as_deref() else {
            out.push(Reading { seen: if f.unreadable { Seen::Unreadable } else { Seen::Missing }, ..base });
            continue;
        };
        let coerce = f.coercible();
        let from = Some(Cow::Borrowed(value));
        match value {
            Value::Array(items) if !items.is_empty() => {
                let mut elements = Vec::new();
                flatten(items, &mut elements);
                if elements.len() > MAX_ELEMENTS {
                    out.push(Reading { seen: Seen::Unreadable, from, ..base });
                    continue;
                }
                // The elements' own texts, as written where a double cannot hold a number.
                let raws: Option<Vec<&str>> = (items
                    .iter()
                    .any(|i| i.as_number().is_some_and(serde_json::Number::is_f64)))
                .then(|| {
                    f.source.as_ref().and_then(Source::raw).and_then(|r| serde_json::from_str::<Vec<&RawValue>>(r).ok())
                })
                .flatten()
                .map(|raws| raws.into_iter().map(RawValue::get).collect());
                let mut joined: Vec<String> = Vec::new();
                for (i, item) in elements.iter().enumerate() {
                    let mut element = Vec::new();
                    let raw = raws.as_ref().and_then(|r| r.get(i)).copied().filter(|_| elements.len() == items.len());
                    scalar_texts(item, raw, coerce, &mut element);
                    if let Some((Seen::Text(t), _)) = element.first() {
                        joined.push(t.to_string());
                    }
                    out.extend(element.into_iter().map(|(seen, how)| Reading {
                        seen,
                        how: if how == How::AsSent { How::Element(i) } else { how },
                        from: from.clone(),
                        decoded: f.decoded.clone(),
                    }));
                }
                if joined.len() > 1 {
                    for (separator, name) in [
                        (" ", "the elements joined by spaces, as a command line"),
                        (",", "JavaScript's String() of an array"),
                    ] {
                        out.push(Reading {
                            seen: Seen::Text(Cow::Owned(joined.join(separator))),
                            how: How::Coerced(name),
                            from: from.clone(),
                            decoded: f.decoded.clone(),
                        });
                    }
                }
            }
            _ => {
                let mut own = Vec::new();
                let raw = f
                    .source
                    .as_ref()
                    .filter(|_| value.as_number().is_some_and(serde_json::Number::is_f64))
                    .and_then(Source::raw);
                scalar_texts(value, raw, coerce, &mut own);
                out.extend(own.into_iter().map(|(seen, how)| Reading {
                    seen,
                    how,
                    from: from.clone(),
                    ..base.clone()
                }));
                if let Value::String(s) = value {
                    // What a validator that strips whitespace (pydantic's strip_whitespace) reads.
                    let trimmed = s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c));
                    if trimmed.len() != s.len() {
                        out.push(Reading {
                            seen: Seen::Text(Cow::Borrowed(trimmed)),
                            how: How::Coerced("whitespace stripped"),
                            from: from.clone(),
                            ..base.clone()
                        });
                    }
                    match json_text(s) {
                        JsonText::Container(decoded) => {
                            for reading in texts_of_owned(decoded) {
                                out.push(Reading {
                                    from: from.clone(),
                                    decoded: Some("(the value)".into()),
                                    ..reading
                                });
                            }
                        }
                        JsonText::Unreadable => out.push(Reading {
                            seen: Seen::Unreadable,
                            from: from.clone(),
                            decoded: Some("(the value)".into()),
                            ..base.clone()
                        }),
                        JsonText::Other(_) | JsonText::Not => {}
                    }
                }
            }
        }
    }
    out
}

/// The elements of an array and of the arrays in it, in order.
fn flatten<'v>(items: &'v [Value], out: &mut Vec<&'v Value>) {
    for item in items {
        match item {
            Value::Array(inner) if out.len() <= MAX_ELEMENTS => flatten(inner, out),
            other => out.push(other),
        }
    }
}

/// The texts of a value decoded from JSON text (owned).
fn texts_of_owned(value: Value) -> Vec<Reading<'static>> {
    let found = [Found {
        value: Some(Cow::Owned(value)),
        at: SchemaAt::unknown(),
        decoded: None,
        source: None,
        unreadable: false,
    }];
    texts(&found).into_iter().map(into_static).collect()
}

fn into_static(r: Reading<'_>) -> Reading<'static> {
    let seen = match r.seen {
        Seen::Missing => Seen::Missing,
        Seen::Unreadable => Seen::Unreadable,
        Seen::Json(v) => Seen::Json(Cow::Owned(v.into_owned())),
        Seen::Number(n) => Seen::Number(n),
        Seen::Text(t) => Seen::Text(Cow::Owned(t.into_owned())),
        Seen::Path(p) => Seen::Path(p),
        Seen::NoText => Seen::NoText,
        Seen::NotNumber => Seen::NotNumber,
    };
    Reading { seen, how: r.how, from: r.from.map(|v| Cow::Owned(v.into_owned())), decoded: r.decoded }
}

/// The texts one value (not an array to look into) has.
/// `raw` is the number's text as written, where a double holds it.
fn scalar_texts<'v>(value: &'v Value, raw: Option<&str>, coerce: bool, out: &mut Vec<(Seen<'v>, How)>) {
    match value {
        Value::String(s) => out.push((Seen::Text(Cow::Borrowed(s)), How::AsSent)),
        Value::Number(n) => {
            let as_sent =
                // Only a number a double holds may be written otherwise than serde_json prints it.
                raw.map(|r| r.trim().to_owned()).unwrap_or_else(|| n.to_string());
            let canonical =
                raw.and_then(|r| number::decimal_literal(r.trim())).unwrap_or_else(|| exact(n, None)).to_string();
            let serde_text = n.to_string();
            out.push((Seen::Text(Cow::Owned(as_sent.clone())), How::AsSent));
            for (text, name) in [(canonical, "JavaScript's String()"), (serde_text, "the number's JSON text")] {
                if text != as_sent && !out.iter().any(|(s, _)| matches!(s, Seen::Text(t) if **t == text)) {
                    out.push((Seen::Text(Cow::Owned(text)), How::Coerced(name)));
                }
            }
        }
        Value::Bool(b) => {
            out.push((Seen::Text(Cow::Borrowed(if *b { "true" } else { "false" })), How::AsSent));
            if coerce {
                out.push((
                    Seen::Text(Cow::Borrowed(if *b { "True" } else { "False" })),
                    How::Coerced("Python's str()"),
                ));
            }
        }
        Value::Null | Value::Object(_) | Value::Array(_) => out.push((Seen::NoText, How::AsSent)),
    }
}

/// The readings a glob judges: every text read as a path, every way [`path::readings`] lists.
pub fn paths<'v>(found: &'v [Found<'v>], place: &dyn Place) -> Vec<Reading<'v>> {
    let mut out = Vec::new();
    let mut read = 0;
    for reading in texts(found) {
        match &reading.seen {
            // A text too long to be a path, or too many of them: unreadable, not slow.
            Seen::Text(t) if t.len() > path::LONGEST_PATH || read >= MAX_ELEMENTS => {
                out.push(Reading { seen: Seen::Unreadable, ..reading });
            }
            Seen::Text(t) => {
                read += 1;
                for p in path::readings(t, place) {
                    out.push(Reading { seen: Seen::Path(p), ..reading.clone() });
                }
            }
            _ => out.push(reading),
        }
    }
    out
}

/// The readings a comparison judges: numbers.
pub fn numbers<'v>(found: &'v [Found<'v>]) -> Vec<Reading<'v>> {
    let mut out = Vec::new();
    for f in found {
        let base = Reading { seen: Seen::Missing, how: How::AsSent, from: None, decoded: f.decoded.clone() };
        let Some(value) = f.value.as_deref() else {
            out.push(Reading { seen: if f.unreadable { Seen::Unreadable } else { Seen::Missing }, ..base });
            continue;
        };
        let from = Some(Cow::Borrowed(value));
        let before = out.len();
        numbers_of(value, f.source.as_ref(), f.coercible(), &mut |seen, how| {
            out.push(Reading { seen, how, from: from.clone(), decoded: f.decoded.clone() })
        });
        if out.len() == before {
            out.push(Reading {
                seen: Seen::NotNumber,
                how: How::AsSent,
                from: from.clone(),
                decoded: f.decoded.clone(),
            });
        }
    }
    out
}

fn numbers_of<'v>(value: &'v Value, source: Option<&Source<'_>>, coerce: bool, add: &mut dyn FnMut(Seen<'v>, How)) {
    match value {
        Value::Number(n) => {
            let exact = exact(n, source);
            let rounded = exact.rounded();
            if rounded != exact {
                add(Seen::Number(rounded), How::Rounded);
            }
            add(Seen::Number(exact), How::AsSent);
        }
        // A numeric test on a string means the numbers it holds, however it is declared.
        Value::String(s) => {
            for (n, family) in number::readings_of_text(s) {
                add(Seen::Number(n), How::NumberFrom(family));
            }
        }
        // On an array, as a pattern is, through its elements: each is a number the server uses.
        Value::Array(items) if !items.is_empty() => {
            let mut elements = Vec::new();
            flatten(items, &mut elements);
            if elements.len() > MAX_ELEMENTS {
                return add(Seen::Unreadable, How::Coerced("an array too long to read"));
            }
            for element in elements {
                numbers_of(element, None, coerce, &mut |seen, how| {
                    add(seen, if how == How::AsSent { How::Coerced("an element of the array") } else { how })
                });
            }
        }
        _ if !coerce => {}
        Value::Bool(b) => {
            add(Seen::Number(Number::from_i128(i128::from(*b))), How::Coerced("pydantic's int, JavaScript's Number()"))
        }
        Value::Null => add(Seen::Number(Number::from_i128(0)), How::Coerced("JavaScript's Number(null)")),
        Value::Array(_) => add(Seen::Number(Number::from_i128(0)), How::Coerced("JavaScript's Number([])")),
        Value::Object(_) => {}
    }
}

/// The readings an equality test (`equals`, `one_of`) judges: the value as sent, and what a
/// server may coerce it into of the types of the `expected` values (a server that reads the
/// value as some third type never holds it equal to them). A string is always also read for the
/// numbers it holds when a number is expected, as a comparison reads it.
pub fn values<'v>(found: &'v [Found<'v>], expected: &[&Value]) -> Vec<Reading<'v>> {
    let mut kinds: Vec<Kind> = expected.iter().map(|v| Kind::of(v)).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let mut out = Vec::new();
    for f in found {
        let base = Reading { seen: Seen::Missing, how: How::AsSent, from: None, decoded: f.decoded.clone() };
        let Some(value) = f.value.as_deref() else {
            out.push(Reading { seen: if f.unreadable { Seen::Unreadable } else { Seen::Missing }, ..base });
            continue;
        };
        let from = Some(Cow::Borrowed(value));
        let mut add =
            |seen: Seen<'v>, how: How| out.push(Reading { seen, how, from: from.clone(), decoded: f.decoded.clone() });
        add(Seen::Json(Cow::Borrowed(value)), How::AsSent);
        let coerce = f.coercible();
        for kind in &kinds {
            match (kind, value) {
                (Kind::Number, Value::String(_)) => numbers_of(value, None, false, &mut add),
                // A number is also the double a float (or JavaScript) reads it as, whatever the
                // type declared.
                (Kind::Number, Value::Number(_)) => numbers_of(value, f.source.as_ref(), coerce, &mut |seen, how| {
                    if how != How::AsSent {
                        add(seen, how)
                    }
                }),
                _ if !coerce => {}
                (kind, value) => coerce_into(*kind, value, &mut add),
            }
        }
    }
    out
}

/// The JSON types an equality test can expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Null,
    Bool,
    Number,
    String,
    Container,
}

impl Kind {
    fn of(value: &Value) -> Kind {
        match value {
            Value::Null => Kind::Null,
            Value::Bool(_) => Kind::Bool,
            Value::Number(_) => Kind::Number,
            Value::String(_) => Kind::String,
            Value::Array(_) | Value::Object(_) => Kind::Container,
        }
    }
}

/// What validators and truthiness make of a value as another type.
fn coerce_into<'v>(kind: Kind, value: &'v Value, add: &mut dyn FnMut(Seen<'v>, How)) {
    let bool_ = |b: bool| Seen::Json(Cow::Owned(Value::Bool(b)));
    let text = |t: String| Seen::Json(Cow::Owned(Value::String(t)));
    match (kind, value) {
        (Kind::Bool, Value::String(s)) => {
            match s.to_ascii_lowercase().as_str() {
                "1" | "on" | "t" | "true" | "y" | "yes" => add(bool_(true), How::Coerced("pydantic's lax bool")),
                "0" | "off" | "f" | "false" | "n" | "no" => add(bool_(false), How::Coerced("pydantic's lax bool")),
                _ => {}
            }
            add(bool_(!s.is_empty()), How::Coerced("truthiness, in JavaScript and Python"));
        }
        (Kind::Bool, Value::Number(n)) => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            if f == 0.0 || f == 1.0 {
                add(bool_(f == 1.0), How::Coerced("pydantic's lax bool"));
            }
            add(bool_(f != 0.0 && !f.is_nan()), How::Coerced("truthiness, in JavaScript and Python"));
        }
        (Kind::Bool, Value::Null) => add(bool_(false), How::Coerced("truthiness, in JavaScript and Python")),
        (Kind::Bool, Value::Array(items)) => {
            // JavaScript: every array is true; Python: only a non-empty one.
            add(bool_(true), How::Coerced("truthiness, in JavaScript"));
            add(bool_(!items.is_empty()), How::Coerced("truthiness, in Python"));
        }
        (Kind::Bool, Value::Object(map)) => {
            add(bool_(true), How::Coerced("truthiness, in JavaScript"));
            add(bool_(!map.is_empty()), How::Coerced("truthiness, in Python"));
        }
        (Kind::Number, value) => numbers_of(value, None, true, add),
        (Kind::String, Value::Number(n)) => {
            add(text(n.to_string()), How::Coerced("Python's str()"));
            add(
                text(Number::from_f64(n.as_f64().unwrap_or(f64::NAN)).to_string()),
                How::Coerced("JavaScript's String()"),
            );
        }
        (Kind::String, Value::Bool(b)) => {
            add(text(b.to_string()), How::Coerced("JavaScript's String()"));
            add(text(if *b { "True".into() } else { "False".into() }), How::Coerced("Python's str()"));
        }
        (Kind::String, Value::Null) => {
            add(text("null".into()), How::Coerced("JavaScript's String()"));
            add(text("None".into()), How::Coerced("Python's str()"));
        }
        (Kind::Null | Kind::Container, Value::String(s)) => match json_text(s) {
            JsonText::Container(v) if kind == Kind::Container => {
                add(Seen::Json(Cow::Owned(v)), How::Coerced("JSON text, decoded"))
            }
            JsonText::Other(Value::Null) if kind == Kind::Null => {
                add(Seen::Json(Cow::Owned(Value::Null)), How::Coerced("JSON text, decoded (the Python SDK)"))
            }
            JsonText::Unreadable => add(Seen::Unreadable, How::Coerced("JSON text, decoded")),
            _ => {}
        },
        _ => {}
    }
    // JavaScript compares a one-element array as its element.
    if let Value::Array(items) = value
        && let [one] = items.as_slice()
    {
        if Kind::of(one) == kind {
            add(Seen::Json(Cow::Borrowed(one)), How::Coerced("a one-element array, as JavaScript compares it"));
        }
        if kind != Kind::Number {
            coerce_into(kind, one, add);
        }
    }
}

/// Whether two JSON values are equal, numbers by exact value.
pub fn json_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => exact(x, None).same(&exact(y, None)),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| json_equal(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| json_equal(v, w)))
        }
        _ => a == b,
    }
}

/// The number a JSON number in a policy is, exactly when it is an integer.
pub fn number_of(value: &Value) -> Option<Number> {
    match value {
        Value::Number(n) => Some(exact(n, None)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn found<'a>(args: &'a Map<String, Value>, pointer: &[&str], cx: &Context<'a>) -> Vec<Found<'a>> {
        // The tokens live as long as the test: a condition owns them in the policy.
        let tokens: &'static [String] = Box::leak(pointer.iter().map(|t| (*t).to_owned()).collect());
        resolve(args, tokens, cx)
    }

    fn args(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn json_text_is_decoded_on_the_way() {
        let a = args(json!({"options": "{\"recursive\": true}"}));
        let values: Vec<Option<Value>> = found(&a, &["options", "recursive"], &Context::lexical())
            .into_iter()
            .map(|f| f.value.map(Cow::into_owned))
            .collect();
        assert_eq!(values, vec![None, Some(json!(true))]);
        // Even where the schema declares a string: a pointer into it means the JSON inside.
        let schema = json!({"type": "object", "properties": {"options": {"type": "string"}}});
        let cx = Context { schema: Some(&schema), ..Context::lexical() };
        let values: Vec<Option<Value>> =
            found(&a, &["options", "recursive"], &cx).into_iter().map(|f| f.value.map(Cow::into_owned)).collect();
        assert_eq!(values, vec![None, Some(json!(true))]);
        // Python's json module reads NaN and Infinity as numbers no JSON value is: unreadable,
        // which every restricting test holds for.
        let a = args(json!({"options": "{\"x\": NaN, \"recursive\": true}"}));
        assert!(found(&a, &["options", "recursive"], &Context::lexical()).iter().any(|f| f.is_unreadable()));
        // A lone surrogate escape, which Python keeps: the object around it is still read.
        let a = args(json!({"options": "{\"recursive\": true, \"note\": \"\\ud800\", \"b\": \"\\\\ud800\"}"}));
        assert!(
            found(&a, &["options", "recursive"], &Context::lexical())
                .iter()
                .any(|f| f.value.as_deref() == Some(&json!(true)))
        );
        // A number beyond a double, which Python reads as a big integer: unreadable.
        let a = args(json!({"options": format!("{{\"recursive\": true, \"size\": 1{}}}", "0".repeat(400))}));
        assert!(found(&a, &["options", "recursive"], &Context::lexical()).iter().any(|f| f.is_unreadable()));
        // Nested beyond what toolgate parses: unreadable, which restricting tests treat as a match.
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        let a = args(json!({"options": format!("{{\"recursive\": {deep}}}")}));
        let _ = found(&a, &["options", "recursive"], &Context::lexical());
        let a = args(json!({"options": deep}));
        assert!(found(&a, &["options", "x"], &Context::lexical()).iter().any(|f| f.unreadable));
    }

    #[test]
    fn a_key_the_schema_does_not_name_is_read_as_an_alias() {
        let schema = json!({"type": "object", "properties": {"path": {"type": "string"}}});
        let cx = Context { schema: Some(&schema), ..Context::lexical() };
        let a = args(json!({"file_path": "/etc/passwd"}));
        let values: Vec<Option<Value>> =
            found(&a, &["path"], &cx).into_iter().map(|f| f.value.map(Cow::into_owned)).collect();
        assert_eq!(values, vec![None, Some(json!("/etc/passwd"))]);
        // Without a schema there is no telling which keys are another's names.
        assert_eq!(found(&a, &["path"], &Context::lexical()).len(), 1);
    }

    #[test]
    fn exact_numbers_come_from_the_text_as_written() {
        let text = r#"{"amount": 1000.00000000000000001, "n": [9007199254740993]}"#;
        let a: Map<String, Value> = serde_json::from_str(text).unwrap();
        let cx = Context { text: Some(text), ..Context::lexical() };
        let f = found(&a, &["amount"], &cx);
        let seen: Vec<String> = numbers(&f).iter().map(|r| r.describe()).collect();
        assert!(seen.iter().any(|s| s.starts_with("the number 1000.00000000000000001")), "{seen:?}");
        assert!(seen.iter().any(|s| s.starts_with("the number 1000,")), "{seen:?}");
        let f = found(&a, &["n", "0"], &cx);
        assert!(numbers(&f).iter().any(|r| matches!(&r.seen, Seen::Number(n) if n.to_string() == "9007199254740993")));
    }
}
