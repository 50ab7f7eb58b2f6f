//! The command body on the wire (docs/guide.md: The command body), in YAML or JSON, with the reference Tarsier's aliases.

mod select;
mod shape;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tarsier_plugin::field_path;

use crate::wire::error::ApiError;
pub use select::{check_label, check_labels, labels_match, Labels, Select, MAX_LABELS};
pub use shape::{check_nesting, check_tags, unique_value, UniqueKeys, MAX_DEPTH, MAX_INDENT};

/// A wave id: 1 to 64 characters of `A-Z a-z 0-9 _ -`. Ids travel in URLs, logs and memory of every agent,
/// so anything else is refused (a 500 KB id, `../` in a report URL, a newline in a log line).
pub const MAX_WAVE_ID: usize = 64;
/// The longest `origin` (`host:port`) a copy may carry.
const MAX_ORIGIN: usize = 300;

pub fn check_wave_id(id: &str) -> Result<(), ApiError> {
    let fits = (1..=MAX_WAVE_ID).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if fits {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            Some("wave.id".into()),
            format!("wave.id: must be 1 to {MAX_WAVE_ID} characters of A-Z, a-z, 0-9, `_` and `-`"),
        ))
    }
}

/// Sanity bounds on a wave: `buddies^remain` agents is the reach, so these already mean "the whole cluster".
pub const MAX_REMAIN: u32 = 32;
pub const MAX_BUDDIES: u32 = 1_000;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommandBody {
    /// `plugin/command`.
    pub command: String,
    /// The command's own fields; a key given twice is refused (serde would keep the last one silently).
    #[serde(default, deserialize_with = "unique_value")]
    pub data: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wave: Option<WaveSpec>,
    /// Answer `202` with a job id at once instead of waiting for the command.
    #[serde(default)]
    pub detach: bool,
}

/// How a command spreads through the swarm.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct WaveSpec {
    /// Waves still to send after this agent; the reference called it `remains`.
    #[serde(default, alias = "remains")]
    pub remain: u32,
    /// Peers each agent forwards to.
    #[serde(default)]
    pub buddies: u32,
    /// Given by the first agent; forwarded copies keep it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Distance from the first agent.
    #[serde(default)]
    pub hop: u32,
    /// Execute a given wave id at most once per agent.
    #[serde(default)]
    pub dedupe: bool,
    /// Report every agent's result back to the origin.
    #[serde(default)]
    pub report: bool,
    /// Public `host:port` of the agent that started the wave (set by it, for reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    /// Executions this copy and every copy it leads to may still run, for a wave without dedupe (the origin
    /// sets it from `limits.max_wave_executions`; each hop splits what is left among its copies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<u64>,
    /// When the origin started the wave (Unix ms, its clock): copies of waves older than an abort are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<u64>,
    /// Which agents run the command (the blast radius): the origin picks them and sends each a copy itself,
    /// whatever `remain` and `buddies` say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Select>,
}

impl WaveSpec {
    /// The bounds every wave is held to, whichever route it comes through.
    pub fn validate(&self) -> Result<(), ApiError> {
        if let Some(id) = &self.id {
            check_wave_id(id)?;
        }
        if let Some(select) = &self.select {
            select.validate()?;
        }
        if self.origin.as_ref().is_some_and(|o| o.len() > MAX_ORIGIN) {
            return Err(ApiError::bad_request(
                Some("wave.origin".into()),
                format!("wave.origin: longer than {MAX_ORIGIN} characters"),
            ));
        }
        if self.remain > MAX_REMAIN {
            return Err(ApiError::bad_request(
                Some("wave.remain".into()),
                format!("wave.remain: {} is over the bound of {MAX_REMAIN} hops", self.remain),
            ));
        }
        if self.buddies > MAX_BUDDIES {
            return Err(ApiError::bad_request(
                Some("wave.buddies".into()),
                format!("wave.buddies: {} is over the bound of {MAX_BUDDIES} peers", self.buddies),
            ));
        }
        if self.remain > 0 && self.buddies == 0 {
            return Err(ApiError::bad_request(
                Some("wave.buddies".into()),
                "wave.buddies: must be at least 1 when wave.remain is more than 0",
            ));
        }
        Ok(())
    }

    /// The wave as the next hop gets it: one hop further, one hop less to go, same id, origin and options.
    pub fn next_hop(&self) -> WaveSpec {
        WaveSpec { remain: self.remain.saturating_sub(1), hop: self.hop + 1, ..self.clone() }
    }
}

/// Which parser a body goes through: JSON when the client says so, YAML (a superset of JSON) otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Yaml,
}

impl BodyFormat {
    pub fn name(self) -> &'static str {
        match self {
            BodyFormat::Json => "JSON",
            BodyFormat::Yaml => "YAML",
        }
    }

    /// The parser for a `Content-Type`: none, or a JSON or YAML type. Any other type is `None` and the body
    /// is refused unread (415): `text/plain`, forms and `multipart/form-data` are what a web page can send
    /// cross-site without asking first, so an agent never reads a command from them.
    pub fn from_content_type(content_type: Option<&str>) -> Option<Self> {
        let Some(content_type) = content_type else { return Some(Self::Yaml) };
        let media = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match media.as_str() {
            "" => Some(Self::Yaml),
            "application/json" => Some(Self::Json),
            "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => Some(Self::Yaml),
            media if media.ends_with("+json") => Some(Self::Json),
            media if media.ends_with("+yaml") => Some(Self::Yaml),
            _ => None,
        }
    }
}

/// Checks what the parsers cannot be trusted with, before the typed parse: nesting (in linear time, before
/// any parser sees the body) and duplicate keys at any depth.
fn check_shape(bytes: &[u8], format: BodyFormat, what: &str) -> Result<(), ApiError> {
    check_nesting(bytes).map_err(|why| ApiError::bad_request(None, format!("invalid {what}: {why}")))?;
    if format == BodyFormat::Yaml {
        check_tags(bytes).map_err(|why| ApiError::bad_request(None, format!("invalid {what}: {why}")))?;
    }
    let unique = match format {
        BodyFormat::Json => serde_json::from_slice::<UniqueKeys>(bytes).map(drop).map_err(|e| e.to_string()),
        BodyFormat::Yaml => serde_norway::from_slice::<UniqueKeys>(bytes).map(drop).map_err(|e| e.to_string()),
    };
    match unique {
        // Only a duplicate is reported here; any other problem gets the typed parse's better message.
        Err(message) if message.contains("duplicate") => {
            Err(ApiError::bad_request(None, format!("invalid {what}: {message}")))
        }
        _ => Ok(()),
    }
}

/// A whole JSON document as `T`: bounded nesting, no duplicate keys, nothing after it.
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, ApiError> {
    parse_document(bytes, BodyFormat::Json, what)
}

/// A whole document in `format` as `T`, with the same checks as a command body.
pub fn parse_document<T: DeserializeOwned>(bytes: &[u8], format: BodyFormat, what: &str) -> Result<T, ApiError> {
    check_shape(bytes, format, what)?;
    let parsed = match format {
        // `from_slice` refuses trailing data after the document.
        BodyFormat::Json => serde_json::from_slice(bytes).map_err(|e| e.to_string()),
        BodyFormat::Yaml => serde_norway::from_slice(bytes).map_err(|e| e.to_string()),
    };
    parsed.map_err(|message| ApiError::bad_request(None, format!("invalid {what}: {message}")))
}

impl CommandBody {
    /// Parses and checks a body; every error names the field (and, for syntax errors, the line and column).
    pub fn parse(bytes: &[u8], format: BodyFormat) -> Result<Self, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                None,
                "empty body: send a command such as `command: sleep/sleep` with its `data:`",
            ));
        }
        // Duplicate keys are refused by the typed parse itself: serde's derive for the body's own fields,
        // `unique_value` for `data`.
        check_nesting(bytes)
            .map_err(|why| ApiError::bad_request(None, format!("invalid {} body: {why}", format.name())))?;
        if format == BodyFormat::Yaml {
            check_tags(bytes).map_err(|why| ApiError::bad_request(None, format!("invalid YAML body: {why}")))?;
        }
        // Parsed without tracking field paths first: tracking cost 1,800 of 42,800 instructions of a JSON
        // `/exec`, and only a refused body needs it, parsed again below to name the field.
        // PERF(parse): parsed without path tracking first; only a refused body is parsed again to name its field.
        let untracked = match format {
            BodyFormat::Json => serde_json::from_slice::<CommandBody>(bytes).ok(),
            BodyFormat::Yaml => serde_norway::from_slice::<CommandBody>(bytes).ok(),
        };
        if let Some(parsed) = untracked {
            parsed.check()?;
            return Ok(parsed);
        }
        let parsed = match format {
            BodyFormat::Json => {
                let mut de = serde_json::Deserializer::from_slice(bytes);
                let parsed = serde_path_to_error::deserialize::<_, CommandBody>(&mut de).map_err(|err| {
                    use serde_json::error::Category;
                    let syntax = matches!(err.inner().classify(), Category::Syntax | Category::Eof);
                    located(err.path().to_string(), err.into_inner().to_string(), "JSON", syntax)
                });
                // One document only: `{...} garbage` used to run the first object.
                parsed.and_then(|body| {
                    de.end()
                        .map(|()| body)
                        .map_err(|err| ApiError::bad_request(None, format!("invalid JSON body: {err}")))
                })
            }
            BodyFormat::Yaml => {
                let de = serde_norway::Deserializer::from_slice(bytes);
                serde_path_to_error::deserialize::<_, CommandBody>(de).map_err(|err| {
                    let message = err.inner().to_string();
                    // The YAML scanner's and parser's own errors: the text is not YAML at all.
                    let syntax = message.contains("while scanning") || message.contains("while parsing");
                    located(err.path().to_string(), message, "YAML", syntax)
                })
            }
        }?;
        parsed.check()?;
        Ok(parsed)
    }

    fn check(&self) -> Result<(), ApiError> {
        if !(self.data.is_null() || self.data.is_object()) {
            return Err(ApiError::bad_request(
                Some("data".into()),
                format!("data: must be a mapping of the command's fields, not {}", kind(&self.data)),
            ));
        }
        match &self.wave {
            Some(wave) => wave.validate(),
            None => Ok(()),
        }
    }
}

/// A parse error as a `400`: a syntax error names no field (where the parser stopped is only a guess), a
/// data error names the field it is about.
fn located(path: String, message: String, syntax: &str, is_syntax_error: bool) -> ApiError {
    let field = if is_syntax_error { String::new() } else { field_path(&path, &message) };
    let message = tarsier_plugin::plain_words(
        &message.replace("struct CommandBody", "a command body (a mapping with `command:`)"),
    );
    // A wave's fields that agents set for each other are not offered to people writing one.
    let message = message.replace(
        "expected one of `remain`, `remains`, `buddies`, `id`, `hop`, `dedupe`, `report`, `origin`, `budget`, `started_at_ms`",
        "expected one of `remain` (or `remains`), `buddies`, `dedupe`, `report`",
    );
    if field.is_empty() {
        ApiError::bad_request(None, format!("invalid {syntax} body: {message}"))
    } else {
        ApiError::bad_request(Some(field.clone()), format!("{field}: {message}"))
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_body_with_remains() {
        let body = CommandBody::parse(
            b"command: heavy_load/spin_cpu\ndata:\n  duration: 15s\nwave:\n  remains: 3\n  buddies: 10\n",
            BodyFormat::Yaml,
        )
        .unwrap();
        assert_eq!(body.command, "heavy_load/spin_cpu");
        assert_eq!(body.wave.unwrap().remain, 3);
    }

    #[test]
    fn json_through_either_parser() {
        let json = br#"{"command": "sleep/sleep", "data": {"duration": "1s"}, "detach": true}"#;
        for format in [BodyFormat::Json, BodyFormat::Yaml] {
            let body = CommandBody::parse(json, format).unwrap();
            assert!(body.detach);
        }
    }

    #[test]
    fn syntax_errors_carry_line_and_column() {
        let err = CommandBody::parse(b"command: sleep/sleep\ndata: {duration: [\n", BodyFormat::Yaml).unwrap_err();
        assert!(err.message.contains("line"), "{}", err.message);
        let err = CommandBody::parse(b"command: sleep/sleep\nwave:\n  remian: 3\n", BodyFormat::Yaml).unwrap_err();
        assert_eq!(err.field.as_deref(), Some("wave.remian"));
        assert!(err.message.contains("line 3"), "{}", err.message);
    }
}

#[cfg(test)]
mod properties {
    //! Whatever bytes arrive, parsing answers (Ok or a 400 naming no secret), never panics, and never takes
    //! long: bodies built from YAML's and JSON's structural characters, bounded in number and size for CI.
    use super::*;
    use proptest::prelude::*;
    use std::time::{Duration, Instant};

    fn body() -> impl Strategy<Value = Vec<u8>> {
        let pieces = prop_oneof![
            Just(b"command: ".to_vec()),
            Just(b"sleep/sleep".to_vec()),
            Just(b"data: ".to_vec()),
            Just(b"wave: ".to_vec()),
            Just(b"{".to_vec()),
            Just(b"}".to_vec()),
            Just(b"[".to_vec()),
            Just(b"]".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"  ".to_vec()),
            Just(b"- ".to_vec()),
            Just(b": ".to_vec()),
            Just(b", ".to_vec()),
            Just(b"\"".to_vec()),
            Just(b"'".to_vec()),
            Just(b"&a ".to_vec()),
            Just(b"*a".to_vec()),
            Just(b"# ".to_vec()),
            Just(b"remain: 3".to_vec()),
            Just(b"duration: 1s".to_vec()),
            prop::collection::vec(any::<u8>(), 0..8),
        ];
        prop::collection::vec(pieces, 0..200).prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]
        #[test]
        fn any_body_is_answered_quickly_and_never_panics(bytes in body()) {
            for format in [BodyFormat::Yaml, BodyFormat::Json] {
                let started = Instant::now();
                match CommandBody::parse(&bytes, format) {
                    // Whatever is accepted is within the bounds every body is held to.
                    Ok(body) => prop_assert!(body.wave.as_ref().is_none_or(|w| w.validate().is_ok())),
                    Err(err) => prop_assert_eq!(err.status, axum::http::StatusCode::BAD_REQUEST),
                }
                prop_assert!(started.elapsed() < Duration::from_secs(1), "{:?} took {:?}", format, started.elapsed());
            }
        }

        #[test]
        fn a_tag_is_refused_wherever_a_value_starts(key in "[a-z]{1,8}", tag in "!{1,2}[a-z/:.]{1,12}") {
            for body in [format!("command: x\n{key}: {tag} v\n"), format!("data: [{tag} 1]\n"), format!("- {tag}\n")] {
                prop_assert!(check_tags(body.as_bytes()).is_err(), "{}", body);
            }
            let plain = format!("{key}: 'a {tag}'\nb: \"{tag}\"\nc: x{tag}  # {tag}\n");
            prop_assert!(check_tags(plain.as_bytes()).is_ok(), "{}", plain);
        }

        #[test]
        fn nesting_is_refused_whatever_surrounds_it(prefix in "[a-z: ]{0,20}", depth in 33usize..2000) {
            let body = format!("{prefix}{}", "[".repeat(depth));
            prop_assert!(check_nesting(body.as_bytes()).is_err());
        }
    }
}
