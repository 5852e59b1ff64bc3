//! `biojob plan-cohort`: a cohort's samples, their lanes and the lanes' alignment chunks, for
//! the execution input.

use biojob_core::MAX_CHUNKS;
use biojob_pipeline::env;
use biojob_storage::Stores;
use clap::Args;

use crate::args::parse_chunk_pairs;
use crate::failure::{Failure, usage};
use crate::job::read_sheet;

#[derive(Debug, Args)]
pub struct PlanCohortArgs {
    /// The cohort's sample sheet (a path, file:// or s3:// URI): its location goes into the
    /// execution input as it is given, so give the one the jobs will read.
    #[arg(long, env = env::SAMPLESHEET)]
    pub samplesheet: String,
    /// Split each lane whose read 1 FASTQ is larger than this many bytes into ceil(size / B)
    /// chunks, each aligned by its own job [default: no lane is split].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub chunk_bytes: Option<u64>,
    /// Read pairs per block of a split lane: block k of a lane of N chunks goes to its chunk
    /// k mod N (params.chunkPairs; 0, or at least 1000; needed when a lane is split).
    #[arg(long, env = env::BIOJOB_ALIGN_CHUNK_PAIRS, default_value_t = 0, value_parser = parse_chunk_pairs)]
    pub chunk_pairs: u64,
}

/// The number of chunks of a lane whose read 1 FASTQ holds `bytes` bytes, split above
/// `chunk_bytes`: `ceil(bytes / chunk_bytes)`, 1 when it is not larger.
pub fn lane_chunk_count(bytes: u64, chunk_bytes: u64) -> usize {
    usize::try_from(bytes.div_ceil(chunk_bytes.max(1)))
        .unwrap_or(usize::MAX)
        .max(1)
}

/// Reads and checks the sheet (every rule, and every FASTQ exists) and prints the execution
/// input's `params.samplesheet`, `params.chunkPairs` and `params.samples`, over which the state
/// machine maps:
/// `{"samplesheet": URI, "chunkPairs": P, "samples": [{"sample": S, "chunks": [0, …, N-1],
/// "lanes": [{"lane": 0, "chunks": [0]}, {"lane": 1, "chunks": [1, 2]}, …]}, …]}`: samples in
/// sheet order, each lane by its 0-based index among the sample's rows with its chunks,
/// numbered across the sample in sheet order (a lane not split is one chunk), and the sample's
/// chunks. With `--chunk-bytes`, a lane's size is its read 1 FASTQ's (S3 `HEAD`, or the file's).
///
/// # Errors
/// When the sheet cannot be read, breaks a rule, or names a FASTQ that does not exist; a usage
/// failure when a lane is split and `--chunk-pairs` is 0, or a sample would have more than
/// 9999 chunks ([`MAX_CHUNKS`]).
pub fn run(args: &PlanCohortArgs, stores: &Stores) -> Result<(), Failure> {
    let sheet = read_sheet(&args.samplesheet, stores)?;
    sheet.check_files(stores)?;
    let mut samples = Vec::with_capacity(sheet.samples.len());
    let mut split = None;
    for sample in &sheet.samples {
        let mut next = 0;
        let mut lanes = Vec::with_capacity(sample.lanes.len());
        for (index, lane) in sample.lanes.iter().enumerate() {
            let count = match args.chunk_bytes {
                None => 1,
                Some(chunk_bytes) => {
                    let store = stores.for_uri(&lane.fastq_1).map_err(pipeline_error)?;
                    let bytes = store
                        .head(&lane.fastq_1)
                        .map_err(pipeline_error)?
                        .map_or(0, |meta| meta.size);
                    lane_chunk_count(bytes, chunk_bytes)
                }
            };
            if count > 1 && split.is_none() {
                split = Some((sample.sample.clone(), lane.lane.clone()));
            }
            lanes.push(serde_json::json!({
                "lane": index,
                "chunks": (next..next + count).collect::<Vec<_>>(),
            }));
            next += count;
        }
        if next > MAX_CHUNKS {
            return Err(usage(
                format!(
                    "sample {} would have {next} chunks: at most {MAX_CHUNKS} (chunk names have four digits)",
                    sample.sample
                ),
                "give a larger --chunk-bytes",
            ));
        }
        samples.push(serde_json::json!({
            "sample": sample.sample.as_str(),
            "chunks": (0..next).collect::<Vec<_>>(),
            "lanes": lanes,
        }));
    }
    if let Some((sample, lane)) = split
        && args.chunk_pairs == 0
    {
        return Err(usage(
            format!(
                "lane {lane} of sample {sample} is larger than --chunk-bytes and is split, and --chunk-pairs (BIOJOB_ALIGN_CHUNK_PAIRS) is 0"
            ),
            "give --chunk-pairs, the read pairs per block dealt to a lane's chunks (a multiple of bwa's batch: docs/scaling.md)",
        ));
    }
    let json = serde_json::json!({
        "samplesheet": args.samplesheet,
        "chunkPairs": args.chunk_pairs,
        "samples": samples,
    });
    #[allow(clippy::print_stdout, reason = "the plan is the command's output")]
    {
        println!("{json}");
    }
    Ok(())
}

fn pipeline_error(error: biojob_storage::StorageError) -> Failure {
    Failure::Pipeline(error.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lane_is_split_into_ceil_size_over_chunk_bytes_chunks() {
        assert_eq!(lane_chunk_count(0, 100), 1);
        assert_eq!(lane_chunk_count(100, 100), 1);
        assert_eq!(lane_chunk_count(101, 100), 2);
        assert_eq!(lane_chunk_count(250, 100), 3);
        assert_eq!(lane_chunk_count(300, 100), 3);
    }
}
