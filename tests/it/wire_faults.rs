//! Faults on the wire, seen from outside: every test makes two network namespaces joined by a veth pair
//! (192.0.2.1 and 192.0.2.2, TEST-NET-1, reachable from nowhere else), starts an agent in the first one (as a
//! sidecar shares a pod's namespace) and measures from the second what the agent's faults do to a service
//! next to it. Nothing touches the machine's own interfaces. Needs root and Debian's iproute2, nftables and
//! iptables; elsewhere each test prints one `skipped:` line.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{self, ChildAgent, Spawn};

const A: &str = "192.0.2.1";
const B: &str = "192.0.2.2";

/// Two namespaces made for one test, deleted with it (the agent's processes in them die first).
struct Namespaces {
    a: String,
    b: String,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

impl Namespaces {
    /// The pair, or `None` with a `skipped:` line where the machine cannot make it.
    fn new(test: &str) -> Option<Namespaces> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            println!("skipped: {test}: network namespaces need root");
            return None;
        }
        for tool in ["ip", "nft", "tc", "iptables-restore"] {
            if Command::new(tool).arg("-V").output().is_err() && Command::new(tool).arg("--version").output().is_err() {
                println!("skipped: {test}: `{tool}` is not installed (Debian's iproute2, nftables, iptables)");
                return None;
            }
        }
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}{n}", std::process::id());
        let pair = Namespaces { a: format!("twa{id}"), b: format!("twb{id}") };
        let script = format!(
            "set -e
ip netns add {a}; ip netns add {b}
ip link add va netns {a} type veth peer name vb netns {b}
ip -n {a} addr add {A}/24 dev va; ip -n {b} addr add {B}/24 dev vb
ip -n {a} link set va up; ip -n {b} link set vb up
ip -n {a} link set lo up; ip -n {b} link set lo up",
            a = pair.a,
            b = pair.b
        );
        let made = Command::new("sh").arg("-c").arg(&script).output().expect("sh");
        if !made.status.success() {
            println!("skipped: {test}: could not make network namespaces: {}", String::from_utf8_lossy(&made.stderr));
            return None;
        }
        Some(pair)
    }

    /// Runs `f` on a thread inside namespace `ns`: sockets and processes made there live in it.
    fn run<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let file = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("the namespace's file");
                    // SAFETY: setns on a namespace fd we hold, for this thread only (CLONE_NEWNET).
                    let entered = unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&file), libc::CLONE_NEWNET) };
                    assert_eq!(entered, 0, "setns into {ns}: {}", std::io::Error::last_os_error());
                    f()
                })
                .join()
                .expect("the namespace's thread")
        })
    }

    fn in_a<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        Self::run(&self.a, f)
    }

    fn in_b<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        Self::run(&self.b, f)
    }

    /// A shell command inside namespace `ns` (to read its rules).
    fn sh(ns: &str, command: &str) -> String {
        let out = Command::new("ip").args(["netns", "exec", ns, "sh", "-c", command]).output().expect("ip netns exec");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn traces_in_a(&self) -> String {
        Self::traces(&self.a)
    }

    /// Every trace of a tarsier fault in namespace `ns`: nft tables, iptables chains, htb roots, ifb devices.
    fn traces(ns: &str) -> String {
        let all = Self::sh(
            ns,
            "nft list tables; iptables-save -t filter; ip6tables-save -t filter; tc qdisc show; ip -o link show",
        );
        all.lines()
            .filter(|line| {
                line.contains("tarsier_p") || line.contains("TARSIER_P") || line.contains("htb") || line.contains("tfb")
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Spawns an agent in namespace A, public port on every address (so B reaches it, through the exemption).
    fn agent_in_a(&self, extra: &[&str]) -> ChildAgent {
        let mut args = vec!["--listen", "0.0.0.0:0", "--insecure-no-auth"];
        args.extend_from_slice(extra);
        self.in_a(|| ChildAgent::spawn_with(Spawn { args: &args, ..Default::default() }))
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn port_of(agent: &ChildAgent) -> u16 {
    agent.public.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port")
}

/// A TCP listener in the current namespace that accepts and answers nothing (the handshake is the kernel's).
fn listener(ip: &str) -> TcpListener {
    TcpListener::bind((ip, 0)).expect("bind")
}

/// The time TCP connects to `to` take (the handshake's round trip), each bounded by `timeout`; `None` for a
/// connect that failed.
fn connect_times(to: SocketAddr, count: usize, timeout: Duration) -> Vec<Option<Duration>> {
    (0..count)
        .map(|_| {
            let started = Instant::now();
            TcpStream::connect_timeout(&to, timeout).ok().map(|_| started.elapsed())
        })
        .collect()
}

fn median(times: &[Option<Duration>]) -> Duration {
    let mut ok: Vec<Duration> = times.iter().flatten().copied().collect();
    assert!(!ok.is_empty(), "every connect failed");
    ok.sort();
    ok[ok.len() / 2]
}

fn exec_detached(agent: &ChildAgent, yaml: &str) -> u64 {
    let (status, answer) = agent.exec(&format!("{yaml}\ndetach: true\n"));
    assert_eq!(status, 202, "{answer}");
    let id = answer["job_id"].as_u64().expect("a job id");
    // Installed once the job shows it in its progress.
    let installed = common::eventually(Duration::from_secs(5), || {
        let job = agent.get_json(&format!("{}/jobs/{id}", agent.public));
        !job["progress"]["installed"].is_null() || job["status"] != "running"
    });
    let job = agent.get_json(&format!("{}/jobs/{id}", agent.public));
    assert!(installed && job["status"] == "running", "the fault is not in force: {job}");
    id
}

fn faults_in_force(agent: &ChildAgent) -> Value {
    let (status, answer) = agent.exec("command: net/faults\n");
    assert_eq!(status, 200, "{answer}");
    answer["result"].clone()
}

#[test]
fn delay_is_seen_from_the_other_namespace_and_the_control_plane_is_not_delayed() {
    let Some(ns) = Namespaces::new("delay") else { return };
    let agent = ns.agent_in_a(&[]);
    let service = ns.in_a(|| listener(A));
    let service_addr = service.local_addr().unwrap();
    let control: SocketAddr = format!("{A}:{}", port_of(&agent)).parse().unwrap();
    let before = ns.in_b(|| median(&connect_times(service_addr, 5, Duration::from_secs(2))));

    let id = exec_detached(&agent, "command: net/delay\ndata: {delay: 40ms, duration: 1m}");
    // One delay engine per agent: a second is a conflict that says so.
    let (status, answer) = agent.exec("command: net/delay\ndata: {delay: 5ms, duration: 1m}\n");
    assert_eq!(status, 409, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("one per agent"), "{answer}");
    let delayed = ns.in_b(|| connect_times(service_addr, 9, Duration::from_secs(3)));
    let exempt = ns.in_b(|| connect_times(control, 5, Duration::from_secs(3)));
    let listed = faults_in_force(&agent);
    assert_eq!(listed["in_force"], 1, "{listed}");
    assert_eq!(listed["faults"][0]["installed"]["engine"], "nfqueue", "{listed}");
    assert!(listed["faults"][0]["time_left_ms"].as_u64().unwrap() > 30_000, "{listed}");
    assert!(listed["faults"][0]["so_far"]["packets_delayed"].as_u64().unwrap() >= 9, "{listed}");

    // The handshake's SYN-ACK leaves A 40 ms late: each connect takes at least that, the agent's port none of it.
    let delayed_median = median(&delayed);
    assert!(delayed_median >= Duration::from_millis(39), "delayed connects took {delayed:?} (before: {before:?})");
    assert!(delayed_median < Duration::from_millis(40) + common::patient(Duration::from_millis(100)), "{delayed:?}");
    assert!(median(&exempt) < Duration::from_millis(20), "the control plane was delayed: {exempt:?}");

    // DELETE /jobs/{id} undoes it within the plugin contract's 100 ms.
    let (status, text) = agent.request(reqwest::Method::DELETE, &format!("{}/jobs/{id}", agent.public));
    assert_eq!(status, 200, "{text}");
    let cancelled = Instant::now();
    assert!(common::eventually(Duration::from_secs(5), || {
        agent.get_json(&format!("{}/jobs/{id}", agent.public))["status"] != "running"
    }));
    assert!(cancelled.elapsed() < common::patient(Duration::from_millis(100) + Duration::from_millis(100)));
    let job = agent.get_json(&format!("{}/jobs/{id}", agent.public));
    assert_eq!(job["result"]["ended"], "cancelled", "{job}");
    assert_eq!(ns.traces_in_a(), "", "rules left after the cancel");
    let after = ns.in_b(|| median(&connect_times(service_addr, 5, Duration::from_secs(2))));
    assert!(after < Duration::from_millis(20), "still delayed after the cancel: {after:?}");
    assert_eq!(agent.runtime()["held"]["net_faults"], 0);
}

#[test]
fn loss_drops_its_share_of_packets_and_ends_with_its_duration() {
    let Some(ns) = Namespaces::new("loss") else { return };
    let agent = ns.agent_in_a(&[]);
    let receiver = ns.in_b(|| UdpSocket::bind((B, 0)).unwrap());
    // Every packet the rule did not drop must be counted here: a receive buffer that overflows while the
    // counting thread waits for a core (CI's other tests on the other one), or a gap longer than the read
    // timeout, would pass for the rule's drops. A 4 MiB buffer holds all 4,000 (root: the test makes
    // namespaces, so RcvBufForce may pass net.core.rmem_max).
    nix::sys::socket::setsockopt(&receiver, nix::sys::socket::sockopt::RcvBufForce, &(4 << 20)).unwrap();
    receiver.set_read_timeout(Some(common::patient(Duration::from_millis(600)))).unwrap();
    let to = receiver.local_addr().unwrap();
    let sender = ns.in_a(|| UdpSocket::bind((A, 0)).unwrap());

    exec_detached(&agent, "command: net/loss\ndata: {percent: 30, duration: 3s, traffic: {protocol: udp}}");
    const SENT: u64 = 4_000;
    let received = std::thread::scope(|scope| {
        let counting = scope.spawn(|| {
            let mut buffer = [0u8; 64];
            let mut received = 0u64;
            while receiver.recv(&mut buffer).is_ok() {
                received += 1;
            }
            received
        });
        for i in 0..SENT {
            sender.send_to(&i.to_be_bytes(), to).unwrap();
            if i % 200 == 0 {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        counting.join().unwrap()
    });
    // 30 % of 4,000: 1,200 dropped, sd 29; five sd either way.
    let dropped = SENT - received;
    assert!((1_055..=1_345).contains(&dropped), "dropped {dropped} of {SENT} at 30 %");
    let listed = faults_in_force(&agent);
    let matched = listed["faults"][0]["so_far"]["packets_matched"].as_u64().unwrap_or(0);
    assert_eq!(matched, dropped, "the table's counter disagrees with what was missing: {listed}");

    // It ends by itself: after its 3 s the table is gone and every packet gets through.
    assert!(common::eventually(Duration::from_secs(10), || ns.traces_in_a().is_empty()), "{}", ns.traces_in_a());
    for i in 0..100u64 {
        sender.send_to(&i.to_be_bytes(), to).unwrap();
    }
    let mut buffer = [0u8; 64];
    let mut after = 0;
    while receiver.recv(&mut buffer).is_ok() {
        after += 1;
    }
    assert_eq!(after, 100);
}

/// Bytes per second `read` took in from a TCP connection that `write` fills for `during`.
fn tcp_rate(sender_ns: &str, receiver_ns: &str, receiver_ip: &str, during: Duration) -> f64 {
    let server = Namespaces::run(receiver_ns, || listener(receiver_ip));
    let addr = server.local_addr().unwrap();
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut stream = Namespaces::run(sender_ns, || TcpStream::connect(addr).unwrap());
            let chunk = vec![7u8; 16 * 1024];
            let until = Instant::now() + during + Duration::from_millis(500);
            while Instant::now() < until && stream.write_all(&chunk).is_ok() {}
        });
        let (mut stream, _) = server.accept().unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buffer = vec![0u8; 64 * 1024];
        // Past the first burst (the bucket's depth and the socket buffers), then measured.
        let warm = Instant::now() + Duration::from_millis(300);
        while Instant::now() < warm {
            if stream.read(&mut buffer).unwrap_or(0) == 0 {
                break;
            }
        }
        let started = Instant::now();
        let mut bytes = 0usize;
        while started.elapsed() < during {
            match stream.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes += n,
            }
        }
        bytes as f64 / started.elapsed().as_secs_f64()
    })
}

#[test]
fn bandwidth_holds_egress_and_ingress_to_the_rate_asked() {
    let Some(ns) = Namespaces::new("bandwidth") else { return };
    let agent = ns.agent_in_a(&[]);
    let during = Duration::from_millis(1500);
    // 4 Mbit/s is 500,000 bytes/s; the payload is a little less (headers).
    for direction in ["egress", "ingress"] {
        let id = exec_detached(
            &agent,
            &format!(
                "command: net/bandwidth\ndata: {{rate: 4mbit, duration: 1m, traffic: {{direction: {direction}}}}}"
            ),
        );
        let rate = match direction {
            "egress" => tcp_rate(&ns.a, &ns.b, B, during),
            _ => tcp_rate(&ns.b, &ns.a, A, during),
        };
        assert!(rate < 500_000.0 * 1.1, "{direction}: {rate:.0} bytes/s through a 4 Mbit/s limit");
        assert!(rate > 500_000.0 * 0.5, "{direction}: only {rate:.0} bytes/s through a 4 Mbit/s limit");
        let (status, _) = agent.request(reqwest::Method::DELETE, &format!("{}/jobs/{id}", agent.public));
        assert_eq!(status, 200);
        assert!(common::eventually(Duration::from_secs(5), || ns.traces_in_a().is_empty()), "{}", ns.traces_in_a());
    }
    let free = tcp_rate(&ns.a, &ns.b, B, Duration::from_millis(500));
    assert!(free > 5_000_000.0, "the link did not come back: {free:.0} bytes/s");
}

#[test]
fn a_partition_drops_or_rejects_both_ways_and_spares_the_control_plane() {
    let Some(ns) = Namespaces::new("partition") else { return };
    let agent = ns.agent_in_a(&[]);
    let port = port_of(&agent);
    let (service_listener, outside_listener) = (ns.in_a(|| listener(A)), ns.in_b(|| listener(B)));
    let service = service_listener.local_addr().unwrap();
    let outside = outside_listener.local_addr().unwrap();
    // Reachable both ways before.
    assert!(ns.in_b(|| connect_times(service, 1, Duration::from_secs(2)))[0].is_some());
    assert!(ns.in_a(|| connect_times(outside, 1, Duration::from_secs(2)))[0].is_some());
    let control: SocketAddr = format!("{A}:{port}").parse().unwrap();

    // A control-plane port named outright is refused, saying why.
    let (status, answer) =
        agent.exec(&format!("command: net/partition\ndata: {{traffic: {{local_ports: [{port}]}}}}\n"));
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["field"], "data.traffic.local_ports", "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("cut_control_plane"), "{answer}");

    let id = exec_detached(
        &agent,
        &format!("command: net/partition\ndata: {{duration: 1m, traffic: {{remote: ['{B}', localhost]}}}}"),
    );
    let job = agent.get_json(&format!("{}/jobs/{id}", agent.public));
    let installed = &job["progress"]["installed"];
    assert_eq!(installed["engine"], "nftables", "{job}");
    assert!(
        installed["selection"]["resolved"].to_string().contains("127.0.0.1"),
        "host names resolved once, shown: {job}"
    );
    let short = Duration::from_millis(400);
    assert!(ns.in_b(|| connect_times(service, 2, short)).iter().all(Option::is_none), "B reached A's service");
    assert!(ns.in_a(|| connect_times(outside, 2, short)).iter().all(Option::is_none), "A reached B");
    assert!(
        ns.in_b(|| connect_times(control, 3, Duration::from_secs(2))).iter().all(Option::is_some),
        "the agent's port was cut"
    );
    let (status, _) = agent.post("/abort", "application/json", b"{\"local\": true}".to_vec());
    assert_eq!(status, 200);
    assert_eq!(ns.traces_in_a(), "");

    // reject: connections fail at once instead of hanging.
    exec_detached(
        &agent,
        &format!("command: net/partition\ndata: {{action: reject, duration: 1m, traffic: {{remote: ['{B}']}}}}"),
    );
    let refused = ns.in_b(|| {
        let started = Instant::now();
        let err = TcpStream::connect_timeout(&service, Duration::from_secs(3)).expect_err("the connect got through");
        (err.kind(), started.elapsed())
    });
    assert_eq!(refused.0, std::io::ErrorKind::ConnectionRefused, "{refused:?}");
    assert!(refused.1 < Duration::from_secs(1), "{refused:?}");
    let (status, _) = agent.post("/abort", "application/json", b"{\"local\": true}".to_vec());
    assert_eq!(status, 200);

    // cut_control_plane: the agent's own port is cut too, for 60 s at most.
    let (status, answer) = agent.exec(&format!(
        "command: net/partition\ndata: {{duration: 10m, cut_control_plane: true, traffic: {{remote: ['{B}']}}}}\ndetach: true\n"
    ));
    assert_eq!(status, 202, "{answer}");
    let id = answer["job_id"].as_u64().unwrap();
    assert!(common::eventually(Duration::from_secs(5), || {
        !agent.get_json(&format!("{}/jobs/{id}", agent.public))["progress"]["installed"].is_null()
    }));
    let job = agent.get_json(&format!("{}/jobs/{id}", agent.public));
    assert_eq!(job["progress"]["installed"]["duration_ms"], 60_000, "{job}");
    assert!(job["progress"]["installed"]["cut_control_plane"].as_str().unwrap().contains("capped at 60 s"), "{job}");
    assert!(ns.in_b(|| connect_times(control, 1, short))[0].is_none(), "the control plane was not cut");
    // The test reaches the agent over A's loopback, which no fault touches by default: the abort gets through.
    let (status, _) = agent.post("/abort", "application/json", b"{\"local\": true}".to_vec());
    assert_eq!(status, 200);
    assert!(ns.in_b(|| connect_times(control, 1, Duration::from_secs(2)))[0].is_some());
}

/// A DNS query (A record, recursion desired) for `name`, with id 0x7a51.
fn dns_query(name: &str) -> Vec<u8> {
    let mut packet = vec![0x7a, 0x51, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.extend_from_slice(&[0, 0, 1, 0, 1]);
    packet
}

/// Asks `server` from the current namespace: the answer's bytes, or `None` after `wait`.
fn ask(server: SocketAddr, name: &str, wait: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind((A, 0)).unwrap();
    socket.set_read_timeout(Some(wait)).unwrap();
    socket.send_to(&dns_query(name), server).unwrap();
    let mut buffer = [0u8; 512];
    let (len, from) = socket.recv_from(&mut buffer).ok()?;
    assert_eq!(from, server, "the answer must seem to come from the resolver asked");
    Some(buffer[..len].to_vec())
}

#[test]
fn dns_faults_answer_for_their_names_and_pass_the_others_to_the_resolver() {
    let Some(ns) = Namespaces::new("dns") else { return };
    let agent = ns.agent_in_a(&[]);
    // The "real" resolver, in B: it answers every query with an empty NOERROR answer.
    let resolver = ns.in_b(|| UdpSocket::bind((B, 53)).unwrap());
    let resolver_addr = resolver.local_addr().unwrap();
    resolver.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut buffer = [0u8; 512];
            while !stop.load(Ordering::Relaxed) {
                if let Ok((len, from)) = resolver.recv_from(&mut buffer) {
                    buffer[2] |= 0x80;
                    let _ = resolver.send_to(&buffer[..len], from);
                }
            }
        });
        let rcode = |answer: &Option<Vec<u8>>| answer.as_ref().map(|bytes| bytes[3] & 0x0f);
        let wait = Duration::from_secs(1);
        assert_eq!(rcode(&ns.in_a(|| ask(resolver_addr, "db.example", wait))), Some(0), "the resolver works before");

        let id = exec_detached(
            &agent,
            &format!("command: net/dns\ndata: {{names: [db.example], answer: nxdomain, upstream: '{resolver_addr}', duration: 1m}}"),
        );
        assert_eq!(rcode(&ns.in_a(|| ask(resolver_addr, "db.example", wait))), Some(3), "NXDOMAIN for the name");
        assert_eq!(rcode(&ns.in_a(|| ask(resolver_addr, "a.db.example", wait))), Some(3), "and its subdomains");
        assert_eq!(rcode(&ns.in_a(|| ask(resolver_addr, "other.example", wait))), Some(0), "others reach the resolver");
        agent.request(reqwest::Method::DELETE, &format!("{}/jobs/{id}", agent.public));
        assert!(common::eventually(Duration::from_secs(5), || ns.traces_in_a().is_empty()));

        exec_detached(&agent, "command: net/dns\ndata: {answer: address, address: 192.0.2.77, duration: 1m}");
        let answer = ns.in_a(|| ask(resolver_addr, "anything.example", wait)).expect("an answer");
        assert_eq!(&answer[answer.len() - 4..], &[192, 0, 2, 77], "the forged address");
        agent.post("/abort", "application/json", b"{\"local\": true}".to_vec());

        exec_detached(&agent, "command: net/dns\ndata: {names: [db.example], answer: timeout, duration: 1m}");
        assert_eq!(
            ns.in_a(|| ask(resolver_addr, "db.example", Duration::from_millis(700))),
            None,
            "a timeout answers nothing"
        );
        agent.post("/abort", "application/json", b"{\"local\": true}".to_vec());
        assert_eq!(ns.traces_in_a(), "");
        stop.store(true, Ordering::Relaxed);
    });
}

#[test]
fn every_way_an_agent_ends_undoes_its_faults() {
    let Some(ns) = Namespaces::new("undo") else { return };
    let partition = format!("command: net/partition\ndata: {{duration: 10m, traffic: {{remote: ['{B}']}}}}");
    let delay = "command: net/delay\ndata: {delay: 20ms, duration: 10m}";
    let bandwidth = "command: net/bandwidth\ndata: {rate: 10mbit, duration: 10m, traffic: {direction: both}}";
    let install_all = |agent: &ChildAgent| {
        for body in [partition.as_str(), delay, bandwidth] {
            exec_detached(agent, body);
        }
        assert!(!ns.traces_in_a().is_empty());
        assert_eq!(agent.runtime()["held"]["net_faults"], 3);
    };

    // /abort
    let agent = ns.agent_in_a(&[]);
    install_all(&agent);
    let started = Instant::now();
    let (status, answer) = agent.post("/abort", "application/json", b"{\"local\": true}".to_vec());
    assert_eq!(status, 200, "{answer}");
    assert_eq!(ns.traces_in_a(), "", "left after /abort");
    println!("abort undid three faults in {:?}", started.elapsed());
    assert_eq!(agent.runtime()["held"]["net_faults"], 0);

    // SIGTERM
    install_all(&agent);
    let mut agent = agent;
    agent.signal(libc::SIGTERM);
    agent.wait_exit(Duration::from_secs(10));
    assert_eq!(ns.traces_in_a(), "", "left after SIGTERM");

    // SIGKILL in the middle of a partition: the reaper sweeps up.
    let mut agent = ns.agent_in_a(&[]);
    install_all(&agent);
    agent.signal(libc::SIGKILL);
    agent.wait_exit(Duration::from_secs(5));
    let killed = Instant::now();
    assert!(
        common::eventually(Duration::from_secs(10), || ns.traces_in_a().is_empty()),
        "left after SIGKILL: {}",
        ns.traces_in_a()
    );
    println!("the reaper undid three faults {:?} after the SIGKILL", killed.elapsed());

    // SIGKILL of the agent and its reaper: the next agent on the same port finds what is left and removes it.
    let port = common::fixed_port().to_string();
    let listen = format!("0.0.0.0:{port}");
    let spawn = || {
        ns.in_a(|| {
            ChildAgent::spawn_with(Spawn { args: &["--listen", &listen, "--insecure-no-auth"], ..Default::default() })
        })
    };
    let mut agent = spawn();
    exec_detached(&agent, &partition);
    let reaper: i32 = common::eventually(Duration::from_secs(5), || agent.log_text().contains("reaper started"))
        .then(|| agent.log_text())
        .and_then(|log| {
            log.lines()
                .find(|l| l.contains("reaper started"))?
                .split("pid=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .expect("the reaper's pid in the log");
    // SAFETY: kill(2) on the reaper our own child started.
    unsafe { libc::kill(reaper, libc::SIGKILL) };
    agent.signal(libc::SIGKILL);
    agent.wait_exit(Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(300));
    assert!(ns.traces_in_a().contains("tarsier_p"), "the partition should outlive both: {}", ns.traces_in_a());
    let next = spawn();
    assert!(
        common::eventually(Duration::from_secs(10), || next.log_text().contains("removed network faults a dead agent")),
        "{}",
        next.log_text()
    );
    assert_eq!(ns.traces_in_a(), "");
}

#[test]
fn an_agent_without_net_admin_or_the_tools_gets_a_clear_refusal() {
    let Some(ns) = Namespaces::new("refusals") else { return };
    let Ok(_) = Command::new("setpriv").arg("--version").output() else {
        println!("skipped: refusals: setpriv (util-linux) is not installed");
        return;
    };
    let agent = ns.in_a(|| {
        ChildAgent::spawn_with(Spawn {
            wrapper: &["setpriv", "--bounding-set", "-net_admin", "--inh-caps", "-net_admin"],
            ..Default::default()
        })
    });
    let (status, answer) = agent.exec("command: net/loss\ndata: {percent: 5}\n");
    assert_eq!(status, 403, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("NET_ADMIN"), "{answer}");
    assert_eq!(ns.traces_in_a(), "");

    let agent = ns.in_a(|| ChildAgent::spawn_with(Spawn { env: &[("PATH", "/nonexistent")], ..Default::default() }));
    let (status, answer) = agent.exec("command: net/loss\ndata: {percent: 5}\n");
    assert_eq!(status, 501, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("nftables"), "{answer}");
    assert_eq!(agent.runtime()["held"]["net_faults"], 0);
}

#[test]
fn a_wave_partitions_a_swarm_into_two_halves() {
    let Some(ns) = Namespaces::new("halves") else { return };
    let (pa, pb) = (common::fixed_port(), common::fixed_port());
    let peers = format!("{A}:{pa},{B}:{pb}");
    let spawn = |ns_name: &str, ip: &str, port: u16| {
        let listen = format!("{ip}:{port}");
        Namespaces::run(ns_name, || {
            ChildAgent::spawn_with(Spawn {
                args: &["--listen", &listen, "--insecure-no-auth", "--peers", &peers],
                ..Default::default()
            })
        })
    };
    let a = spawn(&ns.a, A, pa);
    let b = spawn(&ns.b, B, pb);
    let (listener_a, listener_b) = (ns.in_a(|| listener(A)), ns.in_b(|| listener(B)));
    let (service_a, service_b) = (listener_a.local_addr().unwrap(), listener_b.local_addr().unwrap());
    let (status, answer) = a.exec(&format!(
        "command: net/partition\ndata: {{halves: [['{A}/32'], ['{B}/32']], duration: 1m}}\nwave: {{remain: 1, buddies: 1}}\ndetach: true\n"
    ));
    assert_eq!(status, 202, "{answer}");
    let both = common::eventually(Duration::from_secs(10), || {
        [&a, &b].iter().all(|agent| faults_in_force(agent)["in_force"] == 1)
    });
    assert!(both, "a: {}, b: {}", faults_in_force(&a), faults_in_force(&b));
    let b_fault = faults_in_force(&b);
    assert_eq!(b_fault["faults"][0]["installed"]["halves"]["half"], 1, "{b_fault}");
    let short = Duration::from_millis(400);
    assert!(ns.in_b(|| connect_times(service_a, 1, short))[0].is_none(), "B reached A's half");
    assert!(ns.in_a(|| connect_times(service_b, 1, short))[0].is_none(), "A reached B's half");
    // The agents still reach each other: the abort floods the swarm and heals it.
    let (status, answer) = a.post("/abort", "application/json", b"{}".to_vec());
    assert_eq!(status, 200, "{answer}");
    assert!(common::eventually(Duration::from_secs(5), || faults_in_force(&b)["in_force"] == 0));
    assert!(
        common::eventually(Duration::from_secs(5), || Namespaces::traces(&ns.a).is_empty()
            && Namespaces::traces(&ns.b).is_empty()),
        "left after the abort: a: {} b: {}",
        Namespaces::traces(&ns.a),
        Namespaces::traces(&ns.b)
    );
    assert!(ns.in_b(|| connect_times(service_a, 1, Duration::from_secs(2)))[0].is_some());
    assert!(ns.in_a(|| connect_times(service_b, 1, Duration::from_secs(2)))[0].is_some());
}

/// The agents of `tarsier swarm` (processes of their own by default) share the machine's own network: a fault
/// there would hit the machine, so it is refused, whoever runs it (the partition named is TEST-NET-1, harmless
/// even if installed).
#[test]
fn a_local_swarm_refuses_network_faults() {
    let base = crate::common::fixed_port();
    let mut swarm = std::process::Command::new(common::BIN)
        .args(["swarm", "--agents", "2", "--no-demo", "--base-port", &base.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let http = common::http();
    let url = format!("http://127.0.0.1:{base}/exec");
    let body = "command: net/partition\ndata: {duration: 1s, traffic: {remote: [192.0.2.254/32]}}\n";
    let mut answer = None;
    common::eventually(Duration::from_secs(20), || {
        answer = http.post(&url).header("content-type", "application/yaml").body(body).send().ok();
        answer.is_some()
    });
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(swarm.id() as i32, libc::SIGTERM) };
    let _ = swarm.wait();
    let answer = answer.expect("the local swarm answered");
    assert_eq!(answer.status().as_u16(), 403);
    let text = answer.text().unwrap();
    assert!(text.contains("local swarm"), "{text}");
}
