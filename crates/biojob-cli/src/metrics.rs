//! Step metrics as CloudWatch embedded metric format (EMF) log lines.
//!
//! When logs are JSON (under AWS Batch), each step subcommand writes one extra line to stderr
//! as it ends: a JSON object whose `_aws` member tells CloudWatch Logs to turn the named members
//! into metrics (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>).
//! No agent and no `PutMetricData` permission are needed: the job's log group receives the
//! line through the `awslogs` driver and CloudWatch extracts the metrics.
//!
//! | metric | unit | when |
//! |---|---|---|
//! | `StepDuration` | Seconds | always |
//! | `StepFailed` | Count | always (0 or 1) |
//! | `BytesStagedIn` | Bytes | the inputs copied in from stores |
//! | `BytesStagedOut` | Bytes | the step's published outputs (0 for a failed step) |
//! | `ScratchPeakBytes` | Bytes | the peak size of the job's scratch directory |
//!
//! The namespace is `BIOJOB_METRICS_NAMESPACE` (default `biojob`; the stack sets
//! `biojob/<project>`), with one dimension, `Step` (the subcommand: `align`, `call`, `qc`, …).
//! The sample, contig, exit code, Batch job id and attempt ride along as properties, searchable with
//! CloudWatch Logs Insights but not dimensions (they would multiply the metric count).
//! `templates/cfn/biojob.yaml`'s dashboard reads these names.

use std::io::Write;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value, json};

use biojob_pipeline::env;

use crate::environment;

/// The namespace when `BIOJOB_METRICS_NAMESPACE` is unset.
pub const DEFAULT_NAMESPACE: &str = "biojob";

/// Every metric a step line may carry, as the dashboard names them.
#[cfg(test)]
pub const METRIC_NAMES: [&str; 5] = [
    "StepDuration",
    "StepFailed",
    "BytesStagedIn",
    "BytesStagedOut",
    "ScratchPeakBytes",
];

/// What one step reports as it ends.
#[derive(Debug, Clone, PartialEq)]
pub struct StepMetrics<'a> {
    /// The step (`align`, `call`, `qc`, …): the `Step` dimension.
    pub step: &'a str,
    /// The sample.
    pub sample: &'a str,
    /// The contig, for `call`.
    pub contig: Option<&'a str>,
    /// Wall time of the step.
    pub duration: Duration,
    /// The process exit code the step ends with.
    pub exit_code: u8,
    /// Bytes staged in, when known.
    pub bytes_staged_in: Option<u64>,
    /// Bytes staged out, when known.
    pub bytes_staged_out: Option<u64>,
    /// Peak scratch use in bytes, when known.
    pub scratch_peak_bytes: Option<u64>,
}

/// Where the line runs: Batch's job id and attempt, when set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobInfo {
    /// `AWS_BATCH_JOB_ID`.
    pub job_id: Option<String>,
    /// `AWS_BATCH_JOB_ATTEMPT`.
    pub attempt: Option<String>,
}

impl JobInfo {
    /// From the environment.
    pub fn from_env() -> JobInfo {
        JobInfo {
            job_id: environment::var(env::AWS_BATCH_JOB_ID),
            attempt: environment::var(env::AWS_BATCH_JOB_ATTEMPT),
        }
    }
}

/// The EMF object for `metrics`, timestamped `timestamp_ms` (milliseconds since the epoch).
pub fn emf_record(
    metrics: &StepMetrics<'_>,
    namespace: &str,
    timestamp_ms: u64,
    job: &JobInfo,
) -> Value {
    let mut definitions = Vec::new();
    let mut record = Map::new();
    let mut metric = |name: &str, unit: &str, value: Value| {
        definitions.push(json!({"Name": name, "Unit": unit}));
        record.insert(name.to_owned(), value);
    };
    metric(
        "StepDuration",
        "Seconds",
        json!(metrics.duration.as_secs_f64()),
    );
    metric(
        "StepFailed",
        "Count",
        json!(u8::from(metrics.exit_code != 0)),
    );
    if let Some(bytes) = metrics.bytes_staged_in {
        metric("BytesStagedIn", "Bytes", json!(bytes));
    }
    if let Some(bytes) = metrics.bytes_staged_out {
        metric("BytesStagedOut", "Bytes", json!(bytes));
    }
    if let Some(bytes) = metrics.scratch_peak_bytes {
        metric("ScratchPeakBytes", "Bytes", json!(bytes));
    }
    record.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["Step"]],
                "Metrics": definitions,
            }],
        }),
    );
    record.insert("Step".to_owned(), json!(metrics.step));
    record.insert("Sample".to_owned(), json!(metrics.sample));
    if let Some(contig) = metrics.contig {
        record.insert("Contig".to_owned(), json!(contig));
    }
    record.insert("ExitCode".to_owned(), json!(metrics.exit_code));
    if let Some(job_id) = &job.job_id {
        record.insert("JobId".to_owned(), json!(job_id));
    }
    if let Some(attempt) = &job.attempt {
        record.insert("Attempt".to_owned(), json!(attempt));
    }
    Value::Object(record)
}

/// Writes the step's EMF line to stderr when logs are JSON; does nothing otherwise. Called once
/// as each step subcommand ends, success or failure.
pub fn emit_step(metrics: &StepMetrics<'_>) {
    if !crate::logging::json_logs() {
        return;
    }
    let namespace = environment::var(env::BIOJOB_METRICS_NAMESPACE)
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
    let timestamp_ms = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    let record = emf_record(metrics, &namespace, timestamp_ms, &JobInfo::from_env());
    // One write of the whole line, so it is not interleaved with log lines.
    let line = format!("{record}\n");
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_line_names_every_metric_it_carries() {
        let metrics = StepMetrics {
            step: "call",
            sample: "NA12878",
            contig: Some("chr20"),
            duration: Duration::from_millis(12_500),
            exit_code: 21,
            bytes_staged_in: None,
            bytes_staged_out: Some(0),
            scratch_peak_bytes: Some(1 << 30),
        };
        let job = JobInfo {
            job_id: Some("8b1e-job".into()),
            attempt: Some("2".into()),
        };
        let line = emf_record(&metrics, "biojob/demo", 1_700_000_000_000, &job).to_string();
        let parsed: Value = serde_json::from_str(&line).unwrap();
        let directive = &parsed["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(parsed["_aws"]["Timestamp"], 1_700_000_000_000_u64);
        assert_eq!(directive["Namespace"], "biojob/demo");
        assert_eq!(directive["Dimensions"], json!([["Step"]]));
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            [
                "StepDuration",
                "StepFailed",
                "BytesStagedOut",
                "ScratchPeakBytes"
            ]
        );
        // Every metric and dimension named in the directive is a member of the record.
        for name in names.iter().chain(["Step"].iter()) {
            assert!(parsed.get(*name).is_some(), "{name} missing");
        }
        assert_eq!(parsed["StepDuration"], 12.5);
        assert_eq!(parsed["StepFailed"], 1);
        assert_eq!(parsed["Step"], "call");
        assert_eq!(parsed["Contig"], "chr20");
        assert_eq!(parsed["ExitCode"], 21);
        assert_eq!(parsed["JobId"], "8b1e-job");
        assert_eq!(parsed["Attempt"], "2");
        assert!(parsed.get("BytesStagedIn").is_none());
    }

    /// The stack's dashboard reads these metrics where the jobs write them.
    #[test]
    fn dashboard_reads_what_the_jobs_write() {
        let template = include_str!("../../../templates/cfn/biojob.yaml");
        let dashboard = template
            .split("Type: AWS::CloudWatch::Dashboard")
            .nth(1)
            .unwrap();
        assert!(dashboard.contains(r#"- Namespace: !Sub "biojob/${ProjectName}""#));
        for name in METRIC_NAMES {
            assert!(
                dashboard.contains(&format!(r#"["${{Namespace}}", "{name}", "Step", "#)),
                "the dashboard does not show {name} by Step"
            );
        }
        // Each job definition sends its metrics to that namespace.
        let jobs = template.matches("Type: AWS::Batch::JobDefinition").count();
        let namespaced = template
            .matches(r#"{Name: BIOJOB_METRICS_NAMESPACE, Value: !Sub "biojob/${ProjectName}"}"#)
            .count();
        assert_eq!((jobs, namespaced), (4, 4));
        // And no metric is written that the list above does not name.
        let metrics = StepMetrics {
            step: "align",
            sample: "S",
            contig: None,
            duration: Duration::ZERO,
            exit_code: 0,
            bytes_staged_in: Some(1),
            bytes_staged_out: Some(1),
            scratch_peak_bytes: Some(1),
        };
        let record = emf_record(&metrics, DEFAULT_NAMESPACE, 0, &JobInfo::default());
        let written: Vec<&str> = record["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(written, METRIC_NAMES);
    }

    #[test]
    fn success_without_job_info() {
        let metrics = StepMetrics {
            step: "gather",
            sample: "S",
            contig: None,
            duration: Duration::ZERO,
            exit_code: 0,
            bytes_staged_in: Some(0),
            bytes_staged_out: Some(42),
            scratch_peak_bytes: None,
        };
        let parsed = emf_record(&metrics, DEFAULT_NAMESPACE, 0, &JobInfo::default());
        assert_eq!(parsed["StepFailed"], 0);
        assert_eq!(parsed["BytesStagedIn"], 0);
        assert_eq!(parsed["BytesStagedOut"], 42);
        assert!(parsed.get("Contig").is_none());
        assert!(parsed.get("JobId").is_none());
    }
}
