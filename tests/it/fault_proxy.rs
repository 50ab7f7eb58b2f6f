//! The fault proxy: each toxic's effect seen by a real client through the proxy against a real upstream (an
//! HTTP server this test runs on loopback), toxics acting on open connections, toxicity, bad parameters
//! refused by name, and `/abort` closing listeners and connections.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{self, ChildAgent};

/// An upstream: `/` answers "hello", `/big` 100,000 bytes.
fn upstream() -> String {
    let app = axum::Router::new()
        .route("/", axum::routing::get(|| async { "hello" }))
        .route("/big", axum::routing::get(|| async { "x".repeat(100_000) }));
    common::serve_on_loopback(app)
}

/// One GET over a fresh connection to `address`: the status line and body, or the error.
fn get(address: &str, path: &str, within: Duration) -> Result<(String, Vec<u8>), String> {
    let failed = |e: std::io::Error| format!("{:?}: {e}", e.kind());
    let mut stream = TcpStream::connect(address).map_err(failed)?;
    stream.set_read_timeout(Some(within)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").map_err(failed)?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(failed)?;
    let text = String::from_utf8_lossy(&answer).to_string();
    let (head, _) = text.split_once("\r\n\r\n").ok_or_else(|| format!("no full answer: {} bytes", answer.len()))?;
    let body_at = head.len() + 4;
    Ok((head.lines().next().unwrap_or_default().to_owned(), answer[body_at..].to_vec()))
}

fn exec_ok(agent: &ChildAgent, body: &str) -> Value {
    let (status, answer) = agent.exec(body);
    assert_eq!(status, 200, "{body}: {answer}");
    answer["result"].clone()
}

#[test]
fn every_toxic_does_what_toxiproxy_says_through_a_real_proxy() {
    let agent = ChildAgent::spawn();
    let upstream = upstream();
    let created = exec_ok(&agent, &format!("command: net/proxy_create\ndata: {{name: web, upstream: '{upstream}'}}\n"));
    let proxy = created["listen"].as_str().unwrap().to_owned();
    let quick = Duration::from_secs(10);
    assert_eq!(get(&proxy, "/", quick).unwrap(), ("HTTP/1.1 200 OK".into(), b"hello".to_vec()));

    // latency: every answer comes at least 200 ms late; removed, it is quick again.
    exec_ok(
        &agent,
        "command: net/toxic_add\ndata: {proxy: web, type: latency, attributes: {latency: 200, jitter: 20}}\n",
    );
    let started = Instant::now();
    assert_eq!(get(&proxy, "/", quick).unwrap().1, b"hello");
    let late = started.elapsed();
    assert!(late >= Duration::from_millis(180), "{late:?}");
    exec_ok(&agent, "command: net/toxic_remove\ndata: {proxy: web, name: latency_downstream}\n");
    let started = Instant::now();
    get(&proxy, "/", quick).unwrap();
    assert!(started.elapsed() < late, "{:?} without the toxic, {late:?} with it", started.elapsed());

    // bandwidth: 100 KB/s on 100,000 bytes takes about a second.
    exec_ok(&agent, "command: net/toxic_add\ndata: {proxy: web, type: bandwidth, attributes: {rate: 100}}\n");
    let started = Instant::now();
    assert_eq!(get(&proxy, "/big", quick).unwrap().1.len(), 100_000);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "{took:?}");
    exec_ok(&agent, "command: net/toxic_remove\ndata: {proxy: web, name: bandwidth_downstream}\n");

    // slicer: the same bytes arrive, in pieces.
    exec_ok(&agent, "command: net/toxic_add\ndata: {proxy: web, type: slicer, attributes: {average_size: 100, size_variation: 50, delay: 10}}\n");
    assert_eq!(get(&proxy, "/big", quick).unwrap().1, vec![b'x'; 100_000]);
    exec_ok(&agent, "command: net/toxic_remove\ndata: {proxy: web, name: slicer_downstream}\n");

    // limit_data: the connection is closed after 20 bytes: no full answer.
    exec_ok(&agent, "command: net/toxic_add\ndata: {proxy: web, type: limit_data, attributes: {bytes: 20}}\n");
    let cut = get(&proxy, "/", quick).unwrap_err();
    assert!(cut.contains("no full answer: 20 bytes"), "{cut}");
    exec_ok(&agent, "command: net/toxic_remove\ndata: {proxy: web, name: limit_data_downstream}\n");

    // timeout on what the client sends: nothing reaches the upstream, and the connection closes after 300 ms.
    exec_ok(
        &agent,
        "command: net/toxic_add\ndata: {proxy: web, type: timeout, stream: upstream, attributes: {timeout: 300}}\n",
    );
    let started = Instant::now();
    let silent = get(&proxy, "/", quick).unwrap_err();
    assert!(silent.contains("no full answer: 0 bytes"), "{silent}");
    assert!(started.elapsed() >= Duration::from_millis(250), "{:?}", started.elapsed());
    exec_ok(&agent, "command: net/toxic_remove\ndata: {proxy: web, name: timeout_upstream}\n");

    // reset_peer: the client sees its connection reset.
    exec_ok(
        &agent,
        "command: net/toxic_add\ndata: {proxy: web, type: reset_peer, stream: upstream, attributes: {timeout: 0}}\n",
    );
    let reset = get(&proxy, "/", quick).unwrap_err();
    assert!(reset.contains("ConnectionReset"), "{reset}");
    exec_ok(&agent, "command: net/toxic_remove\ndata: {proxy: web, name: reset_peer_upstream}\n");

    // toxicity 0: the toxic is on, and no connection draws it.
    exec_ok(
        &agent,
        "command: net/toxic_add\ndata: {proxy: web, type: limit_data, toxicity: 0, attributes: {bytes: 1}}\n",
    );
    assert_eq!(get(&proxy, "/", quick).unwrap().1, b"hello");
    exec_ok(&agent, "command: net/toxic_update\ndata: {proxy: web, name: limit_data_downstream, toxicity: 1}\n");
    assert!(get(&proxy, "/", quick).is_err(), "toxicity 1 now: every connection is cut");
    exec_ok(&agent, "command: net/proxy_reset\n");
    assert_eq!(get(&proxy, "/", quick).unwrap().1, b"hello");

    // Disabled (Toxiproxy's down): connections are refused; enabled again, served.
    exec_ok(&agent, "command: net/proxy_update\ndata: {name: web, enabled: false}\n");
    assert!(get(&proxy, "/", quick).is_err());
    exec_ok(&agent, "command: net/proxy_update\ndata: {name: web, enabled: true}\n");
    assert_eq!(get(&proxy, "/", quick).unwrap().1, b"hello");

    let listed = exec_ok(&agent, "command: net/proxies\n");
    let stats = &listed["proxies"][0]["stats"];
    assert!(
        stats["connections"].as_u64().unwrap() >= 10 && stats["bytes_downstream"].as_u64().unwrap() > 200_000,
        "{listed}"
    );
    let metrics = agent.metrics();
    let bytes =
        format!("tarsier_proxy_bytes_total{{proxy=\"web\",stream=\"downstream\"}} {}", stats["bytes_downstream"]);
    assert!(metrics.contains(&bytes), "{bytes} not in /metrics");
    assert!(metrics.contains("tarsier_proxy_refused_total{proxy=\"web\"}"), "refused connections are counted");
}

#[test]
fn a_toxic_acts_on_open_connections_and_abort_closes_everything() {
    let agent = ChildAgent::spawn();
    let upstream = upstream();
    let created = exec_ok(&agent, &format!("command: net/proxy_create\ndata: {{name: db, upstream: '{upstream}'}}\n"));
    let proxy = created["listen"].as_str().unwrap().to_owned();
    // A keep-alive connection, open before the toxic: the toxic cuts it at its next answer.
    let mut open = TcpStream::connect(&proxy).unwrap();
    open.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(open, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut first = [0u8; 512];
    assert!(open.read(&mut first).unwrap() > 0);
    // A latency toxic slows the same connection, and once it goes the connection is quick again.
    exec_ok(&agent, "command: net/toxic_add\ndata: {proxy: db, type: latency, attributes: {latency: 300}}\n");
    let ask = |open: &mut TcpStream| {
        let started = Instant::now();
        write!(open, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut answer = [0u8; 512];
        assert!(open.read(&mut answer).unwrap() > 0);
        started.elapsed()
    };
    assert!(ask(&mut open) >= Duration::from_millis(280));
    exec_ok(&agent, "command: net/toxic_remove\ndata: {proxy: db, name: latency_downstream}\n");
    assert!(ask(&mut open) < Duration::from_millis(280), "the connection relays as it comes again");
    exec_ok(&agent, "command: net/toxic_add\ndata: {proxy: db, type: limit_data, attributes: {bytes: 10}}\n");
    write!(open, "GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut rest = Vec::new();
    let _ = open.read_to_end(&mut rest);
    assert_eq!(
        rest.len(),
        10,
        "the open connection got 10 bytes more and was closed: {:?}",
        String::from_utf8_lossy(&rest)
    );

    let held = agent.runtime()["held"]["proxies"].as_u64();
    assert_eq!(held, Some(1));
    let (status, answer) = agent.post("/abort", "application/json", b"{\"local\": true}".to_vec());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(agent.runtime()["held"]["proxies"], 0);
    assert!(!agent.metrics().contains("proxy=\"db\""), "a proxy that went takes its series with it");
    assert!(
        common::eventually(Duration::from_secs(5), || TcpStream::connect(&proxy).is_err()),
        "the listener is closed"
    );
}

#[test]
fn bad_proxies_and_toxics_are_refused_by_field() {
    let agent = ChildAgent::spawn();
    let upstream = upstream();
    for (data, field) in [
        ("{name: a, upstream: '192.0.2.1:80'}", "upstream"),
        ("{name: a, upstream: 'nohost'}", "upstream"),
        ("{name: a, upstream: '127.0.0.1:80', listen: '0.0.0.0:0'}", "listen"),
        ("{name: 'a b', upstream: '127.0.0.1:80'}", "name"),
        ("{name: a, upstream: '127.0.0.1:80', max_connections: 0}", "max_connections"),
    ] {
        let (status, answer) = agent.exec(&format!("command: net/proxy_create\ndata: {data}\n"));
        assert_eq!(
            (status, answer["field"].as_str()),
            (400, Some(format!("data.{field}").as_str())),
            "{data}: {answer}"
        );
    }
    exec_ok(&agent, &format!("command: net/proxy_create\ndata: {{name: a, upstream: '{upstream}'}}\n"));
    let (status, answer) =
        agent.exec(&format!("command: net/proxy_create\ndata: {{name: a, upstream: '{upstream}'}}\n"));
    assert_eq!(status, 409, "a name taken: {answer}");
    for (data, field) in [
        ("{proxy: a, type: latency, attributes: {latency: 10, jitter: 20}}", "attributes.jitter"),
        ("{proxy: a, type: bandwidth, attributes: {rate: 0}}", "attributes.rate"),
        ("{proxy: a, type: poison}", "type"),
        ("{proxy: a, type: latency, toxicity: 2}", "toxicity"),
        ("{proxy: a, type: latency, attributes: {delay: 1}}", "attributes.delay"),
        ("{proxy: nope, type: latency}", "name"),
    ] {
        let (status, answer) = agent.exec(&format!("command: net/toxic_add\ndata: {data}\n"));
        assert_eq!(
            (status, answer["field"].as_str()),
            (400, Some(format!("data.{field}").as_str())),
            "{data}: {answer}"
        );
    }
    exec_ok(&agent, "command: net/toxic_add\ndata: {proxy: a, type: latency}\n");
    let (status, answer) = agent.exec("command: net/toxic_add\ndata: {proxy: a, type: latency}\n");
    assert_eq!(status, 409, "the same toxic twice: {answer}");
    assert!(agent.metrics().contains("tarsier_proxy_connections_total{proxy=\"a\"}"));
    exec_ok(&agent, "command: net/proxy_delete\ndata: {name: a}\n");
    assert!(!agent.metrics().contains("proxy=\"a\""), "a deleted proxy takes its series with it");
    let (status, answer) = agent.exec("command: net/proxy_delete\ndata: {name: a}\n");
    assert_eq!((status, answer["field"].as_str()), (400, Some("data.name")), "{answer}");
}

/// A venv with the Toxiproxy client from PyPI (`toxiproxy-python`), made once under `.cache/`; `None` (the
/// test says it is skipped) where Python's venv or PyPI cannot be had.
fn toxiproxy_client() -> Option<std::path::PathBuf> {
    let venv = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/toxiproxy-python");
    let python = venv.join("bin/python");
    let ready = |python: &std::path::Path| {
        std::process::Command::new(python).args(["-c", "import toxiproxy"]).output().is_ok_and(|o| o.status.success())
    };
    if ready(&python) {
        return Some(python);
    }
    let made = std::process::Command::new("python3").args(["-m", "venv"]).arg(&venv).output();
    if !made.is_ok_and(|o| o.status.success()) {
        return None;
    }
    let installed = std::process::Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "toxiproxy-python==0.1.1"])
        .output();
    (installed.is_ok_and(|o| o.status.success()) && ready(&python)).then_some(python)
}

/// The Toxiproxy client's own calls, unchanged, against the agent's `proxy.api_listen`.
#[test]
fn a_toxiproxy_client_drives_the_agents_proxies_unchanged() {
    let Some(python) = toxiproxy_client() else {
        println!("skipped: no Python venv or no PyPI for toxiproxy-python");
        return;
    };
    let api = common::fixed_port();
    let agent = ChildAgent::spawn_with(common::Spawn {
        config: &format!("proxy: {{api_listen: '127.0.0.1:{api}'}}\n"),
        ..Default::default()
    });
    let upstream = upstream();
    let script = r#"
import sys, time, urllib.request
from toxiproxy import Toxiproxy
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import ProxyExists, NotFound
APIConsumer.host, APIConsumer.port = "127.0.0.1", int(sys.argv[1])
upstream = sys.argv[2]
server = Toxiproxy()
assert server.running(), "the API is not up"
assert server.version().startswith(b"tarsier-"), server.version()
proxy = server.create(upstream=upstream, name="web")
def fetch():
    started = time.monotonic()
    with urllib.request.urlopen("http://%s/" % proxy.listen, timeout=5) as answer:
        assert answer.read() == b"hello"
    return time.monotonic() - started
assert fetch() < 0.3
proxy.add_toxic(type="latency", attributes={"latency": 300, "jitter": 0})
assert "latency_downstream" in proxy.toxics(), proxy.toxics()
assert fetch() >= 0.29
proxy.destroy_toxic("latency_downstream")
assert fetch() < 0.3
with proxy.down():
    try:
        fetch()
        raise AssertionError("a disabled proxy answered")
    except OSError:
        pass
assert fetch() < 0.3
proxy.add_toxic(type="timeout", stream="upstream", attributes={"timeout": 100})
assert server.reset()
assert proxy.toxics() == {}
try:
    server.create(upstream=upstream, name="web")
    raise AssertionError("a second proxy of the same name")
except ProxyExists:
    pass
assert set(server.proxies()) == {"web"}
proxy.destroy()
assert server.get_proxy("web") is None
print("toxiproxy client: ok")
"#;
    let out = std::process::Command::new(python).args(["-c", script, &api.to_string(), &upstream]).output().unwrap();
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.contains("toxiproxy client: ok"), "{text}\nagent log:\n{}", agent.log_text());
    // Every call went through the agent's commands: they are in its job list.
    let jobs = agent.get_json(&format!("{}/jobs", agent.public));
    let ran: Vec<&str> = jobs["finished"].as_array().unwrap().iter().filter_map(|j| j["command"].as_str()).collect();
    assert!(ran.contains(&"net/proxy_create") && ran.contains(&"net/toxic_add"), "{ran:?}");
}

/// Every way a proxy ends closes its listener and its connections: its duration, SIGTERM to its agent, and
/// the agent's death by SIGKILL.
#[test]
fn a_proxy_ends_with_its_duration_and_with_its_agent() {
    let upstream = upstream();
    let agent = ChildAgent::spawn();
    let created = exec_ok(
        &agent,
        &format!("command: net/proxy_create\ndata: {{name: short, upstream: '{upstream}', duration: 1s}}\n"),
    );
    let proxy = created["listen"].as_str().unwrap().to_owned();
    let mut open = TcpStream::connect(&proxy).unwrap();
    open.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let ended = common::eventually(Duration::from_secs(5), || agent.runtime()["held"]["proxies"] == 0);
    assert!(ended, "the proxy outlived its duration");
    assert!(TcpStream::connect(&proxy).is_err(), "its listener is closed");
    let mut rest = Vec::new();
    assert_eq!(open.read_to_end(&mut rest).map(|_| rest.len()).unwrap_or(0), 0, "its connection is closed");

    for signal in [libc::SIGTERM, libc::SIGKILL] {
        let mut agent = ChildAgent::spawn();
        let created =
            exec_ok(&agent, &format!("command: net/proxy_create\ndata: {{name: p, upstream: '{upstream}'}}\n"));
        let proxy = created["listen"].as_str().unwrap().to_owned();
        let mut open = TcpStream::connect(&proxy).unwrap();
        open.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        agent.signal(signal);
        agent.wait_exit(Duration::from_secs(10));
        assert!(TcpStream::connect(&proxy).is_err(), "signal {signal}: the listener is gone");
        let mut rest = Vec::new();
        let closed = open.read_to_end(&mut rest).map(|_| rest.len());
        assert!(matches!(closed, Ok(0) | Err(_)), "signal {signal}: the connection is closed: {closed:?}");
    }
}

/// Proxies in front of the real things a service depends on: nginx and a Consul dev agent, each behind a
/// byte proxy (Toxiproxy's toxics) and an HTTP proxy (the HTTP faults), driven by a real keep-alive client.
#[test]
fn toxics_and_http_faults_act_in_front_of_nginx_and_consul() {
    let agent = ChildAgent::spawn();
    let nginx = common::nginx::Nginx::start();
    let consul = common::consul::ConsulDev::start();
    let make = |name: &str, protocol: &str, upstream: &str| -> String {
        let body = format!(
            "command: net/proxy_create\ndata: {{name: {name}, protocol: {protocol}, upstream: '{upstream}'}}\n"
        );
        format!("http://{}", exec_ok(&agent, &body)["listen"].as_str().unwrap())
    };
    let toxic = |body: &str| exec_ok(&agent, &format!("command: net/toxic_add\ndata: {body}\n"));
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let timed = |url: &str| {
        let started = Instant::now();
        let answer = client.get(url).send().and_then(|a| Ok((a.status().as_u16(), a.bytes()?.len())));
        (answer.map_err(|e| e.to_string()), started.elapsed())
    };

    // nginx behind a byte proxy: latency, then bandwidth on its static file.
    let web = make("web", "tcp", &nginx.address);
    assert_eq!(timed(&format!("{web}/")).0, Ok((200, 5)));
    toxic("{proxy: web, type: latency, attributes: {latency: 150}}");
    let (answer, took) = timed(&format!("{web}/"));
    assert!(answer == Ok((200, 5)) && took >= Duration::from_millis(145), "{answer:?} in {took:?}");
    exec_ok(&agent, "command: net/proxy_reset\n");
    toxic("{proxy: web, type: bandwidth, attributes: {rate: 200}}");
    let (answer, took) = timed(&format!("{web}/big.bin"));
    let big = common::nginx::BIG;
    assert!(answer == Ok((200, big)) && took >= Duration::from_millis(850), "{answer:?} in {took:?}");

    // nginx behind an HTTP proxy: half the downloads answered 503 here, the rest cut; `/` untouched.
    let site = make("site", "http", &nginx.address);
    toxic("{proxy: site, name: busy, type: http_respond, toxicity: 0.5, attributes: {status: 503, match: {path_prefix: /big}}}");
    toxic("{proxy: site, name: cut, type: http_cut, attributes: {after: 5000, match: {path_prefix: /big}}}");
    let (mut busy, mut cut) = (0u64, 0u64);
    for _ in 0..40 {
        match timed(&format!("{site}/big.bin")).0 {
            Ok((503, _)) => busy += 1,
            Err(_) => cut += 1,
            other => panic!("{other:?}"),
        }
        assert_eq!(timed(&format!("{site}/")).0, Ok((200, 5)), "nginx's own answer, through the proxy");
    }
    let listed = exec_ok(&agent, "command: net/proxies\n");
    let site_toxics = &listed["proxies"].as_array().unwrap().iter().find(|p| p["name"] == "site").unwrap()["toxics"];
    assert_eq!(site_toxics[0]["stats"], serde_json::json!({"matched": 40, "applied": busy}), "{listed}");
    assert_eq!(site_toxics[1]["stats"], serde_json::json!({"matched": 40, "applied": cut}), "{listed}");
    // Binomial(40, 0.5): five sd either way.
    assert!((4..=36).contains(&busy), "{busy} of 40 answered 503");

    // Consul's HTTP API behind a byte proxy: a call that waits out a latency, then one that times out.
    let api = make("consul", "tcp", &consul.address);
    let leader = format!("{api}/v1/status/leader");
    assert!(matches!(timed(&leader).0, Ok((200, n)) if n > 2));
    toxic("{proxy: consul, type: latency, attributes: {latency: 200}}");
    let (answer, took) = timed(&leader);
    assert!(answer.is_ok() && took >= Duration::from_millis(195), "{answer:?} in {took:?}");
    toxic("{proxy: consul, type: timeout, attributes: {timeout: 300}}");
    let (answer, took) = timed(&leader);
    assert!(answer.is_err() && took >= Duration::from_millis(290), "{answer:?} in {took:?}");

    // Consul behind an HTTP proxy: the catalogue fails, the KV store still takes writes (request bodies
    // reach Consul) and reads, slower.
    let kv_api = make("consul-http", "http", &consul.address);
    toxic("{proxy: consul-http, type: http_respond, attributes: {status: 500, body: 'catalogue down', match: {path_prefix: /v1/catalog}}}");
    toxic(
        "{proxy: consul-http, type: http_delay, attributes: {delay: 200, match: {method: GET, path_prefix: /v1/kv/}}}",
    );
    let catalogue = client.get(format!("{kv_api}/v1/catalog/services")).send().unwrap();
    assert_eq!((catalogue.status().as_u16(), catalogue.text().unwrap()), (500, "catalogue down".into()));
    let put = client.put(format!("{kv_api}/v1/kv/tarsier/test")).body("through the proxy").send().unwrap();
    assert_eq!((put.status().as_u16(), put.text().unwrap().trim().to_owned()), (200, "true".into()));
    let started = Instant::now();
    let read = client.get(format!("{kv_api}/v1/kv/tarsier/test?raw")).send().unwrap().text().unwrap();
    assert_eq!(read, "through the proxy");
    assert!(started.elapsed() >= Duration::from_millis(195), "{:?}", started.elapsed());
    assert!(matches!(timed(&format!("{kv_api}/v1/status/leader")).0, Ok((200, _))));
}
