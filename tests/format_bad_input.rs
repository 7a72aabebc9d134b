//! Bad input against the format code: truncated buffers, zeroed blocks,
//! wrong magic, chains that loop, absurd lengths, bad pointers — each a
//! named error or a clean end of chain, never a panic or an out-of-bounds
//! read (the slice accessors would panic on one).

use proptest::prelude::*;
use rzil::format::*;
use std::collections::HashMap;
use std::path::Path;

const V: ZioCksum = ZioCksum {
    word: [0x0123_4567, 0x89ab_cdef, 7, 10],
};
const BLOCK_BYTES: usize = 4096;

fn real_block(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/openzfs-zil")
            .join(name),
    )
    .unwrap()
}

/// Verifier of 2.3.2-mf-ds4-5.bin (from its manifest entry).
const DS4_5: ZioCksum = ZioCksum {
    word: [0x9077_cfb8_0293_be88, 0xedf2_c419_5bd9_ae51, 95, 5],
};

#[test]
fn every_truncation_of_a_real_block_is_an_error_unless_the_prefix_is_whole() {
    let block = real_block("2.3.2-mf-ds4-4.bin"); // 64 KiB, checksummed prefix 40 KiB
    let v = ZioCksum::verifier(0x9077_cfb8_0293_be88, 0xedf2_c419_5bd9_ae51, 95, 4);
    let whole = verify_block(&block, &v, BlockFormat::Slim)
        .unwrap()
        .checksummed_bytes;
    for n in 0..block.len() {
        let r = verify_block(&block[..n], &v, BlockFormat::Slim);
        let expect_ok = n % 512 == 0 && n >= whole;
        assert_eq!(r.is_ok(), expect_ok, "n={n}: {:?}", r.err());
        if let Ok(vb) = r {
            assert_eq!(vb.records().filter(|r| r.is_ok()).count(), 183);
        }
    }
    // Old format: the trailer moves with the size, so no truncation verifies.
    let old = real_block("2.3.2-v22-ds0-2.bin");
    let ov = ZioCksum::verifier(0x5c5d_f3bb_fd50_ab57, 0x595c_10a3_20bd_d7c7, 5, 2);
    assert!(verify_block(&old, &ov, BlockFormat::Old).is_ok());
    for n in 0..old.len() {
        assert!(
            verify_block(&old[..n], &ov, BlockFormat::Old).is_err(),
            "n={n}"
        );
    }
}

#[test]
fn zeroed_and_wrong_magic_blocks_are_rejected_by_name() {
    let zero = vec![0u8; BLOCK_BYTES];
    assert_eq!(
        verify_block(&zero, &V, BlockFormat::Slim).err(),
        Some(BlockError::BadMagic { found: 0 })
    );
    assert!(matches!(
        verify_block(&zero, &V, BlockFormat::Old).err(),
        Some(BlockError::ChecksumMismatch { .. })
    ));
    let mut b = real_block("2.3.2-mf-ds4-5.bin");
    assert!(verify_block(&b, &DS4_5, BlockFormat::Slim).is_ok());
    b[144] ^= 0x01;
    assert_eq!(
        verify_block(&b, &DS4_5, BlockFormat::Slim).err(),
        Some(BlockError::BadMagic {
            found: ZEC_MAGIC ^ 1
        })
    );
    // The same block read as the wrong format.
    assert!(verify_block(&real_block("2.3.2-mf-ds4-5.bin"), &DS4_5, BlockFormat::Old).is_err());
    // Verified against the right chain but the wrong seq: stale.
    assert!(matches!(
        verify_block(
            &real_block("2.3.2-mf-ds4-5.bin"),
            &DS4_5.with_seq(6),
            BlockFormat::Slim
        )
        .err(),
        Some(BlockError::ChecksumMismatch { .. })
    ));
}

/// Blocks at offsets; any read of an unknown offset fails.
struct Mem(HashMap<u64, Vec<u8>>);

#[derive(Debug, PartialEq, Clone, Copy)]
struct Missing;

impl BlockSource for Mem {
    type Error = Missing;
    fn read_block(&mut self, bp: &Blkptr, buf: &mut [u8]) -> Result<(), Missing> {
        let b = self.0.get(&bp.offset_bytes()).ok_or(Missing)?;
        buf.copy_from_slice(b.get(..buf.len()).ok_or(Missing)?);
        Ok(())
    }
}

struct Count(usize);

impl ChainVisitor for Count {
    fn record(&mut self, _: &BlockInfo, _: &Record<'_>) -> std::ops::ControlFlow<()> {
        self.0 += 1;
        std::ops::ControlFlow::Continue(())
    }
}

fn bp_at(offset: u64, v: ZioCksum) -> Blkptr {
    Blkptr::log_block(0, offset, BLOCK_BYTES as u32, v, 3)
}

/// A sealed block at `offset` with verifier `v`, records `recs` (seq list,
/// 64-byte TX_CREATE each), pointing at `next_offset`.
fn block(v: ZioCksum, recs: &[u64], next_offset: u64) -> Vec<u8> {
    let mut b = vec![0u8; BLOCK_BYTES];
    let mut at = ZIL_CHAIN_BYTES;
    for &seq in recs {
        LrCommon {
            txtype: TX_CREATE,
            reclen: 64,
            txg: 5,
            seq,
        }
        .encode(&mut b[at..])
        .unwrap();
        at += 64;
    }
    seal_slim_block(&mut b, at, &bp_at(next_offset, v.next_in_chain()), &v).unwrap();
    b
}

fn walk(
    src: &mut impl BlockSource<Error = Missing>,
    first: &Blkptr,
    blocks_max: u64,
) -> (WalkSummary<Missing>, usize) {
    let mut buf = vec![0u8; ZIL_MAX_BLKSZ];
    let mut c = Count(0);
    let limits = WalkLimits {
        blocks_max,
        ..WalkLimits::UNCLAIMED
    };
    let s = walk_chain(src, first, &limits, &mut buf, &mut c);
    assert_eq!(s.records as usize, c.0);
    (s, c.0)
}

#[test]
fn chain_pointing_back_at_an_earlier_block_ends_as_stale() {
    // 0x1000 -> 0x2000 -> 0x1000: block 0x1000 was sealed for seq 10, so read
    // as seq 12 its checksum fails.
    let mut src = Mem(HashMap::from([
        (0x1000, block(V, &[1, 2], 0x2000)),
        (0x2000, block(V.next_in_chain(), &[3], 0x1000)),
    ]));
    let (s, n) = walk(&mut src, &bp_at(0x1000, V), CHAIN_BLOCKS_MAX);
    assert_eq!(n, 3);
    assert!(matches!(
        s.end,
        ChainEnd::BlockRejected {
            blk_seq: 12,
            error: BlockError::ChecksumMismatch { .. }
        }
    ));
}

/// A hostile source that forges a valid block for whatever it is asked,
/// pointing back at the same address: an endless chain.
struct Forger {
    records_repeat: bool,
    calls: u64,
}

impl BlockSource for Forger {
    type Error = Missing;
    fn read_block(&mut self, bp: &Blkptr, buf: &mut [u8]) -> Result<(), Missing> {
        self.calls += 1;
        let recs: Vec<u64> = if self.records_repeat {
            vec![1, 2]
        } else {
            vec![]
        };
        buf.copy_from_slice(&block(bp.verifier(), &recs, bp.offset_bytes()));
        Ok(())
    }
}

#[test]
fn forged_loops_end_on_seq_or_block_bound() {
    let mut f = Forger {
        records_repeat: true,
        calls: 0,
    };
    let (s, n) = walk(&mut f, &bp_at(0x1000, V), CHAIN_BLOCKS_MAX);
    assert_eq!(n, 2, "the second copy's records are not handed out");
    assert_eq!(
        s.end,
        ChainEnd::RecordSeqNotIncreasing {
            blk_seq: 11,
            offset_in_block: 184,
            prev_seq: 2,
            seq: 1
        }
    );
    let mut f = Forger {
        records_repeat: false,
        calls: 0,
    };
    let (s, _) = walk(&mut f, &bp_at(0x1000, V), 1000);
    assert_eq!(s.end, ChainEnd::BlocksMaxReached { blocks_max: 1000 });
    assert_eq!((s.blocks_read, f.calls), (1000, 1000));
}

/// Seal `recs_bytes` as the record area of a block (checksum valid).
fn sealed_area(area: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; BLOCK_BYTES];
    b[ZIL_CHAIN_BYTES..ZIL_CHAIN_BYTES + area.len()].copy_from_slice(area);
    seal_slim_block(
        &mut b,
        ZIL_CHAIN_BYTES + area.len(),
        &bp_at(0x2000, V.next_in_chain()),
        &V,
    )
    .unwrap();
    b
}

fn lr(txtype: u64, reclen: u64, seq: u64) -> Vec<u8> {
    let mut r = vec![0u8; 32];
    LrCommon {
        txtype,
        reclen,
        txg: 1,
        seq,
    }
    .encode(&mut r)
    .unwrap();
    r
}

#[test]
fn absurd_record_lengths_end_the_chain_with_no_record_of_that_block() {
    let good = {
        let mut r = lr(TX_CREATE, 64, 1);
        r.resize(64, 0);
        r
    };
    type Expect = fn(&RecordError) -> bool;
    let cases: Vec<(Vec<u8>, Expect)> = vec![
        (lr(TX_CREATE, 0, 2), |e| {
            matches!(e, RecordError::ReclenBelowHeader { reclen: 0, .. })
        }),
        (lr(TX_CREATE, 8, 2), |e| {
            matches!(e, RecordError::ReclenBelowHeader { reclen: 8, .. })
        }),
        (lr(TX_CREATE, 44, 2), |e| {
            matches!(e, RecordError::ReclenMisaligned { .. })
        }),
        (lr(TX_CREATE, !7, 2), |e| {
            matches!(e, RecordError::ReclenExceedsBlock { .. })
        }),
        (lr(TX_CREATE, 1 << 40, 2), |e| {
            matches!(e, RecordError::ReclenExceedsBlock { .. })
        }),
        (lr(TX_WRITE, 32, 2), |e| {
            matches!(e, RecordError::WriteRecordTooShort { .. })
        }),
        (lr(TX_CREATE, 64, 2)[..24].to_vec(), |e| {
            matches!(
                e,
                RecordError::TruncatedHeader {
                    remaining_bytes: 24,
                    ..
                }
            )
        }),
        (
            {
                // Inline write claiming u64::MAX bytes of data in 8.
                let mut w = vec![0u8; 200];
                LrWrite {
                    common: LrCommon {
                        txtype: TX_WRITE,
                        reclen: 200,
                        txg: 1,
                        seq: 2,
                    },
                    foid: 1,
                    offset: 0,
                    length: u64::MAX,
                    blkoff: 0,
                    blkptr: Blkptr::HOLE,
                }
                .encode(&mut w)
                .unwrap();
                w
            },
            |e| {
                matches!(
                    e,
                    RecordError::WriteLengthExceedsRecord {
                        length: u64::MAX,
                        ..
                    }
                )
            },
        ),
    ];
    for (bad, is_expected) in cases {
        let mut area = good.clone();
        area.extend_from_slice(&bad);
        // Keep records 8-aligned in the area; a short tail is itself the case.
        let mut src = Mem(HashMap::from([(0x1000, sealed_area(&area))]));
        let (s, n) = walk(&mut src, &bp_at(0x1000, V), CHAIN_BLOCKS_MAX);
        assert_eq!(n, 0, "the good record before the bad one is withheld");
        match s.end {
            ChainEnd::RecordRejected { blk_seq: 10, error } => {
                assert!(is_expected(&error), "{error:?}")
            }
            other => panic!("unexpected end {other:?}"),
        }
    }
}

#[test]
fn bad_pointers_end_the_walk_by_name() {
    let mut src = Mem(HashMap::new());
    assert_eq!(walk(&mut src, &Blkptr::HOLE, 10).0.end, ChainEnd::EmptyLog);
    let mut not_log = bp_at(0x1000, V);
    not_log.prop &= !(0xff << 40);
    assert_eq!(
        walk(&mut src, &not_log, 10).0.end,
        ChainEnd::BadPointer {
            blk_seq: 10,
            error: PointerError::NotALogBlock { checksum_type: 0 }
        }
    );
    let mut embedded = bp_at(0x1000, V);
    embedded.prop |= 1 << 39;
    assert_eq!(
        walk(&mut src, &embedded, 10).0.end,
        ChainEnd::BadPointer {
            blk_seq: 10,
            error: PointerError::Embedded
        }
    );
    let mut gang = bp_at(0x1000, V);
    gang.dva[0].word[1] |= 1 << 63;
    assert_eq!(
        walk(&mut src, &gang, 10).0.end,
        ChainEnd::BadPointer {
            blk_seq: 10,
            error: PointerError::Gang
        }
    );
    let huge = Blkptr::log_block(0, 0x1000, 1 << 24, V, 1);
    assert_eq!(
        walk(&mut src, &huge, 10).0.end,
        ChainEnd::BadPointer {
            blk_seq: 10,
            error: PointerError::LargerThanBuffer {
                psize_bytes: 1 << 24,
                buffer_bytes: ZIL_MAX_BLKSZ
            }
        }
    );
    assert_eq!(
        walk(&mut src, &bp_at(0x1000, V), 10).0.end,
        ChainEnd::ReadFailed {
            blk_seq: 10,
            error: Missing
        }
    );
}

#[test]
fn decoders_reject_short_input() {
    for n in 0..200 {
        let b = vec![0xffu8; n];
        assert_eq!(ZioCksum::decode(&b).is_some(), n >= 32);
        assert_eq!(Blkptr::decode(&b).is_some(), n >= 128);
        assert_eq!(ZilChain::decode(&b).is_some(), n >= 184);
        assert_eq!(LrCommon::decode(&b).is_some(), n >= 32);
        assert_eq!(LrWrite::decode(&b).is_some(), n >= 192);
        assert_eq!(ZilHeader::decode(&b).is_some(), n >= 192);
        let mut out = vec![0u8; n];
        assert_eq!(ZilHeader::default().encode(&mut out).is_some(), n >= 192);
        assert_eq!(ZilChain::default().encode(&mut out).is_some(), n >= 184);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes as a block, in either format, against any verifier.
    #[test]
    fn arbitrary_blocks_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..9000), seq in any::<u64>()) {
        for f in [BlockFormat::Slim, BlockFormat::Old] {
            if let Ok(vb) = verify_block(&bytes, &V.with_seq(seq), f) {
                for r in vb.records().flatten() {
                    prop_assert!(r.bytes.len() as u64 == r.info.common.reclen);
                }
            }
        }
        let _ = infer_block(&bytes);
    }

    /// Arbitrary record areas in correctly sealed blocks: the checksum passes,
    /// so everything rests on the record framing.
    #[test]
    fn sealed_garbage_records_never_panic(area in proptest::collection::vec(any::<u8>(), 0..(BLOCK_BYTES - ZIL_CHAIN_BYTES))) {
        let mut src = Mem(HashMap::from([(0x1000, sealed_area(&area))]));
        let (s, n) = walk(&mut src, &bp_at(0x1000, V), 4);
        prop_assert!(s.blocks_read <= 2);
        if n > 0 {
            prop_assert_eq!(s.blocks_accepted, 1);
        }
    }
}
