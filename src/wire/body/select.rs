//! `wave.select`: which agents run a wave's command (its blast radius), and the agents' labels it selects
//! by. The rules of a label are Consul's for a meta key (where labels travel), so a label that works in a
//! config works in discovery too.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::wire::error::ApiError;

/// An agent's labels (`zone: b`), from its config and, for peers, from discovery.
pub type Labels = BTreeMap<String, String>;

/// The most labels an agent or a selection carries.
pub const MAX_LABELS: usize = 32;
/// A label's key: `A-Z a-z 0-9 _ -`, 1 to 48 characters (Consul allows 128 for a meta key, less `label_`).
pub const MAX_LABEL_KEY: usize = 48;
pub const MAX_LABEL_VALUE: usize = 256;
/// The most agents a selection names: a bound on the copy's size, far beyond the swarms tested (1,000).
pub const MAX_CHOSEN: usize = 10_000;
/// The longest address in `chosen`.
const MAX_ADDRESS: usize = 300;

/// `wave: {select: ...}`: `count` or `percent` of the agents whose labels match `labels` (all of them when
/// neither is given). The origin picks them at random among those it knows and sends each a copy itself.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Select {
    /// Exactly this many agents (fewer when fewer match; the answer says so).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// This share of the matching agents, rounded down, at least one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percent: Option<f64>,
    /// Every label given must be on the agent with that value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: Labels,
    /// Set by the origin: the public `host:port`s of the agents it chose. A copy goes only to them, and an
    /// agent not named here, or whose own labels do not match, refuses it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chosen: Vec<String>,
}

impl Select {
    pub fn validate(&self) -> Result<(), ApiError> {
        let bad = |field: &str, why: String| Err(ApiError::bad_request(Some(format!("wave.select.{field}")), why));
        match (self.count, self.percent) {
            (Some(_), Some(_)) => return bad("count", "wave.select: give `count` or `percent`, not both".into()),
            (Some(0), _) => return bad("count", "wave.select.count: must be at least 1".into()),
            (Some(n), _) if n as usize > MAX_CHOSEN => {
                return bad("count", format!("wave.select.count: {n} is over the bound of {MAX_CHOSEN} agents"))
            }
            (_, Some(p)) if !(p > 0.0 && p <= 100.0) => {
                return bad("percent", format!("wave.select.percent: {p} is not in (0, 100]"))
            }
            _ => {}
        }
        check_labels(&self.labels).map_err(|why| ApiError::bad_request(Some("wave.select.labels".into()), why))?;
        if self.chosen.len() > MAX_CHOSEN || self.chosen.iter().any(|a| a.is_empty() || a.len() > MAX_ADDRESS) {
            return bad(
                "chosen",
                format!("wave.select.chosen: at most {MAX_CHOSEN} addresses of 1 to {MAX_ADDRESS} characters"),
            );
        }
        Ok(())
    }

    /// How many of `matching` agents it selects.
    pub fn how_many(&self, matching: usize) -> usize {
        match (self.count, self.percent) {
            (Some(n), _) => (n as usize).min(matching),
            (None, Some(p)) => ((matching as f64 * p / 100.0).floor() as usize).clamp(1, matching.max(1)).min(matching),
            (None, None) => matching,
        }
    }

    /// What was asked, for a person: `count 3 of zone=b`.
    pub fn asked(&self) -> String {
        let how = match (self.count, self.percent) {
            (Some(n), _) => format!("count {n}"),
            (None, Some(p)) => format!("{p} %"),
            (None, None) => "all".to_owned(),
        };
        if self.labels.is_empty() {
            return how;
        }
        let labels: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{how} of {}", labels.join(","))
    }
}

/// Whether an agent with `labels` has every label `wanted` asks for.
pub fn labels_match(wanted: &Labels, labels: &Labels) -> bool {
    wanted.iter().all(|(key, value)| labels.get(key) == Some(value))
}

/// The bounds of a set of labels; the error names the label.
pub fn check_labels(labels: &Labels) -> Result<(), String> {
    if labels.len() > MAX_LABELS {
        return Err(format!("at most {MAX_LABELS} labels"));
    }
    labels.iter().try_for_each(|(key, value)| check_label(key, value))
}

/// The bounds of one label.
pub fn check_label(key: &str, value: &str) -> Result<(), String> {
    let key_fits = (1..=MAX_LABEL_KEY).contains(&key.len())
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !key_fits {
        return Err(format!(
            "label {:?}: a key is 1 to {MAX_LABEL_KEY} characters of A-Z, a-z, 0-9, `_` and `-`",
            key.chars().take(60).collect::<String>()
        ));
    }
    if value.len() > MAX_LABEL_VALUE || value.chars().any(char::is_control) {
        return Err(format!("label {key}: a value is at most {MAX_LABEL_VALUE} bytes, no control characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_selection_takes_its_share_and_no_more_than_there_is() {
        let select = |count: Option<u32>, percent: Option<f64>| Select { count, percent, ..Default::default() };
        assert_eq!(select(Some(3), None).how_many(20), 3);
        assert_eq!(select(Some(30), None).how_many(20), 20);
        assert_eq!(select(None, Some(30.0)).how_many(20), 6);
        assert_eq!(select(None, Some(1.0)).how_many(20), 1, "at least one");
        assert_eq!(select(None, Some(50.0)).how_many(0), 0);
        assert_eq!(select(None, None).how_many(7), 7);
        assert!(select(Some(1), Some(1.0)).validate().is_err());
        assert!(select(None, Some(0.0)).validate().is_err());
        assert!(select(None, Some(f64::NAN)).validate().is_err());
        assert!(select(Some(0), None).validate().is_err());
        let labels = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        assert!(labels_match(&labels(&[("zone", "b")]), &labels(&[("zone", "b"), ("rack", "1")])));
        assert!(!labels_match(&labels(&[("zone", "b")]), &labels(&[("zone", "a")])));
        assert!(check_labels(&labels(&[("zo ne", "b")])).is_err());
        assert!(check_labels(&labels(&[("zone", "b\n")])).is_err());
    }
}
