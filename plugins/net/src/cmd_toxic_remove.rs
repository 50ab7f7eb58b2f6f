use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, DataError, ExecContext, JobFuture};

use crate::fault_proxy::Proxies;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ToxicRemoveData {
    /// The proxy the toxic is on.
    pub proxy: String,
    /// The toxic to remove; the connections it acted on go on without it.
    pub name: String,
}

pub struct ToxicRemove(pub Arc<Proxies>);

impl Command for ToxicRemove {
    type Data = ToxicRemoveData;
    type Plan = ToxicRemoveData;
    const NAME: &'static str = "toxic_remove";
    const DESCRIPTION: &'static str = "Removes a toxic from a fault proxy.";

    fn check(&self, data: ToxicRemoveData, _: &ExecContext) -> Result<ToxicRemoveData, DataError> {
        Ok(data)
    }

    fn execute(&self, data: ToxicRemoveData, _: ExecContext) -> JobFuture {
        let proxies = self.0.clone();
        Box::pin(async move { proxies.remove_toxic(&data.proxy, &data.name) })
    }
}
