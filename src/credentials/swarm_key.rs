//! The swarm key: what agents prove membership and sign their requests to each other with, so the bearer
//! token never leaves the agent it was given to.
//!
//! The key is derived from the token (HMAC-SHA256 under the token of a fixed label): every agent given the
//! token has it, and nothing that travels (a proof, a signature) lets anyone recover the token or the key.
//! Three uses, each with a label of its own so that no output of one can stand for another:
//! - a **membership proof** for a Consul registration: a MAC of the instance's id, host and port (copying it
//!   to another address or id proves nothing);
//! - a **challenge answer**: a MAC of a nonce the asker chose and the answering agent's own address (a
//!   relay that forwards the challenge to a real agent gets an answer for that agent's address, not its own);
//! - a **request signature** on every copy, abort and report: a MAC of the method, the path, the body's
//!   SHA-256 (which holds the wave id), an expiry and a nonce; receivers refuse it once expired or seen.

use ring::hmac;
use subtle::ConstantTimeEq as _;

use super::Token;

/// The header a signed request carries: `v1 t=<expiry, Unix ms> n=<nonce, 32 hex> s=<MAC, 64 hex>`.
pub const SIGNATURE_HEADER: &str = "tarsier-signature";

/// How long a signature is good for. A copy is sent within seconds of being signed (3 attempts, 3 s each).
pub const SIGNATURE_LIFETIME_MS: u64 = 30_000;

/// How far apart two agents' clocks may be: a signature that expires later than now + lifetime + skew was
/// made by a clock too far ahead (or forged) and is refused; one that expired less than the skew ago is
/// still taken.
pub const MAX_CLOCK_SKEW_MS: u64 = 30_000;

/// The swarm's signing key.
#[derive(Clone)]
pub struct SwarmKey(hmac::Key);

impl std::fmt::Debug for SwarmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SwarmKey(***)")
    }
}

/// Why a signed request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is malformed (want `v1 t=<ms> n=<32 hex> s=<64 hex>`)")]
    Malformed,
    #[error("the signature expired {0} ms ago")]
    Expired(u64),
    #[error("the signature claims to be valid until {0} ms from now, beyond its lifetime and the allowed clock skew")]
    FromTheFuture(u64),
    #[error("the signature does not match the request")]
    Mismatch,
}

/// A verified signature's nonce and expiry, for the replay check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signed {
    pub nonce: [u8; 16],
    pub expires_at_ms: u64,
}

impl SwarmKey {
    pub fn from_token(token: &Token) -> Self {
        let outer = hmac::Key::new(hmac::HMAC_SHA256, token.secret().as_bytes());
        let derived = hmac::sign(&outer, b"tarsier swarm key v1");
        Self(hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()))
    }

    fn mac(&self, label: &str, parts: &[&[u8]]) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.0);
        context.update(label.as_bytes());
        for part in parts {
            // Each part with its length first: no two different lists of parts hash alike.
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        context.sign()
    }

    /// Whether `given_hex` is the MAC of `parts` under `label`, compared in constant time.
    fn check(&self, label: &str, parts: &[&[u8]], given_hex: &str) -> bool {
        from_hex(given_hex).is_some_and(|given| self.mac(label, parts).as_ref().ct_eq(&given).into())
    }

    /// The proof a Consul registration carries in its meta `tarsier_member`.
    pub fn membership_proof(&self, id: &str, host: &str, port: u16) -> String {
        hex(self.mac("member v1", &[id.as_bytes(), host.as_bytes(), port.to_string().as_bytes()]).as_ref())
    }

    pub fn accepts_membership(&self, id: &str, host: &str, port: u16, proof: &str) -> bool {
        self.check("member v1", &[id.as_bytes(), host.as_bytes(), port.to_string().as_bytes()], proof)
    }

    /// The answer to a challenge: `nonce` as the asker sent it, `address` this agent's own `host:port`.
    pub fn challenge_answer(&self, nonce: &str, address: &str) -> String {
        hex(self.mac("challenge v1", &[nonce.as_bytes(), address.as_bytes()]).as_ref())
    }

    pub fn accepts_challenge_answer(&self, nonce: &str, address: &str, answer: &str) -> bool {
        self.check("challenge v1", &[nonce.as_bytes(), address.as_bytes()], answer)
    }

    /// The signature header's value for a request, valid for [`SIGNATURE_LIFETIME_MS`] from `now_ms`.
    pub fn sign(&self, method: &str, path: &str, body: &[u8], now_ms: u64) -> String {
        let nonce: [u8; 16] = rand::random();
        let expires = now_ms + SIGNATURE_LIFETIME_MS;
        let tag = self.request_mac(method, path, body, expires, &nonce);
        format!("v1 t={expires} n={} s={}", hex(&nonce), hex(tag.as_ref()))
    }

    fn request_mac(&self, method: &str, path: &str, body: &[u8], expires: u64, nonce: &[u8]) -> hmac::Tag {
        let digest = ring::digest::digest(&ring::digest::SHA256, body);
        let expires = expires.to_string();
        self.mac("request v1", &[method.as_bytes(), path.as_bytes(), digest.as_ref(), expires.as_bytes(), nonce])
    }

    /// Checks a signature header against the request it came with. The replay check (a nonce seen before)
    /// is the caller's: it keeps the nonces until they expire.
    pub fn verify(
        &self,
        header: &str,
        method: &str,
        path: &str,
        body: &[u8],
        now_ms: u64,
    ) -> Result<Signed, SignatureError> {
        let (expires, nonce, given) = parse_header(header).ok_or(SignatureError::Malformed)?;
        if expires.saturating_add(MAX_CLOCK_SKEW_MS) < now_ms {
            return Err(SignatureError::Expired(now_ms - expires));
        }
        if expires > now_ms + SIGNATURE_LIFETIME_MS + MAX_CLOCK_SKEW_MS {
            return Err(SignatureError::FromTheFuture(expires - now_ms));
        }
        let tag = self.request_mac(method, path, body, expires, &nonce);
        if !bool::from(tag.as_ref().ct_eq(&given)) {
            return Err(SignatureError::Mismatch);
        }
        Ok(Signed { nonce, expires_at_ms: expires })
    }
}

fn parse_header(header: &str) -> Option<(u64, [u8; 16], Vec<u8>)> {
    let mut fields = header.split(' ');
    if fields.next()? != "v1" {
        return None;
    }
    let expires = fields.next()?.strip_prefix("t=")?.parse().ok()?;
    let nonce: [u8; 16] = from_hex(fields.next()?.strip_prefix("n=")?)?.try_into().ok()?;
    let tag = from_hex(fields.next()?.strip_prefix("s=")?).filter(|t| t.len() == 32)?;
    fields.next().is_none().then_some((expires, nonce, tag))
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    bytes.iter().flat_map(|b| [DIGITS[usize::from(b >> 4)] as char, DIGITS[usize::from(b & 0xf)] as char]).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if text.len() % 2 != 0 || text.len() > 128 {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(token: &str) -> SwarmKey {
        SwarmKey::from_token(&Token::new(token).unwrap())
    }

    #[test]
    fn a_signature_holds_for_its_request_only_and_only_while_fresh() {
        let (key, now) = (key("0123456789abcdef0123"), 1_700_000_000_000);
        let header = key.sign("POST", "/exec", b"{\"command\":\"x\"}", now);
        let signed = key.verify(&header, "POST", "/exec", b"{\"command\":\"x\"}", now + 1).unwrap();
        assert_eq!(signed.expires_at_ms, now + SIGNATURE_LIFETIME_MS);
        assert_eq!(key.verify(&header, "POST", "/abort", b"{\"command\":\"x\"}", now), Err(SignatureError::Mismatch));
        assert_eq!(key.verify(&header, "POST", "/exec", b"{\"command\":\"y\"}", now), Err(SignatureError::Mismatch));
        assert_eq!(key.verify(&header, "GET", "/exec", b"{\"command\":\"x\"}", now), Err(SignatureError::Mismatch));
        let late = now + SIGNATURE_LIFETIME_MS + MAX_CLOCK_SKEW_MS + 1;
        assert!(matches!(
            key.verify(&header, "POST", "/exec", b"{\"command\":\"x\"}", late),
            Err(SignatureError::Expired(_))
        ));
        let future = key.sign("POST", "/exec", b"", now + 10 * 60_000);
        assert!(matches!(key.verify(&future, "POST", "/exec", b"", now), Err(SignatureError::FromTheFuture(_))));
        let other = super::super::Token::new("another-token-of-the-swarm").unwrap();
        let stranger = SwarmKey::from_token(&other);
        assert_eq!(
            stranger.verify(&header, "POST", "/exec", b"{\"command\":\"x\"}", now),
            Err(SignatureError::Mismatch)
        );
        for malformed in
            ["", "v2 t=1 n=00 s=00", "v1 t=x n=00000000000000000000000000000000 s=00", &format!("{header} x")]
        {
            assert_eq!(key.verify(malformed, "POST", "/exec", b"", now), Err(SignatureError::Malformed), "{malformed}");
        }
        assert!(!header.contains("0123456789abcdef0123"), "the token never travels");
    }

    #[test]
    fn proofs_are_bound_to_what_they_prove() {
        let key = key("0123456789abcdef0123");
        let proof = key.membership_proof("agent-1", "10.0.0.1", 8080);
        assert!(key.accepts_membership("agent-1", "10.0.0.1", 8080, &proof));
        assert!(!key.accepts_membership("agent-1", "10.0.0.2", 8080, &proof), "another address");
        assert!(!key.accepts_membership("agent-2", "10.0.0.1", 8080, &proof), "another id");
        assert!(!key.accepts_membership("agent-1", "10.0.0.1", 8081, &proof), "another port");
        let answer = key.challenge_answer("n1", "10.0.0.1:8080");
        assert!(key.accepts_challenge_answer("n1", "10.0.0.1:8080", &answer));
        assert!(!key.accepts_challenge_answer("n1", "10.0.0.9:8080", &answer), "a relay's address");
        assert!(!key.accepts_challenge_answer("n2", "10.0.0.1:8080", &answer), "another nonce");
        assert!(!key.accepts_membership("agent-1", "10.0.0.1", 8080, &answer), "labels keep uses apart");
    }
}
