//! The live target of `scripts/gdb/rzil.py`'s test (`make test-gdb`,
//! scripts/gdb/test-rzil-gdb.py): a real [`Zil`] driven into a known mix
//! of lwb states, with commit waiters linked to them, stopped twice for gdb.
//!
//! 1. Phase 1 (clean): the log holds lwbs in six states (FLUSH_DONE,
//!    WRITE_DONE, ISSUED, a CLOSED one whose filler thread is held inside
//!    `get_data`, READY, the OPENED tail); the program writes its own view
//!    of them (`Zil::for_each_lwb` and the waiters it holds) as JSON to
//!    the file named by its argument, then calls
//!    [`rzil_gdb_marker`]`(1)`, where gdb stops.
//! 2. Phase 2 (the 2023 use-after-free shape, reference §2.2): one list
//!    slot is made to point at an lwb item that a checkpoint freed, which
//!    the lwb pool filled with `0xdeadc0de` as UMA does under INVARIANTS,
//!    and another slot's pointer itself is overwritten with
//!    `0xdeadc0dedeadc0de`. The program appends what it did to the JSON
//!    file and calls `rzil_gdb_marker(2)`; gdb must flag both.
//!
//! The lwb pool is this file's own [`TrashBox`] (a UMA zone without
//! init/fini: a freed item is filled with the junk word and quarantined,
//! never reused) and the log's tables are [`Table`]s, so the program knows
//! where they live; everything else comes from the core's in-memory test
//! platform, whose I/O completes only when this program says so.
//!
//! `cargo run -p rzil-host --example gdb_target -- truth.json`

use std::ptr::NonNull;
use std::sync::{Arc, Barrier, Mutex};

use rzil::itx::Itx;
use rzil::lwb::LwbObj;
use rzil::testkit::MemPlatform;
use rzil::{
    AllocError, BlockAddr, Config, IndirectBlock, IoError, IoKind, IoToken, Platform, Record,
    WaitStatus, WaiterId, WriteData, Zil,
};
use serde_json::{json, Value};

/// UMA's junk word (`uma_junk`, sys/vm/uma_dbg.c), as a freed item's
/// 64-bit fields read it.
const TRASH_U64: u64 = 0xdead_c0de_dead_c0de;
/// Log space of the in-memory device.
const LOG_SPACE_BYTES: u64 = 64 << 20;
/// Object set id of the log (verifier word 2).
const OBJSET: u64 = 54;
/// Object the records write to.
const FOID: u64 = 7;
/// Object whose WR_NEED_COPY data the platform's `get_data` hands out
/// only after two waits at the gate (so an lwb stays CLOSED meanwhile).
const GATED_FOID: u64 = 9;
/// Bytes of each record's data.
const RECORD_BYTES: usize = 300;

/// lwb items freed by the pool, trashed and kept (addresses): never
/// reused, so a stale pointer to one keeps reading the junk fill.
static FREED_LWBS: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// An lwb item from this program's pool: a heap item holding an
/// [`LwbObj`]. Dropping it drops the object, fills the item with the junk
/// word and quarantines it.
///
/// # Invariants
///
/// `0` points to a live, initialised `LwbObj` in a leaked heap item that
/// this box alone owns.
#[derive(Debug)]
#[repr(transparent)]
struct TrashBox(NonNull<LwbObj>);

// SAFETY: the box owns its item exclusively; sending it sends the LwbObj.
unsafe impl Send for TrashBox {}

impl TrashBox {
    fn new(obj: LwbObj) -> TrashBox {
        // INVARIANT: a fresh heap item, initialised, owned by the box.
        TrashBox(NonNull::from(Box::leak(Box::new(obj))))
    }
}

impl std::ops::Deref for TrashBox {
    type Target = LwbObj;
    fn deref(&self) -> &LwbObj {
        // SAFETY: type invariant: a live LwbObj owned by this box.
        unsafe { self.0.as_ref() }
    }
}

impl std::ops::DerefMut for TrashBox {
    fn deref_mut(&mut self) -> &mut LwbObj {
        // SAFETY: as in deref, with exclusive access through &mut self.
        unsafe { self.0.as_mut() }
    }
}

impl Drop for TrashBox {
    fn drop(&mut self) {
        let p = self.0.as_ptr();
        // After dropping it in place, its bytes are plain memory of the
        // leaked item, which we fill with the junk word (size_of::<LwbObj>()
        // bytes, 8-aligned since LwbObj holds u64s).
        // SAFETY: the item holds a live LwbObj owned by us (type
        // invariant), and it is never read as an LwbObj again.
        unsafe {
            std::ptr::drop_in_place(p);
            let words = std::mem::size_of::<LwbObj>() / 8;
            let w = p.cast::<u64>();
            for i in 0..words {
                w.add(i).write(TRASH_U64);
            }
        }
        FREED_LWBS.lock().unwrap().push(p as usize);
    }
}

/// One of the log's long-lived tables, in a leaked heap allocation whose
/// address the program records (as the kernel's `KSlots` in malloc(9)).
///
/// # Invariants
///
/// `ptr` points to `len` initialised `T`s in one leaked boxed slice that
/// this table alone owns.
struct Table<T> {
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: the table owns its slots; sending it sends the Ts.
unsafe impl<T: Send> Send for Table<T> {}

impl<T> std::ops::Deref for Table<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: type invariant.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> std::ops::DerefMut for Table<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: type invariant, exclusive through &mut self.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for Table<T> {
    fn drop(&mut self) {
        let slice = std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len);
        // SAFETY: `slice` is the boxed slice leaked in `alloc_slots`, owned
        // by us alone (type invariant); it is freed exactly once here.
        drop(unsafe { Box::from_raw(slice) });
    }
}

/// The core's in-memory platform with this file's lwb pool and tables.
struct GdbPlatform<'m> {
    mem: &'m MemPlatform,
    /// Every table handed out: (address, slots, type name of a slot).
    tables: Mutex<Vec<(usize, usize, &'static str)>>,
}

impl<'m> Platform for &GdbPlatform<'m> {
    type RawMutex = <&'m MemPlatform as Platform>::RawMutex;
    type IssuerRawMutex = <&'m MemPlatform as Platform>::IssuerRawMutex;
    type LwbBox = TrashBox;
    type ItxBox = Box<Itx>;
    type Buf = Vec<u8>;
    type Slots<T: Send> = Table<T>;

    fn now_ns(&self) -> u64 {
        self.mem.now_ns()
    }
    fn random_u64(&self) -> u64 {
        self.mem.random_u64()
    }
    fn alloc_lwb(&self, lwb: LwbObj) -> Result<TrashBox, AllocError> {
        Ok(TrashBox::new(lwb))
    }
    fn alloc_itx(&self) -> Result<Box<Itx>, AllocError> {
        self.mem.alloc_itx()
    }
    fn alloc_buf(&self, size_bytes: u32) -> Result<Vec<u8>, AllocError> {
        self.mem.alloc_buf(size_bytes)
    }
    fn alloc_slots<T: Send>(
        &self,
        len: usize,
        init: impl FnMut(usize) -> T,
    ) -> Result<Table<T>, AllocError> {
        let slots: Box<[T]> = (0..len).map(init).collect();
        let ptr = NonNull::from(Box::leak(slots)).cast::<T>();
        self.tables
            .lock()
            .unwrap()
            .push((ptr.as_ptr() as usize, len, std::any::type_name::<T>()));
        // INVARIANT: `len` initialised Ts in a leaked boxed slice we own.
        Ok(Table { ptr, len })
    }
    fn alloc_log_block(&self, size_bytes: u32) -> Result<BlockAddr, AllocError> {
        self.mem.alloc_log_block(size_bytes)
    }
    fn free_log_block(&self, addr: BlockAddr) {
        self.mem.free_log_block(addr)
    }
    fn submit_write(&self, io: IoToken, addr: BlockAddr, buf: Vec<u8>, len_bytes: usize) {
        self.mem.submit_write(io, addr, buf, len_bytes)
    }
    fn submit_flush(&self, io: IoToken, vdev: u32) {
        self.mem.submit_flush(io, vdev)
    }
    fn get_data(&self, foid: u64, offset: u64, out: &mut [u8]) -> Result<(), IoError> {
        self.mem.get_data(foid, offset, out)
    }
    fn submit_indirect(
        &self,
        io: IoToken,
        foid: u64,
        offset: u64,
        length: u64,
    ) -> Result<IndirectBlock, IoError> {
        self.mem.submit_indirect(io, foid, offset, length)
    }
    fn wake(&self, waiter: WaiterId) {
        self.mem.wake(waiter)
    }
}

type Log<'p, 'm> = Zil<&'p GdbPlatform<'m>>;

/// Where gdb stops: `phase` 1 is the clean log, 2 the trashed one. Not
/// inlined and not optimised away, so `break rzil_gdb_marker` always hits.
#[no_mangle]
#[inline(never)]
pub extern "C" fn rzil_gdb_marker(phase: u32) {
    std::hint::black_box(phase);
}

fn record(byte: u8) -> [u8; RECORD_BYTES] {
    [byte; RECORD_BYTES]
}

fn commit_one(zil: &Log<'_, '_>, byte: u8) -> WaiterId {
    let data = record(byte);
    let rec = Record::Write {
        foid: FOID,
        offset: u64::from(byte) * RECORD_BYTES as u64,
        data: WriteData::Copied(&data),
    };
    zil.assign(1, &rec).expect("assign");
    zil.commit().expect("commit")
}

/// Queue a WR_NEED_COPY record of [`GATED_FOID`] and commit it.
fn commit_need_copy(zil: &Log<'_, '_>) -> WaiterId {
    let rec = Record::Write {
        foid: GATED_FOID,
        offset: 0,
        data: WriteData::NeedCopy {
            length: RECORD_BYTES as u64,
        },
    };
    zil.assign(1, &rec).expect("assign");
    zil.commit().expect("commit")
}

/// Complete the first pending I/O of lwb `seq` of kind `kind`.
fn complete(mem: &MemPlatform, zil: &Log<'_, '_>, seq: u64, write: bool) {
    let io = {
        let mut st = mem.st();
        let i = st
            .pending
            .iter()
            .position(|p| p.io.lwb_seq() == seq && (p.io.kind() == IoKind::Write) == write)
            .unwrap_or_else(|| {
                panic!(
                    "no pending {} for lwb {seq}",
                    ["flush", "write"][usize::from(write)]
                )
            });
        st.pending.remove(i).io
    };
    zil.io_done(io, Ok(())).expect("completion accepted");
}

/// Time out a waiter whose lwb is held open, closing and issuing it.
fn time_out(mem: &MemPlatform, zil: &Log<'_, '_>, w: WaiterId) {
    if let Ok(WaitStatus::Pending {
        deadline_ns: Some(d),
        ..
    }) = zil.waiter_poll(w)
    {
        mem.set_now_ns(d);
        zil.waiter_timeout(w).expect("timeout");
    }
}

/// The generation of a waiter handle (private to the core; its Debug
/// form shows it).
fn waiter_gen(w: WaiterId) -> u64 {
    let s = format!("{w:?}");
    let tail = s.split("gen: ").nth(1).expect("WaiterId Debug shows gen");
    tail.trim_end_matches([' ', '}']).parse().expect("gen")
}

fn lwbs_json(zil: &Log<'_, '_>) -> Vec<Value> {
    let mut out = Vec::new();
    zil.for_each_lwb(|v| {
        out.push(json!({
            "seq": v.id.seq,
            "gen": v.id.gen,
            "state": v.state.name(),
            "blk": v.blk.map(|b| json!({"vdev": b.vdev, "offset_bytes": b.offset_bytes, "size_bytes": b.size_bytes})),
            "size_bytes": v.size_bytes,
            "nused_bytes": v.nused_bytes,
            "records": v.records,
            "max_lr_seq": v.max_lr_seq,
            "waiters": v.waiters,
            "zio": {
                "write_pending": v.zio.write_pending,
                "root_pending": v.zio.root_pending,
                "root_armed": v.zio.root_armed,
                "write_own_done": v.zio.write_own_done,
                "flushes_inflight": v.zio.flushes_inflight,
                "flushes_issued": v.zio.flushes_issued,
                "child_pending": v.zio.child_pending,
            },
        }));
    });
    out
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: gdb_target <ground-truth.json>");
    // Leaked: a filler thread stays blocked inside the log (below) until
    // the process exits, and the log is never dropped.
    let mem: &'static MemPlatform = Box::leak(Box::new(MemPlatform::new(
        LOG_SPACE_BYTES,
        rzil::limits::LWB_INFLIGHT_MAX + 2,
    )));
    let gate = Arc::new(Barrier::new(2));
    mem.st().get_data_gate = Some((GATED_FOID, Arc::clone(&gate)));
    let platform: &'static GdbPlatform<'static> = Box::leak(Box::new(GdbPlatform {
        mem,
        tables: Mutex::new(Vec::new()),
    }));
    let zil: &'static Log<'static, 'static> = Box::leak(Box::new(
        Zil::new(platform, Config::new(OBJSET)).expect("new log"),
    ));

    // lwb 1: a lone commit, written, flushed and freed by a checkpoint: its
    // item is the freed, trashed one phase 2 points a slot at.
    let w = commit_one(zil, 1);
    complete(mem, zil, 1, true);
    complete(mem, zil, 1, false);
    assert_eq!(zil.waiter_poll(w), Ok(WaitStatus::Done(Ok(()))));
    let freed = zil.checkpoint(u64::MAX).expect("checkpoint").lwbs_freed;
    assert_eq!(freed, 1);

    // lwb 2 issued alone; lwbs 3.. are held open by a second committer
    // and closed by their waiters' timeouts.
    let mut waiters: Vec<(WaiterId, &str)> = Vec::new();
    let w2 = commit_one(zil, 2);
    waiters.push((w2, "lwb 2"));
    for b in 3..=6u8 {
        let w = commit_one(zil, b);
        let w_extra = commit_one(zil, b + 100);
        waiters.push((w, "timed out"));
        waiters.push((w_extra, "joined"));
        time_out(mem, zil, w);
    }
    // lwb 2 FLUSH_DONE (not yet checkpointed), 3 WRITE_DONE, the rest
    // ISSUED, and an open tail with two waiters, one abandoned.
    complete(mem, zil, 2, true);
    complete(mem, zil, 2, false);
    complete(mem, zil, 3, true);
    // CLOSED: a WR_NEED_COPY record whose data the filler thread is still
    // fetching (held at the gate); READY: the lwb after it, filled and
    // waiting for the block that issuing the CLOSED one allocates.
    let w_closed = commit_need_copy(zil);
    waiters.push((w_closed, "closed"));
    let deadline = match zil.waiter_poll(w_closed) {
        Ok(WaitStatus::Pending {
            deadline_ns: Some(d),
            ..
        }) => d,
        other => panic!("the NeedCopy lwb is not held open: {other:?}"),
    };
    mem.set_now_ns(deadline);
    std::thread::spawn(move || zil.waiter_timeout(w_closed));
    gate.wait();
    let w_ready = commit_one(zil, 40);
    waiters.push((w_ready, "ready"));
    time_out(mem, zil, w_ready);
    let w_open = commit_one(zil, 50);
    let w_gone = commit_one(zil, 51);
    waiters.push((w_open, "open tail"));
    zil.waiter_abandon(w_gone).expect("abandon");

    let woken: Vec<WaiterId> = mem.st().woken.clone();
    let waiters_json: Vec<Value> = waiters
        .iter()
        .map(|(w, what)| {
            json!({"slot": w.slot, "gen": waiter_gen(*w), "done": woken.contains(w), "what": what})
        })
        .chain(std::iter::once(json!({
            "slot": w_gone.slot, "gen": waiter_gen(w_gone) + 1, "done": false,
            "abandoned": true, "what": "abandoned",
        })))
        .collect();
    let lwbs = lwbs_json(zil);
    let mut truth = json!({
        "phase1": {"lwbs": lwbs, "waiters": waiters_json},
    });
    std::fs::write(&path, serde_json::to_vec_pretty(&truth).unwrap()).expect("write truth");
    rzil_gdb_marker(1);

    // Phase 2. The list slot of the WRITE_DONE lwb now points at lwb 1's
    // freed, junk-filled item (a stale lwb pointer, as thread A held in
    // #15233), and the slot of the first ISSUED lwb holds the junk word
    // itself as a pointer.
    let freed_lwb = *FREED_LWBS.lock().unwrap().first().expect("lwb 1 was freed");
    let seq_of = |state: &str| {
        truth["phase1"]["lwbs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["state"] == state)
            .unwrap_or_else(|| panic!("no {state} lwb"))["seq"]
            .as_u64()
            .unwrap()
    };
    let (stale_seq, junk_seq) = (seq_of("WRITE_DONE"), seq_of("ISSUED"));
    let stale_slot = lwb_slot(platform, zil, stale_seq);
    let junk_slot = lwb_slot(platform, zil, junk_seq);
    // Deliberate corruption of the log's lwb table: the crash dump this
    // program exists to produce. Both addresses are slots of the live table
    // this program allocated (`alloc_slots`), aligned words of an
    // `Option<TrashBox>` (a nullable pointer, `repr(transparent)` over
    // NonNull); no reference into the table is alive (the log is idle and
    // single-threaded).
    // SAFETY: writes to aligned words of a live allocation of ours; the log
    // is never used again (forgotten below), so nothing follows the pointers.
    unsafe {
        std::ptr::write_volatile(stale_slot as *mut usize, freed_lwb);
        std::ptr::write_volatile(junk_slot as *mut u64, TRASH_U64);
    }
    truth["phase2"] = json!({
        "stale_seq": stale_seq,
        "stale_addr": format!("{freed_lwb:#x}"),
        "junk_seq": junk_seq,
    });
    std::fs::write(&path, serde_json::to_vec_pretty(&truth).unwrap()).expect("write truth");
    rzil_gdb_marker(2);
    // The filler thread is still at the gate and the log is corrupt: end
    // here, without unwinding into either.
    std::process::exit(0);
}

/// The address of the lwb table slot that holds lwb `seq`: the table of
/// `Option<TrashBox>` the log allocated, searched for the item whose
/// object has that seq.
fn lwb_slot(platform: &GdbPlatform<'_>, zil: &Log<'_, '_>, seq: u64) -> usize {
    assert_eq!(
        std::mem::size_of::<Option<TrashBox>>(),
        std::mem::size_of::<usize>()
    );
    let want = std::any::type_name::<Option<TrashBox>>();
    let tables = platform.tables.lock().unwrap();
    let &(base, len, _) = tables
        .iter()
        .find(|t| t.2 == want)
        .expect("the lwb list table");
    let mut gen = None;
    zil.for_each_lwb(|v| {
        if v.id.seq == seq {
            gen = Some(v.id);
        }
    });
    let id = gen.expect("lwb on the list");
    (0..len)
        .map(|i| base + i * std::mem::size_of::<usize>())
        .find(|&slot| {
            // SAFETY: `slot` is slot `i < len` of the live lwb table: an
            // initialised Option<TrashBox>, a nullable pointer, read by
            // value. The log is idle, so nothing writes it meanwhile.
            let item = unsafe { (slot as *const usize).read_volatile() };
            // SAFETY: a non-null slot holds a live lwb item the log owns
            // (TrashBox invariant); it is only read, with the log idle.
            item != 0 && unsafe { (*(item as *const LwbObj)).id() } == id
        })
        .expect("the lwb's slot")
}
