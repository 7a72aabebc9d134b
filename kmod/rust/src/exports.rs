//! The `rzil_core_*` entry points the C shim calls (`kmod/rzil_kmod.h`).
//!
//! An instance ([`Instance`]) is built in place in memory the shim
//! allocates (`rzil_core_instance_size()` bytes), so nothing that holds a
//! kernel lock ever moves. Every function here validates what it is given
//! and answers with an errno; none panics on input from user space.

use crate::errno;
use crate::ffi;
use crate::kmem::{layout_of, zone_sizes, KSlots};
use crate::platform::{KIo, KPlatform};
use crate::sync::WaitResult;
use core::fmt::Write;
use core::ptr::{addr_of_mut, NonNull};
use core::sync::atomic::{AtomicU64, Ordering};
use rzil::error::{Error, IoError};
use rzil::itx::{Itx, Record, WriteData};
use rzil::limits::WR_COPIED_DATA_BYTES_MAX;
use rzil::lwb::{LwbObj, LwbState};
use rzil::platform::{AllocError, BlockAddr, IndirectBlock, IoKind, IoToken, Platform, WaiterId};
use rzil::zil::{Config, WaitStatus, Zil};

/// Longest sleep between two polls of a commit waiter that has no
/// deadline; a wake-up normally ends the sleep much earlier.
const COMMIT_SLEEP_NS_MAX: u64 = 1_000_000_000;
/// Object set id stamped into the kernel log's verifiers.
const KERNEL_OBJSET: u64 = 1;
/// Longest log line the core writes through the shim, in bytes.
const LOG_LINE_BYTES_MAX: usize = 160;

// The C and Rust views of the limits must agree.
const _: () = assert!(ffi::RZIL_LWB_STATES as usize == LwbState::COUNT);
const _: () = assert!(ffi::RZIL_RECORD_BYTES_MAX == WR_COPIED_DATA_BYTES_MAX);

/// The platform as the core holds it: a pointer to the [`KPlatform`] that
/// lives beside the core in the same [`Instance`].
///
/// # Invariants
///
/// Points to the `platform` field of a live `Instance`, which is dropped
/// only after the `Zil` holding this reference.
pub struct KRef(NonNull<KPlatform>);

// SAFETY: KPlatform is Sync and outlives every KRef (type invariant).
unsafe impl Sync for KRef {}
// SAFETY: as above.
unsafe impl Send for KRef {}

impl KRef {
    fn get(&self) -> &KPlatform {
        // SAFETY: type invariant: the KPlatform is alive and never moves.
        unsafe { self.0.as_ref() }
    }
}

impl core::fmt::Debug for KRef {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        self.get().fmt(f)
    }
}

impl Platform for KRef {
    type RawMutex = <KPlatform as Platform>::RawMutex;
    type IssuerRawMutex = <KPlatform as Platform>::IssuerRawMutex;
    type LwbBox = <KPlatform as Platform>::LwbBox;
    type ItxBox = <KPlatform as Platform>::ItxBox;
    type Buf = <KPlatform as Platform>::Buf;
    type Slots<T: Send> = KSlots<T>;

    fn now_ns(&self) -> u64 {
        self.get().now_ns()
    }
    fn random_u64(&self) -> u64 {
        self.get().random_u64()
    }
    fn alloc_lwb(&self, lwb: LwbObj) -> Result<Self::LwbBox, AllocError> {
        self.get().alloc_lwb(lwb)
    }
    fn alloc_itx(&self) -> Result<Self::ItxBox, AllocError> {
        self.get().alloc_itx()
    }
    fn alloc_buf(&self, size_bytes: u32) -> Result<Self::Buf, AllocError> {
        self.get().alloc_buf(size_bytes)
    }
    fn alloc_slots<T: Send>(
        &self,
        len: usize,
        init: impl FnMut(usize) -> T,
    ) -> Result<KSlots<T>, AllocError> {
        self.get().alloc_slots(len, init)
    }
    fn alloc_log_block(&self, size_bytes: u32) -> Result<BlockAddr, AllocError> {
        self.get().alloc_log_block(size_bytes)
    }
    fn free_log_block(&self, addr: BlockAddr) {
        self.get().free_log_block(addr)
    }
    fn submit_write(&self, io: IoToken, addr: BlockAddr, buf: Self::Buf, len_bytes: usize) {
        self.get().submit_write(io, addr, buf, len_bytes)
    }
    fn submit_flush(&self, io: IoToken, vdev: u32) {
        self.get().submit_flush(io, vdev)
    }
    fn get_data(&self, foid: u64, offset: u64, out: &mut [u8]) -> Result<(), IoError> {
        self.get().get_data(foid, offset, out)
    }
    fn submit_indirect(
        &self,
        io: IoToken,
        foid: u64,
        offset: u64,
        length: u64,
    ) -> Result<IndirectBlock, IoError> {
        self.get().submit_indirect(io, foid, offset, length)
    }
    fn wake(&self, waiter: WaiterId) {
        self.get().wake(waiter)
    }
    fn lwb_state_changed(&self, seq: u64, from: Option<LwbState>, to: LwbState) {
        self.get().lwb_state_changed(seq, from, to)
    }
}

/// One attached provider's core: the platform and the log on top of it.
///
/// The `Zil` is small (its tables are [`KSlots`] in malloc(9) memory), so
/// attach builds it on the ioctl thread's stack and moves it in.
pub struct Instance {
    platform: KPlatform,
    zil: Zil<KRef>,
    sc: *mut ffi::rzil_softc,
    commit_latency_ns_max: AtomicU64,
    io_errors: AtomicU64,
}

impl core::fmt::Debug for Instance {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Instance")
            .field("platform", &self.platform)
            .field("zil", &self.zil)
            .finish()
    }
}

impl Instance {
    /// The log of an attached instance.
    fn zil(&self) -> &Zil<KRef> {
        &self.zil
    }
}

/// A log line through the shim, formatted on the stack.
struct LogLine {
    bytes: [u8; LOG_LINE_BYTES_MAX],
    len: usize,
}

impl Write for LogLine {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let n = s.len().min(LOG_LINE_BYTES_MAX - self.len);
        self.bytes[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
        self.len += n;
        Ok(())
    }
}

fn log_fmt(args: core::fmt::Arguments<'_>) {
    let mut line = LogLine {
        bytes: [0; LOG_LINE_BYTES_MAX],
        len: 0,
    };
    // Truncation is the only possible failure, and it is fine for a log.
    let _ = line.write_fmt(args);
    // SAFETY: the shim reads exactly `len` initialised bytes.
    unsafe { ffi::rzil_shim_log(line.bytes.as_ptr().cast(), line.len) }
}

fn tunables() -> ffi::rzil_tunables {
    let mut t = ffi::rzil_tunables {
        rt_commit_timeout_pct: 0,
        rt_nocacheflush: 0,
        rt_max_block_size_bytes: 0,
    };
    // SAFETY: the shim fills the structure we pass by reference.
    unsafe { ffi::rzil_shim_tunables(&mut t) };
    t
}

/// Module load: report the zone item sizes the shim must create.
///
/// # Safety
///
/// `sizes` must point to a writable `struct rzil_zone_sizes`.
#[no_mangle]
pub unsafe extern "C" fn rzil_core_load(sizes: *mut ffi::rzil_zone_sizes) -> i32 {
    // SAFETY: caller's contract.
    let Some(sizes) = (unsafe { sizes.as_mut() }) else {
        return ffi::EINVAL as i32;
    };
    let (lwb, lwb_align) = layout_of::<LwbObj>();
    let (itx, itx_align) = layout_of::<Itx>();
    let (io, io_align) = layout_of::<KIo>();
    let align = lwb_align.max(itx_align).max(io_align);
    zone_sizes(sizes, lwb, itx, io, align);
    0
}

/// Module unload: nothing is left (every instance was detached).
#[no_mangle]
pub extern "C" fn rzil_core_unload() {}

/// Bytes the shim must allocate for one instance.
#[no_mangle]
pub extern "C" fn rzil_core_instance_size() -> usize {
    core::mem::size_of::<Instance>()
}

/// Alignment of that allocation.
#[no_mangle]
pub extern "C" fn rzil_core_instance_align() -> usize {
    core::mem::align_of::<Instance>()
}

/// Build an instance in `core` for the provider the shim attached.
///
/// # Safety
///
/// `core` must point to `rzil_core_instance_size()` writable bytes aligned
/// to `rzil_core_instance_align()` that hold no instance and do not move
/// until `rzil_core_detach`; `sc` must be the shim's softc for it, alive
/// until then; `geom` must be readable.
#[no_mangle]
pub unsafe extern "C" fn rzil_core_attach(
    core: *mut ffi::rzil_core,
    sc: *mut ffi::rzil_softc,
    geom: *const ffi::rzil_geometry,
) -> i32 {
    let inst = core.cast::<Instance>();
    // SAFETY: caller's contract: `geom` is readable.
    let Some(geom) = (unsafe { geom.as_ref() }) else {
        return ffi::EINVAL as i32;
    };
    if inst.is_null() || sc.is_null() {
        return ffi::EINVAL as i32;
    }
    let t = tunables();
    let Ok(platform) = KPlatform::new(sc, geom, t.rt_max_block_size_bytes) else {
        return ffi::ENOMEM as i32;
    };
    let mut config = Config::new(KERNEL_OBJSET);
    config.commit_timeout_pct = t.rt_commit_timeout_pct;
    config.nocacheflush = t.rt_nocacheflush != 0;
    config.max_block_bytes = t.rt_max_block_size_bytes;

    // SAFETY: `inst` is valid for writes and aligned (caller's contract);
    // each field is written once, in place, before anything reads it; the
    // platform is in its final place before the core takes a reference.
    unsafe {
        addr_of_mut!((*inst).platform).write(platform);
        addr_of_mut!((*inst).sc).write(sc);
        addr_of_mut!((*inst).commit_latency_ns_max).write(AtomicU64::new(0));
        addr_of_mut!((*inst).io_errors).write(AtomicU64::new(0));
    }
    // SAFETY: the platform field was just initialised and is not null.
    let kref = KRef(unsafe { NonNull::new_unchecked(addr_of_mut!((*inst).platform)) });
    match Zil::new(kref, config) {
        Ok(zil) => {
            // SAFETY: as above. The Zil's locks are still in their const
            // INIT state (no mtx_init yet), so moving it into place is
            // allowed; nothing has seen its address.
            unsafe { addr_of_mut!((*inst).zil).write(zil) };
            0
        }
        Err(e) => {
            log_fmt(format_args!(
                "instance {}: cannot start the log: {}",
                geom.rg_instance, e
            ));
            // SAFETY: the platform was written above and nothing else
            // refers to it now (the failed Zil::new dropped its KRef).
            unsafe { core::ptr::drop_in_place(addr_of_mut!((*inst).platform)) };
            errno::from_error(e)
        }
    }
}

/// # Safety
///
/// `core` must be an instance built by `rzil_core_attach` and not detached.
unsafe fn instance<'a>(core: *mut ffi::rzil_core) -> &'a Instance {
    // SAFETY: caller's contract.
    unsafe { &*core.cast::<Instance>() }
}

/// Whether the instance still has I/O in flight (detach must wait).
///
/// # Safety
///
/// As for [`instance`].
#[no_mangle]
pub unsafe extern "C" fn rzil_core_busy(core: *mut ffi::rzil_core) -> i32 {
    // SAFETY: caller's contract.
    let inst = unsafe { instance(core) };
    i32::from(inst.platform.inflight() != 0)
}

/// Tear the instance down. The shim calls it only when `rzil_core_busy`
/// is false and no ioctl is inside the core.
///
/// # Safety
///
/// As for [`instance`]; `core` is not used again afterwards.
#[no_mangle]
pub unsafe extern "C" fn rzil_core_detach(core: *mut ffi::rzil_core) {
    let inst = core.cast::<Instance>();
    // SAFETY: caller's contract: a live instance nobody else uses. The
    // Zil goes first (it holds a KRef into the platform), then the
    // platform; both return their objects to the UMA zones.
    unsafe {
        core::ptr::drop_in_place(addr_of_mut!((*inst).zil));
        core::ptr::drop_in_place(addr_of_mut!((*inst).platform));
    }
}

/// Assign one WR_COPIED TX_WRITE record.
///
/// # Safety
///
/// As for [`instance`]; `rec` must be readable and `payload` must point to
/// `rec.rr_payload_bytes` readable bytes (the shim copied them in).
#[no_mangle]
pub unsafe extern "C" fn rzil_core_append(
    core: *mut ffi::rzil_core,
    rec: *const ffi::rzil_ioc_append,
    payload: *const u8,
) -> i32 {
    // SAFETY: caller's contract.
    let inst = unsafe { instance(core) };
    // SAFETY: caller's contract.
    let Some(rec) = (unsafe { rec.as_ref() }) else {
        return ffi::EINVAL as i32;
    };
    let len = rec.rr_payload_bytes as usize;
    if payload.is_null() || len == 0 || len > WR_COPIED_DATA_BYTES_MAX as usize {
        return ffi::EFBIG as i32;
    }
    // SAFETY: caller's contract: `len` readable bytes at `payload`.
    let data = unsafe { core::slice::from_raw_parts(payload, len) };
    let record = Record::Write {
        foid: rec.rr_foid,
        offset: rec.rr_offset_bytes,
        data: WriteData::Copied(data),
    };
    match inst.zil().assign(inst.zil().config().txg, &record) {
        Ok(()) => 0,
        Err(e) => {
            if let Error::InvalidRecord(why) = e {
                log_fmt(format_args!("append refused: {why}"));
            }
            errno::from_error(e)
        }
    }
}

/// Commit everything assigned so far and sleep until it is durable or
/// failed (`zil_commit` + `zil_commit_waiter`).
///
/// # Safety
///
/// As for [`instance`]; `latency_ns` must be writable. May sleep.
#[no_mangle]
pub unsafe extern "C" fn rzil_core_commit(
    core: *mut ffi::rzil_core,
    _foid: u64,
    latency_ns: *mut u64,
) -> i32 {
    // SAFETY: caller's contract.
    let inst = unsafe { instance(core) };
    let p = &inst.platform;
    let start_ns = p.now_ns();
    let result = commit_and_wait(inst);
    let took_ns = p.now_ns().saturating_sub(start_ns);
    // SAFETY: caller's contract: writable.
    if let Some(out) = unsafe { latency_ns.as_mut() } {
        *out = took_ns;
    }
    match result {
        Ok(()) => {
            inst.commit_latency_ns_max
                .fetch_max(took_ns, Ordering::Relaxed);
            // SAFETY: `sc` is the live softc of this instance.
            unsafe { ffi::rzil_shim_commit_done(inst.sc, took_ns) };
            0
        }
        Err(CommitEnd::Core(e)) => errno::from_error(e),
        Err(CommitEnd::Interrupted(errno)) => errno,
    }
}

/// Why a commit ioctl returns without success.
enum CommitEnd {
    /// The core's answer (an I/O error, a failed log, back-pressure).
    Core(Error),
    /// A signal ended the sleep: `EINTR` or `ERESTART`. The waiter was
    /// abandoned; nothing was acknowledged.
    Interrupted(i32),
}

fn commit_and_wait(inst: &Instance) -> Result<(), CommitEnd> {
    let p = &inst.platform;
    let zil = inst.zil();
    let w = zil.commit().map_err(CommitEnd::Core)?;
    // Ends when the waiter is done: every lwb completes or fails, and
    // the commit timeout closes a lingering open lwb; or when a signal
    // ends a sleep (a commit held up by a full log, with nobody
    // checkpointing, would otherwise keep the thread forever).
    loop {
        let seen = p.wake_seq();
        let deadline_ns = match zil.waiter_poll(w).map_err(CommitEnd::Core)? {
            WaitStatus::Done(r) => return r.map_err(CommitEnd::Core),
            WaitStatus::Pending { deadline_ns, .. } => deadline_ns,
        };
        let now = p.now_ns();
        let sleep_ns = match deadline_ns {
            Some(d) if now >= d => {
                zil.waiter_timeout(w).map_err(CommitEnd::Core)?;
                continue;
            }
            Some(d) => d - now,
            None => COMMIT_SLEEP_NS_MAX,
        };
        if let WaitResult::Interrupted(errno) = p.sleep(seen, sleep_ns) {
            // The caller will not wait: the core forgets the waiter
            // without acknowledging its records (they are still written).
            let _ = zil.waiter_abandon(w);
            return Err(CommitEnd::Interrupted(errno));
        }
    }
}

/// Free the lwbs whose records are all durable.
///
/// # Safety
///
/// As for [`instance`].
#[no_mangle]
pub unsafe extern "C" fn rzil_core_checkpoint(core: *mut ffi::rzil_core) -> i32 {
    // SAFETY: caller's contract.
    let inst = unsafe { instance(core) };
    let result = inst.zil().checkpoint(inst.zil().durable_lr_seq());
    match result {
        Ok(_) => 0,
        Err(e) => errno::from_error(e),
    }
}

/// Fill the counters of the stats ioctl.
///
/// # Safety
///
/// As for [`instance`]; `st` must be writable.
#[no_mangle]
pub unsafe extern "C" fn rzil_core_stats(core: *mut ffi::rzil_core, st: *mut ffi::rzil_ioc_stats) {
    // SAFETY: caller's contract.
    let inst = unsafe { instance(core) };
    // SAFETY: caller's contract.
    let Some(st) = (unsafe { st.as_mut() }) else {
        return;
    };
    let s = inst.zil().stats();
    st.rs_records = s.records;
    st.rs_commits = s.commits;
    st.rs_lwbs_issued = s.lwbs_issued;
    st.rs_flushes = s.flushes;
    st.rs_bytes_written = s.write_bytes;
    st.rs_io_errors = inst.io_errors.load(Ordering::Relaxed);
    st.rs_commit_latency_ns_max = inst.commit_latency_ns_max.load(Ordering::Relaxed);
    inst.zil().for_each_lwb(|v| {
        if let Some(n) = st.rs_lwbs_in_state.get_mut(v.state as usize) {
            *n += 1;
        }
    });
}

/// A BIO_WRITE or BIO_FLUSH finished (taskqueue thread).
///
/// # Safety
///
/// As for [`instance`]; `io` must be the pointer this instance's platform
/// passed with the submission, handed back exactly once.
#[no_mangle]
pub unsafe extern "C" fn rzil_core_io_done(
    core: *mut ffi::rzil_core,
    io: *mut core::ffi::c_void,
    error: i32,
) {
    // SAFETY: caller's contract.
    let inst = unsafe { instance(core) };
    // SAFETY: caller's contract: `io` is our KIo, returned once.
    let (token, buf) = unsafe { inst.platform.complete(io.cast()) };
    drop(buf);
    let result = errno::to_io_result(error);
    match (token.kind(), result) {
        (IoKind::Flush { .. }, Err(IoError::NotSupported)) => {}
        (_, Err(_)) => {
            inst.io_errors.fetch_add(1, Ordering::Relaxed);
            log_fmt(format_args!(
                "lwb {}: {:?} failed with error {}",
                token.lwb_seq(),
                token.kind(),
                error
            ));
        }
        _ => {}
    }
    let done = inst.zil().io_done(token, result);
    if let Err(e) = done {
        log_fmt(format_args!(
            "lwb {}: completion refused: {}",
            token.lwb_seq(),
            e
        ));
    }
}
