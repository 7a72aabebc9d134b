//! Wait on a 32-bit word and wake every waiter of it in one system call:
//! `futex(2)` on Linux, `_umtx_op(2)` on FreeBSD.
//!
//! The host platform puts the committers of one lwb to sleep on one word
//! and wakes them all with one call when the lwb is durable. Waking them
//! one by one (`Thread::unpark`, a futex call and, in a VM, often an
//! inter-processor interrupt each) cost more than twice as much CPU per
//! commit on a 2-vCPU VM: `make bench-host-floor` measures both.
//!
//! The protocol is the futex one: a sleeper reads the word, checks its
//! condition, and sleeps only while the word still holds what it read; a
//! waker makes the condition true, then changes the word, then wakes. A
//! wake between the check and the sleep changes the word, so the sleep
//! returns at once. Returns can be spurious: callers re-check.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Longest single sleep asked of the kernel: longer timeouts are cut to
/// this (the caller re-checks and sleeps again), so the seconds always fit
/// the kernel's `time_t`.
pub const WAIT_MAX: Duration = Duration::from_secs(3600);

fn timespec_of(timeout: Duration) -> libc::timespec {
    let timeout = timeout.min(WAIT_MAX);
    libc::timespec {
        // Both fit: at most WAIT_MAX seconds, and below 10^9 ns.
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    }
}

/// Sleep while `word` holds `expected`, at most `timeout`. Returns when
/// woken, when the word differs, at the timeout, on a signal, or
/// spuriously: the caller re-checks its condition.
pub fn wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = timespec_of(timeout);
    sys_wait(word, expected, &ts);
}

/// Change `word` (so a sleeper about to sleep on its old value returns at
/// once) and wake every thread sleeping on it.
pub fn bump_and_wake_all(word: &AtomicU32) {
    word.fetch_add(1, Ordering::Release);
    sys_wake_all(word);
}

#[cfg(target_os = "linux")]
fn sys_wait(word: &AtomicU32, expected: u32, ts: &libc::timespec) {
    // The result is ignored on purpose: EAGAIN (the word changed),
    // ETIMEDOUT and EINTR all mean "re-check", which every caller does.
    // SAFETY: FUTEX_WAIT reads the u32 behind `word` (an AtomicU32 has its
    // size and alignment) and the timespec behind `ts`, both live for the
    // call; it writes nothing.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
            expected,
            ts as *const libc::timespec,
        );
    }
}

#[cfg(target_os = "linux")]
fn sys_wake_all(word: &AtomicU32) {
    // It cannot fail for a valid private futex address, and a failure
    // would only mean nobody was woken, which the sleepers' timeouts bound.
    // SAFETY: FUTEX_WAKE uses the word's address as a key and reads and
    // writes no memory.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
            i32::MAX,
        );
    }
}

#[cfg(target_os = "freebsd")]
fn sys_wait(word: &AtomicU32, expected: u32, ts: &libc::timespec) {
    // Errors (timeout, EINTR) mean "re-check", which every caller does.
    // With uaddr2 non-null, uaddr carries the size of the timespec there
    // (the documented convention for a relative timeout).
    // SAFETY: the call reads the aligned u32 behind `word` and the
    // timespec behind `ts`, both live for the call; it writes nothing.
    unsafe {
        libc::_umtx_op(
            word.as_ptr().cast(),
            libc::UMTX_OP_WAIT_UINT_PRIVATE,
            libc::c_ulong::from(expected),
            std::mem::size_of::<libc::timespec>() as *mut libc::c_void,
            (ts as *const libc::timespec).cast_mut().cast(),
        );
    }
}

#[cfg(target_os = "freebsd")]
fn sys_wake_all(word: &AtomicU32) {
    // SAFETY: UMTX_OP_WAKE_PRIVATE uses the word's address as a key and
    // touches no memory; the unused pointers are null as documented.
    unsafe {
        libc::_umtx_op(
            word.as_ptr().cast(),
            libc::UMTX_OP_WAKE_PRIVATE,
            i32::MAX as libc::c_ulong,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        );
    }
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
compile_error!("rzil-host sleeps on futex(2) or _umtx_op(2): Linux or FreeBSD");

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::time::Instant;

    #[test]
    fn a_changed_word_does_not_sleep() {
        let word = AtomicU32::new(7);
        let began = Instant::now();
        wait(&word, 6, Duration::from_secs(5));
        assert!(began.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn an_unchanged_word_sleeps_until_the_timeout() {
        let word = AtomicU32::new(7);
        let began = Instant::now();
        wait(&word, 7, Duration::from_millis(30));
        assert!(began.elapsed() >= Duration::from_millis(25));
    }

    #[test]
    fn one_wake_releases_every_sleeper() {
        const SLEEPERS: usize = 8;
        let word = AtomicU32::new(0);
        let go = AtomicBool::new(false);
        let asleep = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|scope| {
            let handles: Vec<_> = (0..SLEEPERS)
                .map(|_| {
                    scope.spawn(|| {
                        let began = Instant::now();
                        loop {
                            let seen = word.load(Ordering::Acquire);
                            if go.load(Ordering::Acquire) {
                                break;
                            }
                            asleep.fetch_add(1, Ordering::AcqRel);
                            wait(&word, seen, Duration::from_secs(20));
                        }
                        began.elapsed()
                    })
                })
                .collect();
            while asleep.load(Ordering::Acquire) < SLEEPERS {
                std::thread::yield_now();
            }
            std::thread::sleep(Duration::from_millis(20));
            go.store(true, Ordering::Release);
            bump_and_wake_all(&word);
            for handle in handles {
                let slept = handle.join().expect("sleeper panicked");
                assert!(slept < Duration::from_secs(10), "a sleeper missed the wake");
            }
        });
    }
}
