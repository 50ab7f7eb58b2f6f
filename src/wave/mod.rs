//! Waves: forwarding a command to random healthy peers, at-most-once execution for dedupe waves, and the
//! origin's report of who ran what. [`Swarm`] owns everything this needs (peers, the HTTP client, this
//! agent's name and address, the wave records and counters) and never looks at the rest of the agent.
//!
//! Every body with a wave, `/exec` or `/abort`, goes through [`Swarm::enter`] once: it validates the wave,
//! decides who the origin is, drops dedupe duplicates, and says what copy to send on.

mod forward;
mod records;

use std::sync::Arc;

use axum::body::Bytes;
use serde::Serialize;
use serde_json::Value;
use tokio::task::JoinHandle;

use crate::body::WaveSpec;
use crate::discovery::PeerSource;
use crate::error::ApiError;
use crate::metrics::WaveMetrics;
use crate::outcome::Status;

pub use forward::{Forwarded, FORWARD_TIMEOUT};
pub use records::{now_ms, ReportEntry, WaveRecords};

/// This agent's part in the swarm.
pub struct Swarm {
    /// This agent's name, in reports.
    pub name: String,
    /// `host:port` peers reach this agent's public port at: the origin of the waves it starts.
    pub advertised_public: String,
    pub peers: Arc<dyn PeerSource>,
    /// One client for copies and reports (one HTTP/2 connection per peer).
    http: reqwest::Client,
    pub records: WaveRecords,
    metrics: WaveMetrics,
}

/// The public route a wave's copies go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Exec,
    Abort,
}

impl Route {
    fn path(self) -> &'static str {
        match self {
            Route::Exec => "/exec",
            Route::Abort => "/abort",
        }
    }
}

/// What [`Swarm::enter`] decided about a body.
pub enum Entry {
    /// A dedupe wave this agent has already run: nothing to do.
    Duplicate { wave_id: String },
    /// Run it here, and send `next` on when there is one.
    Run(Admitted),
}

/// A wave taken in by this agent.
#[derive(Debug, Clone)]
pub struct Admitted {
    pub wave_id: String,
    /// This agent took the body from a client (hop 0): it is the wave's origin, and its client waits for the
    /// answer. A copy from a peer (hop > 0) is answered at once, so a deep wave holds no connection open.
    pub is_origin: bool,
    pub hop: u32,
    pub received_at_ms: u64,
    /// The origin's public address, when the wave reports back.
    pub report_to: Option<String>,
    /// The wave as the next hop gets it, when `remain` says there is one.
    pub next: Option<WaveSpec>,
}

impl Swarm {
    pub fn new(
        name: String,
        advertised_public: String,
        peers: Arc<dyn PeerSource>,
        http: reqwest::Client,
        metrics: WaveMetrics,
    ) -> Self {
        Self { name, advertised_public, peers, http, records: WaveRecords::default(), metrics }
    }

    /// Takes in a body's wave (the default, a wave of one, when it has none); `command` names it in the
    /// report. The origin is the agent at hop 0, always: it gives the wave its id and, for a reporting wave,
    /// names itself as the origin copies report to, whatever the client wrote there.
    pub fn enter(&self, wave: Option<WaveSpec>, command: &str) -> Result<Entry, ApiError> {
        let mut wave = wave.unwrap_or_default();
        wave.validate()?;
        let received_at_ms = now_ms();
        let is_origin = wave.hop == 0;
        let wave_id = wave.id.get_or_insert_with(new_wave_id).clone();
        if is_origin {
            wave.origin = wave.report.then(|| self.advertised_public.clone());
            if wave.report {
                self.records.open_report(&wave_id, command);
            }
        } else {
            self.metrics.received.inc();
        }
        if wave.dedupe && !self.records.first_time(&wave_id) {
            self.metrics.deduped.inc();
            return Ok(Entry::Duplicate { wave_id });
        }
        let report_to = if wave.report { wave.origin.clone() } else { None };
        let next = (wave.remain > 0).then(|| wave.next_hop());
        Ok(Entry::Run(Admitted { wave_id, is_origin, hop: wave.hop, received_at_ms, report_to, next }))
    }

    /// Starts sending `copy` (the body as the next hop gets it, `next` being its wave) to this hop's peers.
    pub fn forward(self: &Arc<Self>, route: Route, copy: &impl Serialize, next: &WaveSpec) -> JoinHandle<Forwarded> {
        // Serialized once for every peer this hop tries.
        let bytes = Bytes::from(serde_json::to_vec(copy).unwrap_or_default());
        let (swarm, buddies, dedupe) = (self.clone(), next.buddies, next.dedupe);
        tokio::spawn(async move { forward::forward(&swarm, route.path(), bytes, buddies, dedupe).await })
    }

    /// Reports this agent's result to the wave's origin, when the wave asked for reports.
    pub async fn report(&self, admitted: &Admitted, status: Status, elapsed_ms: u64, result: Value) {
        let Some(origin) = &admitted.report_to else { return };
        let entry = ReportEntry {
            agent: self.name.clone(),
            hop: admitted.hop,
            status,
            received_at_ms: admitted.received_at_ms,
            elapsed_ms,
            result,
        };
        forward::report(self, origin, &admitted.wave_id, entry).await;
    }
}

/// A wave id: 16 hex digits, random enough to tell waves apart across a swarm.
pub fn new_wave_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}
