//! Throughput of the QC step's native BAM pass, `read_bam_stats` (`Throughput::Bytes`: BAM
//! bytes on disk): flagstat counts, depth and breadth per contig and the coordinate-order check
//! in one streaming read.
//!
//! Why: the QC step runs this pass beside `samtools flagstat`, `samtools stats` and
//! `bcftools stats`; on a whole-genome BAM (tens of GB) it must not be the step's slowest part.
//! It is measured with one thread (BGZF inflated on the calling thread) and with two worker
//! threads (noodles' multithreaded BGZF reader), against the same file.
//!
//! Data: the BAM named by `BIOJOB_BENCH_BAM` (e.g. the align step's output on the benchmark
//! data set, which `benches/align-validation.sh` leaves as `<data dir>/SIM.align.bam`); without
//! it, a small coordinate-sorted BAM written here (10,000 records). Outputs are checked once
//! before timing.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use biojob_formats::read_bam_stats;
use camino::Utf8PathBuf;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

/// A small sorted BAM made with noodles: 10,000 unpaired 100M records on one 1 Mb contig.
fn small_bam(dir: &std::path::Path) -> Utf8PathBuf {
    use std::io::Write;
    let path = Utf8PathBuf::from_path_buf(dir.join("small.bam")).unwrap();
    let mut sam = String::from("@HD\tVN:1.6\tSO:coordinate\n@SQ\tSN:c1\tLN:1000000\n");
    let seq = "A".repeat(100);
    let qual = "I".repeat(100);
    for i in 0..10_000u32 {
        sam.push_str(&format!(
            "r{i}\t0\tc1\t{}\t60\t100M\t*\t0\t0\t{seq}\t{qual}\n",
            1 + i * 90
        ));
    }
    let sam_path = dir.join("small.sam");
    std::fs::File::create(&sam_path)
        .unwrap()
        .write_all(sam.as_bytes())
        .unwrap();
    let status = std::process::Command::new("samtools")
        .args(["view", "-b", "-o", path.as_str()])
        .arg(&sam_path)
        .status()
        .expect("samtools runs (Debian: samtools)");
    assert!(status.success());
    path
}

fn bam_stats(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let bam = match std::env::var("BIOJOB_BENCH_BAM") {
        Ok(path) => Utf8PathBuf::from(path),
        Err(_) => small_bam(dir.path()),
    };
    let bytes = std::fs::metadata(&bam).unwrap().len();
    let reference = read_bam_stats(&bam, 1).unwrap();
    assert_eq!(read_bam_stats(&bam, 2).unwrap(), reference);
    let mut group = c.benchmark_group("bam_stats");
    group.throughput(Throughput::Bytes(bytes));
    group.sample_size(10);
    for threads in [1, 2] {
        group.bench_function(format!("threads_{threads}"), |b| {
            b.iter(|| black_box(read_bam_stats(&bam, threads).unwrap()))
        });
    }
    group.finish();
}

criterion_group!(benches, bam_stats);
criterion_main!(benches);
