//! Scenarios: declarative chaos runs with expectations, for CI. `model` is the file as written, `plan` turns
//! it once into typed steps (`bound`, `compare` and `sweep` are the pieces it types), `runner` runs them,
//! `measure` reads the numbers, `report` prints the table and writes JUnit XML.

mod compare;
pub mod html;
mod measure;
mod model;
mod params;
mod plan;
mod process_group;
mod publish;
pub mod report;
mod runner;
mod shell;
mod steady_state;
mod sweep;
mod sweep_chart;
mod sweep_table;
mod tail;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::cli::ClientArgs;
use crate::cli::{ScenarioRunArgs, SwarmArgs};
use crate::guard::Sources;
use crate::local_swarm::LocalSwarm;
use plan::{load, load_with, Overrides, Scenario, Target};
use report::{junit, RunReport};
use report::{Outcome, StepResult};
use runner::Runner;
use sweep::SweepOverride;

/// Exit statuses of `tarsier scenario run`.
pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_BAD_FILE: i32 = 2;
pub const EXIT_INTERRUPTED: i32 = 130;

/// `tarsier scenario check`: loads every file; 0 when all are valid, 2 otherwise.
pub fn check_files(files: &[PathBuf]) -> i32 {
    let mut code = EXIT_OK;
    for file in files {
        match load(file) {
            Ok(scenario) => crate::say!("{}: ok ({}, {} steps)", file.display(), scenario.name, scenario.steps.len()),
            Err(err) => {
                crate::say_err!("{err}");
                code = EXIT_BAD_FILE;
            }
        }
    }
    code
}

/// The largest sweep JSON `scenario chart` reads (1,000 rounds of a few figures are well under 1 MiB).
const MAX_SWEEP_JSON: u64 = 16 * 1024 * 1024;

/// `tarsier scenario chart`: each sweep JSON drawn again as SVG (after a change to the chart, without running
/// the experiment again).
pub fn chart_files(
    files: &[PathBuf],
    write: bool,
    from: Option<&std::path::Path>,
    markdown: bool,
) -> anyhow::Result<i32> {
    let scenario = match from {
        Some(path) => Some(load(path).map_err(anyhow::Error::msg)?),
        None => None,
    };
    for file in files {
        let text = crate::sys::files::read_bounded(file, MAX_SWEEP_JSON, "sweep JSON")?.text;
        let mut table: report::SweepTable =
            serde_json::from_str(&text).with_context(|| format!("{}: not a sweep's JSON", file.display()))?;
        if let Some(scenario) = &scenario {
            let sweep = plan::find_sweep(&scenario.steps, &table.name).with_context(|| {
                format!("{}: the scenario has no sweep named {:?}", from.unwrap_or(file).display(), table.name)
            })?;
            table.chart = sweep.chart.clone();
        }
        if table.source.is_none() {
            // Results written before sweeps kept their source: say what is known, no more.
            let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            table.source = Some(format!("drawn by tarsier {} from {name}", env!("CARGO_PKG_VERSION")));
        }
        if markdown {
            crate::client::output::line(table.markdown());
            continue;
        }
        let svg = table.chart_svg().map_err(|e| anyhow::anyhow!("cannot draw {}: {e}", file.display()))?;
        if write {
            let target = file.with_extension("svg");
            crate::sys::files::write_no_follow(&target, svg.as_bytes())
                .with_context(|| format!("cannot write {}", target.display()))?;
            crate::say!("{}", target.display());
        } else {
            crate::client::output::line(svg);
        }
    }
    Ok(EXIT_OK)
}

/// What `--sweep`, `--param` and `--rounds` change in the files.
fn overrides_of(args: &ScenarioRunArgs) -> Result<Overrides, String> {
    Ok(Overrides {
        sweeps: args.sweeps.iter().map(|text| SweepOverride::parse(text)).collect::<Result<_, _>>()?,
        params: args.params.iter().map(|text| params::ParamOverride::parse(text)).collect::<Result<_, _>>()?,
        rounds: args.rounds,
    })
}

/// `tarsier scenario run`: every file in turn; the swarm is aborted after each, on failure and on Ctrl-C.
pub async fn run_files(args: &ScenarioRunArgs) -> anyhow::Result<i32> {
    let (outputs, access) = (&args.outputs, &args.client);
    let overrides = match overrides_of(args) {
        Ok(overrides) => overrides,
        Err(err) => {
            crate::say_err!("{err}");
            return Ok(EXIT_BAD_FILE);
        }
    };
    let mut scenarios = Vec::new();
    for file in &args.files {
        match load_with(file, &overrides) {
            Ok(mut scenario) => {
                if let Some(url) = &args.target {
                    scenario.target = Target::Agent { public: url.clone(), service: args.service.clone() };
                }
                scenarios.push((file, scenario));
            }
            Err(err) => {
                crate::say_err!("{err}");
                return Ok(EXIT_BAD_FILE);
            }
        }
    }
    let cancel = CancellationToken::new();
    let interrupted = cancel.clone();
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            crate::say_err!("\ninterrupted: stopping the step, aborting the swarm");
            interrupted.cancel();
        }
    });
    let remote = match &outputs.remote_write {
        Some(url) => match crate::remote_write::RemoteWrite::new(url) {
            Ok(write) => Some(Arc::new(write)),
            Err(why) => {
                crate::say_err!("--remote-write: {why}");
                return Ok(EXIT_BAD_FILE);
            }
        },
        None => None,
    };
    let mut reports = Vec::new();
    let mut code = EXIT_OK;
    for (file, scenario) in scenarios {
        let report =
            run_one(file, scenario, cancel.clone(), access, remote.clone(), outputs.console.as_deref()).await?;
        // Through anstream: the colours of the table go when the output is no terminal.
        let _ = std::io::Write::write_all(&mut anstream::stdout(), report.table().as_bytes());
        for sweep in &report.sweeps {
            crate::client::output::line(sweep.render());
        }
        if let Some(why) = &report.not_started {
            crate::say_err!("{}: not started, {why}: exit 2", report.file);
            code = EXIT_BAD_FILE;
        } else if report.broken {
            crate::say_err!(
                "{}: the setup is broken (an agent unreachable, or a body or token refused): exit 2",
                report.file
            );
            code = EXIT_BAD_FILE;
        } else if report.failures() > 0 && code == EXIT_OK {
            code = EXIT_FAILED;
        }
        reports.push(report);
        if cancel.is_cancelled() {
            code = EXIT_INTERRUPTED;
            break;
        }
    }
    if let Some(dir) = &outputs.out {
        write_out_dir(dir, &reports)?;
    }
    if let Some(path) = &outputs.junit {
        let xml = junit(&reports).context("cannot write JUnit XML")?;
        crate::sys::files::write_no_follow(path, xml.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        crate::say!("JUnit XML: {}", path.display());
    }
    if let Some(path) = &outputs.html {
        let html = html::page(&reports, &html::Environment::here());
        crate::sys::files::write_no_follow(path, html.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        crate::say!("HTML report: {}", path.display());
    }
    if let Some(path) = &outputs.summary {
        let json = report::summary_json(&reports).context("cannot write the JSON summary")?;
        crate::sys::files::write_no_follow(path, json.as_bytes())
            .with_context(|| format!("cannot write {}", path.display()))?;
        crate::say!("JSON summary: {}", path.display());
    }
    if let Some(path) = &outputs.csv {
        let csv = report::figures_csv(&reports).context("cannot write the figures as CSV")?;
        crate::sys::files::write_no_follow(path, &csv).with_context(|| format!("cannot write {}", path.display()))?;
        crate::say!("Figures (CSV): {}", path.display());
    }
    Ok(code)
}

/// `--out DIR`: every output of the run in one directory, the sweeps' tables and charts included.
fn write_out_dir(dir: &std::path::Path, reports: &[RunReport]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: String, bytes: Vec<u8>| {
        let path = dir.join(name);
        crate::sys::files::write_no_follow(&path, &bytes).with_context(|| format!("cannot write {}", path.display()))
    };
    write("junit.xml".into(), junit(reports).context("cannot write JUnit XML")?.into_bytes())?;
    write("summary.json".into(), report::summary_json(reports)?.into_bytes())?;
    write("figures.csv".into(), report::figures_csv(reports)?)?;
    write("report.html".into(), html::page(reports, &html::Environment::here()).into_bytes())?;
    for sweep in reports.iter().flat_map(|r| &r.sweeps) {
        let slug = sweep.slug();
        write(format!("sweep-{slug}.csv"), sweep.csv()?)?;
        write(format!("sweep-{slug}.json"), serde_json::to_vec_pretty(sweep)?)?;
        let chart = sweep.chart_svg().map_err(|e| anyhow::anyhow!("cannot draw the chart of {}: {e}", sweep.name))?;
        write(format!("sweep-{slug}.svg"), chart.into_bytes())?;
    }
    crate::say!("Outputs: {}", dir.display());
    Ok(())
}

async fn run_one(
    file: &std::path::Path,
    scenario: Scenario,
    cancel: CancellationToken,
    access: &ClientArgs,
    remote_write: Option<Arc<crate::remote_write::RemoteWrite>>,
    console: Option<&str>,
) -> anyhow::Result<RunReport> {
    let started = Instant::now();
    let started_at = std::time::SystemTime::now();
    crate::say!("\n== {} ({})", scenario.name, file.display());
    if let Some(description) = &scenario.description {
        crate::say!("   {}", description.trim());
    }
    // The token and certificates go to the agents only, never to Prometheus or the service under test.
    let client = crate::client::agent_client(Duration::from_secs(3600), access)?;
    let plain = crate::guard::plain_client()?;
    let (swarm, public, service) = resolve_target(&client, &scenario.target).await?;
    crate::say!("   target {public} (service {service})");
    let sources = Arc::new(Sources {
        agents: client.clone(),
        plain: plain.clone(),
        public: public.clone(),
        prometheus: scenario.prometheus.clone(),
    });
    let mut report = RunReport {
        file: file.display().to_string(),
        name: scenario.name.clone(),
        target: public.clone(),
        params: scenario.params_changed.clone(),
        steps: Vec::new(),
        started_at,
        seconds: 0.0,
        broken: false,
        figures: Vec::new(),
        sweeps: Vec::new(),
        guards: Vec::new(),
        guard_trip: None,
        not_started: None,
        remote_write: None,
    };
    let publisher = console.map(|url| publish::Publisher::new(client.clone(), url, report.clone()));
    // A run's id for its series: the scenario's name and when it started, so runs of one file stay apart.
    let remote = remote_write.map(|write| runner::Remote {
        write,
        scenario: scenario.name.clone(),
        run: humantime::format_rfc3339_seconds(started_at).to_string(),
        pending: Mutex::new(Default::default()),
    });
    let placeholders = |text: &str| {
        text.replace("{{public}}", &runner::host_port(&public)).replace("{{service}}", &runner::host_port(&service))
    };
    let steady_state = scenario.steady_state.clone().map(|mut steady| {
        steady.checks.iter_mut().for_each(|check| check.fill_placeholders(placeholders));
        steady
    });
    if let Some(steady) = &steady_state {
        let checked = Instant::now();
        let held = steady_state::hold_once(&sources, &steady.checks).await;
        report.steps.push(steady_row("steady state before the run", checked, held.clone(), remote.as_ref()));
        if let Err(why) = held {
            report.not_started = Some(format!("the steady state does not hold: {why}"));
            if let Some(swarm) = swarm {
                swarm.stop().await?;
            }
            report.seconds = started.elapsed().as_secs_f64();
            if let Some(publisher) = &publisher {
                publisher.finish(&report).await;
            }
            return Ok(report);
        }
        if let Some(publisher) = &publisher {
            publisher.set_template(report.clone());
        }
    }
    let guards = scenario
        .guards
        .iter()
        .cloned()
        .map(|mut check| {
            check.fill_placeholders(placeholders);
            check
        })
        .collect::<Vec<_>>();
    if !guards.is_empty() {
        crate::say!(
            "   {} guard(s) watching: {}",
            guards.len(),
            guards.iter().map(|g| g.name.as_str()).collect::<Vec<_>>().join(", ")
        );
    }
    let watch = crate::guard::Watch::start(guards, Some(sources.clone()));
    let runner = Arc::new(Runner {
        client,
        plain,
        public,
        service,
        prometheus: scenario.prometheus.clone(),
        continue_on_failure: scenario.continue_on_failure,
        cancel,
        tearing_down: Default::default(),
        results: Mutex::new(Vec::new()),
        figures: Mutex::new(Vec::new()),
        notes: Mutex::new(Vec::new()),
        sweeps: Mutex::new(Vec::new()),
        token: read_token(access)?,
        guards: watch.clone(),
        remote,
        in_flight: Default::default(),
        publisher: publisher.clone(),
        params_changed: scenario.params_changed.clone(),
    });
    let stop_publishing = CancellationToken::new();
    let publishing = publisher.as_ref().map(|p| p.start(runner.clone(), stop_publishing.clone()));
    runner.run_steps(&scenario.steps, 0).await;
    // The guards watch the steps only: the teardown is what the run does to recover.
    report.guards = watch.stop().await;
    report.guard_trip = watch.trip();
    if let Some(trip) = &report.guard_trip {
        crate::say_err!("   {}: the swarm was aborted", trip.message());
    }
    // Always: whatever happened, nothing the scenario started is left running, then the teardown.
    match runner.abort().await {
        Ok(detail) => crate::say!("   abort at the end: {detail}"),
        Err(err) => crate::say_err!("   abort at the end failed: {err}"),
    }
    runner.teardown(&scenario.teardown).await;
    let mut steps = std::mem::take(&mut *runner.results.lock().unwrap_or_else(|p| p.into_inner()));
    if let Some(steady) = &steady_state {
        let checked = Instant::now();
        let recovered = steady_state::recover(&sources, &steady.checks, steady.recover_within).await;
        steps.push(steady_row("steady state after the teardown", checked, recovered, runner.remote.as_ref()));
    }
    if let Some(swarm) = swarm {
        swarm.stop().await?;
    }
    report.steps.append(&mut steps);
    report.broken = report.steps.iter().any(|step| step.outcome == Outcome::Broken);
    report.seconds = started.elapsed().as_secs_f64();
    if let Some(remote) = &runner.remote {
        push_run_end(remote, &report, &watch).await;
        report.remote_write = Some(remote.write.report());
    }
    report.figures = std::mem::take(&mut *runner.figures.lock().unwrap_or_else(|p| p.into_inner()));
    report.sweeps = std::mem::take(&mut *runner.sweeps.lock().unwrap_or_else(|p| p.into_inner()));
    stop_publishing.cancel();
    if let Some(publishing) = publishing {
        let _ = publishing.await;
    }
    if let Some(publisher) = &publisher {
        publisher.finish(&report).await;
    }
    Ok(report)
}

/// A steady state's row, the run's own: said on the terminal and, with `--remote-write`, pushed as a step.
fn steady_row(
    title: &str,
    checked: Instant,
    held: Result<String, String>,
    remote: Option<&runner::Remote>,
) -> StepResult {
    let (outcome, detail) = match held {
        Ok(said) => (Outcome::Passed, said),
        Err(why) => (Outcome::Failed, why),
    };
    let step = StepResult::leaf(title, outcome, checked.elapsed(), detail);
    runner::announce(&step);
    if let Some(remote) = remote {
        remote.step_ended(&step);
    }
    step
}

/// The run's last series: each guard's readings and whether it tripped,
/// and whether the run passed; then what the pushes did, said on the terminal.
async fn push_run_end(remote: &runner::Remote, report: &RunReport, watch: &crate::guard::Watch) {
    let now = crate::remote_write::now_ms();
    let labels = [("scenario", remote.scenario.as_str()), ("run", remote.run.as_str())];
    remote.add(|batch| {
        for (guard, readings) in watch.history() {
            let labels = [labels[0], labels[1], ("guard", guard.as_str())];
            batch.add("tarsier_guard_value", &labels, readings);
            let tripped = report.guard_trip.as_ref().is_some_and(|trip| trip.guard == guard);
            batch.add("tarsier_guard_tripped", &labels, [(now, f64::from(u8::from(tripped)))]);
        }
        let passed = report.failures() == 0 && report.not_started.is_none();
        batch.add("tarsier_scenario_run_passed", &labels, [(now, f64::from(u8::from(passed)))]);
        batch.add("tarsier_scenario_run_seconds", &labels, [(now, report.seconds)]);
    });
    remote.flush().await;
    let pushed = remote.write.report();
    let failed = match (&pushed.last_error, pushed.failed) {
        (Some(why), n) if n > 0 => format!("; {n} failed, last: {why}"),
        _ => String::new(),
    };
    crate::say!("   remote write: {} series pushed to {}{failed}", pushed.pushed, pushed.url);
}

/// The public and service URLs to talk to, starting a local swarm when the target asks for one.
async fn resolve_target(
    client: &reqwest::Client,
    target: &Target,
) -> anyhow::Result<(Option<LocalSwarm>, String, String)> {
    let (consul, consul_service) = match target {
        Target::Local(n) => {
            let swarm = LocalSwarm::start(&SwarmArgs {
                agents: *n,
                base_port: None,
                config: None,
                no_demo: true,
                once: true,
                labels: Vec::new(),
                in_process: true,
            })
            .await?;
            let first = &swarm.agents[0];
            let (public, service) = (format!("http://{}", first.public_addr), format!("http://{}", first.service_addr));
            return Ok((Some(swarm), public, service));
        }
        Target::Agent { public, service } => {
            let public = crate::client::endpoint(public, "");
            let service = match service {
                Some(service) => crate::client::endpoint(service, ""),
                None => next_port(&public).unwrap_or_else(|| public.clone()),
            };
            return Ok((None, public, service));
        }
        Target::Consul { address, service } => (address, service),
    };
    let url = format!("{}/v1/health/service/{consul_service}?passing=1", crate::client::endpoint(consul, ""));
    let entries: Vec<Value> =
        client.get(&url).send().await.with_context(|| format!("cannot reach {url}"))?.json().await?;
    let entry = entries.first().with_context(|| format!("Consul has no passing `{consul_service}` agent"))?;
    let service = &entry["Service"];
    let host = match service["Address"].as_str() {
        Some(a) if !a.is_empty() => a.to_owned(),
        _ => entry["Node"]["Address"].as_str().unwrap_or("127.0.0.1").to_owned(),
    };
    // What Consul says is anybody's word who can write to it: it must be a host and ports, nothing else.
    let port = service["Port"].as_u64().and_then(|p| u16::try_from(p).ok());
    let service_port = service["Meta"]["service_port"].as_str().and_then(|p| p.parse::<u16>().ok());
    let (Some(port), Some(service_port)) = (port, service_port) else {
        anyhow::bail!("Consul's `{consul_service}` instance has no valid Port or Meta.service_port");
    };
    anyhow::ensure!(
        crate::wire::address::is_host(&host),
        "Consul's `{consul_service}` instance has the address {:?}, which is neither an IP nor a host name",
        host.chars().take(100).collect::<String>()
    );
    Ok((None, format!("http://{host}:{port}"), format!("http://{host}:{service_port}")))
}

/// `http://host:8080` -> `http://host:8081`: the default layout of the two ports.
fn next_port(url: &str) -> Option<String> {
    let (base, port) = url.rsplit_once(':')?;
    let port: u16 = port.trim_end_matches('/').parse().ok()?;
    Some(format!("{base}:{}", port.checked_add(1)?))
}

/// The swarm token of `--token-file`, for `{{token}}` in exec data.
fn read_token(access: &ClientArgs) -> anyhow::Result<Option<String>> {
    let Some(path) = &access.token_file else { return Ok(None) };
    let token = crate::sys::files::read_bounded(path, crate::credentials::MAX_TOKEN_FILE, "token file")?.text;
    Ok(Some(token.trim().to_owned()))
}
