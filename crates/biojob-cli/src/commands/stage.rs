//! `biojob stage get|put`: one verified transfer.

use std::time::Instant;

use biojob_pipeline::Error;
use biojob_storage::Stores;
use camino::Utf8PathBuf;
use clap::Subcommand;

use crate::failure::{Failure, parse_uri, usage};

/// `biojob stage get|put`.
#[derive(Debug, Subcommand)]
pub enum StageCommand {
    /// Download SRC (s3://bucket/key, file:// or a path) to the local file DST (a directory:
    /// DST/<name>), through DST.partial, verified.
    Get {
        /// The object.
        source: String,
        /// The local file or directory.
        destination: Utf8PathBuf,
    },
    /// Upload the local file SRC to DST (s3://bucket/key; ending in /: DST<name>), verified.
    Put {
        /// The local file.
        source: Utf8PathBuf,
        /// The object or prefix.
        destination: String,
    },
}

/// `biojob stage get|put SRC DST`: one verified transfer; prints its size, time, rate,
/// SHA-256 and the checksum verified.
pub fn run(command: StageCommand, stores: &Stores) -> Result<(), Failure> {
    let started = Instant::now();
    let (what, report) = match command {
        StageCommand::Get {
            source,
            destination,
        } => {
            let uri = parse_uri(&source, "give s3://bucket/key, file:// or a path")?;
            let destination = if destination.is_dir() {
                let name = uri
                    .file_name()
                    .ok_or_else(|| usage(format!("{uri} has no file name"), "name the file"))?;
                destination.join(name)
            } else {
                destination
            };
            let store = stores.for_uri(&uri).map_err(Error::from)?;
            let report = store.get(&uri, &destination).map_err(Error::from)?;
            (format!("{uri} -> {destination}"), report)
        }
        StageCommand::Put {
            source,
            destination,
        } => {
            let mut uri = parse_uri(&destination, "give s3://bucket/key, file:// or a path")?;
            if destination.ends_with('/') {
                let name = source
                    .file_name()
                    .ok_or_else(|| usage(format!("{source} has no file name"), "name a file"))?;
                uri = uri.join(name);
            }
            if !source.is_file() {
                return Err(usage(
                    format!("{source} is not a readable file"),
                    "give the local file to upload",
                ));
            }
            let store = stores.for_uri(&uri).map_err(Error::from)?;
            let report = store.put(&source, &uri).map_err(Error::from)?;
            (format!("{source} -> {uri}"), report)
        }
    };
    let seconds = started.elapsed().as_secs_f64();
    let mib = report.bytes as f64 / (1024.0 * 1024.0);
    #[allow(
        clippy::print_stdout,
        reason = "the command's result, for people and scripts"
    )]
    {
        println!(
            "{what}: {} bytes in {seconds:.3} s ({:.1} MiB/s), sha256 {}, checksum {}",
            report.bytes,
            if seconds > 0.0 { mib / seconds } else { 0.0 },
            report.sha256,
            report.checksum.as_deref().unwrap_or("none")
        );
    }
    Ok(())
}
