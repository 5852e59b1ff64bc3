//! `biojob run --dry-run`: the plan of a run, printed without running anything.
//!
//! Only the input is read: the tools are named but not run, S3 locations are checked for
//! syntax only, the reference is not opened. Each step's lines are its plan
//! ([`crate::StepDefinition::plan`]) made with placeholder paths and the run's resources:
//! the same plan that runs, and that the cache key hashes.

use std::fmt::Write as _;
use std::num::NonZeroU64;

use biojob_core::{Contig, ScatterPlan, Shard};
use biojob_formats::ChunkLayout;
use biojob_tools::Toolset;

use crate::scheduler::chunk_share;
use crate::{
    AlignStep, CallStep, GatherInputs, GatherStep, MergeStep, PlanContext, QcRun, QcStep,
    Resources, ScaleOptions, ShardRequest, SplitStep, StepDefinition, WorkflowInput,
    reference_index_plan,
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
    let candidates: Vec<String> = input
        .reference_candidates
        .iter()
        .map(ToString::to_string)
        .collect();
    line(&match candidates.as_slice() {
        [one] => format!("reference: {one}"),
        many => format!("reference: the first that exists of {}", many.join(", ")),
    });
    line(&format!(
        "outputs: {}",
        input.output_prefix.join(sample.as_str()).join(run_id)
    ));
    line(&format!(
        "resources: {} threads, {:.1} GiB memory",
        resources.threads.max(1),
        resources.memory_bytes as f64 / f64::from(1u32 << 30)
    ));
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

    let align = |chunk: Option<usize>, chunk_pairs: Option<NonZeroU64>| AlignStep {
        sample: sample.clone(),
        read_group: input.read_group.clone(),
        chunk,
        chunk_pairs,
        validate_fastq,
    };
    match scale.chunk_pairs {
        None => {
            header(&mut out, "align");
            out.push_str(&align(None, None).plan(&context).render());
        }
        Some(chunk_pairs) => {
            let workers = scale.workers.max(1);
            header(&mut out, "split");
            let split = SplitStep {
                sample: sample.clone(),
                layout: ChunkLayout::Consecutive { chunk_pairs },
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
                read_group: input.read_group.clone(),
                chunks: 2,
            };
            out.push_str(&merge.plan(&context).render());
        }
    }

    let requested: Vec<&str> = input.contigs.iter().flatten().map(String::as_str).collect();
    let shards: Vec<(String, Shard)> = match scale.shard_bases {
        Some(bases) => {
            header(
                &mut out,
                &format!(
                    "call by size: shards of at most {bases} bases cut from the .fai at run time \
                     (biojob plan-shards lists them); e.g. the second shard of a contig of twice \
                     that length:"
                ),
            );
            let length = bases.get().saturating_mul(2);
            let plan = ScatterPlan::by_size([Contig::new("<contig>", length)], bases);
            plan.shards()
                .get(1)
                .map(|shard| ("<contig>".to_owned(), shard.clone()))
                .into_iter()
                .collect()
        }
        None if requested.is_empty() => {
            header(
                &mut out,
                "call: one shard per contig: every contig of the reference (read from its .fai at run time)",
            );
            vec![("<contig>".to_owned(), unknown_contig_shard("<contig>"))]
        }
        None => {
            header(
                &mut out,
                &format!(
                    "call: {} shard{} ({}), in reference order",
                    requested.len(),
                    if requested.len() == 1 { "" } else { "s" },
                    requested.join(", ")
                ),
            );
            requested
                .iter()
                .map(|name| ((*name).to_owned(), unknown_contig_shard(name)))
                .collect()
        }
    };
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
            "   bwa mem -t 4 -K 10000000 -R '@RG\\tID:NIST7035\\tSM:NIST7035\\tPL:ILLUMINA' <reference> /dev/fd/3 /dev/fd/4 | samtools sort -@ 4 -m 1048576K -T <scratch>/NIST7035.align.sort-tmp -O bam -o <scratch>/NIST7035.align.bam.partial -",
            "   bcftools mpileup -f <reference> -r chr19 -a FORMAT/AD,FORMAT/DP <bam> | bcftools call -m -v -Oz -o <scratch>/NIST7035.call.<shard>.vcf.gz.partial -",
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
            shard_bases: NonZeroU64::new(20_000),
            chunk_pairs: NonZeroU64::new(49_505),
            workers: 2,
        };
        let plan = render_run_plan(&input, &toolset(), resources, "r", &scale, true);
        for expected in [
            "2. split\n   (biojob checks the FASTQ pair and cuts it into chunks of 49505 read pairs, gzip level 2)",
            "3. align each chunk, 2 at once (each with its share of the threads and memory)",
            "   bwa mem -t 1 -K 10000000 -R '@RG\\tID:S\\tSM:S\\tPL:ILLUMINA' <reference> /dev/fd/3 /dev/fd/4 | samtools sort -@ 1 -m 131072K -T <scratch>/S.align.<shard>.sort-tmp -O bam -o <scratch>/S.align.<shard>.bam.partial -",
            "4. merge\n   samtools merge -@ 1 -c -p -f -o <scratch>/S.align.bam.partial <bam.0000> <bam.0001>",
            "5. call by size: shards of at most 20000 bases",
            "bcftools mpileup -f <reference> -r <contig>:19001-40000 -a FORMAT/AD,FORMAT/DP <bam> | bcftools call -m -v -Ou - | bcftools view -t <contig>:20001-40000 -Oz -o <scratch>/S.call.<shard>.vcf.gz.partial -",
        ] {
            assert!(plan.contains(expected), "{expected}\n{plan}");
        }
    }
}
