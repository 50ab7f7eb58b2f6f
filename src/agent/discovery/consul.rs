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

use super::{Leave, Peer, PeerKind, PeerList, PeerSource, Refused, Trust};

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
    /// Consul's ACL token, when Consul needs one (the first line of defense: with ACLs on and a default-deny
    /// policy, nobody without a token can register a service or read the catalogue). Prefer `token_file`;
    /// without either, `CONSUL_HTTP_TOKEN` from the environment, as Consul's own tools read it.
    pub token: Option<String>,
    /// A file holding the ACL token (a Kubernetes Secret mounted as a file).
    pub token_file: Option<std::path::PathBuf>,
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
            token_file: None,
            register_scheme: false,
        }
    }

    /// The ACL token from `token_file`, `token` or `CONSUL_HTTP_TOKEN`, in that order; checked like the
    /// swarm token's file (a regular file, bounded) and refused when it could not go into a header.
    pub fn resolve_token(&mut self) -> anyhow::Result<()> {
        if let Some(path) = &self.token_file {
            let file = crate::sys::files::read_bounded(path, 8 * 1024, "Consul token file")?;
            if file.world_readable {
                tracing::warn!(file = %path.display(), "the Consul token file is readable by every user of this machine");
            }
            self.token = Some(file.text.trim().to_owned());
        } else if self.token.is_none() {
            self.token = std::env::var("CONSUL_HTTP_TOKEN").ok().filter(|t| !t.trim().is_empty());
        }
        if let Some(token) = &self.token {
            anyhow::ensure!(
                !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()),
                "discovery.consul.token: printable ASCII without spaces"
            );
        }
        Ok(())
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
    /// The membership proof for `tarsier_member` (`SwarmKey::membership_proof` of id, host, public port).
    pub proof: Option<String>,
    pub host: String,
    pub public_port: u16,
    pub public_tls: bool,
    pub service_port: u16,
    pub service_tls: bool,
    /// Registered as meta `label_<key>`.
    pub labels: crate::wire::body::Labels,
}

pub struct ConsulPeers {
    config: ConsulConfig,
    me: Registration,
    http: reqwest::Client,
    trust: Trust,
    list: RwLock<Arc<[Peer]>>,
    /// Every registered instance but this one, passing or not (for `/sd`).
    members: RwLock<Arc<[Peer]>>,
    /// Registered instances that are not peers, and why.
    refused: RwLock<Vec<Refused>>,
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

/// What one health query found: the passing peers, every admitted instance, and the refused ones.
struct Found {
    peers: Vec<Peer>,
    members: Vec<Peer>,
    refused: Vec<Refused>,
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
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// The prefix of the meta keys that carry an agent's labels.
const LABEL_META: &str = "label_";

/// A registered instance's labels: its meta `label_*` and its tags written `key=value`. Only labels within
/// the rules are taken: what Consul holds is anybody's word who can write to it (a selection checks its own
/// labels again where it runs).
fn labels_of(meta: Option<&HashMap<String, String>>, tags: Option<&Vec<String>>) -> crate::wire::body::Labels {
    let from_meta =
        meta.into_iter().flatten().filter_map(|(key, value)| Some((key.strip_prefix(LABEL_META)?, value.as_str())));
    let from_tags = tags.into_iter().flatten().filter_map(|tag| tag.split_once('='));
    let mut labels = crate::wire::body::Labels::new();
    for (key, value) in from_meta.chain(from_tags) {
        if labels.len() < crate::wire::body::MAX_LABELS && crate::wire::body::check_label(key, value).is_ok() {
            labels.entry(key.to_owned()).or_insert_with(|| value.to_owned());
        }
    }
    labels
}

impl ConsulPeers {
    /// Starts registering and watching in the background until `shutdown`.
    pub fn start(
        config: ConsulConfig,
        me: Registration,
        http: reqwest::Client,
        trust: Trust,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let peers = Arc::new(Self {
            config,
            me,
            http,
            trust,
            list: RwLock::new(Arc::new([])),
            members: RwLock::new(Arc::new([])),
            refused: RwLock::new(Vec::new()),
        });
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
        let mut meta = json!({
            "service_port": me.service_port.to_string(),
            "version": env!("CARGO_PKG_VERSION"),
            "proto": proto,
        });
        if let Some(proof) = &me.proof {
            meta["tarsier_member"] = json!(proof);
        }
        for (key, value) in &me.labels {
            meta[format!("{LABEL_META}{key}")] = json!(value);
        }
        let body = json!({
            "ID": me.id,
            "Name": self.config.service,
            "Address": address,
            "Port": me.public_port,
            "Tags": self.config.tags,
            "Meta": meta,
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
        let mut found = Found { peers: Vec::new(), members: Vec::new(), refused: Vec::new() };
        for e in entries.into_iter().filter(|e| e.service.id != self.me.id) {
            let passing = e.checks.iter().all(|c| c.status == "passing");
            let address = if e.service.address.is_empty() { e.node.address } else { e.service.address };
            // A reference agent registers `http://ip` and no meta; a tarsier agent `ip` (or, with
            // register_scheme, `http://ip`) and its `proto` and `service_port`.
            let (host, kind) = PeerKind::from_address(&address);
            let meta = e.service.meta.as_ref();
            let tarsier = meta.is_some_and(|m| m.contains_key("proto") || m.contains_key("service_port"));
            let kind = if tarsier { PeerKind::Tarsier } else { kind_of_untagged(kind) };
            let service = meta
                .and_then(|m| m.get("service_port"))
                .and_then(|port| port.parse::<u16>().ok())
                .map(|port| format!("{host}:{port}"));
            let labels = labels_of(meta, e.service.tags.as_ref());
            let peer = Peer { id: e.service.id, public: format!("{host}:{}", e.service.port), service, kind, labels };
            let proof = meta.and_then(|m| m.get("tarsier_member")).map(String::as_str);
            match self.admit(&peer, host, e.service.port, proof) {
                Ok(()) => {
                    if passing {
                        found.peers.push(peer.clone());
                    }
                    found.members.push(peer);
                }
                Err(reason) => {
                    let shown = |text: &str| text.chars().take(200).collect::<String>();
                    found.refused.push(Refused { id: shown(&peer.id), address: shown(&peer.public), reason });
                }
            }
        }
        Ok((found, new_index))
    }

    /// Whether a registered instance is a peer: a tarsier agent must carry a valid membership proof (when
    /// this agent has the swarm key); a reference agent must be listed (`discovery::admission`).
    fn admit(&self, peer: &Peer, host: &str, port: u16, proof: Option<&str>) -> Result<(), String> {
        super::admission(peer, &self.trust)?;
        match (peer.kind, &self.trust.key) {
            (PeerKind::Tarsier, Some(key)) => match proof {
                Some(proof) if key.accepts_membership(&peer.id, host, port, proof) => Ok(()),
                Some(_) => {
                    Err("its membership proof (meta tarsier_member) does not hold for its id and address".into())
                }
                None => Err("it carries no membership proof (meta tarsier_member): not an agent of this swarm".into()),
            },
            _ => Ok(()),
        }
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
                    self.note_refused(found.refused);
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

impl ConsulPeers {
    /// Keeps the refused instances, and logs each one once, when it first appears.
    fn note_refused(&self, refused: Vec<Refused>) {
        let mut kept = self.refused.write().unwrap_or_else(|p| p.into_inner());
        for new in refused.iter().filter(|r| !kept.contains(r)) {
            tracing::warn!(id = ?new.id, address = ?new.address, reason = %new.reason, "a Consul registration is not a peer");
        }
        // Bounded: a flood of registrations cannot grow this without end.
        *kept = refused.into_iter().take(256).collect();
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
    fn refused(&self) -> Vec<Refused> {
        self.refused.read().unwrap_or_else(|p| p.into_inner()).clone()
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
