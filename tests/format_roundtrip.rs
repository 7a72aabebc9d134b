//! Property: any sequence of well-formed records, packed into slim blocks of
//! any allowed size and sealed in either byte order, walks back out
//! identical and in order, and the chain ends at the first unwritten block.

use proptest::prelude::*;
use rzil::format::*;
use std::collections::HashMap;

const V: ZioCksum = ZioCksum {
    word: [0xabad_1dea, 0x0dd_ba11, 3, 1],
};
/// Block sizes the lwb planner may pick (multiples of ZIL_MIN_BLKSZ).
const BLOCK_SIZES_BYTES: [usize; 4] = [4096, 8192, 36864, 131072];

struct Mem(HashMap<u64, Vec<u8>>);

#[derive(Debug, PartialEq)]
struct Missing;

impl BlockSource for Mem {
    type Error = Missing;
    fn read_block(&mut self, bp: &Blkptr, buf: &mut [u8]) -> Result<(), Missing> {
        let b = self.0.get(&bp.offset_bytes()).ok_or(Missing)?;
        if b.len() != buf.len() {
            return Err(Missing);
        }
        buf.copy_from_slice(b);
        Ok(())
    }
}

#[derive(Clone, Debug)]
struct Rec {
    txtype: u64,
    txg: u64,
    /// Inline write data length (TX_WRITE and TX_WRITE2 carry an
    /// lr_write_t), or body length for other types.
    len: usize,
}

fn encode(r: &Rec, seq: u64, order: ByteOrder) -> Vec<u8> {
    if r.txtype == TX_WRITE || r.txtype == TX_WRITE2 {
        let reclen = LrWrite::SIZE_BYTES + r.len.div_ceil(8) * 8;
        let mut b = vec![0u8; reclen];
        LrWrite {
            common: LrCommon {
                txtype: r.txtype,
                reclen: reclen as u64,
                txg: r.txg,
                seq,
            },
            foid: seq * 3,
            offset: seq << 12,
            length: r.len as u64,
            blkoff: 0,
            blkptr: Blkptr::HOLE,
        }
        .encode_in(&mut b, order)
        .unwrap();
        for (i, x) in b[LrWrite::SIZE_BYTES..LrWrite::SIZE_BYTES + r.len]
            .iter_mut()
            .enumerate()
        {
            *x = (seq as u8).wrapping_add(i as u8);
        }
        b
    } else {
        let reclen = LrCommon::SIZE_BYTES + r.len.div_ceil(8) * 8;
        let mut b = vec![0x5au8; reclen];
        LrCommon {
            txtype: r.txtype,
            reclen: reclen as u64,
            txg: r.txg,
            seq,
        }
        .encode_in(&mut b, order)
        .unwrap();
        b
    }
}

fn rec_strategy() -> impl Strategy<Value = Rec> {
    (
        prop_oneof![Just(TX_WRITE), 1u64..TX_MAX_TYPE],
        1u64..1000,
        0usize..3000,
    )
        .prop_map(|(txtype, txg, len)| Rec { txtype, txg, len })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn sealed_records_walk_back_identical(
        recs in proptest::collection::vec(rec_strategy(), 0..120),
        size_picks in proptest::collection::vec(0usize..BLOCK_SIZES_BYTES.len(), 1..40),
        big_endian in any::<bool>(),
        first_seq in 1u64..1000,
    ) {
        let order = if big_endian { ByteOrder::Big } else { ByteOrder::Little };
        let encoded: Vec<Vec<u8>> = recs.iter().enumerate().map(|(i, r)| encode(r, first_seq + i as u64, order)).collect();
        // Pack into blocks; the size of block k is size_picks[k % len].
        let mut blocks: Vec<(usize, Vec<u8>)> = vec![];
        let mut it = encoded.iter().peekable();
        let mut k = 0;
        loop {
            let size = BLOCK_SIZES_BYTES[size_picks[k % size_picks.len()]];
            let mut area = vec![];
            while let Some(r) = it.peek() {
                if ZIL_CHAIN_BYTES + area.len() + r.len() > size {
                    break;
                }
                area.extend_from_slice(r);
                it.next();
            }
            blocks.push((size, area));
            k += 1;
            if it.peek().is_none() {
                break;
            }
        }
        let offset = |i: usize| (i as u64 + 1) << 20;
        let mut mem = HashMap::new();
        let mut first = Blkptr::HOLE;
        for (i, (size, area)) in blocks.iter().enumerate() {
            let v = V.with_seq(V.seq() + i as u64);
            let bp = Blkptr::log_block(0, offset(i), *size as u32, v, 9);
            if i == 0 {
                first = bp;
            }
            let next_size = BLOCK_SIZES_BYTES[size_picks[(i + 1) % size_picks.len()]];
            let next = Blkptr::log_block(0, offset(i + 1), next_size as u32, v.next_in_chain(), 9);
            let mut b = vec![0u8; *size];
            b[ZIL_CHAIN_BYTES..ZIL_CHAIN_BYTES + area.len()].copy_from_slice(area);
            seal_slim_block_in(&mut b, ZIL_CHAIN_BYTES + area.len(), &next, &v, order).unwrap();
            mem.insert(offset(i), b);
        }
        let mut src = Mem(mem);
        let mut buf = vec![0u8; ZIL_MAX_BLKSZ];
        struct Got(Vec<(RecordInfo, Vec<u8>)>);
        impl ChainVisitor for Got {
            fn record(&mut self, _: &BlockInfo, r: &Record<'_>) -> std::ops::ControlFlow<()> {
                self.0.push((r.info, r.bytes.to_vec()));
                std::ops::ControlFlow::Continue(())
            }
        }
        let mut got = Got(vec![]);
        let s = walk_chain(&mut src, &first, &WalkLimits::UNCLAIMED, &mut buf, &mut got);
        prop_assert_eq!(s.blocks_accepted as usize, blocks.len());
        prop_assert_eq!(s.end, ChainEnd::ReadFailed { blk_seq: V.seq() + blocks.len() as u64, error: Missing });
        prop_assert_eq!(got.0.len(), recs.len());
        for (i, ((info, bytes), r)) in got.0.iter().zip(&recs).enumerate() {
            let seq = first_seq + i as u64;
            prop_assert_eq!(info.common.seq, seq);
            prop_assert_eq!(info.common.txg, r.txg);
            prop_assert_eq!(info.record_type(), r.txtype);
            prop_assert_eq!(bytes, &encoded[i]);
            if r.txtype == TX_WRITE || r.txtype == TX_WRITE2 {
                let w = info.write.unwrap();
                prop_assert_eq!((w.foid, w.offset, w.length), (seq * 3, seq << 12, r.len as u64));
                let kind = if r.len == 0 { WriteKind::Indirect } else { WriteKind::Inline { data_bytes: (r.len.div_ceil(8) * 8) as u64 } };
                prop_assert_eq!(w.kind, kind);
            } else {
                prop_assert!(info.write.is_none());
            }
        }
    }
}
