use std::sync::Mutex;
use std::time::SystemTime;

use memmap2::MmapMut;
use serde::Serialize;

/// One anonymous mapping whose pages were written, so it counts in RSS.
struct Region {
    index: u64,
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

/// The RAM regions `gobble_ram` holds. Indexes are stable: freeing one does not renumber the others.
#[derive(Default)]
pub struct RamRegions {
    inner: Mutex<(u64, Vec<Region>)>,
}

impl RamRegions {
    fn lock(&self) -> std::sync::MutexGuard<'_, (u64, Vec<Region>)> {
        // A panic while holding this lock cannot leave the list half-changed, so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    pub fn hold(&self, map: MmapMut) -> u64 {
        let mut inner = self.lock();
        let index = inner.0;
        inner.0 += 1;
        inner.1.push(Region { index, map, since: SystemTime::now() });
        index
    }

    /// (regions, bytes) held.
    pub fn totals(&self) -> (u64, u64) {
        let inner = self.lock();
        (inner.1.len() as u64, inner.1.iter().map(|r| r.map.len() as u64).sum())
    }

    pub fn list(&self) -> Vec<RegionInfo> {
        self.lock()
            .1
            .iter()
            .map(|r| RegionInfo {
                index: r.index,
                size: r.map.len() as u64,
                since: humantime::format_rfc3339_millis(r.since).to_string(),
            })
            .collect()
    }

    /// Unmaps one region; `None` when no region has that index.
    pub fn free(&self, index: u64) -> Option<u64> {
        let mut inner = self.lock();
        let pos = inner.1.iter().position(|r| r.index == index)?;
        let region = inner.1.remove(pos);
        Some(region.map.len() as u64)
    }

    /// Unmaps everything; returns (regions, bytes) released.
    pub fn free_all(&self) -> (u64, u64) {
        let regions = std::mem::take(&mut self.lock().1);
        (regions.len() as u64, regions.iter().map(|r| r.map.len() as u64).sum())
    }

    pub fn indexes(&self) -> Vec<u64> {
        self.lock().1.iter().map(|r| r.index).collect()
    }
}
