//! The ceiling of any group commit that puts each committer thread to
//! sleep once per commit: N threads each fill a record (the `rzil bench`
//! workload's own work) and block until another thread wakes it, in
//! batches; no log, no I/O. `rzil bench` at N committers cannot beat this
//! on the same machine.
//!
//! `cargo run --release -p rzil-host --example wake_floor -- 64 3`

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::Thread;
use std::time::{Duration, Instant};

use rzil_host::backend::fill_pattern;

/// Bytes of the record each committer fills per commit.
const RECORD_BYTES: usize = 4096;
/// Longest a sleeper or the waker sleeps before looking again.
const NAP: Duration = Duration::from_millis(1);
/// Committers when none is given.
const THREADS_DEFAULT: usize = 64;
/// Seconds when none are given.
const SECONDS_DEFAULT: f64 = 3.0;

/// One commit in flight: done once the waker says so.
struct Commit {
    done: AtomicBool,
    thread: Thread,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let threads = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(THREADS_DEFAULT);
    let seconds = args
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(SECONDS_DEFAULT);
    let pending: Mutex<Vec<Arc<Commit>>> = Mutex::new(Vec::new());
    let stop = AtomicBool::new(false);
    let commits = AtomicU64::new(0);
    let began = Instant::now();
    std::thread::scope(|scope| {
        let waker = scope.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                let batch = std::mem::take(&mut *pending.lock().expect("not poisoned"));
                if batch.is_empty() {
                    std::thread::park_timeout(NAP);
                }
                for commit in batch {
                    commit.done.store(true, Ordering::Release);
                    commit.thread.unpark();
                }
            }
        });
        let waker = waker.thread().clone();
        for committer in 0..threads {
            let (pending, stop, commits, waker) = (&pending, &stop, &commits, waker.clone());
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
                    while !commit.done.load(Ordering::Acquire) && !stop.load(Ordering::Relaxed) {
                        std::thread::park_timeout(NAP);
                    }
                    commits.fetch_add(1, Ordering::Relaxed);
                    seq += 1;
                }
            });
        }
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    let elapsed = began.elapsed().as_secs_f64();
    println!(
        "{threads} committers, each asleep once per commit, no I/O: {:.0} commits/s",
        commits.load(Ordering::Relaxed) as f64 / elapsed
    );
}
