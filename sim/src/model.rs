//! A small reference model of the OpenZFS 2.2.0 lwb path (reference §1),
//! with explicit frees into trashing arenas and one switch per historic
//! bug (reference §2).
//!
//! The model is C-shaped on purpose: lwbs and commit waiters are items of
//! arenas (`zil_lwb_cache`, `zil_zcw_cache`) named by indices, not Rust
//! references; a pointer is a word holding an index. `zil_free_lwb` fills
//! the item with `0xdeadc0de` as UMA does under INVARIANTS, so a use after
//! free is an observable read of the fill, reported with the thread, the
//! function, the field, the item and the step it was freed at — what a
//! kgdb session on an INVARIANTS kernel would show.
//!
//! Threads are scheduler actors; a C function that drops a lock and goes
//! on touching memory is split at that point into steps, so other actors
//! (a zio completion thread, `txg_sync_thread`) can run in between. With
//! every switch off the model follows 2.2.0 with every listed fix; each
//! switch puts one bug back:
//!
//! | switch | what the model does instead |
//! |---|---|
//! | #15233 | issue root, then write, then read `lwb_child_zio` |
//! | #14959 | signal waiters from `lwb_waiters` after FLUSH_DONE + unlock |
//! | #14999 | read `lwb_issued_txg` after FLUSH_DONE + unlock |
//! | #15228 | signal waiters (from a local list) after unlock |
//! | #15278 | defer flushes into a next lwb that is not ISSUED |
//! | #15132 | parse skips the records of a block with no next pointer |
//! | #16308 | parse trusts `lrc_reclen` |
//! | #17521 | suspend does not write the open lwb |
//! | #16333 | a flush error does not reach the root zio |

use crate::disk::Disks;
use crate::oracle::opaque_body;
use crate::rng::Rng;
use crate::slab::TRASH_U64;
use crate::{BugName, FaultSet, SeedOutcome, Trace};
use rzil::format::{self, Blkptr, BlockError, BlockFormat, LrCommon, ZioCksum};
use std::collections::HashMap;

/// Log devices of the model.
const LOG_VDEVS: u32 = 2;
/// Block sizes the model picks from (small, so chains are long).
const BLOCK_SIZES_BYTES: [usize; 3] = [4096, 8192, 12288];
/// Most committers.
const COMMITTERS_MAX: u64 = 4;
/// Most records per commit.
const RECORDS_PER_COMMIT_MAX: u64 = 3;
/// Largest record body.
const RECORD_BODY_BYTES_MAX: u64 = 1500;
/// Most lwbs on the list (back-pressure for the workload beyond it).
const LWBS_MAX: usize = 48;
/// Probability (ppm) of a power cut at a step.
const POWER_CUT_PPM: u32 = 4_000;
/// Probability (ppm) of an injected I/O error per completion.
const IO_ERROR_PPM: u32 = 8_000;
/// Probability (ppm) that allocating a next block fails.
const ALLOC_FAIL_PPM: u32 = 20_000;
/// Probability (ppm) per step that a waiter's condvar wakes spuriously.
const SPURIOUS_WAKE_PPM: u32 = 50_000;
/// Rounds of the final drain.
const DRAIN_ROUNDS_MAX: u32 = 20_000;
/// Crash images per power cut, besides the harshest.
const CRASH_IMAGES_PER_CUT: u32 = 3;
/// Objset id in the verifier.
const OBJSET: u64 = 54;
/// Kernel addresses the arenas' items are reported at (a made-up
/// direct-map range, so a kgdb-style report looks like one).
const LWB_ZONE_BASE: u64 = 0xffff_f800_1234_0000;
const ZCW_ZONE_BASE: u64 = 0xffff_f800_5678_0000;
/// The commit timeout of an open lwb, virtual ns.
const COMMIT_TIMEOUT_NS: u64 = 200_000;

// lwb_t fields (words of a `zil_lwb_cache` item).
const L_STATE: usize = 0;
const L_BLK: usize = 1;
const L_SZ: usize = 2;
const L_NUSED: usize = 3;
const L_ERROR: usize = 4;
const L_CHILD_ZIO: usize = 5;
const L_WRITE_ZIO: usize = 6;
const L_ROOT_ZIO: usize = 7;
const L_ISSUED_TXG: usize = 8;
const L_ITXS: usize = 9;
const L_WAITERS: usize = 10;
const L_VDEV_TREE: usize = 11;
const L_MAX_SEQ: usize = 12;
const L_SEQ: usize = 13;
const LWB_FIELDS: [&str; 14] = [
    "lwb_state",
    "lwb_blk",
    "lwb_sz",
    "lwb_nused",
    "lwb_error",
    "lwb_child_zio",
    "lwb_write_zio",
    "lwb_root_zio",
    "lwb_issued_txg",
    "lwb_itxs",
    "lwb_waiters",
    "lwb_vdev_tree",
    "lwb_max_txg",
    "lwb_blk.blk_cksum.zc_word[ZIL_ZC_SEQ]",
];

// zil_commit_waiter_t fields.
const Z_DONE: usize = 0;
const Z_ERROR: usize = 1;
const Z_LWB: usize = 2;
const Z_NEXT: usize = 3;
const ZCW_FIELDS: [&str; 4] = ["zcw_done", "zcw_zio_error", "zcw_lwb", "zcw_node"];

const NEW: u64 = 0;
const OPENED: u64 = 1;
const CLOSED: u64 = 2;
const READY: u64 = 3;
const ISSUED: u64 = 4;
const WRITE_DONE: u64 = 5;
const FLUSH_DONE: u64 = 6;

fn state_name(s: u64) -> String {
    match s {
        NEW => "LWB_STATE_NEW".into(),
        OPENED => "LWB_STATE_OPENED".into(),
        CLOSED => "LWB_STATE_CLOSED".into(),
        READY => "LWB_STATE_READY".into(),
        ISSUED => "LWB_STATE_ISSUED".into(),
        WRITE_DONE => "LWB_STATE_WRITE_DONE".into(),
        FLUSH_DONE => "LWB_STATE_FLUSH_DONE".into(),
        other => format!("{other:#x}"),
    }
}

/// A C pointer into an arena: item index and the generation it was taken
/// at (the model's own bookkeeping; C has only the address).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct H {
    idx: u32,
    gen: u32,
}

impl H {
    /// As a pointer word (0 is NULL).
    fn word(self) -> u64 {
        (u64::from(self.gen) << 32) | u64::from(self.idx + 1)
    }
    fn from_word(w: u64) -> Option<H> {
        let idx = (w & 0xffff_ffff) as u32;
        (idx != 0).then(|| H {
            idx: idx - 1,
            gen: (w >> 32) as u32,
        })
    }
    fn addr(self, base: u64, item_bytes: u64) -> u64 {
        base + u64::from(self.idx) * item_bytes
    }
}

#[derive(Clone, Debug)]
struct Item {
    gen: u32,
    live: bool,
    words: Vec<u64>,
    /// Who freed it, where and when (for reports).
    freed: Option<(u64, String, &'static str)>,
    /// The lwb's block seq (kept outside the trashed words, for reports).
    label: u64,
}

/// A trashing arena of C objects made of 64-bit words.
#[derive(Debug)]
struct Arena {
    name: &'static str,
    ctype: &'static str,
    fields: &'static [&'static str],
    base: u64,
    items: Vec<Item>,
    free: Vec<u32>,
}

impl Arena {
    fn new(
        name: &'static str,
        ctype: &'static str,
        fields: &'static [&'static str],
        base: u64,
    ) -> Self {
        Self {
            name,
            ctype,
            fields,
            base,
            items: Vec::new(),
            free: Vec::new(),
        }
    }

    fn item_bytes(&self) -> u64 {
        8 * self.fields.len() as u64
    }

    /// Allocate; checks the trash fill of a reused item.
    fn alloc(&mut self, label: u64, step: u64) -> Result<H, String> {
        if let Some(i) = self.free.pop() {
            let ib = self.item_bytes();
            let it = &mut self.items[i as usize];
            if let Some(f) = it.words.iter().position(|&w| w != TRASH_U64) {
                return Err(format!(
                    "panic: Memory modified after free {:#x}({}) val={:x} @ {:#x} (field {}), found at step {step}",
                    self.base + u64::from(i) * ib,
                    ib,
                    it.words[f],
                    self.base + u64::from(i) * ib + 8 * f as u64,
                    self.fields[f]
                ));
            }
            it.gen += 1;
            it.live = true;
            it.words.fill(0);
            it.freed = None;
            it.label = label;
            return Ok(H {
                idx: i,
                gen: it.gen,
            });
        }
        self.items.push(Item {
            gen: 1,
            live: true,
            words: vec![0; self.fields.len()],
            freed: None,
            label,
        });
        Ok(H {
            idx: self.items.len() as u32 - 1,
            gen: 1,
        })
    }

    fn free(&mut self, h: H, step: u64, by: &str, func: &'static str) {
        let it = &mut self.items[h.idx as usize];
        debug_assert!(it.live && it.gen == h.gen, "model double free");
        it.live = false;
        it.words.fill(TRASH_U64);
        it.freed = Some((step, by.to_string(), func));
        self.free.push(h.idx);
    }

    fn live(&self, h: H) -> bool {
        self.items
            .get(h.idx as usize)
            .is_some_and(|it| it.live && it.gen == h.gen)
    }

    /// The kgdb-style report of a read through a stale pointer.
    fn stale(&self, h: H, field: usize, who: &str, func: &str, step: u64, write: bool) -> String {
        let it = &self.items[h.idx as usize];
        let addr = h.addr(self.base, self.item_bytes());
        let (fstep, fby, ffunc) = it.freed.clone().unwrap_or((0, "?".into(), "(reallocated)"));
        let val = it.words[field];
        let mut s = format!(
            "use after free: thread {who} in {func}() {} {}->{} of freed {} #{} ({} item {}, {addr:#x}) at step {step}: {}{val:#018x}\n",
            if write { "wrote" } else { "read" },
            self.ctype,
            self.fields[field],
            self.ctype,
            it.label,
            self.name,
            h.idx,
            if write { "over " } else { "got " },
        );
        s += &format!(
            "    the item was freed at step {fstep} by thread {fby} in {ffunc}() and trashed with 0xdeadc0de\n"
        );
        s += &format!("(kgdb) frame 0   {func} () thread {who}\n");
        s += &format!("(kgdb) p *({} *){addr:#x}\n    {{", self.ctype);
        for (n, w) in self.fields.iter().zip(&it.words) {
            s += &format!(" {n} = {w:#x},");
        }
        s += " }";
        if val == TRASH_U64 && !write {
            s += "\n    -> a pointer field reads 0xdeadc0dedeadc0de (non-canonical): fatal trap 9, general protection fault";
        }
        s
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ZKind {
    Root,
    Write,
    Flush(u32),
    Null,
}

#[derive(Clone, Debug)]
struct Zio {
    kind: ZKind,
    lwb: H,
    children: u32,
    parents: Vec<usize>,
    issued: bool,
    needs_io: bool,
    io_done: bool,
    done: bool,
    error: bool,
    /// Block bytes for a write.
    data: Option<(u32, u64, Vec<u8>)>,
}

#[derive(Clone, Copy, Debug)]
struct DevIo {
    zio: usize,
    disk_id: u64,
    ready_ns: u64,
}

/// A continuation: the rest of a C function after it dropped a lock.
#[derive(Clone, Debug)]
enum Task {
    /// `zil_lwb_write_issue` of `lwb`: pc 0 = under `zl_lock`, then the
    /// three `zio_nowait` calls.
    Issue {
        lwb: H,
        pc: u8,
        root: usize,
        write: usize,
        next: Option<H>,
    },
    /// `zil_lwb_write_done` after `zl_lock` was dropped.
    WriteDoneTail {
        lwb: H,
        zio: usize,
        nlwb: Option<H>,
        waiters: bool,
        tree: u64,
        error: bool,
    },
    /// `zil_lwb_flush_vdevs_done` after `zl_lock` was dropped (buggy
    /// variants only); then the root zio notifies its parents.
    FlushDoneTail {
        lwb: H,
        zio: usize,
        pc: u8,
        waiters: Vec<H>,
        error: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CState {
    Idle,
    Waiting { zcw: H, upto: u64, deadline: u64 },
    Stopped,
}

#[derive(Clone, Copy, Debug)]
struct Rec {
    seq: u64,
    id: u64,
    len: u64,
}

struct Model {
    bug: Option<BugName>,
    faults: FaultSet,
    rng: Rng,
    step: u64,
    now_ns: u64,
    txg: u64,
    lwbs: Arena,
    zcws: Arena,
    list: Vec<H>,
    zios: Vec<Zio>,
    devio: Vec<DevIo>,
    disks: Disks,
    /// Records of each lwb (the itx list's payload), by lwb pointer word.
    itxs: HashMap<u64, Vec<Rec>>,
    commit_list: Vec<Rec>,
    lr_seq: u64,
    records: Vec<u64>,
    committers: Vec<CState>,
    /// Tasks with the thread that runs them.
    tasks: Vec<(String, Task)>,
    next_taskq: u32,
    alloc_next: [u64; LOG_VDEVS as usize],
    guid: [u64; 2],
    head: Blkptr,
    checkpoint_seq: u64,
    acked_upto: u64,
    /// Record id → its lr seq.
    seq_of: HashMap<u64, u64>,
    /// After a next-block allocation failure the log stalls (no new lwbs).
    stalled: bool,
    /// An lwb failed: every later waiter fails too.
    crashed: bool,
    suspended: bool,
    suspending: Option<String>,
    crash_states: u64,
    actor: String,
    func: &'static str,
    trace: Trace,
}

/// Run one seed of the OpenZFS 2.2.0 model.
pub fn run(
    seed: u64,
    bug: Option<BugName>,
    faults: &FaultSet,
    steps: u32,
    trace: bool,
) -> SeedOutcome {
    let mut rng = Rng::new(seed);
    let guid = [rng.next_u64(), rng.next_u64()];
    let n = rng.range(1, COMMITTERS_MAX) as usize;
    let mut m = Model {
        bug,
        faults: *faults,
        rng,
        step: 0,
        now_ns: 1_000_000,
        txg: 5,
        lwbs: Arena::new("zil_lwb_cache", "lwb_t", &LWB_FIELDS, LWB_ZONE_BASE),
        zcws: Arena::new(
            "zil_zcw_cache",
            "zil_commit_waiter_t",
            &ZCW_FIELDS,
            ZCW_ZONE_BASE,
        ),
        list: Vec::new(),
        zios: Vec::new(),
        devio: Vec::new(),
        disks: Disks::new(),
        itxs: HashMap::new(),
        commit_list: Vec::new(),
        lr_seq: 0,
        records: Vec::new(),
        committers: vec![CState::Idle; n],
        tasks: Vec::new(),
        next_taskq: 0,
        alloc_next: [0; LOG_VDEVS as usize],
        guid,
        head: Blkptr::HOLE,
        checkpoint_seq: 0,
        acked_upto: 0,
        seq_of: HashMap::new(),
        stalled: false,
        crashed: false,
        suspended: false,
        suspending: None,
        crash_states: 0,
        actor: "zfs_mount".into(),
        func: "zil_create",
        trace: Trace::new(trace),
    };
    m.disks.lying_flush = faults.lying_flush;
    let r = m.create().and_then(|_| m.run(steps));
    let expected_loss = faults
        .lying_flush
        .then_some("the device lies about flushes");
    SeedOutcome::of_run(r, m.step, m.crash_states, expected_loss, m.trace)
}

fn on(bug: Option<BugName>, b: BugName) -> bool {
    bug == Some(b)
}

impl Model {
    fn set(&mut self, actor: &str, func: &'static str) {
        if self.actor != actor {
            self.actor = actor.to_string();
        }
        self.func = func;
    }

    fn rd(&self, h: H, f: usize) -> Result<u64, String> {
        if self.lwbs.live(h) {
            Ok(self.lwbs.items[h.idx as usize].words[f])
        } else {
            Err(self
                .lwbs
                .stale(h, f, &self.actor, self.func, self.step, false))
        }
    }

    fn wr(&mut self, h: H, f: usize, v: u64) -> Result<(), String> {
        if self.lwbs.live(h) {
            self.lwbs.items[h.idx as usize].words[f] = v;
            Ok(())
        } else {
            Err(self
                .lwbs
                .stale(h, f, &self.actor, self.func, self.step, true))
        }
    }

    fn zrd(&self, h: H, f: usize) -> Result<u64, String> {
        if self.zcws.live(h) {
            Ok(self.zcws.items[h.idx as usize].words[f])
        } else {
            Err(self
                .zcws
                .stale(h, f, &self.actor, self.func, self.step, false))
        }
    }

    fn zwr(&mut self, h: H, f: usize, v: u64) -> Result<(), String> {
        if self.zcws.live(h) {
            self.zcws.items[h.idx as usize].words[f] = v;
            Ok(())
        } else {
            Err(self
                .zcws
                .stale(h, f, &self.actor, self.func, self.step, true))
        }
    }

    fn seq(&self, h: H) -> u64 {
        self.lwbs.items[h.idx as usize].label
    }

    fn note(&mut self, what: impl FnOnce(&Model) -> String) {
        if self.trace.on() {
            let line = format!(
                "step {:>6}  {:<13} {:<26} {}",
                self.step,
                self.actor,
                self.func,
                what(self)
            );
            self.trace.push(|| line);
        }
    }

    fn set_state(&mut self, h: H, s: u64) -> Result<(), String> {
        let old = self.rd(h, L_STATE)?;
        if s != old + 1 && !(old == NEW && s == OPENED) {
            return Err(format!(
                "VERIFY: lwb {} moved from {} to {}",
                self.seq(h),
                state_name(old),
                state_name(s)
            ));
        }
        self.wr(h, L_STATE, s)?;
        self.note(|m| format!("lwb {} -> {}", m.seq(h), state_name(s)));
        Ok(())
    }

    fn alloc_block(&mut self, sz: usize) -> u64 {
        let v = self.rng.below(u64::from(LOG_VDEVS)) as u32;
        let off = self.alloc_next[v as usize];
        self.alloc_next[v as usize] += sz as u64;
        // (vdev, offset) packed; +1 so that 0 is a hole.
        ((u64::from(v) << 48) | off) + 1
    }

    fn blkptr(&self, blk: u64, sz: u64, seq: u64) -> Blkptr {
        if blk == 0 {
            return Blkptr::HOLE;
        }
        let b = blk - 1;
        Blkptr::log_block(
            (b >> 48) as u32,
            b & ((1 << 48) - 1),
            sz as u32,
            ZioCksum::verifier(self.guid[0], self.guid[1], OBJSET, seq),
            self.txg,
        )
    }

    /// The next pointer written when the next block could not be
    /// allocated: a hole that still carries the next verifier, so a reader
    /// can tell it belongs to this chain (#15132's writer side).
    fn hole_next(&self, l: H) -> Blkptr {
        let mut bp = Blkptr::HOLE;
        bp.cksum =
            ZioCksum::verifier(self.guid[0], self.guid[1], OBJSET, self.seq(l)).next_in_chain();
        bp
    }

    fn new_lwb(&mut self, seq: u64, sz: usize, blk: u64) -> Result<H, String> {
        let h = self.lwbs.alloc(seq, self.step)?;
        self.wr(h, L_SZ, sz as u64)?;
        self.wr(h, L_NUSED, format::ZIL_CHAIN_BYTES as u64)?;
        self.wr(h, L_BLK, blk)?;
        self.wr(h, L_SEQ, seq)?;
        self.list.push(h);
        Ok(h)
    }

    /// `zil_create`: the first block, persisted as `zh_log`.
    fn create(&mut self) -> Result<(), String> {
        let blk = self.alloc_block(BLOCK_SIZES_BYTES[0]);
        let h = self.new_lwb(1, BLOCK_SIZES_BYTES[0], blk)?;
        self.head = self.blkptr(blk, BLOCK_SIZES_BYTES[0] as u64, 1);
        self.note(|m| format!("lwb {} allocated (NEW), zh_log persisted", m.seq(h)));
        Ok(())
    }

    fn run(&mut self, steps: u32) -> Result<(), String> {
        for _ in 0..steps {
            if self.suspended {
                break;
            }
            self.step += 1;
            self.one_step()?;
        }
        self.drain()?;
        self.power_cut()
    }

    fn one_step(&mut self) -> Result<(), String> {
        if self.faults.power_cuts && self.rng.chance_ppm(POWER_CUT_PPM) {
            return self.power_cut();
        }
        #[derive(Clone, Copy)]
        enum A {
            Committer(usize),
            Task(usize),
            Complete,
            Clock,
            Sync,
            Suspend,
            SuspendFinish,
        }
        let mut acts: Vec<(u32, A)> = Vec::new();
        for (i, c) in self.committers.iter().enumerate() {
            let busy = self
                .tasks
                .iter()
                .any(|(t, _)| *t == format!("committer-{i}"));
            if busy || *c != CState::Stopped {
                acts.push((if busy { 6 } else { 3 }, A::Committer(i)));
            }
        }
        for (j, (t, _)) in self.tasks.iter().enumerate() {
            if !t.starts_with("committer-") {
                acts.push((6, A::Task(j)));
            }
        }
        if !self.devio.is_empty() {
            acts.push((8, A::Complete));
        }
        acts.push((3, A::Clock));
        acts.push((3, A::Sync));
        if self.suspending.is_none() && self.step > 200 && self.rng.chance_ppm(3_000) {
            acts.push((1, A::Suspend));
        }
        if self.suspending.is_some() && !self.suspended && self.suspend_can_finish()? {
            acts.push((3, A::SuspendFinish));
        }
        let w: Vec<u32> = acts.iter().map(|a| a.0).collect();
        let pick = self.rng.weighted(&w).expect("clock always enabled");
        match acts[pick].1 {
            A::Committer(i) => self.committer(i),
            A::Task(j) => self.run_task(j),
            A::Complete => self.complete(true),
            A::Clock => {
                self.now_ns += self.rng.range(1_000, 100_000);
                Ok(())
            }
            A::Sync => self.zil_sync(),
            A::Suspend => self.zil_suspend_start(),
            A::SuspendFinish => self.zil_suspend_finish(),
        }
    }

    // ---- committers -------------------------------------------------

    fn committer(&mut self, i: usize) -> Result<(), String> {
        let me = format!("committer-{i}");
        if let Some(j) = self.tasks.iter().position(|(t, _)| *t == me) {
            return self.run_task(j);
        }
        match self.committers[i] {
            CState::Idle => {
                if self.stalled || self.suspending.is_some() || self.list.len() >= LWBS_MAX {
                    return Ok(());
                }
                self.set(&me, "zfs_log_write");
                let n = self.rng.range(1, RECORDS_PER_COMMIT_MAX);
                for _ in 0..n {
                    let id = self.records.len() as u64 + 1;
                    let len = self.rng.range(16, RECORD_BODY_BYTES_MAX);
                    self.records.push(len);
                    self.commit_list.push(Rec { seq: 0, id, len });
                }
                let upto = self.records.len() as u64;
                self.note(|_| format!("itx assigned, records ..={upto}"));
                self.commit_writer(i, upto)
            }
            CState::Waiting {
                zcw,
                upto,
                deadline,
            } => self.commit_waiter(i, zcw, upto, deadline),
            CState::Stopped => Ok(()),
        }
    }

    /// `zil_commit_writer` + `zil_process_commit_list`, under
    /// `zl_issuer_lock`; the closed lwbs are issued after it is dropped.
    fn commit_writer(&mut self, i: usize, upto: u64) -> Result<(), String> {
        let me = format!("committer-{i}");
        self.set(&me, "zil_commit_writer");
        let zcw = self.zcws.alloc(0, self.step)?;
        let mut ilwbs = Vec::new();
        let recs = std::mem::take(&mut self.commit_list);
        for mut r in recs {
            let mut tail = *self.list.last().expect("tail");
            let reclen = 32 + r.len.div_ceil(8) * 8;
            if self.rd(tail, L_STATE)? == NEW {
                self.set_state(tail, OPENED)?;
            }
            if self.rd(tail, L_NUSED)? + reclen > self.rd(tail, L_SZ)? {
                ilwbs.push(tail);
                tail = self.write_close(tail)?;
                self.set_state(tail, OPENED)?;
            }
            self.lr_seq += 1;
            r.seq = self.lr_seq;
            self.seq_of.insert(r.id, r.seq);
            let nu = self.rd(tail, L_NUSED)? + reclen;
            self.wr(tail, L_NUSED, nu)?;
            let n = self.rd(tail, L_ITXS)? + 1;
            self.wr(tail, L_ITXS, n)?;
            self.wr(tail, L_MAX_SEQ, r.seq)?;
            self.itxs.entry(tail.word()).or_default().push(r);
        }
        // Link the waiter to the lwb holding the last record, or to the
        // newest unflushed lwb when nothing new was placed.
        let tail = *self.list.last().expect("tail");
        let target = if self.rd(tail, L_ITXS)? > 0 {
            Some(tail)
        } else {
            let mut t = None;
            for &h in self.list.iter().rev() {
                let s = self.rd(h, L_STATE)?;
                if s != NEW && s != OPENED && s != FLUSH_DONE {
                    t = Some(h);
                    break;
                }
            }
            t
        };
        match target {
            Some(l) => {
                let head = self.rd(l, L_WAITERS)?;
                self.zwr(zcw, Z_NEXT, head)?;
                self.zwr(zcw, Z_LWB, l.word())?;
                self.wr(l, L_WAITERS, zcw.word())?;
            }
            None => self.zwr(zcw, Z_DONE, 1)?,
        }
        // 2.2.0: close at once when no earlier lwb is in flight, else wait
        // for company (the commit timeout).
        if self.rd(tail, L_STATE)? == OPENED && self.rng.below(2) == 0 {
            ilwbs.push(tail);
            self.write_close(tail)?;
        }
        self.note(|m| {
            format!(
                "zcw {:?} linked to lwb {:?}; issuing {:?}",
                zcw.idx,
                target.map(|l| m.seq(l)),
                ilwbs.iter().map(|&l| m.seq(l)).collect::<Vec<_>>()
            )
        });
        let deadline = self.now_ns + COMMIT_TIMEOUT_NS;
        self.committers[i] = CState::Waiting {
            zcw,
            upto,
            deadline,
        };
        for l in ilwbs {
            self.tasks.push((
                me.clone(),
                Task::Issue {
                    lwb: l,
                    pc: 0,
                    root: usize::MAX,
                    write: usize::MAX,
                    next: None,
                },
            ));
        }
        Ok(())
    }

    /// `zil_lwb_write_close`: OPENED → CLOSED and a NEW successor (no
    /// block yet: it is allocated when this lwb is issued).
    fn write_close(&mut self, l: H) -> Result<H, String> {
        self.set_state(l, CLOSED)?;
        let seq = self.seq(l) + 1;
        let sz = BLOCK_SIZES_BYTES[self.rng.below(BLOCK_SIZES_BYTES.len() as u64) as usize];
        self.new_lwb(seq, sz, 0)
    }

    /// `zil_commit_waiter`: holding only `zcw_lock`, look at the waiter and
    /// at the lwb it points to.
    fn commit_waiter(&mut self, i: usize, zcw: H, upto: u64, deadline: u64) -> Result<(), String> {
        let me = format!("committer-{i}");
        self.set(&me, "zil_commit_waiter");
        let done = self.zrd(zcw, Z_DONE)?;
        if done != 0 {
            let err = self.zrd(zcw, Z_ERROR)?;
            self.zcws
                .free(zcw, self.step, &me, "zil_free_commit_waiter");
            if err == 0 {
                self.acked_upto = self.acked_upto.max(upto);
                self.note(|_| format!("zil_commit returns 0: records ..={upto} acknowledged"));
                self.committers[i] = CState::Idle;
                self.check(None)
                    .map_err(|e| format!("{me} acknowledged records ..={upto}, but {e}"))?;
            } else {
                self.note(|_| {
                    "zil_commit: zcw_zio_error set, falls back to txg_wait_synced".into()
                });
                self.committers[i] = CState::Idle;
            }
            return Ok(());
        }
        // Not done: asleep on zcw_cv unless the timeout passed or a
        // spurious wakeup happened.
        let timed_out = self.now_ns >= deadline;
        if !timed_out && !self.rng.chance_ppm(SPURIOUS_WAKE_PPM) {
            return Ok(());
        }
        let lw = self.zrd(zcw, Z_LWB)?;
        let Some(l) = H::from_word(lw) else {
            return Err(format!(
                "VERIFY: zcw_lwb is NULL while zcw_done is 0 ({me})"
            ));
        };
        // The #15228 read: lwb_state with only zcw_lock held.
        let st = self.rd(l, L_STATE)?;
        if st == OPENED && timed_out {
            // zil_commit_waiter_timeout: take zl_issuer_lock, recheck, close, issue.
            self.set(&me, "zil_commit_waiter_timeout");
            self.write_close(l)?;
            self.note(|m| format!("commit timeout: lwb {} closed", m.seq(l)));
            self.tasks.push((
                me,
                Task::Issue {
                    lwb: l,
                    pc: 0,
                    root: usize::MAX,
                    write: usize::MAX,
                    next: None,
                },
            ));
        }
        if timed_out {
            self.committers[i] = CState::Waiting {
                zcw,
                upto,
                deadline: u64::MAX,
            };
        }
        Ok(())
    }

    // ---- zios -------------------------------------------------------

    fn new_zio(&mut self, kind: ZKind, lwb: H, needs_io: bool) -> usize {
        self.zios.push(Zio {
            kind,
            lwb,
            children: 0,
            parents: Vec::new(),
            issued: false,
            needs_io,
            io_done: false,
            done: false,
            error: false,
            data: None,
        });
        self.zios.len() - 1
    }

    fn add_child(&mut self, parent: usize, child: usize) -> Result<(), String> {
        if self.zios[parent].done {
            return Err(format!(
                "VERIFY: zio_add_child: parent zio {parent} ({:?}) already done",
                self.zios[parent].kind
            ));
        }
        if self.zios[child].done {
            return Ok(());
        }
        self.zios[parent].children += 1;
        self.zios[child].parents.push(parent);
        Ok(())
    }

    fn nowait(&mut self, z: usize) -> Result<(), String> {
        self.zios[z].issued = true;
        if self.zios[z].needs_io {
            let lat = match self.zios[z].kind {
                ZKind::Flush(_) => self.rng.range(50_000, 2_000_000),
                _ => self.rng.range(20_000, 200_000),
            };
            let disk_id = match (self.zios[z].kind, self.zios[z].data.clone()) {
                (ZKind::Flush(v), _) => self.disks.submit_flush(v),
                (_, Some((v, off, bytes))) => self.disks.submit_write(v, off, bytes),
                _ => 0,
            };
            self.devio.push(DevIo {
                zio: z,
                disk_id,
                ready_ns: self.now_ns + lat,
            });
        }
        self.try_done(z)
    }

    /// A zio whose children and own I/O are done runs its done callback,
    /// then notifies its parents.
    fn try_done(&mut self, z: usize) -> Result<(), String> {
        let zz = &self.zios[z];
        if zz.done || !zz.issued || zz.children > 0 || (zz.needs_io && !zz.io_done) {
            return Ok(());
        }
        self.zios[z].done = true;
        match self.zios[z].kind {
            ZKind::Write | ZKind::Null => return self.write_done(z),
            ZKind::Root => return self.flush_vdevs_done(z),
            ZKind::Flush(_) => {}
        }
        self.notify_parents(z)
    }

    fn notify_parents(&mut self, z: usize) -> Result<(), String> {
        let err = self.zios[z].error;
        // 2.2.0's zio_flush is DONT_PROPAGATE: a flush error never reaches
        // the root (#16333 switch); with the fix it does.
        let propagate =
            !(matches!(self.zios[z].kind, ZKind::Flush(_)) && on(self.bug, BugName::Pr16333));
        for p in self.zios[z].parents.clone() {
            if err && propagate {
                self.zios[p].error = true;
            }
            self.zios[p].children -= 1;
            self.try_done(p)?;
        }
        Ok(())
    }

    // ---- issue ------------------------------------------------------

    fn run_task(&mut self, j: usize) -> Result<(), String> {
        let (who, task) = self.tasks[j].clone();
        match task {
            Task::Issue {
                lwb,
                pc,
                root,
                write,
                next,
            } => self.issue_step(j, &who, lwb, pc, root, write, next),
            Task::WriteDoneTail {
                lwb,
                zio,
                nlwb,
                waiters,
                tree,
                error,
            } => {
                self.tasks.remove(j);
                self.write_done_tail(&who, lwb, zio, nlwb, waiters, tree, error)
            }
            Task::FlushDoneTail {
                lwb,
                zio,
                pc,
                waiters,
                error,
            } => self.flush_done_tail(j, &who, lwb, zio, pc, waiters, error),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn issue_step(
        &mut self,
        j: usize,
        who: &str,
        l: H,
        pc: u8,
        root: usize,
        write: usize,
        next: Option<H>,
    ) -> Result<(), String> {
        self.set(who, "zil_lwb_write_issue");
        let bug = on(self.bug, BugName::Pr15233);
        match pc {
            0 => {
                // zil_lwb_commit for each itx (records are in the model's
                // table), root zio, then under zl_lock: READY, and if the
                // block is known, allocate the next one and go ISSUED.
                let root = if self.rd(l, L_STATE)? == READY {
                    // Picked up by the previous lwb's issue (goto next_lwb).
                    (self.rd(l, L_ROOT_ZIO)? - 1) as usize
                } else {
                    let root = self.new_zio(ZKind::Root, l, false);
                    self.wr(l, L_ROOT_ZIO, (root + 1) as u64)?;
                    self.set_state(l, READY)?;
                    if self.rd(l, L_BLK)? == 0 && self.rd(l, L_ERROR)? == 0 {
                        self.note(|m| format!("lwb {} READY, waiting for its block", m.seq(l)));
                        self.tasks.remove(j);
                        return Ok(());
                    }
                    root
                };
                let pos = self.list.iter().position(|&x| x == l).expect("on list");
                let nlwb = self.list.get(pos + 1).copied();
                let (next_bp, nready) = match nlwb {
                    Some(n) => {
                        let nsz = self.rd(n, L_SZ)?;
                        let failed = self.faults.alloc_fail && self.rng.chance_ppm(ALLOC_FAIL_PPM);
                        if failed || self.rd(l, L_ERROR)? != 0 {
                            self.wr(n, L_ERROR, 28)?; // ENOSPC
                            self.stalled = true;
                            self.note(|m| {
                                format!("next block for lwb {} could not be allocated", m.seq(n))
                            });
                            (self.hole_next(l), self.rd(n, L_STATE)? == READY)
                        } else {
                            let blk = self.alloc_block(nsz as usize);
                            self.wr(n, L_BLK, blk)?;
                            (
                                self.blkptr(blk, nsz, self.seq(n)),
                                self.rd(n, L_STATE)? == READY,
                            )
                        }
                    }
                    None => (Blkptr::HOLE, false),
                };
                self.wr(l, L_ISSUED_TXG, self.txg)?;
                self.set_state(l, ISSUED)?;
                // The write zio (a null zio carrying the error, if any).
                let err = self.rd(l, L_ERROR)? != 0;
                let write = if err {
                    self.new_zio(ZKind::Null, l, false)
                } else {
                    let w = self.new_zio(ZKind::Write, l, true);
                    let blk = self.rd(l, L_BLK)? - 1;
                    let bytes = self.build_block(l, &next_bp)?;
                    self.zios[w].data = Some(((blk >> 48) as u32, blk & ((1 << 48) - 1), bytes));
                    let tree = self.rd(l, L_VDEV_TREE)? | (1 << (blk >> 48));
                    self.wr(l, L_VDEV_TREE, tree)?;
                    w
                };
                if err {
                    self.zios[write].error = true;
                }
                self.wr(l, L_WRITE_ZIO, (write + 1) as u64)?;
                self.add_child(root, write)?;
                // zil_lwb_set_zio_dependency.
                if pos > 0 {
                    let p = self.list[pos - 1];
                    let ps = self.rd(p, L_STATE)?;
                    if ps == ISSUED {
                        let pw = self.rd(p, L_WRITE_ZIO)?;
                        if pw != 0 {
                            self.add_child(write, (pw - 1) as usize)?;
                        }
                    }
                    if ps == ISSUED || ps == WRITE_DONE {
                        let pr = self.rd(p, L_ROOT_ZIO)?;
                        if pr != 0 {
                            self.add_child(root, (pr - 1) as usize)?;
                        }
                    }
                }
                self.note(|m| {
                    format!(
                        "lwb {} issued (txg {}), next block {}",
                        m.seq(l),
                        m.txg,
                        if next_bp.is_hole() {
                            "HOLE"
                        } else {
                            "allocated"
                        }
                    )
                });
                self.tasks[j].1 = Task::Issue {
                    lwb: l,
                    pc: 1,
                    root,
                    write,
                    next: nlwb.filter(|_| nready),
                };
                Ok(())
            }
            1 => {
                // Fixed: child first. #15233: root first.
                if bug {
                    self.note(|m| format!("zio_nowait(lwb {} root)", m.seq(l)));
                    self.nowait(root)?;
                } else {
                    let c = self.rd(l, L_CHILD_ZIO)?;
                    if c != 0 {
                        self.nowait((c - 1) as usize)?;
                    }
                }
                self.advance_issue(j, l, 2, root, write, next);
                Ok(())
            }
            2 => {
                self.note(|m| format!("zio_nowait(lwb {} write)", m.seq(l)));
                self.nowait(write)?;
                self.advance_issue(j, l, 3, root, write, next);
                Ok(())
            }
            _ => {
                if bug {
                    // The 2023 read: lwb->lwb_child_zio after the root was issued.
                    let c = self.rd(l, L_CHILD_ZIO)?;
                    if c != 0 {
                        self.nowait((c - 1) as usize)?;
                    }
                } else {
                    self.note(|m| {
                        format!("zio_nowait(lwb {} root); only locals from here", m.seq(l))
                    });
                    self.nowait(root)?;
                }
                match next {
                    // goto next_lwb: issue the READY successor too.
                    Some(n) => {
                        self.tasks[j].1 = Task::Issue {
                            lwb: n,
                            pc: 0,
                            root: usize::MAX,
                            write: usize::MAX,
                            next: None,
                        };
                    }
                    None => {
                        self.tasks.remove(j);
                    }
                }
                Ok(())
            }
        }
    }

    fn advance_issue(
        &mut self,
        j: usize,
        l: H,
        pc: u8,
        root: usize,
        write: usize,
        next: Option<H>,
    ) {
        self.tasks[j].1 = Task::Issue {
            lwb: l,
            pc,
            root,
            write,
            next,
        };
    }

    fn build_block(&mut self, l: H, next: &Blkptr) -> Result<Vec<u8>, String> {
        let sz = self.rd(l, L_SZ)? as usize;
        let mut block = vec![0u8; sz];
        let mut off = format::ZIL_CHAIN_BYTES;
        for r in self.itxs.get(&l.word()).cloned().unwrap_or_default() {
            let reclen = 32 + (r.len as usize).div_ceil(8) * 8;
            let c = LrCommon {
                txtype: format::TX_SETATTR,
                reclen: reclen as u64,
                txg: self.txg,
                seq: r.seq,
            };
            c.encode(&mut block[off..]).ok_or("record does not fit")?;
            block[off + 32..off + 32 + r.len as usize]
                .copy_from_slice(&opaque_body(r.id, r.len as usize));
            off += reclen;
        }
        let verifier = ZioCksum::verifier(self.guid[0], self.guid[1], OBJSET, self.seq(l));
        let n = format::seal_slim_block(&mut block, off, next, &verifier)
            .map_err(|e| format!("seal: {e:?}"))?;
        block.truncate(n);
        Ok(block)
    }

    // ---- completions -------------------------------------------------

    fn complete(&mut self, faults: bool) -> Result<(), String> {
        let ready: Vec<usize> = (0..self.devio.len())
            .filter(|&k| self.devio[k].ready_ns <= self.now_ns || self.rng.below(4) == 0)
            .collect();
        let Some(&k) = ready.get(self.rng.below(ready.len().max(1) as u64) as usize) else {
            self.now_ns += 50_000;
            return Ok(());
        };
        let d = self.devio.swap_remove(k);
        let z = d.zio;
        let flush = matches!(self.zios[z].kind, ZKind::Flush(_));
        let inject = faults
            && (if flush {
                self.faults.flush_errors
            } else {
                self.faults.io_errors
            })
            && self.rng.chance_ppm(IO_ERROR_PPM);
        if flush {
            self.disks.flush_done(d.disk_id, !inject);
            // A failed flush may have lost any write the device had cached,
            // including those of lwbs whose own flushes may yet succeed
            // ("fsyncgate"): fail every lwb not yet FLUSH_DONE, at once (the
            // rzil core's rule). 2.2.0's DONT_PROPAGATE (#16333) ignores it.
            if inject && !on(self.bug, BugName::Pr16333) {
                self.crashed = true;
                self.stalled = true;
            }
        } else {
            self.disks.write_done(d.disk_id, !inject);
        }
        self.next_taskq += 1;
        let who = format!("zio_taskq-{}", self.next_taskq % 8);
        self.set(&who, "zio_done");
        let l = self.zios[z].lwb;
        self.note(|m| {
            format!(
                "{:?} of lwb {} completed{}",
                m.zios[z].kind,
                m.seq(l),
                if inject { " with EIO" } else { "" }
            )
        });
        self.zios[z].io_done = true;
        self.zios[z].error |= inject;
        self.try_done(z)
    }

    /// `zil_lwb_write_done`, the part under `zl_lock`.
    fn write_done(&mut self, z: usize) -> Result<(), String> {
        let l = self.zios[z].lwb;
        self.func = "zil_lwb_write_done";
        self.set_state(l, WRITE_DONE)?;
        self.wr(l, L_CHILD_ZIO, 0)?;
        self.wr(l, L_WRITE_ZIO, 0)?;
        let pos = self.list.iter().position(|&x| x == l).expect("on list");
        let mut nlwb = self.list.get(pos + 1).copied();
        if let Some(n) = nlwb {
            // #15278's fix: defer only into an ISSUED next lwb.
            if !on(self.bug, BugName::Pr15278) && self.rd(n, L_STATE)? != ISSUED {
                nlwb = None;
            }
        }
        let waiters = self.rd(l, L_WAITERS)? != 0;
        let tree = self.rd(l, L_VDEV_TREE)?;
        let error = self.zios[z].error;
        let who = self.actor.clone();
        // The rest runs after zl_lock is dropped, as a step of its own.
        self.tasks.push((
            who,
            Task::WriteDoneTail {
                lwb: l,
                zio: z,
                nlwb,
                waiters,
                tree,
                error,
            },
        ));
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn write_done_tail(
        &mut self,
        who: &str,
        l: H,
        z: usize,
        nlwb: Option<H>,
        waiters: bool,
        tree: u64,
        error: bool,
    ) -> Result<(), String> {
        self.set(who, "zil_lwb_write_done");
        if tree != 0 {
            self.wr(l, L_VDEV_TREE, 0)?;
            if error {
                // No flush for a failed write.
            } else if let (false, Some(n)) = (waiters, nlwb) {
                self.func = "zil_lwb_flush_defer";
                let t = self.rd(n, L_VDEV_TREE)? | tree;
                self.wr(n, L_VDEV_TREE, t)?;
                self.note(|m| {
                    format!(
                        "flushes of lwb {} deferred into lwb {} ({})",
                        m.seq(l),
                        m.seq(n),
                        state_name(m.rd(n, L_STATE).unwrap_or(0))
                    )
                });
            } else {
                let root = (self.rd(l, L_ROOT_ZIO)? - 1) as usize;
                for v in 0..LOG_VDEVS {
                    if tree & (1 << v) != 0 {
                        let f = self.new_zio(ZKind::Flush(v), l, true);
                        self.add_child(root, f)?;
                        self.nowait(f)?;
                    }
                }
                self.note(|m| format!("flushes issued for lwb {} (vdevs {tree:#b})", m.seq(l)));
            }
        }
        self.notify_parents(z)
    }

    /// `zil_lwb_flush_vdevs_done`: FLUSH_DONE and the waiters signalled.
    fn flush_vdevs_done(&mut self, z: usize) -> Result<(), String> {
        let l = self.zios[z].lwb;
        self.func = "zil_lwb_flush_vdevs_done";
        // An lwb that failed fails the log (2.4's ZIL "crash", #17398, as
        // the rzil core does): every later waiter gets the error, since
        // its commit covers the failed lwb's records too.
        if self.zios[z].error {
            self.crashed = true;
            self.stalled = true;
        }
        let error = self.zios[z].error || self.crashed;
        self.wr(l, L_ROOT_ZIO, 0)?;
        self.set_state(l, FLUSH_DONE)?;
        let who = self.actor.clone();
        let b14959 = on(self.bug, BugName::Pr14959);
        let b15228 = on(self.bug, BugName::Pr15228);
        let b14999 = on(self.bug, BugName::Pr14999);
        if b14959 || b15228 || b14999 {
            // The buggy variants drop zl_lock here.
            let mut locals = Vec::new();
            if b15228 {
                locals = self.unlink_waiters(l)?;
                self.wr(l, L_ITXS, 0)?;
            } else if b14999 {
                self.signal_waiters(l, error)?;
                self.wr(l, L_ITXS, 0)?;
            }
            self.note(|m| format!("lwb {} FLUSH_DONE; zl_lock dropped", m.seq(l)));
            self.tasks.push((
                who,
                Task::FlushDoneTail {
                    lwb: l,
                    zio: z,
                    pc: 0,
                    waiters: locals,
                    error,
                },
            ));
            return Ok(());
        }
        self.signal_waiters(l, error)?;
        self.wr(l, L_ITXS, 0)?;
        let _txg = self.rd(l, L_ISSUED_TXG)?; // copied while zl_lock is held
        self.note(|m| {
            format!(
                "lwb {} FLUSH_DONE; waiters signalled under zl_lock",
                m.seq(l)
            )
        });
        self.notify_parents(z)
    }

    #[allow(clippy::too_many_arguments)]
    fn flush_done_tail(
        &mut self,
        j: usize,
        who: &str,
        l: H,
        z: usize,
        pc: u8,
        waiters: Vec<H>,
        error: bool,
    ) -> Result<(), String> {
        self.set(who, "zil_lwb_flush_vdevs_done");
        if pc == 0 {
            if on(self.bug, BugName::Pr14959) {
                // Waiters taken from the lwb after the unlock.
                self.signal_waiters(l, error)?;
                self.wr(l, L_ITXS, 0)?;
            } else if on(self.bug, BugName::Pr15228) {
                for zcw in waiters {
                    self.zwr(zcw, Z_ERROR, u64::from(error))?;
                    self.zwr(zcw, Z_LWB, 0)?;
                    self.zwr(zcw, Z_DONE, 1)?;
                }
                self.note(|_| "waiters signalled after zl_lock was dropped".into());
            }
            if let Some((_, Task::FlushDoneTail { pc, .. })) = self.tasks.get_mut(j) {
                *pc = 1;
            }
            return Ok(());
        }
        // Decrement zl_lwb_inflight[lwb_issued_txg & TXG_MASK].
        let txg = if on(self.bug, BugName::Pr14999) {
            self.rd(l, L_ISSUED_TXG)?
        } else {
            0
        };
        let _ = txg;
        self.tasks.remove(j);
        self.notify_parents(z)
    }

    fn unlink_waiters(&mut self, l: H) -> Result<Vec<H>, String> {
        let mut out = Vec::new();
        let mut w = self.rd(l, L_WAITERS)?;
        while let Some(zcw) = H::from_word(w) {
            w = self.zrd(zcw, Z_NEXT)?;
            out.push(zcw);
        }
        self.wr(l, L_WAITERS, 0)?;
        Ok(out)
    }

    fn signal_waiters(&mut self, l: H, error: bool) -> Result<(), String> {
        for zcw in self.unlink_waiters(l)? {
            self.zwr(zcw, Z_ERROR, u64::from(error))?;
            self.zwr(zcw, Z_LWB, 0)?;
            self.zwr(zcw, Z_DONE, 1)?;
        }
        Ok(())
    }

    // ---- sync, suspend ----------------------------------------------

    fn check_free(&self, l: H) -> Result<(), String> {
        let s = self.rd(l, L_STATE)?;
        let fail = |what: &str| {
            format!(
                "panic: VERIFY({what}) failed in zil_free_lwb() for lwb {} in {} (thread {})",
                self.seq(l),
                state_name(s),
                self.actor
            )
        };
        if self.rd(l, L_ITXS)? != 0 {
            return Err(fail("list_is_empty(&lwb->lwb_itxs)"));
        }
        if self.rd(l, L_WAITERS)? != 0 {
            return Err(fail("list_is_empty(&lwb->lwb_waiters)"));
        }
        if s != NEW && s != FLUSH_DONE {
            return Err(fail(
                "lwb->lwb_state == LWB_STATE_NEW || lwb->lwb_state == LWB_STATE_FLUSH_DONE",
            ));
        }
        if self.rd(l, L_CHILD_ZIO)? != 0
            || self.rd(l, L_WRITE_ZIO)? != 0
            || self.rd(l, L_ROOT_ZIO)? != 0
        {
            return Err(fail("lwb zios == NULL"));
        }
        if self.rd(l, L_VDEV_TREE)? != 0 {
            return Err(fail("avl_is_empty(&lwb->lwb_vdev_tree)"));
        }
        Ok(())
    }

    fn free_lwb(&mut self, l: H) -> Result<(), String> {
        self.check_free(l)?;
        let s = self.seq(l);
        self.itxs.remove(&l.word());
        self.lwbs
            .free(l, self.step, &self.actor.clone(), "zil_free_lwb");
        self.note(|_| format!("lwb {s} freed (zil_free_lwb; item trashed with 0xdeadc0de)"));
        Ok(())
    }

    /// `zil_sync`: free FLUSH_DONE lwbs from the head whose txg has synced;
    /// persist `zh_log`.
    fn zil_sync(&mut self) -> Result<(), String> {
        self.set("txg_sync_thread", "zil_sync");
        let syncing = self.txg;
        self.txg += 1;
        while self.list.len() > 1 {
            let h = self.list[0];
            if self.rd(h, L_STATE)? != FLUSH_DONE || self.rd(h, L_ISSUED_TXG)? >= syncing {
                break;
            }
            let max = self.rd(h, L_MAX_SEQ)?;
            self.list.remove(0);
            self.free_lwb(h)?;
            self.checkpoint_seq = self.checkpoint_seq.max(max);
        }
        let h = self.list[0];
        let blk = self.rd(h, L_BLK)?;
        if blk != 0 {
            self.head = self.blkptr(blk, self.rd(h, L_SZ)?, self.seq(h));
        }
        Ok(())
    }

    /// `zil_suspend` → commit everything → wait → `zil_destroy`.
    fn zil_suspend_start(&mut self) -> Result<(), String> {
        self.set("zfs_suspend_fs", "zil_suspend");
        self.suspending = Some("zfs_suspend_fs".into());
        let tail = *self.list.last().expect("tail");
        let open_with_itxs = self.rd(tail, L_STATE)? == OPENED && self.rd(tail, L_ITXS)? > 0;
        if open_with_itxs && !on(self.bug, BugName::Pr17521) {
            // #17521's fix: force the open lwb to be written.
            self.write_close(tail)?;
            self.tasks.push((
                "zfs_suspend_fs".into(),
                Task::Issue {
                    lwb: tail,
                    pc: 0,
                    root: usize::MAX,
                    write: usize::MAX,
                    next: None,
                },
            ));
        }
        self.note(|m| {
            format!(
                "suspend: open lwb {} {}",
                m.seq(tail),
                if open_with_itxs {
                    "has records"
                } else {
                    "empty"
                }
            )
        });
        Ok(())
    }

    /// `zil_suspend` waits until nothing it started is in flight: every
    /// lwb FLUSH_DONE but the tail (NEW, or OPENED when the open lwb was
    /// not written).
    fn suspend_can_finish(&self) -> Result<bool, String> {
        if self.tasks.iter().any(|(t, _)| t == "zfs_suspend_fs") {
            return Ok(false);
        }
        let n = self.list.len();
        for (k, &h) in self.list.iter().enumerate() {
            let s = self.rd(h, L_STATE)?;
            let ok = s == FLUSH_DONE || (k + 1 == n && (s == NEW || s == OPENED));
            if !ok {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The end of `zil_suspend`: once nothing is in flight, `zil_destroy`
    /// frees every lwb.
    fn zil_suspend_finish(&mut self) -> Result<(), String> {
        self.set("zfs_suspend_fs", "zil_destroy");
        for h in std::mem::take(&mut self.list) {
            let s = self.rd(h, L_STATE)?;
            if s == FLUSH_DONE {
                self.checkpoint_seq = self.checkpoint_seq.max(self.rd(h, L_MAX_SEQ)?);
            }
            if s == OPENED || s == NEW {
                // The records of an OPENED lwb were never written: freeing
                // it with its itxs is #17509's VERIFY.
                let n = self.rd(h, L_ITXS)?;
                if n > 0 {
                    return Err(format!(
                        "panic: VERIFY(list_is_empty(&lwb->lwb_itxs)) failed in zil_free_lwb() via zil_destroy()/zil_suspend(): lwb {} {} still holds {n} itxs",
                        self.seq(h),
                        state_name(s)
                    ));
                }
            }
            self.free_lwb(h)?;
        }
        self.head = Blkptr::HOLE;
        self.suspended = true;
        self.note(|_| "suspended: chain destroyed".into());
        Ok(())
    }

    fn drain(&mut self) -> Result<(), String> {
        self.faults.io_errors = false;
        self.faults.flush_errors = false;
        for _ in 0..DRAIN_ROUNDS_MAX {
            self.step += 1;
            if !self.tasks.is_empty() {
                let j = self.rng.below(self.tasks.len() as u64) as usize;
                self.run_task(j)?;
                continue;
            }
            if !self.devio.is_empty() {
                self.now_ns += 2_000_000;
                self.complete(false)?;
                continue;
            }
            // Nothing in flight: waiters time out and close their lwbs.
            self.now_ns += COMMIT_TIMEOUT_NS;
            let mut any = false;
            for i in 0..self.committers.len() {
                if let CState::Waiting { zcw, upto, .. } = self.committers[i] {
                    any = true;
                    self.commit_waiter(i, zcw, upto, 0)?;
                }
            }
            if self.suspending.is_some() && !self.suspended && self.suspend_can_finish()? {
                self.zil_suspend_finish()?;
                continue;
            }
            if !any {
                return Ok(());
            }
        }
        Err("drain: a commit never completed (hang)".into())
    }

    // ---- the oracle ------------------------------------------------

    fn power_cut(&mut self) -> Result<(), String> {
        let step = self.step;
        self.note(|m| {
            format!(
                "POWER CUT at step {step}; records ..={} acknowledged",
                m.acked_upto
            )
        });
        self.check(None)
            .map_err(|e| format!("power cut (every unflushed write lost): {e}"))?;
        for k in 0..CRASH_IMAGES_PER_CUT {
            let mut r = self.rng.fork();
            self.check(Some(&mut r))
                .map_err(|e| format!("power cut (image {k}, torn sectors): {e}"))?;
        }
        Ok(())
    }

    /// Walk the chain as the model's `zil_parse` does and check every
    /// acknowledged record.
    fn check(&mut self, rng: Option<&mut Rng>) -> Result<(), String> {
        self.crash_states += 1;
        if self.suspended {
            return Ok(());
        }
        let img = self.disks.crash_image(rng);
        let b15132 = on(self.bug, BugName::Pr15132);
        let b16308 = on(self.bug, BugName::Pr16308);
        let mut found: HashMap<u64, u64> = HashMap::new();
        let mut bp = self.head;
        let mut crafted_done = false;
        for _ in 0..10_000 {
            if bp.is_hole() {
                break;
            }
            let mut block = vec![0u8; bp.psize_bytes() as usize];
            img.read(bp.vdev(), bp.offset_bytes(), &mut block);
            let verifier = bp.verifier();
            let mut accepted = match format::verify_block(&block, &verifier, BlockFormat::Slim) {
                // Before #15132's fix the reader refused any hole next
                // pointer (`BP_IS_HOLE`), like a torn block; `verify_block`
                // follows the fixed reader and accepts one that carries the
                // next verifier.
                Ok(vb) if b15132 && vb.next().is_hole() => None,
                Ok(vb) => Some((vb.records_start_bytes, vb.records_end_bytes, vb.next())),
                // #15132's fix: a block whose next pointer is a hole (the
                // next block could not be allocated) is replayed, and ends
                // the chain. Before the fix it was rejected like a torn one.
                Err(BlockError::NextIsHole) if !b15132 => {
                    // Accepted when the hole still carries this chain's
                    // next verifier (OpenZFS keeps the memcmp).
                    let nused =
                        u64::from_le_bytes(block[136..144].try_into().expect("8 bytes")) as usize;
                    let next = Blkptr::decode(&block[8..136]).unwrap_or(Blkptr::HOLE);
                    ((format::ZIL_CHAIN_BYTES..=block.len()).contains(&nused)
                        && next.cksum == verifier.next_in_chain())
                    .then_some((format::ZIL_CHAIN_BYTES, nused, Blkptr::HOLE))
                }
                Err(_) => None,
            };
            if accepted.is_none() && self.faults.crafted && !crafted_done {
                // The end of the chain. A crafted pool (fault `crafted`)
                // holds, right here, a block that verifies but whose last
                // record claims an absurd length.
                crafted_done = true;
                block.fill(0);
                let c = LrCommon {
                    txtype: format::TX_SETATTR,
                    reclen: 0x0010_0000,
                    txg: self.txg,
                    seq: u64::MAX / 2,
                };
                c.encode(&mut block[format::ZIL_CHAIN_BYTES..])
                    .ok_or("encode")?;
                let next = Blkptr::log_block(0, 1 << 40, 4096, verifier.next_in_chain(), self.txg);
                format::seal_slim_block(&mut block, format::ZIL_CHAIN_BYTES + 64, &next, &verifier)
                    .map_err(|e| format!("seal: {e:?}"))?;
                accepted = format::verify_block(&block, &verifier, BlockFormat::Slim)
                    .ok()
                    .map(|vb| (vb.records_start_bytes, vb.records_end_bytes, vb.next()));
            }
            let Some((start, end, next)) = accepted else {
                break;
            };
            let area = &block[start..end];
            let mut off = 0usize;
            let mut recs = Vec::new();
            let mut stop = false;
            while off < area.len() {
                let Some(c) = LrCommon::decode(&area[off..]) else {
                    stop = true;
                    break;
                };
                let reclen = c.reclen as usize;
                if !b16308 && (reclen < 32 || reclen > area.len() - off) {
                    // #16308's fix: a bad length ends the chain cleanly.
                    stop = true;
                    break;
                }
                let Some(rec) = area.get(off..off.saturating_add(reclen)) else {
                    return Err(format!(
                        "zil_parse(): out-of-bounds read: lrc_reclen = {reclen:#x} at offset {} of a {}-byte log block (seq {}) runs {} bytes past its end (#16308: unchecked record length)",
                        start + off,
                        block.len(),
                        verifier.seq(),
                        off + reclen - area.len()
                    ));
                };
                let id = rec
                    .get(32..40)
                    .map(|b| u64::from_le_bytes(b.try_into().expect("8")))
                    .unwrap_or(0);
                let len = self
                    .records
                    .get((id as usize).wrapping_sub(1))
                    .copied()
                    .unwrap_or(0);
                let intact = len > 0
                    && rec.get(32..32 + len as usize) == Some(&opaque_body(id, len as usize)[..]);
                recs.push((c.seq, if intact { id } else { 0 }));
                off += reclen.max(32);
            }
            found.extend(recs);
            if stop {
                break;
            }
            bp = next;
        }
        for id in 1..=self.acked_upto {
            let Some(&seq) = self.seq_of.get(&id) else {
                return Err(format!(
                    "record {id} acknowledged but never placed in an lwb"
                ));
            };
            if seq <= self.checkpoint_seq {
                continue;
            }
            if found.get(&seq) != Some(&id) {
                return Err(format!(
                    "acknowledged record {id} (lr_seq {seq}) lost after power cut (chain from block seq {}, checkpoint lr_seq {})",
                    self.head.verifier().seq(),
                    self.checkpoint_seq
                ));
            }
        }
        Ok(())
    }
}
