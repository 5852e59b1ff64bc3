//! The CodeBuild buildspecs: each parses as YAML, is version 0.2, has the phases its job needs,
//! and every script its commands run exists in the repository and is executable.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_norway::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every buildspec and the phases it must have.
const BUILDSPECS: [(&str, &[&str]); 3] = [
    ("buildspecs/ci.yml", &["install", "pre_build", "build"]),
    (
        "buildspecs/image.yml",
        &["install", "pre_build", "build", "post_build"],
    ),
    ("buildspecs/package.yml", &["install", "build"]),
];

/// Repository paths of scripts named in a command: words that start with one of the
/// repository's script directories (or are `.ci/run`), stripped of quotes.
fn scripts_in(command: &str) -> Vec<String> {
    command
        .split(|c: char| c.is_whitespace() || "\"'();|&$".contains(c))
        .filter(|word| {
            *word == ".ci/run"
                || ["buildspecs/", "containers/", "scripts/"]
                    .iter()
                    .any(|dir| word.starts_with(dir) && word.ends_with(".sh"))
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn buildspecs_have_their_phases_and_scripts() {
    let mut listed: Vec<&str> = BUILDSPECS.iter().map(|(path, _)| *path).collect();
    listed.sort_unstable();
    let mut present: Vec<String> = std::fs::read_dir(root().join("buildspecs"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yml") || name.ends_with(".yaml"))
        .map(|name| format!("buildspecs/{name}"))
        .collect();
    present.sort_unstable();
    assert_eq!(present, listed, "every buildspec is checked here");

    for (path, phases) in BUILDSPECS {
        let text = std::fs::read_to_string(root().join(path)).unwrap();
        let spec: Value = serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(spec["version"].as_f64(), Some(0.2), "{path}: version 0.2");
        let mut scripts = Vec::new();
        for phase in phases {
            let commands = spec["phases"][*phase]["commands"]
                .as_sequence()
                .unwrap_or_else(|| panic!("{path}: phase {phase} has no commands"));
            for command in commands {
                let command = command
                    .as_str()
                    .unwrap_or_else(|| panic!("{path}: {phase}: a command is not a string"));
                scripts.extend(scripts_in(command));
            }
        }
        assert!(!scripts.is_empty(), "{path} runs no repository script");
        for script in scripts {
            let file = root().join(&script);
            let meta = std::fs::metadata(&file)
                .unwrap_or_else(|e| panic!("{path} runs {script}, which is missing: {e}"));
            assert!(
                meta.permissions().mode() & 0o111 != 0,
                "{path} runs {script}, which is not executable"
            );
        }
    }
}

#[test]
fn script_words_are_found() {
    assert_eq!(
        scripts_in(r#"IMAGE_URI="$(buildspecs/scripts/push-image.sh "biojob:$T" x)""#),
        ["buildspecs/scripts/push-image.sh"]
    );
    assert_eq!(scripts_in("bash .ci/run"), [".ci/run"]);
}
