//! Odd inputs: each gets the right answer or a clear refusal with its exit class, never a
//! wrong result with exit 0 or a hang (docs/reliability.md, "Odd inputs").

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    Workspace, error_lines, fake_tool, hand_run, records, stderr, stdout, testdata, tool,
};

/// `biojob prepare-reference --reference FASTA [extra]`.
fn prepare(ws: &Workspace, fasta: &Path, extra: &[&str]) -> Output {
    ws.biojob()
        .arg("prepare-reference")
        .args(extra)
        .arg("--reference")
        .arg(fasta)
        .output()
        .unwrap()
}

/// `dir` made read-only (mode 0555: even root's probe then counts it as read-only).
fn read_only(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).unwrap();
}

/// The test reference copied into `dir` (created), with its `.fai` from the test data.
fn reference_in(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let fasta = dir.join("ref.fa");
    std::fs::copy(testdata().join("ref.fa"), &fasta).unwrap();
    std::fs::copy(testdata().join("ref.fa.fai"), dir.join("ref.fa.fai")).unwrap();
    fasta
}

// ---------------------------------------------------------------------------------------------
// Indexes that belong to other files

#[test]
fn uneven_fasta_lines_are_refused_before_faidx_naming_the_contig_and_the_line() {
    let ws = Workspace::new();
    let fasta = ws.path().join("uneven.fa");
    std::fs::write(&fasta, ">a\nACGTAC\nACG\nACGTAC\n>b\nACGT\n").unwrap();
    let output = prepare(&ws, &fasta, &["--fai-only"]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: prepare-reference failed: {}: contig \"a\", line 4: more sequence after \
                 line 3, which is shorter (3 bases where the contig's first line has 6); only the \
                 last line of a contig may be shorter",
                fasta.display()
            ),
            "hint: rewrap the FASTA so that every line of a contig but its last has the same \
             length, with no blank line inside a contig (e.g. `seqkit seq -w 60`)"
                .to_owned(),
            "exit class: input_invalid (11)".to_owned(),
        ]
    );
    // samtools faidx never ran: no index, no tool log.
    assert!(!ws.path().join("uneven.fa.fai").exists());
}

/// The test data's `.fai` with the last contig (chrM) 100 bases short.
fn short_fai() -> String {
    std::fs::read_to_string(testdata().join("ref.fa.fai"))
        .unwrap()
        .replace("chrM\t16571\t", "chrM\t16471\t")
}

#[test]
fn a_fai_whose_last_contig_is_short_is_rebuilt_where_writable_and_refused_where_not() {
    let ws = Workspace::new();
    let expected = std::fs::read_to_string(testdata().join("ref.fa.fai")).unwrap();

    let writable = reference_in(&ws.path().join("writable"));
    std::fs::write(ws.path().join("writable/ref.fa.fai"), short_fai()).unwrap();
    let output = prepare(&ws, &writable, &["--fai-only"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("the FASTA index does not belong to the FASTA; rebuilding it"),
        "{}",
        stderr(&output)
    );
    assert!(
        stdout(&output).contains(&format!("built: {}.fai\n", writable.display())),
        "{}",
        stdout(&output)
    );
    assert_eq!(
        std::fs::read_to_string(ws.path().join("writable/ref.fa.fai")).unwrap(),
        expected
    );

    let dir = ws.path().join("read-only");
    let fasta = reference_in(&dir);
    std::fs::write(dir.join("ref.fa.fai"), short_fai()).unwrap();
    read_only(&dir);
    let output = prepare(&ws, &fasta, &["--fai-only"]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    // chrM starts at byte 317913 in lines of 60 bases and 61 bytes: its 16471st base is on
    // line 275 (16440 bases before it), so the byte after it is 317913 + 274 * 61 + 31.
    let after = 317_913 + 274 * 61 + 31;
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: prepare-reference failed: {}.fai does not belong to {}: contig \"chrM\" \
                 goes on past the 16471 bases its index lists (byte {after} holds more sequence)",
                fasta.display(),
                fasta.display()
            ),
            format!(
                "hint: remove {}.fai so that it is rebuilt, or rebuild it from this file \
                 (samtools faidx)",
                fasta.display()
            ),
            "exit class: input_invalid (11)".to_owned(),
        ]
    );
}

/// The directories of `<cache>/references/`, sorted.
fn cached_references(ws: &Workspace) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(ws.path().join("cache/references")) else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = entries.map(|entry| entry.unwrap().path()).collect();
    dirs.sort();
    dirs
}

/// A `.fa.gz` reference is decompressed into `<cache>/references/<key>/` once per version and
/// reused; removing the directory (docs/running.md says so) costs only a new decompression.
#[test]
fn a_compressed_reference_is_decompressed_once_per_version_and_its_cache_can_be_pruned() {
    use std::io::Write;
    use std::os::unix::fs::MetadataExt;
    let ws = Workspace::new();
    let original = std::fs::read(testdata().join("ref.fa")).unwrap();
    let gz = ws.path().join("ref.fa.gz");
    let mut encoder =
        flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), Default::default());
    encoder.write_all(&original).unwrap();
    encoder.finish().unwrap();

    let output = prepare(&ws, &gz, &["--fai-only"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let dirs = cached_references(&ws);
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let fasta = dirs[0].join("ref.fa");
    let prepared = format!("fasta: {}\nfai: {}.fai\n", fasta.display(), fasta.display());
    let built = format!(
        "built: {}\nbuilt: {}.fai\n",
        fasta.display(),
        fasta.display()
    );
    assert_eq!(stdout(&output), format!("{prepared}{built}"));
    assert_eq!(std::fs::read(&fasta).unwrap(), original);
    let inode = std::fs::metadata(&fasta).unwrap().ino();

    // The next run reuses the copy: nothing is built, the file is the same one.
    let output = prepare(&ws, &gz, &["--fai-only"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), prepared);
    assert_eq!(cached_references(&ws), dirs);
    assert_eq!(std::fs::metadata(&fasta).unwrap().ino(), inode);

    // Pruned: the next run decompresses again, into the same place.
    std::fs::remove_dir_all(ws.path().join("cache/references")).unwrap();
    let output = prepare(&ws, &gz, &["--fai-only"]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(stdout(&output), format!("{prepared}{built}"));
    assert_eq!(cached_references(&ws), dirs);
    assert_eq!(std::fs::read(&fasta).unwrap(), original);

    // A new version of the file (another modification time) gets a copy of its own; the
    // earlier one stays until it is pruned.
    let later = std::time::SystemTime::now() + Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(&gz)
        .unwrap()
        .set_modified(later)
        .unwrap();
    let output = prepare(&ws, &gz, &["--fai-only"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let now = cached_references(&ws);
    assert_eq!(now.len(), 2, "{now:?}");
    assert!(now.contains(&dirs[0]), "{now:?}");
}

/// A bwa index built from an earlier version of `dir/ref.fa` (one base of chr20 differs: same
/// contigs, names and lengths), newer than the FASTA: which base differs, 1-based in chr20.
fn stale_bwa_index(dir: &Path) -> u64 {
    let fasta = std::fs::read(dir.join("ref.fa")).unwrap();
    let mut earlier = fasta.clone();
    // Base 1000 of chr20: the header is 105 bytes, lines of 60 bases in 61 bytes.
    let at = 105 + 16 * 61 + 39;
    earlier[at] = if earlier[at] == b'A' { b'C' } else { b'A' };
    std::fs::write(dir.join("earlier.fa"), earlier).unwrap();
    tool("bwa", &["index", "-p", "ref.fa", "earlier.fa"], dir);
    std::fs::remove_file(dir.join("earlier.fa")).unwrap();
    1000
}

#[test]
fn a_bwa_index_of_an_earlier_fasta_is_rebuilt_recorded_then_trusted_or_refused_read_only() {
    let ws = Workspace::new();
    let dir = ws.path().join("writable");
    let fasta = reference_in(&dir);
    let base = stale_bwa_index(&dir);
    let output = prepare(&ws, &fasta, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stderr(&output);
    assert!(
        text.contains("the bwa index does not belong to the FASTA; rebuilding it"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "base {base} of contig chr20 is {} in the FASTA",
            char::from(std::fs::read(&fasta).unwrap()[105 + 16 * 61 + 39])
        )),
        "{text}"
    );
    for extension in ["amb", "ann", "bwt", "pac", "sa"] {
        assert!(
            stdout(&output).contains(&format!("built: {}.{extension}\n", fasta.display())),
            "{}",
            stdout(&output)
        );
    }
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("ref.fa.provenance.json")).unwrap())
            .unwrap();
    let sha256 = tool("sha256sum", &["ref.fa"], &dir);
    assert_eq!(record["format"], "biojob-index-provenance/1");
    assert_eq!(record["source"]["name"], "ref.fa");
    assert_eq!(
        record["source"]["sha256"],
        sha256.split_whitespace().next().unwrap()
    );
    let names: Vec<&str> = record["index"]
        .as_array()
        .unwrap()
        .iter()
        .map(|file| file["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "ref.fa.amb",
            "ref.fa.ann",
            "ref.fa.bwt",
            "ref.fa.pac",
            "ref.fa.sa"
        ]
    );

    // Again: the record vouches for the index; nothing is built or checked in full.
    let output = prepare(&ws, &fasta, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(!stdout(&output).contains("built: "), "{}", stdout(&output));
    let text = stderr(&output);
    assert!(
        text.contains("the bwa index's provenance record vouches for it"),
        "{text}"
    );
    assert!(
        !text.contains("checking the bwa index against the FASTA in full"),
        "{text}"
    );

    // Where it cannot be rebuilt, it is refused.
    let dir = ws.path().join("read-only");
    let fasta = reference_in(&dir);
    stale_bwa_index(&dir);
    read_only(&dir);
    let output = prepare(&ws, &fasta, &[]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    let lines = error_lines(&output);
    let original = char::from(std::fs::read(&fasta).unwrap()[105 + 16 * 61 + 39]);
    let edited = if original == 'A' { 'C' } else { 'A' };
    assert_eq!(
        lines,
        [
            format!(
                "error: prepare-reference failed: {} does not belong to {}: base {base} of \
                 contig chr20 is {original} in the FASTA, {edited} in the index",
                fasta.display(),
                fasta.display()
            ),
            format!(
                "hint: remove {} so that it is rebuilt, or rebuild it from this file (bwa index)",
                fasta.display()
            ),
            "exit class: input_invalid (11)".to_owned(),
        ]
    );
}

/// A `.bai` of another BAM beside the BAM given to a call job is not used: the BAM is indexed
/// again in scratch, and the calls are those of the right index.
#[test]
fn a_bai_of_another_bam_is_not_used_the_bam_is_indexed_again_in_scratch() {
    let ws = Workspace::new();
    let hand = hand_run();
    let bam = ws.path().join("sample.bam");
    std::fs::copy(hand.dir.join("hand.bam"), &bam).unwrap();
    // Another BAM of the same reference: half the records, so other offsets.
    let other = ws.path().join("other.bam");
    tool(
        "samtools",
        &[
            "view",
            "-b",
            "-s",
            "0.5",
            "-o",
            other.to_str().unwrap(),
            hand.dir.join("hand.bam").to_str().unwrap(),
        ],
        ws.path(),
    );
    tool("samtools", &["index", "other.bam"], ws.path());
    std::fs::copy(
        ws.path().join("other.bam.bai"),
        ws.path().join("sample.bam.bai"),
    )
    .unwrap();
    let wrong_index = std::fs::read(ws.path().join("sample.bam.bai")).unwrap();

    let output = ws
        .biojob()
        .args(["call", "--contig", "chr22", "--bam"])
        .arg(&bam)
        .arg("--reference")
        .arg(testdata().join("ref.fa"))
        .arg("--output-prefix")
        .arg(ws.out())
        .env("SAMPLE_ID", "NA12878")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(
            "the BAM index does not belong to the BAM; indexing the BAM again in scratch"
        ),
        "{}",
        stderr(&output)
    );
    let (_, expected) = hand
        .per_contig
        .iter()
        .find(|(contig, _)| contig == "chr22")
        .unwrap();
    let ours = ws.out().join("NA12878.call.0001.vcf.gz");
    assert_eq!(records(&ours), records(expected));
    assert!(!records(&ours).is_empty());
    // The input's own index is left as it was.
    assert_eq!(
        std::fs::read(ws.path().join("sample.bam.bai")).unwrap(),
        wrong_index
    );
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(ws.out().join("NA12878.call.0001.manifest.json")).unwrap(),
    )
    .unwrap();
    let labels: Vec<&str> = manifest["task"]["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|command| command["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels[0], "samtools-index");
}

// ---------------------------------------------------------------------------------------------
// Inputs that are not regular files, URIs with '..'

/// The output of `command`, or a panic naming `what` when it still runs after a minute: a
/// guard against a hang (an open() of a FIFO blocks for ever), not a speed target.
fn output_unless_hung(command: &mut Command, what: &str) -> Output {
    let started = Instant::now();
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("biojob still runs with {what}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_fifo_or_a_device_as_a_fastq_is_refused_at_once_with_the_input_class() {
    let ws = Workspace::new();
    let fifo = ws.path().join("R1.fastq.gz");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    for (path, kind) in [
        (fifo.display().to_string(), "a FIFO (named pipe)"),
        ("/dev/zero".to_owned(), "a character device"),
    ] {
        let input = ws.input(
            &[
                ("REFERENCE_NAME", "ref".into()),
                ("SAMPLE_ID", "NA12878".into()),
                ("SOURCE_DATA_PREFIX", testdata().display().to_string()),
                ("FASTQ_1", path.clone()),
                ("JOB_OUTPUT_PREFIX", ws.out().display().to_string()),
            ],
            Some(&["chr20"]),
        );
        let output = output_unless_hung(
            ws.biojob()
                .args(["run", "--run-id", "odd", "--input"])
                .arg(&input),
            &format!("FASTQ_1 = {path}"),
        );
        assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
        assert_eq!(
            error_lines(&output),
            [
                format!("error: FASTQ_1 {path} is {kind}, not a regular file"),
                "hint: give a regular file (write a pipe's or a device's output to a file first)"
                    .to_owned(),
                "exit class: input_invalid (11)".to_owned(),
            ]
        );
        assert_eq!(
            Workspace::files(&ws.path().join("scratch")),
            Vec::<String>::new()
        );
    }
}

/// The execution input JSON read from a FIFO blocked in open() past SIGTERM, and from
/// `/dev/zero` (or a FASTQ given by mistake) until memory ran out: only a regular file of at
/// most 256 KiB is read.
#[test]
fn an_input_json_that_is_not_a_regular_file_is_refused_at_once() {
    let ws = Workspace::new();
    let fifo = ws.path().join("input.json");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    for (path, kind) in [
        (fifo.display().to_string(), "a FIFO (named pipe)"),
        ("/dev/zero".to_owned(), "a character device"),
        (ws.path().display().to_string(), "a directory"),
    ] {
        let output = output_unless_hung(
            ws.biojob()
                .args(["run", "--run-id", "odd", "--input", &path]),
            &format!("--input {path}"),
        );
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert_eq!(
            error_lines(&output),
            [
                format!(
                    "error: reading the workflow input {path}: it is {kind}, not a regular file"
                ),
                "hint: give the path of the execution input JSON, a regular file".to_owned(),
                "exit class: usage (2)".to_owned(),
            ]
        );
        assert!(!ws.path().join("scratch").exists());
    }

    // A FASTQ given as the input by mistake: refused before it is read, by its size.
    let path = testdata().join("NA12878_R1.fastq.gz");
    let output = ws
        .biojob()
        .args(["run", "--run-id", "odd", "--input"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let size = std::fs::metadata(&path).unwrap().len();
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: reading the workflow input {}: it holds {size} bytes, more than an \
                 execution input can (262144: 256 KiB, the Step Functions limit)",
                path.display()
            ),
            "hint: give the path of the execution input JSON, a regular file".to_owned(),
            "exit class: usage (2)".to_owned(),
        ]
    );
}

/// A cohort's sample sheet is read through the local store, which opens regular files only: a
/// FIFO or a device is refused before it is opened.
#[test]
fn a_sample_sheet_that_is_not_a_regular_file_is_refused_at_once() {
    let ws = Workspace::new();
    let fifo = ws.path().join("samplesheet.csv");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let input = ws.input(
        &[
            ("REFERENCE_NAME", "ref".into()),
            ("SOURCE_DATA_PREFIX", testdata().display().to_string()),
            ("JOB_OUTPUT_PREFIX", ws.out().display().to_string()),
        ],
        Some(&["chr20"]),
    );
    for (path, kind) in [
        (fifo.display().to_string(), "a FIFO (named pipe)"),
        ("/dev/zero".to_owned(), "a character device"),
    ] {
        let output = output_unless_hung(
            ws.biojob()
                .args(["run", "--run-id", "odd", "--samplesheet", &path, "--input"])
                .arg(&input),
            &format!("--samplesheet {path}"),
        );
        assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
        assert_eq!(
            error_lines(&output),
            [
                format!("error: {path} is {kind}, not a regular file"),
                "hint: give a regular file (write a pipe's or a device's output to a file first)"
                    .to_owned(),
                "exit class: input_invalid (11)".to_owned(),
            ]
        );
    }
}

#[test]
fn dot_dot_segments_in_s3_keys_are_refused_with_the_input_class() {
    let ws = Workspace::new();
    let input = ws.input(
        &[
            ("REFERENCE_NAME", "ref".into()),
            ("SAMPLE_ID", "NA12878".into()),
            ("SOURCE_DATA_PREFIX", "s3://bucket/x/../in".into()),
            ("JOB_OUTPUT_PREFIX", ws.out().display().to_string()),
        ],
        Some(&["chr20"]),
    );
    let output = ws.run(&input, "dots", &["--dry-run"], &[]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            "error: params.environment.SOURCE_DATA_PREFIX: s3://bucket/x/../in: the key has a \
             '..' segment; S3 keeps '.', '..' and empty segments as they are, a file system does \
             not, so they are refused"
                .to_owned(),
            "hint: write the key without '.', '..' or empty segments".to_owned(),
            "exit class: input_invalid (11)".to_owned(),
        ]
    );
    let output = ws
        .biojob()
        .args(["stage", "get", "s3://bucket/dir/.."])
        .arg(ws.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            "error: s3://bucket/dir/..: the key has a '..' segment; S3 keeps '.', '..' and empty \
             segments as they are, a file system does not, so they are refused"
                .to_owned(),
            "exit class: input_invalid (11)".to_owned(),
        ]
    );

    // A cohort's sample sheet, given to biojob run and to the Batch jobs.
    let dots = "s3://bucket/x/../sheet.csv";
    let refused = format!(
        "{dots}: the key has a '..' segment; S3 keeps '.', '..' and empty segments as they are, \
         a file system does not, so they are refused"
    );
    let cohort_input = ws.input(
        &[
            ("REFERENCE_NAME", "ref".into()),
            ("SOURCE_DATA_PREFIX", testdata().display().to_string()),
            ("JOB_OUTPUT_PREFIX", ws.out().display().to_string()),
        ],
        Some(&["chr20"]),
    );
    let output = ws.run(&cohort_input, "dots", &["--samplesheet", dots], &[]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            format!("error: the sample sheet: {refused}"),
            "hint: write the key without '.', '..' or empty segments".to_owned(),
            "exit class: input_invalid (11)".to_owned(),
        ]
    );
    let output = ws
        .biojob()
        .args(["plan-cohort", "--samplesheet", dots])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            format!("error: {refused}"),
            "exit class: input_invalid (11)".to_owned(),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// Flags and the input JSON

/// `biojob run --dry-run` of the demo input with `extra` flags.
fn dry_run(ws: &Workspace, input: &Path, extra: &[&str]) -> Output {
    ws.run(input, "flags", &[&["--dry-run"], extra].concat(), &[])
}

#[test]
fn out_of_range_threads_memory_and_chunks_are_usage_errors_before_any_tool_runs() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["chr20"]);
    for (flags, message) in [
        (
            ["--threads", "100000"],
            "error: invalid value '100000' for '--threads <THREADS>': 100000 threads is more \
             than biojob gives its tools (1024 at most; samtools crashes when given tens of \
             thousands): give a whole number from 1 to 1024",
        ),
        (
            ["--threads", "-1"],
            "error: invalid value '-1' for '--threads <THREADS>': -1 threads cannot run \
             anything: give a whole number from 1 to 1024",
        ),
        (
            ["--memory", "1K"],
            "error: invalid value '1K' for '--memory <MEMORY>': 1024 bytes of memory cannot run \
             the tools (samtools sort alone takes 64 MiB per thread): give at least 256M",
        ),
        (
            ["--memory", "0"],
            "error: invalid value '0' for '--memory <MEMORY>': 0 bytes of memory cannot run the \
             tools (samtools sort alone takes 64 MiB per thread): give at least 256M",
        ),
        (
            ["--chunk-pairs", "1"],
            "error: invalid value '1' for '--chunk-pairs <CHUNK_PAIRS>': chunks of 1 read pairs \
             are refused: each chunk is its own bwa mem, which loads the whole bwa index first; \
             give 0 (align the pair whole) or at least 1000",
        ),
        (
            ["--workers", "0"],
            "error: invalid value '0' for '--workers <WORKERS>': 0 workers align no chunk: give \
             at least 1",
        ),
    ] {
        let output = ws.run(&input, "flags", &flags, &[]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{flags:?}: {}",
            stderr(&output)
        );
        assert_eq!(stderr(&output).lines().next(), Some(message), "{flags:?}");
    }
    // A bad value from a flag's environment variable is named by the variable (clap names
    // only the flag, which the command line does not have); a flag given wins and is named.
    for (variable, value, flags, message) in [
        (
            "BIOJOB_THREADS",
            "abc",
            &[][..],
            "error: invalid value 'abc' for BIOJOB_THREADS (the environment variable of \
             '--threads <THREADS>'): \"abc\" is not a whole number of threads: invalid digit \
             found in string",
        ),
        (
            "BIOJOB_WORKERS",
            "0",
            &[][..],
            "error: invalid value '0' for BIOJOB_WORKERS (the environment variable of \
             '--workers <WORKERS>'): 0 workers align no chunk: give at least 1",
        ),
        (
            "BIOJOB_LOG_FORMAT",
            "xml",
            &[][..],
            "error: invalid value 'xml' for BIOJOB_LOG_FORMAT (the environment variable of \
             '--log-format <LOG_FORMAT>')",
        ),
        (
            "BIOJOB_KEEP_SCRATCH",
            "maybe",
            &[][..],
            "error: invalid value 'maybe' for BIOJOB_KEEP_SCRATCH (the environment variable of \
             '--keep-scratch'): \"maybe\" is not 1/true/yes/on or 0/false/no/off",
        ),
        // A switch reads the same values everywhere: `false` turns the check off, as `0`
        // does, and what is not a switch is refused (was: anything but `0` left it on).
        (
            "BIOJOB_FASTQ_VALIDATION",
            "maybe",
            &[][..],
            "error: BIOJOB_FASTQ_VALIDATION: \"maybe\" is not 1/true/yes/on or 0/false/no/off",
        ),
        (
            "BIOJOB_THREADS",
            "2",
            &["--threads=x"][..],
            "error: invalid value 'x' for '--threads <THREADS>': \"x\" is not a whole number of \
             threads: invalid digit found in string",
        ),
    ] {
        let output = ws.run(&input, "env", flags, &[(variable, Path::new(value))]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{variable}: {}",
            stderr(&output)
        );
        assert_eq!(
            error_lines(&output).first().map(String::as_str),
            Some(message),
            "{variable}: {}",
            stderr(&output)
        );
    }
    assert!(!ws.out().exists());
    assert!(!ws.path().join("scratch").exists());
}

#[test]
fn a_misspelt_params_key_is_named_and_a_key_given_twice_is_refused() {
    let ws = Workspace::new();
    let data = testdata().display().to_string();
    let out = ws.out().display().to_string();
    let environment = format!(
        r#"{{"REFERENCE_NAME": "ref", "SAMPLE_ID": "NA12878", "SOURCE_DATA_PREFIX": "{data}",
            "JOB_OUTPUT_PREFIX": "{out}"}}"#
    );
    let input = ws.path().join("misspelt.json");
    std::fs::write(
        &input,
        format!(r#"{{"params": {{"environment": {environment}, "chromosome": ["chr20"]}}}}"#),
    )
    .unwrap();
    let output = dry_run(&ws, &input, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(
            "WARN ignoring an input key biojob does not use (did you mean \
             params.chromosomes?) key=\"params.chromosome\""
        ),
        "{}",
        stderr(&output)
    );

    let input = ws.path().join("twice.json");
    std::fs::write(
        &input,
        format!(
            r#"{{"params": {{"environment": {{"SAMPLE_ID": "NA12878", "REFERENCE_NAME": "ref",
                "SOURCE_DATA_PREFIX": "{data}", "JOB_OUTPUT_PREFIX": "{out}",
                "SAMPLE_ID": "NA24385"}}}}}}"#
        ),
    )
    .unwrap();
    let output = dry_run(&ws, &input, &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output)[0],
        "error: the workflow input is not valid: params.environment.SAMPLE_ID is given twice at \
         line 3 column 27"
    );
}

#[test]
fn a_byte_order_mark_is_skipped_and_an_empty_sample_id_is_named_empty() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["chr20"]);
    let text = std::fs::read_to_string(&input).unwrap();
    std::fs::write(&input, format!("\u{feff}{text}")).unwrap();
    let output = dry_run(&ws, &input, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("sample: NA12878\n"));

    let input = ws.input(
        &[
            ("REFERENCE_NAME", "ref".into()),
            ("SAMPLE_ID", String::new()),
            ("SOURCE_DATA_PREFIX", testdata().display().to_string()),
            ("JOB_OUTPUT_PREFIX", ws.out().display().to_string()),
        ],
        Some(&["chr20"]),
    );
    let output = dry_run(&ws, &input, &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            "error: params.environment.SAMPLE_ID is empty",
            "hint: give a value for \"SAMPLE_ID\" in params.environment in the input JSON",
            "exit class: usage (2)",
        ]
    );
}

#[test]
fn a_backslash_in_a_read_group_value_is_a_usage_error_before_any_tool_runs() {
    let ws = Workspace::new();
    let input = ws.input(
        &[
            ("REFERENCE_NAME", "ref".into()),
            ("SAMPLE_ID", "NA12878".into()),
            ("SOURCE_DATA_PREFIX", testdata().display().to_string()),
            ("JOB_OUTPUT_PREFIX", ws.out().display().to_string()),
            ("READ_GROUP_LIBRARY", r"lib\t1".into()),
        ],
        Some(&["chr20"]),
    );
    let output = ws.run(&input, "backslash", &[], &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            r#"error: read group LB value "lib\\t1" holds a backslash (the escape sequence \t); bwa mem -R reads a backslash as an escape (\t becomes a tab, \n a newline) and would change the value"#,
            "hint: fix the READ_GROUP_* values in the input JSON",
            "exit class: usage (2)",
        ]
    );
    assert!(!ws.out().exists());
}

// ---------------------------------------------------------------------------------------------
// Tools that exit 0 without their output

/// A samtools that runs the real one but exits 0 without writing anything for `index`.
/// A samtools that writes no index when asked to write one as it writes a BAM: it drops
/// `--write-index` and the `##idx##…` of `-o`.
fn samtools_that_skips_index(ws: &Workspace) -> PathBuf {
    let path = ws.path().join("samtools-skips-index");
    std::fs::write(
        &path,
        "#!/bin/bash\nargs=()\nfor arg in \"$@\"; do\n  [ \"$arg\" = --write-index ] && continue\n  args+=(\"${arg%%##idx##*}\")\ndone\nexec samtools \"${args[@]}\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

#[test]
fn a_samtools_that_writes_no_index_is_an_output_failure() {
    let ws = Workspace::new();
    let samtools = samtools_that_skips_index(&ws);
    let data = testdata();
    let output = ws
        .biojob()
        .args(["align", "--sample", "NA12878", "--reference"])
        .arg(data.join("ref.fa"))
        .arg("--fastq-1")
        .arg(data.join("NA12878_R1.fastq.gz"))
        .arg("--fastq-2")
        .arg(data.join("NA12878_R2.fastq.gz"))
        .arg("--output-prefix")
        .arg(ws.out())
        .env("BIOJOB_SAMTOOLS", &samtools)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(31), "{}", stderr(&output));
    let lines = error_lines(&output);
    assert!(
        lines[0].starts_with("error: align failed: ")
            && lines[0].ends_with(
                "/NA12878.align.bam.bai: the step's commands succeeded but none wrote it (no \
                 NA12878.align.bam.bai.partial)"
            ),
        "{lines:?}"
    );
    assert_eq!(lines.last().unwrap(), "exit class: output_invalid (31)");
    // Nothing but the logs and the step manifest was published.
    let published: Vec<String> = Workspace::files(&ws.out())
        .into_iter()
        .filter(|name| !name.starts_with("logs/"))
        .collect();
    assert_eq!(published, ["NA12878.align.manifest.json"]);
}

/// R1 of the test data with a `-` (a gap) as the 5th base of record 3.
fn r1_with_a_gap(ws: &Workspace) -> PathBuf {
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::MultiGzDecoder::new(
            std::fs::File::open(testdata().join("NA12878_R1.fastq.gz")).unwrap(),
        ),
        &mut text,
    )
    .unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    lines[9].replace_range(4..5, "-");
    let path = ws.path().join("gap_R1.fastq");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

#[test]
fn a_gap_in_a_fastq_sequence_is_an_input_error_naming_the_record() {
    let ws = Workspace::new();
    let r1 = r1_with_a_gap(&ws);
    let input = ws.input(
        &[
            ("REFERENCE_NAME", "ref".into()),
            ("SAMPLE_ID", "NA12878".into()),
            ("SOURCE_DATA_PREFIX", testdata().display().to_string()),
            ("FASTQ_1", r1.display().to_string()),
            ("JOB_OUTPUT_PREFIX", ws.out().display().to_string()),
        ],
        Some(&["chr20"]),
    );
    let output = ws.run(&input, "gap", &[], &[]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: align failed: {}: record 3, line 10: base '-' (byte 0x2d) at position 5 \
                 is not a sequence character (SAM SEQ allows letters, '=' and '.')",
                r1.display()
            ),
            "exit class: input_invalid (11)".to_owned(),
        ]
    );
}

// ---------------------------------------------------------------------------------------------
// One run at a time in a run's output directory

/// Waits (at most `limit`) until `path` exists; whether it did.
fn wait_for(path: &Path, limit: Duration) -> bool {
    let give_up = Instant::now() + limit;
    while !path.exists() {
        if Instant::now() > give_up {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

#[test]
fn a_second_run_with_the_same_run_id_is_refused_until_the_first_has_gone() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["chr20"]);
    let run_dir = ws.out().join("NA12878/same");
    let lock = run_dir.join(".biojob-run.lock");
    // The first run stalls in bwa mem, with a scratch root of its own.
    let mut first = ws
        .biojob()
        .args(["run", "--run-id", "same", "--input"])
        .arg(&input)
        .env("BIOJOB_BWA", fake_tool("fake-bwa"))
        .env("BIOJOB_SCRATCH_DIR", ws.path().join("scratch-1"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let locked = wait_for(&lock, Duration::from_secs(60));
    let stalled = wait_for(
        &ws.path().join("scratch-1/same/1/logs/bwa-mem.stderr"),
        Duration::from_secs(60),
    );
    assert!(locked && stalled, "the first run never reached bwa mem");
    let record: serde_json::Value = serde_json::from_slice(&std::fs::read(&lock).unwrap()).unwrap();
    assert_eq!(record["pid"], first.id());
    assert_eq!(record["run_id"], "same");

    // The second, with another scratch root, is refused before it does anything.
    let scratch_2 = ws.path().join("scratch-2");
    // The first run's manifest (written as each of its tasks ends), as the second finds it.
    let manifest_before = std::fs::read(run_dir.join("manifest.json")).ok();
    let second = ws.run(&input, "same", &[], &[("BIOJOB_SCRATCH_DIR", &scratch_2)]);
    assert_eq!(second.status.code(), Some(2), "{}", stderr(&second));
    assert_eq!(
        error_lines(&second),
        [
            format!(
                "error: run same is already writing to {}: its lock {} is held by process {} on \
                 this machine (job same, attempt 1), since {}",
                run_dir.display(),
                lock.display(),
                first.id(),
                record["acquired_at"].as_str().unwrap()
            ),
            format!(
                "hint: wait for that run to end, or give another --run-id; a lock left by a run \
                 that can no longer end is taken over once not renewed for 10 min, or remove {}",
                lock.display()
            ),
            "exit class: usage (2)".to_owned(),
        ]
    );
    assert!(!scratch_2.exists());
    assert_eq!(
        std::fs::read(run_dir.join("manifest.json")).ok(),
        manifest_before
    );

    // The first is killed outright (no cleanup): its lock is stale, and the next run takes it
    // over, runs and releases it.
    first.kill().unwrap();
    first.wait().unwrap();
    assert!(lock.exists());
    let third = ws.run(&input, "same", &[], &[("BIOJOB_SCRATCH_DIR", &scratch_2)]);
    assert!(third.status.success(), "{}", stderr(&third));
    assert!(
        stderr(&third).contains(&format!(
            "taking over a stale run lock lock={} holder=process {} on this machine (job same, \
             attempt 1), since {} reason=its process {} on this machine no longer exists",
            lock.display(),
            record["pid"],
            record["acquired_at"].as_str().unwrap(),
            record["pid"]
        )),
        "{}",
        stderr(&third)
    );
    assert!(!lock.exists());
}

// ---------------------------------------------------------------------------------------------
// The manifest, and what a run's directory holds

#[test]
fn a_manifest_that_cannot_be_published_fails_the_run_with_the_output_class() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["chrM"]);
    let run_dir = ws.out().join("NA12878/blocked");
    std::fs::create_dir_all(run_dir.join("manifest.json/inside")).unwrap();
    let output = ws.run(&input, "blocked", &[], &[]);
    assert_eq!(output.status.code(), Some(30), "{}", stderr(&output));
    let lines = error_lines(&output);
    assert_eq!(
        lines[0],
        format!(
            "error: publishing manifest.json failed: renaming to {}/manifest.json: Is a \
             directory (os error 21)",
            run_dir.display()
        )
    );
    assert_eq!(lines.last().unwrap(), "exit class: output_staging (30)");
    assert!(!stdout(&output).contains("VCF: "), "{}", stdout(&output));
    assert!(
        !stderr(&output).contains("manifest: "),
        "{}",
        stderr(&output)
    );
}

/// The inodes in use on the filesystem of `dir` (`df -i`).
fn inodes_used(dir: &Path) -> u64 {
    let text = tool(
        "df",
        &["--output=iused", dir.to_str().unwrap()],
        Path::new("/"),
    );
    text.lines().nth(1).unwrap().trim().parse().unwrap()
}

/// A run whose output filesystem fills up while the manifest is written: the output tmpfs
/// has exactly one inode fewer than a whole run's outputs, logs and manifest need.
#[test]
fn an_output_disk_that_fills_while_the_manifest_is_written_fails_the_run() {
    let ws = Workspace::new();
    let whole = biojob_testkit::Tmpfs::mount("64M");
    let input = |prefix: &Path| {
        ws.input(
            &[
                ("REFERENCE_NAME", "ref".into()),
                ("SAMPLE_ID", "NA12878".into()),
                ("SOURCE_DATA_PREFIX", testdata().display().to_string()),
                ("JOB_OUTPUT_PREFIX", prefix.display().to_string()),
            ],
            Some(&["chrM"]),
        )
    };
    // The indexes are built first, so that both runs write the same logs.
    let output = prepare(&ws, &testdata().join("ref.fa"), &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let output = ws.run(&input(whole.dir.as_std_path()), "full", &[], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let needed = inodes_used(whole.dir.as_std_path());
    drop(whole);

    let short = biojob_testkit::Tmpfs::mount(&format!("64M,nr_inodes={needed}"));
    let output = ws.run(&input(short.dir.as_std_path()), "full", &[], &[]);
    assert_eq!(output.status.code(), Some(30), "{}", stderr(&output));
    let run_dir = short.dir.join("NA12878/full");
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: publishing manifest.json failed: creating {run_dir}/manifest.json.partial: \
                 No space left on device (os error 28)"
            ),
            "hint: free space where the outputs go (the output prefix's filesystem), or give an \
             output prefix on a larger disk"
                .to_owned(),
            "exit class: output_staging (30)".to_owned(),
        ]
    );
    // The manifest written as the earlier tasks ended may be there; it never says that the run
    // succeeded, and no VCF is announced.
    if let Ok(text) = std::fs::read_to_string(run_dir.join("manifest.json")) {
        let manifest: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_ne!(manifest["status"], "succeeded", "{text}");
    }
    assert!(!stdout(&output).contains("VCF: "));
}

/// A samtools that runs the real one but fails `samtools stats` (QC's second tool) after
/// `samtools flagstat` has written its file.
fn samtools_failing_stats(ws: &Workspace) -> PathBuf {
    let path = ws.path().join("samtools-fails-stats");
    std::fs::write(
        &path,
        "#!/bin/sh\nif [ \"$1\" = stats ]; then echo 'stats: simulated failure' >&2; exit 1; fi\n\
         exec samtools \"$@\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// The files directly in `dir` (not in its subdirectories), sorted.
fn top_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap())
        .filter(|entry| entry.file_type().unwrap().is_file())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_failed_qc_publishes_none_of_its_files_and_a_failed_rerun_leaves_only_what_it_records() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["chrM"]);
    let run_dir = ws.out().join("NA12878/rerun");

    // QC fails: the steps that finished are published, none of QC's files.
    let samtools = samtools_failing_stats(&ws);
    let output = ws.run(&input, "rerun", &[], &[("BIOJOB_SAMTOOLS", &samtools)]);
    assert_eq!(output.status.code(), Some(20), "{}", stderr(&output));
    assert_eq!(
        top_files(&run_dir),
        [
            "NA12878.align.bam",
            "NA12878.align.bam.bai",
            "NA12878.call.0002.vcf.gz",
            "NA12878.call.0002.vcf.gz.tbi",
            "NA12878.vcf.gz",
            "NA12878.vcf.gz.tbi",
            "manifest.json",
        ]
    );

    // A whole run, then a rerun (no resume) that fails in align: the earlier run's QC files
    // are recorded nowhere in the new manifest, so they go; the outputs of the finished tasks
    // it carries as earlier tasks stay (a resume reuses them); the manifest has no VCF.
    let output = ws.run(&input, "rerun", &[], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let qc_files: Vec<String> = top_files(&run_dir)
        .into_iter()
        .filter(|name| {
            name.ends_with(".txt")
                || name.ends_with(".html")
                || (name.ends_with(".json") && name != "manifest.json")
        })
        .collect();
    assert!(!qc_files.is_empty());
    let output = ws.run(
        &input,
        "rerun",
        &[],
        &[("BIOJOB_BWA", &fake_tool("fake-bwa-fails"))],
    );
    assert_eq!(output.status.code(), Some(20), "{}", stderr(&output));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["vcf"], serde_json::Value::Null);
    let mut recorded: Vec<String> = manifest["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .chain(manifest["earlier_tasks"].as_array().unwrap())
        .flat_map(|task| task["outputs"].as_array().unwrap().clone())
        .map(|output| output["name"].as_str().unwrap().to_owned())
        .collect();
    recorded.push("manifest.json".to_owned());
    recorded.sort();
    assert_eq!(top_files(&run_dir), recorded);
    for name in qc_files {
        assert!(!run_dir.join(&name).exists(), "{name} is still there");
    }
}

// ---------------------------------------------------------------------------------------------
// Contig names that read as regions

/// The test reference with chr22 named `chr20:1-100` (which bcftools would read as bases 1 to
/// 100 of chr20) and chrM named `HLA-A*01:01:01:01` (GRCh38 style), in `dir`.
fn renamed_reference(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let text = std::fs::read_to_string(testdata().join("ref.fa")).unwrap();
    let renamed: String = text
        .lines()
        .map(|line| {
            if line.starts_with(">chr22") {
                ">chr20:1-100".to_owned()
            } else if line.starts_with(">chrM") {
                ">HLA-A*01:01:01:01".to_owned()
            } else {
                line.to_owned()
            }
        })
        .map(|line| line + "\n")
        .collect();
    let fasta = dir.join("renamed.fa");
    std::fs::write(&fasta, renamed).unwrap();
    fasta
}

/// `records` of a hand-run VCF with `from` renamed `to` in the CHROM column.
fn renamed_records(vcf: &Path, from: &str, to: &str) -> Vec<String> {
    records(vcf)
        .into_iter()
        .map(|record| match record.strip_prefix(&format!("{from}\t")) {
            Some(rest) => format!("{to}\t{rest}"),
            None => record,
        })
        .collect()
}

#[test]
fn contigs_whose_names_read_as_regions_are_called_as_those_contigs() {
    let ws = Workspace::new();
    let fasta = renamed_reference(&ws.path().join("reference"));
    let contigs = ["chr20:1-100", "HLA-A*01:01:01:01"];
    let input = ws.input(
        &[
            ("REFERENCE", fasta.display().to_string()),
            ("SAMPLE_ID", "NA12878".into()),
            ("SOURCE_DATA_PREFIX", testdata().display().to_string()),
            ("JOB_OUTPUT_PREFIX", ws.out().display().to_string()),
        ],
        Some(&contigs),
    );
    // Shards of at most 10,000 bases: each renamed contig is cut in two, so both the pileup's
    // regions file (-R) and the record filter's targets file (-T) are used.
    let output = ws.run(&input, "names", &["--shard-bases", "10000"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let hand = hand_run();
    let expected = |contig: &str| {
        hand.per_contig
            .iter()
            .find(|(name, _)| name == contig)
            .map(|(_, vcf)| vcf.clone())
            .unwrap()
    };
    let mut wanted = renamed_records(&expected("chr22"), "chr22", "chr20:1-100");
    wanted.extend(renamed_records(
        &expected("chrM"),
        "chrM",
        "HLA-A*01:01:01:01",
    ));
    let run_dir = ws.out().join("NA12878/names");
    let called = records(&run_dir.join("NA12878.vcf.gz"));
    assert!(!called.is_empty());
    assert_eq!(called, wanted);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("manifest.json")).unwrap()).unwrap();
    let argv: Vec<Vec<String>> = manifest["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|task| task["step"] == "call")
        .flat_map(|task| task["commands"].as_array().unwrap().clone())
        .map(|command| {
            command["argv"]
                .as_array()
                .unwrap()
                .iter()
                .map(|word| word.as_str().unwrap().to_owned())
                .collect()
        })
        .collect();
    assert!(argv.iter().any(|words| words.contains(&"-R".to_owned())));
    assert!(argv.iter().any(|words| words.contains(&"-T".to_owned())));
    assert!(argv.iter().all(|words| !words.contains(&"-r".to_owned())));

    // A call job named by the contig, on the run's BAM.
    let output = ws
        .biojob()
        .args(["call", "--contig", "chr20:1-100", "--bam"])
        .arg(run_dir.join("NA12878.align.bam"))
        .arg("--reference")
        .arg(&fasta)
        .arg("--output-prefix")
        .arg(ws.path().join("job"))
        .env("SAMPLE_ID", "NA12878")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    assert_eq!(
        records(&ws.path().join("job/NA12878.call.0001.vcf.gz")),
        renamed_records(&expected("chr22"), "chr22", "chr20:1-100")
    );
}

/// On S3 the lock is an object created with `If-None-Match: *`: a holder on another machine
/// that renewed it recently keeps it; one that has not renewed it for the lease is taken over.
#[test]
fn the_run_lock_on_s3_refuses_a_live_holder_and_takes_over_one_not_renewed() {
    use biojob_testkit::{TEST_BUCKET, s3_server};
    let server = s3_server();
    let ws = Workspace::new();
    let work = camino::Utf8Path::from_path(ws.path()).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let prefix = format!("s3://{TEST_BUCKET}/lock-{}-{now}", std::process::id());
    let run_dir = format!("{prefix}/NA12878/s3lock");
    let lock = format!("{run_dir}/.biojob-run.lock");
    let held = |renewed: u64| {
        let record = serde_json::json!({"run_id": "s3lock", "job_id": "elsewhere",
            "attempt": 1, "pid": 4242, "boot_id": "another-boot", "host": "other-host",
            "token": "t", "acquired_at": "2026-01-01T00:00:00Z",
            "renewed_unix_seconds": renewed});
        let file = work.join("lock.json");
        std::fs::write(&file, record.to_string()).unwrap();
        crate::s3_jobs::put(server, work, &file, &lock);
    };
    // The FASTQs are missing: once it holds the lock, the run fails at once (11).
    let input = ws.input(
        &[
            ("REFERENCE", testdata().join("ref.fa").display().to_string()),
            ("SAMPLE_ID", "NA12878".into()),
            ("SOURCE_DATA_PREFIX", ws.path().display().to_string()),
            ("JOB_OUTPUT_PREFIX", prefix.clone()),
        ],
        Some(&["chrM"]),
    );
    let run = || {
        crate::s3_jobs::biojob(server, &server.endpoint, work)
            .args(["run", "--run-id", "s3lock", "--input"])
            .arg(&input)
            .output()
            .unwrap()
    };

    held(now);
    let output = run();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output)[0],
        format!(
            "error: run s3lock is already writing to {run_dir}: its lock {lock} is held by \
             process 4242 on host other-host (job elsewhere, attempt 1), since \
             2026-01-01T00:00:00Z"
        )
    );

    held(now - 660);
    let output = run();
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("reason=it was last renewed 6"),
        "{}",
        stderr(&output)
    );
    // The run wrote its manifest and released the lock.
    crate::s3_jobs::get(
        server,
        work,
        &format!("{run_dir}/manifest.json"),
        &work.join("manifest.json"),
    );
    let gone = crate::s3_jobs::biojob(server, &server.endpoint, work)
        .args(["stage", "get", &lock])
        .arg(work.join("lock.copy"))
        .output()
        .unwrap();
    assert_eq!(gone.status.code(), Some(11), "{}", stderr(&gone));
}

/// The tools run without the `AWS_*` variables biojob was given.
#[test]
fn tools_do_not_see_the_aws_variables() {
    let ws = Workspace::new();
    let seen = ws.path().join("seen");
    std::fs::create_dir_all(&seen).unwrap();
    let samtools = ws.path().join("samtools-env");
    std::fs::write(
        &samtools,
        "#!/bin/sh\nenv > \"$SEEN_DIR/env.$$\"\nexec samtools \"$@\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&samtools, std::fs::Permissions::from_mode(0o755)).unwrap();
    let fasta = ws.path().join("ref/ref.fa");
    std::fs::create_dir_all(ws.path().join("ref")).unwrap();
    std::fs::copy(testdata().join("ref.fa"), &fasta).unwrap();
    let output = ws
        .biojob()
        .args(["prepare-reference", "--fai-only", "--reference"])
        .arg(&fasta)
        .env("BIOJOB_SAMTOOLS", &samtools)
        .env("SEEN_DIR", &seen)
        .env("AWS_SECRET_ACCESS_KEY", "not-a-real-secret")
        .env("AWS_SESSION_TOKEN", "not-a-real-token")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let mut environments = 0;
    for entry in std::fs::read_dir(&seen).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        assert!(text.contains("SEEN_DIR="), "{text}");
        assert!(text.lines().all(|line| !line.starts_with("AWS_")), "{text}");
        environments += 1;
    }
    // The version probe and samtools faidx.
    assert_eq!(environments, 2);
}

#[test]
fn two_empty_fastqs_and_a_missing_local_file_are_named_as_such() {
    let ws = Workspace::new();
    let r1 = ws.path().join("empty_R1.fastq");
    let r2 = ws.path().join("empty_R2.fastq");
    std::fs::write(&r1, "").unwrap();
    std::fs::write(&r2, "").unwrap();
    let input = ws.input(
        &[
            ("REFERENCE_NAME", "ref".into()),
            ("SAMPLE_ID", "NA12878".into()),
            ("SOURCE_DATA_PREFIX", testdata().display().to_string()),
            ("FASTQ_1", r1.display().to_string()),
            ("FASTQ_2", r2.display().to_string()),
            ("JOB_OUTPUT_PREFIX", ws.out().display().to_string()),
        ],
        Some(&["chrM"]),
    );
    let output = ws.run(&input, "empty", &[], &[]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output)[0],
        format!(
            "error: align failed: {}: no records (empty file)",
            r1.display()
        )
    );

    let output = ws
        .biojob()
        .args(["stage", "get"])
        .arg(ws.path().join("nowhere.fastq.gz"))
        .arg(ws.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: {}/nowhere.fastq.gz does not exist",
                ws.path().display()
            ),
            "hint: check the path or the s3:// URI: nothing is there".to_owned(),
            "exit class: input_invalid (11)".to_owned(),
        ]
    );
}

#[test]
fn an_unreachable_s3_endpoint_is_named_in_words() {
    let ws = Workspace::new();
    let output = ws
        .biojob()
        .args(["stage", "get", "s3://bucket/key.fastq.gz"])
        .arg(ws.path())
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("BIOJOB_S3_MAX_ATTEMPTS", "1")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(10), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            "error: reading metadata of s3://bucket/key.fastq.gz: HEAD: dispatch failure: io \
             error: client error (Connect): tcp connect error: Connection refused (os error \
             111) (gave up after 1 attempts)",
            "exit class: input_staging (10)",
        ]
    );
}

#[test]
fn the_dry_run_of_shards_by_size_names_no_placeholder_twice() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["chr20"]);
    let output = dry_run(&ws, &input, &["--shard-bases", "100000"]);
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(!text.contains("<<"), "{text}");
    assert!(
        text.contains(
            "bcftools mpileup -Oz0 -f <reference> -r <contig>:99001-200000 -a FORMAT/AD,FORMAT/DP \
             <bam>"
        ),
        "{text}"
    );
}

/// bcftools writes a lowercase (soft-masked) reference's bases as they are in indel REF and
/// ALT; biojob's calls are the hand-run command's, case included (VCF 4.2 section 1.6.1: bases
/// are case-insensitive).
#[test]
fn a_lowercase_reference_gives_the_records_bcftools_gives() {
    let ws = Workspace::new();
    let dir = ws.path().join("lower");
    std::fs::create_dir_all(&dir).unwrap();
    let lower: String = std::fs::read_to_string(testdata().join("ref.fa"))
        .unwrap()
        .lines()
        .map(|line| {
            if line.starts_with('>') {
                format!("{line}\n")
            } else {
                format!("{}\n", line.to_ascii_lowercase())
            }
        })
        .collect();
    std::fs::write(dir.join("ref.fa"), lower).unwrap();
    tool("samtools", &["faidx", "ref.fa"], &dir);
    let bam = hand_run().dir.join("hand.bam");
    let hand_vcf = dir.join("hand.chr22.vcf.gz");
    crate::support::pipe(
        (
            "bcftools",
            &[
                "mpileup",
                "-f",
                "ref.fa",
                "-r",
                "chr22",
                "-a",
                "FORMAT/AD,FORMAT/DP",
                bam.to_str().unwrap(),
            ],
        ),
        (
            "bcftools",
            &["call", "-m", "-v", "-Oz", "-o", hand_vcf.to_str().unwrap()],
        ),
        &dir,
    );
    let output = ws
        .biojob()
        .args(["call", "--contig", "chr22", "--bam"])
        .arg(&bam)
        .arg("--reference")
        .arg(dir.join("ref.fa"))
        .arg("--output-prefix")
        .arg(ws.out())
        .env("SAMPLE_ID", "NA12878")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let ours = records(&ws.out().join("NA12878.call.0001.vcf.gz"));
    assert_eq!(ours, records(&hand_vcf));
    // Among them an indel with lowercase bases.
    assert!(
        ours.iter().any(|record| {
            let fields: Vec<&str> = record.split('\t').collect();
            fields[7].starts_with("INDEL") && fields[3].chars().any(|c| c.is_ascii_lowercase())
        }),
        "{ours:?}"
    );
}

/// A bwa index in S3 beside the FASTA, built from an earlier version of it (same contigs and
/// lengths), is refused (11) rather than rebuilt in scratch: its stale objects would stay in
/// the bucket for every later job.
#[test]
fn a_stale_bwa_index_staged_from_s3_is_refused() {
    use biojob_testkit::{TEST_BUCKET, s3_server};
    let server = s3_server();
    let ws = Workspace::new();
    let work = camino::Utf8Path::from_path(ws.path()).unwrap();
    let dir = ws.path().join("reference");
    reference_in(&dir);
    let base = stale_bwa_index(&dir);
    let prefix = format!(
        "s3://{TEST_BUCKET}/stale-index-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    // The FASTA first: the index objects are then not older than it.
    for name in [
        "ref.fa",
        "ref.fa.fai",
        "ref.fa.amb",
        "ref.fa.ann",
        "ref.fa.bwt",
        "ref.fa.pac",
        "ref.fa.sa",
    ] {
        let path = camino::Utf8PathBuf::from_path_buf(dir.join(name)).unwrap();
        crate::s3_jobs::put(server, work, &path, &format!("{prefix}/{name}"));
    }
    let data = testdata();
    let output = crate::s3_jobs::biojob(server, &server.endpoint, work)
        .args(["align", "--sample", "NA12878", "--reference"])
        .arg(format!("{prefix}/ref.fa"))
        .arg("--fastq-1")
        .arg(data.join("NA12878_R1.fastq.gz"))
        .arg("--fastq-2")
        .arg(data.join("NA12878_R2.fastq.gz"))
        .arg("--output-prefix")
        .arg(format!("{prefix}/out"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    let lines = error_lines(&output);
    let original = char::from(std::fs::read(dir.join("ref.fa")).unwrap()[105 + 16 * 61 + 39]);
    let edited = if original == 'A' { 'C' } else { 'A' };
    assert!(
        lines[0].starts_with("error: align failed: ")
            && lines[0].ends_with(&format!(
                "/ref.fa: base {base} of contig chr20 is {original} in the FASTA, {edited} in the \
                 index"
            )),
        "{lines:?}"
    );
    assert_eq!(lines.last().unwrap(), "exit class: input_invalid (11)");
}

/// Hashing a large FASTQ pair (for the cache key) takes long; a SIGTERM meanwhile ends the job
/// within the grace period, with the terminated class, and leaves no scratch behind.
#[test]
fn sigterm_while_the_inputs_are_hashed_ends_the_job_within_the_grace_period() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let ws = Workspace::new();
    // Two sparse 3 GiB files: hashing them takes tens of seconds, reading them costs no disk.
    let fastqs: Vec<PathBuf> = ["big_R1.fastq", "big_R2.fastq"]
        .iter()
        .map(|name| ws.path().join(name))
        .collect();
    for fastq in &fastqs {
        std::fs::File::create(fastq)
            .unwrap()
            .set_len(3 << 30)
            .unwrap();
    }
    let log = ws.path().join("align.stderr");
    let mut child = ws
        .biojob()
        .args(["align", "--sample", "NA12878", "--reference"])
        .arg(testdata().join("ref.fa"))
        .arg("--fastq-1")
        .arg(&fastqs[0])
        .arg("--fastq-2")
        .arg(&fastqs[1])
        .arg("--output-prefix")
        .arg(ws.out())
        .env("BIOJOB_GRACE_SECONDS", "5")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let give_up = Instant::now() + Duration::from_secs(120);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("hashing the inputs for the cache key")
    {
        assert!(Instant::now() < give_up, "hashing never started");
        assert!(child.try_wait().unwrap().is_none(), "biojob ended early");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(1));
    kill(
        Pid::from_raw(i32::try_from(child.id()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if sent.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("still hashing a minute after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let elapsed = sent.elapsed();
    let text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(143), "{text}");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}: {text}");
    assert!(
        text.contains("error: align failed: hashing the inputs cancelled: SIGTERM received\n"),
        "{text}"
    );
    assert_eq!(
        Workspace::files(&ws.path().join("scratch")),
        Vec::<String>::new()
    );
}

/// The start of the hint for an S3 request refused with HTTP 403.
const CREDENTIALS: &str = "check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
                           AWS_PROFILE, or the job role under AWS Batch) and that the bucket \
                           policy and the job role";

/// HTTP 403 (a wrong secret key) is a usage error (2), which AWS Batch does not retry: running
/// the job again cannot make the credentials right.
#[test]
fn an_s3_request_refused_with_403_is_a_usage_error_not_retried() {
    use biojob_testkit::{TEST_BUCKET, s3_server};
    let server = s3_server();
    let ws = Workspace::new();
    let work = camino::Utf8Path::from_path(ws.path()).unwrap();
    let source = work.join("source.txt");
    std::fs::write(&source, "denied\n").unwrap();
    let uri = format!(
        "s3://{TEST_BUCKET}/denied-{}/source.txt",
        std::process::id()
    );
    crate::s3_jobs::put(server, work, &source, &uri);

    let wrong_secret = format!("{}x", server.secret_key);
    let output = crate::s3_jobs::biojob(server, &server.endpoint, work)
        .env("AWS_SECRET_ACCESS_KEY", &wrong_secret)
        .args(["stage", "get", &uri])
        .arg(work.join("copy.txt"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            format!("error: reading metadata of {uri}: access denied: HEAD: HTTP 403"),
            format!(
                "hint: {CREDENTIALS} allow s3:GetObject (and s3:ListBucket: without it a \
                     missing key is answered with 403)"
            ),
            "exit class: usage (2)".to_owned(),
        ]
    );
    assert!(!work.join("copy.txt").exists());

    let output = crate::s3_jobs::biojob(server, &server.endpoint, work)
        .env("AWS_SECRET_ACCESS_KEY", &wrong_secret)
        .args(["stage", "put"])
        .arg(&source)
        .arg(format!("{uri}.copy"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: uploading {uri}.copy: access denied: PutObject: SignatureDoesNotMatch \
                 (HTTP 403): The request signature we calculated does not match the signature \
                 you provided. Check your key and signing method."
            ),
            format!(
                "hint: {CREDENTIALS} allow s3:PutObject (and kms:GenerateDataKey with SSE-KMS)"
            ),
            "exit class: usage (2)".to_owned(),
        ]
    );
}

/// An S3 endpoint on loopback that accepts connections and never answers (a server that hangs,
/// a network that drops the replies): its URL, and a receiver told of each connection.
fn silent_s3_endpoint() -> (String, std::sync::mpsc::Receiver<()>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream);
            if sender.send(()).is_err() {
                break;
            }
        }
    });
    (url, receiver)
}

/// Sends SIGTERM to `child` once `waiting` says it waits on S3; its exit status, the time from
/// the signal to the exit, and its stderr (written to `log`).
pub(crate) fn terminate_while_waiting(
    mut child: std::process::Child,
    waiting: impl Fn() -> bool,
    log: &Path,
) -> (std::process::ExitStatus, Duration, String) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let give_up = Instant::now() + Duration::from_secs(60);
    while !waiting() {
        assert!(Instant::now() < give_up, "biojob never reached S3");
        assert!(
            child.try_wait().unwrap().is_none(),
            "biojob ended early: {}",
            std::fs::read_to_string(log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(child.try_wait().unwrap().is_none(), "biojob ended early");
    kill(
        Pid::from_raw(i32::try_from(child.id()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    let sent = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if sent.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!(
                "still waiting on S3 a minute after SIGTERM: {}",
                std::fs::read_to_string(log).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (
        status,
        sent.elapsed(),
        std::fs::read_to_string(log).unwrap(),
    )
}

/// A server that never answers held a job for as long as the connection lasted, SIGTERM or
/// not: every wait on S3 now ends on a stop (staging in at once), with the terminated class,
/// and the job's scratch is removed.
#[test]
fn sigterm_while_an_s3_server_does_not_answer_ends_the_job_within_the_grace_period() {
    use biojob_testkit::{Fault, FaultProxy, Rule, TEST_BUCKET, s3_server};
    let ws = Workspace::new();

    // Nothing answers at all: `stage get` gives up on its first request.
    let (endpoint, connected) = silent_s3_endpoint();
    let destination = ws.path().join("R1.fastq.gz");
    let log = ws.path().join("stage.stderr");
    let child = ws
        .biojob()
        .args(["stage", "get", "s3://bucket/R1.fastq.gz"])
        .arg(&destination)
        .env("AWS_ENDPOINT_URL", &endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let (status, elapsed, text) =
        terminate_while_waiting(child, || connected.try_recv().is_ok(), &log);
    assert_eq!(status.code(), Some(143), "{text}");
    assert!(elapsed < Duration::from_secs(2), "took {elapsed:?}: {text}");
    assert!(
        text.ends_with(
            "error: downloading s3://bucket/R1.fastq.gz: given up: SIGTERM received\n\
             exit class: terminated (143)\n"
        ),
        "{text}"
    );
    assert!(!destination.exists());
    assert!(!ws.path().join("R1.fastq.gz.partial").exists());

    // The real server answers the metadata requests, and the reads of R1 hang: an align job
    // staging its inputs into scratch ends within the grace period and removes its scratch.
    let server = s3_server();
    let work = camino::Utf8Path::from_path(ws.path()).unwrap();
    let prefix = format!("s3://{TEST_BUCKET}/stalled-{}", std::process::id());
    let data = testdata();
    for name in ["NA12878_R1.fastq.gz", "NA12878_R2.fastq.gz"] {
        let path = camino::Utf8PathBuf::from_path_buf(data.join(name)).unwrap();
        crate::s3_jobs::put(server, work, &path, &format!("{prefix}/{name}"));
    }
    let proxy = FaultProxy::start(&server.endpoint);
    proxy.add(Rule::new("GET", "NA12878_R1.fastq.gz", Fault::Stall).times(1000));
    let log = ws.path().join("align.stderr");
    let child = crate::s3_jobs::biojob(server, &proxy.endpoint, work)
        .args(["align", "--sample", "NA12878", "--reference"])
        .arg(data.join("ref.fa"))
        .arg("--fastq-1")
        .arg(format!("{prefix}/NA12878_R1.fastq.gz"))
        .arg("--fastq-2")
        .arg(format!("{prefix}/NA12878_R2.fastq.gz"))
        .arg("--output-prefix")
        .arg(ws.out())
        .env("BIOJOB_GRACE_SECONDS", "5")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let (status, elapsed, text) =
        terminate_while_waiting(child, || proxy.injected_count(Fault::Stall) > 0, &log);
    assert_eq!(status.code(), Some(143), "{text}");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}: {text}");
    assert_eq!(
        text.lines()
            .filter(|line| line.starts_with("error: ") || line.starts_with("exit class: "))
            .collect::<Vec<_>>(),
        [
            format!(
                "error: align failed: downloading {prefix}/NA12878_R1.fastq.gz: given up: \
                 SIGTERM received"
            )
            .as_str(),
            "exit class: terminated (143)",
        ]
    );
    assert_eq!(
        Workspace::files(&ws.path().join("scratch")),
        Vec::<String>::new()
    );
}

#[test]
fn a_log_filter_that_does_not_parse_is_said_not_ignored() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["chrM"]);
    let output = ws
        .biojob()
        .args(["run", "--dry-run", "--input"])
        .arg(&input)
        .env("BIOJOB_LOG", "nonsense::===")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let warning = stderr(&output)
        .lines()
        .find(|line| line.contains("WARN"))
        .map(|line| line.split_once("WARN ").unwrap().1.to_owned());
    assert_eq!(
        warning.as_deref(),
        Some(
            "BIOJOB_LOG \"nonsense::===\" is not a log filter (error parsing level filter: \
             expected one of \"off\", \"error\", \"warn\", \"info\", \"debug\", \"trace\", or a \
             number 0-5): logging at info"
        )
    );
}
