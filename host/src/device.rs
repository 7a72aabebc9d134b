//! A log device: a regular file or a block device, addressed by byte
//! offset with positional reads and writes, and `fdatasync` as the flush
//! command.
//!
//! Concurrency: [`LogDevice`] is `Sync`; `pwrite`/`pread` at distinct
//! offsets need no lock, and the flush is a plain `fdatasync` that the
//! kernel orders against writes that completed before it was issued. That
//! is exactly the contract the core assumes of a vdev with a write cache.
//!
//! With `O_DIRECT`, every buffer, offset and length must be aligned to
//! [`DIRECT_IO_ALIGN_BYTES`]; [`AlignedBuf`] provides such buffers. A
//! filesystem that refuses `O_DIRECT` (tmpfs, some FUSE mounts) falls back
//! to buffered I/O, and [`LogDevice::direct_fallback`] says why so the CLI
//! can tell the user.

use std::alloc::{self, Layout};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::ops::{Deref, DerefMut};
use std::os::unix::fs::{FileExt, FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::units::format_size_bytes;

/// Alignment of every buffer, offset and length under `O_DIRECT`. 4 KiB
/// covers devices with 512-byte and 4 KiB logical sectors, and matches the
/// log-block granularity, so the core never has to care.
pub const DIRECT_IO_ALIGN_BYTES: usize = 4096;

/// The unit the hardware is assumed to write atomically when nothing better
/// is known (regular files): a torn write tears at this granularity.
pub const SECTOR_SIZE_BYTES_DEFAULT: u32 = 512;

/// The smallest device we accept: the superblock area plus a log region that
/// holds a few maximum-size log blocks (see `superblock::LOG_REGION_START_BYTES`
/// and `ring::BLOCK_SIZE_BYTES_MAX`).
pub const DEVICE_SIZE_MIN_BYTES: u64 = 2 * 1024 * 1024;
// Rounding a size down to aligned units never takes it below the minimum.
const _: () = assert!(DEVICE_SIZE_MIN_BYTES % DIRECT_IO_ALIGN_BYTES as u64 == 0);

/// Size of a file made by `--create` without `--size`: room for thousands of
/// maximum-size log blocks, small enough to create in a moment.
pub const DEVICE_CREATE_SIZE_BYTES_DEFAULT: u64 = 64 * 1024 * 1024;

/// How much of a new file is zero-filled: the superblock area plus the
/// largest log region (`superblock::LOG_REGION_BYTES_MAX`); a log never
/// writes beyond it.
pub const ZERO_FILL_BYTES_MAX: u64 = (128 + 256 * 1024) * 1024;

/// Chunk size for zero-filling a newly created file, so a large `--create`
/// does not need a large buffer.
const ZERO_FILL_CHUNK_BYTES: usize = 1024 * 1024;

/// What kind of object backs the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceKind {
    /// A regular file on some filesystem.
    File,
    /// A block device (Linux) or disk character device (FreeBSD).
    BlockDevice,
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeviceKind::File => "file",
            DeviceKind::BlockDevice => "block device",
        })
    }
}

/// Why a device could not be opened or an I/O on it failed. Every variant
/// displays as one line naming the path and the problem.
#[derive(Debug)]
pub enum DeviceError {
    /// The path does not exist (and `--create` was not given).
    Missing { path: PathBuf },
    /// The path to read (`rzil dump`) does not exist: unlike
    /// [`DeviceError::Missing`], no `--create` can help.
    NothingToRead { path: PathBuf },
    /// The path is a directory.
    IsDirectory { path: PathBuf },
    /// The path is neither a regular file nor a block device.
    NotADevice { path: PathBuf, what: &'static str },
    /// The file, device or filesystem is read-only.
    ReadOnly { path: PathBuf },
    /// We may not open the path for reading and writing.
    PermissionDenied { path: PathBuf },
    /// The device is smaller than [`DEVICE_SIZE_MIN_BYTES`].
    TooSmall {
        path: PathBuf,
        size_bytes: u64,
        size_min_bytes: u64,
    },
    /// `--create` asked for more than a block device has.
    CreateLargerThanDevice {
        path: PathBuf,
        size_bytes: u64,
        device_size_bytes: u64,
    },
    /// An I/O was outside the device.
    OutOfRange {
        offset_bytes: u64,
        len_bytes: usize,
        size_bytes: u64,
    },
    /// An I/O under `O_DIRECT` was not aligned to [`DIRECT_IO_ALIGN_BYTES`].
    Misaligned { offset_bytes: u64, len_bytes: usize },
    /// The filesystem has no room for a file of the size `--create` asked.
    NoSpace { path: PathBuf, size_bytes: u64 },
    /// `--create` asked for a file larger than the filesystem allows one
    /// to be (EFBIG), or than a file offset can express.
    FileTooLarge { path: PathBuf, size_bytes: u64 },
    /// Another process (another rzil) has the device open as a log.
    InUse { path: PathBuf },
    /// A crash-recording layer reached its memory bound.
    RecordingFull { limit_bytes: usize },
    /// The operating system reported an error.
    Io {
        path: PathBuf,
        op: &'static str,
        source: io::Error,
    },
}

impl fmt::Display for DeviceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceError::Missing { path } => write!(
                f,
                "{}: no such file or device (give --create to make a new file)",
                path.display()
            ),
            DeviceError::NothingToRead { path } => {
                write!(f, "{}: no such file or device", path.display())
            }
            DeviceError::IsDirectory { path } => write!(
                f,
                "{}: is a directory, not a file or block device",
                path.display()
            ),
            DeviceError::NotADevice { path, what } => write!(
                f,
                "{}: is a {what}, not a regular file or block device",
                path.display()
            ),
            DeviceError::ReadOnly { path } => write!(
                f,
                "{}: is read-only; the log device must be writable",
                path.display()
            ),
            DeviceError::PermissionDenied { path } => write!(
                f,
                "{}: permission denied opening it for reading and writing",
                path.display()
            ),
            DeviceError::TooSmall {
                path,
                size_bytes,
                size_min_bytes,
            } => write!(
                f,
                "{}: too small ({}); the minimum is {}",
                path.display(),
                format_size_bytes(*size_bytes),
                format_size_bytes(*size_min_bytes)
            ),
            DeviceError::CreateLargerThanDevice {
                path,
                size_bytes,
                device_size_bytes,
            } => write!(
                f,
                "{}: --size {} is larger than the device ({})",
                path.display(),
                format_size_bytes(*size_bytes),
                format_size_bytes(*device_size_bytes)
            ),
            DeviceError::OutOfRange {
                offset_bytes,
                len_bytes,
                size_bytes,
            } => write!(
                f,
                "I/O of {len_bytes} bytes at offset {offset_bytes} is outside the device ({size_bytes} bytes)"
            ),
            DeviceError::Misaligned {
                offset_bytes,
                len_bytes,
            } => write!(
                f,
                "O_DIRECT I/O of {len_bytes} bytes at offset {offset_bytes} is not aligned to {DIRECT_IO_ALIGN_BYTES} bytes"
            ),
            DeviceError::NoSpace { path, size_bytes } => write!(
                f,
                "{}: the filesystem has no room for {}",
                path.display(),
                format_size_bytes(*size_bytes)
            ),
            DeviceError::FileTooLarge { path, size_bytes } => write!(
                f,
                "{}: a file of {} is larger than the filesystem allows",
                path.display(),
                format_size_bytes(*size_bytes)
            ),
            DeviceError::InUse { path } => write!(
                f,
                "{}: in use as a log by another process (another rzil run, bench or verify)",
                path.display()
            ),
            DeviceError::RecordingFull { limit_bytes } => write!(
                f,
                "the crash recorder keeps at most {} of unflushed or recorded writes; record a shorter run (--seconds) or smaller records",
                format_size_bytes(*limit_bytes as u64)
            ),
            DeviceError::Io { path, op, source } => {
                write!(f, "{}: {op} failed: {source}", path.display())
            }
        }
    }
}

impl std::error::Error for DeviceError {}

/// How to open a device.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpenOptionsLog {
    /// `--create`: make a missing file (and, one level up, allow
    /// formatting over whatever the device holds).
    pub create: bool,
    /// `--size`: the size of a created file (default
    /// [`DEVICE_CREATE_SIZE_BYTES_DEFAULT`]), or a new size for an existing
    /// file; for a block device, use only this many bytes of it. Applies
    /// only with `create`.
    pub create_size_bytes: Option<u64>,
    /// Try `O_DIRECT`.
    pub direct: bool,
}

/// An open log device.
#[derive(Debug)]
pub struct LogDevice {
    file: File,
    path: PathBuf,
    kind: DeviceKind,
    size_bytes: u64,
    sector_size_bytes: u32,
    direct: bool,
    direct_fallback: Option<String>,
    created: bool,
}

/// A read-only view of a device, for `rzil dump`.
#[derive(Debug)]
pub struct ReadOnlyDevice {
    file: File,
    path: PathBuf,
    size_bytes: u64,
}

fn classify_open_error(path: &Path, op: &'static str, error: io::Error) -> DeviceError {
    let path = path.to_path_buf();
    match error.raw_os_error() {
        Some(libc::ENOENT) => DeviceError::Missing { path },
        Some(libc::EISDIR) => DeviceError::IsDirectory { path },
        Some(libc::EROFS) | Some(libc::ETXTBSY) => DeviceError::ReadOnly { path },
        Some(libc::EACCES) | Some(libc::EPERM) => DeviceError::PermissionDenied { path },
        _ => DeviceError::Io {
            path,
            op,
            source: error,
        },
    }
}

/// Inspect the path: its kind, or the one-line reason it cannot be a log
/// device. A missing path is reported as [`DeviceError::Missing`].
fn inspect(path: &Path) -> Result<(DeviceKind, std::fs::Metadata), DeviceError> {
    let meta = std::fs::metadata(path).map_err(|error| classify_open_error(path, "stat", error))?;
    let file_type = meta.file_type();
    let kind = if file_type.is_dir() {
        return Err(DeviceError::IsDirectory {
            path: path.to_path_buf(),
        });
    } else if file_type.is_file() {
        DeviceKind::File
    } else if file_type.is_block_device() {
        DeviceKind::BlockDevice
    } else if cfg!(target_os = "freebsd") && file_type.is_char_device() {
        // FreeBSD has no block devices: disks are character devices.
        DeviceKind::BlockDevice
    } else {
        let what = if file_type.is_char_device() {
            "character device"
        } else if file_type.is_fifo() {
            "fifo"
        } else if file_type.is_socket() {
            "socket"
        } else {
            "special file"
        };
        return Err(DeviceError::NotADevice {
            path: path.to_path_buf(),
            what,
        });
    };
    Ok((kind, meta))
}

fn open_rw(path: &Path, direct: bool) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.read(true).write(true);
    let mut flags = libc::O_CLOEXEC;
    if direct {
        flags |= libc::O_DIRECT;
    }
    options.custom_flags(flags);
    options.open(path)
}

impl LogDevice {
    /// Open (or, with `create_size_bytes`, create) the log device at `path`.
    pub fn open(path: &Path, options: OpenOptionsLog) -> Result<LogDevice, DeviceError> {
        let (found, created) = match inspect(path) {
            Ok(found) => (found, false),
            Err(DeviceError::Missing { .. }) if options.create => {
                create_file(path)?;
                (inspect(path)?, true)
            }
            Err(error) => return Err(error),
        };
        let opened = LogDevice::open_found(path, options, found, created);
        if opened.is_err() && created {
            // Leave nothing behind from a --create that failed (a sparse
            // file of the refused size, say).
            let _ = std::fs::remove_file(path);
        }
        opened
    }

    fn open_found(
        path: &Path,
        options: OpenOptionsLog,
        (kind, meta): (DeviceKind, std::fs::Metadata),
        mut created: bool,
    ) -> Result<LogDevice, DeviceError> {
        // A new file gets the default size unless one was asked for.
        let create_size_bytes = match options.create_size_bytes {
            _ if !options.create => None,
            None if created => Some(DEVICE_CREATE_SIZE_BYTES_DEFAULT),
            other => other,
        };
        if kind == DeviceKind::File && meta.permissions().mode() & 0o222 == 0 {
            // Root can open a mode-0444 file for writing; we still refuse,
            // because a file nobody may write is one its owner meant to keep.
            return Err(DeviceError::ReadOnly {
                path: path.to_path_buf(),
            });
        }

        let (file, direct, direct_fallback) = open_with_direct_fallback(path, options.direct)?;
        lock_exclusive(&file, path)?;
        if kind == DeviceKind::BlockDevice && block_device_read_only(&file) {
            return Err(DeviceError::ReadOnly {
                path: path.to_path_buf(),
            });
        }

        let mut size_bytes = match kind {
            DeviceKind::File => meta.len(),
            DeviceKind::BlockDevice => block_device_size_bytes(&file, path)?,
        };
        let sector_size_bytes = match kind {
            DeviceKind::File => SECTOR_SIZE_BYTES_DEFAULT,
            DeviceKind::BlockDevice => block_device_sector_size_bytes(&file),
        };

        if let Some(want_bytes) = create_size_bytes {
            if want_bytes < DEVICE_SIZE_MIN_BYTES {
                return Err(DeviceError::TooSmall {
                    path: path.to_path_buf(),
                    size_bytes: want_bytes,
                    size_min_bytes: DEVICE_SIZE_MIN_BYTES,
                });
            }
            match kind {
                DeviceKind::File => {
                    if created || want_bytes != size_bytes {
                        zero_fill(&file, path, want_bytes)?;
                        created = true;
                    }
                    size_bytes = want_bytes;
                }
                DeviceKind::BlockDevice => {
                    if want_bytes > size_bytes {
                        return Err(DeviceError::CreateLargerThanDevice {
                            path: path.to_path_buf(),
                            size_bytes: want_bytes,
                            device_size_bytes: size_bytes,
                        });
                    }
                    size_bytes = want_bytes;
                }
            }
        }
        // Checked before the rounding below, so the error names the size
        // the device has (the minimum is whole units: same verdict).
        if size_bytes < DEVICE_SIZE_MIN_BYTES {
            return Err(DeviceError::TooSmall {
                path: path.to_path_buf(),
                size_bytes,
                size_min_bytes: DEVICE_SIZE_MIN_BYTES,
            });
        }
        // Keep the usable size a whole number of aligned units, so every
        // block the ring hands out is addressable with O_DIRECT.
        size_bytes -= size_bytes % DIRECT_IO_ALIGN_BYTES as u64;
        Ok(LogDevice {
            file,
            path: path.to_path_buf(),
            kind,
            size_bytes,
            sector_size_bytes,
            direct,
            direct_fallback,
            created,
        })
    }

    /// The path the device was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// File or block device.
    pub fn kind(&self) -> DeviceKind {
        self.kind
    }

    /// Usable size, rounded down to [`DIRECT_IO_ALIGN_BYTES`].
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Logical sector size: the granularity at which a write may tear.
    pub fn sector_size_bytes(&self) -> u32 {
        self.sector_size_bytes
    }

    /// Whether I/O goes through `O_DIRECT`.
    pub fn is_direct(&self) -> bool {
        self.direct
    }

    /// If `O_DIRECT` was asked for but refused, why (one line).
    pub fn direct_fallback(&self) -> Option<&str> {
        self.direct_fallback.as_deref()
    }

    /// Whether this open created the file (or resized it under `--create`).
    pub fn was_created(&self) -> bool {
        self.created
    }

    fn check_io(
        &self,
        offset_bytes: u64,
        buf_addr: usize,
        len_bytes: usize,
    ) -> Result<(), DeviceError> {
        let end = offset_bytes.checked_add(len_bytes as u64);
        if end.is_none_or(|end| end > self.size_bytes) {
            return Err(DeviceError::OutOfRange {
                offset_bytes,
                len_bytes,
                size_bytes: self.size_bytes,
            });
        }
        let align = DIRECT_IO_ALIGN_BYTES;
        if self.direct
            && (offset_bytes % align as u64 != 0 || len_bytes % align != 0 || buf_addr % align != 0)
        {
            return Err(DeviceError::Misaligned {
                offset_bytes,
                len_bytes,
            });
        }
        Ok(())
    }

    fn io_error(&self, op: &'static str, source: io::Error) -> DeviceError {
        DeviceError::Io {
            path: self.path.clone(),
            op,
            source,
        }
    }
}

/// Positional I/O plus a flush: what the platform, the naive baseline and
/// the crash recorder need of a device. Implemented by [`LogDevice`], by
/// [`MemDevice`] (tests, crash images) and by the recording layer.
pub trait BlockIo: Send + Sync {
    /// Usable size in bytes.
    fn size_bytes(&self) -> u64;
    /// Logical sector size: the tearing granularity.
    fn sector_size_bytes(&self) -> u32;
    /// Write all of `buf` at `offset_bytes`.
    fn write_at(&self, offset_bytes: u64, buf: &[u8]) -> Result<(), DeviceError>;
    /// Fill `buf` from `offset_bytes`.
    fn read_at(&self, offset_bytes: u64, buf: &mut [u8]) -> Result<(), DeviceError>;
    /// Make every write that completed before this call durable.
    fn flush(&self) -> Result<(), DeviceError>;
}

/// A shared reference to a device is a device (so wrappers can borrow).
impl<D: BlockIo + ?Sized> BlockIo for &D {
    fn size_bytes(&self) -> u64 {
        (**self).size_bytes()
    }

    fn sector_size_bytes(&self) -> u32 {
        (**self).sector_size_bytes()
    }

    fn write_at(&self, offset_bytes: u64, buf: &[u8]) -> Result<(), DeviceError> {
        (**self).write_at(offset_bytes, buf)
    }

    fn read_at(&self, offset_bytes: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        (**self).read_at(offset_bytes, buf)
    }

    fn flush(&self) -> Result<(), DeviceError> {
        (**self).flush()
    }
}

impl BlockIo for LogDevice {
    fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    fn sector_size_bytes(&self) -> u32 {
        self.sector_size_bytes
    }

    fn write_at(&self, offset_bytes: u64, buf: &[u8]) -> Result<(), DeviceError> {
        self.check_io(offset_bytes, buf.as_ptr() as usize, buf.len())?;
        self.file
            .write_all_at(buf, offset_bytes)
            .map_err(|error| self.io_error("pwrite", error))
    }

    fn read_at(&self, offset_bytes: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        self.check_io(offset_bytes, buf.as_ptr() as usize, buf.len())?;
        self.file
            .read_exact_at(buf, offset_bytes)
            .map_err(|error| self.io_error("pread", error))
    }

    fn flush(&self) -> Result<(), DeviceError> {
        // `sync_data` is fdatasync(2) on Linux and FreeBSD; on a block
        // device it makes the kernel send the disk a cache flush.
        self.file
            .sync_data()
            .map_err(|error| self.io_error("fdatasync", error))
    }
}

impl ReadOnlyDevice {
    /// Open `path` for reading only (for `rzil dump`): a read-only device is
    /// fine here, a missing path, a directory or a tiny file are not.
    pub fn open(path: &Path) -> Result<ReadOnlyDevice, DeviceError> {
        let (kind, meta) = inspect(path).map_err(|error| match error {
            DeviceError::Missing { path } => DeviceError::NothingToRead { path },
            other => other,
        })?;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_CLOEXEC)
            .open(path)
            .map_err(|error| classify_open_error(path, "open", error))?;
        let size_bytes = match kind {
            DeviceKind::File => meta.len(),
            DeviceKind::BlockDevice => block_device_size_bytes(&file, path)?,
        };
        Ok(ReadOnlyDevice {
            file,
            path: path.to_path_buf(),
            size_bytes,
        })
    }

    /// The path it was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its size in bytes.
    pub fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    /// Fill `buf` from `offset_bytes`; reading past the end is an error.
    pub fn read_at(&self, offset_bytes: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        let end = offset_bytes.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.size_bytes) {
            return Err(DeviceError::OutOfRange {
                offset_bytes,
                len_bytes: buf.len(),
                size_bytes: self.size_bytes,
            });
        }
        self.file
            .read_exact_at(buf, offset_bytes)
            .map_err(|source| DeviceError::Io {
                path: self.path.clone(),
                op: "pread",
                source,
            })
    }
}

/// Reads only: a write is refused as [`DeviceError::ReadOnly`] and a flush
/// has nothing to do.
impl BlockIo for ReadOnlyDevice {
    fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    fn sector_size_bytes(&self) -> u32 {
        SECTOR_SIZE_BYTES_DEFAULT
    }

    fn write_at(&self, _offset_bytes: u64, _buf: &[u8]) -> Result<(), DeviceError> {
        Err(DeviceError::ReadOnly {
            path: self.path.clone(),
        })
    }

    fn read_at(&self, offset_bytes: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        ReadOnlyDevice::read_at(self, offset_bytes, buf)
    }

    fn flush(&self) -> Result<(), DeviceError> {
        Ok(())
    }
}

/// Open read-write, with `O_DIRECT` if asked; if the filesystem refuses it
/// (EINVAL at open, or at the first aligned read, as tmpfs and some FUSE
/// filesystems do), reopen buffered and say why.
fn open_with_direct_fallback(
    path: &Path,
    direct: bool,
) -> Result<(File, bool, Option<String>), DeviceError> {
    if direct {
        match open_rw(path, true) {
            Ok(file) => match probe_direct_read(&file) {
                Ok(()) => return Ok((file, true, None)),
                Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                    let reason = format!(
                        "{}: the filesystem refuses O_DIRECT reads ({error}); using buffered I/O with fdatasync",
                        path.display()
                    );
                    let file = open_rw(path, false)
                        .map_err(|error| classify_open_error(path, "open", error))?;
                    return Ok((file, false, Some(reason)));
                }
                Err(error) => {
                    return Err(DeviceError::Io {
                        path: path.to_path_buf(),
                        op: "pread",
                        source: error,
                    })
                }
            },
            Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                let reason = format!(
                    "{}: the filesystem refuses O_DIRECT ({error}); using buffered I/O with fdatasync",
                    path.display()
                );
                let file = open_rw(path, false)
                    .map_err(|error| classify_open_error(path, "open", error))?;
                return Ok((file, false, Some(reason)));
            }
            Err(error) => return Err(classify_open_error(path, "open", error)),
        }
    }
    let file = open_rw(path, false).map_err(|error| classify_open_error(path, "open", error))?;
    Ok((file, false, None))
}

/// Hold an exclusive advisory lock on the device while it is open (it goes
/// with the descriptor). Two processes writing one log would each
/// overwrite the other's blocks and superblock updates, so records one of
/// them acknowledged would be lost at the next recovery; each one's own
/// crash check, which models only its own writes, would not see it. A
/// filesystem or device that cannot lock (ENOLCK, EOPNOTSUPP, ...) is used
/// unlocked, as before.
fn lock_exclusive(file: &File, path: &Path) -> Result<(), DeviceError> {
    use std::os::fd::AsRawFd;
    // SAFETY: flock(2) takes a descriptor and flags and touches no memory
    // of ours; the descriptor is open while `file` lives.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Err(DeviceError::InUse {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Read the first aligned unit through the `O_DIRECT` descriptor. A short
/// read (a file shorter than one unit) is fine: only EINVAL means refusal.
fn probe_direct_read(file: &File) -> io::Result<()> {
    let mut buf = AlignedBuf::zeroed(DIRECT_IO_ALIGN_BYTES);
    match file.read_at(&mut buf, 0) {
        Ok(_) => Ok(()),
        Err(error) => Err(error),
    }
}

fn create_file(path: &Path) -> Result<(), DeviceError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map(drop)
        .map_err(|error| classify_open_error(path, "create", error))?;
    // Make the new directory entry durable, so a power cut after we report
    // success cannot make the device vanish.
    if let Some(parent) = path.parent() {
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(dir) = File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

/// Set the file to `size_bytes`, reserve its space (so a size the
/// filesystem cannot hold fails now, with ENOSPC, not mid-run), and write
/// zeros over the part a log can use, so later `fdatasync`s flush data only
/// (no extent conversion in the filesystem journal) and measure the device,
/// not the filesystem. Past [`ZERO_FILL_BYTES_MAX`] nothing is ever written.
fn zero_fill(file: &File, path: &Path, size_bytes: u64) -> Result<(), DeviceError> {
    let io_error = |op, source| DeviceError::Io {
        path: path.to_path_buf(),
        op,
        source,
    };
    file.set_len(size_bytes).map_err(|error| {
        // EFBIG from ftruncate; InvalidInput from std for a size past
        // off_t (its message, an integer conversion, names nothing).
        if error.raw_os_error() == Some(libc::EFBIG) || error.kind() == io::ErrorKind::InvalidInput
        {
            DeviceError::FileTooLarge {
                path: path.to_path_buf(),
                size_bytes,
            }
        } else {
            io_error("ftruncate", error)
        }
    })?;
    reserve_space(file, size_bytes).map_err(|error| {
        if error.raw_os_error() == Some(libc::ENOSPC) {
            DeviceError::NoSpace {
                path: path.to_path_buf(),
                size_bytes,
            }
        } else {
            io_error("posix_fallocate", error)
        }
    })?;
    let zeros = AlignedBuf::zeroed(ZERO_FILL_CHUNK_BYTES);
    let fill_bytes = size_bytes.min(ZERO_FILL_BYTES_MAX);
    let mut offset_bytes = 0u64;
    while offset_bytes < fill_bytes {
        let chunk_bytes = (fill_bytes - offset_bytes).min(ZERO_FILL_CHUNK_BYTES as u64) as usize;
        file.write_all_at(&zeros[..chunk_bytes], offset_bytes)
            .map_err(|error| io_error("pwrite", error))?;
        offset_bytes += chunk_bytes as u64;
    }
    file.sync_all().map_err(|error| io_error("fsync", error))?;
    drop_cached_pages(file);
    Ok(())
}

/// Drop the clean pages of `file` from the kernel's cache
/// (`posix_fadvise(POSIX_FADV_DONTNEED)`), so a new device starts with
/// nothing cached. The zero fill's large writes otherwise leave its pages
/// cached the way it wrote them, and the first user's small writes pay for
/// that: on Linux 6.18/ext4, `rzil bench`'s naive baseline (64 threads,
/// 4 KiB `pwrite` + `fdatasync`) ran at 17-19k commits/s with 80-95 us of
/// CPU per commit on a freshly made file, against 45-50k on a file whose
/// cache held only pages its own writes had brought in.
///
/// Advice only: the device is whole and durable either way, so a system
/// that does not take it (any errno) leaves the pages cached and the
/// device is still made.
fn drop_cached_pages(file: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: posix_fadvise takes a descriptor, two integers and an advice
    // constant and touches no memory of ours; the descriptor is open while
    // `file` lives. Offset 0 and length 0 cover the whole file.
    let _ = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

/// Reserve `size_bytes` of blocks for `file`. A filesystem that cannot
/// reserve (EOPNOTSUPP, EINVAL) is not an error: the zero fill then
/// allocates what the log uses.
fn reserve_space(file: &File, size_bytes: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let Ok(len) = libc::off_t::try_from(size_bytes) else {
        return Err(io::Error::from_raw_os_error(libc::EFBIG));
    };
    // SAFETY: posix_fallocate takes a descriptor and two integers and
    // touches no memory of ours; the descriptor is open while `file` lives.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
    match rc {
        0 | libc::EOPNOTSUPP | libc::EINVAL => Ok(()),
        errno => Err(io::Error::from_raw_os_error(errno)),
    }
}

#[cfg(target_os = "linux")]
mod ioctls {
    //! Linux block-device ioctls (linux/fs.h). libc lacks BLKGETSIZE64 and
    //! BLKROGET, so they are spelled out from the kernel's `_IO`/`_IOR`.

    #[cfg(any(
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "sparc",
        target_arch = "sparc64"
    ))]
    const IOC_READ: u64 = 2 << 29;
    #[cfg(not(any(
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "sparc",
        target_arch = "sparc64"
    )))]
    const IOC_READ: u64 = 2 << 30;
    #[cfg(any(
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "sparc",
        target_arch = "sparc64"
    ))]
    const IOC_NONE: u64 = 1 << 29;
    #[cfg(not(any(
        target_arch = "mips",
        target_arch = "mips64",
        target_arch = "powerpc",
        target_arch = "powerpc64",
        target_arch = "sparc",
        target_arch = "sparc64"
    )))]
    const IOC_NONE: u64 = 0;

    /// The block-ioctl group, 0x12.
    const BLOCK_IOCTL_GROUP: u64 = 0x12;

    /// `BLKGETSIZE64` = `_IOR(0x12, 114, size_t)`: device size in bytes.
    pub const BLKGETSIZE64: u64 =
        IOC_READ | ((core::mem::size_of::<usize>() as u64) << 16) | (BLOCK_IOCTL_GROUP << 8) | 114;
    /// `BLKROGET` = `_IO(0x12, 94)`: non-zero when the device is read-only.
    pub const BLKROGET: u64 = IOC_NONE | (BLOCK_IOCTL_GROUP << 8) | 94;
    /// `BLKSSZGET` = `_IO(0x12, 104)`: logical sector size.
    pub const BLKSSZGET: u64 = IOC_NONE | (BLOCK_IOCTL_GROUP << 8) | 104;
}

#[cfg(target_os = "freebsd")]
mod ioctls {
    //! FreeBSD disk ioctls (sys/disk.h).
    /// `DIOCGMEDIASIZE` = `_IOR('d', 129, off_t)`: media size in bytes.
    pub const DIOCGMEDIASIZE: u64 = 0x4008_6481;
    /// `DIOCGSECTORSIZE` = `_IOR('d', 128, u_int)`: sector size in bytes.
    pub const DIOCGSECTORSIZE: u64 = 0x4004_6480;
}

#[cfg(target_os = "linux")]
fn block_device_size_bytes(file: &File, path: &Path) -> Result<u64, DeviceError> {
    use std::os::fd::AsRawFd;
    let mut size_bytes: u64 = 0;
    // SAFETY: BLKGETSIZE64 writes one u64 through the pointer, which points
    // at a live, writable, properly aligned u64 for the duration of the call;
    // the descriptor is open for as long as `file` lives.
    let rc = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            ioctls::BLKGETSIZE64 as _,
            &mut size_bytes as *mut u64,
        )
    };
    if rc != 0 {
        return Err(DeviceError::Io {
            path: path.to_path_buf(),
            op: "ioctl(BLKGETSIZE64)",
            source: io::Error::last_os_error(),
        });
    }
    Ok(size_bytes)
}

#[cfg(target_os = "linux")]
fn block_device_sector_size_bytes(file: &File) -> u32 {
    use std::os::fd::AsRawFd;
    let mut sector_size_bytes: libc::c_int = 0;
    // SAFETY: BLKSSZGET writes one int through the pointer, which points at
    // a live, writable, aligned c_int; the descriptor outlives the call.
    let rc = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            ioctls::BLKSSZGET as _,
            &mut sector_size_bytes as *mut libc::c_int,
        )
    };
    match u32::try_from(sector_size_bytes) {
        Ok(size) if rc == 0 && size.is_power_of_two() => size,
        _ => SECTOR_SIZE_BYTES_DEFAULT,
    }
}

#[cfg(target_os = "linux")]
fn block_device_read_only(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    let mut read_only: libc::c_int = 0;
    // SAFETY: BLKROGET writes one int through the pointer, which points at a
    // live, writable, aligned c_int; the descriptor outlives the call.
    let rc = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            ioctls::BLKROGET as _,
            &mut read_only as *mut libc::c_int,
        )
    };
    rc == 0 && read_only != 0
}

#[cfg(target_os = "freebsd")]
fn block_device_size_bytes(file: &File, path: &Path) -> Result<u64, DeviceError> {
    use std::os::fd::AsRawFd;
    let mut size_bytes: libc::off_t = 0;
    // SAFETY: DIOCGMEDIASIZE writes one off_t through the pointer, which
    // points at a live, writable, aligned off_t; the descriptor outlives
    // the call.
    let rc = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            ioctls::DIOCGMEDIASIZE as _,
            &mut size_bytes as *mut libc::off_t,
        )
    };
    if rc != 0 {
        return Err(DeviceError::Io {
            path: path.to_path_buf(),
            op: "ioctl(DIOCGMEDIASIZE)",
            source: io::Error::last_os_error(),
        });
    }
    Ok(size_bytes as u64)
}

#[cfg(target_os = "freebsd")]
fn block_device_sector_size_bytes(file: &File) -> u32 {
    use std::os::fd::AsRawFd;
    let mut sector_size_bytes: libc::c_uint = 0;
    // SAFETY: DIOCGSECTORSIZE writes one u_int through the pointer, which
    // points at a live, writable, aligned c_uint; the descriptor outlives
    // the call.
    let rc = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            ioctls::DIOCGSECTORSIZE as _,
            &mut sector_size_bytes as *mut libc::c_uint,
        )
    };
    if rc == 0 && sector_size_bytes.is_power_of_two() {
        sector_size_bytes
    } else {
        SECTOR_SIZE_BYTES_DEFAULT
    }
}

#[cfg(target_os = "freebsd")]
fn block_device_read_only(_file: &File) -> bool {
    // GEOM refuses a read-write open of a read-only provider with EROFS or
    // EPERM, which `classify_open_error` already reports as read-only.
    false
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
fn block_device_size_bytes(file: &File, path: &Path) -> Result<u64, DeviceError> {
    use std::io::Seek;
    // Elsewhere, seeking to the end of a disk device reports its size.
    let mut file = file;
    file.seek(io::SeekFrom::End(0))
        .map_err(|source| DeviceError::Io {
            path: path.to_path_buf(),
            op: "lseek",
            source,
        })
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
fn block_device_sector_size_bytes(_file: &File) -> u32 {
    SECTOR_SIZE_BYTES_DEFAULT
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd")))]
fn block_device_read_only(_file: &File) -> bool {
    false
}

/// A heap buffer aligned to [`DIRECT_IO_ALIGN_BYTES`], zero-initialised,
/// usable for `O_DIRECT` I/O.
///
/// # Invariants
/// `ptr` was returned by `alloc::alloc_zeroed(layout)` with a non-zero
/// `layout.size() == len` and is uniquely owned until `Drop`.
pub struct AlignedBuf {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
    layout: Layout,
}

// SAFETY: AlignedBuf uniquely owns its allocation (like Vec<u8>), so moving
// it to another thread or sharing `&AlignedBuf` (read-only bytes) is sound.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared references only give out `&[u8]`; see Send above.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed buffer of `len_bytes`, rounded up to a whole number of
    /// aligned units (at least one).
    pub fn zeroed(len_bytes: usize) -> AlignedBuf {
        let align = DIRECT_IO_ALIGN_BYTES;
        let len = len_bytes.max(1).div_ceil(align) * align;
        let layout = Layout::from_size_align(len, align)
            .expect("aligned buffer length overflows isize, a caller bug");
        // SAFETY: `layout` has a non-zero size (len >= align > 0).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let Some(ptr) = std::ptr::NonNull::new(raw) else {
            alloc::handle_alloc_error(layout)
        };
        // INVARIANT: ptr comes from alloc_zeroed(layout), layout.size() == len.
        AlignedBuf { ptr, len, layout }
    }

    /// Length in bytes (a multiple of [`DIRECT_IO_ALIGN_BYTES`]).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: the buffer holds at least one aligned unit.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Deref for AlignedBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        // SAFETY: invariant: ptr holds `len` initialised bytes owned by self
        // (zeroed at allocation, written only via `&mut self`); the shared
        // borrow of self keeps them alive and free of any `&mut`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl DerefMut for AlignedBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `deref`, and the exclusive borrow of self guarantees
        // no other reference to the bytes exists.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: by the invariant, ptr was allocated with exactly `layout`
        // and has not been freed (Drop runs once).
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

impl fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .finish()
    }
}

/// An in-memory device: the device a crash image is replayed from, and the
/// device unit tests use. Interior mutability behind a lock so it is
/// `BlockIo` like the real thing; flush is a no-op (memory is "durable").
#[derive(Debug)]
pub struct MemDevice {
    bytes: parking_lot::Mutex<Vec<u8>>,
    sector_size_bytes: u32,
}

impl MemDevice {
    /// A zeroed device of `size_bytes`.
    pub fn zeroed(size_bytes: usize) -> MemDevice {
        MemDevice::from_image(vec![0; size_bytes])
    }

    /// A device holding `image`.
    pub fn from_image(image: Vec<u8>) -> MemDevice {
        MemDevice {
            bytes: parking_lot::Mutex::new(image),
            sector_size_bytes: SECTOR_SIZE_BYTES_DEFAULT,
        }
    }

    /// A copy of the whole image.
    pub fn snapshot(&self) -> Vec<u8> {
        self.bytes.lock().clone()
    }

    fn range(
        &self,
        offset_bytes: u64,
        len_bytes: usize,
    ) -> Result<std::ops::Range<usize>, DeviceError> {
        let size_bytes = self.bytes.lock().len() as u64;
        match offset_bytes.checked_add(len_bytes as u64) {
            Some(end) if end <= size_bytes => Ok(offset_bytes as usize..end as usize),
            _ => Err(DeviceError::OutOfRange {
                offset_bytes,
                len_bytes,
                size_bytes,
            }),
        }
    }
}

impl BlockIo for MemDevice {
    fn size_bytes(&self) -> u64 {
        self.bytes.lock().len() as u64
    }

    fn sector_size_bytes(&self) -> u32 {
        self.sector_size_bytes
    }

    fn write_at(&self, offset_bytes: u64, buf: &[u8]) -> Result<(), DeviceError> {
        let range = self.range(offset_bytes, buf.len())?;
        self.bytes.lock()[range].copy_from_slice(buf);
        Ok(())
    }

    fn read_at(&self, offset_bytes: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        let range = self.range(offset_bytes, buf.len())?;
        buf.copy_from_slice(&self.bytes.lock()[range]);
        Ok(())
    }

    fn flush(&self) -> Result<(), DeviceError> {
        Ok(())
    }
}

/// A fresh scratch directory under the system temp dir, unique per test
/// and process.
#[cfg(test)]
pub(crate) fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rzil-host-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIZE_BYTES: u64 = 4 * 1024 * 1024;

    fn create_opts() -> OpenOptionsLog {
        OpenOptionsLog {
            create_size_bytes: Some(SIZE_BYTES),
            create: true,
            direct: false,
        }
    }

    #[test]
    fn create_then_reopen_keeps_data() {
        let dir = scratch_dir("reopen");
        let path = dir.join("dev");
        let dev = LogDevice::open(&path, create_opts()).unwrap();
        assert!(dev.was_created());
        assert_eq!(dev.size_bytes(), SIZE_BYTES);
        assert_eq!(dev.kind(), DeviceKind::File);
        let mut block = AlignedBuf::zeroed(4096);
        block[..5].copy_from_slice(b"hello");
        dev.write_at(8192, &block).unwrap();
        dev.flush().unwrap();
        drop(dev);
        let dev = LogDevice::open(&path, OpenOptionsLog::default()).unwrap();
        assert!(!dev.was_created());
        let mut back = AlignedBuf::zeroed(4096);
        dev.read_at(8192, &mut back).unwrap();
        assert_eq!(&back[..5], b"hello");
        assert!(back[5..].iter().all(|&b| b == 0));
    }

    #[test]
    fn bad_paths_are_named_errors() {
        let dir = scratch_dir("bad");
        let missing = LogDevice::open(&dir.join("nope"), OpenOptionsLog::default()).unwrap_err();
        assert!(matches!(missing, DeviceError::Missing { .. }), "{missing}");
        assert!(missing.to_string().contains("no such file"));
        let is_dir = LogDevice::open(&dir, OpenOptionsLog::default()).unwrap_err();
        assert!(
            matches!(is_dir, DeviceError::IsDirectory { .. }),
            "{is_dir}"
        );

        let small = dir.join("small");
        std::fs::write(&small, vec![0u8; 64 * 1024]).unwrap();
        let too_small = LogDevice::open(&small, OpenOptionsLog::default()).unwrap_err();
        assert!(
            matches!(
                too_small,
                DeviceError::TooSmall {
                    size_bytes: 65536,
                    ..
                }
            ),
            "{too_small}"
        );
        assert!(
            too_small.to_string().contains("minimum is 2 MiB"),
            "{too_small}"
        );

        let read_only = dir.join("ro");
        std::fs::write(&read_only, vec![0u8; SIZE_BYTES as usize]).unwrap();
        std::fs::set_permissions(&read_only, std::fs::Permissions::from_mode(0o444)).unwrap();
        let ro = LogDevice::open(&read_only, OpenOptionsLog::default()).unwrap_err();
        assert!(matches!(ro, DeviceError::ReadOnly { .. }), "{ro}");

        let create_tiny = LogDevice::open(
            &dir.join("tiny"),
            OpenOptionsLog {
                create_size_bytes: Some(4096),
                create: true,
                direct: false,
            },
        )
        .unwrap_err();
        assert!(
            matches!(create_tiny, DeviceError::TooSmall { .. }),
            "{create_tiny}"
        );
    }

    #[test]
    fn errno_classification() {
        let path = Path::new("/x");
        let of = |errno| classify_open_error(path, "open", io::Error::from_raw_os_error(errno));
        assert!(matches!(
            of(libc::EACCES),
            DeviceError::PermissionDenied { .. }
        ));
        assert!(matches!(of(libc::EROFS), DeviceError::ReadOnly { .. }));
        assert!(matches!(of(libc::ENOENT), DeviceError::Missing { .. }));
        assert!(matches!(of(libc::EIO), DeviceError::Io { op: "open", .. }));
    }

    #[test]
    fn io_is_bounds_and_alignment_checked() {
        let dir = scratch_dir("bounds");
        let dev = LogDevice::open(&dir.join("dev"), create_opts()).unwrap();
        let buf = AlignedBuf::zeroed(4096);
        let err = dev.write_at(SIZE_BYTES - 2048, &buf).unwrap_err();
        assert!(matches!(err, DeviceError::OutOfRange { .. }), "{err}");
        let err = dev.write_at(u64::MAX - 10, &buf).unwrap_err();
        assert!(matches!(err, DeviceError::OutOfRange { .. }), "{err}");
    }

    /// Pages of `path` the kernel caches, and pages in all: `mincore(2)` over
    /// a read-only shared mapping of the whole file. `None` on a filesystem
    /// whose pages are its only copy (tmpfs), which no advice evicts.
    #[cfg(target_os = "linux")]
    fn cached_pages(path: &Path) -> Option<(usize, usize)> {
        use std::os::fd::AsRawFd;
        const TMPFS_MAGIC: i64 = 0x0102_1994;
        let file = File::open(path).unwrap();
        // SAFETY: `statfs` is a struct of plain integers, for which all-zero
        // bits are a valid value.
        let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: the descriptor is open while `file` lives; `fs` is ours.
        assert_eq!(unsafe { libc::fstatfs(file.as_raw_fd(), &mut fs) }, 0);
        if fs.f_type as i64 == TMPFS_MAGIC {
            return None;
        }
        let len = file.metadata().unwrap().len() as usize;
        // SAFETY: sysconf reads a constant of the system.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) } as usize;
        let mut resident = vec![0u8; len.div_ceil(page)];
        // SAFETY: maps `len` bytes of a descriptor open for reading, shared
        // and read-only, where the kernel chooses; nothing reads through the
        // mapping, and it is unmapped below while `file` is still open.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        assert_ne!(addr, libc::MAP_FAILED);
        // SAFETY: `addr..addr + len` is the mapping made above and
        // `resident` holds one byte per page of it.
        let rc = unsafe { libc::mincore(addr, len, resident.as_mut_ptr()) };
        // SAFETY: unmaps exactly that mapping, which nothing refers to.
        unsafe { libc::munmap(addr, len) };
        assert_eq!(rc, 0);
        Some((
            resident.iter().filter(|b| *b & 1 != 0).count(),
            resident.len(),
        ))
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_created_device_starts_with_nothing_cached() {
        let dir = scratch_dir("cold");
        let path = dir.join("dev");
        let dev = LogDevice::open(&path, create_opts()).unwrap();
        let Some((cached, pages)) = cached_pages(&path) else {
            eprintln!("skipped: {} is on tmpfs", dir.display());
            return;
        };
        // The zero fill wrote every page; none of them may stay cached for
        // the first writer to inherit (a page the kernel is still dropping
        // may linger, never most of them).
        assert!(
            cached * 16 <= pages,
            "{cached} of {pages} pages cached after create"
        );
        // And the count sees pages when there are some: write a quarter.
        let block = AlignedBuf::zeroed(SIZE_BYTES as usize / 4);
        dev.write_at(0, &block).unwrap();
        let (cached, _) = cached_pages(&path).unwrap();
        assert!(
            cached * 4 >= pages,
            "only {cached} of {pages} pages cached after a write"
        );
    }

    #[test]
    fn direct_io_or_a_stated_fallback() {
        let dir = scratch_dir("direct");
        let dev = LogDevice::open(
            &dir.join("dev"),
            OpenOptionsLog {
                direct: true,
                ..create_opts()
            },
        )
        .unwrap();
        // Either O_DIRECT is on, or the reason it is not is recorded.
        assert_eq!(dev.is_direct(), dev.direct_fallback().is_none());
        let mut buf = AlignedBuf::zeroed(4096);
        buf[0] = 7;
        dev.write_at(4096, &buf).unwrap();
        if dev.is_direct() {
            let err = dev.write_at(100, &buf).unwrap_err();
            assert!(matches!(err, DeviceError::Misaligned { .. }), "{err}");
        }
        let mut back = AlignedBuf::zeroed(4096);
        dev.read_at(4096, &mut back).unwrap();
        assert_eq!(back[0], 7);
    }

    #[test]
    fn tmpfs_refuses_direct_and_we_fall_back() {
        // /dev/shm is tmpfs on Linux, which refuses O_DIRECT opens.
        let shm = Path::new("/dev/shm");
        if !cfg!(target_os = "linux") || !shm.is_dir() {
            return;
        }
        let path = shm.join(format!("rzil-host-direct-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let dev = LogDevice::open(
            &path,
            OpenOptionsLog {
                direct: true,
                ..create_opts()
            },
        )
        .unwrap();
        let refused = !dev.is_direct();
        let reason = dev.direct_fallback().map(str::to_owned);
        drop(dev);
        std::fs::remove_file(&path).unwrap();
        if refused {
            assert!(reason.unwrap().contains("O_DIRECT"));
        }
    }

    #[test]
    fn aligned_buf_is_aligned_and_rounded() {
        let buf = AlignedBuf::zeroed(100);
        assert_eq!(buf.len(), DIRECT_IO_ALIGN_BYTES);
        assert_eq!(buf.as_ptr() as usize % DIRECT_IO_ALIGN_BYTES, 0);
        assert!(buf.iter().all(|&b| b == 0));
        assert!(!buf.is_empty());
    }

    #[test]
    fn mem_device_round_trip() {
        let dev = MemDevice::zeroed(8192);
        dev.write_at(10, b"abc").unwrap();
        let mut back = [0u8; 3];
        dev.read_at(10, &mut back).unwrap();
        assert_eq!(&back, b"abc");
        assert!(dev.write_at(8190, b"abc").is_err());
    }
}
