//! `net`: opens network connections and keeps them open, sends HTTP load, and puts faults on the wire of the
//! namespace it shares with the service next to it (`wire_faults`).

mod alarm;
mod cmd_bandwidth;
mod cmd_close;
mod cmd_delay;
mod cmd_dial;
mod cmd_dns;
mod cmd_faults;
mod cmd_http_load;
mod cmd_loss;
mod cmd_partition;
mod cmd_proxy_create;
mod cmd_proxy_delete;
mod cmd_proxy_list;
mod cmd_proxy_reset;
mod cmd_proxy_update;
mod cmd_stats;
mod cmd_toxic_add;
mod cmd_toxic_remove;
mod cmd_toxic_update;
mod conns;
pub mod fault_proxy;
mod http1;
mod http_load;
mod io_threads;
mod targets;
pub mod wire_faults;

use std::sync::Arc;

use tarsier_plugin::{DynCommand, Held, Plugin};

pub use conns::Connections;
pub use http_load::stats::{Errors, HttpLoadResult, LatencyMs, StageResult};

#[derive(Default)]
pub struct Net {
    conns: Arc<Connections>,
    http_metrics: http_load::metrics::HttpLoadMetrics,
    wire: Arc<wire_faults::WireFaults>,
    proxies: Arc<fault_proxy::Proxies>,
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
            Arc::new(cmd_delay::Delay(self.wire.clone())),
            Arc::new(cmd_loss::Loss(self.wire.clone())),
            Arc::new(cmd_bandwidth::Bandwidth(self.wire.clone())),
            Arc::new(cmd_partition::Partition(self.wire.clone())),
            Arc::new(cmd_dns::Dns(self.wire.clone())),
            Arc::new(cmd_faults::Faults(self.wire.clone())),
            Arc::new(cmd_proxy_create::ProxyCreate(self.proxies.clone())),
            Arc::new(cmd_proxy_list::ProxyList(self.proxies.clone())),
            Arc::new(cmd_proxy_update::ProxyUpdate(self.proxies.clone())),
            Arc::new(cmd_proxy_delete::ProxyDelete(self.proxies.clone())),
            Arc::new(cmd_proxy_reset::ProxyReset(self.proxies.clone())),
            Arc::new(cmd_toxic_add::ToxicAdd(self.proxies.clone())),
            Arc::new(cmd_toxic_update::ToxicUpdate(self.proxies.clone())),
            Arc::new(cmd_toxic_remove::ToxicRemove(self.proxies.clone())),
        ]
    }
    fn started(&self, control_plane: &tarsier_plugin::ControlPlane) {
        let port = control_plane.public_port;
        // An agent without NET_ADMIN can neither have left faults nor remove them.
        if !wire_faults::tools::has_net_admin() {
            return;
        }
        // Off the start path: the tools take a few ms each.
        let _ = std::thread::Builder::new()
            .name("net-leftovers".into())
            .spawn(move || wire_faults::WireFaults::clean_leftovers(port));
    }
    fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        let mut collectors = self.http_metrics.collectors();
        collectors.extend(self.proxies.metrics.collectors());
        collectors
    }
    fn held(&self) -> Held {
        Held {
            connections: self.conns.count() + self.proxies.connections(),
            net_faults: self.wire.count(),
            proxies: self.proxies.count(),
            ..Held::default()
        }
    }
    fn release_all(&self) -> Held {
        Held {
            connections: self.conns.close(tarsier_plugin::Target::All).unwrap_or(0),
            net_faults: self.wire.release_all(),
            proxies: self.proxies.release_all(),
            ..Held::default()
        }
    }
}
