//! The agent config: a YAML file, overridden by `TARSIER_*` environment variables, overridden by flags.
//! The reference Tarsier's config file is read too (`reference.rs`).

pub mod logging;
mod reference;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::Value;
use tarsier_plugin::{ByteSize, HumanDuration, Limits};

use crate::agent::discovery::ConsulConfig;
use crate::agent::http::listener::ServeLimits;
use crate::cli::{AgentArgs, LogFormat};
pub use crate::credentials::tls::TlsConfig;
use crate::credentials::Token;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_SERVICE_LISTEN: &str = "127.0.0.1:8081";
/// Largest command body accepted; a bigger one is a `413`.
pub const DEFAULT_MAX_BODY: u64 = 1 << 20;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Public port: `/exec`, `/abort`, `/jobs`.
    pub listen: Option<SocketAddr>,
    /// Service port: `/health`, `/metrics`, `/commands`, `/runtime`.
    pub service_listen: Option<SocketAddr>,
    /// The agent's name in answers and logs; default `hostname:public-port`.
    pub name: Option<String>,
    /// TLS for the service port.
    pub tls: Option<TlsConfig>,
    /// TLS for the public port; agents then reach each other over HTTPS (HTTP/2 by ALPN).
    pub public_tls: Option<TlsConfig>,
    #[serde(default)]
    pub auth: AuthConfig,
    /// Timeouts and connection caps of both listeners.
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub limits: Limits,
    /// Each plugin's own section, by plugin name.
    #[serde(default)]
    pub plugins: BTreeMap<String, Value>,
    /// The reference Tarsier's top-level storage section (`base_dir`).
    pub persistent_storage: Option<Value>,
    pub log_format: Option<LogFormat>,
    pub max_body: Option<ByteSize>,
    /// The fault proxies' Toxiproxy API.
    #[serde(default)]
    pub proxy: ProxyConfig,
    /// Push the figures of every `net/http_load` this agent runs to a Prometheus remote-write endpoint.
    pub remote_write: Option<RemoteWriteConfig>,
    /// Labels a wave's `select: {labels: ...}` picks agents by (`zone: b`); registered in Consul as meta
    /// `label_<key>`. The Consul `tags` of the form `key=value` are labels too.
    #[serde(default)]
    pub labels: crate::wire::body::Labels,
    /// The host peers and Consul reach this agent at; default: the listen IP, or the hostname when listening
    /// on every address.
    pub advertise: Option<String>,
    #[serde(default)]
    pub discovery: DiscoveryConfig,
    /// Mixed swarms with the reference Tarsier: which HTTP/1.1 agents may get copies.
    #[serde(default)]
    pub compat: crate::agent::discovery::CompatConfig,
    /// The reference Tarsier's `consul:` section (mapped onto `discovery.consul`).
    pub consul: Option<reference::ReferenceConsul>,
    /// The activity log's files (the reference Tarsier's `logging:` section, with tarsier's keys added).
    #[serde(default)]
    pub logging: logging::LoggingConfig,
    /// What the agent logs at start about the config: reference keys it does not use, and why.
    #[serde(skip)]
    pub notes: Vec<String>,
    /// One of the agents `tarsier swarm` started as processes (`--local-swarm`): on this machine's own network.
    #[serde(skip)]
    pub local_swarm: bool,
}

/// `proxy:` in the config.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyConfig {
    /// Serve Toxiproxy's REST API here (`127.0.0.1:8474`, Toxiproxy's port); off when absent. The token
    /// applies; off loopback it needs one, as the agent's other ports do.
    pub api_listen: Option<SocketAddr>,
}

/// `remote_write:` in the config.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteWriteConfig {
    /// The receiver: `http://prometheus:9090/api/v1/write` (Prometheus with `--web.enable-remote-write-receiver`).
    pub url: String,
}

/// Where peers come from: Consul, a static list, or nothing (a lone agent). A local swarm brings its own.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiscoveryConfig {
    /// Public `host:port` of every agent (this one may be in the list).
    #[serde(default, rename = "static")]
    pub static_peers: Vec<String>,
    pub consul: Option<ConsulConfig>,
}

/// `auth:` in the config.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// A file holding the swarm's token: every public route (and the service port's `/commands`,
    /// `/runtime`, `/peers`) requires it as `Authorization: Bearer <token>`.
    pub token_file: Option<PathBuf>,
    /// Run without a token on a non-loopback address (a trusted, isolated network only).
    #[serde(default)]
    pub insecure_no_auth: bool,
    /// Refuse a token file every user of the machine may read, instead of warning.
    #[serde(default)]
    pub strict_perms: bool,
}

/// `server:` in the config: how long a client may take, and how many connections it may hold open.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// A request's headers (and the TLS handshake) must arrive within this. Default 10s.
    pub header_timeout: Option<HumanDuration>,
    /// Its body must arrive within this. Default 30s.
    pub body_timeout: Option<HumanDuration>,
    /// A connection with no request in flight and no traffic for this long is closed. Default 75s (agents
    /// keep their connections to peers 60s).
    pub idle_timeout: Option<HumanDuration>,
    /// Connections open at once on the public port. Default: half the open-file limit, at most 4,096.
    pub max_connections: Option<usize>,
    /// Connections open at once on the service port. Default: an eighth of the open-file limit, at most 256.
    pub service_max_connections: Option<usize>,
    /// Host names this agent answers under besides IP literals, `localhost`, its advertised host and its
    /// machine's host name (a Kubernetes Service's or a Compose service's name). A request under any other
    /// name is refused: that is what DNS rebinding sends (docs/security.md).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Origins whose web pages may send requests (`https://console.example`); none by default, so a
    /// request with an `Origin` header is refused.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    /// The reference Tarsier's `server.public` (`port`, `use_https`, `cert_file`, `key_file`).
    pub public: Option<reference::ReferenceListener>,
    /// The reference Tarsier's `server.service`.
    pub service: Option<reference::ReferenceListener>,
}

impl ServerConfig {
    pub fn body_timeout(&self) -> std::time::Duration {
        self.body_timeout.map(|d| d.0).unwrap_or(std::time::Duration::from_secs(30))
    }

    /// The bounds of the public and the service listener.
    pub fn limits(&self) -> (ServeLimits, ServeLimits) {
        let (public_cap, service_cap) = crate::agent::http::listener::default_caps();
        let header_timeout = self.header_timeout.map(|d| d.0).unwrap_or(std::time::Duration::from_secs(10));
        let idle_timeout = self.idle_timeout.map(|d| d.0).unwrap_or(std::time::Duration::from_secs(75));
        let limits = |max_connections| ServeLimits { max_connections, header_timeout, idle_timeout };
        (
            limits(self.max_connections.unwrap_or(public_cap).max(1)),
            limits(self.service_max_connections.unwrap_or(service_cap).max(1)),
        )
    }
}

/// The largest config file read (a real one is a few KiB).
const MAX_CONFIG_FILE: u64 = 1024 * 1024;

impl AgentConfig {
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = crate::sys::files::read_bounded(path, MAX_CONFIG_FILE, "config file")?.text;
        let mut config: Self =
            serde_norway::from_str(&text).with_context(|| format!("invalid config {}", path.display()))?;
        config.apply_reference().with_context(|| format!("invalid config {}", path.display()))?;
        Ok(config)
    }

    /// The config file (if any) with the environment and flags laid over it.
    /// This agent's labels: `labels:`, and the Consul tags written `key=value`.
    pub fn all_labels(&self) -> crate::wire::body::Labels {
        let mut labels = self.labels.clone();
        for tag in self.discovery.consul.iter().flat_map(|consul| &consul.tags) {
            if let Some((key, value)) = tag.split_once('=') {
                labels.entry(key.to_owned()).or_insert_with(|| value.to_owned());
            }
        }
        labels
    }

    pub fn load(args: &AgentArgs) -> anyhow::Result<Self> {
        let mut config = match &args.config {
            Some(path) => Self::from_file(path)?,
            None => Self::default(),
        };
        config.listen = args.listen.or(config.listen);
        config.service_listen = args.service_listen.or(config.service_listen);
        config.name = args.name.clone().or(config.name);
        config.log_format = args.log_format.or(config.log_format);
        config.advertise = args.advertise.clone().or(config.advertise);
        config.server.allowed_hosts.extend(args.allowed_hosts.iter().flatten().cloned());
        config.auth.token_file = args.token_file.clone().or(config.auth.token_file);
        config.auth.insecure_no_auth |= args.insecure_no_auth;
        config.auth.strict_perms |= args.strict_perms;
        let (limits, flags) = (&mut config.limits, args.limits.clone());
        limits.max_ram = flags.max_ram.or(limits.max_ram);
        limits.max_disk = flags.max_disk.or(limits.max_disk);
        limits.max_duration = flags.max_duration.or(limits.max_duration);
        limits.max_connections = flags.max_connections.or(limits.max_connections);
        limits.max_blocked_threads = flags.max_blocked_threads.or(limits.max_blocked_threads);
        limits.max_wave_executions = flags.max_wave_executions.or(limits.max_wave_executions);
        limits.dial_targets = flags.dial_targets.or(limits.dial_targets.take());
        limits.http_load_targets = flags.http_load_targets.or(limits.http_load_targets.take());
        if let Some(peers) = &args.peers {
            config.discovery.static_peers = peers.clone();
        }
        config.local_swarm |= args.local_swarm;
        if let Some(address) = &args.consul {
            match &mut config.discovery.consul {
                Some(consul) => consul.address = address.clone(),
                None => config.discovery.consul = Some(ConsulConfig::new(address.clone())),
            }
        }
        for pair in &args.labels {
            let (key, value) = pair.split_once('=').with_context(|| format!("--label {pair:?}: write KEY=VALUE"))?;
            config.labels.insert(key.to_owned(), value.to_owned());
        }
        crate::wire::body::check_labels(&config.labels).map_err(|why| anyhow::anyhow!("labels: {why}"))?;
        if !config.discovery.static_peers.is_empty() && config.discovery.consul.is_some() {
            anyhow::bail!("discovery: choose static peers or Consul, not both");
        }
        if let Some(dir) = &args.storage_dir {
            let section = config.plugins.entry("storage".into()).or_insert_with(|| Value::Object(Default::default()));
            match section {
                Value::Object(map) => {
                    map.remove("base_dir");
                    map.insert("dir".into(), Value::String(dir.display().to_string()));
                }
                other => *other = serde_json::json!({ "dir": dir }),
            }
        }
        Ok(config)
    }

    /// The swarm token, when the config names one.
    pub fn token(&self) -> anyhow::Result<Option<Token>> {
        self.auth.token_file.as_deref().map(|path| Token::from_file(path, self.auth.strict_perms)).transpose()
    }

    /// The safe default: an agent reachable from other hosts must have a token, unless told otherwise.
    pub fn check_exposure(&self, token: Option<&Token>) -> anyhow::Result<()> {
        if token.is_some() {
            return Ok(());
        }
        if self.auth.insecure_no_auth {
            // Said at every start, so nobody runs an open agent without seeing it in the log.
            tracing::warn!(
                public = %self.listen(),
                service = %self.service_listen(),
                "insecure: auth.insecure_no_auth is on and no token is set: anyone who reaches these addresses can \
                 run any command"
            );
            return Ok(());
        }
        for address in [self.listen(), self.service_listen()].into_iter().chain(self.proxy.api_listen) {
            if !address.ip().is_loopback() {
                anyhow::bail!(
                    "refusing to listen on {address} without a swarm token: anyone who reaches it could run \
                     destructive commands. Give --token-file (auth.token_file, TARSIER_TOKEN_FILE), or \
                     --insecure-no-auth on a trusted, isolated network"
                );
            }
        }
        Ok(())
    }

    pub fn listen(&self) -> SocketAddr {
        self.listen.unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("the default address parses"))
    }

    pub fn service_listen(&self) -> SocketAddr {
        self.service_listen.unwrap_or_else(|| DEFAULT_SERVICE_LISTEN.parse().expect("the default address parses"))
    }

    pub fn max_body(&self) -> usize {
        self.max_body.map(|b| b.0).unwrap_or(DEFAULT_MAX_BODY) as usize
    }

    /// A plugin's section, also under the reference's names.
    pub fn plugin_section(&self, plugin: &str) -> Option<&Value> {
        let legacy = match plugin {
            "storage" => self.plugins.get("persistent_storage").or(self.persistent_storage.as_ref()),
            _ => None,
        };
        self.plugins.get(plugin).or(legacy)
    }
}
