use tarsier_plugin::{Command, DataError, ExecContext, JobFuture};

use crate::death::{check_delay, schedule, DeathData};

pub struct Segfault;

impl Command for Segfault {
    type Data = DeathData;
    type Plan = DeathData;
    const NAME: &'static str = "segfault";
    const ENDS_PROCESS: bool = true;
    const DESCRIPTION: &'static str = "Dies of a real SIGSEGV (a write to a page mapped with no access), \
        `delay` after answering.";

    fn check(&self, data: DeathData, ctx: &ExecContext) -> Result<DeathData, DataError> {
        check_delay(data.delay, &ctx.limits)?;
        Ok(data)
    }

    fn execute(&self, data: DeathData, _: ExecContext) -> JobFuture {
        Box::pin(async move { Ok(schedule(data.delay, "SIGSEGV", write_to_forbidden_page)) })
    }
}

/// Writes to a page the kernel maps with PROT_NONE: the MMU faults and the kernel sends SIGSEGV. Rust's own
/// SIGSEGV handler only handles stack guard pages, so for this address it restores the default action and
/// the process dies of the signal.
fn write_to_forbidden_page() {
    // SAFETY: an anonymous private mapping of one page; the fault on writing it is the whole point.
    unsafe {
        let page =
            libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
        if page == libc::MAP_FAILED {
            libc::raise(libc::SIGSEGV);
        }
        std::ptr::write_volatile(page as *mut u8, 1);
    }
}
