//! The image's smoke build (`containers/smoke-build.sh`): debootstrap fetches from the
//! machine's own Debian mirror, read from its apt sources, so that no script names a package
//! host.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../containers/smoke-build.sh")
}

fn print_mirror(apt_dir: &Path) -> Output {
    Command::new("bash")
        .arg(script())
        .arg("--print-mirror")
        .arg(apt_dir)
        .output()
        .unwrap()
}

fn write(path: &Path, text: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

#[test]
fn the_smoke_build_takes_its_debian_mirror_from_the_apt_sources() {
    let dir = tempfile::tempdir().unwrap();

    // One-line format (sources.list(5)): comments, deb-src and other suites are skipped, and
    // options in brackets come before the URI.
    let one_line = dir.path().join("one-line");
    write(
        &one_line.join("sources.list"),
        "# deb http://commented.example/debian bookworm main\n\
         deb-src http://source.example/debian bookworm main\n\
         deb http://updates.example/debian bookworm-updates main\n\
         deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://mirror.example/debian bookworm main\n\
         deb http://later.example/debian bookworm main\n",
    );
    let output = print_mirror(&one_line);
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "http://mirror.example/debian\n"
    );
    assert_eq!(output.status.code(), Some(0));

    // deb822 format: a disabled stanza is skipped; URIs continue on indented lines; a .list
    // file without bookworm does not hide the .sources file that has it.
    let deb822 = dir.path().join("deb822");
    write(
        &deb822.join("sources.list.d/debian.sources"),
        "# a comment\n\
         Types: deb\n\
         URIs: http://disabled.example/debian\n\
         Suites: bookworm\n\
         Enabled: no\n\
         \n\
         Types: deb-src deb\n\
         URIs:\n \
         http://first.example/debian\n \
         http://second.example/debian\n\
         Suites: bookworm bookworm-updates\n\
         Components: main\n",
    );
    write(
        &deb822.join("sources.list.d/other.list"),
        "deb http://trixie.example/debian trixie main\n",
    );
    let output = print_mirror(&deb822);
    assert_eq!(String::from_utf8_lossy(&output.stderr), "");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "http://first.example/debian\n"
    );
    assert_eq!(output.status.code(), Some(0));

    // No source for bookworm: said, and the build does not fall back to a host of its own.
    let empty = dir.path().join("empty");
    fs::create_dir_all(&empty).unwrap();
    let output = print_mirror(&empty);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        format!(
            "no enabled deb source for bookworm in {}\n",
            empty.display()
        )
    );
    assert_eq!(output.status.code(), Some(1));

    let text = fs::read_to_string(script()).unwrap();
    for host in ["debian.org", "ubuntu.com"] {
        assert!(!text.contains(host), "smoke-build.sh names {host}");
    }
}
