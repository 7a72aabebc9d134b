//! OpenZFS's on-disk ZIL format: slim (ZILOG2) and old (ZILOG) log blocks,
//! their chains, records, parse, replay and dump (issue #3; facts in
//! `zil-lwb-reference.md` §3).
//!
//! The module is a set of rooms, from the bytes up:
//! - [`endian`]: explicit byte order for every word;
//! - [`consts`]: OpenZFS's constants under OpenZFS's names;
//! - [`types`]: `#[repr(C)]` on-disk structures with `decode`/`encode`;
//! - [`fletcher`]: fletcher-4 and fletcher-2;
//! - [`block`]: sealing a slim block and verifying any block exactly as
//!   OpenZFS accepts it;
//! - [`record`]: bounds-checked record framing and the decoded view;
//! - [`chain`]: walking a chain through a caller's [`BlockSource`];
//! - [`replay`]: handing records after the checkpoint to a [`Replayer`];
//! - [`dump`]: the `zdb -il`-like view for `rzil dump`;
//! - `layout` (feature `openzfs-layout`): compile-time pins of every size,
//!   offset and constant to bindgen's view of OpenZFS's own headers.
//!
//! Nothing here allocates or panics on input; callers supply every buffer.
//!
//! # Writing and reading a slim block
//! ```
//! use rzil::format::*;
//!
//! // The chain's verifier: random GUID halves, objset id, block seq.
//! let verifier = ZioCksum::verifier(0x1234, 0x5678, 42, 1);
//! let next = Blkptr::log_block(0, 8192, 4096, verifier.next_in_chain(), 7);
//! let mut block = [0u8; 4096];
//! let record = LrCommon { txtype: TX_CREATE, reclen: 64, txg: 7, seq: 1 };
//! record.encode(&mut block[ZIL_CHAIN_BYTES..]).unwrap();
//! let nused = ZIL_CHAIN_BYTES + 64;
//! let write_bytes = seal_slim_block(&mut block, nused, &next, &verifier).unwrap();
//! assert_eq!(write_bytes, ZIL_MIN_BLKSZ);
//!
//! let vb = verify_block(&block, &verifier, BlockFormat::Slim).unwrap();
//! assert_eq!(vb.next(), next);
//! let seqs: Vec<u64> = vb.records().map(|r| r.unwrap().info.common.seq).collect();
//! assert_eq!(seqs, [1]);
//! // Read as another seq (a stale block), it is rejected by name.
//! assert!(matches!(
//!     verify_block(&block, &verifier.with_seq(2), BlockFormat::Slim),
//!     Err(BlockError::ChecksumMismatch { .. })
//! ));
//! ```

pub mod block;
pub mod chain;
pub mod consts;
pub mod dump;
pub mod endian;
pub mod fletcher;
#[cfg(feature = "openzfs-layout")]
mod layout;
pub mod record;
pub mod replay;
pub mod types;

pub use block::{
    seal_slim_block, seal_slim_block_in, seal_slim_block_with, verify_block, BlockError,
    BlockFormat, FormatError, VerifiedBlock,
};
pub use chain::{
    walk_chain, BlockInfo, BlockSource, ChainEnd, ChainVisitor, PointerError, WalkLimits,
    WalkSummary, CHAIN_BLOCKS_MAX,
};
pub use consts::*;
pub use dump::{dump_block, dump_chain, infer_block, DumpSink};
pub use endian::ByteOrder;
pub use fletcher::{
    fletcher_2, fletcher_2_byteswap, fletcher_2_native, fletcher_4, fletcher_4_byteswap,
    fletcher_4_extend_zeros, fletcher_4_lanes, fletcher_4_native, fletcher_4_serial,
    FLETCHER_4_LANES_MAX,
};
pub use record::{Record, RecordError, RecordInfo, RecordIter, WriteInfo, WriteKind};
pub use replay::{replay_log, ReplayFailure, ReplaySummary, Replayer};
pub use types::{
    Blkptr, BlkptrError, Dva, LrCommon, LrWrite, ZilChain, ZilHeader, ZioCksum, ZioEck,
};
