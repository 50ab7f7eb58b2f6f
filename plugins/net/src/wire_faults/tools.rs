//! Running the kernel's own configuration tools (`nft`, `tc`, `ip`, `iptables-restore`) from Debian's
//! nftables, iproute2 and iptables packages, and reading their failures as what the caller must hear: a
//! missing tool or kernel piece is a `501`, a missing privilege a `403`.
//!
//! Why the tools and not netlink crates: the rules are a few per fault, installed once, so the 2-5 ms a tool
//! takes does not matter; the tools do each table's change as one atomic transaction (`nft -f`,
//! `iptables-restore`), know every kernel's quirks, and what they run is exactly what an operator would type
//! to check or undo it by hand (the answer and the docs show it). Nothing the body says reaches them as text:
//! every value is a typed address, port, number or a checked interface name.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use tarsier_plugin::CommandError;

/// One tool's run may take this long (nft with a large ruleset takes tens of ms).
const TOOL_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `program args`, with `stdin` fed to it when given; its stdout, or the failure as the agent answers it.
pub fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, CommandError> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::NotFound => CommandError::Unsupported(format!(
                "`{program}` is not installed here; it comes with Debian's {} package",
                package_of(program)
            )),
            _ => CommandError::Failed(format!("could not start `{program}`: {err}")),
        })?;
    if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
        input.write_all(text.as_bytes()).map_err(|err| CommandError::Failed(format!("`{program}`: {err}")))?;
    }
    // The output is read while the tool runs (a listing of a large ruleset fills a pipe's 64 KiB and would
    // block the tool until it was killed), on a thread that the deadline does not have to wait for.
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let output = match finished.recv_timeout(TOOL_TIMEOUT) {
        Ok(output) => output.map_err(|err| CommandError::Failed(format!("`{program}`: {err}")))?,
        Err(_) => {
            // SAFETY: kill(2) on our own child, not yet reaped (its waiter thread is still waiting on it).
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
            return Err(CommandError::Failed(format!("`{program}` did not finish within 10 s")));
        }
    };
    if output.status.success() {
        return Ok(String::from_utf8_lossy(&output.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(failure(program, args, stderr.trim()))
}

/// What a tool's error message means for the caller.
fn failure(program: &str, args: &[&str], stderr: &str) -> CommandError {
    let shown: String = stderr.lines().take(4).collect::<Vec<_>>().join(" | ").chars().take(400).collect();
    let what = format!("`{program} {}` failed: {shown}", args.join(" "));
    if stderr.contains("Operation not permitted") || stderr.contains("Permission denied") {
        return CommandError::Forbidden(format!("{what} (the agent needs the NET_ADMIN capability)"));
    }
    let missing = [
        ("unknown qdisc", "a queueing discipline this kernel lacks"),
        ("Unknown qdisc", "a queueing discipline this kernel lacks"),
        ("classifier not found", "a tc classifier this kernel lacks"),
        ("Failed to load TC action module", "a tc action this kernel lacks"),
        ("Could not process rule: No such file or directory", "an nftables expression this kernel lacks"),
        ("Unknown device type", "a device type (ifb?) this kernel lacks"),
        ("Protocol not supported", "a netfilter family this kernel lacks"),
        ("can't initialize", "an iptables table or target this kernel lacks"),
    ];
    if let Some((_, piece)) = missing.iter().find(|(needle, _)| stderr.contains(needle)) {
        return CommandError::Unsupported(format!("{what}: the fault needs {piece}"));
    }
    CommandError::Failed(what)
}

fn package_of(program: &str) -> &'static str {
    match program {
        "nft" => "nftables",
        "tc" | "ip" => "iproute2",
        _ => "iptables",
    }
}

/// True when the process holds CAP_NET_ADMIN in its effective set (bit 12 of `CapEff` in /proc/self/status).
pub fn has_net_admin() -> bool {
    const CAP_NET_ADMIN: u32 = 12;
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("CapEff:"))?;
            u64::from_str_radix(line.trim_start_matches("CapEff:").trim(), 16).ok()
        })
        .is_some_and(|caps| caps & (1 << CAP_NET_ADMIN) != 0)
}

/// The refusal of an agent without CAP_NET_ADMIN.
pub fn require_net_admin() -> Result<(), CommandError> {
    if has_net_admin() {
        return Ok(());
    }
    Err(CommandError::Forbidden(
        "network faults need the NET_ADMIN capability, which this agent does not have (Docker: --cap-add \
         NET_ADMIN; Kubernetes: securityContext.capabilities.add: [NET_ADMIN])"
            .into(),
    ))
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_output_larger_than_a_pipe_is_read_whole() {
        let out = super::run("sh", &["-c", "head -c 300000 /dev/zero | tr '\\0' x"], None).unwrap();
        assert_eq!(out.len(), 300_000);
    }

    #[test]
    fn a_missing_tool_names_its_package() {
        let err = super::run("nft-not-here", &[], None).unwrap_err();
        assert!(matches!(err, tarsier_plugin::CommandError::Unsupported(_)), "{err}");
    }
}
