//! The deploy and monitoring stack under k8s/: every manifest is a real Kubernetes object (a typo'd field fails),
//! the kustomization names every file, the alert rules pass promtool and fire in `promtool test rules`, and the
//! dashboard and rules only use metrics a live agent exports.

use crate::common;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

fn k8s_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("k8s")
}

/// Files that are inputs of the kustomization's generators or of promtool, not Kubernetes objects.
const NOT_OBJECTS: [&str; 6] = [
    "kustomization.yaml",
    "tarsier/tarsier.yaml",
    "prometheus/prometheus.yml",
    "prometheus/rules.yaml",
    "prometheus/rules.test.yaml",
    "grafana/tarsier.json",
];

fn manifests() -> Vec<(String, Vec<Value>)> {
    let mut out = Vec::new();
    let mut stack = vec![k8s_dir()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let rel = path.strip_prefix(k8s_dir()).unwrap().display().to_string();
            if NOT_OBJECTS.contains(&rel.as_str()) || !rel.ends_with(".yaml") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let docs: Vec<Value> = serde_norway::Deserializer::from_str(&text)
                .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{rel}: {e}")))
                .filter(|v| !v.is_null())
                .collect();
            out.push((rel, docs));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Every key of `original` must come back from the typed object: a field the type does not know is dropped
/// on the way, which is how a typo shows.
fn lost_fields(original: &Value, typed: &Value, at: &str, lost: &mut Vec<String>) {
    match (original, typed) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                match b.get(key) {
                    Some(back) => lost_fields(value, back, &format!("{at}.{key}"), lost),
                    None => lost.push(format!("{at}.{key}")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                lost_fields(x, y, &format!("{at}[{i}]"), lost);
            }
        }
        (a, b) if a == b => {}
        // Quantities and int-or-strings may come back in another spelling of the same value.
        (a, b) if a.to_string().trim_matches('"') == b.to_string().trim_matches('"') => {}
        (a, b) => lost.push(format!("{at}: {a} came back as {b}")),
    }
}

fn round_trip<T: DeserializeOwned + Serialize>(doc: &Value) -> Result<Vec<String>, String> {
    let typed: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(&typed).map_err(|e| e.to_string())?;
    let mut lost = Vec::new();
    lost_fields(doc, &back, "", &mut lost);
    Ok(lost)
}

fn check_object(doc: &Value) -> Result<Vec<String>, String> {
    let kind = (doc["apiVersion"].as_str().unwrap_or(""), doc["kind"].as_str().unwrap_or(""));
    match kind {
        ("v1", "Namespace") => round_trip::<Namespace>(doc),
        ("v1", "Service") => round_trip::<Service>(doc),
        ("v1", "ConfigMap") => round_trip::<ConfigMap>(doc),
        ("v1", "Secret") => round_trip::<Secret>(doc),
        ("v1", "PersistentVolumeClaim") => round_trip::<PersistentVolumeClaim>(doc),
        ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(doc),
        ("apps/v1", "Deployment") => round_trip::<Deployment>(doc),
        ("apps/v1", "StatefulSet") => round_trip::<StatefulSet>(doc),
        ("batch/v1", "CronJob") => round_trip::<CronJob>(doc),
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<Role>(doc),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<RoleBinding>(doc),
        // A custom resource of the Prometheus Operator: no typed struct, so its shape is checked by hand.
        ("monitoring.coreos.com/v1", "PodMonitor") => {
            let endpoint = &doc["spec"]["podMetricsEndpoints"][0];
            let ok = doc["spec"]["selector"]["matchLabels"].is_object()
                && endpoint["port"] == "service"
                && endpoint["path"] == "/metrics";
            if ok {
                Ok(Vec::new())
            } else {
                Err("a PodMonitor must select the tarsier pods and scrape port `service` at /metrics".into())
            }
        }
        other => Err(format!("{other:?} is not a kind this test knows; add it")),
    }
}

#[test]
fn every_manifest_is_a_valid_kubernetes_object() {
    let all = manifests();
    assert!(all.len() >= 6, "{:?}", all.iter().map(|m| &m.0).collect::<Vec<_>>());
    let mut kinds = BTreeSet::new();
    for (file, docs) in &all {
        for doc in docs {
            let lost = check_object(doc).unwrap_or_else(|e| panic!("{file}: {e}"));
            assert!(lost.is_empty(), "{file} {}: unknown or mistyped fields {lost:?}", doc["metadata"]["name"]);
            kinds.insert(doc["kind"].as_str().unwrap().to_owned());
        }
    }
    for kind in ["Deployment", "Service", "ConfigMap", "Secret", "CronJob", "Namespace"] {
        assert!(kinds.contains(kind), "no {kind} in k8s/");
    }
}

#[test]
fn a_typo_is_caught() {
    let doc: Value = serde_norway::from_str(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replica: 3\n  selector: {matchLabels: {a: b}}\n  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}\n",
    )
    .unwrap();
    assert_eq!(check_object(&doc).unwrap(), vec![".spec.replica".to_owned()]);
}

#[test]
fn the_tarsier_deployment_has_what_operations_need() {
    let all = manifests();
    let deployment = all
        .iter()
        .flat_map(|(_, docs)| docs)
        .find(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == "tarsier")
        .expect("a tarsier Deployment");
    let pod = &deployment["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    assert_eq!(pod["metadata"]["annotations"]["prometheus.io/scrape"], "true");
    assert!(pod["spec"]["terminationGracePeriodSeconds"].as_u64().unwrap() >= 10);
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/health");
    assert!(container["resources"]["limits"]["memory"].is_string());
    let mounts: Vec<&str> =
        container["volumeMounts"].as_array().unwrap().iter().map(|m| m["mountPath"].as_str().unwrap()).collect();
    assert!(mounts.contains(&"/var/lib/tarsier"));
    // Per-pod scratch space by default: a ReadWriteMany claim left pods Pending on kind and minikube.
    let storage = pod["spec"]["volumes"].as_array().unwrap().iter().find(|v| v["name"] == "storage").unwrap();
    assert!(storage["emptyDir"]["sizeLimit"].is_string(), "{storage}");
    // The flags it passes are flags the agent has.
    let args: Vec<String> =
        container["args"].as_array().unwrap().iter().map(|a| a.as_str().unwrap().to_owned()).collect();
    let help = Command::new(common::BIN).args(["agent", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in args.iter().filter_map(|a| a.split('=').next()).filter(|a| a.starts_with("--")) {
        assert!(help.contains(flag), "the Deployment passes {flag}, which `tarsier agent` does not take");
    }
}

/// The agent config the pods and the Compose stack read is one the agent accepts.
#[test]
fn the_shared_agent_config_is_valid() {
    let path = k8s_dir().join("tarsier/tarsier.yaml");
    let config = tarsier::agent::config::AgentConfig::from_file(&path).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(config.auth.token_file.is_some(), "the shipped config must name the swarm token");
}

#[test]
fn the_kustomization_names_every_file() {
    let text = std::fs::read_to_string(k8s_dir().join("kustomization.yaml")).unwrap();
    let k: Value = serde_norway::from_str(&text).unwrap();
    let mut named: BTreeSet<String> =
        k["resources"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_owned()).collect();
    for generator in k["configMapGenerator"].as_array().unwrap() {
        for file in generator["files"].as_array().unwrap() {
            named.insert(file.as_str().unwrap().to_owned());
        }
    }
    for file in &named {
        assert!(k8s_dir().join(file).exists(), "kustomization.yaml names {file}, which does not exist");
    }
    // Applied by hand where its custom resource exists (the Prometheus Operator).
    const OPTIONAL: [&str; 1] = ["prometheus/podmonitor.yaml"];
    for (file, _) in manifests() {
        assert!(named.contains(&file) || OPTIONAL.contains(&file.as_str()), "{file} is not in kustomization.yaml");
    }
}

fn promtool() -> PathBuf {
    common::prometheus::prometheus_bin().with_file_name("promtool")
}

#[test]
fn alert_rules_pass_promtool_and_each_fires_in_its_test() {
    let dir = k8s_dir().join("prometheus");
    let check = Command::new(promtool()).args(["check", "rules", "rules.yaml"]).current_dir(&dir).output().unwrap();
    assert!(check.status.success(), "{}", String::from_utf8_lossy(&check.stdout));
    let test = Command::new(promtool()).args(["test", "rules", "rules.test.yaml"]).current_dir(&dir).output().unwrap();
    let out = String::from_utf8_lossy(&test.stdout);
    assert!(test.status.success() && out.contains("SUCCESS"), "{out}{}", String::from_utf8_lossy(&test.stderr));
    // Every alert has a test that expects it to fire.
    let rules = std::fs::read_to_string(dir.join("rules.yaml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("rules.test.yaml")).unwrap();
    for alert in rules.lines().filter_map(|l| l.trim().strip_prefix("- alert: ")) {
        assert!(tests.contains(&format!("alertname: {alert}")), "no promtool test for {alert}");
    }
}

/// Debian's Prometheus is built without kubernetes_sd_configs, which the in-cluster image (prom/prometheus) has:
/// the config is checked with that block swapped for the agents' own /sd, which every build has.
#[test]
fn the_prometheus_config_passes_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let config = std::fs::read_to_string(k8s_dir().join("prometheus/prometheus.yml")).unwrap();
    assert!(config.contains("kubernetes_sd_configs:"));
    let swapped = config.replace(
        "    kubernetes_sd_configs:\n      - role: pod\n        namespaces: {names: [tarsier]}\n",
        "    http_sd_configs: [{url: 'http://tarsier-service.tarsier.svc:8081/sd'}]\n",
    );
    assert_ne!(swapped, config, "the kubernetes_sd_configs block changed; update this test");
    std::fs::create_dir_all(dir.path().join("etc/prometheus/rules")).unwrap();
    let path = dir.path().join("prometheus.yml");
    std::fs::write(&path, swapped).unwrap();
    let check = Command::new(promtool()).args(["check", "config", "--syntax-only"]).arg(&path).output().unwrap();
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
}

/// Metric names in PromQL: the `tarsier_*` and `process_*` words.
fn metric_names(expr: &str) -> BTreeSet<String> {
    expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .filter(|w| w.starts_with("tarsier_") || w.starts_with("process_"))
        .map(str::to_owned)
        .collect()
}

fn collect_exprs(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                match v {
                    Value::String(s) if k == "expr" => out.push(s.clone()),
                    other => collect_exprs(other, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| collect_exprs(i, out)),
        _ => {}
    }
}

#[test]
fn dashboard_and_rules_use_only_metrics_a_live_agent_exports() {
    let dashboard: Value =
        serde_json::from_str(&std::fs::read_to_string(k8s_dir().join("grafana/tarsier.json")).unwrap()).unwrap();
    assert!(dashboard["uid"].is_string() && dashboard["panels"].as_array().unwrap().len() >= 10);
    let mut exprs = Vec::new();
    collect_exprs(&dashboard, &mut exprs);
    let rules: Value =
        serde_norway::from_str(&std::fs::read_to_string(k8s_dir().join("prometheus/rules.yaml")).unwrap()).unwrap();
    collect_exprs(&rules, &mut exprs);
    let used: BTreeSet<String> = exprs.iter().flat_map(|e| metric_names(e)).collect();
    assert!(used.len() >= 15, "{used:?}");

    // A live agent with limits and an activity log, after a command and a little HTTP load, so every
    // labelled series exists.
    let logs = tempfile::tempdir().unwrap();
    let config = format!("limits:\n  max_ram: 1GiB\nlogging:\n  dir: {}\n", logs.path().display());
    let agent = common::ChildAgent::spawn_with(common::Spawn { config: &config, ..Default::default() });
    agent.exec("command: sleep/sleep\ndata: {duration: 0s}\n");
    agent.exec(&format!("command: net/http_load\ndata: {{url: '{}/health', requests: 5}}\n", agent.service));
    let exported: BTreeSet<String> = agent
        .metrics()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect();
    // What runs push by remote write is no scrape's: those names are the pushed ones.
    let pushed: BTreeSet<String> = tarsier::remote_write::SERIES.iter().map(|s| s.to_string()).collect();
    let missing: Vec<&String> = used.iter().filter(|m| !exported.contains(*m) && !pushed.contains(*m)).collect();
    assert!(missing.is_empty(), "used but not exported: {missing:?}");
}
