use std::sync::Arc;

use tarsier_plugin::{Command, DataError, ExecContext, JobFuture, NoData};

use crate::wire_faults::WireFaults;

pub struct Faults(pub Arc<WireFaults>);

impl Command for Faults {
    type Data = NoData;
    type Plan = ();
    const NAME: &'static str = "faults";
    const DESCRIPTION: &'static str = "Lists the network faults in force on this agent, with time left and what each \
        has done so far.";

    fn check(&self, _: NoData, _: &ExecContext) -> Result<(), DataError> {
        Ok(())
    }

    fn execute(&self, (): (), _: ExecContext) -> JobFuture {
        let faults = self.0.clone();
        Box::pin(async move { Ok(tokio::task::spawn_blocking(move || faults.list()).await.unwrap_or_default()) })
    }
}
