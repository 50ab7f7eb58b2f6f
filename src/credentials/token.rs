//! The swarm's bearer token: read from a file (`auth.token_file`, `--token-file`, `TARSIER_TOKEN_FILE`; a
//! Kubernetes Secret mounted as a file), checked for strength, sent as `Authorization: Bearer <token>`.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use axum::http::HeaderValue;
use subtle::ConstantTimeEq as _;

/// Shorter secrets are refused: a token is all that stands between the network and `faults/segfault`.
pub const MIN_TOKEN_LEN: usize = 16;
/// Longer ones are refused too (a header of that size is a mistake, not a secret).
pub const MAX_TOKEN_LEN: usize = 4096;
/// The largest token file read: the longest token and room for white space around it.
pub const MAX_TOKEN_FILE: u64 = 8 * 1024;

/// The swarm's shared secret.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(***)")
    }
}

impl Token {
    /// Reads the token from a file; surrounding white space (a trailing newline) is not part of it.
    /// A regular file of at most [`MAX_TOKEN_FILE`] bytes: a FIFO, a device or a large file is refused before
    /// it is read. One that others may read is said in a WARN, or refused when `strict_perms`.
    pub fn from_file(path: &Path, strict_perms: bool) -> anyhow::Result<Self> {
        let file = crate::sys::files::read_bounded(path, MAX_TOKEN_FILE, "token file")?;
        if file.world_readable && strict_perms {
            anyhow::bail!(
                "the token file {} is readable by every user of this machine (--strict-perms): chmod 600 it",
                path.display()
            );
        }
        if file.world_readable {
            tracing::warn!(
                file = %path.display(),
                "the token file is readable by every user of this machine: chmod 600 it (or 640 for a group)"
            );
        }
        Self::new(file.text.trim()).with_context(|| format!("the token in {}", path.display()))
    }

    pub fn new(text: &str) -> anyhow::Result<Self> {
        anyhow::ensure!(
            (MIN_TOKEN_LEN..=MAX_TOKEN_LEN).contains(&text.len()),
            "must be {MIN_TOKEN_LEN} to {MAX_TOKEN_LEN} characters long (it has {}); `openssl rand -hex 32` makes one",
            text.len()
        );
        anyhow::ensure!(
            text.bytes().all(|b| b.is_ascii_graphic()),
            "must be printable ASCII without spaces (it goes into an HTTP header)"
        );
        Ok(Self(text.into()))
    }

    /// The `Authorization` header value, marked sensitive so it never shows in debug output.
    pub fn bearer(&self) -> HeaderValue {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.0)).unwrap_or(HeaderValue::from_static(""));
        value.set_sensitive(true);
        value
    }

    /// The secret itself, for deriving the swarm key; never logged, never sent to a peer.
    pub(crate) fn secret(&self) -> &str {
        &self.0
    }

    /// True when `given` is this token, compared in constant time (a token typed into the console's form).
    pub fn accepts_text(&self, given: &str) -> bool {
        given.trim().as_bytes().ct_eq(self.0.as_bytes()).into()
    }

    /// True when `header` is `Bearer <this token>`, compared in constant time.
    pub fn accepts(&self, header: Option<&HeaderValue>) -> bool {
        let Some(given) = header.and_then(|h| h.as_bytes().strip_prefix(b"Bearer ")) else { return false };
        given.ct_eq(self.0.as_bytes()).into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_whole_and_weak_ones_refused() {
        let token = Token::new("0123456789abcdef0123").unwrap();
        assert!(token.accepts(Some(&HeaderValue::from_static("Bearer 0123456789abcdef0123"))));
        for wrong in [
            "Bearer 0123456789abcdef012",
            "Bearer 0123456789abcdef01234",
            "bearer 0123456789abcdef0123",
            "0123456789abcdef0123",
            "",
        ] {
            assert!(!token.accepts(Some(&HeaderValue::from_static(wrong))), "{wrong}");
        }
        assert!(!token.accepts(None));
        assert!(Token::new("short").is_err());
        assert!(Token::new("has a space in it, sadly").is_err());
        assert_eq!(format!("{token:?}"), "Token(***)");
    }
}
