use serde::{Deserialize, Serialize};

/// What a plugin holds right now. The agent sums every plugin's into its gauges and `/runtime`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Held {
    /// Bytes of anonymous memory mapped and touched.
    pub ram_bytes: u64,
    /// Number of mapped RAM regions.
    pub ram_regions: u64,
    /// Open file descriptors on files the agent created or opened.
    pub files: u64,
    /// Bytes written to files the agent still holds.
    pub disk_bytes: u64,
    /// Open network connections.
    pub connections: u64,
    /// OS threads blocked on a lock.
    pub blocked_threads: u64,
    /// OS threads spinning a CPU.
    pub busy_threads: u64,
    /// Network faults in force (delay, loss, bandwidth, partition, DNS).
    pub net_faults: u64,
    /// Fault proxies listening (`net/proxy_create`).
    pub proxies: u64,
}

impl std::ops::Add for Held {
    type Output = Held;
    fn add(self, o: Held) -> Held {
        Held {
            ram_bytes: self.ram_bytes + o.ram_bytes,
            ram_regions: self.ram_regions + o.ram_regions,
            files: self.files + o.files,
            disk_bytes: self.disk_bytes + o.disk_bytes,
            connections: self.connections + o.connections,
            blocked_threads: self.blocked_threads + o.blocked_threads,
            busy_threads: self.busy_threads + o.busy_threads,
            net_faults: self.net_faults + o.net_faults,
            proxies: self.proxies + o.proxies,
        }
    }
}

impl Held {
    /// What is in `self` and not in `later`, field by field: what was let go between two readings.
    pub fn released_since(self, later: Held) -> Held {
        Held {
            ram_bytes: self.ram_bytes.saturating_sub(later.ram_bytes),
            ram_regions: self.ram_regions.saturating_sub(later.ram_regions),
            files: self.files.saturating_sub(later.files),
            disk_bytes: self.disk_bytes.saturating_sub(later.disk_bytes),
            connections: self.connections.saturating_sub(later.connections),
            blocked_threads: self.blocked_threads.saturating_sub(later.blocked_threads),
            busy_threads: self.busy_threads.saturating_sub(later.busy_threads),
            net_faults: self.net_faults.saturating_sub(later.net_faults),
            proxies: self.proxies.saturating_sub(later.proxies),
        }
    }
}

impl std::iter::Sum for Held {
    fn sum<I: Iterator<Item = Held>>(iter: I) -> Held {
        iter.fold(Held::default(), |a, b| a + b)
    }
}
