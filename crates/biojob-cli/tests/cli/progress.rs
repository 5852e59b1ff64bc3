//! Progress in JSON logs: the align task's pairs, share of the input read, rate and time left,
//! and each calling shard's share of bases, at `BIOJOB_PROGRESS_INTERVAL`; QC's BAM part done
//! beside calling.

use serde_json::Value;

use crate::support::{Workspace, stderr, testdata};

/// The `progress` lines of task `task` in JSON log output, as their `fields`.
fn progress_lines(log: &str, task: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .map(|line| line["fields"].clone())
        .filter(|fields| {
            fields["message"]
                .as_str()
                .is_some_and(|message| message.starts_with("progress: "))
                && fields["task"] == task
        })
        .collect()
}

#[test]
fn json_logs_carry_the_align_and_call_progress_at_the_interval() {
    let ws = Workspace::new();
    let input = ws.demo_input(&["chr20", "chr22", "chrM"]);
    let mut command = ws.biojob();
    command
        .env("BIOJOB_LOG_FORMAT", "json")
        .env("BIOJOB_PROGRESS_INTERVAL", "100ms")
        .args(["run", "--input"])
        .arg(&input)
        .args(["--run-id", "progress"]);
    let output = command.output().unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let log = stderr(&output);

    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(ws.out().join("NA12878/progress/manifest.json")).unwrap(),
    )
    .unwrap();
    let read_pairs = manifest["read_pairs"].as_u64().unwrap();
    let input_bytes: u64 = ["NA12878_R1.fastq.gz", "NA12878_R2.fastq.gz"]
        .iter()
        .map(|name| std::fs::metadata(testdata().join(name)).unwrap().len())
        .sum();

    let align = progress_lines(&log, "align");
    assert!(!align.is_empty(), "no align progress in:\n{log}");
    let mut last_pairs = 0;
    for fields in &align {
        assert_eq!(fields["unit"], "InputBytes", "{fields}");
        assert_eq!(fields["total"].as_u64(), Some(input_bytes), "{fields}");
        let done = fields["done"].as_u64().unwrap();
        assert!(done <= input_bytes, "{fields}");
        let pairs = fields["pairs"].as_u64().unwrap();
        assert!(pairs >= last_pairs && pairs <= read_pairs, "{fields}");
        last_pairs = pairs;
        if done > 0 {
            let fraction = fields["fraction"].as_f64().unwrap();
            assert!((fraction - done as f64 / input_bytes as f64).abs() < 1e-9);
            assert!(fields["eta_seconds"].as_f64().unwrap() >= 0.0, "{fields}");
            assert!(
                fields["message"]
                    .as_str()
                    .unwrap()
                    .contains("% of the input read"),
                "{fields}"
            );
        }
    }

    // QC's BAM part ran beside calling: the qc task found it done and ran only the VCF's part,
    // and its record lists every command.
    let qc_line = log
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line["fields"]["message"] == "QC")
        .expect("the qc task's QC line");
    assert_eq!(qc_line["fields"]["bam_part_done"], true, "{qc_line}");
    let qc = manifest["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|task| task["step"] == "qc")
        .unwrap();
    let labels: Vec<&str> = qc["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|command| command["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        ["samtools-flagstat", "samtools-stats", "bcftools-stats"]
    );

    // Calling shards, whose VCF is one 64 KiB block here, report their bases as the total.
    for (task, bases) in [("call chr20", 300_000), ("call chr22", 12_356)] {
        for fields in progress_lines(&log, task) {
            assert_eq!(fields["unit"], "Bases", "{fields}");
            assert_eq!(fields["total"].as_u64(), Some(bases), "{fields}");
            assert!(fields["done"].as_u64().unwrap() <= bases, "{fields}");
            assert_eq!(fields["pairs"], Value::Null, "{fields}");
        }
    }
}
