//! tarsier: a chaos and load-testing agent swarm.

use clap::Parser as _;
use tokio_util::sync::CancellationToken;

use config::AgentConfig;
use tarsier::cli::{Cli, CliCommand, LogFormat, ScenarioCommand};
use tarsier::{agent, client, config, demo, scenario, swarm};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // One crypto provider for the whole process (the service port's TLS and the HTTP client).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("tarsier: cannot start the runtime: {err}");
            return std::process::ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => std::process::ExitCode::from(code as u8),
        Err(err) => {
            eprintln!("tarsier: {err:#}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        CliCommand::Agent(args) => {
            let config = AgentConfig::load(&args)?;
            init_logging(config.log_format.unwrap_or(LogFormat::Text));
            let shutdown = CancellationToken::new();
            let agent = agent::BoundAgent::bind(&config, None, agent::http_client()?, shutdown.clone()).await?;
            let state = agent.state.clone();
            // Tests and scripts read the bound addresses from this first line.
            tracing::info!(
                "agent listening public={} service={} name={} pid={}",
                state.public_addr,
                state.service_addr,
                state.name,
                std::process::id()
            );
            tokio::spawn(stop_on_signal(shutdown));
            agent.serve().await?;
            Ok(0)
        }
        CliCommand::Exec(args) => {
            client::exec(&args.url, &args.file, args.timeout.into(), args.report, args.json).await
        }
        CliCommand::Abort(args) => client::abort(&args.url).await,
        CliCommand::Swarm(args) => {
            if std::env::var_os("TARSIER_LOG").is_none() {
                std::env::set_var("TARSIER_LOG", "warn");
            }
            init_logging(LogFormat::Text);
            swarm::run(args).await
        }
        CliCommand::Scenario(ScenarioCommand::Check { files }) => Ok(scenario::check_files(&files)),
        CliCommand::Scenario(ScenarioCommand::Run { files, junit, target, service }) => {
            if std::env::var_os("TARSIER_LOG").is_none() {
                std::env::set_var("TARSIER_LOG", "warn");
            }
            init_logging(LogFormat::Text);
            scenario::run_files(&files, junit.as_ref(), target.as_deref(), service.as_deref()).await
        }
        CliCommand::Demo(args) => {
            if std::env::var_os("TARSIER_LOG").is_none() {
                // The demo prints its own table; only problems are worth a log line there.
                std::env::set_var("TARSIER_LOG", "warn");
            }
            init_logging(LogFormat::Text);
            demo::run(args).await
        }
    }
}

/// Fires `shutdown` on SIGTERM (Kubernetes, systemd) or SIGINT (Ctrl-C).
async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(term) => term,
        Err(err) => {
            tracing::error!(%err, "cannot watch SIGTERM; only Ctrl-C stops the agent cleanly");
            let _ = tokio::signal::ctrl_c().await;
            shutdown.cancel();
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
    }
    shutdown.cancel();
}

fn init_logging(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("TARSIER_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
