//! The one place plugins are registered, and the lookup of `plugin/command` names (with aliases).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{json, Value};
use tarsier_plugin::{DynCommand, Held, Plugin};

use crate::agent::config::AgentConfig;
use crate::wire::error::ApiError;

/// Every built-in plugin. Adding a plugin is one crate and one line here.
pub fn builtin_plugins(config: &AgentConfig) -> anyhow::Result<Vec<Arc<dyn Plugin>>> {
    Ok(vec![
        tarsier_heavy_load::HeavyLoad::plugin(),
        tarsier_faults::Faults::plugin(),
        tarsier_net::Net::plugin(),
        tarsier_storage::Storage::from_config(config.plugin_section("storage"))?,
        tarsier_sleep::SleepPlugin::plugin(),
        tarsier_dummy::Dummy::plugin(),
        tarsier_logs::Logs::from_config(config.plugin_section("logs"))?,
    ])
}

/// A command found by name.
#[derive(Clone)]
pub struct Resolved {
    /// Canonical `plugin/command`, used in metrics and answers whatever alias was asked; made once per
    /// command, shared by every job's record.
    pub name: Arc<str>,
    pub command: Arc<dyn DynCommand>,
}

/// A command with its canonical `plugin/command` name.
type Named = (Arc<str>, Arc<dyn DynCommand>);

pub struct Registry {
    plugins: Vec<Arc<dyn Plugin>>,
    /// plugin name or alias -> index in `plugins`.
    plugin_names: BTreeMap<&'static str, usize>,
    /// canonical plugin name -> command name or alias -> the command and its canonical `plugin/command`.
    commands: BTreeMap<&'static str, BTreeMap<&'static str, Named>>,
}

impl Registry {
    pub fn new(plugins: Vec<Arc<dyn Plugin>>) -> Self {
        let mut plugin_names = BTreeMap::new();
        let mut commands = BTreeMap::new();
        for (i, plugin) in plugins.iter().enumerate() {
            plugin_names.insert(plugin.name(), i);
            for alias in plugin.aliases() {
                plugin_names.insert(*alias, i);
            }
            let table: &mut BTreeMap<_, _> = commands.entry(plugin.name()).or_default();
            for command in plugin.commands() {
                let canonical: Arc<str> = format!("{}/{}", plugin.name(), command.name()).into();
                for alias in command.aliases() {
                    table.insert(*alias, (canonical.clone(), command.clone()));
                }
                table.insert(command.name(), (canonical, command));
            }
        }
        Self { plugins, plugin_names, commands }
    }

    /// Finds `plugin/command`; a `404` names what exists instead.
    pub fn resolve(&self, full: &str) -> Result<Resolved, ApiError> {
        let Some((plugin_name, command_name)) = full.split_once('/') else {
            return Err(ApiError::bad_request(
                Some("command".into()),
                format!("command: `{full}` is not `plugin/command` (for example `sleep/sleep`)"),
            ));
        };
        let plugin = self.plugin_names.get(plugin_name).map(|&i| &self.plugins[i]).ok_or_else(|| {
            ApiError::not_found(format!(
                "unknown command `{full}`: no plugin `{plugin_name}` (plugins: {})",
                self.plugins.iter().map(|p| p.name()).collect::<Vec<_>>().join(", ")
            ))
        })?;
        let table = &self.commands[plugin.name()];
        let (name, command) = table.get(command_name).ok_or_else(|| {
            let known: Vec<_> = plugin.commands().iter().map(|c| c.name()).collect();
            ApiError::not_found(format!(
                "unknown command `{full}`: plugin `{}` has {}",
                plugin.name(),
                known.join(", ")
            ))
        })?;
        Ok(Resolved { name: name.clone(), command: command.clone() })
    }

    pub fn collectors(&self) -> Vec<Box<dyn prometheus::core::Collector>> {
        self.plugins.iter().flat_map(|p| p.collectors()).collect()
    }

    pub fn held(&self) -> Held {
        self.plugins.iter().map(|p| p.held()).sum()
    }

    /// Tells every plugin the agent listens (see `Plugin::started`).
    pub fn started(&self, control_plane: &tarsier_plugin::ControlPlane) {
        for plugin in &self.plugins {
            plugin.started(control_plane);
        }
    }

    pub fn release_all(&self) -> Held {
        self.plugins.iter().map(|p| p.release_all()).sum()
    }

    /// The `/commands` catalogue, generated from each command's data struct.
    pub fn catalogue(&self) -> Vec<CatalogueEntry> {
        let mut entries = Vec::new();
        for plugin in &self.plugins {
            for command in plugin.commands() {
                let schema = command.data_schema();
                let mut aliases: Vec<String> = Vec::new();
                for p in std::iter::once(plugin.name()).chain(plugin.aliases().iter().copied()) {
                    for c in std::iter::once(command.name()).chain(command.aliases().iter().copied()) {
                        aliases.push(format!("{p}/{c}"));
                    }
                }
                let name = aliases.remove(0);
                entries.push(CatalogueEntry {
                    command: name,
                    aliases,
                    description: command.description(),
                    ends_process: command.ends_process(),
                    fields: fields_of(&schema),
                    schema,
                });
            }
        }
        entries
    }
}

#[derive(Serialize)]
pub struct CatalogueEntry {
    pub command: String,
    pub aliases: Vec<String>,
    pub description: &'static str,
    /// The command ends the agent's process (`faults/segfault`, `faults/exit`, ...).
    pub ends_process: bool,
    pub fields: Vec<Value>,
    /// The JSON Schema of `data`, derived from the data struct the parser uses.
    pub schema: Value,
}

/// A flat list of fields (name, type, default, description) read from a JSON Schema.
fn fields_of(schema: &Value) -> Vec<Value> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    properties
        .iter()
        .map(|(name, prop)| {
            json!({
                "name": name,
                "type": type_of(prop, schema),
                "default": prop.get("default").cloned().or_else(|| schema.pointer(&format!("/default/{name}")).cloned()),
                "description": prop.get("description").or_else(|| resolve_ref(prop, schema).and_then(|r| r.get("description"))),
            })
        })
        .collect()
}

fn resolve_ref<'a>(prop: &Value, root: &'a Value) -> Option<&'a Value> {
    let target = prop.get("$ref").and_then(Value::as_str)?.strip_prefix('#')?;
    root.pointer(target)
}

fn type_of(prop: &Value, root: &Value) -> String {
    if let Some(r) = prop.get("$ref").and_then(Value::as_str) {
        let name = r.rsplit('/').next().unwrap_or(r);
        return match resolve_ref(prop, root).and_then(|t| t.get("enum")) {
            Some(Value::Array(values)) => values.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("|"),
            _ => name.to_owned(),
        };
    }
    match prop.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("|"),
        _ => "any".into(),
    }
}
