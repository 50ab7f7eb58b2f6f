//! The control API and the service port of one child agent.

use crate::common;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common::{eventually, ChildAgent, Spawn, BIN};
use serde_json::Value;

#[test]
fn sleep_answers_after_its_duration_with_the_wire_format() {
    let agent = ChildAgent::spawn();
    let (status, answer) = agent.exec("command: sleeping_beauty/sleep\ndata: {duration: 300ms}\n");
    assert_eq!(status, 200, "{answer}");
    for key in ["wave_id", "agent", "command", "status", "result", "forwarded", "elapsed_ms"] {
        assert!(answer.get(key).is_some(), "no {key} in {answer}");
    }
    assert_eq!(answer["command"], "sleep/sleep", "aliases answer with the canonical name");
    assert_eq!(answer["status"], "ok");
    assert!(answer["elapsed_ms"].as_u64().unwrap() >= 300);
    // JSON bodies work too, with a JSON or YAML content type or none; a type a web page can send
    // cross-site unasked (text/plain, a form) is a 415 naming the header, and nothing runs.
    let json = br#"{"command": "sleep/sleep", "data": {"duration": "10ms"}}"#.to_vec();
    assert_eq!(agent.post("/exec", "application/json", json.clone()).0, 200);
    assert_eq!(agent.post("/exec", "application/x-yaml", json.clone()).0, 200);
    let unnamed = common::http().post(format!("{}/exec", agent.public)).body(json.clone()).send().unwrap();
    assert_eq!(unnamed.status(), 200, "no Content-Type is read as YAML");
    for browser_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
        let (status, answer) = agent.post("/exec", browser_type, json.clone());
        assert_eq!((status, answer["field"].as_str()), (415, Some("Content-Type")), "{browser_type}: {answer}");
    }
}

#[test]
fn detached_jobs_are_listed_and_cancellable() {
    let agent = ChildAgent::spawn();
    let (status, job) = agent.exec("command: sleep/sleep\ndata: {duration: 60s}\ndetach: true\n");
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["status"], "running");
    let id = job["job_id"].as_u64().unwrap();
    let jobs = agent.get_json(&format!("{}/jobs", agent.public));
    assert_eq!(jobs["running"][0]["id"], id, "{jobs}");
    assert_eq!(jobs["running"][0]["command"], "sleep/sleep");

    let (status, text) = agent.request(reqwest::Method::DELETE, &format!("{}/jobs/{id}", agent.public));
    assert_eq!(status, 200, "{text}");
    assert!(eventually(Duration::from_secs(5), || {
        agent.get_json(&format!("{}/jobs/{id}", agent.public))["status"] == "cancelled"
    }));
    let (status, text) = agent.request(reqwest::Method::DELETE, &format!("{}/jobs/{id}", agent.public));
    assert_eq!(status, 409, "a finished job cannot be cancelled again: {text}");
    assert!(agent.metrics().contains("tarsier_commands_total{command=\"sleep/sleep\",result=\"cancelled\"} 1"));
}

#[test]
fn a_waiting_client_sees_its_job_cancelled() {
    let agent = ChildAgent::spawn();
    let public = agent.public.clone();
    let canceller = std::thread::spawn(move || {
        let client = common::http();
        for _ in 0..250 {
            let jobs: Value = client.get(format!("{public}/jobs")).send().unwrap().json().unwrap();
            if let Some(id) = jobs["running"][0]["id"].as_u64() {
                client.delete(format!("{public}/jobs/{id}")).send().unwrap();
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    });
    let (status, answer) = agent.exec("command: sleep/sleep\ndata: {duration: 60s}\n");
    assert!(canceller.join().unwrap());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], "cancelled");
    assert!(answer["result"]["slept_ms"].as_u64().unwrap() < 60_000);
}

#[test]
fn abort_releases_everything_the_agent_holds() {
    let agent = ChildAgent::spawn();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let rss_before = agent.rss_bytes();
    let fds_before = agent.fd_count();
    for body in [
        "command: heavy_load/gobble_ram\ndata: {size: 32MiB}\n".to_owned(),
        "command: storage/write\ndata: {amount: 1MiB, files: 3}\n".to_owned(),
        format!("command: net/dial\ndata: {{address: '{address}', count: 4}}\n"),
        "command: faults/deadlock\ndata: {threads: 3, duration: 60s}\ndetach: true\n".to_owned(),
        "command: heavy_load/spin_cpu\ndata: {threads: 1, duration: 60s, load: 10}\ndetach: true\n".to_owned(),
    ] {
        let (status, answer) = agent.exec(&body);
        assert!(status == 200 || status == 202, "{body}: {answer}");
    }
    assert!(eventually(Duration::from_secs(5), || agent.runtime()["held"]["blocked_threads"] == 3));
    let held = agent.runtime()["held"].clone();
    assert_eq!(held["ram_bytes"], 32 * common::MIB);
    assert_eq!(held["files"], 3);
    assert_eq!(held["connections"], 4);

    let (status, aborted) = agent.post("/abort", "application/yaml", Vec::new());
    assert_eq!(status, 200, "{aborted}");
    assert_eq!(aborted["cancelled_jobs"], 2);
    assert!(eventually(Duration::from_secs(5), || {
        let held = agent.runtime()["held"].clone();
        held.as_object().unwrap().values().all(|v| v == 0)
    }));
    assert!(common::files_in(&agent.storage_dir()).is_empty());
    assert!(eventually(Duration::from_secs(5), || agent.fd_count() <= fds_before));
    assert!(agent.rss_bytes() < rss_before + 16 * common::MIB);
    assert!(agent.metrics().contains("tarsier_aborts_total 1"));
}

#[test]
fn service_port_serves_health_metrics_commands_and_runtime() {
    let agent = ChildAgent::spawn();
    let health = agent.get_json(&format!("{}/health", agent.service));
    assert_eq!(health["status"], "ok");

    agent.exec("command: sleep/sleep\ndata: {duration: 0s}\n");
    let metrics = agent.metrics();
    for name in [
        "tarsier_http_requests_total{code=\"200\",listener=\"public\",path=\"/exec\"}",
        "tarsier_commands_total{command=\"sleep/sleep\",result=\"ok\"} 1",
        "tarsier_command_duration_seconds_bucket{command=\"sleep/sleep\"",
        "tarsier_running_jobs 0",
        "tarsier_held{resource=\"ram_bytes\"} 0",
        "tarsier_aborts_total 0",
        "tarsier_build_info{version=",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(metrics.contains(name), "no {name} in\n{metrics}");
    }

    let catalogue = agent.get_json(&format!("{}/commands", agent.service));
    let commands = catalogue["commands"].as_array().unwrap();
    let names: Vec<&str> = commands.iter().map(|c| c["command"].as_str().unwrap()).collect();
    for expected in [
        "heavy_load/gobble_ram",
        "heavy_load/ram_stats",
        "heavy_load/free_ram",
        "heavy_load/spin_cpu",
        "faults/deadlock",
        "faults/segfault",
        "faults/panic",
        "faults/abort",
        "faults/exit",
        "net/dial",
        "net/stats",
        "net/close",
        "storage/open_fd",
        "storage/write",
        "storage/read",
        "storage/fs_stats",
        "storage/close_fd",
        "sleep/sleep",
    ] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    let gobble = commands.iter().find(|c| c["command"] == "heavy_load/gobble_ram").unwrap();
    assert!(!gobble["description"].as_str().unwrap().is_empty());
    let ratio = gobble["fields"].as_array().unwrap().iter().find(|f| f["name"] == "ratio").unwrap();
    assert_eq!(ratio["default"], 0.5);
    assert_eq!(ratio["type"], "number");
    let sleep = commands.iter().find(|c| c["command"] == "sleep/sleep").unwrap();
    assert_eq!(sleep["aliases"][0], "sleeping_beauty/sleep");
    assert_eq!(sleep["fields"][0]["type"], "Duration");

    let runtime = agent.runtime();
    assert_eq!(runtime["process"]["pid"], agent.pid);
    assert!(runtime["process"]["rss_bytes"].as_u64().unwrap() > 0);
    assert!(runtime["process"]["threads"].as_u64().unwrap() > 0);
    assert!(runtime["process"]["open_fds"].as_u64().unwrap() > 0);
    assert!(runtime["process"]["mmap_regions"].as_u64().unwrap() > 0);
    assert_eq!(runtime["version"], env!("CARGO_PKG_VERSION"));
    assert!(runtime["uptime_seconds"].as_f64().unwrap() >= 0.0);
    assert_eq!(runtime["held"]["ram_regions"], 0);
}

#[test]
fn duration_limit_is_a_400() {
    let agent = ChildAgent::spawn_with(Spawn { config: "limits:\n  max_duration: 10s\n", ..Default::default() });
    let (status, answer) = agent.exec("command: heavy_load/spin_cpu\ndata: {duration: 1m}\n");
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["field"], "data.duration");
    assert!(answer["error"].as_str().unwrap().contains("limits.max_duration (10s)"), "{answer}");
}

#[test]
fn service_port_speaks_tls_when_configured() {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let config = format!("tls:\n  cert: {}\n  key: {}\n", cert_path.display(), key_path.display());
    let agent = ChildAgent::spawn_with(Spawn { config: &config, service_scheme: Some("https"), ..Default::default() });

    let _ = common::http();
    let root = reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap();
    let trusting =
        reqwest::blocking::Client::builder().tls_certs_only([root]).timeout(Duration::from_secs(10)).build().unwrap();
    let health: Value = trusting.get(format!("{}/health", agent.service)).send().unwrap().json().unwrap();
    assert_eq!(health["status"], "ok");
    // Plain HTTP to a TLS port does not get an answer.
    let plain = agent.service.replace("https://", "http://");
    assert!(common::http().get(format!("{plain}/health")).send().map(|r| !r.status().is_success()).unwrap_or(true));
}

#[test]
fn flags_win_over_env_which_wins_over_the_file() {
    // The file says one name, the environment another, the flag a third.
    let agent = ChildAgent::spawn_with(Spawn {
        config: "name: from-file\n",
        env: &[("TARSIER_NAME", "from-env")],
        args: &["--name", "from-flag"],
        ..Default::default()
    });
    assert_eq!(agent.runtime()["agent"], "from-flag");
    let agent = ChildAgent::spawn_with(Spawn {
        config: "name: from-file\n",
        env: &[("TARSIER_NAME", "from-env")],
        ..Default::default()
    });
    assert_eq!(agent.runtime()["agent"], "from-env");
    let agent = ChildAgent::spawn_with(Spawn { config: "name: from-file\n", ..Default::default() });
    assert_eq!(agent.runtime()["agent"], "from-file");
}

#[test]
fn a_bad_config_file_stops_the_agent_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "limits:\n  max_ram: lots\n").unwrap();
    let out = Command::new(BIN)
        .args(["agent", "--listen", "127.0.0.1:0", "--service-listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("invalid config") && stderr.contains("max_ram"), "{stderr}");
}

#[test]
fn exec_cli_posts_a_file_or_stdin_and_abort_cli_aborts() {
    let agent = ChildAgent::spawn();
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("sleep.yaml");
    std::fs::write(&body, "command: sleep/sleep\ndata: {duration: 10ms}\n").unwrap();
    let out = Command::new(BIN).args(["exec", "--output", "json", &agent.public]).arg(&body).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["status"], "ok");

    let mut child = Command::new(BIN)
        .args(["exec", &agent.public, "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"command: sleep/nap\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(2), "an unknown command is a bad body: exit 2");
    assert!(String::from_utf8_lossy(&out.stdout).contains("unknown command"));

    let out = Command::new(BIN).args(["abort", &agent.public]).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("job(s) cancelled"), "{out:?}");
    let out = Command::new(BIN).args(["abort", "--json", &agent.public]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("cancelled_jobs"), "{out:?}");
}

#[test]
fn help_explains_every_subcommand() {
    let out = Command::new(BIN).arg("--help").output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for word in ["agent", "exec", "abort", "demo", "TARSIER_"] {
        assert!(help.contains(word), "no {word} in --help:\n{help}");
    }
    let out = Command::new(BIN).args(["agent", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for word in ["--listen", "--service-listen", "--config", "TARSIER_LISTEN", "--storage-dir"] {
        assert!(help.contains(word), "no {word} in agent --help:\n{help}");
    }
    // Every subcommand's help ends with an example; `man --dir` writes a page for each, with it.
    let subcommands = [
        "agent",
        "exec",
        "abort",
        "commands",
        "jobs",
        "job",
        "cancel",
        "probe",
        "completions",
        "man",
        "demo",
        "swarm",
        "scenario",
        "scenario run",
        "scenario check",
        "scenario chart",
    ];
    for sub in subcommands {
        let out = Command::new(BIN).args(sub.split(' ')).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("Example:\n  ") && help.contains("tarsier "),
            "no example in `tarsier {sub} --help`:\n{help}"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN).args(["man", "--dir"]).arg(dir.path()).output().unwrap();
    assert!(out.status.success(), "{out:?}");
    for sub in subcommands {
        let page = dir.path().join(format!("tarsier-{}.1", sub.replace(' ', "-")));
        let text = std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        assert!(text.contains("Example"), "{}", page.display());
    }
    let exec = std::fs::read_to_string(dir.path().join("tarsier-exec.1")).unwrap();
    assert!(exec.contains("Exit status") && exec.contains("\\-\\-report"), "{exec}");
}
