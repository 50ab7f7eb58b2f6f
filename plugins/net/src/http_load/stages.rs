//! Load stages: one load that changes its rate (open model) or its concurrency (closed model) over time on
//! the same connections, each stage ramping linearly from the previous target to its own or stepping to it,
//! as k6's ramping executors, Locust's shapes and Gatling's ramps do. Re-running the load as separate rounds
//! hides the transition a tester wants to see: where latency turns, when an autoscaler reacts.
//!
//! In rate mode request `n` is due when the integral of the rate reaches `n`: within a stage the rate is
//! `r0 + (r1 - r0) t / d`, so its count is `r0 t + (r1 - r0) t^2 / 2d`, and the due time solves that
//! quadratic. In closed mode worker `i` works while `i` is below the rounded target concurrency.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use tarsier_plugin::schemars::JsonSchema;

/// How a stage gets from the previous target to its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ramp {
    /// Linearly over the stage.
    #[default]
    Linear,
    /// At once, at the stage's start.
    Step,
}

/// What the stages change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StageKind {
    Rate,
    Concurrency,
}

/// One stage, checked: its length, the target it ramps from and to.
#[derive(Debug, Clone, Copy)]
struct Segment {
    /// When it starts and how long it lasts, in seconds from the load's start.
    start: f64,
    length: f64,
    from: f64,
    to: f64,
    /// Rate mode: requests due before the stage starts.
    count_before: f64,
}

impl Segment {
    fn value_at(&self, offset: f64) -> f64 {
        let x = ((offset - self.start) / self.length).clamp(0.0, 1.0);
        self.from + (self.to - self.from) * x
    }

    fn count(&self) -> f64 {
        (self.from + self.to) / 2.0 * self.length
    }
}

/// The stages of one load.
#[derive(Debug, Clone)]
pub(crate) struct Stages {
    pub(crate) kind: StageKind,
    segments: Vec<Segment>,
    ramps: Vec<Ramp>,
}

/// A stage's place and targets, for the answer (each stage's figures carry it) and the progress.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
pub struct StageInfo {
    /// 1-based, as people count.
    pub stage: usize,
    /// `rate` or `concurrency`.
    pub of: StageKind,
    /// `linear` or `step`.
    pub ramp: Ramp,
    pub from: f64,
    pub to: f64,
    pub start_s: f64,
    pub duration_s: f64,
}

impl Stages {
    /// `start` is the target the first stage ramps from; `stages` are (duration, target, ramp).
    pub(crate) fn new(kind: StageKind, start: f64, stages: &[(Duration, f64, Ramp)]) -> Self {
        let mut segments = Vec::with_capacity(stages.len());
        let (mut at, mut previous, mut count) = (0.0, start, 0.0);
        for (duration, target, ramp) in stages {
            let from = if *ramp == Ramp::Step { *target } else { previous };
            let segment = Segment { start: at, length: duration.as_secs_f64(), from, to: *target, count_before: count };
            count += segment.count();
            at += segment.length;
            previous = *target;
            segments.push(segment);
        }
        Self { kind, segments, ramps: stages.iter().map(|s| s.2).collect() }
    }

    pub(crate) fn len(&self) -> usize {
        self.segments.len()
    }

    pub(crate) fn total(&self) -> Duration {
        Duration::from_secs_f64(self.segments.last().map_or(0.0, |s| s.start + s.length))
    }

    pub(crate) fn info(&self, index: usize) -> StageInfo {
        let s = self.segments[index];
        StageInfo {
            stage: index + 1,
            of: self.kind,
            ramp: self.ramps[index],
            from: s.from,
            to: s.to,
            start_s: s.start,
            duration_s: s.length,
        }
    }

    /// The stage running at `offset` from the load's start (the last one past the end).
    pub(crate) fn stage_at(&self, offset: Duration) -> usize {
        let t = offset.as_secs_f64();
        self.segments.iter().rposition(|s| s.start <= t).unwrap_or(0)
    }

    /// The target (rate or concurrency) at `offset`.
    pub(crate) fn target_at(&self, offset: Duration) -> f64 {
        let t = offset.as_secs_f64();
        self.segments[self.stage_at(offset)].value_at(t)
    }

    /// Rate mode: how many requests are due in the whole load.
    pub(crate) fn total_due(&self) -> u64 {
        let count = self.segments.last().map_or(0.0, |s| s.count_before + s.count());
        // Request n exists when it is due before the end: n < count.
        count.ceil().max(0.0) as u64
    }

    /// Rate mode: when request `n` is due, from the load's start, and its stage; `None` past the last.
    pub(crate) fn due(&self, n: u64) -> Option<(Duration, usize)> {
        let n = n as f64;
        let index = self.segments.iter().rposition(|s| s.count_before <= n)?;
        let s = &self.segments[index];
        let want = n - s.count_before;
        if want >= s.count() {
            return None;
        }
        // r0 x + a x^2 / 2 = want, a = (r1 - r0) / d.
        let a = (s.to - s.from) / s.length;
        let x = if a.abs() < 1e-12 {
            want / s.from
        } else {
            (-s.from + (s.from * s.from + 2.0 * a * want).max(0.0).sqrt()) / a
        };
        Some((Duration::from_secs_f64(s.start + x.clamp(0.0, s.length)), index))
    }

    /// Rate mode: how many requests are due before `offset`.
    pub(crate) fn due_before(&self, offset: Duration) -> u64 {
        let t = offset.as_secs_f64();
        let Some(s) = self.segments.iter().rfind(|s| s.start <= t) else { return 0 };
        let x = (t - s.start).min(s.length);
        let a = (s.to - s.from) / s.length;
        (s.count_before + s.from * x + a * x * x / 2.0).ceil().max(0.0) as u64
    }

    /// Rate mode: the numbers of stage `index`'s requests.
    pub(crate) fn requests_of(&self, index: usize) -> std::ops::Range<u64> {
        let s = &self.segments[index];
        (s.count_before.ceil() as u64)..((s.count_before + s.count()).ceil() as u64)
    }

    /// Closed mode: the most workers any moment asks for.
    pub(crate) fn max_concurrency(&self) -> u32 {
        self.segments.iter().map(|s| s.from.max(s.to)).fold(0.0, f64::max).round() as u32
    }

    /// Closed mode: whether worker `i` (0-based) works at `offset`.
    pub(crate) fn active(&self, worker: u32, offset: Duration) -> bool {
        f64::from(worker) < self.target_at(offset).round()
    }

    /// Closed mode: the first offset at or after `offset` when worker `i` works; `None` when it never does again.
    pub(crate) fn next_active(&self, worker: u32, offset: Duration) -> Option<Duration> {
        let t = offset.as_secs_f64();
        // Worker i works while the target rounds to more than i, i.e. the target is at least i + 0.5.
        let need = f64::from(worker) + 0.5;
        for s in self.segments.iter().filter(|s| s.start + s.length > t) {
            let from_here = s.value_at(t.max(s.start));
            if from_here >= need {
                return Some(Duration::from_secs_f64(t.max(s.start)));
            }
            if s.to > s.from && s.to >= need {
                let x = (need - s.from) / (s.to - s.from) * s.length;
                return Some(Duration::from_secs_f64((s.start + x).max(t)));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn a_linear_ramp_sends_the_integral_of_its_rate_and_due_times_follow_it() {
        // 1,000/s to 20,000/s over 10 s: 105,000 requests.
        let stages = Stages::new(StageKind::Rate, 1_000.0, &[(secs(10), 20_000.0, Ramp::Linear)]);
        assert_eq!(stages.total_due(), 105_000);
        let (first, _) = stages.due(0).unwrap();
        assert_eq!(first, Duration::ZERO);
        // In the first second 1,000 + 1,900/2 = 1,950 are due; request 1,950 is at 1 s.
        let (at, stage) = stages.due(1_950).unwrap();
        assert!((at.as_secs_f64() - 1.0).abs() < 1e-6, "{at:?}");
        assert_eq!(stage, 0);
        assert!(stages.due(105_000).is_none());
        // Every second gets the integral of the rate over it.
        let per_second: Vec<u64> = (0..10)
            .map(|s| (0..105_000u64).filter(|n| stages.due(*n).unwrap().0.as_secs() == s).count() as u64)
            .collect();
        for (s, count) in per_second.iter().enumerate() {
            let want = 1_000.0 + 1_900.0 * (s as f64 + 0.5);
            assert!((*count as f64 - want).abs() <= 1.0, "second {s}: {count}, want {want}");
        }
    }

    #[test]
    fn steps_and_stages_follow_each_other() {
        let stages = Stages::new(
            StageKind::Rate,
            0.0,
            &[(secs(2), 100.0, Ramp::Step), (secs(2), 300.0, Ramp::Linear), (secs(1), 0.0, Ramp::Step)],
        );
        // 200 + (100 + 300) / 2 * 2 + 0.
        assert_eq!(stages.total_due(), 600);
        assert_eq!(stages.due(100).unwrap(), (secs(1), 0));
        assert_eq!(stages.requests_of(1), 200..600);
        assert_eq!(stages.due_before(secs(3)), 200 + 100 + 50);
        assert_eq!(stages.due_before(secs(60)), 600);
        assert_eq!(stages.requests_of(2), 600..600);
        assert_eq!(stages.stage_at(Duration::from_millis(4_500)), 2);
        assert_eq!(stages.info(1).from, 100.0);
        assert_eq!(stages.total(), secs(5));
    }

    #[test]
    fn workers_join_and_leave_with_the_target_concurrency() {
        let stages =
            Stages::new(StageKind::Concurrency, 1.0, &[(secs(10), 11.0, Ramp::Linear), (secs(5), 2.0, Ramp::Step)]);
        assert_eq!(stages.max_concurrency(), 11);
        assert!(stages.active(0, Duration::ZERO) && !stages.active(1, Duration::ZERO));
        // Worker 5 joins when 1 + t reaches 5.5.
        let joins = stages.next_active(5, Duration::ZERO).unwrap();
        assert!((joins.as_secs_f64() - 4.5).abs() < 1e-9, "{joins:?}");
        assert!(stages.active(5, Duration::from_secs(5)));
        // In the last stage only 2 work, and worker 5 never again.
        assert!(!stages.active(5, Duration::from_secs(11)));
        assert_eq!(stages.next_active(5, Duration::from_secs(11)), None);
        assert_eq!(stages.next_active(1, Duration::from_secs(11)), Some(Duration::from_secs(11)));
    }
}
