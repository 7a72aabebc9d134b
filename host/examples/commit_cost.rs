//! Cost of one committed 4 KiB record through the core, for callgrind.
//!
//! A lean in-memory platform (no data copies, fixed pools) so the count is
//! the core's own work: `assign` (copy into the itx), `commit` (place, close,
//! fill, seal with fletcher-4, submit), the write and flush completions, the
//! poll that sees the waiter done, and a checkpoint every 16 commits.
//!
//! `cargo run --release -p rzil-host --example commit_cost -- N [BATCH]`
//! commits N records, BATCH per commit (default 1: a lone committer).
//! `make bench-core` runs it under callgrind for two values of N and prints
//! instructions per record from the difference (which cancels start-up).

use rzil::format::ZioCksum;
use rzil::itx::Itx;
use rzil::lwb::LwbObj;
use rzil::{
    AllocError, BlockAddr, Config, IndirectBlock, IoError, IoToken, Platform, Record, WaitStatus,
    WaiterId, WriteData, Zil,
};
use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// A fixed-capacity pool of boxed objects, refilled on drop.
struct Lean {
    clock: AtomicU64,
    next_off: AtomicU64,
    /// Completions to deliver: (token, is_write).
    io: Mutex<Vec<IoToken>>,
    bufs: Mutex<Vec<Vec<u8>>>,
}

struct PoolBuf<'a>(Option<Vec<u8>>, &'a Lean);

impl std::ops::Deref for PoolBuf<'_> {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or(&[])
    }
}
impl std::ops::DerefMut for PoolBuf<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.0.as_deref_mut().unwrap_or(&mut [])
    }
}
impl Drop for PoolBuf<'_> {
    fn drop(&mut self) {
        if let Some(b) = self.0.take() {
            self.1.bufs.lock().unwrap().push(b);
        }
    }
}

thread_local! {
    static ITXS: RefCell<Vec<Box<Itx>>> = const { RefCell::new(Vec::new()) };
}

/// An itx from a free list, returned to it on drop (as a UMA zone would).
struct PoolItx(Option<Box<Itx>>);

impl std::ops::Deref for PoolItx {
    type Target = Itx;
    fn deref(&self) -> &Itx {
        self.0.as_deref().expect("live itx")
    }
}
impl std::ops::DerefMut for PoolItx {
    fn deref_mut(&mut self) -> &mut Itx {
        self.0.as_deref_mut().expect("live itx")
    }
}
impl Drop for PoolItx {
    fn drop(&mut self) {
        if let Some(b) = self.0.take() {
            ITXS.with(|p| p.borrow_mut().push(b));
        }
    }
}

impl<'a> Platform for &'a Lean {
    type RawMutex = parking_lot::RawMutex;
    type IssuerRawMutex = parking_lot::RawMutex;
    type LwbBox = Box<LwbObj>;
    type ItxBox = PoolItx;
    type Buf = PoolBuf<'a>;
    type Slots<T: Send> = Box<[T]>;

    fn now_ns(&self) -> u64 {
        self.clock.fetch_add(1000, Ordering::Relaxed)
    }
    fn random_u64(&self) -> u64 {
        0x1234_5678_9abc_def0
    }
    fn alloc_lwb(&self, lwb: LwbObj) -> Result<Box<LwbObj>, AllocError> {
        Ok(Box::new(lwb))
    }
    fn alloc_itx(&self) -> Result<PoolItx, AllocError> {
        let b = ITXS.with(|p| p.borrow_mut().pop());
        Ok(PoolItx(Some(b.unwrap_or_else(|| Box::new(Itx::EMPTY)))))
    }
    fn alloc_buf(&self, size_bytes: u32) -> Result<PoolBuf<'a>, AllocError> {
        let mut b = self.bufs.lock().unwrap().pop().unwrap_or_default();
        b.resize(size_bytes as usize, 0);
        Ok(PoolBuf(Some(b), self))
    }
    fn alloc_slots<T: Send>(
        &self,
        len: usize,
        init: impl FnMut(usize) -> T,
    ) -> Result<Box<[T]>, AllocError> {
        Ok((0..len).map(init).collect())
    }
    fn alloc_log_block(&self, size_bytes: u32) -> Result<BlockAddr, AllocError> {
        let off = self
            .next_off
            .fetch_add(u64::from(size_bytes), Ordering::Relaxed)
            % (1 << 30);
        Ok(BlockAddr {
            vdev: 0,
            offset_bytes: off,
            size_bytes,
        })
    }
    fn free_log_block(&self, _addr: BlockAddr) {}
    fn submit_write(&self, io: IoToken, _a: BlockAddr, _buf: PoolBuf<'a>, _len: usize) {
        self.io.lock().unwrap().push(io);
    }
    fn submit_flush(&self, io: IoToken, _vdev: u32) {
        self.io.lock().unwrap().push(io);
    }
    fn get_data(&self, _f: u64, _o: u64, _out: &mut [u8]) -> Result<(), IoError> {
        Ok(())
    }
    fn submit_indirect(
        &self,
        _: IoToken,
        _: u64,
        _: u64,
        _: u64,
    ) -> Result<IndirectBlock, IoError> {
        Err(IoError::Io)
    }
    fn wake(&self, _w: WaiterId) {}
    fn fletcher_4_native(&self, data: &[u8]) -> ZioCksum {
        rzil_host::simd::fletcher_4_native(data)
    }
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    // Records per commit: 1 is a lone committer's worst case; more share
    // one lwb, one write and one flush, as concurrent committers' do.
    let batch: u64 = std::env::args()
        .nth(2)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1);
    let lean = Lean {
        clock: AtomicU64::new(1),
        next_off: AtomicU64::new(0),
        io: Mutex::new(Vec::with_capacity(16)),
        bufs: Mutex::new(Vec::new()),
    };
    let zil = Zil::new(&lean, Config::new(1)).expect("log");
    let data = vec![0x5au8; 4096];
    let mut io = Vec::with_capacity(16);
    for i in 0..n / batch {
        for j in 0..batch {
            let rec = Record::Write {
                foid: 1,
                offset: (i * batch + j) * 4096,
                data: WriteData::Copied(&data),
            };
            zil.assign(1, &rec).expect("assign");
        }
        let w = zil.commit().expect("commit");
        // Deliver completions (write, then the flush it triggers).
        for _ in 0..4 {
            std::mem::swap(&mut io, &mut *lean.io.lock().unwrap());
            if io.is_empty() {
                break;
            }
            for t in io.drain(..) {
                zil.io_done(t, Ok(())).expect("completion");
            }
        }
        match zil.waiter_poll(w).expect("waiter") {
            WaitStatus::Done(Ok(())) => {}
            other => panic!("commit {i} not durable: {other:?}"),
        }
        if i % 16 == 15 {
            zil.checkpoint(u64::MAX).expect("checkpoint");
        }
    }
    let s = zil.stats();
    eprintln!(
        "commits {} lwbs {} writes {} write_bytes {} flushes {}",
        s.commits, s.lwbs_issued, s.writes, s.write_bytes, s.flushes
    );
}
