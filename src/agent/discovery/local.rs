//! The in-process registry of `tarsier swarm`: every agent of the process registers here, and each sees the
//! others as peers. Nothing to install, which makes it the default for demos, tests and benchmarks.

use std::sync::{Arc, Mutex, RwLock};

use super::{Leave, Peer, PeerList, PeerSource};

#[derive(Default)]
pub struct LocalRegistry {
    members: RwLock<Members>,
}

#[derive(Default)]
struct Members {
    agents: Vec<Peer>,
    /// Counts joins and leaves, so views know when to look again.
    version: u64,
    /// The agents twice over (less the last), built once per version on first use: agent i's peers are the
    /// window i+1 .. i+N of it, so every view shares this one list.
    ring: Option<Arc<[Peer]>>,
}

impl Members {
    fn ring(&mut self) -> Arc<[Peer]> {
        let agents = &self.agents;
        self.ring
            .get_or_insert_with(|| {
                agents.iter().chain(agents.iter().take(agents.len().saturating_sub(1))).cloned().collect()
            })
            .clone()
    }

    fn changed(&mut self) {
        self.version += 1;
        self.ring = None;
    }
}

impl LocalRegistry {
    /// Registers `me` and returns the view of the others that `me` uses as its peer source.
    pub fn join(self: &Arc<Self>, me: Peer) -> LocalView {
        let id = me.id.clone();
        let mut members = self.members.write().unwrap_or_else(|p| p.into_inner());
        members.agents.push(me);
        members.changed();
        LocalView { registry: self.clone(), me: id, cache: Mutex::new((u64::MAX, PeerList::default())) }
    }
}

pub struct LocalView {
    registry: Arc<LocalRegistry>,
    me: String,
    /// The others, as of the registry's version: looked up again only after a join or a leave, since every
    /// wave hop asks for it and a swarm's membership rarely changes.
    cache: Mutex<(u64, PeerList)>,
}

impl PeerSource for LocalView {
    fn kind(&self) -> &'static str {
        "local"
    }
    fn peers(&self) -> PeerList {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let version = self.registry.members.read().unwrap_or_else(|p| p.into_inner()).version;
        if cache.0 != version {
            let mut members = self.registry.members.write().unwrap_or_else(|p| p.into_inner());
            let (ring, all) = (members.ring(), members.agents.len());
            let view = match members.agents.iter().position(|p| p.id == self.me) {
                Some(mine) => PeerList::window(ring, mine + 1..mine + all),
                // Gone (after `leave`): everyone left is a peer.
                None => PeerList::window(ring, 0..all),
            };
            *cache = (members.version, view);
        }
        cache.1.clone()
    }
    fn leave(&self) -> Leave<'_> {
        let mut members = self.registry.members.write().unwrap_or_else(|p| p.into_inner());
        members.agents.retain(|p| p.id != self.me);
        members.changed();
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::discovery::PeerKind;

    fn peer(n: usize) -> Peer {
        Peer {
            id: format!("a{n}"),
            public: format!("127.0.0.1:{n}"),
            service: None,
            kind: PeerKind::Tarsier,
            labels: Default::default(),
        }
    }

    fn ids(list: &[Peer]) -> Vec<&str> {
        list.iter().map(|p| p.id.as_str()).collect()
    }

    #[test]
    fn every_view_sees_the_others_from_one_shared_list() {
        let registry = Arc::new(LocalRegistry::default());
        let views: Vec<LocalView> = (0..4).map(|n| registry.join(peer(n))).collect();
        assert_eq!(ids(&views[0].peers()), ["a1", "a2", "a3"]);
        assert_eq!(ids(&views[2].peers()), ["a3", "a0", "a1"]);
        assert_eq!(ids(&views[3].peers()), ["a0", "a1", "a2"]);
        // One list of 2N-1 agents behind all four views.
        let ring = registry.members.write().unwrap().ring();
        assert_eq!(ring.len(), 7);

        drop(views[1].leave());
        assert_eq!(ids(&views[0].peers()), ["a2", "a3"]);
        assert_eq!(ids(&views[3].peers()), ["a0", "a2"]);
        assert_eq!(ids(&views[1].peers()), ["a0", "a2", "a3"]);
    }

    #[test]
    fn a_lone_agent_has_no_peers() {
        let registry = Arc::new(LocalRegistry::default());
        let me = registry.join(peer(0));
        assert!(me.peers().is_empty());
    }
}
