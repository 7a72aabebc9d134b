//! The kernel backend against the real core behind the ioctls: a
//! [`Control`] that does what `kmod/rust/src/exports.rs` does with each
//! request (assign, commit and wait, checkpoint at the durable seq, stats),
//! on the in-memory test platform, with I/O completed by whichever caller
//! polls (the module's taskqueue, here). What it shows: the backend's
//! protocol keeps a real `Zil` going well past its lwb limit, and the
//! checkpointer is what makes that possible.

use super::*;
use crate::backend::{check_pattern, drive, DriveConfig};
use rzil::error::Error;
use rzil::itx::{Record, WriteData};
use rzil::limits::LWB_INFLIGHT_MAX;
use rzil::testkit::MemPlatform;
use rzil::zil::{Config, WaitStatus, Zil};
use std::mem::size_of;
use std::sync::atomic::AtomicU64;

/// How long one commit may wait before the model gives up with
/// `ETIMEDOUT` (the module would sleep on until a checkpoint): long enough
/// that a loaded machine's scheduling never reaches it.
const COMMIT_STALL: Duration = Duration::from_secs(5);
/// The same bound when a stall is what the test looks for.
const COMMIT_STALL_EXPECTED: Duration = Duration::from_millis(200);
/// Log space of the model's device.
const MODEL_LOG_BYTES: u64 = 64 << 20;
/// lwb objects in the model's pool: more than the core keeps in flight,
/// so the core's own limit is the one met.
const MODEL_LWB_POOL: usize = 2 * LWB_INFLIGHT_MAX;

/// The errno the module answers for a core error (kmod/rust/src/errno.rs).
fn errno_of(error: Error) -> Errno {
    match error {
        Error::Backpressure(_) => libc::EAGAIN,
        Error::NoLogSpace => libc::ENOSPC,
        Error::InvalidRecord(_) => libc::EINVAL,
        Error::StaleHandle | Error::UnexpectedCompletion => libc::ESTALE,
        _ => libc::EIO,
    }
}

struct CoreModule<'p> {
    platform: &'p MemPlatform,
    zil: Zil<&'p MemPlatform>,
    attached: Mutex<bool>,
    /// One completer at a time (the module's taskqueue thread).
    io: Mutex<()>,
    bad_payloads: AtomicU64,
    stalls: AtomicU64,
    stall_after: Duration,
}

impl<'p> CoreModule<'p> {
    fn new(platform: &'p MemPlatform, stall_after: Duration) -> CoreModule<'p> {
        CoreModule {
            platform,
            zil: Zil::new(platform, Config::new(1)).expect("log starts"),
            attached: Mutex::new(false),
            io: Mutex::new(()),
            bad_payloads: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            stall_after,
        }
    }

    fn held(&self, instance: u32) -> Result<(), Errno> {
        if instance != 0 {
            return Err(libc::EINVAL);
        }
        if *self.attached.lock() {
            Ok(())
        } else {
            Err(libc::ENXIO)
        }
    }

    fn complete_io(&self) {
        let _taskqueue = self.io.lock();
        self.platform.complete_all(&self.zil);
    }

    /// `commit_and_wait` in exports.rs, with the model's clock moved to
    /// each deadline instead of sleeping until it.
    fn commit_and_wait(&self) -> Result<(), Errno> {
        let w = self.zil.commit().map_err(errno_of)?;
        let began = Instant::now();
        while began.elapsed() < self.stall_after {
            self.complete_io();
            match self.zil.waiter_poll(w).map_err(errno_of)? {
                WaitStatus::Done(r) => return r.map_err(errno_of),
                WaitStatus::Pending { deadline_ns, .. } => {
                    if let Some(d) = deadline_ns {
                        let now = rzil::platform::Platform::now_ns(&self.platform);
                        if now < d {
                            self.platform.advance_ns(d - now);
                        }
                        self.zil.waiter_timeout(w).map_err(errno_of)?;
                    }
                    std::thread::yield_now();
                }
            }
        }
        self.stalls.fetch_add(1, Ordering::Relaxed);
        Err(libc::ETIMEDOUT)
    }
}

impl Control for CoreModule<'_> {
    fn ioctl(&self, request: Request<'_>) -> Result<(), Errno> {
        fn size_ok<T>(got: u32) -> Result<(), Errno> {
            if got as usize == size_of::<T>() {
                Ok(())
            } else {
                Err(libc::EINVAL)
            }
        }
        match request {
            Request::Attach(ra) => {
                size_ok::<RzilIocAttach>(ra.ra_size)?;
                if ra.provider() != "md0" {
                    return Err(libc::ENOENT);
                }
                let mut attached = self.attached.lock();
                if *attached {
                    return Err(libc::EBUSY);
                }
                *attached = true;
                ra.ra_instance = 0;
                ra.ra_media_size_bytes = MODEL_LOG_BYTES;
                ra.ra_sector_size_bytes = 512;
                Ok(())
            }
            Request::Append(rr) => {
                size_ok::<RzilIocAppend>(rr.rr_size)?;
                if rr.rr_payload_bytes == 0 {
                    return Err(libc::EINVAL);
                }
                if rr.rr_payload_bytes > RZIL_RECORD_BYTES_MAX {
                    return Err(libc::EFBIG);
                }
                self.held(rr.rr_instance)?;
                // SAFETY: copyin(9) of the payload: the backend built `rr`
                // from a slice of exactly this length that it keeps alive
                // across this call (KernelLog::commit_record).
                let payload = unsafe {
                    std::slice::from_raw_parts(
                        rr.rr_payload as usize as *const u8,
                        rr.rr_payload_bytes as usize,
                    )
                };
                if !check_pattern(rr.rr_foid, rr.rr_offset_bytes, payload) {
                    self.bad_payloads.fetch_add(1, Ordering::Relaxed);
                }
                let record = Record::Write {
                    foid: rr.rr_foid,
                    offset: rr.rr_offset_bytes,
                    data: WriteData::Copied(payload),
                };
                self.zil
                    .assign(self.zil.config().txg, &record)
                    .map_err(errno_of)
            }
            Request::Commit(rc) => {
                size_ok::<RzilIocCommit>(rc.rc_size)?;
                self.held(rc.rc_instance)?;
                let began = Instant::now();
                let result = self.commit_and_wait();
                rc.rc_latency_ns = began.elapsed().as_nanos() as u64;
                result
            }
            Request::Checkpoint(ri) => {
                size_ok::<RzilIocInstance>(ri.ri_size)?;
                self.held(ri.ri_instance)?;
                self.complete_io();
                self.zil
                    .checkpoint(self.zil.durable_lr_seq())
                    .map(|_| ())
                    .map_err(errno_of)
            }
            Request::Stats(rs) => {
                size_ok::<RzilIocStats>(rs.rs_size)?;
                self.held(rs.rs_instance)?;
                let s = self.zil.stats();
                rs.rs_records = s.records;
                rs.rs_commits = s.commits;
                rs.rs_lwbs_issued = s.lwbs_issued;
                rs.rs_flushes = s.flushes;
                rs.rs_bytes_written = s.write_bytes;
                self.zil.for_each_lwb(|v| {
                    if let Some(n) = rs.rs_lwbs_in_state.get_mut(v.state as usize) {
                        *n += 1;
                    }
                });
                Ok(())
            }
            Request::Detach(ri) => {
                size_ok::<RzilIocInstance>(ri.ri_size)?;
                self.held(ri.ri_instance)?;
                if self.platform.pending_len() != 0 {
                    return Err(libc::EBUSY);
                }
                *self.attached.lock() = false;
                Ok(())
            }
        }
    }
}

#[test]
fn the_backend_keeps_the_real_core_going_past_its_lwb_limit() {
    let platform = MemPlatform::new(MODEL_LOG_BYTES, MODEL_LWB_POOL);
    let module = CoreModule::new(&platform, COMMIT_STALL);
    let config = DriveConfig {
        threads: 8,
        duration: Duration::from_millis(400),
        record_bytes: 4096,
    };
    let (result, end) = with_kernel_log(&module, "md0", config.threads, |log| {
        drive(log, config, &|_, _| {}, &mut |_| {})
    })
    .unwrap();
    let result = result.unwrap();
    assert_eq!(end.failure, None);
    assert_eq!(module.stalls.load(Ordering::Relaxed), 0);
    assert_eq!(module.bad_payloads.load(Ordering::Relaxed), 0);
    let stats = end.stats.unwrap();
    // Far more lwbs than the core keeps listed: checkpoints freed them.
    assert!(
        stats.rs_lwbs_issued > 2 * LWB_INFLIGHT_MAX as u64,
        "{} lwbs issued for {} commits",
        stats.rs_lwbs_issued,
        result.commits
    );
    assert!(stats.rs_records >= result.commits);
    assert!(stats.rs_flushes > 0);
    assert_eq!(end.kernel_latency.count(), result.commits);
    assert!(!*module.attached.lock(), "detached");
}

#[test]
fn without_checkpoints_the_core_stops_at_its_lwb_limit() {
    // What the backend's checkpointer is for: one committer, each record
    // committed alone (one lwb each), and nobody asking for checkpoints.
    let platform = MemPlatform::new(MODEL_LOG_BYTES, MODEL_LWB_POOL);
    let module = CoreModule::new(&platform, COMMIT_STALL_EXPECTED);
    let mut ra = RzilIocAttach::new(b"md0");
    module.ioctl(Request::Attach(&mut ra)).unwrap();
    let data = |seq: u64| {
        let id = RecordId { committer: 0, seq };
        let mut buf = vec![0u8; 4096];
        crate::backend::fill_pattern(id.foid(), id.offset_bytes(4096), &mut buf);
        (id, buf)
    };
    let mut stalled_at = None;
    for seq in 0..(2 * LWB_INFLIGHT_MAX as u64) {
        let (id, buf) = data(seq);
        let mut rr = RzilIocAppend::new(0, id.foid(), id.offset_bytes(4096), &buf);
        module.ioctl(Request::Append(&mut rr)).unwrap();
        let mut rc = RzilIocCommit::new(0);
        if module.ioctl(Request::Commit(&mut rc)) == Err(libc::ETIMEDOUT) {
            stalled_at = Some(seq);
            break;
        }
    }
    let stalled_at = stalled_at.expect("commits went on without checkpoints");
    assert!(
        stalled_at <= LWB_INFLIGHT_MAX as u64,
        "stalled at {stalled_at}"
    );
    // One checkpoint frees the durable lwbs, and commits go on.
    let mut ri = RzilIocInstance::new(0);
    module.ioctl(Request::Checkpoint(&mut ri)).unwrap();
    let (id, buf) = data(stalled_at + 1);
    let mut rr = RzilIocAppend::new(0, id.foid(), id.offset_bytes(4096), &buf);
    module.ioctl(Request::Append(&mut rr)).unwrap();
    let mut rc = RzilIocCommit::new(0);
    module.ioctl(Request::Commit(&mut rc)).unwrap();
}
