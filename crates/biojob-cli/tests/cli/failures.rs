//! Failures: each with its exit class, its exact message, and nothing published but the
//! manifest and the logs.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{Workspace, error_lines, fake_tool, stderr, testdata};

/// The execution input of NA12878 on chr20 with `reference`, FASTQs under `source`, results
/// under `output`.
fn chr20_input(ws: &Workspace, reference: &Path, source: &Path, output: &Path) -> PathBuf {
    ws.input(
        &[
            ("REFERENCE", reference.display().to_string()),
            ("SAMPLE_ID", "NA12878".into()),
            ("SOURCE_DATA_PREFIX", source.display().to_string()),
            ("JOB_OUTPUT_PREFIX", output.display().to_string()),
        ],
        Some(&["chr20"]),
    )
}

/// What a failed run left under its output directory: the manifest and logs only, no partial
/// file anywhere, no scratch left behind. Returns the manifest.
fn assert_nothing_published(ws: &Workspace, run_id: &str, exit_code: u8) -> serde_json::Value {
    let run_dir = ws.out().join("NA12878").join(run_id);
    let files = Workspace::files(&run_dir);
    let outputs: Vec<&String> = files
        .iter()
        .filter(|f| !f.starts_with("logs/") && *f != "manifest.json")
        .collect();
    assert_eq!(
        outputs,
        Vec::<&String>::new(),
        "published despite the failure"
    );
    assert_eq!(
        Workspace::files(&ws.path().join("scratch")),
        Vec::<String>::new()
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["status"], "failed");
    assert_eq!(manifest["exit_code"], exit_code);
    manifest
}

#[test]
fn bwa_killed_mid_stream_fails_the_step_with_the_killed_class() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["chr20"]);
    let bwa = fake_tool("fake-bwa-killed");
    let output = ws.run(&input, "killed", &[], &[("BIOJOB_BWA", &bwa)]);
    assert_eq!(output.status.code(), Some(21), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            "error: align failed: bwa-mem was killed by SIGKILL: [M::process] read 1000 sequences",
            "hint: SIGKILL not sent by biojob usually comes from the kernel's out-of-memory killer: \
             give the job more memory (stderr in logs/bwa-mem.stderr)",
            "exit class: tool_killed (21)",
        ]
    );
    let manifest = assert_nothing_published(&ws, "killed", 21);
    let align = &manifest["tasks"][1];
    assert_eq!(align["step"], "align");
    assert_eq!(align["status"], "failed");
    assert_eq!(align["exit_class"], "tool_killed");
    assert_eq!(align["commands"][0]["label"], "bwa-mem");
    assert_eq!(align["commands"][0]["exit"], "killed by SIGKILL");
    let logs = ws.out().join("NA12878/killed/logs/bwa-mem.stderr");
    assert_eq!(
        std::fs::read_to_string(logs).unwrap(),
        "[M::process] read 1000 sequences\n"
    );
}

#[test]
fn bwa_exiting_1_fails_the_step_with_its_stderr() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["chr20"]);
    let bwa = fake_tool("fake-bwa-fails");
    let output = ws.run(&input, "fails", &[], &[("BIOJOB_BWA", &bwa)]);
    assert_eq!(output.status.code(), Some(20), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            "error: align failed: bwa-mem exited with status 1: \
             [E::bwa_idx_load_from_disk] fail to locate the index files",
            "hint: see logs/bwa-mem.stderr for the whole stderr",
            "exit class: tool_failed (20)",
        ]
    );
    assert_nothing_published(&ws, "fails", 20);
}

#[test]
fn contig_named_without_chr_is_refused_before_any_tool_runs() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["20", "chr22"]);
    let output = ws.run(&input, "contig", &[], &[]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    let fai = testdata().join("ref.fa.fai");
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: prepare-reference failed: contig \"20\" is not in the reference {} \
                 (requested but missing: 20); available: chr20, chr22, chrM",
                fai.display()
            ),
            "hint: the reference names contigs differently; use \"20\" → \"chr20\" in params.chromosomes"
                .to_owned(),
            "exit class: input_invalid (11)".to_owned(),
        ]
    );
    let manifest = assert_nothing_published(&ws, "contig", 11);
    // Nothing was built or aligned: only the version probes ran.
    assert_eq!(manifest["tasks"][0]["commands"], serde_json::json!([]));
    assert_eq!(
        Workspace::files(&ws.out().join("NA12878/contig")),
        ["manifest.json"]
    );
}

#[test]
fn missing_fastq_is_refused_before_any_tool_runs() {
    let ws = Workspace::new();
    let reference = testdata().join("ref.fa");
    let input = chr20_input(&ws, &reference, ws.path(), &ws.out());
    let output = ws.run(&input, "missing", &[], &[]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: FASTQ_1 {}/NA12878_R1.fastq.gz cannot be read: No such file or directory (os error 2)",
                ws.path().display()
            ),
            "hint: check SOURCE_DATA_PREFIX and SAMPLE_ID (files are named NA12878_R1.fastq.gz \
             and NA12878_R2.fastq.gz), or give FASTQ_1 and FASTQ_2"
                .to_owned(),
            "exit class: input_invalid (11)".to_owned(),
        ]
    );
    assert_nothing_published(&ws, "missing", 11);
    assert_eq!(
        Workspace::files(&ws.out().join("NA12878/missing")),
        ["manifest.json"]
    );
    // The manifest is pointed at; logs, which no tool wrote, are not.
    let run_dir = ws.out().join("NA12878/missing");
    assert!(
        stderr(&output).contains(&format!("manifest: {}/manifest.json\n", run_dir.display())),
        "{}",
        stderr(&output)
    );
    assert!(!stderr(&output).contains("logs: "), "{}", stderr(&output));
}

#[test]
fn an_output_prefix_that_cannot_be_written_is_refused_before_any_work() {
    let ws = Workspace::new();
    // A path under a regular file: not writable even for root.
    let blocker = ws.path().join("blocker");
    std::fs::write(&blocker, "a file, not a directory").unwrap();
    let prefix = blocker.join("results");
    let input = chr20_input(&ws, &testdata().join("ref.fa"), &testdata(), &prefix);
    let output = ws.run(&input, "blocked", &[], &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: the output directory {}/NA12878/blocked cannot be written: Not a directory (os error 20)",
                prefix.display()
            ),
            "hint: give a JOB_OUTPUT_PREFIX (or --output-prefix) in a directory you can write to"
                .to_owned(),
            "exit class: usage (2)".to_owned(),
        ]
    );
    // No step ran, and no manifest or log path that was never written is announced.
    let text = stderr(&output);
    assert!(!text.contains("manifest: "), "{text}");
    assert!(!text.contains("logs: "), "{text}");
    assert!(!text.contains("prepare-reference"), "{text}");
    assert!(!ws.path().join("scratch").exists());
}

#[test]
fn an_empty_or_fastq_reference_is_refused_with_the_input_class() {
    let ws = Workspace::new();
    let fastq = {
        let mut text = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::MultiGzDecoder::new(
                std::fs::File::open(testdata().join("NA12878_R1.fastq.gz")).unwrap(),
            ),
            &mut text,
        )
        .unwrap();
        text
    };
    for (name, content, problem) in [
        ("empty.fa", String::new(), "is empty".to_owned()),
        (
            "reads.fa",
            fastq,
            "is FASTQ (it starts with '@'), not FASTA".to_owned(),
        ),
        (
            "notes.fa",
            "chr20 ACGT\n".to_owned(),
            "is not FASTA: it starts with 'c', not a '>' header line".to_owned(),
        ),
    ] {
        let reference = ws.path().join(name);
        std::fs::write(&reference, content).unwrap();
        let input = chr20_input(&ws, &reference, &testdata(), &ws.out());
        let run_id = name.replace('.', "-");
        let output = ws.run(&input, &run_id, &[], &[]);
        assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
        assert_eq!(
            error_lines(&output),
            [
                format!(
                    "error: prepare-reference failed: reference {} {problem}",
                    reference.display()
                ),
                "hint: REFERENCE (or REFERENCE_NAME) must name a FASTA file (.fa, .fasta or \
                 .fa.gz) whose first line is a '>name' header"
                    .to_owned(),
                "exit class: input_invalid (11)".to_owned(),
            ]
        );
        assert_nothing_published(&ws, &run_id, 11);
    }
}

#[test]
fn a_reference_with_a_contig_name_used_twice_is_refused_before_alignment() {
    let ws = Workspace::new();
    let reference = ws.path().join("twice.fa");
    // ref.fa with its first record repeated at the end.
    let fasta = std::fs::read_to_string(testdata().join("ref.fa")).unwrap();
    let second = fasta[1..].find("\n>").map_or(fasta.len(), |at| at + 2);
    std::fs::write(&reference, format!("{fasta}{}", &fasta[..second])).unwrap();
    let input = chr20_input(&ws, &reference, &testdata(), &ws.out());
    let output = ws.run(&input, "twice", &[], &[]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    let lines = error_lines(&output);
    assert_eq!(
        lines[0],
        format!(
            "error: prepare-reference failed: {}: the line at byte {} (\"{}\") is a record the \
             index does not list there (it lists no record after contig \"chrM\"); a contig \
             name used twice? (samtools faidx indexes only the first record of a name)",
            reference.display(),
            fasta.len(),
            // The header line, cut at 80 bytes.
            &fasta.lines().next().unwrap()[..80],
        )
    );
    assert_eq!(lines[1], "hint: give each record of the FASTA its own name");
    assert_eq!(lines.last().unwrap(), "exit class: input_invalid (11)");
    let manifest = assert_nothing_published(&ws, "twice", 11);
    let steps: Vec<&str> = manifest["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|task| task["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["prepare-reference"]);
}

#[test]
fn truncated_fastq_gzip_fails_align_with_the_input_class() {
    let ws = Workspace::new();
    let whole = std::fs::read(testdata().join("NA12878_R1.fastq.gz")).unwrap();
    let truncated = ws.path().join("truncated_R1.fastq.gz");
    std::fs::write(&truncated, &whole[..500_000]).unwrap();
    let input = ws.input(
        &[
            ("REFERENCE_NAME", "ref".into()),
            ("SAMPLE_ID", "NA12878".into()),
            ("SOURCE_DATA_PREFIX", testdata().display().to_string()),
            ("FASTQ_1", truncated.display().to_string()),
            ("JOB_OUTPUT_PREFIX", ws.out().display().to_string()),
        ],
        Some(&["chr20"]),
    );
    let output = ws.run(&input, "truncated", &[], &[]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    let path = truncated.display();
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: align failed: {path}: gzip stream ends early (truncated file?) after \
                 record 7920: incomplete deflate stream"
            ),
            format!("hint: the file is damaged; upload it again (`gzip -t {path}` checks a copy)"),
            "exit class: input_invalid (11)".to_owned(),
        ]
    );
    let manifest = assert_nothing_published(&ws, "truncated", 11);
    assert_eq!(manifest["tasks"][1]["exit_class"], "input_invalid");
    assert!(!Path::new(&format!("{path}.partial")).exists());
}

// ---------------------------------------------------------------------------------------------
// Staged-in BAM and VCFs of the step subcommands, and bad contig names: small bad inputs that
// each test writes itself.

/// `biojob <step> ... --reference ref.fa --output-prefix out` with `SAMPLE_ID=NA12878`.
fn step(ws: &Workspace, args: &[&str]) -> Output {
    ws.biojob()
        .args(args)
        .arg("--reference")
        .arg(testdata().join("ref.fa"))
        .arg("--output-prefix")
        .arg(ws.out())
        .env("SAMPLE_ID", "NA12878")
        .output()
        .unwrap()
}

const HEADER: &str = "@HD\tVN:1.6\tSO:coordinate\n\
    @SQ\tSN:chr20\tLN:300000\n\
    @SQ\tSN:chr22\tLN:12356\n\
    @SQ\tSN:chrM\tLN:16571\n\
    @RG\tID:NA12878\tSM:NA12878\tPL:ILLUMINA\n";

/// A BAM from SAM text by `samtools view -b`, with an empty `.bai` beside it (the checks run
/// before any tool reads the index).
fn bam(ws: &Workspace, name: &str, sam: &str) -> std::path::PathBuf {
    let sam_path = ws.path().join(format!("{name}.sam"));
    std::fs::write(&sam_path, sam).unwrap();
    let bam = ws.path().join(format!("{name}.bam"));
    crate::support::tool(
        "samtools",
        &[
            "view",
            "-b",
            "-o",
            bam.to_str().unwrap(),
            sam_path.to_str().unwrap(),
        ],
        ws.path(),
    );
    std::fs::write(ws.path().join(format!("{name}.bam.bai")), b"").unwrap();
    bam
}

fn call_with(ws: &Workspace, bam: &Path) -> Output {
    step(
        ws,
        &["call", "--contig", "chr20", "--bam", bam.to_str().unwrap()],
    )
}

#[test]
fn call_refuses_an_unsorted_bam_before_any_tool_runs() {
    let ws = Workspace::new();
    let bam = bam(
        &ws,
        "unsorted",
        &HEADER.replace("SO:coordinate", "SO:unsorted"),
    );
    let output = call_with(&ws, &bam);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: call chr20 failed: {}: the BAM is not coordinate-sorted: @HD SO:unsorted \
                 (expected SO:coordinate)",
                bam.display()
            ),
            "exit class: input_invalid (11)".to_owned(),
        ]
    );
    // No tool ran: no tool log was published.
    let logs = ws.out().join("logs");
    let logs = if logs.exists() {
        Workspace::files(&logs)
    } else {
        Vec::new()
    };
    assert!(
        logs.iter().all(|l| !l.contains("bcftools")),
        "a tool ran: {logs:?}"
    );
}

#[test]
fn call_refuses_a_bam_whose_sq_order_differs_from_the_fai() {
    let ws = Workspace::new();
    let swapped = HEADER.replace(
        "@SQ\tSN:chr20\tLN:300000\n@SQ\tSN:chr22\tLN:12356\n",
        "@SQ\tSN:chr22\tLN:12356\n@SQ\tSN:chr20\tLN:300000\n",
    );
    let bam = bam(&ws, "order", &swapped);
    let output = call_with(&ws, &bam);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: call chr20 failed: {}: @SQ 1 is chr22 where the reference's contig 1 is chr20: \
                 same contigs in another order (header: chr22, chr20, chrM; reference: chr20, \
                 chr22, chrM)",
                bam.display()
            ),
            "exit class: input_invalid (11)".to_owned(),
        ]
    );
}

#[test]
fn call_refuses_a_bam_of_another_sample_and_a_truncated_bam() {
    let ws = Workspace::new();
    let other = bam(&ws, "other", &HEADER.replace("SM:NA12878", "SM:NA24385"));
    let output = call_with(&ws, &other);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output)[0],
        format!(
            "error: call chr20 failed: {}: @RG ID:NA12878 has SM:NA24385, expected SM:NA12878",
            other.display()
        )
    );

    let whole = std::fs::read(bam(&ws, "good", HEADER)).unwrap();
    let truncated = ws.path().join("truncated.bam");
    std::fs::write(&truncated, &whole[..whole.len() - 28]).unwrap();
    std::fs::write(ws.path().join("truncated.bam.bai"), b"").unwrap();
    let output = call_with(&ws, &truncated);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: call chr20 failed: {}: missing BGZF EOF block (truncated?)",
                truncated.display()
            ),
            "hint: the file is truncated: write or upload it again".to_owned(),
            "exit class: input_invalid (11)".to_owned(),
        ]
    );
}

const VCF_HEADER: &str = "##fileformat=VCFv4.2\n\
    ##contig=<ID=chr20,length=300000>\n\
    ##contig=<ID=chr22,length=12356>\n\
    ##contig=<ID=chrM,length=16571>\n\
    ##FORMAT=<ID=GT,Number=1,Type=String,Description=\"Genotype\">\n\
    #CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tNA12878\n";

/// A bgzipped, indexed VCF (`bgzip`, `tabix`) from text.
fn vcf(ws: &Workspace, name: &str, text: &str) -> std::path::PathBuf {
    let path = ws.path().join(format!("{name}.vcf"));
    std::fs::write(&path, text).unwrap();
    crate::support::tool("bgzip", &["-f", path.to_str().unwrap()], ws.path());
    let gz = ws.path().join(format!("{name}.vcf.gz"));
    crate::support::tool("tabix", &["-p", "vcf", gz.to_str().unwrap()], ws.path());
    gz
}

fn gather_with(ws: &Workspace, vcfs: &[&Path]) -> Output {
    let mut args = vec!["gather".to_owned()];
    for vcf in vcfs {
        args.push("--vcf".to_owned());
        args.push(vcf.display().to_string());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    step(ws, &args)
}

#[test]
fn gather_refuses_vcfs_that_break_the_rules_before_any_tool_runs() {
    let ws = Workspace::new();
    let good = vcf(
        &ws,
        "good",
        &format!("{VCF_HEADER}chr22\t100\t.\tA\tG\t50\tPASS\t.\tGT\t0/1\n"),
    );
    let cases: [(&str, String, String); 4] = [
        (
            "contig",
            VCF_HEADER.replace("length=12356", "length=12000"),
            "##contig chr22 has length 12000, the reference's has 12356".to_owned(),
        ),
        (
            "sample",
            VCF_HEADER.replace("\tNA12878\n", "\tNA24385\n"),
            "the sample column is NA24385, expected NA12878".to_owned(),
        ),
        (
            "unsorted",
            format!(
                "{VCF_HEADER}chr20\t500\t.\tA\tG\t50\tPASS\t.\tGT\t0/1\n\
                 chr20\t400\t.\tA\tG\t50\tPASS\t.\tGT\t0/1\n"
            ),
            "record 2 (chr20:400) comes after chr20:500: records are not sorted by position"
                .to_owned(),
        ),
        (
            "undeclared",
            format!("{VCF_HEADER}chrX\t5\t.\tA\tG\t50\tPASS\t.\tGT\t0/1\n"),
            "record 1 is on chrX, which has no ##contig line".to_owned(),
        ),
    ];
    for (name, text, reason) in cases {
        let bad = if name == "unsorted" {
            // tabix refuses to index unsorted records: write it by hand, with any index.
            let path = ws.path().join("unsorted.vcf.gz");
            let plain = ws.path().join("unsorted.vcf");
            std::fs::write(&plain, &text).unwrap();
            crate::support::tool("bgzip", &["-f", plain.to_str().unwrap()], ws.path());
            std::fs::copy(
                good.with_extension("gz.tbi"),
                ws.path().join("unsorted.vcf.gz.tbi"),
            )
            .unwrap();
            path
        } else {
            vcf(&ws, name, &text)
        };
        let output = gather_with(&ws, &[&good, &bad]);
        assert_eq!(
            output.status.code(),
            Some(11),
            "{name}: {}",
            stderr(&output)
        );
        assert_eq!(
            error_lines(&output),
            [
                format!("error: gather failed: {}: {reason}", bad.display()),
                "exit class: input_invalid (11)".to_owned(),
            ],
            "{name}"
        );
    }
    assert!(!ws.out().join("NA12878.vcf.gz").exists());
}

#[test]
fn gather_refuses_vcfs_whose_records_overlap() {
    let ws = Workspace::new();
    // Two contigs in one VCF are fine (a shard of grouped small contigs); a record position
    // inside another VCF's span is not (two shards would both hold it).
    let wide = vcf(
        &ws,
        "wide",
        &format!(
            "{VCF_HEADER}chr20\t100\t.\tA\tG\t50\tPASS\t.\tGT\t0/1\n\
             chr22\t300\t.\tA\tG\t50\tPASS\t.\tGT\t0/1\n"
        ),
    );
    let inside = vcf(
        &ws,
        "inside",
        &format!("{VCF_HEADER}chr22\t200\t.\tA\tG\t50\tPASS\t.\tGT\t0/1\n"),
    );
    let output = gather_with(&ws, &[&inside, &wide]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: gather failed: {} (records chr20:100 to chr22:300) and {} (records \
                 chr22:200 to chr22:200) overlap",
                wide.display(),
                inside.display()
            ),
            "hint: give each shard's VCF once, from one scatter plan".to_owned(),
            "exit class: input_invalid (11)".to_owned(),
        ]
    );
}

#[test]
fn reference_contig_name_invalid_in_sam_and_vcf_is_refused() {
    let ws = Workspace::new();
    let fasta = ws.path().join("bad.fa");
    std::fs::write(&fasta, ">chr1,2 a comma\nACGTACGTAC\n>chr2\nACGT\n").unwrap();
    let output = ws
        .biojob()
        .args(["prepare-reference", "--fai-only", "--reference"])
        .arg(&fasta)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: prepare-reference failed: reference contig name \"chr1,2\" in {}.fai is \
                 invalid in SAM and VCF: it contains ','",
                fasta.display()
            ),
            "hint: rename the contig in the FASTA header".to_owned(),
            "exit class: input_invalid (11)".to_owned(),
        ]
    );
}

#[test]
fn gather_refuses_a_vcf_whose_index_is_stale() {
    let ws = Workspace::new();
    let chr22 = vcf(
        &ws,
        "chr22",
        &format!("{VCF_HEADER}chr22\t100\t.\tA\tG\t50\tPASS\t.\tGT\t0/1\n"),
    );
    let chr20 = vcf(
        &ws,
        "chr20",
        &format!("{VCF_HEADER}chr20\t100\t.\tA\tG\t50\tPASS\t.\tGT\t0/1\n"),
    );
    // The chr20 VCF with the index of another file beside it.
    let tbi = ws.path().join("chr20.vcf.gz.tbi");
    std::fs::copy(ws.path().join("chr22.vcf.gz.tbi"), &tbi).unwrap();
    let output = gather_with(&ws, &[&chr22, &chr20]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: gather failed: {} lists records on [chr22] but {} holds records on \
                 [chr20]: the index is stale",
                tbi.display(),
                chr20.display()
            ),
            format!("hint: rebuild it: bcftools index -f -t {}", chr20.display()),
            "exit class: input_invalid (11)".to_owned(),
        ]
    );
}

#[test]
fn a_failed_chunk_fails_the_alignment_and_later_chunks_do_not_start() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["chr20"]);
    let bwa = fake_tool("fake-bwa-fails");
    // 13,860 pairs in chunks of 5,000: 3 chunks, aligned one at a time.
    let output = ws.run(
        &input,
        "chunks",
        &["--chunk-pairs", "5000", "--workers", "1"],
        &[("BIOJOB_BWA", &bwa)],
    );
    assert_eq!(output.status.code(), Some(20), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            "error: align chunk 0000 failed: bwa-mem exited with status 1: \
             [E::bwa_idx_load_from_disk] fail to locate the index files",
            "hint: see logs/bwa-mem.stderr for the whole stderr",
            "exit class: tool_failed (20)",
        ]
    );
    let manifest = assert_nothing_published(&ws, "chunks", 20);
    let tasks: Vec<(String, Option<u64>, String)> = manifest["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|task| {
            (
                task["step"].as_str().unwrap().to_owned(),
                task["shard"].as_u64(),
                task["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        tasks,
        [
            ("prepare-reference".to_owned(), None, "succeeded".to_owned()),
            ("split".to_owned(), None, "succeeded".to_owned()),
            ("align".to_owned(), Some(0), "failed".to_owned()),
            // Recorded, never started.
            ("align".to_owned(), Some(1), "skipped".to_owned()),
            ("align".to_owned(), Some(2), "skipped".to_owned()),
        ]
    );
    assert_eq!(manifest["tasks"][3]["commands"], serde_json::json!([]));
}
/// The input for the test data with the FASTQs given as `fastq_1` and `fastq_2`.
fn input_with_pair(ws: &Workspace, fastq_1: &str, fastq_2: &str) -> std::path::PathBuf {
    ws.input(
        &[
            ("REFERENCE_NAME", "ref".into()),
            ("SAMPLE_ID", "NA12878".into()),
            ("SOURCE_DATA_PREFIX", testdata().display().to_string()),
            ("JOB_OUTPUT_PREFIX", ws.out().display().to_string()),
            ("FASTQ_1", fastq_1.into()),
            ("FASTQ_2", fastq_2.into()),
        ],
        Some(&["chr20"]),
    )
}

#[test]
fn the_same_file_as_both_reads_is_refused_with_the_input_class() {
    let ws = Workspace::new();
    let r1 = testdata().join("NA12878_R1.fastq.gz");
    let r1 = r1.display();
    let same = format!(
        "file://{}",
        r1.to_string().replace("/NA12878_R1", "/./NA12878_R1")
    );
    let input = input_with_pair(&ws, &r1.to_string(), &same);
    let output = ws.run(&input, "same", &[], &[]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    let same_path = r1.to_string().replace("/NA12878_R1", "/./NA12878_R1");
    assert_eq!(
        error_lines(&output),
        [
            format!("error: FASTQ_1 and FASTQ_2 name the same file: {r1} and {same_path}"),
            "hint: give read 1 of the pair as FASTQ_1 and read 2 as FASTQ_2".to_owned(),
            "exit class: input_invalid (11)".to_owned(),
        ]
    );
}

#[test]
fn two_files_with_the_same_content_as_both_reads_are_refused_with_the_input_class() {
    let ws = Workspace::new();
    let r1 = testdata().join("NA12878_R1.fastq.gz");
    let copy = ws.path().join("copy_R2.fastq.gz");
    std::fs::copy(&r1, &copy).unwrap();
    let input = input_with_pair(&ws, &r1.display().to_string(), &copy.display().to_string());
    let output = ws.run(&input, "copy", &[], &[]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    let sha256 = crate::support::tool("sha256sum", &[r1.to_str().unwrap()], ws.path());
    let sha256 = sha256.split_whitespace().next().unwrap();
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: align failed: FASTQ_1 and FASTQ_2 have the same content: {} and {} (SHA-256 {sha256})",
                r1.display(),
                copy.display()
            ),
            "hint: give read 1 of the pair as FASTQ_1 and read 2 as FASTQ_2".to_owned(),
            "exit class: input_invalid (11)".to_owned(),
        ]
    );
    assert_nothing_published(&ws, "copy", 11);
}

#[test]
fn zero_threads_is_a_usage_error_not_one_thread() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["chr20"]);
    let by_flag = ws.run(&input, "zero", &["--threads", "0"], &[]);
    let by_environment = ws
        .biojob()
        .args(["run", "--input"])
        .arg(&input)
        .env("BIOJOB_THREADS", "0")
        .output()
        .unwrap();
    for (output, source) in [
        (by_flag, "'--threads <THREADS>'"),
        (
            by_environment,
            "BIOJOB_THREADS (the environment variable of '--threads <THREADS>')",
        ),
    ] {
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert_eq!(
            stderr(&output).lines().next(),
            Some(
                format!(
                    "error: invalid value '0' for {source}: 0 threads cannot run anything: give at least 1"
                )
                .as_str()
            )
        );
    }
    assert!(!ws.out().exists());
}
