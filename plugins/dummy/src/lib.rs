//! `dummy`: the reference Tarsier's example plugin, kept so bodies and health checks written against it
//! (`dummy/say_hello`) still answer. It holds nothing and changes nothing.

mod cmd_say_hello;

use std::sync::Arc;

use tarsier_plugin::{DynCommand, Plugin};

pub use cmd_say_hello::SayHello;

#[derive(Default)]
pub struct Dummy;

impl Dummy {
    pub fn plugin() -> Arc<dyn Plugin> {
        Arc::new(Dummy)
    }
}

impl Plugin for Dummy {
    fn name(&self) -> &'static str {
        "dummy"
    }
    fn commands(&self) -> Vec<Arc<dyn DynCommand>> {
        vec![Arc::new(SayHello)]
    }
}
