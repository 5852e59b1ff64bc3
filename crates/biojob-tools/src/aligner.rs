//! The aligner choice: bwa or bwa-mem2, their index files and what building the index costs.

use std::fmt;
use std::str::FromStr;

use biojob_core::{Classify, ExitClass};
use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::Tool;

/// The files `bwa index -p PREFIX` writes and `bwa mem PREFIX` reads, as suffixes of PREFIX.
const BWA_INDEX_SUFFIXES: [&str; 5] = [".amb", ".ann", ".bwt", ".pac", ".sa"];

/// The files `bwa-mem2 index -p PREFIX` (v2.1 and later) writes and `bwa-mem2 mem PREFIX`
/// reads: the 2-bit reference (`.0123`), the FM-index with its compressed suffix array
/// (`.bwt.2bit.64`), and bwa's own `.amb`, `.ann`, `.pac` (same format as bwa's). Read from
/// v2.3's `FMI_search.cpp`, `bntseq.cpp`, and the files `mem` opens.
const BWA_MEM2_INDEX_SUFFIXES: [&str; 5] = [".0123", ".amb", ".ann", ".bwt.2bit.64", ".pac"];

/// The aligner of a run: `bwa` (0.7) or `bwa-mem2`. Both implement BWA-MEM with the same
/// options and write the same SAM records for the same input and `-K` (bwa-mem2 README;
/// checked by this crate's `aligners` test); bwa-mem2 spends less CPU and needs more memory,
/// and its index is another set of files ([`Aligner::index_files`]).
///
/// Parsed from and shown as the tool's name: `bwa`, `bwa-mem2`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
pub enum Aligner {
    /// bwa 0.7 (`bwa mem`).
    #[default]
    #[serde(rename = "bwa")]
    Bwa,
    /// bwa-mem2 (`bwa-mem2 mem`).
    #[serde(rename = "bwa-mem2")]
    BwaMem2,
}

impl Aligner {
    /// Both aligners.
    pub const ALL: [Aligner; 2] = [Aligner::Bwa, Aligner::BwaMem2];

    /// The tool that runs it.
    pub fn tool(self) -> Tool {
        match self {
            Aligner::Bwa => Tool::Bwa,
            Aligner::BwaMem2 => Tool::BwaMem2,
        }
    }

    /// The aligner a tool is, if it is one.
    pub fn from_tool(tool: Tool) -> Option<Aligner> {
        Aligner::ALL
            .into_iter()
            .find(|aligner| aligner.tool() == tool)
    }

    /// `bwa` or `bwa-mem2`.
    pub fn name(self) -> &'static str {
        self.tool().name()
    }

    /// The suffixes of the index files, in the order of [`Aligner::index_files`]:
    /// `.amb .ann .bwt .pac .sa` for bwa, `.0123 .amb .ann .bwt.2bit.64 .pac` for bwa-mem2.
    /// Name index files by these, not by their extension (`.bwt.2bit.64` has extension `64`).
    pub fn index_suffixes(self) -> [&'static str; 5] {
        match self {
            Aligner::Bwa => BWA_INDEX_SUFFIXES,
            Aligner::BwaMem2 => BWA_MEM2_INDEX_SUFFIXES,
        }
    }

    /// The index files that `index -p PREFIX` writes ([`crate::bwa_index`]) and `mem PREFIX`
    /// reads: PREFIX followed by each of [`Aligner::index_suffixes`].
    pub fn index_files(self, prefix: &Utf8Path) -> [Utf8PathBuf; 5] {
        self.index_suffixes()
            .map(|suffix| Utf8PathBuf::from(format!("{prefix}{suffix}")))
    }
}

impl fmt::Display for Aligner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not an aligner.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown aligner {given:?}: choose bwa or bwa-mem2")]
pub struct UnknownAligner {
    /// What was given.
    pub given: String,
}

impl Classify for UnknownAligner {
    fn exit_class(&self) -> ExitClass {
        ExitClass::Usage
    }
}

impl FromStr for Aligner {
    type Err = UnknownAligner;

    /// `bwa` or `bwa-mem2`, exactly.
    fn from_str(given: &str) -> Result<Aligner, UnknownAligner> {
        Aligner::ALL
            .into_iter()
            .find(|aligner| aligner.name() == given)
            .ok_or_else(|| UnknownAligner {
                given: given.to_owned(),
            })
    }
}

/// Peak memory of `bwa-mem2 index` per reference base, in bytes: the figure bwa-mem2's
/// authors give ("28N GB" for N Gbases: bwa-mem2 README, "Indexing"; issue #19). Measured
/// here with v2.3 (peak RSS from `/usr/bin/time -v`): 1,527,204 KiB for GRCh37 chr20 (Debian
/// vt-examples, 63,025,520 bases), 24.8 bytes per base; issue #111 reports 74 GB for the
/// 3.1 Gb GRCh38 primary assembly, 24 bytes per base. 28 keeps a margin above both.
pub const BWA_MEM2_INDEX_BYTES_PER_BASE: u64 = 28;

/// Memory `bwa-mem2 index` needs whatever the reference's size (the process, its buffers): an
/// allowance above the 11.6 MiB peak measured for the 328,927 bases of the test reference.
const BWA_MEM2_INDEX_FIXED_BYTES: u64 = 64 << 20;

/// The memory `bwa-mem2 index` needs for a reference of `reference_bases` bases (the sum of
/// its contigs' lengths, as in the `.fai`), in bytes:
/// [`BWA_MEM2_INDEX_BYTES_PER_BASE`] per base plus 64 MiB.
pub fn bwa_mem2_index_memory(reference_bases: u64) -> u64 {
    reference_bases
        .saturating_mul(BWA_MEM2_INDEX_BYTES_PER_BASE)
        .saturating_add(BWA_MEM2_INDEX_FIXED_BYTES)
}

/// Checks that a job with `memory_bytes` of memory can build the bwa-mem2 index of a
/// reference of `reference_bases` bases ([`bwa_mem2_index_memory`]).
///
/// # Errors
/// [`IndexMemoryError`] when it cannot.
pub fn check_bwa_mem2_index_memory(
    reference_bases: u64,
    memory_bytes: u64,
) -> Result<(), IndexMemoryError> {
    let needed_bytes = bwa_mem2_index_memory(reference_bases);
    if needed_bytes <= memory_bytes {
        return Ok(());
    }
    Err(IndexMemoryError {
        reference_bases,
        needed_bytes,
        memory_bytes,
    })
}

/// A job has too little memory to build the bwa-mem2 index of its reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "bwa-mem2 index needs about {needed} GiB for this reference's {reference_bases} bases; \
     this job has {available} GiB: give the job more memory, or use --aligner bwa",
    needed = gib(*needed_bytes),
    available = gib(*memory_bytes)
)]
pub struct IndexMemoryError {
    /// The reference's length in bases.
    pub reference_bases: u64,
    /// What building the index needs, in bytes ([`bwa_mem2_index_memory`]).
    pub needed_bytes: u64,
    /// What the job has, in bytes.
    pub memory_bytes: u64,
}

impl Classify for IndexMemoryError {
    /// A setting to change: running again with the same memory fails the same way.
    fn exit_class(&self) -> ExitClass {
        ExitClass::Usage
    }
}

/// Bytes in GiB with one decimal (`1.8`).
fn gib(bytes: u64) -> String {
    let gib = bytes as f64 / f64::from(1u32 << 30);
    format!("{gib:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_are_refused() {
        for aligner in Aligner::ALL {
            assert_eq!(aligner.to_string().parse::<Aligner>(), Ok(aligner));
            assert_eq!(Aligner::from_tool(aligner.tool()), Some(aligner));
        }
        assert_eq!("bwa-mem2".parse::<Aligner>(), Ok(Aligner::BwaMem2));
        assert_eq!(Aligner::default(), Aligner::Bwa);
        assert_eq!(Aligner::from_tool(Tool::Samtools), None);
        let error = "bwamem2".parse::<Aligner>().unwrap_err();
        assert_eq!(
            error.to_string(),
            r#"unknown aligner "bwamem2": choose bwa or bwa-mem2"#
        );
        assert_eq!(error.exit_class(), ExitClass::Usage);
        assert_eq!(
            serde_json::to_string(&Aligner::ALL).unwrap(),
            r#"["bwa","bwa-mem2"]"#
        );
    }

    #[test]
    fn index_files_per_aligner() {
        let prefix = Utf8Path::new("/c/ref.fa");
        assert_eq!(
            Aligner::Bwa.index_files(prefix).map(String::from),
            [
                "/c/ref.fa.amb",
                "/c/ref.fa.ann",
                "/c/ref.fa.bwt",
                "/c/ref.fa.pac",
                "/c/ref.fa.sa"
            ]
        );
        assert_eq!(
            Aligner::BwaMem2.index_files(prefix).map(String::from),
            [
                "/c/ref.fa.0123",
                "/c/ref.fa.amb",
                "/c/ref.fa.ann",
                "/c/ref.fa.bwt.2bit.64",
                "/c/ref.fa.pac"
            ]
        );
    }

    #[test]
    fn index_memory_is_28_bytes_a_base_plus_64_mib() {
        // GRCh37 chr20: 63,025,520 bases.
        assert_eq!(
            bwa_mem2_index_memory(63_025_520),
            63_025_520 * 28 + 67_108_864
        );
        assert_eq!(bwa_mem2_index_memory(0), 67_108_864);
        assert_eq!(bwa_mem2_index_memory(u64::MAX), u64::MAX);
    }

    #[test]
    fn index_memory_check_names_need_and_remedies() {
        let needed = bwa_mem2_index_memory(63_025_520);
        assert_eq!(check_bwa_mem2_index_memory(63_025_520, needed), Ok(()));
        let error = check_bwa_mem2_index_memory(63_025_520, needed - 1).unwrap_err();
        assert_eq!(
            error,
            IndexMemoryError {
                reference_bases: 63_025_520,
                needed_bytes: needed,
                memory_bytes: needed - 1
            }
        );
        // GRCh38 (3,099,734,149 bases) in a 16 GiB job.
        let error = check_bwa_mem2_index_memory(3_099_734_149, 16 << 30).unwrap_err();
        assert_eq!(
            error.to_string(),
            "bwa-mem2 index needs about 80.9 GiB for this reference's 3099734149 bases; \
             this job has 16.0 GiB: give the job more memory, or use --aligner bwa"
        );
        assert_eq!(error.exit_class(), ExitClass::Usage);
    }
}
