//! A scenario's steady state (Chaos Toolkit's hypothesis): checks that must hold before the first step, and
//! hold again within `recover_within` after the teardown.

use std::time::{Duration, Instant};

use crate::guard::{Check, Reading, Sources};

/// How often the checks are read again while the system recovers.
const RECOVERY_POLL: Duration = Duration::from_secs(1);

/// Reads every check once: what each read when all hold, or what broke. No data does not hold: a steady
/// state nobody can see is not one.
pub async fn hold_once(sources: &Sources, checks: &[Check]) -> Result<String, String> {
    let mut said = Vec::new();
    let mut broken = Vec::new();
    for check in checks {
        match sources.read(check).await {
            Reading::Holds { shown, .. } => said.push(format!("{}: {shown}", check.name)),
            reading => broken.push(format!("{}: {} (want {})", check.name, reading.shown(), check.threshold())),
        }
    }
    if broken.is_empty() {
        Ok(said.join("; "))
    } else {
        Err(broken.join("; "))
    }
}

/// Reads the checks every second until they all hold, for at most `within`.
pub async fn recover(sources: &Sources, checks: &[Check], within: Duration) -> Result<String, String> {
    let started = Instant::now();
    loop {
        let last = match hold_once(sources, checks).await {
            Ok(said) => return Ok(format!("held again after {:.1}s: {said}", started.elapsed().as_secs_f64())),
            Err(why) => why,
        };
        if started.elapsed() >= within {
            return Err(format!(
                "did not recover: still broken after waiting {:.1}s (recover_within {}): {last}",
                started.elapsed().as_secs_f64(),
                tarsier_plugin::HumanDuration(within)
            ));
        }
        tokio::time::sleep(RECOVERY_POLL.min(within.saturating_sub(started.elapsed()))).await;
    }
}
