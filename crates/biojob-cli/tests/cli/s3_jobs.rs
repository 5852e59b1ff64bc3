//! The binary against a real S3-compatible server (SeaweedFS) on loopback: `stage get|put`,
//! `biojob run` with `s3://` prefixes, and the AWS Batch entrypoints driven by the environment
//! only, on the real NA12878 test data (`BIOJOB_TESTDATA`).

use std::io::Read;
use std::process::{Command, Output};

use biojob_testkit::testdata;
use biojob_testkit::{Fault, FaultProxy, Rule, S3Server, TEST_BUCKET, s3_server};
use camino::{Utf8Path, Utf8PathBuf};

const SAMPLE: &str = "NA12878";
const CONTIGS: [&str; 3] = ["chr20", "chr22", "chrM"];

struct Dir {
    _dir: tempfile::TempDir,
    root: Utf8PathBuf,
}

fn tempdir() -> Dir {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(dir.path()).unwrap().to_owned();
    Dir { _dir: dir, root }
}

/// The binary with a clean environment: the server's credentials and endpoint, scratch and
/// cache under `work`, and nothing else from AWS.
pub(crate) fn biojob(server: &S3Server, endpoint: &str, work: &Utf8Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_biojob"));
    for (key, _) in std::env::vars() {
        if key.starts_with("AWS_") || (key.starts_with("BIOJOB_") && key != "BIOJOB_TESTDATA") {
            command.env_remove(key);
        }
    }
    for name in [
        "SAMPLE_ID",
        "REFERENCE_NAME",
        "REFERENCE_PREFIX",
        "REFERENCE",
        "SOURCE_DATA_PREFIX",
        "JOB_OUTPUT_PREFIX",
        "CHROMOSOME",
        "CHROMOSOMES",
        "JOB_WORKFLOW_NAME",
        "JOB_WORKFLOW_EXECUTION_ID",
        "FASTQ_1",
        "FASTQ_2",
    ] {
        command.env_remove(name);
    }
    command
        .envs(server.env())
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("BIOJOB_SCRATCH_DIR", work.join("scratch"))
        .env("BIOJOB_CACHE_DIR", work.join("cache"))
        .env("BIOJOB_THREADS", "2")
        .env("BIOJOB_LOG", "info")
        .env("BIOJOB_S3_PART_SIZE", "5M")
        .env("BIOJOB_S3_RETRY_BASE_DELAY", "10ms");
    command
}

fn run(command: &mut Command) -> Output {
    command.output().unwrap()
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn assert_ok(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
        output.status,
        text(&output.stdout),
        text(&output.stderr)
    );
}

pub(crate) fn put(server: &S3Server, work: &Utf8Path, source: &Utf8Path, uri: &str) {
    let output = run(biojob(server, &server.endpoint, work)
        .args(["stage", "put"])
        .arg(source)
        .arg(uri));
    assert_ok(&output, &format!("stage put {uri}"));
}

pub(crate) fn get(server: &S3Server, work: &Utf8Path, uri: &str, destination: &Utf8Path) {
    let output = run(biojob(server, &server.endpoint, work)
        .args(["stage", "get", uri])
        .arg(destination));
    assert_ok(&output, &format!("stage get {uri}"));
}

/// The records (non-header lines) of a gzipped VCF.
fn records(path: &Utf8Path) -> Vec<String> {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

fn input_json(source: &str, output: &str) -> String {
    serde_json::json!({"params": {
        "queue": "local",
        "environment": {"REFERENCE_NAME": "ref", "SAMPLE_ID": SAMPLE,
                        "SOURCE_DATA_PREFIX": source, "JOB_OUTPUT_PREFIX": output,
                        "JOB_AWS_CLI_PATH": "/opt/miniconda/bin"},
        "chromosomes": CONTIGS}})
    .to_string()
}

/// The final VCF's records from a local run of the same input.
fn local_records(work: &Utf8Path) -> Vec<String> {
    let server = s3_server();
    let input = work.join("local.json");
    let testdata = testdata();
    std::fs::write(
        &input,
        input_json(testdata.as_str(), work.join("local-results").as_str()),
    )
    .unwrap();
    let output = run(biojob(server, &server.endpoint, work)
        .args(["run", "--run-id", "local", "--input"])
        .arg(&input));
    assert_ok(&output, "local run");
    records(&work.join(format!("local-results/{SAMPLE}/local/{SAMPLE}.vcf.gz")))
}

/// The places of one Batch execution on the test server, under `s3://TEST_BUCKET/<name>/`:
/// the inputs uploaded to `samples/` (with bwa's index), the output prefix `results`, and
/// the run prefix of [`step_command`]'s workflow `germline`, execution `exec-1`.
struct Execution {
    source: String,
    output_prefix: String,
    run_prefix: String,
}

impl Execution {
    fn upload(server: &S3Server, work: &Utf8Path, name: &str) -> Execution {
        let source = format!("s3://{TEST_BUCKET}/{name}/samples");
        upload_inputs(server, work, &source, true);
        let output_prefix = format!("s3://{TEST_BUCKET}/{name}/results");
        let run_prefix = format!("{output_prefix}/germline/exec-1");
        Execution {
            source,
            output_prefix,
            run_prefix,
        }
    }

    /// [`step_command`]'s prefixes: the source, the output prefix and the execution.
    fn prefixes(&self) -> (&str, &str, &str) {
        (&self.source, &self.output_prefix, "exec-1")
    }
}

/// Uploads the test data (FASTQs, FASTA, `.fai`, and a bwa index built here) under `prefix`.
fn upload_inputs(server: &S3Server, work: &Utf8Path, prefix: &str, bwa_index: bool) {
    let testdata = testdata();
    for name in [
        "ref.fa",
        "ref.fa.fai",
        "NA12878_R1.fastq.gz",
        "NA12878_R2.fastq.gz",
    ] {
        put(
            server,
            work,
            &testdata.join(name),
            &format!("{prefix}/{name}"),
        );
    }
    if bwa_index {
        let index = work.join("bwa-index");
        std::fs::create_dir_all(&index).unwrap();
        std::fs::copy(testdata.join("ref.fa"), index.join("ref.fa")).unwrap();
        let status = Command::new("bwa")
            .arg("index")
            .arg(index.join("ref.fa"))
            .output()
            .unwrap();
        assert!(status.status.success(), "{}", text(&status.stderr));
        for extension in ["amb", "ann", "bwt", "pac", "sa"] {
            put(
                server,
                work,
                &index.join(format!("ref.fa.{extension}")),
                &format!("{prefix}/ref.fa.{extension}"),
            );
        }
    }
}

#[test]
fn stage_put_and_get_round_trip_keys_byte_exactly() {
    let server = s3_server();
    let dir = tempdir();
    let source = dir.root.join("in file (1).bin");
    let bytes: Vec<u8> = (0..6_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(&source, &bytes).unwrap();
    let uri = format!("s3://{TEST_BUCKET}/stage/ü dir/a+b=(c)&d#e?f.bin");
    let output = run(biojob(server, &server.endpoint, &dir.root)
        .args(["stage", "put"])
        .arg(&source)
        .arg(&uri));
    assert_ok(&output, "stage put");
    let stdout = text(&output.stdout);
    assert!(
        stdout.starts_with(&format!("{source} -> {uri}: 6000000 bytes in ")),
        "{stdout}"
    );
    assert!(stdout.trim_end().ends_with("-2"), "{stdout}");

    let back = dir.root.join("back");
    std::fs::create_dir_all(&back).unwrap();
    let output = run(biojob(server, &server.endpoint, &dir.root)
        .args(["stage", "get", &uri])
        .arg(&back));
    assert_ok(&output, "stage get");
    assert_eq!(
        std::fs::read(back.join("a+b=(c)&d#e?f.bin")).unwrap(),
        bytes
    );
    assert_eq!(
        std::fs::read_dir(&back).unwrap().count(),
        1,
        "no .partial left"
    );
}

#[test]
fn stage_get_of_a_missing_object_exits_with_the_input_class() {
    let server = s3_server();
    let dir = tempdir();
    let output = run(biojob(server, &server.endpoint, &dir.root)
        .args(["stage", "get", &format!("s3://{TEST_BUCKET}/nowhere/x.bam")])
        .arg(dir.root.join("x.bam")));
    assert_eq!(output.status.code(), Some(11), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains("error: s3://biojob-test/nowhere/x.bam does not exist"),
        "{}",
        text(&output.stderr)
    );
    assert!(!dir.root.join("x.bam").exists());
    assert!(!dir.root.join("x.bam.partial").exists());
}

/// `samtools view BAM REGION`: the records, as SAM lines.
fn view(bam: &Utf8Path, region: &str) -> Vec<String> {
    let output = Command::new("samtools")
        .args(["view", bam.as_str(), region])
        .output()
        .unwrap();
    assert_ok(&output, &format!("samtools view {bam} {region}"));
    text(&output.stdout).lines().map(str::to_owned).collect()
}

/// The numbers N and M of "fetched N of M bytes" in `stage get --regions`' line.
fn fetched_of(stdout: &str) -> (u64, u64) {
    let rest = stdout.split("fetched ").nth(1).unwrap();
    let mut words = rest.split_whitespace();
    let fetched = words.next().unwrap().parse().unwrap();
    assert_eq!(words.next(), Some("of"));
    (fetched, words.next().unwrap().parse().unwrap())
}

#[test]
fn stage_get_with_regions_stages_their_records_only() {
    let server = s3_server();
    let dir = tempdir();
    let hand = crate::support::hand_run();
    let bam = Utf8PathBuf::from_path_buf(hand.dir.join("hand.bam")).unwrap();
    let size = std::fs::metadata(&bam).unwrap().len();
    let uri = format!("s3://{TEST_BUCKET}/stage-regions/NA12878 (1).bam");
    put(server, &dir.root, &bam, &uri);
    put(
        server,
        &dir.root,
        &Utf8PathBuf::from(format!("{bam}.bai")),
        &format!("{uri}.bai"),
    );
    let out = dir.root.join("out");
    std::fs::create_dir_all(&out).unwrap();
    let output = run(biojob(server, &server.endpoint, &dir.root)
        .args(["stage", "get", "--regions", "chr20:140,001-141,000"])
        .args(["-r", "chrM", &uri])
        .arg(&out));
    assert_ok(&output, "stage get --regions");
    let slice = out.join("NA12878 (1).bam");
    let stdout = text(&output.stdout);
    assert!(
        stdout.starts_with(&format!(
            "{uri} chr20:140,001-141,000,chrM -> {slice} and {slice}.bai: fetched "
        )),
        "{stdout}"
    );
    assert!(stdout.contains(" byte ranges) in "), "{stdout}");
    let (fetched, of) = fetched_of(&stdout);
    assert_eq!(of, size);
    assert!(fetched * 5 < size, "{stdout}");
    for region in ["chr20:140001-141000", "chrM", "chrM:150-160"] {
        let records = view(&slice, region);
        assert!(!records.is_empty(), "{region}");
        assert_eq!(records, view(&bam, region), "{region}");
    }
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["NA12878 (1).bam", "NA12878 (1).bam.bai"]);

    // A contig the BAM does not have: a usage error naming the contigs it has.
    let output = run(biojob(server, &server.endpoint, &dir.root)
        .args(["stage", "get", "--regions", "20:1-1000", &uri])
        .arg(dir.root.join("x.bam")));
    assert_eq!(output.status.code(), Some(2), "{}", text(&output.stderr));
    assert!(
        text(&output.stderr).contains(&format!(
            "error: {uri}: region \"20:1-1000\": no contig \"20\" in the header (contigs: \
             chr20, chr22, chrM)"
        )),
        "{}",
        text(&output.stderr)
    );
    assert!(!dir.root.join("x.bam").exists());

    // Without an index beside it: the whole BAM, with a warning saying why.
    let alone = format!("s3://{TEST_BUCKET}/stage-regions/alone.bam");
    put(server, &dir.root, &bam, &alone);
    let whole = dir.root.join("whole.bam");
    let output = run(biojob(server, &server.endpoint, &dir.root)
        .args(["stage", "get", "--regions", "chrM", &alone])
        .arg(&whole));
    assert_ok(&output, "stage get --regions without an index");
    let reason = format!("{alone}.bai does not exist");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("the BAM's index cannot be used; staging the whole BAM")
            && stderr.contains(&reason),
        "{stderr}"
    );
    let stdout = text(&output.stdout);
    assert!(
        stdout.contains(&format!("(the whole object: {reason})")),
        "{stdout}"
    );
    assert_eq!(std::fs::read(&whole).unwrap(), std::fs::read(&bam).unwrap());
    assert_eq!(view(&whole, "chrM"), view(&bam, "chrM"));
    assert!(Utf8PathBuf::from(format!("{whole}.bai")).is_file());
}

#[test]
fn a_staging_fault_past_the_retry_budget_exits_with_the_staging_class() {
    let server = s3_server();
    let dir = tempdir();
    let source = dir.root.join("small.bin");
    std::fs::write(&source, b"0123456789").unwrap();
    let uri = format!("s3://{TEST_BUCKET}/budget/small.bin");
    put(server, &dir.root, &source, &uri);
    let proxy = FaultProxy::start(&server.endpoint);
    proxy.add(
        biojob_testkit::Rule::new("GET", "budget/small.bin", biojob_testkit::Fault::SlowDown)
            .times(100),
    );
    let destination = dir.root.join("out.bin");
    let output = run(biojob(server, &proxy.endpoint, &dir.root)
        .args(["--s3-max-attempts", "3", "stage", "get", &uri])
        .arg(&destination));
    assert_eq!(output.status.code(), Some(10), "{}", text(&output.stderr));
    assert_eq!(proxy.injected().len(), 3);
    assert!(!destination.exists());
    assert!(!dir.root.join("out.bin.partial").exists());

    let proxy = FaultProxy::start(&server.endpoint);
    proxy.add(
        biojob_testkit::Rule::new("PUT", "budget/up.bin", biojob_testkit::Fault::SlowDown)
            .times(100),
    );
    let output = run(biojob(server, &proxy.endpoint, &dir.root)
        .args(["--s3-max-attempts", "2", "stage", "put"])
        .arg(&source)
        .arg(format!("s3://{TEST_BUCKET}/budget/up.bin")));
    assert_eq!(output.status.code(), Some(30), "{}", text(&output.stderr));
    assert_eq!(proxy.injected().len(), 2);
}

#[test]
fn the_pipeline_crate_does_not_depend_on_the_aws_sdk() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["tree", "--offline", "-p", "biojob-pipeline", "-e", "normal"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert_ok(&output, "cargo tree");
    let tree = text(&output.stdout);
    assert!(tree.starts_with("biojob-pipeline v"), "{tree}");
    assert!(!tree.contains("aws-sdk"), "{tree}");
    assert!(!tree.contains("aws-config"), "{tree}");
}

#[test]
fn the_whole_workflow_reads_and_writes_s3_and_matches_a_local_run() {
    let server = s3_server();
    let dir = tempdir();
    let prefix = format!("s3://{TEST_BUCKET}/run e2e (1)/samples");
    upload_inputs(server, &dir.root, &prefix, false);
    let results = format!("s3://{TEST_BUCKET}/run e2e (1)/results");
    let input = dir.root.join("input.json");
    std::fs::write(&input, input_json(&prefix, &results)).unwrap();
    let output = run(biojob(server, &server.endpoint, &dir.root)
        .args(["run", "--run-id", "s3run", "--input"])
        .arg(&input));
    assert_ok(&output, "biojob run on S3");
    let vcf_uri = format!("{results}/{SAMPLE}/s3run/{SAMPLE}.vcf.gz");
    assert!(
        text(&output.stdout).contains(&format!("VCF: {vcf_uri}")),
        "{}",
        text(&output.stdout)
    );
    let vcf = dir.root.join("s3.vcf.gz");
    get(server, &dir.root, &vcf_uri, &vcf);
    for name in [
        format!("{SAMPLE}.vcf.gz.tbi"),
        format!("{SAMPLE}.align.bam"),
        format!("{SAMPLE}.align.bam.bai"),
        format!("{SAMPLE}.call.0000.vcf.gz"),
        "manifest.json".to_owned(),
    ] {
        get(
            server,
            &dir.root,
            &format!("{results}/{SAMPLE}/s3run/{name}"),
            &dir.root.join("check"),
        );
    }
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.root.join("check")).unwrap()).unwrap();
    assert_eq!(manifest["status"], "succeeded");
    assert_eq!(manifest["inputs"]["reference"], format!("{prefix}/ref.fa"));
    let s3_records = records(&vcf);
    assert!(!s3_records.is_empty());
    assert_eq!(s3_records, local_records(&dir.root));
}

#[test]
fn batch_entrypoints_driven_by_the_environment_align_call_gather_on_s3() {
    let server = s3_server();
    let dir = tempdir();
    let execution = Execution::upload(server, &dir.root, "batch");
    let run_prefix = &execution.run_prefix;
    let job = |step: &str, endpoint: &str, extra: &[(&str, &str)]| {
        // The reference design's key for its AWS CLI, which biojob accepts and leaves alone.
        let mut command = step_command(
            server,
            endpoint,
            &dir.root,
            step,
            execution.prefixes(),
            extra,
        );
        let output = run(command.env("JOB_AWS_CLI_PATH", "/opt/miniconda/bin"));
        let stderr = text(&output.stderr);
        assert!(
            !stderr.contains(&server.secret_key),
            "{step}: the secret key was printed"
        );
        output
    };
    let json_logs = |output: &Output, step: &str| {
        let stderr = text(&output.stderr);
        let lines: Vec<&str> = stderr.lines().collect();
        assert!(!lines.is_empty(), "{step}: no logs");
        for line in lines {
            let value: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("{step}: not a JSON log line ({e}): {line}"));
            // A tracing event, or the step's CloudWatch embedded-metric-format line.
            assert!(
                value.get("level").is_some() || value.get("_aws").is_some(),
                "{line}"
            );
        }
    };

    let align = job("align", &server.endpoint, &[]);
    assert_ok(&align, "align");
    json_logs(&align, "align");

    // Call jobs go through a (fault-free) proxy that records what they request.
    let proxy = FaultProxy::start(&server.endpoint);
    for contig in CONTIGS {
        let call = job("call", &proxy.endpoint, &[("CHROMOSOME", contig)]);
        assert_ok(&call, &format!("call {contig}"));
        json_logs(&call, "call");
    }
    let requested: Vec<String> = proxy
        .requests()
        .iter()
        .map(|head| head.lines().next().unwrap_or("").to_owned())
        .collect();
    for extension in ["amb", "ann", "bwt", "pac", "sa"] {
        assert!(
            requested
                .iter()
                .all(|line| !line.contains(&format!("ref.fa.{extension}"))),
            "a call job touched the bwa index: {requested:#?}"
        );
    }
    assert!(
        requested
            .iter()
            .any(|line| line.starts_with("GET ") && line.contains("/ref.fa.fai")),
        "{requested:#?}"
    );

    let gather = job(
        "gather",
        &server.endpoint,
        &[("CHROMOSOMES", "[\"chr20\",\"chr22\",\"chrM\"]")],
    );
    assert_ok(&gather, "gather");
    json_logs(&gather, "gather");

    let vcf = dir.root.join("batch.vcf.gz");
    get(
        server,
        &dir.root,
        &format!("{run_prefix}/{SAMPLE}.vcf.gz"),
        &vcf,
    );
    let manifest = dir.root.join("align.manifest.json");
    get(
        server,
        &dir.root,
        &format!("{run_prefix}/{SAMPLE}.align.manifest.json"),
        &manifest,
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let labels: Vec<String> = manifest["task"]["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        labels
            .iter()
            .all(|l| !l.contains("bwa-index") && !l.contains("faidx")),
        "the staged indexes were rebuilt: {labels:?}"
    );
    for (index, _) in CONTIGS.iter().enumerate() {
        get(
            server,
            &dir.root,
            &format!("{run_prefix}/{SAMPLE}.call.{index:04}.manifest.json"),
            &dir.root.join("call.manifest.json"),
        );
    }
    let s3_records = records(&vcf);
    assert!(!s3_records.is_empty());
    assert_eq!(s3_records, local_records(&dir.root));

    // A failing job still stages out its logs and manifest, and exits with its class.
    let failed = job("call", &server.endpoint, &[("CHROMOSOME", "chr99")]);
    assert_eq!(failed.status.code(), Some(11), "{}", text(&failed.stderr));
    let manifest = dir.root.join("failed.manifest.json");
    get(
        server,
        &dir.root,
        &format!("{run_prefix}/{SAMPLE}.call.manifest.json"),
        &manifest,
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(manifest["task"]["status"], "failed");
    assert_eq!(manifest["task"]["exit_class"], "input_invalid");

    // A key that would escape scratch is refused with the input class, before any download.
    let refused = job(
        "align",
        &server.endpoint,
        &[("FASTQ_1", "s3://biojob-test/batch/../../etc/passwd")],
    );
    assert_eq!(refused.status.code(), Some(11), "{}", text(&refused.stderr));
}

#[test]
fn an_align_job_refuses_a_bwa_index_on_s3_that_lists_other_contigs_than_the_fasta() {
    let server = s3_server();
    let dir = tempdir();
    let prefix = format!("s3://{TEST_BUCKET}/stale-index/samples");
    upload_inputs(server, &dir.root, &prefix, false);
    // The index of a copy whose last contig is named chrMT, uploaded beside the FASTA.
    let index = dir.root.join("other-index");
    std::fs::create_dir_all(&index).unwrap();
    let fasta = std::fs::read_to_string(testdata().join("ref.fa")).unwrap();
    std::fs::write(index.join("ref.fa"), fasta.replace(">chrM ", ">chrMT ")).unwrap();
    let status = Command::new("bwa")
        .arg("index")
        .arg(index.join("ref.fa"))
        .output()
        .unwrap();
    assert!(status.status.success(), "{}", text(&status.stderr));
    for extension in ["amb", "ann", "bwt", "pac", "sa"] {
        put(
            server,
            &dir.root,
            &index.join(format!("ref.fa.{extension}")),
            &format!("{prefix}/ref.fa.{extension}"),
        );
    }
    let output = run(biojob(server, &server.endpoint, &dir.root)
        .arg("align")
        .env("SAMPLE_ID", SAMPLE)
        .env("REFERENCE_NAME", "ref")
        .env("SOURCE_DATA_PREFIX", &prefix)
        .env(
            "JOB_OUTPUT_PREFIX",
            format!("s3://{TEST_BUCKET}/stale-index/results"),
        ));
    assert_eq!(output.status.code(), Some(11), "{}", text(&output.stderr));
    let expected = format!(
        "error: align failed: the bwa index {prefix}/ref.fa.ann does not belong to the FASTA {prefix}/ref.fa: contig 3 is chrMT of 16571 bases in the index, chrM of 16571 bases in the FASTA"
    );
    let stderr = text(&output.stderr);
    assert!(stderr.lines().any(|line| line == expected), "{stderr}");
}

/// The reference's file names (after `samples/`) that the requests through a proxy asked for
/// with `method`, sorted, without repeats.
fn reference_files_requested(proxy: &FaultProxy, method: &str) -> Vec<String> {
    let mut names: Vec<String> = proxy
        .requests()
        .iter()
        .filter_map(|head| {
            let mut words = head.lines().next()?.split_whitespace();
            (words.next()? == method).then_some(())?;
            let target = words.next()?.split('?').next()?;
            let name = target.rsplit_once("/samples/")?.1;
            name.starts_with("ref.fa").then(|| name.to_owned())
        })
        .collect();
    names.sort();
    names.dedup();
    names
}

#[test]
fn an_align_job_with_bwa_mem2_stages_its_index_from_s3_and_builds_none() {
    let server = s3_server();
    let dir = tempdir();
    let prefix = format!("s3://{TEST_BUCKET}/mem2-index/samples");
    // bwa's index and bwa-mem2's side by side, as `prepare-reference` leaves them.
    upload_inputs(server, &dir.root, &prefix, true);
    let index = dir.root.join("bwa-mem2-index");
    std::fs::create_dir_all(&index).unwrap();
    std::fs::copy(testdata().join("ref.fa"), index.join("ref.fa")).unwrap();
    let built = Command::new("bwa-mem2")
        .arg("index")
        .arg(index.join("ref.fa"))
        .output()
        .unwrap();
    assert!(built.status.success(), "{}", text(&built.stderr));
    for suffix in [".0123", ".bwt.2bit.64"] {
        put(
            server,
            &dir.root,
            &index.join(format!("ref.fa{suffix}")),
            &format!("{prefix}/ref.fa{suffix}"),
        );
    }
    let output_prefix = format!("s3://{TEST_BUCKET}/mem2-index/results");
    let proxy = FaultProxy::start(&server.endpoint);
    let output = step_job(
        server,
        &proxy.endpoint,
        &dir.root,
        "align",
        (&prefix, &output_prefix, "exec-1"),
        &[("BIOJOB_ALIGNER", "bwa-mem2")],
    );
    assert_ok(&output, "align with bwa-mem2");
    // The FASTA, its .fai and bwa-mem2's five index files are downloaded; bwa's own (.bwt,
    // .sa) are not.
    assert_eq!(
        reference_files_requested(&proxy, "GET"),
        [
            "ref.fa",
            "ref.fa.0123",
            "ref.fa.amb",
            "ref.fa.ann",
            "ref.fa.bwt.2bit.64",
            "ref.fa.fai",
            "ref.fa.pac"
        ]
    );
    let manifest = dir.root.join("align.manifest.json");
    get(
        server,
        &dir.root,
        &format!("{output_prefix}/germline/exec-1/{SAMPLE}.align.manifest.json"),
        &manifest,
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    let labels: Vec<&str> = manifest["task"]["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["bwa-mem2-mem", "samtools-sort"]);
    let tools: Vec<&str> = manifest["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tool"].as_str().unwrap())
        .collect();
    assert_eq!(tools, ["bwa-mem2", "samtools", "bcftools"]);
}

/// The records of a gzipped FASTQ as 4-line strings.
fn fastq_records(path: &Utf8Path) -> Vec<String> {
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    lines.chunks(4).map(|record| record.join("\n")).collect()
}

/// Files under `dir`, recursively, by name.
fn file_names(dir: &Utf8Path) -> Vec<String> {
    let mut names = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let path = Utf8PathBuf::try_from(entry.path()).unwrap();
            if entry.file_type().unwrap().is_dir() {
                pending.push(path);
            } else {
                names.push(path.file_name().unwrap().to_owned());
            }
        }
    }
    names
}

#[test]
fn the_split_job_streams_s3_fastqs_into_chunks_and_a_damaged_stream_publishes_nothing() {
    let server = s3_server();
    let dir = tempdir();
    let testdata = testdata();
    let data = format!("s3://{TEST_BUCKET}/split-stream/data");
    for name in ["NA12878_R1.fastq.gz", "NA12878_R2.fastq.gz"] {
        put(
            server,
            &dir.root,
            &testdata.join(name),
            &format!("{data}/{name}"),
        );
    }
    let results = format!("s3://{TEST_BUCKET}/split-stream/results");
    let split = |endpoint: &str, execution: &str| {
        run(biojob(server, endpoint, &dir.root)
            .args(["split", "--keep-scratch"])
            .env("SAMPLE_ID", SAMPLE)
            .env("SOURCE_DATA_PREFIX", &data)
            .env("JOB_OUTPUT_PREFIX", &results)
            .env("JOB_WORKFLOW_NAME", "wf")
            .env("JOB_WORKFLOW_EXECUTION_ID", execution)
            .env("CHUNKS", "3")
            .env("BIOJOB_ALIGN_CHUNK_PAIRS", "1000"))
    };
    let output = split(&server.endpoint, "streamed");
    assert_ok(&output, "split");
    // The FASTQs were streamed in and the chunks uploaded as they were compressed: the kept
    // scratch holds neither an input copy nor a chunk nor a part (split runs no tool, so it
    // has no log either).
    let scratch = file_names(&dir.root.join("scratch"));
    assert_eq!(scratch, [".lock"]);
    // What it streamed in counts as staged in (the run's cost report reads it).
    let manifest = step_manifest(
        server,
        &dir.root,
        &format!("{results}/wf/streamed"),
        &format!("{SAMPLE}.split.manifest.json"),
    );
    let fastq_bytes: u64 = ["NA12878_R1.fastq.gz", "NA12878_R2.fastq.gz"]
        .iter()
        .map(|name| std::fs::metadata(testdata.join(name)).unwrap().len())
        .sum();
    assert_eq!(
        manifest["task"]["bytes_staged_in"].as_u64(),
        Some(fastq_bytes)
    );
    // Blocks of 1,000 pairs dealt in turn to 3 chunks give back the input, in order.
    for (mate, name) in [("R1", "NA12878_R1.fastq.gz"), ("R2", "NA12878_R2.fastq.gz")] {
        let chunks: Vec<Vec<String>> = (0..3)
            .map(|chunk| {
                let local = dir.root.join(format!("chunk{chunk}_{mate}.fastq.gz"));
                get(
                    server,
                    &dir.root,
                    &format!("{results}/wf/streamed/NA12878.split.{chunk:04}_{mate}.fastq.gz"),
                    &local,
                );
                fastq_records(&local)
            })
            .collect();
        let mut dealt = Vec::new();
        let mut blocks: Vec<_> = chunks.iter().map(|records| records.chunks(1000)).collect();
        'deal: loop {
            for chunk in &mut blocks {
                match chunk.next() {
                    Some(block) => dealt.extend_from_slice(block),
                    None => break 'deal,
                }
            }
        }
        let input = fastq_records(&testdata.join(name));
        assert!(input.len() > 6000, "{} records", input.len());
        assert_eq!(dealt.len(), input.len());
        assert!(
            dealt == input,
            "{mate}: the chunks do not deal back to the input"
        );
    }

    // A byte of R2 flipped on the way (inside the gzip stream, where the decoder trips before
    // the end): the transfer check still runs, and the job fails with the staging class
    // (retryable), publishing no chunk.
    let proxy = FaultProxy::start(&server.endpoint);
    proxy.add(biojob_testkit::Rule::new(
        "GET",
        "split-stream/data/NA12878_R2",
        biojob_testkit::Fault::CorruptResponseByte(4000),
    ));
    let output = split(&proxy.endpoint, "damaged");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(10), "{stderr}");
    assert_eq!(proxy.injected().len(), 1);
    assert!(
        stderr.contains(&format!(
            "{data}/NA12878_R2.fastq.gz: checksum mismatch: S3 holds crc32c:"
        )),
        "{stderr}"
    );
    let listing = run(biojob(server, &server.endpoint, &dir.root).args([
        "stage",
        "get",
        &format!("{results}/wf/damaged/NA12878.split.0000_R1.fastq.gz"),
        dir.root.join("nothing").as_str(),
    ]));
    assert_eq!(listing.status.code(), Some(11), "{}", text(&listing.stderr));
    assert_eq!(
        requests_matching(&proxy, "POST", "?uploads"),
        requests_matching(&proxy, "DELETE", "AbortMultipartUpload"),
        "every upload started was aborted"
    );

    // An upload that fails past its retries: the job fails with the output staging class
    // (retryable) and, the chunks being completed only once every part is stored, no chunk
    // object appears; the step manifest says what failed.
    let proxy = FaultProxy::start(&server.endpoint);
    proxy.add(
        biojob_testkit::Rule::new(
            "PUT",
            "NA12878.split.0001_R1.fastq.gz?x-id=UploadPart&partNumber=1&",
            biojob_testkit::Fault::SlowDown,
        )
        .times(1_000),
    );
    let output = split(&proxy.endpoint, "refused");
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(30), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "uploading {results}/wf/refused/NA12878.split.0001_R1.fastq.gz: part 1 (bytes 0+"
        )) && stderr.contains("SlowDown (HTTP 503)"),
        "{stderr}"
    );
    // Read 1's chunks 0 and 1 at least were started (each file's chunks are flushed in
    // turn, read 2's alongside); every one started was aborted.
    let started = requests_matching(&proxy, "POST", "?uploads");
    assert!(started >= 2, "{:#?}", proxy.requests());
    assert_eq!(
        requests_matching(&proxy, "DELETE", "AbortMultipartUpload"),
        started
    );
    assert_eq!(
        requests_matching(&proxy, "POST", "uploadId="),
        0,
        "nothing completed"
    );
    for chunk in 0..3 {
        for mate in ["R1", "R2"] {
            let missing = run(biojob(server, &server.endpoint, &dir.root).args([
                "stage",
                "get",
                &format!("{results}/wf/refused/NA12878.split.{chunk:04}_{mate}.fastq.gz"),
                dir.root.join("nothing").as_str(),
            ]));
            assert_eq!(missing.status.code(), Some(11), "{}", text(&missing.stderr));
        }
    }
    let manifest = dir.root.join("refused.manifest.json");
    get(
        server,
        &dir.root,
        &format!("{results}/wf/refused/NA12878.split.manifest.json"),
        &manifest,
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(manifest["task"]["status"], "failed");
    assert_eq!(manifest["task"]["exit_class"], "output_staging");
    assert_eq!(manifest["task"]["outputs"], serde_json::json!([]));

    // SIGTERM while read 2's stream hangs: the job ends with 143, completes no chunk and
    // leaves nothing in scratch.
    let proxy = FaultProxy::start(&server.endpoint);
    proxy.add(
        biojob_testkit::Rule::new("GET", "NA12878_R2.fastq.gz", biojob_testkit::Fault::Stall)
            .times(1_000),
    );
    let scratch_before = file_names(&dir.root.join("scratch"));
    let mut command = biojob(server, &proxy.endpoint, &dir.root);
    command
        .arg("split")
        .env("SAMPLE_ID", SAMPLE)
        .env("SOURCE_DATA_PREFIX", &data)
        .env("JOB_OUTPUT_PREFIX", &results)
        .env("JOB_WORKFLOW_NAME", "wf")
        .env("JOB_WORKFLOW_EXECUTION_ID", "stopped")
        .env("CHUNKS", "3")
        .env("BIOJOB_ALIGN_CHUNK_PAIRS", "1000")
        .env("BIOJOB_GRACE_SECONDS", "5");
    let (status, stderr) =
        terminated_while_stalled(command, &proxy, &dir.root.join("stopped.stderr"));
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(
        stderr.ends_with("exit class: terminated (143)\n")
            && stderr
                .lines()
                .any(|line| line.starts_with("error: split failed: ")),
        "{stderr}"
    );
    assert_eq!(
        requests_matching(&proxy, "POST", "uploadId="),
        0,
        "nothing completed"
    );
    for mate in ["R1", "R2"] {
        let missing = run(biojob(server, &server.endpoint, &dir.root).args([
            "stage",
            "get",
            &format!("{results}/wf/stopped/NA12878.split.0000_{mate}.fastq.gz"),
            dir.root.join("nothing").as_str(),
        ]));
        assert_eq!(missing.status.code(), Some(11), "{}", text(&missing.stderr));
    }
    assert_eq!(file_names(&dir.root.join("scratch")), scratch_before);
}

#[test]
fn a_split_uploading_more_chunks_than_open_files_allowed_holds_no_file_per_chunk() {
    let server = s3_server();
    let dir = tempdir();
    let testdata = testdata();
    let data = format!("s3://{TEST_BUCKET}/split-many/data");
    for name in ["NA12878_R1.fastq.gz", "NA12878_R2.fastq.gz"] {
        put(
            server,
            &dir.root,
            &testdata.join(name),
            &format!("{data}/{name}"),
        );
    }
    let results = format!("s3://{TEST_BUCKET}/split-many/results");
    // 300 chunks are 600 objects, each waiting for its next block with its part set aside in
    // scratch; under a limit of 128 open files a set-aside part holds no file open.
    let command = biojob(server, &server.endpoint, &dir.root);
    let program = command.get_program().to_owned();
    let mut limited = std::process::Command::new("prlimit");
    limited.arg("--nofile=128").arg(program);
    for (key, value) in command.get_envs() {
        match value {
            Some(value) => limited.env(key, value),
            None => limited.env_remove(key),
        };
    }
    let output = run(limited
        .arg("split")
        .env("SAMPLE_ID", SAMPLE)
        .env("SOURCE_DATA_PREFIX", &data)
        .env("JOB_OUTPUT_PREFIX", &results)
        .env("JOB_WORKFLOW_NAME", "wf")
        .env("JOB_WORKFLOW_EXECUTION_ID", "many")
        .env("CHUNKS", "300")
        .env("BIOJOB_ALIGN_CHUNK_PAIRS", "10"));
    assert_ok(&output, "split into 300 chunks");
    // Chunk 299 holds blocks 299, 599, 899 and 1199 of 10 pairs (1,386 blocks in all).
    let chunk = dir.root.join("chunk299.fastq.gz");
    get(
        server,
        &dir.root,
        &format!("{results}/wf/many/NA12878.split.0299_R1.fastq.gz"),
        &chunk,
    );
    assert_eq!(fastq_records(&chunk).len(), 40);
    let manifest = dir.root.join("many.manifest.json");
    get(
        server,
        &dir.root,
        &format!("{results}/wf/many/NA12878.split.manifest.json"),
        &manifest,
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(manifest["task"]["outputs"].as_array().unwrap().len(), 600);
}

/// Requests with `method` whose request line contains `needle`.
fn requests_matching(proxy: &FaultProxy, method: &str, needle: &str) -> usize {
    proxy
        .requests()
        .iter()
        .filter(|head| head.starts_with(&format!("{method} ")))
        .filter(|head| head.lines().next().unwrap_or("").contains(needle))
        .count()
}

/// `copies` copies of the test data's gzipped FASTQ `name` one after another: the reads
/// `copies` times over, still a valid pair with its mate's copies.
fn repeated_fastq(name: &str, copies: usize, destination: &Utf8Path) {
    let bytes = std::fs::read(testdata().join(name)).unwrap();
    std::fs::write(destination, bytes.repeat(copies)).unwrap();
}

fn sha256sum(path: &Utf8Path) -> String {
    let output = Command::new("sha256sum").arg(path).output().unwrap();
    assert!(output.status.success());
    text(&output.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

/// A Batch step job of the test data with its environment, through `endpoint`: its output.
fn step_job(
    server: &S3Server,
    endpoint: &str,
    work: &Utf8Path,
    step: &str,
    prefixes: (&str, &str, &str),
    extra: &[(&str, &str)],
) -> Output {
    run(&mut step_command(
        server, endpoint, work, step, prefixes, extra,
    ))
}

/// The command of [`step_job`], `extra` set last.
fn step_command(
    server: &S3Server,
    endpoint: &str,
    work: &Utf8Path,
    step: &str,
    prefixes: (&str, &str, &str),
    extra: &[(&str, &str)],
) -> Command {
    let (source, output, execution) = prefixes;
    let mut command = biojob(server, endpoint, work);
    command
        .arg(step)
        .env("SAMPLE_ID", SAMPLE)
        .env("REFERENCE_NAME", "ref")
        .env("SOURCE_DATA_PREFIX", source)
        .env("JOB_OUTPUT_PREFIX", output)
        .env("JOB_WORKFLOW_NAME", "germline")
        .env("JOB_WORKFLOW_EXECUTION_ID", execution)
        .env("AWS_BATCH_JOB_ID", format!("job-{step}-{execution}"))
        .env("AWS_BATCH_JOB_ATTEMPT", "1");
    for (key, value) in extra {
        command.env(key, value);
    }
    command
}

/// Runs `command` (its standard error to `log`) and sends it SIGTERM once `proxy` has stalled
/// a request: its exit status and standard error.
fn terminated_while_stalled(
    mut command: Command,
    proxy: &FaultProxy,
    log: &Utf8Path,
) -> (std::process::ExitStatus, String) {
    let child = command
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let (status, _, stderr) = crate::odd_inputs::terminate_while_waiting(
        child,
        || proxy.injected_count(Fault::Stall) > 0,
        log.as_std_path(),
    );
    (status, stderr)
}

/// The step manifest `name` under `run_prefix`.
fn step_manifest(
    server: &S3Server,
    work: &Utf8Path,
    run_prefix: &str,
    name: &str,
) -> serde_json::Value {
    let local = work.join(name);
    get(server, work, &format!("{run_prefix}/{name}"), &local);
    serde_json::from_slice(&std::fs::read(&local).unwrap()).unwrap()
}

#[test]
fn a_split_job_under_s3_bursts_on_its_multipart_uploads_and_ranged_reads_publishes_the_same_chunks()
{
    let server = s3_server();
    let dir = tempdir();
    let source = format!("s3://{TEST_BUCKET}/split-bursts/samples");
    // Seven times the reads: FASTQs and a chunk above the 5 MiB part size, read in ranged
    // windows and uploaded in parts.
    for read in ["R1", "R2"] {
        let name = format!("{SAMPLE}_{read}.fastq.gz");
        let local = dir.root.join(&name);
        repeated_fastq(&name, 7, &local);
        assert!(std::fs::metadata(&local).unwrap().len() > 5 << 20);
        put(server, &dir.root, &local, &format!("{source}/{name}"));
    }
    let output = format!("s3://{TEST_BUCKET}/split-bursts/results");
    let chunks = [("CHUNKS", "1"), ("BIOJOB_ALIGN_CHUNK_PAIRS", "200000")];
    let clean = step_job(
        server,
        &server.endpoint,
        &dir.root,
        "split",
        (&source, &output, "clean"),
        &chunks,
    );
    assert_ok(&clean, "split");
    let proxy = FaultProxy::start(&server.endpoint);
    proxy.add(
        Rule::new(
            "PUT",
            "0000_R1.fastq.gz?x-id=UploadPart&partNumber=1&",
            Fault::InternalError,
        )
        .times(2),
    );
    proxy.add(
        Rule::new(
            "PUT",
            "0000_R2.fastq.gz?x-id=UploadPart&partNumber=2&",
            Fault::SlowDown,
        )
        .times(2),
    );
    proxy.add(Rule::new(
        "PUT",
        "0000_R2.fastq.gz?x-id=UploadPart&partNumber=1&",
        Fault::ResetRequestAfter(4096),
    ));
    proxy.add(
        Rule::new("GET", "NA12878_R1.fastq.gz", Fault::InternalError)
            .with_header("range", "")
            .times(2),
    );
    proxy.add(
        Rule::new(
            "GET",
            "NA12878_R2.fastq.gz",
            Fault::ResetResponseAfter(1000),
        )
        .with_header("range", "")
        .times(1),
    );
    let bursts = step_job(
        server,
        &proxy.endpoint,
        &dir.root,
        "split",
        (&source, &output, "bursts"),
        &chunks,
    );
    assert_ok(&bursts, "split under bursts");
    assert_eq!(proxy.injected().len(), 8, "{:?}", proxy.injected());
    let outputs = |execution: &str| -> Vec<(String, String, u64)> {
        let manifest = step_manifest(
            server,
            &dir.root,
            &format!("{output}/germline/{execution}"),
            &format!("{SAMPLE}.split.manifest.json"),
        );
        assert_eq!(manifest["task"]["records"]["read_pairs"], 7 * 13_860);
        // Read back after the upload: the size and the composite checksum of the parts.
        for output in manifest["task"]["outputs"].as_array().unwrap() {
            let verified = output["verified"].as_str().unwrap();
            assert!(
                verified.starts_with(&format!("read back: {} bytes, crc32c:", output["bytes"]))
                    && verified.ends_with("-2"),
                "{verified}"
            );
        }
        manifest["task"]["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| {
                (
                    o["name"].as_str().unwrap().to_owned(),
                    o["sha256"].as_str().unwrap().to_owned(),
                    o["bytes"].as_u64().unwrap(),
                )
            })
            .collect()
    };
    let published = outputs("bursts");
    assert_eq!(published, outputs("clean"));
    assert_eq!(published.len(), 2);
    assert!(
        published.iter().all(|(_, _, bytes)| *bytes > 5 << 20),
        "{published:?}"
    );
}

#[test]
fn step_jobs_get_through_s3_bursts_and_refuse_an_object_changed_after_publication() {
    let server = s3_server();
    let dir = tempdir();
    let execution = Execution::upload(server, &dir.root, "bursts");
    let run_prefix = &execution.run_prefix;
    let prefixes = execution.prefixes();
    let bam_uri = format!("{run_prefix}/{SAMPLE}.align.bam");

    // Align: a burst of 500s and a reset on the BAM's upload.
    let proxy = FaultProxy::start(&server.endpoint);
    proxy.add(Rule::new("PUT", "align.bam?x-id=PutObject", Fault::InternalError).times(2));
    proxy.add(Rule::new(
        "PUT",
        "align.bam?x-id=PutObject",
        Fault::ResetRequestAfter(4096),
    ));
    let align = step_job(server, &proxy.endpoint, &dir.root, "align", prefixes, &[]);
    assert_ok(&align, "align");
    assert_eq!(proxy.injected().len(), 3, "{:?}", proxy.injected());
    let aligned = step_manifest(
        server,
        &dir.root,
        run_prefix,
        &format!("{SAMPLE}.align.manifest.json"),
    );
    let task = &aligned["task"];
    assert_eq!(task["records"]["read_pairs"], 13_860);
    assert_eq!(task["records"]["bam"]["primary"], 2 * 13_860);
    let bam_record = task["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|output| output["name"] == format!("{SAMPLE}.align.bam"))
        .unwrap()
        .clone();
    assert!(
        bam_record["verified"]
            .as_str()
            .unwrap()
            .starts_with(&format!("read back: {} bytes", bam_record["bytes"])),
        "{bam_record}"
    );
    let local_bam = dir.root.join("published.bam");
    get(server, &dir.root, &bam_uri, &local_bam);
    assert_eq!(
        sha256sum(&local_bam),
        bam_record["sha256"].as_str().unwrap()
    );

    // Call chr20 with 500s, a 503 and a reset on the BAM's ranged download: the records of
    // the same command run by hand.
    proxy.reset();
    proxy.add(
        Rule::new("GET", "align.bam?x-id=GetObject", Fault::InternalError)
            .with_header("range", "")
            .times(2),
    );
    proxy.add(
        Rule::new("GET", "align.bam?x-id=GetObject", Fault::SlowDown)
            .with_header("range", "bytes=0-")
            .times(1),
    );
    proxy.add(
        Rule::new(
            "GET",
            "align.bam?x-id=GetObject",
            Fault::ResetResponseAfter(1000),
        )
        .with_header("range", "")
        .times(1),
    );
    let call = step_job(
        server,
        &proxy.endpoint,
        &dir.root,
        "call",
        prefixes,
        &[("CHROMOSOME", "chr20")],
    );
    assert_ok(&call, "call under bursts");
    assert_eq!(proxy.injected().len(), 4, "{:?}", proxy.injected());
    let vcf = dir.root.join("chr20.vcf.gz");
    get(
        server,
        &dir.root,
        &format!("{run_prefix}/{SAMPLE}.call.0000.vcf.gz"),
        &vcf,
    );
    let hand =
        Utf8PathBuf::from_path_buf(crate::support::hand_run().per_contig[0].1.clone()).unwrap();
    assert_eq!(records(&vcf), records(&hand));

    // The BAM object replaced after the align job published it: the call job refuses it. It
    // would stage a slice of the BAM (whose SHA-256 is not the object's), so the object's size
    // is what is compared with the publication, before any byte is fetched.
    let replacement = testdata().join("ref.fa");
    put(server, &dir.root, &replacement, &bam_uri);
    let call = step_job(
        server,
        &server.endpoint,
        &dir.root,
        "call",
        prefixes,
        &[("CHROMOSOME", "chr22")],
    );
    assert_eq!(call.status.code(), Some(11), "{}", text(&call.stderr));
    let error = text(&call.stderr)
        .lines()
        .find(|line| line.starts_with("error: "))
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        error,
        format!(
            "error: call chr22 failed: BAM {bam_uri} changed after it was published: it holds {} \
             bytes, {run_prefix}/{SAMPLE}.align.manifest.json records {}",
            std::fs::metadata(&replacement).unwrap().len(),
            bam_record["bytes"].as_u64().unwrap()
        )
    );
    let failed = step_manifest(
        server,
        &dir.root,
        run_prefix,
        &format!("{SAMPLE}.call.0001.manifest.json"),
    );
    assert_eq!(failed["task"]["exit_class"], "input_invalid");
    assert!(failed["task"]["outputs"].as_array().unwrap().is_empty());
}

#[test]
fn the_merge_job_streams_the_chunk_bams_in_and_uploads_the_merged_bam_indexed_on_the_way() {
    let server = s3_server();
    let dir = tempdir();
    let execution = Execution::upload(server, &dir.root, "merge-stream");
    let run_prefix = &execution.run_prefix;
    let prefixes = execution.prefixes();
    let chunks = [("CHUNKS", "2"), ("BIOJOB_ALIGN_CHUNK_PAIRS", "5000")];
    let split = step_job(
        server,
        &server.endpoint,
        &dir.root,
        "split",
        prefixes,
        &chunks,
    );
    assert_ok(&split, "split");
    for chunk in ["0", "1"] {
        let align = step_job(
            server,
            &server.endpoint,
            &dir.root,
            "align",
            prefixes,
            &[("CHUNK", chunk)],
        );
        assert_ok(&align, &format!("align chunk {chunk}"));
    }
    let merge = |endpoint: &str| {
        step_job(
            server,
            endpoint,
            &dir.root,
            "merge",
            prefixes,
            &[("CHUNKS", "2"), ("BIOJOB_KEEP_SCRATCH", "1")],
        )
    };
    let proxy = FaultProxy::start(&server.endpoint);
    let output = merge(&proxy.endpoint);
    assert_ok(&output, "merge");
    // The chunks came in as one stream each, the BAM went out as one multipart upload, then
    // its index: no whole-object copy of either in the kept scratch.
    let kept: Vec<String> = file_names(&dir.root.join("scratch"))
        .into_iter()
        .filter(|name| name.ends_with(".bam") || name.contains(".bam."))
        .collect();
    assert_eq!(kept, [format!("{SAMPLE}.align.bam.bai")], "{kept:?}");
    assert_eq!(requests_matching(&proxy, "POST", "?uploads"), 1);
    assert_eq!(requests_matching(&proxy, "POST", "uploadId="), 1);
    let manifest = step_manifest(
        server,
        &dir.root,
        run_prefix,
        &format!("{SAMPLE}.merge.manifest.json"),
    );
    let task = &manifest["task"];
    let chunk_bytes: u64 = (0..2)
        .map(|chunk| {
            let align = step_manifest(
                server,
                &dir.root,
                run_prefix,
                &format!("{SAMPLE}.align.{chunk:04}.manifest.json"),
            );
            let outputs = align["task"]["outputs"].as_array().unwrap();
            let bam = outputs
                .iter()
                .find(|o| o["name"] == format!("{SAMPLE}.align.{chunk:04}.bam"))
                .unwrap();
            bam["bytes"].as_u64().unwrap()
        })
        .sum();
    let fai = std::fs::metadata(testdata().join("ref.fa.fai"))
        .unwrap()
        .len();
    assert_eq!(task["bytes_staged_in"].as_u64(), Some(chunk_bytes + fai));
    let names: Vec<&str> = task["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            format!("{SAMPLE}.align.bam"),
            format!("{SAMPLE}.align.bam.bai")
        ]
    );

    // The BAM holds the chunks' records, merged; its index is `samtools index`'s, byte for
    // byte, and not older than the BAM (a call job reads through it).
    let local = dir.root.join("local");
    std::fs::create_dir_all(&local).unwrap();
    let mut inputs = Vec::new();
    for chunk in 0..2 {
        let path = local.join(format!("chunk{chunk}.bam"));
        get(
            server,
            &dir.root,
            &format!("{run_prefix}/{SAMPLE}.align.{chunk:04}.bam"),
            &path,
        );
        inputs.push(path);
    }
    let bam = local.join("merged.bam");
    let bai = local.join("merged.bam.bai");
    get(
        server,
        &dir.root,
        &format!("{run_prefix}/{SAMPLE}.align.bam"),
        &bam,
    );
    get(
        server,
        &dir.root,
        &format!("{run_prefix}/{SAMPLE}.align.bam.bai"),
        &bai,
    );
    let by_hand = local.join("by-hand.bam");
    let status = Command::new("samtools")
        .args(["merge", "-c", "-p", "-f", "-o"])
        .arg(&by_hand)
        .args(&inputs)
        .status()
        .unwrap();
    assert!(status.success());
    let body = |path: &Utf8Path| {
        let output = Command::new("samtools")
            .arg("view")
            .arg(path)
            .output()
            .unwrap();
        assert!(output.status.success());
        output.stdout
    };
    assert!(
        body(&bam) == body(&by_hand),
        "other records than samtools merge's"
    );
    let reindexed = local.join("reindexed.bai");
    let status = Command::new("samtools")
        .args(["index", "-o"])
        .arg(&reindexed)
        .arg(&bam)
        .status()
        .unwrap();
    assert!(status.success());
    assert!(std::fs::read(&bai).unwrap() == std::fs::read(&reindexed).unwrap());

    // A chunk damaged on its way in (a byte flipped): the transfer's checksum error is the
    // job's, retryable, whatever samtools made of the bytes; the merged BAM's upload is
    // aborted, never completed.
    // A merge through `proxy` that exits `code`, its stderr holding `needle`, having completed
    // no upload.
    let refused = |proxy: &FaultProxy, code: i32, needle: &str| {
        let output = merge(&proxy.endpoint);
        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
        assert_eq!(requests_matching(proxy, "POST", "uploadId="), 0);
    };
    let proxy = FaultProxy::start(&server.endpoint);
    proxy.add(Rule::new(
        "GET",
        &format!("{SAMPLE}.align.0001.bam"),
        Fault::CorruptResponseByte(20_000),
    ));
    refused(
        &proxy,
        10,
        &format!("{run_prefix}/{SAMPLE}.align.0001.bam: checksum mismatch: S3 holds crc32c:"),
    );
    assert_eq!(
        requests_matching(&proxy, "POST", "?uploads"),
        requests_matching(&proxy, "DELETE", "AbortMultipartUpload"),
    );

    // A chunk replaced after its align job published it (chunk 0's bytes as chunk 1): the
    // stream is whole, samtools merges it, but its SHA-256 is not the one published: refused
    // (input class), nothing completed.
    put(
        server,
        &dir.root,
        &inputs[0],
        &format!("{run_prefix}/{SAMPLE}.align.0001.bam"),
    );
    refused(
        &FaultProxy::start(&server.endpoint),
        11,
        &format!(
            "{run_prefix}/{SAMPLE}.align.0001.bam changed after it was published: its SHA-256 is "
        ),
    );

    // SIGTERM while chunk 0's stream hangs: 143, the merged BAM's upload never completed, and
    // the job's scratch (its pipes, its parts) removed.
    let proxy = FaultProxy::start(&server.endpoint);
    proxy.add(Rule::new("GET", &format!("{SAMPLE}.align.0000.bam"), Fault::Stall).times(1_000));
    let scratch_before = file_names(&dir.root.join("scratch"));
    let command = step_command(
        server,
        &proxy.endpoint,
        &dir.root,
        "merge",
        prefixes,
        &[
            ("CHUNKS", "2"),
            ("AWS_BATCH_JOB_ID", "job-merge-stopped"),
            ("BIOJOB_GRACE_SECONDS", "5"),
        ],
    );
    let (status, stderr) =
        terminated_while_stalled(command, &proxy, &dir.root.join("merge-stopped.stderr"));
    assert_eq!(status.code(), Some(143), "{stderr}");
    assert!(
        stderr.ends_with("exit class: terminated (143)\n"),
        "{stderr}"
    );
    assert_eq!(requests_matching(&proxy, "POST", "uploadId="), 0);
    assert_eq!(file_names(&dir.root.join("scratch")), scratch_before);

    // A chunk whose align job's record is gone (its manifest no longer a step manifest): the
    // chunks' records are then counted, so every chunk is staged whole instead of streamed;
    // the merged BAM is the same.
    put(
        server,
        &dir.root,
        &inputs[1],
        &format!("{run_prefix}/{SAMPLE}.align.0001.bam"),
    );
    let not_a_manifest = dir.root.join("not-a-manifest.json");
    std::fs::write(&not_a_manifest, "{}").unwrap();
    put(
        server,
        &dir.root,
        &not_a_manifest,
        &format!("{run_prefix}/{SAMPLE}.align.0001.manifest.json"),
    );
    assert_ok(&merge(&server.endpoint), "merge without chunk 1's record");
    let staged: Vec<String> = file_names(&dir.root.join("scratch"))
        .into_iter()
        .filter(|name| name.starts_with(&format!("{SAMPLE}.align.000")))
        .collect();
    assert_eq!(
        staged,
        [
            format!("{SAMPLE}.align.0000.bam"),
            format!("{SAMPLE}.align.0001.bam")
        ]
    );
    get(
        server,
        &dir.root,
        &format!("{run_prefix}/{SAMPLE}.align.bam"),
        &bam,
    );
    assert!(
        body(&bam) == body(&by_hand),
        "other records than samtools merge's"
    );
}
