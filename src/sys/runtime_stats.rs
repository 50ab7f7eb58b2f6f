//! What `/runtime` reports of the process itself, read from /proc.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
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
    /// What /proc says of this process (through procfs); a figure it cannot read is 0.
    pub fn read() -> Self {
        let Ok(me) = procfs::process::Process::myself() else { return Self::default() };
        let status = me.status().ok();
        let kib = |field: fn(&procfs::process::Status) -> Option<u64>| {
            status.as_ref().and_then(field).map(|v| v * 1024).unwrap_or(0)
        };
        Self {
            pid: std::process::id(),
            rss_bytes: kib(|s| s.vmrss),
            rss_peak_bytes: kib(|s| s.vmhwm),
            vm_bytes: kib(|s| s.vmsize),
            threads: status.as_ref().map(|s| s.threads).unwrap_or(0),
            open_fds: me.fd_count().map(|n| n as u64).unwrap_or(0),
            mmap_regions: me.maps().map(|maps| maps.len() as u64).unwrap_or(0),
        }
    }
}
