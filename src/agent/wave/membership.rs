//! A static peer proves it holds the swarm key before it gets anything: the first copy to it waits for a
//! challenge (`GET /membership?nonce=N`, answered with a MAC of the nonce and the peer's own address), and a
//! proven peer is trusted for [`PROVEN_FOR`]. A peer that fails is refused for [`RETRY_AFTER`], then asked
//! again: a peer that was down at start is not shut out for good. Consul peers prove membership in their
//! registration instead (`discovery::consul`); the local swarm's are this process's own agents.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::agent::discovery::{Peer, Refused};
use crate::credentials::membership::challenge;
use crate::credentials::SwarmKey;

/// How long a proof holds before the peer is asked again.
const PROVEN_FOR: Duration = Duration::from_secs(300);
/// How long a peer that failed its challenge is refused before it is asked again.
const RETRY_AFTER: Duration = Duration::from_secs(2);
/// At most this many peers are remembered either way; past it the oldest entries are dropped first.
const MAX_REMEMBERED: usize = 4096;

/// What this agent knows of its static peers' membership.
#[derive(Default)]
pub struct Membership {
    proven: Mutex<HashMap<String, Instant>>,
    refused: Mutex<HashMap<String, (String, Instant)>>,
}

impl Membership {
    /// Ok when `peer` proved membership recently or proves it now.
    pub async fn prove(
        &self,
        key: &SwarmKey,
        http: &reqwest::Client,
        url: reqwest::Url,
        peer: &Peer,
    ) -> Result<(), String> {
        let now = Instant::now();
        if self.proven.lock().unwrap_or_else(|p| p.into_inner()).get(&peer.public).is_some_and(|until| *until > now) {
            return Ok(());
        }
        if let Some((reason, _)) =
            self.refused.lock().unwrap_or_else(|p| p.into_inner()).get(&peer.public).filter(|(_, until)| *until > now)
        {
            return Err(reason.clone());
        }
        match challenge(key, http, url, &peer.public).await {
            Ok(()) => {
                self.refused.lock().unwrap_or_else(|p| p.into_inner()).remove(&peer.public);
                remember(&self.proven, &peer.public, Instant::now() + PROVEN_FOR);
                Ok(())
            }
            Err(reason) => {
                tracing::warn!(peer = ?peer.id, address = ?peer.public, %reason, "a static peer did not prove membership");
                let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
                if refused.len() >= MAX_REMEMBERED {
                    refused.clear();
                }
                refused.insert(peer.public.clone(), (reason.clone(), Instant::now() + RETRY_AFTER));
                Err(reason)
            }
        }
    }

    /// The peers refused lately, for `/peers`.
    pub fn refused(&self) -> Vec<Refused> {
        let refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        let mut list: Vec<Refused> = refused
            .iter()
            .map(|(address, (reason, _))| Refused {
                id: address.clone(),
                address: address.clone(),
                reason: reason.clone(),
            })
            .collect();
        list.sort_by(|a, b| a.address.cmp(&b.address));
        list
    }
}

fn remember(map: &Mutex<HashMap<String, Instant>>, address: &str, until: Instant) {
    let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
    if map.len() >= MAX_REMEMBERED {
        let now = Instant::now();
        map.retain(|_, until| *until > now);
    }
    if map.len() < MAX_REMEMBERED {
        map.insert(address.to_owned(), until);
    }
}
