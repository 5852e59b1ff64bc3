//! The shard a call job works on: a contig (`CHROMOSOME`), or a shard of a plan cut by size
//! (`SHARD` with `CHROMOSOMES` and `BIOJOB_CALL_SHARD_BASES`).

use std::num::NonZeroU64;

use biojob_core::Shard;
use biojob_pipeline::{Error, PreparedReference, contig_plan, shard_plan};

use crate::cli::CallArgs;

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
