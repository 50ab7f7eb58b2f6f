//! net: real TCP and UDP sockets to listeners the test owns on 127.0.0.1.

use crate::common;
use std::net::{TcpListener, UdpSocket};
use std::time::Duration;

use crate::common::{eventually, ChildAgent};

#[test]
fn dial_keeps_tcp_connections_open_until_closed() {
    let agent = ChildAgent::spawn();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let fds_before = agent.fd_count();
    let (status, answer) = agent.exec(&format!("command: net/dial\ndata: {{address: '{address}', count: 5}}\n"));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["opened"], 5);
    // The listener really has five connections waiting.
    listener.set_nonblocking(true).unwrap();
    let mut accepted = Vec::new();
    assert!(eventually(Duration::from_secs(5), || {
        while let Ok((stream, _)) = listener.accept() {
            accepted.push(stream);
        }
        accepted.len() == 5
    }));
    assert!(agent.fd_count() >= fds_before + 5);

    let (_, stats) = agent.exec("command: net/stats\n");
    let conns = stats["result"]["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 5);
    assert_eq!(conns[0]["peer"], address.to_string());
    assert_eq!(conns[0]["protocol"], "tcp");

    let (status, closed) = agent.exec("command: net/close\ndata: {index: 2}\n");
    assert_eq!(status, 200, "{closed}");
    assert_eq!(closed["result"]["held"], 4);
    let (_, closed) = agent.exec("command: net/close\n");
    assert_eq!(closed["result"]["closed"], 4);
    assert!(eventually(Duration::from_secs(5), || agent.fd_count() <= fds_before));
}

#[test]
fn dial_udp_and_dns_names() {
    let agent = ChildAgent::spawn();
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = udp.local_addr().unwrap().port();
    // `localhost` goes through the resolver, as a service name would.
    let (status, answer) =
        agent.exec(&format!("command: net/dial\ndata: {{address: 'localhost:{port}', protocol: udp, count: 3}}\n"));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["opened"], 3);
    let (_, stats) = agent.exec("command: net/stats\n");
    assert_eq!(stats["result"]["connections"][0]["protocol"], "udp");
}

#[test]
fn dial_to_a_closed_port_is_refused_and_holds_nothing() {
    let agent = ChildAgent::spawn();
    let port = common::fixed_port();
    // The listener is dropped: nothing listens on `port` any more.
    let (status, answer) = agent.exec(&format!("command: net/dial\ndata: {{address: '127.0.0.1:{port}', count: 2}}\n"));
    // 502: the target is what failed, not this machine's resources (507).
    assert_eq!(status, 502, "{answer}");
    assert_eq!(answer["status"], "unreachable", "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("refused"), "{answer}");
    assert_eq!(agent.runtime()["held"]["connections"], 0);
}

#[test]
fn connection_limit_is_a_400() {
    let agent =
        ChildAgent::spawn_with(common::Spawn { config: "limits:\n  max_connections: 3\n", ..Default::default() });
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (status, answer) = agent.exec(&format!("command: net/dial\ndata: {{address: '{address}', count: 4}}\n"));
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["field"], "data.count");
    assert!(answer["error"].as_str().unwrap().contains("limits.max_connections"));
}
