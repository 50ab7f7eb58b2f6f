//! Live metrics of `net/http_load`, registered in the agent's registry through `Plugin::collectors`.

use prometheus::core::Collector;
use prometheus::{exponential_buckets, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts};

#[derive(Clone)]
pub struct HttpLoadMetrics {
    /// By `code`: the HTTP status, or `connect_error`, `timeout`, `error`.
    pub requests: IntCounterVec,
    pub latency: Histogram,
    pub in_flight: IntGauge,
}

impl HttpLoadMetrics {
    pub fn new() -> Self {
        // The names and buckets are constants: these cannot fail.
        let requests = IntCounterVec::new(
            Opts::new("tarsier_http_load_requests_total", "Requests net/http_load sent, by status code or error."),
            &["code"],
        )
        .expect("valid metric");
        let latency = Histogram::with_opts(
            HistogramOpts::new("tarsier_http_load_latency_seconds", "Latency of net/http_load requests.")
                .buckets(exponential_buckets(0.0001, 2.0, 20).expect("valid buckets")),
        )
        .expect("valid metric");
        let in_flight = IntGauge::new("tarsier_http_load_in_flight", "net/http_load requests in flight now.")
            .expect("valid metric");
        Self { requests, latency, in_flight }
    }

    pub fn collectors(&self) -> Vec<Box<dyn Collector>> {
        vec![Box::new(self.requests.clone()), Box::new(self.latency.clone()), Box::new(self.in_flight.clone())]
    }
}

impl Default for HttpLoadMetrics {
    fn default() -> Self {
        Self::new()
    }
}
