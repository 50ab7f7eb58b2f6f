//! The swarm with a real Consul dev agent (scripts/consul.sh installs it), all on 127.0.0.1.

use std::sync::Mutex;
use std::time::Duration;

use crate::common::consul::ConsulDev;
use crate::common::{eventually, spawn_agents, ChildAgent, MIB};

/// The two 20-agent swarms take turns: together with their Consul agents they are 40 debug-built processes
/// and two health checkers on two cores, which is a test of the machine rather than of discovery.
static BIG_SWARM: Mutex<()> = Mutex::new(());

/// How long twenty agents may take to see each other. Alone it takes 2-5 s; in CI, beside the Docker tests'
/// image builds, 8 of 20 checks once still read "critical" with no output (never run) after 20 s.
const TWENTY_FIND_EACH_OTHER: Duration = Duration::from_secs(60);

fn wait_for_peers(consul: &ConsulDev, agents: &[&ChildAgent], expected: u64, within: Duration) {
    let ok = eventually(within, || agents.iter().all(|a| a.peer_count() == expected));
    let counts: Vec<u64> = agents.iter().map(|a| a.peer_count()).collect();
    assert!(
        ok,
        "peer counts {counts:?}, want {expected} each\nchecks not passing in Consul:\n{}\nfirst agent's log, last lines:\n{}",
        consul.failing_checks(),
        last_lines(&agents[0].log_text(), 30)
    );
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

#[test]
fn twenty_agents_discover_each_other_run_waves_and_abort_together() {
    let _turn = BIG_SWARM.lock().unwrap_or_else(|p| p.into_inner());
    let consul = ConsulDev::start();
    let agents = spawn_agents(20, &consul.agent_config());
    let all: Vec<&ChildAgent> = agents.iter().collect();
    wait_for_peers(&consul, &all, 19, TWENTY_FIND_EACH_OTHER);
    assert_eq!(consul.passing(), 20);

    // Prometheus discovery: every agent's service port.
    let sd = agents[3].get_json(&format!("{}/sd", agents[3].service));
    assert_eq!(sd[0]["targets"].as_array().unwrap().len(), 20, "{sd}");

    // Without dedupe duplicates are allowed: 1 + 3 + 9 + 27 executions.
    let origin = &agents[0];
    let (status, answer) =
        origin.exec("command: sleep/sleep\ndata: {duration: 10ms}\nwave: {remain: 3, buddies: 3, report: true}\n");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["forwarded"], 3);
    let report = origin.wave_report(answer["wave_id"].as_str().unwrap(), 40);
    assert_eq!(report["executions"], 40, "{report}");
    assert_eq!(report["succeeded"], 40, "{report}");
    assert_eq!(report["per_hop"], serde_json::json!({"0": 1, "1": 3, "2": 9, "3": 27}));

    // With dedupe and enough remain, every agent runs it exactly once.
    let (_, answer) = agents[7].exec(
        "command: sleep/sleep\ndata: {duration: 0s}\nwave: {remain: 10, buddies: 3, dedupe: true, report: true}\n",
    );
    let report = agents[7].wave_report(answer["wave_id"].as_str().unwrap(), 20);
    assert_eq!(report["agents_reached"], 20, "{report}");
    assert_eq!(report["executions"], 20, "{report}");
    assert_eq!((report["expected_agents"].as_u64(), report["complete"].as_bool()), (Some(20), Some(true)), "{report}");

    // Every agent holds RAM and fds; one abort releases all twenty.
    for agent in &agents {
        assert_eq!(agent.exec("command: heavy_load/gobble_ram\ndata: {size: 4MiB}\n").0, 200);
        assert_eq!(agent.exec("command: storage/open_fd\ndata: {count: 2}\n").0, 200);
    }
    assert!(agents.iter().all(|a| a.runtime()["held"]["ram_bytes"] == 4 * MIB));
    let (status, aborted) = agents[11].post("/abort", "application/yaml", Vec::new());
    assert_eq!(status, 200, "{aborted}");
    let released = eventually(Duration::from_secs(20), || {
        agents.iter().all(|a| {
            let held = a.runtime()["held"].clone();
            held["ram_bytes"] == 0 && held["files"] == 0
        })
    });
    assert!(released, "not every agent released what it held");
    let report = agents[11].wave_report(aborted["wave_id"].as_str().unwrap(), 20);
    assert_eq!(report["agents_reached"], 20, "{report}");
    assert!(agents[5].metrics().contains("tarsier_aborts_total 1"));
    assert!(agents[5].metrics().contains("tarsier_peers 19"));
}

#[test]
fn killed_agents_drop_out_and_a_new_wave_reaches_every_live_one() {
    let _turn = BIG_SWARM.lock().unwrap_or_else(|p| p.into_inner());
    let consul = ConsulDev::start();
    let mut agents = spawn_agents(20, &consul.agent_config());
    {
        let all: Vec<&ChildAgent> = agents.iter().collect();
        wait_for_peers(&consul, &all, 19, TWENTY_FIND_EACH_OTHER);
    }
    for mut dead in agents.drain(15..) {
        dead.signal(libc::SIGKILL);
        dead.wait_exit(Duration::from_secs(5));
    }
    let live: Vec<&ChildAgent> = agents.iter().collect();
    // Consul's check fails within a couple of intervals; peers drop the dead from their list.
    wait_for_peers(&consul, &live, 14, Duration::from_secs(30));
    let (_, answer) = agents[0].exec(
        "command: sleep/sleep\ndata: {duration: 0s}\nwave: {remain: 10, buddies: 3, dedupe: true, report: true}\n",
    );
    let report = agents[0].wave_report(answer["wave_id"].as_str().unwrap(), 15);
    assert_eq!(report["agents_reached"], 15, "{report}");
    assert_eq!(report["executions"], 15, "{report}");
}

#[test]
fn consul_outage_keeps_the_last_list_and_agents_register_again() {
    let mut consul = ConsulDev::start();
    let agents = spawn_agents(5, &consul.agent_config());
    let all: Vec<&ChildAgent> = agents.iter().collect();
    wait_for_peers(&consul, &all, 4, Duration::from_secs(20));

    consul.stop();
    std::thread::sleep(Duration::from_secs(1));
    // The last list still carries waves.
    let (status, answer) = agents[2].exec(
        "command: sleep/sleep\ndata: {duration: 0s}\nwave: {remain: 6, buddies: 2, dedupe: true, report: true}\n",
    );
    assert_eq!(status, 200, "{answer}");
    let report = agents[2].wave_report(answer["wave_id"].as_str().unwrap(), 5);
    assert_eq!(report["agents_reached"], 5, "{report}");
    assert!(agents.iter().all(|a| a.peer_count() == 4));
    assert!(eventually(Duration::from_secs(5), || agents[0].log_text().contains("Consul is unreachable")));

    // Consul comes back empty (a dev agent keeps nothing): every agent registers again.
    consul.restart();
    assert!(
        eventually(Duration::from_secs(30), || consul.passing() == 5),
        "{} of 5 agents registered again",
        consul.passing()
    );
    wait_for_peers(&consul, &all, 4, Duration::from_secs(20));
    assert!(agents[0].log_text().contains("Consul is back"));
}

#[test]
fn sigterm_deregisters_from_consul() {
    let consul = ConsulDev::start();
    let mut agents = spawn_agents(2, &consul.agent_config());
    assert!(eventually(Duration::from_secs(20), || consul.passing() == 2));
    let mut leaving = agents.pop().unwrap();
    leaving.signal(libc::SIGTERM);
    assert_eq!(leaving.wait_exit(Duration::from_secs(10)).code(), Some(0));
    // Gone from the catalogue at once, not after DeregisterCriticalServiceAfter.
    assert!(eventually(Duration::from_secs(3), || consul.passing() == 1));
    assert!(eventually(Duration::from_secs(10), || agents[0].peer_count() == 0));
}

/// Labels travel through Consul (meta `label_*`, and `key=value` tags): a selection by label from any agent
/// runs on exactly the labelled agents.
#[test]
fn a_selection_by_label_reaches_exactly_the_agents_labelled_in_consul() {
    let consul = ConsulDev::start();
    let base = consul.agent_config();
    let tagged = format!("{base}labels: {{zone: b}}\n");
    let mut agents = spawn_agents(3, &base);
    agents.extend(spawn_agents(2, &tagged));
    let all: Vec<&ChildAgent> = agents.iter().collect();
    wait_for_peers(&consul, &all, 4, Duration::from_secs(20));
    let peers = agents[0].get_json(&format!("{}/peers", agents[0].service));
    let labelled = peers["peers"].as_array().unwrap().iter().filter(|p| p["labels"]["zone"] == "b").count();
    assert_eq!(labelled, 2, "{peers}");
    let (status, answer) = agents[0]
        .exec("command: sleep/sleep\ndata: {duration: 0s}\nwave: {report: true, select: {labels: {zone: b}}}\n");
    assert_eq!((status, &answer["status"]), (200, &serde_json::json!("delegated")), "{answer}");
    let report = agents[0].wave_report(answer["wave_id"].as_str().unwrap(), 2);
    assert_eq!(report["executions"], 2, "{report}");
    let ran: std::collections::BTreeSet<String> =
        report["selected"].as_array().unwrap().iter().map(|a| format!("http://{}", a.as_str().unwrap())).collect();
    let labelled: std::collections::BTreeSet<String> = agents[3..].iter().map(|a| a.public.clone()).collect();
    assert_eq!(ran, labelled);
}
