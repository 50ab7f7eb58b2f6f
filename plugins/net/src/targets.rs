//! `limits.http_load_targets`: which hosts `net/http_load` may send load to. Loopback only unless the agent
//! config says otherwise, so a typo in a URL never loads somebody else's service.

use std::net::IpAddr;

use ipnet::IpNet;
use tarsier_plugin::{DataError, Limits};

pub const DEFAULT_TARGETS: [&str; 3] = ["127.0.0.0/8", "::1/128", "localhost"];

pub struct AllowList {
    nets: Vec<IpNet>,
    names: Vec<String>,
    shown: String,
}

impl AllowList {
    pub fn from_limits(limits: &Limits) -> Result<Self, DataError> {
        let entries: Vec<String> = match &limits.http_load_targets {
            Some(list) => list.clone(),
            None => DEFAULT_TARGETS.iter().map(|s| s.to_string()).collect(),
        };
        let mut nets = Vec::new();
        let mut names = Vec::new();
        for entry in &entries {
            if let Ok(net) = entry.parse::<IpNet>() {
                nets.push(net);
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                nets.push(IpNet::from(ip));
            } else {
                names.push(entry.to_ascii_lowercase());
            }
        }
        Ok(Self { nets, names, shown: entries.join(", ") })
    }

    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        self.nets.iter().any(|net| net.contains(&ip))
    }

    pub fn allows_name(&self, host: &str) -> bool {
        self.names.iter().any(|n| n == &host.to_ascii_lowercase())
    }

    pub fn refusal(&self, what: &str) -> DataError {
        DataError::field(
            "url",
            format!("{what} is not in limits.http_load_targets (allowed: {}); add it to the agent config", self.shown),
        )
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
