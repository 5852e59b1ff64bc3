//! Throughput of the checks that an index belongs to its file (`Throughput::Bytes`: bytes of
//! the FASTA), and of the SHA-256 a provenance record compares instead.
//!
//! Why: an index built from another FASTA (or an earlier version of this one) gives confident
//! wrong calls, so an index is used only when it provably belongs to its FASTA. The `.fai`
//! check reads a few bytes per contig; the bwa index check ([`check_bwa_index_matches_fasta`])
//! reads the whole FASTA and the whole `.pac` (3.1 GB and 0.8 GB for a human reference); the
//! FASTA layout check ([`check_fasta_layout`]) reads the whole FASTA before `samtools faidx`.
//! The figures say what the full checks cost on a human reference, against the SHA-256 of the
//! FASTA ([`FileDigest::of`]) that a provenance record ([`IndexProvenance`]) needs, which the
//! align step's cache key computes anyway.
//!
//! Data: a synthetic 32 Mb FASTA written once per run into a temporary directory (four contigs,
//! 60-column lines, random A/C/G/T with a run of Ns every 1 Mb), indexed by `bwa index` and
//! `samtools faidx` (both must be on `PATH`).

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::io::Write;
use std::process::Command;

use biojob_formats::{
    FileDigest, check_bwa_index_matches_fasta, check_fai_covers_fasta, check_fasta_layout,
};
use camino::{Utf8Path, Utf8PathBuf};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const CONTIG_BASES: usize = 8_000_000;
const CONTIGS: usize = 4;

/// Writes the FASTA: `CONTIGS` contigs of `CONTIG_BASES` random bases, 60 per line, with a
/// run of 1,000 Ns every 1,000,000 bases.
fn write_fasta(path: &Utf8Path) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for contig in 0..CONTIGS {
        writeln!(out, ">chr{} synthetic", contig + 1).unwrap();
        let mut line = Vec::with_capacity(61);
        for base in 0..CONTIG_BASES {
            let byte = if base % 1_000_000 < 1_000 {
                b'N'
            } else {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                b"ACGT"[(state % 4) as usize]
            };
            line.push(byte);
            if line.len() == 60 || base + 1 == CONTIG_BASES {
                line.push(b'\n');
                out.write_all(&line).unwrap();
                line.clear();
            }
        }
    }
}

fn run(program: &str, args: &[&str]) {
    let output = Command::new(program).args(args).output().unwrap();
    assert!(
        output.status.success(),
        "{program} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn index_check(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(dir.path().to_owned()).unwrap();
    let fasta = root.join("ref.fa");
    write_fasta(&fasta);
    run("bwa", &["index", fasta.as_str()]);
    run("samtools", &["faidx", fasta.as_str()]);
    let fai = root.join("ref.fa.fai");
    let bytes = std::fs::metadata(&fasta).unwrap().len();

    let mut group = c.benchmark_group("index_check");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("bwa_index_full", |b| {
        b.iter(|| check_bwa_index_matches_fasta(black_box(&fasta), black_box(&fasta)).unwrap());
    });
    group.bench_function("fasta_sha256", |b| {
        b.iter(|| FileDigest::of(black_box(&fasta)).unwrap());
    });
    group.bench_function("fasta_layout", |b| {
        b.iter(|| check_fasta_layout(black_box(&fasta)).unwrap());
    });
    group.bench_function("fai_covers_fasta", |b| {
        b.iter(|| check_fai_covers_fasta(black_box(&fasta), black_box(&fai)).unwrap());
    });
    group.finish();
}

criterion_group!(benches, index_check);
criterion_main!(benches);
