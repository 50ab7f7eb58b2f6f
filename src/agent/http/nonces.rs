//! The nonces of signed requests an agent took from its peers (`signed.rs`), so a captured copy cannot be
//! sent again.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::credentials::{Signed, MAX_CLOCK_SKEW_MS};

/// The most nonces remembered at once: a minute of 3,000 signed requests a second. Each is ~40 bytes.
const MAX_NONCES: usize = 200_000;

/// Nonces of signed requests taken, each until its signature could no longer be accepted anyway.
#[derive(Default)]
pub struct SeenNonces(Mutex<HashMap<[u8; 16], u64>>);

/// Why a signed request's nonce was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum Unseen {
    Replayed,
    Full,
}

impl SeenNonces {
    /// Takes the nonce if it was not seen before. When the table is full, the expired nonces go first; if
    /// it is still full, the request is refused rather than a nonce forgotten early (which would let a
    /// replay through).
    pub fn first_time(&self, signed: Signed, now_ms: u64) -> Result<(), Unseen> {
        let mut seen = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains_key(&signed.nonce) {
            return Err(Unseen::Replayed);
        }
        if seen.len() >= MAX_NONCES {
            seen.retain(|_, forget_at| *forget_at >= now_ms);
            if seen.len() >= MAX_NONCES {
                return Err(Unseen::Full);
            }
        }
        seen.insert(signed.nonce, signed.expires_at_ms.saturating_add(MAX_CLOCK_SKEW_MS));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nonce_is_taken_once() {
        let seen = SeenNonces::default();
        let signed = Signed { nonce: [7; 16], expires_at_ms: 1_000 };
        assert_eq!(seen.first_time(signed, 500), Ok(()));
        assert_eq!(seen.first_time(signed, 600), Err(Unseen::Replayed));
        assert_eq!(seen.first_time(Signed { nonce: [8; 16], ..signed }, 600), Ok(()));
    }
}
