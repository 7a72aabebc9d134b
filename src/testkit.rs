//! An in-memory platform for tests and measurements (feature `testkit`).
//!
//! Nothing completes by itself: every submitted write, flush and indirect
//! data write waits in [`MemState::pending`] until the test completes
//! it, in any order and with any result, through [`MemPlatform::complete`].
//! The device model has a volatile write cache: a completed write sits in
//! the cache; a flush makes durable exactly the writes that had completed
//! on its vdev when the flush was submitted; a failed flush loses them.
//! Tests read back the durable image and walk the chain with the format
//! module, so "acknowledged" is checked against what a reader would find.

extern crate std;

use crate::error::IoError;
use crate::format::{self, Blkptr, BlockFormat, ZioCksum};
use crate::itx::Itx;
use crate::lwb::{LwbObj, LwbState};
use crate::platform::{AllocError, BlockAddr, IndirectBlock, IoKind, IoToken, Platform, WaiterId};
use crate::zil::Zil;
use std::boxed::Box;
use std::collections::BTreeMap;
use std::string::String;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::vec;
use std::vec::Vec;

/// A submitted I/O waiting for the test to complete it.
#[derive(Debug, Clone)]
pub struct PendingIo {
    /// The token to hand back.
    pub io: IoToken,
    /// The vdev it targets.
    pub vdev: u32,
    /// For block writes: where and what.
    pub write: Option<(BlockAddr, Vec<u8>)>,
}

/// Key of a block in the device model.
pub type BlockKey = (u32, u64);

/// Mutable state of the in-memory platform.
#[derive(Debug, Default)]
pub struct MemState {
    /// Submitted, not yet completed.
    pub pending: Vec<PendingIo>,
    /// Completed writes not yet flushed: block → bytes.
    pub cache: BTreeMap<BlockKey, Vec<u8>>,
    /// Flushed writes: block → bytes.
    pub durable: BTreeMap<BlockKey, Vec<u8>>,
    /// For each in-flight flush (by lwb seq and vdev): the cached blocks it covers.
    pub flush_covers: BTreeMap<(u64, u32), Vec<BlockKey>>,
    /// Completed block writes by lwb seq.
    pub written_seqs: Vec<u64>,
    /// Waiters woken, in order.
    pub woken: Vec<WaiterId>,
    /// Rule violations the platform observed (must stay empty).
    pub violations: Vec<String>,
    /// Next free byte of the log region, and freed blocks.
    pub next_offset_bytes: u64,
    /// Log-region capacity; allocation past it fails (back-pressure).
    pub capacity_bytes: u64,
    /// Bytes allocated and not freed.
    pub allocated_bytes: u64,
    /// Freed blocks available for reuse, by size.
    pub free_blocks: Vec<BlockAddr>,
    /// lwb objects handed out and not yet dropped.
    pub lwbs_live: usize,
    /// Limit on live lwb objects (pool size).
    pub lwbs_max: usize,
    /// Pseudo-random state for GUIDs.
    pub rng: u64,
    /// Data written by WR_INDIRECT children: (foid, offset) → length.
    pub indirect_done: Vec<(u64, u64, u64)>,
    /// Flushes submitted, and how many of them were for an lwb whose own
    /// write had not completed (must be 0).
    pub flushes_submitted: u64,
    /// Every lwb transition reported through `lwb_state_changed`, in
    /// order: (block seq, from, to); `from` is `None` for a new lwb.
    pub lwb_transitions: Vec<(u64, Option<LwbState>, LwbState)>,
    /// lwbs that entered each state, indexed by `LwbState as usize` (the
    /// kernel's `kern.rzil.stats.lwb_entered`).
    pub lwbs_entered: [u64; LwbState::COUNT],
    /// The state each lwb was last reported in; an lwb leaves the map when
    /// it reaches FLUSH_DONE, its last state.
    pub lwb_reported: BTreeMap<u64, LwbState>,
    /// `get_data` fails with `IoError::Io` for this object (WR_NEED_COPY
    /// data that cannot be read: its lwb is issued carrying the error).
    pub get_data_fails_foid: Option<u64>,
    /// `get_data` for this object waits at the barrier twice (arrived,
    /// then released) before it reads, so a test can hold one thread
    /// inside an lwb's fill while others commit.
    pub get_data_gate: Option<(u64, std::sync::Arc<std::sync::Barrier>)>,
    /// `alloc_itx` fails while set: the platform's itx pool is used up.
    pub itx_pool_empty: bool,
}

/// The in-memory platform. `RawMutex` is a spin lock.
#[derive(Debug)]
pub struct MemPlatform {
    /// Everything mutable.
    pub state: Mutex<MemState>,
    clock_ns: AtomicU64,
}

/// Counts live lwb objects so a test can see the pool drain and refill.
#[derive(Debug)]
pub struct MemLwbBox<'a> {
    obj: Box<LwbObj>,
    live: &'a Mutex<MemState>,
}

impl core::ops::Deref for MemLwbBox<'_> {
    type Target = LwbObj;
    fn deref(&self) -> &LwbObj {
        &self.obj
    }
}

impl core::ops::DerefMut for MemLwbBox<'_> {
    fn deref_mut(&mut self) -> &mut LwbObj {
        &mut self.obj
    }
}

impl Drop for MemLwbBox<'_> {
    fn drop(&mut self) {
        if let Ok(mut st) = self.live.lock() {
            st.lwbs_live -= 1;
        }
    }
}

impl MemPlatform {
    /// A platform with `capacity_bytes` of log space and a pool of
    /// `lwbs_max` lwb objects, clock at 1 ms.
    pub fn new(capacity_bytes: u64, lwbs_max: usize) -> Self {
        let st = MemState {
            capacity_bytes,
            lwbs_max,
            rng: 0x9e37_79b9_7f4a_7c15,
            ..Default::default()
        };
        Self {
            state: Mutex::new(st),
            clock_ns: AtomicU64::new(1_000_000),
        }
    }

    /// Lock the state.
    pub fn st(&self) -> std::sync::MutexGuard<'_, MemState> {
        self.state.lock().expect("testkit state poisoned")
    }

    /// Advance the clock.
    pub fn advance_ns(&self, ns: u64) {
        self.clock_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Set the clock.
    pub fn set_now_ns(&self, ns: u64) {
        self.clock_ns.store(ns, Ordering::Relaxed);
    }

    /// Index of the first pending I/O of the lwb with block seq `seq`.
    pub fn pending_of(&self, seq: u64) -> Option<usize> {
        self.st().pending.iter().position(|x| x.io.lwb_seq() == seq)
    }

    /// The transitions reported for the lwb with block seq `seq`, in order.
    pub fn transitions_of(&self, seq: u64) -> Vec<(Option<LwbState>, LwbState)> {
        self.st()
            .lwb_transitions
            .iter()
            .filter(|t| t.0 == seq)
            .map(|t| (t.1, t.2))
            .collect()
    }

    /// Number of I/Os waiting.
    pub fn pending_len(&self) -> usize {
        self.st().pending.len()
    }

    /// Complete pending I/O number `i` with `result`: apply it to the
    /// device model, then report it to `zil`.
    pub fn complete(&self, zil: &Zil<&MemPlatform>, i: usize, result: Result<(), IoError>) {
        let p = {
            let mut st = self.st();
            let p = st.pending.remove(i);
            match (p.io.kind(), &p.write) {
                (IoKind::Write, Some((addr, data))) if result.is_ok() => {
                    st.cache
                        .insert((addr.vdev, addr.offset_bytes), data.clone());
                    st.written_seqs.push(p.io.lwb_seq());
                }
                (IoKind::Flush { vdev }, _) => {
                    let covers = st
                        .flush_covers
                        .remove(&(p.io.lwb_seq(), vdev))
                        .unwrap_or_default();
                    for k in covers {
                        if let Some(d) = st.cache.remove(&k) {
                            if result.is_ok() {
                                st.durable.insert(k, d);
                            }
                            // A failed flush loses what it covered.
                        }
                    }
                }
                _ => {}
            }
            p
        };
        // An unexpected completion is a test bug, not something to ignore.
        zil.io_done(p.io, result).expect("completion accepted");
    }

    /// Complete everything pending, oldest first, successfully, until
    /// nothing is left (completions may submit flushes).
    pub fn complete_all(&self, zil: &Zil<&MemPlatform>) {
        for _ in 0..100_000 {
            if self.pending_len() == 0 {
                return;
            }
            self.complete(zil, 0, Ok(()));
        }
        panic!("I/O never drained");
    }

    /// Walk the chain in the durable image from `head` and return every
    /// record's (seq, txtype, payload bytes after the lr_t/lr_write_t
    /// header), in order, plus the number of blocks read.
    pub fn durable_records(&self, head: Blkptr) -> (Vec<(u64, u64, Vec<u8>)>, usize) {
        let st = self.st();
        walk(&st.durable, head)
    }
}

/// Walk a chain in `image` from `head` (as a replaying reader would).
pub fn walk(
    image: &BTreeMap<BlockKey, Vec<u8>>,
    head: Blkptr,
) -> (Vec<(u64, u64, Vec<u8>)>, usize) {
    let mut out = Vec::new();
    let mut bp = head;
    let mut blocks = 0;
    for _ in 0..100_000 {
        if bp.is_hole() {
            break;
        }
        let key = (bp.vdev(), bp.offset_bytes());
        let Some(bytes) = image.get(&key) else { break };
        let size = bp.psize_bytes() as usize;
        let mut block = vec![0u8; size];
        let n = bytes.len().min(size);
        block[..n].copy_from_slice(&bytes[..n]);
        let verifier: ZioCksum = bp.verifier();
        let Ok(vb) = format::verify_block(&block, &verifier, BlockFormat::Slim) else {
            break;
        };
        blocks += 1;
        for rec in vb.records() {
            let Ok(rec) = rec else { break };
            let c = rec.info.common;
            let body = match rec.info.write {
                Some(_) => rec.inline_data().unwrap_or(&[]).to_vec(),
                None => rec.bytes.get(32..).unwrap_or(&[]).to_vec(),
            };
            out.push((c.seq, c.txtype, body));
        }
        bp = vb.next();
    }
    (out, blocks)
}

impl<'a> Platform for &'a MemPlatform {
    type RawMutex = spin::Mutex<()>;
    type IssuerRawMutex = spin::Mutex<()>;
    type LwbBox = MemLwbBox<'a>;
    type ItxBox = Box<Itx>;
    type Buf = Vec<u8>;
    type Slots<T: Send> = Box<[T]>;

    fn now_ns(&self) -> u64 {
        self.clock_ns.load(Ordering::Relaxed)
    }

    fn random_u64(&self) -> u64 {
        let mut st = self.st();
        // splitmix64
        st.rng = st.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = st.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn alloc_lwb(&self, lwb: LwbObj) -> Result<MemLwbBox<'a>, AllocError> {
        let mut st = self.st();
        if st.lwbs_live >= st.lwbs_max {
            return Err(AllocError);
        }
        st.lwbs_live += 1;
        Ok(MemLwbBox {
            obj: Box::new(lwb),
            live: &self.state,
        })
    }

    fn alloc_itx(&self) -> Result<Box<Itx>, AllocError> {
        if self.st().itx_pool_empty {
            return Err(AllocError);
        }
        // As a pool may hand one out after reuse: junk in the body.
        Ok(Box::new(Itx::with_body_bytes(0xa5)))
    }

    fn alloc_buf(&self, size_bytes: u32) -> Result<Vec<u8>, AllocError> {
        Ok(vec![0xa5; size_bytes as usize])
    }

    fn alloc_slots<T: Send>(
        &self,
        len: usize,
        init: impl FnMut(usize) -> T,
    ) -> Result<Box<[T]>, AllocError> {
        Ok((0..len).map(init).collect())
    }

    fn alloc_log_block(&self, size_bytes: u32) -> Result<BlockAddr, AllocError> {
        let mut st = self.st();
        if st.allocated_bytes + u64::from(size_bytes) > st.capacity_bytes {
            return Err(AllocError);
        }
        st.allocated_bytes += u64::from(size_bytes);
        if let Some(i) = st
            .free_blocks
            .iter()
            .position(|b| b.size_bytes == size_bytes)
        {
            return Ok(st.free_blocks.swap_remove(i));
        }
        let offset_bytes = st.next_offset_bytes;
        st.next_offset_bytes += u64::from(size_bytes);
        Ok(BlockAddr {
            vdev: 0,
            offset_bytes,
            size_bytes,
        })
    }

    fn free_log_block(&self, addr: BlockAddr) {
        let mut st = self.st();
        st.allocated_bytes -= u64::from(addr.size_bytes);
        st.cache.remove(&(addr.vdev, addr.offset_bytes));
        st.durable.remove(&(addr.vdev, addr.offset_bytes));
        st.free_blocks.push(addr);
    }

    fn submit_write(&self, io: IoToken, addr: BlockAddr, buf: Vec<u8>, len_bytes: usize) {
        let mut st = self.st();
        let data = buf[..len_bytes].to_vec();
        st.pending.push(PendingIo {
            io,
            vdev: addr.vdev,
            write: Some((addr, data)),
        });
    }

    fn submit_flush(&self, io: IoToken, vdev: u32) {
        let mut st = self.st();
        st.flushes_submitted += 1;
        let seq = io.lwb_seq();
        if !st.written_seqs.contains(&seq) {
            st.violations.push(std::format!(
                "flush for lwb {seq} submitted before its write completed"
            ));
        }
        let covers: Vec<BlockKey> = st.cache.keys().filter(|k| k.0 == vdev).copied().collect();
        st.flush_covers.insert((seq, vdev), covers);
        st.pending.push(PendingIo {
            io,
            vdev,
            write: None,
        });
    }

    fn get_data(&self, foid: u64, offset: u64, out: &mut [u8]) -> Result<(), IoError> {
        let gate = self
            .st()
            .get_data_gate
            .as_ref()
            .filter(|g| g.0 == foid)
            .map(|g| g.1.clone());
        if let Some(b) = gate {
            b.wait();
            b.wait();
        }
        if self.st().get_data_fails_foid == Some(foid) {
            return Err(IoError::Io);
        }
        for (i, b) in out.iter_mut().enumerate() {
            *b = pattern_byte(foid, offset + i as u64);
        }
        Ok(())
    }

    fn submit_indirect(
        &self,
        io: IoToken,
        foid: u64,
        offset: u64,
        length: u64,
    ) -> Result<IndirectBlock, IoError> {
        let mut st = self.st();
        st.indirect_done.push((foid, offset, length));
        st.pending.push(PendingIo {
            io,
            vdev: 1,
            write: None,
        });
        let bp = Blkptr::log_block(1, offset & !511, 4096, ZioCksum::ZERO, 1);
        Ok(IndirectBlock {
            blkptr: bp,
            vdev: 1,
        })
    }

    fn wake(&self, waiter: WaiterId) {
        self.st().woken.push(waiter);
    }

    /// Records the transition and checks that it is the next legal step of
    /// that lwb (a violation otherwise).
    fn lwb_state_changed(&self, seq: u64, from: Option<LwbState>, to: LwbState) {
        let mut st = self.st();
        let known = st.lwb_reported.get(&seq).copied();
        // Block seqs are consecutive: a new lwb follows the last one made.
        let last_new = st.lwb_transitions.iter().rev().find(|t| t.1.is_none());
        let legal = match (known, from) {
            (None, None) => to == LwbState::New && last_new.is_none_or(|t| t.0 + 1 == seq),
            (Some(k), Some(f)) => k == f && to as u8 == f as u8 + 1,
            _ => false,
        };
        st.lwb_transitions.push((seq, from, to));
        st.lwbs_entered[to as usize] += 1;
        if !legal {
            st.violations.push(std::format!(
                "lwb {seq}: transition {from:?} -> {to:?} after {known:?}"
            ));
        }
        if to == LwbState::FlushDone {
            st.lwb_reported.remove(&seq);
        } else {
            st.lwb_reported.insert(seq, to);
        }
    }
}

/// The bytes `get_data` returns: a pattern of object and offset, so a
/// reader can check WR_NEED_COPY data it finds.
pub fn pattern_byte(foid: u64, offset: u64) -> u8 {
    (foid.wrapping_mul(31).wrapping_add(offset.wrapping_mul(7)) % 251) as u8
}
