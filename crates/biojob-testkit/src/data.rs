//! The real test data, the fake tools, and scratch filesystems of a chosen size.

use std::process::Command;

use camino::{Utf8Path, Utf8PathBuf};

/// The workspace root (the repository's top folder).
pub fn workspace_root() -> &'static Utf8Path {
    Utf8Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The real test data: `BIOJOB_TESTDATA`, else `../shared/testdata` beside the repository.
///
/// # Panics
/// When the directory holds no `NA12878_R1.fastq.gz`, with a message naming the setting.
pub fn testdata() -> Utf8PathBuf {
    let dir = std::env::var("BIOJOB_TESTDATA")
        .map(Utf8PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("../shared/testdata"));
    assert!(
        dir.join("NA12878_R1.fastq.gz").is_file(),
        "test data not found in {dir}; set BIOJOB_TESTDATA"
    );
    dir
}

/// A fake tool from `testdata/bin/` (see its README).
pub fn fake_tool(name: &str) -> Utf8PathBuf {
    workspace_root().join("testdata/bin").join(name)
}

/// A tmpfs mounted on a fresh temporary directory, unmounted when dropped: a scratch
/// filesystem of an exact size, which `resize` grows as EBS autoscale would.
pub struct Tmpfs {
    /// The mount point.
    pub dir: Utf8PathBuf,
    _temp: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=`, e.g. `1M`).
    ///
    /// # Panics
    /// When not root (CI runs the tests as root), or when `mount` fails.
    pub fn mount(size: &str) -> Tmpfs {
        assert!(
            nix::unistd::geteuid().is_root(),
            "this test mounts a tmpfs and must run as root (CI runs .ci/run as root)"
        );
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = Utf8PathBuf::from_path_buf(temp.path().join("tmpfs")).expect("UTF-8");
        std::fs::create_dir(&dir).expect("mkdir");
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size}"),
                "tmpfs",
                dir.as_str(),
            ])
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -t tmpfs -o size={size} failed");
        Tmpfs { dir, _temp: temp }
    }

    /// Grows (or shrinks) the mounted tmpfs to `size`.
    ///
    /// # Panics
    /// When `mount -o remount` fails.
    pub fn resize(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}"), self.dir.as_str()])
            .status()
            .expect("run mount");
        assert!(status.success(), "remount to {size} failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.as_str())
            .status();
    }
}
