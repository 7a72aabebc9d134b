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
///
/// Lane-split ([`fletcher_4_lanes`], 4 lanes) where the build target has
/// SSE4.1 (its `pmovzxdq` widens four words in one instruction; LLVM does
/// not vectorise the lanes for baseline SSE2), serial elsewhere; both give
/// the same sums. Hosts pick a vector form at run time through
/// `Platform::fletcher_4_native`.
pub fn fletcher_4(data: &[u8], order: ByteOrder) -> ZioCksum {
    if cfg!(target_feature = "sse4.1") {
        fletcher_4_lanes::<4>(data, order)
    } else {
        fletcher_4_serial(data, order)
    }
}

/// The serial fletcher-4 loop with the word decoder fixed at compile time,
/// continuing from `sum`, four words per iteration (the sums' dependency
/// chain stays serial; the unrolling only sheds loop overhead).
#[inline(always)]
fn fletcher_4_continue(sum: ZioCksum, data: &[u8], word: fn([u8; 4]) -> u32) -> ZioCksum {
    let [mut a, mut b, mut c, mut d] = sum.word;
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

/// Fletcher-4 computed serially, one word after the other (the reference
/// the lane-split form is tested against, and the kernel's choice).
pub fn fletcher_4_serial(data: &[u8], order: ByteOrder) -> ZioCksum {
    match order {
        ByteOrder::Little => fletcher_4_continue(ZioCksum::ZERO, data, u32::from_le_bytes),
        ByteOrder::Big => fletcher_4_continue(ZioCksum::ZERO, data, u32::from_be_bytes),
    }
}

/// Fletcher-4 over `data` read as u32 words in `order`, computed in `L`
/// interleaved lanes: lane `j` sums words `j, j + L, j + 2L, …` with its own
/// four running sums, and the lanes are folded into the serial sums at the
/// end (OpenZFS's SIMD implementations use the same split). The lanes are
/// independent, so on a host with vector registers LLVM keeps each of the
/// four sums of all lanes in one or two registers and adds them together;
/// the result is bit-for-bit the serial [`fletcher_4`].
///
/// `L` must be at least 1 and at most [`FLETCHER_4_LANES_MAX`] (checked at
/// compile time). Without vector registers (a soft-float kernel) the lanes
/// are 16 scalar sums that spill, so there the serial loop is the better
/// choice; [`fletcher_4`] picks by target features.
#[inline(always)]
pub fn fletcher_4_lanes<const L: usize>(data: &[u8], order: ByteOrder) -> ZioCksum {
    match order {
        ByteOrder::Little => fletcher_4_lane_words::<L>(data, u32::from_le_bytes),
        ByteOrder::Big => fletcher_4_lane_words::<L>(data, u32::from_be_bytes),
    }
}

/// Most lanes [`fletcher_4_lanes`] accepts (its fold coefficients are exact
/// for far more; the bound keeps the per-lane tables small).
pub const FLETCHER_4_LANES_MAX: usize = 16;

/// How lane `j` of `L` folds into the serial sums: the serial weight of a
/// word is `T_k(L*r - j)` where the lane's own weight is `T_k(r)` (`T_1(x) =
/// x`, `T_2(x) = x(x+1)/2`, `T_3(x) = x(x+1)(x+2)/6`), and each of those
/// polynomials in `r` is an integer combination of `T_3(r)`, `T_2(r)`, `r`
/// and 1, i.e. of the lane's `d`, `c`, `b`, `a`. Solved exactly by
/// evaluating at `r = 0..=3`. Entries: `[b_from_b, b_from_a, c_from_c,
/// c_from_b, c_from_a, d_from_d, d_from_c, d_from_b, d_from_a]`, as u64
/// two's complement (the sums are modulo 2^64).
const fn lane_fold(lanes: usize, j: usize) -> [u64; 9] {
    const fn t2(x: i128) -> i128 {
        x * (x + 1) / 2
    }
    const fn t3(x: i128) -> i128 {
        x * (x + 1) * (x + 2) / 6
    }
    let l = lanes as i128;
    let j = j as i128;
    // C: beta2 * T2(r) + beta1 * r + beta0.
    let b0 = t2(-j);
    let (e1, e2) = (t2(l - j) - b0, t2(2 * l - j) - b0);
    let beta2 = e2 - 2 * e1;
    let beta1 = e1 - beta2;
    // D: gamma3 * T3(r) + gamma2 * T2(r) + gamma1 * r + gamma0.
    let g0 = t3(-j);
    let (f1, f2, f3) = (t3(l - j) - g0, t3(2 * l - j) - g0, t3(3 * l - j) - g0);
    let gamma3 = f3 - 3 * f2 + 3 * f1;
    let gamma2 = f2 - 2 * f1 - 2 * gamma3;
    let gamma1 = f1 - gamma3 - gamma2;
    [
        l as u64,
        (-j) as u64,
        beta2 as u64,
        beta1 as u64,
        b0 as u64,
        gamma3 as u64,
        gamma2 as u64,
        gamma1 as u64,
        g0 as u64,
    ]
}

/// [`lane_fold`] for every lane of `L`.
const fn lane_folds<const L: usize>() -> [[u64; 9]; L] {
    let mut t = [[0u64; 9]; L];
    let mut j = 0;
    while j < L {
        t[j] = lane_fold(L, j);
        j += 1;
    }
    t
}

/// The lanes' own running sums `[a, b, c, d]` over the whole groups of
/// `L` words in `data`.
#[inline(always)]
fn lane_sums<const L: usize>(data: &[u8], word: fn([u8; 4]) -> u32) -> [[u64; L]; 4] {
    let (mut a, mut b, mut c, mut d) = ([0u64; L], [0u64; L], [0u64; L], [0u64; L]);
    for g in data.chunks_exact(L * FLETCHER_4_WORD_BYTES) {
        // One pass per sum over fixed-size arrays: each unrolls into a few
        // vector adds.
        let mut w = [0u64; L];
        for (wj, q) in w.iter_mut().zip(g.chunks_exact(FLETCHER_4_WORD_BYTES)) {
            *wj = u64::from(word([q[0], q[1], q[2], q[3]]));
        }
        for j in 0..L {
            a[j] = a[j].wrapping_add(w[j]);
        }
        for j in 0..L {
            b[j] = b[j].wrapping_add(a[j]);
        }
        for j in 0..L {
            c[j] = c[j].wrapping_add(b[j]);
        }
        for j in 0..L {
            d[j] = d[j].wrapping_add(c[j]);
        }
    }
    [a, b, c, d]
}

#[inline(always)]
fn fletcher_4_lane_words<const L: usize>(data: &[u8], word: fn([u8; 4]) -> u32) -> ZioCksum {
    const { assert!(L >= 1 && L <= FLETCHER_4_LANES_MAX) };
    // `black_box` keeps the fold below out of the loop's sight: when LLVM
    // sees each lane's sums used one by one it prices the lane extracts
    // into the loop and leaves it scalar. Through memory the loop stays
    // vectorised and the fold reads 4 * L words once.
    let [a, b, c, d] = core::hint::black_box(lane_sums::<L>(data, word));
    let folds = const { lane_folds::<L>() };
    let mut sum = [0u64; 4];
    for j in 0..L {
        let [bb, ba, cc, cb, ca, dd, dc, db, da] = folds[j];
        let mac = |terms: &[(u64, u64)]| {
            terms
                .iter()
                .fold(0u64, |s, &(k, v)| s.wrapping_add(k.wrapping_mul(v)))
        };
        sum[0] = sum[0].wrapping_add(a[j]);
        sum[1] = sum[1].wrapping_add(mac(&[(bb, b[j]), (ba, a[j])]));
        sum[2] = sum[2].wrapping_add(mac(&[(cc, c[j]), (cb, b[j]), (ca, a[j])]));
        sum[3] = sum[3].wrapping_add(mac(&[(dd, d[j]), (dc, c[j]), (db, b[j]), (da, a[j])]));
    }
    // The words after the last whole group continue the serial sums.
    let whole = data.len() / (L * FLETCHER_4_WORD_BYTES) * (L * FLETCHER_4_WORD_BYTES);
    let rest = data.get(whole..).unwrap_or(&[]);
    fletcher_4_continue(ZioCksum { word: sum }, rest, word)
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

    /// Deterministic pseudo-random bytes (xorshift), no dependency.
    fn noise(len: usize, seed: u64) -> std::vec::Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    fn lanes_dyn(lanes: usize, data: &[u8], order: ByteOrder) -> ZioCksum {
        match lanes {
            1 => fletcher_4_lanes::<1>(data, order),
            2 => fletcher_4_lanes::<2>(data, order),
            3 => fletcher_4_lanes::<3>(data, order),
            4 => fletcher_4_lanes::<4>(data, order),
            5 => fletcher_4_lanes::<5>(data, order),
            7 => fletcher_4_lanes::<7>(data, order),
            8 => fletcher_4_lanes::<8>(data, order),
            16 => fletcher_4_lanes::<16>(data, order),
            _ => unreachable!(),
        }
    }

    #[test]
    fn lane_split_equals_serial_for_every_length_and_lane_count() {
        let data = noise(4096 + 64, 0x9e37_79b9);
        for lanes in [1, 2, 3, 4, 5, 7, 8, 16] {
            for len in (0..=300).chain([511, 512, 4096, 4096 + 60, 4096 + 63]) {
                for order in [ByteOrder::Little, ByteOrder::Big] {
                    assert_eq!(
                        lanes_dyn(lanes, &data[..len], order),
                        fletcher_4_serial(&data[..len], order),
                        "lanes {lanes} len {len} {order:?}"
                    );
                }
            }
        }
        assert_eq!(
            fletcher_4(&data, ByteOrder::Little),
            fletcher_4_serial(&data, ByteOrder::Little)
        );
    }

    #[test]
    fn lane_split_wraps_like_serial() {
        // All-ones words push every sum past 2^64 many times over.
        let data = [0xffu8; 4096 * 32];
        for lanes in [2, 4, 8, 16] {
            assert_eq!(
                lanes_dyn(lanes, &data, ByteOrder::Little),
                fletcher_4_serial(&data, ByteOrder::Little)
            );
        }
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
