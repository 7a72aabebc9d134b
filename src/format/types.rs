//! The on-disk structures: `zio_cksum_t`, `dva_t`, `blkptr_t`, `zil_chain_t`,
//! `lr_t`, `lr_write_t` and `zil_header_t`, with OpenZFS's sizes and field
//! offsets (pinned against bindgen's view of OpenZFS's headers by the
//! `openzfs-layout` feature, see `layout.rs`).
//!
//! Every type is `#[repr(C)]` and made only of `u64` words, so its in-memory
//! layout equals the on-disk one; we still never reinterpret memory: `decode`
//! and `encode` move each word through a byte slice in an explicit order.
//! `decode`/`encode` use the host order (what OpenZFS writes); the `_in`
//! variants take the order detected from a block's magic.

use super::consts::*;
use super::endian::{ByteOrder, WordReader};

/// Decode a run of u64 words into `out`, or `None` if `bytes` is short.
fn words_in<const N: usize>(r: &WordReader<'_>, offset_bytes: usize) -> Option<[u64; N]> {
    let mut out = [0u64; N];
    for (i, w) in out.iter_mut().enumerate() {
        *w = r.u64_at(offset_bytes + i * 8)?;
    }
    Some(out)
}

/// Encode `words` at `offset_bytes`, or `None` if `out` is short.
fn put_words(out: &mut [u8], offset_bytes: usize, words: &[u64], order: ByteOrder) -> Option<()> {
    for (i, w) in words.iter().enumerate() {
        order.put_u64(out, offset_bytes + i * 8, *w)?;
    }
    Some(())
}

/// `zio_cksum_t`: four words. For a log block's blkptr it is not a checksum
/// but the *verifier* `[guid0, guid1, objset id, block seq]` (indices
/// `ZIL_ZC_*`); inside the block, `zec_cksum` holds the real fletcher sum.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ZioCksum {
    /// The four words.
    pub word: [u64; 4],
}

impl ZioCksum {
    /// On-disk size.
    pub const SIZE_BYTES: usize = 32;
    /// All words zero (the checksum of a hole).
    pub const ZERO: ZioCksum = ZioCksum { word: [0; 4] };

    /// A ZIL verifier from its parts.
    pub const fn verifier(guid0: u64, guid1: u64, objset: u64, seq: u64) -> ZioCksum {
        let mut word = [0u64; 4];
        word[ZIL_ZC_GUID_0] = guid0;
        word[ZIL_ZC_GUID_1] = guid1;
        word[ZIL_ZC_OBJSET] = objset;
        word[ZIL_ZC_SEQ] = seq;
        ZioCksum { word }
    }

    /// The block sequence number of a ZIL verifier.
    pub const fn seq(&self) -> u64 {
        self.word[ZIL_ZC_SEQ]
    }

    /// The same verifier with another block sequence number.
    pub const fn with_seq(mut self, seq: u64) -> ZioCksum {
        self.word[ZIL_ZC_SEQ] = seq;
        self
    }

    /// The verifier the next block of the chain carries: seq + 1 (wrapping, as
    /// OpenZFS's plain `++` does; a 2^64-block chain is not a concern).
    pub const fn next_in_chain(self) -> ZioCksum {
        self.with_seq(self.seq().wrapping_add(1))
    }

    /// Decode from host-order bytes.
    pub fn decode(bytes: &[u8]) -> Option<ZioCksum> {
        Self::decode_in(bytes, ByteOrder::NATIVE)
    }

    /// Decode from bytes in `order`.
    pub fn decode_in(bytes: &[u8], order: ByteOrder) -> Option<ZioCksum> {
        let r = WordReader { bytes, order };
        Some(ZioCksum {
            word: words_in::<4>(&r, 0)?,
        })
    }

    /// Encode in host order into the front of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Option<()> {
        self.encode_in(out, ByteOrder::NATIVE)
    }

    /// Encode in `order` into the front of `out`.
    pub fn encode_in(&self, out: &mut [u8], order: ByteOrder) -> Option<()> {
        if out.len() < Self::SIZE_BYTES {
            return None;
        }
        put_words(out, 0, &self.word, order)
    }
}

/// `dva_t`: a data virtual address (vdev, offset, allocated size).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Dva {
    /// word 0: asize (512-byte units) in bits 0–23, GRID in 24–31, vdev in 32–63;
    /// word 1: offset (512-byte units) in bits 0–62, gang in bit 63.
    pub word: [u64; 2],
}

const DVA_ASIZE_MASK: u64 = (1 << SPA_ASIZEBITS) - 1;
const DVA_OFFSET_MASK: u64 = (1 << 63) - 1;
const DVA_GANG_BIT: u64 = 1 << 63;

impl Dva {
    /// On-disk size.
    pub const SIZE_BYTES: usize = 16;

    /// A non-gang DVA. `offset_bytes` and `asize_bytes` are in bytes and must be
    /// multiples of 512; bits that do not fit the fields are dropped.
    pub const fn new(vdev: u32, offset_bytes: u64, asize_bytes: u64) -> Dva {
        Dva {
            word: [
                ((vdev as u64) << 32) | ((asize_bytes >> SPA_MINBLOCKSHIFT) & DVA_ASIZE_MASK),
                (offset_bytes >> SPA_MINBLOCKSHIFT) & DVA_OFFSET_MASK,
            ],
        }
    }
    /// Top-level vdev id.
    pub const fn vdev(&self) -> u32 {
        (self.word[0] >> 32) as u32
    }
    /// Byte offset within the vdev (after the labels/boot area).
    pub const fn offset_bytes(&self) -> u64 {
        (self.word[1] & DVA_OFFSET_MASK) << SPA_MINBLOCKSHIFT
    }
    /// Allocated size in bytes.
    pub const fn asize_bytes(&self) -> u64 {
        (self.word[0] & DVA_ASIZE_MASK) << SPA_MINBLOCKSHIFT
    }
    /// Gang-block bit.
    pub const fn is_gang(&self) -> bool {
        self.word[1] & DVA_GANG_BIT != 0
    }
    /// Both words zero (`DVA_IS_EMPTY`).
    pub const fn is_empty(&self) -> bool {
        self.word[0] == 0 && self.word[1] == 0
    }
}

/// `blkptr_t` (128 bytes). The fields a ZIL chain needs are decoded by the
/// accessors; the rest are carried as raw words.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Blkptr {
    /// Up to three copies' addresses; log blocks use `dva[0]` only.
    pub dva: [Dva; 3],
    /// lsize, psize, compression, embedded, checksum type, object type, level,
    /// byte order — see the `prop_*` accessors.
    pub prop: u64,
    /// Reserved words.
    pub pad: [u64; 2],
    /// Physical birth txg; 0 when equal to `birth` (OpenZFS's `BP_SET_BIRTH`).
    pub phys_birth: u64,
    /// Logical birth txg.
    pub birth: u64,
    /// Fill count (0 for log blocks).
    pub fill: u64,
    /// Checksum; for a log block, the chain verifier.
    pub cksum: ZioCksum,
}

/// Field positions in `blk_prop` (OpenZFS `BP_GET_*` / `BP_SET_*`).
mod prop {
    pub const LSIZE_SHIFT: u32 = 0;
    pub const PSIZE_SHIFT: u32 = 16;
    pub const SIZE_BITS: u32 = 16;
    pub const COMPRESS_SHIFT: u32 = 32;
    pub const COMPRESS_BITS: u32 = 7;
    pub const EMBEDDED_SHIFT: u32 = 39;
    pub const CHECKSUM_SHIFT: u32 = 40;
    pub const CHECKSUM_BITS: u32 = 8;
    pub const TYPE_SHIFT: u32 = 48;
    pub const TYPE_BITS: u32 = 8;
    pub const LEVEL_SHIFT: u32 = 56;
    pub const LEVEL_BITS: u32 = 5;
    pub const BYTEORDER_SHIFT: u32 = 63;

    pub const fn get(prop: u64, shift: u32, bits: u32) -> u64 {
        (prop >> shift) & ((1u64 << bits) - 1)
    }
}

/// Why a log-block pointer could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlkptrError {
    /// Size is 0, not a multiple of 512, or above `SPA_MAXBLOCKSIZE`.
    BadSize {
        /// The requested size.
        size_bytes: u32,
    },
    /// Offset is not a multiple of 512 or does not fit the DVA field.
    BadOffset {
        /// The requested offset.
        offset_bytes: u64,
    },
}

impl Blkptr {
    /// On-disk size (`1 << SPA_BLKPTRSHIFT`).
    pub const SIZE_BYTES: usize = 128;
    /// A hole: all zero.
    pub const HOLE: Blkptr = Blkptr {
        dva: [Dva { word: [0; 2] }; 3],
        prop: 0,
        pad: [0; 2],
        phys_birth: 0,
        birth: 0,
        fill: 0,
        cksum: ZioCksum::ZERO,
    };

    /// The pointer to a slim (ZILOG2) log block, as OpenZFS's `zio_alloc_zil`
    /// builds it: psize = lsize = asize = `size_bytes`, compression off,
    /// checksum ZILOG2, type DMU_OT_INTENT_LOG, level 0, byte order = host,
    /// birth = `birth_txg`, `cksum` = `verifier`.
    ///
    /// # Panics
    /// If `size_bytes` or `offset_bytes` is invalid (see [`Blkptr::try_log_block`]):
    /// the lwb layer picks them from named bounds, so that is a bug there.
    pub fn log_block(
        vdev: u32,
        offset_bytes: u64,
        size_bytes: u32,
        verifier: ZioCksum,
        birth_txg: u64,
    ) -> Blkptr {
        match Self::try_log_block(vdev, offset_bytes, size_bytes, verifier, birth_txg) {
            Ok(bp) => bp,
            Err(e) => panic!("Blkptr::log_block: {e:?}"),
        }
    }

    /// [`Blkptr::log_block`] for untrusted sizes and offsets.
    pub fn try_log_block(
        vdev: u32,
        offset_bytes: u64,
        size_bytes: u32,
        verifier: ZioCksum,
        birth_txg: u64,
    ) -> Result<Blkptr, BlkptrError> {
        let size = u64::from(size_bytes);
        if size == 0 || size % SPA_MINBLOCKSIZE != 0 || size > SPA_MAXBLOCKSIZE {
            return Err(BlkptrError::BadSize { size_bytes });
        }
        if offset_bytes % SPA_MINBLOCKSIZE != 0
            || (offset_bytes >> SPA_MINBLOCKSHIFT) > DVA_OFFSET_MASK
        {
            return Err(BlkptrError::BadOffset { offset_bytes });
        }
        let sectors_minus_1 = (size >> SPA_MINBLOCKSHIFT) - 1;
        let prop = (sectors_minus_1 << prop::LSIZE_SHIFT)
            | (sectors_minus_1 << prop::PSIZE_SHIFT)
            | (ZIO_COMPRESS_OFF << prop::COMPRESS_SHIFT)
            | (ZIO_CHECKSUM_ZILOG2 << prop::CHECKSUM_SHIFT)
            | (DMU_OT_INTENT_LOG << prop::TYPE_SHIFT)
            | (ByteOrder::NATIVE.blkptr_bit() << prop::BYTEORDER_SHIFT);
        let mut bp = Blkptr::HOLE;
        // Asize equals psize: a log block on a plain (non-raidz) vdev.
        bp.dva[0] = Dva::new(vdev, offset_bytes, size);
        bp.prop = prop;
        bp.birth = birth_txg;
        bp.cksum = verifier;
        Ok(bp)
    }

    /// `BP_IS_HOLE`: not embedded and `DVA[0]` empty.
    pub const fn is_hole(&self) -> bool {
        !self.is_embedded() && self.dva[0].is_empty()
    }
    /// `BP_IS_EMBEDDED`: the payload lives in the pointer itself.
    pub const fn is_embedded(&self) -> bool {
        prop::get(self.prop, prop::EMBEDDED_SHIFT, 1) != 0
    }
    /// vdev of `DVA[0]`.
    pub const fn vdev(&self) -> u32 {
        self.dva[0].vdev()
    }
    /// Byte offset of `DVA[0]`.
    pub const fn offset_bytes(&self) -> u64 {
        self.dva[0].offset_bytes()
    }
    /// Allocated size of `DVA[0]` in bytes.
    pub const fn asize_bytes(&self) -> u64 {
        self.dva[0].asize_bytes()
    }
    /// Logical size in bytes (meaningless for an embedded pointer).
    pub const fn lsize_bytes(&self) -> u64 {
        (prop::get(self.prop, prop::LSIZE_SHIFT, prop::SIZE_BITS) + 1) << SPA_MINBLOCKSHIFT
    }
    /// Physical (on-disk) size in bytes (meaningless for an embedded pointer).
    pub const fn psize_bytes(&self) -> u64 {
        (prop::get(self.prop, prop::PSIZE_SHIFT, prop::SIZE_BITS) + 1) << SPA_MINBLOCKSHIFT
    }
    /// Compression enum.
    pub const fn compression(&self) -> u64 {
        prop::get(self.prop, prop::COMPRESS_SHIFT, prop::COMPRESS_BITS)
    }
    /// Checksum enum (`ZIO_CHECKSUM_ZILOG2` = 9 for slim log blocks).
    pub const fn checksum_type(&self) -> u64 {
        prop::get(self.prop, prop::CHECKSUM_SHIFT, prop::CHECKSUM_BITS)
    }
    /// DMU object type (`DMU_OT_INTENT_LOG` = 9).
    pub const fn object_type(&self) -> u64 {
        prop::get(self.prop, prop::TYPE_SHIFT, prop::TYPE_BITS)
    }
    /// Indirection level.
    pub const fn level(&self) -> u64 {
        prop::get(self.prop, prop::LEVEL_SHIFT, prop::LEVEL_BITS)
    }
    /// Byte order of the block this pointer points to.
    pub const fn data_byte_order(&self) -> ByteOrder {
        if prop::get(self.prop, prop::BYTEORDER_SHIFT, 1) == 1 {
            ByteOrder::Little
        } else {
            ByteOrder::Big
        }
    }
    /// Logical birth txg.
    pub const fn birth_txg(&self) -> u64 {
        self.birth
    }
    /// The chain verifier (`blk_cksum`) of a log-block pointer.
    pub const fn verifier(&self) -> ZioCksum {
        self.cksum
    }
    /// The log-block format this pointer's checksum type selects, if any.
    pub const fn block_format(&self) -> Option<super::BlockFormat> {
        match self.checksum_type() {
            ZIO_CHECKSUM_ZILOG2 => Some(super::BlockFormat::Slim),
            ZIO_CHECKSUM_ZILOG => Some(super::BlockFormat::Old),
            _ => None,
        }
    }

    /// Decode from host-order bytes.
    pub fn decode(bytes: &[u8]) -> Option<Blkptr> {
        Self::decode_in(bytes, ByteOrder::NATIVE)
    }

    /// Decode from bytes in `order`.
    pub fn decode_in(bytes: &[u8], order: ByteOrder) -> Option<Blkptr> {
        if bytes.len() < Self::SIZE_BYTES {
            return None;
        }
        let r = WordReader { bytes, order };
        let w = words_in::<16>(&r, 0)?;
        Some(Blkptr {
            dva: [
                Dva { word: [w[0], w[1]] },
                Dva { word: [w[2], w[3]] },
                Dva { word: [w[4], w[5]] },
            ],
            prop: w[6],
            pad: [w[7], w[8]],
            phys_birth: w[9],
            birth: w[10],
            fill: w[11],
            cksum: ZioCksum {
                word: [w[12], w[13], w[14], w[15]],
            },
        })
    }

    fn to_words(self) -> [u64; 16] {
        let d = self.dva;
        let c = self.cksum.word;
        [
            d[0].word[0],
            d[0].word[1],
            d[1].word[0],
            d[1].word[1],
            d[2].word[0],
            d[2].word[1],
            self.prop,
            self.pad[0],
            self.pad[1],
            self.phys_birth,
            self.birth,
            self.fill,
            c[0],
            c[1],
            c[2],
            c[3],
        ]
    }

    /// Encode in host order into the front of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Option<()> {
        self.encode_in(out, ByteOrder::NATIVE)
    }

    /// Encode in `order` into the front of `out`.
    pub fn encode_in(&self, out: &mut [u8], order: ByteOrder) -> Option<()> {
        if out.len() < Self::SIZE_BYTES {
            return None;
        }
        put_words(out, 0, &self.to_words(), order)
    }
}

/// `zio_eck_t`: the embedded checksum trailer of a self-checksumming block.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ZioEck {
    /// `ZEC_MAGIC` in the writer's byte order.
    pub magic: u64,
    /// The embedded checksum.
    pub cksum: ZioCksum,
}

impl ZioEck {
    /// On-disk size.
    pub const SIZE_BYTES: usize = 40;
}

/// `zil_chain_t` (184 bytes): the chain header of a log block — at offset 0
/// of a slim block, in the last 184 bytes of an old-format block.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ZilChain {
    /// `zc_pad`, zero.
    pub pad: u64,
    /// `zc_next_blk`: the pointer to the next log block.
    pub next_blk: Blkptr,
    /// `zc_nused`: bytes used (slim: counted from the block start, header included).
    pub nused: u64,
    /// `zc_eck`: magic and embedded checksum.
    pub eck: ZioEck,
}

/// Byte offsets of `zil_chain_t` fields.
pub mod chain_offsets {
    /// `zc_pad`.
    pub const PAD: usize = 0;
    /// `zc_next_blk`.
    pub const NEXT_BLK: usize = 8;
    /// `zc_nused`.
    pub const NUSED: usize = 136;
    /// `zc_eck.zec_magic`.
    pub const MAGIC: usize = 144;
    /// `zc_eck.zec_cksum`.
    pub const CKSUM: usize = 152;
}

impl ZilChain {
    /// On-disk size (`ZIL_CHAIN_BYTES`).
    pub const SIZE_BYTES: usize = ZIL_CHAIN_BYTES;

    /// Decode from host-order bytes.
    pub fn decode(bytes: &[u8]) -> Option<ZilChain> {
        Self::decode_in(bytes, ByteOrder::NATIVE)
    }

    /// Decode from bytes in `order`.
    pub fn decode_in(bytes: &[u8], order: ByteOrder) -> Option<ZilChain> {
        let bytes = bytes.get(..Self::SIZE_BYTES)?;
        let r = WordReader { bytes, order };
        Some(ZilChain {
            pad: r.u64_at(chain_offsets::PAD)?,
            next_blk: Blkptr::decode_in(bytes.get(chain_offsets::NEXT_BLK..)?, order)?,
            nused: r.u64_at(chain_offsets::NUSED)?,
            eck: ZioEck {
                magic: r.u64_at(chain_offsets::MAGIC)?,
                cksum: ZioCksum::decode_in(bytes.get(chain_offsets::CKSUM..)?, order)?,
            },
        })
    }

    /// Encode in host order into the front of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Option<()> {
        self.encode_in(out, ByteOrder::NATIVE)
    }

    /// Encode in `order` into the front of `out`.
    pub fn encode_in(&self, out: &mut [u8], order: ByteOrder) -> Option<()> {
        let out = out.get_mut(..Self::SIZE_BYTES)?;
        order.put_u64(out, chain_offsets::PAD, self.pad)?;
        self.next_blk
            .encode_in(out.get_mut(chain_offsets::NEXT_BLK..)?, order)?;
        order.put_u64(out, chain_offsets::NUSED, self.nused)?;
        order.put_u64(out, chain_offsets::MAGIC, self.eck.magic)?;
        self.eck
            .cksum
            .encode_in(out.get_mut(chain_offsets::CKSUM..)?, order)
    }
}

/// `lr_t` (32 bytes): the common header of every log record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LrCommon {
    /// `lrc_txtype`: record type, with `TX_CI` in bit 63.
    pub txtype: u64,
    /// `lrc_reclen`: record length in bytes, header and inline data included.
    pub reclen: u64,
    /// `lrc_txg`: the txg the change belongs to.
    pub txg: u64,
    /// `lrc_seq`: the record sequence number (strictly increasing in a chain).
    pub seq: u64,
}

impl LrCommon {
    /// On-disk size.
    pub const SIZE_BYTES: usize = 32;

    /// The record type without the `TX_CI` flag.
    pub const fn record_type(&self) -> u64 {
        self.txtype & !TX_CI
    }
    /// Whether `TX_CI` (case-insensitive name) is set.
    pub const fn is_ci(&self) -> bool {
        self.txtype & TX_CI != 0
    }

    /// Decode from host-order bytes.
    pub fn decode(bytes: &[u8]) -> Option<LrCommon> {
        Self::decode_in(bytes, ByteOrder::NATIVE)
    }

    /// Decode from bytes in `order`.
    pub fn decode_in(bytes: &[u8], order: ByteOrder) -> Option<LrCommon> {
        let [txtype, reclen, txg, seq] = words_in::<4>(&WordReader { bytes, order }, 0)?;
        Some(LrCommon {
            txtype,
            reclen,
            txg,
            seq,
        })
    }

    /// Encode in host order into the front of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Option<()> {
        self.encode_in(out, ByteOrder::NATIVE)
    }

    /// Encode in `order` into the front of `out`.
    pub fn encode_in(&self, out: &mut [u8], order: ByteOrder) -> Option<()> {
        if out.len() < Self::SIZE_BYTES {
            return None;
        }
        put_words(
            out,
            0,
            &[self.txtype, self.reclen, self.txg, self.seq],
            order,
        )
    }
}

/// `lr_write_t` (192 bytes): the header of a `TX_WRITE` record. Inline
/// (WR_COPIED / WR_NEED_COPY) data follows it, padded to 8 bytes; for
/// WR_INDIRECT, `reclen == 192` and `blkptr` points at the data.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct LrWrite {
    /// `lr_common`.
    pub common: LrCommon,
    /// `lr_foid`: object id of the file.
    pub foid: u64,
    /// `lr_offset`: byte offset in the file.
    pub offset: u64,
    /// `lr_length`: bytes written.
    pub length: u64,
    /// `lr_blkoff`: unused by current OpenZFS.
    pub blkoff: u64,
    /// `lr_blkptr`: the data block of an indirect write.
    pub blkptr: Blkptr,
}

impl LrWrite {
    /// On-disk size.
    pub const SIZE_BYTES: usize = 192;

    /// Decode from host-order bytes.
    pub fn decode(bytes: &[u8]) -> Option<LrWrite> {
        Self::decode_in(bytes, ByteOrder::NATIVE)
    }

    /// Decode from bytes in `order`.
    pub fn decode_in(bytes: &[u8], order: ByteOrder) -> Option<LrWrite> {
        let bytes = bytes.get(..Self::SIZE_BYTES)?;
        let [foid, offset, length, blkoff] = words_in::<4>(&WordReader { bytes, order }, 32)?;
        Some(LrWrite {
            common: LrCommon::decode_in(bytes, order)?,
            foid,
            offset,
            length,
            blkoff,
            blkptr: Blkptr::decode_in(bytes.get(64..)?, order)?,
        })
    }

    /// Encode in host order into the front of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Option<()> {
        self.encode_in(out, ByteOrder::NATIVE)
    }

    /// Encode in `order` into the front of `out`.
    pub fn encode_in(&self, out: &mut [u8], order: ByteOrder) -> Option<()> {
        let out = out.get_mut(..Self::SIZE_BYTES)?;
        self.common.encode_in(out, order)?;
        put_words(
            out,
            32,
            &[self.foid, self.offset, self.length, self.blkoff],
            order,
        )?;
        self.blkptr.encode_in(out.get_mut(64..)?, order)
    }
}

/// `zil_header_t` (192 bytes): the ZIL's anchor in the objset, updated only
/// in syncing context (in rzil: by the host's superblock writer).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ZilHeader {
    /// `zh_claim_txg`: txg in which the log blocks were claimed (0 = unclaimed).
    pub claim_txg: u64,
    /// `zh_replay_seq`: highest record seq already replayed.
    pub replay_seq: u64,
    /// `zh_log`: the first log block.
    pub log: Blkptr,
    /// `zh_claim_blk_seq`: highest claimed block seq.
    pub claim_blk_seq: u64,
    /// `zh_flags`: `ZIL_REPLAY_NEEDED`, `ZIL_CLAIM_LR_SEQ_VALID`.
    pub flags: u64,
    /// `zh_claim_lr_seq`: highest claimed record seq.
    pub claim_lr_seq: u64,
    /// `zh_pad`.
    pub pad: [u64; 3],
}

impl ZilHeader {
    /// On-disk size.
    pub const SIZE_BYTES: usize = 192;

    /// Decode from host-order bytes.
    pub fn decode(bytes: &[u8]) -> Option<ZilHeader> {
        Self::decode_in(bytes, ByteOrder::NATIVE)
    }

    /// Decode from bytes in `order`.
    pub fn decode_in(bytes: &[u8], order: ByteOrder) -> Option<ZilHeader> {
        let bytes = bytes.get(..Self::SIZE_BYTES)?;
        let r = WordReader { bytes, order };
        let [claim_txg, replay_seq] = words_in::<2>(&r, 0)?;
        let [claim_blk_seq, flags, claim_lr_seq, p0, p1, p2] = words_in::<6>(&r, 144)?;
        Some(ZilHeader {
            claim_txg,
            replay_seq,
            log: Blkptr::decode_in(bytes.get(16..)?, order)?,
            claim_blk_seq,
            flags,
            claim_lr_seq,
            pad: [p0, p1, p2],
        })
    }

    /// Encode in host order into the front of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Option<()> {
        self.encode_in(out, ByteOrder::NATIVE)
    }

    /// Encode in `order` into the front of `out`.
    pub fn encode_in(&self, out: &mut [u8], order: ByteOrder) -> Option<()> {
        let out = out.get_mut(..Self::SIZE_BYTES)?;
        put_words(out, 0, &[self.claim_txg, self.replay_seq], order)?;
        self.log.encode_in(out.get_mut(16..)?, order)?;
        let p = self.pad;
        put_words(
            out,
            144,
            &[
                self.claim_blk_seq,
                self.flags,
                self.claim_lr_seq,
                p[0],
                p[1],
                p[2],
            ],
            order,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::size_of;

    #[test]
    fn sizes_match_openzfs() {
        assert_eq!(size_of::<ZioCksum>(), ZioCksum::SIZE_BYTES);
        assert_eq!(size_of::<Dva>(), Dva::SIZE_BYTES);
        assert_eq!(size_of::<Blkptr>(), Blkptr::SIZE_BYTES);
        assert_eq!(size_of::<ZioEck>(), ZioEck::SIZE_BYTES);
        assert_eq!(size_of::<ZilChain>(), ZilChain::SIZE_BYTES);
        assert_eq!(size_of::<LrCommon>(), LrCommon::SIZE_BYTES);
        assert_eq!(size_of::<LrWrite>(), LrWrite::SIZE_BYTES);
        assert_eq!(size_of::<ZilHeader>(), ZilHeader::SIZE_BYTES);
        assert_eq!(core::mem::offset_of!(ZilChain, nused), chain_offsets::NUSED);
        assert_eq!(core::mem::offset_of!(ZilChain, eck), chain_offsets::MAGIC);
        assert_eq!(core::mem::offset_of!(Blkptr, cksum), 96);
        assert_eq!(core::mem::offset_of!(ZilHeader, claim_blk_seq), 144);
        assert_eq!(core::mem::offset_of!(LrWrite, blkptr), 64);
    }

    #[test]
    fn log_block_matches_openzfs_prop_word() {
        // A real 2.3.2 next pointer (mf-ds4 seq 3 -> 4): 64 KiB, prop 0x80090902007f007f.
        let v = ZioCksum::verifier(0x9077_cfb8_0293_be88, 0xedf2_c419_5bd9_ae51, 95, 4);
        let bp = Blkptr::log_block(0, 0x0e05_0000, 65536, v, 0x298);
        if ByteOrder::NATIVE == ByteOrder::Little {
            assert_eq!(bp.prop, 0x8009_0902_007f_007f);
        }
        assert_eq!(bp.dva[0].word, [0x80, 0x70280]);
        assert_eq!(bp.psize_bytes(), 65536);
        assert_eq!(bp.lsize_bytes(), 65536);
        assert_eq!(bp.asize_bytes(), 65536);
        assert_eq!(bp.offset_bytes(), 0x0e05_0000);
        assert_eq!(bp.vdev(), 0);
        assert_eq!(bp.checksum_type(), ZIO_CHECKSUM_ZILOG2);
        assert_eq!(bp.object_type(), DMU_OT_INTENT_LOG);
        assert_eq!(bp.level(), 0);
        assert_eq!(bp.verifier(), v);
        assert_eq!(bp.birth_txg(), 0x298);
        assert_eq!(bp.phys_birth, 0);
        assert!(!bp.is_hole());
        assert!(Blkptr::HOLE.is_hole());
    }

    #[test]
    fn try_log_block_rejects_bad_geometry() {
        let v = ZioCksum::ZERO;
        assert_eq!(
            Blkptr::try_log_block(0, 0, 0, v, 1),
            Err(BlkptrError::BadSize { size_bytes: 0 })
        );
        assert_eq!(
            Blkptr::try_log_block(0, 0, 4097, v, 1),
            Err(BlkptrError::BadSize { size_bytes: 4097 })
        );
        assert_eq!(
            Blkptr::try_log_block(0, 0, (SPA_MAXBLOCKSIZE + 512) as u32, v, 1),
            Err(BlkptrError::BadSize {
                size_bytes: (SPA_MAXBLOCKSIZE + 512) as u32
            })
        );
        assert_eq!(
            Blkptr::try_log_block(0, 100, 4096, v, 1),
            Err(BlkptrError::BadOffset { offset_bytes: 100 })
        );
    }

    #[test]
    fn encode_decode_roundtrip_both_orders() {
        let v = ZioCksum::verifier(1, 2, 3, 4);
        let hdr = ZilHeader {
            claim_txg: 7,
            replay_seq: 8,
            log: Blkptr::log_block(3, 1 << 20, 8192, v, 9),
            claim_blk_seq: 10,
            flags: ZIL_CLAIM_LR_SEQ_VALID,
            claim_lr_seq: 11,
            pad: [12, 13, 14],
        };
        for order in [ByteOrder::Little, ByteOrder::Big] {
            let mut buf = [0u8; ZilHeader::SIZE_BYTES];
            hdr.encode_in(&mut buf, order).unwrap();
            assert_eq!(ZilHeader::decode_in(&buf, order), Some(hdr));
            assert_ne!(ZilHeader::decode_in(&buf, order.swapped()), Some(hdr));
            assert_eq!(ByteOrder::get_u64(order, &buf, 144), Some(10));
            assert_eq!(ZilHeader::decode_in(&buf[..191], order), None);
            assert_eq!(hdr.encode_in(&mut [0u8; 191], order), None);

            let w = LrWrite {
                common: LrCommon {
                    txtype: TX_WRITE | TX_CI,
                    reclen: 256,
                    txg: 5,
                    seq: 6,
                },
                foid: 7,
                offset: 8,
                length: 64,
                blkoff: 0,
                blkptr: hdr.log,
            };
            let mut buf = [0u8; LrWrite::SIZE_BYTES];
            w.encode_in(&mut buf, order).unwrap();
            assert_eq!(LrWrite::decode_in(&buf, order), Some(w));
            assert_eq!(w.common.record_type(), TX_WRITE);
            assert!(w.common.is_ci());
            assert_eq!(ByteOrder::get_u64(order, &buf, 48), Some(64));

            let c = ZilChain {
                pad: 0,
                next_blk: hdr.log,
                nused: 1000,
                eck: ZioEck {
                    magic: ZEC_MAGIC,
                    cksum: v,
                },
            };
            let mut buf = [0u8; ZilChain::SIZE_BYTES];
            c.encode_in(&mut buf, order).unwrap();
            assert_eq!(ZilChain::decode_in(&buf, order), Some(c));
            assert_eq!(ZilChain::decode_in(&buf[..183], order), None);
        }
    }
}
