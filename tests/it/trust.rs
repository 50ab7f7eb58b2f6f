//! Nothing found is trusted: rogue Consul registrations, impostor and relayed static peers, captured copies
//! sent again, and Consul with ACLs on. Child agents on 127.0.0.1 and a real Consul dev agent; the rogues
//! are listeners of the test's own that count what reaches them.

use std::io::Read as _;
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tarsier::credentials::{SwarmKey, Token};

use crate::common::{self, eventually, ChildAgent, Spawn};

const TOKEN: &str = "trust-token-0123456789abcdef";

fn token_file(dir: &std::path::Path, token: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let path = dir.join(format!("token-{}", token.len()));
    std::fs::write(&path, format!("{token}\n")).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

/// `n` agents of one swarm (the token in `token`) with the same extra `config`.
fn swarm_of(n: usize, config: &str, token: &std::path::Path) -> Vec<ChildAgent> {
    (0..n)
        .map(|_| {
            ChildAgent::spawn_with(Spawn {
                config,
                args: &["--token-file", token.to_str().unwrap()],
                client: Some(common::http_with_token(TOKEN)),
                ..Default::default()
            })
        })
        .collect()
}

/// A rogue: a listener that counts the connections it gets and the bytes they carry.
struct Rogue {
    address: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
    bytes: Arc<AtomicUsize>,
}

impl Rogue {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let (connections, bytes) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (c, b) = (connections.clone(), bytes.clone());
        std::thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                c.fetch_add(1, Ordering::SeqCst);
                let b = b.clone();
                std::thread::spawn(move || {
                    stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
                    let mut buffer = [0u8; 4096];
                    while let Ok(n) = stream.read(&mut buffer) {
                        if n == 0 {
                            break;
                        }
                        b.fetch_add(n, Ordering::SeqCst);
                    }
                });
            }
        });
        Rogue { address, connections, bytes }
    }

    fn reached(&self) -> (usize, usize) {
        (self.connections.load(Ordering::SeqCst), self.bytes.load(Ordering::SeqCst))
    }
}

fn register(consul: &common::consul::ConsulDev, registration: Value, token: Option<&str>) -> u16 {
    let mut request = common::http().put(format!("http://{}/v1/agent/service/register", consul.address));
    if let Some(token) = token {
        request = request.header("X-Consul-Token", token);
    }
    request.json(&registration).send().unwrap().status().as_u16()
}

/// The issue's first attack: anyone who can write to Consul registers a `tarsier` instance with tarsier's meta
/// (or the reference's `http://` form) and waited for the swarm's token to arrive with every copy. Now each
/// rogue is refused with its reason in `/peers`, receives not one connection through a wave and an abort, and
/// the wave still reaches every real agent.
#[test]
fn rogue_consul_registrations_receive_nothing_and_the_swarm_reaches_every_agent() {
    let consul = common::consul::ConsulDev::start();
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), TOKEN);
    let config = consul.agent_config();
    let agents = swarm_of(3, &config, &token);
    assert!(
        eventually(Duration::from_secs(20), || agents.iter().all(|a| a.peer_count() == 2)),
        "the swarm did not form"
    );
    // A real agent's proof, copied onto a rogue with another id and address, proves nothing.
    let catalogue = consul.catalogue("tarsier");
    let copied_proof =
        catalogue[0]["ServiceMeta"]["tarsier_member"].as_str().expect("agents register a proof").to_owned();
    let rogues: Vec<Rogue> = (0..4).map(|_| Rogue::start()).collect();
    let meta = |proof: Option<&str>| {
        let mut meta = json!({"proto": "h2c", "service_port": "1"});
        if let Some(proof) = proof {
            meta["tarsier_member"] = json!(proof);
        }
        meta
    };
    let registrations = [
        json!({"ID": "rogue-h2c", "Name": "tarsier", "Address": "127.0.0.1", "Port": rogues[0].address.port(), "Meta": meta(None)}),
        json!({"ID": "rogue-forged", "Name": "tarsier", "Address": "127.0.0.1", "Port": rogues[1].address.port(), "Meta": meta(Some(&"0".repeat(64)))}),
        json!({"ID": "rogue-copied", "Name": "tarsier", "Address": "127.0.0.1", "Port": rogues[2].address.port(), "Meta": meta(Some(&copied_proof))}),
        json!({"ID": "rogue-http", "Name": "tarsier", "Address": "http://127.0.0.1", "Port": rogues[3].address.port()}),
    ];
    for registration in registrations {
        assert_eq!(register(&consul, registration, None), 200);
    }
    let refused = |agent: &ChildAgent| agent.get_json(&format!("{}/peers", agent.service))["refused"].clone();
    assert!(
        eventually(Duration::from_secs(20), || agents
            .iter()
            .all(|a| refused(a).as_array().is_some_and(|r| r.len() == 4))),
        "the rogues were not refused: {}",
        refused(&agents[0])
    );
    let reasons = refused(&agents[0]).to_string();
    for why in ["carries no membership proof", "does not hold", "compat.reference_peers"] {
        assert!(reasons.contains(why), "{why}: {reasons}");
    }
    for agent in &agents {
        assert_eq!(agent.peer_count(), 2, "a rogue became a peer");
    }

    let (status, answer) = agents[0].exec(
        "command: sleep/sleep\ndata: {duration: 0s}\nwave: {remain: 5, buddies: 3, dedupe: true, report: true}\n",
    );
    assert_eq!(status, 200, "{answer}");
    let report = agents[0].wave_report(answer["wave_id"].as_str().unwrap(), 3);
    assert_eq!(report["agents_reached"], 3, "{report}");
    let (status, aborted) = agents[1].post("/abort", "application/yaml", Vec::new());
    assert_eq!(status, 200, "{aborted}");
    std::thread::sleep(common::patient(Duration::from_millis(500)));
    for (rogue, name) in rogues.iter().zip(["h2c", "forged proof", "copied proof", "http://"]) {
        assert_eq!(rogue.reached(), (0, 0), "the {name} rogue was reached");
    }
}

/// A static peer must answer a challenge with the swarm key before it gets a copy: an agent of another swarm
/// (another token) and a relay in front of a real agent of this swarm (its answer names the real agent's
/// address, not the relay's) are refused, and neither the impostor nor the relayed agent runs anything.
#[test]
fn impostor_and_relayed_static_peers_get_no_copy() {
    let dir = tempfile::tempdir().unwrap();
    let ours = token_file(dir.path(), TOKEN);
    let theirs = token_file(dir.path(), "another-swarm-token-0123456789");
    let impostor = ChildAgent::spawn_with(Spawn {
        args: &["--token-file", theirs.to_str().unwrap()],
        client: Some(common::http_with_token("another-swarm-token-0123456789")),
        ..Default::default()
    });
    let relayed = ChildAgent::spawn_with(Spawn {
        args: &["--token-file", ours.to_str().unwrap()],
        client: Some(common::http_with_token(TOKEN)),
        ..Default::default()
    });
    let relay = relay_to(relayed.public.trim_start_matches("http://").to_owned());
    let peers = format!("{},{relay}", impostor.public.trim_start_matches("http://"));
    let sender = ChildAgent::spawn_with(Spawn {
        args: &["--token-file", ours.to_str().unwrap(), "--peers", &peers],
        client: Some(common::http_with_token(TOKEN)),
        ..Default::default()
    });
    let (status, answer) = sender.exec("command: sleep/sleep\ndata: {duration: 0s}\nwave: {remain: 1, buddies: 2}\n");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["forward"]["accepted"], 0, "{answer}");
    let refused = sender.get_json(&format!("{}/peers", sender.service))["refused"].to_string();
    assert!(refused.contains("does not have the swarm key"), "{refused}");
    assert!(refused.contains("a relay?"), "{refused}");
    // `tarsier status` asks the same proof before the token goes to a peer: both are shown unproven, and
    // neither was asked for its status.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tarsier"))
        .args(["status", "--json", "--token-file", ours.to_str().unwrap(), &sender.public])
        .output()
        .unwrap();
    let view: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(out.status.code(), Some(1), "an unproven agent is a failed status: {view}");
    let states: Vec<&str> = view["agents"].as_array().unwrap().iter().map(|a| a["state"].as_str().unwrap()).collect();
    assert_eq!((states.len(), states.iter().filter(|s| **s == "unproven").count()), (3, 2), "{view}");
    for (agent, name) in [(&impostor, "impostor"), (&relayed, "relayed agent")] {
        let metrics = agent.metrics();
        assert!(!metrics.contains("path=\"/exec\""), "the {name} was sent a copy:\n{metrics}");
        assert!(!metrics.contains("path=\"/status\""), "the {name} was asked with the token:\n{metrics}");
    }
}

/// Forwards every connection to `target`, both ways: a man in the middle that can only pass bytes on.
fn relay_to(target: String) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(&target) else { continue };
            for (mut from, mut to) in [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)] {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            }
        }
    });
    address
}

/// Agents sign their copies with a key derived from the token; a signed copy is taken once, for its own
/// route and body, while fresh. A copy captured and sent again, altered, sent to another route, expired, or
/// signed by another swarm is a 401, and only the first one ran.
#[test]
fn a_signed_copy_is_taken_once_for_its_own_route_and_body() {
    let dir = tempfile::tempdir().unwrap();
    let token = token_file(dir.path(), TOKEN);
    let agent = ChildAgent::spawn_with(Spawn {
        args: &["--token-file", token.to_str().unwrap()],
        client: Some(common::http_with_token(TOKEN)),
        ..Default::default()
    });
    let key = SwarmKey::from_token(&Token::new(TOKEN).unwrap());
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let copy = br#"{"command":"sleep/sleep","data":{"duration":"0s"},"wave":{"id":"captured1","hop":1,"remain":0,"buddies":1}}"#;
    let send = |path: &str, signature: &str, body: &[u8]| {
        let response = common::http()
            .post(format!("{}{path}", agent.public))
            .header("content-type", "application/json")
            .header("tarsier-signature", signature)
            .body(body.to_vec())
            .send()
            .unwrap();
        let status = response.status().as_u16();
        (status, response.text().unwrap())
    };
    let signature = key.sign("POST", "/exec", copy, now());
    let (status, answer) = send("/exec", &signature, copy);
    assert!(status == 200 || status == 202, "a fresh signed copy is taken: {status} {answer}");
    let (status, answer) = send("/exec", &signature, copy);
    assert_eq!(status, 401, "the same copy again: {answer}");
    assert!(answer.contains("replay"), "{answer}");
    let altered = copy.to_vec().iter().map(|&b| if b == b'0' { b'9' } else { b }).collect::<Vec<u8>>();
    let fresh = key.sign("POST", "/exec", copy, now());
    assert_eq!(send("/exec", &fresh, &altered).0, 401, "another body under a copy's signature");
    assert_eq!(send("/abort", &fresh, copy).0, 401, "another route under a copy's signature");
    let old = key.sign("POST", "/exec", copy, now() - 120_000);
    let (status, answer) = send("/exec", &old, copy);
    assert_eq!(status, 401, "{answer}");
    assert!(answer.contains("expired"), "{answer}");
    let future = key.sign("POST", "/exec", copy, now() + 600_000);
    let (status, answer) = send("/exec", &future, copy);
    assert_eq!(status, 401, "a signature from a clock 10 minutes ahead: {answer}");
    let stranger = SwarmKey::from_token(&Token::new("another-swarm-token-0123456789").unwrap());
    assert_eq!(send("/exec", &stranger.sign("POST", "/exec", copy, now()), copy).0, 401);
    let listing =
        common::http().get(format!("{}/jobs", agent.public)).header("tarsier-signature", &fresh).send().unwrap();
    assert_eq!(listing.status(), 401, "only copies, aborts and reports may come signed");
    let metrics = agent.metrics();
    let ran: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("tarsier_commands_total") && l.contains("sleep/sleep"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(ran, 1.0, "only the first copy ran:\n{metrics}");
}

/// Consul with ACLs on and a default-deny policy, the first line of defense: agents with an ACL token
/// (from a file) register and find each other; a registration without a token is refused by Consul itself.
#[test]
fn agents_register_with_a_consul_acl_token_and_strangers_cannot() {
    let master = "0d1d4c4a-5f6e-4b1a-9c2d-7e8f9a0b1c2d";
    let consul = common::consul::ConsulDev::start_with_acl(master);
    let http = common::http();
    let as_master = |method: reqwest::Method, path: &str, body: Value| -> Value {
        let response = http
            .request(method, format!("http://{}{path}", consul.address))
            .header("X-Consul-Token", master)
            .json(&body)
            .send()
            .unwrap();
        assert!(response.status().is_success(), "{path}: {}", response.status());
        response.json().unwrap_or(Value::Null)
    };
    let rules = r#"service "tarsier" { policy = "write" } service_prefix "" { policy = "read" } node_prefix "" { policy = "read" }"#;
    as_master(reqwest::Method::PUT, "/v1/acl/policy", json!({"Name": "tarsier-agents", "Rules": rules}));
    let created = as_master(reqwest::Method::PUT, "/v1/acl/token", json!({"Policies": [{"Name": "tarsier-agents"}]}));
    let acl_token = created["SecretID"].as_str().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let acl_file = dir.path().join("consul-token");
    std::fs::write(&acl_file, &acl_token).unwrap();
    let token = token_file(dir.path(), TOKEN);
    let config = format!("{}    token_file: {}\n", consul.agent_config(), acl_file.display());
    let agents = swarm_of(2, &config, &token);
    assert!(
        eventually(Duration::from_secs(20), || agents.iter().all(|a| a.peer_count() == 1)),
        "agents with the ACL token did not find each other: {}",
        consul.log()
    );
    let rogue = json!({"ID": "rogue", "Name": "tarsier", "Address": "127.0.0.1", "Port": 1, "Meta": {"proto": "h2c"}});
    assert_eq!(register(&consul, rogue.clone(), None), 403, "Consul took a registration without a token");
    let anonymous = http.get(format!("http://{}/v1/health/service/tarsier", consul.address)).send().unwrap();
    let seen: Value = anonymous.json().unwrap_or(Value::Null);
    assert_eq!(seen, json!([]), "an anonymous reader saw the swarm");
    let (status, answer) =
        agents[0].exec("command: sleep/sleep\ndata: {duration: 0s}\nwave: {remain: 1, buddies: 1, report: true}\n");
    assert_eq!(status, 200, "{answer}");
    let report = agents[0].wave_report(answer["wave_id"].as_str().unwrap(), 2);
    assert_eq!(report["agents_reached"], 2, "{report}");
}

/// Parameters never become code: a `--sweep` value and a Consul address carrying `;touch FILE` reach a
/// `run:` step as one argument (the sweep) or are refused as no host (Consul); nothing is created either way.
#[test]
fn shell_syntax_in_sweep_values_and_consul_addresses_runs_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let planted = dir.path().join("PLANTED");
    let echoed = dir.path().join("echoed");
    let file = dir.path().join("inject.yaml");
    std::fs::write(
        &file,
        format!(
            "name: inject\ntarget: {{local: 1}}\nsteps:\n  - sweep: {{host: ['127.0.0.1']}}\n    steps:\n      - run: printf '%s' {{{{host}}}} > {}\n",
            echoed.display()
        ),
    )
    .unwrap();
    let value = format!("host=x;touch {};echo", planted.display());
    let run = std::process::Command::new(common::BIN)
        .args(["scenario", "run"])
        .arg(&file)
        .args(["--sweep", &value])
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert_eq!(run.status.code(), Some(0), "{said}");
    assert!(!planted.exists(), "the sweep value ran as a command");
    assert_eq!(std::fs::read_to_string(&echoed).unwrap(), format!("x;touch {};echo", planted.display()));

    let consul = common::consul::ConsulDev::start();
    let forged = json!({
        "ID": "forged", "Name": "tarsier", "Address": format!("127.0.0.1;touch {};echo", planted.display()),
        "Port": 1, "Meta": {"service_port": "2"},
    });
    assert_eq!(register(&consul, forged, None), 200);
    let file = dir.path().join("consul.yaml");
    std::fs::write(
        &file,
        format!("name: via-consul\ntarget: {{consul: {}}}\nsteps:\n  - run: 'true {{{{public}}}}'\n", consul.address),
    )
    .unwrap();
    let run = std::process::Command::new(common::BIN).args(["scenario", "run"]).arg(&file).output().unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert_eq!(run.status.code(), Some(2), "{said}");
    assert!(said.contains("neither an IP nor a host name"), "{said}");
    assert!(!planted.exists(), "the Consul address ran as a command");
}

/// A request a browser could be made to send: method, path, headers, the status and the field refused.
type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, u16, &'a str);

/// Browsers are strangers: against a token-less loopback agent (the Quick start's), a cross-site POST
/// (with an `Origin`), a form or `text/plain` body, and a DNS-rebinding request (a foreign `Host`) are
/// refused with a JSON 403 or 415 naming the header, and nothing runs.
#[test]
fn cross_site_and_rebinding_requests_are_refused_and_run_nothing() {
    let agent = ChildAgent::spawn();
    let http = common::http();
    let body = "command: sleep/sleep\ndata: {duration: 0s}\n";
    let cases: [Case; 5] = [
        (
            "POST",
            "/exec",
            vec![("origin", "https://evil.example"), ("content-type", "application/yaml")],
            403,
            "Origin",
        ),
        ("POST", "/exec", vec![("origin", "null"), ("content-type", "text/plain")], 403, "Origin"),
        ("POST", "/exec", vec![("content-type", "application/x-www-form-urlencoded")], 415, "Content-Type"),
        ("POST", "/abort", vec![("content-type", "text/plain")], 415, "Content-Type"),
        ("GET", "/jobs", vec![("host", "rebind.evil.example")], 403, "Host"),
    ];
    for (method, path, headers, status, field) in cases {
        let mut request = http.request(method.parse().unwrap(), format!("{}{path}", agent.public)).body(body);
        for (name, value) in &headers {
            request = request.header(*name, *value);
        }
        let response = request.send().unwrap();
        let got = response.status().as_u16();
        let answer: Value = response.json().unwrap_or(Value::Null);
        assert_eq!((got, answer["field"].as_str()), (status, Some(field)), "{method} {path} {headers:?}: {answer}");
    }
    let service = http.get(format!("{}/metrics", agent.service)).header("host", "rebind.evil.example").send().unwrap();
    assert_eq!(service.status(), 403, "the service port checks the host too");
    let metrics = agent.metrics();
    assert!(!metrics.contains("tarsier_commands_total{"), "a command ran:\n{metrics}");
}

/// A `run:` step that prints 300 MB leaves the runner's memory bounded (its last MiB of output is kept),
/// and the run ends in order with its JUnit written; a JUnit path that is a planted link is not written
/// through.
#[test]
fn a_loud_run_step_is_bounded_and_outputs_are_not_written_through_links() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("loud.yaml");
    std::fs::write(
        &file,
        "name: loud\ntarget: {local: 1}\nsteps:\n  - run: {command: 'head -c 300000000 /dev/zero; echo done', timeout: 5m}\n",
    )
    .unwrap();
    let junit = dir.path().join("junit.xml");
    let mut runner = std::process::Command::new(common::BIN)
        .args(["scenario", "run"])
        .arg(&file)
        .arg("--junit")
        .arg(&junit)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut peak_kib = 0;
    let status = loop {
        if let Some(status) = runner.try_wait().unwrap() {
            break status;
        }
        // The high-water mark only grows: any reading after the peak shows it.
        peak_kib = peak_kib.max(common::proc_status_kib(runner.id(), "VmHWM:"));
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "the loud run failed");
    assert!(std::fs::read_to_string(&junit).unwrap().contains("testcase"), "no JUnit");
    assert!(peak_kib > 0 && peak_kib < 150 * 1024, "the runner peaked at {peak_kib} KiB for 300 MB of output");

    let victim = dir.path().join("victim");
    std::fs::write(&victim, "keep me").unwrap();
    let link = dir.path().join("link.xml");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    std::fs::write(&file, "name: quiet\ntarget: {local: 1}\nsteps:\n  - wait: 1ms\n").unwrap();
    let run = std::process::Command::new(common::BIN)
        .args(["scenario", "run"])
        .arg(&file)
        .arg("--junit")
        .arg(&link)
        .output()
        .unwrap();
    let said = format!("{}{}", String::from_utf8_lossy(&run.stdout), String::from_utf8_lossy(&run.stderr));
    assert_ne!(run.status.code(), Some(0), "{said}");
    assert!(said.contains("symbolic link"), "{said}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
}

/// An error quotes what the request said, but a few hundred characters of it at most, whatever was sent
/// (before, a 100 KB command name came back whole).
#[test]
fn errors_echo_a_few_hundred_characters_at_most() {
    let agent = ChildAgent::spawn();
    let long = "x".repeat(100_000);
    for body in [
        format!("command: {long}/y\n"),
        format!("command: {long}\n"),
        format!("command: sleep/sleep\ndata: {{duration: '{long}'}}\n"),
    ] {
        let (status, answer) = agent.exec(&body);
        assert!((400..500).contains(&status), "{status}");
        let text = answer.to_string();
        assert!(text.len() < 1_024, "{} bytes echoed: {}...", text.len(), &text[..200]);
        assert!(text.contains("more bytes not shown"), "{text}");
    }
}
