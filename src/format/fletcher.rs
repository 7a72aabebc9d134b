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
    match order {
        ByteOrder::Little => fletcher_4_words(data, u32::from_le_bytes),
        ByteOrder::Big => fletcher_4_words(data, u32::from_be_bytes),
    }
}

/// The fletcher-4 loop with the word decoder fixed at compile time, four
/// words per iteration (the sums' dependency chain stays serial; the
/// unrolling only sheds loop overhead).
#[inline(always)]
fn fletcher_4_words(data: &[u8], word: fn([u8; 4]) -> u32) -> ZioCksum {
    let (mut a, mut b, mut c, mut d) = (0u64, 0u64, 0u64, 0u64);
    let mut step = |w: u32| {
        a = a.wrapping_add(u64::from(w));
        b = b.wrapping_add(a);
        c = c.wrapping_add(b);
        d = d.wrapping_add(c);
    };
    let mut quads = data.chunks_exact(4 * FLETCHER_4_WORD_BYTES);
    for q in &mut quads {
        step(word([q[0], q[1], q[2], q[3]]));
        step(word([q[4], q[5], q[6], q[7]]));
        step(word([q[8], q[9], q[10], q[11]]));
        step(word([q[12], q[13], q[14], q[15]]));
    }
    for w in quads.remainder().chunks_exact(FLETCHER_4_WORD_BYTES) {
        step(word([w[0], w[1], w[2], w[3]]));
    }
    ZioCksum { word: [a, b, c, d] }
}

/// Continue a fletcher-4 running sum over `zero_words` zero words without
/// reading them: `a` stays, and `b`, `c`, `d` grow by closed forms in the
/// binomial coefficients of `zero_words` (all modulo 2^64, like the sums).
/// Sealing uses it for the zero fill between `zc_nused` and the 4 KiB
/// round-up, which is up to 4 KiB of every slim block.
pub fn fletcher_4_extend_zeros(sum: ZioCksum, zero_words: u64) -> ZioCksum {
    let [a, b, c, d] = sum.word;
    let k = u128::from(zero_words);
    // Exact in u128 for any k < 2^42; truncation is the mod 2^64 we want.
    let k1 = k as u64;
    let k2 = (k * (k + 1) / 2) as u64;
    let k3 = (k * (k + 1) * (k + 2) / 6) as u64;
    ZioCksum {
        word: [
            a,
            b.wrapping_add(k1.wrapping_mul(a)),
            c.wrapping_add(k1.wrapping_mul(b))
                .wrapping_add(k2.wrapping_mul(a)),
            d.wrapping_add(k1.wrapping_mul(c))
                .wrapping_add(k2.wrapping_mul(b))
                .wrapping_add(k3.wrapping_mul(a)),
        ],
    }
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
    fn zero_extension_equals_reading_the_zeros() {
        let mut data = std::vec![0u8; 4096 + 64];
        for (i, b) in data.iter_mut().enumerate().take(1000) {
            *b = (i * 37 % 251) as u8;
        }
        for nused in [0usize, 8, 184, 1000, 1004, 4096] {
            for order in [ByteOrder::Little, ByteOrder::Big] {
                let head = fletcher_4(&data[..nused], order);
                let whole = fletcher_4(&data[..4096 + 64], order);
                let zeros = (4096 + 64 - nused) as u64 / 4;
                if data[nused..].iter().all(|&b| b == 0) {
                    assert_eq!(fletcher_4_extend_zeros(head, zeros), whole, "nused {nused}");
                }
            }
        }
        // A large count stays exact (mod 2^64).
        let s = ZioCksum {
            word: [u64::MAX, 3, 5, 7],
        };
        let mut step = s;
        for _ in 0..10_000 {
            step = fletcher_4_extend_zeros(step, 1);
        }
        assert_eq!(fletcher_4_extend_zeros(s, 10_000), step);
    }

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
