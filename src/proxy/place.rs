//! Where the server stands, read from the running server: its processes' working folders and
//! roots, the folders it was given on its command line or by the client (MCP roots), and its
//! environment. A path argument is read against these (`policy/reading/path.rs`), so that a
//! relative path, `~`, `$HOME`, a symlink or `/proc/self` mean what they mean to the server, not
//! to toolgate.
//!
//! The server is the process toolgate started and every process below it (`npx` starts `node`,
//! `uv` starts `python`): any of them may be the one that opens the file. On Linux they are read
//! from `/proc`; elsewhere, or once they are gone, the server is taken to stand where toolgate
//! started it: toolgate's own folder and environment.

use std::cell::OnceCell;
use std::path::{Path, PathBuf};

use crate::policy::reading::path::{self, Place};

/// The server toolgate runs, as far as paths go.
#[derive(Debug, Default)]
pub(super) struct ServerPlace {
    /// The process toolgate started.
    pub pid: Option<u32>,
    /// Folders the client named as its roots (`roots/list`), which servers such as
    /// server-filesystem serve.
    pub roots: Vec<String>,
}

impl ServerPlace {
    /// A view for one decision: read from `/proc` when a path is first judged, then kept.
    pub fn view(&self) -> View<'_> {
        View { server: self, seen: OnceCell::new() }
    }
}

/// The server as one decision sees it.
pub(super) struct View<'a> {
    server: &'a ServerPlace,
    seen: OnceCell<Seen>,
}

/// What was read of the server's processes.
#[derive(Debug, Default)]
struct Seen {
    pids: Vec<u32>,
    bases: Vec<String>,
    /// Each process's environment.
    environments: Vec<Vec<(String, String)>>,
    /// The distinct root folders of the processes, as paths toolgate can walk.
    roots: Vec<PathBuf>,
}

/// How many processes below the server are looked at, at most.
const MAX_PROCESSES: usize = 64;

impl View<'_> {
    fn seen(&self) -> &Seen {
        self.seen.get_or_init(|| read(self.server))
    }
}

impl Place for View<'_> {
    fn bases(&self) -> Vec<String> {
        self.seen().bases.clone()
    }

    fn var(&self, name: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for env in &self.seen().environments {
            if let Some((_, value)) = env.iter().find(|(k, _)| k == name)
                && !out.contains(value)
            {
                out.push(value.clone());
            }
        }
        // Node's os.homedir() and Python's expanduser fall back to the password database.
        if name == "HOME"
            && let Some(home) = nix::unistd::User::from_uid(nix::unistd::geteuid())
                .ok()
                .flatten()
                .map(|u| u.dir.to_string_lossy().into_owned())
            && !out.contains(&home)
        {
            out.push(home);
        }
        out
    }

    fn home_of(&self, user: &str) -> Option<String> {
        path::home_of(user)
    }

    fn on_disk(&self, absolute: &str) -> Vec<String> {
        let seen = self.seen();
        let mut out = Vec::new();
        for root in &seen.roots {
            for p in path::resolve(absolute, root, &seen.pids) {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
        out
    }
}

/// Reads the server's processes, or toolgate's own place where they cannot be read.
fn read(server: &ServerPlace) -> Seen {
    let pids = server.pid.map(processes).unwrap_or_default();
    let mut seen = Seen::default();
    for &pid in &pids {
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        let Ok(cwd) = std::fs::read_link(proc_dir.join("cwd")) else { continue };
        let cwd = cwd.to_string_lossy().into_owned();
        add(&mut seen.bases, cwd.clone());
        let environment: Vec<(String, String)> = std::fs::read(proc_dir.join("environ"))
            .map(|environ| {
                environ
                    .split(|b| *b == 0)
                    .filter_map(|kv| {
                        let kv = String::from_utf8_lossy(kv);
                        let (k, v) = kv.split_once('=')?;
                        Some((k.to_owned(), v.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        // The folders a server was given to serve come as arguments (`server-filesystem DIR`).
        if let Ok(cmdline) = std::fs::read(proc_dir.join("cmdline")) {
            let home = environment.iter().find(|(k, _)| k == "HOME").map(|(_, v)| v.as_str());
            for arg in cmdline.split(|b| *b == 0).skip(1) {
                for dir in folders_named(&String::from_utf8_lossy(arg), &cwd, home) {
                    add(&mut seen.bases, dir);
                }
            }
        }
        seen.environments.push(environment);
        // A process in another root (chroot) resolves paths from there.
        let root = match std::fs::read_link(proc_dir.join("root")) {
            Ok(r) if r == Path::new("/") => PathBuf::from("/"),
            _ => proc_dir.join("root"),
        };
        if !seen.roots.contains(&root) {
            seen.roots.push(root);
        }
        seen.pids.push(pid);
    }
    if seen.pids.is_empty() {
        // No /proc to read (or the server is gone): it stands where toolgate started it.
        if let Ok(cwd) = std::env::current_dir() {
            add(&mut seen.bases, cwd.to_string_lossy().into_owned());
        }
        seen.environments.push(std::env::vars().collect());
        seen.roots.push(PathBuf::from("/"));
        seen.pids.extend(server.pid);
    }
    for root in &server.roots {
        add(&mut seen.bases, root.clone());
    }
    seen
}

/// The existing folders a command-line argument may name, read as servers read their folder
/// arguments: as written, trimmed, with `~` expanded (no shell ran between the client's
/// configuration and the server), an option's `=value`, relative to the process's folder.
fn folders_named(arg: &str, cwd: &str, home: Option<&str>) -> Vec<String> {
    let mut candidates: Vec<String> = vec![arg.to_owned(), arg.trim().to_owned()];
    if let Some((_, value)) = arg.split_once('=') {
        candidates.push(value.trim().to_owned());
    }
    for c in candidates.clone() {
        if let (Some(rest), Some(home)) = (c.strip_prefix('~'), home)
            && (rest.is_empty() || rest.starts_with('/'))
        {
            candidates.push(format!("{home}{rest}"));
        }
    }
    let mut out = Vec::new();
    for c in candidates {
        if c.is_empty() {
            continue;
        }
        let dir = if c.starts_with('/') { PathBuf::from(&c) } else { Path::new(cwd).join(&c) };
        if dir.is_dir() {
            let dir = path::normalize(&dir.to_string_lossy());
            if !out.contains(&dir) {
                out.push(dir);
            }
        }
    }
    out
}

fn add(list: &mut Vec<String>, item: String) {
    if !list.contains(&item) {
        list.push(item);
    }
}

/// The process and every process below it, from `/proc/PID/task/TID/children`.
fn processes(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() && out.len() < MAX_PROCESSES {
        let parent = out[i];
        i += 1;
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{parent}/task")) else { continue };
        for task in tasks.flatten() {
            let Ok(children) = std::fs::read_to_string(task.path().join("children")) else { continue };
            for child in children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()) {
                if !out.contains(&child) && out.len() < MAX_PROCESSES {
                    out.push(child);
                }
            }
        }
    }
    out
}

/// The folders a `file://` root may name, as URL parsers read it (WHATWG's, which Node's
/// `fileURLToPath` uses, reads `\\` as `/` in a `file:` URL; Python's keeps it).
pub(super) fn root_folders(uri: &str) -> Vec<String> {
    let mut out = Vec::new();
    for p in path::file_url(uri) {
        for p in [p.replace('\\', "/"), p] {
            let p = path::normalize(&p);
            if p.starts_with('/') && !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_running_process_is_read_from_proc() {
        let dir = tempfile::tempdir().unwrap();
        let served = dir.path().join("served");
        std::fs::create_dir(&served).unwrap();
        // A shell given the served folder as an argument, as `server-filesystem DIR` is.
        let mut child = std::process::Command::new("sh")
            .args(["-c", "read line", "sh"])
            .arg(&served)
            .stdin(std::process::Stdio::piped())
            .current_dir(dir.path())
            .env("TOOLGATE_TEST_VAR", "/from/the/server")
            .spawn()
            .unwrap();
        // Until it has replaced the forked test process, /proc shows the test's own command line.
        let cmdline = format!("/proc/{}/cmdline", child.id());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while !std::fs::read(&cmdline).unwrap_or_default().starts_with(b"sh\0") {
            assert!(std::time::Instant::now() < deadline, "the shell did not start");
            std::thread::yield_now();
        }
        let place = ServerPlace { pid: Some(child.id()), roots: vec!["/client/root".into()] };
        let view = place.view();
        let bases = view.bases();
        let _ = child.kill();
        let _ = child.wait();
        let cwd = dir.path().canonicalize().unwrap().to_string_lossy().into_owned();
        assert_eq!(bases[0], cwd);
        assert!(bases.contains(&format!("{cwd}/served")), "{bases:?}");
        assert!(bases.contains(&"/client/root".to_owned()));
        assert_eq!(view.var("TOOLGATE_TEST_VAR"), vec!["/from/the/server".to_owned()]);
        assert_eq!(root_folders("file:///home/me/a%20b"), vec!["/home/me/a b".to_owned()]);
        assert!(root_folders("file://LOCALHOST/home/me/x?project=1#top").contains(&"/home/me/x".to_owned()));
        assert!(root_folders("file:///home\\me").contains(&"/home/me".to_owned()));
        assert!(root_folders("https://x").is_empty());
        assert_eq!(
            folders_named(" ~/served\n", "/", Some(&dir.path().to_string_lossy())),
            vec![format!("{cwd}/served")]
        );
        assert_eq!(folders_named("--root=served", &cwd, None), vec![format!("{cwd}/served")]);
    }
}
