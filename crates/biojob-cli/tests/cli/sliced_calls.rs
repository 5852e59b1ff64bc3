//! Call jobs reading a BAM held by S3 (SeaweedFS on loopback) stage only the records of their
//! shard's pileup regions, and call exactly what a call job reading the whole BAM calls:
//! by-contig and by-size shards of the real NA12878 data; a BAM without a usable index is
//! staged whole, with a warning, and calls the same; a cohort's joint call stages each sample's
//! BAM for its shard the same way.

use std::process::Output;

use biojob_testkit::{FaultProxy, S3Server, TEST_BUCKET, s3_server, testdata};
use camino::{Utf8Path, Utf8PathBuf};
use serde_json::Value;

use crate::s3_jobs::{assert_ok, biojob, get, put, text};
use crate::support::{hand_run, records};

const SAMPLE: &str = "NA12878";
const SHARD_BASES: u64 = 50_000;

/// A call job of `shard` (`CHROMOSOME=…` or `SHARD=…` with the plan's settings) reading
/// `bam`, writing under `output_prefix`, the reference from `reference`.
fn call_job(
    server: &S3Server,
    endpoint: &str,
    work: &Utf8Path,
    bam: &str,
    reference: &str,
    output_prefix: &str,
    shard: &[(&str, String)],
) -> Output {
    let mut command = biojob(server, endpoint, work);
    command
        .args(["call", "--bam", bam])
        .env("SAMPLE_ID", SAMPLE)
        .env("REFERENCE", reference)
        .env("JOB_OUTPUT_PREFIX", output_prefix);
    for (key, value) in shard {
        command.env(key, value);
    }
    command.output().unwrap()
}

fn json(path: &Utf8Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn size(path: &Utf8Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// Puts the test reference (`ref.fa` and its `.fai`) under `<prefix>/ref/`; returns their
/// bytes, what a call job stages of it.
fn put_reference(server: &S3Server, work: &Utf8Path, prefix: &str) -> u64 {
    let data = testdata();
    let mut bytes = 0;
    for name in ["ref.fa", "ref.fa.fai"] {
        put(
            server,
            work,
            &data.join(name),
            &format!("{prefix}/ref/{name}"),
        );
        bytes += size(&data.join(name));
    }
    bytes
}

/// The object `uri` fetched to `<work>/<local>` and read as JSON.
fn fetched_json(server: &S3Server, work: &Utf8Path, uri: &str, local: &str) -> Value {
    let path = work.join(local);
    get(server, work, uri, &path);
    json(&path)
}

/// The bytes the proxy saw asked for by `GET`s of objects whose key ends with `suffix`
/// (`Range: bytes=a-b`; every read the store makes is ranged).
fn bytes_requested(proxy: &FaultProxy, suffix: &str) -> u64 {
    proxy
        .requests()
        .iter()
        .filter(|head| {
            let target = head.split_whitespace().nth(1).unwrap_or("");
            let path = target.split('?').next().unwrap_or("");
            head.starts_with("GET ") && path.ends_with(suffix)
        })
        .map(|head| {
            let range = head
                .lines()
                .find_map(|line| {
                    line.to_ascii_lowercase()
                        .strip_prefix("range: bytes=")
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| panic!("a GET without a range: {head}"));
            let (start, end) = range.split_once('-').unwrap();
            end.trim().parse::<u64>().unwrap() - start.trim().parse::<u64>().unwrap() + 1
        })
        .sum()
}

/// A shard of the test: its plan, its index, the job's environment naming it, the regions
/// its pileup reads.
type TestShard = (
    &'static str,
    usize,
    Vec<(&'static str, String)>,
    Vec<String>,
);

/// The shards of the test: by contig (each contig's line in the `.fai`), and by size
/// (`SHARD_BASES`: chr20's 300,000 bases in six regions, then chr22 and chrM together), each
/// with the pileup regions a call job reads (a region of part of a contig starts 1,000 bases
/// early).
fn shards() -> Vec<TestShard> {
    let mut shards = Vec::new();
    for (index, contig) in ["chr20", "chr22", "chrM"].into_iter().enumerate() {
        shards.push((
            "by-contig",
            index,
            vec![("CHROMOSOME", contig.to_owned())],
            vec![contig.to_owned()],
        ));
    }
    for index in 0..7 {
        let regions = if index < 6 {
            let start = (index as u64 * SHARD_BASES + 1)
                .saturating_sub(1_000)
                .max(1);
            vec![format!(
                "chr20:{start}-{}",
                (index as u64 + 1) * SHARD_BASES
            )]
        } else {
            vec!["chr22".to_owned(), "chrM".to_owned()]
        };
        shards.push((
            "by-size",
            index,
            vec![
                ("SHARD", index.to_string()),
                ("CHROMOSOMES", "chr20,chr22,chrM".to_owned()),
                ("BIOJOB_CALL_SHARD_BASES", SHARD_BASES.to_string()),
            ],
            regions,
        ));
    }
    shards
}

#[test]
fn call_jobs_stage_their_shards_records_of_an_s3_bam_and_call_as_from_the_whole_bam() {
    let server = s3_server();
    let dir = tempfile::tempdir().unwrap();
    let work = Utf8Path::from_path(dir.path()).unwrap().to_owned();
    let hand = hand_run();
    let bam = Utf8PathBuf::from_path_buf(hand.dir.join("hand.bam")).unwrap();
    let bai = Utf8PathBuf::from(format!("{bam}.bai"));
    let data = testdata();
    let prefix = format!("s3://{TEST_BUCKET}/sliced-calls");
    let reference_bytes = put_reference(server, &work, &prefix);
    let bam_uri = format!("{prefix}/aligned/{SAMPLE}.align.bam");
    put(server, &work, &bam, &bam_uri);
    put(server, &work, &bai, &format!("{bam_uri}.bai"));

    let mut sliced_bytes = 0;
    for (plan, index, shard, regions) in shards() {
        let what = format!("{plan} shard {index}");
        // The same job reading the local BAM in place: the whole BAM.
        let local_out = work.join(format!("local-{plan}"));
        let output = call_job(
            server,
            &server.endpoint,
            &work,
            bam.as_str(),
            data.join("ref.fa").as_str(),
            local_out.as_str(),
            &shard,
        );
        assert_ok(&output, &format!("{what} from the local BAM"));
        let local_manifest =
            json(&local_out.join(format!("{SAMPLE}.call.{index:04}.manifest.json")));
        assert_eq!(local_manifest["task"]["bytes_staged_in"], 0, "{what}");
        assert_eq!(local_manifest["task"].get("bam_slices"), None, "{what}");

        let proxy = FaultProxy::start(&server.endpoint);
        let results = format!("{prefix}/results-{plan}");
        let output = call_job(
            server,
            &proxy.endpoint,
            &work,
            &bam_uri,
            &format!("{prefix}/ref/ref.fa"),
            &results,
            &shard,
        );
        assert_ok(&output, &format!("{what} from S3"));
        assert!(
            !text(&output.stderr).contains("cannot be used"),
            "{what}: {}",
            text(&output.stderr)
        );
        let vcf = work.join(format!("{plan}.{index}.vcf.gz"));
        get(
            server,
            &work,
            &format!("{results}/{SAMPLE}.call.{index:04}.vcf.gz"),
            &vcf,
        );
        let theirs = records(vcf.as_std_path());
        assert_eq!(
            theirs,
            records(
                local_out
                    .join(format!("{SAMPLE}.call.{index:04}.vcf.gz"))
                    .as_std_path()
            ),
            "{what}"
        );
        let manifest = fetched_json(
            server,
            &work,
            &format!("{results}/{SAMPLE}.call.{index:04}.manifest.json"),
            &format!("{plan}.{index}.manifest.json"),
        );
        let task = &manifest["task"];
        assert_eq!(task["bam_slices"].as_array().unwrap().len(), 1, "{what}");
        let slice = &task["bam_slices"][0];
        assert_eq!(slice["uri"], bam_uri.as_str(), "{what}");
        assert_eq!(slice["method"], "regions", "{what}");
        assert_eq!(slice.get("reason"), None, "{what}");
        assert_eq!(slice["regions"], serde_json::json!(regions), "{what}");
        assert_eq!(slice["object_bytes"], size(&bam), "{what}");
        assert_eq!(slice["index_bytes"], size(&bai), "{what}");
        // What the manifest says was fetched is what the proxy saw asked for.
        let fetched = slice["bytes_fetched"].as_u64().unwrap();
        assert_eq!(
            fetched,
            bytes_requested(&proxy, ".align.bam") + bytes_requested(&proxy, ".align.bam.bai"),
            "{what}"
        );
        assert_eq!(
            bytes_requested(&proxy, ".align.bam.bai"),
            size(&bai),
            "{what}"
        );
        assert!(fetched - size(&bai) < size(&bam), "{what}: {fetched}");
        assert_eq!(
            task["bytes_staged_in"].as_u64().unwrap(),
            fetched + reference_bytes,
            "{what}"
        );
        if plan == "by-size" {
            sliced_bytes += fetched - size(&bai);
        }
        // The slice and its index are staged in scratch, not the whole BAM.
        assert!(
            task["inputs"]["bam"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/{SAMPLE}.align.bam")),
            "{what}: {}",
            task["inputs"]
        );
    }
    // Seven by-size shards read the BAM about once between them, not seven times.
    assert!(
        sliced_bytes < 2 * size(&bam),
        "the by-size shards fetched {sliced_bytes} bytes of a {}-byte BAM",
        size(&bam)
    );
}

/// The warning and the manifest's reason when a call job stages a BAM whole: its `reason`.
fn assert_staged_whole(output: &Output, manifest: &Value, reason: &str, bam: &Utf8Path) {
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("the BAM's index cannot be used; staging the whole BAM"),
        "{stderr}"
    );
    assert!(stderr.contains(reason), "{stderr}");
    assert_eq!(manifest["task"]["bam_slices"].as_array().unwrap().len(), 1);
    let slice = &manifest["task"]["bam_slices"][0];
    assert_eq!(slice["method"], "whole");
    assert_eq!(slice["reason"], reason);
    assert_eq!(slice["object_bytes"], size(bam));
    // The header's first 64 KiB, read before the index was found unusable, then the whole
    // object.
    assert_eq!(slice["bytes_fetched"], size(bam) + 65_536);
    assert_eq!(slice["index_bytes"], 0);
    assert_eq!(slice["ranges"], 2);
}

#[test]
fn a_call_job_stages_an_s3_bam_without_a_usable_index_whole_and_calls_the_same() {
    let server = s3_server();
    let dir = tempfile::tempdir().unwrap();
    let work = Utf8Path::from_path(dir.path()).unwrap().to_owned();
    let hand = hand_run();
    let bam = Utf8PathBuf::from_path_buf(hand.dir.join("hand.bam")).unwrap();
    let bai = Utf8PathBuf::from(format!("{bam}.bai"));
    let prefix = format!("s3://{TEST_BUCKET}/whole-calls");
    put_reference(server, &work, &prefix);
    let reference = format!("{prefix}/ref/ref.fa");
    let shard = [("CHROMOSOME", "chr22".to_owned())];
    let expected = hand
        .per_contig
        .iter()
        .find(|(contig, _)| contig == "chr22")
        .map(|(_, vcf)| records(vcf))
        .unwrap();
    assert!(!expected.is_empty());
    let call = |bam_uri: &str, results: &str| {
        let output = call_job(
            server,
            &server.endpoint,
            &work,
            bam_uri,
            &reference,
            results,
            &shard,
        );
        assert_ok(&output, &format!("call from {bam_uri}"));
        let vcf = work.join("chr22.vcf.gz");
        get(
            server,
            &work,
            &format!("{results}/{SAMPLE}.call.0001.vcf.gz"),
            &vcf,
        );
        assert_eq!(records(vcf.as_std_path()), expected, "{bam_uri}");
        let manifest = fetched_json(
            server,
            &work,
            &format!("{results}/{SAMPLE}.call.0001.manifest.json"),
            "chr22.manifest.json",
        );
        (output, manifest)
    };

    // No index beside the BAM: it is no longer a required input.
    let alone = format!("{prefix}/alone/{SAMPLE}.align.bam");
    put(server, &work, &bam, &alone);
    let (output, manifest) = call(&alone, &format!("{prefix}/results-alone"));
    assert_staged_whole(
        &output,
        &manifest,
        &format!("{alone}.bai does not exist"),
        &bam,
    );

    // An index written before the BAM (Last-Modified has whole seconds): it may not describe
    // it.
    let stale = format!("{prefix}/stale/{SAMPLE}.align.bam");
    put(server, &work, &bai, &format!("{stale}.bai"));
    std::thread::sleep(std::time::Duration::from_millis(1_100));
    put(server, &work, &bam, &stale);
    let (output, manifest) = call(&stale, &format!("{prefix}/results-stale"));
    let reason = manifest["task"]["bam_slices"][0]["reason"]
        .as_str()
        .unwrap()
        .to_owned();
    let times = reason
        .strip_prefix(&format!(
            "{stale}.bai is older than the BAM (Last-Modified "
        ))
        .and_then(|rest| rest.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{reason}"));
    let (index_time, bam_time) = times.split_once(" < ").unwrap();
    let parse = |time: &str| humantime::parse_rfc3339(time).unwrap();
    assert!(parse(index_time) < parse(bam_time), "{reason}");
    assert_staged_whole(&output, &manifest, &reason, &bam);
}

/// A cohort's joint call job reading its samples' BAMs from S3 stages each of them for the
/// shard's regions (one `bam_slices` record per sample, in sheet order) and calls what the
/// same job calls from the BAMs on a local prefix. The two samples are the NA12878 BAM under
/// two sample names.
#[test]
fn a_cohort_s_joint_call_stages_each_sample_s_shard_records_and_calls_as_from_the_whole_bams() {
    let server = s3_server();
    let dir = tempfile::tempdir().unwrap();
    let work = Utf8Path::from_path(dir.path()).unwrap().to_owned();
    let hand = hand_run();
    let hand_bam = Utf8PathBuf::from_path_buf(hand.dir.join("hand.bam")).unwrap();
    let data = testdata();
    let samples = ["A", "B"];
    let header = crate::support::tool(
        "samtools",
        &["view", "-H", hand_bam.as_str()],
        work.as_std_path(),
    );
    assert!(header.contains("SM:NA12878"), "{header}");
    let local_run = work.join("local-run");
    let mut sheet = String::from("sample,lane,fastq_1,fastq_2\n");
    for sample in samples {
        let sample_dir = local_run.join("samples").join(sample);
        std::fs::create_dir_all(&sample_dir).unwrap();
        let header_file = work.join(format!("{sample}.header.sam"));
        std::fs::write(
            &header_file,
            header.replace("SM:NA12878", &format!("SM:{sample}")),
        )
        .unwrap();
        let bam = sample_dir.join(format!("{sample}.align.bam"));
        let reheadered = std::process::Command::new("samtools")
            .args(["reheader", header_file.as_str(), hand_bam.as_str()])
            .output()
            .unwrap();
        assert!(reheadered.status.success(), "{}", text(&reheadered.stderr));
        std::fs::write(&bam, reheadered.stdout).unwrap();
        crate::support::tool("samtools", &["index", bam.as_str()], work.as_std_path());
        // The job reads the sheet for its samples only: the FASTQs are never opened.
        for mate in [1, 2] {
            std::fs::write(work.join(format!("{sample}_R{mate}.fastq.gz")), b"").unwrap();
        }
        sheet.push_str(&format!(
            "{sample},1,{sample}_R1.fastq.gz,{sample}_R2.fastq.gz\n"
        ));
    }
    let sheet_path = work.join("samples.csv");
    std::fs::write(&sheet_path, sheet).unwrap();

    let prefix = format!("s3://{TEST_BUCKET}/cohort-sliced");
    let reference_bytes = put_reference(server, &work, &prefix);
    let run = format!("{prefix}/run");
    for sample in samples {
        let bam = local_run.join(format!("samples/{sample}/{sample}.align.bam"));
        let uri = format!("{run}/samples/{sample}/{sample}.align.bam");
        put(server, &work, &bam, &uri);
        put(
            server,
            &work,
            &Utf8PathBuf::from(format!("{bam}.bai")),
            &format!("{uri}.bai"),
        );
    }
    // Shard 1 of chr20, chr22, chrM cut into 50,000-base shards: chr20:50001-100000.
    let joint_call = |endpoint: &str, reference: &str, output_prefix: &str| {
        let mut command = biojob(server, endpoint, &work);
        command
            .arg("call")
            .env("SAMPLESHEET", &sheet_path)
            .env("SAMPLE_ID", "cohort")
            .env("REFERENCE", reference)
            .env("JOB_OUTPUT_PREFIX", output_prefix)
            .env("SHARD", "1")
            .env("CHROMOSOMES", "chr20,chr22,chrM")
            .env("BIOJOB_CALL_SHARD_BASES", SHARD_BASES.to_string());
        command.output().unwrap()
    };
    let output = joint_call(
        &server.endpoint,
        data.join("ref.fa").as_str(),
        local_run.as_str(),
    );
    assert_ok(&output, "the joint call from local BAMs");
    let local_manifest = json(&local_run.join("cohort.call.0001.manifest.json"));
    assert_eq!(local_manifest["task"].get("bam_slices"), None);

    let proxy = FaultProxy::start(&server.endpoint);
    let output = joint_call(&proxy.endpoint, &format!("{prefix}/ref/ref.fa"), &run);
    assert_ok(&output, "the joint call from S3");
    let vcf = work.join("s3.cohort.call.0001.vcf.gz");
    get(
        server,
        &work,
        &format!("{run}/cohort.call.0001.vcf.gz"),
        &vcf,
    );
    let called = records(vcf.as_std_path());
    assert!(!called.is_empty());
    assert_eq!(
        called,
        records(local_run.join("cohort.call.0001.vcf.gz").as_std_path())
    );
    let manifest = fetched_json(
        server,
        &work,
        &format!("{run}/cohort.call.0001.manifest.json"),
        "s3.cohort.call.0001.manifest.json",
    );
    let task = &manifest["task"];
    let slices = task["bam_slices"].as_array().unwrap();
    assert_eq!(slices.len(), 2);
    let mut fetched = 0;
    for (slice, sample) in slices.iter().zip(samples) {
        let bam = local_run.join(format!("samples/{sample}/{sample}.align.bam"));
        assert_eq!(
            slice["uri"],
            format!("{run}/samples/{sample}/{sample}.align.bam"),
        );
        assert_eq!(slice["method"], "regions", "{sample}");
        assert_eq!(slice["regions"], serde_json::json!(["chr20:49001-100000"]));
        assert_eq!(slice["object_bytes"], size(&bam), "{sample}");
        assert_eq!(
            slice["index_bytes"],
            size(&Utf8PathBuf::from(format!("{bam}.bai"))),
            "{sample}"
        );
        let bytes = slice["bytes_fetched"].as_u64().unwrap();
        assert!(
            bytes < size(&bam) / 2,
            "{sample}: {bytes} of {}",
            size(&bam)
        );
        fetched += bytes;
    }
    // What the records say was fetched is what the proxy saw asked for, both BAMs and indexes.
    assert_eq!(
        fetched,
        bytes_requested(&proxy, ".align.bam") + bytes_requested(&proxy, ".align.bam.bai")
    );
    assert_eq!(
        task["bytes_staged_in"].as_u64().unwrap(),
        fetched + reference_bytes
    );
}
