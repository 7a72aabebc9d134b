//! rzil.ko's Rust side: the FreeBSD kernel platform for the `rzil` core.
//!
//! Built as a `no_std` static library for the custom kernel target
//! `kmod/x86_64-rzil-freebsd-kernel.json` (kernel code model, no red zone,
//! soft-float, static relocations, panic = abort) with `-Zbuild-std=core`,
//! then linked with the C shim (`kmod/*.c`) into `rzil.ko`.
//!
//! Layers, bottom up. [`ffi`] only declares the shim's functions; the
//! layers above call them, so [`sync`], [`kmem`], [`platform`] and
//! [`exports`] (and the panic handler) all hold `unsafe` blocks, each with
//! its `SAFETY` proof; [`errno`] has none.
//! * [`ffi`]: bindgen's declarations of the shim and the KPI types.
//! * [`sync`], [`kmem`]: mtx(9)/condvar(9) and UMA zones as Rust types.
//! * [`platform`]: `rzil::platform::Platform` for the kernel, including
//!   the lwb state hook behind the sysctl counters and the SDT probe.
//! * [`exports`]: the `rzil_core_*` entry points the C shim calls; they
//!   take the shim's raw pointers and build each instance in place.
//!
//! The panic handler (`panic.rs`) hands the message to the shim's panic(9).
// Host unit tests (`kmod-build.sh lint`) of the pure parts use std.
#![cfg_attr(not(test), no_std)]

pub mod errno;
pub mod exports;
pub mod ffi;
pub mod kmem;
pub mod platform;
pub mod sync;

#[cfg(not(test))]
mod panic;
