//! Deterministic interleaving inside core calls: a hand-rolled, tiny
//! `shuttle`.
//!
//! A core call such as `Zil::commit` fills and issues lwbs on the calling
//! thread with no core lock held; on a real host other threads assign,
//! commit and complete I/O in those windows. To explore them, a core call
//! can run on a [`Worker`], an OS thread of its own (inside a
//! `std::thread::scope`), and the platform calls [`yield_point`] at the
//! places where the core holds no lock. There the worker hands the baton
//! back to the scheduler thread and blocks until the scheduler resumes it.
//!
//! Exactly one thread runs simulation code at any time: the scheduler
//! blocks while a worker runs (it waits for that worker's next event), and
//! a worker runs only between receiving a job or a resume and sending its
//! next event. Every choice (which actor next, whether a yield point
//! parks) comes from the seed's generators, never from the OS scheduler,
//! so a seed replays exactly.
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
use std::sync::mpsc::{channel, Receiver, Sender};
use std::thread::Scope;

/// Most times one core call parks at a yield point; later yield points of
/// the same call run through (a bound on the steps one call can take).
pub const YIELDS_PER_CALL_MAX: u32 = 24;

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

/// The scheduler's handle on one worker thread.
pub struct Worker<'s, T> {
    jobs: Sender<JobMsg<'s, T>>,
    resume: Sender<Resume>,
    events: Receiver<Event<T>>,
    parked: Option<&'static str>,
}

impl<T> std::fmt::Debug for Worker<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("parked", &self.parked)
            .finish_non_exhaustive()
    }
}

impl<'s, T: Send + 'static> Worker<'s, T> {
    /// Start a worker thread in `scope`; it waits for a call.
    pub fn spawn<'e>(scope: &'s Scope<'s, 'e>) -> Self {
        let (jobs_tx, jobs_rx) = channel::<JobMsg<'s, T>>();
        let (resume_tx, resume_rx) = channel::<Resume>();
        let (events_tx, events_rx) = channel::<Event<T>>();
        scope.spawn(move || worker_main(jobs_rx, resume_rx, events_tx));
        Self {
            jobs: jobs_tx,
            resume: resume_tx,
            events: events_rx,
            parked: None,
        }
    }

    /// The yield point this worker's call is parked at, if it is.
    pub fn parked(&self) -> Option<&'static str> {
        self.parked
    }

    /// Run `call` on the worker until it parks or returns. Each yield
    /// point parks with probability `park_ppm`, decided by `rng`.
    pub fn start(&mut self, call: Job<'s, T>, rng: Rng, park_ppm: u32) -> Event<T> {
        assert!(self.parked.is_none(), "a worker runs one call at a time");
        let sent = self.jobs.send(JobMsg {
            call,
            rng,
            park_ppm,
        });
        if sent.is_err() {
            return Event::Panicked("worker thread gone".into());
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
        assert!(
            self.parked.is_some(),
            "resuming a worker that is not parked"
        );
        if self.resume.send(r).is_err() {
            self.parked = None;
            return Event::Panicked("worker thread gone".into());
        }
        self.wait()
    }

    fn wait(&mut self) -> Event<T> {
        let ev = self
            .events
            .recv()
            .unwrap_or_else(|_| Event::Panicked("worker thread gone".into()));
        self.parked = match ev {
            Event::Parked(p) => Some(p),
            _ => None,
        };
        ev
    }
}

fn worker_main<T: Send + 'static>(
    jobs: Receiver<JobMsg<'_, T>>,
    resume: Receiver<Resume>,
    events: Sender<Event<T>>,
) {
    crate::quiet_panics_on_this_thread();
    let parks = events.clone();
    let park = move |point: &'static str| -> Resume {
        if parks.send(Event::Parked(point)).is_err() {
            return Resume::Finish;
        }
        resume.recv().unwrap_or(Resume::Finish)
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
    while let Ok(msg) = jobs.recv() {
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
        if events.send(ev).is_err() {
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
            let mut a: Worker<'_, u32> = Worker::spawn(s);
            let mut b: Worker<'_, u32> = Worker::spawn(s);
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
            let mut a: Worker<'_, ()> = Worker::spawn(s);
            match a.start(Box::new(|| panic!("boom")), Rng::new(1), 0) {
                Event::Panicked(m) => assert!(m.contains("boom"), "{m}"),
                other => panic!("{other:?}"),
            }
            let mut b: Worker<'_, ()> = Worker::spawn(s);
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
            // Left parked: dropping the handle lets it run to the end.
            assert!(matches!(
                b.start(Box::new(|| yield_point("x")), Rng::new(3), 1_000_000),
                Event::Parked("x")
            ));
            drop(b);
        });
    }
}
