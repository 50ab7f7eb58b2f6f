//! Where an agent finds its peers, behind one trait: Consul, a static list, or the in-process registry of a
//! local swarm. The wave code only ever asks `peers()`.

mod consul;
mod local;
mod trust;

use std::future::Future;
use std::ops::{Deref, Range};
use std::pin::Pin;
use std::sync::Arc;

use serde::Serialize;

pub use consul::{ConsulConfig, ConsulPeers, Registration};
pub use local::LocalRegistry;
pub use trust::{CompatConfig, ReferencePeers, Refused, Trust};

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
    /// Its labels, as discovery says (Consul meta `label_*` and `key=value` tags; a static peer's after `#`).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: crate::wire::body::Labels,
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
    /// The instances discovery found that are not peers, and why (shown by `/peers`).
    fn refused(&self) -> Vec<Refused> {
        Vec::new()
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

/// `--peers a:8080,b:8080`: a fixed list, for setups without Consul. A `host:port` is a tarsier agent,
/// which proves membership when first sent to (a challenge, `wave::membership`); `http://host:port` an
/// HTTP/1.1 (reference) agent, a peer only when `compat.reference_peers` lists it. Labels follow a `#`:
/// `a:8080#zone=a;rack=1` (what `wave.select.labels` matches, as Consul's meta does).
pub struct StaticPeers {
    peers: Arc<[Peer]>,
    refused: Vec<Refused>,
}

impl StaticPeers {
    /// Every address but this agent's own, sorted into peers and refused ones by `trust`.
    pub fn new(addresses: &[String], own_public: &str, trust: &Trust) -> Self {
        let mut peers = Vec::new();
        let mut refused = Vec::new();
        for entry in addresses {
            let (address, labels) = match split_static(entry) {
                (address, Some(labels)) => (address, static_labels(labels)),
                (address, None) => (address, Ok(Default::default())),
            };
            let (public, kind) = PeerKind::from_address(address);
            if public == own_public {
                continue;
            }
            let peer = Peer {
                id: address.to_owned(),
                public: public.to_owned(),
                service: None,
                kind,
                labels: labels.clone().unwrap_or_default(),
            };
            let admitted = labels.map_err(|why| format!("its labels: {why}")).and_then(|_| admission(&peer, trust));
            match admitted {
                Ok(()) => peers.push(peer),
                Err(reason) => {
                    tracing::warn!(peer = %address, %reason, "a static peer is refused");
                    refused.push(Refused { id: peer.id, address: peer.public, reason });
                }
            }
        }
        Self { peers: peers.into(), refused }
    }
}

/// A static peer entry, `address#labels`, split in two (the labels unread).
pub fn split_static(entry: &str) -> (&str, Option<&str>) {
    match entry.split_once('#') {
        Some((address, labels)) => (address, Some(labels)),
        None => (entry, None),
    }
}

/// `zone=a;rack=1`, each label checked.
fn static_labels(text: &str) -> Result<crate::wire::body::Labels, String> {
    let mut labels = crate::wire::body::Labels::new();
    for pair in text.split(';').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').ok_or_else(|| format!("{pair:?} is not key=value"))?;
        crate::wire::body::check_label(key, value)?;
        labels.insert(key.to_owned(), value.to_owned());
    }
    crate::wire::body::check_labels(&labels)?;
    Ok(labels)
}

/// Whether a discovered instance may be a peer before any proof: its address must be a host and a port, and
/// an HTTP/1.1 agent must be listed in `compat.reference_peers` (and speak TLS when this agent does). A
/// tarsier agent's proof is checked apart (a Consul meta, a challenge).
pub(crate) fn admission(peer: &Peer, trust: &Trust) -> Result<(), String> {
    if !crate::wire::address::is_host_port(&peer.public) {
        return Err("its address is not a host and a port".into());
    }
    match peer.kind {
        PeerKind::Tarsier => Ok(()),
        PeerKind::Reference { .. } if !trust.reference_peers.lists(&peer.public) => {
            Err("an HTTP/1.1 (reference) agent that compat.reference_peers does not list: it cannot prove membership"
                .into())
        }
        PeerKind::Reference { https: false } if trust.tls => {
            Err("an HTTP/1.1 agent without TLS: an agent with public_tls never sends plaintext".into())
        }
        PeerKind::Reference { .. } => Ok(()),
    }
}

impl PeerSource for StaticPeers {
    fn kind(&self) -> &'static str {
        "static"
    }
    fn peers(&self) -> PeerList {
        self.peers.clone().into()
    }
    fn refused(&self) -> Vec<Refused> {
        self.refused.clone()
    }
}

/// This agent's Consul registration, with its membership proof when it has the swarm key.
pub fn consul_registration(
    me: &Peer,
    host: &str,
    (public_port, public_tls): (u16, bool),
    (service_port, service_tls): (u16, bool),
    key: Option<&crate::credentials::SwarmKey>,
) -> Registration {
    let host = host.trim_start_matches('[').trim_end_matches(']').to_owned();
    Registration {
        id: me.id.clone(),
        proof: key.map(|key| key.membership_proof(&me.id, &host, public_port)),
        host,
        public_port,
        public_tls,
        service_port,
        service_tls,
        labels: me.labels.clone(),
    }
}
