//! rzil-sim: the deterministic simulator (issue #5).
//!
//! Every run is a seed. One seeded scheduler ([`rng::Rng`]) picks the next
//! step among the actors — committers (assign, commit, poll, time out),
//! completion contexts (deliver any pending write, flush or WR_INDIRECT
//! completion, in any order, sometimes with an error), the checkpoint
//! (`zil_sync`) actor, the clock, and power cuts — so any failure replays
//! exactly from its seed. On the real core, the calls that fill and issue
//! lwbs with no lock held (`commit`, `waiter_timeout`, `io_done`) run on
//! [`baton`] workers that may park inside the core at those lock-free
//! points, so the other actors also run in the middle of them.
//!
//! Two lwb paths run under the same scheduler and faults:
//!
//! * [`Model::Rzil`]: the real core (`rzil::Zil`) on [`platform::SimPlatform`]
//!   (simulated disks with volatile caches, a trashing lwb slab).
//! * [`Model::Ozfs220`]: [`model`], a small reference model of the OpenZFS
//!   2.2.0 C lwb path with explicit frees into a trashing arena and one
//!   switch per historic bug ([`BugName`]).
//!
//! After every step the reference's invariants (§1.3–§1.7) are checked;
//! after every power cut [`oracle`] walks the chain a reader would find and
//! checks every acknowledged record. See [`run`].

#![forbid(unsafe_op_in_unsafe_fn)]

pub mod baton;
pub mod disk;
pub mod model;
pub mod oracle;
pub mod platform;
pub mod real;
pub mod rng;
pub mod slab;

use std::ops::Range;
use std::time::Instant;

/// Steps one seed runs before its final drain and power cut.
pub const STEPS_PER_SEED_DEFAULT: u32 = 1500;
/// Lines of trace kept for a failing seed (the last ones before the failure).
pub const TRACE_LINES_MAX: usize = 120;

/// Which lwb path to simulate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Model {
    /// The real rzil core.
    Rzil,
    /// The OpenZFS 2.2.0 reference model (bug switches apply here).
    Ozfs220,
}

impl Model {
    /// Parse `rzil` or `ozfs-2.2.0`.
    pub fn parse(s: &str) -> Result<Model, String> {
        match s {
            "rzil" => Ok(Model::Rzil),
            "ozfs-2.2.0" | "ozfs220" => Ok(Model::Ozfs220),
            _ => Err(format!("unknown model {s:?} (rzil, ozfs-2.2.0)")),
        }
    }
}

/// One switch per historic OpenZFS lwb bug (reference §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BugName {
    /// #15233: root and write issued before the child; `lwb_child_zio`
    /// read after the root was issued.
    Pr15233,
    /// #14959: waiters signalled from the lwb's list after FLUSH_DONE and
    /// the unlock.
    Pr14959,
    /// #14999: `lwb_issued_txg` read after FLUSH_DONE and the unlock.
    Pr14999,
    /// #15228: waiters signalled (from a local list) after the unlock, so a
    /// waiter reads `zcw_lwb->lwb_state` of a freed lwb.
    Pr15228,
    /// #15278: flushes deferred into a next lwb that is not ISSUED.
    Pr15278,
    /// #15132: the records of a block without a next pointer are not
    /// replayed (next-block allocation failed).
    Pr15132,
    /// #16308: `lrc_reclen` not bounds-checked in parse.
    Pr16308,
    /// #17521: the open lwb is not written on suspend.
    Pr17521,
    /// #16333: a commit acknowledged without a durable write (a flush error
    /// that does not reach the root zio).
    Pr16333,
}

impl BugName {
    /// Every switch, in the order of the reference.
    pub const ALL: [BugName; 9] = [
        BugName::Pr15233,
        BugName::Pr14959,
        BugName::Pr14999,
        BugName::Pr15228,
        BugName::Pr15278,
        BugName::Pr15132,
        BugName::Pr16308,
        BugName::Pr17521,
        BugName::Pr16333,
    ];

    /// The PR number as a name (`"15233"`).
    pub fn name(self) -> &'static str {
        match self {
            BugName::Pr15233 => "15233",
            BugName::Pr14959 => "14959",
            BugName::Pr14999 => "14999",
            BugName::Pr15228 => "15228",
            BugName::Pr15278 => "15278",
            BugName::Pr15132 => "15132",
            BugName::Pr16308 => "16308",
            BugName::Pr16333 => "16333",
            BugName::Pr17521 => "17521",
        }
    }

    /// Parse `15233` or `#15233`.
    pub fn parse(s: &str) -> Result<BugName, String> {
        let t = s.trim().trim_start_matches('#');
        BugName::ALL
            .iter()
            .copied()
            .find(|b| b.name() == t)
            .ok_or_else(|| {
                let names: Vec<&str> = BugName::ALL.iter().map(|b| b.name()).collect();
                format!("unknown bug {s:?} (one of {})", names.join(", "))
            })
    }
}

/// Which faults the scheduler may inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultSet {
    /// Write (and WR_INDIRECT data write) errors.
    pub io_errors: bool,
    /// Flush errors.
    pub flush_errors: bool,
    /// Power cuts at random steps (each checked with several crash images,
    /// torn at sector granularity); the final power cut always happens.
    pub power_cuts: bool,
    /// Log blocks spread over two devices (multi-vdev flushes, deferral).
    pub multi_vdev: bool,
    /// Re-deliver completions whose lwb has moved on (or been freed): the
    /// core must refuse them.
    pub stale: bool,
    /// Re-deliver completions while their lwb is still in the same state
    /// (a duplicate from a buggy platform); the core must refuse them.
    pub dup_inflight: bool,
    /// The devices lie about flushes: the oracle expects loss and says so.
    pub lying_flush: bool,
    /// Next-block allocation failures (the ozfs model; rzil allocates at
    /// close and sees back-pressure instead).
    pub alloc_fail: bool,
    /// A crafted log block with an absurd `lrc_reclen` on the device.
    pub crafted: bool,
    /// The core is told to skip cache flushes (`nocacheflush`) on devices
    /// that have a volatile cache: the oracle expects loss and says so.
    pub nocacheflush: bool,
    /// Some seeds give one log device no volatile cache: its writes are
    /// durable on completion and its flushes answer "not supported" (the
    /// core must mark it `nowritecache` and stop flushing it).
    pub no_cache_device: bool,
    /// Half the seeds give the log a small itx pool
    /// (`real::ITX_POOL_ITEMS_SMALL_CHOICES`) and a commit list one
    /// shorter (the core's contract, `ITX_POOL_ITEMS_MIN`), so `assign` and
    /// a WR_NEED_COPY split meet back-pressure. Not in `default`, so the
    /// default sweep's seeds keep their schedules; `make test-sim` runs a
    /// sweep with it.
    pub itx_pool: bool,
}

impl Default for FaultSet {
    fn default() -> Self {
        Self {
            io_errors: true,
            flush_errors: true,
            power_cuts: true,
            multi_vdev: true,
            stale: true,
            dup_inflight: true,
            lying_flush: false,
            alloc_fail: true,
            crafted: true,
            nocacheflush: false,
            no_cache_device: false,
            itx_pool: false,
        }
    }
}

impl FaultSet {
    /// No faults at all (still the final power cut and the oracle).
    pub const NONE: FaultSet = FaultSet {
        io_errors: false,
        flush_errors: false,
        power_cuts: false,
        multi_vdev: false,
        stale: false,
        dup_inflight: false,
        lying_flush: false,
        alloc_fail: false,
        crafted: false,
        nocacheflush: false,
        no_cache_device: false,
        itx_pool: false,
    };

    /// Whether these faults make loss of acknowledged records expected.
    pub fn expects_loss(&self) -> bool {
        self.lying_flush || self.nocacheflush
    }

    /// Names accepted by [`FaultSet::parse`].
    pub const NAMES: &'static str =
        "none, default, io, flush, power, multi-vdev, stale, dup-inflight, lying-flush, alloc, crafted, nocacheflush, no-cache-device, itx-pool";

    /// Parse a comma-separated list (`default` = the standard set).
    pub fn parse(list: &str) -> Result<FaultSet, String> {
        let mut f = FaultSet::NONE;
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match name {
                "none" => {}
                "default" => {
                    let d = FaultSet::default();
                    f = FaultSet {
                        lying_flush: f.lying_flush,
                        nocacheflush: f.nocacheflush,
                        no_cache_device: f.no_cache_device,
                        itx_pool: f.itx_pool,
                        ..d
                    };
                }
                "io" => f.io_errors = true,
                "flush" => f.flush_errors = true,
                "power" => f.power_cuts = true,
                "multi-vdev" => f.multi_vdev = true,
                "stale" => f.stale = true,
                "dup-inflight" => f.dup_inflight = true,
                "lying-flush" => f.lying_flush = true,
                "alloc" => f.alloc_fail = true,
                "crafted" => f.crafted = true,
                "nocacheflush" => f.nocacheflush = true,
                "no-cache-device" => f.no_cache_device = true,
                "itx-pool" => f.itx_pool = true,
                _ => {
                    return Err(format!(
                        "unknown fault {name:?} (one of: {})",
                        FaultSet::NAMES
                    ))
                }
            }
        }
        Ok(f)
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct SimArgs {
    /// Seeds `start..end`.
    pub seeds: Range<u64>,
    /// Which lwb path.
    pub model: Model,
    /// A historic bug switch (the ozfs model only).
    pub bug: Option<BugName>,
    /// Faults to inject.
    pub faults: FaultSet,
    /// Steps per seed.
    pub steps_per_seed: u32,
    /// Stop at the first failing seed.
    pub stop_at_first_failure: bool,
}

impl SimArgs {
    /// `seeds` on `model` with the default faults and step count.
    pub fn new(seeds: Range<u64>, model: Model) -> Self {
        Self {
            seeds,
            model,
            bug: None,
            faults: FaultSet::default(),
            steps_per_seed: STEPS_PER_SEED_DEFAULT,
            stop_at_first_failure: false,
        }
    }
}

/// What one seed did.
#[derive(Clone, Debug, Default)]
pub struct SeedOutcome {
    /// Scheduler steps taken.
    pub steps: u64,
    /// Crash images checked by the oracle.
    pub crash_states: u64,
    /// The first broken promise, if any.
    pub failure: Option<String>,
    /// The trace (only when asked for).
    pub trace: Vec<String>,
}

/// What a sweep did. JSON keys are stable (see [`SimReport::to_json`]).
#[derive(Clone, Debug, Default)]
pub struct SimReport {
    /// Seeds run.
    pub seeds_run: u64,
    /// Steps over all seeds.
    pub steps: u64,
    /// Crash images checked over all seeds.
    pub crash_states: u64,
    /// Seeds that failed.
    pub failures: u64,
    /// The first seed that failed.
    pub first_failing_seed: Option<u64>,
    /// What broke on the first failing seed.
    pub first_failure: Option<String>,
    /// Readable trace of the first failing seed (replayed with tracing).
    pub trace: Vec<String>,
    /// Failures were expected (a lying-flush device loses data by design).
    pub expected_loss: bool,
    /// Wall time of the sweep.
    pub elapsed_s: f64,
}

impl SimReport {
    /// The report as one JSON object with the stable keys `seeds_run`,
    /// `steps`, `crash_states`, `failures`, `first_failing_seed` (plus
    /// `first_failure`, `expected_loss`, `elapsed_s`, `crash_states_per_min`).
    pub fn to_json(&self) -> serde_json::Value {
        let per_min = if self.elapsed_s > 0.0 {
            (self.crash_states as f64 * 60.0 / self.elapsed_s).round()
        } else {
            0.0
        };
        serde_json::json!({
            "seeds_run": self.seeds_run,
            "steps": self.steps,
            "crash_states": self.crash_states,
            "failures": self.failures,
            "first_failing_seed": self.first_failing_seed,
            "first_failure": self.first_failure,
            "expected_loss": self.expected_loss,
            "elapsed_s": (self.elapsed_s * 1000.0).round() / 1000.0,
            "crash_states_per_min": per_min,
        })
    }
}

thread_local! {
    /// Set while this thread runs a seed: its panics are failures the
    /// report carries, not messages for stderr.
    static IN_SEED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Install (once per process) a panic hook that stays quiet for panics of
/// the code under test inside a seed and defers to the previous hook for
/// everything else (a test's own assertion, say).
fn install_quiet_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_SEED.with(|f| f.get()) {
                prev(info);
            }
        }));
    });
}

/// Mark this thread as one that only runs the code under test (a
/// [`baton::Worker`]): its panics are failures a seed reports, so the hook
/// stays quiet for them.
pub(crate) fn quiet_panics_on_this_thread() {
    install_quiet_hook();
    IN_SEED.with(|f| f.set(true));
}

/// The message of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_string()))
        .unwrap_or_else(|| "panic".into())
}

/// Run one seed, catching a panic of the code under test as a failure.
pub fn run_seed(args: &SimArgs, seed: u64, trace: bool) -> SeedOutcome {
    install_quiet_hook();
    IN_SEED.with(|f| f.set(true));
    let res = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match args.model {
        Model::Rzil => real::run(seed, &args.faults, args.steps_per_seed, trace),
        Model::Ozfs220 => model::run(seed, args.bug, &args.faults, args.steps_per_seed, trace),
    }));
    IN_SEED.with(|f| f.set(false));
    match res {
        Ok(o) => o,
        Err(payload) => SeedOutcome {
            failure: Some(format!("panic: {}", panic_message(payload.as_ref()))),
            ..Default::default()
        },
    }
}

/// Run a sweep. A failing seed is run again with tracing to produce the
/// trace; panics of the code under test are failures, not aborts.
pub fn run(args: &SimArgs) -> SimReport {
    let start = Instant::now();
    let mut rep = SimReport {
        expected_loss: args.faults.expects_loss(),
        ..Default::default()
    };
    for seed in args.seeds.clone() {
        let o = run_seed(args, seed, false);
        rep.seeds_run += 1;
        rep.steps += o.steps;
        rep.crash_states += o.crash_states;
        if let Some(f) = o.failure {
            rep.failures += 1;
            if rep.first_failing_seed.is_none() {
                rep.first_failing_seed = Some(seed);
                let again = run_seed(args, seed, true);
                rep.trace = again.trace;
                rep.first_failure = Some(f);
            }
            if args.stop_at_first_failure {
                break;
            }
        }
    }
    rep.elapsed_s = start.elapsed().as_secs_f64();
    rep
}

impl SeedOutcome {
    /// What a seed did: `res` is its run's result at step `step`. A failure
    /// under `expected_loss` (why loss is expected, if it is) is labelled
    /// `EXPECTED LOSS`; a failure also ends the trace.
    pub fn of_run(
        res: Result<(), String>,
        step: u64,
        crash_states: u64,
        expected_loss: Option<&str>,
        mut trace: Trace,
    ) -> Self {
        let failure = res.err().map(|e| match expected_loss {
            Some(why) => format!("EXPECTED LOSS ({why}): step {step}: {e}"),
            None => format!("step {step}: {e}"),
        });
        if let Some(f) = &failure {
            let f = f.clone();
            trace.push(|| format!("FAILURE {f}"));
        }
        Self {
            steps: step,
            crash_states,
            failure,
            trace: trace.into_lines(),
        }
    }
}

/// A bounded ring of trace lines (kept only when tracing).
#[derive(Debug, Default)]
pub struct Trace {
    on: bool,
    lines: std::collections::VecDeque<String>,
}

impl Trace {
    /// A trace that records when `on`.
    pub fn new(on: bool) -> Self {
        Self {
            on,
            lines: Default::default(),
        }
    }

    /// Whether lines are kept.
    pub fn on(&self) -> bool {
        self.on
    }

    /// Keep a line (formatted only when tracing).
    pub fn push(&mut self, f: impl FnOnce() -> String) {
        if self.on {
            if self.lines.len() >= TRACE_LINES_MAX {
                self.lines.pop_front();
            }
            self.lines.push_back(f());
        }
    }

    /// The lines.
    pub fn into_lines(self) -> Vec<String> {
        self.lines.into()
    }
}
