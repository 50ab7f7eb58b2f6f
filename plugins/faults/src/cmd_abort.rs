use tarsier_plugin::{Command, DataError, ExecContext, JobFuture};

use crate::death::{check_delay, schedule, DeathData};

pub struct Abort;

impl Command for Abort {
    type Data = DeathData;
    type Plan = DeathData;
    const NAME: &'static str = "abort";
    const ENDS_PROCESS: bool = true;
    const DESCRIPTION: &'static str = "Dies of SIGABRT (std::process::abort), as a failed assertion in C would.";

    fn check(&self, data: DeathData, ctx: &ExecContext) -> Result<DeathData, DataError> {
        check_delay(data.delay, &ctx.limits)?;
        Ok(data)
    }

    fn execute(&self, data: DeathData, _: ExecContext) -> JobFuture {
        Box::pin(async move { Ok(schedule(data.delay, "SIGABRT", || std::process::abort())) })
    }
}
