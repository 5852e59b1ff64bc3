//! Region-sliced staging of a BAM of the real reads (bwa mem + samtools sort + index), from
//! the local store and from the S3-compatible server on loopback: the records and calls of
//! each region are those of the whole BAM; damaged blocks, missing and stale indexes.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use biojob_core::{Classify, Contig, ExitClass, Region};
use biojob_formats::{BamStaging, FormatError, StagedBam, StoredBam, stage_bam_regions};
use biojob_storage::{LocalStore, ObjectStore, ObjectUri};
use biojob_storage_s3::{RetryPolicy, S3Options, S3Store, StaticCredentials};
use biojob_testkit::{FaultProxy, TEST_BUCKET, s3_server, testdata};
use camino::{Utf8Path, Utf8PathBuf};

use super::Dir;

/// The reference copy (with its bwa index) and the BAM of the real reads, built once.
struct Fixture {
    fasta: Utf8PathBuf,
    bam: Utf8PathBuf,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        // Under the target directory, rebuilt by each run of the test binary.
        let dir = Utf8Path::new(env!("CARGO_TARGET_TMPDIR")).join("bam-slice");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fasta = dir.join("ref.fa");
        std::fs::copy(testdata().join("ref.fa"), &fasta).unwrap();
        std::fs::copy(testdata().join("ref.fa.fai"), dir.join("ref.fa.fai")).unwrap();
        tool("bwa", &["index", fasta.as_str()]);
        let (r1, r2) = super::real_pair();
        let sam = dir.join("x.sam");
        let aligned = std::process::Command::new("bwa")
            .args(["mem", "-t", "2", "-R", "@RG\\tID:x\\tSM:NA12878"])
            .args([fasta.as_str(), r1.as_str(), r2.as_str()])
            .stderr(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(aligned.status.success(), "bwa mem failed");
        std::fs::write(&sam, aligned.stdout).unwrap();
        let bam = dir.join("x.bam");
        tool("samtools", &["sort", "-o", bam.as_str(), sam.as_str()]);
        tool("samtools", &["index", bam.as_str()]);
        Fixture { fasta, bam }
    })
}

/// Runs a tool; its standard output.
fn tool(program: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|error| panic!("cannot run {program} ({error})"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// `samtools view BAM REGION`: the records, as SAM lines.
fn view(bam: &Utf8Path, region: &str) -> Vec<String> {
    tool("samtools", &["view", bam.as_str(), region])
        .lines()
        .map(str::to_owned)
        .collect()
}

/// `bcftools mpileup -f FASTA -r REGIONS BAM | bcftools call -mv`: the VCF records.
fn calls(bam: &Utf8Path, regions: &str) -> Vec<String> {
    let fasta = &fixture().fasta;
    let mut mpileup = std::process::Command::new("bcftools")
        .args(["mpileup", "-a", "FORMAT/AD,FORMAT/DP", "-f", fasta.as_str()])
        .args(["-r", regions, bam.as_str()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let call = std::process::Command::new("bcftools")
        .args(["call", "-mv"])
        .stdin(mpileup.stdout.take().unwrap())
        .stderr(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(mpileup.wait().unwrap().success(), "bcftools mpileup failed");
    assert!(call.status.success(), "bcftools call failed");
    String::from_utf8(call.stdout)
        .unwrap()
        .lines()
        .filter(|line| !line.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

fn contig(name: &str) -> Contig {
    let length = match name {
        "chr20" => 300_000,
        "chr22" => 12_356,
        "chrM" => 16_571,
        _ => panic!("no contig {name} in the test reference"),
    };
    Contig::new(name.to_owned(), length)
}

fn region(name: &str, start: u64, end: u64) -> Region {
    Region::new(contig(name), start, end).unwrap()
}

fn local(path: &Utf8Path) -> ObjectUri {
    ObjectUri::Local(path.to_owned())
}

/// Checks the staged BAM against the whole one: the same header, and for each region (and
/// for them all at once, as the call step's `-r` gives them) the same records and calls.
/// Returns the records seen, to show the regions were not all empty.
fn assert_same_as_whole(staged: &StagedBam, regions: &[Region]) -> usize {
    let whole = &fixture().bam;
    tool("samtools", &["quickcheck", staged.bam.as_str()]);
    assert_eq!(
        tool("samtools", &["view", "-H", "--no-PG", staged.bam.as_str()]),
        tool("samtools", &["view", "-H", "--no-PG", whole.as_str()])
    );
    assert!(staged.index.is_file());
    let mut records = 0;
    for region in regions {
        let text = region.to_string();
        let ours = view(&staged.bam, &text);
        assert_eq!(ours, view(whole, &text), "records of {text}");
        records += ours.len();
        assert_eq!(
            calls(&staged.bam, &text),
            calls(whole, &text),
            "calls of {text}"
        );
    }
    let all = regions
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    assert_eq!(
        calls(&staged.bam, &all),
        calls(whole, &all),
        "calls of {all}"
    );
    records
}

fn stage_locally(source: &Utf8Path, regions: &[Region], dir: &Dir) -> StagedBam {
    stage_bam_regions(&LocalStore, &local(source), regions, &dir.path("slice.bam")).unwrap()
}

#[test]
fn a_region_in_the_middle_of_a_contig_fetches_a_small_part() {
    let dir = Dir::new();
    let whole = &fixture().bam;
    let size = std::fs::metadata(whole).unwrap().len();
    let regions = [region("chr20", 140_001, 141_000)];
    let staged = stage_locally(whole, &regions, &dir);
    assert_eq!(staged.staging, BamStaging::Regions);
    assert!(assert_same_as_whole(&staged, &regions) > 50);
    assert_eq!(staged.object_bytes, size);
    let index_bytes = std::fs::metadata(format!("{whole}.bai")).unwrap().len();
    assert_eq!(staged.index_bytes, index_bytes);
    let ranges: u64 = staged.ranges.iter().map(|r| r.end - r.start).sum();
    assert_eq!(staged.bytes_fetched, ranges + index_bytes);
    // The header's block first, then the region's: a tenth of the BAM at most.
    assert_eq!(staged.ranges[0].start, 0);
    assert!(
        staged.bytes_fetched * 10 < size,
        "fetched {} of {size} bytes: {:?}",
        staged.bytes_fetched,
        staged.ranges
    );
    assert!(std::fs::metadata(&staged.bam).unwrap().len() * 10 < size);
    assert!(!dir.path("slice.bam.partial").exists());
    assert!(!dir.path("slice.bam.bai.partial").exists());
}

#[test]
fn padded_regions_at_contig_starts_several_regions_and_whole_contigs() {
    let cases: [&[Region]; 4] = [
        // A shard's first region, padded back to base 1.
        &[region("chr22", 1, 2_000)],
        // Several regions of one shard, on two contigs.
        &[
            region("chr20", 50_001, 60_000),
            region("chr20", 200_001, 201_000),
            region("chr22", 5_000, 6_000),
        ],
        // Whole contigs (a by-contig shard).
        &[
            Region::whole(contig("chr22")),
            Region::whole(contig("chrM")),
        ],
        // Regions that overlap once padded.
        &[
            region("chr20", 99_001, 120_000),
            region("chr20", 119_001, 130_000),
        ],
    ];
    for regions in cases {
        let dir = Dir::new();
        let staged = stage_locally(&fixture().bam, regions, &dir);
        assert_eq!(staged.staging, BamStaging::Regions);
        assert!(assert_same_as_whole(&staged, regions) > 0, "{regions:?}");
    }
}

#[test]
fn regions_without_reads_give_a_valid_bam_without_their_records() {
    // chrM's reads lie within its first 300 bases; chr20's end before base 281,000.
    let regions = [
        region("chrM", 5_000, 9_000),
        region("chr20", 290_001, 300_000),
    ];
    let dir = Dir::new();
    let staged = stage_locally(&fixture().bam, &regions, &dir);
    assert_eq!(assert_same_as_whole(&staged, &regions), 0);
    assert_eq!(view(&fixture().bam, "chrM:5000-9000"), Vec::<String>::new());
    let size = std::fs::metadata(&fixture().bam).unwrap().len();
    assert!(staged.bytes_fetched * 10 < size, "{:?}", staged.ranges);
}

#[test]
fn regions_are_read_as_samtools_reads_them() {
    let store = LocalStore;
    let bam = StoredBam::open(&store, &local(&fixture().bam)).unwrap();
    assert_eq!(
        bam.contigs(),
        vec![contig("chr20"), contig("chr22"), contig("chrM")]
    );
    assert_eq!(bam.unusable_index(), None);
    let resolve = |text: &str| bam.resolve_region(text).map(|r| r.to_string());
    assert_eq!(resolve("chr22").unwrap(), "chr22");
    assert_eq!(resolve("chr20:1,000-2,000").unwrap(), "chr20:1000-2000");
    assert_eq!(resolve("chr20:5000").unwrap(), "chr20:5000-300000");
    assert_eq!(resolve("chr20:5000-").unwrap(), "chr20:5000-300000");
    assert_eq!(resolve("chrM:16000-99999").unwrap(), "chrM:16000-16571");
    let path = fixture().bam.as_str();
    let refused = |text: &str| {
        let error = bam.resolve_region(text).unwrap_err();
        assert_eq!(error.exit_class(), ExitClass::InputInvalid);
        error.to_string()
    };
    assert_eq!(
        refused("20:1-5"),
        format!(
            "{path}: region \"20:1-5\": no contig \"20\" in the header (contigs: chr20, chr22, chrM)"
        )
    );
    assert_eq!(
        refused("chr21"),
        format!(
            "{path}: region \"chr21\": no contig of that name in the header (contigs: chr20, \
             chr22, chrM)"
        )
    );
    assert_eq!(
        refused("chr20:500-100"),
        format!(
            "{path}: region \"chr20:500-100\": bases 500 to 100 are not within chr20 (1 to 300000)"
        )
    );
    assert_eq!(
        refused("chr20:x-100"),
        format!("{path}: region \"chr20:x-100\": \"x\" is not a position")
    );
    // A region whose contig has another length than in the BAM.
    let error = bam
        .stage_regions(
            &[Region::whole(Contig::new("chr22".to_owned(), 12_000))],
            &Dir::new().path("x.bam"),
        )
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        format!(
            "{path}: region \"chr22\": chr22 has 12356 bases in the header, 12000 in the reference"
        )
    );
}

/// A copy of the fixture's BAM and index in `dir`, with the BAM's bytes changed by `edit`.
fn copy_bam(dir: &Dir, edit: impl FnOnce(&mut Vec<u8>)) -> Utf8PathBuf {
    let bam = dir.path("source.bam");
    let mut bytes = std::fs::read(&fixture().bam).unwrap();
    edit(&mut bytes);
    std::fs::write(&bam, bytes).unwrap();
    std::fs::copy(format!("{}.bai", fixture().bam), format!("{bam}.bai")).unwrap();
    bam
}

/// The offsets and sizes of the BGZF blocks of `bytes`.
fn blocks(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut blocks = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let size = usize::from(u16::from_le_bytes([bytes[at + 16], bytes[at + 17]])) + 1;
        blocks.push((at, size));
        at += size;
    }
    blocks
}

/// A block that staging chr20:140001-141000 reads: one inside the range fetched for it.
fn a_block_of_the_middle_region() -> (usize, usize) {
    let dir = Dir::new();
    let staged = stage_locally(&fixture().bam, &[region("chr20", 140_001, 141_000)], &dir);
    let bytes = std::fs::read(&fixture().bam).unwrap();
    let range = staged.ranges.last().unwrap().clone();
    blocks(&bytes)
        .into_iter()
        .find(|&(offset, size)| offset as u64 > range.start && ((offset + size) as u64) < range.end)
        .unwrap()
}

fn damaged(error: FormatError) -> (Utf8PathBuf, u64, String) {
    assert_eq!(error.exit_class(), ExitClass::InputInvalid);
    match error {
        FormatError::DamagedBlock {
            path,
            offset,
            reason,
        } => (path, offset, reason),
        other => panic!("expected a damaged block, got {other:?}"),
    }
}

#[test]
fn damaged_blocks_are_input_integrity_errors_naming_the_offset() {
    let (offset, size) = a_block_of_the_middle_region();
    let regions = [region("chr20", 140_001, 141_000)];
    let crc_at = offset + size - 8;
    let original = std::fs::read(&fixture().bam).unwrap();
    let crc = u32::from_le_bytes(original[crc_at..crc_at + 4].try_into().unwrap());
    let isize_at = offset + size - 4;
    let isize = u32::from_le_bytes(original[isize_at..isize_at + 4].try_into().unwrap());
    // (where, the bytes written there, the reason given)
    let cases = [
        (
            crc_at,
            (crc ^ 0x01).to_le_bytes().to_vec(),
            format!(
                "the CRC32 of the inflated data is {crc:#010x}, the trailer says {:#010x}",
                crc ^ 0x01
            ),
        ),
        (
            offset + 1,
            vec![0x00],
            "not a BGZF block: no gzip magic 1f 8b 08".to_owned(),
        ),
        (
            offset + 12,
            vec![b'X'],
            "not a BGZF block: the extra field has no BC subfield".to_owned(),
        ),
        (
            isize_at,
            (isize + 2).to_le_bytes().to_vec(),
            format!(
                "its data inflates to {isize} bytes, ISIZE says {}",
                isize + 2
            ),
        ),
        (
            isize_at,
            (isize - 2).to_le_bytes().to_vec(),
            format!("its data inflates to more than ISIZE ({} bytes)", isize - 2),
        ),
    ];
    for (at, written, reason) in cases {
        let dir = Dir::new();
        let source = copy_bam(&dir, |bytes| {
            bytes[at..at + written.len()].copy_from_slice(&written);
        });
        let destination = dir.path("slice.bam");
        let error =
            stage_bam_regions(&LocalStore, &local(&source), &regions, &destination).unwrap_err();
        let message = error.to_string();
        assert_eq!(
            damaged(error),
            (source.clone(), offset as u64, reason.clone())
        );
        assert_eq!(
            message,
            format!("{source}: damaged BGZF block at byte {offset}: {reason}")
        );
        assert!(!destination.exists());
        assert!(!dir.path("slice.bam.partial").exists());
    }
}

#[test]
fn a_missing_or_stale_index_stages_the_whole_bam_with_its_own_index() {
    let regions = [region("chr20", 140_001, 141_000)];
    let dir = Dir::new();
    let source = copy_bam(&dir, |_| {});
    let bai = Utf8PathBuf::from(format!("{source}.bai"));
    let size = std::fs::metadata(&source).unwrap().len();

    // Older by a second than the BAM.
    let bam_time = std::fs::metadata(&source).unwrap().modified().unwrap();
    let bai_time = bam_time - Duration::from_secs(1);
    std::fs::File::options()
        .write(true)
        .open(&bai)
        .unwrap()
        .set_modified(bai_time)
        .unwrap();
    let stale =
        stage_bam_regions(&LocalStore, &local(&source), &regions, &dir.path("a.bam")).unwrap();
    assert_eq!(
        stale.staging,
        BamStaging::Whole {
            reason: format!(
                "{bai} is older than the BAM (Last-Modified {} < {})",
                humantime::format_rfc3339(bai_time),
                humantime::format_rfc3339(bam_time)
            )
        }
    );
    assert_whole(&stale, &source, size);
    assert_eq!(stale.index, dir.path("a.bam.bai"));

    std::fs::remove_file(&bai).unwrap();
    let missing =
        stage_bam_regions(&LocalStore, &local(&source), &regions, &dir.path("b.bam")).unwrap();
    assert_eq!(
        missing.staging,
        BamStaging::Whole {
            reason: format!("{bai} does not exist")
        }
    );
    assert_whole(&missing, &source, size);
}

/// The whole object was staged, and indexed here.
fn assert_whole(staged: &StagedBam, source: &Utf8Path, size: u64) {
    assert_eq!(
        std::fs::read(&staged.bam).unwrap(),
        std::fs::read(source).unwrap()
    );
    assert_eq!(staged.ranges.last(), Some(&(0..size)));
    assert_eq!(staged.index_bytes, 0);
    let regions = [
        region("chr20", 140_001, 141_000),
        Region::whole(contig("chr22")),
    ];
    assert!(assert_same_as_whole(staged, &regions) > 0);
}

#[test]
fn an_index_of_another_bam_is_not_used() {
    let dir = Dir::new();
    let source = copy_bam(&dir, |_| {});
    // The index of a BAM with chrM alone: one reference sequence.
    let header: String = tool(
        "samtools",
        &["view", "-H", "--no-PG", fixture().bam.as_str()],
    )
    .lines()
    .filter(|line| !line.starts_with("@SQ") || line.contains("SN:chrM"))
    .map(|line| format!("{line}\n"))
    .collect();
    let sam = dir.write("only_chrm.sam", header);
    let only_chrm = dir.path("only_chrm.bam");
    tool(
        "samtools",
        &["view", "-b", "-o", only_chrm.as_str(), sam.as_str()],
    );
    tool("samtools", &["index", only_chrm.as_str()]);
    std::fs::copy(format!("{only_chrm}.bai"), format!("{source}.bai")).unwrap();
    let store = LocalStore;
    let bam = StoredBam::open(&store, &local(&source)).unwrap();
    assert_eq!(
        bam.unusable_index(),
        Some(format!("{source}.bai lists 1 reference sequences, the BAM header 3").as_str())
    );
}

/// `count` @CO lines of 100 hexadecimal digits that compress poorly (about 2:1).
fn comments(count: usize) -> String {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut text = String::new();
    for _ in 0..count {
        text.push_str("@CO\t");
        for _ in 0..100 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            text.push(char::from(b"0123456789abcdef"[(state >> 60) as usize]));
        }
        text.push('\n');
    }
    text
}

/// A copy of the fixture's BAM whose header carries `count` more @CO lines, indexed: its
/// header spans several BGZF blocks.
fn bam_with_a_long_header(dir: &Dir, count: usize) -> Utf8PathBuf {
    let mut header = tool(
        "samtools",
        &["view", "-H", "--no-PG", fixture().bam.as_str()],
    );
    header.push_str(&comments(count));
    let header_file = dir.write("header.sam", header);
    let bam = dir.path("long.bam");
    let output = std::process::Command::new("samtools")
        .args(["reheader", header_file.as_str(), fixture().bam.as_str()])
        .output()
        .unwrap();
    assert!(output.status.success());
    std::fs::write(&bam, output.stdout).unwrap();
    tool("samtools", &["index", bam.as_str()]);
    bam
}

#[test]
fn a_header_of_several_blocks_is_read_whole() {
    let dir = Dir::new();
    // About 300 kB of header text: at least five blocks.
    let source = bam_with_a_long_header(&dir, 3_000);
    let regions = [region("chr20", 140_001, 141_000)];
    let staged =
        stage_bam_regions(&LocalStore, &local(&source), &regions, &dir.path("s.bam")).unwrap();
    assert_eq!(staged.staging, BamStaging::Regions);
    assert_eq!(
        tool("samtools", &["view", "-H", "--no-PG", staged.bam.as_str()]),
        tool("samtools", &["view", "-H", "--no-PG", source.as_str()])
    );
    for region in &regions {
        let text = region.to_string();
        assert_eq!(view(&staged.bam, &text), view(&source, &text));
    }
    // The header's blocks (about 150 kB) were fetched in one range, from byte 0 to the
    // first record's block, which the index gives.
    assert_eq!(staged.ranges[0].start, 0);
    assert!(staged.ranges[0].end > 100_000, "{:?}", staged.ranges);
    assert!(staged.ranges[1].start >= staged.ranges[0].end);
}

#[test]
fn a_long_header_without_a_record_to_guide_it_is_read_until_whole() {
    let dir = Dir::new();
    let mut header = tool(
        "samtools",
        &["view", "-H", "--no-PG", fixture().bam.as_str()],
    );
    header.push_str(&comments(3_000));
    // Only unplaced, unmapped reads: the index has no chunk to say where the header ends.
    header.push_str("r1\t4\t*\t0\t0\t*\t*\t0\t0\tACGT\tIIII\n");
    let sam = dir.write("unmapped.sam", header);
    let source = dir.path("unmapped.bam");
    tool(
        "samtools",
        &["view", "-b", "-o", source.as_str(), sam.as_str()],
    );
    tool("samtools", &["index", source.as_str()]);
    let staged = stage_bam_regions(
        &LocalStore,
        &local(&source),
        &[Region::whole(contig("chr22"))],
        &dir.path("s.bam"),
    )
    .unwrap();
    assert_eq!(
        tool("samtools", &["view", "-H", "--no-PG", staged.bam.as_str()]),
        tool("samtools", &["view", "-H", "--no-PG", source.as_str()])
    );
    assert_eq!(view(&staged.bam, "chr22"), Vec::<String>::new());
    // 64 KiB, then as much again each time, each range after the last.
    assert_eq!(staged.ranges[0], 0..65_536);
    assert_eq!(staged.ranges[1], 65_536..131_072);
    assert!(staged.ranges.windows(2).all(|w| w[0].end == w[1].start));
}

// ---------------------------------------------------------------------------------------------
// From S3

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

pub(super) fn s3_store(endpoint: &str) -> S3Store {
    let server = s3_server();
    let options = S3Options {
        endpoint_url: Some(endpoint.to_owned()),
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(100),
        },
        credentials: Some(StaticCredentials {
            access_key_id: server.access_key.clone(),
            secret_access_key: server.secret_key.clone(),
        }),
        ..S3Options::default()
    };
    S3Store::new(runtime().handle().clone(), options).unwrap()
}

pub(super) fn s3_uri(key: &str) -> ObjectUri {
    ObjectUri::S3 {
        bucket: TEST_BUCKET.to_owned(),
        key: key.to_owned(),
    }
}

fn upload(store: &S3Store, source: &Utf8Path, uri: &ObjectUri) {
    store.put(source, uri).unwrap();
}

/// The bytes asked for by the proxied store's ranged GETs (`Range: bytes=a-b`).
fn bytes_requested(proxy: &FaultProxy) -> u64 {
    proxy
        .requests()
        .iter()
        .filter(|head| head.starts_with("GET "))
        .map(|head| {
            let range = head
                .lines()
                .find_map(|line| {
                    let (name, value) = line.split_once(':')?;
                    name.eq_ignore_ascii_case("range")
                        .then(|| value.trim().trim_start_matches("bytes=").to_owned())
                })
                .unwrap_or_else(|| panic!("a GET without a range: {head}"));
            let (start, end) = range.split_once('-').unwrap();
            end.parse::<u64>().unwrap() - start.parse::<u64>().unwrap() + 1
        })
        .sum()
}

#[test]
fn from_s3_only_the_regions_blocks_are_fetched_and_counted() {
    let direct = s3_store(&s3_server().endpoint);
    let uri = s3_uri("slice/counted/x.bam");
    upload(&direct, &fixture().bam, &uri);
    upload(
        &direct,
        &Utf8PathBuf::from(format!("{}.bai", fixture().bam)),
        &uri.with_suffix(".bai"),
    );
    let proxy = FaultProxy::start(&s3_server().endpoint);
    let store = s3_store(&proxy.endpoint);
    let dir = Dir::new();
    // Two regions: one in the middle of chr20, chrM's reads (within one block).
    let regions = [region("chr20", 140_001, 141_000), region("chrM", 100, 300)];
    let staged = stage_bam_regions(&store, &uri, &regions, &dir.path("slice.bam")).unwrap();
    assert_eq!(staged.staging, BamStaging::Regions);
    assert!(assert_same_as_whole(&staged, &regions) > 50);
    let size = std::fs::metadata(&fixture().bam).unwrap().len();
    assert_eq!(staged.object_bytes, size);
    // What the store was asked for is what the result says was fetched.
    assert_eq!(bytes_requested(&proxy), staged.bytes_fetched);
    assert!(staged.bytes_fetched * 5 < size, "{:?}", staged.ranges);
    // Every GET of the BAM is pinned to the ETag its HEAD saw.
    let etag = direct.head(&uri).unwrap().unwrap().version.unwrap();
    let bam_gets: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|head| {
            let line = head.lines().next().unwrap();
            line.starts_with("GET ") && line.contains("/x.bam") && !line.contains(".bai")
        })
        .collect();
    assert!(!bam_gets.is_empty());
    for head in bam_gets {
        assert!(
            head.lines()
                .any(|line| line.eq_ignore_ascii_case(&format!("if-match: {etag}"))),
            "{head}"
        );
    }
}

#[test]
fn from_s3_a_damaged_block_is_an_integrity_error_naming_the_uri_and_offset() {
    let (offset, size) = a_block_of_the_middle_region();
    let dir = Dir::new();
    let crc_at = offset + size - 8;
    let source = copy_bam(&dir, |bytes| bytes[crc_at] ^= 0x80);
    let original = std::fs::read(&fixture().bam).unwrap();
    let crc = u32::from_le_bytes(original[crc_at..crc_at + 4].try_into().unwrap());
    let store = s3_store(&s3_server().endpoint);
    let uri = s3_uri("slice/damaged/x.bam");
    upload(&store, &source, &uri);
    upload(
        &store,
        &Utf8PathBuf::from(format!("{source}.bai")),
        &uri.with_suffix(".bai"),
    );
    let destination = dir.path("slice.bam");
    let error = stage_bam_regions(
        &store,
        &uri,
        &[region("chr20", 140_001, 141_000)],
        &destination,
    )
    .unwrap_err();
    assert_eq!(
        error.remedy().as_deref(),
        Some(
            format!(
                "the object is damaged; upload it again (`biojob stage get {uri} .` then \
                 `samtools quickcheck` and `samtools view -c` check a copy)"
            )
            .as_str()
        )
    );
    assert_eq!(
        error.to_string(),
        format!(
            "{uri}: damaged BGZF block at byte {offset}: the CRC32 of the inflated data is \
             {crc:#010x}, the trailer says {:#010x}",
            crc ^ 0x80
        )
    );
    assert_eq!(error.exit_class(), ExitClass::InputInvalid);
    assert!(!destination.exists());
    assert!(!dir.path("slice.bam.partial").exists());
}

#[test]
fn from_s3_a_missing_or_older_index_falls_back_to_the_whole_object() {
    let store = s3_store(&s3_server().endpoint);
    let uri = s3_uri("slice/fallback/x.bam");
    let bai_uri = uri.with_suffix(".bai");
    let size = std::fs::metadata(&fixture().bam).unwrap().len();
    let regions = [region("chr20", 140_001, 141_000)];

    upload(&store, &fixture().bam, &uri);
    let dir = Dir::new();
    let missing = stage_bam_regions(&store, &uri, &regions, &dir.path("a.bam")).unwrap();
    assert_eq!(
        missing.staging,
        BamStaging::Whole {
            reason: format!("{bai_uri} does not exist")
        }
    );
    assert_whole(&missing, &fixture().bam, size);

    // The index first, the BAM a second later: Last-Modified has whole seconds.
    upload(
        &store,
        &Utf8PathBuf::from(format!("{}.bai", fixture().bam)),
        &bai_uri,
    );
    std::thread::sleep(Duration::from_millis(1_100));
    upload(&store, &fixture().bam, &uri);
    let time = |uri: &ObjectUri| -> SystemTime {
        store.head(uri).unwrap().unwrap().last_modified.unwrap()
    };
    let (bai_time, bam_time) = (time(&bai_uri), time(&uri));
    let stale = stage_bam_regions(&store, &uri, &regions, &dir.path("b.bam")).unwrap();
    assert_eq!(
        stale.staging,
        BamStaging::Whole {
            reason: format!(
                "{bai_uri} is older than the BAM (Last-Modified {} < {})",
                humantime::format_rfc3339(bai_time),
                humantime::format_rfc3339(bam_time)
            )
        }
    );
    assert_whole(&stale, &fixture().bam, size);

    // Uploaded again after the BAM, the index is used.
    upload(
        &store,
        &Utf8PathBuf::from(format!("{}.bai", fixture().bam)),
        &bai_uri,
    );
    let fresh = stage_bam_regions(&store, &uri, &regions, &dir.path("c.bam")).unwrap();
    assert_eq!(fresh.staging, BamStaging::Regions);
}
