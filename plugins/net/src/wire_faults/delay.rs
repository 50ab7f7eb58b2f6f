//! The userspace delay engine: matched packets go to an NFQUEUE (an iptables rule, the only way to queue on a
//! kernel whose nftables lacks `queue`), a thread holds each one and gives its verdict when its time comes.
//! Used where the kernel has no `sch_netem` (this one has none).
//!
//! The thread sleeps in ppoll() on the queue's socket until a packet comes or the next held one is due. The
//! `nfq` crate keeps that descriptor to itself, so `open_queue` learns it from the kernel's lowest-free-fd rule
//! and checks it is a netfilter netlink socket; when the check fails (another thread took that number at the
//! same instant) the thread polls every 100 us instead, which is correct but not free.
//! PERF(netfault): polling cost 0.150 cores with a delay in force and no packet to hold (10,000 wakeups a
//! second); sleeping on the socket costs nothing then (benches/run.sh netfault, the engine's CPU rows).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use rand_distr::{Distribution, Normal};
use serde::{Deserialize, Serialize};
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::CommandError;

use super::tools;
use super::traffic::{Protocol, Selection};

/// How often an engine that could not learn its socket looks for new packets.
const BLIND_POLL: Duration = Duration::from_micros(100);
/// The longest the thread sleeps on its socket, so it sees `stop` well within the 100 ms a cancel allows.
const MAX_SLEEP: Duration = Duration::from_millis(20);
/// Packets the kernel may hold for the engine; beyond it they pass undelayed (fail-open), never dropped.
const QUEUE_MAX: u32 = 65_536;

#[derive(Clone, Copy, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum JitterDistribution {
    /// Each packet's delay is drawn evenly from `delay - jitter .. delay + jitter`.
    #[default]
    Uniform,
    /// Drawn from a normal distribution around `delay` with `jitter` as its standard deviation (cut at 0).
    Normal,
}

/// The queue a fault's packets go to: one per agent, named after its public port.
pub fn queue_number(public_port: u16) -> u16 {
    public_port
}

/// The iptables chains of a fault, before their `_E`/`_I` suffix (at most 28 characters in all).
pub fn chain_name(public_port: u16, fault: u64) -> String {
    format!("TARSIER_P{public_port}_F{fault}")
}

/// The iptables-restore scripts (IPv4, IPv6) that send the selection's packets to `queue`, the control plane
/// first exempted. `None` for a family the selection does not touch.
pub fn render(chain: &str, selection: &Selection, queue: u16) -> [(&'static str, Option<String>); 2] {
    let (v4, v6) = selection.families();
    [
        ("iptables-restore", v4.then(|| render_family(chain, selection, queue, &selection.v4()))),
        ("ip6tables-restore", v6.then(|| render_family(chain, selection, queue, &selection.v6()))),
    ]
}

fn render_family(chain: &str, selection: &Selection, queue: u16, nets: &[ipnet::IpNet]) -> String {
    let mut lines = vec!["*filter".to_owned()];
    for (hook, suffix, iface_flag, addr_flag, remote_port, local_port) in directions(selection) {
        let chain = format!("{chain}{suffix}");
        lines.push(format!(":{chain} - [0:0]"));
        for port in &selection.exempt_ports {
            lines.push(format!("-A {chain} -p tcp --sport {port} -j RETURN"));
            lines.push(format!("-A {chain} -p tcp --dport {port} -j RETURN"));
        }
        let interfaces: Vec<String> = match selection.interfaces.is_empty() {
            true => vec![format!("! {iface_flag} lo")],
            false => selection.interfaces.iter().map(|name| format!("{iface_flag} {name}")).collect(),
        };
        let addresses: Vec<String> = match nets.is_empty() {
            true => vec![String::new()],
            false => nets.iter().map(|net| format!(" {addr_flag} {net}")).collect(),
        };
        let protocols: Vec<&str> = match selection.protocol {
            Protocol::Tcp => vec![" -p tcp"],
            Protocol::Udp => vec![" -p udp"],
            Protocol::Icmp if nets.iter().any(|n| matches!(n, ipnet::IpNet::V6(_))) => vec![" -p ipv6-icmp"],
            Protocol::Icmp => vec![" -p icmp"],
            Protocol::All if !selection.remote_ports.is_empty() || !selection.local_ports.is_empty() => {
                vec![" -p tcp", " -p udp"]
            }
            Protocol::All => vec![""],
        };
        let mut ports = String::new();
        if !selection.remote_ports.is_empty() {
            ports.push_str(&format!(" -m multiport {remote_port}s {}", join(&selection.remote_ports)));
        }
        if !selection.local_ports.is_empty() {
            ports.push_str(&format!(" -m multiport {local_port}s {}", join(&selection.local_ports)));
        }
        for interface in &interfaces {
            for address in &addresses {
                for protocol in &protocols {
                    lines.push(format!(
                        "-A {chain} {interface}{address}{protocol}{ports} -j NFQUEUE --queue-num {queue} --queue-bypass"
                    ));
                }
            }
        }
        lines.push(format!("-I {hook} 1 -j {chain}"));
    }
    lines.push("COMMIT".to_owned());
    lines.join("\n") + "\n"
}

/// Per direction the fault takes: the hook, the chain's suffix, and the flags that name the other end.
fn directions(
    selection: &Selection,
) -> Vec<(&'static str, &'static str, &'static str, &'static str, &'static str, &'static str)> {
    let mut out = Vec::new();
    if selection.direction.egress() {
        out.push(("OUTPUT", "_E", "-o", "-d", "--dport", "--sport"));
    }
    if selection.direction.ingress() {
        out.push(("INPUT", "_I", "-i", "-s", "--sport", "--dport"));
    }
    out
}

/// The iptables-restore script that removes the chains and their jumps.
pub fn render_removal(chain: &str, selection: &Selection) -> String {
    let mut lines = vec!["*filter".to_owned()];
    for (hook, suffix, ..) in directions(selection) {
        lines.push(format!("-D {hook} -j {chain}{suffix}"));
        lines.push(format!("-F {chain}{suffix}"));
        lines.push(format!("-X {chain}{suffix}"));
    }
    lines.push("COMMIT".to_owned());
    lines.join("\n") + "\n"
}

fn join(ports: &[u16]) -> String {
    ports.iter().map(u16::to_string).collect::<Vec<_>>().join(",")
}

/// What the engine delays by.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub delay: Duration,
    pub jitter: Duration,
    pub distribution: JitterDistribution,
}

impl Shape {
    fn draw(&self, rng: &mut impl Rng, normal: Option<&Normal<f64>>) -> Duration {
        if self.jitter.is_zero() {
            return self.delay;
        }
        let base = self.delay.as_secs_f64();
        let jitter = self.jitter.as_secs_f64();
        let drawn = match (self.distribution, normal) {
            (JitterDistribution::Normal, Some(normal)) => normal.sample(rng),
            _ => rng.random_range((base - jitter)..=(base + jitter)),
        };
        Duration::from_secs_f64(drawn.max(0.0))
    }
}

/// The engine's counters, for the fault's answer and `net/faults`.
#[derive(Default, Debug)]
pub struct Counters {
    pub delayed: AtomicU64,
}

/// A running engine: its thread holds the queue until `stop`.
pub struct Engine {
    /// True when the thread sleeps on the queue's socket, false when it has to poll (see `open_queue`).
    pub wakes_on_socket: bool,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub counters: Arc<Counters>,
}

impl Engine {
    /// Binds the queue (before any rule sends packets to it) and starts the thread.
    pub fn start(queue: u16, shape: Shape) -> Result<Engine, CommandError> {
        let (mut nfq, socket) = open_queue().map_err(open_error)?;
        let setup = (|| {
            nfq.bind(queue)?;
            nfq.set_copy_range(queue, 0)?;
            nfq.set_fail_open(queue, true)?;
            nfq.set_recv_gso(queue, true)?;
            nfq.set_queue_max_len(queue, QUEUE_MAX)
        })();
        setup.map_err(|err| match err.raw_os_error() {
            // The kernel answers EPERM both to a process without NET_ADMIN and to a second socket binding a
            // queue that is taken (nfnetlink_queue's peer check).
            Some(libc::EPERM | libc::EBUSY) if tools::has_net_admin() => CommandError::Conflict(format!(
                "NFQUEUE {queue} is taken: this agent already has a net/delay in force (one per agent), or another \
                 program holds that queue"
            )),
            Some(libc::EPERM) => CommandError::Forbidden(format!("binding NFQUEUE {queue}: {err} (needs NET_ADMIN)")),
            _ => CommandError::Failed(format!("binding NFQUEUE {queue}: {err}")),
        })?;
        nfq.set_nonblocking(true);
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let thread = std::thread::Builder::new()
            .name("net-delay".into())
            .spawn({
                let (stop, counters) = (stop.clone(), counters.clone());
                move || hold_loop(nfq, socket, queue, shape, &stop, &counters)
            })
            .map_err(|err| CommandError::Failed(format!("starting the delay thread: {err}")))?;
        Ok(Engine { wakes_on_socket: socket.is_some(), stop, thread: Some(thread), counters })
    }

    /// Stops the thread; every packet it still holds is let go at once. Call after the rules are gone.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.stop();
    }
}

fn open_error(err: std::io::Error) -> CommandError {
    match err.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            CommandError::Forbidden(format!("opening NFQUEUE: {err} (needs NET_ADMIN)"))
        }
        Some(libc::EPROTONOSUPPORT) => {
            CommandError::Unsupported("the kernel has no nfnetlink_queue (CONFIG_NETFILTER_NETLINK_QUEUE)".into())
        }
        _ => CommandError::Failed(format!("opening NFQUEUE: {err}")),
    }
}

/// A held packet: when it is due, and in what order it came (ties keep their order).
struct Held {
    due: Instant,
    seq: u64,
    message: nfq::Message,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Held {}
impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Held {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

/// Opens the queue and learns its socket's descriptor: `socket()` takes the lowest free number, so the number
/// a just-closed probe had is the queue's, unless another thread took it in between; the socket's domain and
/// protocol are checked, and `None` (poll blindly) is the answer when they are not netlink's netfilter.
fn open_queue() -> std::io::Result<(nfq::Queue, Option<std::os::fd::RawFd>)> {
    use std::os::fd::AsRawFd;
    let probe = std::fs::File::open("/dev/null")?;
    let number = probe.as_raw_fd();
    drop(probe);
    let queue = nfq::Queue::open()?;
    Ok((queue, is_netfilter_socket(number).then_some(number)))
}

fn is_netfilter_socket(fd: std::os::fd::RawFd) -> bool {
    let option = |name| {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: getsockopt writes at most `len` bytes into `value`; a bad fd is an error, not UB.
        let done =
            unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, name, (&mut value as *mut libc::c_int).cast(), &mut len) };
        (done == 0).then_some(value)
    };
    option(libc::SO_DOMAIN) == Some(libc::AF_NETLINK) && option(libc::SO_PROTOCOL) == Some(libc::NETLINK_NETFILTER)
}

/// Sleeps until `socket` is readable or `wait` has passed (ns precision: ppoll, not poll's ms).
fn sleep_on(socket: Option<std::os::fd::RawFd>, wait: Duration) {
    let Some(fd) = socket else {
        std::thread::sleep(wait.min(BLIND_POLL));
        return;
    };
    let mut poll = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let timeout =
        libc::timespec { tv_sec: wait.as_secs() as libc::time_t, tv_nsec: wait.subsec_nanos() as libc::c_long };
    // SAFETY: one valid pollfd, a valid timespec, no signal mask.
    unsafe { libc::ppoll(&mut poll, 1, &timeout, std::ptr::null()) };
}

fn hold_loop(
    mut nfq: nfq::Queue,
    socket: Option<std::os::fd::RawFd>,
    queue: u16,
    shape: Shape,
    stop: &AtomicBool,
    counters: &Counters,
) {
    let mut held: BinaryHeap<Reverse<Held>> = BinaryHeap::new();
    let mut rng = rand::rng();
    let normal = Normal::new(shape.delay.as_secs_f64(), shape.jitter.as_secs_f64()).ok();
    let mut seq = 0u64;
    while !stop.load(Ordering::Acquire) {
        loop {
            match nfq.recv() {
                Ok(mut message) => {
                    message.set_verdict(nfq::Verdict::Accept);
                    seq += 1;
                    let due = Instant::now() + shape.draw(&mut rng, normal.as_ref());
                    held.push(Reverse(Held { due, seq, message }));
                }
                Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(err) => {
                    tracing::warn!(%err, queue, "delay engine: reading the queue failed");
                    break;
                }
            }
        }
        let now = Instant::now();
        while held.peek().is_some_and(|Reverse(next)| next.due <= now) {
            if let Some(Reverse(packet)) = held.pop() {
                let _ = nfq.verdict(packet.message);
                counters.delayed.fetch_add(1, Ordering::Relaxed);
            }
        }
        let wait =
            held.peek().map_or(MAX_SLEEP, |Reverse(next)| next.due.saturating_duration_since(now)).min(MAX_SLEEP);
        if !wait.is_zero() {
            sleep_on(socket, wait);
        }
    }
    // Let go of everything still held, in order: the rules are gone, so nothing new arrives.
    while let Some(Reverse(packet)) = held.pop() {
        let _ = nfq.verdict(packet.message);
    }
    let _ = nfq.unbind(queue);
}

/// Installs the rules for the selection (the engine must already hold the queue).
pub fn install_rules(chain: &str, selection: &Selection, queue: u16) -> Result<Vec<&'static str>, CommandError> {
    let mut installed = Vec::new();
    for (tool, script) in render(chain, selection, queue) {
        let Some(script) = script else { continue };
        if let Err(err) = tools::run(tool, &["-w", "--noflush"], Some(&script)) {
            remove_rules(chain, selection, &installed);
            return Err(err);
        }
        installed.push(tool);
    }
    Ok(installed)
}

/// Removes the rules `install_rules` put in (each family it did).
pub fn remove_rules(chain: &str, selection: &Selection, tools_used: &[&'static str]) {
    for tool in tools_used {
        if let Err(err) = tools::run(tool, &["-w", "--noflush"], Some(&render_removal(chain, selection))) {
            tracing::warn!(%err, chain, "removing the delay rules failed");
        }
    }
}
