//! rzil: the OpenZFS ZIL log-write-block (lwb) path as a `no_std` core.
#![no_std]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), warn(missing_docs))]

#[cfg(test)]
extern crate std;
pub mod format;
