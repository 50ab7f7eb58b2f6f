//! What the process reads of the machine and itself (the hostname, `/proc`) and gives back to it (freed heap).
//! Neither side of the wire owns these: the agent names itself and reports `/runtime`, the scenario runner
//! names the host in its JUnit report.

pub mod files;
pub mod heap_trim;
pub(crate) mod runtime_stats;

/// This machine's name, or `localhost` when the kernel has none.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}
