//! The simulator's platform for the real core: every submission becomes a
//! pending I/O the scheduler completes later, in any order; blocks land on
//! [`Disks`]; lwb objects live in a [`TrashSlab`].
//!
//! The calls the core makes with no lock held (`get_data`,
//! `submit_indirect`, the block seal's `fletcher_4_native`, `submit_write`,
//! `submit_flush`) are yield points ([`baton::yield_point`]): a core call
//! running on a worker may park there while the scheduler runs other
//! actors. Each first checks that the calling thread really holds no core
//! lock (the platform contract); a call made with one held is a violation.

use crate::baton;
use crate::disk::{DiskIoId, Disks};
use crate::rng::Rng;
use crate::slab::{sim_locks_held_here, SimRawMutex, SlabBox, TrashSlab};
use rzil::format::{self, Blkptr, ByteOrder, RecordIter, ZioCksum};
use rzil::itx::Itx;
use rzil::lwb::{LwbObj, LwbState};
use rzil::{AllocError, BlockAddr, IndirectBlock, IoError, IoKind, IoToken, Platform, WaiterId};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Log-block devices are vdevs `0..log_vdevs`; WR_INDIRECT data goes here.
pub const DATA_VDEV: u32 = 2;
/// Sizes of each log device's region a seed picks from: the small ones
/// make log space run out (back-pressure, block reuse) often.
pub const LOG_VDEV_BYTES_CHOICES: [u64; 3] = [2 * 1024 * 1024, 1024 * 1024, 512 * 1024];
/// Allocation unit of log blocks.
const PAGE_BYTES: u64 = 4096;
/// Objects of a write record are `FOID_BASE + record id`.
pub const FOID_BASE: u64 = 1 << 32;
/// lwb objects in the slab: the core's in-flight bound plus the tail.
pub const LWB_SLAB_ITEMS: usize = rzil::limits::LWB_INFLIGHT_MAX + 2;
/// lwb pool sizes (objects) a seed picks from: the full pool, or a small
/// one that runs out (`Limit::LwbPool` back-pressure) while lwbs are in
/// flight. Two is the least a log can run with (the tail and the lwb
/// closed before it).
pub const LWB_POOL_ITEMS_CHOICES: [usize; 4] = [LWB_SLAB_ITEMS, LWB_SLAB_ITEMS, 4, 2];
/// Completed tokens remembered for stale/duplicate re-delivery.
pub const COMPLETED_TOKENS_KEPT: usize = 32;

/// A submitted I/O waiting for the scheduler.
#[derive(Clone, Copy, Debug)]
pub struct PendingIo {
    /// The core's token.
    pub io: IoToken,
    /// The device-model id of the write or flush.
    pub disk_id: DiskIoId,
    /// Virtual time at which the device would answer.
    pub ready_ns: u64,
}

/// One piece of a record as the core wrote it into a block (a WR_NEED_COPY
/// write may be split into several pieces with consecutive seqs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Piece {
    /// Record sequence number.
    pub lr_seq: u64,
    /// Data offset of the piece (the object offset for a write, 0 otherwise).
    pub data_offset: u64,
    /// Data length of the piece.
    pub data_len: u64,
}

/// An itx from the simulator's itx pool: dropping it gives its place back.
#[derive(Debug)]
pub struct PooledItx<'a> {
    itx: Box<Itx>,
    live: &'a AtomicUsize,
}

impl std::ops::Deref for PooledItx<'_> {
    type Target = Itx;
    fn deref(&self) -> &Itx {
        &self.itx
    }
}

impl std::ops::DerefMut for PooledItx<'_> {
    fn deref_mut(&mut self) -> &mut Itx {
        &mut self.itx
    }
}

impl Drop for PooledItx<'_> {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Everything mutable on the platform.
#[derive(Debug)]
pub struct SimState {
    /// The devices.
    pub disks: Disks,
    /// Submitted and not completed.
    pub pending: Vec<PendingIo>,
    /// Recently completed tokens (for stale and duplicate deliveries).
    pub completed: Vec<IoToken>,
    /// Waiters woken since the world last looked.
    pub woken: Vec<WaiterId>,
    /// lwb seqs whose block write completed successfully.
    pub written: HashSet<u64>,
    /// Record id → pieces seen in submitted blocks.
    pub pieces: HashMap<u64, Vec<Piece>>,
    /// Rule breaks the platform saw.
    pub violations: Vec<String>,
    /// The state each lwb was last reported in through
    /// `lwb_state_changed` (removed at FLUSH_DONE, its last state).
    lwb_reported: HashMap<u64, LwbState>,
    /// Block seq of the newest lwb reported entering NEW.
    lwb_newest: Option<u64>,
    /// lwb state transitions reported so far.
    pub lwb_transitions: u64,
    /// Used pages of each log vdev.
    pages: Vec<Vec<bool>>,
    cursor: Vec<u64>,
    data_next_bytes: u64,
    /// How many log vdevs blocks are spread over (1 or 2).
    pub log_vdevs: u32,
    rng: Rng,
    /// Latency model: (write min, write max, flush min, flush max) in ns.
    pub latency_ns: [u64; 4],
    /// Submissions so far.
    pub writes: u64,
    /// Flushes so far.
    pub flushes: u64,
    /// Log-block allocations refused for lack of space (back-pressure).
    pub alloc_refusals: u64,
    /// Flushes answered "not supported" (a device without a write cache).
    pub flushes_not_supported: u64,
    /// itx allocations refused because the itx pool was empty.
    pub itx_refusals: u64,
}

/// The platform; the core holds `&SimPlatform`.
#[derive(Debug)]
pub struct SimPlatform {
    state: Mutex<SimState>,
    clock_ns: AtomicU64,
    /// The lwb pool (trashing).
    pub lwbs: TrashSlab<LwbObj>,
    /// itxs handed out and not yet dropped.
    itxs_live: AtomicUsize,
    /// Most itxs out at once.
    itx_pool_items: AtomicUsize,
}

impl SimPlatform {
    /// A platform whose choices (block placement, GUIDs, latencies) come
    /// from `seed`, with `log_vdevs` log devices of `log_vdev_bytes` each
    /// and an lwb pool of `lwb_pool_items` objects.
    pub fn new(
        seed: u64,
        log_vdevs: u32,
        lying_flush: bool,
        log_vdev_bytes: u64,
        lwb_pool_items: usize,
    ) -> Self {
        let pages = (log_vdev_bytes / PAGE_BYTES) as usize;
        let mut disks = Disks::new();
        disks.lying_flush = lying_flush;
        Self {
            state: Mutex::new(SimState {
                disks,
                pending: Vec::new(),
                completed: Vec::new(),
                woken: Vec::new(),
                written: HashSet::new(),
                pieces: HashMap::new(),
                violations: Vec::new(),
                lwb_reported: HashMap::new(),
                lwb_newest: None,
                lwb_transitions: 0,
                pages: vec![vec![false; pages]; 2],
                cursor: vec![0; 2],
                data_next_bytes: 0,
                log_vdevs: log_vdevs.clamp(1, 2),
                rng: Rng::new(seed ^ 0x5157_0a7f_0a7f_0001),
                latency_ns: [20_000, 200_000, 50_000, 2_000_000],
                writes: 0,
                flushes: 0,
                alloc_refusals: 0,
                flushes_not_supported: 0,
                itx_refusals: 0,
            }),
            clock_ns: AtomicU64::new(1_000_000),
            lwbs: TrashSlab::new("zil_lwb_cache", lwb_pool_items),
            itxs_live: AtomicUsize::new(0),
            itx_pool_items: AtomicUsize::new(usize::MAX),
        }
    }

    /// Give the platform an itx pool of `items` objects (unbounded until
    /// then).
    pub fn set_itx_pool(&self, items: usize) {
        self.itx_pool_items.store(items, Ordering::Relaxed);
    }

    /// itxs handed out and not yet dropped.
    pub fn itxs_live(&self) -> usize {
        self.itxs_live.load(Ordering::Relaxed)
    }

    /// The state.
    pub fn st(&self) -> MutexGuard<'_, SimState> {
        self.state.lock().expect("sim platform state")
    }

    /// Virtual time.
    pub fn now(&self) -> u64 {
        self.clock_ns.load(Ordering::Relaxed)
    }

    /// Move virtual time forward.
    pub fn advance_ns(&self, ns: u64) {
        self.clock_ns.fetch_add(ns, Ordering::Relaxed);
    }

    /// Take pending I/O `i` and apply `result` to the devices; the caller
    /// then reports it to the core.
    pub fn complete(&self, i: usize, result: Result<(), IoError>) -> IoToken {
        let mut st = self.st();
        let p = st.pending.swap_remove(i);
        let ok = result.is_ok();
        match p.io.kind() {
            IoKind::Write => {
                st.disks.write_done(p.disk_id, ok);
                if ok {
                    st.written.insert(p.io.lwb_seq());
                }
            }
            IoKind::Indirect => st.disks.write_done(p.disk_id, ok),
            IoKind::Flush { .. } => st.disks.flush_done(p.disk_id, ok),
        }
        if st.completed.len() >= COMPLETED_TOKENS_KEPT {
            st.completed.remove(0);
        }
        st.completed.push(p.io);
        p.io
    }

    /// A call the core makes with no lock held: check that it holds none
    /// (a violation otherwise, and no yield: another thread would find the
    /// lock held), then let the scheduler run other actors here.
    fn unlocked(&self, point: &'static str) {
        if sim_locks_held_here() > 0 {
            self.st().violations.push(format!(
                "{point} called with a core lock held (the platform contract: none)"
            ));
            return;
        }
        baton::yield_point(point);
    }

    fn latency(st: &mut SimState, flush: bool) -> u64 {
        let (lo, hi) = if flush {
            (st.latency_ns[2], st.latency_ns[3])
        } else {
            (st.latency_ns[0], st.latency_ns[1])
        };
        let base = st.rng.range(lo, hi);
        // A slow tail: one I/O in 32 takes ten times longer.
        if st.rng.below(32) == 0 {
            base * 10
        } else {
            base
        }
    }
}

/// The data byte of object `foid` at `offset` (what `get_data` returns
/// and what a WR_COPIED record carries), so a reader can check any piece.
pub fn pattern_byte(foid: u64, offset: u64) -> u8 {
    let x = foid
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(offset.wrapping_mul(0xbf58_476d_1ce4_e5b9));
    (x >> 56) as u8 ^ (offset as u8)
}

/// Parse the records of a slim block the core is writing (chain header at
/// the front, `zc_nused` at byte 136), without its verifier.
fn block_pieces(block: &[u8], mut each: impl FnMut(u64, Piece)) {
    let nused = block
        .get(136..144)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")) as usize)
        .unwrap_or(0);
    let Some(area) = block.get(format::ZIL_CHAIN_BYTES..nused) else {
        return;
    };
    for rec in RecordIter::new(area, ByteOrder::Little, format::ZIL_CHAIN_BYTES) {
        let Ok(rec) = rec else { return };
        let c = rec.info.common;
        match rec.info.write {
            Some(w) => each(
                w.foid.wrapping_sub(FOID_BASE),
                Piece {
                    lr_seq: c.seq,
                    data_offset: w.offset,
                    data_len: w.length,
                },
            ),
            None => {
                let id = rec
                    .bytes
                    .get(32..40)
                    .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                    .unwrap_or(u64::MAX);
                each(
                    id,
                    Piece {
                        lr_seq: c.seq,
                        data_offset: 0,
                        data_len: (rec.bytes.len() - 32) as u64,
                    },
                )
            }
        }
    }
}

impl<'a> Platform for &'a SimPlatform {
    type RawMutex = SimRawMutex;
    type IssuerRawMutex = SimRawMutex;
    type LwbBox = SlabBox<'a, LwbObj>;
    type ItxBox = PooledItx<'a>;
    type Buf = Vec<u8>;
    type Slots<T: Send> = Box<[T]>;

    fn now_ns(&self) -> u64 {
        self.now()
    }

    fn random_u64(&self) -> u64 {
        self.st().rng.next_u64()
    }

    fn alloc_lwb(&self, lwb: LwbObj) -> Result<Self::LwbBox, AllocError> {
        self.lwbs.alloc(lwb).ok_or(AllocError)
    }

    fn alloc_itx(&self) -> Result<PooledItx<'a>, AllocError> {
        let cap = self.itx_pool_items.load(Ordering::Relaxed);
        let took = self
            .itxs_live
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < cap).then_some(n + 1)
            });
        if took.is_err() {
            self.st().itx_refusals += 1;
            return Err(AllocError);
        }
        // As a pool may hand one out after reuse: junk in the body.
        Ok(PooledItx {
            itx: Box::new(Itx::with_body_bytes(0xa5)),
            live: &self.itxs_live,
        })
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
        let n = (u64::from(size_bytes) / PAGE_BYTES) as usize;
        let nv = u64::from(st.log_vdevs);
        let first = st.rng.below(nv) as usize;
        for k in 0..st.log_vdevs as usize {
            let v = (first + k) % st.log_vdevs as usize;
            let total = st.pages[v].len();
            let start = st.cursor[v] as usize;
            // First fit from a rotating cursor: freed blocks come back into
            // use, so stale blocks of old chains sit where new ones go.
            for j in 0..total {
                let s = (start + j) % total;
                if s + n > total {
                    continue;
                }
                if st.pages[v][s..s + n].iter().all(|&u| !u) {
                    st.pages[v][s..s + n].fill(true);
                    st.cursor[v] = ((s + n) % total) as u64;
                    return Ok(BlockAddr {
                        vdev: v as u32,
                        offset_bytes: s as u64 * PAGE_BYTES,
                        size_bytes,
                    });
                }
            }
        }
        st.alloc_refusals += 1;
        Err(AllocError)
    }

    fn free_log_block(&self, addr: BlockAddr) {
        let mut st = self.st();
        let s = (addr.offset_bytes / PAGE_BYTES) as usize;
        let n = (u64::from(addr.size_bytes) / PAGE_BYTES) as usize;
        let v = addr.vdev as usize;
        if st.pages[v][s..s + n].iter().any(|&u| !u) {
            st.violations
                .push(format!("log block {addr:?} freed but not allocated"));
        }
        st.pages[v][s..s + n].fill(false);
    }

    fn submit_write(&self, io: IoToken, addr: BlockAddr, buf: Vec<u8>, len_bytes: usize) {
        let mut st = self.st();
        let mut found = Vec::new();
        block_pieces(&buf[..len_bytes], |id, p| found.push((id, p)));
        for (id, p) in found {
            let v = st.pieces.entry(id).or_default();
            if !v.contains(&p) {
                v.push(p);
            }
        }
        let disk_id =
            st.disks
                .submit_write(addr.vdev, addr.offset_bytes, buf[..len_bytes].to_vec());
        let ready_ns = self.now() + SimPlatform::latency(&mut st, false);
        st.writes += 1;
        st.pending.push(PendingIo {
            io,
            disk_id,
            ready_ns,
        });
        drop(st);
        // Submitted: its completion may come before this call returns.
        self.unlocked("submit_write");
    }

    fn submit_flush(&self, io: IoToken, vdev: u32) {
        let mut st = self.st();
        if !st.written.contains(&io.lwb_seq()) {
            st.violations.push(format!(
                "flush of vdev {vdev} for lwb {} submitted before that lwb's write completed",
                io.lwb_seq()
            ));
        }
        let disk_id = st.disks.submit_flush(vdev);
        let ready_ns = self.now() + SimPlatform::latency(&mut st, true);
        st.flushes += 1;
        st.pending.push(PendingIo {
            io,
            disk_id,
            ready_ns,
        });
        drop(st);
        self.unlocked("submit_flush");
    }

    fn get_data(&self, foid: u64, offset: u64, out: &mut [u8]) -> Result<(), IoError> {
        self.unlocked("get_data");
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
        let size = length.div_ceil(PAGE_BYTES).max(1) * PAGE_BYTES;
        let at = st.data_next_bytes;
        st.data_next_bytes += size;
        let data: Vec<u8> = (0..length)
            .map(|i| pattern_byte(foid, offset + i))
            .collect();
        let disk_id = st.disks.submit_write(DATA_VDEV, at, data);
        let ready_ns = self.now() + SimPlatform::latency(&mut st, false);
        st.writes += 1;
        st.pending.push(PendingIo {
            io,
            disk_id,
            ready_ns,
        });
        drop(st);
        self.unlocked("submit_indirect");
        Ok(IndirectBlock {
            blkptr: Blkptr::log_block(DATA_VDEV, at, size as u32, ZioCksum::ZERO, 1),
            vdev: DATA_VDEV,
        })
    }

    /// Sealing a block, just before its write is submitted.
    fn fletcher_4_native(&self, data: &[u8]) -> ZioCksum {
        self.unlocked("seal");
        format::fletcher_4_native(data)
    }

    fn wake(&self, waiter: WaiterId) {
        self.st().woken.push(waiter);
    }

    /// Every lwb must step NEW → OPENED → … → FLUSH_DONE one state at a
    /// time, and new lwbs must come in block-seq order; anything else is a
    /// violation the runner reports after the step.
    fn lwb_state_changed(&self, seq: u64, from: Option<LwbState>, to: LwbState) {
        let mut st = self.st();
        st.lwb_transitions += 1;
        let known = st.lwb_reported.get(&seq).copied();
        let legal = match (known, from) {
            (None, None) => to == LwbState::New && st.lwb_newest.is_none_or(|n| n + 1 == seq),
            (Some(k), Some(f)) => k == f && to as u8 == f as u8 + 1,
            _ => false,
        };
        if !legal {
            st.violations.push(format!(
                "lwb {seq}: state change {from:?} -> {to:?} after {known:?}"
            ));
        }
        if from.is_none() {
            st.lwb_newest = Some(seq);
        }
        if to == LwbState::FlushDone {
            st.lwb_reported.remove(&seq);
        } else {
            st.lwb_reported.insert(seq, to);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rzil::{Config, Record, WriteData, Zil};

    #[test]
    fn illegal_lwb_steps_are_violations() {
        let p = SimPlatform::new(1, 1, false, 1 << 20, LWB_SLAB_ITEMS);
        let pf = &p;
        pf.lwb_state_changed(5, None, LwbState::New);
        pf.lwb_state_changed(5, Some(LwbState::New), LwbState::Opened);
        assert!(p.st().violations.is_empty());
        // Skipping CLOSED, a seq gap, and a step from a state it is not in.
        pf.lwb_state_changed(5, Some(LwbState::Opened), LwbState::Ready);
        pf.lwb_state_changed(7, None, LwbState::New);
        pf.lwb_state_changed(9, Some(LwbState::Issued), LwbState::WriteDone);
        assert_eq!(p.st().violations.len(), 3, "{:?}", p.st().violations);
    }

    #[test]
    fn a_lock_free_call_made_with_a_core_lock_held_is_a_violation() {
        let p = SimPlatform::new(3, 1, false, 1 << 20, LWB_SLAB_ITEMS);
        let pf = &p;
        let mut out = [0u8; 16];
        pf.get_data(FOID_BASE + 1, 0, &mut out).expect("data");
        assert!(p.st().violations.is_empty());
        let lock = lock_api::Mutex::<SimRawMutex, ()>::new(());
        let held = lock.lock();
        pf.get_data(FOID_BASE + 1, 0, &mut out).expect("data");
        drop(held);
        let v = std::mem::take(&mut p.st().violations);
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(
            v[0].starts_with("get_data called with a core lock held"),
            "{v:?}"
        );
    }

    #[test]
    fn a_committed_record_reports_every_step_of_its_lwb() {
        let p = SimPlatform::new(2, 1, false, 1 << 20, LWB_SLAB_ITEMS);
        let zil = Zil::new(&p, Config::new(1)).expect("log");
        let data = [7u8; 512];
        let rec = Record::Write {
            foid: 1,
            offset: 0,
            data: WriteData::Copied(&data),
        };
        zil.assign(1, &rec).expect("assign");
        let _w = zil.commit().expect("commit");
        // Complete the write, then the flush it triggers.
        for _ in 0..4 {
            let pending: Vec<IoToken> = p.st().pending.drain(..).map(|io| io.io).collect();
            for io in pending {
                if io.kind() == IoKind::Write {
                    // What the runner records when a block write completes.
                    p.st().written.insert(io.lwb_seq());
                }
                zil.io_done(io, Ok(())).expect("completion");
            }
        }
        let st = p.st();
        assert!(st.violations.is_empty(), "{:?}", st.violations);
        // lwb 1: NEW..FLUSH_DONE (7 reports, its NEW from Zil::new); the
        // successor allocated at its close: NEW.
        assert_eq!(st.lwb_transitions, 8);
    }
}
