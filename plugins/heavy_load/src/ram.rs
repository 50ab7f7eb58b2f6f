use std::time::SystemTime;

use memmap2::MmapMut;
use serde::Serialize;
use tarsier_plugin::{Slots, Target};

/// One anonymous mapping whose pages were written, so it counts in RSS.
struct Region {
    map: MmapMut,
    since: SystemTime,
}

/// What `ram_stats` shows of one region.
#[derive(Debug, Serialize)]
pub struct RegionInfo {
    pub index: u64,
    pub size: u64,
    pub since: String,
}

/// The RAM regions `gobble_ram` holds.
#[derive(Default)]
pub struct RamRegions(Slots<Region>);

impl RamRegions {
    pub fn hold(&self, map: MmapMut) -> u64 {
        self.0.insert(Region { map, since: SystemTime::now() })
    }

    /// (regions, bytes) held.
    pub fn totals(&self) -> (u64, u64) {
        let sizes = self.0.map(|_, r| r.map.len() as u64);
        (sizes.len() as u64, sizes.iter().sum())
    }

    pub fn list(&self) -> Vec<RegionInfo> {
        self.0.map(|index, r| RegionInfo {
            index,
            size: r.map.len() as u64,
            since: humantime::format_rfc3339_millis(r.since).to_string(),
        })
    }

    /// Unmaps what `target` names: (regions, bytes) released, or `None` for an index not held.
    pub fn free(&self, target: Target) -> Option<(u64, u64)> {
        let regions = self.0.take(target)?;
        Some((regions.len() as u64, regions.iter().map(|r| r.map.len() as u64).sum()))
    }

    pub fn indexes(&self) -> Vec<u64> {
        self.0.indexes()
    }
}
