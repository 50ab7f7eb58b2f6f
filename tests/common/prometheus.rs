//! A real Prometheus for the tests, on 127.0.0.1 with a free port, scraping what the test names. The binary
//! comes from `scripts/prometheus.sh install` (run by scripts/test.sh): TARSIER_PROMETHEUS_BIN, PATH or the
//! script's cache.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Prometheus {
    child: Child,
    dir: tempfile::TempDir,
    pub url: String,
}

pub fn prometheus_bin() -> PathBuf {
    super::find_tool("prometheus", "TARSIER_PROMETHEUS_BIN", "--version")
}

impl Prometheus {
    /// Starts Prometheus with `scrape_configs` (YAML, indented as a list under scrape_configs:).
    pub fn start(scrape_configs: &str) -> Self {
        Self::start_with(scrape_configs, &[])
    }

    /// Starts Prometheus that takes remote writes at `{url}/api/v1/write` and scrapes nothing.
    pub fn receiver() -> Self {
        Self::start_with("  []\n", &["--web.enable-remote-write-receiver"])
    }

    /// One number of an instant query (none for an empty answer); panics on an error.
    pub fn query(&self, query: &str) -> Option<f64> {
        let answer: serde_json::Value = super::http()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", query)])
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(answer["status"], "success", "{query}: {answer}");
        let result = answer["data"]["result"].as_array().unwrap();
        assert!(result.len() <= 1, "{query} gives {} series: {answer}", result.len());
        result.first().and_then(|series| series["value"][1].as_str()?.parse().ok())
    }

    fn start_with(scrape_configs: &str, args: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = super::fixed_port();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{scrape_configs}"),
        )
        .unwrap();
        let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
        let child = Command::new(prometheus_bin())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start prometheus");
        let prometheus = Prometheus { child, dir, url: format!("http://127.0.0.1:{port}") };
        let client = super::http();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !client.get(format!("{}/-/ready", prometheus.url)).send().is_ok_and(|r| r.status().is_success()) {
            assert!(Instant::now() < deadline, "prometheus is not ready: {}", prometheus.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        prometheus
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Active scrape targets that are up.
    pub fn targets_up(&self) -> usize {
        super::http()
            .get(format!("{}/api/v1/targets", self.url))
            .send()
            .ok()
            .and_then(|r| r.json::<serde_json::Value>().ok())
            .and_then(|v| {
                v["data"]["activeTargets"].as_array().map(|t| t.iter().filter(|t| t["health"] == "up").count())
            })
            .unwrap_or(0)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
