//! The kernel backend: `rzil run|bench --kernel /dev/rzilctl --provider P`
//! drive the FreeBSD module rzil.ko through its control device instead of
//! running the core in this process.
//!
//! [`with_kernel_log`] attaches an instance to provider `P`
//! (`RZIL_IOC_ATTACH`), hands the body a [`KernelLog`] — a
//! [`SyncLog`] whose commit is one `RZIL_IOC_APPEND` of the record and one
//! `RZIL_IOC_COMMIT`, which returns once the record is durable — runs a
//! checkpointer thread beside it, reads the counters (`RZIL_IOC_STATS`) and
//! detaches (`RZIL_IOC_DETACH`), on the error paths too.
//!
//! Why a checkpointer: the module frees the log blocks of durable records
//! only when asked (`RZIL_IOC_CHECKPOINT`, the role of `zil_sync` in
//! OpenZFS); without it the core runs out of lwbs
//! ([`rzil::limits::LWB_INFLIGHT_MAX`]) and every commit waits. The host
//! backend does the same in process (`platform.rs`, its checkpoint actor).
//!
//! The ioctls go through the [`Control`] trait: [`ControlDevice`] on
//! FreeBSD, a model of the module's checks in the tests, so everything but
//! the `ioctl(2)` call itself is exercised on every host.

pub mod abi;

use std::fmt;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use crate::backend::{CommitError, RecordId, SyncLog};
use crate::histogram::Histogram;
use abi::{
    RzilIocAppend, RzilIocAttach, RzilIocCommit, RzilIocInstance, RzilIocStats, RZIL_INSTANCES_MAX,
    RZIL_PROVIDER_NAME_MAX, RZIL_RECORD_BYTES_MAX,
};

/// The control device the module creates.
pub const CONTROL_DEVICE_DEFAULT: &str = "/dev/rzilctl";
/// How often the checkpointer frees the lwbs of durable records.
pub const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(1);
/// A commit or append refused with back-pressure (`EAGAIN`) is retried
/// for at most this long before the run fails.
pub const BACKPRESSURE_WAIT_MAX: Duration = Duration::from_secs(10);
/// First back-off after `EAGAIN`; doubles up to [`BACKOFF_MAX`].
const BACKOFF_MIN: Duration = Duration::from_micros(20);
/// Longest back-off between two tries after `EAGAIN`.
const BACKOFF_MAX: Duration = Duration::from_millis(2);
/// Detach is refused (`EBUSY`) while I/O is in flight or another ioctl is
/// inside the instance; retry for at most this long.
pub const DETACH_WAIT_MAX: Duration = Duration::from_secs(5);
/// Pause between two detach attempts.
const DETACH_RETRY: Duration = Duration::from_millis(10);

/// An errno value, as `ioctl(2)` reports it.
pub type Errno = i32;

/// One ioctl of rzil_ioctl.h with its argument.
#[derive(Debug)]
pub enum Request<'a> {
    Attach(&'a mut RzilIocAttach),
    Append(&'a mut RzilIocAppend),
    Commit(&'a mut RzilIocCommit),
    Checkpoint(&'a mut RzilIocInstance),
    Stats(&'a mut RzilIocStats),
    Detach(&'a mut RzilIocInstance),
}

impl Request<'_> {
    /// The request's name in rzil_ioctl.h.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Attach(_) => "RZIL_IOC_ATTACH",
            Request::Append(_) => "RZIL_IOC_APPEND",
            Request::Commit(_) => "RZIL_IOC_COMMIT",
            Request::Checkpoint(_) => "RZIL_IOC_CHECKPOINT",
            Request::Stats(_) => "RZIL_IOC_STATS",
            Request::Detach(_) => "RZIL_IOC_DETACH",
        }
    }
}

/// Something that answers the module's ioctls.
pub trait Control: Sync {
    /// Issue `request`; the module fills its out fields on success.
    fn ioctl(&self, request: Request<'_>) -> Result<(), Errno>;
}

/// `/dev/rzilctl`, open for reading and writing (every request but
/// `RZIL_IOC_STATS` needs `FWRITE`).
#[derive(Debug)]
pub struct ControlDevice {
    #[cfg_attr(not(target_os = "freebsd"), allow(dead_code))]
    file: File,
    /// Outside FreeBSD no control device can be opened: this makes the
    /// type uninhabited there.
    #[cfg(not(target_os = "freebsd"))]
    never: std::convert::Infallible,
}

impl ControlDevice {
    /// Open the control device at `path`.
    #[cfg(target_os = "freebsd")]
    pub fn open(path: &Path) -> Result<ControlDevice, KernelError> {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map(|file| ControlDevice { file })
            .map_err(|source| KernelError::Open {
                path: path.to_path_buf(),
                source,
            })
    }

    /// Outside FreeBSD there is no module to drive.
    #[cfg(not(target_os = "freebsd"))]
    pub fn open(path: &Path) -> Result<ControlDevice, KernelError> {
        let _ = path;
        Err(KernelError::Unsupported {
            os: std::env::consts::OS,
        })
    }
}

impl Control for ControlDevice {
    #[cfg(target_os = "freebsd")]
    fn ioctl(&self, request: Request<'_>) -> Result<(), Errno> {
        use std::os::fd::AsRawFd;
        fn arg<T>(r: &mut T) -> *mut libc::c_void {
            (r as *mut T).cast()
        }
        let (cmd, data) = match request {
            Request::Attach(r) => (abi::RZIL_IOC_ATTACH, arg(r)),
            Request::Append(r) => (abi::RZIL_IOC_APPEND, arg(r)),
            Request::Commit(r) => (abi::RZIL_IOC_COMMIT, arg(r)),
            Request::Checkpoint(r) => (abi::RZIL_IOC_CHECKPOINT, arg(r)),
            Request::Stats(r) => (abi::RZIL_IOC_STATS, arg(r)),
            Request::Detach(r) => (abi::RZIL_IOC_DETACH, arg(r)),
        };
        loop {
            // `cmd` encodes the size of the structure `data` points to
            // (abi.rs, checked against rzil_ioctl.h by `make
            // check-kernel-abi`); the kernel copies exactly that many bytes.
            // SAFETY: `data` is live, aligned and exclusively borrowed for
            // the call; an APPEND payload address points to a slice the
            // caller keeps alive across it.
            let rc = unsafe { libc::ioctl(self.file.as_raw_fd(), cmd as libc::c_ulong, data) };
            if rc != -1 {
                return Ok(());
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(errno) => return Err(errno),
                None => return Err(libc::EIO),
            }
        }
    }

    #[cfg(not(target_os = "freebsd"))]
    fn ioctl(&self, _request: Request<'_>) -> Result<(), Errno> {
        match self.never {}
    }
}

/// Why the kernel backend could not run.
#[derive(Debug)]
pub enum KernelError {
    /// `--kernel` on a system without rzil.ko.
    Unsupported { os: &'static str },
    /// The control device did not open.
    Open { path: PathBuf, source: io::Error },
    /// A provider name the module would refuse.
    BadProvider(String),
    /// The module refused a request.
    Request {
        /// What was asked, e.g. `attach md0` or `commit on md0`.
        what: String,
        /// The request (`RZIL_IOC_*`).
        request: &'static str,
        errno: Errno,
    },
    /// Back-pressure did not end within [`BACKPRESSURE_WAIT_MAX`].
    Backpressure { what: String },
    /// The run was stopped (a stall the driver saw, or a failed
    /// checkpoint).
    Stopped(String),
}

impl KernelError {
    /// Why the module may have answered `errno` to `request`.
    fn hint(request: &str, errno: Errno) -> Option<&'static str> {
        let attach = request == "RZIL_IOC_ATTACH";
        Some(match errno {
            libc::ENOENT if attach => {
                "no GEOM provider of that name (see `geom disk list`, or make one with `mdconfig -a -t swap -s 1g`)"
            }
            libc::EBUSY if attach => {
                "the provider is attached to an rzil instance already (left by a killed run? rzilctl detach ID), or held exclusively (mounted, in a pool)"
            }
            libc::EPERM | libc::EACCES if attach => {
                "GEOM refused write access to the provider (read-only, or in use)"
            }
            libc::ENOSPC if attach => "every instance of the module is in use (rzilctl detach ID)",
            libc::EINVAL if attach => {
                "the module refused the argument: this rzil and the loaded rzil.ko disagree on rzil_ioctl.h, or the provider's sector size is unusable (dmesg says which)"
            }
            libc::EINVAL => {
                "the module refused the argument: this rzil and the loaded rzil.ko disagree on rzil_ioctl.h (rebuild one of them; dmesg names the structure)"
            }
            libc::ENOTTY => {
                "the device does not know this request: not rzil.ko's control device, or a module of another revision than this rzil"
            }
            libc::EBADF => "the control device is not open for writing",
            libc::ENXIO => "no such instance: detached by someone else, or the module is unloading",
            libc::EBUSY => "the instance is busy (I/O in flight, or another process is using it)",
            libc::EIO => "the log failed: a write or flush to the provider failed (see dmesg)",
            libc::EFBIG => "the record is over the module's limit (RZIL_RECORD_BYTES_MAX)",
            libc::EFAULT => "the module could not read the record's payload (a bug in rzil)",
            libc::ENOSPC => "the provider has no room for the log",
            libc::EOPNOTSUPP => "the provider does not support a request the log needs",
            _ => return None,
        })
    }
}

impl fmt::Display for KernelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelError::Unsupported { os } => write!(
                f,
                "--kernel drives the FreeBSD kernel module rzil.ko; this rzil was built for {os}, which has none (use --dev for the userspace core)"
            ),
            KernelError::Open { path, source } => {
                let path = path.display();
                match source.raw_os_error() {
                    Some(libc::ENOENT) => {
                        write!(f, "{path}: no such device: is rzil.ko loaded? (kldload ./rzil.ko)")
                    }
                    Some(libc::EACCES) | Some(libc::EPERM) => write!(
                        f,
                        "{path}: permission denied (the control device is root:operator, mode 0660)"
                    ),
                    _ => write!(f, "{path}: {source}"),
                }
            }
            KernelError::BadProvider(why) => write!(f, "--provider: {why}"),
            KernelError::Request {
                what,
                request,
                errno,
            } => {
                let error = io::Error::from_raw_os_error(*errno);
                write!(f, "{what}: {request}: {error}")?;
                match KernelError::hint(request, *errno) {
                    Some(hint) => write!(f, ": {hint}"),
                    None => Ok(()),
                }
            }
            KernelError::Backpressure { what } => write!(
                f,
                "{what}: the module answered back-pressure (EAGAIN) for {} s",
                BACKPRESSURE_WAIT_MAX.as_secs()
            ),
            KernelError::Stopped(why) => write!(f, "stopped: {why}"),
        }
    }
}

impl std::error::Error for KernelError {}

/// Check a provider name as the module will (`rzil_dev.c`): not empty, no
/// NUL inside, and room for the terminating NUL.
pub fn check_provider(provider: &str) -> Result<(), KernelError> {
    if provider.is_empty() {
        return Err(KernelError::BadProvider(
            "empty provider name (e.g. md0, ada1)".into(),
        ));
    }
    if provider.as_bytes().contains(&0) {
        return Err(KernelError::BadProvider(
            "provider name contains a NUL byte".into(),
        ));
    }
    if provider.len() >= RZIL_PROVIDER_NAME_MAX {
        return Err(KernelError::BadProvider(format!(
            "provider name of {} bytes; the module takes at most {}",
            provider.len(),
            RZIL_PROVIDER_NAME_MAX - 1
        )));
    }
    Ok(())
}

/// What the module said about the provider it attached.
#[derive(Clone, Debug)]
pub struct Attached {
    /// The instance id (`0..RZIL_INSTANCES_MAX`).
    pub instance: u32,
    /// The provider name as given.
    pub provider: String,
    pub media_size_bytes: u64,
    pub sector_size_bytes: u32,
}

/// An attached instance as a [`SyncLog`].
pub struct KernelLog<'c> {
    ctl: &'c dyn Control,
    attached: Attached,
    /// The module's own commit time (`rc_latency_ns`), one histogram per
    /// committer so that committers do not share a lock.
    kernel_latency: Vec<Mutex<Histogram>>,
    /// Why the run was stopped, if it was.
    stopped: Mutex<Option<String>>,
    stopping: AtomicBool,
}

impl fmt::Debug for KernelLog<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KernelLog")
            .field("attached", &self.attached)
            .finish_non_exhaustive()
    }
}

impl<'c> KernelLog<'c> {
    /// The instance this log drives.
    pub fn attached(&self) -> &Attached {
        &self.attached
    }

    fn request_error(&self, verb: &str, request: &'static str, errno: Errno) -> KernelError {
        KernelError::Request {
            what: format!(
                "{verb} on {} (instance {})",
                self.attached.provider, self.attached.instance
            ),
            request,
            errno,
        }
    }

    fn stop(&self, why: String) {
        self.stopped.lock().get_or_insert(why);
        self.stopping.store(true, Ordering::Release);
    }

    fn stopped_error(&self) -> Option<KernelError> {
        if !self.stopping.load(Ordering::Acquire) {
            return None;
        }
        Some(KernelError::Stopped(
            self.stopped.lock().clone().unwrap_or_default(),
        ))
    }

    /// Issue a request through `call`, retrying on back-pressure
    /// (`EAGAIN`): each retry first asks for a checkpoint, which frees
    /// the lwbs the module may be short of.
    fn issue(
        &self,
        verb: &str,
        request: &'static str,
        mut call: impl FnMut(&dyn Control) -> Result<(), Errno>,
    ) -> Result<(), KernelError> {
        let began = Instant::now();
        let mut backoff = BACKOFF_MIN;
        loop {
            if let Some(error) = self.stopped_error() {
                return Err(error);
            }
            match call(self.ctl) {
                Ok(()) => return Ok(()),
                Err(libc::EAGAIN) if began.elapsed() < BACKPRESSURE_WAIT_MAX => {}
                Err(libc::EAGAIN) => {
                    return Err(KernelError::Backpressure {
                        what: format!("{verb} on {}", self.attached.provider),
                    })
                }
                Err(errno) => return Err(self.request_error(verb, request, errno)),
            }
            self.checkpoint()?;
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(BACKOFF_MAX);
        }
    }

    /// Free the lwbs whose records are durable (`RZIL_IOC_CHECKPOINT`).
    pub fn checkpoint(&self) -> Result<(), KernelError> {
        let mut ri = RzilIocInstance::new(self.attached.instance);
        match self.ctl.ioctl(Request::Checkpoint(&mut ri)) {
            // Back-pressure on a checkpoint only means "not now".
            Ok(()) | Err(libc::EAGAIN) => Ok(()),
            Err(errno) => Err(self.request_error("checkpoint", "RZIL_IOC_CHECKPOINT", errno)),
        }
    }

    /// The instance's counters (`RZIL_IOC_STATS`).
    pub fn stats(&self) -> Result<RzilIocStats, KernelError> {
        let mut rs = RzilIocStats::new(self.attached.instance);
        match self.ctl.ioctl(Request::Stats(&mut rs)) {
            Ok(()) => Ok(rs),
            Err(errno) => Err(self.request_error("stats", "RZIL_IOC_STATS", errno)),
        }
    }

    /// Every committer's commit times as the module measured them.
    pub fn kernel_latency(&self) -> Histogram {
        let mut all = Histogram::new();
        for h in &self.kernel_latency {
            all.merge(&h.lock());
        }
        all
    }

    fn commit_record(&self, id: RecordId, data: &[u8]) -> Result<(), KernelError> {
        let instance = self.attached.instance;
        let offset_bytes = id.offset_bytes(data.len());
        let mut rr = RzilIocAppend::new(instance, id.foid(), offset_bytes, data);
        self.issue("append", "RZIL_IOC_APPEND", |ctl| {
            ctl.ioctl(Request::Append(&mut rr))
        })?;
        let mut rc = RzilIocCommit::new(instance);
        self.issue("commit", "RZIL_IOC_COMMIT", |ctl| {
            rc = RzilIocCommit::new(instance);
            ctl.ioctl(Request::Commit(&mut rc))
        })?;
        if let Some(h) = self.kernel_latency.get(id.committer as usize) {
            h.lock().record(rc.rc_latency_ns);
        }
        Ok(())
    }
}

impl SyncLog for KernelLog<'_> {
    fn commit(&self, id: RecordId, data: &[u8]) -> Result<(), CommitError> {
        if data.len() > RZIL_RECORD_BYTES_MAX as usize {
            return Err(CommitError::RecordTooLarge {
                record_bytes: data.len(),
                max_bytes: RZIL_RECORD_BYTES_MAX as usize,
            });
        }
        self.commit_record(id, data)
            .map_err(|e| CommitError::Refused(e.to_string()))
    }

    /// A commit inside the module cannot be interrupted from here; what
    /// this stops is every request still to come.
    fn abort(&self, reason: &str) {
        self.stop(reason.to_owned());
    }
}

/// How a kernel run ended.
#[derive(Debug)]
pub struct KernelEnd {
    pub attached: Attached,
    /// The counters just before detach (`None` if STATS failed, then
    /// `failure` says why).
    pub stats: Option<RzilIocStats>,
    /// The module's own commit times.
    pub kernel_latency: Histogram,
    /// The checkpointer failed, stats or detach did: the run is not clean
    /// even if every commit succeeded.
    pub failure: Option<String>,
}

/// Detaches the instance if the body unwinds (a bug), so the provider is
/// not left held by the module.
struct DetachGuard<'c> {
    ctl: &'c dyn Control,
    instance: u32,
    armed: bool,
}

impl Drop for DetachGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let _ = detach(self.ctl, self.instance);
        }
    }
}

/// `RZIL_IOC_DETACH`, retried while the instance is busy.
fn detach(ctl: &dyn Control, instance: u32) -> Result<(), Errno> {
    let began = Instant::now();
    loop {
        let mut ri = RzilIocInstance::new(instance);
        match ctl.ioctl(Request::Detach(&mut ri)) {
            Err(libc::EBUSY) if began.elapsed() < DETACH_WAIT_MAX => {
                std::thread::sleep(DETACH_RETRY)
            }
            other => return other,
        }
    }
}

/// Attach an instance of the module to `provider`, run `body` against it
/// with `threads` committers' worth of bookkeeping and a checkpointer
/// beside it, then read its counters and detach it, whatever `body`
/// returned. Fails only if the attach does; later failures are in
/// [`KernelEnd::failure`].
pub fn with_kernel_log<R>(
    ctl: &dyn Control,
    provider: &str,
    threads: usize,
    body: impl FnOnce(&KernelLog<'_>) -> R,
) -> Result<(R, KernelEnd), KernelError> {
    check_provider(provider)?;
    let mut ra = RzilIocAttach::new(provider.as_bytes());
    ctl.ioctl(Request::Attach(&mut ra))
        .map_err(|errno| KernelError::Request {
            what: format!("attach {provider}"),
            request: "RZIL_IOC_ATTACH",
            errno,
        })?;
    let mut guard = DetachGuard {
        ctl,
        instance: ra.ra_instance,
        armed: true,
    };
    let attached = Attached {
        instance: ra.ra_instance,
        provider: provider.to_owned(),
        media_size_bytes: ra.ra_media_size_bytes,
        sector_size_bytes: ra.ra_sector_size_bytes,
    };
    if ra.ra_instance >= RZIL_INSTANCES_MAX {
        // A module that answers out of its own range is not one we know.
        let _ = detach(ctl, ra.ra_instance);
        guard.armed = false;
        return Err(KernelError::Request {
            what: format!(
                "attach {provider}: instance id {} out of range",
                ra.ra_instance
            ),
            request: "RZIL_IOC_ATTACH",
            errno: libc::EINVAL,
        });
    }
    let log = KernelLog {
        ctl,
        attached: attached.clone(),
        kernel_latency: (0..threads).map(|_| Mutex::new(Histogram::new())).collect(),
        stopped: Mutex::new(None),
        stopping: AtomicBool::new(false),
    };
    let done = AtomicBool::new(false);
    let mut failure = None;
    let result = std::thread::scope(|scope| {
        let checkpointer = scope.spawn(|| -> Result<(), KernelError> {
            while !done.load(Ordering::Acquire) {
                std::thread::sleep(CHECKPOINT_INTERVAL);
                if let Err(error) = log.checkpoint() {
                    log.stop(format!("checkpointer: {error}"));
                    return Err(error);
                }
            }
            Ok(())
        });
        /// Ends the checkpointer however the body returns.
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let result = {
            let _done = Done(&done);
            body(&log)
        };
        match checkpointer.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => failure = Some(format!("checkpointer: {error}")),
            Err(panic) => std::panic::resume_unwind(panic),
        }
        result
    });
    // One last checkpoint leaves nothing for detach to wait on.
    if let Err(error) = log.checkpoint() {
        failure.get_or_insert(error.to_string());
    }
    let stats = match log.stats() {
        Ok(stats) => Some(stats),
        Err(error) => {
            failure.get_or_insert(error.to_string());
            None
        }
    };
    guard.armed = false;
    if let Err(errno) = detach(ctl, attached.instance) {
        let error = log.request_error("detach", "RZIL_IOC_DETACH", errno);
        failure.get_or_insert(format!(
            "{error} (the instance stays attached: rzilctl detach {})",
            attached.instance
        ));
    }
    let kernel_latency = log.kernel_latency();
    Ok((
        result,
        KernelEnd {
            attached,
            stats,
            kernel_latency,
            failure,
        },
    ))
}

#[cfg(test)]
mod core_tests;
#[cfg(test)]
mod tests;
