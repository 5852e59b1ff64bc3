//! Scratch space for biojob's jobs: one directory per job and attempt, a free-space preflight
//! per step, and a watch that pauses the tools while an EBS-autoscaled disk grows.
//!
//! - [`default_root`]: `BIOJOB_SCRATCH_DIR`, else `/scratch` when writable, else the system
//!   temporary directory.
//! - [`JobScratch`]: `<root>/<job id>/<attempt>/`, locked while in use, earlier attempts of the
//!   same job removed first, removed itself at the end (success or failure) unless kept.
//! - [`detect_autoscale`]: whether the amazon-ebs-autoscale daemon grows the filesystem (its
//!   `/etc/ebs-autoscale.json` names the mountpoint), or as forced by `BIOJOB_SCRATCH_AUTOSCALE`.
//! - [`SpaceWatch`]: [`preflight`](SpaceWatch::preflight) checks a step's [`SpaceNeed`] against
//!   `statvfs`; [`check`](SpaceWatch::check) tells the supervisor to pause or stop the tools;
//!   [`usage`](SpaceWatch::usage) is the peak use for the run manifest.
//! - [`ScratchError`]: implements [`biojob_core::Classify`] (space problems are exit code 12).
//!
//! This crate knows nothing of processes: `biojob-pipeline` turns a [`SpaceVerdict`] into the
//! supervisor's pause and stop.
//!
//! ```no_run
//! use biojob_scratch::{Attempt, JobId, JobScratch, SpaceNeed, SpaceWatch, WatchSettings};
//!
//! let root = camino::Utf8Path::new("/scratch");
//! let scratch = JobScratch::create(root, &JobId::new("job-1")?, Attempt::FIRST)?;
//! let watch = SpaceWatch::new(scratch.dir(), WatchSettings::new(false, 2 << 30))?;
//! watch.preflight(&SpaceNeed::new("align").with("sorted BAM", 3 << 30))?;
//! // ... run the step ...
//! println!("peak scratch use: {} bytes", watch.usage().peak_bytes);
//! scratch.finish(false)?;
//! # Ok::<(), biojob_scratch::ScratchError>(())
//! ```

mod autoscale;
mod error;
mod job;
mod space;
mod watch;

pub use autoscale::{Autoscale, AutoscaleMode, EBS_AUTOSCALE_CONFIG, detect_autoscale};
pub use error::{ScratchError, is_disk_full};
pub use job::{Attempt, DEFAULT_SCRATCH_ROOT, JobId, JobScratch, default_root, is_writable_dir};
pub use space::{FsSpace, SpaceNeed, dir_usage, format_bytes, fs_space};
pub use watch::{
    DEFAULT_INTERVAL, DEFAULT_LOW_WATER_BYTES, DEFAULT_WAIT, GrowthWait, ScratchUsage,
    SpaceVerdict, SpaceWatch, WatchSettings,
};
