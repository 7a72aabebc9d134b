//! Print the C `_Static_assert`s that hold host/src/kernel/abi.rs to
//! kmod/rzil_ioctl.h; `make check-kernel-abi` compiles them with clang for
//! x86_64-unknown-freebsd against the header (scripts/check-kernel-abi.sh).

fn main() {
    print!("{}", rzil_host::kernel::abi::c_layout_asserts());
}
