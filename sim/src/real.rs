//! The real core under the scheduler: committers, completion contexts, the
//! checkpoint actor, the clock and power cuts, with the reference's
//! invariants checked after every step and the crash oracle after every
//! power cut and every acknowledged commit.
//!
//! # Interleaving inside core calls
//!
//! The core calls that can reach a platform call made with no core lock
//! held — `commit` and `waiter_timeout` (they fill and issue the lwbs they
//! close: `get_data`, `submit_indirect`, the seal, `submit_write`) and
//! `io_done` (`submit_flush`, and `submit_write` of a handed-off lwb) — run
//! through [`Worker`] handles on a [`Pool`] of threads (one handle per
//! committer and [`COMPLETION_THREADS`] for completions; a parked call
//! keeps its thread). At those platform calls a worker may park
//! ([`crate::baton`]); the scheduler then goes on picking actions (other
//! committers' assigns, commits and polls, completions, the clock, the
//! checkpoint, power cuts) and later picks "resume" for the parked call as
//! one more weighted action. One thread runs at a time and every choice is
//! the seed's, so a seed still replays exactly. `assign`, `waiter_poll`,
//! `checkpoint` and stale re-deliveries run on the scheduler thread: they
//! reach no such platform call (`assign`'s lock-free `alloc_itx` comes
//! before it touches anything shared, so parking there is the same as
//! running the call later).
//!
//! A power cut may fall while calls are parked: here a power cut checks
//! crash images of the devices as they are and the run goes on, so a call
//! parked mid-fill is exactly the state a real cut can catch (records
//! placed in a closed lwb not yet written, a write submitted but its
//! issuer not yet back). Nothing acknowledged depends on a parked call:
//! a commit counts as acknowledged only when its waiter is polled `Done`.
//! Before the final drain's power cut every parked call is resumed to its
//! end.
//!
//! A commit's waiter covers the records queued when the commit was called
//! (`upto`, counted before the call starts): records other committers
//! assign while it is parked get higher ids and are not counted as
//! acknowledged by it.

use crate::baton::{Event, Job, Pool, Worker};
use crate::oracle::{self, opaque_body, Expect, RecKind, RecSpec};
use crate::platform::{
    pattern_byte, SimPlatform, LOG_VDEV_BYTES_CHOICES, LWB_POOL_ITEMS_CHOICES, LWB_SLAB_ITEMS,
};
use crate::rng::Rng;
use crate::{FaultSet, SeedOutcome, Trace};
use rzil::format;
use rzil::lwb::LwbState;
use rzil::{
    Config, Error, IoError, IoKind, IoToken, LwbView, Record, WaitStatus, WaiterId, WriteData, Zil,
};
use std::collections::{BTreeMap, HashMap};

/// How often the sync actor may run, per seed: every step, or rarely.
pub const CHECKPOINT_EVERY_STEPS_CHOICES: [u64; 3] = [1, 1, 150];
/// Object set id of the simulated log.
pub const SIM_OBJSET: u64 = 54;
/// Most committers per seed.
pub const COMMITTERS_MAX: u64 = 4;
/// Most records one committer assigns before it commits.
pub const RECORDS_PER_COMMIT_MAX: u64 = 4;
/// The small itx pools (objects) the `itx-pool` fault gives some seeds. A
/// seed with one sets the core's `commit_list_itxs_max` one below it, the
/// most the core's contract allows (`rzil::limits::ITX_POOL_ITEMS_MIN`:
/// more itxs than can be queued). The pool runs out while records wait on
/// the commit list, sit in the open tail or are being filled, so `assign`
/// (`Limit::CommitListItxs`, `Limit::ItxPool`) and a WR_NEED_COPY split
/// meet back-pressure. Otherwise the pool is unbounded, as
/// `kmem_cache_alloc(KM_SLEEP)` never fails.
pub const ITX_POOL_ITEMS_SMALL_CHOICES: [usize; 3] = [3, 5, 9];
/// Random crash images per power cut (besides the harshest one).
pub const CRASH_IMAGES_PER_CUT: u32 = 3;
/// A power cut happens at a step with this probability (ppm).
pub const POWER_CUT_PPM: u32 = 4_000;
/// Probability (ppm) that a completion carries an injected error.
pub const IO_ERROR_PPM: u32 = 1_500;
/// Rounds of the final drain before a pending commit counts as a hang.
pub const DRAIN_ROUNDS_MAX: u32 = 10_000;
/// Largest WR_NEED_COPY write the workload makes (split across blocks).
pub const NEED_COPY_BYTES_MAX: u64 = 40_000;
/// Largest WR_INDIRECT write.
pub const INDIRECT_BYTES_MAX: u64 = 16_384;
/// Largest opaque record body.
pub const OPAQUE_BYTES_MAX: u64 = 600;
/// Worker threads that deliver completions (`io_done`), each of which may
/// be parked inside its call: completion contexts running at once.
pub const COMPLETION_THREADS: usize = 2;
/// Probabilities (ppm) that a yield point parks its call, a seed picks one:
/// always, or now and then (longer runs between parks).
pub const PARK_PPM_CHOICES: [u32; 3] = [1_000_000, 500_000, 150_000];
/// Mixed into the seed for the generator that picks the itx pool size.
const ITX_POOL_STREAM: u64 = 0x17c5_9001_17c5_9001;
/// Scheduler weight of resuming a parked committer's call.
const RESUME_COMMITTER_WEIGHT: u32 = 5;
/// Scheduler weight of resuming a parked completion.
const RESUME_COMPLETION_WEIGHT: u32 = 6;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CState {
    Idle,
    Assigning {
        left: u64,
    },
    Waiting {
        w: WaiterId,
        upto: u64,
        deadline: Option<u64>,
        woken: bool,
        polled: bool,
    },
    /// Inside `commit` (parked on its worker); records `1..=upto` were
    /// queued when it was called.
    Committing {
        upto: u64,
    },
    /// Inside `waiter_timeout(w)` (parked on its worker).
    TimingOut {
        w: WaiterId,
        upto: u64,
        woken: bool,
    },
    Stopped,
}

/// What a worker's core call returned.
#[derive(Clone, Copy, Debug)]
enum Outcome {
    Commit(Result<WaiterId, Error>),
    Timeout(Result<(), Error>),
    IoDone(Result<(), Error>),
}

#[derive(Clone, Copy, Debug)]
enum Action {
    Committer(usize),
    Complete {
        any: bool,
    },
    /// Resume the completion parked on completion thread `k`.
    ResumeCompletion(usize),
    Clock,
    Checkpoint,
    PowerCut,
    Stale,
    StaleWaiter,
}

/// `'a`: the platform; `'z`: the log (which borrows the platform); `'s`:
/// the thread scope of the workers (whose calls borrow the log).
struct World<'a, 'z, 's> {
    p: &'a SimPlatform,
    zil: &'z Zil<&'a SimPlatform>,
    rng: Rng,
    faults: FaultSet,
    committers: Vec<CState>,
    /// Committer `i`'s core calls run on `committer_threads[i]`.
    committer_threads: Vec<Worker<'s, Outcome>>,
    /// Completion threads, and the completion each one is delivering.
    completion_threads: Vec<(Worker<'s, Outcome>, Option<IoToken>)>,
    /// Probability (ppm) that a yield point parks its call.
    park_ppm: u32,
    /// Waiters woken while their commit was still inside the core (its
    /// committer does not know their id yet).
    woken_early: Vec<WaiterId>,
    specs: Vec<RecSpec>,
    acked_upto: u64,
    head: format::Blkptr,
    checkpoint_lr_seq: u64,
    step: u64,
    crash_states: u64,
    states: BTreeMap<u64, LwbState>,
    released: Vec<WaiterId>,
    injected_errors: u64,
    /// The sync actor runs only at multiples of this step count (a slow
    /// txg sync lets the log fill up: back-pressure, then block reuse).
    checkpoint_every_steps: u64,
    /// The oracle's verdicts on inline records, by lr seq.
    verdicts: std::cell::RefCell<HashMap<u64, (u64, bool, &'static str)>>,
    trace: Trace,
}

/// Run one seed of the real core.
pub fn run(seed: u64, faults: &FaultSet, steps: u32, trace: bool) -> SeedOutcome {
    let mut rng = Rng::new(seed);
    let region = LOG_VDEV_BYTES_CHOICES[rng.below(LOG_VDEV_BYTES_CHOICES.len() as u64) as usize];
    let lwb_pool = LWB_POOL_ITEMS_CHOICES[rng.below(LWB_POOL_ITEMS_CHOICES.len() as u64) as usize];
    // Half the seeds under `itx-pool`, from a stream of its own: without
    // the fault every other choice of a seed stays as it was.
    let mut itx_rng = Rng::new(seed ^ ITX_POOL_STREAM);
    let itx_pool = if faults.itx_pool && itx_rng.below(2) == 0 {
        ITX_POOL_ITEMS_SMALL_CHOICES
            [itx_rng.below(ITX_POOL_ITEMS_SMALL_CHOICES.len() as u64) as usize]
    } else {
        usize::MAX
    };
    let p = SimPlatform::new(
        rng.next_u64(),
        if faults.multi_vdev { 2 } else { 1 },
        faults.lying_flush,
        region,
        lwb_pool,
    );
    let mut cfg = Config::new(SIM_OBJSET);
    cfg.commit_timeout_pct = [1, 5, 10, 50][rng.below(4) as usize];
    cfg.max_block_bytes = [16 * 1024, 32 * 1024, 128 * 1024][rng.below(3) as usize];
    cfg.nocacheflush = faults.nocacheflush;
    if itx_pool != usize::MAX {
        p.set_itx_pool(itx_pool);
        cfg.commit_list_itxs_max = itx_pool - 1;
    }
    if faults.no_cache_device && rng.below(2) == 0 {
        p.st().disks.no_write_cache.push(0);
    }
    let zil = match Zil::new(&p, cfg) {
        Ok(z) => z,
        Err(e) => {
            return SeedOutcome {
                failure: Some(format!("Zil::new failed: {e}")),
                ..Default::default()
            }
        }
    };
    let ncommitters = rng.range(1, COMMITTERS_MAX) as usize;
    let park_ppm = PARK_PPM_CHOICES[rng.below(PARK_PPM_CHOICES.len() as u64) as usize];
    let head = zil.chain_head().blkptr();
    let zil = &zil;
    std::thread::scope(|s| {
        // One thread per actor that can be inside a call at once.
        let pool = Pool::spawn(s, ncommitters + COMPLETION_THREADS);
        let mut w = World {
            p: &p,
            zil,
            rng,
            faults: *faults,
            committers: vec![CState::Idle; ncommitters],
            committer_threads: (0..ncommitters).map(|_| pool.worker()).collect(),
            completion_threads: (0..COMPLETION_THREADS)
                .map(|_| (pool.worker(), None))
                .collect(),
            park_ppm,
            woken_early: Vec::new(),
            specs: Vec::new(),
            acked_upto: 0,
            head,
            checkpoint_lr_seq: 0,
            step: 0,
            crash_states: 0,
            states: BTreeMap::new(),
            released: Vec::new(),
            injected_errors: 0,
            checkpoint_every_steps: 1,
            verdicts: Default::default(),
            trace: Trace::new(trace),
        };
        w.checkpoint_every_steps = CHECKPOINT_EVERY_STEPS_CHOICES
            [w.rng.below(CHECKPOINT_EVERY_STEPS_CHOICES.len() as u64) as usize];
        if lwb_pool < LWB_SLAB_ITEMS {
            // A small lwb pool is back-pressure already; with a slow sync
            // actor on top the log would sit stalled (commits retrying)
            // for most of the seed.
            w.checkpoint_every_steps = 1;
        }
        let every = w.checkpoint_every_steps;
        w.trace.push(|| {
            format!(
                "seed {seed}: {ncommitters} committers, lwb pool {lwb_pool}, itx pool {}, log devices of {region} bytes, sync every {} steps, parks at {park_ppm} ppm",
                if itx_pool == usize::MAX { "unbounded".to_string() } else { itx_pool.to_string() },
                every
            )
        });
        drop(pool);
        let res = w.run(steps);
        // A failure may leave calls parked: let them run to their end
        // (nothing is checked any more) so the scope can join their threads.
        w.finish_parked();
        w.outcome(res, faults)
    })
}

impl<'a: 'z, 'z: 's, 's> World<'a, 'z, 's> {
    /// What the seed did, from what [`World::run`] returned.
    fn outcome(self, res: Result<(), String>, faults: &FaultSet) -> SeedOutcome {
        let expected_loss = if faults.lying_flush {
            Some("the device lies about flushes")
        } else if faults.nocacheflush {
            Some("nocacheflush on devices with a volatile cache")
        } else {
            None
        };
        SeedOutcome::of_run(res, self.step, self.crash_states, expected_loss, self.trace)
    }

    fn run(&mut self, steps: u32) -> Result<(), String> {
        for _ in 0..steps {
            if self.committers.iter().all(|c| *c == CState::Stopped) {
                break;
            }
            self.step()?;
        }
        self.drain()?;
        self.power_cut()
    }

    fn actions(&self) -> Vec<(u32, Action)> {
        let mut a = Vec::new();
        let now = self.p.now();
        for (i, c) in self.committers.iter().enumerate() {
            let wgt = match *c {
                CState::Idle => 3,
                CState::Assigning { .. } => 4,
                CState::Waiting {
                    deadline,
                    woken,
                    polled,
                    ..
                } => {
                    if woken || !polled || deadline.is_some_and(|d| now >= d) {
                        6
                    } else {
                        0
                    }
                }
                CState::Committing { .. } | CState::TimingOut { .. } => RESUME_COMMITTER_WEIGHT,
                CState::Stopped => 0,
            };
            if wgt > 0 {
                a.push((wgt, Action::Committer(i)));
            }
        }
        let mut free_completion_thread = false;
        for (k, (t, _)) in self.completion_threads.iter().enumerate() {
            if t.parked().is_some() {
                a.push((RESUME_COMPLETION_WEIGHT, Action::ResumeCompletion(k)));
            } else {
                free_completion_thread = true;
            }
        }
        let st = self.p.st();
        let ready = st.pending.iter().filter(|p| p.ready_ns <= now).count() as u32;
        if ready > 0 && free_completion_thread {
            a.push((8 + ready.min(4), Action::Complete { any: false }));
        }
        if !st.pending.is_empty() && free_completion_thread {
            a.push((2, Action::Complete { any: true }));
        }
        if self.faults.stale && !st.completed.is_empty() {
            a.push((1, Action::Stale));
        }
        drop(st);
        a.push((3, Action::Clock));
        if self.step % self.checkpoint_every_steps == 0 {
            a.push((1, Action::Checkpoint));
        }
        if !self.released.is_empty() {
            a.push((1, Action::StaleWaiter));
        }
        a
    }

    fn step(&mut self) -> Result<(), String> {
        self.step += 1;
        self.p.lwbs.set_step(self.step);
        if self.faults.power_cuts && self.rng.chance_ppm(POWER_CUT_PPM) {
            self.act(Action::PowerCut)?;
        } else {
            let acts = self.actions();
            let weights: Vec<u32> = acts.iter().map(|a| a.0).collect();
            let pick = self
                .rng
                .weighted(&weights)
                .expect("clock is always enabled");
            self.act(acts[pick].1)?;
        }
        self.after_step()
    }

    fn act(&mut self, a: Action) -> Result<(), String> {
        match a {
            Action::Committer(i) => self.committer(i),
            Action::Complete { any } => self.complete(any, true),
            Action::ResumeCompletion(k) => {
                self.trace
                    .push(|| format!("completion-{k:<3} resume io_done"));
                let ev = self.completion_threads[k].0.resume();
                self.completion_event(k, ev)
            }
            Action::Clock => {
                let ns = self.rng.range(1_000, 150_000);
                self.p.advance_ns(ns);
                let now = self.p.now();
                self.trace
                    .push(|| format!("clock          +{ns} ns -> {now}"));
                Ok(())
            }
            Action::Checkpoint => self.checkpoint(),
            Action::PowerCut => self.power_cut(),
            Action::Stale => self.stale_completion(),
            Action::StaleWaiter => {
                let i = self.rng.below(self.released.len() as u64) as usize;
                let w = self.released[i];
                let (what, r) = if self.rng.below(2) == 0 {
                    ("poll", self.zil.waiter_poll(w).map(|_| ()))
                } else {
                    ("timeout", self.zil.waiter_timeout(w))
                };
                match r {
                    Err(Error::StaleHandle) => {
                        self.trace
                            .push(|| format!("stale-waiter   {what}({w:?}) refused: StaleHandle"));
                        Ok(())
                    }
                    other => Err(format!(
                        "a released waiter {w:?} was not refused as stale by {what}: {other:?}"
                    )),
                }
            }
        }
    }

    fn new_record(&mut self) -> Result<Option<()>, String> {
        let id = self.specs.len() as u64 + 1;
        let foid = RecSpec::foid(id);
        let offset = (id % 16) * 65_536;
        let (kind, len) = match self.rng.below(10) {
            0..=2 => (RecKind::Opaque, self.rng.range(8, OPAQUE_BYTES_MAX)),
            3..=6 => (
                RecKind::Copied,
                self.rng
                    .range(1, u64::from(rzil::limits::WR_COPIED_DATA_BYTES_MAX)),
            ),
            7..=8 => (RecKind::NeedCopy, self.rng.range(1, NEED_COPY_BYTES_MAX)),
            _ => (RecKind::Indirect, self.rng.range(512, INDIRECT_BYTES_MAX)),
        };
        let body;
        let data: Vec<u8>;
        let rec = match kind {
            RecKind::Opaque => {
                body = opaque_body(id, len as usize);
                Record::Opaque {
                    txtype: format::TX_SETATTR,
                    body: &body,
                }
            }
            RecKind::Copied => {
                data = (0..len).map(|i| pattern_byte(foid, offset + i)).collect();
                Record::Write {
                    foid,
                    offset,
                    data: WriteData::Copied(&data),
                }
            }
            RecKind::NeedCopy => Record::Write {
                foid,
                offset,
                data: WriteData::NeedCopy { length: len },
            },
            RecKind::Indirect => Record::Write {
                foid,
                offset,
                data: WriteData::Indirect { length: len },
            },
        };
        match self.zil.assign(1, &rec) {
            Ok(()) => {
                self.specs.push(RecSpec { kind, offset, len });
                self.trace
                    .push(|| format!("assign         record {id} {kind:?} {len} bytes"));
                Ok(Some(()))
            }
            Err(Error::Backpressure(l)) => {
                self.trace
                    .push(|| format!("assign         back-pressure: {l:?}"));
                Ok(None)
            }
            Err(Error::LogFailed) => Err("log failed".into()),
            Err(e) => Err(format!("assign of a valid record failed: {e}")),
        }
    }

    fn committer(&mut self, i: usize) -> Result<(), String> {
        match self.committers[i] {
            CState::Idle => {
                let left = self.rng.range(1, RECORDS_PER_COMMIT_MAX);
                self.committers[i] = CState::Assigning { left };
                self.committer(i)
            }
            CState::Assigning { left } => {
                let r = if left > 0 {
                    self.new_record()
                } else {
                    Ok(None)
                };
                match r {
                    Ok(Some(())) if left > 1 => {
                        self.committers[i] = CState::Assigning { left: left - 1 };
                        return Ok(());
                    }
                    Ok(_) => {}
                    Err(e) if e == "log failed" => {
                        self.committers[i] = CState::Stopped;
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
                // Counted before the call: what this commit must cover.
                let upto = self.specs.len() as u64;
                self.committers[i] = CState::Committing { upto };
                let zil = self.zil;
                self.start_call(i, Box::new(move || Outcome::Commit(zil.commit())))
            }
            CState::Waiting {
                w,
                upto,
                deadline,
                woken,
                ..
            } => {
                let now = self.p.now();
                if !woken && deadline.is_some_and(|d| now >= d) {
                    let me = format!("committer-{i}");
                    self.trace
                        .push(|| format!("{me:<14} waiter_timeout({w:?}) at {now}"));
                    self.committers[i] = CState::TimingOut { w, upto, woken };
                    let zil = self.zil;
                    return self
                        .start_call(i, Box::new(move || Outcome::Timeout(zil.waiter_timeout(w))));
                }
                self.poll(i, w, upto, woken)
            }
            CState::Committing { .. } | CState::TimingOut { .. } => {
                let what = self.call_name(i);
                self.trace
                    .push(|| format!("{:<14} resume {what}", format!("committer-{i}")));
                let ev = self.committer_threads[i].resume();
                self.committer_event(i, ev)
            }
            CState::Stopped => Ok(()),
        }
    }

    fn call_name(&self, i: usize) -> &'static str {
        match self.committers[i] {
            CState::Committing { .. } => "commit",
            CState::TimingOut { .. } => "waiter_timeout",
            _ => "nothing",
        }
    }

    /// Start committer `i`'s core call on its thread (its state already
    /// says which call) and handle what it did before it parked or returned.
    fn start_call(&mut self, i: usize, call: Job<'s, Outcome>) -> Result<(), String> {
        let rng = self.rng.fork();
        let ev = self.committer_threads[i].start(call, rng, self.park_ppm);
        self.committer_event(i, ev)
    }

    fn committer_event(&mut self, i: usize, ev: Event<Outcome>) -> Result<(), String> {
        let me = format!("committer-{i}");
        let what = self.call_name(i);
        match ev {
            Event::Parked(at) => {
                self.trace
                    .push(|| format!("{me:<14} {what} parked at {at}"));
                Ok(())
            }
            Event::Panicked(m) => Err(format!("panic: {m} ({me}, in {what})")),
            Event::Returned(Outcome::Commit(r)) => {
                let CState::Committing { upto } = self.committers[i] else {
                    return Err(format!(
                        "{me}: a commit returned in state {:?}",
                        self.committers[i]
                    ));
                };
                match r {
                    Ok(w) => {
                        self.trace
                            .push(|| format!("{me:<14} commit -> {w:?} (records 1..={upto})"));
                        let early = self.woken_early.iter().position(|&x| x == w);
                        let woken = early.map(|k| self.woken_early.swap_remove(k)).is_some();
                        self.committers[i] = CState::Waiting {
                            w,
                            upto,
                            deadline: None,
                            woken,
                            polled: false,
                        };
                    }
                    Err(Error::LogFailed) => self.committers[i] = CState::Stopped,
                    Err(Error::Backpressure(_)) => {
                        self.committers[i] = CState::Assigning { left: 0 }
                    }
                    Err(e) => return Err(format!("commit failed: {e}")),
                }
                Ok(())
            }
            Event::Returned(Outcome::Timeout(r)) => {
                let CState::TimingOut { w, upto, woken } = self.committers[i] else {
                    return Err(format!(
                        "{me}: a waiter_timeout returned in state {:?}",
                        self.committers[i]
                    ));
                };
                r.map_err(|e| format!("waiter_timeout of a live waiter: {e}"))?;
                self.poll(i, w, upto, woken)
            }
            Event::Returned(Outcome::IoDone(_)) => {
                Err(format!("{me}: an io_done returned on a committer thread"))
            }
        }
    }

    /// Committer `i` polls its waiter `w` (records `1..=upto`).
    fn poll(&mut self, i: usize, w: WaiterId, upto: u64, woken: bool) -> Result<(), String> {
        let me = format!("committer-{i}");
        let st = self
            .zil
            .waiter_poll(w)
            .map_err(|e| format!("poll of a live waiter {w:?}: {e}"))?;
        self.trace
            .push(|| format!("{me:<14} waiter_poll({w:?}) -> {st:?}"));
        match st {
            WaitStatus::Done(Ok(())) => {
                self.released.push(w);
                self.acked_upto = self.acked_upto.max(upto);
                self.committers[i] = CState::Idle;
                // Acknowledged: a power cut right now (every
                // unflushed write lost) must keep every record.
                self.check_image(None)
                    .map_err(|e| format!("{me} acknowledged records 1..={upto}, but {e}"))?;
            }
            WaitStatus::Done(Err(e)) => {
                self.released.push(w);
                if self.injected_errors == 0 {
                    return Err(format!("commit failed ({e}) with no fault injected"));
                }
                self.committers[i] = CState::Stopped;
            }
            WaitStatus::Pending { deadline_ns, .. } => {
                if woken {
                    return Err(format!("waiter {w:?} woken but still pending"));
                }
                self.committers[i] = CState::Waiting {
                    w,
                    upto,
                    deadline: deadline_ns,
                    woken: false,
                    polled: true,
                };
            }
        }
        Ok(())
    }

    fn complete(&mut self, any: bool, faults: bool) -> Result<(), String> {
        let now = self.p.now();
        let idx: Vec<usize> = {
            let st = self.p.st();
            st.pending
                .iter()
                .enumerate()
                .filter(|(_, p)| any || p.ready_ns <= now)
                .map(|(i, _)| i)
                .collect()
        };
        if idx.is_empty() {
            return Ok(());
        }
        let i = idx[self.rng.below(idx.len() as u64) as usize];
        let kind = self.p.st().pending[i].io.kind();
        let inject = faults
            && match kind {
                IoKind::Write | IoKind::Indirect => self.faults.io_errors,
                IoKind::Flush { .. } => self.faults.flush_errors,
            }
            && self.rng.chance_ppm(IO_ERROR_PPM);
        let no_cache = match kind {
            IoKind::Flush { vdev } => self.p.st().disks.has_no_write_cache(vdev),
            _ => false,
        };
        let result = if inject {
            self.injected_errors += 1;
            Err(IoError::Io)
        } else if no_cache {
            self.p.st().flushes_not_supported += 1;
            Err(IoError::NotSupported)
        } else {
            Ok(())
        };
        let Some(k) = self
            .completion_threads
            .iter()
            .position(|(t, _)| t.parked().is_none())
        else {
            return Err("a completion with every completion thread busy".into());
        };
        let io = self.p.complete(i, result);
        self.trace.push(|| {
            format!(
                "completion-{k:<3} lwb {} {:?} -> {:?}",
                io.lwb_seq(),
                io.kind(),
                result
            )
        });
        let zil = self.zil;
        let rng = self.rng.fork();
        self.completion_threads[k].1 = Some(io);
        let ev = self.completion_threads[k].0.start(
            Box::new(move || Outcome::IoDone(zil.io_done(io, result))),
            rng,
            self.park_ppm,
        );
        self.completion_event(k, ev)
    }

    fn completion_event(&mut self, k: usize, ev: Event<Outcome>) -> Result<(), String> {
        let io = self.completion_threads[k].1;
        match ev {
            Event::Parked(at) => {
                self.trace
                    .push(|| format!("completion-{k:<3} io_done parked at {at}"));
                Ok(())
            }
            Event::Returned(Outcome::IoDone(r)) => {
                self.completion_threads[k].1 = None;
                r.map_err(|e| format!("completion of in-flight {io:?} refused: {e}"))
            }
            Event::Returned(other) => Err(format!(
                "completion thread {k} returned {other:?} for io_done"
            )),
            Event::Panicked(m) => Err(format!("panic: {m} (completion of {io:?})")),
        }
    }

    /// The first actor parked inside a core call, if any: a committer by
    /// index, or a completion thread (`Err`).
    fn first_parked(&self) -> Option<Result<usize, usize>> {
        let c = self
            .committer_threads
            .iter()
            .position(|t| t.parked().is_some());
        let k = || {
            self.completion_threads
                .iter()
                .position(|(t, _)| t.parked().is_some())
        };
        c.map(Ok).or_else(|| k().map(Err))
    }

    /// Resume every parked call until it returns, with no more parking and
    /// nothing checked (the seed is over).
    fn finish_parked(&mut self) {
        for t in self.committer_threads.iter_mut() {
            if t.parked().is_some() {
                let _ = t.finish();
            }
        }
        for (t, _) in self.completion_threads.iter_mut() {
            if t.parked().is_some() {
                let _ = t.finish();
            }
        }
    }

    /// Re-deliver a completed token. Whether the core must refuse it for
    /// certain is decided from the lwb's state now; a duplicate whose lwb is
    /// still in the same state is only delivered under `dup-inflight`.
    fn stale_completion(&mut self) -> Result<(), String> {
        let tok: IoToken = {
            let st = self.p.st();
            st.completed[self.rng.below(st.completed.len() as u64) as usize]
        };
        let mut view: Option<LwbView> = None;
        self.zil.for_each_lwb(|v| {
            if v.id.seq == tok.lwb_seq() {
                view = Some(*v);
            }
        });
        let certain = match (view, tok.kind()) {
            (None, _) => true,
            (Some(v), IoKind::Write) => v.state != LwbState::Issued || v.zio.write_own_done,
            (Some(v), IoKind::Flush { .. }) => v.state != LwbState::WriteDone,
            (Some(v), IoKind::Indirect) => v.state >= LwbState::WriteDone,
        };
        if !certain && !self.faults.dup_inflight {
            return Ok(());
        }
        let r = self.zil.io_done(tok, Ok(()));
        let state = view.map(|v| v.state.name()).unwrap_or("freed");
        self.trace.push(|| {
            format!(
                "stale-io       re-deliver lwb {} {:?} (lwb {state}) -> {r:?}",
                tok.lwb_seq(),
                tok.kind()
            )
        });
        match r {
            Err(Error::StaleHandle) | Err(Error::UnexpectedCompletion) => Ok(()),
            other => Err(format!(
                "a duplicate completion of {:?} for lwb {} (state {state}) was accepted: {other:?}",
                tok.kind(),
                tok.lwb_seq()
            )),
        }
    }

    fn checkpoint(&mut self) -> Result<(), String> {
        let s = self.zil.durable_lr_seq();
        let out = self
            .zil
            .checkpoint(s)
            .map_err(|e| format!("checkpoint({s}) failed: {e}"))?;
        // The sync actor persists the new head and checkpoint together
        // (`zh_log` in the txg that synced the records).
        self.head = out.head.blkptr();
        self.checkpoint_lr_seq = s;
        let freed = out.lwbs_freed;
        let hs = out.head.verifier.seq();
        self.trace.push(|| {
            format!("sync           checkpoint({s}) freed {freed} lwbs; head is block seq {hs}")
        });
        Ok(())
    }

    fn check_image(&mut self, rng: Option<&mut Rng>) -> Result<(), String> {
        // Crafted blocks go into power-cut images (not the per-ack check).
        let craft = self.faults.crafted && rng.is_some();
        let durable_lr_seq = self.zil.durable_lr_seq();
        let st = self.p.st();
        let mut image = st.disks.crash_image(rng);
        let ex = Expect {
            head: self.head,
            checkpoint_lr_seq: self.checkpoint_lr_seq,
            specs: &self.specs,
            pieces: &st.pieces,
            acked_upto: self.acked_upto,
            durable_lr_seq,
            verdicts: &self.verdicts,
        };
        let mut r = oracle::check(&image, &ex);
        // A crafted pool (#16308): where the chain ended, a block that
        // verifies but whose record claims an absurd length. The reader
        // must end the chain cleanly there, losing nothing acknowledged.
        if let (true, Ok(seen)) = (craft, &r) {
            if let Some(bp) = seen.end_bp {
                image.plant(bp.vdev(), bp.offset_bytes(), &oracle::crafted_block(&bp));
                r = oracle::check(&image, &ex)
                    .map_err(|e| format!("with a crafted block at the chain's end: {e}"));
            }
        }
        drop(st);
        self.crash_states += 1;
        r.map(|_| ())
    }

    fn power_cut(&mut self) -> Result<(), String> {
        let step = self.step;
        let acked = self.acked_upto;
        let (writes, flushes, refusals, unsupported, itx_refusals) = {
            let st = self.p.st();
            (
                st.writes,
                st.flushes,
                st.alloc_refusals,
                st.flushes_not_supported,
                st.itx_refusals,
            )
        };
        let lwb_refusals = self.p.lwbs.refusals();
        self.trace.push(|| {
            format!("POWER CUT      at step {step}: {CRASH_IMAGES_PER_CUT}+1 crash images, records 1..={acked} acknowledged; {writes} writes, {flushes} flushes ({unsupported} not supported), {refusals} log-space, {lwb_refusals} lwb-pool and {itx_refusals} itx-pool refusals so far")
        });
        self.check_image(None)
            .map_err(|e| format!("power cut (every unflushed write lost): {e}"))?;
        for k in 0..CRASH_IMAGES_PER_CUT {
            let mut r = self.rng.fork();
            self.check_image(Some(&mut r)).map_err(|e| {
                format!(
                    "power cut (image {k}: a seeded subset of unflushed writes, torn sectors): {e}"
                )
            })?;
        }
        Ok(())
    }

    /// Let every I/O finish and every timeout fire; a commit that never
    /// completes is a hang.
    fn drain(&mut self) -> Result<(), String> {
        for _ in 0..DRAIN_ROUNDS_MAX {
            // Parked calls first: each resume runs one to its next park or
            // its end (at most YIELDS_PER_CALL_MAX parks per call).
            if let Some(who) = self.first_parked() {
                self.step += 1;
                match who {
                    Ok(i) => self.committer(i)?,
                    Err(k) => self.act(Action::ResumeCompletion(k))?,
                }
                self.after_step()?;
                continue;
            }
            let waiting: Vec<usize> = (0..self.committers.len())
                .filter(|&i| matches!(self.committers[i], CState::Waiting { .. }))
                .collect();
            let pending = self.p.st().pending.len();
            if waiting.is_empty() && pending == 0 {
                return Ok(());
            }
            self.step += 1;
            if pending > 0 {
                self.complete(true, false)?;
            } else {
                // Nothing in flight: time passes and the sync actor frees
                // what is done (a commit may be waiting for log space).
                self.p.advance_ns(rzil::limits::COMMIT_TIMEOUT_NS_MAX);
                self.checkpoint()?;
            }
            for i in waiting {
                if let CState::Waiting { w, upto, .. } = self.committers[i] {
                    self.committers[i] = CState::Waiting {
                        w,
                        upto,
                        deadline: Some(0),
                        woken: false,
                        polled: true,
                    };
                    self.committer(i)?;
                }
            }
            self.after_step()?;
        }
        Err("drain: a commit never completed (hang)".into())
    }

    fn after_step(&mut self) -> Result<(), String> {
        let (woken, violations) = {
            let mut st = self.p.st();
            (
                std::mem::take(&mut st.woken),
                std::mem::take(&mut st.violations),
            )
        };
        if let Some(v) = violations.first() {
            return Err(format!("platform saw: {v}"));
        }
        if let Some(v) = self.p.lwbs.violations().first() {
            return Err(format!("lwb slab: {v}"));
        }
        for wk in woken {
            let mut known = false;
            for c in self.committers.iter_mut() {
                if let CState::Waiting { w, woken, .. } | CState::TimingOut { w, woken, .. } = c {
                    if *w == wk {
                        *woken = true;
                        known = true;
                    }
                }
            }
            if !known {
                // Its commit is still inside the core (parked): it does not
                // know its waiter's id yet.
                self.woken_early.push(wk);
            }
        }
        self.check_invariants()
    }

    /// Reference §1.3–§1.7, observed through `for_each_lwb`.
    fn check_invariants(&mut self) -> Result<(), String> {
        let mut views: Vec<LwbView> = Vec::new();
        self.zil.for_each_lwb(|v| views.push(*v));
        let Some(first) = views.first() else {
            return Err("the lwb list is empty (the tail must always exist)".into());
        };
        let head_seq = first.id.seq;
        for (k, v) in views.iter().enumerate() {
            let seq = v.id.seq;
            let st = v.state;
            let bad = |what: &str| format!("lwb {seq} ({}): {what}", st.name());
            if seq != head_seq + k as u64 {
                return Err(bad("block seqs on the list are not consecutive"));
            }
            let last = k + 1 == views.len();
            if st == LwbState::Opened && !last {
                return Err(bad("OPENED but not the tail (at most one OPENED lwb)"));
            }
            if st == LwbState::New && !last {
                return Err(bad("NEW but not the tail"));
            }
            if k > 0 {
                let prev = views[k - 1].state;
                if st == LwbState::FlushDone && prev != LwbState::FlushDone {
                    return Err(bad("FLUSH_DONE while an earlier lwb is not"));
                }
                if st >= LwbState::Issued && prev < LwbState::Issued {
                    return Err(bad("issued before an earlier lwb"));
                }
            }
            if st >= LwbState::WriteDone && (v.zio.write_pending != 0 || !v.zio.write_own_done) {
                return Err(bad("WRITE_DONE or later but its write zio is not done"));
            }
            if st == LwbState::FlushDone && (v.zio.root_pending != 0 || v.waiters != 0) {
                return Err(bad(
                    "FLUSH_DONE with root children pending or waiters linked",
                ));
            }
            if st < LwbState::Issued && (v.zio.root_armed || v.zio.flushes_issued != 0) {
                return Err(bad("not issued but its root zio is armed"));
            }
            if let Some(old) = self.states.insert(seq, st) {
                if st < old {
                    return Err(bad(&format!("state went backwards from {}", old.name())));
                }
            }
        }
        // FLUSH_DONE without an error means the block really was written:
        // the device saw its write complete.
        if self.zil.failure().is_none() {
            let st = self.p.st();
            if let Some(v) = views
                .iter()
                .find(|v| v.state == LwbState::FlushDone && !st.written.contains(&v.id.seq))
            {
                return Err(format!(
                    "lwb {} is FLUSH_DONE but its block write never completed on the device",
                    v.id.seq
                ));
            }
        }
        // Freed lwbs: only from the head, only FLUSH_DONE.
        let mut gone = Vec::new();
        for (&seq, &st) in &self.states {
            if seq < head_seq {
                if st != LwbState::FlushDone {
                    return Err(format!(
                        "lwb {seq} left the list in state {} (only FLUSH_DONE lwbs are freed)",
                        st.name()
                    ));
                }
                gone.push(seq);
            }
        }
        for s in gone {
            self.states.remove(&s);
        }
        if self.p.lwbs.live() != views.len() {
            return Err(format!(
                "lwb slab holds {} objects but the list has {}",
                self.p.lwbs.live(),
                views.len()
            ));
        }
        Ok(())
    }
}
