//! Scratch space with real parts: tmpfs mounts (these tests need root, as CI runs them) grown
//! for real with `mount -o remount,size=…`, the real align step on the NA12878 test data
//! (`BIOJOB_TESTDATA`, by default `shared/testdata` beside the work tree), and the fake tools
//! of `testdata/bin`.

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

use biojob_core::{Classify, ExitClass, ReadGroup, SampleId};
use biojob_pipeline::{
    AlignStep, Engine, Error, FASTQ_1, FASTQ_2, JobInput, JobTarget, KeyPolicy, LogObserver,
    PreparedReference, ReferenceInput, ReferenceOptions, ReferenceUse, Resources, ScratchSettings,
    StepContext, StepJob, error_chain, prepare_reference, probe_tools,
};
use biojob_process::{CancelToken, CommandSpec, ProcessError};
use biojob_scratch::{Attempt, AutoscaleMode, JobId, JobScratch, SpaceWatch, fs_space};
use biojob_storage::ObjectUri;
use biojob_storage::Stores;
use biojob_testkit::{Tmpfs, fake_tool as fake, testdata};
use biojob_tools::Toolset;
use camino::{Utf8Path, Utf8PathBuf};

// ---------------------------------------------------------------------------------------------
// helpers

/// Grows a tmpfs when dropped, so that a failed assertion never leaves a paused tool behind.
struct GrowOnDrop<'a>(&'a Tmpfs, &'static str);

impl Drop for GrowOnDrop<'_> {
    fn drop(&mut self) {
        self.0.resize(self.1);
    }
}

fn temp_dir() -> (tempfile::TempDir, Utf8PathBuf) {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = Utf8PathBuf::from_path_buf(temp.path().to_path_buf()).expect("UTF-8");
    (temp, dir)
}

/// An engine with the real tools on `PATH`, scratch under `root`.
fn engine(root: &Utf8Path, autoscale: AutoscaleMode) -> Engine {
    let toolset = Toolset::resolve(None, None, None).expect("bwa, samtools, bcftools on PATH");
    let cancel = CancelToken::new();
    let (_probe, probe_dir) = temp_dir();
    let versions = probe_tools(&toolset, &cancel, &probe_dir).expect("tool versions");
    let mut scratch = ScratchSettings::new(root);
    scratch.autoscale = autoscale;
    scratch.low_water_bytes = 3 << 20;
    scratch.wait_timeout = Duration::from_secs(60);
    scratch.interval = Duration::from_millis(100);
    Engine {
        stores: Stores::local_only(),
        toolset,
        versions,
        resources: Resources {
            threads: 2,
            memory_bytes: 4 << 30,
        },
        cancel,
        grace: Duration::from_secs(10),
        timeout: None,
        step_timeout: None,
        progress_interval: std::time::Duration::from_secs(60),
        scratch,
        validate_fastq: true,
        prices: biojob_pipeline::Prices::default(),
    }
}

fn open(engine: &Engine, job: &str) -> (JobScratch, SpaceWatch, StepContext) {
    let (scratch, space) = engine
        .scratch
        .open(&JobId::new(job).expect("job id"), Attempt::FIRST)
        .expect("scratch");
    let context = engine.context(&scratch.dir().join("logs"), &space);
    (scratch, space, context)
}

/// The align job of the test data's pair in `work_dir`, outputs published to a temporary
/// directory; its error, below the task's wrapper (`align failed: …`).
fn align_job(
    context: &StepContext,
    work_dir: &Utf8Path,
    reference: PreparedReference,
) -> Result<(), Error> {
    let data = testdata();
    let sample = SampleId::new("NA12878").expect("sample");
    let step = AlignStep {
        read_group: ReadGroup::for_sample(&sample),
        sample,
        chunk: None,
        chunking: None,
        validate_fastq: true,
        lane: None,
        mark_duplicates: false,
    };
    let (_out, out_dir) = temp_dir();
    let fastq = |role: &str, name: &str| {
        JobInput::new(
            role,
            ObjectUri::Local(data.join(name)),
            role,
            "the test data",
        )
    };
    let job = StepJob {
        definition: &step,
        inputs: vec![
            fastq(FASTQ_1, "NA12878_R1.fastq.gz"),
            fastq(FASTQ_2, "NA12878_R2.fastq.gz"),
        ],
        reference: Some((
            ReferenceInput::Prepared(reference),
            ReferenceUse::FastaAndBwaIndex,
        )),
        key: KeyPolicy::None,
    };
    let outcome = job.run(&JobTarget {
        context,
        work_dir,
        prefix: &ObjectUri::Local(out_dir),
        publish_intermediates: false,
        earlier: None,
        observer: &LogObserver,
    });
    match outcome.error {
        None => Ok(()),
        Some(Error::Step { source, .. }) => Err(*source),
        Some(other) => Err(other),
    }
}

/// The files under `dir`, relative, sorted.
fn files(dir: &Utf8Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current).expect("read dir").flatten() {
            let path = Utf8PathBuf::from_path_buf(entry.path()).expect("UTF-8");
            if path.is_dir() {
                pending.push(path);
            } else {
                out.push(path.strip_prefix(dir).expect("under dir").to_string());
            }
        }
    }
    out.sort();
    out
}

fn file_len(path: &Utf8Path) -> u64 {
    std::fs::metadata(path).map_or(0, |meta| meta.len())
}

// ---------------------------------------------------------------------------------------------
// pausing while the filesystem grows

#[test]
fn a_steady_writer_is_paused_until_the_tmpfs_grows_then_finishes() {
    let tmpfs = Tmpfs::mount("8M");
    let engine = engine(&tmpfs.dir, AutoscaleMode::On);
    let (scratch, space, context) = open(&engine, "grow");
    let out = scratch.dir().join("NA12878.align.bam.partial");
    let writer = CommandSpec::new("samtools-sort", fake("write-steadily"))
        .args(["10240", "256", "0.05"])
        .stdout_file(&out);
    let (result, observed) = thread::scope(|scope| {
        let run = scope.spawn(|| context.supervisor.run(writer));
        let grow = GrowOnDrop(&tmpfs, "32M");
        let give_up = Instant::now() + Duration::from_secs(20);
        while !space.is_paused() && Instant::now() < give_up {
            thread::sleep(Duration::from_millis(10));
        }
        let paused = space.is_paused();
        // Let the SIGSTOP land, then watch the output stay still.
        thread::sleep(Duration::from_millis(100));
        let before = file_len(&out);
        thread::sleep(Duration::from_millis(400));
        let after = file_len(&out);
        let free = fs_space(&tmpfs.dir).expect("space").free_bytes;
        drop(grow);
        (run.join().expect("run"), (paused, before, after, free))
    });
    let (paused, before, after, free) = observed;
    assert!(paused, "the writer was never paused");
    assert_eq!(before, after, "written while paused");
    assert!(free < 3 << 20, "paused with {free} bytes free");
    let report = result.expect("finishes once the tmpfs grew");
    assert!(report.success());
    assert_eq!(file_len(&out), 10 << 20);

    let usage = space.usage();
    assert_eq!(usage.growth_waits.len(), 1, "{usage:?}");
    let wait = &usage.growth_waits[0];
    assert!(wait.resumed);
    assert_eq!(wait.total_bytes_at_pause, 8 << 20);
    assert_eq!(wait.total_bytes_after, 32 << 20);
    assert!(wait.waited_seconds >= 0.4, "{wait:?}");
    assert!(usage.peak_bytes >= 10 << 20, "{usage:?}");
    scratch.finish(false).expect("cleanup");
    assert_eq!(files(&tmpfs.dir), Vec::<String>::new());
}

#[test]
fn a_steady_writer_is_stopped_with_the_scratch_class_when_the_tmpfs_never_grows() {
    let tmpfs = Tmpfs::mount("8M");
    let mut engine = engine(&tmpfs.dir, AutoscaleMode::On);
    engine.scratch.wait_timeout = Duration::from_secs(1);
    let (scratch, _space, context) = open(&engine, "never");
    let out = scratch.dir().join("NA12878.align.bam.partial");
    let started = Instant::now();
    let error = context
        .supervisor
        .run(
            CommandSpec::new("samtools-sort", fake("write-steadily"))
                .args(["10240", "256", "0.05"])
                .stdout_file(&out),
        )
        .expect_err("never grew");
    let elapsed = started.elapsed();
    let free = fs_space(&tmpfs.dir).expect("space").free_bytes;
    let error = Error::Process(error);
    assert_eq!(
        error_chain(&error),
        format!(
            "stopped samtools-sort: scratch {} did not grow within 1s: {free} bytes ({}) free, \
             6291456 bytes (6.0 MiB) needed to resume",
            scratch.dir(),
            biojob_scratch::format_bytes(free)
        )
    );
    assert_eq!(error.exit_class(), ExitClass::Scratch);
    assert_eq!(error.exit_class().code(), 12);
    assert!(elapsed < Duration::from_secs(15), "took {elapsed:?}");
    assert!(matches!(
        error,
        Error::Process(ProcessError::Watchdog { .. })
    ));
}

// ---------------------------------------------------------------------------------------------
// ENOSPC

#[test]
fn enospc_during_align_is_the_scratch_class_and_leaves_no_output() {
    let data = testdata();
    let (_cache_temp, cache) = temp_dir();
    let tmpfs = Tmpfs::mount("12M");
    let engine = engine(&tmpfs.dir, AutoscaleMode::Off);
    let (scratch, _space, context) = open(&engine, "enospc");
    let work_dir = scratch.dir().to_owned();
    let (reference, _) = prepare_reference(
        &data.join("ref.fa"),
        &ReferenceOptions {
            cache_dir: cache.clone(),
            bwa_index: true,
            stale_index: Default::default(),
        },
        &context,
    )
    .expect("reference");
    // A neighbour fills the disk once the tools have started (the preflight passed: 12 MiB
    // free, 6.8 MiB needed); samtools sort writes the BAM only after bwa has finished.
    let filler = tmpfs.dir.join("neighbour");
    let bwa_log = work_dir.join("logs/bwa-mem.stderr");
    let result = thread::scope(|scope| {
        scope.spawn(|| {
            let give_up = Instant::now() + Duration::from_secs(30);
            while !bwa_log.exists() && Instant::now() < give_up {
                thread::sleep(Duration::from_millis(5));
            }
            let mut file = std::fs::File::create(&filler).expect("create filler");
            let chunk = vec![0u8; 64 << 10];
            while file.write_all(&chunk).is_ok() {}
        });
        align_job(&context, &work_dir, reference)
    });
    let error = result.expect_err("the disk is full");
    let chain = error_chain(&error);
    assert_eq!(error.exit_class(), ExitClass::Scratch, "{chain}");
    assert_eq!(error.exit_class().code(), 12);
    // samtools sort does not always say "No space left on device" (it may report a stale
    // errno): the full disk found when the step failed is named as the cause.
    let Error::ScratchFull { full, source } = &error else {
        panic!("expected ScratchFull, got {chain}");
    };
    let biojob_scratch::ScratchError::Full { path, free, total } = full else {
        panic!("expected Full, got {full:?}");
    };
    assert_eq!(path, &work_dir);
    assert_eq!(*total, 12 << 20);
    assert!(*free < 64 << 10, "{free} bytes free");
    // Whichever found the disk full first: sort writing its temporary files, or biojob
    // writing sort's output into the BAM.
    let source = source.to_string();
    assert!(
        source.starts_with("samtools-sort exited with status 1: ")
            || source == format!("writing {work_dir}/NA12878.align.bam.partial"),
        "{chain}"
    );
    assert_eq!(
        error.remedy().as_deref(),
        Some(
            "give the job a larger scratch volume or point BIOJOB_SCRATCH_DIR at a larger \
             filesystem"
        )
    );
    // No partial output, no final output, no sort temporary file: only the logs.
    assert_eq!(
        files(&work_dir),
        [
            "logs/bwa-index.stderr",
            "logs/bwa-mem.stderr",
            "logs/samtools-sort.stderr"
        ]
    );
    scratch.finish(false).expect("cleanup");
}

#[test]
fn enospc_in_biojobs_own_io_is_the_scratch_class_and_leaves_no_partial_file() {
    let data = testdata();
    let (_temp, dir) = temp_dir();
    // A gzip-compressed reference is decompressed by biojob itself into the cache.
    let gz = dir.join("ref.fa.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).expect("create"),
        flate2::Compression::fast(),
    );
    encoder
        .write_all(&std::fs::read(data.join("ref.fa")).expect("read ref.fa"))
        .expect("compress");
    encoder.finish().expect("finish gzip");
    let cache = Tmpfs::mount("128k");
    let (_scratch_temp, scratch_root) = temp_dir();
    let engine = engine(&scratch_root, AutoscaleMode::Off);
    let (scratch, _space, context) = open(&engine, "own-io");
    let error = prepare_reference(
        &gz,
        &ReferenceOptions {
            cache_dir: cache.dir.clone(),
            bwa_index: false,
            stale_index: Default::default(),
        },
        &context,
    )
    .expect_err("the cache is too small for the 335 kB FASTA");
    let Error::Io {
        op, path, source, ..
    } = &error
    else {
        panic!("expected Error::Io, got {error:?}");
    };
    assert_eq!(*op, "writing");
    assert_eq!(path.file_name(), Some("reference.fa"));
    assert_eq!(source.kind(), std::io::ErrorKind::StorageFull);
    assert_eq!(error.exit_class(), ExitClass::Scratch);
    assert_eq!(error.exit_class().code(), 12);
    // The half-written FASTA went with its temporary directory.
    assert_eq!(files(&cache.dir), Vec::<String>::new());
    assert_eq!(fs_space(&cache.dir).expect("space").free_bytes, 128 << 10);
    scratch.finish(false).expect("cleanup");
}

// ---------------------------------------------------------------------------------------------
// preflight in a step

#[test]
fn align_refuses_to_start_on_a_short_tmpfs_with_the_exact_numbers() {
    let data = testdata();
    let tmpfs = Tmpfs::mount("1M");
    let engine = engine(&tmpfs.dir, AutoscaleMode::Off);
    let (scratch, _space, context) = open(&engine, "short");
    let work_dir = scratch.dir().to_owned();
    let reference = PreparedReference {
        fasta: data.join("ref.fa"),
        fai: data.join("ref.fa.fai"),
        bwa_prefix: Some(data.join("ref.fa")),
        contigs: Vec::new(),
        built: Vec::new(),
        digests: Default::default(),
    };
    let error = align_job(&context, &work_dir, reference).expect_err("1 MiB is too small");
    assert_eq!(
        error.to_string(),
        format!(
            "not enough scratch space for align in {work_dir}: needs 7140161 bytes (6.8 MiB), \
             1048576 bytes (1.0 MiB) free"
        )
    );
    assert_eq!(error.exit_class().code(), 12);
    // Nothing ran.
    assert_eq!(files(&work_dir), Vec::<String>::new());
    scratch.finish(false).expect("cleanup");
}
