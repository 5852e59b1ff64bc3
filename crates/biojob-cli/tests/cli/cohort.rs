//! `biojob run` of a cohort (docs/cohorts.md) on real data: NA12878 split into its 21 lanes and
//! a sample simulated from the reference (`testdata/make-cohort-data.sh`), against the tools
//! run by hand on the same inputs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::scale::{BWA_BATCH_BASES, normalise, repeated_pair, sorted_records};
use crate::support::{
    Workspace, accuracy, assert_same_records, error_lines, fake_tool, hand_run, pipe, records,
    stderr, stdout, testdata, tool,
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
pub(crate) fn sheet_rows() -> Vec<(String, String, PathBuf, PathBuf)> {
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
pub(crate) fn cohort_input(ws: &Workspace, sheet: &Path) -> PathBuf {
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
            "VCF: {}\nreport: {}\nmanifest: {}\n",
            vcf.display(),
            run_dir.join("report.html").display(),
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
            "markdup.json",
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
    // The same statistics as JSON, samtools --json's layout, which MultiQC reads.
    let json: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(run_dir.join("samples/NA12878/NA12878.markdup.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        json["COMMAND"],
        markdup
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("COMMAND: ")
    );
    assert_eq!(json["DUPLICATE TOTAL"], duplicates);
    assert_eq!(json.as_object().unwrap().len(), markdup.lines().count());
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
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ws.out().join("one/manifest.json")).unwrap())
            .unwrap();
    let steps: Vec<&str> = manifest["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|task| task["step"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps,
        [
            "prepare-reference",
            "align",
            "merge",
            "call",
            "call",
            "call",
            "gather",
            "sample-vcf",
            "qc",
            "report"
        ]
    );
    let hand = hand_run();
    assert_same_records(&ws.out().join("one/cohort.vcf.gz"), &hand.vcf);
    assert_same_records(
        &ws.out().join("one/samples/NA12878/NA12878.vcf.gz"),
        &hand.vcf,
    );
    assert_eq!(records(&hand.vcf).len(), 438);
}

#[test]
fn a_markdup_that_drops_records_fails_the_merge_with_the_output_class_and_both_counts() {
    let ws = Workspace::new();
    let data = testdata();
    let sheet = ws.path().join("two-lanes.csv");
    // Lane 2 is a copy of lane 1 (a sheet may not list one file twice).
    let mut rows = String::from("sample,lane,fastq_1,fastq_2\n");
    for lane in 1..=2 {
        let mut pair = Vec::new();
        for mate in ["R1", "R2"] {
            let fastq = ws.path().join(format!("L{lane}_{mate}.fastq.gz"));
            std::fs::copy(data.join(format!("NA12878_{mate}.fastq.gz")), &fastq).unwrap();
            pair.push(fastq.display().to_string());
        }
        rows.push_str(&format!("NA12878,{lane},{},{}\n", pair[0], pair[1]));
    }
    std::fs::write(&sheet, rows).unwrap();
    let input = cohort_input(&ws, &sheet);
    // samtools markdup loses 3 primary records on their way out and exits 0.
    let samtools = fake_tool("samtools-drops-records");
    let output = ws.run(
        &input,
        "dropped",
        &[],
        &[
            ("BIOJOB_SAMTOOLS", &samtools),
            ("DROP_IN", Path::new("markdup")),
        ],
    );
    assert_eq!(output.status.code(), Some(31), "{}", stderr(&output));
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ws.out().join("dropped/manifest.json")).unwrap(),
    )
    .unwrap();
    let lanes: Vec<u64> = manifest["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|task| task["step"] == "align")
        .map(|task| task["records"]["bam"]["records"].as_u64().unwrap())
        .collect();
    assert_eq!(lanes.len(), 2);
    let held: u64 = lanes.iter().sum();
    let error = stderr(&output)
        .lines()
        .find(|line| line.starts_with("error: "))
        .unwrap_or_default()
        .to_owned();
    assert!(
        error.starts_with("error: merge NA12878 failed: ")
            && error.ends_with(&format!(
                "NA12878.align.bam.partial: {} records, but its 2 chunks hold {held} (as their \
                 align tasks counted them): 3 lost",
                held - 3
            )),
        "{error}"
    );
    assert!(
        !ws.out()
            .join("dropped/samples/NA12878/NA12878.align.bam")
            .exists()
    );
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

#[test]
fn the_dry_run_of_a_sheet_prints_every_lane_and_sample_and_runs_nothing() {
    let ws = Workspace::new();
    let sheet = cohort_data().join("samplesheet.csv");
    let input = cohort_input(&ws, &sheet);
    let output = ws
        .biojob()
        .args([
            "run",
            "--dry-run",
            "--threads",
            "4",
            "--memory",
            "8G",
            "--workers",
            "2",
        ])
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let plan = stdout(&output);
    let data = cohort_data().display().to_string();
    for expected in [
        "cohort: 2 samples, 22 lanes, from the sample sheet ".to_owned()
            + &sheet.display().to_string(),
        // The platform unit of a lane without one in the sheet, from its first read's name.
        format!(
            "  lane C0D8DACXX.2: {data}/C0D8DACXX_L2_R1.fastq.gz {data}/C0D8DACXX_L2_R2.fastq.gz  \
             @RG\\tID:NA12878.C0D8DACXX.2\\tSM:NA12878\\tLB:NA12878\\tPL:ILLUMINA\\tPU:C0D8DACXX.2"
        ),
        "  lane chr22: ".to_owned() + &data,
        "duplicates: marked".to_owned(),
        "2. align each lane, 2 at once (each with its share of the threads and memory)".to_owned(),
        "   [SIM lane 1]\n   (biojob checks both FASTQs and feeds them to bwa on fd 3 and 4)\n   \
         (biojob writes sort's output to <scratch>/SIM.align.<shard>.bam.partial, counting its \
         records)\n   \
         bwa mem -t 2 -K 10000000 -R '@RG\\tID:SIM.1\\tSM:SIM\\tLB:SIMLIB\\tPL:ILLUMINA\\tPU:SIMFC.1' \
         <reference> /dev/fd/3 /dev/fd/4 | samtools fixmate -m -u - - | samtools sort -@ 2 -m \
         524288K -T <scratch>/SIM.align.<shard>.sort-tmp -O bam --write-index -o \
         '-##idx##<scratch>/SIM.align.<shard>.bam.partial.bai' -"
            .to_owned(),
        "3. merge each sample's lanes, marking duplicates (into samples/<sample>/)".to_owned(),
        "4. call jointly: 3 shards (chr20, chr22, chrM), in reference order".to_owned(),
        "   bcftools mpileup -Oz0 -f <reference> -r chr22 -a FORMAT/AD,FORMAT/DP <bam.0000> <bam.0001> \
         | bcftools call -m -v -Oz -o <scratch>/cohort.call.<shard>.vcf.gz.partial -"
            .to_owned(),
        "   bcftools concat -Oz -o <scratch>/cohort.vcf.gz.partial <vcf.0000> <vcf.0001>".to_owned(),
        "   [SIM]\n   bcftools view -s SIM -c 1 -Oz -o <scratch>/SIM.vcf.gz.partial <vcf>".to_owned(),
        "7. report".to_owned(),
    ] {
        assert!(plan.contains(&expected), "{expected}\n{plan}");
    }
    // One block per lane: the 21 of NA12878 and SIM's.
    assert_eq!(plan.matches("| samtools fixmate -m -u - - |").count(), 22);
    assert_eq!(plan.matches("| samtools markdup ").count(), 2);
    assert!(!ws.out().exists(), "a dry run writes nothing");
    // Off, neither fixmate nor markdup runs.
    let output = ws
        .biojob()
        .args(["run", "--dry-run", "--mark-duplicates", "off", "--input"])
        .arg(&input)
        .output()
        .unwrap();
    let plan = stdout(&output);
    assert!(plan.contains("duplicates: not marked"), "{plan}");
    assert!(
        !plan.contains("fixmate") && !plan.contains("markdup"),
        "{plan}"
    );
    // With lanes split: each lane's split, then the align of each of its chunks, as many as
    // the split writes.
    let output = ws
        .biojob()
        .args([
            "run",
            "--dry-run",
            "--chunk-pairs",
            "5000",
            "--threads",
            "4",
            "--memory",
            "8G",
            "--workers",
            "2",
            "--input",
        ])
        .arg(&input)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    let plan = stdout(&output);
    for expected in [
        "2. split each lane (into <scratch>/samples/<sample>/lanes/<lane index>/)\n   \
         [NA12878 lane 20FUKAAXX100202.1]\n   (biojob checks the FASTQ pair and cuts it into \
         chunks of 5000 read pairs, gzip level 2)\n",
        "3. align each chunk of each lane (as many as its split writes, numbered across the \
         sample: lane 0's first), 2 at once (each with its share of the threads and memory)\n",
        "   [SIM lane 1, each chunk]\n   (biojob checks both FASTQs and feeds them to bwa on fd 3 \
         and 4)\n   (biojob writes sort's output to <scratch>/SIM.align.<shard>.bam.partial, \
         counting its records)\n   bwa mem -t 2 -K 10000000 -R \
         '@RG\\tID:SIM.1\\tSM:SIM\\tLB:SIMLIB\\tPL:ILLUMINA\\tPU:SIMFC.1' <reference> /dev/fd/3 \
         /dev/fd/4 | samtools fixmate -m -u - - | samtools sort -@ 2 -m 524288K -T \
         <scratch>/SIM.align.<shard>.sort-tmp -O bam --write-index -o \
         '-##idx##<scratch>/SIM.align.<shard>.bam.partial.bai' -\n",
        "4. merge each sample's chunks, marking duplicates (into samples/<sample>/)\n",
        "   [NA12878: every chunk's BAM, as many as its lanes' splits write (listed here one per lane)]\n",
    ] {
        assert!(plan.contains(expected), "{expected}\n{plan}");
    }
    assert_eq!(
        plan.matches("cuts it into chunks of 5000 read pairs")
            .count(),
        22
    );
    assert_eq!(plan.matches("| samtools fixmate -m -u - - |").count(), 22);
}

#[test]
fn a_resumed_cohort_reuses_each_sample_s_whole_alignment_and_aligns_a_changed_sample_again() {
    let ws = Workspace::new();
    let data = cohort_data();
    let sheet = ws.path().join("resume.csv");
    let write_sheet = |sim: &str| {
        std::fs::write(
            &sheet,
            format!(
                "sample,lane,fastq_1,fastq_2\n\
                 NA12878,1,{data}/C0D8DACXX_L1_R1.fastq.gz,{data}/C0D8DACXX_L1_R2.fastq.gz\n\
                 NA12878,2,{data}/C0D8DACXX_L2_R1.fastq.gz,{data}/C0D8DACXX_L2_R2.fastq.gz\n\
                 SIM,1,{data}/{sim}_R1.fastq.gz,{data}/{sim}_R2.fastq.gz\n",
                data = data.display()
            ),
        )
        .unwrap();
    };
    // Read pairs of a FASTQ: its lines / 4.
    let pairs = |fastq: &str| {
        tool(
            "bash",
            &["-c", &format!("zcat {}/{fastq} | wc -l", data.display())],
            Path::new("/"),
        )
        .trim()
        .parse::<u64>()
        .unwrap()
            / 4
    };
    let na12878_pairs = pairs("C0D8DACXX_L1_R1.fastq.gz") + pairs("C0D8DACXX_L2_R1.fastq.gz");
    let sim_pairs = pairs("SIM_R1.fastq.gz");
    let l3_pairs = pairs("C0D8DACXX_L3_R1.fastq.gz");
    assert_ne!(sim_pairs, l3_pairs);
    let manifest = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(ws.out().join("r1/manifest.json")).unwrap())
            .unwrap()
    };
    let merge_pairs = |manifest: &serde_json::Value| -> Vec<(String, serde_json::Value)> {
        manifest["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|task| task["step"] == "merge")
            .map(|task| {
                (
                    task["sample"].as_str().unwrap().to_owned(),
                    task["read_pairs"].clone(),
                )
            })
            .collect()
    };

    write_sheet("SIM");
    let input = cohort_input(&ws, &sheet);
    let first = ws.run(&input, "r1", &[], &[]);
    assert!(first.status.success(), "{}", stderr(&first));
    let bam = ws.out().join("r1/samples/NA12878/NA12878.align.bam");
    let modified = std::fs::metadata(&bam).unwrap().modified().unwrap();
    let manifest_of_first = manifest();
    assert_eq!(
        merge_pairs(&manifest_of_first),
        [
            ("NA12878".to_owned(), na12878_pairs.into()),
            ("SIM".to_owned(), sim_pairs.into())
        ]
    );
    assert_eq!(manifest_of_first["read_pairs"], na12878_pairs + sim_pairs);

    // Nothing changed: no lane is aligned, each sample's merge is reused whole.
    let resumed = ws.run(&input, "r1", &["--resume"], &[]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains(
            "reused: merge NA12878, merge SIM, call chr20, call chr22, call chrM, gather, \
             sample-vcf NA12878, sample-vcf SIM\n\
             ran: prepare-reference, qc NA12878, qc SIM, report\n"
        ),
        "{}",
        stderr(&resumed)
    );
    assert_eq!(
        std::fs::metadata(&bam).unwrap().modified().unwrap(),
        modified
    );
    // The reused merges keep their read pairs.
    let resumed_manifest = manifest();
    assert_eq!(
        merge_pairs(&resumed_manifest),
        merge_pairs(&manifest_of_first)
    );
    assert_eq!(resumed_manifest["read_pairs"], na12878_pairs + sim_pairs);

    // SIM's FASTQs changed (another lane's reads): its lane is aligned and merged again, and
    // what reads its BAM runs again; NA12878's alignment is still reused.
    write_sheet("C0D8DACXX_L3");
    let changed = ws.run(&input, "r1", &["--resume"], &[]);
    assert!(changed.status.success(), "{}", stderr(&changed));
    assert!(
        stderr(&changed).contains(
            "reused: merge NA12878\n\
             ran: prepare-reference, align SIM lane 1, merge SIM, call chr20, call chr22, \
             call chrM, gather, sample-vcf NA12878, qc NA12878, sample-vcf SIM, qc SIM, report\n"
        ),
        "{}",
        stderr(&changed)
    );
    let manifest = manifest();
    let merge_sim = manifest["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|task| task["step"] == "merge" && task["sample"] == "SIM")
        .unwrap();
    assert_eq!(merge_sim["status"], "succeeded");
    assert_eq!(
        merge_sim["rerun_reason"],
        "no earlier task finished with this cache key (none finished, or an input, a tool \
         version, an argument or a setting changed)"
    );
    // NA12878's read pairs from its reused merge, SIM's from its new lane.
    assert_eq!(
        merge_pairs(&manifest),
        [
            ("NA12878".to_owned(), na12878_pairs.into()),
            ("SIM".to_owned(), l3_pairs.into())
        ]
    );
    assert_eq!(manifest["read_pairs"], na12878_pairs + l3_pairs);
}

/// `(step, shard, sample, lane, status, read pairs)` of a task.
type AlignmentTask = (String, Option<u64>, String, Option<String>, String, u64);

/// The split, align and merge tasks of the run manifest at `run_dir`: `(step, shard, sample,
/// lane, status, read pairs)`, the read pairs a split wrote or a chunk aligned (a merge's: its
/// sample's).
fn alignment_tasks(run_dir: &Path) -> Vec<AlignmentTask> {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("manifest.json")).unwrap())
            .unwrap();
    manifest["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|task| ["split", "align", "merge"].contains(&task["step"].as_str().unwrap()))
        .map(|task| {
            let pairs = match task["step"].as_str().unwrap() {
                "merge" => &task["read_pairs"],
                _ => &task["records"]["read_pairs"],
            };
            (
                task["step"].as_str().unwrap().to_owned(),
                task["shard"].as_u64(),
                task["sample"].as_str().unwrap().to_owned(),
                task["lane"].as_str().map(str::to_owned),
                task["status"].as_str().unwrap().to_owned(),
                pairs.as_u64().unwrap(),
            )
        })
        .collect()
}

/// One row of [`alignment_tasks`], succeeded.
fn done(
    step: &str,
    shard: Option<u64>,
    sample: &str,
    lane: Option<&str>,
    pairs: u64,
) -> AlignmentTask {
    (
        step.to_owned(),
        shard,
        sample.to_owned(),
        lane.map(str::to_owned),
        "succeeded".to_owned(),
        pairs,
    )
}

fn read_groups_of(bam: &Path) -> Vec<String> {
    view(&["view", "-H", bam.to_str().unwrap()])
        .lines()
        .filter(|line| line.starts_with("@RG"))
        .map(str::to_owned)
        .collect()
}

#[test]
fn lanes_split_into_chunks_on_bwa_batches_give_the_records_of_lanes_aligned_whole() {
    let ws = Workspace::new();
    let data = cohort_data();
    // NA12878's test data four times over as one lane: 55,440 pairs, two bwa batches, the
    // first of 47,081 pairs (scale.rs). Chunks of one batch align as the whole lane does.
    let (x4_1, x4_2, bases) = repeated_pair(&ws, 4);
    let mut sum = 0;
    let batch_pairs = bases
        .iter()
        .position(|b| {
            sum += b;
            sum >= BWA_BATCH_BASES
        })
        .unwrap()
        + 1;
    assert_eq!((bases.len(), batch_pairs), (55_440, 47_081));
    let sheet = ws.path().join("split.csv");
    std::fs::write(
        &sheet,
        format!(
            "sample,lane,fastq_1,fastq_2,library,platform_unit\n\
             NA12878,x4,{},{},,\n\
             NA12878,chr22,{data}/chr22_R1.fastq.gz,{data}/chr22_R2.fastq.gz,,\n\
             SIM,1,{data}/SIM_R1.fastq.gz,{data}/SIM_R2.fastq.gz,SIMLIB,SIMFC.1\n",
            x4_1.display(),
            x4_2.display(),
            data = data.display()
        ),
    )
    .unwrap();
    let input = cohort_input(&ws, &sheet);
    let whole = ws.run(&input, "whole", &[], &[]);
    assert!(whole.status.success(), "{}", stderr(&whole));
    let chunked = ws.run(
        &input,
        "chunked",
        &["--chunk-pairs", &batch_pairs.to_string(), "--workers", "2"],
        &[],
    );
    assert!(chunked.status.success(), "{}", stderr(&chunked));

    // Each lane split, its chunks aligned as their own tasks (numbered across the sample,
    // lane 0's first), every chunk of a sample merged.
    assert_eq!(
        alignment_tasks(&ws.out().join("chunked")),
        [
            done("split", Some(0), "NA12878", Some("x4"), 55_440),
            done("split", Some(2), "NA12878", Some("chr22"), 1_633),
            done("split", Some(0), "SIM", Some("1"), 30_000),
            done("align", Some(0), "NA12878", Some("x4"), 47_081),
            done("align", Some(1), "NA12878", Some("x4"), 8_359),
            done("align", Some(2), "NA12878", Some("chr22"), 1_633),
            done("align", Some(0), "SIM", Some("1"), 30_000),
            done("merge", None, "NA12878", None, 57_073),
            done("merge", None, "SIM", None, 30_000),
        ]
    );

    // The same records, duplicates flagged alike, under one @RG per lane.
    for sample in ["NA12878", "SIM"] {
        let bam = |run: &str| {
            ws.out()
                .join(format!("{run}/samples/{sample}/{sample}.align.bam"))
        };
        assert_eq!(
            read_groups_of(&bam("chunked")),
            read_groups_of(&bam("whole")),
            "{sample}"
        );
        assert_eq!(
            alignments(&bam("chunked")),
            alignments(&bam("whole")),
            "{sample}"
        );
        // bwa orders a read's alternative hits (XA) by a hash of the read's position in its
        // input, which restarts in each chunk (scale.rs): with those sorted, every field is
        // equal. SIM's lane is one chunk: its records are the same text.
        let (chunked, whole) = (
            sorted_records(&bam("chunked")),
            sorted_records(&bam("whole")),
        );
        assert!(
            normalise(&chunked, true) == normalise(&whole, true),
            "{sample}: the records of split lanes differ from those of whole lanes"
        );
        let mut unmatched: BTreeMap<String, i64> = BTreeMap::new();
        for record in normalise(&whole, false) {
            *unmatched.entry(record).or_default() += 1;
        }
        for record in normalise(&chunked, false) {
            *unmatched.entry(record).or_default() -= 1;
        }
        let reordered: i64 = unmatched.values().filter(|n| **n > 0).sum();
        // 10 of NA12878's records list the same hits in another order (as in scale.rs).
        let expected = match sample {
            "NA12878" => (114_170, 10),
            _ => (60_000, 0),
        };
        assert_eq!((whole.len(), reordered), expected, "{sample}");
    }
    assert_eq!(
        read_groups_of(&ws.out().join("chunked/samples/NA12878/NA12878.align.bam")),
        [
            "@RG\tID:NA12878.x4\tSM:NA12878\tLB:NA12878\tPL:ILLUMINA\tPU:20FUKAAXX100202.1",
            "@RG\tID:NA12878.chr22\tSM:NA12878\tLB:NA12878\tPL:ILLUMINA",
        ]
    );
    assert_eq!(
        read_groups_of(&ws.out().join("chunked/samples/SIM/SIM.align.bam")),
        ["@RG\tID:SIM.1\tSM:SIM\tLB:SIMLIB\tPL:ILLUMINA\tPU:SIMFC.1"]
    );
    let cohort_vcf = ws.out().join("chunked/cohort.vcf.gz");
    assert_same_records(&cohort_vcf, &ws.out().join("whole/cohort.vcf.gz"));
    assert!(!records(&cohort_vcf).is_empty());
}

#[test]
fn split_lanes_number_their_chunks_across_the_sample_and_a_resume_realigns_only_a_new_chunking() {
    let ws = Workspace::new();
    let data = cohort_data();
    let sheet = ws.path().join("chunks.csv");
    // NA12878: its chr22 lane (1,633 pairs: 2 chunks of at most 1,000) and lane
    // 20FUKAAXX100202.1 (795 pairs: 1 chunk); B: lane 20GAVAAXX100126.1 (813 pairs).
    std::fs::write(
        &sheet,
        format!(
            "sample,lane,fastq_1,fastq_2\n\
             NA12878,chr22,{data}/chr22_R1.fastq.gz,{data}/chr22_R2.fastq.gz\n\
             NA12878,20FUKAAXX100202.1,{data}/20FUKAAXX100202_L1_R1.fastq.gz,{data}/20FUKAAXX100202_L1_R2.fastq.gz\n\
             B,20GAVAAXX100126.1,{data}/20GAVAAXX100126_L1_R1.fastq.gz,{data}/20GAVAAXX100126_L1_R2.fastq.gz\n",
            data = data.display()
        ),
    )
    .unwrap();
    let input = cohort_input(&ws, &sheet);
    let first = ws.run(
        &input,
        "r1",
        &["--chunk-pairs", "1000", "--keep-scratch"],
        &[],
    );
    assert!(first.status.success(), "{}", stderr(&first));
    let run_dir = ws.out().join("r1");
    let (lane_0, lane_1) = (Some("chr22"), Some("20FUKAAXX100202.1"));
    let b_lane = Some("20GAVAAXX100126.1");
    assert_eq!(
        alignment_tasks(&run_dir),
        [
            done("split", Some(0), "NA12878", lane_0, 1_633),
            done("split", Some(2), "NA12878", lane_1, 795),
            done("split", Some(0), "B", b_lane, 813),
            done("align", Some(0), "NA12878", lane_0, 1_000),
            done("align", Some(1), "NA12878", lane_0, 633),
            done("align", Some(2), "NA12878", lane_1, 795),
            done("align", Some(0), "B", b_lane, 813),
            done("merge", None, "NA12878", None, 2_428),
            done("merge", None, "B", None, 813),
        ]
    );
    // Each lane's chunk files in the lane's own directory; the chunk BAMs named by their
    // number across the sample.
    let scratch = stderr(&first)
        .lines()
        .find_map(|line| line.strip_prefix("scratch kept: "))
        .map(PathBuf::from)
        .unwrap();
    let chunk_files: Vec<String> = Workspace::files(&scratch)
        .into_iter()
        .filter(|name| {
            name.contains(".split.") || (name.contains(".align.0") && name.ends_with(".bam"))
        })
        .collect();
    assert_eq!(
        chunk_files,
        [
            "B.align.0000.bam",
            "NA12878.align.0000.bam",
            "NA12878.align.0001.bam",
            "NA12878.align.0002.bam",
            "samples/B/lanes/0/B.split.0000_R1.fastq.gz",
            "samples/B/lanes/0/B.split.0000_R2.fastq.gz",
            "samples/NA12878/lanes/0/NA12878.split.0000_R1.fastq.gz",
            "samples/NA12878/lanes/0/NA12878.split.0000_R2.fastq.gz",
            "samples/NA12878/lanes/0/NA12878.split.0001_R1.fastq.gz",
            "samples/NA12878/lanes/0/NA12878.split.0001_R2.fastq.gz",
            "samples/NA12878/lanes/1/NA12878.split.0002_R1.fastq.gz",
            "samples/NA12878/lanes/1/NA12878.split.0002_R2.fastq.gz",
        ]
    );
    // Chunk 0002 is lane 1's: its read group.
    let chunk_2 = view(&[
        "view",
        "-H",
        scratch.join("NA12878.align.0002.bam").to_str().unwrap(),
    ]);
    assert_eq!(
        chunk_2
            .lines()
            .filter(|line| line.starts_with("@RG"))
            .collect::<Vec<_>>(),
        [
            "@RG\tID:NA12878.20FUKAAXX100202.1\tSM:NA12878\tLB:NA12878\tPL:ILLUMINA\tPU:20FUKAAXX100202.1"
        ]
    );
    std::fs::remove_dir_all(&scratch).unwrap();

    // The same sheet and chunking: every sample's merge is reused, nothing is split or
    // aligned.
    let resumed = ws.run(&input, "r1", &["--chunk-pairs", "1000", "--resume"], &[]);
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    assert!(
        stderr(&resumed).contains(
            "reused: merge NA12878, merge B, call chr20, call chr22, call chrM, gather, \
             sample-vcf NA12878, sample-vcf B\n\
             ran: prepare-reference, qc NA12878, qc B, report\n"
        ),
        "{}",
        stderr(&resumed)
    );

    // Another chunking is in every lane's key: every lane is split and aligned again, every
    // sample merged again (here into the same BAMs, so the joint calls are reused).
    let rechunked = ws.run(&input, "r1", &["--chunk-pairs", "1500", "--resume"], &[]);
    assert!(rechunked.status.success(), "{}", stderr(&rechunked));
    assert!(
        stderr(&rechunked).contains(
            "reused: call chr20, call chr22, call chrM, gather, sample-vcf NA12878, \
             sample-vcf B\n\
             ran: prepare-reference, split NA12878 lane chr22, split NA12878 lane \
             20FUKAAXX100202.1, split B lane 20GAVAAXX100126.1, align NA12878 lane chr22, \
             align NA12878 lane chr22, align NA12878 lane 20FUKAAXX100202.1, align B lane \
             20GAVAAXX100126.1, merge NA12878, merge B, qc NA12878, qc B, report\n"
        ),
        "{}",
        stderr(&rechunked)
    );
    assert_eq!(
        alignment_tasks(&run_dir),
        [
            done("split", Some(0), "NA12878", lane_0, 1_633),
            done("split", Some(2), "NA12878", lane_1, 795),
            done("split", Some(0), "B", b_lane, 813),
            done("align", Some(0), "NA12878", lane_0, 1_500),
            done("align", Some(1), "NA12878", lane_0, 133),
            done("align", Some(2), "NA12878", lane_1, 795),
            done("align", Some(0), "B", b_lane, 813),
            done("merge", None, "NA12878", None, 2_428),
            done("merge", None, "B", None, 813),
        ]
    );
}

#[test]
fn a_chunk_cut_short_after_its_lane_s_split_fails_the_lane_with_the_output_class_and_both_counts() {
    let ws = Workspace::new();
    let data = cohort_data();
    let sheet = ws.path().join("short.csv");
    std::fs::write(
        &sheet,
        format!(
            "sample,lane,fastq_1,fastq_2\n\
             NA12878,chr22,{data}/chr22_R1.fastq.gz,{data}/chr22_R2.fastq.gz\n",
            data = data.display()
        ),
    )
    .unwrap();
    let input = cohort_input(&ws, &sheet);
    // 1,633 pairs in chunks of 1,000, aligned one at a time: before aligning chunk 0, bwa
    // cuts chunk 1's files (633 pairs) down to their first 10 pairs, a valid FASTQ still.
    let bwa = fake_tool("bwa-shortens-chunk");
    let scratch = ws.path().join("scratch");
    let output = ws.run(
        &input,
        "short",
        &["--chunk-pairs", "1000", "--workers", "1"],
        &[
            ("BIOJOB_BWA", &bwa),
            ("SHORTEN_UNDER", &scratch),
            (
                "SHORTEN_NAME",
                Path::new("NA12878.split.0001_R[12].fastq.gz"),
            ),
            ("SHORTEN_PAIRS", Path::new("10")),
        ],
    );
    assert_eq!(output.status.code(), Some(31), "{}", stderr(&output));
    let error = stderr(&output)
        .lines()
        .find(|line| line.starts_with("error: "))
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        error,
        format!(
            "error: align NA12878 lane chr22 failed: {}/short/1/samples/NA12878/lanes/0: 1010 \
             read pairs aligned in chunks, but the split wrote 1633 into 2 chunks: 623 lost",
            scratch.display()
        )
    );
    assert_eq!(
        alignment_tasks(&ws.out().join("short")),
        [
            done("split", Some(0), "NA12878", Some("chr22"), 1_633),
            done("align", Some(0), "NA12878", Some("chr22"), 1_000),
            done("align", Some(1), "NA12878", Some("chr22"), 10),
        ]
    );
    assert!(
        !ws.out()
            .join("short/samples/NA12878/NA12878.align.bam")
            .exists()
    );
}

#[test]
fn an_empty_lane_is_named_by_its_row_of_the_sheet() {
    let ws = Workspace::new();
    let data = testdata();
    let sheet = ws.path().join("sheet.csv");
    let gzip = |name: &str, text: &str| {
        let path = ws.path().join(name);
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut encoder, text.as_bytes()).unwrap();
        std::fs::write(&path, encoder.finish().unwrap()).unwrap();
        path
    };
    let empty_1 = gzip("empty_R1.fq.gz", "");
    let empty_2 = gzip("empty_R2.fq.gz", "");
    let one_read = gzip("one_R1.fq.gz", "@r1/1\nACGT\n+\nIIII\n");
    let same_read = gzip("one_R2.fq.gz", "@r1/1\nACGT\n+\nIIII\n");
    let (r1, r2) = (
        data.join("NA12878_R1.fastq.gz"),
        data.join("NA12878_R2.fastq.gz"),
    );
    let input = cohort_input(&ws, &sheet);
    // The bad lane first (on line 3, after a comment line): the good one never runs.
    for (first, chunk_pairs, lines) in [
        (
            [&empty_1, &empty_2],
            "0",
            vec![format!(
                "error: reading the read group of A lane L1 ({} line 3) failed: {}: no records \
                 (empty file)",
                sheet.display(),
                empty_1.display()
            )],
        ),
        (
            [&one_read, &empty_2],
            "0",
            vec![format!(
                "error: align A lane L1 ({} line 3) failed: {}: no records (empty file)",
                sheet.display(),
                empty_2.display()
            )],
        ),
        (
            [&one_read, &empty_2],
            "1000",
            vec![format!(
                "error: split A lane L1 ({} line 3) failed: {}: no records (empty file)",
                sheet.display(),
                empty_2.display()
            )],
        ),
        (
            [&one_read, &same_read],
            "0",
            vec![
                format!(
                    "error: align A lane L1 ({} line 3) failed: the lane's fastq_1 and fastq_2 \
                     have the same content: {} and {} (SHA-256 ",
                    sheet.display(),
                    one_read.display(),
                    same_read.display()
                ),
                "hint: give the lane's read 1 in the sample sheet's fastq_1 column and read 2 in \
                 fastq_2"
                    .to_owned(),
            ],
        ),
    ] {
        std::fs::write(
            &sheet,
            format!(
                "sample,lane,fastq_1,fastq_2\n# the lanes of A\nA,L1,{},{}\nA,L2,{},{}\n",
                first[0].display(),
                first[1].display(),
                r1.display(),
                r2.display()
            ),
        )
        .unwrap();
        let output = ws.run(
            &input,
            "empty",
            &[],
            &[("BIOJOB_ALIGN_CHUNK_PAIRS", Path::new(chunk_pairs))],
        );
        assert_eq!(output.status.code(), Some(11), "{}", stderr(&output));
        let printed = error_lines(&output);
        for (line, expected) in printed.iter().zip(&lines) {
            assert!(
                line.starts_with(expected.as_str()),
                "{expected}\n{}",
                stderr(&output)
            );
        }
        assert!(printed.len() > lines.len(), "{}", stderr(&output));
        std::fs::remove_dir_all(ws.out()).unwrap();
    }
}
