//! lwb size planning, as OpenZFS does it since 2.2.4/2.3 (reference §3.4).
//!
//! A *burst* is the set of records one commit (or one timeout) pushes out.
//! The planner remembers the last [`ZIL_BURSTS`] bursts and picks the size of
//! the next lwb so that a burst lands in as few, evenly filled blocks as
//! possible: small bursts in one block, huge ones in maximum blocks, medium
//! ones split evenly (which spreads them over several log vdevs).
//!
//! Owned by the issuer: every method runs under `zl_issuer_lock`.

use crate::limits::{
    LR_WRITE_HEADER_BYTES, LWB_BLOCK_ALIGN_BYTES, LWB_BLOCK_SIZE_MIN_BYTES, ZIL_BURSTS,
    ZIL_CHAIN_BYTES,
};

/// Burst history and the current burst's accounting.
#[derive(Debug, Clone)]
pub struct Planner {
    /// Largest block, in bytes (`zl_max_block_size`).
    max_block_bytes: u32,
    /// Bytes of records in the current burst (`zl_cur_size`).
    cur_size_bytes: u64,
    /// Bytes of the current burst not yet placed in a closed block (`zl_cur_left`).
    cur_left_bytes: u64,
    /// Largest record of the current burst (`zl_cur_max`).
    cur_max_bytes: u64,
    /// Optimal block size of each remembered burst (`zl_prev_opt`).
    prev_opt_bytes: [u32; ZIL_BURSTS],
    /// Smallest useful first block of each remembered burst (`zl_prev_min`).
    prev_min_bytes: [u32; ZIL_BURSTS],
    rotor: usize,
}

impl Planner {
    /// A planner with empty history for blocks of at most `max_block_bytes`.
    pub fn new(max_block_bytes: u32) -> Self {
        assert!(max_block_bytes >= LWB_BLOCK_SIZE_MIN_BYTES);
        // With no history, assume bursts want whole blocks (as OpenZFS's
        // `zil_alloc` seeds `zl_prev_opt`): better one roomy block than
        // empty ones closed because a record did not fit.
        let md = max_block_bytes - ZIL_CHAIN_BYTES;
        Self {
            max_block_bytes,
            cur_size_bytes: 0,
            cur_left_bytes: 0,
            cur_max_bytes: 0,
            prev_opt_bytes: [md; ZIL_BURSTS],
            prev_min_bytes: [0; ZIL_BURSTS],
            rotor: 0,
        }
    }

    /// Usable record bytes in a maximum block (`md`).
    fn max_data_bytes(&self) -> u64 {
        u64::from(self.max_block_bytes - ZIL_CHAIN_BYTES)
    }

    /// `zil_max_waste_space`: a sixteenth of the largest record payload.
    fn max_waste_bytes(&self) -> u64 {
        (self.max_data_bytes() - u64::from(LR_WRITE_HEADER_BYTES)) / 16
    }

    /// A record of `bytes` (header plus data) joined the current burst.
    pub fn note_assigned(&mut self, bytes: u64) {
        self.cur_size_bytes += bytes;
        self.cur_left_bytes += bytes;
        self.cur_max_bytes = self.cur_max_bytes.max(bytes);
    }

    /// `bytes` of the current burst were placed in a block that was closed.
    pub fn note_placed(&mut self, bytes: u64) {
        self.cur_left_bytes = self.cur_left_bytes.saturating_sub(bytes);
    }

    /// Whether a burst is in progress.
    pub fn in_burst(&self) -> bool {
        self.cur_size_bytes > 0
    }

    /// How a burst of `size` bytes is best cut: returns (optimal chunk,
    /// minimal useful first block), both in record bytes.
    pub fn plan(&self, size: u64) -> (u64, u64) {
        let md = self.max_data_bytes();
        if size <= md {
            return (size, size);
        }
        if size > 8 * md {
            return (md, md);
        }
        // Medium bursts: split evenly, assuming every block carries an
        // lr_write_t of overhead, unless records or waste make that useless.
        let n = size.div_ceil(md - u64::from(LR_WRITE_HEADER_BYTES));
        let chunk = size.div_ceil(n);
        let waste = self.max_waste_bytes().max(self.cur_max_bytes);
        if chunk + waste <= md {
            let first = size.saturating_sub((md - waste) * (n - 1)).max(waste);
            (chunk, first)
        } else {
            (md, md)
        }
    }

    /// The record bytes the next burst is likely to want in its first
    /// block, from the history (`zil_lwb_predict`).
    pub fn predict(&self) -> u64 {
        let (mut opt, cur_min) = if self.cur_size_bytes > 0 {
            self.plan(self.cur_size_bytes)
        } else {
            (u64::MAX, 0)
        };
        for &o in &self.prev_opt_bytes {
            opt = opt.min(u64::from(o));
        }
        // The two largest minimal first sizes at or above the optimum.
        let mut m1 = cur_min.max(opt);
        let mut m2 = opt;
        for &m in &self.prev_min_bytes {
            let m = u64::from(m);
            if m >= m1 {
                m2 = m1;
                m1 = m;
            } else if m > m2 {
                m2 = m;
            }
        }
        // Take the smaller one only if it saves at least half.
        if m1 < m2 * 2 {
            m1
        } else {
            m2
        }
    }

    /// Size in bytes of the lwb to allocate after closing one
    /// (`zil_lwb_write_close`): plan what is left of the burst (plus a
    /// prediction when other committers are active), else predict.
    pub fn next_block_bytes(&self, parallel: bool) -> u32 {
        let want = if self.cur_left_bytes > 0 {
            let (left, _) = self.plan(self.cur_left_bytes);
            if parallel {
                // More may come from other committers: plan for the worst.
                let (more, _) = self.plan(self.cur_left_bytes + self.predict());
                left.max(more)
            } else {
                left
            }
        } else {
            self.predict()
        };
        self.block_bytes_for(want)
    }

    /// Round record bytes up to a block: chain header, 4 KiB alignment,
    /// clamped to [4 KiB, max].
    pub fn block_bytes_for(&self, record_bytes: u64) -> u32 {
        let want = record_bytes.saturating_add(u64::from(ZIL_CHAIN_BYTES));
        let align = u64::from(LWB_BLOCK_ALIGN_BYTES);
        let rounded = want.div_ceil(align).saturating_mul(align);
        let clamped = rounded.clamp(
            u64::from(LWB_BLOCK_SIZE_MIN_BYTES),
            u64::from(self.max_block_bytes),
        );
        // The clamp keeps it at or below a u32 maximum.
        u32::try_from(clamped).unwrap_or(self.max_block_bytes)
    }

    /// The current burst is over (`zil_burst_done`): remember its plan.
    pub fn burst_done(&mut self) {
        if self.cur_size_bytes == 0 {
            return;
        }
        let (opt, min) = self.plan(self.cur_size_bytes);
        // Both are at most `md` < 2^32 by construction of `plan`.
        self.prev_opt_bytes[self.rotor] = u32::try_from(opt).unwrap_or(u32::MAX);
        self.prev_min_bytes[self.rotor] = u32::try_from(min).unwrap_or(u32::MAX);
        self.rotor = (self.rotor + 1) % ZIL_BURSTS;
        self.cur_size_bytes = 0;
        self.cur_left_bytes = 0;
        self.cur_max_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::LWB_BLOCK_SIZE_MAX_BYTES;

    const MD: u64 = (LWB_BLOCK_SIZE_MAX_BYTES - ZIL_CHAIN_BYTES) as u64;

    #[test]
    fn small_burst_goes_in_one_block() {
        let p = Planner::new(LWB_BLOCK_SIZE_MAX_BYTES);
        assert_eq!(p.plan(4096), (4096, 4096));
        assert_eq!(p.block_bytes_for(4096 + 192), 8192);
        assert_eq!(p.block_bytes_for(100), 4096);
        assert_eq!(p.block_bytes_for(10 * MD), LWB_BLOCK_SIZE_MAX_BYTES);
    }

    #[test]
    fn huge_burst_uses_max_blocks() {
        let p = Planner::new(LWB_BLOCK_SIZE_MAX_BYTES);
        assert_eq!(p.plan(9 * MD), (MD, MD));
    }

    #[test]
    fn medium_burst_is_split_evenly() {
        let p = Planner::new(LWB_BLOCK_SIZE_MAX_BYTES);
        let size = 3 * MD / 2; // 1.5 blocks' worth
        let (chunk, first) = p.plan(size);
        assert!(chunk < MD && chunk * 2 >= size, "chunk {chunk}");
        assert!(first <= chunk && first > 0);
    }

    #[test]
    fn prediction_follows_history() {
        let mut p = Planner::new(LWB_BLOCK_SIZE_MAX_BYTES);
        // Empty history predicts whole blocks.
        assert_eq!(p.block_bytes_for(p.predict()), LWB_BLOCK_SIZE_MAX_BYTES);
        for _ in 0..ZIL_BURSTS {
            p.note_assigned(20_000);
            p.burst_done();
        }
        assert_eq!(p.predict(), 20_000);
        assert_eq!(p.next_block_bytes(false), 20_480);
        // One odd small burst does not shrink the prediction: the two
        // largest minimal first sizes are still 20000 each.
        p.note_assigned(1000);
        p.burst_done();
        assert_eq!(p.predict(), 20_000);
        // When most recent bursts are small, the small size wins once the
        // second-largest minimum is less than half the largest.
        for _ in 0..ZIL_BURSTS - 1 {
            p.note_assigned(1000);
            p.burst_done();
        }
        assert_eq!(p.predict(), 1000);
    }

    #[test]
    fn unfinished_burst_plans_what_is_left() {
        let mut p = Planner::new(LWB_BLOCK_SIZE_MAX_BYTES);
        p.note_assigned(3 * MD);
        p.note_placed(MD);
        assert!(p.in_burst());
        assert_eq!(p.next_block_bytes(false), LWB_BLOCK_SIZE_MAX_BYTES);
        p.note_placed(2 * MD);
        // Nothing left: predict from (empty) history + current burst.
        assert!(p.next_block_bytes(false) >= LWB_BLOCK_SIZE_MIN_BYTES);
    }
}
