//! `tarsier status URL`: the swarm at a glance, as `kubectl get` shows pods: a row per agent with its
//! state, uptime, restarts, memory, what it holds, the faults in force and its running jobs.

use std::time::Duration;

use super::output::{self, human_bytes};
use super::swarm_view::{Reach, Surveyor, SwarmView};
use super::{EXIT_FAILED, EXIT_OK};
use crate::cli::ClientArgs;
use crate::wire::agent_status::AgentStatus;

/// How often `--watch` asks again.
const WATCH_EVERY: Duration = Duration::from_secs(2);

/// Prints the swarm reached through `url`; exit 1 when an agent it names is down or unproven.
pub async fn status(url: &str, watch: bool, json: bool, access: &ClientArgs) -> anyhow::Result<i32> {
    let surveyor = Surveyor::new(access)?;
    loop {
        let view = surveyor.survey(url).await;
        if json {
            output::line(serde_json::to_string(&view)?);
        } else {
            if watch {
                // Clear the screen and go home, as `watch(1)` does.
                output::line(format!("\x1b[2J\x1b[H{url}, every {} s", WATCH_EVERY.as_secs()));
            }
            output::line(status_table(&view));
        }
        if !watch {
            let all_up = view.agents.iter().all(|a| matches!(a.reach, Reach::Up { .. }));
            return Ok(if all_up { EXIT_OK } else { EXIT_FAILED });
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}

/// The table `tarsier status` prints, with a line of totals above it.
pub fn status_table(view: &SwarmView) -> String {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    table.set_header(["agent", "address", "state", "up", "restarts", "rss", "held", "faults", "jobs"]);
    for agent in &view.agents {
        match &agent.reach {
            Reach::Up { status } => {
                table.add_row([
                    status.agent.clone(),
                    agent.address.clone(),
                    "up".to_owned(),
                    output::seconds((status.uptime_seconds * 1000.0) as u64),
                    status.restarts.to_string(),
                    human_bytes(status.process.rss_bytes),
                    held(status),
                    faults(status),
                    jobs(status),
                ]);
            }
            Reach::Down { reason } | Reach::Unproven { reason } => {
                let state = if matches!(agent.reach, Reach::Down { .. }) { "down" } else { "unproven" };
                let (empty, reason) = (String::new(), reason.chars().take(100).collect::<String>());
                // The reason under `held`, the widest column.
                table.add_row([
                    "?".to_owned(),
                    agent.address.clone(),
                    output::styled(output::BAD, state),
                    empty.clone(),
                    empty.clone(),
                    empty.clone(),
                    reason,
                    empty.clone(),
                    empty,
                ]);
            }
        }
    }
    let up = view.up().count();
    let running: usize = view.up().map(|(_, s)| s.running.len()).sum();
    let restarts: u64 = view.up().map(|(_, s)| s.restarts).sum();
    let mut head = format!("{up} of {} agents up, {running} jobs running, {restarts} restarts", view.agents.len());
    if view.left_out > 0 {
        head += &format!(" ({} more agents not asked)", view.left_out);
    }
    format!("{head}\n{table}")
}

/// What an agent holds, only the parts it holds: `256.0 MiB RAM, 3 conns`.
fn held(status: &AgentStatus) -> String {
    let h = &status.held;
    let mut parts = Vec::new();
    if h.ram_bytes > 0 {
        parts.push(format!("{} RAM", human_bytes(h.ram_bytes)));
    }
    if h.disk_bytes > 0 || h.files > 0 {
        parts.push(format!("{} disk in {} files", human_bytes(h.disk_bytes), h.files));
    }
    if h.connections > 0 {
        parts.push(format!("{} conns", h.connections));
    }
    if h.busy_threads > 0 {
        parts.push(format!("{} spinning", h.busy_threads));
    }
    if h.blocked_threads > 0 {
        parts.push(format!("{} blocked", h.blocked_threads));
    }
    if parts.is_empty() {
        "-".to_owned()
    } else {
        parts.join(", ")
    }
}

fn faults(status: &AgentStatus) -> String {
    let h = &status.held;
    match (h.net_faults, h.proxies) {
        (0, 0) => "-".to_owned(),
        (net, 0) => format!("{net} net"),
        (0, proxies) => format!("{proxies} proxies"),
        (net, proxies) => format!("{net} net, {proxies} proxies"),
    }
}

/// Running jobs: `http_load 7.25 s (812.4 req/s)`, one per line.
fn jobs(status: &AgentStatus) -> String {
    if status.running.is_empty() {
        return "-".to_owned();
    }
    let lines: Vec<String> = status
        .running
        .iter()
        .map(|job| {
            let short = job.command.rsplit('/').next().unwrap_or(&job.command);
            let rate = job.progress.as_ref().and_then(|p| p["req_per_s"].as_f64());
            let rate = rate.map(|r| format!(" ({r:.1} req/s)")).unwrap_or_default();
            format!("#{} {short} {}{rate}", job.id, output::elapsed_of(job.elapsed_ms, job.duration_ms, false))
        })
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::swarm_view::AgentView;

    #[test]
    fn the_status_table_shows_each_agent_its_jobs_and_the_agents_that_did_not_answer() {
        let status: AgentStatus = serde_json::from_value(serde_json::json!({
            "agent": "a1", "version": "0.1.0", "address": "127.0.0.1:9000", "uptime_seconds": 75.0, "restarts": 1,
            "process": {"rss_bytes": 10485760}, "held": {"ram_bytes": 268435456, "net_faults": 1},
            "running": [{"id": 4, "command": "net/http_load", "wave_id": "w", "elapsed_ms": 7250, "progress": {"req_per_s": 812.4}}],
            "finished": 3, "peers": [],
        }))
        .unwrap();
        let view = SwarmView {
            entry: "127.0.0.1:9000".into(),
            agents: vec![
                AgentView { address: "127.0.0.1:9000".into(), reach: Reach::Up { status: Box::new(status) } },
                AgentView {
                    address: "127.0.0.1:9001".into(),
                    reach: Reach::Down { reason: "connection refused".into() },
                },
            ],
            left_out: 0,
        };
        let table = status_table(&view);
        assert!(table.starts_with("1 of 2 agents up, 1 jobs running, 1 restarts"), "{table}");
        for shown in [
            "a1",
            "1 min 15 s",
            "10.0 MiB",
            "256.0 MiB RAM",
            "1 net",
            "#4 http_load 7.25 s (812.4 req/s)",
            "down",
            "connection refused",
        ] {
            assert!(table.contains(shown), "{shown} in {table}");
        }
    }
}
