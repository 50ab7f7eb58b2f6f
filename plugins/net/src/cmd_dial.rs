use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, CommandError, DataError, ExecContext, HumanDuration, JobFuture, Limits};
use tokio::net::{TcpStream, UdpSocket};
use tokio::task::JoinSet;

use crate::conns::{Connections, Protocol, Socket};

const MAX_COUNT: u64 = 100_000;
/// Dials in flight at once, so a large `count` does not exhaust ephemeral ports in a burst.
const DIAL_PARALLELISM: usize = 64;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DialData {
    /// `host:port`, with an IP or a DNS name (`[::1]:80` for IPv6).
    pub address: String,
    /// `tcp` or `udp` (UDP "connects" a socket to the peer; nothing is sent).
    #[serde(alias = "network")]
    pub protocol: Protocol,
    /// How many connections to open and keep.
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

pub struct Dial(pub Arc<Connections>);

impl Command for Dial {
    type Data = DialData;
    const NAME: &'static str = "dial";
    const DESCRIPTION: &'static str = "Opens `count` TCP or UDP connections to `address` and keeps them open \
        until `net/close` or abort.";

    fn check(&self, data: &DialData, limits: &Limits) -> Result<(), DataError> {
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
        if data.count == 0 || data.count > MAX_COUNT {
            return Err(DataError::field("count", format!("{} must be between 1 and {MAX_COUNT}", data.count)));
        }
        limits.check_duration("timeout", data.timeout)?;
        Limits::check_budget(
            "count",
            "connections",
            "limits.max_connections",
            limits.max_connections,
            self.0.count(),
            data.count,
            |n| n.to_string(),
        )
    }

    fn execute(&self, data: DialData, ctx: ExecContext) -> JobFuture {
        let conns = self.0.clone();
        Box::pin(async move {
            let peer = resolve(&data.address).await?;
            let opened = dial_all(&conns, peer, &data, &ctx).await;
            let mut indexes = Vec::new();
            let mut errors: BTreeMap<String, u64> = BTreeMap::new();
            for outcome in opened {
                match outcome {
                    Ok(index) => indexes.push(index),
                    Err(err) => *errors.entry(err).or_default() += 1,
                }
            }
            if indexes.is_empty() && !ctx.cancel.is_cancelled() {
                return Err(CommandError::Refused(format!(
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
                "indexes": indexes,
                "held": conns.count(),
            }))
        })
    }
}

async fn resolve(address: &str) -> Result<SocketAddr, CommandError> {
    let mut addrs = tokio::net::lookup_host(address).await.map_err(|err| {
        CommandError::Invalid(DataError::field("address", format!("cannot resolve `{address}`: {err}")))
    })?;
    addrs.next().ok_or_else(|| {
        CommandError::Invalid(DataError::field("address", format!("`{address}` resolves to no address")))
    })
}

async fn dial_all(
    conns: &Arc<Connections>,
    peer: SocketAddr,
    data: &DialData,
    ctx: &ExecContext,
) -> Vec<Result<u64, String>> {
    let permits = Arc::new(tokio::sync::Semaphore::new(DIAL_PARALLELISM));
    let mut set = JoinSet::new();
    for _ in 0..data.count {
        let (conns, permits, cancel) = (conns.clone(), permits.clone(), ctx.cancel.clone());
        let (protocol, timeout) = (data.protocol, data.timeout.0);
        set.spawn(async move {
            let _permit = permits.acquire_owned().await.map_err(|e| e.to_string())?;
            if cancel.is_cancelled() {
                return Err("cancelled".to_owned());
            }
            let socket = dial_one(protocol, peer, timeout).await?;
            Ok(conns.hold(protocol, peer, socket))
        });
    }
    let mut outcomes = Vec::with_capacity(data.count as usize);
    while let Some(joined) = set.join_next().await {
        outcomes.push(joined.unwrap_or_else(|err| Err(format!("dial task failed: {err}"))));
    }
    outcomes
}

async fn dial_one(protocol: Protocol, peer: SocketAddr, timeout: Duration) -> Result<Socket, String> {
    match protocol {
        Protocol::Tcp => match tokio::time::timeout(timeout, TcpStream::connect(peer)).await {
            Ok(Ok(stream)) => Ok(Socket::Tcp(stream)),
            Ok(Err(err)) => Err(err.to_string()),
            Err(_) => Err(format!("connect timed out after {}", HumanDuration(timeout))),
        },
        Protocol::Udp => {
            let bind: SocketAddr = if peer.is_ipv6() { "[::]:0" } else { "0.0.0.0:0" }
                .parse()
                .map_err(|e: std::net::AddrParseError| e.to_string())?;
            let socket = UdpSocket::bind(bind).await.map_err(|e| e.to_string())?;
            socket.connect(peer).await.map_err(|e| e.to_string())?;
            Ok(Socket::Udp(socket))
        }
    }
}
