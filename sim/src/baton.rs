//! Deterministic interleaving inside core calls: a hand-rolled, tiny
//! `shuttle`.
//!
//! A core call such as `Zil::commit` fills and issues lwbs on the calling
//! thread with no core lock held; on a real host other threads assign,
//! commit and complete I/O in those windows. To explore them, an actor's
//! core call runs through its [`Worker`] handle on a thread of a [`Pool`]
//! (inside a `std::thread::scope`), and the platform calls [`yield_point`]
//! at the places where the core holds no lock. There the thread hands the
//! baton back to the scheduler thread and blocks until the scheduler
//! resumes it; a parked call keeps its thread, a new call takes any free
//! one.
//!
//! Exactly one thread runs simulation code at any time: the scheduler
//! waits while a worker runs (for that call's next event), and a worker
//! runs only between receiving a call or a resume and sending its next
//! event. Every choice (which actor next, whether a yield point parks)
//! comes from the seed's generators, never from the OS scheduler, so a
//! seed replays exactly; which pool thread runs a call is the OS's choice,
//! and nothing depends on it. A waiting thread polls for a short while
//! ([`HANDOFF_SPIN_NS_MAX`]) before it blocks, which makes a handoff cheap
//! on an idle machine; this changes only the speed.
//!
//! Each call parks at most [`YIELDS_PER_CALL_MAX`] times; past that its
//! yield points run through. A worker whose scheduler went away (the
//! scheduler panicked with calls parked) runs its call to the end without
//! parking, so the scope can always join it; several may then run at once,
//! but the seed has already failed and nothing is checked any more (a lock
//! one finds held is reported as a deadlock in that worker, not a hang).
//! A seed that ends normally, or with a failure it returns, finishes its
//! parked calls one at a time with [`Worker::finish`].

use crate::rng::Rng;
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc::{channel, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::thread::Scope;
use std::time::{Duration, Instant};

/// Most times one core call parks at a yield point; later yield points of
/// the same call run through (a bound on the steps one call can take).
pub const YIELDS_PER_CALL_MAX: u32 = 24;

/// How long a thread waiting for the baton polls (yielding the CPU between
/// polls) before it blocks (ns): the scheduler for the running call's next
/// event, a parked call for its resume, one free pool thread for the next
/// call.
pub const HANDOFF_SPIN_NS_MAX: u64 = 100_000;

/// A core call to run on a worker.
pub type Job<'s, T> = Box<dyn FnOnce() -> T + Send + 's>;

/// What a worker reports to the scheduler.
#[derive(Debug)]
pub enum Event<T> {
    /// The call stopped at this yield point; resume it with
    /// [`Worker::resume`].
    Parked(&'static str),
    /// The call returned this.
    Returned(T),
    /// The call panicked with this message.
    Panicked(String),
}

/// What the scheduler tells a parked worker.
#[derive(Clone, Copy, Debug)]
enum Resume {
    /// Carry on to the next yield point (or the end of the call).
    Go,
    /// Carry on to the end of the call without parking again.
    Finish,
}

struct JobMsg<'s, T> {
    call: Job<'s, T>,
    /// Decides, at each yield point, whether to park (forked from the
    /// world's generator when the call started, so it is seed-determined).
    rng: Rng,
    /// Probability (ppm) that a yield point parks.
    park_ppm: u32,
}

/// This worker thread's side of the baton.
struct YieldCtl {
    /// Report a park and wait for the answer.
    park: Box<dyn FnMut(&'static str) -> Resume>,
    rng: Rng,
    park_ppm: u32,
    /// Parks left in the current call.
    left: u32,
    /// No more parking in the current call.
    finishing: bool,
}

thread_local! {
    /// Set on worker threads only; the scheduler thread has none, so its
    /// core calls run atomically as before.
    static CTL: RefCell<Option<YieldCtl>> = const { RefCell::new(None) };
}

/// A point inside a core call where the core holds no lock: on a worker
/// (and when its generator says so) hand the baton to the scheduler and
/// wait to be resumed. Elsewhere, a no-op.
pub fn yield_point(point: &'static str) {
    CTL.with(|c| {
        let mut c = c.borrow_mut();
        let Some(ctl) = c.as_mut() else { return };
        if ctl.finishing || ctl.left == 0 || !ctl.rng.chance_ppm(ctl.park_ppm) {
            return;
        }
        ctl.left -= 1;
        // The borrow is held while parked: nothing else runs on this
        // thread meanwhile.
        if let Resume::Finish = (ctl.park)(point) {
            ctl.finishing = true;
        }
    });
}

/// Whether this thread is a worker (for assertions and tests).
pub fn on_worker() -> bool {
    CTL.with(|c| c.borrow().is_some())
}

/// Worker threads shared by several [`Worker`] handles: a call may run on
/// any free thread (the core does not care which thread calls it), and
/// only a parked call keeps its thread.
pub struct Pool<'s, T> {
    inner: Rc<PoolInner<'s, T>>,
}

struct PoolInner<'s, T> {
    /// Calls to start, taken by whichever free thread is waiting.
    jobs: Sender<JobMsg<'s, T>>,
    /// Every thread's parks, returns and panics, with its index.
    events: Receiver<(usize, Event<T>)>,
    /// Thread `k`'s resume channel.
    resumes: Vec<Sender<Resume>>,
}

impl<T> std::fmt::Debug for Pool<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.inner.resumes.len())
            .finish_non_exhaustive()
    }
}

impl<'s, T: Send + 'static> Pool<'s, T> {
    /// Start `threads` worker threads in `scope`; they wait for calls. At
    /// most `threads` handles ([`Pool::worker`]) may be in use: each has at
    /// most one call in flight.
    pub fn spawn<'e>(scope: &'s Scope<'s, 'e>, threads: usize) -> Self {
        let (jobs_tx, jobs_rx) = channel::<JobMsg<'s, T>>();
        let jobs_rx = Arc::new(Mutex::new(jobs_rx));
        let (events_tx, events_rx) = channel::<(usize, Event<T>)>();
        let resumes = (0..threads)
            .map(|k| {
                let (resume_tx, resume_rx) = channel::<Resume>();
                let (jobs, events) = (jobs_rx.clone(), events_tx.clone());
                scope.spawn(move || worker_main(k, &jobs, resume_rx, events));
                resume_tx
            })
            .collect();
        Self {
            inner: Rc::new(PoolInner {
                jobs: jobs_tx,
                events: events_rx,
                resumes,
            }),
        }
    }

    /// A handle that runs one call at a time on this pool's threads.
    pub fn worker(&self) -> Worker<'s, T> {
        Worker {
            pool: self.inner.clone(),
            parked: None,
        }
    }
}

/// The scheduler's handle on one actor's calls: one call at a time, run
/// on a [`Pool`] thread.
pub struct Worker<'s, T> {
    pool: Rc<PoolInner<'s, T>>,
    /// The thread and yield point of the parked call.
    parked: Option<(usize, &'static str)>,
}

impl<T> std::fmt::Debug for Worker<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("parked", &self.parked)
            .finish_non_exhaustive()
    }
}

impl<'s, T: Send + 'static> Worker<'s, T> {
    /// The yield point this handle's call is parked at, if it is.
    pub fn parked(&self) -> Option<&'static str> {
        self.parked.map(|(_, p)| p)
    }

    /// Run `call` on a free thread until it parks or returns. Each yield
    /// point parks with probability `park_ppm`, decided by `rng`.
    pub fn start(&mut self, call: Job<'s, T>, rng: Rng, park_ppm: u32) -> Event<T> {
        assert!(self.parked.is_none(), "a worker runs one call at a time");
        let sent = self.pool.jobs.send(JobMsg {
            call,
            rng,
            park_ppm,
        });
        if sent.is_err() {
            return Event::Panicked("worker threads gone".into());
        }
        self.wait()
    }

    /// Resume the parked call until it parks again or returns.
    pub fn resume(&mut self) -> Event<T> {
        self.send_resume(Resume::Go)
    }

    /// Resume the parked call and let it run to its end without parking.
    pub fn finish(&mut self) -> Event<T> {
        self.send_resume(Resume::Finish)
    }

    fn send_resume(&mut self, r: Resume) -> Event<T> {
        let (k, _) = self
            .parked
            .take()
            .expect("resuming a worker that is not parked");
        if self.pool.resumes[k].send(r).is_err() {
            return Event::Panicked("worker thread gone".into());
        }
        self.wait()
    }

    fn wait(&mut self) -> Event<T> {
        let (k, ev) = recv_hot(&self.pool.events)
            .unwrap_or_else(|| (usize::MAX, Event::Panicked("worker threads gone".into())));
        if let Event::Parked(p) = ev {
            self.parked = Some((k, p));
        }
        ev
    }
}

/// Receive from `rx`, polling (and yielding the CPU) for up to
/// [`HANDOFF_SPIN_NS_MAX`] before blocking. Only the speed of a handoff
/// depends on it, never what is received: waking a blocked thread on an
/// idle virtual CPU took tens of microseconds on the 2-vCPU machines this
/// runs on (a 300-seed sweep 2.3 times slower than without interleaving;
/// with the polls, about 1.2 times).
fn recv_hot<M>(rx: &Receiver<M>) -> Option<M> {
    let start = Instant::now();
    loop {
        match rx.try_recv() {
            Ok(m) => return Some(m),
            Err(TryRecvError::Disconnected) => return None,
            Err(TryRecvError::Empty) => {}
        }
        if start.elapsed() >= Duration::from_nanos(HANDOFF_SPIN_NS_MAX) {
            return rx.recv().ok();
        }
        std::thread::yield_now();
    }
}

fn worker_main<T: Send + 'static>(
    me: usize,
    jobs: &Mutex<Receiver<JobMsg<'_, T>>>,
    resume: Receiver<Resume>,
    events: Sender<(usize, Event<T>)>,
) {
    crate::quiet_panics_on_this_thread();
    let parks = events.clone();
    let park = move |point: &'static str| -> Resume {
        if parks.send((me, Event::Parked(point))).is_err() {
            return Resume::Finish;
        }
        recv_hot(&resume).unwrap_or(Resume::Finish)
    };
    CTL.with(|c| {
        *c.borrow_mut() = Some(YieldCtl {
            park: Box::new(park),
            rng: Rng::new(0),
            park_ppm: 0,
            left: 0,
            finishing: true,
        })
    });
    loop {
        // The free thread holding the lock is the one that takes the next
        // call (and polls for it); the others wait for the lock.
        let msg = {
            let Ok(rx) = jobs.lock() else { break };
            recv_hot(&rx)
        };
        let Some(msg) = msg else { break };
        set_ctl(|ctl| {
            ctl.rng = msg.rng;
            ctl.park_ppm = msg.park_ppm;
            ctl.left = YIELDS_PER_CALL_MAX;
            ctl.finishing = false;
        });
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(msg.call));
        set_ctl(|ctl| ctl.finishing = true);
        let ev = match r {
            Ok(v) => Event::Returned(v),
            Err(payload) => Event::Panicked(crate::panic_message(payload.as_ref())),
        };
        if events.send((me, ev)).is_err() {
            break;
        }
    }
    CTL.with(|c| c.borrow_mut().take());
}

fn set_ctl(f: impl FnOnce(&mut YieldCtl)) {
    CTL.with(|c| {
        if let Some(ctl) = c.borrow_mut().as_mut() {
            f(ctl);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Two workers interleave at their yield points only where the
    /// scheduler says, and the scheduler thread never parks.
    #[test]
    fn workers_run_one_at_a_time_and_park_where_told() {
        let log = Mutex::new(Vec::new());
        yield_point("scheduler: a no-op");
        assert!(!on_worker());
        std::thread::scope(|s| {
            let pool: Pool<'_, u32> = Pool::spawn(s, 2);
            let (mut a, mut b) = (pool.worker(), pool.worker());
            let step = |who: &'static str| {
                let log = &log;
                move || {
                    assert!(on_worker());
                    log.lock().unwrap().push(format!("{who} 1"));
                    yield_point("p1");
                    log.lock().unwrap().push(format!("{who} 2"));
                    yield_point("p2");
                    log.lock().unwrap().push(format!("{who} 3"));
                    7
                }
            };
            assert!(matches!(
                a.start(Box::new(step("a")), Rng::new(1), 1_000_000),
                Event::Parked("p1")
            ));
            assert!(matches!(
                b.start(Box::new(step("b")), Rng::new(2), 1_000_000),
                Event::Parked("p1")
            ));
            assert!(matches!(a.resume(), Event::Parked("p2")));
            assert!(matches!(b.finish(), Event::Returned(7)));
            assert_eq!(a.parked(), Some("p2"));
            assert!(matches!(a.resume(), Event::Returned(7)));
            // Never parks at 0 ppm.
            assert!(matches!(
                a.start(Box::new(step("a")), Rng::new(3), 0),
                Event::Returned(7)
            ));
        });
        let log = log.into_inner().unwrap();
        assert_eq!(
            log,
            ["a 1", "b 1", "a 2", "b 2", "b 3", "a 3", "a 1", "a 2", "a 3"]
        );
    }

    #[test]
    fn a_panicking_call_is_reported_and_a_parked_one_finishes_at_scope_end() {
        std::thread::scope(|s| {
            let pool: Pool<'_, ()> = Pool::spawn(s, 2);
            let mut a = pool.worker();
            match a.start(Box::new(|| panic!("boom")), Rng::new(1), 0) {
                Event::Panicked(m) => assert!(m.contains("boom"), "{m}"),
                other => panic!("{other:?}"),
            }
            let mut b = pool.worker();
            let ev = b.start(
                Box::new(|| {
                    for _ in 0..3 * YIELDS_PER_CALL_MAX {
                        yield_point("loop");
                    }
                }),
                Rng::new(2),
                1_000_000,
            );
            assert!(matches!(ev, Event::Parked("loop")));
            // Parked parks are bounded per call.
            let mut parks = 1;
            while let Event::Parked(_) = b.resume() {
                parks += 1;
            }
            assert_eq!(parks, YIELDS_PER_CALL_MAX);
            // Left parked: dropping the pool and its handles lets it run
            // to the end.
            assert!(matches!(
                b.start(Box::new(|| yield_point("x")), Rng::new(3), 1_000_000),
                Event::Parked("x")
            ));
            drop((pool, a, b));
        });
    }
}
