//! `rzil dump` support: a decoded view of a chain or of one block, as plain
//! copyable structs ([`BlockInfo`], [`RecordInfo`]) handed to a [`DumpSink`],
//! and `Display` impls that print them the way `zdb -il` does. The host
//! formats JSON from the same fields.

use core::fmt;
use core::ops::ControlFlow;

use super::block::{verify_block, BlockFormat};
use super::chain::{
    walk_chain, BlockInfo, BlockSource, ChainEnd, ChainVisitor, WalkLimits, WalkSummary,
};
use super::consts::{ZEC_MAGIC, ZIL_CHAIN_BYTES};
use super::endian::ByteOrder;
use super::record::{Record, RecordInfo, WriteKind};
use super::types::{chain_offsets, Blkptr, ZilChain, ZioCksum};

/// Receives the decoded view, block by block and record by record.
pub trait DumpSink {
    /// One block (accepted or the rejected last one).
    fn block(&mut self, block: &BlockInfo);
    /// One record of the last block passed to [`DumpSink::block`].
    fn record(&mut self, record: &RecordInfo);
}

struct SinkVisitor<'a, D: DumpSink>(&'a mut D);

impl<D: DumpSink> ChainVisitor for SinkVisitor<'_, D> {
    fn block(&mut self, info: &BlockInfo) -> ControlFlow<()> {
        self.0.block(info);
        ControlFlow::Continue(())
    }
    fn record(&mut self, _block: &BlockInfo, record: &Record<'_>) -> ControlFlow<()> {
        self.0.record(&record.info);
        ControlFlow::Continue(())
    }
}

/// Dump the chain starting at `first` (see [`walk_chain`]).
pub fn dump_chain<S: BlockSource, D: DumpSink>(
    source: &mut S,
    first: &Blkptr,
    limits: &WalkLimits,
    buf: &mut [u8],
    sink: &mut D,
) -> WalkSummary<S::Error> {
    walk_chain(source, first, limits, buf, &mut SinkVisitor(sink))
}

/// A block's format and verifier guessed from the block alone, for dumping
/// a lone block file: the format from where `zec_magic` sits, the verifier
/// from the next pointer's (seq − 1). `None` if there is no magic or the
/// next pointer is a hole (then the caller must supply the verifier).
pub fn infer_block(block: &[u8]) -> Option<(BlockFormat, ZioCksum)> {
    let slim_magic = ByteOrder::Little.get_u64(block, chain_offsets::MAGIC);
    let old_at = block.len().checked_sub(ZIL_CHAIN_BYTES)?;
    let old_magic = ByteOrder::Little.get_u64(block, old_at + chain_offsets::MAGIC);
    let order_of = |m: Option<u64>| match m {
        Some(ZEC_MAGIC) => Some(ByteOrder::Little),
        Some(m) if m.swap_bytes() == ZEC_MAGIC => Some(ByteOrder::Big),
        _ => None,
    };
    let (format, at, order) = if let Some(o) = order_of(slim_magic) {
        (BlockFormat::Slim, 0, o)
    } else if let Some(o) = order_of(old_magic) {
        (BlockFormat::Old, old_at, o)
    } else {
        return None;
    };
    let chain = ZilChain::decode_in(block.get(at..)?, order)?;
    if chain.next_blk.is_hole() {
        return None;
    }
    let next = chain.next_blk.verifier();
    Some((format, next.with_seq(next.seq().wrapping_sub(1))))
}

/// Dump one block read through `bp` (its verifier and format come from the
/// pointer). Returns the block's view; records go to `sink` only if the
/// block is accepted.
pub fn dump_block<D: DumpSink>(
    block: &[u8],
    bp: &Blkptr,
    format: BlockFormat,
    sink: &mut D,
) -> BlockInfo {
    let mut info = BlockInfo {
        bp: *bp,
        blk_seq: bp.verifier().seq(),
        format,
        size_bytes: block.len() as u64,
        byte_order: None,
        nused_bytes: None,
        checksum_ok: false,
        error: None,
        next: None,
        record_count: 0,
    };
    match verify_block(block, &bp.verifier(), format) {
        Err(e) => {
            info.checksum_ok = e.checksum_valid();
            info.error = Some(e);
            sink.block(&info);
        }
        Ok(vb) => {
            info.byte_order = Some(vb.byte_order);
            info.nused_bytes = Some(vb.nused_bytes);
            info.checksum_ok = true;
            info.next = Some(vb.next());
            info.record_count = vb.records().take_while(|r| r.is_ok()).count();
            sink.block(&info);
            for r in vb.records() {
                match r {
                    Ok(r) => sink.record(&r.info),
                    Err(_) => break,
                }
            }
        }
    }
    info
}

/// `<vdev:offset:size>` as zdb prints a DVA (hex).
struct DvaText<'a>(&'a Blkptr);

impl fmt::Display for DvaText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bp = self.0;
        write!(
            f,
            "<{}:{:x}:{:x}>",
            bp.vdev(),
            bp.offset_bytes(),
            bp.asize_bytes()
        )
    }
}

impl fmt::Display for BlockInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Block seqno {}, DVA[0]={} {} size={} birth={}",
            self.blk_seq,
            DvaText(&self.bp),
            self.format.name(),
            self.size_bytes,
            self.bp.birth_txg()
        )?;
        if let Some(o) = self.byte_order {
            write!(f, " {}", o.name())?;
        }
        if let Some(n) = self.nused_bytes {
            write!(f, " nused={n}")?;
        }
        write!(
            f,
            " checksum {}",
            if self.checksum_ok { "ok" } else { "BAD" }
        )?;
        match (self.error, self.next) {
            (Some(e), _) => write!(f, " rejected: {}", e.name()),
            (None, Some(next)) => write!(
                f,
                " records={} next={} seq {}",
                self.record_count,
                DvaText(&next),
                next.verifier().seq()
            ),
            (None, None) => Ok(()),
        }
    }
}

impl fmt::Display for RecordInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.common;
        write!(
            f,
            "{:<19} len {:6}, txg {}, seq {}",
            self.txtype_name(),
            c.reclen,
            c.txg,
            c.seq
        )?;
        if let Some(w) = &self.write {
            write!(
                f,
                ", foid {}, offset {:x}, length {:x}, {}",
                w.foid,
                w.offset,
                w.length,
                w.kind.name()
            )?;
            if w.kind == WriteKind::Indirect && w.blkptr.is_hole() {
                write!(f, " (hole)")?;
            }
        }
        Ok(())
    }
}

impl<E: fmt::Debug> fmt::Display for ChainEnd<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainEnd::EmptyLog => write!(f, "empty log (zh_log is a hole)"),
            ChainEnd::BlockRejected { blk_seq, error } => {
                write!(f, "block seq {blk_seq} rejected: {} ({error:?})", error.name())
            }
            ChainEnd::ReadFailed { blk_seq, error } => write!(f, "block seq {blk_seq} unreadable: {error:?}"),
            ChainEnd::BadPointer { blk_seq, error } => write!(f, "block seq {blk_seq}: bad pointer {error:?}"),
            ChainEnd::RecordRejected { blk_seq, error } => write!(f, "block seq {blk_seq}: bad record {error:?}"),
            ChainEnd::RecordSeqNotIncreasing {
                blk_seq,
                offset_in_block,
                prev_seq,
                seq,
            } => write!(
                f,
                "block seq {blk_seq}: record seq {seq} at offset {offset_in_block} does not exceed {prev_seq}"
            ),
            ChainEnd::BlocksMaxReached { blocks_max } => write!(f, "stopped after {blocks_max} blocks (loop bound)"),
            ChainEnd::ClaimBound { blk_seq } => write!(f, "claim bound reached at block seq {blk_seq}"),
            ChainEnd::Stopped { blk_seq } => write!(f, "stopped by caller at block seq {blk_seq}"),
            ChainEnd::NextIsHole { blk_seq } => {
                write!(f, "block seq {blk_seq} is the last: its next pointer is a hole")
            }
        }
    }
}
