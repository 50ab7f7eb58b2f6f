use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, DataError, ExecContext, HumanDuration, JobFuture};

use crate::wire_faults::nft::Verdict;
use crate::wire_faults::traffic::{parse_net, Direction, Traffic};
use crate::wire_faults::{hold, install_table, Install, Request, WireFaults};

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum PartitionAction {
    /// Packets vanish: connections hang until they time out.
    #[default]
    Drop,
    /// TCP gets a reset and the rest an ICMP "administratively prohibited": connections fail at once.
    Reject,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct PartitionData {
    /// `drop` (packets vanish, connections hang) or `reject` (TCP reset, ICMP prohibited: they fail at once).
    pub action: PartitionAction,
    /// Two lists of CIDRs or IPs splitting a swarm: each agent finds its own half by its addresses and cuts
    /// itself off from the other (in place of `traffic.remote`). An agent in neither half does nothing.
    pub halves: Option<[Vec<String>; 2]>,
    /// How long the fault stays in force; it ends by itself.
    pub duration: HumanDuration,
    /// Which traffic is cut (both directions by default); with no `remote`, everything but the control plane.
    pub traffic: Traffic,
    /// Let the fault hit the swarm's own ports too (capped at 60 s).
    pub cut_control_plane: bool,
}

impl Default for PartitionData {
    fn default() -> Self {
        Self {
            action: PartitionAction::Drop,
            halves: None,
            duration: HumanDuration::from_secs(30),
            traffic: Traffic::default(),
            cut_control_plane: false,
        }
    }
}

pub struct Partition(pub Arc<WireFaults>);

impl Command for Partition {
    type Data = PartitionData;
    type Plan = (Request, PartitionAction, Option<Value>);
    const NAME: &'static str = "partition";
    const DESCRIPTION: &'static str = "Drops or rejects traffic to and from `traffic.remote` (or the other of two \
        `halves`) for `duration`, in this agent's network namespace (nftables; needs NET_ADMIN; the control plane \
        is exempt unless cut_control_plane).";

    fn check(&self, mut data: PartitionData, ctx: &ExecContext) -> Result<Self::Plan, DataError> {
        let mut side = None;
        if let Some(halves) = &data.halves {
            if !data.traffic.remote.is_empty() {
                return Err(DataError::field("halves", "give either halves or traffic.remote, not both"));
            }
            let nets: Vec<Vec<ipnet::IpNet>> = halves
                .iter()
                .enumerate()
                .map(|(i, half)| {
                    half.iter()
                        .map(|entry| {
                            parse_net(entry).ok_or_else(|| {
                                DataError::field(&format!("halves.{i}"), format!("`{entry}` is no CIDR or IP"))
                            })
                        })
                        .collect()
                })
                .collect::<Result<_, _>>()?;
            let own = own_addresses();
            let inside = |i: usize| own.iter().any(|ip| nets[i].iter().any(|net| net.contains(ip)));
            let mine = match (inside(0), inside(1)) {
                (true, true) => {
                    return Err(DataError::field("halves", "this agent's addresses are in both halves"));
                }
                (true, false) => Some(0),
                (false, true) => Some(1),
                (false, false) => None,
            };
            match mine {
                Some(mine) => {
                    data.traffic.remote = halves[1 - mine].clone();
                    side = Some(json!({ "half": mine, "cut_from": halves[1 - mine] }));
                }
                None => side = Some(json!({ "half": null, "own_addresses": own })),
            }
        }
        let request = Request::checked(
            "net/partition",
            (data.duration, data.cut_control_plane),
            data.traffic,
            Direction::Both,
            ctx,
        )?;
        Ok((request, data.action, side))
    }

    fn execute(&self, (request, action, side): Self::Plan, ctx: ExecContext) -> JobFuture {
        if side.as_ref().is_some_and(|side| side["half"].is_null()) {
            return Box::pin(async move {
                Ok(json!({ "in_force": false, "reason": "this agent's addresses are in neither half", "halves": side }))
            });
        }
        let install: Install = Box::new(move |selection, port, id| {
            let verdict = match action {
                PartitionAction::Drop => Verdict::Drop,
                PartitionAction::Reject => Verdict::Reject,
            };
            let (installed, mut details) = install_table(selection, port, id, verdict)?;
            details["action"] = json!(action);
            if let Some(side) = side {
                details["halves"] = side;
            }
            Ok((installed, details))
        });
        Box::pin(hold(self.0.clone(), request, ctx, install))
    }
}

/// This namespace's own addresses (every interface's), to find which half an agent is in.
fn own_addresses() -> Vec<IpAddr> {
    let Ok(addresses) = nix::ifaddrs::getifaddrs() else { return Vec::new() };
    addresses
        .filter_map(|interface| {
            let address = interface.address?;
            if let Some(v4) = address.as_sockaddr_in() {
                return Some(IpAddr::V4(v4.ip()));
            }
            address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
        })
        .collect()
}
