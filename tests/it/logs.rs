//! The activity log (`logging.dir`): every record numbered without a hole within a boot, the activity events
//! of a wave on both sides, files closed on a clean stop, and what a `kill -9` leaves: whole lines, closed by
//! the next run, which starts a new boot.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::common::{self, eventually, ChildAgent, Spawn};

/// The records of every file of `dir`, in file order, and whether a file was still open.
fn records(dir: &Path) -> (Vec<Value>, bool) {
    let files = tarsier::logs::files::files_of(dir, "tarsier").unwrap();
    let open = files.iter().any(|f| f.open);
    let mut records = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file.path).unwrap();
        assert!(text.is_empty() || text.ends_with('\n'), "{}: a torn last line", file.file_name);
        records.extend(text.lines().map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"))));
    }
    (records, open)
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
