//! tarsier: a chaos and load-testing agent swarm.

use std::io::Write as _;

use clap::Parser as _;
use tokio_util::sync::CancellationToken;

use config::AgentConfig;
use tarsier::agent::config;
use tarsier::cli::{Cli, CliCommand, LogFormat, ScenarioCommand};
use tarsier::sys::heap_trim;
use tarsier::{agent, client, console, demo, local_swarm, scenario};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse_from(reference_command_line(std::env::args_os().collect()));
    // One crypto provider for the whole process (the service port's TLS and the HTTP client).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "tarsier: cannot start the runtime: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    let outcome = runtime.block_on(run(cli));
    // Work still on tokio's blocking pool (a DNS look-up that hangs) must not hold the exit up.
    runtime.shutdown_timeout(std::time::Duration::from_millis(300));
    match outcome {
        Ok(code) => std::process::ExitCode::from(code as u8),
        Err(err) => {
            // Not `eprintln!`: it panics when stderr is a closed pipe.
            let _ = writeln!(std::io::stderr(), "tarsier: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}

/// The reference Tarsier's command line, `tarsier -c FILE`, is `tarsier agent -c FILE`.
fn reference_command_line(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let reference = args.get(1).and_then(|a| a.to_str()).is_some_and(|a| {
        a == "-c" || a == "--config" || a.starts_with("--config=") || (a.starts_with("-c") && a.len() > 2)
    });
    if reference {
        args.insert(1, "agent".into());
    }
    args
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        CliCommand::Agent(args) => {
            let config = AgentConfig::load(&args)?;
            let file_log = config.logging.file_settings()?;
            let _logs = install_logs(config.log_format.unwrap_or(LogFormat::Text), file_log)?;
            for note in &config.notes {
                tracing::warn!("config: {note}");
            }
            let shutdown = CancellationToken::new();
            let agent = agent::BoundAgent::bind(&config, None, agent::http_client(&config)?, shutdown.clone()).await?;
            let state = agent.state.clone();
            let mut shipping = None;
            if let Some(file_log) = tarsier::logs::file_log() {
                file_log.set_identity(tarsier::logs::Identity::new_boot(state.name.to_string()))?;
                if let Some(ship) = config.logging.ship.clone() {
                    shipping = tarsier::logs::start_shipping(ship);
                }
            }
            // Tests and scripts read the bound addresses from this first line.
            tracing::info!(
                "agent listening public={} service={} name={} pid={}",
                state.public_addr,
                state.service_addr,
                state.name,
                std::process::id()
            );
            tokio::spawn(stop_on_signal(shutdown.clone()));
            tokio::spawn(heap_trim::trim_freed_heap(shutdown));
            let served = agent.serve().await;
            if let Some(shipping) = shipping {
                shipping.finish().await;
            }
            served?;
            Ok(0)
        }
        CliCommand::Exec(args) => {
            let output = if args.json { client::OutputFormat::Json } else { args.output };
            let options = client::ExecOptions {
                timeout: args.timeout.into(),
                report: args.report,
                output,
                all_agents: args.agents,
            };
            // A guard that is wrong is an error before anything runs: exit 2 with what is wrong.
            let guards = client::Guards::parse(&args.guards, args.prometheus.clone()).map_err(anyhow::Error::msg)?;
            client::exec(&args.url, &args.file, options, &guards, &args.client).await
        }
        CliCommand::Abort(args) => client::abort(&args.url, args.local, args.json, &args.client).await,
        CliCommand::Probe(args) => client::probe(&args.url, args.timeout.0, &args.client).await,
        CliCommand::Commands(args) => client::commands(&args.url, args.json, &args.client).await,
        CliCommand::Status(args) => client::status(&args.url, args.watch, args.json, &args.client).await,
        CliCommand::Jobs(args) => client::jobs(&args.url, args.watch, args.json, &args.client).await,
        CliCommand::Job(args) => client::job(&args.url, args.id, args.json, &args.client).await,
        CliCommand::Cancel(args) => client::cancel(&args.url, args.id, &args.client).await,
        CliCommand::Ship(args) => {
            let _logs = init_logging(LogFormat::Text);
            let name = args.name.unwrap_or_default();
            anyhow::ensure!(
                name.is_empty() || tarsier::logs::files::valid_name(&name),
                "--name `{name}`: letters, digits, `.`, `_` and `-` only"
            );
            anyhow::ensure!(args.dir.is_dir(), "{} is not a directory", args.dir.display());
            anyhow::ensure!(
                !args.nats.urls.is_empty(),
                "give --url: a NATS server (repeat it for a cluster's members)"
            );
            let config = tarsier::logs::ship::ShipConfig {
                replicas: args.replicas,
                ..ship_config(args.nats, args.subject, args.retention)
            };
            config.check().map_err(anyhow::Error::msg)?;
            let shipper = tarsier::logs::ship::Shipper::new(config, args.dir, name).stop_when_misconfigured();
            let stop = CancellationToken::new();
            tokio::spawn(stop_on_signal(stop.clone()));
            let stats = shipper.stats.clone();
            shipper.run_on_own_thread(stop, args.once)?.await??;
            let stats = stats.runtime();
            tracing::info!(%stats, "tarsier ship: stopped");
            Ok(0)
        }
        CliCommand::Logs(tarsier::cli::LogsCommand::Verify(args)) => {
            let mut verifier = tarsier::logs::verify::Verifier::default();
            match (&args.file, args.nats.urls.is_empty()) {
                (Some(file), _) => tarsier::logs::verify::read_file(file, &mut verifier)
                    .map_err(|err| anyhow::anyhow!("{}: {err}", file.display()))?,
                (None, false) => {
                    let config = ship_config(args.nats, "tarsier.logs".into(), Default::default());
                    config.check().map_err(anyhow::Error::msg)?;
                    tarsier::logs::verify::read_stream(&config, &mut verifier, args.timeout.0).await?;
                }
                (None, true) => anyhow::bail!("give --url (a NATS server holding the stream) or --file"),
            }
            let verdict = verifier.verdict();
            let text = if args.json { serde_json::to_string_pretty(&verdict)? + "\n" } else { verdict.table() };
            let _ = std::io::stdout().write_all(text.as_bytes());
            Ok(if verdict.holes() > 0 { 1 } else { 0 })
        }
        CliCommand::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "tarsier", &mut std::io::stdout());
            Ok(0)
        }
        CliCommand::Man { dir: None } => {
            let page = clap_mangen::Man::new(<Cli as clap::CommandFactory>::command());
            anyhow::Context::context(page.render(&mut std::io::stdout()), "cannot write the man page")?;
            Ok(0)
        }
        CliCommand::Man { dir: Some(dir) } => {
            std::fs::create_dir_all(&dir).map_err(|e| anyhow::anyhow!("cannot make {}: {e}", dir.display()))?;
            clap_mangen::generate_to(<Cli as clap::CommandFactory>::command(), &dir)
                .map_err(|e| anyhow::anyhow!("cannot write the man pages into {}: {e}", dir.display()))?;
            println!("man pages written into {} (man -l {}/tarsier-exec.1)", dir.display(), dir.display());
            Ok(0)
        }
        CliCommand::Swarm(args) => {
            let _logs = warnings_only();
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            tokio::spawn(heap_trim::trim_freed_heap(shutdown.clone()));
            local_swarm::run(args, shutdown).await
        }
        CliCommand::Scenario(ScenarioCommand::Check { files }) => Ok(scenario::check_files(&files)),
        CliCommand::Scenario(ScenarioCommand::Chart { files, write, from, markdown }) => {
            scenario::chart_files(&files, write, from.as_deref(), markdown)
        }
        CliCommand::Scenario(ScenarioCommand::Run(args)) => {
            let _logs = warnings_only();
            scenario::run_files(&args).await
        }
        CliCommand::Console(args) => {
            let _logs = warnings_only();
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            console::run(args, shutdown).await
        }
        CliCommand::Demo(args) => {
            // The demo prints its own table; only problems are worth a log line there.
            let _logs = warnings_only();
            demo::run(args).await
        }
    }
}

/// Fires `shutdown` on SIGTERM (Kubernetes, systemd) or SIGINT (Ctrl-C). It cancels before it logs, so a
/// log line that cannot be written can never keep the agent from stopping.
async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (mut term, mut int) = match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(term), Ok(int)) => (term, int),
        (Err(err), _) | (_, Err(err)) => {
            tracing::error!(%err, "cannot watch SIGTERM and SIGINT; the agent stops only when killed");
            return;
        }
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    shutdown.cancel();
    tracing::info!("{name} received");
}

/// Logs go to stderr through a bounded queue and a writer thread of their own: a stderr nobody reads (a full
/// pipe) or that was closed must never stall or panic the agent. When the queue is full, lines are dropped,
/// not waited for; write errors are not reported (there is nowhere left to report them). Keep the guard
/// until the end of `main`: dropping it flushes what is queued (for at most about a second).
/// Text logs of warnings and errors only, unless `TARSIER_LOG` says otherwise: for the commands that print
/// their own output (swarm, scenario run, console, demo).
fn warnings_only() -> tarsier::logs::LogGuard {
    if std::env::var_os("TARSIER_LOG").is_none() {
        std::env::set_var("TARSIER_LOG", "warn");
    }
    init_logging(LogFormat::Text)
}

/// `tarsier ship` and `tarsier logs verify`'s NATS flags as the config section they stand for.
fn ship_config(
    nats: tarsier::cli::NatsArgs,
    subject: String,
    retention: tarsier_plugin::HumanDuration,
) -> tarsier::logs::ship::ShipConfig {
    tarsier::logs::ship::ShipConfig {
        urls: nats.urls,
        stream: nats.stream,
        subject,
        credentials: nats.credentials,
        token_file: nats.nats_token_file,
        ca: nats.ca,
        retention,
        create_stream: true,
        replicas: 1,
    }
}

fn init_logging(format: LogFormat) -> tarsier::logs::LogGuard {
    // Without a file log no thread is started: nothing here can fail.
    install_logs(format, None).expect("stderr's logging installs")
}

/// stderr's logging, and the activity log's files when `file` is given (the flusher thread is the one
/// thing that can fail to start).
fn install_logs(
    format: LogFormat,
    file: Option<(tarsier::logs::FileSettings, tracing::Level)>,
) -> std::io::Result<tarsier::logs::LogGuard> {
    let format = match format {
        LogFormat::Text => tarsier::logs::StderrFormat::Text,
        LogFormat::Json => tarsier::logs::StderrFormat::Json,
    };
    tarsier::logs::install(format, file)
}
