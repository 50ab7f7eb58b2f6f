//! `tarsier exec` and `tarsier abort`: the agent's API from the command line.

use std::io::Read as _;
use std::time::Duration;

use anyhow::Context as _;

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

fn client(timeout: Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder().timeout(timeout).build().context("cannot build an HTTP client")
}

/// Posts a body and prints the answer; the exit status says whether the agent accepted and ran it.
pub async fn exec(url: &str, file: &str, timeout: Duration) -> anyhow::Result<i32> {
    let body = if file == "-" {
        let mut text = Vec::new();
        std::io::stdin().read_to_end(&mut text).context("cannot read the body from stdin")?;
        text
    } else {
        std::fs::read(file).with_context(|| format!("cannot read {file}"))?
    };
    let content_type = if file.ends_with(".json") { "application/json" } else { "application/yaml" };
    let target = endpoint(url, "/exec");
    let response = client(timeout)?
        .post(&target)
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .with_context(|| format!("cannot reach {target}"))?;
    print_answer(response).await
}

pub async fn abort(url: &str) -> anyhow::Result<i32> {
    let target = endpoint(url, "/abort");
    let response = client(Duration::from_secs(30))?
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
