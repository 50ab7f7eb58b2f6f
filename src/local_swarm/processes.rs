//! The process form of a local swarm: each agent a `tarsier agent` child of this process, with the others as
//! its static peers (labels included), supervised: an agent that dies (`faults/segfault`, `exit`, a kill) is
//! started again on the same ports after a backoff (1 s, doubling up to 30 s, back to 1 s once it stayed up a
//! minute), as an orchestrator would, and the restart is said on the terminal. The children get SIGTERM when
//! this process dies (PR_SET_PDEATHSIG), so none outlives it.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::cli::SwarmArgs;

use super::{dealt_labels, Member};

/// How long the swarm waits for every agent's first `/health` before it gives up.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// How long a stopped agent has to end after SIGTERM before it is killed.
const STOP_WITHIN: Duration = Duration::from_secs(10);
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Up this long, an agent's next death starts the backoff over.
const STAYED_UP: Duration = Duration::from_secs(60);

pub(crate) struct ProcessSwarm {
    members: Vec<Member>,
    stop: CancellationToken,
    supervisors: Vec<JoinHandle<()>>,
    /// Restarts so far, by agent.
    restarts: Arc<Vec<AtomicU64>>,
}

/// What starts one agent.
struct Launch {
    name: String,
    args: Vec<String>,
}

impl ProcessSwarm {
    pub async fn start(args: &SwarmArgs) -> anyhow::Result<Self> {
        anyhow::ensure!(args.agents >= 1, "--agents must be at least 1");
        let n = args.agents;
        let ports = ports(args.base_port, n)?;
        let dealt = dealt_labels(&args.labels)?;
        let labels_of = |i: usize| -> Vec<(String, String)> {
            dealt.iter().map(|(key, values)| (key.clone(), values[i % values.len()].clone())).collect()
        };
        let members: Vec<Member> = (0..n)
            .map(|i| Member {
                name: format!("local-{i}"),
                public: SocketAddr::from(([127, 0, 0, 1], ports[i])),
                service: SocketAddr::from(([127, 0, 0, 1], ports[n + i])),
            })
            .collect();
        // Every agent's public address, with its labels after `#`, so that `wave.select.labels` sees them.
        let peers: Vec<String> = members
            .iter()
            .enumerate()
            .map(|(i, m)| {
                let labels: Vec<String> = labels_of(i).iter().map(|(k, v)| format!("{k}={v}")).collect();
                if labels.is_empty() {
                    m.public.to_string()
                } else {
                    format!("{}#{}", m.public, labels.join(";"))
                }
            })
            .collect();
        let me = std::env::current_exe().context("cannot find this program to start the agents")?;
        let stop = CancellationToken::new();
        let restarts: Arc<Vec<AtomicU64>> = Arc::new((0..n).map(|_| AtomicU64::new(0)).collect());
        let mut supervisors = Vec::with_capacity(n);
        for (i, member) in members.iter().enumerate() {
            let mut agent_args = vec![
                "agent".to_owned(),
                format!("--listen={}", member.public),
                format!("--service-listen={}", member.service),
                format!("--name={}", member.name),
                "--local-swarm".to_owned(),
                format!("--peers={}", peers.join(",")),
            ];
            if let Some(config) = &args.config {
                agent_args.push(format!("--config={}", config.display()));
            }
            agent_args.extend(labels_of(i).iter().map(|(k, v)| format!("--label={k}={v}")));
            let launch = Launch { name: member.name.clone(), args: agent_args };
            supervisors.push(tokio::spawn(supervise(me.clone(), launch, stop.clone(), restarts.clone(), i)));
        }
        let swarm = Self { members, stop, supervisors, restarts };
        if let Err(err) = swarm.wait_ready().await {
            swarm.stop().await?;
            return Err(err);
        }
        Ok(swarm)
    }

    pub fn members(&self) -> Vec<Member> {
        self.members.iter().map(|m| Member { name: m.name.clone(), public: m.public, service: m.service }).collect()
    }

    /// Waits until every agent answers `/health`.
    async fn wait_ready(&self) -> anyhow::Result<()> {
        let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
        let deadline = Instant::now() + READY_WITHIN;
        for member in &self.members {
            let url = format!("http://{}/health", member.service);
            loop {
                if client.get(&url).send().await.is_ok_and(|a| a.status().is_success()) {
                    break;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "{} did not answer {url} within {}s",
                    member.name,
                    READY_WITHIN.as_secs()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        Ok(())
    }

    /// Stops every agent (SIGTERM, then SIGKILL after [`STOP_WITHIN`]) and the supervision.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        for supervisor in self.supervisors {
            supervisor.await.context("an agent's supervisor failed")?;
        }
        let restarts: u64 = self.restarts.iter().map(|r| r.load(Ordering::Relaxed)).sum();
        if restarts > 0 {
            crate::say!("local swarm: {restarts} agent restart(s) during the run");
        }
        Ok(())
    }
}

/// Free ports for `n` agents (public, then service), or `base..base + 2n`.
fn ports(base: Option<u16>, n: usize) -> anyhow::Result<Vec<u16>> {
    match base {
        Some(base) => (0..2 * n)
            .map(|offset| u16::try_from(usize::from(base) + offset).context("--base-port + agents is over 65535"))
            .collect(),
        None => {
            // Bound at once and let go together, so no two are the same; an agent binds its own a moment later.
            let held: Vec<std::net::TcpListener> =
                (0..2 * n).map(|_| std::net::TcpListener::bind("127.0.0.1:0")).collect::<Result<_, _>>()?;
            held.iter().map(|l| Ok(l.local_addr()?.port())).collect()
        }
    }
}

/// Runs one agent until `stop`, starting it again each time it dies.
async fn supervise(
    program: std::path::PathBuf,
    launch: Launch,
    stop: CancellationToken,
    restarts: Arc<Vec<AtomicU64>>,
    index: usize,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let mut command = tokio::process::Command::new(&program);
        command.args(&launch.args).stdin(Stdio::null()).stdout(Stdio::null()).kill_on_drop(true);
        // The agent tells `/status` (and so `tarsier status` and the console) how often it was restarted.
        command.env("TARSIER_RESTARTS", restarts[index].load(Ordering::Relaxed).to_string());
        if std::env::var_os("TARSIER_LOG").is_none() {
            // Ten agents' start-up lines would bury the swarm's own; warnings and errors still show.
            command.env("TARSIER_LOG", "warn");
        }
        // SAFETY: the closure runs in the child between fork and exec and only calls prctl(2), which is
        // async-signal-safe; it allocates nothing and takes no lock.
        unsafe {
            command.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM).map_err(std::io::Error::from)
            });
        }
        let started = Instant::now();
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(err) => {
                crate::say_err!("tarsier swarm: cannot start {}: {err}", launch.name);
                return;
            }
        };
        let status = tokio::select! {
            status = child.wait() => status,
            _ = stop.cancelled() => {
                end(&mut child).await;
                return;
            }
        };
        let how = match status {
            Ok(status) => describe(status),
            Err(err) => format!("cannot be waited for: {err}"),
        };
        if started.elapsed() >= STAYED_UP {
            backoff = FIRST_BACKOFF;
        }
        let count = restarts[index].fetch_add(1, Ordering::Relaxed) + 1;
        crate::say!("{} {how}; starting it again in {}s (restart {count})", launch.name, backoff.as_secs());
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.cancelled() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// SIGTERM, then SIGKILL if it has not ended within [`STOP_WITHIN`].
async fn end(child: &mut tokio::process::Child) {
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGTERM);
    }
    if tokio::time::timeout(STOP_WITHIN, child.wait()).await.is_err() {
        let _ = child.kill().await;
    }
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with status {code}"),
        (None, Some(signal)) => match nix::sys::signal::Signal::try_from(signal) {
            Ok(signal) => format!("was killed by {signal}"),
            Err(_) => format!("was killed by signal {signal}"),
        },
        _ => "ended".to_owned(),
    }
}
