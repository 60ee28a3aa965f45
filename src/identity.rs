//! Which program a server is: what trust, "allow for the session" and remembered rules are bound
//! to, so that a name (`run --name`) cannot carry them to another program.
//!
//! A remote server's identity is its URL ([`Identity::of_url`]). A command's is its command line (argv, exactly), the SHA-256 of its executable
//! (resolved through `PATH` as the child is spawned), and the SHA-256 of the code files named on
//! its command line (arguments that are existing regular files: `python3 server.py`, `node
//! dist/index.js`). It is one digest, `sha256:…`, over all of these.
//!
//! Hashing is capped: at most [`MAX_FILES`] files besides the executable, each read up to
//! [`MAX_FILE_BYTES`] (the executable up to [`MAX_PROGRAM_BYTES`]); a longer file counts by the
//! digest of that much and its length. What the program loads later (imports, packages that
//! `npx` or `uvx` fetch, an interpreter behind a shim or `/usr/bin/env`) is outside it: pin
//! versions on the command line, where the argv covers them.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// What stands for the program's digest in a remote server's identity.
const REMOTE: &str = "remote: its identity is its URL";

/// Code files named on the command line that are hashed, at most.
pub const MAX_FILES: usize = 16;
/// Bytes of one such file that are hashed, at most.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// Bytes of the executable that are hashed, at most (node is about 100 MB).
pub const MAX_PROGRAM_BYTES: u64 = 256 * 1024 * 1024;

/// One server's identity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    /// `sha256:…` over everything below (the argv byte for byte).
    pub id: String,
    /// The command line as given (lossy where it is not UTF-8; the digest is exact).
    pub argv: Vec<String>,
    /// The executable, as `PATH` resolves it.
    pub program: Hashed,
    /// The code files named on the command line.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<Hashed>,
    /// Files named on the command line beyond [`MAX_FILES`], not hashed.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unhashed: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A file and its digest (or why it has none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hashed {
    pub path: String,
    /// `sha256:…`; `sha256:… of the first N of M bytes` for a file over the limit; or what
    /// kept it from being read.
    pub digest: String,
}

impl Identity {
    /// The identity of the server `command` starts, as seen now.
    pub fn of(command: &[OsString]) -> Identity {
        let argv: Vec<String> = command.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let program = match command.first() {
            Some(name) => match which::which(name) {
                Ok(path) => Hashed { digest: hash_file(&path, MAX_PROGRAM_BYTES), path: path.display().to_string() },
                Err(e) => Hashed { path: name.to_string_lossy().into_owned(), digest: format!("not found: {e}") },
            },
            None => Hashed { path: String::new(), digest: "no command".into() },
        };
        let named: Vec<&OsString> =
            command.iter().skip(1).filter(|a| std::fs::metadata(a).is_ok_and(|m| m.is_file())).collect();
        let files: Vec<Hashed> = named
            .iter()
            .take(MAX_FILES)
            .map(|a| Hashed { path: a.to_string_lossy().into_owned(), digest: hash_file(Path::new(a), MAX_FILE_BYTES) })
            .collect();
        let unhashed = named.len().saturating_sub(MAX_FILES);
        // The argv exactly: a string where it is UTF-8, its bytes in hex where not.
        let exact: Vec<Value> = command
            .iter()
            .map(|a| match a.to_str() {
                Some(s) => Value::from(s),
                None => json!({"bytes": crate::hex::encode(OsStr::as_bytes(a))}),
            })
            .collect();
        let what = json!({"argv": exact, "program": program, "files": files, "unhashed": unhashed});
        let id = format!("sha256:{}", crate::wire::canonical::sha256_hex(&what));
        Identity { id, argv, program, files, unhashed }
    }

    /// The identity of a remote server: its URL's scheme, host, port and path (its query is
    /// left out: it may carry a key). What answers at that URL is the server's to change, as a
    /// program's code is its author's; trust is bound to the address, and a changed tool is
    /// still caught by pinning.
    pub fn of_url(url: &str) -> Identity {
        let id = format!("sha256:{}", crate::wire::canonical::sha256_hex(&json!({"url": url})));
        let program = Hashed { path: url.to_owned(), digest: REMOTE.to_owned() };
        Identity { id, argv: vec![url.to_owned()], program, files: Vec::new(), unhashed: 0 }
    }

    /// Whether this is a remote server's identity.
    pub fn is_remote(&self) -> bool {
        self.program.digest == REMOTE
    }

    /// The digest's first 12 hex digits, for people.
    pub fn short(&self) -> &str {
        self.id.get(..19).unwrap_or(&self.id)
    }

    /// The command line, for people.
    pub fn command_line(&self) -> String {
        self.argv
            .iter()
            .map(|a| if a.contains(char::is_whitespace) { format!("{a:?}") } else { a.clone() })
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// What differs from `before`, in words.
    pub fn differences(&self, before: &Identity) -> String {
        let mut parts = Vec::new();
        if self.is_remote() || before.is_remote() {
            return format!("the server was {}, is {}", before.command_line(), self.command_line());
        }
        if self.argv != before.argv {
            parts.push(format!("the command line was `{}`, is `{}`", before.command_line(), self.command_line()));
        }
        if self.program.path != before.program.path {
            parts.push(format!("the executable was {}, is {}", before.program.path, self.program.path));
        } else if self.program.digest != before.program.digest {
            parts.push(format!("the executable {} changed", self.program.path));
        }
        for file in &self.files {
            if before.files.iter().any(|b| b.path == file.path && b.digest != file.digest) {
                parts.push(format!("{} changed", file.path));
            }
        }
        if parts.is_empty() {
            parts.push("its code changed".into());
        }
        parts.join("; ")
    }
}

/// `sha256:…` of a file's first `limit` bytes, said so when the file is longer.
fn hash_file(path: &Path, limit: u64) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        let mut hasher = Sha256::new();
        let mut buffer = vec![0; 256 * 1024];
        let mut taken = (&mut file).take(limit);
        let mut hashed = 0u64;
        loop {
            let n = taken.read(&mut buffer)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            hashed += n as u64;
        }
        let hex = crate::hex::encode(&hasher.finalize());
        let more = hashed == limit && file.read(&mut [0u8; 1])? > 0;
        Ok(if more { format!("sha256:{hex} of the first {limit} of {len} bytes") } else { format!("sha256:{hex}") })
    };
    read().unwrap_or_else(|e| format!("unreadable: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command(parts: &[&str]) -> Vec<OsString> {
        parts.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_same_program_has_the_same_identity_and_code_on_the_command_line_counts() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("server.sh");
        std::fs::write(&script, "echo one\n").unwrap();
        let path = script.display().to_string();
        let a = Identity::of(&command(&["sh", &path, "/"]));
        assert_eq!(a, Identity::of(&command(&["sh", &path, "/"])));
        assert!(a.id.starts_with("sha256:") && a.id.len() == 71, "{}", a.id);
        assert!(a.program.path.ends_with("/sh") && a.program.digest.starts_with("sha256:"), "{a:?}");
        assert_eq!(a.files.len(), 1, "a folder is not a code file: {a:?}");

        std::fs::write(&script, "echo two\n").unwrap();
        let b = Identity::of(&command(&["sh", &path, "/"]));
        assert_ne!(a.id, b.id);
        assert_eq!(b.differences(&a), format!("{path} changed"));

        let c = Identity::of(&command(&["sh", &path, "/tmp"]));
        assert_ne!(b.id, c.id);
        assert!(c.differences(&b).starts_with("the command line was"), "{}", c.differences(&b));
        let d = Identity::of(&command(&["bash", &path, "/tmp"]));
        assert!(d.differences(&c).contains("; the executable was /"), "{}", d.differences(&c));
    }

    #[test]
    fn hashing_is_capped_in_files_and_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut parts = vec!["sh".to_owned()];
        for i in 0..MAX_FILES + 2 {
            let f = dir.path().join(format!("f{i}"));
            std::fs::write(&f, format!("{i}")).unwrap();
            parts.push(f.display().to_string());
        }
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let id = Identity::of(&command(&parts));
        assert_eq!((id.files.len(), id.unhashed), (MAX_FILES, 2));

        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; 10]).unwrap();
        assert_eq!(hash_file(&big, 4), hash_file(&big, 4));
        assert!(hash_file(&big, 4).ends_with("of the first 4 of 10 bytes"), "{}", hash_file(&big, 4));
        assert!(!hash_file(&big, 10).contains("first"), "exactly at the limit is whole");
        // Bytes past the limit do not count; bytes within it do.
        std::fs::write(&big, b"xxxxyyyyyy").unwrap();
        let four = crate::hex::encode(&Sha256::digest(b"xxxx"));
        assert_eq!(hash_file(&big, 4), format!("sha256:{four} of the first 4 of 10 bytes"));
    }

    #[test]
    fn a_remote_server_is_its_url() {
        let a = Identity::of_url("https://mcp.example.com:443/mcp");
        assert_eq!(a, Identity::of_url("https://mcp.example.com:443/mcp"));
        let b = Identity::of_url("https://mcp.example.com:443/other");
        assert_ne!(a.id, b.id);
        assert!(a.is_remote() && a.files.is_empty());
        assert_ne!(a.id, Identity::of(&command(&["https://mcp.example.com:443/mcp"])).id, "never a command's");
        assert_eq!(
            b.differences(&a),
            "the server was https://mcp.example.com:443/mcp, is https://mcp.example.com:443/other"
        );
    }

    #[test]
    fn a_program_not_on_the_path_is_said_so() {
        let id = Identity::of(&command(&["no-such-program-toolgate-test"]));
        assert!(id.program.digest.starts_with("not found"), "{id:?}");
    }
}
