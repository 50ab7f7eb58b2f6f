//! Sending a wave on: one hop's choice of peers, the copies with their retries, and reports to the origin.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use serde_json::Value;

use super::records::ReportEntry;
use super::{Route, Swarm};
use crate::agent::discovery::{Peer, PeerKind};
use crate::wire::answer::{CopyAnswer, Forwarded};
use crate::wire::status::Status;

/// Attempts per peer (the first plus retries) and the pause before each retry.
const ATTEMPTS: u32 = 3;
const RETRY_PAUSE: Duration = Duration::from_millis(50);
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(3);
/// Wave copies in flight from one process at once. Each agent keeps up to `buddies` of its own in flight; a
/// local swarm of 1,000 agents in one process had 10,000 at once, ~100 MiB of request state whose pages the
/// heap kept after the wave. Capped at 256, the same swarm's dedupe waves were faster, not slower (728 vs 924
/// ms median over 20), and held 262 instead of 362 MiB right after them. `/abort` copies are not counted:
/// an abort never waits behind copies to peers that do not answer.
// PERF(wave): at most 256 copies in flight per process: faster dedupe waves and 100 MiB less heap.
static COPIES_IN_FLIGHT: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(COPIES_IN_FLIGHT_MAX);
const COPIES_IN_FLIGHT_MAX: usize = 256;
/// A dedupe hop tries at most `max(2 x buddies, 20)` peers. Trying every peer instead made the tail of a flood
/// O(N²): once nearly all agents had the wave, each of them walked the whole swarm (a million requests at 1,000
/// agents, which choked that wave and the ones after it). With this bound late agents try 20 peers, about 18
/// per agent over a flood, so the chance that a given agent is never picked is about e^-18 whatever the
/// swarm's size: at 1,000 agents, one wave in tens of thousands misses one agent.
const DEDUPE_TRIES_PER_BUDDY: usize = 2;
const DEDUPE_TRIES_MIN: usize = 20;

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
/// A dedupe wave has one copy for every peer it tries; a wave without dedupe has one copy per peer it sends
/// to (each with its share of the budget), sent to that many peers and never replaced.
pub(super) async fn forward(
    swarm: &Arc<Swarm>,
    route: Route,
    copies: Vec<Bytes>,
    buddies: u32,
    dedupe: bool,
) -> Forwarded {
    let peers = swarm.peers.peers();
    let wanted = if dedupe { buddies } else { u32::try_from(copies.len()).unwrap_or(u32::MAX) };
    let mut sent = 0;
    let outcome = spread(peers.len(), wanted, dedupe, |index| {
        let copy = if dedupe { copies[0].clone() } else { copies[sent.min(copies.len() - 1)].clone() };
        sent += 1;
        let (swarm, peers) = (swarm.clone(), peers.clone());
        async move { send_copy(&swarm, &peers[index], route, &copy, dedupe).await }
    })
    .await;
    swarm.metrics.forwarded.inc_by(u64::from(outcome.accepted));
    swarm.metrics.forward_errors.inc_by(u64::from(outcome.failed));
    outcome
}

/// A selection's copies: one to each of `targets` (public addresses the origin chose among its peers), all at
/// once, a dedupe copy each (retried, and run at most once). A target no longer among the peers counts as a
/// failed copy.
pub(super) async fn forward_to(
    swarm: &Arc<Swarm>,
    route: Route,
    copies: Vec<Bytes>,
    targets: Vec<String>,
) -> Forwarded {
    let Some(copy) = copies.into_iter().next() else { return Forwarded::default() };
    let peers = swarm.peers.peers();
    let wanted: std::collections::HashSet<&str> = targets.iter().map(String::as_str).collect();
    let found: Vec<usize> = (0..peers.len()).filter(|i| wanted.contains(peers[*i].public.as_str())).collect();
    let count = u32::try_from(found.len()).unwrap_or(u32::MAX);
    let mut outcome = spread(found.len(), count, false, |i| {
        let (swarm, peers, copy, index) = (swarm.clone(), peers.clone(), copy.clone(), found[i]);
        async move { send_copy(&swarm, &peers[index], route, &copy, true).await }
    })
    .await;
    outcome.failed += u32::try_from(targets.len().saturating_sub(found.len())).unwrap_or(u32::MAX);
    swarm.metrics.forwarded.inc_by(u64::from(outcome.accepted));
    swarm.metrics.forward_errors.inc_by(u64::from(outcome.failed));
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

/// POSTs the copy to one peer. A failure is retried a bounded number of times when the copy surely did not
/// arrive (no connection, or a 5xx); after a timeout it may have, so only a dedupe copy (which a peer runs
/// at most once) is sent again: a retried copy without dedupe would spend its budget twice.
///
/// A static peer that takes a connection but cannot speak HTTP/2 (a reference agent listed as a plain
/// `host:port`) gets the copy again over HTTP/1.1 in the reference's format, once; if that works, it is
/// spoken to that way from then on. Only a static peer that never answered over HTTP/2 is tried so: an
/// HTTP/2 preface is no HTTP/1 request, so nothing ran there, whereas a tarsier peer whose connection broke
/// mid-request might have run the copy already (Consul and local peers say what they speak).
async fn send_copy(swarm: &Swarm, peer: &Peer, route: Route, copy: &Bytes, dedupe: bool) -> PeerAnswer {
    if let PeerKind::Reference { https } = peer.kind {
        return send_reference_copy(swarm, peer, route, copy, https).await;
    }
    let https = swarm.scheme == super::Scheme::Https;
    if swarm.speaks_http1(&peer.public) {
        return send_reference_copy(swarm, peer, route, copy, https).await;
    }
    let Some(url) = swarm.scheme.url(&peer.public, &[route.segment()]) else {
        tracing::warn!(peer = ?peer.id, address = ?peer.public, "a peer's address is not host:port");
        return PeerAnswer::Failed;
    };
    if let (true, Some(key)) = (swarm.needs_challenge(peer), swarm.key()) {
        // Only a static peer is challenged: the challenge's URL is built for it alone, not for every copy.
        let challenge_url = swarm.scheme.url(&peer.public, &["membership"]);
        let proven = match challenge_url {
            Some(challenge_url) => swarm.membership.prove(key, &swarm.http, challenge_url, peer).await,
            None => Err("its address is not host:port".to_owned()),
        };
        if proven.is_err() {
            // A listed reference agent cannot answer the challenge (it speaks HTTP/1.1): it gets the copy in
            // its own format. Anything else that cannot prove membership gets nothing.
            if swarm.may_speak_http1(peer, route) {
                let answer = send_reference_copy(swarm, peer, route, copy, https).await;
                if matches!(answer, PeerAnswer::Accepted) {
                    tracing::info!(peer = ?peer.id, "the peer speaks HTTP/1.1 only; copies go to it in the reference's format");
                    swarm.remember_http1(&peer.public);
                }
                return answer;
            }
            return PeerAnswer::Failed;
        }
    }
    let started = Instant::now();
    let mut last_error = String::new();
    for attempt in 1..=ATTEMPTS {
        if attempt > 1 {
            tokio::time::sleep(RETRY_PAUSE * attempt).await;
        }
        let _permit = match route {
            // The semaphore is never closed, so this is always a permit.
            Route::Exec => COPIES_IN_FLIGHT.acquire().await.ok(),
            Route::Abort => None,
        };
        let request = swarm.http.post(url.clone()).timeout(FORWARD_TIMEOUT);
        let request = signed(swarm, request, url.path(), copy);
        let request = request.header(reqwest::header::CONTENT_TYPE, "application/json").body(copy.clone());
        match request.send().await {
            Ok(response) if response.status().is_success() => {
                swarm.metrics.forward_seconds.observe(started.elapsed().as_secs_f64());
                swarm.remember_h2(&peer.public);
                let answer = response.json::<CopyAnswer>().await.ok();
                let duplicate = answer.is_some_and(|answer| answer.status == Status::Duplicate);
                let route = route.segment();
                tracing::info!(target: crate::logs::ACTIVITY, activity = "copy_sent", peer = ?peer.id, route, duplicate, "wave copy sent");
                return if duplicate { PeerAnswer::Duplicate } else { PeerAnswer::Accepted };
            }
            Ok(response)
                if matches!(
                    response.status(),
                    reqwest::StatusCode::CONFLICT | reqwest::StatusCode::TOO_MANY_REQUESTS
                ) =>
            {
                // The peer was aborted after this wave started, or is forwarding all the hops it allows:
                // expected in a storm, not worth a warning each, and not retried.
                let (route, status) = (route.segment(), response.status().as_u16());
                tracing::info!(target: crate::logs::ACTIVITY, activity = "copy_refused_by_peer", peer = ?peer.id, route, status, "a peer refused a wave copy");
                return PeerAnswer::Failed;
            }
            Ok(response) if response.status().is_client_error() => {
                // The peer refused the copy itself (an older version, a limit): retrying will not help.
                let status = response.status();
                let text = response.text().await.unwrap_or_default();
                // Debug formatting: whatever a peer answered, it cannot forge a log line.
                let answer: String = text.chars().take(300).collect();
                tracing::warn!(activity = "copy_refused_by_peer", peer = ?peer.id, %status, ?answer, "a peer refused a wave copy");
                return PeerAnswer::Failed;
            }
            Ok(response) => last_error = format!("answered {}", response.status()),
            Err(err)
                if attempt == 1 && !err.is_connect() && !err.is_timeout() && swarm.may_speak_http1(peer, route) =>
            {
                // Connected, but the HTTP/2 exchange failed: perhaps an HTTP/1.1-only agent.
                let answer = send_reference_copy(swarm, peer, route, copy, https).await;
                if matches!(answer, PeerAnswer::Accepted) {
                    tracing::info!(peer = ?peer.id, "the peer speaks HTTP/1.1 only; copies go to it in the reference's format");
                    swarm.remember_http1(&peer.public);
                    return answer;
                }
                last_error = err.to_string();
            }
            Err(err) if err.is_connect() || dedupe => last_error = err.to_string(),
            Err(err) => {
                last_error = err.to_string();
                break;
            }
        }
    }
    tracing::warn!(activity = "copy_not_sent", peer = ?peer.id, %url, error = ?last_error, attempts = ATTEMPTS, "cannot forward a wave to a peer");
    PeerAnswer::Failed
}

/// Gives a copy to an HTTP/1.1 agent such as the reference Go Tarsier: its body format (`command`, `data`,
/// `wave: {remains, buddies}`), no token (it takes none), one attempt (it answers when its command ends, so a
/// retry could run the command twice; a copy it took but has not answered within the timeout counts as
/// taken). It has no `/abort`, so an abort flood passes it by.
async fn send_reference_copy(swarm: &Swarm, peer: &Peer, route: Route, copy: &Bytes, https: bool) -> PeerAnswer {
    if route != Route::Exec {
        tracing::debug!(peer = ?peer.id, "an HTTP/1.1 (reference) agent has no /abort; not sent");
        return PeerAnswer::Failed;
    }
    if swarm.scheme == super::Scheme::Https && !https {
        // No downgrade: an agent with public_tls never sends a copy in plaintext, to anyone.
        tracing::warn!(peer = ?peer.id, "not sent: an HTTP/1.1 agent without TLS, and this agent speaks TLS to peers");
        return PeerAnswer::Failed;
    }
    let scheme = if https { super::Scheme::Https } else { super::Scheme::Http };
    let (Some(url), Some(body)) = (scheme.url(&peer.public, &["exec"]), reference_body(copy)) else {
        tracing::warn!(peer = ?peer.id, address = ?peer.public, "cannot address a copy to an HTTP/1.1 agent");
        return PeerAnswer::Failed;
    };
    let request = swarm.http1.post(url.clone()).timeout(FORWARD_TIMEOUT);
    match request.header(reqwest::header::CONTENT_TYPE, "application/x-yaml").body(body).send().await {
        Ok(response) if response.status().is_success() => PeerAnswer::Accepted,
        Ok(response) => {
            let status = response.status();
            let answer: String = response.text().await.unwrap_or_default().chars().take(300).collect();
            tracing::warn!(activity = "copy_refused_by_peer", peer = ?peer.id, %status, ?answer, "an HTTP/1.1 agent refused a wave copy");
            PeerAnswer::Failed
        }
        Err(err) if err.is_timeout() && !err.is_connect() => PeerAnswer::Accepted,
        Err(err) => {
            tracing::warn!(activity = "copy_not_sent", peer = ?peer.id, %url, error = %err, "cannot forward a wave to an HTTP/1.1 agent");
            PeerAnswer::Failed
        }
    }
}

/// The reference's body for a copy: its three keys only, and `remains` cut so that the copies the reference
/// agent sends on (which it cannot bound: it has no budget and no dedupe) stay within this copy's budget.
fn reference_body(copy: &[u8]) -> Option<Vec<u8>> {
    let body: Value = serde_json::from_slice(copy).ok()?;
    let wave = &body["wave"];
    let buddies = wave["buddies"].as_u64().unwrap_or(0);
    let remain = wave["remain"].as_u64().unwrap_or(0);
    let remains = if wave["dedupe"].as_bool().unwrap_or(false) {
        0
    } else {
        reference_remains(remain, buddies, wave["budget"].as_u64().unwrap_or(1))
    };
    serde_json::to_vec(&serde_json::json!({
        "command": reference_name(body["command"].as_str()?),
        "data": body["data"],
        "wave": { "remains": remains, "buddies": buddies },
    }))
    .ok()
}

/// A command under the reference's plugin names (copies carry tarsier's canonical ones). The data goes as
/// the client wrote it: for a mixed swarm, write it with the reference's field names.
fn reference_name(command: &str) -> String {
    match command.split_once('/') {
        Some(("storage", "fs_stats")) => "persistent_storage/fd_stats".into(),
        Some(("storage", name)) => format!("persistent_storage/{name}"),
        Some(("sleep", name)) => format!("sleeping_beauty/{name}"),
        _ => command.to_owned(),
    }
}

/// The most hops a reference agent may be given: it runs the command once and sends `buddies` copies with one
/// hop less, so `remains` r costs 1 + b + ... + b^r executions, which must fit in `budget`.
fn reference_remains(remain: u64, buddies: u64, budget: u64) -> u64 {
    let mut allowed = 0;
    let (mut level, mut total) = (1u64, 1u64);
    while allowed < remain {
        level = level.saturating_mul(buddies);
        total = total.saturating_add(level);
        // A saturated sum is past any budget, u64::MAX included.
        if total > budget || total == u64::MAX {
            break;
        }
        allowed += 1;
    }
    allowed
}

/// Sends this agent's result to the wave's origin (or records it, when this agent is the origin).
pub(super) async fn report(swarm: &Swarm, origin: &str, wave_id: &str, entry: ReportEntry) {
    if origin == swarm.advertised_public {
        let size = serde_json::to_vec(&entry).map_or(0, |bytes| bytes.len());
        swarm.records.add_report(wave_id, entry, size);
        return;
    }
    let Some(url) = swarm.scheme.url(origin, &["waves", wave_id, "report"]) else {
        tracing::warn!(origin = ?origin, "a wave's origin is not host:port; no report sent");
        return;
    };
    let body = match serde_json::to_vec(&entry) {
        Ok(body) => Bytes::from(body),
        Err(err) => {
            tracing::error!(%err, "cannot write a wave report as JSON; not sent");
            return;
        }
    };
    for attempt in 1..=ATTEMPTS {
        let request = swarm.http.post(url.clone()).timeout(FORWARD_TIMEOUT);
        let request = signed(swarm, request, url.path(), &body)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.clone());
        match request.send().await {
            Ok(r) if r.status().is_success() || r.status().is_client_error() => return,
            Ok(r) => tracing::debug!(status = %r.status(), attempt, "report not taken yet"),
            Err(err) => tracing::debug!(%err, attempt, "report not sent yet"),
        }
        tokio::time::sleep(RETRY_PAUSE * attempt).await;
    }
    tracing::warn!(origin, wave_id, "cannot report a wave result to its origin");
}

/// A request to a peer, signed with the swarm key when this agent has one (a fresh nonce each time, so a
/// retry is not taken for a replay). The token itself is never sent to a peer.
fn signed(swarm: &Swarm, request: reqwest::RequestBuilder, path: &str, body: &[u8]) -> reqwest::RequestBuilder {
    match swarm.key() {
        Some(key) => {
            request.header(crate::credentials::SIGNATURE_HEADER, key.sign("POST", path, body, super::now_ms()))
        }
        None => request,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

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

    #[test]
    fn a_reference_agent_gets_only_the_hops_its_budget_pays_for() {
        assert_eq!(reference_remains(5, 3, 1), 0, "budget 1: it runs, sends nothing");
        assert_eq!(reference_remains(5, 3, 4), 1, "1 + 3");
        assert_eq!(reference_remains(5, 3, 12), 1, "1 + 3 + 9 = 13 > 12");
        assert_eq!(reference_remains(5, 3, 13), 2);
        assert_eq!(reference_remains(2, 3, 10_000), 2, "never more than the wave has left");
        assert_eq!(reference_remains(40, 1000, u64::MAX), 6, "saturates instead of overflowing");
        let copy = serde_json::json!({
            "command": "heavy_load/gobble_ram", "data": {"amount": "10MB", "ration": 0.5}, "detach": false,
            "wave": {"remain": 3, "buddies": 2, "budget": 7, "id": "abc", "hop": 1, "origin": "a:1"},
        });
        let body: Value =
            serde_json::from_slice(&reference_body(&serde_json::to_vec(&copy).unwrap()).unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "command": "heavy_load/gobble_ram", "data": {"amount": "10MB", "ration": 0.5},
                "wave": {"remains": 2, "buddies": 2},
            })
        );
        let sleep = serde_json::json!({"command": "storage/fs_stats", "wave": {"remain": 0, "buddies": 1}});
        let body: Value =
            serde_json::from_slice(&reference_body(&serde_json::to_vec(&sleep).unwrap()).unwrap()).unwrap();
        assert_eq!(body["command"], "persistent_storage/fd_stats");
        let dedupe = serde_json::json!({"command": "x/y", "wave": {"remain": 3, "buddies": 2, "dedupe": true}});
        let body: Value =
            serde_json::from_slice(&reference_body(&serde_json::to_vec(&dedupe).unwrap()).unwrap()).unwrap();
        assert_eq!(body["wave"]["remains"], 0, "a dedupe wave cannot be deduplicated by a reference agent");
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
