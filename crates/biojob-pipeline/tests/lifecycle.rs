//! The step job lifecycle ([`StepJob::run`]) with a step of the tests' own, run by the fake
//! tools of `testdata/bin` (neither root nor the real tools needed): a job runs and publishes
//! its outputs with its key; a resumed job reuses a finished task and runs nothing; a changed
//! input or output runs it again, saying why; a failed tool or an output that fails its check
//! publishes nothing and leaves nothing.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use biojob_core::{Classify, ExitClass, StepId};
use biojob_pipeline::{
    Earlier, EarlierTasks, Engine, Error, Executed, JobInput, JobOutcome, JobTarget, KeyPolicy,
    LogObserver, OutputRecord, PlanContext, PlannedOutput, RecordCounts, Resources,
    ScratchSettings, StagedInputs, StepContext, StepDefinition, StepJob, StepManifest, StepPlan,
    TaskStatus, partial,
};
use biojob_process::{CancelToken, CommandSpec};
use biojob_scratch::{Attempt, JobId, JobScratch, SpaceNeed};
use biojob_storage::{ObjectUri, Stores};
use biojob_testkit::fake_tool;
use biojob_tools::{Tool, ToolPath, ToolVersions, Toolset};
use camino::{Utf8Path, Utf8PathBuf};

/// A step that writes `kib` KiB with `write-steadily` (or whatever `program` is), reading its
/// input `in` only as an argument, and checks the output has `expect_kib` KiB.
struct WriteStep {
    kib: u64,
    expect_kib: u64,
}

impl StepDefinition for WriteStep {
    fn step(&self) -> StepId {
        StepId::Gather
    }

    fn space_need(&self, staged: u64, _inputs: &[(String, u64)]) -> SpaceNeed {
        SpaceNeed::new("write").with("staged inputs", staged)
    }

    fn plan(&self, context: &PlanContext<'_>) -> StepPlan {
        let out = context.work_file("out.bin");
        let command = CommandSpec::new("write", context.toolset.samtools.program())
            .args([self.kib.to_string(), self.kib.to_string(), "0".to_owned()])
            .arg(context.input("in").as_str())
            .stdout_file(partial(&out));
        StepPlan::new(StepId::Gather, context.resources)
            .command(Tool::Samtools, command)
            .output(out)
    }

    fn execute(
        &self,
        plan: StepPlan,
        _inputs: &StagedInputs,
        context: &StepContext,
    ) -> Result<Executed, Error> {
        let out = plan.outputs[0].path.clone();
        let written = partial(&out);
        let result = (|| {
            let mut commands = Vec::new();
            for command in plan.pipelines.into_iter().flatten() {
                commands.push(context.supervisor.run(command.command)?);
            }
            let bytes = std::fs::metadata(&written).map_or(0, |m| m.len());
            if bytes != self.expect_kib * 1024 {
                return Err(Error::Verification {
                    path: written.clone(),
                    detail: format!("{bytes} bytes, expected {}", self.expect_kib * 1024),
                });
            }
            std::fs::rename(&written, &out).map_err(Error::io("renaming to", &out))?;
            Ok(Executed {
                commands,
                outputs: vec![PlannedOutput {
                    path: out.clone(),
                    intermediate: false,
                }],
                records: RecordCounts::default(),
            })
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&written);
        }
        result
    }
}

struct Bench {
    _temp: tempfile::TempDir,
    root: Utf8PathBuf,
    engine: Engine,
    /// Runs so far: each runs as its own job (its own scratch directory).
    runs: std::cell::Cell<usize>,
}

impl Bench {
    fn new() -> Bench {
        let temp = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(temp.path().to_owned()).unwrap();
        std::fs::write(root.join("input.txt"), "an input").unwrap();
        let engine = Engine {
            stores: Stores::local_only(),
            toolset: Toolset {
                bwa: ToolPath::new(Tool::Bwa, fake_tool("fake-bwa")),
                samtools: ToolPath::new(Tool::Samtools, fake_tool("write-steadily")),
                bcftools: ToolPath::new(Tool::Bcftools, fake_tool("exit-1")),
            },
            versions: ToolVersions {
                bwa: "0.7.17-r1188".into(),
                samtools: "1.16.1".into(),
                bcftools: "1.16".into(),
            },
            resources: Resources {
                threads: 1,
                memory_bytes: 1 << 30,
            },
            cancel: CancelToken::new(),
            grace: Duration::from_secs(2),
            timeout: None,
            step_timeout: None,
            scratch: ScratchSettings::new(root.join("scratch")),
            validate_fastq: true,
        };
        Bench {
            _temp: temp,
            root,
            engine,
            runs: std::cell::Cell::new(0),
        }
    }

    fn prefix(&self) -> ObjectUri {
        ObjectUri::Local(self.root.join("published"))
    }

    /// Runs `step` (with `program` as its tool) once, in a fresh scratch directory.
    fn run(&self, step: &WriteStep, program: &str, earlier: Option<&EarlierTasks>) -> Outcome {
        let mut engine = self.engine.clone();
        engine.toolset.samtools = ToolPath::new(Tool::Samtools, fake_tool(program));
        let (scratch, space) = engine
            .scratch
            .open(
                &JobId::new(&format!("job-{}", self.runs.get())).unwrap(),
                Attempt::FIRST,
            )
            .unwrap();
        self.runs.set(self.runs.get() + 1);
        let work_dir = scratch.dir().to_owned();
        let context = engine.context(&work_dir.join("logs"), &space);
        std::fs::create_dir_all(self.root.join("published")).unwrap();
        let job = StepJob {
            definition: step,
            inputs: vec![JobInput::new(
                "in",
                ObjectUri::Local(self.root.join("input.txt")),
                "the input",
                "write it",
            )],
            reference: None,
            key: KeyPolicy::Own,
        };
        let outcome = job.run(&JobTarget {
            context: &context,
            work_dir: &work_dir,
            prefix: &self.prefix(),
            publish_intermediates: false,
            earlier: earlier.map(Earlier::Tasks),
            observer: &LogObserver,
        });
        Outcome {
            work_files: files(&work_dir),
            outcome,
            _scratch: scratch,
        }
    }

    /// The finished tasks of `outcome`, as a resume reads them from its step manifest.
    fn earlier(&self, outcome: &JobOutcome) -> EarlierTasks {
        let manifest = StepManifest {
            format_version: 1,
            biojob_version: "test".into(),
            sample: "S".into(),
            resources: self.engine.resources,
            tools: Vec::new(),
            scratch: None,
            task: outcome.record.clone(),
            earlier_task: None,
        };
        let path = self.root.join("step.manifest.json");
        std::fs::write(&path, serde_json::to_vec(&manifest).unwrap()).unwrap();
        EarlierTasks::from_step_manifest(&Stores::local_only(), &ObjectUri::Local(path)).unwrap()
    }

    fn published(&self) -> Vec<String> {
        files(&self.root.join("published"))
    }
}

struct Outcome {
    outcome: JobOutcome,
    work_files: Vec<String>,
    _scratch: JobScratch,
}

/// The files of `dir` (not below it), sorted.
fn files(dir: &Utf8Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.path().is_file())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

const STEP: WriteStep = WriteStep {
    kib: 4,
    expect_kib: 4,
};

#[test]
fn a_job_runs_publishes_its_outputs_and_records_its_key() {
    let bench = Bench::new();
    let run = bench.run(&STEP, "write-steadily", None);
    let record = &run.outcome.record;
    assert!(run.outcome.error.is_none(), "{:?}", run.outcome.error);
    assert_eq!(record.status, TaskStatus::Succeeded);
    assert_eq!(run.work_files, ["out.bin"]);
    assert_eq!(bench.published(), ["out.bin"]);
    assert_eq!(record.outputs.len(), 1);
    assert_eq!(record.outputs[0].name, "out.bin");
    assert_eq!(record.outputs[0].bytes, 4096);
    // write-steadily writes zeros.
    assert_eq!(
        record.outputs[0].sha256,
        biojob_pipeline::file_sha256(&bench.root.join("published/out.bin")).unwrap()
    );
    let key = record.cache_key.clone().unwrap();
    assert!(key.starts_with("sha256:") && key.len() == 71, "{key}");
    assert_eq!(record.commands.len(), 1);
    assert_eq!(record.commands[0].label, "write");
    assert_eq!(
        record.inputs,
        BTreeMap::from([("in".to_owned(), bench.root.join("input.txt").to_string())])
    );
    // The same request gives the same key, whoever runs it.
    let again = bench.run(&STEP, "write-steadily", None);
    assert_eq!(again.outcome.record.cache_key, Some(key));
}

#[test]
fn a_resumed_job_reuses_the_finished_task_and_runs_nothing() {
    let bench = Bench::new();
    let first = bench.run(&STEP, "write-steadily", None);
    let earlier = bench.earlier(&first.outcome);
    // The tool now fails if it runs: the reused task must not run it. The program's path is
    // not in the key (its version is), so the key is the same.
    let second = bench.run(&STEP, "exit-1", Some(&earlier));
    let record = &second.outcome.record;
    assert!(second.outcome.error.is_none(), "{:?}", second.outcome.error);
    assert_eq!(record.status, TaskStatus::Cached);
    assert_eq!(record.cache_key, first.outcome.record.cache_key);
    // The same outputs, checked again by size and SHA-256 before reuse.
    let reused: Vec<_> = record
        .outputs
        .iter()
        .map(|output| OutputRecord {
            verified: first.outcome.record.outputs[0].verified.clone(),
            ..output.clone()
        })
        .collect();
    assert_eq!(reused, first.outcome.record.outputs);
    assert_eq!(
        first.outcome.record.outputs[0].verified,
        "read back: 4096 bytes, SHA-256"
    );
    assert_eq!(record.outputs[0].verified, "reused: 4096 bytes, SHA-256");
    assert!(record.commands.is_empty());
    assert_eq!(second.work_files, Vec::<String>::new());
    assert_eq!(
        second.outcome.outputs[0].path,
        bench.root.join("published/out.bin")
    );
}

#[test]
fn a_changed_input_or_output_runs_the_step_again_and_says_why() {
    let bench = Bench::new();
    let first = bench.run(&STEP, "write-steadily", None);
    let earlier = bench.earlier(&first.outcome);
    std::fs::write(bench.root.join("input.txt"), "another input").unwrap();
    let changed_input = bench.run(&STEP, "write-steadily", Some(&earlier));
    let record = &changed_input.outcome.record;
    assert_eq!(record.status, TaskStatus::Succeeded);
    assert_ne!(record.cache_key, first.outcome.record.cache_key);
    assert_eq!(
        record.rerun_reason.as_deref(),
        Some(
            "no earlier task finished with this cache key (none finished, or an input, a tool \
             version, an argument or a setting changed)"
        )
    );
    // Back to the first input, and the published output altered: not reused either.
    std::fs::write(bench.root.join("input.txt"), "an input").unwrap();
    let published = bench.root.join("published/out.bin");
    let mut bytes = std::fs::read(&published).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&published, bytes).unwrap();
    let changed_output = bench.run(&STEP, "write-steadily", Some(&earlier));
    let record = &changed_output.outcome.record;
    assert_eq!(record.status, TaskStatus::Succeeded);
    assert_eq!(record.cache_key, first.outcome.record.cache_key);
    assert_eq!(
        record.rerun_reason.as_deref(),
        Some(format!("the earlier output {published} changed (SHA-256)").as_str())
    );
}

#[test]
fn a_failed_tool_publishes_nothing_and_leaves_nothing() {
    let bench = Bench::new();
    let run = bench.run(&STEP, "exit-1", None);
    let error = run.outcome.error.as_ref().unwrap();
    assert_eq!(error.exit_class(), ExitClass::ToolFailed);
    // exit-1 prints its arguments on stderr: the tail of its stderr is in the message.
    assert_eq!(
        biojob_pipeline::error_chain(error),
        format!(
            "gather failed: write exited with status 1: 4\n4\n0\n{}",
            bench.root.join("input.txt")
        )
    );
    let record = &run.outcome.record;
    assert_eq!(record.status, TaskStatus::Failed);
    assert_eq!(record.exit_class, ExitClass::ToolFailed);
    assert!(record.outputs.is_empty());
    assert_eq!(record.commands[0].exit, "exited with status 1");
    assert_eq!(bench.published(), Vec::<String>::new());
    assert_eq!(run.work_files, Vec::<String>::new());
}

#[test]
fn an_output_that_fails_its_check_publishes_nothing() {
    let bench = Bench::new();
    let short = WriteStep {
        kib: 2,
        expect_kib: 4,
    };
    let run = bench.run(&short, "write-steadily", None);
    let error = run.outcome.error.as_ref().unwrap();
    assert_eq!(error.exit_class(), ExitClass::OutputInvalid);
    let chain = biojob_pipeline::error_chain(error);
    assert!(
        chain.starts_with("gather failed: ")
            && chain.ends_with("out.bin.partial: 2048 bytes, expected 4096"),
        "{chain}"
    );
    assert_eq!(run.outcome.record.status, TaskStatus::Failed);
    assert_eq!(bench.published(), Vec::<String>::new());
    assert_eq!(run.work_files, Vec::<String>::new());
}
