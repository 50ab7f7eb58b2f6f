//! heavy_load, checked from outside the child agent: VmRSS for RAM, /proc/PID/stat for CPU time.

use crate::common;
use std::time::Duration;

use crate::common::{eventually, ChildAgent, MIB};

#[test]
fn gobble_ram_grows_rss_by_what_it_holds_and_free_ram_gives_it_back() {
    let agent = ChildAgent::spawn();
    let before = agent.rss_bytes();
    let (status, answer) = agent.exec("command: heavy_load/gobble_ram\ndata: {size: 64MiB}\n");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["size"], 64 * MIB);
    let grown = agent.rss_bytes() - before;
    assert!(grown >= 62 * MIB, "RSS grew by {} MiB for 64 MiB asked", grown / MIB);

    let (_, second) = agent.exec("command: heavy_load/gobble_ram\ndata: {size: 16MiB}\n");
    let (_, stats) = agent.exec("command: heavy_load/ram_stats\n");
    let regions = stats["result"]["regions"].as_array().unwrap();
    assert_eq!(regions.len(), 2, "{stats}");
    assert_eq!(stats["result"]["held_bytes"], 80 * MIB);
    assert!(agent.metrics().contains("tarsier_held{resource=\"ram_bytes\"} 83886080"));

    // Free the first by its position: the second moves to index 0 and keeps its id.
    let (status, freed) = agent.exec("command: heavy_load/free_ram\ndata: {index: 0}\n");
    assert_eq!(status, 200, "{freed}");
    assert_eq!(freed["result"]["freed_bytes"], 64 * MIB);
    let id = second["result"]["id"].as_u64().unwrap();
    let (_, stats) = agent.exec("command: heavy_load/ram_stats\n");
    assert_eq!(stats["result"]["regions"][0]["id"], id);
    assert_eq!(stats["result"]["regions"][0]["index"], 0);
    let (status, freed) = agent.exec(&format!("command: heavy_load/free_ram\ndata: {{id: {id}}}\n"));
    assert_eq!(status, 200, "{freed}");
    assert_eq!(freed["result"]["freed_bytes"], 16 * MIB);
    assert!(agent.rss_bytes() < before + 8 * MIB, "RSS did not come back down");
}

#[test]
fn touch_false_maps_without_growing_rss() {
    let agent = ChildAgent::spawn();
    let before = agent.rss_bytes();
    let (status, answer) = agent.exec("command: heavy_load/gobble_ram\ndata: {size: 96MiB, touch: false}\n");
    assert_eq!(status, 200, "{answer}");
    assert!(agent.rss_bytes() < before + 16 * MIB);
}

/// The kernel's refusal is real: the child's address space is capped with prlimit(RLIMIT_AS) so mmap fails
/// with ENOMEM, and gobble_ram must shrink by `ratio` until it fits.
#[test]
fn gobble_ram_shrinks_by_ratio_when_the_kernel_refuses() {
    let agent = ChildAgent::spawn();
    // Warm the blocking thread pool first, so the cap below does not stop it from starting a thread.
    agent.exec("command: heavy_load/gobble_ram\ndata: {size: 1MiB}\n");
    let vm_size = common::proc_status_kib(agent.pid, "VmSize:") * 1024;
    let cap = vm_size + 160 * MIB;
    let limit = libc::rlimit { rlim_cur: cap, rlim_max: cap };
    // SAFETY: prlimit on our own child's pid with a valid rlimit.
    let rc = unsafe { libc::prlimit(agent.pid as i32, libc::RLIMIT_AS, &limit, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit failed");

    let (status, answer) = agent.exec("command: heavy_load/gobble_ram\ndata: {size: 1GiB, ratio: 0.5}\n");
    assert_eq!(status, 200, "{answer}");
    let size = answer["result"]["size"].as_u64().unwrap();
    assert!((32 * MIB..160 * MIB).contains(&size), "held {} MiB under a 160 MiB cap", size / MIB);
    assert!(answer["result"]["attempts"].as_u64().unwrap() >= 3, "{answer}");

    let (status, refused) = agent.exec("command: heavy_load/gobble_ram\ndata: {size: 1GiB, resize: false}\n");
    assert_eq!(status, 507, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("refused"), "{refused}");
}

#[test]
fn ram_limit_turns_a_bigger_request_into_400() {
    let agent = ChildAgent::spawn_with(common::Spawn { config: "limits:\n  max_ram: 32MiB\n", ..Default::default() });
    let (status, _) = agent.exec("command: heavy_load/gobble_ram\ndata: {size: 24MiB}\n");
    assert_eq!(status, 200);
    let (status, answer) = agent.exec("command: heavy_load/gobble_ram\ndata: {size: 16MiB}\n");
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["field"], "data.size");
    assert!(answer["error"].as_str().unwrap().contains("limits.max_ram"), "{answer}");
}

#[test]
fn spin_cpu_burns_cpu_time_on_every_thread() {
    let agent = ChildAgent::spawn();
    let before = agent.cpu_seconds();
    let (status, answer) = agent.exec("command: heavy_load/spin_cpu\ndata: {duration: 1500ms, threads: 2}\n");
    assert_eq!(status, 200, "{answer}");
    let used = agent.cpu_seconds() - before;
    // What the threads asked of the kernel (run time + run-queue wait) does not depend on how busy the machine is:
    // two threads runnable for 1.5 s each. The CPU they got does, so it is only compared with /proc's own count.
    let runnable = answer["result"]["runnable_seconds"].as_f64().unwrap();
    assert!((2.7..3.6).contains(&runnable), "two threads were runnable for {runnable:.2} s in all, not 3 s");
    let reported = answer["result"]["cpu_seconds"].as_f64().unwrap();
    assert!((reported - used).abs() < 0.5, "reported {reported:.2} vs /proc {used:.2}");
    assert!(reported <= runnable + 0.05, "CPU obtained {reported:.2} s exceeds runnable {runnable:.2} s");
    assert_eq!(answer["result"]["threads"], 2);
}

#[test]
fn spin_cpu_at_half_load_idles_half_the_time() {
    let agent = ChildAgent::spawn();
    let (status, answer) = agent.exec("command: heavy_load/spin_cpu\ndata: {duration: 2s, threads: 1, load: 50}\n");
    assert_eq!(status, 200, "{answer}");
    // Runnable (run + run-queue wait) half the time, however much CPU the machine could give it.
    let fraction = answer["result"]["runnable_fraction"].as_f64().unwrap();
    assert!((0.4..0.65).contains(&fraction), "load 50 was runnable {fraction:.2} of the time");
}

#[test]
fn spin_cpu_with_cpu_time_stops_once_that_work_is_done() {
    let agent = ChildAgent::spawn();
    // A fixed cost of work: however long the thread waits for a core (the other may be busy), it stops
    // once it has used 50 ms of CPU, well before the 20 s bound.
    let (status, answer) =
        agent.exec("command: heavy_load/spin_cpu\ndata: {cpu_time: 50ms, duration: 20s, threads: 1}\n");
    assert_eq!(status, 200, "{answer}");
    let cpu = answer["result"]["cpu_seconds"].as_f64().unwrap();
    assert!((0.05..0.2).contains(&cpu), "used {cpu} s of CPU for 50 ms of work");
    assert!(answer["result"]["ran_seconds"].as_f64().unwrap() < 20.0, "{answer}");
    let (status, refused) = agent.exec("command: heavy_load/spin_cpu\ndata: {cpu_time: 2s, duration: 1s}\n");
    assert_eq!(status, 400, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("cpu_time"), "{refused}");
}

#[test]
fn spin_cpu_is_cancelled_by_abort_and_threads_go_away() {
    let agent = ChildAgent::spawn();
    let threads_before = agent.threads();
    let (status, job) = agent.exec("command: heavy_load/spin_cpu\ndata: {duration: 60s, threads: 2}\ndetach: true\n");
    assert_eq!(status, 202, "{job}");
    assert!(eventually(Duration::from_secs(5), || agent.runtime()["held"]["busy_threads"] == 2));
    let (status, aborted) = agent.post("/abort", "application/yaml", Vec::new());
    assert_eq!(status, 200, "{aborted}");
    assert_eq!(aborted["cancelled_jobs"], 1);
    assert!(eventually(Duration::from_secs(5), || agent.runtime()["held"]["busy_threads"] == 0));
    assert!(eventually(Duration::from_secs(5), || agent.threads() <= threads_before + 1));
    let id = job["job_id"].as_u64().unwrap();
    let done = agent.get_json(&format!("{}/jobs/{id}", agent.public));
    assert_eq!(done["status"], "cancelled", "{done}");
}

/// A memory cgroup of the test's own with one child agent inside: v1 (`memory.limit_in_bytes`) where the
/// host has the v1 memory hierarchy, else v2 (`memory.max`). Needs root; `None` where cgroups cannot be made.
struct TestCgroup {
    dir: std::path::PathBuf,
    /// Where the agent goes back to before the cgroup is removed.
    parent: std::path::PathBuf,
    pid: u32,
}

impl TestCgroup {
    fn limit(pid: u32, bytes: u64) -> Option<Self> {
        let v1 = std::path::Path::new("/sys/fs/cgroup/memory");
        let (parent, limit_file) = if v1.join("memory.limit_in_bytes").exists() {
            (v1.to_owned(), "memory.limit_in_bytes")
        } else {
            (std::path::PathBuf::from("/sys/fs/cgroup"), "memory.max")
        };
        let dir = parent.join(format!("tarsier-test-{pid}"));
        std::fs::create_dir(&dir).ok()?;
        let cgroup = TestCgroup { dir, parent, pid };
        std::fs::write(cgroup.dir.join(limit_file), bytes.to_string()).ok()?;
        std::fs::write(cgroup.dir.join("cgroup.procs"), pid.to_string()).ok()?;
        Some(cgroup)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(self.parent.join("cgroup.procs"), self.pid.to_string());
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Under overcommit the kernel maps 512 MiB in a 256 MiB cgroup without complaint and the OOM killer ends the
/// agent when the pages are touched. gobble_ram reads the cgroup's limit and shrinks (or refuses) instead.
#[test]
fn gobble_ram_under_a_cgroup_memory_limit_shrinks_or_refuses_and_is_never_oom_killed() {
    let mut agent = ChildAgent::spawn();
    let Some(_cgroup) = TestCgroup::limit(agent.pid, 256 * MIB) else {
        println!("skipped: cannot make a memory cgroup here (needs root and a writable /sys/fs/cgroup)");
        return;
    };
    let (status, answer) = agent.exec("command: heavy_load/gobble_ram\ndata: {size: 512MiB}\n");
    assert_eq!(status, 200, "{answer}");
    let size = answer["result"]["size"].as_u64().unwrap();
    assert!((64 * MIB..=224 * MIB).contains(&size), "held {} MiB in a 256 MiB cgroup", size / MIB);
    assert!(answer["result"]["attempts"].as_u64().unwrap() >= 2, "{answer}");

    let (status, refused) = agent.exec("command: heavy_load/gobble_ram\ndata: {size: 512MiB, resize: false}\n");
    assert_eq!(status, 507, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("cgroup memory limit"), "{refused}");
    assert!(agent.child.try_wait().unwrap().is_none(), "the agent died");
    let (status, _) = agent.request(reqwest::Method::GET, &format!("{}/health", agent.service));
    assert_eq!(status, 200);
    let (_, freed) = agent.exec("command: heavy_load/free_ram\n");
    assert_eq!(freed["result"]["freed_bytes"], size);
}

/// A spin that cannot start its threads fails at once, saying so, and stops the threads it had started;
/// before, it failed only after its whole duration. The agent is put in a pids cgroup (v1) of the test's own
/// with room for a few more threads than it has; without root or that controller the test says skipped.
#[test]
fn spin_cpu_fails_at_once_when_a_thread_cannot_start() {
    let root = std::path::Path::new("/sys/fs/cgroup/pids");
    let agent = ChildAgent::spawn();
    let group = root.join(format!("tarsier-test-{}", agent.pid));
    if std::fs::create_dir(&group).is_err() {
        println!("skipped: no writable pids cgroup at {}", root.display());
        return;
    }
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _remove = Remove(group.clone());
    std::fs::write(group.join("pids.max"), (agent.threads() + 3).to_string()).unwrap();
    std::fs::write(group.join("cgroup.procs"), agent.pid.to_string()).unwrap();
    let started = std::time::Instant::now();
    let (status, answer) = agent.exec("command: heavy_load/spin_cpu\ndata: {duration: 60s, threads: 64}\n");
    let took = started.elapsed();
    // Out of the cgroup again, so the agent can be reaped normally and the group removed.
    std::fs::write(root.join("cgroup.procs"), agent.pid.to_string()).unwrap();
    assert_eq!(answer["status"], "failed", "{status} {answer}");
    assert!(answer["error"].as_str().unwrap_or_default().contains("cannot start spinning thread"), "{answer}");
    assert!(took < common::patient(Duration::from_secs(10)), "it failed only after {took:?}");
    assert!(
        eventually(Duration::from_secs(5), || agent.runtime()["held"]["busy_threads"] == 0),
        "threads left spinning"
    );
}
