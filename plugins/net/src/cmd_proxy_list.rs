use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, DataError, ExecContext, JobFuture};

use crate::fault_proxy::Proxies;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxiesData {}

pub struct ProxyList(pub Arc<Proxies>);

impl Command for ProxyList {
    type Data = ProxiesData;
    type Plan = ();
    const NAME: &'static str = "proxies";
    const DESCRIPTION: &'static str =
        "Lists the fault proxies: listen and upstream addresses, enabled or not, toxics, time left, and counts.";

    fn check(&self, _: ProxiesData, _: &ExecContext) -> Result<(), DataError> {
        Ok(())
    }

    fn execute(&self, _: (), _: ExecContext) -> JobFuture {
        let proxies = self.0.clone();
        Box::pin(async move { Ok(json!({ "proxies": proxies.list() })) })
    }
}
