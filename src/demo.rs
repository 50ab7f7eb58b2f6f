//! `tarsier demo`: one agent on loopback and a tour of what it does, for a first look.

use std::time::Duration;

use anyhow::Context as _;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::agent::config::AgentConfig;
use crate::agent::BoundAgent;
use crate::cli::{AgentArgs, DemoArgs};

/// Small amounts: the demo must be safe on a laptop.
const DEMO_COMMANDS: [(&str, &str); 7] = [
    ("answer after 300ms", "command: sleep/sleep\ndata: {duration: 300ms}\n"),
    ("hold 64 MiB of real RAM", "command: heavy_load/gobble_ram\ndata: {size: 64MiB}\n"),
    ("spin one core at 50 % for 2s", "command: heavy_load/spin_cpu\ndata: {duration: 2s, threads: 1, load: 50}\n"),
    ("write 2 files of 16 MiB", "command: storage/write\ndata: {amount: 16MiB, files: 2}\n"),
    ("list held files", "command: storage/fs_stats\n"),
    ("close and delete the files", "command: storage/close_fd\ndata: {index: -1}\n"),
    ("free the RAM", "command: heavy_load/free_ram\ndata: {index: -1}\n"),
];

pub async fn run(args: DemoArgs) -> anyhow::Result<i32> {
    let config = AgentConfig::load(&AgentArgs {
        listen: Some(args.listen),
        service_listen: Some(args.service_listen),
        ..AgentArgs::default()
    })?;
    let shutdown = CancellationToken::new();
    let agent = BoundAgent::bind(&config, None, crate::agent::http_client(&config)?, shutdown.clone()).await?;
    let state = agent.state.clone();
    let serving = tokio::spawn(agent.serve());
    let public = format!("http://{}", state.public_addr);
    let service = format!("http://{}", state.service_addr);
    crate::say!("tarsier agent {} serving: public {public}  service {service}\n", state.name);

    let client = reqwest::Client::builder().timeout(Duration::from_secs(60)).build()?;
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::UTF8_HORIZONTAL_ONLY);
    table.set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    table.set_header(["what", "command", "status", "ms", "RSS MiB", "result"]);
    for (what, body) in DEMO_COMMANDS {
        let answer: Value = client
            .post(format!("{public}/exec"))
            .header("content-type", "application/yaml")
            .body(body)
            .send()
            .await
            .with_context(|| format!("cannot reach {public}"))?
            .json()
            .await?;
        let rss: Value = client.get(format!("{service}/runtime")).send().await?.json().await?;
        table.add_row([
            what.to_owned(),
            answer["command"].as_str().unwrap_or("?").to_owned(),
            answer["status"].as_str().unwrap_or("?").to_owned(),
            answer["elapsed_ms"].to_string(),
            (rss["process"]["rss_bytes"].as_u64().unwrap_or(0) >> 20).to_string(),
            compact(&answer["result"]),
        ]);
    }
    if table.width().is_none() {
        table.set_width(120);
    }
    crate::client::output::line(table);
    let me = crate::client::output::self_command();
    crate::say!("\nTry: {me} commands {service}");
    crate::say!("     printf 'command: sleep/sleep\\ndata: {{duration: 1s}}\\n' | {me} exec {public} -");
    if args.once {
        shutdown.cancel();
    } else {
        crate::say!("Serving until Ctrl-C.");
        let _ = tokio::signal::ctrl_c().await;
        shutdown.cancel();
    }
    serving.await??;
    Ok(0)
}

/// A result's top-level fields as `key=value`, numbers rounded, lists counted: a cell, not a JSON dump.
fn compact(result: &Value) -> String {
    let Some(fields) = result.as_object() else { return result.to_string() };
    let shown: Vec<String> = fields
        .iter()
        .map(|(key, value)| match value {
            Value::Number(n) if n.is_f64() => format!("{key}={:.2}", n.as_f64().unwrap_or(0.0)),
            Value::Array(items) => format!("{key}=[{} items]", items.len()),
            Value::Object(_) => format!("{key}={{…}}"),
            other => format!("{key}={other}"),
        })
        .collect();
    shown.join(" ")
}
