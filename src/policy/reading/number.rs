//! Numbers as servers read them, compared exactly.
//!
//! A policy bound and an argument are compared as exact decimals, never through `f64`:
//! `9007199254740993` is greater than `9007199254740992`, and `"1000.00000000000000001"` is
//! greater than 1000, as a server that reads `Decimal` or big integers sees them. Where a server
//! family does read through a double (Python's `float`, JavaScript's `Number`), the rounded value
//! is one more reading.
//!
//! [`readings_of_text`] lists every number the server families toolgate knows take from a string:
//!
//! | family | accepts |
//! |---|---|
//! | Python `int`, `float`, `Decimal`; pydantic in lax mode | surrounding whitespace (Unicode's, and `\x1c`-`\x1f`), a sign, `_` between digits (pydantic's `Decimal` drops every `_`), every Unicode decimal digit (`"٥٠٠٠"`), a fraction, an exponent, `inf`, `infinity`, `nan` |
//! | JavaScript `Number()` | surrounding whitespace (with the BOM), a sign, a fraction, an exponent, `Infinity`, `0x`/`0o`/`0b` integers; `""` is 0 |
//! | JavaScript `parseFloat()` | the longest decimal prefix after leading whitespace: `"5000 EUR"` is 5000 |
//! | JavaScript `parseInt()` | the longest integer prefix, `0x` hexadecimal: `"5e3"` is 5 |

use std::cmp::Ordering;
use std::fmt;

/// An exact number: a finite decimal, an infinity, or not a number.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Number {
    /// `digits` × 10^`exponent`; `digits` are ASCII digits without leading or trailing zeros
    /// (empty for zero, whose sign is ignored).
    Finite {
        negative: bool,
        digits: Box<str>,
        exponent: i64,
    },
    Infinite {
        negative: bool,
    },
    NaN,
}

/// Exponents beyond this are clamped: such numbers are far beyond any bound a policy writes,
/// and clamping keeps every comparison in `i64` arithmetic.
const EXPONENT_LIMIT: i64 = 1 << 60;

impl Number {
    /// A finite number from its integer digits, fraction digits and decimal exponent.
    fn from_parts(negative: bool, integer: &str, fraction: &str, exponent: i64) -> Number {
        let all: String = integer.chars().chain(fraction.chars()).collect();
        let trimmed = all.trim_start_matches('0');
        let significant = trimmed.trim_end_matches('0');
        let trailing = (trimmed.len() - significant.len()) as i64;
        let exponent = exponent.saturating_sub(fraction.len() as i64).saturating_add(trailing);
        if significant.is_empty() {
            return Number::Finite { negative: false, digits: "".into(), exponent: 0 };
        }
        Number::Finite {
            negative,
            digits: significant.into(),
            exponent: exponent.clamp(-EXPONENT_LIMIT, EXPONENT_LIMIT),
        }
    }

    /// An integer exactly.
    pub fn from_i128(n: i128) -> Number {
        Number::from_parts(n < 0, &n.unsigned_abs().to_string(), "", 0)
    }

    /// A double exactly as its shortest decimal form (the value JavaScript prints for it).
    pub fn from_f64(x: f64) -> Number {
        if x.is_nan() {
            return Number::NaN;
        }
        if x.is_infinite() {
            return Number::Infinite { negative: x < 0.0 };
        }
        // `{:e}` prints the shortest form that reads back as the same double, e.g. `1.5e3`.
        decimal_literal(&format!("{x:e}")).unwrap_or(Number::NaN)
    }

    /// The nearest double, as a number: what a server that reads through `f64` sees.
    pub fn rounded(&self) -> Number {
        match self {
            Number::Finite { .. } => self.to_string().parse::<f64>().map_or(Number::NaN, Number::from_f64),
            other => other.clone(),
        }
    }

    pub fn is_nan(&self) -> bool {
        matches!(self, Number::NaN)
    }

    /// Exact ordering; `None` when either is NaN (every comparison with NaN is false).
    pub fn compare(&self, other: &Number) -> Option<Ordering> {
        use Number::{Finite, Infinite, NaN};
        match (self, other) {
            (NaN, _) | (_, NaN) => None,
            (Infinite { negative: a }, Infinite { negative: b }) => Some(b.cmp(a)),
            (Infinite { negative }, Finite { .. }) => Some(if *negative { Ordering::Less } else { Ordering::Greater }),
            (Finite { .. }, Infinite { negative }) => Some(if *negative { Ordering::Greater } else { Ordering::Less }),
            (Finite { negative: na, digits: da, exponent: ea }, Finite { negative: nb, digits: db, exponent: eb }) => {
                let sign = |negative: bool, digits: &str| match (digits.is_empty(), negative) {
                    (true, _) => 0,
                    (false, true) => -1,
                    (false, false) => 1,
                };
                let (sa, sb) = (sign(*na, da), sign(*nb, db));
                if sa != sb || sa == 0 {
                    return Some(sa.cmp(&sb));
                }
                // Same sign, both non-zero: compare magnitudes, then flip for negatives.
                let lead_a = (da.len() as i64).saturating_add(*ea);
                let lead_b = (db.len() as i64).saturating_add(*eb);
                let magnitude = lead_a.cmp(&lead_b).then_with(|| da.as_bytes().cmp(db.as_bytes()));
                Some(if sa < 0 { magnitude.reverse() } else { magnitude })
            }
        }
    }

    /// Whether two numbers are the same value (NaN equals nothing).
    pub fn same(&self, other: &Number) -> bool {
        self.compare(other) == Some(Ordering::Equal)
    }
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::NaN => f.write_str("NaN"),
            Number::Infinite { negative } => f.write_str(if *negative { "-Infinity" } else { "Infinity" }),
            Number::Finite { digits, .. } if digits.is_empty() => f.write_str("0"),
            Number::Finite { negative, digits, exponent } => {
                if *negative {
                    f.write_str("-")?;
                }
                let len = digits.len() as i64;
                // Plain notation while it stays short; scientific beyond that.
                if (0..=21 - len).contains(exponent) {
                    write!(f, "{digits}{}", "0".repeat(*exponent as usize))
                } else if *exponent < 0 && -exponent < len {
                    let point = (len + exponent) as usize;
                    write!(f, "{}.{}", &digits[..point], &digits[point..])
                } else if *exponent < 0 && -exponent - len <= 6 {
                    write!(f, "0.{}{digits}", "0".repeat((-exponent - len) as usize))
                } else {
                    let (first, rest) = digits.split_at(1);
                    let point = if rest.is_empty() { String::new() } else { format!(".{rest}") };
                    write!(f, "{first}{point}e{}", exponent + len - 1)
                }
            }
        }
    }
}

/// Where a reading of a string as a number came from, for `explain`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Python's `int()`, `float()`, `Decimal()` and pydantic's lax numbers, exactly.
    Python,
    /// Python's `float()` and pydantic's `float`: the nearest double.
    PythonFloat,
    /// JavaScript's `Number()`, a double.
    JsNumber,
    /// JavaScript's `parseFloat()`, a double from the longest numeric prefix.
    JsParseFloat,
    /// JavaScript's `parseInt()`, the longest integer prefix.
    JsParseInt,
}

impl Family {
    pub fn describe(self) -> &'static str {
        match self {
            Family::Python => "Python's int()/Decimal(), pydantic",
            Family::PythonFloat => "Python's float(), a double",
            Family::JsNumber => "JavaScript's Number()",
            Family::JsParseFloat => "JavaScript's parseFloat()",
            Family::JsParseInt => "JavaScript's parseInt()",
        }
    }
}

/// Every number the known server families read from a string, each with its family; a string
/// no family reads as a number gives none.
pub fn readings_of_text(text: &str) -> Vec<(Number, Family)> {
    let mut out: Vec<(Number, Family)> = Vec::new();
    let mut add = |n: Number, family: Family| {
        if !out.iter().any(|(m, _)| *m == n) {
            out.push((n, family));
        }
    };
    if let Some(n) = python(text) {
        let rounded = n.rounded();
        add(n, Family::Python);
        add(rounded, Family::PythonFloat);
    }
    if let Some(n) = js_number(text) {
        let rounded = n.rounded();
        add(n, Family::JsNumber);
        add(rounded, Family::JsNumber);
    }
    if let Some(n) = js_parse_float(text) {
        let rounded = n.rounded();
        add(n, Family::JsParseFloat);
        add(rounded, Family::JsParseFloat);
    }
    if let Some(n) = js_parse_int(text) {
        add(n, Family::JsParseInt);
    }
    out
}

/// Python's whitespace (`str.isspace`, with `\x1c`-`\x1f`) or JavaScript's (with the BOM).
fn python_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn js_space(c: char) -> bool {
    // JavaScript's WhiteSpace and LineTerminator; unlike Python, not U+0085 nor \x1c-\x1f.
    (c.is_whitespace() && c != '\u{85}') || c == '\u{feff}'
}

/// The value of a Unicode decimal digit (general category Nd), which Python's number parsers
/// read like ASCII digits.
fn decimal_digit(c: char) -> Option<u32> {
    let code = c as u32;
    ND_ZEROS.iter().find(|&&zero| (zero..zero + 10).contains(&code)).map(|zero| code - zero)
}

/// The first code point (digit zero) of every run of ten Unicode decimal digits (Nd), from
/// Unicode 16.0. Generated from Python's `unicodedata` (14.0) and the later additions.
const ND_ZEROS: [u32; 76] = [
    0x30, 0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66, 0xDE6, 0xE50, 0xED0,
    0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90, 0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620,
    0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10, 0x104A0, 0x10D30, 0x10D40, 0x11066, 0x110F0, 0x11136,
    0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650, 0x116C0, 0x116D0, 0x116DA, 0x11730, 0x118E0, 0x11950, 0x11BF0,
    0x11C50, 0x11D50, 0x11DA0, 0x11F50, 0x16130, 0x16A60, 0x16AC0, 0x16B50, 0x16D70, 0x1CCF0, 0x1D7CE, 0x1D7D8,
    0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E4F0, 0x1E5F1, 0x1E950, 0x1FBF0,
];

/// The union of what Python's `int()`, `float()`, `Decimal()` and pydantic's lax `int`,
/// `float` and `Decimal` read: whitespace trimmed, every `_` dropped, Unicode digits as ASCII.
fn python(text: &str) -> Option<Number> {
    let trimmed = text.trim_matches(python_space);
    let mut ascii = String::with_capacity(trimmed.len());
    for c in trimmed.chars() {
        match c {
            '_' => {}
            c if c.is_ascii() => ascii.push(c),
            c => ascii.push(char::from_digit(decimal_digit(c)?, 10)?),
        }
    }
    let (negative, body) = sign(&ascii);
    match body.to_ascii_lowercase().as_str() {
        "inf" | "infinity" => return Some(Number::Infinite { negative }),
        "nan" | "snan" => return Some(Number::NaN),
        _ => {}
    }
    // `int(s, 0)` reads 0x, 0o and 0b literals, `_` between their digits too.
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(digits) = body.get(..2).filter(|p| p.eq_ignore_ascii_case(prefix)).map(|_| &body[2..]) {
            let n = radix_integer(digits, radix).filter(|_| !digits.is_empty())?;
            return Some(if negative { negate(n) } else { n });
        }
    }
    decimal_literal(&ascii)
}

/// JavaScript's `Number(text)`.
fn js_number(text: &str) -> Option<Number> {
    let t = text.trim_matches(js_space);
    if t.is_empty() {
        return Some(Number::from_parts(false, "", "", 0));
    }
    for (prefix, radix) in [("0x", 16), ("0X", 16), ("0o", 8), ("0O", 8), ("0b", 2), ("0B", 2)] {
        if let Some(digits) = t.strip_prefix(prefix) {
            return radix_integer(digits, radix).filter(|_| !digits.is_empty());
        }
    }
    let (negative, body) = sign(t);
    if body == "Infinity" {
        return Some(Number::Infinite { negative });
    }
    if body.contains('_') {
        return None;
    }
    decimal_literal(t)
}

/// JavaScript's `parseFloat(text)`: the longest prefix that is a decimal literal.
fn js_parse_float(text: &str) -> Option<Number> {
    let t = text.trim_start_matches(js_space);
    let (negative, body) = sign(t);
    if body.starts_with("Infinity") {
        return Some(Number::Infinite { negative });
    }
    let end = decimal_prefix(body);
    if end == 0 {
        return None;
    }
    let (negative_text, literal) = (if negative { "-" } else { "" }, &body[..end]);
    decimal_literal(&format!("{negative_text}{literal}"))
}

/// JavaScript's `parseInt(text)` (radix 10, or 16 after `0x`).
fn js_parse_int(text: &str) -> Option<Number> {
    let t = text.trim_start_matches(js_space);
    let (negative, body) = sign(t);
    let (digits, radix) = match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        Some(hex) => (hex, 16),
        None => (body, 10),
    };
    let end = digits.find(|c: char| !c.is_digit(radix)).unwrap_or(digits.len());
    let n = radix_integer(&digits[..end], radix).filter(|_| end > 0)?;
    Some(if negative { negate(n) } else { n })
}

fn negate(n: Number) -> Number {
    match n {
        Number::Finite { negative, digits, exponent } if !digits.is_empty() => {
            Number::Finite { negative: !negative, digits, exponent }
        }
        Number::Infinite { negative } => Number::Infinite { negative: !negative },
        other => other,
    }
}

/// An optional sign, and what follows it.
fn sign(text: &str) -> (bool, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    }
}

/// A TOML number literal (the bounds of a policy) exactly: `_` between digits, a sign, an
/// exponent, `inf`, `nan`, and `0x`/`0o`/`0b` integers.
pub fn toml_literal(text: &str) -> Option<Number> {
    let text: String = text.trim().chars().filter(|c| *c != '_').collect();
    let (negative, body) = sign(&text);
    match body {
        "inf" => return Some(Number::Infinite { negative }),
        "nan" => return Some(Number::NaN),
        _ => {}
    }
    for (prefix, radix) in [("0x", 16), ("0o", 8), ("0b", 2)] {
        if let Some(digits) = body.strip_prefix(prefix) {
            let n = radix_integer(digits, radix)?;
            return Some(if negative { negate(n) } else { n });
        }
    }
    decimal_literal(&text)
}

/// Exactly `[+-]? (digits [. digits?] | . digits) ([eE] [+-]? digits)?` in ASCII; `None` otherwise.
pub fn decimal_literal(text: &str) -> Option<Number> {
    let (negative, body) = sign(text);
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(at) => (&body[..at], Some(&body[at + 1..])),
        None => (body, None),
    };
    let (integer, fraction) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(integer) || !digits(fraction) || (integer.is_empty() && fraction.is_empty()) {
        return None;
    }
    let exponent = match exponent {
        None => 0,
        Some(e) => {
            let (negative, digits_text) = sign(e);
            if digits_text.is_empty() || !digits(digits_text) {
                return None;
            }
            // Saturate: an exponent of a thousand digits is just very large.
            let magnitude = digits_text.trim_start_matches('0');
            let value = if magnitude.len() > 18 { EXPONENT_LIMIT } else { magnitude.parse::<i64>().unwrap_or(0) };
            if negative { -value } else { value }
        }
    };
    Some(Number::from_parts(negative, integer, fraction, exponent))
}

/// The length of the longest prefix of `text` that is an unsigned decimal literal.
fn decimal_prefix(text: &str) -> usize {
    let b = text.as_bytes();
    let digits_from = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        i
    };
    let int_end = digits_from(0);
    let mut end = int_end;
    let mut i = int_end;
    if i < b.len() && b[i] == b'.' {
        let frac_end = digits_from(i + 1);
        if frac_end > i + 1 || int_end > 0 {
            end = frac_end;
        }
        i = frac_end;
    }
    if end == 0 {
        return 0;
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        let mut j = i + 1;
        if j < b.len() && (b[j] == b'+' || b[j] == b'-') {
            j += 1;
        }
        let exp_end = digits_from(j);
        if exp_end > j {
            end = exp_end;
        }
    }
    end
}

/// An unsigned integer in a radix, exactly; one of more than `MAX_RADIX_DIGITS` digits is read
/// as infinite (greater than any bound a policy writes), so that converting it stays cheap.
fn radix_integer(digits: &str, radix: u32) -> Option<Number> {
    const MAX_RADIX_DIGITS: usize = 400;
    if radix != 10 && digits.len() > MAX_RADIX_DIGITS {
        return digits.chars().all(|c| c.is_digit(radix)).then_some(Number::Infinite { negative: false });
    }
    if radix == 10 {
        return digits.bytes().all(|b| b.is_ascii_digit()).then(|| Number::from_parts(false, digits, "", 0));
    }
    // Decimal digits of the value, least significant first, built up digit by digit.
    let mut decimal: Vec<u8> = Vec::new();
    for c in digits.chars() {
        let mut carry = c.to_digit(radix)?;
        for d in decimal.iter_mut() {
            let v = u32::from(*d) * radix + carry;
            *d = (v % 10) as u8;
            carry = v / 10;
        }
        while carry > 0 {
            decimal.push((carry % 10) as u8);
            carry /= 10;
        }
    }
    let text: String = decimal.iter().rev().map(|d| char::from(b'0' + d)).collect();
    Some(Number::from_parts(false, &text, "", 0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(text: &str) -> Number {
        decimal_literal(text).unwrap()
    }

    fn read(text: &str) -> Vec<String> {
        let mut v: Vec<String> = readings_of_text(text).into_iter().map(|(n, _)| n.to_string()).collect();
        v.sort();
        v
    }

    #[test]
    fn exact_comparison_never_goes_through_a_double() {
        assert_eq!(n("9007199254740993").compare(&n("9007199254740992")), Some(Ordering::Greater));
        assert_eq!(n("1000.00000000000000001").compare(&n("1000")), Some(Ordering::Greater));
        assert_eq!(n("-1000.00000000000000001").compare(&n("-1000")), Some(Ordering::Less));
        assert!(n("1e3").same(&n("1000.000")));
        assert!(n("0").same(&n("-0.0")));
        assert_eq!(n("0.5").compare(&n("0")), Some(Ordering::Greater));
        assert_eq!(n("-0.5").compare(&n("0")), Some(Ordering::Less));
        assert_eq!(n("12").compare(&n("1.23e1")), Some(Ordering::Less));
        assert_eq!(n("1e999999999999999999999").compare(&n("1e308")), Some(Ordering::Greater));
        assert_eq!(Number::Infinite { negative: false }.compare(&n("1e99999")), Some(Ordering::Greater));
        assert_eq!(Number::NaN.compare(&n("1")), None);
        assert!(!Number::NaN.same(&Number::NaN));
    }

    #[test]
    fn doubles_and_integers_convert_exactly() {
        assert_eq!(Number::from_f64(5000.0), n("5000"));
        assert_eq!(Number::from_f64(0.1), n("0.1"));
        assert_eq!(Number::from_f64(-2.5e-7), n("-0.00000025"));
        assert_eq!(Number::from_i128(i128::from(u64::MAX)), n("18446744073709551615"));
        assert_eq!(n("1000.00000000000000001").rounded(), n("1000"));
        assert_eq!(n("5e3").to_string(), "5000");
        assert_eq!(n("1.25").to_string(), "1.25");
        assert_eq!(n("0.0001").to_string(), "0.0001");
        assert_eq!(n("1e40").to_string(), "1e40");
        assert_eq!(n("1.5e-30").to_string(), "1.5e-30");
    }

    #[test]
    fn python_and_pydantic_forms_are_read() {
        // What the Python SDK's pydantic and Python's own parsers accept (tests/python pins it).
        for text in [
            "5_000",
            " 5000 ",
            "+5000",
            "5e3",
            "5000.0",
            "٥٠٠٠",
            "５０００",
            "\u{a0}5000",
            "\u{1c}5000",
            "5__000",
            "  5000\n",
        ] {
            assert!(read(text).contains(&"5000".to_owned()), "{text:?}: {:?}", read(text));
        }
        assert!(read("1000.00000000000000001").contains(&"1000.00000000000000001".to_owned()));
        assert!(read("1000.00000000000000001").contains(&"1000".to_owned()), "the double Python's float reads");
        assert_eq!(read("inf"), vec!["Infinity"]);
        assert!(read("0x_1388").contains(&"5000".to_owned()), "Python's int(s, 0)");
        assert!(read("\u{85}0x1388").contains(&"5000".to_owned()));
        // A huge literal is read as infinite, at once.
        assert!(read(&format!("0x{}", "f".repeat(60_000))).contains(&"Infinity".to_owned()));
    }

    #[test]
    fn javascript_forms_are_read() {
        for text in ["0x1388", "0o11610", "0b1001110001000", "\u{feff}5000", "5000 EUR", "5000.9px"] {
            assert!(read(text).contains(&"5000".to_owned()) || text == "5000.9px", "{text:?}: {:?}", read(text));
        }
        assert!(read("5000.9px").contains(&"5000.9".to_owned()), "parseFloat");
        assert!(read("5000.9px").contains(&"5000".to_owned()), "parseInt");
        assert!(read("5e3").contains(&"5".to_owned()), "parseInt stops at the exponent");
        assert_eq!(read(""), vec!["0"], "Number(\"\") is 0");
        assert_eq!(read("   "), vec!["0"]);
        assert!(read("-Infinity").contains(&"-Infinity".to_owned()));
    }

    #[test]
    fn strings_no_family_reads_give_nothing() {
        for text in ["lots", "five", "--5", "0x", "e5", ".", "+", "1,000"] {
            assert!(
                readings_of_text(text).iter().all(|(n, _)| !n.same(&self::n("5000")) && !n.same(&self::n("1000"))),
                "{text:?}: {:?}",
                read(text)
            );
        }
        assert_eq!(read("lots"), Vec::<String>::new());
        assert_eq!(read("1,000"), vec!["1"], "parseFloat and parseInt stop at the comma");
    }
}
