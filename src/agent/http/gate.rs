//! The gate both listeners share, in front of every route: request counting, the request bounds, the
//! browser check (`wire::browsers`) and the token check; and JSON answers for unknown routes and wrong methods.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{MatchedPath, Request};
use axum::http::{header, Method, StatusCode, Uri};
use axum::response::Response;
use tower::{Layer, Service};

use crate::agent::state::AgentState;
use crate::wire::error::ApiError;

/// The service port's routes that need the token: `/commands`, `/runtime` and `/peers` tell a stranger what
/// the swarm holds and where its members are. `service.rs` routes them from this list.
pub const GUARDED_ROUTES: [&str; 3] = ["/commands", "/runtime", "/peers"];

/// The one public route open without the token: a peer's proof of membership reveals nothing (a MAC of the
/// asker's nonce and this agent's own address, under a label no other use of the key shares).
pub const MEMBERSHIP_ROUTE: &str = "/membership";

/// The listener a gate guards: its label in the metrics, the largest body it reads, and which of its routes
/// need the swarm's token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Listener {
    /// Every route needs the token (when the agent has one) but `/membership`, and a peer's copies, aborts
    /// and reports may come signed instead; bodies up to `max_body`.
    Public,
    /// Only the routes that tell a stranger what the swarm holds need it ([`GUARDED_ROUTES`]); probes,
    /// `/metrics` and `/sd` stay open. No route reads a body.
    Service,
    /// Toxiproxy's API (`proxy.api_listen`): every route needs the token; bodies are small JSON.
    ToxiproxyApi,
}

/// The largest body Toxiproxy's API reads (a `populate` of a few hundred proxies).
const TOXIPROXY_MAX_BODY: usize = 256 * 1024;

impl Listener {
    fn label(self) -> &'static str {
        match self {
            Listener::Public => "public",
            Listener::Service => "service",
            Listener::ToxiproxyApi => "toxiproxy",
        }
    }

    fn max_body(self, state: &AgentState) -> usize {
        match self {
            Listener::Public => state.bodies.max_bytes,
            Listener::Service => 0,
            Listener::ToxiproxyApi => TOXIPROXY_MAX_BODY,
        }
    }

    fn needs_token(self, path: Option<&MatchedPath>) -> bool {
        match self {
            Listener::Public => path.is_none_or(|p| p.as_str() != MEMBERSHIP_ROUTE),
            Listener::Service => path.is_some_and(|p| GUARDED_ROUTES.contains(&p.as_str())),
            Listener::ToxiproxyApi => true,
        }
    }
}

/// One gate for both listeners, outermost first: counted, then the request bounds, then the token. A tower
/// service of its own rather than `axum::middleware::from_fn`, which clones and boxes the inner service and
/// boxes its future on every request; this boxes one future (with axum's features trimmed, 48,200 -> 43,500
/// instructions per `/exec`).
#[derive(Clone)]
pub struct GateLayer {
    state: Arc<AgentState>,
    listener: Listener,
}

impl GateLayer {
    pub fn new(state: Arc<AgentState>, listener: Listener) -> Self {
        Self { state, listener }
    }
}

impl<S> Layer<S> for GateLayer {
    type Service = Gate<S>;

    fn layer(&self, inner: S) -> Gate<S> {
        Gate { inner, state: self.state.clone(), listener: self.listener }
    }
}

#[derive(Clone)]
// PERF(control): a hand-written tower Service, not three `from_fn` layers (each a boxed future per request).
pub struct Gate<S> {
    inner: S,
    state: Arc<AgentState>,
    listener: Listener,
}

impl<S> Service<Request> for Gate<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let path = request.extensions().get::<MatchedPath>().cloned();
        let (state, listener) = (self.state.clone(), self.listener);
        // A peer's copy, abort or report comes signed with the swarm key instead of the token.
        let signed =
            listener == Listener::Public && state.token.is_some() && crate::agent::http::signed::is_signed(&request);
        let refusal = wrong_port_refusal(&request, listener, &state)
            .or_else(|| bounds_refusal(&request, listener.max_body(&state)))
            .or_else(|| state.browsers.refusal(&request).map(browser_refusal))
            .or_else(|| {
                if !signed && listener.needs_token(path.as_ref()) {
                    crate::agent::http::auth::token_refusal(state.token.as_ref(), &request)
                } else {
                    None
                }
            });
        if signed && refusal.is_none() {
            // The body must be read before the route runs: the service that was made ready goes along.
            let ready = self.inner.clone();
            let mut inner = std::mem::replace(&mut self.inner, ready);
            return Box::pin(async move {
                let response = match crate::agent::http::signed::admit(&state, request).await {
                    Ok(request) => inner.call(request).await?,
                    Err(refusal) => refusal,
                };
                count(&state, listener.label(), path.as_ref(), &response);
                Ok(response)
            });
        }
        // `poll_ready` was passed on, so the inner service is ready for this call.
        let answered = match refusal {
            Some(refusal) => Err(refusal),
            None => Ok(self.inner.call(request)),
        };
        Box::pin(async move {
            let response = match answered {
                Err(refusal) => refusal,
                Ok(answering) => answering.await?,
            };
            count(&state, listener.label(), path.as_ref(), &response);
            Ok(response)
        })
    }
}

/// A browser's request, refused and logged (the header named, its value Debug-quoted and cut short).
fn browser_refusal(error: ApiError) -> Response {
    tracing::warn!(activity = "request_refused", field = ?error.field, error = ?error.message, "refused a request a web page sent");
    error.into_closing_response()
}

/// One answered request in `tarsier_http_requests_total`, labelled by route pattern, never the raw path, so
/// a scanner cannot blow up the label set.
fn count(state: &AgentState, listener: &str, path: Option<&MatchedPath>, response: &Response) {
    let path = path.map_or("other", MatchedPath::as_str);
    state.metrics.http_requests.with_label_values(&[listener, path, response.status().as_str()]).inc();
}

pub async fn no_such_route(uri: Uri) -> ApiError {
    ApiError::not_found(format!("no route {}", uri.path()))
}

pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, format!("{method} is not allowed on {}", uri.path()))
}

/// A command sent to the service port (a body, or `/exec`) is a mix-up of the two ports, not a body too large:
/// a 404 that names the public port, rather than "larger than this agent accepts (0 bytes)".
fn wrong_port_refusal(request: &Request, listener: Listener, state: &AgentState) -> Option<Response> {
    if listener != Listener::Service {
        return None;
    }
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let chunked = request.headers().contains_key(header::TRANSFER_ENCODING);
    let commands = ["/exec", "/abort", "/jobs"].iter().any(|p| request.uri().path().starts_with(p));
    if !(declared.is_some_and(|len| len > 0) || chunked || commands) {
        return None;
    }
    let message = format!(
        "this is the service port (health, metrics, the catalogue); send commands to the public port: \
         http://{}{}",
        state.public_addr,
        if commands { request.uri().path() } else { "/exec" }
    );
    Some(ApiError::not_found(message).into_closing_response())
}

/// The longest request target (path and query) either listener reads.
pub const MAX_URI: usize = 8 * 1024;
/// The most header bytes (names and values) either listener reads; hyper itself stops at 64 KiB.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Refuses what is too large before anything is read, as JSON: a long URI (414), large headers (431), an
/// `Expect` other than `100-continue` (417), and a `Content-Length` over `max_body` (413). The last is
/// answered before the body is touched, so a client that sent `Expect: 100-continue` never gets its
/// `100 Continue` and does not send the body at all. A refusal closes the connection.
fn bounds_refusal(request: &Request, max_body: usize) -> Option<Response> {
    let headers = request.headers();
    let target = request.uri().path_and_query().map_or(0, |target| target.as_str().len());
    let refusal = if target > MAX_URI {
        Some((StatusCode::URI_TOO_LONG, format!("the request target is longer than {MAX_URI} bytes")))
    } else if headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum::<usize>() > MAX_HEADER_BYTES {
        Some((
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!("the headers are larger than {MAX_HEADER_BYTES} bytes"),
        ))
    } else if headers.get(header::EXPECT).is_some_and(|e| !e.as_bytes().eq_ignore_ascii_case(b"100-continue")) {
        Some((StatusCode::EXPECTATION_FAILED, "only `Expect: 100-continue` is understood".to_owned()))
    } else {
        let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        declared.filter(|len| *len > max_body as u64).map(|len| {
            (
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a body of {len} bytes is larger than this agent accepts ({max_body} bytes, max_body)"),
            )
        })
    };
    refusal.map(|(status, message)| ApiError::new(status, message).into_closing_response())
}
