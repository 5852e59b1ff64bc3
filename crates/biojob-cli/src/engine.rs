//! The engine a command runs with: the tools found and probed, the resources, the scratch
//! settings, from the runtime flags and the environment.

use std::time::Duration;

use anyhow::Context as _;
use biojob_pipeline::{Engine, Prices, Resources, ScratchSettings, env, probe_tools};
use biojob_process::CancelToken;
use biojob_storage::Stores;
use biojob_tools::{Aligner, Tool, ToolOverrides, ToolPath, Toolset, sort_memory_per_thread};
use camino::{Utf8Path, Utf8PathBuf};

use crate::args::{RuntimeArgs, parse_switch_on_unless_off};
use crate::environment;
use crate::failure::{Failure, usage};

/// The program overrides `BIOJOB_BWA`, `BIOJOB_BWA_MEM2`, `BIOJOB_SAMTOOLS`,
/// `BIOJOB_BCFTOOLS`, when set.
fn tool_overrides() -> ToolOverrides {
    ToolOverrides {
        bwa: environment::path(env::BIOJOB_BWA),
        bwa_mem2: environment::path(env::BIOJOB_BWA_MEM2),
        samtools: environment::path(env::BIOJOB_SAMTOOLS),
        bcftools: environment::path(env::BIOJOB_BCFTOOLS),
    }
}

/// The tools as they would be looked up, not resolved (for `--dry-run`), with `aligner`:
/// each override, else the tool's name.
pub fn toolset_by_name(aligner: Aligner) -> Toolset {
    let overrides = tool_overrides();
    let named = |tool: Tool| {
        ToolPath::new(
            tool,
            overrides
                .get(tool)
                .map_or_else(|| tool.name().into(), Utf8Path::to_path_buf),
        )
    };
    Toolset {
        bwa: named(aligner.tool()),
        samtools: named(Tool::Samtools),
        bcftools: named(Tool::Bcftools),
    }
}

/// The resources: detected, with the flags' overrides.
pub fn resources(runtime: &RuntimeArgs) -> Resources {
    Resources::detect().with_overrides(runtime.threads, runtime.memory)
}

/// [`engine_for`] with the aligner of `--aligner` (`BIOJOB_ALIGNER`), else bwa.
///
/// # Errors
/// As [`engine_for`].
pub fn engine(
    runtime: &RuntimeArgs,
    cancel: &CancelToken,
    stores: &Stores,
) -> Result<Engine, Failure> {
    engine_for(
        runtime,
        runtime.aligner().unwrap_or_default(),
        cancel,
        stores,
    )
}

/// Resolves the tools with `aligner` (honouring the overrides), probes their versions and
/// builds the engine.
///
/// # Errors
/// A tool that cannot be found or probed (usage class).
pub fn engine_for(
    runtime: &RuntimeArgs,
    aligner: Aligner,
    cancel: &CancelToken,
    stores: &Stores,
) -> Result<Engine, Failure> {
    let toolset = Toolset::resolve_for(aligner, &tool_overrides())
        .map_err(|error| Failure::Pipeline(error.into()))?;
    let probe_dir = tempfile::tempdir()
        .context("creating a temporary directory")
        .map_err(|error| Failure::Usage(error, None))?;
    let probe_logs = Utf8Path::from_path(probe_dir.path()).unwrap_or(Utf8Path::new("."));
    let versions = probe_tools(&toolset, cancel, probe_logs)?;
    let resources = resources(runtime);
    tracing::info!(
        %aligner,
        threads = resources.threads,
        memory_bytes = resources.memory_bytes,
        sort_memory_per_thread_bytes =
            sort_memory_per_thread(resources.memory_bytes, resources.threads),
        threads_from = if runtime.threads.is_some() {
            "--threads"
        } else {
            "detected"
        },
        memory_from = if runtime.memory.is_some() {
            "--memory"
        } else {
            "detected"
        },
        "resource budget"
    );
    Ok(Engine {
        stores: stores.clone(),
        toolset,
        versions,
        resources,
        cancel: cancel.clone(),
        grace: Duration::from_secs(runtime.grace_seconds),
        timeout: runtime.tool_timeout,
        step_timeout: runtime.timeout,
        progress_interval: runtime.progress_interval,
        scratch: scratch_settings(runtime),
        validate_fastq: validate_fastq()?,
        prices: Prices {
            vcpu_hour: runtime.price_vcpu_hour,
            gib_hour: runtime.price_gib_hour,
        },
    })
}

/// The scratch settings from the flags and environment.
pub fn scratch_settings(runtime: &RuntimeArgs) -> ScratchSettings {
    let mut settings = ScratchSettings::new(scratch_root(runtime));
    settings.autoscale = runtime.scratch_autoscale;
    if let Some(config) = environment::path(env::BIOJOB_EBS_AUTOSCALE_CONFIG) {
        settings.autoscale_config = config;
    }
    settings.low_water_bytes = runtime.scratch_low_water;
    settings.wait_timeout = runtime.scratch_wait;
    settings.keep = runtime.keep_scratch;
    settings
}

/// The cache directory: the flag or `BIOJOB_CACHE_DIR`, else `$XDG_CACHE_HOME/biojob`, else
/// `$HOME/.cache/biojob`, else `biojob-cache` under the scratch root.
pub fn cache_dir(runtime: &RuntimeArgs) -> Utf8PathBuf {
    runtime
        .cache_dir
        .clone()
        .or_else(environment::default_cache_dir)
        .unwrap_or_else(|| scratch_root(runtime).join("biojob-cache"))
}

/// The scratch root: the flag or `BIOJOB_SCRATCH_DIR`, else `/scratch` when writable, else
/// the system temporary directory.
pub fn scratch_root(runtime: &RuntimeArgs) -> Utf8PathBuf {
    biojob_scratch::default_root(runtime.scratch_dir.as_deref())
}

/// Whether the align step checks the FASTQs as it feeds them to bwa: on unless
/// `BIOJOB_FASTQ_VALIDATION` is off (a benchmark switch; [`parse_switch`]'s values, empty is
/// on).
///
/// # Errors
/// A usage failure naming the variable when its value is not a switch.
pub fn validate_fastq() -> Result<bool, Failure> {
    match environment::var(env::BIOJOB_FASTQ_VALIDATION) {
        None => Ok(true),
        Some(value) => parse_switch_on_unless_off(&value).map_err(|reason| {
            usage(
                format!("{}: {reason}", env::BIOJOB_FASTQ_VALIDATION),
                "set it to 0 to turn the FASTQ check off, or leave it unset",
            )
        }),
    }
}
