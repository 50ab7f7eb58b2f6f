use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
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
    index: u64,
    protocol: Protocol,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    since: SystemTime,
    _socket: Socket,
}

/// What `net/stats` shows of one connection.
#[derive(Debug, Serialize)]
pub struct ConnInfo {
    pub index: u64,
    pub protocol: Protocol,
    pub peer: String,
    pub local: Option<String>,
    pub since: String,
}

/// The open connections. Indexes are stable: closing one does not renumber the others.
#[derive(Default)]
pub struct Connections {
    inner: Mutex<(u64, Vec<Conn>)>,
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, (u64, Vec<Conn>)> {
        self.inner.lock().unwrap_or_else(|poison| poison.into_inner())
    }

    pub fn hold(&self, protocol: Protocol, peer: SocketAddr, socket: Socket) -> u64 {
        let local = match &socket {
            Socket::Tcp(s) => s.local_addr().ok(),
            Socket::Udp(s) => s.local_addr().ok(),
        };
        let mut inner = self.lock();
        let index = inner.0;
        inner.0 += 1;
        inner.1.push(Conn { index, protocol, peer, local, since: SystemTime::now(), _socket: socket });
        index
    }

    pub fn count(&self) -> u64 {
        self.lock().1.len() as u64
    }

    pub fn list(&self) -> Vec<ConnInfo> {
        self.lock()
            .1
            .iter()
            .map(|c| ConnInfo {
                index: c.index,
                protocol: c.protocol,
                peer: c.peer.to_string(),
                local: c.local.map(|a| a.to_string()),
                since: format_time(c.since),
            })
            .collect()
    }

    /// Closes one connection; false when no connection has that index.
    pub fn close(&self, index: u64) -> bool {
        let mut inner = self.lock();
        let before = inner.1.len();
        inner.1.retain(|c| c.index != index);
        inner.1.len() != before
    }

    pub fn close_all(&self) -> u64 {
        std::mem::take(&mut self.lock().1).len() as u64
    }

    pub fn indexes(&self) -> Vec<u64> {
        self.lock().1.iter().map(|c| c.index).collect()
    }
}

fn format_time(t: SystemTime) -> String {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    format!("{secs:.3}")
}
