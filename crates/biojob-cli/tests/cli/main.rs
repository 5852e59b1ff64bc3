//! Integration tests of the `biojob` binary with the real tools on the real NA12878 data
//! (`BIOJOB_TESTDATA`, default `../shared/testdata` beside the repository).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::print_stdout,
    missing_docs
)]

mod failures;
mod qc;
mod steps;
mod support;
mod workflow;
