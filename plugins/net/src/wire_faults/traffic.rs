//! Which packets a network fault hits: the `traffic:` block every `net/` fault command takes, checked against
//! the machine (interfaces that exist) and the control plane (ports no fault may touch unless told).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{ControlPlane, DataError};

/// How long a host name in `remote` may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// Bounds on the lists, so one body cannot install a million rules.
const MAX_REMOTES: usize = 256;
/// iptables' multiport match takes 15 ports at most.
const MAX_PORTS: usize = 15;
const MAX_INTERFACES: usize = 16;
/// Linux's interface names are at most 15 bytes (IFNAMSIZ - 1).
const MAX_IFNAME: usize = 15;
/// A fault that cuts the control plane lasts this long at most, so a swarm always comes back by itself.
pub const CUT_CONTROL_PLANE_MAX: Duration = Duration::from_secs(60);

/// Which way a packet goes, seen from this agent's network namespace.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Packets leaving the namespace (what the service sends).
    Egress,
    /// Packets arriving (what the service receives).
    Ingress,
    Both,
}

impl Direction {
    pub fn egress(self) -> bool {
        matches!(self, Direction::Egress | Direction::Both)
    }
    pub fn ingress(self) -> bool {
        matches!(self, Direction::Ingress | Direction::Both)
    }
}

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    All,
    Tcp,
    Udp,
    Icmp,
}

/// The packets a fault hits: all of these must match (an empty list matches everything).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Traffic {
    /// Interfaces, by name; empty is every interface but loopback (`lo`).
    pub interfaces: Vec<String>,
    /// The other end: CIDRs, IPs or host names (resolved once, when the fault is installed; the answer shows
    /// what they resolved to). The destination of an egress packet, the source of an ingress one.
    pub remote: Vec<String>,
    /// Ports at the other end (egress: destination port; ingress: source port).
    pub remote_ports: Vec<u16>,
    /// Ports at this end (egress: source port; ingress: destination port), such as the service's own.
    pub local_ports: Vec<u16>,
    pub protocol: Protocol,
    /// `egress`, `ingress` or `both`; each command has its own default.
    pub direction: Option<Direction>,
}

/// A `traffic:` block checked and resolved: what the engines render into rules.
#[derive(Clone, Debug, Serialize)]
pub struct Selection {
    /// Named interfaces; empty is every one but loopback (or every one, for `net/dns`).
    pub interfaces: Vec<String>,
    pub remote: Vec<IpNet>,
    /// Host names as written, with what each resolved to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub resolved: Vec<(String, Vec<IpAddr>)>,
    pub remote_ports: Vec<u16>,
    pub local_ports: Vec<u16>,
    pub protocol: Protocol,
    pub direction: Direction,
    /// TCP ports left alone (the control plane); empty when the command cuts it.
    pub exempt_ports: BTreeSet<u16>,
}

impl Selection {
    pub fn v4(&self) -> Vec<IpNet> {
        self.remote.iter().filter(|net| matches!(net, IpNet::V4(_))).copied().collect()
    }
    pub fn v6(&self) -> Vec<IpNet> {
        self.remote.iter().filter(|net| matches!(net, IpNet::V6(_))).copied().collect()
    }
    /// The interfaces the fault hits: those named, else every one of the namespace but loopback.
    pub fn hit_interfaces(&self) -> Vec<String> {
        if self.interfaces.is_empty() {
            non_loopback_interfaces()
        } else {
            self.interfaces.clone()
        }
    }

    /// The address families the fault touches: both with no `remote`, else those `remote` names.
    pub fn families(&self) -> (bool, bool) {
        if self.remote.is_empty() {
            return (true, true);
        }
        (!self.v4().is_empty(), !self.v6().is_empty())
    }
}

impl Traffic {
    /// Checks the block's shape and the control plane before anything resolves or runs (a `400` names the
    /// field). `cut` is the command's `cut_control_plane`.
    pub fn check(&self, cut: bool, control: &ControlPlane) -> Result<(), DataError> {
        bounded("traffic.remote", self.remote.len(), MAX_REMOTES)?;
        bounded("traffic.remote_ports", self.remote_ports.len(), MAX_PORTS)?;
        bounded("traffic.local_ports", self.local_ports.len(), MAX_PORTS)?;
        bounded("traffic.interfaces", self.interfaces.len(), MAX_INTERFACES)?;
        for name in &self.interfaces {
            if !is_interface_name(name) {
                return Err(DataError::field("traffic.interfaces", format!("`{}` is no interface name", cap(name))));
            }
            if !all_interfaces().contains(name) {
                return Err(DataError::field(
                    "traffic.interfaces",
                    format!("no interface `{name}` in this network namespace (`ip link` lists them)"),
                ));
            }
        }
        for entry in &self.remote {
            if parse_net(entry).is_none() && !is_host_name(entry) {
                return Err(DataError::field(
                    "traffic.remote",
                    format!("`{}` is neither a CIDR, an IP nor a host name", cap(entry)),
                ));
            }
        }
        let ports_given = !self.remote_ports.is_empty() || !self.local_ports.is_empty();
        if ports_given && self.protocol == Protocol::Icmp {
            return Err(DataError::field("traffic.protocol", "icmp has no ports: drop the ports or pick tcp/udp"));
        }
        if !cut {
            for (field, ports) in
                [("traffic.remote_ports", &self.remote_ports), ("traffic.local_ports", &self.local_ports)]
            {
                if let Some(port) = ports.iter().find(|port| control.ports.contains(port)) {
                    return Err(DataError::field(
                        field,
                        format!(
                            "port {port} is the swarm's control plane (this agent's, its Consul's or a peer's \
                             ports: {}); a fault there would cut /abort and /health. Set cut_control_plane: true \
                             to do it anyway (at most {} s)",
                            join(&control.ports),
                            CUT_CONTROL_PLANE_MAX.as_secs()
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Resolves host names (once, now) and fixes the direction: the selection the engines install.
    pub async fn resolve(
        &self,
        default_direction: Direction,
        cut: bool,
        control: &ControlPlane,
    ) -> Result<Selection, String> {
        let mut remote = Vec::new();
        let mut resolved = Vec::new();
        for entry in &self.remote {
            if let Some(net) = parse_net(entry) {
                remote.push(net);
                continue;
            }
            let lookup = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((entry.as_str(), 0)));
            let ips: Vec<IpAddr> = match lookup.await {
                Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect::<BTreeSet<_>>().into_iter().collect(),
                Ok(Err(err)) => return Err(format!("traffic.remote: `{entry}` does not resolve: {err}")),
                Err(_) => return Err(format!("traffic.remote: `{entry}` did not resolve within 5 s")),
            };
            remote.extend(ips.iter().map(|ip| IpNet::from(*ip)));
            resolved.push((entry.clone(), ips));
        }
        Ok(Selection {
            interfaces: self.interfaces.clone(),
            remote,
            resolved,
            remote_ports: self.remote_ports.clone(),
            local_ports: self.local_ports.clone(),
            protocol: self.protocol,
            direction: self.direction.unwrap_or(default_direction),
            exempt_ports: if cut { BTreeSet::new() } else { control.ports.clone() },
        })
    }
}

fn bounded(field: &str, len: usize, max: usize) -> Result<(), DataError> {
    if len > max {
        return Err(DataError::field(field, format!("{len} entries, at most {max}")));
    }
    Ok(())
}

pub fn parse_net(entry: &str) -> Option<IpNet> {
    entry.parse::<IpNet>().ok().or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from)).map(|net| net.trunc())
}

/// Letters, digits, `.`, `-`, `_`, at most 15 bytes: what the kernel allows, minus what a shell or a rule
/// could read as syntax (`/`, spaces, quotes).
pub fn is_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
}

pub fn is_host_name(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn cap(text: &str) -> String {
    text.chars().take(64).collect()
}

pub fn join<T: std::fmt::Display>(items: impl IntoIterator<Item = T>) -> String {
    items.into_iter().map(|item| item.to_string()).collect::<Vec<_>>().join(", ")
}

/// Every interface of the calling thread's network namespace, by name (netlink, not /sys/class/net: sysfs
/// shows the namespace it was mounted in, which an agent started with `nsenter --net` does not share).
pub fn all_interfaces() -> Vec<String> {
    let Ok(interfaces) = nix::net::if_::if_nameindex() else { return Vec::new() };
    let mut names: Vec<String> = interfaces
        .iter()
        .filter_map(|interface| interface.name().to_str().ok().map(str::to_owned))
        .filter(|name| is_interface_name(name))
        .collect();
    names.sort();
    names
}

/// Every interface of this namespace but loopback.
pub fn non_loopback_interfaces() -> Vec<String> {
    all_interfaces().into_iter().filter(|name| name != "lo").collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_names_are_what_the_kernel_takes_and_nothing_a_rule_could_read() {
        for good in ["eth0", "veth-a.1", "br_x", "ifb-t8080"] {
            assert!(is_interface_name(good), "{good}");
        }
        for bad in ["", "a b", "eth0;", "x\"", "a/b", "0123456789abcdef", "..", "$(id)"] {
            assert!(!is_interface_name(bad), "{bad}");
        }
    }

    #[test]
    fn control_plane_ports_are_refused_unless_cut() {
        let control =
            ControlPlane { public_port: 8080, ports: [8080, 8081, 8500].into_iter().collect(), local_swarm: false };
        let traffic = Traffic { remote_ports: vec![8500], ..Traffic::default() };
        let err = traffic.check(false, &control).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("data.traffic.remote_ports"));
        assert!(err.message.contains("cut_control_plane"), "{}", err.message);
        assert!(traffic.check(true, &control).is_ok());
    }

    #[test]
    fn remotes_are_nets_ips_or_names() {
        let control = ControlPlane::default();
        let ok = Traffic { remote: vec!["10.0.0.0/8".into(), "::1".into(), "db.svc".into()], ..Default::default() };
        assert!(ok.check(false, &control).is_ok());
        let bad = Traffic { remote: vec!["10.0.0.0/8; drop".into()], ..Default::default() };
        assert_eq!(bad.check(false, &control).unwrap_err().field.as_deref(), Some("data.traffic.remote"));
        assert_eq!(parse_net("192.0.2.7/24").map(|n| n.to_string()).as_deref(), Some("192.0.2.0/24"));
    }
}
