use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, DataError, ExecContext, JobFuture};

use crate::fault_proxy::Proxies;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyDeleteData {
    /// The proxy to delete: its listener and every connection through it are closed.
    pub name: String,
}

pub struct ProxyDelete(pub Arc<Proxies>);

impl Command for ProxyDelete {
    type Data = ProxyDeleteData;
    type Plan = String;
    const NAME: &'static str = "proxy_delete";
    const DESCRIPTION: &'static str = "Deletes a fault proxy, closing its listener and its connections.";

    fn check(&self, data: ProxyDeleteData, _: &ExecContext) -> Result<String, DataError> {
        Ok(data.name)
    }

    fn execute(&self, name: String, _: ExecContext) -> JobFuture {
        let proxies = self.0.clone();
        Box::pin(async move { proxies.delete(&name) })
    }
}
