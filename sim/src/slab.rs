//! Trashing object pools, as FreeBSD's UMA does under INVARIANTS: a freed
//! item is filled with `0xdeadc0de`; on reuse the fill is checked, and any
//! byte that changed is reported as "modified after free" with the item,
//! the byte offset and the simulator step.
//!
//! [`TrashSlab`] holds real Rust objects (the core's `LwbObj`) and hands
//! them out as [`SlabBox`]es, the platform's `LwbBox`. Safe Rust cannot
//! read through a dropped box, so for the real core the slab's job is to
//! prove the pool discipline (every object dropped exactly once, nothing
//! written to a free slot) and to make the core's generation checks the
//! only way a stale handle could ever name an object.
//!
//! This module also provides the simulator's lock, [`SimRawMutex`]: one
//! thread runs at a time (the scheduler, or one [`crate::baton`] worker it
//! handed the baton to), and a worker parks only where it holds no core
//! lock, so a lock that is already held is held by the running thread
//! itself and can never be released by anyone else; taking it again is a
//! deadlock, reported as a panic (a failure with its seed) instead of a
//! hang. Each thread counts the simulator locks it holds
//! ([`sim_locks_held_here`]), so a yield point can tell that the core
//! called the platform with a lock held.

use core::cell::UnsafeCell;
use core::mem::{size_of, MaybeUninit};
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::string::String;
use std::sync::Mutex;
use std::vec::Vec;

/// UMA's junk word (`uma_junk`, sys/vm/uma_dbg.c).
pub const TRASH_WORD: u32 = 0xdead_c0de;
/// A 64-bit field read from a trashed item.
pub const TRASH_U64: u64 = 0xdead_c0de_dead_c0de;

fn trash_byte(i: usize) -> u8 {
    TRASH_WORD.to_ne_bytes()[i % 4]
}

/// One slot: the object's storage; `live` says whether it holds an object.
struct Slot<T> {
    cell: UnsafeCell<MaybeUninit<T>>,
}

#[derive(Debug, Default)]
struct SlabMeta {
    free: Vec<usize>,
    live: Vec<bool>,
    allocs: u64,
    frees: u64,
    /// Allocations refused because every slot was in use.
    refusals: u64,
}

/// A fixed-capacity pool of `T` that trashes freed items.
///
/// # Invariants
///
/// * A slot index is either on `meta.free` (its bytes hold the trash fill,
///   `meta.live[i] == false`) or owned by exactly one [`SlabBox`] (it holds
///   an initialised `T`, `meta.live[i] == true`).
/// * Only the owning box touches a live slot's memory; only the slab (under
///   `meta`'s lock) touches a free slot's memory.
pub struct TrashSlab<T> {
    slots: Vec<Slot<T>>,
    meta: Mutex<SlabMeta>,
    /// "modified after free" reports: (slot, byte offset, step).
    violations: Mutex<Vec<String>>,
    /// The simulator's step counter, for reports.
    step: AtomicU64,
    name: &'static str,
}

// SAFETY: the slab hands each live slot to exactly one `SlabBox` (type
// invariant), so concurrent access to a slot's `UnsafeCell` never happens
// from two places; free slots are only touched under `meta`'s mutex. `T:
// Send` because boxes may be dropped (and the object moved out) on another
// thread.
unsafe impl<T: Send> Sync for TrashSlab<T> {}

impl<T> core::fmt::Debug for TrashSlab<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TrashSlab")
            .field("name", &self.name)
            .field("capacity", &self.slots.len())
            .finish_non_exhaustive()
    }
}

impl<T> TrashSlab<T> {
    /// A pool named `name` with room for `capacity` objects, every slot
    /// pre-trashed (as UMA's `trash_init` fills a fresh item).
    pub fn new(name: &'static str, capacity: usize) -> Self {
        let slots: Vec<Slot<T>> = (0..capacity)
            .map(|_| Slot {
                cell: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        for s in &slots {
            // SAFETY: the slab is being built; nothing else can reach the
            // slot. Writing `size_of::<T>()` bytes stays inside the
            // `MaybeUninit<T>` the pointer names.
            unsafe { fill_trash(s.cell.get().cast::<u8>(), size_of::<T>()) };
        }
        Self {
            slots,
            meta: Mutex::new(SlabMeta {
                free: (0..capacity).rev().collect(),
                live: vec![false; capacity],
                ..Default::default()
            }),
            violations: Mutex::new(Vec::new()),
            step: AtomicU64::new(0),
            name,
        }
    }

    /// Tell the slab the current simulator step (for reports).
    pub fn set_step(&self, step: u64) {
        self.step.store(step, Ordering::Relaxed);
    }

    /// Put `value` into a free slot, first checking the slot's trash fill.
    /// `None` when the pool is empty.
    pub fn alloc(&self, value: T) -> Option<SlabBox<'_, T>> {
        let mut meta = self.meta.lock().expect("slab meta");
        let Some(i) = meta.free.pop() else {
            meta.refusals += 1;
            return None;
        };
        let p = self.slots[i].cell.get().cast::<u8>();
        // SAFETY: slot `i` was free (no box owns it) and we hold `meta`'s lock,
        // so only we touch it; `fill_trash` wrote all its `size_of::<T>()`
        // bytes, so they are initialised `u8`s.
        let bad = unsafe { first_untrashed(p, size_of::<T>()) };
        if let Some(off) = bad {
            let step = self.step.load(Ordering::Relaxed);
            self.violations
                .lock()
                .expect("slab violations")
                .push(format!(
                    "{}: item {i} modified after free at byte {off} (found on reuse, step {step})",
                    self.name
                ));
        }
        // SAFETY: as above, the slot is exclusively ours; it is properly
        // aligned storage for a `T` (a `MaybeUninit<T>`).
        unsafe { (*self.slots[i].cell.get()).write(value) };
        meta.live[i] = true;
        meta.allocs += 1;
        Some(SlabBox {
            slab: self,
            index: i,
        })
    }

    /// Objects handed out and not yet returned.
    pub fn live(&self) -> usize {
        let m = self.meta.lock().expect("slab meta");
        m.live.iter().filter(|&&l| l).count()
    }

    /// (allocations, frees) so far.
    pub fn counts(&self) -> (u64, u64) {
        let m = self.meta.lock().expect("slab meta");
        (m.allocs, m.frees)
    }

    /// Allocations refused so far because the pool was empty.
    pub fn refusals(&self) -> u64 {
        self.meta.lock().expect("slab meta").refusals
    }

    /// Every "modified after free" report so far.
    pub fn violations(&self) -> Vec<String> {
        self.violations.lock().expect("slab violations").clone()
    }

    /// Scribble on a free slot, as a write through a stale pointer would:
    /// the next allocation of that slot must report it. Returns the slot
    /// written, or `None` when no slot is free. (For the slab's own tests.)
    pub fn scribble_on_free_slot(&self, byte_offset: usize) -> Option<usize> {
        let meta = self.meta.lock().expect("slab meta");
        let i = *meta.free.last()?;
        let off = byte_offset % size_of::<T>().max(1);
        // SAFETY: slot `i` is free (no box owns it) and we hold `meta`'s
        // lock; `off < size_of::<T>()` keeps the write inside the slot.
        unsafe { *self.slots[i].cell.get().cast::<u8>().add(off) ^= 0xff };
        Some(i)
    }

    fn free(&self, i: usize) {
        let mut meta = self.meta.lock().expect("slab meta");
        assert!(meta.live[i], "{}: double free of item {i}", self.name);
        let p = self.slots[i].cell.get();
        // SAFETY: the box owning slot `i` is being dropped and calls this once;
        // the slot holds a live, initialised `T`. After `drop_in_place` its
        // bytes are dead, and the trash fill stays within the slot.
        unsafe {
            core::ptr::drop_in_place((*p).as_mut_ptr());
            fill_trash(p.cast::<u8>(), size_of::<T>());
        }
        meta.live[i] = false;
        meta.free.push(i);
        meta.frees += 1;
    }
}

/// Fill `len` bytes at `p` with the trash pattern.
///
/// # Safety
///
/// `p..p+len` must be valid for writes and not referenced by anyone else.
unsafe fn fill_trash(p: *mut u8, len: usize) {
    for i in 0..len {
        // SAFETY: `i < len`, within the range the caller vouches for.
        unsafe { p.add(i).write(trash_byte(i)) };
    }
}

/// The offset of the first byte that is not the trash pattern.
///
/// # Safety
///
/// `p..p+len` must be valid for reads, initialised, and not written by
/// anyone else during the call.
unsafe fn first_untrashed(p: *const u8, len: usize) -> Option<usize> {
    // SAFETY: `i < len`, within the range the caller vouches for.
    (0..len).find(|&i| unsafe { p.add(i).read() } != trash_byte(i))
}

/// An object owned from a [`TrashSlab`]; dropping it trashes the slot.
pub struct SlabBox<'a, T> {
    slab: &'a TrashSlab<T>,
    index: usize,
}

impl<T> SlabBox<'_, T> {
    /// The slot this object lives in.
    pub fn slot(&self) -> usize {
        self.index
    }
}

impl<T: core::fmt::Debug> core::fmt::Debug for SlabBox<'_, T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SlabBox")
            .field("slot", &self.index)
            .field("obj", &**self)
            .finish()
    }
}

impl<T> Deref for SlabBox<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: this box owns slot `index`, which holds an initialised
        // `T` until the box is dropped (slab invariant); the shared borrow
        // of `self` keeps `&mut` access through this box away meanwhile.
        unsafe { (*self.slab.slots[self.index].cell.get()).assume_init_ref() }
    }
}

impl<T> DerefMut for SlabBox<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as for `deref`; `&mut self` makes this the only access.
        unsafe { (*self.slab.slots[self.index].cell.get()).assume_init_mut() }
    }
}

impl<T> Drop for SlabBox<'_, T> {
    fn drop(&mut self) {
        self.slab.free(self.index);
    }
}

// SAFETY: a `SlabBox` is the unique owner of its `T` (slab invariant), so
// sending it sends the `T`; the slab reference is `Sync` for `T: Send`.
unsafe impl<T: Send> Send for SlabBox<'_, T> {}

thread_local! {
    /// [`SimRawMutex`]es this thread holds.
    static HELD: core::cell::Cell<u32> = const { core::cell::Cell::new(0) };
}

/// How many simulator locks (the core's `zl_issuer_lock` and `zl_lock`)
/// this thread holds now.
pub fn sim_locks_held_here() -> u32 {
    HELD.with(|h| h.get())
}

/// The simulator's mutex: one thread runs at a time and none parks
/// holding one of these, so finding a lock held means the running thread
/// holds it, a self-deadlock. It panics (the seed is reported) instead of
/// hanging.
#[derive(Debug)]
pub struct SimRawMutex(AtomicBool);

// SAFETY: `lock` returns only after it atomically changed `false` to
// `true` (it panics otherwise), and `try_lock` reports success only then,
// so at most one holder exists at a time; `unlock` is only called by that
// holder (lock_api's contract) and releases with `Release` ordering paired
// with the `Acquire` of the next acquisition.
unsafe impl lock_api::RawMutex for SimRawMutex {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = SimRawMutex(AtomicBool::new(false));
    type GuardMarker = lock_api::GuardSend;

    fn lock(&self) {
        assert!(
            self.try_lock(),
            "simulated deadlock: a lock taken twice by the one thread that runs every actor"
        );
    }

    fn try_lock(&self) -> bool {
        let got = self
            .0
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_ok();
        if got {
            HELD.with(|h| h.set(h.get() + 1));
        }
        got
    }

    unsafe fn unlock(&self) {
        // The core never sends a guard to another thread, so the unlocking
        // thread is the one that counted the lock.
        HELD.with(|h| h.set(h.get().saturating_sub(1)));
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_then_reuse_is_clean_and_scribble_is_reported() {
        let slab: TrashSlab<[u64; 4]> = TrashSlab::new("test", 2);
        let a = slab.alloc([1, 2, 3, 4]).unwrap();
        let b = slab.alloc([5, 6, 7, 8]).unwrap();
        assert!(slab.alloc([0; 4]).is_none(), "capacity is a bound");
        assert_eq!(a[2], 3);
        drop(a);
        drop(b);
        assert_eq!(slab.live(), 0);
        let again = slab.alloc([9; 4]).unwrap();
        assert!(slab.violations().is_empty());
        drop(again);
        slab.set_step(42);
        let hit = slab.scribble_on_free_slot(5).unwrap();
        let _c = slab.alloc([0; 4]).unwrap();
        let v = slab.violations();
        assert_eq!(v.len(), 1, "{v:?}");
        assert!(v[0].contains(&format!("item {hit} modified after free at byte 5")));
        assert!(v[0].contains("step 42"));
    }

    #[test]
    fn dropping_a_box_runs_the_objects_drop() {
        use std::rc::Rc;
        let slab: TrashSlab<Option<Rc<u8>>> = TrashSlab::new("rc", 1);
        let rc = Rc::new(7);
        let b = slab.alloc(Some(rc.clone())).unwrap();
        assert_eq!(Rc::strong_count(&rc), 2);
        drop(b);
        assert_eq!(Rc::strong_count(&rc), 1);
    }

    #[test]
    fn held_locks_are_counted_per_thread() {
        let a = lock_api::Mutex::<SimRawMutex, ()>::new(());
        let b = lock_api::Mutex::<SimRawMutex, ()>::new(());
        assert_eq!(sim_locks_held_here(), 0);
        let ga = a.lock();
        let gb = b.try_lock().expect("free");
        assert!(a.try_lock().is_none());
        assert_eq!(sim_locks_held_here(), 2);
        std::thread::scope(|s| {
            s.spawn(|| assert_eq!(sim_locks_held_here(), 0));
        });
        drop(gb);
        assert_eq!(sim_locks_held_here(), 1);
        drop(ga);
        assert_eq!(sim_locks_held_here(), 0);
    }

    #[test]
    #[should_panic(expected = "simulated deadlock")]
    fn taking_a_held_lock_panics() {
        use lock_api::RawMutex;
        let m = SimRawMutex::INIT;
        m.lock();
        m.lock();
    }
}
