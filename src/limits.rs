//! Every bound the core enforces, each with its unit in its name.
//!
//! TigerBeetle's rule applies: nothing in the core grows without a named
//! limit, and reaching a limit is a defined outcome ([`crate::Error`]), never
//! a panic.

/// Most lwbs on the log's list at once (`zl_lwb_list`), in every state from
/// NEW to FLUSH_DONE. Reaching it is back-pressure: commits wait for
/// `checkpoint` to release FLUSH_DONE lwbs.
pub const LWB_INFLIGHT_MAX: usize = 64;

/// Highest `Config::first_lr_seq` a log starts from. Record seqs count up
/// by one per record and must never wrap: a wrapped seq falls at or below
/// the checkpoint seq and replay would skip it as already applied. 2^62
/// leaves 2^62 records of room (centuries at any commit rate); a start
/// above it can only come from a corrupt or crafted superblock or log.
pub const FIRST_LR_SEQ_MAX: u64 = 1 << 62;

/// Smallest log block (`ZIL_MIN_BLKSZ`).
pub const LWB_BLOCK_SIZE_MIN_BYTES: u32 = 4096;

/// Largest log block (`zil_maxblocksize`, `SPA_OLD_MAXBLOCKSIZE`).
pub const LWB_BLOCK_SIZE_MAX_BYTES: u32 = 128 * 1024;

/// Smallest log region a platform may give a log: the open tail's block
/// plus the largest successor plus one block in flight, so closing the tail
/// can always succeed once checkpoints have freed what is FLUSH_DONE. A
/// smaller region can leave a commit waiting for space forever.
pub const LOG_SPACE_MIN_BYTES: u64 = 3 * LWB_BLOCK_SIZE_MAX_BYTES as u64;

/// Allocation granularity of log blocks: block sizes are multiples of this.
pub const LWB_BLOCK_ALIGN_BYTES: u32 = 4096;

/// Size of the slim-block chain header (`zil_chain_t`) at the front of each block.
pub const ZIL_CHAIN_BYTES: u32 = 184;

/// Size of a record header (`lr_t`).
pub const LR_HEADER_BYTES: u32 = 32;

/// Size of a TX_WRITE record header (`lr_write_t`).
pub const LR_WRITE_HEADER_BYTES: u32 = 192;

/// Largest record body an itx carries inline (record header included):
/// `zil_maxcopied` (7680) plus an `lr_write_t`, rounded up to 8 KiB.
pub const ITX_RECORD_BYTES_MAX: usize = 8192;

/// Largest data length of a WR_COPIED write (`zil_maxcopied`).
pub const WR_COPIED_DATA_BYTES_MAX: u32 = 7680;

/// Largest data length of one TX_WRITE itx (WR_NEED_COPY or WR_INDIRECT);
/// WR_NEED_COPY data larger than a block is split across blocks.
pub const WRITE_DATA_BYTES_MAX: u32 = 16 * 1024 * 1024;

/// Most itxs (records) in one lwb. A block that reaches it is closed as if
/// full, which bounds the per-lwb record list to a fixed array.
pub const LWB_ITXS_MAX: usize = 128;

/// Most itxs queued on the commit list (assigned but not yet placed in an
/// lwb), and the largest [`crate::Config::commit_list_itxs_max`]. Reaching
/// it is back-pressure: `assign` fails with [`crate::Error::Backpressure`]
/// until a commit drains the list.
pub const COMMIT_LIST_ITXS_MAX: usize = 256;

/// Fewest itxs a platform's itx pool ([`crate::Platform::alloc_itx`]) may
/// hold, if it can run out at all, with the default
/// [`crate::Config::commit_list_itxs_max`]: more than the commit list can
/// queue (in general, `commit_list_itxs_max + 1`). A WR_NEED_COPY record
/// split across blocks needs one more itx for its remainder; when the pool
/// is empty the core closes the open tail so that its fill frees the itxs
/// placed in it, and otherwise waits for an itx to come back. With every
/// itx queued on the commit list none would.
pub const ITX_POOL_ITEMS_MIN: usize = COMMIT_LIST_ITXS_MAX + 1;

/// Most commit waiters alive at once (one per in-progress `commit`): room
/// for 128 concurrent committers.
pub const COMMIT_WAITERS_MAX: usize = 128;

/// Most vdevs an lwb can write to and therefore flush (a bitmask).
pub const VDEVS_MAX: u32 = 64;

/// Burst-size history kept for lwb size prediction (`ZIL_BURSTS`).
pub const ZIL_BURSTS: usize = 8;

/// Default commit timeout, as a percentage of the lwb latency moving
/// average (`zfs_commit_timeout_pct`, 2.2.4+/2.3 default).
pub const COMMIT_TIMEOUT_PCT_DEFAULT: u32 = 10;

/// Floor of the commit timeout, so a zero latency estimate still gives the
/// committer a well-defined deadline.
pub const COMMIT_TIMEOUT_NS_MIN: u64 = 1_000;

/// Ceiling of the commit timeout: no committer waits for company longer.
pub const COMMIT_TIMEOUT_NS_MAX: u64 = 100_000_000;

/// How long a committer whose records could not be placed (back-pressure)
/// waits before it tries again.
pub const COMMIT_RETRY_NS: u64 = 100_000;
