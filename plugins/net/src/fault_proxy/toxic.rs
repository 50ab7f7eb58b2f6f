//! Toxics as Toxiproxy names and shapes them (`{name, type, stream, toxicity, attributes}`), so a test moves
//! over unchanged: `latency` (+ `jitter`), `bandwidth`, `slow_close`, `timeout`, `reset_peer`, `slicer`,
//! `limit_data`, and `down` (the proxy refuses and drops connections while it is in force). Every attribute is
//! checked and bounded here; a bad one is a 400 naming it.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::DataError;

use super::http_fault::HttpFault;

/// Which way a toxic acts: on what the client sends (`upstream`) or on what the upstream answers
/// (`downstream`, Toxiproxy's default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Upstream,
    #[default]
    Downstream,
}

impl Stream {
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Upstream => "upstream",
            Stream::Downstream => "downstream",
        }
    }
}

/// A toxic's effect, with its attributes checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Each chunk goes `latency` (+- `jitter`, uniform) after it arrived.
    Latency { latency: Duration, jitter: Duration },
    /// At most `rate` KB/s (1 KB = 1,000 bytes, as Toxiproxy counts).
    Bandwidth { rate_kb: u64 },
    /// The close is passed on `delay` after it came.
    SlowClose { delay: Duration },
    /// Nothing goes through; the connection is closed after `timeout` (0: held open, silent, until the toxic
    /// goes).
    Timeout { timeout: Duration },
    /// The connection is reset (RST) after `timeout`.
    ResetPeer { timeout: Duration },
    /// Data is cut into pieces of `average_size` +- `size_variation` bytes, `delay` apart.
    Slicer { average_size: usize, size_variation: usize, delay: Duration },
    /// The connection is closed once `bytes` went through.
    LimitData { bytes: u64 },
    /// New connections are refused and open ones closed while it is in force.
    Down,
    /// An HTTP-aware fault (a proxy with `protocol: http` only), drawn per request.
    Http(Box<HttpFault>),
}

impl Effect {
    /// Whether it needs a proxy that reads HTTP.
    pub fn is_http(&self) -> bool {
        matches!(self, Effect::Http(_))
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Effect::Latency { .. } => "latency",
            Effect::Bandwidth { .. } => "bandwidth",
            Effect::SlowClose { .. } => "slow_close",
            Effect::Timeout { .. } => "timeout",
            Effect::ResetPeer { .. } => "reset_peer",
            Effect::Slicer { .. } => "slicer",
            Effect::LimitData { .. } => "limit_data",
            Effect::Down => "down",
            Effect::Http(fault) => fault.type_name(),
        }
    }

    /// The attributes as Toxiproxy writes them (milliseconds, bytes, KB/s, microseconds for the slicer).
    pub fn attributes(&self) -> Value {
        let ms = |d: &Duration| d.as_millis() as u64;
        match self {
            Effect::Latency { latency, jitter } => json!({"latency": ms(latency), "jitter": ms(jitter)}),
            Effect::Bandwidth { rate_kb } => json!({"rate": rate_kb}),
            Effect::SlowClose { delay } => json!({"delay": ms(delay)}),
            Effect::Timeout { timeout } | Effect::ResetPeer { timeout } => json!({"timeout": ms(timeout)}),
            Effect::Slicer { average_size, size_variation, delay } => {
                json!({"average_size": average_size, "size_variation": size_variation, "delay": delay.as_micros() as u64})
            }
            Effect::LimitData { bytes } => json!({"bytes": bytes}),
            Effect::Down => json!({}),
            Effect::Http(fault) => fault.attributes(),
        }
    }

    /// `type` and `attributes` as a body gives them; `field` names the attributes in errors.
    pub fn parse(kind: &str, attributes: &Map<String, Value>, field: &str) -> Result<Self, DataError> {
        if kind.starts_with("http_") {
            return Ok(Effect::Http(Box::new(HttpFault::parse(kind, attributes, field)?)));
        }
        let number = |name: &str, max: u64| Ok(whole_number(attributes, name, max, field)?.unwrap_or(0));
        let known: &[&str] = match kind {
            "latency" => &["latency", "jitter"],
            "bandwidth" => &["rate"],
            "slow_close" => &["delay"],
            "timeout" | "reset_peer" => &["timeout"],
            "slicer" => &["average_size", "size_variation", "delay"],
            "limit_data" => &["bytes"],
            "down" => &[],
            other => {
                return Err(DataError::field(
                    "type",
                    format!(
                        "`{other}` is not a toxic: latency, bandwidth, slow_close, timeout, reset_peer, slicer, \
                         limit_data, down, or on a `protocol: http` proxy {}",
                        super::http_fault::TYPES.join(", ")
                    ),
                ))
            }
        };
        if let Some(unknown) = attributes.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(DataError::field(
                &format!("{field}.{unknown}"),
                format!("not an attribute of a {kind} toxic (it takes: {})", known.join(", ")),
            ));
        }
        // An hour is the longest wait any toxic takes: longer is a typo, and would hold a connection for it.
        const HOUR_MS: u64 = 3_600_000;
        let millis = |name: &str| number(name, HOUR_MS).map(Duration::from_millis);
        Ok(match kind {
            "latency" => {
                let (latency, jitter) = (millis("latency")?, millis("jitter")?);
                if jitter > latency {
                    return Err(DataError::field(&format!("{field}.jitter"), "must not be more than `latency`"));
                }
                Effect::Latency { latency, jitter }
            }
            "bandwidth" => {
                let rate_kb = number("rate", 10_000_000)?;
                if rate_kb == 0 {
                    return Err(DataError::field(&format!("{field}.rate"), "must be at least 1 (KB/s)"));
                }
                Effect::Bandwidth { rate_kb }
            }
            "slow_close" => Effect::SlowClose { delay: millis("delay")? },
            "timeout" => Effect::Timeout { timeout: millis("timeout")? },
            "reset_peer" => Effect::ResetPeer { timeout: millis("timeout")? },
            "slicer" => {
                let average_size = number("average_size", 1 << 20)? as usize;
                let size_variation = number("size_variation", 1 << 20)? as usize;
                if average_size == 0 {
                    return Err(DataError::field(&format!("{field}.average_size"), "must be at least 1 byte"));
                }
                if size_variation >= average_size {
                    return Err(DataError::field(
                        &format!("{field}.size_variation"),
                        "must be less than `average_size`",
                    ));
                }
                Effect::Slicer {
                    average_size,
                    size_variation,
                    delay: Duration::from_micros(number("delay", HOUR_MS * 1000)?),
                }
            }
            "limit_data" => Effect::LimitData { bytes: number("bytes", u64::MAX >> 1)? },
            _ => Effect::Down,
        })
    }
}

/// Attribute `name` as a whole number from 0 to `max` (`50` or `50.0`, as JSON clients write numbers); `None`
/// when absent. The error names `field.name`. Every toxic and HTTP fault reads its numbers so.
pub(super) fn whole_number(
    attributes: &Map<String, Value>,
    name: &str,
    max: u64,
    field: &str,
) -> Result<Option<u64>, DataError> {
    attributes
        .get(name)
        .map(|value| {
            value
                .as_u64()
                .or_else(|| value.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0).map(|f| f as u64))
                .filter(|n| *n <= max)
                .ok_or_else(|| DataError::field(&format!("{field}.{name}"), format!("a whole number from 0 to {max}")))
        })
        .transpose()
}

/// A toxic on a proxy.
#[derive(Debug, Clone, PartialEq)]
pub struct Toxic {
    pub name: String,
    pub stream: Stream,
    /// The share of connections it applies to, drawn once per connection.
    pub toxicity: f64,
    pub effect: Effect,
}

impl Toxic {
    /// As Toxiproxy's API shows a toxic.
    pub fn describe(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.effect.type_name(),
            "stream": self.stream.as_str(),
            "toxicity": self.toxicity,
            "attributes": self.effect.attributes(),
        })
    }
}

/// Checks a toxic's name (Toxiproxy's default is `<type>_<stream>`).
pub fn check_name(name: &str, field: &str) -> Result<(), DataError> {
    let fits = (1..=64).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b));
    if fits {
        Ok(())
    } else {
        Err(DataError::field(field, "1 to 64 characters of A-Z, a-z, 0-9, `_`, `-` and `.`"))
    }
}

pub fn check_toxicity(toxicity: f64) -> Result<(), DataError> {
    if (0.0..=1.0).contains(&toxicity) {
        Ok(())
    } else {
        Err(DataError::field("toxicity", format!("{toxicity} is not between 0 and 1")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attrs(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn toxics_read_toxiproxys_attributes_and_refuse_bad_ones_by_name() {
        let latency = Effect::parse("latency", &attrs(json!({"latency": 50, "jitter": 10})), "attributes").unwrap();
        assert_eq!(latency, Effect::Latency { latency: Duration::from_millis(50), jitter: Duration::from_millis(10) });
        assert_eq!(latency.attributes(), json!({"latency": 50, "jitter": 10}));
        for (kind, attributes, field) in [
            ("latency", json!({"latency": 5, "jitter": 10}), "attributes.jitter"),
            ("latency", json!({"latency": -1}), "attributes.latency"),
            ("bandwidth", json!({"rate": 0}), "attributes.rate"),
            ("slicer", json!({"average_size": 10, "size_variation": 10}), "attributes.size_variation"),
            ("timeout", json!({"latency": 1}), "attributes.latency"),
            ("poison", json!({}), "type"),
        ] {
            let err = Effect::parse(kind, &attrs(attributes), "attributes").unwrap_err();
            assert_eq!(err.field.as_deref(), Some(format!("data.{field}").as_str()), "{kind}: {err:?}");
        }
    }
}
