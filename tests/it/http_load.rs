//! net/http_load against a small server this test runs on 127.0.0.1.

use crate::common;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::common::{eventually, ChildAgent, Spawn};
use axum::http::{StatusCode, Uri};

/// A target on 127.0.0.1 that counts what it serves: `/` answers 200, `/fail` 500, `/slow` after 20 ms,
/// `/stall` after 1 s, `/stall-once` after 1 s when it is the target's 100th request.
struct Target {
    address: String,
    hits: Arc<AtomicU64>,
}

async fn serve(
    axum::extract::State(hits): axum::extract::State<Arc<AtomicU64>>,
    uri: Uri,
) -> (StatusCode, &'static str) {
    hits.fetch_add(1, Ordering::Relaxed);
    match uri.path() {
        "/fail" => (StatusCode::INTERNAL_SERVER_ERROR, "no"),
        "/slow" => {
            tokio::time::sleep(Duration::from_millis(20)).await;
            (StatusCode::OK, "slow")
        }
        "/stall" => {
            tokio::time::sleep(Duration::from_secs(1)).await;
            (StatusCode::OK, "stalled")
        }
        "/stall-once" => {
            // This target's 100th request (the count includes this one).
            if hits.load(Ordering::Relaxed) == 100 {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            (StatusCode::OK, "ok")
        }
        _ => (StatusCode::OK, "ok"),
    }
}

impl Target {
    fn start() -> Self {
        let hits = Arc::new(AtomicU64::new(0));
        let address = common::serve_on_loopback(axum::Router::new().fallback(serve).with_state(hits.clone()));
        Target { address, hits }
    }

    fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }
}

/// Connections enough for rate mode to ride out the agent being stalled (descheduled on a busy machine) for
/// 250 ms, scaled by the tests' patience: each free connection has claimed the next request due, so at `rate`
/// per second this many cover that long. A test that asserts "nothing dropped while connections were idle"
/// uses it: a stall across the window's end with fewer (CI builds Docker images beside these tests) leaves
/// requests due before the end unclaimed until after it, and those are dropped, as they should be.
fn riding_out_a_stall(rate: u32) -> u32 {
    (f64::from(rate) * common::patient(Duration::from_millis(250)).as_secs_f64()).ceil() as u32
}

#[test]
fn counts_statuses_and_latency_of_a_fixed_number_of_requests() {
    let target = Target::start();
    let agent = ChildAgent::spawn();
    let (status, answer) = agent.exec(&format!(
        "command: net/http_load\ndata: {{url: 'http://{}/', requests: 300, concurrency: 4}}\n",
        target.address
    ));
    assert_eq!(status, 200, "{answer}");
    let result = &answer["result"];
    assert_eq!(result["requests_sent"], 300, "{result}");
    assert_eq!(result["completed"], 300);
    assert_eq!(result["succeeded"], 300);
    assert_eq!(result["availability"], 1.0);
    assert_eq!(result["status"]["200"], 300);
    assert_eq!(result["bytes"], 600);
    assert_eq!(target.hits(), 300, "the target saw every request exactly once");
    let latency = &result["latency_ms"];
    for q in ["min", "p50", "p90", "p99", "p999", "max"] {
        assert!(latency[q].as_f64().unwrap() > 0.0, "{q}: {latency}");
    }
    assert!(latency["min"].as_f64() <= latency["p99"].as_f64());
    assert!(!result["histogram"].as_str().unwrap().is_empty());
    assert!(result.get("late_ms").is_none(), "closed mode has no schedule to be late on: {result}");
    let metrics = agent.metrics();
    assert!(metrics.contains("tarsier_http_load_requests_total{code=\"200\"} 300"), "{metrics}");
    assert!(metrics.contains("tarsier_http_load_in_flight 0"));
    assert!(metrics.contains("tarsier_http_load_latency_seconds_count 300"));

    let (_, answer) = agent.exec(&format!(
        "command: net/http_load\ndata: {{url: 'http://{}/fail', requests: 20, method: POST, body: x, headers: {{x-test: '1'}}}}\n",
        target.address
    ));
    assert_eq!(answer["result"]["errors"]["status_5xx"], 20, "{answer}");
    assert_eq!(answer["result"]["status"]["500"], 20);
    // Answered, but not served: availability counts only answers below 400.
    assert_eq!(answer["result"]["completed"], 20);
    assert_eq!(answer["result"]["succeeded"], 0);
    assert_eq!(answer["result"]["availability"], 0.0);
}

#[test]
fn connection_errors_are_counted_not_fatal() {
    let agent = ChildAgent::spawn();
    let closed = common::fixed_port();
    let (status, answer) = agent.exec(&format!(
        "command: net/http_load\ndata: {{url: 'http://127.0.0.1:{closed}/', requests: 10, concurrency: 2}}\n"
    ));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["errors"]["connect"], 10, "{answer}");
    assert_eq!(answer["result"]["completed"], 0);
}

#[test]
fn a_fixed_rate_is_kept_within_two_percent() {
    let target = Target::start();
    let agent = ChildAgent::spawn();
    let (status, answer) = agent.exec(&format!(
        "command: net/http_load\ndata: {{url: 'http://{}/', rate: 200, duration: 5s, concurrency: {}}}\n",
        target.address,
        riding_out_a_stall(200)
    ));
    assert_eq!(status, 200, "{answer}");
    let result = &answer["result"];
    // The schedule is request n at n / rate: exactly rate × duration requests are due.
    assert_eq!(result["requests_sent"], 1000, "{result}");
    assert_eq!(result["completed"], 1000);
    let rate = result["req_per_s"].as_f64().unwrap();
    assert!((rate - 200.0).abs() / 200.0 < 0.02, "{rate:.1} req/s for a rate of 200");
}

#[test]
fn a_rate_above_capacity_ends_with_its_duration_and_counts_what_it_dropped() {
    let target = Target::start();
    let agent = ChildAgent::spawn();
    // 200,000 requests/s for 2 s over 4 connections: far more than one machine's loopback answers.
    let (status, answer) = agent.exec(&format!(
        "command: net/http_load\ndata: {{url: 'http://{}/', rate: 200000, duration: 2s, concurrency: 4, timeout: 2s}}\n",
        target.address
    ));
    assert_eq!(status, 200, "{answer}");
    let result = &answer["result"];
    let (sent, dropped) = (result["requests_sent"].as_u64().unwrap(), result["dropped"].as_u64().unwrap());
    // Every request due in the window is either sent or dropped, none twice.
    assert_eq!(sent + dropped, 400_000, "{result}");
    assert!(dropped > 0, "{result}");
    // Nothing is sent after the window: what runs on is at most the requests in flight, each within its timeout.
    assert!(result["seconds"].as_f64().unwrap() < 2.0 + 2.0 + 1.0, "{result}");
    assert_eq!(result["latency_correction"], "schedule");
}

#[test]
fn answers_after_the_window_are_stragglers_not_throughput() {
    let target = Target::start();
    let agent = ChildAgent::spawn();
    // 20 requests due within 1 s, each answered 1 s after it was sent: all of them after the window.
    let (status, answer) = agent.exec(&format!(
        "command: net/http_load\ndata: {{url: 'http://{}/stall', rate: 20, duration: 1s, concurrency: 30}}\n",
        target.address
    ));
    assert_eq!(status, 200, "{answer}");
    let result = &answer["result"];
    assert_eq!(result["requests_sent"], 20, "{result}");
    assert_eq!(result["completed"], 20);
    assert_eq!(result["stragglers"], 20);
    assert_eq!(result["dropped"], 0);
    assert_eq!(result["req_per_s"], 0.0, "nothing was answered within the window");
}

#[test]
fn requests_that_fail_after_the_window_are_errors_not_stragglers() {
    let target = Target::start();
    let agent = ChildAgent::spawn();
    // 5 requests due within 1 s, each given up after 500 ms: the last ones time out after the window.
    let (status, answer) = agent.exec(&format!(
        "command: net/http_load\ndata: {{url: 'http://{}/stall', rate: 5, duration: 1s, concurrency: 10, timeout: 500ms}}\n",
        target.address
    ));
    assert_eq!(status, 200, "{answer}");
    let result = &answer["result"];
    assert_eq!(result["errors"]["timeout"], 5, "{result}");
    assert_eq!((&result["completed"], &result["stragglers"]), (&0.into(), &0.into()), "{result}");
    assert_eq!(result["req_per_s"], 0.0);
}

#[test]
fn closed_mode_corrects_for_a_stall_only_when_asked_and_says_so() {
    let agent = ChildAgent::spawn();
    // Each run against a target of its own, which stalls 1 s once, at its 100th request.
    let load = |correct: bool| {
        let target = Target::start();
        let (status, answer) = agent.exec(&format!(
            "command: net/http_load\ndata: {{url: 'http://{}/stall-once', duration: 3s, concurrency: 1, correct: {correct}}}\n",
            target.address
        ));
        assert_eq!(status, 200, "{answer}");
        let result = answer["result"].clone();
        assert!(result["latency_ms"]["max"].as_f64().unwrap() >= 1000.0, "the stall is in the run: {result}");
        result
    };
    // Uncorrected, the stall is one sample among many: the tail hides what it held back.
    let plain = load(false);
    assert_eq!(plain["latency_correction"], "none");
    // Corrected as wrk does, the requests the stall held back fill the tail.
    let corrected = load(true);
    assert_eq!(corrected["latency_correction"], "expected_interval");
    let (p99_plain, p99_corrected) =
        (plain["latency_ms"]["p99"].as_f64().unwrap(), corrected["latency_ms"]["p99"].as_f64().unwrap());
    assert!(p99_corrected >= 10.0 * p99_plain, "p99 {p99_plain} ms plain, {p99_corrected} ms corrected");
    let (status, refused) =
        agent.exec("command: net/http_load\ndata: {url: 'http://127.0.0.1:1/', rate: 10, correct: true}\n");
    assert_eq!(status, 400, "{refused}");
    assert!(refused["error"].as_str().unwrap_or_default().contains("correct"), "{refused}");
}

#[test]
fn abort_stops_the_load_at_once() {
    let target = Target::start();
    let agent = ChildAgent::spawn();
    let (status, job) = agent.exec(&format!(
        "command: net/http_load\ndata: {{url: 'http://{}/slow', duration: 60s, concurrency: 4}}\ndetach: true\n",
        target.address
    ));
    assert_eq!(status, 202, "{job}");
    assert!(eventually(Duration::from_secs(5), || target.hits() > 20));
    agent.post("/abort", "application/yaml", b"local: true\n".to_vec());
    let id = job["job_id"].as_u64().unwrap();
    assert!(eventually(Duration::from_secs(2), || {
        agent.get_json(&format!("{}/jobs/{id}", agent.public))["status"] == "cancelled"
    }));
    let after_abort = target.hits();
    std::thread::sleep(Duration::from_millis(300));
    assert!(target.hits() <= after_abort + 4, "requests went on after the abort");
    assert!(agent.metrics().contains("tarsier_http_load_in_flight 0"));
}

#[test]
fn targets_outside_the_allow_list_are_refused_before_any_request() {
    let agent = ChildAgent::spawn();
    // TEST-NET-1 (192.0.2.0/24) is never routed; the agent refuses before it would try.
    let (status, answer) = agent.exec("command: net/http_load\ndata: {url: 'http://192.0.2.1/', requests: 1}\n");
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["field"], "data.url");
    assert!(answer["error"].as_str().unwrap().contains("limits.http_load_targets"));
    let (status, answer) = agent.exec("command: net/http_load\ndata: {url: 'ftp://127.0.0.1/'}\n");
    assert_eq!(status, 400, "{answer}");
    let (status, answer) =
        agent.exec("command: net/http_load\ndata: {url: 'http://127.0.0.1/', requests: 5, duration: 1s}\n");
    assert_eq!(status, 400, "{answer}");

    // An allow-list without loopback refuses loopback too, by address and by name.
    let target = Target::start();
    let strict =
        ChildAgent::spawn_with(Spawn { config: "limits:\n  http_load_targets: [10.9.0.0/16]\n", ..Default::default() });
    let (status, answer) =
        strict.exec(&format!("command: net/http_load\ndata: {{url: 'http://{}/', requests: 1}}\n", target.address));
    assert_eq!(status, 400, "{answer}");
    let port = target.address.rsplit(':').next().unwrap();
    let (status, answer) =
        strict.exec(&format!("command: net/http_load\ndata: {{url: 'http://localhost:{port}/', requests: 1}}\n"));
    assert_eq!(status, 400, "{answer}");
    assert_eq!(target.hits(), 0, "nothing was sent");
}

#[test]
fn http2_prior_knowledge() {
    let target = Target::start();
    let agent = ChildAgent::spawn();
    let (status, answer) = agent.exec(&format!(
        "command: net/http_load\ndata: {{url: 'http://{}/', requests: 50, concurrency: 5, http2: true}}\n",
        target.address
    ));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["status"]["200"], 50, "{answer}");
}

/// Three agents on fixed loopback ports, each with the others as static peers.
fn three_agents_with_static_peers() -> Vec<ChildAgent> {
    let ports: Vec<u16> = (0..3).map(|_| common::fixed_port()).collect();
    let peers = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
    ports
        .iter()
        .map(|p| {
            let listen = format!("127.0.0.1:{p}");
            ChildAgent::spawn_with(Spawn { args: &["--listen", &listen, "--peers", &peers], ..Default::default() })
        })
        .collect()
}

#[test]
fn a_wave_merges_every_agents_result_at_the_origin() {
    let target = Target::start();
    let agents = three_agents_with_static_peers();
    let (status, answer) = agents[0].exec(&format!(
        "command: net/http_load\ndata: {{url: 'http://{}/', requests: 100, concurrency: 2}}\nwave: {{remain: 1, buddies: 2, report: true}}\n",
        target.address
    ));
    assert_eq!(status, 200, "{answer}");
    let report = agents[0].wave_report(answer["wave_id"].as_str().unwrap(), 3);
    let merged = &report["merged"];
    assert_eq!(merged["agents"], 3, "{report}");
    assert_eq!(merged["completed"], 300);
    assert_eq!(merged["availability"], 1.0);
    assert_eq!(merged["status"]["200"], 300);
    assert_eq!(target.hits(), 300);
    assert!(merged["latency_ms"]["p99"].as_f64().unwrap() > 0.0);

    // `tarsier exec --report` prints the swarm-wide table; at a rate, with how late requests were sent.
    let body = format!(
        "command: net/http_load\ndata: {{url: 'http://{}/', rate: 50, duration: 1s}}\nwave: {{remain: 1, buddies: 2, report: true}}\n",
        target.address
    );
    let file = agents[0].dir.path().join("load.yaml");
    std::fs::write(&file, body).unwrap();
    let out = std::process::Command::new(common::BIN)
        .args(["exec", &agents[0].public])
        .arg(&file)
        .arg("--report")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("http_load, the swarm (3 agents)"), "{stdout}");
    assert!(stdout.contains("p99.9"), "{stdout}");
    assert!(stdout.contains("sent after due") && stdout.contains("late ms"), "{stdout}");
}

/// A running load says how far it got, in `GET /jobs` (with the client's request id) and on the CLI's live
/// line, seen through a pseudo-terminal (util-linux `script`; that part is skipped without it).
#[test]
fn a_running_load_shows_its_progress_in_jobs_and_on_the_live_line() {
    let target = Target::start();
    let agent = ChildAgent::spawn();
    let body = format!(
        "command: net/http_load\ndata: {{url: 'http://{}/slow', duration: 3s, concurrency: 2}}\n",
        target.address
    );
    let client = reqwest::blocking::Client::new();
    let public = agent.public.clone();
    let waiting = std::thread::spawn({
        let body = body.clone();
        move || client.post(format!("{public}/exec")).header("tarsier-request-id", "test-progress-1").body(body).send()
    });
    let seen = eventually(Duration::from_secs(5), || {
        let jobs = agent.get_json(&format!("{}/jobs", agent.public));
        jobs["running"].as_array().unwrap().iter().any(|job| {
            job["request_id"] == "test-progress-1"
                && job["progress"]["completed"].as_u64().unwrap_or(0) > 10
                && job["progress"]["p99_ms"].as_f64().is_some_and(|p99| p99 >= 20.0)
        })
    });
    assert!(seen, "{}", agent.get_json(&format!("{}/jobs", agent.public)));
    assert_eq!(waiting.join().unwrap().unwrap().status(), 200);

    if std::process::Command::new("script").arg("--version").output().is_err() {
        println!("skipped: no `script` to make a pseudo-terminal");
        return;
    }
    let file = agent.dir.path().join("load.yaml");
    std::fs::write(&file, body).unwrap();
    let cmd = format!("{} exec {} {}", common::BIN, agent.public, file.display());
    let out =
        std::process::Command::new("script").args(["-qec", &cmd, "/dev/null"]).env("TERM", "xterm").output().unwrap();
    let terminal = String::from_utf8_lossy(&out.stdout);
    assert!(terminal.contains("req/s") && terminal.contains(" sent, ") && terminal.contains("p99 "), "{terminal:?}");
    assert!(terminal.contains("http_load, this agent"), "{terminal:?}");
}

/// Answers of every framing HTTP/1.x allows, in turn: chunked with extensions and a trailer, a length with
/// `connection: close`, HTTP/1.0 delimited by the close, 204 without a body, and 100 Continue before the answer.
/// Built on a raw socket because a well-behaved server library picks one framing itself.
const FRAMINGS: [&[u8]; 5] = [
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n",
    b"HTTP/1.1 201 Created\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbody",
    b"HTTP/1.0 202 Accepted\r\n\r\nuntil-close",
    b"HTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
];

/// Reads from `stream` into `pending` until a request head (bodiless requests only) is there, and consumes it;
/// false when the client closed first.
fn next_request_head(stream: &mut std::net::TcpStream, pending: &mut Vec<u8>) -> bool {
    use std::io::Read;
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            pending.drain(..end + 4);
            return true;
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => pending.extend_from_slice(&chunk[..n]),
        }
    }
}

fn raw_framing_target() -> (String, Arc<AtomicU64>) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let served = Arc::new(AtomicU64::new(0));
    let counter = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(1_000) {
            let Ok(mut stream) = stream else { continue };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut pending = Vec::new();
                // Bounded: a connection serves at most 1,000 requests.
                for _ in 0..1_000 {
                    if !next_request_head(&mut stream, &mut pending) {
                        return;
                    }
                    let k = counter.fetch_add(1, Ordering::SeqCst) as usize % FRAMINGS.len();
                    if stream.write_all(FRAMINGS[k]).is_err() || k == 1 || k == 2 {
                        return; // the close ends the answer (HTTP/1.0) or was announced
                    }
                }
            });
        }
    });
    (address, served)
}

#[test]
fn every_http1_framing_is_read_to_its_end_and_the_connection_reused_only_when_it_may_be() {
    let (address, served) = raw_framing_target();
    let agent = ChildAgent::spawn();
    let (status, answer) = agent
        .exec(&format!("command: net/http_load\ndata: {{url: 'http://{address}/', requests: 300, concurrency: 4}}\n"));
    assert_eq!(status, 200, "{answer}");
    let result = &answer["result"];
    assert_eq!(result["completed"], 300, "{result}");
    assert_eq!(result["errors"]["other"], 0, "{result}");
    // 60 of each; the 100 Continue is skipped, not counted.
    assert_eq!(result["status"], serde_json::json!({"200": 120, "201": 60, "202": 60, "204": 60}), "{result}");
    assert_eq!(result["bytes"], 60 * (8 + 4 + 11 + 2), "{result}");
    assert_eq!(served.load(Ordering::SeqCst), 300, "nothing was sent twice");
}

#[test]
fn framing_headers_are_refused_because_the_body_sets_them() {
    let agent = ChildAgent::spawn();
    for header in ["content-length: '3'", "Transfer-Encoding: chunked"] {
        let (status, answer) = agent.exec(&format!(
            "command: net/http_load\ndata: {{url: 'http://127.0.0.1:1/', requests: 1, headers: {{{header}}}}}\n"
        ));
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["field"], "data.headers", "{answer}");
        assert!(answer["error"].as_str().unwrap().contains("set by http_load from `body`"), "{answer}");
    }
}

/// The per-request timeout is one timer per connection, moved to the current request's deadline when it fires
/// early: a stall after many quick answers must still time out on its own deadline.
#[test]
fn a_stall_after_quick_answers_times_out_on_its_own_deadline() {
    let target = Target::start();
    let agent = ChildAgent::spawn();
    let (status, answer) = agent.exec(&format!(
        "command: net/http_load\ndata: {{url: 'http://{}/stall-once', requests: 200, concurrency: 1, timeout: 300ms}}\n",
        target.address
    ));
    assert_eq!(status, 200, "{answer}");
    let result = &answer["result"];
    assert_eq!(result["errors"]["timeout"], 1, "{result}");
    assert_eq!(result["completed"], 199, "{result}");
}

/// A server that closes every connection right after its answer without saying so (no `connection: close`):
/// the next request on that connection finds it closed before any answer, so it goes again on a fresh one and
/// nothing counts as an error. (The load clears a socket's stale readiness after each answer; this checks that
/// a close racing that clear still wakes the worker rather than leaving it to its timeout.)
#[test]
fn a_silently_closed_keep_alive_connection_is_retried_not_counted_as_an_error() {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let served = Arc::new(AtomicU64::new(0));
    let counter = served.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(1_000) {
            let Ok(mut stream) = stream else { continue };
            if next_request_head(&mut stream, &mut Vec::new()) {
                counter.fetch_add(1, Ordering::SeqCst);
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
            // Dropped: closed without a word.
        }
    });
    let agent = ChildAgent::spawn();
    let (status, answer) = agent.exec(&format!(
        "command: net/http_load\ndata: {{url: 'http://{address}/', requests: 50, concurrency: 1, timeout: 5s}}\n"
    ));
    assert_eq!(status, 200, "{answer}");
    let result = &answer["result"];
    assert_eq!(result["completed"], 50, "{result}");
    assert_eq!(result["errors"]["other"], 0, "{result}");
    assert_eq!(result["errors"]["timeout"], 0, "{result}");
    assert_eq!(served.load(Ordering::SeqCst), 50);
}

/// Rate mode's accounting: far below capacity, with more connections than requests due, every request goes
/// out and none is dropped; one connection that stalls does not take its share of the schedule with it.
#[test]
fn a_rate_below_capacity_drops_nothing_and_a_stalled_connection_loses_no_share() {
    let target = Target::start();
    let agent = ChildAgent::spawn();
    let (status, answer) = agent.exec(&format!(
        "command: net/http_load\ndata: {{url: 'http://{}/', rate: 200, duration: 1s, concurrency: 500}}\n",
        target.address
    ));
    assert_eq!(status, 200, "{answer}");
    let result = &answer["result"];
    assert_eq!((result["requests_sent"].as_u64(), result["dropped"].as_u64()), (Some(200), Some(0)), "{result}");
    assert_eq!(target.hits(), 200);

    // The target's 100th request stalls for 1 s on its connection; the others carry the schedule.
    let stalled = Target::start();
    let (status, answer) = agent.exec(&format!(
        "command: net/http_load\ndata: {{url: 'http://{}/stall-once', rate: 500, duration: 2s, concurrency: {}, timeout: 5s}}\n",
        stalled.address,
        riding_out_a_stall(500)
    ));
    assert_eq!(status, 200, "{answer}");
    let result = &answer["result"];
    let (sent, dropped) = (result["requests_sent"].as_u64().unwrap(), result["dropped"].as_u64().unwrap());
    assert_eq!((sent, dropped), (1_000, 0), "{result}");
}

/// Both pacings keep rate mode's books: every request due is sent or dropped, none dropped while
/// connections are idle, latency dated from the schedule; their former names still work; closed mode refuses
/// the field. (The default, `ticks`, is what the other rate tests run.)
#[test]
fn each_pacing_keeps_the_schedule_and_closed_mode_refuses_it() {
    let agent = ChildAgent::spawn();
    for pacing in ["exact", "precise", "coarse"] {
        let target = Target::start();
        let (status, answer) = agent.exec(&format!(
            "command: net/http_load\ndata: {{url: 'http://{}/', rate: 1000, duration: 1s, concurrency: {}, pacing: {pacing}}}\n",
            target.address,
            riding_out_a_stall(1000)
        ));
        assert_eq!(status, 200, "{pacing}: {answer}");
        let result = &answer["result"];
        let books = (result["requests_sent"].as_u64(), result["dropped"].as_u64());
        assert_eq!(books, (Some(1000), Some(0)), "{pacing}: {result}");
        assert_eq!(result["latency_correction"], "schedule");
        assert_eq!(target.hits(), 1000, "{pacing}");
    }

    let (status, answer) =
        agent.exec("command: net/http_load\ndata: {url: 'http://127.0.0.1:1/', requests: 10, pacing: ticks}\n");
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["field"], "data.pacing", "{answer}");
}

/// Latency is dated from the schedule: a target that answers in 20 ms over one connection serves 50/s, so
/// at 100/s each request waits longer than the last, and the wait is latency (coordinated omission).
#[test]
fn a_rate_over_one_slow_connection_counts_the_wait_as_latency() {
    let target = Target::start();
    let agent = ChildAgent::spawn();
    let (status, answer) = agent.exec(&format!(
        "command: net/http_load\ndata: {{url: 'http://{}/slow', rate: 100, duration: 1s, concurrency: 1, timeout: 5s}}\n",
        target.address
    ));
    assert_eq!(status, 200, "{answer}");
    let result = &answer["result"];
    let (sent, dropped) = (result["requests_sent"].as_u64().unwrap(), result["dropped"].as_u64().unwrap());
    assert_eq!(sent + dropped, 100, "{result}");
    assert!(dropped > 0, "half of the schedule cannot be served in the window: {result}");
    let max = result["latency_ms"]["max"].as_f64().unwrap();
    assert!(max > 200.0, "the last requests waited for the connection, and that is latency: {result}");
    // And the answer says how much of it was waiting to be sent: late, yet no later than the latency.
    let late = result["late_ms"]["max"].as_f64().unwrap();
    assert!(late > 150.0 && late <= max * 1.01, "late {late} ms of {max} ms: {result}");
    assert!(result["late_histogram"].as_str().is_some_and(|h| !h.is_empty()), "{result}");
}

/// Rate mode in a wave: three agents each hold their own schedule (the rate is per agent), and the origin's
/// merge adds their books up exactly.
#[test]
fn a_wave_at_a_rate_keeps_each_agents_share_and_merges_exactly() {
    let target = Target::start();
    let agents = three_agents_with_static_peers();
    let (status, answer) = agents[0].exec(&format!(
        "command: net/http_load\ndata: {{url: 'http://{}/', rate: 100, duration: 2s, concurrency: {}}}\nwave: {{remain: 1, buddies: 2, report: true}}\n",
        target.address,
        riding_out_a_stall(100)
    ));
    assert_eq!(status, 200, "{answer}");
    let wave = answer["wave_id"].as_str().unwrap();
    agents[0].wave_report(wave, 3);
    let report = agents[0].get_json(&format!("{}/waves/{wave}?entries=true", agents[0].public));
    let merged = &report["merged"];
    assert_eq!(merged["agents"], 3, "{report}");
    assert_eq!((merged["requests_sent"].as_u64(), merged["dropped"].as_u64()), (Some(600), Some(0)), "{merged}");
    assert_eq!(target.hits(), 600);
    let shares: Vec<u64> =
        report["entries"].as_array().unwrap().iter().filter_map(|e| e["result"]["requests_sent"].as_u64()).collect();
    assert_eq!(shares, vec![200, 200, 200], "each agent holds its own 100/s for 2 s: {report}");
    // How late requests went merges from the agents' histograms: the swarm's latest is the latest agent's.
    let latest = report["entries"].as_array().unwrap().iter().filter_map(|e| e["result"]["late_ms"]["max"].as_f64());
    assert_eq!(merged["late_ms"]["max"].as_f64(), latest.reduce(f64::max), "{report}");
}

/// Rate stages on the same connections: each stage sends what its rate asks (due counts are exact: sent +
/// dropped = due, stage by stage), a linear ramp sends the integral of its rate, and the answer has each
/// stage's figures.
#[test]
fn rate_stages_send_what_each_stage_asks_on_the_same_connections() {
    let target = Target::start();
    let agent = ChildAgent::spawn();
    let (status, answer) = agent.exec(&format!(
        "command: net/http_load\ndata: {{url: 'http://{}/', concurrency: 4, rate: 100, stages: [\
         {{duration: 1s, rate: 100, ramp: step}}, {{duration: 1s, rate: 300}}, {{duration: 500ms, rate: 400, ramp: step}}]}}\n",
        target.address
    ));
    assert_eq!(status, 200, "{answer}");
    let result = &answer["result"];
    let stages = result["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 3, "{result}");
    // Due: 100, then (100 + 300) / 2 = 200, then 200.
    for (stage, due) in stages.iter().zip([100, 200, 200]) {
        let sent = stage["requests_sent"].as_u64().unwrap() + stage["dropped"].as_u64().unwrap();
        assert_eq!(sent, due, "{stage}");
        assert_eq!(stage["latency_correction"], "schedule", "{stage}");
    }
    assert_eq!(
        (stages[1]["from"].as_f64(), stages[1]["to"].as_f64(), stages[1]["ramp"].as_str()),
        (Some(100.0), Some(300.0), Some("linear"))
    );
    assert_eq!(result["requests_sent"].as_u64().unwrap() + result["dropped"].as_u64().unwrap(), 500, "{result}");
    assert_eq!(target.hits(), result["requests_sent"].as_u64().unwrap());
    // The window ends on a timer, which may fire a fraction of a millisecond early (2.49986 s seen).
    assert!(result["seconds"].as_f64().unwrap() >= 2.49, "{result}");
}

/// Each rate stage says how late its own requests went out: four connections to a target that answers in
/// 20 ms carry 200/s, so a first stage at 50/s sends on time and a second at 400/s falls behind, and the
/// wait shows in the second stage's `late_ms`, not the first's; the whole run's `late_ms` holds both.
#[test]
fn a_ramp_that_outgrows_its_connections_is_late_in_its_own_stage() {
    let target = Target::start();
    let agent = ChildAgent::spawn();
    let (status, answer) = agent.exec(&format!(
        "command: net/http_load\ndata: {{url: 'http://{}/slow', concurrency: 4, timeout: 5s, stages: [\
         {{duration: 1s, rate: 50, ramp: step}}, {{duration: 1s, rate: 400, ramp: step}}]}}\n",
        target.address
    ));
    assert_eq!(status, 200, "{answer}");
    let result = &answer["result"];
    let stages = result["stages"].as_array().unwrap();
    let late_p50 = |figures: &serde_json::Value| figures["late_ms"]["p50"].as_f64();
    let (first, second) = (late_p50(&stages[0]), late_p50(&stages[1]));
    // On time: a request waits only when the four connections happen to be busy together (or the agent is
    // descheduled); behind: the backlog grows by 200 requests a second, 5 ms of wait each.
    assert!(first.is_some_and(|ms| ms < 20.0), "first stage late p50 {first:?}: {result}");
    assert!(second.is_some_and(|ms| ms > 100.0), "second stage late p50 {second:?}: {result}");
    assert!(stages.iter().all(|stage| stage["late_histogram"].is_string()), "{result}");
    let latest = stages.iter().filter_map(|stage| stage["late_ms"]["max"].as_f64()).reduce(f64::max);
    assert_eq!(result["late_ms"]["max"].as_f64(), latest, "the run's latest is its latest stage's: {result}");
}

/// Concurrency stages: workers join as the target concurrency ramps; the progress names the stage; a bad
/// stage is a 400 that names it.
#[test]
fn concurrency_stages_ramp_the_workers_and_the_progress_names_the_stage() {
    let target = Target::start();
    let agent = ChildAgent::spawn();
    let body = format!(
        "command: net/http_load\ndetach: true\ndata: {{url: 'http://{}/slow', stages: [\
         {{duration: 2s, concurrency: 1, ramp: step}}, {{duration: 2s, concurrency: 8, ramp: step}}]}}\n",
        target.address
    );
    let (status, answer) = agent.exec(&body);
    assert_eq!(status, 202, "{answer}");
    let job = answer["job_id"].as_u64().unwrap();
    let mut seen = Vec::new();
    eventually(Duration::from_secs(15), || {
        let view = agent.get_json(&format!("{}/jobs/{job}", agent.public));
        if let Some(stage) = view["progress"]["stage"]["stage"].as_u64() {
            seen.push(stage);
        }
        view["status"] != "running"
    });
    assert!(seen.contains(&1) && seen.contains(&2), "the progress named the stages: {seen:?}");
    let view = agent.get_json(&format!("{}/jobs/{job}", agent.public));
    let stages = view["result"]["stages"].as_array().unwrap();
    // /slow answers after 20 ms: one worker does about 50 req/s, eight about 400.
    let (one, eight) = (stages[0]["req_per_s"].as_f64().unwrap(), stages[1]["req_per_s"].as_f64().unwrap());
    assert!(eight > 3.0 * one, "8 workers {eight} req/s against 1 worker {one} req/s");

    for (data, field) in [
        ("stages: [{duration: 1s, rate: 10}, {duration: 1s, concurrency: 2}]", "stages[1]"),
        ("stages: [{duration: 0s, rate: 10}]", "stages[0].duration"),
        ("duration: 5s, stages: [{duration: 1s, rate: 10}]", "stages"),
        ("rate: 5, stages: [{duration: 1s, concurrency: 2}]", "rate"),
        ("stages: [{duration: 1s, rate: 0}]", "stages"),
    ] {
        let (status, answer) =
            agent.exec(&format!("command: net/http_load\ndata: {{url: 'http://{}/', {data}}}\n", target.address));
        assert_eq!(status, 400, "{data}: {answer}");
        assert_eq!(answer["field"], format!("data.{field}"), "{data}: {answer}");
    }
}
