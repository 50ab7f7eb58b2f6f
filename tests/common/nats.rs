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
}

impl Nats {
    pub fn start() -> Self {
        let mut nats = Nats { child: None, store: tempfile::tempdir().unwrap(), port: super::fixed_port() };
        nats.up();
        nats
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) and waits until it takes connections.
    pub fn up(&mut self) {
        let bin = super::find_tool("nats-server", "TARSIER_NATS_BIN", "--version");
        let child = Command::new(&bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(self.store.path())
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
