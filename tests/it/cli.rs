//! The command line as a user meets it: exit statuses that keep "it failed" (1) apart from "the input or
//! the setup is wrong" (2), `--report` that fails fast, output for people and for programs, colour only on
//! a terminal, completions and a man page.

use crate::common;
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::{ChildAgent, BIN};
use serde_json::Value;

fn tarsier(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env_remove("NO_COLOR").output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn body_file(dir: &tempfile::TempDir, name: &str, body: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, body).unwrap();
    path.display().to_string()
}

#[test]
fn exit_statuses_tell_a_failure_from_a_bad_input_or_setup() {
    let agent = ChildAgent::spawn();
    let dir = tempfile::tempdir().unwrap();
    let ok = body_file(&dir, "ok.yaml", "command: sleep/sleep\ndata: {duration: 10ms}\n");
    let bad = body_file(&dir, "bad.yaml", "command: sleep/sleep\ndata: {duraton: 10ms}\n");
    let refused = body_file(&dir, "refused.yaml", "command: faults/exit\ndata: {code: 300}\n");

    let out = tarsier(&["exec", &agent.public, &ok]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let stdout = text(&out.stdout);
    assert!(stdout.contains("sleep/sleep on") && stdout.contains(": ok in"), "{stdout}");
    assert!(stdout.contains("slept_ms"), "{stdout}");
    assert!(!stdout.contains('\x1b'), "no colour when stdout is a pipe: {stdout:?}");

    // A misspelled field: exit 2, and the field named.
    let out = tarsier(&["exec", &agent.public, &bad]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stdout).contains("FAILED (400") && text(&out.stdout).contains("data.duraton"), "{out:?}");
    let out = tarsier(&["exec", &agent.public, &refused]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");

    // Nobody listening: exit 2 and the cause, not a bare "error sending request".
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let out = tarsier(&["exec", &format!("http://{closed}"), &ok]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("Connection refused"), "{}", text(&out.stderr));

    // A file that is not there: exit 2.
    let out = tarsier(&["exec", &agent.public, "/nonexistent/body.yaml"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn a_cancelled_command_exits_1() {
    let agent = ChildAgent::spawn();
    let dir = tempfile::tempdir().unwrap();
    let long = body_file(&dir, "long.yaml", "command: sleep/sleep\ndata: {duration: 30s}\n");
    let child = Command::new(BIN)
        .args(["exec", "--output", "json", &agent.public, &long])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    assert!(common::eventually(Duration::from_secs(10), || agent.runtime()["running_jobs"] == 1));
    let out = tarsier(&["abort", "--local", &agent.public]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let summary = text(&out.stdout);
    assert!(summary.contains("aborted this agent") && summary.contains("1 job(s) cancelled"), "{summary}");
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["status"], "cancelled");
}

/// `tarsier abort` says what it released in units a person reads, and `--json` prints the answer itself.
#[test]
fn abort_prints_what_it_released_or_the_json_answer() {
    let agent = ChildAgent::spawn();
    let (status, answer) = agent.exec("command: heavy_load/gobble_ram\ndata: {size: 8MiB}\n");
    assert_eq!(status, 200, "{answer}");
    let out = tarsier(&["abort", "--local", &agent.public]);
    let summary = text(&out.stdout);
    assert!(out.status.success() && summary.contains("released 8.0 MiB of RAM"), "{summary}");
    let out = tarsier(&["abort", "--local", "--json", &agent.public]);
    let answer: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["status"], "ok", "{answer}");
    assert!(answer["wave_id"].is_string(), "{answer}");
}

#[test]
fn report_without_a_reporting_wave_fails_at_once_and_report_keeps_the_timeout() {
    let agent = ChildAgent::spawn();
    let dir = tempfile::tempdir().unwrap();
    let plain = body_file(&dir, "plain.yaml", "command: sleep/sleep\ndata: {duration: 10ms}\n");
    let started = std::time::Instant::now();
    let out = tarsier(&["exec", "--report", &agent.public, &plain]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(text(&out.stderr).contains("wave: {report: true}"), "{}", text(&out.stderr));
    assert!(started.elapsed() < common::patient(Duration::from_secs(5)), "it polled for {:?}", started.elapsed());

    // The wave report in JSON: two documents, the answer and the report.
    let wave = body_file(&dir, "wave.yaml", "command: sleep/sleep\ndata: {duration: 10ms}\nwave: {report: true}\n");
    let out = tarsier(&["exec", "--report", "--output", "json", "--timeout", "20s", &agent.public, &wave]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let documents: Vec<Value> = text(&out.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(documents.len(), 2, "{documents:?}");
    assert_eq!(documents[1]["executions"], 1);
}

#[test]
fn commands_lists_the_catalogue_as_a_table_or_json() {
    let agent = ChildAgent::spawn();
    let out = tarsier(&["commands", &agent.service]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let table = text(&out.stdout);
    for word in ["heavy_load/gobble_ram", "size (64MiB)", "dummy/say_hello", "persistent_storage/write"] {
        assert!(table.contains(word), "no {word} in:\n{table}");
    }
    let out = tarsier(&["commands", "--json", &agent.service]);
    let catalogue: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(catalogue["commands"].as_array().unwrap().len() >= 18);
}

#[test]
fn completions_and_a_man_page_come_from_the_binary() {
    let out = tarsier(&["completions", "bash"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains("complete -F") && text(&out.stdout).contains("exec"), "{out:?}");
    let out = tarsier(&["completions", "zsh"]);
    assert!(text(&out.stdout).contains("#compdef tarsier"));
    let out = tarsier(&["man"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).contains(".TH tarsier"), "{}", text(&out.stdout));
}

/// On a terminal (a pseudo-terminal from util-linux's `script`), FAILED is red and a live line shows what
/// runs; with NO_COLOR it is plain. Skipped where `script` is missing.
#[test]
fn colour_and_a_live_line_on_a_terminal_only() {
    if Command::new("script").arg("--version").output().is_err() {
        println!("skipped: no `script` to make a pseudo-terminal");
        return;
    }
    let agent = ChildAgent::spawn();
    let dir = tempfile::tempdir().unwrap();
    let bad = body_file(&dir, "bad.yaml", "command: sleep/sleep\ndata: {duraton: 10ms}\n");
    let slow = body_file(&dir, "slow.yaml", "command: sleep/sleep\ndata: {duration: 1500ms}\n");
    let on_terminal = |cmd: String, no_color: bool| {
        let mut script = Command::new("script");
        script.args(["-qec", &cmd, "/dev/null"]).env("TERM", "xterm");
        if no_color {
            script.env("NO_COLOR", "1");
        } else {
            script.env_remove("NO_COLOR");
        }
        text(&script.output().unwrap().stdout)
    };
    let coloured = on_terminal(format!("{BIN} exec {} {bad}", agent.public), false);
    assert!(coloured.contains("\x1b[1m\x1b[31mFAILED") || coloured.contains("\x1b[31m"), "{coloured:?}");
    let plain = on_terminal(format!("{BIN} exec {} {bad}", agent.public), true);
    assert!(plain.contains("FAILED") && !plain.contains("\x1b[31m"), "{plain:?}");
    let live = on_terminal(format!("{BIN} exec {} {slow}", agent.public), false);
    assert!(live.contains("sleep/sleep on http://"), "no live line: {live:?}");
    // Once the job is found, the line says how long it ran of how long it was asked to.
    assert!(live.contains(" / 1.50 s, ") && live.contains(" left"), "no elapsed / total: {live:?}");
}

/// Limits come from flags and `TARSIER_*` variables too, and every refused body leaves one log line with the
/// client's address, the status and the field.
#[test]
fn limits_from_flags_and_the_environment_and_a_log_line_per_refused_body() {
    let agent = ChildAgent::spawn_with(common::Spawn {
        args: &["--max-connections", "3"],
        env: &[("TARSIER_MAX_RAM", "16MiB")],
        ..Default::default()
    });
    let (status, answer) = agent.exec("command: heavy_load/gobble_ram\ndata: {size: 24MiB}\n");
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("limits.max_ram"), "{answer}");
    let (status, answer) = agent.exec("command: net/dial\ndata: {address: '127.0.0.1:9', count: 5}\n");
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("limits.max_connections"), "{answer}");
    let (status, _) = agent.exec("command: sleep/sleep\ndata: {duraton: 1s}\n");
    assert_eq!(status, 400);
    let logged = common::eventually(Duration::from_secs(5), || {
        let log = agent.log_text();
        log.contains("refused a command body") && log.contains("data.duraton") && log.contains("127.0.0.1:")
    });
    assert!(logged, "{}", agent.log_text());
    let refusals = agent.log_text().matches("refused a command body").count();
    assert_eq!(refusals, 3, "one line per refused body: {}", agent.log_text());
}

/// A scenario's exec step shows a live line with its title while it runs (on a terminal: `script` makes one).
#[test]
fn a_scenario_step_has_a_live_line_on_a_terminal() {
    if Command::new("script").arg("--version").output().is_err() {
        println!("skipped: no `script` to make a pseudo-terminal");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = body_file(
        &dir,
        "live.yaml",
        "name: live\ntarget: {local: 2}\nsteps:\n  - name: a slow step\n    exec: {command: sleep/sleep, data: {duration: 1200ms}}\n",
    );
    let cmd = format!("{BIN} scenario run {file}");
    let out = Command::new("script").args(["-qec", &cmd, "/dev/null"]).env("TERM", "xterm").output().unwrap();
    let terminal = text(&out.stdout);
    // The spinner redraws the title (with the time so far) before the step's result line.
    let live = terminal.find("a slow step 0s").or_else(|| terminal.find("a slow step 1s"));
    let done = terminal.find("] a slow step (");
    assert!(live.is_some() && live < done, "{terminal:?}");
}

/// `tarsier jobs`, `tarsier job` and `tarsier cancel`: a running job is listed with its elapsed time, shown
/// whole, and cancelled; cancelling it again says it has finished.
#[test]
fn jobs_job_and_cancel_follow_a_detached_job() {
    let agent = ChildAgent::spawn();
    let (status, answer) = agent.exec("command: sleep/sleep\ndata: {duration: 60s}\ndetach: true\n");
    assert_eq!(status, 202, "{answer}");
    let id = answer["job_id"].as_u64().unwrap().to_string();
    std::thread::sleep(Duration::from_millis(300));
    let out = tarsier(&["jobs", &agent.public]);
    let listed = text(&out.stdout);
    assert!(out.status.success() && listed.starts_with("1 running") && listed.contains("sleep/sleep"), "{listed}");
    assert!(listed.contains(" s"), "elapsed seconds: {listed}");
    let out = tarsier(&["jobs", "--json", &agent.public]);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(json["running"][0]["elapsed_ms"].as_u64().unwrap() >= 300, "{json}");
    let out = tarsier(&["job", &agent.public, &id]);
    assert!(text(&out.stdout).contains(&format!("job {id}: sleep/sleep running")), "{out:?}");
    let out = tarsier(&["cancel", &agent.public, &id]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(common::eventually(Duration::from_secs(5), || agent.runtime()["running_jobs"] == 0));
    let out = tarsier(&["cancel", &agent.public, &id]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(text(&out.stdout).contains("already finished"), "{out:?}");
}
