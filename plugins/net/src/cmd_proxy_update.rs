use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, DataError, ExecContext, JobFuture};

use crate::cmd_proxy_create::host_port;
use crate::fault_proxy::Proxies;
use crate::targets::AllowList;

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProxyUpdateData {
    /// The proxy to change.
    pub name: String,
    /// Enable or disable it (disabled: connections refused, open ones closed).
    pub enabled: Option<bool>,
    /// A new `host:port` upstream for the connections to come (in limits.dial_targets).
    pub upstream: Option<String>,
}

pub struct ProxyUpdate(pub Arc<Proxies>);

impl Command for ProxyUpdate {
    type Data = ProxyUpdateData;
    type Plan = ProxyUpdateData;
    const NAME: &'static str = "proxy_update";
    const DESCRIPTION: &'static str = "Enables or disables a fault proxy, or points it at another upstream.";

    fn check(&self, data: ProxyUpdateData, _: &ExecContext) -> Result<ProxyUpdateData, DataError> {
        if let Some(upstream) = &data.upstream {
            host_port(upstream, "upstream")?;
        }
        Ok(data)
    }

    fn execute(&self, data: ProxyUpdateData, ctx: ExecContext) -> JobFuture {
        let proxies = self.0.clone();
        Box::pin(async move {
            let upstream = match &data.upstream {
                Some(text) => {
                    let (host, port) = host_port(text, "upstream")?;
                    Some((text.clone(), AllowList::for_proxy_upstream(&ctx.limits)?.resolve(&host, port).await?))
                }
                None => None,
            };
            proxies.update(&data.name, data.enabled, upstream)
        })
    }
}
