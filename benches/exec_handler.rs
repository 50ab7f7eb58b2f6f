//! The agent's own cost per `/exec`, without sockets: one request through the agent's public router (body
//! parse, job table, plugin, metrics, JSON answer) next to the same request through a bare axum handler, both
//! on one current-thread runtime. Deterministic where the wrk figures of benches/run.sh are noisy.
//! `cargo bench --bench exec_handler`

use axum::body::Body;
use axum::http::Request;
use axum::routing::post;
use axum::{Json, Router};
use criterion::{criterion_group, criterion_main, Criterion};
use tarsier::agent::config::AgentConfig;
use tarsier::agent::{http_client, BoundAgent};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;

const YAML: &str = "command: sleep/sleep\ndata: {duration: 0s}\n";
const JSON: &str = r#"{"command": "sleep/sleep", "data": {"duration": "0s"}}"#;

fn request(body: &'static str, content_type: &str) -> Request<Body> {
    Request::post("/exec").header("content-type", content_type).body(Body::from(body)).expect("a request")
}

fn bench(c: &mut Criterion) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime");
    let agent_router = runtime.block_on(async {
        let config = AgentConfig {
            listen: Some("127.0.0.1:0".parse().expect("an address")),
            service_listen: Some("127.0.0.1:0".parse().expect("an address")),
            ..AgentConfig::default()
        };
        let agent = BoundAgent::bind(&config, None, http_client(&config).expect("a client"), CancellationToken::new())
            .await
            .expect("an agent");
        tarsier::agent::http::public::router(agent.state.clone())
    });
    let bare_router: Router = Router::new()
        .route("/exec", post(|| async { Json(serde_json::json!({"status": "ok", "result": {"slept_ms": 0}})) }));

    let mut group = c.benchmark_group("one /exec request, in process");
    group.bench_function("baseline: bare axum handler", |b| {
        b.iter(|| runtime.block_on(bare_router.clone().oneshot(request(YAML, "application/yaml"))))
    });
    group.bench_function("agent, YAML body", |b| {
        b.iter(|| runtime.block_on(agent_router.clone().oneshot(request(YAML, "application/yaml"))))
    });
    group.bench_function("agent, JSON body", |b| {
        b.iter(|| runtime.block_on(agent_router.clone().oneshot(request(JSON, "application/json"))))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
