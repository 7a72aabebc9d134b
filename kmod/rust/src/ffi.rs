//! bindgen's output for `bindings/wrapper.h`: the `rzil_shim_*` services
//! of the C shim, the structures of `kmod/rzil_kmod.h` and
//! `kmod/rzil_ioctl.h`, and the KPI types the Rust side embeds (`struct
//! mtx`, `struct cv`). Generated into `OUT_DIR` by `build.rs`; bindgen's
//! layout tests check every size and offset at compile time.
#![allow(
    missing_docs,
    missing_debug_implementations,
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    dead_code,
    clippy::all,
    clippy::undocumented_unsafe_blocks
)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
