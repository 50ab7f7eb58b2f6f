//! What crosses the network between a client and an agent, or between agents: the command body (`body`),
//! the answers (`answer`), how a command ended (`status`), the JSON error (`error`) and the headers tarsier
//! defines. Both sides use
//! these types; neither side's internals belong here.

pub mod address;
pub mod agent_status;
pub(crate) mod answer;
pub mod body;
pub mod browsers;
pub mod error;
pub mod status;

/// A client's name for its request (1 to 64 of `A-Z a-z 0-9 _ -`, like a wave id; anything else is ignored):
/// the job it starts carries it, so `GET /jobs` shows the client its job's progress while it waits.
pub const REQUEST_ID: &str = "tarsier-request-id";
