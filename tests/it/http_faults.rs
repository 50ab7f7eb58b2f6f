//! The fault proxy's HTTP-aware faults (`protocol: http`): on a mix of requests that match and do not, seen by
//! a real keep-alive HTTP client against a real HTTP/1.1 server this test runs; counts exact (what the client
//! saw is what the agent counted) and the share within its statistical bound.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use serde_json::Value;

use crate::common::{self, ChildAgent};

/// The upstream: `POST /pay` answers how many bytes it was sent, `/echo` the `x-injected` header it got,
/// `/big` 100,000 bytes; anything else "any".
fn upstream() -> String {
    let app = axum::Router::new()
        .route("/pay", post(|body: Bytes| async move { format!("paid {}", body.len()) }).get(|| async { "pay page" }))
        .route(
            "/echo",
            get(|headers: HeaderMap| async move {
                let injected = headers.get("x-injected").map(|v| v.to_str().unwrap_or("?").to_owned());
                ([("x-upstream", "1")], injected.unwrap_or_else(|| "none".into()))
            }),
        )
        .route("/big", get(|| async { "x".repeat(100_000) }))
        .fallback(|| async { "any" });
    common::serve_on_loopback(app)
}

fn exec_ok(agent: &ChildAgent, body: &str) -> Value {
    let (status, answer) = agent.exec(body);
    assert_eq!(status, 200, "{body}: {answer}");
    answer["result"].clone()
}

fn add(agent: &ChildAgent, toxic: &str) -> Value {
    exec_ok(agent, &format!("command: net/toxic_add\ndata: {{proxy: api, {toxic}}}\n"))
}

fn remove(agent: &ChildAgent, name: &str) -> Value {
    exec_ok(agent, &format!("command: net/toxic_remove\ndata: {{proxy: api, name: {name}}}\n"))
}

/// One request on a fresh connection, as raw bytes: everything the proxy sent back until it closed, or the
/// error's kind.
fn raw(proxy: &str, request: &str) -> Result<Vec<u8>, std::io::ErrorKind> {
    let mut stream = TcpStream::connect(proxy).map_err(|e| e.kind())?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    stream.write_all(request.as_bytes()).map_err(|e| e.kind())?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).map_err(|e| e.kind())?;
    Ok(answer)
}

#[test]
fn http_faults_act_on_the_requests_they_match_and_count_what_they_did() {
    let agent = ChildAgent::spawn();
    let upstream = upstream();
    let created = exec_ok(
        &agent,
        &format!("command: net/proxy_create\ndata: {{name: api, protocol: http, upstream: '{upstream}'}}\n"),
    );
    assert_eq!(created["protocol"], "http");
    let proxy = created["listen"].as_str().unwrap().to_owned();
    let base = format!("http://{proxy}");
    // One keep-alive client for all of it: faults act per request on connections that stay open.
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let send = |request: reqwest::blocking::RequestBuilder| {
        let answer = request.send().unwrap();
        (answer.status().as_u16(), answer.text().unwrap())
    };
    assert_eq!(send(client.post(format!("{base}/pay")).body("12345")), (200, "paid 5".into()));

    // http_respond: 503 to 30 % of POST /pay; GET /pay and POST elsewhere never.
    add(
        &agent,
        "name: pay-503, type: http_respond, toxicity: 0.3, attributes: {status: 503, body: 'payments are down', \
         match: {method: POST, path_prefix: /pay}}",
    );
    let (rounds, mut refused) = (200u64, 0u64);
    for _ in 0..rounds {
        match send(client.post(format!("{base}/pay")).body("abc")) {
            (503, body) => {
                assert_eq!(body, "payments are down");
                refused += 1;
            }
            (200, body) => assert_eq!(body, "paid 3", "the upstream got the whole body"),
            other => panic!("{other:?}"),
        }
        assert_eq!(send(client.get(format!("{base}/pay"))), (200, "pay page".into()), "GET is not matched");
        assert_eq!(send(client.post(format!("{base}/other")).body("x")), (200, "any".into()), "another path");
    }
    // Binomial(200, 0.3): mean 60, sd 6.5; five sd either way fails one run in 1.7 million.
    assert!((28..=92).contains(&refused), "{refused} of {rounds} refused at toxicity 0.3");
    let removed = remove(&agent, "pay-503");
    assert_eq!(removed["stats"]["matched"], rounds, "{removed}");
    assert_eq!(removed["stats"]["applied"], refused, "the agent counted what the client saw: {removed}");

    // The same, counted in /metrics while the fault is on; its series go with it.
    add(&agent, "name: all-503, type: http_respond, attributes: {status: 503, match: {path_regex: '^/pa[y]$'}}");
    assert_eq!(send(client.get(format!("{base}/pay"))).0, 503);
    assert_eq!(send(client.get(format!("{base}/payx"))).0, 200);
    let metrics = agent.metrics();
    for series in [
        "tarsier_proxy_http_fault_matched_total{proxy=\"api\",toxic=\"all-503\",type=\"http_respond\"} 1",
        "tarsier_proxy_http_fault_applied_total{proxy=\"api\",toxic=\"all-503\",type=\"http_respond\"} 1",
    ] {
        assert!(metrics.contains(series), "{series} not in /metrics");
    }
    assert!(metrics.contains("tarsier_proxy_http_requests_total{proxy=\"api\"}"));
    remove(&agent, "all-503");
    assert!(!agent.metrics().contains("toxic=\"all-503\""), "a removed fault takes its series with it");

    // http_delay before the headers: the answer starts late; other paths are quick.
    add(&agent, "name: slow, type: http_delay, attributes: {delay: 300, match: {path_prefix: /slow}}");
    let started = Instant::now();
    assert_eq!(send(client.get(format!("{base}/slow"))), (200, "any".into()));
    assert!(started.elapsed() >= Duration::from_millis(290), "{:?}", started.elapsed());
    let started = Instant::now();
    send(client.get(format!("{base}/quick")));
    let quick = started.elapsed();
    assert!(quick < Duration::from_millis(290), "{quick:?}");
    remove(&agent, "slow");

    // http_delay before the body: the headers come at once, the first body byte 300 ms later.
    add(&agent, "name: late-body, type: http_delay, attributes: {delay: 300, before: body}");
    let started = Instant::now();
    let answer = client.get(format!("{base}/big")).send().unwrap();
    let headers_after = started.elapsed();
    assert_eq!(answer.bytes().unwrap().len(), 100_000);
    let body_after = started.elapsed();
    assert!(body_after >= Duration::from_millis(290) && headers_after < body_after, "{headers_after:?} {body_after:?}");
    remove(&agent, "late-body");

    // http_throttle: 100 KB/s on a 100,000-byte body takes about a second.
    add(&agent, "name: slow-body, type: http_throttle, attributes: {rate: 100, match: {path_prefix: /big}}");
    let started = Instant::now();
    assert_eq!(send(client.get(format!("{base}/big"))).1.len(), 100_000);
    assert!(started.elapsed() >= Duration::from_millis(850), "{:?}", started.elapsed());
    remove(&agent, "slow-body");

    // http_cut: 1,000 bytes of the body, then the connection closes.
    add(&agent, "name: cut, type: http_cut, attributes: {after: 1000}");
    let cut = raw(&proxy, "GET /big HTTP/1.1\r\nhost: x\r\n\r\n").unwrap();
    let text = String::from_utf8_lossy(&cut);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    assert!(head.contains("content-length: 100000") && body.len() == 1000, "{head} + {} bytes", body.len());
    assert!(client.get(format!("{base}/big")).send().and_then(|a| a.bytes()).is_err(), "the client sees a cut body");
    remove(&agent, "cut");

    // http_drop: closed without an answer, or reset; only for the header it matches.
    add(&agent, "name: drop, type: http_drop, attributes: {match: {headers: {x-chaos: '*'}}}");
    assert_eq!(raw(&proxy, "GET / HTTP/1.1\r\nhost: x\r\nx-chaos: 1\r\n\r\n"), Ok(Vec::new()));
    assert_eq!(send(client.get(format!("{base}/"))), (200, "any".into()));
    exec_ok(&agent, "command: net/toxic_update\ndata: {proxy: api, name: drop, attributes: {reset: true}}\n");
    assert_eq!(
        raw(&proxy, "GET / HTTP/1.1\r\nhost: x\r\nX-Chaos: yes\r\n\r\n"),
        Err(std::io::ErrorKind::ConnectionReset)
    );
    remove(&agent, "drop");

    // http_header: on the answer (set one, remove one) and on the request (the upstream echoes it).
    add(&agent, "name: mark, type: http_header, attributes: {set: {x-fault: 'on'}, remove: [x-upstream]}");
    add(&agent, "name: inject, type: http_header, stream: upstream, attributes: {set: {x-injected: 'by-proxy'}}");
    let answer = client.get(format!("{base}/echo")).send().unwrap();
    assert_eq!(answer.headers().get("x-fault").map(|v| v.to_str().unwrap()), Some("on"));
    assert!(answer.headers().get("x-upstream").is_none(), "{:?}", answer.headers());
    assert_eq!(answer.text().unwrap(), "by-proxy");
    exec_ok(&agent, "command: net/proxy_reset\n");
    let answer = client.get(format!("{base}/echo")).send().unwrap();
    assert_eq!(answer.headers().get("x-upstream").map(|v| v.to_str().unwrap()), Some("1"));
    assert_eq!(answer.text().unwrap(), "none");

    // A chunked request body goes through whole, on the same kept-alive connections.
    let chunked = reqwest::blocking::Body::new(std::io::Cursor::new(vec![b'z'; 50_000]));
    assert_eq!(send(client.post(format!("{base}/pay")).body(chunked)), (200, "paid 50000".into()));
    // A request that cannot be framed is refused, not passed on.
    let smuggled =
        raw(&proxy, "POST /pay HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ntransfer-encoding: chunked\r\n\r\n");
    assert!(String::from_utf8_lossy(&smuggled.unwrap()).starts_with("HTTP/1.1 400 "));
}

#[test]
fn http_faults_and_byte_toxics_each_need_their_kind_of_proxy() {
    let agent = ChildAgent::spawn();
    let upstream = upstream();
    exec_ok(
        &agent,
        &format!("command: net/proxy_create\ndata: {{name: api, protocol: http, upstream: '{upstream}'}}\n"),
    );
    exec_ok(&agent, &format!("command: net/proxy_create\ndata: {{name: raw, upstream: '{upstream}'}}\n"));
    for (data, field) in [
        ("{proxy: api, type: latency}", "type"),
        ("{proxy: raw, type: http_respond}", "type"),
        ("{proxy: api, type: http_delay, stream: upstream}", "stream"),
        ("{proxy: api, type: http_respond, attributes: {status: 42}}", "attributes.status"),
        ("{proxy: api, type: http_header, attributes: {set: {content-length: '1'}}}", "attributes.set"),
        ("{proxy: api, type: http_drop, attributes: {match: {path_regex: '(('}}}", "attributes.match.path_regex"),
        ("{proxy: api, type: http_teapot}", "type"),
    ] {
        let (status, answer) = agent.exec(&format!("command: net/toxic_add\ndata: {data}\n"));
        assert_eq!(
            (status, answer["field"].as_str()),
            (400, Some(format!("data.{field}").as_str())),
            "{data}: {answer}"
        );
    }
    // `down` acts on connections: both kinds take it.
    add(&agent, "type: down");
    let refused =
        TcpStream::connect(agent.exec("command: net/proxies\n").1["result"]["proxies"][0]["listen"].as_str().unwrap())
            .and_then(|mut s| {
                s.set_read_timeout(Some(Duration::from_secs(5)))?;
                s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")?;
                let mut answer = Vec::new();
                s.read_to_end(&mut answer).map(|_| answer)
            });
    assert!(matches!(&refused, Ok(a) if a.is_empty()) || refused.is_err(), "{refused:?}");
}
