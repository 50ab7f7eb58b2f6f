//! `tarsier exec`, `tarsier abort` and `tarsier commands`: the agent's API from the command line.

use std::io::Read as _;
use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;
use std::time::Instant;

mod jobs;
pub(crate) mod output;
mod status;
pub mod swarm_view;

pub use jobs::{cancel, job, jobs};
pub use output::{LiveLine, OutputFormat};
pub use status::status;

use crate::cli::ClientArgs;
use crate::credentials::Token;
use crate::wire::status::Status;

/// `http://host:port` (or `host:port`) gets `path` appended; a URL that already has a path is used as it is.
/// With an empty `path` the base URL comes back without a trailing `/`, for callers that add their own.
pub(crate) fn endpoint(url: &str, path: &str) -> String {
    let with_scheme = if url.contains("://") { url.to_owned() } else { format!("http://{url}") };
    let joined = match reqwest::Url::parse(&with_scheme) {
        Ok(mut parsed) if parsed.path() == "/" => {
            parsed.set_path(path);
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        // Not a URL: the request fails with the URL library's reason, naming it.
        Err(_) => with_scheme,
    };
    joined.trim_end_matches('/').to_owned()
}

/// The client the CLI reaches agents with: the swarm token on every request, the CA for https:// agents,
/// and a client certificate for agents that require mutual TLS.
pub(crate) fn agent_client(timeout: Duration, args: &ClientArgs) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(path) = &args.token_file {
        headers.insert(reqwest::header::AUTHORIZATION, Token::from_file(path, false)?.bearer());
    }
    let mut builder = reqwest::Client::builder().timeout(timeout).default_headers(headers);
    if let Some(ca) = &args.ca_file {
        let identity = args.cert_file.as_deref().zip(args.key_file.as_deref());
        builder = builder.tls_backend_preconfigured(crate::credentials::tls::client_config(ca, identity)?);
    } else {
        builder = crate::credentials::tls::with_system_roots(builder);
    }
    builder.build().context("cannot build an HTTP client")
}

/// Exit statuses, as k6 keeps them apart: the command ran as asked; it did not (it failed, was cancelled,
/// or a wave's agents failed); or the input or the setup is wrong (a bad body, a refused token, an agent
/// that cannot be reached), which retrying will not fix.
pub const EXIT_OK: i32 = 0;
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_SETUP: i32 = 2;

/// `tarsier exec`'s choices.
#[derive(Debug, Clone, Copy)]
pub struct ExecOptions {
    /// For the answer, and with `report` for the answer and the report together.
    pub timeout: Duration,
    pub report: bool,
    pub output: OutputFormat,
    /// With `report` and an `http_load`: a row for every agent, not the slowest 10.
    pub all_agents: bool,
}

/// Posts a body and prints the answer; the exit status says whether the agent accepted and ran it. With
/// `report`, then waits for the wave's report on the origin and prints it, merged.
/// The largest body `tarsier exec` reads (an agent accepts 1 MiB unless its `max_body` says more).
const MAX_BODY_FILE: u64 = 64 * 1024 * 1024;

/// `tarsier exec --guard`: conditions read while the command runs, and the Prometheus `promql` ones ask.
#[derive(Debug, Default)]
pub struct Guards {
    pub checks: Vec<crate::guard::Check>,
    pub prometheus: Option<String>,
}

impl Guards {
    /// Each `--guard` typed; the error names the flag and what is wrong with it.
    pub fn parse(flags: &[String], prometheus: Option<String>) -> Result<Self, String> {
        let mut checks = Vec::new();
        for (i, text) in flags.iter().enumerate() {
            let at = if flags.len() == 1 { "--guard".to_owned() } else { format!("--guard #{}", i + 1) };
            let check = crate::guard::Check::from_flag(text, &at)?;
            if matches!(check.kind, crate::guard::CheckKind::PromQl { .. }) && prometheus.is_none() {
                return Err(format!("{at}: a promql guard needs --prometheus URL"));
            }
            checks.push(check);
        }
        Ok(Self { checks, prometheus })
    }
}

/// How long the answer may still take once a guard tripped and the swarm was aborted.
const ANSWER_AFTER_TRIP: Duration = Duration::from_secs(10);

pub async fn exec(
    url: &str,
    file: &str,
    options: ExecOptions,
    guards: &Guards,
    access: &ClientArgs,
) -> anyhow::Result<i32> {
    let started = Instant::now();
    let body = if file == "-" {
        let mut text = Vec::new();
        std::io::stdin().take(MAX_BODY_FILE + 1).read_to_end(&mut text).context("cannot read the body from stdin")?;
        anyhow::ensure!(text.len() as u64 <= MAX_BODY_FILE, "the body on stdin is larger than {MAX_BODY_FILE} bytes");
        text
    } else {
        crate::sys::files::read_bounded(std::path::Path::new(file), MAX_BODY_FILE, "body file")?.text.into_bytes()
    };
    // A first look at the body, for the progress line and to refuse `--report` at once when the wave keeps
    // no report (the agent decides everything else and names the field).
    let parsed: Option<Value> = serde_norway::from_slice(&body).ok();
    let command = parsed.as_ref().and_then(|b| b["command"].as_str()).unwrap_or("the command").to_owned();
    if options.report && !parsed.as_ref().is_some_and(|b| b["wave"]["report"] == Value::Bool(true)) {
        anyhow::bail!(
            "--report waits for a wave report, and only a body with `wave: {{report: true}}` has one: add it to \
             {file}, or leave --report out"
        );
    }
    let content_type = if file.ends_with(".json") { "application/json" } else { "application/yaml" };
    let target = endpoint(url, "/exec");
    let client = agent_client(options.timeout, access)?;
    let progress = LiveLine::start(options.output == OutputFormat::Table, format!("{command} on {target}"));
    // The request's id lets the live line find the job on the agent and show how far it got.
    let request_id = format!("cli-{:016x}", rand::random::<u64>());
    let watching = progress.watch(client.clone(), endpoint(url, "/jobs"), request_id.clone(), command.clone());
    let origin = endpoint(url, "").trim_end_matches("/exec").to_owned();
    let watch = start_guards(guards, &client, &origin)?;
    let request = client
        .post(&target)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .header(crate::wire::REQUEST_ID, &request_id)
        .body(body)
        .send();
    tokio::pin!(request);
    let sent = tokio::select! {
        sent = &mut request => Some(sent),
        _ = watch.tripped().cancelled() => None,
    };
    // A tripped guard has aborted the swarm: the job ends cancelled, and its answer comes soon after.
    let sent = match sent {
        Some(sent) => sent,
        None => match tokio::time::timeout(ANSWER_AFTER_TRIP, &mut request).await {
            Ok(sent) => sent,
            Err(_) => {
                progress.finish();
                let summaries = watch.stop().await;
                report_guards(&watch, &summaries);
                return Ok(EXIT_FAILED);
            }
        },
    };
    if let Some(watching) = watching {
        watching.abort();
    }
    let summaries = watch.stop().await;
    let response = match sent {
        Ok(response) => response,
        Err(err) if err.is_timeout() => {
            progress.finish();
            anyhow::bail!("{target} did not answer within --timeout {}", humantime::format_duration(options.timeout))
        }
        Err(err) => {
            progress.finish();
            return Err(err).with_context(|| format!("cannot reach {target}"));
        }
    };
    let status = response.status();
    let text = response.text().await.context("cannot read the answer")?;
    progress.finish();
    let answer: Value = serde_json::from_str(&text)
        .with_context(|| format!("{target} answered {status} with something that is not JSON: {text:.200}"))?;
    match options.output {
        OutputFormat::Json => output::json_line(&answer),
        OutputFormat::Table => output::exec_answer(status.as_u16(), &answer, options.report),
    }
    let mut code = exit_code(status, &answer);
    if report_guards(&watch, &summaries) {
        return Ok(EXIT_FAILED);
    }
    if options.report && status.is_success() {
        let id = answer["wave_id"].as_str().context("no wave_id in the answer")?;
        let deadline = started + options.timeout;
        let progress =
            LiveLine::start(options.output == OutputFormat::Table, format!("waiting for wave {id}'s reports"));
        let summary = wait_for_report(&client, &origin, id, u64::MAX, deadline, &progress).await;
        progress.finish();
        let summary = summary?;
        match options.output {
            OutputFormat::Json => output::json_line(&summary),
            OutputFormat::Table => {
                output::line("");
                output::wave_report(&summary, None);
                if output::is_http_load(&summary["merged"]) {
                    let entries = client.get(format!("{origin}/waves/{id}?entries=true")).send().await;
                    let entries: Value = match entries {
                        Ok(answer) => answer.json().await.unwrap_or_default(),
                        Err(_) => Value::Null,
                    };
                    output::http_load_agents(
                        entries["entries"].as_array().map_or(&[], Vec::as_slice),
                        options.all_agents,
                    );
                }
            }
        }
        if code == EXIT_OK && summary["failed"].as_u64().unwrap_or(0) > 0 {
            code = EXIT_FAILED;
        }
    }
    Ok(code)
}

/// Starts the `--guard`s on the agent at `origin`; a watch that never trips when there are none.
fn start_guards(
    guards: &Guards,
    client: &reqwest::Client,
    origin: &str,
) -> anyhow::Result<std::sync::Arc<crate::guard::Watch>> {
    if guards.checks.is_empty() {
        return Ok(crate::guard::Watch::idle());
    }
    // The token goes to the agent only, never to Prometheus or the service a probe reads.
    let plain = crate::guard::plain_client().context("cannot build an HTTP client")?;
    let sources = crate::guard::Sources {
        agents: client.clone(),
        plain,
        public: origin.to_owned(),
        prometheus: guards.prometheus.clone(),
    };
    Ok(crate::guard::Watch::start(guards.checks.clone(), Some(std::sync::Arc::new(sources))))
}

/// Says on stderr what the guards saw; true when one tripped (the run failed).
fn report_guards(watch: &crate::guard::Watch, summaries: &[crate::guard::GuardSummary]) -> bool {
    for guard in summaries {
        let last = guard.last_reading.as_deref().unwrap_or("never read");
        crate::say_err!(
            "guard {:?}: {} readings, {} broken; last: {last}",
            guard.name,
            guard.readings,
            guard.broken_readings
        );
    }
    match watch.trip() {
        Some(trip) => {
            crate::say_err!("{}: the swarm was aborted", trip.message());
            true
        }
        None => false,
    }
}

/// The exit status for an answer: 2 when the body or the access was wrong (a 4xx that names it), 1 when
/// the command did not end `ok` (failed, cancelled, refused by the machine, busy), 0 otherwise.
fn exit_code(http: reqwest::StatusCode, answer: &Value) -> i32 {
    if is_setup_error(http) {
        return EXIT_SETUP;
    }
    let ran = Status::of_answer(answer).is_some_and(Status::ran);
    if http.is_success() && ran {
        EXIT_OK
    } else {
        EXIT_FAILED
    }
}

/// An agent's answer that says the body or the access was wrong, not the command: retrying will not help.
/// `tarsier exec` exits 2 on one, and a scenario step that gets one marks the setup broken.
pub(crate) fn is_setup_error(http: reqwest::StatusCode) -> bool {
    use reqwest::StatusCode as S;
    let setup = [
        S::BAD_REQUEST,
        S::UNAUTHORIZED,
        S::FORBIDDEN,
        S::NOT_FOUND,
        S::METHOD_NOT_ALLOWED,
        S::PAYLOAD_TOO_LARGE,
        S::URI_TOO_LONG,
        S::UNSUPPORTED_MEDIA_TYPE,
        S::EXPECTATION_FAILED,
        S::REQUEST_HEADER_FIELDS_TOO_LARGE,
    ];
    setup.contains(&http)
}

/// Polls the origin's report until `expected` executions are in, nothing new came for a second, or
/// `deadline`. A wave the origin keeps no report of is an error at once, with the origin's reason. `line`
/// shows how many agents reported so far.
pub(crate) async fn wait_for_report(
    client: &reqwest::Client,
    origin: &str,
    id: &str,
    expected: u64,
    deadline: Instant,
    line: &LiveLine,
) -> anyhow::Result<Value> {
    let mut last = (0, Instant::now());
    loop {
        let response = client.get(format!("{origin}/waves/{id}")).send().await?;
        let status = response.status();
        let summary: Value = response.json().await.context("the wave report is not JSON")?;
        if !status.is_success() {
            let why = summary["error"].as_str().unwrap_or("no reason given");
            anyhow::bail!("{origin} has no report of wave {id} ({status}): {why}");
        }
        let executions = summary["executions"].as_u64().unwrap_or(0);
        if executions != last.0 {
            last = (executions, Instant::now());
            let reached = summary["agents_reached"].as_u64().unwrap_or(0);
            line.set_message(format!("wave {id}: {reached} agents reported, {executions} executions so far"));
        }
        // Every agent that runs the command reports when it is done; silence means the wave is over.
        let quiet = executions > 0 && last.1.elapsed() > Duration::from_secs(1);
        // A dedupe wave's origin says when every agent it expected has reported.
        let complete = summary["complete"].as_bool() == Some(true);
        if executions >= expected || complete || quiet || Instant::now() > deadline {
            return Ok(summary);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// `POST /abort`: the whole swarm, or with `local` this agent only.
pub async fn abort(url: &str, local: bool, json: bool, access: &ClientArgs) -> anyhow::Result<i32> {
    let target = endpoint(url, "/abort");
    let body = if local { r#"{"local": true}"# } else { "{}" };
    let response = agent_client(Duration::from_secs(30), access)?
        .post(&target)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot reach {target}"))?;
    let status = response.status();
    let text = response.text().await.context("cannot read the answer")?;
    let answer: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    if json {
        output::line(serde_json::to_string_pretty(&answer)?);
    } else if let Some(error) = answer["error"].as_str() {
        output::line(format!("{} ({status}): {error}", output::styled(output::BAD, "FAILED")));
    } else {
        output::abort_summary(&answer, local);
    }
    Ok(if status.is_success() { EXIT_OK } else { exit_code(status, &answer) })
}

/// An error with every cause it carries (`error sending request: ... : Connection refused`): reqwest's own
/// text leaves out why a connection failed.
pub(crate) fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let said = cause.to_string();
        if !text.contains(&said) {
            text = format!("{text}: {said}");
        }
        source = cause.source();
    }
    text
}

/// `GET path` on an agent: its JSON answer, or an error saying what it answered instead.
pub(crate) async fn get_json(url: &str, path: &str, access: &ClientArgs) -> anyhow::Result<Value> {
    let target = endpoint(url, path);
    let response = agent_client(Duration::from_secs(30), access)?
        .get(&target)
        .send()
        .await
        .with_context(|| format!("cannot reach {target}"))?;
    let status = response.status();
    let answer: Value = response.json().await.with_context(|| format!("{target} did not answer JSON"))?;
    if !status.is_success() {
        anyhow::bail!("{target} answered {status}: {}", answer["error"].as_str().unwrap_or("no reason given"));
    }
    Ok(answer)
}

/// `GET /commands` on the service port, as a table or as JSON.
pub async fn commands(url: &str, json: bool, access: &ClientArgs) -> anyhow::Result<i32> {
    let catalogue = get_json(url, "/commands", access).await?;
    if json {
        output::line(serde_json::to_string_pretty(&catalogue)?);
    } else {
        output::catalogue(&catalogue);
    }
    Ok(EXIT_OK)
}

/// `tarsier probe URL`: 0 on a 2xx answer within `timeout`, 1 on anything else, with one line saying which.
pub async fn probe(url: &str, timeout: Duration, access: &ClientArgs) -> anyhow::Result<i32> {
    let target = endpoint(url, "");
    match agent_client(timeout, access)?.get(&target).send().await {
        Ok(response) if response.status().is_success() => {
            crate::say!("{target}: {}", response.status());
            Ok(EXIT_OK)
        }
        Ok(response) => {
            crate::say_err!("{target}: {}", response.status());
            Ok(EXIT_FAILED)
        }
        Err(err) => {
            crate::say_err!("{target}: {err}");
            Ok(EXIT_FAILED)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::endpoint;

    #[test]
    fn endpoints() {
        assert_eq!(endpoint("http://127.0.0.1:8080", "/exec"), "http://127.0.0.1:8080/exec");
        assert_eq!(endpoint("http://127.0.0.1:8080/", "/exec"), "http://127.0.0.1:8080/exec");
        assert_eq!(endpoint("127.0.0.1:8080", "/abort"), "http://127.0.0.1:8080/abort");
        assert_eq!(endpoint("http://h:1/custom/exec", "/exec"), "http://h:1/custom/exec");
        assert_eq!(endpoint("http://h:1/", ""), "http://h:1");
        assert_eq!(endpoint("https://[::1]:8443", "/abort"), "https://[::1]:8443/abort");
    }
}
