//! `biojob run --dry-run`: the plan of a run, printed without running anything.
//!
//! Only the input JSON is read. Tools are named as they would be looked up (`BIOJOB_BWA`,
//! `BIOJOB_SAMTOOLS`, `BIOJOB_BCFTOOLS`, else the name on `PATH`) but not resolved or run;
//! S3 locations are checked for syntax only; the reference is not opened, so when
//! `params.chromosomes` is absent the shards are "every contig of the reference". Paths under
//! `<scratch>` stand for the run's private scratch directory. The command lines come from the
//! same builders (`biojob-tools`) the steps use.

use std::fmt::Write as _;

use biojob_core::{StepId, scratch_file_name};
use biojob_pipeline::{BWA_BATCH_BASES, Resources, WorkflowInput};
use biojob_process::CommandSpec;
use biojob_storage::ObjectUri;
use biojob_tools::{
    BcftoolsCall, BcftoolsConcat, BcftoolsMpileup, BwaMem, SamtoolsSort, Tool, ToolPath,
    bcftools_index_tbi, bwa_index, samtools_faidx, samtools_index, sort_memory_per_thread,
};
use camino::{Utf8Path, Utf8PathBuf};

use crate::Failure;
use crate::cli::RunArgs;
use crate::env;

/// Prints the plan of `input` to stdout.
pub fn print_plan(input: &WorkflowInput, args: &RunArgs) -> Result<(), Failure> {
    let resources = Resources::detect().with_overrides(args.runtime.threads, args.runtime.memory);
    let run_id = args.run_id.as_deref().unwrap_or("<run id>");
    #[allow(clippy::print_stdout, reason = "the plan is the command's output")]
    {
        print!("{}", render_plan(input, &resources, run_id));
        print!("{}", render_scale(&args.scale));
    }
    Ok(())
}

/// What the scale settings change in the plan: nothing (an empty string) by default.
pub fn render_scale(scale: &crate::cli::ScaleArgs) -> String {
    let mut out = String::new();
    if scale.chunk_pairs > 0 {
        out.push_str(&format!(
            "align in chunks: split into chunks of {} read pairs, {} chunk{} aligned at once as \
             above (each with its share of the threads), then samtools merge -c -p and index\n",
            scale.chunk_pairs,
            scale.workers.max(1),
            if scale.workers > 1 { "s" } else { "" }
        ));
    }
    if scale.shard_bases > 0 {
        out.push_str(&format!(
            "call by size: shards of at most {} bases cut from the .fai at run time (biojob \
             plan-shards lists them); a part of a contig is piled up from 1000 bases before it \
             and bcftools view -t keeps the records whose POS lies in it\n",
            scale.shard_bases
        ));
    }
    out
}

/// The plan as text.
pub fn render_plan(input: &WorkflowInput, resources: &Resources, run_id: &str) -> String {
    let tool = |tool: Tool, variable: &str| {
        let path = std::env::var(variable)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| tool.name().to_owned());
        ToolPath::new(tool, path)
    };
    let bwa = tool(Tool::Bwa, env::BIOJOB_BWA);
    let samtools = tool(Tool::Samtools, env::BIOJOB_SAMTOOLS);
    let bcftools = tool(Tool::Bcftools, env::BIOJOB_BCFTOOLS);
    let scratch = Utf8PathBuf::from("<scratch>");
    let sample = &input.sample;
    let threads = resources.threads.max(1);
    let fasta = scratch_input(&scratch, input.reference_candidates.first(), "reference.fa");
    let fai = Utf8PathBuf::from(format!("{fasta}.fai"));
    let file = |step: StepId, shard: Option<usize>, ext: &str| {
        scratch.join(scratch_file_name(sample, step, shard, ext))
    };
    let partial = |path: &Utf8Path| Utf8PathBuf::from(format!("{path}.partial"));

    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    line("dry run: nothing was run or read except the input JSON".into());
    line(format!("sample: {sample}"));
    line(format!(
        "read group: {}",
        input.read_group.to_header_line().replace('\t', "\\t")
    ));
    line(format!("fastq 1: {}", input.fastq_1));
    line(format!("fastq 2: {}", input.fastq_2));
    let candidates: Vec<String> = input
        .reference_candidates
        .iter()
        .map(ToString::to_string)
        .collect();
    line(match candidates.as_slice() {
        [one] => format!("reference: {one}"),
        many => format!("reference: the first that exists of {}", many.join(", ")),
    });
    line(format!(
        "outputs: {}",
        input.output_prefix.join(sample.as_str()).join(run_id)
    ));
    line(format!(
        "resources: {threads} threads, {:.1} GiB memory",
        resources.memory_bytes as f64 / f64::from(1u32 << 30)
    ));

    line(String::new());
    line("1. prepare-reference (builds only the index files that are missing)".into());
    line(indent(&samtools_faidx(&samtools, &fasta, &fai)));
    line(indent(&bwa_index(&bwa, &fasta, &fasta)));

    line("2. align".into());
    let bam = file(StepId::Align, None, "bam");
    let bam_partial = partial(&bam);
    let align = BwaMem {
        threads,
        batch_bases: BWA_BATCH_BASES,
        read_group: input.read_group.clone(),
        index_prefix: fasta.clone(),
        fastq_1: "/dev/fd/3".into(),
        fastq_2: "/dev/fd/4".into(),
    }
    .command(&bwa);
    let sort = SamtoolsSort {
        threads,
        memory_per_thread: sort_memory_per_thread(resources.memory_bytes, threads),
        temp_prefix: file(StepId::Align, None, "sort-tmp"),
        output: bam_partial.clone(),
    }
    .command(&samtools);
    line(format!(
        "   (biojob checks both FASTQs and feeds them to bwa on fd 3 and 4)\n{} | {}",
        indent(&align),
        shell_words(&sort)
    ));
    line(indent(&samtools_index(
        &samtools,
        &bam_partial,
        &partial(&Utf8PathBuf::from(format!("{bam}.bai"))),
        threads.saturating_sub(1),
    )));

    let contigs: Vec<&str> = match &input.contigs {
        Some(contigs) => contigs.iter().map(String::as_str).collect(),
        None => Vec::new(),
    };
    if contigs.is_empty() {
        line("3. call: one shard per contig: every contig of the reference (read from its .fai at run time)".into());
    } else {
        line(format!(
            "3. call: {} shard{} ({}), in reference order; shard numbers are the contigs' lines in the .fai",
            contigs.len(),
            if contigs.len() == 1 { "" } else { "s" },
            contigs.join(", ")
        ));
    }
    let shown: Vec<&str> = if contigs.is_empty() {
        vec!["<contig>"]
    } else {
        contigs.clone()
    };
    let mut gathered = Vec::new();
    for contig in &shown {
        let shard_vcf = scratch.join(format!("{sample}.call.<{contig}-shard>.vcf.gz"));
        let mpileup = BcftoolsMpileup {
            fasta: fasta.clone(),
            region: (*contig).to_owned(),
            bam: bam.clone(),
            min_mapping_quality: input.min_mapping_quality,
        }
        .command(&bcftools);
        let call = BcftoolsCall {
            region: (*contig).to_owned(),
            output: partial(&shard_vcf),
        }
        .command(&bcftools);
        line(format!("   [{contig}]"));
        line(format!("{} | {}", indent(&mpileup), shell_words(&call)));
        line(indent(&bcftools_index_tbi(
            &bcftools,
            &partial(&shard_vcf),
            &partial(&Utf8PathBuf::from(format!("{shard_vcf}.tbi"))),
        )));
        gathered.push(shard_vcf);
    }

    line("4. gather (per-contig VCFs concatenated in reference order)".into());
    let vcf = scratch.join(format!("{sample}.vcf.gz"));
    line(indent(
        &BcftoolsConcat {
            inputs: gathered,
            output: partial(&vcf),
        }
        .command(&bcftools),
    ));
    line(indent(&bcftools_index_tbi(
        &bcftools,
        &partial(&vcf),
        &partial(&Utf8PathBuf::from(format!("{vcf}.tbi"))),
    )));
    out
}

/// Where an input lands in scratch: `<scratch>/inputs/<file name>`.
fn scratch_input(scratch: &Utf8Path, uri: Option<&ObjectUri>, fallback: &str) -> Utf8PathBuf {
    let name = uri.and_then(ObjectUri::file_name).unwrap_or(fallback);
    let name = name.strip_suffix(".gz").unwrap_or(name);
    scratch.join("inputs").join(name)
}

fn indent(command: &CommandSpec) -> String {
    format!("   {}", shell_words(command))
}

/// The argv as a shell would need it typed: words with characters a shell treats specially are
/// single-quoted. For display only: biojob never runs a shell.
fn shell_words(command: &CommandSpec) -> String {
    let mut text = String::new();
    for (position, word) in command.argv().iter().enumerate() {
        if position > 0 {
            text.push(' ');
        }
        // `<` and `>` mark placeholders such as `<scratch>`.
        let plain = !word.is_empty()
            && word
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%<>".contains(c));
        if plain {
            text.push_str(word);
        } else {
            let _ = write!(text, "'{}'", word.replace('\'', r"'\''"));
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const INPUT: &str = r#"{"params": {"queue": "arn:aws:batch:us-east-1:123456789012:job-queue/q",
        "environment": {"REFERENCE_NAME": "Homo_sapiens_assembly38", "SAMPLE_ID": "NIST7035",
                        "SOURCE_DATA_PREFIX": "s3://samples-bucket/samples",
                        "JOB_OUTPUT_PREFIX": "s3://results-bucket",
                        "JOB_AWS_CLI_PATH": "/opt/miniconda/bin"},
        "chromosomes": ["chr20", "chr19"]}}"#;

    #[test]
    fn plan_lists_steps_shards_and_commands() {
        let input = WorkflowInput::from_json(INPUT).unwrap();
        let resources = Resources {
            threads: 4,
            memory_bytes: 16 << 30,
        };
        let plan = render_plan(&input, &resources, "r1");
        assert!(
            plan.contains("outputs: s3://results-bucket/NIST7035/r1"),
            "{plan}"
        );
        assert!(plan.contains("3. call: 2 shards (chr20, chr19)"), "{plan}");
        assert!(
            plan.contains("[chr20]") && plan.contains("[chr19]"),
            "{plan}"
        );
        assert!(
            plan.contains("bwa mem -t 4 -K 10000000 -R '@RG\\tID:NIST7035\\tSM:NIST7035\\tPL:ILLUMINA' <scratch>/inputs/Homo_sapiens_assembly38.fa /dev/fd/3 /dev/fd/4 | samtools sort -@ 4 -m 1048576K"),
            "{plan}"
        );
        assert!(
            plan.contains(
                "bcftools mpileup -f <scratch>/inputs/Homo_sapiens_assembly38.fa -r chr19"
            ),
            "{plan}"
        );
        assert!(plan.contains("4. gather"), "{plan}");
        assert!(
            plan.contains("bcftools concat -Oz -o <scratch>/NIST7035.vcf.gz.partial"),
            "{plan}"
        );
    }

    #[test]
    fn without_chromosomes_every_contig() {
        let input = WorkflowInput::from_json(
            r#"{"params": {"environment": {"SAMPLE_ID": "S", "REFERENCE_NAME": "ref",
                "SOURCE_DATA_PREFIX": "/data", "JOB_OUTPUT_PREFIX": "/out"}}}"#,
        )
        .unwrap();
        let resources = Resources {
            threads: 1,
            memory_bytes: 1 << 30,
        };
        let plan = render_plan(&input, &resources, "<run id>");
        assert!(plan.contains("every contig of the reference"), "{plan}");
        assert!(
            plan.contains(
                "the first that exists of /data/ref.fa, /data/ref.fasta, /data/ref.fa.gz"
            ),
            "{plan}"
        );
    }

    #[test]
    fn scale_lines_only_when_scaled() {
        let mut scale = crate::cli::ScaleArgs {
            shard_bases: 0,
            chunk_pairs: 0,
            workers: 1,
        };
        assert_eq!(render_scale(&scale), "");
        scale.chunk_pairs = 49_505;
        scale.workers = 2;
        scale.shard_bases = 20_000_000;
        assert_eq!(
            render_scale(&scale),
            "align in chunks: split into chunks of 49505 read pairs, 2 chunks aligned at once as \
             above (each with its share of the threads), then samtools merge -c -p and index\n\
             call by size: shards of at most 20000000 bases cut from the .fai at run time (biojob \
             plan-shards lists them); a part of a contig is piled up from 1000 bases before it \
             and bcftools view -t keeps the records whose POS lies in it\n"
        );
    }
}
