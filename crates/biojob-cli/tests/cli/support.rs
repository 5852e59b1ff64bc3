//! Helpers: the test data, running biojob, running the tools by hand, reading VCFs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The real test data directory (`BIOJOB_TESTDATA`; see `biojob_testkit::testdata`),
/// canonical.
pub fn testdata() -> PathBuf {
    biojob_testkit::testdata()
        .into_std_path_buf()
        .canonicalize()
        .unwrap()
}

/// A fake tool from `testdata/bin/`, canonical.
pub fn fake_tool(name: &str) -> PathBuf {
    biojob_testkit::fake_tool(name)
        .into_std_path_buf()
        .canonicalize()
        .unwrap()
}

/// A temporary directory for one test, with its own cache and scratch.
pub struct Workspace {
    pub dir: tempfile::TempDir,
}

impl Workspace {
    pub fn new() -> Self {
        Workspace {
            dir: tempfile::Builder::new()
                .prefix("biojob-test-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn out(&self) -> PathBuf {
        self.path().join("out")
    }

    /// Writes the execution input with `environment` entries and `chromosomes` (None: key absent).
    pub fn input(&self, environment: &[(&str, String)], chromosomes: Option<&[&str]>) -> PathBuf {
        let mut env = serde_json::Map::new();
        for (key, value) in environment {
            env.insert((*key).to_owned(), serde_json::Value::String(value.clone()));
        }
        let mut params = serde_json::json!({"queue": "local", "environment": env});
        if let Some(list) = chromosomes {
            params["chromosomes"] = serde_json::json!(list);
        }
        let path = self.path().join("input.json");
        std::fs::write(&path, serde_json::json!({ "params": params }).to_string()).unwrap();
        path
    }

    /// The standard input for the test data.
    pub fn demo_input(&self, chromosomes: &[&str]) -> PathBuf {
        self.input(
            &[
                ("REFERENCE_NAME", "ref".into()),
                ("SAMPLE_ID", "NA12878".into()),
                ("SOURCE_DATA_PREFIX", testdata().display().to_string()),
                ("JOB_OUTPUT_PREFIX", self.out().display().to_string()),
                ("JOB_AWS_CLI_PATH", "/opt/miniconda/bin".into()),
            ],
            Some(chromosomes),
        )
    }

    /// `biojob` with this workspace's cache and scratch, text logs.
    pub fn biojob(&self) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_biojob"));
        command
            .env("BIOJOB_CACHE_DIR", self.path().join("cache"))
            .env("BIOJOB_SCRATCH_DIR", self.path().join("scratch"))
            .env("BIOJOB_LOG_FORMAT", "text")
            .env_remove("AWS_BATCH_JOB_ID")
            .env_remove("BIOJOB_BWA")
            .env_remove("BIOJOB_ALIGNER")
            .env_remove("BIOJOB_THREADS")
            .current_dir(self.path());
        command
    }

    pub fn run(&self, input: &Path, run_id: &str, extra: &[&str], env: &[(&str, &Path)]) -> Output {
        let mut command = self.biojob();
        command
            .args(["run", "--input"])
            .arg(input)
            .args(["--run-id", run_id])
            .args(extra);
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().unwrap()
    }

    /// Every file under `dir`, relative, sorted.
    pub fn files(dir: &Path) -> Vec<String> {
        let mut files = Vec::new();
        let mut stack = vec![dir.to_owned()];
        while let Some(current) = stack.pop() {
            for entry in std::fs::read_dir(&current).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else {
                    files.push(path.strip_prefix(dir).unwrap().display().to_string());
                }
            }
        }
        files.sort();
        files
    }
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The `error:`, `hint:` and `exit class:` lines of biojob's stderr.
pub fn error_lines(output: &Output) -> Vec<String> {
    stderr(output)
        .lines()
        .filter(|l| {
            l.starts_with("error: ") || l.starts_with("hint: ") || l.starts_with("exit class: ")
        })
        .map(str::to_owned)
        .collect()
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs a tool, panicking with its stderr when it fails; returns stdout.
pub fn tool(program: &str, args: &[&str], dir: &Path) -> String {
    let output = Command::new(program)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// `a | b`, both awaited; panics when either fails.
pub fn pipe(a: (&str, &[&str]), b: (&str, &[&str]), dir: &Path) {
    let mut first = Command::new(a.0)
        .args(a.1)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let second = Command::new(b.0)
        .args(b.1)
        .current_dir(dir)
        .stdin(first.stdout.take().unwrap())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(first.wait().unwrap().success(), "{} failed", a.0);
    assert!(
        second.status.success(),
        "{} failed: {}",
        b.0,
        String::from_utf8_lossy(&second.stderr)
    );
}

/// The VCF's records (not its header), as text lines.
pub fn records(vcf: &Path) -> Vec<String> {
    tool(
        "bcftools",
        &["view", "-H", vcf.to_str().unwrap()],
        Path::new("/"),
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Asserts two VCFs have the same records, showing the first difference only.
pub fn assert_same_records(ours: &Path, theirs: &Path) {
    let (a, b) = (records(ours), records(theirs));
    if let Some(i) = (0..a.len().max(b.len())).find(|&i| a.get(i) != b.get(i)) {
        panic!(
            "{} and {} differ at record {i} of {}/{}:\n  {:?}\n  {:?}",
            ours.display(),
            theirs.display(),
            a.len(),
            b.len(),
            a.get(i),
            b.get(i)
        );
    }
}

/// Records per contig, for the contigs given (zero when absent).
pub fn counts(vcf: &Path, contigs: &[&str]) -> Vec<(String, usize)> {
    let mut by_contig: BTreeMap<String, usize> = BTreeMap::new();
    for record in records(vcf) {
        *by_contig
            .entry(record.split('\t').next().unwrap().to_owned())
            .or_default() += 1;
    }
    contigs
        .iter()
        .map(|c| ((*c).to_owned(), by_contig.get(*c).copied().unwrap_or(0)))
        .collect()
}

/// The same workflow run by hand with the same tools and parameters, once per test process.
pub struct HandRun {
    pub dir: PathBuf,
    pub vcf: PathBuf,
    pub per_contig: Vec<(String, PathBuf)>,
}

pub fn hand_run() -> &'static HandRun {
    static HAND: OnceLock<HandRun> = OnceLock::new();
    HAND.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("hand-run");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let data = testdata();
        std::fs::copy(data.join("ref.fa"), dir.join("ref.fa")).unwrap();
        tool("samtools", &["faidx", "ref.fa"], &dir);
        tool("bwa", &["index", "ref.fa"], &dir);
        let r1 = data.join("NA12878_R1.fastq.gz");
        let r2 = data.join("NA12878_R2.fastq.gz");
        pipe(
            (
                "bwa",
                &[
                    "mem",
                    "-t",
                    "2",
                    "-K",
                    "10000000",
                    "-R",
                    r"@RG\tID:NA12878\tSM:NA12878\tPL:ILLUMINA",
                    "ref.fa",
                    r1.to_str().unwrap(),
                    r2.to_str().unwrap(),
                ],
            ),
            ("samtools", &["sort", "-o", "hand.bam", "-"]),
            &dir,
        );
        tool("samtools", &["index", "hand.bam"], &dir);
        let mut per_contig = Vec::new();
        for contig in ["chr20", "chr22", "chrM"] {
            let out = format!("hand.{contig}.vcf.gz");
            pipe(
                (
                    "bcftools",
                    &[
                        "mpileup",
                        "-f",
                        "ref.fa",
                        "-r",
                        contig,
                        "-a",
                        "FORMAT/AD,FORMAT/DP",
                        "hand.bam",
                    ],
                ),
                ("bcftools", &["call", "-m", "-v", "-Oz", "-o", &out]),
                &dir,
            );
            tool("bcftools", &["index", "-t", &out], &dir);
            per_contig.push((contig.to_owned(), dir.join(&out)));
        }
        let mut concat = vec!["concat", "-Oz", "-o", "hand.vcf.gz"];
        let names: Vec<String> = per_contig
            .iter()
            .map(|(_, p)| p.file_name().unwrap().to_str().unwrap().to_owned())
            .collect();
        concat.extend(names.iter().map(String::as_str));
        tool("bcftools", &concat, &dir);
        tool("bcftools", &["index", "-t", "hand.vcf.gz"], &dir);
        HandRun {
            vcf: dir.join("hand.vcf.gz"),
            dir,
            per_contig,
        }
    })
}

/// True positives, false positives and false negatives of `calls` against the GIAB truth
/// inside `truth_windows.bed`, after `bcftools norm -f ref.fa -m -any` on both sides; a match
/// needs the same POS, REF and ALT (`bcftools isec`), as in the test data's README.
pub fn accuracy(calls: &Path, work: &Path) -> (usize, usize, usize) {
    std::fs::create_dir_all(work).unwrap();
    let data = testdata();
    let reference = data.join("ref.fa");
    let reference = reference.to_str().unwrap();
    let windows = data.join("truth_windows.bed");
    let truth = data.join("truth.NA12878.giab.vcf.gz");
    for (name, input) in [("calls", calls.to_owned()), ("truth", truth)] {
        let norm = format!("{name}.norm.vcf.gz");
        tool(
            "bcftools",
            &[
                "norm",
                "-f",
                reference,
                "-m",
                "-any",
                "-Oz",
                "-o",
                &norm,
                input.to_str().unwrap(),
            ],
            work,
        );
        tool("bcftools", &["index", "-f", "-t", &norm], work);
        let window = format!("{name}.win.vcf.gz");
        tool(
            "bcftools",
            &[
                "view",
                "-R",
                windows.to_str().unwrap(),
                "-Oz",
                "-o",
                &window,
                &norm,
            ],
            work,
        );
        tool("bcftools", &["index", "-f", "-t", &window], work);
    }
    let _ = std::fs::remove_dir_all(work.join("isec"));
    tool(
        "bcftools",
        &["isec", "-p", "isec", "calls.win.vcf.gz", "truth.win.vcf.gz"],
        work,
    );
    let count = |file: &str| {
        std::fs::read_to_string(work.join("isec").join(file))
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#'))
            .count()
    };
    (count("0002.vcf"), count("0000.vcf"), count("0001.vcf"))
}
