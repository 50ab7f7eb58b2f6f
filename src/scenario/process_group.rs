//! A `run:` step's command in a process group of its own, ended as a whole when the step is.
//!
//! `sh -c 'python3 scripts/stack.py fail-node ...'` is two processes. Killing only `sh` past the step's
//! timeout (or on Ctrl-C, or when a guard trips) left the script running, orphaned, with the fault it had
//! installed (a frozen node, a cut link) in place until it ended on its own. Each command now leads a group;
//! a step that ends before its command does sends the group SIGTERM, so the script's own clean-up runs
//! (`finally:`, traps), and SIGKILL after [`GRACE`] for what did not stop.

use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// How long a group has after SIGTERM before SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// Ends the group when dropped, unless [`GroupGuard::finished`] said its leader ended by itself.
pub struct GroupGuard {
    group: Option<Pid>,
}

impl GroupGuard {
    /// For a child spawned with `process_group(0)`: its pid is its group's id. The child must be reaped only
    /// after this guard is dropped (declare the guard after it), so the id cannot be reused meanwhile.
    pub fn new(leader: Option<u32>) -> Self {
        GroupGuard { group: leader.and_then(|pid| i32::try_from(pid).ok()).map(Pid::from_raw) }
    }

    /// The command ended by itself: its group is left alone (what it started in the background is its own).
    pub fn finished(&mut self) {
        self.group = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        let Some(group) = self.group.take() else { return };
        if killpg(group, Signal::SIGTERM).is_err() {
            return; // the group is gone already
        }
        // Off the async runtime: a short-lived thread, bounded by GRACE.
        std::thread::spawn(move || {
            std::thread::sleep(GRACE);
            let _ = killpg(group, Signal::SIGKILL);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    fn alive(pid: u32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| !stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z'))
            .unwrap_or(false)
    }

    #[test]
    fn a_dropped_guard_ends_the_leader_and_its_children_and_lets_them_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        let (cleaned, ready) = (dir.path().join("cleaned"), dir.path().join("ready"));
        // `ready` once the trap is set: a SIGTERM before it would end the shell without its clean-up.
        let script = format!(
            "sh -c 'trap \"touch {}; exit 0\" TERM; touch {}; sleep 30 & wait' & echo $!; wait",
            cleaned.display(),
            ready.display()
        );
        let mut child = std::process::Command::new("sh")
            .args(["-c", &script])
            .stdout(std::process::Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        let grandchild: u32 = line.trim().parse().unwrap();
        assert!(alive(grandchild));
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !ready.exists() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(ready.exists(), "the command never set its trap");
        drop(GroupGuard::new(Some(child.id())));
        let _ = child.wait();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while alive(grandchild) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(!alive(grandchild), "the child's child outlived the step");
        assert!(cleaned.exists(), "SIGTERM first: the command's own clean-up ran");
    }

    #[test]
    fn a_finished_command_is_left_alone() {
        let mut guard = GroupGuard::new(Some(u32::MAX));
        guard.finished();
        drop(guard); // no signal to anyone
        let none = GroupGuard::new(None);
        drop(none);
    }
}
