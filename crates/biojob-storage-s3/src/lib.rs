//! [`S3Store`]: the [`biojob_storage::ObjectStore`] for `s3://` URIs, built on aws-sdk-s3.
//!
//! - Credentials and region: the standard AWS chains (environment, shared profile, web
//!   identity, the ECS task role under AWS Batch, IMDS).
//! - S3-compatible servers: [`S3Options::endpoint_url`] (the binary takes it from
//!   `--endpoint-url` or `AWS_ENDPOINT_URL`), with path-style addressing.
//! - Transfers: parallel ranged GETs and multipart PUTs ([`S3Options::part_size`],
//!   [`S3Options::concurrency`]; the part size grows so 5 TiB fits in 10,000 parts, see
//!   [`part_size_for`]); uploads carry CRC32C (or SHA-256) checksums; downloads are verified
//!   against the size and checksum S3 holds before `<destination>.partial` is renamed.
//! - Streamed reads ([`biojob_storage::ObjectStore::open`]): ranged GETs of [`STREAM_WINDOW`]
//!   fetched ahead in order, the size and stored checksum verified at the last byte; byte
//!   ranges of an object ([`biojob_storage::ObjectStore::open_ranges`]) likewise, each GET
//!   pinned to the ETag the caller's `HEAD` saw, their length verified.
//! - Objects written as they are produced ([`biojob_storage::ObjectStore::create`]): a
//!   multipart upload of parts spooled to scratch, [`WRITE_AHEAD_PARTS`] in flight, completed
//!   and verified only when the writer says so, aborted otherwise.
//! - Retries per request (per part) with exponential backoff and full jitter
//!   ([`RetryPolicy`]) on throttling, 5xx, timeouts, connection resets and short bodies.
//! - SSE-S3 / SSE-KMS ([`Sse`]) and requester pays.
//! - A stop ([`S3Stop`], the job's SIGTERM or SIGINT) ends every wait on the network: staging
//!   in at once, publishing after a grace period.
//!
//! The binary owns the tokio runtime and hands its handle over; this crate never builds one.
//! Design notes: `docs/s3.md`.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use biojob_storage::{ObjectStore, ObjectUri, Stores};
//! use biojob_storage_s3::{S3Options, S3Store};
//!
//! let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
//! let options = S3Options {
//!     endpoint_url: Some("http://127.0.0.1:8333".into()),
//!     ..S3Options::default()
//! };
//! let stores = Stores::with_s3(Arc::new(S3Store::new(runtime.handle().clone(), options)?));
//! let uri = ObjectUri::parse("s3://bucket/samples/NA12878_R1.fastq.gz")?;
//! let report = stores.for_uri(&uri)?.get(&uri, camino::Utf8Path::new("NA12878_R1.fastq.gz"))?;
//! println!("{} bytes, sha256 {}", report.bytes, report.sha256);
//! # Ok(())
//! # }
//! ```

mod checksum;
mod client;
mod download;
mod head;
mod objects;
mod options;
mod parts;
mod ranged;
mod retry;
mod stop;
mod store;
mod stream;
mod upload;
mod writer;

pub use client::TransferStats;
pub use options::{
    ChecksumAlgorithm, DEFAULT_CONCURRENCY, DEFAULT_PART_SIZE, DEFAULT_REQUEST_TIMEOUT,
    MAX_OBJECT_SIZE, MAX_PART_SIZE, MAX_PARTS, MIB, MIN_PART_SIZE, RetryPolicy, S3Options, Sse,
    StaticCredentials, part_size_for,
};
pub use stop::S3Stop;
pub use store::S3Store;
pub use stream::{STREAM_READ_AHEAD, STREAM_WINDOW};
pub use writer::WRITE_AHEAD_PARTS;
