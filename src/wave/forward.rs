//! Waves (DESIGN 2.2): forwarding a command to random healthy peers, at-most-once execution for dedupe
//! waves, and the origin's report of who ran what.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::agent::AgentState;
use crate::discovery::Peer;

/// How long a dedupe wave id is remembered, and how many ids at most.
const SEEN_TTL: Duration = Duration::from_secs(15 * 60);
const SEEN_MAX: usize = 100_000;
/// Waves whose reports the origin keeps, and entries per wave.
const REPORTS_KEPT: usize = 200;
const ENTRIES_MAX: usize = 100_000;
/// Attempts per peer (the first plus retries) and the pause before each retry.
const ATTEMPTS: u32 = 3;
const RETRY_PAUSE: Duration = Duration::from_millis(50);
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(3);
/// A dedupe hop tries at most `max(2 x buddies, 20)` peers. Trying every peer instead made the tail of a flood
/// O(N²): once nearly all agents had the wave, each of them walked the whole swarm (a million requests at 1,000
/// agents, which choked that wave and the ones after it). With this bound late agents try 20 peers, about 18
/// per agent over a flood, so the chance that a given agent is never picked is about e^-18 whatever the
/// swarm's size: at 1,000 agents, one wave in tens of thousands misses one agent.
const DEDUPE_TRIES_PER_BUDDY: usize = 2;
const DEDUPE_TRIES_MIN: usize = 20;

/// Recent dedupe wave ids: bounded in count and age.
#[derive(Default)]
struct Seen {
    ids: HashSet<String>,
    order: VecDeque<(Instant, String)>,
}

impl Seen {
    fn first_time(&mut self, id: &str) -> bool {
        let now = Instant::now();
        while let Some((at, old)) = self.order.front() {
            if now.duration_since(*at) < SEEN_TTL && self.order.len() < SEEN_MAX {
                break;
            }
            self.ids.remove(old);
            self.order.pop_front();
        }
        if self.ids.contains(id) {
            return false;
        }
        self.ids.insert(id.to_owned());
        self.order.push_back((now, id.to_owned()));
        true
    }
}

/// One agent's report of one execution, sent to the origin.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportEntry {
    pub agent: String,
    pub hop: u32,
    pub status: String,
    /// When the agent received the command (Unix ms).
    pub received_at_ms: u64,
    pub elapsed_ms: u64,
    #[serde(default)]
    pub result: Value,
}

struct WaveRecord {
    command: String,
    started_at_ms: u64,
    entries: Vec<ReportEntry>,
}

/// What the agent knows of waves: ids seen, and the reports of the waves it started.
#[derive(Default)]
pub struct Waves {
    seen: Mutex<Seen>,
    reports: Mutex<(HashMap<String, WaveRecord>, VecDeque<String>)>,
}

impl Waves {
    /// True the first time a dedupe wave id arrives here.
    pub fn first_time(&self, id: &str) -> bool {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).first_time(id)
    }

    /// The origin opens a report for a wave it starts.
    pub fn open_report(&self, id: &str, command: &str) {
        let mut guard = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        let (records, order) = &mut *guard;
        if records.contains_key(id) {
            return;
        }
        if order.len() == REPORTS_KEPT {
            if let Some(old) = order.pop_front() {
                records.remove(&old);
            }
        }
        records.insert(
            id.to_owned(),
            WaveRecord { command: command.to_owned(), started_at_ms: now_ms(), entries: Vec::new() },
        );
        order.push_back(id.to_owned());
    }

    /// Adds an entry; false when this agent did not start that wave.
    pub fn add_report(&self, id: &str, entry: ReportEntry) -> bool {
        let mut guard = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        match guard.0.get_mut(id) {
            Some(record) if record.entries.len() < ENTRIES_MAX => {
                record.entries.push(entry);
                true
            }
            Some(_) => true,
            None => false,
        }
    }

    /// The command of a wave and the results of the agents that ran it without error, for merging.
    pub fn results(&self, id: &str) -> Option<(String, Vec<Value>)> {
        let guard = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        let record = guard.0.get(id)?;
        let ok = record.entries.iter().filter(|e| e.status == "ok").map(|e| e.result.clone()).collect();
        Some((record.command.clone(), ok))
    }

    /// The origin's summary of a wave: reach, results, timing, per-hop counts.
    pub fn summary(&self, id: &str, with_entries: bool) -> Option<Value> {
        let guard = self.reports.lock().unwrap_or_else(|p| p.into_inner());
        let record = guard.0.get(id)?;
        let agents: HashSet<&str> = record.entries.iter().map(|e| e.agent.as_str()).collect();
        let mut per_hop: BTreeMap<u32, u64> = BTreeMap::new();
        let mut by_status: BTreeMap<&str, u64> = BTreeMap::new();
        for e in &record.entries {
            *per_hop.entry(e.hop).or_default() += 1;
            *by_status.entry(e.status.as_str()).or_default() += 1;
        }
        let arrivals = record.entries.iter().map(|e| e.received_at_ms.saturating_sub(record.started_at_ms));
        let succeeded = record.entries.iter().filter(|e| e.status == "ok").count();
        let mut summary = json!({
            "wave_id": id,
            "command": record.command,
            "started_at_ms": record.started_at_ms,
            "agents_reached": agents.len(),
            "executions": record.entries.len(),
            "succeeded": succeeded,
            "failed": record.entries.len() - succeeded,
            "by_status": by_status,
            "first_arrival_ms": arrivals.clone().min(),
            "last_arrival_ms": arrivals.max(),
            "per_hop": per_hop,
        });
        if with_entries {
            summary["entries"] = json!(record.entries);
        }
        Some(summary)
    }
}

pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// What forwarding one hop achieved.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct Forwarded {
    /// Peers that took the copy.
    pub accepted: u32,
    /// Peers that had already run this dedupe wave.
    pub duplicates: u32,
    /// Peers that could not be reached or refused the copy.
    pub failed: u32,
}

/// How one peer answered a copy.
enum PeerAnswer {
    Accepted,
    Duplicate,
    Failed,
}

/// Sends `copy` to `buddies` random peers at `path` (`/exec` or `/abort`). Without dedupe: `buddies` distinct
/// peers, at once. With dedupe: peers that already had the wave do not count, so more are tried until `buddies`
/// new ones took it, every peer was tried, or the bound on tries (above) was reached;
/// this is what makes a dedupe wave with enough `remain` reach every agent, at a bounded cost.
pub async fn forward(
    state: &Arc<AgentState>,
    path: &'static str,
    copy: &Value,
    buddies: u32,
    dedupe: bool,
) -> Forwarded {
    let peers = state.peers.peers();
    // Serialized once for every peer this hop tries.
    let copy = axum::body::Bytes::from(serde_json::to_vec(copy).unwrap_or_default());
    let outcome = spread(peers.len(), buddies, dedupe, |index| {
        let (state, peers, copy) = (state.clone(), peers.clone(), copy.clone());
        async move { send_copy(&state, &peers[index], path, &copy).await }
    })
    .await;
    let metrics = &state.metrics;
    metrics.waves_forwarded.inc_by(u64::from(outcome.accepted));
    metrics.wave_forward_errors.inc_by(u64::from(outcome.failed));
    outcome
}

/// One hop's choice of peers, apart from HTTP: `send(i)` gives the copy to peer `i` of `peer_count`. Peers are
/// tried in a random order; a sliding window keeps `buddies` sends in flight, and each duplicate or failure is
/// replaced at once by the next peer, so an agent reached late does not also wait for the slowest of a batch.
async fn spread<F, Fut>(peer_count: usize, buddies: u32, dedupe: bool, mut send: F) -> Forwarded
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = PeerAnswer> + Send + 'static,
{
    let wanted = buddies as usize;
    let tries = if dedupe { wanted.saturating_mul(DEDUPE_TRIES_PER_BUDDY).max(DEDUPE_TRIES_MIN) } else { wanted };
    let mut order = {
        let mut rng = rand::rng();
        rand::seq::index::sample(&mut rng, peer_count, tries.min(peer_count)).into_vec().into_iter()
    };
    let mut outcome = Forwarded::default();
    let mut sends = tokio::task::JoinSet::new();
    loop {
        while outcome.accepted as usize + sends.len() < wanted {
            let Some(index) = order.next() else { break };
            sends.spawn(send(index));
        }
        let Some(answer) = sends.join_next().await else { break };
        match answer.unwrap_or(PeerAnswer::Failed) {
            PeerAnswer::Accepted => outcome.accepted += 1,
            PeerAnswer::Duplicate => outcome.duplicates += 1,
            PeerAnswer::Failed => outcome.failed += 1,
        }
    }
    outcome
}

/// POSTs the copy to one peer, retrying connection errors, timeouts and 5xx a bounded number of times.
async fn send_copy(state: &Arc<AgentState>, peer: &Peer, path: &str, copy: &axum::body::Bytes) -> PeerAnswer {
    let url = format!("http://{}{path}", peer.public);
    let started = Instant::now();
    let mut last_error = String::new();
    for attempt in 1..=ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(RETRY_PAUSE * attempt).await;
        }
        let request = state.http.post(&url).timeout(FORWARD_TIMEOUT);
        let request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(copy.clone());
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                state.metrics.wave_forward_seconds.observe(started.elapsed().as_secs_f64());
                let body: Value = response.json().await.unwrap_or(Value::Null);
                return if body["status"] == "duplicate" { PeerAnswer::Duplicate } else { PeerAnswer::Accepted };
            }
            Ok(response) if response.status().is_client_error() => {
                // The peer refused the copy itself (an older version, a limit): retrying will not help.
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                tracing::warn!(peer = %peer.id, %status, answer = %text, "a peer refused a wave copy");
                return PeerAnswer::Failed;
            }
            Ok(response) => last_error = format!("answered {}", response.status()),
            Err(err) => last_error = err.to_string(),
        }
    }
    tracing::warn!(peer = %peer.id, url = %url, error = %last_error, attempts = ATTEMPTS, "cannot forward a wave to a peer");
    PeerAnswer::Failed
}

/// Sends this agent's result to the wave's origin (or records it, when this agent is the origin).
pub async fn report(state: &Arc<AgentState>, origin: &str, wave_id: &str, entry: ReportEntry) {
    if origin == state.advertised_public {
        state.waves.add_report(wave_id, entry);
        return;
    }
    let url = format!("http://{origin}/waves/{wave_id}/report");
    for attempt in 1..=ATTEMPTS {
        match state.http.post(&url).timeout(FORWARD_TIMEOUT).json(&entry).send().await {
            Ok(r) if r.status().is_success() || r.status().is_client_error() => return,
            Ok(r) => tracing::debug!(status = %r.status(), attempt, "report not taken yet"),
            Err(err) => tracing::debug!(%err, attempt, "report not sent yet"),
        }
        tokio::time::sleep(RETRY_PAUSE * attempt).await;
    }
    tracing::warn!(origin, wave_id, "cannot report a wave result to its origin");
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Runs `spread` against peers that all answer `answer`; returns the outcome and the distinct peers tried.
    async fn spread_over(peers: usize, buddies: u32, dedupe: bool, answer: fn() -> PeerAnswer) -> (Forwarded, usize) {
        let tried = Arc::new(Mutex::new(HashSet::new()));
        let calls = Arc::new(AtomicUsize::new(0));
        let outcome = spread(peers, buddies, dedupe, |index| {
            tried.lock().unwrap().insert(index);
            calls.fetch_add(1, Ordering::Relaxed);
            async move { answer() }
        })
        .await;
        let distinct = tried.lock().unwrap().len();
        assert_eq!(distinct, calls.load(Ordering::Relaxed), "a peer was tried twice in one hop");
        (outcome, distinct)
    }

    #[tokio::test]
    async fn a_saturated_dedupe_flood_costs_a_bounded_number_of_tries_not_the_whole_swarm() {
        let (outcome, tried) = spread_over(1_000, 10, true, || PeerAnswer::Duplicate).await;
        assert_eq!((outcome.accepted, outcome.duplicates, tried), (0, 20, 20));
        let (outcome, tried) = spread_over(1_000, 1, true, || PeerAnswer::Failed).await;
        assert_eq!((outcome.failed, tried), (20, 20), "the floor of 20 tries holds for few buddies");
        let (outcome, tried) = spread_over(1_000, 30, true, || PeerAnswer::Duplicate).await;
        assert_eq!((outcome.duplicates, tried), (60, 60), "2 x buddies when that is more");
    }

    #[tokio::test]
    async fn a_hop_stops_once_buddies_took_the_copy() {
        let (outcome, tried) = spread_over(1_000, 10, true, || PeerAnswer::Accepted).await;
        assert_eq!((outcome.accepted, tried), (10, 10));
    }

    #[tokio::test]
    async fn a_small_swarm_is_tried_whole_and_a_plain_wave_tries_buddies_only() {
        let (outcome, tried) = spread_over(5, 10, true, || PeerAnswer::Duplicate).await;
        assert_eq!((outcome.duplicates, tried), (5, 5));
        let (outcome, tried) = spread_over(1_000, 10, false, || PeerAnswer::Duplicate).await;
        assert_eq!((outcome.duplicates, tried), (10, 10), "without dedupe a duplicate is not replaced");
        let (outcome, _) = spread_over(0, 10, true, || PeerAnswer::Accepted).await;
        assert_eq!(outcome.accepted, 0);
    }
}
