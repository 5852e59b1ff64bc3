//! A cohort's jobs on AWS Batch when lanes are split (docs/cohorts.md "On AWS"): what `biojob
//! plan-cohort` prints for the execution input, and the usage errors of split, align and merge
//! jobs whose `SAMPLESHEET`, `LANE`, `LANE_CHUNKS`, `CHUNK` and `CHUNKS` do not agree.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::{Workspace, error_lines, stderr, stdout, testdata};

/// A sheet of sample A in three lanes (the middle one NA12878's FASTQ pair, 860,240 bytes of
/// read 1; the others a few bytes) and sample B in one; returns its path.
fn sheet(ws: &Workspace) -> PathBuf {
    let dir = ws.path();
    for name in ["a1", "a3", "b1"] {
        for mate in [1, 2] {
            std::fs::write(
                dir.join(format!("{name}_R{mate}.fastq")),
                format!("@{name}/{mate}\nACGT\n+\nIIII\n"),
            )
            .unwrap();
        }
    }
    let data = testdata();
    let na12878 = |mate: u8| data.join(format!("NA12878_R{mate}.fastq.gz"));
    let text = format!(
        "sample,lane,fastq_1,fastq_2\nA,1,a1_R1.fastq,a1_R2.fastq\nA,2,{},{}\nA,3,a3_R1.fastq,a3_R2.fastq\nB,1,b1_R1.fastq,b1_R2.fastq\n",
        na12878(1).display(),
        na12878(2).display()
    );
    let path = dir.join("sheet.csv");
    std::fs::write(&path, text).unwrap();
    path
}

fn plan_cohort(ws: &Workspace, sheet: &Path, extra: &[&str]) -> Output {
    ws.biojob()
        .env_remove("BIOJOB_ALIGN_CHUNK_PAIRS")
        .arg("plan-cohort")
        .arg("--samplesheet")
        .arg(sheet)
        .args(extra)
        .output()
        .unwrap()
}

#[test]
fn plan_cohort_lists_each_lane_s_chunks_numbered_across_its_sample() {
    let ws = Workspace::new();
    let sheet = sheet(&ws);
    assert_eq!(
        std::fs::metadata(testdata().join("NA12878_R1.fastq.gz"))
            .unwrap()
            .len(),
        860_240
    );
    // Lanes larger than 300,000 bytes are split: NA12878's into ceil(860240 / 300000) = 3.
    let output = plan_cohort(
        &ws,
        &sheet,
        &["--chunk-bytes", "300000", "--chunk-pairs", "2000"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let plan: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(
        plan,
        serde_json::json!({
            "samplesheet": sheet.display().to_string(),
            "chunkPairs": 2000,
            "samples": [
                {
                    "sample": "A",
                    "chunks": [0, 1, 2, 3, 4],
                    "lanes": [
                        {"lane": 0, "chunks": [0]},
                        {"lane": 1, "chunks": [1, 2, 3]},
                        {"lane": 2, "chunks": [4]}
                    ]
                },
                {"sample": "B", "chunks": [0], "lanes": [{"lane": 0, "chunks": [0]}]}
            ]
        })
    );
    // A lane exactly as large as --chunk-bytes is one chunk.
    let output = plan_cohort(
        &ws,
        &sheet,
        &["--chunk-bytes", "860240", "--chunk-pairs", "2000"],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let plan: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(
        plan["samples"][0]["lanes"][1],
        serde_json::json!({"lane": 1, "chunks": [1]})
    );
    // Without --chunk-bytes no lane is split: lane i is chunk i.
    let output = plan_cohort(&ws, &sheet, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let plan: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    assert_eq!(plan["chunkPairs"], 0);
    assert_eq!(
        plan["samples"][0],
        serde_json::json!({
            "sample": "A",
            "chunks": [0, 1, 2],
            "lanes": [
                {"lane": 0, "chunks": [0]},
                {"lane": 1, "chunks": [1]},
                {"lane": 2, "chunks": [2]}
            ]
        })
    );
}

#[test]
fn plan_cohort_refuses_to_split_a_lane_without_the_block_size() {
    let ws = Workspace::new();
    let sheet = sheet(&ws);
    let output = plan_cohort(&ws, &sheet, &["--chunk-bytes", "300000"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            "error: lane 2 of sample A is larger than --chunk-bytes and is split, and \
             --chunk-pairs (BIOJOB_ALIGN_CHUNK_PAIRS) is 0",
            "hint: give --chunk-pairs, the read pairs per block dealt to a lane's chunks (a \
             multiple of bwa's batch: docs/scaling.md)",
            "exit class: usage (2)",
        ]
    );
    assert_eq!(stdout(&output), "");
}

/// `biojob STEP` as a job of sample A, with `env` (an empty value: the variable is removed).
fn job(ws: &Workspace, step: &str, env: &[(&str, &str)]) -> Output {
    let mut command = ws.biojob();
    command
        .arg(step)
        .env("SAMPLE_ID", "A")
        .env("JOB_OUTPUT_PREFIX", ws.out())
        .env("REFERENCE", testdata().join("ref.fa"))
        .env("BIOJOB_ALIGN_CHUNK_PAIRS", "1000");
    for key in [
        "SAMPLESHEET",
        "LANE",
        "LANE_CHUNKS",
        "CHUNK",
        "CHUNKS",
        "FASTQ_1",
        "FASTQ_2",
        "JOB_WORKFLOW_NAME",
        "JOB_WORKFLOW_EXECUTION_ID",
    ] {
        command.env_remove(key);
    }
    for (key, value) in env {
        if value.is_empty() {
            command.env_remove(key);
        } else {
            command.env(key, value);
        }
    }
    command.output().unwrap()
}

/// A job (its step), its environment, and the error and hint it prints.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, [String; 2]);

/// Each job's environment that does not agree, and the exact error and hint: a usage error
/// (exit 2) before any input is read or any tool runs.
#[test]
fn a_lane_s_split_align_and_merge_jobs_refuse_an_inconsistent_environment() {
    let ws = Workspace::new();
    let sheet = sheet(&ws);
    let sheet_text = sheet.display().to_string();
    let s = sheet_text.as_str();
    let remedy = "hint: give LANE_CHUNKS as biojob plan-cohort lists the lane's chunks: a JSON \
                  array ([3,4,5]) or comma-separated";
    let cases: Vec<Case<'_>> =
        vec![
        (
            "split",
            vec![("SAMPLESHEET", s), ("LANE_CHUNKS", "[1,2,3]")],
            [
                "error: a cohort's split job splits one lane, and LANE is not set".into(),
                "hint: set LANE to the lane's 0-based index among the sample's rows of the sheet"
                    .into(),
            ],
        ),
        (
            "split",
            vec![("SAMPLESHEET", s), ("LANE", "1"), ("CHUNKS", "3")],
            [
                "error: CHUNKS is set with SAMPLESHEET: a cohort lane's split deals its read \
                 pairs into the lane's chunks, LANE_CHUNKS"
                    .into(),
                "hint: leave CHUNKS out and set LANE_CHUNKS".into(),
            ],
        ),
        (
            "split",
            vec![("SAMPLESHEET", s), ("LANE", "1")],
            [
                "error: a cohort's split job deals the lane into its chunks, and LANE_CHUNKS is \
                 not set"
                    .into(),
                "hint: set LANE_CHUNKS to the lane's chunk numbers among its sample's chunks, as \
                 biojob plan-cohort lists them"
                    .into(),
            ],
        ),
        (
            "split",
            vec![("SAMPLESHEET", s), ("LANE", "1"), ("LANE_CHUNKS", "[1,3]")],
            [
                "error: LANE_CHUNKS [1,3] is not consecutive: a lane's chunks are numbered one \
                 after the other"
                    .into(),
                remedy.into(),
            ],
        ),
        (
            "split",
            vec![("SAMPLESHEET", s), ("LANE", "2"), ("LANE_CHUNKS", "1,2")],
            [
                "error: LANE_CHUNKS starts at chunk 1, and lane 2 comes after 2 lanes of its \
                 sample, each at least one chunk"
                    .into(),
                remedy.into(),
            ],
        ),
        (
            "split",
            vec![("LANE", "1"), ("CHUNKS", "3")],
            [
                "error: LANE names a lane of a sample sheet, and no sheet is given".into(),
                "hint: set SAMPLESHEET with LANE, or leave LANE out".into(),
            ],
        ),
        (
            "split",
            vec![("LANE_CHUNKS", "[1,2]"), ("CHUNKS", "2")],
            [
                "error: LANE_CHUNKS numbers a sample sheet lane's chunks, and no sheet is given"
                    .into(),
                "hint: set SAMPLESHEET with LANE_CHUNKS, or leave LANE_CHUNKS out".into(),
            ],
        ),
        (
            "align",
            vec![("LANE_CHUNKS", "[1,2]"), ("CHUNK", "1")],
            [
                "error: LANE_CHUNKS numbers a sample sheet lane's chunks, and no sheet is given"
                    .into(),
                "hint: set SAMPLESHEET with LANE_CHUNKS, or leave LANE_CHUNKS out".into(),
            ],
        ),
        (
            "align",
            vec![("SAMPLESHEET", s), ("LANE", "1"), ("CHUNK", "1")],
            [
                "error: CHUNK is 1: one of a split lane's chunks, and LANE_CHUNKS (the lane's \
                 chunks) is not set"
                    .into(),
                "hint: set LANE_CHUNKS with CHUNK (the state machine does), or leave CHUNK out \
                 to align the lane whole"
                    .into(),
            ],
        ),
        (
            "align",
            vec![("SAMPLESHEET", s), ("LANE", "1"), ("LANE_CHUNKS", "[1,2,3]")],
            [
                "error: lane 1 of sample A is split into chunks 1 to 3 (LANE_CHUNKS [1,2,3]), \
                 and CHUNK is not set"
                    .into(),
                "hint: set CHUNK to the chunk to align, one of LANE_CHUNKS".into(),
            ],
        ),
        (
            "align",
            vec![
                ("SAMPLESHEET", s),
                ("LANE", "1"),
                ("LANE_CHUNKS", "[1]"),
                ("CHUNK", "1"),
            ],
            [
                "error: CHUNK is 1, and lane 1 of sample A is one chunk (LANE_CHUNKS [1]): it \
                 is aligned whole"
                    .into(),
                "hint: leave CHUNK out for a lane of one chunk".into(),
            ],
        ),
        (
            "align",
            vec![
                ("SAMPLESHEET", s),
                ("LANE", "1"),
                ("LANE_CHUNKS", "[1,2,3]"),
                ("CHUNK", "4"),
            ],
            [
                "error: CHUNK is 4, not one of the chunks of lane 1 of sample A (LANE_CHUNKS \
                 [1,2,3])"
                    .into(),
                "hint: set CHUNK to one of LANE_CHUNKS".into(),
            ],
        ),
        (
            "align",
            vec![("SAMPLESHEET", s), ("LANE", "1"), ("LANE_CHUNKS", "1,x")],
            [
                "error: LANE_CHUNKS \"1,x\" is not a list of chunk numbers: \"x\": invalid \
                 digit found in string"
                    .into(),
                remedy.into(),
            ],
        ),
        (
            "align",
            vec![("SAMPLESHEET", s), ("LANE", "1"), ("LANE_CHUNKS", "[]")],
            ["error: LANE_CHUNKS lists no chunk".into(), remedy.into()],
        ),
        (
            "align",
            vec![
                ("SAMPLESHEET", s),
                ("LANE", "1"),
                ("LANE_CHUNKS", "[9999,10000]"),
                ("CHUNK", "9999"),
            ],
            [
                "error: LANE_CHUNKS goes up to chunk 10000: chunk names have four digits".into(),
                "hint: split the sample's lanes into at most 10000 chunks".into(),
            ],
        ),
        (
            "merge",
            vec![("SAMPLESHEET", s), ("CHUNKS", "2")],
            [
                format!(
                    "error: CHUNKS is 2, and sample A has 3 lanes in the sample sheet {}: each \
                     lane is at least one chunk",
                    sheet.display()
                ),
                "hint: make params.samples again with biojob plan-cohort from the sheet the \
                 execution reads"
                    .into(),
            ],
        ),
    ];
    for (step, env, [error, hint]) in cases {
        let output = job(&ws, step, &env);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{step} {env:?}: {}",
            stderr(&output)
        );
        assert_eq!(
            error_lines(&output),
            [error, hint, "exit class: usage (2)".to_owned()],
            "{step} {env:?}"
        );
    }
    // Nothing was written: every refusal came before the job's run prefix was touched.
    assert!(!ws.out().exists());
}

/// A sheet of sample A in two lanes of NA12878's reads: its first 400 pairs (plain FASTQ), then
/// the whole pair (13,860 pairs); returns its path.
fn real_sheet(ws: &Workspace) -> PathBuf {
    use std::io::Read;
    let data = testdata();
    for mate in [1, 2] {
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(
            std::fs::File::open(data.join(format!("NA12878_R{mate}.fastq.gz"))).unwrap(),
        )
        .read_to_string(&mut text)
        .unwrap();
        let head: Vec<&str> = text.lines().take(400 * 4).collect();
        std::fs::write(
            ws.path().join(format!("head_R{mate}.fastq")),
            head.join("\n") + "\n",
        )
        .unwrap();
    }
    let text = format!(
        "sample,lane,fastq_1,fastq_2\nA,1,head_R1.fastq,head_R2.fastq\nA,2,{},{}\n",
        data.join("NA12878_R1.fastq.gz").display(),
        data.join("NA12878_R2.fastq.gz").display()
    );
    let path = ws.path().join("real-sheet.csv");
    std::fs::write(&path, text).unwrap();
    path
}

fn step_manifest(ws: &Workspace, name: &str) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(ws.out().join("samples/A").join(name)).unwrap()).unwrap()
}

/// Lane 1 aligned whole as chunk 0; lane 2 split into chunks 1 and 2 (blocks of 5,000 pairs:
/// 8,860 and 5,000), each aligned with the lane's read group; the merge of the 3 chunks holds
/// every pair. A split manifest that no longer agrees with its chunks fails the merge (31);
/// CHUNKS leaving out a split lane's chunk (2), a split that did not finish or is not there
/// (11) are refused before anything is merged.
#[test]
fn a_split_lane_s_chunks_are_aligned_and_merged_with_the_sample_s_other_lanes() {
    let ws = Workspace::new();
    let sheet = real_sheet(&ws);
    let sheet_text = sheet.display().to_string();
    let s = sheet_text.as_str();
    let off = ("BIOJOB_MARK_DUPLICATES", "0");
    let runs: [(&str, Vec<(&str, &str)>); 5] = [
        ("align", vec![("LANE", "0"), ("LANE_CHUNKS", "[0]")]),
        (
            "split",
            vec![
                ("LANE", "1"),
                ("LANE_CHUNKS", "[1,2]"),
                ("BIOJOB_ALIGN_CHUNK_PAIRS", "5000"),
            ],
        ),
        (
            "align",
            vec![("LANE", "1"), ("LANE_CHUNKS", "[1,2]"), ("CHUNK", "1")],
        ),
        (
            "align",
            vec![("LANE", "1"), ("LANE_CHUNKS", "1,2"), ("CHUNK", "2")],
        ),
        ("merge", vec![("CHUNKS", "3")]),
    ];
    for (step, env) in &runs {
        let mut env = env.clone();
        env.extend([("SAMPLESHEET", s), off]);
        let output = job(&ws, step, &env);
        assert!(
            output.status.success(),
            "{step} {env:?}: {}",
            stderr(&output)
        );
    }
    let dir = ws.out().join("samples/A");
    let mut names = Workspace::files(&dir);
    names.retain(|name| !name.starts_with("logs/"));
    assert_eq!(
        names,
        [
            "A.align.0000.bam",
            "A.align.0000.bam.bai",
            "A.align.0000.manifest.json",
            "A.align.0001.bam",
            "A.align.0001.bam.bai",
            "A.align.0001.manifest.json",
            "A.align.0002.bam",
            "A.align.0002.bam.bai",
            "A.align.0002.manifest.json",
            "A.align.bam",
            "A.align.bam.bai",
            "A.merge.manifest.json",
            "A.split.0001.manifest.json",
            "A.split.0001_R1.fastq.gz",
            "A.split.0001_R2.fastq.gz",
            "A.split.0002_R1.fastq.gz",
            "A.split.0002_R2.fastq.gz",
        ]
    );
    let pairs = |name: &str| step_manifest(&ws, name)["task"]["records"]["read_pairs"].clone();
    assert_eq!(pairs("A.split.0001.manifest.json"), 13_860);
    assert_eq!(
        [
            pairs("A.align.0000.manifest.json"),
            pairs("A.align.0001.manifest.json"),
            pairs("A.align.0002.manifest.json")
        ],
        [400, 8_860, 5_000]
    );
    // Both chunks of lane 2 carry its read group; the merged BAM has one @RG per lane and
    // every read of both lanes (each pair two primary records).
    let header = |bam: &str| {
        let output = std::process::Command::new("samtools")
            .args(["view", "-H"])
            .arg(dir.join(bam))
            .output()
            .unwrap();
        String::from_utf8(output.stdout)
            .unwrap()
            .lines()
            .filter(|line| line.starts_with("@RG"))
            .map(|line| line.split('\t').nth(1).unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(header("A.align.0001.bam"), ["ID:A.2"]);
    assert_eq!(header("A.align.0002.bam"), ["ID:A.2"]);
    assert_eq!(header("A.align.bam"), ["ID:A.1", "ID:A.2"]);
    let primary = std::process::Command::new("samtools")
        .args(["view", "-c", "-F", "0x900"])
        .arg(dir.join("A.align.bam"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(primary.stdout).unwrap().trim(),
        (2 * (400 + 13_860)).to_string()
    );
    // The execution input plan-cohort prints for these jobs, run locally: the same split and
    // chunks, and the Batch jobs' merged BAM record for record.
    let planned = plan_cohort(
        &ws,
        &sheet,
        &["--chunk-bytes", "500000", "--chunk-pairs", "5000"],
    );
    assert!(planned.status.success(), "{}", stderr(&planned));
    let mut params: serde_json::Value = serde_json::from_slice(&planned.stdout).unwrap();
    assert_eq!(
        params["samples"],
        serde_json::json!([{"sample": "A", "chunks": [0, 1, 2],
            "lanes": [{"lane": 0, "chunks": [0]}, {"lane": 1, "chunks": [1, 2]}]}])
    );
    let local_out = ws.path().join("local");
    params["queue"] = "local".into();
    params["chromosomes"] = serde_json::json!(["chr22", "chrM"]);
    params["environment"] = serde_json::json!({
        "REFERENCE": testdata().join("ref.fa").display().to_string(),
        "JOB_OUTPUT_PREFIX": local_out.display().to_string(),
    });
    let input = ws.path().join("cohort-input.json");
    std::fs::write(&input, serde_json::json!({ "params": params }).to_string()).unwrap();
    let dry_run = ws
        .biojob()
        .args(["run", "--dry-run", "--mark-duplicates", "off", "--input"])
        .arg(&input)
        .output()
        .unwrap();
    assert!(dry_run.status.success(), "{}", stderr(&dry_run));
    for expected in [
        "2. split the lanes params.samples lists in several chunks (into \
         <scratch>/samples/<sample>/lanes/<lane index>/)\n   [A lane 2]\n   (biojob checks the \
         FASTQ pair and deals blocks of 5000 read pairs in turn into 2 chunks, gzip level 2)\n\n",
        "3. align each lane, or chunk of a split lane (numbered across the sample: lane 0's \
         first), 1 at once",
        "   [A lane 1]\n",
        "   [A lane 2, each of its 2 chunks]\n",
        "samtools merge -@ 1 -c -p -f --write-index -o \
         '-##idx##<scratch>/A.align.bam.partial.bai' <bam.0000> <bam.0001> <bam.0002>\n",
    ] {
        assert!(
            stdout(&dry_run).contains(expected),
            "{expected}\n{}",
            stdout(&dry_run)
        );
    }
    let output = ws.run(
        &input,
        "local",
        &[],
        &[("BIOJOB_MARK_DUPLICATES", Path::new("0"))],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(local_out.join("local/manifest.json")).unwrap())
            .unwrap();
    let aligned: Vec<(String, Option<u64>)> = manifest["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|task| ["split", "align", "merge"].contains(&task["step"].as_str().unwrap()))
        .map(|task| {
            (
                task["step"].as_str().unwrap().to_owned(),
                task["shard"].as_u64(),
            )
        })
        .collect();
    let task = |step: &str, shard: Option<u64>| (step.to_owned(), shard);
    assert_eq!(
        aligned,
        [
            task("split", Some(1)),
            task("align", Some(0)),
            task("align", Some(1)),
            task("align", Some(2)),
            task("merge", None)
        ]
    );
    let records = |bam: &Path| {
        let output = std::process::Command::new("samtools")
            .arg("view")
            .arg(bam)
            .output()
            .unwrap();
        assert!(output.status.success());
        output.stdout
    };
    assert!(
        records(&local_out.join("local/samples/A/A.align.bam"))
            == records(&dir.join("A.align.bam")),
        "the local run's merged BAM differs from the Batch jobs'"
    );

    // A lane's align job without LANE_CHUNKS once a lane of the sample was split: its BAM
    // would be numbered by the lane's index, another chunk's number; refused.
    let chunk_1 = std::fs::read(dir.join("A.align.0001.bam")).unwrap();
    let output = job(&ws, "align", &[("SAMPLESHEET", s), ("LANE", "1"), off]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output)[0],
        format!(
            "error: LANE_CHUNKS is not set, and lanes of sample A were split ({}): lane 1's chunk number is not its index",
            dir.join("A.split.0001.manifest.json").display()
        )
    );
    assert_eq!(
        std::fs::read(dir.join("A.align.0001.bam")).unwrap(),
        chunk_1
    );

    // The split's manifest edited to one pair more than its chunks aligned: the merge refuses.
    let split = dir.join("A.split.0001.manifest.json");
    let original = std::fs::read(&split).unwrap();
    let mut edited = step_manifest(&ws, "A.split.0001.manifest.json");
    edited["task"]["records"]["read_pairs"] = 13_861.into();
    std::fs::write(&split, edited.to_string()).unwrap();
    let output = job(&ws, "merge", &[("SAMPLESHEET", s), ("CHUNKS", "3"), off]);
    assert_eq!(output.status.code(), Some(31), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output),
        [
            format!(
                "error: merge A failed: {}: lane 2 of sample A: its split wrote 13861 read pairs, and its chunks 1 to 2 aligned 13860",
                split.display()
            ),
            "exit class: output_invalid (31)".to_owned(),
        ]
    );
    std::fs::write(&split, &original).unwrap();

    // CHUNKS leaving out a split lane's last chunk: refused before anything is merged, where
    // it would have merged the lane's first chunk only.
    let merged = std::fs::read(dir.join("A.align.bam")).unwrap();
    let output = job(&ws, "merge", &[("SAMPLESHEET", s), ("CHUNKS", "2"), off]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output)[0],
        format!(
            "error: merge A failed: CHUNKS is 2, and lane 2 of sample A was split into chunks 1 to 2 ({})",
            split.display()
        )
    );
    // Lane 1 with none of the merged chunks (chunk 0's align job made to name lane 2): refused
    // before anything is merged, naming the lane.
    let chunk_0 = dir.join("A.align.0000.manifest.json");
    let chunk_0_original = std::fs::read(&chunk_0).unwrap();
    let mut renamed = step_manifest(&ws, "A.align.0000.manifest.json");
    renamed["task"]["lane"] = "2".into();
    std::fs::write(&chunk_0, renamed.to_string()).unwrap();
    let output = job(&ws, "merge", &[("SAMPLESHEET", s), ("CHUNKS", "3"), off]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output)[0],
        "error: merge A failed: CHUNKS is 3, and none of chunks 0 to 2 is of lane 1 of sample A"
    );
    std::fs::write(&chunk_0, &chunk_0_original).unwrap();
    // A split that did not finish (a later attempt failed): its chunks cannot be accounted for.
    let mut failed = step_manifest(&ws, "A.split.0001.manifest.json");
    failed["task"]["status"] = "failed".into();
    std::fs::write(&split, failed.to_string()).unwrap();
    let output = job(&ws, "merge", &[("SAMPLESHEET", s), ("CHUNKS", "3"), off]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output)[0],
        format!(
            "error: merge A failed: {}: a lane split of sample A did not finish, so its chunks cannot be accounted for",
            split.display()
        )
    );
    // No split manifest at all, the lane aligned in two chunks: refused too.
    std::fs::remove_file(&split).unwrap();
    let output = job(&ws, "merge", &[("SAMPLESHEET", s), ("CHUNKS", "3"), off]);
    assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
    assert_eq!(
        error_lines(&output)[0],
        format!(
            "error: merge A failed: lane 2 of sample A was aligned in chunks [1, 2], and no finished split of the lane is in {}",
            dir.display()
        )
    );
    // Each refusal left the merged BAM as it was.
    assert_eq!(std::fs::read(dir.join("A.align.bam")).unwrap(), merged);
}

#[test]
fn a_lane_job_s_failure_names_the_lane_s_row_of_the_sheet() {
    let ws = Workspace::new();
    let data = testdata();
    std::fs::write(ws.path().join("empty_R2.fastq"), "").unwrap();
    std::fs::write(ws.path().join("one_R1.fastq"), "@r/1\nACGT\n+\nIIII\n").unwrap();
    let sheet = ws.path().join("sheet.csv");
    std::fs::write(
        &sheet,
        format!(
            "sample,lane,fastq_1,fastq_2,platform_unit\n# sample A\nA,1,{},{},FC.1\nA,2,one_R1.fastq,empty_R2.fastq,FC.2\n",
            data.join("NA12878_R1.fastq.gz").display(),
            data.join("NA12878_R2.fastq.gz").display(),
        ),
    )
    .unwrap();
    let s = sheet.display().to_string();
    let empty = ws.path().join("empty_R2.fastq");
    for (step, env, message) in [
        (
            "align",
            vec![("LANE", "1"), ("LANE_CHUNKS", "[1]")],
            format!(
                "error: align A lane 2 ({s} line 4) failed: {}: no records (empty file)",
                empty.display()
            ),
        ),
        (
            "split",
            vec![("LANE", "1"), ("LANE_CHUNKS", "[1,2]")],
            format!(
                "error: split A lane 2 ({s} line 4) failed: {}: no records (empty file)",
                empty.display()
            ),
        ),
    ] {
        let mut env = env.clone();
        env.push(("SAMPLESHEET", s.as_str()));
        let output = job(&ws, step, &env);
        assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
        assert_eq!(error_lines(&output)[0], message, "{}", stderr(&output));
    }
}
