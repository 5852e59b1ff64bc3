//! Whether the scratch filesystem is grown by the amazon-ebs-autoscale daemon.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::str::FromStr;

use camino::{Utf8Path, Utf8PathBuf};
use serde::Deserialize;

/// Where amazon-ebs-autoscale keeps its configuration on the host.
pub const EBS_AUTOSCALE_CONFIG: &str = "/etc/ebs-autoscale.json";

/// Whether to treat the scratch filesystem as growing (`BIOJOB_SCRATCH_AUTOSCALE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AutoscaleMode {
    /// Detect it from the EBS autoscale configuration file (the default).
    #[default]
    Detect,
    /// It grows (e.g. the configuration file is not visible inside the container).
    On,
    /// It does not grow, whatever the configuration file says.
    Off,
}

impl FromStr for AutoscaleMode {
    type Err = String;

    /// `auto` or an empty string → detect; `1`, `true`, `on`, `yes` → on; `0`, `false`, `off`,
    /// `no` → off (case-insensitive).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.trim().to_ascii_lowercase().as_str() {
            "" | "auto" | "detect" => Ok(AutoscaleMode::Detect),
            "1" | "true" | "on" | "yes" => Ok(AutoscaleMode::On),
            "0" | "false" | "off" | "no" => Ok(AutoscaleMode::Off),
            _ => Err(format!(
                "{text:?} is not an autoscale setting (auto, 1 or 0)"
            )),
        }
    }
}

impl fmt::Display for AutoscaleMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AutoscaleMode::Detect => "auto",
            AutoscaleMode::On => "1",
            AutoscaleMode::Off => "0",
        })
    }
}

/// The outcome of autoscale detection, with the reason for the logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Autoscale {
    /// Whether the filesystem grows.
    pub managed: bool,
    /// Why biojob thinks so.
    pub reason: String,
}

#[derive(Debug, Deserialize)]
struct Config {
    mountpoint: String,
}

/// Decides whether `dir` lives on a filesystem that EBS autoscale grows.
///
/// With [`AutoscaleMode::Detect`], `config` (normally [`EBS_AUTOSCALE_CONFIG`]) is read: the
/// filesystem is managed when `dir` is at or under its `mountpoint`, or on the same device as
/// the mountpoint. A missing or unreadable configuration means not managed (a malformed one is
/// logged as a warning).
pub fn detect_autoscale(mode: AutoscaleMode, dir: &Utf8Path, config: &Utf8Path) -> Autoscale {
    match mode {
        AutoscaleMode::On => Autoscale {
            managed: true,
            reason: "BIOJOB_SCRATCH_AUTOSCALE=1".to_owned(),
        },
        AutoscaleMode::Off => Autoscale {
            managed: false,
            reason: "BIOJOB_SCRATCH_AUTOSCALE=0".to_owned(),
        },
        AutoscaleMode::Detect => detect_from_config(dir, config),
    }
}

fn detect_from_config(dir: &Utf8Path, config: &Utf8Path) -> Autoscale {
    let not_managed = |reason: String| Autoscale {
        managed: false,
        reason,
    };
    let text = match std::fs::read_to_string(config) {
        Ok(text) => text,
        Err(error) => {
            return not_managed(format!(
                "no EBS autoscale configuration ({config}: {error})"
            ));
        }
    };
    let mountpoint = match serde_json::from_str::<Config>(&text) {
        Ok(parsed) => Utf8PathBuf::from(parsed.mountpoint),
        Err(error) => {
            tracing::warn!(config = %config, %error, "cannot read the EBS autoscale configuration");
            return not_managed(format!("{config} has no readable mountpoint: {error}"));
        }
    };
    let canonical = |path: &Utf8Path| path.canonicalize_utf8().unwrap_or_else(|_| path.to_owned());
    let (dir_real, mount_real) = (canonical(dir), canonical(&mountpoint));
    if dir_real.starts_with(&mount_real) {
        return Autoscale {
            managed: true,
            reason: format!(
                "{dir} is under {mountpoint}, the EBS autoscale mountpoint in {config}"
            ),
        };
    }
    let device = |path: &Utf8Path| std::fs::metadata(path).ok().map(|meta| meta.dev());
    match (device(dir), device(&mountpoint)) {
        (Some(a), Some(b)) if a == b => Autoscale {
            managed: true,
            reason: format!(
                "{dir} is on the same filesystem as {mountpoint}, the EBS autoscale mountpoint in {config}"
            ),
        },
        _ => not_managed(format!(
            "{dir} is not on {mountpoint}, the EBS autoscale mountpoint in {config}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp() -> (tempfile::TempDir, Utf8PathBuf) {
        let temp = tempfile::tempdir().expect("temp dir");
        let dir = Utf8PathBuf::from_path_buf(temp.path().to_path_buf()).expect("UTF-8");
        (temp, dir)
    }

    #[test]
    fn modes_parse() {
        assert_eq!("1".parse(), Ok(AutoscaleMode::On));
        assert_eq!("TRUE".parse(), Ok(AutoscaleMode::On));
        assert_eq!("0".parse(), Ok(AutoscaleMode::Off));
        assert_eq!("off".parse(), Ok(AutoscaleMode::Off));
        assert_eq!("auto".parse(), Ok(AutoscaleMode::Detect));
        assert_eq!("".parse(), Ok(AutoscaleMode::Detect));
        assert_eq!(
            "maybe".parse::<AutoscaleMode>(),
            Err("\"maybe\" is not an autoscale setting (auto, 1 or 0)".to_owned())
        );
    }

    #[test]
    fn forced_modes_ignore_the_config() {
        let missing = Utf8Path::new("/nonexistent/ebs-autoscale.json");
        assert_eq!(
            detect_autoscale(AutoscaleMode::On, Utf8Path::new("/x"), missing),
            Autoscale {
                managed: true,
                reason: "BIOJOB_SCRATCH_AUTOSCALE=1".into()
            }
        );
        assert!(!detect_autoscale(AutoscaleMode::Off, Utf8Path::new("/x"), missing).managed);
    }

    #[test]
    fn detects_a_dir_under_the_mountpoint() {
        let (_temp, dir) = temp();
        let mount = dir.join("scratch");
        let job = mount.join("job/1");
        std::fs::create_dir_all(&job).expect("mkdir");
        let config = dir.join("ebs-autoscale.json");
        std::fs::write(
            &config,
            format!(
                r#"{{"mountpoint": "{mount}", "filesystem": "btrfs", "detection_interval": 2}}"#
            ),
        )
        .expect("write config");
        let found = detect_autoscale(AutoscaleMode::Detect, &job, &config);
        assert_eq!(
            found,
            Autoscale {
                managed: true,
                reason: format!("{job} is under {mount}, the EBS autoscale mountpoint in {config}")
            }
        );
    }

    #[test]
    fn a_dir_on_another_filesystem_is_not_managed() {
        let (_temp, dir) = temp();
        let config = dir.join("ebs-autoscale.json");
        std::fs::write(&config, r#"{"mountpoint": "/proc"}"#).expect("write config");
        let found = detect_autoscale(AutoscaleMode::Detect, &dir, &config);
        assert_eq!(
            found,
            Autoscale {
                managed: false,
                reason: format!("{dir} is not on /proc, the EBS autoscale mountpoint in {config}")
            }
        );
    }

    #[test]
    fn missing_or_malformed_config_is_not_managed() {
        let (_temp, dir) = temp();
        let config = dir.join("ebs-autoscale.json");
        let missing = detect_autoscale(AutoscaleMode::Detect, &dir, &config);
        assert!(!missing.managed);
        assert!(
            missing
                .reason
                .starts_with(&format!("no EBS autoscale configuration ({config}: ")),
            "{}",
            missing.reason
        );
        std::fs::write(&config, "{}").expect("write config");
        let malformed = detect_autoscale(AutoscaleMode::Detect, &dir, &config);
        assert_eq!(
            malformed.reason,
            format!(
                "{config} has no readable mountpoint: missing field `mountpoint` at line 1 column 2"
            )
        );
    }
}
