//! A condition as written (`RawCheck`, in a scenario's `guards:` and `steady_state:`, or `--guard`) and as
//! checked (`Check`): typed once, with errors that name the field.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tarsier_plugin::HumanDuration;

use super::Bound;

/// One condition: exactly one of `promql`, `probe` or `http_load`, with `is` for the two that give a number.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawCheck {
    /// Its name in the run's output (default: made of what it reads).
    pub name: Option<String>,
    /// A PromQL query answered by the run's Prometheus; it must give one number (or none: no data).
    pub promql: Option<String>,
    /// An HTTP GET that must answer `status` within `latency`, with `body` in its text when given.
    pub probe: Option<RawHttpProbe>,
    /// A live figure of the `net/http_load` running on the target agent: `error_rate` (0-1), `p99_ms` or
    /// `req_per_s`, over the last half second.
    pub http_load: Option<String>,
    /// The comparison the number must hold: `< 5`, `<= 5`, `> 5`, `>= 5` or `== 5`.
    pub is: Option<String>,
    /// How long it may stay broken before it counts (default 0: the first bad reading).
    #[serde(rename = "for")]
    pub grace: Option<HumanDuration>,
    /// How often a guard is read (default 1s).
    pub interval: Option<HumanDuration>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawHttpProbe {
    pub url: String,
    /// The status that must come back (default 200).
    pub status: Option<u16>,
    /// The longest the answer may take (default 1s); the probe gives up then.
    pub latency: Option<HumanDuration>,
    /// Text the body must contain.
    pub body: Option<String>,
}

/// A condition ready to be read.
#[derive(Debug, Clone)]
pub struct Check {
    pub name: String,
    pub kind: CheckKind,
    /// How long it may stay broken before it counts.
    pub grace: Duration,
    pub interval: Duration,
}

#[derive(Debug, Clone)]
pub enum CheckKind {
    PromQl { query: String, is: Bound },
    Probe(HttpProbe),
    HttpLoad { figure: LoadFigure, is: Bound },
}

#[derive(Debug, Clone)]
pub struct HttpProbe {
    pub url: String,
    pub status: u16,
    pub latency: Duration,
    pub body: Option<String>,
}

/// A figure of a running load's `progress.recent` (the last half second).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadFigure {
    ErrorRate,
    P99Ms,
    ReqPerS,
}

impl LoadFigure {
    pub const NAMES: [&'static str; 3] = ["error_rate", "p99_ms", "req_per_s"];

    fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "error_rate" => Some(Self::ErrorRate),
            "p99_ms" => Some(Self::P99Ms),
            "req_per_s" => Some(Self::ReqPerS),
            _ => None,
        }
    }

    pub fn key(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

/// The quickest a guard is read: faster would load Prometheus and the service more than it tells.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// The longest interval or grace: a guard read less often guards nothing.
pub const MAX_WAIT: Duration = Duration::from_secs(3600);
const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);
const DEFAULT_PROBE_LATENCY: Duration = Duration::from_secs(1);
/// The longest text in a check (a PromQL query, a URL, a name).
const MAX_TEXT: usize = 4096;

impl Check {
    /// Types a condition; `at` names it in errors (`guards[1]`). `live` says whether it may read a running
    /// load (a guard may; a steady state, checked while nothing runs, may not).
    pub fn from_raw(raw: &RawCheck, at: &str, live: bool) -> Result<Self, String> {
        let kinds = [raw.promql.is_some(), raw.probe.is_some(), raw.http_load.is_some()];
        if kinds.iter().filter(|k| **k).count() != 1 {
            return Err(format!("{at}: give exactly one of `promql`, `probe` or `http_load`"));
        }
        let text = |field: &str, value: &str| -> Result<(), String> {
            if value.trim().is_empty() || value.len() > MAX_TEXT {
                return Err(format!("{at}.{field}: must be 1 to {MAX_TEXT} characters"));
            }
            Ok(())
        };
        let bound = |what: &str| -> Result<Bound, String> {
            let is = raw.is.as_deref().ok_or_else(|| format!("{at}.is: {what} needs a comparison, such as `< 5`"))?;
            Bound::parse(is).map_err(|e| format!("{at}.is: {e}"))
        };
        let kind = if let Some(query) = &raw.promql {
            text("promql", query)?;
            CheckKind::PromQl { query: query.clone(), is: bound("a promql check")? }
        } else if let Some(probe) = &raw.probe {
            if raw.is.is_some() {
                return Err(format!("{at}.is: a probe holds by its `status`, `latency` and `body`; it takes no `is`"));
            }
            text("probe.url", &probe.url)?;
            let url = reqwest::Url::parse(&probe.url).map_err(|e| format!("{at}.probe.url: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(format!("{at}.probe.url: http:// or https:// only"));
            }
            let latency = probe.latency.map_or(DEFAULT_PROBE_LATENCY, |l| l.0);
            if latency.is_zero() || latency > MAX_WAIT {
                return Err(format!("{at}.probe.latency: must be more than 0 and at most 1h"));
            }
            if let Some(body) = &probe.body {
                text("probe.body", body)?;
            }
            let status = probe.status.unwrap_or(200);
            if !(100..=599).contains(&status) {
                return Err(format!("{at}.probe.status: {status} is not an HTTP status"));
            }
            CheckKind::Probe(HttpProbe { url: probe.url.clone(), status, latency, body: probe.body.clone() })
        } else {
            if !live {
                return Err(format!(
                    "{at}.http_load: a steady state is checked while nothing runs; use `probe` or `promql`"
                ));
            }
            let name = raw.http_load.as_deref().unwrap_or_default();
            let figure = LoadFigure::parse(name).ok_or_else(|| {
                format!("{at}.http_load: `{name}` is not a live figure; one of {}", LoadFigure::NAMES.join(", "))
            })?;
            CheckKind::HttpLoad { figure, is: bound("an http_load check")? }
        };
        let grace = raw.grace.map_or(Duration::ZERO, |g| g.0);
        if grace > MAX_WAIT {
            return Err(format!("{at}.for: at most 1h"));
        }
        let interval = raw.interval.map_or(DEFAULT_INTERVAL, |i| i.0);
        if !(MIN_INTERVAL..=MAX_WAIT).contains(&interval) {
            return Err(format!("{at}.interval: from 100ms to 1h"));
        }
        let name = match &raw.name {
            Some(name) => {
                text("name", name)?;
                name.clone()
            }
            None => kind.describe(),
        };
        Ok(Self { name, kind, grace, interval })
    }

    /// `--guard` on the command line: the same condition as in a scenario, in YAML's flow form
    /// (`{http_load: p99_ms, is: "< 50", for: 2s}`).
    pub fn from_flag(text: &str, at: &str) -> Result<Self, String> {
        if text.len() > MAX_TEXT * 4 {
            return Err(format!("{at}: longer than {} characters", MAX_TEXT * 4));
        }
        let raw: RawCheck = serde_norway::from_str(text).map_err(|e| format!("{at}: {e}"))?;
        Self::from_raw(&raw, at, true)
    }

    /// Fills a probe's URL placeholders (`{{public}}`, `{{service}}` in a scenario) with `fill`.
    pub fn fill_placeholders(&mut self, fill: impl Fn(&str) -> String) {
        if let CheckKind::Probe(probe) = &mut self.kind {
            probe.url = fill(&probe.url);
        }
    }

    /// What must hold, for a person: `p99_ms < 50`, `GET http://x/health answers 200 within 1s`.
    pub fn threshold(&self) -> String {
        match &self.kind {
            CheckKind::PromQl { is, .. } | CheckKind::HttpLoad { is, .. } => is.to_string(),
            CheckKind::Probe(probe) => {
                let body = probe.body.as_ref().map(|b| format!(" containing {b:?}")).unwrap_or_default();
                format!("{} within {}{body}", probe.status, HumanDuration(probe.latency))
            }
        }
    }
}

impl CheckKind {
    fn describe(&self) -> String {
        match self {
            CheckKind::PromQl { query, .. } => format!("promql {}", query.chars().take(60).collect::<String>()),
            CheckKind::Probe(probe) => format!("probe {}", probe.url),
            CheckKind::HttpLoad { figure, .. } => format!("http_load {}", figure.key()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(text: &str) -> RawCheck {
        serde_norway::from_str(text).unwrap()
    }

    #[test]
    fn a_check_is_typed_once_and_its_errors_name_the_field() {
        let check = Check::from_raw(&raw("{http_load: p99_ms, is: '< 50', for: 2s}"), "guards[0]", true).unwrap();
        assert!(matches!(check.kind, CheckKind::HttpLoad { figure: LoadFigure::P99Ms, .. }));
        assert_eq!(
            (check.name.as_str(), check.grace, check.interval),
            ("http_load p99_ms", Duration::from_secs(2), DEFAULT_INTERVAL)
        );
        let probe = Check::from_raw(&raw("{probe: {url: 'http://127.0.0.1:1/h'}}"), "g", false).unwrap();
        assert_eq!(probe.threshold(), "200 within 1s");
        for (text, live, said) in [
            ("{is: '< 1'}", true, "g: give exactly one"),
            ("{promql: up, probe: {url: 'http://x'}, is: '< 1'}", true, "g: give exactly one"),
            ("{promql: up}", true, "g.is: a promql check needs"),
            ("{promql: up, is: 'about 3'}", true, "g.is: `about 3` is not a comparison"),
            ("{probe: {url: 'ftp://x'}}", true, "g.probe.url: http"),
            ("{probe: {url: 'http://x'}, is: '< 1'}", true, "g.is: a probe holds"),
            ("{http_load: p95, is: '< 1'}", true, "g.http_load: `p95` is not a live figure"),
            ("{http_load: p99_ms, is: '< 1'}", false, "g.http_load: a steady state"),
            ("{promql: up, is: '< 1', interval: 10ms}", true, "g.interval"),
        ] {
            let err = Check::from_raw(&raw(text), "g", live).unwrap_err();
            assert!(err.starts_with(said), "{text}: {err}");
        }
        assert!(Check::from_flag("{promql: up, is: '== 1', nope: 1}", "--guard").unwrap_err().contains("nope"));
    }
}
