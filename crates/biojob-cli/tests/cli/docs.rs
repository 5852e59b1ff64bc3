//! The documentation against the repository: every relative link of the README and `docs/`
//! names a file that exists (and a heading that exists, for `#anchor` links), every `docs/…`
//! page the code cites exists, and every `BIOJOB_` setting is in `docs/settings.md`.

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

/// Every `docs/<name>.md` that a source file, template, container file or script names.
fn cited_docs() -> BTreeSet<String> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path.file_name().is_some_and(|name| name != "target") {
                    walk(&path, found);
                }
            } else if path
                .extension()
                .is_some_and(|e| ["rs", "yaml", "json", "sh"].iter().any(|x| e == *x))
                || path.file_name().is_some_and(|name| name == "Dockerfile")
            {
                found.push(path);
            }
        }
    }
    let mut files = Vec::new();
    for dir in ["crates", "templates", "containers", "scripts", "buildspecs"] {
        walk(&root().join(dir), &mut files);
    }
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
