//! OpenZFS constants of the log format, with OpenZFS's names (one name per
//! idea, reference §3). Values were read off the 2.3.2 headers and are pinned
//! by the `openzfs-layout` feature.

/// `zec_magic` of every self-checksumming block ("zio data bloc tail").
pub const ZEC_MAGIC: u64 = 0x0210_da7a_b10c_7a11;

/// Size of `zil_chain_t`, the log-block header/trailer.
pub const ZIL_CHAIN_BYTES: usize = 184;
/// Slim blocks are written and checksummed in multiples of this
/// (`ZIL_MIN_BLKSZ`); it is also the smallest log block.
pub const ZIL_MIN_BLKSZ: usize = 4096;
/// `zil_maxblocksize` default (`SPA_OLD_MAXBLOCKSIZE`), the largest log block
/// OpenZFS writes by default.
pub const ZIL_MAX_BLKSZ: usize = 131_072;

/// `SPA_MINBLOCKSHIFT`: DVA offsets and sizes are in 512-byte units.
pub const SPA_MINBLOCKSHIFT: u32 = 9;
/// `SPA_MINBLOCKSIZE` in bytes.
pub const SPA_MINBLOCKSIZE: u64 = 1 << SPA_MINBLOCKSHIFT;
/// `SPA_MAXBLOCKSIZE` in bytes (16 MiB).
pub const SPA_MAXBLOCKSIZE: u64 = 1 << 24;
/// Width of the DVA asize field.
pub const SPA_ASIZEBITS: u32 = 24;

/// Verifier word: chain GUID, first half.
pub const ZIL_ZC_GUID_0: usize = 0;
/// Verifier word: chain GUID, second half.
pub const ZIL_ZC_GUID_1: usize = 1;
/// Verifier word: objset id.
pub const ZIL_ZC_OBJSET: usize = 2;
/// Verifier word: block sequence number.
pub const ZIL_ZC_SEQ: usize = 3;

/// `ZIO_CHECKSUM_ZILOG`: old-format blocks, fletcher-2, trailer at the end.
pub const ZIO_CHECKSUM_ZILOG: u64 = 5;
/// `ZIO_CHECKSUM_ZILOG2`: slim blocks, fletcher-4, header in front.
pub const ZIO_CHECKSUM_ZILOG2: u64 = 9;
/// `ZIO_COMPRESS_OFF`.
pub const ZIO_COMPRESS_OFF: u64 = 2;
/// `DMU_OT_INTENT_LOG`.
pub const DMU_OT_INTENT_LOG: u64 = 9;

/// `zh_flags`: the log must be replayed.
pub const ZIL_REPLAY_NEEDED: u64 = 0x1;
/// `zh_flags`: `zh_claim_lr_seq` is valid.
pub const ZIL_CLAIM_LR_SEQ_VALID: u64 = 0x2;

/// Case-insensitive flag in bit 63 of `lrc_txtype`.
pub const TX_CI: u64 = 1 << 63;

/// Commit marker, never written.
pub const TX_COMMIT: u64 = 0;
/// Create a file.
pub const TX_CREATE: u64 = 1;
/// Make a directory.
pub const TX_MKDIR: u64 = 2;
/// Make an extended-attribute directory.
pub const TX_MKXATTR: u64 = 3;
/// Make a symlink.
pub const TX_SYMLINK: u64 = 4;
/// Remove a file.
pub const TX_REMOVE: u64 = 5;
/// Remove a directory.
pub const TX_RMDIR: u64 = 6;
/// Hard link.
pub const TX_LINK: u64 = 7;
/// Rename.
pub const TX_RENAME: u64 = 8;
/// File write (`lr_write_t`).
pub const TX_WRITE: u64 = 9;
/// Truncate.
pub const TX_TRUNCATE: u64 = 10;
/// Set attributes.
pub const TX_SETATTR: u64 = 11;
/// Set ACL (old format).
pub const TX_ACL_V0: u64 = 12;
/// Set ACL.
pub const TX_ACL: u64 = 13;
/// Create with ACL.
pub const TX_CREATE_ACL: u64 = 14;
/// Create with attributes.
pub const TX_CREATE_ATTR: u64 = 15;
/// Create with ACL and attributes.
pub const TX_CREATE_ACL_ATTR: u64 = 16;
/// Mkdir with ACL.
pub const TX_MKDIR_ACL: u64 = 17;
/// Mkdir with attributes.
pub const TX_MKDIR_ATTR: u64 = 18;
/// Mkdir with ACL and attributes.
pub const TX_MKDIR_ACL_ATTR: u64 = 19;
/// Block-pointer write (`lr_write_t` replayed by block pointer).
pub const TX_WRITE2: u64 = 20;
/// Set a system-attribute xattr.
pub const TX_SETSAXATTR: u64 = 21;
/// Rename exchange.
pub const TX_RENAME_EXCHANGE: u64 = 22;
/// Rename whiteout.
pub const TX_RENAME_WHITEOUT: u64 = 23;
/// Block clone.
pub const TX_CLONE_RANGE: u64 = 24;
/// One past the largest record type.
pub const TX_MAX_TYPE: u64 = 25;

/// The name `zdb` prints for a record type (`TX_CI` masked off), or
/// `"TX_UNKNOWN"` for a value outside `1..TX_MAX_TYPE`.
pub const fn txtype_name(txtype: u64) -> &'static str {
    match txtype & !TX_CI {
        TX_COMMIT => "TX_COMMIT",
        TX_CREATE => "TX_CREATE",
        TX_MKDIR => "TX_MKDIR",
        TX_MKXATTR => "TX_MKXATTR",
        TX_SYMLINK => "TX_SYMLINK",
        TX_REMOVE => "TX_REMOVE",
        TX_RMDIR => "TX_RMDIR",
        TX_LINK => "TX_LINK",
        TX_RENAME => "TX_RENAME",
        TX_WRITE => "TX_WRITE",
        TX_TRUNCATE => "TX_TRUNCATE",
        TX_SETATTR => "TX_SETATTR",
        TX_ACL_V0 => "TX_ACL_V0",
        TX_ACL => "TX_ACL",
        TX_CREATE_ACL => "TX_CREATE_ACL",
        TX_CREATE_ATTR => "TX_CREATE_ATTR",
        TX_CREATE_ACL_ATTR => "TX_CREATE_ACL_ATTR",
        TX_MKDIR_ACL => "TX_MKDIR_ACL",
        TX_MKDIR_ATTR => "TX_MKDIR_ATTR",
        TX_MKDIR_ACL_ATTR => "TX_MKDIR_ACL_ATTR",
        TX_WRITE2 => "TX_WRITE2",
        TX_SETSAXATTR => "TX_SETSAXATTR",
        TX_RENAME_EXCHANGE => "TX_RENAME_EXCHANGE",
        TX_RENAME_WHITEOUT => "TX_RENAME_WHITEOUT",
        TX_CLONE_RANGE => "TX_CLONE_RANGE",
        _ => "TX_UNKNOWN",
    }
}
