use std::sync::Arc;
use std::time::SystemTime;

use memmap2::MmapMut;
use serde::Serialize;
use tarsier_plugin::{Budget, CancelFlag, DataError, Place, Reservation, Slots, Target};

/// One anonymous mapping whose pages were written, so it counts in RSS. Its share of `limits.max_ram` is
/// given back when it is unmapped.
pub struct Region {
    pub map: MmapMut,
    pub since: SystemTime,
    pub reserved: Reservation,
}

/// What `ram_stats` shows of one region.
#[derive(Debug, Serialize)]
pub struct RegionInfo {
    #[serde(flatten)]
    pub place: Place,
    pub size: u64,
    pub since: String,
}

/// The RAM regions `gobble_ram` holds, and the bytes still being made resident (which the cgroup does not
/// count yet, so two concurrent requests cannot both be admitted into the same room).
pub struct RamRegions {
    held: Slots<Region>,
    pub populating: Arc<Budget>,
    /// Taken while the cgroup's room is read and the new request's bytes are added to `populating`.
    pub admission: std::sync::Mutex<()>,
}

impl Default for RamRegions {
    fn default() -> Self {
        Self {
            held: Slots::default(),
            populating: Arc::new(Budget::new("RAM", "the cgroup memory limit", None, |n| n.to_string())),
            admission: std::sync::Mutex::new(()),
        }
    }
}

impl RamRegions {
    /// Holds a region unless its command was cancelled meanwhile (then it comes back, to be unmapped).
    pub fn hold(&self, cancel: &CancelFlag, region: Region) -> Result<u64, Region> {
        self.held.insert_unless(cancel, region)
    }

    /// (regions, bytes) held.
    pub fn totals(&self) -> (u64, u64) {
        let sizes = self.held.map(|_, r| r.map.len() as u64);
        (sizes.len() as u64, sizes.iter().sum())
    }

    pub fn list(&self) -> Vec<RegionInfo> {
        self.held.map(|place, r| RegionInfo {
            place,
            size: r.map.len() as u64,
            since: humantime::format_rfc3339_millis(r.since).to_string(),
        })
    }

    /// Unmaps what `target` names: (regions, bytes) released, or `None` for an index not held.
    pub fn free(&self, target: Target) -> Option<(u64, u64)> {
        let regions = self.held.take(target)?;
        Some((regions.len() as u64, regions.iter().map(|r| r.map.len() as u64).sum()))
    }

    pub fn not_held(&self, target: Target) -> DataError {
        self.held.not_held(target, "RAM region")
    }
}
