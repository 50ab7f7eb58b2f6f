//! Bodies, routes, config and command line written for the reference Go Tarsier (sejvlond/tarsier) behave as
//! they did there, case by case (docs/compatibility.md). One table row per difference the migration report
//! found, each with a reference-style body, the status it gets and what it did.
//!
//! The reference itself cannot be built here (its Go dependencies come from GitHub), so the mixed-swarm
//! tests use a stand-in: a plain HTTP/1.1 server that takes `POST /exec` the way the reference's Go server
//! did and records what it was sent. It stands for the reference's wire behaviour only, and says so.

use crate::common;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::common::{eventually, ChildAgent, Spawn, MIB};
use serde_json::Value;

/// What one row expects of an answer.
type Check = fn(&Value) -> bool;

fn result(answer: &Value, key: &str) -> Value {
    answer["result"][key].clone()
}

#[test]
fn reference_bodies_behave_as_on_the_reference() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("persistent_storage:\n  base_dir: {}\n", dir.path().display());
    let agent = ChildAgent::spawn_with(Spawn { config: &format!("plugins: {{}}\n{config}"), ..Default::default() });
    let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp4 = tcp.local_addr().unwrap();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let udp4 = udp.local_addr().unwrap();
    std::fs::write(dir.path().join("data.bin"), vec![1u8; 4096]).unwrap();

    // (case, body, status, check of the answer)
    let rows: Vec<(&str, String, u16, Check)> = vec![
        // 1. Field names of the reference's code and help text, `ration` included; a typo stays a 400.
        (
            "1 ration",
            "command: heavy_load/gobble_ram\ndata: {amount: 1MB, resize: true, ration: 0.5}\n".into(),
            200,
            |a| result(a, "size") == MIB,
        ),
        ("1 typo refused", "command: heavy_load/gobble_ram\ndata: {amout: 1MB}\n".into(), 400, |a| {
            a["field"] == "data.amout"
        }),
        ("1 reference wave keys", "command: heavy_load/ram_stats\nwave: {remains: 0, buddies: 0}\n".into(), 200, |a| {
            a["result"]["regions"].is_array()
        }),
        // 2. Go's networks for net/dial.
        ("2 tcp4", format!("command: net/dial\ndata: {{network: tcp4, address: '{tcp4}', amount: 1}}\n"), 200, |a| {
            result(a, "opened") == 1
        }),
        ("2 udp4", format!("command: net/dial\ndata: {{network: udp4, address: '{udp4}', amount: 1}}\n"), 200, |a| {
            result(a, "opened") == 1
        }),
        (
            "2 tcp6 given an IPv4 address",
            format!("command: net/dial\ndata: {{network: tcp6, address: '{tcp4}'}}\n"),
            400,
            |a| a["error"].as_str().unwrap().contains("not an IPv6 address"),
        ),
        (
            "2 unix refused, with the reason",
            "command: net/dial\ndata: {network: unix, address: /run/x.sock}\n".into(),
            400,
            |a| a["field"] == "data.protocol" && a["error"].as_str().unwrap().contains("Unix sockets are refused"),
        ),
        // 3. The dummy plugin.
        ("3 dummy/say_hello", "command: dummy/say_hello\ndata: {amount: 20}\n".into(), 200, |a| {
            result(a, "message") == "Hello 20 times"
        }),
        // 6. Sizes are binary.
        (
            "6 256MB is 256 MiB",
            "command: heavy_load/gobble_ram\ndata: {amount: 256MB, touch: false}\n".into(),
            200,
            |a| result(a, "size") == 256 * MIB,
        ),
        (
            "6 1kB is 1024 bytes",
            "command: persistent_storage/write\ndata: {amount: 1kB, files: 1}\n".into(),
            200,
            |a| result(a, "bytes") == 1024,
        ),
        // 7. Nothing asked is nothing done; a negative wait is no wait.
        ("7 deadlock amount 0", "command: faults/deadlock\ndata: {amount: 0, duration: 50ms}\n".into(), 200, |a| {
            result(a, "threads") == 0
        }),
        ("7 sleep -5s", "command: sleeping_beauty/sleep\ndata: {duration: -5s}\n".into(), 200, |a| {
            result(a, "slept_ms") == 0
        }),
        ("7 spin_cpu cores 0", "command: heavy_load/spin_cpu\ndata: {cores: 0, duration: 1s}\n".into(), 200, |a| {
            result(a, "threads") == 0 && result(a, "ran_seconds").as_f64().unwrap() < 0.5
        }),
        (
            "7 dial amount 0",
            format!("command: net/dial\ndata: {{network: tcp, address: '{tcp4}', amount: 0}}\n"),
            200,
            |a| result(a, "opened") == 0,
        ),
        ("7 open_fd amount 0", "command: persistent_storage/open_fd\ndata: {amount: 0}\n".into(), 200, |a| {
            result(a, "opened") == 0
        }),
        ("7 write files 0", "command: persistent_storage/write\ndata: {amount: 1MB, files: 0}\n".into(), 200, |a| {
            result(a, "bytes") == 0
        }),
        (
            "7 read concurrent 0",
            "command: persistent_storage/read\ndata: {file: data.bin, amount: 1MB, concurrent: 0}\n".into(),
            200,
            |a| result(a, "bytes") == 0,
        ),
        // Every other command, in the reference's own words.
        ("ram_stats", "command: heavy_load/ram_stats\n".into(), 200, |a| result(a, "regions").is_array()),
        ("free_ram -1", "command: heavy_load/free_ram\ndata: {index: -1}\n".into(), 200, |a| {
            result(a, "held_bytes") == 0
        }),
        ("spin_cpu", "command: heavy_load/spin_cpu\ndata: {cores: 1, duration: 200ms}\n".into(), 200, |a| {
            result(a, "threads") == 1
        }),
        ("net/stats", "command: net/stats\n".into(), 200, |a| result(a, "connections").as_array().unwrap().len() == 2),
        ("net/close -1", "command: net/close\ndata: {index: -1}\n".into(), 200, |a| result(a, "closed") == 2),
        ("open_fd", "command: persistent_storage/open_fd\ndata: {amount: 2}\n".into(), 200, |a| {
            result(a, "opened") == 2
        }),
        (
            "read",
            "command: persistent_storage/read\ndata: {file: data.bin, amount: 1MiB, concurrent: 2}\n".into(),
            200,
            |a| result(a, "bytes") == 2 * MIB,
        ),
        ("fd_stats", "command: persistent_storage/fd_stats\n".into(), 200, |a| {
            result(a, "files").as_array().unwrap().len() == 3
        }),
        ("close_fd -1", "command: persistent_storage/close_fd\ndata: {index: -1}\n".into(), 200, |a| {
            result(a, "closed") == 3
        }),
        (
            "sleep, detached",
            "command: sleeping_beauty/sleep\ndata: {duration: 1m30s}\ndetach: true\n".into(),
            202,
            |a| a["status"] == "running",
        ),
        ("JSON body", r#"{"command": "sleeping_beauty/sleep", "data": {"duration": "10ms"}}"#.into(), 200, |a| {
            result(a, "slept_ms").as_u64().unwrap() >= 10
        }),
        (
            "an unknown command is a documented 404 (the reference: 501)",
            "command: persistent_storage/format_disk\n".into(),
            404,
            |a| a["error"].as_str().unwrap().contains("plugin `storage` has"),
        ),
    ];
    let mut failures = Vec::new();
    for (case, body, status, check) in &rows {
        let (got, answer) = agent.exec(body);
        if got != *status || !check(&answer) {
            failures.push(format!("{case}: want {status}, got {got}: {answer}"));
        }
    }
    assert!(failures.is_empty(), "{} of {} rows differ:\n{}", failures.len(), rows.len(), failures.join("\n"));
    // The reference's base_dir was honoured, and close_fd -1 removed what tarsier made there.
    assert_eq!(common::files_in(dir.path()).len(), 1, "only the test's own data.bin remains");
}

/// 8: `index` is the position in the current list, as on the reference; `id` is stable.
#[test]
fn index_is_a_position_as_on_the_reference_and_id_is_stable() {
    let agent = ChildAgent::spawn();
    let gobble = "command: heavy_load/gobble_ram\ndata: {amount: 1MB}\n";
    let (_, first) = agent.exec(gobble);
    let (_, second) = agent.exec(gobble);
    assert_eq!((first["result"]["id"].as_u64(), second["result"]["id"].as_u64()), (Some(0), Some(1)));
    for _ in 0..2 {
        let (status, freed) = agent.exec("command: heavy_load/free_ram\ndata: {index: 0}\n");
        assert_eq!(status, 200, "free 0; free 0 frees both, as on the reference: {freed}");
    }
    let (status, answer) = agent.exec("command: heavy_load/free_ram\ndata: {index: 0}\n");
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("nothing is held"), "{answer}");

    // Ids do not move: free the newer by id, then the older by id.
    let (_, a) = agent.exec(gobble);
    let (_, b) = agent.exec(gobble);
    let (a, b) = (a["result"]["id"].as_u64().unwrap(), b["result"]["id"].as_u64().unwrap());
    let (_, stats) = agent.exec("command: heavy_load/ram_stats\n");
    assert_eq!(stats["result"]["regions"][1]["id"], b);
    assert_eq!(stats["result"]["regions"][1]["index"], 1);
    for id in [b, a] {
        let (status, freed) = agent.exec(&format!("command: heavy_load/free_ram\ndata: {{id: {id}}}\n"));
        assert_eq!((status, freed["result"]["freed_regions"].as_u64()), (200, Some(1)), "{freed}");
    }
}

/// 4: the reference's service routes, open like `/health` (its Consul check and probes carry no token).
#[test]
fn health_check_and_mem_stats_answer_on_the_service_port() {
    let token = "compat-token-0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    let agent = ChildAgent::spawn_with(Spawn {
        args: &["--token-file", token_file.to_str().unwrap()],
        client: Some(common::http_with_token(token)),
        ..Default::default()
    });
    let anonymous = reqwest::blocking::Client::new();
    let health = anonymous.get(format!("{}/health_check", agent.service)).send().unwrap();
    assert_eq!(health.status(), 200);
    let (status, _) = agent.exec("command: heavy_load/gobble_ram\ndata: {amount: 8MB}\n");
    assert_eq!(status, 200);
    let mem: Value = anonymous.get(format!("{}/mem_stats", agent.service)).send().unwrap().json().unwrap();
    assert_eq!(mem["held"]["ram_bytes"], 8 * MIB, "{mem}");
    assert!(mem["rss_bytes"].as_u64().unwrap() > 8 * MIB, "{mem}");
}

/// 5: the reference's config file and command line (`tarsier -c FILE`), read as they are.
#[test]
fn the_reference_config_and_command_line_start_an_agent() {
    let dir = tempfile::tempdir().unwrap();
    let (public, service) = (common::fixed_port(), common::fixed_port());
    let config = dir.path().join("tarsier.yaml");
    std::fs::write(
        &config,
        format!(
            "server:\n    public:\n        port: {public}\n        use_https: false\n    service:\n        port: {service}\n\
             \x20       use_https: false\nlogging:\n    name: tarsier\n    interval: 3600\n    dir: {}/logs/\n\
             consul:\n    service: tarsier\n    url: http://127.0.0.1:1\n    register: /v1/agent/service/register\n\
             \x20   deregister: /v1/agent/service/deregister/%s\n    list: /v1/catalog/service/%s?passing\n\
             \x20   check_interval: 15s\n    refresh_interval: 5s\nplugins:\n    persistent_storage:\n\
             \x20       base_dir: {}\n",
            dir.path().display(),
            dir.path().display()
        ),
    )
    .unwrap();
    // It listens on every address, as the reference did, so tarsier's safe default wants a token.
    let refused = std::process::Command::new(common::BIN).args(["-c"]).arg(&config).output().unwrap();
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("without a swarm token"), "{stderr}");

    let token = "compat-token-0123456789abcdef";
    std::fs::write(dir.path().join("token"), token).unwrap();
    let mut child = std::process::Command::new(common::BIN)
        .arg("-c")
        .arg(&config)
        .arg("--token-file")
        .arg(dir.path().join("token"))
        .env("TARSIER_LOG", "info")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let client = common::http_with_token(token);
    let up = eventually(Duration::from_secs(20), || {
        client.get(format!("http://127.0.0.1:{service}/health_check")).send().is_ok_and(|r| r.status() == 200)
    });
    let answer: Option<Value> = up
        .then(|| {
            client
                .post(format!("http://127.0.0.1:{public}/exec"))
                .body("command: persistent_storage/write\ndata: {amount: 1kB, files: 1}\n")
                .send()
                .ok()?
                .json()
                .ok()
        })
        .flatten();
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(child.id() as i32), nix::sys::signal::SIGTERM);
    let mut log = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut log);
    let _ = child.wait();
    assert!(up, "the agent did not come up: {log}");
    let answer = answer.unwrap_or_else(|| panic!("no answer from /exec: {log}"));
    assert_eq!(answer["result"]["bytes"], 1024, "{answer}");
    assert!(log.contains("consul.register, consul.deregister, consul.list, consul.refresh_interval ignored"), "{log}");
    // Its logging section is honoured: the activity log's files, named `tarsier.`, in its dir.
    let logs = tarsier::logs::files::files_of(&dir.path().join("logs"), "tarsier").unwrap();
    let text: String = logs.iter().map(|f| std::fs::read_to_string(&f.path).unwrap()).collect();
    assert!(text.contains("\"activity\":\"command_ended\"") && text.contains("\"seq\":0,"), "{text}");
    assert!(log.contains("public=0.0.0.0:"), "{log}");
}

/// One request the stand-in reference agent received.
#[derive(Debug, Clone)]
struct Received {
    request_line: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Received {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// A stand-in for the reference agent's public port (see the module comment): HTTP/1.1 only, answers
/// `POST /exec` with text as the reference did, and records each request. Bounded: it serves `max` requests
/// or stops when dropped with the test.
fn stand_in_reference(max: usize) -> (std::net::SocketAddr, Arc<Mutex<Vec<Received>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let log = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max) {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut headers = Vec::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = line.split_once(':') {
                    headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
                }
            }
            let length = headers.iter().find(|(k, _)| k == "content-length").and_then(|(_, v)| v.parse().ok());
            let mut body = vec![0u8; length.unwrap_or(0).min(1 << 20)];
            let _ = reader.read_exact(&mut body);
            log.lock().unwrap().push(Received {
                request_line: request_line.trim().to_owned(),
                headers,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
            let text = "Hello 20 times\n";
            let _ =
                write!(stream, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}", text.len());
        }
    });
    (address, received)
}

/// 9: a tarsier agent sends a wave copy to an HTTP/1.1 agent (a static peer written `http://host:port`) in
/// the reference's format, without the token, with `remains` cut to the copy's budget.
#[test]
fn a_wave_reaches_an_http1_reference_agent_in_its_own_format() {
    let (reference, received) = stand_in_reference(4);
    let token = "compat-token-0123456789abcdef";
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, token).unwrap();
    let peers = format!("http://{reference}");
    // Not listed in compat.reference_peers, an HTTP/1.1 agent is no peer: it cannot prove membership.
    let unlisted = ChildAgent::spawn_with(Spawn {
        args: &["--token-file", token_file.to_str().unwrap(), "--peers", &peers],
        client: Some(common::http_with_token(token)),
        ..Default::default()
    });
    let peers_seen = unlisted.get_json(&format!("{}/peers", unlisted.service));
    assert_eq!(peers_seen["count"], 0, "{peers_seen}");
    assert!(peers_seen["refused"][0]["reason"].as_str().unwrap().contains("compat.reference_peers"), "{peers_seen}");
    drop(unlisted);
    let agent = ChildAgent::spawn_with(Spawn {
        args: &["--token-file", token_file.to_str().unwrap(), "--peers", &peers],
        config: "limits:\n  max_wave_executions: 3\ncompat: {reference_peers: [127.0.0.1]}\n",
        client: Some(common::http_with_token(token)),
        ..Default::default()
    });
    let peers_seen = agent.get_json(&format!("{}/peers", agent.service));
    assert_eq!(peers_seen["peers"][0]["kind"], serde_json::json!({"reference": {"https": false}}), "{peers_seen}");

    let (status, answer) = agent.exec("command: dummy/say_hello\ndata: {amount: 20}\nwave: {remains: 5, buddies: 1}\n");
    assert_eq!(status, 200, "{answer}");
    assert!(eventually(Duration::from_secs(10), || !received.lock().unwrap().is_empty()), "no copy arrived");
    let copy = received.lock().unwrap()[0].clone();
    assert_eq!(copy.request_line, "POST /exec HTTP/1.1");
    assert_eq!(copy.header("content-type"), Some("application/x-yaml"));
    assert_eq!(copy.header("authorization"), None, "the swarm token is not given to an HTTP/1.1 agent");
    assert_eq!(copy.header("tarsier-signature"), None, "nor a signature");
    let body: Value = serde_json::from_str(&copy.body).unwrap();
    // The origin's budget of 3 took 1 here; 2 left pay for the reference agent and one copy of its own.
    assert_eq!(
        body,
        serde_json::json!({"command": "dummy/say_hello", "data": {"amount": 20}, "wave": {"remains": 1, "buddies": 1}})
    );
    assert_eq!(answer["forward"]["accepted"], 1, "{answer}");
}

/// 9, the other way: what a reference agent sends (HTTP/1.1, `application/x-yaml`, `wave: {remains,
/// buddies}`, no token) runs on a tarsier agent that takes unauthenticated commands (loopback here;
/// `auth.insecure_no_auth` on a migration network).
#[test]
fn a_reference_agents_copy_runs_on_a_tarsier_agent() {
    let agent = ChildAgent::spawn();
    let address = agent.public.trim_start_matches("http://").to_owned();
    let body = "command: dummy/say_hello\ndata:\n  amount: 20\nwave:\n  remains: 0\n  buddies: 0\n";
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        stream,
        "POST /exec HTTP/1.1\r\nHost: {address}\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: {}\r\n\
         Content-Type: application/x-yaml\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("Hello 20 times"), "{answer}");
}

/// 9, through a real Consul: a reference agent registers as the reference did (`Address: http://IP`, no
/// meta); a tarsier agent sees an HTTP/1.1 peer and reaches it, and registers itself with the scheme (with
/// `register_scheme`, set by the reference's `consul:` section) so a reference agent could reach it back.
#[test]
fn a_mixed_swarm_through_consul() {
    let consul = common::consul::ConsulDev::start();
    let (reference, received) = stand_in_reference(4);
    let registration = serde_json::json!({
        "ID": format!("tarsier_{reference}"),
        "Name": "tarsier",
        "Address": "http://127.0.0.1",
        "Port": reference.port(),
    });
    let registered = common::http()
        .put(format!("http://{}/v1/agent/service/register", consul.address))
        .json(&registration)
        .send()
        .unwrap();
    assert_eq!(registered.status(), 200);
    let config =
        format!("{}    register_scheme: true\ncompat: {{reference_peers: [127.0.0.0/8]}}\n", consul.agent_config());
    let agent = ChildAgent::spawn_with(Spawn { config: &config, ..Default::default() });
    assert!(eventually(Duration::from_secs(20), || agent.peer_count() == 1), "the reference agent is no peer");
    let peers = agent.get_json(&format!("{}/peers", agent.service));
    assert_eq!(peers["peers"][0]["public"], reference.to_string(), "{peers}");
    assert_eq!(peers["peers"][0]["kind"], serde_json::json!({"reference": {"https": false}}), "{peers}");

    let (status, answer) = agent.exec("command: dummy/say_hello\ndata: {amount: 3}\nwave: {remains: 1, buddies: 1}\n");
    assert_eq!(status, 200, "{answer}");
    assert!(eventually(Duration::from_secs(10), || !received.lock().unwrap().is_empty()), "no copy arrived");
    let body: Value = serde_json::from_str(&received.lock().unwrap()[0].body).unwrap();
    assert_eq!(body["wave"], serde_json::json!({"remains": 0, "buddies": 1}));

    // What a reference agent reads from the catalogue to build `ServiceAddress:ServicePort/exec`.
    let catalogue = consul.catalogue("tarsier");
    let me = catalogue.as_array().unwrap().iter().find(|s| s["ServiceMeta"]["proto"] == "h2c").expect("registered");
    assert_eq!(me["ServiceAddress"], "http://127.0.0.1", "{me}");
}

/// 9, listed in compat.reference_peers: a static peer written as a plain `host:port` that speaks HTTP/1.1
/// only gets the copy again over HTTP/1.1 in the reference's format, and is spoken to that way for a while.
#[test]
fn a_plain_static_peer_that_speaks_only_http1_is_found_out() {
    let (reference, received) = stand_in_reference(6);
    let peers = reference.to_string();
    let agent = ChildAgent::spawn_with(Spawn {
        args: &["--peers", &peers],
        config: "compat: {reference_peers: ['127.0.0.1']}\n",
        ..Default::default()
    });
    let body = "command: dummy/say_hello\ndata: {amount: 20}\nwave: {remains: 1, buddies: 1}\n";
    let (status, answer) = agent.exec(body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["forward"]["accepted"], 1, "{answer}");
    let posts = |received: &Mutex<Vec<Received>>| {
        received.lock().unwrap().iter().filter(|r| r.request_line == "POST /exec HTTP/1.1").count()
    };
    assert!(eventually(Duration::from_secs(10), || posts(&received) == 1), "{:?}", received.lock().unwrap());
    let tried_h2 = received.lock().unwrap().iter().filter(|r| r.request_line.starts_with("PRI ")).count();
    assert_eq!(tried_h2, 1, "HTTP/2 was tried once: {:?}", received.lock().unwrap());

    let (status, _) = agent.exec(body);
    assert_eq!(status, 200);
    assert!(eventually(Duration::from_secs(10), || posts(&received) == 2));
    let tried_h2 = received.lock().unwrap().iter().filter(|r| r.request_line.starts_with("PRI ")).count();
    assert_eq!(tried_h2, 1, "the second copy went straight over HTTP/1.1");
    let copy: Value = serde_json::from_str(&received.lock().unwrap().last().unwrap().body).unwrap();
    assert_eq!(copy["wave"], serde_json::json!({"remains": 0, "buddies": 1}));
}
