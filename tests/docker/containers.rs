//! The swarm as containers on their own addresses (deploy/compose.yaml, images from scripts/image.sh): a wave
//! across them, a partition and its healing, node loss, and crash loops under a restart policy, with the
//! times measured. Runs wherever a Docker engine answers; prints one `skipped: no Docker engine` line
//! elsewhere. All traffic goes to the network the stack makes for itself.

use crate::common;
use crate::{docker_answers, one_at_a_time, root};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

const AGENTS: usize = 8;

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program).args(args).output().unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(output.status.success(), "{program} {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// One Compose project of the test's own, taken down (with everything it made) when dropped.
struct Stack {
    project: String,
    subnet: String,
    token: String,
    http: reqwest::blocking::Client,
}

impl Stack {
    fn up(agents: usize) -> Self {
        Self::up_with(agents, "", false)
    }

    /// A stack named with `suffix`; `net_faults` lets its agents fault their own network (root, NET_ADMIN).
    fn up_with(agents: usize, suffix: &str, net_faults: bool) -> Self {
        let id = std::process::id();
        let project = format!("tarsiertest{id}{suffix}");
        // A subnet of the test's own, away from the default one a developer's stack may use.
        let subnet = format!("172.30.{}.0/24", 100 + (id + suffix.len() as u32) % 100);
        let mut stack = Stack { project, subnet, token: String::new(), http: common::http() };
        let status = Command::new(root().join("scripts/containers.sh"))
            .args(["up", &agents.to_string()])
            .env("TARSIER_NET_FAULTS", if net_faults { "1" } else { "0" })
            .env("TARSIER_PROJECT", &stack.project)
            .env("TARSIER_SUBNET", &stack.subnet)
            .status()
            .unwrap();
        assert!(status.success(), "scripts/containers.sh up failed");
        stack.token = std::fs::read_to_string(root().join("deploy/.token")).unwrap().trim().to_owned();
        stack.http = common::http_with_token(&stack.token);
        stack
    }

    fn network(&self) -> String {
        format!("{}_swarm", self.project)
    }

    /// The containers of a Compose service, in their number order.
    fn containers(&self, service: &str) -> Vec<String> {
        let names = run(
            "docker",
            &[
                "ps",
                "-a",
                "--filter",
                &format!("label=com.docker.compose.project={}", self.project),
                "--filter",
                &format!("label=com.docker.compose.service={service}"),
                "--format",
                "{{.Names}}",
            ],
        );
        let mut names: Vec<String> = names.lines().map(str::to_owned).collect();
        names.sort_by_key(|n| n.rsplit('_').next().and_then(|i| i.parse::<u32>().ok()).unwrap_or(0));
        names
    }

    fn ip(&self, container: &str) -> String {
        run("docker", &["inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container])
    }

    fn consul(&self) -> String {
        format!("http://{}:8500", self.ip(&self.containers("consul")[0]))
    }

    /// Agents passing their check in Consul, by address.
    fn passing(&self) -> Vec<String> {
        let url = format!("{}/v1/health/service/tarsier?passing", self.consul());
        let list: Value = match common::http().get(url).send().and_then(|r| r.json()) {
            Ok(list) => list,
            Err(_) => return Vec::new(),
        };
        list.as_array()
            .map(|entries| entries.iter().filter_map(|e| Some(e["Service"]["Address"].as_str()?.to_owned())).collect())
            .unwrap_or_default()
    }

    /// Waits (bounded) until `check` holds for the passing list; returns how long that took.
    fn wait_passing(&self, within: Duration, check: impl Fn(&[String]) -> bool) -> Duration {
        let within = common::patient(within);
        let started = Instant::now();
        loop {
            let passing = self.passing();
            if check(&passing) {
                return started.elapsed();
            }
            assert!(started.elapsed() < within, "Consul's passing list stayed {passing:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Sends a dedupe wave to `agent` and returns its report once it has settled.
    fn dedupe_wave(&self, agent: &str) -> Value {
        let body =
            "command: sleep/sleep\ndata: {duration: 0s}\nwave: {remain: 10, buddies: 3, dedupe: true, report: true}\n";
        let url = format!("http://{}:8080", self.ip(agent));
        let answer: Value = self.http.post(format!("{url}/exec")).body(body).send().unwrap().json().unwrap();
        let id = answer["wave_id"].as_str().unwrap_or_else(|| panic!("{answer}")).to_owned();
        let mut last = Value::Null;
        for _ in 0..40 {
            std::thread::sleep(Duration::from_millis(250));
            let report: Value = self.http.get(format!("{url}/waves/{id}?entries=true")).send().unwrap().json().unwrap();
            if report["executions"] == last["executions"] && !last.is_null() {
                return report;
            }
            last = report;
        }
        last
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/containers.sh"))
            .arg("down")
            .env("TARSIER_PROJECT", &self.project)
            .env("TARSIER_SUBNET", &self.subnet)
            .status();
    }
}

fn reached(report: &Value) -> Vec<String> {
    let mut addresses: Vec<String> = report["entries"]
        .as_array()
        .map(|e| {
            e.iter().filter_map(|e| e["address"].as_str().map(|a| a.trim_end_matches(":8080").to_owned())).collect()
        })
        .unwrap_or_default();
    addresses.sort();
    addresses
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

#[test]
fn the_swarm_in_containers_survives_partitions_node_loss_and_crash_loops() {
    if !docker_answers() {
        println!("skipped: no Docker engine");
        return;
    }
    let _engine = one_at_a_time();
    let started = Instant::now();
    let stack = Stack::up(AGENTS);
    println!("{AGENTS} agents up and healthy in Consul after {:?}", started.elapsed());
    let agents = stack.containers("tarsier");
    assert_eq!(agents.len(), AGENTS);
    let ips: Vec<String> = agents.iter().map(|a| stack.ip(a)).collect();

    // The container scenarios, through `tarsier scenario run` and their `run:` steps.
    for scenario in ["scenarios/containers-partition.yaml", "scenarios/containers-crash-loop.yaml"] {
        let started = Instant::now();
        let output = Command::new(common::BIN)
            .args(["scenario", "run", scenario, "--target", &format!("http://{}:8080", ips[0])])
            .args(["--token-file", "deploy/.token"])
            .current_dir(root())
            .env("TARSIER_PROJECT", &stack.project)
            .env("TARSIER_SUBNET", &stack.subnet)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{scenario}:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
        println!("{scenario}: passed in {:?}", started.elapsed());
    }

    // A dedupe wave from one container reaches every one, each on its own address.
    let report = stack.dedupe_wave(&agents[0]);
    let mut all = ips.clone();
    all.sort();
    assert_eq!(reached(&report), all, "{report}");
    println!(
        "dedupe wave: {} agents, per hop {}, last arrival {} ms",
        report["agents_reached"], report["per_hop"], report["last_arrival_ms"]
    );

    // Every agent loads the target container, and the origin merges their results.
    let load = "command: net/http_load\ndata: {url: 'http://tarsier-target:8081/health', requests: 50, concurrency: 2}\nwave: {remain: 10, buddies: 3, dedupe: true, report: true}\n";
    let url = format!("http://{}:8080", ips[0]);
    let answer: Value = stack.http.post(format!("{url}/exec")).body(load).send().unwrap().json().unwrap();
    let id = answer["wave_id"].as_str().unwrap_or_else(|| panic!("{answer}")).to_owned();
    let merged = || -> Value {
        let report: Value = stack.http.get(format!("{url}/waves/{id}")).send().unwrap().json().unwrap();
        report["merged"].clone()
    };
    assert!(common::eventually(Duration::from_secs(30), || merged()["agents"] == AGENTS), "{}", merged());
    assert_eq!(merged()["status"]["200"], 50 * AGENTS as u64, "{}", merged());
    println!(
        "http_load wave at the target: {} requests from {} agents, p99 {} ms",
        merged()["completed"],
        merged()["agents"],
        merged()["latency_ms"]["p99"]
    );
    let dial = "command: net/dial\ndata: {address: 'tarsier-target:8080', count: 5}\n";
    let answer: Value = stack.http.post(format!("{url}/exec")).body(dial).send().unwrap().json().unwrap();
    assert_eq!(answer["result"]["opened"], 5, "{answer}");
    stack.http.post(format!("{url}/exec")).body("command: net/close\n").send().unwrap();

    // Partition: three agents cut off the network. Consul marks them critical; the next wave reaches the
    // others and none of them.
    let cut: Vec<&String> = agents[AGENTS - 3..].iter().collect();
    let cut_ips: Vec<String> = ips[AGENTS - 3..].to_vec();
    let network = stack.network();
    for container in &cut {
        run("docker", &["network", "disconnect", &network, container]);
    }
    let detected = stack.wait_passing(Duration::from_secs(60), |p| p.len() == AGENTS - 3);
    let report = stack.dedupe_wave(&agents[0]);
    let got = reached(&report);
    assert_eq!(got.len(), AGENTS - 3, "{report}");
    assert!(got.iter().all(|ip| !cut_ips.contains(ip)), "a cut-off agent was reached: {report}");
    // Healing: the same addresses come back, Consul passes them again, and a wave reaches all.
    let healing = Instant::now();
    for (container, ip) in cut.iter().zip(&cut_ips) {
        run("docker", &["network", "connect", "--ip", ip, &network, container]);
    }
    stack.wait_passing(Duration::from_secs(60), |p| p.len() == AGENTS);
    let healed = healing.elapsed();
    let report = stack.dedupe_wave(&agents[0]);
    assert_eq!(reached(&report), all, "{report}");
    println!("partition of 3: critical in Consul after {detected:?}; all {AGENTS} passing again {healed:?} after reconnecting");

    // Node loss: two agents killed; the next wave reaches the rest, and the killed ones leave Consul's
    // passing list.
    let killed = [&agents[1], &agents[2]];
    let killed_ips = [&ips[1], &ips[2]];
    let killed_at = Instant::now();
    for container in killed {
        run("docker", &["kill", container]);
    }
    let gone = stack.wait_passing(Duration::from_secs(60), |p| p.len() == AGENTS - 2);
    let report = stack.dedupe_wave(&agents[0]);
    let got = reached(&report);
    assert_eq!(got.len(), AGENTS - 2, "{report}");
    assert!(got.iter().all(|ip| !killed_ips.contains(&ip)));
    println!("node loss of 2: out of Consul's passing list {gone:?} after docker kill");

    // A memory limit: one agent's container gets 256 MiB (cgroup memory limit), then a gobble_ram of 512 MiB.
    // The agent reads its cgroup's limit and shrinks (or refuses) instead of being OOM-killed.
    let small = &agents[6];
    run("docker", &["update", "--memory", "256m", "--memory-swap", "256m", small]);
    let url = format!("http://{}:8080/exec", stack.ip(small));
    let answer: Value = stack
        .http
        .post(&url)
        .body("command: heavy_load/gobble_ram\ndata: {size: 512MiB}\n")
        .send()
        .unwrap()
        .json()
        .unwrap();
    let held = answer["result"]["size"].as_u64().unwrap_or(0);
    assert!(answer["status"] == "refused" || (held > 0 && held < 256 << 20), "{answer}");
    assert_eq!(run("docker", &["inspect", "-f", "{{.State.OOMKilled}} {{.RestartCount}}", small]), "false 0");
    println!(
        "gobble_ram 512MiB under a 256 MiB container limit: {} ({} MiB held), not OOM-killed",
        answer["status"],
        held >> 20
    );

    // One /abort to any container stops a spin_cpu wave on all of them.
    let spin = "command: heavy_load/spin_cpu\ndata: {duration: 120s, threads: 1, load: 10}\nwave: {remain: 10, buddies: 3, dedupe: true}\ndetach: true\n";
    let live: Vec<&String> = [&agents[0]].into_iter().chain(&agents[3..]).collect();
    stack.http.post(format!("http://{}:8080/exec", stack.ip(live[0]))).body(spin).send().unwrap();
    let busy = |agent: &String| -> u64 {
        let url = format!("http://{}:8081/runtime", stack.ip(agent));
        stack
            .http
            .get(url)
            .send()
            .and_then(|r| r.json::<Value>())
            .map(|v| v["held"]["busy_threads"].as_u64().unwrap_or(0))
            .unwrap_or(0)
    };
    assert!(
        common::eventually(Duration::from_secs(20), || live.iter().all(|a| busy(a) == 1)),
        "the spin wave did not reach every container"
    );
    // Prometheus (scraping through /sd) sees it on every agent: the spinning thread each was asked for, and
    // the CPU each got (printed: what 2 shared cores give is not the test's business).
    let prometheus = format!("http://{}:9090", stack.ip(&stack.containers("prometheus")[0]));
    let query = |promql: &str| -> Vec<(String, f64)> {
        let answer: Value = common::http()
            .get(format!("{prometheus}/api/v1/query"))
            .query(&[("query", promql)])
            .send()
            .and_then(|r| r.json())
            .unwrap_or(Value::Null);
        answer["data"]["result"]
            .as_array()
            .map(|series| {
                series
                    .iter()
                    .filter_map(|s| {
                        let instance = s["metric"]["instance"].as_str().unwrap_or("").to_owned();
                        Some((instance, s["value"][1].as_str()?.parse().ok()?))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let spinning = || query(r#"tarsier_held{job="tarsier",resource="busy_threads"} == 1"#).len();
    assert!(
        common::eventually(Duration::from_secs(30), || spinning() == live.len()),
        "Prometheus saw {} spinning",
        spinning()
    );
    // The CPU each agent got, once a few scrapes of the spin are in the window. The window is wide and the
    // wait long: on a loaded machine scrapes of targets /sd found again after the node loss come late, and a
    // rate needs two of them (a 10 s window once had only 2 agents' series).
    let cpu = || -> Vec<f64> {
        let rates = query(r#"rate(process_cpu_seconds_total{job="tarsier"}[30s]) > 0"#);
        rates.iter().map(|(_, v)| (v * 1000.0).round() / 1000.0).collect()
    };
    assert!(
        common::eventually(Duration::from_secs(60), || cpu().len() >= live.len()),
        "Prometheus saw no CPU: {:?}",
        cpu()
    );
    let cpu = cpu();
    println!("Prometheus: {} agents spinning 1 thread at 10 %; CPU seconds per second, per agent: {cpu:?}", spinning());
    let aborted = Instant::now();
    stack.http.post(format!("http://{}:8080/abort", stack.ip(live[2]))).send().unwrap();
    assert!(
        common::eventually(Duration::from_secs(10), || live.iter().all(|a| busy(a) == 0)),
        "a container kept spinning"
    );
    println!("abort of a spin_cpu wave on {} containers: every one idle {:?} after", live.len(), aborted.elapsed());

    // The two killed agents are still registered (critical), so /sd lists them and Prometheus scrapes them as
    // down: TarsierAgentsDown (`for: 1m`, evaluated every 2 s here) fires.
    let firing = || query(r#"ALERTS{alertname="TarsierAgentsDown",alertstate="firing"}"#).len() == 1;
    let down = query(r#"count(up{job="tarsier"} == 0)"#);
    assert!(common::eventually(Duration::from_secs(120), firing), "TarsierAgentsDown did not fire; up == 0: {down:?}");
    println!(
        "Prometheus: TarsierAgentsDown firing for the 2 killed agents {:?} after they were killed",
        killed_at.elapsed()
    );

    // Crash loops: a fault in an agent, the restart policy brings it back, it registers again and passes its
    // check. MTTR = from the fault until the container has restarted, the agent answers /health and Consul
    // passes it (the restart is quicker than Consul's 5 s check, so Consul may never see it down).
    // One container per kind: Docker doubles its restart delay with every crash of a container (100 ms,
    // 200 ms, ... until it has run 10 s), so the five crashes of a kind include that backoff, as they would
    // in any crash loop.
    let restarts = |c: &str| run("docker", &["inspect", "-f", "{{.RestartCount}}", c]).parse::<u32>().unwrap();
    for (victim, (kind, body)) in agents[3..6].iter().zip([
        ("segfault", "command: faults/segfault\ndata: {delay: 0s}\n"),
        ("exit", "command: faults/exit\ndata: {code: 3, delay: 0s}\n"),
        ("panic", "command: faults/panic\ndata: {delay: 0s}\n"),
    ]) {
        let mut times = Vec::new();
        let at_start = restarts(victim);
        for _ in 0..5 {
            // A restarted container may get another address from Docker; the agent registers whichever it has.
            let url = format!("http://{}:8080/exec", stack.ip(victim));
            let before = restarts(victim);
            let fault = Instant::now();
            let _ = stack.http.post(&url).body(body).send();
            assert!(common::eventually(Duration::from_secs(30), || restarts(victim) > before), "{kind}: no restart");
            // Read anew on every look: in the instant after a restart the container may have no address yet.
            let quick = common::http_builder().timeout(Duration::from_secs(2)).build().unwrap();
            let healthy = || {
                let ip = stack.ip(victim);
                !ip.is_empty()
                    && quick.get(format!("http://{ip}:8081/health")).send().is_ok_and(|r| r.status().is_success())
            };
            assert!(common::eventually(Duration::from_secs(30), healthy), "{kind}: the agent did not come back");
            let victim_ip = stack.ip(victim);
            stack.wait_passing(Duration::from_secs(60), |p| p.contains(&victim_ip));
            times.push(fault.elapsed());
        }
        println!(
            "crash loop, {kind}: MTTR median {:?} (max {:?}) over 5",
            median(times.clone()),
            times.iter().max().unwrap()
        );
        assert_eq!(restarts(victim) - at_start, 5, "every {kind} restarted the container");
    }

    // Meanwhile every agent shipped its activity log to the stack's JetStream (logging.ship in the shared
    // config): every boot, the crashed and restarted ones included, arrived without a hole.
    let nats = format!("nats://{}:4222", stack.ip(&stack.containers("nats")[0]));
    let verify = || -> Value {
        let output = Command::new(common::BIN).args(["logs", "verify", "--json", "--url", &nats]).output().unwrap();
        serde_json::from_slice(&output.stdout).unwrap_or(Value::Null)
    };
    let whole = |verdict: &Value| {
        verdict["boots"].as_array().is_some_and(|boots| {
            boots.len() > AGENTS && boots.iter().all(|b| b["missing"] == 0 && b["expected"].as_u64() > Some(0))
        })
    };
    let arrived = common::eventually(Duration::from_secs(60), || whole(&verify()));
    let verdict = verify();
    assert!(arrived, "the activity logs in JetStream: {verdict}");
    println!("activity logs in JetStream: {} boots, none with a hole", verdict["boots"].as_array().map_or(0, Vec::len));
}

/// scenarios/network-partition.yaml on a stack of six agents allowed network faults: the agents split the swarm
/// themselves (net/partition, the control plane included), Consul and each half see only their own half, and
/// the host heals them.
#[test]
fn six_agents_partition_themselves_into_halves_and_heal() {
    if !docker_answers() {
        println!("skipped: no Docker engine");
        return;
    }
    let _engine = one_at_a_time();
    let stack = Stack::up_with(6, "np", true);
    let agents = stack.containers("tarsier");
    assert_eq!(agents.len(), 6);
    let first = stack.ip(&agents[0]);
    let started = Instant::now();
    let output = Command::new(common::BIN)
        .args(["scenario", "run", "scenarios/network-partition.yaml", "--target", &format!("http://{first}:8080")])
        .args(["--token-file", "deploy/.token"])
        .current_dir(root())
        .env("TARSIER_PROJECT", &stack.project)
        .env("TARSIER_SUBNET", &stack.subnet)
        .env("TARSIER_NET_FAULTS", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "network-partition:\n{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    println!("scenarios/network-partition.yaml: passed in {:?}\n{stdout}", started.elapsed());
    // Nothing is left in any agent's namespace: every agent answers net/faults with none in force.
    for agent in &agents {
        let url = format!("http://{}:8080/exec", stack.ip(agent));
        let answer: Value = stack.http.post(&url).body("command: net/faults\n").send().unwrap().json().unwrap();
        assert_eq!(answer["result"]["in_force"], 0, "{answer}");
    }
}
