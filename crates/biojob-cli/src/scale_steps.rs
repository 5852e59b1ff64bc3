//! The shard a call job works on: a contig (`CHROMOSOME`), or a shard of a plan cut by size
//! (`SHARD` with `CHROMOSOMES` and `BIOJOB_CALL_SHARD_BASES`); `biojob plan-shards`, which
//! prints that plan for the execution input.

use std::num::NonZeroU64;

use biojob_core::Shard;
use biojob_pipeline::{Error, PreparedReference, contig_plan, shard_plan};

use crate::Failure;
use crate::cli::{CallArgs, PlanShardsArgs};

/// The shard `args` name: `--contig`'s by-contig shard (its index the contig's line in the
/// `.fai`), or shard `--shard` of the plan of `requested` contigs cut into shards of at most
/// `--shard-bases` bases ([`biojob_core::ScatterPlan::by_size`]), the same plan `biojob run`
/// and gather make from the same settings.
///
/// # Errors
/// [`Error::Input`] when a contig is not in the reference; [`Error::Usage`] when the shard index
/// is beyond the plan, or the flags name no shard.
pub fn call_shard(
    args: &CallArgs,
    requested: Option<&[String]>,
    reference: &PreparedReference,
) -> Result<Shard, Error> {
    let (contigs, fai) = (&reference.contigs, &reference.fai);
    if let Some(contig) = &args.contig {
        let plan = contig_plan(contigs, Some(std::slice::from_ref(contig)), fai)?;
        return plan.shards().first().cloned().ok_or_else(|| Error::Usage {
            message: format!("contig {contig} gives no shard"),
            remedy: None,
        });
    }
    let (Some(index), Some(bases)) = (args.shard, args.shard_bases.and_then(NonZeroU64::new))
    else {
        return Err(Error::Usage {
            message: "give --contig, or --shard with --contigs and --shard-bases".into(),
            remedy: Some(
                "set CHROMOSOME, or SHARD, CHROMOSOMES and BIOJOB_CALL_SHARD_BASES".into(),
            ),
        });
    };
    let plan = shard_plan(contig_plan(contigs, requested, fai)?, Some(bases));
    let count = plan.shards().len();
    plan.shards()
        .get(index)
        .cloned()
        .ok_or_else(|| Error::Usage {
            message: format!(
                "shard {index} is not in the plan: {count} shards of at most {bases} bases"
            ),
            remedy: Some(format!(
                "give a shard from 0 to {}",
                count.saturating_sub(1)
            )),
        })
}

/// `biojob plan-shards`: prints `{"shardBases": N, "shards": [0, 1, …], "regions": [...]}`, the
/// plan of the contigs cut into shards of at most `--shard-bases` bases, read from the
/// reference's `.fai` (`shards` and `shardBases` are the execution input's `params.shards` and
/// `params.shardBases`; `regions` says what each shard covers).
///
/// # Errors
/// [`Failure`] when the `.fai` cannot be read, a contig is not in it, or the contig list does
/// not parse.
pub fn plan_shards(args: &PlanShardsArgs) -> Result<(), Failure> {
    let fai = camino::Utf8PathBuf::from(format!("{}.fai", args.reference));
    let contigs =
        biojob_formats::read_fai(&fai).map_err(|error| Failure::Pipeline(error.into()))?;
    let requested = args
        .contigs
        .as_deref()
        .map(crate::steps::parse_contigs)
        .transpose()?;
    let bases = NonZeroU64::new(args.shard_bases)
        .ok_or_else(|| Failure::Usage(anyhow::anyhow!("--shard-bases must be at least 1"), None))?;
    let plan = shard_plan(
        contig_plan(&contigs, requested.as_deref(), &fai)?,
        Some(bases),
    );
    let shards: Vec<usize> = plan.shards().iter().map(|shard| shard.index).collect();
    let regions: Vec<String> = plan.shards().iter().map(Shard::region).collect();
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
