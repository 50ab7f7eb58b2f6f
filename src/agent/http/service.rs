//! The service port: `/health`, `/metrics`, `/commands`, `/runtime`, and the reference Tarsier's
//! `/health_check` and `/mem_stats`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::agent::http::gate::{method_not_allowed, no_such_route, GateLayer, Listener, GUARDED_ROUTES};
use crate::agent::state::AgentState;
use crate::sys::runtime_stats::ProcessStats;

/// `/health`, `/metrics` and `/sd` stay open for probes, Prometheus and its discovery (read-only; `/sd`
/// lists service ports only), and so do the reference's `/health_check` (the URL its Consul check and
/// probes written for it use) and `/mem_stats` (what `/metrics` already shows of the process's memory). `/commands`, `/runtime` and `/peers` tell a stranger what the swarm holds and
/// where its members are, so they need the token like the public port.
pub fn router(state: Arc<AgentState>) -> Router {
    let [commands_route, runtime_route, peers_route] = GUARDED_ROUTES;
    Router::new()
        .route("/health", get(health))
        .route("/health_check", get(health))
        .route("/mem_stats", get(mem_stats))
        .route("/metrics", get(metrics))
        .route("/sd", get(service_discovery))
        .route(commands_route, get(commands))
        .route(runtime_route, get(runtime))
        .route(peers_route, get(peers))
        .fallback(no_such_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(GateLayer::new(state.clone(), Listener::Service))
        .with_state(state)
}

/// Answers as long as the agent's runtime answers; a `faults/deadlock` with `block_health` makes it hang.
async fn health(State(state): State<Arc<AgentState>>) -> Json<serde_json::Value> {
    state.health.pass().await;
    Json(json!({ "status": "ok", "agent": &*state.name, "uptime_seconds": state.started.elapsed().as_secs_f64() }))
}

async fn metrics(State(state): State<Arc<AgentState>>) -> impl IntoResponse {
    let text =
        state.metrics.render(&state.registry.held(), state.jobs.running_count(), state.swarm.peers.peers().len());
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
}

/// The reference answered Go's `runtime.MemStats`; a Rust process has no such thing, so this is the same
/// question answered from /proc: what the process maps and has resident, and what the plugins hold.
async fn mem_stats(State(state): State<Arc<AgentState>>) -> Json<serde_json::Value> {
    let process = ProcessStats::read();
    Json(json!({
        "agent": &*state.name,
        "rss_bytes": process.rss_bytes,
        "rss_peak_bytes": process.rss_peak_bytes,
        "vm_bytes": process.vm_bytes,
        "mmap_regions": process.mmap_regions,
        "held": state.registry.held(),
    }))
}

/// Pretty-printed: the catalogue is read by people with curl as much as by programs.
async fn commands(State(state): State<Arc<AgentState>>) -> impl IntoResponse {
    let text = serde_json::to_string_pretty(&json!({ "commands": state.registry.catalogue() }))
        .unwrap_or_else(|err| json!({ "error": err.to_string() }).to_string());
    ([(header::CONTENT_TYPE, "application/json")], text + "\n")
}

async fn runtime(State(state): State<Arc<AgentState>>) -> Json<serde_json::Value> {
    Json(json!({
        "agent": &*state.name,
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
        "process": ProcessStats::read(),
        "held": state.registry.held(),
        "reserved": {
            "ram_bytes": state.budgets.ram.used(),
            "disk_bytes": state.budgets.disk.used(),
            "connections": state.budgets.connections.used(),
            "blocked_threads": state.budgets.blocked_threads.used(),
        },
        "running_jobs": state.jobs.running_count(),
        // Tasks alive on the agent's runtime: a leak of one per command shows here first.
        "tokio_tasks": tokio::runtime::Handle::current().metrics().num_alive_tasks(),
        "public_addr": state.public_addr,
        "service_addr": state.service_addr,
        "activity_log": crate::logs::file_log().map(|log| log.runtime()),
        "log_shipping": crate::logs::shipping().map(|ship| ship.runtime()),
    }))
}

async fn peers(State(state): State<Arc<AgentState>>) -> Json<serde_json::Value> {
    let source = &state.swarm.peers;
    let peers = source.peers();
    let refused = state.swarm.refused_peers();
    Json(json!({
        "agent": &*state.name,
        "source": source.kind(),
        "count": peers.len(),
        "peers": &*peers,
        "refused": refused,
    }))
}

/// Prometheus `http_sd_configs`: the service port of this agent and of every peer whose service port is known.
async fn service_discovery(State(state): State<Arc<AgentState>>) -> Json<serde_json::Value> {
    let mut targets = vec![state.advertised_service.clone()];
    targets.extend(state.swarm.peers.members().iter().filter_map(|p| p.service.clone()));
    targets.sort();
    targets.dedup();
    Json(json!([{ "targets": targets, "labels": { "job": "tarsier", "tarsier_discovery": state.swarm.peers.kind() } }]))
}
