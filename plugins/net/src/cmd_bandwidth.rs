use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, DataError, ExecContext, HumanDuration, JobFuture};

use crate::wire_faults::tc::{self, Rate};
use crate::wire_faults::traffic::{Direction, Traffic};
use crate::wire_faults::{hold, Install, Installed, Request, WireFaults};

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BandwidthData {
    /// The rate matched traffic is held to, in bits per second: `500kbit`, `10mbit`, `1gbit`.
    pub rate: Rate,
    /// How long the fault stays in force; it ends by itself.
    #[serde(default = "thirty_seconds")]
    pub duration: HumanDuration,
    /// Egress by default; `ingress` and `both` shape arriving traffic through an ifb device.
    #[serde(default)]
    pub traffic: Traffic,
    /// Let the fault hit the swarm's own ports too (capped at 60 s).
    #[serde(default)]
    pub cut_control_plane: bool,
}

fn thirty_seconds() -> HumanDuration {
    HumanDuration::from_secs(30)
}

pub struct Bandwidth(pub Arc<WireFaults>);

impl Command for Bandwidth {
    type Data = BandwidthData;
    type Plan = (Request, Rate);
    const NAME: &'static str = "bandwidth";
    const DESCRIPTION: &'static str = "Holds matched traffic to `rate` for `duration`, egress and/or ingress, in \
        this agent's network namespace (tc htb, ifb for ingress; needs NET_ADMIN; the control plane is exempt).";

    fn check(&self, data: BandwidthData, ctx: &ExecContext) -> Result<Self::Plan, DataError> {
        let request = Request::checked(
            "net/bandwidth",
            (data.duration, data.cut_control_plane),
            data.traffic,
            Direction::Egress,
            ctx,
        )?;
        Ok((request, data.rate))
    }

    fn execute(&self, (request, rate): Self::Plan, ctx: ExecContext) -> JobFuture {
        let install: Install = Box::new(move |selection, port, _id| {
            let interfaces = selection.hit_interfaces();
            let shaped = tc::install(port, &interfaces, selection, rate)?;
            let details = json!({
                "rate": rate,
                "rate_bits_per_second": rate.0,
                "interfaces": interfaces,
                "qdisc_handle": format!("{:x}:", tc::handle(port)),
                "ifb": selection.direction.ingress().then(|| tc::ifb_name(port)),
            });
            Ok((Installed::Shaped(shaped), details))
        });
        Box::pin(hold(self.0.clone(), request, ctx, install))
    }
}
