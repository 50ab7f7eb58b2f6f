//! Undo that outlives the agent. Every fault an agent installs is named after its public port (nftables
//! tables `tarsier_p<port>_f<id>`, iptables chains `TARSIER_P<port>_F<id>_E/_I`, the htb root `<port>:` in
//! hex, the ingress filter of that priority, the `tfb<port>` device), so one script finds and removes them
//! all. It runs:
//! - in a tiny reaper (`sh`, in a session of its own, deaf to INT/TERM/HUP) that the agent starts with its
//!   first fault and that waits on a pipe only the agent holds: when the agent dies, even by SIGKILL, the
//!   pipe closes and the reaper removes what is left, then exits;
//! - when an agent starts, for its own port: what it finds there was left by a dead agent on that port.
//!
//! The script is fixed text; the port, a number, is all that varies.

use std::process::{Child, Command, Stdio};

/// The shell script that removes every fault of the agent on `port` in this network namespace.
pub fn cleanup_script(port: u16) -> String {
    let handle = format!("{:x}", super::tc::handle(port));
    format!(
        r#"P={port}
nft list tables 2>/dev/null | sed -n "s/^table \(inet\|netdev\) \(tarsier_p${{P}}_f[0-9]*\)$/\1 \2/p" | while read f t; do
  nft delete table "$f" "$t"
done
for ipt in iptables ip6tables; do
  for c in $($ipt-save -t filter 2>/dev/null | sed -n "s/^:\(TARSIER_P${{P}}_F[0-9]*_[EI]\) .*/\1/p"); do
    for hook in INPUT OUTPUT; do
      n=0; while [ $n -lt 64 ] && $ipt -w -D $hook -j "$c" 2>/dev/null; do n=$((n+1)); done
    done
    $ipt -w -F "$c" 2>/dev/null; $ipt -w -X "$c" 2>/dev/null
  done
done
for d in $(ip -o link show | sed -n 's/^[0-9]*: \([^:@]*\).*/\1/p'); do
  tc qdisc del dev "$d" root handle {handle}: 2>/dev/null
  tc filter del dev "$d" parent ffff: prio {prio} 2>/dev/null
done
ip link del tfb$P 2>/dev/null
true
"#,
        prio = super::tc::handle(port),
    )
}

/// What the script would find to remove for `port`: the names, for the log line of an agent that cleans up
/// after a dead one (empty when nothing is left).
pub fn leftovers(port: u16) -> Vec<String> {
    let mut found = Vec::new();
    let tables = super::tools::run("nft", &["list", "tables"], None).unwrap_or_default();
    let prefix = format!("tarsier_p{port}_f");
    found.extend(
        tables
            .lines()
            .filter_map(|line| line.strip_prefix("table inet ").or_else(|| line.strip_prefix("table netdev ")))
            .filter(|name| name.starts_with(&prefix))
            .map(|name| format!("nft table {name}")),
    );
    let chain_prefix = format!(":TARSIER_P{port}_F");
    for tool in ["iptables-save", "ip6tables-save"] {
        let saved = super::tools::run(tool, &["-t", "filter"], None).unwrap_or_default();
        found.extend(
            saved
                .lines()
                .filter(|line| line.starts_with(&chain_prefix))
                .filter_map(|line| line[1..].split_whitespace().next())
                .map(|chain| format!("{tool} chain {chain}")),
        );
    }
    let qdiscs = super::tools::run("tc", &["qdisc", "show"], None).unwrap_or_default();
    let root = format!("qdisc htb {:x}: ", super::tc::handle(port));
    found.extend(qdiscs.lines().filter(|line| line.starts_with(&root)).map(|line| line.trim().to_owned()));
    if super::traffic::all_interfaces().contains(&super::tc::ifb_name(port)) {
        found.push(format!("device {}", super::tc::ifb_name(port)));
    }
    found
}

/// Runs the cleanup now and waits for it.
pub fn clean(port: u16) {
    // By its path, as the reaper's: the script does not depend on the agent's PATH to start.
    let status =
        Command::new("/bin/sh").arg("-c").arg(cleanup_script(port)).stdin(Stdio::null()).stdout(Stdio::null()).status();
    if let Err(err) = status {
        tracing::warn!(%err, port, "network faults: the cleanup script did not run");
    }
}

/// The reaper: holds the write end of its stdin; dropping it (or the agent dying) sets the reaper off.
pub struct Reaper {
    child: Child,
}

impl Reaper {
    pub fn start(port: u16) -> std::io::Result<Reaper> {
        use std::os::unix::process::CommandExt;
        // `read` is the shell's own: the reaper needs no program but sh until it sweeps up.
        let script = format!("trap '' INT TERM HUP\nwhile read -r _; do :; done\n{}", cleanup_script(port));
        // By its path: an agent whose PATH lacks the tools must still get its 501 from them, not a failed reaper.
        let mut command = Command::new("/bin/sh");
        command.arg("-c").arg(script).stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::null());
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
        unsafe {
            command.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        Ok(Reaper { child: command.spawn()? })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Reaper {
    /// The agent lets go of its faults itself before it drops the reaper; closing the pipe sets it off to
    /// sweep up anything missed, and it is reaped here so it is no zombie.
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
    }
}
