//! The agent's HTTP face: `listener` serves a socket (TLS, HTTP/1 and HTTP/2, connection bounds), `gate` is
//! what every request passes first (counting, request bounds, the browser check of `wire::browsers`, the token
//! check of `auth`, or the peer signature check of `signed`), `body` reads a body within bounds, `public`
//! holds the public port's routes (`/exec`, `/abort`, `/jobs`, `/waves`, `/membership`) and `service` the
//! service port's (`/health`, `/metrics`, `/commands`, `/runtime`, `/peers`), `toxiproxy` Toxiproxy's REST API
//! over the fault proxies (`proxy.api_listen`).

pub(crate) mod auth;
pub(crate) mod body;
pub(crate) mod gate;
pub(crate) mod listener;
pub(crate) mod nonces;
pub(crate) mod parse_errors;
pub mod public;
pub(crate) mod service;
pub(crate) mod signed;
pub(crate) mod toxiproxy;
