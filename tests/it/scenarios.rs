//! `tarsier scenario`: the library checks, the smoke scenario runs, expectations against a real Prometheus hold
//! or fail with the right exit status, and bad files are refused with their line.

use crate::common;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use crate::common::prometheus::Prometheus;
use crate::common::{eventually, ChildAgent, BIN};

fn scenario(args: &[&str], files: &[&Path]) -> Output {
    Command::new(BIN).arg("scenario").args(args).args(files).output().unwrap()
}

fn text(out: &Output) -> String {
    format!("{}\n{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

fn yaml_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn library() -> Vec<PathBuf> {
    yaml_files("scenarios")
}

#[test]
fn every_experiment_is_valid_and_opens_with_its_question() {
    let files = yaml_files("scenarios/experiments");
    assert_eq!(files.len(), 11, "{files:?}");
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let out = scenario(&["check"], &refs);
    assert!(out.status.success(), "{}", text(&out));
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(text.starts_with("# Question: "), "{file:?} must open with the question it answers");
        assert!(text.contains("teardown:"), "{file:?} must remove what it set up, whatever happens");
        // Your service, not ours: the service under test is a parameter, tarsier's agent its default. Except
        // where tarsier itself is what is measured (the agent's CPU spin is the probe; the log shipper), which
        // the file says.
        if text.contains(" is what is measured here") || text.contains(" are what is measured here") {
            continue;
        }
        assert!(
            text.contains("\nparams:\n") && text.contains("  image: tarsier:latest"),
            "{file:?} takes no --param image"
        );
        assert!(text.contains("--image={{image}}"), "{file:?} does not deploy its `image` parameter");
    }
}

#[test]
fn every_library_scenario_is_valid_and_says_what_it_proves() {
    let files = library();
    assert!(files.len() >= 8, "{files:?}");
    let refs: Vec<&Path> = files.iter().map(PathBuf::as_path).collect();
    let out = scenario(&["check"], &refs);
    assert!(out.status.success(), "{}", text(&out));
    for file in &files {
        let first = std::fs::read_to_string(file).unwrap();
        assert!(first.starts_with("# "), "{file:?} must open with a comment saying what it proves");
        assert!(first.contains("Proves"), "{file:?} must say what it proves");
    }
}

#[test]
fn smoke_runs_green_and_writes_junit() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("smoke.xml");
    let smoke = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/smoke.yaml");
    let out = Command::new(BIN).args(["scenario", "run"]).arg(&smoke).arg("--junit").arg(&junit).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("0 failed, 0 skipped"), "{}", text(&out));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("<testsuite name=\"smoke\"") && xml.contains("failures=\"0\""), "{xml}");
}

/// The fault proxy's scenario, run whole against the local agent it starts: each phase's expectation on what
/// the clients see holds.
#[test]
fn the_slow_dependency_scenario_runs_green() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/slow-dependency.yaml");
    let out = scenario(&["run"], &[&file]);
    let text = text(&out);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("10 ok, 0 failed"), "{text}");
}

#[test]
fn bad_files_exit_2_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("name: x\ntarget: {local: 1}\nsteps:\n  - wait: 1s\n  - exce: {command: sleep/sleep}\n", "line 5"),
        ("name: x\ntarget: {local: 1}\nsteps:\n  - {wait: 1s, abort: {}}\n", "one action only"),
        ("name: x\ntarget: {local: 1}\nsteps:\n  - expect: {metric: x, is: 'about 3'}\n", "not a comparison"),
        ("name: x\ntarget: {local: 1}\nsteps:\n  - exec: {command: faults/segfault}\n", "kill the local swarm"),
        ("name: x\ntarget: {local: 1, agent: 'http://a:1'}\nsteps:\n  - wait: 1s\n", "exactly one of"),
        // Exec bodies are typed by the binary's own plugins.
        ("name: x\ntarget: {local: 1}\nsteps:\n  - exec: {command: sleep/nap}\n", "exec.command: unknown command"),
        (
            "name: x\ntarget: {local: 1}\nsteps:\n  - exec: {command: sleep/sleep, data: {duraton: 1s}}\n",
            "steps[0].exec.data.duraton: unknown field",
        ),
        (
            "name: x\ntarget: {local: 1}\nsteps:\n  - exec: {command: sleep/sleep, data: {duration: 5}}\n",
            "steps[0].exec.data.duration",
        ),
    ];
    for (i, (body, message)) in cases.iter().enumerate() {
        let file = dir.path().join(format!("bad-{i}.yaml"));
        std::fs::write(&file, body).unwrap();
        for verb in ["check", "run"] {
            let out = scenario(&[verb], &[&file]);
            assert_eq!(out.status.code(), Some(2), "{verb} {body}: {}", text(&out));
            assert!(text(&out).contains(message), "{verb} {body}: {}", text(&out));
        }
    }
}

/// JUnit that CI tools read: valid against the common schema (tests/junit.xsd, checked with xmllint from
/// scripts/xmllint.sh), with the same test cases whether the run passes or stops at its first step.
#[test]
fn junit_is_valid_and_counts_the_same_cases_when_a_run_fails_early() {
    let xmllint = common::find_tool("xmllint", "TARSIER_XMLLINT_BIN", "--version");
    let xsd = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/junit.xsd");
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, bound: &str| {
        let file = dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &file,
            format!(
                "name: {name}\ntarget: {{local: 2}}\nsteps:\n  - exec: {{command: sleep/sleep, data: {{duration: 1ms}}, \
                 expect: {{values: {{result.slept_ms: '{bound}'}}}}}}\n  - repeat: 2\n    steps:\n      - wait: 10ms\n      \
                 - parallel:\n          - exec: {{command: sleep/sleep, data: {{duration: 1ms}}}}\n          - wait: 1ms\n  \
                 - sweep: {{n: [1, 2]}}\n    steps:\n      - wait: 1ms\n"
            ),
        )
        .unwrap();
        let (junit, summary, csv) =
            (dir.path().join(format!("{name}.xml")), dir.path().join(format!("{name}.json")), dir.path().join("f.csv"));
        let out = Command::new(BIN)
            .args(["scenario", "run"])
            .arg(&file)
            .arg("--junit")
            .arg(&junit)
            .arg("--summary")
            .arg(&summary)
            .arg("--csv")
            .arg(&csv)
            .output()
            .unwrap();
        let lint = Command::new(&xmllint).args(["--noout", "--schema"]).arg(&xsd).arg(&junit).output().unwrap();
        assert!(lint.status.success(), "{name}: {}", String::from_utf8_lossy(&lint.stderr));
        let xml = std::fs::read_to_string(&junit).unwrap();
        let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
        (out.status.code(), xml.matches("<testcase ").count(), xml, summary)
    };
    let (passed, passed_cases, _, summary) = run("passes", ">= 0");
    assert_eq!(passed, Some(0));
    assert_eq!(summary["scenarios"][0]["figures"][0]["figure"], "result.slept_ms", "{summary}");
    let (failed, failed_cases, xml, _) = run("fails", "> 100000");
    assert_eq!(failed, Some(1));
    assert_eq!(passed_cases, failed_cases, "the same steps, whatever happened:\n{xml}");
    assert_eq!(
        passed_cases, 9,
        "1 exec + 2 rounds x (wait + exec + wait) + 2 sweep rounds x wait; groups are no cases:\n{xml}"
    );
    assert!(xml.contains("failures=\"1\"") && xml.contains("skipped=\"8\""), "{xml}");
    assert!(xml.contains("result.slept_ms=") && xml.contains("want &gt; 100000"), "the failure's text: {xml}");
}

/// A sweep runs its steps once per value with the value in place, and writes its table as CSV and JSON and
/// its chart as SVG next to the JUnit file; JUnit counts every round's steps, run or skipped.
#[test]
fn a_sweep_runs_once_per_value_and_writes_its_table_and_chart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sweep.yaml");
    let body = |bound: &str| {
        format!(
            "name: sweep\ntarget: {{local: 2}}\nsteps:\n  - name: sleep by length\n    sweep: {{ms: [1, 20, 40]}}\n    steps:\n\
             \x20     - run: 'echo {{{{ms}}}}'\n      - exec:\n          command: sleep/sleep\n\
             \x20         data: {{duration: '{{{{ms}}}}ms'}}\n          record: [result.slept_ms]\n\
             \x20         expect: {{values: {{result.slept_ms: '{bound}'}}}}\n"
        )
    };
    std::fs::write(&file, body(">= 0")).unwrap();
    let out_dir = dir.path().join("out");
    let out = Command::new(BIN).args(["scenario", "run"]).arg(&file).arg("--out").arg(&out_dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("sweep: sleep by length"), "{}", text(&out));
    let csv = std::fs::read_to_string(out_dir.join("sweep-sleep-by-length.csv")).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "ms,result.slept_ms", "{csv}");
    assert_eq!(rows.len(), 4, "{csv}");
    let slept: Vec<f64> = rows[1..].iter().map(|r| r.split(',').nth(1).unwrap().parse().unwrap()).collect();
    assert!(slept[0] < slept[1] && slept[1] < slept[2] && slept[2] >= 40.0, "the value went in: {slept:?}");
    let svg = std::fs::read_to_string(out_dir.join("sweep-sleep-by-length.svg")).unwrap();
    assert!(svg.starts_with("<svg") && svg.contains("slept_ms"), "{svg:.300}");
    // The chart drawn again from the sweep's JSON is the chart the run drew.
    std::fs::remove_file(out_dir.join("sweep-sleep-by-length.svg")).unwrap();
    let drawn = Command::new(BIN)
        .args(["scenario", "chart", "--write"])
        .arg(out_dir.join("sweep-sleep-by-length.json"))
        .output()
        .unwrap();
    assert_eq!(drawn.status.code(), Some(0), "{}", text(&drawn));
    assert_eq!(std::fs::read_to_string(out_dir.join("sweep-sleep-by-length.svg")).unwrap(), svg);
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["scenarios"][0]["sweeps"][0]["rows"].as_array().unwrap().len(), 3);
    let passed_cases = std::fs::read_to_string(out_dir.join("junit.xml")).unwrap().matches("<testcase ").count();
    assert_eq!(passed_cases, 6, "3 rounds x 2 steps");

    // The second round fails: the third is skipped step by step, and JUnit still has 6 cases.
    std::fs::write(&file, body("< 10")).unwrap();
    let out = Command::new(BIN).args(["scenario", "run"]).arg(&file).arg("--out").arg(&out_dir).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let xml = std::fs::read_to_string(out_dir.join("junit.xml")).unwrap();
    assert_eq!(xml.matches("<testcase ").count(), 6, "{xml}");
    assert!(xml.contains("skipped=\"2\""), "{xml}");
}

/// A step that finds the setup broken is a JUnit `error`, and only that step: a later step whose expectation
/// does not hold stays a `failure`. The run exits 2 (a broken setup wins over a failed expectation).
#[test]
fn junit_marks_only_the_broken_step_as_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mixed.yaml");
    std::fs::write(
        &file,
        "name: mixed\ntarget: {local: 1}\ncontinue_on_failure: true\nsteps:\n\
         \x20 - name: needs a token it was not given\n    exec: {command: sleep/sleep, data: {duration: '{{token}}'}}\n\
         \x20 - name: sleeps too little\n    exec: {command: sleep/sleep, data: {duration: 1ms}, expect: {values: {result.slept_ms: '> 100000'}}}\n",
    )
    .unwrap();
    let junit = dir.path().join("junit.xml");
    let out = Command::new(BIN).args(["scenario", "run"]).arg(&file).arg("--junit").arg(&junit).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("BROKEN") && text(&out).contains("FAILED"), "{}", text(&out));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("errors=\"1\"") && xml.contains("failures=\"1\""), "{xml}");
    let broken = xml.find("needs a token").unwrap();
    let failed = xml.find("sleeps too little").unwrap();
    let error_at = xml.find("<error").expect("an error element");
    let failure_at = xml.find("<failure").expect("a failure element");
    assert!(broken < error_at && error_at < failed && failed < failure_at, "the error is the first step's: {xml}");
}

/// An agent that cannot be reached is a broken setup (exit 2) with its cause, not a failed test (exit 1).
#[test]
fn an_unreachable_target_exits_2_with_the_cause() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let file = dir.path().join("unreachable.yaml");
    std::fs::write(
        &file,
        format!("name: x\ntarget: {{agent: 'http://{closed}'}}\nsteps:\n  - exec: {{command: sleep/sleep}}\n"),
    )
    .unwrap();
    let out = scenario(&["run"], &[&file]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("Connection refused"), "{}", text(&out));
}

/// A real Prometheus scrapes two child agents, one of them found through its own /sd (http_sd_configs).
#[test]
fn promql_expectations_hold_or_fail_against_a_real_prometheus() {
    let a = ChildAgent::spawn();
    let b = ChildAgent::spawn();
    let service = |agent: &ChildAgent| agent.service.trim_start_matches("http://").to_owned();
    let prometheus = Prometheus::start(&format!(
        "  - job_name: tarsier-sd\n    http_sd_configs: [{{url: '{}/sd', refresh_interval: 1s}}]\n  - job_name: tarsier-static\n    static_configs: [{{targets: ['{}']}}]\n",
        a.service,
        service(&b)
    ));
    assert!(eventually(Duration::from_secs(30), || prometheus.targets_up() == 2), "{}", prometheus.log());

    let dir = tempfile::tempdir().unwrap();
    let holds = dir.path().join("holds.yaml");
    std::fs::write(
        &holds,
        format!(
            "name: promql holds\ntarget: {{agent: '{}', service: '{}'}}\nprometheus: {}\nsteps:\n\
             \x20 - exec: {{command: heavy_load/gobble_ram, data: {{size: 8MiB}}}}\n\
             \x20 - expect: {{promql: 'sum(tarsier_held{{resource=\"ram_bytes\"}})', is: '>= 8388608', within: 30s}}\n\
             \x20 - expect: {{promql: 'count(up{{job=~\"tarsier.*\"}} == 1)', is: '== 2'}}\n",
            a.public, a.service, prometheus.url
        ),
    )
    .unwrap();
    let out = scenario(&["run"], &[&holds]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    // The run ends with an abort: what the scenario took is released.
    assert!(eventually(Duration::from_secs(5), || a.runtime()["held"]["ram_bytes"] == 0));

    let fails = dir.path().join("fails.yaml");
    std::fs::write(
        &fails,
        format!(
            "name: promql fails\ntarget: {{agent: '{}', service: '{}'}}\nprometheus: {}\nsteps:\n\
             \x20 - expect: {{promql: 'sum(tarsier_held{{resource=\"ram_bytes\"}})', is: '> 1e12', within: 2s}}\n\
             \x20 - wait: 1s\n",
            a.public, a.service, prometheus.url
        ),
    )
    .unwrap();
    let junit = dir.path().join("fails.xml");
    let out = Command::new(BIN).args(["scenario", "run"]).arg(&fails).arg("--junit").arg(&junit).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("want > 1000000000000"), "{}", text(&out));
    assert!(text(&out).contains("skipped"), "the steps after a failure are skipped: {}", text(&out));
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.contains("failures=\"1\"") && xml.contains("<skipped message="), "{xml}");

    // A guard on the same query: the RAM the step takes passes its bound, the guard trips within the wait,
    // and the abort releases the RAM.
    let guarded = dir.path().join("guarded.yaml");
    std::fs::write(
        &guarded,
        format!(
            "name: promql guard\ntarget: {{agent: '{}', service: '{}'}}\nprometheus: {}\n\
             guards:\n  - {{name: held ram, promql: 'sum(tarsier_held{{resource=\"ram_bytes\"}})', is: '< 4194304', interval: 250ms}}\n\
             steps:\n\
             \x20 - exec: {{command: heavy_load/gobble_ram, data: {{size: 8MiB}}}}\n\
             \x20 - wait: 60s\n",
            a.public, a.service, prometheus.url
        ),
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = scenario(&["run"], &[&guarded]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("stopped by guard `held ram`: the query = 8388608, want < 4194304"), "{}", text(&out));
    assert!(started.elapsed() < Duration::from_secs(50), "the guard did not stop the wait: {:?}", started.elapsed());
    assert!(eventually(Duration::from_secs(5), || a.runtime()["held"]["ram_bytes"] == 0));
}

#[test]
fn metric_expectations_and_probes_against_an_agent_target() {
    let agent = ChildAgent::spawn();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("agent.yaml");
    std::fs::write(
        &file,
        "name: agent target\ntarget: {agent: 'http://127.0.0.1:1'}\nsteps:\n\
         \x20 - exec: {command: storage/open_fd, data: {count: 3}, expect: {values: {result.opened: '== 3'}}}\n\
         \x20 - expect: {metric: 'tarsier_held{resource=\"files\"}', is: '== 3'}\n\
         \x20 - probe: {url: 'http://{{service}}/health', status: 200, within: 5s}\n\
         \x20 - probe: {url: 'http://{{service}}/nope', status: 200, within: 1s, fails: true}\n",
    )
    .unwrap();
    // --target and --service override the file's target.
    let out = Command::new(BIN)
        .args(["scenario", "run", "--target", &agent.public, "--service", &agent.service])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("result.opened=3"), "{}", text(&out));
    assert!(
        eventually(Duration::from_secs(5), || agent.runtime()["held"]["files"] == 0),
        "the final abort released the fds"
    );
}

/// A sweep's `compare:` holds or fails across its rounds, and a bad one is a bad file.
#[test]
fn sweep_comparisons_hold_or_fail_across_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("compare.yaml");
    let body = |comparison: &str| {
        format!(
            "name: compare\ntarget: {{local: 1}}\nsteps:\n  - sweep: {{ms: [5, 50]}}\n    compare: ['{comparison}']\n    steps:\n      \
             - exec: {{command: sleep/sleep, data: {{duration: '{{{{ms}}}}ms'}}, record: [result.slept_ms]}}\n"
        )
    };
    std::fs::write(&file, body("result.slept_ms at ms=50 >= 5x at ms=5")).unwrap();
    let out = scenario_run(&file);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains(">= 5x"), "{}", text(&out));
    std::fs::write(&file, body("result.slept_ms at ms=5 >= 2x at ms=50")).unwrap();
    let out = scenario_run(&file);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("does not hold"), "{}", text(&out));
    std::fs::write(&file, body("result.slept_ms at replicas=5 > 1")).unwrap();
    let out = scenario(&["check"], &[&file]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("compare[0]: `replicas` is no parameter of this sweep"), "{}", text(&out));
}

fn scenario_run(file: &Path) -> Output {
    Command::new(BIN).args(["scenario", "run"]).arg(file).output().unwrap()
}

/// A sweep's parameters keep the order written (the chart's x axis is the first one that varies, not the one
/// whose name sorts first), `rounds:` runs each round several times and keeps every run (the table shows the
/// median and range, the chart error bars), and a comparison naming a value `--sweep` removed is set aside
/// with a note instead of failing a run whose measurements all passed.
#[test]
fn sweep_rounds_keep_every_run_and_charts_follow_the_order_written() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rounds.yaml");
    std::fs::write(
        &file,
        "name: rounds\ntarget: {local: 1}\nsteps:\n  - name: naps\n    sweep: {ms: [5, 10, 20], concurrency: [2]}\n\
         \x20   rounds: 2\n    chart: {title: Does a nap last as long as asked?, ideal: [result.slept_ms]}\n\
         \x20   compare: ['result.slept_ms at ms=20 >= 1x at ms=5']\n    steps:\n\
         \x20     - exec:\n          command: sleep/sleep\n          data: {duration: '{{ms}}ms'}\n\
         \x20         record: [result.slept_ms]\n",
    )
    .unwrap();
    let out_dir = dir.path().join("out");
    let out = Command::new(BIN).args(["scenario", "run"]).arg(&file).arg("--out").arg(&out_dir).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("median and range of 2 runs"), "{}", text(&out));
    let csv = std::fs::read_to_string(out_dir.join("sweep-naps.csv")).unwrap();
    assert_eq!(csv.lines().next(), Some("ms,concurrency,result.slept_ms"), "the order written: {csv}");
    assert_eq!(csv.lines().count(), 1 + 3 * 2, "every run of every round: {csv}");
    let svg = std::fs::read_to_string(out_dir.join("sweep-naps.svg")).unwrap();
    for shown in [
        "Does a nap last as long as asked?",
        "ms (log2 scale)",
        "slept_ms (ms)",
        "median of 2 runs",
        "at concurrency=2",
    ] {
        assert!(svg.contains(shown), "{shown} in the chart");
    }
    let junit = std::fs::read_to_string(out_dir.join("junit.xml")).unwrap();
    assert!(junit.contains("ms=20 concurrency=2 run 2 of 2"), "each run is its own case: {junit}");
    // The chart as a person sees it (looked at before resolving): rendered by Chromium where there is one.
    if let Some(chromium) = common::chromium() {
        let png = common::screenshots_dir().join("sweep-rounds.png");
        let shot = Command::new(chromium)
            .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=800,440"])
            .arg(format!("--screenshot={}", png.display()))
            .arg(format!("file://{}", out_dir.join("sweep-naps.svg").display()))
            .output()
            .unwrap();
        assert!(png.exists(), "{}", String::from_utf8_lossy(&shot.stderr));
    }

    // --sweep removes ms=20: the comparison naming it is not checked, and says so; the run passes.
    let out = Command::new(BIN)
        .args(["scenario", "run", "--sweep", "ms=5,10", "--rounds", "1"])
        .arg(&file)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        text(&out).contains("not compared: `result.slept_ms at ms=20 >= 1x at ms=5` (ms=20 is not run: --sweep)"),
        "{}",
        text(&out)
    );
    let csv = std::fs::read_to_string(out_dir.join("sweep-naps.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 2, "--rounds 1 over the file's 2: {csv}");
    // A comparison naming a value no round has, without --sweep, is a typo: the file is refused at once.
    std::fs::write(&file, std::fs::read_to_string(&file).unwrap().replace("ms=20 >=", "ms=30 >=")).unwrap();
    let out = Command::new(BIN).args(["scenario", "check"]).arg(&file).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("no round has ms=30 (its values: 5, 10, 20)"), "{}", text(&out));
}

/// A `run:` step past its timeout (3 s: time for the shell to set its trap on a busy machine) ends its whole command, not only `sh`: a script's own child gets SIGTERM
/// (and may clean up: here it writes a file) instead of running on, orphaned, with whatever fault it installed.
#[test]
fn a_run_step_past_its_timeout_ends_the_command_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let (pid_file, cleaned) = (dir.path().join("pid"), dir.path().join("cleaned"));
    let file = dir.path().join("timeout.yaml");
    let inner =
        format!("trap \"touch {}; exit 0\" TERM; echo $$ > {}; sleep 60 & wait", cleaned.display(), pid_file.display());
    std::fs::write(
        &file,
        format!(
            "name: timeout\ntarget: {{local: 1}}\nsteps:\n  - run: {{command: 'sh -c ''{}''', timeout: 3s}}\n",
            inner.replace('\'', "''")
        ),
    )
    .unwrap();
    let out = scenario(&["run"], &[&file]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("did not end within 3s; killed"), "{}", text(&out));
    let pid: u32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
    let gone = eventually(Duration::from_secs(10), || {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        stat.is_empty() || stat.rsplit(')').next().unwrap_or("").trim_start().starts_with('Z')
    });
    assert!(gone, "the command's child still runs");
    assert!(cleaned.exists(), "the child got SIGTERM first and cleaned up");
}
