//! A body checked into what runs: its URL, method and headers parsed once, its bounds and the agent's
//! limits checked before anything is sent; and the one resolution of the target, checked against the
//! allow-list, that the load then connects to.

use std::net::IpAddr;

use tarsier_plugin::{CommandError, DataError, Limits};

use crate::cmd_http_load::HttpLoadData;
use crate::targets::AllowList;

const MAX_CONCURRENCY: u32 = 10_000;
const MAX_RATE: f64 = 1_000_000.0;

/// A checked request: the data and what `check` parsed out of it, so nothing is parsed twice.
pub struct HttpLoadPlan {
    pub(crate) data: HttpLoadData,
    pub(crate) url: reqwest::Url,
    pub(crate) method: reqwest::Method,
    pub(crate) headers: reqwest::header::HeaderMap,
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
        Ok(HttpLoadPlan { data, url, method, headers })
    }
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
