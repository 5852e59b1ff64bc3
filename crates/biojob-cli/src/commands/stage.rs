//! `biojob stage get|put`: one verified transfer (`get --regions`: the records of a BAM's
//! regions only).

use std::time::Instant;

use biojob_formats::{BamStaging, StoredBam};
use biojob_pipeline::Error;
use biojob_storage::{ObjectStore, ObjectUri, Stores};
use camino::{Utf8Path, Utf8PathBuf};
use clap::Subcommand;

use crate::failure::{Failure, parse_uri, usage};

/// `biojob stage get|put`.
#[derive(Debug, Subcommand)]
pub enum StageCommand {
    /// Download SRC (s3://bucket/key, file:// or a path) to the local file DST (a directory:
    /// DST/<name>), through DST.partial, verified.
    ///
    /// With --regions, SRC is a coordinate-sorted BAM: only the blocks its index (SRC.bai)
    /// says hold the records overlapping the regions are fetched, each checked, and written
    /// as a BAM with the header and those records (DST), indexed (DST.bai). Without a usable
    /// index (missing, or older than the BAM) the whole BAM is fetched, with a warning.
    Get {
        /// The object.
        source: String,
        /// The local file or directory.
        destination: Utf8PathBuf,
        /// A region of the BAM to stage: CONTIG, CONTIG:START-END or CONTIG:START- (1-based,
        /// closed); repeat for more. (`--region` is the AWS region.)
        #[arg(short = 'r', long = "regions", value_name = "REGION")]
        regions: Vec<String>,
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
            regions,
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
            if !regions.is_empty() {
                return stage_regions(store, &uri, &regions, &destination, started);
            }
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

/// `biojob stage get --regions R... SRC DST`: the records of the BAM `uri` overlapping the
/// regions, into `destination` and its index; prints what was fetched.
fn stage_regions(
    store: &dyn ObjectStore,
    uri: &ObjectUri,
    texts: &[String],
    destination: &Utf8Path,
    started: Instant,
) -> Result<(), Failure> {
    let bam = StoredBam::open(store, uri).map_err(Error::from)?;
    let regions = texts
        .iter()
        .map(|text| {
            bam.resolve_region(text).map_err(|error| {
                usage(
                    error,
                    "give CONTIG, CONTIG:START-END or CONTIG:START- with a contig of the BAM",
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let staged = bam
        .stage_regions(&regions, destination)
        .map_err(Error::from)?;
    let how = match &staged.staging {
        BamStaging::Regions => format!("{} byte ranges", staged.ranges.len()),
        BamStaging::Whole { reason } => format!("the whole object: {reason}"),
    };
    #[allow(
        clippy::print_stdout,
        reason = "the command's result, for people and scripts"
    )]
    {
        println!(
            "{uri} {} -> {} and {}: fetched {} of {} bytes ({how}) in {:.3} s",
            texts.join(","),
            staged.bam,
            staged.index,
            staged.bytes_fetched,
            staged.object_bytes,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
