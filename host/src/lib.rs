//! rzil's std platform: log devices on files and block devices, our
//! superblock, the log-block ring, the crash-recording device layer and the
//! naive `pwrite` + `fdatasync` baseline. The `rzil` binary (`main.rs`,
//! `cli.rs`) is a thin layer over these modules.
//!
//! Who touches what: a [`device::LogDevice`] is shared by reference between
//! committer and completion threads (positional I/O needs no lock); the
//! [`ring::Ring`] and [`crashdev::RecordingDevice`] state are each behind one
//! lock owned by whoever holds them.

pub mod backend;
pub mod cputime;
pub mod crashdev;
pub mod device;
pub mod futex;
pub mod histogram;
pub mod kernel;
pub mod naive;
pub mod platform;
pub mod ring;
pub mod rng;
pub mod simd;
pub mod superblock;
pub mod units;
pub mod verify;
pub mod volume;
