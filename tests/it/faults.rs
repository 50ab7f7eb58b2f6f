//! faults: each death is seen by the parent as it would be by an orchestrator; deadlocks block real threads.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use crate::common::{eventually, ChildAgent};

fn dies_with(body: &str) -> std::process::ExitStatus {
    let mut agent = ChildAgent::spawn();
    let (status, answer) = agent.exec(body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["pid"], agent.pid);
    agent.wait_exit(Duration::from_secs(10))
}

#[test]
fn segfault_is_a_real_sigsegv() {
    let status = dies_with("command: faults/segfault\n");
    assert_eq!(status.signal(), Some(libc::SIGSEGV), "{status:?}");
}

#[test]
fn abort_is_sigabrt() {
    let status = dies_with("command: faults/abort\ndata: {delay: 50ms}\n");
    assert_eq!(status.signal(), Some(libc::SIGABRT), "{status:?}");
}

#[test]
fn panic_exits_101() {
    let status = dies_with("command: faults/panic\n");
    assert_eq!(status.code(), Some(101), "{status:?}");
}

#[test]
fn exit_uses_the_code_asked() {
    let status = dies_with("command: faults/exit\ndata: {code: 3, delay: 50ms}\n");
    assert_eq!(status.code(), Some(3), "{status:?}");
}

#[test]
fn deadlock_blocks_os_threads_until_abort() {
    let agent = ChildAgent::spawn();
    // An agent that runs as root looks for network faults a dead predecessor left, on a thread of its own
    // with the tools' output read on another: both end in milliseconds, and must not be counted as before.
    let threads_named = |name: &str| {
        std::fs::read_dir(format!("/proc/{}/task", agent.pid))
            .unwrap()
            .filter_map(|t| t.ok())
            .filter(|t| std::fs::read_to_string(t.path().join("comm")).unwrap_or_default().starts_with(name))
            .count()
    };
    assert!(eventually(Duration::from_secs(10), || threads_named("net-leftovers") == 0));
    let threads_before = agent.threads();
    let (status, job) = agent.exec("command: faults/deadlock\ndata: {threads: 5, duration: 60s}\ndetach: true\n");
    assert_eq!(status, 202, "{job}");
    assert!(eventually(Duration::from_secs(5), || agent.runtime()["held"]["blocked_threads"] == 5));
    assert!(agent.threads() >= threads_before + 5, "{} threads, {} before", agent.threads(), threads_before);
    // Every deadlocked thread sleeps in the kernel (state S, a futex wait), not spinning.
    let sleeping = std::fs::read_dir(format!("/proc/{}/task", agent.pid))
        .unwrap()
        .filter_map(|t| t.ok())
        .filter(|t| std::fs::read_to_string(t.path().join("comm")).unwrap_or_default().starts_with("deadlock-"))
        .filter(|t| std::fs::read_to_string(t.path().join("stat")).unwrap_or_default().contains(") S "))
        .count();
    assert_eq!(sleeping, 5);
    assert!(agent.metrics().contains("tarsier_held{resource=\"blocked_threads\"} 5"));
    // Health is unaffected without block_health.
    let (status, _) = agent.request(reqwest::Method::GET, &format!("{}/health", agent.service));
    assert_eq!(status, 200);

    let (_, aborted) = agent.post("/abort", "application/yaml", Vec::new());
    assert_eq!(aborted["released"]["blocked_threads"], 5, "{aborted}");
    assert!(eventually(Duration::from_secs(5), || agent.runtime()["held"]["blocked_threads"] == 0));
    assert!(eventually(Duration::from_secs(5), || agent.threads() <= threads_before + 1));
}

#[test]
fn deadlock_ends_by_itself_after_its_duration() {
    let agent = ChildAgent::spawn();
    let (status, answer) = agent.exec("command: faults/deadlock\ndata: {threads: 1, duration: 300ms}\n");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["released_by"], "timeout");
    assert!(answer["result"]["blocked_ms"].as_u64().unwrap() >= 300);
}

#[test]
fn block_health_makes_health_hang_until_released() {
    let agent = ChildAgent::spawn();
    let (status, _) =
        agent.exec("command: faults/deadlock\ndata: {threads: 2, duration: 60s, block_health: true}\ndetach: true\n");
    assert_eq!(status, 202);
    assert!(eventually(Duration::from_secs(5), || agent.runtime()["held"]["blocked_threads"] == 2));
    let probe = reqwest::blocking::Client::builder().timeout(Duration::from_millis(500)).build().unwrap();
    let health = format!("{}/health", agent.service);
    assert!(probe.get(&health).send().is_err(), "/health answered during a block_health deadlock");
    // The public port still takes commands: the operator can still abort.
    let (status, _) = agent.post("/abort", "application/yaml", Vec::new());
    assert_eq!(status, 200);
    assert!(eventually(Duration::from_secs(5), || probe.get(&health).send().is_ok_and(|r| r.status() == 200)));
}
