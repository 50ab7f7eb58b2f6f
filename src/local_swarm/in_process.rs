//! The in-process form of a local swarm: every agent in this process, finding the others through an
//! in-process registry. A command that would end the process is refused by each agent (`AgentState::in_process`).

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;

use crate::agent::config::AgentConfig;
use crate::agent::discovery::LocalRegistry;
use crate::agent::state::AgentState;
use crate::agent::{http_client, BoundAgent};
use crate::cli::{AgentArgs, SwarmArgs};

use super::{dealt_labels, Member};

/// Each agent holds two listening sockets, and waves keep one HTTP/2 connection per peer (two fds: both ends
/// live in this process): about 4 fds an agent, plus what commands open. A thousand agents need more than the
/// usual 1,024, so the soft limit is raised to the hard one, and a limit still too low is said up front rather
/// than discovered as failed forwards in the middle of a wave.
fn raise_fd_limit(agents: usize) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else { return };
    let limit = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() { hard } else { soft };
    let needed = (agents as u64).saturating_mul(FDS_PER_AGENT).saturating_add(FDS_SPARE);
    if limit < needed {
        tracing::warn!(
            agents,
            fd_limit = limit,
            needed,
            "the open-file limit is low for this many agents: waves may fail to reach some; raise `ulimit -n` \
             (hard limit) or start fewer agents"
        );
    }
}

const FDS_PER_AGENT: u64 = 4;
const FDS_SPARE: u64 = 256;

pub(crate) struct LocalSwarm {
    pub agents: Vec<Arc<AgentState>>,
    pub shutdown: CancellationToken,
    serving: Vec<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

impl LocalSwarm {
    pub async fn start(args: &SwarmArgs) -> anyhow::Result<Self> {
        anyhow::ensure!(args.agents >= 1, "--agents must be at least 1");
        raise_fd_limit(args.agents);
        let registry = Arc::new(LocalRegistry::default());
        // One client for every agent: they share the config, so its TLS is theirs too (copies are signed with
        // the swarm key, never sent with the token).
        let http =
            http_client(&AgentConfig::load(&AgentArgs { config: args.config.clone(), ..AgentArgs::default() })?)?;
        let shutdown = CancellationToken::new();
        let n = args.agents;
        let dealt = dealt_labels(&args.labels)?;
        let mut agents = Vec::with_capacity(n);
        let mut serving = Vec::with_capacity(n);
        for i in 0..n {
            let port = |offset: usize| -> anyhow::Result<u16> {
                match args.base_port {
                    Some(base) => {
                        u16::try_from(usize::from(base) + offset).context("--base-port + agents is over 65535")
                    }
                    None => Ok(0),
                }
            };
            let mut config = AgentConfig::load(&AgentArgs { config: args.config.clone(), ..AgentArgs::default() })?;
            config.listen = Some(SocketAddr::from(([127, 0, 0, 1], port(i)?)));
            config.service_listen = Some(SocketAddr::from(([127, 0, 0, 1], port(n + i)?)));
            config.name = Some(format!("local-{i}"));
            for (key, values) in &dealt {
                config.labels.insert(key.clone(), values[i % values.len()].clone());
            }
            crate::wire::body::check_labels(&config.labels).map_err(|why| anyhow::anyhow!("--label: {why}"))?;
            config.advertise = None;
            let agent = BoundAgent::bind(&config, Some(&registry), http.clone(), shutdown.clone()).await?;
            agents.push(agent.state.clone());
            serving.push(tokio::spawn(agent.serve()));
        }
        Ok(Self { agents, shutdown, serving })
    }

    pub fn members(&self) -> Vec<Member> {
        self.agents
            .iter()
            .map(|a| Member { name: a.name.to_string(), public: a.public_addr, service: a.service_addr })
            .collect()
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        for task in self.serving {
            task.await??;
        }
        Ok(())
    }
}
