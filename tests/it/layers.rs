//! The source's top-level modules form layers: none uses another that uses it back, directly or
//! through others. Read from the source itself: every `crate::NAME` outside a comment is a use
//! of the module `NAME`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module of `src/` and the other top-level modules it names.
fn uses(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(src).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        let files: Vec<_> = if path.is_dir() {
            walk(&path)
        } else if path.extension().is_some_and(|e| e == "rs") {
            vec![path.clone()]
        } else {
            continue;
        };
        if name == "main" || name == "lib" {
            continue;
        }
        let mut named = BTreeSet::new();
        for file in files {
            for line in std::fs::read_to_string(&file).unwrap().lines() {
                let code = line.split("//").next().unwrap_or_default();
                for (at, _) in code.match_indices("crate::") {
                    let used: String =
                        code[at + 7..].chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if used != name && !used.is_empty() {
                        named.insert(used);
                    }
                }
            }
        }
        graph.insert(name, named);
    }
    graph
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// A cycle in the graph, as the modules along it, if there is one.
fn cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        at: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|p| p == at) {
            let mut found = path[start..].to_vec();
            found.push(at.to_owned());
            return Some(found);
        }
        if !done.insert(at.to_owned()) {
            return None;
        }
        path.push(at.to_owned());
        for next in graph.get(at).into_iter().flatten().filter(|n| graph.contains_key(*n)) {
            if let Some(found) = visit(next, graph, path, done) {
                return Some(found);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|start| visit(start, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_top_level_module_uses_one_that_uses_it_back() {
    let graph = uses(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(graph.contains_key("proxy") && graph["proxy"].contains("policy"), "the source was read: {graph:?}");
    if let Some(found) = cycle(&graph) {
        panic!("an import cycle among top-level modules: {}", found.join(" -> "));
    }
}

#[test]
fn a_cycle_is_found_however_long() {
    let graph = |edges: &[(&str, &str)]| {
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in edges {
            g.entry(from.to_string()).or_default().insert(to.to_string());
            g.entry(to.to_string()).or_default();
        }
        g
    };
    assert_eq!(cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "d")])), None);
    assert_eq!(
        cycle(&graph(&[("a", "b"), ("b", "c"), ("c", "a")])),
        Some(vec!["a".into(), "b".into(), "c".into(), "a".into()])
    );
    assert!(cycle(&graph(&[("x", "a"), ("a", "b"), ("b", "a")])).is_some());
}

/// Within each folder module of `src/`, each file and the sibling files it names (`super::NAME`,
/// `super::{NAME, ...}` or `crate::FOLDER::NAME`).
fn sibling_uses(folder: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let module = folder.file_name().unwrap().to_string_lossy().into_owned();
    let files: Vec<_> = walk(folder).into_iter().filter(|f| f.parent() == Some(folder)).collect();
    let names: BTreeSet<String> = files.iter().map(|f| f.file_stem().unwrap().to_string_lossy().into_owned()).collect();
    let mut graph = BTreeMap::new();
    for file in &files {
        let name = file.file_stem().unwrap().to_string_lossy().into_owned();
        if name == "mod" {
            continue;
        }
        let mut named = BTreeSet::new();
        for line in std::fs::read_to_string(file).unwrap().lines() {
            let code = line.split("//").next().unwrap_or_default();
            let crate_path = format!("crate::{module}::");
            for prefix in ["super::", crate_path.as_str()] {
                for (at, _) in code.match_indices(prefix) {
                    named.extend(first_names(&code[at + prefix.len()..]));
                }
            }
        }
        named.retain(|used| *used != name && names.contains(used));
        graph.insert(name, named);
    }
    graph
}

/// The first path segment of each item of a `use` tail: `a::b` gives `a`, `{a, b::{c}}` gives
/// `a` and `b`.
fn first_names(tail: &str) -> Vec<String> {
    let ident = |s: &str| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>();
    let Some(group) = tail.strip_prefix('{') else { return vec![ident(tail)] };
    let (mut depth, mut names, mut item_start) = (0, Vec::new(), true);
    for (at, c) in group.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => break,
            '}' => depth -= 1,
            ',' if depth == 0 => item_start = true,
            c if item_start && !c.is_whitespace() => {
                names.push(ident(&group[at..]));
                item_start = false;
            }
            _ => {}
        }
    }
    names
}

#[test]
fn no_file_uses_a_sibling_that_uses_it_back() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let proxy = sibling_uses(&src.join("proxy"));
    assert!(proxy["route"].contains("gate") && proxy["gate"].contains("session"), "the source was read: {proxy:?}");
    for entry in std::fs::read_dir(&src).unwrap() {
        let folder = entry.unwrap().path();
        if !folder.is_dir() {
            continue;
        }
        if let Some(found) = cycle(&sibling_uses(&folder)) {
            panic!("an import cycle among the files of {}: {}", folder.display(), found.join(" -> "));
        }
    }
}

#[test]
fn a_use_names_every_sibling_it_brings_in() {
    assert_eq!(first_names("gate::{self, Next};"), ["gate"]);
    assert_eq!(
        first_names("{Inbound, Outgoing, elicit, gate::{self, X}, listing};"),
        ["Inbound", "Outgoing", "elicit", "gate", "listing"]
    );
}
