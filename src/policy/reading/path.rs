//! Paths as servers read them.
//!
//! A `glob` test reads its value as a path, and a path means what the server's file system
//! makes of it. Each of these is a reading of the same string, and a glob is tested against all
//! of them (see `reading/mod.rs` for how readings decide):
//!
//! | reading | example | servers that read it so |
//! |---|---|---|
//! | the POSIX path as sent, `.` and `..` resolved lexically | `PROT/x\..\..\y` is a file in `PROT` | every server on Linux and macOS |
//! | `\` as a separator | `PROT\..\y` is `y` | servers that normalise Windows paths |
//! | cut at a NUL byte | `PROT/x\0/../..` is `PROT/x` | servers written in C |
//! | a `file:` URL, `%`-decoded | `file://localhost/srv/PROT%2Fx` | servers that take URLs |
//! | `~`, `~user` and `$VAR` expanded with the server's environment | `~/PROT/x` | server-filesystem (`~`), Python's `expanduser`/`expandvars` |
//! | Unicode NFC and NFD | `Cafe\u{301}` is `Café` | server-filesystem matches names by NFC; macOS stores NFD |
//! | relative to the server's working folders and the folders it serves | `PROT/x` | every server (`open`), server-filesystem (its allowed folders) |
//! | on disk: symlinks followed, `..` after a symlink physical, `/proc/self` the server | `allowed/link/x` | the kernel |

use std::path::Path;

use unicode_normalization::UnicodeNormalization;

/// What a server's file system makes of paths: its working folders, its environment, and its
/// disk. The proxy reads the running server's (`proxy/place.rs`); `explain` uses toolgate's own
/// ([`Local`]); policy examples and test suites use none ([`Lexical`]).
pub trait Place {
    /// Absolute folders a relative path may be resolved against.
    fn bases(&self) -> Vec<String>;
    /// The values a variable of the server's environment has (`HOME` for `~`).
    fn var(&self, name: &str) -> Vec<String>;
    /// The home folder of a user, for `~user`.
    fn home_of(&self, user: &str) -> Option<String>;
    /// An absolute path as the server's disk resolves it: every symlink followed; the part that
    /// does not exist kept as written. Several results when the server runs as several
    /// processes (`/proc/self` differs). Empty when there is no disk to look at.
    fn on_disk(&self, absolute: &str) -> Vec<String>;
}

/// No knowledge of any server: only the readings of the text itself.
pub struct Lexical;

impl Place for Lexical {
    fn bases(&self) -> Vec<String> {
        Vec::new()
    }
    fn var(&self, _: &str) -> Vec<String> {
        Vec::new()
    }
    fn home_of(&self, _: &str) -> Option<String> {
        None
    }
    fn on_disk(&self, _: &str) -> Vec<String> {
        Vec::new()
    }
}

/// This process's own place: its working folder, environment and disk (for `explain`: "as if
/// the server ran here").
pub struct Local;

impl Place for Local {
    fn bases(&self) -> Vec<String> {
        std::env::current_dir().ok().map(|d| d.to_string_lossy().into_owned()).into_iter().collect()
    }
    fn var(&self, name: &str) -> Vec<String> {
        std::env::var(name).ok().into_iter().collect()
    }
    fn home_of(&self, user: &str) -> Option<String> {
        home_of(user)
    }
    fn on_disk(&self, absolute: &str) -> Vec<String> {
        resolve(absolute, Path::new("/"), &[std::process::id()])
    }
}

/// The home folder of a user in the password database.
pub fn home_of(user: &str) -> Option<String> {
    let user = nix::unistd::User::from_name(user).ok()??;
    Some(user.dir.to_string_lossy().into_owned())
}

/// One step a reading of a path took from the text as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    CutAtNul,
    Trimmed,
    FileUrl,
    Home,
    Variable,
    Backslash,
    Nfc,
    Nfd,
    Relative,
    OnDisk,
}

impl Step {
    pub fn describe(self) -> &'static str {
        match self {
            Step::CutAtNul => "cut at the NUL byte",
            Step::Trimmed => "whitespace stripped",
            Step::FileUrl => "read as a file: URL",
            Step::Home => "~ expanded",
            Step::Variable => "$VARIABLE expanded",
            Step::Backslash => "\\ read as /",
            Step::Nfc => "Unicode NFC",
            Step::Nfd => "Unicode NFD",
            Step::Relative => "relative to the server's folder",
            Step::OnDisk => "resolved on the server's disk",
        }
    }
}

/// A reading of a path: the normalised path, and the steps that led to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathReading {
    pub path: String,
    pub steps: Vec<Step>,
}

/// Longer than this, a text is not read as a path at all (Linux's `PATH_MAX` is 4096 bytes, but
/// a server may shorten a padded path before it opens it): it counts as unreadable, which every
/// restricting test holds for (`reading::paths`).
pub const LONGEST_PATH: usize = 16 * 1024;

/// Every reading of `text` as a path, each normalised (`//`, `.` and `..` resolved lexically),
/// the reading of the text as sent first.
pub fn readings(text: &str, place: &dyn Place) -> Vec<PathReading> {
    if text.len() > LONGEST_PATH {
        return vec![PathReading { path: normalize(text), steps: Vec::new() }];
    }
    let mut forms: Vec<(String, Vec<Step>)> = vec![(text.to_owned(), Vec::new())];
    // Most paths are plain: nothing in them reads another way but relative to a folder and on disk.
    let plain = text.is_ascii()
        && !text.contains(['\0', '\\', '$', '\t', '\n', '\r'])
        && text.trim() == text
        && !text.starts_with('~')
        && !text.trim_start_matches(|c: char| c <= ' ').get(..5).is_some_and(|s| s.eq_ignore_ascii_case("file:"));
    if !plain {
        variants(text, place, &mut forms);
    }
    finish(forms, place)
}

/// The forms a text that is not a plain path takes: cut at NUL, read as a URL, expanded, with
/// `\\` as `/`, in NFC and NFD; each stage adds variants of everything before it.
fn variants(text: &str, place: &dyn Place, forms: &mut Vec<(String, Vec<Step>)>) {
    let add = |forms: &mut Vec<(String, Vec<Step>)>, path: String, steps: Vec<Step>| {
        if !forms.iter().any(|(p, _)| *p == path) {
            forms.push((path, steps));
        }
    };
    if let Some(nul) = text.find('\0') {
        add(forms, text[..nul].to_owned(), vec![Step::CutAtNul]);
    }
    for (form, steps) in forms.clone() {
        for path in file_url(&form) {
            add(forms, path, with(&steps, Step::FileUrl));
        }
    }
    for (form, steps) in forms.clone() {
        for path in home(&form, place) {
            add(forms, path, with(&steps, Step::Home));
        }
    }
    for (form, steps) in forms.clone() {
        for path in variables(&form, place) {
            add(forms, path, with(&steps, Step::Variable));
        }
    }
    for (form, steps) in forms.clone() {
        // What a server that trims its arguments (pydantic's strip_whitespace) opens.
        let trimmed = form.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c));
        if trimmed.len() != form.len() {
            add(forms, trimmed.to_owned(), with(&steps, Step::Trimmed));
        }
    }
    for (form, steps) in forms.clone() {
        if form.contains('\\') {
            add(forms, form.replace('\\', "/"), with(&steps, Step::Backslash));
        }
    }
    for (form, steps) in forms.clone() {
        if !form.is_ascii() {
            add(forms, form.nfc().collect(), with(&steps, Step::Nfc));
            add(forms, form.nfd().collect(), with(&steps, Step::Nfd));
        }
    }
}

/// Every form as a normalised path, relative to each of the server's folders where it is
/// relative, and as the server's disk resolves it.
fn finish(forms: Vec<(String, Vec<Step>)>, place: &dyn Place) -> Vec<PathReading> {
    let mut out: Vec<PathReading> = Vec::new();
    let push = |out: &mut Vec<PathReading>, path: String, steps: Vec<Step>| {
        if !out.iter().any(|r| r.path == path) {
            out.push(PathReading { path, steps });
        }
    };
    let bases = place.bases();
    // Each form as an absolute path, as written: the disk resolves its `..` after any symlink
    // physically, so it gets the path before any lexical `..` is resolved.
    let mut absolute: Vec<(String, Vec<Step>)> = Vec::new();
    for (form, steps) in forms {
        if form.starts_with('/') {
            absolute.push((form.clone(), steps.clone()));
        } else {
            for base in &bases {
                let joined = format!("{base}/{form}");
                push(&mut out, normalize(&joined), with(&steps, Step::Relative));
                absolute.push((joined, with(&steps, Step::Relative)));
            }
        }
        push(&mut out, normalize(&form), steps);
    }
    // The reading as sent goes first: `explain` names it when it is the one that matched.
    if let Some(at) = out.iter().position(|r| r.steps.is_empty()) {
        let first = out.remove(at);
        out.insert(0, first);
    }
    for (form, steps) in absolute {
        for path in place.on_disk(&form) {
            push(&mut out, path, with(&steps, Step::OnDisk));
        }
    }
    out
}

fn with(steps: &[Step], step: Step) -> Vec<Step> {
    let mut v = steps.to_vec();
    v.push(step);
    v
}

/// Resolves `//`, `.` and `..` lexically, POSIX style (`\` is an ordinary character). A `..`
/// above the root of an absolute path stays at the root; above a relative path it is kept.
pub fn normalize(path: &str) -> String {
    let already = !path.is_empty()
        && !path.contains("//")
        && (path == "/" || !path.ends_with('/'))
        && path.split('/').all(|s| s != "." && s != "..");
    if already {
        return path.to_owned();
    }
    let absolute = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                _ if absolute => {}
                _ => parts.push(".."),
            },
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else if joined.is_empty() {
        ".".into()
    } else {
        joined
    }
}

/// The paths a `file:` URL names, `%`-decoded: `file:///p`, `file://localhost/p`, `file:/p`. As
/// URL parsers read it (Python's `urlsplit`, WHATWG's `URL`): C0 controls and spaces around it
/// dropped, tabs and line breaks inside it removed. Another host is read both as dropped (Python's
/// `url2pathname(urlparse(u).path)`) and kept as `//host/p`.
pub fn file_url(text: &str) -> Vec<String> {
    let trimmed = text.trim_matches(|c: char| c <= ' ');
    let cleaned: String = trimmed.chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).collect();
    let Some(scheme) = cleaned.get(..5) else { return Vec::new() };
    if !scheme.eq_ignore_ascii_case("file:") {
        return Vec::new();
    }
    let rest = &cleaned[5..];
    let mut paths = Vec::new();
    match rest.strip_prefix("//") {
        Some(authority_and_path) => {
            let (host, path) =
                authority_and_path.split_at(authority_and_path.find('/').unwrap_or(authority_and_path.len()));
            paths.push(path.to_owned());
            if !host.is_empty() && !host.eq_ignore_ascii_case("localhost") {
                paths.push(format!("//{host}{path}"));
            }
        }
        None => paths.push(rest.to_owned()),
    }
    // A query or fragment is not part of the path.
    paths.into_iter().map(|p| percent_decode(p.split(['?', '#']).next().unwrap_or_default())).collect()
}

/// `%XX` escapes decoded (bytes that are not UTF-8 become U+FFFD).
pub(crate) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (bytes.get(i + 1).and_then(|b| hex(*b)), bytes.get(i + 2).and_then(|b| hex(*b)))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `~` and `~user` at the start, expanded.
fn home(text: &str, place: &dyn Place) -> Vec<String> {
    let Some(rest) = text.strip_prefix('~') else { return Vec::new() };
    let (user, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let homes = if user.is_empty() { place.var("HOME") } else { place.home_of(user).into_iter().collect() };
    homes.into_iter().map(|h| format!("{h}{tail}")).collect()
}

/// `$NAME` and `${NAME}` expanded with the server's environment (unknown ones kept), as
/// Python's `os.path.expandvars` does, once with each value a variable has among the server's
/// processes (at most a few).
fn variables(text: &str, place: &dyn Place) -> Vec<String> {
    let mut out = Vec::new();
    for k in 0..4 {
        if let Some(v) = variables_with(text, place, k)
            && !out.contains(&v)
        {
            out.push(v);
        }
    }
    out
}

/// `text` with each variable expanded with its `k`-th value (its last, when it has fewer).
fn variables_with(text: &str, place: &dyn Place, k: usize) -> Option<String> {
    if !text.contains('$') {
        return None;
    }
    let mut out = String::new();
    let mut rest = text;
    let mut changed = false;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, used) = match after.strip_prefix('{') {
            Some(inner) => match inner.find('}') {
                Some(end) => (&inner[..end], end + 2),
                None => ("", 0),
            },
            None => {
                let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
                (&after[..end], end)
            }
        };
        let values = if name.is_empty() { Vec::new() } else { place.var(name) };
        match values.get(k).or(values.last()) {
            Some(value) => {
                out.push_str(value);
                changed = true;
            }
            None => out.push_str(&rest[at..at + 1 + used]),
        }
        rest = &after[used..];
    }
    out.push_str(rest);
    changed.then_some(out)
}

/// Resolves an absolute path on disk as a process sees it: from `root` (its root folder), with
/// `/proc/self` (and `/proc/thread-self`) meaning each of `pids` in turn. Symlinks are followed
/// component by component, so `..` after a symlink climbs from its target, as the kernel does.
/// What does not exist is taken as written. A symlink loop gives no reading (the server's call
/// would fail).
pub fn resolve(absolute: &str, root: &Path, pids: &[u32]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, pid) in pids.iter().enumerate() {
        let (path, touched_self) = walk(absolute, root, *pid);
        if let Some(path) = path
            && !out.contains(&path)
        {
            out.push(path);
        }
        // Only paths that pass through /proc/self depend on which process reads them.
        if i == 0 && !touched_self {
            break;
        }
    }
    out
}

/// The most symlinks one resolution follows, as Linux's `MAXSYMLINKS`.
const MAX_LINKS: usize = 40;

fn walk(absolute: &str, root: &Path, pid: u32) -> (Option<String>, bool) {
    use std::ffi::{OsStr, OsString};
    use std::os::unix::ffi::{OsStrExt, OsStringExt};
    // Parts are bytes: a link's target need not be UTF-8, and the walk must follow it as it is.
    let mut done: Vec<OsString> = Vec::new();
    let mut at = root.to_path_buf();
    let mut todo: std::collections::VecDeque<OsString> = absolute.split('/').map(OsString::from).collect();
    let mut links = 0;
    let mut touched_self = false;
    while let Some(part) = todo.pop_front() {
        let part = match part.as_bytes() {
            b"" | b"." => continue,
            b".." => {
                if done.pop().is_some() {
                    at.pop();
                }
                continue;
            }
            b"self" | b"thread-self" if done.len() == 1 && done[0] == "proc" => {
                touched_self = true;
                OsString::from(pid.to_string())
            }
            _ => part,
        };
        at.push(&part);
        let mut name = part;
        let mut meta = std::fs::symlink_metadata(&at);
        // A name that is not there as written may be there in another Unicode form, which a
        // server that matches names by NFC (server-filesystem) takes.
        if meta.is_err()
            && let Some(text) = name.to_str().filter(|n| !n.is_ascii())
            && let Some(entry) = at.parent().and_then(|folder| equivalent_entry(folder, text))
        {
            at.pop();
            at.push(&entry);
            name = OsString::from(entry);
            meta = std::fs::symlink_metadata(&at);
        }
        match meta {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > MAX_LINKS {
                    return (None, touched_self);
                }
                let Ok(target) = std::fs::read_link(&at) else { return (None, touched_self) };
                at.pop();
                let target = target.into_os_string().into_vec();
                if target.starts_with(b"/") {
                    done.clear();
                    at = root.to_path_buf();
                }
                for (i, t) in target.split(|b| *b == b'/').enumerate() {
                    todo.insert(i, OsStr::from_bytes(t).to_owned());
                }
            }
            // A part that does not exist is taken as written, and the walk goes on: a `..` may
            // climb back out of it to parts that do exist (the kernel would fail there, but
            // Python's `os.path.realpath`, which servers use to resolve paths, goes on so).
            Ok(_) | Err(_) => done.push(name),
        }
    }
    let joined: Vec<u8> = done.iter().flat_map(|p| std::iter::once(b'/').chain(p.as_bytes().iter().copied())).collect();
    let path = if joined.is_empty() { "/".to_owned() } else { String::from_utf8_lossy(&joined).into_owned() };
    (Some(path), touched_self)
}

/// An entry of `folder` whose name is `name` in another Unicode normalization form.
fn equivalent_entry(folder: &Path, name: &str) -> Option<String> {
    let wanted: String = name.nfc().collect();
    std::fs::read_dir(folder).ok()?.flatten().find_map(|entry| {
        let entry = entry.file_name().to_string_lossy().into_owned();
        (entry.nfc().collect::<String>() == wanted).then_some(entry)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A place with a working folder, a home and a variable, and no disk.
    struct Fixed;

    impl Place for Fixed {
        fn bases(&self) -> Vec<String> {
            vec!["/srv/work".into()]
        }
        fn var(&self, name: &str) -> Vec<String> {
            match name {
                "HOME" => vec!["/home/me".into()],
                "DATA" => vec!["/srv/data".into()],
                "TWO" => vec!["/one".into(), "/two".into()],
                _ => Vec::new(),
            }
        }
        fn home_of(&self, user: &str) -> Option<String> {
            (user == "alice").then(|| "/home/alice".into())
        }
        fn on_disk(&self, _: &str) -> Vec<String> {
            Vec::new()
        }
    }

    fn paths(text: &str) -> Vec<String> {
        readings(text, &Fixed).into_iter().map(|r| r.path).collect()
    }

    #[test]
    fn the_text_as_sent_is_a_posix_path_and_comes_first() {
        assert_eq!(paths("/srv/PROT/x\\..\\..\\y")[0], "/srv/PROT/x\\..\\..\\y");
        assert!(paths("/srv/PROT/x\\..\\..\\y").contains(&"/srv/y".to_owned()), "\\ as a separator");
        assert_eq!(normalize("/a//b/./c/../d/"), "/a/b/d");
        assert_eq!(normalize("/../x"), "/x");
        assert_eq!(normalize("../x"), "../x");
    }

    #[test]
    fn home_variables_urls_nul_and_relative_paths_are_read() {
        assert!(paths("~/PROT/x").contains(&"/home/me/PROT/x".to_owned()));
        assert!(paths("~alice/x").contains(&"/home/alice/x".to_owned()));
        assert!(paths("$HOME/x").contains(&"/home/me/x".to_owned()));
        assert!(paths("${DATA}/x").contains(&"/srv/data/x".to_owned()));
        assert!(paths("$NOPE/x").contains(&"$NOPE/x".to_owned()));
        assert!(paths("$TWO/x").contains(&"/one/x".to_owned()) && paths("$TWO/x").contains(&"/two/x".to_owned()));
        assert!(paths("file://localhost/srv/PROT%2Fx").contains(&"/srv/PROT/x".to_owned()));
        assert!(paths("FILE:///srv/a%20b").contains(&"/srv/a b".to_owned()));
        assert!(paths("file:/etc/passwd").contains(&"/etc/passwd".to_owned()));
        // As Python's urlsplit and url2pathname read them: the host dropped, spaces around and
        // tabs inside removed.
        assert!(paths("file://elsewhere/srv/PROT/o").contains(&"/srv/PROT/o".to_owned()));
        assert!(paths(" file:///srv/PROT/p").contains(&"/srv/PROT/p".to_owned()));
        assert!(paths("file:///srv/PR\tOT/q").contains(&"/srv/PROT/q".to_owned()));
        assert!(paths("/srv/PROT/x\0/../../y").contains(&"/srv/PROT/x".to_owned()));
        assert!(paths("PROT/x").contains(&"/srv/work/PROT/x".to_owned()));
        assert!(paths("PROT/x").contains(&"PROT/x".to_owned()), "the relative text itself stays a reading");
        assert!(paths("Cafe\u{301}/x").contains(&"/srv/work/Caf\u{e9}/x".to_owned()));
    }

    #[test]
    fn symlinks_and_dot_dot_after_them_resolve_as_the_kernel_does() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("allowed")).unwrap();
        std::fs::create_dir_all(root.join("PROT/deep")).unwrap();
        std::os::unix::fs::symlink(root.join("PROT/deep"), root.join("allowed/link")).unwrap();
        std::os::unix::fs::symlink("loop", root.join("allowed/loop")).unwrap();
        let at = |p: &str| format!("{}/{p}", root.display());
        assert_eq!(resolve(&at("allowed/link/new.txt"), Path::new("/"), &[1]), vec![at("PROT/deep/new.txt")]);
        // The readings resolve the path as written, before `..` is taken lexically.
        let local = readings(&at("allowed/link/.."), &Local);
        assert!(local.iter().any(|r| r.path == at("PROT")), "{local:?}");
        // `..` after a symlink climbs from the link's target, not from the link's folder.
        assert_eq!(resolve(&at("allowed/link/../x"), Path::new("/"), &[1]), vec![at("PROT/x")]);
        assert_eq!(resolve(&at("allowed/loop/x"), Path::new("/"), &[1]), Vec::<String>::new());
        // Each name is matched in any Unicode form, as server-filesystem matches it, and the link
        // behind it followed.
        std::fs::create_dir_all(root.join("\u{f1}")).unwrap();
        std::os::unix::fs::symlink(root.join("PROT"), root.join("\u{f1}/li\u{301}nk")).unwrap();
        assert_eq!(resolve(&at("\u{f1}/l\u{ed}nk/x"), Path::new("/"), &[1]), vec![at("PROT/x")]);
        assert_eq!(resolve(&at("n\u{303}/li\u{301}nk/y"), Path::new("/"), &[1]), vec![at("PROT/y")]);
        // /proc/self is the process named, not toolgate.
        let me = std::process::id();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(resolve("/proc/self/cwd/x", Path::new("/"), &[me]), vec![format!("{}/x", cwd.display())]);
    }
}
