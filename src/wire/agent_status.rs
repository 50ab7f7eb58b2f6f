//! `GET /status` on the public port: one agent at a glance (what it holds, what runs on it, whom it knows),
//! for `tarsier status` and `tarsier console`. One request per agent tells all of it.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tarsier_plugin::Held;

use crate::sys::runtime_stats::ProcessStats;
use crate::wire::body::Labels;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AgentStatus {
    pub agent: String,
    pub version: String,
    /// The public `host:port` it is known by in the swarm.
    pub address: String,
    pub uptime_seconds: f64,
    /// How often `tarsier swarm` has started this agent again after it died (0 elsewhere).
    #[serde(default)]
    pub restarts: u64,
    #[serde(default)]
    pub labels: Labels,
    pub process: ProcessStats,
    pub held: Held,
    pub running: Vec<RunningJob>,
    /// Finished jobs it still keeps (`GET /jobs` lists them).
    pub finished: usize,
    /// The latest waves that started here with a report (`GET /waves/{id}`), newest last.
    #[serde(default)]
    pub waves: Vec<String>,
    /// The peers it knows (from discovery), each to be proven before it is trusted.
    pub peers: Vec<StatusPeer>,
}

/// A running job, as `/status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunningJob {
    pub id: u64,
    pub command: String,
    pub wave_id: String,
    pub elapsed_ms: u64,
    /// How long it was asked to run, when its data says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// What the command publishes of its progress (`net/http_load` does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<Value>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusPeer {
    pub id: String,
    /// Its public `host:port`.
    pub public: String,
    #[serde(default)]
    pub labels: Labels,
}
