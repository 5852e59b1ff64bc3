//! Scratch directories and space against real filesystems: small tmpfs mounts (these tests
//! need root, as CI runs them) grown for real with `mount -o remount,size=…`.

use std::time::Duration;

use biojob_core::{Classify, ExitClass};
use biojob_scratch::{
    Attempt, JobId, JobScratch, ScratchError, SpaceNeed, SpaceVerdict, SpaceWatch, WatchSettings,
    fs_space,
};
use biojob_testkit::Tmpfs;
use camino::{Utf8Path, Utf8PathBuf};

fn job(id: &str) -> JobId {
    JobId::new(id).expect("job id")
}

fn temp_root() -> (tempfile::TempDir, Utf8PathBuf) {
    let temp = tempfile::tempdir().expect("temp dir");
    let dir = Utf8PathBuf::from_path_buf(temp.path().to_path_buf()).expect("UTF-8");
    (temp, dir)
}

fn names(dir: &Utf8Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn preflight_refuses_a_short_tmpfs_with_the_exact_numbers() {
    let tmpfs = Tmpfs::mount("1M");
    let scratch = JobScratch::create(&tmpfs.dir, &job("job-1"), Attempt::FIRST).expect("create");
    let watch = SpaceWatch::new(scratch.dir(), WatchSettings::new(false, 2 << 30)).expect("watch");
    let need = SpaceNeed::new("align")
        .with("staged inputs", 0)
        .with("sorted BAM", 2_829_850)
        .with("sort temporary files", 4_244_775)
        .with("BAM index", 65_536);
    let error = watch.preflight(&need).expect_err("1 MiB is too small");
    assert_eq!(
        error.to_string(),
        format!(
            "not enough scratch space for align in {}/job-1/1: needs 7140161 bytes (6.8 MiB), \
             1048576 bytes (1.0 MiB) free",
            tmpfs.dir
        )
    );
    assert_eq!(error.exit_class(), ExitClass::Scratch);
    assert_eq!(error.exit_class().code(), 12);
    // Enough: exactly what is free.
    assert!(
        watch
            .preflight(&SpaceNeed::new("call chr20").with("VCF", 1_048_576))
            .is_ok()
    );
}

#[test]
fn a_growing_tmpfs_pauses_then_resumes_and_records_the_growth() {
    let tmpfs = Tmpfs::mount("1M");
    let scratch = JobScratch::create(&tmpfs.dir, &job("job-2"), Attempt::FIRST).expect("create");
    let settings = WatchSettings {
        interval: Duration::ZERO,
        wait_timeout: Duration::from_secs(60),
        ..WatchSettings::new(true, 2 << 20)
    };
    let watch = SpaceWatch::new(scratch.dir(), settings).expect("watch");
    // Short, but the filesystem grows: proceed.
    assert!(
        watch
            .preflight(&SpaceNeed::new("align").with("sorted BAM", 8 << 20))
            .is_ok()
    );
    assert!(matches!(watch.check(), SpaceVerdict::Pause));
    assert!(watch.is_paused());
    // Grown, but not to the resume mark (twice the low-water mark, 4 MiB).
    tmpfs.resize("3M");
    assert!(matches!(watch.check(), SpaceVerdict::Pause));
    tmpfs.resize("8M");
    assert!(matches!(watch.check(), SpaceVerdict::Run));
    assert!(!watch.is_paused());
    let usage = watch.usage();
    assert!(usage.autoscale);
    assert_eq!(usage.free_bytes_at_start, 1 << 20);
    assert_eq!(usage.total_bytes_at_start, 1 << 20);
    assert_eq!(usage.total_bytes_last, 8 << 20);
    assert_eq!(usage.growth_waits.len(), 1);
    let wait = &usage.growth_waits[0];
    assert_eq!(wait.free_bytes_at_pause, 1 << 20);
    assert_eq!(wait.total_bytes_at_pause, 1 << 20);
    assert_eq!(wait.free_bytes_after, 8 << 20);
    assert_eq!(wait.total_bytes_after, 8 << 20);
    assert!(wait.resumed);
}

#[test]
fn a_tmpfs_that_never_grows_fails_with_the_scratch_class() {
    let tmpfs = Tmpfs::mount("1M");
    let scratch = JobScratch::create(&tmpfs.dir, &job("job-3"), Attempt::FIRST).expect("create");
    let settings = WatchSettings {
        interval: Duration::ZERO,
        wait_timeout: Duration::from_millis(200),
        ..WatchSettings::new(true, 2 << 20)
    };
    let watch = SpaceWatch::new(scratch.dir(), settings).expect("watch");
    assert!(matches!(watch.check(), SpaceVerdict::Pause));
    std::thread::sleep(Duration::from_millis(250));
    let SpaceVerdict::Fail(error) = watch.check() else {
        panic!("expected a failure");
    };
    assert_eq!(
        error.to_string(),
        format!(
            "scratch {}/job-3/1 did not grow within 200ms: 1048576 bytes (1.0 MiB) free, \
             4194304 bytes (4.0 MiB) needed to resume",
            tmpfs.dir
        )
    );
    assert_eq!(error.exit_class().code(), 12);
    let usage = watch.usage();
    assert_eq!(usage.growth_waits.len(), 1);
    assert!(!usage.growth_waits[0].resumed);
}

#[test]
fn peak_use_is_recorded() {
    let tmpfs = Tmpfs::mount("4M");
    let scratch = JobScratch::create(&tmpfs.dir, &job("job-4"), Attempt::FIRST).expect("create");
    let watch = SpaceWatch::new(scratch.dir(), WatchSettings::new(false, 0)).expect("watch");
    let file = scratch.dir().join("x.bam");
    std::fs::write(&file, vec![1u8; 1 << 20]).expect("write");
    watch.sample();
    std::fs::remove_file(&file).expect("remove");
    let usage = watch.usage();
    // tmpfs allocates whole pages: 1 MiB of data is exactly 1 MiB.
    assert_eq!(usage.peak_bytes, 1 << 20);
    assert_eq!(usage.min_free_bytes, 3 << 20);
    assert_eq!(fs_space(&tmpfs.dir).expect("space").free_bytes, 4 << 20);
}

#[test]
fn a_retry_removes_what_a_killed_attempt_left_and_cleans_up_after_itself() {
    let (_temp, root) = temp_root();
    // A killed attempt 1 cannot clean up: its directory and files stay behind.
    let stale = root.join("job-5/1");
    std::fs::create_dir_all(&stale).expect("mkdir");
    std::fs::write(stale.join("NA12878.align.sort-tmp.0000.bam"), b"stale").expect("write");
    std::fs::write(stale.join("NA12878.align.bam.partial"), b"stale").expect("write");

    let scratch =
        JobScratch::create(&root, &job("job-5"), Attempt::parse("2").expect("2")).expect("create");
    assert_eq!(scratch.dir(), root.join("job-5/2"));
    assert_eq!(names(&root.join("job-5")), [".lock", "2"]);
    assert_eq!(names(scratch.dir()), Vec::<String>::new());
    std::fs::write(scratch.dir().join("out.bam"), b"data").expect("write");
    assert_eq!(scratch.finish(false).expect("finish"), None);
    assert_eq!(names(&root), Vec::<String>::new());
}

#[test]
fn the_same_attempt_starts_clean_and_drop_removes_it() {
    let (_temp, root) = temp_root();
    let first = JobScratch::create(&root, &job("job-6"), Attempt::FIRST).expect("create");
    std::fs::write(first.dir().join("left.over"), b"x").expect("write");
    // Kept, like a killed attempt would leave it.
    let kept = first.finish(true).expect("finish");
    assert_eq!(kept, Some(root.join("job-6/1")));
    assert_eq!(names(&root.join("job-6/1")), ["left.over"]);

    let again = JobScratch::create(&root, &job("job-6"), Attempt::FIRST).expect("create");
    assert_eq!(names(again.dir()), Vec::<String>::new());
    drop(again);
    assert_eq!(names(&root), Vec::<String>::new());
}

#[test]
fn a_job_in_use_by_another_holder_is_refused() {
    let (_temp, root) = temp_root();
    let first = JobScratch::create(&root, &job("job-7"), Attempt::FIRST).expect("create");
    let error = JobScratch::create(&root, &job("job-7"), Attempt::parse("2").expect("2"))
        .expect_err("locked");
    assert_eq!(
        error.to_string(),
        format!("scratch {root}/job-7 is in use by another process")
    );
    assert_eq!(error.exit_class(), ExitClass::Usage);
    // The holder's directory was left alone.
    assert!(first.dir().is_dir());
    let ScratchError::InUse { .. } = error else {
        panic!("{error:?}");
    };
    first.finish(false).expect("finish");
    let second = JobScratch::create(&root, &job("job-7"), Attempt::parse("2").expect("2"))
        .expect("free again");
    second.finish(false).expect("finish");
}

#[test]
fn a_write_on_a_full_scratch_disk_is_the_scratch_class() {
    let tmpfs = Tmpfs::mount("4k");
    std::fs::write(tmpfs.dir.join("filler"), vec![0u8; 4096]).expect("fill");
    let scratch = JobScratch::create(&tmpfs.dir, &job("job-8"), Attempt::FIRST);
    // Directories take no blocks on tmpfs; a file's data does.
    let scratch = scratch.expect("create");
    let error = std::fs::write(scratch.dir().join("x"), b"x").expect_err("full");
    let error = ScratchError::io("writing", scratch.dir().join("x"))(error);
    assert_eq!(error.exit_class(), ExitClass::Scratch);
    assert_eq!(
        error.remedy().as_deref(),
        Some("give the job a larger scratch volume")
    );
}
