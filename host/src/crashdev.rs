//! A recording device layer for crash-consistency checks (`rzil verify`).
//!
//! [`RecordingDevice`] passes every write and flush through to the device it
//! wraps and records, in order, when each write began and completed and
//! when each flush began and completed. From that history it builds the
//! device image a power cut at any recorded point may leave behind:
//!
//! - every write that *completed before a flush began*, where that flush
//!   *completed before the cut*, is on the image (that is all a flush
//!   promises: `fdatasync` covers writes that finished before it was called);
//! - of every other write begun before the cut (after the last such flush,
//!   or still in flight), an arbitrary subset lands, in an arbitrary order,
//!   and each may be torn: only some of its sectors land. Sectors
//!   ([`BlockIo::sector_size_bytes`], 512 B for files) are atomic.
//!
//! The subset, order and tearing come from a seed, so an image is a pure
//! function of (history, cut point, seed) and any failure replays.
//!
//! Memory: the layer keeps a copy of the device as it was when recording
//! started and of every byte written since, bounded by
//! [`RECORDED_BYTES_MAX`]; past it, writes fail with
//! [`DeviceError::RecordingFull`] rather than grow without limit. A long
//! run that only needs crash points near its end calls
//! [`RecordingDevice::fold`] now and then: writes already durable are
//! applied to the base copy and forgotten, and crash points before the
//! fold are no longer available.

use std::fmt;

use parking_lot::Mutex;

use crate::device::{BlockIo, DeviceError};
use crate::rng::Xoshiro256;

/// The most written bytes one recording keeps (the `verify` workload is
/// sized well below it).
pub const RECORDED_BYTES_MAX: usize = 512 * 1024 * 1024;

/// Chance, per volatile write, that it lands at all: 1 in 2.
const LAND_CHANCE: (u64, u64) = (1, 2);
/// Chance, per landing write, that it is torn: 1 in 3.
const TEAR_CHANCE: (u64, u64) = (1, 3);
/// Chance, per sector of a torn write, that the sector lands: 1 in 2.
const SECTOR_LAND_CHANCE: (u64, u64) = (1, 2);

/// A position in the recorded history: the number of events recorded so
/// far. A crash "at" a point sees the events before it.
pub type CrashPoint = usize;

#[derive(Clone, Debug)]
struct WriteRecord {
    offset_bytes: u64,
    data: Box<[u8]>,
    begin: CrashPoint,
    /// Event index of its completion; `None` while in flight or if it failed.
    end: Option<CrashPoint>,
}

/// Identifies a recorded write between its begin and end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WriteId(u64);

/// Identifies a recorded flush between its begin and end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlushId(CrashPoint);

/// The history of writes and flushes over a base image: what
/// [`RecordingDevice`] fills in, and what tests can drive directly to pin
/// down an interleaving.
#[derive(Debug, Default)]
pub struct Recording {
    /// The device as of the last fold (or the start).
    base: Vec<u8>,
    /// Bumped by every fold, so crash builders know to re-copy `base`.
    base_generation: u64,
    /// Events so far (every begin and end counts one).
    events: CrashPoint,
    /// Writes not folded into `base`, by id.
    writes: std::collections::BTreeMap<u64, WriteRecord>,
    next_write_id: u64,
    /// Completed flushes not folded: (begin, end) event indices.
    flushes: Vec<(CrashPoint, CrashPoint)>,
    /// The durability bound folded into `base`.
    base_bound: CrashPoint,
    /// Crash points before this are gone (folded).
    folded_at: CrashPoint,
    live_bytes: usize,
    writes_total: usize,
    flushes_completed: usize,
}

/// Why a crash image could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashError {
    /// The crash point lies beyond the recorded history.
    PointOutOfRange { at: CrashPoint, events: usize },
    /// Crash points given to a [`Crasher`] must not go backwards.
    PointBackwards {
        at: CrashPoint,
        previous: CrashPoint,
    },
    /// The crash point lies before the last [`RecordingDevice::fold`].
    PointFolded {
        at: CrashPoint,
        folded_at: CrashPoint,
    },
    /// A recorded write lies outside the base image (a caller bug).
    WriteOutsideImage { offset_bytes: u64 },
}

impl fmt::Display for CrashError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrashError::PointOutOfRange { at, events } => {
                write!(f, "crash point {at} is past the {events} recorded events")
            }
            CrashError::PointBackwards { at, previous } => {
                write!(
                    f,
                    "crash point {at} is before the previous one ({previous})"
                )
            }
            CrashError::PointFolded { at, folded_at } => {
                write!(
                    f,
                    "crash point {at} was folded away (history starts at {folded_at})"
                )
            }
            CrashError::WriteOutsideImage { offset_bytes } => {
                write!(
                    f,
                    "a recorded write at {offset_bytes} lies outside the image"
                )
            }
        }
    }
}

impl std::error::Error for CrashError {}

impl Recording {
    /// A recording over a device that holds `base`.
    pub fn new(base: Vec<u8>) -> Recording {
        Recording {
            base,
            ..Recording::default()
        }
    }

    /// Record the start of a write of `data` at `offset_bytes`.
    pub fn write_begin(&mut self, offset_bytes: u64, data: &[u8]) -> Result<WriteId, DeviceError> {
        if self.live_bytes + data.len() > RECORDED_BYTES_MAX {
            return Err(DeviceError::RecordingFull {
                limit_bytes: RECORDED_BYTES_MAX,
            });
        }
        let id = self.next_write_id;
        self.next_write_id += 1;
        self.writes.insert(
            id,
            WriteRecord {
                offset_bytes,
                data: data.into(),
                begin: self.events,
                end: None,
            },
        );
        self.live_bytes += data.len();
        self.writes_total += 1;
        self.events += 1;
        Ok(WriteId(id))
    }

    /// Record that write `id` completed successfully.
    pub fn write_end(&mut self, id: WriteId) {
        if let Some(write) = self.writes.get_mut(&id.0) {
            write.end = Some(self.events);
        }
        self.events += 1;
    }

    /// Record the start of a flush.
    pub fn flush_begin(&mut self) -> FlushId {
        let id = FlushId(self.events);
        self.events += 1;
        id
    }

    /// Record that flush `id` completed successfully. (A failed flush is
    /// simply never ended: it promises nothing.)
    pub fn flush_end(&mut self, id: FlushId) {
        self.flushes.push((id.0, self.events));
        self.events += 1;
        self.flushes_completed += 1;
    }

    /// Number of events so far: the latest crash point.
    pub fn events(&self) -> CrashPoint {
        self.events
    }

    /// Writes recorded so far (folded ones included).
    pub fn writes(&self) -> usize {
        self.writes_total
    }

    /// Flushes completed so far.
    pub fn flushes_completed(&self) -> usize {
        self.flushes_completed
    }

    /// The event index that bounds durability at `at`: writes that ended
    /// before it are durable. It is the begin of the latest-begun flush
    /// among those that completed before `at`.
    fn durable_bound(&self, at: CrashPoint) -> CrashPoint {
        self.flushes
            .iter()
            .filter(|&&(_, end)| end < at)
            .map(|&(begin, _)| begin)
            .max()
            .unwrap_or(0)
            .max(self.base_bound)
    }

    fn is_durable(write: &WriteRecord, bound: CrashPoint) -> bool {
        write.end.is_some_and(|end| end < bound)
    }

    fn apply(image: &mut [u8], write: &WriteRecord) -> Result<(), CrashError> {
        let start = write.offset_bytes as usize;
        let end = start
            .checked_add(write.data.len())
            .filter(|&end| end <= image.len())
            .ok_or(CrashError::WriteOutsideImage {
                offset_bytes: write.offset_bytes,
            })?;
        image[start..end].copy_from_slice(&write.data);
        Ok(())
    }

    /// Apply every write durable now to the base and forget it; crash
    /// points before now become unavailable.
    pub fn fold(&mut self) -> Result<(), CrashError> {
        let bound = self.durable_bound(self.events);
        let mut durable: Vec<u64> = self
            .writes
            .iter()
            .filter(|(_, w)| Self::is_durable(w, bound))
            .map(|(&id, _)| id)
            .collect();
        durable.sort_by_key(|id| self.writes[id].end);
        for id in durable {
            let write = self.writes.remove(&id).expect("listed above");
            Self::apply(&mut self.base, &write)?;
            self.live_bytes -= write.data.len();
        }
        self.flushes.retain(|&(begin, _)| begin > bound);
        self.base_bound = bound;
        self.folded_at = self.events;
        self.base_generation += 1;
        Ok(())
    }

    /// Land a seeded subset of the writes that are not durable at `at`, in
    /// a seeded order, some of them torn at `sector_bytes` granularity.
    fn apply_volatile(
        &self,
        image: &mut CrashImage<'_>,
        at: CrashPoint,
        bound: CrashPoint,
        seed: u64,
    ) -> Result<CrashStats, CrashError> {
        // Mix the point into the seed so each cut of one run differs.
        let mut rng = Xoshiro256::new(seed ^ (at as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut volatile: Vec<&WriteRecord> = self
            .writes
            .values()
            .filter(|w| w.begin < at && !Self::is_durable(w, bound))
            .collect();
        rng.shuffle(&mut volatile);
        let mut stats = CrashStats {
            volatile_writes: volatile.len(),
            ..CrashStats::default()
        };
        let sector_bytes = image.sector_bytes;
        for write in volatile {
            if !rng.chance(LAND_CHANCE.0, LAND_CHANCE.1) {
                stats.dropped += 1;
                continue;
            }
            let torn = rng.chance(TEAR_CHANCE.0, TEAR_CHANCE.1);
            if torn {
                stats.torn += 1;
            } else {
                stats.landed_whole += 1;
            }
            // Sector boundaries are absolute device offsets.
            let data = &write.data;
            let mut pos = 0usize;
            while pos < data.len() {
                let abs = write.offset_bytes + pos as u64;
                let piece =
                    (sector_bytes - (abs % sector_bytes as u64) as usize).min(data.len() - pos);
                if !torn || rng.chance(SECTOR_LAND_CHANCE.0, SECTOR_LAND_CHANCE.1) {
                    image.overlay_write(abs, &data[pos..pos + piece])?;
                }
                pos += piece;
            }
        }
        Ok(stats)
    }
}

/// A crash image: the durable contents plus, sector by sector, the
/// unflushed writes that landed. Reading it is reading the device after the
/// power cut; nothing is copied but the landed sectors.
#[derive(Debug)]
pub struct CrashImage<'a> {
    durable: &'a [u8],
    /// Landed sectors by sector index.
    overlay: std::collections::BTreeMap<u64, Box<[u8]>>,
    sector_bytes: usize,
    /// The device's size (the image may cover only its first part; reads
    /// past the covered part see zeros).
    size_bytes: u64,
}

impl CrashImage<'_> {
    /// Write `data` (inside one sector) at `offset_bytes` into the overlay.
    fn overlay_write(&mut self, offset_bytes: u64, data: &[u8]) -> Result<(), CrashError> {
        let sector_bytes = self.sector_bytes as u64;
        let sector = offset_bytes / sector_bytes;
        let start = sector * sector_bytes;
        let end = start + sector_bytes;
        if end > self.durable.len() as u64 {
            return Err(CrashError::WriteOutsideImage { offset_bytes });
        }
        let durable = &self.durable[start as usize..end as usize];
        let slot = self.overlay.entry(sector).or_insert_with(|| durable.into());
        let at = (offset_bytes - start) as usize;
        slot[at..at + data.len()].copy_from_slice(data);
        Ok(())
    }

    /// The whole covered image as bytes (tests, and tools that want a file).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut bytes = self.durable.to_vec();
        for (&sector, data) in &self.overlay {
            let start = sector as usize * self.sector_bytes;
            bytes[start..start + data.len()].copy_from_slice(data);
        }
        bytes
    }
}

/// Read-only: a crash image is looked at, never written.
impl BlockIo for CrashImage<'_> {
    fn size_bytes(&self) -> u64 {
        self.size_bytes
    }

    fn sector_size_bytes(&self) -> u32 {
        self.sector_bytes as u32
    }

    fn write_at(&self, offset_bytes: u64, buf: &[u8]) -> Result<(), DeviceError> {
        Err(DeviceError::OutOfRange {
            offset_bytes,
            len_bytes: buf.len(),
            size_bytes: 0,
        })
    }

    fn read_at(&self, offset_bytes: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        let end = offset_bytes.checked_add(buf.len() as u64);
        if end.is_none_or(|end| end > self.size_bytes) {
            return Err(DeviceError::OutOfRange {
                offset_bytes,
                len_bytes: buf.len(),
                size_bytes: self.size_bytes,
            });
        }
        let covered = self.durable.len() as u64;
        let start = offset_bytes.min(covered) as usize;
        let stop = (offset_bytes + buf.len() as u64).min(covered) as usize;
        buf[..stop - start].copy_from_slice(&self.durable[start..stop]);
        buf[stop - start..].fill(0);
        let sector_bytes = self.sector_bytes as u64;
        let first = offset_bytes / sector_bytes;
        let last = (offset_bytes + buf.len() as u64).div_ceil(sector_bytes);
        for (&sector, data) in self.overlay.range(first..last) {
            let sector_start = sector * sector_bytes;
            let from = sector_start.max(offset_bytes);
            let to = (sector_start + sector_bytes).min(offset_bytes + buf.len() as u64);
            buf[(from - offset_bytes) as usize..(to - offset_bytes) as usize].copy_from_slice(
                &data[(from - sector_start) as usize..(to - sector_start) as usize],
            );
        }
        Ok(())
    }

    fn flush(&self) -> Result<(), DeviceError> {
        Ok(())
    }
}

/// What a crash image contains beyond the durable writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CrashStats {
    /// Writes that were not yet durable at the cut.
    pub volatile_writes: usize,
    /// Of those, how many landed whole.
    pub landed_whole: usize,
    /// How many landed torn (some sectors only).
    pub torn: usize,
    /// How many did not land at all.
    pub dropped: usize,
}

/// A [`BlockIo`] that records everything done through it.
#[derive(Debug)]
pub struct RecordingDevice<D: BlockIo> {
    inner: D,
    recording: Mutex<Recording>,
}

impl<D: BlockIo> RecordingDevice<D> {
    /// Wrap `inner`, taking a copy of its current contents as the base
    /// every crash image starts from.
    pub fn new(inner: D) -> Result<RecordingDevice<D>, DeviceError> {
        let size_bytes = inner.size_bytes();
        RecordingDevice::covering(inner, size_bytes)
    }

    /// Like [`new`](Self::new), but record (and image) only the first
    /// `covered_bytes` of the device, e.g. up to the end of the log region
    /// of a large disk. Writes beyond it are refused.
    pub fn covering(inner: D, covered_bytes: u64) -> Result<RecordingDevice<D>, DeviceError> {
        let size_bytes =
            usize::try_from(covered_bytes.min(inner.size_bytes())).unwrap_or(usize::MAX);
        if size_bytes > RECORDED_BYTES_MAX {
            return Err(DeviceError::RecordingFull {
                limit_bytes: RECORDED_BYTES_MAX,
            });
        }
        let mut base = crate::device::AlignedBuf::zeroed(size_bytes);
        inner.read_at(0, &mut base[..size_bytes])?;
        Ok(RecordingDevice {
            recording: Mutex::new(Recording::new(base[..size_bytes].to_vec())),
            inner,
        })
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }

    /// The current crash point (events recorded so far). Take it right
    /// after a commit returns to know which crash points must keep it.
    pub fn mark(&self) -> CrashPoint {
        self.recording.lock().events()
    }

    /// Bytes of recorded writes held (not folded away): what counts toward
    /// [`RECORDED_BYTES_MAX`].
    pub fn live_bytes(&self) -> usize {
        self.recording.lock().live_bytes
    }

    /// (writes recorded, flushes completed).
    pub fn counts(&self) -> (usize, usize) {
        let recording = self.recording.lock();
        (recording.writes(), recording.flushes_completed())
    }

    /// Fold every write durable now into the base (see the module docs).
    pub fn fold(&self) -> Result<(), CrashError> {
        self.recording.lock().fold()
    }

    /// The image a power cut at `at` may leave, for `seed`, as bytes.
    pub fn crash_image(
        &self,
        at: CrashPoint,
        seed: u64,
    ) -> Result<(Vec<u8>, CrashStats), CrashError> {
        let mut crasher = self.crasher();
        let (image, stats) = crasher.crash(at, seed)?;
        Ok((image.to_vec(), stats))
    }

    /// An incremental image builder for ascending crash points: it applies
    /// the durable writes once, instead of once per crash.
    pub fn crasher(&self) -> Crasher<'_, D> {
        Crasher {
            device: self,
            durable: Vec::new(),
            base_generation: None,
            applied: std::collections::BTreeSet::new(),
            previous: 0,
        }
    }
}

impl<D: BlockIo> BlockIo for RecordingDevice<D> {
    fn size_bytes(&self) -> u64 {
        self.inner.size_bytes()
    }

    fn sector_size_bytes(&self) -> u32 {
        self.inner.sector_size_bytes()
    }

    fn write_at(&self, offset_bytes: u64, buf: &[u8]) -> Result<(), DeviceError> {
        let covered_bytes = self.recording.lock().base.len() as u64;
        if offset_bytes.saturating_add(buf.len() as u64) > covered_bytes {
            return Err(DeviceError::OutOfRange {
                offset_bytes,
                len_bytes: buf.len(),
                size_bytes: covered_bytes,
            });
        }
        let id = self.recording.lock().write_begin(offset_bytes, buf)?;
        self.inner.write_at(offset_bytes, buf)?;
        self.recording.lock().write_end(id);
        Ok(())
    }

    fn read_at(&self, offset_bytes: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        self.inner.read_at(offset_bytes, buf)
    }

    fn flush(&self) -> Result<(), DeviceError> {
        let id = self.recording.lock().flush_begin();
        self.inner.flush()?;
        self.recording.lock().flush_end(id);
        Ok(())
    }
}

/// Builds crash images for non-decreasing crash points.
#[derive(Debug)]
pub struct Crasher<'a, D: BlockIo> {
    device: &'a RecordingDevice<D>,
    /// The base plus the durable writes applied so far.
    durable: Vec<u8>,
    /// Which base `durable` was copied from.
    base_generation: Option<u64>,
    /// Ids of the writes applied to `durable`.
    applied: std::collections::BTreeSet<u64>,
    previous: CrashPoint,
}

impl<D: BlockIo> Crasher<'_, D> {
    /// The image a power cut at `at` may leave, for `seed`, and what landed.
    pub fn crash(
        &mut self,
        at: CrashPoint,
        seed: u64,
    ) -> Result<(CrashImage<'_>, CrashStats), CrashError> {
        let recording = self.device.recording.lock();
        if at > recording.events() {
            return Err(CrashError::PointOutOfRange {
                at,
                events: recording.events(),
            });
        }
        if at < recording.folded_at {
            return Err(CrashError::PointFolded {
                at,
                folded_at: recording.folded_at,
            });
        }
        if at < self.previous {
            return Err(CrashError::PointBackwards {
                at,
                previous: self.previous,
            });
        }
        self.previous = at;
        if self.base_generation != Some(recording.base_generation) {
            self.durable = recording.base.clone();
            self.applied.clear();
            self.base_generation = Some(recording.base_generation);
        }
        let bound = recording.durable_bound(at);
        // Durable writes, in completion order (a later completion of an
        // overlapping write wins, as it would on the disk).
        let mut newly: Vec<(&u64, &WriteRecord)> = recording
            .writes
            .iter()
            .filter(|(id, w)| !self.applied.contains(id) && Recording::is_durable(w, bound))
            .collect();
        newly.sort_by_key(|(_, w)| w.end);
        for (&id, write) in newly {
            Recording::apply(&mut self.durable, write)?;
            self.applied.insert(id);
        }
        let mut image = CrashImage {
            durable: &self.durable,
            overlay: std::collections::BTreeMap::new(),
            sector_bytes: self.device.sector_size_bytes().max(1) as usize,
            size_bytes: self.device.size_bytes(),
        };
        let stats = recording.apply_volatile(&mut image, at, bound, seed)?;
        Ok((image, stats))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemDevice;

    const SECTOR: usize = 512;

    fn recorder(size: usize) -> RecordingDevice<MemDevice> {
        RecordingDevice::new(MemDevice::zeroed(size)).unwrap()
    }

    #[test]
    fn flushed_writes_always_survive() {
        let dev = recorder(64 * 1024);
        dev.write_at(0, &[1u8; 4096]).unwrap();
        dev.write_at(8192, &[2u8; 4096]).unwrap();
        dev.flush().unwrap();
        let at = dev.mark();
        dev.write_at(16384, &[3u8; 4096]).unwrap();
        for seed in 0..64 {
            for point in [at, dev.mark()] {
                let (image, _) = dev.crash_image(point, seed).unwrap();
                assert!(image[..4096].iter().all(|&b| b == 1));
                assert!(image[8192..12288].iter().all(|&b| b == 2));
            }
        }
    }

    #[test]
    fn unflushed_writes_land_whole_torn_or_not_at_all_by_sector() {
        let dev = recorder(64 * 1024);
        dev.flush().unwrap();
        dev.write_at(4096, &[9u8; 8192]).unwrap();
        let (mut whole, mut torn, mut dropped) = (0, 0, 0);
        for seed in 0..200 {
            let (image, stats) = dev.crash_image(dev.mark(), seed).unwrap();
            assert_eq!(stats.volatile_writes, 1);
            let sectors: Vec<bool> = image[4096..12288]
                .chunks(SECTOR)
                .map(|s| {
                    // Each sector is atomic: all new or all old.
                    assert!(s.iter().all(|&b| b == 9) || s.iter().all(|&b| b == 0));
                    s[0] == 9
                })
                .collect();
            match sectors.iter().filter(|&&landed| landed).count() {
                0 => dropped += 1,
                16 => whole += 1,
                _ => torn += 1,
            }
        }
        assert!(
            whole > 20 && torn > 20 && dropped > 50,
            "{whole} {torn} {dropped}"
        );
    }

    #[test]
    fn images_are_deterministic_per_seed() {
        let dev = recorder(64 * 1024);
        for i in 0..10u8 {
            dev.write_at(u64::from(i) * 4096, &[i + 1; 4096]).unwrap();
        }
        let at = dev.mark();
        let a = dev.crash_image(at, 5).unwrap();
        let b = dev.crash_image(at, 5).unwrap();
        assert_eq!(a, b);
        let differs = (6..20).any(|seed| dev.crash_image(at, seed).unwrap().0 != a.0);
        assert!(differs);
    }

    #[test]
    fn a_write_in_flight_during_a_flush_is_not_covered_by_it() {
        let mut rec = Recording::new(vec![0; 1024]);
        let early = rec.write_begin(0, &[1; 512]).unwrap();
        rec.write_end(early);
        let late = rec.write_begin(512, &[2; 512]).unwrap();
        let flush = rec.flush_begin();
        rec.write_end(late); // completes while the flush runs
        rec.flush_end(flush);
        let bound = rec.durable_bound(rec.events());
        assert!(Recording::is_durable(&rec.writes[&early.0], bound));
        assert!(!Recording::is_durable(&rec.writes[&late.0], bound));
    }

    #[test]
    fn a_flush_that_has_not_completed_promises_nothing() {
        let mut rec = Recording::default();
        let w = rec.write_begin(0, &[1; 512]).unwrap();
        rec.write_end(w);
        let flush = rec.flush_begin();
        let before_end = rec.events();
        rec.flush_end(flush);
        assert!(!Recording::is_durable(
            &rec.writes[&w.0],
            rec.durable_bound(before_end)
        ));
        assert!(Recording::is_durable(
            &rec.writes[&w.0],
            rec.durable_bound(rec.events())
        ));
    }

    #[test]
    fn writes_begun_after_the_cut_never_appear() {
        let dev = recorder(16 * 1024);
        let at = dev.mark();
        dev.write_at(0, &[7u8; 4096]).unwrap();
        dev.flush().unwrap();
        for seed in 0..32 {
            let (image, stats) = dev.crash_image(at, seed).unwrap();
            assert_eq!(stats.volatile_writes, 0);
            assert!(image.iter().all(|&b| b == 0));
        }
    }

    #[test]
    fn incremental_crasher_matches_fresh_images() {
        let dev = recorder(64 * 1024);
        let mut points = Vec::new();
        let mut rng = Xoshiro256::new(11);
        for i in 0..40u64 {
            let offset = rng.below(15) * 4096;
            dev.write_at(offset, &[(i + 1) as u8; 4096]).unwrap();
            if rng.chance(1, 3) {
                dev.flush().unwrap();
            }
            points.push(dev.mark());
        }
        let mut crasher = dev.crasher();
        for (n, &at) in points.iter().enumerate() {
            let (image, stats) = crasher.crash(at, n as u64).unwrap();
            let incremental = (image.to_vec(), stats);
            assert_eq!(
                incremental,
                dev.crash_image(at, n as u64).unwrap(),
                "point {at}"
            );
        }
        assert_eq!(
            crasher.crash(0, 0).map(|(_, stats)| stats),
            Err(CrashError::PointBackwards {
                at: 0,
                previous: *points.last().unwrap()
            })
        );
        assert!(matches!(
            dev.crash_image(dev.mark() + 1, 0),
            Err(CrashError::PointOutOfRange { .. })
        ));
    }

    #[test]
    fn folding_keeps_later_crash_images_identical_and_frees_memory() {
        let folded = recorder(64 * 1024);
        let plain = recorder(64 * 1024);
        let mut rng = Xoshiro256::new(5);
        let mut fold_point = 0;
        for i in 0..60u64 {
            let offset = rng.below(15) * 4096;
            let flush = rng.chance(1, 3);
            for dev in [&folded, &plain] {
                dev.write_at(offset, &[(i + 1) as u8; 4096]).unwrap();
                if flush {
                    dev.flush().unwrap();
                }
            }
            if i == 40 {
                folded.fold().unwrap();
                fold_point = folded.mark();
            }
        }
        assert!(folded.recording.lock().live_bytes < plain.recording.lock().live_bytes);
        let end = folded.mark();
        assert_eq!(end, plain.mark());
        for seed in 0..10 {
            assert_eq!(
                folded.crash_image(end, seed).unwrap(),
                plain.crash_image(end, seed).unwrap()
            );
            assert_eq!(
                folded.crash_image(fold_point, seed).unwrap(),
                plain.crash_image(fold_point, seed).unwrap()
            );
        }
        assert!(matches!(
            folded.crash_image(fold_point - 1, 0),
            Err(CrashError::PointFolded { .. })
        ));
    }

    #[test]
    fn crash_image_reads_match_its_bytes_everywhere() {
        let dev = recorder(64 * 1024);
        let mut rng = Xoshiro256::new(9);
        for i in 0..30u64 {
            let offset = rng.below(60 * 1024);
            let len = 1 + rng.below(4096) as usize;
            dev.write_at(offset, &vec![(i + 1) as u8; len]).unwrap();
            if rng.chance(1, 4) {
                dev.flush().unwrap();
            }
        }
        // Unaligned and unflushed: lands partly, by sector.
        dev.write_at(1000, &[0xee; 3000]).unwrap();
        let mut crasher = dev.crasher();
        let (image, stats) = crasher.crash(dev.mark(), 3).unwrap();
        assert!(stats.volatile_writes > 0);
        let bytes = image.to_vec();
        for _ in 0..200 {
            let offset = rng.below(64 * 1024);
            let len = rng.below(64 * 1024 - offset + 1) as usize;
            let mut buf = vec![0u8; len];
            image.read_at(offset, &mut buf).unwrap();
            assert_eq!(buf, bytes[offset as usize..offset as usize + len]);
        }
        assert!(image.read_at(64 * 1024 - 1, &mut [0u8; 2]).is_err());
        assert!(image.write_at(0, &[1]).is_err());
    }

    #[test]
    fn pass_through_reaches_the_inner_device() {
        let dev = recorder(16 * 1024);
        dev.write_at(100, b"abc").unwrap();
        let mut back = [0u8; 3];
        dev.read_at(100, &mut back).unwrap();
        assert_eq!(&back, b"abc");
        assert_eq!(dev.inner().snapshot()[100..103], *b"abc");
        dev.flush().unwrap();
        assert_eq!(dev.counts(), (1, 1));
    }
}
