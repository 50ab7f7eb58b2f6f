//! The swarm as one agent knows it: that agent's `GET /status`, then every peer it names, each asked for its
//! own. A peer is a name some discovery gave the entry agent (a Consul registration anyone on the network may
//! write), so with a token it first proves it holds the swarm key (`credentials::membership`); one that does
//! not is shown as unproven and never gets the token. Shared by `tarsier status` and `tarsier console`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::task::JoinSet;

use crate::cli::ClientArgs;
use crate::credentials::{SwarmKey, Token};
use crate::wire::agent_status::AgentStatus;

use super::{agent_client, endpoint};

/// Agents asked at most, the entry agent included: past it the view says how many it left out.
pub const MAX_AGENTS: usize = 256;
/// Agents asked at once.
const IN_FLIGHT: usize = 16;
/// How long one agent may take to answer `/status`.
const STATUS_TIMEOUT: Duration = Duration::from_secs(3);

/// The scheme every agent of the swarm is spoken to with: the one the user gave for the entry agent (a swarm is
/// all plain or all TLS).
pub fn scheme_of(entry_url: &str) -> &'static str {
    if entry_url.starts_with("https://") {
        "https"
    } else {
        "http"
    }
}

/// What one pass found.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SwarmView {
    /// The agent every other one was heard of from.
    pub entry: String,
    /// Sorted by address; the entry agent among them.
    pub agents: Vec<AgentView>,
    /// Peers named past [`MAX_AGENTS`], not asked.
    pub left_out: usize,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct AgentView {
    /// The public `host:port` it was reached at.
    pub address: String,
    #[serde(flatten)]
    pub reach: Reach,
}

/// How an agent answered.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Reach {
    Up {
        status: Box<AgentStatus>,
    },
    /// It did not answer, or not with a status.
    Down {
        reason: String,
    },
    /// It answered but did not prove it holds the swarm key: it got no token and nothing was asked of it.
    Unproven {
        reason: String,
    },
}

impl SwarmView {
    pub fn up(&self) -> impl Iterator<Item = (&str, &AgentStatus)> {
        self.agents.iter().filter_map(|a| match &a.reach {
            Reach::Up { status } => Some((a.address.as_str(), &**status)),
            _ => None,
        })
    }
}

/// Asks agents for their status on behalf of one client: its token goes only to agents that proved
/// membership (or to the entry agent, which the user named).
#[derive(Clone)]
pub struct Surveyor {
    /// With the token.
    trusted: reqwest::Client,
    /// Without it: membership challenges.
    stranger: reqwest::Client,
    key: Option<Arc<SwarmKey>>,
}

impl Surveyor {
    pub fn new(access: &ClientArgs) -> anyhow::Result<Self> {
        let key = match &access.token_file {
            Some(path) => Some(Arc::new(SwarmKey::from_token(&Token::from_file(path, false)?))),
            None => None,
        };
        let without_token = ClientArgs { token_file: None, ..access.clone() };
        Ok(Self {
            trusted: agent_client(STATUS_TIMEOUT, access)?,
            stranger: agent_client(STATUS_TIMEOUT, &without_token)?,
            key,
        })
    }

    /// The client that carries the token, for agents this surveyor has found proven.
    pub fn trusted_client(&self) -> &reqwest::Client {
        &self.trusted
    }

    /// The entry agent's status, then every peer it names.
    pub async fn survey(&self, entry_url: &str) -> SwarmView {
        let base = endpoint(entry_url, "");
        let scheme = scheme_of(&base);
        let entry = self.status(&base).await;
        let entry_address = base.split_once("://").map(|(_, rest)| rest).unwrap_or(&base).to_owned();
        let Ok(entry_status) = entry else {
            let reason = entry.err().map(|e| format!("{e:#}")).unwrap_or_default();
            return SwarmView {
                entry: entry_address.clone(),
                agents: vec![AgentView { address: entry_address, reach: Reach::Down { reason } }],
                left_out: 0,
            };
        };
        let own = entry_status.address.clone();
        let mut named: Vec<String> =
            entry_status.peers.iter().map(|p| p.public.clone()).filter(|p| *p != own && *p != entry_address).collect();
        named.sort();
        named.dedup();
        let left_out = named.len().saturating_sub(MAX_AGENTS - 1);
        named.truncate(MAX_AGENTS - 1);
        let mut agents =
            vec![AgentView { address: entry_address.clone(), reach: Reach::Up { status: Box::new(entry_status) } }];
        let gate = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        let mut asked = JoinSet::new();
        for address in named {
            let (me, gate) = (self.clone(), gate.clone());
            let scheme = scheme.to_owned();
            asked.spawn(async move {
                let _turn = gate.acquire_owned().await;
                let reach = me.peer(&scheme, &address).await;
                AgentView { address, reach }
            });
        }
        while let Some(done) = asked.join_next().await {
            if let Ok(view) = done {
                agents.push(view);
            }
        }
        agents.sort_by(|a, b| a.address.cmp(&b.address));
        SwarmView { entry: entry_address, agents, left_out }
    }

    /// A peer: proven first when there is a key, then asked.
    async fn peer(&self, scheme: &str, address: &str) -> Reach {
        let base = format!("{scheme}://{address}");
        if let Some(key) = &self.key {
            let url = match reqwest::Url::parse(&format!("{base}/membership")) {
                Ok(url) => url,
                Err(err) => return Reach::Unproven { reason: format!("not an address: {err}") },
            };
            if let Err(reason) = crate::credentials::membership::challenge(key, &self.stranger, url, address).await {
                return Reach::Unproven { reason };
            }
        }
        match self.status(&base).await {
            Ok(status) => Reach::Up { status: Box::new(status) },
            Err(err) => Reach::Down { reason: format!("{err:#}") },
        }
    }

    async fn status(&self, base: &str) -> anyhow::Result<AgentStatus> {
        let target = format!("{base}/status");
        let response = self.trusted.get(&target).send().await.with_context(|| format!("cannot reach {target}"))?;
        let status = response.status();
        if !status.is_success() {
            let answer: serde_json::Value = response.json().await.unwrap_or_default();
            anyhow::bail!("answered {status}: {}", answer["error"].as_str().unwrap_or("no reason given"));
        }
        response.json().await.with_context(|| format!("{target} did not answer a status"))
    }
}
