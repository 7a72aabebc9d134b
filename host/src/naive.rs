//! The naive baseline for `rzil bench`: every committer does its own
//! `pwrite(record)` then `fdatasync`, on the same device and log region the
//! core uses. This is what an application without a group-commit log does,
//! and what rzil's lwb pipeline must beat by batching many commits into one
//! log block and one flush.
//!
//! The log region is split into one slice per committer; committer `i`
//! appends its records sequentially in slice `i` and wraps to the slice's
//! start. Each committer touches only its own slice and buffer, so the
//! per-slice lock is never contended; it exists so `NaiveLog` is `Sync`.

use std::fmt;
use std::ops::Range;

use parking_lot::Mutex;

use crate::backend::{self, CommitError, CountingDevice, DriveConfig, RecordId, SyncLog, Tick};
use crate::device::{AlignedBuf, BlockIo};

/// Largest record the naive baseline writes (the largest log block).
pub const NAIVE_RECORD_BYTES_MAX: usize = crate::ring::BLOCK_SIZE_BYTES_MAX as usize;

/// Each committer's slice starts on a multiple of this (a page on the
/// hosts we run on), so records whose size is a multiple of it are whole
/// pages. A slice that started mid-page made every record of that
/// committer straddle two pages: with buffered I/O, a read of each
/// uncached page before the write, which is not what a naive application
/// pays.
pub const NAIVE_SLICE_ALIGN_BYTES: u64 = 4096;

/// Why the naive baseline could not be set up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NaiveError {
    /// The region cannot give every committer room for one record.
    RegionTooSmall {
        region_bytes: u64,
        threads: usize,
        record_bytes: usize,
    },
    /// The record is larger than [`NAIVE_RECORD_BYTES_MAX`].
    RecordTooLarge { record_bytes: usize },
}

impl fmt::Display for NaiveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NaiveError::RegionTooSmall {
                region_bytes,
                threads,
                record_bytes,
            } => write!(
                f,
                "the {region_bytes}-byte log region cannot hold one {record_bytes}-byte record for each of {threads} threads; use a larger device"
            ),
            NaiveError::RecordTooLarge { record_bytes } => write!(
                f,
                "record of {record_bytes} bytes is over the limit of {NAIVE_RECORD_BYTES_MAX}"
            ),
        }
    }
}

impl std::error::Error for NaiveError {}

#[derive(Debug)]
struct Slice {
    start_bytes: u64,
    end_bytes: u64,
    state: Mutex<SliceState>,
}

#[derive(Debug)]
struct SliceState {
    cursor_bytes: u64,
    buf: AlignedBuf,
}

/// N independent `pwrite` + `fdatasync` committers.
#[derive(Debug)]
pub struct NaiveLog<'a, D: BlockIo> {
    dev: &'a D,
    slices: Vec<Slice>,
    write_align_bytes: usize,
    record_bytes_max: usize,
}

impl<'a, D: BlockIo> NaiveLog<'a, D> {
    /// Split `region` among `threads` committers writing records of up to
    /// `record_bytes_max`, each write rounded up to `write_align_bytes`
    /// (the O_DIRECT alignment, or 1 for buffered I/O).
    pub fn new(
        dev: &'a D,
        region: Range<u64>,
        threads: usize,
        record_bytes_max: usize,
        write_align_bytes: usize,
    ) -> Result<NaiveLog<'a, D>, NaiveError> {
        if record_bytes_max > NAIVE_RECORD_BYTES_MAX {
            return Err(NaiveError::RecordTooLarge {
                record_bytes: record_bytes_max,
            });
        }
        let align = write_align_bytes.max(1) as u64;
        let write_bytes_max = (record_bytes_max as u64).div_ceil(align) * align;
        let region_bytes = region.end.saturating_sub(region.start);
        let slice_align = align.max(NAIVE_SLICE_ALIGN_BYTES);
        let first_bytes = region.start.div_ceil(slice_align) * slice_align;
        let slice_bytes = (region.end.saturating_sub(first_bytes) / threads.max(1) as u64)
            / slice_align
            * slice_align;
        if threads == 0 || slice_bytes < write_bytes_max {
            return Err(NaiveError::RegionTooSmall {
                region_bytes,
                threads,
                record_bytes: record_bytes_max,
            });
        }
        let slices = (0..threads as u64)
            .map(|i| {
                let start_bytes = first_bytes + i * slice_bytes;
                Slice {
                    start_bytes,
                    end_bytes: start_bytes + slice_bytes,
                    state: Mutex::new(SliceState {
                        cursor_bytes: start_bytes,
                        buf: AlignedBuf::zeroed(write_bytes_max as usize),
                    }),
                }
            })
            .collect();
        Ok(NaiveLog {
            dev,
            slices,
            write_align_bytes: align as usize,
            record_bytes_max,
        })
    }
}

impl<D: BlockIo> SyncLog for NaiveLog<'_, D> {
    fn commit(&self, id: RecordId, record: &[u8]) -> Result<(), CommitError> {
        if record.len() > self.record_bytes_max {
            return Err(CommitError::RecordTooLarge {
                record_bytes: record.len(),
                max_bytes: self.record_bytes_max,
            });
        }
        let slice = &self.slices[id.committer as usize];
        let mut state = slice.state.lock();
        let write_bytes = record.len().div_ceil(self.write_align_bytes) * self.write_align_bytes;
        state.buf[..record.len()].copy_from_slice(record);
        if state.cursor_bytes + write_bytes as u64 > slice.end_bytes {
            state.cursor_bytes = slice.start_bytes;
        }
        let offset_bytes = state.cursor_bytes;
        self.dev.write_at(offset_bytes, &state.buf[..write_bytes])?;
        self.dev.flush()?;
        state.cursor_bytes += write_bytes as u64;
        Ok(())
    }
}

/// One naive measurement.
#[derive(Clone, Debug)]
pub struct NaiveReport {
    /// Committer threads.
    pub threads: usize,
    /// Bytes per record.
    pub record_bytes: usize,
    /// The workload's result.
    pub result: backend::DriveResult,
    /// Flushes the device saw.
    pub flushes: u64,
    /// Flushes the device saw, per successful commit.
    pub flushes_per_commit: f64,
}

/// Run the naive baseline on `dev` over `region`.
pub fn run_naive<D: BlockIo>(
    dev: &D,
    region: Range<u64>,
    config: DriveConfig,
    write_align_bytes: usize,
    on_tick: &mut dyn FnMut(Tick),
) -> Result<NaiveReport, Box<dyn std::error::Error + Send + Sync>> {
    let counting = CountingDevice::new(dev);
    let log = NaiveLog::new(
        &counting,
        region,
        config.threads,
        config.record_bytes,
        write_align_bytes,
    )?;
    let result = backend::drive(&log, config, &|_, _| {}, on_tick)?;
    let (_, flushes) = counting.counts();
    Ok(NaiveReport {
        threads: config.threads,
        record_bytes: config.record_bytes,
        flushes,
        flushes_per_commit: flushes as f64 / result.commits.max(1) as f64,
        result,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{check_pattern, fill_pattern};
    use crate::device::MemDevice;
    use std::time::Duration;

    #[test]
    fn each_committer_appends_in_its_own_slice_and_wraps() {
        let dev = CountingDevice::new(MemDevice::zeroed(64 * 1024));
        let log = NaiveLog::new(&dev, 16 * 1024..64 * 1024, 2, 4096, 4096).unwrap();
        let mut record = vec![0u8; 100];
        for seq in 0..7 {
            let id = RecordId { committer: 1, seq };
            fill_pattern(id.foid(), id.offset_bytes(100), &mut record);
            log.commit(id, &record).unwrap();
        }
        // Slice 1 is 40K..64K: six 4 KiB slots; the seventh record wrapped.
        let image = dev.inner().snapshot();
        let holds = |offset: usize, seq: u64| {
            let id = RecordId { committer: 1, seq };
            check_pattern(
                id.foid(),
                id.offset_bytes(100),
                &image[offset..offset + 100],
            )
        };
        assert!(holds(40 * 1024, 6));
        assert!(holds(44 * 1024, 1));
        assert!(holds(60 * 1024, 5));
        assert!(
            image[16 * 1024..40 * 1024].iter().all(|&b| b == 0),
            "slice 0 untouched"
        );
        assert_eq!(dev.counts(), (7, 7), "one write and one flush per commit");
    }

    #[test]
    fn too_small_regions_and_records_are_named_errors() {
        let dev = MemDevice::zeroed(64 * 1024);
        assert!(matches!(
            NaiveLog::new(&dev, 0..64 * 1024, 64, 4096, 4096),
            Err(NaiveError::RegionTooSmall { threads: 64, .. })
        ));
        assert!(matches!(
            NaiveLog::new(&dev, 0..64 * 1024, 1, NAIVE_RECORD_BYTES_MAX + 1, 1),
            Err(NaiveError::RecordTooLarge { .. })
        ));
        let log = NaiveLog::new(&dev, 0..64 * 1024, 1, 512, 1).unwrap();
        assert!(matches!(
            log.commit(
                RecordId {
                    committer: 0,
                    seq: 0
                },
                &[0; 600]
            ),
            Err(CommitError::RecordTooLarge { .. })
        ));
    }

    #[test]
    fn slices_start_on_pages_whatever_the_region() {
        // A region whose start is mid-page and whose per-thread share is
        // not a whole number of pages (the bench's 256 MiB device minus the
        // superblock, over 64 threads, left every other slice 2 KiB into a
        // page).
        let dev = MemDevice::zeroed(1024 * 1024);
        let region = 1000..1000 + 3 * 3 * 4096 + 2048;
        let log = NaiveLog::new(&dev, region.clone(), 3, 4096, 1).unwrap();
        let mut end = region.start;
        for slice in &log.slices {
            assert_eq!(slice.start_bytes % NAIVE_SLICE_ALIGN_BYTES, 0);
            assert!(slice.start_bytes >= end, "slices overlap");
            assert!(slice.end_bytes - slice.start_bytes >= 4096);
            end = slice.end_bytes;
        }
        assert!(end <= region.end);
        // A region too small for one aligned page per thread says so.
        assert!(matches!(
            NaiveLog::new(&dev, 1000..1000 + 2 * 4096, 2, 4096, 1),
            Err(NaiveError::RegionTooSmall { threads: 2, .. })
        ));
    }

    #[test]
    fn run_naive_reports_one_flush_per_commit() {
        let dev = MemDevice::zeroed(1024 * 1024);
        let config = DriveConfig {
            threads: 4,
            duration: Duration::from_millis(200),
            record_bytes: 4096,
        };
        let report = run_naive(&dev, 128 * 1024..1024 * 1024, config, 4096, &mut |_| {}).unwrap();
        assert!(report.result.commits > 0);
        assert_eq!(report.flushes_per_commit, 1.0);
        assert!(report.result.latency.quantile_ns(0.99) >= report.result.latency.quantile_ns(0.5));
    }
}
