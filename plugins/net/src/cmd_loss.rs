use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, DataError, ExecContext, HumanDuration, JobFuture};

use crate::wire_faults::nft::Verdict;
use crate::wire_faults::traffic::{Direction, Traffic};
use crate::wire_faults::{hold, install_table, Install, Request, WireFaults};

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct LossData {
    /// The share of matched packets dropped, in percent (0.0001 to 100).
    pub percent: f64,
    /// netem's loss correlation. nftables draws each packet on its own, so only 0 (the default) is taken;
    /// anything else is refused (400) with the reason.
    pub correlation: f64,
    /// How long the fault stays in force; it ends by itself.
    pub duration: HumanDuration,
    /// Which packets: `interfaces`, `remote`, `remote_ports`, `local_ports`, `protocol`, `direction` (egress by default).
    pub traffic: Traffic,
    /// Let the fault hit the swarm's own ports too (capped at 60 s).
    pub cut_control_plane: bool,
}

impl Default for LossData {
    fn default() -> Self {
        Self {
            percent: 10.0,
            correlation: 0.0,
            duration: HumanDuration::from_secs(30),
            traffic: Traffic::default(),
            cut_control_plane: false,
        }
    }
}

pub struct Loss(pub Arc<WireFaults>);

impl Command for Loss {
    type Data = LossData;
    type Plan = (Request, u32);
    const NAME: &'static str = "loss";
    const DESCRIPTION: &'static str = "Drops `percent` of matched packets for `duration`, egress by default, in this \
        agent's network namespace (nftables; needs NET_ADMIN; the control plane is exempt).";

    fn check(&self, data: LossData, ctx: &ExecContext) -> Result<Self::Plan, DataError> {
        if !(data.percent > 0.0 && data.percent <= 100.0) {
            return Err(DataError::field("percent", "must be above 0 and at most 100"));
        }
        if data.correlation != 0.0 {
            return Err(DataError::field(
                "correlation",
                "loss correlation needs sch_netem, which this engine (nftables, each packet drawn on its own) does \
                 not use; leave it at 0",
            ));
        }
        let per_million = ((data.percent * 10_000.0).round() as u32).max(1);
        let request = Request::checked(
            "net/loss",
            (data.duration, data.cut_control_plane),
            data.traffic,
            Direction::Egress,
            ctx,
        )?;
        Ok((request, per_million))
    }

    fn execute(&self, (request, per_million): Self::Plan, ctx: ExecContext) -> JobFuture {
        let install: Install = Box::new(move |selection, port, id| {
            let (installed, mut details) = install_table(selection, port, id, Verdict::DropRandom { per_million })?;
            details["percent"] = json!(per_million as f64 / 10_000.0);
            Ok((installed, details))
        });
        Box::pin(hold(self.0.clone(), request, ctx, install))
    }
}
