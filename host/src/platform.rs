//! The host platform: the rzil core on threads, files and block devices.
//!
//! | core needs | host gives |
//! |---|---|
//! | locks | `parking_lot::RawMutex` |
//! | log-block allocation | the [`Ring`] over the superblock's log region |
//! | write / flush submission | a queue of `pwrite`s and flush requests, run by the committers while they wait and by [`IO_THREADS`] completion threads otherwise, then `Zil::io_done` |
//! | clock | `Instant` since the platform was made |
//! | waiter | per waiter slot: the signalled waiter (with its generation) and the word its committer sleeps on |
//! | pools | bounded slabs of lwbs, itxs and aligned 128 KiB block buffers |
//!
//! # Group commit
//!
//! The core lets many commit waiters share an lwb and a flush; this
//! platform decides when an lwb goes and how flushes are shared, the way a
//! file system journal's group commit does:
//!
//! * At most one `fdatasync` runs. Flush requests that arrive meanwhile (the
//!   core asks for one after each lwb's write completed) wait and are all
//!   served by the next single `fdatasync`, taken as a batch before it
//!   begins: a write that completed before a flush began is covered by it,
//!   which is exactly the crash model `rzil verify` checks.
//! * A flush starts with the open tail: the thread about to start one first
//!   closes the tail (`Zil::waiter_timeout` through the latest committer
//!   seen waiting on an open lwb), and no flush starts while a write or
//!   that close is under way, so their flush requests join it.
//! * The open tail is not closed at each waiter's commit timeout. It is
//!   closed when a flush starts, when a flush ends with no committer
//!   running, or by the last running committer to go to sleep while no
//!   flush runs: then nobody is left to add records. Committers are
//!   counted in and out (a waker counts a sleeper back in as it signals
//!   it).
//! * A flush starts as soon as one is wanted and the device is free: not
//!   held back for committers still running. Those commit while it runs
//!   and go out with the next one, so with many committers two cohorts
//!   alternate, one committing while the other's flush runs, and neither
//!   the CPUs nor the device wait for the other. A flush also starts with
//!   at most one tail close, or committers adding to each new tail would
//!   put it off. (Holding a flush while the running committers would take
//!   less time than it to add their records made one cohort of all 64:
//!   the CPUs idled through each flush and the device through each commit
//!   round, about 20% fewer commits per second. With 4 or 16 committers,
//!   holding and not holding measured alike.)
//! * The thread that ran a flush tells the queue it ended before it wakes
//!   the committers: dozens wake at once and preempt it, and until the
//!   queue knows, no other thread may start the next flush.
//! * A committer that is waiting runs queued work itself (a lone committer
//!   pays one `pwrite` and one `fdatasync` and no thread hand-off); what is
//!   left when it returns goes to a completion thread.
//! * Committers sleep on a word per lwb ([`WAKE_CHANNELS`], through
//!   [`crate::futex`]): all of an lwb's waiters are signalled at once, when
//!   it is done, and one system call wakes them all. [`Platform::wake`]
//!   runs under the core's log lock and only flags the waiter; the thread
//!   that reported the completions wakes the words after `io_done`
//!   returned. Waking each committer by itself (`Thread::unpark`) cost
//!   more CPU per commit than the rest of the commit on a 2-vCPU VM.
//!
//! Blocks freed by `Zil::checkpoint` are not returned to the ring at once:
//! they go back only after the superblock naming the new chain head is
//! durable ([`HostLog::checkpoint`]), so a crash can never leave the
//! on-disk head pointing into space already reused.
//!
//! Locking: the platform's own locks (ring, pending frees, I/O queue, wait
//! slots, wake list, slab free lists) are leaves: none is held while
//! calling into the core or while taking another.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};
use rzil::format::ZioCksum;
use rzil::itx::Itx;
use rzil::limits::{
    COMMIT_LIST_ITXS_MAX, COMMIT_RETRY_NS, COMMIT_WAITERS_MAX, ITX_POOL_ITEMS_MIN,
    LWB_BLOCK_SIZE_MAX_BYTES, LWB_INFLIGHT_MAX, LWB_ITXS_MAX, WR_COPIED_DATA_BYTES_MAX,
};
use rzil::lwb::LwbObj;
use rzil::{
    AllocError, BlockAddr, ChainHead, Config, Error, IndirectBlock, IoError, IoKind, IoToken,
    Limit, Platform, Record, WaitStatus, WaiterId, WriteData, Zil,
};

use crate::backend::{fill_pattern, CommitError, RecordId, SyncLog};
use crate::device::{AlignedBuf, BlockIo, DeviceError, DIRECT_IO_ALIGN_BYTES};
use crate::ring::Ring;
use crate::superblock::{self, Superblock, SuperblockError};

/// Completion threads: enough that a flush in progress does not hold up
/// the next lwb's write on this 2-core class of machine.
pub const IO_THREADS: usize = 4;
/// lwb objects: the core's in-flight bound plus the one being freed.
pub const LWB_POOL_OBJECTS_MAX: usize = LWB_INFLIGHT_MAX + 2;
/// itx objects: a full commit list plus four full lwbs being filled.
pub const ITX_POOL_OBJECTS_MAX: usize = COMMIT_LIST_ITXS_MAX + 4 * LWB_ITXS_MAX;
const _: () = assert!(
    ITX_POOL_OBJECTS_MAX >= ITX_POOL_ITEMS_MIN,
    "the core's itx pool minimum"
);
/// Block buffers (each [`LWB_BLOCK_SIZE_MAX_BYTES`]): one per in-flight lwb.
pub const BUF_POOL_BUFFERS_MAX: usize = LWB_INFLIGHT_MAX + 2;
/// How often the checkpoint actor looks at the log.
pub const CHECKPOINT_POLL: Duration = Duration::from_millis(10);
/// lwbs on the core's list at which a completion thread frees the
/// FLUSH_DONE ones (half of `LWB_INFLIGHT_MAX`).
pub const CHECKPOINT_LWBS_IN_USE: usize = LWB_INFLIGHT_MAX / 2;
/// The checkpoint actor checkpoints once live blocks hold this share of the
/// log region, so the ring never fills under a steady load ...
pub const CHECKPOINT_RING_USED_PCT: u64 = 25;
/// ... and at least this often (the `zil_sync` cadence of a quiet log).
pub const CHECKPOINT_INTERVAL_MAX: Duration = Duration::from_secs(1);
/// Longest sleep between retries of a commit under back-pressure.
pub const RETRY_SLEEP_MAX: Duration = Duration::from_millis(5);
/// Longest a committer whose lwb is closed sleeps before it looks around
/// (runs any work it finds, polls again); its wake-up normally comes first.
pub const CLOSED_WAIT_MAX: Duration = Duration::from_millis(10);
/// Words committers sleep on: the committers of lwb `seq` sleep on word
/// `seq % WAKE_CHANNELS` and are all woken by one call when it is done
/// (every waiter of an lwb is signalled at once). As many as lwbs can be
/// in flight, so two live lwbs share a word only past that bound.
pub const WAKE_CHANNELS: usize = LWB_INFLIGHT_MAX;
/// The word of committers whose waiter is on no lwb yet (its records wait
/// in the commit list behind back-pressure): rare, and woken alike.
const UNLINKED_CHANNEL: usize = WAKE_CHANNELS;
// The words to wake after a batch of completions are collected in a u128.
const _: () = assert!(UNLINKED_CHANNEL < u128::BITS as usize);
/// A committer whose lwb is still open sleeps at most this many average
/// flushes before it closes that lwb itself. Normally the tail is closed
/// long before (when a flush starts or ends, or by the last committer to
/// go to sleep) and this sleep ends with the commit; it only bounds the
/// wait if those missed the tail, and is long enough not to wake every
/// sleeper of a slow flush for nothing.
pub const TAIL_HOLD_FLUSHES: u32 = 4;
/// Bounds of that sleep.
pub const TAIL_HOLD_MIN: Duration = Duration::from_millis(1);
/// See [`TAIL_HOLD_MIN`].
pub const TAIL_HOLD_MAX: Duration = Duration::from_millis(10);
/// A commit waiter not woken within this long is reported as stuck rather
/// than waited for forever.
pub const WAITER_STALL: Duration = Duration::from_secs(30);
/// Commit waiters a stall report describes one by one (the rest are
/// counted): enough for a handful of stuck committers, short enough to
/// read in one error line.
pub const STALL_WAITERS_SHOWN_MAX: usize = 8;
/// The single vdev of a host log.
pub const HOST_VDEV: u32 = 0;
/// Birth txg the host stamps into records and block pointers: there is no
/// pool, so every record belongs to one notional open txg.
pub const HOST_TXG: u64 = 1;

/// A bounded slab: at most `max` objects ever exist; freed ones are reused.
#[derive(Debug)]
struct SlabInner<T> {
    free: Mutex<Vec<Box<T>>>,
    created: AtomicUsize,
    max: usize,
}

/// An object on loan from a slab (this module's bounded pool); returns to
/// it when dropped.
#[derive(Debug)]
pub struct SlabBox<T> {
    obj: Option<Box<T>>,
    slab: Arc<SlabInner<T>>,
}

#[derive(Debug)]
struct Slab<T>(Arc<SlabInner<T>>);

impl<T> Slab<T> {
    fn new(max: usize) -> Slab<T> {
        Slab(Arc::new(SlabInner {
            free: Mutex::new(Vec::with_capacity(max)),
            created: AtomicUsize::new(0),
            max,
        }))
    }

    /// Take a freed object or, unless `max` objects already exist, room
    /// for a new one; `init` turns either into the object to hand out
    /// (`Some(old)` to reset, `None` to make).
    fn alloc(&self, init: impl FnOnce(Option<Box<T>>) -> Box<T>) -> Result<SlabBox<T>, AllocError> {
        let reused = self.0.free.lock().pop();
        if reused.is_none() && self.0.created.fetch_add(1, Ordering::Relaxed) >= self.0.max {
            self.0.created.fetch_sub(1, Ordering::Relaxed);
            return Err(AllocError);
        }
        Ok(SlabBox {
            obj: Some(init(reused)),
            slab: Arc::clone(&self.0),
        })
    }
}

impl<T> Deref for SlabBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.obj.as_ref().expect("present until drop")
    }
}

impl<T> DerefMut for SlabBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        self.obj.as_mut().expect("present until drop")
    }
}

impl<T> Drop for SlabBox<T> {
    fn drop(&mut self) {
        if let Some(obj) = self.obj.take() {
            self.slab.free.lock().push(obj);
        }
    }
}

/// A block buffer: an aligned 128 KiB slab buffer seen as its first `len`
/// bytes (what the core asked for).
#[derive(Debug)]
pub struct PoolBuf {
    buf: SlabBox<AlignedBuf>,
    len: usize,
}

impl Deref for PoolBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl DerefMut for PoolBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        &mut self.buf[..len]
    }
}

/// A block write the core submitted.
#[derive(Debug)]
struct WriteJob {
    io: IoToken,
    addr: BlockAddr,
    buf: PoolBuf,
    len_bytes: usize,
}

/// Work a thread takes from the [`IoQueue`].
#[derive(Debug)]
enum Work {
    Write(WriteJob),
    /// One `fdatasync` for every flush in the batch: each was submitted
    /// after its lwb's write completed, and the batch was taken before the
    /// `fdatasync` began, so that one flush covers every write behind them.
    Flush(Vec<IoToken>),
    /// A flush is about to start: first close the open tail through this
    /// waiter, so the records waiting in it ride on that flush too.
    CloseTail(WaiterId),
}

#[derive(Debug, Default)]
struct IoQueue {
    writes: VecDeque<WriteJob>,
    /// Flushes the core asked for and no `fdatasync` has started for yet.
    flushes: Vec<IoToken>,
    /// An emptied batch vector to reuse (no allocation per flush).
    spare: Vec<IoToken>,
    /// An `fdatasync` is in progress: later flush requests wait for the
    /// next one (they may cover writes that completed after it began).
    flushing: bool,
    /// Writes being performed: no flush starts until they are done and
    /// their flush requests can join its batch.
    writes_running: usize,
    /// A thread is closing the open tail (its write comes next).
    closing_tail: bool,
    /// The open tail was closed for the flush about to start: the next
    /// [`IoQueue::take`] that may flush does, rather than close another.
    tail_closed_for_flush: bool,
    /// The latest committer seen waiting on an open lwb: closing "its"
    /// lwb (`Zil::waiter_timeout`) closes the open tail. Under the same
    /// lock as `flushing`, so a committer cannot register just as the
    /// flusher looks. (If a later one registered first, the close is a
    /// no-op and the tail goes at the next chance, or at the tail hold.)
    tail_waiter: Option<WaiterId>,
    shutdown: bool,
}

impl IoQueue {
    /// Next work for the calling thread: writes first (a later flush then
    /// covers them too), else, when a flush may start, the open tail's
    /// close and then every pending flush request as one batch.
    fn take(&mut self) -> Option<Work> {
        if let Some(job) = self.writes.pop_front() {
            self.writes_running += 1;
            return Some(Work::Write(job));
        }
        if !self.may_flush() {
            return None;
        }
        // Once per flush: committers keep opening new tails while one is
        // closed and written, and closing each before flushing would put
        // the flush off for as long as they keep coming.
        if !self.tail_closed_for_flush {
            if let Some(waiter) = self.take_tail() {
                self.tail_closed_for_flush = true;
                return Some(Work::CloseTail(waiter));
            }
        }
        self.tail_closed_for_flush = false;
        self.flushing = true;
        let batch = std::mem::replace(&mut self.flushes, std::mem::take(&mut self.spare));
        Some(Work::Flush(batch))
    }

    /// The waiter to close the open tail through, marking the close under
    /// way (no flush starts until [`HostPlatform::tail_closed`]).
    fn take_tail(&mut self) -> Option<WaiterId> {
        let waiter = self.tail_waiter.take()?;
        self.closing_tail = true;
        Some(waiter)
    }

    /// Whether a flush may start now: one is wanted, none is running, and
    /// no write or tail close is under way whose flush request could still
    /// join it.
    fn may_flush(&self) -> bool {
        !self.flushes.is_empty() && !self.flushing && self.writes_running == 0 && !self.closing_tail
    }

    fn has_work(&self) -> bool {
        !self.writes.is_empty() || self.may_flush()
    }

    /// Nothing queued or under way: completion threads may exit.
    fn is_idle(&self) -> bool {
        self.writes.is_empty()
            && self.flushes.is_empty()
            && self.writes_running == 0
            && !self.flushing
            && !self.closing_tail
    }

    fn len(&self) -> usize {
        self.writes.len() + self.flushes.len()
    }
}

/// Where the committer holding waiter slot `i` sleeps.
#[derive(Debug, Default)]
struct Parking(Mutex<ParkState>);

#[derive(Debug, Default)]
struct ParkState {
    /// The waiter [`Platform::wake`] signalled and nobody consumed yet.
    /// It names the generation too: a wake left over from the slot's
    /// previous holder is not taken for the present one's.
    woken: Option<WaiterId>,
    /// The word the slot's committer sleeps (or last slept) on: a
    /// waker wakes that word's sleepers.
    channel: usize,
}

/// How a committer's sleep ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parked {
    Woken,
    TimedOut,
    /// It was the last committer running and the device is idle: close
    /// the open tail through this waiter before sleeping.
    CloseTail(WaiterId),
    /// It was the last committer running and work is queued that nobody
    /// took: run that instead of sleeping.
    Help,
}

/// Called with each block the log wrote (after the write succeeded, before
/// the core hears of it): `(lwb block seq, block bytes)`. The crash checker
/// uses it to learn which record went into which block.
pub type BlockObserver<'d> = &'d (dyn Fn(u64, &[u8]) + Sync);

/// Counters of the platform itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlatformStats {
    /// Block writes performed.
    pub writes: u64,
    /// Flushes performed (`fdatasync` calls).
    pub flushes: u64,
    /// Flushes the core asked for; one `fdatasync` serves every request
    /// pending when it starts, so this can exceed [`Self::flushes`].
    pub flush_requests: u64,
    /// Superblock updates (checkpoints that moved the head or the seq).
    pub superblock_writes: u64,
    /// Most jobs ever waiting in the I/O queue.
    pub io_queue_jobs_max: u64,
}

/// The host platform. See the module documentation.
pub struct HostPlatform<'d> {
    dev: &'d dyn BlockIo,
    write_align_bytes: usize,
    ring: Mutex<Ring>,
    /// Blocks the core freed, in the order it freed them (chain order, so
    /// the ring's oldest block is nearly always at the front).
    pending_free: Mutex<VecDeque<BlockAddr>>,
    queue: Mutex<IoQueue>,
    queue_cv: Condvar,
    parking: Vec<Parking>,
    /// Moving average of an `fdatasync`'s duration, ns.
    flush_ns: AtomicU64,
    /// The words committers sleep on ([`WAKE_CHANNELS`] and the unlinked
    /// one), see [`crate::futex`].
    channels: Vec<AtomicU32>,
    /// Committers inside a commit and not asleep: when the last one goes to
    /// sleep and no `fdatasync` is running, nobody is left to add records
    /// to the open tail, so it is closed then rather than at a timeout.
    active_committers: AtomicUsize,
    lwbs: Slab<LwbObj>,
    itxs: Slab<Itx>,
    bufs: Slab<AlignedBuf>,
    epoch: Instant,
    observer: Option<BlockObserver<'d>>,
    writes: AtomicU64,
    flushes: AtomicU64,
    flush_requests: AtomicU64,
    superblock_writes: AtomicU64,
    io_queue_jobs_max: AtomicUsize,
    checkpoint_kicked: Mutex<bool>,
    checkpoint_cv: Condvar,
    /// The highest seq any `Zil::checkpoint` call was given: records at or
    /// below it may be in freed lwbs, so a persisted head needs at least
    /// this checkpoint seq.
    checkpointed_lr_seq: AtomicU64,
    first_io_error: Mutex<Option<String>>,
}

impl std::fmt::Debug for HostPlatform<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostPlatform")
            .field("write_align_bytes", &self.write_align_bytes)
            .field("ring", &*self.ring.lock())
            .finish_non_exhaustive()
    }
}

fn io_error_of(error: &DeviceError) -> IoError {
    match error {
        DeviceError::OutOfRange { .. } => IoError::NoSpace,
        DeviceError::Io { source, op, .. }
            if *op == "fdatasync"
                && matches!(
                    source.raw_os_error(),
                    Some(libc::EINVAL) | Some(libc::ENOTSUP)
                ) =>
        {
            IoError::NotSupported
        }
        _ => IoError::Io,
    }
}

impl<'d> HostPlatform<'d> {
    /// A platform over `dev` whose log blocks come from `ring`. Writes are
    /// padded to `write_align_bytes` (the O_DIRECT alignment, or 1).
    pub fn new(
        dev: &'d dyn BlockIo,
        ring: Ring,
        write_align_bytes: usize,
        observer: Option<BlockObserver<'d>>,
    ) -> HostPlatform<'d> {
        HostPlatform {
            dev,
            write_align_bytes: write_align_bytes.max(1),
            ring: Mutex::new(ring),
            pending_free: Mutex::new(VecDeque::new()),
            queue: Mutex::new(IoQueue::default()),
            queue_cv: Condvar::new(),
            parking: (0..COMMIT_WAITERS_MAX)
                .map(|_| Parking::default())
                .collect(),
            active_committers: AtomicUsize::new(0),
            channels: (0..=WAKE_CHANNELS).map(|_| AtomicU32::new(0)).collect(),
            flush_ns: AtomicU64::new(0),
            lwbs: Slab::new(LWB_POOL_OBJECTS_MAX),
            itxs: Slab::new(ITX_POOL_OBJECTS_MAX),
            bufs: Slab::new(BUF_POOL_BUFFERS_MAX),
            epoch: Instant::now(),
            observer,
            writes: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            flush_requests: AtomicU64::new(0),
            superblock_writes: AtomicU64::new(0),
            io_queue_jobs_max: AtomicUsize::new(0),
            checkpoint_kicked: Mutex::new(false),
            checkpoint_cv: Condvar::new(),
            checkpointed_lr_seq: AtomicU64::new(0),
            first_io_error: Mutex::new(None),
        }
    }

    /// Counters so far.
    pub fn stats(&self) -> PlatformStats {
        PlatformStats {
            writes: self.writes.load(Ordering::Relaxed),
            flushes: self.flushes.load(Ordering::Relaxed),
            flush_requests: self.flush_requests.load(Ordering::Relaxed),
            superblock_writes: self.superblock_writes.load(Ordering::Relaxed),
            io_queue_jobs_max: self.io_queue_jobs_max.load(Ordering::Relaxed) as u64,
        }
    }

    /// Queue work for whoever serves the queue. A thread that will serve
    /// the queue itself before it sleeps (see `HelperGuard`) takes it
    /// there; waking a completion thread for it would only race it for the
    /// work and cost a context switch.
    fn push_work(&self, push: impl FnOnce(&mut IoQueue)) {
        let mut queue = self.queue.lock();
        push(&mut queue);
        self.io_queue_jobs_max
            .fetch_max(queue.len(), Ordering::Relaxed);
        if !WILL_HELP.with(Cell::get) && queue.has_work() {
            self.queue_cv.notify_one();
        }
    }

    /// Hand whatever is queued to the completion threads (a helper is done).
    fn notify_if_queued(&self) {
        if self.queue.lock().has_work() {
            self.queue_cv.notify_one();
        }
    }

    /// Fold `sample_ns` into the moving average `avg` (weight 1/8).
    fn note_ns(avg: &AtomicU64, sample_ns: u64) {
        let old = avg.load(Ordering::Relaxed);
        let new = if old == 0 {
            sample_ns
        } else {
            (old * 7 + sample_ns) / 8
        };
        avg.store(new, Ordering::Relaxed);
    }

    /// Serve the I/O queue until [`shutdown`](Self::shutdown) and nothing
    /// is left: perform each piece of work, then report it to `zil`. Run
    /// this on [`IO_THREADS`] threads.
    pub fn serve_io(&self, zil: &Zil<&HostPlatform<'d>>) {
        // This thread serves the queue until it is empty before it sleeps:
        // what its own completions submit is its to run.
        WILL_HELP.with(|flag| flag.set(true));
        loop {
            let work = {
                let mut queue = self.queue.lock();
                loop {
                    if let Some(work) = queue.take() {
                        break work;
                    }
                    // Another thread's `fdatasync` may still add work;
                    // it notifies all when it ends after shutdown.
                    if queue.shutdown && queue.is_idle() {
                        return;
                    }
                    self.queue_cv.wait(&mut queue);
                }
            };
            self.run(work, zil);
        }
    }

    /// Perform one piece of queued work, if there is any, on the calling
    /// thread: a committer waiting for its commit helps instead of
    /// sleeping, which saves the hand-offs to and from a completion thread
    /// (the lone committer then pays one pwrite + one fdatasync and nothing
    /// else). This is not a synchronous completion: the core's submission
    /// call returned long before.
    fn help_once(&self, zil: &Zil<&HostPlatform<'d>>) -> bool {
        let work = self.queue.lock().take();
        match work {
            Some(work) => {
                self.run(work, zil);
                true
            }
            None => false,
        }
    }

    fn run(&self, work: Work, zil: &Zil<&HostPlatform<'d>>) {
        // Commit waiters the completions below signal are woken after
        // `io_done` returns, not under the core's log lock.
        DEFER_WAKES.with(|flag| flag.set(true));
        match work {
            Work::Write(job) => {
                self.run_write(job, zil);
                self.work_done(|queue| queue.writes_running -= 1);
            }
            Work::Flush(batch) => self.run_flush(batch, zil),
            Work::CloseTail(waiter) => {
                // Stale (its commit ended) or no longer open: then
                // nothing happens.
                let _ = zil.waiter_timeout(waiter);
                self.tail_closed();
            }
        }
        DEFER_WAKES.with(|flag| flag.set(false));
        self.wake_deferred();
        // The core keeps FLUSH_DONE lwbs listed until a checkpoint frees
        // them, and stops at LWB_INFLIGHT_MAX: free them here, in memory,
        // as soon as half the list is used. Their blocks stay reserved until
        // the checkpoint actor persists a superblock past them.
        if self.lwbs_in_use() >= CHECKPOINT_LWBS_IN_USE {
            let _ = self.checkpoint_in_memory(zil);
        }
    }

    fn run_write(&self, job: WriteJob, zil: &Zil<&HostPlatform<'d>>) {
        let WriteJob {
            io,
            addr,
            mut buf,
            len_bytes,
        } = job;
        let result = self.write_block(addr, &mut buf, len_bytes);
        if result.is_ok() {
            if let Some(observe) = self.observer {
                observe(io.lwb_seq(), &buf[..len_bytes]);
            }
        }
        drop(buf);
        // A completion the core rejects (stale, duplicate) changes nothing
        // in it; there is nobody to tell but the counters.
        let _ = zil.io_done(io, result);
    }

    fn run_flush(&self, mut batch: Vec<IoToken>, zil: &Zil<&HostPlatform<'d>>) {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        let began = Instant::now();
        let result = self.dev.flush().map_err(|e| self.io_failed(&e));
        Self::note_ns(&self.flush_ns, began.elapsed().as_nanos() as u64);
        for io in batch.drain(..) {
            let _ = zil.io_done(io, result);
        }
        // The queue hears that this flush ended before the committers it
        // made durable are woken: dozens of them wake at once and preempt
        // this thread, and while `flushing` is still set nobody else may
        // start the next flush, so the device would idle until they have
        // all committed again and this thread runs.
        let tail_waiter = {
            let mut queue = self.queue.lock();
            queue.flushing = false;
            if queue.spare.capacity() < batch.capacity() {
                queue.spare = batch;
            }
            if queue.shutdown {
                // Completion threads waiting to exit must see `flushing`
                // clear.
                self.queue_cv.notify_all();
            } else if !WILL_HELP.with(Cell::get) && queue.has_work() {
                self.queue_cv.notify_one();
            }
            // With committers still running (those this flush woke), the
            // last of them to sleep closes the tail: a batch then holds
            // every committer's record, not half of them. With none, all
            // are waiting and the tail goes now.
            let running = self.active_committers.load(Ordering::Acquire);
            let me = usize::from(COUNTED.with(Cell::get));
            if running.saturating_sub(me) == 0 {
                queue.take_tail()
            } else {
                None
            }
        };
        DEFER_WAKES.with(|flag| flag.set(false));
        self.wake_deferred();
        // Group commit: everything committed while the device was busy
        // goes out now, in one lwb write and the next single flush.
        if let Some(waiter) = tail_waiter {
            let _ = zil.waiter_timeout(waiter);
            self.tail_closed();
        }
    }

    /// A tail close taken with [`IoQueue::take_tail`] is done: a flush
    /// may start again.
    fn tail_closed(&self) {
        self.work_done(|queue| queue.closing_tail = false);
    }

    /// How long a committer whose lwb is open sleeps at most.
    fn tail_hold(&self) -> Duration {
        let flush = Duration::from_nanos(self.flush_ns.load(Ordering::Relaxed));
        (flush * TAIL_HOLD_FLUSHES).clamp(TAIL_HOLD_MIN, TAIL_HOLD_MAX)
    }

    /// Committer `waiter` found its lwb open: remember it as the one to
    /// close the tail through.
    fn register_open_tail(&self, waiter: WaiterId) {
        self.queue.lock().tail_waiter = Some(waiter);
    }

    /// Work under way ended (`end` records it): hand on whatever it
    /// unblocked.
    fn work_done(&self, end: impl FnOnce(&mut IoQueue)) {
        let mut queue = self.queue.lock();
        end(&mut queue);
        if queue.shutdown {
            // Completion threads waiting to exit must see it idle.
            self.queue_cv.notify_all();
        } else if !WILL_HELP.with(Cell::get) && queue.has_work() {
            self.queue_cv.notify_one();
        }
    }

    /// Wake the committers whose waiters this thread's completions
    /// signalled (see [`DEFER_WAKES`]): one call per word they sleep on,
    /// which is one per lwb completed, however many committers shared it.
    fn wake_deferred(&self) {
        let mut words: u128 = 0;
        DEFERRED_WAKES.with(|channels| {
            for channel in channels.borrow_mut().drain(..) {
                words |= 1 << channel;
            }
        });
        while words != 0 {
            let channel = words.trailing_zeros() as usize;
            words &= words - 1;
            self.wake_channel(channel);
        }
    }

    fn wake_channel(&self, channel: usize) {
        if let Some(word) = self.channels.get(channel) {
            crate::futex::bump_and_wake_all(word);
        }
    }

    /// Free the lwbs whose records are all durable (`Zil::checkpoint` at
    /// `durable_lr_seq`), first raising [`Self::checkpointed_lr_seq`] to that
    /// seq, so whoever persists a head this call may have moved also
    /// persists a checkpoint seq covering the records it freed.
    fn checkpoint_in_memory(
        &self,
        zil: &Zil<&HostPlatform<'d>>,
    ) -> Result<rzil::CheckpointOutcome, Error> {
        let lr_seq = zil.durable_lr_seq();
        self.checkpointed_lr_seq.fetch_max(lr_seq, Ordering::AcqRel);
        zil.checkpoint(lr_seq)
    }

    /// lwb objects currently on loan to the core.
    fn lwbs_in_use(&self) -> usize {
        let created = self.lwbs.0.created.load(Ordering::Relaxed);
        created.saturating_sub(self.lwbs.0.free.lock().len())
    }

    /// Ask the checkpoint actor to run now (the ring is full).
    fn kick_checkpoint(&self) {
        *self.checkpoint_kicked.lock() = true;
        self.checkpoint_cv.notify_one();
    }

    /// Sleep until kicked or `timeout`; true if kicked.
    fn wait_checkpoint_kick(&self, timeout: Duration) -> bool {
        let mut kicked = self.checkpoint_kicked.lock();
        if !*kicked {
            let _ = self.checkpoint_cv.wait_for(&mut kicked, timeout);
        }
        std::mem::replace(&mut *kicked, false)
    }

    /// Remember the first device error (the core only gets an errno-like
    /// kind) and map it for the core.
    fn io_failed(&self, error: &DeviceError) -> IoError {
        self.first_io_error
            .lock()
            .get_or_insert_with(|| error.to_string());
        io_error_of(error)
    }

    /// The first device error any I/O of this log met, in full.
    pub fn first_io_error(&self) -> Option<String> {
        self.first_io_error.lock().clone()
    }

    /// The parking slot `slot`'s state, for the stall report: the word
    /// its committer sleeps on, that word's value, and whether a wake is
    /// waiting to be consumed.
    fn parking_state(&self, slot: u16) -> String {
        let Some(parking) = self.parking.get(usize::from(slot)) else {
            return "no parking slot".into();
        };
        let (channel, woken) = {
            let state = parking.0.lock();
            (state.channel, state.woken)
        };
        let word = self
            .channels
            .get(channel)
            .map(|w| w.load(Ordering::Acquire));
        format!("parked on word {channel} (value {word:?}), wake pending {woken:?}")
    }

    /// The platform's side of a stalled log, for the stall report: what
    /// the I/O queue holds and is doing, who is running, and how full the
    /// ring and the pools are (any of them can hold a commit back).
    fn stall_state(&self) -> String {
        let queue = {
            let q = self.queue.lock();
            format!(
                "queue: {} writes, {} flush requests, flushing {}, writes running {}, closing tail {}, tail waiter {}, tail closed for flush {}",
                q.writes.len(),
                q.flushes.len(),
                q.flushing,
                q.writes_running,
                q.closing_tail,
                q.tail_waiter.is_some(),
                q.tail_closed_for_flush
            )
        };
        let (ring_free_bytes, ring_capacity_bytes, ring_blocks) = {
            let ring = self.ring.lock();
            (ring.free_bytes(), ring.capacity_bytes(), ring.live_blocks())
        };
        let in_use = |created: &AtomicUsize, free: usize| {
            created.load(Ordering::Relaxed).saturating_sub(free)
        };
        format!(
            "{queue}; committers running {}; ring {} of {} bytes free, {} blocks live, {} freed blocks awaiting a persisted head; in use: {} lwbs, {} itxs, {} buffers",
            self.active_committers.load(Ordering::Relaxed),
            ring_free_bytes,
            ring_capacity_bytes,
            ring_blocks,
            self.pending_free.lock().len(),
            in_use(&self.lwbs.0.created, self.lwbs.0.free.lock().len()),
            in_use(&self.itxs.0.created, self.itxs.0.free.lock().len()),
            in_use(&self.bufs.0.created, self.bufs.0.free.lock().len()),
        )
    }

    fn ring_used_pct(&self) -> u64 {
        let ring = self.ring.lock();
        let capacity = ring.capacity_bytes().max(1);
        (capacity - ring.free_bytes()) * 100 / capacity
    }

    fn write_block(
        &self,
        addr: BlockAddr,
        buf: &mut PoolBuf,
        len_bytes: usize,
    ) -> Result<(), IoError> {
        let align = self.write_align_bytes;
        let write_bytes = len_bytes.div_ceil(align) * align;
        if write_bytes > addr.size_bytes as usize || write_bytes > buf.buf.len() {
            return Err(IoError::NoSpace);
        }
        // The pad up to the O_DIRECT alignment is ours to fill: zeros, so
        // no stale buffer memory reaches the disk.
        buf.len = buf.len.max(write_bytes);
        buf[len_bytes..write_bytes].fill(0);
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.dev
            .write_at(addr.offset_bytes, &buf[..write_bytes])
            .map_err(|e| self.io_failed(&e))
    }

    /// Let the completion threads exit once the queue is empty.
    pub fn shutdown(&self) {
        self.queue.lock().shutdown = true;
        self.queue_cv.notify_all();
    }

    /// A committer enters a commit: it counts as running.
    fn committer_enters(&self) {
        self.active_committers.fetch_add(1, Ordering::AcqRel);
        COUNTED.with(|flag| flag.set(true));
    }

    /// A committer counts as running again after sleeping (the waker or
    /// itself added it back).
    fn counted_again() {
        COUNTED.with(|flag| flag.set(true));
    }

    /// A committer whose commit with `waiter` ended leaves; a wake it
    /// never slept for is consumed here so its count goes too.
    fn committer_leaves(&self, waiter: Option<WaiterId>) {
        let mut running = 1;
        if let Some(waiter) = waiter {
            if let Some(parking) = self.parking.get(usize::from(waiter.slot)) {
                let mut state = parking.0.lock();
                if state.woken == Some(waiter) {
                    state.woken = None;
                    running += 1;
                }
            }
        }
        self.active_committers.fetch_sub(running, Ordering::AcqRel);
        COUNTED.with(|flag| flag.set(false));
    }

    /// Sleep on word `channel` until `waiter` is woken or `deadline`
    /// passes. Going to sleep stops counting the committer as running (the
    /// waker counts it again, see [`Platform::wake`]); the last one to go
    /// to sleep while no `fdatasync` runs closes the open tail instead
    /// (returns [`Parked::CloseTail`], still counted as running) if
    /// `may_close`.
    fn park(&self, waiter: WaiterId, channel: usize, deadline: Instant, may_close: bool) -> Parked {
        let (Some(parking), Some(word)) = (
            self.parking.get(usize::from(waiter.slot)),
            self.channels.get(channel),
        ) else {
            return Parked::TimedOut;
        };
        COUNTED.with(|flag| flag.set(false));
        if self.active_committers.fetch_sub(1, Ordering::AcqRel) == 1 && may_close {
            let last = {
                let mut queue = self.queue.lock();
                if queue.flushing {
                    None
                } else if let Some(tail) = queue.take_tail() {
                    Some(Parked::CloseTail(tail))
                } else if queue.has_work() {
                    // Work queued that nobody has taken (its submitter
                    // was not going to run it): run it rather than sleep.
                    Some(Parked::Help)
                } else {
                    None
                }
            };
            if let Some(last) = last {
                self.active_committers.fetch_add(1, Ordering::AcqRel);
                Self::counted_again();
                return last;
            }
        }
        loop {
            let seen = {
                // Under the slot's lock, the word is read before the flag
                // is checked, and the waker sets the flag and reads the
                // channel before it changes that word: either this check
                // sees the flag, or the word changed after it was read and
                // the sleep below returns at once.
                let mut state = parking.0.lock();
                state.channel = channel;
                let seen = word.load(Ordering::Acquire);
                if state.woken == Some(waiter) {
                    state.woken = None;
                    drop(state);
                    Self::counted_again();
                    return Parked::Woken;
                }
                seen
            };
            let now = Instant::now();
            if now >= deadline {
                self.active_committers.fetch_add(1, Ordering::AcqRel);
                Self::counted_again();
                return Parked::TimedOut;
            }
            // Returns when this word's lwb is done, or for a wake meant
            // for another committer on the same word: the flag decides.
            crate::futex::wait(word, seen, deadline - now);
        }
    }

    /// Return to the ring the pending free blocks that precede `head`, the
    /// chain head the durable superblock names, oldest first.
    ///
    /// Only those: completion threads free lwbs in memory at any time, so
    /// blocks at or after the persisted head can already be pending here,
    /// and the head a crash would replay from must not be overwritten. Ring
    /// order is allocation order is chain order, so "before the head" is
    /// "older in the ring".
    fn release_pending_before(&self, head: BlockAddr) {
        let mut pending = self.pending_free.lock();
        let mut ring = self.ring.lock();
        while let Some(oldest) = ring.oldest() {
            if oldest.offset_bytes == head.offset_bytes {
                break;
            }
            let is_oldest = |b: &BlockAddr| {
                b.offset_bytes == oldest.offset_bytes
                    && u64::from(b.size_bytes) == oldest.size_bytes
            };
            // Checkpoints free lwbs head first, so the oldest block is at
            // the front unless a block was freed out of order (allocated
            // for an lwb that was never written): no search, no quadratic
            // release of the thousands of blocks a second of commits frees.
            let i = if pending.front().is_some_and(is_oldest) {
                0
            } else {
                match pending.iter().position(is_oldest) {
                    Some(i) => i,
                    None => break,
                }
            };
            pending.remove(i);
            // Cannot fail: `oldest` is the ring's oldest block.
            let _ = ring.release(oldest);
        }
    }
}

impl<'a, 'd> Platform for &'a HostPlatform<'d> {
    type RawMutex = parking_lot::RawMutex;
    type IssuerRawMutex = parking_lot::RawMutex;
    type LwbBox = SlabBox<LwbObj>;
    type ItxBox = SlabBox<Itx>;
    type Buf = PoolBuf;
    type Slots<T: Send> = Box<[T]>;

    fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    fn random_u64(&self) -> u64 {
        crate::volume::random_u64()
    }

    fn alloc_lwb(&self, lwb: LwbObj) -> Result<SlabBox<LwbObj>, AllocError> {
        self.lwbs.alloc(|reused| match reused {
            Some(mut slot) => {
                *slot = lwb;
                slot
            }
            None => Box::new(lwb),
        })
    }

    fn alloc_itx(&self) -> Result<SlabBox<Itx>, AllocError> {
        self.itxs.alloc(|reused| match reused {
            // The body keeps the last record's bytes: only the header is
            // reset (no 8 KiB rewrite per record; see `Itx::reset`).
            Some(mut itx) => {
                itx.reset();
                itx
            }
            None => Box::new(Itx::EMPTY),
        })
    }

    fn alloc_buf(&self, size_bytes: u32) -> Result<PoolBuf, AllocError> {
        let len = size_bytes as usize;
        if len > LWB_BLOCK_SIZE_MAX_BYTES as usize {
            return Err(AllocError);
        }
        let buf = self.bufs.alloc(|reused| {
            reused
                .unwrap_or_else(|| Box::new(AlignedBuf::zeroed(LWB_BLOCK_SIZE_MAX_BYTES as usize)))
        })?;
        Ok(PoolBuf { buf, len })
    }

    fn alloc_slots<T: Send>(
        &self,
        len: usize,
        init: impl FnMut(usize) -> T,
    ) -> Result<Box<[T]>, AllocError> {
        Ok((0..len).map(init).collect())
    }

    fn alloc_log_block(&self, size_bytes: u32) -> Result<BlockAddr, AllocError> {
        let block = self
            .ring
            .lock()
            .allocate(u64::from(size_bytes))
            .map_err(|_| AllocError)?;
        Ok(BlockAddr {
            vdev: HOST_VDEV,
            offset_bytes: block.offset_bytes,
            size_bytes,
        })
    }

    fn free_log_block(&self, addr: BlockAddr) {
        self.pending_free.lock().push_back(addr);
    }

    fn submit_write(&self, io: IoToken, addr: BlockAddr, buf: PoolBuf, len_bytes: usize) {
        self.push_work(|queue| {
            queue.writes.push_back(WriteJob {
                io,
                addr,
                buf,
                len_bytes,
            })
        });
    }

    fn submit_flush(&self, io: IoToken, vdev: u32) {
        debug_assert_eq!(vdev, HOST_VDEV);
        debug_assert!(matches!(io.kind(), IoKind::Flush { .. }));
        self.flush_requests.fetch_add(1, Ordering::Relaxed);
        self.push_work(|queue| {
            queue.flushes.push(io);
        });
    }

    fn get_data(&self, foid: u64, offset: u64, out: &mut [u8]) -> Result<(), IoError> {
        // The workloads' objects exist only as their data pattern.
        fill_pattern(foid, offset, out);
        Ok(())
    }

    fn submit_indirect(
        &self,
        _io: IoToken,
        _foid: u64,
        _offset: u64,
        _length: u64,
    ) -> Result<IndirectBlock, IoError> {
        // The host log has no data vdev and never assigns WR_INDIRECT.
        Err(IoError::NotSupported)
    }

    fn wake(&self, waiter: WaiterId) {
        let Some(parking) = self.parking.get(usize::from(waiter.slot)) else {
            return;
        };
        let (newly, channel) = {
            let mut state = parking.0.lock();
            // Replacing a wake the slot's previous holder never consumed
            // takes over its count (that holder does not subtract it).
            (state.woken.replace(waiter).is_none(), state.channel)
        };
        if newly {
            // The sleeper counts as running from here: see `park`.
            self.active_committers.fetch_add(1, Ordering::AcqRel);
        }
        if DEFER_WAKES.with(Cell::get) {
            DEFERRED_WAKES.with(|channels| channels.borrow_mut().push(channel));
        } else {
            self.wake_channel(channel);
        }
    }

    fn fletcher_4_native(&self, data: &[u8]) -> rzil::format::ZioCksum {
        crate::simd::fletcher_4_native(data)
    }
}

/// Why the host log failed.
#[derive(Debug)]
pub enum HostError {
    /// The core refused to start or failed.
    Core(Error),
    /// Persisting the superblock failed.
    Superblock(SuperblockError),
    /// The log region cannot hold a ring.
    Ring(crate::ring::RingError),
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostError::Core(e) => write!(f, "core: {e}"),
            HostError::Superblock(e) => write!(f, "superblock: {e}"),
            HostError::Ring(e) => write!(f, "log region: {e}"),
        }
    }
}

impl std::error::Error for HostError {}

/// The superblock as the running log keeps it.
#[derive(Debug, Clone, Copy)]
struct SuperblockState {
    superblock: Superblock,
    slot: usize,
    /// The (head, checkpoint seq) last persisted, to skip no-op updates.
    persisted: Option<(BlockAddr, u64)>,
}

/// A running host log: the core, its platform and its superblock.
pub struct HostLog<'p, 'd> {
    zil: Zil<&'p HostPlatform<'d>>,
    platform: &'p HostPlatform<'d>,
    dev: &'d dyn BlockIo,
    superblock: Mutex<SuperblockState>,
    closing: AtomicBool,
    failure: Mutex<Option<String>>,
    checkpoint_lr_seq: AtomicU64,
    /// Committers inside the core: at most `COMMIT_WAITERS_MAX`, so the
    /// rest sleep here instead of spinning on waiter back-pressure.
    permits: Mutex<usize>,
    permits_cv: Condvar,
    /// Committers asleep between back-pressure retries, and the limit
    /// last hit: for a stall report.
    retrying: AtomicUsize,
    last_limit: Mutex<Option<Limit>>,
}

impl std::fmt::Debug for HostLog<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostLog")
            .field("zil", &self.zil)
            .finish_non_exhaustive()
    }
}

fn core_error(error: Error) -> CommitError {
    CommitError::Refused(error.to_string())
}

impl HostLog<'_, '_> {
    /// A core error as the committer reports it: an I/O failure names the
    /// device error behind it.
    fn commit_error(&self, error: Error) -> CommitError {
        match (error, self.platform.first_io_error()) {
            (Error::Io(_) | Error::LogFailed, Some(device)) => {
                CommitError::Refused(format!("{error} ({device})"))
            }
            _ => core_error(error),
        }
    }
}

/// The chain verifier as the superblock stores it.
pub fn verifier_words(verifier: &ZioCksum) -> [u64; 4] {
    verifier.word
}

impl<'p, 'd> HostLog<'p, 'd> {
    /// The core.
    pub fn zil(&self) -> &Zil<&'p HostPlatform<'d>> {
        &self.zil
    }

    /// The platform.
    pub fn platform(&self) -> &'p HostPlatform<'d> {
        self.platform
    }

    /// The last checkpoint seq made durable in the superblock.
    pub fn checkpoint_lr_seq(&self) -> u64 {
        self.checkpoint_lr_seq.load(Ordering::Acquire)
    }

    /// Why the log stopped accepting commits, if it did.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().clone()
    }

    fn fail(&self, why: String) {
        self.failure.lock().get_or_insert(why);
        self.closing.store(true, Ordering::Release);
        // Committers waiting for a permit must see the failure; take the
        // permit lock so none can miss this between its check and its wait.
        let _permits = self.permits.lock();
        self.permits_cv.notify_all();
    }

    /// Persist `head` and `checkpoint_lr_seq` as the next superblock
    /// generation (write + flush), unless they are already persisted.
    fn persist(&self, head: ChainHead, checkpoint_lr_seq: u64) -> Result<(), SuperblockError> {
        let mut state = self.superblock.lock();
        if state.persisted == Some((head.blk, checkpoint_lr_seq)) {
            return Ok(());
        }
        let mut superblock = state.superblock;
        superblock.chain_head = Some(superblock::BlockAddr {
            offset_bytes: head.blk.offset_bytes,
            size_bytes: u64::from(head.blk.size_bytes),
        });
        superblock.chain_verifier = verifier_words(&head.verifier);
        superblock.chain_txg = head.txg;
        superblock.checkpoint_lr_seq = checkpoint_lr_seq;
        let slot = superblock::write_next(self.dev, &mut superblock, Some(state.slot))?;
        self.platform
            .superblock_writes
            .fetch_add(1, Ordering::Relaxed);
        *state = SuperblockState {
            superblock,
            slot,
            persisted: Some((head.blk, checkpoint_lr_seq)),
        };
        self.checkpoint_lr_seq
            .store(checkpoint_lr_seq, Ordering::Release);
        Ok(())
    }

    /// Take a committer permit, sleeping while `COMMIT_WAITERS_MAX`
    /// committers are inside the core.
    fn acquire_permit(&self) -> Result<(), CommitError> {
        let mut permits = self.permits.lock();
        while *permits == 0 {
            if let Some(why) = self.failure() {
                return Err(CommitError::Refused(why));
            }
            // Woken by a released permit, or by `fail` (notify_all).
            self.permits_cv.wait(&mut permits);
        }
        *permits -= 1;
        Ok(())
    }

    fn release_permit(&self) {
        *self.permits.lock() += 1;
        self.permits_cv.notify_one();
    }

    /// Count of lwbs per state, for a stall report.
    fn lwb_states(&self) -> String {
        let mut counts: Vec<(String, usize)> = Vec::new();
        self.zil.for_each_lwb(|view| {
            let state = format!("{:?}", view.state);
            match counts.iter_mut().find(|(s, _)| *s == state) {
                Some((_, n)) => *n += 1,
                None => counts.push((state, 1)),
            }
        });
        counts
            .iter()
            .map(|(state, n)| format!("{n} {state}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The commit waiters in use, for the stall report: the first
    /// [`STALL_WAITERS_SHOWN_MAX`] in full (what each waits for, its
    /// deadline from now, and its committer's parking slot), then a count.
    fn waiter_states(&self) -> String {
        let now_ns = self.platform.now_ns();
        let mut shown = Vec::new();
        let mut total = 0usize;
        self.zil.for_each_waiter(|view| {
            total += 1;
            if shown.len() < STALL_WAITERS_SHOWN_MAX {
                shown.push(*view);
            }
        });
        if total == 0 {
            return "none".into();
        }
        let mut out: Vec<String> = shown
            .iter()
            .map(|view| {
                let deadline_ms = (view.deadline_ns as f64 - now_ns as f64) / 1e6;
                format!(
                    "slot {} {:?}, deadline {deadline_ms:+.1} ms{}, {}",
                    view.slot,
                    view.wait,
                    if view.abandoned { ", abandoned" } else { "" },
                    self.platform.parking_state(view.slot)
                )
            })
            .collect();
        if total > shown.len() {
            out.push(format!("{} more", total - shown.len()));
        }
        out.join("; ")
    }

    /// The `zil_sync` analogue: treat every durable record as applied,
    /// free the lwbs it covers, persist the new head and checkpoint seq,
    /// and only then let the ring reuse the freed blocks.
    pub fn checkpoint(&self) -> Result<(), HostError> {
        let outcome = self
            .platform
            .checkpoint_in_memory(&self.zil)
            .map_err(HostError::Core)?;
        // Read after the call: a completion thread's checkpoint that freed
        // lwbs before `outcome.head` raised this before freeing them.
        let lr_seq = self
            .platform
            .checkpointed_lr_seq
            .load(Ordering::Acquire)
            .max(self.checkpoint_lr_seq());
        self.persist(outcome.head, lr_seq)
            .map_err(HostError::Superblock)?;
        self.platform.release_pending_before(outcome.head.blk);
        Ok(())
    }

    /// Retry `op` while the core answers back-pressure, sleeping from
    /// `COMMIT_RETRY_NS` up to [`RETRY_SLEEP_MAX`], doubling; give up once
    /// the log is closing.
    fn retry<T>(&self, mut op: impl FnMut() -> Result<T, Error>) -> Result<T, CommitError> {
        let mut sleep = Duration::from_nanos(COMMIT_RETRY_NS);
        loop {
            match op() {
                Ok(value) => return Ok(value),
                Err(Error::Backpressure(limit)) => {
                    if limit == Limit::LogSpace {
                        self.platform.kick_checkpoint();
                    }
                    *self.last_limit.lock() = Some(limit);
                    if self.closing.load(Ordering::Acquire) {
                        return Err(CommitError::Refused(
                            self.failure()
                                .unwrap_or_else(|| "log is shutting down".into()),
                        ));
                    }
                    self.retrying.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(sleep);
                    self.retrying.fetch_sub(1, Ordering::Relaxed);
                    sleep = (sleep * 2).min(RETRY_SLEEP_MAX);
                }
                Err(error) => return Err(self.commit_error(error)),
            }
        }
    }
}

thread_local! {
    /// Set while this thread will run queued I/O work itself before it
    /// sleeps (a waiting committer, a completion thread).
    static WILL_HELP: Cell<bool> = const { Cell::new(false) };
    /// Set while this thread reports completions to the core: the waiters
    /// they signal (under the core's log lock) are only flagged, and
    /// woken through [`DEFERRED_WAKES`] once `io_done` has returned, so no
    /// futex wake happens with the log lock held.
    static DEFER_WAKES: Cell<bool> = const { Cell::new(false) };
    /// Set while this thread is a committer counted in its platform's
    /// `active_committers` (inside a commit and not asleep).
    static COUNTED: Cell<bool> = const { Cell::new(false) };
    /// The words (see [`WAKE_CHANNELS`]) of the waiters this thread's
    /// completions signalled, to wake once they are reported.
    static DEFERRED_WAKES: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Marks the current thread as a helping committer for its lifetime; on
/// drop (any return path) hands leftover jobs to the completion threads.
struct HelperGuard<'p, 'd> {
    platform: &'p HostPlatform<'d>,
}

impl<'p, 'd> HelperGuard<'p, 'd> {
    fn new(platform: &'p HostPlatform<'d>) -> Self {
        WILL_HELP.with(|flag| flag.set(true));
        HelperGuard { platform }
    }
}

impl Drop for HelperGuard<'_, '_> {
    fn drop(&mut self) {
        WILL_HELP.with(|flag| flag.set(false));
        self.platform.notify_if_queued();
    }
}

impl SyncLog for HostLog<'_, '_> {
    fn commit(&self, id: RecordId, data: &[u8]) -> Result<(), CommitError> {
        self.acquire_permit()?;
        let result = self.commit_inside(id, data);
        self.release_permit();
        result
    }

    fn abort(&self, reason: &str) {
        let states = self.lwb_states();
        let waiters = self.waiter_states();
        let permits_left = *self.permits.lock();
        self.fail(format!(
            "{reason} (lwbs by state: {states}; waiters: {waiters}; {}; {} of {COMMIT_WAITERS_MAX} commit permits free, {} committers in a back-pressure retry, last limit hit {:?}; core stats {:?})",
            self.platform.stall_state(),
            permits_left,
            self.retrying.load(Ordering::Relaxed),
            *self.last_limit.lock(),
            self.zil.stats()
        ));
        self.platform.kick_checkpoint();
    }
}

impl HostLog<'_, '_> {
    /// One commit, holding a permit.
    fn commit_inside(&self, id: RecordId, data: &[u8]) -> Result<(), CommitError> {
        let _helping = HelperGuard::new(self.platform);
        let offset = id.offset_bytes(data.len());
        let record = Record::Write {
            foid: id.foid(),
            offset,
            data: if data.len() <= WR_COPIED_DATA_BYTES_MAX as usize {
                WriteData::Copied(data)
            } else {
                // Larger records are fetched at fill time (get_data) and
                // may be split across blocks, as WR_NEED_COPY is.
                WriteData::NeedCopy {
                    length: data.len() as u64,
                }
            },
        };
        self.platform.committer_enters();
        let mut waiter = None;
        let result = self.commit_and_wait(&record, &mut waiter);
        self.platform.committer_leaves(waiter);
        result
    }

    /// Assign and commit `record`, then wait for the commit: run queued
    /// I/O while there is some, else sleep. `waiter` is set once the core
    /// gave one.
    fn commit_and_wait(
        &self,
        record: &Record<'_>,
        waiter_out: &mut Option<WaiterId>,
    ) -> Result<(), CommitError> {
        self.retry(|| self.zil.assign(HOST_TXG, record))?;
        let waiter = self.retry(|| self.zil.commit())?;
        *waiter_out = Some(waiter);
        let began = Instant::now();
        // Set after closing the tail on the way to sleep: if that changed
        // nothing (back-pressure), the next try sleeps first.
        let mut closed_tail = false;
        loop {
            match self.zil.waiter_poll(waiter).map_err(core_error)? {
                WaitStatus::Done(result) => return result.map_err(|e| self.commit_error(e)),
                WaitStatus::Pending {
                    deadline_ns,
                    lwb_seq,
                } => {
                    if self.platform.help_once(&self.zil) {
                        continue;
                    }
                    // About to sleep: nothing of ours is queued any more,
                    // but work pushed while helping must not wait for us.
                    self.platform.notify_if_queued();
                    // A deadline means the lwb is still open (or the commit
                    // met back-pressure and retries at the deadline). The
                    // tail is not closed at the core's commit timeout but
                    // when its records can go: see `Parked::CloseTail` and
                    // `HostPlatform::run_flush`.
                    let deadline = match deadline_ns {
                        Some(_) => {
                            self.platform.register_open_tail(waiter);
                            Instant::now() + self.platform.tail_hold()
                        }
                        None => Instant::now() + CLOSED_WAIT_MAX,
                    };
                    let channel = lwb_seq.map_or(UNLINKED_CHANNEL, |seq| {
                        (seq % WAKE_CHANNELS as u64) as usize
                    });
                    let parked = self.platform.park(waiter, channel, deadline, !closed_tail);
                    closed_tail = matches!(parked, Parked::CloseTail(_));
                    if let Parked::CloseTail(tail) = parked {
                        // Stale (its commit ended) or no longer open: then
                        // nothing happens.
                        let _ = self.zil.waiter_timeout(tail);
                        self.platform.tail_closed();
                    }
                    if let Some(why) = self.failure() {
                        // Stopped (a stall or a failed checkpoint): the
                        // commit is not known durable, so it fails.
                        return Err(CommitError::Refused(why));
                    }
                    match parked {
                        Parked::Woken | Parked::CloseTail(_) | Parked::Help => {}
                        Parked::TimedOut if deadline_ns.is_some() => {
                            self.zil.waiter_timeout(waiter).map_err(core_error)?;
                        }
                        Parked::TimedOut => {
                            if began.elapsed() >= WAITER_STALL {
                                return Err(CommitError::Refused(format!(
                                    "commit waiter not woken within {} s",
                                    WAITER_STALL.as_secs()
                                )));
                            }
                        }
                    }
                }
            }
        }
    }
}

/// How to start a host log.
#[derive(Clone, Copy, Debug)]
pub struct HostOptions {
    /// Pad writes to this (the O_DIRECT alignment, or 1).
    pub write_align_bytes: usize,
    /// Records get seqs above this.
    pub first_lr_seq: u64,
}

impl HostOptions {
    /// Options for a device opened with or without O_DIRECT.
    pub fn for_direct(direct: bool, first_lr_seq: u64) -> HostOptions {
        HostOptions {
            write_align_bytes: if direct { DIRECT_IO_ALIGN_BYTES } else { 1 },
            first_lr_seq,
        }
    }
}

/// How a host log ended.
#[derive(Clone, Debug)]
pub struct HostEnd {
    /// The platform's counters.
    pub stats: PlatformStats,
    /// The core's counters.
    pub core: rzil::Stats,
    /// The superblock as last persisted.
    pub superblock: Superblock,
    /// The slot holding it.
    pub slot: usize,
    /// Why the log stopped early or could not close cleanly, if it did
    /// (a failed checkpoint or final superblock update).
    pub failure: Option<String>,
}

/// Start a log on `dev` (formatted with `superblock`, newest copy in
/// `slot`), persist its first chain head, run `body` with it while the
/// completion threads and the checkpoint actor run, then drain the I/O,
/// take a final checkpoint (a clean close: everything acknowledged is
/// covered) and stop. Returns `body`'s result and how the log ended
/// ([`HostEnd::failure`] says if it did not close cleanly); an error only
/// if the log could not start.
pub fn with_host_log<'d, R>(
    dev: &'d dyn BlockIo,
    superblock: Superblock,
    slot: usize,
    options: HostOptions,
    observer: Option<BlockObserver<'d>>,
    body: impl FnOnce(&HostLog<'_, 'd>) -> R,
) -> Result<(R, HostEnd), HostError> {
    let ring =
        Ring::new(superblock.log_start_bytes, superblock.log_end_bytes).map_err(HostError::Ring)?;
    let platform = HostPlatform::new(dev, ring, options.write_align_bytes, observer);
    let mut config = Config::new(crate::volume::OBJSET_ID);
    config.first_lr_seq = options.first_lr_seq;
    config.txg = HOST_TXG;
    let zil = Zil::new(&platform, config).map_err(HostError::Core)?;
    let log = HostLog {
        zil,
        platform: &platform,
        dev,
        superblock: Mutex::new(SuperblockState {
            superblock,
            slot,
            persisted: None,
        }),
        closing: AtomicBool::new(false),
        failure: Mutex::new(None),
        checkpoint_lr_seq: AtomicU64::new(options.first_lr_seq),
        permits: Mutex::new(COMMIT_WAITERS_MAX),
        permits_cv: Condvar::new(),
        retrying: AtomicUsize::new(0),
        last_limit: Mutex::new(None),
    };
    // As zil_create waits for zh_log: no commit is acknowledged before a
    // reader could find the chain.
    log.persist(log.zil.chain_head(), options.first_lr_seq)
        .map_err(HostError::Superblock)?;
    let stop_checkpoints = AtomicBool::new(false);
    let result = std::thread::scope(|scope| {
        for _ in 0..IO_THREADS {
            scope.spawn(|| platform.serve_io(&log.zil));
        }
        scope.spawn(|| {
            let mut last = Instant::now();
            while !stop_checkpoints.load(Ordering::Acquire) {
                let kicked = platform.wait_checkpoint_kick(CHECKPOINT_POLL);
                if !kicked
                    && platform.ring_used_pct() < CHECKPOINT_RING_USED_PCT
                    && last.elapsed() < CHECKPOINT_INTERVAL_MAX
                {
                    continue;
                }
                last = Instant::now();
                if let Err(error) = log.checkpoint() {
                    log.fail(format!("checkpoint failed: {error}"));
                    break;
                }
            }
        });
        // Stop the threads above when the body ends, also by a panic: the
        // scope joins them before it re-raises the panic, so a panicking
        // body (a bug) used to hang the process instead of ending it.
        struct StopOnDrop<F: FnMut()>(F);
        impl<F: FnMut()> Drop for StopOnDrop<F> {
            fn drop(&mut self) {
                (self.0)();
            }
        }
        let _stop = StopOnDrop(|| {
            log.closing.store(true, Ordering::Release);
            stop_checkpoints.store(true, Ordering::Release);
            platform.shutdown();
        });
        body(&log)
    });
    // Every completion thread has drained the queue and exited: nothing is
    // in flight, so this checkpoint covers every acknowledged record.
    if log.failure().is_none() {
        if let Err(error) = log.checkpoint() {
            log.fail(format!("final checkpoint failed: {error}"));
        }
    }
    let state = *log.superblock.lock();
    let end = HostEnd {
        stats: platform.stats(),
        core: log.zil.stats(),
        superblock: state.superblock,
        slot: state.slot,
        failure: log.failure(),
    };
    Ok((result, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{check_pattern, drive, CountingDevice, DriveConfig};
    use crate::device::MemDevice;
    use crate::superblock::{format, probe, Probe, LOG_REGION_START_BYTES};

    const DEVICE_BYTES: usize = 8 * 1024 * 1024;

    fn formatted() -> (MemDevice, Superblock, usize) {
        let dev = MemDevice::zeroed(DEVICE_BYTES);
        let mut sb = Superblock::fresh(DEVICE_BYTES as u64, [1, 2, 54, 1]).unwrap();
        let slot = format(&dev, &mut sb).unwrap();
        (dev, sb, slot)
    }

    #[test]
    fn freed_blocks_at_or_after_the_persisted_head_stay_reserved() {
        let dev = MemDevice::zeroed(DEVICE_BYTES);
        let ring = Ring::new(LOG_REGION_START_BYTES, DEVICE_BYTES as u64).unwrap();
        let platform = HostPlatform::new(&dev, ring, 1, None);
        let p = &platform;
        let blocks: Vec<BlockAddr> = (0..4).map(|_| p.alloc_log_block(8192).unwrap()).collect();
        // The core freed all four in memory, but the durable superblock
        // still names blocks[2] as the head: only blocks[0..2] may go back.
        for &b in &blocks {
            p.free_log_block(b);
        }
        platform.release_pending_before(blocks[2]);
        let oldest = platform.ring.lock().oldest().unwrap();
        assert_eq!(oldest.offset_bytes, blocks[2].offset_bytes);
        assert_eq!(platform.pending_free.lock().len(), 2);
        // A later superblock moves the head past them: now they go back.
        let next = p.alloc_log_block(8192).unwrap();
        platform.release_pending_before(next);
        assert_eq!(
            platform.ring.lock().oldest().unwrap().offset_bytes,
            next.offset_bytes
        );
        assert!(platform.pending_free.lock().is_empty());
    }

    #[test]
    fn slab_is_bounded_and_reuses() {
        let slab: Slab<u32> = Slab::new(2);
        let make = |value: u32| {
            move |reused: Option<Box<u32>>| match reused {
                Some(mut old) => {
                    *old += 100;
                    old
                }
                None => Box::new(value),
            }
        };
        let a = slab.alloc(make(1)).unwrap();
        let b = slab.alloc(make(2)).unwrap();
        assert!(slab.alloc(make(3)).is_err());
        drop(a);
        let c = slab.alloc(make(4)).unwrap();
        assert_eq!(
            (*b, *c),
            (2, 101),
            "the freed object is reused, not a new one"
        );
    }

    #[test]
    fn commits_are_durable_and_the_superblock_follows_checkpoints() {
        let (dev, sb, slot) = formatted();
        let counting = CountingDevice::new(&dev);
        let config = DriveConfig {
            threads: 4,
            duration: Duration::from_millis(300),
            record_bytes: 4096,
        };
        let (result, end) = with_host_log(
            &counting,
            sb,
            slot,
            HostOptions::for_direct(false, 0),
            None,
            |log| drive(log, config, &|_, _| {}, &mut |_| {}),
        )
        .unwrap();
        let result = result.unwrap();
        let stats = end.stats;
        assert!(result.commits > 10, "only {} commits", result.commits);
        assert!(stats.writes > 0 && stats.flushes > 0);
        // Group commit: never more flushes than commits.
        assert!(
            stats.flushes <= result.commits,
            "{stats:?} for {} commits",
            result.commits
        );
        let Probe::Ours { superblock, .. } = probe(&dev).unwrap() else {
            panic!("superblock lost");
        };
        let head = superblock.chain_head.expect("head persisted");
        assert!(head.offset_bytes >= LOG_REGION_START_BYTES);
        assert!(superblock.checkpoint_lr_seq > 0, "no checkpoint persisted");
        assert!(superblock.generation > 2);
    }

    #[test]
    fn the_committer_asleep_on_its_lwb_word_is_woken_when_the_lwb_is_done() {
        // The whole wake path, with no timeout to hide a lost wake: a
        // commit's waiter reports its lwb; its committer sleeps on that
        // lwb's word; this thread runs the write and the flush, whose
        // completion signals the waiter under the log lock and wakes the
        // word afterwards.
        const SLEEP_MAX: Duration = Duration::from_secs(3);
        let dev = MemDevice::zeroed(DEVICE_BYTES);
        let ring = Ring::new(LOG_REGION_START_BYTES, DEVICE_BYTES as u64).unwrap();
        let platform = HostPlatform::new(&dev, ring, 1, None);
        let mut config = Config::new(crate::volume::OBJSET_ID);
        config.txg = HOST_TXG;
        let zil = Zil::new(&platform, config).unwrap();
        for round in 0..3u64 {
            let data = [round as u8; 512];
            let record = Record::Write {
                foid: 1,
                offset: round * 512,
                data: WriteData::Copied(&data),
            };
            zil.assign(HOST_TXG, &record).unwrap();
            let waiter = zil.commit().unwrap();
            let WaitStatus::Pending {
                lwb_seq: Some(seq), ..
            } = zil.waiter_poll(waiter).unwrap()
            else {
                panic!("a lone commit's waiter is linked to its issued lwb");
            };
            let channel = (seq % WAKE_CHANNELS as u64) as usize;
            std::thread::scope(|scope| {
                let sleeper = scope.spawn(|| {
                    platform.committer_enters();
                    let began = Instant::now();
                    let parked = platform.park(waiter, channel, began + SLEEP_MAX, false);
                    platform.committer_leaves(None);
                    (parked, began.elapsed())
                });
                // Let it fall asleep before anything completes.
                std::thread::sleep(Duration::from_millis(50));
                while platform.help_once(&zil) {}
                let (parked, slept) = sleeper.join().unwrap();
                assert_eq!(parked, Parked::Woken, "round {round}: lwb {seq}");
                assert!(
                    slept < SLEEP_MAX / 2,
                    "round {round}: woken after {slept:?}"
                );
            });
            assert!(matches!(
                zil.waiter_poll(waiter).unwrap(),
                WaitStatus::Done(Ok(()))
            ));
        }
    }

    #[test]
    fn a_full_ring_is_back_pressure_that_checkpoints_relieve() {
        // A 1 MiB log region holds ~250 4 KiB blocks; a second of commits
        // writes far more, so the ring must wrap through checkpoints.
        let size = 1024 * 1024 + LOG_REGION_START_BYTES as usize;
        let dev = MemDevice::zeroed(size);
        let mut sb = Superblock::fresh(size as u64, [1, 2, 54, 1]).unwrap();
        let slot = format(&dev, &mut sb).unwrap();
        let config = DriveConfig {
            threads: 2,
            duration: Duration::from_secs(1),
            record_bytes: 4096,
        };
        let (result, end) = with_host_log(
            &dev,
            sb,
            slot,
            HostOptions::for_direct(false, 0),
            None,
            |log| drive(log, config, &|_, _| {}, &mut |_| {}),
        )
        .unwrap();
        let result = result.unwrap();
        let stats = end.stats;
        let written_bytes = stats.writes * 4096;
        assert!(
            written_bytes > 1024 * 1024,
            "ring never wrapped: {} writes, {} commits",
            stats.writes,
            result.commits
        );
    }

    #[test]
    fn observer_sees_every_block_with_its_records() {
        let (dev, sb, slot) = formatted();
        let seen = Mutex::new(Vec::new());
        let observe = |seq: u64, block: &[u8]| seen.lock().push((seq, block.len()));
        let config = DriveConfig {
            threads: 1,
            duration: Duration::from_millis(100),
            record_bytes: 512,
        };
        let (result, end) = with_host_log(
            &dev,
            sb,
            slot,
            HostOptions::for_direct(false, 0),
            Some(&observe),
            |log| drive(log, config, &|_, _| {}, &mut |_| {}),
        )
        .unwrap();
        assert!(result.unwrap().commits > 0);
        let seen = seen.lock();
        assert_eq!(seen.len() as u64, end.stats.writes);
        assert!(seen.iter().all(|&(_, len)| len % 4096 == 0));
        let _ = check_pattern;
    }

    /// A device whose flushes first run `before_flush`, which may sleep (a
    /// disk's cache flush taking time) or fail it (a dying disk).
    struct FlushHook<'a, F> {
        inner: &'a dyn BlockIo,
        before_flush: F,
    }

    impl<F: Fn() -> Result<(), DeviceError> + Send + Sync> BlockIo for FlushHook<'_, F> {
        fn size_bytes(&self) -> u64 {
            self.inner.size_bytes()
        }
        fn sector_size_bytes(&self) -> u32 {
            self.inner.sector_size_bytes()
        }
        fn write_at(&self, offset_bytes: u64, buf: &[u8]) -> Result<(), DeviceError> {
            self.inner.write_at(offset_bytes, buf)
        }
        fn read_at(&self, offset_bytes: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
            self.inner.read_at(offset_bytes, buf)
        }
        fn flush(&self) -> Result<(), DeviceError> {
            (self.before_flush)()?;
            self.inner.flush()
        }
    }

    fn drive_slow_flushes(
        threads: usize,
        record_bytes: usize,
        flush_delay: Duration,
    ) -> (crate::backend::DriveResult, HostEnd) {
        let (dev, sb, slot) = formatted();
        let slow = FlushHook {
            inner: &dev,
            before_flush: || {
                std::thread::sleep(flush_delay);
                Ok(())
            },
        };
        let config = DriveConfig {
            threads,
            duration: Duration::from_millis(400),
            record_bytes,
        };
        let (result, end) = with_host_log(
            &slow,
            sb,
            slot,
            HostOptions::for_direct(false, 0),
            None,
            |log| {
                let result = drive(log, config, &|_, _| {}, &mut |_| {});
                // Every committer is out: each one counted in when it
                // entered, woke or was woken is counted out again.
                let running = log.platform().active_committers.load(Ordering::Acquire);
                (result, running)
            },
        )
        .unwrap();
        let (result, running) = result;
        assert_eq!(running, 0, "committers still counted as running");
        (result.unwrap(), end)
    }

    #[test]
    fn flushes_requested_while_one_runs_share_the_next_one() {
        // 96 KiB records: nearly every commit fills an lwb of its own, so
        // each 5 ms flush finds several lwbs written behind it (fewer on a
        // starved CI machine, hence the margin below).
        let (result, end) = drive_slow_flushes(8, 96 * 1024, Duration::from_millis(5));
        assert!(result.commits >= 8, "{result:?}");
        let stats = end.stats;
        assert!(
            stats.flushes * 3 <= stats.flush_requests * 2,
            "flush requests were not coalesced: {stats:?}"
        );
    }

    #[test]
    fn committers_share_lwbs_and_flushes() {
        // Four committers, a 1 ms flush: while one flush runs the others
        // commit, and the last one to sleep sends the lot in one lwb.
        let (result, end) = drive_slow_flushes(4, 4096, Duration::from_millis(1));
        let flushes = end.stats.flushes;
        assert!(result.commits >= 40, "{result:?}");
        assert!(
            flushes * 2 <= result.commits,
            "{flushes} flushes for {} commits",
            result.commits
        );
        assert!(
            end.core.records >= 2 * end.core.lwbs_issued,
            "lwbs carried too few records: {:?}",
            end.core
        );
    }

    #[test]
    fn no_committer_misses_its_wake_up() {
        // Many committers, quick flushes: every waiter slot is reused
        // thousands of times. A wake lost to a slot's reuse would leave a
        // committer asleep for WAITER_STALL; the slowest commit shows it.
        let (result, _) = drive_slow_flushes(48, 512, Duration::from_micros(50));
        assert!(result.commits > 1000, "{result:?}");
        assert!(
            result.latency.max_ns() < WAITER_STALL.as_nanos() as u64 / 4,
            "slowest commit took {} ms",
            result.latency.max_ns() / 1_000_000
        );
    }

    #[test]
    fn a_stall_report_shows_the_queue_the_ring_and_the_pools() {
        let (dev, sb, slot) = formatted();
        let (report, end) = with_host_log(
            &dev,
            sb,
            slot,
            HostOptions::for_direct(false, 0),
            None,
            |log| {
                let id = RecordId {
                    committer: 0,
                    seq: 0,
                };
                log.commit(id, &[7; 100]).unwrap();
                log.abort("stalled (test)");
                log.failure()
            },
        )
        .unwrap();
        let report = report.expect("abort fails the log");
        for part in [
            "stalled (test) (lwbs by state: ",
            "queue: 0 writes, 0 flush requests, flushing false",
            "committers running 0",
            " bytes free, ",
            "in use: ",
            "commit permits free, 0 committers in a back-pressure retry, last limit hit None",
            "core stats",
        ] {
            assert!(report.contains(part), "{part:?} missing in {report}");
        }
        assert_eq!(end.failure.as_deref(), Some(report.as_str()));
    }

    #[test]
    fn a_panicking_body_ends_the_log_instead_of_hanging() {
        let (dev, sb, slot) = formatted();
        let (done, outcome) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                with_host_log(
                    &dev,
                    sb,
                    slot,
                    HostOptions::for_direct(false, 0),
                    None,
                    |_| panic!("a bug in the body"),
                )
            }));
            let _ = done.send(caught.is_err());
        });
        // The completion and checkpoint threads used to wait forever for
        // a stop the panic skipped, and the scope for them.
        assert_eq!(outcome.recv_timeout(Duration::from_secs(30)), Ok(true));
    }

    #[test]
    fn a_failed_flush_fails_the_commits_and_every_ack_is_durable() {
        use crate::backend::RecordId;
        use crate::crashdev::RecordingDevice;
        use crate::verify::Ledger;
        let (dev, sb, slot) = formatted();
        let recorder = RecordingDevice::new(dev).unwrap();
        // The first superblock update, then a few commits' worth.
        let ok_flushes = AtomicU64::new(20);
        let failing = FlushHook {
            inner: &recorder,
            // Fails every flush after the first `ok_flushes`.
            before_flush: || {
                let left = ok_flushes.load(Ordering::Relaxed);
                if left == 0 {
                    return Err(DeviceError::Io {
                        path: "failing".into(),
                        op: "fdatasync",
                        source: std::io::Error::from_raw_os_error(libc::EIO),
                    });
                }
                ok_flushes.store(left - 1, Ordering::Relaxed);
                Ok(())
            },
        };
        let ledger = Ledger::new(4096);
        let observe = |seq: u64, block: &[u8]| ledger.observe_block(seq, block);
        let config = DriveConfig {
            threads: 4,
            duration: Duration::from_secs(10),
            record_bytes: 4096,
        };
        let began = Instant::now();
        let (result, end) = with_host_log(
            &failing,
            sb,
            slot,
            HostOptions::for_direct(false, 0),
            Some(&observe),
            |log| {
                drive(
                    log,
                    config,
                    &|c, s| {
                        ledger.ack(
                            RecordId {
                                committer: c as u32,
                                seq: s,
                            },
                            recorder.mark(),
                        )
                    },
                    &mut |_| {},
                )
            },
        )
        .unwrap();
        let error = result.expect_err("commits kept succeeding with a failing flush");
        assert!(
            error.to_string().contains("Io") || error.to_string().contains("failed"),
            "{error}"
        );
        // It stopped at the failure, not at the end of the 10 s run.
        assert!(began.elapsed() < Duration::from_secs(5));
        assert!(end.core.lwb_errors > 0 || end.failure.is_some(), "{end:?}");
        // Whatever was acknowledged survives every power cut after it:
        // no acknowledgement rode on a failed flush.
        let at = recorder.mark();
        let mut crasher = recorder.crasher();
        for seed in 0..8 {
            let (image, _) = crasher.crash(at, seed).unwrap();
            let verdict = ledger.check_image(&image, at);
            assert!(verdict.ok(), "{verdict}");
        }
    }
}
