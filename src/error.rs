//! Errors are values: every outcome a caller can meet has a name.

use core::fmt;

/// Which bound was reached, for [`Error::Backpressure`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    /// [`crate::Config::commit_list_itxs_max`] (at most
    /// [`crate::limits::COMMIT_LIST_ITXS_MAX`]).
    CommitListItxs,
    /// [`crate::limits::COMMIT_WAITERS_MAX`].
    CommitWaiters,
    /// [`crate::limits::LWB_INFLIGHT_MAX`].
    LwbsInflight,
    /// The platform's itx pool is empty.
    ItxPool,
    /// The platform's lwb pool is empty.
    LwbPool,
    /// The platform's block-buffer pool is empty.
    BufPool,
    /// The log device has no room for the next log block; a checkpoint
    /// frees blocks.
    LogSpace,
    /// The platform could not allocate the log's tables
    /// ([`crate::Platform::alloc_slots`]) when the log was created.
    Tables,
}

/// An I/O outcome reported by the platform for a write or flush.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoError {
    /// The device failed the request (EIO).
    Io,
    /// The device does not implement cache flushes (ENOTSUP); for a flush
    /// this is not a failure: the vdev is marked as having no write cache.
    NotSupported,
    /// The device is full or the range is outside it (ENOSPC).
    NoSpace,
}

/// Everything the core can answer other than success.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A named bound was reached; retry after in-flight work completes or a
    /// checkpoint releases lwbs.
    Backpressure(Limit),
    /// The platform could not allocate the first log block of a new chain.
    NoLogSpace,
    /// A write or flush of this lwb, or of an lwb ordered before it, failed:
    /// the commit is NOT durable.
    Io(IoError),
    /// The log failed earlier (I/O error or no space) and accepts no new
    /// records or commits. Its chain stays readable up to the last lwb
    /// that completed: replay it and start a new log to go on.
    LogFailed,
    /// A record is malformed or over a limit (the message names which).
    InvalidRecord(&'static str),
    /// A handle refers to an object that has since been freed or reused.
    StaleHandle,
    /// A completion arrived for an I/O the core did not submit, or twice.
    UnexpectedCompletion,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Backpressure(l) => write!(f, "back-pressure: limit {l:?} reached"),
            Error::NoLogSpace => f.write_str("no space for the next log block"),
            Error::Io(e) => write!(f, "log I/O failed: {e:?}"),
            Error::LogFailed => f.write_str("log failed earlier; replay it and start a new log"),
            Error::InvalidRecord(why) => write!(f, "invalid record: {why}"),
            Error::StaleHandle => f.write_str("stale handle (object freed or reused)"),
            Error::UnexpectedCompletion => f.write_str("completion for an I/O not in flight"),
        }
    }
}
