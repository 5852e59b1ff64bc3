//! Scaling out on the real data: calling shards cut by size give the records of calling each
//! contig whole.

use std::path::Path;

use crate::support::{Workspace, assert_same_records, hand_run, records, stderr};

const CONTIGS: [&str; 3] = ["chr20", "chr22", "chrM"];

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
