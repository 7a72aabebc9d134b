//! Mapping between the core's errors and FreeBSD errno values.

use crate::ffi;
use rzil::error::{Error, IoError};

/// The errno a caller of the control device sees for a core error.
pub fn from_error(err: Error) -> i32 {
    let e = match err {
        Error::Backpressure(_) => ffi::EAGAIN,
        Error::NoLogSpace => ffi::ENOSPC,
        Error::Io(IoError::NoSpace) => ffi::ENOSPC,
        Error::Io(IoError::NotSupported) => ffi::EOPNOTSUPP,
        Error::Io(IoError::Io) | Error::LogFailed => ffi::EIO,
        Error::InvalidRecord(_) => ffi::EINVAL,
        Error::StaleHandle | Error::UnexpectedCompletion => ffi::ESTALE,
    };
    e as i32
}

/// How the core sees a finished bio's `bio_error`.
pub fn to_io_result(bio_error: i32) -> Result<(), IoError> {
    match bio_error as u32 {
        0 => Ok(()),
        ffi::EOPNOTSUPP => Err(IoError::NotSupported),
        ffi::ENOSPC => Err(IoError::NoSpace),
        _ => Err(IoError::Io),
    }
}
