//! A scenario's parameters: `params: {image: tarsier:latest, path: /health}` at the top of the file, each a
//! default that `scenario run --param image=nginx:latest` may replace. `{{image}}` in any step or teardown
//! takes the value before the file is checked, exactly as a sweep's values are put in place (in a `run:`
//! command a value becomes an environment variable, never script text: [`super::shell`]). What lets an
//! experiment run against the user's own service instead of tarsier's backend.

use indexmap::IndexMap;
use serde_json::Value;

use super::model::{RawScenario, RawStep};
use super::sweep::{is_param_name, is_scalar, plain, substitute_steps, Round};

/// The most parameters a scenario may declare.
pub const MAX_PARAMS: usize = 64;

/// Names the runner fills itself: a parameter may not take them.
const RESERVED: [&str; 3] = ["public", "service", "token"];

/// `--param NAME=VALUE`: another value for one of the scenario's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamOverride {
    pub name: String,
    pub value: Value,
}

impl ParamOverride {
    /// `NAME=VALUE`; the value is read as YAML, so `8080` is a number and `busybox:latest` a string. Everything
    /// after the first `=` is the value (`--param body=a=b`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (name, raw) = text.split_once('=').ok_or_else(|| format!("--param {text}: write NAME=VALUE"))?;
        let value = if raw.trim().is_empty() {
            Value::String(String::new())
        } else {
            // A value YAML reads as a list or a map is taken as the text written: a parameter is one scalar.
            match serde_norway::from_str::<Value>(raw) {
                Ok(value) if is_scalar(&value) => value,
                _ => Value::String(raw.to_owned()),
            }
        };
        Ok(ParamOverride { name: name.trim().to_owned(), value })
    }
}

/// The parameters with the overrides in place, put into every step and teardown step; what was changed from
/// the file's defaults, as `name=value`, for the report and the charts' source line.
pub fn apply(raw: &mut RawScenario, overrides: &[ParamOverride]) -> Result<Vec<String>, String> {
    if raw.params.len() > MAX_PARAMS {
        return Err(format!("params: at most {MAX_PARAMS} parameters"));
    }
    for (name, value) in &raw.params {
        check_name(name).map_err(|e| format!("params.{name}: {e}"))?;
        if !is_scalar(value) {
            return Err(format!("params.{name}: {value} is not a number, string or boolean"));
        }
        if let Some(clash) = first_sweep_with(&raw.steps, name) {
            return Err(format!("params.{name}: the sweep `{clash}` has a parameter of the same name; rename one"));
        }
    }
    let mut changed = Vec::new();
    for change in overrides {
        let Some(slot) = raw.params.get_mut(&change.name) else {
            let known: Vec<&str> = raw.params.keys().map(String::as_str).collect();
            return Err(if known.is_empty() {
                format!("--param {}: this scenario has no `params:`", change.name)
            } else {
                format!("--param {}: no such parameter (this scenario's: {})", change.name, known.join(", "))
            });
        };
        *slot = change.value.clone();
        changed.push(format!("{}={}", change.name, plain(&change.value)));
    }
    if raw.params.is_empty() {
        return Ok(changed);
    }
    let values: Round = raw.params.iter().map(|(name, value)| (name.clone(), value.clone())).collect();
    raw.steps = substitute_steps(&raw.steps, &values).map_err(|e| format!("steps: {e}"))?;
    raw.teardown = substitute_steps(&raw.teardown, &values).map_err(|e| format!("teardown: {e}"))?;
    Ok(changed)
}

fn check_name(name: &str) -> Result<(), String> {
    if !is_param_name(name) {
        return Err("a parameter's name is letters, digits and `_`".into());
    }
    if RESERVED.contains(&name) {
        return Err(format!("`{{{{{name}}}}}` is filled by the runner; choose another name"));
    }
    Ok(())
}

/// The name of the first sweep (at any depth) with a parameter called `name`.
fn first_sweep_with(steps: &[RawStep], name: &str) -> Option<String> {
    steps.iter().find_map(|step| {
        if step.sweep.as_ref().is_some_and(|params: &IndexMap<String, Vec<Value>>| params.contains_key(name)) {
            return Some(step.name.clone().unwrap_or_else(|| "sweep".into()));
        }
        [step.steps.as_deref(), step.parallel.as_deref()]
            .into_iter()
            .flatten()
            .find_map(|inner| first_sweep_with(inner, name))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(text: &str) -> RawScenario {
        serde_norway::from_str(text).expect("a scenario")
    }

    #[test]
    fn defaults_fill_every_step_and_the_teardown() {
        let mut raw = scenario(
            "name: x\ntarget: {local: 1}\nparams: {port: 8080, path: /health}\nsteps:\n  - run: 'curl 127.0.0.1:{{port}}{{path}}'\n  - exec: {command: net/http_load, data: {url: 'http://127.0.0.1:{{port}}{{path}}', concurrency: '{{port}}'}}\nteardown:\n  - name: 'down {{path}}'\n    wait: 1ms\n",
        );
        assert_eq!(apply(&mut raw, &[]).unwrap(), Vec::<String>::new());
        let run = serde_json::to_value(&raw.steps[0].run).unwrap();
        assert_eq!(
            run["command"], "curl 127.0.0.1:\"${SWEEP_PORT}\"\"${SWEEP_PATH}\"",
            "values never become script text"
        );
        assert_eq!(run["env"]["SWEEP_PORT"], "8080");
        let exec = raw.steps[1].exec.as_ref().unwrap();
        assert_eq!(exec.data["url"], "http://127.0.0.1:8080/health");
        assert_eq!(exec.data["concurrency"], 8080, "a placeholder alone keeps the value's type");
        assert_eq!(raw.teardown[0].name.as_deref(), Some("down /health"));
    }

    #[test]
    fn an_override_replaces_the_default_and_is_reported() {
        let mut raw = scenario("name: x\ntarget: {local: 1}\nparams: {image: 'tarsier:latest'}\nsteps:\n  - {name: '{{image}}', wait: 1ms}\n");
        let changed = apply(&mut raw, &[ParamOverride::parse("image=busybox:latest").unwrap()]).unwrap();
        assert_eq!(changed, ["image=busybox:latest"]);
        assert_eq!(raw.steps[0].name.as_deref(), Some("busybox:latest"));
    }

    #[test]
    fn bad_parameters_are_refused_by_name() {
        let text = "name: x\ntarget: {local: 1}\nparams: {image: a}\nsteps: [{wait: 1ms}]\n";
        let err = apply(&mut scenario(text), &[ParamOverride::parse("imgae=b").unwrap()]).unwrap_err();
        assert!(err.contains("--param imgae: no such parameter (this scenario's: image)"), "{err}");
        let err = apply(
            &mut scenario("name: x\ntarget: {local: 1}\nsteps: [{wait: 1ms}]\n"),
            &[ParamOverride::parse("a=1").unwrap()],
        )
        .unwrap_err();
        assert!(err.contains("has no `params:`"), "{err}");
        let err = apply(&mut scenario("name: x\ntarget: {local: 1}\nparams: {token: a}\nsteps: [{wait: 1ms}]\n"), &[])
            .unwrap_err();
        assert!(err.starts_with("params.token:"), "{err}");
        let err = apply(&mut scenario("name: x\ntarget: {local: 1}\nparams: {n: [1]}\nsteps: [{wait: 1ms}]\n"), &[])
            .unwrap_err();
        assert!(err.contains("not a number, string or boolean"), "{err}");
        let clash = "name: x\ntarget: {local: 1}\nparams: {n: 1}\nsteps:\n  - {name: s, sweep: {n: [1, 2]}, steps: [{wait: 1ms}]}\n";
        let err = apply(&mut scenario(clash), &[]).unwrap_err();
        assert!(err.contains("the sweep `s` has a parameter of the same name"), "{err}");
        assert!(ParamOverride::parse("novalue").is_err());
    }

    #[test]
    fn sweeps_and_chart_names_keep_the_order_written() {
        let text = "name: x\ntarget: {local: 1}\nparams: {n: 1}\nsteps:\n  - sweep: {rate: [1, 2], concurrency: [2]}\n    chart: {names: {z: last, a: first}}\n    steps:\n      - sweep: {b: [1], a: ['{{n}}']}\n        steps: [{wait: 1ms}]\n";
        let mut raw = scenario(text);
        apply(&mut raw, &[]).unwrap();
        let outer = &raw.steps[0];
        assert_eq!(outer.sweep.as_ref().unwrap().keys().collect::<Vec<_>>(), ["rate", "concurrency"]);
        assert_eq!(outer.chart.as_ref().unwrap().names.keys().collect::<Vec<_>>(), ["z", "a"]);
        let inner = &outer.steps.as_ref().unwrap()[0];
        assert_eq!(inner.sweep.as_ref().unwrap().keys().collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(inner.sweep.as_ref().unwrap()["a"], [serde_json::json!(1)], "filled where it stands");
    }

    #[test]
    fn values_are_scalars_as_written() {
        assert_eq!(ParamOverride::parse("port=8080").unwrap().value, serde_json::json!(8080));
        assert_eq!(ParamOverride::parse("body=a=b").unwrap().value, serde_json::json!("a=b"));
        assert_eq!(ParamOverride::parse("health=none").unwrap().value, serde_json::json!("none"));
        assert_eq!(ParamOverride::parse("list=[1, 2]").unwrap().value, serde_json::json!("[1, 2]"));
        assert_eq!(ParamOverride::parse("empty=").unwrap().value, serde_json::json!(""));
    }
}
