//! The log-block allocator: blocks are carved from the log region in a
//! ring, in allocation order, and released in the same order when a
//! checkpoint frees them (a ZIL chain is freed from its head, oldest first).
//!
//! Every block is [`BLOCK_ALIGN_BYTES`]-aligned and between
//! [`BLOCK_SIZE_BYTES_MIN`] and [`BLOCK_SIZE_BYTES_MAX`] long. When a block
//! does not fit before the end of the region, the tail of the region is
//! skipped and the block starts at the region's start; the skipped bytes
//! are charged to that block and come back when it is released.
//!
//! A full ring is [`RingError::Full`], a named outcome the core turns into
//! back-pressure (the commit waits for a checkpoint), never a panic.
//!
//! Concurrency: `Ring` is plain data; the platform keeps it behind the lock
//! that serialises block allocation (the core's issuer lock).

use std::collections::VecDeque;
use std::fmt;

use crate::superblock::BlockAddr;

/// Alignment of every block's offset and size.
pub const BLOCK_ALIGN_BYTES: u64 = 4096;
/// The smallest log block.
pub const BLOCK_SIZE_BYTES_MIN: u64 = 4096;
/// The largest log block (`zil_maxblocksize`'s default, 128 KiB).
pub const BLOCK_SIZE_BYTES_MAX: u64 = 128 * 1024;

/// Why an allocation or release failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// Not enough free space until older blocks are released.
    Full {
        requested_bytes: u64,
        free_bytes: u64,
    },
    /// The requested size is not an aligned size within the limits.
    BadSize { size_bytes: u64 },
    /// A release named a block that is not the oldest live one.
    NotOldest {
        released: BlockAddr,
        oldest: Option<BlockAddr>,
    },
    /// The region is too small or misaligned to hold even one largest block.
    BadRegion { start_bytes: u64, end_bytes: u64 },
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingError::Full {
                requested_bytes,
                free_bytes,
            } => write!(
                f,
                "log region full: {requested_bytes} bytes requested, {free_bytes} free until a checkpoint releases blocks"
            ),
            RingError::BadSize { size_bytes } => write!(
                f,
                "log block size {size_bytes} is not a multiple of {BLOCK_ALIGN_BYTES} between {BLOCK_SIZE_BYTES_MIN} and {BLOCK_SIZE_BYTES_MAX}"
            ),
            RingError::NotOldest { released, oldest } => write!(
                f,
                "released block at {} is not the oldest live block ({:?})",
                released.offset_bytes,
                oldest.map(|b| b.offset_bytes)
            ),
            RingError::BadRegion {
                start_bytes,
                end_bytes,
            } => write!(
                f,
                "log region {start_bytes}..{end_bytes} is misaligned or smaller than one {BLOCK_SIZE_BYTES_MAX}-byte block"
            ),
        }
    }
}

impl std::error::Error for RingError {}

#[derive(Clone, Copy, Debug)]
struct Allocation {
    block: BlockAddr,
    /// Region bytes skipped at the end of the region to place this block.
    skipped_bytes: u64,
}

/// The ring allocator over `[start_bytes, end_bytes)`.
///
/// # Invariants
/// - `live` holds the allocated blocks in allocation order; the circular
///   span from the oldest block (minus its skipped bytes) to `head_bytes`
///   is exactly `used_bytes` long and contains every live block.
/// - `used_bytes <= capacity`, and `used_bytes == 0` iff `live` is empty.
/// - `live.len() <= capacity / BLOCK_SIZE_BYTES_MIN` (its preallocated size).
#[derive(Debug)]
pub struct Ring {
    start_bytes: u64,
    end_bytes: u64,
    head_bytes: u64,
    used_bytes: u64,
    live: VecDeque<Allocation>,
}

impl Ring {
    /// A ring over `[start_bytes, end_bytes)`, allocating from the start.
    pub fn new(start_bytes: u64, end_bytes: u64) -> Result<Ring, RingError> {
        Ring::starting_at(start_bytes, end_bytes, start_bytes)
    }

    /// A ring whose first allocation is at `head_bytes` (for example just
    /// after an old chain, so freshly allocated blocks do not immediately
    /// overwrite what a crash left behind).
    pub fn starting_at(
        start_bytes: u64,
        end_bytes: u64,
        head_bytes: u64,
    ) -> Result<Ring, RingError> {
        let bad = RingError::BadRegion {
            start_bytes,
            end_bytes,
        };
        let aligned = |x: u64| x % BLOCK_ALIGN_BYTES == 0;
        if !aligned(start_bytes) || !aligned(end_bytes) || !aligned(head_bytes) {
            return Err(bad);
        }
        if end_bytes < start_bytes || end_bytes - start_bytes < BLOCK_SIZE_BYTES_MAX {
            return Err(bad);
        }
        if head_bytes < start_bytes || head_bytes >= end_bytes {
            return Err(bad);
        }
        let live_max = ((end_bytes - start_bytes) / BLOCK_SIZE_BYTES_MIN) as usize;
        Ok(Ring {
            start_bytes,
            end_bytes,
            head_bytes,
            used_bytes: 0,
            live: VecDeque::with_capacity(live_max),
        })
    }

    /// Total bytes of the region.
    pub fn capacity_bytes(&self) -> u64 {
        self.end_bytes - self.start_bytes
    }

    /// Bytes not held by live blocks (including skipped tails).
    pub fn free_bytes(&self) -> u64 {
        self.capacity_bytes() - self.used_bytes
    }

    /// Number of live blocks.
    pub fn live_blocks(&self) -> usize {
        self.live.len()
    }

    /// The oldest live block (the next to be released).
    pub fn oldest(&self) -> Option<BlockAddr> {
        self.live.front().map(|a| a.block)
    }

    /// Allocate a block of `size_bytes`.
    pub fn allocate(&mut self, size_bytes: u64) -> Result<BlockAddr, RingError> {
        if size_bytes % BLOCK_ALIGN_BYTES != 0
            || !(BLOCK_SIZE_BYTES_MIN..=BLOCK_SIZE_BYTES_MAX).contains(&size_bytes)
        {
            return Err(RingError::BadSize { size_bytes });
        }
        let (offset_bytes, skipped_bytes) = if self.head_bytes + size_bytes <= self.end_bytes {
            (self.head_bytes, 0)
        } else {
            (self.start_bytes, self.end_bytes - self.head_bytes)
        };
        // The free space is one circular run from head to the oldest block;
        // skipping plus the block must fit inside it, so the block cannot
        // overlap a live one.
        let consumed_bytes = skipped_bytes + size_bytes;
        if consumed_bytes > self.free_bytes() {
            return Err(RingError::Full {
                requested_bytes: size_bytes,
                free_bytes: self.free_bytes(),
            });
        }
        let block = BlockAddr {
            offset_bytes,
            size_bytes,
        };
        self.used_bytes += consumed_bytes;
        self.head_bytes = offset_bytes + size_bytes;
        if self.head_bytes == self.end_bytes {
            self.head_bytes = self.start_bytes;
        }
        self.live.push_back(Allocation {
            block,
            skipped_bytes,
        });
        Ok(block)
    }

    /// Release `block`, which must be the oldest live block.
    pub fn release(&mut self, block: BlockAddr) -> Result<(), RingError> {
        match self.live.front() {
            Some(oldest) if oldest.block == block => {
                self.used_bytes -= oldest.skipped_bytes + oldest.block.size_bytes;
                self.live.pop_front();
                debug_assert_eq!(self.live.is_empty(), self.used_bytes == 0);
                Ok(())
            }
            oldest => Err(RingError::NotOldest {
                released: block,
                oldest: oldest.map(|a| a.block),
            }),
        }
    }

    /// Release the oldest live blocks up to and including `block`.
    pub fn release_through(&mut self, block: BlockAddr) -> Result<usize, RingError> {
        if !self.live.iter().any(|a| a.block == block) {
            return Err(RingError::NotOldest {
                released: block,
                oldest: self.oldest(),
            });
        }
        let mut released = 0;
        while let Some(oldest) = self.oldest() {
            self.release(oldest)?;
            released += 1;
            if oldest == block {
                break;
            }
        }
        Ok(released)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: u64 = 1024;
    const START: u64 = 128 * K;
    const END: u64 = START + 512 * K;

    fn overlaps(a: BlockAddr, b: BlockAddr) -> bool {
        a.offset_bytes < b.offset_bytes + b.size_bytes
            && b.offset_bytes < a.offset_bytes + a.size_bytes
    }

    #[test]
    fn allocates_in_order_and_aligned() {
        let mut ring = Ring::new(START, END).unwrap();
        let a = ring.allocate(4 * K).unwrap();
        let b = ring.allocate(128 * K).unwrap();
        let c = ring.allocate(8 * K).unwrap();
        assert_eq!(a.offset_bytes, START);
        assert_eq!(b.offset_bytes, START + 4 * K);
        assert_eq!(c.offset_bytes, START + 132 * K);
        assert_eq!(ring.free_bytes(), 512 * K - 140 * K);
        assert_eq!(ring.live_blocks(), 3);
    }

    #[test]
    fn bad_sizes_and_regions_are_refused() {
        let mut ring = Ring::new(START, END).unwrap();
        for size in [0, 100, 2 * K, 132 * K, 256 * K] {
            assert_eq!(
                ring.allocate(size),
                Err(RingError::BadSize { size_bytes: size })
            );
        }
        assert!(Ring::new(START, START + 64 * K).is_err());
        assert!(Ring::new(START + 1, END).is_err());
        assert!(Ring::new(END, START).is_err());
        assert!(Ring::starting_at(START, END, END).is_err());
    }

    #[test]
    fn full_is_a_named_error_and_release_makes_room() {
        let mut ring = Ring::new(START, END).unwrap();
        let blocks: Vec<_> = (0..4).map(|_| ring.allocate(128 * K).unwrap()).collect();
        assert_eq!(ring.free_bytes(), 0);
        assert_eq!(
            ring.allocate(4 * K),
            Err(RingError::Full {
                requested_bytes: 4 * K,
                free_bytes: 0
            })
        );
        ring.release(blocks[0]).unwrap();
        let again = ring.allocate(128 * K).unwrap();
        assert_eq!(again.offset_bytes, START, "wrapped to the start");
    }

    #[test]
    fn release_out_of_order_is_refused() {
        let mut ring = Ring::new(START, END).unwrap();
        let a = ring.allocate(4 * K).unwrap();
        let b = ring.allocate(4 * K).unwrap();
        assert_eq!(
            ring.release(b),
            Err(RingError::NotOldest {
                released: b,
                oldest: Some(a)
            })
        );
        ring.release(a).unwrap();
        ring.release(b).unwrap();
        assert_eq!(ring.free_bytes(), ring.capacity_bytes());
        assert!(ring.release(a).is_err(), "double release");
    }

    #[test]
    fn wraparound_skips_the_tail_and_charges_it() {
        let mut ring = Ring::new(START, END).unwrap();
        // Fill 480 KiB, leaving a 32 KiB tail too short for 64 KiB.
        let first = ring.allocate(128 * K).unwrap();
        let mut rest: Vec<_> = (0..3).map(|_| ring.allocate(96 * K).unwrap()).collect();
        rest.push(ring.allocate(64 * K).unwrap());
        assert_eq!(ring.free_bytes(), 32 * K);
        // 64 KiB needs the tail skipped and the first block gone.
        assert!(matches!(ring.allocate(64 * K), Err(RingError::Full { .. })));
        ring.release(first).unwrap();
        let wrapped = ring.allocate(64 * K).unwrap();
        assert_eq!(wrapped.offset_bytes, START);
        // 32 KiB skipped + 64 KiB block charged: 160 - 96 = 64 KiB free.
        assert_eq!(ring.free_bytes(), 64 * K);
        for block in rest {
            ring.release(block).unwrap();
        }
        ring.release(wrapped).unwrap();
        assert_eq!(ring.free_bytes(), ring.capacity_bytes());
    }

    #[test]
    fn release_through_frees_a_prefix() {
        let mut ring = Ring::new(START, END).unwrap();
        let blocks: Vec<_> = (0..5).map(|_| ring.allocate(4 * K).unwrap()).collect();
        assert_eq!(ring.release_through(blocks[2]), Ok(3));
        assert_eq!(ring.oldest(), Some(blocks[3]));
        assert!(ring.release_through(blocks[0]).is_err());
    }

    #[test]
    fn random_workload_never_overlaps_live_blocks() {
        // Many rounds of random sizes with random release batches: live
        // blocks stay disjoint, in range, and the accounting balances.
        let mut rng = crate::rng::Xoshiro256::new(42);
        let mut ring = Ring::starting_at(START, END, START + 200 * K).unwrap();
        let mut live: VecDeque<BlockAddr> = VecDeque::new();
        let mut wraps = 0;
        let mut fulls = 0;
        for _ in 0..20_000 {
            if rng.chance(3, 5) {
                let size =
                    (1 + rng.below(BLOCK_SIZE_BYTES_MAX / BLOCK_ALIGN_BYTES)) * BLOCK_ALIGN_BYTES;
                match ring.allocate(size) {
                    Ok(block) => {
                        assert!(block.offset_bytes >= START && block.offset_bytes + size <= END);
                        assert_eq!(block.offset_bytes % BLOCK_ALIGN_BYTES, 0);
                        assert!(live.iter().all(|&other| !overlaps(block, other)));
                        if live
                            .back()
                            .is_some_and(|prev| block.offset_bytes < prev.offset_bytes)
                        {
                            wraps += 1;
                        }
                        live.push_back(block);
                    }
                    Err(RingError::Full { free_bytes, .. }) => {
                        assert_eq!(free_bytes, ring.free_bytes());
                        fulls += 1;
                    }
                    Err(other) => panic!("unexpected {other}"),
                }
            } else if let Some(oldest) = live.pop_front() {
                ring.release(oldest).unwrap();
            }
            let live_bytes: u64 = live.iter().map(|b| b.size_bytes).sum();
            assert!(ring.capacity_bytes() - ring.free_bytes() >= live_bytes);
            assert_eq!(ring.live_blocks(), live.len());
        }
        assert!(
            wraps > 10 && fulls > 10,
            "workload too tame: {wraps} wraps, {fulls} fulls"
        );
    }
}
