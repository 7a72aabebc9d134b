//! Fuzz the log-block parser: arbitrary bytes as a lone block (verify +
//! dump), and arbitrary bytes as the record areas of a correctly sealed
//! chain (so the checksum passes and the fuzzer explores framing, seq checks
//! and chain ends). The properties: no panic, no out-of-bounds read (every
//! access is a checked slice), every handed-out record lies inside its block.
#![no_main]

use core::fmt::Write;
use core::ops::ControlFlow;
use libfuzzer_sys::fuzz_target;
use rzil::format::*;

/// Bytes of each synthetic block; chains of up to `CHAIN_BLOCKS` blocks.
const BLOCK_BYTES: usize = 4096;
const CHAIN_BLOCKS: usize = 4;
const V: ZioCksum = ZioCksum {
    word: [0x1234, 0x5678, 9, 1],
};

struct Null;
impl Write for Null {
    fn write_str(&mut self, _: &str) -> core::fmt::Result {
        Ok(())
    }
}

struct Sink;
impl DumpSink for Sink {
    fn block(&mut self, b: &BlockInfo) {
        let _ = write!(Null, "{b}");
    }
    fn record(&mut self, r: &RecordInfo) {
        let _ = write!(Null, "{r}");
    }
}

struct Chain(Vec<Vec<u8>>);

impl BlockSource for Chain {
    type Error = ();
    fn read_block(&mut self, bp: &Blkptr, buf: &mut [u8]) -> Result<(), ()> {
        let i = (bp.offset_bytes() / BLOCK_BYTES as u64) as usize;
        let b = self.0.get(i).ok_or(())?;
        buf.copy_from_slice(b.get(..buf.len()).ok_or(())?);
        Ok(())
    }
}

struct Check;
impl ChainVisitor for Check {
    fn record(&mut self, block: &BlockInfo, r: &Record<'_>) -> ControlFlow<()> {
        let end = r.info.offset_in_block + r.bytes.len();
        assert!(end as u64 <= block.nused_bytes.unwrap_or(0));
        assert_eq!(r.bytes.len() as u64, r.info.common.reclen);
        let _ = r.inline_data();
        ControlFlow::Continue(())
    }
}

fn bp(i: usize, v: ZioCksum) -> Blkptr {
    Blkptr::log_block(0, (i * BLOCK_BYTES) as u64, BLOCK_BYTES as u32, v, 1)
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        // A lone block: verify in both formats, against its inferred verifier.
        let v = infer_block(rest).map_or(V, |(_, v)| v);
        for f in [BlockFormat::Slim, BlockFormat::Old] {
            let bp = bp(0, v);
            let _ = dump_block(rest, &bp, f, &mut Sink);
        }
    } else {
        // Record areas of a sealed chain; a mode bit picks the byte order.
        let order = if mode & 2 == 0 {
            ByteOrder::Little
        } else {
            ByteOrder::Big
        };
        let area_max = BLOCK_BYTES - ZIL_CHAIN_BYTES;
        let mut blocks = vec![];
        for (i, area) in rest.chunks(area_max).take(CHAIN_BLOCKS).enumerate() {
            let v = V.with_seq(V.seq() + i as u64);
            let mut b = vec![0u8; BLOCK_BYTES];
            b[ZIL_CHAIN_BYTES..ZIL_CHAIN_BYTES + area.len()].copy_from_slice(area);
            let next = bp(i + 1, v.next_in_chain());
            seal_slim_block_in(&mut b, ZIL_CHAIN_BYTES + area.len(), &next, &v, order)
                .expect("area fits");
            blocks.push(b);
        }
        let mut src = Chain(blocks);
        let mut buf = vec![0u8; BLOCK_BYTES];
        let s = walk_chain(
            &mut src,
            &bp(0, V),
            &WalkLimits::UNCLAIMED,
            &mut buf,
            &mut Check,
        );
        assert!(s.blocks_read as usize <= CHAIN_BLOCKS);
        let _ = dump_chain(
            &mut src,
            &bp(0, V),
            &WalkLimits::UNCLAIMED,
            &mut buf,
            &mut Sink,
        );
        let header = ZilHeader {
            log: bp(0, V),
            replay_seq: u64::from(mode >> 2),
            ..ZilHeader::default()
        };
        struct R;
        impl Replayer for R {
            type Error = ();
            fn replay(&mut self, _: &Record<'_>) -> Result<(), ()> {
                Ok(())
            }
        }
        let _ = replay_log(&mut src, &header, &mut buf, CHAIN_BLOCKS as u64, &mut R);
    }
});
