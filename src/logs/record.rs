//! One activity record: a JSON object on one line. Every record names the agent that wrote it, the boot
//! (one run of the process) and its sequence number within that boot, so a reader that gets records
//! through any pipeline can tell a hole (a number it never saw) from a duplicate (one it saw twice).
//!
//! ```json
//! {"agent":"node-3:8080","boot":"5d0c3f9a2b71e8c4","seq":17,"ts_ms":1733480000123,"level":"info",
//!  "target":"tarsier::agent::exec","msg":"command ended","activity":"command_ended","command":"sleep/sleep",...}
//! ```
//! `agent`, `boot`, `seq` and `ts_ms` come first and are always there; the rest are the event's own fields.

use std::fmt::Write as _;

use serde::Deserialize;

/// Who writes: an agent's name and this run's boot id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub agent: String,
    pub boot: String,
}

impl Identity {
    /// A fresh boot id: 16 hex digits from the OS's random source, new every time the process starts.
    pub fn new_boot(agent: String) -> Self {
        Self { agent, boot: format!("{:016x}", rand::random::<u64>()) }
    }
}

/// The fields a reader needs of any record (the shipper's message id, the verifier's counts).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Stamp {
    pub agent: String,
    pub boot: String,
    pub seq: u64,
    pub ts_ms: u64,
}

impl Stamp {
    /// A record's stamp, or why it has none (a line that is not a record of this format).
    pub fn of_line(line: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(line)
    }
}

/// A record's stamp borrowed from its line: what the shipper reads of every record, without copying its
/// names (PERF(logship): the owned [`Stamp`] cost two allocations per record shipped).
#[derive(Debug, Deserialize)]
pub struct StampRef<'a> {
    #[serde(borrow)]
    pub agent: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub boot: std::borrow::Cow<'a, str>,
    pub seq: u64,
}

impl<'a> StampRef<'a> {
    /// The stamp of a record. One written by [`begin`] is read off its first bytes; any other line is
    /// parsed whole (PERF(logship): parsing every shipped record whole, its message included, was 9 % of
    /// `tarsier ship`'s CPU). The fast form does not check the rest of the line: a message id needs only
    /// the stamp, and a record broken after it is still shipped, as any line is.
    pub fn of_line(line: &'a [u8]) -> Result<Self, serde_json::Error> {
        match Self::as_written(line) {
            Some(stamp) => Ok(stamp),
            None => serde_json::from_slice(line),
        }
    }

    /// `{"agent":"…","boot":"…","seq":N` followed by `,` or `}`, the names without escapes.
    fn as_written(line: &'a [u8]) -> Option<Self> {
        let rest = line.strip_prefix(b"{\"agent\":\"")?;
        let (agent, rest) = plain_string(rest)?;
        let rest = rest.strip_prefix(b",\"boot\":\"")?;
        let (boot, rest) = plain_string(rest)?;
        let rest = rest.strip_prefix(b",\"seq\":")?;
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if !matches!(rest.get(digits), Some(b',' | b'}')) {
            return None;
        }
        let seq = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
        Some(Self { agent: agent.into(), boot: boot.into(), seq })
    }

    /// The id JetStream deduplicates by: the same record published twice is stored once.
    pub fn message_id(&self) -> String {
        use std::fmt::Write as _;
        let mut id = String::with_capacity(self.agent.len() + self.boot.len() + 22);
        let _ = write!(id, "{}/{}/{}", self.agent, self.boot, self.seq);
        id
    }
}

/// Whether JSON writes this byte of a string escaped (a quote, a backslash, a control character).
fn needs_escape(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}

/// A JSON string's text up to its closing quote and the bytes after that quote, when it has no escape or
/// control character (its text is then the bytes as they stand).
fn plain_string(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let end = memchr::memchr(b'"', bytes)?;
    let text = &bytes[..end];
    if text.iter().any(|b| needs_escape(*b)) {
        return None;
    }
    Some((std::str::from_utf8(text).ok()?, &bytes[end + 1..]))
}

/// Starts a record in `line`: `{"agent":...,"boot":...,"seq":...,"ts_ms":...` without the closing brace;
/// the caller appends `,"key":value` pairs and then [`end`].
pub fn begin(line: &mut String, identity: &Identity, seq: u64, ts_ms: u64) {
    line.push_str("{\"agent\":");
    push_json_string(line, &identity.agent);
    line.push_str(",\"boot\":");
    push_json_string(line, &identity.boot);
    let _ = write!(line, ",\"seq\":{seq},\"ts_ms\":{ts_ms}");
}

/// Appends `,"key":"value"` (the value escaped as JSON).
pub fn push_str_field(line: &mut String, key: &str, value: &str) {
    line.push(',');
    push_json_string(line, key);
    line.push(':');
    push_json_string(line, value);
}

/// Appends `,"key":value` for a value that is already JSON (a number, `true`).
pub fn push_raw_field(line: &mut String, key: &str, json: &str) {
    line.push(',');
    push_json_string(line, key);
    line.push(':');
    line.push_str(json);
}

/// Appends `,"key":number`.
pub fn push_number_field(line: &mut String, key: &str, number: impl std::fmt::Display) {
    line.push(',');
    push_json_string(line, key);
    let _ = write!(line, ":{number}");
}

/// Closes a record begun with [`begin`] and ends its line.
pub fn end(line: &mut String) {
    line.push_str("}\n");
}

fn push_json_string(line: &mut String, text: &str) {
    // PERF(file_log): most names and values need no escape; those go in as they are, without the String
    // serde_json would make for each.
    if !text.bytes().any(needs_escape) {
        line.push('"');
        line.push_str(text);
        line.push('"');
        return;
    }
    // serde_json's escaping of a &str cannot fail.
    line.push_str(&serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into()));
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_one_json_line_whose_stamp_reads_back() {
        let identity = Identity { agent: "a\"b".into(), boot: "00ff".into() };
        let mut line = String::new();
        begin(&mut line, &identity, 7, 1_000);
        push_str_field(&mut line, "msg", "line\nbreak");
        push_raw_field(&mut line, "n", "3");
        end(&mut line);
        assert_eq!(line.matches('\n').count(), 1, "{line}");
        let value: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(value["msg"], "line\nbreak");
        assert_eq!(value["n"], 3);
        let stamp = Stamp::of_line(line.trim_end().as_bytes()).unwrap();
        assert_eq!(stamp, Stamp { agent: "a\"b".into(), boot: "00ff".into(), seq: 7, ts_ms: 1_000 });
        // An escaped name is copied out of the line (a borrowed one could not hold the unescaped text).
        assert_eq!(StampRef::of_line(line.trim_end().as_bytes()).unwrap().message_id(), "a\"b/00ff/7");
    }

    #[test]
    fn a_stamp_reads_the_same_off_the_written_prefix_as_parsed_whole() {
        let written = br#"{"agent":"node-1:8080","boot":"00ff","seq":42,"ts_ms":1,"msg":"x"}"#;
        let stamp = StampRef::of_line(written).unwrap();
        assert!(matches!(stamp.agent, std::borrow::Cow::Borrowed(_)), "read off the prefix, borrowed");
        assert_eq!(stamp.message_id(), "node-1:8080/00ff/42");
        // Another order, an escape, or no number: parsed whole, or refused as before.
        for (line, id) in [
            (&br#"{"boot":"b","agent":"a","seq":3}"#[..], Some("a/b/3")),
            (br#"{"agent":"a\u0041","boot":"b","seq":4}"#, Some("aA/b/4")),
            (br#"{"agent":"a","boot":"b","seq":}"#, None),
            (br#"{"agent":"a","boot":"b","seq":99999999999999999999999}"#, None),
            (b"plain text", None),
        ] {
            assert_eq!(StampRef::of_line(line).ok().map(|s| s.message_id()).as_deref(), id, "{line:?}");
        }
    }

    #[test]
    fn boots_differ() {
        assert_ne!(Identity::new_boot("a".into()).boot, Identity::new_boot("a".into()).boot);
    }
}
