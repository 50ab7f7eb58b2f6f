//! The answers agents send: to `/exec` (`ExecAnswer`, with how its wave went, `Forwarded`), to `/abort`
//! (`AbortAnswer`), and the part of a peer's answer to a copy that the sender reads (`CopyAnswer`). The agent
//! writes them; the client side and the forwarding agent read what they need of them through these types.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tarsier_plugin::Held;

use super::status::Status;

/// The JSON answer of `/exec`. Typed rather than built as a `serde_json::Value`: building, patching and
/// dropping that tree was a fifth of an agent's own cost per request.
#[derive(Debug, Serialize)]
// PERF(control): a typed answer, not a serde_json::Value tree built and dropped per request.
pub struct ExecAnswer {
    pub wave_id: String,
    /// Shared with the agent's state and the registry: an answer allocates nothing for its names.
    #[serde(serialize_with = "as_str")]
    pub agent: Arc<str>,
    #[serde(serialize_with = "as_str")]
    pub command: Arc<str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_id: Option<u64>,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elapsed_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The data field an `invalid` answer is about; `null` when it is about the whole data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<Option<String>>,
    /// Peers that took this agent's copy of the wave.
    pub forwarded: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward: Option<Forwarded>,
    /// For a wave with `select`: what was asked and which agents the origin chose.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selection: Option<Box<Selection>>,
}

/// The agents a wave's `select` chose, as the origin tells its client and its report.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Selection {
    /// What was asked, for a person: `count 3 of zone=b`.
    pub asked: String,
    /// Agents the origin knew whose labels matched.
    pub matched: usize,
    /// The public `host:port`s of the agents chosen to run it.
    pub chosen: Vec<String>,
}

impl ExecAnswer {
    /// An answer with no result (yet), nothing forwarded.
    pub fn new(wave_id: String, agent: Arc<str>, command: Arc<str>, job_id: Option<u64>, status: Status) -> Self {
        Self {
            wave_id,
            agent,
            command,
            job_id,
            status,
            result: None,
            elapsed_ms: None,
            error: None,
            field: None,
            forwarded: 0,
            forward: None,
            selection: None,
        }
    }
}

/// The answer of `/abort`.
#[derive(Debug, Serialize)]
pub struct AbortAnswer {
    pub agent: String,
    pub wave_id: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancelled_jobs: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub released: Option<Held>,
    pub forwarded: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forward: Option<Forwarded>,
}

impl AbortAnswer {
    pub fn duplicate(agent: &str, wave_id: String) -> Self {
        Self {
            agent: agent.to_owned(),
            wave_id,
            status: Status::Duplicate,
            cancelled_jobs: None,
            released: None,
            forwarded: 0,
            forward: None,
        }
    }
}

/// What forwarding one hop achieved.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Forwarded {
    /// Peers that took the copy.
    pub accepted: u32,
    /// Peers that had already run this dedupe wave.
    pub duplicates: u32,
    /// Peers that could not be reached or refused the copy.
    pub failed: u32,
}

/// What a sender reads of a peer's answer to a copy: only how it stands (`accepted`, or `duplicate` for a
/// dedupe wave the peer had run). Anything else in it is ignored.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct CopyAnswer {
    pub status: Status,
}

/// Writes a shared name as a plain string (serde's `rc` feature is not on).
pub(crate) fn as_str<S: serde::Serializer>(text: &Arc<str>, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(text)
}

/// `GET /membership?nonce=N`: an agent's proof that it holds the swarm key, for the address it names as its
/// own (`credentials::SwarmKey::challenge_answer`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MembershipAnswer {
    pub address: String,
    pub proof: String,
}
