//! Sealing and verifying one log block: the embedded-checksum rule and
//! `zil_read_log_block`'s acceptance checks.
//!
//! # Slim (ZILOG2) block layout
//! ```text
//! 0        184                        nused        roundup(nused, 4096)   size
//! | chain  | records (8-byte aligned) | zero fill  | (not written)        |
//! ```
//! The embedded fletcher-4 covers `[0, roundup(nused, 4096))` with the
//! block's verifier standing in for `zec_cksum`; only that prefix is written,
//! which is why slim blocks can be written short.
//!
//! # Old (ZILOG) block layout
//! Records from 0 to `nused`, `zil_chain_t` in the last 184 bytes, fletcher-2
//! over the whole block.

use super::consts::*;
use super::endian::ByteOrder;
use super::fletcher::{fletcher_2, fletcher_4, fletcher_4_extend_zeros, FLETCHER_4_WORD_BYTES};
use super::record::RecordIter;
use super::types::{chain_offsets, Blkptr, ZilChain, ZioCksum, ZioEck};

/// Which of OpenZFS's two log-block layouts a block uses; chosen by the
/// pointing blkptr's checksum type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BlockFormat {
    /// `ZIO_CHECKSUM_ZILOG2`: chain header at offset 0, fletcher-4 over the used prefix.
    Slim,
    /// `ZIO_CHECKSUM_ZILOG`: chain trailer in the last 184 bytes, fletcher-2 over all.
    Old,
}

impl BlockFormat {
    /// The name `zdb` prints for the checksum (`zilog2` / `zilog`).
    pub const fn name(self) -> &'static str {
        match self {
            BlockFormat::Slim => "zilog2",
            BlockFormat::Old => "zilog",
        }
    }
}

/// Why a block could not be sealed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FormatError {
    /// `nused_bytes` is below the chain header: a slim block holds at least it.
    NusedBelowHeader {
        /// The requested used size.
        nused_bytes: usize,
    },
    /// `roundup(nused_bytes, ZIL_MIN_BLKSZ)` does not fit the buffer.
    NusedExceedsBlock {
        /// The requested used size.
        nused_bytes: usize,
        /// The buffer size.
        size_bytes: usize,
    },
}

/// Why a block was rejected; each is what OpenZFS reports as ECKSUM (end of
/// chain), named by cause.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockError {
    /// The buffer cannot be a log block: shorter than the chain header or not
    /// a multiple of 512 bytes.
    BadBlockSize {
        /// The buffer size.
        size_bytes: usize,
    },
    /// Slim block whose `zec_magic` is neither `ZEC_MAGIC` nor its byte swap
    /// (typically: never written, zeroed, or another chain's stale data).
    BadMagic {
        /// The word found, read little-endian.
        found: u64,
    },
    /// Slim block whose `zc_nused` or its 4 KiB round-up exceeds the block,
    /// so the checksummed prefix does not exist.
    NusedExceedsBlock {
        /// `zc_nused`.
        nused_bytes: u64,
        /// The largest allowed value.
        limit_bytes: u64,
    },
    /// The recomputed embedded checksum differs from `zec_cksum`: torn,
    /// corrupt, or written for another verifier (stale).
    ChecksumMismatch {
        /// `zec_cksum` as stored.
        stored: ZioCksum,
        /// Our fletcher over the block with the verifier in place.
        computed: ZioCksum,
    },
    /// `zc_next_blk` is a hole (the next block could not be allocated).
    NextIsHole,
    /// `zc_next_blk`'s verifier is not this block's verifier with seq + 1.
    NextVerifierMismatch {
        /// This verifier with seq + 1.
        expected: ZioCksum,
        /// `zc_next_blk.blk_cksum`.
        found: ZioCksum,
    },
    /// Slim block with `zc_nused` below the 184-byte header.
    NusedBelowHeader {
        /// `zc_nused`.
        nused_bytes: u64,
    },
    /// Old-format block whose `zc_nused` runs into the trailer (`> size - 184`).
    NusedExceedsRecordArea {
        /// `zc_nused`.
        nused_bytes: u64,
        /// `size - 184`.
        limit_bytes: u64,
    },
}

impl BlockError {
    /// Whether the embedded checksum was found valid before this rejection
    /// (the rejection came from `zil_read_log_block`'s later checks).
    pub const fn checksum_valid(&self) -> bool {
        matches!(
            self,
            BlockError::NextIsHole
                | BlockError::NextVerifierMismatch { .. }
                | BlockError::NusedBelowHeader { .. }
                | BlockError::NusedExceedsRecordArea { .. }
        )
    }

    /// A short stable name for dumps and JSON.
    pub const fn name(&self) -> &'static str {
        match self {
            BlockError::BadBlockSize { .. } => "bad-block-size",
            BlockError::BadMagic { .. } => "bad-magic",
            BlockError::NusedExceedsBlock { .. } => "nused-exceeds-block",
            BlockError::ChecksumMismatch { .. } => "checksum-mismatch",
            BlockError::NextIsHole => "next-is-hole",
            BlockError::NextVerifierMismatch { .. } => "next-verifier-mismatch",
            BlockError::NusedBelowHeader { .. } => "nused-below-header",
            BlockError::NusedExceedsRecordArea { .. } => "nused-exceeds-record-area",
        }
    }
}

/// A block that passed every acceptance check; borrows the block bytes.
#[derive(Clone, Copy, Debug)]
pub struct VerifiedBlock<'a> {
    /// The whole block as read.
    pub bytes: &'a [u8],
    /// Layout.
    pub format: BlockFormat,
    /// Byte order of the writer, from `zec_magic`.
    pub byte_order: ByteOrder,
    /// The decoded chain header/trailer.
    pub chain: ZilChain,
    /// `zc_nused`.
    pub nused_bytes: u64,
    /// Bytes covered by the embedded checksum.
    pub checksummed_bytes: usize,
    /// Offset of the first record.
    pub records_start_bytes: usize,
    /// Offset just past the last record.
    pub records_end_bytes: usize,
    /// The verifier the block was checked against.
    pub verifier: ZioCksum,
}

impl<'a> VerifiedBlock<'a> {
    /// The next block's pointer (`zc_next_blk`).
    pub fn next(&self) -> Blkptr {
        self.chain.next_blk
    }
    /// The record area `[records_start_bytes, records_end_bytes)`.
    pub fn record_bytes(&self) -> &'a [u8] {
        // The bounds were checked against `bytes.len()` in `verify_block`.
        self.bytes
            .get(self.records_start_bytes..self.records_end_bytes)
            .unwrap_or(&[])
    }
    /// The records, in order, each bounds-checked.
    pub fn records(&self) -> RecordIter<'a> {
        RecordIter::new(
            self.record_bytes(),
            self.byte_order,
            self.records_start_bytes,
        )
    }
}

/// `x` rounded up to a multiple of `align` (a power of two), or `None` on overflow.
fn roundup(x: u64, align: u64) -> Option<u64> {
    Some(x.checked_add(align - 1)? & !(align - 1))
}

/// Seal a slim block in host order; see [`seal_slim_block_in`].
pub fn seal_slim_block(
    block: &mut [u8],
    nused_bytes: usize,
    next: &Blkptr,
    verifier: &ZioCksum,
) -> Result<usize, FormatError> {
    seal_slim_block_in(block, nused_bytes, next, verifier, ByteOrder::NATIVE)
}

/// Seal a slim (ZILOG2) block: write `zil_chain_t` at offset 0 (`zc_pad` 0,
/// `zc_next_blk` = `next`, `zc_nused` = `nused_bytes`, `ZEC_MAGIC`), zero the
/// bytes from `nused_bytes` to the 4 KiB round-up (this function owns that
/// fill, so no stale memory reaches the disk and the checksum is
/// deterministic), compute fletcher-4 over the rounded prefix with `verifier`
/// in the checksum slot, and store the result there.
///
/// The caller has placed the records in `[184, nused_bytes)`; `next` must
/// carry `verifier.next_in_chain()` for a reader to accept the block.
/// `order` is the writer's byte order (host order, except in tests that make
/// foreign blocks). Returns the number of bytes to write: `roundup(nused, 4096)`.
pub fn seal_slim_block_in(
    block: &mut [u8],
    nused_bytes: usize,
    next: &Blkptr,
    verifier: &ZioCksum,
    order: ByteOrder,
) -> Result<usize, FormatError> {
    seal_slim_block_with(block, nused_bytes, next, verifier, order, |d| {
        fletcher_4(d, order)
    })
}

/// [`seal_slim_block_in`] with the fletcher-4 supplied by the caller:
/// `fletcher_4_in_order(data)` must return `fletcher_4(data, order)` (a
/// platform's vector implementation, see `Platform::fletcher_4_native`).
pub fn seal_slim_block_with(
    block: &mut [u8],
    nused_bytes: usize,
    next: &Blkptr,
    verifier: &ZioCksum,
    order: ByteOrder,
    fletcher_4_in_order: impl FnOnce(&[u8]) -> ZioCksum,
) -> Result<usize, FormatError> {
    if nused_bytes < ZIL_CHAIN_BYTES {
        return Err(FormatError::NusedBelowHeader { nused_bytes });
    }
    let too_big = FormatError::NusedExceedsBlock {
        nused_bytes,
        size_bytes: block.len(),
    };
    let write_bytes = roundup(nused_bytes as u64, ZIL_MIN_BLKSZ as u64).ok_or(too_big)? as usize;
    if write_bytes > block.len() {
        return Err(too_big);
    }
    let (used, rest) = block.split_at_mut(nused_bytes);
    if let Some(fill) = rest.get_mut(..write_bytes - nused_bytes) {
        fill.fill(0);
    }
    let chain = ZilChain {
        pad: 0,
        next_blk: *next,
        nused: nused_bytes as u64,
        eck: ZioEck {
            magic: ZEC_MAGIC,
            cksum: *verifier,
        },
    };
    // nused >= 184 so the header fits; encode cannot fail.
    chain.encode_in(used, order).ok_or(too_big)?;
    // The zero fill is summed in closed form rather than read (from the
    // first whole zero word; a partly used word is read as it is).
    let head_bytes = nused_bytes.next_multiple_of(FLETCHER_4_WORD_BYTES);
    let head = fletcher_4_in_order(block.get(..head_bytes).ok_or(too_big)?);
    let zero_words = ((write_bytes - head_bytes) / FLETCHER_4_WORD_BYTES) as u64;
    let sum = fletcher_4_extend_zeros(head, zero_words);
    sum.encode_in(block.get_mut(chain_offsets::CKSUM..).ok_or(too_big)?, order)
        .ok_or(too_big)?;
    Ok(write_bytes)
}

/// Byte order from a `zec_magic` field, read as little-endian first.
fn order_from_magic(raw_magic_le: u64) -> Option<ByteOrder> {
    if raw_magic_le == ZEC_MAGIC {
        Some(ByteOrder::Little)
    } else if raw_magic_le.swap_bytes() == ZEC_MAGIC {
        Some(ByteOrder::Big)
    } else {
        None
    }
}

/// Verify one log block exactly as OpenZFS accepts it (the embedded-checksum
/// check of `zio_checksum_error_impl`, then `zil_read_log_block`):
///
/// 1. slim: `zec_magic` is `ZEC_MAGIC` or its byte swap (which sets the
///    byte order), and `roundup(zc_nused, 4096)` fits the block;
///    old: the trailer's magic sets the byte order (a block whose magic is
///    neither is checksummed in host order, as OpenZFS does);
/// 2. the fletcher (4 over the rounded prefix / 2 over the whole block), with
///    `verifier` in place of `zec_cksum`, equals `zec_cksum`;
/// 3. `zc_next_blk` is not a hole (2.1.11's explicit test; in 2.3.2 a hole
///    fails rule 4);
/// 4. `zc_next_blk.blk_cksum == verifier` with seq + 1;
/// 5. slim: `184 <= zc_nused <= size`; old: `zc_nused <= size - 184`.
///
/// Record framing is not checked here (OpenZFS checks it while parsing); see
/// [`VerifiedBlock::records`].
pub fn verify_block<'a>(
    block: &'a [u8],
    verifier: &ZioCksum,
    format: BlockFormat,
) -> Result<VerifiedBlock<'a>, BlockError> {
    let size = block.len();
    if size < ZIL_CHAIN_BYTES || size as u64 % SPA_MINBLOCKSIZE != 0 {
        return Err(BlockError::BadBlockSize { size_bytes: size });
    }
    let chain_offset = match format {
        BlockFormat::Slim => 0,
        BlockFormat::Old => size - ZIL_CHAIN_BYTES,
    };
    let chain_bytes = block
        .get(chain_offset..chain_offset + ZIL_CHAIN_BYTES)
        .ok_or(BlockError::BadBlockSize { size_bytes: size })?;
    let raw_magic = ByteOrder::Little
        .get_u64(chain_bytes, chain_offsets::MAGIC)
        .ok_or(BlockError::BadBlockSize { size_bytes: size })?;
    let order = match (order_from_magic(raw_magic), format) {
        (Some(order), _) => order,
        (None, BlockFormat::Slim) => return Err(BlockError::BadMagic { found: raw_magic }),
        (None, BlockFormat::Old) => ByteOrder::NATIVE,
    };
    let chain = ZilChain::decode_in(chain_bytes, order)
        .ok_or(BlockError::BadBlockSize { size_bytes: size })?;
    let nused = chain.nused;

    // Rule 1 (slim): the checksummed prefix must fit.
    let checksummed_bytes = match format {
        BlockFormat::Slim => {
            let exceeds = BlockError::NusedExceedsBlock {
                nused_bytes: nused,
                limit_bytes: size as u64,
            };
            let rounded = roundup(nused, ZIL_MIN_BLKSZ as u64).ok_or(exceeds)?;
            if nused > size as u64 || rounded > size as u64 {
                return Err(exceeds);
            }
            rounded as usize
        }
        BlockFormat::Old => size,
    };

    // Rule 2: the embedded checksum, computed with the verifier in place.
    let computed = checksum_with_verifier(
        block,
        chain_offset,
        checksummed_bytes,
        verifier,
        order,
        format,
    )
    .ok_or(BlockError::BadBlockSize { size_bytes: size })?;
    if computed != chain.eck.cksum {
        return Err(BlockError::ChecksumMismatch {
            stored: chain.eck.cksum,
            computed,
        });
    }

    // Rules 3 and 4: the next pointer continues this chain. OpenZFS 2.2+
    // (#15132) only compares the verifier, so a hole next pointer that still
    // carries this chain's next verifier is accepted and ends the chain
    // after this block; a hole without it (what 2.3's writer leaves when
    // the next block could not be allocated) is named as a hole.
    let expected = verifier.next_in_chain();
    if chain.next_blk.cksum != expected {
        if chain.next_blk.is_hole() {
            return Err(BlockError::NextIsHole);
        }
        return Err(BlockError::NextVerifierMismatch {
            expected,
            found: chain.next_blk.cksum,
        });
    }

    // Rule 5: nused in range.
    let (start, end) = match format {
        BlockFormat::Slim => {
            if nused < ZIL_CHAIN_BYTES as u64 {
                return Err(BlockError::NusedBelowHeader { nused_bytes: nused });
            }
            (ZIL_CHAIN_BYTES, nused as usize)
        }
        BlockFormat::Old => {
            let limit = (size - ZIL_CHAIN_BYTES) as u64;
            if nused > limit {
                return Err(BlockError::NusedExceedsRecordArea {
                    nused_bytes: nused,
                    limit_bytes: limit,
                });
            }
            (0, nused as usize)
        }
    };
    Ok(VerifiedBlock {
        bytes: block,
        format,
        byte_order: order,
        chain,
        nused_bytes: nused,
        checksummed_bytes,
        records_start_bytes: start,
        records_end_bytes: end,
        verifier: *verifier,
    })
}

/// The fletcher of `block[..len]` with `verifier` standing in for the
/// `zec_cksum` of the chain at `chain_offset`, computed without copying the
/// block: the sums are linear in position, so we run the checksum over the
/// three pieces (before the slot, the verifier, after the slot) in sequence.
fn checksum_with_verifier(
    block: &[u8],
    chain_offset: usize,
    len: usize,
    verifier: &ZioCksum,
    order: ByteOrder,
    format: BlockFormat,
) -> Option<ZioCksum> {
    let slot = chain_offset + chain_offsets::CKSUM;
    if len <= slot {
        // Only a slim block with zc_nused == 0 gets here: OpenZFS then sums
        // zero bytes (and rejects the block later for nused < 184).
        return Some(block_fletcher(block.get(..len)?, format, order));
    }
    let before = block.get(..slot)?;
    let after = block.get(slot + ZioCksum::SIZE_BYTES..len)?;
    let mut v = [0u8; ZioCksum::SIZE_BYTES];
    verifier.encode_in(&mut v, order)?;
    let mut state = Fletcher::new(format, order);
    state.update(before);
    state.update(&v);
    state.update(after);
    Some(state.finish())
}

/// Incremental fletcher over pieces whose lengths are multiples of the word
/// (all pieces here are: 152 and 32 bytes, and the rest of a 512-multiple).
struct Fletcher {
    format: BlockFormat,
    order: ByteOrder,
    sum: [u64; 4],
}

impl Fletcher {
    fn new(format: BlockFormat, order: ByteOrder) -> Fletcher {
        Fletcher {
            format,
            order,
            sum: [0; 4],
        }
    }

    fn update(&mut self, data: &[u8]) {
        // Continue the running sums: fletcher over the concatenation equals
        // the piece's sums shifted by the carried state, applied word by word.
        match self.format {
            BlockFormat::Slim => {
                let [mut a, mut b, mut c, mut d] = self.sum;
                for chunk in data.chunks_exact(4) {
                    let raw = [chunk[0], chunk[1], chunk[2], chunk[3]];
                    let w = match self.order {
                        ByteOrder::Little => u32::from_le_bytes(raw),
                        ByteOrder::Big => u32::from_be_bytes(raw),
                    };
                    a = a.wrapping_add(u64::from(w));
                    b = b.wrapping_add(a);
                    c = c.wrapping_add(b);
                    d = d.wrapping_add(c);
                }
                self.sum = [a, b, c, d];
            }
            BlockFormat::Old => {
                let [mut a0, mut a1, mut b0, mut b1] = self.sum;
                for chunk in data.chunks_exact(16) {
                    let w0 = self.order.get_u64(chunk, 0).unwrap_or(0);
                    let w1 = self.order.get_u64(chunk, 8).unwrap_or(0);
                    a0 = a0.wrapping_add(w0);
                    a1 = a1.wrapping_add(w1);
                    b0 = b0.wrapping_add(a0);
                    b1 = b1.wrapping_add(a1);
                }
                self.sum = [a0, a1, b0, b1];
            }
        }
    }

    fn finish(self) -> ZioCksum {
        ZioCksum { word: self.sum }
    }
}

/// Whole-buffer fletcher for a format (used by tests and the old-format sealer).
pub fn block_fletcher(data: &[u8], format: BlockFormat, order: ByteOrder) -> ZioCksum {
    match format {
        BlockFormat::Slim => fletcher_4(data, order),
        BlockFormat::Old => fletcher_2(data, order),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::types::LrCommon;

    const V: ZioCksum = ZioCksum {
        word: [0x1111, 0x2222, 77, 5],
    };

    fn next_bp() -> Blkptr {
        Blkptr::log_block(0, 1 << 20, 8192, V.next_in_chain(), 12)
    }

    /// A slim block with `n` TX_CREATE records of 64 bytes, sealed in `order`.
    fn sealed(n: usize, size: usize, order: ByteOrder) -> (std::vec::Vec<u8>, usize) {
        let mut block = std::vec![0xa5u8; size];
        let mut at = ZIL_CHAIN_BYTES;
        for i in 0..n {
            LrCommon {
                txtype: TX_CREATE,
                reclen: 64,
                txg: 9,
                seq: 100 + i as u64,
            }
            .encode_in(&mut block[at..], order)
            .unwrap();
            block[at + 32..at + 64].fill(i as u8);
            at += 64;
        }
        let w = seal_slim_block_in(&mut block, at, &next_bp(), &V, order).unwrap();
        (block, w)
    }

    #[test]
    fn seal_then_verify_roundtrip() {
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let (block, w) = sealed(3, 8192, order);
            assert_eq!(w, 4096);
            // The fill after nused is ours: zero up to the rounded end, untouched beyond.
            assert!(block[184 + 192..4096].iter().all(|&b| b == 0));
            assert!(block[4096..].iter().all(|&b| b == 0xa5));
            let vb = verify_block(&block, &V, BlockFormat::Slim).unwrap();
            assert_eq!(vb.byte_order, order);
            assert_eq!(vb.nused_bytes, 184 + 192);
            assert_eq!(vb.checksummed_bytes, 4096);
            assert_eq!(vb.next(), next_bp());
            let seqs: std::vec::Vec<u64> =
                vb.records().map(|r| r.unwrap().info.common.seq).collect();
            assert_eq!(seqs, [100, 101, 102]);
            // Only the written prefix counts: verifying just it gives the same answer.
            assert!(verify_block(&block[..w], &V, BlockFormat::Slim).is_ok());
        }
    }

    #[test]
    fn seal_rejects_bad_nused() {
        let mut block = [0u8; 4096];
        assert_eq!(
            seal_slim_block(&mut block, 100, &next_bp(), &V),
            Err(FormatError::NusedBelowHeader { nused_bytes: 100 })
        );
        assert_eq!(
            seal_slim_block(&mut block, 4097, &next_bp(), &V),
            Err(FormatError::NusedExceedsBlock {
                nused_bytes: 4097,
                size_bytes: 4096
            })
        );
        assert_eq!(
            seal_slim_block(&mut [0u8; 8192][..5000], 4200, &next_bp(), &V),
            Err(FormatError::NusedExceedsBlock {
                nused_bytes: 4200,
                size_bytes: 5000
            })
        );
        assert_eq!(seal_slim_block(&mut block, 4096, &next_bp(), &V), Ok(4096));
        assert_eq!(seal_slim_block(&mut block, 184, &next_bp(), &V), Ok(4096));
    }

    #[test]
    fn each_rejection_has_its_reason() {
        let (good, _) = sealed(2, 8192, ByteOrder::NATIVE);

        // Wrong verifier (stale: another seq or another chain).
        assert!(matches!(
            verify_block(&good, &V.with_seq(6), BlockFormat::Slim),
            Err(BlockError::ChecksumMismatch { .. })
        ));
        // Torn/corrupt: one flipped bit in a record.
        let mut torn = good.clone();
        torn[200] ^= 0x20;
        assert!(matches!(
            verify_block(&torn, &V, BlockFormat::Slim),
            Err(BlockError::ChecksumMismatch { .. })
        ));
        // A flip beyond the checksummed prefix is not part of the block.
        let mut tail = good.clone();
        tail[5000] ^= 1;
        assert!(verify_block(&tail, &V, BlockFormat::Slim).is_ok());
        // Zeroed block.
        assert_eq!(
            verify_block(&[0u8; 4096], &V, BlockFormat::Slim).map(|_| ()),
            Err(BlockError::BadMagic { found: 0 })
        );
        // Truncated buffers.
        assert_eq!(
            verify_block(&good[..100], &V, BlockFormat::Slim).map(|_| ()),
            Err(BlockError::BadBlockSize { size_bytes: 100 })
        );
        assert_eq!(
            verify_block(&good[..1000], &V, BlockFormat::Slim).map(|_| ()),
            Err(BlockError::BadBlockSize { size_bytes: 1000 })
        );
        assert_eq!(
            verify_block(&good[..1024], &V, BlockFormat::Slim).map(|_| ()),
            Err(BlockError::NusedExceedsBlock {
                nused_bytes: 312,
                limit_bytes: 1024
            })
        );
        assert_eq!(
            verify_block(&[], &V, BlockFormat::Old).map(|_| ()),
            Err(BlockError::BadBlockSize { size_bytes: 0 })
        );

        // Hole next pointer, correctly sealed.
        let mut hole = std::vec![0u8; 4096];
        seal_slim_block(&mut hole, 184, &Blkptr::HOLE, &V).unwrap();
        assert_eq!(
            verify_block(&hole, &V, BlockFormat::Slim).map(|_| ()),
            Err(BlockError::NextIsHole)
        );
        // Next pointer that does not carry seq + 1.
        let mut skip = std::vec![0u8; 4096];
        let bad_next = Blkptr::log_block(0, 8192, 4096, V.with_seq(7), 1);
        seal_slim_block(&mut skip, 184, &bad_next, &V).unwrap();
        assert_eq!(
            verify_block(&skip, &V, BlockFormat::Slim).map(|_| ()),
            Err(BlockError::NextVerifierMismatch {
                expected: V.next_in_chain(),
                found: V.with_seq(7)
            })
        );
    }

    /// Re-seal `block` with an arbitrary nused, bypassing the sealer's checks.
    fn forge_nused(nused: u64) -> std::vec::Vec<u8> {
        let mut block = std::vec![0u8; 4096];
        let chain = ZilChain {
            pad: 0,
            next_blk: next_bp(),
            nused,
            eck: ZioEck {
                magic: ZEC_MAGIC,
                cksum: V,
            },
        };
        chain.encode(&mut block).unwrap();
        let len = roundup(nused, 4096).unwrap_or(u64::MAX).min(4096) as usize;
        let sum = fletcher_4(&block[..len], ByteOrder::NATIVE);
        sum.encode(&mut block[chain_offsets::CKSUM..]).unwrap();
        block
    }

    #[test]
    fn nused_limits_follow_openzfs() {
        assert_eq!(
            verify_block(&forge_nused(100), &V, BlockFormat::Slim).map(|_| ()),
            Err(BlockError::NusedBelowHeader { nused_bytes: 100 })
        );
        assert_eq!(
            verify_block(&forge_nused(4104), &V, BlockFormat::Slim).map(|_| ()),
            Err(BlockError::NusedExceedsBlock {
                nused_bytes: 4104,
                limit_bytes: 4096
            })
        );
        assert_eq!(
            verify_block(&forge_nused(u64::MAX), &V, BlockFormat::Slim).map(|_| ()),
            Err(BlockError::NusedExceedsBlock {
                nused_bytes: u64::MAX,
                limit_bytes: 4096
            })
        );
        assert!(verify_block(&forge_nused(4096), &V, BlockFormat::Slim).is_ok());
    }

    #[test]
    fn byte_swapped_magic_alone_is_not_enough() {
        // A native block whose magic word alone is swapped: the byte order is
        // then read as foreign, and the checksum fails.
        let (mut block, _) = sealed(1, 4096, ByteOrder::NATIVE);
        let m = ByteOrder::NATIVE
            .get_u64(&block, chain_offsets::MAGIC)
            .unwrap();
        ByteOrder::NATIVE
            .put_u64(&mut block, chain_offsets::MAGIC, m.swap_bytes())
            .unwrap();
        assert!(matches!(
            verify_block(&block, &V, BlockFormat::Slim),
            Err(BlockError::ChecksumMismatch { .. } | BlockError::NusedExceedsBlock { .. })
        ));
    }

    #[test]
    fn incremental_checksum_equals_copy_and_replace() {
        let (block, w) = sealed(5, 8192, ByteOrder::Little);
        let mut copy = block[..w].to_vec();
        V.encode_in(&mut copy[chain_offsets::CKSUM..], ByteOrder::Little)
            .unwrap();
        let want = fletcher_4(&copy, ByteOrder::Little);
        let got =
            checksum_with_verifier(&block, 0, w, &V, ByteOrder::Little, BlockFormat::Slim).unwrap();
        assert_eq!(got, want);
    }
}
