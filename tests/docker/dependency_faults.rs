//! The guide's Compose example of dependency faults (deploy/compose.dependency-faults.yaml), run as a user
//! would: a service (nginx) calls its dependency (another nginx) through a tarsier agent's fault proxy, and
//! what the service's own clients see follows the faults put on the proxy. Prints one `skipped: no Docker
//! engine` line where none answers. All traffic stays on the network the stack makes.

use crate::common;
use crate::{docker_answers, one_at_a_time, root};
use std::process::Command;
use std::time::{Duration, Instant};

struct Example {
    project: String,
    _token: tempfile::NamedTempFile,
    token_path: String,
}

impl Example {
    /// `docker compose` (or, where that plugin is missing, `docker-compose`, as scripts/containers.sh does).
    fn try_compose(&self, args: &[&str]) -> std::process::Output {
        let plugin = Command::new("docker").args(["compose", "version"]).output().is_ok_and(|o| o.status.success());
        let mut command = if plugin {
            let mut docker = Command::new("docker");
            docker.arg("compose");
            docker
        } else {
            Command::new("docker-compose")
        };
        command
            .args(["-p", &self.project, "-f"])
            .arg(root().join("deploy/compose.dependency-faults.yaml"))
            .args(args)
            .env("TARSIER_TOKEN_FILE", &self.token_path)
            .output()
            .unwrap()
    }

    fn compose(&self, args: &[&str]) -> String {
        let output = self.try_compose(args);
        assert!(output.status.success(), "compose {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// `127.0.0.1:PORT` a service's port is published on.
    fn published(&self, service: &str, port: &str) -> String {
        self.compose(&["port", service, port])
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.try_compose(&["down", "-v", "--timeout", "5"]);
    }
}

#[test]
fn the_compose_example_puts_a_fault_proxy_between_a_service_and_its_dependency() {
    if !docker_answers() {
        println!("skipped: no Docker engine");
        return;
    }
    let _engine = one_at_a_time();
    let images = Command::new(root().join("scripts/image.sh")).status().unwrap();
    assert!(images.success(), "scripts/image.sh failed");
    let token = "dependency-faults-example-token-0123456789";
    let mut token_file = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut token_file, token.as_bytes()).unwrap();
    // The agent runs as user 10001: the token must be readable to it.
    std::fs::set_permissions(token_file.path(), std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let example = Example {
        project: format!("tarsierdep{}", std::process::id()),
        token_path: token_file.path().display().to_string(),
        _token: token_file,
    };
    example.compose(&["up", "-d"]);
    let api = format!("http://{}", example.published("api", "8090"));
    let agent = format!("http://{}", example.published("chaos", "8080"));
    let http = common::http_with_token(token);
    let up = common::eventually(Duration::from_secs(60), || {
        http.get(format!("{agent}/jobs")).send().is_ok_and(|a| a.status().is_success())
    });
    assert!(up, "the chaos agent did not answer");
    let exec = |body: &str| {
        let answer = http
            .post(format!("{agent}/exec"))
            .header("content-type", "application/yaml")
            .body(body.to_owned())
            .send()
            .unwrap();
        let status = answer.status().as_u16();
        let text = answer.text().unwrap();
        assert_eq!(status, 200, "{body}: {text}");
    };
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let call = |method: reqwest::Method, path: &str| {
        let started = Instant::now();
        let answer = client.request(method, format!("{api}{path}")).body("{}").send().unwrap();
        (answer.status().as_u16(), answer.text().unwrap(), started.elapsed())
    };

    // Before the proxy exists the service cannot reach its dependency; with it, it can.
    assert_eq!(call(reqwest::Method::GET, "/pay").0, 502);
    exec("command: net/proxy_create\ndata: {name: payments, protocol: http, listen: '0.0.0.0:18080', upstream: 'payments:8090', duration: 10m}\n");
    let (status, body, _) = call(reqwest::Method::POST, "/pay");
    assert_eq!((status, body.as_str()), (200, r#"{"paid": true}"#));

    // The dependency answers 503 to every POST /pay: the service's clients see it; its GETs do not.
    exec("command: net/toxic_add\ndata: {proxy: payments, name: down, type: http_respond, attributes: {status: 503, body: 'payments down', match: {method: POST, path_prefix: /pay}}}\n");
    assert_eq!(call(reqwest::Method::POST, "/pay").0, 503);
    assert_eq!(call(reqwest::Method::GET, "/pay").0, 200);

    // The dependency answers 2 s late: the service's calls wait for it.
    exec("command: net/proxy_reset\n");
    exec("command: net/toxic_add\ndata: {proxy: payments, type: http_delay, attributes: {delay: 2000}}\n");
    let (status, _, took) = call(reqwest::Method::POST, "/pay");
    assert!(status == 200 && took >= Duration::from_millis(1900), "{status} in {took:?}");

    // /abort takes the proxy away: the service is cut off from its dependency again.
    let aborted = http
        .post(format!("{agent}/abort"))
        .header("content-type", "application/json")
        .body("{\"local\": true}")
        .send()
        .unwrap();
    assert!(aborted.status().is_success());
    assert_eq!(call(reqwest::Method::GET, "/pay").0, 502);
}
