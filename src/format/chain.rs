//! Walking a log chain: from the header's first block pointer, read each
//! block through a caller's [`BlockSource`] into a caller's buffer, verify
//! it, and hand its records, in order, to a [`ChainVisitor`] — OpenZFS's
//! `zil_parse` without allocation.
//!
//! A chain ends, with a named [`ChainEnd`], at the first block that cannot be
//! read or verified (after a crash, the first block that was never fully
//! written: that is the normal end), at a claim bound, at a named bound on
//! the number of blocks, or when record seqs stop increasing (a chain that
//! loops back on itself). Nothing here panics or reads past a buffer on any
//! input.
//!
//! Unlike `zil_parse`, which hands records over while it frames them, a
//! block's records are framed and seq-checked *before* any is handed out, so
//! a block with a corrupt record contributes no record at all.

use core::fmt;
use core::ops::ControlFlow;

use super::block::{verify_block, BlockError, BlockFormat};
use super::consts::ZIL_CLAIM_LR_SEQ_VALID;
use super::endian::ByteOrder;
use super::record::{Record, RecordError};
use super::types::{Blkptr, ZilHeader};

/// Default bound on the blocks one walk reads: 2^24 blocks is 64 GiB of
/// 4 KiB blocks, more than any log device rzil formats; a chain longer than
/// that is treated as a loop.
pub const CHAIN_BLOCKS_MAX: u64 = 1 << 24;

/// Where log blocks come from (a device, a file, a test's map).
pub trait BlockSource {
    /// Why a read failed.
    type Error: fmt::Debug;

    /// Read the block `bp` points to into `buf`, which is exactly
    /// `bp.psize_bytes()` long.
    fn read_block(&mut self, bp: &Blkptr, buf: &mut [u8]) -> Result<(), Self::Error>;
}

/// Bounds of one walk (OpenZFS's claim bounds plus our loop bound).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkLimits {
    /// Most blocks to read.
    pub blocks_max: u64,
    /// Stop before a block with a higher seq (`zh_claim_blk_seq`; `u64::MAX`
    /// when the chain was not claimed).
    pub claim_blk_seq: u64,
    /// Stop before a record with a higher seq (`zh_claim_lr_seq`).
    pub claim_lr_seq: u64,
}

impl WalkLimits {
    /// No claim bounds, [`CHAIN_BLOCKS_MAX`] blocks.
    pub const UNCLAIMED: WalkLimits = WalkLimits {
        blocks_max: CHAIN_BLOCKS_MAX,
        claim_blk_seq: u64::MAX,
        claim_lr_seq: u64::MAX,
    };

    /// The bounds `zil_parse` derives from a header: the claim bounds apply
    /// only when `ZIL_CLAIM_LR_SEQ_VALID` is set.
    pub fn for_header(header: &ZilHeader) -> WalkLimits {
        if header.flags & ZIL_CLAIM_LR_SEQ_VALID != 0 {
            WalkLimits {
                blocks_max: CHAIN_BLOCKS_MAX,
                claim_blk_seq: header.claim_blk_seq,
                claim_lr_seq: header.claim_lr_seq,
            }
        } else {
            WalkLimits::UNCLAIMED
        }
    }
}

/// Why a block pointer in the chain cannot be followed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PointerError {
    /// Its checksum type is neither ZILOG nor ZILOG2.
    NotALogBlock {
        /// The checksum type found.
        checksum_type: u64,
    },
    /// An embedded pointer (log blocks never are).
    Embedded,
    /// A gang block (log blocks never are).
    Gang,
    /// The block is larger than the caller's buffer.
    LargerThanBuffer {
        /// The block's psize.
        psize_bytes: u64,
        /// The buffer size.
        buffer_bytes: usize,
    },
}

/// How a walk ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainEnd<E> {
    /// The first pointer is a hole: there is no log.
    EmptyLog,
    /// A block failed verification — after a crash, the first block that was
    /// never (fully) written; also stale or corrupt blocks.
    BlockRejected {
        /// The block's seq (from its pointer's verifier).
        blk_seq: u64,
        /// Why.
        error: BlockError,
    },
    /// The source could not read a block.
    ReadFailed {
        /// The block's seq.
        blk_seq: u64,
        /// The source's error.
        error: E,
    },
    /// A pointer that cannot name a log block.
    BadPointer {
        /// The block's seq.
        blk_seq: u64,
        /// Why.
        error: PointerError,
    },
    /// A verified block holds a record that cannot be framed; none of the
    /// block's records were handed out.
    RecordRejected {
        /// The block's seq.
        blk_seq: u64,
        /// Why.
        error: RecordError,
    },
    /// A record's seq does not exceed the previous one: the chain loops or
    /// mixes chains. None of the block's records were handed out.
    RecordSeqNotIncreasing {
        /// The block's seq.
        blk_seq: u64,
        /// Offset of the record in its block.
        offset_in_block: usize,
        /// The previous record seq.
        prev_seq: u64,
        /// The offending seq.
        seq: u64,
    },
    /// [`WalkLimits::blocks_max`] blocks were read.
    BlocksMaxReached {
        /// The bound.
        blocks_max: u64,
    },
    /// A claim bound was reached (a claimed chain's normal end).
    ClaimBound {
        /// The block being looked at.
        blk_seq: u64,
    },
    /// The visitor asked to stop.
    Stopped {
        /// The block being looked at.
        blk_seq: u64,
    },
    /// The last accepted block's next pointer is a hole that carried the
    /// chain's next verifier (OpenZFS 2.2+ after a failed allocation of the
    /// next block): the chain ends after it, by design.
    NextIsHole {
        /// The last accepted block.
        blk_seq: u64,
    },
}

impl<E> ChainEnd<E> {
    /// A short stable name for dumps and JSON.
    pub const fn name(&self) -> &'static str {
        match self {
            ChainEnd::EmptyLog => "empty-log",
            ChainEnd::BlockRejected { .. } => "block-rejected",
            ChainEnd::ReadFailed { .. } => "read-failed",
            ChainEnd::BadPointer { .. } => "bad-pointer",
            ChainEnd::RecordRejected { .. } => "record-rejected",
            ChainEnd::RecordSeqNotIncreasing { .. } => "record-seq-not-increasing",
            ChainEnd::BlocksMaxReached { .. } => "blocks-max-reached",
            ChainEnd::ClaimBound { .. } => "claim-bound",
            ChainEnd::Stopped { .. } => "stopped",
            ChainEnd::NextIsHole { .. } => "next-is-hole",
        }
    }
}

/// The plain, copyable view of one block the walk read (what `rzil dump`
/// prints per block).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    /// The pointer the block was read through.
    pub bp: Blkptr,
    /// Its seq (verifier word 3).
    pub blk_seq: u64,
    /// Layout.
    pub format: BlockFormat,
    /// Size read (`psize`).
    pub size_bytes: u64,
    /// Writer's byte order, when the magic told it.
    pub byte_order: Option<ByteOrder>,
    /// `zc_nused`, when the block was accepted.
    pub nused_bytes: Option<u64>,
    /// Whether the embedded checksum matched.
    pub checksum_ok: bool,
    /// Why the block was rejected, if it was.
    pub error: Option<BlockError>,
    /// `zc_next_blk`, when the block was accepted.
    pub next: Option<Blkptr>,
    /// Records in the block (0 when rejected or when framing failed).
    pub record_count: usize,
}

/// What a walk reports to its caller.
pub trait ChainVisitor {
    /// Called once per block read, accepted or not, before its records.
    fn block(&mut self, info: &BlockInfo) -> ControlFlow<()> {
        let _ = info;
        ControlFlow::Continue(())
    }
    /// Called for each record, in chain order.
    fn record(&mut self, block: &BlockInfo, record: &Record<'_>) -> ControlFlow<()>;
}

/// Counts and end of a walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WalkSummary<E> {
    /// Blocks read (including a rejected last one).
    pub blocks_read: u64,
    /// Blocks accepted and whose records were handed out.
    pub blocks_accepted: u64,
    /// Records handed to the visitor.
    pub records: u64,
    /// Highest accepted block seq.
    pub max_blk_seq: Option<u64>,
    /// Highest record seq handed out.
    pub max_lr_seq: Option<u64>,
    /// Why the walk ended.
    pub end: ChainEnd<E>,
}

fn check_pointer(bp: &Blkptr, buffer_bytes: usize) -> Result<(BlockFormat, usize), PointerError> {
    let format = bp.block_format().ok_or(PointerError::NotALogBlock {
        checksum_type: bp.checksum_type(),
    })?;
    if bp.is_embedded() {
        return Err(PointerError::Embedded);
    }
    if bp.dva[0].is_gang() {
        return Err(PointerError::Gang);
    }
    let psize = bp.psize_bytes();
    match usize::try_from(psize) {
        Ok(n) if n <= buffer_bytes => Ok((format, n)),
        _ => Err(PointerError::LargerThanBuffer {
            psize_bytes: psize,
            buffer_bytes,
        }),
    }
}

/// Walk the chain that starts at `first`, using `buf` (at least as large as
/// the largest block, e.g. `ZIL_MAX_BLKSZ`) for each block in turn.
pub fn walk_chain<S: BlockSource, V: ChainVisitor>(
    source: &mut S,
    first: &Blkptr,
    limits: &WalkLimits,
    buf: &mut [u8],
    visitor: &mut V,
) -> WalkSummary<S::Error> {
    let mut s = WalkSummary {
        blocks_read: 0,
        blocks_accepted: 0,
        records: 0,
        max_blk_seq: None,
        max_lr_seq: None,
        end: ChainEnd::EmptyLog,
    };
    if first.is_hole() {
        return s;
    }
    let mut bp = *first;
    loop {
        let blk_seq = bp.verifier().seq();
        if blk_seq > limits.claim_blk_seq
            || (blk_seq == limits.claim_blk_seq && s.max_lr_seq.unwrap_or(0) == limits.claim_lr_seq)
        {
            s.end = ChainEnd::ClaimBound { blk_seq };
            return s;
        }
        if s.blocks_read >= limits.blocks_max {
            s.end = ChainEnd::BlocksMaxReached {
                blocks_max: limits.blocks_max,
            };
            return s;
        }
        let (format, size) = match check_pointer(&bp, buf.len()) {
            Ok(x) => x,
            Err(error) => {
                s.end = ChainEnd::BadPointer { blk_seq, error };
                return s;
            }
        };
        let Some(block) = buf.get_mut(..size) else {
            // check_pointer proved size <= buf.len().
            s.end = ChainEnd::BadPointer {
                blk_seq,
                error: PointerError::LargerThanBuffer {
                    psize_bytes: size as u64,
                    buffer_bytes: buf.len(),
                },
            };
            return s;
        };
        if let Err(error) = source.read_block(&bp, block) {
            s.end = ChainEnd::ReadFailed { blk_seq, error };
            return s;
        }
        s.blocks_read += 1;
        let block: &[u8] = block;
        let mut info = BlockInfo {
            bp,
            blk_seq,
            format,
            size_bytes: size as u64,
            byte_order: None,
            nused_bytes: None,
            checksum_ok: false,
            error: None,
            next: None,
            record_count: 0,
        };
        let vb = match verify_block(block, &bp.verifier(), format) {
            Ok(vb) => vb,
            Err(error) => {
                info.checksum_ok = error.checksum_valid();
                info.error = Some(error);
                // The visitor sees the rejected block; the walk ends either way.
                let _ = visitor.block(&info);
                s.end = ChainEnd::BlockRejected { blk_seq, error };
                return s;
            }
        };
        info.byte_order = Some(vb.byte_order);
        info.nused_bytes = Some(vb.nused_bytes);
        info.checksum_ok = true;
        info.next = Some(vb.next());

        // Pass 1: frame every record and check seqs before handing any out.
        let mut prev = s.max_lr_seq;
        let mut count = 0usize;
        let mut bad: Option<ChainEnd<S::Error>> = None;
        for r in vb.records() {
            match r {
                Err(error) => {
                    bad = Some(ChainEnd::RecordRejected { blk_seq, error });
                    break;
                }
                Ok(rec) => {
                    let seq = rec.info.common.seq;
                    if let Some(p) = prev {
                        if seq <= p {
                            bad = Some(ChainEnd::RecordSeqNotIncreasing {
                                blk_seq,
                                offset_in_block: rec.info.offset_in_block,
                                prev_seq: p,
                                seq,
                            });
                            break;
                        }
                    }
                    prev = Some(seq);
                    count += 1;
                }
            }
        }
        if let Some(end) = bad {
            let _ = visitor.block(&info);
            s.end = end;
            return s;
        }
        info.record_count = count;
        s.blocks_accepted += 1;
        s.max_blk_seq = Some(blk_seq);
        if visitor.block(&info).is_break() {
            s.end = ChainEnd::Stopped { blk_seq };
            return s;
        }

        // Pass 2: hand the records out.
        for rec in vb.records().flatten() {
            if rec.info.common.seq > limits.claim_lr_seq {
                s.end = ChainEnd::ClaimBound { blk_seq };
                return s;
            }
            s.max_lr_seq = Some(rec.info.common.seq);
            s.records += 1;
            if visitor.record(&info, &rec).is_break() {
                s.end = ChainEnd::Stopped { blk_seq };
                return s;
            }
        }
        bp = vb.next();
        if bp.is_hole() {
            s.end = ChainEnd::NextIsHole { blk_seq };
            return s;
        }
    }
}
