//! Watching scratch space while tools run: preflight, pause when close to full on a growing
//! filesystem, resume when it grew, give up after a timeout; peak use for the manifest.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::{FsSpace, ScratchError, SpaceNeed, dir_usage, format_bytes, fs_space};

/// Default low-water mark: 2 GiB. Below it, on an autoscaled filesystem, tools are paused.
pub const DEFAULT_LOW_WATER_BYTES: u64 = 2 << 30;
/// Default longest wait for the filesystem to grow: 5 minutes (EBS autoscale takes tens of
/// seconds per volume).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);
/// Default time between two `statvfs` checks: 1 second (the daemon itself polls every 2 s).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
/// A filesystem with fewer free bytes than this (or than 1 % of its size, whichever is smaller)
/// counts as full: 16 MiB.
const FULL_BYTES: u64 = 16 << 20;
/// Time between two progress lines while waiting for growth: 10 seconds.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);

/// How a [`SpaceWatch`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchSettings {
    /// Whether the filesystem grows (EBS autoscale); without it the watch never pauses and
    /// only records usage.
    pub autoscale: bool,
    /// Pause the tools when fewer bytes than this are free.
    pub low_water_bytes: u64,
    /// Resume them when at least this many bytes are free again (at least the low-water mark).
    pub resume_bytes: u64,
    /// Give up (scratch class) after waiting this long for growth.
    pub wait_timeout: Duration,
    /// Time between two checks of the filesystem.
    pub interval: Duration,
}

impl WatchSettings {
    /// Settings with a low-water mark of `low_water_bytes`, resuming at twice that, and the
    /// default wait timeout and interval.
    pub fn new(autoscale: bool, low_water_bytes: u64) -> Self {
        WatchSettings {
            autoscale,
            low_water_bytes,
            resume_bytes: low_water_bytes.saturating_mul(2),
            wait_timeout: DEFAULT_WAIT,
            interval: DEFAULT_INTERVAL,
        }
    }
}

/// What a check of the watch says.
#[derive(Debug)]
pub enum SpaceVerdict {
    /// Enough space (or the filesystem does not grow): let the tools run.
    Run,
    /// Free space is below the low-water mark on a growing filesystem: keep the tools paused.
    Pause,
    /// The filesystem did not grow in time: stop the tools.
    Fail(ScratchError),
}

/// One wait for the filesystem to grow, as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GrowthWait {
    /// Bytes free when the tools were paused.
    pub free_bytes_at_pause: u64,
    /// Filesystem size when they were paused, in bytes.
    pub total_bytes_at_pause: u64,
    /// Bytes free when the wait ended.
    pub free_bytes_after: u64,
    /// Filesystem size when the wait ended, in bytes.
    pub total_bytes_after: u64,
    /// How long the wait lasted, in seconds.
    pub waited_seconds: f64,
    /// Whether the tools were resumed (false: biojob gave up).
    pub resumed: bool,
}

/// Scratch use of a job, as recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScratchUsage {
    /// The attempt's scratch directory.
    pub dir: String,
    /// Whether the filesystem was treated as growing (EBS autoscale).
    pub autoscale: bool,
    /// The largest size seen of the scratch directory tree, in bytes (sampled at every check
    /// while tools run and at step boundaries).
    pub peak_bytes: u64,
    /// Free bytes on the filesystem when the watch started.
    pub free_bytes_at_start: u64,
    /// The fewest free bytes seen.
    pub min_free_bytes: u64,
    /// Filesystem size when the watch started, in bytes.
    pub total_bytes_at_start: u64,
    /// Filesystem size at the last check, in bytes.
    pub total_bytes_last: u64,
    /// Every wait for growth.
    pub growth_waits: Vec<GrowthWait>,
}

/// Watches the free space of the filesystem holding a scratch directory. Clones share one
/// state, so every step and shard of a job sees (and records) the same watch.
///
/// [`check`](Self::check) is cheap enough to call every few milliseconds: it looks at the
/// filesystem (`statvfs`, and the size of the directory tree) at most once per
/// [`interval`](WatchSettings::interval) and otherwise returns the last verdict.
///
/// On a growing filesystem, when free space falls below the low-water mark it says
/// [`Pause`](SpaceVerdict::Pause) (and logs it) until free space is back to the resume mark
/// (then logs how long growth took, and says [`Run`](SpaceVerdict::Run)), logging progress
/// every 10 seconds; after the wait timeout it says [`Fail`](SpaceVerdict::Fail) with
/// [`ScratchError::NeverGrew`], then and on every later check.
#[derive(Debug, Clone)]
pub struct SpaceWatch {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    dir: Utf8PathBuf,
    settings: WatchSettings,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    last_check: Option<Instant>,
    paused: Option<Paused>,
    failed: Option<u64>,
    /// The step and bytes of the last preflight, so that a repeated check logs quietly.
    last_preflight: Option<(String, u64)>,
    usage: ScratchUsage,
}

#[derive(Debug, Clone, Copy)]
struct Paused {
    since: Instant,
    space: FsSpace,
    last_log: Instant,
}

impl SpaceWatch {
    /// A watch of the filesystem holding `dir`, which must exist.
    ///
    /// # Errors
    /// [`ScratchError::Io`] when `statvfs` fails on `dir`.
    pub fn new(dir: &Utf8Path, settings: WatchSettings) -> Result<SpaceWatch, ScratchError> {
        let space = fs_space(dir)?;
        info!(
            scratch = %dir,
            free_bytes = space.free_bytes,
            total_bytes = space.total_bytes,
            autoscale = settings.autoscale,
            low_water_bytes = settings.low_water_bytes,
            "watching scratch space: {} free of {}",
            format_bytes(space.free_bytes),
            format_bytes(space.total_bytes)
        );
        Ok(SpaceWatch {
            inner: Arc::new(Inner {
                dir: dir.to_owned(),
                state: Mutex::new(State {
                    last_check: None,
                    paused: None,
                    failed: None,
                    last_preflight: None,
                    usage: ScratchUsage {
                        dir: dir.to_string(),
                        autoscale: settings.autoscale,
                        peak_bytes: dir_usage(dir),
                        free_bytes_at_start: space.free_bytes,
                        min_free_bytes: space.free_bytes,
                        total_bytes_at_start: space.total_bytes,
                        total_bytes_last: space.total_bytes,
                        growth_waits: Vec::new(),
                    },
                }),
                settings,
            }),
        })
    }

    /// The directory watched.
    pub fn dir(&self) -> &Utf8Path {
        &self.inner.dir
    }

    /// The settings.
    pub fn settings(&self) -> &WatchSettings {
        &self.inner.settings
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Checks the space before a step: `need` bytes must be free, unless the filesystem grows
    /// (then the step proceeds and the watch pauses its tools when close to full).
    ///
    /// # Errors
    /// [`ScratchError::Insufficient`] with the bytes needed and free when short on a
    /// filesystem that does not grow; [`ScratchError::Io`] when `statvfs` fails.
    pub fn preflight(&self, need: &SpaceNeed) -> Result<(), ScratchError> {
        let dir = self.dir();
        let space = fs_space(dir)?;
        self.record(space);
        let needed = need.total();
        let repeated = {
            let mut state = self.state();
            let current = (need.step.clone(), needed);
            let repeated = state.last_preflight.as_ref() == Some(&current);
            state.last_preflight = Some(current);
            repeated
        };
        if space.free_bytes >= needed {
            if repeated {
                debug!(step = %need.step, needed_bytes = needed, free_bytes = space.free_bytes, "scratch preflight passed again");
                return Ok(());
            }
            info!(
                step = %need.step,
                needed_bytes = needed,
                free_bytes = space.free_bytes,
                "scratch preflight: {} needed, {} free in {dir}",
                format_bytes(needed),
                format_bytes(space.free_bytes)
            );
            return Ok(());
        }
        if self.inner.settings.autoscale {
            if repeated {
                debug!(step = %need.step, needed_bytes = needed, free_bytes = space.free_bytes, "scratch preflight short again; proceeding");
                return Ok(());
            }
            warn!(
                step = %need.step,
                needed_bytes = needed,
                free_bytes = space.free_bytes,
                "scratch preflight: {} needed, only {} free in {dir}; the filesystem grows \
                 (EBS autoscale): proceeding, pausing the tools if free space falls below {}",
                format_bytes(needed),
                format_bytes(space.free_bytes),
                format_bytes(self.inner.settings.low_water_bytes)
            );
            return Ok(());
        }
        Err(ScratchError::Insufficient {
            step: need.step.clone(),
            path: dir.to_owned(),
            needed,
            free: space.free_bytes,
            parts: need.parts.clone(),
        })
    }

    /// What the tools should do now; see the type's documentation.
    pub fn check(&self) -> SpaceVerdict {
        let settings = &self.inner.settings;
        let now = Instant::now();
        let mut state = self.state();
        if let Some(free) = state.failed {
            return self.never_grew(free);
        }
        let due = state
            .last_check
            .is_none_or(|last| now.duration_since(last) >= settings.interval);
        if !due {
            return if state.paused.is_some() {
                SpaceVerdict::Pause
            } else {
                SpaceVerdict::Run
            };
        }
        state.last_check = Some(now);
        let space = match fs_space(&self.inner.dir) {
            Ok(space) => space,
            Err(error) => {
                debug!(%error, "cannot check scratch space");
                return if state.paused.is_some() {
                    SpaceVerdict::Pause
                } else {
                    SpaceVerdict::Run
                };
            }
        };
        record_into(&mut state.usage, &self.inner.dir, space);
        if !settings.autoscale {
            return SpaceVerdict::Run;
        }
        let dir = &self.inner.dir;
        match state.paused {
            None if space.free_bytes < settings.low_water_bytes => {
                warn!(
                    scratch = %dir,
                    free_bytes = space.free_bytes,
                    total_bytes = space.total_bytes,
                    "scratch almost full: {} free of {} (low-water mark {}); pausing the tools \
                     until the filesystem grows (at most {})",
                    format_bytes(space.free_bytes),
                    format_bytes(space.total_bytes),
                    format_bytes(settings.low_water_bytes),
                    humantime::format_duration(settings.wait_timeout)
                );
                state.paused = Some(Paused {
                    since: now,
                    space,
                    last_log: now,
                });
                SpaceVerdict::Pause
            }
            None => SpaceVerdict::Run,
            Some(paused) => {
                let waited = now.duration_since(paused.since);
                let wait = GrowthWait {
                    free_bytes_at_pause: paused.space.free_bytes,
                    total_bytes_at_pause: paused.space.total_bytes,
                    free_bytes_after: space.free_bytes,
                    total_bytes_after: space.total_bytes,
                    waited_seconds: (waited.as_secs_f64() * 1000.0).round() / 1000.0,
                    resumed: true,
                };
                if space.free_bytes >= settings.resume_bytes {
                    info!(
                        scratch = %dir,
                        waited_seconds = wait.waited_seconds,
                        total_bytes_before = paused.space.total_bytes,
                        total_bytes_after = space.total_bytes,
                        free_bytes = space.free_bytes,
                        "scratch grew from {} to {} in {:.1} s ({} free): resuming the tools",
                        format_bytes(paused.space.total_bytes),
                        format_bytes(space.total_bytes),
                        waited.as_secs_f64(),
                        format_bytes(space.free_bytes)
                    );
                    state.usage.growth_waits.push(wait);
                    state.paused = None;
                    SpaceVerdict::Run
                } else if waited >= settings.wait_timeout {
                    warn!(
                        scratch = %dir,
                        free_bytes = space.free_bytes,
                        "scratch did not grow in {}: giving up",
                        humantime::format_duration(settings.wait_timeout)
                    );
                    state.usage.growth_waits.push(GrowthWait {
                        resumed: false,
                        ..wait
                    });
                    state.paused = None;
                    state.failed = Some(space.free_bytes);
                    self.never_grew(space.free_bytes)
                } else {
                    if now.duration_since(paused.last_log) >= PROGRESS_EVERY {
                        info!(
                            scratch = %dir,
                            free_bytes = space.free_bytes,
                            total_bytes = space.total_bytes,
                            waited_seconds = waited.as_secs(),
                            "waiting for scratch to grow: {} free of {}, {} s waited, giving up \
                             in {} s",
                            format_bytes(space.free_bytes),
                            format_bytes(space.total_bytes),
                            waited.as_secs(),
                            settings.wait_timeout.saturating_sub(waited).as_secs()
                        );
                        state.paused = Some(Paused {
                            last_log: now,
                            ..paused
                        });
                    }
                    SpaceVerdict::Pause
                }
            }
        }
    }

    fn never_grew(&self, free: u64) -> SpaceVerdict {
        SpaceVerdict::Fail(ScratchError::NeverGrew {
            path: self.inner.dir.clone(),
            free,
            resume: self.inner.settings.resume_bytes,
            waited: self.inner.settings.wait_timeout,
        })
    }

    fn record(&self, space: FsSpace) {
        let mut state = self.state();
        record_into(&mut state.usage, &self.inner.dir, space);
    }

    /// [`ScratchError::Full`] when the filesystem is (almost) full now: fewer bytes free than
    /// 1 % of its size or 16 MiB, whichever is smaller. A step that failed while its scratch
    /// was full most likely failed for want of space, whatever the tool said.
    pub fn full(&self) -> Option<ScratchError> {
        let space = fs_space(&self.inner.dir).ok()?;
        self.record(space);
        let threshold = (space.total_bytes / 100).min(FULL_BYTES);
        (space.free_bytes < threshold).then(|| ScratchError::Full {
            path: self.inner.dir.clone(),
            free: space.free_bytes,
            total: space.total_bytes,
        })
    }

    /// Whether the watch is asking for the tools to be paused (waiting for growth).
    pub fn is_paused(&self) -> bool {
        self.state().paused.is_some()
    }

    /// Samples the size of the scratch tree (and the free space) now, e.g. at the end of a
    /// step, so that the peak includes what biojob wrote itself.
    pub fn sample(&self) {
        if let Ok(space) = fs_space(&self.inner.dir) {
            self.record(space);
        }
    }

    /// Scratch use so far (after a fresh [`sample`](Self::sample)).
    pub fn usage(&self) -> ScratchUsage {
        self.sample();
        self.state().usage.clone()
    }
}

fn record_into(usage: &mut ScratchUsage, dir: &Utf8Path, space: FsSpace) {
    usage.min_free_bytes = usage.min_free_bytes.min(space.free_bytes);
    usage.total_bytes_last = space.total_bytes;
    usage.peak_bytes = usage.peak_bytes.max(dir_usage(dir));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> (tempfile::TempDir, Utf8PathBuf) {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = Utf8PathBuf::from_path_buf(temp.path().to_path_buf()).expect("UTF-8");
        (temp, dir)
    }

    #[test]
    fn settings_resume_at_twice_the_low_water_mark() {
        let settings = WatchSettings::new(true, 1 << 30);
        assert_eq!(settings.resume_bytes, 2 << 30);
        assert_eq!(settings.wait_timeout, Duration::from_secs(300));
        assert_eq!(settings.interval, Duration::from_secs(1));
    }

    #[test]
    fn without_autoscale_it_never_pauses_but_records_the_peak() {
        let (_temp, dir) = temp();
        let watch = SpaceWatch::new(&dir, WatchSettings::new(false, u64::MAX)).expect("watch");
        assert!(matches!(watch.check(), SpaceVerdict::Run));
        std::fs::write(dir.join("big"), vec![7u8; 100_000]).expect("write");
        watch.sample();
        std::fs::remove_file(dir.join("big")).expect("remove");
        let usage = watch.usage();
        assert!(usage.peak_bytes >= 100_000, "{usage:?}");
        assert!(!usage.autoscale);
        assert_eq!(usage.growth_waits, []);
    }

    #[test]
    fn preflight_refuses_when_short_without_autoscale() {
        let (_temp, dir) = temp();
        let watch = SpaceWatch::new(&dir, WatchSettings::new(false, 0)).expect("watch");
        let need = SpaceNeed::new("align").with("everything", u64::MAX);
        let error = watch.preflight(&need).expect_err("short");
        let ScratchError::Insufficient { needed, step, .. } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(*needed, u64::MAX);
        assert_eq!(step, "align");
        assert!(
            watch
                .preflight(&SpaceNeed::new("align").with("x", 1))
                .is_ok()
        );
    }

    #[test]
    fn preflight_proceeds_when_short_with_autoscale() {
        let (_temp, dir) = temp();
        let watch = SpaceWatch::new(&dir, WatchSettings::new(true, 0)).expect("watch");
        let need = SpaceNeed::new("align").with("everything", u64::MAX);
        assert!(watch.preflight(&need).is_ok());
    }

    #[test]
    fn with_autoscale_it_pauses_below_the_low_water_mark_and_gives_up() {
        let (_temp, dir) = temp();
        let settings = WatchSettings {
            wait_timeout: Duration::from_millis(50),
            interval: Duration::ZERO,
            ..WatchSettings::new(true, u64::MAX / 2)
        };
        let watch = SpaceWatch::new(&dir, settings).expect("watch");
        assert!(matches!(watch.check(), SpaceVerdict::Pause));
        std::thread::sleep(Duration::from_millis(60));
        let SpaceVerdict::Fail(error) = watch.check() else {
            panic!("expected a failure");
        };
        let ScratchError::NeverGrew { resume, waited, .. } = error else {
            panic!("{error:?}");
        };
        assert_eq!(resume, u64::MAX - 1);
        assert_eq!(waited, Duration::from_millis(50));
        // Sticky: every later check fails too.
        assert!(matches!(watch.check(), SpaceVerdict::Fail(_)));
        let usage = watch.usage();
        assert_eq!(usage.growth_waits.len(), 1);
        assert!(!usage.growth_waits[0].resumed);
    }

    #[test]
    fn checks_are_rate_limited() {
        let (_temp, dir) = temp();
        let settings = WatchSettings {
            interval: Duration::from_secs(3600),
            ..WatchSettings::new(true, 0)
        };
        let watch = SpaceWatch::new(&dir, settings).expect("watch");
        assert!(matches!(watch.check(), SpaceVerdict::Run));
        let first = watch.state().last_check;
        assert!(matches!(watch.check(), SpaceVerdict::Run));
        assert_eq!(watch.state().last_check, first);
    }
}
