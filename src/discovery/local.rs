//! The in-process registry of `tarsier swarm`: every agent of the process registers here, and each sees the
//! others as peers. Nothing to install, which makes it the default for demos, tests and benchmarks.

use std::sync::{Arc, Mutex, RwLock};

use super::{Leave, Peer, PeerSource};

#[derive(Default)]
pub struct LocalRegistry {
    /// Every agent, and a count of joins and leaves so views know when to rebuild.
    agents: RwLock<(Vec<Peer>, u64)>,
}

impl LocalRegistry {
    /// Registers `me` and returns the view of the others that `me` uses as its peer source.
    pub fn join(self: &Arc<Self>, me: Peer) -> LocalView {
        let id = me.id.clone();
        let mut agents = self.agents.write().unwrap_or_else(|p| p.into_inner());
        agents.0.push(me);
        agents.1 += 1;
        LocalView { registry: self.clone(), me: id, cache: Mutex::new((u64::MAX, Arc::new([]))) }
    }
}

pub struct LocalView {
    registry: Arc<LocalRegistry>,
    me: String,
    /// The others, as of the registry's change count: rebuilt only after a join or a leave, since every
    /// wave hop asks for it and a swarm's membership rarely changes.
    cache: Mutex<(u64, Arc<[Peer]>)>,
}

impl PeerSource for LocalView {
    fn kind(&self) -> &'static str {
        "local"
    }
    fn peers(&self) -> Arc<[Peer]> {
        let agents = self.registry.agents.read().unwrap_or_else(|p| p.into_inner());
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.0 != agents.1 {
            *cache = (agents.1, agents.0.iter().filter(|p| p.id != self.me).cloned().collect());
        }
        cache.1.clone()
    }
    fn leave(&self) -> Leave<'_> {
        let mut agents = self.registry.agents.write().unwrap_or_else(|p| p.into_inner());
        agents.0.retain(|p| p.id != self.me);
        agents.1 += 1;
        Box::pin(async {})
    }
}
