//! Browsers are strangers (the agents' rule; `tarsier console` keeps it too, with its own pages let in). A web page can make a visitor's browser send requests to an agent on loopback or
//! on the visitor's network: a cross-site form or `text/plain` POST (no CORS preflight), or, after DNS
//! rebinding, any request under the page's own host name. Every listener therefore refuses, with a 403, a
//! request that carries an `Origin` not in `server.allowed_origins` (empty by default: no page may) and one
//! whose host is not an IP literal, `localhost`, this agent's advertised host, its machine's host name or a
//! name in `server.allowed_hosts`. A rebinding page's requests carry the attacker's host name; a cross-site
//! page's carry its origin. Programs (curl, agents, Prometheus, Consul) send neither, or an allowed host.

use axum::extract::Request;
use axum::http::{header, StatusCode};

use super::error::ApiError;

/// Who may talk to this agent from a browser, and under which host names.
#[derive(Debug, Clone, Default)]
pub struct BrowserPolicy {
    /// Host names (lower case, no port) accepted besides IP literals and `localhost`.
    hosts: Vec<String>,
    /// Origins (`https://console.example`) whose pages may send requests; none by default.
    origins: Vec<String>,
    /// The server's own pages may send requests (`Origin` is the scheme and the request's own host): the
    /// console, whose page calls its own API.
    own_pages: bool,
}

impl BrowserPolicy {
    /// `advertised` (the agent's own host names: its advertised host, the machine's host name) and the
    /// config's `allowed_hosts` and `allowed_origins`.
    pub fn new(advertised: &[&str], allowed_hosts: &[String], allowed_origins: &[String]) -> Self {
        let mut hosts: Vec<String> = advertised
            .iter()
            .map(|h| h.to_ascii_lowercase())
            .chain(allowed_hosts.iter().map(|h| h.trim().to_ascii_lowercase()))
            .filter(|h| !h.is_empty())
            .collect();
        hosts.sort();
        hosts.dedup();
        let origins = allowed_origins.iter().map(|o| o.trim().trim_end_matches('/').to_ascii_lowercase()).collect();
        Self { hosts, origins, own_pages: false }
    }

    /// A policy that also lets in requests from the server's own pages (`Origin: http://<its Host>`): for a
    /// server that serves a web page, such as the console. Other pages stay refused.
    pub fn with_own_pages(mut self) -> Self {
        self.own_pages = true;
        self
    }

    /// The 403 for a request a browser was made to send; `None` for the rest.
    pub fn refusal(&self, request: &Request) -> Option<ApiError> {
        if let Some(origin) = request.headers().get(header::ORIGIN) {
            let allowed = origin.to_str().is_ok_and(|o| {
                self.origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(o.trim_end_matches('/')))
                    || (self.own_pages && self.is_own_origin(o, request))
            });
            if !allowed {
                let shown: String = String::from_utf8_lossy(origin.as_bytes()).chars().take(100).collect();
                return Some(
                    ApiError::new(
                        StatusCode::FORBIDDEN,
                        format!(
                            "requests from web pages are refused (Origin {shown:?} is not in server.allowed_origins)"
                        ),
                    )
                    .with_field("Origin"),
                );
            }
        }
        // HTTP/2 carries the host in the request's authority, HTTP/1.1 in `Host`.
        let host = match request.uri().host() {
            Some(host) => Some(host.to_owned()),
            None => request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_owned),
        };
        let host = host?;
        if self.accepts_host(&host) {
            return None;
        }
        let shown: String = host.chars().take(100).collect();
        Some(
            ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "the host {shown:?} is not this agent's: use its IP, localhost or its advertised name, or add \
                     the name to server.allowed_hosts"
                ),
            )
            .with_field("Host"),
        )
    }

    /// `http://HOST` or `https://HOST` where HOST is the request's own `Host` (with its port), and accepted.
    fn is_own_origin(&self, origin: &str, request: &Request) -> bool {
        let Some(host) = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()) else { return false };
        let Some((_, origin_host)) = origin.split_once("://") else { return false };
        origin_host.eq_ignore_ascii_case(host) && self.accepts_host(host)
    }

    /// An IP literal, `localhost`, or a known name; with or without a port.
    fn accepts_host(&self, host_and_port: &str) -> bool {
        let host = match host_and_port.rsplit_once(':') {
            // `[::1]:8080`, `a:8080`; a bare IPv6 literal has colons but no brackets.
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !host.contains(':') => host,
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) && host.ends_with(']') => host,
            _ => host_and_port,
        };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        if bare.parse::<std::net::IpAddr>().is_ok() {
            return true;
        }
        let host = host.trim_end_matches('.');
        host.eq_ignore_ascii_case("localhost") || self.hosts.iter().any(|known| known.eq_ignore_ascii_case(host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host: &str, origin: Option<&str>) -> Request {
        let mut builder = Request::builder().uri("/exec").header(header::HOST, host);
        if let Some(origin) = origin {
            builder = builder.header(header::ORIGIN, origin);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn pages_and_foreign_host_names_are_refused_and_programs_pass() {
        let policy = BrowserPolicy::new(&["agent-7"], &["tarsier-target".into()], &["https://console.example".into()]);
        for host in
            ["127.0.0.1:8080", "[::1]:8080", "::1", "localhost:8080", "LOCALHOST", "agent-7:8081", "tarsier-target"]
        {
            assert!(policy.refusal(&request(host, None)).is_none(), "{host}");
        }
        for host in ["rebind.evil.example:8080", "evil", "127.0.0.1.evil.example", "localhost.evil.example"] {
            let refused = policy.refusal(&request(host, None)).unwrap();
            assert_eq!((refused.status, refused.field.as_deref()), (StatusCode::FORBIDDEN, Some("Host")), "{host}");
        }
        let refused = policy.refusal(&request("127.0.0.1:8080", Some("https://evil.example"))).unwrap();
        assert_eq!(refused.field.as_deref(), Some("Origin"));
        assert!(policy.refusal(&request("127.0.0.1:8080", Some("null"))).is_some(), "a sandboxed page too");
        assert!(policy.refusal(&request("127.0.0.1:8080", Some("https://console.example/"))).is_none());
        assert!(BrowserPolicy::default().refusal(&request("127.0.0.1", Some("http://127.0.0.1:8080"))).is_some());
        let console = BrowserPolicy::default().with_own_pages();
        assert!(console.refusal(&request("127.0.0.1:8089", Some("http://127.0.0.1:8089"))).is_none());
        assert!(console.refusal(&request("127.0.0.1:8089", Some("http://127.0.0.1:9999"))).is_some());
        assert!(console.refusal(&request("evil.example:8089", Some("http://evil.example:8089"))).is_some());
    }
}
