//! `tarsier jobs`, `tarsier job` and `tarsier cancel`: an agent's jobs from the command line, as tables a
//! person reads (elapsed times in seconds, progress in a line) or as the agent's JSON.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;

use super::{agent_client, endpoint, get_json, output, EXIT_OK};
use crate::cli::ClientArgs;

/// How often `--watch` asks again.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// Finished jobs a table shows (the agent keeps more; `--json` has them all).
const FINISHED_SHOWN: usize = 10;

/// `GET /jobs`: running jobs with their elapsed time and progress, then the latest finished ones; with
/// `watch`, again every second until Ctrl-C.
pub async fn jobs(url: &str, watch: bool, json: bool, access: &ClientArgs) -> anyhow::Result<i32> {
    loop {
        let listed = get_json(url, "/jobs", access).await?;
        if json {
            output::line(serde_json::to_string(&listed)?);
        } else {
            if watch {
                // Clear the screen and go home, as `watch(1)` does.
                output::line("\x1b[2J\x1b[H".to_owned() + &format!("{url}/jobs, every {}s", WATCH_EVERY.as_secs()));
            }
            output::line(jobs_table(&listed));
        }
        if !watch {
            return Ok(EXIT_OK);
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}

/// The table of `tarsier jobs`.
pub fn jobs_table(listed: &Value) -> String {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    table.set_header(["id", "command", "status", "elapsed", "wave", "progress / result"]);
    let running = listed["running"].as_array().cloned().unwrap_or_default();
    let finished = listed["finished"].as_array().cloned().unwrap_or_default();
    for job in running.iter().chain(finished.iter().take(FINISHED_SHOWN)) {
        let detail = match (job.get("progress"), job.get("result")) {
            (Some(_), _) if job["status"] == "running" => output::job_line(job),
            (_, Some(result)) => output::fields_line(result, 80),
            _ => String::new(),
        };
        table.add_row([
            job["id"].to_string(),
            job["command"].as_str().unwrap_or("?").to_owned(),
            job["status"].as_str().unwrap_or("?").to_owned(),
            match job["elapsed_ms"].as_u64() {
                // The total only while it runs: a finished job's elapsed time is what it took.
                Some(elapsed) => {
                    let total = job["duration_ms"].as_u64().filter(|_| job["status"] == "running");
                    output::elapsed_of(elapsed, total, false)
                }
                None => String::new(),
            },
            job["wave_id"].as_str().unwrap_or("").to_owned(),
            detail,
        ]);
    }
    let more = finished.len().saturating_sub(FINISHED_SHOWN);
    let tail = if more > 0 { format!("\n({more} older finished jobs: --json lists them)") } else { String::new() };
    format!("{} running, {} finished\n{table}{tail}", running.len(), finished.len())
}

/// `GET /jobs/ID`: one job, every field.
pub async fn job(url: &str, id: u64, json: bool, access: &ClientArgs) -> anyhow::Result<i32> {
    let job = get_json(url, &format!("/jobs/{id}"), access).await?;
    if json {
        output::line(serde_json::to_string_pretty(&job)?);
        return Ok(EXIT_OK);
    }
    output::line(format!(
        "job {id}: {} {}",
        job["command"].as_str().unwrap_or("?"),
        job["status"].as_str().unwrap_or("?")
    ));
    output::line(format!("  started   {}", job["started"].as_str().unwrap_or("?")));
    if let Some(ms) = job["elapsed_ms"].as_u64() {
        output::line(format!("  elapsed   {}", output::seconds(ms)));
    }
    output::line(format!("  wave      {}", job["wave_id"].as_str().unwrap_or("-")));
    for key in ["progress", "result"] {
        if let Some(value) = job.get(key) {
            output::line(format!(
                "  {key:<9} {}",
                serde_json::to_string_pretty(value)?.replace('\n', "\n            ")
            ));
        }
    }
    Ok(EXIT_OK)
}

/// `DELETE /jobs/ID`: cancels a running job (exit 1 if it had finished or does not exist).
pub async fn cancel(url: &str, id: u64, access: &ClientArgs) -> anyhow::Result<i32> {
    let target = endpoint(url, &format!("/jobs/{id}"));
    let response = agent_client(Duration::from_secs(30), access)?
        .delete(&target)
        .send()
        .await
        .with_context(|| format!("cannot reach {target}"))?;
    let status = response.status();
    let answer: Value = response.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        output::line(format!("job {id} cancelled"));
        Ok(EXIT_OK)
    } else {
        output::line(format!("job {id} not cancelled ({status}): {}", answer["error"].as_str().unwrap_or("?")));
        Ok(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_jobs_table_shows_running_jobs_with_elapsed_time_and_says_what_it_left_out() {
        let finished: Vec<Value> = (0..12)
            .map(|i| serde_json::json!({"id": i, "command": "sleep/sleep", "status": "ok", "elapsed_ms": 5, "result": {"slept_ms": 5}}))
            .collect();
        let listed = serde_json::json!({
            "running": [{"id": 99, "command": "net/http_load", "status": "running", "elapsed_ms": 7250, "wave_id": "w1", "progress": {"sent": 10}}],
            "finished": finished,
        });
        let table = jobs_table(&listed);
        assert!(table.starts_with("1 running, 12 finished"), "{table}");
        assert!(table.contains("net/http_load") && table.contains("7.25 s") && table.contains("10 sent"), "{table}");
        assert!(table.contains("2 older finished jobs"), "{table}");
    }
}
