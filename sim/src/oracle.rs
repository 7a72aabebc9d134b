//! The crash oracle: what a reader finds after a power cut must hold every
//! record whose commit returned success, intact and in commit order.
//!
//! The reader is `rzil::format`'s own chain walk, started from the last
//! persisted chain head, exactly as replay would start. Records with a seq
//! at or below the persisted checkpoint are covered elsewhere (the
//! `zil_sync` analogue) and not required.

use crate::disk::CrashImage;
use crate::platform::{pattern_byte, Piece, DATA_VDEV, FOID_BASE};
use rzil::format::{
    self, walk_chain, BlockInfo, BlockSource, ChainVisitor, Record, WalkLimits, WriteKind,
};
use std::collections::HashMap;
use std::ops::ControlFlow;

/// How a record's data travels, as the workload chose it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecKind {
    /// An opaque TX_SETATTR record.
    Opaque,
    /// TX_WRITE, WR_COPIED.
    Copied,
    /// TX_WRITE, WR_NEED_COPY (may be split).
    NeedCopy,
    /// TX_WRITE, WR_INDIRECT (data in its own block on the data vdev).
    Indirect,
}

/// One record the workload assigned; its id is its index + 1.
#[derive(Clone, Copy, Debug)]
pub struct RecSpec {
    /// Kind.
    pub kind: RecKind,
    /// Object offset of a write.
    pub offset: u64,
    /// Body bytes (opaque) or data bytes (write).
    pub len: u64,
}

impl RecSpec {
    /// The object a write record targets.
    pub fn foid(id: u64) -> u64 {
        FOID_BASE + id
    }
}

/// The body of opaque record `id`: its id, then a pattern.
pub fn opaque_body(id: u64, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len as u64).map(|i| pattern_byte(id, i)).collect();
    let n = len.min(8);
    v[..n].copy_from_slice(&id.to_le_bytes()[..n]);
    v
}

/// Everything the oracle needs to judge one crash image.
#[derive(Debug)]
pub struct Expect<'a> {
    /// Where the chain starts (the persisted `zh_log`).
    pub head: format::Blkptr,
    /// Records with seq ≤ this are covered by the persisted checkpoint.
    pub checkpoint_lr_seq: u64,
    /// Every assigned record, by id − 1.
    pub specs: &'a [RecSpec],
    /// Pieces of each record as the core wrote them into blocks.
    pub pieces: &'a HashMap<u64, Vec<Piece>>,
    /// Records `1..=acked_upto` were acknowledged as durable.
    pub acked_upto: u64,
    /// The core's `durable_lr_seq` (`zl_commit_lr_seq`): every record
    /// piece with a seq up to it (above the checkpoint) must be in the
    /// image, intact, acknowledged or not.
    pub durable_lr_seq: u64,
    /// Verdicts on records carried inline, by lr seq, kept across checks:
    /// a block that verifies holds exactly the bytes its writer sealed
    /// (one block per seq in a chain), so its inline records need judging
    /// once. WR_INDIRECT data lives outside the block and is judged every
    /// time.
    pub verdicts: &'a std::cell::RefCell<HashMap<u64, (u64, bool, &'static str)>>,
}

/// What one check saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct Seen {
    /// Blocks accepted by the walk.
    pub blocks: u64,
    /// Records read.
    pub records: u64,
    /// The pointer of the block that ended the walk (rejected), if any.
    pub end_bp: Option<format::Blkptr>,
}

struct Source<'a, 'b>(&'a CrashImage<'b>);

impl BlockSource for Source<'_, '_> {
    type Error = core::convert::Infallible;
    fn read_block(&mut self, bp: &format::Blkptr, buf: &mut [u8]) -> Result<(), Self::Error> {
        self.0.read(bp.vdev(), bp.offset_bytes(), buf);
        Ok(())
    }
}

#[derive(Clone, Copy, Debug)]
struct Found {
    id: u64,
    intact: bool,
    why: &'static str,
}

struct Collect<'a, 'b> {
    image: &'a CrashImage<'b>,
    verdicts: &'a std::cell::RefCell<HashMap<u64, (u64, bool, &'static str)>>,
    specs: &'a [RecSpec],
    found: HashMap<u64, Found>,
    order: Vec<(u64, u64)>,
    /// The pointer of the block that ended the walk, if one was rejected.
    end_bp: Option<format::Blkptr>,
}

impl Collect<'_, '_> {
    fn judge(&self, rec: &Record<'_>) -> Found {
        let bad = |id, why| Found {
            id,
            intact: false,
            why,
        };
        match rec.info.write {
            None => {
                let body = rec.bytes.get(32..).unwrap_or(&[]);
                let id = body
                    .get(..8)
                    .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                    .unwrap_or(0);
                let Some(spec) = id.checked_sub(1).and_then(|i| self.specs.get(i as usize)) else {
                    return bad(id, "record names no assigned record");
                };
                let want = opaque_body(id, spec.len as usize);
                // The core pads bodies to 8 bytes with zeros.
                let ok = spec.kind == RecKind::Opaque
                    && body.len() >= want.len()
                    && body[..want.len()] == want[..]
                    && body[want.len()..].iter().all(|&b| b == 0);
                if ok {
                    Found {
                        id,
                        intact: true,
                        why: "",
                    }
                } else {
                    bad(id, "opaque body differs from what was assigned")
                }
            }
            Some(w) => {
                let id = w.foid.wrapping_sub(FOID_BASE);
                let Some(spec) = id.checked_sub(1).and_then(|i| self.specs.get(i as usize)) else {
                    return bad(id, "write names no assigned record");
                };
                if w.offset < spec.offset || w.offset + w.length > spec.offset + spec.len {
                    return bad(id, "write range outside the assigned record");
                }
                match w.kind {
                    WriteKind::Inline { .. } => {
                        let Some(data) = rec.inline_data() else {
                            return bad(id, "inline data missing");
                        };
                        let ok = data
                            .iter()
                            .enumerate()
                            .all(|(i, &b)| b == pattern_byte(w.foid, w.offset + i as u64));
                        if ok {
                            Found {
                                id,
                                intact: true,
                                why: "",
                            }
                        } else {
                            bad(id, "inline data differs")
                        }
                    }
                    WriteKind::Indirect => {
                        if w.blkptr.vdev() != DATA_VDEV {
                            return bad(id, "indirect block pointer not on the data vdev");
                        }
                        let mut data = vec![0u8; w.length as usize];
                        self.image
                            .read(DATA_VDEV, w.blkptr.offset_bytes(), &mut data);
                        let ok = data
                            .iter()
                            .enumerate()
                            .all(|(i, &b)| b == pattern_byte(w.foid, w.offset + i as u64));
                        if ok {
                            Found {
                                id,
                                intact: true,
                                why: "",
                            }
                        } else {
                            bad(id, "WR_INDIRECT data block not durable")
                        }
                    }
                }
            }
        }
    }
}

impl ChainVisitor for Collect<'_, '_> {
    fn block(&mut self, info: &BlockInfo) -> ControlFlow<()> {
        if info.error.is_some() && self.end_bp.is_none() {
            self.end_bp = Some(info.bp);
        }
        ControlFlow::Continue(())
    }

    fn record(&mut self, _block: &BlockInfo, record: &Record<'_>) -> ControlFlow<()> {
        let seq = record.info.common.seq;
        let inline = !matches!(record.info.write.map(|w| w.kind), Some(WriteKind::Indirect));
        let cached = inline
            .then(|| self.verdicts.borrow().get(&seq).copied())
            .flatten();
        let f = match cached {
            Some((id, intact, why)) => Found { id, intact, why },
            None => {
                let f = self.judge(record);
                if inline {
                    self.verdicts
                        .borrow_mut()
                        .insert(seq, (f.id, f.intact, f.why));
                }
                f
            }
        };
        self.order.push((seq, f.id));
        self.found.insert(seq, f);
        ControlFlow::Continue(())
    }
}

/// Judge one crash image. `Err` names the first broken promise.
pub fn check(image: &CrashImage<'_>, ex: &Expect<'_>) -> Result<Seen, String> {
    let mut buf = vec![0u8; rzil::limits::LWB_BLOCK_SIZE_MAX_BYTES as usize];
    let mut v = Collect {
        image,
        verdicts: ex.verdicts,
        specs: ex.specs,
        found: HashMap::new(),
        order: Vec::new(),
        end_bp: None,
    };
    let summary = walk_chain(
        &mut Source(image),
        &ex.head,
        &WalkLimits::UNCLAIMED,
        &mut buf,
        &mut v,
    );
    // Commit order: record seqs are consecutive along the chain and record
    // ids (assign order) never go backwards.
    for pair in v.order.windows(2) {
        let ((s0, i0), (s1, i1)) = (pair[0], pair[1]);
        if s1 != s0 + 1 {
            return Err(format!(
                "records out of order in the chain: seq {s1} follows seq {s0}"
            ));
        }
        if i1 < i0 {
            return Err(format!(
                "records out of commit order: record {i1} (seq {s1}) after record {i0} (seq {s0})"
            ));
        }
    }
    for id in 1..=ex.acked_upto {
        let spec = &ex.specs[(id - 1) as usize];
        let pieces = ex.pieces.get(&id).map(Vec::as_slice).unwrap_or(&[]);
        // The pieces the core wrote must cover the whole record.
        let covered: u64 = match spec.kind {
            RecKind::Opaque => pieces.iter().map(|_| spec.len).max().unwrap_or(0),
            _ => pieces.iter().map(|p| p.data_len).sum(),
        };
        if covered < spec.len {
            return Err(format!(
                "record {id} ({:?}, {} bytes) acknowledged but only {covered} bytes of it were ever submitted for writing",
                spec.kind, spec.len
            ));
        }
        for p in pieces {
            if p.lr_seq <= ex.checkpoint_lr_seq {
                continue;
            }
            match v.found.get(&p.lr_seq) {
                Some(f) if f.intact && f.id == id => {}
                Some(f) if f.id == id => {
                    return Err(format!(
                        "acknowledged record {id} (lr_seq {}) damaged after power cut: {}",
                        p.lr_seq, f.why
                    ))
                }
                _ => {
                    return Err(format!(
                        "acknowledged record {id} ({:?}, lr_seq {}) lost after power cut: the chain from block seq {} ends {} after {} blocks",
                        spec.kind,
                        p.lr_seq,
                        ex.head.verifier().seq(),
                        summary.end.name(),
                        summary.blocks_accepted
                    ))
                }
            }
        }
    }
    // What the core calls durable is durable, acknowledged or not: a
    // checkpoint at `durable_lr_seq` frees the blocks before it.
    let mut claimed: Vec<(u64, u64)> = ex
        .pieces
        .iter()
        .flat_map(|(&id, ps)| ps.iter().map(move |p| (p.lr_seq, id)))
        .filter(|&(seq, _)| seq > ex.checkpoint_lr_seq && seq <= ex.durable_lr_seq)
        .collect();
    claimed.sort_unstable();
    for (seq, id) in claimed {
        match v.found.get(&seq) {
            Some(f) if f.intact && f.id == id => {}
            found => {
                return Err(format!(
                    "record {id} (lr_seq {seq}) is at or below the core's durable_lr_seq {} but {} after power cut: the chain from block seq {} ends {} after {} blocks",
                    ex.durable_lr_seq,
                    if found.is_some() { "damaged" } else { "lost" },
                    ex.head.verifier().seq(),
                    summary.end.name(),
                    summary.blocks_accepted
                ))
            }
        }
    }
    Ok(Seen {
        blocks: summary.blocks_accepted,
        records: summary.records,
        end_bp: v.end_bp,
    })
}

/// A crafted log block for the place `bp` names: it verifies (right
/// verifier, right checksum, a next pointer that continues the chain) but
/// its one record claims a length far past the block (the #16308 attack).
pub fn crafted_block(bp: &format::Blkptr) -> Vec<u8> {
    let mut block = vec![0u8; bp.psize_bytes() as usize];
    let verifier = bp.verifier();
    let rec = format::LrCommon {
        txtype: format::TX_SETATTR,
        reclen: CRAFTED_RECLEN_BYTES,
        txg: 1,
        seq: u64::MAX / 2,
    };
    let _ = rec.encode(&mut block[format::ZIL_CHAIN_BYTES..]);
    let next = format::Blkptr::log_block(0, 1 << 40, 4096, verifier.next_in_chain(), 1);
    let _ = format::seal_slim_block(
        &mut block,
        format::ZIL_CHAIN_BYTES + format::LrCommon::SIZE_BYTES * 2,
        &next,
        &verifier,
    );
    block
}

/// The absurd `lrc_reclen` of a crafted block.
pub const CRAFTED_RECLEN_BYTES: u64 = 0x0010_0000;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crafted_block_verifies_but_its_record_does_not_frame() {
        let verifier = format::ZioCksum::verifier(1, 2, 54, 9);
        let bp = format::Blkptr::log_block(1, 8192, 8192, verifier, 3);
        let block = crafted_block(&bp);
        let vb = format::verify_block(&block, &verifier, format::BlockFormat::Slim)
            .expect("the crafted block passes every block-level check");
        let first = vb.records().next().expect("one record");
        assert!(
            first.is_err(),
            "the absurd lrc_reclen is refused: {first:?}"
        );
    }
}
