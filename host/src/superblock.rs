//! rzil's own superblock at the start of a log device: where the log region
//! is, where the chain starts and with which verifier, and up to which
//! record the log is already checkpointed.
//!
//! Two copies live in slots A (offset 0) and B (offset [`SLOT_BYTES`]). An
//! update writes generation `g + 1` into the slot that does *not* hold the
//! current one, then flushes; reading takes the valid copy with the highest
//! generation. A write torn anywhere therefore leaves the previous copy
//! intact (it is in the other slot), the same reason ZFS keeps four labels.
//!
//! Layout of a copy (all integers little-endian, whatever the host):
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 8 | magic `rzil-sb\0` |
//! | 8 | 4 | version |
//! | 12 | 4 | encoded length ([`SUPERBLOCK_BYTES`]) |
//! | 16 | 8 | generation |
//! | 24 | 8 | device size in bytes |
//! | 32 | 8 | log region start (bytes) |
//! | 40 | 8 | log region end (bytes, exclusive) |
//! | 48 | 8 | chain head: first log block's offset (bytes) |
//! | 56 | 8 | chain head: first log block's size (bytes; 0 = no chain) |
//! | 64 | 32 | chain verifier: guid0, guid1, objset id, seq |
//! | 96 | 8 | checkpoint lr_seq (records with seq ≤ it are covered) |
//! | 104 | 8 | chain head: birth txg in its block pointer |
//! | 112 | 16 | reserved, zero |
//! | 128 | 32 | fletcher-4 of bytes 0..128 |

use std::fmt;

use crate::device::{BlockIo, DeviceError, DIRECT_IO_ALIGN_BYTES};

/// Magic at offset 0 of each copy.
pub const SUPERBLOCK_MAGIC: [u8; 8] = *b"rzil-sb\0";
/// The layout version this code writes and reads.
pub const SUPERBLOCK_VERSION: u32 = 1;
/// Encoded length of one copy: fields plus the checksum.
pub const SUPERBLOCK_BYTES: usize = 160;
/// Bytes covered by the checksum.
const CHECKSUMMED_BYTES: usize = 128;
/// One slot: one aligned unit, so a copy is written with one O_DIRECT write.
pub const SLOT_BYTES: usize = DIRECT_IO_ALIGN_BYTES;
/// Offsets of slot A and slot B.
pub const SLOT_OFFSETS_BYTES: [u64; 2] = [0, SLOT_BYTES as u64];
/// Where the log region starts: after the slots, aligned to the largest
/// log block so every block offset is naturally aligned.
pub const LOG_REGION_START_BYTES: u64 = 128 * 1024;
/// The largest log region we format. A log holds only what is not yet
/// checkpointed (the checkpoint actor frees blocks once a quarter of the
/// region is used), so more space buys nothing, and a bounded region keeps
/// the crash recorder's copy of it bounded on large disks.
pub const LOG_REGION_BYTES_MAX: u64 = 256 * 1024 * 1024;
/// Highest generation a copy may carry. Updates count it up by one and the
/// newest copy wins, so it must never wrap: an update past it is refused,
/// and a copy above it (corrupt or crafted, checksum notwithstanding) is
/// invalid. A copy at `u64::MAX` used to win forever over the wrapped
/// generations written after it, so every later update was ignored at
/// the next open.
pub const GENERATION_MAX: u64 = u64::MAX - 1;
/// How much of a device's start we read to tell blank from foreign: covers
/// the ZFS label's first uberblocks (at 128 KiB) and btrfs's superblock (at
/// 64 KiB).
pub const PROBE_BYTES: usize = 192 * 1024;

// The checksum must cover every field and fit inside a slot.
const _: () = assert!(CHECKSUMMED_BYTES + 32 == SUPERBLOCK_BYTES);
const _: () = assert!(SUPERBLOCK_BYTES <= SLOT_BYTES);
const _: () = assert!(2 * SLOT_BYTES as u64 <= LOG_REGION_START_BYTES);
// A created file is zero-filled over every byte a log can write.
const _: () =
    assert!(crate::device::ZERO_FILL_BYTES_MAX == LOG_REGION_START_BYTES + LOG_REGION_BYTES_MAX);

/// A log block's address on the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockAddr {
    /// Byte offset from the device start.
    pub offset_bytes: u64,
    /// Block size in bytes.
    pub size_bytes: u64,
}

/// The decoded superblock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Superblock {
    /// Bumped on every update; the highest valid copy wins.
    pub generation: u64,
    /// Device size when formatted: a device that has since shrunk is refused.
    pub device_size_bytes: u64,
    /// Log region `[log_start_bytes, log_end_bytes)`.
    pub log_start_bytes: u64,
    /// End of the log region (exclusive).
    pub log_end_bytes: u64,
    /// First log block of the chain, `None` when the log is empty.
    pub chain_head: Option<BlockAddr>,
    /// The chain's verifier (guid0, guid1, objset id, seq of the head
    /// block), as `zil_header_t.zh_log`'s checksum carries it.
    pub chain_verifier: [u64; 4],
    /// Records with `lr_seq` ≤ this are already covered by a checkpoint and
    /// are not replayed (the role of `zh_replay_seq`/`zh_claim_lr_seq`).
    pub checkpoint_lr_seq: u64,
    /// Birth txg stamped into the head block's pointer.
    pub chain_txg: u64,
}

/// Why one slot does not hold a usable copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SlotProblem {
    /// All zero: never written.
    Blank,
    /// No rzil magic: something else's bytes.
    NotOurs,
    /// A version this build does not read.
    Version(u32),
    /// The checksum does not match (torn or corrupt).
    Checksum,
    /// A field is impossible (named).
    Field(&'static str),
}

impl fmt::Display for SlotProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SlotProblem::Blank => f.write_str("blank"),
            SlotProblem::NotOurs => f.write_str("no rzil magic"),
            SlotProblem::Version(v) => write!(
                f,
                "version {v} (this rzil reads version {SUPERBLOCK_VERSION})"
            ),
            SlotProblem::Checksum => f.write_str("checksum mismatch"),
            SlotProblem::Field(name) => write!(f, "impossible {name}"),
        }
    }
}

/// Why the superblock could not be read or written.
#[derive(Debug)]
pub enum SuperblockError {
    /// At least one slot carries our magic, but no slot holds a valid copy.
    Corrupt {
        slot_a: SlotProblem,
        slot_b: SlotProblem,
    },
    /// The device is smaller than when it was formatted.
    DeviceShrunk {
        formatted_bytes: u64,
        now_bytes: u64,
    },
    /// The device is too small for the superblock slots plus a log region.
    DeviceTooSmall { size_bytes: u64 },
    /// The generation cannot count up past [`GENERATION_MAX`].
    GenerationExhausted,
    /// Reading or writing failed.
    Device(DeviceError),
}

impl fmt::Display for SuperblockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SuperblockError::Corrupt { slot_a, slot_b } => write!(
                f,
                "corrupt rzil superblock (slot A: {slot_a}; slot B: {slot_b}); give --create to reformat, which discards the log"
            ),
            SuperblockError::DeviceShrunk {
                formatted_bytes,
                now_bytes,
            } => write!(
                f,
                "the superblock says the device has {formatted_bytes} bytes but it now has {now_bytes}"
            ),
            SuperblockError::DeviceTooSmall { size_bytes } => write!(
                f,
                "a {size_bytes}-byte device has no room for a log region after the superblock"
            ),
            SuperblockError::GenerationExhausted => write!(
                f,
                "the superblock generation is at its maximum ({GENERATION_MAX}); give --create to reformat"
            ),
            SuperblockError::Device(error) => write!(f, "superblock I/O: {error}"),
        }
    }
}

impl std::error::Error for SuperblockError {}

impl From<DeviceError> for SuperblockError {
    fn from(error: DeviceError) -> Self {
        SuperblockError::Device(error)
    }
}

/// What the start of a device holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Probe {
    /// A valid rzil superblock (the newest copy), and which slot it was in.
    Ours { superblock: Superblock, slot: usize },
    /// Nothing: the probed window is all zeros.
    Blank,
    /// Something that is not ours; `what` describes it in a few words.
    Foreign { what: String },
}

/// Fletcher-4 over little-endian 32-bit words, as ZFS computes it (four
/// wrapping 64-bit sums). `bytes.len()` must be a multiple of 4.
pub fn fletcher4(bytes: &[u8]) -> [u64; 4] {
    debug_assert!(bytes.len() % 4 == 0);
    let (mut a, mut b, mut c, mut d) = (0u64, 0u64, 0u64, 0u64);
    for word in bytes.chunks_exact(4) {
        let word = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
        a = a.wrapping_add(u64::from(word));
        b = b.wrapping_add(a);
        c = c.wrapping_add(b);
        d = d.wrapping_add(c);
    }
    [a, b, c, d]
}

fn get_u64(bytes: &[u8], offset: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(word)
}

fn put_u64(bytes: &mut [u8], offset: usize, value: u64) {
    bytes[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
}

impl Superblock {
    /// A fresh superblock for a device of `device_size_bytes`: the log
    /// region is everything after [`LOG_REGION_START_BYTES`], the chain is
    /// empty, and `chain_verifier` carries the new log's GUIDs.
    pub fn fresh(
        device_size_bytes: u64,
        chain_verifier: [u64; 4],
    ) -> Result<Superblock, SuperblockError> {
        if device_size_bytes <= LOG_REGION_START_BYTES {
            return Err(SuperblockError::DeviceTooSmall {
                size_bytes: device_size_bytes,
            });
        }
        Ok(Superblock {
            generation: 0,
            device_size_bytes,
            log_start_bytes: LOG_REGION_START_BYTES,
            log_end_bytes: (device_size_bytes - device_size_bytes % DIRECT_IO_ALIGN_BYTES as u64)
                .min(LOG_REGION_START_BYTES + LOG_REGION_BYTES_MAX),
            chain_head: None,
            chain_verifier,
            checkpoint_lr_seq: 0,
            chain_txg: 0,
        })
    }

    /// Encode one copy.
    pub fn encode(&self) -> [u8; SUPERBLOCK_BYTES] {
        let mut bytes = [0u8; SUPERBLOCK_BYTES];
        bytes[0..8].copy_from_slice(&SUPERBLOCK_MAGIC);
        bytes[8..12].copy_from_slice(&SUPERBLOCK_VERSION.to_le_bytes());
        bytes[12..16].copy_from_slice(&(SUPERBLOCK_BYTES as u32).to_le_bytes());
        put_u64(&mut bytes, 16, self.generation);
        put_u64(&mut bytes, 24, self.device_size_bytes);
        put_u64(&mut bytes, 32, self.log_start_bytes);
        put_u64(&mut bytes, 40, self.log_end_bytes);
        let head = self.chain_head.unwrap_or(BlockAddr {
            offset_bytes: 0,
            size_bytes: 0,
        });
        put_u64(&mut bytes, 48, head.offset_bytes);
        put_u64(&mut bytes, 56, head.size_bytes);
        for (i, word) in self.chain_verifier.iter().enumerate() {
            put_u64(&mut bytes, 64 + 8 * i, *word);
        }
        put_u64(&mut bytes, 96, self.checkpoint_lr_seq);
        put_u64(&mut bytes, 104, self.chain_txg);
        let sum = fletcher4(&bytes[..CHECKSUMMED_BYTES]);
        for (i, word) in sum.iter().enumerate() {
            put_u64(&mut bytes, CHECKSUMMED_BYTES + 8 * i, *word);
        }
        bytes
    }

    /// Decode and validate one copy (a slot's first bytes).
    pub fn decode(bytes: &[u8]) -> Result<Superblock, SlotProblem> {
        if bytes.len() < SUPERBLOCK_BYTES {
            return Err(SlotProblem::Field("length"));
        }
        let bytes = &bytes[..SUPERBLOCK_BYTES];
        if bytes[..8] != SUPERBLOCK_MAGIC {
            return Err(if bytes.iter().all(|&b| b == 0) {
                SlotProblem::Blank
            } else {
                SlotProblem::NotOurs
            });
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if version != SUPERBLOCK_VERSION {
            return Err(SlotProblem::Version(version));
        }
        let sum = fletcher4(&bytes[..CHECKSUMMED_BYTES]);
        if (0..4).any(|i| get_u64(bytes, CHECKSUMMED_BYTES + 8 * i) != sum[i]) {
            return Err(SlotProblem::Checksum);
        }
        let encoded_len = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
        if encoded_len as usize != SUPERBLOCK_BYTES {
            return Err(SlotProblem::Field("encoded length"));
        }
        let superblock = Superblock {
            generation: get_u64(bytes, 16),
            device_size_bytes: get_u64(bytes, 24),
            log_start_bytes: get_u64(bytes, 32),
            log_end_bytes: get_u64(bytes, 40),
            chain_head: match (get_u64(bytes, 48), get_u64(bytes, 56)) {
                (_, 0) => None,
                (offset_bytes, size_bytes) => Some(BlockAddr {
                    offset_bytes,
                    size_bytes,
                }),
            },
            chain_verifier: [
                get_u64(bytes, 64),
                get_u64(bytes, 72),
                get_u64(bytes, 80),
                get_u64(bytes, 88),
            ],
            checkpoint_lr_seq: get_u64(bytes, 96),
            chain_txg: get_u64(bytes, 104),
        };
        superblock.check_fields()?;
        Ok(superblock)
    }

    /// A checksum-valid copy can still be nonsense if it was written by a
    /// buggy build; refuse impossible geometry rather than act on it.
    fn check_fields(&self) -> Result<(), SlotProblem> {
        let align = DIRECT_IO_ALIGN_BYTES as u64;
        if self.generation > GENERATION_MAX {
            return Err(SlotProblem::Field("generation"));
        }
        if self.log_start_bytes < 2 * SLOT_BYTES as u64 || self.log_start_bytes % align != 0 {
            return Err(SlotProblem::Field("log region start"));
        }
        if self.log_end_bytes <= self.log_start_bytes
            || self.log_end_bytes > self.device_size_bytes
            || self.log_end_bytes % align != 0
        {
            return Err(SlotProblem::Field("log region end"));
        }
        if let Some(head) = self.chain_head {
            let inside = head.offset_bytes >= self.log_start_bytes
                && head
                    .offset_bytes
                    .checked_add(head.size_bytes)
                    .is_some_and(|end| end <= self.log_end_bytes);
            if !inside || head.offset_bytes % align != 0 || head.size_bytes % align != 0 {
                return Err(SlotProblem::Field("chain head"));
            }
        }
        Ok(())
    }
}

/// Read both slots and the probe window: ours (newest valid copy), blank, or
/// foreign. Our magic in a slot with no valid copy anywhere is corruption.
pub fn probe(dev: &dyn BlockIo) -> Result<Probe, SuperblockError> {
    let window_bytes = PROBE_BYTES.min(dev.size_bytes() as usize);
    let mut window = crate::device::AlignedBuf::zeroed(window_bytes);
    dev.read_at(0, &mut window[..window_bytes])?;
    let window = &window[..window_bytes];

    let mut best: Option<(Superblock, usize)> = None;
    let mut problems = [SlotProblem::Blank, SlotProblem::Blank];
    for (slot, &offset) in SLOT_OFFSETS_BYTES.iter().enumerate() {
        let start = offset as usize;
        // A device too small for this slot simply has no copy there.
        let Some(copy) = window.get(start..start + SLOT_BYTES) else {
            continue;
        };
        match Superblock::decode(copy) {
            Ok(superblock) => {
                if best.is_none_or(|(b, _)| superblock.generation > b.generation) {
                    best = Some((superblock, slot));
                }
            }
            Err(problem) => problems[slot] = problem,
        }
    }
    if let Some((superblock, slot)) = best {
        if superblock.device_size_bytes > dev.size_bytes() {
            return Err(SuperblockError::DeviceShrunk {
                formatted_bytes: superblock.device_size_bytes,
                now_bytes: dev.size_bytes(),
            });
        }
        return Ok(Probe::Ours { superblock, slot });
    }
    let ours = |p: &SlotProblem| !matches!(p, SlotProblem::Blank | SlotProblem::NotOurs);
    if problems.iter().any(ours) {
        let [slot_a, slot_b] = problems;
        return Err(SuperblockError::Corrupt { slot_a, slot_b });
    }
    if window.iter().all(|&b| b == 0) {
        return Ok(Probe::Blank);
    }
    Ok(Probe::Foreign {
        what: identify_foreign(window),
    })
}

/// Name what a non-rzil device start holds, from well-known signatures.
fn identify_foreign(window: &[u8]) -> String {
    let at = |offset: usize, sig: &[u8]| window.get(offset..offset + sig.len()) == Some(sig);
    if at(0, b"LUKS\xba\xbe") {
        return "a LUKS header".into();
    }
    if at(0, b"XFSB") {
        return "an XFS filesystem".into();
    }
    // ext2/3/4: s_magic 0xEF53 at byte 56 of the superblock at 1024.
    if at(1024 + 56, &[0x53, 0xef]) {
        return "an ext2/3/4 filesystem".into();
    }
    // btrfs: "_BHRfS_M" at byte 64 of the superblock at 64 KiB.
    if at(64 * 1024 + 64, b"_BHRfS_M") {
        return "a btrfs filesystem".into();
    }
    // ZFS: uberblock magic 0x00bab10c in the uberblock ring at 128 KiB of
    // vdev label 0 (1 KiB slots at least), either byte order.
    let uberblock_ring = 128 * 1024;
    for slot in 0..(window.len().saturating_sub(uberblock_ring) / 1024) {
        let offset = uberblock_ring + slot * 1024;
        if at(offset, &0x00ba_b10c_u64.to_le_bytes()) || at(offset, &0x00ba_b10c_u64.to_be_bytes())
        {
            return "a ZFS vdev label".into();
        }
    }
    if at(4096 - 10, b"SWAPSPACE2") {
        return "Linux swap".into();
    }
    if at(512, b"EFI PART") {
        return "a GPT partition table".into();
    }
    if at(510, &[0x55, 0xaa]) {
        return "an MBR partition table or boot sector".into();
    }
    let first = window.iter().position(|&b| b != 0).unwrap_or(0);
    format!("unrecognised data (first non-zero byte at offset {first})")
}

/// Write `superblock` as the next generation into the slot that does not
/// hold the current copy, then flush. On return the new copy is durable and
/// `superblock.generation` is its generation.
pub fn write_next(
    dev: &dyn BlockIo,
    superblock: &mut Superblock,
    current_slot: Option<usize>,
) -> Result<usize, SuperblockError> {
    superblock.generation = superblock
        .generation
        .checked_add(1)
        .filter(|&generation| generation <= GENERATION_MAX)
        .ok_or(SuperblockError::GenerationExhausted)?;
    let slot = match current_slot {
        Some(current) => 1 - current,
        None => (superblock.generation % 2) as usize,
    };
    let mut buf = crate::device::AlignedBuf::zeroed(SLOT_BYTES);
    buf[..SUPERBLOCK_BYTES].copy_from_slice(&superblock.encode());
    dev.write_at(SLOT_OFFSETS_BYTES[slot], &buf)?;
    dev.flush()?;
    Ok(slot)
}

/// Format: write a fresh superblock into both slots (generations 1 and 2),
/// flushing after each, so no stale copy from an earlier format can win.
/// Returns the slot holding the newest copy.
pub fn format(dev: &dyn BlockIo, superblock: &mut Superblock) -> Result<usize, SuperblockError> {
    superblock.generation = 0;
    let first = write_next(dev, superblock, Some(1))?;
    write_next(dev, superblock, Some(first))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemDevice;

    const DEVICE_BYTES: usize = 4 * 1024 * 1024;
    const VERIFIER: [u64; 4] = [0x1111, 0x2222, 0x54, 1];

    fn formatted() -> (MemDevice, Superblock, usize) {
        let dev = MemDevice::zeroed(DEVICE_BYTES);
        let mut sb = Superblock::fresh(DEVICE_BYTES as u64, VERIFIER).unwrap();
        let slot = format(&dev, &mut sb).unwrap();
        (dev, sb, slot)
    }

    #[test]
    fn fletcher4_matches_hand_computation() {
        // Words 1, 2: a = 1, 3; b = 1, 4; c = 1, 5; d = 1, 6.
        let bytes = [1, 0, 0, 0, 2, 0, 0, 0];
        assert_eq!(fletcher4(&bytes), [3, 4, 5, 6]);
        assert_eq!(fletcher4(&[]), [0, 0, 0, 0]);
    }

    #[test]
    fn encode_decode_round_trip() {
        let mut sb = Superblock::fresh(DEVICE_BYTES as u64, VERIFIER).unwrap();
        sb.generation = 41;
        sb.chain_head = Some(BlockAddr {
            offset_bytes: LOG_REGION_START_BYTES + 8192,
            size_bytes: 16384,
        });
        sb.checkpoint_lr_seq = 99;
        assert_eq!(Superblock::decode(&sb.encode()), Ok(sb));
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let sb = Superblock::fresh(DEVICE_BYTES as u64, VERIFIER).unwrap();
        let good = sb.encode();
        for i in 0..SUPERBLOCK_BYTES {
            let mut bad = good;
            bad[i] ^= 0x40;
            assert!(
                Superblock::decode(&bad).is_err(),
                "flip at byte {i} went unnoticed"
            );
        }
    }

    #[test]
    fn impossible_fields_are_refused_even_with_a_good_checksum() {
        let mut sb = Superblock::fresh(DEVICE_BYTES as u64, VERIFIER).unwrap();
        sb.chain_head = Some(BlockAddr {
            offset_bytes: 0,
            size_bytes: 4096,
        });
        assert_eq!(
            Superblock::decode(&sb.encode()),
            Err(SlotProblem::Field("chain head"))
        );
        let mut sb = Superblock::fresh(DEVICE_BYTES as u64, VERIFIER).unwrap();
        sb.log_end_bytes = DEVICE_BYTES as u64 + 4096;
        assert_eq!(
            Superblock::decode(&sb.encode()),
            Err(SlotProblem::Field("log region end"))
        );
    }

    #[test]
    fn the_generation_never_wraps() {
        let (dev, mut sb, slot) = formatted();
        // A checksum-valid copy at u64::MAX is refused, so the other slot
        // wins and the next update overwrites it.
        let mut top = sb;
        top.generation = u64::MAX;
        let mut copy = [0u8; SLOT_BYTES];
        copy[..SUPERBLOCK_BYTES].copy_from_slice(&top.encode());
        dev.write_at(SLOT_OFFSETS_BYTES[1 - slot], &copy).unwrap();
        assert_eq!(
            Superblock::decode(&copy),
            Err(SlotProblem::Field("generation"))
        );
        let Probe::Ours {
            superblock,
            slot: read_slot,
        } = probe(&dev).unwrap()
        else {
            panic!("the valid copy was not found");
        };
        assert_eq!((superblock.generation, read_slot), (2, slot));
        let next = write_next(&dev, &mut sb, Some(slot)).unwrap();
        let Probe::Ours {
            superblock,
            slot: read_slot,
        } = probe(&dev).unwrap()
        else {
            panic!("the update was not found");
        };
        assert_eq!((superblock.generation, read_slot), (3, next));
        // The last generation is written; past it, updates are refused.
        sb.generation = GENERATION_MAX - 1;
        write_next(&dev, &mut sb, Some(next)).unwrap();
        assert_eq!(sb.generation, GENERATION_MAX);
        assert!(matches!(
            write_next(&dev, &mut sb, Some(slot)),
            Err(SuperblockError::GenerationExhausted)
        ));
    }

    #[test]
    fn newest_generation_wins_and_updates_alternate_slots() {
        let (dev, mut sb, slot) = formatted();
        let Probe::Ours {
            superblock,
            slot: read_slot,
        } = probe(&dev).unwrap()
        else {
            panic!("formatted device not recognised");
        };
        assert_eq!((superblock.generation, read_slot), (2, slot));
        sb.checkpoint_lr_seq = 7;
        let next = write_next(&dev, &mut sb, Some(slot)).unwrap();
        assert_ne!(next, slot);
        let Probe::Ours {
            superblock,
            slot: read_slot,
        } = probe(&dev).unwrap()
        else {
            panic!("updated device not recognised");
        };
        assert_eq!(superblock.generation, 3);
        assert_eq!(superblock.checkpoint_lr_seq, 7);
        assert_eq!(read_slot, next);
    }

    #[test]
    fn torn_update_keeps_the_previous_copy() {
        let (dev, mut sb, slot) = formatted();
        sb.checkpoint_lr_seq = 5;
        let target = 1 - slot;
        // Tear the update: only the first 64 bytes of the new copy land.
        sb.generation += 1;
        let encoded = sb.encode();
        dev.write_at(SLOT_OFFSETS_BYTES[target], &encoded[..64])
            .unwrap();
        let Probe::Ours {
            superblock,
            slot: read_slot,
        } = probe(&dev).unwrap()
        else {
            panic!("torn update lost the superblock");
        };
        assert_eq!(read_slot, slot);
        assert_eq!(superblock.generation, 2);
        assert_eq!(superblock.checkpoint_lr_seq, 0);
    }

    #[test]
    fn both_slots_corrupt_is_a_named_error() {
        let (dev, _, _) = formatted();
        for offset in SLOT_OFFSETS_BYTES {
            dev.write_at(offset + 20, &[0xff]).unwrap();
        }
        let err = probe(&dev).unwrap_err();
        assert!(matches!(err, SuperblockError::Corrupt { .. }));
        assert!(
            err.to_string().contains("slot A: checksum mismatch"),
            "{err}"
        );
    }

    #[test]
    fn blank_and_foreign_devices() {
        let dev = MemDevice::zeroed(DEVICE_BYTES);
        assert_eq!(probe(&dev).unwrap(), Probe::Blank);
        dev.write_at(1024 + 56, &[0x53, 0xef]).unwrap();
        assert_eq!(
            probe(&dev).unwrap(),
            Probe::Foreign {
                what: "an ext2/3/4 filesystem".into()
            }
        );
        let dev = MemDevice::zeroed(DEVICE_BYTES);
        dev.write_at(128 * 1024 + 3 * 1024, &0x00ba_b10c_u64.to_le_bytes())
            .unwrap();
        assert_eq!(
            probe(&dev).unwrap(),
            Probe::Foreign {
                what: "a ZFS vdev label".into()
            }
        );
        let dev = MemDevice::zeroed(DEVICE_BYTES);
        dev.write_at(70_000, b"x").unwrap();
        let Probe::Foreign { what } = probe(&dev).unwrap() else {
            panic!("data not detected");
        };
        assert!(what.contains("offset 70000"), "{what}");
    }

    #[test]
    fn the_log_region_is_capped_on_large_devices() {
        let sb = Superblock::fresh(1 << 40, VERIFIER).unwrap();
        assert_eq!(sb.log_start_bytes, LOG_REGION_START_BYTES);
        assert_eq!(
            sb.log_end_bytes,
            LOG_REGION_START_BYTES + LOG_REGION_BYTES_MAX
        );
        assert_eq!(sb.device_size_bytes, 1 << 40);
        let small = Superblock::fresh(DEVICE_BYTES as u64 + 100, VERIFIER).unwrap();
        assert_eq!(small.log_end_bytes, DEVICE_BYTES as u64);
    }

    #[test]
    fn shrunk_device_is_refused() {
        let (dev, _, _) = formatted();
        let image = dev.snapshot();
        let smaller = MemDevice::from_image(image[..DEVICE_BYTES / 2].to_vec());
        let err = probe(&smaller).unwrap_err();
        assert!(matches!(err, SuperblockError::DeviceShrunk { .. }), "{err}");
    }
}
