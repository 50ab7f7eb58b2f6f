//! The agent core under pressure, in child agents: limits held by concurrent requests, commands that stop
//! when cancelled wherever they are, no task leaked per command, a blocking pool deadlocks cannot starve,
//! logs that cannot stall the agent, and a SIGTERM that always ends it.

use crate::common;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{eventually, files_in, ChildAgent, Spawn, MIB};
use serde_json::Value;

fn spawn(config: &str) -> ChildAgent {
    ChildAgent::spawn_with(Spawn { config, ..Default::default() })
}

/// Sends `body` `n` times at once (one thread each) and returns every (status, answer).
fn all_at_once(agent: &ChildAgent, body: &str, n: usize) -> Vec<(u16, Value)> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n).map(|_| s.spawn(|| agent.exec(body))).collect();
        handles.into_iter().map(|h| h.join().expect("a request thread")).collect()
    })
}

fn count_ok(answers: &[(u16, Value)]) -> usize {
    answers.iter().filter(|(status, _)| *status == 200).count()
}

fn assert_refusals_name(answers: &[(u16, Value)], limit: &str) {
    for (status, answer) in answers.iter().filter(|(status, _)| *status != 200) {
        assert_eq!(*status, 400, "{answer}");
        assert!(answer["error"].as_str().unwrap_or_default().contains(limit), "{answer}");
    }
}

fn held(agent: &ChildAgent, resource: &str) -> u64 {
    agent.runtime()["held"][resource].as_u64().unwrap_or(u64::MAX)
}

#[test]
fn ten_concurrent_requests_never_hold_more_than_the_ram_limit() {
    let agent = spawn("limits:\n  max_ram: 100MiB\n");
    let answers = all_at_once(&agent, "command: heavy_load/gobble_ram\ndata: {size: 30MiB}\n", 10);
    assert_eq!(count_ok(&answers), 3, "{answers:?}");
    assert_refusals_name(&answers, "limits.max_ram");
    assert_eq!(held(&agent, "ram_bytes"), 90 * MIB);
    println!("max_ram 100MiB, 10 x 30MiB at once: {} taken, {} MiB held", count_ok(&answers), 90);
}

#[test]
fn ten_concurrent_requests_never_hold_more_than_the_connection_limit() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let agent = spawn("limits:\n  max_connections: 50\n");
    let body = format!("command: net/dial\ndata: {{address: '{address}', count: 20}}\n");
    let answers = all_at_once(&agent, &body, 10);
    assert_eq!(count_ok(&answers), 2, "{answers:?}");
    assert_refusals_name(&answers, "limits.max_connections");
    assert_eq!(held(&agent, "connections"), 40);
}

#[test]
fn ten_concurrent_requests_never_hold_more_than_the_disk_limit() {
    let agent = spawn("limits:\n  max_disk: 10MB\n");
    let body = "command: storage/write\ndata: {amount: 3MB, fsync: false}\n";
    let answers = all_at_once(&agent, body, 10);
    assert_eq!(count_ok(&answers), 3, "{answers:?}");
    assert_refusals_name(&answers, "limits.max_disk");
    assert_eq!(held(&agent, "disk_bytes"), 9 << 20, "3 x 3 MiB: sizes are binary, as in the reference");
    assert_eq!(files_in(&agent.storage_dir()).len(), 3, "a refused write left a file behind");
}

#[test]
fn ten_concurrent_deadlocks_never_block_more_threads_than_the_cap() {
    let agent = spawn("limits:\n  max_blocked_threads: 5\n");
    let body = "command: faults/deadlock\ndata: {threads: 2, duration: 60s}\ndetach: true\n";
    let answers = all_at_once(&agent, body, 10);
    let taken = answers.iter().filter(|(status, _)| *status == 202).count();
    assert_eq!(taken, 2, "{answers:?}");
    assert!(answers.iter().all(|(s, a)| *s == 202 || a["error"].as_str().unwrap().contains("max_blocked_threads")));
    assert!(eventually(Duration::from_secs(10), || held(&agent, "blocked_threads") == 4));
    agent.post("/abort", "application/json", b"{\"local\": true}".to_vec());
    assert!(eventually(Duration::from_secs(10), || agent.runtime()["reserved"]["blocked_threads"] == 0));
}

/// Free space is reserved too: concurrent writes into a small file system cannot all pass the check and then
/// fail with ENOSPC. The test mounts a 32 MiB tmpfs of its own (root only; skipped elsewhere).
#[test]
fn concurrent_writes_cannot_promise_the_same_free_space_twice() {
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=32m", "tarsier-test", dir.path().to_str().unwrap()])
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        println!("skipped: cannot mount a tmpfs here (not root)");
        return;
    }
    struct Unmount<'a>(&'a std::path::Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(self.0).status();
        }
    }
    let _unmount = Unmount(dir.path());
    let config = format!("plugins:\n  storage:\n    dir: {}\n", dir.path().display());
    let agent = ChildAgent::spawn_with(Spawn { config: &config, ..Default::default() });
    let answers = all_at_once(&agent, "command: storage/write\ndata: {amount: 10MiB, fsync: false}\n", 10);
    assert_eq!(count_ok(&answers), 3, "{answers:?}");
    for (status, answer) in answers.iter().filter(|(s, _)| *s != 200) {
        assert_eq!(*status, 400, "a write failed instead of being refused: {answer}");
        assert!(answer["error"].as_str().unwrap().contains("free"), "{answer}");
    }
    assert_eq!(files_in(dir.path()).len(), 3);
    drop(agent);
}

#[test]
fn commands_do_not_leak_a_task_each() {
    let agent = ChildAgent::spawn();
    let tasks = |agent: &ChildAgent| agent.runtime()["tokio_tasks"].as_u64().unwrap();
    let before = tasks(&agent);
    for _ in 0..1_000 {
        let (status, _) = agent.exec("command: heavy_load/gobble_ram\ndata: {size: 64KiB}\n");
        assert_eq!(status, 200);
        let (status, _) = agent.exec("command: heavy_load/free_ram\n");
        assert_eq!(status, 200);
    }
    let after = tasks(&agent);
    assert!(after <= before + 5, "tokio tasks grew from {before} to {after} over 1,000 gobble/free pairs");
}

/// Polls `/jobs/{id}` until the job has finished; returns it and how long that took.
fn finished(agent: &ChildAgent, id: u64, within: Duration) -> (Value, Duration) {
    let started = Instant::now();
    let mut job = Value::Null;
    let done = eventually(within, || {
        job = agent.get_json(&format!("{}/jobs/{id}", agent.public));
        job["status"] != "running"
    });
    assert!(done, "job {id} still running after {within:?}: {job}");
    (job, started.elapsed())
}

fn detached(agent: &ChildAgent, body: &str) -> u64 {
    let (status, answer) = agent.exec(body);
    assert_eq!(status, 202, "{answer}");
    answer["job_id"].as_u64().unwrap()
}

fn cancel(agent: &ChildAgent, id: u64) {
    let (status, text) = agent.request(reqwest::Method::DELETE, &format!("{}/jobs/{id}", agent.public));
    assert_eq!(status, 200, "{text}");
}

/// The issue asks for 100 ms; the assertion allows a loaded CI machine 1 s, and the figure is printed.
fn stops_within() -> Duration {
    common::patient(Duration::from_secs(1))
}

#[test]
fn gobble_ram_stops_mid_populate_and_keeps_nothing() {
    let agent = ChildAgent::spawn();
    let before = agent.rss_bytes();
    let id = detached(&agent, "command: heavy_load/gobble_ram\ndata: {size: 3GiB}\ndetach: true\n");
    assert!(eventually(Duration::from_secs(10), || agent.rss_bytes() > before + 64 * MIB), "no pages came in");
    let asked = Instant::now();
    cancel(&agent, id);
    let (job, _) = finished(&agent, id, Duration::from_secs(10));
    let took = asked.elapsed();
    println!("gobble_ram 3GiB cancelled mid-populate: finished {took:?} after DELETE");
    assert_eq!(job["status"], "cancelled", "{job}");
    assert!(took < stops_within(), "took {took:?}");
    assert_eq!(held(&agent, "ram_bytes"), 0);
    assert!(eventually(Duration::from_secs(5), || agent.rss_bytes() < before + 32 * MIB), "RSS stayed up");
}

#[test]
fn spin_cpu_at_half_load_stops_when_cancelled() {
    let agent = ChildAgent::spawn();
    let id =
        detached(&agent, "command: heavy_load/spin_cpu\ndata: {duration: 60s, threads: 2, load: 50}\ndetach: true\n");
    assert!(eventually(Duration::from_secs(10), || held(&agent, "busy_threads") == 2));
    let asked = Instant::now();
    cancel(&agent, id);
    let (job, _) = finished(&agent, id, Duration::from_secs(10));
    println!("spin_cpu cancelled: finished {:?} after DELETE", asked.elapsed());
    assert_eq!(job["status"], "cancelled", "{job}");
    assert!(asked.elapsed() < stops_within());
    assert!(eventually(Duration::from_secs(2), || held(&agent, "busy_threads") == 0));
}

/// A listener whose accept queue is full and never drained: connects to it hang (the kernel drops the SYNs),
/// which is how dials stay in flight.
fn black_hole() -> (std::net::SocketAddr, std::net::TcpListener) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    // listen(2) again on a listening socket sets its backlog: 0 leaves room for one connection.
    // SAFETY: listen on a socket we own.
    assert_eq!(unsafe { libc::listen(listener.as_raw_fd(), 0) }, 0);
    (listener.local_addr().unwrap(), listener)
}

#[test]
fn an_abort_stops_dials_in_flight_and_keeps_none_that_complete_after_it() {
    let (address, _listener) = black_hole();
    let agent = ChildAgent::spawn();
    let body = format!("command: net/dial\ndata: {{address: '{address}', count: 30, timeout: 30s}}\ndetach: true\n");
    let id = detached(&agent, &body);
    std::thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    let (status, answer) = agent.post("/abort", "application/json", b"{\"local\": true}".to_vec());
    assert_eq!(status, 200, "{answer}");
    let (job, _) = finished(&agent, id, Duration::from_secs(10));
    println!("net/dial with 30 dials in flight, /abort: finished {:?} after it", asked.elapsed());
    assert_eq!(job["status"], "cancelled", "{job}");
    assert!(asked.elapsed() < stops_within());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(held(&agent, "connections"), 0);
    assert_eq!(agent.runtime()["reserved"]["connections"], 0);
}

/// A FIFO in the storage dir would hang `open()`; it is refused as not a regular file, before anything runs.
#[test]
fn storage_read_refuses_a_fifo_instead_of_hanging_on_it() {
    let agent = ChildAgent::spawn();
    let fifo = agent.storage_dir().join("pipe");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
    let started = Instant::now();
    let (status, answer) = agent.exec("command: storage/read\ndata: {file: pipe}\n");
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["field"], "data.file");
    assert!(started.elapsed() < common::patient(Duration::from_secs(5)));
}

#[test]
fn cancelled_commands_answer_cancelled_and_concurrent_aborts_count_each_job_once() {
    let agent = ChildAgent::spawn();
    let ids: Vec<u64> =
        (0..6).map(|_| detached(&agent, "command: sleep/sleep\ndata: {duration: 60s}\ndetach: true\n")).collect();
    let answers = all_at_once_post(&agent, "/abort", "{\"local\": true}", 4);
    let counted: u64 = answers.iter().map(|a| a["cancelled_jobs"].as_u64().unwrap()).sum();
    assert_eq!(counted, 6, "{answers:?}");
    for id in ids {
        let (job, _) = finished(&agent, id, Duration::from_secs(5));
        assert_eq!(job["status"], "cancelled", "{job}");
    }
    // A waiting client gets `cancelled`, not `failed`.
    std::thread::scope(|s| {
        let waiting = s.spawn(|| agent.exec("command: heavy_load/spin_cpu\ndata: {duration: 60s, threads: 1}\n"));
        assert!(eventually(Duration::from_secs(10), || held(&agent, "busy_threads") == 1));
        agent.post("/abort", "application/json", b"{\"local\": true}".to_vec());
        let (status, answer) = waiting.join().unwrap();
        assert_eq!((status, answer["status"].as_str()), (200, Some("cancelled")), "{answer}");
    });
}

fn all_at_once_post(agent: &ChildAgent, path: &str, body: &str, n: usize) -> Vec<Value> {
    std::thread::scope(|s| {
        let handles: Vec<_> =
            (0..n).map(|_| s.spawn(|| agent.post(path, "application/json", body.as_bytes().to_vec()).1)).collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

/// Each deadlock used to join its threads on tokio's blocking pool (512 slots): 520 of them left nothing for
/// gobble_ram, storage/read and DNS look-ups.
#[test]
fn five_hundred_twenty_deadlocks_do_not_starve_the_blocking_pool() {
    let agent = ChildAgent::spawn();
    for _ in 0..520 {
        detached(&agent, "command: faults/deadlock\ndata: {threads: 1, duration: 120s}\ndetach: true\n");
    }
    assert!(eventually(Duration::from_secs(20), || held(&agent, "blocked_threads") == 520));
    let (status, answer) = agent.exec("command: heavy_load/gobble_ram\ndata: {size: 1MiB}\n");
    assert_eq!(status, 200, "{answer}");
    let (status, answer) = agent.exec("command: storage/read\ndata: {amount: 1MiB}\n");
    assert_eq!(status, 200, "{answer}");
    // A name, so the look-up goes through the resolver (tokio runs it on the blocking pool).
    let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let body = format!("command: net/dial\ndata: {{address: 'localhost:{}'}}\n", server.local_addr().unwrap().port());
    let (status, answer) = agent.exec(&body);
    assert_eq!(status, 200, "{answer}");
}

#[test]
fn sigterm_ends_the_agent_within_two_seconds_even_with_500_deadlocked_threads() {
    let mut agent = ChildAgent::spawn();
    for _ in 0..5 {
        detached(&agent, "command: faults/deadlock\ndata: {threads: 100, duration: 300s}\ndetach: true\n");
    }
    assert!(eventually(Duration::from_secs(20), || held(&agent, "blocked_threads") == 500));
    let started = Instant::now();
    agent.signal(libc::SIGTERM);
    let status = agent.wait_exit(Duration::from_secs(10));
    let took = started.elapsed();
    println!("SIGTERM with 500 deadlocked threads: exited {status} after {took:?}");
    assert_eq!(status.code(), Some(0), "{}", agent.log_text());
    assert!(took < common::patient(Duration::from_secs(2)), "took {took:?}");
}

/// stderr is a pipe nobody reads (it fills after a few hundred lines), then is closed: the agent must keep
/// serving, and still stop cleanly on SIGTERM. The test cannot read the agent's first log line here, so it
/// picks the ports itself.
#[test]
fn a_stderr_nobody_reads_or_that_is_closed_never_stalls_the_agent() {
    let (public, service) = (common::fixed_port(), common::fixed_port());
    let storage = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::BIN)
        .args(["agent", "--listen", &format!("127.0.0.1:{public}")])
        .args(["--service-listen", &format!("127.0.0.1:{service}")])
        .args(["--storage-dir", storage.path().to_str().unwrap()])
        .env("TARSIER_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let http = common::http();
    let health = format!("http://127.0.0.1:{service}/health");
    assert!(eventually(Duration::from_secs(20), || http.get(&health).send().is_ok()), "the agent did not start");
    let exec = format!("http://127.0.0.1:{public}/exec");
    let send = |n: usize| {
        for i in 0..n {
            let response = http.post(&exec).body("command: sleep/sleep\ndata: {duration: 0s}\n").send();
            let status = response.map(|r| r.status().as_u16()).unwrap_or(0);
            assert_eq!(status, 200, "request {i} of {n}");
        }
    };
    send(10_000);
    // Now the reader goes away: every later write to stderr fails with EPIPE.
    drop(stderr);
    send(200);
    let started = Instant::now();
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + common::patient(Duration::from_secs(10));
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the agent ignored SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    println!("10,200 requests with stderr unread, then closed; SIGTERM: exit {status} after {:?}", started.elapsed());
    assert_eq!(status.code(), Some(0));
}
