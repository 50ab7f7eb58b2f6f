use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, CommandError, DataError, ExecContext, HumanDuration, JobFuture, Limits, Reservation};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinSet;

use crate::conns::{Connections, Protocol, Socket};
use crate::targets::AllowList;

const MAX_COUNT: u64 = 100_000;
/// Dials in flight at once, so a large `count` does not exhaust ephemeral ports in a burst.
const DIAL_PARALLELISM: usize = 64;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DialData {
    /// `host:port`, with an IP or a DNS name (`[::1]:80` for IPv6). Its host must be in limits.dial_targets
    /// (loopback by default).
    pub address: String,
    /// `tcp` or `udp` (UDP "connects" a socket to the peer; nothing is sent); `tcp4`, `tcp6`, `udp4`, `udp6`
    /// take one address family only. Go's other networks (`unix*`, `ip*`) are refused: see docs/compatibility.md.
    #[serde(alias = "network")]
    pub protocol: Protocol,
    /// How many connections to open and keep (0 opens none, as in the reference).
    #[serde(alias = "amount")]
    pub count: u64,
    /// Per-connection connect timeout.
    pub timeout: HumanDuration,
}

impl Default for DialData {
    fn default() -> Self {
        Self { address: String::new(), protocol: Protocol::Tcp, count: 1, timeout: HumanDuration::from_secs(5) }
    }
}

/// A checked dial and its share of `limits.max_connections` (one unit per connection).
pub struct DialPlan {
    data: DialData,
    reserved: Reservation,
}

pub struct Dial(pub Arc<Connections>);

impl Command for Dial {
    type Data = DialData;
    type Plan = DialPlan;
    const NAME: &'static str = "dial";
    const DESCRIPTION: &'static str = "Opens `count` TCP or UDP connections to `address` and keeps them open \
        until `net/close` or abort.";

    fn check(&self, data: DialData, ctx: &ExecContext) -> Result<DialPlan, DataError> {
        if let Some(why) = data.protocol.refused_because() {
            return Err(DataError::field("protocol", why));
        }
        if data.address.is_empty() {
            return Err(DataError::field("address", "is required: host:port, such as 127.0.0.1:8080"));
        }
        match data.address.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {}
            _ => {
                return Err(DataError::field(
                    "address",
                    format!("`{}` is not host:port (a port from 0 to 65535 is needed)", data.address),
                ))
            }
        }
        if data.count > MAX_COUNT {
            return Err(DataError::field("count", format!("{} must be at most {MAX_COUNT}", data.count)));
        }
        ctx.limits.check_duration("timeout", data.timeout)?;
        let allow = AllowList::for_dial(&ctx.limits)?;
        if let Some((host, _)) = data.address.rsplit_once(':') {
            if let Ok(ip) = host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
                if !allow.allows_ip(ip) {
                    return Err(allow.refusal(host));
                }
            }
        }
        let reserved = ctx.budgets.connections.reserve("count", data.count)?;
        Ok(DialPlan { data, reserved })
    }

    fn execute(&self, plan: DialPlan, ctx: ExecContext) -> JobFuture {
        let conns = self.0.clone();
        Box::pin(async move {
            let DialPlan { data, reserved } = plan;
            let peer = tokio::select! {
                peer = resolve(&data.address, data.protocol, &ctx.limits) => peer?,
                _ = ctx.cancel.cancelled() => return Err(CommandError::Cancelled),
            };
            let opened = dial_all(&conns, peer, &data, reserved, &ctx).await;
            let mut indexes = Vec::new();
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            for outcome in opened {
                match outcome {
                    Ok(index) => indexes.push(index),
                    Err(err) => *errors.entry(err).or_default() += 1,
                }
            }
            if ctx.cancel.is_cancelled() {
                // Connections opened before the cancel are closed too: a cancelled command keeps nothing.
                conns.discard(&indexes);
                return Err(CommandError::Cancelled);
            }
            if indexes.is_empty() && data.count > 0 {
                return Err(CommandError::Unreachable(format!(
                    "no connection to {} ({peer}) could be opened: {}",
                    data.address,
                    errors.keys().cloned().collect::<Vec<_>>().join("; ")
                )));
            }
            Ok(json!({
                "peer": peer.to_string(),
                "opened": indexes.len(),
                "failed": errors.values().sum::<u64>(),
                "errors": errors,
                "ids": indexes,
                "held": conns.count(),
            }))
        })
    }
}

/// The address to dial: resolved once and checked against `limits.dial_targets`.
async fn resolve(address: &str, protocol: Protocol, limits: &Limits) -> Result<SocketAddr, CommandError> {
    let invalid = || DataError::field("address", format!("`{address}` is not host:port"));
    let (host, port) = address.rsplit_once(':').ok_or_else(invalid)?;
    let port = port.parse::<u16>().map_err(|_| invalid())?;
    Ok(AllowList::for_dial(limits)?.resolve_in(host, port, protocol.family()).await?)
}

/// Dials `count` connections, `DIAL_PARALLELISM` at a time; each one opened takes one unit of `reserved`.
/// A cancel stops the dials in flight at once, and a dial that completes after it is closed, not held.
async fn dial_all(
    conns: &Arc<Connections>,
    peer: SocketAddr,
    data: &DialData,
    mut reserved: Reservation,
    ctx: &ExecContext,
) -> Vec<Result<u64, String>> {
    let permits = Arc::new(tokio::sync::Semaphore::new(DIAL_PARALLELISM));
    let mut set = JoinSet::new();
    for _ in 0..data.count {
        let (conns, permits, cancel, unit) = (conns.clone(), permits.clone(), ctx.cancel.clone(), reserved.split(1));
        let (protocol, timeout) = (data.protocol, data.timeout.0);
        set.spawn(async move {
            let _permit = permits.acquire_owned().await.map_err(|e| e.to_string())?;
            let socket = tokio::select! {
                socket = dial_one(protocol, peer, timeout) => socket?,
                _ = cancel.cancelled() => return Err("cancelled".to_owned()),
            };
            conns.hold(&cancel.flag(), protocol, peer, socket, unit).ok_or_else(|| "cancelled".to_owned())
        });
    }
    let mut outcomes = Vec::with_capacity(data.count as usize);
    while let Some(joined) = set.join_next().await {
        outcomes.push(joined.unwrap_or_else(|err| Err(format!("dial task failed: {err}"))));
    }
    outcomes
}

async fn dial_one(protocol: Protocol, peer: SocketAddr, timeout: Duration) -> Result<Socket, String> {
    if !protocol.is_udp() {
        match tokio::time::timeout(timeout, TcpStream::connect(peer)).await {
            Ok(Ok(stream)) => Ok(Socket::Tcp(stream)),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err(format!("connect timed out after {}", HumanDuration(timeout))),
        }
    } else {
        {
            let bind: SocketAddr = if peer.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }
                .parse()
                .map_err(|e: std::net::AddrParseError| e.to_string())?;
            let socket = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
            socket.connect(peer).await.map_err(|e| e.to_string())?;
            Ok(Socket::Udp(socket))
        }
    }
}
