use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::json;
use tarsier_plugin::schemars::JsonSchema;
use tarsier_plugin::{run_on_thread, Command, CommandError, DataError, ExecContext, HumanDuration, JobFuture};

/// Busy and idle alternate within this period when `load` < 100.
const DUTY_PERIOD: Duration = Duration::from_millis(100);
/// An idle thread looks at the cancel flag this often, so a cancel stops it well within 100 ms.
const IDLE_STEP: Duration = Duration::from_millis(10);
const MAX_THREADS: u32 = 1024;

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SpinCpuData {
    /// How long every thread spins (all threads at once, not one after the other).
    pub duration: HumanDuration,
    /// OS threads to keep busy; defaults to the number of cores. 0 spins nothing, as in the reference.
    #[serde(alias = "cores")]
    pub threads: u32,
    /// Percent of each thread's time spent busy, 1 to 100.
    pub load: u8,
    /// A fixed amount of work instead of a time: each thread stops once it has used this much CPU time,
    /// however long it waited for a CPU (a request that costs 10 ms of CPU, as a CPU-bound service's
    /// would). `duration` still bounds it.
    pub cpu_time: Option<HumanDuration>,
}

impl Default for SpinCpuData {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
        Self { duration: HumanDuration::from_secs(10), threads: cores, load: 100, cpu_time: None }
    }
}

pub struct SpinCpu(pub Arc<AtomicU64>);

impl Command for SpinCpu {
    type Data = SpinCpuData;
    type Plan = SpinCpuData;
    const NAME: &'static str = "spin_cpu";
    const DESCRIPTION: &'static str = "Keeps `threads` OS threads busy with a float multiply/divide loop for \
        `duration`, at `load` percent (busy and idle slices of 100 ms). Answers the CPU time really used.";

    fn check(&self, data: SpinCpuData, ctx: &ExecContext) -> Result<SpinCpuData, DataError> {
        if data.threads > MAX_THREADS {
            return Err(DataError::field("threads", format!("{} must be at most {MAX_THREADS}", data.threads)));
        }
        if data.load == 0 || data.load > 100 {
            return Err(DataError::field("load", format!("{} must be a percentage from 1 to 100", data.load)));
        }
        ctx.limits.check_duration("duration", data.duration)?;
        if data.cpu_time.is_some_and(|work| work.0.is_zero() || work.0 > data.duration.0) {
            return Err(DataError::field("cpu_time", "must be more than 0 and at most `duration`"));
        }
        Ok(data)
    }

    fn execute(&self, data: SpinCpuData, ctx: ExecContext) -> JobFuture {
        let busy = self.0.clone();
        let cancel = ctx.cancel_flag();
        let job_cancel = ctx.cancel.clone();
        Box::pin(async move {
            let started = Instant::now();
            let deadline = started + data.duration.0;
            let load = data.load;
            let threads = data.threads;
            let work = data.cpu_time.map(|work| work.0.as_secs_f64());
            // The spinning threads are joined on a thread of their own, never on the shared blocking pool.
            let asked = run_on_thread("spin_cpu", &job_cancel, move || {
                // Raised when a thread cannot be started: the ones already spinning stop at once and the
                // job fails now, not after its whole duration.
                let abandoned = Arc::new(AtomicBool::new(false));
                let mut workers = Vec::with_capacity(threads as usize);
                let mut failed_start = None;
                for n in 0..threads {
                    let (cancel, busy, given_up) = (cancel.clone(), busy.clone(), abandoned.clone());
                    let spawned = std::thread::Builder::new().name(format!("spin-{n}")).spawn(move || {
                        busy.fetch_add(1, Ordering::Relaxed);
                        let stop = || cancel.is_raised() || given_up.load(Ordering::Relaxed);
                        let asked = spin(deadline, load, work, &stop);
                        busy.fetch_sub(1, Ordering::Relaxed);
                        asked
                    });
                    match spawned {
                        Ok(worker) => workers.push(worker),
                        Err(err) => {
                            abandoned.store(true, Ordering::Relaxed);
                            failed_start = Some(format!("cannot start spinning thread {n} of {threads}: {err}"));
                            break;
                        }
                    }
                }
                let mut total = ThreadTime { cpu_seconds: 0.0, runnable_seconds: Some(0.0) };
                for worker in workers {
                    total += worker.join().map_err(|_| CommandError::Failed("a spinning thread panicked".into()))?;
                }
                match failed_start {
                    Some(why) => Err(CommandError::Failed(why)),
                    None => Ok(total),
                }
            })
            .await?;
            let ran = started.elapsed().as_secs_f64();
            let thread_seconds = (ran * threads as f64).max(f64::EPSILON);
            Ok(json!({
                "threads": threads,
                "load": load,
                "ran_seconds": ran,
                "cpu_seconds": asked.cpu_seconds,
                "cpu_fraction": asked.cpu_seconds / thread_seconds,
                "runnable_seconds": asked.runnable_seconds,
                "runnable_fraction": asked.runnable_seconds.map(|runnable| runnable / thread_seconds),
            }))
        })
    }
}

/// What one spinning thread asked of the kernel and what it got.
#[derive(Debug, Clone, Copy)]
struct ThreadTime {
    /// CPU time obtained: depends on what else the machine runs.
    cpu_seconds: f64,
    /// Run time plus run-queue wait (`schedstat`): the time the thread wanted a CPU, whatever it got. `None`
    /// where the kernel has no schedstat.
    runnable_seconds: Option<f64>,
}

impl std::ops::AddAssign for ThreadTime {
    fn add_assign(&mut self, other: Self) {
        self.cpu_seconds += other.cpu_seconds;
        self.runnable_seconds = self.runnable_seconds.zip(other.runnable_seconds).map(|(a, b)| a + b);
    }
}

/// Spins until `deadline`, cancel, or (with `work`) once this thread has used that many CPU seconds, and
/// returns what it asked for and used.
fn spin(deadline: Instant, load: u8, work: Option<f64>, stop: &dyn Fn() -> bool) -> ThreadTime {
    let cpu_start = thread_cpu_seconds();
    let runnable_start = thread_runnable_seconds();
    let busy_slice = DUTY_PERIOD.mul_f64(f64::from(load) / 100.0);
    let worked = || work.is_some_and(|work| thread_cpu_seconds() - cpu_start >= work);
    let mut x = 1.000_1_f64;
    loop {
        let slice_start = Instant::now();
        if slice_start >= deadline || stop() || worked() {
            break;
        }
        let busy_until = if load >= 100 { slice_start + DUTY_PERIOD } else { slice_start + busy_slice }.min(deadline);
        while Instant::now() < busy_until && !stop() && !worked() {
            for _ in 0..1_000 {
                x = black_box(black_box(x) * 1.000_000_1 / 1.000_000_09);
            }
        }
        if load < 100 {
            let idle_until = (slice_start + DUTY_PERIOD).min(deadline);
            loop {
                let now = Instant::now();
                if now >= idle_until || stop() {
                    break;
                }
                std::thread::sleep((idle_until - now).min(IDLE_STEP));
            }
        }
    }
    black_box(x);
    ThreadTime {
        cpu_seconds: thread_cpu_seconds() - cpu_start,
        runnable_seconds: runnable_start.zip(thread_runnable_seconds()).map(|(start, end)| end - start),
    }
}

/// This thread's run time plus run-queue wait so far, from `/proc/self/task/TID/schedstat`.
fn thread_runnable_seconds() -> Option<f64> {
    let tid = nix::unistd::gettid().as_raw();
    let stat = procfs::process::Process::myself().ok()?.task_from_tid(tid).ok()?.schedstat().ok()?;
    Some((stat.sum_exec_runtime + stat.run_delay) as f64 / 1e9)
}

/// This thread's CPU time so far; 0 where the clock cannot be read (it always exists on Linux).
fn thread_cpu_seconds() -> f64 {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|ts| ts.tv_sec() as f64 + ts.tv_nsec() as f64 / 1e9)
        .unwrap_or(0.0)
}
