//! Moving files between stores and scratch.

use biojob_storage::{ObjectUri, Stores};
use camino::{Utf8Path, Utf8PathBuf};

use crate::{Error, OutputRecord};

/// The local path of an input: the file itself when it is local (checked readable, never
/// copied), else a copy fetched into `staging_dir`.
///
/// `what` names the input in errors (`FASTQ_1`, `reference`); `remedy` says how to fix a
/// missing one.
///
/// # Errors
/// [`Error::Input`] when a local file is missing or unreadable; a storage error when a fetch
/// fails.
pub fn stage_input(
    stores: &Stores,
    uri: &ObjectUri,
    staging_dir: &Utf8Path,
    what: &str,
    remedy: &str,
) -> Result<Utf8PathBuf, Error> {
    match uri.local_path() {
        Some(path) => {
            check_local_input(path, what, remedy)?;
            Ok(path.to_owned())
        }
        None => {
            let destination = uri.scratch_path(staging_dir)?;
            if let Some(parent) = destination.parent() {
                std::fs::create_dir_all(parent).map_err(Error::io("creating", parent))?;
            }
            stores.for_uri(uri)?.get(uri, &destination)?;
            Ok(destination)
        }
    }
}

/// Checks that the input at `uri` exists (a local file that can be read; an object the
/// store has), without reading it: a run's preflight, before any tool runs.
///
/// # Errors
/// [`Error::Input`] naming `what` and `uri`, with `remedy`, when it is missing or unreadable;
/// a storage error when the store cannot be asked.
pub fn check_input(
    stores: &Stores,
    uri: &ObjectUri,
    what: &str,
    remedy: &str,
) -> Result<(), Error> {
    match uri.local_path() {
        Some(path) => check_local_input(path, what, remedy),
        None => match stores.for_uri(uri)?.head(uri)? {
            Some(_) => Ok(()),
            None => Err(Error::Input {
                message: format!("{what} {uri} does not exist"),
                remedy: Some(remedy.to_owned()),
            }),
        },
    }
}

/// Checks that the local input `path` is a regular file (or a link to one) that can be
/// opened for reading, without blocking ([`biojob_core::open_regular_file`]). A FIFO, a device
/// (`/dev/zero`) or a directory is refused: opening a FIFO waits for a writer, a device never
/// ends.
fn check_local_input(path: &Utf8Path, what: &str, remedy: &str) -> Result<(), Error> {
    match biojob_core::open_regular_file(path.as_std_path()) {
        Ok(_) => Ok(()),
        Err(biojob_core::OpenInputError::NotAFile(kind)) => Err(Error::Input {
            message: format!("{what} {path} is {kind}, not a regular file"),
            remedy: Some(
                "give a regular file (write a pipe's or a device's output to a file first)"
                    .to_owned(),
            ),
        }),
        Err(biojob_core::OpenInputError::Io(error)) => Err(Error::Input {
            message: format!("{what} {path} cannot be read: {error}"),
            remedy: Some(remedy.to_owned()),
        }),
    }
}

/// Publishes the local file `path` to `prefix/<file name>`.
///
/// # Errors
/// A storage error (output staging class).
pub fn publish_file(
    stores: &Stores,
    path: &Utf8Path,
    prefix: &ObjectUri,
) -> Result<OutputRecord, Error> {
    let name = path.file_name().unwrap_or("output");
    let uri = prefix.join(name);
    let report = stores.for_uri(&uri)?.put(path, &uri)?;
    Ok(OutputRecord::new(name, uri.to_string(), &report))
}

/// Publishes every file of `log_dir` to `prefix/logs/`. Used on success and failure alike.
///
/// # Errors
/// The first storage error; the remaining logs are still attempted.
pub fn publish_logs(stores: &Stores, log_dir: &Utf8Path, prefix: &ObjectUri) -> Result<(), Error> {
    let Ok(entries) = std::fs::read_dir(log_dir) else {
        return Ok(());
    };
    let logs = prefix.join("logs");
    let mut first_error = None;
    let mut paths: Vec<Utf8PathBuf> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| Utf8PathBuf::from_path_buf(entry.path()).ok())
        .filter(|path| path.is_file())
        .collect();
    paths.sort();
    for path in paths {
        if let Err(error) = publish_file(stores, &path, &logs) {
            first_error.get_or_insert(error);
        }
    }
    first_error.map_or(Ok(()), Err)
}
