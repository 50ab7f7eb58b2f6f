//! The swarm's secrets as files on disk: the bearer token (`token`) and the TLS certificates and keys (`tls`).
//! Both sides read them: the agent to check and present them, the client to present them. The check itself
//! (a request without the token is refused) is the agent's gate (`agent::http::auth`).

pub mod tls;
mod token;

pub use token::{Token, MAX_TOKEN_FILE};
