//! The audit log: one JSON line per decision and per outcome, appended before a call is forwarded.
//!
//! If a decision cannot be written, the call is not forwarded: a call nobody can account for
//! later must not run. Each line is chained to the one before it by hash (`chain`), under an
//! exclusive lock on the file, so several proxies can share one log; `verify` finds edits,
//! deletions, reordering and truncation, and `show` prints the history. The live file is
//! rotated into segments by size or age, which are then compressed and, past a retention period
//! when one is set, deleted (`segments`); the chain runs on across them. Argument values whose
//! keys look like secrets are recorded as a digest (`secrets`).

pub mod chain;
pub mod secrets;
pub mod segments;
pub mod show;
pub mod verify;

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::decided::DecidedCall;
use crate::policy::{AuditRotation, Gate, Tier};
use chain::Tail;
pub use secrets::SecretKeys;

/// Who settled a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DecidedBy {
    /// The policy alone.
    Policy,
    /// A human, on some channel.
    Human,
    /// Nobody answered in time.
    Timeout,
    /// A hold ran out without being cancelled.
    Timer,
    /// The client withdrew the call (`notifications/cancelled`) while it waited.
    Client,
    /// toolgate itself, because it could not do what the policy asked (no channel, no audit).
    Toolgate,
    /// The tool's earned trust: its ask was lowered to notify.
    Trust,
}

impl DecidedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            DecidedBy::Policy => "policy",
            DecidedBy::Human => "human",
            DecidedBy::Timeout => "timeout",
            DecidedBy::Timer => "timer",
            DecidedBy::Client => "client",
            DecidedBy::Toolgate => "toolgate",
            DecidedBy::Trust => "trust",
        }
    }
}

/// What was done with the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Forwarded to the server.
    Forwarded,
    /// Answered by toolgate; the server never saw it.
    Refused,
    /// Dropped without an answer (the client cancelled it); the server never saw it.
    Dropped,
    /// Answered with toolgate's question (a 2026-07-28 input-required result); the client's
    /// retry with the answer is a call of its own, with its own record.
    Asked,
    /// Parked in the review queue; it runs only if a person approves it (a record of its own).
    Parked,
}

/// One decision, as written: the decided call, and what only the record says about it.
#[derive(Debug)]
pub struct DecisionRecord<'a> {
    pub call: &'a DecidedCall,
    /// The arguments a person changed them to, when the call ran edited.
    pub edited_arguments: Option<&'a Map<String, Value>>,
    pub request_id: Value,
    pub verdict: Verdict,
    pub decided_by: DecidedBy,
    /// Where a person answered: `terminal`, or `session` for a tool allowed earlier.
    pub channel: Option<&'a str>,
    /// Why the verdict differs from the gate, when it does (e.g. no approval channel).
    pub note: Option<&'a str>,
    pub waited_ms: u64,
}

/// A decision record's body as written. The decided call's fields and the record's own are
/// interleaved in the order records have always had: the hash chain covers these bytes.
#[derive(Serialize)]
struct Body<'a> {
    server: &'a str,
    tool: &'a str,
    arguments: &'a Map<String, Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    edited_arguments: Option<&'a Map<String, Value>>,
    request_id: &'a Value,
    gate: Gate,
    tier: Tier,
    /// Every rule that matched, by name.
    #[serde(serialize_with = "rule_names")]
    rules: &'a DecidedCall,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    verdict: Verdict,
    decided_by: DecidedBy,
    #[serde(skip_serializing_if = "Option::is_none")]
    channel: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    note: Option<&'a str>,
    /// The confidence the model reported, when the policy asks for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    confidence: Option<f64>,
    /// `-` when it is not known (a queue item older than the version it kept).
    policy: &'a str,
    waited_ms: u64,
}

fn rule_names<S: serde::Serializer>(call: &&DecidedCall, s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(call.rule_names())
}

impl<'a> Body<'a> {
    fn of(record: &'a DecisionRecord<'a>) -> Body<'a> {
        let call = record.call;
        Body {
            server: &call.server,
            tool: &call.tool,
            arguments: &call.arguments,
            edited_arguments: record.edited_arguments,
            request_id: &record.request_id,
            gate: call.gate,
            tier: call.tier,
            rules: call,
            reason: call.reason.as_deref(),
            verdict: record.verdict,
            decided_by: record.decided_by,
            channel: record.channel,
            note: record.note,
            confidence: call.confidence,
            policy: call.policy.as_deref().unwrap_or("-"),
            waited_ms: record.waited_ms,
        }
    }
}

/// How a forwarded call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A result without `isError`.
    Ok,
    /// A result with `isError: true`.
    ToolError,
    /// A JSON-RPC error.
    Error,
    /// The server went away before answering.
    NoAnswer,
    /// The client cancelled it (`notifications/cancelled`) after it was forwarded; it gets no
    /// answer, and whatever the server still answers is not recorded.
    Cancelled,
}

impl Drop for AuditLog {
    fn drop(&mut self) {
        self.flush();
        // Compression left half done is redone by the next rotation, but a proxy that ends
        // soon after one (or a test) should leave its segments as the settings say.
        if let Some(running) = self.upkeep.take() {
            let _ = running.join();
            if let (true, Some(rotation)) = (self.upkeep_again, self.rotation) {
                upkeep(&self.path, rotation);
            }
        }
    }
}

/// Compresses and expires the rotated segments beside `path`, logging what fails.
fn upkeep(path: &Path, rotation: AuditRotation) {
    match segments::upkeep(path, &rotation, crate::clock::now()) {
        Ok(deleted) => {
            for gone in deleted {
                tracing::info!("deleted the audit log segment {} (older than audit_retention)", gone.display());
            }
        }
        Err(e) => {
            tracing::error!("cannot compress or expire the old segments of the audit log {}: {e}", path.display())
        }
    }
}

/// The body of the record that begins a segment: the name the segment before it was rotated to.
#[derive(Serialize)]
struct SegmentBody<'a> {
    previous: &'a str,
}

/// What one locked write did.
struct Written {
    tail: Tail,
    /// The fresh live segment, its identity and its first record's time, when the write rotated.
    rotated: Option<(File, (u64, u64), SystemTime)>,
}

#[derive(Serialize)]
struct OutcomeBody {
    outcome: Outcome,
    ms: f64,
    /// An `error` outcome's JSON-RPC error: its code and the start of its message, so that the
    /// record says why (the server's own error, or the one toolgate wrote when the server could
    /// not be reached, answered an HTTP error, or ended its stream before the answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ErrorNote>,
}

/// What an outcome record keeps of a JSON-RPC error.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ErrorNote {
    pub code: i64,
    pub message: String,
}

impl ErrorNote {
    /// The longest message kept, in characters.
    const MESSAGE_CHARS: usize = 300;

    /// The error of a JSON-RPC error response, if the line is one.
    pub fn of(line: &[u8]) -> Option<ErrorNote> {
        #[derive(serde::Deserialize)]
        struct Response {
            error: Error,
        }
        #[derive(serde::Deserialize)]
        struct Error {
            code: i64,
            #[serde(default)]
            message: String,
        }
        let response: Response = serde_json::from_slice(line).ok()?;
        let mut message: String = response.error.message.chars().take(Self::MESSAGE_CHARS).collect();
        if message.len() < response.error.message.len() {
            message.push('…');
        }
        Some(ErrorNote { code: response.error.code, message })
    }
}

/// The fields every record begins with, in this order: `v`, `seq`, `prev`, `ts`, `event`,
/// `session`, `call`; the record's own fields follow.
struct Preamble<'a> {
    seq: u64,
    /// The hash of the line before, as hex.
    prev: &'a str,
    /// An RFC 3339 time.
    ts: &'a str,
    event: &'a str,
    /// `PID-MILLIS`.
    session: &'a str,
    call: u64,
}

/// Why a record could not be written.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The log could not be opened when the proxy started; every record fails with this.
    #[error("cannot open the audit log {}: {source}", path.display())]
    Open { path: PathBuf, source: Arc<io::Error> },
    #[error("cannot {verb} the audit log {}: {source}", path.display())]
    Io { verb: &'static str, path: PathBuf, source: io::Error },
    #[error("cannot encode an audit record: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("cannot encode an audit record: its body is not a JSON object")]
    NotAnObject,
    /// The write of a group of records this one was staged in failed.
    #[error(transparent)]
    Batch(Arc<Error>),
}

/// Encodes one record and its newline onto `out`. The preamble's values are numbers, hex, a time
/// and names toolgate chose, none with a character JSON escapes, so they are written as they
/// are (this runs for every call, and serde's field-by-field escaping of 64 hex digits was a
/// fifth of the record's cost); the body is encoded by serde_json, and its opening brace
/// becomes the comma that joins it to the preamble.
fn encode<T: Serialize + ?Sized>(preamble: &Preamble<'_>, body: &T, out: &mut Vec<u8>) -> Result<(), Error> {
    debug_assert!(
        [preamble.prev, preamble.ts, preamble.event, preamble.session]
            .iter()
            .all(|v| !v.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)),
        "an audit record's preamble needs no escaping"
    );
    let mut number = itoa::Buffer::new();
    out.extend_from_slice(b"{\"v\":2,\"seq\":");
    out.extend_from_slice(number.format(preamble.seq).as_bytes());
    for (key, value) in
        [("prev", preamble.prev), ("ts", preamble.ts), ("event", preamble.event), ("session", preamble.session)]
    {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b"\":\"");
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b",\"call\":");
    out.extend_from_slice(number.format(preamble.call).as_bytes());
    let body_at = out.len();
    serde_json::to_writer(&mut *out, body).map_err(Error::Encode)?;
    match out.get(body_at..) {
        Some(b"{}") => {
            out.truncate(body_at);
            out.push(b'}');
        }
        Some([b'{', ..]) => out[body_at] = b',',
        _ => return Err(Error::NotAnObject),
    }
    out.push(b'\n');
    Ok(())
}

/// Encodes a record as the next link of the chain that ends at `tail`, and moves `tail` to it.
fn link<T: Serialize + ?Sized>(
    tail: &mut Tail,
    (event, call, body): (&str, u64, &T),
    ts: &str,
    session: &str,
    out: &mut Vec<u8>,
) -> Result<(), Error> {
    let start = out.len();
    let seq = tail.seq + 1;
    encode(&Preamble { seq, prev: &tail.hash, ts, event, session, call }, body, out)?;
    *tail = Tail { end: 0, seq, hash: chain::hash(&out[start..]) };
    Ok(())
}

/// An append-only audit log for one proxy session.
pub struct AuditLog {
    path: PathBuf,
    /// The log, opened for appending, and its head record.
    file: Result<(File, File), Arc<io::Error>>,
    session: String,
    next_call: u64,
    /// The end of the chain as this process last wrote it; another writer moves the end.
    tail: Option<Tail>,
    /// The head record is behind this process's last write.
    head_behind: bool,
    /// Outcomes not yet written: they go out with the next record, or when the proxy is idle.
    outcomes: Vec<(u64, OutcomeBody)>,
    /// Records about no call ([`AuditLog::note`]), written as outcomes are.
    notes: Vec<(&'static str, Box<RawValue>)>,
    /// Decisions encoded and waiting to be written together ([`AuditLog::stage`]).
    staged: Vec<(u64, Box<RawValue>)>,
    /// Staged decisions whose write failed, with why, until the proxy takes them
    /// ([`AuditLog::take_failed`]): their calls must not run.
    failed: BTreeMap<u64, Arc<Error>>,
    secrets: SecretKeys,
    /// When the live segment rotates, and what becomes of the rotated ones; never, until a
    /// proxy sets it from its policy (a log opened for one record, by `review --run`, leaves
    /// rotation to the proxies, which know the policy's settings).
    rotation: Option<AuditRotation>,
    /// The device and inode of the live segment this process has open. Another writer that
    /// rotates it gives the path a new file, which this process sees when it takes the lock.
    live_id: (u64, u64),
    /// The time of the live segment's first record, once read (for `audit_rotate_age`).
    born: Option<SystemTime>,
    /// A rotation failed on this segment (no hard links here?): it grows on without retrying.
    rotation_failed: bool,
    /// Compression and retention after a rotation, on a thread of their own.
    upkeep: Option<std::thread::JoinHandle<()>>,
    /// A rotation happened while the upkeep thread was still busy.
    upkeep_again: bool,
}

impl AuditLog {
    /// Opens (creating) the log. A log that cannot be opened is not fatal here: every call is
    /// then refused with the reason, which reaches the model and the human.
    pub fn open(path: &Path) -> Self {
        let file = (|| {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let log = OpenOptions::new().create(true).read(true).append(true).open(path)?;
            let head =
                OpenOptions::new().create(true).truncate(false).read(true).write(true).open(chain::head_path(path))?;
            let id = segments::identity(&log.metadata()?);
            Ok::<_, std::io::Error>(((log, head), id))
        })()
        .map_err(Arc::new);
        let live_id = file.as_ref().map_or((0, 0), |(_, id)| *id);
        let file = file.map(|(files, _)| files);
        let started = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        AuditLog {
            path: path.to_owned(),
            file,
            session: format!("{}-{}", std::process::id(), started.as_millis()),
            next_call: 1,
            tail: None,
            head_behind: false,
            outcomes: Vec::new(),
            notes: Vec::new(),
            staged: Vec::new(),
            failed: BTreeMap::new(),
            secrets: SecretKeys::default(),
            rotation: None,
            live_id,
            born: None,
            rotation_failed: false,
            upkeep: None,
            upkeep_again: false,
        }
    }

    /// When the log rotates, and what becomes of rotated segments (`[settings] audit_rotate_*`).
    pub fn set_rotation(&mut self, rotation: AuditRotation) {
        self.rotation = Some(rotation);
    }

    /// Makes every write fail from now on, as a full disk does (tests).
    #[cfg(test)]
    pub fn fail_writes(&mut self) {
        if let Ok((log, _)) = &mut self.file {
            *log = OpenOptions::new().read(true).append(true).open("/dev/full").expect("/dev/full");
        }
    }

    /// Which argument keys are recorded as a digest instead of their value.
    pub fn set_secret_keys(&mut self, keys: SecretKeys) {
        self.secrets = keys;
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Why the log cannot be written, if it cannot.
    pub fn unavailable(&self) -> Option<Error> {
        self.file.as_ref().err().map(|source| Error::Open { path: self.path.clone(), source: Arc::clone(source) })
    }

    /// Writes a decision now (with any staged before it) and returns the call number that its
    /// outcome will refer to.
    pub fn decision(&mut self, record: &DecisionRecord<'_>) -> Result<u64, Error> {
        let call = self.stage(record)?;
        self.commit();
        match self.failed.remove(&call) {
            Some(problem) => Err(Error::Batch(problem)),
            None => Ok(call),
        }
    }

    /// Encodes a decision to be written with the next [`AuditLog::commit`], and returns its call
    /// number. The proxy stages the decisions of a burst of calls and writes them in one locked
    /// write before any of those calls is forwarded: the record is still on disk first, for a
    /// fraction of the system calls.
    pub fn stage(&mut self, record: &DecisionRecord<'_>) -> Result<u64, Error> {
        if let Some(problem) = self.unavailable() {
            return Err(problem);
        }
        let call = self.next_call;
        self.next_call += 1;
        let body = Body::of(record);
        let arguments = self.secrets.recordable(body.arguments);
        let edited = body.edited_arguments.and_then(|e| self.secrets.recordable(e));
        let body = Body {
            arguments: arguments.as_ref().unwrap_or(body.arguments),
            edited_arguments: edited.as_ref().or(body.edited_arguments),
            ..body
        };
        let body = serde_json::value::to_raw_value(&body).map_err(Error::Encode)?;
        self.staged.push((call, body));
        Ok(call)
    }

    /// Writes the staged decisions, and the outcomes noted before them, in one write. When that
    /// fails, every staged decision is failed (see [`AuditLog::take_failed`]).
    pub fn commit(&mut self) {
        if self.staged.is_empty() {
            return;
        }
        let staged = std::mem::take(&mut self.staged);
        let records: Vec<(&str, u64, &RawValue)> =
            staged.iter().map(|(call, body)| ("decision", *call, &**body)).collect();
        if let Err(problem) = self.append(&records) {
            let problem = Arc::new(problem);
            self.failed.extend(staged.iter().map(|(call, _)| (*call, Arc::clone(&problem))));
            // Outcomes noted for those calls (a cancellation in the same burst) go with them.
            self.outcomes.retain(|(call, _)| !self.failed.contains_key(call));
        }
    }

    /// The staged decisions that could not be written since the last time, with why.
    pub fn take_failed(&mut self) -> BTreeMap<u64, Arc<Error>> {
        std::mem::take(&mut self.failed)
    }

    /// Notes how a forwarded call ended. It is written with the next record, or when the proxy
    /// is idle ([`AuditLog::flush`]): the call already ran, so nothing waits for it, and one
    /// locked write then carries both. Failing to write it cannot un-run the call, so that is
    /// logged.
    pub fn outcome(&mut self, call: u64, outcome: Outcome, took: Duration) {
        // A call whose decision could not be written did not run: it has no outcome.
        if self.failed.contains_key(&call) {
            return;
        }
        self.outcome_with(call, outcome, took, None);
    }

    /// The outcome of a call answered with a JSON-RPC error, with that error.
    pub fn outcome_with(&mut self, call: u64, outcome: Outcome, took: Duration, error: Option<ErrorNote>) {
        if self.failed.contains_key(&call) {
            return;
        }
        let body = OutcomeBody { outcome, ms: (took.as_secs_f64() * 1e6).round() / 1e3, error };
        self.outcomes.push((call, body));
    }

    /// Notes something that happened to no call in particular (`event`, with `body`'s fields:
    /// a line toolgate refused, a policy that failed to reload), so that a person reading the
    /// record later sees it. Its `call` is 0. Written as outcomes are: with the next record, or
    /// when the proxy is idle; failing to write it is logged.
    pub fn note(&mut self, event: &'static str, body: &impl Serialize) {
        match serde_json::value::to_raw_value(body) {
            Ok(body) => self.notes.push((event, body)),
            Err(e) => tracing::error!("cannot encode an audit record: {e}"),
        }
    }

    /// Whether something is still to be written: outcomes, notes, or the head record.
    pub fn behind(&self) -> bool {
        self.head_behind || !self.outcomes.is_empty() || !self.notes.is_empty()
    }

    /// Writes the decisions staged and the outcomes noted so far, and moves the head record.
    pub fn flush(&mut self) {
        self.commit();
        if (!self.outcomes.is_empty() || !self.notes.is_empty())
            && let Err(e) = self.append::<()>(&[])
        {
            tracing::error!("{e}");
        }
        self.flush_head();
    }

    /// Locks the live segment. When another writer rotated the file this process has open since
    /// (or it was removed), the path names another file: that one is opened, and locked, instead.
    /// Returns the live segment's size, read in the same `stat` that checks it is still the file
    /// at the path (under the lock nobody else writes to it, so no seek is needed).
    fn lock_live(&mut self) -> Result<u64, Error> {
        loop {
            let file = match &mut self.file {
                Ok((file, _)) => file,
                Err(source) => return Err(Error::Open { path: self.path.clone(), source: Arc::clone(source) }),
            };
            let fail = |verb: &'static str, source: io::Error| Error::Io { verb, path: self.path.clone(), source };
            file.lock().map_err(|e| fail("lock", e))?;
            let now_at = match std::fs::metadata(&self.path) {
                Ok(meta) => Some((segments::identity(&meta), meta.len())),
                Err(e) if e.kind() == io::ErrorKind::NotFound => None,
                Err(e) => {
                    let _ = file.unlock();
                    return Err(fail("read", e));
                }
            };
            if let Some((id, size)) = now_at
                && id == self.live_id
            {
                return Ok(size);
            }
            let _ = file.unlock();
            let reopened = OpenOptions::new().create(true).read(true).append(true).open(&self.path);
            let reopened =
                reopened.and_then(|f| Ok((segments::identity(&f.metadata()?), f))).map_err(|e| fail("open", e))?;
            (self.live_id, *file) = reopened;
            self.tail = None;
            self.born = None;
            self.rotation_failed = false;
        }
    }

    /// Appends records to the chain, after the outcomes noted. Under the live segment's exclusive lock: find the end of the
    /// chain (remembered, unless another writer moved it) and write the line in one `write`.
    /// The head record follows soon after ([`AuditLog::flush_head`]), not on every record: it
    /// is a second file write, and the proxy moves it when it is idle, or at the latest when
    /// the log is closed.
    fn append<T: Serialize + ?Sized>(&mut self, records: &[(&str, u64, &T)]) -> Result<(), Error> {
        let size = self.lock_live()?;
        let written = self.write_locked(records, size);
        if let Ok((file, _)) = &self.file {
            let _ = file.unlock();
        }
        let mut written = written?;
        if let Some((fresh, id, born)) = written.rotated.take() {
            // Nobody else has written to the fresh segment yet: this process renamed it into
            // place while it held the old one's lock. From now on it is locked as any other.
            if let Ok((file, _)) = &mut self.file {
                *file = fresh;
            }
            (self.live_id, self.born) = (id, Some(born));
            self.start_upkeep();
        }
        self.tail = Some(written.tail);
        self.outcomes.clear();
        self.notes.clear();
        self.head_behind = true;
        Ok(())
    }

    /// The body of [`AuditLog::append`], with the live segment locked (`size` is its size, where
    /// the next line goes): rotates it first when it is due.
    fn write_locked<T: Serialize + ?Sized>(
        &mut self,
        records: &[(&str, u64, &T)],
        size: u64,
    ) -> Result<Written, Error> {
        let file = match &self.file {
            Ok((file, _)) => file,
            Err(source) => return Err(Error::Open { path: self.path.clone(), source: Arc::clone(source) }),
        };
        let path = &self.path;
        let fail = |verb: &'static str, source: io::Error| Error::Io { verb, path: path.clone(), source };
        let mut tail = match &self.tail {
            Some(tail) if tail.end == size => tail.clone(),
            _ => chain::read_tail(file, size).map_err(|e| fail("read", e))?,
        };
        let now = crate::clock::now();
        let ts = humantime::format_rfc3339_micros(now).to_string();
        if size == 0 {
            self.born = Some(now);
        }
        let due = match self.rotation {
            Some(_) if size == 0 || self.rotation_failed => false,
            Some(rotation) if size >= rotation.size => true,
            Some(AuditRotation { age: Some(age), .. }) => {
                // Read once per segment: the first record's time does not change.
                let born =
                    *self.born.get_or_insert_with(|| segments::start_of(file).ok().and_then(|(_, t)| t).unwrap_or(now));
                now.duration_since(born).is_ok_and(|d| d >= age)
            }
            Some(_) | None => false,
        };
        // Outcomes of calls decided before go first; an outcome of a call whose decision is
        // in this write (the client cancelled it in the same burst) follows its decision.
        let encode_all = |tail: &mut Tail, previous: Option<&str>| -> Result<Vec<u8>, Error> {
            // A decision and an outcome or two fit without growing.
            let mut bytes = Vec::with_capacity(1024 * records.len().max(1));
            let session = &self.session;
            if let Some(previous) = previous {
                link(tail, ("segment", 0, &SegmentBody { previous }), &ts, session, &mut bytes)?;
            }
            let in_this_write = |call: u64| records.iter().any(|&(_, c, _)| c == call);
            for (call, body) in self.outcomes.iter().filter(|(call, _)| !in_this_write(*call)) {
                link(tail, ("outcome", *call, body), &ts, session, &mut bytes)?;
            }
            for (event, body) in &self.notes {
                link(tail, (event, 0, &**body), &ts, session, &mut bytes)?;
            }
            for &record in records {
                link(tail, record, &ts, session, &mut bytes)?;
            }
            for (call, body) in self.outcomes.iter().filter(|(call, _)| in_this_write(*call)) {
                link(tail, ("outcome", *call, body), &ts, session, &mut bytes)?;
            }
            Ok(bytes)
        };
        if due {
            // The new segment begins with a record naming the one before it, chained to its last.
            let rotated = segments::start_of(file).map(|(first, _)| segments::rotated_path(path, first, tail.seq));
            let attempt = rotated.and_then(|rotated| {
                let mut fresh_tail = tail.clone();
                let name = rotated.file_name().unwrap_or_default().to_string_lossy().into_owned();
                let bytes = encode_all(&mut fresh_tail, Some(&name)).map_err(io::Error::other)?;
                let fresh = segments::rotate(path, file, &rotated, &bytes)?;
                fresh_tail.end = bytes.len() as u64;
                Ok((fresh_tail, fresh))
            });
            match attempt {
                Ok((tail, fresh)) => {
                    let id = segments::identity(&fresh.metadata().map_err(|e| fail("read", e))?);
                    return Ok(Written { tail, rotated: Some((fresh, id, now)) });
                }
                Err(e) => {
                    tracing::warn!("cannot rotate the audit log {}: {e}; it grows on", path.display());
                    self.rotation_failed = true;
                }
            }
        }
        let bytes = encode_all(&mut tail, None)?;
        if let Err(e) = (&*file).write_all(&bytes) {
            // A full disk can take part of the line: cut it off, so the chain stays whole
            // and the next writer appends after the last complete record.
            if let Err(cut) = file.set_len(size) {
                tracing::error!("cannot remove a partly written record from the audit log: {cut}");
            }
            return Err(fail("write", e));
        }
        tail.end = size + bytes.len() as u64;
        Ok(Written { tail, rotated: None })
    }

    /// Compresses and expires rotated segments on a thread of its own, off the call path.
    fn start_upkeep(&mut self) {
        let Some(rotation) = self.rotation else { return };
        if !rotation.compress && rotation.retention.is_none() {
            return;
        }
        if let Some(running) = self.upkeep.take() {
            if !running.is_finished() {
                self.upkeep = Some(running);
                self.upkeep_again = true;
                return;
            }
            let _ = running.join();
        }
        self.upkeep_again = false;
        let path = self.path.clone();
        let spawned = std::thread::Builder::new().name("audit-upkeep".into()).spawn(move || upkeep(&path, rotation));
        match spawned {
            Ok(running) => self.upkeep = Some(running),
            Err(e) => tracing::error!("cannot start compressing the audit log's old segments: {e}"),
        }
    }

    /// Moves the head record to this process's last record, unless another writer already moved
    /// it further.
    pub fn flush_head(&mut self) {
        let Some(tail) = self.tail.clone() else { return };
        if !self.head_behind || self.file.is_err() {
            return;
        }
        self.head_behind = false;
        if let Err(e) = self.lock_live() {
            tracing::error!("{e}");
            return;
        }
        let Ok((file, head)) = &self.file else { return };
        let newer = chain::read_head(&self.path).ok().flatten().is_some_and(|h| h.lines >= tail.seq);
        if !newer && let Err(e) = chain::write_head(head, &tail) {
            tracing::error!("cannot write the head of the audit log {}: {e}", self.path.display());
        }
        let _ = file.unlock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn preamble() -> Preamble<'static> {
        Preamble {
            seq: 7,
            prev: chain::ORIGIN,
            ts: "2026-12-01T10:06:40.498556Z",
            event: "decision",
            session: "1-2",
            call: 3,
        }
    }

    #[test]
    fn a_record_is_its_preamble_then_its_body_in_one_json_object() {
        let mut out = Vec::new();
        let body = OutcomeBody { outcome: Outcome::ToolError, ms: 1.5, error: None };
        encode(&preamble(), &body, &mut out).unwrap();
        assert_eq!(out.pop(), Some(b'\n'));
        let record: serde_json::Map<String, Value> = serde_json::from_slice(&out).unwrap();
        let keys: Vec<&str> = record.keys().map(String::as_str).collect();
        assert_eq!(keys, ["v", "seq", "prev", "ts", "event", "session", "call", "outcome", "ms"]);
        assert_eq!(
            Value::Object(record),
            serde_json::json!({"v": 2, "seq": 7, "prev": chain::ORIGIN, "ts": "2026-12-01T10:06:40.498556Z",
                "event": "decision", "session": "1-2", "call": 3, "outcome": "tool_error", "ms": 1.5})
        );
    }

    #[test]
    fn an_error_outcome_keeps_the_error_s_code_and_the_start_of_its_message() {
        let line =
            br#"{"jsonrpc":"2.0","id":3,"error":{"code":-32000,"message":"the remote MCP server answered HTTP 500"}}"#;
        let note = ErrorNote::of(line).unwrap();
        assert_eq!(note, ErrorNote { code: -32000, message: "the remote MCP server answered HTTP 500".into() });
        let long = serde_json::json!({"jsonrpc": "2.0", "id": 1, "error": {"code": 1, "message": "é".repeat(1000)}});
        let note = ErrorNote::of(long.to_string().as_bytes()).unwrap();
        assert_eq!(note.message.chars().count(), ErrorNote::MESSAGE_CHARS + 1, "cut, with an ellipsis");
        assert!(ErrorNote::of(br#"{"jsonrpc":"2.0","id":1,"result":{}}"#).is_none());
        let mut out = Vec::new();
        encode(&preamble(), &OutcomeBody { outcome: Outcome::Error, ms: 2.0, error: ErrorNote::of(line) }, &mut out)
            .unwrap();
        let record: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            record["error"],
            serde_json::json!({"code": -32000, "message": "the remote MCP server answered HTTP 500"})
        );
    }

    /// The record `decision` wrote for `record`, from `"call"` on (the preamble's time and
    /// session change from run to run).
    fn written(record: &DecisionRecord<'_>) -> String {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path);
        log.decision(record).unwrap();
        drop(log);
        let line = std::fs::read_to_string(&path).unwrap();
        let at = line.find(r#""call":"#).unwrap();
        line[at..].to_owned()
    }

    /// The bytes of a decision record, pinned: the hash chain covers them and `audit verify`
    /// reads old logs, so no change of the types behind them may move a key or an omission.
    #[test]
    fn a_decision_record_keeps_its_bytes() {
        let object = |v: Value| v.as_object().cloned().unwrap();
        let arguments = object(serde_json::json!({"path": "/etc/hosts", "token": "abc"}));
        let edited = object(serde_json::json!({"path": "/tmp/hosts", "token": "abc"}));
        let matched = |rule: &str, gate: Gate, reason: Option<&str>| crate::policy::Matched {
            rule: rule.into(),
            gate: Some(gate),
            tier: None,
            reason: reason.map(str::to_owned),
            some_readings: false,
        };
        let call = DecidedCall {
            server: "fs".into(),
            tool: "write_file".into(),
            arguments,
            gate: Gate::Ask,
            tier: Tier::High,
            matched: vec![
                matched("writes outside the project", Gate::Ask, Some("writes outside the project")),
                matched("notes writes", Gate::Notify, None),
            ],
            reason: Some("writes outside the project".into()),
            policy: Some("sha256:6d7f9cc82f44ddcb".into()),
            confidence: Some(0.25),
        };
        let full = DecisionRecord {
            call: &call,
            edited_arguments: Some(&edited),
            request_id: serde_json::json!(7),
            verdict: Verdict::Forwarded,
            decided_by: DecidedBy::Human,
            channel: Some("terminal"),
            note: Some("the person edited the arguments"),
            waited_ms: 1234,
        };
        let secret = "[secret sha256:6cc43f858fbb763301637b5af970e2a46b46f461f27e5a0f41e009c59b827b25]";
        assert_eq!(
            written(&full),
            format!(
                r#""call":1,"server":"fs","tool":"write_file","arguments":{{"path":"/etc/hosts","token":"{secret}"}},"edited_arguments":{{"path":"/tmp/hosts","token":"{secret}"}},"request_id":7,"gate":"ask","tier":"high","rules":["writes outside the project","notes writes"],"reason":"writes outside the project","verdict":"forwarded","decided_by":"human","channel":"terminal","note":"the person edited the arguments","confidence":0.25,"policy":"sha256:6d7f9cc82f44ddcb","waited_ms":1234}}
"#
            )
        );
        let call = DecidedCall {
            server: "fs".into(),
            tool: "read_file".into(),
            arguments: Map::new(),
            gate: Gate::Allow,
            tier: Tier::Low,
            matched: vec![],
            reason: None,
            policy: Some("sha256:6d7f9cc82f44ddcb".into()),
            confidence: None,
        };
        let bare = DecisionRecord {
            call: &call,
            edited_arguments: None,
            request_id: serde_json::json!("a"),
            verdict: Verdict::Refused,
            decided_by: DecidedBy::Policy,
            channel: None,
            note: None,
            waited_ms: 0,
        };
        assert_eq!(
            written(&bare),
            r#""call":1,"server":"fs","tool":"read_file","arguments":{},"request_id":"a","gate":"allow","tier":"low","rules":[],"verdict":"refused","decided_by":"policy","policy":"sha256:6d7f9cc82f44ddcb","waited_ms":0}
"#
        );
    }

    #[test]
    fn an_empty_body_still_closes_the_object_and_a_body_that_is_no_object_is_refused() {
        let mut out = Vec::new();
        encode(&preamble(), &serde_json::json!({}), &mut out).unwrap();
        assert!(out.ends_with(b"\"call\":3}\n"), "{}", String::from_utf8_lossy(&out));
        serde_json::from_slice::<Value>(&out).unwrap();
        assert!(encode(&preamble(), &[1, 2], &mut Vec::new()).is_err());
    }

    /// A call to `read_file` with argument `i`, decided by policy and forwarded.
    fn read(log: &mut AuditLog, i: usize) {
        let call = DecidedCall {
            server: "fs".into(),
            tool: "read_file".into(),
            arguments: serde_json::json!({"path": format!("notes/{i}.txt")}).as_object().cloned().unwrap(),
            gate: Gate::Allow,
            tier: Tier::Low,
            matched: vec![],
            reason: None,
            policy: Some("sha256:6d7f9cc82f44ddcb".into()),
            confidence: None,
        };
        let record = DecisionRecord {
            call: &call,
            edited_arguments: None,
            request_id: serde_json::json!(i),
            verdict: Verdict::Forwarded,
            decided_by: DecidedBy::Policy,
            channel: None,
            note: None,
            waited_ms: 0,
        };
        log.decision(&record).unwrap();
    }

    /// Rotation at 1 KiB (four or five records a segment), uncompressed unless asked.
    fn small(compress: bool) -> AuditRotation {
        AuditRotation { size: 1024, age: None, compress, retention: None }
    }

    /// A log of `calls` decisions written with `rotation`, and its segments.
    fn rotated_log(dir: &Path, calls: usize, rotation: AuditRotation) -> (PathBuf, Vec<segments::Segment>) {
        let path = dir.join("audit.jsonl");
        let mut log = AuditLog::open(&path);
        log.set_rotation(rotation);
        for i in 0..calls {
            read(&mut log, i);
        }
        drop(log);
        let segments = segments::list(&path).unwrap();
        (path, segments)
    }

    fn lines_of(segment: &segments::Segment) -> Vec<Vec<u8>> {
        let mut lines = Vec::new();
        segments::read_segments(std::slice::from_ref(segment), |_, _, l| {
            lines.push(l.to_vec());
            Ok(std::ops::ControlFlow::Continue(()))
        })
        .unwrap();
        lines
    }

    fn link_of(line: &[u8]) -> Value {
        serde_json::from_slice(line).unwrap()
    }

    #[test]
    fn the_chain_runs_on_across_segments_each_begun_by_a_record_naming_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let (path, segments) = rotated_log(dir.path(), 30, small(false));
        assert!(segments.len() >= 4, "{segments:#?}");
        let mut seq = 0;
        let mut last_hash = chain::ORIGIN.to_owned();
        for (i, segment) in segments.iter().enumerate() {
            let lines = lines_of(segment);
            let first = link_of(&lines[0]);
            if i > 0 {
                // The first record of a new segment follows the previous segment's last one.
                assert_eq!(first["event"], "segment");
                let before = segments[i - 1].path.file_name().unwrap().to_string_lossy().into_owned();
                assert_eq!(first["previous"], before.as_str());
            }
            for line in &lines {
                let record = link_of(line);
                seq += 1;
                assert_eq!(record["seq"], seq);
                assert_eq!(record["prev"], last_hash.as_str());
                last_hash = chain::hash(line);
            }
            if let Some((first, last)) = segment.range {
                assert_eq!((first, last), (link_of(&lines[0])["seq"].as_u64().unwrap(), seq));
                // Rotated at the first write that found it at or past 1 KiB.
                assert!(std::fs::metadata(&segment.path).unwrap().len() >= 1024);
            }
        }
        let decisions = segments.iter().flat_map(lines_of).filter(|l| link_of(l)["event"] == "decision").count();
        assert_eq!(decisions, 30);
        let report = verify::verify(&path).unwrap();
        assert_eq!(report.problem, None);
        assert_eq!((report.segments, report.chained, report.from), (segments.len(), seq, None));
        assert_eq!(chain::read_head(&path).unwrap().unwrap().lines, seq);
    }

    #[test]
    fn a_log_no_proxy_configured_never_rotates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path);
        for i in 0..10 {
            read(&mut log, i);
        }
        log.set_rotation(small(false));
        read(&mut log, 10);
        drop(log);
        // Rotated once, when the settings came: not before.
        assert_eq!(segments::rotated(&path).unwrap().len(), 1);
        assert_eq!(segments::rotated(&path).unwrap()[0].range, Some((1, 10)));
    }

    #[test]
    fn a_writer_whose_segment_another_rotated_writes_to_the_new_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut steady = AuditLog::open(&path);
        read(&mut steady, 0);
        let mut rotating = AuditLog::open(&path);
        rotating.set_rotation(AuditRotation { size: 1, ..small(false) });
        read(&mut rotating, 1);
        read(&mut rotating, 2);
        assert_eq!(segments::rotated(&path).unwrap().len(), 2);
        // `steady` still holds the first segment open: its record must go to the live one.
        read(&mut steady, 3);
        drop((steady, rotating));
        let segments = segments::list(&path).unwrap();
        let live = lines_of(segments.last().unwrap());
        assert_eq!(link_of(live.last().unwrap())["request_id"], 3);
        for rotated in &segments[..2] {
            assert_eq!(lines_of(rotated).len() as u64, rotated.range.map(|(a, b)| b - a + 1).unwrap());
        }
        assert_eq!(verify::verify(&path).unwrap().problem, None);
    }

    #[test]
    fn rotated_segments_are_compressed_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let (path, segments) = rotated_log(dir.path(), 20, small(true));
        let (live, rotated) = segments.split_last().unwrap();
        assert!(live.is_live() && !rotated.is_empty());
        assert!(rotated.iter().all(segments::Segment::compressed), "{rotated:#?}");
        let mut out = Vec::new();
        assert_eq!(show::show(&path, &show::Filter::default(), true, &mut out).unwrap(), 20);
        let ids: Vec<u64> = String::from_utf8(out)
            .unwrap()
            .lines()
            .map(|l| link_of(l.as_bytes())["request_id"].as_u64().unwrap())
            .collect();
        assert_eq!(ids, (0..20).collect::<Vec<u64>>());
        assert_eq!(verify::verify(&path).unwrap().problem, None);
    }

    /// Rewrites one rotated segment's lines.
    fn tamper(segment: &segments::Segment, edit: impl FnOnce(&mut Vec<Vec<u8>>)) {
        let mut lines = lines_of(segment);
        edit(&mut lines);
        let text: Vec<u8> = lines
            .into_iter()
            .flat_map(|mut l| {
                l.push(b'\n');
                l
            })
            .collect();
        std::fs::write(&segment.path, text).unwrap();
    }

    #[test]
    fn verify_names_the_segment_edited_and_the_one_removed_but_accepts_a_log_whose_oldest_are_gone() {
        let dir = tempfile::tempdir().unwrap();
        let (path, segments) = rotated_log(dir.path(), 30, small(false));
        let middle = &segments[1];
        let name = middle.path.file_name().unwrap().to_string_lossy().into_owned();
        let original = std::fs::read(&middle.path).unwrap();
        let problem = |path: &Path| verify::verify(path).unwrap().problem_text(path);

        tamper(middle, |l| l[1] = String::from_utf8_lossy(&l[1]).replace("notes/", "secret/").into_bytes());
        assert_eq!(problem(&path), Some(format!("{name}: line 2: edited (its hash no longer matches the chain)")));

        // Its last line: only the next segment's first record can tell.
        std::fs::write(&middle.path, &original).unwrap();
        tamper(middle, |l| {
            let last = l.last_mut().unwrap();
            *last = String::from_utf8_lossy(last).replace("notes/", "secret/").into_bytes();
        });
        let lines = lines_of(middle).len();
        assert_eq!(
            problem(&path),
            Some(format!("{name}: line {lines}: edited (its hash no longer matches the chain)"))
        );

        std::fs::write(&middle.path, &original).unwrap();
        assert_eq!(problem(&path), None);
        std::fs::remove_file(&middle.path).unwrap();
        let (first, last) = middle.range.unwrap();
        let next = segments[2].path.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            problem(&path),
            Some(format!(
                "{next}: line 1: records {first} to {last} before it are missing: the segment that held them was removed"
            ))
        );

        // Retention deletes the oldest first: the log then begins where the first kept one does.
        std::fs::remove_file(&segments[0].path).unwrap();
        std::fs::remove_file(&segments[2].path).unwrap();
        let report = verify::verify(&path).unwrap();
        assert_eq!(report.problem, None);
        assert_eq!(report.from, segments[3].range.map(|(first, _)| first));
        // But lines cut from the start of that segment are still a deletion.
        tamper(&segments[3], |l| {
            l.remove(0);
        });
        let text = problem(&path).unwrap();
        assert!(text.contains("line 1: records 1 to"), "{text}");
    }
}
