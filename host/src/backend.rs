//! The seam between the `rzil` workloads and whatever makes commits
//! durable: the core pipeline on the host platform, or the naive baseline.
//!
//! A backend implements [`SyncLog`] (commit one record, return once it is
//! durable). [`drive`] runs N committer threads against any `SyncLog` for a
//! fixed time and measures commits/s and latency; [`CountingDevice`] counts
//! the writes and flushes underneath so `flushes_per_commit` comes from the
//! device, not from the backend's own claims.
//!
//! Records are self-describing ([`RecordId`], [`fill_pattern`]): object,
//! offset and data derive from (committer, sequence), so a replayed record
//! can be checked for identity and integrity without keeping a copy of what
//! was written.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::device::{BlockIo, DeviceError};
use crate::histogram::Histogram;

/// How often the driver's monitor wakes to report progress and check time.
pub const DRIVE_TICK: Duration = Duration::from_millis(100);
/// With commits in progress, this long without one completing is a stall:
/// the driver aborts the log rather than hang.
pub const DRIVE_STALL: Duration = Duration::from_secs(20);

/// Smallest record a workload commits.
pub const RECORD_BYTES_MIN: usize = 16;

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
    /// Make record `id` with data `data` durable and return only once it
    /// is (or has failed). `id.committer` is the calling thread's index in
    /// `0..threads`; a backend may keep per-committer state, touched only
    /// by that committer.
    fn commit(&self, id: RecordId, data: &[u8]) -> Result<(), CommitError>;

    /// No commit has completed for [`DRIVE_STALL`]: stop, making every
    /// commit in progress or to come fail with a reason naming `reason`.
    /// A backend that cannot stall need not do anything.
    fn abort(&self, reason: &str) {
        let _ = reason;
    }
}

/// Object id of committer 0's file; committer `i` writes object
/// `FOID_BASE + i`, so replayed TX_WRITE records name their committer.
pub const FOID_BASE: u64 = 1 << 20;

/// Names one committed record: committer `committer`'s `seq`-th commit,
/// which writes `record_bytes` at offset `seq * record_bytes` of object
/// `FOID_BASE + committer`. The data is [`fill_pattern`] of that range, so
/// a replayed record can be checked for identity and integrity from its
/// (object, offset, data) alone, however a backend split it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId {
    /// Index of the committer thread.
    pub committer: u32,
    /// That committer's sequence number, from 0.
    pub seq: u64,
}

impl RecordId {
    /// The object this committer writes.
    pub fn foid(&self) -> u64 {
        FOID_BASE + u64::from(self.committer)
    }

    /// Where in the object this record's data goes.
    pub fn offset_bytes(&self, record_bytes: usize) -> u64 {
        self.seq * record_bytes as u64
    }

    /// The record at `offset_bytes` of object `foid`, if that is one of
    /// ours and on a record boundary.
    pub fn at(foid: u64, offset_bytes: u64, record_bytes: usize) -> Option<RecordId> {
        let committer = u32::try_from(foid.checked_sub(FOID_BASE)?).ok()?;
        let record_bytes = record_bytes as u64;
        (record_bytes > 0 && offset_bytes % record_bytes == 0).then_some(RecordId {
            committer,
            seq: offset_bytes / record_bytes,
        })
    }
}

/// Odd multiplier of [`pattern_word`] (a bijection on `u64`): 2^64 / phi.
const PATTERN_MUL: u64 = 0x9e37_79b9_7f4a_7c15;

/// Word `word_index` (8-byte units) of object `foid`'s data. Cheap (one
/// multiply, one shift) because every committer of `rzil bench` fills a
/// record per commit and the harness must not be what is measured; distinct
/// for every (object, word) with fewer than 2^40 words per object: the key
/// is a bijection of `foid.rotate_left(40) ^ word_index`, and a
/// multiplication by an odd constant and `x ^ (x >> 29)` are bijections.
/// So a record misplaced onto another object's or offset's place reads back
/// as different data.
#[inline]
fn pattern_word(foid: u64, word_index: u64) -> u64 {
    let x = (foid.rotate_left(40) ^ word_index).wrapping_mul(PATTERN_MUL);
    x ^ (x >> 29)
}

/// Call `f(chunk_start_in_out, pattern_bytes)` for each 8-byte-aligned
/// word of object `foid` overlapping `[offset_bytes, offset_bytes + len)`,
/// with the pattern bytes clipped to that range: one hash per word.
fn for_each_pattern_chunk(
    foid: u64,
    offset_bytes: u64,
    len: usize,
    mut f: impl FnMut(usize, &[u8]),
) {
    let mut pos = 0usize;
    while pos < len {
        let at = offset_bytes + pos as u64;
        let in_word = (at % 8) as usize;
        let take = (8 - in_word).min(len - pos);
        let word = pattern_word(foid, at / 8).to_le_bytes();
        f(pos, &word[in_word..in_word + take]);
        pos += take;
    }
}

/// Fill `out` with the data of object `foid` at `offset_bytes`: a pure
/// function of (object, byte offset), so any sub-range checks on its own.
pub fn fill_pattern(foid: u64, offset_bytes: u64, out: &mut [u8]) {
    if offset_bytes % 8 == 0 {
        // The usual case (records start on word boundaries): whole words,
        // which the compiler unrolls; a ragged end goes the general way.
        let first_word = offset_bytes / 8;
        let done = out.len() / 8 * 8;
        let mut words = out.chunks_exact_mut(8);
        for (i, word) in (&mut words).enumerate() {
            word.copy_from_slice(&pattern_word(foid, first_word + i as u64).to_le_bytes());
        }
        let rest = words.into_remainder();
        let rest_at = offset_bytes + done as u64;
        for_each_pattern_chunk(foid, rest_at, rest.len(), |pos, bytes| {
            rest[pos..pos + bytes.len()].copy_from_slice(bytes);
        });
        return;
    }
    let len = out.len();
    for_each_pattern_chunk(foid, offset_bytes, len, |pos, bytes| {
        out[pos..pos + bytes.len()].copy_from_slice(bytes);
    });
}

/// Whether `data` is object `foid`'s data at `offset_bytes`.
pub fn check_pattern(foid: u64, offset_bytes: u64, data: &[u8]) -> bool {
    let mut same = true;
    for_each_pattern_chunk(foid, offset_bytes, data.len(), |pos, bytes| {
        same &= data[pos..pos + bytes.len()] == *bytes;
    });
    same
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
    /// Bytes per record (at least [`RECORD_BYTES_MIN`]).
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

impl Default for DriveResult {
    /// Nothing measured yet: the identity of [`DriveResult::merge`].
    fn default() -> Self {
        DriveResult {
            commits: 0,
            elapsed: Duration::ZERO,
            latency: Histogram::new(),
        }
    }
}

impl DriveResult {
    /// Add another measurement of the same workload (a later slice).
    pub fn merge(&mut self, other: &DriveResult) {
        self.commits += other.commits;
        self.elapsed += other.elapsed;
        self.latency.merge(&other.latency);
    }

    /// Successful commits per second.
    pub fn commits_per_s(&self) -> f64 {
        self.commits as f64 / self.elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// Run `config.threads` committers against `log` for `config.duration`.
/// Committer `i` commits `RecordId { committer: i, seq: 0, 1, ... }`;
/// `on_ack(committer, seq)` runs right after each successful commit returns
/// (the crash checker takes its crash-point mark there). The first error
/// stops every committer and is returned.
pub fn drive(
    log: &dyn SyncLog,
    config: DriveConfig,
    on_ack: &(dyn Fn(usize, u64) + Sync),
    on_tick: &mut dyn FnMut(Tick),
) -> Result<DriveResult, CommitError> {
    drive_with(log, config, DRIVE_STALL, &|| false, on_ack, on_tick)
}

/// [`drive`] with the stall bound given (tests use a short one) and an
/// early stop: the run ends before `config.duration` once `should_stop`
/// (asked every tick) says so, e.g. when a recorder nears its bound.
pub fn drive_with(
    log: &dyn SyncLog,
    config: DriveConfig,
    stall: Duration,
    should_stop: &dyn Fn() -> bool,
    on_ack: &(dyn Fn(usize, u64) + Sync),
    on_tick: &mut dyn FnMut(Tick),
) -> Result<DriveResult, CommitError> {
    assert!(
        config.record_bytes >= RECORD_BYTES_MIN,
        "record below the minimum"
    );
    let stop = AtomicBool::new(false);
    let commits = AtomicU64::new(0);
    let running = AtomicU64::new(config.threads as u64);
    let start = Instant::now();
    let results: Vec<Result<Histogram, CommitError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..config.threads)
            .map(|committer| {
                let (stop, commits, running) = (&stop, &commits, &running);
                scope.spawn(move || -> Result<Histogram, CommitError> {
                    /// Counts this committer out however it returns.
                    struct Exit<'a>(&'a AtomicU64);
                    impl Drop for Exit<'_> {
                        fn drop(&mut self) {
                            self.0.fetch_sub(1, Ordering::Release);
                        }
                    }
                    let _exit = Exit(running);
                    let mut latency = Histogram::new();
                    let mut record = vec![0u8; config.record_bytes];
                    let mut seq = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let id = RecordId {
                            committer: committer as u32,
                            seq,
                        };
                        fill_pattern(id.foid(), id.offset_bytes(config.record_bytes), &mut record);
                        let began = Instant::now();
                        if let Err(error) = log.commit(id, &record) {
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
        // Watch until every committer is out: report progress while the
        // run lasts, and abort the log if commits stop completing (a stalled
        // pipeline must end the run with a reason, not hang it).
        let mut last_commits = 0;
        let mut last_progress = Instant::now();
        let mut aborted = false;
        while running.load(Ordering::Acquire) > 0 {
            let elapsed = start.elapsed();
            let stopping =
                elapsed >= config.duration || stop.load(Ordering::Relaxed) || should_stop();
            if stopping {
                stop.store(true, Ordering::Relaxed);
                std::thread::sleep(DRIVE_TICK / 10);
            } else {
                std::thread::sleep(DRIVE_TICK.min(config.duration - elapsed));
                on_tick(Tick {
                    commits: commits.load(Ordering::Relaxed),
                    elapsed: start.elapsed(),
                });
            }
            let now_commits = commits.load(Ordering::Relaxed);
            if now_commits != last_commits {
                (last_commits, last_progress) = (now_commits, Instant::now());
            } else if !aborted && last_progress.elapsed() >= stall {
                log.abort(&format!(
                    "no commit completed for {:.1} s with {} committers waiting",
                    stall.as_secs_f64(),
                    running.load(Ordering::Acquire)
                ));
                aborted = true;
                stop.store(true, Ordering::Relaxed);
            }
        }
        // A last tick at the end, so progress displays can finish.
        on_tick(Tick {
            commits: commits.load(Ordering::Relaxed),
            elapsed: start.elapsed(),
        });
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
    fn patterns_check_any_subrange_and_tell_objects_apart() {
        let mut buf = vec![0u8; 4096];
        fill_pattern(FOID_BASE + 3, 77 * 4096, &mut buf);
        assert!(check_pattern(FOID_BASE + 3, 77 * 4096, &buf));
        assert!(check_pattern(FOID_BASE + 3, 77 * 4096 + 13, &buf[13..1000]));
        let mut damaged = buf.clone();
        damaged[2000] ^= 1;
        assert!(!check_pattern(FOID_BASE + 3, 77 * 4096, &damaged));
        assert!(!check_pattern(FOID_BASE + 4, 77 * 4096, &buf));
        assert!(!check_pattern(FOID_BASE + 3, 78 * 4096, &buf));
    }

    #[test]
    fn the_word_fill_matches_the_bytewise_pattern_at_any_offset_and_length() {
        for offset in [0u64, 8, 13, 4096, 4099] {
            for len in [0usize, 1, 7, 8, 9, 100, 4096, 4101] {
                let mut buf = vec![0xa5u8; len];
                fill_pattern(FOID_BASE + 9, offset, &mut buf);
                assert!(check_pattern(FOID_BASE + 9, offset, &buf), "{offset} {len}");
                if len > 0 {
                    // Every byte matters: the last one too (ragged ends).
                    buf[len - 1] ^= 0x80;
                    assert!(
                        !check_pattern(FOID_BASE + 9, offset, &buf),
                        "{offset} {len}"
                    );
                }
            }
        }
    }

    #[test]
    fn pattern_words_differ_across_objects_and_offsets() {
        let mut seen = std::collections::HashSet::new();
        for foid in FOID_BASE..FOID_BASE + 64 {
            for word in 0..2048u64 {
                assert!(seen.insert(pattern_word(foid, word)), "{foid} {word}");
            }
        }
    }

    #[test]
    fn record_ids_round_trip_through_object_and_offset() {
        let id = RecordId {
            committer: 5,
            seq: 9,
        };
        assert_eq!(
            RecordId::at(id.foid(), id.offset_bytes(4096), 4096),
            Some(id)
        );
        assert_eq!(RecordId::at(id.foid(), 100, 4096), None);
        assert_eq!(RecordId::at(7, 0, 4096), None);
    }

    /// Commits to memory and remembers what it was given.
    struct MemLog {
        seen: Mutex<Vec<RecordId>>,
        fail_after: Option<usize>,
        record_bytes: usize,
    }

    impl SyncLog for MemLog {
        fn commit(&self, id: RecordId, data: &[u8]) -> Result<(), CommitError> {
            let mut seen = self.seen.lock();
            if self.fail_after.is_some_and(|n| seen.len() >= n) {
                return Err(CommitError::Refused("test failure".into()));
            }
            assert!(check_pattern(
                id.foid(),
                id.offset_bytes(self.record_bytes),
                data
            ));
            seen.push(id);
            Ok(())
        }
    }

    #[test]
    fn drive_commits_in_per_committer_order_and_counts() {
        let log = MemLog {
            seen: Mutex::new(Vec::new()),
            fail_after: None,
            record_bytes: 64,
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
            // Each committer's records arrive in its own order, from 0 (a
            // thread starved by a loaded machine may have none).
            assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
        }
        assert!(!seen.is_empty());
    }

    #[test]
    fn drive_stops_at_the_first_error() {
        let log = MemLog {
            seen: Mutex::new(Vec::new()),
            fail_after: Some(100),
            record_bytes: 32,
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

    /// Never completes a commit until aborted.
    struct StuckLog {
        aborted: Mutex<Option<String>>,
        cv: parking_lot::Condvar,
    }

    impl SyncLog for StuckLog {
        fn commit(&self, _id: RecordId, _data: &[u8]) -> Result<(), CommitError> {
            let mut aborted = self.aborted.lock();
            while aborted.is_none() {
                self.cv.wait(&mut aborted);
            }
            Err(CommitError::Refused(aborted.clone().unwrap_or_default()))
        }

        fn abort(&self, reason: &str) {
            *self.aborted.lock() = Some(reason.to_owned());
            self.cv.notify_all();
        }
    }

    #[test]
    fn a_stalled_log_is_aborted_not_waited_for_forever() {
        let log = StuckLog {
            aborted: Mutex::new(None),
            cv: parking_lot::Condvar::new(),
        };
        let config = DriveConfig {
            threads: 3,
            duration: Duration::from_millis(100),
            record_bytes: 32,
        };
        let began = Instant::now();
        let error = drive_with(
            &log,
            config,
            Duration::from_millis(300),
            &|| false,
            &|_, _| {},
            &mut |_| {},
        )
        .unwrap_err();
        assert!(error.to_string().contains("no commit completed"), "{error}");
        assert!(began.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn drive_ends_early_when_asked() {
        let log = MemLog {
            seen: Mutex::new(Vec::new()),
            fail_after: None,
            record_bytes: 32,
        };
        let config = DriveConfig {
            threads: 2,
            duration: Duration::from_secs(30),
            record_bytes: 32,
        };
        let began = Instant::now();
        let result = drive_with(
            &log,
            config,
            DRIVE_STALL,
            &|| began.elapsed() > Duration::from_millis(200),
            &|_, _| {},
            &mut |_| {},
        )
        .unwrap();
        assert!(result.commits > 0);
        assert!(began.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn drive_results_merge_slices() {
        let mut total = DriveResult::default();
        for (commits, ms) in [(10u64, 100u64), (30, 300)] {
            let mut latency = Histogram::new();
            for _ in 0..commits {
                latency.record(ms * 1000);
            }
            total.merge(&DriveResult {
                commits,
                elapsed: Duration::from_millis(ms),
                latency,
            });
        }
        assert_eq!(total.commits, 40);
        assert_eq!(total.elapsed, Duration::from_millis(400));
        assert!((total.commits_per_s() - 100.0).abs() < 1e-9);
        assert_eq!(total.latency.count(), 40);
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
