//! Object URIs.

use std::fmt;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::StorageError;

/// Where an object lives: an S3 object or a local file.
///
/// Parsed from `s3://bucket/key`, `file:///absolute/path` or a plain path. The S3 key is
/// everything after the first `/` following the bucket, taken byte for byte (spaces, unicode and
/// `()+#=&?` are part of the key, as in the AWS CLI); a `file://` URI's path is likewise taken
/// verbatim (no percent-decoding).
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
    /// [`StorageError::InvalidUri`] for an empty string, an `s3://` URI without a bucket,
    /// another scheme (`gs://`, `http://`, …), or a text that starts like a URI but is not one
    /// (`file:out`, `file://rel/x`, `s3:b/k`: a local path of that name is almost never meant,
    /// and would create a folder called `file:out`); [`StorageError::UnsafeKey`] for an S3
    /// bucket or key with a `.`, `..` or empty segment (a trailing `/` ends a prefix and is
    /// allowed).
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
            if bucket == "." || bucket == ".." {
                return Err(unsafe_key(text, format!("the bucket name is '{bucket}'")));
            }
            let key_segments = key.strip_suffix('/').unwrap_or(key);
            if !key.is_empty()
                && let Some(what) = unsafe_segment(key_segments)
            {
                return Err(unsafe_key(text, format!("the key has {what}")));
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
            if !path.starts_with('/') {
                return Err(invalid(NOT_A_FILE_URI));
            }
            return Ok(ObjectUri::Local(Utf8PathBuf::from(path)));
        }
        if text.starts_with("file:") {
            return Err(invalid(NOT_A_FILE_URI));
        }
        if text.starts_with("s3:") {
            return Err(invalid(
                "an S3 URI is s3://bucket/key (two slashes after s3:); for a local file whose \
                 name starts with s3: write ./s3:...",
            ));
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
    /// object's staged copy in scratch; `root/local/<path>` for a local file).
    ///
    /// # Errors
    /// [`StorageError::UnsafeKey`] when a key or path segment is `..` or `.`, or is empty (a
    /// key that is empty or ends with `/` names a prefix, not an object), so that the path
    /// would escape `root` or be ambiguous.
    pub fn scratch_path(&self, root: &Utf8Path) -> Result<Utf8PathBuf, StorageError> {
        let (bucket, key, what) = match self {
            ObjectUri::S3 { bucket, key } => (bucket.as_str(), key.as_str(), "the key"),
            ObjectUri::Local(path) => ("local", path.as_str().trim_start_matches('/'), "the path"),
        };
        if bucket == "." || bucket == ".." {
            return Err(unsafe_key(
                &self.to_string(),
                format!("the bucket name is '{bucket}'"),
            ));
        }
        if let Some(problem) = unsafe_segment(key) {
            return Err(unsafe_key(
                &self.to_string(),
                format!("{what} has {problem}"),
            ));
        }
        let mut path = root.join(bucket);
        path.extend(key.split('/'));
        Ok(path)
    }
}

/// The reason given for `file:` texts that are not `file:///absolute/path`.
const NOT_A_FILE_URI: &str = "a file URI is file:///absolute/path (three slashes); \
                              for a relative path give the path itself (./file:... for a file \
                              whose name starts with file:)";

/// The first segment of the `/`-separated `key` that a file system would not keep as a name of
/// its own, in words: `..` (the parent), `.` (the same directory) or an empty segment (a
/// leading `/`, two `/` in a row, a trailing `/`, or an empty key); `None` when there is none.
fn unsafe_segment(key: &str) -> Option<&'static str> {
    key.split('/').find_map(|segment| match segment {
        "" => Some("an empty segment (a leading or trailing '/', or '//')"),
        "." => Some("a '.' segment"),
        ".." => Some("a '..' segment"),
        _ => None,
    })
}

fn unsafe_key(uri: &str, what: String) -> StorageError {
    StorageError::UnsafeKey {
        uri: uri.to_owned(),
        what,
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
    use biojob_core::{Classify, ExitClass};

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
        assert_eq!(
            ObjectUri::parse("s3://b/a/..x/x..")
                .unwrap()
                .scratch_path(root)
                .unwrap(),
            "/scratch/in/b/a/..x/x.."
        );
        // A prefix parses (a trailing '/' ends it), but is not an object to stage.
        for (prefix, shown) in [
            ("s3://b/", "s3://b/"),
            ("s3://b", "s3://b/"),
            ("s3://b/runs/", "s3://b/runs/"),
        ] {
            let error = ObjectUri::parse(prefix)
                .unwrap()
                .scratch_path(root)
                .unwrap_err();
            assert_eq!(
                error.to_string(),
                format!(
                    "{shown}: the key has an empty segment (a leading or trailing '/', or '//'); \
                     S3 keeps '.', '..' and empty segments as they are, a file system does not, \
                     so they are refused"
                ),
            );
            assert_eq!(error.exit_class(), ExitClass::InputInvalid);
        }
        let error = ObjectUri::Local("/data/../etc/passwd".into())
            .scratch_path(root)
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "/data/../etc/passwd: the path has a '..' segment; S3 keeps '.', '..' and empty \
             segments as they are, a file system does not, so they are refused"
        );
    }

    /// Every form of a '.', '..' or empty segment, in a key or a prefix, and a bucket named
    /// '.' or '..', is refused when parsed, with the input class (11): such a URI used as an
    /// input prefix, an output prefix or `biojob stage get` would otherwise reach S3 (10 or 30
    /// after retries) or escape scratch.
    #[test]
    fn dot_segments_and_empty_segments_are_refused_at_parse() {
        let cases = [
            ("s3://b/x/../in", "the key has a '..' segment"),
            ("s3://b/dir/..", "the key has a '..' segment"),
            ("s3://b/dir/../", "the key has a '..' segment"),
            ("s3://b/..", "the key has a '..' segment"),
            ("s3://b/../../etc/passwd", "the key has a '..' segment"),
            ("s3://b/a/./x", "the key has a '.' segment"),
            ("s3://b/./", "the key has a '.' segment"),
            ("s3://b/x/.", "the key has a '.' segment"),
            (
                "s3://b//etc/passwd",
                "the key has an empty segment (a leading or trailing '/', or '//')",
            ),
            (
                "s3://b/x//in",
                "the key has an empty segment (a leading or trailing '/', or '//')",
            ),
            (
                "s3://b/x//",
                "the key has an empty segment (a leading or trailing '/', or '//')",
            ),
            ("s3://../etc/passwd", "the bucket name is '..'"),
            ("s3://./x", "the bucket name is '.'"),
        ];
        for (text, what) in cases {
            let error = ObjectUri::parse(text).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!(
                    "{text}: {what}; S3 keeps '.', '..' and empty segments as they are, a file \
                     system does not, so they are refused"
                ),
                "{text}"
            );
            assert_eq!(error.exit_class(), ExitClass::InputInvalid, "{text}");
        }
        // Local paths keep their '..': they are resolved by the file system that holds them.
        assert_eq!(
            ObjectUri::parse("../data/x.fa").unwrap(),
            ObjectUri::Local("../data/x.fa".into())
        );
        assert_eq!(
            ObjectUri::parse("file:///data/../x.fa").unwrap(),
            ObjectUri::Local("/data/../x.fa".into())
        );
    }

    /// `file:out` once made a folder literally named `file:out`; a text that starts like a file
    /// or S3 URI but is not one is a usage error naming the accepted forms.
    #[test]
    fn texts_that_look_like_uris_but_are_not_are_refused() {
        let file_reason = "a file URI is file:///absolute/path (three slashes); for a relative \
                           path give the path itself (./file:... for a file whose name starts \
                           with file:)";
        for text in [
            "file:out",
            "file:/abs/out",
            "file://rel/out",
            "file://localhost/x",
        ] {
            let error = ObjectUri::parse(text).unwrap_err();
            assert_eq!(
                error.to_string(),
                format!("invalid URI {text:?}: {file_reason}"),
                "{text}"
            );
            assert_eq!(error.exit_class(), ExitClass::Usage);
        }
        for text in ["s3:b/k", "s3:/b/k"] {
            assert_eq!(
                ObjectUri::parse(text).unwrap_err().to_string(),
                format!(
                    "invalid URI {text:?}: an S3 URI is s3://bucket/key (two slashes after s3:); \
                     for a local file whose name starts with s3: write ./s3:..."
                )
            );
        }
        assert_eq!(
            ObjectUri::parse("./file:out").unwrap(),
            ObjectUri::Local("./file:out".into())
        );
        assert_eq!(
            ObjectUri::parse("out/file:x").unwrap(),
            ObjectUri::Local("out/file:x".into())
        );
    }
}
