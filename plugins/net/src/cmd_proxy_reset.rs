use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, DataError, ExecContext, JobFuture};

use crate::fault_proxy::Proxies;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyResetData {}

pub struct ProxyReset(pub Arc<Proxies>);

impl Command for ProxyReset {
    type Data = ProxyResetData;
    type Plan = ();
    const NAME: &'static str = "proxy_reset";
    const DESCRIPTION: &'static str = "Enables every fault proxy and removes every toxic (Toxiproxy's reset).";

    fn check(&self, _: ProxyResetData, _: &ExecContext) -> Result<(), DataError> {
        Ok(())
    }

    fn execute(&self, _: (), _: ExecContext) -> JobFuture {
        let proxies = self.0.clone();
        Box::pin(async move { Ok(json!({ "reset": proxies.reset() })) })
    }
}
