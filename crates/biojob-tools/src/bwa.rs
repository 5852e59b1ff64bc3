//! BWA-MEM, run by bwa (Li H., 2013, "Aligning sequence reads … with BWA-MEM",
//! arXiv:1303.3997; manual `bwa.1`) or bwa-mem2 (Vasimuddin Md. et al., 2019, IPDPS; its
//! README: the same command line and output as `bwa mem`). The builders here take either: the
//! [`ToolPath`]'s tool picks the program and the command's label (`bwa-mem`, `bwa-mem2-mem`).

use biojob_core::ReadGroup;
use biojob_process::CommandSpec;
use camino::{Utf8Path, Utf8PathBuf};

use crate::{Aligner, ToolPath};

/// The five files `bwa index -p PREFIX` writes, as `PREFIX.{amb,ann,bwt,pac,sa}`
/// ([`Aligner::index_files`] of [`Aligner::Bwa`]).
pub fn bwa_index_files(prefix: &Utf8Path) -> [Utf8PathBuf; 5] {
    Aligner::Bwa.index_files(prefix)
}

/// `bwa index -p PREFIX FASTA` (or `bwa-mem2 index -p PREFIX FASTA`): builds the index of
/// `fasta` into the files named by [`Aligner::index_files`]`(prefix)`.
pub fn bwa_index(bwa: &ToolPath, fasta: &Utf8Path, prefix: &Utf8Path) -> CommandSpec {
    CommandSpec::new(format!("{}-index", bwa.tool), bwa.program())
        .arg("index")
        .arg("-p")
        .arg(prefix.as_str())
        .arg(fasta.as_str())
}

/// `bwa mem -t THREADS -K BATCH -R @RG… PREFIX R1 R2` (or `bwa-mem2 mem …`, the same
/// arguments): paired-end alignment, SAM on stdout.
///
/// `batch_bases` (`-K`) fixes how many input bases bwa processes per batch regardless of the
/// thread count, which makes the output identical for any `threads` (bwa manual, `-K`); with
/// the same `-K`, bwa-mem2 writes the same records as bwa. Both FASTQ paths are given
/// explicitly, so both mates are aligned as pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BwaMem {
    /// Worker threads (`-t`).
    pub threads: usize,
    /// Bases per batch (`-K`); biojob uses 10,000,000.
    pub batch_bases: u64,
    /// The read group, passed as `-R` (see [`ReadGroup::to_bwa_argument`]).
    pub read_group: ReadGroup,
    /// The index prefix (usually the FASTA path) of the aligner's index files
    /// ([`Aligner::index_files`]).
    pub index_prefix: Utf8PathBuf,
    /// Read 1: a FASTQ path, possibly `/dev/fd/N`.
    pub fastq_1: Utf8PathBuf,
    /// Read 2: a FASTQ path, possibly `/dev/fd/N`.
    pub fastq_2: Utf8PathBuf,
}

impl BwaMem {
    /// The command run by `bwa` (bwa or bwa-mem2); its stdout is SAM.
    pub fn command(&self, bwa: &ToolPath) -> CommandSpec {
        CommandSpec::new(format!("{}-mem", bwa.tool), bwa.program())
            .arg("mem")
            .arg("-t")
            .arg(self.threads.max(1).to_string())
            .arg("-K")
            .arg(self.batch_bases.to_string())
            .arg("-R")
            .arg(self.read_group.to_bwa_argument())
            .arg(self.index_prefix.as_str())
            .arg(self.fastq_1.as_str())
            .arg(self.fastq_2.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tool;
    use biojob_core::SampleId;

    #[test]
    fn index_files() {
        let files = bwa_index_files(Utf8Path::new("/c/ref.fa"));
        assert_eq!(files[0], "/c/ref.fa.amb");
        assert_eq!(files[4], "/c/ref.fa.sa");
    }

    #[test]
    fn mem_argv_keeps_read_group_one_argument() {
        let sample = SampleId::new("S1").unwrap();
        let read_group = ReadGroup::for_sample(&sample)
            .with_library("my lib 'x'")
            .unwrap();
        let command = BwaMem {
            threads: 0,
            batch_bases: 10_000_000,
            read_group,
            index_prefix: "ref.fa".into(),
            fastq_1: "a b_R1.fq.gz".into(),
            fastq_2: "a b_R2.fq.gz".into(),
        }
        .command(&ToolPath::new(Tool::Bwa, "bwa"));
        assert_eq!(
            command.argv(),
            [
                "bwa",
                "mem",
                "-t",
                "1",
                "-K",
                "10000000",
                "-R",
                r"@RG\tID:S1\tSM:S1\tLB:my lib 'x'\tPL:ILLUMINA",
                "ref.fa",
                "a b_R1.fq.gz",
                "a b_R2.fq.gz"
            ]
        );
        assert_eq!(
            bwa_index(
                &ToolPath::new(Tool::Bwa, "bwa"),
                "r.fa".into(),
                "c/r.fa.tmp".into()
            )
            .argv(),
            ["bwa", "index", "-p", "c/r.fa.tmp", "r.fa"]
        );
    }

    #[test]
    fn bwa_mem2_takes_the_same_arguments_under_its_own_label() {
        let sample = SampleId::new("S1").unwrap();
        let mem = BwaMem {
            threads: 4,
            batch_bases: 10_000_000,
            read_group: ReadGroup::for_sample(&sample),
            index_prefix: "ref.fa".into(),
            fastq_1: "r1.fq.gz".into(),
            fastq_2: "r2.fq.gz".into(),
        };
        let bwa = mem.command(&ToolPath::new(Tool::Bwa, "/usr/bin/bwa"));
        let bwa_mem2 = mem.command(&ToolPath::new(Tool::BwaMem2, "/opt/bwa-mem2"));
        assert_eq!((bwa.label(), bwa_mem2.label()), ("bwa-mem", "bwa-mem2-mem"));
        assert_eq!(bwa_mem2.program(), "/opt/bwa-mem2");
        assert_eq!(bwa.argv()[1..], bwa_mem2.argv()[1..]);
        let index = bwa_index(
            &ToolPath::new(Tool::BwaMem2, "bwa-mem2"),
            "r.fa".into(),
            "c/r.fa.tmp".into(),
        );
        assert_eq!(index.label(), "bwa-mem2-index");
        assert_eq!(
            index.argv(),
            ["bwa-mem2", "index", "-p", "c/r.fa.tmp", "r.fa"]
        );
    }
}
