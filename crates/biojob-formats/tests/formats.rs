//! Integration tests of biojob-formats: synthetic files written in temp dirs, plus the real
//! NA12878 test data (`BIOJOB_TESTDATA`, by default `shared/testdata` beside the work tree).

// clippy.toml allows unwrap in `#[test]` functions only; the helpers here are test code too.
#![allow(clippy::unwrap_used)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::num::{NonZeroU64, NonZeroUsize};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use biojob_core::{Classify, Contig, ExitClass, Region};
use biojob_formats::{
    AmbiguousRun, BGZF_EOF_BLOCK, BamHeaderSummary, BamRecordCounter, BamRecordCounts, ChunkLayout,
    FastqError, FastqPairStats, FastqSource, FlagCounts, FormatError, IndexProvenance,
    SplitRequest, VariantCounts, VcfContig, VcfHeaderSummary, VcfRules, check_bai_matches_bam,
    check_bam_header, check_bgzf_eof, check_bwa_index_matches_fasta, check_fai_covers_fasta,
    check_fasta_layout, count_bam_records, fastq_chunk_names, first_read_name, quickcheck_bam,
    quickcheck_vcf, read_bam_header_summary, read_bam_stats, read_bwa_index_summary, read_fai,
    scan_vcf, split_fastq_pair, stream_fastq_pair, tabix_contigs, validate_fastq_pair,
};
use biojob_testkit::testdata;
use camino::{Utf8Path, Utf8PathBuf};
use flate2::Compression;
use flate2::read::MultiGzDecoder;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

#[path = "formats/bam_slice.rs"]
mod bam_slice;
#[path = "formats/split_store.rs"]
mod split_store;

// ---------------------------------------------------------------------------------------------
// helpers

fn real_pair() -> (Utf8PathBuf, Utf8PathBuf) {
    let dir = testdata();
    (
        dir.join("NA12878_R1.fastq.gz"),
        dir.join("NA12878_R2.fastq.gz"),
    )
}

struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }

    fn path(&self, name: &str) -> Utf8PathBuf {
        Utf8Path::from_path(self.0.path()).unwrap().join(name)
    }

    fn write(&self, name: &str, bytes: impl AsRef<[u8]>) -> Utf8PathBuf {
        let path = self.path(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn write_gz(&self, name: &str, text: impl AsRef<[u8]>) -> Utf8PathBuf {
        self.write(name, gzip(text.as_ref()))
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn gunzip(path: &Utf8Path) -> Vec<u8> {
    let mut out = Vec::new();
    MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    Sha256::digest(bytes).to_vec()
}

/// `count` synthetic 4-line records named `{prefix}{i}{suffix}` with 50 bases each.
fn fastq(count: usize, prefix: &str, suffix: &str) -> String {
    let mut text = String::new();
    let mut state: u32 = 12345;
    for i in 1..=count {
        let mut sequence = String::new();
        let mut quality = String::new();
        for _ in 0..50 {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12345);
            sequence.push(['A', 'C', 'G', 'T'][(state >> 16) as usize % 4]);
            quality.push(char::from(b'!' + ((state >> 8) % 42) as u8));
        }
        text.push_str(&format!(
            "@{prefix}{i}{suffix} extra words\n{sequence}\n+\n{quality}\n"
        ));
    }
    text
}

/// Replaces line `line` (1-based) of `text`.
fn replace_line(text: &str, line: usize, with: &str) -> String {
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    let replacement = format!("{with}\n");
    lines[line - 1] = &replacement;
    lines.concat()
}

fn invalid_record(error: FastqError) -> (Utf8PathBuf, u64, u64, String) {
    match error {
        FastqError::InvalidRecord {
            path,
            record,
            line,
            reason,
        } => (path, record, line, reason),
        other => panic!("expected InvalidRecord, got {other:?}"),
    }
}

/// A sink that fails every write with `kind`.
struct FailingSink(io::ErrorKind);

impl Write for FailingSink {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::Error::from(self.0))
    }

    fn flush(&mut self) -> io::Result<()> {
        Err(io::Error::from(self.0))
    }
}

/// A sink that fails its first write with `BrokenPipe` only after a delay, so that the other
/// file's reader has certainly found its problem by then.
struct SlowBrokenPipe;

impl Write for SlowBrokenPipe {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        std::thread::sleep(Duration::from_millis(300));
        Err(io::Error::from(io::ErrorKind::BrokenPipe))
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Runs `work` on a thread and fails the test if it takes longer than `limit` (a deadlock).
fn within<T: Send + 'static>(limit: Duration, work: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(work());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("no result within {limit:?}: deadlock?"))
}

/// Reads one 4-line record from `reader` into `out`; false at EOF.
fn read_record(reader: &mut impl BufRead, out: &mut Vec<u8>) -> bool {
    let mut got = 0;
    for _ in 0..4 {
        got += reader.read_until(b'\n', out).unwrap();
    }
    got > 0
}

// ---------------------------------------------------------------------------------------------
// FASTQ pairs: the real data

const REAL_PAIRS: u64 = 13_860;
const REAL_BASES: u64 = 1_481_467;

#[test]
fn real_pair_validates() {
    let (r1, r2) = real_pair();
    let stats = validate_fastq_pair(&r1, &r2).unwrap();
    assert_eq!(
        stats,
        FastqPairStats {
            pairs: REAL_PAIRS,
            bases_1: REAL_BASES,
            bases_2: REAL_BASES,
            bytes_read_1: 860_240,
            bytes_read_2: 1_026_327,
        }
    );
}

#[test]
fn real_pair_streams_the_decompressed_bytes() {
    let (r1, r2) = real_pair();
    let mut out_1 = Vec::new();
    let mut out_2 = Vec::new();
    let stats = stream_fastq_pair(&r1, &r2, &mut out_1, &mut out_2).unwrap();
    assert_eq!(stats.pairs, REAL_PAIRS);
    assert_eq!((stats.bases_1, stats.bases_2), (REAL_BASES, REAL_BASES));
    assert_eq!(sha256(&out_1), sha256(&gunzip(&r1)));
    assert_eq!(sha256(&out_2), sha256(&gunzip(&r2)));
}

/// Simulates bwa: two pipes, one reader thread taking one record from R1, then one from R2, and
/// so on, through small buffers. Must finish without deadlock and see every byte.
#[test]
fn alternating_pipe_consumer_does_not_deadlock() {
    let (r1, r2) = real_pair();
    let (expected_1, expected_2) = (sha256(&gunzip(&r1)), sha256(&gunzip(&r2)));
    let (pipe_1_reader, pipe_1_writer) = io::pipe().unwrap();
    let (pipe_2_reader, pipe_2_writer) = io::pipe().unwrap();
    let consumer = std::thread::spawn(move || {
        let mut reader_1 = BufReader::with_capacity(4096, pipe_1_reader);
        let mut reader_2 = BufReader::with_capacity(4096, pipe_2_reader);
        let (mut all_1, mut all_2) = (Vec::new(), Vec::new());
        let mut pairs = 0u64;
        loop {
            let more_1 = read_record(&mut reader_1, &mut all_1);
            let more_2 = read_record(&mut reader_2, &mut all_2);
            assert_eq!(more_1, more_2, "the pipes ended at different records");
            if !more_1 {
                break;
            }
            pairs += 1;
        }
        (pairs, sha256(&all_1), sha256(&all_2))
    });
    let (r1_owned, r2_owned) = (r1.clone(), r2.clone());
    let stats = within(Duration::from_secs(120), move || {
        stream_fastq_pair(&r1_owned, &r2_owned, pipe_1_writer, pipe_2_writer)
    })
    .unwrap();
    let (pairs, sha_1, sha_2) = within(Duration::from_secs(60), move || consumer.join().unwrap());
    assert_eq!(stats.pairs, REAL_PAIRS);
    assert_eq!(pairs, REAL_PAIRS);
    assert_eq!(sha_1, expected_1);
    assert_eq!(sha_2, expected_2);
}

/// The opposite extreme: a consumer that reads all of R1 before any of R2. Only possible
/// because neither writer waits for the other file.
#[test]
fn sequential_pipe_consumer_does_not_deadlock() {
    let (r1, r2) = real_pair();
    let (pipe_1_reader, pipe_1_writer) = io::pipe().unwrap();
    let (pipe_2_reader, pipe_2_writer) = io::pipe().unwrap();
    let consumer = std::thread::spawn(move || {
        let (mut all_1, mut all_2) = (Vec::new(), Vec::new());
        BufReader::new(pipe_1_reader)
            .read_to_end(&mut all_1)
            .unwrap();
        BufReader::new(pipe_2_reader)
            .read_to_end(&mut all_2)
            .unwrap();
        (all_1.len(), all_2.len())
    });
    let stats = within(Duration::from_secs(120), move || {
        stream_fastq_pair(&r1, &r2, pipe_1_writer, pipe_2_writer)
    })
    .unwrap();
    let (len_1, len_2) = within(Duration::from_secs(60), move || consumer.join().unwrap());
    assert_eq!(stats.pairs, REAL_PAIRS);
    assert!(len_1 > 0 && len_2 > 0);
}

#[test]
fn real_pair_with_r2_one_record_short() {
    let (r1, r2) = real_pair();
    let dir = Dir::new();
    let text = gunzip(&r2);
    let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
    let shorter: Vec<u8> = lines[..lines.len() - 4].concat();
    let short_r2 = dir.write_gz("NA12878_R2.fastq.gz", shorter);
    let error = validate_fastq_pair(&r1, &short_r2).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{short_r2} ended after 13859 records; {r1} has more")
    );
    assert!(matches!(
        error,
        FastqError::CountMismatch { records: 13859, ref shorter, ref longer }
            if *shorter == short_r2 && *longer == r1
    ));
    assert_eq!(error.exit_class(), ExitClass::InputInvalid);
}

// ---------------------------------------------------------------------------------------------
// FASTQ pairs: synthetic inputs

#[test]
fn plain_fastq_is_accepted_and_streamed_unchanged() {
    let dir = Dir::new();
    let text_1 = fastq(30, "r", "");
    let text_2 = fastq(30, "r", "");
    let r1 = dir.write("r1.fastq", &text_1);
    let r2 = dir.write("r2.fastq", &text_2);
    let (mut out_1, mut out_2) = (Vec::new(), Vec::new());
    let stats = stream_fastq_pair(&r1, &r2, &mut out_1, &mut out_2).unwrap();
    assert_eq!(stats.pairs, 30);
    assert_eq!((stats.bases_1, stats.bases_2), (1500, 1500));
    assert_eq!(stats.bytes_read_1, text_1.len() as u64);
    assert_eq!(out_1, text_1.as_bytes());
    assert_eq!(out_2, text_2.as_bytes());
}

#[test]
fn plain_and_gzip_can_be_mixed() {
    let dir = Dir::new();
    let r1 = dir.write("r1.fastq", fastq(5, "r", ""));
    let r2 = dir.write_gz("r2.fastq.gz", fastq(5, "r", ""));
    assert_eq!(validate_fastq_pair(&r1, &r2).unwrap().pairs, 5);
}

#[test]
fn mate_suffixes_are_accepted() {
    let dir = Dir::new();
    let r1 = dir.write_gz("r1.fastq.gz", fastq(10, "frag", "/1"));
    let r2 = dir.write_gz("r2.fastq.gz", fastq(10, "frag", "/2"));
    assert_eq!(validate_fastq_pair(&r1, &r2).unwrap().pairs, 10);
    // A suffix on one side only names the same fragments.
    let plain = dir.write_gz("plain.fastq.gz", fastq(10, "frag", ""));
    assert_eq!(validate_fastq_pair(&r1, &plain).unwrap().pairs, 10);
}

/// R1 holding `/2` names and R2 `/1` names (the files swapped) was accepted, since the suffixes
/// are removed before the names are compared; a suffix must match the file it is in.
#[test]
fn mate_suffixes_in_the_wrong_file_are_rejected() {
    let dir = Dir::new();
    let r1 = dir.write_gz("r1.fastq.gz", fastq(10, "frag", "/2"));
    let r2 = dir.write_gz("r2.fastq.gz", fastq(10, "frag", "/1"));
    let error = validate_fastq_pair(&r1, &r2).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{r1}: record 1, line 1: read name \"frag1/2\" ends in /2 in the file of read 1; a \
             name that ends in /1 or /2 must be in the R1 or R2 file respectively (R1 and R2 \
             swapped?)"
        )
    );
    assert_eq!(error.exit_class(), ExitClass::InputInvalid);
    // One record of R2 named /1 among /2 names, found at its record.
    let good_1 = dir.write("good1.fastq", fastq(5, "frag", "/1"));
    let text = fastq(5, "frag", "/2").replace("@frag4/2 ", "@frag4/1 ");
    let r2 = dir.write("r2.fastq", text);
    let error = validate_fastq_pair(&good_1, &r2).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{r2}: record 4, line 13: read name \"frag4/1\" ends in /1 in the file of read 2; a \
             name that ends in /1 or /2 must be in the R1 or R2 file respectively (R1 and R2 \
             swapped?)"
        )
    );
}

#[test]
fn multi_member_gzip_is_accepted() {
    let dir = Dir::new();
    let text = fastq(40, "r", "");
    let (head, tail) = text.split_at(text.len() / 2); // splits inside a record
    let mut members = gzip(head.as_bytes());
    members.extend(gzip(tail.as_bytes()));
    let r1 = dir.write("r1.fastq.gz", members);
    let r2 = dir.write_gz("r2.fastq.gz", &text);
    let (mut out_1, mut out_2) = (Vec::new(), Vec::new());
    let stats = stream_fastq_pair(&r1, &r2, &mut out_1, &mut out_2).unwrap();
    assert_eq!(stats.pairs, 40);
    assert_eq!(out_1, text.as_bytes());
}

#[test]
fn bgzf_fastq_is_accepted() {
    let dir = Dir::new();
    let text = fastq(2000, "r", "");
    let mut writer = noodles::bgzf::io::Writer::new(Vec::new());
    writer.write_all(text.as_bytes()).unwrap();
    let bgzf = writer.finish().unwrap();
    let r1 = dir.write("r1.fastq.gz", bgzf);
    check_bgzf_eof(&r1).unwrap();
    let r2 = dir.write("r2.fastq", &text);
    let stats = validate_fastq_pair(&r1, &r2).unwrap();
    assert_eq!(stats.pairs, 2000);
    assert_eq!(stats.bases_1, 100_000);
}

#[test]
fn missing_final_newline_is_accepted_and_kept() {
    let dir = Dir::new();
    let text = fastq(3, "r", "");
    let trimmed = text.strip_suffix('\n').unwrap();
    let r1 = dir.write("r1.fastq", trimmed);
    let r2 = dir.write("r2.fastq", &text);
    let (mut out_1, mut out_2) = (Vec::new(), Vec::new());
    stream_fastq_pair(&r1, &r2, &mut out_1, &mut out_2).unwrap();
    assert_eq!(out_1, trimmed.as_bytes());
}

#[test]
fn crlf_line_ends_are_accepted() {
    let dir = Dir::new();
    let text = fastq(3, "r", "").replace('\n', "\r\n");
    let r1 = dir.write("r1.fastq", &text);
    let r2 = dir.write("r2.fastq", fastq(3, "r", ""));
    let stats = validate_fastq_pair(&r1, &r2).unwrap();
    assert_eq!(stats.bases_1, 150);
}

/// The nf-core `test_quality_mismatch.fastq` case: record 2 has 52 bases, 47 qualities.
#[test]
fn short_quality_is_rejected() {
    let dir = Dir::new();
    let text = fastq(4, "r", "");
    let text = replace_line(&text, 6, &"A".repeat(52));
    let text = replace_line(&text, 8, &"I".repeat(47));
    let r1 = dir.write_gz("r1.fastq.gz", &text);
    let r2 = dir.write_gz("r2.fastq.gz", fastq(4, "r", ""));
    let error = validate_fastq_pair(&r1, &r2).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{r1}: record 2, line 8: sequence has 52 bases but quality has 47 characters")
    );
    let (path, record, line, _) = invalid_record(error);
    assert_eq!((path, record, line), (r1, 2, 8));
}

/// The nucleus `malformed.fastq` case: a record without its `+` line.
#[test]
fn missing_plus_line_is_rejected() {
    let dir = Dir::new();
    let text = fastq(4, "r", "");
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    lines.remove(6); // record 2's '+' line
    let r1 = dir.write("r1.fastq", fastq(4, "r", ""));
    let r2 = dir.write("r2.fastq", lines.concat());
    let (path, record, line, reason) = invalid_record(validate_fastq_pair(&r1, &r2).unwrap_err());
    assert_eq!((path, record, line), (r2, 2, 7));
    assert!(
        reason.starts_with("expected a '+' line, found \""),
        "{reason}"
    );
}

#[test]
fn header_without_at_sign_is_rejected() {
    let dir = Dir::new();
    let r1 = dir.write("r1.fastq", fastq(2, "r", ""));
    let r2 = dir.write("r2.fastq", replace_line(&fastq(2, "r", ""), 5, ">r2"));
    let (_, record, line, reason) = invalid_record(validate_fastq_pair(&r1, &r2).unwrap_err());
    assert_eq!((record, line), (2, 5));
    assert_eq!(
        reason,
        "expected a header line starting with '@', found \">r2\""
    );
}

#[test]
fn record_cut_after_the_sequence_is_rejected() {
    let dir = Dir::new();
    let text = fastq(2, "r", "");
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    let r1 = dir.write("r1.fastq", lines[..6].concat());
    let r2 = dir.write("r2.fastq", &text);
    let (_, record, line, reason) = invalid_record(validate_fastq_pair(&r1, &r2).unwrap_err());
    assert_eq!((record, line), (2, 7));
    assert_eq!(
        reason,
        "the file ends after the sequence line; expected a '+' line"
    );
}

#[test]
fn plus_line_with_another_name_is_rejected() {
    let dir = Dir::new();
    let r1 = dir.write("r1.fastq", replace_line(&fastq(2, "r", ""), 3, "+x"));
    let r2 = dir.write("r2.fastq", fastq(2, "r", ""));
    let (_, record, line, _) = invalid_record(validate_fastq_pair(&r1, &r2).unwrap_err());
    assert_eq!((record, line), (1, 3));
    // Repeating the whole header is fine.
    let r1 = dir.write(
        "r1b.fastq",
        replace_line(&fastq(2, "r", ""), 3, "+r1 extra words"),
    );
    validate_fastq_pair(&r1, &r2).unwrap();
}

#[test]
fn quality_below_phred33_is_rejected() {
    let dir = Dir::new();
    let r2 = dir.write("r2.fastq", fastq(3, "r", ""));
    for (bad, shown) in [(' ', "' ' (byte 0x20)"), ('\t', "'\\t' (byte 0x09)")] {
        let mut quality = "I".repeat(50);
        quality.replace_range(9..10, &bad.to_string());
        let r1 = dir.write("r1.fastq", replace_line(&fastq(3, "r", ""), 8, &quality));
        let (_, record, line, reason) = invalid_record(validate_fastq_pair(&r1, &r2).unwrap_err());
        assert_eq!((record, line), (2, 8));
        assert_eq!(
            reason,
            format!(
                "quality character {shown} at position 10 is outside the Phred+33 range '!'..='~'"
            )
        );
    }
}

/// A `-` (a gap character from an alignment export) or any byte outside SAM's `SEQ` alphabet
/// would reach bwa and then fail samtools with "CIGAR and query sequence are of different
/// length" (a tool failure, 20); the FASTQ check refuses it first as input (11).
#[test]
fn base_outside_sam_seq_alphabet_is_rejected() {
    let dir = Dir::new();
    let r1 = dir.write("r1.fastq", fastq(3, "r", ""));
    let mut bases = "A".repeat(50);
    bases.replace_range(6..7, "-");
    let r2 = dir.write_gz("r2.fastq.gz", replace_line(&fastq(3, "r", ""), 10, &bases));
    let error = validate_fastq_pair(&r1, &r2).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{r2}: record 3, line 10: base '-' (byte 0x2d) at position 7 is not a sequence \
             character (SAM SEQ allows letters, '=' and '.')"
        )
    );
    assert_eq!(error.exit_class(), ExitClass::InputInvalid);
    // IUPAC codes, lower case, '=' and '.' are all SAM SEQ characters.
    let r2 = dir.write(
        "r2b.fastq",
        replace_line(
            &fastq(3, "r", ""),
            10,
            &format!("{}NRYacgt=.", "A".repeat(41)),
        ),
    );
    validate_fastq_pair(&r1, &r2).unwrap();
}

#[test]
fn mate_names_differing_at_record_3_are_rejected() {
    let dir = Dir::new();
    let r1 = dir.write_gz("r1.fastq.gz", fastq(5, "r", ""));
    let r2 = dir.write_gz(
        "r2.fastq.gz",
        replace_line(&fastq(5, "r", ""), 9, "@other/2 x"),
    );
    let error = validate_fastq_pair(&r1, &r2).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("mate names differ at record 3: \"r3\" in {r1}, \"other\" in {r2}")
    );
    assert!(matches!(error, FastqError::MateMismatch { record: 3, .. }));
    assert!(error.remedy().is_some());
}

#[test]
fn mate_mismatch_is_found_when_streaming_too() {
    let dir = Dir::new();
    let r1 = dir.write("r1.fastq", fastq(20_000, "r", ""));
    let r2 = dir.write(
        "r2.fastq",
        replace_line(&fastq(20_000, "r", ""), 4 * 9000 + 1, "@x"),
    );
    let error = stream_fastq_pair(&r1, &r2, io::sink(), io::sink()).unwrap_err();
    assert!(
        matches!(error, FastqError::MateMismatch { record: 9001, .. }),
        "{error:?}"
    );
}

#[test]
fn r2_shorter_by_one_record_is_rejected() {
    let dir = Dir::new();
    let r1 = dir.write_gz("r1.fastq.gz", fastq(6, "r", ""));
    let r2 = dir.write_gz("r2.fastq.gz", fastq(5, "r", ""));
    let error = validate_fastq_pair(&r1, &r2).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{r2} ended after 5 records; {r1} has more")
    );
    // And the other way round, while streaming.
    let error = stream_fastq_pair(&r2, &r1, io::sink(), io::sink()).unwrap_err();
    assert!(
        matches!(error, FastqError::CountMismatch { records: 5, ref shorter, .. } if *shorter == r2)
    );
}

#[test]
fn truncated_gzip_is_rejected() {
    let dir = Dir::new();
    let text = fastq(2000, "r", "");
    let mut bytes = gzip(text.as_bytes());
    bytes.truncate(bytes.len() - 100);
    let r1 = dir.write("r1.fastq.gz", bytes);
    let r2 = dir.write_gz("r2.fastq.gz", &text);
    let error = validate_fastq_pair(&r1, &r2).unwrap_err();
    let FastqError::Gzip {
        ref path,
        records,
        reason,
        ..
    } = error
    else {
        panic!("expected a gzip error, got {error:?}");
    };
    assert_eq!(*path, r1);
    assert_eq!(reason, "gzip stream ends early (truncated file?)");
    assert!((1900..2000).contains(&records), "{records}");
    assert_eq!(
        error.to_string(),
        format!("{r1}: gzip stream ends early (truncated file?) after record {records}")
    );
    assert_eq!(error.exit_class(), ExitClass::InputInvalid);
}

#[test]
fn corrupted_gzip_crc_is_rejected() {
    let dir = Dir::new();
    let text = fastq(50, "r", "");
    let mut bytes = gzip(text.as_bytes());
    let crc = bytes.len() - 8; // the trailer: CRC32, then ISIZE
    bytes[crc] ^= 0xff;
    let r1 = dir.write_gz("r1.fastq.gz", &text);
    let r2 = dir.write("r2.fastq.gz", bytes);
    let error = validate_fastq_pair(&r1, &r2).unwrap_err();
    assert!(
        matches!(
            error,
            FastqError::Gzip {
                records: 50,
                reason: "gzip member checksum (CRC32 or ISIZE) does not match its data",
                ..
            }
        ),
        "{error:?}"
    );
}

#[test]
fn empty_files_are_rejected() {
    let dir = Dir::new();
    let full = dir.write("full.fastq", fastq(3, "r", ""));
    let empty = dir.write("empty.fastq", "");
    let error = validate_fastq_pair(&full, &empty).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{empty}: no records (empty file)")
    );
    let empty_gz = dir.write_gz("empty.fastq.gz", "");
    let error = validate_fastq_pair(&empty_gz, &full).unwrap_err();
    assert!(matches!(error, FastqError::Empty { ref path } if *path == empty_gz));
}

/// `FASTQ_1` naming a FIFO with no writer once hung in `open()` (even through SIGTERM), and
/// `/dev/zero` spun at 100 % CPU: a path that is not a regular file is refused before it is
/// opened, with the input class. The time limit guards against the hang; it is not a speed
/// target.
#[test]
fn inputs_that_are_not_regular_files_are_refused_before_they_are_opened() {
    let dir = Dir::new();
    let fifo = dir.path("R1.fastq.gz");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let r2 = dir.write("r2.fastq", fastq(3, "r", ""));
    let cases = [
        (fifo.clone(), "a FIFO (named pipe)"),
        (Utf8PathBuf::from("/dev/zero"), "a character device"),
        (dir.path(""), "a directory"),
    ];
    for (path, kind) in cases {
        let expected = format!("{path} is {kind}, not a regular file");
        let (first, second) = (path.clone(), r2.clone());
        let error = within(Duration::from_secs(5), move || {
            validate_fastq_pair(&first, &second).unwrap_err()
        });
        assert_eq!(error.to_string(), expected);
        assert_eq!(error.exit_class(), ExitClass::InputInvalid);
        assert_eq!(
            error.remedy().as_deref(),
            Some("give a regular file (write a pipe's or a device's output to a file first)")
        );
        // As R2, streaming into sinks.
        let (first, second) = (r2.clone(), path.clone());
        let error = within(Duration::from_secs(5), move || {
            stream_fastq_pair(&first, &second, io::sink(), io::sink()).unwrap_err()
        });
        assert_eq!(error.to_string(), expected);
    }
}

#[test]
fn missing_file_is_an_open_error() {
    let dir = Dir::new();
    let full = dir.write("full.fastq", fastq(3, "r", ""));
    let missing = dir.path("missing.fastq");
    let error = validate_fastq_pair(&full, &missing).unwrap_err();
    assert!(matches!(error, FastqError::Open { ref path, .. } if *path == missing));
    assert_eq!(error.exit_class(), ExitClass::InputInvalid);
}

#[test]
fn zstd_is_named_as_unsupported() {
    let dir = Dir::new();
    let full = dir.write("full.fastq", fastq(3, "r", ""));
    let zstd = dir.write("r2.fastq.zst", [0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0]);
    let error = validate_fastq_pair(&full, &zstd).unwrap_err();
    assert!(matches!(
        error,
        FastqError::UnsupportedCompression { format: "zstd", .. }
    ));
}

#[test]
fn closed_consumer_is_reported_as_such() {
    let dir = Dir::new();
    let r1 = dir.write("r1.fastq", fastq(100, "r", ""));
    let r2 = dir.write("r2.fastq", fastq(100, "r", ""));
    let error = stream_fastq_pair(&r1, &r2, FailingSink(io::ErrorKind::BrokenPipe), io::sink())
        .unwrap_err();
    assert!(
        matches!(error, FastqError::ConsumerClosed { ref path, .. } if *path == r1),
        "{error:?}"
    );
    assert_eq!(error.exit_class(), ExitClass::ToolFailed);

    let error = stream_fastq_pair(
        &r1,
        &r2,
        io::sink(),
        FailingSink(io::ErrorKind::StorageFull),
    )
    .unwrap_err();
    assert!(matches!(error, FastqError::Write { .. }), "{error:?}");
    assert_eq!(error.exit_class(), ExitClass::Scratch);
}

/// A real pipe whose reader exits early (an aligner that died), on the real data.
#[test]
fn closed_pipe_gives_consumer_closed() {
    let (r1, r2) = real_pair();
    let (pipe_1_reader, pipe_1_writer) = io::pipe().unwrap();
    let (pipe_2_reader, pipe_2_writer) = io::pipe().unwrap();
    let consumer = std::thread::spawn(move || {
        let mut reader_1 = BufReader::new(pipe_1_reader);
        let mut reader_2 = BufReader::new(pipe_2_reader);
        let mut sink = Vec::new();
        for _ in 0..100 {
            read_record(&mut reader_1, &mut sink);
            read_record(&mut reader_2, &mut sink);
        }
        // Both readers are dropped here: the "aligner" exits.
    });
    let error = within(Duration::from_secs(120), move || {
        stream_fastq_pair(&r1, &r2, pipe_1_writer, pipe_2_writer)
    })
    .unwrap_err();
    consumer.join().unwrap();
    assert!(
        matches!(error, FastqError::ConsumerClosed { .. }),
        "{error:?}"
    );
}

/// An invalid record wins over the broken pipe it causes downstream, whichever is found first.
#[test]
fn input_errors_win_over_a_closed_consumer() {
    let dir = Dir::new();
    let r1 = dir.write("r1.fastq", fastq(100, "r", ""));
    let r2 = dir.write("r2.fastq", replace_line(&fastq(100, "r", ""), 1, "bad"));
    let error = stream_fastq_pair(&r1, &r2, SlowBrokenPipe, io::sink()).unwrap_err();
    let (path, record, _, _) = invalid_record(error);
    assert_eq!((path, record), (r2, 1));
}

// ---------------------------------------------------------------------------------------------
// FASTA index

#[test]
fn real_fai_lists_the_three_contigs() {
    let contigs = read_fai(&testdata().join("ref.fa.fai")).unwrap();
    assert_eq!(
        contigs,
        [
            Contig::new("chr20", 300_000),
            Contig::new("chr22", 12_356),
            Contig::new("chrM", 16_571),
        ]
    );
}

#[test]
fn bad_fai_files_are_rejected() {
    let dir = Dir::new();
    let fai = dir.write("ref.fa.fai", "chr1\tnot-a-number\t6\t60\t61\n");
    let error = read_fai(&fai).unwrap_err();
    assert!(
        matches!(error, FormatError::Parse { ref path, .. } if *path == fai),
        "{error:?}"
    );
    assert_eq!(error.exit_class(), ExitClass::InputInvalid);

    let fai = dir.write("dup.fa.fai", "chr1\t10\t6\t60\t61\nchr1\t10\t30\t60\t61\n");
    assert_eq!(
        read_fai(&fai).unwrap_err().to_string(),
        format!("{fai}: line 2: contig \"chr1\" is listed twice")
    );

    let fai = dir.write("empty.fa.fai", "");
    assert!(matches!(
        read_fai(&fai).unwrap_err(),
        FormatError::Invalid { .. }
    ));

    let missing = dir.path("missing.fai");
    assert!(matches!(
        read_fai(&missing).unwrap_err(),
        FormatError::Io { .. }
    ));
}

// ---------------------------------------------------------------------------------------------
// BGZF

fn bgzf_bytes(text: &[u8]) -> Vec<u8> {
    let mut writer = noodles::bgzf::io::Writer::new(Vec::new());
    writer.write_all(text).unwrap();
    writer.finish().unwrap()
}

#[test]
fn complete_bgzf_passes() {
    let dir = Dir::new();
    let good = dir.write("good.vcf.gz", bgzf_bytes(b"##fileformat=VCFv4.2\n"));
    check_bgzf_eof(&good).unwrap();
    check_bgzf_eof(&testdata().join("truth.NA12878.giab.vcf.gz")).unwrap();
}

#[test]
fn bgzf_without_eof_block_is_truncated() {
    let dir = Dir::new();
    let mut bytes = bgzf_bytes(&fastq(500, "r", "").into_bytes());
    bytes.truncate(bytes.len() - 28);
    let cut = dir.write("cut.bam", &bytes);
    let error = check_bgzf_eof(&cut).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{cut}: missing BGZF EOF block (truncated?)")
    );
    assert_eq!(error.exit_class_for_output(), ExitClass::OutputInvalid);

    bytes.truncate(bytes.len() / 2);
    let half = dir.write("half.bam", &bytes);
    assert!(matches!(
        check_bgzf_eof(&half).unwrap_err(),
        FormatError::MissingBgzfEof { .. }
    ));
}

#[test]
fn plain_gzip_is_not_bgzf() {
    let dir = Dir::new();
    let plain = dir.write("plain.vcf.gz", gzip(b"##fileformat=VCFv4.2\n"));
    let error = check_bgzf_eof(&plain).unwrap_err();
    assert!(
        matches!(error, FormatError::NotBgzf { reason, .. } if reason.starts_with("plain gzip")),
        "{error:?}"
    );
    assert!(error.remedy().unwrap().contains("bgzip"));

    let text = dir.write("text.vcf", "##fileformat=VCFv4.2\n");
    assert!(matches!(
        check_bgzf_eof(&text).unwrap_err(),
        FormatError::NotBgzf {
            reason: "not a gzip file (no 1f 8b 08 magic)",
            ..
        }
    ));
    let empty = dir.write("empty.vcf.gz", "");
    assert!(matches!(
        check_bgzf_eof(&empty).unwrap_err(),
        FormatError::NotBgzf {
            reason: "the file is empty",
            ..
        }
    ));
}

// ---------------------------------------------------------------------------------------------
// BAM header

const SAM_HEADER: &str = "@HD\tVN:1.6\tSO:coordinate\n\
    @SQ\tSN:chr20\tLN:300000\n\
    @SQ\tSN:chr22\tLN:12356\n\
    @SQ\tSN:chrM\tLN:16571\n\
    @RG\tID:NA12878.L1\tSM:NA12878\tLB:lib1\tPL:ILLUMINA\tPU:FC.1\n\
    @RG\tID:NA12878.L2\tSM:NA12878\n\
    @PG\tID:bwa\tPN:bwa\n";

fn write_bam(path: &Utf8Path, header_text: &str) {
    let header: noodles::sam::Header = header_text.parse().unwrap();
    let mut writer = noodles::bam::io::Writer::new(std::fs::File::create(path).unwrap());
    writer.write_header(&header).unwrap();
    writer.try_finish().unwrap();
}

#[test]
fn bam_header_summary() {
    let dir = Dir::new();
    let bam = dir.path("x.bam");
    write_bam(&bam, SAM_HEADER);
    check_bgzf_eof(&bam).unwrap();
    let pair = |tag: &str, value: &str| (tag.to_owned(), value.to_owned());
    assert_eq!(
        read_bam_header_summary(&bam).unwrap(),
        BamHeaderSummary {
            sort_order: Some("coordinate".to_owned()),
            read_groups: vec![
                (
                    "NA12878.L1".to_owned(),
                    vec![
                        pair("ID", "NA12878.L1"),
                        pair("SM", "NA12878"),
                        pair("LB", "lib1"),
                        pair("PL", "ILLUMINA"),
                        pair("PU", "FC.1"),
                    ]
                ),
                (
                    "NA12878.L2".to_owned(),
                    vec![pair("ID", "NA12878.L2"), pair("SM", "NA12878")]
                ),
            ],
            contigs: vec![
                Contig::new("chr20", 300_000),
                Contig::new("chr22", 12_356),
                Contig::new("chrM", 16_571),
            ],
        }
    );
}

#[test]
fn bam_header_without_hd_has_no_sort_order() {
    let dir = Dir::new();
    let bam = dir.path("x.bam");
    write_bam(&bam, "@SQ\tSN:chr1\tLN:10\n");
    let summary = read_bam_header_summary(&bam).unwrap();
    assert_eq!(summary.sort_order, None);
    assert!(summary.read_groups.is_empty());
    assert_eq!(summary.contigs, [Contig::new("chr1", 10)]);
}

#[test]
fn bam_header_of_a_non_bam_is_a_parse_error() {
    let dir = Dir::new();
    let not_bam = dir.write("x.bam", gzip(b"hello"));
    let error = read_bam_header_summary(&not_bam).unwrap_err();
    assert!(matches!(error, FormatError::Parse { .. }), "{error:?}");
}

// ---------------------------------------------------------------------------------------------
// tabix

#[test]
fn real_tbi_lists_the_contigs_with_records() {
    let names = tabix_contigs(&testdata().join("truth.NA12878.giab.vcf.gz.tbi")).unwrap();
    assert_eq!(names, ["chr20", "chr22"]);
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|error| {
            panic!("cannot run {program} ({error}); install it (Debian: bcftools, tabix)")
        });
    assert!(status.success(), "{program} {args:?} failed: {status}");
}

/// Records on chr22 before chr20, chrM declared but empty: the index follows the records.
const VCF: &str = "##fileformat=VCFv4.2\n\
    ##contig=<ID=chr20,length=300000>\n\
    ##contig=<ID=chr22,length=12356>\n\
    ##contig=<ID=chrM,length=16571>\n\
    ##FORMAT=<ID=GT,Number=1,Type=String,Description=\"Genotype\">\n\
    #CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tNA12878\n\
    chr22\t100\t.\tA\tG\t50\tPASS\t.\tGT\t0/1\n\
    chr22\t200\t.\tC\tT\t50\tPASS\t.\tGT\t1/1\n\
    chr20\t5000\t.\tG\tA\t50\tPASS\t.\tGT\t0/1\n";

#[test]
fn tbi_built_by_tabix_and_bcftools() {
    let dir = Dir::new();
    let vcf = dir.write("calls.vcf", VCF);
    run("bgzip", &["-f", vcf.as_str()]);
    let vcf_gz = dir.path("calls.vcf.gz");
    check_bgzf_eof(&vcf_gz).unwrap();
    run("tabix", &["-p", "vcf", vcf_gz.as_str()]);
    assert_eq!(
        tabix_contigs(&dir.path("calls.vcf.gz.tbi")).unwrap(),
        ["chr22", "chr20"]
    );

    let by_bcftools = dir.path("bcf.vcf.gz");
    run(
        "bcftools",
        &["view", "-Oz", "-o", by_bcftools.as_str(), vcf_gz.as_str()],
    );
    run("bcftools", &["index", "-t", by_bcftools.as_str()]);
    assert_eq!(
        tabix_contigs(&dir.path("bcf.vcf.gz.tbi")).unwrap(),
        ["chr22", "chr20"]
    );
}

#[test]
fn non_tabix_file_is_a_parse_error() {
    let dir = Dir::new();
    let not_tbi = dir.write("x.tbi", bgzf_bytes(b"NOPE and more"));
    assert!(matches!(
        tabix_contigs(&not_tbi).unwrap_err(),
        FormatError::Parse { .. }
    ));
}

// ---------------------------------------------------------------------------------------------
// BAM: quickcheck-equivalent and the workflow's header rules

fn fai_contigs() -> Vec<Contig> {
    vec![
        Contig::new("chr20", 300_000),
        Contig::new("chr22", 12_356),
        Contig::new("chrM", 16_571),
    ]
}

fn invalid_reason(error: FormatError) -> String {
    match error {
        FormatError::Invalid { reason, .. } => reason,
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn good_bam_header_passes_the_rules() {
    let dir = Dir::new();
    let bam = dir.path("x.bam");
    write_bam(&bam, SAM_HEADER);
    let summary = check_bam_header(&bam, &fai_contigs(), "NA12878").unwrap();
    assert_eq!(summary.contigs, fai_contigs());
}

#[test]
fn unsorted_bam_header_is_refused() {
    let dir = Dir::new();
    let bam = dir.path("x.bam");
    write_bam(&bam, &SAM_HEADER.replace("SO:coordinate", "SO:unsorted"));
    let error = check_bam_header(&bam, &fai_contigs(), "NA12878").unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{bam}: the BAM is not coordinate-sorted: @HD SO:unsorted (expected SO:coordinate)"
        )
    );
    assert_eq!(error.exit_class(), ExitClass::InputInvalid);
}

#[test]
fn bam_sq_order_differing_from_the_fai_is_refused() {
    let dir = Dir::new();
    let bam = dir.path("x.bam");
    let swapped = SAM_HEADER.replace(
        "@SQ\tSN:chr20\tLN:300000\n@SQ\tSN:chr22\tLN:12356\n",
        "@SQ\tSN:chr22\tLN:12356\n@SQ\tSN:chr20\tLN:300000\n",
    );
    assert_ne!(swapped, SAM_HEADER);
    write_bam(&bam, &swapped);
    assert_eq!(
        invalid_reason(check_bam_header(&bam, &fai_contigs(), "NA12878").unwrap_err()),
        "@SQ 1 is chr22 where the reference's contig 1 is chr20: same contigs in another order \
         (header: chr22, chr20, chrM; reference: chr20, chr22, chrM)"
    );
}

#[test]
fn bam_sq_length_or_name_differing_is_refused() {
    let dir = Dir::new();
    let bam = dir.path("x.bam");
    write_bam(&bam, &SAM_HEADER.replace("LN:12356", "LN:12355"));
    assert_eq!(
        invalid_reason(check_bam_header(&bam, &fai_contigs(), "NA12878").unwrap_err()),
        "@SQ chr22 has length 12355, the reference's has 12356"
    );
    write_bam(&bam, &SAM_HEADER.replace("SN:chr20", "SN:20"));
    assert_eq!(
        invalid_reason(check_bam_header(&bam, &fai_contigs(), "NA12878").unwrap_err()),
        "@SQ declares 20, which is not in the reference (reference: chr20, chr22, chrM)"
    );
}

#[test]
fn bam_read_groups_must_name_the_sample() {
    let dir = Dir::new();
    let bam = dir.path("x.bam");
    write_bam(&bam, SAM_HEADER);
    assert_eq!(
        invalid_reason(check_bam_header(&bam, &fai_contigs(), "NA24385").unwrap_err()),
        "@RG ID:NA12878.L1 has SM:NA12878, expected SM:NA24385"
    );
    let no_sm = SAM_HEADER.replace("@RG\tID:NA12878.L2\tSM:NA12878\n", "@RG\tID:NA12878.L2\n");
    write_bam(&bam, &no_sm);
    assert_eq!(
        invalid_reason(check_bam_header(&bam, &fai_contigs(), "NA12878").unwrap_err()),
        "@RG ID:NA12878.L2 has no SM field, expected SM:NA12878"
    );
    let no_rg: String = SAM_HEADER
        .lines()
        .filter(|l| !l.starts_with("@RG"))
        .map(|l| format!("{l}\n"))
        .collect();
    write_bam(&bam, &no_rg);
    assert_eq!(
        invalid_reason(check_bam_header(&bam, &fai_contigs(), "NA12878").unwrap_err()),
        "the header has no @RG line (expected one with SM:NA12878)"
    );
}

#[test]
fn truncated_bam_fails_quickcheck() {
    let dir = Dir::new();
    let bam = dir.path("x.bam");
    write_bam(&bam, SAM_HEADER);
    let bytes = std::fs::read(&bam).unwrap();
    let cut = dir.write("cut.bam", &bytes[..bytes.len() - 28]);
    let error = quickcheck_bam(&cut).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{cut}: missing BGZF EOF block (truncated?)")
    );
    assert_eq!(error.exit_class(), ExitClass::InputInvalid);

    let no_sq = dir.path("nosq.bam");
    write_bam(&no_sq, "@HD\tVN:1.6\tSO:coordinate\n");
    assert_eq!(
        quickcheck_bam(&no_sq).unwrap_err().to_string(),
        format!("{no_sq}: the header declares no reference sequence (@SQ)")
    );
}

// ---------------------------------------------------------------------------------------------
// BAM: the statistics pass

/// A BAM made by `samtools view` from SAM text (which keeps the records in the order given).
fn sam_to_bam(dir: &Dir, name: &str, sam: &str) -> Utf8PathBuf {
    let sam_path = dir.write(&format!("{name}.sam"), sam);
    let bam = dir.path(&format!("{name}.bam"));
    run(
        "samtools",
        &["view", "-b", "-o", bam.as_str(), sam_path.as_str()],
    );
    bam
}

const STATS_HEADER: &str = "@HD\tVN:1.6\tSO:coordinate\n\
    @SQ\tSN:c1\tLN:100\n\
    @SQ\tSN:c2\tLN:50\n\
    @RG\tID:s\tSM:s\n";

fn sam_record(name: &str, flag: u16, contig: &str, pos: u32, cigar: &str) -> String {
    let bases: usize = cigar_query_length(cigar);
    let seq = "A".repeat(bases);
    let qual = "I".repeat(bases);
    format!("{name}\t{flag}\t{contig}\t{pos}\t60\t{cigar}\t=\t{pos}\t0\t{seq}\t{qual}\n")
}

fn cigar_query_length(cigar: &str) -> usize {
    let mut total = 0;
    let mut number = 0;
    for c in cigar.chars() {
        if let Some(d) = c.to_digit(10) {
            number = number * 10 + d as usize;
        } else {
            if "MIS=X".contains(c) {
                total += number;
            }
            number = 0;
        }
    }
    total
}

#[test]
fn bam_stats_count_depth_breadth_and_flags() {
    let dir = Dir::new();
    let mut sam = STATS_HEADER.to_owned();
    // c1: r1 1-10 (10M), r2 5-14 with a 2-base deletion (4M2D4M: bases 5-8 and 11-14),
    // r3 96-100 (clipped at the contig end is not possible in SAM, so 5M), a duplicate at
    // 20-29 (not counted for depth), a secondary at 40-49 (not counted).
    sam += &sam_record("r1", 0x1 | 0x2 | 0x40, "c1", 1, "10M");
    sam += &sam_record("r2", 0x1 | 0x2 | 0x80, "c1", 5, "4M2D4M");
    sam += &sam_record("dup", 0x1 | 0x400, "c1", 20, "10M");
    sam += &sam_record("sec", 0x100, "c1", 40, "10M");
    sam += &sam_record("r3", 0x1 | 0x8, "c1", 96, "2S5M");
    // c2: one read with an insertion: 3M2I3M covers 1-6.
    sam += &sam_record("r4", 0x1, "c2", 1, "3M2I3M");
    // An unmapped read placed with its mate, and one unplaced.
    sam += "r5\t5\tc2\t1\t0\t*\t=\t1\t0\tA\tI\n";
    sam += "u1\t4\t*\t0\t0\t*\t*\t0\t0\tACGT\tIIII\n";
    let bam = sam_to_bam(&dir, "stats", &sam);
    let stats = read_bam_stats(&bam, 1).unwrap();
    assert_eq!(stats, read_bam_stats(&bam, 2).unwrap());
    assert_eq!(
        stats.flags,
        FlagCounts {
            records: 8,
            qc_failed: 0,
            primary: 7,
            secondary: 1,
            supplementary: 0,
            duplicates: 1,
            mapped: 6,
            primary_mapped: 5,
            paired: 6,
            properly_paired: 2,
            both_mapped: 4,
            singletons: 1,
        }
    );
    let c1 = &stats.contigs[0];
    // r1 10 + r2 8 + r3 5 = 23 aligned bases; union 1-14 minus nothing (r1 covers 9-10) = 14,
    // plus 96-100 = 5.
    assert_eq!(
        (c1.records, c1.aligned_bases, c1.covered_bases),
        (3, 23, 19)
    );
    assert!((c1.mean_depth() - 0.23).abs() < 1e-12);
    assert!((c1.breadth() - 0.19).abs() < 1e-12);
    assert_eq!(c1.bin_bases, 1000);
    assert_eq!(c1.bin_aligned_bases, [23]);
    let c2 = &stats.contigs[1];
    assert_eq!((c2.records, c2.aligned_bases, c2.covered_bases), (1, 6, 6));
    assert_eq!(stats.bytes_read, std::fs::metadata(&bam).unwrap().len());
}

#[test]
fn bam_records_out_of_coordinate_order_are_refused() {
    let dir = Dir::new();
    let mut sam = STATS_HEADER.to_owned();
    sam += &sam_record("a", 0, "c1", 50, "10M");
    sam += &sam_record("b", 0, "c1", 20, "10M");
    let bam = sam_to_bam(&dir, "unsorted", &sam);
    assert_eq!(
        invalid_reason(read_bam_stats(&bam, 1).unwrap_err()),
        "record 2 (c1:20) comes after c1:50: the records are not in coordinate order"
    );

    let mut sam = STATS_HEADER.to_owned();
    sam += &sam_record("a", 0, "c2", 5, "10M");
    sam += &sam_record("b", 0, "c1", 90, "10M");
    let bam = sam_to_bam(&dir, "contigs", &sam);
    assert_eq!(
        invalid_reason(read_bam_stats(&bam, 1).unwrap_err()),
        "record 2 (c1:90) comes after c2:5: the records are not in coordinate order"
    );

    let mut sam = STATS_HEADER.to_owned();
    sam += "u1\t4\t*\t0\t0\t*\t*\t0\t0\tACGT\tIIII\n";
    sam += &sam_record("a", 0, "c1", 5, "10M");
    let bam = sam_to_bam(&dir, "unplaced", &sam);
    assert_eq!(
        invalid_reason(read_bam_stats(&bam, 1).unwrap_err()),
        "record 2 (c1:5) comes after an unplaced record: the records are not in coordinate order"
    );
}

// ---------------------------------------------------------------------------------------------
// VCF

const VCF_HEADER: &str = "##fileformat=VCFv4.2\n\
    ##contig=<ID=chr20,length=300000>\n\
    ##contig=<ID=chr22,length=12356>\n\
    ##contig=<ID=chrM,length=16571>\n\
    ##FORMAT=<ID=GT,Number=1,Type=String,Description=\"Genotype\">\n\
    #CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\tFORMAT\tNA12878\n";

fn vcf_gz(dir: &Dir, name: &str, records: &str) -> Utf8PathBuf {
    dir.write(
        name,
        bgzf_bytes(format!("{VCF_HEADER}{records}").as_bytes()),
    )
}

fn rules<'a>(contigs: &'a [Contig], only: Option<&'a [Region]>) -> VcfRules<'a> {
    VcfRules {
        contigs,
        samples: &["NA12878"],
        only_regions: only,
    }
}

/// From `bcftools stats -s -`: records, SNPs, MNPs, indels, multiallelic sites (SN lines),
/// ts and tv (TSTV), and the first sample's nNonRefHom and nHets (PSC).
fn bcftools_stats_figures(vcf: &Utf8Path) -> [u64; 9] {
    let output = Command::new("bcftools")
        .args(["stats", "-s", "-", vcf.as_str()])
        .output()
        .expect("bcftools runs (Debian: bcftools)");
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let sn = |key: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("SN\t0\t{key}:\t")))
            .unwrap_or_else(|| panic!("no SN {key}"))
            .trim()
            .parse()
            .unwrap()
    };
    let fields = |tag: &str| -> Vec<u64> {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{tag}\t0\t")))
            .unwrap_or_else(|| panic!("no {tag} line"));
        line.split('\t')
            .skip(2)
            .map(|f| f.parse::<f64>().map_or(u64::MAX, |v| v as u64))
            .collect()
    };
    let tstv = fields("TSTV");
    let psc = fields("PSC");
    [
        sn("number of records"),
        sn("number of SNPs"),
        sn("number of MNPs"),
        sn("number of indels"),
        sn("number of multiallelic sites"),
        tstv[0],
        tstv[1],
        psc[2],
        psc[3],
    ]
}

#[test]
fn vcf_counts_follow_bcftools_stats() {
    let dir = Dir::new();
    let records = "chr20\t100\t.\tA\tG\t50\tPASS\t.\tGT\t0/1\n\
        chr20\t150\t.\tC\tA\t50\tPASS\t.\tGT\t1/1\n\
        chr20\t200\t.\tT\tTA\t50\tPASS\t.\tGT\t0/1\n\
        chr20\t200\t.\tG\tA,C\t50\tPASS\t.\tGT\t1/2\n\
        chr22\t5\t.\tAC\tA,GC\t50\tPASS\t.\tGT\t1|1\n\
        chr22\t9\t.\tAC\tGT\t50\tPASS\t.\tGT\t./.\n";
    let vcf = vcf_gz(&dir, "x.vcf.gz", records);
    let contigs = fai_contigs();
    assert_eq!(
        quickcheck_vcf(&vcf).unwrap(),
        VcfHeaderSummary {
            contigs: vec![
                VcfContig {
                    name: "chr20".into(),
                    length: Some(300_000)
                },
                VcfContig {
                    name: "chr22".into(),
                    length: Some(12_356)
                },
                VcfContig {
                    name: "chrM".into(),
                    length: Some(16_571)
                },
            ],
            samples: vec!["NA12878".into()],
        }
    );
    let scan = scan_vcf(&vcf, &rules(&contigs, None)).unwrap();
    assert_eq!(
        scan.counts,
        VariantCounts {
            records: 6,
            // AC>GC is an SNV for htslib once the common suffix is removed; AC>GT an MNP.
            snvs: 4,
            mnps: 1,
            indels: 2,
            others: 0,
            multiallelic: 2,
            transitions: 3,
            transversions: 2,
            // Only genotypes with an SNV allele, as bcftools stats: not T>TA 0/1 nor the
            // deletion 1|1 of AC>A,GC.
            het: 2,
            hom_alt: 1,
            hom_ref: 0,
            missing_genotype: 1,
        }
    );
    assert_eq!(scan.counts.ti_tv(), Some(1.5));
    assert_eq!(scan.counts.het_hom_ratio(), Some(2.0));
    // The same figures from bcftools stats itself.
    let counts = scan.counts;
    assert_eq!(
        bcftools_stats_figures(&vcf),
        [
            counts.records,
            counts.snvs,
            counts.mnps,
            counts.indels,
            counts.multiallelic,
            counts.transitions,
            counts.transversions,
            counts.hom_alt,
            counts.het
        ]
    );
    let per_contig: Vec<(&str, u64)> = scan
        .contigs
        .iter()
        .map(|c| (c.name.as_str(), c.counts.records))
        .collect();
    assert_eq!(per_contig, [("chr20", 4), ("chr22", 2), ("chrM", 0)]);
}

#[test]
fn vcf_contig_lines_must_match_the_fai() {
    let dir = Dir::new();
    let contigs = fai_contigs();
    let cases = [
        (
            VCF_HEADER.replace("length=12356", "length=12000"),
            "##contig chr22 has length 12000, the reference's has 12356",
        ),
        (
            VCF_HEADER.replace("##contig=<ID=chrM,length=16571>\n", ""),
            "##contig lacks chrM, which is in the reference (2 of 3 contigs declared)",
        ),
        (
            VCF_HEADER.replace("ID=chr20", "ID=20"),
            "##contig declares 20, which is not in the reference (reference: chr20, chr22, chrM)",
        ),
        (
            VCF_HEADER.replace(",length=300000", ""),
            "##contig chr20 has no length",
        ),
        (
            VCF_HEADER.replace(
                "##contig=<ID=chr20,length=300000>\n##contig=<ID=chr22,length=12356>\n",
                "##contig=<ID=chr22,length=12356>\n##contig=<ID=chr20,length=300000>\n",
            ),
            "##contig 1 is chr22 where the reference's contig 1 is chr20: same contigs in another \
             order (header: chr22, chr20, chrM; reference: chr20, chr22, chrM)",
        ),
    ];
    for (index, (header, reason)) in cases.iter().enumerate() {
        assert_ne!(header, VCF_HEADER);
        let vcf = dir.write(&format!("c{index}.vcf.gz"), bgzf_bytes(header.as_bytes()));
        let error = scan_vcf(&vcf, &rules(&contigs, None)).unwrap_err();
        assert_eq!(error.to_string(), format!("{vcf}: {reason}"));
        assert_eq!(error.exit_class(), ExitClass::InputInvalid);
    }
}

#[test]
fn vcf_sample_column_must_be_the_sample() {
    let dir = Dir::new();
    let contigs = fai_contigs();
    let wrong = dir.write(
        "wrong.vcf.gz",
        bgzf_bytes(VCF_HEADER.replace("\tNA12878\n", "\tNA24385\n").as_bytes()),
    );
    assert_eq!(
        invalid_reason(scan_vcf(&wrong, &rules(&contigs, None)).unwrap_err()),
        "the sample column is NA24385, expected NA12878"
    );
    let two = dir.write(
        "two.vcf.gz",
        bgzf_bytes(
            VCF_HEADER
                .replace("\tNA12878\n", "\tNA12878\tNA24385\n")
                .as_bytes(),
        ),
    );
    assert_eq!(
        invalid_reason(scan_vcf(&two, &rules(&contigs, None)).unwrap_err()),
        "the VCF has 2 sample columns (NA12878, NA24385), expected one: NA12878"
    );
    let none = dir.write(
        "none.vcf.gz",
        bgzf_bytes(VCF_HEADER.replace("\tFORMAT\tNA12878\n", "\n").as_bytes()),
    );
    assert_eq!(
        invalid_reason(scan_vcf(&none, &rules(&contigs, None)).unwrap_err()),
        "the VCF has no sample column, expected NA12878"
    );
}

#[test]
fn vcf_records_must_be_sorted_and_on_the_shard_contig() {
    let dir = Dir::new();
    let contigs = fai_contigs();
    let unsorted = vcf_gz(
        &dir,
        "unsorted.vcf.gz",
        "chr20\t500\t.\tA\tG\t50\tPASS\t.\tGT\t0/1\n\
         chr20\t400\t.\tA\tG\t50\tPASS\t.\tGT\t0/1\n",
    );
    assert_eq!(
        invalid_reason(scan_vcf(&unsorted, &rules(&contigs, None)).unwrap_err()),
        "record 2 (chr20:400) comes after chr20:500: records are not sorted by position"
    );
    let contig_order = vcf_gz(
        &dir,
        "order.vcf.gz",
        "chr22\t5\t.\tA\tG\t50\tPASS\t.\tGT\t0/1\n\
         chr20\t400\t.\tA\tG\t50\tPASS\t.\tGT\t0/1\n",
    );
    assert_eq!(
        invalid_reason(scan_vcf(&contig_order, &rules(&contigs, None)).unwrap_err()),
        "record 2 (chr20:400) comes after records of chr22: contigs are not in ##contig order"
    );
    let other = vcf_gz(
        &dir,
        "other.vcf.gz",
        "chr20\t5\t.\tA\tG\t50\tPASS\t.\tGT\t0/1\n\
         chr22\t400\t.\tA\tG\t50\tPASS\t.\tGT\t0/1\n",
    );
    let chr20 = [Region::whole(contigs[0].clone())];
    assert_eq!(
        invalid_reason(scan_vcf(&other, &rules(&contigs, Some(&chr20))).unwrap_err()),
        "record 2 (chr22:400) is outside the regions this VCF must hold: chr20"
    );
    scan_vcf(&other, &rules(&contigs, None)).unwrap();
    // A shard of parts of contigs: each record's POS must lie in one of its regions, ends
    // included.
    let parts = [
        Region::new(contigs[0].clone(), 5, 399).unwrap(),
        Region::new(contigs[1].clone(), 400, 400).unwrap(),
    ];
    scan_vcf(&other, &rules(&contigs, Some(&parts))).unwrap();
    let narrower = [
        Region::new(contigs[0].clone(), 6, 399).unwrap(),
        Region::new(contigs[1].clone(), 400, 400).unwrap(),
    ];
    assert_eq!(
        invalid_reason(scan_vcf(&other, &rules(&contigs, Some(&narrower))).unwrap_err()),
        "record 1 (chr20:5) is outside the regions this VCF must hold: chr20:6-399,chr22:400-400"
    );
    let undeclared = vcf_gz(
        &dir,
        "undeclared.vcf.gz",
        "chrX\t5\t.\tA\tG\t50\tPASS\t.\tGT\t0/1\n",
    );
    assert_eq!(
        invalid_reason(scan_vcf(&undeclared, &rules(&contigs, None)).unwrap_err()),
        "record 1 is on chrX, which has no ##contig line"
    );
}

#[test]
fn truncated_vcf_fails_quickcheck() {
    let dir = Dir::new();
    let mut bytes = bgzf_bytes(VCF_HEADER.as_bytes());
    bytes.truncate(bytes.len() - 28);
    let cut = dir.write("cut.vcf.gz", &bytes);
    let error = quickcheck_vcf(&cut).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{cut}: missing BGZF EOF block (truncated?)")
    );
    assert!(matches!(
        scan_vcf(&cut, &rules(&fai_contigs(), None)).unwrap_err(),
        FormatError::MissingBgzfEof { .. }
    ));
    let garbage = dir.write("garbage.vcf.gz", bgzf_bytes(b"not a header\n"));
    assert!(matches!(
        quickcheck_vcf(&garbage).unwrap_err(),
        FormatError::Parse { .. }
    ));
}

#[test]
fn real_truth_vcf_scans() {
    let truth = testdata().join("truth.NA12878.giab.vcf.gz");
    let contigs = read_fai(&testdata().join("ref.fa.fai")).unwrap();
    let scan = scan_vcf(&truth, &rules(&contigs, None)).unwrap();
    let per_contig: Vec<(&str, u64)> = scan
        .contigs
        .iter()
        .map(|c| (c.name.as_str(), c.counts.records))
        .collect();
    // The README: 221 chr20 truth records; bcftools view -H counts the chr22 ones.
    assert_eq!(per_contig[0], ("chr20", 221));
    assert_eq!(per_contig[2], ("chrM", 0));
}

// ---------------------------------------------------------------------------------------------
// splitting a FASTQ pair into chunks

fn gunzip_text(path: &Utf8Path) -> String {
    let mut text = String::new();
    MultiGzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    text
}

/// Splits two files laid out by `layout` with `threads` compression threads.
fn split_files(
    (r1, r2): (&Utf8Path, &Utf8Path),
    layout: ChunkLayout,
    threads: usize,
    dir: &Utf8Path,
    prefix: &str,
) -> Result<Vec<biojob_formats::FastqChunk>, FastqError> {
    split_fastq_pair(
        FastqSource::file(r1),
        FastqSource::file(r2),
        &SplitRequest {
            layout,
            dir,
            prefix,
            first_chunk: 0,
            threads: NonZeroUsize::new(threads).unwrap(),
            stop: &|| false,
        },
    )
}

/// Consecutive chunks of `chunk_pairs` pairs, with 2 threads.
fn split_consecutive(
    r1: &Utf8Path,
    r2: &Utf8Path,
    chunk_pairs: NonZeroU64,
    dir: &Utf8Path,
    prefix: &str,
) -> Result<Vec<biojob_formats::FastqChunk>, FastqError> {
    split_files(
        (r1, r2),
        ChunkLayout::Consecutive { chunk_pairs },
        2,
        dir,
        prefix,
    )
}

/// Names of the files in `dir`, sorted.
fn dir_listing(dir: &Utf8Path) -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    files
}

fn fastq_text(names: &[&str], mate: u8) -> String {
    names
        .iter()
        .map(|name| format!("@{name}/{mate}\nACGT\n+\nIIII\n"))
        .collect()
}

#[test]
fn split_keeps_mates_together_in_chunks_with_fixed_names() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    let names = ["a", "b", "c", "d", "e"];
    let r1 = root.join("in_R1.fastq");
    let r2 = root.join("in_R2.fastq");
    std::fs::write(&r1, fastq_text(&names, 1)).unwrap();
    // No final newline on the last R2 record: the chunk gets one.
    std::fs::write(&r2, fastq_text(&names, 2).trim_end()).unwrap();
    let out = root.join("chunks");
    std::fs::create_dir(&out).unwrap();
    let chunks = split_consecutive(&r1, &r2, NonZeroU64::new(2).unwrap(), &out, "S.split").unwrap();
    let summary: Vec<(usize, String, String, u64, u64)> = chunks
        .iter()
        .map(|c| {
            (
                c.index,
                c.fastq_1.file_name().unwrap().to_owned(),
                c.fastq_2.file_name().unwrap().to_owned(),
                c.pairs,
                c.bases,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                0,
                "S.split.0000_R1.fastq.gz".into(),
                "S.split.0000_R2.fastq.gz".into(),
                2,
                16
            ),
            (
                1,
                "S.split.0001_R1.fastq.gz".into(),
                "S.split.0001_R2.fastq.gz".into(),
                2,
                16
            ),
            (
                2,
                "S.split.0002_R1.fastq.gz".into(),
                "S.split.0002_R2.fastq.gz".into(),
                1,
                8
            ),
        ]
    );
    assert_eq!(
        fastq_chunk_names("S.split", 2),
        (
            "S.split.0002_R1.fastq.gz".to_owned(),
            "S.split.0002_R2.fastq.gz".to_owned()
        )
    );
    assert_eq!(gunzip_text(&chunks[1].fastq_1), fastq_text(&["c", "d"], 1));
    assert_eq!(gunzip_text(&chunks[2].fastq_2), fastq_text(&["e"], 2));
    // Only the chunks, no partial files left.
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files.len(), 6);
    assert!(files.iter().all(|f| f.ends_with(".fastq.gz")));
}

#[test]
fn split_refuses_pairs_out_of_step() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    let r1 = root.join("in_R1.fastq");
    let r2 = root.join("in_R2.fastq");
    let chunk = NonZeroU64::new(2).unwrap();
    std::fs::write(&r1, fastq_text(&["a", "b", "c"], 1)).unwrap();
    std::fs::write(&r2, fastq_text(&["a", "b", "x"], 2)).unwrap();
    let error = split_consecutive(&r1, &r2, chunk, root, "S.split").unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("mate names differ at record 3: \"c\" in {r1}, \"x\" in {r2}")
    );
    std::fs::write(&r2, fastq_text(&["a", "b"], 2)).unwrap();
    let error = split_consecutive(&r1, &r2, chunk, root, "S.split").unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{r2} ended after 2 records; {r1} has more")
    );
    std::fs::write(&r1, "").unwrap();
    std::fs::write(&r2, "").unwrap();
    let error = split_consecutive(&r1, &r2, chunk, root, "S.split").unwrap_err();
    assert_eq!(error.to_string(), format!("{r1}: no records (empty file)"));
}

#[test]
fn split_in_turn_deals_blocks_to_a_fixed_number_of_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    let names = ["a", "b", "c", "d", "e", "f", "g"];
    let r1 = root.join("in_R1.fastq");
    let r2 = root.join("in_R2.fastq");
    std::fs::write(&r1, fastq_text(&names, 1)).unwrap();
    std::fs::write(&r2, fastq_text(&names, 2)).unwrap();
    let block = NonZeroU64::new(2).unwrap();
    // Blocks ab, cd, ef, g dealt to 3 chunks: ab+g, cd, ef.
    let chunks = split_files(
        (&r1, &r2),
        ChunkLayout::InTurn {
            block_pairs: block,
            chunks: NonZeroUsize::new(3).unwrap(),
        },
        1,
        root,
        "S",
    )
    .unwrap();
    let pairs: Vec<u64> = chunks.iter().map(|c| c.pairs).collect();
    assert_eq!(pairs, [3, 2, 2]);
    assert_eq!(
        gunzip_text(&chunks[0].fastq_1),
        fastq_text(&["a", "b", "g"], 1)
    );
    assert_eq!(
        gunzip_text(&chunks[0].fastq_2),
        fastq_text(&["a", "b", "g"], 2)
    );
    assert_eq!(gunzip_text(&chunks[2].fastq_2), fastq_text(&["e", "f"], 2));
    assert_eq!(chunks[1].fastq_1.file_name(), Some("S.0001_R1.fastq.gz"));
    // 7 pairs are 4 blocks of 2: a fifth chunk would be empty.
    let error = split_files(
        (&r1, &r2),
        ChunkLayout::InTurn {
            block_pairs: block,
            chunks: NonZeroUsize::new(5).unwrap(),
        },
        1,
        root,
        "T",
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{r1} has 7 read pairs: fewer than 5 blocks of 2 pairs, so a chunk would be empty")
    );
    assert!(matches!(error, FastqError::TooFewBlocks { .. }));
    assert_eq!(
        error.remedy().as_deref(),
        Some(
            "ask for fewer chunks (CHUNKS, the length of params.chunks; a cohort lane's: a \
             larger biojob plan-cohort --chunk-bytes) or smaller blocks \
             (BIOJOB_ALIGN_CHUNK_PAIRS, params.chunkPairs)"
        )
    );
    // The "T" chunks that were written are removed: only the inputs and the "S" chunks stay.
    assert!(dir_listing(root).iter().all(|f| !f.starts_with("T.")));
    assert_eq!(dir_listing(root).len(), 2 + 6);
}

#[test]
fn split_names_chunks_from_the_first_chunk_number() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    let names = ["a", "b", "c", "d", "e"];
    let r1 = root.join("in_R1.fastq");
    let r2 = root.join("in_R2.fastq");
    std::fs::write(&r1, fastq_text(&names, 1)).unwrap();
    std::fs::write(&r2, fastq_text(&names, 2)).unwrap();
    let out = root.join("chunks");
    std::fs::create_dir(&out).unwrap();
    // A lane whose chunks are 4 and 5 of its sample: blocks ab, cd, e dealt to 2 chunks.
    let chunks = split_fastq_pair(
        FastqSource::file(&r1),
        FastqSource::file(&r2),
        &SplitRequest {
            layout: ChunkLayout::InTurn {
                block_pairs: NonZeroU64::new(2).unwrap(),
                chunks: NonZeroUsize::new(2).unwrap(),
            },
            dir: &out,
            prefix: "S.split",
            first_chunk: 4,
            threads: NonZeroUsize::new(1).unwrap(),
            stop: &|| false,
        },
    )
    .unwrap();
    let summary: Vec<(usize, &str, &str, u64)> = chunks
        .iter()
        .map(|c| {
            (
                c.index,
                c.fastq_1.file_name().unwrap(),
                c.fastq_2.file_name().unwrap(),
                c.pairs,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (0, "S.split.0004_R1.fastq.gz", "S.split.0004_R2.fastq.gz", 3),
            (1, "S.split.0005_R1.fastq.gz", "S.split.0005_R2.fastq.gz", 2),
        ]
    );
    assert_eq!(
        gunzip_text(&chunks[0].fastq_2),
        fastq_text(&["a", "b", "e"], 2)
    );
    assert_eq!(gunzip_text(&chunks[1].fastq_1), fastq_text(&["c", "d"], 1));
    assert_eq!(
        dir_listing(&out),
        [
            "S.split.0004_R1.fastq.gz",
            "S.split.0004_R2.fastq.gz",
            "S.split.0005_R1.fastq.gz",
            "S.split.0005_R2.fastq.gz"
        ]
    );
}

/// `pairs` read pairs of 150-base mates named `r{i}`, as the text of R1 or R2.
fn long_fastq_text(pairs: usize, mate: u8) -> String {
    let bases = ["ACGT".repeat(37) + "AC", "TTGCA".repeat(30)];
    let qualities = "F".repeat(150);
    (0..pairs)
        .map(|i| {
            format!(
                "@r{i}/{mate} extra\n{}\n+\n{qualities}\n",
                bases[(i + usize::from(mate)) % 2]
            )
        })
        .collect()
}

fn gzip_bytes(text: &str) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

#[test]
fn split_streams_from_readers_into_multi_member_chunks_on_several_threads() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    let (text_1, text_2) = (long_fastq_text(8000, 1), long_fastq_text(8000, 2));
    let chunks = split_fastq_pair(
        FastqSource::reader(
            "s3://bucket/in_R1.fastq.gz",
            io::Cursor::new(gzip_bytes(&text_1)),
        ),
        FastqSource::reader(
            "s3://bucket/in_R2.fastq.gz",
            io::Cursor::new(gzip_bytes(&text_2)),
        ),
        &SplitRequest {
            layout: ChunkLayout::Consecutive {
                chunk_pairs: NonZeroU64::new(5000).unwrap(),
            },
            dir: root,
            prefix: "S.split",
            first_chunk: 0,
            threads: NonZeroUsize::new(3).unwrap(),
            stop: &|| false,
        },
    )
    .unwrap();
    let pairs: Vec<(u64, u64)> = chunks.iter().map(|c| (c.pairs, c.bases)).collect();
    assert_eq!(pairs, [(5000, 1_500_000), (3000, 900_000)]);
    let lines_of = |text: &str, from: usize, to: usize| {
        text.lines()
            .skip(4 * from)
            .take(4 * (to - from))
            .map(|line| format!("{line}\n"))
            .collect::<String>()
    };
    assert_eq!(gunzip_text(&chunks[0].fastq_1), lines_of(&text_1, 0, 5000));
    assert_eq!(gunzip_text(&chunks[0].fastq_2), lines_of(&text_2, 0, 5000));
    assert_eq!(
        gunzip_text(&chunks[1].fastq_1),
        lines_of(&text_1, 5000, 8000)
    );
    assert_eq!(
        gunzip_text(&chunks[1].fastq_2),
        lines_of(&text_2, 5000, 8000)
    );
    // 1.7 MB of records make two gzip members: a single-member reader stops after the first.
    let mut first_member = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&chunks[0].fastq_1).unwrap())
        .read_to_string(&mut first_member)
        .unwrap();
    // A member ends at the first record that brings it to 1 MiB.
    let records = (1..5000)
        .find(|&k| lines_of(&text_1, 0, k).len() >= 1 << 20)
        .unwrap();
    assert_eq!(first_member, lines_of(&text_1, 0, records));
    assert_eq!(
        dir_listing(root),
        [
            "S.split.0000_R1.fastq.gz",
            "S.split.0000_R2.fastq.gz",
            "S.split.0001_R1.fastq.gz",
            "S.split.0001_R2.fastq.gz"
        ]
    );
}

#[test]
fn a_failed_split_leaves_no_chunk_files() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    let out = root.join("chunks");
    std::fs::create_dir(&out).unwrap();
    let r1 = root.join("in_R1.fastq");
    let r2 = root.join("in_R2.fastq");
    // Mates out of step at the last record, after two whole chunks were cut.
    std::fs::write(&r1, fastq_text(&["a", "b", "c", "d", "e"], 1)).unwrap();
    std::fs::write(&r2, fastq_text(&["a", "b", "c", "d", "x"], 2)).unwrap();
    let chunk = NonZeroU64::new(2).unwrap();
    let error = split_consecutive(&r1, &r2, chunk, &out, "S.split").unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("mate names differ at record 5: \"e\" in {r1}, \"x\" in {r2}")
    );
    assert!(dir_listing(&out).is_empty());

    // A chunk directory that does not exist: the write error names the input and the chunk.
    std::fs::write(&r2, fastq_text(&["a", "b", "c", "d", "e"], 2)).unwrap();
    let missing = root.join("missing");
    let error = split_consecutive(&r1, &r2, chunk, &missing, "S.split").unwrap_err();
    assert!(matches!(error, FastqError::Write { .. }), "{error:?}");
    assert_eq!(error.exit_class(), ExitClass::OutputStaging);
    // Both files' writers fail; the first to fail is reported, with its own chunk.
    let FastqError::Write { path, records, .. } = &error else {
        unreachable!()
    };
    let mate = if *path == r1 { 1 } else { 2 };
    assert!(*path == r1 || *path == r2, "{path}");
    assert_eq!(
        error.to_string(),
        format!("writing the records of {path} failed after record {records}")
    );
    assert_eq!(
        std::error::Error::source(&error).unwrap().to_string(),
        format!(
            "failed to create file `{missing}/S.split.0000_R{mate}.fastq.gz.partial`: No such file or directory (os error 2)"
        )
    );
    assert!(!missing.exists());
}

#[test]
fn a_stopped_split_fails_as_interrupted_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    let out = root.join("chunks");
    std::fs::create_dir(&out).unwrap();
    let (r1, r2) = (root.join("in_R1.fastq"), root.join("in_R2.fastq"));
    std::fs::write(&r1, long_fastq_text(8000, 1)).unwrap();
    std::fs::write(&r2, long_fastq_text(8000, 2)).unwrap();
    // Stop after two members (of 1 MiB, of the 2.7 MB each file holds) were handed over.
    let asked = std::sync::atomic::AtomicUsize::new(0);
    let stop = || asked.fetch_add(1, std::sync::atomic::Ordering::SeqCst) >= 2;
    let error = split_fastq_pair(
        FastqSource::file(&r1),
        FastqSource::file(&r2),
        &SplitRequest {
            layout: ChunkLayout::Consecutive {
                chunk_pairs: NonZeroU64::new(3000).unwrap(),
            },
            dir: &out,
            prefix: "S.split",
            first_chunk: 0,
            threads: NonZeroUsize::new(2).unwrap(),
            stop: &stop,
        },
    )
    .unwrap_err();
    let FastqError::Write { source, .. } = &error else {
        panic!("{error:?}")
    };
    assert_eq!(source.kind(), io::ErrorKind::Interrupted);
    assert_eq!(source.to_string(), "the split was stopped");
    assert!(dir_listing(&out).is_empty());
}

/// A reader that counts the bytes it gives.
struct Counted {
    inner: io::Cursor<Vec<u8>>,
    read: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read
            .fetch_add(n as u64, std::sync::atomic::Ordering::SeqCst);
        Ok(n)
    }
}

fn counted(text: String) -> (Counted, std::sync::Arc<std::sync::atomic::AtomicU64>, u64) {
    let read = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let length = text.len() as u64;
    let reader = Counted {
        inner: io::Cursor::new(text.into_bytes()),
        read: std::sync::Arc::clone(&read),
    };
    (reader, read, length)
}

#[test]
fn a_streamed_source_is_read_to_its_end_only_after_its_own_read_error() {
    use std::sync::atomic::Ordering::SeqCst;
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    let split = |first: Counted, second: Counted| {
        split_fastq_pair(
            FastqSource::reader("s3://b/x_R1.fastq", first),
            FastqSource::reader("s3://b/x_R2.fastq", second),
            &SplitRequest {
                layout: ChunkLayout::Consecutive {
                    chunk_pairs: NonZeroU64::new(1000).unwrap(),
                },
                dir: root,
                prefix: "S",
                first_chunk: 0,
                threads: NonZeroUsize::new(1).unwrap(),
                stop: &|| false,
            },
        )
        .unwrap_err()
    };
    // 100,000 pairs: 34 MB per file, far more than the readers' buffers and lead.
    // Mates differ at record 1: neither stream is read on.
    let (first, read_1, length_1) = counted(long_fastq_text(100_000, 1));
    let (second, read_2, length_2) =
        counted(long_fastq_text(100_000, 2).replacen("@r0/2", "@x/2", 1));
    let error = split(first, second);
    assert!(
        matches!(error, FastqError::MateMismatch { record: 1, .. }),
        "{error:?}"
    );
    assert!(
        read_1.load(SeqCst) < length_1 / 2,
        "{}",
        read_1.load(SeqCst)
    );
    assert!(
        read_2.load(SeqCst) < length_2 / 2,
        "{}",
        read_2.load(SeqCst)
    );
    // A broken record in R1: R1 is read to its end (its transfer check runs), R2 is not.
    let mut broken = long_fastq_text(100_000, 1);
    broken.replace_range(5..6, "\n");
    let (first, read_1, length_1) = counted(broken);
    let (second, read_2, length_2) = counted(long_fastq_text(100_000, 2));
    let error = split(first, second);
    assert!(
        matches!(error, FastqError::InvalidRecord { .. }),
        "{error:?}"
    );
    assert_eq!(read_1.load(SeqCst), length_1);
    assert!(
        read_2.load(SeqCst) < length_2 / 2,
        "{}",
        read_2.load(SeqCst)
    );
    assert!(dir_listing(root).is_empty());
}

#[test]
fn the_fai_must_list_every_record_of_the_fasta() {
    let dir = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(dir.path()).unwrap();
    let check = |name: &str, text: &str| {
        let fasta = root.join(name);
        std::fs::write(&fasta, text).unwrap();
        let status = Command::new("samtools")
            .arg("faidx")
            .arg(&fasta)
            .output()
            .unwrap();
        assert!(
            status.status.success(),
            "{}",
            String::from_utf8_lossy(&status.stderr)
        );
        check_fai_covers_fasta(&fasta, &root.join(format!("{name}.fai")))
            .map_err(|error| error.to_string())
    };
    // Wrapped lines, descriptions, blank lines between records, CRLF, no final newline.
    assert_eq!(
        check("ok.fa", ">a desc\nACGTACGT\nACG\n\n>b\nA\n>c x y\nACGT"),
        Ok(())
    );
    assert_eq!(check("crlf.fa", ">a\r\nACGT\r\nAC\r\n>b\r\nGG\r\n"), Ok(()));
    let real = testdata().join("ref.fa");
    let real_fai = root.join("real.fa.fai");
    let status = Command::new("samtools")
        .args(["faidx", "--fai-idx"])
        .arg(&real_fai)
        .arg(&real)
        .output()
        .unwrap();
    assert!(status.status.success());
    check_fai_covers_fasta(&real, &real_fai).unwrap();
    // A name used twice: samtools indexes the first record only.
    let last = root.join("last.fa");
    assert_eq!(
        check("last.fa", ">a\nACGT\n>b\nAC\n>a\nGG\n"),
        Err(format!(
            "{last}.fai does not belong to {last}: the line at byte 14 (\">a\") is a record the \
             index does not list there (it lists no record after contig \"b\")"
        ))
    );
    let middle = root.join("middle.fa");
    assert_eq!(
        check("middle.fa", ">a\nACGT\n>a second\nAC\n>b\nGG\n"),
        Err(format!(
            "{middle}.fai does not belong to {middle}: the line at byte 8 (\">a second\") is a \
             record the index does not list there (it lists \"b\" next)"
        ))
    );
}

/// `samtools faidx` on `fasta`, writing `fasta.fai`: whether it succeeded, and its stderr.
fn samtools_faidx(fasta: &Utf8Path) -> (bool, String) {
    let output = Command::new("samtools")
        .arg("faidx")
        .arg(fasta)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// A FASTA whose lines within a contig are uneven made `samtools faidx` fail (a tool failure,
/// 20, with a message naming no line, or for a line after a shorter one not even the contig);
/// the native check before it names the contig and the line, with the input class and a hint.
/// Each case is one that samtools faidx really refuses.
#[test]
fn uneven_fasta_lines_are_refused_naming_the_contig_and_the_line() {
    let dir = Dir::new();
    let cases = [
        (
            ">a\nACGT\nAC\n>b desc\nACGTACGT\nACGTACGTAC\nACG\n",
            "b",
            6,
            "10 bases in 11 bytes where the contig's first line (line 5) has 8 bases in 9 \
             bytes; every line of a contig but its last must have the same length",
        ),
        (
            ">a\nACGTAC\nACG\nACGTAC\n",
            "a",
            4,
            "more sequence after line 3, which is shorter (3 bases where the contig's first \
             line has 6); only the last line of a contig may be shorter",
        ),
        (
            ">a\nACGT\n\nACGT\n>b\nA\n",
            "a",
            4,
            "more sequence after the blank line 3; blank lines may only come between contigs",
        ),
        (
            ">a\nACGT\n>b\n",
            "b",
            3,
            "the file ends after this header: the last contig has no sequence",
        ),
    ];
    for (number, (text, contig, line, reason)) in cases.into_iter().enumerate() {
        let fasta = dir.write(&format!("uneven{number}.fa"), text);
        let (built, stderr) = samtools_faidx(&fasta);
        assert!(!built, "samtools faidx accepted case {number}: {stderr}");
        let error = check_fasta_layout(&fasta).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{fasta}: contig {contig:?}, line {line}: {reason}"),
            "case {number}"
        );
        assert_eq!(error.exit_class(), ExitClass::InputInvalid);
        assert_eq!(
            error.remedy().as_deref(),
            Some(
                "rewrap the FASTA so that every line of a contig but its last has the same \
                 length, with no blank line inside a contig (e.g. `seqkit seq -w 60`)"
            )
        );
    }
    // Sequence before the first header.
    let headless = dir.write("headless.fa", "\nACGT\n>a\nAC\n");
    assert_eq!(
        check_fasta_layout(&headless).unwrap_err().to_string(),
        format!(
            "{headless}: line 2: expected a '>' header line before any sequence, found \"ACGT\""
        )
    );
    // The real reference with one base cut from line 5,100 (in chr22): found at that line.
    let real = std::fs::read_to_string(testdata().join("ref.fa")).unwrap();
    let mut lines: Vec<String> = real.lines().map(str::to_owned).collect();
    lines[5099].pop();
    let cut = dir.write("cut.fa", lines.join("\n") + "\n");
    assert!(!samtools_faidx(&cut).0);
    assert_eq!(
        check_fasta_layout(&cut).unwrap_err().to_string(),
        format!(
            "{cut}: contig \"chr22\", line 5101: more sequence after line 5100, which is shorter \
             (59 bases where the contig's first line has 60); only the last line of a contig may \
             be shorter"
        )
    );
    // What faidx accepts passes, with the lengths faidx finds: the real reference; wrapped
    // lines, descriptions, blank lines between contigs, CRLF, no final newline.
    assert_eq!(
        check_fasta_layout(&testdata().join("ref.fa")).unwrap(),
        read_fai(&testdata().join("ref.fa.fai")).unwrap()
    );
    for (name, text) in [
        ("ok.fa", ">a desc\nACGTACGT\nACG\n\n>b\nA\n>c x y\nACGT"),
        ("crlf.fa", ">a\r\nACGT\r\nAC\r\n>b\r\nGG\r\n"),
    ] {
        let fasta = dir.write(name, text);
        assert!(samtools_faidx(&fasta).0);
        assert_eq!(
            check_fasta_layout(&fasta).unwrap(),
            read_fai(&dir.path(&format!("{name}.fai"))).unwrap(),
            "{name}"
        );
    }
}

/// A `.fai` is used only when it belongs to its FASTA as it is now: one with shifted offsets
/// (an edited header), a last contig 100 bases short, or another line width gave wrong bases or
/// an empty VCF; each is refused naming the contig, with the input class and a hint.
#[test]
fn a_fai_that_does_not_belong_to_its_fasta_is_refused() {
    let dir = Dir::new();
    let real = testdata().join("ref.fa");
    let text = std::fs::read_to_string(&real).unwrap();
    let real_fai = std::fs::read_to_string(testdata().join("ref.fa.fai")).unwrap();
    let check = |fasta_text: &str, fai_text: &str| {
        let fasta = dir.write("ref.fa", fasta_text);
        let fai = dir.write("ref.fa.fai", fai_text);
        check_fai_covers_fasta(&fasta, &fai).map_err(|error| {
            assert_eq!(error.exit_class(), ExitClass::InputInvalid);
            (error.to_string(), error.remedy())
        })
    };
    let prefix = format!(
        "{} does not belong to {}: ",
        dir.path("ref.fa.fai"),
        dir.path("ref.fa")
    );
    let remedy = Some(format!(
        "remove {} so that it is rebuilt, or rebuild it from this file (samtools faidx)",
        dir.path("ref.fa.fai")
    ));
    // The right index passes.
    assert_eq!(check(&text, &real_fai), Ok(()));

    // A header five bytes longer: every offset is five bytes short.
    let longer = text.replacen("slice (POS", "slice, 2024 (POS", 1);
    assert_eq!(
        check(&longer, &real_fai),
        Err((
            format!(
                "{prefix}contig \"chr20\": the index puts its sequence at byte 105, which is \
                 not the start of a line"
            ),
            remedy.clone()
        ))
    );
    // chr22's offset one line further on: it points into its own sequence.
    let shifted = real_fai.replace("\t305268\t", "\t305329\t");
    assert_eq!(
        check(&text, &shifted),
        Err((
            format!(
                "{prefix}contig \"chr22\": the index puts its sequence at byte 305329, which \
                 does not follow its header line (the line before it is \"{}...\")",
                &text[305268..305308]
            ),
            remedy.clone()
        ))
    );

    // The last contig 100 bases short: its sequence goes on past the end the index gives.
    let short = real_fai.replace("chrM\t16571\t", "chrM\t16471\t");
    assert_eq!(
        check(&text, &short),
        Err((
            format!(
                "{prefix}contig \"chrM\" goes on past the 16471 bases its index lists (byte \
                 334658 holds more sequence)"
            ),
            remedy.clone()
        ))
    );
    // 11 bases short, ending on a line end: the next line is more sequence.
    let whole_lines = real_fai.replace("chrM\t16571\t", "chrM\t16560\t");
    assert_eq!(
        check(&text, &whole_lines),
        Err((
            format!(
                "{prefix}contig \"chrM\" goes on past the 16560 bases its index lists (the line \
                 at byte 334749 holds more sequence)"
            ),
            remedy.clone()
        ))
    );
    // A middle contig listed longer than it is.
    let long = real_fai.replace("chr22\t12356\t", "chr22\t12400\t");
    assert_eq!(
        check(&text, &long),
        Err((
            format!(
                "{prefix}contig \"chr22\": sequence line 206 does not end after 60 bases (byte \
                 317833)"
            ),
            remedy.clone()
        ))
    );
    // The sequences rewrapped at 70 columns, headers kept: same names, lengths and first
    // offset, another layout.
    let mut rewrapped = String::new();
    for record in text.split_inclusive('>').filter(|part| *part != ">") {
        let record = record.strip_suffix('>').unwrap_or(record);
        let (header, sequence) = record.split_once('\n').unwrap();
        let bases: Vec<char> = sequence.chars().filter(|c| *c != '\n').collect();
        rewrapped.push('>');
        rewrapped.push_str(header);
        rewrapped.push('\n');
        for line in bases.chunks(70) {
            rewrapped.extend(line);
            rewrapped.push('\n');
        }
    }
    assert_eq!(rewrapped.lines().nth(1).map(str::len), Some(70));
    assert_eq!(
        check(&rewrapped, &real_fai),
        Err((
            format!(
                "{prefix}contig \"chr20\": sequence line 1 does not end after 60 bases (byte \
                 165)"
            ),
            remedy
        ))
    );
}

/// `bwa index` of `fasta` (index files beside it).
fn bwa_index(fasta: &Utf8Path) {
    let output = Command::new("bwa")
        .arg("index")
        .arg(fasta)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The byte offset in `text` (a FASTA with 60-base lines) of base `base` (1-based) of `contig`.
fn base_offset(text: &str, contig: &str, base: usize) -> usize {
    let header = text.find(&format!(">{contig} ")).unwrap();
    let start = text[header..].find('\n').unwrap() + header + 1;
    start + (base - 1) / 60 * 61 + (base - 1) % 60
}

/// A bwa index built from an earlier FASTA whose contigs have the same names and lengths gave
/// confident wrong calls: the index is compared with the FASTA base by base (A/C/G/T, the
/// `.pac`), run by run (ambiguous bases, the `.amb`) and contig by contig (the `.ann`).
#[test]
fn a_bwa_index_of_another_fasta_is_refused() {
    let dir = Dir::new();
    let text = std::fs::read_to_string(testdata().join("ref.fa")).unwrap();
    let fasta = dir.write("ref.fa", &text);
    bwa_index(&fasta);
    let prefix = dir.path("ref.fa");
    // The right index passes, and its summary is the FASTA's.
    check_bwa_index_matches_fasta(&fasta, &prefix).unwrap();
    let summary = read_bwa_index_summary(&prefix).unwrap();
    let contigs: Vec<Contig> = summary
        .contigs
        .iter()
        .map(|c| Contig::new(c.name.clone(), c.length))
        .collect();
    assert_eq!(contigs, read_fai(&testdata().join("ref.fa.fai")).unwrap());
    assert_eq!(
        (summary.packed_bases, summary.ambiguous.len()),
        (328_927, 0)
    );

    let expect = |fasta_text: &str, reason: &str| {
        std::fs::write(&fasta, fasta_text).unwrap();
        let error = check_bwa_index_matches_fasta(&fasta, &prefix).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{prefix} does not belong to {fasta}: {reason}")
        );
        assert_eq!(error.exit_class(), ExitClass::InputInvalid);
        assert_eq!(
            error.remedy(),
            Some(format!(
                "remove {prefix} so that it is rebuilt, or rebuild it from this file (bwa index)"
            ))
        );
    };
    // The FASTA edited after indexing: three bases of chr22 changed, same names and lengths.
    let mut edited = text.clone().into_bytes();
    for (base, new) in [(1_000, b'G'), (5_000, b'T'), (12_000, b'C')] {
        let at = base_offset(&text, "chr22", base);
        assert_ne!(edited[at], new);
        edited[at] = new;
    }
    let edited = String::from_utf8(edited).unwrap();
    expect(
        &edited,
        "base 1000 of contig chr22 is G in the FASTA, A in the index",
    );
    // A lower-case base is the same base.
    let mut lower = text.clone().into_bytes();
    lower[base_offset(&text, "chr22", 1_000)] = b'a';
    std::fs::write(&fasta, &lower).unwrap();
    check_bwa_index_matches_fasta(&fasta, &prefix).unwrap();
    // Another name for the last contig.
    expect(
        &text.replace(">chrM ", ">chrMT "),
        "contig 3 is chrMT in the FASTA, chrM in the index",
    );
    // A contig one base shorter (its last base removed).
    let end = text.find("\n>chr22").unwrap();
    let shorter = format!("{}{}", &text[..end - 1], &text[end..]);
    expect(
        &shorter,
        "contig chr20 has 299999 bases in the FASTA, 300000 in the index",
    );

    // Ambiguous bases: bwa packs a random base for each, so they are compared with the runs
    // of the `.amb`. The pattern starts chr22's line 17, at base 961.
    let pattern = "CTCCTTCTCCCGCTTTCCACGG";
    assert_eq!(
        base_offset(&text, "chr22", 961),
        text.find(pattern).unwrap()
    );
    // Ns in the FASTA where the index has bases.
    expect(
        &text.replacen(pattern, "CTCCTTCTCCCGCTTTCCACNN", 1),
        "base 981 of contig chr22 is N in the FASTA, G in the index",
    );
    // An index built with six Ns at bases 971-976 passes with them...
    let with_n = text.replacen(pattern, "CTCCTTCTCCNNNNNNCCACGG", 1);
    std::fs::write(&fasta, &with_n).unwrap();
    bwa_index(&fasta);
    check_bwa_index_matches_fasta(&fasta, &prefix).unwrap();
    let summary = read_bwa_index_summary(&prefix).unwrap();
    assert_eq!(
        summary.ambiguous,
        [AmbiguousRun {
            offset: 300_970,
            length: 6,
            character: b'N'
        }]
    );
    // ...and is refused once they are filled in with bases, or written in lower case.
    expect(
        &text,
        "base 971 of contig chr22 is C in the FASTA, N in the index",
    );
    expect(
        &with_n.replacen("NNNNNN", "NNnNNN", 1),
        "base 973 of contig chr22 is n in the FASTA, N in the index",
    );
}

/// The provenance record written beside an index: read back as written; the same files give
/// no difference, an edited FASTA is named with both digests.
#[test]
fn index_provenance_records_round_trip_and_name_what_changed() {
    let dir = Dir::new();
    let text = std::fs::read_to_string(testdata().join("ref.fa")).unwrap();
    let fasta = dir.write("ref.fa", &text);
    bwa_index(&fasta);
    let files: Vec<Utf8PathBuf> = ["amb", "ann", "bwt", "pac", "sa"]
        .iter()
        .map(|extension| dir.path(&format!("ref.fa.{extension}")))
        .collect();
    let record = IndexProvenance::of(&fasta, &files).unwrap();
    assert_eq!(record.source.name, "ref.fa");
    assert_eq!(record.source.bytes, 334_761);
    assert_eq!(
        record.source.sha256,
        sha256(text.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    let names: Vec<&str> = record.index.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "ref.fa.amb",
            "ref.fa.ann",
            "ref.fa.bwt",
            "ref.fa.pac",
            "ref.fa.sa"
        ]
    );
    let path = IndexProvenance::path(&dir.path("ref.fa"));
    assert_eq!(path, dir.path("ref.fa.provenance.json"));
    assert_eq!(IndexProvenance::read(&path).unwrap(), None);
    record.write(&path).unwrap();
    assert!(!dir.path("ref.fa.provenance.json.partial").exists());
    let read = IndexProvenance::read(&path).unwrap().unwrap();
    assert_eq!(read, record);
    assert_eq!(
        read.difference(&IndexProvenance::of(&fasta, &files).unwrap()),
        None
    );
    // The FASTA edited in place: same size, another digest.
    let edited = text.replacen("CGGACATAGA", "CGGACATAGC", 1);
    std::fs::write(&fasta, &edited).unwrap();
    let now = IndexProvenance::of(&fasta, &files).unwrap();
    assert_eq!(
        read.difference(&now),
        Some(format!(
            "ref.fa has changed since the index was built (334761 bytes, SHA-256 {} then; \
             334761 bytes, SHA-256 {} now)",
            read.source.sha256, now.source.sha256
        ))
    );
    assert_ne!(read.source.sha256, now.source.sha256);
    // A record of another format is refused.
    std::fs::write(&path, r#"{"format": "other/9", "source": {"name": "x", "bytes": 1, "sha256": "00"}, "index": []}"#).unwrap();
    assert_eq!(
        IndexProvenance::read(&path).unwrap_err().to_string(),
        format!("{path}: invalid index provenance record")
    );
}

/// The test data aligned (bwa mem | samtools sort) into `dir/name`, indexed: a real BAM and
/// `.bai`.
fn aligned_bam(dir: &Dir, name: &str) -> Utf8PathBuf {
    let fasta = dir.path("ref.fa");
    if !fasta.exists() {
        std::fs::copy(testdata().join("ref.fa"), &fasta).unwrap();
        bwa_index(&fasta);
    }
    let (r1, r2) = real_pair();
    let mut bwa = Command::new("bwa")
        .args([
            "mem",
            "-t",
            "2",
            "-K",
            "10000000",
            "-R",
            r"@RG\tID:x\tSM:NA12878",
        ])
        .args([fasta.as_str(), r1.as_str(), r2.as_str()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let bam = dir.path(name);
    let sorted = Command::new("samtools")
        .args(["sort", "-o", bam.as_str(), "-"])
        .stdin(bwa.stdout.take().unwrap())
        .output()
        .unwrap();
    assert!(bwa.wait().unwrap().success());
    assert!(sorted.status.success());
    run("samtools", &["index", bam.as_str()]);
    bam
}

/// Sparse BAMs (a fraction of the reads): htslib moves the chunks of bins holding little data
/// into their parent bins when it writes the index, so a bin's first chunk may start at a
/// record of a bin below it. Each BAM's own index belongs to it.
#[test]
fn the_index_of_a_sparse_bam_belongs_to_it() {
    let dir = Dir::new();
    let bam = aligned_bam(&dir, "a.bam");
    for fraction in ["0.5", "0.15", "0.05", "0.01", "0.002"] {
        let sparse = dir.path(&format!("sparse{fraction}.bam"));
        let args = [
            "view",
            "-b",
            "-s",
            fraction,
            "-o",
            sparse.as_str(),
            bam.as_str(),
        ];
        run("samtools", &args);
        run("samtools", &["index", sparse.as_str()]);
        let bai = Utf8PathBuf::from(format!("{sparse}.bai"));
        if let Err(error) = check_bai_matches_bam(&sparse, &bai) {
            panic!("{fraction}: {error}");
        }
    }
}

/// A `.bai` of another BAM gave an empty or wrong VCF: the index is checked against the BAM's
/// header and a few of its blocks per reference. The same records compressed otherwise
/// (another BGZF level) are another BAM for the index.
#[test]
fn a_bai_of_another_bam_is_refused() {
    let dir = Dir::new();
    let bam = aligned_bam(&dir, "a.bam");
    let bai = dir.path("a.bam.bai");
    check_bai_matches_bam(&bam, &bai).unwrap();

    let expect = |other_bai: &Utf8Path, reason: &str| {
        let error = check_bai_matches_bam(&bam, other_bai).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("{other_bai} does not belong to {bam}: {reason}")
        );
        assert_eq!(error.exit_class(), ExitClass::InputInvalid);
        assert_eq!(
            error.remedy(),
            Some(format!(
                "remove {other_bai} so that it is rebuilt, or rebuild it from this file \
                 (samtools index)"
            ))
        );
    };
    // The same records at compression level 1 (`view -1`): the offsets point into other
    // blocks.
    let level_1 = dir.path("level1.bam");
    run(
        "samtools",
        &["view", "-1", "-o", level_1.as_str(), bam.as_str()],
    );
    run("samtools", &["index", level_1.as_str()]);
    check_bai_matches_bam(&level_1, &dir.path("level1.bam.bai")).unwrap();
    // samtools writes the header in a block of its own, so the first record starts the second
    // block: at the first block's size (BSIZE + 1, SAM spec v1, section 4.1).
    let first_block = |bam: &Utf8Path| {
        let bytes = std::fs::read(bam).unwrap();
        u64::from(u16::from_le_bytes([bytes[16], bytes[17]])) + 1
    };
    expect(
        &dir.path("level1.bam.bai"),
        &format!(
            "the BAM's first record (at {}/0) is on reference 0 (chr20), whose records the index \
             starts at {}/0",
            first_block(&bam),
            first_block(&level_1)
        ),
    );
    assert_ne!(first_block(&bam), first_block(&level_1));
    // The chr22 records only, same header: its first record is where the full BAM's chr22
    // records start in the index, in another block.
    let chr22 = dir.path("chr22.bam");
    run(
        "samtools",
        &["view", "-b", "-o", chr22.as_str(), bam.as_str(), "chr22"],
    );
    let error = check_bai_matches_bam(&chr22, &bai).unwrap_err();
    let text = error.to_string();
    assert!(
        text.starts_with(&format!(
            "{bai} does not belong to {chr22}: the BAM's first record (at {}/0) is on reference \
             1 (chr22), whose records the index starts at ",
            first_block(&chr22)
        )),
        "{text}"
    );
    // The same records but one pair in the middle of chr20, same header: the first record is
    // where the index says, the later blocks are not.
    let name = Command::new("samtools")
        .args(["view", bam.as_str(), "chr20:150000-150000"])
        .output()
        .unwrap();
    let name = String::from_utf8(name.stdout).unwrap();
    let name = name.split('\t').next().unwrap();
    let minus = dir.path("minus.bam");
    run(
        "samtools",
        &[
            "view",
            "--no-PG",
            "-b",
            "-e",
            &format!("qname != \"{name}\""),
            "-o",
            minus.as_str(),
            bam.as_str(),
        ],
    );
    assert_eq!(first_block(&minus), first_block(&bam));
    let text = check_bai_matches_bam(&minus, &bai).unwrap_err().to_string();
    assert!(
        text.starts_with(&format!(
            "{bai} does not belong to {minus}: reference 0 (chr20): the first chunk of bin "
        )) && text.contains(", where no BGZF block starts ("),
        "{text}"
    );
    // The chr20 records only, same header: chr20 is where the index says, the offsets of chr22
    // lie past the end of this smaller BAM.
    let chr20 = dir.path("chr20.bam");
    run(
        "samtools",
        &[
            "view",
            "--no-PG",
            "-b",
            "-o",
            chr20.as_str(),
            bam.as_str(),
            "chr20",
        ],
    );
    let size = std::fs::metadata(&chr20).unwrap().len();
    let text = check_bai_matches_bam(&chr20, &bai).unwrap_err().to_string();
    assert!(
        text.starts_with(&format!(
            "{bai} does not belong to {chr20}: reference 1 (chr22): offset "
        )) && text.ends_with(&format!(" lies past the end of the BAM ({size} bytes)")),
        "{text}"
    );
    // A header with a fourth @SQ line: the index of that BAM lists four references.
    let header = Command::new("samtools")
        .args(["view", "-H", bam.as_str()])
        .output()
        .unwrap();
    let header = String::from_utf8(header.stdout).unwrap().replace(
        "@SQ\tSN:chrM\tLN:16571\n",
        "@SQ\tSN:chrM\tLN:16571\n@SQ\tSN:chrX\tLN:1000\n",
    );
    let header_path = dir.write("four.sam", header);
    let four = dir.path("four.bam");
    let reheadered = Command::new("samtools")
        .args(["reheader", header_path.as_str(), bam.as_str()])
        .output()
        .unwrap();
    std::fs::write(&four, reheadered.stdout).unwrap();
    run("samtools", &["index", four.as_str()]);
    expect(
        &dir.path("four.bam.bai"),
        "the index lists 4 reference sequences, the BAM header 3",
    );
}

// ---------------------------------------------------------------------------------------------
// BAM: counting records

/// The real pair (13,860 pairs) aligned once per test binary, `bwa mem | samtools sort -o -`,
/// with the sorted BAM written through a [`BamRecordCounter`] as the align step would: the BAM
/// and the counts the counter gave.
fn aligned_real_pair() -> &'static (Utf8PathBuf, BamRecordCounts) {
    static ALIGNED: std::sync::OnceLock<(Utf8PathBuf, BamRecordCounts)> =
        std::sync::OnceLock::new();
    ALIGNED.get_or_init(|| {
        let dir = Utf8PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("formats-bam-count");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let reference = dir.join("ref.fa");
        std::fs::copy(testdata().join("ref.fa"), &reference).unwrap();
        run("bwa", &["index", reference.as_str()]);
        let (r1, r2) = real_pair();
        let mut bwa = Command::new("bwa")
            .args(["mem", "-t", "2", "-R", "@RG\\tID:L1\\tSM:NA12878"])
            .args([reference.as_str(), r1.as_str(), r2.as_str()])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("bwa runs (Debian: bwa)");
        let mut sort = Command::new("samtools")
            .args(["sort", "-o", "-", "-T"])
            .arg(dir.join("sort-tmp"))
            .arg("-")
            .stdin(bwa.stdout.take().unwrap())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("samtools runs (Debian: samtools)");
        let bam = dir.join("aligned.bam");
        let mut counter = BamRecordCounter::new(std::fs::File::create(&bam).unwrap(), &bam);
        io::copy(&mut sort.stdout.take().unwrap(), &mut counter).unwrap();
        assert!(bwa.wait().unwrap().success());
        assert!(sort.wait().unwrap().success());
        let (_file, counts) = counter.finish().unwrap();
        (bam, counts)
    })
}

/// `samtools view -c` of `bam` with `filter` (e.g. `-F 0x900`).
fn samtools_count(bam: &Utf8Path, filter: &[&str]) -> u64 {
    let output = Command::new("samtools")
        .args(["view", "-c"])
        .args(filter)
        .arg(bam)
        .output()
        .expect("samtools runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The counts `samtools view -c` gives for `bam`, one filter per field.
fn samtools_counts(bam: &Utf8Path) -> BamRecordCounts {
    BamRecordCounts {
        records: samtools_count(bam, &[]),
        primary: samtools_count(bam, &["-F", "0x900"]),
        secondary: samtools_count(bam, &["-f", "0x100"]),
        supplementary: samtools_count(bam, &["-f", "0x800", "-F", "0x100"]),
    }
}

/// A writer that takes at most `limit` bytes per call, as a pipe or socket may.
struct Trickle {
    bytes: Vec<u8>,
    limit: usize,
}

impl Write for Trickle {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let taken = buf.len().min(self.limit);
        self.bytes.extend_from_slice(&buf[..taken]);
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `bytes` written through a counter in writes of `size` bytes into a [`Trickle`] taking at
/// most `limit` a call: what passed through, and what `finish` said. Counted both on the
/// writing thread and on three worker threads, which must agree.
fn count_stream(
    bytes: &[u8],
    size: usize,
    limit: usize,
) -> (Vec<u8>, Result<BamRecordCounts, FormatError>) {
    let run = |threads: usize| {
        let mut counter = BamRecordCounter::with_threads(
            Trickle {
                bytes: Vec::new(),
                limit,
            },
            "out.bam",
            threads,
        );
        for piece in bytes.chunks(size) {
            counter.write_all(piece).unwrap();
        }
        assert_eq!(counter.bytes(), bytes.len() as u64);
        match counter.finish() {
            Ok((inner, counts)) => (inner.bytes, Ok(counts)),
            Err(error) => (Vec::new(), Err(error)),
        }
    };
    let here = run(1);
    let pooled = run(3);
    assert!(here.0 == pooled.0, "the bytes passed differ");
    assert_eq!(
        here.1.as_ref().map_err(ToString::to_string),
        pooled.1.as_ref().map_err(ToString::to_string),
        "on worker threads"
    );
    here
}

/// Where each BGZF block of `bytes` starts (BSIZE at bytes 16..18 of each block: samtools and
/// noodles write XLEN 6 with only the BC subfield).
fn block_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        starts.push(at);
        at += usize::from(u16::from_le_bytes([bytes[at + 16], bytes[at + 17]])) + 1;
    }
    assert_eq!(at, bytes.len());
    starts
}

#[test]
fn the_counter_gives_samtools_counts_of_an_aligned_pair_in_any_write_size() {
    let (bam, streamed) = aligned_real_pair();
    let expected = samtools_counts(bam);
    assert_eq!(*streamed, expected);
    // Every read fed to bwa comes out once as a primary record.
    assert_eq!(streamed.primary, 2 * 13_860);
    assert_eq!(
        streamed.records,
        streamed.primary + streamed.secondary + streamed.supplementary
    );
    assert!(streamed.supplementary > 0, "{streamed:?}");
    let bytes = std::fs::read(bam).unwrap();
    assert!(block_starts(&bytes).len() > 10);
    for (size, limit) in [
        (1, 1),
        (19, 7),
        (4096, 1000),
        (65_537, 65_536),
        (1 << 20, 1 << 20),
    ] {
        let (passed, counts) = count_stream(&bytes, size, limit);
        assert_eq!(counts.unwrap(), expected, "writes of {size}, taken {limit}");
        assert!(
            passed == bytes,
            "writes of {size}: the bytes changed on the way"
        );
    }
    assert_eq!(count_bam_records(bam, 1).unwrap(), expected);
    assert_eq!(count_bam_records(bam, 2).unwrap(), expected);
    // noodles cuts blocks at 64 KiB of data, records or not: records span block boundaries.
    let recompressed = bgzf_bytes(&inflate(&bytes));
    assert_ne!(
        block_starts(&recompressed).len(),
        block_starts(&bytes).len()
    );
    for size in [7, 65_536] {
        assert_eq!(count_stream(&recompressed, size, size).1.unwrap(), expected);
    }
}

#[test]
fn merge_inputs_add_up_to_the_merged_bam() {
    let (bam, whole) = aligned_real_pair();
    let dir = Dir::new();
    let first = dir.path("first-mates.bam");
    let second = dir.path("second-mates.bam");
    let merged = dir.path("merged.bam");
    run(
        "samtools",
        &[
            "view",
            "-b",
            "-f",
            "0x40",
            "-o",
            first.as_str(),
            bam.as_str(),
        ],
    );
    run(
        "samtools",
        &[
            "view",
            "-b",
            "-F",
            "0x40",
            "-o",
            second.as_str(),
            bam.as_str(),
        ],
    );
    run(
        "samtools",
        &[
            "merge",
            "-o",
            merged.as_str(),
            first.as_str(),
            second.as_str(),
        ],
    );
    let inputs = [
        count_bam_records(&first, 1).unwrap(),
        count_bam_records(&second, 2).unwrap(),
    ];
    assert_eq!(inputs[0], samtools_counts(&first));
    assert_eq!(inputs[1], samtools_counts(&second));
    assert_eq!(inputs[0].primary, 13_860);
    assert_eq!(inputs[1].primary, 13_860);
    let sum: BamRecordCounts = inputs.into_iter().sum();
    assert_eq!(count_bam_records(&merged, 2).unwrap(), sum);
    assert_eq!(sum, *whole);
}

#[test]
fn a_bam_without_records_counts_zero() {
    let dir = Dir::new();
    let bam = dir.path("empty.bam");
    write_bam(&bam, SAM_HEADER);
    assert_eq!(
        count_bam_records(&bam, 1).unwrap(),
        BamRecordCounts::default()
    );
    let bytes = std::fs::read(&bam).unwrap();
    assert_eq!(
        count_stream(&bytes, 3, 3).1.unwrap(),
        BamRecordCounts::default()
    );
}

#[test]
fn a_stream_cut_inside_a_block_is_an_error_not_a_short_count() {
    let (bam, _) = aligned_real_pair();
    let bytes = std::fs::read(bam).unwrap();
    let starts = block_starts(&bytes);
    let block = starts.len() / 2;
    let length = starts[block + 1] - starts[block];
    let cut = starts[block] + 100;
    for size in [1000, 1 << 20] {
        let error = count_stream(&bytes[..cut], size, size).1.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "out.bam: truncated: the stream ends 100 bytes into BGZF block {} of {length} \
                 (at byte {cut})",
                block + 1
            )
        );
        assert_eq!(error.exit_class_for_output(), ExitClass::OutputInvalid);
    }
    // Cut inside a block's header, before its length shows.
    let error = count_stream(&bytes[..starts[block] + 5], 4096, 4096)
        .1
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "out.bam: truncated: the stream ends 5 bytes into BGZF block {} (at byte {})",
            block + 1,
            starts[block] + 5
        )
    );
    let dir = Dir::new();
    let file = dir.write("cut.bam", &bytes[..cut]);
    assert_eq!(
        count_bam_records(&file, 2).unwrap_err().to_string(),
        format!(
            "{file}: truncated: the stream ends 100 bytes into BGZF block {} of {length} (at \
             byte {cut})",
            block + 1
        )
    );
}

#[test]
fn a_stream_cut_between_blocks_misses_its_eof_block() {
    let (bam, _) = aligned_real_pair();
    let bytes = std::fs::read(bam).unwrap();
    let starts = block_starts(&bytes);
    for end in [starts[starts.len() / 2], bytes.len() - 28] {
        let error = count_stream(&bytes[..end], 4096, 4096).1.unwrap_err();
        assert!(
            matches!(error, FormatError::MissingBgzfEof { .. }),
            "{error:?}"
        );
        assert_eq!(
            error.to_string(),
            "out.bam: missing BGZF EOF block (truncated?)"
        );
    }
}

/// How many whole records noodles reads from BAM `bytes` before they end.
fn whole_records(bytes: &[u8]) -> u64 {
    let mut reader = noodles::bam::io::Reader::new(bytes);
    reader.read_header().unwrap();
    let mut record = noodles::bam::Record::default();
    let mut count = 0;
    while let Ok(1..) = reader.read_record(&mut record) {
        count += 1;
    }
    count
}

#[test]
fn blocks_ending_inside_a_record_or_the_header_are_an_error() {
    let (bam, _) = aligned_real_pair();
    let bytes = std::fs::read(bam).unwrap();
    // samtools starts a new block rather than split a record, so its blocks up to any block,
    // then the EOF block, are a well-formed shorter BAM: only the missing EOF block gives a
    // cut between its blocks away. Cut the data itself, compressed again by noodles.
    let data = inflate(&bytes);
    let cut = bgzf_bytes(&data[..data.len() / 2]);
    let record = whole_records(&cut) + 1;
    assert!(record > 1000, "{record}");
    let error = count_stream(&cut, 4096, 4096).1.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("out.bam: truncated: the BGZF data ends inside record {record}")
    );
    let mut blocks = bytes[..block_starts(&bytes)[10]].to_vec();
    blocks.extend_from_slice(&BGZF_EOF_BLOCK);
    assert_eq!(
        count_stream(&blocks, 4096, 4096).1.unwrap().records,
        whole_records(&blocks)
    );

    // The data of a small BAM cut inside a record's first 20 bytes, and inside the header,
    // compressed again.
    let dir = Dir::new();
    let mut sam = String::from(STATS_HEADER);
    for i in 0..3 {
        sam.push_str(&sam_record(&format!("r{i}"), 0, "c1", 10 + i, "10M"));
    }
    let small = sam_to_bam(&dir, "small", &sam);
    let data = inflate(&std::fs::read(&small).unwrap());
    let third = data.len() - (data.len() - header_length(&data)) / 3;
    for (end, inside) in [
        (third + 10, "record 3"),
        (third + 30, "record 3"),
        (header_length(&data) - 2, "the BAM header"),
        (6, "the BAM header"),
    ] {
        let error = count_stream(&bgzf_bytes(&data[..end]), 7, 7).1.unwrap_err();
        assert_eq!(
            error.to_string(),
            format!("out.bam: truncated: the BGZF data ends inside {inside}"),
            "cut at {end}"
        );
    }
    assert_eq!(
        count_stream(&bgzf_bytes(&data), 7, 7).1.unwrap(),
        BamRecordCounts {
            records: 3,
            primary: 3,
            ..BamRecordCounts::default()
        }
    );
}

/// The data of BGZF `bytes`.
fn inflate(bytes: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    MultiGzDecoder::new(bytes).read_to_end(&mut data).unwrap();
    data
}

/// The length of the header of uncompressed BAM `data` (SAM spec v1, section 4.2).
fn header_length(data: &[u8]) -> usize {
    let word = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().unwrap()) as usize;
    let mut at = 8 + word(4);
    let references = word(at);
    at += 4;
    for _ in 0..references {
        at += 4 + word(at) + 4;
    }
    at
}

#[test]
fn damaged_and_foreign_streams_are_refused_but_passed_through() {
    let (bam, _) = aligned_real_pair();
    let bytes = std::fs::read(bam).unwrap();
    let starts = block_starts(&bytes);
    // The stored CRC32 of the last block of records, one byte flipped.
    let last = starts.len() - 2;
    let mut damaged = bytes.clone();
    let crc_at = starts[last + 1] - 8;
    let stored = u32::from_le_bytes(bytes[crc_at..crc_at + 4].try_into().unwrap());
    damaged[crc_at] ^= 0xff;
    let flipped = u32::from_le_bytes(damaged[crc_at..crc_at + 4].try_into().unwrap());
    // Bytes that are not BGZF after it: the damaged block is the first problem, whether it
    // is inflated on the writing thread or by a worker while the writer reads on.
    damaged.extend_from_slice(&gzip(b"not BGZF"));
    let error = count_stream(&damaged, 1 << 16, 1 << 16).1.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "out.bam: BGZF block {}: CRC32 {stored:08x} of the data differs from {flipped:08x} \
             in the block",
            last + 1
        )
    );
    assert_eq!(error.exit_class_for_output(), ExitClass::OutputInvalid);
    let mut counter = BamRecordCounter::new(Vec::new(), "out.bam");
    counter.write_all(&damaged).unwrap();
    assert_eq!(counter.bytes(), damaged.len() as u64);

    let cases: [(Vec<u8>, &str); 3] = [
        (
            gzip(b"BAM\x01"),
            "out.bam: BGZF block 1 at byte 0: not a BGZF block (no gzip magic 1f 8b 08 with an \
             extra field)",
        ),
        (
            bgzf_bytes(VCF.as_bytes()),
            "out.bam: not BAM: the data does not start with BAM\\1",
        ),
        (Vec::new(), "out.bam: not BGZF: the file is empty"),
    ];
    for (stream, message) in cases {
        assert_eq!(
            count_stream(&stream, 5, 5).1.unwrap_err().to_string(),
            message
        );
    }
}

#[test]
fn the_first_read_name_of_gzip_plain_and_broken_files() {
    let (r1, _) = real_pair();
    assert_eq!(
        first_read_name(FastqSource::file(&r1)).unwrap(),
        "20FUKAAXX100202:1:1:1229:90686"
    );
    let dir = Dir::new();
    let plain = dir.write("a.fq", "@r1/1 extra\nACGT\n+\nIIII\n");
    assert_eq!(first_read_name(FastqSource::file(&plain)).unwrap(), "r1/1");
    let streamed = FastqSource::reader(
        "s3://b/a.fq.gz",
        std::io::Cursor::new(gzip(b"@x:1\tc\nA\n+\nI\n")),
    );
    assert_eq!(first_read_name(streamed).unwrap(), "x:1");
    std::fs::write(&plain, "").unwrap();
    assert_eq!(
        first_read_name(FastqSource::file(&plain))
            .unwrap_err()
            .to_string(),
        format!("{plain}: no records (empty file)")
    );
    std::fs::write(&plain, ">r1\nACGT\n").unwrap();
    assert_eq!(
        first_read_name(FastqSource::file(&plain))
            .unwrap_err()
            .to_string(),
        format!("{plain}: record 1, line 1: the header line does not start with '@'")
    );
}
