//! `toolgate record` / `run --record FILE`: a transcript of the session as toolgate saw it, one
//! JSON line per message with its direction, the time since the start and the exact text, and
//! a line per decision. The format is `fixtures/README.md`'s; `toolgate replay` reads it.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use base64::Engine;
use serde_json::{Value, json};

pub(super) struct Recorder {
    out: BufWriter<File>,
    start: Instant,
    broken: bool,
}

impl Recorder {
    pub fn create(path: &Path, server: &str) -> std::io::Result<Recorder> {
        let mut recorder = Recorder { out: BufWriter::new(File::create(path)?), start: Instant::now(), broken: false };
        recorder.write(&json!({"dir": "session", "t": 0.0, "server": server, "toolgate": env!("CARGO_PKG_VERSION")}));
        Ok(recorder)
    }

    fn t(&self) -> f64 {
        (self.start.elapsed().as_secs_f64() * 1e6).round() / 1e3
    }

    /// A line read from a peer (`c2s` or `s2c`), exactly: as text, or as base64 when it is not
    /// UTF-8.
    pub fn message(&mut self, dir: &str, line: &[u8], cut: bool) {
        let body = line.strip_suffix(b"\n").unwrap_or(line);
        let mut entry = match std::str::from_utf8(body) {
            Ok(text) => json!({"dir": dir, "t": self.t(), "line": text}),
            Err(_) => {
                json!({"dir": dir, "t": self.t(), "base64": base64::engine::general_purpose::STANDARD.encode(body)})
            }
        };
        if cut {
            entry["oversized"] = json!(true);
        }
        self.write(&entry);
    }

    /// What toolgate decided about a call.
    pub fn decision(&mut self, mut fields: Value) {
        fields["dir"] = json!("decision");
        fields["t"] = json!(self.t());
        self.write(&fields);
    }

    fn write(&mut self, entry: &Value) {
        if self.broken {
            return;
        }
        let result = serde_json::to_writer(&mut self.out, entry)
            .map_err(std::io::Error::other)
            .and_then(|()| self.out.write_all(b"\n"))
            .and_then(|()| self.out.flush());
        if let Err(e) = result {
            tracing::error!("cannot write the recording: {e}; recording stops");
            self.broken = true;
        }
    }
}
