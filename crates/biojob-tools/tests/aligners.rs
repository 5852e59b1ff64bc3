//! bwa and bwa-mem2, run for real: each builds the index files [`Aligner::index_files`] names
//! with the command [`bwa_index`] builds (the `.amb`, `.ann` and `.pac` of both the same
//! bytes), and [`BwaMem`] with `-K 10000000` gives identical SAM records from both (the
//! header's `@PG` line aside), on the real NA12878 test data and on 20,000 pairs simulated from
//! its reference with wgsim and a fixed seed.
//!
//! The tools are found as biojob finds them (`BIOJOB_BWA`, `BIOJOB_BWA_MEM2`, else `PATH`;
//! `scripts/install-tools.sh` installs them); a missing tool fails these tests.

// clippy.toml allows unwrap in `#[test]` functions only; the helpers here are test code too.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};

use biojob_core::{ReadGroup, SampleId};
use biojob_process::{CancelToken, CommandSpec, Supervisor};
use biojob_tools::{
    Aligner, BwaMem, Tool, ToolOverrides, ToolPath, Toolset, bwa_index, bwa_mem2_index_memory,
};
use camino::{Utf8Path, Utf8PathBuf};

/// Read pairs simulated for the second data set, and wgsim's seed.
const SIMULATED_PAIRS: usize = 20_000;
const WGSIM_SEED: &str = "11";

struct Work {
    _dir: tempfile::TempDir,
    path: Utf8PathBuf,
    supervisor: Supervisor,
}

fn work() -> Work {
    let dir = tempfile::tempdir().unwrap();
    let path = Utf8PathBuf::from_path_buf(dir.path().to_path_buf()).unwrap();
    let supervisor = Supervisor::new(path.join("logs"), CancelToken::new());
    Work {
        _dir: dir,
        path,
        supervisor,
    }
}

/// The aligner's program, found as the binary finds it.
fn aligner(aligner: Aligner) -> ToolPath {
    let overrides = ToolOverrides {
        bwa: std::env::var(Tool::Bwa.override_variable())
            .ok()
            .map(Into::into),
        bwa_mem2: std::env::var(Tool::BwaMem2.override_variable())
            .ok()
            .map(Into::into),
        ..ToolOverrides::default()
    };
    let tool = aligner.tool();
    let found = which::which(overrides.get(tool).map_or(tool.name(), Utf8Path::as_str))
        .unwrap_or_else(|error| {
            panic!(
                "{tool} not found ({error}): run scripts/install-tools.sh or set {}",
                tool.override_variable()
            )
        });
    ToolPath::new(tool, Utf8PathBuf::from_path_buf(found).unwrap())
}

/// Builds `aligner`'s index of `fasta` in its own directory and returns the prefix, after
/// checking that exactly the files [`Aligner::index_files`] names were written.
fn build_index(work: &Work, aligner: Aligner, program: &ToolPath, fasta: &Utf8Path) -> Utf8PathBuf {
    let dir = work.path.join(format!("index-{aligner}"));
    std::fs::create_dir(&dir).unwrap();
    let prefix = dir.join("ref.fa");
    work.supervisor
        .run(bwa_index(program, fasta, &prefix))
        .unwrap_or_else(|error| panic!("{aligner} index: {error}"));
    let written: BTreeSet<Utf8PathBuf> = dir
        .read_dir_utf8()
        .unwrap()
        .map(|entry| entry.unwrap().into_path())
        .collect();
    let named: BTreeSet<Utf8PathBuf> = aligner.index_files(&prefix).into_iter().collect();
    assert_eq!(written, named, "{aligner} index files");
    prefix
}

/// `mem -t 2 -K 10000000` of the pair into `sam`.
fn align(work: &Work, program: &ToolPath, prefix: &Utf8Path, pair: &[Utf8PathBuf; 2]) -> Sam {
    let sample = SampleId::new("NA12878").unwrap();
    let sam = work.path.join(format!("{}.sam", program.tool));
    let command = BwaMem {
        threads: 2,
        batch_bases: 10_000_000,
        read_group: ReadGroup::for_sample(&sample),
        index_prefix: prefix.to_owned(),
        fastq_1: pair[0].clone(),
        fastq_2: pair[1].clone(),
    }
    .command(program)
    .stdout_file(&sam);
    work.supervisor
        .run(command)
        .unwrap_or_else(|error| panic!("{} mem: {error}", program.tool));
    Sam::read(&sam)
}

/// A SAM file as lines: the `@PG` line apart, the other header lines and the records.
struct Sam {
    program_line: String,
    lines: Vec<String>,
}

impl Sam {
    fn read(path: &Utf8Path) -> Sam {
        let text = std::fs::read_to_string(path).unwrap();
        let (program, lines): (Vec<&str>, Vec<&str>) =
            text.lines().partition(|line| line.starts_with("@PG\t"));
        assert_eq!(program.len(), 1, "{path}: one @PG line");
        Sam {
            program_line: program[0].to_owned(),
            lines: lines.into_iter().map(str::to_owned).collect(),
        }
    }

    /// The `VN:` of the `@PG` line.
    fn program_version(&self) -> &str {
        self.program_line
            .split('\t')
            .find_map(|field| field.strip_prefix("VN:"))
            .unwrap()
    }

    /// Records that are neither secondary (0x100) nor supplementary (0x800): one per read.
    fn primary_records(&self) -> usize {
        self.lines
            .iter()
            .filter(|line| !line.starts_with('@'))
            .filter(|line| {
                let flag: u16 = line.split('\t').nth(1).unwrap().parse().unwrap();
                flag & 0x900 == 0
            })
            .count()
    }
}

/// Asserts that the two SAM files hold the same lines but `@PG`; on a difference, the
/// message says how many lines differ and shows the first.
fn assert_identical(bwa: &Sam, bwa_mem2: &Sam) {
    if bwa.lines == bwa_mem2.lines {
        return;
    }
    let differing = bwa
        .lines
        .iter()
        .zip(&bwa_mem2.lines)
        .filter(|(a, b)| a != b)
        .count();
    let first = bwa.lines.iter().zip(&bwa_mem2.lines).find(|(a, b)| a != b);
    panic!(
        "bwa and bwa-mem2 differ: {} and {} lines, {differing} differing; first:\n  bwa:      {:?}\n  bwa-mem2: {:?}",
        bwa.lines.len(),
        bwa_mem2.lines.len(),
        first.map(|(a, _)| a),
        first.map(|(_, b)| b),
    );
}

/// The version the tool's probe reports, as biojob reads it.
fn probed_version(work: &Work, program: &ToolPath) -> String {
    let captured = work
        .supervisor
        .capture(program.tool.version_probe(&program.path))
        .unwrap();
    program
        .tool
        .parse_version(&captured.stdout, &captured.stderr)
        .unwrap_or_else(|| panic!("{} printed no version", program.tool))
}

fn fastq_records(path: &Utf8Path) -> usize {
    let file = std::fs::File::open(path).unwrap();
    let lines = BufReader::new(flate2::read::MultiGzDecoder::new(file))
        .lines()
        .count();
    assert_eq!(lines % 4, 0, "{path}");
    lines / 4
}

/// Aligns `pair` with both aligners and checks the records are the same, and that each
/// aligner's probed version is the one it writes in its `@PG` line.
fn both_aligners_agree(work: &Work, fasta: &Utf8Path, pair: &[Utf8PathBuf; 2]) -> usize {
    let bwa = aligner(Aligner::Bwa);
    let bwa_mem2 = aligner(Aligner::BwaMem2);
    let bwa_prefix = build_index(work, Aligner::Bwa, &bwa, fasta);
    let bwa_mem2_prefix = build_index(work, Aligner::BwaMem2, &bwa_mem2, fasta);
    // The files both indexes have are the same bytes: the contigs (.ann, read by
    // bwa_index_mismatch), the ambiguous bases (.amb) and the packed reference (.pac).
    for suffix in [".amb", ".ann", ".pac"] {
        let read = |prefix: &Utf8Path| std::fs::read(format!("{prefix}{suffix}")).unwrap();
        assert!(
            read(&bwa_prefix) == read(&bwa_mem2_prefix),
            "{suffix} differs between the bwa and bwa-mem2 indexes"
        );
    }
    let by_bwa = align(work, &bwa, &bwa_prefix, pair);
    let by_bwa_mem2 = align(work, &bwa_mem2, &bwa_mem2_prefix, pair);
    assert_eq!(by_bwa.program_version(), probed_version(work, &bwa));
    assert_eq!(
        by_bwa_mem2.program_version(),
        probed_version(work, &bwa_mem2)
    );
    assert_identical(&by_bwa, &by_bwa_mem2);
    by_bwa.primary_records()
}

#[test]
fn bwa_and_bwa_mem2_write_the_same_records_for_the_real_test_data() {
    let work = work();
    let data = biojob_testkit::testdata();
    let pair = [
        data.join("NA12878_R1.fastq.gz"),
        data.join("NA12878_R2.fastq.gz"),
    ];
    let reads = fastq_records(&pair[0]) + fastq_records(&pair[1]);
    assert_eq!(
        both_aligners_agree(&work, &data.join("ref.fa"), &pair),
        reads
    );
}

#[test]
fn bwa_and_bwa_mem2_write_the_same_records_for_simulated_pairs() {
    let work = work();
    let fasta = biojob_testkit::testdata().join("ref.fa");
    let pair = [work.path.join("sim_R1.fq"), work.path.join("sim_R2.fq")];
    // wgsim (samtools' simulator): 2 x 150 bp, insert 400 +- 50, its default error and
    // mutation rates (SNVs and indels), a fixed seed; its mutation list goes to stdout.
    let pairs = SIMULATED_PAIRS.to_string();
    work.supervisor
        .run(
            CommandSpec::new("wgsim", "wgsim")
                .args(["-S", WGSIM_SEED, "-N", pairs.as_str()])
                .args(["-1", "150", "-2", "150", "-d", "400", "-s", "50"])
                .arg(fasta.as_str())
                .arg(pair[0].as_str())
                .arg(pair[1].as_str())
                .stdout_file(work.path.join("wgsim.mutations.txt")),
        )
        .expect("wgsim (Debian package samtools; scripts/install-tools.sh)");
    assert_eq!(
        both_aligners_agree(&work, &fasta, &pair),
        2 * SIMULATED_PAIRS
    );
}

#[test]
fn bwa_mem2_index_peak_memory_is_within_the_estimate() {
    let work = work();
    let data = biojob_testkit::testdata();
    let bases: u64 = std::fs::read_to_string(data.join("ref.fa.fai"))
        .unwrap()
        .lines()
        .map(|line| line.split('\t').nth(1).unwrap().parse::<u64>().unwrap())
        .sum();
    let program = aligner(Aligner::BwaMem2);
    let report = work
        .supervisor
        .run(bwa_index(
            &program,
            &data.join("ref.fa"),
            &work.path.join("ref.fa"),
        ))
        .unwrap();
    assert!(report.max_rss_bytes > 0);
    assert!(
        report.max_rss_bytes <= bwa_mem2_index_memory(bases),
        "bwa-mem2 index of {bases} bases peaked at {} bytes, over the estimate {}",
        report.max_rss_bytes,
        bwa_mem2_index_memory(bases)
    );
}

#[test]
fn the_chosen_aligner_is_the_one_resolved() {
    let overrides = ToolOverrides {
        bwa_mem2: Some(aligner(Aligner::BwaMem2).path),
        ..ToolOverrides::default()
    };
    let toolset = Toolset::resolve_for(Aligner::BwaMem2, &overrides).unwrap();
    assert_eq!(toolset.aligner(), Aligner::BwaMem2);
    assert_eq!(toolset.bwa, aligner(Aligner::BwaMem2));
}
