//! What `/runtime` reports of the process itself, read from /proc.

use serde::Serialize;

#[derive(Debug, Default, Serialize)]
pub struct ProcessStats {
    pub pid: u32,
    pub rss_bytes: u64,
    pub rss_peak_bytes: u64,
    /// Virtual memory mapped (VmSize): a `gobble_ram` with `touch: false` shows here, not in RSS.
    pub vm_bytes: u64,
    pub threads: u64,
    pub open_fds: u64,
    pub mmap_regions: u64,
}

impl ProcessStats {
    pub fn read() -> Self {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let kib = |key: &str| status_field(&status, key).map(|v| v * 1024).unwrap_or(0);
        Self {
            pid: std::process::id(),
            rss_bytes: kib("VmRSS:"),
            rss_peak_bytes: kib("VmHWM:"),
            vm_bytes: kib("VmSize:"),
            threads: status_field(&status, "Threads:").unwrap_or(0),
            open_fds: std::fs::read_dir("/proc/self/fd").map(|d| d.count() as u64).unwrap_or(0),
            mmap_regions: std::fs::read_to_string("/proc/self/maps").map(|m| m.lines().count() as u64).unwrap_or(0),
        }
    }
}

/// The first number after `key` in /proc/PID/status.
fn status_field(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|line| line.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}
