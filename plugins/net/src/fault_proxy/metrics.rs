//! The fault proxies' Prometheus series, by proxy: connections taken and refused, connections open, bytes
//! each way, and on a `protocol: http` proxy the requests read and, by fault, the requests each fault picked
//! and acted on. A proxy's series go with it, a fault's with the fault.

use prometheus::core::Collector;
use prometheus::{IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts};

#[derive(Clone)]
pub struct ProxyMetrics {
    connections: IntCounterVec,
    refused: IntCounterVec,
    open: IntGaugeVec,
    bytes: IntCounterVec,
    http_requests: IntCounterVec,
    http_matched: IntCounterVec,
    http_applied: IntCounterVec,
}

/// One proxy's series, counted where its connections are handled and read by `net/proxies`.
#[derive(Debug)]
pub struct Counters {
    pub connections: IntCounter,
    pub refused: IntCounter,
    pub open: IntGauge,
    pub bytes_upstream: IntCounter,
    pub bytes_downstream: IntCounter,
    pub http: HttpCounters,
}

/// An HTTP proxy's counts: requests, and by fault (`toxic`, `type`) the requests it picked and acted on.
#[derive(Debug)]
pub struct HttpCounters {
    proxy: String,
    pub requests: IntCounter,
    matched: IntCounterVec,
    applied: IntCounterVec,
}

impl HttpCounters {
    pub fn matched(&self, toxic: &str, kind: &str) -> IntCounter {
        self.matched.with_label_values(&[self.proxy.as_str(), toxic, kind])
    }

    pub fn applied(&self, toxic: &str, kind: &str) -> IntCounter {
        self.applied.with_label_values(&[self.proxy.as_str(), toxic, kind])
    }

    /// A fault's counts, for the commands' answers: (matched, applied).
    pub fn counts(&self, toxic: &str, kind: &str) -> (u64, u64) {
        (self.matched(toxic, kind).get(), self.applied(toxic, kind).get())
    }

    /// A fault that went takes its series with it.
    pub fn forget(&self, toxic: &str, kind: &str) {
        let _ = self.matched.remove_label_values(&[self.proxy.as_str(), toxic, kind]);
        let _ = self.applied.remove_label_values(&[self.proxy.as_str(), toxic, kind]);
    }
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
            http_requests: counter(
                "tarsier_proxy_http_requests_total",
                "Requests a protocol: http fault proxy read.",
                &["proxy"],
            ),
            http_matched: counter(
                "tarsier_proxy_http_fault_matched_total",
                "Requests an HTTP fault's match picked, before its toxicity was drawn.",
                &["proxy", "toxic", "type"],
            ),
            http_applied: counter(
                "tarsier_proxy_http_fault_applied_total",
                "Requests an HTTP fault was drawn for and acted on.",
                &["proxy", "toxic", "type"],
            ),
        }
    }

    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![
            Box::new(self.connections.clone()),
            Box::new(self.refused.clone()),
            Box::new(self.open.clone()),
            Box::new(self.bytes.clone()),
            Box::new(self.http_requests.clone()),
            Box::new(self.http_matched.clone()),
            Box::new(self.http_applied.clone()),
        ]
    }

    pub fn counters(&self, proxy: &str) -> Counters {
        Counters {
            connections: self.connections.with_label_values(&[proxy]),
            refused: self.refused.with_label_values(&[proxy]),
            open: self.open.with_label_values(&[proxy]),
            bytes_upstream: self.bytes.with_label_values(&[proxy, "upstream"]),
            bytes_downstream: self.bytes.with_label_values(&[proxy, "downstream"]),
            http: HttpCounters {
                proxy: proxy.to_owned(),
                requests: self.http_requests.with_label_values(&[proxy]),
                matched: self.http_matched.clone(),
                applied: self.http_applied.clone(),
            },
        }
    }

    /// A proxy that went takes its series with it.
    pub fn forget(&self, proxy: &str) {
        let _ = self.connections.remove_label_values(&[proxy]);
        let _ = self.refused.remove_label_values(&[proxy]);
        let _ = self.open.remove_label_values(&[proxy]);
        let _ = self.bytes.remove_label_values(&[proxy, "upstream"]);
        let _ = self.bytes.remove_label_values(&[proxy, "downstream"]);
        let _ = self.http_requests.remove_label_values(&[proxy]);
    }
}

impl Default for ProxyMetrics {
    fn default() -> Self {
        Self::new()
    }
}
