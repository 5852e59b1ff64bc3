//! Typed command lines for the tools the workflow runs: an aligner (bwa or bwa-mem2),
//! samtools and bcftools.
//!
//! Every builder returns a [`biojob_process::CommandSpec`] (program plus typed argv); this crate
//! never spawns anything and never builds a shell string. [`Toolset`] finds the programs and
//! parses the output of their version probes, which the caller runs. [`Aligner`] is the choice
//! between bwa and bwa-mem2: the BWA-MEM builders ([`BwaMem`], [`bwa_index`]) run whichever
//! aligner their [`ToolPath`] is; the index files and the memory bwa-mem2's index build needs
//! differ ([`Aligner::index_files`], [`check_bwa_mem2_index_memory`]).
//!
//! ```
//! use biojob_core::{ReadGroup, SampleId};
//! use biojob_tools::{BwaMem, Tool, ToolPath};
//!
//! let bwa = ToolPath::new(Tool::Bwa, "/usr/bin/bwa");
//! let sample = SampleId::new("NA12878").unwrap();
//! let command = BwaMem {
//!     threads: 2,
//!     batch_bases: 10_000_000,
//!     read_group: ReadGroup::for_sample(&sample),
//!     index_prefix: "ref.fa".into(),
//!     fastq_1: "/dev/fd/3".into(),
//!     fastq_2: "/dev/fd/4".into(),
//! }
//! .command(&bwa);
//! assert_eq!(
//!     command.argv().join(" "),
//!     r"/usr/bin/bwa mem -t 2 -K 10000000 -R @RG\tID:NA12878\tSM:NA12878\tPL:ILLUMINA ref.fa /dev/fd/3 /dev/fd/4"
//! );
//! ```

mod aligner;
mod bcftools;
mod bwa;
mod samtools;
mod toolset;

pub use aligner::{
    Aligner, BWA_MEM2_INDEX_BYTES_PER_BASE, IndexMemoryError, UnknownAligner,
    bwa_mem2_index_memory, check_bwa_mem2_index_memory,
};
pub use bcftools::{
    BcftoolsCall, BcftoolsCallPiped, BcftoolsConcat, BcftoolsMpileup, BcftoolsViewSample,
    BcftoolsViewTargets, bcftools_index_tbi, bcftools_stats, label_part,
};
pub use bwa::{BwaMem, bwa_index, bwa_index_files};
pub use samtools::{
    SamtoolsMarkdup, SamtoolsMerge, SamtoolsSort, samtools_faidx, samtools_fixmate,
    samtools_flagstat, samtools_index, samtools_quickcheck, samtools_stats, sort_memory_per_thread,
};
pub use toolset::{Tool, ToolError, ToolOverrides, ToolPath, ToolVersions, Toolset};
