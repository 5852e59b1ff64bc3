//! [`S3Stop`]: what ends the store's waits on the network when the job is stopping.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use biojob_core::ExitClass;
use biojob_storage::{Direction, StorageError};

use crate::client::{Inner, block};

/// How often a waiting call asks whether the job is stopping.
const POLL: Duration = Duration::from_millis(50);

/// The stop the binary's signal handler sets (SIGTERM, SIGINT), as the store sees it.
///
/// Once the stop is seen, a download, a metadata read or a streamed read gives up at once
/// (staging in is of no use to a stopping job); an upload, a creation, a removal or a listing
/// (publishing what a stopped run leaves: its logs, its manifest, the removal of its run lock)
/// may go on for `grace` from the moment one of them first saw the stop, then gives up. Either
/// ends with [`StorageError::Stopped`] of the stop's class. Without an `S3Stop` a call waits as
/// long as the server and the retries take. Design: `docs/s3.md`, "Stopping".
#[derive(Clone)]
pub struct S3Stop {
    check: Arc<dyn Fn() -> Option<(ExitClass, String)> + Send + Sync>,
    grace: Duration,
}

impl std::fmt::Debug for S3Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Stop")
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl S3Stop {
    /// A stop that `check` reports (asked every 50 ms while a call waits): the stop's exit
    /// class and its reason in words (`SIGTERM received`), or `None` while the job runs.
    pub fn new(
        check: impl Fn() -> Option<(ExitClass, String)> + Send + Sync + 'static,
        grace: Duration,
    ) -> S3Stop {
        S3Stop {
            check: Arc::new(check),
            grace,
        }
    }
}

impl Inner {
    /// Runs `future` (the call `op` on `uri`) to completion on the store's runtime, or gives it
    /// up (dropping it, which aborts its requests) as the store's [`S3Stop`] says.
    ///
    /// # Errors
    /// [`StorageError::Stopped`] when given up; [`StorageError::Remote`] from inside an async
    /// runtime.
    pub(crate) fn wait<F: Future>(
        &self,
        op: &'static str,
        uri: &str,
        direction: Direction,
        future: F,
    ) -> Result<F::Output, StorageError> {
        if self.stop.is_none() {
            return block(&self.handle, direction, future);
        }
        if let Some(stopped) = self.stopped(op, uri, direction) {
            return Err(stopped);
        }
        block(&self.handle, direction, async {
            tokio::select! {
                biased;
                output = future => Ok(output),
                stopped = self.until_stopped(op, uri, direction) => Err(stopped),
            }
        })?
    }

    /// Resolves with the error once the call must give up.
    async fn until_stopped(
        &self,
        op: &'static str,
        uri: &str,
        direction: Direction,
    ) -> StorageError {
        loop {
            tokio::time::sleep(POLL).await;
            if let Some(stopped) = self.stopped(op, uri, direction) {
                return stopped;
            }
        }
    }

    /// The error a call must give up with now, if any.
    fn stopped(&self, op: &'static str, uri: &str, direction: Direction) -> Option<StorageError> {
        let stop = self.stop.as_ref()?;
        let (class, reason) = (stop.check)()?;
        let give_up = match direction {
            Direction::Get => true,
            Direction::Put => self.stop_seen.get_or_init(Instant::now).elapsed() >= stop.grace,
        };
        give_up.then(|| StorageError::Stopped {
            op,
            uri: uri.to_owned(),
            direction,
            class,
            reason,
        })
    }
}
