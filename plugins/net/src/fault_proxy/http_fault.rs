//! HTTP-aware faults, the toxics of a proxy made with `protocol: http`: each picks requests by method, path
//! (a prefix or a regex) and headers, and acts on the `toxicity` share of them, drawn per request:
//!
//! - `http_respond`: the proxy answers `status` with `body` (and `headers`) itself; the upstream never sees it;
//! - `http_delay`: the answer's headers (`before: headers`) or its first body byte (`before: body`) go out
//!   `delay` ms (+- `jitter`) late;
//! - `http_throttle`: the answer's body goes at most `rate` KB/s;
//! - `http_cut`: the connection is closed after `after` bytes of the answer's body;
//! - `http_drop`: the connection is closed (or reset, `reset: true`) before anything is answered;
//! - `http_header`: headers `set` or `remove`d, on the answer (`stream: downstream`) or on the request
//!   (`stream: upstream`).
//!
//! Every attribute is checked and bounded here (a bad one is a 400 naming it): no header can carry CR or LF,
//! none that frames the message (`content-length`, `transfer-encoding`, `connection`, ...) can be changed,
//! and a regex is size-limited and runs in linear time (the `regex` crate's guarantee).

use std::time::Duration;

use serde_json::{json, Map, Value};
use tarsier_plugin::DataError;

use super::toxic::{whole_number, Stream};

/// A generated answer's body, at most.
const MAX_BODY: usize = 64 * 1024;
/// Headers one fault may set, remove or match.
const MAX_HEADERS: usize = 32;
/// A path regex's length, and its compiled size.
const MAX_REGEX: usize = 512;
const REGEX_SIZE_LIMIT: usize = 1 << 20;
const HOUR_MS: u64 = 3_600_000;

/// Which requests a fault picks: all of its parts must hold (an empty match picks every request).
#[derive(Debug, Clone, Default)]
pub struct Match {
    /// Any of these methods (exact, as sent: `POST`).
    pub methods: Vec<String>,
    /// The path (the request target without its query) starts with this.
    pub path_prefix: Option<String>,
    /// The path matches this (unanchored unless written with `^...$`).
    pub path_regex: Option<regex::Regex>,
    /// Each of these request headers is present with this value (`*`: with any value); names are
    /// case-insensitive, values exact.
    pub headers: Vec<(String, String)>,
}

impl PartialEq for Match {
    fn eq(&self, other: &Self) -> bool {
        self.methods == other.methods
            && self.path_prefix == other.path_prefix
            && self.path_regex.as_ref().map(regex::Regex::as_str) == other.path_regex.as_ref().map(regex::Regex::as_str)
            && self.headers == other.headers
    }
}

/// The request as a fault's match sees it.
pub struct RequestView<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [httparse::Header<'a>],
}

impl Match {
    pub fn picks(&self, request: &RequestView) -> bool {
        (self.methods.is_empty() || self.methods.iter().any(|m| m == request.method))
            && self.path_prefix.as_ref().is_none_or(|prefix| request.path.starts_with(prefix.as_str()))
            && self.path_regex.as_ref().is_none_or(|regex| regex.is_match(request.path))
            && self.headers.iter().all(|(name, value)| {
                request
                    .headers
                    .iter()
                    .any(|h| h.name.eq_ignore_ascii_case(name) && (value == "*" || h.value == value.as_bytes()))
            })
    }

    fn describe(&self) -> Value {
        let mut out = Map::new();
        if !self.methods.is_empty() {
            out.insert("method".into(), json!(self.methods));
        }
        if let Some(prefix) = &self.path_prefix {
            out.insert("path_prefix".into(), json!(prefix));
        }
        if let Some(regex) = &self.path_regex {
            out.insert("path_regex".into(), json!(regex.as_str()));
        }
        if !self.headers.is_empty() {
            let headers: Map<String, Value> = self.headers.iter().map(|(n, v)| (n.clone(), json!(v))).collect();
            out.insert("headers".into(), Value::Object(headers));
        }
        Value::Object(out)
    }
}

/// Where an `http_delay` holds the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Before {
    Headers,
    Body,
}

/// What a fault does to a request it picked.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Respond { status: u16, body: String, headers: Vec<(String, String)> },
    Delay { delay: Duration, jitter: Duration, before: Before },
    Throttle { rate_kb: u64 },
    Cut { after: u64 },
    Drop { reset: bool },
    Header { set: Vec<(String, String)>, remove: Vec<String> },
}

impl Action {
    pub fn type_name(&self) -> &'static str {
        match self {
            Action::Respond { .. } => "http_respond",
            Action::Delay { .. } => "http_delay",
            Action::Throttle { .. } => "http_throttle",
            Action::Cut { .. } => "http_cut",
            Action::Drop { .. } => "http_drop",
            Action::Header { .. } => "http_header",
        }
    }
}

/// One HTTP fault: which requests, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpFault {
    pub picks: Match,
    pub action: Action,
}

/// The toxic types this module reads.
pub const TYPES: &[&str] = &["http_respond", "http_delay", "http_throttle", "http_cut", "http_drop", "http_header"];

impl HttpFault {
    pub fn type_name(&self) -> &'static str {
        self.action.type_name()
    }
    /// Whether the fault acts on the request (`upstream`) rather than on the answer: only `http_header` may.
    pub fn check_stream(&self, stream: Stream) -> Result<(), DataError> {
        match (&self.action, stream) {
            (Action::Header { .. }, _) | (_, Stream::Downstream) => Ok(()),
            _ => Err(DataError::field(
                "stream",
                format!("{} acts on the answer: its stream is `downstream`", self.type_name()),
            )),
        }
    }

    pub fn attributes(&self) -> Value {
        let headers = |list: &[(String, String)]| -> Value {
            Value::Object(list.iter().map(|(n, v)| (n.clone(), json!(v))).collect())
        };
        let mut out = match &self.action {
            Action::Respond { status, body, headers: set } => {
                json!({"status": status, "body": body, "headers": headers(set)})
            }
            Action::Delay { delay, jitter, before } => json!({
                "delay": delay.as_millis() as u64,
                "jitter": jitter.as_millis() as u64,
                "before": match before { Before::Headers => "headers", Before::Body => "body" },
            }),
            Action::Throttle { rate_kb } => json!({"rate": rate_kb}),
            Action::Cut { after } => json!({"after": after}),
            Action::Drop { reset } => json!({"reset": reset}),
            Action::Header { set, remove } => json!({"set": headers(set), "remove": remove}),
        };
        out["match"] = self.picks.describe();
        out
    }

    /// `type` and `attributes` as a body gives them; `field` names the attributes in errors.
    pub fn parse(kind: &str, attributes: &Map<String, Value>, field: &str) -> Result<Self, DataError> {
        let at = |name: &str| format!("{field}.{name}");
        let known: &[&str] = match kind {
            "http_respond" => &["match", "status", "body", "headers"],
            "http_delay" => &["match", "delay", "jitter", "before"],
            "http_throttle" => &["match", "rate"],
            "http_cut" => &["match", "after"],
            "http_drop" => &["match", "reset"],
            "http_header" => &["match", "set", "remove"],
            other => {
                return Err(DataError::field("type", format!("`{other}` is not an HTTP fault: {}", TYPES.join(", "))))
            }
        };
        if let Some(unknown) = attributes.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(DataError::field(
                &at(unknown),
                format!("not an attribute of an {kind} toxic (it takes: {})", known.join(", ")),
            ));
        }
        let number = |name: &str, max: u64| whole_number(attributes, name, max, field);
        let picks = match attributes.get("match") {
            None => Match::default(),
            Some(value) => parse_match(value, &at("match"))?,
        };
        let action = match kind {
            "http_respond" => {
                let status = number("status", 599)?.unwrap_or(503);
                if status < 200 {
                    return Err(DataError::field(&at("status"), "an answer's status is from 200 to 599"));
                }
                let body = match attributes.get("body") {
                    None => String::new(),
                    Some(Value::String(body)) if body.len() <= MAX_BODY => body.clone(),
                    Some(_) => {
                        return Err(DataError::field(&at("body"), format!("a string of at most {MAX_BODY} bytes")))
                    }
                };
                let headers = header_map(attributes.get("headers"), &at("headers"), true)?;
                Action::Respond { status: status as u16, body, headers }
            }
            "http_delay" => {
                let delay = Duration::from_millis(number("delay", HOUR_MS)?.unwrap_or(0));
                let jitter = Duration::from_millis(number("jitter", HOUR_MS)?.unwrap_or(0));
                if jitter > delay {
                    return Err(DataError::field(&at("jitter"), "must not be more than `delay`"));
                }
                let before = match attributes.get("before").map(|v| v.as_str()) {
                    None | Some(Some("headers")) => Before::Headers,
                    Some(Some("body")) => Before::Body,
                    Some(_) => return Err(DataError::field(&at("before"), "`headers` or `body`")),
                };
                Action::Delay { delay, jitter, before }
            }
            "http_throttle" => {
                let rate_kb = number("rate", 10_000_000)?.unwrap_or(0);
                if rate_kb == 0 {
                    return Err(DataError::field(&at("rate"), "must be at least 1 (KB/s)"));
                }
                Action::Throttle { rate_kb }
            }
            "http_cut" => Action::Cut { after: number("after", u64::MAX >> 1)?.unwrap_or(0) },
            "http_drop" => match attributes.get("reset") {
                None => Action::Drop { reset: false },
                Some(Value::Bool(reset)) => Action::Drop { reset: *reset },
                Some(_) => return Err(DataError::field(&at("reset"), "true or false")),
            },
            _ => {
                let set = header_map(attributes.get("set"), &at("set"), true)?;
                let remove = match attributes.get("remove") {
                    None => Vec::new(),
                    Some(Value::Array(names)) if names.len() <= MAX_HEADERS => names
                        .iter()
                        .map(|name| match name.as_str() {
                            Some(name) => {
                                check_header_name(name, &at("remove"), true).map(|()| name.to_ascii_lowercase())
                            }
                            None => Err(DataError::field(&at("remove"), "a list of header names")),
                        })
                        .collect::<Result<_, _>>()?,
                    Some(_) => {
                        return Err(DataError::field(&at("remove"), format!("a list of at most {MAX_HEADERS} names")))
                    }
                };
                if set.is_empty() && remove.is_empty() {
                    return Err(DataError::field(&at("set"), "an http_header toxic sets or removes a header"));
                }
                Action::Header { set, remove }
            }
        };
        Ok(HttpFault { picks, action })
    }
}

fn parse_match(value: &Value, field: &str) -> Result<Match, DataError> {
    let Value::Object(parts) = value else {
        return Err(DataError::field(field, "an object of method, path_prefix, path_regex and headers"));
    };
    let at = |name: &str| format!("{field}.{name}");
    let mut picks = Match::default();
    for (name, value) in parts {
        match name.as_str() {
            "method" => {
                let methods: Vec<&Value> = match value {
                    Value::Array(list) if list.len() <= 16 => list.iter().collect(),
                    Value::Array(_) => return Err(DataError::field(&at("method"), "at most 16 methods")),
                    one => vec![one],
                };
                for method in methods {
                    let method = method
                        .as_str()
                        .filter(|m| (1..=32).contains(&m.len()) && m.bytes().all(is_token_byte))
                        .ok_or_else(|| DataError::field(&at("method"), "a method such as GET, or a list of them"))?;
                    picks.methods.push(method.to_owned());
                }
            }
            "path_prefix" => {
                let prefix = value
                    .as_str()
                    .filter(|p| p.starts_with('/') && p.len() <= 1024)
                    .ok_or_else(|| DataError::field(&at("path_prefix"), "a path starting with `/`"))?;
                picks.path_prefix = Some(prefix.to_owned());
            }
            "path_regex" => {
                let pattern = value.as_str().filter(|p| p.len() <= MAX_REGEX).ok_or_else(|| {
                    DataError::field(&at("path_regex"), format!("a regex of at most {MAX_REGEX} bytes"))
                })?;
                let regex = regex::RegexBuilder::new(pattern)
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .map_err(|e| DataError::field(&at("path_regex"), format!("not a regex: {e}")))?;
                picks.path_regex = Some(regex);
            }
            "headers" => {
                picks.headers = header_map(Some(value), &at("headers"), false)?
                    .into_iter()
                    .map(|(name, value)| (name.to_ascii_lowercase(), value))
                    .collect();
            }
            other => {
                return Err(DataError::field(
                    &at(other),
                    "not part of a match (it takes: method, path_prefix, path_regex, headers)",
                ))
            }
        }
    }
    Ok(picks)
}

/// `{name: value}`, every name a token (and, to be changed, no framing header), every value free of CR, LF and NUL.
fn header_map(value: Option<&Value>, field: &str, change: bool) -> Result<Vec<(String, String)>, DataError> {
    let Some(value) = value else { return Ok(Vec::new()) };
    let Value::Object(map) = value else {
        return Err(DataError::field(field, "an object of header names and values"));
    };
    if map.len() > MAX_HEADERS {
        return Err(DataError::field(field, format!("at most {MAX_HEADERS} headers")));
    }
    map.iter()
        .map(|(name, value)| {
            check_header_name(name, field, change)?;
            let value = value
                .as_str()
                .filter(|v| v.len() <= 4096 && !v.bytes().any(|b| matches!(b, b'\r' | b'\n' | 0)))
                .ok_or_else(|| {
                    DataError::field(&format!("{field}.{name}"), "a string of at most 4096 bytes without CR, LF or NUL")
                })?;
            Ok((name.clone(), value.to_owned()))
        })
        .collect()
}

/// The headers that say where a message ends or what its connection does: changing one would make the proxy
/// and its peers read the stream differently.
const FRAMING_HEADERS: &[&str] =
    &["content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer", "host"];

/// A header name; one that frames the message only where it is matched, never where it is changed.
fn check_header_name(name: &str, field: &str, change: bool) -> Result<(), DataError> {
    if name.is_empty() || name.len() > 128 || !name.bytes().all(is_token_byte) {
        return Err(DataError::field(field, format!("`{name}` is not a header name")));
    }
    if change && FRAMING_HEADERS.iter().any(|f| f.eq_ignore_ascii_case(name)) {
        return Err(DataError::field(field, format!("`{name}` frames the message: the proxy cannot change it")));
    }
    Ok(())
}

/// RFC 9110's `tchar`.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// A reason phrase for a generated answer.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Fault",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(kind: &str, attributes: Value) -> Result<HttpFault, DataError> {
        HttpFault::parse(kind, attributes.as_object().unwrap(), "attributes")
    }

    #[test]
    fn faults_read_their_attributes_and_refuse_bad_ones_by_name() {
        let fault = parse(
            "http_respond",
            json!({"status": 503, "body": "no", "match": {"method": "POST", "path_prefix": "/pay"}}),
        )
        .unwrap();
        assert_eq!(fault.action, Action::Respond { status: 503, body: "no".into(), headers: vec![] });
        assert_eq!(fault.attributes()["match"], json!({"method": ["POST"], "path_prefix": "/pay"}));
        for (kind, attributes, field) in [
            ("http_respond", json!({"status": 99}), "attributes.status"),
            ("http_respond", json!({"headers": {"x-a": "1\r\nx-b: 2"}}), "attributes.headers.x-a"),
            ("http_respond", json!({"headers": {"Content-Length": "1"}}), "attributes.headers"),
            ("http_delay", json!({"delay": 10, "jitter": 20}), "attributes.jitter"),
            ("http_delay", json!({"before": "trailers"}), "attributes.before"),
            ("http_throttle", json!({}), "attributes.rate"),
            ("http_drop", json!({"reset": "yes"}), "attributes.reset"),
            ("http_header", json!({}), "attributes.set"),
            ("http_header", json!({"remove": ["transfer-encoding"]}), "attributes.remove"),
            ("http_cut", json!({"after": 1, "match": {"path_regex": "("}}), "attributes.match.path_regex"),
            ("http_cut", json!({"match": {"path": "/"}}), "attributes.match.path"),
            ("http_cut", json!({"match": {"method": "GE T"}}), "attributes.match.method"),
            ("http_cut", json!({"latency": 1}), "attributes.latency"),
        ] {
            let err = parse(kind, attributes).unwrap_err();
            assert_eq!(err.field.as_deref(), Some(format!("data.{field}").as_str()), "{kind}: {err:?}");
        }
    }

    #[test]
    fn a_match_needs_every_part_to_hold() {
        let fault = parse(
            "http_drop",
            json!({"match": {"method": ["POST", "PUT"], "path_regex": "^/pay/[0-9]+$", "headers": {"X-Tenant": "blue", "x-trace": "*"}}}),
        )
        .unwrap();
        let headers = [
            httparse::Header { name: "x-tenant", value: b"blue" },
            httparse::Header { name: "X-Trace", value: b"abc" },
        ];
        let view = |method, path, headers| RequestView { method, path, headers };
        assert!(fault.picks.picks(&view("POST", "/pay/12", &headers)));
        assert!(!fault.picks.picks(&view("GET", "/pay/12", &headers)));
        assert!(!fault.picks.picks(&view("PUT", "/pay/12/x", &headers)));
        assert!(!fault.picks.picks(&view("PUT", "/pay/12", &headers[..1])));
        assert!(Match::default().picks(&view("GET", "/", &[])));
    }
}
