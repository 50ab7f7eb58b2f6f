//! `limits.http_load_targets` and `limits.dial_targets`: which hosts `net/http_load` may send load to and
//! `net/dial` may connect to. Loopback only unless the agent config says otherwise, so a typo never loads
//! somebody else's service, and a stranger's body cannot use the agent to scan a network.

use std::net::IpAddr;

use ipnet::IpNet;
use tarsier_plugin::{DataError, Limits};

pub const DEFAULT_TARGETS: [&str; 3] = ["127.0.0.0/8", "::1/128", "localhost"];

pub struct AllowList {
    nets: Vec<IpNet>,
    names: Vec<String>,
    shown: String,
    /// The config key, for messages.
    limit: &'static str,
    /// The data field refusals are about.
    field: &'static str,
}

impl AllowList {
    /// `net/http_load`'s list, about its `url`.
    pub fn from_limits(limits: &Limits) -> Result<Self, DataError> {
        Self::new(limits.http_load_targets.as_deref(), "limits.http_load_targets", "url")
    }

    /// `net/dial`'s list, about its `address`.
    pub fn for_dial(limits: &Limits) -> Result<Self, DataError> {
        Self::new(limits.dial_targets.as_deref(), "limits.dial_targets", "address")
    }

    /// A fault proxy's upstreams: `limits.dial_targets`, about its `upstream`.
    pub fn for_proxy_upstream(limits: &Limits) -> Result<Self, DataError> {
        Self::new(limits.dial_targets.as_deref(), "limits.dial_targets", "upstream")
    }

    /// The addresses a fault proxy may listen on: `limits.proxy_listen`, about its `listen`.
    pub fn for_proxy_listen(limits: &Limits) -> Result<Self, DataError> {
        Self::new(limits.proxy_listen.as_deref(), "limits.proxy_listen", "listen")
    }

    fn new(list: Option<&[String]>, limit: &'static str, field: &'static str) -> Result<Self, DataError> {
        let entries: Vec<String> = match list {
            Some(list) => list.to_vec(),
            None => DEFAULT_TARGETS.iter().map(|s| s.to_string()).collect(),
        };
        let mut nets = Vec::new();
        let mut names = Vec::new();
        for entry in &entries {
            if let Some(net) = crate::wire_faults::traffic::parse_net(entry) {
                nets.push(net);
            } else {
                names.push(entry.to_ascii_lowercase());
            }
        }
        Ok(Self { nets, names, shown: entries.join(", "), limit, field })
    }

    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(&ip))
    }

    pub fn allows_name(&self, host: &str) -> bool {
        self.names.iter().any(|n| n == &host.to_ascii_lowercase())
    }

    /// `what` (a host as the body wrote it, never what it resolved to) is not allowed.
    pub fn refusal(&self, what: &str) -> DataError {
        DataError::field(
            self.field,
            format!("{what} is not in {} (allowed: {}); add it to the agent config", self.limit, self.shown),
        )
    }

    /// Resolves `host:port` once and returns the address to connect to, if every address it resolves to is
    /// allowed (or the name itself is). The caller connects to that address, never resolving again, so a
    /// name that changes its answer after the check (DNS rebinding) gets nowhere.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<std::net::SocketAddr, DataError> {
        self.resolve_in(host, port, None).await
    }

    /// [`resolve`](Self::resolve), taking only addresses of `family` when one is given (`tcp4`, `udp6`).
    pub async fn resolve_in(
        &self,
        host: &str,
        port: u16,
        family: Option<IpFamily>,
    ) -> Result<std::net::SocketAddr, DataError> {
        let host = host.trim_matches(['[', ']']);
        if let Ok(ip) = host.parse::<IpAddr>() {
            if let Some(family) = family.filter(|f| !f.holds(ip)) {
                return Err(DataError::field(self.field, format!("{ip} is not an {family} address")));
            }
            return if self.allows_ip(ip) { Ok((ip, port).into()) } else { Err(self.refusal(host)) };
        }
        let addrs: Vec<_> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| DataError::field(self.field, format!("cannot resolve `{host}`: {e}")))?
            .collect();
        let first = *addrs.iter().find(|a| family.is_none_or(|f| f.holds(a.ip()))).ok_or_else(|| {
            let family = family.map(|f| format!(" {f}")).unwrap_or_default();
            DataError::field(self.field, format!("`{host}` resolves to no{family} address"))
        })?;
        if self.allows_name(host) || addrs.iter().all(|a| self.allows_ip(a.ip())) {
            Ok(first)
        } else {
            Err(self.refusal(&format!("`{host}` resolves to an address that")))
        }
    }
}

/// IPv4 or IPv6 only, as Go's `tcp4`, `udp6` networks ask.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpFamily {
    V4,
    V6,
}

impl IpFamily {
    pub fn holds(self, ip: IpAddr) -> bool {
        matches!((self, ip), (IpFamily::V4, IpAddr::V4(_)) | (IpFamily::V6, IpAddr::V6(_)))
    }
}

impl std::fmt::Display for IpFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only_by_default() {
        let list = AllowList::from_limits(&Limits::default()).unwrap();
        assert!(list.allows_ip("127.0.0.1".parse().unwrap()));
        assert!(list.allows_ip("127.8.9.10".parse().unwrap()));
        assert!(list.allows_ip("::1".parse().unwrap()));
        assert!(list.allows_name("LOCALHOST"));
        assert!(!list.allows_ip("192.0.2.1".parse().unwrap()));
        assert!(!list.allows_ip("10.0.0.1".parse().unwrap()));
    }

    #[test]
    fn configured_cidrs_and_names() {
        let limits =
            Limits { http_load_targets: Some(vec!["10.1.0.0/16".into(), "api.test".into()]), ..Limits::default() };
        let list = AllowList::from_limits(&limits).unwrap();
        assert!(list.allows_ip("10.1.2.3".parse().unwrap()));
        assert!(!list.allows_ip("127.0.0.1".parse().unwrap()));
        assert!(list.allows_name("api.test"));
    }
}
