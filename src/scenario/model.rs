//! The scenario file as written (docs/scenarios.md): a target, an optional Prometheus, and steps, each a set
//! of optional keys. Unknown keys are refused with their line and column. Nothing here is checked beyond its
//! types: `plan` turns this once into typed steps, and the runner never sees these.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tarsier_plugin::HumanDuration;

use crate::guard::RawCheck;
use crate::wire::body::WaveSpec;
use crate::wire::status::Status;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    pub target: RawTarget,
    /// The scenario's parameters and their defaults (`image: tarsier:latest`): `{{image}}` in any step takes
    /// the value, and `scenario run --param image=...` gives another (`params.rs`).
    #[serde(default)]
    pub params: indexmap::IndexMap<String, Value>,
    /// Prometheus base URL for `expect: {promql: ...}` steps.
    #[serde(default)]
    pub prometheus: Option<String>,
    /// Keep running the steps after one fails (default: stop at the first failure).
    #[serde(default)]
    pub continue_on_failure: bool,
    pub steps: Vec<RawStep>,
    /// Steps run after `steps` whatever happened to them (a failure, Ctrl-C): each one, in order. For
    /// releasing what the steps set up (`run: python3 scripts/stack.py down`).
    #[serde(default)]
    pub teardown: Vec<RawStep>,
    /// Conditions read all the time the steps run (every `interval`, 1 s by default): one that stays broken
    /// for its `for:` aborts the swarm at once, and the run fails with its name, value and bound.
    #[serde(default)]
    pub guards: Vec<RawCheck>,
    /// Conditions that must hold before the first step (else the run does not start) and again after the
    /// teardown (else the run fails: the system did not recover).
    #[serde(default)]
    pub steady_state: Option<RawSteadyState>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSteadyState {
    pub checks: Vec<RawCheck>,
    /// How long, after the teardown, the checks have to hold again (default 60s); they are read every
    /// second until they all hold.
    #[serde(default)]
    pub recover_within: Option<HumanDuration>,
}

/// Where the scenario sends its commands: exactly one of `agent`, `consul` or `local`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
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
pub struct RawStep {
    pub name: Option<String>,
    pub exec: Option<RawExec>,
    pub wait: Option<HumanDuration>,
    pub expect: Option<RawExpect>,
    pub probe: Option<ProbeStep>,
    /// `abort: {}` (or `abort: true`): POST /abort to the target, which floods the swarm.
    pub abort: Option<Value>,
    /// A command on the machine that runs the scenario (`docker`, `kubectl`, a script), like a command probe.
    pub run: Option<RawRun>,
    /// Steps run at the same time.
    pub parallel: Option<Vec<RawStep>>,
    /// Steps run in order, `repeat` times.
    pub steps: Option<Vec<RawStep>>,
    pub repeat: Option<u32>,
    /// `sweep: {replicas: [1, 2, 4]}` with `steps:`: the steps run once per value (several parameters: once
    /// per combination, the first written varying slowest), with `{{replicas}}` replaced in their strings and
    /// exec data; the figures they record make one row of the sweep's table per round. In the order written:
    /// the chart's x axis is the first parameter that varies.
    pub sweep: Option<indexmap::IndexMap<String, Vec<Value>>>,
    /// With `sweep`: each round is run this many times (default 1; `scenario run --rounds N` for every sweep),
    /// every run kept; tables show the median and the range, charts error bars.
    pub rounds: Option<u32>,
    /// With `sweep`: how its chart is drawn (title, reference lines).
    pub chart: Option<ChartSpec>,
    /// With `sweep`: comparisons across its rounds, checked when the last round ends
    /// (`result.req_per_s at replicas=8 >= 1.5x at replicas=1`).
    pub compare: Option<Vec<String>>,
    /// Comparisons taken out because `--sweep` removed a value they name: said, not failed.
    #[serde(skip)]
    pub compare_skipped: Vec<String>,
}

/// A sweep's chart: its title (the question it answers) and the lines a reader compares the figures with.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ChartSpec {
    /// The chart's title; the sweep's name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Figures drawn with the line of ideal scaling beside them: the first point's value grown in proportion to
    /// the x axis (`result.req_per_s` at 4 replicas = 4x the figure at 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ideal: Vec<String>,
    /// Curves of a fair share: `total` split evenly over x (`{figure: cpu_share_mean, total: 2, label: 2 cores
    /// shared}`: each of x containers gets 2/x).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shares: Vec<ShareLine>,
    /// What a figure is called on the chart, when its path says too little (`seconds: time to scale`); the
    /// unit still comes from the path.
    #[serde(default, skip_serializing_if = "indexmap::IndexMap::is_empty")]
    pub names: indexmap::IndexMap<String, String>,
    /// Horizontal lines: a target or a limit (`{figure: result.latency_ms.p99, value: 3000, label: seed 002's 3 s}`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<ReferenceLine>,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ShareLine {
    pub figure: String,
    pub total: f64,
    /// What each asks at most: the share is `min(cap, total / x)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cap: Option<f64>,
    pub label: String,
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReferenceLine {
    pub figure: String,
    pub value: f64,
    pub label: String,
}

/// A command body plus what its answer must show.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawExec {
    pub command: String,
    #[serde(default)]
    pub data: Value,
    #[serde(default)]
    pub wave: Option<WaveSpec>,
    #[serde(default)]
    pub detach: bool,
    #[serde(default)]
    pub expect: Option<RawAnswerExpect>,
    /// Dotted paths of the answer to show in the summary (`result.req_per_s`, `report.merged.latency_ms.p99`).
    #[serde(default)]
    pub record: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnswerExpect {
    /// The answer's `status` (default `ok`, or `running` for a detached command).
    pub status: Option<Status>,
    /// Comparisons on dotted paths of the answer; `report.` paths read the wave report (`wave.report: true`).
    #[serde(default)]
    pub values: std::collections::BTreeMap<String, String>,
}

/// A number from Prometheus or from the target's /metrics, compared with a bound.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawExpect {
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
/// the command exits with `status` within `timeout`; past the timeout its process group is ended (SIGTERM, then
/// SIGKILL: `process_group`). `{{public}}` and
/// `{{service}}` in the command are the target's `host:port`s, and a sweep's `{{name}}` its value: each
/// reaches the shell as a variable (`$TARSIER_PUBLIC`, `$TARSIER_SERVICE`, `$SWEEP_NAME`), never as script
/// text, so no value can run as a command. A command that prints a JSON object on
/// its last line of stdout (`{"seconds": 4.2}`) can be measured like an exec answer: `values:` compares
/// its fields and `record:` keeps them. A scenario with `run:` steps runs programs: run only scenario files
/// you trust.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(untagged)]
pub enum RawRun {
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
        /// Environment variables for the command. A sweep's values arrive here as `SWEEP_<NAME>`.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
    },
}

pub fn default_run_timeout() -> HumanDuration {
    HumanDuration::from_secs(60)
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
