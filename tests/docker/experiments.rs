//! The experiments of scenarios/experiments/ on Docker Swarm mode (deploy/stack.yaml, scripts/stack.py),
//! each run through `tarsier scenario run` with fewer rounds than the full runs of docs/experiments.md (`--sweep`). Each
//! must pass, write its sweep table, and leave no service, container or swarm of its own behind. Runs
//! wherever a Docker engine answers; prints one `skipped: no Docker engine` line elsewhere. Traffic goes
//! to 127.0.0.1:18090 (the stack's nginx, published on the host) and to the stack's own overlay network.

use crate::{docker_answers, one_at_a_time, root};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker").args(args).output().expect("docker runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The stack's name for this run; `stack.py down` on drop, so a failed assertion leaves nothing behind.
struct StackName(String);

impl Drop for StackName {
    fn drop(&mut self) {
        let _ = Command::new("python3")
            .args(["scripts/stack.py", "down"])
            .current_dir(root())
            .env("TARSIER_STACK", &self.0)
            .status();
    }
}

/// Runs one experiment with the given `--sweep` overrides and `--param`s.
fn run_experiment(stack: &StackName, file: &str, sweeps: &[&str], params: &[&str], out: &Path) {
    let started = Instant::now();
    let mut command = Command::new(env!("CARGO_BIN_EXE_tarsier"));
    // One run per round here: the full runs' repeats are for the committed figures, not for CI.
    command.args(["scenario", "run", file, "--rounds", "1", "--token-file", "deploy/.token", "--out"]).arg(out);
    for sweep in sweeps {
        command.args(["--sweep", sweep]);
    }
    for param in params {
        command.args(["--param", param]);
    }
    let output = command.current_dir(root()).env("TARSIER_STACK", &stack.0).output().expect("tarsier runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "{file} exited {:?}\n{stdout}\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{file}: passed in {:.0?}", started.elapsed());
}

/// The sweep's CSV under `out` (each experiment has one sweep).
fn sweep_csv(out: &Path) -> PathBuf {
    std::fs::read_dir(out)
        .expect("the out dir exists")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.extension().is_some_and(|e| e == "csv")
                && p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("sweep-"))
        })
        .expect("a sweep CSV")
}

/// One column of the sweep's table: one value per round.
fn column(out: &Path, name: &str) -> Vec<f64> {
    let mut reader = csv::Reader::from_path(sweep_csv(out)).expect("CSV");
    let at = reader.headers().expect("a header").iter().position(|h| h == name);
    let at = at.unwrap_or_else(|| panic!("no column {name}"));
    reader.records().map(|r| r.expect("a row")[at].parse::<f64>().unwrap_or(f64::NAN)).collect()
}

#[test]
fn the_experiments_run_on_docker_swarm_and_leave_nothing_behind() {
    if !docker_answers() {
        println!("skipped: no Docker engine");
        return;
    }
    let _engine = one_at_a_time();
    let swarm_before = docker(&["info", "-f", "{{.Swarm.LocalNodeState}}"]);
    let stack = StackName(format!("tarsiertest{}", std::process::id()));
    // The swarm token the runner reads before the stack (which would make it) is up.
    let made = Command::new("python3").args(["scripts/stack.py", "token"]).current_dir(root()).status();
    assert!(made.is_ok_and(|s| s.success()), "stack.py token failed");
    let dir = std::env::temp_dir().join(format!("tarsier-experiments-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);

    // Scaling: 1 and 8 replicas of 0.25 core each; the compare in the file (8 >= 1.5x 1) must hold.
    let out = dir.join("scaling-knee");
    run_experiment(&stack, "scenarios/experiments/scaling-knee.yaml", &["replicas=1,8", "requests=200"], &[], &out);
    let req_per_s = column(&out, "result.req_per_s");
    assert!(req_per_s.len() == 2 && req_per_s.iter().all(|x| *x > 0.0), "{req_per_s:?}");

    // Density: 1 and 4 containers; each got some CPU, the bystander answered every request.
    let out = dir.join("density");
    run_experiment(&stack, "scenarios/experiments/density.yaml", &["containers=1,4"], &[], &out);
    let shares = column(&out, "cpu_share_min");
    assert!(shares.len() == 2 && shares.iter().all(|x| *x > 0.0 && *x <= 0.55), "{shares:?}");

    // Failover: two kills each way; a replacement every time, within the file's 30 s bound.
    let out = dir.join("failover-mttr");
    run_experiment(&stack, "scenarios/experiments/failover-mttr.yaml", &["kills=2", "load_s=20"], &[], &out);
    let max_s = column(&out, "max_s");
    assert!(max_s.len() == 2 && max_s.iter().all(|x| *x > 0.0 && *x < 30.0), "{max_s:?}");

    // Rolling update: two replicas replaced under 30 s of load, against the file's targets.
    let out = dir.join("rolling-update");
    run_experiment(
        &stack,
        "scenarios/experiments/rolling-update-availability.yaml",
        &["replicas=2", "load_s=30"],
        &[],
        &out,
    );
    assert_eq!(column(&out, "replaced"), [2.0]);

    // A hung replica (alive, not answering): found unhealthy by its health check and replaced, every time
    // after the fault, and a replacement healthy after it was found.
    let out = dir.join("hung-replica");
    run_experiment(&stack, "scenarios/experiments/hung-replica.yaml", &["interval_s=1"], &[], &out);
    let (detect, replaced) = (column(&out, "detect_s"), column(&out, "replaced_s"));
    assert!(
        !detect.is_empty() && detect.iter().zip(&replaced).all(|(d, r)| *d > 0.0 && r > d),
        "{detect:?} {replaced:?}"
    );

    // Your own service: a plain busybox httpd (not tarsier, made by scripts/image.sh from Debian's
    // busybox-static). With no health check, failover is timed to each replacement's first answer and the
    // charts say so; with a health check of its own (busybox's wget), a hung replica (its process stopped)
    // is found and replaced like tarsier's.
    let out = dir.join("failover-busybox");
    let busybox = ["image=tarsier-busybox:latest", "health=none"];
    run_experiment(
        &stack,
        "scenarios/experiments/failover-mttr.yaml",
        &["how=docker-kill", "kills=2", "load_s=20"],
        &busybox,
        &out,
    );
    let max_s = column(&out, "max_s");
    assert!(max_s.len() == 1 && max_s.iter().all(|x| *x > 0.0 && *x < 30.0), "{max_s:?}");
    let json = std::fs::read_to_string(out.join("sweep-kills.json")).expect("the sweep's JSON");
    assert!(json.contains("image=tarsier-busybox:latest; health=none"), "the source line names the service: {json}");
    let out = dir.join("hung-busybox");
    let check = "health=wget -q -O /dev/null http://127.0.0.1:8080/health";
    run_experiment(
        &stack,
        "scenarios/experiments/hung-replica.yaml",
        &["interval_s=1"],
        &["image=tarsier-busybox:latest", check],
        &out,
    );
    let (detect, replaced) = (column(&out, "detect_s"), column(&out, "replaced_s"));
    assert!(
        detect.len() == 1 && *detect.first().unwrap_or(&0.0) > 0.0 && replaced[0] > detect[0],
        "{detect:?} {replaced:?}"
    );

    // Each scenario's teardown removed the stack, its network and configs, and left the swarm as it found it.
    let label = format!("label=com.docker.stack.namespace={}", stack.0);
    assert_eq!(docker(&["ps", "-aq", "--filter", &label]), "", "containers left behind");
    assert_eq!(docker(&["network", "ls", "-q", "--filter", &label]), "", "networks left behind");
    if swarm_before != "active" {
        assert_eq!(
            docker(&["network", "ls", "-q", "--filter", "name=^docker_gwbridge$"]),
            "",
            "docker_gwbridge left behind"
        );
    }
    assert_eq!(docker(&["info", "-f", "{{.Swarm.LocalNodeState}}"]), swarm_before, "the swarm was not left as found");
    let _ = std::fs::remove_dir_all(&dir);
}
