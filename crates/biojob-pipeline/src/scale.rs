//! Scaling a run out: calling shards cut by size (and, with chunking, alignment over FASTQ
//! chunks), with the settings that choose them.

use std::num::NonZeroU64;

use biojob_core::ScatterPlan;

/// How a run is scattered beyond one shard per contig.
///
/// The default scatters nothing more: one alignment of the whole FASTQ pair, one calling shard
/// per contig.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScaleOptions {
    /// Calling shards of at most this many bases ([`ScatterPlan::by_size`]); `None`: one shard
    /// per contig ([`ScatterPlan::by_contig`]).
    pub shard_bases: Option<NonZeroU64>,
}

/// The calling plan for `by_contig` (a [`ScatterPlan::by_contig`] plan of the requested
/// contigs, from [`crate::contig_plan`]): the same plan when `shard_bases` is `None`, else its
/// contigs cut and grouped into shards of at most `shard_bases` bases.
pub fn shard_plan(by_contig: ScatterPlan, shard_bases: Option<NonZeroU64>) -> ScatterPlan {
    match shard_bases {
        None => by_contig,
        Some(max) => ScatterPlan::by_size(by_contig.contigs(), max),
    }
}
