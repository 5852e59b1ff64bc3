//! `biojob run` end to end on the real data, against the same tools run by hand.

use std::path::Path;

use crate::support::{
    Workspace, accuracy, assert_same_records, counts, hand_run, records, stdout, tool,
};

const CONTIGS: [&str; 3] = ["chr20", "chr22", "chrM"];

#[test]
fn end_to_end_matches_the_tools_run_by_hand() {
    let ws = Workspace::new();
    let input = ws.demo_input(&CONTIGS);
    let output = ws.run(&input, "e2e", &[], &[]);
    assert!(
        output.status.success(),
        "{}",
        crate::support::stderr(&output)
    );
    let run_dir = ws.out().join("NA12878/e2e");
    let vcf = run_dir.join("NA12878.vcf.gz");
    assert_eq!(
        stdout(&output),
        format!(
            "VCF: {}\nreport: {}\nmanifest: {}\n",
            vcf.display(),
            run_dir.join("report.html").display(),
            run_dir.join("manifest.json").display()
        )
    );

    let hand = hand_run();
    assert_same_records(&vcf, &hand.vcf);
    let expected_counts: Vec<(String, usize)> = hand
        .per_contig
        .iter()
        .map(|(contig, path)| (contig.clone(), records(path).len()))
        .collect();
    assert_eq!(counts(&vcf, &CONTIGS), expected_counts);
    // The test data's README gives these for `bcftools call -mv` with these tools.
    assert_eq!(
        expected_counts,
        [
            ("chr20".to_owned(), 422),
            ("chr22".to_owned(), 16),
            ("chrM".to_owned(), 0)
        ]
    );

    // chrM has reads but no variants: a valid, indexed, header-only VCF.
    let chrm = run_dir.join("NA12878.call.0002.vcf.gz");
    assert_eq!(records(&chrm), Vec::<String>::new());
    assert_eq!(
        tool(
            "bcftools",
            &["index", "-n", chrm.to_str().unwrap()],
            Path::new("/")
        ),
        "0\n"
    );
    assert!(
        tool(
            "bcftools",
            &["view", "-h", chrm.to_str().unwrap()],
            Path::new("/")
        )
        .contains("##contig=<ID=chrM,length=16571>")
    );
    // The final index answers region queries.
    let vcf_text = vcf.to_str().unwrap();
    assert_eq!(
        tool("bcftools", &["index", "-n", vcf_text], Path::new("/")),
        "438\n"
    );
    assert_eq!(
        tool("tabix", &["-l", vcf_text], Path::new("/")),
        "chr20\nchr22\n"
    );
    let chr22 = tool(
        "bcftools",
        &["view", "-H", "-r", "chr22", vcf_text],
        Path::new("/"),
    );
    assert_eq!(chr22.lines().count(), 16);

    // The BAM carries the read group.
    let bam = run_dir.join("NA12878.align.bam");
    let header = tool(
        "samtools",
        &["view", "-H", bam.to_str().unwrap()],
        Path::new("/"),
    );
    let read_groups: Vec<&str> = header.lines().filter(|l| l.starts_with("@RG")).collect();
    assert_eq!(read_groups, ["@RG\tID:NA12878\tSM:NA12878\tPL:ILLUMINA"]);

    // Exactly these files are published.
    let published: Vec<String> = Workspace::files(&run_dir)
        .into_iter()
        .filter(|f| !f.starts_with("logs/"))
        .collect();
    assert_eq!(
        published,
        [
            "NA12878.align.bam",
            "NA12878.align.bam.bai",
            "NA12878.bcftools_stats.txt",
            "NA12878.call.0000.vcf.gz",
            "NA12878.call.0000.vcf.gz.tbi",
            "NA12878.call.0001.vcf.gz",
            "NA12878.call.0001.vcf.gz.tbi",
            "NA12878.call.0002.vcf.gz",
            "NA12878.call.0002.vcf.gz.tbi",
            "NA12878.flagstat.txt",
            "NA12878.samtools_stats.txt",
            "NA12878.vcf.gz",
            "NA12878.vcf.gz.tbi",
            "manifest.json",
            "qc.json",
            "report.html",
        ]
    );
    assert!(run_dir.join("logs/bwa-mem.stderr").is_file());

    // The manifest records every step, its commands and each output's size and sha256.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["status"], "succeeded");
    assert_eq!(manifest["exit_code"], 0);
    assert_eq!(manifest["read_pairs"], 13860);
    assert_eq!(manifest["inputs"]["contigs"], serde_json::json!(CONTIGS));
    let tasks: Vec<String> = manifest["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            format!(
                "{} {} {}",
                t["step"].as_str().unwrap(),
                t["contig"].as_str().unwrap_or("-"),
                t["status"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        tasks,
        [
            "prepare-reference - succeeded",
            "align - succeeded",
            "call chr20 succeeded",
            "call chr22 succeeded",
            "call chrM succeeded",
            "gather - succeeded",
            "qc - succeeded",
        ]
    );
    let versions: Vec<&str> = manifest["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["tool"].as_str().unwrap())
        .collect();
    assert_eq!(versions, ["bwa", "samtools", "bcftools"]);
    let align = &manifest["tasks"][1];
    let labels: Vec<&str> = align["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["label"].as_str().unwrap())
        .collect();
    assert_eq!(labels, ["bwa-mem", "samtools-sort"]);
    assert!(align["cpu_seconds"].as_f64().unwrap() > 0.0);
    assert!(align["peak_rss_bytes"].as_u64().unwrap() > 1_000_000);
    for task in manifest["tasks"].as_array().unwrap() {
        for out in task["outputs"].as_array().unwrap() {
            let path = run_dir.join(out["name"].as_str().unwrap());
            let sum = tool("sha256sum", &[path.to_str().unwrap()], Path::new("/"));
            assert_eq!(out["sha256"].as_str().unwrap(), &sum[..64]);
            assert_eq!(
                out["bytes"].as_u64().unwrap(),
                std::fs::metadata(&path).unwrap().len()
            );
        }
    }
    // The scratch directory is gone.
    assert_eq!(
        Workspace::files(&ws.path().join("scratch")),
        Vec::<String>::new()
    );
}

#[test]
fn accuracy_against_giab_is_at_least_the_hand_run() {
    let ws = Workspace::new();
    let input = ws.demo_input(&CONTIGS);
    let output = ws.run(&input, "accuracy", &[], &[]);
    assert!(
        output.status.success(),
        "{}",
        crate::support::stderr(&output)
    );
    let vcf = ws.out().join("NA12878/accuracy/NA12878.vcf.gz");
    let ours = accuracy(&vcf, &ws.path().join("accuracy-biojob"));
    let hand = accuracy(&hand_run().vcf, &hand_run().dir.join("accuracy"));
    let rates = |(tp, fp, fn_): (usize, usize, usize)| {
        (tp as f64 / (tp + fp) as f64, tp as f64 / (tp + fn_) as f64)
    };
    let (precision, recall) = rates(ours);
    let (hand_precision, hand_recall) = rates(hand);
    println!(
        "biojob: TP {} FP {} FN {} precision {precision:.3} recall {recall:.3}; \
         by hand: TP {} FP {} FN {} precision {hand_precision:.3} recall {hand_recall:.3}",
        ours.0, ours.1, ours.2, hand.0, hand.1, hand.2
    );
    assert!(
        precision >= hand_precision,
        "precision {precision} < {hand_precision}"
    );
    assert!(recall >= hand_recall, "recall {recall} < {hand_recall}");
    // The test data's README baseline: TP 201, FP 19, FN 35.
    assert_eq!(ours, (201, 19, 35));
}

#[test]
fn one_and_two_threads_give_the_same_records() {
    let ws = Workspace::new();
    let input = ws.demo_input(&CONTIGS);
    for threads in ["1", "2"] {
        let output = ws.run(
            &input,
            &format!("threads-{threads}"),
            &["--threads", threads],
            &[],
        );
        assert!(
            output.status.success(),
            "{}",
            crate::support::stderr(&output)
        );
    }
    let one = records(&ws.out().join("NA12878/threads-1/NA12878.vcf.gz"));
    let two = records(&ws.out().join("NA12878/threads-2/NA12878.vcf.gz"));
    assert_eq!(one.len(), 438);
    assert_eq!(one, two);
    let bam_records = |run: &str| {
        let bam = ws.out().join(format!("NA12878/{run}/NA12878.align.bam"));
        tool("samtools", &["view", bam.to_str().unwrap()], Path::new("/"))
    };
    assert_eq!(bam_records("threads-1"), bam_records("threads-2"));
}
