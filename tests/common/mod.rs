//! A real `tarsier agent` child process for integration tests: spawned on 127.0.0.1:0, found through its
//! first log line, observed from outside (/proc/PID), and killed and reaped on drop. Destructive commands
//! only ever run in such a child, never in the test runner.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_tarsier");

static CRYPTO: Once = Once::new();

/// A client that sends `token` on every request.
pub fn http_with_token(token: &str) -> reqwest::blocking::Client {
    http_builder().default_headers(bearer(token)).build().expect("an HTTP client")
}

pub fn bearer(token: &str) -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(reqwest::header::AUTHORIZATION, format!("Bearer {token}").parse().expect("a header"));
    headers
}

pub fn http_builder() -> reqwest::blocking::ClientBuilder {
    CRYPTO.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(60))
}

pub fn http() -> reqwest::blocking::Client {
    CRYPTO.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().expect("an HTTP client")
}

pub struct ChildAgent {
    pub child: Child,
    pub pid: u32,
    /// `http://127.0.0.1:PORT` of the public port.
    pub public: String,
    /// `http://127.0.0.1:PORT` (or https) of the service port.
    pub service: String,
    pub log: Arc<Mutex<Vec<String>>>,
    /// The storage directory, deleted with the agent.
    pub dir: tempfile::TempDir,
    client: reqwest::blocking::Client,
    reaped: Option<ExitStatus>,
}

#[derive(Default)]
pub struct Spawn<'a> {
    /// Extra YAML config lines (the storage dir is always set to a fresh temp dir).
    pub config: &'a str,
    pub args: &'a [&'a str],
    pub env: &'a [(&'a str, &'a str)],
    pub service_scheme: Option<&'a str>,
    pub public_scheme: Option<&'a str>,
    /// The client the agent's helpers use (a token, a CA); the plain one by default.
    pub client: Option<reqwest::blocking::Client>,
    /// A program the agent is started through (`setpriv ...`), its arguments before the agent's binary.
    pub wrapper: &'a [&'a str],
}

impl ChildAgent {
    pub fn spawn() -> Self {
        Self::spawn_with(Spawn::default())
    }

    pub fn spawn_with(opts: Spawn) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let config_path = dir.path().join("tarsier-test.yaml");
        let storage = dir.path().join("storage");
        let config = if opts.config.contains("plugins:") {
            opts.config.to_owned()
        } else {
            format!("plugins:\n  storage:\n    dir: {}\n{}", storage.display(), opts.config)
        };
        std::fs::write(&config_path, config).expect("write the config");
        let mut command = match opts.wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(BIN);
                command
            }
            None => Command::new(BIN),
        };
        command.arg("agent");
        if !opts.args.contains(&"--listen") {
            command.args(["--listen", "127.0.0.1:0"]);
        }
        command
            .args(["--service-listen", "127.0.0.1:0", "--config"])
            .arg(&config_path)
            .args(opts.args)
            .env_remove("TARSIER_LISTEN")
            .env_remove("TARSIER_SERVICE_LISTEN")
            .env("TARSIER_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in opts.env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("spawn tarsier agent");
        let pid = child.id();
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("agent listening") {
                    let _ = tx.send(line.clone());
                }
                lines.lock().unwrap().push(line);
            }
        });
        let first = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("the agent did not start; its log: {:?}", log.lock().unwrap())
        });
        let field = |name: &str| {
            first
                .split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name}= in {first}"))
                .to_owned()
        };
        let scheme = opts.service_scheme.unwrap_or("http");
        let agent = ChildAgent {
            pid,
            public: format!("{}://{}", opts.public_scheme.unwrap_or("http"), field("public")),
            service: format!("{scheme}://{}", field("service")),
            child,
            log,
            dir,
            client: opts.client.unwrap_or_else(http),
            reaped: None,
        };
        // Open the pooled keep-alive connections now, so fd counts taken later do not see them appear.
        agent.request(reqwest::Method::GET, &format!("{}/jobs", agent.public));
        if scheme == "http" {
            agent.request(reqwest::Method::GET, &format!("{}/health", agent.service));
        }
        agent
    }

    pub fn storage_dir(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// POSTs a YAML body to /exec: (status, JSON answer).
    pub fn exec(&self, yaml: &str) -> (u16, Value) {
        self.post("/exec", "application/yaml", yaml.as_bytes().to_vec())
    }

    pub fn post(&self, path: &str, content_type: &str, body: Vec<u8>) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.public))
            .header("content-type", content_type)
            .body(body)
            .send()
            .unwrap_or_else(|err| panic!("POST {path}: {err}; log: {:?}", self.log.lock().unwrap()));
        let status = response.status().as_u16();
        let text = response.text().expect("a body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    pub fn request(&self, method: reqwest::Method, url: &str) -> (u16, String) {
        let response = self.client.request(method, url).send().expect("request");
        (response.status().as_u16(), response.text().expect("a body"))
    }

    pub fn get_json(&self, url: &str) -> Value {
        let (status, text) = self.request(reqwest::Method::GET, url);
        assert_eq!(status, 200, "GET {url}: {text}");
        serde_json::from_str(&text).expect("JSON")
    }

    pub fn runtime(&self) -> Value {
        self.get_json(&format!("{}/runtime", self.service))
    }

    pub fn metrics(&self) -> String {
        let (status, text) = self.request(reqwest::Method::GET, &format!("{}/metrics", self.service));
        assert_eq!(status, 200);
        text
    }

    /// VmRSS of the child in bytes, read from outside.
    pub fn rss_bytes(&self) -> u64 {
        proc_status_kib(self.pid, "VmRSS:") * 1024
    }

    pub fn threads(&self) -> u64 {
        proc_status_kib(self.pid, "Threads:")
    }

    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid)).map(|d| d.count()).unwrap_or(0)
    }

    /// The agent's descriptors open on files under `dir`: unlike [`ChildAgent::fd_count`], blind to the
    /// sockets that come and go with its clients (a keep-alive connection closed as idle on a busy machine).
    pub fn fds_under(&self, dir: &Path) -> usize {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{}/fd", self.pid)) else { return 0 };
        fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok()).filter(|target| target.starts_with(dir)).count()
    }

    /// utime + stime of the child in seconds, from /proc/PID/stat.
    pub fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).expect("stat");
        let after_comm = &stat[stat.rfind(')').expect("comm") + 2..];
        let fields: Vec<&str> = after_comm.split_whitespace().collect();
        // Fields 14 and 15 of stat (1-based), i.e. 11 and 12 after the state field.
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        // SAFETY: sysconf has no preconditions.
        ticks as f64 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
    }

    /// Waits (bounded) for the child to exit.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + patient(within);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.reaped = Some(status);
                return status;
            }
            assert!(Instant::now() < deadline, "the agent did not exit within {within:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe { libc::kill(self.pid as i32, signal) };
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for ChildAgent {
    fn drop(&mut self) {
        if self.reaped.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn proc_status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// How many times slower than a quiet 2-core machine this one may be: `TARSIER_TEST_PATIENCE` (a number >= 1,
/// default 1). CI shares its machine, so every fixed time budget of the tests goes through [`patient`].
pub fn patience() -> f64 {
    static PATIENCE: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *PATIENCE.get_or_init(|| {
        std::env::var("TARSIER_TEST_PATIENCE")
            .ok()
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|p| *p >= 1.0)
            .unwrap_or(1.0)
    })
}

/// A time budget scaled by [`patience`].
pub fn patient(budget: Duration) -> Duration {
    budget.mul_f64(patience())
}

/// Polls `check` every 20 ms until it returns true or `within` (scaled by [`patience`]) passes.
pub fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + patient(within);
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    check()
}

pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir).map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect()).unwrap_or_default()
}

pub const MIB: u64 = 1024 * 1024;

pub mod consul;
pub mod nats;
pub mod nginx;
pub mod prometheus;

/// Starts `n` child agents with the same extra config.
pub fn spawn_agents(n: usize, config: &str) -> Vec<ChildAgent> {
    (0..n).map(|_| ChildAgent::spawn_with(Spawn { config, ..Default::default() })).collect()
}

impl ChildAgent {
    pub fn peer_count(&self) -> u64 {
        self.get_json(&format!("{}/peers", self.service))["count"].as_u64().unwrap_or(0)
    }

    /// Polls the origin's report of `wave_id` until `expected` executions are in (bounded), and returns it.
    pub fn wave_report(&self, wave_id: &str, expected: u64) -> Value {
        let url = format!("{}/waves/{wave_id}", self.public);
        let mut summary = Value::Null;
        eventually(Duration::from_secs(20), || {
            summary = self.get_json(&url);
            summary["executions"].as_u64().unwrap_or(0) >= expected
        });
        // A little longer, so a count over `expected` (a bug) would show.
        std::thread::sleep(Duration::from_millis(300));
        self.get_json(&url)
    }
}

/// A server binary the project's scripts install (`scripts/NAME.sh install`, run by scripts/test.sh): from the
/// environment variable the script's caller exports, the script's cache, or PATH.
pub fn find_tool(name: &str, env: &str, version_arg: &str) -> PathBuf {
    if let Some(bin) = std::env::var_os(env) {
        return bin.into();
    }
    let cache = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(".cache/{name}/root/usr"));
    for cached in [cache.join("bin").join(name), cache.join("sbin").join(name)] {
        if cached.exists() {
            return cached;
        }
    }
    if Command::new(name).arg(version_arg).output().is_ok_and(|o| o.status.success()) {
        return name.into();
    }
    panic!("no {name} binary: run scripts/{name}.sh install (scripts/test.sh does)");
}

/// POSTs a YAML body to `{public}/exec`: the status and the JSON answer.
pub fn post_yaml(http: &reqwest::blocking::Client, public: &str, body: &str) -> (u16, serde_json::Value) {
    let answer = http
        .post(format!("{public}/exec"))
        .header("content-type", "application/yaml")
        .body(body.to_owned())
        .send()
        .unwrap_or_else(|e| panic!("POST {public}/exec: {e}"));
    let status = answer.status().as_u16();
    (status, answer.json().unwrap_or(serde_json::Value::Null))
}

/// `tarsier swarm --agents N` on fixed ports, killed when dropped.
pub struct SwarmProcess {
    pub base: u16,
    pub agents: u16,
    child: std::process::Child,
}

impl SwarmProcess {
    /// `extra`: more arguments of `tarsier swarm` (`--label zone=a,b`).
    pub fn start(agents: u16, extra: &[&str]) -> Self {
        Self::start_with(agents, extra, &http())
    }

    /// As `start`, asking whether it is up with `http` (one that carries the swarm's token, if it has one).
    pub fn start_with(agents: u16, extra: &[&str], http: &reqwest::blocking::Client) -> Self {
        let base = free_port_range(2 * agents);
        let child = Command::new(BIN)
            .args(["swarm", "--agents", &agents.to_string(), "--no-demo", "--base-port", &base.to_string()])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let swarm = SwarmProcess { child, base, agents };
        let peers = format!("http://127.0.0.1:{}/peers", base + agents);
        let joined = eventually(std::time::Duration::from_secs(30), || {
            http.get(&peers).send().and_then(|r| r.json::<serde_json::Value>()).is_ok_and(|p| p["count"] == agents - 1)
        });
        assert!(joined, "the local swarm did not come up");
        swarm
    }

    pub fn public(&self, i: u16) -> String {
        format!("http://127.0.0.1:{}", self.base + i)
    }

    /// How many agents run a job now.
    pub fn busy(&self, http: &reqwest::blocking::Client) -> usize {
        (0..self.agents)
            .filter(|i| {
                let jobs: serde_json::Value =
                    http.get(format!("{}/jobs", self.public(*i))).send().unwrap().json().unwrap();
                !jobs["running"].as_array().unwrap().is_empty()
            })
            .count()
    }
}

impl Drop for SwarmProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's Chromium, for the tests that look at pages (`TARSIER_CHROMIUM_BIN`, set by scripts/test.sh from
/// scripts/chromium.sh, or `chromium` on PATH); `None` where there is none.
pub fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("TARSIER_CHROMIUM_BIN").map(PathBuf::from).filter(|p| p.exists()) {
        return Some(path);
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join("chromium"))
        .find(|candidate| candidate.exists())
}

/// Where tests put the screenshots they take (target/screenshots), for a person to look at.
pub fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target").join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Serves `app` on 127.0.0.1 (a free port) from a thread of its own for the rest of the test; its `host:port`.
pub fn serve_on_loopback(app: axum::Router) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    address
}

/// `count` free ports in a row below the ephemeral range, for `tarsier swarm --base-port`.
pub fn free_port_range(count: u16) -> u16 {
    for _ in 0..50 {
        let base = rand::random_range(20_000..32_000u16);
        if (base..base + count).all(|port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()) {
            return base;
        }
    }
    panic!("no {count} free ports in a row between 20000 and 32000");
}

/// A free port below the ephemeral range (32768 and up), for an agent that must listen on a port known in
/// advance (static peers). A port from binding port 0 is ephemeral: another test's client socket, or an
/// agent on 127.0.0.1:0, can take it between the check and the agent's bind. Never the same port twice in
/// one test process, so a test asking for several gets several.
pub fn fixed_port() -> u16 {
    static GIVEN: Mutex<std::collections::BTreeSet<u16>> = Mutex::new(std::collections::BTreeSet::new());
    for _ in 0..100 {
        let port = rand::random_range(20_000..32_000u16);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
            && GIVEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).insert(port)
        {
            return port;
        }
    }
    panic!("no free port between 20000 and 32000");
}
