use std::net::SocketAddr;
use std::time::SystemTime;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tarsier_plugin::{CancelFlag, DataError, Place, Reservation, Slots, Target};
use tokio::net::{TcpStream, UdpSocket};

/// `tcp` and `udp` take either address family; `tcp4`, `tcp6`, `udp4`, `udp6` one only, as Go's networks
/// (the reference passed `network` to Go's dialer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
    Tcp4,
    Tcp6,
    Udp4,
    Udp6,
    /// Go's other networks, named so that a body written for the reference gets the reason it is refused
    /// rather than "unknown variant".
    Unix,
    Unixgram,
    Unixpacket,
    Ip,
    Ip4,
    Ip6,
}

impl Protocol {
    /// Why tarsier does not dial this network, for the ones it refuses.
    pub fn refused_because(self) -> Option<&'static str> {
        match self {
            Protocol::Unix | Protocol::Unixgram | Protocol::Unixpacket => Some(
                "Unix sockets are refused: limits.dial_targets cannot fence them, and any client could then \
                 open the agent host's own sockets (Docker's, systemd's); dial a TCP or UDP address",
            ),
            Protocol::Ip | Protocol::Ip4 | Protocol::Ip6 => Some(
                "raw IP sockets are refused: they need CAP_NET_RAW and carry no connection to hold; dial tcp or udp",
            ),
            _ => None,
        }
    }

    pub fn is_udp(self) -> bool {
        matches!(self, Protocol::Udp | Protocol::Udp4 | Protocol::Udp6)
    }

    pub fn family(self) -> Option<crate::targets::IpFamily> {
        use crate::targets::IpFamily;
        match self {
            Protocol::Tcp4 | Protocol::Udp4 => Some(IpFamily::V4),
            Protocol::Tcp6 | Protocol::Udp6 => Some(IpFamily::V6),
            _ => None,
        }
    }
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
