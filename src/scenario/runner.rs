//! Runs a scenario's steps against its target and records each step's outcome.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::measure::{at_path, metric, promql};
use super::model::ProbeStep;
use super::plan::{Action, Exec, Expectation, RunCommand, Source, Step, Sweep};
use super::report::{short_number, Figure, Outcome, StepResult, SweepRow, SweepTable, A_ROUND_FAILED};
use super::sweep::round_label;
use crate::client::{wait_for_report, LiveLine};
use crate::guard::Bound;
use crate::wire::body::CommandBody;
use crate::wire::status::Status;

tokio::task_local! {
    /// The sweep round (its parameters) or repeat round the steps being run belong to, for their rows.
    static ROUND: String;
}

/// The longest an exec step waits for its wave's reports.
const REPORT_WAIT: Duration = Duration::from_secs(600);

/// How often `expect ... within` and `probe` look again.
const POLL: Duration = Duration::from_millis(500);

pub struct Runner {
    /// For the agents: carries the swarm token.
    pub client: reqwest::Client,
    /// For Prometheus and the service under test (probes): carries nothing of the swarm's, the token least.
    pub plain: reqwest::Client,
    /// The target agent's public and service base URLs.
    pub public: String,
    pub service: String,
    pub prometheus: Option<String>,
    pub continue_on_failure: bool,
    /// Fired by Ctrl-C: the running step stops and the rest are skipped (but for the teardown).
    pub cancel: CancellationToken,
    /// Set while the teardown runs: every teardown step runs, whatever failed or was interrupted before.
    pub tearing_down: std::sync::atomic::AtomicBool,
    pub results: Mutex<Vec<StepResult>>,
    /// The figures exec steps recorded (`record:` and `expect.values`), for the CSV and JSON summary.
    pub figures: Mutex<Vec<Figure>>,
    /// What `record:` found that is not a number (path, text): a sweep's notes.
    pub notes: Mutex<Vec<(String, String)>>,
    /// Every sweep's table, as its last round ends.
    pub sweeps: Mutex<Vec<SweepTable>>,
    /// The swarm token (`--token-file`), for `{{token}}` in exec data: load aimed at agents of the swarm.
    pub token: Option<String>,
    /// The scenario's guards: when one trips, the running step stops and the rest are skipped.
    pub guards: Arc<crate::guard::Watch>,
    /// `--remote-write`: where results go as each step ends, and what is still to push.
    pub remote: Option<Remote>,
    /// The rows of the steps that have started and not ended, for `--console`.
    pub in_flight: Mutex<std::collections::BTreeSet<usize>>,
    /// `--console`: where the run is shown as it goes.
    pub publisher: Option<Arc<super::publish::Publisher>>,
    /// `--param`s that changed the file's defaults, for every chart's source line.
    pub params_changed: Vec<String>,
}

/// A run's results on their way to a remote-write receiver.
pub struct Remote {
    pub write: Arc<crate::remote_write::RemoteWrite>,
    /// The scenario's name and this run's id: the labels of every series.
    pub scenario: String,
    pub run: String,
    pub pending: Mutex<crate::remote_write::Batch>,
}

impl Remote {
    fn labels<'a>(&'a self, step: &'a str) -> [(&'a str, &'a str); 3] {
        [("scenario", &self.scenario), ("run", &self.run), ("step", step)]
    }

    /// Sends what is pending; a failure is said once here and counted in the run's summary.
    pub async fn flush(&self) {
        let batch = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|p| p.into_inner()));
        if let Err(why) = self.write.push(batch).await {
            crate::say_err!("   remote write: {why}");
        }
    }

    /// A step's outcome (1 passed, 0 not) and time, to push with the next flush.
    pub fn step_ended(&self, result: &StepResult) {
        let now = crate::remote_write::now_ms();
        let passed = f64::from(u8::from(result.outcome == Outcome::Passed));
        self.add(|batch| {
            batch.add("tarsier_scenario_step_passed", &self.labels(&result.title), [(now, passed)]);
            batch.add("tarsier_scenario_step_seconds", &self.labels(&result.title), [(now, result.seconds)]);
        });
    }

    pub fn add(&self, add: impl FnOnce(&mut crate::remote_write::Batch)) {
        add(&mut self.pending.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// `host:port` of a base URL.
pub(super) fn host_port(url: &str) -> String {
    url.split_once("://").map(|(_, rest)| rest).unwrap_or(url).trim_end_matches('/').to_owned()
}

type StepFuture<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// Why a step did not hold.
#[derive(Debug, Clone, PartialEq)]
pub enum StepError {
    /// The system under test did not do what the step expected: an expectation that did not hold.
    Failed(String),
    /// The step could not ask at all: the agent cannot be reached, it refused the body or the token, a
    /// placeholder has no value. The run then exits 2, not 1, and JUnit marks this step an error.
    Broken(String),
}

impl std::fmt::Display for StepError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepError::Failed(why) => f.write_str(why),
            StepError::Broken(why) => write!(f, "the setup is broken: {why}"),
        }
    }
}

impl From<String> for StepError {
    fn from(why: String) -> Self {
        StepError::Failed(why)
    }
}

impl From<&str> for StepError {
    fn from(why: &str) -> Self {
        StepError::Failed(why.to_owned())
    }
}

impl Runner {
    fn in_teardown(&self) -> bool {
        self.tearing_down.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Ctrl-C was pressed or a guard tripped, and this is not the teardown (which runs to its end: it
    /// releases what the steps took, such as a stack of containers).
    fn interrupted(&self) -> bool {
        (self.cancel.is_cancelled() || self.guards.tripped().is_cancelled()) && !self.in_teardown()
    }

    /// Why a step was stopped by a guard.
    fn guard_stopped(&self) -> StepError {
        StepError::Failed(self.guards.trip().map_or_else(|| "stopped by a guard".to_owned(), |trip| trip.message()))
    }

    /// The scenario's `teardown:` steps, every one of them, after the steps whatever their outcome.
    pub async fn teardown(self: &Arc<Self>, steps: &[Step]) -> bool {
        if steps.is_empty() {
            return true;
        }
        self.tearing_down.store(true, std::sync::atomic::Ordering::Relaxed);
        crate::say!("   teardown");
        let mut held = true;
        for step in steps {
            held &= self.run_step(step, 0).await;
        }
        held
    }

    /// Keeps the step's row in the order steps start (a group's row above its steps), filled when it ends.
    fn reserve(&self, title: &str, depth: usize, group: bool) -> usize {
        let mut results = self.results.lock().unwrap_or_else(|p| p.into_inner());
        results.push(StepResult {
            title: title.to_owned(),
            depth,
            group,
            outcome: Outcome::Skipped,
            seconds: 0.0,
            detail: String::new(),
            round: ROUND.try_with(Clone::clone).ok(),
            compares: false,
        });
        results.len() - 1
    }

    fn fill(&self, slot: usize, mut result: StepResult) {
        let mut results = self.results.lock().unwrap_or_else(|p| p.into_inner());
        // The round it ran in was known when its row was reserved.
        result.round = results[slot].round.take();
        announce(&result);
        if let (Some(remote), false) = (&self.remote, result.group) {
            remote.step_ended(&result);
        }
        results[slot] = result;
        drop(results);
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&slot);
        self.changed();
    }

    /// A step started: its row is shown running.
    fn started(&self, slot: usize) {
        self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).insert(slot);
        self.changed();
    }

    /// Tells `--console` there is something new to show.
    fn changed(&self) {
        if let Some(publisher) = &self.publisher {
            publisher.mark();
        }
    }

    /// Steps not run: their reserved rows already say skipped. A group's steps get their rows too, once per
    /// round, so a run reports the same steps whether it passed or stopped early (JUnit counts stay stable).
    fn skip(&self, steps: &[Step], depth: usize) {
        for step in steps {
            let slot = self.reserve(&step.title, depth, step.action.is_group());
            announce(&self.results.lock().unwrap_or_else(|p| p.into_inner())[slot]);
            match &step.action {
                Action::Parallel(inner) => self.skip(inner, depth + 1),
                Action::Repeat { steps, times } => (0..*times).for_each(|_| self.skip(steps, depth + 1)),
                Action::Sweep(sweep) => sweep.rounds.iter().for_each(|round| self.skip(&round.steps, depth + 1)),
                _ => {}
            }
        }
    }

    /// Runs steps in order; true when every one held.
    pub fn run_steps<'a>(self: &'a Arc<Self>, steps: &'a [Step], depth: usize) -> StepFuture<'a> {
        Box::pin(async move {
            let mut all_held = true;
            for (i, step) in steps.iter().enumerate() {
                if self.interrupted() || (!all_held && !self.continue_on_failure && !self.in_teardown()) {
                    self.skip(&steps[i..], depth);
                    break;
                }
                all_held &= self.run_step(step, depth).await;
            }
            all_held
        })
    }

    fn run_step<'a>(self: &'a Arc<Self>, step: &'a Step, depth: usize) -> StepFuture<'a> {
        Box::pin(async move {
            let title = step.title.clone();
            let group = step.action.is_group();
            let slot = self.reserve(&title, depth, group);
            self.started(slot);
            let started = Instant::now();
            let outcome: Result<String, StepError> = match &step.action {
                Action::Parallel(inner) => {
                    crate::say!("{}[ .... ] {title}", "  ".repeat(depth));
                    let mut set = tokio::task::JoinSet::new();
                    for s in inner {
                        let (runner, s) = (self.clone(), s.clone());
                        // A task of its own does not inherit the round it runs in: it is handed over.
                        let round = ROUND.try_with(Clone::clone).ok();
                        set.spawn(async move {
                            match round {
                                Some(round) => ROUND.scope(round, runner.run_step(&s, depth + 1)).await,
                                None => runner.run_step(&s, depth + 1).await,
                            }
                        });
                    }
                    let mut held = true;
                    while let Some(done) = set.join_next().await {
                        held &= done.unwrap_or(false);
                    }
                    if held {
                        Ok("every step held".to_owned())
                    } else {
                        Err(A_ROUND_FAILED.into())
                    }
                }
                Action::Repeat { steps, times } => {
                    crate::say!("{}[ .... ] {title}", "  ".repeat(depth));
                    let mut held = true;
                    for round in 0..*times {
                        if !held && !self.continue_on_failure || self.interrupted() {
                            // The rounds not run are reported as skipped, step by step.
                            (round..*times).for_each(|_| self.skip(steps, depth + 1));
                            held = false;
                            break;
                        }
                        let label = format!("round {} of {times}", round + 1);
                        if !ROUND.scope(label, self.run_steps(steps, depth + 1)).await {
                            held = false;
                        }
                    }
                    if held {
                        Ok(format!("{times} round(s)"))
                    } else {
                        Err(A_ROUND_FAILED.into())
                    }
                }
                Action::Sweep(sweep) => {
                    crate::say!("{}[ .... ] {title}", "  ".repeat(depth));
                    self.sweep(&title, sweep, depth).await.map_err(StepError::Failed)
                }
                leaf => {
                    let work = self.leaf(leaf, &title);
                    if self.in_teardown() {
                        work.await
                    } else {
                        tokio::select! {
                            outcome = work => outcome,
                            _ = self.cancel.cancelled() => Err("interrupted".into()),
                            _ = self.guards.tripped().cancelled() => Err(self.guard_stopped()),
                        }
                    }
                }
            };
            let (outcome, detail) = match outcome {
                Ok(detail) => (Outcome::Passed, detail),
                Err(StepError::Failed(detail)) => (Outcome::Failed, detail),
                Err(StepError::Broken(detail)) => (Outcome::Broken, detail),
            };
            let seconds = started.elapsed().as_secs_f64();
            let compares = matches!(&step.action, Action::Sweep(sweep) if !sweep.compare.is_empty());
            let round = None;
            self.fill(slot, StepResult { title, depth, group, outcome, seconds, detail, round, compares });
            if let Some(remote) = &self.remote {
                remote.flush().await;
            }
            outcome == Outcome::Passed
        })
    }

    async fn leaf(&self, action: &Action, title: &str) -> Result<String, StepError> {
        match action {
            Action::Exec(exec) => self.exec(exec, title).await,
            Action::Wait(duration) => {
                wait_with_bar(duration.0).await;
                Ok(String::new())
            }
            Action::Expect(expect) => Ok(self.expect(expect).await?),
            Action::Probe(probe) => Ok(self.probe(probe).await?),
            Action::Run(run) => self.run_command(run, title).await,
            Action::Abort => self.abort().await,
            Action::Parallel(_) | Action::Repeat { .. } | Action::Sweep(_) => Err("not a single step".into()),
        }
    }

    /// `{{public}}` and `{{service}}` in a command's data become the target agent's `host:port`s, so a
    /// scenario can aim load at its own swarm (a demo target) without knowing its ports.
    fn substitute(&self, data: &Value) -> Value {
        serde_json::from_str(&self.substitute_text(&data.to_string())).unwrap_or_else(|_| data.clone())
    }

    /// Exec data with its placeholders filled, `{{token}}` included (only there: never in a `run:` command,
    /// whose text may be printed).
    fn exec_data(&self, data: &Value) -> Result<Value, String> {
        let text = self.substitute_text(&data.to_string());
        if !text.contains("{{token}}") {
            // As `substitute`, from the text already filled in.
            return Ok(serde_json::from_str(&text).unwrap_or_else(|_| data.clone()));
        }
        let token = self.token.as_deref().ok_or("`{{token}}` in the data needs --token-file")?;
        // Through JSON so a token with quotes stays one string.
        let token = Value::String(token.to_owned()).to_string();
        serde_json::from_str(&text.replace("{{token}}", token.trim_matches('"'))).map_err(|e| e.to_string())
    }

    fn substitute_text(&self, text: &str) -> String {
        text.replace("{{public}}", &host_port(&self.public)).replace("{{service}}", &host_port(&self.service))
    }

    /// Runs a `run:` step's command with `sh -c`, bounded by its timeout (the process is killed past it).
    /// Its output is read as it comes and only the last MiB of each stream is kept (`scenario::tail`): a
    /// command that prints without end costs the runner a bounded buffer, and the run still ends in order.
    async fn run_command(&self, run: &RunCommand, title: &str) -> Result<String, StepError> {
        let (want, timeout) = (run.status, run.timeout);
        let shown: String = run.shown().chars().take(200).collect();
        // The command's placeholders were made variable references when it was typed (`scenario::shell`).
        let spawned = tokio::process::Command::new("sh")
            .args(["-c", &run.command])
            .envs(&run.env)
            .env(super::plan::TARGET_PUBLIC, host_port(&self.public))
            .env(super::plan::TARGET_SERVICE, host_port(&self.service))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            // Its own process group, ended as a whole if the step ends first (`process_group`).
            .process_group(0)
            .kill_on_drop(true)
            .spawn();
        let mut child = spawned.map_err(|err| StepError::Broken(format!("cannot run `{shown}`: {err}")))?;
        // Declared after the child: dropped (the group signalled) before the child is reaped.
        let mut group = super::process_group::GroupGuard::new(child.id());
        let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
            return Err(StepError::Broken(format!("cannot read the output of `{shown}`")));
        };
        let ran = async {
            let (stdout, stderr, status) = tokio::join!(
                super::tail::read_tail(stdout, super::tail::KEPT),
                super::tail::read_tail(stderr, super::tail::KEPT),
                child.wait()
            );
            Ok::<_, std::io::Error>((stdout?, stderr?, status?))
        };
        let (stdout, stderr, status) = match tokio::time::timeout(timeout.0, ran).await {
            Ok(Ok(output)) => {
                group.finished();
                output
            }
            Ok(Err(err)) => return Err(StepError::Broken(format!("cannot run `{shown}`: {err}"))),
            Err(_) => return Err(format!("`{shown}` did not end within {timeout}; killed").into()),
        };
        if stdout.total + stderr.total > 2 * super::tail::KEPT as u64 {
            tracing::info!(
                step = title,
                stdout = stdout.total,
                stderr = stderr.total,
                "a run: step printed more than is kept; its last MiB of each is"
            );
        }
        let output = std::process::Output { status, stdout: stdout.bytes, stderr: stderr.bytes };
        let last_line = |bytes: &[u8]| String::from_utf8_lossy(bytes).trim().lines().last().unwrap_or("").to_owned();
        let said = match (last_line(&output.stdout), last_line(&output.stderr)) {
            (out, _) if !out.is_empty() => out,
            (_, err) => err,
        };
        let short: String = said.chars().take(200).collect();
        match output.status.code() {
            Some(code) if code == want => {}
            Some(code) => return Err(format!("exited {code} (want {want}): {short}").into()),
            None => return Err(format!("killed by a signal: {short}").into()),
        }
        if !run.measures() {
            return Ok(short);
        }
        let printed: Value = serde_json::from_str(&last_line(&output.stdout))
            .ok()
            .filter(Value::is_object)
            .ok_or_else(|| format!("its last line of stdout is not a JSON object: {short}"))?;
        Ok(self.check_values(&printed, &run.values, &run.record, title)?)
    }

    /// Compares `values` against an answer (an exec answer or what a `run:` command printed) and records
    /// them and `record`; the detail line, or every comparison that failed.
    fn check_values(
        &self,
        answer: &Value,
        values: &std::collections::BTreeMap<String, Bound>,
        record: &[String],
        title: &str,
    ) -> Result<String, String> {
        let mut details = Vec::new();
        let mut failures = Vec::new();
        for (path, bound) in values {
            let value = at_path(answer, path).and_then(Value::as_f64);
            if let Some(x) = value {
                self.record(title, path, x);
            }
            match value {
                Some(x) if bound.holds(x) => details.push(format!("{path}={}", short_number(x))),
                Some(x) => failures.push(format!("{path}={}, want {bound}", short_number(x))),
                None => failures.push(format!("{path}: not a number in the answer")),
            }
        }
        for path in record.iter().filter(|p| !values.contains_key(*p)) {
            let shown = at_path(answer, path).map(|v| match (v.as_f64(), v.as_str()) {
                (Some(x), _) => {
                    self.record(title, path, x);
                    short_number(x)
                }
                (None, Some(text)) => {
                    self.notes.lock().unwrap_or_else(|p| p.into_inner()).push((path.clone(), text.to_owned()));
                    v.to_string()
                }
                (None, None) => v.to_string(),
            });
            details.push(format!("{path}={}", shown.unwrap_or_else(|| "-".into())));
        }
        if answer["report"].is_object() {
            details.push(format!("agents={}", answer["report"]["agents_reached"]));
        }
        if failures.is_empty() {
            Ok(details.join("  "))
        } else {
            Err(failures.join("; "))
        }
    }

    async fn exec(&self, exec: &Exec, title: &str) -> Result<String, StepError> {
        let data = self.exec_data(&exec.data).map_err(StepError::Broken)?;
        let body = CommandBody { command: exec.command.clone(), data, wave: exec.wave.clone(), detach: exec.detach };
        // A live line while the step runs: its title, the time so far, and the job's progress where it has one.
        let line = LiveLine::start(true, title.to_owned());
        let request_id = format!("scenario-{:016x}", rand::random::<u64>());
        let jobs = format!("{}/jobs", self.public);
        let watching = line.watch(self.client.clone(), jobs, request_id.clone(), title.to_owned());
        let sent = self
            .client
            .post(format!("{}/exec", self.public))
            .header(crate::wire::REQUEST_ID, &request_id)
            .json(&body)
            .send()
            .await;
        if let Some(watching) = watching {
            watching.abort();
        }
        line.finish();
        let response = sent.map_err(|e| {
            StepError::Broken(format!("cannot reach {}: {}", self.public, crate::client::with_causes(&e)))
        })?;
        let http = response.status();
        let mut answer: Value = response.json().await.map_err(|e| format!("the answer is not JSON: {e}"))?;
        if exec.wave.as_ref().is_some_and(|w| w.report) && http.is_success() {
            if let Some(id) = answer["wave_id"].as_str().map(str::to_owned) {
                let line = LiveLine::start(true, format!("{title}: waiting for the wave's reports"));
                let deadline = Instant::now() + REPORT_WAIT;
                let report = wait_for_report(&self.client, &self.public, &id, u64::MAX, deadline, &line).await;
                line.finish();
                let report = report.map_err(|e| format!("cannot read the wave report: {e}"))?;
                answer["report"] = report;
            }
        }
        if let (Some(remote), "net/http_load") = (&self.remote, exec.command.as_str()) {
            // The swarm's merged figures when the wave reported, else the target agent's own.
            let (figures, agent) = match answer["report"]["merged"].is_object() {
                true => (&answer["report"]["merged"], "swarm"),
                false => (&answer["result"], answer["agent"].as_str().unwrap_or_default()),
            };
            let now = crate::remote_write::now_ms();
            let labels = remote.labels(title);
            let labels = [labels[0], labels[1], labels[2], ("agent", agent)];
            remote.add(|batch| batch.http_load(figures, &labels, now));
        }
        let got = Status::of_answer(&answer);
        // A selection whose origin did not choose itself sent the command on: that is `ok` for the step.
        let delegated = exec.status == Status::Ok && got == Some(Status::Delegated);
        if got != Some(exec.status) && !delegated {
            let why = answer["error"].as_str().map(|e| format!(": {e}")).unwrap_or_default();
            let got = got.map_or("none", Status::as_str);
            let said = format!("HTTP {} status `{got}`, want `{}`{why}", http.as_u16(), exec.status.as_str());
            // A body or token the agent refused is the setup's fault, not the system under test's.
            return Err(if crate::client::is_setup_error(http) { StepError::Broken(said) } else { said.into() });
        }
        Ok(self.check_values(&answer, &exec.values, &exec.record, title)?)
    }

    /// Runs a sweep's steps once per round, with the round's values in place, and keeps what each round
    /// recorded as a row of the sweep's table. After a failed round the rest are skipped (reported step by
    /// step), unless `continue_on_failure`.
    async fn sweep(self: &Arc<Self>, title: &str, sweep: &Sweep, depth: usize) -> Result<String, String> {
        let mut table = SweepTable {
            name: title.to_owned(),
            params: sweep.params.clone(),
            rows: Vec::new(),
            chart: sweep.chart.clone(),
            source: Some(source_line(sweep.repeats, &self.params_changed)),
        };
        let mut held = true;
        let runs = sweep.repeats as usize;
        for (i, round) in sweep.rounds.iter().enumerate() {
            for run in 0..runs {
                // Each run of a round is told apart in reports by its number.
                let label = match runs {
                    1 => round_label(&round.values),
                    _ => format!("{} run {} of {runs}", round_label(&round.values), run + 1),
                };
                if (!held && !self.continue_on_failure) || self.interrupted() {
                    ROUND.sync_scope(label, || self.skip(&round.steps, depth + 1));
                    held = false;
                    continue;
                }
                crate::say!("{}  round {} of {}: {label}", "  ".repeat(depth), i + 1, sweep.rounds.len());
                let before = self.figures.lock().unwrap_or_else(|p| p.into_inner()).len();
                let notes_before = self.notes.lock().unwrap_or_else(|p| p.into_inner()).len();
                held &= ROUND.scope(label, self.run_steps(&round.steps, depth + 1)).await;
                let figures = self.figures.lock().unwrap_or_else(|p| p.into_inner())[before..]
                    .iter()
                    .map(|f| (f.figure.clone(), f.value))
                    .collect();
                let notes =
                    self.notes.lock().unwrap_or_else(|p| p.into_inner())[notes_before..].iter().cloned().collect();
                let values = round.values.iter().map(|(_, v)| v.clone()).collect();
                table.rows.push(SweepRow { values, figures, notes });
            }
        }
        // The comparisons across rounds, once every round has run.
        let (mut held_text, mut failed) = (Vec::new(), Vec::new());
        if held {
            for comparison in &sweep.compare {
                match comparison.check(&table) {
                    Ok(said) => held_text.push(said),
                    Err(why) => failed.push(why),
                }
            }
        }
        self.sweeps.lock().unwrap_or_else(|p| p.into_inner()).push(table);
        if !held {
            return Err(A_ROUND_FAILED.to_owned());
        }
        if !failed.is_empty() {
            return Err(failed.join("; "));
        }
        let mut detail = format!("{} rounds", sweep.rounds.len());
        if runs > 1 {
            detail.push_str(&format!(" x {runs} runs"));
        }
        for said in held_text {
            detail.push_str(&format!("; {said}"));
        }
        for skipped in &sweep.compare_skipped {
            detail.push_str(&format!("; not compared: {skipped}"));
        }
        Ok(detail)
    }

    fn record(&self, step: &str, path: &str, value: f64) {
        let figure = Figure { step: step.to_owned(), figure: path.to_owned(), value };
        self.figures.lock().unwrap_or_else(|p| p.into_inner()).push(figure);
    }

    async fn expect(&self, expect: &Expectation) -> Result<String, String> {
        let bound = expect.is;
        let deadline = Instant::now() + expect.within.map(|w| w.0).unwrap_or_default();
        loop {
            let value = match (&expect.source, &self.prometheus) {
                (Source::PromQl(query), Some(prometheus)) => promql(&self.plain, prometheus, query).await,
                (Source::Metric(selector), _) => metric(&self.client, &self.service, selector).await,
                (Source::PromQl(_), None) => Err("no prometheus: URL for a promql expectation".into()),
            };
            let last = match value {
                Ok(Some(x)) if bound.holds(x) => return Ok(format!("{} {bound}", short_number(x))),
                Ok(Some(x)) => format!("{}, want {bound}", short_number(x)),
                Ok(None) => "no data".to_owned(),
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                let within = expect.within.map(|w| format!(" within {w}")).unwrap_or_default();
                return Err(format!("{last}{within}"));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    async fn probe(&self, probe: &ProbeStep) -> Result<String, String> {
        let started = Instant::now();
        let deadline = started + probe.within.0;
        let url = self.substitute(&Value::String(probe.url.clone())).as_str().unwrap_or(&probe.url).to_owned();
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(100));
            let last = match self.plain.get(&url).timeout(remaining.min(Duration::from_secs(2))).send().await {
                Ok(r) if r.status().as_u16() == probe.status => {
                    let after = format!("{} after {:.1}s", probe.status, started.elapsed().as_secs_f64());
                    return if probe.fails { Err(format!("answered {after}, want no answer")) } else { Ok(after) };
                }
                Ok(r) => format!("answered {}", r.status().as_u16()),
                Err(e) => {
                    if e.is_timeout() {
                        "timed out".to_owned()
                    } else {
                        e.to_string()
                    }
                }
            };
            if Instant::now() >= deadline {
                return if probe.fails {
                    Ok(format!("no {} within {} ({last})", probe.status, probe.within))
                } else {
                    Err(format!("no {} within {} (last: {last})", probe.status, probe.within))
                };
            }
            tokio::time::sleep(POLL.min(deadline.saturating_duration_since(Instant::now()))).await;
        }
    }

    /// POST /abort to the target: it releases everything and floods the abort to the whole swarm.
    pub async fn abort(&self) -> Result<String, StepError> {
        let answer: Value = self
            .client
            .post(format!("{}/abort", self.public))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| StepError::Broken(format!("cannot reach {}: {e}", self.public)))?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        Ok(format!("cancelled {} job(s) here, flooded to {} peer(s)", answer["cancelled_jobs"], answer["forwarded"]))
    }
}

/// Where a sweep's figures come from, for its chart: tarsier's version and commit, the machine, the date and
/// the runs per round; and the parameters given on the command line (another service than the file's).
fn source_line(runs: u32, params: &[String]) -> String {
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| format!(" ({})", String::from_utf8_lossy(&out.stdout).trim()))
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let date = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let runs = if runs == 1 { "1 run per round".to_owned() } else { format!("{runs} runs per round") };
    let params: String = params.iter().map(|p| format!("; {p}")).collect();
    format!(
        "tarsier {}{commit}; {}, {cores} cores; {}; {runs}{params}",
        env!("CARGO_PKG_VERSION"),
        crate::sys::hostname(),
        &date[..10]
    )
}

/// The progress line of a finished (or skipped) step.
pub(super) fn announce(result: &StepResult) {
    let mark = match result.outcome {
        Outcome::Passed => crate::client::output::styled(crate::client::output::GOOD, "  ok  "),
        Outcome::Failed => crate::client::output::styled(crate::client::output::BAD, "FAILED"),
        Outcome::Broken => crate::client::output::styled(crate::client::output::BAD, "BROKEN"),
        Outcome::Skipped => crate::client::output::styled(crate::client::output::DIM, " skip "),
    };
    let indent = "  ".repeat(result.depth);
    crate::client::output::line(format!(
        "{indent}[{mark}] {} ({:.2}s) {}",
        result.title, result.seconds, result.detail
    ));
}

/// Sleeps, drawing a bar when stdout is a terminal.
/// Waits, with a bar on a terminal (indicatif draws it on stderr and hides it elsewhere).
async fn wait_with_bar(duration: Duration) {
    if duration < Duration::from_secs(1) {
        tokio::time::sleep(duration).await;
        return;
    }
    let bar = LiveLine::bar(duration);
    let started = Instant::now();
    while started.elapsed() < duration {
        bar.set_position(started.elapsed());
        tokio::time::sleep(Duration::from_millis(200).min(duration.saturating_sub(started.elapsed()))).await;
    }
    bar.finish();
}
