//! The QC step on the real data: the native figures against samtools and bcftools, the test
//! data's README, MultiQC's markers, and the report rendered in headless Chromium.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support::{Workspace, stderr, tool};

/// One `biojob run` on the real data, shared by the tests of this module.
pub struct QcRun {
    _workspace: Workspace,
    pub dir: PathBuf,
}

pub fn qc_run() -> &'static QcRun {
    static RUN: OnceLock<QcRun> = OnceLock::new();
    RUN.get_or_init(|| {
        let ws = Workspace::new();
        let input = ws.demo_input(&["chr20", "chr22", "chrM"]);
        let output = ws.run(&input, "qc", &[], &[]);
        assert!(output.status.success(), "{}", stderr(&output));
        let dir = ws.out().join("NA12878/qc");
        QcRun {
            _workspace: ws,
            dir,
        }
    })
}

fn qc_json(run: &QcRun) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.dir.join("qc.json")).unwrap()).unwrap()
}

/// `key:` → value lines of a `samtools flagstat` report: the QC-passed count of each line.
fn flagstat_count(text: &str, what: &str) -> u64 {
    let line = text
        .lines()
        .find(|l| l.contains(what))
        .unwrap_or_else(|| panic!("no {what:?} in flagstat:\n{text}"));
    line.split_whitespace().next().unwrap().parse().unwrap()
}

fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

#[test]
fn native_read_counts_equal_flagstat_and_the_readme() {
    let run = qc_run();
    let qc = qc_json(run);
    let reads = &qc["reads"];
    let flagstat = std::fs::read_to_string(run.dir.join("NA12878.flagstat.txt")).unwrap();
    assert_eq!(
        reads["records"].as_u64().unwrap(),
        flagstat_count(&flagstat, "in total")
    );
    assert_eq!(
        reads["mapped"].as_u64().unwrap(),
        flagstat_count(&flagstat, " mapped (")
    );
    assert_eq!(
        reads["properly_paired"].as_u64().unwrap(),
        flagstat_count(&flagstat, "properly paired")
    );
    assert_eq!(
        reads["paired"].as_u64().unwrap(),
        flagstat_count(&flagstat, "paired in sequencing")
    );
    assert_eq!(
        reads["singletons"].as_u64().unwrap(),
        flagstat_count(&flagstat, "singletons")
    );
    assert_eq!(
        reads["supplementary"].as_u64().unwrap(),
        flagstat_count(&flagstat, "supplementary")
    );
    // The test data's README: 27,726 records (27,720 primary, 6 supplementary), 99.03 % mapped
    // (27,456), 96.33 % properly paired, 248 singletons.
    assert_eq!(reads["records"], 27_726);
    assert_eq!(reads["primary"], 27_720);
    assert_eq!(reads["supplementary"], 6);
    assert_eq!(reads["mapped"], 27_456);
    assert_eq!(reads["singletons"], 248);
    assert_eq!(round(reads["mapped_percent"].as_f64().unwrap(), 2), 99.03);
    assert_eq!(
        round(reads["properly_paired_percent"].as_f64().unwrap(), 2),
        96.33
    );
}

#[test]
fn native_depth_equals_samtools_depth_and_the_readme() {
    let run = qc_run();
    let qc = qc_json(run);
    let bam = run.dir.join("NA12878.align.bam");
    let depth = tool(
        "samtools",
        &["depth", "-a", bam.to_str().unwrap()],
        Path::new("/"),
    );
    // Per contig: (sum of depths, bases with depth ≥ 1).
    let mut by_contig: Vec<(String, u64, u64)> = Vec::new();
    for line in depth.lines() {
        let mut fields = line.split('\t');
        let contig = fields.next().unwrap();
        let value: u64 = fields.nth(1).unwrap().parse().unwrap();
        if by_contig.last().is_none_or(|(c, _, _)| c != contig) {
            by_contig.push((contig.to_owned(), 0, 0));
        }
        let last = by_contig.last_mut().unwrap();
        last.1 += value;
        last.2 += u64::from(value > 0);
    }
    let contigs = qc["contigs"].as_array().unwrap();
    let exact: Vec<(String, u64, u64)> = contigs
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["aligned_bases"].as_u64().unwrap(),
                c["covered_bases"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(exact, by_contig);
    let ours: Vec<(String, f64, f64)> = contigs
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["mean_depth"].as_f64().unwrap(),
                c["breadth"].as_f64().unwrap(),
            )
        })
        .collect();
    for ((name, depth, breadth), c) in ours.iter().zip(contigs) {
        let length = c["length"].as_f64().unwrap();
        let (sum, covered) = (
            c["aligned_bases"].as_f64().unwrap(),
            c["covered_bases"].as_f64().unwrap(),
        );
        assert!((depth - sum / length).abs() < 1e-12, "{name}");
        assert!((breadth - covered / length).abs() < 1e-12, "{name}");
    }
    // The test data's README: mean depth chr20 8.0, chr22 38.1, chrM 0.4.
    let rounded: Vec<(String, f64)> = ours
        .iter()
        .map(|(name, depth, _)| (name.clone(), round(*depth, 1)))
        .collect();
    assert_eq!(
        rounded,
        [
            ("chr20".to_owned(), 8.0),
            ("chr22".to_owned(), 38.1),
            ("chrM".to_owned(), 0.4)
        ]
    );
}

/// Figures of `bcftools stats -s -` output: SN lines by key, TSTV and PSC fields.
fn bcftools_stats(text: &str) -> (Vec<(String, u64)>, Vec<String>, Vec<String>) {
    let sn = text
        .lines()
        .filter_map(|l| l.strip_prefix("SN\t0\t"))
        .map(|l| {
            let (key, value) = l.split_once(":\t").unwrap();
            (key.to_owned(), value.trim().parse().unwrap())
        })
        .collect();
    let fields = |tag: &str| -> Vec<String> {
        text.lines()
            .find(|l| l.starts_with(&format!("{tag}\t0\t")))
            .unwrap_or_else(|| panic!("no {tag} line"))
            .split('\t')
            .skip(2)
            .map(str::to_owned)
            .collect()
    };
    (sn, fields("TSTV"), fields("PSC"))
}

#[test]
fn native_variant_counts_equal_bcftools_stats_and_the_readme() {
    let run = qc_run();
    let qc = qc_json(run);
    let text = std::fs::read_to_string(run.dir.join("NA12878.bcftools_stats.txt")).unwrap();
    let (sn, tstv, psc) = bcftools_stats(&text);
    let get = |key: &str| sn.iter().find(|(k, _)| k == key).unwrap().1;
    let variants = &qc["variants"];
    assert_eq!(
        variants["records"].as_u64().unwrap(),
        get("number of records")
    );
    assert_eq!(variants["snvs"].as_u64().unwrap(), get("number of SNPs"));
    assert_eq!(variants["mnps"].as_u64().unwrap(), get("number of MNPs"));
    assert_eq!(
        variants["indels"].as_u64().unwrap(),
        get("number of indels")
    );
    assert_eq!(
        variants["multiallelic"].as_u64().unwrap(),
        get("number of multiallelic sites")
    );
    assert_eq!(variants["transitions"].to_string(), tstv[0]);
    assert_eq!(variants["transversions"].to_string(), tstv[1]);
    assert_eq!(
        format!("{:.2}", variants["ti_tv"].as_f64().unwrap()),
        tstv[2]
    );
    // PSC: id, sample, nRefHom, nNonRefHom, nHets, …
    assert_eq!(psc[0], "NA12878");
    assert_eq!(variants["hom_alt"].to_string(), psc[2]);
    assert_eq!(variants["het"].to_string(), psc[3]);
    // The test data's README: calls chr20 422, chr22 16, chrM 0.
    let per_contig: Vec<(String, u64)> = qc["contigs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                c["variants"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        per_contig,
        [
            ("chr20".to_owned(), 422),
            ("chr22".to_owned(), 16),
            ("chrM".to_owned(), 0)
        ]
    );
    assert_eq!(variants["records"], 438);
}

#[test]
fn multiqc_finds_the_reports_by_their_content() {
    // MultiQC's search_patterns.yaml matches these modules on file contents, not names.
    let run = qc_run();
    for (file, marker) in [
        (
            "NA12878.flagstat.txt",
            "in total (QC-passed reads + QC-failed reads)",
        ),
        (
            "NA12878.samtools_stats.txt",
            "This file was produced by samtools stats",
        ),
        (
            "NA12878.bcftools_stats.txt",
            "This file was produced by bcftools stats",
        ),
    ] {
        let text = std::fs::read_to_string(run.dir.join(file)).unwrap();
        assert!(text.contains(marker), "{file} lacks {marker:?}");
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.dir.join("manifest.json")).unwrap()).unwrap();
    let qc = manifest["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["step"] == "qc")
        .unwrap();
    assert_eq!(qc["status"], "succeeded");
    let labels: Vec<&str> = qc["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        ["samtools-flagstat", "samtools-stats", "bcftools-stats"]
    );
    let outputs: Vec<&str> = qc["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        outputs,
        [
            "NA12878.flagstat.txt",
            "NA12878.samtools_stats.txt",
            "NA12878.bcftools_stats.txt",
            "qc.json",
            "report.html"
        ]
    );
}

/// The Chromium to run: `BIOJOB_CHROMIUM`, else `chromium` on `PATH` (Debian's package;
/// `scripts/test.sh` installs it). A missing browser fails the test: it is not skipped.
fn chromium() -> String {
    let program = std::env::var("BIOJOB_CHROMIUM").unwrap_or_else(|_| "chromium".to_owned());
    let found = Command::new(&program).arg("--version").output();
    assert!(
        found.as_ref().is_ok_and(|o| o.status.success()),
        "cannot run {program} ({found:?}): install Debian's chromium (scripts/test.sh does) or \
         set BIOJOB_CHROMIUM"
    );
    program
}

/// Chromium with the flags that work headless, as root, offline; a fresh profile per run.
fn headless(profile: &Path) -> Command {
    let mut command = Command::new(chromium());
    command.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
    ]);
    command.arg(format!("--user-data-dir={}", profile.display()));
    command
}

#[test]
fn report_renders_offline_in_headless_chromium_with_its_figures() {
    let run = qc_run();
    let report = run.dir.join("report.html");
    let html = std::fs::read_to_string(&report).unwrap();
    // Self-contained: nothing is fetched.
    for reference in ["src=", "href=", "url(", "@import", "<script"] {
        assert!(!html.contains(reference), "report.html has {reference}");
    }
    let profile = tempfile::tempdir().unwrap();
    let output = headless(profile.path())
        .arg("--dump-dom")
        .arg(format!("file://{}", report.display()))
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let dom = String::from_utf8_lossy(&output.stdout);
    for figure in [
        "fig-depth",
        "fig-breadth",
        "fig-variants",
        "fig-depth-along",
        "fig-timeline",
    ] {
        let start = dom
            .find(&format!("<figure id=\"{figure}\""))
            .unwrap_or_else(|| panic!("figure {figure} is not in the rendered DOM"));
        let end = start + dom[start..].find("</figure>").unwrap();
        assert!(
            dom[start..end].contains("<svg"),
            "figure {figure} has no SVG"
        );
    }
    // One bar per contig in the depth and breadth charts, with the values of qc.json.
    let bars = |figure: &str| -> Vec<String> {
        let start = dom.find(&format!("<figure id=\"{figure}\"")).unwrap();
        let end = start + dom[start..].find("</figure>").unwrap();
        dom[start..end]
            .match_indices("class=\"bar\" data-label=\"")
            .map(|(at, pattern)| {
                let rest = &dom[start + at + pattern.len()..];
                let label = &rest[..rest.find('"').unwrap()];
                let value_at = rest.find("data-value=\"").unwrap() + "data-value=\"".len();
                let value = &rest[value_at..value_at + rest[value_at..].find('"').unwrap()];
                format!("{label}={value}")
            })
            .collect()
    };
    assert_eq!(bars("fig-depth"), ["chr20=8.0", "chr22=38.1", "chrM=0.4"]);
    assert_eq!(bars("fig-breadth").len(), 3);
    assert_eq!(
        bars("fig-variants"),
        [
            "chr20=".to_owned() + &snv_count(run, "chr20"),
            "chr20=".to_owned() + &indel_count(run, "chr20"),
            "chr22=".to_owned() + &snv_count(run, "chr22"),
            "chr22=".to_owned() + &indel_count(run, "chr22"),
            "chrM=0".to_owned(),
            "chrM=0".to_owned(),
        ]
    );
    assert_eq!(dom.matches("class=\"depth-line\"").count(), 3);
    // One timeline bar per task: prepare-reference, align, 3 calls, gather, qc.
    assert_eq!(dom.matches("class=\"task\"").count(), 7);

    // And it paints: a screenshot of the page is a real PNG of the requested size.
    let png = profile.path().join("report.png");
    let shot = headless(&profile.path().join("profile-2"))
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1100,2400")
        .arg(format!("file://{}", report.display()))
        .output()
        .unwrap();
    assert!(shot.status.success(), "{}", stderr(&shot));
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (1100, 2400));
    if let Ok(keep) = std::env::var("BIOJOB_KEEP_REPORT_PNG") {
        std::fs::copy(&png, keep).unwrap();
    }
}

fn contig_figure(run: &QcRun, contig: &str, key: &str) -> String {
    let qc = qc_json(run);
    qc["contigs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == contig)
        .unwrap()[key]
        .to_string()
}

fn snv_count(run: &QcRun, contig: &str) -> String {
    contig_figure(run, contig, "snvs")
}

fn indel_count(run: &QcRun, contig: &str) -> String {
    contig_figure(run, contig, "indels")
}
