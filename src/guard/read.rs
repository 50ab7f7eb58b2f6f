//! One reading of a condition: a PromQL query, an HTTP probe, or the live figures of the `net/http_load`
//! running on the target agent. A source that cannot be read (Prometheus away, the agent gone) reads as
//! broken: a guard that cannot see cannot guard. No data (an empty query, no load running) is not broken.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::check::{Check, CheckKind, HttpProbe, LoadFigure};
use super::Bound;

/// Where readings come from, and the clients to reach them.
pub struct Sources {
    /// For the agents: carries the swarm token.
    pub agents: reqwest::Client,
    /// For Prometheus and the service under test: carries nothing of the swarm's.
    pub plain: reqwest::Client,
    /// The target agent's public base URL (`http://127.0.0.1:8080`).
    pub public: String,
    /// Prometheus' base URL, for `promql` checks.
    pub prometheus: Option<String>,
}

/// The client for Prometheus and the service under test: nothing of the swarm's (no token, no client
/// certificate), the system's roots for https://, and a bound on every request, so a reading that hangs ends.
pub fn plain_client() -> reqwest::Result<reqwest::Client> {
    crate::credentials::tls::with_system_roots(reqwest::Client::builder().timeout(PLAIN_TIMEOUT)).build()
}

/// The longest a request of [`plain_client`] may take.
const PLAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// What one reading found.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    Holds {
        value: Option<f64>,
        shown: String,
    },
    /// Nothing to read: an empty answer from Prometheus, no load running. Not broken.
    NoData(String),
    Breaks {
        value: Option<f64>,
        shown: String,
    },
}

impl Reading {
    pub fn shown(&self) -> &str {
        match self {
            Reading::Holds { shown, .. } | Reading::NoData(shown) | Reading::Breaks { shown, .. } => shown,
        }
    }

    pub fn value(&self) -> Option<f64> {
        match self {
            Reading::Holds { value, .. } | Reading::Breaks { value, .. } => *value,
            Reading::NoData(_) => None,
        }
    }

    fn of_number(value: Option<f64>, is: &Bound, what: &str) -> Self {
        match value {
            None => Reading::NoData(format!("{what}: no data")),
            Some(x) if is.holds(x) => Reading::Holds { value: Some(x), shown: format!("{what} = {}", short_number(x)) },
            Some(x) => Reading::Breaks { value: Some(x), shown: format!("{what} = {}", short_number(x)) },
        }
    }

    fn unreadable(why: String) -> Self {
        Reading::Breaks { value: None, shown: why }
    }
}

/// A figure as people read it: whole numbers whole, others to three decimals.
pub fn short_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x:.3}")
    }
}

impl Sources {
    pub async fn read(&self, check: &Check) -> Reading {
        match &check.kind {
            CheckKind::PromQl { query, is } => {
                let Some(prometheus) = &self.prometheus else {
                    return Reading::unreadable("no Prometheus to ask: give `prometheus:` (or --prometheus)".into());
                };
                match promql(&self.plain, prometheus, query).await {
                    Ok(value) => Reading::of_number(value, is, "the query"),
                    Err(why) => Reading::unreadable(why),
                }
            }
            CheckKind::Probe(probe) => self.probe(probe).await,
            CheckKind::HttpLoad { figure, is } => match self.load_figure(*figure).await {
                Ok(value) => Reading::of_number(value, is, figure.key()),
                Err(why) => Reading::unreadable(why),
            },
        }
    }

    async fn probe(&self, probe: &HttpProbe) -> Reading {
        let started = Instant::now();
        let answer = self.plain.get(&probe.url).timeout(probe.latency).send().await;
        let response = match answer {
            Ok(response) => response,
            Err(err) if err.is_timeout() => {
                let shown = format!("GET {} gave no answer within {:?}", probe.url, probe.latency);
                return Reading::Breaks { value: None, shown };
            }
            Err(err) => return Reading::unreadable(format!("GET {}: {err}", probe.url)),
        };
        let status = response.status().as_u16();
        // The body is read within what is left of the latency allowed, and at most 1 MiB of it.
        let left = probe.latency.saturating_sub(started.elapsed());
        let body = match &probe.body {
            None => Ok(String::new()),
            Some(_) => match tokio::time::timeout(left, read_prefix(response, 1024 * 1024)).await {
                Ok(body) => body,
                Err(_) => Err("the body did not come within the latency allowed".to_owned()),
            },
        };
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        let value = Some(ms);
        let shown = format!("GET {} answered {status} in {} ms", probe.url, short_number(ms));
        if status != probe.status {
            return Reading::Breaks { value, shown };
        }
        match (&probe.body, body) {
            (_, Err(why)) => Reading::Breaks { value, shown: format!("{shown}: {why}") },
            (Some(want), Ok(text)) if !text.contains(want.as_str()) => {
                Reading::Breaks { value, shown: format!("{shown}, its body without {want:?}") }
            }
            _ => Reading::Holds { value, shown },
        }
    }

    /// The figure over the running `net/http_load` jobs of the target agent: the worst error rate and p99,
    /// the sum of the req/s. None when no load runs (or none has published yet).
    async fn load_figure(&self, figure: LoadFigure) -> Result<Option<f64>, String> {
        let url = format!("{}/jobs", self.public.trim_end_matches('/'));
        let jobs: Value = self
            .agents
            .get(&url)
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("cannot read {url}: {e}"))?
            .json()
            .await
            .map_err(|e| format!("{url} answered something that is not JSON: {e}"))?;
        let running = jobs["running"].as_array().map(Vec::as_slice).unwrap_or_default();
        let figures = running
            .iter()
            .filter(|job| job["command"] == "net/http_load")
            .filter_map(|job| job["progress"]["recent"][figure.key()].as_f64());
        Ok(match figure {
            LoadFigure::ReqPerS => figures.reduce(|a, b| a + b),
            LoadFigure::ErrorRate | LoadFigure::P99Ms => figures.reduce(f64::max),
        })
    }

    /// POST /abort to the target agent, which floods it to the whole swarm.
    pub async fn abort_swarm(&self) -> Result<Value, String> {
        let url = format!("{}/abort", self.public.trim_end_matches('/'));
        let response =
            self.agents.post(&url).timeout(Duration::from_secs(30)).send().await.map_err(|e| format!("{url}: {e}"))?;
        response.json().await.map_err(|e| format!("{url} answered something that is not JSON: {e}"))
    }
}

async fn read_prefix(mut response: reqwest::Response, limit: usize) -> Result<String, String> {
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        bytes.extend_from_slice(&chunk);
        if bytes.len() >= limit {
            bytes.truncate(limit);
            break;
        }
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// One number from Prometheus' instant query API; an empty answer is `None` (no data yet).
pub async fn promql(client: &reqwest::Client, prometheus: &str, query: &str) -> Result<Option<f64>, String> {
    let url = format!("{}/api/v1/query", prometheus.trim_end_matches('/'));
    let answer: Value = client
        .get(&url)
        .query(&[("query", query)])
        .send()
        .await
        .map_err(|e| format!("cannot query Prometheus at {url}: {e}"))?
        .json()
        .await
        .map_err(|e| format!("Prometheus answered something that is not JSON: {e}"))?;
    if answer["status"] != "success" {
        return Err(format!("Prometheus refused the query: {}", answer["error"].as_str().unwrap_or("?")));
    }
    let data = &answer["data"];
    let sample = match data["resultType"].as_str() {
        Some("scalar") => &data["result"][1],
        Some("vector") => {
            let series = data["result"].as_array().map(Vec::as_slice).unwrap_or_default();
            match series {
                [] => return Ok(None),
                [one] => &one["value"][1],
                many => return Err(format!("the query gives {} series; aggregate them, as in sum(...)", many.len())),
            }
        }
        other => return Err(format!("the query gives a {other:?}; it must give one number")),
    };
    sample.as_str().and_then(|s| s.parse().ok()).map(Some).ok_or_else(|| format!("not a number: {sample}"))
}
