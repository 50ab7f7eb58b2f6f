//! What one `net/http_load` run measured, and how runs from many agents merge into one: counts add up and the
//! HDR histograms merge, so swarm-wide percentiles are exact, never averages of percentiles.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// Latencies are recorded in microseconds, from 1 µs to 10 minutes, to 3 significant digits.
const MAX_LATENCY_US: u64 = 600_000_000;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("the bounds are valid")
}

/// Error classes of requests that got no usable answer.
#[derive(Debug, Default, Clone, Serialize, Deserialize, PartialEq)]
pub struct Errors {
    pub connect: u64,
    pub timeout: u64,
    pub other: u64,
    pub status_4xx: u64,
    pub status_5xx: u64,
}

/// One worker's or one agent's tally.
#[derive(Debug, Clone)]
pub struct Tally {
    pub sent: u64,
    /// Requests that got an HTTP answer, whatever its status.
    pub completed: u64,
    pub bytes: u64,
    pub errors: Errors,
    pub status: BTreeMap<u16, u64>,
    pub latency_us: Histogram<u64>,
}

impl Default for Tally {
    fn default() -> Self {
        Self {
            sent: 0,
            completed: 0,
            bytes: 0,
            errors: Errors::default(),
            status: BTreeMap::new(),
            latency_us: new_histogram(),
        }
    }
}

impl Tally {
    pub fn record_latency(&mut self, latency: Duration) {
        let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
        // Clamped into the bounds, so recording cannot fail.
        let _ = self.latency_us.record(us);
    }

    pub fn add(&mut self, other: &Tally) {
        self.sent += other.sent;
        self.completed += other.completed;
        self.bytes += other.bytes;
        self.errors.connect += other.errors.connect;
        self.errors.timeout += other.errors.timeout;
        self.errors.other += other.errors.other;
        self.errors.status_4xx += other.errors.status_4xx;
        self.errors.status_5xx += other.errors.status_5xx;
        for (code, n) in &other.status {
            *self.status.entry(*code).or_default() += n;
        }
        // Same bounds everywhere, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
    }

    /// The JSON answer: counts, rate, latency percentiles in ms, and the histogram itself for exact merging.
    pub fn to_json(&self, seconds: f64, req_per_s: f64) -> Value {
        let h = &self.latency_us;
        let ms = |us: u64| us as f64 / 1000.0;
        let latency = if h.is_empty() {
            Value::Null
        } else {
            json!({
                "min": ms(h.min()),
                "mean": h.mean() / 1000.0,
                "p50": ms(h.value_at_quantile(0.50)),
                "p90": ms(h.value_at_quantile(0.90)),
                "p99": ms(h.value_at_quantile(0.99)),
                "p999": ms(h.value_at_quantile(0.999)),
                "max": ms(h.max()),
            })
        };
        json!({
            "requests_sent": self.sent,
            "completed": self.completed,
            "errors": self.errors,
            "status": self.status.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
            "seconds": seconds,
            "req_per_s": req_per_s,
            "bytes": self.bytes,
            "latency_ms": latency,
            "histogram": encode(h),
        })
    }

    /// Reads back what [`Tally::to_json`] wrote.
    pub fn from_json(value: &Value) -> Option<(Tally, f64, f64)> {
        let latency_us = decode(value.get("histogram")?.as_str()?)?;
        let status = value
            .get("status")?
            .as_object()?
            .iter()
            .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_u64()?)))
            .collect();
        let tally = Tally {
            sent: value.get("requests_sent")?.as_u64()?,
            completed: value.get("completed")?.as_u64()?,
            bytes: value.get("bytes")?.as_u64()?,
            errors: serde_json::from_value(value.get("errors")?.clone()).ok()?,
            status,
            latency_us,
        };
        Some((tally, value.get("seconds")?.as_f64()?, value.get("req_per_s")?.as_f64()?))
    }
}

fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    match V2Serializer::new().serialize(h, &mut bytes) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(bytes),
        Err(_) => String::new(),
    }
}

fn decode(text: &str) -> Option<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).ok()?;
    let h: Histogram<u64> = Deserializer::new().deserialize(&mut bytes.as_slice()).ok()?;
    let mut bounded = new_histogram();
    bounded.add(&h).ok()?;
    Some(bounded)
}

/// One swarm-wide result from many agents' results: sums, and the merged histogram's percentiles. The
/// agents ran at the same time, so their rates add up and the run lasted as long as the longest one.
pub fn merge(results: &[Value]) -> Option<Value> {
    let mut total = Tally::default();
    let mut seconds: f64 = 0.0;
    let mut req_per_s = 0.0;
    let mut agents = 0;
    for result in results {
        if let Some((tally, s, rate)) = Tally::from_json(result) {
            total.add(&tally);
            seconds = seconds.max(s);
            req_per_s += rate;
            agents += 1;
        }
    }
    if agents == 0 {
        return None;
    }
    let mut merged = total.to_json(seconds, req_per_s);
    merged["agents"] = json!(agents);
    Some(merged)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally_of(latencies_us: impl IntoIterator<Item = u64>) -> Tally {
        let mut t = Tally::default();
        for us in latencies_us {
            t.sent += 1;
            t.completed += 1;
            *t.status.entry(200).or_default() += 1;
            t.record_latency(Duration::from_micros(us));
        }
        t
    }

    /// The merged p99 of two agents equals the p99 of one histogram holding both sets of samples.
    #[test]
    fn merged_percentiles_equal_one_histogram_of_all_samples() {
        let fast: Vec<u64> = (0..10_000).map(|i| 200 + (i * 7919) % 800).collect();
        let slow: Vec<u64> = (0..1_000).map(|i| 5_000 + (i * 104_729) % 95_000).collect();
        let (a, b) = (tally_of(fast.clone()), tally_of(slow.clone()));
        let merged = merge(&[a.to_json(5.0, 2000.0), b.to_json(4.0, 250.0)]).unwrap();
        let all = tally_of(fast.into_iter().chain(slow));
        let one = all.to_json(5.0, 2250.0);
        for q in ["p50", "p90", "p99", "p999", "min", "max"] {
            assert_eq!(merged["latency_ms"][q], one["latency_ms"][q], "{q}");
        }
        assert_eq!(merged["completed"], 11_000);
        assert_eq!(merged["status"]["200"], 11_000);
        assert_eq!(merged["req_per_s"], 2250.0);
        assert_eq!(merged["seconds"], 5.0);
        assert_eq!(merged["agents"], 2);
        // Averaging the two p99s would be far off the truth.
        let averaged = (a.to_json(1.0, 1.0)["latency_ms"]["p99"].as_f64().unwrap()
            + b.to_json(1.0, 1.0)["latency_ms"]["p99"].as_f64().unwrap())
            / 2.0;
        assert!((averaged - one["latency_ms"]["p99"].as_f64().unwrap()).abs() > 1.0);
    }

    #[test]
    fn round_trip_through_json() {
        let t = tally_of([100, 200, 300]);
        let (back, seconds, rate) = Tally::from_json(&t.to_json(1.5, 2.0)).unwrap();
        assert_eq!(back.latency_us.len(), 3);
        assert_eq!((seconds, rate), (1.5, 2.0));
        assert!(merge(&[json!({"slept_ms": 3})]).is_none());
    }
}
