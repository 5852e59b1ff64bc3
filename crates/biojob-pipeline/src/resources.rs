//! The CPU and memory budget of a job: threads from the CPU limit (cgroup `cpu.max` or CFS
//! quota, CPU affinity), memory from the cgroup limit (`memory.max`, `memory.limit_in_bytes`)
//! or the machine's memory.

use std::path::{Path, PathBuf};

use serde::Serialize;

/// How many threads and how much memory a job may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Resources {
    /// Threads (one per core the job may use).
    pub threads: usize,
    /// Memory in bytes.
    pub memory_bytes: u64,
}

/// A CPU bandwidth limit: `quota_us` microseconds of CPU time per `period_us` (cgroup v2
/// `cpu.max`, v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CpuQuota {
    /// CPU time allowed per period, in microseconds.
    pub quota_us: u64,
    /// The period, in microseconds.
    pub period_us: u64,
}

impl CpuQuota {
    /// The threads the quota pays for: quota ÷ period rounded up (1.5 CPUs → 2), at least 1.
    pub fn threads(self) -> usize {
        let threads = self.quota_us.div_ceil(self.period_us.max(1)).max(1);
        usize::try_from(threads).unwrap_or(usize::MAX)
    }
}

/// Parses a cgroup v2 `cpu.max` file: `max 100000` (no limit) gives `None`, `200000 100000`
/// gives a quota of 2 CPUs.
pub fn parse_cpu_max(text: &str) -> Option<CpuQuota> {
    let mut fields = text.split_whitespace();
    let quota = fields.next()?;
    let period_us = fields.next().map_or(Some(100_000), |p| p.parse().ok())?;
    let quota_us = quota.parse().ok()?;
    (quota_us > 0).then_some(CpuQuota {
        quota_us,
        period_us,
    })
}

impl Resources {
    /// Detects the budget of this process and logs it with where each value came from.
    ///
    /// Threads: the CPUs this process may run on (`Cpus_allowed_list` of `/proc/self/status`,
    /// else `std::thread::available_parallelism`), capped by the cgroup CPU quota (v2 `cpu.max`
    /// or v1 CFS quota, of the process's cgroup and its ancestors) rounded up. Memory: the
    /// smallest cgroup limit (v2 `memory.max`, v1 `memory.limit_in_bytes`, of the process's
    /// cgroup and its ancestors) and `MemTotal` of `/proc/meminfo`; else 4 GiB.
    pub fn detect() -> Resources {
        let proc_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let cgroups = CgroupDirs::parse(&proc_cgroup, Path::new(CGROUP_MOUNT));
        let affinity = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|status| allowed_cpus(&status))
            .or_else(|| std::thread::available_parallelism().ok().map(usize::from));
        let quota = cgroups.cpu_quota();
        let threads = match (affinity, quota) {
            (Some(cpus), Some(quota)) => cpus.min(quota.threads()),
            (Some(cpus), None) => cpus,
            (None, Some(quota)) => quota.threads(),
            (None, None) => 1,
        }
        .max(1);
        let cgroup_memory = cgroups.memory_limit();
        let total = mem_total();
        let memory_bytes = cgroup_memory
            .into_iter()
            .chain(total)
            .min()
            .unwrap_or(4 << 30);
        let shown = |value: Option<String>| value.unwrap_or_else(|| "none".to_owned());
        tracing::info!(
            threads,
            cpus_allowed = %shown(affinity.map(|n| n.to_string())),
            cpu_quota = %shown(quota.map(|q| format!("{} {}", q.quota_us, q.period_us))),
            memory_bytes,
            cgroup_memory_limit_bytes = %shown(cgroup_memory.map(|n| n.to_string())),
            mem_total_bytes = %shown(total.map(|n| n.to_string())),
            "detected resources"
        );
        Resources {
            threads,
            memory_bytes,
        }
    }

    /// This budget with the given overrides applied (`None` keeps the detected value).
    pub fn with_overrides(self, threads: Option<usize>, memory_bytes: Option<u64>) -> Resources {
        Resources {
            threads: threads.unwrap_or(self.threads).max(1),
            memory_bytes: memory_bytes.unwrap_or(self.memory_bytes),
        }
    }
}

/// Where cgroup filesystems are mounted.
const CGROUP_MOUNT: &str = "/sys/fs/cgroup";
/// A v1 memory limit at or above this means no limit (the kernel reports 2^63 rounded down).
const NO_LIMIT: u64 = 1 << 60;

/// The cgroup directories of this process, from `/proc/self/cgroup`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct CgroupDirs {
    /// cgroup v2 (`0::/path`): `<mount>/<path>`.
    unified: Option<PathBuf>,
    /// cgroup v1 `memory` controller: `<mount>/memory/<path>`.
    memory_v1: Option<PathBuf>,
    /// cgroup v1 `cpu` controller: `<mount>/cpu/<path>`.
    cpu_v1: Option<PathBuf>,
    /// The mount point, where walking up stops.
    mount: PathBuf,
}

impl CgroupDirs {
    fn parse(proc_cgroup: &str, mount: &Path) -> CgroupDirs {
        let mut dirs = CgroupDirs {
            mount: mount.to_owned(),
            ..CgroupDirs::default()
        };
        let under = |base: PathBuf, path: &str| base.join(path.trim_start_matches('/'));
        for line in proc_cgroup.lines() {
            let mut fields = line.splitn(3, ':');
            let (Some(_), Some(controllers), Some(path)) =
                (fields.next(), fields.next(), fields.next())
            else {
                continue;
            };
            if controllers.is_empty() {
                dirs.unified = Some(under(mount.to_owned(), path));
                continue;
            }
            let names: Vec<&str> = controllers.split(',').collect();
            if names.contains(&"memory") {
                dirs.memory_v1 = Some(under(mount.join("memory"), path));
            }
            if names.contains(&"cpu") {
                dirs.cpu_v1 = Some(under(mount.join("cpu"), path));
            }
        }
        dirs
    }

    /// `dir` and its ancestors up to `top` (inclusive).
    fn up_to(dir: &Path, top: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut current = Some(dir);
        while let Some(path) = current {
            out.push(path.to_owned());
            if path == top || !path.starts_with(top) {
                break;
            }
            current = path.parent();
        }
        out
    }

    fn memory_limit(&self) -> Option<u64> {
        let read = |path: PathBuf| std::fs::read_to_string(path).ok();
        let mut limits = Vec::new();
        if let Some(dir) = &self.unified {
            for dir in Self::up_to(dir, &self.mount) {
                limits.extend(read(dir.join("memory.max")).and_then(|t| parse_limit(&t)));
            }
        }
        if let Some(dir) = &self.memory_v1 {
            for dir in Self::up_to(dir, &self.mount.join("memory")) {
                limits
                    .extend(read(dir.join("memory.limit_in_bytes")).and_then(|t| parse_limit(&t)));
            }
        }
        limits.into_iter().min()
    }

    fn cpu_quota(&self) -> Option<CpuQuota> {
        let read = |path: PathBuf| std::fs::read_to_string(path).ok();
        let mut quotas = Vec::new();
        if let Some(dir) = &self.unified {
            for dir in Self::up_to(dir, &self.mount) {
                quotas.extend(read(dir.join("cpu.max")).and_then(|t| parse_cpu_max(&t)));
            }
        }
        if let Some(dir) = &self.cpu_v1 {
            for dir in Self::up_to(dir, &self.mount.join("cpu")) {
                let quota = read(dir.join("cpu.cfs_quota_us"));
                let period = read(dir.join("cpu.cfs_period_us"));
                if let (Some(quota), Some(period)) = (quota, period) {
                    quotas.extend(parse_cpu_max(&format!(
                        "{} {}",
                        quota.trim(),
                        period.trim()
                    )));
                }
            }
        }
        quotas.into_iter().min_by_key(|quota| quota.threads())
    }
}

/// A memory limit file's value: `max` (v2) or a value of 2^60 or more (v1) mean no limit.
fn parse_limit(text: &str) -> Option<u64> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|limit| *limit < NO_LIMIT)
}

/// The number of CPUs in the `Cpus_allowed_list:` line of `/proc/self/status` (`0-3,8` → 5).
fn allowed_cpus(status: &str) -> Option<usize> {
    let line = status
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))?;
    let mut count = 0usize;
    for range in line.trim().split(',').filter(|r| !r.is_empty()) {
        let (first, last) = match range.split_once('-') {
            Some((first, last)) => (first.parse::<usize>().ok()?, last.parse::<usize>().ok()?),
            None => {
                let cpu = range.parse::<usize>().ok()?;
                (cpu, cpu)
            }
        };
        count += last.checked_sub(first)? + 1;
    }
    (count > 0).then_some(count)
}

fn mem_total() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_mem_total(&text)
}

fn parse_mem_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Parses a memory size: a number of bytes, or a number with a `K`, `M`, `G` or `T` suffix
/// (binary multiples; an optional trailing `B` or `iB` is accepted, case-insensitive).
///
/// # Errors
/// A message naming the text when it is not a size.
pub fn parse_memory_size(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    let lower = trimmed.to_ascii_lowercase();
    let lower = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (digits, shift) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 10),
        Some('m') => (&lower[..lower.len() - 1], 20),
        Some('g') => (&lower[..lower.len() - 1], 30),
        Some('t') => (&lower[..lower.len() - 1], 40),
        _ => (lower, 0),
    };
    let value: u64 = digits
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a memory size (examples: 16G, 512M, 1073741824)"))?;
    value
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sizes() {
        assert_eq!(parse_memory_size("16G"), Ok(16 << 30));
        assert_eq!(parse_memory_size("512m"), Ok(512 << 20));
        assert_eq!(parse_memory_size("2GiB"), Ok(2 << 30));
        assert_eq!(parse_memory_size("1000"), Ok(1000));
        assert_eq!(
            parse_memory_size("lots"),
            Err("\"lots\" is not a memory size (examples: 16G, 512M, 1073741824)".to_owned())
        );
    }

    #[test]
    fn reads_mem_total() {
        assert_eq!(
            parse_mem_total("MemTotal:       24576000 kB\nMemFree: 1 kB\n"),
            Some(24_576_000 * 1024)
        );
        assert_eq!(parse_mem_total("nothing"), None);
    }

    #[test]
    fn parses_cpu_max() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        let two = parse_cpu_max("200000 100000\n").expect("quota");
        assert_eq!(
            two,
            CpuQuota {
                quota_us: 200_000,
                period_us: 100_000
            }
        );
        assert_eq!(two.threads(), 2);
        assert_eq!(
            parse_cpu_max("150000 100000").map(CpuQuota::threads),
            Some(2)
        );
        assert_eq!(
            parse_cpu_max("25000 100000").map(CpuQuota::threads),
            Some(1)
        );
        // v1: cfs_quota_us of -1 means no limit.
        assert_eq!(parse_cpu_max("-1 100000"), None);
        assert_eq!(parse_cpu_max("50000").map(CpuQuota::threads), Some(1));
        assert_eq!(parse_cpu_max(""), None);
    }

    #[test]
    fn parses_memory_limits() {
        assert_eq!(parse_limit("max\n"), None);
        assert_eq!(parse_limit("17179869184\n"), Some(16 << 30));
        assert_eq!(parse_limit("9223372036854771712\n"), None);
    }

    #[test]
    fn counts_allowed_cpus() {
        assert_eq!(allowed_cpus("Name:\tx\nCpus_allowed_list:\t0-1\n"), Some(2));
        assert_eq!(allowed_cpus("Cpus_allowed_list:\t0-3,8,10-11\n"), Some(7));
        assert_eq!(allowed_cpus("Cpus_allowed_list:\t5\n"), Some(1));
        assert_eq!(allowed_cpus("nothing"), None);
    }

    #[test]
    fn cgroup_dirs_from_proc_self_cgroup() {
        let v1 = "9:name=systemd:/\n4:memory:/process_api/3f27\n2:cpu,cpuacct:/batch/job\n0::/\n";
        let dirs = CgroupDirs::parse(v1, Path::new("/sys/fs/cgroup"));
        assert_eq!(
            dirs.memory_v1.as_deref(),
            Some(Path::new("/sys/fs/cgroup/memory/process_api/3f27"))
        );
        assert_eq!(
            dirs.cpu_v1.as_deref(),
            Some(Path::new("/sys/fs/cgroup/cpu/batch/job"))
        );
        assert_eq!(dirs.unified.as_deref(), Some(Path::new("/sys/fs/cgroup/")));
        assert_eq!(
            CgroupDirs::up_to(
                Path::new("/sys/fs/cgroup/memory/a/b"),
                Path::new("/sys/fs/cgroup/memory")
            ),
            [
                PathBuf::from("/sys/fs/cgroup/memory/a/b"),
                PathBuf::from("/sys/fs/cgroup/memory/a"),
                PathBuf::from("/sys/fs/cgroup/memory"),
            ]
        );
    }

    #[test]
    fn limits_of_a_cgroup_tree() {
        // A v2 tree: the job's cgroup allows 2.5 CPUs and 8 GiB; its parent 2 CPUs and 16 GiB.
        let temp = tempfile::tempdir().expect("temp dir");
        let mount = temp.path();
        let job = mount.join("batch/job");
        std::fs::create_dir_all(&job).expect("mkdir");
        std::fs::write(job.join("cpu.max"), "250000 100000\n").expect("write");
        std::fs::write(job.join("memory.max"), "8589934592\n").expect("write");
        std::fs::write(mount.join("batch/cpu.max"), "200000 100000\n").expect("write");
        std::fs::write(mount.join("batch/memory.max"), "17179869184\n").expect("write");
        std::fs::write(mount.join("cpu.max"), "max 100000\n").expect("write");
        let dirs = CgroupDirs::parse("0::/batch/job\n", mount);
        assert_eq!(dirs.cpu_quota().map(CpuQuota::threads), Some(2));
        assert_eq!(dirs.memory_limit(), Some(8 << 30));
    }

    #[test]
    fn overrides() {
        let detected = Resources {
            threads: 8,
            memory_bytes: 1 << 30,
        };
        assert_eq!(
            detected.with_overrides(Some(0), None),
            Resources {
                threads: 1,
                memory_bytes: 1 << 30
            }
        );
    }
}
