//! The fault proxy: TCP proxies in front of a service's dependencies, with Toxiproxy's toxics (`toxic`), one
//! task per listener and two pipes per connection (`link`); or, made with `protocol: http`, HTTP/1.1 proxies
//! whose toxics are faults on requests and answers (`http_fault`), relayed request by request (`http_relay`).
//! Connections run on threads of their own (`crate::io_threads`). A proxy lives until it is deleted, until its
//! `duration` ends, or until `/abort` (`release_all`), which closes its listener and every connection.
//!
//! Bounded and safe: the upstream must be in `limits.dial_targets` (resolved once, connected to by the
//! checked address), the listen address in `limits.proxy_listen` (loopback by default), at most
//! [`MAX_PROXIES`] proxies and `max_connections` connections each, and every toxic holds at most its pipe's
//! queue (1 MiB) per direction.

pub mod http_fault;
pub mod http_relay;
pub mod link;
pub mod metrics;
pub mod toxic;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{CommandError, DataError};
use tokio::sync::{watch, Semaphore};
use tokio_util::sync::CancellationToken;

use metrics::{Counters, ProxyMetrics};
use toxic::{Effect, Toxic};

/// Proxies one agent runs at once.
pub const MAX_PROXIES: usize = 64;
/// Toxics on one proxy.
pub const MAX_TOXICS: usize = 32;
/// How long connecting to the upstream may take before the client's connection is dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// What a proxy reads: bytes (Toxiproxy's toxics), or HTTP/1.1 requests and answers (the `http_*` faults).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Http,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Http => "http",
        }
    }

    /// Whether a proxy of this protocol takes the toxic: HTTP faults need `http`, byte toxics `tcp` (`down`
    /// acts on connections, so both take it). The refusal names `type`.
    fn check(self, effect: &Effect) -> Result<(), CommandError> {
        let refusal = match (self, effect) {
            (_, Effect::Down) | (Protocol::Http, Effect::Http(_)) => return Ok(()),
            (Protocol::Tcp, Effect::Http(_)) => {
                format!("{} needs a proxy made with `protocol: http`", effect.type_name())
            }
            (Protocol::Tcp, _) => return Ok(()),
            (Protocol::Http, _) => format!(
                "{} is a byte toxic: a `protocol: http` proxy takes the http_* faults and `down` (for both, put a \
                 `protocol: tcp` proxy in front of this one)",
                effect.type_name()
            ),
        };
        Err(CommandError::Invalid(DataError::field("type", refusal)))
    }
}

/// One proxy.
pub struct Proxy {
    pub name: String,
    pub listen: SocketAddr,
    pub protocol: Protocol,
    upstream: Mutex<(String, SocketAddr)>,
    enabled: AtomicBool,
    toxics: watch::Sender<Arc<Vec<Toxic>>>,
    counters: Arc<Counters>,
    /// Fired when the proxy goes: its listener stops and every connection closes.
    gone: CancellationToken,
    /// Fired to close the open connections (a disable, `down`); replaced by a fresh one each time.
    connections: Mutex<CancellationToken>,
    until: Instant,
    max_connections: usize,
}

impl Proxy {
    pub fn describe(&self) -> Value {
        let (upstream, address) = self.upstream.lock().unwrap_or_else(|p| p.into_inner()).clone();
        json!({
            "name": self.name,
            "listen": self.listen.to_string(),
            "upstream": upstream,
            "upstream_address": address.to_string(),
            "protocol": self.protocol.as_str(),
            "enabled": self.enabled.load(Ordering::Relaxed),
            "toxics": self.toxics.borrow().iter().map(|t| self.describe_toxic(t)).collect::<Vec<_>>(),
            "expires_in_s": self.until.saturating_duration_since(Instant::now()).as_secs(),
            "max_connections": self.max_connections,
            "stats": {
                "connections": self.counters.connections.get(),
                "open": self.counters.open.get(),
                "refused": self.counters.refused.get(),
                "bytes_upstream": self.counters.bytes_upstream.get(),
                "bytes_downstream": self.counters.bytes_downstream.get(),
            },
        })
    }

    /// As Toxiproxy shows a toxic; an HTTP fault with its counts so far (`stats`: requests matched and acted on).
    fn describe_toxic(&self, toxic: &Toxic) -> Value {
        let mut described = toxic.describe();
        if toxic.effect.is_http() {
            let (matched, applied) = self.counters.http.counts(&toxic.name, toxic.effect.type_name());
            described["stats"] = json!({"matched": matched, "applied": applied});
        }
        described
    }

    fn close_connections(&self) {
        let mut current = self.connections.lock().unwrap_or_else(|p| p.into_inner());
        current.cancel();
        *current = CancellationToken::new();
    }

    fn is_down(&self) -> bool {
        !self.enabled.load(Ordering::Relaxed)
            || self.toxics.borrow().iter().any(|t| t.effect == Effect::Down && t.toxicity >= 1.0)
    }
}

/// What `create` needs, checked.
pub struct Spec {
    pub name: String,
    pub listen: SocketAddr,
    pub protocol: Protocol,
    /// As the body wrote it, and the checked address it is connected to.
    pub upstream: (String, SocketAddr),
    pub enabled: bool,
    pub duration: Duration,
    pub max_connections: usize,
}

/// Every proxy of the agent, by name.
#[derive(Default)]
pub struct Proxies {
    proxies: Mutex<BTreeMap<String, Arc<Proxy>>>,
    pub metrics: ProxyMetrics,
}

impl Proxies {
    pub fn count(&self) -> u64 {
        self.proxies.lock().unwrap_or_else(|p| p.into_inner()).len() as u64
    }

    /// Open connections through every proxy.
    pub fn connections(&self) -> u64 {
        self.proxies
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|p| p.counters.open.get().max(0) as u64)
            .sum()
    }

    pub fn get(&self, name: &str) -> Result<Arc<Proxy>, CommandError> {
        self.proxies.lock().unwrap_or_else(|p| p.into_inner()).get(name).cloned().ok_or_else(|| no_proxy(name))
    }

    pub fn list(&self) -> Vec<Value> {
        self.proxies.lock().unwrap_or_else(|p| p.into_inner()).values().map(|p| p.describe()).collect()
    }

    /// Binds the listener and starts serving; the proxy's description.
    pub async fn create(self: &Arc<Self>, spec: Spec) -> Result<Value, CommandError> {
        {
            let proxies = self.proxies.lock().unwrap_or_else(|p| p.into_inner());
            if proxies.contains_key(&spec.name) {
                return Err(CommandError::Conflict(format!("a proxy `{}` exists already", spec.name)));
            }
            if proxies.len() >= MAX_PROXIES {
                return Err(CommandError::Conflict(format!("this agent runs {MAX_PROXIES} proxies already")));
            }
        }
        let listener = tokio::net::TcpListener::bind(spec.listen)
            .await
            .map_err(|e| CommandError::Conflict(format!("cannot listen on {}: {e}", spec.listen)))?;
        let listen = listener.local_addr().map_err(|e| CommandError::Failed(e.to_string()))?;
        let proxy = Arc::new(Proxy {
            name: spec.name.clone(),
            listen,
            protocol: spec.protocol,
            upstream: Mutex::new(spec.upstream),
            enabled: AtomicBool::new(spec.enabled),
            toxics: watch::Sender::new(Arc::new(Vec::new())),
            counters: Arc::new(self.metrics.counters(&spec.name)),
            gone: CancellationToken::new(),
            connections: Mutex::new(CancellationToken::new()),
            until: Instant::now() + spec.duration,
            max_connections: spec.max_connections,
        });
        {
            let mut proxies = self.proxies.lock().unwrap_or_else(|p| p.into_inner());
            if proxies.contains_key(&spec.name) {
                return Err(CommandError::Conflict(format!("a proxy `{}` exists already", spec.name)));
            }
            proxies.insert(spec.name.clone(), proxy.clone());
        }
        tokio::spawn(serve(listener, proxy.clone()));
        // The proxy goes at the end of its duration, whatever else happens.
        let (all, expiring) = (self.clone(), proxy.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = tokio::time::sleep_until(expiring.until.into()) => { let _ = all.delete(&expiring.name); }
                _ = expiring.gone.cancelled() => {}
            }
        });
        Ok(proxy.describe())
    }

    pub fn delete(&self, name: &str) -> Result<Value, CommandError> {
        let proxy = self.proxies.lock().unwrap_or_else(|p| p.into_inner()).remove(name);
        let proxy = proxy.ok_or_else(|| no_proxy(name))?;
        self.end(&proxy);
        Ok(proxy.describe())
    }

    /// A proxy taken out of the list goes: its listener and connections close, its series with them.
    fn end(&self, proxy: &Proxy) {
        proxy.gone.cancel();
        for toxic in proxy.toxics.borrow().iter().filter(|t| t.effect.is_http()) {
            proxy.counters.http.forget(&toxic.name, toxic.effect.type_name());
        }
        self.metrics.forget(&proxy.name);
    }

    /// `enabled` (a disabled proxy refuses and drops its connections, as Toxiproxy's) and the upstream.
    pub fn update(
        &self,
        name: &str,
        enabled: Option<bool>,
        upstream: Option<(String, SocketAddr)>,
    ) -> Result<Value, CommandError> {
        let proxy = self.get(name)?;
        if let Some(upstream) = upstream {
            *proxy.upstream.lock().unwrap_or_else(|p| p.into_inner()) = upstream;
        }
        if let Some(enabled) = enabled {
            proxy.enabled.store(enabled, Ordering::Relaxed);
            if !enabled {
                proxy.close_connections();
            }
        }
        Ok(proxy.describe())
    }

    /// Adds (`replace: false`, a name taken is a 409) or replaces a toxic.
    pub fn set_toxic(&self, proxy: &str, toxic: Toxic, replace: bool) -> Result<Value, CommandError> {
        let proxy = self.get(proxy)?;
        proxy.protocol.check(&toxic.effect)?;
        let mut refused = None;
        // The pipes are woken only by a change that was made.
        proxy.toxics.send_if_modified(|toxics| {
            let mut list = toxics.as_ref().clone();
            match (list.iter().position(|t| t.name == toxic.name), replace) {
                (Some(_), false) => {
                    refused =
                        Some(CommandError::Conflict(format!("a toxic `{}` is on `{}` already", toxic.name, proxy.name)))
                }
                (None, true) => refused = Some(no_toxic(&proxy.name, &toxic.name)),
                (Some(i), true) => list[i] = toxic.clone(),
                (None, false) if list.len() >= MAX_TOXICS => {
                    refused = Some(CommandError::Conflict(format!("`{}` has {MAX_TOXICS} toxics already", proxy.name)))
                }
                (None, false) => list.push(toxic.clone()),
            }
            let changed = refused.is_none();
            if changed {
                *toxics = Arc::new(list);
            }
            changed
        });
        if let Some(refused) = refused {
            return Err(refused);
        }
        if toxic.effect == Effect::Down {
            proxy.close_connections();
        }
        Ok(proxy.describe_toxic(&toxic))
    }

    pub fn toxic(&self, proxy: &str, name: &str) -> Result<Toxic, CommandError> {
        let proxy = self.get(proxy)?;
        let found = proxy.toxics.borrow().iter().find(|t| t.name == name).cloned();
        found.ok_or_else(|| no_toxic(&proxy.name, name))
    }

    pub fn remove_toxic(&self, proxy: &str, name: &str) -> Result<Value, CommandError> {
        let proxy = self.get(proxy)?;
        let mut removed = None;
        proxy.toxics.send_if_modified(|toxics| {
            let mut list = toxics.as_ref().clone();
            let Some(i) = list.iter().position(|t| t.name == name) else { return false };
            removed = Some(list.remove(i));
            *toxics = Arc::new(list);
            true
        });
        let removed = removed.ok_or_else(|| no_toxic(&proxy.name, name))?;
        // Its last counts go in the answer, then its series go.
        let described = proxy.describe_toxic(&removed);
        if removed.effect.is_http() {
            proxy.counters.http.forget(&removed.name, removed.effect.type_name());
        }
        Ok(described)
    }

    /// Toxiproxy's reset: every proxy enabled, every toxic removed.
    pub fn reset(&self) -> usize {
        let proxies: Vec<Arc<Proxy>> =
            self.proxies.lock().unwrap_or_else(|p| p.into_inner()).values().cloned().collect();
        for proxy in &proxies {
            proxy.enabled.store(true, Ordering::Relaxed);
            let removed = proxy.toxics.send_replace(Arc::new(Vec::new()));
            for toxic in removed.iter().filter(|t| t.effect.is_http()) {
                proxy.counters.http.forget(&toxic.name, toxic.effect.type_name());
            }
        }
        proxies.len()
    }

    /// `/abort` and shutdown: every proxy goes, its listener and connections closed. How many went.
    pub fn release_all(&self) -> u64 {
        let gone = std::mem::take(&mut *self.proxies.lock().unwrap_or_else(|p| p.into_inner()));
        for proxy in gone.values() {
            self.end(proxy);
        }
        gone.len() as u64
    }
}

/// How a proxy or a toxic that does not exist is refused: a 400 naming `name` (`is_missing` knows its words).
fn no_proxy(name: &str) -> CommandError {
    CommandError::Invalid(DataError::field("name", format!("{MISSING_PROXY}`{name}`")))
}

fn no_toxic(proxy: &str, name: &str) -> CommandError {
    CommandError::Invalid(DataError::field("name", format!("{MISSING_TOXIC}`{name}` on `{proxy}`")))
}

const MISSING_PROXY: &str = "no proxy ";
const MISSING_TOXIC: &str = "no toxic ";

/// Whether a refusal's message says a proxy or toxic does not exist: Toxiproxy's API answers those 404.
pub fn is_missing(message: &str) -> bool {
    message.contains(&format!("{MISSING_PROXY}`")) || message.contains(&format!("{MISSING_TOXIC}`"))
}

/// Accepts until the proxy goes; each connection gets its upstream connection and its two pipes.
async fn serve(listener: tokio::net::TcpListener, proxy: Arc<Proxy>) {
    let slots = Arc::new(Semaphore::new(proxy.max_connections));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = proxy.gone.cancelled() => return,
        };
        let Ok((client, _)) = accepted else {
            // Out of descriptors: wait a little rather than spin on the error.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) if !proxy.is_down() => slot,
            _ => {
                proxy.counters.refused.inc();
                continue;
            }
        };
        // The connection moves to an I/O thread's runtime: taken out of this one's reactor here, put in the
        // other's there.
        let Ok(client) = client.into_std() else {
            proxy.counters.refused.inc();
            continue;
        };
        let proxy = proxy.clone();
        crate::io_threads::spawn(async move {
            let _slot = slot;
            let Ok(client) = tokio::net::TcpStream::from_std(client) else {
                proxy.counters.refused.inc();
                return;
            };
            let address = proxy.upstream.lock().unwrap_or_else(|p| p.into_inner()).1;
            let upstream = match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(address)).await {
                Ok(Ok(upstream)) => upstream,
                _ => {
                    proxy.counters.refused.inc();
                    return;
                }
            };
            proxy.counters.connections.inc();
            proxy.counters.open.inc();
            let close = proxy.connections.lock().unwrap_or_else(|p| p.into_inner()).child_token();
            let gone = proxy.gone.clone();
            let counters = proxy.counters.clone();
            match proxy.protocol {
                Protocol::Tcp => tokio::select! {
                    _ = link::run(client, upstream, proxy.toxics.subscribe(), close, counters.clone()) => {}
                    _ = gone.cancelled() => {}
                },
                Protocol::Http => tokio::select! {
                    _ = http_relay::run(client, upstream, proxy.toxics.subscribe(), counters.clone()) => {}
                    _ = close.cancelled() => {}
                    _ = gone.cancelled() => {}
                },
            }
            counters.open.dec();
        });
    }
}
