//! Compile-time proof that our on-disk types are OpenZFS's: with the
//! `openzfs-layout` feature, build.rs runs bindgen over OpenZFS 2.3.2's own
//! headers (`bindings/openzfs.h`) into `OUT_DIR/openzfs.rs`, and the
//! assertions below pin the size and every field offset of each of our types,
//! and every constant we mirror, to the generated ones. A mismatch fails the
//! build.

#[allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    missing_docs,
    missing_debug_implementations,
    clippy::all
)]
mod ozfs {
    include!(concat!(env!("OUT_DIR"), "/openzfs.rs"));
}

use super::consts as c;
use super::types::{Blkptr, Dva, LrCommon, LrWrite, ZilChain, ZilHeader, ZioCksum, ZioEck};
use core::mem::{offset_of, size_of};
use static_assertions::const_assert_eq;

/// Assert that `$ours.$f` sits where `$theirs.$g` does, for each pair.
macro_rules! pin_fields {
    ($ours:ty => $theirs:ty { $($f:ident => $g:ident),* $(,)? }) => {
        const_assert_eq!(size_of::<$ours>(), size_of::<$theirs>());
        $( const_assert_eq!(offset_of!($ours, $f), offset_of!($theirs, $g)); )*
    };
}

pin_fields!(ZioCksum => ozfs::zio_cksum_t { word => zc_word });
pin_fields!(Dva => ozfs::dva_t { word => dva_word });
pin_fields!(Blkptr => ozfs::blkptr_t {
    dva => blk_dva,
    prop => blk_prop,
    pad => blk_pad,
    // blk_birth_word[0] is the physical birth, [1] the logical birth.
    phys_birth => blk_birth_word,
    fill => blk_fill,
    cksum => blk_cksum,
});
const_assert_eq!(
    offset_of!(Blkptr, birth),
    offset_of!(ozfs::blkptr_t, blk_birth_word) + 8
);
const_assert_eq!(size_of::<Blkptr>(), 1 << ozfs::SPA_BLKPTRSHIFT);
pin_fields!(ZioEck => ozfs::zio_eck_t { magic => zec_magic, cksum => zec_cksum });
pin_fields!(ZilChain => ozfs::zil_chain_t {
    pad => zc_pad,
    next_blk => zc_next_blk,
    nused => zc_nused,
    eck => zc_eck,
});
const_assert_eq!(size_of::<ZilChain>(), c::ZIL_CHAIN_BYTES);
pin_fields!(LrCommon => ozfs::lr_t {
    txtype => lrc_txtype,
    reclen => lrc_reclen,
    txg => lrc_txg,
    seq => lrc_seq,
});
pin_fields!(LrWrite => ozfs::lr_write_t {
    common => lr_common,
    foid => lr_foid,
    offset => lr_offset,
    length => lr_length,
    blkoff => lr_blkoff,
    blkptr => lr_blkptr,
});
// Inline data starts right after the header.
const_assert_eq!(offset_of!(ozfs::lr_write_t, lr_data), LrWrite::SIZE_BYTES);
pin_fields!(ZilHeader => ozfs::zil_header_t {
    claim_txg => zh_claim_txg,
    replay_seq => zh_replay_seq,
    log => zh_log,
    claim_blk_seq => zh_claim_blk_seq,
    flags => zh_flags,
    claim_lr_seq => zh_claim_lr_seq,
    pad => zh_pad,
});

// Our SIZE_BYTES constants agree with the C sizes.
const_assert_eq!(ZioCksum::SIZE_BYTES, size_of::<ozfs::zio_cksum_t>());
const_assert_eq!(Blkptr::SIZE_BYTES, size_of::<ozfs::blkptr_t>());
const_assert_eq!(ZilChain::SIZE_BYTES, size_of::<ozfs::zil_chain_t>());
const_assert_eq!(LrCommon::SIZE_BYTES, size_of::<ozfs::lr_t>());
const_assert_eq!(LrWrite::SIZE_BYTES, size_of::<ozfs::lr_write_t>());
const_assert_eq!(ZilHeader::SIZE_BYTES, size_of::<ozfs::zil_header_t>());

// Constants, under OpenZFS's names.
const_assert_eq!(c::ZEC_MAGIC, ozfs::ZEC_MAGIC);
const_assert_eq!(c::ZIL_MIN_BLKSZ, ozfs::ZIL_MIN_BLKSZ as usize);
const_assert_eq!(c::ZIL_ZC_GUID_0, ozfs::ZIL_ZC_GUID_0 as usize);
const_assert_eq!(c::ZIL_ZC_GUID_1, ozfs::ZIL_ZC_GUID_1 as usize);
const_assert_eq!(c::ZIL_ZC_OBJSET, ozfs::ZIL_ZC_OBJSET as usize);
const_assert_eq!(c::ZIL_ZC_SEQ, ozfs::ZIL_ZC_SEQ as usize);
const_assert_eq!(c::ZIL_REPLAY_NEEDED, ozfs::ZIL_REPLAY_NEEDED as u64);
const_assert_eq!(
    c::ZIL_CLAIM_LR_SEQ_VALID,
    ozfs::ZIL_CLAIM_LR_SEQ_VALID as u64
);
const_assert_eq!(c::SPA_MINBLOCKSHIFT, ozfs::SPA_MINBLOCKSHIFT);
const_assert_eq!(c::SPA_MAXBLOCKSIZE, ozfs::SPA_MAXBLOCKSIZE as u64);
const_assert_eq!(
    c::ZIO_CHECKSUM_ZILOG,
    ozfs::zio_checksum::ZIO_CHECKSUM_ZILOG as u64
);
const_assert_eq!(
    c::ZIO_CHECKSUM_ZILOG2,
    ozfs::zio_checksum::ZIO_CHECKSUM_ZILOG2 as u64
);
const_assert_eq!(
    c::ZIO_COMPRESS_OFF,
    ozfs::zio_compress::ZIO_COMPRESS_OFF as u64
);
const_assert_eq!(
    c::DMU_OT_INTENT_LOG,
    ozfs::dmu_object_type::DMU_OT_INTENT_LOG as u64
);
const_assert_eq!(c::TX_COMMIT, ozfs::TX_COMMIT as u64);
const_assert_eq!(c::TX_CREATE, ozfs::TX_CREATE as u64);
const_assert_eq!(c::TX_MKDIR, ozfs::TX_MKDIR as u64);
const_assert_eq!(c::TX_MKXATTR, ozfs::TX_MKXATTR as u64);
const_assert_eq!(c::TX_SYMLINK, ozfs::TX_SYMLINK as u64);
const_assert_eq!(c::TX_REMOVE, ozfs::TX_REMOVE as u64);
const_assert_eq!(c::TX_RMDIR, ozfs::TX_RMDIR as u64);
const_assert_eq!(c::TX_LINK, ozfs::TX_LINK as u64);
const_assert_eq!(c::TX_RENAME, ozfs::TX_RENAME as u64);
const_assert_eq!(c::TX_WRITE, ozfs::TX_WRITE as u64);
const_assert_eq!(c::TX_TRUNCATE, ozfs::TX_TRUNCATE as u64);
const_assert_eq!(c::TX_SETATTR, ozfs::TX_SETATTR as u64);
const_assert_eq!(c::TX_ACL_V0, ozfs::TX_ACL_V0 as u64);
const_assert_eq!(c::TX_ACL, ozfs::TX_ACL as u64);
const_assert_eq!(c::TX_CREATE_ACL, ozfs::TX_CREATE_ACL as u64);
const_assert_eq!(c::TX_CREATE_ATTR, ozfs::TX_CREATE_ATTR as u64);
const_assert_eq!(c::TX_CREATE_ACL_ATTR, ozfs::TX_CREATE_ACL_ATTR as u64);
const_assert_eq!(c::TX_MKDIR_ACL, ozfs::TX_MKDIR_ACL as u64);
const_assert_eq!(c::TX_MKDIR_ATTR, ozfs::TX_MKDIR_ATTR as u64);
const_assert_eq!(c::TX_MKDIR_ACL_ATTR, ozfs::TX_MKDIR_ACL_ATTR as u64);
const_assert_eq!(c::TX_WRITE2, ozfs::TX_WRITE2 as u64);
const_assert_eq!(c::TX_SETSAXATTR, ozfs::TX_SETSAXATTR as u64);
const_assert_eq!(c::TX_RENAME_EXCHANGE, ozfs::TX_RENAME_EXCHANGE as u64);
const_assert_eq!(c::TX_RENAME_WHITEOUT, ozfs::TX_RENAME_WHITEOUT as u64);
const_assert_eq!(c::TX_CLONE_RANGE, ozfs::TX_CLONE_RANGE as u64);
const_assert_eq!(c::TX_MAX_TYPE, ozfs::TX_MAX_TYPE as u64);
