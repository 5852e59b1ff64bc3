//! A FASTQ pair split into chunk objects uploaded while they are compressed
//! (`split_fastq_pair_to_store`), on SeaweedFS: the objects are the chunk files byte for byte,
//! nothing appears before the whole pair is checked, and a fault midway leaves nothing.

use std::io::Write;
use std::num::{NonZeroU64, NonZeroUsize};
use std::sync::OnceLock;

use biojob_core::{Classify, ExitClass};
use biojob_formats::{
    ChunkLayout, FastqError, FastqSource, SplitRequest, StoreSplitRequest, fastq_chunk_names,
    split_fastq_pair, split_fastq_pair_to_store,
};
use biojob_storage::{ObjectStore, ObjectUri, StreamFailure};
use biojob_testkit::{Fault, FaultProxy, Rule, s3_server};
use camino::{Utf8Path, Utf8PathBuf};
use flate2::Compression;
use flate2::write::GzEncoder;

use super::Dir;
use super::bam_slice::{s3_store, s3_uri};

const PAIRS: usize = 160_000;
const BLOCK_PAIRS: u64 = 16_000;
const CHUNKS: usize = 2;

/// A pair of `PAIRS` random 150-base reads with random qualities (which gzip leaves about
/// half their size: each mate's chunks come to several 5 MiB parts), made once.
fn random_pair() -> (&'static Utf8PathBuf, &'static Utf8PathBuf) {
    static PAIR: OnceLock<(Dir, Utf8PathBuf, Utf8PathBuf)> = OnceLock::new();
    let (_, r1, r2) = PAIR.get_or_init(|| {
        let dir = Dir::new();
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut write = |mate: u8| {
            let path = dir.path(&format!("random_R{mate}.fastq.gz"));
            let file = std::fs::File::create(&path).unwrap();
            let mut out = GzEncoder::new(std::io::BufWriter::new(file), Compression::fast());
            for read in 0..PAIRS {
                let bases: String = (0..150)
                    .map(|_| b"ACGT"[(next() % 4) as usize] as char)
                    .collect();
                let qualities: String = (0..150)
                    .map(|_| (b'#' + (next() % 40) as u8) as char)
                    .collect();
                writeln!(out, "@r{read}/{mate}\n{bases}\n+\n{qualities}").unwrap();
            }
            out.finish().unwrap().flush().unwrap();
            path
        };
        let r1 = write(1);
        let r2 = write(2);
        (dir, r1, r2)
    });
    (r1, r2)
}

fn layout() -> ChunkLayout {
    ChunkLayout::InTurn {
        block_pairs: NonZeroU64::new(BLOCK_PAIRS).unwrap(),
        chunks: NonZeroUsize::new(CHUNKS).unwrap(),
    }
}

/// The chunk objects' URIs under `prefix`, read 1 then read 2 of each chunk.
fn chunk_uris(prefix: &ObjectUri) -> Vec<ObjectUri> {
    (0..CHUNKS)
        .flat_map(|chunk| {
            let (name_1, name_2) = fastq_chunk_names("S.split", chunk);
            [prefix.join(&name_1), prefix.join(&name_2)]
        })
        .collect()
}

fn split_to(
    store: &dyn ObjectStore,
    prefix: &ObjectUri,
    spool: &Utf8Path,
    sources: (FastqSource, FastqSource),
    failure: &StreamFailure,
) -> Result<Vec<biojob_formats::StoredChunk>, FastqError> {
    split_fastq_pair_to_store(
        sources.0,
        sources.1,
        &StoreSplitRequest {
            split: SplitRequest {
                layout: layout(),
                dir: spool,
                prefix: "S.split",
                first_chunk: 0,
                threads: NonZeroUsize::new(2).unwrap(),
                stop: &|| false,
            },
            store,
            prefix,
            failure,
        },
    )
}

fn files((r1, r2): (&Utf8PathBuf, &Utf8PathBuf)) -> (FastqSource, FastqSource) {
    (FastqSource::file(r1), FastqSource::file(r2))
}

fn hex_sha256(bytes: &[u8]) -> String {
    super::sha256(bytes)
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[test]
fn chunk_objects_are_the_chunk_files_byte_for_byte_and_the_spool_ends_empty() {
    let pair = random_pair();
    let dir = Dir::new();
    let files_dir = dir.path("files");
    std::fs::create_dir(&files_dir).unwrap();
    let written = split_fastq_pair(
        FastqSource::file(pair.0),
        FastqSource::file(pair.1),
        &SplitRequest {
            layout: layout(),
            dir: &files_dir,
            prefix: "S.split",
            first_chunk: 0,
            threads: NonZeroUsize::new(2).unwrap(),
            stop: &|| false,
        },
    )
    .unwrap();
    let spool = dir.path("spool");
    std::fs::create_dir(&spool).unwrap();
    let store = s3_store(&s3_server().endpoint);
    let prefix = s3_uri("split-store/whole (1)");
    let failure = StreamFailure::default();
    let stored = split_to(&store, &prefix, &spool, files(pair), &failure).unwrap();
    assert!(failure.take().is_none());
    assert_eq!(stored.len(), CHUNKS);
    assert_eq!(
        std::fs::read_dir(&spool).unwrap().count(),
        0,
        "the spool is empty"
    );
    for (chunk, file) in stored.iter().zip(&written) {
        assert_eq!(chunk.index, file.index);
        assert_eq!(chunk.pairs, file.pairs);
        assert_eq!(chunk.bases, file.bases);
        assert_eq!(chunk.pairs, PAIRS as u64 / CHUNKS as u64);
        for (mate, path) in [&file.fastq_1, &file.fastq_2].into_iter().enumerate() {
            let local = std::fs::read(path).unwrap();
            // Several parts per object: the composite checksum says how many.
            assert!(local.len() > 5 << 20, "{} bytes", local.len());
            let transfer = &chunk.transfers[mate];
            assert_eq!(transfer.bytes, local.len() as u64);
            assert_eq!(transfer.sha256, hex_sha256(&local));
            assert!(
                transfer
                    .checksum
                    .as_deref()
                    .is_some_and(|c| c.starts_with("crc32c:") && c.contains('-')),
                "{:?}",
                transfer.checksum
            );
            let back = dir.path(&format!("back.{}.{mate}", chunk.index));
            store.get(&chunk.uris[mate], &back).unwrap();
            assert!(
                std::fs::read(&back).unwrap() == local,
                "{}",
                chunk.uris[mate]
            );
            assert_eq!(
                chunk.uris[mate].file_name(),
                path.file_name(),
                "the objects take the files' names"
            );
        }
    }
}

#[test]
fn a_transfer_fault_midway_fails_the_split_and_leaves_no_object() {
    let pair = random_pair();
    let dir = Dir::new();
    let proxy = FaultProxy::start(&s3_server().endpoint);
    let store = s3_store(&proxy.endpoint);
    let prefix = s3_uri("split-store/fault");
    // The second part of chunk 1's read 2 is refused past the retries (3 attempts).
    proxy.add(
        Rule::new(
            "PUT",
            "0001_R2.fastq.gz?x-id=UploadPart&partNumber=2&",
            Fault::SlowDown,
        )
        .times(100),
    );
    let failure = StreamFailure::default();
    let error = split_to(&store, &prefix, &dir.path(""), files(pair), &failure).unwrap_err();
    assert!(matches!(error, FastqError::Write { .. }), "{error:?}");
    let transfer = failure.take().unwrap();
    // Chunk 1 takes blocks 1, 3, 5…, about 2.8 MB each once compressed: paused after two
    // blocks, its writer holds 5.6 MB, which S3 takes as a part; so are the next two blocks.
    assert_eq!(
        transfer.to_string(),
        "uploading s3://biojob-test/split-store/fault/S.split.0001_R2.fastq.gz: part 2 (bytes \
         5641570+5644520): SlowDown (HTTP 503): Please reduce your request rate. (gave up \
         after 3 attempts)"
    );
    assert_eq!(transfer.exit_class(), ExitClass::OutputStaging);
    // Every upload started was aborted; no object appeared; nothing stayed in the spool.
    let started = count(&proxy, "POST", "?uploads");
    assert_eq!(started, 2 * CHUNKS, "{:#?}", proxy.requests());
    assert_eq!(count(&proxy, "DELETE", "AbortMultipartUpload"), started);
    assert_eq!(
        count(&proxy, "POST", "uploadId="),
        0,
        "no upload was completed"
    );
    let direct = s3_store(&s3_server().endpoint);
    for uri in chunk_uris(&prefix) {
        assert_eq!(direct.head(&uri).unwrap(), None, "{uri}");
    }
    assert_eq!(std::fs::read_dir(dir.path("")).unwrap().count(), 0);
}

#[test]
fn a_damaged_record_late_in_the_input_leaves_no_object() {
    let pair = random_pair();
    let dir = Dir::new();
    // Read 2 loses its last record: the pair is found out of step only at its end, after
    // parts of every chunk were sent.
    let text = super::gunzip(pair.1);
    let lines: Vec<&[u8]> = text.split_inclusive(|b| *b == b'\n').collect();
    let short = dir.write(
        "short_R2.fastq.gz",
        super::gzip(&lines[..lines.len() - 4].concat()),
    );
    let proxy = FaultProxy::start(&s3_server().endpoint);
    let store = s3_store(&proxy.endpoint);
    let prefix = s3_uri("split-store/short");
    let spool = dir.path("spool");
    std::fs::create_dir(&spool).unwrap();
    let failure = StreamFailure::default();
    let error = split_to(
        &store,
        &prefix,
        &spool,
        (FastqSource::file(pair.0), FastqSource::file(&short)),
        &failure,
    )
    .unwrap_err();
    assert!(
        matches!(error, FastqError::CountMismatch { .. }),
        "{error:?}"
    );
    assert_eq!(error.exit_class(), ExitClass::InputInvalid);
    assert!(failure.take().is_none());
    assert!(
        count(&proxy, "PUT", "partNumber=") > 2 * CHUNKS,
        "{:#?}",
        proxy.requests()
    );
    let started = count(&proxy, "POST", "?uploads");
    assert_eq!(started, 2 * CHUNKS);
    assert_eq!(count(&proxy, "DELETE", "AbortMultipartUpload"), started);
    let direct = s3_store(&s3_server().endpoint);
    for uri in chunk_uris(&prefix) {
        assert_eq!(direct.head(&uri).unwrap(), None, "{uri}");
    }
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0);
}

/// Requests with `method` whose request line contains `needle`.
fn count(proxy: &FaultProxy, method: &str, needle: &str) -> usize {
    proxy
        .requests()
        .iter()
        .filter(|head| head.starts_with(&format!("{method} ")))
        .filter(|head| head.lines().next().unwrap_or("").contains(needle))
        .count()
}
