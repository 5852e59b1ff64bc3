//! Integration tests of the `biojob` binary, one test binary for the crate: the workflow and
//! its steps with the real tools on the real NA12878 data (`BIOJOB_TESTDATA`, default
//! `../shared/testdata` beside the repository), failures, scratch space and signals, and the
//! contracts with the templates, buildspecs, pinned tool versions and the documentation.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

mod accounting;
mod aligners;
mod buildspecs;
mod cohort;
mod cohort_jobs;
mod containers;
mod cost;
mod docs;
mod failures;
mod faults;
mod kills;
mod odd_inputs;
mod progress;
mod qc;
mod resume;
mod s3_jobs;
mod scale;
mod scratch;
mod sliced_calls;
mod steps;
mod support;
mod templates;
mod unified;
mod versions;
mod workflow;
