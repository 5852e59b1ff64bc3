//! The S3 store as the binary builds it, and `biojob stage get|put` (`get --regions`: the
//! records of a BAM's regions only).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use biojob_formats::{BamStaging, StoredBam};
use biojob_pipeline::Error;
use biojob_storage::{
    Direction, ObjectMeta, ObjectReader, ObjectStore, ObjectUri, StorageError, Stores,
    TransferReport,
};
use biojob_storage_s3::{ChecksumAlgorithm, RetryPolicy, S3Options, S3Store, Sse};
use camino::Utf8Path;
use tokio::runtime::Handle;

use crate::Failure;
use crate::cli::{ChecksumArg, S3Args, SseArg, StageCommand};

/// The S3 options from flags and the environment.
pub fn options(args: &S3Args) -> S3Options {
    let defaults = RetryPolicy::default();
    S3Options {
        endpoint_url: args.endpoint_url.clone().filter(|url| !url.is_empty()),
        region: args.region.clone().filter(|region| !region.is_empty()),
        force_path_style: args.s3_path_style,
        part_size: args.s3_part_size,
        concurrency: usize::from(args.s3_concurrency),
        checksum: match args.s3_checksum {
            ChecksumArg::Crc32c => ChecksumAlgorithm::Crc32c,
            ChecksumArg::Sha256 => ChecksumAlgorithm::Sha256,
        },
        sse: args.sse.map(|sse| match sse {
            SseArg::Aes256 => Sse::Aes256,
            SseArg::Kms => Sse::Kms {
                key_id: args.sse_kms_key_id.clone().filter(|k| !k.is_empty()),
            },
        }),
        requester_pays: args.requester_pays,
        retry: RetryPolicy {
            max_attempts: args.s3_max_attempts,
            base_delay: args.s3_retry_base_delay,
            max_delay: defaults.max_delay,
        },
        credentials: None,
    }
}

/// The S3 store, built on first use: a run that touches no `s3://` URI never loads AWS
/// configuration (and never looks for a region or credentials).
pub struct LazyS3 {
    handle: Handle,
    options: S3Options,
    store: OnceLock<Result<S3Store, String>>,
}

impl LazyS3 {
    /// A store that will be built with `options` on the runtime behind `handle`.
    pub fn new(handle: Handle, options: S3Options) -> LazyS3 {
        LazyS3 {
            handle,
            options,
            store: OnceLock::new(),
        }
    }

    fn store(&self, uri: &ObjectUri, direction: Direction) -> Result<&S3Store, StorageError> {
        self.store
            .get_or_init(|| {
                S3Store::new(self.handle.clone(), self.options.clone())
                    .map_err(|error| error.to_string())
            })
            .as_ref()
            .map_err(|message| StorageError::Remote {
                op: "configuring S3 for",
                uri: uri.to_string(),
                direction,
                message: message.clone(),
            })
    }
}

impl ObjectStore for LazyS3 {
    fn head(&self, uri: &ObjectUri) -> Result<Option<ObjectMeta>, StorageError> {
        self.store(uri, Direction::Get)?.head(uri)
    }

    fn get(&self, uri: &ObjectUri, destination: &Utf8Path) -> Result<TransferReport, StorageError> {
        self.store(uri, Direction::Get)?.get(uri, destination)
    }

    fn put(&self, source: &Utf8Path, uri: &ObjectUri) -> Result<TransferReport, StorageError> {
        self.store(uri, Direction::Put)?.put(source, uri)
    }

    fn open(&self, uri: &ObjectUri) -> Result<ObjectReader, StorageError> {
        self.store(uri, Direction::Get)?.open(uri)
    }

    fn open_ranges(
        &self,
        uri: &ObjectUri,
        meta: &ObjectMeta,
        ranges: &[std::ops::Range<u64>],
    ) -> Result<ObjectReader, StorageError> {
        self.store(uri, Direction::Get)?
            .open_ranges(uri, meta, ranges)
    }
}

/// Local paths, and `s3://` through the lazily built S3 store.
pub fn stores(handle: Handle, args: &S3Args) -> Stores {
    Stores::with_s3(Arc::new(LazyS3::new(handle, options(args))))
}

fn usage(message: String, remedy: &str) -> Failure {
    Failure::Usage(anyhow::anyhow!(message), Some(remedy.to_owned()))
}

/// `biojob stage get|put SRC DST`: one verified transfer; prints its size, time, rate,
/// SHA-256 and the checksum verified.
pub fn stage(command: StageCommand, stores: &Stores) -> Result<(), Failure> {
    let started = Instant::now();
    let (what, report) = match command {
        StageCommand::Get {
            source,
            destination,
            regions,
        } => {
            let uri = ObjectUri::parse(&source)
                .map_err(|e| usage(e.to_string(), "give s3://bucket/key, file:// or a path"))?;
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
            let mut uri = ObjectUri::parse(&destination)
                .map_err(|e| usage(e.to_string(), "give s3://bucket/key, file:// or a path"))?;
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
                    error.to_string(),
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
