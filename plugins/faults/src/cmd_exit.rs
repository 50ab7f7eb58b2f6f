use std::time::Duration;

use serde::{Deserialize, Serialize};
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, DataError, ExecContext, HumanDuration, JobFuture};

use crate::death::{check_delay, schedule};

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ExitData {
    /// Exit status, 0 to 255.
    pub code: i32,
    /// How long after answering the process exits.
    pub delay: HumanDuration,
}

impl Default for ExitData {
    fn default() -> Self {
        Self { code: 1, delay: HumanDuration(Duration::from_millis(200)) }
    }
}

pub struct Exit;

impl Command for Exit {
    type Data = ExitData;
    type Plan = ExitData;
    const NAME: &'static str = "exit";
    const ENDS_PROCESS: bool = true;
    const DESCRIPTION: &'static str = "Exits at once with status `code`, without any clean-up (like os.Exit).";

    fn check(&self, data: ExitData, ctx: &ExecContext) -> Result<ExitData, DataError> {
        if !(0..=255).contains(&data.code) {
            return Err(DataError::field("code", format!("{} must be an exit status from 0 to 255", data.code)));
        }
        check_delay(data.delay, &ctx.limits)?;
        Ok(data)
    }

    fn execute(&self, data: ExitData, _: ExecContext) -> JobFuture {
        let code = data.code;
        Box::pin(async move { Ok(schedule(data.delay, "exit", move || std::process::exit(code))) })
    }
}
