//! The plugin contract, over every command the agent registers: a command that runs until it is stopped ends
//! within 100 ms of a cancel (`tarsier_plugin::Command::execute`'s promise), and whatever a command holds is
//! given back by `/abort`, so `held` reads zero after it. Each command is listed below with safe data and
//! what it does; a command the catalogue has and this list does not fails the test until it is classified.
//! Everything runs in one child agent, on loopback; no command that ends the process is run.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{self, ChildAgent};

enum Kind {
    /// Runs until cancelled (or for seconds): the cancel must end it within the contract's 100 ms.
    Busy,
    /// Ends at once and keeps something (memory, files, connections) until released.
    Holds,
    /// Ends at once and keeps nothing.
    Instant,
    /// Acts on a fault proxy: run after `net/proxy_create` (to the test's listener) and `net/toxic_add` (a
    /// `latency_downstream` toxic) made one named `contract`; `/abort` must leave nothing held after it.
    OnProxy,
    /// A network fault: it would change this machine's own network, so it is not run here. The same contract
    /// (a cancel undoes it within 100 ms, `/abort` leaves nothing held) is tested inside a network namespace
    /// in `wire_faults.rs`.
    InNamespace,
}

/// (command, data, kind). `{listener}` is a loopback address the test listens on.
const COMMANDS: [(&str, &str, Kind); 32] = [
    ("sleep/sleep", "{duration: 30s}", Kind::Busy),
    ("heavy_load/spin_cpu", "{duration: 30s, threads: 1}", Kind::Busy),
    ("faults/deadlock", "{threads: 2, duration: 30s}", Kind::Busy),
    ("net/http_load", "{url: 'http://{listener}/', duration: 30s, concurrency: 1, rate: 5}", Kind::Busy),
    ("storage/read", "{file: /dev/zero, amount: 64GiB, block_size: 64KiB}", Kind::Busy),
    ("logs/emit", "{count: 1000000, rate: 10}", Kind::Busy),
    ("heavy_load/gobble_ram", "{size: 8MiB}", Kind::Holds),
    ("storage/open_fd", "{count: 3}", Kind::Holds),
    ("storage/write", "{amount: 1MiB, files: 2}", Kind::Holds),
    ("net/dial", "{address: '{listener}', count: 2}", Kind::Holds),
    ("heavy_load/ram_stats", "{}", Kind::Instant),
    ("heavy_load/free_ram", "{}", Kind::Instant),
    ("net/stats", "{}", Kind::Instant),
    ("net/close", "{}", Kind::Instant),
    ("storage/fs_stats", "{}", Kind::Instant),
    ("storage/close_fd", "{}", Kind::Instant),
    ("dummy/say_hello", "{amount: 1}", Kind::Instant),
    ("faults/deadlock", "{threads: 0, duration: -1s}", Kind::Instant),
    ("net/faults", "{}", Kind::Instant),
    ("net/delay", "{}", Kind::InNamespace),
    ("net/loss", "{}", Kind::InNamespace),
    ("net/bandwidth", "{rate: 1mbit}", Kind::InNamespace),
    ("net/partition", "{}", Kind::InNamespace),
    ("net/dns", "{}", Kind::InNamespace),
    ("net/proxy_create", "{name: contract, upstream: '{listener}'}", Kind::Holds),
    ("net/proxies", "{}", Kind::Instant),
    ("net/proxy_reset", "{}", Kind::Instant),
    ("net/proxy_update", "{name: contract, enabled: false}", Kind::OnProxy),
    ("net/proxy_delete", "{name: contract}", Kind::OnProxy),
    ("net/toxic_add", "{proxy: contract, type: timeout, attributes: {timeout: 100}}", Kind::OnProxy),
    ("net/toxic_update", "{proxy: contract, name: latency_downstream, toxicity: 0.5}", Kind::OnProxy),
    ("net/toxic_remove", "{proxy: contract, name: latency_downstream}", Kind::OnProxy),
];

/// The contract's bound: a job stops within 100 ms of its cancel (`Command::execute`).
const STOPS_WITHIN: Duration = Duration::from_millis(100);

fn held_total(agent: &ChildAgent) -> u64 {
    let held = agent.runtime()["held"].clone();
    held.as_object().map(|fields| fields.values().filter_map(Value::as_u64).sum()).unwrap_or(u64::MAX)
}

#[test]
fn every_command_keeps_the_plugin_contract_on_cancel_and_release() {
    let agent = ChildAgent::spawn();
    // A listener for http_load and dial to aim at: it accepts and answers nothing, which is enough.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    let catalogue = agent.get_json(&format!("{}/commands", agent.service));
    let mut unlisted = Vec::new();
    for command in catalogue["commands"].as_array().unwrap() {
        let name = command["command"].as_str().unwrap();
        if command["ends_process"] != true && !COMMANDS.iter().any(|(listed, _, _)| *listed == name) {
            unlisted.push(name.to_owned());
        }
    }
    assert!(unlisted.is_empty(), "commands this contract test does not know yet (list them in COMMANDS): {unlisted:?}");

    let mut stopped_after = Vec::new();
    for (name, data, kind) in COMMANDS {
        let data = data.replace("{listener}", &address);
        match kind {
            Kind::Busy => {
                let (status, answer) = agent.exec(&format!("command: {name}\ndata: {data}\ndetach: true\n"));
                assert_eq!(status, 202, "{name}: {answer}");
                let id = answer["job_id"].as_u64().unwrap();
                // Running for real before the cancel: past its start, inside its work.
                std::thread::sleep(Duration::from_millis(300));
                let job = agent.get_json(&format!("{}/jobs/{id}", agent.public));
                assert_eq!(job["status"], "running", "{name} ended by itself: {job}");
                let (status, text) = agent.request(reqwest::Method::DELETE, &format!("{}/jobs/{id}", agent.public));
                assert_eq!(status, 200, "{name}: {text}");
                let cancelled = Instant::now();
                let mut job = Value::Null;
                let ended = common::eventually(Duration::from_secs(5), || {
                    job = agent.get_json(&format!("{}/jobs/{id}", agent.public));
                    job["status"] != "running"
                });
                let took = cancelled.elapsed();
                assert!(ended, "{name} still running 5 s after its cancel: {job}");
                assert_eq!(job["status"], "cancelled", "{name}: {job}");
                stopped_after.push(format!("{name} {took:?}"));
                assert!(took < common::patient(STOPS_WITHIN), "{name} stopped {took:?} after its cancel");
            }
            Kind::Holds => {
                let (status, answer) = agent.exec(&format!("command: {name}\ndata: {data}\n"));
                assert_eq!(status, 200, "{name}: {answer}");
                assert!(held_total(&agent) > 0, "{name} holds nothing: {}", agent.runtime()["held"]);
                let (status, answer) = agent.post("/abort", "application/json", b"{\"local\": true}".to_vec());
                assert_eq!(status, 200, "{answer}");
                assert_eq!(held_total(&agent), 0, "{name}: after /abort {}", agent.runtime()["held"]);
            }
            Kind::OnProxy => {
                for setup in [
                    format!("command: net/proxy_create\ndata: {{name: contract, upstream: '{address}'}}\n"),
                    "command: net/toxic_add\ndata: {proxy: contract, type: latency, attributes: {latency: 10}}\n"
                        .into(),
                ] {
                    let (status, answer) = agent.exec(&setup);
                    assert_eq!(status, 200, "{name}'s setup: {answer}");
                }
                let (status, answer) = agent.exec(&format!("command: {name}\ndata: {data}\n"));
                assert_eq!((status, &answer["status"]), (200, &Value::from("ok")), "{name}: {answer}");
                let (status, answer) = agent.post("/abort", "application/json", b"{\"local\": true}".to_vec());
                assert_eq!(status, 200, "{answer}");
                assert_eq!(held_total(&agent), 0, "{name}: after /abort {}", agent.runtime()["held"]);
            }
            Kind::InNamespace => {}
            Kind::Instant => {
                let (status, answer) = agent.exec(&format!("command: {name}\ndata: {data}\n"));
                assert_eq!(status, 200, "{name}: {answer}");
                assert_eq!(answer["status"], "ok", "{name}: {answer}");
                assert_eq!(held_total(&agent), 0, "{name}: {}", agent.runtime()["held"]);
            }
        }
    }
    println!("stopped after their cancel: {}", stopped_after.join(", "));
    drop(listener);
}
