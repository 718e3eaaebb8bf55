//! The documentation's references resolve: every rule id cited in code, tests and docs is
//! defined in docs/rules.md, every relative markdown link names a file (and heading) that
//! exists, and tests are named after rules or behaviour, never after bare numbers.
//! Plain file reads, no server.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Files under `dirs` (relative to the repository) whose name ends in one of `exts`, skipping
/// build output and installed packages.
fn files(dirs: &[&str], exts: &[&str]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo: Vec<PathBuf> = dirs.iter().map(|d| root().join(d)).collect();
    while let Some(path) = todo.pop() {
        if path.is_dir() {
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if ["target", "node_modules", "artifacts", "corpus"].contains(&name) {
                continue;
            }
            for entry in std::fs::read_dir(&path).unwrap() {
                todo.push(entry.unwrap().path());
            }
        } else if exts.iter().any(|e| path.to_string_lossy().ends_with(e)) {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn shown(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The rule ids in `text`: `R` and two digits standing alone (`R07`, `R01-R25`), and the
/// leading `rNN_` parts of test names (`fn r04_r07_...`).
fn rule_ids(text: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let b = text.as_bytes();
    let word = |i: usize| {
        b.get(i)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
    };
    for i in 0..b.len().saturating_sub(2) {
        if b[i] == b'R'
            && b[i + 1].is_ascii_digit()
            && b[i + 2].is_ascii_digit()
            && (i == 0 || !word(i - 1))
            && !b.get(i + 3).is_some_and(u8::is_ascii_alphanumeric)
        {
            ids.push(text[i..i + 3].to_owned());
        }
    }
    for line in text.lines() {
        let Some((_, rest)) = line.split_once("fn r") else {
            continue;
        };
        let mut name = format!("r{rest}");
        while name.len() > 3 && name.as_bytes()[0] == b'r' && name.as_bytes()[3] == b'_' {
            let id = &name[1..3];
            if !id.bytes().all(|c| c.is_ascii_digit()) {
                break;
            }
            ids.push(format!("R{id}"));
            name = name[4..].to_owned();
        }
    }
    ids
}

/// The rule ids docs/rules.md defines: its `### RNN ...` headings.
fn defined_rules() -> BTreeSet<String> {
    let rules = read(&root().join("docs/rules.md"));
    let mut defined = BTreeSet::new();
    for line in rules.lines() {
        if let Some(rest) = line.strip_prefix("### ") {
            let id: String = rest.chars().take(3).collect();
            assert!(defined.insert(id.clone()), "{id} is defined twice");
        }
    }
    defined
}

#[test]
fn docs_every_cited_rule_id_is_defined_in_rules_md() {
    let defined = defined_rules();
    let expected: BTreeSet<String> = (1..=25).map(|n| format!("R{n:02}")).collect();
    assert_eq!(defined, expected, "docs/rules.md defines R01-R25");
    let mut sources = files(
        &[
            "src",
            "tests",
            "proto",
            "docs",
            "migrations",
            "loadtest",
            "fuzz",
            ".ci",
        ],
        &[".rs", ".md", ".proto", ".sql", ".sh", ".py", ".js", "/run"],
    );
    sources.extend(["README.md", "build.rs"].map(|f| root().join(f)));
    let mut undefined = Vec::new();
    for path in &sources {
        for id in rule_ids(&read(path)) {
            if !defined.contains(&id) {
                undefined.push(format!("{}: {id}", shown(path)));
            }
        }
    }
    assert!(undefined.is_empty(), "not in docs/rules.md: {undefined:?}");
}

/// GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

/// The anchors of a markdown file's headings.
fn anchors(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect()
}

/// The targets of the inline links `[text](target)` of a markdown text, outside code blocks.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        let mut rest = line;
        while !fenced && let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let end = after.find(')').unwrap_or(after.len());
            targets.push(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    targets
}

#[test]
fn docs_relative_links_name_files_and_headings_that_exist() {
    let mut docs = files(&["docs"], &[".md"]);
    docs.push(root().join("README.md"));
    let mut broken = Vec::new();
    for doc in &docs {
        let text = read(doc);
        for target in link_targets(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (file, heading) = target.split_once('#').unwrap_or((&target, ""));
            let linked = if file.is_empty() {
                doc.clone()
            } else {
                doc.parent().unwrap().join(file)
            };
            if !linked.exists() {
                broken.push(format!("{}: {target} (no such file)", shown(doc)));
            } else if !heading.is_empty()
                && (file.ends_with(".md") || file.is_empty())
                && !anchors(&read(&linked)).contains(heading)
            {
                broken.push(format!("{}: {target} (no such heading)", shown(doc)));
            }
        }
    }
    assert!(broken.is_empty(), "broken links: {broken:#?}");
}

/// A test name that carries a bare number instead of a rule or a behaviour: a word `itemN`,
/// `issueN` or `iN_` (`item8_...`, `i11_5_...`), the integer types aside (`i64_`).
fn names_a_bare_number(name: &str) -> bool {
    name.split('_').enumerate().any(|(at, word)| {
        let number = |prefix: &str| {
            word.strip_prefix(prefix)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|c| c.is_ascii_digit()))
        };
        let followed = at + 1 < name.split('_').count();
        number("item")
            || number("issue")
            || (number("i") && followed && !["i8", "i16", "i32", "i64", "i128"].contains(&word))
    })
}

#[test]
fn docs_tests_are_named_after_rules_or_behaviours() {
    for (name, bad) in [
        ("item8_flags", true),
        ("i11_5_drain", true),
        ("hardening_i12_props", true),
        ("r24_items_are_checked", false),
        ("i64_ids_round_trip", false),
        ("jwks_keys_issued_by_a_private_ca", false),
    ] {
        assert_eq!(names_a_bare_number(name), bad, "{name}");
    }
    let mut offending = Vec::new();
    for path in files(&["src", "tests", "loadtest", "fuzz"], &[".rs"]) {
        let mut attribute = false;
        for line in read(&path).lines() {
            let line = line.trim_start();
            if line.starts_with("#[test]") || line.starts_with("#[tokio::test") {
                attribute = true;
            } else if attribute && let Some((_, rest)) = line.split_once("fn ") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if names_a_bare_number(&name) {
                    offending.push(format!("{}: {name}", shown(&path)));
                }
                attribute = false;
            }
        }
    }
    assert!(
        offending.is_empty(),
        "name these after a rule or behaviour: {offending:?}"
    );
}
