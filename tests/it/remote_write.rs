//! Results pushed to a real Prometheus over remote write (`--web.enable-remote-write-receiver`) and read back
//! with PromQL: a scenario run's step outcomes, its staged load's figures stage by stage, its guard's readings
//! and its outcome; and an agent's own push of the load it ran.

use std::process::Command;
use std::time::Duration;

use crate::common::prometheus::Prometheus;
use crate::common::{eventually, ChildAgent, Spawn, BIN};

#[test]
fn a_scenario_run_and_an_agent_push_their_results_and_promql_reads_them_back() {
    let prometheus = Prometheus::receiver();
    let write = format!("{}/api/v1/write", prometheus.url);
    let agent =
        ChildAgent::spawn_with(Spawn { config: &format!("remote_write: {{url: '{write}'}}\n"), ..Default::default() });
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("pushed.yaml");
    std::fs::write(
        &file,
        "name: pushed\ntarget: {agent: 'http://127.0.0.1:1'}\n\
         guards:\n  - {name: load p99, http_load: p99_ms, is: '< 5000', interval: 200ms}\n\
         steps:\n  - name: ramp\n    exec:\n      command: net/http_load\n      data: {url: 'http://{{service}}/health', concurrency: 2, \
         stages: [{duration: 1s, rate: 100, ramp: step}, {duration: 1s, rate: 300, ramp: step}]}\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["scenario", "run", "--target", &agent.public, "--service", &agent.service, "--remote-write", &write])
        .arg(&file)
        .output()
        .unwrap();
    let text = format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("remote write:") && text.contains("series pushed") && !text.contains("failed, last"),
        "{text}"
    );

    let scenario = r#"scenario="pushed""#;
    let stage = |n: u32| {
        prometheus.query(&format!("tarsier_load_requests_per_second{{{scenario},step=\"ramp\",stage=\"{n}\"}}"))
    };
    let (one, two) = (stage(1), stage(2));
    assert!(one.is_some_and(|r| (90.0..=110.0).contains(&r)), "stage 1: {one:?}\n{}", prometheus.log());
    assert!(two.is_some_and(|r| (270.0..=330.0).contains(&r)), "stage 2: {two:?}");
    let p99 = prometheus.query(&format!("tarsier_load_latency_seconds{{{scenario},stage=\"all\",quantile=\"0.99\"}}"));
    assert!(p99.is_some_and(|s| s > 0.0 && s < 5.0), "{p99:?}");
    assert_eq!(prometheus.query(&format!("tarsier_scenario_step_passed{{{scenario},step=\"ramp\"}}")), Some(1.0));
    assert_eq!(prometheus.query(&format!("tarsier_scenario_run_passed{{{scenario}}}")), Some(1.0));
    assert_eq!(prometheus.query(&format!("tarsier_guard_tripped{{{scenario},guard=\"load p99\"}}")), Some(0.0));
    let readings = prometheus.query(&format!("count_over_time(tarsier_guard_value{{{scenario}}}[5m])"));
    assert!(readings.is_some_and(|n| n >= 2.0), "the guard's readings: {readings:?}");

    // The agent pushed the load it ran on its own, labelled with its name and the wave.
    let pushed = eventually(Duration::from_secs(10), || {
        prometheus.query(r#"count(tarsier_load_requests_per_second{agent!="",wave!="",stage="all"})"#) == Some(1.0)
    });
    assert!(pushed, "{}", prometheus.log());
}
