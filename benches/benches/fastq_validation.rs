//! Throughput of the FASTQ pair check (`Throughput::Bytes`: decompressed FASTQ bytes of both
//! files), the work the align step does on its own thread while bwa aligns.
//!
//! Why: the align step reads both FASTQs itself and feeds bwa through pipes, so the check must
//! keep ahead of bwa (bwa mem aligns ≈ 1–2 MB of FASTQ per second per thread on this kind of
//! machine) and add at most 2 % to the align step's wall time (`BENCHMARKS.md`). These benches
//! show which part costs what: parsing and checking alone (plain files), gzip decompression
//! (the usual input), and the copy into the pipes (`stream_fastq_pair` into sinks).
//!
//! Data: a synthetic pair written once per run into a temporary directory (20,000 pairs of
//! 150 bases, names like Illumina's), plain and gzip (level 6). With `BIOJOB_TESTDATA` set,
//! the real NA12878 pair is measured too.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::io::Write;

use biojob_formats::{stream_fastq_pair, validate_fastq_pair};
use camino::{Utf8Path, Utf8PathBuf};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const PAIRS: usize = 20_000;
const READ_LENGTH: usize = 150;

/// One synthetic FASTQ file: `PAIRS` records, mate `mate` (1 or 2).
fn fastq_text(mate: u8) -> Vec<u8> {
    let mut text = Vec::with_capacity(PAIRS * (2 * READ_LENGTH + 60));
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15 ^ u64::from(mate);
    for i in 0..PAIRS {
        writeln!(
            text,
            "@SIM:1:FCX:1:{}:{}:{} {mate}:N:0:ACGT",
            1101 + i / 5000,
            i % 5000,
            i
        )
        .unwrap();
        for _ in 0..READ_LENGTH {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push(b"ACGT"[(state % 4) as usize]);
        }
        text.extend_from_slice(b"\n+\n");
        for _ in 0..READ_LENGTH {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push(b'#' + (state % 40) as u8);
        }
        text.push(b'\n');
    }
    text
}

struct Data {
    _dir: tempfile::TempDir,
    plain: (Utf8PathBuf, Utf8PathBuf),
    gzip: (Utf8PathBuf, Utf8PathBuf),
    bytes: u64,
}

fn data() -> Data {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(dir.path()).unwrap().to_owned();
    let mut bytes = 0;
    let mut write = |name: &str, mate: u8| {
        let text = fastq_text(mate);
        bytes += text.len() as u64;
        let plain = root.join(format!("{name}.fastq"));
        std::fs::write(&plain, &text).unwrap();
        let gz = root.join(format!("{name}.fastq.gz"));
        let mut encoder =
            flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), Default::default());
        encoder.write_all(&text).unwrap();
        encoder.finish().unwrap();
        (plain, gz)
    };
    let (plain_1, gz_1) = write("sim_R1", 1);
    let (plain_2, gz_2) = write("sim_R2", 2);
    Data {
        _dir: dir,
        plain: (plain_1, plain_2),
        gzip: (gz_1, gz_2),
        bytes,
    }
}

fn fastq_validation(c: &mut Criterion) {
    let data = data();
    let mut group = c.benchmark_group("fastq_pair");
    group.throughput(Throughput::Bytes(data.bytes));
    group.sample_size(20);
    // Parsing and checking only: the cost of the rules themselves.
    group.bench_function("validate_plain", |b| {
        b.iter(|| black_box(validate_fastq_pair(&data.plain.0, &data.plain.1).unwrap()))
    });
    // The usual input: gzip, every member's CRC32 and ISIZE checked.
    group.bench_function("validate_gzip", |b| {
        b.iter(|| black_box(validate_fastq_pair(&data.gzip.0, &data.gzip.1).unwrap()))
    });
    // What the align step runs: the records also copied into two sinks (pipes to bwa there).
    group.bench_function("stream_gzip_to_sinks", |b| {
        b.iter(|| {
            black_box(
                stream_fastq_pair(&data.gzip.0, &data.gzip.1, std::io::sink(), std::io::sink())
                    .unwrap(),
            )
        })
    });
    group.finish();

    // The real NA12878 pair (plain gzip, reads of 100, 101 and 151 bases), when available.
    if let Ok(dir) = std::env::var("BIOJOB_TESTDATA") {
        let dir = Utf8PathBuf::from(dir);
        let (r1, r2) = (
            dir.join("NA12878_R1.fastq.gz"),
            dir.join("NA12878_R2.fastq.gz"),
        );
        if r1.is_file() && r2.is_file() {
            let (mut bytes_1, mut bytes_2) = (0, 0);
            stream_fastq_pair(
                &r1,
                &r2,
                CountingSink(&mut bytes_1),
                CountingSink(&mut bytes_2),
            )
            .unwrap();
            let mut group = c.benchmark_group("fastq_pair_na12878");
            group.throughput(Throughput::Bytes(bytes_1 + bytes_2));
            group.sample_size(20);
            group.bench_function("validate_gzip", |b| {
                b.iter(|| black_box(validate_fastq_pair(&r1, &r2).unwrap()))
            });
            group.finish();
        }
    }
}

/// A sink that counts the bytes written to it.
struct CountingSink<'a>(&'a mut u64);

impl Write for CountingSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        *self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

criterion_group!(benches, fastq_validation);
criterion_main!(benches);
