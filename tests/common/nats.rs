//! A real nats-server with JetStream for the log-shipping tests, on 127.0.0.1 with a free port and its store
//! in a temporary directory. Stopped and started again on the same port and store (a broker restart). The
//! binary comes from `scripts/nats.sh install` (run by scripts/test.sh): TARSIER_NATS_BIN, the script's
//! cache, or PATH.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Nats {
    child: Option<Child>,
    store: tempfile::TempDir,
    pub port: u16,
    /// In a cluster: this server's name, its route port and the others' route ports.
    cluster: Option<(String, u16, Vec<u16>)>,
    /// The monitoring port (`/healthz`), in a cluster.
    monitor: Option<u16>,
}

impl Nats {
    pub fn start() -> Self {
        let mut nats = Nats {
            child: None,
            store: tempfile::tempdir().unwrap(),
            port: super::fixed_port(),
            cluster: None,
            monitor: None,
        };
        nats.up();
        nats
    }

    /// `n` servers routed to each other on loopback, one JetStream cluster (Raft: a stream of 3 replicas
    /// keeps working while one server is down).
    pub fn cluster(n: usize) -> Vec<Nats> {
        let routes: Vec<u16> = (0..n).map(|_| super::fixed_port()).collect();
        let mut servers: Vec<Nats> = (0..n)
            .map(|i| Nats {
                child: None,
                store: tempfile::tempdir().unwrap(),
                port: super::fixed_port(),
                cluster: Some((
                    format!("n{i}"),
                    routes[i],
                    routes.iter().copied().filter(|r| *r != routes[i]).collect(),
                )),
                monitor: Some(super::fixed_port()),
            })
            .collect();
        for server in &mut servers {
            server.up();
        }
        servers
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) and waits until it takes connections.
    pub fn up(&mut self) {
        let bin = super::find_tool("nats-server", "TARSIER_NATS_BIN", "--version");
        let mut command = Command::new(&bin);
        command.args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"]).arg(self.store.path());
        if let Some((name, route, others)) = &self.cluster {
            let routes: Vec<String> = others.iter().map(|p| format!("nats://127.0.0.1:{p}")).collect();
            command.args(["-n", name, "--cluster_name", "tarsier-test", "--cluster"]);
            command.arg(format!("nats://127.0.0.1:{route}")).arg("--routes").arg(routes.join(","));
        }
        if let Some(monitor) = self.monitor {
            command.args(["-m", &monitor.to_string()]);
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", bin.display()));
        self.child = Some(child);
        let up = super::eventually(Duration::from_secs(20), || {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
        assert!(up, "nats-server did not listen on {}", self.port);
    }

    /// In a cluster, waits until the server says its JetStream is current (`/healthz`: its streams caught up
    /// with their Raft groups), so the next server killed does not leave a group short of a current quorum.
    pub fn wait_current(&self, within: Duration) -> bool {
        let Some(monitor) = self.monitor else { return true };
        let url = format!("http://127.0.0.1:{monitor}/healthz");
        let http = super::http();
        super::eventually(within, || http.get(&url).send().is_ok_and(|r| r.status().is_success()))
    }

    /// Stops the server (SIGKILL: a broker that dies, not one that says goodbye).
    pub fn down(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.down();
    }
}
