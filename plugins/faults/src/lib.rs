//! `faults`: a lock-up or a death of the agent process, each of a kind an orchestrator can tell apart.
//! Every fault stays inside the agent process.

mod cmd_abort;
mod cmd_deadlock;
mod cmd_exit;
mod cmd_panic;
mod cmd_segfault;
mod death;
mod trap;

use std::sync::Arc;

use tarsier_plugin::{DynCommand, Held, Plugin};

pub use trap::Traps;

#[derive(Default)]
pub struct Faults {
    traps: Arc<Traps>,
}

impl Faults {
    pub fn plugin() -> Arc<dyn Plugin> {
        Arc::new(Faults::default())
    }
}

impl Plugin for Faults {
    fn name(&self) -> &'static str {
        "faults"
    }
    fn commands(&self) -> Vec<Arc<dyn DynCommand>> {
        vec![
            Arc::new(cmd_deadlock::Deadlock(self.traps.clone())),
            Arc::new(cmd_segfault::Segfault),
            Arc::new(cmd_panic::Panic),
            Arc::new(cmd_abort::Abort),
            Arc::new(cmd_exit::Exit),
        ]
    }
    fn held(&self) -> Held {
        Held { blocked_threads: self.traps.blocked(), ..Held::default() }
    }
    fn release_all(&self) -> Held {
        Held { blocked_threads: self.traps.release_all(), ..Held::default() }
    }
}
