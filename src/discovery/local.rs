//! The in-process registry of `tarsier swarm`: every agent of the process registers here, and each sees the
//! others as peers. Nothing to install, which makes it the default for demos, tests and benchmarks.

use std::sync::{Arc, RwLock};

use super::{Leave, Peer, PeerSource};

#[derive(Default)]
pub struct LocalRegistry {
    agents: RwLock<Vec<Peer>>,
}

impl LocalRegistry {
    /// Registers `me` and returns the view of the others that `me` uses as its peer source.
    pub fn join(self: &Arc<Self>, me: Peer) -> LocalView {
        let id = me.id.clone();
        self.agents.write().unwrap_or_else(|p| p.into_inner()).push(me);
        LocalView { registry: self.clone(), me: id }
    }
}

pub struct LocalView {
    registry: Arc<LocalRegistry>,
    me: String,
}

impl PeerSource for LocalView {
    fn kind(&self) -> &'static str {
        "local"
    }
    fn peers(&self) -> Vec<Peer> {
        let agents = self.registry.agents.read().unwrap_or_else(|p| p.into_inner());
        agents.iter().filter(|p| p.id != self.me).cloned().collect()
    }
    fn leave(&self) -> Leave<'_> {
        self.registry.agents.write().unwrap_or_else(|p| p.into_inner()).retain(|p| p.id != self.me);
        Box::pin(async {})
    }
}
