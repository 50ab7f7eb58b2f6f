//! Reading a request's body within the agent's bounds: at most `max_body` bytes, within `server.body_timeout`.

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use http_body_util::BodyExt as _;

use crate::agent::state::AgentState;
use crate::wire::error::ApiError;

/// The body, read within `server.body_timeout` and at most `max_body` bytes, or a JSON error.
pub(crate) async fn body_bytes(state: &AgentState, body: Body) -> Result<Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, state.bodies.max_bytes);
    match tokio::time::timeout(state.bodies.timeout, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(err)) if err.is::<http_body_util::LengthLimitError>() => Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the body is larger than this agent accepts ({} bytes, max_body)", state.bodies.max_bytes),
        )),
        Ok(Err(err)) => Err(ApiError::bad_request(None, format!("cannot read the body: {err}"))),
        Err(_) => Err(ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!("the body did not arrive within {:?} (server.body_timeout)", state.bodies.timeout),
        )),
    }
}
