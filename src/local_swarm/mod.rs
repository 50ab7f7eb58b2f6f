//! `tarsier swarm`: N agents on loopback. Up to [`PROCESS_LIMIT`] agents each runs in a process of its own
//! (`processes`), supervised and restarted when it dies, so a fault that ends one agent ends that agent only;
//! above it, or with `--in-process`, all run in this process (`in_process`), finding each other through an
//! in-process registry: nothing to install, for demos, tests, benchmarks and scenarios' `target: {local: N}`.

mod in_process;
mod processes;

use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::agent::config::AgentConfig;
use crate::cli::{AgentArgs, SwarmArgs};
use crate::client::{wait_for_report, LiveLine};

pub(crate) use in_process::LocalSwarm;
use processes::ProcessSwarm;

/// The most agents `tarsier swarm` runs as processes of their own by default: each costs a process (about
/// 10 MiB resident); above it they share one.
pub const PROCESS_LIMIT: usize = 32;

/// One agent of a local swarm, as the banner and the demo need it.
pub(crate) struct Member {
    pub name: String,
    pub public: std::net::SocketAddr,
    pub service: std::net::SocketAddr,
}

/// `--label zone=a,b`: each key with the values dealt to the agents in turn.
pub(crate) fn dealt_labels(flags: &[String]) -> anyhow::Result<Vec<(String, Vec<String>)>> {
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
    let in_process = args.in_process || args.agents > PROCESS_LIMIT;
    let swarm = if in_process {
        Swarm::InProcess(LocalSwarm::start(&args).await?)
    } else {
        Swarm::Processes(ProcessSwarm::start(&args).await?)
    };
    let members = swarm.members();
    let n = members.len();
    if in_process {
        crate::say!(
            "local swarm: {n} agents on 127.0.0.1, in this one process (commands that end a process are refused)"
        );
        if !args.in_process {
            crate::say!("  (more than {PROCESS_LIMIT} agents share one process; fewer run one process each)");
        }
    } else {
        crate::say!("local swarm: {n} agents on 127.0.0.1, each in a process of its own (one that dies is restarted)");
    }
    for agent in members.iter().take(5) {
        crate::say!("  {:<10} public http://{}  service http://{}", agent.name, agent.public, agent.service);
    }
    if n > 5 {
        let last = &members[n - 1];
        crate::say!("  ... {:<6} public http://{}  service http://{}", last.name, last.public, last.service);
    }
    let first = format!("http://{}", members[0].public);
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

/// The swarm in either form.
enum Swarm {
    InProcess(LocalSwarm),
    Processes(ProcessSwarm),
}

impl Swarm {
    fn members(&self) -> Vec<Member> {
        match self {
            Swarm::InProcess(swarm) => swarm.members(),
            Swarm::Processes(swarm) => swarm.members(),
        }
    }

    async fn stop(self) -> anyhow::Result<()> {
        match self {
            Swarm::InProcess(swarm) => swarm.stop().await,
            Swarm::Processes(swarm) => swarm.stop().await,
        }
    }
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
