//! The fault proxies' Prometheus series, by proxy: connections taken and refused, connections open, bytes
//! each way. A proxy's series go with it.

use prometheus::core::Collector;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts};

#[derive(Clone)]
pub struct ProxyMetrics {
    connections: IntCounterVec,
    refused: IntCounterVec,
    open: IntGaugeVec,
    bytes: IntCounterVec,
}

/// One proxy's series, counted where its connections are handled and read by `net/proxies`.
#[derive(Debug)]
pub struct Counters {
    pub connections: IntCounter,
    pub refused: IntCounter,
    pub open: IntGauge,
    pub bytes_upstream: IntCounter,
    pub bytes_downstream: IntCounter,
}

impl ProxyMetrics {
    pub fn new() -> Self {
        // The names and labels are constants: these cannot fail.
        let counter = |name: &str, help: &str, labels: &[&str]| {
            IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric")
        };
        Self {
            connections: counter("tarsier_proxy_connections_total", "Connections a fault proxy relayed.", &["proxy"]),
            refused: counter(
                "tarsier_proxy_refused_total",
                "Connections a fault proxy refused: disabled or down, at its max_connections, or its upstream unreachable.",
                &["proxy"],
            ),
            open: IntGaugeVec::new(Opts::new("tarsier_proxy_open_connections", "Connections open through a fault proxy."), &["proxy"])
                .expect("valid metric"),
            bytes: counter("tarsier_proxy_bytes_total", "Bytes a fault proxy let through, by stream.", &["proxy", "stream"]),
        }
    }

    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.connections.clone()),
            Box::new(self.refused.clone()),
            Box::new(self.open.clone()),
            Box::new(self.bytes.clone()),
        ]
    }

    pub fn counters(&self, proxy: &str) -> Counters {
        Counters {
            connections: self.connections.with_label_values(&[proxy]),
            refused: self.refused.with_label_values(&[proxy]),
            open: self.open.with_label_values(&[proxy]),
            bytes_upstream: self.bytes.with_label_values(&[proxy, "upstream"]),
            bytes_downstream: self.bytes.with_label_values(&[proxy, "downstream"]),
        }
    }

    /// A proxy that went takes its series with it.
    pub fn forget(&self, proxy: &str) {
        let _ = self.connections.remove_label_values(&[proxy]);
        let _ = self.refused.remove_label_values(&[proxy]);
        let _ = self.open.remove_label_values(&[proxy]);
        let _ = self.bytes.remove_label_values(&[proxy, "upstream"]);
        let _ = self.bytes.remove_label_values(&[proxy, "downstream"]);
    }
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        Self::new()
    }
}
