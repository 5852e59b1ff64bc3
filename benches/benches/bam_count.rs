//! Cost of counting BAM records on their way to a file: [`BamRecordCounter`] between
//! `samtools sort -o -` and the output file, against copying the same bytes without counting.
//!
//! Why: the align step checks that its BAM holds a primary record for every read fed to bwa
//! (primary records = 2 × read pairs). Counting while the BAM passes avoids a second read of a
//! file of tens of GB, but puts BGZF inflation (libdeflate) and a CRC32 per block on the thread
//! that moves the bytes: this must stay well above what `samtools sort` writes (tens to a few
//! hundred MB/s).
//!
//! Two groups over the same bytes, written in 64 KiB pieces (a pipe's buffer) into a reused
//! buffer: `Throughput::Bytes` (BAM bytes) and `Throughput::Elements` (read pairs, primary
//! records ÷ 2); the second gives the cost per million read pairs as 10^6 ÷ pairs per second.
//! Counting runs on the writing thread (`count`) and with two inflating worker threads
//! (`count_2_threads`, which spreads the same work over cores and adds the cost of handing
//! batches over). Everything is measured in the CPU time of the whole process, all threads
//! together, not wall time: on the project's shared 2-vCPU machine wall time mostly measures
//! the other builds.
//!
//! Data: the BAM named by `BIOJOB_BENCH_BAM` (e.g. `<data dir>/SIM.align.bam` left by
//! `benches/align-validation.sh`); without it, the real test pair (13,860 pairs) aligned here
//! with `bwa mem | samtools sort` (needs bwa and samtools). The counts are checked once against
//! `count_bam_records` before timing.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::io::Write;
use std::process::{Command, Stdio};

use biojob_formats::{BamRecordCounter, count_bam_records};
use biojob_testkit::testdata;
use camino::Utf8PathBuf;
use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use nix::time::{ClockId, clock_gettime};

/// A pipe's buffer: the size of the pieces `samtools sort -o -` arrives in.
const PIECE: usize = 64 * 1024;

/// The real test pair aligned and sorted in `dir`.
fn aligned_test_pair(dir: &std::path::Path) -> Utf8PathBuf {
    let dir = Utf8PathBuf::from_path_buf(dir.to_path_buf()).unwrap();
    let reference = dir.join("ref.fa");
    std::fs::copy(testdata().join("ref.fa"), &reference).unwrap();
    let status = Command::new("bwa")
        .args(["index", reference.as_str()])
        .stderr(Stdio::null())
        .status()
        .expect("bwa runs (Debian: bwa)");
    assert!(status.success());
    let data = testdata();
    let mut bwa = Command::new("bwa")
        .args(["mem", "-t", "2", reference.as_str()])
        .arg(data.join("NA12878_R1.fastq.gz"))
        .arg(data.join("NA12878_R2.fastq.gz"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("bwa runs");
    let bam = dir.join("aligned.bam");
    let status = Command::new("samtools")
        .args(["sort", "-o", bam.as_str(), "-"])
        .stdin(bwa.stdout.take().unwrap())
        .status()
        .expect("samtools runs (Debian: samtools)");
    assert!(status.success() && bwa.wait().unwrap().success());
    bam
}

/// The CPU time of the process, all threads together, shown as durations.
struct ProcessCpuTime(WallTime);

fn process_cpu_time() -> Duration {
    let now = clock_gettime(ClockId::CLOCK_PROCESS_CPUTIME_ID).expect("process CPU clock");
    Duration::new(now.tv_sec() as u64, now.tv_nsec() as u32)
}

impl Measurement for ProcessCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        process_cpu_time()
    }

    fn end(&self, started: Duration) -> Duration {
        process_cpu_time() - started
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        self.0.formatter()
    }
}

fn bam_count(c: &mut Criterion<ProcessCpuTime>) {
    let dir = tempfile::tempdir().unwrap();
    let bam = match std::env::var("BIOJOB_BENCH_BAM") {
        Ok(path) => Utf8PathBuf::from(path),
        Err(_) => aligned_test_pair(dir.path()),
    };
    let bytes = std::fs::read(&bam).unwrap();
    let expected = count_bam_records(&bam, 1).unwrap();
    let mut out = Vec::with_capacity(bytes.len());
    let count = |out: &mut Vec<u8>, threads: usize| {
        out.clear();
        let mut counter = BamRecordCounter::with_threads(out, "bench.bam", threads);
        for piece in bytes.chunks(PIECE) {
            counter.write_all(piece).unwrap();
        }
        counter.finish().unwrap().1
    };
    assert_eq!(count(&mut out, 1), expected);
    assert!(out == bytes);
    assert_eq!(count(&mut out, 2), expected);
    let copy = |out: &mut Vec<u8>| {
        out.clear();
        for piece in bytes.chunks(PIECE) {
            out.write_all(piece).unwrap();
        }
    };
    let pairs = expected.primary / 2;
    for (name, throughput) in [
        ("bam_count_bytes", Throughput::Bytes(bytes.len() as u64)),
        ("bam_count_pairs", Throughput::Elements(pairs)),
    ] {
        let mut group = c.benchmark_group(name);
        group.throughput(throughput);
        group.sample_size(20);
        group.bench_function("copy", |b| b.iter(|| copy(black_box(&mut out))));
        group.bench_function("count", |b| b.iter(|| black_box(count(&mut out, 1))));
        group.bench_function("count_2_threads", |b| {
            b.iter(|| black_box(count(&mut out, 2)))
        });
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ProcessCpuTime(WallTime));
    targets = bam_count
}
criterion_main!(benches);
