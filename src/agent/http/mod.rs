//! The agent's HTTP face: `listener` serves a socket (TLS, HTTP/1 and HTTP/2, connection bounds), `gate` is
//! what every request passes first (counting, request bounds, the token check of `auth`), `public` holds the
//! public port's routes (`/exec`, `/abort`, `/jobs`, `/waves`) and `service` the service port's (`/health`,
//! `/metrics`, `/commands`, `/runtime`).

pub mod auth;
pub mod gate;
pub mod listener;
pub mod public;
pub mod service;
