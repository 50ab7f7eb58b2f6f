//! Every kind of bad input gets a clear 4xx that names the problem, the agent keeps serving, and nothing it
//! holds is dropped.

use crate::common;
use crate::common::{ChildAgent, MIB};

/// (what, content type, body, status, field, a piece of the message)
type Case = (&'static str, &'static str, &'static [u8], u16, Option<&'static str>, &'static str);

const YAML: &str = "application/yaml";
const JSON: &str = "application/json";

const CASES: &[Case] = &[
    ("empty body", YAML, b"", 400, None, "empty body"),
    ("blank body", YAML, b"  \n\n", 400, None, "empty body"),
    ("unclosed YAML flow", YAML, b"command: sleep/sleep\ndata: {duration: [\n", 400, None, "line"),
    ("unclosed JSON", JSON, b"{\"command\": ", 400, None, "line 1"),
    ("YAML list body", YAML, b"- sleep/sleep\n", 400, None, "a command body"),
    ("YAML scalar body", YAML, b"hello\n", 400, None, "a command body"),
    ("tab-indented YAML", YAML, b"command: sleep/sleep\ndata:\n\tduration: 1s\n", 400, None, "line"),
    ("not UTF-8", YAML, b"\xff\xfe\x00command", 400, None, "invalid YAML"),
    (
        "two YAML documents",
        YAML,
        b"command: sleep/sleep\n---\ncommand: sleep/sleep\n",
        400,
        None,
        "more than one document",
    ),
    ("missing command", YAML, b"data: {duration: 1s}\n", 400, Some("command"), "missing field `command`"),
    ("command not a string", YAML, b"command: [1, 2]\n", 400, Some("command"), "invalid type"),
    ("command without slash", YAML, b"command: sleep\n", 400, Some("command"), "plugin/command"),
    ("unknown plugin", YAML, b"command: nope/sleep\n", 404, None, "no plugin `nope`"),
    ("unknown command", YAML, b"command: sleep/nap\n", 404, None, "plugin `sleep` has sleep"),
    ("unknown top-level field", YAML, b"comand: sleep/sleep\n", 400, Some("comand"), "unknown field `comand`"),
    ("data is a number", YAML, b"command: sleep/sleep\ndata: 5\n", 400, Some("data"), "must be a mapping"),
    ("data is a list", YAML, b"command: sleep/sleep\ndata: [1]\n", 400, Some("data"), "must be a mapping"),
    (
        "unknown data field",
        YAML,
        b"command: sleep/sleep\ndata: {durration: 1s}\n",
        400,
        Some("data.durration"),
        "unknown field",
    ),
    (
        "duration without unit",
        YAML,
        b"command: sleep/sleep\ndata: {duration: 5}\n",
        400,
        Some("data.duration"),
        "no unit",
    ),
    (
        "negative duration",
        YAML,
        b"command: heavy_load/spin_cpu\ndata: {duration: -5s}\n",
        400,
        Some("data.duration"),
        "negative",
    ),
    (
        "duration word",
        YAML,
        b"command: sleep/sleep\ndata: {duration: fast}\n",
        400,
        Some("data.duration"),
        "invalid duration",
    ),
    (
        "duration list",
        YAML,
        b"command: sleep/sleep\ndata: {duration: [1]}\n",
        400,
        Some("data.duration"),
        "a duration such as",
    ),
    (
        "absurd duration",
        YAML,
        b"command: sleep/sleep\ndata: {duration: 400days}\n",
        400,
        Some("data.duration"),
        "7-day",
    ),
    ("negative size", YAML, b"command: heavy_load/gobble_ram\ndata: {size: -1}\n", 400, Some("data.size"), "negative"),
    (
        "size word",
        YAML,
        b"command: heavy_load/gobble_ram\ndata: {size: lots}\n",
        400,
        Some("data.size"),
        "invalid size",
    ),
    ("zero size", YAML, b"command: heavy_load/gobble_ram\ndata: {size: 0}\n", 400, Some("data.size"), "more than 0"),
    (
        "absurd size",
        YAML,
        b"command: heavy_load/gobble_ram\ndata: {size: 5 PiB}\n",
        400,
        Some("data.size"),
        "more memory than any machine",
    ),
    (
        "ratio above 1",
        YAML,
        b"command: heavy_load/gobble_ram\ndata: {ratio: 1.5}\n",
        400,
        Some("data.ratio"),
        "more than 0 and at most 0.95",
    ),
    (
        "ratio zero",
        YAML,
        b"command: heavy_load/gobble_ram\ndata: {ratio: 0}\n",
        400,
        Some("data.ratio"),
        "more than 0 and at most 0.95",
    ),
    (
        // So close to 1 that the shrink loop would take millions of tries.
        "ratio that would crawl",
        YAML,
        b"command: heavy_load/gobble_ram\ndata: {ratio: 0.9999999}\n",
        400,
        Some("data.ratio"),
        "more than 0 and at most 0.95",
    ),
    (
        "resize not a bool",
        YAML,
        b"command: heavy_load/gobble_ram\ndata: {resize: maybe}\n",
        400,
        Some("data.resize"),
        "invalid type",
    ),
    (
        "free_ram index and id",
        YAML,
        b"command: heavy_load/free_ram\ndata: {index: 0, id: 0}\n",
        400,
        Some("data.id"),
        "not both",
    ),
    (
        "too many threads",
        YAML,
        b"command: heavy_load/spin_cpu\ndata: {threads: 100000}\n",
        400,
        Some("data.threads"),
        "at most 1024",
    ),
    ("load zero", YAML, b"command: heavy_load/spin_cpu\ndata: {load: 0}\n", 400, Some("data.load"), "percentage"),
    ("load 150", YAML, b"command: heavy_load/spin_cpu\ndata: {load: 150}\n", 400, Some("data.load"), "percentage"),
    (
        "negative load",
        YAML,
        b"command: heavy_load/spin_cpu\ndata: {load: -5}\n",
        400,
        Some("data.load"),
        "invalid value",
    ),
    (
        "cores as a word",
        YAML,
        b"command: heavy_load/spin_cpu\ndata: {cores: two}\n",
        400,
        Some("data.cores"),
        "invalid type",
    ),
    (
        "deadlock duration not a duration",
        YAML,
        b"command: faults/deadlock\ndata: {duration: -fast}\n",
        400,
        Some("data.duration"),
        "invalid duration",
    ),
    (
        "deadlock amount too big",
        YAML,
        b"command: faults/deadlock\ndata: {amount: 10000}\n",
        400,
        Some("data.threads"),
        "at most 4096",
    ),
    ("exit code 300", YAML, b"command: faults/exit\ndata: {code: 300}\n", 400, Some("data.code"), "0 to 255"),
    (
        "segfault with a field",
        YAML,
        b"command: faults/segfault\ndata: {now: true}\n",
        400,
        Some("data.now"),
        "unknown field",
    ),
    ("dial without address", YAML, b"command: net/dial\n", 400, Some("data.address"), "required"),
    (
        "dial without port",
        YAML,
        b"command: net/dial\ndata: {address: localhost}\n",
        400,
        Some("data.address"),
        "host:port",
    ),
    (
        "dial port too big",
        YAML,
        b"command: net/dial\ndata: {address: '127.0.0.1:70000'}\n",
        400,
        Some("data.address"),
        "host:port",
    ),
    (
        "dial sctp",
        YAML,
        b"command: net/dial\ndata: {address: '127.0.0.1:1', protocol: sctp}\n",
        400,
        Some("data.protocol"),
        "unknown variant",
    ),
    (
        "dial count too big",
        YAML,
        b"command: net/dial\ndata: {address: '127.0.0.1:1', count: 100001}\n",
        400,
        Some("data.count"),
        "at most 100000",
    ),
    (
        "write negative amount",
        YAML,
        b"command: storage/write\ndata: {amount: -1}\n",
        400,
        Some("data.amount"),
        "negative",
    ),
    (
        "write too many files",
        YAML,
        b"command: storage/write\ndata: {files: 10001}\n",
        400,
        Some("data.files"),
        "at most",
    ),
    (
        "write tiny block",
        YAML,
        b"command: storage/write\ndata: {block_size: 1}\n",
        400,
        Some("data.block_size"),
        "between",
    ),
    (
        "write more than the disk",
        YAML,
        b"command: storage/write\ndata: {amount: 1000 TiB}\n",
        400,
        Some("data.amount"),
        "free",
    ),
    (
        "read outside the dir",
        YAML,
        b"command: storage/read\ndata: {file: /etc/passwd}\n",
        400,
        Some("data.file"),
        "is not a regular file in the storage dir",
    ),
    (
        "read escaping with ..",
        YAML,
        b"command: storage/read\ndata: {file: ../../../../etc/passwd}\n",
        400,
        Some("data.file"),
        "is not a regular file in the storage dir",
    ),
    (
        "read a missing file",
        YAML,
        b"command: storage/read\ndata: {file: nothing-here}\n",
        400,
        Some("data.file"),
        "is not a regular file in the storage dir",
    ),
    (
        "free_ram index -2",
        YAML,
        b"command: heavy_load/free_ram\ndata: {index: -2}\n",
        400,
        Some("data.index"),
        "not an index",
    ),
    (
        "free_ram unknown index",
        YAML,
        b"command: heavy_load/free_ram\ndata: {index: 99}\n",
        400,
        Some("data.index"),
        "no RAM region at index 99",
    ),
    (
        "close_fd unknown index",
        YAML,
        b"command: storage/close_fd\ndata: {index: 7}\n",
        400,
        Some("data.index"),
        "no file at index 7",
    ),
    (
        "net close unknown index",
        YAML,
        b"command: net/close\ndata: {index: 5}\n",
        400,
        Some("data.index"),
        "no connection at index 5",
    ),
    (
        "ram_stats with a field",
        YAML,
        b"command: heavy_load/ram_stats\ndata: {x: 1}\n",
        400,
        Some("data.x"),
        "unknown field",
    ),
    (
        "wave remain a word",
        YAML,
        b"command: sleep/sleep\nwave: {remain: three}\n",
        400,
        Some("wave.remain"),
        "invalid type",
    ),
    ("wave typo", YAML, b"command: sleep/sleep\nwave:\n  remian: 3\n", 400, Some("wave.remian"), "line 3"),
    (
        "wave without buddies",
        YAML,
        b"command: sleep/sleep\nwave: {remain: 3}\n",
        400,
        Some("wave.buddies"),
        "at least 1",
    ),
    (
        "wave too wide",
        YAML,
        b"command: sleep/sleep\nwave: {remain: 1, buddies: 5000}\n",
        400,
        Some("wave.buddies"),
        "bound",
    ),
    (
        "wave too deep",
        YAML,
        b"command: sleep/sleep\nwave: {remain: 99, buddies: 2}\n",
        400,
        Some("wave.remain"),
        "bound",
    ),
    ("detach not a bool", YAML, b"command: sleep/sleep\ndetach: sometimes\n", 400, Some("detach"), "invalid type"),
    (
        "JSON unknown field",
        JSON,
        b"{\"command\": \"sleep/sleep\", \"data\": {\"duration\": \"1s\", \"extra\": 1}}",
        400,
        Some("data.extra"),
        "unknown field",
    ),
    (
        "JSON wrong type",
        JSON,
        b"{\"command\": \"sleep/sleep\", \"detach\": \"no\"}",
        400,
        Some("detach"),
        "invalid type",
    ),
];

#[test]
fn bad_bodies_are_refused_with_a_message_and_nothing_is_lost() {
    assert!(CASES.len() >= 40, "the table must hold at least 40 bad bodies");
    let agent = ChildAgent::spawn();
    // Something held before the bad input, which must still be there after it.
    let (status, held) = agent.exec("command: heavy_load/gobble_ram\ndata: {size: 8MiB}\n");
    assert_eq!(status, 200, "{held}");

    let mut failures = Vec::new();
    for (what, content_type, body, status, field, message) in CASES {
        let (got_status, answer) = agent.post("/exec", content_type, body.to_vec());
        let got_message = answer["error"].as_str().unwrap_or_default();
        let got_field = answer["field"].as_str();
        if got_status != *status || got_field != *field || !got_message.contains(message) {
            failures.push(format!(
                "{what}: want {status} field {field:?} ~ {message:?}; got {got_status} field {got_field:?}: {answer}"
            ));
        }
    }
    assert!(failures.is_empty(), "{} of {} cases differ:\n{}", failures.len(), CASES.len(), failures.join("\n"));

    let held_after = agent.runtime()["held"].clone();
    assert_eq!(held_after["ram_regions"], 1, "{held_after}");
    assert_eq!(held_after["ram_bytes"], 8 * MIB, "{held_after}");
    assert!(agent.metrics().contains("tarsier_commands_total{command=\"heavy_load/gobble_ram\",result=\"ok\"} 1"));
}

#[test]
fn transport_errors_are_json_too() {
    let agent = ChildAgent::spawn();
    // 405: wrong method, on both ports.
    for url in [format!("{}/exec", agent.public), format!("{}/health", agent.service)] {
        let method = if url.ends_with("/exec") { reqwest::Method::GET } else { reqwest::Method::POST };
        let (status, text) = agent.request(method, &url);
        assert_eq!(status, 405, "{url}: {text}");
        assert!(text.contains("is not allowed"), "{text}");
    }
    // 404: no such route, and no such job.
    let (status, text) = agent.request(reqwest::Method::GET, &format!("{}/nope", agent.public));
    assert_eq!(status, 404, "{text}");
    let (status, text) = agent.request(reqwest::Method::DELETE, &format!("{}/jobs/12345", agent.public));
    assert_eq!(status, 404, "{text}");
    let (status, text) = agent.request(reqwest::Method::DELETE, &format!("{}/jobs/abc", agent.public));
    assert_eq!(status, 400, "{text}");
    // 413: a body over the 1 MiB default. Last, since the agent closes a connection whose body it did not read.
    let huge = format!("command: sleep/sleep\ndata: {{duration: 1s}}\n#{}\n", "x".repeat(2 << 20));
    let (status, answer) = agent.post("/exec", YAML, huge.into_bytes());
    assert_eq!(status, 413, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("larger than"), "{answer}");
    // Still serving.
    let (status, _) = common::http()
        .post(format!("{}/exec", agent.public))
        .body("command: sleep/sleep\ndata: {duration: 0s}\n")
        .send()
        .map(|r| (r.status().as_u16(), ()))
        .expect("the agent still answers");
    assert_eq!(status, 200);
}

/// A command sent to the service port by mistake is told where to go: a 404 naming the public port, not a
/// "body too large (0 bytes)".
#[test]
fn a_command_sent_to_the_service_port_is_told_the_public_port() {
    let agent = ChildAgent::spawn();
    let public = agent.public.trim_start_matches("http://").to_owned();
    let client = reqwest::blocking::Client::new();
    for (path, body) in [("/exec", "command: sleep/sleep\n"), ("/", "command: sleep/sleep\n"), ("/exec", "")] {
        let answer = client
            .post(format!("{}{path}", agent.service))
            .header("content-type", "application/yaml")
            .body(body)
            .send()
            .unwrap();
        assert_eq!(answer.status().as_u16(), 404, "POST {path}");
        let text: serde_json::Value = answer.json().unwrap();
        let error = text["error"].as_str().unwrap_or_default();
        assert!(error.contains("service port") && error.contains(&public), "POST {path}: {text}");
    }
    // The service port's own routes still answer.
    assert_eq!(client.get(format!("{}/health", agent.service)).send().unwrap().status(), 200);
}
