//! Scratch space: the settings of a job's scratch directory, each step's space estimate, and
//! the bridge from the scratch watch to the supervisor (pause, resume, stop).

use std::sync::Arc;
use std::time::Duration;

use biojob_process::{WatchStop, WatchVerdict, Watchdog};
use biojob_scratch::{
    Attempt, AutoscaleMode, JobId, JobScratch, SpaceNeed, SpaceVerdict, SpaceWatch, WatchSettings,
    detect_autoscale,
};
use camino::{Utf8Path, Utf8PathBuf};
use tracing::info;

use crate::Error;

/// Where scratch directories go and how their space is watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScratchSettings {
    /// The scratch root; each attempt works in `<root>/<job id>/<attempt>/`.
    pub root: Utf8PathBuf,
    /// Whether the filesystem grows (EBS autoscale): detected, or forced on or off.
    pub autoscale: AutoscaleMode,
    /// The EBS autoscale configuration read when detecting (normally `/etc/ebs-autoscale.json`).
    pub autoscale_config: Utf8PathBuf,
    /// On a growing filesystem, pause the tools when fewer bytes than this are free; resume at
    /// twice as many.
    pub low_water_bytes: u64,
    /// Longest wait for the filesystem to grow.
    pub wait_timeout: Duration,
    /// Time between two checks of the free space.
    pub interval: Duration,
    /// Keep the attempt's directory at the end (for debugging).
    pub keep: bool,
}

impl ScratchSettings {
    /// Settings for `root` with the defaults: autoscale detected from
    /// [`EBS_AUTOSCALE_CONFIG`](biojob_scratch::EBS_AUTOSCALE_CONFIG), a 2 GiB low-water mark,
    /// a 5-minute wait, a check every second, scratch removed at the end.
    pub fn new(root: impl Into<Utf8PathBuf>) -> Self {
        ScratchSettings {
            root: root.into(),
            autoscale: AutoscaleMode::Detect,
            autoscale_config: biojob_scratch::EBS_AUTOSCALE_CONFIG.into(),
            low_water_bytes: biojob_scratch::DEFAULT_LOW_WATER_BYTES,
            wait_timeout: biojob_scratch::DEFAULT_WAIT,
            interval: biojob_scratch::DEFAULT_INTERVAL,
            keep: false,
        }
    }

    /// Creates the attempt's directory (removing what earlier attempts of the job left) and
    /// starts watching its filesystem. Logs whether it is autoscaled and why.
    ///
    /// # Errors
    /// [`Error::Scratch`] when the directory cannot be created or is in use.
    pub fn open(
        &self,
        job_id: &JobId,
        attempt: Attempt,
    ) -> Result<(JobScratch, SpaceWatch), Error> {
        let scratch = JobScratch::create(&self.root, job_id, attempt)?;
        let autoscale = detect_autoscale(self.autoscale, scratch.dir(), &self.autoscale_config);
        info!(
            scratch = %scratch.dir(),
            autoscale = autoscale.managed,
            "scratch filesystem {}: {}",
            if autoscale.managed { "grows" } else { "does not grow" },
            autoscale.reason
        );
        let watch = SpaceWatch::new(
            scratch.dir(),
            WatchSettings {
                autoscale: autoscale.managed,
                low_water_bytes: self.low_water_bytes,
                resume_bytes: self.low_water_bytes.saturating_mul(2),
                wait_timeout: self.wait_timeout,
                interval: self.interval,
            },
        )?;
        Ok((scratch, watch))
    }
}

/// The scratch watch as the supervisor's [`Watchdog`]: pause while the watch says so, stop
/// with the scratch class when the filesystem did not grow.
#[derive(Debug, Clone)]
pub struct SpaceWatchdog(pub SpaceWatch);

impl Watchdog for SpaceWatchdog {
    fn check(&self) -> WatchVerdict {
        match self.0.check() {
            SpaceVerdict::Run => WatchVerdict::Run,
            SpaceVerdict::Pause => WatchVerdict::Pause,
            SpaceVerdict::Fail(error) => WatchVerdict::Stop(WatchStop::new(error)),
        }
    }
}

impl SpaceWatchdog {
    /// `watch` as a shareable watchdog.
    pub fn shared(watch: &SpaceWatch) -> Arc<dyn Watchdog> {
        Arc::new(SpaceWatchdog(watch.clone()))
    }
}

/// Whether a FASTQ is gzip-compressed, judged by its name (`.gz`, `.bgz`).
fn is_gzip_name(name: &str) -> bool {
    name.ends_with(".gz") || name.ends_with(".bgz")
}

/// The estimated size in bytes of the coordinate-sorted BAM made from FASTQs of these sizes
/// (`name` decides whether they are compressed): 1.5 × gzip-compressed FASTQ bytes, or 0.4 ×
/// plain FASTQ bytes. Measured on the NA12878 test data: 1.04 × the gzip FASTQs.
pub fn estimated_bam_bytes(fastq_bytes: u64, fastq_name: &str) -> u64 {
    if is_gzip_name(fastq_name) {
        fastq_bytes.saturating_mul(3) / 2
    } else {
        fastq_bytes.saturating_mul(2) / 5
    }
}

/// The align step's scratch estimate, in bytes: `staged` bytes of inputs copied into scratch
/// (0 for local inputs, which are read in place), the sorted BAM (see
/// [`estimated_bam_bytes`]), the sort's temporary files (1.5 × the BAM: sort needs 2–3 × the
/// BAM in all while it merges), and the BAM index (1 % of the BAM, at least 64 KiB).
pub fn align_space_need(staged: u64, fastq_bytes: u64, fastq_name: &str) -> SpaceNeed {
    let bam = estimated_bam_bytes(fastq_bytes, fastq_name);
    SpaceNeed::new("align")
        .with("staged inputs", staged)
        .with("sorted BAM", bam)
        .with("sort temporary files", bam.saturating_mul(3) / 2)
        .with("BAM index", (bam / 100).max(64 << 10))
}

/// The split step's estimate, in bytes: the chunk files, gzip at level 2, taken as 1.5 × the
/// FASTQ pair's `fastq_bytes` (inputs are usually gzip at level 6, which level 2 exceeds by
/// about a tenth: 1.11 × on the simulated 1M-pair set). The inputs are streamed, not staged.
pub fn split_space_need(fastq_bytes: u64) -> SpaceNeed {
    SpaceNeed::new("split").with("FASTQ chunks", fastq_bytes.saturating_mul(3) / 2)
}

/// The spool of a split that uploads its chunks as it compresses them, for `chunks` chunks:
/// per chunk file (two per chunk) less than the smallest part S3 takes, 5 MiB, waiting for
/// the chunk's next block; and for each of the two files being written, the part being
/// filled and two in flight, each at most [`SPOOL_PART_BYTES`].
pub fn split_upload_space_need(chunks: usize) -> SpaceNeed {
    let chunk_files = (2 * chunks) as u64;
    SpaceNeed::new("split")
        .with("parts set aside", chunk_files.saturating_mul(5 << 20))
        .with("parts being written and sent", 2 * 3 * SPOOL_PART_BYTES)
}

/// The largest part a spooled upload is sized for: 64 MiB (`BIOJOB_S3_PART_SIZE` is 16 MiB
/// unless set; a larger one needs more space than [`split_upload_space_need`] says).
pub const SPOOL_PART_BYTES: u64 = 64 << 20;

/// The merge step's estimate, in bytes, from the chunks' `bam_bytes`: the staged inputs, and
/// either the merged BAM, its index and markdup's temporary files (twice the chunks, plus
/// 1 MiB), or, for a BAM uploaded as it is written, the parts being written and sent, the
/// index (1 MiB) and, when marking duplicates, as much as the chunks again for markdup's
/// temporary files (an allowance, not measured).
pub fn merge_space_need(
    staged: u64,
    bam_bytes: u64,
    uploaded: bool,
    mark_duplicates: bool,
) -> SpaceNeed {
    let need = SpaceNeed::new("merge").with("staged inputs", staged);
    if !uploaded {
        return need.with(
            "merged BAM and index",
            bam_bytes.saturating_mul(2).saturating_add(1 << 20),
        );
    }
    let need = need
        .with("parts being written and sent", 3 * SPOOL_PART_BYTES)
        .with("index", 1 << 20);
    if mark_duplicates {
        need.with("markdup's temporary files", bam_bytes)
    } else {
        need
    }
}

/// The call step's estimate for one shard, in bytes: staged inputs, and the VCF and its index
/// (5 % of the BAM, at least 1 MiB: a variant-sites VCF is far smaller than its BAM).
pub fn call_space_need(step: &str, staged: u64, bam_bytes: u64) -> SpaceNeed {
    SpaceNeed::new(step)
        .with("staged inputs", staged)
        .with("VCF and index", (bam_bytes / 20).max(1 << 20))
}

/// The gather step's estimate, in bytes: staged inputs, and the concatenated VCF and its index
/// (the inputs' size plus 1 MiB).
pub fn gather_space_need(staged: u64, vcf_bytes: u64) -> SpaceNeed {
    SpaceNeed::new("gather")
        .with("staged inputs", staged)
        .with("VCF and index", vcf_bytes.saturating_add(1 << 20))
}

/// The size of a local file in bytes, 0 when it cannot be read (the step reports that itself).
pub fn file_bytes(path: &Utf8Path) -> u64 {
    std::fs::metadata(path).map_or(0, |meta| meta.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bam_estimates() {
        assert_eq!(estimated_bam_bytes(1_000_000, "x_R1.fastq.gz"), 1_500_000);
        assert_eq!(estimated_bam_bytes(1_000_000, "x_R1.fastq"), 400_000);
        assert_eq!(estimated_bam_bytes(u64::MAX, "x.fq.gz"), u64::MAX / 2);
    }

    #[test]
    fn align_need_for_the_test_data() {
        // NA12878_R1.fastq.gz + NA12878_R2.fastq.gz of the test data.
        let need = align_space_need(0, 860_240 + 1_026_327, "NA12878_R1.fastq.gz");
        assert_eq!(
            need.parts,
            [
                ("staged inputs".to_owned(), 0),
                ("sorted BAM".to_owned(), 2_829_850),
                ("sort temporary files".to_owned(), 4_244_775),
                ("BAM index".to_owned(), 65_536),
            ]
        );
        assert_eq!(need.total(), 7_140_161);
    }

    #[test]
    fn call_and_gather_needs() {
        assert_eq!(call_space_need("call chr20", 0, 1_953_732).total(), 1 << 20);
        assert_eq!(
            call_space_need("call chr20", 5, 100 << 20).total(),
            (5 << 20) + 5
        );
        assert_eq!(gather_space_need(0, 1000).total(), (1 << 20) + 1000);
    }
}
