//! `biojob plan-shards`: the calling shards of contigs cut by size, for the execution input.

use std::num::NonZeroU64;

use biojob_core::Shard;
use biojob_pipeline::{contig_plan, env, shard_plan};
use camino::Utf8PathBuf;
use clap::Args;

use crate::failure::{Failure, usage};
use crate::job::parse_contigs;

#[derive(Debug, Args)]
pub struct PlanShardsArgs {
    /// The reference FASTA; its .fai must sit beside it.
    #[arg(long)]
    pub reference: Utf8PathBuf,
    /// The contigs of the run: a JSON array (["chr20","chrM"]) or comma-separated [default:
    /// every contig of the .fai].
    #[arg(long, env = env::CHROMOSOMES)]
    pub contigs: Option<String>,
    /// Largest shard, in bases.
    #[arg(long, env = env::BIOJOB_CALL_SHARD_BASES, value_parser = clap::value_parser!(u64).range(1..))]
    pub shard_bases: u64,
}

/// Prints `{"shardBases": N, "shards": [0, 1, …], "regions": [...]}`, the plan of the
/// contigs cut into shards of at most `--shard-bases` bases, read from the reference's `.fai`
/// (`shards` and `shardBases` are the execution input's `params.shards` and
/// `params.shardBases`; `regions` says what each shard covers).
///
/// # Errors
/// When the `.fai` cannot be read, a contig is not in it, or the contig list does not parse.
pub fn run(args: &PlanShardsArgs) -> Result<(), Failure> {
    let fai = Utf8PathBuf::from(format!("{}.fai", args.reference));
    let contigs =
        biojob_formats::read_fai(&fai).map_err(|error| Failure::Pipeline(error.into()))?;
    let requested = args.contigs.as_deref().map(parse_contigs).transpose()?;
    let bases = NonZeroU64::new(args.shard_bases)
        .ok_or_else(|| usage("--shard-bases must be at least 1", "give at least 1"))?;
    let plan = shard_plan(
        contig_plan(&contigs, requested.as_deref(), &fai)?,
        Some(bases),
    );
    let shards: Vec<usize> = plan.shards().iter().map(|shard| shard.index).collect();
    let regions: Vec<&str> = plan.shards().iter().map(Shard::region).collect();
    let json = serde_json::json!({
        "shardBases": bases.get(),
        "shards": shards,
        "regions": regions,
    });
    #[allow(clippy::print_stdout, reason = "the plan is the command's output")]
    {
        println!("{json}");
    }
    Ok(())
}
