//! Blast radius: a wave's `select` runs the command on exactly the agents it asks for (a count, a percent,
//! labels, or labels and a count), once each, whatever `remain` and `buddies` say; the report names the
//! agents chosen and those that ran; a copy to an agent that was not chosen is refused; `/abort` still reaches
//! everyone.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{self, eventually, patient, SwarmProcess};

fn post(http: &reqwest::blocking::Client, url: &str, body: &Value) -> (u16, Value) {
    let response = http.post(url).json(body).send().unwrap();
    (response.status().as_u16(), response.json().unwrap())
}

/// Sends `select` with a short sleep to agent 0 and returns the names of the agents that ran it (from the
/// wave report, once every chosen agent reported) and the answer.
fn run_selected(swarm: &SwarmProcess, http: &reqwest::blocking::Client, wave: Value) -> (Vec<String>, Value) {
    let body = json!({"command": "sleep/sleep", "data": {"duration": "10ms"}, "wave": wave});
    let (status, answer) = post(http, &format!("{}/exec", swarm.public(0)), &body);
    assert_eq!(status, 200, "{answer}");
    let id = answer["wave_id"].as_str().unwrap();
    let chosen = answer["selection"]["chosen"].as_array().unwrap().len();
    let url = format!("{}/waves/{id}?entries=true", swarm.public(0));
    let mut report = Value::Null;
    let complete = eventually(patient(Duration::from_secs(10)), || {
        report = http.get(&url).send().unwrap().json().unwrap();
        report["executions"].as_u64() == Some(chosen as u64)
    });
    assert!(complete, "not every chosen agent reported: {report}");
    // A little longer: an execution beyond the selection (a bug) would show.
    std::thread::sleep(Duration::from_millis(300));
    let report: Value = http.get(&url).send().unwrap().json().unwrap();
    assert_eq!(report["executions"].as_u64(), Some(chosen as u64), "{report}");
    assert_eq!(report["selected_not_reported"], json!([]), "{report}");
    let ran: Vec<String> =
        report["entries"].as_array().unwrap().iter().map(|e| e["agent"].as_str().unwrap().to_owned()).collect();
    let distinct: BTreeSet<&String> = ran.iter().collect();
    assert_eq!(distinct.len(), ran.len(), "an agent ran it twice: {ran:?}");
    let selected: BTreeSet<&str> = report["selected"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    let reported: BTreeSet<&str> =
        report["entries"].as_array().unwrap().iter().map(|e| e["address"].as_str().unwrap()).collect();
    assert_eq!(selected, reported, "the agents that ran are the ones chosen");
    (ran, answer)
}

fn index_of(name: &str) -> usize {
    name.trim_start_matches("local-").parse().unwrap()
}

#[test]
fn a_selection_runs_on_exactly_the_agents_it_asks_for() {
    let swarm = SwarmProcess::start(20, &["--label", "zone=a,b"]);
    let http = common::http();
    // `remain` and `buddies` say "3 agents at most" and "everyone": neither changes who runs it.
    let (ran, answer) = run_selected(&swarm, &http, json!({"report": true, "remain": 0, "select": {"count": 3}}));
    assert_eq!(ran.len(), 3, "{ran:?}");
    assert_eq!(answer["selection"]["matched"], 20, "{answer}");
    assert!(["ok", "delegated"].contains(&answer["status"].as_str().unwrap()), "{answer}");

    let (ran, _) =
        run_selected(&swarm, &http, json!({"report": true, "remain": 8, "buddies": 5, "select": {"percent": 30}}));
    assert_eq!(ran.len(), 6, "{ran:?}");

    // `--label zone=a,b` deals a to even agents and b to odd ones.
    let (ran, answer) = run_selected(&swarm, &http, json!({"report": true, "select": {"labels": {"zone": "b"}}}));
    let ran: BTreeSet<usize> = ran.iter().map(|name| index_of(name)).collect();
    assert_eq!(ran, (1..20).step_by(2).collect(), "exactly the agents in zone b");
    assert_eq!(answer["status"], "delegated", "agent 0 is in zone a: it sends the copies and runs nothing");
    assert_eq!(answer["job_id"], Value::Null, "{answer}");

    let (ran, _) =
        run_selected(&swarm, &http, json!({"report": true, "select": {"labels": {"zone": "b"}, "count": 2}}));
    assert_eq!(ran.len(), 2);
    assert!(ran.iter().all(|name| index_of(name) % 2 == 1), "{ran:?}");

    // Labels nobody has: nobody runs it, and the answer says so.
    let body = json!({"command": "sleep/sleep", "wave": {"select": {"labels": {"zone": "z"}}}});
    let (status, answer) = post(&http, &format!("{}/exec", swarm.public(0)), &body);
    assert_eq!((status, &answer["status"]), (200, &json!("delegated")), "{answer}");
    assert_eq!(answer["selection"]["chosen"], json!([]), "{answer}");

    // A bad selection is a 400 that names the field, and the agent keeps serving.
    let bad = json!({"command": "sleep/sleep", "wave": {"select": {"count": 2, "percent": 10}}});
    let (status, answer) = post(&http, &format!("{}/exec", swarm.public(0)), &bad);
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["field"], "wave.select.count", "{answer}");
    let bad =
        json!({"command": "sleep/sleep", "data": {"duraton": "1s"}, "wave": {"select": {"labels": {"zone": "z"}}}});
    let (status, answer) = post(&http, &format!("{}/exec", swarm.public(0)), &bad);
    assert_eq!(status, 400, "the data is checked at the origin even when it runs nothing: {answer}");
}

#[test]
fn a_copy_to_an_agent_not_chosen_is_refused_and_abort_still_reaches_everyone() {
    let swarm = SwarmProcess::start(4, &["--label", "zone=a,b"]);
    let http = common::http();
    let copy = |to: u16, chosen: u16| {
        json!({"command": "sleep/sleep", "wave": {"hop": 1, "id": format!("forged{to}{chosen}"),
               "select": {"chosen": [format!("127.0.0.1:{}", swarm.base + chosen)]}}})
    };
    let (status, answer) = post(&http, &format!("{}/exec", swarm.public(2)), &copy(2, 3));
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["field"], "wave.select", "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("not in wave.select.chosen"), "{answer}");
    // Named, but its own labels say otherwise: what discovery said of an agent is checked where it runs.
    let mut labelled = copy(2, 2);
    labelled["wave"]["select"]["labels"] = json!({"zone": "b"});
    let (status, answer) = post(&http, &format!("{}/exec", swarm.public(2)), &labelled);
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("labels do not match"), "{answer}");

    // Every agent busy, then an abort whose body names a selection: it reaches all four anyway.
    let flood = json!({"command": "sleep/sleep", "data": {"duration": "60s"}, "detach": true,
                       "wave": {"remain": 4, "buddies": 3, "dedupe": true}});
    let (status, answer) = post(&http, &format!("{}/exec", swarm.public(0)), &flood);
    assert_eq!(status, 202, "{answer}");
    assert!(eventually(patient(Duration::from_secs(10)), || swarm.busy(&http) == 4), "the flood did not reach all");
    let abort = json!({"wave": {"select": {"count": 1}}});
    let (status, answer) = post(&http, &format!("{}/abort", swarm.public(0)), &abort);
    assert_eq!(status, 200, "{answer}");
    assert!(eventually(patient(Duration::from_secs(10)), || swarm.busy(&http) == 0), "the abort missed an agent");
}
