//! A real Consul dev agent for the tests, on 127.0.0.1 with free ports. The binary comes from
//! `scripts/consul.sh install` (run by scripts/test.sh), which sets nothing global: it is found through
//! TARSIER_CONSUL_BIN, PATH, or the script's cache.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct ConsulDev {
    child: Option<Child>,
    bin: PathBuf,
    ports: [u16; 4],
    data: tempfile::TempDir,
    /// `127.0.0.1:PORT` of the HTTP API.
    pub address: String,
    /// With ACLs on (default deny): the management token.
    acl_master: Option<String>,
}

fn free_port() -> u16 {
    super::fixed_port()
}

pub fn consul_bin() -> PathBuf {
    super::find_tool("consul", "TARSIER_CONSUL_BIN", "version")
}

impl ConsulDev {
    pub fn start() -> Self {
        Self::start_as(None)
    }

    /// A dev agent with ACLs on and a default-deny policy: nothing is allowed without a token, and `master`
    /// may do everything.
    pub fn start_with_acl(master: &str) -> Self {
        Self::start_as(Some(master.to_owned()))
    }

    fn start_as(acl_master: Option<String>) -> Self {
        let ports = [free_port(), free_port(), free_port(), free_port()];
        let mut consul = ConsulDev {
            child: None,
            bin: consul_bin(),
            ports,
            data: tempfile::tempdir().unwrap(),
            address: format!("127.0.0.1:{}", ports[0]),
            acl_master,
        };
        consul.launch();
        consul
    }

    /// `/v1/catalog/service/NAME`: every registered instance, as Consul's catalogue has it.
    pub fn catalogue(&self, service: &str) -> serde_json::Value {
        super::http()
            .get(format!("http://{}/v1/catalog/service/{service}", self.address))
            .send()
            .unwrap()
            .json()
            .unwrap()
    }

    fn launch(&mut self) {
        let [http, lan, wan, server] = self.ports;
        let log = std::fs::File::create(self.data.path().join("consul.log")).unwrap();
        let child = Command::new(&self.bin)
            .args([
                "agent",
                "-dev",
                "-bind",
                "127.0.0.1",
                "-client",
                "127.0.0.1",
                "-dns-port",
                "-1",
                "-grpc-port",
                "-1",
            ])
            .args(["-http-port", &http.to_string(), "-serf-lan-port", &lan.to_string()])
            .args(["-serf-wan-port", &wan.to_string(), "-server-port", &server.to_string()])
            .args(self.acl_master.iter().flat_map(|master| {
                let acl = format!(
                    "acl {{ enabled = true default_policy = \"deny\" down_policy = \"deny\" tokens {{ master = \"{master}\" agent = \"{master}\" }} }}"
                );
                ["-hcl".to_owned(), acl]
            }))
            .arg("-data-dir")
            .arg(self.data.path().join("data"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start consul");
        self.child = Some(child);
        let client = super::http();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let leader = client
                .get(format!("http://{}/v1/status/leader", self.address))
                .send()
                .ok()
                .and_then(|r| r.text().ok())
                .unwrap_or_default();
            if leader.contains(':') {
                return;
            }
            assert!(Instant::now() < deadline, "consul did not elect itself: {}", self.log());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts Consul again on the same ports, with its state lost (as a dev agent loses it).
    pub fn restart(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(self.data.path().join("data"));
        self.launch();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.path().join("consul.log")).unwrap_or_default()
    }

    /// Passing instances of the `tarsier` service, as Consul sees them.
    pub fn passing(&self) -> usize {
        self.get_json("/v1/health/service/tarsier?passing=1").as_array().map_or(0, |a| a.len())
    }

    /// Consul's own view of the `tarsier` checks that do not pass: "ID status: output" lines, for a failure
    /// message (a check that times out, is refused, or has not run yet reads differently).
    pub fn failing_checks(&self) -> String {
        let catalogue = self.get_json("/v1/health/checks/tarsier");
        // The catalogue is what agents read; the local agent's own state (what its check runner last saw)
        // tells a check that has not run from one whose result has not reached the catalogue yet.
        let local = self.get_json("/v1/agent/checks");
        let log = self.log();
        let warnings: Vec<&str> = log.lines().filter(|l| l.contains("[WARN]") || l.contains("[ERROR]")).collect();
        format!(
            "{}\nin Consul's local agent:\n{}\nConsul's last warnings:\n{}",
            not_passing(catalogue.as_array().into_iter().flatten()),
            not_passing(local.as_object().into_iter().flat_map(|m| m.values())),
            warnings[warnings.len().saturating_sub(15)..].join("\n")
        )
    }

    fn get_json(&self, path: &str) -> serde_json::Value {
        super::http()
            .get(format!("http://{}{path}", self.address))
            .send()
            .ok()
            .and_then(|r| r.json::<serde_json::Value>().ok())
            .unwrap_or_default()
    }

    /// The agent config that makes an agent use this Consul, with checks fast enough for tests.
    pub fn agent_config(&self) -> String {
        format!("discovery:\n  consul:\n    address: {}\n    check_interval: 1s\n    wait: 2s\n", self.address)
    }
}

impl Drop for ConsulDev {
    fn drop(&mut self) {
        self.stop();
    }
}

/// "ID status: output" lines of the checks that do not pass.
fn not_passing<'a>(checks: impl Iterator<Item = &'a serde_json::Value>) -> String {
    let lines: Vec<String> = checks
        .filter(|c| c["Status"] != "passing")
        .map(|c| format!("{} {}: {}", c["ServiceID"], c["Status"], c["Output"].as_str().unwrap_or("").trim()))
        .collect();
    lines.join("\n")
}
