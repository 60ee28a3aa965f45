//! Every relative link in the project's Markdown leads somewhere: README.md, ARCHITECTURE.md (when
//! there is one) and every file under docs/. A link's file must exist, and its `#anchor` must be a
//! heading of that file, slugged the way GitHub slugs headings. External links (http, https,
//! mailto) are not followed; links inside code are not links, which the Markdown parser knows.
//!
//! A file split or a heading renamed breaks links far away from the edit; this test names each
//! one with its file and line.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};

/// What one Markdown file offers and asks for.
struct Scanned {
    /// The anchors of its headings, as GitHub makes them.
    anchors: HashSet<String>,
    /// Every link and image destination, with the line it is on.
    links: Vec<(String, usize)>,
}

/// GitHub's heading anchor: lower case, spaces to `-`, every character but letters, digits, `-`
/// and `_` dropped. Repeats are told apart by the caller (`-1`, `-2`, ...).
fn slug(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

fn scan(text: &str) -> Scanned {
    let mut anchors = HashSet::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut links = Vec::new();
    let mut heading: Option<String> = None;
    let options = Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH;
    for (event, range) in Parser::new_ext(text, options).into_offset_iter() {
        match event {
            Event::Start(Tag::Heading { .. }) => heading = Some(String::new()),
            Event::End(TagEnd::Heading(_)) => {
                let base = slug(&heading.take().unwrap_or_default());
                let n = seen.entry(base.clone()).or_insert(0);
                let anchor = if *n == 0 { base.clone() } else { format!("{base}-{n}") };
                *n += 1;
                anchors.insert(anchor);
            }
            Event::Text(t) | Event::Code(t) => {
                if let Some(h) = heading.as_mut() {
                    h.push_str(&t);
                }
            }
            Event::Start(Tag::Link { dest_url, .. } | Tag::Image { dest_url, .. }) => {
                let line = text[..range.start].matches('\n').count() + 1;
                links.push((dest_url.to_string(), line));
            }
            _ => {}
        }
    }
    Scanned { anchors, links }
}

fn is_external(dest: &str) -> bool {
    let lower = dest.to_ascii_lowercase();
    lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("mailto:")
}

/// The Markdown files whose links are checked.
fn documents(root: &Path) -> Vec<PathBuf> {
    let mut files = vec![root.join("README.md")];
    if root.join("ARCHITECTURE.md").is_file() {
        files.push(root.join("ARCHITECTURE.md"));
    }
    let mut folders = vec![root.join("docs")];
    while let Some(folder) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else { continue };
        for entry in entries {
            let path = entry.expect("read docs/").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "md") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Every broken link of `files`, as "file:line: link: why".
fn broken_links(root: &Path, files: &[PathBuf]) -> Vec<String> {
    let mut cache: HashMap<PathBuf, Scanned> = HashMap::new();
    let mut read = |path: &Path| -> Option<HashSet<String>> {
        let key = path.canonicalize().ok()?;
        if !cache.contains_key(&key) {
            let text = std::fs::read_to_string(&key).ok()?;
            cache.insert(key.clone(), scan(&text));
        }
        Some(cache[&key].anchors.clone())
    };
    let mut problems = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).expect("read a Markdown file");
        let shown = file.strip_prefix(root).unwrap_or(file).display().to_string();
        for (dest, line) in scan(&text).links {
            if is_external(&dest) {
                continue;
            }
            let (path, anchor) = match dest.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (dest.as_str(), None),
            };
            let target = if path.is_empty() {
                file.clone()
            } else if path.starts_with('/') {
                problems.push(format!("{shown}:{line}: {dest}: an absolute path; link relatively"));
                continue;
            } else {
                file.parent().expect("a file has a folder").join(path)
            };
            if !target.exists() {
                problems.push(format!("{shown}:{line}: {dest}: no such file"));
                continue;
            }
            let Some(anchor) = anchor else { continue };
            if target.extension().is_none_or(|e| e != "md") {
                problems.push(format!("{shown}:{line}: {dest}: an anchor into a file that is not Markdown"));
                continue;
            }
            match read(&target) {
                Some(anchors) if anchors.contains(anchor) => {}
                Some(_) => problems.push(format!("{shown}:{line}: {dest}: no heading has the anchor #{anchor}")),
                None => problems.push(format!("{shown}:{line}: {dest}: cannot be read")),
            }
        }
    }
    problems
}

#[test]
fn every_relative_link_and_anchor_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let files = documents(root);
    assert!(files.iter().any(|f| f.starts_with(root.join("docs"))), "no Markdown found under docs/: {files:?}");
    let problems = broken_links(root, &files);
    assert!(problems.is_empty(), "broken links:\n{}", problems.join("\n"));
}

#[test]
fn the_readme_links_into_the_docs() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("README.md")).expect("read README.md");
    let into_docs = scan(&text).links.iter().filter(|(dest, _)| dest.starts_with("docs/")).count();
    assert!(into_docs >= 10, "the README links into docs/ only {into_docs} times");
}

#[test]
fn anchors_are_slugged_as_github_does() {
    let anchors = scan(
        "# toolgate\n\
         ## Recording and replaying: `toolgate record`, `toolgate replay`\n\
         ### Reference: `[settings]`\n\
         #### Arguments against the tool's schema: `[settings] arguments`\n\
         ## Set-up for contributors: two commands\n\
         ## FAQ\n## FAQ\n## FAQ\n\
         ```sh\n# not a heading\n```\n",
    )
    .anchors;
    let mut anchors: Vec<_> = anchors.into_iter().collect();
    anchors.sort();
    assert_eq!(
        anchors,
        [
            "arguments-against-the-tools-schema-settings-arguments",
            "faq",
            "faq-1",
            "faq-2",
            "recording-and-replaying-toolgate-record-toolgate-replay",
            "reference-settings",
            "set-up-for-contributors-two-commands",
            "toolgate",
        ]
    );
}

#[test]
fn a_broken_link_or_anchor_is_reported_with_its_line() {
    let folder = tempfile::tempdir().expect("a temporary folder");
    let root = folder.path();
    std::fs::create_dir(root.join("docs")).expect("mkdir docs");
    std::fs::write(root.join("docs/b.md"), "# B\n\n## Part two\n").expect("write b.md");
    std::fs::write(
        root.join("README.md"),
        "# A\n\n[ok](docs/b.md#part-two) [web](https://example.com/x#y) `[code](nowhere.md)`\n\
         [gone](docs/c.md)\n[bad anchor](docs/b.md#part-three)\n[here](#a) [not here](#b)\n\
         ```\n[in a block](nowhere.md)\n```\n",
    )
    .expect("write README.md");
    let problems = broken_links(root, &documents(root));
    assert_eq!(
        problems,
        [
            "README.md:4: docs/c.md: no such file",
            "README.md:5: docs/b.md#part-three: no heading has the anchor #part-three",
            "README.md:6: #b: no heading has the anchor #b",
        ]
    );
}

/// Every `docs/….md#anchor` the source names (help texts, messages, comments) leads somewhere.
#[test]
fn the_docs_the_source_points_to_exist() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut named = 0;
    let mut problems = Vec::new();
    for file in source_files(&root.join("src")) {
        let text = std::fs::read_to_string(&file).expect("read a source file");
        for (n, line) in text.lines().enumerate() {
            for (at, _) in line.match_indices("docs/") {
                let mention: String =
                    line[at..].chars().take_while(|c| c.is_alphanumeric() || "/._#-".contains(*c)).collect();
                let mention = mention.trim_end_matches('.');
                let Some((path, anchor)) = mention.split_once(".md").map(|(p, rest)| (format!("{p}.md"), rest)) else {
                    continue;
                };
                named += 1;
                let shown = format!("{}:{}: {mention}", file.strip_prefix(root).unwrap_or(&file).display(), n + 1);
                let Ok(doc) = std::fs::read_to_string(root.join(&path)) else {
                    problems.push(format!("{shown}: no such file"));
                    continue;
                };
                if let Some(anchor) = anchor.strip_prefix('#')
                    && !scan(&doc).anchors.contains(anchor)
                {
                    problems.push(format!("{shown}: no heading has the anchor #{anchor}"));
                }
            }
        }
    }
    assert!(named >= 10, "the source names the docs only {named} times");
    assert!(problems.is_empty(), "the source points to docs that are not there:\n{}", problems.join("\n"));
}

fn source_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read src/") {
        let path = entry.expect("a folder entry").path();
        if path.is_dir() {
            files.extend(source_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}
