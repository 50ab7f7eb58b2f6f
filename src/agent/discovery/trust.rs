//! Discovery is not membership. What Consul or a static list names is a candidate; it becomes a peer only
//! when it proves it holds the swarm key (a Consul registration's `tarsier_member` proof, a static peer's
//! answer to a challenge; `credentials::SwarmKey`), or, for an HTTP/1.1 reference agent, when the operator
//! listed it in `compat.reference_peers`. The rest are refused, and `/peers` says why.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::credentials::SwarmKey;

/// `compat:` in the config.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompatConfig {
    /// HTTP/1.1 agents (the reference Go Tarsier) that may get wave copies: `host:port`, `host`, an IP or a
    /// CIDR. They get copies in the reference's format, never the token and never a signature; they cannot
    /// prove membership, so anything listed here is trusted with the commands' data. Empty by default.
    #[serde(default)]
    pub reference_peers: Vec<String>,
}

/// `compat.reference_peers`, parsed.
#[derive(Debug, Default, Clone)]
pub struct ReferencePeers {
    nets: Vec<IpNet>,
    /// `host` or `host:port`, lower case.
    names: Vec<String>,
}

impl ReferencePeers {
    pub fn new(entries: &[String]) -> anyhow::Result<Self> {
        let mut list = Self::default();
        for entry in entries.iter().map(|e| e.trim()) {
            let entry = entry.strip_prefix("http://").or_else(|| entry.strip_prefix("https://")).unwrap_or(entry);
            if let Ok(net) = entry.parse::<IpNet>() {
                list.nets.push(net);
            } else if let Ok(ip) = entry.trim_matches(['[', ']']).parse::<IpAddr>() {
                list.nets.push(IpNet::from(ip));
            } else if crate::wire::address::is_host(entry) || crate::wire::address::is_host_port(entry) {
                list.names.push(entry.to_ascii_lowercase());
            } else {
                anyhow::bail!("compat.reference_peers: {entry:?} is neither an address, a host nor a CIDR");
            }
        }
        Ok(list)
    }

    /// Whether `address` (`host:port`) is listed: by its host and port, its host, or its IP in a CIDR.
    pub fn lists(&self, address: &str) -> bool {
        let address = address.to_ascii_lowercase();
        let host = address.rsplit_once(':').map_or(address.as_str(), |(host, _)| host);
        if self.names.iter().any(|name| *name == address || name == host) {
            return true;
        }
        host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok_and(|ip| self.nets.iter().any(|net| net.contains(&ip)))
    }
}

/// What decides whether a discovered instance is a peer.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// The swarm key, when the agent has a token; without one (an open, loopback or isolated swarm) nothing
    /// can be proven and discovered agents are taken as they are.
    pub key: Option<SwarmKey>,
    pub reference_peers: ReferencePeers,
    /// The agent speaks TLS to peers: a plaintext reference agent is refused, whatever the list says.
    pub tls: bool,
}

/// A discovered instance that is not a peer, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refused {
    pub id: String,
    pub address: String,
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_peers_match_by_address_host_or_cidr() {
        let list = ReferencePeers::new(&[
            "10.1.0.0/16".into(),
            "192.0.2.7".into(),
            "old-agent:8080".into(),
            "http://legacy".into(),
        ])
        .unwrap();
        for listed in ["10.1.2.3:8080", "192.0.2.7:1", "old-agent:8080", "legacy:9000", "LEGACY:1"] {
            assert!(list.lists(listed), "{listed}");
        }
        for not in ["10.2.0.1:8080", "192.0.2.8:1", "old-agent:8081", "evil:1", "legacy.evil:1"] {
            assert!(!list.lists(not), "{not}");
        }
        assert!(ReferencePeers::new(&["a b".into()]).is_err());
        assert!(!ReferencePeers::default().lists("127.0.0.1:1"), "empty by default");
    }
}
