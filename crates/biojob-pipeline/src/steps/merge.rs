//! The `merge` step: `samtools merge` of the chunks' (or a cohort sample's lanes') BAMs into
//! the sample's BAM, with `samtools markdup` when duplicates are marked, then `samtools index`.

use biojob_core::{ReadGroup, SampleId, StepId};
use biojob_formats::count_bam_records;
use biojob_scratch::SpaceNeed;
use biojob_tools::{SamtoolsMarkdup, SamtoolsMerge, Tool, samtools_index};
use camino::{Utf8Path, Utf8PathBuf};

use crate::plan::partial;
use crate::steps::align::verify_bam;
use crate::steps::{CountedBam, RunningPlan, check_records, plan_shape};
use crate::{
    CohortMember, Error, Executed, PlanContext, PlannedCommand, RecordCounts, StagedInputs,
    StepContext, StepDefinition, StepPlan, gather_space_need,
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
    /// ([`count_bam_records`], one more pass over the chunks).
    pub chunk_records: Option<u64>,
}

impl MergeStep {
    fn markdup_temp(&self, context: &PlanContext<'_>) -> Utf8PathBuf {
        context.work_file(&context.step_file_name(&self.sample, StepId::Merge, None, "markdup-tmp"))
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
        gather_space_need(staged, bam_bytes.saturating_mul(2))
    }

    /// `samtools merge -@ T-1 -c -p -f -o - CHUNK…`, biojob writing its output to
    /// `BAM.partial` and counting its records on the way, then `samtools index`; when marking
    /// duplicates, `samtools merge -@ T-1 -c -p -u -o - CHUNK… | samtools markdup -@ T-1 -T TMP
    /// -f STATS.partial - -`, counted on its way to `BAM.partial` alike, then `samtools
    /// index`: merged first, so that duplicates across the lanes of one library are found; biojob
    /// writes the statistics as JSON too ([`MarkdupStats`]).
    fn plan(&self, context: &PlanContext<'_>) -> StepPlan {
        let samtools = &context.toolset.samtools;
        let threads = context.threads();
        let bam =
            context.work_file(&context.step_file_name(&self.sample, StepId::Align, None, "bam"));
        let bai = Utf8PathBuf::from(format!("{bam}.bai"));
        let inputs: Vec<Utf8PathBuf> = (0..self.chunks)
            .map(|chunk| context.input(&chunk_bam_role(chunk)))
            .collect();
        let index = samtools_index(
            samtools,
            &partial(&bam),
            &partial(&bai),
            threads.saturating_sub(1),
        );
        let plan = StepPlan::new(StepId::Merge, context.resources).note(format!(
            "biojob counts the chunks' records, then writes {}'s output to {}, counting its records",
            if self.mark_duplicates { "markdup" } else { "merge" },
            partial(&bam)
        ));
        if !self.mark_duplicates {
            let merge = SamtoolsMerge {
                threads: threads.saturating_sub(1),
                inputs,
                output: "-".into(),
                uncompressed: false,
            }
            .command(samtools);
            return plan
                .command(Tool::Samtools, merge)
                .command(Tool::Samtools, index)
                .output(bam)
                .output(bai);
        }
        let stats = context.work_file(&markdup_stats_name(&self.sample));
        let stats_json = context.work_file(&markdup_json_name(&self.sample));
        let merge = SamtoolsMerge {
            threads: threads.saturating_sub(1),
            inputs,
            output: "-".into(),
            uncompressed: true,
        }
        .command(samtools);
        let markdup = SamtoolsMarkdup {
            threads: threads.saturating_sub(1),
            temp_prefix: self.markdup_temp(context),
            stats: partial(&stats),
            output: "-".into(),
        }
        .command(samtools);
        plan.pipeline(vec![
            PlannedCommand::new(Tool::Samtools, merge),
            PlannedCommand::new(Tool::Samtools, markdup),
        ])
        .command(Tool::Samtools, index)
        .note("biojob writes samtools markdup's statistics as JSON too, for MultiQC")
        .output(bam)
        .output(bai)
        .output(stats)
        .output(stats_json)
    }

    /// Runs the plan; the merged BAM gets the checks of an unsplit align's (BGZF EOF block,
    /// `@HD SO:coordinate`, the `@RG` lines of the read groups, `@SQ` equal to the `.fai`)
    /// before it is indexed and renamed; markdup's statistics must parse
    /// ([`MarkdupStats`]) and name the command. Record
    /// accounting: the BAM's records, counted as biojob writes them, are the sum of the
    /// chunks' records, counted first ([`biojob_formats::count_bam_records`]); with duplicates
    /// marked too, since `samtools markdup` flags duplicates (0x400) and removes none.
    ///
    /// # Errors
    /// [`Error::Usage`] without chunks; [`Error::Format`] when a chunk is not a complete BAM;
    /// [`Error::Process`] when a tool fails ([`Error::ScratchFull`] around it when scratch is
    /// full); [`Error::Verification`] when the merged BAM fails its checks or its records are
    /// not the chunks'.
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
        let chunk_records = match self.chunk_records {
            Some(records) => records,
            None => {
                let mut records = 0u64;
                for chunk in 0..self.chunks {
                    let bam = inputs.path(&chunk_bam_role(chunk))?;
                    records += count_bam_records(bam, threads)?.records;
                }
                records
            }
        };
        tracing::info!(
            chunks = self.chunks,
            records = chunk_records,
            "merging the chunks' BAMs"
        );
        let mut running = RunningPlan::new(plan, if self.mark_duplicates { 4 } else { 2 })?;
        let bam_partial = running.partial(0).to_owned();
        let mut stages = running.take()?;
        let Some(last) = stages.pop() else {
            return Err(plan_shape("merge", "samtools merge"));
        };
        let result = (|| {
            let (merged, counted) = CountedBam::start(&bam_partial, threads)?;
            stages.push(last.stdout_pipe(merged));
            let piped = context.supervisor.run_pipeline(stages);
            let written = counted.finish();
            let counts = match (piped, written) {
                (Err(_), Err(error @ Error::Io { .. })) | (Ok(_), Err(error)) => {
                    return Err(error);
                }
                (Err(error), _) => return Err(Error::Process(error)),
                (Ok(report), Ok(counts)) => {
                    running.commands.extend(report.stages);
                    counts
                }
            };
            check_records(
                &bam_partial,
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
            verify_bam(&bam_partial, &self.read_groups, reference)?;
            if self.mark_duplicates {
                write_markdup_json(running.partial(2), running.partial(3))?;
            }
            running.run_next(context)?;
            running.finish(RecordCounts {
                bam: Some(counts),
                ..RecordCounts::default()
            })
        })();
        result.map_err(|error| context.explain_failure(error))
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
