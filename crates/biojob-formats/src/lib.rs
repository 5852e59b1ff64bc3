//! Native checks of the workflow's file formats, and region-sliced staging of BAMs. This
//! crate never spawns a process.
//!
//! - [`stream_fastq_pair`] reads an R1/R2 FASTQ pair (plain, gzip or BGZF) once, checks every
//!   record and the pairing, and writes the decompressed records into two sinks (the pipes bwa
//!   reads); [`validate_fastq_pair`] runs the same checks without sinks.
//! - [`read_fai`]: the contigs of a FASTA index; [`check_fasta_layout`]: a FASTA's lines can be
//!   indexed (one pass, before `samtools faidx`); [`check_fai_covers_fasta`]: a `.fai` belongs
//!   to its FASTA (a few bytes per contig).
//! - [`check_bwa_index_matches_fasta`]: a bwa index (`.ann`, `.amb`, `.pac`) was built from
//!   this FASTA (a full pass); [`IndexProvenance`]: the record written beside an index so that
//!   the full pass runs once.
//! - [`check_bgzf_eof`]: a BGZF file (BAM, `.vcf.gz`) is BGZF and was completely written.
//! - [`read_bam_header_summary`]: sort order, read groups and contigs of a BAM header.
//! - [`quickcheck_bam`] / [`check_bam_header`]: `samtools quickcheck` natively, then the
//!   workflow's header rules (coordinate order, `@RG SM`, `@SQ` equal to the `.fai`).
//! - [`check_bai_matches_bam`]: a `.bai` belongs to its BAM (a few blocks per reference).
//! - [`BamRecordCounter`]: counts the records of a BAM as its bytes pass on to a file
//!   (primary, secondary, supplementary); [`count_bam_records`] counts those of a finished
//!   file.
//! - [`read_bam_stats`]: one pass over a BAM for flagstat counts, depth and breadth per contig,
//!   checking coordinate order on the way.
//! - [`quickcheck_vcf`] / [`scan_vcf`]: the same for a bgzipped VCF, plus sorted records, one
//!   contig per shard and `bcftools stats`-style variant counts.
//! - [`tabix_contigs`]: the contigs that have records, from a `.tbi`.
//! - [`stage_bam_regions`] / [`StoredBam`]: region-sliced staging of a BAM held by an object
//!   store: only the BGZF blocks its `.bai` says hold the regions' records are fetched (ranged
//!   reads through [`biojob_storage::ObjectStore::open_ranges`], each block checked), written
//!   as a local BAM with its index; the whole object when the index is missing or stale.
//!
//! Errors are [`FastqError`] and [`FormatError`]; both implement [`biojob_core::Classify`].
//!
//! ```no_run
//! use biojob_formats::{check_bgzf_eof, read_fai, stream_fastq_pair};
//! use camino::Utf8Path;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let contigs = read_fai(Utf8Path::new("ref.fa.fai"))?;
//! println!("{} contigs, first {}", contigs.len(), contigs[0].name);
//!
//! // Feed an aligner through two pipes; it reads `/dev/fd/N` for each.
//! let (r1_reader, r1_writer) = std::io::pipe()?;
//! let (r2_reader, r2_writer) = std::io::pipe()?;
//! # drop((r1_reader, r2_reader));
//! // ... hand r1_reader and r2_reader to the aligner process, then:
//! let stats = stream_fastq_pair(
//!     Utf8Path::new("NA12878_R1.fastq.gz"),
//!     Utf8Path::new("NA12878_R2.fastq.gz"),
//!     r1_writer,
//!     r2_writer,
//! )?;
//! println!("{} pairs", stats.pairs);
//!
//! check_bgzf_eof(Utf8Path::new("NA12878.bam"))?;
//! # Ok(())
//! # }
//! ```

mod bai_check;
mod bam;
mod bam_count;
mod bam_slice;
mod bam_stats;
mod bgzf;
mod bwa_index;
mod contigs;
mod error;
mod fai;
mod fastq;
mod provenance;
mod tabix;
mod text;
mod vcf;

pub use bai_check::check_bai_matches_bam;
pub use bam::{
    BamHeaderSummary, bam_header_summary, check_bam_header, quickcheck_bam, read_bam_header_summary,
};
pub use bam_count::{BamRecordCounter, BamRecordCounts, count_bam_records};
pub use bam_slice::{BamStaging, StagedBam, StoredBam, stage_bam_regions};
pub use bam_stats::{
    BamStats, ContigCoverage, DEPTH_BINS_TARGET, FlagCounts, MIN_DEPTH_BIN_BASES, read_bam_stats,
};
pub use bgzf::{BGZF_EOF_BLOCK, BgzfTail, MAX_BGZF_BLOCK_SIZE, check_bgzf_eof};
pub use bwa_index::{
    AmbiguousRun, BwaIndexContig, BwaIndexSummary, check_bwa_index_matches_fasta,
    read_bwa_index_summary,
};
pub use contigs::describe_contig_difference;
pub use error::{FastqError, FormatError, input_io_class};
pub use fai::{check_fai_covers_fasta, check_fasta_layout, read_fai};
pub use fastq::{
    ChunkLayout, FastqChunk, FastqPairStats, FastqProgress, FastqSource, SplitRequest,
    StoreSplitRequest, StoredChunk, fastq_chunk_names, first_read_name, split_fastq_pair,
    split_fastq_pair_to_store, stream_fastq_pair, stream_fastq_pair_with_progress,
    validate_fastq_pair,
};
pub use provenance::{FileDigest, IndexProvenance};
pub use tabix::tabix_contigs;
pub use vcf::{
    ContigVariants, RecordSpan, VariantCounts, VcfContig, VcfHeaderSummary, VcfRules, VcfScan,
    quickcheck_vcf, scan_vcf,
};
