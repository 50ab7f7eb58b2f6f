//! The activity log (`logging.dir`): every record numbered without a hole within a boot, the activity events
//! of a wave on both sides, files closed on a clean stop, and what a `kill -9` leaves: whole lines, closed by
//! the next run, which starts a new boot.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::nats::Nats;
use crate::common::{self, eventually, ChildAgent, Spawn};

/// The records of every file of `dir`, in file order, and whether a file was still open. A file listed
/// open may be renamed by a rotation before it is read: the directory is then listed again.
fn records(dir: &Path) -> (Vec<Value>, bool) {
    'listing: for _ in 0..100 {
        let files = tarsier::logs::files::files_of(dir, "tarsier").unwrap();
        let open = files.iter().any(|f| f.open);
        let mut records = Vec::new();
        for file in files {
            let text = match std::fs::read_to_string(&file.path) {
                Ok(text) => text,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => continue 'listing,
                Err(err) => panic!("{}: {err}", file.file_name),
            };
            assert!(text.is_empty() || text.ends_with('\n'), "{}: a torn last line", file.file_name);
            records
                .extend(text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"))));
        }
        return (records, open);
    }
    panic!("{}: files renamed under every one of 100 listings", dir.display())
}

/// Every record of one boot and agent, numbered 0, 1, 2, ... in the files' order.
fn assert_one_boot_without_a_hole(records: &[Value]) -> (String, String) {
    let (agent, boot) = (records[0]["agent"].as_str().unwrap(), records[0]["boot"].as_str().unwrap());
    for (i, record) in records.iter().enumerate() {
        assert_eq!((record["agent"].as_str(), record["boot"].as_str()), (Some(agent), Some(boot)), "{record}");
        assert_eq!(record["seq"], i as u64, "a hole or a repeat before {record}");
        assert!(record["ts_ms"].as_u64().is_some_and(|t| t > 1_600_000_000_000), "{record}");
    }
    (agent.to_owned(), boot.to_owned())
}

fn activities(records: &[Value]) -> BTreeSet<String> {
    records.iter().filter_map(|r| r["activity"].as_str().map(str::to_owned)).collect()
}

fn logging(dir: &Path) -> String {
    format!("logging:\n  dir: {}\n  max_file_size: 4KiB\n", dir.display())
}

#[test]
fn a_wave_is_logged_on_both_sides_numbered_without_a_hole() {
    let logs = tempfile::tempdir().unwrap();
    let (origin_dir, peer_dir) = (logs.path().join("origin"), logs.path().join("peer"));
    let ports = [common::fixed_port(), common::fixed_port()];
    let peers = ports.map(|p| format!("127.0.0.1:{p}")).join(",");
    let spawn = |port: u16, dir: &Path| {
        let listen = format!("127.0.0.1:{port}");
        let config = logging(dir);
        ChildAgent::spawn_with(Spawn {
            config: &config,
            args: &["--listen", &listen, "--peers", &peers],
            ..Default::default()
        })
    };
    let (mut origin, mut peer) = (spawn(ports[0], &origin_dir), spawn(ports[1], &peer_dir));
    for _ in 0..20 {
        let (status, answer) =
            origin.exec("command: sleep/sleep\ndata: {duration: 0s}\nwave: {remain: 1, buddies: 1}\n");
        assert_eq!(status, 200, "{answer}");
    }
    let (status, answer) = origin.exec("command: sleep/sleep\ndata: {duration: forever}\n");
    assert_eq!(status, 400, "{answer}");
    let (status, answer) = origin.post("/abort", "application/yaml", Vec::new());
    assert_eq!(status, 200, "{answer}");
    // The peer ran every copy (a copy's job ends after its answer).
    let ran = || records(&peer_dir).0.iter().filter(|r| r["activity"] == "command_ended").count() >= 20;
    assert!(eventually(Duration::from_secs(10), ran), "{:?}", activities(&records(&peer_dir).0));

    let runtime = origin.runtime();
    assert!(runtime["activity_log"]["next_seq"].as_u64().unwrap() > 40, "{runtime}");
    let metrics = origin.metrics();
    assert!(metrics.contains("tarsier_log_records_total "), "{metrics}");
    assert!(metrics.contains("tarsier_log_lost_records_total 0"), "{metrics}");

    for agent in [&mut origin, &mut peer] {
        agent.signal(libc::SIGTERM);
        agent.wait_exit(Duration::from_secs(10));
    }
    let (origin_records, open) = records(&origin_dir);
    assert!(!open, "a clean stop closes the file");
    let (name, _) = assert_one_boot_without_a_hole(&origin_records);
    assert_eq!(Some(name.as_str()), runtime["agent"].as_str());
    let seen = activities(&origin_records);
    for expected in ["command_started", "command_ended", "copy_sent", "request_refused", "abort"] {
        assert!(seen.contains(expected), "{expected} missing from the origin's {seen:?}");
    }
    // 4 KiB files: the records were rotated over several.
    assert!(tarsier::logs::files::files_of(&origin_dir, "tarsier").unwrap().len() > 2);

    let (peer_records, _) = records(&peer_dir);
    assert_one_boot_without_a_hole(&peer_records);
    let seen = activities(&peer_records);
    for expected in ["copy_taken", "command_started", "command_ended", "abort"] {
        assert!(seen.contains(expected), "{expected} missing from the peer's {seen:?}");
    }
    let taken =
        |route: &str| peer_records.iter().filter(|r| r["activity"] == "copy_taken" && r["route"] == route).count();
    assert_eq!((taken("exec"), taken("abort")), (20, 1), "one record per copy");
}

#[test]
fn a_killed_agent_leaves_whole_lines_and_its_next_run_closes_the_file_and_starts_a_new_boot() {
    let logs = tempfile::tempdir().unwrap();
    let config = logging(logs.path());
    let first = ChildAgent::spawn_with(Spawn { config: &config, ..Default::default() });
    for _ in 0..50 {
        let (status, answer) = first.exec("command: sleep/sleep\ndata: {duration: 0s}\n");
        assert_eq!(status, 200, "{answer}");
    }
    // Written within the flush interval (100 ms).
    let written = || records(logs.path()).0.iter().filter(|r| r["activity"] == "command_ended").count() == 50;
    assert!(eventually(Duration::from_secs(5), written));
    first.signal(libc::SIGKILL);
    drop(first);
    let (killed, open) = records(logs.path());
    assert!(open, "the killed agent's file is still .open");
    let (_, killed_boot) = assert_one_boot_without_a_hole(&killed);

    let second = ChildAgent::spawn_with(Spawn { config: &config, ..Default::default() });
    let (status, _) = second.exec("command: sleep/sleep\ndata: {duration: 0s}\n");
    assert_eq!(status, 200);
    let files = tarsier::logs::files::files_of(logs.path(), "tarsier").unwrap();
    let killed_files: Vec<_> = files.iter().filter(|f| f.file_name.contains(&killed_boot)).collect();
    assert!(!killed_files.is_empty() && killed_files.iter().all(|f| !f.open), "{files:?}");
    let new_boot = second.runtime()["activity_log"]["boot"].as_str().unwrap().to_owned();
    assert_ne!(new_boot, killed_boot);
    let fresh: Vec<Value> = {
        let newest = || records(logs.path()).0.into_iter().filter(|r| r["boot"] == new_boot.as_str()).collect();
        assert!(eventually(Duration::from_secs(5), || !Vec::<Value>::is_empty(&newest())));
        newest()
    };
    assert_eq!(fresh[0]["seq"], 0, "a new boot numbers from 0");
}

#[test]
fn bad_logging_settings_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (config, key) in [
        (format!("logging:\n  dir: {}\n  name: ../up\n", dir.path().display()), "logging.name"),
        (format!("logging:\n  dir: {}\n  max_file_size: 1KiB\n", dir.path().display()), "logging.max_file_size"),
        (format!("logging:\n  dir: {}\n  level: loud\n", dir.path().display()), "logging.level"),
        (format!("logging:\n  dir: {}\n  interval: 0\n", dir.path().display()), "logging.interval"),
    ] {
        let path = dir.path().join("agent.yaml");
        std::fs::write(&path, config).unwrap();
        let output = std::process::Command::new(common::BIN)
            .args(["agent", "--listen", "127.0.0.1:0", "--service-listen", "127.0.0.1:0", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(key), "{key} not named: {stderr}");
    }
}

// Shipping to a real nats-server with JetStream (scripts/nats.sh installs it).

/// `tarsier logs verify --json` against the stream: the verdict, and the exit status.
fn verify_stream(nats: &Nats) -> (Value, Option<i32>) {
    let output = std::process::Command::new(common::BIN)
        .args(["logs", "verify", "--json", "--timeout", "30s", "--url", &nats.url()])
        .output()
        .unwrap();
    let verdict = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&output.stderr)));
    (verdict, output.status.code())
}

fn shipping(agent: &ChildAgent) -> (Value, Value) {
    let runtime = agent.runtime();
    (runtime["activity_log"].clone(), runtime["log_shipping"].clone())
}

fn exec_many(agent: &ChildAgent, n: usize) {
    for _ in 0..n {
        let (status, answer) = agent.exec("command: sleep/sleep\ndata: {duration: 0s}\n");
        assert_eq!(status, 200, "{answer}");
    }
}

#[test]
fn shipped_records_arrive_once_across_a_broker_restart_and_the_backlog_shows_meanwhile() {
    let mut nats = Nats::start();
    let logs = tempfile::tempdir().unwrap();
    let config = format!("{}  ship:\n    urls: [{}]\n", logging(logs.path()), nats.url());
    let agent = ChildAgent::spawn_with(Spawn { config: &config, ..Default::default() });
    exec_many(&agent, 100);
    let delivered = || {
        let (log, ship) = shipping(&agent);
        ship["shipped_records"] == log["next_seq"] && ship["shipped_records"].as_u64() >= Some(200)
    };
    assert!(eventually(Duration::from_secs(20), delivered), "{:?}", shipping(&agent));

    nats.down();
    exec_many(&agent, 100);
    // The broker is away: the records wait in the files, and /runtime and /metrics say so.
    let waiting = || {
        let (_, ship) = shipping(&agent);
        ship["retries"].as_u64() > Some(0) && ship["pending_records"].as_u64() >= Some(200)
    };
    assert!(eventually(Duration::from_secs(40), waiting), "{:?}", shipping(&agent));
    let metrics = agent.metrics();
    assert!(!metrics.contains("tarsier_log_pending_records 0\n"), "{metrics}");

    nats.up();
    assert!(eventually(Duration::from_secs(60), delivered), "{:?}", shipping(&agent));
    let (verdict, status) = verify_stream(&nats);
    assert_eq!(status, Some(0), "{verdict}");
    let boots = verdict["boots"].as_array().unwrap();
    assert_eq!(boots.len(), 1, "{verdict}");
    assert_eq!(boots[0]["missing"], 0, "{verdict}");
    assert_eq!(boots[0]["duplicates"], 0, "JetStream's dedupe keeps one of a record sent twice: {verdict}");
    assert!(boots[0]["expected"].as_u64() >= Some(400), "{verdict}");
    // Delivered files are deleted (retention 0s); the one being written stays.
    let left = tarsier::logs::files::files_of(logs.path(), "tarsier").unwrap();
    assert!(left.iter().all(|f| f.open), "{left:?}");
}

/// A stream the servers refuse for its settings (3 replicas on a server that is not clustered): the sidecar
/// exits at once naming the setting, deleting nothing; the agent says it once as an error, shows it in
/// /runtime, keeps its records on disk and keeps serving.
#[test]
fn a_stream_the_servers_refuse_is_named_not_retried_in_silence() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let total = write_app_files(dir.path());
    let started = std::time::Instant::now();
    let output = std::process::Command::new(common::BIN)
        .args(["ship", "--once", "--replicas", "3", "--url", &nats.url()])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("--replicas") && stderr.contains("TARSIER_LOGS"), "{stderr}");
    assert!(started.elapsed() < common::patient(Duration::from_secs(20)), "not retried: {stderr}");
    assert_eq!(common::files_in(dir.path()).iter().filter(|f| f.extension().is_some_and(|x| x == "jsonl")).count(), 3);
    assert!(total > 0);

    let logs = tempfile::tempdir().unwrap();
    let config = format!("{}  ship:\n    urls: [{}]\n    replicas: 3\n", logging(logs.path()), nats.url());
    let agent = ChildAgent::spawn_with(Spawn { config: &config, ..Default::default() });
    exec_many(&agent, 20);
    let refused = || {
        let (_, ship) = shipping(&agent);
        ship["last_error"].as_str().is_some_and(|e| e.contains("logging.ship.replicas"))
    };
    assert!(eventually(Duration::from_secs(20), refused), "{:?}", shipping(&agent));
    let waiting = || shipping(&agent).1["pending_records"].as_u64() >= Some(40);
    assert!(eventually(Duration::from_secs(10), waiting), "the records wait on disk: {:?}", shipping(&agent));
    assert_eq!(shipping(&agent).1["shipped_records"], 0);
    let said = agent.log_text().matches("the stream is refused").count();
    assert_eq!(said, 1, "said once, not at every retry: {}", agent.log_text());
    exec_many(&agent, 1);
}

/// An agent told to stop ships what it wrote before it goes: its last records are in the stream when it has
/// exited, not left on a disk that may go with its container.
#[test]
fn a_stopping_agent_ships_its_last_records_before_it_exits() {
    let nats = Nats::start();
    let logs = tempfile::tempdir().unwrap();
    let config = format!("{}  ship:\n    urls: [{}]\n", logging(logs.path()), nats.url());
    let mut agent = ChildAgent::spawn_with(Spawn { config: &config, ..Default::default() });
    let started = || shipping(&agent).1["shipped_records"].as_u64() > Some(0);
    assert!(eventually(Duration::from_secs(20), started), "{:?}", shipping(&agent));
    exec_many(&agent, 50);
    agent.signal(libc::SIGTERM);
    assert!(agent.wait_exit(Duration::from_secs(15)).success());
    let (on_disk, _) = records(logs.path());
    let last_written = on_disk.iter().filter_map(|r| r["seq"].as_u64()).max().expect("records left on disk");
    let (verdict, status) = verify_stream(&nats);
    assert_eq!(status, Some(0), "{verdict}");
    let boot = &verdict["boots"][0];
    assert_eq!(boot["missing"], 0, "{verdict}");
    println!("last record written {last_written}, in the stream up to {}", boot["expected"]);
    assert!(boot["expected"].as_u64() >= Some(last_written + 1), "the last records stayed on disk: {verdict}");
}

/// Files another program wrote, 3 x 20,000 numbered records.
fn write_app_files(dir: &Path) -> u64 {
    let mut seq = 0u64;
    for file in 0..3 {
        let mut text = String::new();
        let first = seq;
        for _ in 0..20_000 {
            text += &format!(
                "{{\"agent\":\"app\",\"boot\":\"b00t\",\"seq\":{seq},\"ts_ms\":1796554072849,\"msg\":\"record {seq} of file {file}\"}}\n"
            );
            seq += 1;
        }
        std::fs::write(dir.join(format!("app.b00t.{first:012}.jsonl")), text).unwrap();
    }
    seq
}

#[test]
fn the_sidecar_killed_in_the_middle_of_a_file_resumes_from_its_checkpoint_without_a_hole() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let total = write_app_files(dir.path());
    let ship = || {
        std::process::Command::new(common::BIN)
            .args(["ship", "--once", "--url", &nats.url()])
            .arg(dir.path())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let checkpoint = dir.path().join(tarsier::logs::checkpoint::FILE_NAME);
    let mut first = ship();
    // Killed as soon as it has saved a checkpoint: within its first file.
    assert!(eventually(Duration::from_secs(60), || checkpoint.exists()));
    first.kill().unwrap();
    first.wait().unwrap();
    let saved: Value = serde_json::from_slice(&std::fs::read(&checkpoint).unwrap()).unwrap();
    let files = tarsier::logs::files::files_of(dir.path(), "").unwrap();
    assert_eq!(files.len(), 3, "killed before the end: {saved}");
    println!("killed with checkpoints {saved}");

    let mut second = ship();
    let deadline = std::time::Instant::now() + common::patient(Duration::from_secs(120));
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "tarsier ship --once did not end");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
    assert!(tarsier::logs::files::files_of(dir.path(), "").unwrap().is_empty(), "delivered files are deleted");
    let (verdict, status) = verify_stream(&nats);
    assert_eq!(status, Some(0), "{verdict}");
    let boot = &verdict["boots"][0];
    assert_eq!((boot["expected"].as_u64(), boot["missing"].as_u64()), (Some(total), Some(0)), "{verdict}");
    assert_eq!(boot["duplicates"], 0, "resent records are deduplicated by JetStream: {verdict}");
}

#[test]
fn a_full_directory_holds_records_until_the_broker_is_back_and_loses_none() {
    let mut nats = Nats::start();
    nats.down();
    let logs = tempfile::tempdir().unwrap();
    let config = format!(
        "logging:\n  dir: {}\n  max_file_size: 4KiB\n  max_dir_size: 8KiB\n  ship:\n    urls: [{}]\n",
        logs.path().display(),
        nats.url()
    );
    let agent = ChildAgent::spawn_with(Spawn { config: &config, ..Default::default() });
    exec_many(&agent, 100);
    // 8 KiB hold about 30 records: the rest wait in memory, and the spool says it is full.
    let full = || shipping(&agent).0["refused"] == true;
    assert!(eventually(Duration::from_secs(10), full), "{:?}", shipping(&agent));
    assert!(agent.metrics().contains("tarsier_log_spool_full 1"));

    nats.up();
    // Every record numbered so far acknowledged (the agent logs on meanwhile: the broker's connection).
    let drained = || {
        let (log, ship) = shipping(&agent);
        log["refused"] == false && ship["shipped_records"] == log["next_seq"]
    };
    assert!(eventually(Duration::from_secs(60), drained), "{:?}", shipping(&agent));
    assert_eq!(shipping(&agent).0["lost_records"], 0);
    let (verdict, status) = verify_stream(&nats);
    assert_eq!(status, Some(0), "{verdict}");
    assert_eq!(verdict["boots"][0]["missing"], 0, "{verdict}");
    assert!(verdict["boots"][0]["expected"].as_u64() >= Some(200), "{verdict}");
}

#[test]
fn the_verifier_finds_planted_holes_duplicates_and_disorder() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    let mut add = |seq: u64| {
        text += &format!("{{\"agent\":\"a\",\"boot\":\"b\",\"seq\":{seq},\"ts_ms\":1}}\n");
    };
    for seq in (0..40).chain(50..100) {
        add(seq);
    }
    add(7);
    add(120);
    add(110);
    text += "a line of another program\n";
    let file = dir.path().join("collected.jsonl");
    std::fs::write(&file, text).unwrap();
    let output = std::process::Command::new(common::BIN)
        .args(["logs", "verify", "--json", "--file"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "a hole fails: {}", String::from_utf8_lossy(&output.stderr));
    let verdict: Value = serde_json::from_slice(&output.stdout).unwrap();
    let boot = &verdict["boots"][0];
    assert_eq!(boot["holes"], serde_json::json!([[40, 49], [100, 109], [111, 119]]), "{verdict}");
    assert_eq!((boot["missing"].as_u64(), boot["duplicates"].as_u64()), (Some(29), Some(1)), "{verdict}");
    assert_eq!((boot["out_of_order"].as_u64(), verdict["unreadable"].as_u64()), (Some(2), Some(1)), "{verdict}");
    let table = std::process::Command::new(common::BIN).args(["logs", "verify", "--file"]).arg(&file).output().unwrap();
    let table = String::from_utf8_lossy(&table.stdout);
    assert!(table.contains("40-49,100-109,111-119") && table.contains("29 missing"), "{table}");
}

#[test]
fn emitted_records_shipped_by_the_sidecar_arrive_without_a_hole() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let config = format!("plugins:\n  logs:\n    dir: {}\n", dir.path().display());
    let agent = ChildAgent::spawn_with(Spawn { config: &config, ..Default::default() });
    let (status, answer) =
        agent.exec("command: logs/emit\ndata: {count: 20000, size: 200B, to: dir, max_file_size: 64KiB}\n");
    assert_eq!(status, 200, "{answer}");
    let result = &answer["result"];
    assert_eq!((result["emitted"].as_u64(), result["bytes"].as_u64()), (Some(20_000), Some(4_000_000)), "{answer}");
    let run = result["run"].as_str().unwrap().to_owned();
    let files = tarsier::logs::files::files_of(dir.path(), "emit").unwrap();
    assert!(files.len() > 50 && files.iter().all(|f| !f.open && f.bytes <= 64 * 1024), "{files:?}");

    // Paced: 300 records at 1,000 a second take at least 0.3 s.
    let (status, answer) = agent.exec("command: logs/emit\ndata: {count: 300, rate: 1000, to: dir, name: paced}\n");
    assert_eq!(status, 200, "{answer}");
    assert!(answer["result"]["seconds"].as_f64() >= Some(0.29), "{answer}");
    // A body never names a path.
    let (status, answer) = agent.exec("command: logs/emit\ndata: {to: dir, name: ../up}\n");
    assert_eq!((status, answer["field"].as_str()), (400, Some("data.name")), "{answer}");

    let shipped = std::process::Command::new(common::BIN)
        .args(["ship", "--once", "--url", &nats.url()])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(shipped.status.success(), "{}", String::from_utf8_lossy(&shipped.stderr));
    let (verdict, status) = verify_stream(&nats);
    assert_eq!(status, Some(0), "{verdict}");
    let boot = verdict["boots"].as_array().unwrap().iter().find(|b| b["boot"] == run.as_str()).cloned();
    let boot = boot.unwrap_or_else(|| panic!("run {run} not in {verdict}"));
    assert_eq!((boot["expected"].as_u64(), boot["missing"].as_u64()), (Some(20_000), Some(0)), "{verdict}");
}

#[test]
fn a_line_larger_than_the_servers_take_is_skipped_and_named_and_the_records_after_it_arrive() {
    let nats = Nats::start();
    let dir = tempfile::tempdir().unwrap();
    let record = |seq: u64| format!("{{\"agent\":\"app\",\"boot\":\"b1\",\"seq\":{seq},\"ts_ms\":1,\"msg\":\"x\"}}\n");
    // nats-server's max payload is 1 MiB by default: a line of 2 MiB can never be published.
    let huge = format!("{}\n", "y".repeat(2 << 20));
    let text = [record(0), record(1), huge, record(2)].concat();
    std::fs::write(dir.path().join("app.b1.000000000000.jsonl"), text).unwrap();
    let shipped = std::process::Command::new(common::BIN)
        .args(["ship", "--once", "--url", &nats.url()])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&shipped.stderr);
    assert!(shipped.status.success(), "{stderr}");
    assert!(stderr.contains("larger than the broker's max payload"), "{stderr}");
    let (verdict, status) = verify_stream(&nats);
    assert_eq!(status, Some(0), "{verdict}");
    let boot = &verdict["boots"][0];
    assert_eq!((boot["received"].as_u64(), boot["missing"].as_u64()), (Some(3), Some(0)), "{verdict}");
}

#[test]
fn a_three_server_jetstream_cluster_loses_each_server_in_turn_the_leader_too_and_no_record() {
    let mut cluster = Nats::cluster(3);
    let urls: Vec<String> = cluster.iter().map(Nats::url).collect();
    let logs = tempfile::tempdir().unwrap();
    let config = format!("{}  ship:\n    urls: [{}]\n    replicas: 3\n", logging(logs.path()), urls.join(", "));
    let agent = ChildAgent::spawn_with(Spawn { config: &config, ..Default::default() });
    let delivered = || {
        let (log, ship) = shipping(&agent);
        ship["shipped_records"] == log["next_seq"]
    };
    exec_many(&agent, 50);
    // A cluster elects its JetStream leaders in a few seconds after it forms.
    assert!(eventually(Duration::from_secs(60), delivered), "{:?}", shipping(&agent));
    // Each server killed in turn while records flow (one of them leads the stream), then back, and caught
    // up before the next goes. What is checked is that every record arrives, not how soon: a loaded machine
    // (CI runs the Docker tests beside these) slows Raft's elections and catching up.
    for (at, server) in cluster.iter_mut().enumerate() {
        server.down();
        exec_many(&agent, 50);
        assert!(eventually(Duration::from_secs(120), delivered), "server {at} down: {:?}", shipping(&agent));
        server.up();
        assert!(server.wait_current(Duration::from_secs(60)), "server {at} did not catch up");
    }
    let (verdict, status) = verify_stream(&cluster[0]);
    assert_eq!(status, Some(0), "{verdict}");
    let boot = &verdict["boots"][0];
    assert_eq!(boot["missing"], 0, "{verdict}");
    assert!(boot["expected"].as_u64() >= Some(400), "{verdict}");
    println!("3 servers killed in turn: {verdict}");
}
