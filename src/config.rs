//! The agent config: a YAML file, overridden by `TARSIER_*` environment variables, overridden by flags.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::Value;
use tarsier_plugin::{ByteSize, Limits};

use crate::cli::{AgentArgs, LogFormat};
use crate::discovery::ConsulConfig;

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
    #[serde(default)]
    pub limits: Limits,
    /// Each plugin's own section, by plugin name.
    #[serde(default)]
    pub plugins: BTreeMap<String, Value>,
    /// The reference Tarsier's top-level storage section (`base_dir`).
    pub persistent_storage: Option<Value>,
    pub log_format: Option<LogFormat>,
    pub max_body: Option<ByteSize>,
    /// The host peers and Consul reach this agent at; default: the listen IP, or the hostname when listening
    /// on every address.
    pub advertise: Option<String>,
    #[serde(default)]
    pub discovery: DiscoveryConfig,
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl AgentConfig {
    pub fn from_file(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config {}", path.display()))?;
        serde_norway::from_str(&text).with_context(|| format!("invalid config {}", path.display()))
    }

    /// The config file (if any) with the environment and flags laid over it.
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
        if let Some(peers) = &args.peers {
            config.discovery.static_peers = peers.clone();
        }
        if let Some(address) = &args.consul {
            match &mut config.discovery.consul {
                Some(consul) => consul.address = address.clone(),
                None => config.discovery.consul = Some(ConsulConfig::new(address.clone())),
            }
        }
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
