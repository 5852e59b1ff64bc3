//! bwa (Li H., 2013, "Aligning sequence reads … with BWA-MEM", arXiv:1303.3997; manual `bwa.1`).

use biojob_core::ReadGroup;
use biojob_process::CommandSpec;
use camino::{Utf8Path, Utf8PathBuf};

use crate::ToolPath;

/// The five files `bwa index -p PREFIX` writes, as `PREFIX.{amb,ann,bwt,pac,sa}`.
pub fn bwa_index_files(prefix: &Utf8Path) -> [Utf8PathBuf; 5] {
    ["amb", "ann", "bwt", "pac", "sa"].map(|ext| Utf8PathBuf::from(format!("{prefix}.{ext}")))
}

/// `bwa index -p PREFIX FASTA`: builds the FM-index of `fasta` into the files named by
/// [`bwa_index_files`]`(prefix)`.
pub fn bwa_index(bwa: &ToolPath, fasta: &Utf8Path, prefix: &Utf8Path) -> CommandSpec {
    CommandSpec::new("bwa-index", bwa.program())
        .arg("index")
        .arg("-p")
        .arg(prefix.as_str())
        .arg(fasta.as_str())
}

/// `bwa mem -t THREADS -K BATCH -R @RG… PREFIX R1 R2`: paired-end alignment, SAM on stdout.
///
/// `batch_bases` (`-K`) fixes how many input bases bwa processes per batch regardless of the
/// thread count, which makes the output identical for any `threads` (bwa manual, `-K`).
/// Both FASTQ paths are given explicitly, so both mates are aligned as pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BwaMem {
    /// Worker threads (`-t`).
    pub threads: usize,
    /// Bases per batch (`-K`); biojob uses 10,000,000.
    pub batch_bases: u64,
    /// The read group, passed as `-R` (see [`ReadGroup::to_bwa_argument`]).
    pub read_group: ReadGroup,
    /// The bwa index prefix (usually the FASTA path).
    pub index_prefix: Utf8PathBuf,
    /// Read 1: a FASTQ path, possibly `/dev/fd/N`.
    pub fastq_1: Utf8PathBuf,
    /// Read 2: a FASTQ path, possibly `/dev/fd/N`.
    pub fastq_2: Utf8PathBuf,
}

impl BwaMem {
    /// The command; its stdout is SAM.
    pub fn command(&self, bwa: &ToolPath) -> CommandSpec {
        CommandSpec::new("bwa-mem", bwa.program())
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
}
