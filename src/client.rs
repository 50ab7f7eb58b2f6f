//! `tarsier exec` and `tarsier abort`: the agent's API from the command line.

use std::io::Read as _;
use std::time::Duration;

use anyhow::Context as _;
use serde::Deserialize as _;
use serde_json::Value;
use std::time::Instant;
use tarsier_net::HttpLoadResult;

use crate::auth::Token;
use crate::cli::ClientArgs;

/// `http://host:port` gets `path` appended; a URL that already has a path is used as it is.
pub fn endpoint(url: &str, path: &str) -> String {
    let trimmed = url.trim_end_matches('/');
    let after_scheme = trimmed.split_once("://").map(|(_, rest)| rest).unwrap_or(trimmed);
    let base = if url.contains("://") { trimmed.to_owned() } else { format!("http://{trimmed}") };
    if after_scheme.contains('/') {
        base
    } else {
        format!("{base}{path}")
    }
}

/// The client the CLI reaches agents with: the swarm token on every request, the CA for https:// agents,
/// and a client certificate for agents that require mutual TLS.
pub fn agent_client(timeout: Duration, args: &ClientArgs) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(path) = &args.token_file {
        headers.insert(reqwest::header::AUTHORIZATION, Token::from_file(path)?.bearer());
    }
    let mut builder = reqwest::Client::builder().timeout(timeout).default_headers(headers);
    if let Some(ca) = &args.ca_file {
        let identity = args.cert_file.as_deref().zip(args.key_file.as_deref());
        builder = builder.tls_backend_preconfigured(crate::tls::client_config(ca, identity)?);
    }
    builder.build().context("cannot build an HTTP client")
}

/// Posts a body and prints the answer; the exit status says whether the agent accepted and ran it. With
/// `report`, then waits for the wave's report on the origin and prints it, merged.
pub async fn exec(
    url: &str,
    file: &str,
    timeout: Duration,
    report: bool,
    raw: bool,
    access: &ClientArgs,
) -> anyhow::Result<i32> {
    let body = if file == "-" {
        let mut text = Vec::new();
        std::io::stdin().read_to_end(&mut text).context("cannot read the body from stdin")?;
        text
    } else {
        std::fs::read(file).with_context(|| format!("cannot read {file}"))?
    };
    let content_type = if file.ends_with(".json") { "application/json" } else { "application/yaml" };
    let target = endpoint(url, "/exec");
    let client = agent_client(timeout, access)?;
    let response = client
        .post(&target)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot reach {target}"))?;
    let status = response.status();
    let answer: Value = response.json().await.context("the answer is not JSON")?;
    print_json(&answer, raw)?;
    if !raw {
        print_http_load(&answer["result"], "this agent");
    }
    if report && status.is_success() {
        let id = answer["wave_id"].as_str().context("no wave_id in the answer")?;
        let origin = endpoint(url, "").trim_end_matches("/exec").to_owned();
        let summary = wait_for_report(&client, &origin, id, u64::MAX).await?;
        print_json(&summary, raw)?;
        if !raw {
            print_http_load(&summary["merged"], &format!("the swarm ({} agents)", summary["agents_reached"]));
        }
    }
    Ok(if status.is_success() { 0 } else { 1 })
}

/// Polls the origin's report until `expected` executions are in, or nothing new came for a second.
pub async fn wait_for_report(client: &reqwest::Client, origin: &str, id: &str, expected: u64) -> anyhow::Result<Value> {
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut last = (0, Instant::now());
    loop {
        let summary: Value = client.get(format!("{origin}/waves/{id}")).send().await?.json().await?;
        let executions = summary["executions"].as_u64().unwrap_or(0);
        if executions != last.0 {
            last = (executions, Instant::now());
        }
        // Every agent that runs the command reports when it is done; silence means the wave is over.
        let quiet = executions > 0 && last.1.elapsed() > Duration::from_secs(1);
        if executions >= expected || quiet || Instant::now() > deadline {
            return Ok(summary);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Pretty JSON, with base64 histograms shortened unless `raw`.
fn print_json(value: &Value, raw: bool) -> anyhow::Result<()> {
    if raw {
        println!("{value}");
        return Ok(());
    }
    let mut shown = value.clone();
    shorten_histograms(&mut shown);
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(())
}

fn shorten_histograms(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                match v {
                    Value::String(text) if key == "histogram" => {
                        *v = Value::String(format!("<HDR histogram, {} bytes of base64; --json shows it>", text.len()));
                    }
                    other => shorten_histograms(other),
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(shorten_histograms),
        _ => {}
    }
}

/// A wrk-like table of an http_load result, if `result` is one.
fn print_http_load(result: &Value, whose: &str) {
    let Ok(result) = HttpLoadResult::deserialize(result) else { return };
    let Some(latency) = result.latency_ms else { return };
    let errors = &result.errors;
    println!("\nhttp_load, {whose}:");
    println!(
        "  {:>10} {:>10} {:>8} {:>6} {:>6} {:>10} | latency ms {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "requests", "completed", "errors", "4xx", "5xx", "req/s", "min", "p50", "p90", "p99", "p99.9", "max"
    );
    println!(
        "  {:>10} {:>10} {:>8} {:>6} {:>6} {:>10.1} |            {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        result.requests_sent,
        result.completed,
        errors.connect + errors.timeout + errors.other,
        errors.status_4xx,
        errors.status_5xx,
        result.req_per_s,
        latency.min,
        latency.p50,
        latency.p90,
        latency.p99,
        latency.p999,
        latency.max,
    );
}

pub async fn abort(url: &str, access: &ClientArgs) -> anyhow::Result<i32> {
    let target = endpoint(url, "/abort");
    let response = agent_client(Duration::from_secs(30), access)?
        .post(&target)
        .send()
        .await
        .with_context(|| format!("cannot reach {target}"))?;
    print_answer(response).await
}

async fn print_answer(response: reqwest::Response) -> anyhow::Result<i32> {
    let status = response.status();
    let text = response.text().await.context("cannot read the answer")?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(json) => println!("{}", serde_json::to_string_pretty(&json)?),
        Err(_) => println!("{text}"),
    }
    Ok(if status.is_success() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::endpoint;

    #[test]
    fn endpoints() {
        assert_eq!(endpoint("http://127.0.0.1:8080", "/exec"), "http://127.0.0.1:8080/exec");
        assert_eq!(endpoint("http://127.0.0.1:8080/", "/exec"), "http://127.0.0.1:8080/exec");
        assert_eq!(endpoint("127.0.0.1:8080", "/abort"), "http://127.0.0.1:8080/abort");
        assert_eq!(endpoint("http://h:1/custom/exec", "/exec"), "http://h:1/custom/exec");
    }
}
