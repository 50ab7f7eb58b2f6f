use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{Command, DataError, ExecContext, HumanDuration, JobFuture};

use crate::wire_faults::delay::{self, Engine, JitterDistribution, Shape};
use crate::wire_faults::traffic::{Direction, Traffic};
use crate::wire_faults::{hold, Install, Installed, Request, WireFaults};

/// The longest delay a packet may be held (the kernel keeps it queued meanwhile).
const MAX_DELAY: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct DelayData {
    /// Added to every matched packet.
    pub delay: HumanDuration,
    /// Spread around `delay` (packets may then overtake each other, as with netem).
    pub jitter: HumanDuration,
    /// How `jitter` spreads: `uniform` (delay +- jitter) or `normal` (jitter is the standard deviation).
    pub distribution: JitterDistribution,
    /// How long the fault stays in force; it ends by itself.
    pub duration: HumanDuration,
    /// Which packets: `interfaces`, `remote`, `remote_ports`, `local_ports`, `protocol`, `direction` (egress by default).
    pub traffic: Traffic,
    /// Let the fault hit the swarm's own ports too (capped at 60 s).
    pub cut_control_plane: bool,
}

impl Default for DelayData {
    fn default() -> Self {
        Self {
            delay: HumanDuration(std::time::Duration::from_millis(100)),
            jitter: HumanDuration::default(),
            distribution: JitterDistribution::Uniform,
            duration: HumanDuration::from_secs(30),
            traffic: Traffic::default(),
            cut_control_plane: false,
        }
    }
}

pub struct Delay(pub Arc<WireFaults>);

impl Command for Delay {
    type Data = DelayData;
    type Plan = (Request, Shape);
    const NAME: &'static str = "delay";
    const DESCRIPTION: &'static str = "Delays matched packets by `delay` (+- `jitter`) for `duration`, egress by \
        default, in this agent's network namespace (needs NET_ADMIN; the control plane is exempt).";

    fn check(&self, data: DelayData, ctx: &ExecContext) -> Result<Self::Plan, DataError> {
        if data.delay.0.is_zero() || data.delay.0 > MAX_DELAY {
            return Err(DataError::field("delay", "must be above 0 and at most 10s"));
        }
        if data.jitter.0 > data.delay.0 && data.distribution == JitterDistribution::Uniform {
            return Err(DataError::field("jitter", "a uniform jitter must not exceed the delay"));
        }
        let request = Request::checked(
            "net/delay",
            (data.duration, data.cut_control_plane),
            data.traffic,
            Direction::Egress,
            ctx,
        )?;
        Ok((request, Shape { delay: data.delay.0, jitter: data.jitter.0, distribution: data.distribution }))
    }

    fn execute(&self, (request, shape): Self::Plan, ctx: ExecContext) -> JobFuture {
        let install: Install = Box::new(move |selection, port, id| {
            // One delay engine per agent: its queue is named after the agent's port, and a second bind is
            // refused (EBUSY, a 409).
            let queue = delay::queue_number(port);
            let engine = Engine::start(queue, shape)?;
            let chain = delay::chain_name(port, id);
            let families = delay::install_rules(&chain, selection, queue)?;
            let details = json!({
                "delay_ms": shape.delay.as_secs_f64() * 1e3,
                "jitter_ms": shape.jitter.as_secs_f64() * 1e3,
                "distribution": shape.distribution,
                "queue": queue,
                "engine_wakes": if engine.wakes_on_socket { "on the queue's socket" } else { "every 100 us (polling)" },
                "iptables_chain": chain,
                "interfaces": selection.hit_interfaces(),
            });
            Ok((Installed::Delay { chain, selection: selection.clone(), families, engine }, details))
        });
        Box::pin(hold(self.0.clone(), request, ctx, install))
    }
}
