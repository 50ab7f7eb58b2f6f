//! The agent's HTTP face: `listener` serves a socket (TLS, HTTP/1 and HTTP/2, connection bounds), `gate` is
//! what every request passes first (counting, request bounds, the token check of `auth`), `public` holds the
//! public port's routes (`/exec`, `/abort`, `/jobs`, `/waves`) and `service` the service port's (`/health`,
//! `/metrics`, `/commands`, `/runtime`).

pub(crate) mod auth;
pub(crate) mod browsers;
pub(crate) mod gate;
pub(crate) mod listener;
pub mod public;
pub(crate) mod service;
