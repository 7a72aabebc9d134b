//! The seam between the `rzil` workloads and whatever makes commits
//! durable: the core pipeline on the host platform, or the naive baseline.
//!
//! A backend implements [`SyncLog`] (commit one record, return once it is
//! durable). [`drive`] runs N committer threads against any `SyncLog` for a
//! fixed time and measures commits/s and latency; [`CountingDevice`] counts
//! the writes and flushes underneath so `flushes_per_commit` comes from the
//! device, not from the backend's own claims.
//!
//! Records are self-describing ([`RecordPayload`]): committer, sequence and a
//! body derived from both, so a replayed record can be checked for identity
//! and integrity without keeping a copy of what was written.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::device::{BlockIo, DeviceError};
use crate::histogram::Histogram;
use crate::rng::SplitMix64;

/// How often the driver's monitor wakes to report progress and check time.
pub const DRIVE_TICK: Duration = Duration::from_millis(100);

/// Bytes of the header in front of every record body.
pub const RECORD_HEADER_BYTES: usize = 16;

/// Why a commit failed.
#[derive(Debug)]
pub enum CommitError {
    /// The device failed a write or flush.
    Device(DeviceError),
    /// The record does not fit the backend's limits.
    RecordTooLarge {
        record_bytes: usize,
        max_bytes: usize,
    },
    /// The backend refused (a named reason from the core).
    Refused(String),
}

impl fmt::Display for CommitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommitError::Device(error) => write!(f, "commit failed: {error}"),
            CommitError::RecordTooLarge {
                record_bytes,
                max_bytes,
            } => write!(
                f,
                "record of {record_bytes} bytes is over this backend's limit of {max_bytes}"
            ),
            CommitError::Refused(reason) => write!(f, "commit refused: {reason}"),
        }
    }
}

impl std::error::Error for CommitError {}

impl From<DeviceError> for CommitError {
    fn from(error: DeviceError) -> Self {
        CommitError::Device(error)
    }
}

/// A log that makes records durable.
pub trait SyncLog: Sync {
    /// Make `record` durable and return only once it is (or has failed).
    /// `committer` is the calling thread's index in `0..threads`; a backend
    /// may keep per-committer state, touched only by that committer.
    fn commit(&self, committer: usize, record: &[u8]) -> Result<(), CommitError>;
}

/// The self-describing record the workloads commit: a 16-byte header
/// (committer as u32, record length as u32, sequence as u64, little-endian)
/// and a body that is a pure function of (committer, sequence).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordPayload {
    /// Index of the committer thread.
    pub committer: u32,
    /// That committer's sequence number, from 0.
    pub seq: u64,
}

impl RecordPayload {
    /// Fill `buf` (at least [`RECORD_HEADER_BYTES`] long) with this record.
    pub fn fill(&self, buf: &mut [u8]) {
        assert!(
            buf.len() >= RECORD_HEADER_BYTES,
            "record shorter than its header"
        );
        buf[0..4].copy_from_slice(&self.committer.to_le_bytes());
        let len = buf.len() as u32;
        buf[4..8].copy_from_slice(&len.to_le_bytes());
        buf[8..16].copy_from_slice(&self.seq.to_le_bytes());
        let mut rng = SplitMix64::new(self.body_seed());
        for chunk in buf[RECORD_HEADER_BYTES..].chunks_mut(8) {
            let word = rng.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }

    fn body_seed(&self) -> u64 {
        (u64::from(self.committer) << 48) ^ self.seq.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    /// Decode and check a replayed record: `None` if the header is
    /// inconsistent or the body is not the one its header implies.
    pub fn check(buf: &[u8]) -> Option<RecordPayload> {
        if buf.len() < RECORD_HEADER_BYTES {
            return None;
        }
        let committer = u32::from_le_bytes(buf[0..4].try_into().ok()?);
        let len = u32::from_le_bytes(buf[4..8].try_into().ok()?) as usize;
        let seq = u64::from_le_bytes(buf[8..16].try_into().ok()?);
        if len != buf.len() {
            return None;
        }
        let record = RecordPayload { committer, seq };
        let mut expected = vec![0u8; len];
        record.fill(&mut expected);
        (expected == buf).then_some(record)
    }
}

/// Counts writes and flushes passing through to `inner`.
#[derive(Debug)]
pub struct CountingDevice<D: BlockIo> {
    inner: D,
    writes: AtomicU64,
    flushes: AtomicU64,
}

impl<D: BlockIo> CountingDevice<D> {
    /// Wrap `inner` with zeroed counters.
    pub fn new(inner: D) -> CountingDevice<D> {
        CountingDevice {
            inner,
            writes: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
        }
    }

    /// (writes, flushes) so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.writes.load(Ordering::Relaxed),
            self.flushes.load(Ordering::Relaxed),
        )
    }

    /// The wrapped device.
    pub fn inner(&self) -> &D {
        &self.inner
    }
}

impl<D: BlockIo> BlockIo for CountingDevice<D> {
    fn size_bytes(&self) -> u64 {
        self.inner.size_bytes()
    }

    fn sector_size_bytes(&self) -> u32 {
        self.inner.sector_size_bytes()
    }

    fn write_at(&self, offset_bytes: u64, buf: &[u8]) -> Result<(), DeviceError> {
        self.writes.fetch_add(1, Ordering::Relaxed);
        self.inner.write_at(offset_bytes, buf)
    }

    fn read_at(&self, offset_bytes: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
        self.inner.read_at(offset_bytes, buf)
    }

    fn flush(&self) -> Result<(), DeviceError> {
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.inner.flush()
    }
}

/// A timed committer workload.
#[derive(Clone, Copy, Debug)]
pub struct DriveConfig {
    /// Committer threads.
    pub threads: usize,
    /// How long to commit for.
    pub duration: Duration,
    /// Bytes per record (at least [`RECORD_HEADER_BYTES`]).
    pub record_bytes: usize,
}

/// Progress, as the monitor sees it every [`DRIVE_TICK`].
#[derive(Clone, Copy, Debug)]
pub struct Tick {
    /// Commits completed so far.
    pub commits: u64,
    /// Time since the start.
    pub elapsed: Duration,
}

/// What a workload measured.
#[derive(Clone, Debug)]
pub struct DriveResult {
    /// Commits that returned success.
    pub commits: u64,
    /// From start until the last committer stopped.
    pub elapsed: Duration,
    /// Commit latency (call to return), successful commits only.
    pub latency: Histogram,
}

impl DriveResult {
    /// Successful commits per second.
    pub fn commits_per_s(&self) -> f64 {
        self.commits as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// Run `config.threads` committers against `log` for `config.duration`.
/// Committer `i` commits `RecordPayload { committer: i, seq: 0, 1, ... }`;
/// `on_ack(committer, seq)` runs right after each successful commit returns
/// (the crash checker takes its crash-point mark there). The first error
/// stops every committer and is returned.
pub fn drive(
    log: &dyn SyncLog,
    config: DriveConfig,
    on_ack: &(dyn Fn(usize, u64) + Sync),
    on_tick: &mut dyn FnMut(Tick),
) -> Result<DriveResult, CommitError> {
    assert!(
        config.record_bytes >= RECORD_HEADER_BYTES,
        "record shorter than its header"
    );
    let stop = AtomicBool::new(false);
    let commits = AtomicU64::new(0);
    let start = Instant::now();
    let results: Vec<Result<Histogram, CommitError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..config.threads)
            .map(|committer| {
                let (stop, commits) = (&stop, &commits);
                scope.spawn(move || -> Result<Histogram, CommitError> {
                    let mut latency = Histogram::new();
                    let mut record = vec![0u8; config.record_bytes];
                    let mut seq = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        RecordPayload {
                            committer: committer as u32,
                            seq,
                        }
                        .fill(&mut record);
                        let began = Instant::now();
                        if let Err(error) = log.commit(committer, &record) {
                            stop.store(true, Ordering::Relaxed);
                            return Err(error);
                        }
                        latency.record(began.elapsed().as_nanos() as u64);
                        on_ack(committer, seq);
                        commits.fetch_add(1, Ordering::Relaxed);
                        seq += 1;
                    }
                    Ok(latency)
                })
            })
            .collect();
        loop {
            let elapsed = start.elapsed();
            if elapsed >= config.duration || stop.load(Ordering::Relaxed) {
                stop.store(true, Ordering::Relaxed);
                break;
            }
            std::thread::sleep(DRIVE_TICK.min(config.duration - elapsed));
            on_tick(Tick {
                commits: commits.load(Ordering::Relaxed),
                elapsed: start.elapsed(),
            });
        }
        handles
            .into_iter()
            .map(|handle| match handle.join() {
                Ok(result) => result,
                // A committer panicked: re-raise it here, it is a bug.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    let elapsed = start.elapsed();
    let mut latency = Histogram::new();
    for result in results {
        latency.merge(&result?);
    }
    Ok(DriveResult {
        commits: latency.count(),
        elapsed,
        latency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::MemDevice;
    use parking_lot::Mutex;

    #[test]
    fn payloads_round_trip_and_detect_damage() {
        let mut buf = vec![0u8; 4096];
        let record = RecordPayload {
            committer: 3,
            seq: 77,
        };
        record.fill(&mut buf);
        assert_eq!(RecordPayload::check(&buf), Some(record));
        let mut damaged = buf.clone();
        damaged[2000] ^= 1;
        assert_eq!(RecordPayload::check(&damaged), None);
        assert_eq!(RecordPayload::check(&buf[..4000]), None);
        let mut other = vec![0u8; 4096];
        RecordPayload {
            committer: 3,
            seq: 78,
        }
        .fill(&mut other);
        assert_ne!(other[RECORD_HEADER_BYTES..], buf[RECORD_HEADER_BYTES..]);
    }

    /// Commits to memory and remembers what it was given.
    struct MemLog {
        seen: Mutex<Vec<RecordPayload>>,
        fail_after: Option<usize>,
    }

    impl SyncLog for MemLog {
        fn commit(&self, _committer: usize, record: &[u8]) -> Result<(), CommitError> {
            let mut seen = self.seen.lock();
            if self.fail_after.is_some_and(|n| seen.len() >= n) {
                return Err(CommitError::Refused("test failure".into()));
            }
            seen.push(RecordPayload::check(record).expect("driver sent a bad record"));
            Ok(())
        }
    }

    #[test]
    fn drive_commits_in_per_committer_order_and_counts() {
        let log = MemLog {
            seen: Mutex::new(Vec::new()),
            fail_after: None,
        };
        let acks = Mutex::new(Vec::new());
        let mut ticks = 0;
        let config = DriveConfig {
            threads: 4,
            duration: Duration::from_millis(250),
            record_bytes: 64,
        };
        let result = drive(
            &log,
            config,
            &|committer, seq| acks.lock().push((committer, seq)),
            &mut |_| ticks += 1,
        )
        .unwrap();
        let seen = log.seen.lock();
        assert_eq!(result.commits as usize, seen.len());
        assert_eq!(acks.lock().len(), seen.len());
        assert!(ticks >= 2);
        assert!(result.elapsed >= config.duration);
        for committer in 0..4u32 {
            let seqs: Vec<u64> = seen
                .iter()
                .filter(|r| r.committer == committer)
                .map(|r| r.seq)
                .collect();
            assert!(!seqs.is_empty());
            assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
        }
    }

    #[test]
    fn drive_stops_at_the_first_error() {
        let log = MemLog {
            seen: Mutex::new(Vec::new()),
            fail_after: Some(100),
        };
        let config = DriveConfig {
            threads: 3,
            duration: Duration::from_secs(30),
            record_bytes: 32,
        };
        let began = Instant::now();
        let error = drive(&log, config, &|_, _| {}, &mut |_| {}).unwrap_err();
        assert!(matches!(error, CommitError::Refused(_)));
        assert!(began.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn counting_device_counts() {
        let dev = CountingDevice::new(MemDevice::zeroed(8192));
        dev.write_at(0, &[1; 10]).unwrap();
        dev.write_at(10, &[1; 10]).unwrap();
        dev.flush().unwrap();
        assert_eq!(dev.counts(), (2, 1));
    }
}
