//! The `merge` step: `samtools merge` of the chunks' (or a cohort sample's lanes') BAMs into
//! the sample's BAM, with `samtools markdup` when duplicates are marked, indexed as it is
//! written.

use biojob_core::{ReadGroup, SampleId, StepId};
use biojob_formats::{BamRecordCounts, bam_header_summary, count_bam_records};
use biojob_scratch::SpaceNeed;
use biojob_storage::ObjectUri;
use biojob_tools::{SamtoolsMarkdup, SamtoolsMerge, Tool};
use camino::{Utf8Path, Utf8PathBuf};

use crate::pipes::{Fed, InputPipes};
use crate::plan::partial;
use crate::steps::align::{verify_bam, verify_bam_header};
use crate::steps::{
    CountedBam, RunningPlan, Uploaded, UploadedBam, check_records, index_written, place_index,
    plan_shape, sink_or_tool,
};
use crate::{
    CohortMember, Error, Executed, OutputRecord, PlanContext, PlannedCommand, RecordCounts,
    StagedInputs, StepContext, StepDefinition, StepPlan, merge_space_need,
};

/// The `samtools markdup -f` statistics of `sample`'s BAM, beside it: `<sample>.markdup.txt`
/// (its first line is `COMMAND: <samtools path> markdup …`; docs/cohorts.md says what MultiQC
/// makes of it).
pub fn markdup_stats_name(sample: &SampleId) -> String {
    format!("{sample}.markdup.txt")
}

/// The same statistics as JSON, beside them: `<sample>.markdup.json`, in the layout of
/// `samtools markdup --json` (samtools 1.17 and later), which MultiQC reads ([`MarkdupStats`]).
pub fn markdup_json_name(sample: &SampleId) -> String {
    format!("{sample}.markdup.json")
}

/// `samtools markdup -f`'s statistics: one `KEY: value` line each (samtools manual,
/// `samtools-markdup.1`, STATISTICS), serialised with the keys and order of `samtools markdup
/// --json`.
///
/// Why biojob writes the JSON: MultiQC 1.35 finds the text report by its
/// `samtools/markdup_txt` search pattern, `contents: ["^COMMAND:", "samtools markdup"]`, whose
/// `contents` strings are matched literally (not as regular expressions), so no report, whose
/// first line is `COMMAND: …`, ever matches it; its `samtools/markdup_json` pattern
/// (`'"COMMAND":'` and `samtools markdup` in the first 10 lines) finds this file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MarkdupStats {
    /// The command line.
    #[serde(rename = "COMMAND")]
    pub command: String,
    /// Records read.
    #[serde(rename = "READ")]
    pub read: u64,
    /// Records written.
    #[serde(rename = "WRITTEN")]
    pub written: u64,
    /// Records excluded (unmapped, secondary, QC-failed…).
    #[serde(rename = "EXCLUDED")]
    pub excluded: u64,
    /// Records examined.
    #[serde(rename = "EXAMINED")]
    pub examined: u64,
    /// Paired records examined.
    #[serde(rename = "PAIRED")]
    pub paired: u64,
    /// Single records examined.
    #[serde(rename = "SINGLE")]
    pub single: u64,
    /// Duplicate records of pairs.
    #[serde(rename = "DUPLICATE PAIR")]
    pub duplicate_pair: u64,
    /// Duplicate single records.
    #[serde(rename = "DUPLICATE SINGLE")]
    pub duplicate_single: u64,
    /// Of the duplicate pair records, optical ones.
    #[serde(rename = "DUPLICATE PAIR OPTICAL")]
    pub duplicate_pair_optical: u64,
    /// Of the duplicate single records, optical ones.
    #[serde(rename = "DUPLICATE SINGLE OPTICAL")]
    pub duplicate_single_optical: u64,
    /// Duplicate non-primary records.
    #[serde(rename = "DUPLICATE NON PRIMARY")]
    pub duplicate_non_primary: u64,
    /// Of those, optical ones.
    #[serde(rename = "DUPLICATE NON PRIMARY OPTICAL")]
    pub duplicate_non_primary_optical: u64,
    /// Duplicate primary records.
    #[serde(rename = "DUPLICATE PRIMARY TOTAL")]
    pub duplicate_primary_total: u64,
    /// Every duplicate record.
    #[serde(rename = "DUPLICATE TOTAL")]
    pub duplicate_total: u64,
    /// The library's estimated size (molecules).
    #[serde(rename = "ESTIMATED_LIBRARY_SIZE")]
    pub estimated_library_size: u64,
}

impl MarkdupStats {
    /// Parses `samtools markdup -f`'s report: every key above, once, `KEY: value`.
    ///
    /// # Errors
    /// The problem, when a key is missing or given twice, a count is not a whole number, or
    /// the command is not `samtools markdup`'s.
    pub fn parse(text: &str) -> Result<MarkdupStats, String> {
        let mut values = serde_json::Map::new();
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            let (key, value) = line
                .split_once(": ")
                .ok_or_else(|| format!("line {line:?} is not KEY: value"))?;
            let value =
                if key == "COMMAND" {
                    serde_json::Value::from(value)
                } else {
                    serde_json::Value::from(value.trim().parse::<u64>().map_err(|error| {
                        format!("{key} {value:?} is not a whole number: {error}")
                    })?)
                };
            if values.insert(key.to_owned(), value).is_some() {
                return Err(format!("{key} is given twice"));
            }
        }
        let stats: MarkdupStats = serde_json::from_value(serde_json::Value::Object(values))
            .map_err(|error| error.to_string())?;
        if !stats.command.contains("samtools markdup") {
            return Err(format!(
                "the command {:?} is not samtools markdup's",
                stats.command
            ));
        }
        Ok(stats)
    }
}

/// The role of chunk `chunk`'s BAM in a merge job's inputs: `bam.0003`.
pub fn chunk_bam_role(chunk: usize) -> String {
    format!("bam.{chunk:04}")
}

/// The merge step of one sample: the BAMs of its `chunks` alignment chunks, or of a cohort
/// sample's lanes (inputs [`chunk_bam_role`]), into `<sample>.align.bam`, the name an unsplit
/// align writes.
#[derive(Debug, Clone)]
pub struct MergeStep {
    /// The sample.
    pub sample: SampleId,
    /// The merged BAM's `@RG` lines: the one read group every chunk was aligned with, or one
    /// per lane.
    pub read_groups: Vec<ReadGroup>,
    /// How many BAMs: chunks, or lanes.
    pub chunks: usize,
    /// Flag duplicates (`samtools markdup`, per library) in the merged BAM; its inputs went
    /// through `samtools fixmate -m` ([`crate::AlignStep::mark_duplicates`]).
    pub mark_duplicates: bool,
    /// Whether the sample is a cohort's (its task is named after it).
    pub in_cohort: bool,
    /// The chunks' records, summed, as their align tasks counted them while writing them (from
    /// their task records), when every chunk's count is known; `None`: merge counts them
    /// ([`count_bam_records`], one more pass over the chunks, which must then all be staged,
    /// none streamed).
    pub chunk_records: Option<u64>,
    /// Where the merged BAM is uploaded as `samtools` writes it (a job's run prefix on an
    /// object store), never held in scratch; its index and markdup's statistics are the
    /// step's outputs, published after it. `None`: the BAM is written to the work directory
    /// and published by the job.
    pub upload_to: Option<ObjectUri>,
}

impl MergeStep {
    fn markdup_temp(&self, context: &PlanContext<'_>) -> Utf8PathBuf {
        context.work_file(&context.step_file_name(&self.sample, StepId::Merge, None, "markdup-tmp"))
    }

    /// The planned output `index` would have with the BAM among the outputs (BAM 0, BAI 1,
    /// markdup's statistics 2 and 3), as it is: an uploaded BAM is none of them.
    fn output_at(&self, index: usize) -> usize {
        index - usize::from(self.upload_to.is_some())
    }
}

impl StepDefinition for MergeStep {
    fn step(&self) -> StepId {
        StepId::Merge
    }

    fn cohort_member(&self) -> Option<CohortMember> {
        self.in_cohort.then(|| CohortMember::sample(&self.sample))
    }

    fn space_need(&self, staged: u64, inputs: &[(String, u64)]) -> SpaceNeed {
        let bam_bytes: u64 = inputs.iter().map(|(_, size)| size).sum();
        merge_space_need(
            staged,
            bam_bytes,
            self.upload_to.is_some(),
            self.mark_duplicates,
        )
    }

    /// `samtools merge -@ T-1 -c -p -f --write-index -o -##idx##BAM.partial.bai CHUNK…`, biojob
    /// writing its output to `BAM.partial` (or uploading it, [`MergeStep::upload_to`]) and
    /// counting its records on the way; when marking duplicates, `samtools merge -@ T-1 -c -p -u
    /// -o - CHUNK… | samtools markdup -@ T-1 -T TMP -f STATS.partial --write-index -- -
    /// -##idx##BAM.partial.bai`, counted on its way alike (the index is renamed `BAI.partial`
    /// once written): merged first, so that duplicates across
    /// the lanes of one library are found; biojob writes the statistics as JSON too
    /// ([`MarkdupStats`]). A chunk streamed from an object store is read through its named
    /// pipe ([`PlanContext::input_or_pipe`]).
    fn plan(&self, context: &PlanContext<'_>) -> StepPlan {
        let samtools = &context.toolset.samtools;
        let threads = context.threads();
        let bam = context.work_file(&merged_bam_name(&self.sample));
        let bai = Utf8PathBuf::from(format!("{bam}.bai"));
        let index = Some(index_written(&bam));
        let inputs: Vec<Utf8PathBuf> = (0..self.chunks)
            .map(|chunk| context.input_or_pipe(&chunk_bam_role(chunk)))
            .collect();
        let tool = if self.mark_duplicates {
            "markdup"
        } else {
            "merge"
        };
        let plan = StepPlan::new(StepId::Merge, context.resources);
        let plan = match &self.upload_to {
            None => plan
                .note(format!(
                    "biojob writes {tool}'s output to {}, counting its records",
                    partial(&bam)
                ))
                .output(bam.clone()),
            Some(prefix) => plan.note(format!(
                "biojob uploads {tool}'s output to {} as it comes, counting its records",
                prefix.join(bam.file_name().unwrap_or_default())
            )),
        };
        if !self.mark_duplicates {
            let merge = SamtoolsMerge {
                threads: threads.saturating_sub(1),
                inputs,
                output: "-".into(),
                uncompressed: false,
                index,
            }
            .command(samtools);
            return plan.command(Tool::Samtools, merge).output(bai);
        }
        let stats = context.work_file(&markdup_stats_name(&self.sample));
        let stats_json = context.work_file(&markdup_json_name(&self.sample));
        let merge = SamtoolsMerge {
            threads: threads.saturating_sub(1),
            inputs,
            output: "-".into(),
            uncompressed: true,
            index: None,
        }
        .command(samtools);
        let markdup = SamtoolsMarkdup {
            threads: threads.saturating_sub(1),
            temp_prefix: self.markdup_temp(context),
            stats: partial(&stats),
            output: "-".into(),
            index,
        }
        .command(samtools);
        plan.pipeline(vec![
            PlannedCommand::new(Tool::Samtools, merge),
            PlannedCommand::new(Tool::Samtools, markdup),
        ])
        .note("biojob writes samtools markdup's statistics as JSON too, for MultiQC")
        .output(bai)
        .output(stats)
        .output(stats_json)
    }

    /// Runs the plan; the merged BAM gets the checks of an unsplit align's (BGZF EOF block,
    /// `@HD SO:coordinate`, the `@RG` lines of the read groups, `@SQ` equal to the `.fai`)
    /// before it is published (renamed, or its upload completed, after every other output is
    /// in place); markdup's statistics must parse ([`MarkdupStats`]) and name the command.
    /// Record accounting: the BAM's records, counted as biojob writes them, are the sum of the
    /// chunks' records, counted first ([`biojob_formats::count_bam_records`]) unless their
    /// align tasks recorded them; with duplicates marked too, since `samtools markdup` flags
    /// duplicates (0x400) and removes none. Chunks streamed from an object store are fed to
    /// `samtools` through named pipes, each read whole and checked against its publication.
    ///
    /// # Errors
    /// [`Error::Usage`] without chunks; [`Error::Format`] when a chunk is not a complete BAM;
    /// a chunk's transfer or publication error when one failed (whatever `samtools` then
    /// did); [`Error::Process`] when a tool fails ([`Error::ScratchFull`] around it when
    /// scratch is full); [`Error::Verification`] when the merged BAM fails its checks, its
    /// records are not the chunks', or a chunk was not read to its end; the upload's error.
    fn execute(
        &self,
        plan: StepPlan,
        inputs: &StagedInputs,
        context: &StepContext,
    ) -> Result<Executed, Error> {
        if self.chunks == 0 {
            return Err(Error::Usage {
                message: "merge needs at least one BAM".into(),
                remedy: None,
            });
        }
        let reference = inputs.reference()?;
        let threads = context.resources().threads;
        let roles: Vec<String> = (0..self.chunks).map(chunk_bam_role).collect();
        let chunk_records = match self.chunk_records {
            Some(records) => records,
            // Every chunk staged (a streamed one is read once, by samtools).
            None => {
                let mut records = 0u64;
                for role in &roles {
                    records += count_bam_records(inputs.path(role)?, threads)?.records;
                }
                records
            }
        };
        tracing::info!(
            chunks = self.chunks,
            records = chunk_records,
            streamed = roles
                .iter()
                .filter(|r| !inputs.paths.contains_key(*r))
                .count(),
            "merging the chunks' BAMs"
        );
        let outputs =
            if self.mark_duplicates { 4 } else { 2 } - usize::from(self.upload_to.is_some());
        let mut running = RunningPlan::new(plan, outputs)?;
        let bam_name = merged_bam_name(&self.sample);
        let merged = inputs.work_dir.join(&bam_name);
        let bam_partial = partial(&merged);
        let mut stages = running.take()?;
        let Some(last) = stages.pop() else {
            return Err(plan_shape("merge", "samtools merge"));
        };
        let result = (|| {
            let pipes = InputPipes::start(inputs, &roles, context)?;
            let (sink, bam) = match &self.upload_to {
                None => {
                    let (pipe, counted) = CountedBam::start(&bam_partial, threads)?;
                    (pipe, Sink::File(counted))
                }
                Some(prefix) => {
                    let uri = prefix.join(&bam_name);
                    let store = context.engine.stores.for_uri(&uri)?;
                    let (pipe, uploaded) =
                        UploadedBam::start(store, &uri, &inputs.work_dir, threads)?;
                    (pipe, Sink::Object { uploaded, uri })
                }
            };
            stages.push(last.stdout_pipe(sink));
            let piped = context.supervisor.run_pipeline(stages);
            let fed = pipes.finish();
            let written = bam.finish();
            let fed = fed?;
            let (report, (counts, upload)) = sink_or_tool(piped, written)?;
            running.commands.extend(report.stages);
            let streamed_in = match fed {
                Fed::Whole(bytes) => bytes,
                Fed::Unread { role, source } => {
                    return Err(Error::Verification {
                        path: inputs.uri(&role)?.to_string().into(),
                        detail: format!("samtools stopped reading it before its end: {source}"),
                    });
                }
            };
            place_index(&merged, running.partial(self.output_at(1)))?;
            let shown = upload
                .as_ref()
                .map_or(bam_partial.clone(), |(uri, _)| uri.to_string().into());
            check_records(
                &shown,
                counts.records,
                "records",
                chunk_records,
                &format!(
                    "its {} chunks hold {chunk_records}{}",
                    self.chunks,
                    if self.chunk_records.is_some() {
                        " (as their align tasks counted them)"
                    } else {
                        ""
                    }
                ),
            )?;
            match &upload {
                None => verify_bam(&bam_partial, &self.read_groups, reference)?,
                Some((_, uploaded)) => {
                    let header = bam_header_summary(uploaded.head.as_slice(), &shown);
                    verify_bam_header(header, &shown, &self.read_groups, reference)?;
                }
            }
            if self.mark_duplicates {
                write_markdup_json(
                    running.partial(self.output_at(2)),
                    running.partial(self.output_at(3)),
                )?;
            }
            let mut executed = running.finish(RecordCounts {
                bam: Some(counts),
                ..RecordCounts::default()
            })?;
            executed.bytes_streamed_in = streamed_in;
            if let Some((uri, uploaded)) = upload {
                let transfer = uploaded.writer.complete()?;
                executed
                    .published
                    .push(OutputRecord::new(&bam_name, uri.to_string(), &transfer));
            }
            Ok(executed)
        })();
        result.map_err(|error| context.explain_failure(error))
    }
}

/// `<sample>.align.bam`: the name of the merged BAM, an unsplit align's.
fn merged_bam_name(sample: &SampleId) -> String {
    biojob_core::scratch_file_name(sample, StepId::Align, None, "bam")
}

/// Where the merged BAM goes while the tools write it.
enum Sink {
    File(CountedBam),
    Object {
        uploaded: UploadedBam,
        uri: ObjectUri,
    },
}

impl Sink {
    /// The counts, and for an upload the object and what the upload gives back.
    fn finish(self) -> Result<(BamRecordCounts, Option<(ObjectUri, Uploaded)>), Error> {
        match self {
            Sink::File(counted) => Ok((counted.finish()?, None)),
            Sink::Object { uploaded, uri } => {
                let uploaded = uploaded.finish()?;
                Ok((uploaded.counts, Some((uri, uploaded))))
            }
        }
    }
}

/// Reads `samtools markdup -f`'s report at `stats` and writes it as JSON to `json`.
fn write_markdup_json(stats: &Utf8Path, json: &Utf8Path) -> Result<(), Error> {
    let text = std::fs::read_to_string(stats).map_err(Error::io("reading", stats))?;
    let parsed = MarkdupStats::parse(&text).map_err(|detail| Error::Verification {
        path: stats.to_owned(),
        detail: format!("samtools markdup's statistics: {detail}"),
    })?;
    let mut bytes = serde_json::to_vec_pretty(&parsed)
        .map_err(|error| Error::io("serialising", json)(std::io::Error::other(error)))?;
    bytes.push(b'\n');
    std::fs::write(json, bytes).map_err(Error::io("writing", json))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// samtools 1.16's `markdup -f` report of NA12878's test reads.
    const REPORT: &str = "COMMAND: /usr/bin/samtools markdup -@ 1 -T t -f s.markdup.txt - s.bam
READ: 27726
WRITTEN: 27726
EXCLUDED: 276
EXAMINED: 27450
PAIRED: 27202
SINGLE: 248
DUPLICATE PAIR: 670
DUPLICATE SINGLE: 20
DUPLICATE PAIR OPTICAL: 0
DUPLICATE SINGLE OPTICAL: 0
DUPLICATE NON PRIMARY: 0
DUPLICATE NON PRIMARY OPTICAL: 0
DUPLICATE PRIMARY TOTAL: 690
DUPLICATE TOTAL: 690
ESTIMATED_LIBRARY_SIZE: 271547
";

    /// samtools merge killed by SIGPIPE because biojob stopped reading its output.
    fn broken_pipe() -> biojob_process::ProcessError {
        biojob_process::ProcessError::Killed {
            label: "samtools-merge".into(),
            signal: 13,
            signal_name: "SIGPIPE".into(),
            stderr_tail: String::new(),
            report: Box::new(biojob_process::PipelineReport {
                stages: Vec::new(),
                wall: std::time::Duration::ZERO,
            }),
        }
    }

    #[test]
    fn a_sink_that_could_not_write_is_the_cause_of_the_tool_s_broken_pipe() {
        use biojob_core::{Classify, ExitClass};
        use biojob_storage::{Direction, StorageError};
        // A part's spool file on a full scratch (the upload), then the BAM's file (the disk).
        let spool = Error::Storage(StorageError::Io {
            op: "writing",
            path: "/scratch/part.7.spool".into(),
            direction: Direction::Put,
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        });
        let error = sink_or_tool::<()>(Err(broken_pipe()), Err(spool)).unwrap_err();
        assert_eq!(error.to_string(), "writing /scratch/part.7.spool");
        assert_eq!(error.exit_class(), ExitClass::OutputStaging);
        let file = Error::io("writing", "/scratch/S.align.bam.partial")(std::io::Error::from(
            std::io::ErrorKind::StorageFull,
        ));
        let error = sink_or_tool::<()>(Err(broken_pipe()), Err(file)).unwrap_err();
        assert_eq!(error.to_string(), "writing /scratch/S.align.bam.partial");
        // A sink that only saw the BAM end early shows the tool's failure.
        let short = Error::Verification {
            path: "/scratch/S.align.bam.partial".into(),
            detail: "the tool's output is not a complete BAM".into(),
        };
        let error = sink_or_tool::<()>(Err(broken_pipe()), Err(short)).unwrap_err();
        assert_eq!(error.to_string(), "samtools-merge was killed by SIGPIPE");
    }

    #[test]
    fn markdup_statistics_become_samtools_json_layout() {
        let stats = MarkdupStats::parse(REPORT).unwrap();
        assert_eq!(stats.duplicate_total, 690);
        let json = serde_json::to_string_pretty(&stats).unwrap();
        let lines: Vec<&str> = json.lines().collect();
        assert_eq!(
            lines[..3],
            [
                "{",
                "  \"COMMAND\": \"/usr/bin/samtools markdup -@ 1 -T t -f s.markdup.txt - s.bam\",",
                "  \"READ\": 27726,",
            ]
        );
        assert_eq!(lines[16], "  \"ESTIMATED_LIBRARY_SIZE\": 271547");
        assert_eq!(lines.len(), 18);
    }

    #[test]
    fn a_broken_markdup_report_is_refused() {
        let without = REPORT.replace("DUPLICATE TOTAL: 690\n", "");
        assert_eq!(
            MarkdupStats::parse(&without).unwrap_err(),
            "missing field `DUPLICATE TOTAL`"
        );
        assert_eq!(
            MarkdupStats::parse(&REPORT.replace("READ: 27726", "READ: many")).unwrap_err(),
            "READ \"many\" is not a whole number: invalid digit found in string"
        );
        assert_eq!(
            MarkdupStats::parse(&format!("{REPORT}READ: 1\n")).unwrap_err(),
            "READ is given twice"
        );
        assert_eq!(
            MarkdupStats::parse(&REPORT.replace("samtools markdup", "samtools merge")).unwrap_err(),
            "the command \"/usr/bin/samtools merge -@ 1 -T t -f s.markdup.txt - s.bam\" is not samtools markdup's"
        );
    }
}
