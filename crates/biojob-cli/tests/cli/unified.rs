//! One definition per step: what runs (the argv a manifest records), what `--dry-run` prints
//! and what the cache key hashes all come from the step's plan; and `biojob run` and the step
//! jobs run one by one record the same tasks.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::path::Path;

use biojob_core::{ReadGroup, SampleId, ScatterPlan};
use biojob_pipeline::{
    AlignStep, CacheKeyMaterial, CallStep, GatherInputs, GatherStep, MergeStep, PlanContext,
    PreparedReference, Resources, ShardRequest, StepDefinition, StepPlan, bwa_index_sha256,
    file_sha256, reference_sha256, shell_words,
};
use biojob_tools::{Aligner, Tool, ToolPath, ToolVersions, Toolset};
use camino::{Utf8Path, Utf8PathBuf};
use serde_json::Value;

use crate::support::{Workspace, stderr, stdout, testdata};

const SAMPLE: &str = "NA12878";
const CONTIGS: [&str; 3] = ["chr20", "chr22", "chrM"];
const RESOURCES: [&str; 4] = ["--threads", "2", "--memory", "4G"];

fn resources() -> Resources {
    Resources {
        threads: 2,
        memory_bytes: 4 << 30,
    }
}

fn json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// The manifest's tools and versions as the pipeline's types.
fn tools_of(manifest: &Value) -> (Toolset, ToolVersions) {
    let tool = |name: &str| {
        manifest["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tool"] == name)
            .unwrap_or_else(|| panic!("no {name} in {manifest}"))
            .clone()
    };
    let path = |name: &str| tool(name)["path"].as_str().unwrap().to_owned();
    let version = |name: &str| tool(name)["version"].as_str().unwrap().to_owned();
    (
        Toolset {
            bwa: ToolPath::new(Tool::Bwa, path("bwa")),
            samtools: ToolPath::new(Tool::Samtools, path("samtools")),
            bcftools: ToolPath::new(Tool::Bcftools, path("bcftools")),
        },
        ToolVersions {
            bwa: version("bwa"),
            samtools: version("samtools"),
            bcftools: version("bcftools"),
        },
    )
}

/// `argv` with its program as a name (`bwa`, not `/usr/bin/bwa`): the dry run names the tools
/// as it would look them up.
fn named(mut argv: Vec<String>) -> Vec<String> {
    if let Some(program) = argv.first_mut()
        && let Some(name) = Path::new(program.as_str()).file_name()
    {
        *program = name.to_string_lossy().into_owned();
    }
    argv
}

/// A task's commands as `--dry-run` would print them: each input's path replaced by `<role>`,
/// the scratch directory by `<scratch>`, a shard's or chunk's number in file names by
/// `<shard>`, the program by its name; one string per command.
fn normalised_commands(task: &Value, scratch: &str) -> Vec<String> {
    let mut paths: Vec<(String, String)> = task["inputs"]
        .as_object()
        .map(|inputs| {
            inputs
                .iter()
                .map(|(role, path)| (path.as_str().unwrap().to_owned(), format!("<{role}>")))
                .collect()
        })
        .unwrap_or_default();
    paths.push((scratch.to_owned(), "<scratch>".to_owned()));
    // Longest first, so that a path is never replaced inside a longer one.
    paths.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    let shard = task["shard"].as_u64().map(|index| format!(".{index:04}."));
    task["commands"]
        .as_array()
        .unwrap()
        .iter()
        .map(|command| {
            let argv: Vec<String> = command["argv"]
                .as_array()
                .unwrap()
                .iter()
                .map(|word| {
                    let mut word = word.as_str().unwrap().to_owned();
                    for (path, placeholder) in &paths {
                        word = word.replace(path.as_str(), placeholder);
                    }
                    if let Some(shard) = &shard {
                        word = word.replace(shard.as_str(), ".<shard>.");
                    }
                    word
                })
                .collect();
            shell_words(&named(argv))
        })
        .collect()
}

/// A plan's commands, one string per command (pipelines flattened).
fn plan_commands(plan: &StepPlan) -> Vec<String> {
    plan.argv()
        .iter()
        .flatten()
        .map(|argv| shell_words(&named(argv.clone())))
        .collect()
}

/// The `--dry-run` text as sections: the step's header (`align`, `call: …`) → its commands,
/// and for call, each `[contig]` → its commands. Pipelines are split into their commands.
fn dry_run_sections(text: &str) -> BTreeMap<String, Vec<String>> {
    let mut sections: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = String::new();
    for line in text.lines() {
        if let Some((number, title)) = line.split_once(". ")
            && number.chars().all(|c| c.is_ascii_digit())
            && !number.is_empty()
        {
            current = title.split([' ', ':']).next().unwrap().to_owned();
        } else if let Some(contig) = line
            .strip_prefix("   [")
            .and_then(|rest| rest.strip_suffix(']'))
        {
            current = format!("call {contig}");
        } else if let Some(command) = line.strip_prefix("   ")
            && !command.starts_with('(')
        {
            sections
                .entry(current.clone())
                .or_default()
                .extend(command.split(" | ").map(str::to_owned));
        }
    }
    sections
}

/// The task of `step` (and `contig`, for a call shard) in a run manifest.
fn task<'a>(manifest: &'a Value, step: &str, contig: Option<&str>) -> &'a Value {
    manifest["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["step"] == step && t["contig"].as_str() == contig && t["status"] == "succeeded")
        .unwrap_or_else(|| panic!("no {step} {contig:?} task in {manifest}"))
}

/// The reference the tasks read, as prepared (its path is the align task's `reference`).
fn prepared(task: &Value) -> PreparedReference {
    let fasta = Utf8PathBuf::from(task["inputs"]["reference"].as_str().unwrap());
    let fai = Utf8PathBuf::from(format!("{fasta}.fai"));
    PreparedReference {
        contigs: biojob_formats::read_fai(&fai).unwrap(),
        bwa_prefix: Some(fasta.clone()),
        fasta,
        fai,
        built: Vec::new(),
        digests: Default::default(),
    }
}

fn sha256(path: &Value) -> String {
    file_sha256(Utf8Path::new(path.as_str().unwrap())).unwrap()
}

/// The key the task's record must carry: its plan made for the key, with the digests of the
/// files it read, computed here from the files.
fn expected_key(
    definition: &dyn StepDefinition,
    task: &Value,
    versions: &ToolVersions,
    digests: BTreeMap<String, String>,
) -> String {
    let tools = Toolset {
        bwa: ToolPath::new(Tool::Bwa, "bwa"),
        samtools: ToolPath::new(Tool::Samtools, "samtools"),
        bcftools: ToolPath::new(Tool::Bcftools, "bcftools"),
    };
    let plan = definition.plan(&PlanContext::for_key(&tools));
    let shard = task["contig"].as_str().map(str::to_owned);
    CacheKeyMaterial::for_plan(&plan, shard, versions, digests).key()
}

fn align_digests(task: &Value, reference: &PreparedReference) -> BTreeMap<String, String> {
    let mut digests = BTreeMap::from([
        ("fastq_1".to_owned(), sha256(&task["inputs"]["fastq_1"])),
        ("fastq_2".to_owned(), sha256(&task["inputs"]["fastq_2"])),
        ("reference".to_owned(), reference_sha256(reference).unwrap()),
    ]);
    for (extension, digest) in bwa_index_sha256(reference, Aligner::Bwa).unwrap() {
        digests.insert(format!("bwa_index{extension}"), digest);
    }
    digests
}

/// A call task's digests: the run's BAM (published in `run_dir`; the task read a copy in
/// scratch, removed since) and the reference.
fn call_digests(run_dir: &Path, reference: &PreparedReference) -> BTreeMap<String, String> {
    let bam = Utf8PathBuf::from_path_buf(run_dir.join(format!("{SAMPLE}.align.bam"))).unwrap();
    BTreeMap::from([
        ("bam".to_owned(), file_sha256(&bam).unwrap()),
        ("reference".to_owned(), reference_sha256(reference).unwrap()),
    ])
}

/// The gather task's digests: each shard's VCF (as published in `run_dir`), by position.
fn gather_digests(
    run_dir: &Path,
    shards: usize,
    reference: &PreparedReference,
) -> BTreeMap<String, String> {
    let mut digests = BTreeMap::from([(
        "reference_fai".to_owned(),
        file_sha256(&reference.fai).unwrap(),
    )]);
    for index in 0..shards {
        let vcf = run_dir.join(format!("{SAMPLE}.call.{index:04}.vcf.gz"));
        let vcf = Utf8PathBuf::from_path_buf(vcf).unwrap();
        digests.insert(format!("vcf.{index:04}"), file_sha256(&vcf).unwrap());
    }
    digests
}

#[test]
fn what_runs_is_what_the_dry_run_prints_and_what_the_cache_key_hashes() {
    let ws = Workspace::new();
    let input = ws.demo_input(&CONTIGS);
    let output = ws.run(&input, "plan", &RESOURCES, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let run_dir = ws.out().join(SAMPLE).join("plan");
    let manifest = json(&run_dir.join("manifest.json"));
    let scratch = manifest["scratch"]["dir"].as_str().unwrap();
    let dry = ws
        .biojob()
        .args(["run", "--dry-run", "--input"])
        .arg(&input)
        .args(RESOURCES)
        .output()
        .unwrap();
    assert!(dry.status.success(), "{}", stderr(&dry));
    let sections = dry_run_sections(&stdout(&dry));
    let (_, versions) = tools_of(&manifest);
    let sample = SampleId::new(SAMPLE).unwrap();

    // The dry run prints what each task ran, modulo placeholders.
    let align = task(&manifest, "align", None);
    assert_eq!(normalised_commands(align, scratch), sections["align"]);
    for contig in CONTIGS {
        let call = task(&manifest, "call", Some(contig));
        assert_eq!(
            normalised_commands(call, scratch),
            sections[&format!("call {contig}")],
            "call {contig}"
        );
    }
    let gather = task(&manifest, "gather", None);
    let printed_gather = &sections["gather"];
    // The dry run shows a gather of two VCFs; the run gathered three.
    let concat = normalised_commands(gather, scratch);
    assert_eq!(
        concat[0],
        printed_gather[0].replace("<vcf.0001>", "<vcf.0001> <vcf.0002>")
    );
    assert_eq!(concat[1..], printed_gather[1..]);
    assert_eq!(
        normalised_commands(task(&manifest, "qc", None), scratch),
        sections["qc"]
    );

    // The recorded keys hash those plans, made for the key, with the inputs' digests.
    let reference = prepared(align);
    let read_group = ReadGroup::for_sample(&sample);
    let align_step = AlignStep {
        sample: sample.clone(),
        read_group,
        chunk: None,
        chunking: None,
        validate_fastq: true,
        lane: None,
        mark_duplicates: false,
    };
    assert_eq!(
        align["cache_key"].as_str().unwrap(),
        expected_key(
            &align_step,
            align,
            &versions,
            align_digests(align, &reference)
        )
    );
    let plan = ScatterPlan::by_contig(reference.contigs.clone());
    for shard in plan.shards() {
        let call = task(&manifest, "call", Some(shard.region()));
        let step = CallStep::new(sample.clone(), ShardRequest::Shard(shard.clone()), None);
        assert_eq!(
            call["cache_key"].as_str().unwrap(),
            expected_key(&step, call, &versions, call_digests(&run_dir, &reference)),
            "call {}",
            shard.region()
        );
    }
    let gather_step = GatherStep::new(sample, GatherInputs::Given(3));
    assert_eq!(
        gather["cache_key"].as_str().unwrap(),
        expected_key(
            &gather_step,
            gather,
            &versions,
            gather_digests(&run_dir, 3, &reference)
        )
    );
}

#[test]
fn chunks_and_size_shards_run_their_plans_and_record_their_keys() {
    let ws = Workspace::new();
    let input = ws.demo_input(&CONTIGS);
    let mut flags = RESOURCES.to_vec();
    flags.extend(["--chunk-pairs", "5000", "--shard-bases", "100000"]);
    let output = ws.run(&input, "scaled", &flags, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let run_dir = ws.out().join(SAMPLE).join("scaled");
    let manifest = json(&run_dir.join("manifest.json"));
    let scratch = manifest["scratch"]["dir"].as_str().unwrap();
    let (toolset, versions) = tools_of(&manifest);
    let context = PlanContext::placeholders(&toolset, resources());
    let sample = SampleId::new(SAMPLE).unwrap();
    let read_group = ReadGroup::for_sample(&sample);
    let tasks = manifest["tasks"].as_array().unwrap();

    // 13,860 pairs in chunks of 5,000: three chunks, each aligned by its plan.
    let chunks: Vec<&Value> = tasks
        .iter()
        .filter(|t| t["step"] == "align" && t["shard"].is_u64())
        .collect();
    assert_eq!(chunks.len(), 3);
    for chunk in &chunks {
        let index = usize::try_from(chunk["shard"].as_u64().unwrap()).unwrap();
        let step = AlignStep {
            sample: sample.clone(),
            read_group: read_group.clone(),
            chunk: Some(index),
            chunking: None,
            validate_fastq: true,
            lane: None,
            mark_duplicates: false,
        };
        assert_eq!(
            normalised_commands(chunk, scratch),
            plan_commands(&step.plan(&context)),
            "chunk {index}"
        );
        assert_eq!(chunk.get("cache_key"), None, "a local chunk has no key");
    }
    // The merge carries the key of the whole chunked alignment.
    let merge = tasks.iter().find(|t| t["step"] == "merge").unwrap();
    let merge_step = MergeStep {
        sample: sample.clone(),
        read_groups: vec![read_group.clone()],
        chunks: 3,
        mark_duplicates: false,
        in_cohort: false,
        chunk_records: None,
        upload_to: None,
    };
    assert_eq!(
        normalised_commands(merge, scratch),
        plan_commands(&merge_step.plan(&context))
    );
    let split = tasks.iter().find(|t| t["step"] == "split").unwrap();
    let whole = AlignStep {
        sample: sample.clone(),
        read_group,
        chunk: None,
        chunking: NonZeroU64::new(5000)
            .map(|chunk_pairs| biojob_formats::ChunkLayout::Consecutive { chunk_pairs }),
        validate_fastq: true,
        lane: None,
        mark_duplicates: false,
    };
    let chunk_0 = chunks[0];
    let reference = prepared(chunk_0);
    // The split read the FASTQ pair the whole alignment's key hashes.
    assert_eq!(
        merge["cache_key"].as_str().unwrap(),
        expected_key(&whole, merge, &versions, align_digests(split, &reference))
    );

    // Shards cut by size: each runs `mpileup | call | view -t` from its plan, keyed by it.
    let by_size =
        ScatterPlan::by_size(reference.contigs.clone(), NonZeroU64::new(100_000).unwrap());
    let calls: Vec<&Value> = tasks.iter().filter(|t| t["step"] == "call").collect();
    assert_eq!(calls.len(), by_size.shards().len());
    let mut parts = 0;
    for shard in by_size.shards() {
        let call = calls
            .iter()
            .find(|t| t["contig"] == shard.region())
            .unwrap_or_else(|| panic!("no call task for {}", shard.region()));
        let step = CallStep::new(sample.clone(), ShardRequest::Shard(shard.clone()), None);
        assert_eq!(
            normalised_commands(call, scratch),
            plan_commands(&step.plan(&context)),
            "call {}",
            shard.region()
        );
        assert_eq!(
            call["cache_key"].as_str().unwrap(),
            expected_key(&step, call, &versions, call_digests(&run_dir, &reference)),
            "call {}",
            shard.region()
        );
        parts += usize::from(!shard.is_whole_contigs());
    }
    assert!(parts >= 3, "chr20 (300 kb) is cut into parts: {parts}");
}

/// A task without what differs between two runs of the same request on one machine: its
/// timings, and paths (argv and inputs normalised to placeholders, output URIs to names).
fn comparable(task: &Value, scratch: &str) -> Value {
    let mut task = task.clone();
    let commands = normalised_commands(&task, scratch);
    let object = task.as_object_mut().unwrap();
    for field in [
        "started_at",
        "started_unix_seconds",
        "wall_seconds",
        "cpu_seconds",
        "peak_rss_bytes",
        "inputs",
    ] {
        object.remove(field);
    }
    for (command, argv) in object["commands"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .zip(commands)
    {
        let command = command.as_object_mut().unwrap();
        for field in [
            "wall_seconds",
            "user_cpu_seconds",
            "system_cpu_seconds",
            "max_rss_bytes",
        ] {
            command.remove(field);
        }
        command.insert("argv".to_owned(), Value::String(argv));
    }
    for output in object["outputs"].as_array_mut().unwrap() {
        output.as_object_mut().unwrap().remove("uri");
    }
    task
}

#[test]
fn a_run_and_its_step_jobs_one_by_one_record_the_same_tasks() {
    let ws = Workspace::new();
    let input = ws.demo_input(&CONTIGS);
    // The local run works in <scratch root>/same/1; so will each job (AWS_BATCH_JOB_ID same),
    // so that the tools see the same paths and the BAM's @PG lines are the same.
    let output = ws.run(&input, "same", &RESOURCES, &[]);
    assert!(output.status.success(), "{}", stderr(&output));
    let run = json(&ws.out().join(SAMPLE).join("same").join("manifest.json"));
    let scratch = run["scratch"]["dir"].as_str().unwrap().to_owned();
    let prefix = ws.path().join("jobs");
    let job = |step: &str, extra: &[(&str, &str)]| {
        let mut command = ws.biojob();
        command
            .arg(step)
            .args(RESOURCES)
            .env("SAMPLE_ID", SAMPLE)
            .env("REFERENCE_NAME", "ref")
            .env("SOURCE_DATA_PREFIX", testdata())
            .env("JOB_OUTPUT_PREFIX", &prefix)
            .env("AWS_BATCH_JOB_ID", "same")
            .env("AWS_BATCH_JOB_ATTEMPT", "1");
        for (key, value) in extra {
            command.env(key, value);
        }
        let output = command.output().unwrap();
        assert!(output.status.success(), "{step}: {}", stderr(&output));
    };
    job("align", &[]);
    for contig in CONTIGS {
        job("call", &[("CHROMOSOME", contig)]);
    }
    let chromosomes = serde_json::to_string(&CONTIGS).unwrap();
    job("gather", &[("CHROMOSOMES", &chromosomes)]);
    job("qc", &[("CHROMOSOMES", &chromosomes)]);

    let step_manifest = |name: &str| json(&prefix.join(format!("{SAMPLE}.{name}.manifest.json")));
    let mut compared = Vec::new();
    for record in run["tasks"].as_array().unwrap() {
        let step = record["step"].as_str().unwrap();
        if step == "prepare-reference" {
            // A job prepares its reference as part of its step.
            continue;
        }
        let name = match record["shard"].as_u64() {
            Some(index) => format!("{step}.{index:04}"),
            None => step.to_owned(),
        };
        let manifest = step_manifest(&name);
        // The step manifest's facts are the run's.
        for field in [
            "format_version",
            "biojob_version",
            "sample",
            "resources",
            "tools",
        ] {
            assert_eq!(manifest[field], run[field], "{name}: {field}");
        }
        let job_task = &manifest["task"];
        let job_scratch = manifest["scratch"]["dir"].as_str().unwrap();
        assert_eq!(job_scratch, scratch, "{name}: the same scratch directory");
        let (mut ours, mut theirs) = (
            comparable(record, &scratch),
            comparable(job_task, job_scratch),
        );
        // The VCFs' headers and the stats reports hold the command lines with the BAM's path,
        // which is the run's scratch directory in one and the job's run prefix in the other:
        // their bytes differ, so do their digests and gather's key, which hashes the VCFs;
        // report.html shows the timings.
        if matches!(step, "call" | "gather" | "qc") {
            for task in [&mut ours, &mut theirs] {
                for output in task["outputs"].as_array_mut().unwrap() {
                    let name = output["name"].as_str().unwrap().to_owned();
                    if name.contains(".vcf.gz") || name.contains("stats") || name == "report.html" {
                        let output = output.as_object_mut().unwrap();
                        output.remove("sha256");
                        output.remove("bytes");
                        output.remove("verified");
                    }
                }
                if step == "gather" {
                    task.as_object_mut().unwrap().remove("cache_key");
                }
            }
        }
        assert_eq!(ours, theirs, "{name}");
        compared.push(name);
    }
    assert_eq!(
        compared,
        [
            "align",
            "call.0000",
            "call.0001",
            "call.0002",
            "gather",
            "qc"
        ]
    );
    // The BAM is byte for byte the same, and so each call job's key.
    let bam = |dir: &Path| std::fs::read(dir.join(format!("{SAMPLE}.align.bam"))).unwrap();
    assert!(bam(&ws.out().join(SAMPLE).join("same")) == bam(&prefix));
}
