//! `tarsier swarm`: N agents in one process on loopback, finding each other through an in-process registry.
//! The embedded default: nothing to install, for demos, tests and benchmarks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::agent::config::AgentConfig;
use crate::agent::discovery::LocalRegistry;
use crate::agent::state::AgentState;
use crate::agent::{http_client, BoundAgent};
use crate::cli::{AgentArgs, SwarmArgs};
use crate::client::{wait_for_report, LiveLine};

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

    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        for task in self.serving {
            task.await??;
        }
        Ok(())
    }
}

/// `--label zone=a,b`: each key with the values dealt to the agents in turn.
fn dealt_labels(flags: &[String]) -> anyhow::Result<Vec<(String, Vec<String>)>> {
    flags
        .iter()
        .map(|flag| {
            let (key, values) =
                flag.split_once('=').with_context(|| format!("--label {flag:?}: write KEY=V1,V2,..."))?;
            let values: Vec<String> = values.split(',').map(str::to_owned).collect();
            Ok((key.to_owned(), values))
        })
        .collect()
}

/// Runs a local swarm until `shutdown` fires (SIGTERM or Ctrl-C), then stops every agent, which releases
/// everything they hold.
pub async fn run(args: SwarmArgs, shutdown: CancellationToken) -> anyhow::Result<i32> {
    let swarm = LocalSwarm::start(&args).await?;
    let n = swarm.agents.len();
    crate::say!("local swarm: {n} agents on 127.0.0.1");
    for agent in swarm.agents.iter().take(5) {
        crate::say!("  {:<10} public http://{}  service http://{}", agent.name, agent.public_addr, agent.service_addr);
    }
    if n > 5 {
        let last = &swarm.agents[n - 1];
        crate::say!("  ... {:<6} public http://{}  service http://{}", last.name, last.public_addr, last.service_addr);
    }
    let first = format!("http://{}", swarm.agents[0].public_addr);
    if !args.no_demo {
        // The demo is a client of the swarm: with a token in the config, it sends the token.
        let token = AgentConfig::load(&AgentArgs { config: args.config.clone(), ..AgentArgs::default() })?.token()?;
        tokio::select! {
            demo = demo_waves(&first, n, token.as_ref()) => if let Err(err) = demo {
                crate::say_err!("tarsier swarm: demo wave failed: {err:#}");
            },
            _ = shutdown.cancelled() => {}
        }
    }
    let me = crate::client::output::self_command();
    crate::client::output::line(format!(
        "\nSend your own:  printf 'command: sleep/sleep\\nwave: {{remain: 2, buddies: 3, report: true}}\\n' | {me} exec --report {first} -"
    ));
    crate::client::output::line(format!("Stop everything: {me} abort {first}"));
    if !args.once {
        crate::say!("Serving until Ctrl-C or SIGTERM.");
        shutdown.cancelled().await;
    }
    swarm.stop().await?;
    Ok(0)
}

/// A wave with duplicates, then a dedupe flood, each with its report printed.
async fn demo_waves(first: &str, n: usize, token: Option<&crate::credentials::Token>) -> anyhow::Result<()> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        headers.insert(reqwest::header::AUTHORIZATION, token.bearer());
    }
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).default_headers(headers).build()?;
    let buddies = 3.min(n.saturating_sub(1)) as u64;
    let expected = (0..=2).map(|hop| buddies.pow(hop)).sum::<u64>();
    let waves = [
        (
            format!("sleep 100ms, remain 2, buddies 3 (duplicates allowed: {expected} executions expected)"),
            "command: sleep/sleep\ndata: {duration: 100ms}\nwave: {remain: 2, buddies: 3, report: true}\n",
            expected,
        ),
        (
            format!("dedupe flood to all {n} agents (each runs it once)"),
            "command: sleep/sleep\ndata: {duration: 0s}\nwave: {remain: 16, buddies: 3, dedupe: true, report: true}\n",
            n as u64,
        ),
    ];
    for (title, body, expected) in waves {
        let response = client
            .post(format!("{first}/exec"))
            .header(reqwest::header::CONTENT_TYPE, "application/yaml")
            .body(body)
            .send()
            .await?;
        let status = response.status();
        let answer: Value = response.json().await.context("the exec answer")?;
        anyhow::ensure!(status.is_success(), "the first agent answered {status}: {}", answer["error"]);
        let id = answer["wave_id"].as_str().context("no wave_id in the answer")?.to_owned();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let summary = wait_for_report(&client, first, &id, expected, deadline, &LiveLine::hidden()).await?;
        crate::client::output::line(format!("\n{title}:"));
        crate::client::output::wave_report(&summary, Some(n as u64));
    }
    Ok(())
}
