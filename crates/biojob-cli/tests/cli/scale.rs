//! Scaling out on the real data: calling shards cut by size give the records of calling each
//! contig whole; alignment in chunks merges to the records of one alignment.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Workspace, assert_same_records, hand_run, records, stderr, testdata, tool};

const CONTIGS: [&str; 3] = ["chr20", "chr22", "chrM"];

/// A Batch step job (`args`, e.g. `["call"]`) of sample NA12878 on `reference`, results under
/// `out`; the caller adds the job's environment.
fn step_job(ws: &Workspace, reference: &Path, out: &Path, args: &[&str]) -> Command {
    let mut command = ws.biojob();
    command
        .args(args)
        .arg("--reference")
        .arg(reference)
        .arg("--output-prefix")
        .arg(out)
        .env("SAMPLE_ID", "NA12878");
    command
}

/// The call tasks of a run's manifest: (shard index, region, status).
fn call_tasks(run_dir: &Path) -> Vec<(u64, String, String)> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("manifest.json")).unwrap()).unwrap();
    manifest["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|task| task["step"] == "call")
        .map(|task| {
            (
                task["shard"].as_u64().unwrap(),
                task["contig"].as_str().unwrap().to_owned(),
                task["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// `(POS, REF length)` of the by-contig records on `contig`.
fn spans(vcf: &Path, contig: &str) -> Vec<(u64, u64)> {
    records(vcf)
        .iter()
        .map(|line| line.split('\t').collect::<Vec<_>>())
        .filter(|fields| fields[0] == contig)
        .map(|fields| (fields[1].parse().unwrap(), fields[3].len() as u64))
        .collect()
}

#[test]
fn shards_cut_by_size_give_the_records_of_by_contig_calling() {
    let ws = Workspace::new();
    let input = ws.demo_input(&CONTIGS);
    let hand = hand_run();
    // 25,000 bases: chr20 (300,000) in 12 regions of 25,000, whose boundary after base 25,000
    // falls inside the deletion at chr20:24990 (REF of 12 bases); chr22 (12,356) and chrM
    // (16,571) do not fit together, so each is its own shard. 40,000 bases: chr20 in 8 regions
    // of 37,500, chr22 and chrM grouped into one shard.
    for (bases, expected) in [
        (
            "25000",
            (1..=12)
                .map(|i| format!("chr20:{}-{}", (i - 1) * 25_000 + 1, i * 25_000))
                .chain(["chr22".to_owned(), "chrM".to_owned()])
                .collect::<Vec<_>>(),
        ),
        (
            "40000",
            (1..=8)
                .map(|i| format!("chr20:{}-{}", (i - 1) * 37_500 + 1, i * 37_500))
                .chain(["chr22,chrM".to_owned()])
                .collect::<Vec<_>>(),
        ),
    ] {
        let run_id = format!("shards-{bases}");
        let mut command = ws.biojob();
        command
            .args(["run", "--input"])
            .arg(&input)
            .args(["--run-id", &run_id])
            .env("BIOJOB_CALL_SHARD_BASES", bases);
        let output = command.output().unwrap();
        assert!(output.status.success(), "{bases}: {}", stderr(&output));
        let run_dir = ws.out().join("NA12878").join(&run_id);
        let tasks = call_tasks(&run_dir);
        let regions: Vec<String> = tasks.iter().map(|(_, region, _)| region.clone()).collect();
        assert_eq!(regions, expected, "{bases}");
        let indices: Vec<u64> = tasks.iter().map(|(index, _, _)| *index).collect();
        assert_eq!(indices, (0..expected.len() as u64).collect::<Vec<_>>());
        assert!(tasks.iter().all(|(_, _, status)| status == "succeeded"));
        assert_same_records(&run_dir.join("NA12878.vcf.gz"), &hand.vcf);
    }
    // The boundary rule was exercised: a by-contig record starts at or before base 25,000 and
    // its REF reaches past it, and it is in the first shard only.
    let split = spans(&hand.vcf, "chr20")
        .into_iter()
        .find(|(pos, length)| *pos <= 25_000 && pos + length - 1 > 25_000);
    assert_eq!(split, Some((24_990, 12)));
    let run_dir = ws.out().join("NA12878/shards-25000");
    let first = records(&run_dir.join("NA12878.call.0000.vcf.gz"));
    let second = records(&run_dir.join("NA12878.call.0001.vcf.gz"));
    assert_eq!(
        first
            .last()
            .map(|l| l.split('\t').take(2).collect::<Vec<_>>()),
        Some(vec!["chr20", "24990"])
    );
    assert!(
        second
            .first()
            .is_some_and(|l| l.split('\t').nth(1).unwrap().parse::<u64>().unwrap() > 25_000)
    );
}

/// bwa's `-K` in biojob.
pub(crate) const BWA_BATCH_BASES: u64 = 10_000_000;

/// The test data's FASTQ pair written `copies` times over, plain, into the workspace; returns
/// the two paths and each pair's bases (both mates), in order.
pub(crate) fn repeated_pair(ws: &Workspace, copies: usize) -> (PathBuf, PathBuf, Vec<u64>) {
    let mut bases = Vec::new();
    let mut paths = Vec::new();
    for (mate, name) in [(1, "NA12878_R1.fastq.gz"), (2, "NA12878_R2.fastq.gz")] {
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(std::fs::File::open(testdata().join(name)).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let path = ws.path().join(format!("x{copies}_R{mate}.fastq"));
        std::fs::write(&path, text.repeat(copies)).unwrap();
        let lengths: Vec<u64> = BufReader::new(std::fs::File::open(&path).unwrap())
            .lines()
            .skip(1)
            .step_by(4)
            .map(|line| line.unwrap().len() as u64)
            .collect();
        if bases.is_empty() {
            bases = lengths;
        } else {
            bases.iter_mut().zip(lengths).for_each(|(b, l)| *b += l);
        }
        paths.push(path);
    }
    (paths[0].clone(), paths[1].clone(), bases)
}

/// The BAM's records as text, sorted (records at one position may come in either order).
pub(crate) fn sorted_records(bam: &Path) -> Vec<String> {
    let mut lines: Vec<String> = tool("samtools", &["view", bam.to_str().unwrap()], Path::new("/"))
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

/// SAM records with their optional fields (from the 12th) sorted and, with `alternatives`, the
/// entries of the `XA` tag (alternative hits, `;`-separated) sorted too; the records sorted.
pub(crate) fn normalise(records: &[String], alternatives: bool) -> Vec<String> {
    let mut out: Vec<String> = records
        .iter()
        .map(|record| {
            let mut fields: Vec<String> = record
                .split('\t')
                .map(|field| match field.strip_prefix("XA:Z:") {
                    Some(hits) if alternatives => {
                        let mut hits: Vec<&str> =
                            hits.split(';').filter(|h| !h.is_empty()).collect();
                        hits.sort_unstable();
                        format!("XA:Z:{};", hits.join(";"))
                    }
                    _ => field.to_owned(),
                })
                .collect();
            fields[11..].sort();
            fields.join("\t")
        })
        .collect();
    out.sort();
    out
}

/// The tasks of a run's manifest: (step, shard, status).
fn tasks(run_dir: &Path) -> Vec<(String, Option<u64>, String)> {
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("manifest.json")).unwrap()).unwrap();
    manifest["tasks"]
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
        .collect()
}

#[test]
fn chunks_on_bwa_batch_boundaries_merge_to_the_records_of_one_alignment() {
    let ws = Workspace::new();
    // Four copies of the test data: 55,440 pairs, more than one bwa batch.
    let (fastq_1, fastq_2, bases) = repeated_pair(&ws, 4);
    assert_eq!(bases.len(), 55_440);
    // bwa reads pairs into a batch until it holds at least -K bases of both mates together: the
    // first batch ends after the pair at which the running sum reaches -K.
    let mut sum = 0;
    let batch_pairs = bases
        .iter()
        .position(|b| {
            sum += b;
            sum >= BWA_BATCH_BASES
        })
        .unwrap()
        + 1;
    // 3 copies (3 × 2,962,934 bases), then 5,501 pairs of 2×101 from the fourth.
    assert_eq!(batch_pairs, 47_081);
    let rest: u64 = bases[batch_pairs..].iter().sum();
    assert!(
        rest < BWA_BATCH_BASES,
        "the second batch is the rest of the input"
    );

    let input = ws.input(
        &[
            ("REFERENCE", testdata().join("ref.fa").display().to_string()),
            ("SAMPLE_ID", "NA12878".into()),
            ("FASTQ_1", fastq_1.display().to_string()),
            ("FASTQ_2", fastq_2.display().to_string()),
            ("JOB_OUTPUT_PREFIX", ws.out().display().to_string()),
        ],
        Some(&CONTIGS),
    );
    let run = |run_id: &str, env: &[(&str, String)]| {
        let mut command = ws.biojob();
        command
            .args(["run", "--input"])
            .arg(&input)
            .args(["--run-id", run_id]);
        for (key, value) in env {
            command.env(key, value);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{run_id}: {}", stderr(&output));
        ws.out().join("NA12878").join(run_id)
    };
    let whole = run("whole", &[]);
    let chunked = run(
        "chunked",
        &[
            ("BIOJOB_ALIGN_CHUNK_PAIRS", batch_pairs.to_string()),
            ("BIOJOB_WORKERS", "2".to_owned()),
        ],
    );
    let step = |name: &str, shard: Option<u64>| (name.to_owned(), shard, "succeeded".to_owned());
    assert_eq!(
        tasks(&chunked)[..5],
        [
            step("prepare-reference", None),
            step("split", None),
            step("align", Some(0)),
            step("align", Some(1)),
            step("merge", None),
        ]
    );
    let whole_records = sorted_records(&whole.join("NA12878.align.bam"));
    let primary = whole_records
        .iter()
        .filter(|line| line.split('\t').nth(1).unwrap().parse::<u16>().unwrap() & 0x900 == 0)
        .count();
    assert_eq!(primary, 2 * 55_440, "one primary record per read");
    let chunked_records = sorted_records(&chunked.join("NA12878.align.bam"));
    // Two differences that are not in the alignments: samtools merge rewrites each record's RG
    // tag, which moves it to the end of the optional fields (their order has no meaning, SAM
    // spec section 1.5); and bwa orders a read's alternative hits (XA) with a hash of the
    // read's position in the input, which restarts in each chunk. With both normalised the
    // records are equal; with the optional fields sorted only, 10 records list the same hits in
    // another order.
    let tags_sorted: Vec<String> = normalise(&whole_records, false);
    let chunked_tags_sorted: Vec<String> = normalise(&chunked_records, false);
    let mut unmatched: std::collections::HashMap<&String, i64> = std::collections::HashMap::new();
    for record in &tags_sorted {
        *unmatched.entry(record).or_default() += 1;
    }
    for record in &chunked_tags_sorted {
        *unmatched.entry(record).or_default() -= 1;
    }
    let reordered: i64 = unmatched.values().filter(|n| **n > 0).sum();
    assert_eq!(reordered, 10);
    assert!(
        normalise(&whole_records, true) == normalise(&chunked_records, true),
        "the merged BAM's records differ from the unsplit alignment's"
    );
    assert_same_records(
        &chunked.join("NA12878.vcf.gz"),
        &whole.join("NA12878.vcf.gz"),
    );
    assert_eq!(
        tool(
            "samtools",
            &[
                "view",
                "-c",
                chunked.join("NA12878.align.bam").to_str().unwrap(),
                "chr22"
            ],
            Path::new("/")
        ),
        tool(
            "samtools",
            &[
                "view",
                "-c",
                whole.join("NA12878.align.bam").to_str().unwrap(),
                "chr22"
            ],
            Path::new("/")
        ),
        "the merged BAM is indexed"
    );
}

#[test]
fn call_jobs_by_shard_then_gather_give_the_records_of_by_contig_calling() {
    let ws = Workspace::new();
    let data = testdata();
    let reference = data.join("ref.fa");
    let out = ws.out();
    let hand = hand_run();
    // The Batch jobs' environment: the run's contigs and shard size, one shard per job.
    let job = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = step_job(&ws, &reference, &out, args);
        command
            .env("CHROMOSOMES", r#"["chr20","chr22","chrM"]"#)
            .env("BIOJOB_CALL_SHARD_BASES", "40000");
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().unwrap()
    };
    let bam = hand.dir.join("hand.bam");
    assert!(bam.exists(), "the hand run's BAM");
    // The plan the execution input takes (params.shards, params.shardBases).
    let output = ws
        .biojob()
        .args(["plan-shards", "--reference"])
        .arg(&reference)
        .args(["--contigs", "chr20,chr22,chrM", "--shard-bases", "40000"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let plan: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        plan,
        serde_json::json!({
            "shardBases": 40000,
            "shards": [0, 1, 2, 3, 4, 5, 6, 7, 8],
            "regions": [
                "chr20:1-37500", "chr20:37501-75000", "chr20:75001-112500",
                "chr20:112501-150000", "chr20:150001-187500", "chr20:187501-225000",
                "chr20:225001-262500", "chr20:262501-300000", "chr22,chrM"
            ]
        })
    );
    // 8 regions of chr20 and the group chr22,chrM: shards 0 to 8, run in reverse.
    for shard in (0..9).rev() {
        let output = job(
            &["call", "--bam", bam.to_str().unwrap()],
            &[("SHARD", &shard.to_string())],
        );
        assert!(
            output.status.success(),
            "shard {shard}: {}",
            stderr(&output)
        );
    }
    let output = job(&["gather"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    assert_same_records(&out.join("NA12878.vcf.gz"), &hand.vcf);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("NA12878.call.0008.manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["task"]["contig"], "chr22,chrM");

    let output = job(&["call", "--bam", bam.to_str().unwrap()], &[("SHARD", "9")]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(
            "shard 9 is not in the plan: 9 shards of at most 40000 bases\n\
             hint: give a shard from 0 to 8"
        ),
        "{}",
        stderr(&output)
    );
}

#[test]
fn split_align_chunk_and_merge_jobs_give_the_alignments_of_one_align_job() {
    let ws = Workspace::new();
    let (fastq_1, fastq_2, _) = repeated_pair(&ws, 4);
    let reference = testdata().join("ref.fa");
    let out = ws.out();
    let run = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = step_job(&ws, &reference, &out, args);
        command
            .env("FASTQ_1", &fastq_1)
            .env("FASTQ_2", &fastq_2)
            .env("JOB_WORKFLOW_NAME", "biojob")
            .env("JOB_WORKFLOW_EXECUTION_ID", "chunked");
        for (key, value) in env {
            command.env(key, value);
        }
        command.output().unwrap()
    };
    let job = |args: &[&str], env: &[(&str, &str)]| {
        let output = run(args, env);
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    };
    // Blocks of 47,081 pairs (the first bwa batch) dealt into 2 chunks: the batches stay whole.
    let chunking = [("CHUNKS", "2"), ("BIOJOB_ALIGN_CHUNK_PAIRS", "47081")];
    job(&["split"], &chunking);
    let run_prefix = out.join("biojob/chunked");
    for chunk in ["1", "0"] {
        job(&["align"], &[("CHUNK", chunk)]);
    }
    for name in [
        "NA12878.split.0000_R1.fastq.gz",
        "NA12878.split.0001_R2.fastq.gz",
        "NA12878.align.0000.bam",
        "NA12878.align.0001.bam.bai",
        "NA12878.align.0001.manifest.json",
    ] {
        assert!(run_prefix.join(name).exists(), "{name}");
    }
    // A merge told fewer chunks than the split wrote would publish a BAM without the others'
    // reads: refused (2) before any tool runs. Chunks that aligned other read pairs than the
    // split wrote: refused (31).
    let output = run(&["merge"], &[("CHUNKS", "1")]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    let split_manifest = run_prefix.join("NA12878.split.manifest.json");
    assert!(
        stderr(&output).contains(&format!(
            "error: merge failed: CHUNKS is 1, and the split of sample NA12878 wrote 2 chunks \
             ({}): the reads of the others would be missing from the merged BAM\nhint: set \
             CHUNKS to 2 (the execution input's params.chunks)\n",
            split_manifest.display()
        )),
        "{}",
        stderr(&output)
    );
    let chunk_manifest = run_prefix.join("NA12878.align.0001.manifest.json");
    let recorded = std::fs::read(&chunk_manifest).unwrap();
    let mut edited: serde_json::Value = serde_json::from_slice(&recorded).unwrap();
    let chunk_pairs = edited["task"]["records"]["read_pairs"].as_u64().unwrap();
    edited["task"]["records"]["read_pairs"] = (chunk_pairs - 1).into();
    std::fs::write(&chunk_manifest, serde_json::to_vec(&edited).unwrap()).unwrap();
    let output = run(&["merge"], &chunking);
    assert_eq!(output.status.code(), Some(31), "{}", stderr(&output));
    let split: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&split_manifest).unwrap()).unwrap();
    let split_pairs = split["task"]["records"]["read_pairs"].as_u64().unwrap();
    assert!(
        stderr(&output).contains(&format!(
            "error: merge failed: {}: sample NA12878: its split wrote {split_pairs} read pairs, \
             and its chunks 0 to 1 aligned {}\n",
            split_manifest.display(),
            split_pairs - 1
        )),
        "{}",
        stderr(&output)
    );
    std::fs::write(&chunk_manifest, &recorded).unwrap();
    assert!(!run_prefix.join("NA12878.align.bam").exists());

    // The merge job takes the chunks' records from their align jobs' step manifests (each
    // chunk's SHA-256 checked) instead of reading them again: one record too many there is
    // one lost here.
    let chunk_manifest = run_prefix.join("NA12878.align.0001.manifest.json");
    let recorded = std::fs::read(&chunk_manifest).unwrap();
    let mut edited: serde_json::Value = serde_json::from_slice(&recorded).unwrap();
    let chunk_records = edited["task"]["records"]["bam"]["records"]
        .as_u64()
        .unwrap();
    edited["task"]["records"]["bam"]["records"] = (chunk_records + 1).into();
    std::fs::write(&chunk_manifest, serde_json::to_vec(&edited).unwrap()).unwrap();
    let output = run(&["merge"], &chunking);
    assert_eq!(output.status.code(), Some(31), "{}", stderr(&output));
    let chunk_0: serde_json::Value = serde_json::from_slice(
        &std::fs::read(run_prefix.join("NA12878.align.0000.manifest.json")).unwrap(),
    )
    .unwrap();
    let held = chunk_0["task"]["records"]["bam"]["records"]
        .as_u64()
        .unwrap()
        + chunk_records;
    let merge_failure = stderr(&output)
        .lines()
        .find(|line| line.starts_with("error: "))
        .unwrap_or_default()
        .to_owned();
    assert!(
        merge_failure.ends_with(&format!(
            "{held} records, but its 2 chunks hold {} (as their align tasks counted them): 1 \
             lost",
            held + 1
        )),
        "{merge_failure}"
    );
    assert!(!run_prefix.join("NA12878.align.bam").exists());
    std::fs::write(&chunk_manifest, &recorded).unwrap();
    job(&["merge"], &chunking);
    // One align job of the whole pair, elsewhere.
    let whole_prefix = ws.path().join("whole");
    let output = ws
        .biojob()
        .args(["align", "--reference"])
        .arg(&reference)
        .arg("--output-prefix")
        .arg(&whole_prefix)
        .env("SAMPLE_ID", "NA12878")
        .env("FASTQ_1", &fastq_1)
        .env("FASTQ_2", &fastq_2)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let merged = sorted_records(&run_prefix.join("NA12878.align.bam"));
    let whole = sorted_records(&whole_prefix.join("NA12878.align.bam"));
    assert_eq!(merged.len(), whole.len());
    assert!(
        normalise(&merged, true) == normalise(&whole, true),
        "the merged BAM's records differ from one align job's"
    );
    assert!(run_prefix.join("NA12878.align.bam.bai").exists());

    // A published BAM replaced afterwards (by another, valid BAM) is refused with the input
    // class before any tool runs: a chunk's by the merge job, the merged one by the call job.
    let published_sha256 = |manifest: &str, name: &str| -> String {
        let manifest: serde_json::Value =
            serde_json::from_slice(&std::fs::read(run_prefix.join(manifest)).unwrap()).unwrap();
        let outputs = manifest["task"]["outputs"].as_array().unwrap();
        let output = outputs.iter().find(|o| o["name"] == name).unwrap();
        output["sha256"].as_str().unwrap().to_owned()
    };
    let error_line = |output: &std::process::Output| {
        stderr(output)
            .lines()
            .find(|line| line.starts_with("error: "))
            .unwrap_or_default()
            .to_owned()
    };
    let chunk_0 = published_sha256("NA12878.align.0000.manifest.json", "NA12878.align.0000.bam");
    let chunk_1 = published_sha256("NA12878.align.0001.manifest.json", "NA12878.align.0001.bam");
    let merged = published_sha256("NA12878.merge.manifest.json", "NA12878.align.bam");
    let replaced = run_prefix.join("NA12878.align.0001.bam");
    std::fs::copy(run_prefix.join("NA12878.align.0000.bam"), &replaced).unwrap();
    let output = run(&["merge"], &chunking);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert_eq!(
        error_line(&output),
        format!(
            "error: merge failed: chunk BAM {} changed after it was published: its SHA-256 is \
             {chunk_0}, {} records {chunk_1}",
            replaced.display(),
            run_prefix
                .join("NA12878.align.0001.manifest.json")
                .display()
        )
    );
    let bam = run_prefix.join("NA12878.align.bam");
    std::fs::copy(run_prefix.join("NA12878.align.0000.bam"), &bam).unwrap();
    let output = run(&["call"], &[("CHROMOSOME", "chr22")]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert_eq!(
        error_line(&output),
        format!(
            "error: call chr22 failed: BAM {} changed after it was published: its SHA-256 is \
             {chunk_0}, {} records {merged}",
            bam.display(),
            run_prefix.join("NA12878.merge.manifest.json").display()
        )
    );
}

#[test]
fn a_split_into_more_chunks_than_open_files_allowed_keeps_one_file_open_per_mate() {
    let ws = Workspace::new();
    let out = ws.out();
    // 300 chunks are 600 files; under a limit of 64 open files the split keeps only the chunk
    // it appends to open.
    let output = Command::new("prlimit")
        .arg("--nofile=64")
        .arg(env!("CARGO_BIN_EXE_biojob"))
        .arg("split")
        .arg("--output-prefix")
        .arg(&out)
        .env("BIOJOB_SCRATCH_DIR", ws.path().join("scratch"))
        .env("BIOJOB_CACHE_DIR", ws.path().join("cache"))
        .env_remove("AWS_BATCH_JOB_ID")
        .env("SAMPLE_ID", "NA12878")
        .env("SOURCE_DATA_PREFIX", testdata())
        .env("JOB_WORKFLOW_NAME", "biojob")
        .env("JOB_WORKFLOW_EXECUTION_ID", "many")
        .env("CHUNKS", "300")
        .env("BIOJOB_ALIGN_CHUNK_PAIRS", "10")
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let run_prefix = out.join("biojob/many");
    let chunks = std::fs::read_dir(&run_prefix)
        .unwrap()
        .filter(|entry| {
            let name = entry.as_ref().unwrap().file_name();
            name.to_string_lossy().ends_with(".fastq.gz")
        })
        .count();
    assert_eq!(chunks, 600);
    // Chunk 299 holds blocks 299, 599, 899 and 1199 of 10 pairs (1,386 blocks in all).
    let mut text = String::new();
    flate2::read::MultiGzDecoder::new(
        std::fs::File::open(run_prefix.join("NA12878.split.0299_R1.fastq.gz")).unwrap(),
    )
    .read_to_string(&mut text)
    .unwrap();
    assert_eq!(text.lines().count(), 4 * 40);
}

/// Writes a FASTA of `contigs` (name, length) of pseudo-random bases (a fixed linear
/// congruential sequence, so every run writes the same file), 60 bases a line.
fn random_reference(path: &Path, contigs: &[(&str, usize)]) {
    let mut state: u64 = 11;
    let mut text = String::new();
    for (name, length) in contigs {
        text.push_str(&format!(">{name}\n"));
        let bases: Vec<u8> = (0..*length)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                b"ACGT"[(state >> 62) as usize]
            })
            .collect();
        for line in bases.chunks(60) {
            text.push_str(std::str::from_utf8(line).unwrap());
            text.push('\n');
        }
    }
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_run_given_no_shard_size_cuts_a_contig_that_would_leave_a_thread_idle() {
    let ws = Workspace::new();
    // On 2 threads, a contig of 1.2 Mb and one of 0.1 Mb leave one thread idle for most of
    // calling; shards of 650,000 bases (the bases ÷ 2) end within 8 % of an even share.
    let reference = ws.path().join("ref.fa");
    random_reference(&reference, &[("a", 1_200_000), ("b", 100_000)]);
    let fastq = |mate: u8| ws.path().join(format!("R{mate}.fastq"));
    let path = |p: &Path| p.to_str().unwrap().to_owned();
    tool(
        "wgsim",
        &[
            "-S",
            "11",
            "-N",
            "30000",
            "-1",
            "100",
            "-2",
            "100",
            &path(&reference),
            &path(&fastq(1)),
            &path(&fastq(2)),
        ],
        ws.path(),
    );
    let input = ws.input(
        &[
            ("SAMPLE_ID", "R".into()),
            ("REFERENCE", path(&reference)),
            ("FASTQ_1", path(&fastq(1))),
            ("FASTQ_2", path(&fastq(2))),
            ("JOB_OUTPUT_PREFIX", path(&ws.out())),
        ],
        None,
    );
    let run = |run_id: &str, extra: &[&str]| {
        let output = ws.run(&input, run_id, &[&["--threads", "2"], extra].concat(), &[]);
        assert!(output.status.success(), "{run_id}: {}", stderr(&output));
        ws.out().join("R").join(run_id)
    };
    let balanced = run("balanced", &[]);
    let by_contig = run("by-contig", &["--shard-bases", "0"]);
    let regions = |run_dir: &Path| -> Vec<String> {
        call_tasks(run_dir)
            .into_iter()
            .map(|(_, region, _)| region)
            .collect()
    };
    assert_eq!(regions(&balanced), ["a:1-600000", "a:600001-1200000", "b"]);
    assert_eq!(regions(&by_contig), ["a", "b"]);
    assert!(records(&by_contig.join("R.vcf.gz")).len() > 100);
    assert_same_records(&balanced.join("R.vcf.gz"), &by_contig.join("R.vcf.gz"));
}

#[test]
fn an_execution_input_with_chunks_and_shards_runs_locally_as_the_state_machine_runs_it() {
    let ws = Workspace::new();
    let reference = testdata().join("ref.fa");
    let plan = ws
        .biojob()
        .args(["plan-shards", "--reference"])
        .arg(&reference)
        .args(["--contigs", "chr20,chr22,chrM", "--shard-bases", "100000"])
        .output()
        .unwrap();
    assert!(plan.status.success(), "{}", stderr(&plan));
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).unwrap();
    let write_input = |name: &str, shards: &serde_json::Value| {
        let path = ws.demo_input(&CONTIGS);
        let mut input: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        // 13,860 pairs: 7 blocks of 2,000 dealt into 3 chunks (3, 2 and 2 blocks).
        input["params"]["chunks"] = serde_json::json!([0, 1, 2]);
        input["params"]["chunkPairs"] = 2000.into();
        input["params"]["shards"] = shards.clone();
        input["params"]["shardBases"] = plan["shardBases"].clone();
        let path = ws.path().join(name);
        std::fs::write(&path, input.to_string()).unwrap();
        path
    };
    let input = write_input("aws-input.json", &plan["shards"]);
    // The plan, as --dry-run prints it (an empty SAMPLESHEET, as the state machine passes
    // for one sample, is no sheet).
    let dry_run = ws
        .biojob()
        .args(["run", "--dry-run", "--input"])
        .arg(&input)
        .env("SAMPLESHEET", "")
        .output()
        .unwrap();
    assert!(dry_run.status.success(), "{}", stderr(&dry_run));
    assert!(
        String::from_utf8_lossy(&dry_run.stdout).contains(
            "2. split\n   (biojob checks the FASTQ pair and deals blocks of 2000 read pairs in \
             turn into 3 chunks, gzip level 2)\n"
        ),
        "{}",
        String::from_utf8_lossy(&dry_run.stdout)
    );

    // A flag that contradicts the input is refused before anything runs.
    for (flag, message) in [
        (
            ["--chunk-pairs", "5000"],
            "error: --chunk-pairs (BIOJOB_ALIGN_CHUNK_PAIRS) is 5000, and the input's \
             params.chunkPairs is 2000",
        ),
        (
            ["--shard-bases", "0"],
            "error: --shard-bases (BIOJOB_CALL_SHARD_BASES) is 0, and the input's \
             params.shardBases is 100000",
        ),
    ] {
        let output = ws.run(&input, "flags", &flag, &[]);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        assert_eq!(stderr(&output).lines().next(), Some(message));
    }
    // Shards listed for another plan: the state machine's gather would fail after calling.
    let stale = write_input("stale.json", &serde_json::json!([0, 1]));
    let output = ws.run(&stale, "stale", &[], &[]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(
            "error: params.shards lists 2 shards, and the contigs called cut into shards of at \
             most 100000 bases are 4\n"
        ),
        "{}",
        stderr(&output)
    );
    assert!(!ws.out().join("NA12878/stale/NA12878.align.bam").exists());

    let output = ws.run(&input, "local", &[], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let local = ws.out().join("NA12878/local");
    let step = |name: &str, shard: Option<u64>| (name.to_owned(), shard, "succeeded".to_owned());
    let mut expected = vec![
        step("prepare-reference", None),
        step("split", None),
        step("align", Some(0)),
        step("align", Some(1)),
        step("align", Some(2)),
        step("merge", None),
    ];
    expected.extend((0..4).map(|shard| step("call", Some(shard))));
    expected.extend([step("gather", None), step("qc", None)]);
    assert_eq!(tasks(&local), expected);
    let regions: Vec<String> = call_tasks(&local).into_iter().map(|t| t.1).collect();
    assert_eq!(serde_json::json!(regions), plan["regions"]);

    // The same chunks made by the Batch jobs the state machine runs.
    let batch = ws.path().join("batch");
    let job = |args: &[&str], env: &[(&str, &str)]| {
        let mut command = step_job(&ws, &reference, &batch, args);
        command
            .env("FASTQ_1", testdata().join("NA12878_R1.fastq.gz"))
            .env("FASTQ_2", testdata().join("NA12878_R2.fastq.gz"))
            .env("JOB_WORKFLOW_NAME", "biojob")
            .env("JOB_WORKFLOW_EXECUTION_ID", "x")
            .envs(env.iter().copied());
        let output = command.output().unwrap();
        assert!(output.status.success(), "{args:?}: {}", stderr(&output));
    };
    let chunking = [("CHUNKS", "3"), ("BIOJOB_ALIGN_CHUNK_PAIRS", "2000")];
    job(&["split"], &chunking);
    for chunk in ["0", "1", "2"] {
        job(&["align"], &[("CHUNK", chunk)]);
    }
    job(&["merge"], &chunking);
    let view = |bam: &Path| tool("samtools", &["view", bam.to_str().unwrap()], Path::new("/"));
    let local_records = view(&local.join("NA12878.align.bam"));
    let primary = local_records
        .lines()
        .filter(|line| line.split('\t').nth(1).unwrap().parse::<u16>().unwrap() & 0x900 == 0)
        .count();
    assert_eq!(primary, 2 * 13_860, "one primary record per read");
    assert!(
        local_records == view(&batch.join("biojob/x/NA12878.align.bam")),
        "the local run's merged BAM differs from the Batch jobs'"
    );
}
