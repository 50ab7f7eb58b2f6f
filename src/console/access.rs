//! Who may use the console. A person signs in once by typing the swarm's token into a form (a POST: it never
//! reaches a URL, a history or a log) and gets a session cookie (`HttpOnly`, `SameSite=Strict`, random, for
//! 12 hours); a program (`scenario run --console`) sends the token as `Authorization: Bearer`. A console
//! started without a token (a swarm without one) lets everyone who reaches it in, and says so on the page.
//! Every request also passes the agents' browser rule (`wire::browsers`), with the console's own pages let in.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap, HeaderValue};

use crate::credentials::Token;

/// The session cookie's name.
pub const COOKIE: &str = "tarsier_console";
/// How long a session lasts.
const SESSION_FOR: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at most; past it the oldest go.
const SESSIONS_MAX: usize = 256;

pub struct Access {
    token: Option<Token>,
    sessions: Mutex<HashMap<String, Instant>>,
}

impl Access {
    pub fn new(token: Option<Token>) -> Self {
        Self { token, sessions: Mutex::default() }
    }

    /// No token: everyone is let in.
    pub fn is_open(&self) -> bool {
        self.token.is_none()
    }

    /// A person (a valid session cookie) or a program (the bearer token), or anyone when open.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(token) = &self.token else { return true };
        if token.accepts(headers.get(header::AUTHORIZATION)) {
            return true;
        }
        let Some(session) = session_of(headers) else { return false };
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        match sessions.get(&session) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                sessions.remove(&session);
                false
            }
            None => false,
        }
    }

    /// The `Set-Cookie` of a new session when `typed` is the token; `None` otherwise.
    pub fn sign_in(&self, typed: &str) -> Option<HeaderValue> {
        let token = self.token.as_ref()?;
        if !token.accepts_text(typed) {
            return None;
        }
        let id = format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>());
        let mut sessions = self.sessions.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        sessions.retain(|_, until| *until > now);
        if sessions.len() >= SESSIONS_MAX {
            if let Some(oldest) = sessions.iter().min_by_key(|(_, until)| **until).map(|(id, _)| id.clone()) {
                sessions.remove(&oldest);
            }
        }
        sessions.insert(id.clone(), now + SESSION_FOR);
        HeaderValue::from_str(&format!(
            "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
            SESSION_FOR.as_secs()
        ))
        .ok()
    }

    /// Ends the session the request carries; the cookie that clears it.
    pub fn sign_out(&self, headers: &HeaderMap) -> HeaderValue {
        if let Some(session) = session_of(headers) {
            self.sessions.lock().unwrap_or_else(|p| p.into_inner()).remove(&session);
        }
        HeaderValue::from_static("tarsier_console=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0")
    }
}

fn session_of(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_opens_a_session_and_nothing_else_does() {
        let access = Access::new(Some(Token::new("console-token-0123456789abcdef").unwrap()));
        assert!(access.sign_in("wrong").is_none());
        let cookie = access.sign_in("console-token-0123456789abcdef\n").unwrap();
        let cookie = cookie.to_str().unwrap();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
        let pair = cookie.split(';').next().unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(&format!("other=1; {pair}")).unwrap());
        assert!(access.admits(&headers));
        access.sign_out(&headers);
        assert!(!access.admits(&headers), "a session ends when its person signs out");
        let mut forged = HeaderMap::new();
        forged.insert(header::COOKIE, HeaderValue::from_str(&format!("{COOKIE}={}", "a".repeat(64))).unwrap());
        assert!(!access.admits(&forged));
        let mut program = HeaderMap::new();
        program.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer console-token-0123456789abcdef"));
        assert!(access.admits(&program));
        assert!(Access::new(None).admits(&HeaderMap::new()), "no token: open");
    }
}
