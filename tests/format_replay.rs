//! Replay on synthetic chains written with our own sealer: every record
//! after the checkpoint once and in order, idempotence across crashes
//! during replay, torn last blocks, and claim bounds.

use rzil::format::*;
use std::collections::HashMap;

const BLOCK_BYTES: usize = 8192;
const FILE_BYTES: usize = 1 << 16;
const V: ZioCksum = ZioCksum {
    word: [0xfeed_f00d, 0xdead_beef, 42, 1],
};

struct Mem(HashMap<u64, Vec<u8>>);

#[derive(Debug, PartialEq)]
struct Missing;

impl BlockSource for Mem {
    type Error = Missing;
    fn read_block(&mut self, bp: &Blkptr, buf: &mut [u8]) -> Result<(), Missing> {
        let b = self.0.get(&bp.offset_bytes()).ok_or(Missing)?;
        buf.copy_from_slice(b.get(..buf.len()).ok_or(Missing)?);
        Ok(())
    }
}

/// A record to log: a write of `data` at `offset`, or a truncate to `offset`.
#[derive(Clone)]
enum Op {
    Write { offset: u64, data: Vec<u8> },
    Truncate { offset: u64 },
}

fn encode_op(op: &Op, seq: u64, txg: u64, out: &mut Vec<u8>) {
    match op {
        Op::Write { offset, data } => {
            let padded = data.len().div_ceil(8) * 8;
            let reclen = LrWrite::SIZE_BYTES + padded;
            let mut rec = vec![0u8; reclen];
            LrWrite {
                common: LrCommon {
                    txtype: TX_WRITE,
                    reclen: reclen as u64,
                    txg,
                    seq,
                },
                foid: 1,
                offset: *offset,
                length: data.len() as u64,
                blkoff: 0,
                blkptr: Blkptr::HOLE,
            }
            .encode(&mut rec)
            .unwrap();
            rec[LrWrite::SIZE_BYTES..LrWrite::SIZE_BYTES + data.len()].copy_from_slice(data);
            out.extend_from_slice(&rec);
        }
        Op::Truncate { offset } => {
            // lr_truncate_t: lr_t, foid, offset, length.
            let mut rec = vec![0u8; 56];
            LrCommon {
                txtype: TX_TRUNCATE,
                reclen: 56,
                txg,
                seq,
            }
            .encode(&mut rec)
            .unwrap();
            rec[32..40].copy_from_slice(&1u64.to_ne_bytes());
            rec[40..48].copy_from_slice(&offset.to_ne_bytes());
            out.extend_from_slice(&rec);
        }
    }
}

/// Write `ops` as a chain of slim blocks (records packed until a block is
/// full), record seqs from 1, block seqs from V's. Returns the source, the
/// header and the number of records.
fn build_chain(ops: &[Op]) -> (Mem, ZilHeader, usize) {
    let mut blocks: Vec<Vec<u8>> = vec![];
    let mut cur: Vec<u8> = vec![];
    for (i, op) in ops.iter().enumerate() {
        let mut rec = vec![];
        encode_op(op, i as u64 + 1, 100 + i as u64 / 4, &mut rec);
        assert!(ZIL_CHAIN_BYTES + rec.len() <= BLOCK_BYTES);
        if ZIL_CHAIN_BYTES + cur.len() + rec.len() > BLOCK_BYTES {
            blocks.push(std::mem::take(&mut cur));
        }
        cur.extend_from_slice(&rec);
    }
    blocks.push(cur);
    let mut mem = HashMap::new();
    let off = |i: usize| (i as u64 + 1) * BLOCK_BYTES as u64;
    for (i, recs) in blocks.iter().enumerate() {
        let v = V.with_seq(V.seq() + i as u64);
        let next = Blkptr::log_block(0, off(i + 1), BLOCK_BYTES as u32, v.next_in_chain(), 50);
        let mut b = vec![0u8; BLOCK_BYTES];
        b[ZIL_CHAIN_BYTES..ZIL_CHAIN_BYTES + recs.len()].copy_from_slice(recs);
        seal_slim_block(&mut b, ZIL_CHAIN_BYTES + recs.len(), &next, &v).unwrap();
        mem.insert(off(i), b);
    }
    let header = ZilHeader {
        log: Blkptr::log_block(0, off(0), BLOCK_BYTES as u32, V, 50),
        ..ZilHeader::default()
    };
    (Mem(mem), header, ops.len())
}

/// Deterministic ops from a seed (xorshift).
fn ops(seed: u64, n: usize) -> Vec<Op> {
    let mut x = seed | 1;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|_| {
            let r = next();
            if r % 7 == 0 {
                Op::Truncate {
                    offset: next() % FILE_BYTES as u64,
                }
            } else {
                let len = (next() % 600) as usize + 1;
                let offset = next() % (FILE_BYTES - len) as u64;
                let byte = next() as u8;
                Op::Write {
                    offset,
                    data: (0..len).map(|i| byte.wrapping_add(i as u8)).collect(),
                }
            }
        })
        .collect()
}

/// The replayed object: a file, a non-idempotent history, and the persisted
/// replay seq, all changed together (one "txg") per record.
#[derive(Clone, Debug, PartialEq, Default)]
struct State {
    file: Vec<u8>,
    history: Vec<u64>,
    replay_seq: u64,
}

#[derive(Debug, PartialEq)]
struct Crash;

struct Applier<'s> {
    state: &'s mut State,
    /// Records to apply before the simulated power cut.
    budget: usize,
}

impl Replayer for Applier<'_> {
    type Error = Crash;
    fn replay(&mut self, r: &Record<'_>) -> Result<(), Crash> {
        if self.budget == 0 {
            return Err(Crash);
        }
        self.budget -= 1;
        let s = &mut *self.state;
        match r.info.record_type() {
            TX_WRITE => {
                let w = r.info.write.unwrap();
                let data = r.inline_data().unwrap();
                let end = w.offset as usize + data.len();
                if s.file.len() < end {
                    s.file.resize(end, 0);
                }
                s.file[w.offset as usize..end].copy_from_slice(data);
            }
            TX_TRUNCATE => {
                let off = u64::from_ne_bytes(r.bytes[40..48].try_into().unwrap());
                s.file.truncate(off as usize);
            }
            t => panic!("unexpected record type {t}"),
        }
        s.history.push(r.info.common.seq);
        s.replay_seq = r.info.common.seq;
        Ok(())
    }
}

fn replay_into(
    src: &mut Mem,
    header: &ZilHeader,
    state: &mut State,
    budget: usize,
) -> ReplaySummary<Missing, Crash> {
    let mut h = *header;
    h.replay_seq = state.replay_seq;
    let mut buf = vec![0u8; BLOCK_BYTES];
    replay_log(
        src,
        &h,
        &mut buf,
        CHAIN_BLOCKS_MAX,
        &mut Applier { state, budget },
    )
}

#[test]
fn full_replay_applies_every_record_once_in_order() {
    let (mut src, header, n) = build_chain(&ops(7, 200));
    let mut st = State::default();
    let out = replay_into(&mut src, &header, &mut st, usize::MAX);
    assert_eq!(out.failure, None);
    assert_eq!(out.replayed as usize, n);
    assert_eq!(st.history, (1..=n as u64).collect::<Vec<_>>());
    assert!(out.walk.blocks_accepted > 5, "{:?}", out.walk);
    // The chain ends at the first block never written.
    assert!(matches!(
        out.walk.end,
        ChainEnd::ReadFailed { error: Missing, .. }
    ));
    // A second replay finds nothing left to do.
    let again = replay_into(&mut src, &header, &mut st, usize::MAX);
    assert_eq!((again.replayed, again.skipped as usize), (0, n));
}

#[test]
fn crash_during_replay_then_replay_again_gives_the_same_result() {
    for seed in [1u64, 2, 3] {
        let (mut src, header, n) = build_chain(&ops(seed, 120));
        let mut reference = State::default();
        replay_into(&mut src, &header, &mut reference, usize::MAX);
        assert_eq!(reference.history.len(), n);
        for crash_after in 0..=n {
            let mut st = State::default();
            let first = replay_into(&mut src, &header, &mut st, crash_after);
            if crash_after < n {
                assert_eq!(
                    first.failure,
                    Some(ReplayFailure::Replayer {
                        seq: crash_after as u64 + 1,
                        error: Crash
                    })
                );
            }
            assert_eq!(st.replay_seq, crash_after as u64);
            // A second crash during the second replay, then a third replay.
            let second_budget = (crash_after * 7919) % (n - crash_after + 1);
            replay_into(&mut src, &header, &mut st, second_budget);
            replay_into(&mut src, &header, &mut st, usize::MAX);
            assert_eq!(st, reference, "seed {seed} crash after {crash_after}");
        }
    }
}

#[test]
fn torn_last_block_ends_the_chain_before_its_records() {
    let (mut src, header, _) = build_chain(&ops(11, 100));
    let mut offsets: Vec<u64> = src.0.keys().copied().collect();
    offsets.sort();
    let last = *offsets.last().unwrap();
    // Keep the first 512-byte sector of the last block (the header survives,
    // the records after it are lost): the checksum must fail.
    let b = src.0.get_mut(&last).unwrap();
    b[512..].fill(0);
    let mut st = State::default();
    let out = replay_into(&mut src, &header, &mut st, usize::MAX);
    let torn_seq = V.seq() + offsets.len() as u64 - 1;
    assert!(matches!(
        out.walk.end,
        ChainEnd::BlockRejected { blk_seq, error: BlockError::ChecksumMismatch { .. } } if blk_seq == torn_seq
    ));
    assert_eq!(out.walk.blocks_accepted as usize, offsets.len() - 1);
    // Exactly the records of the intact blocks were replayed, in order.
    assert_eq!(
        st.history,
        (1..=st.history.len() as u64).collect::<Vec<_>>()
    );
    assert_eq!(out.walk.records as usize, st.history.len());
}

#[test]
fn claim_bounds_stop_the_walk() {
    let (mut src, mut header, n) = build_chain(&ops(5, 150));
    header.flags = ZIL_CLAIM_LR_SEQ_VALID;
    header.claim_blk_seq = u64::MAX;
    header.claim_lr_seq = 60;
    let mut st = State::default();
    let out = replay_into(&mut src, &header, &mut st, usize::MAX);
    assert_eq!(st.history, (1..=60).collect::<Vec<_>>());
    assert!(matches!(out.walk.end, ChainEnd::ClaimBound { .. }));
    assert!(n > 60);
    // Without the flag the bounds are ignored, as in zil_parse.
    header.flags = 0;
    let mut st = State::default();
    replay_into(&mut src, &header, &mut st, usize::MAX);
    assert_eq!(st.history.len(), n);
    // A block bound: only block seq V.seq() is read.
    header.flags = ZIL_CLAIM_LR_SEQ_VALID;
    header.claim_blk_seq = V.seq();
    header.claim_lr_seq = u64::MAX;
    let mut st = State::default();
    let out = replay_into(&mut src, &header, &mut st, usize::MAX);
    assert_eq!(out.walk.blocks_accepted, 1);
    assert_eq!(
        out.walk.end,
        ChainEnd::ClaimBound {
            blk_seq: V.seq() + 1
        }
    );
}

#[test]
fn txg_below_claim_txg_is_skipped() {
    let (mut src, mut header, n) = build_chain(&ops(9, 40));
    // Records have txg 100 + i/4; claim_txg 105 skips the first 20.
    header.claim_txg = 105;
    let mut st = State::default();
    let out = replay_into(&mut src, &header, &mut st, usize::MAX);
    assert_eq!(out.skipped, 20);
    assert_eq!(st.history, (21..=n as u64).collect::<Vec<_>>());
}

#[test]
fn bad_record_type_stops_replay() {
    let (mut src, header, _) = build_chain(&ops(3, 10));
    // Rewrite record 1's type to TX_MAX_TYPE and re-seal the block.
    let b = src.0.get_mut(&(BLOCK_BYTES as u64)).unwrap();
    let nused = u64::from_ne_bytes(b[136..144].try_into().unwrap()) as usize;
    b[184..192].copy_from_slice(&TX_MAX_TYPE.to_ne_bytes());
    let next = ZilChain::decode(b).unwrap().next_blk;
    seal_slim_block(b, nused, &next, &V).unwrap();
    let mut st = State::default();
    let out = replay_into(&mut src, &header, &mut st, usize::MAX);
    assert_eq!(
        out.failure,
        Some(ReplayFailure::BadRecordType {
            seq: 1,
            txtype: TX_MAX_TYPE
        })
    );
    assert!(st.history.is_empty());
}
