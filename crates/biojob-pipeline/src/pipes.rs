//! Inputs a tool reads once, from first byte to last, through a named pipe fed from their
//! object store as the tool reads: no copy in scratch ([`InputPipes`]).

use std::fs::OpenOptions;
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::thread::JoinHandle;
use std::time::Duration;

use biojob_process::CancelToken;
use biojob_storage::{ObjectUri, StreamFailure, hex};
use camino::{Utf8Path, Utf8PathBuf};
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use sha2::{Digest, Sha256};

use crate::{Error, StagedInputs, StepContext};

/// The named pipe a step's tool reads input `role` through when the input is streamed from an
/// object store: `<work dir>/<role>.pipe`.
pub fn input_pipe_path(work_dir: &Utf8Path, role: &str) -> Utf8PathBuf {
    work_dir.join(format!("{role}.pipe"))
}

/// The feeds of a step's streamed inputs, one thread and one named pipe each.
pub(crate) struct InputPipes {
    feeds: Vec<Feed>,
}

struct Feed {
    role: String,
    pipe: Utf8PathBuf,
    thread: JoinHandle<Result<u64, FeedError>>,
}

/// Why a feed stopped.
enum FeedError {
    /// The object could not be read whole, or is not the one published: the cause of what
    /// the tool does with a short input.
    Source(Error),
    /// The pipe: its reader went away (the tool stopped), or it could not be made or opened.
    Pipe(io::Error),
}

/// How the feeds ended when no object failed ([`InputPipes::finish`]).
pub(crate) enum Fed {
    /// Every input was read whole by the tool and checked: the bytes streamed in.
    Whole(u64),
    /// The tool stopped reading `role` before its end (it failed, or it should have).
    Unread { role: String, source: io::Error },
}

impl InputPipes {
    /// For each of `roles` that `inputs` holds no local path for (streamed from an object
    /// store, [`crate::Staging::Streamed`]), makes the named pipe [`input_pipe_path`] and starts
    /// the thread that copies the object into it once the tool opens it, hashing the bytes.
    /// The object must be read whole (its size and stored checksum, as
    /// [`biojob_storage::ObjectStore::open`] checks) and, when its publication is known
    /// ([`crate::JobInput::published`]), have the SHA-256 published. When the tool stops
    /// reading an object it had begun to read, the rest of the object is still read (not kept)
    /// unless the step is stopped, so that bytes damaged on the way are reported as such
    /// rather than as the tool's failure. Roles with a local path are left to the tool to read
    /// in place.
    ///
    /// # Errors
    /// [`Error::Io`] when a pipe or a thread cannot be made; a storage error when an object
    /// cannot be opened (input staging class).
    pub(crate) fn start(
        inputs: &StagedInputs,
        roles: &[String],
        context: &StepContext,
    ) -> Result<InputPipes, Error> {
        let mut pipes = InputPipes { feeds: Vec::new() };
        for role in roles {
            if inputs.paths.contains_key(role) {
                continue;
            }
            if let Err(error) = pipes.start_one(inputs, role, context) {
                // The feeds started so far wait for a reader that will not come: let them go.
                let _ = pipes.finish();
                return Err(error);
            }
        }
        Ok(pipes)
    }

    /// Opens `role`'s object, makes its pipe and starts its feed.
    fn start_one(
        &mut self,
        inputs: &StagedInputs,
        role: &str,
        context: &StepContext,
    ) -> Result<(), Error> {
        let uri = inputs.uri(role)?.clone();
        let expected = inputs
            .inputs
            .iter()
            .find(|input| input.role == role)
            .and_then(|input| input.published.clone())
            .map(|published| (published.sha256, published.manifest));
        let reader = context.engine.stores.for_uri(&uri)?.open(&uri)?;
        let failure = reader.failure();
        let pipe = input_pipe_path(&inputs.work_dir, role);
        let _ = std::fs::remove_file(&pipe);
        nix::unistd::mkfifo(pipe.as_std_path(), Mode::S_IRUSR | Mode::S_IWUSR)
            .map_err(|errno| Error::io("making the named pipe", &pipe)(io::Error::from(errno)))?;
        let target = pipe.clone();
        let cancel = context.supervisor.cancel_token().clone();
        let thread = std::thread::Builder::new()
            .name(format!("feed-{role}"))
            .spawn(move || feed(reader, &failure, &uri, expected, &target, &cancel))
            .map_err(Error::io("starting the thread that feeds", &pipe))?;
        self.feeds.push(Feed {
            role: role.to_owned(),
            pipe,
            thread,
        });
        Ok(())
    }

    /// Waits for every feed, once the tool has exited: a feed still waiting for the tool to
    /// open its pipe (the tool stopped first) is let go. The pipes are removed.
    ///
    /// # Errors
    /// The first object's failure (its transfer, or its SHA-256 not the one published): the
    /// step's error, whatever the tool did with what it read.
    pub(crate) fn finish(self) -> Result<Fed, Error> {
        let mut bytes = 0u64;
        let mut unread = None;
        let mut failed = None;
        for feed in self.feeds {
            while !feed.thread.is_finished() {
                // Opening the read end without blocking wakes a writer waiting in `open`;
                // closing it at once makes that writer's first write fail with EPIPE.
                let _ = OpenOptions::new()
                    .read(true)
                    .custom_flags(OFlag::O_NONBLOCK.bits())
                    .open(&feed.pipe);
                std::thread::sleep(Duration::from_millis(5));
            }
            let result = feed.thread.join().unwrap_or_else(|_| {
                Err(FeedError::Pipe(io::Error::other(
                    "the thread feeding it panicked",
                )))
            });
            let _ = std::fs::remove_file(&feed.pipe);
            match result {
                Ok(fed) => bytes += fed,
                Err(FeedError::Source(error)) => {
                    failed.get_or_insert(error);
                }
                Err(FeedError::Pipe(source)) => {
                    unread.get_or_insert((feed.role, source));
                }
            }
        }
        match (failed, unread) {
            (Some(error), _) => Err(error),
            (None, Some((role, source))) => Ok(Fed::Unread { role, source }),
            (None, None) => Ok(Fed::Whole(bytes)),
        }
    }
}

/// Copies `reader` (the object at `uri`) into the pipe at `pipe` once a reader opens it; the
/// bytes copied.
fn feed(
    mut reader: biojob_storage::ObjectReader,
    failure: &StreamFailure,
    uri: &ObjectUri,
    expected: Option<(String, ObjectUri)>,
    pipe: &Utf8Path,
    cancel: &CancelToken,
) -> Result<u64, FeedError> {
    let mut to = OpenOptions::new()
        .write(true)
        .open(pipe)
        .map_err(FeedError::Pipe)?;
    let mut hash = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    let mut bytes = 0u64;
    let source_error = |error: io::Error| {
        FeedError::Source(failure.take().map_or_else(
            || Error::input_io("reading", uri.to_string())(error),
            Error::from,
        ))
    };
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(source_error(error)),
        };
        hash.update(&buffer[..read]);
        if let Err(error) = write_counted(&mut to, &buffer[..read], &mut bytes) {
            // The tool stopped reading: read on (unless stopped, or it never read any of this
            // object) for the transfer's verdict, which comes with the last byte.
            drop(to);
            if bytes == 0 {
                return Err(FeedError::Pipe(error));
            }
            loop {
                if cancel.is_cancelled() {
                    return Err(FeedError::Pipe(error));
                }
                match reader.read(&mut buffer) {
                    Ok(0) => return Err(FeedError::Pipe(error)),
                    Ok(_) => {}
                    Err(read) if read.kind() == io::ErrorKind::Interrupted => {}
                    Err(read) => return Err(source_error(read)),
                }
            }
        }
    }
    if let Some((sha256, manifest)) = expected {
        let found = hex(&hash.finalize());
        if found != sha256 {
            return Err(FeedError::Source(Error::Input {
                message: format!(
                    "{uri} changed after it was published: its SHA-256 is {found}, {manifest} records {sha256}"
                ),
                remedy: Some(
                    "run the step that publishes it again (and the steps after it)".into(),
                ),
            }));
        }
    }
    Ok(bytes)
}

/// Writes all of `data` to `to`, adding to `written` every byte the reader took, even when a
/// later write fails.
fn write_counted(to: &mut std::fs::File, mut data: &[u8], written: &mut u64) -> io::Result<()> {
    while !data.is_empty() {
        match to.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                *written += n as u64;
                data = &data[n..];
            }
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}
