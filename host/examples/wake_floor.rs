//! The ceiling of any group commit that puts each committer thread to
//! sleep once per commit: N threads each fill a record (the `rzil bench`
//! workload's own work) and block until a waker thread completes their
//! commits, in batches; no log, no I/O. `rzil bench` at N committers cannot
//! beat this on the same machine.
//!
//! Two ways to wake a batch are measured in the same run, alternating:
//! * `unpark each`: one `Thread::unpark` (a futex wake) per committer, as
//!   the host platform did before it slept committers per lwb;
//! * `one wake per batch`: the batch sleeps on one word and one
//!   `futex(2)`/`_umtx_op(2)` call wakes it ([`rzil_host::futex`]), as the
//!   host platform does per lwb now.
//!
//! `cargo run --release -p rzil-host --example wake_floor -- 64 3`

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant};

use rzil_host::backend::fill_pattern;
use rzil_host::futex;

/// Bytes of the record each committer fills per commit.
const RECORD_BYTES: usize = 4096;
/// Longest a sleeper or the waker sleeps before looking again.
const NAP: Duration = Duration::from_millis(1);
/// Committers when none is given.
const THREADS_DEFAULT: usize = 64;
/// Seconds when none are given.
const SECONDS_DEFAULT: f64 = 3.0;
/// Measurements of each way, alternating.
const ROUNDS: u32 = 2;

/// One commit in flight: done once the waker says so.
struct Commit {
    done: AtomicBool,
    thread: Thread,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Wake {
    UnparkEach,
    OneWakePerBatch,
}

/// Commits per second of `threads` committers for `seconds`, woken `how`.
fn measure(threads: usize, seconds: f64, how: Wake) -> f64 {
    let pending: Mutex<Vec<Arc<Commit>>> = Mutex::new(Vec::new());
    // Bumped once per completed batch; committers sleep on it in
    // `OneWakePerBatch`.
    let batch_word = AtomicU32::new(0);
    let stop = AtomicBool::new(false);
    let commits = AtomicU64::new(0);
    let began = Instant::now();
    std::thread::scope(|scope| {
        let waker = scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let batch = std::mem::take(&mut *pending.lock().expect("not poisoned"));
                if batch.is_empty() {
                    std::thread::park_timeout(NAP);
                    continue;
                }
                for commit in &batch {
                    commit.done.store(true, Ordering::Release);
                    if how == Wake::UnparkEach {
                        commit.thread.unpark();
                    }
                }
                if how == Wake::OneWakePerBatch {
                    futex::bump_and_wake_all(&batch_word);
                }
            }
        });
        let waker = waker.thread().clone();
        for committer in 0..threads {
            let (pending, stop, commits, waker, batch_word) =
                (&pending, &stop, &commits, waker.clone(), &batch_word);
            scope.spawn(move || {
                let mut record = vec![0u8; RECORD_BYTES];
                let mut seq = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    fill_pattern(committer as u64, seq * RECORD_BYTES as u64, &mut record);
                    let commit = Arc::new(Commit {
                        done: AtomicBool::new(false),
                        thread: std::thread::current(),
                    });
                    let first = {
                        let mut pending = pending.lock().expect("not poisoned");
                        pending.push(Arc::clone(&commit));
                        pending.len() == 1
                    };
                    if first {
                        waker.unpark();
                    }
                    loop {
                        let seen = batch_word.load(Ordering::Acquire);
                        if commit.done.load(Ordering::Acquire) || stop.load(Ordering::Relaxed) {
                            break;
                        }
                        match how {
                            Wake::UnparkEach => std::thread::park_timeout(NAP),
                            Wake::OneWakePerBatch => futex::wait(batch_word, seen, NAP),
                        }
                    }
                    commits.fetch_add(1, Ordering::Relaxed);
                    seq += 1;
                }
            });
        }
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    commits.load(Ordering::Relaxed) as f64 / began.elapsed().as_secs_f64()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let threads = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(THREADS_DEFAULT);
    let seconds: f64 = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(SECONDS_DEFAULT);
    let slice = seconds / f64::from(2 * ROUNDS);
    let (mut each, mut batch) = (0.0, 0.0);
    for _ in 0..ROUNDS {
        each += measure(threads, slice, Wake::UnparkEach) / f64::from(ROUNDS);
        batch += measure(threads, slice, Wake::OneWakePerBatch) / f64::from(ROUNDS);
    }
    println!(
        "{threads} committers, each asleep once per commit, no I/O: \
         unpark each {each:.0} commits/s, one wake per batch {batch:.0} commits/s ({:.2}x)",
        batch / each.max(1.0)
    );
}
