//! A body checked into what runs: its URL, method and headers parsed once, its bounds and the agent's
//! limits checked before anything is sent; and the one resolution of the target, checked against the
//! allow-list, that the load then connects to.

use std::net::IpAddr;

use tarsier_plugin::{CommandError, DataError, Limits};

use crate::cmd_http_load::HttpLoadData;
use crate::http_load::stages::{StageKind, Stages};
use crate::targets::AllowList;
use tarsier_plugin::HumanDuration;

const MAX_CONCURRENCY: u32 = 10_000;
const MAX_RATE: f64 = 1_000_000.0;

/// A checked request: the data and what `check` parsed out of it, so nothing is parsed twice.
pub struct HttpLoadPlan {
    pub(crate) data: HttpLoadData,
    pub(crate) url: reqwest::Url,
    pub(crate) method: reqwest::Method,
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) stages: Option<Stages>,
}

impl HttpLoadPlan {
    pub fn new(data: HttpLoadData, limits: &Limits) -> Result<Self, DataError> {
        let url = parse_url(&data)?;
        let allow = AllowList::from_limits(limits)?;
        if let Some(ip) = url.host_str().and_then(|h| h.trim_matches(['[', ']']).parse::<IpAddr>().ok()) {
            if !allow.allows_ip(ip) {
                return Err(allow.refusal(&ip.to_string()));
            }
        }
        let method = reqwest::Method::from_bytes(data.method.as_bytes())
            .map_err(|_| DataError::field("method", format!("`{}` is not an HTTP method", data.method)))?;
        let mut headers = reqwest::header::HeaderMap::new();
        for (name, value) in &data.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| DataError::field("headers", format!("`{name}` is not a header name")))?;
            if name == reqwest::header::CONTENT_LENGTH || name == reqwest::header::TRANSFER_ENCODING {
                return Err(DataError::field("headers", format!("`{name}` is set by http_load from `body`")));
            }
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| DataError::field("headers", format!("the value of `{name}` is not a header value")))?;
            headers.insert(name, value);
        }
        if data.concurrency == 0 || data.concurrency > MAX_CONCURRENCY {
            return Err(DataError::field(
                "concurrency",
                format!("{} must be between 1 and {MAX_CONCURRENCY}", data.concurrency),
            ));
        }
        match (data.requests, data.duration) {
            (Some(_), Some(_)) => return Err(DataError::field("requests", "give `requests` or `duration`, not both")),
            (Some(0), None) => return Err(DataError::field("requests", "must be at least 1")),
            (None, Some(d)) => limits.check_duration("duration", d)?,
            _ => {}
        }
        if let Some(rate) = data.rate {
            if !(rate > 0.0 && rate <= MAX_RATE) {
                return Err(DataError::field(
                    "rate",
                    format!("{rate} must be more than 0 and at most {MAX_RATE} requests/s"),
                ));
            }
        }
        if data.correct && data.rate.is_some() {
            return Err(DataError::field(
                "correct",
                "rate mode already counts latency from each request's schedule; `correct` is for closed mode",
            ));
        }
        limits.check_duration("timeout", data.timeout)?;
        let stages = check_stages(&data, limits)?;
        let open_model = data.rate.is_some() || stages.as_ref().is_some_and(|s| s.kind == StageKind::Rate);
        if data.pacing.is_some() && !open_model {
            return Err(DataError::field("pacing", "pacing is how rate mode waits: give `rate` or rate stages"));
        }
        Ok(HttpLoadPlan { data, url, method, headers, stages })
    }
}

/// The most stages one load runs.
const MAX_STAGES: usize = 100;

/// `stages`, checked: all of rate or all of concurrency, each within the bounds of the same field outside
/// stages, and together no longer than the agent allows one command to run.
fn check_stages(data: &HttpLoadData, limits: &Limits) -> Result<Option<Stages>, DataError> {
    if data.stages.is_empty() {
        return Ok(None);
    }
    if data.stages.len() > MAX_STAGES {
        return Err(DataError::field("stages", format!("at most {MAX_STAGES} stages")));
    }
    if data.duration.is_some() || data.requests.is_some() {
        return Err(DataError::field(
            "stages",
            "the stages say how long the load lasts: leave out `duration` and `requests`",
        ));
    }
    let kind = match (data.stages[0].rate, data.stages[0].concurrency) {
        (Some(_), None) => StageKind::Rate,
        (None, Some(_)) => StageKind::Concurrency,
        _ => return Err(DataError::field("stages[0]", "give `rate` or `concurrency`, one of them")),
    };
    if kind == StageKind::Rate && data.correct {
        return Err(DataError::field(
            "correct",
            "rate stages count latency from each request's schedule; `correct` is for closed mode",
        ));
    }
    if kind == StageKind::Concurrency && data.rate.is_some() {
        return Err(DataError::field("rate", "concurrency stages are the closed model: leave out `rate`"));
    }
    let mut checked = Vec::with_capacity(data.stages.len());
    let mut total = std::time::Duration::ZERO;
    for (i, stage) in data.stages.iter().enumerate() {
        let at = format!("stages[{i}]");
        if stage.duration.0.is_zero() {
            return Err(DataError::field(&format!("{at}.duration"), "must be more than 0"));
        }
        total += stage.duration.0;
        let target = match (kind, stage.rate, stage.concurrency) {
            (StageKind::Rate, Some(rate), None) if (0.0..=MAX_RATE).contains(&rate) => rate,
            (StageKind::Rate, Some(rate), None) => {
                return Err(DataError::field(
                    &format!("{at}.rate"),
                    format!("{rate} must be from 0 to {MAX_RATE} requests/s"),
                ))
            }
            (StageKind::Concurrency, None, Some(n)) if n <= MAX_CONCURRENCY => f64::from(n),
            (StageKind::Concurrency, None, Some(n)) => {
                return Err(DataError::field(
                    &format!("{at}.concurrency"),
                    format!("{n} must be at most {MAX_CONCURRENCY}"),
                ))
            }
            _ => {
                let first = if kind == StageKind::Rate { "rate" } else { "concurrency" };
                return Err(DataError::field(
                    &at,
                    format!("give `{first}` as stages[0] does (every stage ramps the same figure)"),
                ));
            }
        };
        checked.push((stage.duration.0, target, stage.ramp));
    }
    limits.check_duration("stages", HumanDuration(total))?;
    let start = match kind {
        StageKind::Rate => data.rate.unwrap_or(0.0),
        StageKind::Concurrency => 1.0,
    };
    let stages = Stages::new(kind, start, &checked);
    if kind == StageKind::Rate && stages.total_due() == 0 {
        return Err(DataError::field("stages", "every rate is 0: no request would be sent"));
    }
    if kind == StageKind::Concurrency && stages.max_concurrency() == 0 {
        return Err(DataError::field("stages", "every concurrency is 0: no request would be sent"));
    }
    Ok(Some(stages))
}

fn parse_url(data: &HttpLoadData) -> Result<reqwest::Url, DataError> {
    if data.url.is_empty() {
        return Err(DataError::field("url", "is required, such as http://127.0.0.1:8080/"));
    }
    let url = reqwest::Url::parse(&data.url).map_err(|e| DataError::field("url", format!("`{}`: {e}", data.url)))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(DataError::field("url", format!("`{}` is not an http:// or https:// URL", data.url)));
    }
    Ok(url)
}

/// The address the load goes to: the URL's host resolved once and checked (see `AllowList::resolve`).
pub(crate) async fn check_resolved(url: &reqwest::Url, limits: &Limits) -> Result<std::net::SocketAddr, CommandError> {
    let allow = AllowList::from_limits(limits)?;
    let host = url.host_str().unwrap_or_default();
    Ok(allow.resolve(host, url.port_or_known_default().unwrap_or(80)).await?)
}
