//! The run lock: one run at a time writes into a run's output directory
//! (`<output prefix>/<sample>/<run id>/`), whatever scratch root each uses.
//!
//! The lock is an object in the output directory, [`LOCK_NAME`], created only when none is
//! there ([`biojob_storage::ObjectStore::create_new`]: `O_EXCL` locally, `If-None-Match: *` on
//! S3), holding a [`LockRecord`]. The holder rewrites it every [`RENEW_EVERY`] and removes it
//! when the run ends. A lock found in place is stale, and taken over, when its holder
//! provably cannot be running: a process on this machine (same boot id) that no longer
//! exists, an earlier attempt of the same AWS Batch job, or a record not renewed for
//! [`LEASE`]. Otherwise the run is refused (usage class). docs/reliability.md says why.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

use biojob_scratch::{Attempt, JobId};
use biojob_storage::{ObjectUri, Stores};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::Error;
use crate::manifest::{error_chain, timestamp};

/// The lock object's name in the output directory.
pub const LOCK_NAME: &str = ".biojob-run.lock";

/// How often the holder rewrites its record.
pub const RENEW_EVERY: Duration = Duration::from_secs(60);

/// How long a record not renewed keeps its run's lock: ten renewals missed.
pub const LEASE: Duration = Duration::from_secs(600);

/// What the lock object holds (JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LockRecord {
    /// The run id.
    pub run_id: String,
    /// The holder's job id (`AWS_BATCH_JOB_ID`, else the run id) and attempt.
    pub job_id: String,
    /// The attempt.
    pub attempt: u32,
    /// The holder's process id.
    pub pid: u32,
    /// The kernel's boot id of the holder's machine (`/proc/sys/kernel/random/boot_id`).
    pub boot_id: String,
    /// The holder's host name.
    pub host: String,
    /// A random token naming this hold.
    pub token: String,
    /// When the lock was taken, RFC 3339.
    pub acquired_at: String,
    /// When the record was last written, in seconds since the Unix epoch.
    pub renewed_unix_seconds: u64,
}

/// The lock, held until [`RunLock::release`] or drop.
pub struct RunLock {
    uri: ObjectUri,
    stores: Stores,
    stop: Arc<(Mutex<bool>, Condvar)>,
    renewer: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for RunLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunLock").field("uri", &self.uri).finish()
    }
}

fn unix_seconds(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn read_trimmed(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|text| text.trim().to_owned())
        .unwrap_or_default()
}

/// Whether process `pid` exists on this machine.
fn process_exists(pid: u32) -> bool {
    std::path::Path::new("/proc").join(pid.to_string()).exists()
}

impl LockRecord {
    fn ours(run_id: &str, job_id: &JobId, attempt: Attempt) -> LockRecord {
        let now = SystemTime::now();
        let token = format!(
            "{:08x}{:08x}",
            std::process::id(),
            now.duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos())
        );
        LockRecord {
            run_id: run_id.to_owned(),
            job_id: job_id.to_string(),
            attempt: attempt.get(),
            pid: std::process::id(),
            boot_id: read_trimmed("/proc/sys/kernel/random/boot_id"),
            host: read_trimmed("/proc/sys/kernel/hostname"),
            token,
            acquired_at: timestamp(now),
            renewed_unix_seconds: unix_seconds(now),
        }
    }

    /// Why this lock's holder cannot be running any more, seen from `us`, or `None` when it
    /// may be.
    fn stale_because(&self, us: &LockRecord, now: SystemTime) -> Option<String> {
        if !self.boot_id.is_empty() && self.boot_id == us.boot_id && !process_exists(self.pid) {
            return Some(format!(
                "its process {} on this machine no longer exists",
                self.pid
            ));
        }
        if self.job_id == us.job_id && self.attempt < us.attempt {
            return Some(format!(
                "it is held by attempt {} of this AWS Batch job, and attempt {} runs",
                self.attempt, us.attempt
            ));
        }
        let idle = unix_seconds(now).saturating_sub(self.renewed_unix_seconds);
        (idle > LEASE.as_secs()).then(|| {
            format!(
                "it was last renewed {idle} s ago (a holder renews it every {} s)",
                RENEW_EVERY.as_secs()
            )
        })
    }

    /// Who holds it, in words.
    fn holder(&self, us: &LockRecord) -> String {
        let place = if self.boot_id == us.boot_id {
            "on this machine".to_owned()
        } else {
            format!("on host {}", self.host)
        };
        format!(
            "process {} {place} (job {}, attempt {}), since {}",
            self.pid, self.job_id, self.attempt, self.acquired_at
        )
    }

    fn to_json(&self) -> Vec<u8> {
        let mut json = serde_json::to_vec_pretty(self).unwrap_or_default();
        json.push(b'\n');
        json
    }
}

impl RunLock {
    /// Takes the lock of the run `run_id` writing into `output_dir`; see the module
    /// documentation.
    ///
    /// # Errors
    /// [`Error::Usage`] when another run holds it (naming the holder, and how to remove a
    /// lock left behind); a storage error (output staging class) when the lock cannot be
    /// written or read.
    pub fn acquire(
        stores: &Stores,
        output_dir: &ObjectUri,
        run_id: &str,
        job_id: &JobId,
        attempt: Attempt,
    ) -> Result<RunLock, Error> {
        let uri = output_dir.join(LOCK_NAME);
        let store = stores.for_uri(&uri)?;
        let ours = LockRecord::ours(run_id, job_id, attempt);
        // Two tries: the second after removing a stale lock.
        for _ in 0..2 {
            if store.create_new(&ours.to_json(), &uri)? {
                info!(lock = %uri, "took the run lock");
                return Ok(RunLock::held(stores, uri, ours));
            }
            let found = crate::cache::read_json::<LockRecord>(stores, &uri)?;
            let Some(found) = found else {
                // Removed in between (the holder finished), or not a lock record.
                if store.head(&uri)?.is_none() {
                    continue;
                }
                return Err(Error::Usage {
                    message: format!(
                        "the output directory {output_dir} holds a run lock {uri} that is not a \
                         biojob lock record"
                    ),
                    remedy: Some(format!("remove {uri} if no run is writing there")),
                });
            };
            match found.stale_because(&ours, SystemTime::now()) {
                Some(reason) => {
                    warn!(lock = %uri, holder = %found.holder(&ours), %reason, "taking over a stale run lock");
                    // Remove it only if it is still the one read.
                    let again = crate::cache::read_json::<LockRecord>(stores, &uri)?;
                    if again.as_ref().map(|r| &r.token) == Some(&found.token) {
                        store.delete(&uri)?;
                    }
                }
                None => {
                    return Err(Error::Usage {
                        message: format!(
                            "run {run_id} is already writing to {output_dir}: its lock {uri} is \
                             held by {}",
                            found.holder(&ours)
                        ),
                        remedy: Some(format!(
                            "wait for that run to end, or give another --run-id; a lock left by \
                             a run that can no longer end is taken over once not renewed for {} \
                             min, or remove {uri}",
                            LEASE.as_secs() / 60
                        )),
                    });
                }
            }
        }
        Err(Error::Usage {
            message: format!("another run took the lock {uri} of {output_dir} at the same time"),
            remedy: Some("give another --run-id".into()),
        })
    }

    fn held(stores: &Stores, uri: ObjectUri, record: LockRecord) -> RunLock {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let renewer = {
            let (stores, uri, stop) = (stores.clone(), uri.clone(), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("biojob-run-lock".into())
                .spawn(move || renew(&stores, &uri, record, &stop))
                .ok()
        };
        RunLock {
            uri,
            stores: stores.clone(),
            stop,
            renewer,
        }
    }

    /// Stops renewing and removes the lock.
    pub fn release(mut self) {
        self.stop_renewing();
    }

    fn stop_renewing(&mut self) {
        let Some(renewer) = self.renewer.take() else {
            return;
        };
        let (stopped, wake) = &*self.stop;
        if let Ok(mut stopped) = stopped.lock() {
            *stopped = true;
        }
        wake.notify_all();
        let _ = renewer.join();
        match self
            .stores
            .for_uri(&self.uri)
            .and_then(|s| s.delete(&self.uri))
        {
            Ok(()) => info!(lock = %self.uri, "released the run lock"),
            Err(error) => {
                warn!(lock = %self.uri, error = %error_chain(&error), "could not remove the run lock");
            }
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        self.stop_renewing();
    }
}

/// Rewrites `record` at `uri` every [`RENEW_EVERY`] until told to stop.
fn renew(stores: &Stores, uri: &ObjectUri, mut record: LockRecord, stop: &(Mutex<bool>, Condvar)) {
    let (stopped, wake) = stop;
    let Ok(mut guard) = stopped.lock() else {
        return;
    };
    loop {
        let Ok((next, _)) = wake.wait_timeout_while(guard, RENEW_EVERY, |stopped| !*stopped) else {
            return;
        };
        guard = next;
        if *guard {
            return;
        }
        record.renewed_unix_seconds = unix_seconds(SystemTime::now());
        if let Err(error) = write_over(stores, uri, &record) {
            warn!(lock = %uri, error = %error_chain(&error), "could not renew the run lock");
        }
    }
}

fn write_over(stores: &Stores, uri: &ObjectUri, record: &LockRecord) -> Result<(), Error> {
    let dir = tempfile::tempdir().map_err(Error::io("creating", "a temporary directory"))?;
    let path = camino::Utf8PathBuf::from_path_buf(dir.path().join(LOCK_NAME)).map_err(|p| {
        Error::io("writing", p.to_string_lossy().into_owned())(std::io::Error::other(
            "non-UTF-8 path",
        ))
    })?;
    std::fs::write(&path, record.to_json()).map_err(Error::io("writing", &path))?;
    stores.for_uri(uri)?.put(&path, uri)?;
    Ok(())
}
