//! The scenario file (docs/scenarios.md): a target, an optional Prometheus, and steps. Unknown keys are refused with
//! their line and column.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tarsier_plugin::HumanDuration;

use crate::wire::body::WaveSpec;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub target: Target,
    /// Prometheus base URL for `expect: {promql: ...}` steps.
    #[serde(default)]
    pub prometheus: Option<String>,
    /// Keep running the steps after one fails (default: stop at the first failure).
    #[serde(default)]
    pub continue_on_failure: bool,
    pub steps: Vec<Step>,
    /// Steps run after `steps` whatever happened to them (a failure, Ctrl-C): each one, in order. For
    /// releasing what the steps set up (`run: python3 scripts/stack.py down`).
    #[serde(default)]
    pub teardown: Vec<Step>,
}

/// Where the scenario sends its commands: exactly one of `agent`, `consul` or `local`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// An agent's public URL.
    pub agent: Option<String>,
    /// That agent's service URL, for `expect: {metric: ...}`; default: the same host, public port + 1.
    pub service: Option<String>,
    /// A Consul address: the scenario talks to one passing agent of `consul_service`.
    pub consul: Option<String>,
    #[serde(default = "default_consul_service")]
    pub consul_service: String,
    /// Start a local swarm of this many agents for the scenario.
    pub local: Option<usize>,
}

fn default_consul_service() -> String {
    "tarsier".into()
}

/// One step: exactly one action, with an optional name.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: Option<String>,
    pub exec: Option<ExecStep>,
    pub wait: Option<HumanDuration>,
    pub expect: Option<ExpectStep>,
    pub probe: Option<ProbeStep>,
    /// `abort: {}` (or `abort: true`): POST /abort to the target, which floods the swarm.
    pub abort: Option<Value>,
    /// A command on the machine that runs the scenario (`docker`, `kubectl`, a script), like a command probe.
    pub run: Option<RunStep>,
    /// Steps run at the same time.
    pub parallel: Option<Vec<Step>>,
    /// Steps run in order, `repeat` times.
    pub steps: Option<Vec<Step>>,
    pub repeat: Option<u32>,
    /// `sweep: {replicas: [1, 2, 4]}` with `steps:`: the steps run once per value (several parameters: once
    /// per combination), with `{{replicas}}` replaced in their strings and exec data; the figures they record
    /// make one row of the sweep's table per round.
    pub sweep: Option<BTreeMap<String, Vec<Value>>>,
    /// With `sweep`: comparisons across its rounds, checked when the last round ends
    /// (`result.req_per_s at replicas=8 >= 1.5x at replicas=1`).
    pub compare: Option<Vec<String>>,
}

/// A command body plus what its answer must show.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExecStep {
    pub command: String,
    #[serde(default)]
    pub data: Value,
    #[serde(default)]
    pub wave: Option<WaveSpec>,
    #[serde(default)]
    pub detach: bool,
    #[serde(default)]
    pub expect: Option<AnswerExpect>,
    /// Dotted paths of the answer to show in the summary (`result.req_per_s`, `report.merged.latency_ms.p99`).
    #[serde(default)]
    pub record: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerExpect {
    /// The answer's `status` (default `ok`, or `running` for a detached command).
    pub status: Option<String>,
    /// Comparisons on dotted paths of the answer; `report.` paths read the wave report (`wave.report: true`).
    #[serde(default)]
    pub values: std::collections::BTreeMap<String, String>,
}

/// A number from Prometheus or from the target's /metrics, compared with a bound.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectStep {
    /// A PromQL query answered by the scenario's `prometheus`; it must give one number.
    pub promql: Option<String>,
    /// A metric of the target agent's /metrics: `name` or `name{label="value"}`, summed over matching series.
    pub metric: Option<String>,
    /// The comparison: `< 5`, `<= 5`, `> 5`, `>= 5` or `== 5`.
    pub is: String,
    /// Poll until it holds, for at most this long (default: check once).
    pub within: Option<HumanDuration>,
}

/// `run: "docker kill x"` (run by `sh -c`) or `run: {command: ..., status: 0, timeout: 60s}`: it holds when
/// the command exits with `status` within `timeout`; past the timeout it is killed. `{{public}}` and
/// `{{service}}` in the command become the target's `host:port`s. A command that prints a JSON object on
/// its last line of stdout (`{"seconds": 4.2}`) can be measured like an exec answer: `values:` compares
/// its fields and `record:` keeps them. A scenario with `run:` steps runs programs: run only scenario files
/// you trust.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RunStep {
    Line(String),
    Full {
        command: String,
        #[serde(default)]
        status: i32,
        #[serde(default = "default_run_timeout")]
        timeout: HumanDuration,
        /// Comparisons on dotted paths of the JSON object the command printed last.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        values: BTreeMap<String, String>,
        /// Dotted paths of that object to record.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        record: Vec<String>,
    },
}

/// The longest a `run:` step may be given.
pub const MAX_RUN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

fn default_run_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
}

impl RunStep {
    /// The command line, the exit status it must end with, and its time limit.
    pub fn parts(&self) -> (&str, i32, HumanDuration) {
        match self {
            RunStep::Line(command) => (command, 0, default_run_timeout()),
            RunStep::Full { command, status, timeout, .. } => (command, *status, *timeout),
        }
    }

    /// What the step compares and records of the command's JSON output (nothing for a plain line).
    pub fn measures(&self) -> (Option<&BTreeMap<String, String>>, &[String]) {
        match self {
            RunStep::Line(_) => (None, &[]),
            RunStep::Full { values, record, .. } => (Some(values), record),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProbeStep {
    pub url: String,
    /// The status that must come back.
    #[serde(default = "default_probe_status")]
    pub status: u16,
    /// How long the system under test has to answer it.
    #[serde(default = "default_probe_within")]
    pub within: HumanDuration,
    /// Turn the probe around: it holds when `status` does NOT come within the time (a liveness probe fires).
    #[serde(default)]
    pub fails: bool,
}

fn default_probe_status() -> u16 {
    200
}
fn default_probe_within() -> HumanDuration {
    HumanDuration::from_secs(30)
}

/// A comparison such as `<= 250`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bound {
    pub op: Op,
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

impl Bound {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (op, rest) = [("<=", Op::Le), (">=", Op::Ge), ("==", Op::Eq), ("<", Op::Lt), (">", Op::Gt)]
            .iter()
            .find_map(|(sym, op)| text.strip_prefix(sym).map(|rest| (*op, rest)))
            .ok_or_else(|| format!("`{text}` is not a comparison: write `< 5`, `<= 5`, `> 5`, `>= 5` or `== 5`"))?;
        let value = rest.trim().parse::<f64>().map_err(|_| format!("`{}` in `{text}` is not a number", rest.trim()))?;
        Ok(Self { op, value })
    }

    pub fn holds(&self, x: f64) -> bool {
        match self.op {
            Op::Lt => x < self.value,
            Op::Le => x <= self.value,
            Op::Gt => x > self.value,
            Op::Ge => x >= self.value,
            Op::Eq => (x - self.value).abs() < 1e-9,
        }
    }
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let op = match self.op {
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Eq => "==",
        };
        write!(f, "{op} {}", self.value)
    }
}

/// What a step does, once checked.
pub enum Action<'a> {
    Exec(&'a ExecStep),
    Wait(HumanDuration),
    Expect(&'a ExpectStep),
    Probe(&'a ProbeStep),
    Run(&'a RunStep),
    Abort,
    Parallel(&'a [Step]),
    Group(&'a [Step], u32),
    Sweep(&'a BTreeMap<String, Vec<Value>>, &'a [Step]),
}

impl Step {
    pub fn action(&self) -> Result<Action<'_>, String> {
        let mut actions = Vec::new();
        if let Some(exec) = &self.exec {
            actions.push(Action::Exec(exec));
        }
        if let Some(wait) = self.wait {
            actions.push(Action::Wait(wait));
        }
        if let Some(expect) = &self.expect {
            actions.push(Action::Expect(expect));
        }
        if let Some(probe) = &self.probe {
            actions.push(Action::Probe(probe));
        }
        if let Some(run) = &self.run {
            let (command, _, timeout) = run.parts();
            if command.trim().is_empty() {
                return Err("`run` needs a command".into());
            }
            if timeout.0 > MAX_RUN_TIMEOUT || timeout.0.is_zero() {
                return Err(format!("run.timeout: {timeout} must be more than 0 and at most 1h"));
            }
            actions.push(Action::Run(run));
        }
        if self.abort.as_ref().is_some_and(|v| v != &Value::Bool(false)) {
            actions.push(Action::Abort);
        }
        if let Some(steps) = &self.parallel {
            actions.push(Action::Parallel(steps));
        }
        match (&self.steps, &self.sweep) {
            (Some(_), Some(_)) if self.repeat.is_some() => {
                return Err("a sweep runs its steps once per round: give `sweep` or `repeat`, not both".into())
            }
            (Some(steps), Some(params)) => actions.push(Action::Sweep(params, steps)),
            (Some(steps), None) => actions.push(Action::Group(steps, self.repeat.unwrap_or(1))),
            (None, Some(_)) => return Err("`sweep` needs `steps:` to run in each round".into()),
            _ if self.compare.is_some() && self.sweep.is_none() => {
                return Err("`compare` compares a sweep's rounds: it needs `sweep:`".into())
            }
            (None, None) if self.repeat.is_some() => return Err("`repeat` needs `steps:` to repeat".into()),
            (None, None) => {}
        }
        match actions.len() {
            1 => Ok(actions.remove(0)),
            0 => Err("a step needs one of exec, wait, expect, probe, run, abort, parallel or steps".into()),
            _ => Err("a step has one action only (exec, wait, expect, probe, run, abort, parallel or steps)".into()),
        }
    }

    /// A short name for progress lines and reports.
    pub fn title(&self) -> String {
        if let Some(name) = &self.name {
            return name.clone();
        }
        match self.action() {
            Ok(Action::Exec(e)) => format!("exec {}", e.command),
            Ok(Action::Wait(d)) => format!("wait {d}"),
            Ok(Action::Expect(e)) => {
                format!("expect {} {}", e.promql.as_deref().or(e.metric.as_deref()).unwrap_or("?"), e.is)
            }
            Ok(Action::Probe(p)) => format!("probe {}", p.url),
            Ok(Action::Run(r)) => format!("run {}", r.parts().0.chars().take(60).collect::<String>()),
            Ok(Action::Abort) => "abort".into(),
            Ok(Action::Parallel(s)) => format!("parallel ({} steps)", s.len()),
            Ok(Action::Group(s, n)) => format!("repeat {n} × {} steps", s.len()),
            Ok(Action::Sweep(params, _)) => format!("sweep {}", params.keys().cloned().collect::<Vec<_>>().join(" × ")),
            Err(_) => "invalid step".into(),
        }
    }
}

/// Reads and checks a scenario file; the error says where and what.
pub fn load(path: &Path) -> Result<Scenario, String> {
    load_with(path, &[])
}

/// Reads a scenario file, gives its sweeps the values of `overrides` (`--sweep`), then checks it.
pub fn load_with(path: &Path, overrides: &[SweepOverride]) -> Result<Scenario, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut scenario: Scenario = serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    for change in overrides {
        if override_sweeps(&mut scenario.steps, change) == 0 {
            return Err(format!(
                "{}: --sweep {}: no sweep has the parameter `{}`",
                path.display(),
                change.name,
                change.name
            ));
        }
    }
    check(&scenario).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(scenario)
}

/// `--sweep replicas=1,4`: new values for a sweep parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepOverride {
    pub name: String,
    pub values: Vec<Value>,
}

impl SweepOverride {
    /// `NAME=V1,V2,...`; each value is read as YAML, so `4` is a number and `fast` a string.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, list) = text.split_once('=').ok_or_else(|| format!("--sweep {text}: write NAME=V1,V2"))?;
        let values = list
            .split(',')
            .filter(|v| !v.trim().is_empty())
            .map(|v| serde_norway::from_str::<Value>(v.trim()).map_err(|e| format!("--sweep {text}: `{v}`: {e}")))
            .collect::<Result<Vec<_>, _>>()?;
        if values.is_empty() {
            return Err(format!("--sweep {text}: give at least one value"));
        }
        Ok(SweepOverride { name: name.trim().to_owned(), values })
    }
}

/// Puts the override's values into every sweep (at any depth) that has its parameter; how many did.
fn override_sweeps(steps: &mut [Step], change: &SweepOverride) -> usize {
    let mut changed = 0;
    for step in steps {
        if let Some(values) = step.sweep.as_mut().and_then(|params| params.get_mut(&change.name)) {
            *values = change.values.clone();
            changed += 1;
        }
        for inner in [step.steps.as_mut(), step.parallel.as_mut()].into_iter().flatten() {
            changed += override_sweeps(inner, change);
        }
    }
    changed
}

fn check(scenario: &Scenario) -> Result<(), String> {
    let t = &scenario.target;
    let chosen = [t.agent.is_some(), t.consul.is_some(), t.local.is_some()].iter().filter(|b| **b).count();
    if chosen != 1 {
        return Err("target: give exactly one of `agent: URL`, `consul: ADDRESS` or `local: N`".into());
    }
    if t.local == Some(0) {
        return Err("target.local: a local swarm needs at least 1 agent".into());
    }
    if scenario.steps.is_empty() {
        return Err("steps: a scenario needs at least one step".into());
    }
    check_steps(&scenario.steps, "steps", scenario.prometheus.is_some(), t.local.is_some())?;
    check_steps(&scenario.teardown, "teardown", scenario.prometheus.is_some(), t.local.is_some())
}

/// The command and its data as this binary's plugins type them: an unknown command, a misspelled field or
/// a bad duration is a bad file before any agent is asked. Data with `{{...}}` placeholders is left to the
/// agent, which sees it filled in. What depends on the agent (its limits, its files) is checked there.
fn check_body(exec: &ExecStep) -> Result<crate::catalogue::Known, String> {
    if exec.data.to_string().contains("{{") {
        return crate::catalogue::check_command(&exec.command);
    }
    let data = if exec.data.is_null() { Value::Object(Default::default()) } else { exec.data.clone() };
    crate::catalogue::check_body(&exec.command, data)
}

/// The most rounds one sweep may run (the product of its parameters' values).
pub const MAX_SWEEP_ROUNDS: usize = 1_000;

/// One round of a sweep: each parameter's value.
pub type Round = Vec<(String, Value)>;

/// Every combination of the parameters' values, the first parameter (by name) varying slowest.
pub fn sweep_rounds(params: &BTreeMap<String, Vec<Value>>) -> Result<Vec<Round>, String> {
    if params.is_empty() {
        return Err("give at least one parameter and its values, such as `{replicas: [1, 2, 4]}`".into());
    }
    let mut rounds: Vec<Round> = vec![Vec::new()];
    for (name, values) in params {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(format!("`{name}`: a parameter's name is letters, digits and `_`"));
        }
        if values.is_empty() {
            return Err(format!("{name}: give at least one value"));
        }
        if let Some(bad) = values.iter().find(|v| !(v.is_number() || v.is_string() || v.is_boolean())) {
            return Err(format!("{name}: {bad} is not a number, string or boolean"));
        }
        if rounds.len().saturating_mul(values.len()) > MAX_SWEEP_ROUNDS {
            return Err(format!("more than {MAX_SWEEP_ROUNDS} rounds"));
        }
        rounds = rounds
            .into_iter()
            .flat_map(|round| {
                values.iter().map(move |value| {
                    let mut next = round.clone();
                    next.push((name.clone(), value.clone()));
                    next
                })
            })
            .collect();
    }
    Ok(rounds)
}

/// `replicas=2 concurrency=50`.
pub fn round_label(round: &Round) -> String {
    round.iter().map(|(name, value)| format!("{name}={}", plain(value))).collect::<Vec<_>>().join(" ")
}

/// A parameter's value as written: a string without its quotes, anything else as JSON.
pub fn plain(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

/// The steps with `{{name}}` replaced by the round's values in every string: a string that is only the
/// placeholder becomes the value itself (a number stays a number in exec data).
pub fn substitute_steps(steps: &[Step], round: &Round) -> Result<Vec<Step>, String> {
    let mut value = serde_json::to_value(steps).map_err(|e| e.to_string())?;
    fill(&mut value, round);
    serde_json::from_value(value).map_err(|e| e.to_string())
}

fn fill(value: &mut Value, round: &Round) {
    match value {
        Value::String(text) => {
            if let Some((_, whole)) = round.iter().find(|(name, _)| *text == format!("{{{{{name}}}}}")) {
                *value = whole.clone();
                return;
            }
            for (name, replacement) in round {
                *text = text.replace(&format!("{{{{{name}}}}}"), &plain(replacement));
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|item| fill(item, round)),
        Value::Object(map) => map.values_mut().for_each(|item| fill(item, round)),
        _ => {}
    }
}

fn check_steps(steps: &[Step], at: &str, has_prometheus: bool, local: bool) -> Result<(), String> {
    for (i, step) in steps.iter().enumerate() {
        let here = format!("{at}[{i}]");
        let action = step.action().map_err(|e| format!("{here}: {e}"))?;
        match action {
            Action::Exec(exec) => {
                let known = check_body(exec).map_err(|e| format!("{here}.exec.{e}"))?;
                // Against a local swarm the agent's process is this runner's own.
                if local && known.ends_process {
                    return Err(format!(
                        "{here}.exec: {} would kill the local swarm and this runner with it; run it with \
                         --target against agents an orchestrator restarts",
                        exec.command
                    ));
                }
                if let Some(expect) = &exec.expect {
                    for (path, bound) in &expect.values {
                        Bound::parse(bound).map_err(|e| format!("{here}.exec.expect.values.{path}: {e}"))?;
                    }
                }
            }
            Action::Expect(expect) => {
                Bound::parse(&expect.is).map_err(|e| format!("{here}.expect.is: {e}"))?;
                match (&expect.promql, &expect.metric) {
                    (Some(_), None) if !has_prometheus => {
                        return Err(format!("{here}.expect.promql: the scenario has no `prometheus:` URL"))
                    }
                    (Some(_), None) | (None, Some(_)) => {}
                    _ => return Err(format!("{here}.expect: give `promql` or `metric`, one of them")),
                }
            }
            Action::Parallel(inner) => check_steps(inner, &format!("{here}.parallel"), has_prometheus, local)?,
            Action::Group(inner, repeat) => {
                if repeat == 0 {
                    return Err(format!("{here}.repeat: must be at least 1"));
                }
                check_steps(inner, &format!("{here}.steps"), has_prometheus, local)?
            }
            Action::Sweep(params, inner) => {
                let rounds = sweep_rounds(params).map_err(|e| format!("{here}.sweep: {e}"))?;
                let names: Vec<String> = params.keys().cloned().collect();
                for (i, text) in step.compare.iter().flatten().enumerate() {
                    super::compare::Comparison::parse(text, &names).map_err(|e| format!("{here}.compare[{i}]: {e}"))?;
                }
                // Every round is checked with its values in place: a typed body must hold for each.
                for round in &rounds {
                    let steps = substitute_steps(inner, round).map_err(|e| format!("{here}.steps: {e}"))?;
                    check_steps(&steps, &format!("{here}.steps[{}]", round_label(round)), has_prometheus, local)?;
                }
            }
            Action::Run(run) => {
                for (path, bound) in run.measures().0.into_iter().flatten() {
                    Bound::parse(bound).map_err(|e| format!("{here}.run.values.{path}: {e}"))?;
                }
            }
            Action::Wait(_) | Action::Probe(_) | Action::Abort => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds() {
        assert!(Bound::parse("<= 5").unwrap().holds(5.0));
        assert!(!Bound::parse("< 5").unwrap().holds(5.0));
        assert!(Bound::parse(">=1e6").unwrap().holds(2e6));
        assert!(Bound::parse("== 3").unwrap().holds(3.0));
        assert!(Bound::parse("about 3").is_err());
        assert!(Bound::parse("> three").is_err());
    }

    #[test]
    fn unknown_keys_carry_their_line() {
        let text = "name: x\ntarget: {local: 2}\nsteps:\n  - wait: 1s\n  - exce: {command: sleep/sleep}\n";
        let err = serde_norway::from_str::<Scenario>(text).unwrap_err().to_string();
        assert!(err.contains("unknown field `exce`") && err.contains("line 5"), "{err}");
    }

    #[test]
    fn sweeps_run_the_product_of_their_parameters_with_values_in_place() {
        let params: BTreeMap<String, Vec<Value>> = serde_json::from_str(r#"{"b": [1, 2], "a": ["x", "y"]}"#).unwrap();
        let rounds = sweep_rounds(&params).unwrap();
        let labels: Vec<String> = rounds.iter().map(round_label).collect();
        assert_eq!(labels, ["a=x b=1", "a=x b=2", "a=y b=1", "a=y b=2"]);
        let steps: Vec<Step> = serde_norway::from_str(
            "- run: 'scale to {{b}} in {{a}}'\n- exec: {command: sleep/sleep, data: {n: '{{b}}', s: 'b{{b}}'}}\n",
        )
        .unwrap();
        let filled = substitute_steps(&steps, &rounds[1]).unwrap();
        assert_eq!(filled[0].run.as_ref().unwrap().parts().0, "scale to 2 in x");
        let data = &filled[1].exec.as_ref().unwrap().data;
        assert_eq!(data["n"], 2, "a lone placeholder keeps the value's type");
        assert_eq!(data["s"], "b2");
        let too_many: BTreeMap<String, Vec<Value>> =
            [("a".to_owned(), vec![Value::from(1); 100]), ("b".to_owned(), vec![Value::from(1); 11])].into();
        assert!(sweep_rounds(&too_many).unwrap_err().contains("more than 1000 rounds"));
        assert!(sweep_rounds(&BTreeMap::new()).is_err());
    }

    #[test]
    fn sweep_overrides_replace_values_at_any_depth() {
        let change = SweepOverride::parse("n=1, 4,fast").unwrap();
        assert_eq!(change.values, [Value::from(1), Value::from(4), Value::from("fast")]);
        assert!(SweepOverride::parse("n").is_err() && SweepOverride::parse("n=").is_err());
        let mut steps: Vec<Step> = serde_norway::from_str(
            "- steps:\n  - sweep: {n: [1, 2, 3]}\n    steps: [{run: 'echo {{n}}'}]\n- sweep: {m: [1]}\n  steps: [{wait: 1s}]\n",
        )
        .unwrap();
        assert_eq!(override_sweeps(&mut steps, &change), 1);
        assert_eq!(steps[0].steps.as_ref().unwrap()[0].sweep.as_ref().unwrap()["n"].len(), 3);
        assert_eq!(override_sweeps(&mut steps, &SweepOverride::parse("x=1").unwrap()), 0);
    }

    #[test]
    fn run_steps_measure_what_their_command_prints() {
        let text = "name: x\ntarget: {local: 1}\nsteps:\n  - run: {command: 'echo', values: {s: 'soon'}}\n";
        let err = check(&serde_norway::from_str::<Scenario>(text).unwrap()).unwrap_err();
        assert!(err.contains("steps[0].run.values.s"), "{err}");
        let text = "name: x\ntarget: {local: 1}\nsteps:\n  - run: {command: 'echo', values: {s: '< 3'}, record: [t]}\n";
        assert!(check(&serde_norway::from_str::<Scenario>(text).unwrap()).is_ok());
    }

    #[test]
    fn exec_bodies_are_typed_by_the_plugins() {
        let check_exec = |exec: &str| {
            let text = format!("name: x\ntarget: {{agent: 'http://127.0.0.1:1'}}\nsteps:\n  - exec: {exec}\n");
            check(&serde_norway::from_str::<Scenario>(&text).unwrap())
        };
        let err = check_exec("{command: sleep/nap}").unwrap_err();
        assert!(err.contains("steps[0].exec.command: unknown command `sleep/nap`"), "{err}");
        let err = check_exec("{command: sleep/sleep, data: {duraton: 1s}}").unwrap_err();
        assert!(err.contains("steps[0].exec.data.duraton: unknown field"), "{err}");
        let err = check_exec("{command: sleep/sleep, data: {duration: fast}}").unwrap_err();
        assert!(err.contains("steps[0].exec.data.duration: invalid duration"), "{err}");
        assert!(check_exec("{command: persistent_storage/write, data: {amount: 1MB}}").is_ok());
        assert!(check_exec("{command: sleep/sleep, data: {duration: '{{wait}}'}}").is_ok(), "placeholders wait");
    }

    #[test]
    fn a_step_has_one_action() {
        let text = "name: x\ntarget: {local: 2}\nsteps:\n  - {wait: 1s, abort: {}}\n";
        let scenario: Scenario = serde_norway::from_str(text).unwrap();
        assert!(check(&scenario).unwrap_err().contains("one action only"));
        let text = "name: x\ntarget: {local: 2}\nsteps:\n  - expect: {promql: up, is: '> 0'}\n";
        let scenario: Scenario = serde_norway::from_str(text).unwrap();
        assert!(check(&scenario).unwrap_err().contains("no `prometheus:`"));
    }
}
