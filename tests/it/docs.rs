//! The docs agree with the agent: docs/commands.md has one row per command of the catalogue (`GET /commands`),
//! and each row names every field of its command with the default the catalogue reports. Defaults so have one
//! source, the commands' data structs, and a change there fails here until the table follows.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::Value;

use crate::common::ChildAgent;

/// `GET /commands` of a fresh child agent.
fn catalogue() -> Value {
    let agent = ChildAgent::spawn();
    agent.get_json(&format!("{}/commands", agent.service))
}

/// `docs/commands.md`'s rows: command name -> the row's text.
fn table_rows() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/commands.md")).unwrap();
    let mut rows = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("| `") else { continue };
        let Some((name, _)) = rest.split_once('`') else { continue };
        if name.contains('/') {
            rows.insert(name.to_owned(), line.to_owned());
        }
    }
    rows
}

/// Defaults that depend on the machine, written in words in the table: (command, field, words).
const MACHINE_DEFAULTS: [(&str, &str, &str); 1] = [("heavy_load/spin_cpu", "threads", "(all cores")];

/// How the table writes a default: sizes in binary units (`64MiB`), everything else as JSON writes it.
fn written(default: &Value, kind: &str) -> String {
    match (default, kind) {
        (Value::Number(n), "ByteSize") => {
            let bytes = n.as_u64().unwrap_or(0);
            let units = [(1u64 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
            match units.iter().find(|(size, _)| bytes >= *size && bytes % size == 0) {
                Some((size, unit)) => format!("{}{unit}", bytes / size),
                None => bytes.to_string(),
            }
        }
        (Value::String(s), _) => s.clone(),
        (Value::Object(o), _) if o.is_empty() => "{}".into(),
        // A network fault's `traffic:` block: the table says in words what its empty lists select.
        (Value::Object(_), "Traffic") => "every interface".into(),
        (Value::Number(n), _) if n.as_f64().is_some_and(|f| f.fract() == 0.0) && n.is_f64() => {
            format!("{}", n.as_f64().unwrap_or(0.0) as i64)
        }
        (other, _) => other.to_string(),
    }
}

#[test]
fn the_commands_table_has_every_command_field_and_default_of_the_catalogue() {
    let catalogue = catalogue();
    let commands = catalogue["commands"].as_array().expect("a list of commands");
    let rows = table_rows();
    let mut wrong = Vec::new();
    for command in commands {
        let name = command["command"].as_str().unwrap();
        let Some(row) = rows.get(name) else {
            wrong.push(format!("{name}: no row in docs/commands.md"));
            continue;
        };
        for field in command["fields"].as_array().unwrap() {
            let field_name = field["name"].as_str().unwrap();
            let named = format!("`{field_name}`");
            let Some(at) = row.find(&named) else {
                wrong.push(format!("{name}: field `{field_name}` is not in its row"));
                continue;
            };
            let default = &field["default"];
            if default.is_null() {
                continue;
            }
            let in_words = MACHINE_DEFAULTS.iter().find(|(c, f, _)| *c == name && *f == field_name).map(|m| m.2);
            let expected = match in_words {
                Some(words) => words.to_owned(),
                None => format!("({}", written(default, field["type"].as_str().unwrap_or(""))),
            };
            let after = &row[at + named.len()..];
            if !after.trim_start().starts_with(&expected) {
                let shown: String = after.chars().take(40).collect();
                wrong.push(format!("{name}: `{field_name}` should read `{expected}...`, the row has `{shown}`"));
            }
        }
    }
    let known: Vec<&str> = commands.iter().filter_map(|c| c["command"].as_str()).collect();
    for name in rows.keys() {
        if !known.contains(&name.as_str()) {
            wrong.push(format!("{name}: a row for a command the agent does not have"));
        }
    }
    assert!(wrong.is_empty(), "docs/commands.md disagrees with GET /commands:\n{}", wrong.join("\n"));
}

#[test]
fn every_field_of_every_command_is_described() {
    let catalogue = catalogue();
    let mut missing = Vec::new();
    for command in catalogue["commands"].as_array().unwrap() {
        let name = command["command"].as_str().unwrap();
        if command["description"].as_str().is_none_or(|d| d.trim().is_empty()) {
            missing.push(name.to_owned());
        }
        for field in command["fields"].as_array().unwrap() {
            if field["description"].as_str().is_none_or(|d| d.trim().is_empty()) {
                missing.push(format!("{name}: {}", field["name"]));
            }
        }
    }
    assert!(missing.is_empty(), "no description: {missing:?}");
}

/// Every command's defaults parse: a body with no data passes `scenario check` (the commands' own parsers,
/// offline, nothing run) for every command that has no required field, and is refused naming the field for
/// those that have one. A command the catalogue marks `ends_process` is refused against a local swarm.
#[test]
fn every_command_s_defaults_parse_and_a_missing_required_field_is_named() {
    let catalogue = catalogue();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("defaults.yaml");
    let check = |target: &str, command: &str| {
        let scenario = format!("name: defaults\ntarget: {target}\nsteps:\n  - exec: {{command: {command}}}\n");
        std::fs::write(&file, scenario).unwrap();
        let out =
            std::process::Command::new(crate::common::BIN).args(["scenario", "check"]).arg(&file).output().unwrap();
        (
            out.status.success(),
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)),
        )
    };
    let mut ending = 0;
    for command in catalogue["commands"].as_array().unwrap() {
        let name = command["command"].as_str().unwrap();
        let required: Vec<&str> = command["schema"]["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        // Checked, never sent: nothing listens on port 9.
        let (ok, said) = check("{agent: 'http://127.0.0.1:9'}", name);
        if required.is_empty() {
            assert!(ok, "{name}: its defaults do not parse: {said}");
        } else {
            assert!(!ok, "{name}: accepted without {required:?}");
            let named = required.iter().any(|field| said.contains(field));
            assert!(named, "{name}: the refusal names none of {required:?}: {said}");
        }
        if command["ends_process"] == true {
            ending += 1;
            let (ok, said) = check("{local: 1}", name);
            assert!(!ok && said.contains("would kill the local swarm"), "{name} against a local swarm: {said}");
        }
    }
    assert_eq!(ending, 4, "faults/segfault, panic, abort and exit end the process");
}

/// The experiments' tables in docs/experiments.md are generated from their committed
/// results (`scripts/experiments.sh tables`), never typed: each generated block must be what the command it
/// names prints now.
#[test]
fn the_experiments_tables_are_what_their_results_say() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let experiments_doc = generated_tables_are_current(root, "docs/experiments.md");
    let experiments = std::fs::read_dir(root.join("scenarios/experiments"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "yaml"))
        .count();
    assert_eq!(experiments_doc, experiments, "one generated table per experiment");
}

/// The README is the front door for every reader: what it is, the two commands, a tour and links. Tables of
/// figures and references live in docs/ by reader; a README that grows past this has taken in a guide.
#[test]
fn the_readme_stays_short() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let lines = readme.lines().count();
    assert!(lines <= 250, "README.md has {lines} lines: move the detail into docs/ (at most 250)");
    assert!(!readme.contains("<!-- generated"), "generated tables belong in docs/, not the README");
}

/// Checks every generated block of `doc`; how many there are.
fn generated_tables_are_current(root: &std::path::Path, doc_name: &str) -> usize {
    let doc = std::fs::read_to_string(root.join(doc_name)).unwrap();
    let marker = "<!-- generated by scripts/experiments.sh tables: tarsier ";
    let mut blocks = 0;
    for (at, _) in doc.match_indices(marker) {
        let rest = &doc[at + marker.len()..];
        let (args, body) = rest.split_once(" -->\n").unwrap();
        let (committed, _) = body.split_once("<!-- end generated -->").unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_tarsier"))
            .args(args.split_whitespace())
            .current_dir(root)
            .output()
            .unwrap();
        assert!(out.status.success(), "{args}: {}", String::from_utf8_lossy(&out.stderr));
        let generated = String::from_utf8(out.stdout).unwrap();
        assert_eq!(
            committed.trim_end(),
            generated.trim_end(),
            "{doc_name}'s table from `tarsier {args}` is stale: run scripts/experiments.sh tables"
        );
        blocks += 1;
    }
    blocks
}

/// Every relative link in the README, ARCHITECTURE.md and docs/ names a file that exists and, with a
/// `#fragment` into Markdown, a heading there (GitHub's anchors): moving a section must move its links too.
#[test]
fn every_relative_link_in_the_docs_leads_somewhere() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs = vec![root.join("README.md"), root.join("ARCHITECTURE.md")];
    docs.extend(
        crate::common::files_in(&root.join("docs")).into_iter().filter(|p| p.extension().is_some_and(|x| x == "md")),
    );
    let mut broken = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for target in markdown_links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() { doc.clone() } else { doc.parent().unwrap().join(path) };
            let name = doc.strip_prefix(root).unwrap().display().to_string();
            if !file.exists() {
                broken.push(format!("{name}: {target} (no such file)"));
            } else if !fragment.is_empty() && file.extension().is_some_and(|x| x == "md") {
                let headings = std::fs::read_to_string(&file).unwrap();
                if !headings.lines().filter(|l| l.starts_with('#')).any(|l| anchor_of(l) == fragment) {
                    broken.push(format!("{name}: {target} (no such heading)"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "links that lead nowhere:\n{}", broken.join("\n"));
}

/// The targets of `[text](target)` links outside code blocks.
fn markdown_links(text: &str) -> Vec<String> {
    let mut links = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            links.push(after[..end].to_owned());
            rest = &after[end..];
        }
    }
    links
}

/// GitHub's anchor for a heading line: lower case, punctuation but `-` and `_` dropped, spaces as `-`.
fn anchor_of(heading: &str) -> String {
    heading
        .trim_start_matches('#')
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}
