//! Byte order of on-disk words.
//!
//! OpenZFS writes every log-block word in the writing host's order and tells
//! the reader which order that was through `zec_magic` (and the blkptr's
//! byteorder bit). We never reinterpret memory: every word is read from and
//! written to a byte slice with an explicit order, so the same code decodes
//! blocks from either kind of host on either kind of host.

/// The order of the bytes of a multi-byte on-disk word.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// Least significant byte first (x86, arm64, riscv): `zdb` prints `LE`.
    Little,
    /// Most significant byte first (sparc, s390x, ppc64): `zdb` prints `BE`.
    Big,
}

impl ByteOrder {
    /// The order of the host this code runs on; OpenZFS writes in it.
    #[cfg(target_endian = "little")]
    pub const NATIVE: ByteOrder = ByteOrder::Little;
    /// The order of the host this code runs on; OpenZFS writes in it.
    #[cfg(target_endian = "big")]
    pub const NATIVE: ByteOrder = ByteOrder::Big;

    /// The other order.
    pub const fn swapped(self) -> ByteOrder {
        match self {
            ByteOrder::Little => ByteOrder::Big,
            ByteOrder::Big => ByteOrder::Little,
        }
    }

    /// The blkptr byteorder bit for this order (`ZFS_HOST_BYTEORDER`: 1 = little-endian).
    pub const fn blkptr_bit(self) -> u64 {
        match self {
            ByteOrder::Little => 1,
            ByteOrder::Big => 0,
        }
    }

    /// Short name as `zdb` prints it (`LE`/`BE`).
    pub const fn name(self) -> &'static str {
        match self {
            ByteOrder::Little => "LE",
            ByteOrder::Big => "BE",
        }
    }

    /// The u64 at `offset_bytes`, or `None` if `bytes` is too short.
    pub fn get_u64(self, bytes: &[u8], offset_bytes: usize) -> Option<u64> {
        let end = offset_bytes.checked_add(8)?;
        let raw: [u8; 8] = bytes.get(offset_bytes..end)?.try_into().ok()?;
        Some(match self {
            ByteOrder::Little => u64::from_le_bytes(raw),
            ByteOrder::Big => u64::from_be_bytes(raw),
        })
    }

    /// The u32 at `offset_bytes`, or `None` if `bytes` is too short.
    pub fn get_u32(self, bytes: &[u8], offset_bytes: usize) -> Option<u32> {
        let end = offset_bytes.checked_add(4)?;
        let raw: [u8; 4] = bytes.get(offset_bytes..end)?.try_into().ok()?;
        Some(match self {
            ByteOrder::Little => u32::from_le_bytes(raw),
            ByteOrder::Big => u32::from_be_bytes(raw),
        })
    }

    /// Store `value` at `offset_bytes`; `None` (and nothing written) if `bytes` is too short.
    pub fn put_u64(self, bytes: &mut [u8], offset_bytes: usize, value: u64) -> Option<()> {
        let end = offset_bytes.checked_add(8)?;
        let dst = bytes.get_mut(offset_bytes..end)?;
        dst.copy_from_slice(&match self {
            ByteOrder::Little => value.to_le_bytes(),
            ByteOrder::Big => value.to_be_bytes(),
        });
        Some(())
    }
}

/// Sequential reader of u64 words at fixed offsets of a slice whose length
/// the caller has already checked; a short slice yields `None`, never a panic.
pub(crate) struct WordReader<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) order: ByteOrder,
}

impl WordReader<'_> {
    pub(crate) fn u64_at(&self, offset_bytes: usize) -> Option<u64> {
        self.order.get_u64(self.bytes, offset_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_and_put_roundtrip_in_both_orders() {
        let mut buf = [0u8; 16];
        ByteOrder::Little
            .put_u64(&mut buf, 8, 0x0102_0304_0506_0708)
            .unwrap();
        assert_eq!(buf[8], 0x08);
        assert_eq!(
            ByteOrder::Little.get_u64(&buf, 8),
            Some(0x0102_0304_0506_0708)
        );
        assert_eq!(ByteOrder::Big.get_u64(&buf, 8), Some(0x0807_0605_0403_0201));
        assert_eq!(ByteOrder::Big.get_u32(&buf, 8), Some(0x0807_0605));
    }

    #[test]
    fn out_of_range_is_none_not_panic() {
        let mut buf = [0u8; 15];
        assert_eq!(ByteOrder::Little.get_u64(&buf, 8), None);
        assert_eq!(ByteOrder::Little.get_u64(&buf, usize::MAX - 3), None);
        assert_eq!(ByteOrder::Big.put_u64(&mut buf, 8, 1), None);
        assert_eq!(buf, [0u8; 15]);
    }
}
