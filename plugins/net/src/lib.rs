//! `net`: opens network connections and keeps them open.

mod cmd_close;
mod cmd_dial;
mod cmd_http_load;
mod cmd_stats;
mod conns;
mod http_load;
mod targets;

use std::sync::Arc;

use tarsier_plugin::{DynCommand, Held, Plugin};

pub use conns::Connections;
pub use http_load::stats::{Errors, HttpLoadResult, LatencyMs};

#[derive(Default)]
pub struct Net {
    conns: Arc<Connections>,
    http_metrics: http_load::metrics::HttpLoadMetrics,
}

impl Net {
    pub fn plugin() -> Arc<dyn Plugin> {
        Arc::new(Net::default())
    }
}

impl Plugin for Net {
    fn name(&self) -> &'static str {
        "net"
    }
    fn commands(&self) -> Vec<Arc<dyn DynCommand>> {
        vec![
            Arc::new(cmd_dial::Dial(self.conns.clone())),
            Arc::new(cmd_stats::Stats(self.conns.clone())),
            Arc::new(cmd_close::Close(self.conns.clone())),
            Arc::new(cmd_http_load::HttpLoad { metrics: self.http_metrics.clone() }),
        ]
    }
    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        self.http_metrics.collectors()
    }
    fn held(&self) -> Held {
        Held { connections: self.conns.count(), ..Held::default() }
    }
    fn release_all(&self) -> Held {
        Held { connections: self.conns.close(tarsier_plugin::Target::All).unwrap_or(0), ..Held::default() }
    }
}
