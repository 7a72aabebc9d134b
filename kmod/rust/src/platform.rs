//! `rzil::Platform` for the FreeBSD kernel.
//!
//! * Locks: [`KMutex`] over mtx(9).
//! * Pools: UMA zones ([`ZoneBox`], [`KBuf`]); init/fini NULL, so freed
//!   lwbs are trashed with `0xdeadc0de` under INVARIANTS. The core's
//!   long-lived tables: malloc(9) ([`KSlots`]), filled slot by slot.
//! * Log blocks: a FIFO ring over the attached provider ([`LogRing`]).
//! * I/O: BIO_WRITE / BIO_FLUSH through the shim's GEOM consumer; each
//!   in-flight request owns a [`KIo`] from the I/O zone that travels in
//!   `bio_caller2` and comes back in `rzil_core_io_done`.
//! * Clock: `sbinuptime()`; randomness: `arc4random_buf(9)`.
//! * Wake-ups: one condvar per instance and a wake sequence number.
//! * lwb state changes: straight to the shim's per-state counters
//!   (`kern.rzil.stats.lwb_entered`) and SDT probe (`rzil::lwb:state`).
//!
//! # Invariants
//!
//! A [`KPlatform`] lives inside the instance memory the C shim allocated
//! and never moves; `sc` points to the shim's softc, which outlives it
//! (the shim frees the softc only after `rzil_core_detach`).

use crate::ffi;
use crate::kmem::{KBuf, KSlots, Zone, ZoneBox, ZoneItem};
use crate::sync::{named_mutex, KCondvar, KIssuerMutex, KMutex, Mutex, WaitResult};
use core::ops::DerefMut;
use core::sync::atomic::{AtomicU64, Ordering};
use rzil::error::IoError;
use rzil::itx::Itx;
use rzil::limits::{LWB_BLOCK_ALIGN_BYTES, LWB_INFLIGHT_MAX};
use rzil::lwb::{LwbObj, LwbState};
use rzil::platform::{AllocError, BlockAddr, IndirectBlock, IoToken, Platform, WaiterId};

/// The kernel instance logs to one provider: vdev 0.
pub const KERNEL_VDEV: u32 = 0;
/// Where the log region starts on the provider. The kernel module owns the
/// whole provider it is attached to.
pub const LOG_REGION_START_BYTES: u64 = 0;
/// Log blocks allocated and not yet released, at most: every lwb the core
/// may have in flight, plus as many allocated ahead of their issue.
pub const LOG_BLOCKS_OUTSTANDING_MAX: usize = 2 * LWB_INFLIGHT_MAX;

// SAFETY: the lwb zone's item size is size_of::<LwbObj>() and the zone
// alignment covers align_of::<LwbObj>() (exports::rzil_core_load).
unsafe impl ZoneItem for LwbObj {
    const ZONE: Zone = Zone::Lwb;
}
// SAFETY: as above, for the itx zone.
unsafe impl ZoneItem for Itx {
    const ZONE: Zone = Zone::Itx;
}

/// One in-flight BIO_WRITE or BIO_FLUSH: what the completion needs.
#[derive(Debug)]
pub struct KIo {
    /// The core's token for this I/O.
    pub token: IoToken,
    /// The written buffer, freed when the write completes.
    pub buf: Option<KBuf>,
}

// SAFETY: the I/O zone's item size is size_of::<KIo>() (rzil_core_load).
unsafe impl ZoneItem for KIo {
    const ZONE: Zone = Zone::Io;
}

/// A block handed out by [`LogRing`].
#[derive(Clone, Copy, Debug)]
pub struct RingEntry {
    addr: BlockAddr,
    released: bool,
}

/// Log-block allocator: blocks are carved from the provider in chain order
/// and come back roughly in chain order (checkpoints free from the head).
/// Space is reused only once every older block was released, so a block
/// is never handed out while an older one that may still be read sits
/// after it.
///
/// The entries (3 KiB) live in `S`, a [`KSlots`] in the kernel, so that
/// building a platform never puts them on the attach thread's stack.
#[derive(Debug)]
pub struct LogRing<S = KSlots<Option<RingEntry>>> {
    start_bytes: u64,
    end_bytes: u64,
    /// Next offset to hand out.
    head_bytes: u64,
    /// Outstanding blocks, oldest first (a circular array of
    /// [`LOG_BLOCKS_OUTSTANDING_MAX`] slots).
    entries: S,
    first: usize,
    count: usize,
}

impl<S: DerefMut<Target = [Option<RingEntry>]>> LogRing<S> {
    /// A ring over `[start_bytes, end_bytes)` keeping its entries in
    /// `entries`, which must be [`LOG_BLOCKS_OUTSTANDING_MAX`] empty slots.
    pub fn new(entries: S, start_bytes: u64, end_bytes: u64) -> Result<Self, AllocError> {
        if entries.len() != LOG_BLOCKS_OUTSTANDING_MAX || entries.iter().any(Option::is_some) {
            return Err(AllocError);
        }
        Ok(LogRing {
            start_bytes,
            end_bytes,
            head_bytes: start_bytes,
            entries,
            first: 0,
            count: 0,
        })
    }

    fn oldest_offset(&self) -> Option<u64> {
        self.entries[self.first].map(|e| e.addr.offset_bytes)
    }

    /// Allocate `size_bytes` (a multiple of 4 KiB).
    pub fn alloc(&mut self, size_bytes: u32) -> Result<BlockAddr, AllocError> {
        let size = u64::from(size_bytes);
        if size == 0 || size % u64::from(LWB_BLOCK_ALIGN_BYTES) != 0 {
            return Err(AllocError);
        }
        if self.count == LOG_BLOCKS_OUTSTANDING_MAX {
            return Err(AllocError);
        }
        // Live blocks occupy [oldest, head) when not wrapped, and
        // [oldest, end) + [start, head) once allocation wrapped around.
        let head = self.head_bytes;
        let at = match self.oldest_offset() {
            None if head + size <= self.end_bytes => head,
            None => self.start_bytes,
            Some(oldest) if oldest < head => {
                if head + size <= self.end_bytes {
                    head
                } else if self.start_bytes + size <= oldest {
                    self.start_bytes
                } else {
                    return Err(AllocError);
                }
            }
            Some(oldest) if head + size <= oldest => head,
            Some(_) => return Err(AllocError),
        };
        if at + size > self.end_bytes {
            return Err(AllocError);
        }
        let addr = BlockAddr {
            vdev: KERNEL_VDEV,
            offset_bytes: at,
            size_bytes,
        };
        let slot = (self.first + self.count) % LOG_BLOCKS_OUTSTANDING_MAX;
        self.entries[slot] = Some(RingEntry {
            addr,
            released: false,
        });
        self.count += 1;
        self.head_bytes = at + size;
        Ok(addr)
    }

    /// Release `addr`; space is reclaimed once every older block is too.
    pub fn release(&mut self, addr: BlockAddr) -> bool {
        let mut found = false;
        for i in 0..self.count {
            let slot = (self.first + i) % LOG_BLOCKS_OUTSTANDING_MAX;
            if let Some(e) = self.entries[slot].as_mut() {
                if e.addr == addr && !e.released {
                    e.released = true;
                    found = true;
                    break;
                }
            }
        }
        while self.count > 0 && self.entries[self.first].is_some_and(|e| e.released) {
            self.entries[self.first] = None;
            self.first = (self.first + 1) % LOG_BLOCKS_OUTSTANDING_MAX;
            self.count -= 1;
        }
        found
    }

    /// Blocks outstanding.
    pub fn outstanding(&self) -> usize {
        self.count
    }
}

/// The kernel platform of one instance.
pub struct KPlatform {
    sc: *mut ffi::rzil_softc,
    buf_capacity_bytes: usize,
    ring: Mutex<LogRing>,
    /// Leaf lock of the wake-up protocol (taken under the core's log lock).
    wake_lock: Mutex<()>,
    wake_cv: KCondvar,
    /// Bumped under `wake_lock` by every wake; sleepers compare it.
    wake_seq: AtomicU64,
    /// Outstanding I/Os handed to GEOM and not yet completed.
    inflight: AtomicU64,
}

// SAFETY: `sc` is only passed to shim functions that are safe to call from
// any thread; everything else is behind a KMutex or atomic.
unsafe impl Sync for KPlatform {}
// SAFETY: as above; the softc is not thread-affine.
unsafe impl Send for KPlatform {}

impl core::fmt::Debug for KPlatform {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KPlatform")
            .field("buf_capacity_bytes", &self.buf_capacity_bytes)
            .field("inflight", &self.inflight.load(Ordering::Relaxed))
            .finish()
    }
}

impl KPlatform {
    /// A platform over the provider the shim attached (`geom`). Sleeps
    /// to allocate its log-block ring: only with no lock held.
    pub fn new(
        sc: *mut ffi::rzil_softc,
        geom: &ffi::rzil_geometry,
        buf_capacity_bytes: u32,
    ) -> Result<Self, AllocError> {
        let entries = KSlots::new_sleeping(LOG_BLOCKS_OUTSTANDING_MAX, |_| None)?;
        Ok(KPlatform {
            sc,
            buf_capacity_bytes: buf_capacity_bytes as usize,
            ring: named_mutex(
                c"rzil ring",
                LogRing::new(entries, LOG_REGION_START_BYTES, geom.rg_media_size_bytes)?,
            ),
            wake_lock: named_mutex(c"rzil wake", ()),
            wake_cv: KCondvar::new(),
            wake_seq: AtomicU64::new(0),
            inflight: AtomicU64::new(0),
        })
    }

    /// The wake sequence number; read it before polling a waiter.
    pub fn wake_seq(&self) -> u64 {
        self.wake_seq.load(Ordering::Acquire)
    }

    /// Sleep until a wake newer than `seen_seq`, `timeout_ns`, or a signal
    /// to this (user) thread.
    pub fn sleep(&self, seen_seq: u64, timeout_ns: u64) -> WaitResult {
        let mut g = self.wake_lock.lock();
        if self.wake_seq.load(Ordering::Acquire) != seen_seq {
            return WaitResult::Woken;
        }
        self.wake_cv.wait_timeout_sig_ns(&mut g, timeout_ns)
    }

    /// I/Os submitted and not yet completed.
    pub fn inflight(&self) -> u64 {
        self.inflight.load(Ordering::Acquire)
    }

    /// A completion came back from the shim: take the KIo back.
    ///
    /// # Safety
    ///
    /// `io` must be a pointer this platform passed to the shim with a
    /// submission, returned exactly once.
    pub unsafe fn complete(&self, io: *mut KIo) -> (IoToken, Option<KBuf>) {
        // SAFETY: caller's contract: `io` came from ZoneBox::into_raw in
        // submit_write/submit_flush and is returned once.
        let mut boxed = unsafe { ZoneBox::from_raw(io) };
        self.inflight.fetch_sub(1, Ordering::AcqRel);
        let buf = boxed.buf.take();
        (boxed.token, buf)
    }
}

impl Platform for KPlatform {
    type RawMutex = KMutex;
    type IssuerRawMutex = KIssuerMutex;
    type LwbBox = ZoneBox<LwbObj>;
    type ItxBox = ZoneBox<Itx>;
    type Buf = KBuf;
    type Slots<T: Send> = KSlots<T>;

    fn now_ns(&self) -> u64 {
        // SAFETY: reads the kernel's uptime clock; no preconditions.
        unsafe { ffi::rzil_shim_uptime_ns() }
    }

    fn random_u64(&self) -> u64 {
        // SAFETY: arc4random_buf into a local; no preconditions.
        unsafe { ffi::rzil_shim_random_u64() }
    }

    fn alloc_lwb(&self, lwb: LwbObj) -> Result<Self::LwbBox, AllocError> {
        ZoneBox::try_new(lwb)
    }

    fn alloc_itx(&self) -> Result<Self::ItxBox, AllocError> {
        ZoneBox::try_new(Itx::EMPTY)
    }

    fn alloc_buf(&self, size_bytes: u32) -> Result<Self::Buf, AllocError> {
        KBuf::try_new(size_bytes as usize, self.buf_capacity_bytes)
    }

    fn alloc_slots<T: Send>(
        &self,
        len: usize,
        init: impl FnMut(usize) -> T,
    ) -> Result<KSlots<T>, AllocError> {
        KSlots::new_sleeping(len, init)
    }

    fn alloc_log_block(&self, size_bytes: u32) -> Result<BlockAddr, AllocError> {
        self.ring.lock().alloc(size_bytes)
    }

    fn free_log_block(&self, addr: BlockAddr) {
        let known = self.ring.lock().release(addr);
        debug_assert!(known, "free of a log block the ring never handed out");
    }

    fn submit_write(&self, io: IoToken, addr: BlockAddr, mut buf: Self::Buf, len_bytes: usize) {
        let data = buf.as_mut_ptr();
        debug_assert!(len_bytes <= buf.len());
        let kio = ZoneBox::new_sleeping(KIo {
            token: io,
            buf: Some(buf),
        });
        self.inflight.fetch_add(1, Ordering::AcqRel);
        // SAFETY: `sc` is live (type invariant); `data` is in the buffer owned
        // by `kio`, alive in the I/O zone until the completion hands it back,
        // so it outlives the bio. The shim checks the range vs the provider.
        unsafe {
            ffi::rzil_shim_submit_write(
                self.sc,
                kio.into_raw().cast(),
                addr.offset_bytes,
                data.cast(),
                len_bytes as u32,
            )
        }
    }

    fn submit_flush(&self, io: IoToken, vdev: u32) {
        debug_assert_eq!(vdev, KERNEL_VDEV);
        let kio = ZoneBox::new_sleeping(KIo {
            token: io,
            buf: None,
        });
        self.inflight.fetch_add(1, Ordering::AcqRel);
        // SAFETY: `sc` is live; the KIo travels in bio_caller2 and comes
        // back exactly once through rzil_core_io_done.
        unsafe { ffi::rzil_shim_submit_flush(self.sc, kio.into_raw().cast()) }
    }

    fn get_data(&self, _foid: u64, _offset: u64, _out: &mut [u8]) -> Result<(), IoError> {
        // The control device only assigns WR_COPIED records, whose data is
        // copied at assign time; the core never asks for it here.
        Err(IoError::NotSupported)
    }

    fn submit_indirect(
        &self,
        _io: IoToken,
        _foid: u64,
        _offset: u64,
        _length: u64,
    ) -> Result<IndirectBlock, IoError> {
        // No WR_INDIRECT records come through the control device.
        Err(IoError::NotSupported)
    }

    fn wake(&self, _waiter: WaiterId) {
        // Called under the core's log lock: take only our leaf lock.
        let _g = self.wake_lock.lock();
        self.wake_seq.fetch_add(1, Ordering::AcqRel);
        self.wake_cv.broadcast();
    }

    fn lwb_state_changed(&self, seq: u64, from: Option<LwbState>, to: LwbState) {
        let (from, to) = probe_states(from, to);
        // SAFETY: `sc` is live (type invariant). Called under the core's
        // log lock: the shim only bumps a counter(9) and fires an SDT
        // probe, neither of which sleeps or takes a lock.
        unsafe { ffi::rzil_shim_lwb_state(self.sc, seq, from, to) }
    }
}

/// The `from` and `to` arguments of the `rzil::lwb:state` probe for a
/// transition: a new lwb (no `from`) is reported as NEW → NEW.
pub fn probe_states(from: Option<LwbState>, to: LwbState) -> (u32, u32) {
    (u32::from(from.unwrap_or(to) as u8), u32::from(to as u8))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reports_state_numbers_and_new_lwbs_as_new_to_new() {
        assert_eq!(probe_states(None, LwbState::New), (0, 0));
        assert_eq!(
            probe_states(Some(LwbState::Issued), LwbState::WriteDone),
            (4, 5)
        );
        assert_eq!(
            probe_states(Some(LwbState::WriteDone), LwbState::FlushDone),
            (5, 6)
        );
    }

    const KIB: u32 = 1024;

    fn ring(start_bytes: u64, end_bytes: u64) -> LogRing<Vec<Option<RingEntry>>> {
        LogRing::new(
            vec![None; LOG_BLOCKS_OUTSTANDING_MAX],
            start_bytes,
            end_bytes,
        )
        .unwrap()
    }

    #[test]
    fn ring_refuses_storage_of_the_wrong_size() {
        let short = vec![None; LOG_BLOCKS_OUTSTANDING_MAX - 1];
        assert!(LogRing::new(short, 0, 64 * 1024).is_err());
    }

    #[test]
    fn ring_allocates_in_order_and_refuses_when_full() {
        let mut r = ring(0, 64 * 1024);
        let a = r.alloc(16 * KIB).unwrap();
        let b = r.alloc(32 * KIB).unwrap();
        assert_eq!((a.offset_bytes, b.offset_bytes), (0, 16384));
        assert!(r.alloc(32 * KIB).is_err(), "only 16 KiB left");
        assert!(r.alloc(3000).is_err(), "not a multiple of 4 KiB");
        assert!(r.alloc(0).is_err());
        let c = r.alloc(16 * KIB).unwrap();
        assert_eq!(c.offset_bytes, 48 * 1024);
        assert!(r.alloc(4 * KIB).is_err(), "region full, nothing released");
    }

    #[test]
    fn ring_reuses_space_only_after_every_older_block_is_released() {
        let mut r = ring(0, 64 * 1024);
        let a = r.alloc(32 * KIB).unwrap();
        let b = r.alloc(16 * KIB).unwrap();
        let c = r.alloc(16 * KIB).unwrap();
        // Releasing b first frees nothing: a is older and still live.
        assert!(r.release(b));
        assert!(r.alloc(4 * KIB).is_err());
        assert!(r.release(a));
        // a and b are gone: [0, 48 KiB) is free again, c is still live.
        let d = r.alloc(32 * KIB).unwrap();
        assert_eq!(d.offset_bytes, 0);
        let e = r.alloc(16 * KIB).unwrap();
        assert_eq!(e.offset_bytes, 32 * 1024);
        assert!(r.alloc(4 * KIB).is_err(), "c still occupies [48, 64) KiB");
        assert!(r.release(c));
        assert_eq!(r.outstanding(), 2);
        assert!(!r.release(c), "double release is refused");
    }

    #[test]
    fn ring_never_overlaps_a_live_block_after_wrapping() {
        let mut r = ring(4096, 4096 + 40 * 1024);
        let mut live: std::collections::VecDeque<BlockAddr> = Default::default();
        let mut next_size = 4 * KIB;
        for _ in 0..500 {
            match r.alloc(next_size) {
                Ok(b) => {
                    assert!(b.offset_bytes >= 4096);
                    assert!(b.offset_bytes + u64::from(b.size_bytes) <= 4096 + 40 * 1024);
                    for l in &live {
                        let disjoint = b.offset_bytes + u64::from(b.size_bytes) <= l.offset_bytes
                            || l.offset_bytes + u64::from(l.size_bytes) <= b.offset_bytes;
                        assert!(disjoint, "{b:?} overlaps live {l:?}");
                    }
                    live.push_back(b);
                }
                Err(AllocError) => {
                    let oldest = live.pop_front().expect("full with nothing live");
                    assert!(r.release(oldest));
                }
            }
            next_size = (next_size % (16 * KIB)) + 4 * KIB;
        }
    }
}
