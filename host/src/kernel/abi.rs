//! The Rust view of `kmod/rzil_ioctl.h`, the ioctl ABI of `/dev/rzilctl`.
//!
//! Written by hand (so that building `rzil` on FreeBSD needs no libclang)
//! and held to the header by `make check-kernel-abi`: [`c_layout_asserts`]
//! renders every size, field offset, field size, constant and request
//! number below as a C `_Static_assert`, which clang compiles against the
//! real header for `x86_64-unknown-freebsd`. A header change that this file
//! does not follow fails `make test`. The assertions are rendered by the
//! build host (x86_64 Linux in CI); these structures hold only fixed-width
//! integers with explicit padding fields, so their layout is the same on
//! every x86_64 target, FreeBSD's included.
//!
//! Request numbers use FreeBSD's encoding (`sys/ioccom.h`), not Linux's:
//! the direction bits are the top three (`IOC_VOID` 0x2000_0000, `IOC_OUT`
//! 0x4000_0000, `IOC_IN` 0x8000_0000) and the length has 13 bits.

use std::fmt::Write;
use std::mem::{offset_of, size_of};

/// Name of the control device under `/dev` (`RZIL_CTL_NAME`).
pub const RZIL_CTL_NAME: &str = "rzilctl";
/// Bytes of a provider name, NUL included (`RZIL_PROVIDER_NAME_MAX`).
pub const RZIL_PROVIDER_NAME_MAX: usize = 64;
/// Providers attached at once (`RZIL_INSTANCES_MAX`).
pub const RZIL_INSTANCES_MAX: u32 = 4;
/// Largest payload of one record, WR_COPIED (`RZIL_RECORD_BYTES_MAX`).
pub const RZIL_RECORD_BYTES_MAX: u32 = 7680;
/// Buckets of the module's log2(ns) commit histogram.
pub const RZIL_LATENCY_BUCKETS: usize = 32;
/// lwb states counted by `RZIL_IOC_STATS` (`enum rzil_lwb_state`).
pub const RZIL_LWB_STATES: usize = 7;
/// Names of the lwb states, in `enum rzil_lwb_state` order (value = index).
pub const RZIL_LWB_STATE_NAMES: [&str; RZIL_LWB_STATES] = [
    "new",
    "opened",
    "closed",
    "ready",
    "issued",
    "write_done",
    "flush_done",
];
/// The C enumerator of each state, for the layout check.
const RZIL_LWB_STATE_ENUMERATORS: [&str; RZIL_LWB_STATES] = [
    "RZIL_LWB_NEW",
    "RZIL_LWB_OPENED",
    "RZIL_LWB_CLOSED",
    "RZIL_LWB_READY",
    "RZIL_LWB_ISSUED",
    "RZIL_LWB_WRITE_DONE",
    "RZIL_LWB_FLUSH_DONE",
];

/// `RZIL_IOC_ATTACH`: attach an instance to a GEOM provider.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RzilIocAttach {
    pub ra_size: u32,
    pub ra_instance: u32,
    pub ra_provider: [u8; RZIL_PROVIDER_NAME_MAX],
    pub ra_media_size_bytes: u64,
    pub ra_sector_size_bytes: u32,
    pub ra_pad: u32,
}

/// `RZIL_IOC_APPEND`: assign one TX_WRITE record; the payload is read from
/// user memory at `rr_payload`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RzilIocAppend {
    pub rr_size: u32,
    pub rr_instance: u32,
    pub rr_foid: u64,
    pub rr_offset_bytes: u64,
    pub rr_payload: u64,
    pub rr_payload_bytes: u32,
    pub rr_pad: u32,
}

/// `RZIL_IOC_COMMIT`: make every record assigned so far durable.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RzilIocCommit {
    pub rc_size: u32,
    pub rc_instance: u32,
    pub rc_foid: u64,
    pub rc_latency_ns: u64,
}

/// `RZIL_IOC_CHECKPOINT` / `RZIL_IOC_DETACH`: instance-only requests.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RzilIocInstance {
    pub ri_size: u32,
    pub ri_instance: u32,
}

/// `RZIL_IOC_STATS`: one instance's counters.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RzilIocStats {
    pub rs_size: u32,
    pub rs_instance: u32,
    pub rs_records: u64,
    pub rs_commits: u64,
    pub rs_lwbs_issued: u64,
    pub rs_flushes: u64,
    pub rs_io_errors: u64,
    pub rs_bytes_written: u64,
    pub rs_lwbs_in_state: [u64; RZIL_LWB_STATES],
    pub rs_commit_latency_ns_max: u64,
}

/// `sizeof` of an argument structure as its `*_size` field holds it.
const fn size_u32<T>() -> u32 {
    let bytes = size_of::<T>();
    assert!(bytes <= u32::MAX as usize);
    bytes as u32
}

impl RzilIocAttach {
    /// A request to attach `provider`, with every other field zero.
    /// `provider` must leave room for the NUL (the caller checks).
    pub fn new(provider: &[u8]) -> RzilIocAttach {
        let mut name = [0u8; RZIL_PROVIDER_NAME_MAX];
        let n = provider.len().min(RZIL_PROVIDER_NAME_MAX - 1);
        name[..n].copy_from_slice(&provider[..n]);
        RzilIocAttach {
            ra_size: size_u32::<RzilIocAttach>(),
            ra_instance: 0,
            ra_provider: name,
            ra_media_size_bytes: 0,
            ra_sector_size_bytes: 0,
            ra_pad: 0,
        }
    }

    /// The provider name up to its NUL (lossy if not UTF-8).
    pub fn provider(&self) -> String {
        let end = self
            .ra_provider
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(RZIL_PROVIDER_NAME_MAX);
        String::from_utf8_lossy(&self.ra_provider[..end]).into_owned()
    }
}

impl RzilIocAppend {
    /// A record of `payload` for object `foid` at `offset_bytes`. The
    /// structure holds `payload`'s address: it must not outlive it.
    pub fn new(instance: u32, foid: u64, offset_bytes: u64, payload: &[u8]) -> RzilIocAppend {
        RzilIocAppend {
            rr_size: size_u32::<RzilIocAppend>(),
            rr_instance: instance,
            rr_foid: foid,
            rr_offset_bytes: offset_bytes,
            rr_payload: payload.as_ptr() as usize as u64,
            // Callers bound records by RZIL_RECORD_BYTES_MAX; a longer one
            // is sent as u32::MAX and refused by the module (EFBIG).
            rr_payload_bytes: u32::try_from(payload.len()).unwrap_or(u32::MAX),
            rr_pad: 0,
        }
    }
}

impl RzilIocCommit {
    /// A commit of everything instance `instance` was given.
    pub fn new(instance: u32) -> RzilIocCommit {
        RzilIocCommit {
            rc_size: size_u32::<RzilIocCommit>(),
            rc_instance: instance,
            rc_foid: 0,
            rc_latency_ns: 0,
        }
    }
}

impl RzilIocInstance {
    /// A checkpoint or detach request for `instance`.
    pub fn new(instance: u32) -> RzilIocInstance {
        RzilIocInstance {
            ri_size: size_u32::<RzilIocInstance>(),
            ri_instance: instance,
        }
    }
}

impl RzilIocStats {
    /// A stats request for `instance`, counters zero.
    pub fn new(instance: u32) -> RzilIocStats {
        RzilIocStats {
            rs_size: size_u32::<RzilIocStats>(),
            rs_instance: instance,
            rs_records: 0,
            rs_commits: 0,
            rs_lwbs_issued: 0,
            rs_flushes: 0,
            rs_io_errors: 0,
            rs_bytes_written: 0,
            rs_lwbs_in_state: [0; RZIL_LWB_STATES],
            rs_commit_latency_ns_max: 0,
        }
    }
}

/// `IOCPARM_SHIFT`: bits of the parameter length.
const IOCPARM_SHIFT: u32 = 13;
/// `IOCPARM_MASK`.
const IOCPARM_MASK: u64 = (1 << IOCPARM_SHIFT) - 1;
/// `IOC_VOID`: no parameters.
pub const IOC_VOID: u64 = 0x2000_0000;
/// `IOC_OUT`: the kernel copies the parameter out.
pub const IOC_OUT: u64 = 0x4000_0000;
/// `IOC_IN`: the kernel copies the parameter in.
pub const IOC_IN: u64 = 0x8000_0000;
/// `IOC_INOUT`.
pub const IOC_INOUT: u64 = IOC_IN | IOC_OUT;

/// FreeBSD's `_IOC(inout, group, num, len)`. A parameter longer than
/// `IOCPARM_MAX` cannot be encoded: compile-time error in a const.
pub const fn ioc(inout: u64, group: u8, num: u8, len_bytes: usize) -> u64 {
    assert!(len_bytes as u64 <= IOCPARM_MASK, "ioctl parameter too long");
    inout | ((len_bytes as u64 & IOCPARM_MASK) << 16) | ((group as u64) << 8) | num as u64
}

/// `_IOR(group, num, T)`.
pub const fn ior<T>(group: u8, num: u8) -> u64 {
    ioc(IOC_OUT, group, num, size_of::<T>())
}

/// `_IOW(group, num, T)`.
pub const fn iow<T>(group: u8, num: u8) -> u64 {
    ioc(IOC_IN, group, num, size_of::<T>())
}

/// `_IOWR(group, num, T)`.
pub const fn iowr<T>(group: u8, num: u8) -> u64 {
    ioc(IOC_INOUT, group, num, size_of::<T>())
}

/// The ioctl group of rzil.ko.
const RZIL_IOC_GROUP: u8 = b'Z';
pub const RZIL_IOC_ATTACH: u64 = iowr::<RzilIocAttach>(RZIL_IOC_GROUP, 1);
pub const RZIL_IOC_APPEND: u64 = iowr::<RzilIocAppend>(RZIL_IOC_GROUP, 2);
pub const RZIL_IOC_COMMIT: u64 = iowr::<RzilIocCommit>(RZIL_IOC_GROUP, 3);
pub const RZIL_IOC_CHECKPOINT: u64 = iow::<RzilIocInstance>(RZIL_IOC_GROUP, 4);
pub const RZIL_IOC_STATS: u64 = iowr::<RzilIocStats>(RZIL_IOC_GROUP, 5);
pub const RZIL_IOC_DETACH: u64 = iow::<RzilIocInstance>(RZIL_IOC_GROUP, 6);

/// Collects the `_Static_assert`s of [`c_layout_asserts`].
struct Asserts(String);

impl Asserts {
    fn check(&mut self, c_expr: &str, rust_value: u64) {
        // Both sides as unsigned long long: request numbers are unsigned
        // long in C, sizes size_t, enumerators int.
        let _ = writeln!(
            self.0,
            "_Static_assert((unsigned long long)({c_expr}) == {rust_value}ULL, \
             \"rzil_ioctl.h vs host/src/kernel/abi.rs: {c_expr} is not {rust_value}\");"
        );
    }

    fn check_str(&mut self, c_macro: &str, rust_value: &str) {
        // Same length and the same bytes: sizeof counts the literal's NUL.
        self.check(&format!("sizeof({c_macro})"), rust_value.len() as u64 + 1);
        for (i, b) in rust_value.bytes().enumerate() {
            self.check(&format!("({c_macro})[{i}]"), u64::from(b));
        }
    }
}

/// `sizeof` of the field a projection returns, with no value at hand.
fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// Check every field of a structure: offset and size, plus the whole size.
macro_rules! check_struct {
    ($a:expr, $c:literal, $t:ty, [$($f:ident),+ $(,)?]) => {{
        $a.check(concat!("sizeof(struct ", $c, ")"), size_of::<$t>() as u64);
        $a.check(
            concat!("_Alignof(struct ", $c, ")"),
            std::mem::align_of::<$t>() as u64,
        );
        $(
            $a.check(
                concat!("offsetof(struct ", $c, ", ", stringify!($f), ")"),
                offset_of!($t, $f) as u64,
            );
            $a.check(
                concat!("sizeof(((struct ", $c, " *)0)->", stringify!($f), ")"),
                field_size(|s: &$t| &s.$f) as u64,
            );
        )+
    }};
}

/// A C translation unit (to be compiled after `#include "rzil_ioctl.h"`)
/// asserting that the header agrees with this module on every structure
/// size, field offset and size, constant and request number.
pub fn c_layout_asserts() -> String {
    let mut a = Asserts(String::new());
    a.0.push_str(
        "/* Generated by host/src/kernel/abi.rs (c_layout_asserts); checked by\n \
         * `make check-kernel-abi`. Do not edit. */\n\
         #include <stddef.h>\n#include \"rzil_ioctl.h\"\n",
    );
    check_struct!(
        a,
        "rzil_ioc_attach",
        RzilIocAttach,
        [
            ra_size,
            ra_instance,
            ra_provider,
            ra_media_size_bytes,
            ra_sector_size_bytes,
            ra_pad
        ]
    );
    check_struct!(
        a,
        "rzil_ioc_append",
        RzilIocAppend,
        [
            rr_size,
            rr_instance,
            rr_foid,
            rr_offset_bytes,
            rr_payload,
            rr_payload_bytes,
            rr_pad
        ]
    );
    check_struct!(
        a,
        "rzil_ioc_commit",
        RzilIocCommit,
        [rc_size, rc_instance, rc_foid, rc_latency_ns]
    );
    check_struct!(
        a,
        "rzil_ioc_instance",
        RzilIocInstance,
        [ri_size, ri_instance]
    );
    check_struct!(
        a,
        "rzil_ioc_stats",
        RzilIocStats,
        [
            rs_size,
            rs_instance,
            rs_records,
            rs_commits,
            rs_lwbs_issued,
            rs_flushes,
            rs_io_errors,
            rs_bytes_written,
            rs_lwbs_in_state,
            rs_commit_latency_ns_max
        ]
    );
    a.check_str("RZIL_CTL_NAME", RZIL_CTL_NAME);
    a.check("RZIL_PROVIDER_NAME_MAX", RZIL_PROVIDER_NAME_MAX as u64);
    a.check("RZIL_INSTANCES_MAX", u64::from(RZIL_INSTANCES_MAX));
    a.check("RZIL_RECORD_BYTES_MAX", u64::from(RZIL_RECORD_BYTES_MAX));
    a.check("RZIL_LATENCY_BUCKETS", RZIL_LATENCY_BUCKETS as u64);
    a.check("RZIL_LWB_STATES", RZIL_LWB_STATES as u64);
    for (value, name) in RZIL_LWB_STATE_ENUMERATORS.iter().enumerate() {
        a.check(name, value as u64);
    }
    // The encoding itself, against sys/ioccom.h.
    a.check("IOC_VOID", IOC_VOID);
    a.check("IOC_OUT", IOC_OUT);
    a.check("IOC_IN", IOC_IN);
    a.check("IOC_INOUT", IOC_INOUT);
    a.check("IOCPARM_MASK", IOCPARM_MASK);
    a.check("RZIL_IOC_ATTACH", RZIL_IOC_ATTACH);
    a.check("RZIL_IOC_APPEND", RZIL_IOC_APPEND);
    a.check("RZIL_IOC_COMMIT", RZIL_IOC_COMMIT);
    a.check("RZIL_IOC_CHECKPOINT", RZIL_IOC_CHECKPOINT);
    a.check("RZIL_IOC_STATS", RZIL_IOC_STATS);
    a.check("RZIL_IOC_DETACH", RZIL_IOC_DETACH);
    a.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freebsd_encoding_matches_known_requests() {
        // sys/disk.h: DIOCGMEDIASIZE = _IOR('d', 129, off_t) and
        // DIOCGSECTORSIZE = _IOR('d', 128, u_int), as host/src/device.rs
        // uses them; sys/filio.h: FIONBIO = _IOW('f', 126, int).
        assert_eq!(ior::<i64>(b'd', 129), 0x4008_6481);
        assert_eq!(ior::<u32>(b'd', 128), 0x4004_6480);
        assert_eq!(iow::<i32>(b'f', 126), 0x8004_667e);
        // _IOWR sets both direction bits; Linux's encoding would put the
        // direction in bits 30-31 and the size in 14 bits instead.
        assert_eq!(iowr::<u64>(b'Z', 3), 0xc008_5a03);
    }

    #[test]
    fn request_numbers_carry_the_structure_sizes() {
        let len = |req: u64| ((req >> 16) & IOCPARM_MASK) as usize;
        assert_eq!(len(RZIL_IOC_ATTACH), size_of::<RzilIocAttach>());
        assert_eq!(len(RZIL_IOC_STATS), size_of::<RzilIocStats>());
        assert_eq!(RZIL_IOC_DETACH & IOC_INOUT, IOC_IN);
        assert_eq!(RZIL_IOC_COMMIT & IOC_INOUT, IOC_INOUT);
        assert_eq!(RZIL_IOC_APPEND & 0xffff, 0x5a02);
    }

    #[test]
    fn layout_asserts_cover_every_field_and_request() {
        let c = c_layout_asserts();
        for needle in [
            "offsetof(struct rzil_ioc_attach, ra_media_size_bytes)",
            "offsetof(struct rzil_ioc_stats, rs_commit_latency_ns_max)",
            "sizeof(((struct rzil_ioc_stats *)0)->rs_lwbs_in_state)) == 56ULL",
            "sizeof(struct rzil_ioc_attach)) == 88ULL",
            "RZIL_LWB_FLUSH_DONE) == 6ULL",
            "(RZIL_CTL_NAME)[6]) == 108ULL",
        ] {
            assert!(c.contains(needle), "{needle} missing from:\n{c}");
        }
        let expected = format!("(RZIL_IOC_STATS) == {}ULL", RZIL_IOC_STATS);
        assert!(c.contains(&expected));
    }

    #[test]
    fn attach_request_names_the_provider_and_its_own_size() {
        let ra = RzilIocAttach::new(b"md0");
        assert_eq!(ra.ra_size as usize, size_of::<RzilIocAttach>());
        assert_eq!(ra.provider(), "md0");
        assert_eq!(ra.ra_provider[3], 0);
        let payload = [7u8; 100];
        let rr = RzilIocAppend::new(2, 9, 4096, &payload);
        assert_eq!(rr.rr_payload, payload.as_ptr() as u64);
        assert_eq!(rr.rr_payload_bytes, 100);
        assert_eq!(rr.rr_instance, 2);
    }
}
