//! storage: files on disk in the configured directory, fds seen in /proc/PID/fd.

use crate::common;
use std::time::Duration;

use crate::common::{eventually, files_in, ChildAgent, MIB};

#[test]
fn write_creates_files_of_the_asked_size_and_close_fd_deletes_them() {
    let agent = ChildAgent::spawn();
    let dir = agent.storage_dir();
    let fds_before = agent.fds_under(&dir);
    let (status, answer) =
        agent.exec("command: storage/write\ndata: {amount: 4MiB, files: 3, concurrency: 2, block_size: 256KiB}\n");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["bytes"], 12 * MIB);
    assert!(answer["result"]["mb_per_s"].as_f64().unwrap() > 0.0);
    let files = files_in(&dir);
    assert_eq!(files.len(), 3, "{files:?}");
    for file in &files {
        assert_eq!(std::fs::metadata(file).unwrap().len(), 4 * MIB, "{file:?}");
    }
    assert_eq!(agent.fds_under(&dir), fds_before + 3);

    let (_, stats) = agent.exec("command: storage/fs_stats\n");
    assert_eq!(stats["result"]["held_files"], 3);
    assert_eq!(stats["result"]["files"][0]["size"], 4 * MIB);
    assert!(agent.metrics().contains("tarsier_held{resource=\"disk_bytes\"} 12582912"));

    let (status, closed) = agent.exec("command: storage/close_fd\ndata: {index: 1, delete: false}\n");
    assert_eq!(status, 200, "{closed}");
    assert_eq!(files_in(&dir).len(), 3, "delete: false keeps the file");
    let (_, closed) = agent.exec("command: storage/close_fd\ndata: {index: -1}\n");
    assert_eq!(closed["result"]["closed"], 2);
    assert_eq!(files_in(&dir).len(), 1, "the file kept by delete: false stays");
    assert_eq!(agent.fds_under(&dir), fds_before);
}

#[test]
fn open_fd_holds_descriptors() {
    let agent = ChildAgent::spawn();
    let dir = agent.storage_dir();
    let fds_before = agent.fds_under(&dir);
    let (status, answer) = agent.exec("command: storage/open_fd\ndata: {count: 20}\n");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(agent.fds_under(&dir), fds_before + 20);
    assert_eq!(agent.runtime()["held"]["files"], 20);
    agent.exec("command: storage/close_fd\n");
    assert_eq!(agent.fds_under(&dir), fds_before);
    assert!(files_in(&agent.storage_dir()).is_empty());
}

#[test]
fn read_from_devices_and_files_in_the_dir_only() {
    let agent = ChildAgent::spawn();
    let (status, answer) = agent.exec("command: storage/read\ndata: {amount: 2MiB, concurrency: 2}\n");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["bytes"], 4 * MIB);
    assert_eq!(answer["result"]["file"], "/dev/urandom");

    std::fs::write(agent.storage_dir().join("small.bin"), vec![7u8; 1000]).unwrap();
    let (status, answer) = agent.exec("command: storage/read\ndata: {file: small.bin, amount: 10000}\n");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["bytes"], 10000, "a short file is read again from its start");

    // A link inside the dir that points outside it is still outside.
    std::os::unix::fs::symlink("/etc/hostname", agent.storage_dir().join("sneaky")).unwrap();
    let (status, answer) = agent.exec("command: storage/read\ndata: {file: sneaky}\n");
    assert_eq!(status, 400, "{answer}");
}

#[test]
fn disk_limit_is_a_400() {
    let agent = ChildAgent::spawn_with(common::Spawn { config: "limits:\n  max_disk: 10MiB\n", ..Default::default() });
    let (status, answer) = agent.exec("command: storage/write\ndata: {amount: 4MiB, files: 3}\n");
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("limits.max_disk"), "{answer}");
    assert!(files_in(&agent.storage_dir()).is_empty(), "nothing is written when refused");
}

#[test]
fn sigterm_releases_everything_deletes_files_and_exits_0() {
    let mut agent = ChildAgent::spawn();
    let dir = agent.storage_dir();
    agent.exec("command: storage/write\ndata: {amount: 1MiB, files: 2}\n");
    agent.exec("command: storage/open_fd\ndata: {count: 2}\n");
    agent.exec("command: heavy_load/gobble_ram\ndata: {size: 8MiB}\n");
    agent.exec("command: sleep/sleep\ndata: {duration: 60s}\ndetach: true\n");
    assert_eq!(files_in(&dir).len(), 4);
    agent.signal(libc::SIGTERM);
    let status = agent.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{status:?}\n{}", agent.log_text());
    assert!(files_in(&dir).is_empty(), "files left behind: {:?}", files_in(&dir));
    assert!(eventually(Duration::from_secs(1), || agent.log_text().contains("agent stopped")));
}
