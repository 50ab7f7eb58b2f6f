//! Sweeps: the rounds of a sweep's parameters, their values put in place in the steps of each round, and
//! `--sweep NAME=V1,V2` overrides. Works on the file's form (`model`): a round's steps are typed only once
//! their values are in place.

use serde_json::Value;

use super::model::RawStep;

/// The most rounds one sweep may run (the product of its parameters' values).
pub const MAX_SWEEP_ROUNDS: usize = 1_000;

/// One round of a sweep: each parameter's value.
pub type Round = Vec<(String, Value)>;

/// Every combination of the parameters' values, the first parameter written varying slowest.
pub fn sweep_rounds(params: &indexmap::IndexMap<String, Vec<Value>>) -> Result<Vec<Round>, String> {
    if params.is_empty() {
        return Err("give at least one parameter and its values, such as `{replicas: [1, 2, 4]}`".into());
    }
    let mut rounds: Vec<Round> = vec![Vec::new()];
    for (name, values) in params {
        if !is_param_name(name) {
            return Err(format!("`{name}`: a parameter's name is letters, digits and `_`"));
        }
        if values.is_empty() {
            return Err(format!("{name}: give at least one value"));
        }
        if let Some(bad) = values.iter().find(|v| !is_scalar(v)) {
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

/// Whether `name` can name a parameter (a sweep's or the scenario's `params:`): letters, digits and `_`, as
/// `{{name}}` and its `SWEEP_NAME` variable need.
pub fn is_param_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `value` can be a parameter's value: one number, string or boolean.
pub fn is_scalar(value: &Value) -> bool {
    value.is_number() || value.is_string() || value.is_boolean()
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
pub fn substitute_steps(steps: &[RawStep], round: &Round) -> Result<Vec<RawStep>, String> {
    let mut value = serde_json::to_value(steps).map_err(|e| e.to_string())?;
    fill(&mut value, round)?;
    let mut filled: Vec<RawStep> = serde_json::from_value(value).map_err(|e| e.to_string())?;
    keep_written_order(steps, &mut filled);
    Ok(filled)
}

/// Gives the maps whose order means something (a sweep's parameters: the first that varies is the chart's x
/// axis; a chart's names: its columns) the order of the file again: the trip through `serde_json::Value`
/// sorts them by name. Filling changes values, never keys or the steps' shape.
fn keep_written_order(written: &[RawStep], filled: &mut [RawStep]) {
    for (written, filled) in written.iter().zip(filled.iter_mut()) {
        if let (Some(order), Some(params)) = (&written.sweep, filled.sweep.as_mut()) {
            params.sort_by_cached_key(|name, _| order.get_index_of(name));
        }
        if let (Some(order), Some(chart)) = (&written.chart, filled.chart.as_mut()) {
            chart.names.sort_by_cached_key(|name, _| order.names.get_index_of(name));
        }
        for (written, filled) in [(&written.steps, &mut filled.steps), (&written.parallel, &mut filled.parallel)] {
            if let (Some(written), Some(filled)) = (written, filled.as_mut()) {
                keep_written_order(written, filled);
            }
        }
    }
}

/// Fills every string but a `run:` command's, whose placeholders become variable references
/// ([`super::shell`]) with the values in the step's `env`: a value never becomes script text. An exec's
/// `data` is the command's own and is filled as written, whatever keys it has.
fn fill(value: &mut Value, round: &Round) -> Result<(), String> {
    match value {
        Value::Object(map) if map.contains_key("run") => {
            if let Some(run) = map.get_mut("run") {
                fill_run(run, round)?;
            }
            for (_, item) in map.iter_mut().filter(|(key, _)| *key != "run") {
                fill(item, round)?;
            }
            Ok(())
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                if key == "data" {
                    fill_data(item, round);
                } else {
                    fill(item, round)?;
                }
            }
            Ok(())
        }
        Value::Array(items) => items.iter_mut().try_for_each(|item| fill(item, round)),
        other => {
            fill_data(other, round);
            Ok(())
        }
    }
}

/// A `run:` step's command with the round's placeholders as variable references, its `env` with their values.
fn fill_run(run: &mut Value, round: &Round) -> Result<(), String> {
    if let Value::String(line) = run {
        *run = serde_json::json!({ "command": line.clone() });
    }
    let Value::Object(fields) = run else { return Ok(()) };
    let command = fields.get("command").and_then(Value::as_str).unwrap_or_default();
    let used: Vec<&(String, Value)> =
        round.iter().filter(|(name, _)| command.contains(&format!("{{{{{name}}}}}"))).collect();
    let command = super::shell::placeholders_to_variables(command, |name| {
        round.iter().any(|(known, _)| known == name).then(|| super::shell::sweep_variable(name))
    })?;
    fields.insert("command".into(), Value::String(command));
    let env = fields.entry("env").or_insert_with(|| Value::Object(Default::default()));
    if let Value::Object(env) = env {
        for (name, value) in used {
            env.insert(super::shell::sweep_variable(name), Value::String(plain(value)));
        }
    }
    for (_, item) in fields.iter_mut().filter(|(key, _)| *key != "command" && *key != "env") {
        fill_data(item, round);
    }
    Ok(())
}

/// Every string replaced as written: a string that is only a placeholder becomes the value itself.
fn fill_data(value: &mut Value, round: &Round) {
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
        Value::Array(items) => items.iter_mut().for_each(|item| fill_data(item, round)),
        Value::Object(map) => map.values_mut().for_each(|item| fill_data(item, round)),
        _ => {}
    }
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

/// `--rounds N`: every sweep (at any depth) runs each round `rounds` times.
pub fn set_rounds(steps: &mut [RawStep], rounds: u32) {
    for step in steps {
        if step.sweep.is_some() {
            step.rounds = Some(rounds);
        }
        for inner in [step.steps.as_mut(), step.parallel.as_mut()].into_iter().flatten() {
            set_rounds(inner, rounds);
        }
    }
}

/// A value of `change`'s parameter that the comparison `text` selects (`at NAME=VALUE`) and the override no
/// longer runs.
fn removed_value(text: &str, change: &SweepOverride) -> Option<String> {
    let key = format!("{}=", change.name);
    let kept: Vec<String> = change.values.iter().map(plain).collect();
    text.match_indices(&key)
        .filter(|(at, _)| *at == 0 || !text[..*at].ends_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
        .map(|(at, _)| {
            text[at + key.len()..].chars().take_while(|c| !c.is_whitespace() && *c != ',').collect::<String>()
        })
        .find(|value| !kept.contains(value))
}

/// Puts the override's values into every sweep (at any depth) that has its parameter; how many did.
pub fn override_sweeps(steps: &mut [RawStep], change: &SweepOverride) -> usize {
    let mut changed = 0;
    for step in steps {
        if let Some(values) = step.sweep.as_mut().and_then(|params| params.get_mut(&change.name)) {
            *values = change.values.clone();
            changed += 1;
            // A comparison naming a value no longer run cannot be checked: it is set aside with a note.
            if let Some(compare) = step.compare.as_mut() {
                let kept: Vec<String> =
                    compare.iter().filter(|text| removed_value(text, change).is_none()).cloned().collect();
                for text in compare.iter() {
                    if let Some(value) = removed_value(text, change) {
                        step.compare_skipped.push(format!("`{text}` ({}={value} is not run: --sweep)", change.name));
                    }
                }
                *compare = kept;
            }
        }
        for inner in [step.steps.as_mut(), step.parallel.as_mut()].into_iter().flatten() {
            changed += override_sweeps(inner, change);
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_run_the_product_of_their_parameters_with_values_in_place() {
        let params: indexmap::IndexMap<String, Vec<Value>> =
            serde_json::from_str(r#"{"b": [1, 2], "a": ["x", "y"]}"#).unwrap();
        let rounds = sweep_rounds(&params).unwrap();
        let labels: Vec<String> = rounds.iter().map(round_label).collect();
        assert_eq!(labels, ["b=1 a=x", "b=1 a=y", "b=2 a=x", "b=2 a=y"], "in the order written");
        let steps: Vec<RawStep> = serde_norway::from_str(
            "- run: 'scale to {{b}} in {{a}}'\n- exec: {command: sleep/sleep, data: {n: '{{b}}', s: 'b{{b}}'}}\n",
        )
        .unwrap();
        let filled = substitute_steps(&steps, &rounds[2]).unwrap();
        let Some(super::super::model::RawRun::Full { command, env, .. }) = &filled[0].run else { panic!() };
        assert_eq!(command, "scale to \"${SWEEP_B}\" in \"${SWEEP_A}\"", "values reach run: as variables");
        assert_eq!(env["SWEEP_B"], "2");
        assert_eq!(env["SWEEP_A"], "x");
        let data = &filled[1].exec.as_ref().unwrap().data;
        assert_eq!(data["n"], 2, "a lone placeholder keeps the value's type");
        assert_eq!(data["s"], "b2");
        let too_many: indexmap::IndexMap<String, Vec<Value>> =
            [("a".to_owned(), vec![Value::from(1); 100]), ("b".to_owned(), vec![Value::from(1); 11])].into();
        assert!(sweep_rounds(&too_many).unwrap_err().contains("more than 1000 rounds"));
        assert!(sweep_rounds(&indexmap::IndexMap::new()).is_err());
    }

    #[test]
    fn sweep_overrides_replace_values_at_any_depth() {
        let change = SweepOverride::parse("n=1, 4,fast").unwrap();
        assert_eq!(change.values, [Value::from(1), Value::from(4), Value::from("fast")]);
        assert!(SweepOverride::parse("n").is_err() && SweepOverride::parse("n=").is_err());
        let mut steps: Vec<RawStep> = serde_norway::from_str(
            "- steps:\n  - sweep: {n: [1, 2, 3]}\n    steps: [{run: 'echo {{n}}'}]\n- sweep: {m: [1]}\n  steps: [{wait: 1s}]\n",
        )
        .unwrap();
        assert_eq!(override_sweeps(&mut steps, &change), 1);
        assert_eq!(steps[0].steps.as_ref().unwrap()[0].sweep.as_ref().unwrap()["n"].len(), 3);
        assert_eq!(override_sweeps(&mut steps, &SweepOverride::parse("x=1").unwrap()), 0);
        // A comparison naming a value the override removed is set aside with a note; the others stay.
        let mut steps: Vec<RawStep> = serde_norway::from_str(
            "- sweep: {n: [1, 2, 8]}\n  compare: ['r at n=8 >= 2x at n=1', 'r at n=2 > 1']\n  steps: [{wait: 1ms}]\n",
        )
        .unwrap();
        override_sweeps(&mut steps, &SweepOverride::parse("n=1,2").unwrap());
        assert_eq!(steps[0].compare.as_deref(), Some(&["r at n=2 > 1".to_owned()][..]));
        assert_eq!(steps[0].compare_skipped, ["`r at n=8 >= 2x at n=1` (n=8 is not run: --sweep)"]);
    }
}
