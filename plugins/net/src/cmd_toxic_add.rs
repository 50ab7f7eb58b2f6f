use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, DataError, ExecContext, JobFuture};

use crate::fault_proxy::toxic::{check_name, check_toxicity, Effect, Stream, Toxic};
use crate::fault_proxy::Proxies;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ToxicAddData {
    /// The proxy to add it to.
    pub proxy: String,
    /// Its name; default `<type>_<stream>`, as Toxiproxy names it.
    pub name: Option<String>,
    /// latency, bandwidth, slow_close, timeout, reset_peer, slicer, limit_data or down; on a `protocol: http`
    /// proxy http_respond, http_delay, http_throttle, http_cut, http_drop, http_header (or down).
    #[serde(rename = "type")]
    pub kind: String,
    /// `downstream` (what the upstream answers) or `upstream` (what the client sends).
    pub stream: Stream,
    /// The share of connections it applies to, from 0 to 1, drawn once per connection (an HTTP fault's: the
    /// share of the requests it matches, drawn per request).
    pub toxicity: f64,
    /// Toxiproxy's attributes: latency/jitter (ms), rate (KB/s), delay (ms; the slicer's in µs), timeout
    /// (ms), average_size/size_variation (bytes), bytes. An HTTP fault's: `match` {method, path_prefix,
    /// path_regex, headers}, and status/body/headers, delay/jitter/before, rate, after, reset, or set/remove.
    pub attributes: Map<String, Value>,
}

impl Default for ToxicAddData {
    fn default() -> Self {
        Self {
            proxy: String::new(),
            name: None,
            kind: String::new(),
            stream: Stream::Downstream,
            toxicity: 1.0,
            attributes: Map::new(),
        }
    }
}

pub struct ToxicAdd(pub Arc<Proxies>);

/// A toxic from its parts, every one checked; the error names the field.
pub(crate) fn toxic_of(
    name: Option<String>,
    kind: &str,
    stream: Stream,
    toxicity: f64,
    attributes: &Map<String, Value>,
) -> Result<Toxic, DataError> {
    let effect = Effect::parse(kind, attributes, "attributes")?;
    if let Effect::Http(fault) = &effect {
        fault.check_stream(stream)?;
    }
    check_toxicity(toxicity)?;
    let name = name.unwrap_or_else(|| format!("{kind}_{}", stream.as_str()));
    check_name(&name, "name")?;
    Ok(Toxic { name, stream, toxicity, effect })
}

impl Command for ToxicAdd {
    type Data = ToxicAddData;
    type Plan = (String, Toxic);
    const NAME: &'static str = "toxic_add";
    const DESCRIPTION: &'static str = "Adds a toxic to a fault proxy, as Toxiproxy does: it acts on open \
        connections too, on the `toxicity` share of them.";

    fn check(&self, data: ToxicAddData, _: &ExecContext) -> Result<(String, Toxic), DataError> {
        let toxic = toxic_of(data.name, &data.kind, data.stream, data.toxicity, &data.attributes)?;
        Ok((data.proxy, toxic))
    }

    fn execute(&self, (proxy, toxic): (String, Toxic), _: ExecContext) -> JobFuture {
        let proxies = self.0.clone();
        Box::pin(async move { proxies.set_toxic(&proxy, toxic, false) })
    }
}
