//! `sleep`: answers only after the given time (the reference's `sleeping_beauty`).

mod cmd_sleep;

use std::sync::Arc;

use tarsier_plugin::{DynCommand, Plugin};

pub use cmd_sleep::Sleep;

#[derive(Default)]
pub struct SleepPlugin;

impl SleepPlugin {
    pub fn plugin() -> Arc<dyn Plugin> {
        Arc::new(SleepPlugin)
    }
}

impl Plugin for SleepPlugin {
    fn name(&self) -> &'static str {
        "sleep"
    }
    fn aliases(&self) -> &'static [&'static str] {
        &["sleeping_beauty"]
    }
    fn commands(&self) -> Vec<Arc<dyn DynCommand>> {
        vec![Arc::new(Sleep)]
    }
}
