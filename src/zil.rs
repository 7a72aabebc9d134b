//! The log: commit path, lwb issue, the zio graph's completions, checkpoint.
//!
//! # Big theory
//!
//! A [`Zil`] is one intent log (`zilog_t`) writing one chain of slim log
//! blocks. Callers [`assign`](Zil::assign) records (itxs) and then
//! [`commit`](Zil::commit); a commit places every queued record into lwbs,
//! links a commit waiter to the lwb holding the last of them, closes lwbs
//! that are full (or, for a lone committer, at once), copies their records
//! into block buffers with no lock held, and issues them. The caller then
//! sleeps on the waiter ([`waiter_poll`](Zil::waiter_poll), woken through
//! [`Platform::wake`]) and, if its lwb is still open when the commit timeout
//! passes, closes and issues it itself ([`waiter_timeout`](Zil::waiter_timeout)).
//!
//! Completions ([`io_done`](Zil::io_done)) drive the zio graph of each lwb:
//!
//! ```text
//! root ── write ── (child: WR_INDIRECT data writes)
//!   │       └──── prev lwb's write   (prev ISSUED and without waiters, #17458)
//!   ├── flushes (issued when the write is done; deferred into the next lwb
//!   │            when this one has no waiters and the next is ISSUED, #15278)
//!   └── prev lwb's root               (unless prev is FLUSH_DONE)
//! ```
//!
//! A zio is done when all its children are; its done handler runs before its
//! parents hear of it. Root done means FLUSH_DONE: the waiters are signalled
//! under `zl_lock` before it is dropped (#15228), so no waiter can ever see
//! a freed lwb. [`checkpoint`](Zil::checkpoint) (the `zil_sync` analogue)
//! frees FLUSH_DONE lwbs from the head once their records are covered.
//!
//! # Locks
//!
//! `issuer` (`zl_issuer_lock`) → `log` (`zl_lock`) → the platform's waiter
//! lock (leaf, inside [`Platform::wake`]). The issuer lock guards the commit
//! list, the tail lwb's records and the size planner; the log lock guards
//! the lwb list, every lwb object and the waiter table. No platform
//! submission is made with either lock held; anything needed after a lock is
//! dropped is copied into a local while it is held.
//!
//! # Errors
//!
//! The first lwb whose write or flush fails (or whose block could not be
//! allocated) fails the log: its waiters and those of every later lwb get
//! the error, and new commits get [`Error::LogFailed`]. The chain on disk
//! stays valid up to the last lwb that completed.

use crate::bounded::{self, BoundedVec, DrainOnDrop, Inline, Ring};
use crate::error::{Error, IoError, Limit};
use crate::format::{self, Blkptr, LrCommon, LrWrite, ZioCksum};
use crate::itx::{round8, Itx, ItxKind, Record, WriteKind};
use crate::limits::*;
use crate::lwb::{Closed, Lwb, LwbId, LwbObj, LwbState, New, Opened, Ready};
use crate::plan::Planner;
use crate::platform::{BlockAddr, IoKind, IoToken, Platform, WaiterId};
use core::sync::atomic::{AtomicBool, Ordering};
use lock_api::Mutex;

/// Tunables of one log (the `kern.rzil` sysctls in the kernel).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Object set id: verifier word 2 of every block.
    pub objset: u64,
    /// How long an open lwb waits for more records, as a percentage of the
    /// lwb latency moving average (`zfs_commit_timeout_pct`).
    pub commit_timeout_pct: u32,
    /// Skip cache flushes (`zil_nocacheflush`). Unsafe with a volatile
    /// write cache: acknowledged records can be lost on power loss.
    pub nocacheflush: bool,
    /// Largest lwb (`zil_maxblocksize`), a multiple of 4 KiB in
    /// [`LWB_BLOCK_SIZE_MIN_BYTES`, `LWB_BLOCK_SIZE_MAX_BYTES`].
    pub max_block_bytes: u32,
    /// Records get sequence numbers above this (a replayed log's last seq).
    pub first_lr_seq: u64,
    /// Birth txg stamped into block pointers.
    pub txg: u64,
    /// Most itxs queued on the commit list, in
    /// [1, [`COMMIT_LIST_ITXS_MAX`]]: `assign` meets back-pressure at it. A
    /// platform whose itx pool can run out holds more itxs than this (see
    /// [`ITX_POOL_ITEMS_MIN`]); one with a small pool lowers it.
    pub commit_list_itxs_max: usize,
}

impl Config {
    /// Defaults for objset `objset`.
    pub const fn new(objset: u64) -> Self {
        Self {
            objset,
            commit_timeout_pct: COMMIT_TIMEOUT_PCT_DEFAULT,
            nocacheflush: false,
            max_block_bytes: LWB_BLOCK_SIZE_MAX_BYTES,
            first_lr_seq: 0,
            txg: 1,
            commit_list_itxs_max: COMMIT_LIST_ITXS_MAX,
        }
    }

    fn validate(&self) -> Result<(), Error> {
        let m = self.max_block_bytes;
        if !(LWB_BLOCK_SIZE_MIN_BYTES..=LWB_BLOCK_SIZE_MAX_BYTES).contains(&m)
            || m % LWB_BLOCK_ALIGN_BYTES != 0
        {
            return Err(Error::InvalidRecord(
                "max_block_bytes not a multiple of 4 KiB in [4 KiB, 128 KiB]",
            ));
        }
        if !(1..=COMMIT_LIST_ITXS_MAX).contains(&self.commit_list_itxs_max) {
            return Err(Error::InvalidRecord(
                "commit_list_itxs_max not in [1, COMMIT_LIST_ITXS_MAX]",
            ));
        }
        if self.commit_timeout_pct > 1000 {
            return Err(Error::InvalidRecord("commit_timeout_pct above 1000"));
        }
        if self.first_lr_seq > FIRST_LR_SEQ_MAX {
            return Err(Error::InvalidRecord(
                "first_lr_seq above FIRST_LR_SEQ_MAX (2^62): record seqs would wrap",
            ));
        }
        Ok(())
    }
}

/// Counters (the `kern.rzil` stats and `rzil run`'s figures).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Calls to `commit` that got a waiter.
    pub commits: u64,
    /// Records placed into lwbs.
    pub records: u64,
    /// Record bytes placed into lwbs (headers and inline data).
    pub record_bytes: u64,
    /// lwbs issued.
    pub lwbs_issued: u64,
    /// lwbs freed by checkpoints.
    pub lwbs_freed: u64,
    /// Block writes submitted.
    pub writes: u64,
    /// Bytes of block writes submitted.
    pub write_bytes: u64,
    /// Flushes submitted.
    pub flushes: u64,
    /// Flush sets deferred into the next lwb.
    pub flushes_deferred: u64,
    /// lwbs closed because a waiter's commit timeout passed.
    pub timeouts: u64,
    /// lwbs closed at once by the single-committer fast path.
    pub fast_closes: u64,
    /// lwbs that completed with an error.
    pub lwb_errors: u64,
}

/// Where the chain starts: what the platform persists (`zh_log`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainHead {
    /// The first block still needed.
    pub blk: BlockAddr,
    /// Its verifier (guids, objset, seq).
    pub verifier: ZioCksum,
    /// The birth txg stamped into its block pointer.
    pub txg: u64,
}

impl ChainHead {
    /// The block pointer a reader starts the chain walk from.
    pub fn blkptr(&self) -> Blkptr {
        Blkptr::log_block(
            self.blk.vdev,
            self.blk.offset_bytes,
            self.blk.size_bytes,
            self.verifier,
            self.txg,
        )
    }
}

/// What a checkpoint did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointOutcome {
    /// lwbs freed (their blocks returned to the platform).
    pub lwbs_freed: u32,
    /// The chain head after the checkpoint; persist it before reusing the
    /// freed blocks' space for anything a reader might follow.
    pub head: ChainHead,
}

/// A commit waiter's state, as [`Zil::waiter_poll`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStatus {
    /// The commit is durable (`Ok`) or failed; the waiter is released.
    Done(Result<(), Error>),
    /// Not yet. With a deadline, call [`Zil::waiter_timeout`] if nothing
    /// woke the caller by then; without one, sleep until woken.
    Pending {
        /// Absolute time (platform clock) after which to time out.
        deadline_ns: Option<u64>,
        /// The block seq of the lwb the waiter is linked to, if any. Every
        /// waiter of an lwb is signalled at once, when it is done (or
        /// fails), so a platform can put the committers of one lwb to
        /// sleep together and wake them with one call.
        lwb_seq: Option<u64>,
    },
}

/// One consistent view of an lwb, for introspection and tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LwbView {
    /// Block seq and generation.
    pub id: LwbId,
    /// State.
    pub state: LwbState,
    /// Block, if allocated.
    pub blk: Option<BlockAddr>,
    /// Block size.
    pub size_bytes: u32,
    /// Bytes used (set at close).
    pub nused_bytes: u32,
    /// Records in the block.
    pub records: u32,
    /// Highest record seq.
    pub max_lr_seq: u64,
    /// Linked waiters.
    pub waiters: u16,
    /// zio graph counters.
    pub zio: crate::lwb::ZioCounts,
}

/// What a commit waiter in use waits for (see [`Zil::for_each_waiter`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaiterWait {
    /// Not linked to an lwb (back-pressure): its commit runs again at the
    /// deadline.
    Unlinked,
    /// Linked to the lwb with this block seq, in this state (`None`: no
    /// longer on the list, which a signalled waiter never is).
    Linked {
        /// Block seq of the lwb.
        lwb_seq: u64,
        /// Its state, if it is on the list.
        lwb_state: Option<LwbState>,
    },
    /// Signalled with this result, not yet polled by its committer.
    Done(Result<(), Error>),
}

/// A commit waiter in use, as [`Zil::for_each_waiter`] shows it.
#[derive(Clone, Copy, Debug)]
pub struct WaiterView {
    /// Its slot in the waiter table.
    pub slot: u16,
    /// What it waits for.
    pub wait: WaiterWait,
    /// Its commit timeout (linked to the open tail) or retry time
    /// (unlinked), in the platform clock's ns.
    pub deadline_ns: u64,
    /// Its committer gave up on it; the slot is freed when its lwb is done.
    pub abandoned: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WaiterState {
    Free,
    /// Not linked to any lwb yet (back-pressure): retry at the deadline.
    Unlinked,
    /// Linked to the lwb with this block seq.
    Linked(u64),
    Done(Result<(), Error>),
}

#[derive(Clone, Copy, Debug)]
struct WaiterSlot {
    gen: u32,
    state: WaiterState,
    deadline_ns: u64,
    next: Option<u16>,
    /// Its committer stopped waiting ([`Zil::waiter_abandon`]) while it was
    /// linked to an lwb: the slot is released when that lwb is done,
    /// instead of holding a result nobody will poll.
    abandoned: bool,
}

/// The commit waiters (`zil_commit_waiter_t`), a fixed table: a slot is
/// named by its index plus a generation, so a stale [`WaiterId`] is caught.
/// Free slots are chained through `next` (a slot is on an lwb's waiter
/// list or on the free list, never both), most recently released first.
struct WaiterTable<P: Platform> {
    slots: P::Slots<WaiterSlot>,
    free_head: Option<u16>,
}

impl<P: Platform> WaiterTable<P> {
    /// Slot `i` of a new table: free, chained to slot `i + 1`.
    fn initial_slot(i: usize) -> WaiterSlot {
        WaiterSlot {
            gen: 0,
            state: WaiterState::Free,
            deadline_ns: 0,
            abandoned: false,
            // COMMIT_WAITERS_MAX fits in u16 (checked below).
            next: (i + 1 < COMMIT_WAITERS_MAX).then(|| (i + 1) as u16),
        }
    }

    /// A table over `slots`, which must hold [`Self::initial_slot`]s.
    fn with_slots(slots: P::Slots<WaiterSlot>) -> Option<Self> {
        let fits = slots.len() == COMMIT_WAITERS_MAX
            && slots
                .iter()
                .enumerate()
                .all(|(i, s)| s.state == WaiterState::Free && s.next == Self::initial_slot(i).next);
        fits.then_some(Self {
            slots,
            free_head: Some(0),
        })
    }

    fn alloc(&mut self) -> Option<WaiterId> {
        let slot = self.free_head?;
        let s = &mut self.slots[usize::from(slot)];
        debug_assert_eq!(s.state, WaiterState::Free);
        self.free_head = s.next;
        s.gen = s.gen.wrapping_add(1);
        s.state = WaiterState::Unlinked;
        s.next = None;
        s.abandoned = false;
        Some(WaiterId { slot, gen: s.gen })
    }

    fn get(&mut self, w: WaiterId) -> Result<&mut WaiterSlot, Error> {
        match self.slots.get_mut(usize::from(w.slot)) {
            Some(s) if s.gen == w.gen && s.state != WaiterState::Free => Ok(s),
            _ => Err(Error::StaleHandle),
        }
    }

    fn release(&mut self, w: WaiterId) {
        let s = &mut self.slots[usize::from(w.slot)];
        s.state = WaiterState::Free;
        s.gen = s.gen.wrapping_add(1);
        s.next = self.free_head;
        self.free_head = Some(w.slot);
    }
}

static_assertions::const_assert!(COMMIT_WAITERS_MAX <= u16::MAX as usize);
// Indirect children are named by an index below 128 (a u128 bitmask).
static_assertions::const_assert!(LWB_ITXS_MAX <= 128);
static_assertions::const_assert!(VDEVS_MAX <= 64);

/// The tail lwb's handle: NEW until its first record, then OPENED.
#[derive(Debug)]
enum Tail {
    New(Lwb<New>),
    Opened(Lwb<Opened>),
}

/// State guarded by `zl_issuer_lock`.
struct IssuerState<P: Platform> {
    /// Itxs assigned but not yet placed (`zl_itx_commit_list`).
    commit_list: Ring<ItxSlots<P>, COMMIT_LIST_ITXS_MAX>,
    /// The tail lwb (always present: closing allocates the next one).
    tail: Option<Tail>,
    tail_seq: u64,
    tail_size_bytes: u32,
    /// Bytes reserved in the tail, chain header included.
    nused_bytes: u32,
    /// Records placed in the tail, in order.
    placed: BoundedVec<ItxSlots<P>, LWB_ITXS_MAX>,
    placed_bytes: u64,
    indirect: u16,
    min_lr_seq: u64,
    planner: Planner,
    /// `zl_parallel`: bursts left before the log counts as single-committer.
    parallel: u32,
    /// Last record sequence number handed out (`zl_lr_seq`).
    lr_seq: u64,
}

/// A platform table of itx slots.
type ItxSlots<P> = <P as Platform>::Slots<Option<<P as Platform>::ItxBox>>;

/// The records of a closed lwb, travelling with it to the thread that
/// fills its buffer. One such list (1 KiB with pointer-sized boxes) is a
/// local of each thread that closes lwbs, lent to `close_tail` and
/// `fill_and_issue`, so it is never moved or copied on the stack.
type ClosedItxs<P> = DrainOnDrop<<P as Platform>::ItxBox, LWB_ITXS_MAX>;

/// A closed lwb travelling to the thread that fills and issues it; its
/// records travel beside it in a [`ClosedItxs`].
struct ClosedLwb<P: Platform> {
    handle: Lwb<Closed>,
    size_bytes: u32,
    nused_bytes: u32,
    buf: P::Buf,
}

/// A filled lwb; parked in the log until its block arrives if need be.
struct ReadyLwb<P: Platform> {
    handle: Lwb<Ready>,
    buf: P::Buf,
    nused_bytes: u32,
}

/// State guarded by `zl_lock`.
struct LogState<P: Platform> {
    /// `zl_lwb_list`, oldest first; block seqs are consecutive.
    lwbs: Ring<P::Slots<Option<P::LwbBox>>, LWB_INFLIGHT_MAX>,
    /// READY lwbs waiting for their block, by `seq % LWB_INFLIGHT_MAX`.
    parked: P::Slots<Option<ReadyLwb<P>>>,
    /// A READY lwb whose predecessor is issued, left by an issue chain that
    /// reached [`ISSUE_CHAIN_MAX`]; the next `io_done` or `commit` issues it.
    handoff: Option<ReadyLwb<P>>,
    next_gen: u32,
    guid: [u64; 2],
    waiters: WaiterTable<P>,
    /// `zl_last_lwb_latency`: moving average of issue → flush done, ns.
    last_latency_ns: u64,
    /// Block seq of the first lwb that failed.
    failed_at_seq: Option<u64>,
    failure: Option<Error>,
    /// vdevs that answered a flush with "not supported" (`vdev_nowritecache`).
    nowritecache: u64,
    /// Highest record seq known durable (`zl_commit_lr_seq`).
    durable_lr_seq: u64,
    stats: Stats,
}

/// What an issue hands the issuing thread to do once `zl_lock` is dropped:
/// plain data, no reference to the lwb.
struct Submission<P: Platform> {
    io: IoToken,
    addr: Option<BlockAddr>,
    buf: P::Buf,
    nused_bytes: u32,
    verifier: ZioCksum,
    next: Blkptr,
}

/// Flushes to submit after `zl_lock` is dropped: (lwb id, vdev mask).
/// Bounded small so `io_done`'s frame stays small on a kernel stack: when
/// it fills, settling pauses, the batch is submitted and settling resumes.
type FlushList = BoundedVec<Inline<(LwbId, u64), FLUSH_BATCH_MAX>, FLUSH_BATCH_MAX>;

/// Most lwbs one thread issues in a row before handing the chain off.
/// With the `testkit` feature (every test build) it is 2, so that tests
/// exercise the hand-off path constantly instead of only under heavy load.
const ISSUE_CHAIN_MAX: usize = if cfg!(feature = "testkit") {
    2
} else {
    LWB_INFLIGHT_MAX
};

/// Flush sets submitted per `zl_lock` hold in `io_done`.
const FLUSH_BATCH_MAX: usize = 8;

/// One intent log. See the module documentation.
pub struct Zil<P: Platform> {
    platform: P,
    config: Config,
    failed: AtomicBool,
    issuer: Mutex<P::IssuerRawMutex, IssuerState<P>>,
    log: Mutex<P::RawMutex, LogState<P>>,
}

impl<P: Platform> core::fmt::Debug for Zil<P> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Zil")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A platform table of `N` empty slots for a [`Ring`] or [`BoundedVec`].
fn empty_slots<P: Platform, T: Send, const N: usize>(
    platform: &P,
) -> Result<P::Slots<Option<T>>, Error> {
    match platform.alloc_slots(N, |_| None) {
        Ok(t) if bounded::fits::<T, N>(&t) => Ok(t),
        _ => Err(Error::Backpressure(Limit::Tables)),
    }
}

fn vdev_bit(vdev: u32) -> u64 {
    1u64 << (vdev % VDEVS_MAX)
}

impl<P: Platform> LogState<P> {
    fn index_of_seq(&self, seq: u64) -> Option<usize> {
        let head = self.lwbs.front()?.id.seq;
        let i = usize::try_from(seq.checked_sub(head)?).ok()?;
        (i < self.lwbs.len()).then_some(i)
    }

    fn obj(&mut self, i: usize) -> &mut LwbObj {
        self.lwbs.get_mut(i).expect("lwb index in range")
    }

    fn find(&self, id: LwbId) -> Result<usize, Error> {
        let i = self.index_of_seq(id.seq).ok_or(Error::StaleHandle)?;
        match self.lwbs.get(i) {
            Some(o) if o.id == id => Ok(i),
            _ => Err(Error::StaleHandle),
        }
    }

    fn timeout_ns(&self, pct: u32) -> u64 {
        (self.last_latency_ns.saturating_mul(u64::from(pct.max(1))) / 100)
            .clamp(COMMIT_TIMEOUT_NS_MIN, COMMIT_TIMEOUT_NS_MAX)
    }

    /// Whether an lwb with block seq `seq` is ordered after a failure.
    fn failed_through(&self, seq: u64) -> Option<Error> {
        match self.failed_at_seq {
            Some(f) if f <= seq => Some(Error::LogFailed),
            _ => None,
        }
    }

    /// After a failure: finish waiter `w` with [`Error::LogFailed`] if it is
    /// unlinked or linked to an lwb that was never issued. Returns whether
    /// it did.
    fn fail_unissued_waiter(&mut self, w: WaiterId, state: WaiterState) -> bool {
        match state {
            WaiterState::Unlinked => {}
            WaiterState::Linked(seq) => {
                let Some(i) = self.index_of_seq(seq) else {
                    return false;
                };
                if self.obj(i).state >= LwbState::Ready {
                    return false;
                }
                // Unlink from the lwb's list (bounded by the table size).
                let mut prev: Option<u16> = None;
                let mut cur = self.obj(i).waiters_head;
                for _ in 0..COMMIT_WAITERS_MAX {
                    let Some(c) = cur else { break };
                    let next = self.waiters.slots[usize::from(c)].next;
                    if c == w.slot {
                        match prev {
                            None => self.obj(i).waiters_head = next,
                            Some(p) => self.waiters.slots[usize::from(p)].next = next,
                        }
                        self.obj(i).waiters -= 1;
                        break;
                    }
                    prev = cur;
                    cur = next;
                }
            }
            WaiterState::Done(_) | WaiterState::Free => return false,
        }
        if let Ok(s) = self.waiters.get(w) {
            s.state = WaiterState::Done(Err(Error::LogFailed));
            s.next = None;
        }
        true
    }

    /// Fail every lwb not yet FLUSH_DONE (the oldest such and all later).
    fn fail_inflight(&mut self) {
        let first = self
            .lwbs
            .iter()
            .find(|o| o.state < LwbState::FlushDone)
            .map(|o| o.id.seq);
        if let Some(f) = first {
            if self.failed_at_seq.is_none_or(|cur| f < cur) {
                self.failed_at_seq = Some(f);
            }
        }
    }

    /// Link waiter `w` to lwb index `i` (`zil_commit_waiter_link_lwb`).
    fn link_waiter(&mut self, w: WaiterId, i: usize, deadline_ns: u64) -> Result<(), Error> {
        let (seq, old_head) = {
            let o = self.obj(i);
            debug_assert!(o.state < LwbState::FlushDone);
            (o.id.seq, o.waiters_head)
        };
        // The handle is checked before its slot goes on the list: a stale
        // one must not put a slot on two lists.
        let s = self.waiters.get(w)?;
        s.state = WaiterState::Linked(seq);
        s.next = old_head;
        s.deadline_ns = deadline_ns;
        let o = self.obj(i);
        o.waiters += 1;
        o.waiters_head = Some(w.slot);
        Ok(())
    }

    /// Signal and unlink every waiter of lwb `i`, under `zl_lock`.
    fn signal_waiters(&mut self, i: usize, result: Result<(), Error>, platform: &P) {
        let mut next = {
            let o = self.obj(i);
            o.waiters = 0;
            o.waiters_head.take()
        };
        // Bounded: each slot is on at most one list, COMMIT_WAITERS_MAX in all.
        for _ in 0..COMMIT_WAITERS_MAX {
            let Some(slot) = next else { break };
            let s = &mut self.waiters.slots[usize::from(slot)];
            next = s.next.take();
            let w = WaiterId { slot, gen: s.gen };
            if s.abandoned {
                // Nobody will poll it: free the slot instead.
                self.waiters.release(w);
                continue;
            }
            s.state = WaiterState::Done(result);
            platform.wake(w);
        }
        debug_assert!(next.is_none(), "waiter list longer than the table");
    }
}

impl<P: Platform> Zil<P> {
    /// Start a new log: a new chain (fresh verifier GUIDs) whose first block
    /// (4 KiB, `ZIL_MIN_BLKSZ`) is allocated now. Persist
    /// [`chain_head`](Zil::chain_head) before acknowledging any commit to
    /// anyone who will need to replay (as `zil_create` waits for `zh_log`).
    ///
    /// The log's big tables (lwb list, commit list, waiter table) come from
    /// [`Platform::alloc_slots`]; what this returns is a few hundred bytes.
    pub fn new(platform: P, config: Config) -> Result<Self, Error> {
        config.validate()?;
        let no_tables = Error::Backpressure(Limit::Tables);
        let mut lwbs = Ring::with_slots(empty_slots::<P, P::LwbBox, LWB_INFLIGHT_MAX>(&platform)?);
        let commit_list = Ring::with_slots(empty_slots::<P, P::ItxBox, COMMIT_LIST_ITXS_MAX>(
            &platform,
        )?);
        let placed = BoundedVec::with_slots(empty_slots::<P, P::ItxBox, LWB_ITXS_MAX>(&platform)?);
        let parked = empty_slots::<P, ReadyLwb<P>, LWB_INFLIGHT_MAX>(&platform)?;
        let waiter_slots = platform
            .alloc_slots(COMMIT_WAITERS_MAX, WaiterTable::<P>::initial_slot)
            .map_err(|_| no_tables)?;
        let waiters = WaiterTable::with_slots(waiter_slots).ok_or(no_tables)?;
        let guid = [platform.random_u64(), platform.random_u64()];
        let first_seq = 1;
        let blk = platform
            .alloc_log_block(LWB_BLOCK_SIZE_MIN_BYTES)
            .map_err(|_| Error::NoLogSpace)?;
        let mut obj = LwbObj::new(
            LwbId {
                seq: first_seq,
                gen: 1,
            },
            LWB_BLOCK_SIZE_MIN_BYTES,
        );
        obj.blk = Some(blk);
        let boxed = match platform.alloc_lwb(obj) {
            Ok(b) => b,
            Err(_) => {
                platform.free_log_block(blk);
                return Err(Error::Backpressure(Limit::LwbPool));
            }
        };
        let handle = Lwb::for_new(&boxed);
        if lwbs.push_back(boxed).is_err() {
            unreachable!("empty ring");
        }
        platform.lwb_state_changed(first_seq, None, LwbState::New);
        let issuer = IssuerState {
            commit_list,
            tail: Some(Tail::New(handle)),
            tail_seq: first_seq,
            tail_size_bytes: LWB_BLOCK_SIZE_MIN_BYTES,
            nused_bytes: ZIL_CHAIN_BYTES,
            placed,
            placed_bytes: 0,
            indirect: 0,
            min_lr_seq: 0,
            planner: Planner::new(config.max_block_bytes),
            parallel: 0,
            lr_seq: config.first_lr_seq,
        };
        let log = LogState {
            lwbs,
            parked,
            handoff: None,
            next_gen: 2,
            guid,
            waiters,
            last_latency_ns: 0,
            failed_at_seq: None,
            failure: None,
            nowritecache: 0,
            durable_lr_seq: config.first_lr_seq,
            stats: Stats::default(),
        };
        Ok(Self {
            platform,
            config,
            failed: AtomicBool::new(false),
            issuer: Mutex::new(issuer),
            log: Mutex::new(log),
        })
    }

    /// Report that `o` just moved out of `from` ([`Platform::lwb_state_changed`]);
    /// `o` is on the list, so the log lock is held.
    fn stepped(&self, o: &LwbObj, from: LwbState) {
        self.platform
            .lwb_state_changed(o.id.seq, Some(from), o.state);
    }

    /// The platform this log runs on.
    pub fn platform(&self) -> &P {
        &self.platform
    }

    /// The tunables.
    pub fn config(&self) -> &Config {
        &self.config
    }

    fn head_of(&self, log: &LogState<P>) -> ChainHead {
        let o = log
            .lwbs
            .front()
            .expect("the list always holds the tail lwb");
        let blk = o.blk.expect("the head lwb always has a block");
        ChainHead {
            blk,
            verifier: ZioCksum::verifier(log.guid[0], log.guid[1], self.config.objset, o.id.seq),
            txg: self.config.txg,
        }
    }

    /// Where a reader starts the chain.
    pub fn chain_head(&self) -> ChainHead {
        let log = self.log.lock();
        self.head_of(&log)
    }

    /// Counters.
    pub fn stats(&self) -> Stats {
        self.log.lock().stats
    }

    /// The error that failed the log, if any.
    pub fn failure(&self) -> Option<Error> {
        self.log.lock().failure
    }

    /// Highest record seq known durable.
    pub fn durable_lr_seq(&self) -> u64 {
        self.log.lock().durable_lr_seq
    }

    /// Call `f` with a view of every lwb on the list, oldest first, taken
    /// under one hold of `zl_lock`.
    pub fn for_each_lwb(&self, mut f: impl FnMut(&LwbView)) {
        let log = self.log.lock();
        for o in log.lwbs.iter() {
            f(&LwbView {
                id: o.id,
                state: o.state,
                blk: o.blk,
                size_bytes: o.size_bytes,
                nused_bytes: o.nused_bytes,
                records: o.records,
                max_lr_seq: o.max_lr_seq,
                waiters: o.waiters,
                zio: o.zio,
            });
        }
    }

    /// Call `f` with a view of every commit waiter in use (not free), in
    /// slot order, taken under one hold of `zl_lock`: what a stall report
    /// needs to say what each waiting committer waits for.
    pub fn for_each_waiter(&self, mut f: impl FnMut(&WaiterView)) {
        let log = self.log.lock();
        for (slot, s) in log.waiters.slots.iter().enumerate() {
            let wait = match s.state {
                WaiterState::Free => continue,
                WaiterState::Unlinked => WaiterWait::Unlinked,
                WaiterState::Linked(seq) => WaiterWait::Linked {
                    lwb_seq: seq,
                    lwb_state: log
                        .index_of_seq(seq)
                        .and_then(|i| log.lwbs.get(i))
                        .map(|o| o.state),
                },
                WaiterState::Done(result) => WaiterWait::Done(result),
            };
            f(&WaiterView {
                // COMMIT_WAITERS_MAX fits in u16 (the const_assert below it).
                slot: slot as u16,
                wait,
                deadline_ns: s.deadline_ns,
                abandoned: s.abandoned,
            });
        }
    }

    /// Queue a record for the next commit (`zil_itx_assign`). Copies inline
    /// data now. Fails with back-pressure when the commit list or the itx
    /// pool is full, and with [`Error::LogFailed`] once the log failed.
    pub fn assign(&self, txg: u64, rec: &Record<'_>) -> Result<(), Error> {
        if self.failed.load(Ordering::Acquire) {
            return Err(Error::LogFailed);
        }
        let mut itx = self
            .platform
            .alloc_itx()
            .map_err(|_| Error::Backpressure(Limit::ItxPool))?;
        itx.fill(txg, rec)?;
        let max_data = u64::from(self.config.max_block_bytes - ZIL_CHAIN_BYTES);
        if !matches!(
            itx.kind,
            ItxKind::Write {
                kind: WriteKind::NeedCopy,
                ..
            }
        ) && itx.whole_bytes() > max_data
        {
            return Err(Error::InvalidRecord(
                "record larger than the largest log block",
            ));
        }
        let mut iss = self.issuer.lock();
        if iss.commit_list.len() >= self.config.commit_list_itxs_max {
            return Err(Error::Backpressure(Limit::CommitListItxs));
        }
        iss.commit_list
            .push_back(itx)
            .map_err(|_| Error::Backpressure(Limit::CommitListItxs))
    }

    /// Commit every record assigned so far (`zil_commit`): returns a waiter
    /// to poll. The lwbs this call closes are filled and issued before it
    /// returns, by this thread, with no lock held.
    pub fn commit(&self) -> Result<WaiterId, Error> {
        if self.failed.load(Ordering::Acquire) {
            return Err(Error::LogFailed);
        }
        let w = {
            let mut log = self.log.lock();
            let w = log
                .waiters
                .alloc()
                .ok_or(Error::Backpressure(Limit::CommitWaiters))?;
            log.stats.commits += 1;
            w
        };
        self.resume_handoff();
        self.commit_writer(w, true);
        Ok(w)
    }

    /// `zil_commit_writer`: place queued records, link `w`, close what must
    /// be closed, and fill + issue those lwbs after dropping the issuer lock.
    /// Bounded: each round closes at most one lwb; rounds stop when the
    /// commit list is drained or a limit is hit.
    fn commit_writer(&self, w: WaiterId, detect_parallel: bool) {
        let mut detect = detect_parallel;
        let mut itxs = ClosedItxs::<P>::new();
        for _ in 0..=LWB_INFLIGHT_MAX {
            let closed = {
                let mut iss = self.issuer.lock();
                if detect {
                    self.detect_parallel(&mut iss);
                    detect = false;
                }
                self.commit_round(&mut iss, w, &mut itxs)
            };
            match closed {
                Some(c) => self.fill_and_issue(c, &mut itxs),
                None => return,
            }
        }
        // Out of rounds (only with checkpoints freeing lwbs all along): a
        // waiter still unlinked retries at a deadline of its own, not at
        // whatever an earlier owner of its slot left there.
        self.retry_unlinked(w);
    }

    /// `zl_parallel` upkeep at the start of a commit: another committer's
    /// records or waiters in the tail, or an unflushed previous lwb, mean
    /// the log is shared; wait for company instead of closing at once.
    fn detect_parallel(&self, iss: &mut IssuerState<P>) {
        let log = self.log.lock();
        let Some(ti) = log.index_of_seq(iss.tail_seq) else {
            return;
        };
        let tail = log.lwbs.get(ti).expect("index in range");
        if matches!(iss.tail, Some(Tail::Opened(_))) || tail.waiters > 0 {
            iss.parallel = ZIL_BURSTS as u32;
        } else if ti > 0
            && log
                .lwbs
                .get(ti - 1)
                .is_some_and(|p| p.state != LwbState::FlushDone)
        {
            iss.parallel = iss.parallel.max(ZIL_BURSTS as u32 / 2);
        }
    }

    /// One round of placement. Returns a closed lwb to fill and issue, or
    /// `None` when the waiter is linked (or done, or left to retry).
    fn commit_round(
        &self,
        iss: &mut IssuerState<P>,
        w: WaiterId,
        itxs: &mut ClosedItxs<P>,
    ) -> Option<ClosedLwb<P>> {
        // Bounded by the commit list's capacity plus one split per record.
        for _ in 0..2 * COMMIT_LIST_ITXS_MAX + 2 {
            let Some(itx) = iss.commit_list.pop_front() else {
                break;
            };
            match self.place(iss, itx) {
                Ok(None) => {}
                Ok(Some(itx)) => {
                    // Did not fit: close the tail (opening it first if it is
                    // still empty, as OpenZFS writes an empty lwb then) and
                    // continue in a next one sized for this record.
                    let need = itx.whole_bytes();
                    let back = iss.commit_list.push_front(itx);
                    debug_assert!(back.is_ok(), "slot just freed");
                    self.open_tail(iss);
                    match self.close_tail(iss, need, itxs) {
                        Ok(c) => return Some(c),
                        Err(_) => {
                            self.retry_unlinked(w);
                            return None;
                        }
                    }
                }
                Err(itx) => {
                    // Pool empty while splitting: retry later.
                    let back = iss.commit_list.push_front(itx);
                    debug_assert!(back.is_ok(), "slot just freed");
                    self.retry_unlinked(w);
                    return None;
                }
            }
        }
        self.link_and_decide(iss, w, itxs)
    }

    /// Back-pressure ended a round: a waiter not yet linked retries its
    /// commit at a deadline. A waiter an earlier round of the same commit
    /// already linked is left alone: it was linked only once every record
    /// queued before it was placed, so what this round could not place is
    /// other committers' (they still hold it on the commit list), and the
    /// waiter is on its lwb's list. Marking it unlinked would let its retry
    /// link it into a second list while the first still names its slot: one
    /// lwb's signal would then run on into the other's waiters (an ack before
    /// their records are durable) and cut the other list short (a waiter
    /// never woken).
    fn retry_unlinked(&self, w: WaiterId) {
        let mut log = self.log.lock();
        let now = self.platform.now_ns();
        if let Ok(s) = log.waiters.get(w) {
            if s.state == WaiterState::Unlinked {
                s.deadline_ns = now + COMMIT_RETRY_NS;
            }
        }
    }

    /// Link the waiter once every queued record is placed, and close the
    /// tail at once if the log is used by a single committer.
    fn link_and_decide(
        &self,
        iss: &mut IssuerState<P>,
        w: WaiterId,
        itxs: &mut ClosedItxs<P>,
    ) -> Option<ClosedLwb<P>> {
        let tail_has_records = !iss.placed.is_empty();
        {
            let mut log = self.log.lock();
            let already = match log.waiters.get(w) {
                Ok(s) => !matches!(s.state, WaiterState::Unlinked),
                Err(_) => true,
            };
            if !already {
                let ti = log.index_of_seq(iss.tail_seq).expect("tail on the list");
                let now = self.platform.now_ns();
                if tail_has_records {
                    let deadline = now + log.timeout_ns(self.config.commit_timeout_pct);
                    let linked = log.link_waiter(w, ti, deadline);
                    debug_assert!(linked.is_ok());
                } else if ti > 0
                    && log
                        .lwbs
                        .get(ti - 1)
                        .is_some_and(|p| p.state != LwbState::FlushDone)
                {
                    // Nothing new: wait for the newest lwb in flight, which
                    // carries (or is ordered after) every earlier record.
                    let linked = log.link_waiter(w, ti - 1, now);
                    debug_assert!(linked.is_ok());
                } else {
                    let result = match log.failure {
                        Some(_) => Err(Error::LogFailed),
                        None => Ok(()),
                    };
                    if let Ok(s) = log.waiters.get(w) {
                        s.state = WaiterState::Done(result);
                    }
                }
            }
        }
        if tail_has_records && iss.parallel == 0 {
            // The commit's burst ends here (`zil_burst_done`): the next lwb
            // is sized from the burst history, which now includes it.
            iss.planner.burst_done();
            if let Ok(c) = self.close_tail(iss, 0, itxs) {
                self.log.lock().stats.fast_closes += 1;
                return Some(c);
            }
        }
        None
    }

    /// Place one itx into the tail (`zil_lwb_assign`). `Ok(None)`: placed
    /// (perhaps after splitting off a remainder, now at the commit list's
    /// head). `Ok(Some(itx))`: does not fit, close the tail first (also
    /// when a split finds the itx pool empty and the tail holds records).
    /// `Err(itx)`: a split found the itx pool empty and the tail empty,
    /// retry later.
    fn place(
        &self,
        iss: &mut IssuerState<P>,
        mut itx: P::ItxBox,
    ) -> Result<Option<P::ItxBox>, P::ItxBox> {
        let space = u64::from(iss.tail_size_bytes - iss.nused_bytes);
        let need = itx.whole_bytes();
        if iss.placed.is_full() {
            return Ok(Some(itx));
        }
        if need > space {
            let ItxKind::Write {
                foid,
                offset,
                length,
                kind: WriteKind::NeedCopy,
            } = itx.kind
            else {
                return Ok(Some(itx));
            };
            // WR_NEED_COPY splits (`zil_itx_clone`) if a useful piece fits.
            let hdr = u64::from(LR_WRITE_HEADER_BYTES);
            let piece = (space.saturating_sub(hdr)) & !7;
            if piece < u64::from(LWB_SPLIT_MIN_BYTES) {
                return Ok(Some(itx));
            }
            let mut rest = match self.platform.alloc_itx() {
                Ok(r) => r,
                // The pool is empty. Close the tail if it holds records:
                // its fill frees their itxs, and this record is placed in
                // the next lwb (sized for it) or split again then. With
                // the tail empty, closing frees nothing: retry later.
                Err(_) if !iss.placed.is_empty() => return Ok(Some(itx)),
                Err(_) => return Err(itx),
            };
            rest.txg = itx.txg;
            rest.txtype = itx.txtype;
            rest.kind = ItxKind::Write {
                foid,
                offset: offset + piece,
                length: length - piece,
                kind: WriteKind::NeedCopy,
            };
            itx.kind = ItxKind::Write {
                foid,
                offset,
                length: piece,
                kind: WriteKind::NeedCopy,
            };
            if let Err(rest) = iss.commit_list.push_front(rest) {
                // The list is full: undo the split and close instead.
                itx.kind = ItxKind::Write {
                    foid,
                    offset,
                    length,
                    kind: WriteKind::NeedCopy,
                };
                drop(rest);
                return Ok(Some(itx));
            }
        }
        let need = itx.whole_bytes();
        debug_assert!(need <= space);
        self.open_tail(iss);
        iss.lr_seq += 1;
        itx.lr_seq = iss.lr_seq;
        if iss.placed.is_empty() {
            iss.min_lr_seq = itx.lr_seq;
        }
        if matches!(
            itx.kind,
            ItxKind::Write {
                kind: WriteKind::Indirect,
                ..
            }
        ) {
            iss.indirect += 1;
        }
        // `need` is at most a block (< 2^32).
        iss.nused_bytes += need as u32;
        iss.placed_bytes += need;
        iss.planner.note_assigned(need);
        if iss.placed.push(itx).is_err() {
            unreachable!("checked not full above");
        }
        Ok(None)
    }

    /// NEW → OPENED (`zil_lwb_write_open`); idempotent.
    fn open_tail(&self, iss: &mut IssuerState<P>) {
        match iss.tail.take() {
            Some(Tail::New(h)) => {
                let mut log = self.log.lock();
                let ti = log.index_of_seq(iss.tail_seq).expect("tail on the list");
                let o = log.obj(ti);
                iss.tail = Some(Tail::Opened(h.open(o)));
                self.stepped(o, LwbState::New);
            }
            other => iss.tail = other,
        }
    }

    /// OPENED → CLOSED (`zil_lwb_write_close`): pick the next lwb's size and
    /// allocate everything the chain needs to go on (the next lwb, NEW, with
    /// its block; this lwb's buffer) and hand the closed lwb out.
    ///
    /// Blocks are allocated here, under the issuer lock, so they are
    /// allocated in chain order and every lwb knows its successor's block
    /// before it is written: running out of log space is back-pressure on
    /// the tail (it stays open) instead of a chain that ends in a hole, the
    /// way OpenZFS's late allocation can end it (#15132). Fails, leaving the
    /// tail open and nothing allocated, when a limit is reached.
    ///
    /// `next_record_bytes` is the size of a record waiting for the next lwb
    /// (0 if none): the next lwb is made at least big enough for it. The
    /// closed lwb's records are moved into `itxs`, which must be empty.
    fn close_tail(
        &self,
        iss: &mut IssuerState<P>,
        next_record_bytes: u64,
        itxs: &mut ClosedItxs<P>,
    ) -> Result<ClosedLwb<P>, Limit> {
        let Some(Tail::Opened(h)) = iss.tail.take() else {
            unreachable!("closing a tail that is not OPENED");
        };
        let next_size = {
            let mut planner = iss.planner.clone();
            planner.note_placed(iss.placed_bytes);
            let planned = planner.next_block_bytes(iss.parallel > 0);
            planned.max(planner.block_bytes_for(next_record_bytes))
        };
        let mut log = self.log.lock();
        let allocated =
            self.alloc_successor(&log, iss.tail_seq + 1, next_size, iss.tail_size_bytes);
        let (nobj, buf) = match allocated {
            Ok(x) => x,
            Err(limit) => {
                iss.tail = Some(Tail::Opened(h));
                return Err(limit);
            }
        };
        iss.planner.note_placed(iss.placed_bytes);
        log.next_gen = log.next_gen.wrapping_add(1).max(1);
        let ti = log.index_of_seq(iss.tail_seq).expect("tail on the list");
        let closed = {
            let o = log.obj(ti);
            let c = h.close(o);
            self.stepped(o, LwbState::Opened);
            o.nused_bytes = iss.nused_bytes;
            // At most LWB_ITXS_MAX.
            o.records = iss.placed.len() as u32;
            o.min_lr_seq = iss.min_lr_seq;
            o.max_lr_seq = iss.lr_seq;
            o.zio.child_pending = iss.indirect;
            o.zio.children_inflight = match iss.indirect {
                0 => 0,
                n => u128::MAX >> (128 - u32::from(n)),
            };
            c
        };
        log.stats.records += iss.placed.len() as u64;
        log.stats.record_bytes += iss.placed_bytes;
        let new_handle = Lwb::for_new(&nobj);
        let new_seq = nobj.id.seq;
        if log.lwbs.push_back(nobj).is_err() {
            unreachable!("alloc_successor checked the list has room");
        }
        self.platform
            .lwb_state_changed(new_seq, None, LwbState::New);
        drop(log);
        debug_assert!(itxs.is_empty(), "the previous closed lwb was not filled");
        for itx in iss.placed.drain() {
            if itxs.push(itx).is_err() {
                unreachable!("same capacity, and empty");
            }
        }
        let c = ClosedLwb {
            handle: closed,
            size_bytes: iss.tail_size_bytes,
            nused_bytes: iss.nused_bytes,
            buf,
        };
        iss.tail = Some(Tail::New(new_handle));
        iss.tail_seq += 1;
        iss.tail_size_bytes = next_size;
        iss.nused_bytes = ZIL_CHAIN_BYTES;
        iss.placed_bytes = 0;
        iss.indirect = 0;
        iss.min_lr_seq = 0;
        Ok(c)
    }

    /// Allocate the lwb after the tail (NEW, with its block) and the
    /// tail's buffer; all or nothing.
    fn alloc_successor(
        &self,
        log: &LogState<P>,
        next_seq: u64,
        next_size: u32,
        buf_size: u32,
    ) -> Result<(P::LwbBox, P::Buf), Limit> {
        if log.lwbs.is_full() {
            return Err(Limit::LwbsInflight);
        }
        let blk = self
            .platform
            .alloc_log_block(next_size)
            .map_err(|_| Limit::LogSpace)?;
        let buf = match self.platform.alloc_buf(buf_size) {
            Ok(b) => b,
            Err(_) => {
                self.platform.free_log_block(blk);
                return Err(Limit::BufPool);
            }
        };
        let mut obj = LwbObj::new(
            LwbId {
                seq: next_seq,
                gen: log.next_gen,
            },
            next_size,
        );
        obj.blk = Some(blk);
        match self.platform.alloc_lwb(obj) {
            Ok(b) => Ok((b, buf)),
            Err(_) => {
                self.platform.free_log_block(blk);
                Err(Limit::LwbPool)
            }
        }
    }

    /// Copy a closed lwb's records (`itxs`, which this drains) into its
    /// buffer (no lock held; this thread owns the buffer and the itxs),
    /// then make it READY and issue.
    fn fill_and_issue(&self, c: ClosedLwb<P>, itxs: &mut ClosedItxs<P>) {
        let ClosedLwb {
            handle,
            size_bytes,
            nused_bytes,
            mut buf,
        } = c;
        let id = handle.id();
        let mut error = None;
        let mut vdevs = 0u64;
        // Indirect children, numbered in record order, and those that never
        // started (they will never complete).
        let mut child: u8 = 0;
        let mut not_started: u128 = 0;
        let mut off = ZIL_CHAIN_BYTES as usize;
        let block = &mut buf[..size_bytes as usize];
        for itx in itxs.drain() {
            let is_indirect = matches!(
                itx.kind,
                ItxKind::Write {
                    kind: WriteKind::Indirect,
                    ..
                }
            );
            let res = match error {
                None => self.encode(&itx, id, child, block, off),
                Some(e) => Err(e),
            };
            match res {
                Ok((len, vdev)) => {
                    off += len;
                    vdevs |= vdev;
                }
                Err(e) => {
                    error.get_or_insert(e);
                    if is_indirect {
                        not_started |= 1u128 << child;
                    }
                }
            }
            if is_indirect {
                // At most LWB_ITXS_MAX (128) indirect records per lwb.
                child = child.wrapping_add(1);
            }
            drop(itx);
        }
        debug_assert!(
            error.is_some() || off == nused_bytes as usize,
            "placed {off} != reserved {nused_bytes}"
        );
        let ready = {
            let mut log = self.log.lock();
            let i = log.find(id).expect("a closed lwb cannot be freed");
            let o = log.obj(i);
            o.vdevs |= vdevs;
            if let Some(e) = error {
                o.error.get_or_insert(e);
            }
            // Indirect writes that were never started will never complete.
            o.zio.child_pending -= not_started.count_ones() as u16;
            o.zio.children_inflight &= !not_started;
            let handle = handle.ready(o);
            self.stepped(o, LwbState::Closed);
            ReadyLwb {
                handle,
                buf,
                nused_bytes,
            }
        };
        self.issue(ready);
    }

    /// Encode one itx at `off` in `block`; returns (bytes used, vdev bit of
    /// an indirect data block).
    fn encode(
        &self,
        itx: &Itx,
        id: LwbId,
        child: u8,
        block: &mut [u8],
        off: usize,
    ) -> Result<(usize, u64), Error> {
        let bad = Error::InvalidRecord("record does not fit its reserved space");
        let whole = usize::try_from(itx.whole_bytes()).map_err(|_| bad)?;
        let out = block.get_mut(off..off + whole).ok_or(bad)?;
        let common = LrCommon {
            txtype: itx.txtype,
            reclen: whole as u64,
            txg: itx.txg,
            seq: itx.lr_seq,
        };
        match itx.kind {
            ItxKind::Opaque { body_bytes } => {
                common.encode(out).ok_or(bad)?;
                let n = body_bytes as usize;
                let hdr = LR_HEADER_BYTES as usize;
                out[hdr..hdr + n].copy_from_slice(&itx.bytes[..n]);
                out[hdr + n..].fill(0);
                Ok((whole, 0))
            }
            ItxKind::Write {
                foid,
                offset,
                length,
                kind,
            } => {
                let mut lr = LrWrite {
                    common,
                    foid,
                    offset,
                    length,
                    blkoff: 0,
                    blkptr: Blkptr::HOLE,
                };
                let hdr = LR_WRITE_HEADER_BYTES as usize;
                let n = length as usize;
                let mut vdev = 0;
                match kind {
                    WriteKind::Copied => {
                        out[hdr..hdr + n].copy_from_slice(&itx.bytes[..n]);
                        out[hdr + n..].fill(0);
                    }
                    WriteKind::NeedCopy => {
                        self.platform
                            .get_data(foid, offset, &mut out[hdr..hdr + n])
                            .map_err(Error::Io)?;
                        out[hdr + n..].fill(0);
                    }
                    WriteKind::Indirect => {
                        let io = IoToken {
                            lwb: id,
                            kind: IoKind::Indirect,
                            child,
                        };
                        let ib = self
                            .platform
                            .submit_indirect(io, foid, offset, length)
                            .map_err(Error::Io)?;
                        lr.blkptr = ib.blkptr;
                        vdev = vdev_bit(ib.vdev);
                    }
                }
                lr.encode(out).ok_or(bad)?;
                Ok((whole, vdev))
            }
        }
    }

    /// READY → ISSUED, then the same for every following READY lwb whose
    /// block this issue provides (`goto next_lwb`). Bounded by the list.
    ///
    /// Under sustained load the chain of READY successors has no end (new
    /// lwbs keep closing while this thread issues), so after
    /// [`ISSUE_CHAIN_MAX`] issues the thread hands the next READY lwb to
    /// [`LogState::handoff`] and returns; the next `io_done` or `commit`
    /// (an I/O of the lwb just issued is always outstanding) carries on.
    fn issue(&self, first: ReadyLwb<P>) {
        let mut next = Some(first);
        // Past ISSUE_CHAIN_MAX the chain continues only on a failed log, where
        // no I/O may be left to pick up a hand-off and no new lwb is closed:
        // the rest of the list bounds it.
        for issued in 0..ISSUE_CHAIN_MAX + LWB_INFLIGHT_MAX {
            let Some(ready) = next.take() else { return };
            let (sub, n) = {
                let mut log = self.log.lock();
                let Some((sub, n)) = self.issue_locked(&mut log, ready) else {
                    return; // parked until the previous lwb is issued
                };
                // Hand the successor off while the lock is held and before
                // this lwb's write is submitted, so that write's completion
                // is sure to find it.
                let n = match n {
                    Some(r)
                        if issued + 1 >= ISSUE_CHAIN_MAX
                            && !self.failed.load(Ordering::Acquire)
                            && log.handoff.is_none() =>
                    {
                        log.handoff = Some(r);
                        None
                    }
                    other => other,
                };
                (sub, n)
            };
            // zl_lock dropped: only locals from here on.
            let completed = self.submit(sub);
            next = n;
            if completed && next.is_none() {
                // The write completed right here (with its error), not in
                // an `io_done` that would pick up a hand-off: pick it up
                // now, in this loop. Recursing through `io_done` instead
                // would leave the kernel stack depth unbounded.
                next = self.log.lock().handoff.take();
            }
        }
        if let Some(ready) = next {
            // Never drop an lwb: park it for the next completion or commit.
            debug_assert!(false, "issue chain outran the list on a failed log");
            let mut log = self.log.lock();
            if let Some(other) = log.handoff.replace(ready) {
                drop(log);
                self.issue(other);
            }
        }
    }

    /// Issue the lwb a bounded issue chain handed off, if any.
    fn resume_handoff(&self) {
        let ready = self.log.lock().handoff.take();
        if let Some(r) = ready {
            self.issue(r);
        }
    }

    /// Under `zl_lock`: wire the zio graph and move to ISSUED, consuming
    /// the READY handle. An lwb whose predecessor is not issued yet is
    /// parked; the predecessor's issue picks it up. Returns what to submit
    /// and the next lwb if it was already READY.
    fn issue_locked(
        &self,
        log: &mut LogState<P>,
        ready: ReadyLwb<P>,
    ) -> Option<(Submission<P>, Option<ReadyLwb<P>>)> {
        let id = ready.handle.id();
        let i = log.find(id).expect("a READY lwb cannot be freed");
        if i > 0 && log.obj(i - 1).state < LwbState::Issued {
            let slot = (id.seq % LWB_INFLIGHT_MAX as u64) as usize;
            debug_assert!(log.parked[slot].is_none());
            log.parked[slot] = Some(ready);
            return None;
        }
        let failed = log.failed_through(id.seq);
        let verifier = ZioCksum::verifier(log.guid[0], log.guid[1], self.config.objset, id.seq);
        // The next lwb always exists and has its block: closing made both.
        let next = {
            let n = log.obj(i + 1);
            let b = n.blk.expect("successor block allocated at close");
            Blkptr::log_block(
                b.vdev,
                b.offset_bytes,
                b.size_bytes,
                verifier.next_in_chain(),
                self.config.txg,
            )
        };
        // zil_lwb_set_zio_dependency.
        let (write_link, root_link) = if i == 0 {
            (false, false)
        } else {
            let p = log.obj(i - 1);
            match p.state {
                LwbState::Issued => {
                    let w = p.waiters == 0;
                    p.zio.write_parent_next = w;
                    p.zio.root_parent_next = true;
                    (w, true)
                }
                LwbState::WriteDone => {
                    p.zio.root_parent_next = true;
                    (false, true)
                }
                _ => (false, false),
            }
        };
        let now = self.platform.now_ns();
        let o = log.obj(i);
        if let Some(e) = failed {
            o.error.get_or_insert(e);
        }
        let child = o.zio.child_pending > 0;
        o.zio.write_pending = 1 + u8::from(child) + u8::from(write_link);
        o.zio.root_pending = 1 + u16::from(root_link);
        o.zio.root_armed = true;
        o.issued_ns = now;
        let addr = if o.error.is_none() { o.blk } else { None };
        if let Some(a) = addr {
            o.vdevs |= vdev_bit(a.vdev);
        }
        ready.handle.issue(o);
        self.stepped(o, LwbState::Ready);
        log.stats.lwbs_issued += 1;
        let nslot = ((id.seq + 1) % LWB_INFLIGHT_MAX as u64) as usize;
        let n = if log.obj(i + 1).state == LwbState::Ready {
            log.parked[nslot].take()
        } else {
            None
        };
        let sub = Submission {
            io: IoToken {
                lwb: id,
                kind: IoKind::Write,
                child: 0,
            },
            addr,
            buf: ready.buf,
            nused_bytes: ready.nused_bytes,
            verifier,
            next,
        };
        Some((sub, n))
    }

    /// Seal the block and submit its write, with no lock held. An lwb that
    /// carries an error is not written: its write zio completes with the
    /// error right here, as OpenZFS's `zio_null` carrying `lwb_error` does;
    /// then this returns `true` and the caller resumes any hand-off.
    fn submit(&self, sub: Submission<P>) -> bool {
        let Submission {
            io,
            addr,
            mut buf,
            nused_bytes,
            verifier,
            next,
        } = sub;
        let Some(addr) = addr else {
            let _ = self.complete_io(io, Err(IoError::Io));
            return true;
        };
        let block = &mut buf[..addr.size_bytes as usize];
        let sealed = format::seal_slim_block_with(
            block,
            nused_bytes as usize,
            &next,
            &verifier,
            format::ByteOrder::NATIVE,
            |data| self.platform.fletcher_4_native(data),
        );
        match sealed {
            Ok(len) => {
                {
                    let mut log = self.log.lock();
                    log.stats.writes += 1;
                    log.stats.write_bytes += len as u64;
                }
                self.platform.submit_write(io, addr, buf, len);
                false
            }
            Err(_) => {
                let _ = self.complete_io(io, Err(IoError::Io));
                true
            }
        }
    }

    /// A submitted I/O completed. Call from any thread, with no core lock
    /// held. Errors are returned for completions the core did not expect
    /// (stale or duplicate); they change nothing.
    pub fn io_done(&self, io: IoToken, result: Result<(), IoError>) -> Result<(), Error> {
        self.complete_io(io, result)?;
        self.resume_handoff();
        Ok(())
    }

    /// [`io_done`](Zil::io_done) without resuming a hand-off: for the
    /// completions `submit` makes itself, whose caller (`issue`) resumes
    /// it in its own loop, so `issue` never recurses through `io_done`.
    fn complete_io(&self, io: IoToken, result: Result<(), IoError>) -> Result<(), Error> {
        let mut flushes = FlushList::new();
        let mut resume;
        {
            let mut log = self.log.lock();
            let i = log.find(io.lwb)?;
            let o = log.obj(i);
            match io.kind {
                IoKind::Indirect => {
                    let bit = 1u128.checked_shl(u32::from(io.child)).unwrap_or(0);
                    if o.zio.children_inflight & bit == 0 || o.state >= LwbState::WriteDone {
                        return Err(Error::UnexpectedCompletion);
                    }
                    o.zio.children_inflight &= !bit;
                    o.zio.child_pending -= 1;
                    if let Err(e) = result {
                        o.write_error.get_or_insert(Error::Io(e));
                    }
                    // The child zio is done when its last data write is;
                    // before issue, `issue_locked` does not count it.
                    if o.zio.child_pending == 0 && o.zio.root_armed {
                        o.zio.write_pending -= 1;
                    }
                }
                IoKind::Write => {
                    if o.state != LwbState::Issued
                        || o.zio.write_pending == 0
                        || o.zio.write_own_done
                    {
                        return Err(Error::UnexpectedCompletion);
                    }
                    o.zio.write_own_done = true;
                    o.zio.write_pending -= 1;
                    if let Err(e) = result {
                        o.write_error.get_or_insert(Error::Io(e));
                    }
                }
                IoKind::Flush { vdev } => {
                    let bit = vdev_bit(vdev);
                    if o.state != LwbState::WriteDone || o.zio.flushes_inflight & bit == 0 {
                        return Err(Error::UnexpectedCompletion);
                    }
                    o.zio.flushes_inflight &= !bit;
                    o.zio.root_pending -= 1;
                    match result {
                        Ok(()) => {}
                        Err(IoError::NotSupported) => log.nowritecache |= vdev_bit(vdev),
                        Err(e) => {
                            log.obj(i).root_error.get_or_insert(Error::Io(e));
                            // A failed flush may have lost any write the
                            // device had cached, including those of lwbs
                            // whose own flushes are still in flight and may
                            // yet "succeed" ("fsyncgate"): fail every lwb
                            // that is not FLUSH_DONE.
                            log.fail_inflight();
                            self.failed.store(true, Ordering::Release);
                        }
                    }
                }
            }
            resume = self.settle(&mut log, i, &mut flushes);
        }
        // Bounded: each round settles at least FLUSH_BATCH_MAX lwbs.
        for _ in 0..=LWB_INFLIGHT_MAX / FLUSH_BATCH_MAX + 1 {
            // zl_lock dropped: submit the flushes the write-done handlers
            // asked for.
            for (id, mask) in flushes.drain() {
                let mut m = mask;
                // Bounded: one pass per set bit of a u64 (VDEVS_MAX).
                while m != 0 {
                    let vdev = m.trailing_zeros();
                    m &= m - 1;
                    self.platform.submit_flush(
                        IoToken {
                            lwb: id,
                            kind: IoKind::Flush { vdev },
                            child: 0,
                        },
                        vdev,
                    );
                }
            }
            let Some(seq) = resume else { break };
            let mut log = self.log.lock();
            resume = match log.index_of_seq(seq) {
                Some(i) => self.settle(&mut log, i, &mut flushes),
                None => None,
            };
        }
        debug_assert!(resume.is_none(), "settling outran its bound");
        Ok(())
    }

    /// Run the done handlers of every zio whose last child finished,
    /// starting at lwb index `i`. Cross-lwb edges only ever point from an
    /// lwb to the next one (its write and root zios are children of the
    /// next lwb's), so one forward pass settles everything: a zio's done
    /// handler runs, then its parents (this lwb's root, the next lwb's
    /// write or root) hear of it. Bounded by the list. Returns the block
    /// seq to resume from when `flushes` filled up before the pass ended.
    #[must_use]
    fn settle(&self, log: &mut LogState<P>, start: usize, flushes: &mut FlushList) -> Option<u64> {
        for i in start..log.lwbs.len() {
            if flushes.is_full() {
                return Some(log.obj(i).id.seq);
            }
            let mut changed = false;
            let o = log.obj(i);
            if o.state == LwbState::Issued && o.zio.write_pending == 0 {
                let werr = self.write_done(log, i, flushes);
                let o = log.obj(i);
                // The write zio is a child of this lwb's root...
                o.zio.root_pending -= 1;
                if let Some(e) = werr {
                    o.root_error.get_or_insert(e);
                }
                // ...and, if linked, of the next lwb's write.
                if o.zio.write_parent_next {
                    let n = log.obj(i + 1);
                    n.zio.write_pending -= 1;
                    if let Some(e) = werr {
                        n.write_error.get_or_insert(e);
                    }
                }
                changed = true;
            }
            let o = log.obj(i);
            if o.state == LwbState::WriteDone && o.zio.root_pending == 0 {
                let rerr = self.flush_vdevs_done(log, i);
                if log.obj(i).zio.root_parent_next {
                    let n = log.obj(i + 1);
                    n.zio.root_pending -= 1;
                    if let Some(e) = rerr {
                        n.root_error.get_or_insert(e);
                    }
                }
                changed = true;
            }
            if !changed && i > start {
                return None;
            }
        }
        None
    }

    /// The write zio's done handler (`zil_lwb_write_done`): ISSUED →
    /// WRITE_DONE; flush this lwb's vdevs, or defer them into the next lwb
    /// when this one has no waiters and the next is ISSUED (#15278).
    fn write_done(
        &self,
        log: &mut LogState<P>,
        i: usize,
        flushes: &mut FlushList,
    ) -> Option<Error> {
        let nocache = log.nowritecache;
        let next_issued = log
            .lwbs
            .get(i + 1)
            .is_some_and(|n| n.state == LwbState::Issued);
        let o = log.obj(i);
        o.advance(LwbState::Issued, LwbState::WriteDone);
        self.stepped(o, LwbState::Issued);
        let err = o.write_error.or(o.error);
        let vdevs = core::mem::take(&mut o.vdevs);
        if let Some(e) = err {
            // No flush for a failed write; the root inherits the error.
            o.root_error.get_or_insert(e);
            return Some(e);
        }
        if vdevs == 0 {
            return None;
        }
        if o.waiters == 0 && next_issued {
            o.zio.flush_deferred_next = true;
            log.obj(i + 1).vdevs |= vdevs;
            log.stats.flushes_deferred += 1;
            return None;
        }
        let mask = if self.config.nocacheflush {
            0
        } else {
            vdevs & !nocache
        };
        if mask != 0 {
            let n = mask.count_ones() as u16;
            let o = log.obj(i);
            o.zio.root_pending += n;
            o.zio.flushes_issued += n;
            o.zio.flushes_inflight |= mask;
            let id = o.id;
            log.stats.flushes += u64::from(n);
            let pushed = flushes.push((id, mask));
            assert!(pushed.is_ok(), "more flush sets than lwbs");
        }
        None
    }

    /// The root zio's done handler (`zil_lwb_flush_vdevs_done`): WRITE_DONE
    /// → FLUSH_DONE, latency average, and every waiter signalled and
    /// unlinked before `zl_lock` is dropped (#15228).
    fn flush_vdevs_done(&self, log: &mut LogState<P>, i: usize) -> Option<Error> {
        let now = self.platform.now_ns();
        let o = log.obj(i);
        o.advance(LwbState::WriteDone, LwbState::FlushDone);
        self.stepped(o, LwbState::WriteDone);
        let seq = o.id.seq;
        let max_lr_seq = o.max_lr_seq;
        let deferred = o.zio.flush_deferred_next;
        debug_assert!(!deferred || o.waiters == 0, "a waiter on an unflushed lwb");
        let latency = now.saturating_sub(o.issued_ns);
        let own = o.root_error.or(o.write_error).or(o.error);
        let result = match own.or(log.failed_through(seq)) {
            Some(e) => Err(e),
            None => Ok(()),
        };
        log.last_latency_ns = if log.last_latency_ns == 0 {
            latency
        } else {
            (log.last_latency_ns * 7 + latency) / 8
        };
        match result {
            // An lwb whose flushes went into the next one is done with its
            // block still in a volatile cache: its records are durable when
            // the next lwb's root is, which comes later (its root is a
            // child of it) and carries a max_lr_seq at least as high.
            Ok(()) if deferred => {}
            Ok(()) => log.durable_lr_seq = log.durable_lr_seq.max(max_lr_seq),
            Err(e) => {
                log.stats.lwb_errors += 1;
                if log.failed_at_seq.is_none_or(|f| seq < f) {
                    log.failed_at_seq = Some(seq);
                }
                log.failure.get_or_insert(e);
                self.failed.store(true, Ordering::Release);
            }
        }
        log.signal_waiters(i, result, &self.platform);
        result.err()
    }

    /// The state of commit waiter `w`. `Done` releases the waiter: poll it
    /// no more after that.
    pub fn waiter_poll(&self, w: WaiterId) -> Result<WaitStatus, Error> {
        let mut log = self.log.lock();
        let s = *log.waiters.get(w)?;
        Ok(match s.state {
            WaiterState::Done(r) => {
                log.waiters.release(w);
                WaitStatus::Done(r)
            }
            WaiterState::Unlinked => WaitStatus::Pending {
                deadline_ns: Some(s.deadline_ns),
                lwb_seq: None,
            },
            WaiterState::Linked(seq) => {
                let open = log
                    .index_of_seq(seq)
                    .and_then(|i| log.lwbs.get(i))
                    .is_some_and(|o| o.state == LwbState::Opened);
                WaitStatus::Pending {
                    deadline_ns: open.then_some(s.deadline_ns),
                    lwb_seq: Some(seq),
                }
            }
            WaiterState::Free => return Err(Error::StaleHandle),
        })
    }

    /// The committer of waiter `w` stops waiting for it: a signal
    /// interrupted the sleeping thread (the kernel's commit ioctl), or it
    /// gives up. Nothing about its records is acknowledged; they stay
    /// queued or in their lwb and are written as usual. The handle is
    /// stale from here on. A waiter not linked to an lwb, or already done,
    /// is released now; one linked to an lwb is released when that lwb is
    /// done, without a wake-up. A waiter nobody abandons or polls to
    /// `Done` holds its slot ([`Limit::CommitWaiters`]) for good.
    pub fn waiter_abandon(&self, w: WaiterId) -> Result<(), Error> {
        let mut log = self.log.lock();
        let state = log.waiters.get(w)?.state;
        if self.failed.load(Ordering::Acquire) {
            // Records that will never be issued: finish it now.
            log.fail_unissued_waiter(w, state);
        }
        let s = log.waiters.get(w)?;
        match s.state {
            WaiterState::Linked(_) => {
                // The lwb's list names the slot, not the handle: a new
                // generation makes `w` stale now, and the slot is released
                // when the lwb signals it.
                s.abandoned = true;
                s.gen = s.gen.wrapping_add(1);
            }
            WaiterState::Unlinked | WaiterState::Done(_) => log.waiters.release(w),
            WaiterState::Free => return Err(Error::StaleHandle),
        }
        Ok(())
    }

    /// The commit timeout of waiter `w` passed (`zil_commit_waiter_timeout`):
    /// if its lwb is still the open tail, close and issue it now; if the
    /// waiter was never linked (back-pressure), run the commit again.
    ///
    /// Once the log has failed, a waiter whose records were never issued
    /// (unlinked, or linked to the open tail) is failed here instead: its
    /// records will never be written.
    pub fn waiter_timeout(&self, w: WaiterId) -> Result<(), Error> {
        let state = {
            let mut log = self.log.lock();
            let state = log.waiters.get(w)?.state;
            if self.failed.load(Ordering::Acquire) && log.fail_unissued_waiter(w, state) {
                return Ok(());
            }
            state
        };
        match state {
            WaiterState::Unlinked => {
                self.commit_writer(w, false);
                Ok(())
            }
            WaiterState::Linked(seq) => {
                self.timeout_close(w, seq);
                Ok(())
            }
            WaiterState::Done(_) | WaiterState::Free => Ok(()),
        }
    }

    /// `waiter_timeout` of a waiter linked to lwb `seq`: close that lwb if
    /// it is still the open tail, then fill and issue it. Not inlined, so
    /// its list of closed records (1 KiB) is not in the frame of every
    /// caller of `waiter_timeout`, next to `commit_writer`'s own.
    #[inline(never)]
    fn timeout_close(&self, w: WaiterId, seq: u64) {
        let mut itxs = ClosedItxs::<P>::new();
        let closed = {
            let mut iss = self.issuer.lock();
            // Re-check under the issuer lock: the lwb may have been
            // closed (and even freed) meanwhile.
            if iss.tail_seq != seq || !matches!(iss.tail, Some(Tail::Opened(_))) {
                return;
            }
            iss.planner.burst_done();
            iss.parallel = iss.parallel.saturating_sub(1);
            match self.close_tail(&mut iss, 0, &mut itxs) {
                Ok(c) => c,
                Err(_) => {
                    // Back-pressure: try again a little later.
                    let now = self.platform.now_ns();
                    if let Ok(s) = self.log.lock().waiters.get(w) {
                        s.deadline_ns = now + COMMIT_RETRY_NS;
                    }
                    return;
                }
            }
        };
        self.log.lock().stats.timeouts += 1;
        self.fill_and_issue(closed, &mut itxs);
    }

    /// Release FLUSH_DONE lwbs from the head of the list whose records all
    /// have sequence numbers ≤ `lr_seq` (the `zil_sync` analogue: the caller
    /// has made those records durable elsewhere). Checks the `zil_free_lwb`
    /// invariants on each and returns the new chain head to persist.
    pub fn checkpoint(&self, lr_seq: u64) -> Result<CheckpointOutcome, Error> {
        let mut log = self.log.lock();
        let mut freed = 0u32;
        // Bounded by the list; the tail (NEW or OPENED) always stays.
        for _ in 0..LWB_INFLIGHT_MAX {
            let Some(head) = log.lwbs.front() else { break };
            if log.lwbs.len() < 2 || head.state != LwbState::FlushDone || head.max_lr_seq > lr_seq {
                break;
            }
            head.check_free().map_err(Error::InvalidRecord)?;
            let obj = log.lwbs.pop_front().expect("front checked");
            if let Some(b) = obj.blk {
                self.platform.free_log_block(b);
            }
            drop(obj);
            freed += 1;
        }
        log.stats.lwbs_freed += u64::from(freed);
        Ok(CheckpointOutcome {
            lwbs_freed: freed,
            head: self.head_of(&log),
        })
    }
}

/// Smallest data piece worth splitting a WR_NEED_COPY write for.
const LWB_SPLIT_MIN_BYTES: u32 = 512;

/// Bytes a record of `data_bytes` inline data needs in a block.
pub const fn write_record_bytes(data_bytes: u64) -> u64 {
    LR_WRITE_HEADER_BYTES as u64 + round8(data_bytes)
}
