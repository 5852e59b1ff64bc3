//! `biojob run --dry-run`: the plan of a run, printed without running anything.
//!
//! Only the input is read: the tools are named but not run, S3 locations are checked for
//! syntax only, the reference is not opened. Each step's lines are its plan
//! ([`crate::StepDefinition::plan`]) made with placeholder paths and the run's resources:
//! the same plan that runs, and that the cache key hashes.

use std::fmt::Write as _;

use biojob_core::{Contig, ReadGroup, ScatterPlan, Shard};
use biojob_formats::ChunkLayout;
use biojob_storage::ObjectUri;
use biojob_tools::Toolset;

use crate::scheduler::chunk_share;
use crate::{
    AlignStep, CallStep, CohortInput, Error, GatherInputs, GatherStep, MergeStep, PlanContext,
    QcRun, QcStep, ReportStep, Resources, SampleSheet, SampleVcfStep, ScaleOptions, ShardRequest,
    SplitStep, StepDefinition, WorkflowInput, reference_index_plan,
};

/// The plan of a run of `input` with `scale`, as text: the inputs and outputs, the resources,
/// then each step with the command lines it runs.
pub fn render_run_plan(
    input: &WorkflowInput,
    toolset: &Toolset,
    resources: Resources,
    run_id: &str,
    scale: &ScaleOptions,
    validate_fastq: bool,
) -> String {
    let context = PlanContext::placeholders(toolset, resources);
    let sample = &input.sample;
    let mut out = String::new();
    let mut line = |text: &str| {
        out.push_str(text);
        out.push('\n');
    };
    line("dry run: nothing was run or read except the input JSON");
    line(&format!("sample: {sample}"));
    line(&format!(
        "read group: {}",
        input.read_group.to_header_line().replace('\t', "\\t")
    ));
    line(&format!("fastq 1: {}", input.fastq_1));
    line(&format!("fastq 2: {}", input.fastq_2));
    line(&reference_line(&input.reference_candidates));
    line(&format!("outputs: {}", input.output_dir(run_id)));
    line(&resources_line(resources));
    line(
        "placeholders: <scratch> is the run's private scratch directory; <reference>, \
         <fastq_1>, <fastq_2> are the inputs above (copied into it when they are in S3); \
         <bam>, <vcf.NNNN> and the like are earlier steps' outputs; <shard> is a shard's or \
         chunk's number",
    );

    let mut step = 0;
    let mut header = |out: &mut String, text: &str| {
        step += 1;
        let _ = writeln!(out, "\n{step}. {text}");
    };
    header(&mut out, "prepare-reference");
    out.push_str(&reference_index_plan(&context, true).render());

    let align = |chunk: Option<usize>, chunking: Option<ChunkLayout>| AlignStep {
        sample: sample.clone(),
        read_group: input.read_group.clone(),
        chunk,
        chunking,
        validate_fastq,
        lane: None,
        mark_duplicates: false,
    };
    match scale.chunk_layout() {
        None => {
            header(&mut out, "align");
            out.push_str(&align(None, None).plan(&context).render());
        }
        Some(layout) => {
            // As the run takes them: at most one worker per chunk, when their number is known.
            let workers = match layout {
                ChunkLayout::InTurn { chunks, .. } => scale.workers.clamp(1, chunks.get()),
                ChunkLayout::Consecutive { .. } => scale.workers.max(1),
            };
            header(&mut out, "split");
            let split = SplitStep {
                sample: sample.clone(),
                layout,
                upload_to: None,
                lane: None,
            };
            out.push_str(&split.plan(&context).render());
            header(
                &mut out,
                &format!(
                    "align each chunk, {workers} at once (each with {} of the threads and memory)",
                    if workers == 1 { "all" } else { "its share" }
                ),
            );
            let share = PlanContext::placeholders(toolset, chunk_share(resources, workers));
            out.push_str(&align(Some(0), None).plan(&share).render());
            header(&mut out, "merge");
            let merge = MergeStep {
                sample: sample.clone(),
                read_groups: vec![input.read_group.clone()],
                // The chunks a consecutive split writes are known only once it has read the pair.
                chunks: match layout {
                    ChunkLayout::InTurn { chunks, .. } => chunks.get(),
                    ChunkLayout::Consecutive { .. } => 2,
                },
                mark_duplicates: false,
                in_cohort: false,
                chunk_records: None,
                upload_to: None,
            };
            out.push_str(&merge.plan(&context).render());
        }
    }

    let (title, shards) = planned_shards(scale, input.contigs.as_deref(), "call");
    header(&mut out, &title);
    balanced_shards_note(&mut out, scale);
    for (name, shard) in shards {
        let call = CallStep::new(
            sample.clone(),
            ShardRequest::Shard(shard),
            input.min_mapping_quality,
        );
        let _ = writeln!(out, "   [{name}]");
        out.push_str(&call.plan(&context).render());
    }

    header(
        &mut out,
        "gather (the shards' VCFs concatenated in reference order)",
    );
    let gather = GatherStep::new(sample.clone(), GatherInputs::Given(2));
    out.push_str(&gather.plan(&context).render());
    header(&mut out, "qc");
    let qc = QcStep::new(sample.clone(), QcRun::Given(Box::default()));
    out.push_str(&qc.plan(&context).render());
    out
}

/// `reference: …`: the reference's location, or the candidates tried in order.
fn reference_line(candidates: &[ObjectUri]) -> String {
    let candidates: Vec<String> = candidates.iter().map(ToString::to_string).collect();
    match candidates.as_slice() {
        [one] => format!("reference: {one}"),
        many => format!("reference: the first that exists of {}", many.join(", ")),
    }
}

/// `resources: …`: the run's threads and memory.
fn resources_line(resources: Resources) -> String {
    format!(
        "resources: {} threads, {:.1} GiB memory",
        resources.threads.max(1),
        resources.memory_bytes as f64 / f64::from(1u32 << 30)
    )
}

/// The calling shards a dry run shows, and the title of the `step` ("call", "call jointly")
/// that calls them: the contigs requested, each whole, in reference order; every contig of
/// the reference (one placeholder); or shards cut by size (an example shard: the plan is cut
/// from the `.fai` at run time).
/// The note of a run that would cut calling shards by size on its own
/// ([`crate::balanced_shard_bases`]), under the calling step's header.
fn balanced_shards_note(out: &mut String, scale: &ScaleOptions) {
    if scale.shard_bases.is_none() && scale.balance_shards {
        let _ = writeln!(
            out,
            "   (or, when one shard per contig would leave threads idle at the end, shards of at \
             least {} bases cut by size from the .fai at run time)",
            crate::BALANCED_SHARD_MIN_BASES
        );
    }
}

fn planned_shards(
    scale: &ScaleOptions,
    contigs: Option<&[String]>,
    step: &str,
) -> (String, Vec<(String, Shard)>) {
    let requested: Vec<&str> = contigs.into_iter().flatten().map(String::as_str).collect();
    match scale.shard_bases {
        Some(bases) => {
            let length = bases.get().saturating_mul(2);
            let plan = ScatterPlan::by_size([Contig::new("<contig>", length)], bases);
            (
                format!(
                    "{step} by size: shards of at most {bases} bases cut from the .fai at run time \
                     (biojob plan-shards lists them); e.g. the second shard of a contig of twice \
                     that length:"
                ),
                plan.shards()
                    .get(1)
                    .map(|shard| ("<contig>".to_owned(), shard.clone()))
                    .into_iter()
                    .collect(),
            )
        }
        None if requested.is_empty() => (
            format!(
                "{step}: one shard per contig: every contig of the reference (read from its .fai at run time)"
            ),
            vec![("<contig>".to_owned(), unknown_contig_shard("<contig>"))],
        ),
        None => (
            format!(
                "{step}: {} shard{} ({}), in reference order",
                requested.len(),
                if requested.len() == 1 { "" } else { "s" },
                requested.join(", ")
            ),
            requested
                .iter()
                .map(|name| ((*name).to_owned(), unknown_contig_shard(name)))
                .collect(),
        ),
    }
}

/// The plan of a cohort's run (docs/cohorts.md), as text: the sheet's samples and lanes with
/// each lane's read group (`read_groups`: per sample, per lane, in sheet order), the run's
/// location and resources, then each step with the command lines it runs: every lane's
/// alignment, every sample's merge, the joint calls, the gather, each sample's VCF and QC,
/// the report.
///
/// # Errors
/// Never in practice (the cohort's file stem is a valid sample id).
#[allow(
    clippy::too_many_arguments,
    reason = "the run's parts, as render_run_plan takes them, and the sheet's"
)]
pub fn render_cohort_plan(
    input: &CohortInput,
    sheet: &SampleSheet,
    read_groups: &[Vec<ReadGroup>],
    toolset: &Toolset,
    resources: Resources,
    run_id: &str,
    scale: &ScaleOptions,
    validate_fastq: bool,
) -> Result<String, Error> {
    let context = PlanContext::placeholders(toolset, resources);
    let lanes: usize = sheet.samples.iter().map(|sample| sample.lanes.len()).sum();
    let mut out = String::new();
    let mut line = |text: &str| {
        out.push_str(text);
        out.push('\n');
    };
    line(
        "dry run: nothing was run or read except the input JSON, the sample sheet and the first \
         read of each lane that the sheet gives no platform_unit",
    );
    line(&format!(
        "cohort: {} samples, {lanes} lanes, from the sample sheet {}",
        sheet.samples.len(),
        sheet.uri
    ));
    for (sample, groups) in sheet.samples.iter().zip(read_groups) {
        line(&format!("sample {}:", sample.sample));
        for (lane, read_group) in sample.lanes.iter().zip(groups) {
            line(&format!(
                "  lane {}: {} {}  {}",
                lane.lane,
                lane.fastq_1,
                lane.fastq_2,
                read_group.to_header_line().replace('\t', "\\t")
            ));
        }
    }
    line(&reference_line(&input.reference_candidates));
    line(&format!("outputs: {}", input.output_dir(run_id)));
    line(&resources_line(resources));
    line(&format!(
        "duplicates: {}",
        if input.mark_duplicates {
            "marked (samtools fixmate -m after bwa, samtools markdup after each sample's merge)"
        } else {
            "not marked"
        }
    ));
    line(
        "placeholders: <scratch> is the run's private scratch directory; <reference>, \
         <fastq_1>, <fastq_2> are the inputs above (copied into it when they are in S3); \
         <bam.NNNN>, <vcf.NNNN> and the like are earlier steps' outputs; <shard> is a shard's, \
         lane's or chunk's number",
    );

    let mut step = 0;
    let mut header = |out: &mut String, text: &str| {
        step += 1;
        let _ = writeln!(out, "\n{step}. {text}");
    };
    header(&mut out, "prepare-reference");
    out.push_str(&reference_index_plan(&context, true).render());

    let layouts = crate::cohort::lane_layouts(
        sheet,
        &input.samples,
        input.scatter.chunk_pairs,
        scale.chunk_pairs,
    )?;
    let split = layouts.iter().flatten().any(Option::is_some);
    if split {
        header(
            &mut out,
            &format!(
                "split {} (into <scratch>/samples/<sample>/lanes/<lane index>/)",
                if layouts.iter().flatten().all(Option::is_some) {
                    "each lane"
                } else {
                    "the lanes params.samples lists in several chunks"
                }
            ),
        );
        for (sample, layouts) in sheet.samples.iter().zip(&layouts) {
            for (lane, layout) in sample.lanes.iter().zip(layouts) {
                let Some(layout) = *layout else { continue };
                let split = SplitStep {
                    sample: sample.sample.clone(),
                    layout,
                    upload_to: None,
                    lane: None,
                };
                let _ = writeln!(out, "   [{} lane {}]", sample.sample, lane.lane);
                out.push_str(&split.plan(&context).render());
            }
        }
    }
    let workers = if split {
        // The chunks are known once the lanes are split.
        scale.workers.max(1)
    } else {
        scale.workers.clamp(1, lanes.max(1))
    };
    header(
        &mut out,
        &format!(
            "align each {}, {workers} at once (each with {} of the threads and memory)",
            if !split {
                "lane"
            } else if layouts.iter().flatten().all(Option::is_some) {
                "chunk of each lane (as many as its split writes, numbered across the sample: \
                 lane 0's first)"
            } else {
                "lane, or chunk of a split lane (numbered across the sample: lane 0's first)"
            },
            if workers == 1 { "all" } else { "its share" },
        ),
    );
    let share = PlanContext::placeholders(toolset, chunk_share(resources, workers));
    for ((sample, groups), layouts) in sheet.samples.iter().zip(read_groups).zip(&layouts) {
        for (index, ((lane, read_group), layout)) in
            sample.lanes.iter().zip(groups).zip(layouts).enumerate()
        {
            let align = AlignStep {
                sample: sample.sample.clone(),
                read_group: read_group.clone(),
                chunk: Some(index),
                chunking: None,
                validate_fastq,
                lane: Some(lane.lane.clone()),
                mark_duplicates: input.mark_duplicates,
            };
            let _ = writeln!(
                out,
                "   [{} lane {}{}]",
                sample.sample,
                lane.lane,
                match layout {
                    Some(ChunkLayout::InTurn { chunks, .. }) =>
                        format!(", each of its {chunks} chunks"),
                    Some(ChunkLayout::Consecutive { .. }) => ", each chunk".to_owned(),
                    None => String::new(),
                }
            );
            out.push_str(&align.plan(&share).render());
        }
    }
    header(
        &mut out,
        &format!(
            "merge each sample's {}{} (into samples/<sample>/)",
            if split { "chunks" } else { "lanes" },
            if input.mark_duplicates {
                ", marking duplicates"
            } else {
                ""
            }
        ),
    );
    for ((sample, groups), layouts) in sheet.samples.iter().zip(read_groups).zip(&layouts) {
        // Each lane's chunks: 1 whole, as many as it is dealt into, unknown before a
        // consecutive split has read the lane (then listed one per lane).
        let known: Option<usize> = layouts
            .iter()
            .map(|layout| match layout {
                None => Some(1),
                Some(ChunkLayout::InTurn { chunks, .. }) => Some(chunks.get()),
                Some(ChunkLayout::Consecutive { .. }) => None,
            })
            .sum();
        let merge = MergeStep {
            sample: sample.sample.clone(),
            read_groups: groups.clone(),
            chunks: known.unwrap_or(sample.lanes.len()),
            mark_duplicates: input.mark_duplicates,
            in_cohort: true,
            chunk_records: None,
            upload_to: None,
        };
        let _ = writeln!(
            out,
            "   [{}{}]",
            sample.sample,
            if known.is_none() {
                ": every chunk's BAM, as many as its lanes' splits write (listed here one per lane)"
            } else {
                ""
            }
        );
        out.push_str(&merge.plan(&context).render());
    }

    let samples = sheet.sample_ids();
    let stem = crate::cohort_stem()?;
    let (title, shards) = planned_shards(scale, input.contigs.as_deref(), "call jointly");
    header(&mut out, &title);
    balanced_shards_note(&mut out, scale);
    for (name, shard) in shards {
        let call = CallStep::new(
            stem.clone(),
            ShardRequest::Shard(shard),
            input.min_mapping_quality,
        )
        .jointly(samples.clone());
        let _ = writeln!(out, "   [{name}]");
        out.push_str(&call.plan(&context).render());
    }
    header(
        &mut out,
        "gather (the shards' VCFs concatenated in reference order)",
    );
    let gather = GatherStep::new(stem, GatherInputs::Given(2)).jointly(samples.clone());
    out.push_str(&gather.plan(&context).render());
    header(
        &mut out,
        "each sample's VCF and QC (into samples/<sample>/)",
    );
    for sample in &samples {
        let _ = writeln!(out, "   [{sample}]");
        let select = SampleVcfStep {
            sample: sample.clone(),
        };
        out.push_str(&select.plan(&context).render());
        out.push_str(
            &QcStep::new(sample.clone(), QcRun::Given(Box::default()))
                .plan(&context)
                .render(),
        );
    }
    header(&mut out, "report");
    let report = ReportStep::new(samples, QcRun::Given(Box::default()));
    out.push_str(&report.plan(&context).render());
    Ok(out)
}

/// The shard of a whole contig whose length a dry run does not know: it is called by its
/// name alone, so the length is not shown.
fn unknown_contig_shard(name: &str) -> Shard {
    Shard::new(0, vec![biojob_core::Region::whole(Contig::new(name, 1))])
}

#[cfg(test)]
mod tests {
    use super::*;
    use biojob_tools::{Tool, ToolPath};

    const INPUT: &str = r#"{"params": {"queue": "arn:aws:batch:us-east-1:123456789012:job-queue/q",
        "environment": {"REFERENCE_NAME": "Homo_sapiens_assembly38", "SAMPLE_ID": "NIST7035",
                        "SOURCE_DATA_PREFIX": "s3://samples-bucket/samples",
                        "JOB_OUTPUT_PREFIX": "s3://results-bucket",
                        "JOB_AWS_CLI_PATH": "/opt/miniconda/bin"},
        "chromosomes": ["chr20", "chr19"]}}"#;

    fn toolset() -> Toolset {
        Toolset {
            bwa: ToolPath::new(Tool::Bwa, "bwa"),
            samtools: ToolPath::new(Tool::Samtools, "samtools"),
            bcftools: ToolPath::new(Tool::Bcftools, "bcftools"),
        }
    }

    #[test]
    fn the_plan_lists_steps_shards_and_commands() {
        let input = WorkflowInput::from_json(INPUT).unwrap();
        let resources = Resources {
            threads: 4,
            memory_bytes: 16 << 30,
        };
        let plan = render_run_plan(
            &input,
            &toolset(),
            resources,
            "r1",
            &ScaleOptions::default(),
            true,
        );
        for expected in [
            "outputs: s3://results-bucket/NIST7035/r1",
            "3. call: 2 shards (chr20, chr19), in reference order",
            "   [chr20]",
            "   [chr19]",
            "   (biojob writes sort's output to <scratch>/NIST7035.align.bam.partial, counting its records)\n   bwa mem -t 4 -K 10000000 -R '@RG\\tID:NIST7035\\tSM:NIST7035\\tPL:ILLUMINA' <reference> /dev/fd/3 /dev/fd/4 | samtools sort -@ 4 -m 1048576K -T <scratch>/NIST7035.align.sort-tmp -O bam --write-index -o '-##idx##<scratch>/NIST7035.align.bam.partial.bai' -",
            "   bcftools mpileup -Oz0 -f <reference> -r chr19 -a FORMAT/AD,FORMAT/DP <bam> | bcftools call -m -v -Oz -o <scratch>/NIST7035.call.<shard>.vcf.gz.partial -",
            "4. gather",
            "   bcftools concat -Oz -o <scratch>/NIST7035.vcf.gz.partial <vcf.0000> <vcf.0001>",
            "5. qc",
        ] {
            assert!(plan.contains(expected), "{expected}\n{plan}");
        }
        assert!(!plan.contains("<<"), "{plan}");
    }

    #[test]
    fn without_chromosomes_every_contig_and_scaled_runs_show_their_steps() {
        let input = WorkflowInput::from_json(
            r#"{"params": {"environment": {"SAMPLE_ID": "S", "REFERENCE_NAME": "ref",
                "SOURCE_DATA_PREFIX": "/data", "JOB_OUTPUT_PREFIX": "/out"}}}"#,
        )
        .unwrap();
        let resources = Resources {
            threads: 2,
            memory_bytes: 1 << 30,
        };
        let plan = render_run_plan(
            &input,
            &toolset(),
            resources,
            "<run id>",
            &ScaleOptions::default(),
            true,
        );
        assert!(plan.contains("every contig of the reference"), "{plan}");
        assert!(
            plan.contains(
                "the first that exists of /data/ref.fa, /data/ref.fasta, /data/ref.fa.gz"
            ),
            "{plan}"
        );
        let scale = ScaleOptions {
            shard_bases: std::num::NonZeroU64::new(20_000),
            chunk_pairs: std::num::NonZeroU64::new(49_505),
            chunks: None,
            shards: None,
            workers: 2,
            balance_shards: false,
        };
        let plan = render_run_plan(&input, &toolset(), resources, "r", &scale, true);
        for expected in [
            "2. split\n   (biojob checks the FASTQ pair and cuts it into chunks of 49505 read pairs, gzip level 2)",
            "3. align each chunk, 2 at once (each with its share of the threads and memory)",
            "(biojob writes sort's output to <scratch>/S.align.<shard>.bam.partial, counting its records)",
            "   bwa mem -t 1 -K 10000000 -R '@RG\\tID:S\\tSM:S\\tPL:ILLUMINA' <reference> /dev/fd/3 /dev/fd/4 | samtools sort -@ 1 -m 131072K -T <scratch>/S.align.<shard>.sort-tmp -O bam --write-index -o '-##idx##<scratch>/S.align.<shard>.bam.partial.bai' -",
            "4. merge\n   (biojob writes merge's output to <scratch>/S.align.bam.partial, counting its records)\n   samtools merge -@ 1 -c -p -f --write-index -o '-##idx##<scratch>/S.align.bam.partial.bai' <bam.0000> <bam.0001>",
            "5. call by size: shards of at most 20000 bases",
            "bcftools mpileup -Oz0 -f <reference> -r <contig>:19001-40000 -a FORMAT/AD,FORMAT/DP <bam> | bcftools call -m -v -Ou - | bcftools view -t <contig>:20001-40000 -Oz -o <scratch>/S.call.<shard>.vcf.gz.partial -",
        ] {
            assert!(plan.contains(expected), "{expected}\n{plan}");
        }
        // The execution input's params.chunks: blocks dealt in turn into 3 chunks, as the
        // state machine's split job deals them; the merge takes the 3.
        let scale = ScaleOptions {
            chunks: std::num::NonZeroUsize::new(3),
            workers: 5,
            ..scale
        };
        let plan = render_run_plan(&input, &toolset(), resources, "r", &scale, true);
        for expected in [
            "2. split\n   (biojob checks the FASTQ pair and deals blocks of 49505 read pairs in turn into 3 chunks, gzip level 2)",
            "3. align each chunk, 3 at once (each with its share of the threads and memory)",
            "samtools merge -@ 1 -c -p -f --write-index -o '-##idx##<scratch>/S.align.bam.partial.bai' <bam.0000> <bam.0001> <bam.0002>\n",
        ] {
            assert!(plan.contains(expected), "{expected}\n{plan}");
        }
    }
}
