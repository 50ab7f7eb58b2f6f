//! The swarm without Consul: `tarsier swarm` (agents in processes of their own, or in one with the in-process
//! registry) and `--peers` (static discovery).

use crate::common;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::common::{eventually, ChildAgent, Spawn, BIN};

#[test]
fn local_swarm_runs_its_demo_waves_to_every_agent() {
    let out = Command::new(BIN).args(["swarm", "--agents", "10", "--once"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("local swarm: 10 agents"), "{stdout}");
    // The wave with duplicates: 1 + 3 + 9 executions; the dedupe flood: each of the 10 agents once.
    assert!(stdout.contains("13 executions, 13 ok, 0 failed"), "{stdout}");
    assert!(stdout.contains("reached 10 of 10 agents; 10 executions, 10 ok"), "{stdout}");
}

/// With a token in the config, the demo sends it, and the agents' copies (signed, not carrying the token)
/// still reach every agent.
#[test]
fn a_local_swarm_with_a_token_signs_its_copies_and_its_demo_reaches_every_agent() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "local-swarm-token-0123456789\n").unwrap();
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let config = dir.path().join("swarm.yaml");
    std::fs::write(&config, format!("auth: {{token_file: {}}}\n", token.display())).unwrap();
    let out = Command::new(BIN).args(["swarm", "--agents", "6", "--once", "--config"]).arg(&config).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("reached 6 of 6 agents; 6 executions, 6 ok"), "{stdout}");
}

#[test]
fn local_swarm_on_fixed_ports() {
    let base = common::free_port_range(6);
    let out = Command::new(BIN)
        .args(["swarm", "--agents", "3", "--once", "--no-demo", "--base-port", &base.to_string()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    // Agent i: public base + i, service base + agents + i.
    assert!(
        stdout.contains(&format!(
            "local-1    public http://127.0.0.1:{}  service http://127.0.0.1:{}",
            base + 1,
            base + 4
        )),
        "{stdout}"
    );
}

/// `tarsier swarm` used to die on SIGTERM without releasing anything (its files stayed on disk); only Ctrl-C
/// was handled. Now SIGTERM stops every agent, which deletes what they hold, and the exit status is 0.
#[test]
fn local_swarm_releases_everything_and_exits_0_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("swarm.yaml");
    let storage = dir.path().join("storage");
    std::fs::write(&config, format!("plugins:\n  storage:\n    dir: {}\n", storage.display())).unwrap();
    let base = common::free_port_range(6);
    let mut swarm = Command::new(BIN)
        .args(["swarm", "--agents", "3", "--no-demo", "--base-port", &base.to_string(), "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let http = common::http();
    // The swarm binds its agents one after another: wait until the first one sees the other two.
    let peers = format!("http://127.0.0.1:{}/peers", base + 3);
    let joined = eventually(Duration::from_secs(20), || {
        http.get(&peers).send().and_then(|r| r.json::<serde_json::Value>()).is_ok_and(|p| p["count"] == 2)
    });
    assert!(joined, "the local swarm did not come up");
    let exec = format!("http://127.0.0.1:{base}/exec");
    let body = "command: storage/write\ndata: {amount: 1MiB, fsync: false}\nwave: {remain: 1, buddies: 2}\n";
    let written = eventually(Duration::from_secs(20), || {
        http.post(&exec).body(body).send().is_ok_and(|r| r.status().is_success())
    });
    assert!(written, "the swarm did not take the write");
    assert!(eventually(Duration::from_secs(10), || common::files_in(&storage).len() == 3), "not every agent wrote");
    let started = std::time::Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(swarm.id() as i32, libc::SIGTERM) };
    let status = loop {
        if let Some(status) = swarm.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > common::patient(Duration::from_secs(10)) {
            let _ = swarm.kill();
            panic!("tarsier swarm ignored SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0));
    assert!(started.elapsed() < common::patient(Duration::from_secs(2)), "took {:?}", started.elapsed());
    assert_eq!(common::files_in(&storage), Vec::<std::path::PathBuf>::new(), "files were left behind");
}

/// A base port with `count` free ports after it, below the ephemeral range (32768+) so that no client socket,
/// nor one of its TIME_WAIT leftovers, takes one of them between this check and the swarm's bind.
fn free_port() -> u16 {
    common::fixed_port()
}

#[test]
fn static_peers_carry_waves_and_the_abort_flood_and_count_dead_peers() {
    let ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let dead = free_port(); // nothing listens there
    let peers = ports.iter().chain([dead].iter()).map(|p| format!("127.0.0.1:{p}")).collect::<Vec<_>>().join(",");
    let agents: Vec<ChildAgent> = ports
        .iter()
        .map(|port| {
            let listen = format!("127.0.0.1:{port}");
            ChildAgent::spawn_with(Spawn { args: &["--listen", &listen, "--peers", &peers], ..Default::default() })
        })
        .collect();
    // Each agent knows the other two and the dead one, never itself.
    assert!(agents.iter().all(|a| a.peer_count() == 3));

    let (status, answer) = agents[0].exec(
        "command: sleep/sleep\ndata: {duration: 0s}\nwave: {remain: 5, buddies: 1, dedupe: true, report: true}\n",
    );
    assert_eq!(status, 200, "{answer}");
    let report = agents[0].wave_report(answer["wave_id"].as_str().unwrap(), 3);
    assert_eq!(report["agents_reached"], 3, "the dead peer did not stop the wave: {report}");
    assert_eq!(report["executions"], 3, "{report}");
    // The origin knew four agents (itself and three peers, one of them dead): the count is not final, and
    // the report says so rather than passing 3 off as everyone.
    assert_eq!(report["expected_agents"], 4, "{report}");
    assert_eq!(report["still_expected"], 1, "{report}");
    assert_eq!(report["complete"], false, "{report}");
    let errors: u64 = agents
        .iter()
        .map(|a| {
            a.metrics()
                .lines()
                .find_map(|l| l.strip_prefix("tarsier_wave_forward_errors_total "))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0)
        })
        .sum();
    assert!(errors <= 3, "{errors} forward errors");

    for agent in &agents {
        agent.exec("command: heavy_load/gobble_ram\ndata: {size: 4MiB}\n");
    }
    let (_, aborted) = agents[2].post("/abort", "application/yaml", Vec::new());
    assert!(aborted["cancelled_jobs"].is_number(), "{aborted}");
    assert!(eventually(Duration::from_secs(10), || agents.iter().all(|a| a.runtime()["held"]["ram_bytes"] == 0)));

    // A local abort stays local.
    for agent in &agents {
        agent.exec("command: heavy_load/gobble_ram\ndata: {size: 4MiB}\n");
    }
    let (_, aborted) = agents[1].post("/abort", "application/yaml", b"local: true\n".to_vec());
    assert_eq!(aborted["forwarded"], 0, "{aborted}");
    assert_eq!(agents[1].runtime()["held"]["ram_bytes"], 0);
    assert_eq!(agents[0].runtime()["held"]["ram_bytes"], 4 * common::MIB);
}

#[test]
fn a_forwarded_copy_is_accepted_at_once_and_a_repeat_is_a_duplicate() {
    let agent = ChildAgent::spawn();
    let copy =
        "command: sleep/sleep\ndata: {duration: 5s}\nwave: {id: abc123, hop: 1, remain: 0, buddies: 1, dedupe: true}\n";
    let (status, answer) = agent.exec(copy);
    assert_eq!(status, 202, "a peer's copy does not wait for the command: {answer}");
    assert_eq!(answer["status"], "accepted");
    let (status, answer) = agent.exec(copy);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "duplicate");
    assert!(agent.metrics().contains("tarsier_waves_deduped_total 1"));
    assert!(agent.metrics().contains("tarsier_waves_received_total{route=\"exec\"} 2"));
    // Reports go only to an origin that started the wave, and come only from peers it knows.
    let me = agent.public.trim_start_matches("http://");
    let entry = |address: &str| {
        format!(r#"{{"agent":"x","address":"{address}","hop":1,"status":"ok","received_at_ms":0,"elapsed_ms":0}}"#)
    };
    let (status, _) = agent.post("/waves/nope/report", "application/json", entry(me).into_bytes());
    assert_eq!(status, 404);
    let (status, answer) = agent.post("/waves/nope/report", "application/json", entry("127.0.0.1:1").into_bytes());
    assert_eq!(status, 403, "{answer}");
}

/// `tarsier swarm | head -1`: the reader goes away after one line and the swarm still ends cleanly, without
/// a panic on the closed pipe.
#[test]
fn a_closed_stdout_pipe_is_no_panic() {
    use std::io::BufRead as _;
    let mut child = Command::new(BIN)
        .args(["swarm", "--agents", "3", "--once"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut first).unwrap();
    assert!(first.contains("local swarm"), "{first}");
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && !stderr.contains("panicked"), "{:?}: {stderr}", out.status);
}

/// The first chaos experiment a newcomer tries: crash one agent of the local swarm. Each agent is a process
/// of its own, so the other four keep answering, and the one that died is started again.
#[test]
fn an_agent_of_a_local_swarm_that_dies_is_restarted_and_the_others_keep_answering() {
    let swarm = common::SwarmProcess::start(5, &[]);
    let http = common::http();
    let health = |i: u16| -> Option<Value> {
        let url = format!("http://127.0.0.1:{}/health", swarm.base + swarm.agents + i);
        http.get(url).send().ok().filter(|a| a.status().is_success()).and_then(|a| a.json().ok())
    };
    // The fault's timer starts when the command runs, not when its answer is sent: with the default 200 ms a
    // busy machine once let the process die before the answer left (a CI run: "error sending request").
    let (status, answer) = common::post_yaml(&http, &swarm.public(3), "command: faults/segfault\ndata: {delay: 2s}\n");
    assert_eq!(status, 200, "{answer}");
    let died = std::time::Instant::now();
    assert!(common::eventually(Duration::from_secs(10), || health(3).is_none()), "agent 3 did not die");
    for i in [0, 1, 2, 4] {
        assert!(health(i).is_some(), "agent {i} died with agent 3");
    }
    let back = common::eventually(Duration::from_secs(20), || {
        health(3).is_some_and(|h| h["uptime_seconds"].as_f64().unwrap_or(f64::MAX) < died.elapsed().as_secs_f64())
    });
    assert!(back, "agent 3 was not started again");
    // `tarsier status` sees all five up, and the restart (the supervisor tells the new process its count).
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tarsier"))
        .args(["status", "--json", &swarm.public(0)])
        .output()
        .unwrap();
    let view: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert!(out.status.success(), "{:?}: {view}", out.status);
    let agents = view["agents"].as_array().cloned().unwrap_or_default();
    assert_eq!(agents.iter().filter(|a| a["state"] == "up").count(), 5, "{view}");
    let restarts: Vec<u64> = agents.iter().map(|a| a["status"]["restarts"].as_u64().unwrap_or(9)).collect();
    assert_eq!(restarts.iter().sum::<u64>(), 1, "one restart in all: {restarts:?}");
    let table =
        std::process::Command::new(env!("CARGO_BIN_EXE_tarsier")).args(["status", &swarm.public(0)]).output().unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.starts_with("5 of 5 agents up, 0 jobs running, 1 restarts"), "{table}");
    // The swarm is whole again: a dedupe flood reaches all five.
    let (status, answer) = common::post_yaml(
        &http,
        &swarm.public(0),
        "command: sleep/sleep\ndata: {duration: 0s}\nwave: {remain: 8, buddies: 4, dedupe: true}\n",
    );
    assert_eq!(status, 200, "{answer}");
}

/// In one process (`--in-process`), a command that would end the process is refused: it would end every agent.
#[test]
fn an_in_process_local_swarm_refuses_a_command_that_would_kill_it_whole() {
    let swarm = common::SwarmProcess::start(3, &["--in-process"]);
    let http = common::http();
    let (status, answer) = common::post_yaml(&http, &swarm.public(1), "command: faults/segfault\n");
    assert_eq!((status, answer["field"].as_str()), (400, Some("command")), "{answer}");
    assert!(answer["error"].as_str().unwrap_or_default().contains("in-process"), "{answer}");
    let (status, _) = common::post_yaml(&http, &swarm.public(1), "command: sleep/sleep\ndata: {duration: 0s}\n");
    assert_eq!(status, 200, "the swarm is still there");
}
