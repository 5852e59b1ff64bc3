//! Object URIs.

use std::fmt;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::{Direction, StorageError};

/// Where an object lives: an S3 object or a local file.
///
/// Parsed from `s3://bucket/key`, `file://<path>` or a plain path. The S3 key is everything after
/// the first `/` following the bucket, taken byte for byte (spaces, unicode and `()+#=&?` are
/// part of the key, as in the AWS CLI); a `file://` URI's path is likewise taken verbatim (no
/// percent-decoding).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(into = "String")]
pub enum ObjectUri {
    /// An S3 object (or a prefix, when used as one).
    S3 {
        /// The bucket name.
        bucket: String,
        /// The key, without a leading `/`; empty for the bucket root.
        key: String,
    },
    /// A local file or directory.
    Local(Utf8PathBuf),
}

impl ObjectUri {
    /// Parses a URI or path.
    ///
    /// # Errors
    /// [`StorageError::InvalidUri`] for an empty string, an `s3://` URI without a bucket, or
    /// another scheme (`gs://`, `http://`, …).
    pub fn parse(text: &str) -> Result<ObjectUri, StorageError> {
        let invalid = |reason: &str| StorageError::InvalidUri {
            uri: text.to_owned(),
            reason: reason.to_owned(),
        };
        if text.is_empty() {
            return Err(invalid("it is empty"));
        }
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid("the bucket name is missing"));
            }
            return Ok(ObjectUri::S3 {
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            });
        }
        if let Some(path) = text.strip_prefix("file://") {
            if path.is_empty() {
                return Err(invalid("the path is missing"));
            }
            return Ok(ObjectUri::Local(Utf8PathBuf::from(path)));
        }
        if let Some((scheme, _)) = text.split_once("://")
            && !scheme.is_empty()
            && scheme.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(invalid(&format!(
                "the {scheme}:// scheme is not supported (use s3://, file:// or a path)"
            )));
        }
        Ok(ObjectUri::Local(Utf8PathBuf::from(text)))
    }

    /// The URI of `name` under this prefix: `s3://b/p` + `x` = `s3://b/p/x`; a trailing `/` on
    /// the prefix is not doubled. `name` may contain `/`.
    pub fn join(&self, name: &str) -> ObjectUri {
        match self {
            ObjectUri::S3 { bucket, key } => {
                let key = if key.is_empty() || key.ends_with('/') {
                    format!("{key}{name}")
                } else {
                    format!("{key}/{name}")
                };
                ObjectUri::S3 {
                    bucket: bucket.clone(),
                    key,
                }
            }
            ObjectUri::Local(path) => ObjectUri::Local(path.join(name)),
        }
    }

    /// The URI of the sidecar named by appending `suffix` to this object's name:
    /// `s3://b/x.bam` + `.bai` = `s3://b/x.bam.bai`.
    pub fn with_suffix(&self, suffix: &str) -> ObjectUri {
        match self {
            ObjectUri::S3 { bucket, key } => ObjectUri::S3 {
                bucket: bucket.clone(),
                key: format!("{key}{suffix}"),
            },
            ObjectUri::Local(path) => {
                ObjectUri::Local(Utf8PathBuf::from(format!("{path}{suffix}")))
            }
        }
    }

    /// The last path segment (after the final `/`), if any.
    pub fn file_name(&self) -> Option<&str> {
        match self {
            ObjectUri::S3 { key, .. } => key.rsplit('/').next().filter(|name| !name.is_empty()),
            ObjectUri::Local(path) => path.file_name(),
        }
    }

    /// The local path, for [`ObjectUri::Local`].
    pub fn local_path(&self) -> Option<&Utf8Path> {
        match self {
            ObjectUri::Local(path) => Some(path),
            ObjectUri::S3 { .. } => None,
        }
    }

    /// `"s3"` or `"file"`.
    pub fn scheme(&self) -> &'static str {
        match self {
            ObjectUri::S3 { .. } => "s3",
            ObjectUri::Local(_) => "file",
        }
    }

    /// The local path of this object under `root` (`root/<bucket>/<key>` for S3, for the
    /// object's staged copy in scratch).
    ///
    /// # Errors
    /// [`StorageError::UnsafeKey`] when a key segment is `..` or `.`, or is empty, so that the
    /// path would escape `root` or be ambiguous.
    pub fn scratch_path(&self, root: &Utf8Path) -> Result<Utf8PathBuf, StorageError> {
        let (bucket, key) = match self {
            ObjectUri::S3 { bucket, key } => (bucket.as_str(), key.as_str()),
            ObjectUri::Local(path) => ("local", path.as_str().trim_start_matches('/')),
        };
        let mut path = root.join(bucket);
        for segment in key.split('/') {
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err(StorageError::UnsafeKey {
                    uri: self.to_string(),
                    direction: Direction::Get,
                });
            }
            path.push(segment);
        }
        Ok(path)
    }
}

impl fmt::Display for ObjectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectUri::S3 { bucket, key } => write!(f, "s3://{bucket}/{key}"),
            ObjectUri::Local(path) => f.write_str(path.as_str()),
        }
    }
}

impl From<ObjectUri> for String {
    fn from(uri: ObjectUri) -> String {
        uri.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suffix_names_the_sidecar() {
        let uri = ObjectUri::parse("s3://b/runs/NA12878 (1).bam").unwrap();
        assert_eq!(
            uri.with_suffix(".bai").to_string(),
            "s3://b/runs/NA12878 (1).bam.bai"
        );
        let path = ObjectUri::parse("/data/x.bam").unwrap();
        assert_eq!(path.with_suffix(".bai").to_string(), "/data/x.bam.bai");
    }

    #[test]
    fn parses_schemes() {
        assert_eq!(
            ObjectUri::parse("s3://b/k/x y+(1)#=&?.fq.gz").unwrap(),
            ObjectUri::S3 {
                bucket: "b".into(),
                key: "k/x y+(1)#=&?.fq.gz".into()
            }
        );
        assert_eq!(
            ObjectUri::parse("s3://b").unwrap(),
            ObjectUri::S3 {
                bucket: "b".into(),
                key: String::new()
            }
        );
        assert_eq!(
            ObjectUri::parse("file:///data/a b").unwrap(),
            ObjectUri::Local("/data/a b".into())
        );
        assert_eq!(
            ObjectUri::parse("rel/x.fa").unwrap(),
            ObjectUri::Local("rel/x.fa".into())
        );
        assert_eq!(
            ObjectUri::parse("gs://b/k").unwrap_err().to_string(),
            "invalid URI \"gs://b/k\": the gs:// scheme is not supported (use s3://, file:// or a path)"
        );
        assert_eq!(
            ObjectUri::parse("s3:///k").unwrap_err().to_string(),
            "invalid URI \"s3:///k\": the bucket name is missing"
        );
    }

    #[test]
    fn joins_and_names() {
        let prefix = ObjectUri::parse("s3://b/runs/").unwrap();
        assert_eq!(
            prefix.join("s/1/x.bam").to_string(),
            "s3://b/runs/s/1/x.bam"
        );
        assert_eq!(
            ObjectUri::parse("s3://b").unwrap().join("x").to_string(),
            "s3://b/x"
        );
        assert_eq!(prefix.file_name(), None);
        assert_eq!(
            ObjectUri::parse("/tmp/o")
                .unwrap()
                .join("s/x.vcf.gz")
                .to_string(),
            "/tmp/o/s/x.vcf.gz"
        );
    }

    #[test]
    fn scratch_paths_never_escape() {
        let root = Utf8Path::new("/scratch/in");
        assert_eq!(
            ObjectUri::parse("s3://b/a/ü x.fq")
                .unwrap()
                .scratch_path(root)
                .unwrap(),
            "/scratch/in/b/a/ü x.fq"
        );
        for bad in [
            "s3://b/../etc/passwd",
            "s3://b//abs",
            "s3://b/a/./x",
            "s3://b/",
        ] {
            let error = ObjectUri::parse(bad)
                .unwrap()
                .scratch_path(root)
                .unwrap_err();
            assert!(matches!(error, StorageError::UnsafeKey { .. }), "{bad}");
        }
    }
}
