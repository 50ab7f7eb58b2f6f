use tarsier_plugin::{Command, DataError, ExecContext, JobFuture};

use crate::death::{check_delay, schedule, DeathData};

/// Rust's exit status for a process that dies of a panic.
const PANIC_EXIT_CODE: i32 = 101;

pub struct Panic;

impl Command for Panic {
    type Data = DeathData;
    type Plan = DeathData;
    const NAME: &'static str = "panic";
    const ENDS_PROCESS: bool = true;
    const DESCRIPTION: &'static str = "Dies of a Rust panic: the message on stderr, exit status 101.";

    fn check(&self, data: DeathData, ctx: &ExecContext) -> Result<DeathData, DataError> {
        check_delay(data.delay, &ctx.limits)?;
        Ok(data)
    }

    fn execute(&self, data: DeathData, _: ExecContext) -> JobFuture {
        Box::pin(async move {
            Ok(schedule(data.delay, "panic", || {
                // A panic only ends its own thread; the process ends the way a panicking main thread would.
                let panicked = std::thread::spawn(|| panic!("tarsier faults/panic: panicking on purpose"));
                let _ = panicked.join();
                std::process::exit(PANIC_EXIT_CODE);
            }))
        })
    }
}
