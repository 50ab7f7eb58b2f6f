use std::net::SocketAddr;
use std::time::SystemTime;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tarsier_plugin::{CancelFlag, DataError, Place, Reservation, Slots, Target};
use tokio::net::{TcpStream, UdpSocket};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

pub enum Socket {
    Tcp(TcpStream),
    Udp(UdpSocket),
}

struct Conn {
    protocol: Protocol,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    since: SystemTime,
    _socket: Socket,
    /// Its share of `limits.max_connections`, given back when it is closed.
    _reserved: Reservation,
}

/// What `net/stats` shows of one connection.
#[derive(Debug, Serialize)]
pub struct ConnInfo {
    #[serde(flatten)]
    pub place: Place,
    pub protocol: Protocol,
    pub peer: String,
    pub local: Option<String>,
    pub since: String,
}

/// The open connections.
#[derive(Default)]
pub struct Connections(Slots<Conn>);

impl Connections {
    /// Holds a new connection unless its command was cancelled meanwhile (then it is closed at once).
    pub fn hold(
        &self,
        cancel: &CancelFlag,
        protocol: Protocol,
        peer: SocketAddr,
        socket: Socket,
        reserved: Reservation,
    ) -> Option<u64> {
        let local = match &socket {
            Socket::Tcp(s) => s.local_addr().ok(),
            Socket::Udp(s) => s.local_addr().ok(),
        };
        let conn = Conn { protocol, peer, local, since: SystemTime::now(), _socket: socket, _reserved: reserved };
        self.0.insert_unless(cancel, conn).ok()
    }

    /// Closes the connections of a command that was cancelled (those still open).
    pub fn discard(&self, indexes: &[u64]) -> u64 {
        self.0.remove_all(indexes).len() as u64
    }

    pub fn count(&self) -> u64 {
        self.0.len() as u64
    }

    pub fn list(&self) -> Vec<ConnInfo> {
        self.0.map(|place, c| ConnInfo {
            place,
            protocol: c.protocol,
            peer: c.peer.to_string(),
            local: c.local.map(|a| a.to_string()),
            since: humantime::format_rfc3339_millis(c.since).to_string(),
        })
    }

    /// Closes what `target` names and says how many; `None` for an index not open.
    pub fn close(&self, target: Target) -> Option<u64> {
        self.0.take(target).map(|closed| closed.len() as u64)
    }

    pub fn not_held(&self, target: Target) -> DataError {
        self.0.not_held(target, "connection")
    }
}
