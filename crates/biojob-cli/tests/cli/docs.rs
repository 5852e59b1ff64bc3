//! The documentation against the repository: every relative link of the README and `docs/`
//! names a file that exists (and a heading that exists, for `#anchor` links), every `docs/…`
//! page the code cites exists, every `BIOJOB_` setting is in `docs/settings.md`, and every odd
//! input that `docs/reliability.md` lists names a test that exists.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The pages whose links are checked: the README, BENCHMARKS.md and every page of `docs/`.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![root().join("README.md"), root().join("BENCHMARKS.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// `markdown` without its fenced code blocks and inline code spans.
fn prose(markdown: &str) -> String {
    let mut text = String::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            let outside_code: Vec<&str> = line.split('`').step_by(2).collect();
            text.push_str(&outside_code.concat());
            text.push('\n');
        }
    }
    text
}

/// The targets of the inline links `[text](target)` of `markdown`, outside code.
fn link_targets(markdown: &str) -> Vec<String> {
    prose(markdown)
        .split("](")
        .skip(1)
        .filter_map(|rest| {
            rest.split_once(')')
                .map(|(target, _)| target.trim().to_owned())
        })
        .collect()
}

/// GitHub's anchor of a heading: lowercase, punctuation other than `-` and `_` dropped,
/// spaces as hyphens.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of the headings of `markdown`.
fn anchors(markdown: &str) -> BTreeSet<String> {
    prose(markdown)
        .lines()
        .filter(|line| line.starts_with('#'))
        .map(|line| anchor(line.trim_start_matches('#')))
        .collect()
}

/// What is wrong with each relative link of the page at `page`.
fn broken_links(page: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(page).unwrap();
    let mut broken = Vec::new();
    for target in link_targets(&text) {
        if target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let (file, fragment) = match target.split_once('#') {
            Some((file, fragment)) => (file, Some(fragment)),
            None => (target.as_str(), None),
        };
        let linked = if file.is_empty() {
            page.to_owned()
        } else {
            page.parent().unwrap().join(file)
        };
        if !linked.exists() {
            broken.push(format!("{}: {target}: no such file", page.display()));
            continue;
        }
        if let Some(fragment) = fragment {
            let headings = anchors(&std::fs::read_to_string(&linked).unwrap());
            if !headings.contains(fragment) {
                broken.push(format!(
                    "{}: {target}: no heading #{fragment} in {}",
                    page.display(),
                    linked.display()
                ));
            }
        }
    }
    broken
}

#[test]
fn every_relative_link_of_the_docs_names_a_file_and_heading_that_exist() {
    let broken: Vec<String> = pages().iter().flat_map(|page| broken_links(page)).collect();
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

#[test]
fn a_broken_link_or_anchor_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("page.md");
    std::fs::write(
        dir.path().join("other.md"),
        "# Other page\n\n## The plan, used twice\n",
    )
    .unwrap();
    std::fs::write(
        &page,
        "# Page\n\nSee [a](other.md), [b](other.md#the-plan-used-twice), [c](missing.md), \
         [d](other.md#nowhere), [e](#page), [f](https://example.com/x.md).\n\n\
         ```text\n[g](not-a-link.md)\n```\n`[h](code.md)`\n",
    )
    .unwrap();
    let display = page.display().to_string();
    assert_eq!(
        broken_links(&page),
        [
            format!("{display}: missing.md: no such file"),
            format!(
                "{display}: other.md#nowhere: no heading #nowhere in {}",
                dir.path().join("other.md").display()
            ),
        ]
    );
}

/// The files under `dirs` (repository paths; `target/` skipped) that `keep` accepts.
fn files_under(dirs: &[&str], keep: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    fn walk(dir: &Path, keep: &dyn Fn(&Path) -> bool, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|name| name != "target") {
                    walk(&path, keep, found);
                }
            } else if keep(&path) {
                found.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for dir in dirs {
        walk(&root().join(dir), &keep, &mut files);
    }
    files
}

/// Every `docs/<name>.md` that a source file, template, container file or script names.
fn cited_docs() -> BTreeSet<String> {
    let files = files_under(
        &["crates", "templates", "containers", "scripts", "buildspecs"],
        |path| {
            path.extension()
                .is_some_and(|e| ["rs", "yaml", "json", "sh"].iter().any(|x| e == *x))
                || path.file_name().is_some_and(|name| name == "Dockerfile")
        },
    );
    let mut cited = BTreeSet::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for rest in text.split("docs/").skip(1) {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
                .collect();
            if let Some(page) = name.strip_suffix('.').unwrap_or(&name).strip_suffix(".md") {
                cited.insert(format!("{page}.md"));
            }
        }
    }
    cited
}

#[test]
fn every_docs_page_the_code_cites_exists() {
    let cited = cited_docs();
    for page in [
        "steps.md",
        "resume.md",
        "scaling.md",
        "manifest.md",
        "batch-contract.md",
    ] {
        assert!(cited.contains(page), "{page} is no longer cited: {cited:?}");
    }
    let missing: Vec<&String> = cited
        .iter()
        .filter(|page| !root().join("docs").join(page).exists())
        .collect();
    assert!(
        missing.is_empty(),
        "cited but missing in docs/: {missing:?}"
    );
}

#[test]
fn every_biojob_setting_is_in_the_settings_page() {
    let source = std::fs::read_to_string(root().join("crates/biojob-pipeline/src/env.rs")).unwrap();
    let names: Vec<&str> = source
        .lines()
        .filter_map(|line| line.trim().strip_prefix("pub const BIOJOB_"))
        .filter_map(|rest| rest.split_once("&str = \""))
        .filter_map(|(_, value)| value.split_once('"'))
        .map(|(value, _)| value)
        .collect();
    assert!(names.contains(&"BIOJOB_THREADS"), "env.rs not parsed");
    let settings = std::fs::read_to_string(root().join("docs/settings.md")).unwrap();
    let missing: Vec<&&str> = names
        .iter()
        .filter(|name| !settings.contains(&format!("`{name}`")))
        .collect();
    assert!(missing.is_empty(), "not in docs/settings.md: {missing:?}");
}

/// The names of the functions of every Rust file under `crates/` and `benches/`.
fn rust_functions() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for file in files_under(&["crates", "benches"], |path| {
        path.extension().is_some_and(|e| e == "rs")
    }) {
        let text = std::fs::read_to_string(&file).unwrap();
        for rest in text.split("fn ").skip(1) {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if rest[name.len()..].starts_with('(') {
                names.insert(name);
            }
        }
    }
    names
}

/// The test names in a table cell: code spans of lowercase words joined by `_` (at least three
/// words), optionally after `module::`, possibly cut short with `…`. A cell saying "the same
/// test" names the row above's.
fn test_names(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| {
            span.matches('_').count() >= 2
                && span
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_:…".contains(c))
        })
        .map(|span| span.rsplit("::").next().unwrap_or(span).to_owned())
        .collect()
}

#[test]
fn every_odd_input_in_the_reliability_page_names_a_test_that_exists() {
    let page = std::fs::read_to_string(root().join("docs/reliability.md")).unwrap();
    let section = page
        .split("\n## ")
        .find(|section| section.starts_with("Odd inputs"))
        .unwrap();
    let functions = rust_functions();
    let lines: Vec<&str> = section.lines().collect();
    let mut rows = 0;
    let mut previous = Vec::new();
    for (index, line) in lines.iter().enumerate() {
        let is_row = line.starts_with('|')
            && !line.starts_with("|---")
            && !lines
                .get(index + 1)
                .is_some_and(|next| next.starts_with("|---"));
        if !is_row {
            continue;
        }
        rows += 1;
        let cell = line.trim_end_matches('|').rsplit('|').next().unwrap();
        let names = if cell.trim() == "the same test" {
            previous.clone()
        } else {
            test_names(cell)
        };
        assert!(!names.is_empty(), "no test named in: {line}");
        previous.clone_from(&names);
        for name in names {
            let found = match name.strip_suffix('…') {
                Some(prefix) => functions.iter().any(|f| f.starts_with(prefix)),
                None => functions.contains(&name),
            };
            assert!(found, "no function {name} (named in: {line})");
        }
    }
    assert!(rows >= 40, "{rows} rows");
}
