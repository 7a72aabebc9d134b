//! Generates the FFI declarations of rzil.ko's Rust side with bindgen, from
//! `bindings/wrapper.h` (FreeBSD KPI types + `kmod/rzil_kmod.h`), using the
//! same compiler flags as the C shim so both sides agree on every layout.
//!
//! The flags come from `RZIL_KMOD_CLANG_ARGS` (one argument per line), set
//! by `scripts/kmod-build.sh` on Linux and by `kmod/Makefile` on FreeBSD.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=RZIL_KMOD_CLANG_ARGS");
    println!("cargo:rerun-if-changed=bindings/wrapper.h");
    println!("cargo:rerun-if-changed=../rzil_kmod.h");
    println!("cargo:rerun-if-changed=../rzil_ioctl.h");

    let clang_args: Vec<String> = env::var("RZIL_KMOD_CLANG_ARGS")
        .expect("RZIL_KMOD_CLANG_ARGS is unset: build through `make kmod` or kmod/Makefile")
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(String::from)
        .collect();

    let bindings = bindgen::Builder::default()
        .header("bindings/wrapper.h")
        .clang_args(&clang_args)
        .use_core()
        .ctypes_prefix("core::ffi")
        .size_t_is_usize(true)
        .default_enum_style(bindgen::EnumVariation::Consts)
        .prepend_enum_name(false)
        .derive_default(false)
        .derive_debug(false)
        .layout_tests(true)
        .generate_comments(false)
        // KPI types the Rust side embeds or names.
        .allowlist_type("mtx")
        .allowlist_type("cv")
        .allowlist_type("bio")
        .allowlist_type("g_consumer")
        .allowlist_type("uma_zone")
        .allowlist_type("rzil_.*")
        // The shim's services; the rzil_core_* entry points are defined in
        // Rust (exports.rs), so they are not imported.
        .allowlist_function("rzil_shim_.*")
        .allowlist_var("E[A-Z0-9]+")
        .allowlist_var("RZIL_.*")
        .allowlist_var("EWOULDBLOCK")
        .generate()
        .expect("bindgen failed on bindings/wrapper.h");

    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR")).join("bindings.rs");
    bindings
        .write_to_file(&out)
        .expect("cannot write the generated bindings");
}
