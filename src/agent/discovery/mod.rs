//! Where an agent finds its peers, behind one trait: Consul, a static list, or the in-process registry of a
//! local swarm. The wave code only ever asks `peers()`.

mod consul;
mod local;

use std::future::Future;
use std::ops::{Deref, Range};
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;

pub use consul::{ConsulConfig, ConsulPeers, Registration};
pub use local::LocalRegistry;

/// Another agent, as waves and Prometheus need it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Peer {
    /// Unique name of the agent (its Consul service id).
    pub id: String,
    /// `host:port` of its public port.
    pub public: String,
    /// `host:port` of its service port, when known.
    pub service: Option<String>,
    /// How it is spoken to.
    #[serde(default)]
    pub kind: PeerKind,
}

/// How a peer is spoken to: a tarsier agent, or an agent that speaks HTTP/1.1 only, such as the reference
/// Go Tarsier during a migration (docs/compatibility.md).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerKind {
    /// HTTP/2 (h2c, or h2 by ALPN over TLS), tarsier's wave format, the swarm token.
    #[default]
    Tarsier,
    /// HTTP/1.1 (over TLS with `https`), the reference's wave format (`wave: {remains, buddies}`), no token.
    Reference { https: bool },
}

impl PeerKind {
    /// An address as discovery or a static list gives it: `host:port` is a tarsier agent; with a scheme
    /// (`http://host:port`, the form the reference registered in Consul) an HTTP/1.1 agent.
    pub fn from_address(address: &str) -> (&str, PeerKind) {
        if let Some(rest) = address.strip_prefix("http://") {
            (rest, PeerKind::Reference { https: false })
        } else if let Some(rest) = address.strip_prefix("https://") {
            (rest, PeerKind::Reference { https: true })
        } else {
            (address, PeerKind::Tarsier)
        }
    }
}

/// A shared snapshot of peers: a window of a list that many views may share. The local registry gives each of
/// its agents a window of one list, so a swarm of N agents holds O(N) peers instead of N copies of N-1 (at
/// 1,000 agents those copies were about 170 MB).
#[derive(Clone, Debug, Default)]
pub struct PeerList {
    shared: Arc<[Peer]>,
    window: Range<usize>,
}

impl PeerList {
    /// `window` of `shared`; a window that does not fit is cut to the list.
    pub fn window(shared: Arc<[Peer]>, window: Range<usize>) -> Self {
        let end = window.end.min(shared.len());
        Self { window: window.start.min(end)..end, shared }
    }
}

impl From<Arc<[Peer]>> for PeerList {
    fn from(shared: Arc<[Peer]>) -> Self {
        let window = 0..shared.len();
        Self { shared, window }
    }
}

impl Deref for PeerList {
    type Target = [Peer];
    fn deref(&self) -> &[Peer] {
        &self.shared[self.window.clone()]
    }
}

pub type Leave<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

pub trait PeerSource: Send + Sync + 'static {
    /// `consul`, `static`, `local` or `none`.
    fn kind(&self) -> &'static str;
    /// The healthy peers known now, never this agent itself. A shared snapshot: every hop of every wave asks,
    /// so this must not copy the list (at 1,000 agents copying it was a large part of a wave's cost).
    fn peers(&self) -> PeerList;
    /// Every agent known to be part of the swarm, healthy or not (for Prometheus' `/sd`, so a failing
    /// agent shows as `up == 0` instead of vanishing). The healthy peers, where nothing more is known.
    fn members(&self) -> PeerList {
        self.peers()
    }
    /// Leaves the swarm (deregisters) at shutdown.
    fn leave(&self) -> Leave<'_> {
        Box::pin(async {})
    }
}

/// A lone agent: waves stop here.
pub struct NoPeers;

impl PeerSource for NoPeers {
    fn kind(&self) -> &'static str {
        "none"
    }
    fn peers(&self) -> PeerList {
        PeerList::default()
    }
}

/// `--peers a:8080,b:8080`: a fixed list, for setups without Consul.
pub struct StaticPeers(Arc<[Peer]>);

impl StaticPeers {
    /// Every address but this agent's own; `http://host:port` names an HTTP/1.1 (reference) agent.
    pub fn new(addresses: &[String], own_public: &str) -> Self {
        Self(
            addresses
                .iter()
                .map(|a| (a, PeerKind::from_address(a)))
                .filter(|(_, (public, _))| *public != own_public)
                .map(|(a, (public, kind))| Peer { id: a.clone(), public: public.to_owned(), service: None, kind })
                .collect(),
        )
    }
}

impl PeerSource for StaticPeers {
    fn kind(&self) -> &'static str {
        "static"
    }
    fn peers(&self) -> PeerList {
        self.0.clone().into()
    }
}

/// This agent's Consul registration.
pub fn consul_registration(
    me: &Peer,
    host: &str,
    (public_port, public_tls): (u16, bool),
    (service_port, service_tls): (u16, bool),
) -> Registration {
    Registration {
        id: me.id.clone(),
        host: host.trim_start_matches('[').trim_end_matches(']').to_owned(),
        public_port,
        public_tls,
        service_port,
        service_tls,
    }
}
