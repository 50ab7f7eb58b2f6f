//! Reading the numbers expectations compare: a PromQL query, an agent's /metrics, a path in a JSON answer.

use serde_json::Value;

pub use crate::guard::promql;

/// A metric selector: `name` or `name{label="value",...}`.
#[derive(Debug, PartialEq)]
pub struct Selector {
    name: String,
    labels: Vec<(String, String)>,
}

impl Selector {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (name, labels) = match text.split_once('{') {
            None => (text, ""),
            Some((name, rest)) => {
                (name, rest.strip_suffix('}').ok_or_else(|| format!("`{text}`: a `{{` without its `}}`"))?)
            }
        };
        let labels = labels
            .split(',')
            .filter(|l| !l.trim().is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').ok_or_else(|| format!("`{pair}` is not label=\"value\""))?;
                Ok((k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
            })
            .collect::<Result<_, String>>()?;
        Ok(Self { name: name.trim().to_owned(), labels })
    }

    /// The sum of every sample of the text exposition format that has this name and these labels.
    pub fn sum(&self, exposition: &str) -> Option<f64> {
        let mut total = None;
        for line in exposition.lines().filter(|l| !l.starts_with('#')) {
            let Some((series, value)) = line.rsplit_once(' ') else { continue };
            let (name, labels) = series.split_once('{').unwrap_or((series, "}"));
            if name != self.name {
                continue;
            }
            let labels = labels.trim_end_matches('}');
            let matches = self.labels.iter().all(|(k, v)| labels.split(',').any(|l| l == format!("{k}=\"{v}\"")));
            if let (true, Ok(v)) = (matches, value.parse::<f64>()) {
                *total.get_or_insert(0.0) += v;
            }
        }
        total
    }
}

pub async fn metric(client: &reqwest::Client, service: &str, selector: &str) -> Result<Option<f64>, String> {
    let selector = Selector::parse(selector)?;
    let url = format!("{}/metrics", service.trim_end_matches('/'));
    let text = client
        .get(&url)
        .send()
        .await
        .map_err(|e| format!("cannot read {url}: {e}"))?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    Ok(selector.sum(&text))
}

/// A dotted path into a JSON answer (`result.latency_ms.p99`, `report.merged.status.200`).
pub fn at_path<'a>(value: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(value, |v, key| match v {
        Value::Object(map) => map.get(key),
        Value::Array(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_sum_matching_series() {
        let text = "# HELP x\ntarsier_held{resource=\"ram_bytes\"} 1024\ntarsier_held{resource=\"files\"} 3\n\
                    tarsier_peers 9\ntarsier_commands_total{command=\"a\",result=\"ok\"} 2\n\
                    tarsier_commands_total{command=\"b\",result=\"ok\"} 5\n";
        assert_eq!(Selector::parse("tarsier_peers").unwrap().sum(text), Some(9.0));
        assert_eq!(Selector::parse("tarsier_held{resource=\"files\"}").unwrap().sum(text), Some(3.0));
        assert_eq!(Selector::parse("tarsier_commands_total{result=\"ok\"}").unwrap().sum(text), Some(7.0));
        assert_eq!(Selector::parse("tarsier_nothing").unwrap().sum(text), None);
        assert!(Selector::parse("x{a=\"b\"").is_err());
    }

    #[test]
    fn paths() {
        let v = serde_json::json!({"result": {"latency_ms": {"p99": 3.5}, "list": [1, 2]}});
        assert_eq!(at_path(&v, "result.latency_ms.p99"), Some(&serde_json::json!(3.5)));
        assert_eq!(at_path(&v, "result.list.1"), Some(&serde_json::json!(2)));
        assert_eq!(at_path(&v, "result.nope"), None);
    }
}
