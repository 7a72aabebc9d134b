//! The log write block (lwb): its states, its object and its typestate handle.
//!
//! # States and who may move them (OpenZFS 2.2+ semantics, reference §1.3)
//!
//! ```text
//!  NEW ──open──▶ OPENED ──close──▶ CLOSED ──ready──▶ READY ──issue──▶ ISSUED
//!                                                                     │ write zio done
//!                                                                     ▼
//!            (freed by checkpoint) ◀── FLUSH_DONE ◀──root zio done── WRITE_DONE
//! ```
//!
//! * NEW → OPENED → CLOSED: the issuer (holder of `zl_issuer_lock`) owns the
//!   tail lwb; each move also takes `zl_lock` because the object lives on
//!   the log's list. The typestate handle [`Lwb<New>`] / [`Lwb<Opened>`]
//!   sits in the issuer's state.
//! * CLOSED → READY: the thread that closed the lwb fills its buffer with no
//!   lock held, holding [`Lwb<Closed>`]; it then takes `zl_lock`.
//! * READY → ISSUED: under `zl_lock`, by [`Lwb<Ready>::issue`], which takes
//!   the handle by value. Nothing reachable from the issuing thread can
//!   touch the lwb afterwards: the #15233 rule, enforced by the compiler.
//! * ISSUED → WRITE_DONE → FLUSH_DONE: only the zio graph's completion
//!   handlers, under `zl_lock`, via `LwbObj::advance`, which refuses any
//!   move that is not one step forward.
//! * FLUSH_DONE → freed: `checkpoint`, under `zl_lock`, after checking the
//!   `zil_free_lwb` invariants (`LwbObj::check_free`).
//!
//! Illegal transitions do not compile:
//!
//! ```compile_fail
//! use rzil::lwb::{Lwb, LwbObj, New};
//! let mut obj = LwbObj::new_for_doc(1, 4096);
//! let lwb: Lwb<New> = Lwb::new_for_doc(&obj);
//! // NEW cannot be closed: only OPENED can.
//! let closed = lwb.close(&mut obj);
//! ```
//!
//! and an lwb cannot be used after it was issued:
//!
//! ```compile_fail
//! use rzil::lwb::{Lwb, LwbObj, New};
//! let mut obj = LwbObj::new_for_doc(1, 4096);
//! let lwb = Lwb::new_for_doc(&obj).open(&mut obj).close(&mut obj).ready(&mut obj);
//! lwb.issue(&mut obj);
//! let _again = lwb.issue(&mut obj); // use after move
//! ```
//!
//! while the legal sequence compiles and runs:
//!
//! ```
//! use rzil::lwb::{Lwb, LwbObj, LwbState};
//! let mut obj = LwbObj::new_for_doc(1, 4096);
//! let lwb = Lwb::new_for_doc(&obj).open(&mut obj).close(&mut obj).ready(&mut obj);
//! lwb.issue(&mut obj);
//! assert_eq!(obj.state(), LwbState::Issued);
//! ```

use crate::error::Error;
use crate::platform::BlockAddr;
use core::marker::PhantomData;

/// The lwb states (`lwb_state_t`), in the only order they may be taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum LwbState {
    /// Allocated; may have a block; no records yet.
    New = 0,
    /// Accepting records (the tail of the list).
    Opened = 1,
    /// Full or timed out; its records are being copied into its buffer.
    Closed = 2,
    /// Buffer filled; waiting for its block (the previous lwb's issue).
    Ready = 3,
    /// Write (and children) submitted; root armed.
    Issued = 4,
    /// The write zio and its children completed; flushes in flight.
    WriteDone = 5,
    /// Everything written and flushed; waiters signalled. Freeable.
    FlushDone = 6,
}

impl LwbState {
    /// The state's name as OpenZFS spells it.
    pub fn name(self) -> &'static str {
        match self {
            LwbState::New => "NEW",
            LwbState::Opened => "OPENED",
            LwbState::Closed => "CLOSED",
            LwbState::Ready => "READY",
            LwbState::Issued => "ISSUED",
            LwbState::WriteDone => "WRITE_DONE",
            LwbState::FlushDone => "FLUSH_DONE",
        }
    }

    /// Number of states (`LWB_NUM_STATES`).
    pub const COUNT: usize = 7;
}

/// Names an lwb across time: its block sequence number in the chain and the
/// generation of the object that holds it. A handle whose generation does
/// not match the object's is stale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LwbId {
    /// Block sequence number (verifier word 3).
    pub seq: u64,
    /// Allocation generation of the object.
    pub gen: u32,
}

/// Per-lwb zio graph bookkeeping (reference §1.4): counts of unfinished
/// children of the write and root zios, and the cross-lwb edges.
///
/// # Invariants
///
/// * `write_pending` counts the lwb's own write I/O (until it completes),
///   the child zio (while `child_pending > 0` after issue) and the previous
///   lwb's write zio when `prev_write_linked`.
/// * `root_pending` counts the write zio (until it is done), each flush in
///   flight and the previous lwb's root zio when linked.
/// * A zio is done exactly when its count reaches zero after it was armed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ZioCounts {
    /// Unfinished WR_INDIRECT data writes (the child zio's children).
    pub child_pending: u16,
    /// Which of them are still in flight, one bit per child index.
    pub children_inflight: u128,
    /// vdevs whose flush (a child of the root) is still in flight.
    pub flushes_inflight: u64,
    /// Unfinished children of the write zio (including its own I/O).
    pub write_pending: u8,
    /// Unfinished children of the root zio.
    pub root_pending: u16,
    /// Whether the root zio was armed (the lwb was issued).
    pub root_armed: bool,
    /// Whether the lwb's own block write completed.
    pub write_own_done: bool,
    /// This lwb's write zio is a child of the next lwb's write zio.
    pub write_parent_next: bool,
    /// This lwb's root zio is a child of the next lwb's root zio.
    pub root_parent_next: bool,
    /// This lwb's flushes were deferred into the next lwb (#15278): its
    /// root is done without them, so its records are durable only once
    /// the next lwb's root is.
    pub flush_deferred_next: bool,
    /// Flushes issued by this lwb.
    pub flushes_issued: u16,
}

/// An lwb object (`lwb_t`), allocated from the platform's lwb pool.
///
/// Every field is guarded by `zl_lock`: the object sits on the log's list
/// from allocation to free. Fields that only the issuer changes before the
/// lwb is closed are noted as such.
#[derive(Debug)]
pub struct LwbObj {
    pub(crate) id: LwbId,
    pub(crate) state: LwbState,
    /// Block size in bytes (`lwb_sz`); fixed at allocation.
    pub(crate) size_bytes: u32,
    /// Bytes reserved for records, chain header included (`lwb_nused`).
    /// Set at close.
    pub(crate) nused_bytes: u32,
    /// The on-disk block; `None` is a hole: the previous lwb has not been
    /// issued yet, or allocating the block failed (`error` then says so).
    pub(crate) blk: Option<BlockAddr>,
    /// Allocation error handed down from the previous lwb (`lwb_error`).
    pub(crate) error: Option<Error>,
    /// First and last record sequence number in the block (0 if none).
    pub(crate) min_lr_seq: u64,
    pub(crate) max_lr_seq: u64,
    /// Records placed in the block.
    pub(crate) records: u32,
    /// When the lwb was issued (`lwb_issued_timestamp`), ns.
    pub(crate) issued_ns: u64,
    /// Head of this lwb's commit-waiter list (a waiter-table slot).
    pub(crate) waiters_head: Option<u16>,
    /// Number of linked waiters.
    pub(crate) waiters: u16,
    /// vdevs to flush (`lwb_vdev_tree`), one bit each.
    pub(crate) vdevs: u64,
    /// The zio graph's counters and edges.
    pub(crate) zio: ZioCounts,
    /// First error seen by the write zio (own write or children).
    pub(crate) write_error: Option<Error>,
    /// First error seen by the root zio (write, flushes, previous root).
    pub(crate) root_error: Option<Error>,
}

impl LwbObj {
    /// A fresh object in NEW for block `seq` of `size_bytes`.
    pub(crate) fn new(id: LwbId, size_bytes: u32) -> Self {
        Self {
            id,
            state: LwbState::New,
            size_bytes,
            nused_bytes: 0,
            blk: None,
            error: None,
            min_lr_seq: 0,
            max_lr_seq: 0,
            records: 0,
            issued_ns: 0,
            waiters_head: None,
            waiters: 0,
            vdevs: 0,
            zio: ZioCounts::default(),
            write_error: None,
            root_error: None,
        }
    }

    /// A NEW object for documentation and compile-fail tests.
    #[doc(hidden)]
    pub fn new_for_doc(seq: u64, size_bytes: u32) -> Self {
        Self::new(LwbId { seq, gen: 1 }, size_bytes)
    }

    /// Current state.
    pub fn state(&self) -> LwbState {
        self.state
    }

    /// Identity (block seq and generation).
    pub fn id(&self) -> LwbId {
        self.id
    }

    /// Block size in bytes.
    pub fn size_bytes(&self) -> u32 {
        self.size_bytes
    }

    /// The block, if allocated.
    pub fn blk(&self) -> Option<BlockAddr> {
        self.blk
    }

    /// Highest record sequence number in the block (0 if none).
    pub fn max_lr_seq(&self) -> u64 {
        self.max_lr_seq
    }

    /// Number of linked commit waiters.
    pub fn waiters(&self) -> u16 {
        self.waiters
    }

    /// The zio graph's counters.
    pub fn zio(&self) -> ZioCounts {
        self.zio
    }

    /// Move one step forward from `from` to `to`; anything else is a bug in
    /// the core and stops it (a wrong state here means the zio graph or a
    /// handle lied, and continuing could acknowledge lost data).
    pub(crate) fn advance(&mut self, from: LwbState, to: LwbState) {
        assert!(
            self.state == from && to as u8 == from as u8 + 1,
            "lwb {} illegal transition {} -> {} (state {})",
            self.id.seq,
            from.name(),
            to.name(),
            self.state.name()
        );
        self.state = to;
    }

    /// The `zil_free_lwb` invariants (reference §1.7): NEW or FLUSH_DONE, no
    /// zio outstanding, no waiters, no vdevs left to flush.
    pub(crate) fn check_free(&self) -> Result<(), &'static str> {
        if !matches!(self.state, LwbState::New | LwbState::FlushDone) {
            return Err("freeing an lwb that is neither NEW nor FLUSH_DONE");
        }
        let z = &self.zio;
        if z.child_pending != 0 || z.write_pending != 0 || z.root_pending != 0 {
            return Err("freeing an lwb with zios outstanding");
        }
        if self.waiters != 0 || self.waiters_head.is_some() {
            return Err("freeing an lwb with waiters");
        }
        if self.vdevs != 0 {
            return Err("freeing an lwb with vdevs left to flush");
        }
        Ok(())
    }
}

mod sealed {
    pub trait Sealed {}
}

/// A typestate marker: the state an [`Lwb`] handle is known to be in.
pub trait State: sealed::Sealed {
    /// The runtime state this marker stands for.
    const STATE: LwbState;
}

macro_rules! states {
    ($($name:ident => $st:ident),* $(,)?) => {$(
        #[doc = concat!("Typestate marker for `", stringify!($st), "`.")]
        #[derive(Debug)]
        pub enum $name {}
        impl sealed::Sealed for $name {}
        impl State for $name {
            const STATE: LwbState = LwbState::$st;
        }
    )*};
}

states!(New => New, Opened => Opened, Closed => Closed, Ready => Ready);

/// An owned capability to move one lwb out of state `S`.
///
/// Not `Clone`, not `Copy`: exactly one exists per lwb from allocation until
/// issue, and [`Lwb<Ready>::issue`] consumes the last one. The object itself
/// stays on the log's list; each transition takes it `&mut` (which callers
/// can only get under `zl_lock`) and checks that the object is the one this
/// handle names, in the state the type says.
#[derive(Debug)]
#[must_use = "dropping an lwb handle strands the lwb in its state"]
pub struct Lwb<S: State> {
    id: LwbId,
    _state: PhantomData<S>,
}

impl<S: State> Lwb<S> {
    fn step<T: State>(self, obj: &mut LwbObj) -> Lwb<T> {
        assert_eq!(obj.id, self.id, "lwb handle used on another lwb");
        obj.advance(S::STATE, T::STATE);
        Lwb {
            id: self.id,
            _state: PhantomData,
        }
    }

    /// Which lwb this is.
    pub fn id(&self) -> LwbId {
        self.id
    }
}

impl Lwb<New> {
    /// The one handle of a freshly allocated object.
    pub(crate) fn for_new(obj: &LwbObj) -> Self {
        assert_eq!(obj.state, LwbState::New);
        Lwb {
            id: obj.id,
            _state: PhantomData,
        }
    }

    /// Handle for documentation and compile-fail tests.
    #[doc(hidden)]
    pub fn new_for_doc(obj: &LwbObj) -> Self {
        Self::for_new(obj)
    }

    /// NEW → OPENED (`zil_lwb_write_open`): the first record is coming.
    pub fn open(self, obj: &mut LwbObj) -> Lwb<Opened> {
        self.step(obj)
    }
}

impl Lwb<Opened> {
    /// OPENED → CLOSED (`zil_lwb_write_close`): no more records.
    pub fn close(self, obj: &mut LwbObj) -> Lwb<Closed> {
        self.step(obj)
    }
}

impl Lwb<Closed> {
    /// CLOSED → READY: the buffer is filled.
    pub fn ready(self, obj: &mut LwbObj) -> Lwb<Ready> {
        self.step(obj)
    }
}

impl Lwb<Ready> {
    /// READY → ISSUED: the final move of the handle. From here on only the
    /// zio graph's completion handlers touch the lwb.
    pub fn issue(self, obj: &mut LwbObj) {
        let _issued: Lwb<IssuedMarker> = self.step(obj);
    }
}

/// Internal marker so `issue` can reuse `step`; no handle in ISSUED ever
/// leaves `issue`.
#[derive(Debug)]
enum IssuedMarker {}
impl sealed::Sealed for IssuedMarker {}
impl State for IssuedMarker {
    const STATE: LwbState = LwbState::Issued;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transitions_go_one_step_forward() {
        let mut obj = LwbObj::new_for_doc(7, 4096);
        let h = Lwb::new_for_doc(&obj).open(&mut obj);
        assert_eq!(obj.state(), LwbState::Opened);
        let h = h.close(&mut obj).ready(&mut obj);
        h.issue(&mut obj);
        assert_eq!(obj.state(), LwbState::Issued);
        obj.advance(LwbState::Issued, LwbState::WriteDone);
        obj.advance(LwbState::WriteDone, LwbState::FlushDone);
        assert!(obj.check_free().is_ok());
    }

    #[test]
    #[should_panic(expected = "illegal transition")]
    fn runtime_skip_is_refused() {
        let mut obj = LwbObj::new_for_doc(7, 4096);
        obj.advance(LwbState::New, LwbState::Closed);
    }

    #[test]
    #[should_panic(expected = "another lwb")]
    fn handle_for_other_object_is_refused() {
        let a = LwbObj::new_for_doc(1, 4096);
        let mut b = LwbObj::new_for_doc(2, 4096);
        let _ = Lwb::new_for_doc(&a).open(&mut b);
    }

    #[test]
    fn free_invariants() {
        let mut obj = LwbObj::new_for_doc(1, 4096);
        assert!(obj.check_free().is_ok(), "NEW is freeable");
        obj.state = LwbState::Issued;
        assert!(obj.check_free().is_err());
        obj.state = LwbState::FlushDone;
        obj.waiters = 1;
        assert!(obj.check_free().is_err());
        obj.waiters = 0;
        obj.vdevs = 1;
        assert!(obj.check_free().is_err());
        obj.vdevs = 0;
        obj.zio.root_pending = 1;
        assert!(obj.check_free().is_err());
    }
}
