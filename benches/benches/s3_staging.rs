//! Throughput of S3 staging against a real S3-compatible server on loopback (SeaweedFS, the
//! test server of `biojob-testkit`): [`S3Store::put`] (multipart upload with a CRC32C per
//! part) and [`S3Store::get`] (parallel ranged GETs into a `*.partial` file, verified, then
//! renamed), `Throughput::Bytes`: object bytes.
//!
//! Why: every step of a Batch run stages its inputs in and its outputs out (FASTQ, the
//! reference with its bwa index, the BAM, the VCFs), so staging is on the critical path of
//! every job, and the reference design paid for it with one `aws s3 cp` per file. The bench
//! compares part sizes and parts in flight on the same object; `benches/staging.sh` compares
//! the default against the AWS CLI on the same server.
//!
//! Data: one pseudo-random object of `BIOJOB_BENCH_S3_MIB` MiB (default 256), written once
//! into a temporary directory. The server needs `weed` (`scripts/test.sh` installs it). On a
//! shared 2-vCPU machine the server itself takes about half of the CPU, so these figures are
//! a floor for what a real S3 endpoint allows.

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;
use std::time::Duration;

use biojob_storage::{ObjectStore, ObjectUri};
use biojob_storage_s3::{MIB, S3Options, S3Store, StaticCredentials};
use biojob_testkit::{TEST_BUCKET, s3_server};
use camino::Utf8PathBuf;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// Part size (bytes) and parts in flight of each configuration measured.
const CONFIGS: [(u64, usize); 3] = [(8 * MIB, 8), (16 * MIB, 16), (64 * MIB, 4)];

fn object_bytes() -> u64 {
    std::env::var("BIOJOB_BENCH_S3_MIB")
        .ok()
        .and_then(|mib| mib.parse::<u64>().ok())
        .unwrap_or(256)
        * MIB
}

/// Pseudo-random bytes (xorshift), so no layer on the way can compress them.
fn write_object(path: &Utf8PathBuf, length: u64) {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; MIB as usize];
    for _ in 0..length / MIB {
        for chunk in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        file.write_all(&block).unwrap();
    }
    file.flush().unwrap();
}

fn staging(c: &mut Criterion) {
    let server = s3_server();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(dir.path().to_path_buf()).unwrap();
    let length = object_bytes();
    let source = root.join("object.bin");
    write_object(&source, length);

    let mut group = c.benchmark_group("s3_staging");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.throughput(Throughput::Bytes(length));
    for (part_size, concurrency) in CONFIGS {
        let store = S3Store::new(
            runtime.handle().clone(),
            S3Options {
                endpoint_url: Some(server.endpoint.clone()),
                credentials: Some(StaticCredentials {
                    access_key_id: server.access_key.clone(),
                    secret_access_key: server.secret_key.clone(),
                }),
                part_size,
                concurrency,
                ..S3Options::default()
            },
        )
        .unwrap();
        let label = format!("{}MiB_x{concurrency}", part_size / MIB);
        let uri = ObjectUri::S3 {
            bucket: TEST_BUCKET.to_owned(),
            key: format!("bench/{label}/object.bin"),
        };
        group.bench_function(BenchmarkId::new("put", &label), |b| {
            b.iter(|| store.put(&source, &uri).unwrap())
        });
        let destination = root.join(format!("get-{label}.bin"));
        group.bench_function(BenchmarkId::new("get", &label), |b| {
            b.iter(|| {
                let report = store.get(&uri, &destination).unwrap();
                assert_eq!(report.bytes, length);
                std::fs::remove_file(&destination).unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, staging);
criterion_main!(benches);
