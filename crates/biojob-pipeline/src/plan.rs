//! A step's plan: the typed argv of every tool it runs, its outputs and its resources.
//!
//! Each step has one `plan` function (see [`crate::StepDefinition::plan`]). It is called with
//! a [`PlanContext`] in one of three ways, so that what runs, the cache key and `--dry-run`
//! cannot drift apart (docs/steps.md):
//! - [`PlanContext::local`]: the job's real files and resources — the plan that runs, whose
//!   argv the manifest records;
//! - [`PlanContext::for_key`]: paths as placeholders, [`KEY_RESOURCES`] — hashed into the
//!   cache key ([`crate::CacheKeyMaterial::for_plan`]);
//! - [`PlanContext::placeholders`]: paths as placeholders, the run's resources — printed by
//!   `biojob run --dry-run` ([`StepPlan::render`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use biojob_core::{SampleId, StepId, scratch_file_name};
use biojob_process::CommandSpec;
use biojob_tools::{Tool, Toolset};
use camino::{Utf8Path, Utf8PathBuf};

use crate::Resources;

/// The resources every cache key's plan is made with: thread counts and sort memory change
/// neither the BAM's records nor the VCFs' (bwa's batch size `-K` is fixed), so a key must not
/// depend on them. One thread, 3 GiB (a `samtools sort -m` of 768 MiB).
pub const KEY_RESOURCES: Resources = Resources {
    threads: 1,
    memory_bytes: 3 << 30,
};

/// The placeholder for the job's private scratch directory.
pub const SCRATCH_PLACEHOLDER: &str = "<scratch>";

/// How a plan names files: placeholders, or the job's real files.
#[derive(Debug, Clone, Copy)]
pub enum PlanPaths<'a> {
    /// `<scratch>/…` for files the step writes, `<role>` for each input (`<fastq_1>`,
    /// `<reference>`, `<bam>`), `<shard>` for a shard's number in file names.
    Placeholders,
    /// The job's files: outputs under `work_dir`, inputs by role.
    Local {
        /// Where the step writes.
        work_dir: &'a Utf8Path,
        /// Each input's local path by role.
        inputs: &'a BTreeMap<String, Utf8PathBuf>,
    },
}

/// What a step's `plan` function is given besides the step's own request.
#[derive(Debug, Clone, Copy)]
pub struct PlanContext<'a> {
    /// The tools the commands run.
    pub toolset: &'a Toolset,
    /// The CPU and memory the commands are sized for.
    pub resources: Resources,
    /// How files are named.
    pub paths: PlanPaths<'a>,
}

impl<'a> PlanContext<'a> {
    /// The plan that runs: the job's files and resources.
    pub fn local(
        toolset: &'a Toolset,
        resources: Resources,
        work_dir: &'a Utf8Path,
        inputs: &'a BTreeMap<String, Utf8PathBuf>,
    ) -> Self {
        PlanContext {
            toolset,
            resources,
            paths: PlanPaths::Local { work_dir, inputs },
        }
    }

    /// The plan a cache key hashes: placeholders and [`KEY_RESOURCES`].
    pub fn for_key(toolset: &'a Toolset) -> Self {
        PlanContext {
            toolset,
            resources: KEY_RESOURCES,
            paths: PlanPaths::Placeholders,
        }
    }

    /// The plan `--dry-run` prints: placeholders and the run's resources.
    pub fn placeholders(toolset: &'a Toolset, resources: Resources) -> Self {
        PlanContext {
            toolset,
            resources,
            paths: PlanPaths::Placeholders,
        }
    }

    /// The job's threads, at least 1.
    pub fn threads(&self) -> usize {
        self.resources.threads.max(1)
    }

    /// A file the step writes: `<work dir>/<name>`, or `<scratch>/<name>`.
    pub fn work_file(&self, name: &str) -> Utf8PathBuf {
        match self.paths {
            PlanPaths::Placeholders => Utf8Path::new(SCRATCH_PLACEHOLDER).join(name),
            PlanPaths::Local { work_dir, .. } => work_dir.join(name),
        }
    }

    /// The input with `role`: its local path, or `<role>`.
    pub fn input(&self, role: &str) -> Utf8PathBuf {
        let placeholder = || Utf8PathBuf::from(format!("<{role}>"));
        match self.paths {
            PlanPaths::Placeholders => placeholder(),
            PlanPaths::Local { inputs, .. } => {
                inputs.get(role).cloned().unwrap_or_else(placeholder)
            }
        }
    }

    /// As [`PlanContext::input`], but an input streamed from an object store (no local path)
    /// is read through its named pipe in the work directory ([`crate::input_pipe_path`]).
    pub fn input_or_pipe(&self, role: &str) -> Utf8PathBuf {
        match self.paths {
            PlanPaths::Local { work_dir, inputs } => inputs
                .get(role)
                .cloned()
                .unwrap_or_else(|| crate::input_pipe_path(work_dir, role)),
            PlanPaths::Placeholders => self.input(role),
        }
    }

    /// The file name `{sample}.{step}[.{shard:04}].{ext}` ([`scratch_file_name`]); with
    /// placeholders, the shard's number is `<shard>` (it is a line of the reference's `.fai`,
    /// unknown to a dry run, and names no content).
    pub fn step_file_name(
        &self,
        sample: &SampleId,
        step: StepId,
        shard: Option<usize>,
        ext: &str,
    ) -> String {
        match (self.paths, shard) {
            (PlanPaths::Placeholders, Some(_)) => format!("{sample}.{step}.<shard>.{ext}"),
            _ => scratch_file_name(sample, step, shard, ext),
        }
    }
}

/// `<path>.partial`: the name an output is written under until the step has succeeded.
pub fn partial(path: &Utf8Path) -> Utf8PathBuf {
    Utf8PathBuf::from(format!("{path}.partial"))
}

/// One command of a plan and the tool it runs.
#[derive(Debug)]
pub struct PlannedCommand {
    /// The tool (its name and version go into the cache key, not its path).
    pub tool: Tool,
    /// The command.
    pub command: CommandSpec,
}

impl PlannedCommand {
    /// `command`, which runs `tool`.
    pub fn new(tool: Tool, command: CommandSpec) -> Self {
        PlannedCommand { tool, command }
    }

    /// The argv with the program replaced by the tool's name (a path names an installation,
    /// not what runs; the version goes into the key).
    pub fn key_argv(&self) -> Vec<String> {
        let mut argv = self.command.argv();
        if let Some(program) = argv.first_mut() {
            self.tool.name().clone_into(program);
        }
        argv
    }
}

/// An output of a step: a file it writes into its work directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedOutput {
    /// The file's final path.
    pub path: Utf8PathBuf,
    /// An intermediate output (a chunk's FASTQs or BAM) is published only when the steps
    /// that read it run elsewhere (Batch jobs); a local run keeps it in scratch.
    pub intermediate: bool,
}

/// A small file a step writes itself before its commands run (a bcftools regions file): part
/// of the plan, so its content goes into the cache key and `--dry-run` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFile {
    /// Where it is written (in the work directory).
    pub path: Utf8PathBuf,
    /// What it holds.
    pub contents: String,
}

/// What a step runs, writes and is sized for; see the module documentation.
#[derive(Debug)]
pub struct StepPlan {
    /// The step.
    pub step: StepId,
    /// Files written before the first command runs, which the commands read.
    pub files: Vec<PlannedFile>,
    /// The commands, in the order they run: each inner list is one pipeline (`a | b`), a
    /// single command being a pipeline of one.
    pub pipelines: Vec<Vec<PlannedCommand>>,
    /// The outputs, in publication order.
    pub outputs: Vec<PlannedOutput>,
    /// Settings that change the outputs but appear in no argv (name → value), e.g. the read
    /// pairs per chunk of a chunked alignment; they go into the cache key.
    pub parameters: BTreeMap<String, String>,
    /// What the commands are sized for.
    pub resources: Resources,
    /// Work biojob does itself between the tools, said in a line each for `--dry-run` (the
    /// FASTQ check, the region filter).
    pub notes: Vec<String>,
}

impl StepPlan {
    /// An empty plan of `step`.
    pub fn new(step: StepId, resources: Resources) -> Self {
        StepPlan {
            step,
            files: Vec::new(),
            pipelines: Vec::new(),
            outputs: Vec::new(),
            parameters: BTreeMap::new(),
            resources,
            notes: Vec::new(),
        }
    }

    /// Adds a pipeline of `stages` (`a | b`).
    pub fn pipeline(mut self, stages: Vec<PlannedCommand>) -> Self {
        self.pipelines.push(stages);
        self
    }

    /// Adds one command.
    pub fn command(self, tool: Tool, command: CommandSpec) -> Self {
        self.pipeline(vec![PlannedCommand::new(tool, command)])
    }

    /// Adds a file written before the commands run.
    pub fn file(mut self, path: Utf8PathBuf, contents: impl Into<String>) -> Self {
        self.files.push(PlannedFile {
            path,
            contents: contents.into(),
        });
        self
    }

    /// Writes the plan's [files](StepPlan::files).
    ///
    /// # Errors
    /// [`crate::Error::Io`] when one cannot be written.
    pub fn write_files(&self) -> Result<(), crate::Error> {
        for file in &self.files {
            std::fs::write(&file.path, &file.contents)
                .map_err(crate::Error::io("writing", &file.path))?;
        }
        Ok(())
    }

    /// Adds an output.
    pub fn output(mut self, path: Utf8PathBuf) -> Self {
        self.outputs.push(PlannedOutput {
            path,
            intermediate: false,
        });
        self
    }

    /// Adds an intermediate output (see [`PlannedOutput::intermediate`]).
    pub fn intermediate_output(mut self, path: Utf8PathBuf) -> Self {
        self.outputs.push(PlannedOutput {
            path,
            intermediate: true,
        });
        self
    }

    /// Adds a parameter.
    pub fn parameter(mut self, name: &str, value: impl ToString) -> Self {
        self.parameters.insert(name.to_owned(), value.to_string());
        self
    }

    /// Adds a note for `--dry-run`.
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    /// Every command's argv, pipeline by pipeline, as run.
    pub fn argv(&self) -> Vec<Vec<Vec<String>>> {
        self.pipelines
            .iter()
            .map(|pipeline| pipeline.iter().map(|c| c.command.argv()).collect())
            .collect()
    }

    /// The tools the plan runs, each once, in first use order.
    pub fn tools(&self) -> Vec<Tool> {
        let mut tools = Vec::new();
        for command in self.pipelines.iter().flatten() {
            if !tools.contains(&command.tool) {
                tools.push(command.tool);
            }
        }
        tools
    }

    /// The plan as `--dry-run` prints it: each note, each file written and each pipeline on a
    /// line, indented by three spaces, words quoted as a shell would need them (for display
    /// only: biojob never runs a shell); a file's content is shown with `\t` and `\n`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for note in &self.notes {
            let _ = writeln!(out, "   ({note})");
        }
        for file in &self.files {
            let _ = writeln!(
                out,
                "   (writes {}: {})",
                file.path,
                file.contents.escape_default()
            );
        }
        for pipeline in &self.pipelines {
            let words: Vec<String> = pipeline
                .iter()
                .map(|command| shell_words(&command.command.argv()))
                .collect();
            let _ = writeln!(out, "   {}", words.join(" | "));
        }
        out
    }
}

/// `argv` as a shell would need it typed: words with characters a shell treats specially are
/// single-quoted; `<` and `>` are left bare, as they mark placeholders.
pub fn shell_words(argv: &[String]) -> String {
    let mut text = String::new();
    for (position, word) in argv.iter().enumerate() {
        if position > 0 {
            text.push(' ');
        }
        let plain = !word.is_empty()
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%<>".contains(c));
        if plain {
            text.push_str(word);
        } else {
            let _ = write!(text, "'{}'", word.replace('\'', r"'\''"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use biojob_tools::ToolPath;

    fn toolset() -> Toolset {
        Toolset {
            bwa: ToolPath::new(Tool::Bwa, "/opt/bwa"),
            samtools: ToolPath::new(Tool::Samtools, "/opt/samtools"),
            bcftools: ToolPath::new(Tool::Bcftools, "/opt/bcftools"),
        }
    }

    #[test]
    fn files_and_inputs_are_placeholders_or_local_paths() {
        let tools = toolset();
        let sample = SampleId::new("S1").unwrap();
        let key = PlanContext::for_key(&tools);
        assert_eq!(key.work_file("a.bam"), "<scratch>/a.bam");
        assert_eq!(key.input("bam"), "<bam>");
        assert_eq!(
            key.step_file_name(&sample, StepId::Call, Some(3), "vcf.gz"),
            "S1.call.<shard>.vcf.gz"
        );
        assert_eq!(key.resources, KEY_RESOURCES);
        let inputs = BTreeMap::from([("bam".to_owned(), Utf8PathBuf::from("/in/x.bam"))]);
        let local = PlanContext::local(
            &tools,
            Resources {
                threads: 4,
                memory_bytes: 1 << 30,
            },
            Utf8Path::new("/w"),
            &inputs,
        );
        assert_eq!(local.work_file("a.bam"), "/w/a.bam");
        assert_eq!(local.input("bam"), "/in/x.bam");
        assert_eq!(
            local.step_file_name(&sample, StepId::Call, Some(3), "vcf.gz"),
            "S1.call.0003.vcf.gz"
        );
    }

    #[test]
    fn a_plan_renders_pipelines_with_quoted_words() {
        let tools = toolset();
        let plan = StepPlan::new(StepId::Align, KEY_RESOURCES)
            .note("biojob checks the FASTQs")
            .pipeline(vec![
                PlannedCommand::new(
                    Tool::Bwa,
                    CommandSpec::new("bwa-mem", tools.bwa.program()).args(["mem", "@RG\\tID:x"]),
                ),
                PlannedCommand::new(
                    Tool::Samtools,
                    CommandSpec::new("samtools-sort", tools.samtools.program()).arg("sort"),
                ),
            ])
            .command(
                Tool::Samtools,
                CommandSpec::new("samtools-index", tools.samtools.program()).arg("index"),
            );
        assert_eq!(
            plan.render(),
            "   (biojob checks the FASTQs)\n   /opt/bwa mem '@RG\\tID:x' | /opt/samtools sort\n   /opt/samtools index\n"
        );
        assert_eq!(plan.tools(), [Tool::Bwa, Tool::Samtools]);
        assert_eq!(
            plan.pipelines[0][0].key_argv(),
            ["bwa", "mem", "@RG\\tID:x"]
        );
    }

    /// A file the plan writes (a regions file) is shown by the dry run and is part of the key:
    /// another content, another key.
    #[test]
    fn a_plan_file_is_rendered_and_keyed() {
        let tools = toolset();
        let plan = |contents: &str| {
            StepPlan::new(StepId::Call, KEY_RESOURCES)
                .file(
                    Utf8PathBuf::from("<scratch>/S1.call.<shard>.regions.tsv"),
                    contents,
                )
                .command(
                    Tool::Bcftools,
                    CommandSpec::new("bcftools-mpileup", tools.bcftools.program()).args([
                        "mpileup",
                        "-R",
                        "<scratch>/S1.call.<shard>.regions.tsv",
                    ]),
                )
        };
        let named = plan("HLA-A*01:01\t1\t100\n");
        assert_eq!(
            named.render(),
            "   (writes <scratch>/S1.call.<shard>.regions.tsv: HLA-A*01:01\\t1\\t100\\n)\n   \
             /opt/bcftools mpileup -R <scratch>/S1.call.<shard>.regions.tsv\n"
        );
        let versions = biojob_tools::ToolVersions {
            bwa: "0.7.17".into(),
            samtools: "1.16".into(),
            bcftools: "1.16".into(),
        };
        let key = |plan: &StepPlan| {
            crate::CacheKeyMaterial::for_plan(plan, None, &versions, BTreeMap::new()).key()
        };
        assert_ne!(key(&named), key(&plan("HLA-A*01:01\t1\t200\n")));
        assert_eq!(key(&named), key(&plan("HLA-A*01:01\t1\t100\n")));
        // The file is written before the commands run.
        let dir = tempfile::tempdir().unwrap();
        let path = Utf8PathBuf::from_path_buf(dir.path().join("r.tsv")).unwrap();
        StepPlan::new(StepId::Call, KEY_RESOURCES)
            .file(path.clone(), "x\t1\t2\n")
            .write_files()
            .unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "x\t1\t2\n");
    }
}
