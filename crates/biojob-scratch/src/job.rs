//! The per-job, per-attempt scratch directory: `<root>/<job id>/<attempt>/`.

use std::fmt;
use std::fs::{File, TryLockError};
use std::os::unix::fs::MetadataExt;

use camino::{Utf8Path, Utf8PathBuf};
use tracing::{info, warn};

use crate::{ScratchError, dir_usage, format_bytes};

/// The default scratch root when none is configured and it is writable: the container's
/// `/scratch` of the reference design.
pub const DEFAULT_SCRATCH_ROOT: &str = "/scratch";

/// Longest job id kept, in bytes (AWS Batch ids are 36-character UUIDs, plus `:N` for array
/// children and `#N` for multi-node parallel nodes).
const MAX_JOB_ID_BYTES: usize = 128;

/// The lock file in `<root>/<job id>/` held while an attempt runs.
const LOCK_FILE: &str = ".lock";

/// The scratch root: `configured` when given, else [`DEFAULT_SCRATCH_ROOT`] when it is a
/// writable directory, else the system temporary directory.
pub fn default_root(configured: Option<&Utf8Path>) -> Utf8PathBuf {
    if let Some(root) = configured {
        return root.to_owned();
    }
    let scratch = Utf8Path::new(DEFAULT_SCRATCH_ROOT);
    if is_writable_dir(scratch) {
        return scratch.to_owned();
    }
    Utf8PathBuf::from_path_buf(std::env::temp_dir()).unwrap_or_else(|_| "/tmp".into())
}

/// Whether `dir` is a directory in which a file can be created (checked by creating one).
pub fn is_writable_dir(dir: &Utf8Path) -> bool {
    if !dir.is_dir() {
        return false;
    }
    let probe = dir.join(format!(".biojob-write-probe-{}", std::process::id()));
    match File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            true
        }
        Err(_) => false,
    }
}

/// A job id usable as a directory name.
///
/// Characters other than ASCII letters, digits, `.`, `_` and `-` become `_` (so
/// `a1b2…:3`, an array child's id, becomes `a1b2…_3`); the result may not be empty, start with
/// `.`, or be longer than 128 bytes.
///
/// ```
/// use biojob_scratch::JobId;
///
/// assert_eq!(JobId::new("4f1a-9c:3").unwrap().as_str(), "4f1a-9c_3");
/// assert!(JobId::new("..").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct JobId(String);

impl JobId {
    /// Validates and sanitises `id`.
    ///
    /// # Errors
    /// [`ScratchError::InvalidJobId`] when it is empty, starts with `.` or is too long.
    pub fn new(id: &str) -> Result<JobId, ScratchError> {
        let invalid = |reason| ScratchError::InvalidJobId {
            id: id.to_owned(),
            reason,
        };
        if id.is_empty() {
            return Err(invalid("it is empty"));
        }
        if id.starts_with('.') {
            return Err(invalid("it starts with `.`"));
        }
        let clean: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        if clean.len() > MAX_JOB_ID_BYTES {
            return Err(invalid("it is longer than 128 bytes"));
        }
        if clean != id {
            info!(job_id = id, directory = %clean, "job id sanitised for the scratch directory");
        }
        Ok(JobId(clean))
    }

    /// The sanitised id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The attempt number of a job, from 1 (AWS Batch's `AWS_BATCH_JOB_ATTEMPT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Attempt(u32);

impl Attempt {
    /// The first attempt.
    pub const FIRST: Attempt = Attempt(1);

    /// Parses an attempt number.
    ///
    /// # Errors
    /// [`ScratchError::InvalidAttempt`] unless it is an integer of at least 1.
    pub fn parse(text: &str) -> Result<Attempt, ScratchError> {
        match text.trim().parse::<u32>() {
            Ok(number) if number >= 1 => Ok(Attempt(number)),
            _ => Err(ScratchError::InvalidAttempt {
                text: text.to_owned(),
            }),
        }
    }

    /// The number.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Attempt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// One attempt's scratch directory, `<root>/<job id>/<attempt>/`, removed when dropped unless
/// kept.
///
/// [`create`](Self::create) takes an exclusive lock on `<root>/<job id>/.lock` (held until the
/// value is finished or dropped; the kernel releases it if the process dies), then removes
/// whatever earlier attempts of the same job left in `<root>/<job id>/` (a killed attempt cannot
/// clean up after itself; a retry on the same host must not reuse its temporary files), then
/// creates the attempt's directory afresh.
///
/// Removal happens in [`finish`](Self::finish) or on drop, on success and failure alike:
/// the attempt's directory, the lock file, and the job's directory when nothing else is in it.
#[derive(Debug)]
pub struct JobScratch {
    root: Utf8PathBuf,
    job_dir: Utf8PathBuf,
    dir: Utf8PathBuf,
    job_id: JobId,
    attempt: Attempt,
    lock: Option<File>,
    done: bool,
}

impl JobScratch {
    /// Creates `<root>/<job id>/<attempt>/`, removing stale attempts of the same job first.
    ///
    /// # Errors
    /// [`ScratchError::InUse`] when another live process holds the job's lock;
    /// [`ScratchError::Io`] when a directory cannot be created or a stale one removed.
    pub fn create(
        root: &Utf8Path,
        job_id: &JobId,
        attempt: Attempt,
    ) -> Result<JobScratch, ScratchError> {
        let job_dir = root.join(job_id.as_str());
        std::fs::create_dir_all(&job_dir).map_err(ScratchError::io("creating", &job_dir))?;
        let lock = lock_job_dir(&job_dir)?;
        remove_stale(&job_dir)?;
        let dir = job_dir.join(attempt.to_string());
        std::fs::create_dir(&dir).map_err(ScratchError::io("creating", &dir))?;
        info!(scratch = %dir, job_id = %job_id, attempt = %attempt, "scratch directory created");
        Ok(JobScratch {
            root: root.to_owned(),
            job_dir,
            dir,
            job_id: job_id.clone(),
            attempt,
            lock: Some(lock),
            done: false,
        })
    }

    /// The attempt's directory, `<root>/<job id>/<attempt>/`.
    pub fn dir(&self) -> &Utf8Path {
        &self.dir
    }

    /// The scratch root.
    pub fn root(&self) -> &Utf8Path {
        &self.root
    }

    /// The job's directory, `<root>/<job id>/`.
    pub fn job_dir(&self) -> &Utf8Path {
        &self.job_dir
    }

    /// The job id.
    pub fn job_id(&self) -> &JobId {
        &self.job_id
    }

    /// The attempt.
    pub fn attempt(&self) -> Attempt {
        self.attempt
    }

    /// Removes the attempt's directory (unless `keep`) and releases the lock. Returns the
    /// directory when it was kept.
    ///
    /// # Errors
    /// [`ScratchError::Io`] when the directory cannot be removed.
    pub fn finish(mut self, keep: bool) -> Result<Option<Utf8PathBuf>, ScratchError> {
        self.done = true;
        if keep {
            self.lock = None;
            info!(scratch = %self.dir, "scratch directory kept");
            return Ok(Some(self.dir.clone()));
        }
        self.remove()?;
        Ok(None)
    }

    fn remove(&mut self) -> Result<(), ScratchError> {
        let removed = match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(ScratchError::io("removing", &self.dir)(error)),
        };
        // Unlink the lock file while holding the lock, then release it.
        let _ = std::fs::remove_file(self.job_dir.join(LOCK_FILE));
        self.lock = None;
        // Fails (and is meant to) when another attempt or job has put something there.
        let _ = std::fs::remove_dir(&self.job_dir);
        if removed.is_ok() {
            info!(scratch = %self.dir, "scratch directory removed");
        }
        removed
    }
}

impl Drop for JobScratch {
    fn drop(&mut self) {
        if !self.done
            && let Err(error) = self.remove()
        {
            warn!(%error, "could not remove the scratch directory");
        }
    }
}

/// Takes the job's lock, making sure the locked file is still the one at the lock path (a
/// finishing holder unlinks it before releasing it).
fn lock_job_dir(job_dir: &Utf8Path) -> Result<File, ScratchError> {
    let path = job_dir.join(LOCK_FILE);
    for _ in 0..10 {
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(ScratchError::io("opening", &path))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(ScratchError::InUse {
                    path: job_dir.to_owned(),
                });
            }
            Err(TryLockError::Error(error)) => {
                return Err(ScratchError::io("locking", &path)(error));
            }
        }
        let locked = file
            .metadata()
            .map_err(ScratchError::io("reading", &path))?;
        match std::fs::metadata(&path) {
            Ok(current) if current.dev() == locked.dev() && current.ino() == locked.ino() => {
                return Ok(file);
            }
            // Unlinked by the previous holder between our open and our lock: try again.
            _ => continue,
        }
    }
    Err(ScratchError::InUse {
        path: job_dir.to_owned(),
    })
}

/// Removes everything in `job_dir` but the lock file: directories of earlier attempts.
fn remove_stale(job_dir: &Utf8Path) -> Result<(), ScratchError> {
    let entries = std::fs::read_dir(job_dir).map_err(ScratchError::io("reading", job_dir))?;
    for entry in entries {
        let entry = entry.map_err(ScratchError::io("reading", job_dir))?;
        if entry.file_name() == LOCK_FILE {
            continue;
        }
        let path = Utf8PathBuf::from_path_buf(entry.path())
            .unwrap_or_else(|path| Utf8PathBuf::from(path.to_string_lossy().into_owned()));
        let is_dir = entry.file_type().is_ok_and(|kind| kind.is_dir());
        let bytes = if is_dir { dir_usage(&path) } else { 0 };
        let removed = if is_dir {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(ScratchError::io("removing stale scratch", &path))?;
        warn!(
            stale = %path,
            bytes,
            "removed what an earlier attempt of this job left in scratch ({})",
            format_bytes(bytes)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_ids_are_sanitised() {
        let uuid = "3f2b7c1e-8a4d-4e1f-9b0a-1c2d3e4f5a6b";
        assert_eq!(JobId::new(uuid).expect("uuid").as_str(), uuid);
        assert_eq!(
            JobId::new(&format!("{uuid}:7"))
                .expect("array child")
                .as_str(),
            format!("{uuid}_7")
        );
        assert_eq!(
            JobId::new("a/../b c").expect("sanitised").as_str(),
            "a_.._b_c"
        );
        assert_eq!(
            JobId::new("20261129T181012Z-3fa1")
                .expect("run id")
                .as_str(),
            "20261129T181012Z-3fa1"
        );
    }

    #[test]
    fn bad_job_ids() {
        let message = |id: &str| JobId::new(id).map(|_| ()).map_err(|e| e.to_string());
        assert_eq!(
            message(""),
            Err("job id \"\" cannot name a scratch directory: it is empty".into())
        );
        assert_eq!(
            message(".."),
            Err("job id \"..\" cannot name a scratch directory: it starts with `.`".into())
        );
        assert_eq!(
            message(&"x".repeat(129)),
            Err(format!(
                "job id \"{}\" cannot name a scratch directory: it is longer than 128 bytes",
                "x".repeat(129)
            ))
        );
    }

    #[test]
    fn attempts() {
        assert_eq!(Attempt::parse("2").map(Attempt::get).ok(), Some(2));
        assert_eq!(Attempt::parse(" 1 ").ok(), Some(Attempt::FIRST));
        assert_eq!(
            Attempt::parse("0").map_err(|e| e.to_string()),
            Err("job attempt \"0\" is not a positive integer".into())
        );
        assert!(Attempt::parse("x").is_err());
    }
}
