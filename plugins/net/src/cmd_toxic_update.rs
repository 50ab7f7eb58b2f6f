use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, DataError, ExecContext, JobFuture};

use crate::cmd_toxic_add::toxic_of;
use crate::fault_proxy::Proxies;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToxicUpdateData {
    /// The proxy the toxic is on.
    pub proxy: String,
    /// The toxic to change.
    pub name: String,
    /// A new share of connections, from 0 to 1.
    pub toxicity: Option<f64>,
    /// Attributes to change; the others keep their values.
    #[serde(default)]
    pub attributes: Map<String, Value>,
}

pub struct ToxicUpdate(pub Arc<Proxies>);

impl Command for ToxicUpdate {
    type Data = ToxicUpdateData;
    type Plan = ToxicUpdateData;
    const NAME: &'static str = "toxic_update";
    const DESCRIPTION: &'static str = "Changes a toxic's toxicity or attributes (the ones given; the rest stay).";

    fn check(&self, data: ToxicUpdateData, _: &ExecContext) -> Result<ToxicUpdateData, DataError> {
        Ok(data)
    }

    fn execute(&self, data: ToxicUpdateData, _: ExecContext) -> JobFuture {
        let proxies = self.0.clone();
        Box::pin(async move {
            let current = proxies.toxic(&data.proxy, &data.name)?;
            let mut attributes = current.effect.attributes().as_object().cloned().unwrap_or_default();
            attributes.extend(data.attributes);
            let toxic = toxic_of(
                Some(current.name.clone()),
                current.effect.type_name(),
                current.stream,
                data.toxicity.unwrap_or(current.toxicity),
                &attributes,
            )?;
            proxies.set_toxic(&data.proxy, toxic, true)
        })
    }
}
