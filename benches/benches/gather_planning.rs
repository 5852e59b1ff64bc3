//! Throughput of gather planning: ordering the per-shard VCFs by the positions of their first
//! and last records, as the input scan found them ([`order_for_gather`],
//! `Throughput::Elements`: VCFs ordered), and the native check that the
//! gather step runs on every input before `bcftools concat` ([`scan_vcf`],
//! `Throughput::Bytes`: bytes of the bgzipped VCF).
//!
//! Why: shards finish in any order (the reference design's Map returns completion order and
//! never gathers), and biojob orders them by content, never by name or arrival, which costs
//! a lookup of each shard's first and last contig's rank in the reference and a sort. With the
//! reference design's own reference (3,366 contigs with alts, decoys and HLA) a run without a
//! `chromosomes` list gathers 3,366 VCFs, so the ordering must stay linear in the shards and
//! the contigs. The input scan reads every record of every shard once, on biojob's own CPU,
//! so its speed sets biojob's share of the gather step.
//!
//! Data, written once per run into a temporary directory: one small bgzipped VCF with its
//! `.tbi` per contig of a GRCh38-like reference (every third non-primary contig without
//! records, as contigs without reads give header-only VCFs), handed over in a shuffled order;
//! and one per-contig VCF of 100,000 records shaped like `bcftools call -mv` output.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::io::Write as _;

use biojob_benches::{PRIMARY, grch38_like};
use biojob_core::{Contig, Region};
use biojob_formats::{RecordSpan, VcfRules, scan_vcf};
use biojob_pipeline::order_for_gather;
use camino::{Utf8Path, Utf8PathBuf};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use noodles::{bgzf, tabix, vcf};

const SAMPLE: &str = "SIM";

/// The header `bcftools call` writes, cut to what the checks read: every contig of the
/// reference, then the sample column.
fn header(contigs: &[Contig]) -> String {
    let mut text = String::from("##fileformat=VCFv4.2\n");
    text.push_str("##FILTER=<ID=PASS,Description=\"All filters passed\">\n");
    for contig in contigs {
        writeln!(
            text,
            "##contig=<ID={},length={}>",
            contig.name, contig.length
        )
        .unwrap();
    }
    text.push_str(concat!(
        "##INFO=<ID=DP,Number=1,Type=Integer,Description=\"Raw read depth\">\n",
        "##INFO=<ID=MQ,Number=1,Type=Integer,Description=\"Average mapping quality\">\n",
        "##FORMAT=<ID=GT,Number=1,Type=String,Description=\"Genotype\">\n",
        "##FORMAT=<ID=PL,Number=G,Type=Integer,Description=\"Phred-scaled genotype likelihoods\">\n",
        "##FORMAT=<ID=DP,Number=1,Type=Integer,Description=\"Number of high-quality bases\">\n",
        "##FORMAT=<ID=AD,Number=R,Type=Integer,Description=\"Allelic depths\">\n",
    ));
    writeln!(
        text,
        "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\t{SAMPLE}"
    )
    .unwrap();
    text
}

/// `records` sorted records on `contig`, shaped like `bcftools call -mv` output.
fn records(contig: &Contig, records: u64) -> String {
    let mut text = String::new();
    let step = (contig.length / (records + 1)).max(1);
    for i in 0..records {
        let position = 1 + (i + 1) * step;
        let (genotype, pl) = if i % 3 == 0 {
            ("1/1", "255,199,0")
        } else {
            ("0/1", "188,0,211")
        };
        writeln!(
            text,
            "{}\t{position}\t.\tA\tG\t{:.4}\t.\tDP=66;MQ=60\tGT:PL:DP:AD\t{genotype}:{pl}:66:{},{}",
            contig.name,
            180.0 + (i % 70) as f64 + 0.4164,
            30 + i % 7,
            36 - i % 7
        )
        .unwrap();
    }
    text
}

/// Writes `text` as a BGZF file and its tabix index beside it.
fn write_indexed_vcf(path: &Utf8Path, text: &str) {
    let mut writer = bgzf::io::Writer::new(std::fs::File::create(path).unwrap());
    writer.write_all(text.as_bytes()).unwrap();
    writer.finish().unwrap();
    let vcf::Index::Tabix(index) = vcf::fs::index(path).unwrap() else {
        panic!("contigs are under 2^29 bases: a tabix index");
    };
    tabix::fs::write(format!("{path}.tbi"), &index).unwrap();
}

/// One VCF per contig (every third non-primary contig header-only), in a shuffled order.
fn shard_vcfs(root: &Utf8Path, contigs: &[Contig]) -> Vec<(Utf8PathBuf, Option<RecordSpan>)> {
    // One header for all: writing all 3,366 `##contig` lines into each of 3,366 files would
    // only slow the set-up; the ordering reads the `.tbi` alone.
    let mut vcfs = Vec::with_capacity(contigs.len());
    for (index, contig) in contigs.iter().enumerate() {
        let path = root.join(format!("{SAMPLE}.call.{index:04}.vcf.gz"));
        let mut text = header(std::slice::from_ref(contig));
        let mut span = None;
        if index < PRIMARY.len() || index % 3 != 0 {
            text.push_str(&records(contig, 20));
            // As `records` places them.
            let step = (contig.length / 21).max(1);
            span = Some(RecordSpan {
                first: (contig.name.clone(), 1 + step),
                last: (contig.name.clone(), 1 + 20 * step),
            });
        }
        write_indexed_vcf(&path, &text);
        vcfs.push((path, span));
    }
    // A fixed shuffle (completion order is arbitrary).
    let mut state: u64 = 0x853c_49e6_748f_ea9b;
    for i in (1..vcfs.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        vcfs.swap(i, (state % (i as u64 + 1)) as usize);
    }
    vcfs
}

fn gather_planning(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
    let reference: Vec<Contig> = grch38_like()
        .into_iter()
        .map(|(name, length)| Contig::new(name, length))
        .collect();

    let mut group = c.benchmark_group("gather_order");
    group.sample_size(10);
    for (name, contigs) in [
        ("primary_25", &reference[..PRIMARY.len()]),
        ("grch38_3366", &reference[..]),
    ] {
        let shard_dir = root.join(name);
        std::fs::create_dir_all(&shard_dir).unwrap();
        let vcfs = shard_vcfs(&shard_dir, contigs);
        group.throughput(Throughput::Elements(vcfs.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &vcfs, |b, vcfs| {
            b.iter(|| black_box(order_for_gather(vcfs, &reference).unwrap()))
        });
    }
    group.finish();

    // The per-input check: one chr20-sized shard of 100,000 calls, header with all contigs.
    let chr20 = reference.iter().find(|c| c.name == "chr20").unwrap();
    let vcf = root.join(format!("{SAMPLE}.call.0019.vcf.gz"));
    let mut text = header(&reference);
    text.push_str(&records(chr20, 100_000));
    write_indexed_vcf(&vcf, &text);
    let bytes = std::fs::metadata(&vcf).unwrap().len();
    let shard = [Region::whole(chr20.clone())];
    let rules = VcfRules {
        contigs: &reference,
        samples: &[SAMPLE],
        only_regions: Some(&shard),
    };
    let mut group = c.benchmark_group("gather_input_scan");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("scan_vcf_100k_records", |b| {
        b.iter(|| black_box(scan_vcf(&vcf, &rules).unwrap()))
    });
    group.finish();
}

criterion_group!(benches, gather_planning);
criterion_main!(benches);
