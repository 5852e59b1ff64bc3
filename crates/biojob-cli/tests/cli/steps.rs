//! The step subcommands on their own: prepare-reference, align, call, gather.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use crate::support::{Workspace, assert_same_records, hand_run, stderr, stdout, testdata, tool};

/// The `error:` and `hint:` lines of biojob's stderr.
fn error_and_hint_lines(output: &std::process::Output) -> Vec<String> {
    stderr(output)
        .lines()
        .filter(|l| l.starts_with("error: ") || l.starts_with("hint: "))
        .map(str::to_owned)
        .collect()
}

fn ok(output: &std::process::Output) {
    assert!(output.status.success(), "{}", stderr(output));
}

#[test]
fn prepare_reference_builds_beside_a_writable_fasta_and_skips_fresh_indexes() {
    let ws = Workspace::new();
    let dir = ws.path().join("ref");
    std::fs::create_dir(&dir).unwrap();
    let fasta = dir.join("ref.fa");
    std::fs::copy(testdata().join("ref.fa"), &fasta).unwrap();
    let run = || {
        ws.biojob()
            .args(["prepare-reference", "--reference"])
            .arg(&fasta)
            .output()
            .unwrap()
    };
    let first = run();
    ok(&first);
    let d = dir.display();
    assert_eq!(
        stdout(&first),
        format!(
            "fasta: {d}/ref.fa\nfai: {d}/ref.fa.fai\nbwa index: {d}/ref.fa\n\
             built: {d}/ref.fa.fai\nbuilt: {d}/ref.fa.amb\nbuilt: {d}/ref.fa.ann\n\
             built: {d}/ref.fa.bwt\nbuilt: {d}/ref.fa.pac\nbuilt: {d}/ref.fa.sa\n"
        )
    );
    assert_eq!(
        std::fs::read(dir.join("ref.fa.fai")).unwrap(),
        std::fs::read(testdata().join("ref.fa.fai")).unwrap()
    );
    let second = run();
    ok(&second);
    assert_eq!(
        stdout(&second),
        format!("fasta: {d}/ref.fa\nfai: {d}/ref.fa.fai\nbwa index: {d}/ref.fa\n")
    );
    // Nothing else was left beside the FASTA (no temporary directories).
    assert_eq!(
        Workspace::files(&dir),
        [
            "ref.fa",
            "ref.fa.amb",
            "ref.fa.ann",
            "ref.fa.bwt",
            "ref.fa.fai",
            "ref.fa.pac",
            "ref.fa.provenance.json",
            "ref.fa.sa"
        ]
    );
    // A FASTA newer than its indexes gets them rebuilt.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(5);
    std::fs::File::options()
        .append(true)
        .open(&fasta)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let third = run();
    ok(&third);
    assert_eq!(stdout(&third).matches("built: ").count(), 6);
}

#[test]
fn prepare_reference_with_bwa_mem2_builds_its_index_beside_bwa_s() {
    let ws = Workspace::new();
    let dir = ws.path().join("ref");
    std::fs::create_dir(&dir).unwrap();
    let fasta = dir.join("ref.fa");
    std::fs::copy(testdata().join("ref.fa"), &fasta).unwrap();
    let run = |extra: &[&str]| {
        let output = ws
            .biojob()
            .args(["prepare-reference", "--reference"])
            .arg(&fasta)
            .args(extra)
            .output()
            .unwrap();
        ok(&output);
        stdout(&output)
    };
    let d = dir.display();
    assert_eq!(run(&[]).matches("built: ").count(), 6);
    let bwa_files = Workspace::files(&dir);
    let bwa_bytes = |suffix: &str| std::fs::read(dir.join(format!("ref.fa{suffix}"))).unwrap();
    let (amb, ann, pac) = (bwa_bytes(".amb"), bwa_bytes(".ann"), bwa_bytes(".pac"));
    // bwa-mem2's five files are built together (its .amb, .ann and .pac replace bwa's with
    // the same bytes); bwa's own .bwt and .sa stay.
    assert_eq!(
        run(&["--aligner", "bwa-mem2"]),
        format!(
            "fasta: {d}/ref.fa\nfai: {d}/ref.fa.fai\nbwa-mem2 index: {d}/ref.fa\n\
             built: {d}/ref.fa.0123\nbuilt: {d}/ref.fa.amb\nbuilt: {d}/ref.fa.ann\n\
             built: {d}/ref.fa.bwt.2bit.64\nbuilt: {d}/ref.fa.pac\n"
        )
    );
    assert_eq!(
        (bwa_bytes(".amb"), bwa_bytes(".ann"), bwa_bytes(".pac")),
        (amb, ann, pac)
    );
    assert_eq!(
        Workspace::files(&dir),
        [
            "ref.fa",
            "ref.fa.0123",
            "ref.fa.amb",
            "ref.fa.ann",
            "ref.fa.bwt",
            "ref.fa.bwt.2bit.64",
            "ref.fa.fai",
            "ref.fa.pac",
            "ref.fa.provenance.json",
            "ref.fa.sa"
        ]
    );
    assert_eq!(bwa_files.len(), 8);
    // Both are fresh now: neither is rebuilt.
    assert_eq!(
        run(&["--aligner", "bwa-mem2"]),
        format!("fasta: {d}/ref.fa\nfai: {d}/ref.fa.fai\nbwa-mem2 index: {d}/ref.fa\n")
    );
    assert_eq!(
        run(&[]),
        format!("fasta: {d}/ref.fa\nfai: {d}/ref.fa.fai\nbwa index: {d}/ref.fa\n")
    );
}

#[test]
fn prepare_reference_never_writes_beside_a_read_only_fasta() {
    let ws = Workspace::new();
    let dir = ws.path().join("readonly");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(testdata().join("ref.fa"), dir.join("ref.fa")).unwrap();
    std::fs::copy(testdata().join("ref.fa.fai"), dir.join("ref.fa.fai")).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let output = ws
        .biojob()
        .args(["prepare-reference", "--reference"])
        .arg(dir.join("ref.fa"))
        .output()
        .unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    ok(&output);
    assert_eq!(Workspace::files(&dir), ["ref.fa", "ref.fa.fai"]);
    let text = stdout(&output);
    let fasta_line = text.lines().next().unwrap();
    let cache = ws.path().join("cache/references");
    assert!(
        fasta_line.starts_with(&format!("fasta: {}/", cache.display())),
        "{text}"
    );
    // The FASTA and the existing .fai are linked; only the bwa index is built.
    assert_eq!(text.matches("built: ").count(), 5, "{text}");
    let linked = Path::new(fasta_line.strip_prefix("fasta: ").unwrap());
    assert_eq!(std::fs::read_link(linked).unwrap(), dir.join("ref.fa"));
}

#[test]
fn prepare_reference_decompresses_a_gzipped_fasta_into_the_cache() {
    let ws = Workspace::new();
    let gz = ws.path().join("genome.fa.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    std::io::copy(
        &mut std::fs::File::open(testdata().join("ref.fa")).unwrap(),
        &mut encoder,
    )
    .unwrap();
    encoder.finish().unwrap();
    let output = ws
        .biojob()
        .args(["prepare-reference", "--fai-only", "--reference"])
        .arg(&gz)
        .output()
        .unwrap();
    ok(&output);
    let text = stdout(&output);
    let fasta = text
        .lines()
        .next()
        .unwrap()
        .strip_prefix("fasta: ")
        .unwrap();
    assert!(fasta.ends_with("/genome.fa"), "{text}");
    assert_eq!(
        std::fs::read(fasta).unwrap(),
        std::fs::read(testdata().join("ref.fa")).unwrap()
    );
    assert_eq!(
        std::fs::read(format!("{fasta}.fai")).unwrap(),
        std::fs::read(testdata().join("ref.fa.fai")).unwrap()
    );
    assert!(!text.contains("bwa index"));
}

#[test]
fn steps_alone_give_the_same_records_as_the_hand_run() {
    let ws = Workspace::new();
    let data = testdata();
    let reference = data.join("ref.fa");
    let out = ws.out();
    let step = |args: &[&str]| {
        let output = ws
            .biojob()
            .args(args)
            .arg("--reference")
            .arg(&reference)
            .arg("--output-prefix")
            .arg(&out)
            .env("SAMPLE_ID", "NA12878")
            .output()
            .unwrap();
        ok(&output);
    };
    let r1 = data.join("NA12878_R1.fastq.gz");
    let r2 = data.join("NA12878_R2.fastq.gz");
    step(&[
        "align",
        "--fastq-1",
        r1.to_str().unwrap(),
        "--fastq-2",
        r2.to_str().unwrap(),
        "--read-group-id",
        "run 1",
        "--read-group-library",
        "lib \"A\" 1",
        "--read-group-platform-unit",
        "HXXX.1",
    ]);
    let bam = out.join("NA12878.align.bam");
    let header = tool(
        "samtools",
        &["view", "-H", bam.to_str().unwrap()],
        Path::new("/"),
    );
    let read_groups: Vec<&str> = header.lines().filter(|l| l.starts_with("@RG")).collect();
    assert_eq!(
        read_groups,
        ["@RG\tID:run 1\tSM:NA12878\tLB:lib \"A\" 1\tPL:ILLUMINA\tPU:HXXX.1"]
    );
    // Contigs in any order; CHROMOSOME is the reference design's variable for the contig.
    for contig in ["chrM", "chr20", "chr22"] {
        let output = ws
            .biojob()
            .args(["call", "--bam"])
            .arg(&bam)
            .arg("--reference")
            .arg(&reference)
            .arg("--output-prefix")
            .arg(&out)
            .env("SAMPLE_ID", "NA12878")
            .env("CHROMOSOME", contig)
            .output()
            .unwrap();
        ok(&output);
    }
    // VCFs given in any order are gathered in reference order.
    let vcf = |shard: &str| {
        out.join(format!("NA12878.call.{shard}.vcf.gz"))
            .display()
            .to_string()
    };
    step(&[
        "gather",
        "--vcf",
        &vcf("0002"),
        "--vcf",
        &vcf("0001"),
        "--vcf",
        &vcf("0000"),
        "--sample",
        "NA12878",
    ]);
    assert_same_records(&out.join("NA12878.vcf.gz"), &hand_run().vcf);
    let files: Vec<String> = Workspace::files(&out)
        .into_iter()
        .filter(|f| f.ends_with(".manifest.json"))
        .collect();
    assert_eq!(
        files,
        [
            "NA12878.align.manifest.json",
            "NA12878.call.0000.manifest.json",
            "NA12878.call.0001.manifest.json",
            "NA12878.call.0002.manifest.json",
            "NA12878.gather.manifest.json",
        ]
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("NA12878.call.0002.manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["task"]["contig"], "chrM");
    assert_eq!(manifest["task"]["status"], "succeeded");
}

#[test]
fn a_workflow_name_without_an_execution_id_or_the_reverse_is_a_usage_error() {
    let ws = Workspace::new();
    let gather = |name: &str, execution: &str| {
        ws.biojob()
            .arg("gather")
            .env("SAMPLE_ID", "NA12878")
            .env("REFERENCE", testdata().join("ref.fa"))
            .env("JOB_OUTPUT_PREFIX", ws.out())
            .env("CHROMOSOMES", "chr20")
            .env("JOB_WORKFLOW_NAME", name)
            .env("JOB_WORKFLOW_EXECUTION_ID", execution)
            .output()
            .unwrap()
    };
    for (name, execution, set, unset) in [
        ("wf", "", "JOB_WORKFLOW_NAME", "JOB_WORKFLOW_EXECUTION_ID"),
        ("", "e1", "JOB_WORKFLOW_EXECUTION_ID", "JOB_WORKFLOW_NAME"),
    ] {
        let output = gather(name, execution);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        let lines: Vec<String> = error_and_hint_lines(&output);
        assert_eq!(
            lines,
            [
                format!(
                    "error: {set} is set but {unset} is not: the run prefix is <output prefix>/<workflow name>/<execution id>/"
                ),
                "hint: set both JOB_WORKFLOW_NAME and JOB_WORKFLOW_EXECUTION_ID (or --workflow-name and --execution-id), or neither"
                    .to_owned(),
            ]
        );
    }
    assert!(!ws.out().exists());
}

/// A job whose local run prefix is a regular file (or cannot be written): refused before any
/// tool runs, not retryable (2), as `biojob run` refuses its output directory; before, the job
/// aligned, then failed to publish with the output staging class (30, retried by Batch).
#[test]
fn a_job_whose_local_run_prefix_cannot_be_written_is_refused_before_any_work() {
    let ws = Workspace::new();
    let prefix = ws.path().join("a-file");
    std::fs::write(&prefix, b"not a directory").unwrap();
    let data = testdata();
    let output = ws
        .biojob()
        .arg("align")
        .env("SAMPLE_ID", "NA12878")
        .env("REFERENCE", data.join("ref.fa"))
        .env("FASTQ_1", data.join("NA12878_R1.fastq.gz"))
        .env("FASTQ_2", data.join("NA12878_R2.fastq.gz"))
        .env("JOB_OUTPUT_PREFIX", &prefix)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let lines: Vec<String> = error_and_hint_lines(&output);
    assert_eq!(
        lines,
        [
            format!(
                "error: align failed: the output directory {} cannot be written: File exists (os error 17)",
                prefix.display()
            ),
            "hint: give a JOB_OUTPUT_PREFIX (or --output-prefix) in a directory you can write to"
                .to_owned(),
        ]
    );
    assert!(!stderr(&output).contains("bwa-mem"), "{}", stderr(&output));
    assert_eq!(std::fs::read(&prefix).unwrap(), b"not a directory");
}

#[test]
fn prepare_reference_of_a_bare_file_name_builds_beside_it_in_the_current_directory() {
    let ws = Workspace::new();
    let dir = ws.path().join("ref");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(testdata().join("ref.fa"), dir.join("ref.fa")).unwrap();
    let output = ws
        .biojob()
        .args(["prepare-reference", "--reference", "ref.fa"])
        .current_dir(&dir)
        .output()
        .unwrap();
    ok(&output);
    assert_eq!(
        stdout(&output),
        "fasta: ref.fa\nfai: ref.fa.fai\nbwa index: ref.fa\n\
         built: ref.fa.fai\nbuilt: ref.fa.amb\nbuilt: ref.fa.ann\n\
         built: ref.fa.bwt\nbuilt: ref.fa.pac\nbuilt: ref.fa.sa\n"
    );
    assert_eq!(
        Workspace::files(&dir),
        [
            "ref.fa",
            "ref.fa.amb",
            "ref.fa.ann",
            "ref.fa.bwt",
            "ref.fa.fai",
            "ref.fa.pac",
            "ref.fa.provenance.json",
            "ref.fa.sa"
        ]
    );
    assert!(!ws.path().join("cache").join("references").exists());
}

/// `dir/ref.fa` (the test reference) with, beside it and newer, the bwa index of a copy whose
/// last contig is named `chrMT`: fresh by its time, but not the FASTA's.
fn reference_with_another_fastas_bwa_index(dir: &Path) {
    std::fs::create_dir_all(dir.join("other")).unwrap();
    let text = std::fs::read_to_string(testdata().join("ref.fa")).unwrap();
    std::fs::write(dir.join("other/ref.fa"), text.replace(">chrM ", ">chrMT ")).unwrap();
    std::fs::copy(testdata().join("ref.fa"), dir.join("ref.fa")).unwrap();
    std::fs::copy(testdata().join("ref.fa.fai"), dir.join("ref.fa.fai")).unwrap();
    tool("bwa", &["index", "-p", "ref.fa", "other/ref.fa"], dir);
    std::fs::remove_dir_all(dir.join("other")).unwrap();
}

#[test]
fn prepare_reference_rebuilds_a_bwa_index_of_other_contigs_beside_a_writable_fasta() {
    let ws = Workspace::new();
    let dir = ws.path().join("ref");
    reference_with_another_fastas_bwa_index(&dir);
    let output = ws
        .biojob()
        .args(["prepare-reference", "--reference"])
        .arg(dir.join("ref.fa"))
        .output()
        .unwrap();
    ok(&output);
    let d = dir.display();
    assert_eq!(
        stdout(&output),
        format!(
            "fasta: {d}/ref.fa\nfai: {d}/ref.fa.fai\nbwa index: {d}/ref.fa\n\
             built: {d}/ref.fa.amb\nbuilt: {d}/ref.fa.ann\nbuilt: {d}/ref.fa.bwt\n\
             built: {d}/ref.fa.pac\nbuilt: {d}/ref.fa.sa\n"
        )
    );
    assert!(
        stderr(&output).contains(&format!(
            "the bwa index does not belong to the FASTA; rebuilding it prefix={d}/ref.fa problem=the bwa index {d}/ref.fa.ann does not belong to the FASTA: contig 3 is chrMT of 16571 bases in the index, chrM of 16571 bases in the FASTA (the FASTA's index is {d}/ref.fa.fai)"
        )),
        "{}",
        stderr(&output)
    );
    let ann = std::fs::read_to_string(dir.join("ref.fa.ann")).unwrap();
    assert!(ann.contains("\n0 chrM hg19"), "{ann}");
}

#[test]
fn prepare_reference_refuses_a_bwa_index_of_other_contigs_beside_a_read_only_fasta() {
    let ws = Workspace::new();
    let dir = ws.path().join("readonly");
    reference_with_another_fastas_bwa_index(&dir);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let output = ws
        .biojob()
        .args(["prepare-reference", "--reference"])
        .arg(dir.join("ref.fa"))
        .output()
        .unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    let d = dir.display();
    let lines: Vec<String> = error_and_hint_lines(&output);
    assert_eq!(
        lines,
        [
            format!(
                "error: prepare-reference failed: the bwa index {d}/ref.fa.ann does not belong to the FASTA: contig 3 is chrMT of 16571 bases in the index, chrM of 16571 bases in the FASTA (the FASTA's index is {d}/ref.fa.fai)"
            ),
            "hint: rebuild the bwa index from this FASTA (bwa index), or remove the stale index files"
                .to_owned(),
        ]
    );
}
