use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, DataError, ExecContext, JobFuture};

#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SayHelloData {
    /// How many times to say hello (only said, never done).
    pub amount: i64,
}

pub struct SayHello;

impl Command for SayHello {
    type Data = SayHelloData;
    type Plan = SayHelloData;
    const NAME: &'static str = "say_hello";
    const DESCRIPTION: &'static str =
        "Answers `Hello <amount> times`, as the reference's example plugin did: a harmless command for trying a \
         swarm or a probe.";

    fn check(&self, data: SayHelloData, _: &ExecContext) -> Result<SayHelloData, DataError> {
        Ok(data)
    }

    fn execute(&self, data: SayHelloData, _: ExecContext) -> JobFuture {
        Box::pin(async move { Ok(json!({ "message": format!("Hello {} times", data.amount) })) })
    }
}
