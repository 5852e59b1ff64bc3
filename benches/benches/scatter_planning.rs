//! Throughput of scatter planning (`Throughput::Elements`: contigs in the reference's `.fai`):
//! what `biojob run` does between reading the input JSON and starting the first tool — read
//! the `.fai` ([`read_fai`]), select the requested contigs ([`contig_plan`], which also checks
//! every requested name against the reference) and order the shards for the workers
//! ([`ScatterPlan::longest_first`]).
//!
//! Why: the plan is built on the job's critical path, before alignment starts, and its size
//! is the reference's contig count, which users do not choose: the reference design's own
//! reference (Broad `Homo_sapiens_assembly38`, with alts, decoys and HLA) has 3,366 contigs,
//! and draft plant or fish assemblies have 10⁵ scaffolds or more. Planning must stay linear in
//! both the contigs and the requested names (a `chromosomes` list may name every scaffold), so
//! that it costs milliseconds, not minutes, at those sizes.
//!
//! Data: `.fai` files written once per run into a temporary directory, with GRCh38-like names
//! and lengths (`chr1`…`chrY`, `chrM`, then `_alt`, `_random`, `chrUn_…`, `_decoy` and `HLA-…`
//! contigs) and a 100,000-scaffold draft assembly.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use biojob_benches::{PRIMARY, grch38_like, scaffolds, write_fai};
use biojob_core::ScatterPlan;
use biojob_formats::read_fai;
use biojob_pipeline::contig_plan;
use camino::{Utf8Path, Utf8PathBuf};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// Reads the `.fai`, plans the requested contigs (every contig without a list) and orders the
/// shards longest first: what `biojob run` does before the first tool starts.
fn plan(fai: &Utf8Path, requested: Option<&[String]>) -> (ScatterPlan, Vec<usize>) {
    let contigs = read_fai(fai).unwrap();
    let plan = contig_plan(&contigs, requested, fai).unwrap();
    let order = plan.longest_first();
    (plan, order)
}

fn scatter_planning(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();

    let grch38 = grch38_like();
    let grch38_fai = root.join("Homo_sapiens_assembly38.fasta.fai");
    write_fai(&grch38_fai, &grch38);
    let primary: Vec<String> = PRIMARY.iter().map(|(n, _)| (*n).to_owned()).collect();
    let all_grch38: Vec<String> = grch38.iter().map(|(n, _)| n.clone()).collect();

    let draft = scaffolds(100_000);
    let draft_fai = root.join("draft.fa.fai");
    write_fai(&draft_fai, &draft);
    let all_draft: Vec<String> = draft.iter().map(|(n, _)| n.clone()).collect();

    let mut group = c.benchmark_group("scatter_plan");
    group.sample_size(20);
    let cases: [(&str, &Utf8Path, usize, Option<&[String]>); 5] = [
        (
            "grch38_3366/primary_25",
            &grch38_fai,
            grch38.len(),
            Some(&primary),
        ),
        ("grch38_3366/every_contig", &grch38_fai, grch38.len(), None),
        (
            "grch38_3366/all_3366_listed",
            &grch38_fai,
            grch38.len(),
            Some(&all_grch38),
        ),
        ("draft_100k/every_contig", &draft_fai, draft.len(), None),
        (
            "draft_100k/all_100k_listed",
            &draft_fai,
            draft.len(),
            Some(&all_draft),
        ),
    ];
    for (name, fai, contigs, requested) in cases {
        group.throughput(Throughput::Elements(contigs as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(name),
            &requested,
            |b, requested| b.iter(|| black_box(plan(fai, *requested))),
        );
    }
    group.finish();
}

criterion_group!(benches, scatter_planning);
criterion_main!(benches);
