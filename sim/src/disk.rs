//! Simulated disks with a volatile write cache and real flush semantics.
//!
//! A write is *in flight* from submission to completion, then *cached*
//! (volatile) until a flush covers it. A flush covers exactly the writes
//! that had completed on its device when the flush was submitted; when it
//! completes successfully they become *durable*. A failed write, and a
//! cached write whose flush failed, stay *maybe*: after a power cut any of
//! their sectors may or may not be on the medium.
//!
//! A power cut keeps the durable sectors plus a seeded choice, per write
//! that is not durable, of nothing, everything, or a random subset of its
//! 512-byte sectors (a torn write), applied in submission order.
//!
//! A device that lies about flushes ([`Disks::lying_flush`]) answers every
//! flush with success and makes nothing durable.

use crate::rng::Rng;
use std::collections::HashMap;
use std::vec::Vec;

/// Sector size: the granularity of torn writes.
pub const SECTOR_BYTES: usize = 512;

/// Names a write or flush submitted to a [`Disks`].
pub type DiskIoId = u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteState {
    InFlight,
    Cached,
    /// Failed, or cached under a failed flush: any subset may have landed.
    Maybe,
}

#[derive(Clone, Debug)]
struct PendingWrite {
    id: DiskIoId,
    vdev: u32,
    offset_bytes: u64,
    data: Vec<u8>,
    state: WriteState,
}

/// Every simulated device's medium and cache.
#[derive(Debug, Default)]
pub struct Disks {
    /// Durable sectors: (vdev, sector index) → bytes.
    durable: HashMap<(u32, u64), [u8; SECTOR_BYTES]>,
    /// Writes not yet durable, in submission order.
    pending: Vec<PendingWrite>,
    /// In-flight flushes: id → (vdev, ids of the writes they cover).
    flushes: HashMap<DiskIoId, (u32, Vec<DiskIoId>)>,
    next_id: DiskIoId,
    /// The devices lie about flushes (a named fault).
    pub lying_flush: bool,
    /// Devices without a volatile write cache.
    pub no_write_cache: Vec<u32>,
    /// Bytes made durable.
    pub durable_bytes: u64,
}

impl Disks {
    /// Empty devices (every sector reads as zero).
    pub fn new() -> Self {
        Self::default()
    }

    /// Submit a write; it is in flight until [`Disks::write_done`].
    pub fn submit_write(&mut self, vdev: u32, offset_bytes: u64, data: Vec<u8>) -> DiskIoId {
        self.next_id += 1;
        let id = self.next_id;
        self.pending.push(PendingWrite {
            id,
            vdev,
            offset_bytes,
            data,
            state: WriteState::InFlight,
        });
        id
    }

    /// A write completed: cached on success, "maybe" on failure.
    pub fn write_done(&mut self, id: DiskIoId, ok: bool) {
        let Some(pos) = self.pending.iter().position(|w| w.id == id) else {
            return;
        };
        debug_assert_eq!(self.pending[pos].state, WriteState::InFlight);
        let vdev = self.pending[pos].vdev;
        if ok && self.no_write_cache.contains(&vdev) {
            // No volatile cache: a completed write is on the medium.
            let w = self.pending.remove(pos);
            self.make_durable(&w);
            return;
        }
        self.pending[pos].state = if ok {
            WriteState::Cached
        } else {
            WriteState::Maybe
        };
    }

    /// Whether `vdev` has no volatile write cache (its flushes answer "not
    /// supported", as a device without a cache does).
    pub fn has_no_write_cache(&self, vdev: u32) -> bool {
        self.no_write_cache.contains(&vdev)
    }

    /// Submit a flush of `vdev`: it covers the writes cached there now.
    pub fn submit_flush(&mut self, vdev: u32) -> DiskIoId {
        self.next_id += 1;
        let id = self.next_id;
        let covers = self
            .pending
            .iter()
            .filter(|w| w.vdev == vdev && w.state == WriteState::Cached)
            .map(|w| w.id)
            .collect();
        self.flushes.insert(id, (vdev, covers));
        id
    }

    /// A flush completed. Success makes what it covers durable (unless the
    /// device lies); failure leaves it "maybe".
    pub fn flush_done(&mut self, id: DiskIoId, ok: bool) {
        let Some((_, covers)) = self.flushes.remove(&id) else {
            return;
        };
        if self.lying_flush && ok {
            return;
        }
        for wid in covers {
            let Some(pos) = self.pending.iter().position(|w| w.id == wid) else {
                continue; // an earlier flush made it durable already
            };
            if ok {
                let w = self.pending.remove(pos);
                self.make_durable(&w);
            } else if self.pending[pos].state == WriteState::Cached {
                self.pending[pos].state = WriteState::Maybe;
            }
        }
    }

    fn make_durable(&mut self, w: &PendingWrite) {
        self.durable_bytes += w.data.len() as u64;
        write_sectors(&mut self.durable, w.vdev, w.offset_bytes, &w.data, |_| true);
    }

    /// Writes not yet durable (in flight, cached or maybe).
    pub fn unflushed(&self) -> usize {
        self.pending.len()
    }

    /// A power cut now: the durable sectors plus, per unflushed write, a
    /// seeded choice of none / all / a torn subset of its sectors. With
    /// `worst` every unflushed write is dropped (the harshest image).
    pub fn crash_image(&self, rng: Option<&mut Rng>) -> CrashImage<'_> {
        let mut overlay = HashMap::new();
        if let Some(rng) = rng {
            for w in &self.pending {
                match rng.below(3) {
                    0 => {}
                    1 => write_sectors(&mut overlay, w.vdev, w.offset_bytes, &w.data, |_| true),
                    _ => {
                        let mut r = rng.fork();
                        write_sectors(&mut overlay, w.vdev, w.offset_bytes, &w.data, |_| {
                            r.below(2) == 0
                        })
                    }
                }
            }
        }
        CrashImage {
            durable: &self.durable,
            overlay,
        }
    }
}

/// Write `data` at `offset_bytes` of `vdev` into a sector map, keeping the
/// sectors `keep` selects (by sector number within the write). Partial
/// sectors at either end merge with what the map holds.
fn write_sectors(
    map: &mut HashMap<(u32, u64), [u8; SECTOR_BYTES]>,
    vdev: u32,
    offset_bytes: u64,
    data: &[u8],
    mut keep: impl FnMut(u64) -> bool,
) {
    let mut pos = 0usize;
    let mut n = 0u64;
    while pos < data.len() {
        let abs = offset_bytes + pos as u64;
        let sector = abs / SECTOR_BYTES as u64;
        let in_sector = (abs % SECTOR_BYTES as u64) as usize;
        let len = (SECTOR_BYTES - in_sector).min(data.len() - pos);
        if keep(n) {
            let s = map.entry((vdev, sector)).or_insert([0; SECTOR_BYTES]);
            s[in_sector..in_sector + len].copy_from_slice(&data[pos..pos + len]);
        }
        pos += len;
        n += 1;
    }
}

/// What a reader finds after a power cut.
#[derive(Debug)]
pub struct CrashImage<'a> {
    durable: &'a HashMap<(u32, u64), [u8; SECTOR_BYTES]>,
    overlay: HashMap<(u32, u64), [u8; SECTOR_BYTES]>,
}

impl CrashImage<'_> {
    /// Put `data` at `offset_bytes` of `vdev` in this image only (a block
    /// a crafted pool holds there).
    pub fn plant(&mut self, vdev: u32, offset_bytes: u64, data: &[u8]) {
        write_sectors(&mut self.overlay, vdev, offset_bytes, data, |_| true);
    }

    /// Read `out.len()` bytes at `offset_bytes` of `vdev`.
    pub fn read(&self, vdev: u32, offset_bytes: u64, out: &mut [u8]) {
        let mut pos = 0usize;
        while pos < out.len() {
            let abs = offset_bytes + pos as u64;
            let sector = abs / SECTOR_BYTES as u64;
            let in_sector = (abs % SECTOR_BYTES as u64) as usize;
            let len = (SECTOR_BYTES - in_sector).min(out.len() - pos);
            let src = self
                .overlay
                .get(&(vdev, sector))
                .or_else(|| self.durable.get(&(vdev, sector)));
            match src {
                Some(s) => out[pos..pos + len].copy_from_slice(&s[in_sector..in_sector + len]),
                None => out[pos..pos + len].fill(0),
            }
            pos += len;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(img: &CrashImage<'_>, off: u64, n: usize) -> Vec<u8> {
        let mut v = vec![0; n];
        img.read(0, off, &mut v);
        v
    }

    #[test]
    fn flush_covers_only_writes_completed_before_it_was_submitted() {
        let mut d = Disks::new();
        let a = d.submit_write(0, 0, vec![1; 1024]);
        d.write_done(a, true);
        let f = d.submit_flush(0);
        let b = d.submit_write(0, 4096, vec![2; 512]);
        d.write_done(b, true);
        d.flush_done(f, true);
        let img = d.crash_image(None);
        assert_eq!(read(&img, 0, 1024), vec![1; 1024]);
        assert_eq!(
            read(&img, 4096, 512),
            vec![0; 512],
            "b completed after the flush was submitted"
        );
        assert_eq!(d.unflushed(), 1);
    }

    #[test]
    fn lying_flush_makes_nothing_durable_and_failed_flush_leaves_maybe() {
        let mut d = Disks::new();
        d.lying_flush = true;
        let a = d.submit_write(0, 0, vec![1; 512]);
        d.write_done(a, true);
        let f = d.submit_flush(0);
        d.flush_done(f, true);
        assert_eq!(read(&d.crash_image(None), 0, 512), vec![0; 512]);
        d.lying_flush = false;
        let f = d.submit_flush(0);
        d.flush_done(f, false);
        assert_eq!(d.unflushed(), 1);
    }

    #[test]
    fn crash_images_tear_at_sector_granularity() {
        let mut d = Disks::new();
        let a = d.submit_write(0, 0, vec![7; 8 * SECTOR_BYTES]);
        d.write_done(a, true);
        let mut rng = Rng::new(3);
        let mut torn = false;
        for _ in 0..64 {
            let img = d.crash_image(Some(&mut rng));
            let v = read(&img, 0, 8 * SECTOR_BYTES);
            for s in v.chunks(SECTOR_BYTES) {
                assert!(s.iter().all(|&b| b == s[0]), "a sector is all or nothing");
            }
            let sevens = v.chunks(SECTOR_BYTES).filter(|s| s[0] == 7).count();
            torn |= sevens > 0 && sevens < 8;
        }
        assert!(torn, "some image keeps part of the write");
    }
}
