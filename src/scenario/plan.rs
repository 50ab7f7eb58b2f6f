//! A scenario as the runner runs it: read once from its file form (`model`), checked once, and typed, so the
//! runner matches on steps and never validates. What the conversion refuses is an error that names the
//! step's path (`steps[2].exec.data.duration: ...`); what it accepts cannot fail for its shape later.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tarsier_plugin::HumanDuration;

use super::compare::Comparison;
use super::model::{default_run_timeout, ProbeStep, RawExec, RawExpect, RawRun, RawScenario, RawStep, RawTarget};
use super::sweep::{override_sweeps, round_label, substitute_steps, sweep_rounds, Round, SweepOverride};
use crate::guard::{Bound, Check, RawCheck};
use crate::wire::body::WaveSpec;
use crate::wire::status::Status;

/// The largest scenario file read (the experiments' are 3-6 KiB).
pub const MAX_SCENARIO_FILE: u64 = 4 * 1024 * 1024;

/// The longest a `run:` step may be given.
pub const MAX_RUN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

#[derive(Clone)]
pub struct Scenario {
    pub name: String,
    pub description: Option<String>,
    pub target: Target,
    /// Prometheus base URL for `expect: {promql: ...}` steps.
    pub prometheus: Option<String>,
    /// Keep running the steps after one fails (default: stop at the first failure).
    pub continue_on_failure: bool,
    pub steps: Vec<Step>,
    /// Run after `steps` whatever happened to them, every one.
    pub teardown: Vec<Step>,
    /// Read all the time the steps run.
    pub guards: Vec<Check>,
    pub steady_state: Option<SteadyState>,
    /// The parameters `--param` changed from the file's defaults, `name=value`: said in the report and on
    /// every chart, so a figure of another service is never read as tarsier's.
    pub params_changed: Vec<String>,
}

/// What the command line changes in a scenario file before it is checked: sweeps' values (`--sweep`),
/// parameters (`--param`), runs per round (`--rounds`).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub sweeps: Vec<SweepOverride>,
    pub params: Vec<super::params::ParamOverride>,
    pub rounds: Option<u32>,
}

/// What must hold before the run and again after its teardown.
#[derive(Clone)]
pub struct SteadyState {
    pub checks: Vec<Check>,
    pub recover_within: Duration,
}

/// How long a steady state has to come back after the teardown, unless the file says.
const DEFAULT_RECOVER_WITHIN: Duration = Duration::from_secs(60);

/// Where the scenario sends its commands.
#[derive(Clone)]
pub enum Target {
    /// An agent's public URL, and its service URL when given (default: the same host, public port + 1).
    Agent { public: String, service: Option<String> },
    /// One passing agent of `service` in the Consul at `address`.
    Consul { address: String, service: String },
    /// A local swarm of this many agents, started for the scenario.
    Local(usize),
}

#[derive(Clone)]
pub struct Step {
    /// Its name, or one made of what it does (`exec sleep/sleep`).
    pub title: String,
    pub action: Action,
}

#[derive(Clone)]
pub enum Action {
    Exec(Exec),
    Wait(HumanDuration),
    Expect(Expectation),
    Probe(ProbeStep),
    Run(RunCommand),
    Abort,
    /// Steps run at the same time.
    Parallel(Vec<Step>),
    /// Steps run in order, `times` times.
    Repeat {
        steps: Vec<Step>,
        times: u32,
    },
    Sweep(Sweep),
}

impl Action {
    /// A step that holds other steps: a row of the table, no JUnit case of its own.
    pub fn is_group(&self) -> bool {
        matches!(self, Action::Parallel(_) | Action::Repeat { .. } | Action::Sweep(_))
    }
}

/// A command body and what its answer must show.
#[derive(Clone)]
pub struct Exec {
    pub command: String,
    pub data: Value,
    pub wave: Option<WaveSpec>,
    pub detach: bool,
    /// The answer's status it wants: `ok`, or `running` for a detached command, unless the file says.
    pub status: Status,
    /// Comparisons on dotted paths of the answer; `report.` paths read the wave report.
    pub values: BTreeMap<String, Bound>,
    /// Dotted paths of the answer to record.
    pub record: Vec<String>,
}

/// A number from Prometheus or from the target's /metrics, held to a bound.
#[derive(Clone)]
pub struct Expectation {
    pub source: Source,
    pub is: Bound,
    /// Poll until it holds, for at most this long (none: check once).
    pub within: Option<HumanDuration>,
}

#[derive(Clone)]
pub enum Source {
    PromQl(String),
    Metric(String),
}

/// A command on the runner's machine, run by `sh -c`.
#[derive(Clone)]
pub struct RunCommand {
    pub command: String,
    pub status: i32,
    pub timeout: HumanDuration,
    /// Comparisons on the JSON object the command printed last; none for a plain line.
    pub values: BTreeMap<String, Bound>,
    pub record: Vec<String>,
    /// Set for the command, besides `TARSIER_PUBLIC` and `TARSIER_SERVICE`: `env:` and the sweep's values.
    pub env: BTreeMap<String, String>,
}

/// The variables `{{public}}` and `{{service}}` of a `run:` command become: the target's `host:port`s.
pub const TARGET_PUBLIC: &str = "TARSIER_PUBLIC";
pub const TARGET_SERVICE: &str = "TARSIER_SERVICE";

impl RunCommand {
    /// The command as a person reads it: a sweep's variables shown with their values (for titles only;
    /// what runs is `command` with `env`).
    pub fn shown(&self) -> String {
        self.env.iter().fold(self.command.clone(), |text, (name, value)| {
            text.replace(&format!("\"${{{name}}}\""), value).replace(&format!("${{{name}}}"), value)
        })
    }

    /// Whether the step reads the command's JSON output.
    pub fn measures(&self) -> bool {
        !self.values.is_empty() || !self.record.is_empty()
    }
}

/// A sweep: its parameters' names, every round with its steps typed with the round's values in place, and
/// the comparisons across rounds.
#[derive(Clone)]
pub struct Sweep {
    pub params: Vec<String>,
    pub rounds: Vec<SweepRound>,
    pub compare: Vec<Comparison>,
    /// Comparisons `--sweep` left uncheckable, with why: said in the sweep's row, not failed.
    pub compare_skipped: Vec<String>,
    /// Runs of each round (`rounds:`).
    pub repeats: u32,
    pub chart: super::model::ChartSpec,
}

#[derive(Clone)]
pub struct SweepRound {
    pub values: Round,
    pub steps: Vec<Step>,
}

/// Reads, checks and types a scenario file; the error says where and what.
pub fn load(path: &Path) -> Result<Scenario, String> {
    load_with(path, &Overrides::default())
}

/// Reads a scenario file, puts the command line's `overrides` in place, then checks and types it.
pub fn load_with(path: &Path, overrides: &Overrides) -> Result<Scenario, String> {
    let text =
        crate::sys::files::read_bounded(path, MAX_SCENARIO_FILE, "scenario file").map_err(|e| e.to_string())?.text;
    parse_with(&text, overrides).map_err(|e| format!("{}: {e}", path.display()))
}

/// A scenario file's text, checked and typed, with `overrides` in place.
fn parse_with(text: &str, overrides: &Overrides) -> Result<Scenario, String> {
    // The bounds of an /exec body, before the parser: a deeply nested file hung it for minutes.
    crate::wire::body::check_nesting(text.as_bytes())?;
    crate::wire::body::check_tags(text.as_bytes())?;
    let mut raw: RawScenario = serde_norway::from_str(text).map_err(|e| capped(&e.to_string()))?;
    // Parameters first: a sweep's values are put in place later, into steps that already hold them.
    let params_changed = super::params::apply(&mut raw, &overrides.params).map_err(|e| capped(&e))?;
    for change in &overrides.sweeps {
        if override_sweeps(&mut raw.steps, change) == 0 {
            return Err(format!("--sweep {}: no sweep has the parameter `{}`", change.name, change.name));
        }
    }
    if let Some(rounds) = overrides.rounds {
        super::sweep::set_rounds(&mut raw.steps, rounds);
    }
    let mut scenario = Scenario::from_raw(raw).map_err(|e| capped(&e))?;
    scenario.params_changed = params_changed;
    Ok(scenario)
}

/// The most of an error's text shown: errors quote what the file said, and a file can say a megabyte.
const MAX_ERROR_CHARS: usize = 400;

/// `error` cut to [`MAX_ERROR_CHARS`], saying how much was left out.
fn capped(error: &str) -> String {
    crate::wire::error::capped_to(error.to_owned(), MAX_ERROR_CHARS)
}

/// What the conversion of steps needs to know of the whole scenario.
#[derive(Clone, Copy)]
struct Context {
    has_prometheus: bool,
    local: bool,
    /// The rounds of the sweeps around these steps, multiplied: 1 outside any sweep.
    rounds_around: usize,
}

impl Scenario {
    pub fn from_raw(raw: RawScenario) -> Result<Self, String> {
        let target = target(raw.target)?;
        let context = Context {
            has_prometheus: raw.prometheus.is_some(),
            local: matches!(target, Target::Local(_)),
            rounds_around: 1,
        };
        if raw.steps.is_empty() {
            return Err("steps: a scenario needs at least one step".into());
        }
        Ok(Scenario {
            name: raw.name,
            description: raw.description,
            target,
            prometheus: raw.prometheus,
            continue_on_failure: raw.continue_on_failure,
            steps: steps(&raw.steps, "steps", context)?,
            teardown: steps(&raw.teardown, "teardown", context)?,
            guards: checks(&raw.guards, "guards", true, context)?,
            steady_state: match raw.steady_state {
                None => None,
                Some(steady) => {
                    if steady.checks.is_empty() {
                        return Err("steady_state.checks: give at least one check".into());
                    }
                    let recover_within = steady.recover_within.map_or(DEFAULT_RECOVER_WITHIN, |d| d.0);
                    if recover_within > crate::guard::MAX_WAIT {
                        return Err("steady_state.recover_within: at most 1h".into());
                    }
                    Some(SteadyState {
                        checks: checks(&steady.checks, "steady_state.checks", false, context)?,
                        recover_within,
                    })
                }
            },
            params_changed: Vec::new(),
        })
    }
}

fn target(raw: RawTarget) -> Result<Target, String> {
    match (raw.agent, raw.consul, raw.local) {
        (Some(public), None, None) => Ok(Target::Agent { public, service: raw.service }),
        (None, Some(address), None) => Ok(Target::Consul { address, service: raw.consul_service }),
        (None, None, Some(0)) => Err("target.local: a local swarm needs at least 1 agent".into()),
        (None, None, Some(n)) => Ok(Target::Local(n)),
        _ => Err("target: give exactly one of `agent: URL`, `consul: ADDRESS` or `local: N`".into()),
    }
}

/// Guards (`live`: they may read a running load) or a steady state's checks; a `promql` one needs the
/// scenario's `prometheus:`.
fn checks(raw: &[RawCheck], at: &str, live: bool, context: Context) -> Result<Vec<Check>, String> {
    raw.iter()
        .enumerate()
        .map(|(i, raw)| {
            let here = format!("{at}[{i}]");
            if raw.promql.is_some() && !context.has_prometheus {
                return Err(format!("{here}.promql: the scenario has no `prometheus:` URL to ask"));
            }
            Check::from_raw(raw, &here, live)
        })
        .collect()
}

fn steps(raw: &[RawStep], at: &str, context: Context) -> Result<Vec<Step>, String> {
    raw.iter().enumerate().map(|(i, step)| self::step(step, &format!("{at}[{i}]"), context)).collect()
}

fn bounds(values: &BTreeMap<String, String>, at: &str) -> Result<BTreeMap<String, Bound>, String> {
    values
        .iter()
        .map(|(path, bound)| Ok((path.clone(), Bound::parse(bound).map_err(|e| format!("{at}.{path}: {e}"))?)))
        .collect()
}

fn step(raw: &RawStep, here: &str, context: Context) -> Result<Step, String> {
    let mut actions = Vec::new();
    if let Some(exec) = &raw.exec {
        actions.push(Action::Exec(self::exec(exec, here, context)?));
    }
    if let Some(wait) = raw.wait {
        actions.push(Action::Wait(wait));
    }
    if let Some(expect) = &raw.expect {
        actions.push(Action::Expect(expectation(expect, here, context)?));
    }
    if let Some(probe) = &raw.probe {
        actions.push(Action::Probe(probe.clone()));
    }
    if let Some(run) = &raw.run {
        actions.push(Action::Run(run_command(run, here)?));
    }
    if raw.abort.as_ref().is_some_and(|v| v != &Value::Bool(false)) {
        actions.push(Action::Abort);
    }
    if let Some(inner) = &raw.parallel {
        actions.push(Action::Parallel(steps(inner, &format!("{here}.parallel"), context)?));
    }
    match (&raw.steps, &raw.sweep) {
        (Some(_), Some(_)) if raw.repeat.is_some() => {
            return Err(format!("{here}: a sweep runs its steps once per round: give `sweep` or `repeat`, not both"))
        }
        (Some(inner), Some(params)) => actions.push(Action::Sweep(sweep(raw, params, inner, here, context)?)),
        (Some(inner), None) => {
            let times = raw.repeat.unwrap_or(1);
            if times == 0 {
                return Err(format!("{here}.repeat: must be at least 1"));
            }
            actions.push(Action::Repeat { steps: steps(inner, &format!("{here}.steps"), context)?, times });
        }
        (None, Some(_)) => return Err(format!("{here}: `sweep` needs `steps:` to run in each round")),
        _ if (raw.rounds.is_some() || raw.chart.is_some()) && raw.sweep.is_none() => {
            return Err(format!("{here}: `rounds` and `chart` are a sweep's: they need `sweep:`"))
        }
        _ if raw.compare.is_some() && raw.sweep.is_none() => {
            return Err(format!("{here}: `compare` compares a sweep's rounds: it needs `sweep:`"))
        }
        (None, None) if raw.repeat.is_some() => return Err(format!("{here}: `repeat` needs `steps:` to repeat")),
        (None, None) => {}
    }
    let action = match actions.len() {
        1 => actions.remove(0),
        0 => {
            return Err(format!("{here}: a step needs one of exec, wait, expect, probe, run, abort, parallel or steps"))
        }
        _ => {
            return Err(format!(
                "{here}: a step has one action only (exec, wait, expect, probe, run, abort, parallel or steps)"
            ))
        }
    };
    let title = raw.name.clone().unwrap_or_else(|| title(&action));
    Ok(Step { title, action })
}

/// A short name for a step without one, for progress lines and reports.
fn title(action: &Action) -> String {
    match action {
        Action::Exec(e) => format!("exec {}", e.command),
        Action::Wait(d) => format!("wait {d}"),
        Action::Expect(e) => match &e.source {
            Source::PromQl(query) => format!("expect {query} {}", e.is),
            Source::Metric(selector) => format!("expect {selector} {}", e.is),
        },
        Action::Probe(p) => format!("probe {}", p.url),
        Action::Run(r) => format!("run {}", r.shown().chars().take(60).collect::<String>()),
        Action::Abort => "abort".into(),
        Action::Parallel(s) => format!("parallel ({} steps)", s.len()),
        Action::Repeat { steps, times } => format!("repeat {times} × {} steps", steps.len()),
        Action::Sweep(sweep) => format!("sweep {}", sweep.params.join(" × ")),
    }
}

/// The command and its data as this binary's plugins type them (`catalogue`): an unknown command, a
/// misspelled field or a bad duration is a bad file before any agent is asked. Data with `{{...}}`
/// placeholders is left to the agent, which sees it filled in.
fn exec(raw: &RawExec, here: &str, context: Context) -> Result<Exec, String> {
    let at = format!("{here}.exec");
    let data = match &raw.data {
        data if data.to_string().contains("{{") => None,
        Value::Null => Some(Value::Object(Default::default())),
        data => Some(data.clone()),
    };
    let known = crate::catalogue::check(&raw.command, data).map_err(|e| format!("{at}.{e}"))?;
    // Against a local swarm the agent's process is this runner's own.
    if context.local && known.ends_process {
        return Err(format!(
            "{at}: {} would kill the local swarm and this runner with it; run it with --target against agents an \
             orchestrator restarts",
            raw.command
        ));
    }
    let expect = raw.expect.clone().unwrap_or_default();
    Ok(Exec {
        command: raw.command.clone(),
        data: raw.data.clone(),
        wave: raw.wave.clone(),
        detach: raw.detach,
        status: expect.status.unwrap_or(if raw.detach { Status::Running } else { Status::Ok }),
        values: bounds(&expect.values, &format!("{at}.expect.values"))?,
        record: raw.record.clone(),
    })
}

fn expectation(raw: &RawExpect, here: &str, context: Context) -> Result<Expectation, String> {
    let is = Bound::parse(&raw.is).map_err(|e| format!("{here}.expect.is: {e}"))?;
    let source = match (&raw.promql, &raw.metric) {
        (Some(_), None) if !context.has_prometheus => {
            return Err(format!("{here}.expect.promql: the scenario has no `prometheus:` URL"))
        }
        (Some(query), None) => Source::PromQl(query.clone()),
        (None, Some(selector)) => Source::Metric(selector.clone()),
        _ => return Err(format!("{here}.expect: give `promql` or `metric`, one of them")),
    };
    Ok(Expectation { source, is, within: raw.within })
}

fn run_command(raw: &RawRun, here: &str) -> Result<RunCommand, String> {
    let run = match raw {
        RawRun::Line(command) => RunCommand {
            command: command.clone(),
            status: 0,
            timeout: default_run_timeout(),
            values: BTreeMap::new(),
            record: Vec::new(),
            env: BTreeMap::new(),
        },
        RawRun::Full { command, status, timeout, values, record, env } => RunCommand {
            command: command.clone(),
            status: *status,
            timeout: *timeout,
            values: bounds(values, &format!("{here}.run.values"))?,
            record: record.clone(),
            env: env.clone(),
        },
    };
    let mut run = run;
    run.command = super::shell::placeholders_to_variables(&run.command, |name| match name {
        "public" => Some(TARGET_PUBLIC.to_owned()),
        "service" => Some(TARGET_SERVICE.to_owned()),
        _ => None,
    })
    .map_err(|err| format!("{here}.run: {err}"))?;
    if run.command.trim().is_empty() {
        return Err(format!("{here}: `run` needs a command"));
    }
    if run.timeout.0 > MAX_RUN_TIMEOUT || run.timeout.0.is_zero() {
        return Err(format!("{here}.run.timeout: {} must be more than 0 and at most 1h", run.timeout));
    }
    Ok(run)
}

/// Every round typed with its values in place: a body must hold for each.
fn sweep(
    raw: &RawStep,
    params: &indexmap::IndexMap<String, Vec<Value>>,
    inner: &[RawStep],
    here: &str,
    context: Context,
) -> Result<Sweep, String> {
    let names: Vec<String> = params.keys().cloned().collect();
    let mut compare = Vec::new();
    for (i, text) in raw.compare.iter().flatten().enumerate() {
        let comparison = Comparison::parse(text, &names).map_err(|e| format!("{here}.compare[{i}]: {e}"))?;
        // A value no round has is a typo: said now, not after the whole sweep has run.
        for (param, value) in comparison.selected() {
            let values = params.get(param).map(|v| v.iter().map(super::sweep::plain).collect::<Vec<_>>());
            if !values.as_ref().is_some_and(|v| v.contains(value)) {
                return Err(format!(
                    "{here}.compare[{i}]: no round has {param}={value} (its values: {})",
                    values.unwrap_or_default().join(", ")
                ));
            }
        }
        compare.push(comparison);
    }
    let repeats = raw.rounds.unwrap_or(1);
    if !(1..=MAX_RUNS_PER_ROUND).contains(&repeats) {
        return Err(format!("{here}.rounds: {repeats} must be 1 to {MAX_RUNS_PER_ROUND}"));
    }
    let every_round = sweep_rounds(params).map_err(|e| format!("{here}.sweep: {e}"))?;
    // Nested sweeps multiply: 40 rounds inside 40 are 1,600, so the cap holds for the product.
    let in_all = context.rounds_around.saturating_mul(every_round.len()).saturating_mul(repeats as usize);
    if in_all > super::sweep::MAX_SWEEP_ROUNDS {
        return Err(format!(
            "{here}.sweep: with the sweeps around it, this would run {in_all} rounds in all; at most {} are allowed",
            super::sweep::MAX_SWEEP_ROUNDS
        ));
    }
    let context = Context { rounds_around: in_all, ..context };
    let mut rounds = Vec::new();
    for values in every_round {
        let filled = substitute_steps(inner, &values).map_err(|e| format!("{here}.steps: {e}"))?;
        let steps = steps(&filled, &format!("{here}.steps[{}]", round_label(&values)), context)?;
        rounds.push(SweepRound { values, steps });
    }
    Ok(Sweep {
        params: names,
        rounds,
        compare,
        compare_skipped: raw.compare_skipped.clone(),
        repeats,
        chart: raw.chart.clone().unwrap_or_default(),
    })
}

/// The sweep step titled `title`, at any depth.
pub fn find_sweep<'a>(steps: &'a [Step], title: &str) -> Option<&'a Sweep> {
    steps.iter().find_map(|step| match &step.action {
        Action::Sweep(sweep) if step.title == title => Some(sweep),
        Action::Sweep(sweep) => sweep.rounds.iter().find_map(|round| find_sweep(&round.steps, title)),
        Action::Parallel(inner) | Action::Repeat { steps: inner, .. } => find_sweep(inner, title),
        _ => None,
    })
}

/// The most runs of one round (`rounds:`, `--rounds`).
pub const MAX_RUNS_PER_ROUND: u32 = 100;

#[cfg(test)]
mod tests {
    use super::*;

    fn from_text(text: &str) -> Result<Scenario, String> {
        Scenario::from_raw(serde_norway::from_str::<RawScenario>(text).map_err(|e| e.to_string())?)
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 256, ..Default::default() })]
        /// Any text made of a scenario's pieces is typed or refused, quickly, and never panics.
        #[test]
        fn any_scenario_text_is_answered_quickly_and_never_panics(
            parts in proptest::collection::vec(proptest::sample::select(vec![
                "name: x\n", "target: {local: 1}\n", "steps:\n", "  - ", "exec: ", "{command: sleep/sleep}",
                "run: ", "'echo {{n}}'", "sweep: ", "{n: [1, 2]}", "steps: ", "[{wait: 1ms}]", "teardown:\n",
                "[", "]", "{", "}", "\n", "    ", "!!python/object ", "&a ", "*a", "'", "\"", "# c", ": ", ", ",
            ]), 0..120)
        ) {
            let text: String = parts.concat();
            let started = std::time::Instant::now();
            let _ = parse_with(&text, &Overrides::default());
            proptest::prop_assert!(started.elapsed() < std::time::Duration::from_secs(2), "{:?}", started.elapsed());
        }
    }

    #[test]
    fn nested_sweeps_are_capped_by_their_product() {
        let nested = |outer: usize, inner: usize| {
            let list = |n: usize| format!("[{}]", (0..n).map(|i| i.to_string()).collect::<Vec<_>>().join(", "));
            format!(
                "name: x\ntarget: {{local: 1}}\nsteps:\n  - sweep: {{a: {}}}\n    steps:\n      - sweep: {{b: {}}}\n        steps: [{{wait: 1ms}}]\n",
                list(outer),
                list(inner)
            )
        };
        assert!(from_text(&nested(20, 50)).is_ok(), "1,000 rounds in all is the cap");
        let err = from_text(&nested(40, 40)).err().unwrap();
        assert!(err.contains("1600 rounds in all"), "{err}");
    }

    #[test]
    fn unknown_keys_carry_their_line() {
        let text = "name: x\ntarget: {local: 2}\nsteps:\n  - wait: 1s\n  - exce: {command: sleep/sleep}\n";
        let err = serde_norway::from_str::<RawScenario>(text).unwrap_err().to_string();
        assert!(err.contains("unknown field `exce`") && err.contains("line 5"), "{err}");
    }

    #[test]
    fn run_steps_measure_what_their_command_prints() {
        let text = "name: x\ntarget: {local: 1}\nsteps:\n  - run: {command: 'echo', values: {s: 'soon'}}\n";
        let err = from_text(text).err().unwrap();
        assert!(err.contains("steps[0].run.values.s"), "{err}");
        let text = "name: x\ntarget: {local: 1}\nsteps:\n  - run: {command: 'echo', values: {s: '< 3'}, record: [t]}\n";
        let scenario = from_text(text).unwrap();
        assert!(
            matches!(&scenario.steps[0].action, Action::Run(run) if run.measures() && run.values["s"].value == 3.0)
        );
    }

    #[test]
    fn exec_bodies_are_typed_by_the_plugins() {
        let check_exec = |exec: &str| {
            from_text(&format!("name: x\ntarget: {{agent: 'http://127.0.0.1:1'}}\nsteps:\n  - exec: {exec}\n"))
        };
        let err = check_exec("{command: sleep/nap}").err().unwrap();
        assert!(err.contains("steps[0].exec.command: unknown command `sleep/nap`"), "{err}");
        let err = check_exec("{command: sleep/sleep, data: {duraton: 1s}}").err().unwrap();
        assert!(err.contains("steps[0].exec.data.duraton: unknown field"), "{err}");
        let err = check_exec("{command: sleep/sleep, data: {duration: fast}}").err().unwrap();
        assert!(err.contains("steps[0].exec.data.duration: invalid duration"), "{err}");
        assert!(check_exec("{command: persistent_storage/write, data: {amount: 1MB}}").is_ok());
        assert!(check_exec("{command: sleep/sleep, data: {duration: '{{wait}}'}}").is_ok(), "placeholders wait");
        let err = check_exec("{command: sleep/sleep, expect: {status: fine}}").err().unwrap();
        assert!(err.contains("unknown variant `fine`"), "a status is one of the wire's: {err}");
        let scenario = check_exec("{command: sleep/sleep, detach: true}").unwrap();
        assert!(matches!(&scenario.steps[0].action, Action::Exec(e) if e.status == Status::Running));
    }

    #[test]
    fn a_step_has_one_action() {
        let err = from_text("name: x\ntarget: {local: 2}\nsteps:\n  - {wait: 1s, abort: {}}\n").err().unwrap();
        assert!(err.contains("one action only"), "{err}");
        let err =
            from_text("name: x\ntarget: {local: 2}\nsteps:\n  - expect: {promql: up, is: '> 0'}\n").err().unwrap();
        assert!(err.contains("no `prometheus:`"), "{err}");
    }

    #[test]
    fn errors_quote_a_few_hundred_characters_of_the_file_at_most() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("loud.yaml");
        let expression = "x".repeat(1 << 20);
        let text = format!(
            "name: x\ntarget: {{local: 1}}\nsteps:\n  - sweep: {{n: [1]}}\n    compare: ['{expression}']\n    steps: [{{wait: 1ms}}]\n"
        );
        std::fs::write(&file, text).unwrap();
        let err = load(&file).err().unwrap();
        assert!(err.contains("compare[0]") && err.contains("more bytes not shown"), "{err:.600}");
        assert!(err.len() < 1_000, "the error is {} bytes", err.len());
        assert_eq!(capped("short"), "short");
    }

    #[test]
    fn a_sweep_is_typed_round_by_round() {
        let text = "name: x\ntarget: {local: 1}\nsteps:\n  - sweep: {n: [1, 2]}\n    steps:\n      - exec: {command: sleep/sleep, data: {duration: '{{n}}s'}}\n";
        let scenario = from_text(text).unwrap();
        let Action::Sweep(sweep) = &scenario.steps[0].action else { panic!("a sweep") };
        assert_eq!(sweep.rounds.len(), 2);
        assert!(matches!(&sweep.rounds[1].steps[0].action, Action::Exec(e) if e.data["duration"] == "2s"));
        let text = "name: x\ntarget: {local: 1}\nsteps:\n  - sweep: {n: [1s, fast]}\n    steps:\n      - exec: {command: sleep/sleep, data: {duration: '{{n}}'}}\n";
        let err = from_text(text).err().unwrap();
        assert!(err.contains("steps[0].steps[n=fast][0].exec.data.duration"), "{err}");
    }
}
