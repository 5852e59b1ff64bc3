//! samtools (Danecek et al., 2021, GigaScience 10(2); manual `samtools-sort.1`, `samtools-index.1`).

use biojob_process::CommandSpec;
use camino::{Utf8Path, Utf8PathBuf};

use crate::ToolPath;

/// `samtools faidx --fai-idx FAI FASTA`: writes the FASTA index of `fasta` to `fai`.
pub fn samtools_faidx(samtools: &ToolPath, fasta: &Utf8Path, fai: &Utf8Path) -> CommandSpec {
    CommandSpec::new("samtools-faidx", samtools.program())
        .arg("faidx")
        .arg("--fai-idx")
        .arg(fai.as_str())
        .arg(fasta.as_str())
}

/// `samtools index -b -@ THREADS BAM BAI`: writes the BAI index of `bam` to `bai`.
///
/// `threads` counts additional threads, as `-@` does.
pub fn samtools_index(
    samtools: &ToolPath,
    bam: &Utf8Path,
    bai: &Utf8Path,
    threads: usize,
) -> CommandSpec {
    CommandSpec::new("samtools-index", samtools.program())
        .arg("index")
        .arg("-b")
        .arg("-@")
        .arg(threads.to_string())
        .arg(bam.as_str())
        .arg(bai.as_str())
}

/// `samtools merge -@ THREADS -c -p -f -o OUT IN…`: merges coordinate-sorted BAMs into one
/// coordinate-sorted BAM (samtools manual, `samtools-merge.1`). `-c` and `-p` keep `@RG` and
/// `@PG` lines whose IDs collide once, with their IDs unchanged (without them samtools makes
/// each input's IDs distinct, and every read's `RG` tag would change with its chunk). With
/// `uncompressed`, `-u` instead of `-f`: uncompressed BAM for a tool reading it next
/// ([`SamtoolsMarkdup`]). With an `index`, `--write-index -o OUT##idx##INDEX`: the BAI is built
/// as the BAM is written (byte for byte `samtools index`'s), `OUT` may be `-` or a pipe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamtoolsMerge {
    /// Extra compression threads (`-@`).
    pub threads: usize,
    /// The BAMs to merge, each coordinate-sorted with the same `@SQ` lines.
    pub inputs: Vec<Utf8PathBuf>,
    /// The BAM to write; `-` for stdout.
    pub output: Utf8PathBuf,
    /// Write uncompressed BAM (`-u`) for the next tool of a pipeline, rather than the BAM to
    /// keep (`-f`: overwrite `output`).
    pub uncompressed: bool,
    /// The BAI to write as the BAM is written (`--write-index`), if any.
    pub index: Option<Utf8PathBuf>,
}

impl SamtoolsMerge {
    /// The command; labelled `samtools-merge`.
    pub fn command(&self, samtools: &ToolPath) -> CommandSpec {
        CommandSpec::new("samtools-merge", samtools.program())
            .arg("merge")
            .arg("-@")
            .arg(self.threads.to_string())
            .arg("-c")
            .arg("-p")
            .arg(if self.uncompressed { "-u" } else { "-f" })
            .args(self.index.is_some().then_some("--write-index"))
            .arg("-o")
            .arg(indexed_output(&self.output, self.index.as_deref()))
            .args(self.inputs.iter().map(|input| input.as_str().to_owned()))
    }
}

/// `samtools fixmate -m -u - -`: reads name-grouped SAM or BAM on stdin (bwa's output, each
/// read's records together), fills in mate coordinates and adds the mate score tag (`ms`) that
/// `samtools markdup` needs, and writes uncompressed BAM to stdout (samtools manual,
/// `samtools-fixmate.1`, `-m`; `samtools-markdup.1`: "must have gone through fixmate with the
/// mate scoring option on").
pub fn samtools_fixmate(samtools: &ToolPath) -> CommandSpec {
    CommandSpec::new("samtools-fixmate", samtools.program())
        .arg("fixmate")
        .arg("-m")
        .arg("-u")
        .arg("-")
        .arg("-")
}

/// `samtools markdup -@ THREADS -T TMP -f STATS - OUT`: flags (never removes) the duplicates of
/// coordinate-sorted BAM on stdin, per library (`@RG LB`), and writes the statistics report to
/// `stats` (samtools manual, `samtools-markdup.1`; the report starts with `COMMAND: samtools
/// markdup`). With an `index`, `--write-index -- - OUT##idx##INDEX`, as [`SamtoolsMerge`]'s
/// (`--`: an output of `-##idx##…` would otherwise read as options).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamtoolsMarkdup {
    /// Extra compression threads (`-@`).
    pub threads: usize,
    /// Prefix of its temporary files (`-T`), private to this attempt.
    pub temp_prefix: Utf8PathBuf,
    /// The statistics report to write (`-f`).
    pub stats: Utf8PathBuf,
    /// The BAM to write.
    pub output: Utf8PathBuf,
    /// The BAI to write as the BAM is written (`--write-index`), if any.
    pub index: Option<Utf8PathBuf>,
}

impl SamtoolsMarkdup {
    /// The command; labelled `samtools-markdup`.
    pub fn command(&self, samtools: &ToolPath) -> CommandSpec {
        CommandSpec::new("samtools-markdup", samtools.program())
            .arg("markdup")
            .arg("-@")
            .arg(self.threads.to_string())
            .arg("-T")
            .arg(self.temp_prefix.as_str())
            .arg("-f")
            .arg(self.stats.as_str())
            .args(self.index.is_some().then_some("--write-index"))
            .arg("--")
            .arg("-")
            .arg(indexed_output(&self.output, self.index.as_deref()))
    }
}

/// `OUT`, or `OUT##idx##INDEX` (htslib's way to name the index `--write-index` writes).
fn indexed_output(output: &Utf8Path, index: Option<&Utf8Path>) -> String {
    match index {
        Some(index) => format!("{output}##idx##{index}"),
        None => output.to_string(),
    }
}

/// `samtools quickcheck -v FILE`: exits non-zero when `file` is not a complete SAM/BAM/CRAM
/// (header present, BGZF EOF block present).
pub fn samtools_quickcheck(samtools: &ToolPath, file: &Utf8Path) -> CommandSpec {
    CommandSpec::new("samtools-quickcheck", samtools.program())
        .arg("quickcheck")
        .arg("-v")
        .arg(file.as_str())
}

/// `samtools flagstat -@ THREADS BAM > OUT`: flag counts (the MultiQC samtools module finds
/// the output by its content, the line `... in total (QC-passed reads + QC-failed reads)`).
///
/// `threads` counts additional decompression threads, as `-@` does.
pub fn samtools_flagstat(
    samtools: &ToolPath,
    bam: &Utf8Path,
    output: &Utf8Path,
    threads: usize,
) -> CommandSpec {
    CommandSpec::new("samtools-flagstat", samtools.program())
        .arg("flagstat")
        .arg("-@")
        .arg(threads.to_string())
        .arg(bam.as_str())
        .stdout_file(output)
}

/// `samtools stats -@ THREADS -r FASTA BAM > OUT`: the full statistics report, with the
/// reference for mismatch and GC-depth sections (the MultiQC samtools module finds the output
/// by its first line, `# This file was produced by samtools stats`).
pub fn samtools_stats(
    samtools: &ToolPath,
    bam: &Utf8Path,
    fasta: &Utf8Path,
    output: &Utf8Path,
    threads: usize,
) -> CommandSpec {
    CommandSpec::new("samtools-stats", samtools.program())
        .arg("stats")
        .arg("-@")
        .arg(threads.to_string())
        .arg("-r")
        .arg(fasta.as_str())
        .arg(bam.as_str())
        .stdout_file(output)
}

/// `samtools sort -@ THREADS -m MEM -T TMP -O bam -o OUT -`: sorts SAM from stdin by coordinate.
/// With an `index`, `--write-index -o OUT##idx##INDEX`, as [`SamtoolsMerge`]'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamtoolsSort {
    /// Additional sorting and compression threads (`-@`).
    pub threads: usize,
    /// Memory per thread in bytes (`-m`); see [`sort_memory_per_thread`].
    pub memory_per_thread: u64,
    /// Prefix for temporary files (`-T`), which must be private to this attempt.
    pub temp_prefix: camino::Utf8PathBuf,
    /// The BAM to write (`-o`).
    pub output: camino::Utf8PathBuf,
    /// The BAI to write as the BAM is written (`--write-index`), if any.
    pub index: Option<Utf8PathBuf>,
}

impl SamtoolsSort {
    /// The command; it reads SAM on stdin.
    pub fn command(&self, samtools: &ToolPath) -> CommandSpec {
        CommandSpec::new("samtools-sort", samtools.program())
            .arg("sort")
            .arg("-@")
            .arg(self.threads.to_string())
            .arg("-m")
            .arg(format!("{}K", (self.memory_per_thread / 1024).max(1)))
            .arg("-T")
            .arg(self.temp_prefix.as_str())
            .arg("-O")
            .arg("bam")
            .args(self.index.is_some().then_some("--write-index"))
            .arg("-o")
            .arg(indexed_output(&self.output, self.index.as_deref()))
            .arg("-")
    }
}

/// The `samtools sort -m` value, in bytes, for a memory budget of `memory_bytes` and `threads`
/// sort threads.
///
/// `-m` is per thread: samtools holds up to `threads × m` bytes of records in memory
/// (samtools-sort manual, `-m`), so passing the total, as users often do, multiplies memory use
/// by the thread count. biojob gives sort a quarter of the budget (bwa, its index and the
/// page cache need the rest), split across the threads, and never less than samtools' 64 MiB
/// floor nor more than 4 GiB per thread (beyond that, fewer temporary files bring no gain).
pub fn sort_memory_per_thread(memory_bytes: u64, threads: usize) -> u64 {
    const MIN: u64 = 64 << 20;
    const MAX: u64 = 4 << 30;
    (memory_bytes / 4 / threads.max(1) as u64).clamp(MIN, MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Tool;

    #[test]
    fn sort_memory_is_per_thread() {
        assert_eq!(sort_memory_per_thread(16 << 30, 4), 1 << 30);
        assert_eq!(sort_memory_per_thread(24 << 30, 2), 3 << 30);
        assert_eq!(sort_memory_per_thread(1 << 30, 8), 64 << 20);
        assert_eq!(sort_memory_per_thread(256 << 30, 2), 4 << 30);
        assert_eq!(sort_memory_per_thread(16 << 30, 0), 4 << 30);
    }

    #[test]
    fn merge_and_markdup_argv_with_and_without_the_index_written_on_the_way() {
        let samtools = ToolPath::new(Tool::Samtools, "samtools");
        let merge = |index: Option<&str>| {
            SamtoolsMerge {
                threads: 3,
                inputs: vec!["a.bam".into(), "b.pipe".into()],
                output: "-".into(),
                uncompressed: false,
                index: index.map(Utf8PathBuf::from),
            }
            .command(&samtools)
            .argv()
            .join(" ")
        };
        assert_eq!(
            merge(None),
            "samtools merge -@ 3 -c -p -f -o - a.bam b.pipe"
        );
        assert_eq!(
            merge(Some("s.bam.bai.partial")),
            "samtools merge -@ 3 -c -p -f --write-index -o -##idx##s.bam.bai.partial a.bam b.pipe"
        );
        let markdup = |index: Option<&str>| {
            SamtoolsMarkdup {
                threads: 1,
                temp_prefix: "t".into(),
                stats: "s.txt".into(),
                output: "-".into(),
                index: index.map(Utf8PathBuf::from),
            }
            .command(&samtools)
            .argv()
            .join(" ")
        };
        assert_eq!(markdup(None), "samtools markdup -@ 1 -T t -f s.txt -- - -");
        assert_eq!(
            markdup(Some("s.bai")),
            "samtools markdup -@ 1 -T t -f s.txt --write-index -- - -##idx##s.bai"
        );
    }

    #[test]
    fn qc_argv() {
        let samtools = ToolPath::new(Tool::Samtools, "samtools");
        assert_eq!(
            samtools_flagstat(&samtools, "x.bam".into(), "x.flagstat.txt".into(), 1)
                .argv()
                .join(" "),
            "samtools flagstat -@ 1 x.bam"
        );
        assert_eq!(
            samtools_stats(
                &samtools,
                "x.bam".into(),
                "ref.fa".into(),
                "x.txt".into(),
                0
            )
            .argv()
            .join(" "),
            "samtools stats -@ 0 -r ref.fa x.bam"
        );
    }

    #[test]
    fn duplicate_marking_argv() {
        let samtools = ToolPath::new(Tool::Samtools, "samtools");
        assert_eq!(
            samtools_fixmate(&samtools).argv().join(" "),
            "samtools fixmate -m -u - -"
        );
        let merge = SamtoolsMerge {
            threads: 1,
            inputs: vec!["a.bam".into(), "b.bam".into()],
            output: "-".into(),
            uncompressed: true,
            index: None,
        };
        assert_eq!(
            merge.command(&samtools).argv().join(" "),
            "samtools merge -@ 1 -c -p -u -o - a.bam b.bam"
        );
        assert_eq!(
            SamtoolsMerge {
                uncompressed: false,
                output: "m.bam".into(),
                ..merge
            }
            .command(&samtools)
            .argv()
            .join(" "),
            "samtools merge -@ 1 -c -p -f -o m.bam a.bam b.bam"
        );
        let markdup = SamtoolsMarkdup {
            threads: 1,
            temp_prefix: "w/S.merge.markdup-tmp".into(),
            stats: "w/S.markdup.txt.partial".into(),
            output: "w/S.align.bam.partial".into(),
            index: None,
        }
        .command(&samtools);
        assert_eq!(
            markdup.argv().join(" "),
            "samtools markdup -@ 1 -T w/S.merge.markdup-tmp -f w/S.markdup.txt.partial -- - w/S.align.bam.partial"
        );
    }

    #[test]
    fn sort_argv() {
        let sort = SamtoolsSort {
            threads: 2,
            memory_per_thread: 3 << 30,
            temp_prefix: "w/NA12878.align.sort-tmp".into(),
            output: "w/NA12878.align.bam.partial".into(),
            index: None,
        };
        let samtools = ToolPath::new(Tool::Samtools, "samtools");
        assert_eq!(
            sort.command(&samtools).argv().join(" "),
            "samtools sort -@ 2 -m 3145728K -T w/NA12878.align.sort-tmp -O bam -o w/NA12878.align.bam.partial -"
        );
        let indexed = SamtoolsSort {
            output: "-".into(),
            index: Some("w/S.bam.partial.bai".into()),
            ..sort
        };
        assert_eq!(
            indexed.command(&samtools).argv().join(" "),
            "samtools sort -@ 2 -m 3145728K -T w/NA12878.align.sort-tmp -O bam --write-index -o -##idx##w/S.bam.partial.bai -"
        );
    }
}
