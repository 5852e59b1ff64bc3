//! `biojob run` of a cohort (docs/cohorts.md) on real data: NA12878 split into its 21 lanes and
//! a sample simulated from the reference (`testdata/make-cohort-data.sh`), against the tools
//! run by hand on the same inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::support::{
    Workspace, accuracy, assert_same_records, hand_run, pipe, records, stderr, testdata, tool,
};

const CONTIGS: [&str; 3] = ["chr20", "chr22", "chrM"];

/// The cohort's files, made once per test process by `testdata/make-cohort-data.sh`.
fn cohort_data() -> &'static Path {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cohort-data");
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/make-cohort-data.sh");
        let output = Command::new("bash")
            .arg(&script)
            .arg(&dir)
            .env("BIOJOB_TESTDATA", testdata())
            .output()
            .unwrap();
        assert!(output.status.success(), "{}", stderr(&output));
        dir
    })
}

/// The sheet's rows: `(sample, lane, fastq_1, fastq_2)`, paths made absolute.
fn sheet_rows() -> Vec<(String, String, PathBuf, PathBuf)> {
    let data = cohort_data();
    std::fs::read_to_string(data.join("samplesheet.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (
                fields[0].to_owned(),
                fields[1].to_owned(),
                data.join(fields[2]),
                data.join(fields[3]),
            )
        })
        .collect()
}

/// The execution input of a cohort: the test reference, `sheet`, `chromosomes`.
fn cohort_input(ws: &Workspace, sheet: &Path) -> PathBuf {
    let input = serde_json::json!({"params": {
        "queue": "local",
        "samplesheet": sheet.display().to_string(),
        "environment": {
            "REFERENCE_NAME": "ref",
            "REFERENCE_PREFIX": testdata().display().to_string(),
            "JOB_OUTPUT_PREFIX": ws.out().display().to_string(),
        },
        "chromosomes": CONTIGS,
    }});
    let path = ws.path().join("cohort-input.json");
    std::fs::write(&path, input.to_string()).unwrap();
    path
}

fn view(args: &[&str]) -> String {
    tool("samtools", args, Path::new("/"))
}

/// `(QNAME, FLAG, RNAME, POS, MAPQ, CIGAR, RNEXT, PNEXT, TLEN)` of every record, sorted.
fn alignments(bam: &Path) -> Vec<String> {
    let mut lines: Vec<String> = view(&["view", bam.to_str().unwrap()])
        .lines()
        .map(|line| line.split('\t').take(9).collect::<Vec<_>>().join("\t"))
        .collect();
    lines.sort();
    lines
}

/// GT of each sample of each record: `CHROM:POS` → genotypes.
fn genotypes(vcf: &Path) -> Vec<(String, Vec<String>)> {
    tool(
        "bcftools",
        &[
            "query",
            "-f",
            "%CHROM:%POS:%REF:%ALT[\t%GT]\n",
            vcf.to_str().unwrap(),
        ],
        Path::new("/"),
    )
    .lines()
    .map(|line| {
        let mut fields = line.split('\t');
        let site = fields.next().unwrap().to_owned();
        (site, fields.map(str::to_owned).collect())
    })
    .collect()
}

fn non_reference(gt: &str) -> bool {
    gt.split(['/', '|'])
        .any(|allele| allele != "." && allele != "0")
}

/// The lanes aligned and merged by hand: `bwa mem -R … | samtools fixmate -m | samtools sort`
/// per lane, `samtools merge -c -p`, `samtools markdup`: the BAM of `sample`.
fn hand_markdup(sample: &str, read_groups: &[String], dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let reference = hand_run().dir.join("ref.fa");
    let rows: Vec<_> = sheet_rows()
        .into_iter()
        .filter(|row| row.0 == sample)
        .collect();
    let mut lanes = Vec::new();
    for ((_, lane, r1, r2), read_group) in rows.iter().zip(read_groups) {
        let sam = dir.join(format!("{lane}.fixmate.bam"));
        let bwa = Command::new("bwa")
            .args(["mem", "-t", "2", "-K", "10000000", "-R"])
            .arg(read_group.replace('\t', "\\t"))
            .arg(&reference)
            .args([r1, r2])
            .output()
            .unwrap();
        assert!(bwa.status.success());
        let sam_path = dir.join(format!("{lane}.sam"));
        std::fs::write(&sam_path, bwa.stdout).unwrap();
        tool(
            "samtools",
            &[
                "fixmate",
                "-m",
                sam_path.to_str().unwrap(),
                sam.to_str().unwrap(),
            ],
            dir,
        );
        let sorted = dir.join(format!("{lane}.sorted.bam"));
        tool(
            "samtools",
            &[
                "sort",
                "-o",
                sorted.to_str().unwrap(),
                sam.to_str().unwrap(),
            ],
            dir,
        );
        lanes.push(sorted);
    }
    let merged = dir.join("merged.bam");
    let mut merge = vec!["merge", "-c", "-p", "-f", "-o", merged.to_str().unwrap()];
    merge.extend(lanes.iter().map(|l| l.to_str().unwrap()));
    tool("samtools", &merge, dir);
    let marked = dir.join("markdup.bam");
    tool(
        "samtools",
        &[
            "markdup",
            merged.to_str().unwrap(),
            marked.to_str().unwrap(),
        ],
        dir,
    );
    tool("samtools", &["index", marked.to_str().unwrap()], dir);
    marked
}

#[test]
fn a_two_sample_cohort_in_22_lanes_matches_the_tools_run_by_hand() {
    let ws = Workspace::new();
    let data = cohort_data();
    let input = cohort_input(&ws, &data.join("samplesheet.csv"));
    let output = ws.run(&input, "c1", &[], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let run_dir = ws.out().join("c1");
    let vcf = run_dir.join("cohort.vcf.gz");
    assert_eq!(
        crate::support::stdout(&output),
        format!(
            "VCF: {}\nmanifest: {}\n",
            vcf.display(),
            run_dir.join("manifest.json").display()
        )
    );
    let published: Vec<String> = Workspace::files(&run_dir)
        .into_iter()
        .filter(|f| !f.starts_with("logs/"))
        .collect();
    let mut expected = vec![
        "cohort.call.0000.vcf.gz".to_owned(),
        "cohort.call.0000.vcf.gz.tbi".into(),
        "cohort.call.0001.vcf.gz".into(),
        "cohort.call.0001.vcf.gz.tbi".into(),
        "cohort.call.0002.vcf.gz".into(),
        "cohort.call.0002.vcf.gz.tbi".into(),
        "cohort.vcf.gz".into(),
        "cohort.vcf.gz.tbi".into(),
        "manifest.json".into(),
        "report.html".into(),
    ];
    for sample in ["NA12878", "SIM"] {
        for name in [
            "align.bam",
            "align.bam.bai",
            "bcftools_stats.txt",
            "flagstat.txt",
            "markdup.txt",
            "samtools_stats.txt",
            "vcf.gz",
            "vcf.gz.tbi",
        ] {
            expected.push(format!("samples/{sample}/{sample}.{name}"));
        }
        expected.push(format!("samples/{sample}/qc.json"));
        expected.push(format!("samples/{sample}/report.html"));
    }
    expected.sort();
    assert_eq!(published, expected);

    // One @RG per lane, its PU the sheet's or the first read's flowcell and lane.
    let rows = sheet_rows();
    let na12878_bam = run_dir.join("samples/NA12878/NA12878.align.bam");
    let header = view(&["view", "-H", na12878_bam.to_str().unwrap()]);
    let read_groups: Vec<String> = header
        .lines()
        .filter(|l| l.starts_with("@RG"))
        .map(str::to_owned)
        .collect();
    let expected_groups: Vec<String> = rows
        .iter()
        .filter(|row| row.0 == "NA12878")
        .map(|(_, lane, _, _)| {
            let unit = match lane.as_str() {
                "chr22" => String::new(),
                lane => format!("\tPU:{lane}"),
            };
            format!("@RG\tID:NA12878.{lane}\tSM:NA12878\tLB:NA12878\tPL:ILLUMINA{unit}")
        })
        .collect();
    assert_eq!(read_groups.len(), 21);
    assert_eq!(read_groups, expected_groups);
    let sim_header = view(&[
        "view",
        "-H",
        run_dir.join("samples/SIM/SIM.align.bam").to_str().unwrap(),
    ]);
    assert_eq!(
        sim_header
            .lines()
            .filter(|l| l.starts_with("@RG"))
            .collect::<Vec<_>>(),
        ["@RG\tID:SIM.1\tSM:SIM\tLB:SIMLIB\tPL:ILLUMINA\tPU:SIMFC.1"]
    );

    // Every read of every lane is in the merged BAM, under its lane's read group.
    for (sample, lane, r1, _) in &rows {
        let pairs = tool(
            "bash",
            &["-c", &format!("zcat {} | wc -l", r1.display())],
            Path::new("/"),
        )
        .trim()
        .parse::<usize>()
        .unwrap()
            / 4;
        let bam = run_dir.join(format!("samples/{sample}/{sample}.align.bam"));
        let primary = view(&[
            "view",
            "-c",
            "-F",
            "0x900",
            "-r",
            &format!("{sample}.{lane}"),
            bam.to_str().unwrap(),
        ]);
        assert_eq!(
            primary.trim().parse::<usize>().unwrap(),
            2 * pairs,
            "{sample} {lane}"
        );
    }

    // Duplicates flagged exactly as samtools fixmate/sort/merge/markdup flag them by hand.
    let hand = hand_markdup("NA12878", &read_groups, &ws.path().join("hand-NA12878"));
    assert_eq!(alignments(&na12878_bam), alignments(&hand));
    let duplicates = view(&["view", "-c", "-f", "0x400", na12878_bam.to_str().unwrap()]);
    assert_eq!(
        duplicates,
        view(&["view", "-c", "-f", "0x400", hand.to_str().unwrap()])
    );
    let duplicates: u64 = duplicates.trim().parse().unwrap();
    assert!(duplicates > 0, "the test data has duplicates");
    let markdup =
        std::fs::read_to_string(run_dir.join("samples/NA12878/NA12878.markdup.txt")).unwrap();
    assert!(
        markdup.starts_with("COMMAND:")
            && markdup.lines().next().unwrap().contains("samtools markdup"),
        "{markdup}"
    );
    let qc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("samples/NA12878/qc.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(qc["reads"]["duplicates"], duplicates);
    let records = qc["reads"]["records"].as_f64().unwrap();
    assert!(
        (qc["reads"]["duplicates_percent"].as_f64().unwrap() - duplicates as f64 * 100.0 / records)
            .abs()
            < 1e-9
    );

    // The joint calls are bcftools mpileup + call run by hand on the same two BAMs.
    let sim_bam = run_dir.join("samples/SIM/SIM.align.bam");
    let hand_dir = ws.path().join("hand-calls");
    std::fs::create_dir_all(&hand_dir).unwrap();
    let reference = testdata().join("ref.fa");
    let mut per_contig = Vec::new();
    for contig in CONTIGS {
        let out = format!("{contig}.vcf.gz");
        pipe(
            (
                "bcftools",
                &[
                    "mpileup",
                    "-f",
                    reference.to_str().unwrap(),
                    "-r",
                    contig,
                    "-a",
                    "FORMAT/AD,FORMAT/DP",
                    na12878_bam.to_str().unwrap(),
                    sim_bam.to_str().unwrap(),
                ],
            ),
            ("bcftools", &["call", "-m", "-v", "-Oz", "-o", &out]),
            &hand_dir,
        );
        per_contig.push(out);
    }
    let mut concat = vec!["concat", "-Oz", "-o", "hand.vcf.gz"];
    concat.extend(per_contig.iter().map(String::as_str));
    tool("bcftools", &concat, &hand_dir);
    assert_same_records(&vcf, &hand_dir.join("hand.vcf.gz"));
    let header = tool(
        "bcftools",
        &["view", "-h", vcf.to_str().unwrap()],
        Path::new("/"),
    );
    let columns = header.lines().last().unwrap();
    assert!(columns.ends_with("FORMAT\tNA12878\tSIM"), "{columns}");

    // Each sample's VCF: its column, on exactly the records where its genotype is not
    // reference.
    let cohort = genotypes(&vcf);
    for (column, sample) in ["NA12878", "SIM"].iter().enumerate() {
        let own = genotypes(&run_dir.join(format!("samples/{sample}/{sample}.vcf.gz")));
        let expected: Vec<(String, Vec<String>)> = cohort
            .iter()
            .filter(|(_, gts)| non_reference(&gts[column]))
            .map(|(site, gts)| (site.clone(), vec![gts[column].clone()]))
            .collect();
        assert_eq!(own, expected, "{sample}");
    }

    // SIM's planted SNVs are found.
    let planted: BTreeSet<(String, u64)> = std::fs::read_to_string(data.join("SIM_mutations.txt"))
        .unwrap()
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            (f[0].to_owned(), f[1].parse().unwrap())
        })
        .collect();
    let called: BTreeMap<(String, u64), String> =
        genotypes(&run_dir.join("samples/SIM/SIM.vcf.gz"))
            .into_iter()
            .map(|(site, gts)| {
                let f: Vec<&str> = site.split(':').collect();
                ((f[0].to_owned(), f[1].parse().unwrap()), gts[0].clone())
            })
            .collect();
    let found = planted
        .iter()
        .filter(|site| called.contains_key(site))
        .count();
    let false_calls = called.keys().filter(|site| !planted.contains(site)).count();
    println!(
        "SIM: {found} of {} planted SNVs called, {false_calls} other records",
        planted.len()
    );
    assert_eq!((planted.len(), found, false_calls), (643, 640, 0));

    // One report for the cohort: a row per sample, linking to its page.
    let report = std::fs::read_to_string(run_dir.join("report.html")).unwrap();
    for sample in ["NA12878", "SIM"] {
        assert!(
            report.contains(&format!(
                "<a href=\"samples/{sample}/report.html\">{sample}</a>"
            )),
            "{sample}"
        );
    }

    // Precision and recall against GIAB, with and without duplicate marking.
    let marked = accuracy(
        &run_dir.join("samples/NA12878/NA12878.vcf.gz"),
        &ws.path().join("accuracy-marked"),
    );
    let unmarked_run = ws.run(&input, "c2", &["--mark-duplicates", "off"], &[]);
    assert!(unmarked_run.status.success(), "{}", stderr(&unmarked_run));
    let unmarked_bam = ws.out().join("c2/samples/NA12878/NA12878.align.bam");
    assert_eq!(
        view(&["view", "-c", "-f", "0x400", unmarked_bam.to_str().unwrap()]).trim(),
        "0"
    );
    let unmarked = accuracy(
        &ws.out().join("c2/samples/NA12878/NA12878.vcf.gz"),
        &ws.path().join("accuracy-unmarked"),
    );
    for (what, (tp, fp, fn_)) in [("duplicates marked", marked), ("not marked", unmarked)] {
        println!(
            "NA12878 in 21 lanes, {what}: TP {tp}, FP {fp}, FN {fn_}, precision {:.3}, recall {:.3}",
            tp as f64 / (tp + fp) as f64,
            tp as f64 / (tp + fn_) as f64
        );
    }
    assert_eq!((marked, unmarked), ((200, 20, 36), (200, 20, 36)));
}

#[test]
fn a_one_sample_one_lane_sheet_without_duplicate_marking_gives_the_single_sample_calls() {
    let ws = Workspace::new();
    let data = testdata();
    let sheet = ws.path().join("one.csv");
    std::fs::write(
        &sheet,
        format!(
            "sample,lane,fastq_1,fastq_2\nNA12878,1,{},{}\n",
            data.join("NA12878_R1.fastq.gz").display(),
            data.join("NA12878_R2.fastq.gz").display()
        ),
    )
    .unwrap();
    let input = cohort_input(&ws, &sheet);
    let output = ws.run(&input, "one", &["--mark-duplicates", "0"], &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let hand = hand_run();
    assert_same_records(&ws.out().join("one/cohort.vcf.gz"), &hand.vcf);
    assert_same_records(
        &ws.out().join("one/samples/NA12878/NA12878.vcf.gz"),
        &hand.vcf,
    );
    assert_eq!(records(&hand.vcf).len(), 438);
}

#[test]
fn a_bad_sheet_is_refused_before_any_tool_runs_with_its_line_and_column() {
    let ws = Workspace::new();
    let data = testdata();
    let sheet = ws.path().join("bad.csv");
    let r1 = data.join("NA12878_R1.fastq.gz");
    let r2 = data.join("NA12878_R2.fastq.gz");
    let cases = [
        (
            format!(
                "sample,lane,fastq_1,fastq_2\nA,1,{},{}\nB,1,{},missing_R2.fq.gz\n",
                r1.display(),
                r2.display(),
                r1.display()
            ),
            format!(
                "{} line 3, column fastq_1: {} is already listed on line 2, column fastq_1",
                sheet.display(),
                r1.display()
            ),
        ),
        (
            format!(
                "sample,lane,fastq_1,fastq_2\nA,1,{},missing_R2.fq.gz\n",
                r1.display()
            ),
            format!(
                "{} line 2, column fastq_2: {}/missing_R2.fq.gz does not exist",
                sheet.display(),
                ws.path().display()
            ),
        ),
        (
            format!(
                "sample,lane,fastq_1,fastq_2\nA,1,{},{}\nA,1,x,y\n",
                r1.display(),
                r2.display()
            ),
            format!(
                "{} line 3, column lane: sample A lane 1 is already on line 2",
                sheet.display()
            ),
        ),
        (
            format!(
                "sample,lane,fastq_1,fastq_2\n-A,1,{},{}\n",
                r1.display(),
                r2.display()
            ),
            format!(
                "{} line 2, column sample: sample id \"-A\" has '-' at byte 0; use letters, digits, '.', '_' and '-', not starting with '.' or '-'",
                sheet.display()
            ),
        ),
    ];
    let input = cohort_input(&ws, &sheet);
    for (text, message) in cases {
        std::fs::write(&sheet, text).unwrap();
        let output = ws.run(&input, "bad", &[], &[]);
        assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
        assert!(
            stderr(&output).contains(&message),
            "{}\nexpected: {message}",
            stderr(&output)
        );
        let manifest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(ws.out().join("bad/manifest.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(manifest["tasks"], serde_json::json!([]), "no task ran");
    }
}
