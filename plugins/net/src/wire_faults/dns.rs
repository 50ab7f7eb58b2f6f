//! The DNS fault's responder: while the fault is in force, the namespace's UDP DNS queries are redirected
//! (nftables, `nft::Verdict::RedirectDns`) to this small server on 127.0.0.1 and ::1. Queries for the fault's
//! names get the fault's answer (none at all, SERVFAIL, NXDOMAIN, REFUSED or a given address); the rest go
//! on to the resolver in /etc/resolv.conf, from a socket whose mark the redirect lets through.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde::{Deserialize, Serialize};
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::CommandError;
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The mark on the responder's own upstream queries, which the redirect lets through ("tarsier" on a keypad).
pub const UPSTREAM_MARK: u32 = 0x7a5e_0001;
/// How long an upstream resolver may take.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(3);
/// Queries forwarded at once; beyond it they are dropped (the client retries).
const MAX_IN_FLIGHT: usize = 256;
/// TTL of a forged address: short, so the fault's end is seen soon by caching resolvers.
const ANSWER_TTL: u32 = 5;

#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DnsAnswer {
    /// No answer at all: the client times out.
    Timeout,
    Servfail,
    Nxdomain,
    Refused,
    /// The `address` given, for A or AAAA queries of its family (other types get an empty answer).
    Address,
}

/// What the responder counted, for the answer and `net/faults`.
#[derive(Default, Debug, Serialize)]
pub struct DnsCounters {
    pub faulted: AtomicU64,
    pub forwarded: AtomicU64,
}

pub struct Responder {
    pub port: u16,
    /// Where queries for other names go on to (none known: they get no answer).
    pub upstream: Option<SocketAddr>,
    pub counters: Arc<DnsCounters>,
    stop: CancellationToken,
}

/// What the responder does to a matching query.
#[derive(Clone, Debug)]
pub struct Rule {
    /// Lower-case names without the final dot; a name matches itself and its subdomains; empty is all.
    pub names: Vec<String>,
    pub answer: DnsAnswer,
    pub address: Option<IpAddr>,
    /// Where other names go; /etc/resolv.conf's first nameserver when `None`.
    pub upstream: Option<SocketAddr>,
}

impl Rule {
    fn matches(&self, name: &str) -> bool {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.names.is_empty()
            || self.names.iter().any(|n| name == *n || name.strip_suffix(n.as_str()).is_some_and(|p| p.ends_with('.')))
    }
}

impl Responder {
    /// Binds 127.0.0.1 on a free port (and ::1 on the same one where the namespace has IPv6) and serves.
    pub async fn start(rule: Rule) -> Result<Responder, CommandError> {
        let v4 = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(|err| CommandError::Failed(format!("binding the DNS responder: {err}")))?;
        let port = v4.local_addr().map_err(|err| CommandError::Failed(err.to_string()))?.port();
        let v6 = UdpSocket::bind((Ipv6Addr::LOCALHOST, port)).await.ok();
        let upstream = rule.upstream.or_else(upstream_resolver);
        let counters = Arc::new(DnsCounters::default());
        let stop = CancellationToken::new();
        let rule = Arc::new(rule);
        let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        for socket in std::iter::once(v4).chain(v6) {
            tokio::spawn(serve(
                Arc::new(socket),
                rule.clone(),
                upstream,
                counters.clone(),
                in_flight.clone(),
                stop.clone(),
            ));
        }
        Ok(Responder { port, upstream, counters, stop })
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The first `nameserver` of /etc/resolv.conf, the one the redirected queries were meant for.
fn upstream_resolver() -> Option<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").ok()?;
    text.lines()
        .filter_map(|line| line.trim().strip_prefix("nameserver"))
        .find_map(|rest| rest.trim().split('%').next()?.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
}

async fn serve(
    socket: Arc<UdpSocket>,
    rule: Arc<Rule>,
    upstream: Option<SocketAddr>,
    counters: Arc<DnsCounters>,
    in_flight: Arc<Semaphore>,
    stop: CancellationToken,
) {
    let mut buffer = vec![0u8; 4096];
    loop {
        let (len, client) = tokio::select! {
            received = socket.recv_from(&mut buffer) => match received {
                Ok(received) => received,
                Err(_) => continue,
            },
            _ = stop.cancelled() => return,
        };
        let Ok(query) = Message::from_vec(&buffer[..len]) else { continue };
        let Some(question) = query.queries().first().cloned() else { continue };
        if rule.matches(&question.name().to_ascii()) {
            counters.faulted.fetch_add(1, Ordering::Relaxed);
            if let Some(reply) = forged(&query, &rule) {
                let _ = socket.send_to(&reply, client).await;
            }
            continue;
        }
        let (Some(upstream), Ok(permit)) = (upstream, in_flight.clone().try_acquire_owned()) else { continue };
        counters.forwarded.fetch_add(1, Ordering::Relaxed);
        let (socket, packet) = (socket.clone(), buffer[..len].to_vec());
        tokio::spawn(async move {
            let _permit = permit;
            if let Some(reply) = forward(upstream, &packet).await {
                let _ = socket.send_to(&reply, client).await;
            }
        });
    }
}

/// The fault's answer to `query`, or `None` for a timeout.
fn forged(query: &Message, rule: &Rule) -> Option<Vec<u8>> {
    let code = match rule.answer {
        DnsAnswer::Timeout => return None,
        DnsAnswer::Servfail => ResponseCode::ServFail,
        DnsAnswer::Nxdomain => ResponseCode::NXDomain,
        DnsAnswer::Refused => ResponseCode::Refused,
        DnsAnswer::Address => ResponseCode::NoError,
    };
    let mut reply = Message::new();
    reply
        .set_id(query.id())
        .set_message_type(MessageType::Response)
        .set_op_code(query.op_code())
        .set_recursion_desired(query.recursion_desired())
        .set_recursion_available(true)
        .set_response_code(code);
    for question in query.queries() {
        reply.add_query(question.clone());
    }
    if let (DnsAnswer::Address, Some(address), Some(question)) = (rule.answer, rule.address, query.queries().first()) {
        let name: Name = question.name().clone();
        match (question.query_type(), address) {
            (RecordType::A, IpAddr::V4(ip)) => {
                reply.add_answer(Record::from_rdata(name, ANSWER_TTL, RData::A(A(ip))));
            }
            (RecordType::AAAA, IpAddr::V6(ip)) => {
                reply.add_answer(Record::from_rdata(name, ANSWER_TTL, RData::AAAA(AAAA(ip))));
            }
            _ => {}
        }
    }
    reply.to_vec().ok()
}

/// Asks the real resolver, from a socket the redirect lets through (its mark).
async fn forward(upstream: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let bind: SocketAddr =
        if upstream.is_ipv4() { (Ipv4Addr::UNSPECIFIED, 0).into() } else { (Ipv6Addr::UNSPECIFIED, 0).into() };
    let socket = std::net::UdpSocket::bind(bind).ok()?;
    nix::sys::socket::setsockopt(&socket, nix::sys::socket::sockopt::Mark, &UPSTREAM_MARK).ok()?;
    socket.set_nonblocking(true).ok()?;
    let socket = UdpSocket::from_std(socket).ok()?;
    socket.send_to(packet, upstream).await.ok()?;
    let mut buffer = vec![0u8; 4096];
    let (len, _) = tokio::time::timeout(UPSTREAM_TIMEOUT, socket.recv_from(&mut buffer)).await.ok()?.ok()?;
    buffer.truncate(len);
    Some(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_matches_itself_and_its_subdomains_only() {
        let rule =
            Rule { names: vec!["db.example".into()], answer: DnsAnswer::Nxdomain, address: None, upstream: None };
        assert!(rule.matches("db.example.") && rule.matches("a.DB.example"));
        assert!(!rule.matches("xdb.example") && !rule.matches("example"));
        let all = Rule { names: vec![], answer: DnsAnswer::Timeout, address: None, upstream: None };
        assert!(all.matches("anything.at.all"));
    }
}
