//! mtx(9) as a `lock_api::RawMutex`, and condvar(9) beside it.
//!
//! WITNESS knows locks by name. The core's `zl_issuer_lock` is a
//! [`KIssuerMutex`] ([`ISSUER_MTX_NAME`]) and its `zl_lock` a [`KMutex`]
//! named [`CORE_MTX_NAME`] (`Platform::IssuerRawMutex` and
//! `Platform::RawMutex`), so WITNESS checks the issuer → `zl_lock` order.
//! `zl_lock` keeps `MTX_DUPOK` because several attached instances share
//! its class. Locks of the kernel platform's own are built with
//! [`KMutex::named`] and keep full checking.
//!
//! `lock_api::RawMutex::INIT` must be a constant, but a FreeBSD mutex must
//! be set up by `mtx_init(9)` at run time (it registers the lock with
//! WITNESS under its name). [`KMutex`] therefore starts uninitialised and
//! runs `mtx_init` on first use, exactly once; `mtx_destroy` runs when it
//! is dropped. The first use may come from several threads at once (the
//! committers' first appends), so the check and the `mtx_init` run under
//! the shim's spin mutex ([`init_once`]): a thread that finds another's
//! set-up under way waits in `mtx_lock_spin`, whose holder cannot be
//! preempted, instead of spinning on a flag, which could hold the CPU of a
//! preempted initializer forever.
//!
//! # Invariants
//!
//! * A `KMutex` is never moved after its first lock: WITNESS and the
//!   turnstiles know the `struct mtx` by address. The platform guarantees
//!   it by building every object that holds one in place (the instance
//!   memory the C shim allocates, UMA items) and never moving it after.
//! * `state == READY` iff `mtx_init` has completed and `mtx_destroy` has
//!   not run; it becomes READY only under the shim's set-up lock.

use crate::ffi;
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU8, Ordering};

const UNINIT: u8 = 0;
const READY: u8 = 1;

/// Run `init` once for the object whose state is `state`: the first
/// caller runs it under the shim's set-up spin mutex and publishes READY;
/// every later caller returns at the first load, and one that comes while
/// `init` runs waits for the spin mutex.
///
/// `init` must neither sleep nor take a sleep lock (it runs with a spin
/// mutex held): `mtx_init` and `cv_init` do neither.
fn init_once(state: &AtomicU8, init: impl FnOnce()) {
    if state.load(Ordering::Acquire) == READY {
        return;
    }
    // SAFETY: takes the shim's static spin mutex, set up by MTX_SYSINIT
    // before any module code runs and torn down after; released below on
    // the only path out.
    unsafe { ffi::rzil_shim_init_lock() };
    if state.load(Ordering::Relaxed) != READY {
        init();
        state.store(READY, Ordering::Release);
    }
    // SAFETY: this thread took it above.
    unsafe { ffi::rzil_shim_init_unlock() };
}

/// The WITNESS name of the core's locks (see the module documentation).
pub const CORE_MTX_NAME: &core::ffi::CStr = c"rzil core";
/// The name condition variables show in `ps -l`/procstat (wchan).
const CV_NAME: &core::ffi::CStr = c"rzilcv";

/// A FreeBSD default (sleep) mutex, `MTX_DEF`.
pub struct KMutex {
    state: AtomicU8,
    name: &'static core::ffi::CStr,
    dupok: bool,
    mtx: UnsafeCell<MaybeUninit<ffi::mtx>>,
}

// SAFETY: the `struct mtx` is only touched through mtx(9), which is safe to
// call from any thread; `state` is atomic.
unsafe impl Sync for KMutex {}
// SAFETY: an unlocked (or never initialised) mutex may be handed to another
// thread; locked ones are pinned by the invariant above.
unsafe impl Send for KMutex {}

impl KMutex {
    /// An uninitialised core mutex; `mtx_init` runs on first lock.
    pub const fn new() -> Self {
        KMutex {
            state: AtomicU8::new(UNINIT),
            name: CORE_MTX_NAME,
            dupok: true,
            mtx: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// A mutex WITNESS knows as `name`, with full lock-order checking.
    pub const fn named(name: &'static core::ffi::CStr) -> Self {
        KMutex {
            state: AtomicU8::new(UNINIT),
            name,
            dupok: false,
            mtx: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    /// The address of the `struct mtx`, for the shim and for condvars.
    pub fn as_ptr(&self) -> *mut ffi::mtx {
        self.init_once();
        self.mtx.get().cast()
    }

    fn init_once(&self) {
        init_once(&self.state, || {
            // SAFETY: run once, under the set-up lock, before READY is
            // published (no other thread touches the storage); it does not
            // move (type invariant); the name is a static C string.
            unsafe {
                ffi::rzil_shim_mtx_init(
                    self.mtx.get().cast(),
                    self.name.as_ptr(),
                    i32::from(self.dupok),
                )
            }
        });
    }
}

impl core::fmt::Debug for KMutex {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KMutex")
            .field(
                "initialized",
                &(self.state.load(Ordering::Relaxed) == READY),
            )
            .finish()
    }
}

impl Default for KMutex {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for KMutex {
    fn drop(&mut self) {
        if *self.state.get_mut() == READY {
            // SAFETY: READY means mtx_init ran and mtx_destroy did not;
            // `&mut self` means nobody holds or waits for the lock.
            unsafe { ffi::rzil_shim_mtx_destroy(self.mtx.get().cast()) };
            *self.state.get_mut() = UNINIT;
        }
    }
}

// SAFETY: mtx(9) provides mutual exclusion between `lock`/`try_lock`
// success and `unlock`; the guard is not Send because mtx_unlock must run on
// the owning thread.
unsafe impl lock_api::RawMutex for KMutex {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = KMutex::new();
    type GuardMarker = lock_api::GuardNoSend;

    fn lock(&self) {
        let m = self.as_ptr();
        // SAFETY: `m` is an initialised mtx (as_ptr ran init_once).
        unsafe { ffi::rzil_shim_mtx_lock(m) }
    }

    fn try_lock(&self) -> bool {
        let m = self.as_ptr();
        // SAFETY: as in `lock`.
        unsafe { ffi::rzil_shim_mtx_trylock(m) != 0 }
    }

    unsafe fn unlock(&self) {
        // SAFETY: the caller holds the lock (lock_api's contract), so the
        // mtx is initialised and owned by this thread.
        unsafe { ffi::rzil_shim_mtx_unlock(self.mtx.get().cast()) }
    }
}

/// The WITNESS name of the core's `zl_issuer_lock`.
pub const ISSUER_MTX_NAME: &core::ffi::CStr = c"rzil issuer";

/// The core's `zl_issuer_lock`: a [`KMutex`] of its own lock class, so
/// WITNESS checks that it is always taken before `zl_lock` ("rzil core").
#[derive(Debug)]
pub struct KIssuerMutex(KMutex);

// SAFETY: delegates every operation to the inner KMutex, whose contract
// (mutual exclusion from lock/try_lock success to unlock) it inherits.
unsafe impl lock_api::RawMutex for KIssuerMutex {
    #[allow(clippy::declare_interior_mutable_const)]
    const INIT: Self = KIssuerMutex(KMutex::named(ISSUER_MTX_NAME));
    type GuardMarker = lock_api::GuardNoSend;

    fn lock(&self) {
        lock_api::RawMutex::lock(&self.0)
    }

    fn try_lock(&self) -> bool {
        lock_api::RawMutex::try_lock(&self.0)
    }

    unsafe fn unlock(&self) {
        // SAFETY: the caller holds the lock (lock_api's contract), so it
        // holds the inner mutex.
        unsafe { lock_api::RawMutex::unlock(&self.0) }
    }
}

/// A `lock_api` mutex over mtx(9).
pub type Mutex<T> = lock_api::Mutex<KMutex, T>;

/// A platform mutex WITNESS knows as `name`.
pub const fn named_mutex<T>(name: &'static core::ffi::CStr, value: T) -> Mutex<T> {
    lock_api::Mutex::from_raw(KMutex::named(name), value)
}
/// Its guard.
pub type MutexGuard<'a, T> = lock_api::MutexGuard<'a, KMutex, T>;

/// A condition variable (condvar(9)) used with one [`Mutex`].
///
/// # Invariants
///
/// Same as [`KMutex`]: not moved after first use; `ready` iff `cv_init`
/// ran and `cv_destroy` did not.
pub struct KCondvar {
    state: AtomicU8,
    cv: UnsafeCell<MaybeUninit<ffi::cv>>,
}

// SAFETY: condvar(9) may be used from any thread; `state` is atomic.
unsafe impl Sync for KCondvar {}
// SAFETY: as for KMutex.
unsafe impl Send for KCondvar {}

/// Why a [`KCondvar`] wait returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitResult {
    /// Woken (or spuriously returned); re-check the condition.
    Woken,
    /// The timeout elapsed.
    TimedOut,
    /// A signal arrived: the errno to return, `EINTR` or `ERESTART` (the
    /// syscall restarts when the handler was installed with `SA_RESTART`).
    Interrupted(i32),
}

impl KCondvar {
    /// An uninitialised condvar; `cv_init` runs on first use.
    pub const fn new() -> Self {
        KCondvar {
            state: AtomicU8::new(UNINIT),
            cv: UnsafeCell::new(MaybeUninit::uninit()),
        }
    }

    fn as_ptr(&self) -> *mut ffi::cv {
        init_once(&self.state, || {
            // SAFETY: run once under the set-up lock before READY is
            // published; the storage does not move; the name is static.
            unsafe { ffi::rzil_shim_cv_init(self.cv.get().cast(), CV_NAME.as_ptr()) }
        });
        self.cv.get().cast()
    }

    /// Sleep until [`KCondvar::broadcast`], `timeout_ns`, or a signal to
    /// the sleeping thread (`cv_timedwait_sig_sbt`): every sleep of the
    /// module is on behalf of a user thread (the commit ioctl), which must
    /// stay killable. The guard's mutex is released while asleep and held
    /// again on return.
    pub fn wait_timeout_sig_ns<T>(
        &self,
        guard: &mut MutexGuard<'_, T>,
        timeout_ns: u64,
    ) -> WaitResult {
        let cv = self.as_ptr();
        let m = lock_api::MutexGuard::mutex(guard);
        // SAFETY: the raw mutex is locked by this thread (we hold its
        // guard) and initialised; cv_timedwait_sig_sbt drops and re-takes
        // it, also when a signal ends the wait, so the guard stays valid.
        let m_ptr = unsafe { m.raw() }.as_ptr();
        // SAFETY: `cv` and `m_ptr` are initialised and owned as above.
        let rc = unsafe { ffi::rzil_shim_cv_timedwait_sig_ns(cv, m_ptr, timeout_ns) };
        match rc {
            0 => WaitResult::Woken,
            rc if rc as u32 == ffi::EWOULDBLOCK => WaitResult::TimedOut,
            rc => WaitResult::Interrupted(rc),
        }
    }

    /// Wake every thread sleeping on this condvar.
    pub fn broadcast(&self) {
        let cv = self.as_ptr();
        // SAFETY: `cv` is initialised; cv_broadcast may be called with or
        // without the associated mutex held.
        unsafe { ffi::rzil_shim_cv_broadcast(cv) }
    }
}

impl core::fmt::Debug for KCondvar {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("KCondvar")
            .field(
                "initialized",
                &(self.state.load(Ordering::Relaxed) == READY),
            )
            .finish()
    }
}

impl Default for KCondvar {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for KCondvar {
    fn drop(&mut self) {
        if *self.state.get_mut() == READY {
            // SAFETY: initialised and not destroyed; `&mut self` means no
            // thread sleeps on it.
            unsafe { ffi::rzil_shim_cv_destroy(self.cv.get().cast()) };
            *self.state.get_mut() = UNINIT;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The set-up protocol on the host, with stand-ins for the shim: many
    //! threads' first uses of one mutex or condvar run its `mtx_init` or
    //! `cv_init` exactly once, and only with the set-up lock held. (That a
    //! waiter cannot starve a preempted initializer is a property of the
    //! kernel's spin mutexes, which no host test can show.)
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize};
    use std::sync::Arc;

    const THREADS: usize = 8;

    static SETUP_HELD: AtomicBool = AtomicBool::new(false);
    static INITS: AtomicUsize = AtomicUsize::new(0);
    static INITS_UNLOCKED: AtomicUsize = AtomicUsize::new(0);

    fn count_init() {
        if !SETUP_HELD.load(Ordering::SeqCst) {
            INITS_UNLOCKED.fetch_add(1, Ordering::SeqCst);
        }
        INITS.fetch_add(1, Ordering::SeqCst);
        // Widen the window in which other first users arrive.
        std::thread::sleep(std::time::Duration::from_millis(5));
    }

    #[no_mangle]
    extern "C" fn rzil_shim_init_lock() {
        while SETUP_HELD
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            std::thread::yield_now();
        }
    }

    #[no_mangle]
    extern "C" fn rzil_shim_init_unlock() {
        assert!(SETUP_HELD.swap(false, Ordering::SeqCst), "not held");
    }

    #[no_mangle]
    extern "C" fn rzil_shim_mtx_init(
        _m: *mut ffi::mtx,
        _name: *const core::ffi::c_char,
        _dupok: core::ffi::c_int,
    ) {
        count_init();
    }

    #[no_mangle]
    extern "C" fn rzil_shim_mtx_destroy(_m: *mut ffi::mtx) {}

    #[no_mangle]
    extern "C" fn rzil_shim_cv_init(_cv: *mut ffi::cv, _name: *const core::ffi::c_char) {
        count_init();
    }

    #[no_mangle]
    extern "C" fn rzil_shim_cv_destroy(_cv: *mut ffi::cv) {}

    /// Run `first_use` on `THREADS` threads at once; (inits, inits made
    /// without the set-up lock).
    fn race(first_use: impl Fn() + Send + Sync + 'static) -> (usize, usize) {
        INITS.store(0, Ordering::SeqCst);
        INITS_UNLOCKED.store(0, Ordering::SeqCst);
        let first_use = Arc::new(first_use);
        let start = Arc::new(std::sync::Barrier::new(THREADS));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let (f, s) = (Arc::clone(&first_use), Arc::clone(&start));
                std::thread::spawn(move || {
                    s.wait();
                    f();
                })
            })
            .collect();
        for t in threads {
            t.join().expect("a first user panicked");
        }
        (
            INITS.load(Ordering::SeqCst),
            INITS_UNLOCKED.load(Ordering::SeqCst),
        )
    }

    // One test for both types: the stand-ins count into shared statics.
    #[test]
    fn concurrent_first_uses_set_up_once_under_the_setup_lock() {
        let m = Arc::new(KMutex::named(c"rzil test"));
        let m2 = Arc::clone(&m);
        assert_eq!(
            race(move || {
                let _ = m2.as_ptr();
            }),
            (1, 0),
            "KMutex"
        );
        assert!(!SETUP_HELD.load(Ordering::SeqCst));

        let cv = Arc::new(KCondvar::new());
        let cv2 = Arc::clone(&cv);
        assert_eq!(
            race(move || {
                let _ = cv2.as_ptr();
            }),
            (1, 0),
            "KCondvar"
        );
        assert!(!SETUP_HELD.load(Ordering::SeqCst));
    }
}
