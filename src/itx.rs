//! Intent-log transactions (itxs): records waiting to be placed in an lwb.
//!
//! An itx is created by [`crate::Zil::assign`] from a caller's [`Record`],
//! sits on the commit list (owned by the issuer, under `zl_issuer_lock`),
//! is placed into the open lwb by a committer, travels with the closed lwb
//! to the thread that copies it into the block buffer, and is freed right
//! after that copy (the block buffer carries the bytes from then on).

use crate::error::Error;
use crate::format;
use crate::limits::{
    ITX_RECORD_BYTES_MAX, LR_HEADER_BYTES, LR_WRITE_HEADER_BYTES, WRITE_DATA_BYTES_MAX,
    WR_COPIED_DATA_BYTES_MAX,
};

/// How a TX_WRITE's data reaches the log (`itx_wr_state_t`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteKind {
    /// The data was copied into the itx at assign time (`WR_COPIED`).
    Copied,
    /// The data is fetched from the platform when the block is filled and
    /// may be split across blocks (`WR_NEED_COPY`).
    NeedCopy,
    /// The data is written to a block of its own by a child I/O and the
    /// record carries a block pointer (`WR_INDIRECT`).
    Indirect,
}

/// Where a write record's data comes from, as the caller hands it in.
#[derive(Clone, Copy, Debug)]
pub enum WriteData<'a> {
    /// Copy these bytes now (at most `WR_COPIED_DATA_BYTES_MAX`).
    Copied(&'a [u8]),
    /// Fetch `length` bytes with `Platform::get_data` at fill time.
    NeedCopy {
        /// Data length in bytes.
        length: u64,
    },
    /// Write `length` bytes out of line with `Platform::submit_indirect`.
    Indirect {
        /// Data length in bytes.
        length: u64,
    },
}

/// A record handed to [`crate::Zil::assign`].
#[derive(Clone, Copy, Debug)]
pub enum Record<'a> {
    /// Any record type other than TX_WRITE, carried opaquely: `body` is what
    /// follows the 32-byte `lr_t` header on disk.
    Opaque {
        /// The record type (`TX_CREATE`, `TX_REMOVE`, ...), `TX_CI` allowed.
        txtype: u64,
        /// The record bytes after the `lr_t` header.
        body: &'a [u8],
    },
    /// A TX_WRITE of `foid` at byte `offset`.
    Write {
        /// Object id.
        foid: u64,
        /// Byte offset in the object.
        offset: u64,
        /// The data.
        data: WriteData<'a>,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ItxKind {
    Opaque {
        body_bytes: u32,
    },
    Write {
        foid: u64,
        offset: u64,
        length: u64,
        kind: WriteKind,
    },
}

/// One itx. Fixed-size so that a pool (UMA zone, slab) can hold it.
///
/// # Invariants
///
/// For `Opaque` the first `body_bytes` of `bytes` are the record body; for a
/// `Copied` write the first `length` bytes are the data.
#[derive(Debug)]
pub struct Itx {
    pub(crate) txg: u64,
    pub(crate) txtype: u64,
    /// Record sequence number, set when the itx is placed in an lwb.
    pub(crate) lr_seq: u64,
    pub(crate) kind: ItxKind,
    pub(crate) bytes: [u8; ITX_RECORD_BYTES_MAX],
}

impl Itx {
    /// An empty itx, the value a pool hands out.
    pub const EMPTY: Itx = Itx {
        txg: 0,
        txtype: 0,
        lr_seq: 0,
        kind: ItxKind::Opaque { body_bytes: 0 },
        bytes: [0; ITX_RECORD_BYTES_MAX],
    };

    /// An empty itx whose body bytes are all `byte`: what a pool may hand
    /// out after reuse (see [`Itx::reset`]). Test platforms hand out these,
    /// so every test shows the core never reads a body byte it did not
    /// fill.
    pub const fn with_body_bytes(byte: u8) -> Itx {
        Itx {
            bytes: [byte; ITX_RECORD_BYTES_MAX],
            ..Itx::EMPTY
        }
    }

    /// Make a used itx empty again, for a pool that reuses it: the header
    /// becomes [`Itx::EMPTY`]'s and the body bytes keep what they held.
    /// The core reads only the body bytes it filled and zeroes a record's
    /// padding itself, so this is as good as assigning
    /// [`Itx::EMPTY`], which rewrites all `ITX_RECORD_BYTES_MAX` body
    /// bytes for every record.
    pub fn reset(&mut self) {
        self.txg = 0;
        self.txtype = 0;
        self.lr_seq = 0;
        self.kind = ItxKind::Opaque { body_bytes: 0 };
    }

    /// Fill this itx from a caller's record, validating every length.
    pub(crate) fn fill(&mut self, txg: u64, rec: &Record<'_>) -> Result<(), Error> {
        match *rec {
            Record::Opaque { txtype, body } => {
                let t = txtype & !format::TX_CI;
                if t == format::TX_COMMIT || t >= format::TX_MAX_TYPE {
                    return Err(Error::InvalidRecord("record type out of range"));
                }
                if t == format::TX_WRITE {
                    return Err(Error::InvalidRecord(
                        "TX_WRITE must be given as Record::Write",
                    ));
                }
                if body.len() > ITX_RECORD_BYTES_MAX - LR_HEADER_BYTES as usize {
                    return Err(Error::InvalidRecord(
                        "record body over ITX_RECORD_BYTES_MAX",
                    ));
                }
                self.bytes[..body.len()].copy_from_slice(body);
                self.txtype = txtype;
                // Bounded by ITX_RECORD_BYTES_MAX above.
                self.kind = ItxKind::Opaque {
                    body_bytes: body.len() as u32,
                };
            }
            Record::Write { foid, offset, data } => {
                let (length, kind) = match data {
                    WriteData::Copied(d) => {
                        if d.len() > WR_COPIED_DATA_BYTES_MAX as usize {
                            return Err(Error::InvalidRecord("WR_COPIED data over zil_maxcopied"));
                        }
                        self.bytes[..d.len()].copy_from_slice(d);
                        (d.len() as u64, WriteKind::Copied)
                    }
                    WriteData::NeedCopy { length } => (length, WriteKind::NeedCopy),
                    WriteData::Indirect { length } => (length, WriteKind::Indirect),
                };
                if length == 0 || length > u64::from(WRITE_DATA_BYTES_MAX) {
                    return Err(Error::InvalidRecord(
                        "write length zero or over WRITE_DATA_BYTES_MAX",
                    ));
                }
                if offset.checked_add(length).is_none() {
                    return Err(Error::InvalidRecord("write offset + length overflows"));
                }
                self.txtype = format::TX_WRITE;
                self.kind = ItxKind::Write {
                    foid,
                    offset,
                    length,
                    kind,
                };
            }
        }
        self.txg = txg;
        Ok(())
    }

    /// Bytes this itx needs in a block if placed whole (`reclen + dlen`).
    pub(crate) fn whole_bytes(&self) -> u64 {
        match self.kind {
            ItxKind::Opaque { body_bytes } => {
                round8(u64::from(LR_HEADER_BYTES) + u64::from(body_bytes))
            }
            ItxKind::Write {
                kind: WriteKind::Indirect,
                ..
            } => u64::from(LR_WRITE_HEADER_BYTES),
            ItxKind::Write { length, .. } => u64::from(LR_WRITE_HEADER_BYTES) + round8(length),
        }
    }
}

/// Round up to the 8-byte record alignment.
pub(crate) const fn round8(n: u64) -> u64 {
    (n + 7) & !7
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::boxed::Box;

    fn itx() -> Box<Itx> {
        Box::new(Itx::EMPTY)
    }

    #[test]
    fn reset_empties_the_header_and_leaves_the_body() {
        let mut i = itx();
        i.fill(
            9,
            &Record::Write {
                foid: 4,
                offset: 512,
                data: WriteData::Copied(&[0x5a; 300]),
            },
        )
        .unwrap();
        i.lr_seq = 77;
        i.reset();
        let empty = Itx::EMPTY;
        assert_eq!(
            (i.txg, i.txtype, i.lr_seq, i.kind),
            (empty.txg, empty.txtype, empty.lr_seq, empty.kind)
        );
        assert_eq!(i.whole_bytes(), empty.whole_bytes());
        assert!(
            i.bytes[..300].iter().all(|&b| b == 0x5a),
            "the body is not rewritten"
        );
        let junk = Itx::with_body_bytes(0xa5);
        assert_eq!(junk.kind, empty.kind);
        assert!(junk.bytes.iter().all(|&b| b == 0xa5));
    }

    #[test]
    fn record_sizes_match_the_on_disk_layout() {
        let mut i = itx();
        i.fill(
            3,
            &Record::Opaque {
                txtype: format::TX_CREATE,
                body: &[1; 13],
            },
        )
        .unwrap();
        assert_eq!(i.whole_bytes(), 48, "32-byte lr_t + 13 bytes, padded to 8");
        i.fill(
            3,
            &Record::Write {
                foid: 1,
                offset: 0,
                data: WriteData::Copied(&[0; 4096]),
            },
        )
        .unwrap();
        assert_eq!(i.whole_bytes(), 192 + 4096);
        i.fill(
            3,
            &Record::Write {
                foid: 1,
                offset: 0,
                data: WriteData::NeedCopy { length: 5 },
            },
        )
        .unwrap();
        assert_eq!(i.whole_bytes(), 192 + 8);
        i.fill(
            3,
            &Record::Write {
                foid: 1,
                offset: 0,
                data: WriteData::Indirect { length: 1 << 20 },
            },
        )
        .unwrap();
        assert_eq!(i.whole_bytes(), 192, "indirect data lives out of line");
        assert_eq!(i.txg, 3);
    }

    #[test]
    fn fill_refuses_what_the_format_cannot_carry() {
        let mut i = itx();
        let big = [0u8; ITX_RECORD_BYTES_MAX];
        assert!(i
            .fill(
                1,
                &Record::Opaque {
                    txtype: format::TX_SETATTR,
                    body: &big
                }
            )
            .is_err());
        assert!(i
            .fill(
                1,
                &Record::Opaque {
                    txtype: format::TX_MAX_TYPE,
                    body: &[]
                }
            )
            .is_err());
        assert!(i
            .fill(
                1,
                &Record::Opaque {
                    txtype: format::TX_CI | format::TX_WRITE,
                    body: &[]
                }
            )
            .is_err());
        // TX_CI on a valid type is fine.
        assert!(i
            .fill(
                1,
                &Record::Opaque {
                    txtype: format::TX_CI | format::TX_REMOVE,
                    body: &[]
                }
            )
            .is_ok());
        let over = [0u8; WR_COPIED_DATA_BYTES_MAX as usize + 1];
        assert!(i
            .fill(
                1,
                &Record::Write {
                    foid: 1,
                    offset: 0,
                    data: WriteData::Copied(&over)
                }
            )
            .is_err());
        let huge = u64::from(WRITE_DATA_BYTES_MAX) + 1;
        assert!(i
            .fill(
                1,
                &Record::Write {
                    foid: 1,
                    offset: 0,
                    data: WriteData::NeedCopy { length: huge }
                }
            )
            .is_err());
    }
}
