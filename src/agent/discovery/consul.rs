//! Consul discovery on its documented HTTP API, with reqwest (three endpoints do not earn a client crate:
//! the maintained one, rs-consul, brings a second HTTP stack of its own).
//!
//! The agent registers itself with an HTTP check on its service port's `/health`, keeps its peer list from
//! `/v1/health/service/NAME` with blocking queries (peers are the instances whose checks all pass, so a
//! peer whose check fails drops out; every registered instance stays a member for Prometheus), keeps its
//! last list while Consul is away (one log line per outage, backoff), registers again once Consul is back, and
//! deregisters at shutdown.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;
use tarsier_plugin::HumanDuration;
use tokio_util::sync::CancellationToken;

use super::{Leave, Peer, PeerKind, PeerList, PeerSource};

const MAX_BACKOFF: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsulConfig {
    /// Consul's HTTP API: `127.0.0.1:8500` or a URL.
    pub address: String,
    /// The service name every agent registers under.
    #[serde(default = "default_service")]
    pub service: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// How often Consul checks `/health`.
    #[serde(default = "default_check_interval")]
    pub check_interval: HumanDuration,
    /// Consul removes an agent whose check stays critical this long (Consul's minimum is 1m). Until then it
    /// is no peer (waves use passing agents only) but stays in `/sd`, so Prometheus shows it down and
    /// `TarsierAgentsDown` can fire.
    #[serde(default = "default_deregister_after")]
    pub deregister_after: HumanDuration,
    /// Longest wait of one blocking query.
    #[serde(default = "default_wait")]
    pub wait: HumanDuration,
    /// ACL token, if Consul needs one.
    pub token: Option<String>,
    /// Register `Address` as `http://host` (the scheme included), as the reference Tarsier did: its agents
    /// build `Address:Port/exec` from Consul and can then reach this one. Off by default, as it costs Consul
    /// DNS and every other reader of `ServiceAddress` a URL where a host is expected; on when the config is
    /// the reference's own (`consul:` at the top level).
    #[serde(default)]
    pub register_scheme: bool,
}

fn default_service() -> String {
    "tarsier".into()
}
fn default_check_interval() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn default_deregister_after() -> HumanDuration {
    HumanDuration::from_secs(600)
}
fn default_wait() -> HumanDuration {
    HumanDuration::from_secs(30)
}

impl ConsulConfig {
    pub fn new(address: String) -> Self {
        Self {
            address,
            service: default_service(),
            tags: Vec::new(),
            check_interval: default_check_interval(),
            deregister_after: default_deregister_after(),
            wait: default_wait(),
            token: None,
            register_scheme: false,
        }
    }

    fn base_url(&self) -> String {
        let address = self.address.trim_end_matches('/');
        if address.contains("://") {
            address.to_owned()
        } else {
            format!("http://{address}")
        }
    }
}

/// This agent as Consul should know it.
#[derive(Debug, Clone)]
pub struct Registration {
    pub id: String,
    pub host: String,
    pub public_port: u16,
    pub public_tls: bool,
    pub service_port: u16,
    pub service_tls: bool,
}

pub struct ConsulPeers {
    config: ConsulConfig,
    me: Registration,
    http: reqwest::Client,
    list: RwLock<Arc<[Peer]>>,
    /// Every registered instance but this one, passing or not (for `/sd`).
    members: RwLock<Arc<[Peer]>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HealthEntry {
    node: NodeEntry,
    service: ServiceEntry,
    #[serde(default)]
    checks: Vec<CheckEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CheckEntry {
    status: String,
}

/// What one health query found: the passing peers, and every registered instance.
struct Found {
    peers: Vec<Peer>,
    members: Vec<Peer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NodeEntry {
    address: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ServiceEntry {
    #[serde(rename = "ID")]
    id: String,
    address: String,
    port: u16,
    #[serde(default)]
    meta: Option<HashMap<String, String>>,
}

impl ConsulPeers {
    /// Starts registering and watching in the background until `shutdown`.
    pub fn start(
        config: ConsulConfig,
        me: Registration,
        http: reqwest::Client,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let peers =
            Arc::new(Self { config, me, http, list: RwLock::new(Arc::new([])), members: RwLock::new(Arc::new([])) });
        tokio::spawn(peers.clone().watch(shutdown));
        peers
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.config.base_url()));
        match &self.config.token {
            Some(token) => builder.header("X-Consul-Token", token),
            None => builder,
        }
    }

    async fn register(&self) -> Result<(), String> {
        let me = &self.me;
        let scheme = if me.service_tls { "https" } else { "http" };
        let address = match (self.config.register_scheme, me.public_tls) {
            (false, _) => me.host.clone(),
            (true, false) => format!("http://{}", me.host),
            (true, true) => format!("https://{}", me.host),
        };
        // `proto` tells agents how to speak to this one: an instance without it (a reference agent) gets
        // HTTP/1.1 and the reference's wave format.
        let proto = if me.public_tls { "h2" } else { "h2c" };
        let body = json!({
            "ID": me.id,
            "Name": self.config.service,
            "Address": address,
            "Port": me.public_port,
            "Tags": self.config.tags,
            "Meta": {
                "service_port": me.service_port.to_string(),
                "version": env!("CARGO_PKG_VERSION"),
                "proto": proto,
            },
            "Check": {
                "HTTP": format!("{scheme}://{}:{}/health", me.host, me.service_port),
                "Interval": self.config.check_interval.to_string(),
                "Timeout": self.config.check_interval.to_string(),
                "TLSSkipVerify": true,
                "DeregisterCriticalServiceAfter": self.config.deregister_after.to_string(),
            },
        });
        let response = self
            .request(reqwest::Method::PUT, "/v1/agent/service/register")
            .timeout(Duration::from_secs(5))
            .json(&body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!(
                "register answered {}: {}",
                response.status(),
                response.text().await.unwrap_or_default()
            ));
        }
        tracing::info!(id = %me.id, consul = %self.config.address, "registered in Consul");
        Ok(())
    }

    /// One blocking query; returns the peers and members, and Consul's index.
    async fn query(&self, index: u64) -> Result<(Found, u64), String> {
        let wait = self.config.wait.0;
        let path = format!("/v1/health/service/{}?index={index}&wait={}s", self.config.service, wait.as_secs().max(1));
        let response = self
            .request(reqwest::Method::GET, &path)
            .timeout(wait + Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("health query answered {}", response.status()));
        }
        let new_index = response
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let entries: Vec<HealthEntry> = response.json().await.map_err(|e| e.to_string())?;
        let mut found = Found { peers: Vec::new(), members: Vec::new() };
        for e in entries.into_iter().filter(|e| e.service.id != self.me.id) {
            let passing = e.checks.iter().all(|c| c.status == "passing");
            let address = if e.service.address.is_empty() { e.node.address } else { e.service.address };
            // A reference agent registers `http://ip` and no meta; a tarsier agent `ip` (or, with
            // register_scheme, `http://ip`) and its `proto` and `service_port`.
            let (host, kind) = PeerKind::from_address(&address);
            let meta = e.service.meta.as_ref();
            let tarsier = meta.is_some_and(|m| m.contains_key("proto") || m.contains_key("service_port"));
            let kind = if tarsier { PeerKind::Tarsier } else { kind_of_untagged(kind) };
            let service = meta.and_then(|m| m.get("service_port")).map(|port| format!("{host}:{port}"));
            let peer = Peer { id: e.service.id, public: format!("{host}:{}", e.service.port), service, kind };
            if passing {
                found.peers.push(peer.clone());
            }
            found.members.push(peer);
        }
        Ok((found, new_index))
    }

    async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        let mut index = 0u64;
        let mut backoff = Duration::from_millis(100);
        let mut registered = false;
        let mut outage = false;
        while !shutdown.is_cancelled() {
            let step = async {
                if !registered {
                    self.register().await?;
                    registered = true;
                }
                self.query(index).await
            };
            let outcome = tokio::select! {
                outcome = step => outcome,
                _ = shutdown.cancelled() => break,
            };
            match outcome {
                Ok((found, new_index)) => {
                    if outage {
                        tracing::info!(consul = %self.config.address, peers = found.peers.len(), "Consul is back");
                        outage = false;
                    }
                    backoff = Duration::from_millis(100);
                    // A smaller index means Consul's state was reset: start the blocking queries over.
                    index = if new_index < index { 0 } else { new_index };
                    *self.list.write().unwrap_or_else(|p| p.into_inner()) = found.peers.into();
                    *self.members.write().unwrap_or_else(|p| p.into_inner()) = found.members.into();
                }
                Err(err) => {
                    if !outage {
                        tracing::warn!(consul = %self.config.address, %err, "Consul is unreachable; keeping the last peer list");
                        outage = true;
                    }
                    // Consul may have lost its state (a dev agent restarted): register again when it is back.
                    registered = false;
                    index = 0;
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// An instance without tarsier's meta is a reference agent, HTTP/1.1 either way.
fn kind_of_untagged(from_address: PeerKind) -> PeerKind {
    match from_address {
        PeerKind::Tarsier => PeerKind::Reference { https: false },
        reference => reference,
    }
}

impl PeerSource for ConsulPeers {
    fn kind(&self) -> &'static str {
        "consul"
    }
    fn peers(&self) -> PeerList {
        self.list.read().unwrap_or_else(|p| p.into_inner()).clone().into()
    }
    fn members(&self) -> PeerList {
        self.members.read().unwrap_or_else(|p| p.into_inner()).clone().into()
    }
    fn leave(&self) -> Leave<'_> {
        Box::pin(async move {
            let path = format!("/v1/agent/service/deregister/{}", self.me.id);
            match self.request(reqwest::Method::PUT, &path).timeout(Duration::from_secs(3)).send().await {
                Ok(r) if r.status().is_success() => tracing::info!(id = %self.me.id, "deregistered from Consul"),
                Ok(r) => tracing::warn!(status = %r.status(), "Consul refused the deregistration"),
                Err(err) => tracing::warn!(%err, "cannot deregister from Consul"),
            }
        })
    }
}
