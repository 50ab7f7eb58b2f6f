//! The reference Tarsier's config file, mapped onto tarsier's (docs/compatibility.md). Its sections are
//! `server: {public: {port, use_https, cert_file, key_file}, service: {...}}`, `consul: {service, url, register,
//! deregister, list, check_interval, refresh_interval}`, `logging: {name, interval, dir}` and
//! `persistent_storage` / `plugins.persistent_storage` (handled with the plugin sections).

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::Deserialize;
use tarsier_plugin::HumanDuration;

use super::{AgentConfig, TlsConfig};
use crate::agent::discovery::ConsulConfig;

/// `server.public` or `server.service` in the reference's shape.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceListener {
    pub port: u16,
    #[serde(default)]
    pub use_https: bool,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
}

/// The reference's `consul:` section.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceConsul {
    pub service: Option<String>,
    /// Consul's HTTP API, such as `http://consul.dev:8500`.
    pub url: String,
    pub register: Option<String>,
    pub deregister: Option<String>,
    pub list: Option<String>,
    pub check_interval: Option<HumanDuration>,
    pub refresh_interval: Option<HumanDuration>,
}

impl AgentConfig {
    /// Lays the reference's sections over tarsier's: every key is either mapped or named in a note that the
    /// agent logs at start. A key given both ways is an error, never a silent choice.
    pub(super) fn apply_reference(&mut self) -> anyhow::Result<()> {
        if let Some(public) = self.server.public.take() {
            anyhow::ensure!(self.listen.is_none(), "give `listen` or `server.public.port`, not both");
            // The reference listened on every address (`:port`).
            self.listen = Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, public.port)));
            if let Some(tls) = listener_tls("server.public", &public)? {
                anyhow::ensure!(self.public_tls.is_none(), "give `public_tls` or `server.public.use_https`, not both");
                self.public_tls = Some(tls);
            }
        }
        if let Some(service) = self.server.service.take() {
            anyhow::ensure!(self.service_listen.is_none(), "give `service_listen` or `server.service.port`, not both");
            self.service_listen = Some(SocketAddr::from((Ipv4Addr::UNSPECIFIED, service.port)));
            if let Some(tls) = listener_tls("server.service", &service)? {
                anyhow::ensure!(self.tls.is_none(), "give `tls` or `server.service.use_https`, not both");
                self.tls = Some(tls);
            }
        }
        if let Some(consul) = self.consul.take() {
            anyhow::ensure!(self.discovery.consul.is_none(), "give `discovery.consul` or `consul`, not both");
            let mut mapped = ConsulConfig::new(consul.url.clone());
            if let Some(service) = consul.service {
                mapped.service = service;
            }
            if let Some(interval) = consul.check_interval {
                mapped.check_interval = interval;
            }
            // Reference agents build `ServiceAddress:port/exec` and need the scheme in the address.
            mapped.register_scheme = true;
            self.discovery.consul = Some(mapped);
            let ignored: Vec<&str> = [
                ("consul.register", consul.register.is_some()),
                ("consul.deregister", consul.deregister.is_some()),
                ("consul.list", consul.list.is_some()),
                ("consul.refresh_interval", consul.refresh_interval.is_some()),
            ]
            .into_iter()
            .filter_map(|(key, given)| given.then_some(key))
            .collect();
            if !ignored.is_empty() {
                self.notes.push(format!(
                    "{} ignored: tarsier uses Consul's standard API paths and blocking queries (peers follow \
                     Consul at once instead of every refresh_interval)",
                    ignored.join(", ")
                ));
            }
        }
        Ok(())
    }
}

fn listener_tls(section: &str, listener: &ReferenceListener) -> anyhow::Result<Option<TlsConfig>> {
    if !listener.use_https {
        return Ok(None);
    }
    match (&listener.cert_file, &listener.key_file) {
        (Some(cert), Some(key)) => {
            Ok(Some(TlsConfig { cert: cert.clone(), key: key.clone(), ca: None, client_auth: false }))
        }
        _ => anyhow::bail!("{section}.use_https needs {section}.cert_file and {section}.key_file"),
    }
}
