//! The process environment: the one module of the binary that reads it (clap's `env =`
//! aside). Every variable's name is in [`biojob_pipeline::env`]; the environment is never
//! logged as a whole.

use biojob_pipeline::env;
use biojob_scratch::{Attempt, JobId};
use camino::Utf8PathBuf;

/// The value of the variable `name`, when set and not empty.
pub fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

/// The value of `name` as a path, when set and not empty.
pub fn path(name: &str) -> Option<Utf8PathBuf> {
    var(name).map(Utf8PathBuf::from)
}

/// Whether the process runs as an AWS Batch job (`AWS_BATCH_JOB_ID` set).
pub fn under_batch() -> bool {
    var(env::AWS_BATCH_JOB_ID).is_some()
}

/// The job and attempt naming the scratch directory: `AWS_BATCH_JOB_ID` and
/// `AWS_BATCH_JOB_ATTEMPT` when set (under AWS Batch), else `local_id` and attempt 1.
///
/// # Errors
/// A usage error for a job id that cannot name a directory or an attempt that is not a
/// number from 1.
pub fn job_identity(local_id: &str) -> Result<(JobId, Attempt), biojob_pipeline::Error> {
    let id = var(env::AWS_BATCH_JOB_ID).unwrap_or_else(|| local_id.to_owned());
    let job_id = JobId::new(&id)?;
    let attempt = match var(env::AWS_BATCH_JOB_ATTEMPT) {
        Some(text) => Attempt::parse(&text)?,
        None => Attempt::FIRST,
    };
    Ok((job_id, attempt))
}

/// `$XDG_CACHE_HOME/biojob`, else `$HOME/.cache/biojob`: the default cache directory.
pub fn default_cache_dir() -> Option<Utf8PathBuf> {
    if let Some(base) = var(env::XDG_CACHE_HOME) {
        return Some(Utf8PathBuf::from(base).join("biojob"));
    }
    var(env::HOME).map(|home| Utf8PathBuf::from(home).join(".cache").join("biojob"))
}
