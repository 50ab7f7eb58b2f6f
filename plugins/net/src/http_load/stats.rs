//! What one `net/http_load` run measured, and how runs from many agents merge into one: counts add up and the
//! HDR histograms merge, so swarm-wide percentiles are exact, never averages of percentiles.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::serialization::{Deserializer, Serializer, V2Serializer};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use super::stages::StageInfo;

/// Latencies are recorded in microseconds, from 1 µs to 10 minutes, to 3 significant digits.
const MAX_LATENCY_US: u64 = 600_000_000;

/// A latency in the histograms' unit, clamped into their bounds.
pub fn latency_us(latency: Duration) -> u64 {
    (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US)
}

/// A histogram of latencies in µs to 3 significant digits, growing as larger values come (up to
/// [`MAX_LATENCY_US`], where [`latency_us`] clamps).
// PERF(rate_matrix): made at its full range (1 µs to 10 min) a histogram is 170 KiB, zeroed and faulted in
// for each of a load's connections and unmapped at its end: 13 of the 30 ms of agent CPU a 3 s load of a
// few requests cost (`perf record`, 64 connections). Grown on demand, one that holds latencies under 2 ms
// is 16 KiB.
pub fn new_histogram() -> Histogram<u64> {
    growing(3)
}

/// The histogram of how late requests went out: the same range to 2 significant digits (1 %), also growing.
pub fn new_late_histogram() -> Histogram<u64> {
    growing(2)
}

fn growing(significant_digits: u8) -> Histogram<u64> {
    let mut histogram = Histogram::new_with_bounds(1, 2, significant_digits).expect("the bounds are valid");
    histogram.auto(true);
    histogram
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
    /// Rate mode: how long after its due time each request was sent, in µs (empty in closed mode).
    pub late_us: Histogram<u64>,
    /// Rate mode: requests due in the window but not sent by its end (the generator or its connections
    /// could not keep up), like k6's dropped iterations.
    pub dropped: u64,
    /// Requests answered after the window ended: in `completed` and the latencies, not in `req_per_s`.
    pub stragglers: u64,
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
            late_us: new_late_histogram(),
            dropped: 0,
            stragglers: 0,
        }
    }
}

impl Tally {
    pub fn add(&mut self, other: &Tally) {
        self.sent += other.sent;
        self.completed += other.completed;
        self.bytes += other.bytes;
        self.dropped += other.dropped;
        self.stragglers += other.stragglers;
        self.errors.connect += other.errors.connect;
        self.errors.timeout += other.errors.timeout;
        self.errors.other += other.errors.other;
        self.errors.status_4xx += other.errors.status_4xx;
        self.errors.status_5xx += other.errors.status_5xx;
        for (code, n) in &other.status {
            *self.status.entry(*code).or_default() += n;
        }
        // Every histogram grows as it must, up to the clamp of `latency_us`, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
        let _ = self.late_us.add(&other.late_us);
    }

    /// The answer: counts, rate, latency percentiles in ms, and the histogram itself for exact merging.
    pub fn result(&self, seconds: f64, req_per_s: f64) -> HttpLoadResult {
        let h = &self.latency_us;
        let latency_ms = LatencyMs::of(h);
        let succeeded = self.completed.saturating_sub(self.errors.status_4xx + self.errors.status_5xx);
        HttpLoadResult {
            requests_sent: self.sent,
            completed: self.completed,
            succeeded,
            availability: if self.sent == 0 { 1.0 } else { succeeded as f64 / self.sent as f64 },
            dropped: self.dropped,
            stragglers: self.stragglers,
            latency_correction: None,
            errors: self.errors.clone(),
            status: self.status.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            seconds,
            req_per_s,
            bytes: self.bytes,
            latency_ms,
            histogram: encode(h),
            late_ms: LatencyMs::of(&self.late_us),
            late_histogram: (!self.late_us.is_empty()).then(|| encode(&self.late_us)),
            url: None,
            concurrency: None,
            rate: None,
            agents: None,
            stages: None,
        }
    }

    /// Reads back the tally of a [`HttpLoadResult`].
    pub fn from_result(result: &HttpLoadResult) -> Option<Tally> {
        Some(Tally {
            sent: result.requests_sent,
            completed: result.completed,
            bytes: result.bytes,
            errors: result.errors.clone(),
            status: result.status.iter().filter_map(|(k, v)| Some((k.parse().ok()?, *v))).collect(),
            latency_us: decode(&result.histogram, new_histogram())?,
            // Absent from closed mode's results and from agents older than the field.
            late_us: match &result.late_histogram {
                Some(text) => decode(text, new_late_histogram())?,
                None => new_late_histogram(),
            },
            dropped: result.dropped,
            stragglers: result.stragglers,
        })
    }
}

/// What `net/http_load` answers, and what a wave's report merges from many agents: one type for the plugin,
/// the merge and the CLI's table.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct HttpLoadResult {
    pub requests_sent: u64,
    /// Requests that got an HTTP answer, whatever its status.
    pub completed: u64,
    /// Requests answered with a status below 400: what a user would count as served.
    #[serde(default)]
    pub succeeded: u64,
    /// `succeeded / requests_sent` (1 when nothing was sent): the availability an SLO speaks of.
    #[serde(default)]
    pub availability: f64,
    /// Rate mode: requests due within `duration` but not sent by its end (the load could not keep up).
    #[serde(default)]
    pub dropped: u64,
    /// Requests answered after `duration` ended: counted in `completed` and the latencies, not in `req_per_s`.
    #[serde(default)]
    pub stragglers: u64,
    /// Where latencies count from: `schedule` (rate mode: each request's due time, or when it left if that was
    /// earlier), `none` (closed mode: when
    /// it was sent), `expected_interval` (closed mode with `correct`: wrk-style correction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_correction: Option<LatencyCorrection>,
    pub errors: Errors,
    /// Answers by status code.
    pub status: BTreeMap<String, u64>,
    pub seconds: f64,
    pub req_per_s: f64,
    pub bytes: u64,
    /// `null` when no request completed.
    pub latency_ms: Option<LatencyMs>,
    /// The HDR histogram of latencies in µs, V2-serialized and base64-encoded.
    pub histogram: String,
    /// Rate mode: how long after its due time each request was sent. Waiting for a free connection (every one
    /// busy: the service is slow, or `concurrency` too low) and the agent's own timer lateness; already in
    /// `latency_ms`, which counts from the due time. `null` in closed mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_ms: Option<LatencyMs>,
    /// The histogram behind `late_ms` (µs, 2 significant digits), for a wave's exact merge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub late_histogram: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// How many agents' results a merged result adds up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agents: Option<u64>,
    /// With `stages`: each stage's figures (its requests are those due, or sent, within it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stages: Option<Vec<StageResult>>,
}

/// One stage of a staged load: where it sits, what it ramped, and its figures (`req_per_s` over the stage).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StageResult {
    #[serde(flatten)]
    pub info: StageInfo,
    #[serde(flatten)]
    pub figures: Box<HttpLoadResult>,
}

/// How the latencies of a load were taken (see [`HttpLoadResult::latency_correction`]).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LatencyCorrection {
    /// Rate mode: from each request's scheduled time (or its send, when it left before it), so queueing
    /// behind a stalled server counts.
    Schedule,
    /// Closed mode: from when each request was sent; a stalled server hides the requests it held back.
    None,
    /// Closed mode, corrected as wrk does: HdrHistogram adds the samples a stall held back, the expected
    /// interval being the mean latency.
    ExpectedInterval,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct LatencyMs {
    pub min: f64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl LatencyMs {
    /// The percentiles of a histogram in µs; `None` when it is empty.
    fn of(h: &Histogram<u64>) -> Option<Self> {
        let ms = |us: u64| us as f64 / 1000.0;
        (!h.is_empty()).then(|| LatencyMs {
            min: ms(h.min()),
            mean: h.mean() / 1000.0,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        })
    }
}

fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    match V2Serializer::new().serialize(h, &mut bytes) {
        Ok(_) => base64::engine::general_purpose::STANDARD.encode(bytes),
        Err(_) => String::new(),
    }
}

/// A histogram sent by `encode`, added into `bounded`; none whose latencies pass the clamp of [`latency_us`].
fn decode(text: &str, mut bounded: Histogram<u64>) -> Option<Histogram<u64>> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(text).ok()?;
    let h: Histogram<u64> = Deserializer::new().deserialize(&mut bytes.as_slice()).ok()?;
    // A peer's histogram holds latencies as ours do, clamped to 10 minutes: anything past that is not one.
    if h.lowest_equivalent(h.max()) > MAX_LATENCY_US {
        return None;
    }
    bounded.add(&h).ok()?;
    Some(bounded)
}

/// One swarm-wide result from many agents' results: sums, and the merged histogram's percentiles. The
/// agents ran at the same time, so their rates add up and the run lasted as long as the longest one.
pub fn merge(results: &[HttpLoadResult]) -> Option<HttpLoadResult> {
    let mut total = Tally::default();
    let mut seconds: f64 = 0.0;
    let mut req_per_s = 0.0;
    let mut agents = 0;
    for result in results {
        if let Some(tally) = Tally::from_result(result) {
            total.add(&tally);
            seconds = seconds.max(result.seconds);
            req_per_s += result.req_per_s;
            agents += 1;
        }
    }
    if agents == 0 {
        return None;
    }
    let mut merged = total.result(seconds, req_per_s);
    merged.agents = Some(agents);
    // One body for the whole wave: the same way of taking latencies everywhere.
    merged.latency_correction = results.iter().find_map(|r| r.latency_correction);
    merged.stages = merge_stages(results);
    Some(merged)
}

/// Stage by stage, the same merge: a wave's agents ran the same stages at the same time.
fn merge_stages(results: &[HttpLoadResult]) -> Option<Vec<StageResult>> {
    let first = results.iter().find_map(|r| r.stages.as_ref())?;
    let merged = first
        .iter()
        .enumerate()
        .filter_map(|(i, stage)| {
            let figures: Vec<HttpLoadResult> = results
                .iter()
                .filter_map(|r| r.stages.as_ref()?.get(i))
                .map(|s| HttpLoadResult { stages: None, ..(*s.figures).clone() })
                .collect();
            let figures = merge(&figures)?;
            Some(StageResult { figures: Box::new(figures), ..stage.clone() })
        })
        .collect();
    Some(merged)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http_load::stages::{Ramp, StageKind};

    fn tally_of(latencies_us: impl IntoIterator<Item = u64>) -> Tally {
        let mut t = Tally::default();
        for us in latencies_us {
            t.sent += 1;
            t.completed += 1;
            *t.status.entry(200).or_default() += 1;
            let _ = t.latency_us.record(latency_us(Duration::from_micros(us)));
        }
        t
    }

    /// The merged p99 of two agents equals the p99 of one histogram holding both sets of samples.
    #[test]
    fn merged_percentiles_equal_one_histogram_of_all_samples() {
        let fast: Vec<u64> = (0..10_000).map(|i| 200 + (i * 7919) % 800).collect();
        let slow: Vec<u64> = (0..1_000).map(|i| 5_000 + (i * 104_729) % 95_000).collect();
        let (a, b) = (tally_of(fast.clone()), tally_of(slow.clone()));
        let merged = merge(&[a.result(5.0, 2000.0), b.result(4.0, 250.0)]).unwrap();
        let all = tally_of(fast.into_iter().chain(slow));
        let one = all.result(5.0, 2250.0);
        assert_eq!(merged.latency_ms, one.latency_ms);
        assert_eq!(merged.completed, 11_000);
        assert_eq!(merged.status["200"], 11_000);
        assert_eq!((merged.req_per_s, merged.seconds, merged.agents), (2250.0, 5.0, Some(2)));
        // Averaging the two p99s would be far off the truth.
        let p99 = |t: &Tally| t.result(1.0, 1.0).latency_ms.unwrap().p99;
        let averaged = (p99(&a) + p99(&b)) / 2.0;
        assert!((averaged - one.latency_ms.unwrap().p99).abs() > 1.0);
    }

    #[test]
    fn a_wave_merges_stage_by_stage() {
        let staged = |latencies: Vec<u64>| {
            let mut result = tally_of(latencies.clone()).result(2.0, 10.0);
            let info = StageInfo {
                stage: 1,
                of: StageKind::Rate,
                ramp: Ramp::Step,
                from: 5.0,
                to: 5.0,
                start_s: 0.0,
                duration_s: 2.0,
            };
            let stage = StageResult { info, figures: Box::new(tally_of(latencies).result(2.0, 5.0)) };
            result.stages = Some(vec![stage]);
            result
        };
        let merged = merge(&[staged(vec![100, 200]), staged(vec![300, 400, 500])]).unwrap();
        let stages = merged.stages.unwrap();
        assert_eq!((stages.len(), stages[0].figures.completed, stages[0].figures.req_per_s), (1, 5, 10.0));
        assert_eq!(stages[0].figures.agents, Some(2));
        let text = serde_json::to_value(&stages[0]).unwrap();
        assert_eq!((text["stage"].as_u64(), text["completed"].as_u64()), (Some(1), Some(5)), "flattened: {text}");
    }

    #[test]
    fn how_late_requests_went_merges_exactly_and_closed_mode_has_none() {
        let late = |us: &[u64]| {
            let mut t = tally_of(us.iter().map(|_| 1_000));
            for &u in us {
                let _ = t.late_us.record(u);
            }
            t
        };
        let (a, b) = (late(&[10, 20, 30]), late(&[5_000]));
        let merged = merge(&[a.result(1.0, 3.0), b.result(1.0, 1.0)]).unwrap();
        let mut both = late(&[10, 20, 30]);
        both.add(&late(&[5_000]));
        assert_eq!(merged.late_ms, both.result(1.0, 4.0).late_ms);
        let max = merged.late_ms.map_or(0.0, |l| l.max);
        assert!((5.0..5.05).contains(&max), "5 ms to 2 significant digits: {max}");
        let closed = tally_of([100]).result(1.0, 1.0);
        assert_eq!((closed.late_ms, closed.late_histogram.as_deref()), (None, None));
        let text = serde_json::to_value(&closed).unwrap();
        assert!(text.get("late_ms").is_none(), "{text}");
    }

    #[test]
    fn round_trip_through_json() {
        let t = tally_of([100, 200, 300]);
        let text = serde_json::to_string(&t.result(1.5, 2.0)).unwrap();
        let back: HttpLoadResult = serde_json::from_str(&text).unwrap();
        assert_eq!(Tally::from_result(&back).unwrap().latency_us.len(), 3);
        assert_eq!((back.seconds, back.req_per_s), (1.5, 2.0));
        assert!(merge(&[]).is_none());
    }

    #[test]
    fn histograms_grow_to_the_longest_latency_and_a_peers_past_it_is_refused() {
        let mut t = tally_of([100, 200]);
        let _ = t.latency_us.record(latency_us(Duration::from_secs(3_600)));
        assert_eq!(t.latency_us.len(), 3);
        let back = Tally::from_result(&t.result(1.0, 3.0)).unwrap();
        assert_eq!(
            back.latency_us.lowest_equivalent(back.latency_us.max()),
            t.latency_us.lowest_equivalent(MAX_LATENCY_US)
        );
        let mut beyond = Histogram::<u64>::new(3).unwrap();
        beyond.record(2 * MAX_LATENCY_US).unwrap();
        assert!(decode(&encode(&beyond), new_histogram()).is_none(), "no latency of ours is 20 minutes");
    }
}
