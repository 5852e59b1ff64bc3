//! Where workflow data lives, and how it moves between there and scratch.
//!
//! - [`ObjectUri`]: `s3://bucket/key`, `file:///path` or a plain path.
//! - [`ObjectStore`]: the operations a step needs (head, get, put, open to stream, open byte
//!   ranges to stream, create to write as the bytes are produced), implemented here for the local filesystem by [`LocalStore`] and for
//!   S3 by the `biojob-storage-s3` crate.
//! - [`Stores`]: picks the store for a URI's scheme.
//!
//! Every transfer writes to `<destination>.partial` and renames it into place only when it is
//! complete, so a final name never holds a partial object.
//!
//! ```
//! use biojob_storage::ObjectUri;
//!
//! let uri = ObjectUri::parse("s3://bucket/runs/NA12878 (1).vcf.gz").unwrap();
//! assert_eq!(uri.file_name(), Some("NA12878 (1).vcf.gz"));
//! assert_eq!(uri.join("x").to_string(), "s3://bucket/runs/NA12878 (1).vcf.gz/x");
//! ```

mod error;
mod local;
mod store;
mod uri;

pub use error::{Direction, StorageError};
pub use local::{LocalStore, hex};
pub use store::{
    ObjectMeta, ObjectReader, ObjectStore, ObjectWriter, Stores, StreamFailure, TransferReport,
    check_ranges,
};
pub use uri::ObjectUri;
