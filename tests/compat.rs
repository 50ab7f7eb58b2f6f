//! Bodies written for the reference Go Tarsier run unchanged (README: Compatibility): its plugin names, its field names,
//! its size and duration strings, and its `persistent_storage.base_dir` config key.

mod common;

use common::{ChildAgent, Spawn, MIB};

#[test]
fn one_reference_body_per_command() {
    let dir = tempfile::tempdir().unwrap();
    let config = format!("persistent_storage:\n  base_dir: {}\n", dir.path().display());
    let agent = ChildAgent::spawn_with(Spawn { config: &format!("plugins: {{}}\n{config}"), ..Default::default() });
    let tcp = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let tcp_addr = tcp.local_addr().unwrap();
    std::fs::write(dir.path().join("data.bin"), vec![1u8; 4096]).unwrap();

    let bodies: Vec<(String, &str)> = vec![
        ("command: heavy_load/gobble_ram\ndata:\n  amount: 10MB\n  resize: true\n  ratio: 0.5\nwave:\n  remains: 0\n  buddies: 1\n".into(), "size"),
        ("command: heavy_load/ram_stats\n".into(), "regions"),
        ("command: heavy_load/free_ram\ndata:\n  index: -1\n".into(), "freed_bytes"),
        ("command: heavy_load/spin_cpu\ndata:\n  cores: 1\n  duration: 1s\n".into(), "cpu_seconds"),
        ("command: faults/deadlock\ndata:\n  amount: 2\n  duration: 200ms\n".into(), "released_by"),
        (format!("command: net/dial\ndata:\n  address: {tcp_addr}\n  network: tcp\n  amount: 2\n"), "opened"),
        ("command: net/stats\n".into(), "connections"),
        ("command: net/close\ndata:\n  index: -1\n".into(), "closed"),
        ("command: persistent_storage/open_fd\ndata:\n  amount: 2\n".into(), "opened"),
        ("command: persistent_storage/write\ndata:\n  amount: 100 KB\n  files: 2\n".into(), "mb_per_s"),
        ("command: persistent_storage/read\ndata:\n  file: data.bin\n  amount: 1MiB\n  concurrent: 2\n".into(), "mb_per_s"),
        ("command: persistent_storage/fd_stats\n".into(), "files"),
        ("command: persistent_storage/close_fd\ndata:\n  index: -1\n".into(), "closed"),
        ("command: sleeping_beauty/sleep\ndata:\n  duration: 1m30s\ndetach: true\n".into(), ""),
        ("{\"command\": \"sleeping_beauty/sleep\", \"data\": {\"duration\": \"10ms\"}}".into(), "slept_ms"),
    ];
    for (body, result_key) in &bodies {
        let (status, answer) = agent.exec(body);
        assert!(status == 200 || status == 202, "{body}\n-> {status} {answer}");
        assert!(answer["status"] == "ok" || answer["status"] == "running", "{body}\n-> {answer}");
        if !result_key.is_empty() {
            assert!(answer["result"].get(*result_key).is_some(), "{body}\n-> {answer}");
        }
    }
    // The reference's base_dir was honoured: the files went there, and close_fd -1 removed what tarsier made.
    let left: Vec<_> = common::files_in(dir.path());
    assert_eq!(left.len(), 1, "only the test's own data.bin remains: {left:?}");
    // The reference's `amount: 10MB` is 10 MiB: its units are binary.
    let (_, gobble) = agent.exec("command: heavy_load/gobble_ram\ndata: {amount: 10MB}\n");
    assert_eq!(gobble["result"]["size"], 10 * MIB);
    let (_, gobble) = agent.exec("command: heavy_load/gobble_ram\ndata: {amount: 1048576}\n");
    assert_eq!(gobble["result"]["size"], MIB);
}

#[test]
fn the_reference_501_is_a_documented_404() {
    let agent = ChildAgent::spawn();
    let (status, answer) = agent.exec("command: persistent_storage/format_disk\n");
    assert_eq!(status, 404, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("plugin `storage` has"), "{answer}");
}
