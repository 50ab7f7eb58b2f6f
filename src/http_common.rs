//! What both listeners share: request counting, and JSON answers for unknown routes and wrong methods.

use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::Next;
use axum::response::Response;

use crate::error::ApiError;
use crate::state::AgentState;

/// Counts every answered request in `tarsier_http_requests_total{listener, path, code}`.
pub async fn count_requests(
    State((state, listener)): State<(Arc<AgentState>, &'static str)>,
    request: Request,
    next: Next,
) -> Response {
    // Label by route pattern, never the raw path, so a scanner cannot blow up the label set.
    let path =
        request.extensions().get::<MatchedPath>().map(|p| p.as_str().to_owned()).unwrap_or_else(|| "other".into());
    let response = next.run(request).await;
    state.metrics.http_requests.with_label_values(&[listener, path.as_str(), response.status().as_str()]).inc();
    response
}

pub async fn no_such_route(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route {}", uri.path()))
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {}", uri.path()))
}
