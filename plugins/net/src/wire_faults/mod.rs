//! Faults on the wire: delay, loss, bandwidth, partitions and DNS failures in the network namespace the agent
//! shares with the service next to it (a pod, a container joined with `--network container:`), with nothing
//! but the NET_ADMIN capability.
//!
//! Each fault is a job that installs its rules, holds them for its `duration` (or until `/abort`,
//! `DELETE /jobs/{id}` or shutdown) and removes them; `WireFaults` keeps what is in force for `net/faults` and
//! for the agent's release of everything. Engines: `nft` (partition, loss, DNS redirect), `delay` (NFQUEUE
//! in userspace), `tc` (bandwidth), `dns` (the responder). `reaper` undoes what a dead agent left.

pub mod delay;
pub mod dns;
pub mod nft;
pub mod reaper;
pub mod tc;
pub mod tools;
pub mod traffic;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{json, Value};
use tarsier_plugin::{CommandError, ExecContext, HumanDuration};

use traffic::{Direction, Selection, Traffic, CUT_CONTROL_PLANE_MAX};

/// How a fault is in force: what to undo, exactly.
pub enum Installed {
    /// An nftables table of its own (partition, loss).
    Table {
        family: nft::Family,
        table: String,
    },
    /// iptables chains feeding the delay engine's queue, and the engine.
    Delay {
        chain: String,
        selection: Selection,
        families: Vec<&'static str>,
        engine: delay::Engine,
    },
    Shaped(tc::Shaped),
    /// The DNS redirect's table and the responder it sends to.
    Dns {
        table: String,
        responder: dns::Responder,
    },
}

impl Installed {
    fn engine(&self) -> &'static str {
        match self {
            Installed::Table { .. } => "nftables",
            Installed::Delay { .. } => "nfqueue",
            Installed::Shaped(_) => "tc-htb",
            Installed::Dns { .. } => "nftables+responder",
        }
    }

    /// What the fault has done so far (packets dropped, delayed, queries answered).
    fn counters(&self) -> Value {
        match self {
            Installed::Table { family, table } => json!({ "packets_matched": nft::counted_packets(*family, table) }),
            Installed::Delay { engine, .. } => {
                json!({ "packets_delayed": engine.counters.delayed.load(std::sync::atomic::Ordering::Relaxed) })
            }
            Installed::Shaped(_) => json!({}),
            Installed::Dns { responder, .. } => json!({
                "queries_faulted": responder.counters.faulted.load(std::sync::atomic::Ordering::Relaxed),
                "queries_forwarded": responder.counters.forwarded.load(std::sync::atomic::Ordering::Relaxed),
            }),
        }
    }

    /// Removes the rules first, then stops what served them (held packets are let go, the responder stops).
    fn undo(self) {
        match self {
            Installed::Table { family, table } => {
                if let Err(err) = nft::remove(family, &table) {
                    tracing::error!(%err, table, "removing a network fault's table failed");
                }
            }
            Installed::Delay { chain, selection, families, mut engine } => {
                delay::remove_rules(&chain, &selection, &families);
                engine.stop();
            }
            Installed::Shaped(shaped) => tc::remove(&shaped),
            Installed::Dns { table, responder } => {
                if let Err(err) = nft::remove(nft::Family::Inet, &table) {
                    tracing::error!(%err, table, "removing the DNS redirect failed");
                }
                responder.stop();
            }
        }
    }
}

/// One fault in force: taken (and undone) once, by whoever comes first: its job, `/abort`, shutdown.
struct Slot {
    installed: Mutex<Option<Installed>>,
}

impl Slot {
    fn undo(&self) -> bool {
        let taken = self.installed.lock().unwrap_or_else(|p| p.into_inner()).take();
        taken.map(Installed::undo).is_some()
    }
}

struct InForce {
    command: &'static str,
    summary: Value,
    ends: Instant,
    slot: Arc<Slot>,
}

#[derive(Default)]
struct Inner {
    next_id: u64,
    in_force: BTreeMap<u64, InForce>,
    reaper: Option<reaper::Reaper>,
}

/// The network faults of one agent.
#[derive(Default)]
pub struct WireFaults {
    inner: Mutex<Inner>,
}

impl WireFaults {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn count(&self) -> u64 {
        self.lock().in_force.len() as u64
    }

    /// What is in force, with time left and what each has done so far.
    pub fn list(&self) -> Value {
        let now = Instant::now();
        let faults: Vec<Value> = self
            .lock()
            .in_force
            .iter()
            .map(|(id, fault)| {
                let counters =
                    fault.slot.installed.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(Installed::counters);
                json!({
                    "id": id,
                    "command": fault.command,
                    "time_left_ms": fault.ends.saturating_duration_since(now).as_millis() as u64,
                    "installed": fault.summary,
                    "so_far": counters,
                })
            })
            .collect();
        json!({ "in_force": faults.len(), "faults": faults })
    }

    /// Undoes every fault (on `/abort` and shutdown); the count undone.
    pub fn release_all(&self) -> u64 {
        let slots: Vec<Arc<Slot>> = self.lock().in_force.values().map(|fault| fault.slot.clone()).collect();
        slots.iter().filter(|slot| slot.undo()).count() as u64
    }

    /// At the start of an agent with NET_ADMIN: removes what a dead agent on the same port left in this
    /// namespace, and says so.
    pub fn clean_leftovers(public_port: u16) {
        let found = reaper::leftovers(public_port);
        if found.is_empty() {
            return;
        }
        reaper::clean(public_port);
        tracing::warn!(port = public_port, removed = ?found, "removed network faults a dead agent on this port left behind");
    }

    /// A new fault id, and the reaper started if this is the agent's first fault.
    fn begin(&self, public_port: u16) -> Result<u64, CommandError> {
        let mut inner = self.lock();
        if inner.reaper.is_none() {
            let reaper = reaper::Reaper::start(public_port)
                .map_err(|err| CommandError::Failed(format!("starting the network faults' reaper: {err}")))?;
            tracing::info!(pid = reaper.pid(), port = public_port, "network faults: reaper started");
            inner.reaper = Some(reaper);
        }
        inner.next_id += 1;
        Ok(inner.next_id)
    }
}

/// What every fault command has: how long, whether it may cut the control plane, and which traffic.
pub struct Request {
    pub command: &'static str,
    pub duration: HumanDuration,
    pub cut_control_plane: bool,
    pub traffic: Traffic,
    pub default_direction: Direction,
}

impl Request {
    /// A request, checked (see `check`).
    pub fn checked(
        command: &'static str,
        (duration, cut_control_plane): (HumanDuration, bool),
        traffic: Traffic,
        default_direction: Direction,
        ctx: &ExecContext,
    ) -> Result<Request, tarsier_plugin::DataError> {
        let request = Request { command, duration, cut_control_plane, traffic, default_direction };
        request.check(ctx)?;
        Ok(request)
    }

    /// The checks that need no privilege and no resolution (a `400`).
    pub fn check(&self, ctx: &ExecContext) -> Result<(), tarsier_plugin::DataError> {
        ctx.limits.check_duration("duration", self.duration)?;
        if self.duration.0.is_zero() {
            return Err(tarsier_plugin::DataError::field("duration", "a fault needs a duration above 0"));
        }
        self.traffic.check(self.cut_control_plane, &ctx.control_plane.read())
    }
}

/// What a command installs, given its checked selection, this agent's public port and the fault's id; run on
/// a blocking thread. Its summary goes into the answer beside the engine and the selection.
pub type Install = Box<dyn FnOnce(&Selection, u16, u64) -> Result<(Installed, Value), CommandError> + Send>;

/// Installs a fault, holds it for its duration or until cancelled, undoes it, and answers what it did.
pub async fn hold(
    faults: Arc<WireFaults>,
    request: Request,
    ctx: ExecContext,
    install: Install,
) -> Result<Value, CommandError> {
    let control = ctx.control_plane.read();
    if control.local_swarm {
        return Err(CommandError::Forbidden(
            "network faults are refused in a local swarm (`tarsier swarm`): its agents share this machine's own \
             network, so a fault would hit the machine, not one agent. Run agents in containers or network \
             namespaces (docs/network-faults.md)"
                .into(),
        ));
    }
    tools::require_net_admin()?;
    let selection = request
        .traffic
        .resolve(request.default_direction, request.cut_control_plane, &control)
        .await
        .map_err(CommandError::Unreachable)?;
    let (duration, capped) = match request.cut_control_plane && request.duration.0 > CUT_CONTROL_PLANE_MAX {
        true => (CUT_CONTROL_PLANE_MAX, true),
        false => (request.duration.0, false),
    };
    let id = faults.begin(control.public_port)?;
    let started = Instant::now();
    let port = control.public_port;
    let (installed, details) = {
        let selection = selection.clone();
        tokio::task::spawn_blocking(move || install(&selection, port, id))
            .await
            .map_err(|err| CommandError::Failed(format!("installing the fault: {err}")))??
    };
    let installed_in_ms = started.elapsed().as_secs_f64() * 1e3;
    let mut summary = json!({
        "fault": id,
        "engine": installed.engine(),
        "selection": selection,
        "duration_ms": duration.as_millis() as u64,
        "installed_in_ms": round(installed_in_ms),
    });
    merge(&mut summary, details);
    if request.cut_control_plane {
        summary["cut_control_plane"] = json!(if capped {
            "the control plane is not exempt; the duration was capped at 60 s"
        } else {
            "the control plane is not exempt (at most 60 s)"
        });
    }
    let slot = Arc::new(Slot { installed: Mutex::new(Some(installed)) });
    faults.lock().in_force.insert(
        id,
        InForce {
            command: request.command,
            summary: summary.clone(),
            ends: Instant::now() + duration,
            slot: slot.clone(),
        },
    );
    tracing::info!(activity = "fault_installed", fault = id, command = request.command, "network fault installed");
    ctx.progress.set(json!({ "installed": summary.clone() }));
    // Undone when this future ends or is dropped, whichever way.
    let guard = UndoOnDrop { faults: faults.clone(), id, slot: Some(slot.clone()) };
    let ended = tokio::select! {
        _ = tokio::time::sleep(duration) => "duration",
        _ = ctx.cancel.cancelled() => "cancelled",
    };
    let so_far = slot.installed.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(Installed::counters);
    let undo_started = Instant::now();
    let slot_taken = guard.disarm();
    let undone_here = tokio::task::spawn_blocking(move || slot_taken.undo()).await.unwrap_or(false);
    faults.lock().in_force.remove(&id);
    tracing::info!(activity = "fault_undone", fault = id, ended, "network fault undone");
    summary["ended"] = json!(if undone_here { ended } else { "released" });
    summary["held_ms"] = json!(started.elapsed().as_millis() as u64);
    summary["undone_in_ms"] = json!(round(undo_started.elapsed().as_secs_f64() * 1e3));
    summary["so_far"] = so_far.unwrap_or(Value::Null);
    Ok(summary)
}

struct UndoOnDrop {
    faults: Arc<WireFaults>,
    id: u64,
    slot: Option<Arc<Slot>>,
}

impl UndoOnDrop {
    fn disarm(mut self) -> Arc<Slot> {
        self.slot.take().expect("armed until disarmed")
    }
}

impl Drop for UndoOnDrop {
    fn drop(&mut self) {
        if let Some(slot) = self.slot.take() {
            slot.undo();
            self.faults.lock().in_force.remove(&self.id);
        }
    }
}

fn merge(into: &mut Value, from: Value) {
    if let (Some(into), Value::Object(from)) = (into.as_object_mut(), from) {
        into.extend(from);
    }
}

fn round(ms: f64) -> f64 {
    (ms * 100.0).round() / 100.0
}

/// Installs an nftables fault (partition, loss) on the selection's interfaces: its table, the answer's
/// details (table, rules, interfaces) and what to undo.
pub fn install_table(
    selection: &Selection,
    port: u16,
    id: u64,
    verdict: nft::Verdict,
) -> Result<(Installed, Value), CommandError> {
    let table = nft::table_name(port, id);
    let devices = selection.hit_interfaces();
    if devices.is_empty() && verdict.family() == nft::Family::Netdev {
        return Err(CommandError::Failed(
            "this network namespace has no interface but loopback to put the fault on".into(),
        ));
    }
    let rules = nft::render(&table, selection, verdict, &devices);
    nft::install(&rules)?;
    let family = verdict.family();
    let details = json!({
        "nft_table": format!("{} {table}", family.as_str()),
        "rules": rules,
        "interfaces": devices,
    });
    Ok((Installed::Table { family, table }, details))
}
