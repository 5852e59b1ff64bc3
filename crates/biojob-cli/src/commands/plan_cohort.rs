//! `biojob plan-cohort`: a cohort's samples and lanes, for the execution input.

use biojob_pipeline::env;
use biojob_storage::Stores;
use clap::Args;

use crate::failure::Failure;
use crate::job::read_sheet;

#[derive(Debug, Args)]
pub struct PlanCohortArgs {
    /// The cohort's sample sheet (a path, file:// or s3:// URI): its location goes into the
    /// execution input as it is given, so give the one the jobs will read.
    #[arg(long, env = env::SAMPLESHEET)]
    pub samplesheet: String,
}

/// Reads and checks the sheet (every rule, and every FASTQ exists) and prints
/// `{"samplesheet": URI, "samples": [{"sample": S, "lanes": [0, 1, …]}, …]}`: the execution
/// input's `params.samplesheet` and `params.samples`, over which the state machine maps
/// (samples in sheet order, each lane by its 0-based index among the sample's rows).
///
/// # Errors
/// When the sheet cannot be read, breaks a rule, or names a FASTQ that does not exist.
pub fn run(args: &PlanCohortArgs, stores: &Stores) -> Result<(), Failure> {
    let sheet = read_sheet(&args.samplesheet, stores)?;
    sheet.check_files(stores)?;
    let samples: Vec<serde_json::Value> = sheet
        .samples
        .iter()
        .map(|sample| {
            serde_json::json!({
                "sample": sample.sample.as_str(),
                "lanes": (0..sample.lanes.len()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let json = serde_json::json!({
        "samplesheet": args.samplesheet,
        "samples": samples,
    });
    #[allow(clippy::print_stdout, reason = "the plan is the command's output")]
    {
        println!("{json}");
    }
    Ok(())
}
