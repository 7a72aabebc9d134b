//! Fletcher-4 on the host's vector units, picked at run time.
//!
//! The core seals every log block with fletcher-4 through
//! `Platform::fletcher_4_native`. Its portable default is serial unless the
//! build targets SSE4.1, and release builds target baseline x86-64 (SSE2),
//! where LLVM does not vectorise it. Like OpenZFS's `fletcher_4_impl`
//! selection, this module checks the CPU once and, where AVX2 is present,
//! runs the core's lane-split form compiled for AVX2 (four u64 lanes per
//! sum in one ymm register, `vpmovzxdq` to widen four words at a time).
//! The answer is the same sums bit for bit; a test below holds it to that.

use rzil::format::{fletcher_4_native as fletcher_4_portable, ZioCksum};

/// Lanes of the lane-split fletcher-4: four u64 lanes fill one 256-bit
/// register per sum.
const AVX2_LANES: usize = 4;

/// Which fletcher-4 implementation this CPU runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fletcher4Impl {
    /// The core's portable implementation.
    Portable,
    /// The lane-split form compiled for AVX2.
    #[cfg(target_arch = "x86_64")]
    Avx2,
}

impl Fletcher4Impl {
    /// The fastest implementation this CPU supports (checked once).
    pub fn detect() -> Self {
        static PICK: std::sync::OnceLock<Fletcher4Impl> = std::sync::OnceLock::new();
        *PICK.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx2") {
                return Fletcher4Impl::Avx2;
            }
            Fletcher4Impl::Portable
        })
    }

    /// A short name for reports (`rzil bench` prints it).
    pub fn name(self) -> &'static str {
        match self {
            Fletcher4Impl::Portable => "portable",
            #[cfg(target_arch = "x86_64")]
            Fletcher4Impl::Avx2 => "avx2",
        }
    }

    /// Fletcher-4 of `data` in host byte order with this implementation.
    pub fn fletcher_4_native(self, data: &[u8]) -> ZioCksum {
        match self {
            Fletcher4Impl::Portable => fletcher_4_portable(data),
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Avx2` is only constructed by `detect` after
            // `is_x86_feature_detected!("avx2")` returned true on this CPU,
            // or by tests under the same check, so the AVX2 code may run.
            Fletcher4Impl::Avx2 => unsafe { fletcher_4_avx2(data) },
        }
    }
}

/// Fletcher-4 of `data` in host byte order on the best implementation this
/// CPU has: what the host platforms plug into `Platform::fletcher_4_native`.
pub fn fletcher_4_native(data: &[u8]) -> ZioCksum {
    Fletcher4Impl::detect().fletcher_4_native(data)
}

/// # Safety
///
/// The CPU must support AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fletcher_4_avx2(data: &[u8]) -> ZioCksum {
    rzil::format::fletcher_4_lanes::<AVX2_LANES>(data, rzil::format::ByteOrder::NATIVE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rzil::format::{fletcher_4_serial, ByteOrder};

    #[test]
    fn every_implementation_matches_the_serial_sums() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let data: Vec<u8> = (0..3 * 4096 + 12)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let mut impls = vec![Fletcher4Impl::Portable, Fletcher4Impl::detect()];
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            impls.push(Fletcher4Impl::Avx2);
        }
        for imp in impls {
            for len in (0..=260).step_by(4).chain([4096, 4472, 8192, data.len()]) {
                assert_eq!(
                    imp.fletcher_4_native(&data[..len]),
                    fletcher_4_serial(&data[..len], ByteOrder::NATIVE),
                    "{} len {len}",
                    imp.name()
                );
            }
        }
    }
}
