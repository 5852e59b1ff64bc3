//! `containers/versions.env` names the tool versions the tests run with: the pinned versions
//! (inside the image) or the declared Debian ones (CI machines), and nothing else.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use biojob_tools::Tool;

fn versions_env() -> BTreeMap<String, String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../containers/versions.env");
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("{}: not KEY=value: {line}", path.display()));
            assert!(
                !value.contains([' ', '"', '\'', '$']),
                "{}: {key}: plain values only",
                path.display()
            );
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

/// What a tool on `PATH` (or its `BIOJOB_*` override) prints: the tool's version and, for
/// samtools, the htslib it uses.
fn probe(tool: Tool) -> (String, String, String) {
    let variable = format!("BIOJOB_{}", tool.name().to_uppercase());
    let program = std::env::var(&variable).unwrap_or_else(|_| tool.name().to_owned());
    let spec = tool.version_probe(camino::Utf8Path::new(&program));
    let argv = spec.argv();
    let output = Command::new(&argv[0])
        .args(&argv[1..])
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (run scripts/install-tools.sh)"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let version = tool
        .parse_version(&stdout, &stderr)
        .unwrap_or_else(|| panic!("{program} printed no version"));
    (version, stdout, stderr)
}

/// `found` is the pinned version or the declared Debian one; bwa adds `-r<revision>` to its
/// release number, which versions.env may leave out for the pinned release.
fn assert_declared(env: &BTreeMap<String, String>, name: &str, found: &str) {
    let pinned = &env[&format!("{name}_VERSION")];
    let debian = &env[&format!("DEBIAN_{name}_VERSION")];
    let matches = |declared: &str| {
        found == declared
            || found
                .strip_prefix(declared)
                .is_some_and(|rest| rest.starts_with("-r"))
    };
    assert!(
        matches(pinned) || matches(debian),
        "{name} {found} is neither the pinned {pinned} nor the declared Debian {debian}: \
         update containers/versions.env"
    );
}

#[test]
fn tools_on_path_are_the_declared_versions() {
    let env = versions_env();
    let (samtools, stdout, _) = probe(Tool::Samtools);
    assert_declared(&env, "SAMTOOLS", &samtools);
    let htslib = stdout
        .lines()
        .find_map(|line| line.strip_prefix("Using htslib "))
        .unwrap()
        .trim()
        .to_owned();
    assert_declared(&env, "HTSLIB", &htslib);
    let (bcftools, _, _) = probe(Tool::Bcftools);
    assert_declared(&env, "BCFTOOLS", &bcftools);
    let (bwa, _, _) = probe(Tool::Bwa);
    assert_declared(&env, "BWA", &bwa);
}

#[test]
fn every_pinned_tool_has_a_url_and_a_sha256() {
    let env = versions_env();
    for tool in ["HTSLIB", "SAMTOOLS", "BCFTOOLS", "BWA"] {
        let version = &env[&format!("{tool}_VERSION")];
        let url = &env[&format!("{tool}_URL")];
        let sha256 = &env[&format!("{tool}_SHA256")];
        assert!(
            url.starts_with("https://") && url.contains(version.as_str()),
            "{tool}_URL"
        );
        assert!(
            sha256.len() == 64
                && sha256
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()),
            "{tool}_SHA256 is not a SHA-256"
        );
    }
    // The EBS autoscale digest may be empty (declared unverified), never malformed.
    let ebs = &env["EBS_AUTOSCALE_SHA256"];
    assert!(ebs.is_empty() || ebs.len() == 64, "EBS_AUTOSCALE_SHA256");
}
