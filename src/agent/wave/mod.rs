//! Waves: forwarding a command to random healthy peers, at-most-once execution for dedupe waves, and the
//! origin's report of who ran what. [`Swarm`] owns everything this needs (peers, the HTTP client, this
//! agent's name and address, the wave records and counters) and never looks at the rest of the agent.
//!
//! Every body with a wave, `/exec` or `/abort`, goes through [`Swarm::enter`] once: it validates the wave,
//! decides who the origin is, drops dedupe duplicates, and says what copy to send on.

mod forward;
mod membership;
mod records;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::http::StatusCode;
use serde::Serialize;
use serde_json::value::RawValue;
use tarsier_plugin::{DEFAULT_ABORT_WINDOW, DEFAULT_MAX_WAVE_EXECUTIONS};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::agent::discovery::PeerKind;
use crate::agent::discovery::{PeerSource, Refused, Trust};
use crate::agent::metrics::WaveMetrics;
use crate::credentials::SwarmKey;
use crate::wire::answer::Selection;
use crate::wire::body::{labels_match, Labels, Select, WaveSpec};
use crate::wire::error::ApiError;
use crate::wire::status::Status;

use crate::wire::answer::Forwarded;
pub use records::{now_ms, ReportEntry, WaveKey, WaveRecords};

/// This agent's part in the swarm.
pub struct Swarm {
    /// This agent's name, in reports.
    pub name: String,
    /// `host:port` peers reach this agent's public port at: the origin of the waves it starts.
    pub advertised_public: String,
    /// How every agent of the swarm is reached: all plain or all TLS.
    scheme: Scheme,
    pub peers: Arc<dyn PeerSource>,
    /// One client for copies and reports (one HTTP/2 connection per peer).
    http: reqwest::Client,
    /// HTTP/1.1 for agents that speak nothing else (the reference Go Tarsier); it carries no token.
    http1: reqwest::Client,
    /// What makes a discovered agent a peer: the swarm key (copies are signed with it), the listed
    /// reference agents, TLS.
    trust: Trust,
    /// Static peers' proofs of membership.
    membership: membership::Membership,
    /// Listed static peers found to speak HTTP/1.1 only (an HTTP/2 attempt failed and HTTP/1.1 worked), by
    /// address: until when they are spoken to that way, and the wait before the next such finding.
    http1_peers: Mutex<std::collections::HashMap<String, Http1Finding>>,
    /// Static peers that answered over HTTP/2: never tried over HTTP/1.1.
    h2_peers: Mutex<std::collections::HashSet<String>>,
    pub records: WaveRecords,
    metrics: WaveMetrics,
    /// `limits.max_wave_executions` and `limits.abort_window`.
    bounds: WaveBounds,
    /// When the last abort started (Unix ms, the abort origin's clock); 0 before any.
    aborted_at_ms: AtomicU64,
    /// The clock the wave's time rules read: start times, the skew allowed, the abort window.
    clock: WallClock,
    /// Fired by an abort: every forward in flight stops. Replaced by a fresh one each time.
    forwarding: Mutex<CancellationToken>,
    /// Hops of command waves this agent forwards at once; a copy beyond them is refused (429).
    hops: Arc<Semaphore>,
    /// This agent's labels, which a wave's `select` matches (config `labels:` and `key=value` Consul tags).
    labels: Labels,
}

/// Command-wave hops one agent forwards at once. Without a bound a storm (a wave without dedupe and a large
/// budget) had every agent forwarding thousands of hops, and an `/abort` queued behind them for seconds.
pub const MAX_HOPS_IN_FLIGHT: usize = 64;

/// What bounds a wave's reach, from the config's `limits`.
#[derive(Debug, Clone, Copy)]
pub struct WaveBounds {
    pub max_executions: u64,
    pub abort_window: std::time::Duration,
}

impl WaveBounds {
    pub fn from_limits(limits: &tarsier_plugin::Limits) -> Self {
        Self {
            max_executions: limits.max_wave_executions.unwrap_or(DEFAULT_MAX_WAVE_EXECUTIONS).max(1),
            abort_window: limits.abort_window.map_or(DEFAULT_ABORT_WINDOW, |w| w.0),
        }
    }
}

/// Whether peers are reached over plain HTTP or TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    /// `https://host:port/a/b/c` from a peer's `host:port` and the path's segments, each escaped by the URL
    /// library. `None` when `host_port` is more than a host and a port (a path, a query, a user): an address
    /// from a copy or from discovery never gets to steer where a request goes.
    pub fn url(self, host_port: &str, segments: &[&str]) -> Option<reqwest::Url> {
        let scheme = match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        let mut url = reqwest::Url::parse(&format!("{scheme}://{host_port}")).ok()?;
        let only_host_and_port = url.path() == "/"
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty()
            && url.password().is_none()
            && !host_port.ends_with('/');
        if !only_host_and_port {
            return None;
        }
        url.path_segments_mut().ok()?.pop_if_empty().extend(segments);
        Some(url)
    }
}

/// At most this many peers are remembered as HTTP/1.1-only; past it the next one is tried over HTTP/2 again.
const MAX_HTTP1_PEERS: usize = 4096;

/// A static peer found to speak HTTP/1.1 only is spoken to that way for a while, then tried over HTTP/2
/// again (it may have been upgraded to a tarsier agent): 30 s after the first finding, doubling to 10 min.
#[derive(Debug, Clone, Copy)]
struct Http1Finding {
    until: std::time::Instant,
    backoff: std::time::Duration,
}
const HTTP1_FIRST_BACKOFF: std::time::Duration = std::time::Duration::from_secs(30);
const HTTP1_MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(600);

/// One hop's copies on their way, from [`Swarm::forward`].
pub struct Forwarding {
    task: JoinHandle<Forwarded>,
    buddies: u32,
}

impl Forwarding {
    /// How the hop went. A sending task that died (a panic) counts every copy it had to send as failed, and
    /// says so in the log: it never reads as a hop that had no peers to reach.
    pub async fn outcome(self) -> Forwarded {
        match self.task.await {
            Ok(forwarded) => forwarded,
            Err(err) => {
                tracing::error!(%err, "the task sending a wave's copies died; its copies count as failed");
                Forwarded { failed: self.buddies, ..Forwarded::default() }
            }
        }
    }
}

impl Swarm {
    /// This agent's labels.
    pub fn labels(&self) -> &Labels {
        &self.labels
    }

    /// The swarm key, when this agent has a token: copies, aborts and reports are signed with it.
    pub fn key(&self) -> Option<&SwarmKey> {
        self.trust.key.as_ref()
    }

    /// The instances discovery found that are not peers, and the static peers that failed their proof.
    pub fn refused_peers(&self) -> Vec<Refused> {
        let mut refused = self.peers.refused();
        refused.extend(self.membership.refused());
        refused
    }

    fn speaks_http1(&self, address: &str) -> bool {
        let peers = self.http1_peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.get(address).is_some_and(|finding| finding.until > std::time::Instant::now())
    }

    /// Whether a static peer that does not speak HTTP/2 may get the copy over HTTP/1.1 in the reference's
    /// format (see `forward::send_copy`): only one `compat.reference_peers` lists, on `/exec`, never in
    /// plaintext from an agent with TLS, and never one that answered over HTTP/2 before.
    fn may_speak_http1(&self, peer: &crate::agent::discovery::Peer, route: Route) -> bool {
        route == Route::Exec
            && self.peers.kind() == "static"
            && self.trust.reference_peers.lists(&peer.public)
            && !self.h2_peers.lock().unwrap_or_else(|p| p.into_inner()).contains(&peer.public)
    }

    /// Whether `peer` must prove membership by a challenge before it gets anything: a static tarsier peer,
    /// when this agent has the swarm key.
    fn needs_challenge(&self, peer: &crate::agent::discovery::Peer) -> bool {
        self.trust.key.is_some()
            && self.peers.kind() == "static"
            && peer.kind == crate::agent::discovery::PeerKind::Tarsier
    }

    fn remember_h2(&self, address: &str) {
        if self.peers.kind() != "static" {
            return;
        }
        self.http1_peers.lock().unwrap_or_else(|p| p.into_inner()).remove(address);
        let mut peers = self.h2_peers.lock().unwrap_or_else(|p| p.into_inner());
        if peers.len() < MAX_HTTP1_PEERS && !peers.contains(address) {
            peers.insert(address.to_owned());
        }
    }

    /// Notes that `address` answered over HTTP/1.1 only: it is spoken to that way until its backoff ends,
    /// then tried over HTTP/2 again; each new finding doubles the backoff.
    fn remember_http1(&self, address: &str) {
        let mut peers = self.http1_peers.lock().unwrap_or_else(|p| p.into_inner());
        let backoff = match peers.get(address) {
            Some(finding) => (finding.backoff * 2).min(HTTP1_MAX_BACKOFF),
            None if peers.len() >= MAX_HTTP1_PEERS => return,
            None => HTTP1_FIRST_BACKOFF,
        };
        peers.insert(address.to_owned(), Http1Finding { until: std::time::Instant::now() + backoff, backoff });
    }
}

/// The client for HTTP/1.1 peers: no token, no redirects, a fresh connection per copy (the reference
/// closed them after each request anyway). One per process: it holds nothing of an agent's, and each one
/// carries a TLS session cache of ~14 KiB, which a swarm of 1,000 agents paid 1,000 times.
// PERF(wave): one HTTP/1.1 reference client per process, not one TLS session cache per agent.
/// One that cannot be built is an error at start, not a default client that would follow redirects.
fn reference_client() -> anyhow::Result<reqwest::Client> {
    static CLIENT: std::sync::OnceLock<Result<reqwest::Client, String>> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            crate::credentials::tls::with_system_roots(reqwest::Client::builder())
                .http1_only()
                .connect_timeout(std::time::Duration::from_secs(2))
                .pool_max_idle_per_host(0)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .map_err(|err| format!("cannot build the HTTP/1.1 client for reference peers: {err}"))
        })
        .clone()
        .map_err(anyhow::Error::msg)
}

/// The public route a wave's copies go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Exec,
    Abort,
}

impl Route {
    fn segment(self) -> &'static str {
        match self {
            Route::Exec => "exec",
            Route::Abort => "abort",
        }
    }
}

/// Who this agent is to the swarm: its name in reports, the `host:port` peers reach its public port at, and
/// the labels a wave's `select` matches.
pub struct Member {
    pub name: String,
    pub advertised_public: String,
    pub labels: Labels,
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
    /// When the origin started the wave.
    pub started_at_ms: Option<u64>,
    /// The waves of the copies to send on, one each (a wave without dedupe gives each copy its own share of
    /// the budget); empty when `remain` or the budget says there is no next hop.
    pub next: Vec<WaveSpec>,
    /// For a dedupe wave: the copy goes to peers until `buddies` new ones took it.
    pub dedupe: bool,
    /// A copy's place among the hops this agent forwards at once, held until its forward ends.
    hop_slot: Option<Arc<OwnedSemaphorePermit>>,
    /// False at the origin of a wave with `select` that did not choose itself: it sends the copies and runs
    /// nothing.
    pub runs_here: bool,
    /// For a wave with `select`, at its origin: the agents chosen, each sent a copy by the origin itself,
    /// and what was asked.
    pub selection: Option<Selection>,
}

impl Admitted {
    /// The copies to send on; `make` builds the body around a copy's wave. Copies differ only in their budget
    /// share, which takes at most two values, so at most two bodies are serialized and the rest share them
    /// (a thousand buddies of a 1 MiB body would otherwise be a gigabyte).
    /// A body that cannot be written as JSON is an error, never an empty copy sent to every peer.
    pub fn copies<T: Serialize>(&self, make: impl Fn(WaveSpec) -> T) -> Result<Vec<Bytes>, serde_json::Error> {
        let mut made: Vec<(Option<u64>, Bytes)> = Vec::with_capacity(2);
        let mut copies = Vec::with_capacity(self.next.len());
        for wave in &self.next {
            let bytes = match made.iter().find(|(budget, _)| *budget == wave.budget) {
                Some((_, bytes)) => bytes.clone(),
                None => {
                    let bytes = Bytes::from(serde_json::to_vec(&make(wave.clone()))?);
                    made.push((wave.budget, bytes.clone()));
                    bytes
                }
            };
            copies.push(bytes);
        }
        Ok(copies)
    }
}

impl Swarm {
    /// `trust.tls` decides how peers are spoken to: all over TLS, or all plain.
    pub fn new(
        me: Member,
        peers: Arc<dyn PeerSource>,
        http: reqwest::Client,
        trust: Trust,
        metrics: WaveMetrics,
        bounds: WaveBounds,
    ) -> anyhow::Result<Self> {
        let Member { name, advertised_public, labels } = me;
        Ok(Self {
            name,
            advertised_public,
            scheme: if trust.tls { Scheme::Https } else { Scheme::Http },
            peers,
            http,
            http1: reference_client()?,
            trust,
            membership: membership::Membership::default(),
            http1_peers: Mutex::new(std::collections::HashMap::new()),
            h2_peers: Mutex::new(std::collections::HashSet::new()),
            records: WaveRecords::default(),
            metrics,
            bounds,
            aborted_at_ms: AtomicU64::new(0),
            clock: WallClock::System,
            forwarding: Mutex::new(CancellationToken::new()),
            hops: Arc::new(Semaphore::new(MAX_HOPS_IN_FLIGHT)),
            labels,
        })
    }

    /// Picks a selection's agents at random among those it matches: this agent and the tarsier peers it knows
    /// (a reference agent cannot check a selection, so it is never chosen).
    fn choose(&self, select: &Select) -> Selection {
        let peers = self.peers.peers();
        let mut matching: Vec<&str> = Vec::new();
        if labels_match(&select.labels, &self.labels) {
            matching.push(&self.advertised_public);
        }
        matching.extend(
            peers
                .iter()
                .filter(|p| p.kind == PeerKind::Tarsier && labels_match(&select.labels, &p.labels))
                .map(|p| p.public.as_str()),
        );
        let picked = rand::seq::index::sample(&mut rand::rng(), matching.len(), select.how_many(matching.len()));
        let chosen = picked.into_iter().map(|i| matching[i].to_owned()).collect();
        Selection { asked: select.asked(), matched: matching.len(), chosen }
    }

    /// A copy of a selected wave runs only on an agent the origin chose and whose own labels match: what
    /// discovery said of its labels may not be true.
    fn check_selected(&self, select: &Select) -> Result<(), ApiError> {
        let named = select.chosen.contains(&self.advertised_public);
        if named && labels_match(&select.labels, &self.labels) {
            return Ok(());
        }
        let why = if named { "its labels do not match wave.select.labels" } else { "it is not in wave.select.chosen" };
        Err(ApiError::new(StatusCode::CONFLICT, format!("this agent was not selected: {why}"))
            .with_field("wave.select"))
    }

    /// Takes in a body's wave (the default, a wave of one, when it has none) arriving on `route`; `command`
    /// names it in the report. The origin is the agent at hop 0, always: it gives the wave its id, its start
    /// time and (without dedupe) its execution budget, and for a reporting wave names itself as the origin
    /// copies report to, whatever the client wrote there. A copy must name a known origin, and a copy of a
    /// command wave that started before an abort is refused for `limits.abort_window`.
    pub fn enter(&self, wave: Option<WaveSpec>, route: Route, command: &str) -> Result<Entry, ApiError> {
        let hop = wave.as_ref().map_or(0, |w| w.hop);
        let entry = self.admit(wave, route, command);
        if hop > 0 {
            // Every copy from a peer, taken or not, is a line of the activity log.
            let route = route.segment();
            match &entry {
                Ok(Entry::Run(admitted)) => {
                    let wave_id = &admitted.wave_id;
                    tracing::info!(target: crate::logs::ACTIVITY, activity = "copy_taken", %wave_id, hop, route, command, "wave copy taken");
                }
                Ok(Entry::Duplicate { wave_id }) => {
                    tracing::info!(target: crate::logs::ACTIVITY, activity = "copy_duplicate", %wave_id, hop, route, command, "wave copy already taken");
                }
                Err(err) => {
                    let (status, error) = (err.status.as_u16(), &err.message);
                    tracing::info!(target: crate::logs::ACTIVITY, activity = "copy_refused", hop, route, command, status, %error, "wave copy refused");
                }
            }
        }
        entry
    }

    fn admit(&self, wave: Option<WaveSpec>, route: Route, command: &str) -> Result<Entry, ApiError> {
        let mut wave = wave.unwrap_or_default();
        wave.validate()?;
        if route == Route::Abort {
            // An abort reaches everyone, whatever selection its body names.
            wave.select = None;
        }
        let received_at_ms = self.clock.now_ms();
        let is_origin = wave.hop == 0;
        let mut selection = None;
        if let Some(select) = wave.select.as_mut() {
            if is_origin {
                // Blast radius: the origin picks the agents and sends each a copy itself; they run it once.
                let chosen = self.choose(select);
                select.chosen = chosen.chosen.clone();
                wave.dedupe = true;
                selection = Some(chosen);
            } else {
                self.check_selected(select)?;
            }
        }
        if is_origin {
            wave.started_at_ms = Some(received_at_ms);
            wave.origin = wave.report.then(|| self.advertised_public.clone());
            let asked = wave.budget.unwrap_or(u64::MAX);
            wave.budget = (!wave.dedupe).then_some(asked.min(self.bounds.max_executions));
        } else {
            self.check_origin(wave.origin.as_deref())?;
            // A start time from a clock far ahead (or forged) would slip a copy past the abort window,
            // which refuses only copies that started before the abort.
            let latest = received_at_ms.saturating_add(crate::credentials::MAX_CLOCK_SKEW_MS);
            if let Some(started) = wave.started_at_ms.filter(|started| *started > latest) {
                return Err(ApiError::bad_request(
                    Some("wave.started_at_ms".into()),
                    format!(
                        "wave.started_at_ms is {} ms ahead of this agent's clock, more than the {} ms of skew allowed",
                        started - received_at_ms,
                        crate::credentials::MAX_CLOCK_SKEW_MS
                    ),
                ));
            }
            if route == Route::Exec {
                self.check_not_aborted(wave.started_at_ms)?;
            }
            if !wave.dedupe && wave.budget == Some(0) {
                return Err(ApiError::bad_request(Some("wave.budget".into()), "wave.budget: this copy has none left"));
            }
        }
        // Backpressure: a copy of a command wave that would be forwarded needs a free hop slot here. Taken
        // before the wave id is recorded, so a refused dedupe copy can still be taken when it comes again.
        let forwards = wave.remain > 0 && wave.buddies > 0;
        let hop_slot = match (route, is_origin, forwards) {
            (Route::Exec, false, true) => match self.hops.clone().try_acquire_owned() {
                Ok(permit) => Some(Arc::new(permit)),
                Err(_) => {
                    self.metrics.shed.inc();
                    return Err(ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        format!("this agent forwards {MAX_HOPS_IN_FLIGHT} hops already; the copy is refused"),
                    ));
                }
            },
            _ => None,
        };
        let wave_id = wave.id.get_or_insert_with(new_wave_id).clone();
        if is_origin && wave.report {
            // A dedupe wave runs once per agent: the origin expects the swarm it knows (its peers and
            // itself), or fewer when `remain` and `buddies` cannot reach that far; a selection, its agents.
            let swarm = self.peers.peers().len() as u64 + 1;
            let expected = match &selection {
                Some(selection) => Some(selection.chosen.len() as u64),
                None => wave.dedupe.then(|| swarm.min(records::reach_bound(wave.remain, wave.buddies))),
            };
            let selected = selection.as_ref().map(|s| s.chosen.clone()).unwrap_or_default();
            self.records.open_report(&wave_id, command, expected, selected);
        }
        if !is_origin {
            self.metrics.received.with_label_values(&[route.segment()]).inc();
        }
        if wave.dedupe && !self.records.first_time(&wave_id) {
            self.metrics.deduped.inc();
            return Ok(Entry::Duplicate { wave_id });
        }
        let report_to = if wave.report { wave.origin.clone() } else { None };
        let runs_here = selection.as_ref().is_none_or(|s| s.chosen.contains(&self.advertised_public));
        let next = if let Some(selection) = &selection {
            // One copy, hop 1 and the end of the road, for every chosen agent but this one.
            let others = selection.chosen.iter().any(|address| *address != self.advertised_public);
            let copy = WaveSpec { remain: 0, buddies: 0, hop: 1, budget: None, ..wave.clone() };
            if others {
                vec![copy]
            } else {
                Vec::new()
            }
        } else if wave.select.is_some() || wave.remain == 0 {
            Vec::new()
        } else if wave.dedupe {
            vec![wave.next_hop()]
        } else {
            // This execution takes one of the budget; what is left is split among the copies, and a copy
            // with no share is not sent. A copy from an agent that does not send a budget gets this one's.
            let left = wave.budget.unwrap_or(self.bounds.max_executions).saturating_sub(1);
            split(left, wave.buddies)
                .into_iter()
                .map(|share| WaveSpec { budget: Some(share), ..wave.next_hop() })
                .collect()
        };
        Ok(Entry::Run(Admitted {
            wave_id,
            is_origin,
            hop: wave.hop,
            received_at_ms,
            report_to,
            started_at_ms: wave.started_at_ms,
            next,
            dedupe: wave.dedupe,
            hop_slot,
            runs_here,
            selection,
        }))
    }

    /// Notes an abort that started at `at_ms` (its origin's clock): copies of command waves that started
    /// before it are refused for the abort window, and every forward in flight stops now.
    pub fn note_abort(&self, at_ms: u64) {
        self.aborted_at_ms.fetch_max(at_ms, Ordering::AcqRel);
        let mut forwarding = self.forwarding.lock().unwrap_or_else(|p| p.into_inner());
        forwarding.cancel();
        *forwarding = CancellationToken::new();
    }

    fn check_not_aborted(&self, started_at_ms: Option<u64>) -> Result<(), ApiError> {
        let aborted_at = self.aborted_at_ms.load(Ordering::Acquire);
        let window = self.bounds.abort_window.as_millis() as u64;
        let in_window = aborted_at != 0 && self.clock.now_ms() < aborted_at.saturating_add(window);
        // A copy without a start time (an older agent) is taken for one that started before.
        if in_window && started_at_ms.is_none_or(|started| started <= aborted_at) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "this wave started before an /abort here; its copies are refused for limits.abort_window",
            ));
        }
        Ok(())
    }

    /// True when `address` (`host:port`) is this agent's public address or a known peer's.
    fn is_member(&self, address: &str) -> bool {
        address == self.advertised_public || self.peers.peers().iter().any(|p| p.public == address)
    }

    /// A copy's origin (where reports go) must be this agent or a peer it knows: a forged copy cannot turn
    /// the swarm into a cannon aimed at some other host.
    fn check_origin(&self, origin: Option<&str>) -> Result<(), ApiError> {
        let Some(origin) = origin else { return Ok(()) };
        if self.is_member(origin) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("wave.origin {origin:?} is neither this agent nor a peer it knows"),
        )
        .with_field("wave.origin"))
    }

    /// A report must come from a peer this agent knows: by its public address and, where that address is an
    /// IP, from that IP.
    pub fn check_reporter(&self, address: &str, from: IpAddr) -> Result<(), ApiError> {
        let known = self.is_member(address);
        let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
        let from_there = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => ip == from || (ip.is_loopback() && from.is_loopback()),
            Err(_) => true,
        };
        if known && from_there {
            Ok(())
        } else {
            Err(ApiError::new(StatusCode::FORBIDDEN, format!("{address:?} (from {from}) is not a peer of this agent")))
        }
    }

    /// Starts sending `copies` (from [`Admitted::copies`]) to this hop's peers; `None` when there are none.
    /// An abort stops it wherever it is. `fan_out` overrides the wave's `buddies` for this hop only.
    pub fn forward(
        self: &Arc<Self>,
        route: Route,
        admitted: &Admitted,
        copies: Vec<Bytes>,
        fan_out: Option<u32>,
    ) -> Option<Forwarding> {
        let buddies = fan_out.unwrap_or(admitted.next.first()?.buddies);
        let targets: Option<Vec<String>> = admitted.selection.as_ref().map(|selection| {
            selection.chosen.iter().filter(|address| **address != self.advertised_public).cloned().collect()
        });
        // Taken in just before an abort, sent on just after it: not sent.
        if route == Route::Exec && !admitted.is_origin && self.check_not_aborted(admitted.started_at_ms).is_err() {
            return None;
        }
        let (swarm, dedupe, hop_slot) = (self.clone(), admitted.dedupe, admitted.hop_slot.clone());
        let stop = self.forwarding.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let task = tokio::spawn(async move {
            let _hop_slot = hop_slot;
            let forwarding = async {
                match targets {
                    Some(targets) => forward::forward_to(&swarm, route, copies, targets).await,
                    None => forward::forward(&swarm, route, copies, buddies, dedupe).await,
                }
            };
            tokio::select! {
                forwarded = forwarding => forwarded,
                _ = stop.cancelled() => Forwarded::default(),
            }
        });
        Some(Forwarding { task, buddies })
    }

    /// Reports this agent's result to the wave's origin, when the wave asked for reports.
    pub async fn report(&self, admitted: &Admitted, status: Status, elapsed_ms: u64, result: &RawValue) {
        let Some(origin) = &admitted.report_to else { return };
        let result = result.to_owned();
        let entry = ReportEntry {
            agent: self.name.clone(),
            address: self.advertised_public.clone(),
            hop: admitted.hop,
            status,
            received_at_ms: admitted.received_at_ms,
            elapsed_ms,
            result,
        };
        forward::report(self, origin, &admitted.wave_id, entry).await;
    }
}

/// `left` executions split among at most `buddies` copies, as evenly as whole numbers allow; no copy gets 0.
fn split(left: u64, buddies: u32) -> Vec<u64> {
    let copies = left.min(u64::from(buddies));
    (0..copies).map(|i| left / copies + u64::from(i < left % copies)).collect()
}

/// A wave id: 16 hex digits, random enough to tell waves apart across a swarm.
/// The wall clock (Unix ms) the wave's time rules read. Tests move a manual one by hand, so a window of
/// seconds is checked on both sides without waiting it out.
enum WallClock {
    System,
    #[cfg(test)]
    Manual(AtomicU64),
}

impl WallClock {
    fn now_ms(&self) -> u64 {
        match self {
            WallClock::System => now_ms(),
            #[cfg(test)]
            WallClock::Manual(at) => at.load(Ordering::Relaxed),
        }
    }
}

pub fn new_wave_id() -> String {
    // By hand rather than `format!("{:016x}")`: one per `/exec`, and the formatter cost a third of `enter`.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let random = rand::random::<u64>();
    (0..16).rev().map(|nibble| char::from(HEX[(random >> (nibble * 4)) as usize & 0xf])).collect()
}

#[cfg(test)]
mod tests {
    use super::Scheme;

    /// A swarm of one, with no peers and no key.
    fn lone_swarm() -> super::Swarm {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let limits = tarsier_plugin::Limits::default();
        let metrics = crate::agent::metrics::Metrics::new(false, Vec::new(), &limits).unwrap();
        super::Swarm::new(
            super::Member { name: "a".into(), advertised_public: "127.0.0.1:1".into(), labels: Default::default() },
            std::sync::Arc::new(crate::agent::discovery::NoPeers),
            reqwest::Client::new(),
            crate::agent::discovery::Trust::default(),
            metrics.waves.clone(),
            super::WaveBounds::from_limits(&limits),
        )
        .unwrap()
    }

    /// A lone swarm on a clock the test moves by hand, starting at `at_ms`.
    fn swarm_at(at_ms: u64) -> super::Swarm {
        super::Swarm { clock: super::WallClock::Manual(at_ms.into()), ..lone_swarm() }
    }

    fn set_clock(swarm: &super::Swarm, at_ms: u64) {
        let super::WallClock::Manual(now) = &swarm.clock else { unreachable!("swarm_at makes a manual clock") };
        now.store(at_ms, std::sync::atomic::Ordering::Relaxed);
    }

    fn copy_started_at(id: &str, started_at_ms: Option<u64>) -> super::WaveSpec {
        super::WaveSpec { id: Some(id.into()), hop: 1, started_at_ms, ..Default::default() }
    }

    #[test]
    fn the_abort_window_refuses_older_copies_until_it_ends_and_newer_ones_never() {
        use super::Route;
        let aborted_at = 1_000_000;
        let swarm = swarm_at(aborted_at + 10);
        let window = swarm.bounds.abort_window.as_millis() as u64;
        swarm.note_abort(aborted_at);
        let refused = swarm.enter(Some(copy_started_at("old", Some(aborted_at - 1))), Route::Exec, "sleep/sleep");
        assert_eq!(refused.err().unwrap().status, axum::http::StatusCode::CONFLICT, "started before the abort");
        let at_abort = swarm.enter(Some(copy_started_at("same", Some(aborted_at))), Route::Exec, "sleep/sleep");
        assert!(at_abort.is_err(), "a wave started in the abort's millisecond is taken for an older one");
        let unknown = swarm.enter(Some(copy_started_at("unknown", None)), Route::Exec, "sleep/sleep");
        assert!(unknown.is_err(), "a copy without a start time (an older agent) counts as older");
        let newer = swarm.enter(Some(copy_started_at("new", Some(aborted_at + 1))), Route::Exec, "sleep/sleep");
        assert!(newer.is_ok(), "a wave started after the abort runs");
        let abort_copy = swarm.enter(Some(copy_started_at("abort", Some(aborted_at - 1))), Route::Abort, "abort");
        assert!(abort_copy.is_ok(), "an abort's own copies are never refused");

        set_clock(&swarm, aborted_at + window - 1);
        let last = swarm.enter(Some(copy_started_at("old2", Some(aborted_at - 1))), Route::Exec, "sleep/sleep");
        assert!(last.is_err(), "refused up to the window's last millisecond");
        set_clock(&swarm, aborted_at + window);
        let after = swarm.enter(Some(copy_started_at("old3", Some(aborted_at - 1))), Route::Exec, "sleep/sleep");
        assert!(after.is_ok(), "taken once the window has passed");
    }

    #[test]
    fn a_later_abort_moves_the_window_and_an_earlier_one_does_not() {
        use super::Route;
        let swarm = swarm_at(2_000_000);
        let window = swarm.bounds.abort_window.as_millis() as u64;
        swarm.note_abort(2_000_000);
        swarm.note_abort(1_000_000);
        set_clock(&swarm, 1_000_000 + window);
        let copy = copy_started_at("w", Some(1_500_000));
        assert!(swarm.enter(Some(copy), Route::Exec, "sleep/sleep").is_err(), "the later abort's window holds");
        set_clock(&swarm, 2_000_000 + window);
        let copy = copy_started_at("w2", Some(1_500_000));
        assert!(swarm.enter(Some(copy), Route::Exec, "sleep/sleep").is_ok());
    }

    #[test]
    fn the_skew_allowed_is_read_on_the_swarms_clock() {
        use super::Route;
        let now = 5_000_000;
        let swarm = swarm_at(now);
        let skew = crate::credentials::MAX_CLOCK_SKEW_MS;
        let edge = swarm.enter(Some(copy_started_at("edge", Some(now + skew))), Route::Exec, "sleep/sleep");
        assert!(edge.is_ok(), "exactly the skew allowed");
        let refused = swarm.enter(Some(copy_started_at("ahead", Some(now + skew + 1))), Route::Exec, "sleep/sleep");
        assert_eq!(refused.err().unwrap().field.as_deref(), Some("wave.started_at_ms"));
    }

    #[test]
    fn a_budget_is_split_so_the_copies_never_add_up_to_more() {
        assert_eq!(super::split(9_999, 19).iter().sum::<u64>(), 9_999);
        assert_eq!(super::split(9_999, 19).len(), 19);
        assert_eq!(super::split(5, 10), vec![1, 1, 1, 1, 1]);
        assert_eq!(super::split(0, 10), Vec::<u64>::new());
        assert_eq!(super::split(7, 3), vec![3, 2, 2]);
    }

    #[test]
    fn a_dedupe_copy_refused_for_backpressure_is_taken_when_it_comes_again() {
        use super::{Entry, Route, WaveSpec, MAX_HOPS_IN_FLIGHT};
        let swarm = lone_swarm();
        let copy =
            || WaveSpec { id: Some("w1".into()), hop: 1, remain: 2, buddies: 2, dedupe: true, ..Default::default() };
        let busy = swarm.hops.clone().try_acquire_many_owned(MAX_HOPS_IN_FLIGHT as u32).unwrap();
        let refused = swarm.enter(Some(copy()), Route::Exec, "sleep/sleep").err().unwrap();
        assert_eq!(refused.status, axum::http::StatusCode::TOO_MANY_REQUESTS);
        drop(busy);
        assert!(matches!(swarm.enter(Some(copy()), Route::Exec, "sleep/sleep"), Ok(Entry::Run(_))));
        assert!(matches!(swarm.enter(Some(copy()), Route::Exec, "sleep/sleep"), Ok(Entry::Duplicate { .. })));
    }

    #[test]
    fn a_copy_from_a_clock_far_ahead_is_refused_and_http1_findings_expire() {
        use super::{Route, WaveSpec};
        let swarm = lone_swarm();
        let ahead = super::now_ms() + 10 * 60_000;
        let copy = WaveSpec { id: Some("w2".into()), hop: 1, started_at_ms: Some(ahead), ..Default::default() };
        let refused = swarm.enter(Some(copy), Route::Exec, "sleep/sleep").err().unwrap();
        assert_eq!(refused.field.as_deref(), Some("wave.started_at_ms"));
        let near = WaveSpec {
            id: Some("w3".into()),
            hop: 1,
            started_at_ms: Some(super::now_ms() + 5_000),
            ..Default::default()
        };
        assert!(swarm.enter(Some(near), Route::Exec, "sleep/sleep").is_ok(), "a few seconds of skew pass");

        swarm.remember_http1("127.0.0.1:9");
        assert!(swarm.speaks_http1("127.0.0.1:9"));
        swarm.remember_http1("127.0.0.1:9");
        let backoff = swarm.http1_peers.lock().unwrap()["127.0.0.1:9"].backoff;
        assert_eq!(backoff, super::HTTP1_FIRST_BACKOFF * 2, "each new finding doubles the wait");
        swarm.http1_peers.lock().unwrap().get_mut("127.0.0.1:9").unwrap().until = std::time::Instant::now();
        assert!(!swarm.speaks_http1("127.0.0.1:9"), "after its backoff the peer is tried over HTTP/2 again");
    }

    #[test]
    fn copies_share_their_bodies_so_a_large_fan_out_costs_two_serializations() {
        let next: Vec<super::WaveSpec> = super::split(9_999, 19)
            .into_iter()
            .map(|share| super::WaveSpec { budget: Some(share), remain: 3, buddies: 19, ..Default::default() })
            .collect();
        let admitted = super::Admitted {
            wave_id: "w".into(),
            is_origin: true,
            hop: 0,
            received_at_ms: 0,
            report_to: None,
            started_at_ms: None,
            next,
            dedupe: false,
            hop_slot: None,
            runs_here: true,
            selection: None,
        };
        let copies = admitted.copies(|wave| serde_json::json!({ "data": "x".repeat(1000), "wave": wave })).unwrap();
        assert_eq!(copies.len(), 19);
        let mut distinct: Vec<*const u8> = copies.iter().map(|c| c.as_ptr()).collect();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 2, "each distinct budget share is serialized once");
    }

    #[test]
    fn urls_are_built_not_pasted() {
        let url = Scheme::Http.url("127.0.0.1:8080", &["waves", "a/../b?c#d", "report"]).unwrap();
        assert_eq!(url.as_str(), "http://127.0.0.1:8080/waves/a%2F..%2Fb%3Fc%23d/report");
        assert_eq!(Scheme::Https.url("[::1]:9", &["exec"]).unwrap().as_str(), "https://[::1]:9/exec");
        for steering in ["h:1/admin", "h:1?x=1", "h:1#f", "u@h:1", "h:1/", ""] {
            assert!(Scheme::Http.url(steering, &["exec"]).is_none(), "{steering}");
        }
    }
}
