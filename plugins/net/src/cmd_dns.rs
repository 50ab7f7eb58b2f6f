use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, DataError, ExecContext, HumanDuration, JobFuture};

use crate::wire_faults::dns::{DnsAnswer, Responder, Rule, UPSTREAM_MARK};
use crate::wire_faults::nft::{self, Verdict};
use crate::wire_faults::traffic::{Direction, Protocol, Traffic};
use crate::wire_faults::{hold, Install, Installed, Request, WireFaults};

const MAX_NAMES: usize = 64;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DnsData {
    /// Names whose queries are faulted (each with its subdomains); empty is every name. Others are answered by
    /// the real resolver as before.
    pub names: Vec<String>,
    /// `timeout` (no answer), `servfail`, `nxdomain`, `refused`, or `address` (answer with `address`).
    pub answer: DnsAnswer,
    /// The address `answer: address` gives (A for IPv4, AAAA for IPv6).
    pub address: Option<IpAddr>,
    /// Where queries for other names go on to (`ip:port`); the first `nameserver` of /etc/resolv.conf
    /// when not given. Set it where that resolver is only reachable through a DNAT of its own (Kubernetes).
    pub upstream: Option<std::net::SocketAddr>,
    /// How long the fault stays in force; it ends by itself.
    pub duration: HumanDuration,
    /// Only `interfaces` and `remote` (the resolvers whose queries are caught) apply; empty is every interface,
    /// loopback included (Docker's 127.0.0.11 and systemd's 127.0.0.53 are on it).
    pub traffic: Traffic,
}

impl Default for DnsData {
    fn default() -> Self {
        Self {
            names: Vec::new(),
            answer: DnsAnswer::Timeout,
            address: None,
            upstream: None,
            duration: HumanDuration::from_secs(30),
            traffic: Traffic::default(),
        }
    }
}

pub struct Dns(pub Arc<WireFaults>);

impl Command for Dns {
    type Data = DnsData;
    type Plan = (Request, Rule);
    const NAME: &'static str = "dns";
    const DESCRIPTION: &'static str = "Makes DNS queries (UDP) for `names` (or all) time out, fail or resolve to \
        `address` for `duration`, in this agent's network namespace (needs NET_ADMIN).";

    fn check(&self, data: DnsData, ctx: &ExecContext) -> Result<Self::Plan, DataError> {
        if data.names.len() > MAX_NAMES {
            return Err(DataError::field("names", format!("{} names, at most {MAX_NAMES}", data.names.len())));
        }
        let mut names = Vec::new();
        for name in &data.names {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            if !crate::wire_faults::traffic::is_host_name(&name) {
                return Err(DataError::field(
                    "names",
                    format!("`{}` is no DNS name", name.chars().take(64).collect::<String>()),
                ));
            }
            names.push(name);
        }
        match (data.answer, data.address) {
            (DnsAnswer::Address, None) => return Err(DataError::field("address", "answer: address needs an address")),
            (DnsAnswer::Address, Some(_)) | (_, None) => {}
            (_, Some(_)) => return Err(DataError::field("address", "only answer: address takes an address")),
        }
        let traffic = &data.traffic;
        if !traffic.remote_ports.is_empty() || !traffic.local_ports.is_empty() || traffic.protocol != Protocol::All {
            return Err(DataError::field("traffic", "a DNS fault takes only traffic.interfaces and traffic.remote"));
        }
        if traffic.direction.is_some_and(|d| d != Direction::Egress) {
            return Err(DataError::field(
                "traffic.direction",
                "a DNS fault catches the queries this namespace sends: egress",
            ));
        }
        let request = Request::checked("net/dns", (data.duration, false), data.traffic, Direction::Egress, ctx)?;
        Ok((request, Rule { names, answer: data.answer, address: data.address, upstream: data.upstream }))
    }

    fn execute(&self, (request, rule): Self::Plan, ctx: ExecContext) -> JobFuture {
        let faults = self.0.clone();
        Box::pin(async move {
            let responder = Responder::start(rule.clone()).await?;
            let install: Install = Box::new(move |selection, port, id| {
                let table = nft::table_name(port, id);
                let redirect = Verdict::RedirectDns { port: responder.port, mark: UPSTREAM_MARK };
                let rules = nft::render(&table, selection, redirect, &[]);
                nft::install(&rules)?;
                let details = json!({
                    "names": if rule.names.is_empty() { json!("every name") } else { json!(rule.names) },
                    "answer": rule.answer,
                    "address": rule.address,
                    "responder": format!("127.0.0.1:{}", responder.port),
                    "upstream": responder.upstream,
                    "nft_table": table,
                    "rules": rules,
                });
                Ok((Installed::Dns { table, responder }, details))
            });
            hold(faults, request, ctx, install).await
        })
    }
}
