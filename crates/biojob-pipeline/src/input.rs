//! The workflow input: the reference design's Step Functions execution input.
//!
//! ```json
//! {"params": {"queue": "<job queue>",
//!             "environment": {"REFERENCE_NAME": "ref", "SAMPLE_ID": "NA12878",
//!                             "SOURCE_DATA_PREFIX": "/data/samples",
//!                             "JOB_OUTPUT_PREFIX": "/data/results",
//!                             "JOB_AWS_CLI_PATH": "/opt/miniconda/bin"},
//!             "chromosomes": ["chr20", "chr22", "chrM"]}}
//! ```

use std::collections::BTreeMap;

use biojob_core::{ReadGroup, SampleId};
use biojob_storage::{ObjectUri, Stores};
use serde::Deserialize;
use tracing::warn;

use crate::Error;

/// `params.environment` keys biojob reads. `JOB_AWS_CLI_PATH` is accepted and ignored (biojob
/// stages data itself).
pub mod keys {
    /// The sample id; also the FASTQ file name stem.
    pub const SAMPLE_ID: &str = "SAMPLE_ID";
    /// The reference FASTA's name without extension.
    pub const REFERENCE_NAME: &str = "REFERENCE_NAME";
    /// Where the FASTQs (and, by default, the reference) are.
    pub const SOURCE_DATA_PREFIX: &str = "SOURCE_DATA_PREFIX";
    /// Where outputs go: `<prefix>/<sample>/<run id>/`.
    pub const JOB_OUTPUT_PREFIX: &str = "JOB_OUTPUT_PREFIX";
    /// Where the reference is, when not under `SOURCE_DATA_PREFIX`.
    pub const REFERENCE_PREFIX: &str = "REFERENCE_PREFIX";
    /// Read 1, overriding `${SOURCE_DATA_PREFIX}/${SAMPLE_ID}_R1.fastq.gz`.
    pub const FASTQ_1: &str = "FASTQ_1";
    /// Read 2, overriding `${SOURCE_DATA_PREFIX}/${SAMPLE_ID}_R2.fastq.gz`.
    pub const FASTQ_2: &str = "FASTQ_2";
    /// The reference FASTA, overriding the name-based lookup.
    pub const REFERENCE: &str = "REFERENCE";
    /// `@RG ID`; default: the sample id.
    pub const READ_GROUP_ID: &str = "READ_GROUP_ID";
    /// `@RG LB`; default: none.
    pub const READ_GROUP_LIBRARY: &str = "READ_GROUP_LIBRARY";
    /// `@RG PL`; default: `ILLUMINA`.
    pub const READ_GROUP_PLATFORM: &str = "READ_GROUP_PLATFORM";
    /// `@RG PU`; default: none.
    pub const READ_GROUP_PLATFORM_UNIT: &str = "READ_GROUP_PLATFORM_UNIT";
    /// Accepted and ignored.
    pub const JOB_AWS_CLI_PATH: &str = "JOB_AWS_CLI_PATH";

    /// Every key biojob knows.
    pub const ALL: [&str; 13] = [
        SAMPLE_ID,
        REFERENCE_NAME,
        SOURCE_DATA_PREFIX,
        JOB_OUTPUT_PREFIX,
        REFERENCE_PREFIX,
        FASTQ_1,
        FASTQ_2,
        REFERENCE,
        READ_GROUP_ID,
        READ_GROUP_LIBRARY,
        READ_GROUP_PLATFORM,
        READ_GROUP_PLATFORM_UNIT,
        JOB_AWS_CLI_PATH,
    ];
}

/// Reference file extensions tried, in order, after `${REFERENCE_NAME}`.
pub const REFERENCE_EXTENSIONS: [&str; 3] = [".fa", ".fasta", ".fa.gz"];

#[derive(Debug, Deserialize)]
struct ExecutionInput {
    params: Params,
}

#[derive(Debug, Deserialize)]
struct Params {
    #[serde(default)]
    #[allow(
        dead_code,
        reason = "the Batch queue; accepted and ignored when running locally"
    )]
    queue: Option<serde_json::Value>,
    environment: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    chromosomes: Option<Vec<String>>,
}

/// The workflow input with every name resolved to a URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkflowInput {
    /// The sample.
    pub sample: SampleId,
    /// The read group.
    pub read_group: ReadGroup,
    /// Read 1.
    pub fastq_1: ObjectUri,
    /// Read 2.
    pub fastq_2: ObjectUri,
    /// Candidate reference URIs, in the order tried; see [`WorkflowInput::resolve_reference`].
    pub reference_candidates: Vec<ObjectUri>,
    /// The contigs to call, as given (`None`: every contig of the reference).
    pub contigs: Option<Vec<String>>,
    /// The output prefix (`JOB_OUTPUT_PREFIX`).
    pub output_prefix: ObjectUri,
}

fn usage(message: impl Into<String>, remedy: impl Into<String>) -> Error {
    Error::Usage {
        message: message.into(),
        remedy: Some(remedy.into()),
    }
}

impl WorkflowInput {
    /// Parses the execution input JSON.
    ///
    /// File names are built without globs: `${SOURCE_DATA_PREFIX}/${SAMPLE_ID}_R1.fastq.gz`
    /// and `_R2.fastq.gz`, and `${REFERENCE_PREFIX}/${REFERENCE_NAME}` + one of
    /// [`REFERENCE_EXTENSIONS`] (`REFERENCE_PREFIX` defaults to `SOURCE_DATA_PREFIX`);
    /// `FASTQ_1`, `FASTQ_2` and `REFERENCE` override them. Unknown environment keys are
    /// logged and ignored (they may be meant for other containers).
    ///
    /// # Errors
    /// [`Error::Usage`] for malformed JSON, a missing or non-string key, an invalid sample id
    /// or read group value, an empty or duplicated `chromosomes` list.
    pub fn from_json(text: &str) -> Result<WorkflowInput, Error> {
        let input: ExecutionInput = serde_json::from_str(text).map_err(|error| {
            usage(
                format!("the workflow input is not valid: {error}"),
                "give the Step Functions execution input: {\"params\": {\"environment\": {...}, \"chromosomes\": [...]}}",
            )
        })?;
        let environment = input.params.environment;
        let mut values = BTreeMap::new();
        for (key, value) in &environment {
            if !keys::ALL.contains(&key.as_str()) {
                warn!(key, "ignoring an environment key biojob does not use");
                continue;
            }
            let serde_json::Value::String(text) = value else {
                return Err(usage(
                    format!("params.environment.{key} must be a string, found {value}"),
                    "quote the value",
                ));
            };
            values.insert(key.as_str(), text.clone());
        }
        let get = |key: &str| values.get(key).filter(|v| !v.is_empty()).cloned();
        let require = |key: &str| {
            get(key).ok_or_else(|| {
                usage(
                    format!("params.environment.{key} is missing"),
                    format!("add \"{key}\" to params.environment in the input JSON"),
                )
            })
        };
        let sample_text = require(keys::SAMPLE_ID)?;
        let sample = SampleId::new(sample_text)
            .map_err(|error| usage(error.to_string(), "fix SAMPLE_ID in the input JSON"))?;
        let read_group_error = |error: biojob_core::ReadGroupError| {
            usage(
                error.to_string(),
                "fix the READ_GROUP_* values in the input JSON",
            )
        };
        let mut read_group = ReadGroup::for_sample(&sample);
        if let Some(id) = get(keys::READ_GROUP_ID) {
            read_group = read_group.with_id(id).map_err(read_group_error)?;
        }
        if let Some(library) = get(keys::READ_GROUP_LIBRARY) {
            read_group = read_group.with_library(library).map_err(read_group_error)?;
        }
        if let Some(platform) = get(keys::READ_GROUP_PLATFORM) {
            read_group = read_group
                .with_platform(platform)
                .map_err(read_group_error)?;
        }
        if let Some(unit) = get(keys::READ_GROUP_PLATFORM_UNIT) {
            read_group = read_group
                .with_platform_unit(unit)
                .map_err(read_group_error)?;
        }

        let parse = |key: &str, text: &str| {
            ObjectUri::parse(text).map_err(|error| {
                usage(
                    format!("params.environment.{key}: {error}"),
                    "use s3://bucket/key, file:///path or a path",
                )
            })
        };
        let source_prefix = get(keys::SOURCE_DATA_PREFIX)
            .map(|text| parse(keys::SOURCE_DATA_PREFIX, &text))
            .transpose()?;
        let from_source = |key: &str, name: String| -> Result<ObjectUri, Error> {
            match (&get(key), &source_prefix) {
                (Some(text), _) => parse(key, text),
                (None, Some(prefix)) => Ok(prefix.join(&name)),
                (None, None) => Err(usage(
                    format!(
                        "params.environment.{} is missing (needed for {key})",
                        keys::SOURCE_DATA_PREFIX
                    ),
                    format!("add SOURCE_DATA_PREFIX, or give {key} explicitly"),
                )),
            }
        };
        let fastq_1 = from_source(keys::FASTQ_1, format!("{sample}_R1.fastq.gz"))?;
        let fastq_2 = from_source(keys::FASTQ_2, format!("{sample}_R2.fastq.gz"))?;

        let reference_candidates = match get(keys::REFERENCE) {
            Some(text) => vec![parse(keys::REFERENCE, &text)?],
            None => {
                let name = require(keys::REFERENCE_NAME)?;
                let prefix = match get(keys::REFERENCE_PREFIX) {
                    Some(text) => parse(keys::REFERENCE_PREFIX, &text)?,
                    None => source_prefix.clone().ok_or_else(|| {
                        usage(
                            "params.environment.SOURCE_DATA_PREFIX is missing (needed for the reference)",
                            "add SOURCE_DATA_PREFIX or REFERENCE_PREFIX, or give REFERENCE explicitly",
                        )
                    })?,
                };
                let mut names = Vec::new();
                if REFERENCE_EXTENSIONS.iter().any(|ext| name.ends_with(ext)) {
                    names.push(name.clone());
                }
                names.extend(
                    REFERENCE_EXTENSIONS
                        .iter()
                        .map(|ext| format!("{name}{ext}")),
                );
                names.into_iter().map(|n| prefix.join(&n)).collect()
            }
        };
        let output_prefix = parse(keys::JOB_OUTPUT_PREFIX, &require(keys::JOB_OUTPUT_PREFIX)?)?;

        let contigs = match input.params.chromosomes {
            None => None,
            Some(list) if list.is_empty() => {
                return Err(usage(
                    "params.chromosomes is empty",
                    "list the contigs to call, or leave the key out to call every contig",
                ));
            }
            Some(list) => {
                let mut seen = std::collections::BTreeSet::new();
                if let Some(duplicate) = list.iter().find(|c| !seen.insert(c.as_str())) {
                    return Err(usage(
                        format!("params.chromosomes lists {duplicate:?} twice"),
                        "list each contig once",
                    ));
                }
                Some(list)
            }
        };

        Ok(WorkflowInput {
            sample,
            read_group,
            fastq_1,
            fastq_2,
            reference_candidates,
            contigs,
            output_prefix,
        })
    }

    /// The first reference candidate that exists.
    ///
    /// # Errors
    /// [`Error::Input`] listing every URI tried when none exists.
    pub fn resolve_reference(&self, stores: &Stores) -> Result<ObjectUri, Error> {
        for candidate in &self.reference_candidates {
            if stores.for_uri(candidate)?.head(candidate)?.is_some() {
                return Ok(candidate.clone());
            }
        }
        let tried: Vec<String> = self
            .reference_candidates
            .iter()
            .map(ToString::to_string)
            .collect();
        Err(Error::Input {
            message: format!("reference not found; tried {}", tried.join(", ")),
            remedy: Some(
                "check REFERENCE_NAME and REFERENCE_PREFIX (or SOURCE_DATA_PREFIX), or give REFERENCE explicitly"
                    .into(),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INPUT: &str = r#"{"params": {"queue": "arn:aws:batch:us-east-1:1:job-queue/q",
        "environment": {"REFERENCE_NAME": "ref", "SAMPLE_ID": "NA12878",
                        "SOURCE_DATA_PREFIX": "/data/in", "JOB_OUTPUT_PREFIX": "s3://out/runs",
                        "JOB_AWS_CLI_PATH": "/opt/miniconda/bin"},
        "chromosomes": ["chr20", "chrM"]}}"#;

    #[test]
    fn reference_design_input() {
        let input = WorkflowInput::from_json(INPUT).unwrap();
        assert_eq!(input.sample.as_str(), "NA12878");
        assert_eq!(input.fastq_1.to_string(), "/data/in/NA12878_R1.fastq.gz");
        assert_eq!(input.fastq_2.to_string(), "/data/in/NA12878_R2.fastq.gz");
        let candidates: Vec<String> = input
            .reference_candidates
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            candidates,
            [
                "/data/in/ref.fa",
                "/data/in/ref.fasta",
                "/data/in/ref.fa.gz"
            ]
        );
        assert_eq!(input.output_prefix.to_string(), "s3://out/runs");
        assert_eq!(input.contigs, Some(vec!["chr20".into(), "chrM".into()]));
        assert_eq!(
            input.read_group.to_header_line(),
            "@RG\tID:NA12878\tSM:NA12878\tPL:ILLUMINA"
        );
    }

    #[test]
    fn overrides_and_read_group() {
        let input = WorkflowInput::from_json(
            r#"{"params": {"environment": {"SAMPLE_ID": "S", "JOB_OUTPUT_PREFIX": "o",
                "FASTQ_1": "file:///x/a 1.fq", "FASTQ_2": "/x/a 2.fq", "REFERENCE": "/r/g.fasta",
                "READ_GROUP_LIBRARY": "lib \"1\"", "OTHER": "x"}}}"#,
        )
        .unwrap();
        assert_eq!(input.fastq_1.to_string(), "/x/a 1.fq");
        assert_eq!(input.reference_candidates.len(), 1);
        assert_eq!(input.contigs, None);
        assert_eq!(input.read_group.library.as_deref(), Some("lib \"1\""));
    }

    #[test]
    fn errors_name_the_key() {
        let error = |json: &str| WorkflowInput::from_json(json).unwrap_err().to_string();
        assert_eq!(
            error(r#"{"params": {"environment": {"SAMPLE_ID": "S"}}}"#),
            "params.environment.SOURCE_DATA_PREFIX is missing (needed for FASTQ_1)"
        );
        assert_eq!(
            error(r#"{"params": {"environment": {"SOURCE_DATA_PREFIX": "/d"}}}"#),
            "params.environment.SAMPLE_ID is missing"
        );
        assert_eq!(
            error(r#"{"params": {"environment": {"SAMPLE_ID": 7}}}"#),
            "params.environment.SAMPLE_ID must be a string, found 7"
        );
        assert_eq!(
            error(
                r#"{"params": {"environment": {"SAMPLE_ID": "S", "SOURCE_DATA_PREFIX": "/d",
                "REFERENCE_NAME": "r", "JOB_OUTPUT_PREFIX": "/o"}, "chromosomes": ["1", "1"]}}"#
            ),
            "params.chromosomes lists \"1\" twice"
        );
        assert!(error("{").starts_with("the workflow input is not valid: "));
    }
}
