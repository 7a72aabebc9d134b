//! rzil: the OpenZFS ZIL log-write-block (lwb) path as a `no_std` core.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(missing_docs))]

#[cfg(any(test, feature = "testkit"))]
extern crate std;
pub mod format;

mod bounded;
pub mod error;
pub mod itx;
pub mod limits;
pub mod lwb;
pub mod plan;
pub mod platform;
pub mod zil;

#[cfg(any(test, feature = "testkit"))]
pub mod testkit;

pub use error::{Error, IoError, Limit};
pub use itx::{Record, WriteData, WriteKind};
pub use platform::{AllocError, BlockAddr, IndirectBlock, IoKind, IoToken, Platform, WaiterId};
pub use zil::{
    ChainHead, CheckpointOutcome, Config, LwbView, Stats, WaitStatus, WaiterView, WaiterWait, Zil,
};
