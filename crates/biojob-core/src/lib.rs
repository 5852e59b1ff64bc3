//! Domain types shared by every biojob crate. This crate does no I/O but
//! [`open_regular_file`], the one way an input file is opened.
//!
//! - [`SampleId`]: the sample name used in file names and the SAM `SM` tag.
//! - [`ReadGroup`]: the SAM `@RG` header line, built from structured fields.
//! - [`Contig`]: a reference sequence name and length (from `.fai` or `@SQ`).
//! - [`Region`], [`Shard`] and [`ScatterPlan`]: how calling is split over the reference;
//!   [`BcftoolsRegions`] and [`Region::to_htslib_region`]: regions as the tools are given them.
//! - [`StepId`] and [`scratch_file_name`]: the fixed names of the workflow's steps and files.
//! - [`non_regular_file_kind`]: what an input path names when it is not a regular file;
//!   [`open_regular_file`] opens an input only when it is one, without blocking.
//! - [`ExitClass`] and [`Classify`]: the process exit codes that AWS Batch and Step Functions
//!   retry rules match on.
//!
//! ```
//! use biojob_core::{ReadGroup, SampleId};
//!
//! let sample = SampleId::new("NA12878").unwrap();
//! let read_group = ReadGroup::for_sample(&sample).with_library("lib 1 \"pcr-free\"").unwrap();
//! assert_eq!(
//!     read_group.to_bwa_argument(),
//!     r#"@RG\tID:NA12878\tSM:NA12878\tLB:lib 1 "pcr-free"\tPL:ILLUMINA"#
//! );
//! ```

mod contig;
mod exit_class;
mod file_kind;
mod read_group;
mod sample;
mod shard;
mod step;

pub use contig::{Contig, contig_name_error, suggest_contig_mapping};
pub use exit_class::{Classify, ExitClass};
pub use file_kind::{OpenInputError, non_regular_file_kind, open_regular_file};
pub use read_group::{ReadGroup, ReadGroupError, platform_unit_from_read_name};
pub use sample::{SampleId, SampleIdError};
pub use shard::{BcftoolsRegions, Region, ScatterPlan, Shard};
pub use step::{MAX_CHUNKS, StepId, scratch_file_name};
