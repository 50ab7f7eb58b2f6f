//! The swarm's secrets as files on disk: the bearer token (`token`) and the TLS certificates and keys (`tls`);
//! and the swarm key derived from the token (`swarm_key`), which agents sign with instead of sending the token.
//! Both sides read them: the agent to check and present them, the client to present them. The check itself
//! (a request without the token is refused) is the agent's gate (`agent::http::auth`).

pub mod membership;
mod swarm_key;
pub mod tls;
mod token;

pub use swarm_key::{Signed, SwarmKey, MAX_CLOCK_SKEW_MS, SIGNATURE_HEADER};
pub use token::{Token, MAX_TOKEN_FILE};
