//! Log records inside a verified block: framing (every length checked before
//! it is used — the #16308 lesson) and the decoded view of each record.

use super::consts::*;
use super::endian::ByteOrder;
use super::types::{Blkptr, LrCommon, LrWrite};

/// Records are packed back to back at this alignment.
pub const RECORD_ALIGN_BYTES: u64 = 8;

/// Why a record could not be framed; the rest of the block is not trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordError {
    /// Fewer than 32 bytes (an `lr_t`) remain before `zc_nused`.
    TruncatedHeader {
        /// Offset of the record in the block.
        offset_in_block: usize,
        /// Bytes left in the record area.
        remaining_bytes: usize,
    },
    /// `lrc_reclen` is below `sizeof (lr_t)`.
    ReclenBelowHeader {
        /// Offset of the record in the block.
        offset_in_block: usize,
        /// `lrc_reclen`.
        reclen: u64,
    },
    /// `lrc_reclen` is not a multiple of 8.
    ReclenMisaligned {
        /// Offset of the record in the block.
        offset_in_block: usize,
        /// `lrc_reclen`.
        reclen: u64,
    },
    /// `lrc_reclen` runs past `zc_nused`.
    ReclenExceedsBlock {
        /// Offset of the record in the block.
        offset_in_block: usize,
        /// `lrc_reclen`.
        reclen: u64,
        /// Bytes left in the record area.
        remaining_bytes: usize,
    },
    /// A write record shorter than `lr_write_t`.
    WriteRecordTooShort {
        /// Offset of the record in the block.
        offset_in_block: usize,
        /// `lrc_reclen`.
        reclen: u64,
    },
    /// An inline write whose `lr_length` exceeds the data bytes in the record.
    WriteLengthExceedsRecord {
        /// Offset of the record in the block.
        offset_in_block: usize,
        /// `lr_length`.
        length: u64,
        /// `reclen - 192`.
        data_bytes: u64,
    },
}

/// How a `TX_WRITE` carries its data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    /// WR_COPIED / WR_NEED_COPY (indistinguishable on disk): data follows the header.
    Inline {
        /// Bytes after the 192-byte header (`lr_length` rounded up to 8).
        data_bytes: u64,
    },
    /// WR_INDIRECT: `reclen == 192`; `lr_blkptr` points at the data (it may be
    /// a normal, embedded or hole pointer).
    Indirect,
}

impl WriteKind {
    /// Short name for dumps.
    pub const fn name(self) -> &'static str {
        match self {
            WriteKind::Inline { .. } => "inline",
            WriteKind::Indirect => "indirect",
        }
    }
}

/// The decoded `lr_write_t` fields of a write record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteInfo {
    /// `lr_foid`.
    pub foid: u64,
    /// `lr_offset`.
    pub offset: u64,
    /// `lr_length`.
    pub length: u64,
    /// Inline or indirect.
    pub kind: WriteKind,
    /// `lr_blkptr` (meaningful for indirect writes).
    pub blkptr: Blkptr,
}

/// The plain, copyable view of one record (what `rzil dump` prints).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordInfo {
    /// Offset of the record from the start of its block.
    pub offset_in_block: usize,
    /// The common header.
    pub common: LrCommon,
    /// For `TX_WRITE`/`TX_WRITE2`: the write fields.
    pub write: Option<WriteInfo>,
}

impl RecordInfo {
    /// Record type without `TX_CI`.
    pub const fn record_type(&self) -> u64 {
        self.common.record_type()
    }
    /// The type's name as `zdb` prints it.
    pub const fn txtype_name(&self) -> &'static str {
        txtype_name(self.common.txtype)
    }
}

/// One framed record, borrowing its bytes from the block.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// The decoded view.
    pub info: RecordInfo,
    /// The whole record, `lr_t` header included (`reclen` bytes).
    pub bytes: &'a [u8],
    /// The writer's byte order, for decoding type-specific fields.
    pub byte_order: ByteOrder,
}

impl<'a> Record<'a> {
    /// Inline write data (`lr_length` bytes after the header), if this is an
    /// inline write.
    pub fn inline_data(&self) -> Option<&'a [u8]> {
        let w = self.info.write?;
        match w.kind {
            WriteKind::Inline { .. } => {
                let end = LrWrite::SIZE_BYTES.checked_add(usize::try_from(w.length).ok()?)?;
                self.bytes.get(LrWrite::SIZE_BYTES..end)
            }
            WriteKind::Indirect => None,
        }
    }
}

/// Iterator over the records of a record area; yields at most one error,
/// then ends.
#[derive(Clone, Debug)]
pub struct RecordIter<'a> {
    area: &'a [u8],
    order: ByteOrder,
    area_offset_in_block: usize,
    pos: usize,
    done: bool,
}

impl<'a> RecordIter<'a> {
    /// Records packed in `area`, which starts at `area_offset_in_block`.
    pub fn new(area: &'a [u8], order: ByteOrder, area_offset_in_block: usize) -> RecordIter<'a> {
        RecordIter {
            area,
            order,
            area_offset_in_block,
            pos: 0,
            done: false,
        }
    }

    /// Check the framing of every record without yielding any: a block is
    /// replayed whole or not at all.
    pub fn validate(&self) -> Result<usize, RecordError> {
        let mut count = 0;
        for r in self.clone() {
            r?;
            count += 1;
        }
        Ok(count)
    }

    fn frame(&self) -> Result<Record<'a>, RecordError> {
        let offset_in_block = self.area_offset_in_block + self.pos;
        let rest = self.area.get(self.pos..).unwrap_or(&[]);
        let common = match LrCommon::decode_in(rest, self.order) {
            Some(c) => c,
            None => {
                return Err(RecordError::TruncatedHeader {
                    offset_in_block,
                    remaining_bytes: rest.len(),
                })
            }
        };
        let reclen = common.reclen;
        if reclen < LrCommon::SIZE_BYTES as u64 {
            return Err(RecordError::ReclenBelowHeader {
                offset_in_block,
                reclen,
            });
        }
        if reclen % RECORD_ALIGN_BYTES != 0 {
            return Err(RecordError::ReclenMisaligned {
                offset_in_block,
                reclen,
            });
        }
        let bytes = match usize::try_from(reclen).ok().and_then(|n| rest.get(..n)) {
            Some(b) => b,
            None => {
                return Err(RecordError::ReclenExceedsBlock {
                    offset_in_block,
                    reclen,
                    remaining_bytes: rest.len(),
                })
            }
        };
        let rtype = common.record_type();
        let write = if rtype == TX_WRITE || rtype == TX_WRITE2 {
            let lw =
                LrWrite::decode_in(bytes, self.order).ok_or(RecordError::WriteRecordTooShort {
                    offset_in_block,
                    reclen,
                })?;
            let data_bytes = reclen - LrWrite::SIZE_BYTES as u64;
            let kind = if data_bytes == 0 {
                WriteKind::Indirect
            } else {
                if lw.length > data_bytes {
                    return Err(RecordError::WriteLengthExceedsRecord {
                        offset_in_block,
                        length: lw.length,
                        data_bytes,
                    });
                }
                WriteKind::Inline { data_bytes }
            };
            Some(WriteInfo {
                foid: lw.foid,
                offset: lw.offset,
                length: lw.length,
                kind,
                blkptr: lw.blkptr,
            })
        } else {
            None
        };
        Ok(Record {
            info: RecordInfo {
                offset_in_block,
                common,
                write,
            },
            bytes,
            byte_order: self.order,
        })
    }
}

impl<'a> Iterator for RecordIter<'a> {
    type Item = Result<Record<'a>, RecordError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done || self.pos >= self.area.len() {
            return None;
        }
        match self.frame() {
            Ok(r) => {
                self.pos += r.bytes.len();
                Some(Ok(r))
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put_lr(area: &mut [u8], at: usize, txtype: u64, reclen: u64, txg: u64, seq: u64) {
        LrCommon {
            txtype,
            reclen,
            txg,
            seq,
        }
        .encode(&mut area[at..])
        .unwrap();
    }

    #[test]
    fn frames_back_to_back_records() {
        let mut area = [0u8; 64 + 200];
        put_lr(&mut area, 0, TX_CREATE, 64, 5, 1);
        let w = LrWrite {
            common: LrCommon {
                txtype: TX_WRITE,
                reclen: 200,
                txg: 5,
                seq: 2,
            },
            foid: 3,
            offset: 4096,
            length: 5,
            blkoff: 0,
            blkptr: Blkptr::HOLE,
        };
        w.encode(&mut area[64..]).unwrap();
        area[64 + 192..64 + 197].copy_from_slice(b"hello");
        let recs: std::vec::Vec<_> = RecordIter::new(&area, ByteOrder::NATIVE, 184).collect();
        assert_eq!(recs.len(), 2);
        let r0 = recs[0].unwrap();
        assert_eq!(r0.info.offset_in_block, 184);
        assert_eq!(r0.info.txtype_name(), "TX_CREATE");
        let r1 = recs[1].unwrap();
        assert_eq!(r1.info.offset_in_block, 184 + 64);
        let wi = r1.info.write.unwrap();
        assert_eq!((wi.foid, wi.offset, wi.length), (3, 4096, 5));
        assert_eq!(wi.kind, WriteKind::Inline { data_bytes: 8 });
        assert_eq!(r1.inline_data(), Some(&b"hello"[..]));
    }

    #[test]
    fn bad_framing_is_named_and_ends_iteration() {
        let cases: [(u64, u64, RecordError); 4] = [
            (
                TX_CREATE,
                16,
                RecordError::ReclenBelowHeader {
                    offset_in_block: 0,
                    reclen: 16,
                },
            ),
            (
                TX_CREATE,
                36,
                RecordError::ReclenMisaligned {
                    offset_in_block: 0,
                    reclen: 36,
                },
            ),
            (
                TX_CREATE,
                u64::MAX - 7,
                RecordError::ReclenExceedsBlock {
                    offset_in_block: 0,
                    reclen: u64::MAX - 7,
                    remaining_bytes: 128,
                },
            ),
            (
                TX_WRITE,
                96,
                RecordError::WriteRecordTooShort {
                    offset_in_block: 0,
                    reclen: 96,
                },
            ),
        ];
        for (txtype, reclen, want) in cases {
            let mut area = [0u8; 128];
            put_lr(&mut area, 0, txtype, reclen, 1, 1);
            let mut it = RecordIter::new(&area, ByteOrder::NATIVE, 0);
            assert_eq!(it.next().map(|r| r.map(|r| r.info)), Some(Err(want)));
            assert!(it.next().is_none());
            assert_eq!(
                RecordIter::new(&area, ByteOrder::NATIVE, 0).validate(),
                Err(want)
            );
        }
        let area = [0u8; 24];
        let mut it = RecordIter::new(&area, ByteOrder::NATIVE, 8);
        assert_eq!(
            it.next().map(|r| r.map(|r| r.info)),
            Some(Err(RecordError::TruncatedHeader {
                offset_in_block: 8,
                remaining_bytes: 24
            }))
        );
    }

    #[test]
    fn inline_write_length_beyond_record_is_rejected() {
        let mut area = [0u8; 200];
        let w = LrWrite {
            common: LrCommon {
                txtype: TX_WRITE,
                reclen: 200,
                txg: 1,
                seq: 1,
            },
            foid: 1,
            offset: 0,
            length: 9,
            blkoff: 0,
            blkptr: Blkptr::HOLE,
        };
        w.encode(&mut area).unwrap();
        let mut it = RecordIter::new(&area, ByteOrder::NATIVE, 0);
        assert_eq!(
            it.next().map(|r| r.map(|r| r.info)),
            Some(Err(RecordError::WriteLengthExceedsRecord {
                offset_in_block: 0,
                length: 9,
                data_bytes: 8
            }))
        );
    }
}
