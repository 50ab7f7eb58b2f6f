//! The threads proxied connections run on: one single-threaded tokio runtime per core, started the first time a
//! proxy takes a connection, each connection on one of them for its whole life, the threads taken in turn.
//!
//! PERF(proxy): on the agent's shared work-stealing runtime, a task the I/O driver woke on one worker woke a
//! parked other worker to steal it (a futex each way), and the kernel's context switches and wake-ups were 23 %
//! of the relay's CPU in a profile. A runtime of its own per thread waits in epoll itself and runs what it
//! woke, as haproxy's threads do. `benches/run.sh proxy`, the agent before and after, two runs each interleaved:
//! 0.94x / 0.92x haproxy's requests/s -> 1.03x / 1.02x, the relay's CPU per request 21.4 / 20.0 -> 20.0 / 18.9 µs.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use tokio::runtime::Handle;

struct RelayThreads {
    handles: Vec<Handle>,
    next: AtomicUsize,
}

static THREADS: OnceLock<RelayThreads> = OnceLock::new();

/// Runs `connection` on a relay thread; on the caller's runtime when no relay thread could be started (the
/// process is out of threads: the connection is served all the same, only not on a thread of its own).
pub fn spawn<F>(connection: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let threads = THREADS.get_or_init(start);
    if threads.handles.is_empty() {
        tokio::spawn(connection);
        return;
    }
    let turn = threads.next.fetch_add(1, Ordering::Relaxed) % threads.handles.len();
    threads.handles[turn].spawn(connection);
}

fn start() -> RelayThreads {
    let count = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut handles = Vec::with_capacity(count);
    for index in 0..count {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(err) => {
                tracing::warn!(%err, "fault proxy: cannot make a relay runtime; connections share the agent's");
                break;
            }
        };
        let handle = runtime.handle().clone();
        // The thread runs its runtime's tasks for the life of the process: it waits in epoll when idle.
        let started = std::thread::Builder::new()
            .name(format!("proxy-relay-{index}"))
            .spawn(move || runtime.block_on(std::future::pending::<()>()));
        match started {
            Ok(_) => handles.push(handle),
            Err(err) => {
                tracing::warn!(%err, "fault proxy: cannot start a relay thread; connections share the agent's");
                break;
            }
        }
    }
    RelayThreads { handles, next: AtomicUsize::new(0) }
}
