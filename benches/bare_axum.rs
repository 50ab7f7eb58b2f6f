//! The baseline server of benches/run.sh: the barest axum app that answers like the agent's routes, on the
//! same runtime settings, so the agent's own cost is what the ratio shows.
//!   bare_axum LISTEN   (for example 127.0.0.1:9000; prints `listening ADDR` when ready)
//! `POST /exec` answers a small JSON without looking at the body; `POST /parse` first parses the body exactly as
//! the agent does (tarsier::wire::body), which splits the agent's cost into parsing and the rest; `GET /` and
//! `GET /health` answer `ok`.

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use tarsier::wire::body::{BodyFormat, CommandBody};

async fn parse_then_answer(body: Bytes) -> Result<Json<serde_json::Value>, StatusCode> {
    let parsed = CommandBody::parse(&body, BodyFormat::Yaml).map_err(|_| StatusCode::BAD_REQUEST)?;
    Ok(Json(serde_json::json!({"status": "ok", "command": parsed.command, "result": {"slept_ms": 0}})))
}

fn main() {
    let listen = std::env::args().nth(1).filter(|a| !a.starts_with('-')).unwrap_or_else(|| "127.0.0.1:0".into());
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    runtime.block_on(async move {
        let app = Router::new()
            .route("/exec", post(|| async { Json(serde_json::json!({"status": "ok", "result": {"slept_ms": 0}})) }))
            .route("/parse", post(parse_then_answer))
            .route("/", get(|| async { "ok" }))
            .route("/health", get(|| async { Json(serde_json::json!({"status": "ok"})) }));
        let listener = tokio::net::TcpListener::bind(&listen).await.expect("bind");
        println!("listening {}", listener.local_addr().expect("an address"));
        axum::serve(listener, app).await.expect("serve");
    });
}
