//! Guards and steady state: a guard that breaks while a long step runs aborts the whole swarm at once and
//! fails the run with its name, value and bound; a steady state that does not hold keeps a run from starting,
//! and one that comes back after the teardown is reported with the time it took. The service under test is
//! a real HTTP server of the test's own whose status the test flips.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{self, eventually, patient, ChildAgent, SwarmProcess, BIN};

/// A service that answers every request with the status the test sets; `GET /break` sets it to 503.
struct Service {
    address: String,
    status: Arc<AtomicU16>,
}

impl Service {
    fn start() -> Self {
        let status = Arc::new(AtomicU16::new(200));
        let answer = status.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            if uri.path() == "/break" {
                answer.store(503, Ordering::Relaxed);
            }
            let status = answer.load(Ordering::Relaxed);
            async move { (axum::http::StatusCode::from_u16(status).unwrap(), "service says hello") }
        });
        Service { address: common::serve_on_loopback(app), status }
    }

    fn set(&self, status: u16) {
        self.status.store(status, Ordering::Relaxed);
    }
}

fn output_text(out: &std::process::Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The measure: a 10-agent swarm runs a long step; the service breaks; from then to every agent idle
/// is under 2 s (times the patience factor on a shared machine). The run fails with the guard's name, value and
/// bound in the table and in JUnit, the teardown runs, and the steady state comes back after it.
#[test]
fn a_broken_guard_aborts_a_ten_agent_swarm_at_once_and_fails_the_run() {
    let service = Service::start();
    let swarm = SwarmProcess::start(10, &[]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("guarded.yaml");
    let junit = dir.path().join("junit.xml");
    let url = format!("http://{}/health", service.address);
    std::fs::write(
        &file,
        format!(
            "name: guarded\ntarget: {{agent: 'http://127.0.0.1:1'}}\n\
             guards:\n  - name: service health\n    probe: {{url: '{url}', status: 200, latency: 1s}}\n    interval: 200ms\n\
             steady_state:\n  checks:\n    - probe: {{url: '{url}'}}\n  recover_within: 20s\n\
             steps:\n  - name: a long wave\n    exec: {{command: sleep/sleep, data: {{duration: 60s}}, wave: {{remain: 9, buddies: 3, dedupe: true}}}}\n\
             \x20 - wait: 1s\n\
             teardown:\n  - name: the teardown ran\n    run: 'true'\n"
        ),
    )
    .unwrap();
    let run = Command::new(BIN)
        .args(["scenario", "run", "--target", &swarm.public(0), "--junit"])
        .arg(&junit)
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let http = common::http();
    assert!(
        eventually(patient(Duration::from_secs(20)), || swarm.busy(&http) == 10),
        "the wave did not reach every agent: {} busy",
        swarm.busy(&http)
    );
    let broke = Instant::now();
    service.set(503);
    let idle = eventually(patient(Duration::from_secs(10)), || swarm.busy(&http) == 0);
    let took = broke.elapsed();
    assert!(idle, "the swarm was still busy {took:?} after the guard broke");
    // The service recovers, so the steady state after the teardown holds again.
    service.set(200);
    let out = run.wait_with_output().unwrap();
    let text = output_text(&out);
    eprintln!("from the broken service to 10 idle agents: {:.0} ms", took.as_secs_f64() * 1000.0);
    assert!(took < patient(Duration::from_secs(2)), "{took:?} from a broken guard to an idle swarm\n{text}");
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("stopped by guard `service health`") && text.contains("answered 503"), "{text}");
    assert!(text.contains("want 200 within 1s"), "{text}");
    assert!(text.contains("the teardown ran") && text.contains("held again after"), "{text}");
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("guard service health") && xml.contains("type=\"guard\""), "{xml}");
    assert!(xml.contains("steady state before the run") && xml.contains("steady state after the teardown"), "{xml}");
}

/// A steady state that does not hold: the run does not start (no step runs) and exits 2 with the reason; a
/// system that does not come back after the teardown fails the run with the time waited.
#[test]
fn a_steady_state_keeps_a_broken_system_from_being_tested_and_reports_no_recovery() {
    let service = Service::start();
    service.set(500);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("steady.yaml");
    let marker = dir.path().join("ran");
    let url = format!("http://{}/", service.address);
    std::fs::write(
        &file,
        format!(
            "name: steady\ntarget: {{local: 1}}\nsteady_state:\n  checks:\n    - name: answers\n      probe: {{url: '{url}', body: hello}}\n  \
             recover_within: 1s\nsteps:\n  - run: 'touch {}'\n",
            marker.display()
        ),
    )
    .unwrap();
    let out = Command::new(BIN).args(["scenario", "run"]).arg(&file).output().unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(text.contains("not started, the steady state does not hold: answers: GET"), "{text}");
    assert!(text.contains("answered 500"), "{text}");
    assert!(!marker.exists(), "a step ran although the steady state did not hold");

    // Holds before; the step breaks the service and nothing brings it back.
    service.set(200);
    std::fs::write(
        &file,
        format!(
            "name: steady\ntarget: {{local: 1}}\nsteady_state:\n  checks:\n    - probe: {{url: '{url}', body: hello}}\n  \
             recover_within: 1s\nsteps:\n  - probe: {{url: 'http://{}/break', status: 503, within: 5s}}\n",
            service.address
        ),
    )
    .unwrap();
    let out = Command::new(BIN).args(["scenario", "run"]).arg(&file).output().unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("did not recover: still broken after waiting"), "{text}");
}

/// `tarsier exec --guard` on a live figure of the load it runs: the service starts failing, the load's error
/// rate passes the bound, the swarm is aborted, and the exit status is 1 long before the load's duration.
#[test]
fn exec_with_a_guard_on_the_loads_error_rate_stops_the_load() {
    let service = Service::start();
    let agent = ChildAgent::spawn();
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("load.yaml");
    std::fs::write(
        &body,
        format!(
            "command: net/http_load\ndata: {{url: 'http://{}/', concurrency: 2, duration: 60s, rate: 200}}\n",
            service.address
        ),
    )
    .unwrap();
    let started = Instant::now();
    let run = Command::new(BIN)
        .args(["exec", &agent.public])
        .arg(&body)
        .args(["--guard", "{name: errors, http_load: error_rate, is: '< 0.5', interval: 200ms}"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let http = common::http();
    let running = eventually(patient(Duration::from_secs(10)), || {
        let jobs: Value = http.get(format!("{}/jobs", agent.public)).send().unwrap().json().unwrap();
        jobs["running"][0]["progress"]["recent"]["error_rate"] == 0.0
    });
    assert!(running, "the load did not start");
    service.set(500);
    let out = run.wait_with_output().unwrap();
    let text = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("stopped by guard `errors`: error_rate = "), "{text}");
    assert!(text.contains(", want < 0.5; broken for"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(50), "the load ran on: {:?}", started.elapsed());
    let jobs: Value = http.get(format!("{}/jobs", agent.public)).send().unwrap().json().unwrap();
    assert_eq!(jobs["running"], serde_json::json!([]), "{jobs}");

    // A guard that is wrong is refused before anything runs.
    let out = Command::new(BIN)
        .args(["exec", &agent.public])
        .arg(&body)
        .args(["--guard", "{promql: up, is: '== 1'}"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", output_text(&out));
    assert!(output_text(&out).contains("--guard: a promql guard needs --prometheus URL"), "{}", output_text(&out));
}
