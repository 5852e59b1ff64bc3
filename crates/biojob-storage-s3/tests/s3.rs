//! The S3 store against a real S3-compatible server (SeaweedFS) on loopback, directly and
//! through a fault-injecting proxy.

// clippy.toml allows unwrap in `#[test]` functions only; the helpers here are test code too.
#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;
use std::time::Duration;

use biojob_core::{Classify, ExitClass};
use biojob_storage::{ObjectStore, ObjectUri, StorageError};
use biojob_storage_s3::{
    ChecksumAlgorithm, MIB, RetryPolicy, S3Options, S3Stop, S3Store, Sse, StaticCredentials,
};
use biojob_testkit::{
    Fault, FaultProxy, INTERNAL_ERROR_MESSAGE, Rule, SLOW_DOWN_MESSAGE, TEST_BUCKET, s3_server,
};
use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest, Sha256};

#[path = "s3/writer.rs"]
mod writer;

const PART: u64 = 5 * MIB;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
    })
}

fn options(endpoint: &str) -> S3Options {
    let server = s3_server();
    S3Options {
        endpoint_url: Some(endpoint.to_owned()),
        part_size: PART,
        concurrency: 4,
        retry: RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
        },
        credentials: Some(StaticCredentials {
            access_key_id: server.access_key.clone(),
            secret_access_key: server.secret_key.clone(),
        }),
        ..S3Options::default()
    }
}

fn store(options: S3Options) -> S3Store {
    S3Store::new(runtime().handle().clone(), options).unwrap()
}

fn direct() -> S3Store {
    store(options(&s3_server().endpoint))
}

/// A store talking through a new fault proxy.
fn proxied() -> (S3Store, FaultProxy) {
    let proxy = FaultProxy::start(&s3_server().endpoint);
    (store(options(&proxy.endpoint)), proxy)
}

fn uri(key: &str) -> ObjectUri {
    ObjectUri::S3 {
        bucket: TEST_BUCKET.to_owned(),
        key: key.to_owned(),
    }
}

fn data(length: u64, seed: u64) -> Vec<u8> {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..length)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn b64(bytes: &[u8]) -> String {
    aws_smithy_types::base64::encode(bytes)
}

fn crc32c(bytes: &[u8]) -> Vec<u8> {
    (crc_fast::checksum(crc_fast::CrcAlgorithm::Crc32Iscsi, bytes) as u32)
        .to_be_bytes()
        .to_vec()
}

/// The checksum S3 stores for `bytes` uploaded in `PART`-sized parts with CRC32C.
fn expected_crc32c(bytes: &[u8]) -> String {
    if bytes.len() as u64 <= PART {
        return format!("crc32c:{}", b64(&crc32c(bytes)));
    }
    let parts: Vec<Vec<u8>> = bytes.chunks(PART as usize).map(crc32c).collect();
    format!("crc32c:{}-{}", b64(&crc32c(&parts.concat())), parts.len())
}

struct Scratch {
    _dir: tempfile::TempDir,
    root: Utf8PathBuf,
}

fn scratch() -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(dir.path()).unwrap().to_owned();
    Scratch { _dir: dir, root }
}

fn write(path: &Utf8Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// Files in a directory, sorted (to show that no `.partial` stays behind).
fn listing(dir: &Utf8Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn requests_matching(proxy: &FaultProxy, method: &str, needle: &str) -> usize {
    proxy
        .requests()
        .iter()
        .filter(|head| head.starts_with(&format!("{method} ")))
        .filter(|head| head.lines().next().unwrap_or("").contains(needle))
        .count()
}

#[test]
fn sizes_around_the_part_boundary_round_trip_with_verified_checksums() {
    let (store, proxy) = proxied();
    let dir = scratch();
    let cases: [(u64, usize); 7] = [
        (0, 0),
        (1, 0),
        (PART - 1, 0),
        (PART, 0),
        (PART + 1, 2),
        (2 * PART, 2),
        (2 * PART + 3, 3),
    ];
    for (index, (length, expected_uploads)) in cases.into_iter().enumerate() {
        proxy.reset();
        let bytes = data(length, index as u64);
        let source = dir.root.join(format!("source-{index}"));
        write(&source, &bytes);
        let key = format!("sizes/{length}.bin");
        let report = store.put(&source, &uri(&key)).unwrap();
        assert_eq!(report.bytes, length, "{key}");
        assert_eq!(report.sha256, sha256(&bytes), "{key}");
        let expected = expected_crc32c(&bytes);
        assert_eq!(report.checksum.as_deref(), Some(expected.as_str()), "{key}");
        let uploads = requests_matching(&proxy, "PUT", "partNumber=");
        assert_eq!(uploads, expected_uploads, "{key}: UploadPart requests");
        assert_eq!(
            requests_matching(&proxy, "PUT", "") - uploads,
            usize::from(expected_uploads == 0),
            "{key}: PutObject requests"
        );

        assert_eq!(
            store.head(&uri(&key)).unwrap().map(|m| m.size),
            Some(length)
        );
        let back = dir.root.join(format!("back-{index}"));
        proxy.reset();
        let report = store.get(&uri(&key), &back).unwrap();
        assert_eq!(report.bytes, length);
        assert_eq!(report.sha256, sha256(&bytes));
        assert_eq!(report.checksum.as_deref(), Some(expected.as_str()), "{key}");
        assert_eq!(std::fs::read(&back).unwrap(), bytes, "{key}");
        let ranged = requests_matching(&proxy, "GET", "");
        assert_eq!(ranged as u64, length.div_ceil(PART), "{key}: ranged GETs");
    }
    assert!(
        listing(&dir.root).iter().all(|n| !n.ends_with(".partial")),
        "{:?}",
        listing(&dir.root)
    );
    // Path-style addressing against the endpoint.
    assert!(
        proxy
            .requests()
            .iter()
            .all(|head| head.contains(&format!(" /{TEST_BUCKET}/")))
    );
    assert_eq!(store.stats().retries, 0);
}

#[test]
fn sha256_uploads_store_a_composite_sha256() {
    let mut settings = options(&s3_server().endpoint);
    settings.checksum = ChecksumAlgorithm::Sha256;
    let store = store(settings);
    let dir = scratch();
    let bytes = data(2 * PART + 10, 99);
    let source = dir.root.join("source");
    write(&source, &bytes);
    let report = store.put(&source, &uri("sha256/object")).unwrap();
    let parts: Vec<Vec<u8>> = bytes
        .chunks(PART as usize)
        .map(|c| Sha256::digest(c).to_vec())
        .collect();
    let expected = format!("sha256:{}-3", b64(&Sha256::digest(parts.concat())));
    assert_eq!(report.checksum.as_deref(), Some(expected.as_str()));
    // Read back by a CRC32C-configured store: verification follows what S3 holds.
    let back = dir.root.join("back");
    let report = direct().get(&uri("sha256/object"), &back).unwrap();
    assert_eq!(report.checksum.as_deref(), Some(expected.as_str()));
    assert_eq!(std::fs::read(&back).unwrap(), bytes);

    let small = dir.root.join("small");
    write(&small, b"hello");
    let report = store.put(&small, &uri("sha256/small")).unwrap();
    assert_eq!(
        report.checksum.as_deref(),
        Some("sha256:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=")
    );
    let report = direct().get(&uri("sha256/small"), &back).unwrap();
    assert_eq!(
        report.checksum.as_deref(),
        Some("sha256:LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=")
    );
}

#[test]
fn keys_with_spaces_unicode_and_reserved_characters_round_trip_byte_exactly() {
    let store = direct();
    let dir = scratch();
    let keys = [
        "keys/NA12878 (1)+run#2=a&b?c.fastq.gz",
        "keys/ünïcødé/日本語 ファイル.vcf.gz",
        "keys/100% sure;,:@$!'~*[]{}^`|.bam",
        "keys/plus+and%2Bencoded",
    ];
    for (index, key) in keys.iter().enumerate() {
        let bytes = data(100 + index as u64, index as u64);
        let source = dir.root.join("source");
        write(&source, &bytes);
        store.put(&source, &uri(key)).unwrap();
        let back = dir.root.join(format!("back-{index}"));
        store.get(&uri(key), &back).unwrap();
        assert_eq!(std::fs::read(&back).unwrap(), bytes, "{key}");
        assert_eq!(
            store.head(&uri(key)).unwrap().map(|m| m.size),
            Some(bytes.len() as u64)
        );
    }
    // The server holds exactly these keys, byte for byte.
    let server = s3_server();
    let config = aws_sdk_s3::Config::builder()
        .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
        .region(aws_sdk_s3::config::Region::new("us-east-1"))
        .endpoint_url(&server.endpoint)
        .force_path_style(true)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            &server.access_key,
            &server.secret_key,
            None,
            None,
            "test",
        ))
        .build();
    let client = aws_sdk_s3::Client::from_conf(config);
    let listed = runtime()
        .block_on(
            client
                .list_objects_v2()
                .bucket(TEST_BUCKET)
                .prefix("keys/")
                .send(),
        )
        .unwrap();
    let mut found: Vec<String> = listed
        .contents()
        .iter()
        .filter_map(|o| o.key().map(str::to_owned))
        .collect();
    found.sort();
    let mut expected: Vec<String> = keys.iter().map(|k| (*k).to_owned()).collect();
    expected.sort();
    assert_eq!(found, expected);

    // The server itself refuses a wrong checksum.
    let refused = runtime()
        .block_on(
            client
                .put_object()
                .bucket(TEST_BUCKET)
                .key("keys-refused/wrong-checksum")
                .checksum_crc32_c("AAAAAA==")
                .body(aws_sdk_s3::primitives::ByteStream::from_static(b"hello"))
                .send(),
        )
        .unwrap_err();
    use aws_sdk_s3::error::ProvideErrorMetadata;
    assert_eq!(refused.code(), Some("BadDigest"));
}

#[test]
fn keys_that_would_escape_scratch_are_refused_with_the_input_class() {
    let root = Utf8Path::new("/scratch/inputs");
    for text in [
        "s3://biojob-test/../../etc/passwd",
        "s3://biojob-test/a/../../x",
        "s3://biojob-test//etc/passwd",
        "s3://biojob-test/a/./b",
    ] {
        // Refused when parsed, before any request or scratch path.
        let error = ObjectUri::parse(text)
            .and_then(|uri| uri.scratch_path(root))
            .unwrap_err();
        assert!(matches!(error, StorageError::UnsafeKey { .. }), "{text}");
        assert_eq!(error.exit_class(), ExitClass::InputInvalid, "{text}");
        assert_eq!(error.exit_class().code(), 11);
    }
}

#[test]
fn a_missing_object_is_not_found_and_leaves_nothing() {
    let dir = scratch();
    let destination = dir.root.join("missing.fq.gz");
    let error = direct()
        .get(&uri("nowhere/missing.fq.gz"), &destination)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "s3://biojob-test/nowhere/missing.fq.gz does not exist"
    );
    assert_eq!(error.exit_class(), ExitClass::InputInvalid);
    assert_eq!(direct().head(&uri("nowhere/missing.fq.gz")).unwrap(), None);
    assert!(listing(&dir.root).is_empty());
}

#[test]
fn a_reset_mid_body_is_retried_per_part_and_the_result_verified() {
    let (store, proxy) = proxied();
    let dir = scratch();
    let bytes = data(3 * PART - 7, 7);
    let source = dir.root.join("source");
    write(&source, &bytes);
    store.put(&source, &uri("faults/reset-get")).unwrap();
    assert_eq!(store.stats().retries, 0);

    // The second ranged GET is cut after 1 MiB of body, the third after 10 bytes.
    proxy.add(Rule::new(
        "GET",
        "faults/reset-get",
        Fault::ResetResponseAfter(1 << 20),
    ));
    proxy.add(Rule::new(
        "GET",
        "faults/reset-get",
        Fault::ResetResponseAfter(10),
    ));
    let destination = dir.root.join("reset.bin");
    let report = store.get(&uri("faults/reset-get"), &destination).unwrap();
    assert_eq!(proxy.injected().len(), 2);
    assert_eq!(store.stats().retries, 2);
    assert_eq!(report.sha256, sha256(&bytes));
    assert_eq!(
        report.checksum.as_deref(),
        Some(expected_crc32c(&bytes).as_str())
    );
    assert_eq!(std::fs::read(&destination).unwrap(), bytes);
    assert_eq!(listing(&dir.root), ["reset.bin", "source"]);
}

/// A server that takes a request and never answers: the attempt is abandoned after the
/// request timeout and retried (an upload's `PUT`, a download's `HEAD` and `GET`). The object
/// is small, so that every other request ends well within the timeout.
#[test]
fn a_request_never_answered_is_abandoned_after_the_request_timeout_and_retried() {
    let proxy = FaultProxy::start(&s3_server().endpoint);
    let store = store(S3Options {
        request_timeout: Duration::from_secs(2),
        ..options(&proxy.endpoint)
    });
    let dir = scratch();
    let bytes = data(4_096, 21);
    let source = dir.root.join("source");
    write(&source, &bytes);
    proxy.add(Rule::new("PUT", "faults/unanswered", Fault::Stall));
    store.put(&source, &uri("faults/unanswered")).unwrap();
    assert_eq!(proxy.injected_count(Fault::Stall), 1);
    assert_eq!(store.stats().retries, 1);

    proxy.add(Rule::new("HEAD", "faults/unanswered", Fault::Stall));
    proxy.add(Rule::new("GET", "faults/unanswered", Fault::Stall));
    let destination = dir.root.join("unanswered.bin");
    let report = store.get(&uri("faults/unanswered"), &destination).unwrap();
    assert_eq!(proxy.injected_count(Fault::Stall), 3);
    assert_eq!(store.stats().retries, 3);
    assert_eq!(report.sha256, sha256(&bytes));
    assert_eq!(std::fs::read(&destination).unwrap(), bytes);
}

#[test]
fn slow_down_and_upload_resets_are_retried() {
    let (store, proxy) = proxied();
    let dir = scratch();
    let bytes = data(2 * PART + 1, 8);
    let source = dir.root.join("source");
    write(&source, &bytes);
    proxy.add(Rule::new("PUT", "partNumber=2&", Fault::SlowDown).times(2));
    proxy.add(Rule::new(
        "PUT",
        "partNumber=1&",
        Fault::ResetRequestAfter(100_000),
    ));
    proxy.add(Rule::new("HEAD", "faults/slow", Fault::SlowDown));
    let report = store.put(&source, &uri("faults/slow")).unwrap();
    assert_eq!(proxy.injected().len(), 4, "{:?}", proxy.injected());
    assert_eq!(store.stats().retries, 4);
    assert_eq!(
        report.checksum.as_deref(),
        Some(expected_crc32c(&bytes).as_str())
    );
    let back = dir.root.join("back");
    direct().get(&uri("faults/slow"), &back).unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), bytes);
}

#[test]
fn a_body_corrupted_on_the_way_up_is_refused_by_the_server_and_sent_again() {
    let (store, proxy) = proxied();
    let dir = scratch();
    let source = dir.root.join("source");
    let bytes = data(1000, 9);
    write(&source, &bytes);
    proxy.add(Rule::new(
        "PUT",
        "faults/corrupt-up",
        Fault::CorruptRequestByte(500),
    ));
    store.put(&source, &uri("faults/corrupt-up")).unwrap();
    assert_eq!(proxy.injected().len(), 1);
    assert_eq!(store.stats().retries, 1);
    let back = dir.root.join("back");
    direct().get(&uri("faults/corrupt-up"), &back).unwrap();
    assert_eq!(std::fs::read(&back).unwrap(), bytes);
}

#[test]
fn a_body_corrupted_on_the_way_down_fails_verification_and_leaves_no_file() {
    let (store, proxy) = proxied();
    let dir = scratch();
    let source = dir.root.join("source");
    let bytes = data(1000, 10);
    write(&source, &bytes);
    store.put(&source, &uri("faults/corrupt-down")).unwrap();
    proxy.add(Rule::new(
        "GET",
        "faults/corrupt-down",
        Fault::CorruptResponseByte(3),
    ));
    let destination = dir.root.join("down.bin");
    let error = store
        .get(&uri("faults/corrupt-down"), &destination)
        .unwrap_err();
    let mut corrupted = bytes.clone();
    corrupted[3] ^= 0xff;
    assert_eq!(
        error.to_string(),
        format!(
            "s3://biojob-test/faults/corrupt-down: checksum mismatch: S3 holds crc32c:{}, the bytes received give crc32c:{}",
            b64(&crc32c(&bytes)),
            b64(&crc32c(&corrupted))
        )
    );
    assert_eq!(error.exit_class(), ExitClass::InputStaging);
    assert_eq!(listing(&dir.root), ["source"]);
}

#[test]
fn after_the_retry_budget_a_download_fails_with_the_staging_class_and_no_partial() {
    let (store, proxy) = proxied();
    let dir = scratch();
    let source = dir.root.join("source");
    write(&source, &data(2 * PART, 11));
    store.put(&source, &uri("faults/budget-get")).unwrap();
    proxy.add(Rule::new("GET", "faults/budget-get", Fault::ResetResponseAfter(1000)).times(100));
    let destination = dir.root.join("never.bin");
    let error = store
        .get(&uri("faults/budget-get"), &destination)
        .unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with("downloading s3://biojob-test/faults/budget-get: part "),
        "{text}"
    );
    assert!(text.ends_with("(gave up after 4 attempts)"), "{text}");
    assert_eq!(error.exit_class(), ExitClass::InputStaging);
    assert_eq!(error.exit_class().code(), 10);
    // The first failing part spends its budget (3 retries); the other part may be cut short.
    assert!(store.stats().retries >= 3, "{:?}", store.stats());
    assert_eq!(listing(&dir.root), ["source"]);
}

#[test]
fn after_the_retry_budget_an_upload_fails_with_the_staging_class_and_is_aborted() {
    let (store, proxy) = proxied();
    let dir = scratch();
    let source = dir.root.join("source");
    write(&source, &data(2 * PART, 12));
    proxy.add(Rule::new("PUT", "partNumber=2&", Fault::SlowDown).times(100));
    let error = store.put(&source, &uri("faults/budget-put")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "uploading s3://biojob-test/faults/budget-put: part 2 (bytes 5242880+5242880): \
         SlowDown (HTTP 503): Please reduce your request rate. (gave up after 4 attempts)"
    );
    assert_eq!(error.exit_class(), ExitClass::OutputStaging);
    assert_eq!(error.exit_class().code(), 30);
    assert_eq!(
        proxy
            .injected()
            .iter()
            .filter(|(line, _)| line.contains("partNumber=2&"))
            .count(),
        4
    );
    assert_eq!(requests_matching(&proxy, "DELETE", "uploadId="), 1);
    assert_eq!(direct().head(&uri("faults/budget-put")).unwrap(), None);
}

#[test]
fn sse_and_requester_pays_are_sent_with_every_request_that_takes_them() {
    let mut settings = options("");
    let proxy = FaultProxy::start(&s3_server().endpoint);
    settings.endpoint_url = Some(proxy.endpoint.clone());
    settings.sse = Some(Sse::Aes256);
    settings.requester_pays = true;
    let store = store(settings);
    let dir = scratch();
    let source = dir.root.join("source");
    write(&source, &data(PART + 1, 13));
    store.put(&source, &uri("sse/aes256")).unwrap();
    store
        .get(&uri("sse/aes256"), &dir.root.join("back"))
        .unwrap();
    let requests = proxy.requests();
    assert!(!requests.is_empty());
    for head in &requests {
        let lower = head.to_ascii_lowercase();
        assert!(lower.contains("x-amz-request-payer: requester"), "{head}");
        let line = head.lines().next().unwrap_or("");
        let creates = line.starts_with("POST ") && line.contains("uploads");
        if creates {
            assert!(
                lower.contains("x-amz-server-side-encryption: aes256"),
                "{head}"
            );
        }
    }
    assert_eq!(
        requests
            .iter()
            .filter(|h| h
                .to_ascii_lowercase()
                .contains("x-amz-server-side-encryption: aes256"))
            .count(),
        1
    );
}

fn read_all(
    store: &S3Store,
    key: &str,
) -> (std::io::Result<Vec<u8>>, biojob_storage::StreamFailure) {
    use std::io::Read;
    let mut reader = store.open(&uri(key)).unwrap();
    let failure = reader.failure();
    let mut bytes = Vec::new();
    let result = reader.read_to_end(&mut bytes).map(|_| bytes);
    (result, failure)
}

#[test]
fn streamed_reads_give_the_object_byte_for_byte_across_windows_and_parts() {
    use biojob_storage_s3::STREAM_WINDOW;
    let store = direct();
    let dir = scratch();
    // Empty, one byte, inside one part (full-object CRC32C), and multipart objects whose
    // 5 MiB parts (composite CRC32C) straddle the 8 MiB windows.
    let sizes = [
        0,
        1,
        PART - 1,
        STREAM_WINDOW + 1,
        3 * STREAM_WINDOW + PART + 3,
    ];
    for (seed, size) in sizes.into_iter().enumerate() {
        let bytes = data(size, 100 + seed as u64);
        let source = dir.root.join(format!("source-{size}"));
        write(&source, &bytes);
        let key = format!("stream/{size}");
        store.put(&source, &uri(&key)).unwrap();
        let reader = store.open(&uri(&key)).unwrap();
        assert_eq!(reader.size(), size);
        drop(reader);
        let (read, failure) = read_all(&store, &key);
        assert_eq!(read.unwrap(), bytes, "{size} bytes");
        assert!(failure.take().is_none());
    }
    // A reader dropped after its first bytes stops its transfer and does not hang.
    use std::io::Read;
    let mut reader = store
        .open(&uri(&format!("stream/{}", 3 * STREAM_WINDOW + PART + 3)))
        .unwrap();
    let mut first = [0u8; 10];
    reader.read_exact(&mut first).unwrap();
    drop(reader);
    // Nothing was written to scratch.
    assert_eq!(listing(&dir.root).len(), sizes.len());
}

#[test]
fn a_streamed_read_retries_a_cut_window_and_refuses_a_corrupted_one() {
    // One window at a time, so the rules below hit the first window's GET.
    let proxy = FaultProxy::start(&s3_server().endpoint);
    let store = store(S3Options {
        concurrency: 1,
        ..options(&proxy.endpoint)
    });
    // Two parts (a composite checksum) over two windows.
    let bytes = data(PART + 11, 12);
    let dir = scratch();
    let source = dir.root.join("source");
    write(&source, &bytes);
    direct().put(&source, &uri("faults/stream")).unwrap();

    proxy.add(Rule::new(
        "GET",
        "faults/stream",
        Fault::ResetResponseAfter(1 << 20),
    ));
    let (read, failure) = read_all(&store, "faults/stream");
    assert_eq!(read.unwrap(), bytes);
    assert!(failure.take().is_none());
    assert_eq!(proxy.injected().len(), 1);
    assert_eq!(store.stats().retries, 1);

    proxy.add(Rule::new(
        "GET",
        "faults/stream",
        Fault::CorruptResponseByte(3),
    ));
    let (read, failure) = read_all(&store, "faults/stream");
    let mut corrupted = bytes.clone();
    corrupted[3] ^= 0xff;
    let part = |b: &[u8]| crc32c(b);
    let composite = |b: &[u8]| {
        let parts: Vec<Vec<u8>> = b.chunks(PART as usize).map(part).collect();
        b64(&crc32c(&parts.concat()))
    };
    let expected = format!(
        "s3://biojob-test/faults/stream: checksum mismatch: S3 holds crc32c:{}-2, the bytes received give crc32c:{}-2",
        composite(&bytes),
        composite(&corrupted)
    );
    assert_eq!(read.unwrap_err().to_string(), expected);
    let error = failure.take().unwrap();
    assert_eq!(error.to_string(), expected);
    assert_eq!(error.exit_class(), ExitClass::InputStaging);
}

#[test]
fn a_streamed_read_of_a_missing_object_is_not_found() {
    let error = direct().open(&uri("nowhere/stream.fq.gz")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "s3://biojob-test/nowhere/stream.fq.gz does not exist"
    );
    assert_eq!(error.exit_class(), ExitClass::InputInvalid);
}

fn read_ranges(
    store: &S3Store,
    key: &str,
    meta: &biojob_storage::ObjectMeta,
    ranges: &[std::ops::Range<u64>],
) -> (std::io::Result<Vec<u8>>, biojob_storage::StreamFailure) {
    use std::io::Read;
    let mut reader = store.open_ranges(&uri(key), meta, ranges).unwrap();
    let total: u64 = ranges.iter().map(|r| r.end - r.start).sum();
    assert_eq!(reader.size(), total);
    let failure = reader.failure();
    let mut bytes = Vec::new();
    let result = reader.read_to_end(&mut bytes).map(|_| bytes);
    (result, failure)
}

#[test]
fn byte_ranges_are_read_in_turn_byte_for_byte_with_one_get_per_window() {
    use biojob_storage_s3::STREAM_WINDOW;
    let (store, proxy) = proxied();
    let size = 2 * STREAM_WINDOW + 1_000;
    let bytes = data(size, 31);
    let dir = scratch();
    let source = dir.root.join("source");
    write(&source, &bytes);
    direct().put(&source, &uri("ranges/object")).unwrap();
    let meta = store.head(&uri("ranges/object")).unwrap().unwrap();
    assert_eq!(meta.size, size);
    assert!(meta.version.is_some());
    assert!(meta.last_modified.is_some());

    // A small range, one across a window's length, and the last byte.
    let ranges = [10..20, 1_000..STREAM_WINDOW + 2_000, size - 1..size];
    proxy.reset();
    let (read, failure) = read_ranges(&store, "ranges/object", &meta, &ranges);
    let expected: Vec<u8> = ranges
        .iter()
        .flat_map(|r| bytes[r.start as usize..r.end as usize].to_vec())
        .collect();
    assert_eq!(read.unwrap(), expected);
    assert!(failure.take().is_none());
    // No HEAD (the caller's is used); each window one GET, pinned to the ETag.
    let mut asked: Vec<String> = proxy
        .requests()
        .iter()
        .map(|head| {
            assert!(head.starts_with("GET "), "{head}");
            let etag = meta.version.as_deref().unwrap();
            assert!(
                head.lines()
                    .any(|l| l.eq_ignore_ascii_case(&format!("if-match: {etag}"))),
                "{head}"
            );
            head.lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("range: ")
                        .map(str::to_owned)
                })
                .unwrap()
        })
        .collect();
    asked.sort();
    let mut windows = vec![
        "bytes=10-19".to_owned(),
        format!("bytes=1000-{}", STREAM_WINDOW + 999),
        format!("bytes={}-{}", STREAM_WINDOW + 1_000, STREAM_WINDOW + 1_999),
        format!("bytes={}-{}", size - 1, size - 1),
    ];
    windows.sort();
    assert_eq!(asked, windows);
}

#[test]
fn byte_ranges_of_a_changed_object_or_past_its_end_fail() {
    let store = direct();
    let dir = scratch();
    let source = dir.root.join("source");
    write(&source, &data(1_000, 41));
    store.put(&source, &uri("ranges/changing")).unwrap();
    let meta = store.head(&uri("ranges/changing")).unwrap().unwrap();

    let error = store
        .open_ranges(&uri("ranges/changing"), &meta, &[0..10, 990..1_001])
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "s3://biojob-test/ranges/changing: the byte range 990..1001 ends beyond the object (1000 bytes)"
    );
    assert_eq!(error.exit_class(), ExitClass::InputStaging);

    // Rewritten after the HEAD: the pinned GET is refused, not retried.
    write(&source, &data(1_000, 42));
    store.put(&source, &uri("ranges/changing")).unwrap();
    let requests = store.stats().requests;
    let (read, failure) = read_ranges(
        &store,
        "ranges/changing",
        &meta,
        std::slice::from_ref(&(0..10)),
    );
    let expected = "downloading s3://biojob-test/ranges/changing: the object changed during the \
                    download (ETag mismatch)";
    assert_eq!(read.unwrap_err().to_string(), expected);
    let error = failure.take().unwrap();
    assert_eq!(error.to_string(), expected);
    assert_eq!(error.exit_class(), ExitClass::InputStaging);
    assert_eq!(store.stats().requests, requests + 1);
}

#[test]
fn a_cut_range_is_retried() {
    let (store, proxy) = proxied();
    let bytes = data(300_000, 51);
    let dir = scratch();
    let source = dir.root.join("source");
    write(&source, &bytes);
    direct().put(&source, &uri("ranges/cut")).unwrap();
    let meta = store.head(&uri("ranges/cut")).unwrap().unwrap();
    proxy.add(Rule::new(
        "GET",
        "ranges/cut",
        Fault::ResetResponseAfter(1_000),
    ));
    let (read, failure) = read_ranges(
        &store,
        "ranges/cut",
        &meta,
        std::slice::from_ref(&(5_000..250_000)),
    );
    assert_eq!(read.unwrap(), bytes[5_000..250_000]);
    assert!(failure.take().is_none());
    assert_eq!(proxy.injected().len(), 1);
    assert_eq!(store.stats().retries, 1);
}

/// A store that signs with `access_key` and `secret_key` through a new fault proxy.
fn signing_with(access_key: &str, secret_key: &str) -> (S3Store, FaultProxy) {
    let proxy = FaultProxy::start(&s3_server().endpoint);
    let mut settings = options(&proxy.endpoint);
    settings.credentials = Some(StaticCredentials {
        access_key_id: access_key.to_owned(),
        secret_access_key: secret_key.to_owned(),
    });
    (store(settings), proxy)
}

/// The hint of a refused download.
const DENIED_GET: &str = "check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
    AWS_PROFILE, or the job role under AWS Batch) and that the bucket policy and the job role \
    allow s3:GetObject (and s3:ListBucket: without it a missing key is answered with 403)";

/// The hint of a refused upload.
const DENIED_PUT: &str = "check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
    AWS_PROFILE, or the job role under AWS Batch) and that the bucket policy and the job role \
    allow s3:PutObject (and kms:GenerateDataKey with SSE-KMS)";

#[test]
fn a_download_refused_with_403_is_a_configuration_error_and_not_retried() {
    let dir = scratch();
    let source = dir.root.join("source");
    write(&source, &data(100, 14));
    direct().put(&source, &uri("denied/get")).unwrap();
    let server = s3_server();
    let (store, proxy) = signing_with(&server.access_key, &format!("{}x", server.secret_key));
    let destination = dir.root.join("denied.bin");
    let error = store.get(&uri("denied/get"), &destination).unwrap_err();
    // SeaweedFS answers a HEAD signed with a wrong secret key with 403 and no body.
    assert_eq!(
        error.to_string(),
        "reading metadata of s3://biojob-test/denied/get: access denied: HEAD: HTTP 403"
    );
    assert!(matches!(error, StorageError::Denied { .. }), "{error:?}");
    assert_eq!(error.exit_class(), ExitClass::Usage);
    assert_eq!(error.exit_class().code(), 2);
    assert!(!error.exit_class().retryable());
    assert_eq!(error.remedy().as_deref(), Some(DENIED_GET));
    assert_eq!(requests_matching(&proxy, "HEAD", "denied/get"), 1);
    assert_eq!(proxy.requests().len(), 1);
    assert_eq!(store.stats().retries, 0);
    assert_eq!(listing(&dir.root), ["source"]);

    // The same for a metadata lookup and a streamed read.
    for error in [
        store.head(&uri("denied/get")).unwrap_err(),
        store.open(&uri("denied/get")).unwrap_err(),
    ] {
        assert_eq!(
            error.to_string(),
            "reading metadata of s3://biojob-test/denied/get: access denied: HEAD: HTTP 403"
        );
        assert_eq!(error.exit_class(), ExitClass::Usage);
    }
    assert_eq!(store.stats().requests, 3);
    assert_eq!(store.stats().retries, 0);
}

#[test]
fn an_upload_refused_with_403_is_a_configuration_error_and_not_retried() {
    let dir = scratch();
    let server = s3_server();
    let signature = "SignatureDoesNotMatch (HTTP 403): The request signature we calculated does \
        not match the signature you provided. Check your key and signing method.";
    let cases = [
        (
            "small",
            100,
            server.access_key.clone(),
            format!(
                "uploading s3://biojob-test/denied/small: access denied: PutObject: {signature}"
            ),
        ),
        (
            "multipart",
            2 * PART + 1,
            server.access_key.clone(),
            format!(
                "starting the upload of s3://biojob-test/denied/multipart: access denied: \
                 CreateMultipartUpload: {signature}"
            ),
        ),
        (
            "unknown-key",
            100,
            "AKIDUNKNOWN".to_owned(),
            "uploading s3://biojob-test/denied/unknown-key: access denied: PutObject: \
             InvalidAccessKeyId (HTTP 403): The access key ID you provided does not exist in our \
             records."
                .to_owned(),
        ),
    ];
    for (name, length, access_key, expected) in cases {
        let (store, proxy) = signing_with(&access_key, &format!("{}x", server.secret_key));
        let source = dir.root.join(name);
        write(&source, &data(length, 15));
        let key = format!("denied/{name}");
        let error = store.put(&source, &uri(&key)).unwrap_err();
        assert_eq!(error.to_string(), expected, "{name}");
        assert!(matches!(error, StorageError::Denied { .. }), "{error:?}");
        assert_eq!(error.exit_class(), ExitClass::Usage, "{name}");
        assert_eq!(error.exit_class().code(), 2);
        assert!(!error.exit_class().retryable());
        assert_eq!(error.remedy().as_deref(), Some(DENIED_PUT), "{name}");
        // One request, refused; no part was sent.
        assert_eq!(proxy.requests().len(), 1, "{name}: {:?}", proxy.requests());
        assert_eq!(store.stats().retries, 0, "{name}");
        assert_eq!(direct().head(&uri(&key)).unwrap(), None, "{name}");
    }
}

/// The `Range` value of part `index` (0-based) of an object cut into `PART`-sized parts.
fn part_range(index: u64) -> String {
    format!("bytes={}-", index * PART)
}

#[test]
fn bursts_of_500_503_and_resets_on_upload_parts_and_ranged_gets_are_retried() {
    let (store, proxy) = proxied();
    let dir = scratch();
    let bytes = data(3 * PART + 5, 21);
    let source = dir.root.join("source");
    write(&source, &bytes);
    // Each burst stays within one part's 4 attempts, then passes through.
    proxy.add(Rule::new("PUT", "partNumber=2&", Fault::InternalError).times(3));
    proxy.add(Rule::new("PUT", "partNumber=3&", Fault::SlowDown).times(3));
    proxy.add(Rule::new("PUT", "partNumber=4&", Fault::Reset).times(2));
    let report = store.put(&source, &uri("bursts/object")).unwrap();
    assert_eq!(proxy.injected_count(Fault::InternalError), 3);
    assert_eq!(proxy.injected_count(Fault::SlowDown), 3);
    assert_eq!(proxy.injected_count(Fault::Reset), 2);
    assert_eq!(store.stats().retries, 8);
    for (part, sent) in [(1, 1), (2, 4), (3, 4), (4, 3)] {
        assert_eq!(
            requests_matching(&proxy, "PUT", &format!("partNumber={part}&")),
            sent,
            "part {part}"
        );
    }
    assert_eq!(
        report.checksum.as_deref(),
        Some(expected_crc32c(&bytes).as_str())
    );

    proxy.reset();
    // A new store, so that its retry count starts at 0.
    let store = self::store(options(&proxy.endpoint));
    proxy.add(
        Rule::new("GET", "bursts/object", Fault::InternalError)
            .with_header("range", &part_range(1))
            .times(3),
    );
    proxy.add(
        Rule::new("GET", "bursts/object", Fault::SlowDown)
            .with_header("range", &part_range(2))
            .times(3),
    );
    proxy.add(
        Rule::new("GET", "bursts/object", Fault::Reset)
            .with_header("range", &part_range(0))
            .times(2),
    );
    proxy.add(
        // The last part is 5 bytes: cut after 2.
        Rule::new("GET", "bursts/object", Fault::ResetResponseAfter(2))
            .with_header("range", &part_range(3))
            .times(2),
    );
    let destination = dir.root.join("back.bin");
    let report = store.get(&uri("bursts/object"), &destination).unwrap();
    assert_eq!(proxy.injected().len(), 10, "{:?}", proxy.injected());
    assert_eq!(store.stats().retries, 10);
    assert_eq!(report.sha256, sha256(&bytes));
    assert!(std::fs::read(&destination).unwrap() == bytes);
    assert_eq!(listing(&dir.root), ["back.bin", "source"]);
}

#[test]
fn a_streamed_read_is_byte_identical_under_bursts_on_its_windows() {
    use biojob_storage_s3::STREAM_WINDOW;
    let (store, proxy) = proxied();
    let dir = scratch();
    let bytes = data(3 * STREAM_WINDOW + 17, 22);
    let source = dir.root.join("source");
    write(&source, &bytes);
    direct().put(&source, &uri("bursts/stream")).unwrap();
    let window = |index: u64| format!("bytes={}-", index * STREAM_WINDOW);
    proxy.add(
        Rule::new("GET", "bursts/stream", Fault::InternalError)
            .with_header("range", &window(0))
            .times(3),
    );
    proxy.add(
        Rule::new("GET", "bursts/stream", Fault::SlowDown)
            .with_header("range", &window(2))
            .times(3),
    );
    proxy.add(
        Rule::new("GET", "bursts/stream", Fault::Reset)
            .with_header("range", &window(3))
            .times(3),
    );
    let (read, failure) = read_all(&store, "bursts/stream");
    assert!(read.unwrap() == bytes);
    assert!(failure.take().is_none());
    assert_eq!(proxy.injected().len(), 9);
    assert_eq!(store.stats().retries, 9);
}

#[test]
fn a_burst_outlasting_the_retries_fails_with_the_staging_class() {
    let (store, proxy) = proxied();
    let dir = scratch();
    let bytes = data(2 * PART, 23);
    let source = dir.root.join("source");
    write(&source, &bytes);

    // Upload: part 2 answered 500 four times running.
    proxy.add(Rule::new("PUT", "partNumber=2&", Fault::InternalError).times(4));
    let error = store.put(&source, &uri("bursts/budget-put")).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "uploading s3://biojob-test/bursts/budget-put: part 2 (bytes 5242880+5242880): \
             InternalError (HTTP 500): {INTERNAL_ERROR_MESSAGE} (gave up after 4 attempts)"
        )
    );
    assert_eq!(error.exit_class(), ExitClass::OutputStaging);
    assert_eq!(proxy.injected_count(Fault::InternalError), 4);
    assert_eq!(requests_matching(&proxy, "DELETE", "uploadId="), 1);
    assert_eq!(direct().head(&uri("bursts/budget-put")).unwrap(), None);

    // Download: part 2's ranged GET answered 503 four times running.
    direct().put(&source, &uri("bursts/budget-get")).unwrap();
    proxy.reset();
    proxy.add(
        Rule::new("GET", "bursts/budget-get", Fault::SlowDown)
            .with_header("range", &part_range(1))
            .times(4),
    );
    let destination = dir.root.join("never.bin");
    let error = store
        .get(&uri("bursts/budget-get"), &destination)
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "downloading s3://biojob-test/bursts/budget-get: part 2 (bytes 5242880+5242880): \
             SlowDown (HTTP 503): {SLOW_DOWN_MESSAGE} (gave up after 4 attempts)"
        )
    );
    assert_eq!(error.exit_class(), ExitClass::InputStaging);
    assert_eq!(proxy.injected_count(Fault::SlowDown), 4);
    assert_eq!(listing(&dir.root), ["source"]);

    // A streamed read: its second window reset four times running.
    proxy.reset();
    proxy.add(
        Rule::new("GET", "bursts/budget-get", Fault::Reset)
            .with_header(
                "range",
                &format!("bytes={}-", biojob_storage_s3::STREAM_WINDOW),
            )
            .times(4),
    );
    let (read, failure) = read_all(&store, "bursts/budget-get");
    let error = failure.take().unwrap();
    assert_eq!(read.unwrap_err().to_string(), error.to_string());
    assert!(
        error
            .to_string()
            .starts_with("streaming s3://biojob-test/bursts/budget-get: "),
        "{error}"
    );
    assert!(
        error.to_string().ends_with("(gave up after 4 attempts)"),
        "{error}"
    );
    assert_eq!(error.exit_class(), ExitClass::InputStaging);
    assert_eq!(proxy.injected_count(Fault::Reset), 4);
}

/// `create_new` creates an object only where there is none (`If-None-Match: *`), `list` gives
/// the names one level under a prefix, `delete` removes an object and is a no-op without one.
#[test]
fn create_new_is_atomic_list_is_one_level_and_delete_is_idempotent() {
    let store = direct();
    let lock = uri("objects/run/.lock");
    assert!(store.create_new(b"first\n", &lock).unwrap());
    assert!(!store.create_new(b"second\n", &lock).unwrap());
    let dir = scratch();
    let copy = dir.root.join("lock");
    store.get(&lock, &copy).unwrap();
    assert_eq!(std::fs::read(&copy).unwrap(), b"first\n");

    let file = dir.root.join("a.txt");
    write(&file, b"a");
    store.put(&file, &uri("objects/run/a.txt")).unwrap();
    store.put(&file, &uri("objects/run/logs/x.stderr")).unwrap();
    store.put(&file, &uri("objects/runner/b.txt")).unwrap();
    assert_eq!(store.list(&uri("objects/run")).unwrap(), [".lock", "a.txt"]);
    assert_eq!(
        store.list(&uri("objects/none")).unwrap(),
        Vec::<String>::new()
    );

    store.delete(&lock).unwrap();
    store.delete(&lock).unwrap();
    assert_eq!(store.head(&lock).unwrap(), None);
    assert!(store.create_new(b"third\n", &lock).unwrap());
    store.delete(&lock).unwrap();
}

/// A store talking through `proxy` whose stop is `flag` (SIGTERM once set), with `grace` for
/// publishing after it.
fn stoppable(
    proxy: &FaultProxy,
    flag: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    grace: Duration,
) -> S3Store {
    let flag = std::sync::Arc::clone(flag);
    let stop = S3Stop::new(
        move || {
            flag.load(std::sync::atomic::Ordering::SeqCst)
                .then(|| (ExitClass::Terminated, "SIGTERM received".to_owned()))
        },
        grace,
    );
    S3Store::with_stop(runtime().handle().clone(), options(&proxy.endpoint), stop).unwrap()
}

#[test]
fn a_stop_ends_a_stalled_download_at_once_and_publishing_after_the_grace_period() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Instant;
    let dir = scratch();
    let source = dir.root.join("source");
    write(&source, &data(100_000, 31));
    direct().put(&source, &uri("stop/object")).unwrap();
    let proxy = FaultProxy::start(&s3_server().endpoint);
    proxy.add(Rule::new("GET", "stop/object", Fault::Stall).times(100));
    proxy.add(Rule::new("PUT", "stop/stalled", Fault::Stall).times(100));
    let flag = Arc::new(AtomicBool::new(false));
    let store = stoppable(&proxy, &flag, Duration::from_secs(1));

    // The download hangs on its first ranged GET until the stop.
    let setter = {
        let (flag, proxy) = (Arc::clone(&flag), proxy.clone());
        std::thread::spawn(move || {
            while proxy.injected_count(Fault::Stall) == 0 {
                std::thread::sleep(Duration::from_millis(10));
            }
            std::thread::sleep(Duration::from_millis(300));
            flag.store(true, Ordering::SeqCst);
            Instant::now()
        })
    };
    let destination = dir.root.join("copy");
    let error = store.get(&uri("stop/object"), &destination).unwrap_err();
    let stopped = setter.join().unwrap();
    assert!(
        stopped.elapsed() < Duration::from_millis(500),
        "{:?}",
        stopped.elapsed()
    );
    assert_eq!(
        error.to_string(),
        "downloading s3://biojob-test/stop/object: given up: SIGTERM received"
    );
    assert!(matches!(error, StorageError::Stopped { .. }), "{error:?}");
    assert_eq!(error.exit_class(), ExitClass::Terminated);
    assert_eq!(listing(&dir.root), ["source"]);

    // Once stopped, staging in gives up before it sends a request.
    let sent = proxy.requests().len();
    let error = store.head(&uri("stop/object")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "reading metadata of s3://biojob-test/stop/object: given up: SIGTERM received"
    );
    let error = store.open(&uri("stop/object")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "streaming s3://biojob-test/stop/object: given up: SIGTERM received"
    );
    assert_eq!(proxy.requests().len(), sent);

    // Publishing goes on for the grace period from its first call after the stop (a stopped
    // run's logs, the removal of its lock), and a stalled upload gives up when it ends.
    std::thread::sleep(Duration::from_millis(1200));
    let publishing = Instant::now();
    store.put(&source, &uri("stop/logs")).unwrap();
    assert_eq!(
        direct()
            .head(&uri("stop/logs"))
            .unwrap()
            .map(|meta| meta.size),
        Some(100_000)
    );
    store.delete(&uri("stop/logs")).unwrap();
    let error = store.put(&source, &uri("stop/stalled")).unwrap_err();
    let waited = publishing.elapsed();
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(
        error.to_string(),
        "uploading s3://biojob-test/stop/stalled: given up: SIGTERM received"
    );
    assert_eq!(error.exit_class(), ExitClass::Terminated);
    assert_eq!(direct().head(&uri("stop/stalled")).unwrap(), None);
}
