//! CPU time this process used, for the per-commit CPU figures of
//! `rzil bench`: on a machine with few CPUs, CPU per commit is what bounds
//! commits per second once flushes are shared.

use std::time::Duration;

/// CPU time (user + system) that every thread of this process has used so
/// far, as `getrusage(2)` counts it for `RUSAGE_SELF`. Work the kernel
/// does on its own threads is not in it: page-cache write-back workers
/// on Linux, and the GEOM and taskqueue threads that run `rzil.ko`'s
/// completions on FreeBSD. Zero if the call fails.
pub fn process_cpu() -> Duration {
    // SAFETY: `rusage` is a plain C struct of integers and timevals, for
    // which all zero bytes are a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a live, writable `rusage` owned by this frame,
    // the only memory getrusage writes; RUSAGE_SELF is a valid `who`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    if rc != 0 {
        return Duration::ZERO;
    }
    timeval(usage.ru_utime) + timeval(usage.ru_stime)
}

fn timeval(tv: libc::timeval) -> Duration {
    let secs = u64::try_from(tv.tv_sec).unwrap_or(0);
    let micros = u32::try_from(tv.tv_usec).unwrap_or(0).min(999_999);
    Duration::new(secs, micros * 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn counts_busy_cpu_in_the_right_unit() {
        // Spin until 50 ms of CPU are counted: a count that does not move,
        // or moves 1000x too slowly (a unit slip), runs into the timeout.
        let (before, began) = (process_cpu(), Instant::now());
        let mut x = 1u64;
        let mut used = Duration::ZERO;
        while used < Duration::from_millis(50) && began.elapsed() < Duration::from_secs(20) {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            used = process_cpu().saturating_sub(before);
        }
        let wall = began.elapsed();
        assert!(used >= Duration::from_millis(50), "{used:?} in {wall:?}");
        // No more CPU than every CPU of the machine could give in that
        // time (a unit slip the other way).
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
        assert!(
            used <= wall * cpus + Duration::from_millis(20),
            "{used:?} of CPU in {wall:?} on {cpus} CPUs"
        );
    }
}
