//! `heavy_load`: makes the machine work. RAM that is really resident, CPUs that are really busy.

mod cgroup;
mod cmd_free_ram;
mod cmd_gobble_ram;
mod cmd_ram_stats;
mod cmd_spin_cpu;
mod ram;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tarsier_plugin::{DynCommand, Held, Plugin};

pub use ram::RamRegions;

/// Everything the plugin's commands share.
#[derive(Default)]
pub struct HeavyLoad {
    ram: Arc<RamRegions>,
    busy_threads: Arc<AtomicU64>,
}

impl HeavyLoad {
    pub fn plugin() -> Arc<dyn Plugin> {
        Arc::new(HeavyLoad::default())
    }
}

impl Plugin for HeavyLoad {
    fn name(&self) -> &'static str {
        "heavy_load"
    }
    fn commands(&self) -> Vec<Arc<dyn DynCommand>> {
        vec![
            Arc::new(cmd_gobble_ram::GobbleRam(self.ram.clone())),
            Arc::new(cmd_ram_stats::RamStats(self.ram.clone())),
            Arc::new(cmd_free_ram::FreeRam(self.ram.clone())),
            Arc::new(cmd_spin_cpu::SpinCpu(self.busy_threads.clone())),
        ]
    }
    fn held(&self) -> Held {
        let (regions, bytes) = self.ram.totals();
        Held {
            ram_bytes: bytes,
            ram_regions: regions,
            busy_threads: self.busy_threads.load(Ordering::Relaxed),
            ..Held::default()
        }
    }
    fn release_all(&self) -> Held {
        let (regions, bytes) = self.ram.free(tarsier_plugin::Target::All).unwrap_or_default();
        Held { ram_bytes: bytes, ram_regions: regions, ..Held::default() }
    }
}
