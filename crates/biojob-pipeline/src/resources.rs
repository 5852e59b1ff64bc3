//! The CPU and memory budget of a job.

use serde::Serialize;

/// How many threads and how much memory a job may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Resources {
    /// Threads (one per core the job may use).
    pub threads: usize,
    /// Memory in bytes.
    pub memory_bytes: u64,
}

impl Resources {
    /// Detects the budget of this process: threads from `std::thread::available_parallelism`
    /// (which honours CPU affinity and cgroup `cpu.max` quotas), memory from the cgroup limit
    /// (v2 `memory.max`, else v1 `memory.limit_in_bytes`) when one is set, else `MemTotal` of
    /// `/proc/meminfo`, else 4 GiB.
    pub fn detect() -> Resources {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let memory_bytes = cgroup_memory_limit()
            .into_iter()
            .chain(mem_total())
            .min()
            .unwrap_or(4 << 30);
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

fn cgroup_memory_limit() -> Option<u64> {
    for path in [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ] {
        if let Ok(text) = std::fs::read_to_string(path) {
            // "max" (v2) or a huge number (v1, no limit) mean unlimited.
            if let Ok(limit) = text.trim().parse::<u64>()
                && limit < (1 << 60)
            {
                return Some(limit);
            }
        }
    }
    None
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
