//! Fletcher checksums as OpenZFS defines them (our own code): fletcher-4 for
//! slim (ZILOG2) blocks, fletcher-2 for old (ZILOG) blocks.
//!
//! Both read the buffer as words in a given byte order and keep four u64
//! running sums modulo 2^64. OpenZFS's "native" and "byteswap" variants are
//! the host order and its opposite; we take the order explicitly, which is
//! the same thing without depending on the host.

use super::endian::ByteOrder;
use super::types::ZioCksum;

/// Bytes per fletcher-4 word.
pub const FLETCHER_4_WORD_BYTES: usize = 4;
/// Bytes per fletcher-2 step (two u64 words).
pub const FLETCHER_2_STEP_BYTES: usize = 16;

/// Fletcher-4 over `data` read as u32 words in `order`. Trailing bytes that
/// do not fill a word are ignored (OpenZFS only checksums multiples of 512).
pub fn fletcher_4(data: &[u8], order: ByteOrder) -> ZioCksum {
    let (mut a, mut b, mut c, mut d) = (0u64, 0u64, 0u64, 0u64);
    for chunk in data.chunks_exact(FLETCHER_4_WORD_BYTES) {
        let raw = [chunk[0], chunk[1], chunk[2], chunk[3]];
        let w = match order {
            ByteOrder::Little => u32::from_le_bytes(raw),
            ByteOrder::Big => u32::from_be_bytes(raw),
        };
        a = a.wrapping_add(u64::from(w));
        b = b.wrapping_add(a);
        c = c.wrapping_add(b);
        d = d.wrapping_add(c);
    }
    ZioCksum { word: [a, b, c, d] }
}

/// Fletcher-4 in host order (`fletcher_4_native`).
pub fn fletcher_4_native(data: &[u8]) -> ZioCksum {
    fletcher_4(data, ByteOrder::NATIVE)
}

/// Fletcher-4 in the opposite of host order (`fletcher_4_byteswap`).
pub fn fletcher_4_byteswap(data: &[u8]) -> ZioCksum {
    fletcher_4(data, ByteOrder::NATIVE.swapped())
}

/// Fletcher-2 over `data` read as pairs of u64 words in `order`. Trailing
/// bytes that do not fill a pair are ignored.
pub fn fletcher_2(data: &[u8], order: ByteOrder) -> ZioCksum {
    let (mut a0, mut a1, mut b0, mut b1) = (0u64, 0u64, 0u64, 0u64);
    for chunk in data.chunks_exact(FLETCHER_2_STEP_BYTES) {
        let (lo, hi) = chunk.split_at(8);
        let (w0, w1) = match (order.get_u64(lo, 0), order.get_u64(hi, 0)) {
            (Some(w0), Some(w1)) => (w0, w1),
            // chunks_exact guarantees 16 bytes; unreachable, but no panic path.
            _ => break,
        };
        a0 = a0.wrapping_add(w0);
        a1 = a1.wrapping_add(w1);
        b0 = b0.wrapping_add(a0);
        b1 = b1.wrapping_add(a1);
    }
    ZioCksum {
        word: [a0, a1, b0, b1],
    }
}

/// Fletcher-2 in host order.
pub fn fletcher_2_native(data: &[u8]) -> ZioCksum {
    fletcher_2(data, ByteOrder::NATIVE)
}

/// Fletcher-2 in the opposite of host order.
pub fn fletcher_2_byteswap(data: &[u8]) -> ZioCksum {
    fletcher_2(data, ByteOrder::NATIVE.swapped())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fletcher_4_small_known_values() {
        // words 1, 2: a = 3, b = 1 + 3 = 4, c = 1 + 4 = 5, d = 1 + 5 = 6.
        let data = [1u8, 0, 0, 0, 2, 0, 0, 0];
        assert_eq!(fletcher_4(&data, ByteOrder::Little).word, [3, 4, 5, 6]);
        let be = [0u8, 0, 0, 1, 0, 0, 0, 2];
        assert_eq!(fletcher_4(&be, ByteOrder::Big).word, [3, 4, 5, 6]);
        assert_eq!(fletcher_4(&[], ByteOrder::Little), ZioCksum::ZERO);
    }

    #[test]
    fn fletcher_4_wraps_modulo_2_64() {
        let data = [0xffu8; 4096 * 32];
        let c = fletcher_4(&data, ByteOrder::Little);
        let n = (data.len() / 4) as u128;
        let w = u128::from(u32::MAX);
        // d = w * n(n+1)(n+2)(n+3)/24 mod 2^64
        let d = (w * (n * (n + 1) * (n + 2) * (n + 3) / 24)) as u64;
        assert_eq!(c.word[0], (w * n) as u64);
        assert_eq!(c.word[3], d);
    }

    #[test]
    fn native_and_byteswap_differ_and_swap() {
        let data: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];
        let mut swapped = data;
        swapped[..4].reverse();
        swapped[4..].reverse();
        assert_eq!(fletcher_4_native(&data), fletcher_4_byteswap(&swapped));
        assert_ne!(fletcher_4_native(&data), fletcher_4_byteswap(&data));
        let data16: [u8; 16] = [1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(fletcher_2(&data16, ByteOrder::Little).word, [1, 2, 1, 2]);
        let mut sw16 = data16;
        sw16[..8].reverse();
        sw16[8..].reverse();
        assert_eq!(fletcher_2_native(&data16), fletcher_2_byteswap(&sw16));
    }
}
