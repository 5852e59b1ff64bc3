//! `biojob prepare-reference`: the reference's missing `.fai` and aligner index (bwa's, or
//! bwa-mem2's with `--aligner bwa-mem2`).

use biojob_pipeline::{ReferenceOptions, StaleIndex, StepId, new_run_id, prepare_reference};
use biojob_process::CancelToken;
use biojob_storage::Stores;
use camino::Utf8PathBuf;
use clap::Args;

use crate::args::RuntimeArgs;
use crate::engine::{cache_dir, engine};
use crate::environment;
use crate::failure::Failure;

#[derive(Debug, Args)]
pub struct PrepareReferenceArgs {
    /// The reference FASTA (.fa, .fasta or .fa.gz).
    #[arg(long)]
    pub reference: Utf8PathBuf,
    /// Build only the .fai, not the aligner's index.
    #[arg(long)]
    pub fai_only: bool,
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

/// Builds the missing indexes beside the FASTA (or in the cache when its directory is
/// read-only) and prints where each is.
pub fn run(
    args: PrepareReferenceArgs,
    cancel: &CancelToken,
    stores: &Stores,
) -> Result<(), Failure> {
    let engine = engine(&args.runtime, cancel, stores)?;
    let step = StepId::PrepareReference;
    let (job_id, attempt) = environment::job_identity(&format!("{step}-{}", new_run_id()))?;
    let (scratch, space) = engine
        .scratch
        .open(&job_id, attempt)
        .map_err(|error| Failure::Pipeline(error.in_task(step.as_str())))?;
    let context = engine
        .context(&scratch.dir().join("logs"), &space)
        .for_step(step.as_str());
    let (reference, _) = prepare_reference(
        &args.reference,
        &ReferenceOptions {
            cache_dir: cache_dir(&args.runtime),
            bwa_index: !args.fai_only,
            stale_index: StaleIndex::Rebuild,
        },
        &context,
    )
    .map_err(|error| error.in_task(step.as_str()))?;
    #[allow(clippy::print_stdout, reason = "the step's result")]
    {
        println!("fasta: {}", reference.fasta);
        println!("fai: {}", reference.fai);
        if let Some(prefix) = &reference.bwa_prefix {
            println!("{} index: {prefix}", engine.toolset.aligner());
        }
        for built in &reference.built {
            println!("built: {built}");
        }
    }
    if let Some(kept) = scratch
        .finish(engine.scratch.keep)
        .map_err(|error| Failure::Pipeline(error.into()))?
    {
        eprintln!("scratch kept: {kept}");
    }
    Ok(())
}
