//! Build script of the core crate. Its only job: with the `openzfs-layout`
//! feature, run bindgen over `bindings/openzfs.h` (which includes OpenZFS's
//! own headers from the Debian zfs-linux source that scripts/openzfs-src.sh
//! caches) and write the Rust types to `OUT_DIR/openzfs.rs`, where
//! `src/format/layout.rs` pins our on-disk types to them. Without the
//! feature it does nothing.

#[cfg(feature = "openzfs-layout")]
use std::{env, path::PathBuf};

/// The OpenZFS release whose headers we pin to (Debian's bookworm-backports).
#[cfg(feature = "openzfs-layout")]
const OPENZFS_VERSION: &str = "2.3.2";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "openzfs-layout")]
    generate_openzfs_bindings();
}

/// Where the OpenZFS source is: `RZIL_OPENZFS_SRC` (set by mk/format.mk), or
/// the cache folder scripts/openzfs-src.sh fills by default.
#[cfg(feature = "openzfs-layout")]
fn openzfs_source() -> PathBuf {
    println!("cargo:rerun-if-env-changed=RZIL_OPENZFS_SRC");
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let (src, from_env) = match env::var_os("RZIL_OPENZFS_SRC") {
        Some(s) if !s.is_empty() => (PathBuf::from(s), true),
        _ => (
            manifest_dir
                .join(".cache/openzfs")
                .join(format!("zfs-{OPENZFS_VERSION}")),
            false,
        ),
    };
    if !src.join("include/sys/zil.h").is_file() {
        let how = if from_env {
            "RZIL_OPENZFS_SRC points there"
        } else {
            "RZIL_OPENZFS_SRC is unset, so the default cache folder was tried"
        };
        panic!(
            "\n\nfeature `openzfs-layout` needs the OpenZFS {OPENZFS_VERSION} source, and {} \
             has no include/sys/zil.h ({how}).\nRun `scripts/openzfs-src.sh` (it prints the \
             folder) and set RZIL_OPENZFS_SRC to it; `make test` does both.\n\n",
            src.display()
        );
    }
    src
}

#[cfg(feature = "openzfs-layout")]
fn generate_openzfs_bindings() {
    let src = openzfs_source();
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let wrapper = manifest_dir.join("bindings/openzfs.h");
    println!("cargo:rerun-if-changed={}", wrapper.display());
    println!(
        "cargo:rerun-if-changed={}",
        src.join("include/sys/zil.h").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        src.join("include/sys/spa.h").display()
    );

    // The include path of OpenZFS's userspace (libzpool) build, as its
    // config/Rules.am sets it; no defines are needed for these headers.
    let includes = [
        "include",
        "module/icp/include",
        "lib/libspl/include",
        "lib/libspl/include/os/linux",
        "lib/libzpool/include",
    ];
    let mut builder = bindgen::Builder::default()
        .header(wrapper.to_string_lossy())
        .use_core()
        .layout_tests(false)
        .derive_debug(false)
        .derive_copy(false)
        .generate_comments(false)
        // Only the on-disk types and constants we pin; nothing callable.
        .allowlist_type("zio_cksum_t|dva_t|blkptr_t|zio_eck_t|zil_chain_t|lr_t|lr_write_t|zil_header_t")
        .allowlist_var("ZEC_MAGIC|ZIL_MIN_BLKSZ|ZIL_ZC_.*|TX_.*|ZIL_REPLAY_NEEDED|ZIL_CLAIM_LR_SEQ_VALID|SPA_MINBLOCKSHIFT|SPA_MAXBLOCKSIZE|SPA_BLKPTRSHIFT")
        .allowlist_type("zio_checksum|dmu_object_type|zio_compress")
        .rustified_enum("zio_checksum|dmu_object_type|zio_compress")
        // bindgen's helper for C flexible arrays (`lr_data[]`) has unsafe
        // accessors; a zero-length array has the same size (0) and leaves
        // every offset before it unchanged, and keeps the generated code free
        // of unsafe in our forbid(unsafe_code) crate.
;
    for inc in includes {
        builder = builder.clang_arg(format!("-I{}", src.join(inc).display()));
    }
    let bindings = builder.generate().unwrap_or_else(|e| {
        panic!(
            "bindgen over {} with OpenZFS headers from {} failed: {e}\n(libclang comes from \
             Debian's libclang-dev; scripts/openzfs-src.sh installs it)",
            wrapper.display(),
            src.display()
        )
    });
    let text = without_flexarray_helper(&bindings.to_string());
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("openzfs.rs");
    std::fs::write(&out, text).unwrap_or_else(|e| panic!("writing {}: {e}", out.display()));
}

/// The generated code with bindgen's `__IncompleteArrayField<T>` helper (its
/// struct and impls, which hold unsafe code) replaced by a zero-length-array
/// alias. Works on top-level items: a run of attribute lines plus the lines
/// up to the brace depth returning to zero.
#[cfg(feature = "openzfs-layout")]
fn without_flexarray_helper(text: &str) -> String {
    let mut out = String::from(
        "/* bindgen output; flexible-array helper replaced by build.rs */\npub type __IncompleteArrayField<T> = [T; 0];\n",
    );
    let mut item: Vec<&str> = Vec::new();
    let mut depth = 0i64;
    for line in text.lines() {
        item.push(line);
        depth += line.matches('{').count() as i64 - line.matches('}').count() as i64;
        let trimmed = line.trim_start();
        let is_attr_or_blank =
            trimmed.starts_with("#[") || trimmed.starts_with("/*") || trimmed.is_empty();
        if depth == 0 && !is_attr_or_blank {
            let head = item
                .iter()
                .find(|l| {
                    let t = l.trim_start();
                    !(t.starts_with("#[") || t.starts_with("/*") || t.is_empty())
                })
                .copied()
                .unwrap_or("");
            if !head.contains("__IncompleteArrayField<T>") {
                for l in &item {
                    out.push_str(l);
                    out.push('\n');
                }
            }
            item.clear();
        }
    }
    for l in &item {
        out.push_str(l);
        out.push('\n');
    }
    out
}
