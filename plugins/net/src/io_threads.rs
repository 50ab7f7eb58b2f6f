//! The threads the net plugin's busiest tasks run on: one single-threaded tokio runtime per core, started the
//! first time one is asked for, each task on one of them for its whole life, the threads taken in turn. The fault
//! proxy's connections and `http_load`'s workers run here, not on the agent's work-stealing runtime.
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

struct IoThreads {
    handles: Vec<Handle>,
    next: AtomicUsize,
}

static THREADS: OnceLock<IoThreads> = OnceLock::new();

/// The runtime of the next thread in turn; `None` when no thread could be started (the process is out of
/// threads: the caller runs its task on its own runtime, served all the same, only not on a thread of its own).
pub(crate) fn next() -> Option<Handle> {
    let threads = THREADS.get_or_init(start);
    if threads.handles.is_empty() {
        return None;
    }
    let turn = threads.next.fetch_add(1, Ordering::Relaxed) % threads.handles.len();
    Some(threads.handles[turn].clone())
}

/// Runs `task` on the next thread in turn, or on the caller's runtime when there is none.
pub(crate) fn spawn<F>(task: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    match next() {
        Some(handle) => drop(handle.spawn(task)),
        None => drop(tokio::spawn(task)),
    }
}

fn start() -> IoThreads {
    let count = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let mut handles = Vec::with_capacity(count);
    for index in 0..count {
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(runtime) => runtime,
            Err(err) => {
                tracing::warn!(%err, "net: cannot make an I/O runtime; proxied connections and loads share the agent's");
                break;
            }
        };
        let handle = runtime.handle().clone();
        // The thread runs its runtime's tasks for the life of the process: it waits in epoll when idle.
        let started = std::thread::Builder::new()
            .name(format!("net-io-{index}"))
            .spawn(move || runtime.block_on(std::future::pending::<()>()));
        match started {
            Ok(_) => handles.push(handle),
            Err(err) => {
                tracing::warn!(%err, "net: cannot start an I/O thread; proxied connections and loads share the agent's");
                break;
            }
        }
    }
    IoThreads { handles, next: AtomicUsize::new(0) }
}
