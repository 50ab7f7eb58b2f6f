use std::net::SocketAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, DataError, ExecContext, HumanDuration, JobFuture};

use crate::fault_proxy::{toxic::check_name, Protocol, Proxies, Spec};
use crate::targets::AllowList;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyCreateData {
    /// The proxy's name, for the other proxy commands and Toxiproxy's API.
    pub name: String,
    /// `ip:port` to listen on; port 0 picks a free one (the answer says which). The IP must be in
    /// limits.proxy_listen (loopback by default).
    pub listen: String,
    /// `host:port` of the dependency; its host must be in limits.dial_targets (loopback by default).
    pub upstream: String,
    /// A disabled proxy refuses connections and closes the open ones (Toxiproxy's `enabled`).
    pub enabled: bool,
    /// The proxy goes after this long (or at `net/proxy_delete`, or `/abort`).
    pub duration: HumanDuration,
    /// Connections at once; more are refused.
    pub max_connections: u32,
    /// `tcp` relays bytes and takes Toxiproxy's toxics; `http` reads HTTP/1.1 requests and answers and takes
    /// the http_* faults (http_respond, http_delay, http_throttle, http_cut, http_drop, http_header).
    pub protocol: Protocol,
}

impl Default for ProxyCreateData {
    fn default() -> Self {
        Self {
            name: String::new(),
            listen: "127.0.0.1:0".into(),
            upstream: String::new(),
            enabled: true,
            duration: HumanDuration::from_secs(600),
            max_connections: 1024,
            protocol: Protocol::Tcp,
        }
    }
}

/// The most connections one proxy may take at once.
const MAX_CONNECTIONS: u32 = 10_000;

/// `host:port`, split; the error names `field`.
pub(crate) fn host_port(text: &str, field: &str) -> Result<(String, u16), DataError> {
    let (host, port) = text
        .rsplit_once(':')
        .filter(|(host, _)| !host.is_empty())
        .ok_or_else(|| DataError::field(field, format!("`{text}` is not host:port")))?;
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| DataError::field(field, format!("`{port}` is not a port")))?;
    Ok((host.trim_matches(['[', ']']).to_owned(), port))
}

pub struct ProxyCreatePlan {
    name: String,
    listen: SocketAddr,
    upstream: (String, u16),
    data: ProxyCreateData,
}

pub struct ProxyCreate(pub Arc<Proxies>);

impl Command for ProxyCreate {
    type Data = ProxyCreateData;
    type Plan = ProxyCreatePlan;
    const NAME: &'static str = "proxy_create";
    const DESCRIPTION: &'static str = "A TCP proxy from `listen` to `upstream` (a dependency of the service), with \
        Toxiproxy's toxics added by `net/toxic_add` (or, with `protocol: http`, faults on HTTP requests); it lives until `duration`, `net/proxy_delete` or `/abort`.";

    fn check(&self, data: ProxyCreateData, ctx: &ExecContext) -> Result<ProxyCreatePlan, DataError> {
        check_name(&data.name, "name")?;
        let listen: SocketAddr =
            data.listen.parse().map_err(|_| DataError::field("listen", format!("`{}` is not ip:port", data.listen)))?;
        let allowed = AllowList::for_proxy_listen(&ctx.limits)?;
        if !allowed.allows_ip(listen.ip()) {
            return Err(allowed.refusal(&listen.ip().to_string()));
        }
        let upstream = host_port(&data.upstream, "upstream")?;
        ctx.limits.check_duration("duration", data.duration)?;
        if data.duration.0.is_zero() {
            return Err(DataError::field("duration", "must be more than 0"));
        }
        if data.max_connections == 0 || data.max_connections > MAX_CONNECTIONS {
            return Err(DataError::field("max_connections", format!("must be from 1 to {MAX_CONNECTIONS}")));
        }
        Ok(ProxyCreatePlan { name: data.name.clone(), listen, upstream, data })
    }

    fn execute(&self, plan: ProxyCreatePlan, ctx: ExecContext) -> JobFuture {
        let proxies = self.0.clone();
        Box::pin(async move {
            let (host, port) = &plan.upstream;
            let address = AllowList::for_proxy_upstream(&ctx.limits)?.resolve(host, *port).await?;
            let spec = Spec {
                name: plan.name,
                listen: plan.listen,
                protocol: plan.data.protocol,
                upstream: (plan.data.upstream.clone(), address),
                enabled: plan.data.enabled,
                duration: plan.data.duration.0,
                max_connections: plan.data.max_connections as usize,
            };
            proxies.create(spec).await
        })
    }
}
