//! A fixed-size log-linear latency histogram (the HdrHistogram idea,
//! without the crate): values below 2^[`SUB_BUCKET_BITS`] are exact, above
//! that each power of two is split into 2^[`SUB_BUCKET_BITS`] equal buckets,
//! so a quantile is within about 3% of the true value. Recording is a few
//! instructions and never allocates; per-thread histograms are merged at the
//! end of a run.

/// Bits of precision below each power of two.
pub const SUB_BUCKET_BITS: u32 = 5;
const SUB_BUCKETS: usize = 1 << SUB_BUCKET_BITS;
/// Enough buckets for any `u64` value.
const BUCKETS: usize = (64 - SUB_BUCKET_BITS as usize + 1) * SUB_BUCKETS;

/// Latency histogram over nanoseconds (any `u64` unit works the same way).
#[derive(Clone, Debug)]
pub struct Histogram {
    counts: Box<[u64; BUCKETS]>,
    count: u64,
    min_ns: u64,
    max_ns: u64,
    sum_ns: u128,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new()
    }
}

fn bucket_of(value: u64) -> usize {
    if value < SUB_BUCKETS as u64 {
        return value as usize;
    }
    let msb = 63 - value.leading_zeros();
    let group = (msb - SUB_BUCKET_BITS + 1) as usize;
    let sub = ((value >> (msb - SUB_BUCKET_BITS)) as usize) & (SUB_BUCKETS - 1);
    group * SUB_BUCKETS + sub
}

/// The smallest and largest value that fall in `bucket`.
fn bucket_bounds(bucket: usize) -> (u64, u64) {
    let group = bucket / SUB_BUCKETS;
    let sub = (bucket % SUB_BUCKETS) as u64;
    if group == 0 {
        return (sub, sub);
    }
    let width_log2 = group as u32 - 1;
    let low = (SUB_BUCKETS as u64 + sub) << width_log2;
    (low, low + ((1u64 << width_log2) - 1))
}

impl Histogram {
    /// An empty histogram.
    pub fn new() -> Histogram {
        Histogram {
            counts: Box::new([0; BUCKETS]),
            count: 0,
            min_ns: u64::MAX,
            max_ns: 0,
            sum_ns: 0,
        }
    }

    /// Record one value.
    pub fn record(&mut self, value_ns: u64) {
        self.counts[bucket_of(value_ns)] += 1;
        self.count += 1;
        self.min_ns = self.min_ns.min(value_ns);
        self.max_ns = self.max_ns.max(value_ns);
        self.sum_ns += u128::from(value_ns);
    }

    /// Add everything `other` recorded.
    pub fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts.iter()) {
            *mine += theirs;
        }
        self.count += other.count;
        self.min_ns = self.min_ns.min(other.min_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
        self.sum_ns += other.sum_ns;
    }

    /// Number of values recorded.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Largest value recorded (0 when empty).
    pub fn max_ns(&self) -> u64 {
        self.max_ns
    }

    /// Mean value (0 when empty).
    pub fn mean_ns(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.sum_ns as f64 / self.count as f64
        }
    }

    /// The value at quantile `q` (0.0..=1.0): the midpoint of the bucket
    /// holding the `ceil(q * count)`-th smallest value, clamped to the
    /// recorded min and max. 0 when empty.
    pub fn quantile_ns(&self, q: f64) -> u64 {
        if self.count == 0 {
            return 0;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0u64;
        for (bucket, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (low, high) = bucket_bounds(bucket);
                let mid = low + (high - low) / 2;
                return mid.clamp(self.min_ns, self.max_ns);
            }
        }
        self.max_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_tile_the_value_space() {
        // Consecutive buckets are adjacent and every value maps into its
        // bucket's bounds.
        let mut expected_low = 0u64;
        for bucket in 0..BUCKETS {
            let (low, high) = bucket_bounds(bucket);
            assert_eq!(low, expected_low, "bucket {bucket}");
            assert!(high >= low);
            assert_eq!(bucket_of(low), bucket);
            assert_eq!(bucket_of(high), bucket);
            if high == u64::MAX {
                assert_eq!(bucket, BUCKETS - 1);
                return;
            }
            expected_low = high + 1;
        }
        panic!("buckets do not reach u64::MAX");
    }

    #[test]
    fn quantiles_are_within_precision() {
        let mut h = Histogram::new();
        for v in 1..=100_000u64 {
            h.record(v * 1000);
        }
        for (q, exact) in [
            (0.5, 50_000_000f64),
            (0.99, 99_000_000f64),
            (1.0, 100_000_000f64),
        ] {
            let got = h.quantile_ns(q) as f64;
            assert!(
                (got - exact).abs() / exact < 0.035,
                "q{q}: {got} vs {exact}"
            );
        }
        assert_eq!(h.count(), 100_000);
        assert_eq!(h.max_ns(), 100_000_000);
        assert!((h.mean_ns() - 50_000_500.0).abs() < 1.0);
    }

    #[test]
    fn small_values_are_exact_and_merge_adds() {
        let mut a = Histogram::new();
        let mut b = Histogram::new();
        for v in [3u64, 3, 7] {
            a.record(v);
        }
        b.record(20);
        a.merge(&b);
        assert_eq!(a.count(), 4);
        assert_eq!(a.quantile_ns(0.5), 3);
        assert_eq!(a.quantile_ns(0.75), 7);
        assert_eq!(a.quantile_ns(1.0), 20);
        assert_eq!(Histogram::new().quantile_ns(0.5), 0);
    }
}
