//! What the core needs from the world, and nothing more.
//!
//! A platform (the FreeBSD kernel shim, the host's threads and files, the
//! deterministic simulator, the in-memory test kit) implements [`Platform`].
//! The core never sleeps, never allocates on its own and never calls the OS:
//! every lock, buffer, log block, I/O and wake-up goes through this trait.
//!
//! # Calling conventions
//!
//! * Submission methods (`submit_write`, `submit_flush`, `submit_indirect`)
//!   must not call back into the [`crate::Zil`] synchronously; the
//!   completion is reported later with [`crate::Zil::io_done`] from any
//!   thread (a completion thread, a taskqueue, the simulator's scheduler).
//!   The core calls them with no lock held.
//! * Pool and block allocations may be called with the issuer and log locks
//!   held (closing an lwb allocates its successor, its block and the
//!   buffer together); they must not sleep on anything the core holds and
//!   must not call back into the core. Failure is back-pressure.
//! * [`Platform::wake`] is called with the log lock (`zl_lock`) held, the
//!   way OpenZFS signals `zcw_cv` under `zl_lock` (#15228). It must only
//!   signal: take at most a leaf lock of its own, never call into the core.
//! * [`Platform::lwb_state_changed`] is called with the log lock held at
//!   every lwb transition. It must only record (a counter, a trace probe,
//!   a leaf lock of its own at most), never sleep, never call into the core.
//! * [`Platform::alloc_slots`] is called only by [`crate::Zil::new`], with
//!   no lock held; it may sleep.

use crate::error::{Error, IoError};
use core::ops::DerefMut;

/// Where a log block lives: the vdev (device) index, the byte offset on it
/// and the allocated size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct BlockAddr {
    /// Device index, `< VDEVS_MAX`.
    pub vdev: u32,
    /// Byte offset of the block on the device.
    pub offset_bytes: u64,
    /// Allocated size of the block, a multiple of 4 KiB.
    pub size_bytes: u32,
}

/// Identifies one in-flight I/O of one lwb. Handed to the platform with each
/// submission and handed back in [`crate::Zil::io_done`]; it carries the
/// lwb's generation, so a completion for a freed lwb is detected, not
/// applied to whatever reuses its slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct IoToken {
    pub(crate) lwb: crate::lwb::LwbId,
    pub(crate) kind: IoKind,
    /// For WR_INDIRECT data writes: which child of the lwb's child zio
    /// (`< LWB_ITXS_MAX`), so a duplicate completion is recognised.
    pub(crate) child: u8,
}

impl IoToken {
    /// The block sequence number of the lwb this I/O belongs to.
    pub fn lwb_seq(&self) -> u64 {
        self.lwb.seq
    }

    /// What this I/O is.
    pub fn kind(&self) -> IoKind {
        self.kind
    }
}

/// The kind of an in-flight I/O.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IoKind {
    /// The lwb's own block write (`lwb_write_zio`).
    Write,
    /// A cache flush of one vdev, a child of the lwb's root zio.
    Flush {
        /// The vdev being flushed.
        vdev: u32,
    },
    /// A WR_INDIRECT data write, a child of the lwb's child zio. Its vdev
    /// is the one [`Platform::submit_indirect`] returned.
    Indirect,
}

/// The answer to [`Platform::submit_indirect`]: where the data went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndirectBlock {
    /// The block pointer to store in the record (`lr_blkptr`).
    pub blkptr: crate::format::Blkptr,
    /// The vdev that must be flushed before the record is durable.
    pub vdev: u32,
}

/// Identifies a commit waiter; handed to [`Platform::wake`] and returned by
/// [`crate::Zil::commit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct WaiterId {
    /// Slot index, `< COMMIT_WAITERS_MAX`; stable for the waiter's life, so
    /// a platform can keep one parking spot per slot.
    pub slot: u16,
    pub(crate) gen: u32,
}

/// Failure to allocate from a platform pool or the block allocator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AllocError;

impl From<AllocError> for Error {
    fn from(_: AllocError) -> Self {
        Error::NoLogSpace
    }
}

/// The services a platform provides to the core.
///
/// Pools hand out owning boxes (`DerefMut` to the object); dropping a box
/// returns the object to its pool. Under INVARIANTS-style platforms
/// (FreeBSD UMA zones without init/fini, the simulator's trashing slab) a
/// returned object is trashed with `0xdeadc0de`.
pub trait Platform: Sync {
    /// The mutex behind `zl_lock` (mtx(9) in the kernel, parking_lot on
    /// hosts, a spin lock in tests).
    type RawMutex: lock_api::RawMutex;
    /// The mutex behind `zl_issuer_lock`, taken before `zl_lock`. A type of
    /// its own so a kernel can give it its own lock class (WITNESS then
    /// checks the issuer → `zl_lock` order); hosts may use the same type.
    type IssuerRawMutex: lock_api::RawMutex;
    /// An lwb object from the lwb pool (`zil_lwb_cache`).
    type LwbBox: DerefMut<Target = crate::lwb::LwbObj> + Send;
    /// An itx object from the itx pool.
    type ItxBox: DerefMut<Target = crate::itx::Itx> + Send;
    /// A log-block buffer (`zio_buf_alloc`), at least the requested size.
    type Buf: DerefMut<Target = [u8]> + Send;
    /// A fixed-length table the log keeps for its whole life: its lwb
    /// list, commit list and commit-waiter table live in these (a few KiB
    /// each), so a [`crate::Zil`] itself stays small enough to build on a
    /// kernel stack. Dropping the table drops its slots and frees it.
    type Slots<T: Send>: DerefMut<Target = [T]> + Send;

    /// Monotonic time in nanoseconds.
    fn now_ns(&self) -> u64;
    /// A random 64-bit value, for a new chain's verifier GUIDs.
    fn random_u64(&self) -> u64;

    /// Allocate an lwb object holding `lwb`.
    fn alloc_lwb(&self, lwb: crate::lwb::LwbObj) -> Result<Self::LwbBox, AllocError>;
    /// Allocate an empty itx: its header as in [`crate::itx::Itx::EMPTY`]
    /// (a reused one can be emptied with [`crate::itx::Itx::reset`]); its
    /// body bytes may hold anything, the core never reads one it did not
    /// fill. A pool that can run out must hold more itxs than
    /// [`crate::Config::commit_list_itxs_max`]
    /// ([`crate::limits::ITX_POOL_ITEMS_MIN`] with the default).
    fn alloc_itx(&self) -> Result<Self::ItxBox, AllocError>;
    /// Allocate a block buffer of at least `size_bytes`.
    fn alloc_buf(&self, size_bytes: u32) -> Result<Self::Buf, AllocError>;
    /// Allocate a table of exactly `len` slots, slot `i` holding `init(i)`.
    /// Each slot is small; write it straight into the table's memory, one
    /// at a time, so that no table-sized value ever sits on a stack (the
    /// kernel builds the log in a thread with a 16 KiB stack). Only
    /// [`crate::Zil::new`] calls this, with no lock held: it may sleep.
    fn alloc_slots<T: Send>(
        &self,
        len: usize,
        init: impl FnMut(usize) -> T,
    ) -> Result<Self::Slots<T>, AllocError>;

    /// Allocate a log block of exactly `size_bytes` (a multiple of 4 KiB).
    /// Called in chain order (block seq order), under the log lock; an
    /// error is back-pressure ([`crate::Limit::LogSpace`]), not a failure.
    fn alloc_log_block(&self, size_bytes: u32) -> Result<BlockAddr, AllocError>;
    /// Release a log block: its lwb was freed by a checkpoint, or it was
    /// allocated but will never be written.
    fn free_log_block(&self, addr: BlockAddr);

    /// Write `buf[..len_bytes]` at `addr`. The buffer belongs to the platform
    /// from here on (it frees it after the write, as `zil_lwb_write_done`
    /// does). Complete with `Zil::io_done(io, result)`.
    fn submit_write(&self, io: IoToken, addr: BlockAddr, buf: Self::Buf, len_bytes: usize);
    /// Flush the write cache of `vdev` (BIO_FLUSH / fdatasync). Complete with
    /// `Zil::io_done(io, result)`; `Err(IoError::NotSupported)` marks the
    /// vdev as having no write cache.
    fn submit_flush(&self, io: IoToken, vdev: u32);

    /// WR_NEED_COPY: copy `out.len()` bytes of object `foid` at `offset`
    /// into `out` (`zl_get_data`). Called with no lock held.
    fn get_data(&self, foid: u64, offset: u64, out: &mut [u8]) -> Result<(), IoError>;
    /// WR_INDIRECT: allocate a data block for `length` bytes of object
    /// `foid` at `offset`, start writing the data there (`dmu_sync`) and
    /// return where it goes. Complete the data write with
    /// `Zil::io_done(io, result)`. Called with no lock held.
    fn submit_indirect(
        &self,
        io: IoToken,
        foid: u64,
        offset: u64,
        length: u64,
    ) -> Result<IndirectBlock, IoError>;

    /// A commit waiter is done: wake whoever sleeps on it. Called with the
    /// log lock held; must only signal.
    fn wake(&self, waiter: WaiterId);

    /// Fletcher-4 of `data` in host byte order (`fletcher_4_native`), used
    /// to seal every log block; called with no lock held. The default is
    /// the portable [`crate::format::fletcher_4_native`]. A platform with
    /// vector units it may use (a host; not a soft-float kernel) overrides
    /// it with an implementation picked at run time, as OpenZFS picks a
    /// `fletcher_4_impl`, e.g. [`crate::format::fletcher_4_lanes`] compiled
    /// for AVX2. It must return exactly what the default returns.
    fn fletcher_4_native(&self, data: &[u8]) -> crate::format::ZioCksum {
        crate::format::fletcher_4_native(data)
    }

    /// lwb `seq` moved from state `from` to `to` (`from` is `None` when the
    /// lwb was just allocated, entering NEW). Called at every transition,
    /// in order per lwb, always one step forward
    /// (NEW → OPENED → CLOSED → READY → ISSUED → WRITE_DONE → FLUSH_DONE;
    /// an lwb that failed takes the same steps, carrying its error),
    /// with the log lock (`zl_lock`) held, except for the log's first lwb,
    /// which [`crate::Zil::new`] reports before the log is shared. It
    /// must only record: bump a counter, fire a trace probe, take at most
    /// a leaf lock of its own; never sleep, never call into the core.
    /// Freeing is not reported: a checkpoint frees only FLUSH_DONE lwbs
    /// (`Stats::lwbs_freed` counts them), and dropping the `Zil` drops the
    /// rest wherever they stand. The default records nothing.
    fn lwb_state_changed(
        &self,
        seq: u64,
        from: Option<crate::lwb::LwbState>,
        to: crate::lwb::LwbState,
    ) {
        let _ = (seq, from, to);
    }
}
