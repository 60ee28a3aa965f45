//! The audit log's segments: the live file that proxies append to, and the segments rotated out
//! of it, which every reader of the log reads before it, oldest first.
//!
//! A rotated segment is named after the live file and the first and last `seq` it holds,
//! zero-padded so that names sort in chain order: `audit.jsonl.000000000001-000000104857`, and
//! with `.gz` once compressed. A segment is rotated by a proxy holding the live file's lock: it
//! writes the new segment's first records to a fresh file, hard-links the live file under its
//! rotated name, then renames the fresh file over the live name. The live name therefore always
//! exists and always begins with a record chained to the last one before it; other writers
//! notice the rename when they take the lock (`AuditLog` compares its file with the path). A
//! crash between the link and the rename leaves the live file also under a rotated name: readers
//! pass over a rotated name that is the live file, and the next rotation removes it.
//!
//! This module is the one place that lists and reads segments: `verify`, `show`, the summary and
//! `replay` all read through [`read_lines`] or [`list`].

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::ops::ControlFlow;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::policy::AuditRotation;

/// Digits of each `seq` in a rotated segment's name.
const DIGITS: usize = 12;

/// One segment of a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub path: PathBuf,
    /// The `seq` of its first and last records, as its name says; `None` for the live file.
    pub range: Option<(u64, u64)>,
}

impl Segment {
    pub fn is_live(&self) -> bool {
        self.range.is_none()
    }

    pub fn compressed(&self) -> bool {
        self.path.extension() == Some(OsStr::new("gz"))
    }

    /// Its bytes, decompressed. `None` when it is gone: a rotated segment compressed or deleted
    /// (by retention) since it was listed is looked for in its other form, then passed over.
    pub fn open(&self) -> io::Result<Option<Box<dyn BufRead + Send>>> {
        let other = match (self.range, self.compressed()) {
            (None, _) => None,
            (Some(_), true) => Some(self.path.with_extension("")),
            (Some(_), false) => Some(gz_path(&self.path)),
        };
        for path in std::iter::once(&self.path).chain(other.as_ref()) {
            match File::open(path) {
                Ok(file) if path.extension() == Some(OsStr::new("gz")) => {
                    let decoder = flate2::read::MultiGzDecoder::new(BufReader::new(file));
                    return Ok(Some(Box::new(BufReader::with_capacity(1 << 16, decoder))));
                }
                Ok(file) => return Ok(Some(Box::new(BufReader::with_capacity(1 << 16, file)))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// The time of its first record, if it has one.
    pub fn first_time(&self) -> io::Result<Option<SystemTime>> {
        let Some(mut reader) = self.open()? else { return Ok(None) };
        let mut line = Vec::new();
        reader.read_until(b'\n', &mut line)?;
        Ok(time_of(&line))
    }
}

/// The time (`ts`) of a record.
fn time_of(line: &[u8]) -> Option<SystemTime> {
    #[derive(serde::Deserialize)]
    struct Ts<'a> {
        #[serde(borrow)]
        ts: Option<std::borrow::Cow<'a, str>>,
    }
    let ts = serde_json::from_slice::<Ts<'_>>(line).ok()?.ts?;
    humantime::parse_rfc3339_weak(&ts).ok()
}

/// The name a segment of `live` holding records `first` to `last` is rotated to (uncompressed).
pub fn rotated_path(live: &Path, first: u64, last: u64) -> PathBuf {
    let mut name = live.file_name().unwrap_or_default().to_owned();
    name.push(format!(".{first:0DIGITS$}-{last:0DIGITS$}"));
    live.with_file_name(name)
}

fn gz_path(plain: &Path) -> PathBuf {
    let mut name = plain.as_os_str().to_owned();
    name.push(".gz");
    PathBuf::from(name)
}

/// The range of a rotated segment of the live file named `live`, from its file name, and whether
/// it is compressed.
fn parse_name(live: &OsStr, name: &OsStr) -> Option<((u64, u64), bool)> {
    let rest = name.to_str()?.strip_prefix(live.to_str()?)?.strip_prefix('.')?;
    let (range, compressed) = match rest.strip_suffix(".gz") {
        Some(range) => (range, true),
        None => (rest, false),
    };
    let (first, last) = range.split_once('-')?;
    let number = |s: &str| (s.len() == DIGITS && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?;
    Some(((number(first)?, number(last)?), compressed))
}

/// The device and inode of a file, which say whether two names are one file.
pub fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    (meta.dev(), meta.ino())
}

/// Every rotated segment of `live` found in its folder, oldest first, whichever is the live
/// file too (see the module's note on a crash) included. A segment found both plain and
/// compressed (compression stopped between its rename and its removal of the plain one) is
/// listed once, plain.
fn rotated_names(live: &Path) -> io::Result<Vec<Segment>> {
    let dir = match live.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let live_name = live.file_name().unwrap_or_default();
    let mut found: Vec<((u64, u64), bool, PathBuf)> = Vec::new();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        if let Some((range, compressed)) = parse_name(live_name, &entry.file_name()) {
            found.push((range, compressed, entry.path()));
        }
    }
    // Plain before compressed for the same range: then keep the first of each range.
    found.sort_by_key(|(range, compressed, _)| (*range, *compressed));
    found.dedup_by_key(|(range, _, _)| *range);
    Ok(found.into_iter().map(|(range, _, path)| Segment { path, range: Some(range) }).collect())
}

/// The rotated segments of `live`, oldest first, without the live file under a rotated name.
pub fn rotated(live: &Path) -> io::Result<Vec<Segment>> {
    let mut segments = rotated_names(live)?;
    if let Ok(meta) = std::fs::metadata(live) {
        let live_id = identity(&meta);
        segments.retain(|s| std::fs::metadata(&s.path).map_or(true, |m| identity(&m) != live_id));
    }
    Ok(segments)
}

/// Every segment of the log whose live file is `live`, in chain order: the rotated ones, then
/// the live one (when it exists). A log with neither is not found.
pub fn list(live: &Path) -> io::Result<Vec<Segment>> {
    let mut segments = rotated(live)?;
    match std::fs::metadata(live) {
        Ok(_) => segments.push(Segment { path: live.to_owned(), range: None }),
        Err(e) if e.kind() == io::ErrorKind::NotFound && !segments.is_empty() => {}
        Err(e) => return Err(e),
    }
    Ok(segments)
}

/// Calls `each` with every line of the log (without its newline), segment by segment, oldest
/// first, with the segment and the line's number in it (from 1), until it breaks.
pub fn read_lines(
    live: &Path,
    each: impl FnMut(&Segment, usize, &[u8]) -> io::Result<ControlFlow<()>>,
) -> io::Result<()> {
    read_segments(&list(live)?, each)
}

/// [`read_lines`] over segments already listed.
pub fn read_segments(
    segments: &[Segment],
    mut each: impl FnMut(&Segment, usize, &[u8]) -> io::Result<ControlFlow<()>>,
) -> io::Result<()> {
    let mut line = Vec::new();
    for segment in segments {
        let Some(mut reader) = segment.open()? else { continue };
        let mut n = 0;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                break;
            }
            n += 1;
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            if each(segment, n, text)?.is_break() {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Reads a file from `at` with positioned reads, so that the file's offset (shared with
/// whoever else holds it) does not move.
struct ReadAt<'a> {
    file: &'a File,
    at: u64,
}

impl Read for ReadAt<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read_at(buf, self.at)?;
        self.at += n as u64;
        Ok(n)
    }
}

/// What a rotation needs from the start of the live segment: its first chained record's `seq`
/// (0 when it has none) and its first record's time.
pub fn start_of(file: &File) -> io::Result<(u64, Option<SystemTime>)> {
    let mut reader = BufReader::new(ReadAt { file, at: 0 });
    let mut line = Vec::new();
    let mut first_time = None;
    let mut first_line = true;
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok((0, first_time));
        }
        if std::mem::take(&mut first_line) {
            first_time = time_of(&line);
        }
        let link = serde_json::from_slice::<super::chain::Link>(&line).ok();
        if let Some(seq) = link.filter(|l| l.v >= 2).and_then(|l| l.seq) {
            return Ok((seq, first_time));
        }
    }
}

/// Rotates the live segment, whose file `live_file` is locked by the caller: `bytes` (the new
/// segment's first records) go to a fresh file, the live file is linked as `rotated`, and the
/// fresh file replaces it under the live name. Returns the fresh file, opened for appending.
/// On failure nothing has changed, but for a stray `FILE.next` that the next rotation replaces.
pub fn rotate(live: &Path, live_file: &File, rotated: &Path, bytes: &[u8]) -> io::Result<File> {
    let mut next_name = live.file_name().unwrap_or_default().to_owned();
    next_name.push(".next");
    let next = live.with_file_name(next_name);
    match std::fs::remove_file(&next) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let fresh = OpenOptions::new().read(true).append(true).create_new(true).open(&next)?;
    let done = (|| {
        (&fresh).write_all(bytes)?;
        // A name the live file already has, left by a rotation that crashed after its link, is
        // not a segment of its own: it would be read twice.
        let live_id = identity(&live_file.metadata()?);
        for stale in rotated_names(live)? {
            if std::fs::metadata(&stale.path).is_ok_and(|m| identity(&m) == live_id) {
                std::fs::remove_file(&stale.path)?;
            }
        }
        std::fs::hard_link(live, rotated)?;
        if let Err(e) = std::fs::rename(&next, live) {
            let _ = std::fs::remove_file(rotated);
            return Err(e);
        }
        Ok(())
    })();
    match done {
        Ok(()) => Ok(fresh),
        Err(e) => {
            let _ = std::fs::remove_file(&next);
            Err(e)
        }
    }
}

/// Compresses a rotated segment: to a temporary file, synced, renamed to `NAME.gz`, the folder
/// synced, and only then the plain segment removed, so that a crash at any point leaves the
/// whole segment in one form or the other. Returns the compressed segment's path.
pub fn compress(plain: &Path) -> io::Result<PathBuf> {
    let gz = gz_path(plain);
    let mut tmp_name = gz.as_os_str().to_owned();
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = PathBuf::from(tmp_name);
    let written = (|| {
        let mut input = File::open(plain)?;
        let out = File::create(&tmp)?;
        let mut encoder =
            flate2::write::GzEncoder::new(io::BufWriter::with_capacity(1 << 16, out), flate2::Compression::default());
        io::copy(&mut input, &mut encoder)?;
        let out = encoder.finish()?.into_inner().map_err(io::IntoInnerError::into_error)?;
        out.sync_all()?;
        std::fs::rename(&tmp, &gz)?;
        if let Some(dir) = gz.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    match std::fs::remove_file(plain) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(gz),
    }
}

/// What a rotation leaves to do, off the proxy's call path: compress the rotated segments still
/// plain, and delete those past the retention period, when the settings ask for either.
/// Returns the segments deleted.
pub fn upkeep(live: &Path, rotation: &AuditRotation, now: SystemTime) -> io::Result<Vec<PathBuf>> {
    if rotation.compress {
        for segment in rotated(live)?.into_iter().filter(|s| !s.compressed()) {
            match compress(&segment.path) {
                Ok(_) => {}
                // Compressed, or deleted, by another proxy meanwhile.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    let Some(keep) = rotation.retention else { return Ok(Vec::new()) };
    let Some(cutoff) = now.checked_sub(keep) else { return Ok(Vec::new()) };
    expire(live, cutoff)
}

/// Deletes the rotated segments whose every record is older than `cutoff`: a segment's records
/// are no younger than the first record of the segment after it, so a segment goes when that
/// first record is before the cutoff. Only the oldest go, never one after a segment kept, and
/// never the live file.
pub fn expire(live: &Path, cutoff: SystemTime) -> io::Result<Vec<PathBuf>> {
    // The live file is a successor, never a candidate.
    let mut segments = rotated(live)?;
    segments.push(Segment { path: live.to_owned(), range: None });
    let mut deleted = Vec::new();
    for pair in segments.windows(2) {
        let [old, next] = pair else { break };
        let gone = match next.first_time()? {
            Some(t) => t < cutoff,
            None => false,
        };
        if !gone {
            break;
        }
        let plain = if old.compressed() { old.path.with_extension("") } else { old.path.clone() };
        for path in [gz_path(&plain), plain] {
            match std::fs::remove_file(&path) {
                Ok(()) => deleted.push(path),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn rotated_names_sort_in_chain_order_and_only_a_segment_of_this_log_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("audit.jsonl");
        let name = |first, last| rotated_path(&live, first, last);
        assert_eq!(name(1, 12).file_name().unwrap(), "audit.jsonl.000000000001-000000000012");
        write(&live, "");
        write(&name(13, 200), "");
        write(&gz_path(&name(1, 12)), "");
        write(&name(201, 9_000), "");
        write(&gz_path(&name(201, 9_000)), "");
        for other in [
            "audit.jsonl.head",
            "audit.jsonl.next",
            "audit.jsonl.000000000001-000000000012.gz.77.tmp",
            "other.jsonl.000000000001-000000000002",
            "audit.jsonl.1-2",
            "audit.jsonl.00000000000x-000000000002",
        ] {
            write(&dir.path().join(other), "");
        }
        let listed: Vec<String> =
            list(&live).unwrap().iter().map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(
            listed,
            [
                "audit.jsonl.000000000001-000000000012.gz",
                "audit.jsonl.000000000013-000000000200",
                // Both forms: the plain one, whole until compression removes it.
                "audit.jsonl.000000000201-000000009000",
                "audit.jsonl",
            ]
        );
        assert_eq!(list(&live).unwrap()[0].range, Some((1, 12)));
        assert!(list(&live).unwrap()[3].is_live());
    }

    #[test]
    fn a_log_with_no_file_is_not_found_and_one_with_only_segments_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("audit.jsonl");
        assert_eq!(list(&live).unwrap_err().kind(), io::ErrorKind::NotFound);
        write(&rotated_path(&live, 1, 2), "a\nb\n");
        let mut lines = Vec::new();
        read_lines(&live, |s, n, l| {
            lines.push((s.range, n, String::from_utf8(l.to_vec()).unwrap()));
            Ok(ControlFlow::Continue(()))
        })
        .unwrap();
        assert_eq!(lines, [(Some((1, 2)), 1, "a".to_owned()), (Some((1, 2)), 2, "b".to_owned())]);
    }

    #[test]
    fn a_compressed_segment_reads_back_byte_for_byte_and_the_plain_one_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("audit.jsonl");
        let plain = rotated_path(&live, 1, 3000);
        let text: String =
            (1..=3000).map(|i| format!("{{\"seq\":{i},\"pad\":\"{}\"}}\n", "x".repeat(i % 97))).collect();
        write(&plain, &text);
        write(&live, "");
        let gz = compress(&plain).unwrap();
        assert!(!plain.exists());
        assert!(std::fs::metadata(&gz).unwrap().len() < text.len() as u64 / 5);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(leftovers.len(), 2, "no temporary file stays: {leftovers:?}");
        let mut back = Vec::new();
        read_lines(&live, |_, _, l| {
            back.extend_from_slice(l);
            back.push(b'\n');
            Ok(ControlFlow::Continue(()))
        })
        .unwrap();
        assert_eq!(String::from_utf8(back).unwrap(), text);
    }

    #[test]
    fn a_segment_compressed_after_it_was_listed_is_still_read() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("audit.jsonl");
        let plain = rotated_path(&live, 1, 1);
        write(&plain, "one\n");
        let listed = list(&live).unwrap();
        compress(&plain).unwrap();
        let mut read = Vec::new();
        read_segments(&listed, |_, _, l| {
            read.push(l.to_vec());
            Ok(ControlFlow::Continue(()))
        })
        .unwrap();
        assert_eq!(read, [b"one".to_vec()]);
    }

    fn record(seq: u64, ts: &str) -> String {
        format!("{{\"v\":2,\"seq\":{seq},\"prev\":\"p\",\"ts\":\"{ts}\"}}\n")
    }

    #[test]
    fn retention_deletes_only_segments_entirely_older_than_the_cutoff() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("audit.jsonl");
        // Segment 1 ends before day 10; segment 2 runs from day 10 into day 20; the live one
        // starts on day 20.
        write(&rotated_path(&live, 1, 2), &(record(1, "2026-01-01T00:00:00Z") + &record(2, "2026-01-09T00:00:00Z")));
        compress(&rotated_path(&live, 1, 2)).unwrap();
        write(&rotated_path(&live, 3, 4), &(record(3, "2026-01-10T00:00:00Z") + &record(4, "2026-01-19T00:00:00Z")));
        write(&live, &record(5, "2026-01-20T00:00:00Z"));
        let at = |day: &str| humantime::parse_rfc3339(&format!("2026-01-{day}T00:00:00Z")).unwrap();
        let names = || -> Vec<String> {
            list(&live).unwrap().iter().map(|s| s.path.file_name().unwrap().to_string_lossy().into_owned()).collect()
        };
        // A cutoff inside segment 2: segment 1 is wholly before it, segment 2 is not.
        assert_eq!(expire(&live, at("05")).unwrap(), Vec::<PathBuf>::new(), "segment 1 runs past day 5");
        assert_eq!(expire(&live, at("15")).unwrap(), [gz_path(&rotated_path(&live, 1, 2))]);
        assert_eq!(names(), ["audit.jsonl.000000000003-000000000004", "audit.jsonl"]);
        // Far in the future: every rotated segment goes, the live one stays.
        expire(&live, at("31")).unwrap();
        assert_eq!(names(), ["audit.jsonl"]);
    }

    #[test]
    fn upkeep_compresses_always_but_deletes_only_when_a_retention_is_set() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("audit.jsonl");
        write(&rotated_path(&live, 1, 1), &record(1, "2020-01-01T00:00:00Z"));
        write(&live, &record(2, "2020-01-02T00:00:00Z"));
        let now = humantime::parse_rfc3339("2030-01-01T00:00:00Z").unwrap();
        let forever = AuditRotation { retention: None, ..AuditRotation::default() };
        assert!(upkeep(&live, &forever, now).unwrap().is_empty());
        assert_eq!(list(&live).unwrap()[0].path, gz_path(&rotated_path(&live, 1, 1)));
        let plain =
            AuditRotation { compress: false, retention: Some(std::time::Duration::from_secs(86_400)), ..forever };
        assert_eq!(upkeep(&live, &plain, now).unwrap().len(), 1);
        assert_eq!(list(&live).unwrap().len(), 1);
    }

    #[test]
    fn rotation_links_the_live_file_away_and_puts_the_fresh_one_in_its_place() {
        let dir = tempfile::tempdir().unwrap();
        let live = dir.path().join("audit.jsonl");
        write(&live, "old\n");
        let old = OpenOptions::new().read(true).append(true).open(&live).unwrap();
        let target = rotated_path(&live, 1, 1);
        // A name the live file kept from a crashed rotation.
        std::fs::hard_link(&live, rotated_path(&live, 1, 0)).unwrap();
        let fresh = rotate(&live, &old, &target, b"new\n").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "old\n");
        assert_eq!(std::fs::read_to_string(&live).unwrap(), "new\n");
        assert_eq!(identity(&fresh.metadata().unwrap()), identity(&std::fs::metadata(&live).unwrap()));
        assert!(!rotated_path(&live, 1, 0).exists());
        assert!(!dir.path().join("audit.jsonl.next").exists());
        // The same name again is refused, and nothing changes.
        assert!(rotate(&live, &fresh, &target, b"newer\n").is_err());
        assert_eq!(std::fs::read_to_string(&live).unwrap(), "new\n");
        assert!(!dir.path().join("audit.jsonl.next").exists());
    }

    #[test]
    fn the_start_of_a_segment_is_its_first_chained_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        write(&path, &format!("{{\"v\":1,\"ts\":\"2026-01-01T00:00:00Z\"}}\n{}", record(1, "2026-01-02T00:00:00Z")));
        let file = File::open(&path).unwrap();
        assert_eq!(start_of(&file).unwrap(), (1, Some(humantime::parse_rfc3339("2026-01-01T00:00:00Z").unwrap())));
        write(&path, "");
        assert_eq!(start_of(&File::open(&path).unwrap()).unwrap(), (0, None));
    }
}
