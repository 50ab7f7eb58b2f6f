//! The shape of `src/`: no import circle between its modules, and the server side, the wire types and the
//! client side kept apart. A circle (the agent's state, its routers and the wave code all importing each
//! other) is what made the core hard to change; this keeps it from coming back. Read from the source text:
//! `crate::module` anywhere in a module's files is an edge. A node is a top-level module, but inside `agent/`
//! each of its rooms (`agent::wave`, `agent::http::gate`, ...), so circles between the agent's rooms count too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::rust_files;

/// Folders whose modules are nodes of their own: `agent`'s rooms, and the listener, gate and routes of
/// `agent::http`. Everywhere else a top-level module is one node.
const SPLIT: [&str; 2] = ["agent", "agent::http"];

/// The node a module path (`agent::wave::forward`, `client::output`) belongs to, given the modules that exist.
fn node(path: &[&str], modules: &BTreeSet<String>) -> String {
    let mut name = match path.first() {
        Some(first) => first.to_string(),
        None => return String::new(),
    };
    for next in &path[1..] {
        let deeper = format!("{name}::{next}");
        if !SPLIT.contains(&name.as_str()) || !modules.contains(&deeper) {
            break;
        }
        name = deeper;
    }
    name
}

/// Every module path of `src/` (`agent`, `agent::http`, `agent::http::gate`, ...).
fn module_paths(src: &Path, files: &[PathBuf]) -> BTreeSet<String> {
    let mut modules = BTreeSet::new();
    for file in files {
        let parts = parts_of(src, file);
        for depth in 1..=parts.len() {
            modules.insert(parts[..depth].join("::"));
        }
    }
    modules
}

fn parts_of(src: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(src).unwrap().with_extension("");
    relative.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).filter(|p| p != "mod").collect()
}

/// Node -> the nodes it names through `crate::`.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules = module_paths(&src, &files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let parts = parts_of(&src, &file);
        if parts == ["main"] || parts == ["lib"] {
            continue;
        }
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let module = node(&parts, &modules);
        let text = std::fs::read_to_string(&file).unwrap();
        let deps = graph.entry(module.clone()).or_default();
        for (at, _) in text.match_indices("crate::") {
            let named: String =
                text[at + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == ':').collect();
            let path: Vec<&str> = named.split("::").filter(|p| !p.is_empty()).collect();
            let target = node(&path, &modules);
            if !target.is_empty() && target != module {
                deps.insert(target);
            }
        }
    }
    graph
}

/// A circle through `from`, if there is one.
fn circle(graph: &BTreeMap<String, BTreeSet<String>>, from: &str) -> Option<Vec<String>> {
    fn walk(graph: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>, done: &mut BTreeSet<String>) -> bool {
        let here = path.last().unwrap().clone();
        for next in graph.get(&here).into_iter().flatten() {
            if path.first() == Some(next) {
                path.push(next.clone());
                return true;
            }
            if !path.contains(next) && done.insert(format!("{}>{next}", path[0])) {
                path.push(next.clone());
                if walk(graph, path, done) {
                    return true;
                }
                path.pop();
            }
        }
        false
    }
    let mut path = vec![from.to_owned()];
    walk(graph, &mut path, &mut BTreeSet::new()).then_some(path)
}

#[test]
fn no_import_circle_between_the_modules_of_src() {
    let graph = module_graph();
    assert!(graph.contains_key("agent::state") && graph.contains_key("agent::wave"), "{graph:?}");
    for module in graph.keys() {
        if let Some(path) = circle(&graph, module) {
            panic!("import circle: {}", path.join(" -> "));
        }
    }
    // The wave code owns what it uses: it does not reach back into the agent.
    for named in &graph["agent::wave"] {
        let agent_side =
            ["agent", "agent::state", "agent::exec"].contains(&named.as_str()) || named.starts_with("agent::http::");
        assert!(!agent_side, "agent::wave imports {named}");
    }
}

#[test]
fn the_client_side_and_the_wire_types_import_nothing_of_the_agent() {
    let graph = module_graph();
    let agent_side = |name: &String| name == "agent" || name.starts_with("agent::");
    // The client side speaks to agents through the wire types only; `local_swarm`, `demo` and `catalogue`
    // are the bridges that start agents or read their plugins in-process.
    for client_side in ["client", "scenario", "console"] {
        let reached: Vec<&String> = graph[client_side].iter().filter(|n| agent_side(n)).collect();
        assert!(reached.is_empty(), "{client_side} imports {reached:?}");
    }
    // What crosses the network, and what both sides share, depends on neither side.
    for shared in ["wire", "credentials", "sys", "logs"] {
        let reached: Vec<&String> = graph[shared]
            .iter()
            .filter(|n| agent_side(n) || ["client", "scenario", "console"].contains(&n.as_str()))
            .collect();
        assert!(reached.is_empty(), "{shared} imports {reached:?}");
    }
}
