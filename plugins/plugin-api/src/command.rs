use std::future::Future;
use std::pin::Pin;

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{CommandError, DataError, ExecContext};

/// The future of one accepted command: its JSON result, or how it failed.
pub type JobFuture = Pin<Box<dyn Future<Output = Result<Value, CommandError>> + Send + 'static>>;

/// One command of a plugin, with its typed data. Its data struct is the single source of truth: the agent
/// parses bodies with it and builds the `/commands` catalogue from its JSON Schema.
pub trait Command: Send + Sync + 'static {
    /// The command's data fields, with serde defaults and `deny_unknown_fields`.
    type Data: DeserializeOwned + Serialize + JsonSchema + Send + 'static;
    /// What `check` makes of the data and `execute` runs: the validated values, and the budget reserved for
    /// them (dropped, so given back, if the command never runs or ends without holding anything).
    type Plan: Send + 'static;
    const NAME: &'static str;
    const DESCRIPTION: &'static str;
    /// Other names the command answers to inside its plugin.
    const ALIASES: &'static [&'static str] = &[];
    /// True for a command that ends the agent's process (a crash, an exit). Against a local swarm that
    /// process is the scenario runner's own, so `scenario check` refuses such a step there.
    const ENDS_PROCESS: bool = false;

    /// Checks data against sanity bounds and the agent's limits, and reserves what the command will take from
    /// `ctx.budgets`, before anything is taken (a refusal is a `400`). Its plan is all `execute` gets.
    fn check(&self, data: Self::Data, ctx: &ExecContext) -> Result<Self::Plan, DataError>;

    /// Runs the plan. The future must stop within 100 ms of `ctx.cancel`, release what it took, and end
    /// `Err(CommandError::Cancelled)` (or `Ok` with what it did, when that is worth answering).
    fn execute(&self, plan: Self::Plan, ctx: ExecContext) -> JobFuture;

    /// Merges the results of many agents that ran this command in one wave into one swarm-wide result
    /// (summed counts, merged histograms); `None` when the results do not add up to anything.
    fn merge(&self, _results: &[Value]) -> Option<Value> {
        None
    }
}

/// The type-erased face of a [`Command`] that the agent keeps in its registry.
pub trait DynCommand: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn aliases(&self) -> &'static [&'static str];
    fn description(&self) -> &'static str;
    /// See [`Command::ENDS_PROCESS`].
    fn ends_process(&self) -> bool;
    /// JSON Schema of the data, derived from the data struct.
    fn data_schema(&self) -> Value;
    /// Parses `data` into the command's typed data only (field names, types, units), nothing reserved or
    /// run: what `tarsier scenario check` can tell of a body before any agent sees it.
    fn parse(&self, data: Value) -> Result<(), DataError>;
    /// Parses and checks `data` (the body's `data:` as JSON), reserves its budget, and returns the job to run.
    fn prepare(&self, data: Value, ctx: ExecContext) -> Result<JobFuture, DataError>;
    /// See [`Command::merge`].
    fn merge(&self, results: &[Value]) -> Option<Value>;
}

impl<C: Command> DynCommand for C {
    fn name(&self) -> &'static str {
        C::NAME
    }
    fn aliases(&self) -> &'static [&'static str] {
        C::ALIASES
    }
    fn description(&self) -> &'static str {
        C::DESCRIPTION
    }
    fn ends_process(&self) -> bool {
        C::ENDS_PROCESS
    }
    fn data_schema(&self) -> Value {
        schemars::schema_for!(C::Data).to_value()
    }
    fn parse(&self, data: Value) -> Result<(), DataError> {
        parse_data::<C::Data>(data).map(drop)
    }
    fn prepare(&self, data: Value, ctx: ExecContext) -> Result<JobFuture, DataError> {
        let plan = self.check(parse_data::<C::Data>(data)?, &ctx)?;
        Ok(self.execute(plan, ctx))
    }
    fn merge(&self, results: &[Value]) -> Option<Value> {
        Command::merge(self, results)
    }
}

/// Deserializes a command's data and names the offending field in the error.
fn parse_data<T: DeserializeOwned>(data: Value) -> Result<T, DataError> {
    let data = match data {
        Value::Null => Value::Object(Default::default()),
        other => other,
    };
    // Without tracking the field path first (it cost as much as the parse); only refused data is parsed
    // again, with it, to name the field.
    if let Ok(parsed) = T::deserialize(&data) {
        return Ok(parsed);
    }
    serde_path_to_error::deserialize::<_, T>(data).map_err(|err| {
        let inner = err.inner().to_string();
        DataError::field(&field_path(&err.path().to_string(), &inner), plain_words(&inner))
    })
}

/// serde's messages in the words of the wire, not of Rust: `expected u32` is `expected a whole number from 0
/// to 4294967295`.
pub fn plain_words(message: &str) -> String {
    const TYPES: [(&str, &str); 10] = [
        ("expected u8", "expected a whole number from 0 to 255"),
        ("expected u16", "expected a whole number from 0 to 65535"),
        ("expected u32", "expected a whole number from 0 to 4294967295"),
        ("expected u64", "expected a whole number from 0 up"),
        ("expected usize", "expected a whole number from 0 up"),
        ("expected i32", "expected a whole number"),
        ("expected i64", "expected a whole number"),
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected a boolean", "expected true or false"),
    ];
    let mut message = message.to_owned();
    for (rust, wire) in TYPES {
        // Whole words only: `expected u8` must not touch `expected u80`.
        if let Some(at) = message.find(rust) {
            let end = at + rust.len();
            if !message[end..].starts_with(|c: char| c.is_ascii_alphanumeric()) {
                message.replace_range(at..end, wire);
            }
        }
    }
    message
}

/// The data of a command that takes none; any field given is an error.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoData {}

/// The dotted path of the field a serde error is about, from `serde_path_to_error`'s path and the message.
/// serde reports an unknown or missing field at its parent, so its name is taken from the message.
pub fn field_path(path: &str, message: &str) -> String {
    let path = if path == "." { "" } else { path };
    let named = ["unknown field `", "missing field `"]
        .iter()
        .find_map(|prefix| message.strip_prefix(prefix))
        .and_then(|rest| rest.split('`').next());
    match named {
        // serde_path_to_error already ends the path with an unknown field's name, not a missing one's.
        Some(name) if path == name || path.ends_with(&format!(".{name}")) => path.to_owned(),
        Some(name) if path.is_empty() => name.to_owned(),
        Some(name) => format!("{path}.{name}"),
        None => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::field_path;

    #[test]
    fn rust_types_become_wire_words() {
        assert_eq!(
            super::plain_words("invalid value: integer `-1`, expected u32"),
            "invalid value: integer `-1`, expected a whole number from 0 to 4294967295"
        );
        assert_eq!(
            super::plain_words("invalid type: string \"x\", expected f64"),
            "invalid type: string \"x\", expected a number"
        );
    }

    #[test]
    fn field_paths() {
        assert_eq!(field_path(".", "missing field `command`"), "command");
        assert_eq!(field_path("wave", "missing field `x`"), "wave.x");
        assert_eq!(field_path("data.durration", "unknown field `durration`, expected `duration`"), "data.durration");
        assert_eq!(field_path("durration", "unknown field `durration`"), "durration");
        assert_eq!(field_path("wave.remain", "invalid type"), "wave.remain");
    }
}
