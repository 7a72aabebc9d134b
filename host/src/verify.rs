//! Replay of a host log, and the crash oracle behind `rzil run` and
//! `rzil verify`.
//!
//! While a workload runs, the [`Ledger`] learns two things: from the
//! platform's block observer, which record (object, offset, length) went
//! into which record seq; from the committers, the crash point right after
//! each commit returned (its acknowledgement). For a crash image at point
//! `p`, [`Ledger::check_image`] then reads the superblock on the image,
//! replays the chain from its head exactly as recovery would, and checks
//! that every record acknowledged before `p` is either covered by the
//! image's checkpoint (seq ≤ the superblock's checkpoint seq) or replayed,
//! intact and in order; and that nothing replayed was never written.

use std::collections::BTreeMap;
use std::fmt;

use parking_lot::Mutex;
use rzil::format::{
    self, infer_block, replay_log, verify_block, Blkptr, BlockSource, Replayer, ZilHeader, ZioCksum,
};

use crate::backend::{check_pattern, RecordId};
use crate::crashdev::CrashPoint;
use crate::device::BlockIo;
use crate::platform::HOST_VDEV;
use crate::ring::BLOCK_SIZE_BYTES_MIN;
use crate::superblock::{self, Probe, Superblock};

/// Reads log blocks from a device for the chain walk.
pub struct DeviceSource<'a> {
    dev: &'a dyn BlockIo,
}

impl fmt::Debug for DeviceSource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceSource")
            .field("size_bytes", &self.dev.size_bytes())
            .finish()
    }
}

impl<'a> DeviceSource<'a> {
    /// Blocks come from `dev`.
    pub fn new(dev: &'a dyn BlockIo) -> DeviceSource<'a> {
        DeviceSource { dev }
    }
}

impl BlockSource for DeviceSource<'_> {
    type Error = String;

    fn read_block(&mut self, bp: &Blkptr, buf: &mut [u8]) -> Result<(), String> {
        if bp.vdev() != HOST_VDEV {
            return Err(format!(
                "block on vdev {}, the host log has only vdev {HOST_VDEV}",
                bp.vdev()
            ));
        }
        self.dev
            .read_at(bp.offset_bytes(), buf)
            .map_err(|e| e.to_string())
    }
}

/// The `zil_header_t` our superblock stands for: the chain head, and the
/// checkpoint seq as `zh_replay_seq`. `None` when the log is empty or the
/// head cannot be a block pointer.
pub fn header_of(superblock: &Superblock) -> Option<ZilHeader> {
    let head = superblock.chain_head?;
    let log = Blkptr::try_log_block(
        HOST_VDEV,
        head.offset_bytes,
        u32::try_from(head.size_bytes).ok()?,
        ZioCksum {
            word: superblock.chain_verifier,
        },
        superblock.chain_txg,
    )
    .ok()?;
    Some(ZilHeader {
        claim_txg: 0,
        replay_seq: superblock.checkpoint_lr_seq,
        log,
        claim_blk_seq: 0,
        flags: 0,
        claim_lr_seq: 0,
        pad: [0; 3],
    })
}

/// Most blocks a walk of a log region can read: one per smallest block.
pub fn blocks_max(superblock: &Superblock) -> u64 {
    (superblock.log_end_bytes - superblock.log_start_bytes) / BLOCK_SIZE_BYTES_MIN
}

/// One TX_WRITE piece as replayed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayedPiece {
    /// Record seq.
    pub lr_seq: u64,
    /// Data length.
    pub length: u64,
    /// Whether the data matched the object's pattern.
    pub intact: bool,
}

/// What replaying a log found.
#[derive(Debug, Default)]
pub struct Replayed {
    /// Write pieces by (object, offset).
    pub pieces: BTreeMap<(u64, u64), ReplayedPiece>,
    /// Records that are not inline TX_WRITEs of the workload's shape.
    pub other_records: u64,
    /// Replayed pieces whose offset went backwards within their object.
    pub out_of_order: u64,
    /// Blocks read by the walk.
    pub blocks: u64,
    /// Records skipped as already covered by the checkpoint.
    pub skipped: u64,
    /// Highest record seq replayed.
    pub last_lr_seq: Option<u64>,
    /// How the chain ended, as a stable name.
    pub chain_end: &'static str,
    /// Set when the walk stopped at a block it could not read (an I/O
    /// error, a pointer off the device), not at one that was read and
    /// failed verification: the chain may go on past it, so this is not
    /// its end (OpenZFS's log chain check fails the import on such an
    /// error too, rather than truncating the log).
    pub unreadable: Option<String>,
}

struct Collector<'a> {
    replayed: &'a mut Replayed,
    last_offset: BTreeMap<u64, u64>,
}

impl Replayer for Collector<'_> {
    type Error = ();

    fn replay(&mut self, record: &format::Record<'_>) -> Result<(), ()> {
        let (Some(write), Some(data)) = (record.info.write, record.inline_data()) else {
            self.replayed.other_records += 1;
            return Ok(());
        };
        let previous = self.last_offset.insert(write.foid, write.offset);
        if previous.is_some_and(|prev| prev >= write.offset) {
            self.replayed.out_of_order += 1;
        }
        self.replayed.pieces.insert(
            (write.foid, write.offset),
            ReplayedPiece {
                lr_seq: record.info.common.seq,
                length: write.length,
                intact: check_pattern(write.foid, write.offset, data),
            },
        );
        Ok(())
    }
}

/// Replay the log `superblock` describes from `dev` (as recovery does):
/// every record after the checkpoint seq, in order.
pub fn replay(dev: &dyn BlockIo, superblock: &Superblock) -> Replayed {
    let mut replayed = Replayed {
        chain_end: "empty-log",
        ..Replayed::default()
    };
    let Some(header) = header_of(superblock) else {
        return replayed;
    };
    // Aligned: recovery reads an O_DIRECT device through it (a Vec's
    // buffer made every such read fail as misaligned).
    let mut buf = crate::device::AlignedBuf::zeroed(format::ZIL_MAX_BLKSZ);
    let mut source = DeviceSource::new(dev);
    let summary = {
        let mut collector = Collector {
            replayed: &mut replayed,
            last_offset: BTreeMap::new(),
        };
        replay_log(
            &mut source,
            &header,
            &mut buf,
            blocks_max(superblock),
            &mut collector,
        )
    };
    replayed.blocks = summary.walk.blocks_read;
    replayed.skipped = summary.skipped;
    replayed.last_lr_seq = summary.last_replayed_seq;
    replayed.chain_end = summary.walk.end.name();
    if let format::ChainEnd::ReadFailed { blk_seq, error } = &summary.walk.end {
        replayed.unreadable = Some(format!("log block seq {blk_seq}: {error}"));
    }
    replayed
}

/// The result of checking one crash image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Acknowledged records that had to survive this crash.
    pub acked_checked: u64,
    /// Of those, how many were neither covered by the checkpoint nor
    /// replayed intact.
    pub acked_lost: u64,
    /// Replayed pieces whose data was damaged.
    pub corrupt: u64,
    /// Replayed pieces that no written block ever carried.
    pub phantom: u64,
    /// Replayed pieces out of commit order within their object.
    pub out_of_order: u64,
    /// Records replayed.
    pub replayed: u64,
    /// The superblock on the image was unreadable (one line), if it was.
    pub superblock_error: Option<String>,
    /// How the replayed chain ended.
    pub chain_end: &'static str,
    /// A few lost records, for the report.
    pub lost_examples: Vec<RecordId>,
}

impl Verdict {
    /// Whether the crash state lost or damaged nothing.
    pub fn ok(&self) -> bool {
        self.acked_lost == 0
            && self.corrupt == 0
            && self.phantom == 0
            && self.out_of_order == 0
            && self.superblock_error.is_none()
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} acked checked, {} lost, {} corrupt, {} phantom, {} out of order, {} replayed, chain end {}",
            self.acked_checked,
            self.acked_lost,
            self.corrupt,
            self.phantom,
            self.out_of_order,
            self.replayed,
            self.chain_end
        )?;
        if let Some(error) = &self.superblock_error {
            write!(f, ", superblock: {error}")?;
        }
        Ok(())
    }
}

/// Lost records named in a verdict, at most.
const LOST_EXAMPLES_MAX: usize = 5;

/// Written pieces keyed by (object, offset): (length, record seq).
type WrittenPieces = BTreeMap<(u64, u64), (u64, u64)>;

/// What the workload told the oracle. See the module documentation.
#[derive(Debug)]
pub struct Ledger {
    record_bytes: usize,
    written: Mutex<WrittenPieces>,
    acked: Mutex<Vec<(RecordId, CrashPoint)>>,
    bad_blocks: Mutex<u64>,
}

impl Ledger {
    /// An empty ledger for records of `record_bytes`.
    pub fn new(record_bytes: usize) -> Ledger {
        Ledger {
            record_bytes,
            written: Mutex::new(BTreeMap::new()),
            acked: Mutex::new(Vec::new()),
            bad_blocks: Mutex::new(0),
        }
    }

    /// The block observer: learn which records a written block carries.
    /// A block the writer produced that does not verify is counted (it can
    /// only be a bug).
    pub fn observe_block(&self, _lwb_seq: u64, block: &[u8]) {
        let verified = infer_block(block)
            .and_then(|(format, verifier)| verify_block(block, &verifier, format).ok());
        let Some(verified) = verified else {
            *self.bad_blocks.lock() += 1;
            return;
        };
        let mut written = self.written.lock();
        for record in verified.records() {
            let Ok(record) = record else {
                *self.bad_blocks.lock() += 1;
                return;
            };
            if let Some(write) = record.info.write {
                written.insert(
                    (write.foid, write.offset),
                    (write.length, record.info.common.seq),
                );
            }
        }
    }

    /// Record that `id` was acknowledged at crash point `at`.
    pub fn ack(&self, id: RecordId, at: CrashPoint) {
        self.acked.lock().push((id, at));
    }

    /// Acknowledged records so far.
    pub fn acked(&self) -> usize {
        self.acked.lock().len()
    }

    /// Written blocks that did not verify.
    pub fn bad_blocks(&self) -> u64 {
        *self.bad_blocks.lock()
    }

    /// Forget records settled for good: acknowledged, and every piece at or
    /// below `checkpoint_lr_seq`, a checkpoint already durable, so every
    /// later crash image covers them.
    pub fn prune_through(&self, checkpoint_lr_seq: u64) {
        let mut written = self.written.lock();
        let mut acked = self.acked.lock();
        let record_bytes = self.record_bytes;
        acked.retain(|(id, _)| {
            let (foid, start) = (id.foid(), id.offset_bytes(record_bytes));
            let end = start + record_bytes as u64;
            let pieces: Vec<_> = written
                .range((foid, start)..(foid, end))
                .map(|(&key, &(_, seq))| (key, seq))
                .collect();
            let settled =
                !pieces.is_empty() && pieces.iter().all(|&(_, seq)| seq <= checkpoint_lr_seq);
            if settled {
                for (key, _) in pieces {
                    written.remove(&key);
                }
            }
            !settled
        });
    }

    /// Check one crash image (a device after the power cut) taken at `at`.
    pub fn check_image(&self, dev: &dyn BlockIo, at: CrashPoint) -> Verdict {
        let superblock = match superblock::probe(dev) {
            Ok(Probe::Ours { superblock, .. }) => superblock,
            Ok(other) => {
                return Verdict {
                    superblock_error: Some(format!("no rzil superblock ({other:?})")),
                    ..Verdict::default()
                }
            }
            Err(error) => {
                return Verdict {
                    superblock_error: Some(error.to_string()),
                    ..Verdict::default()
                }
            }
        };
        let replayed = replay(dev, &superblock);
        let written = self.written.lock();
        let mut verdict = Verdict {
            replayed: replayed.pieces.len() as u64 + replayed.other_records,
            out_of_order: replayed.out_of_order,
            chain_end: replayed.chain_end,
            phantom: replayed.other_records,
            ..Verdict::default()
        };
        for (key, piece) in &replayed.pieces {
            if !piece.intact {
                verdict.corrupt += 1;
            }
            if written.get(key) != Some(&(piece.length, piece.lr_seq)) {
                verdict.phantom += 1;
            }
        }
        let checkpoint = superblock.checkpoint_lr_seq;
        let record_bytes = self.record_bytes as u64;
        for &(id, ack_at) in self.acked.lock().iter() {
            if ack_at > at {
                continue;
            }
            verdict.acked_checked += 1;
            let (foid, start) = (id.foid(), id.offset_bytes(self.record_bytes));
            let end = start + record_bytes;
            // The pieces the record was written as must tile its range, and
            // each must be covered or replayed.
            let mut next = start;
            let mut survived = true;
            for (&(_, offset), &(length, lr_seq)) in written.range((foid, start)..(foid, end)) {
                if offset != next {
                    break;
                }
                next = offset + length;
                let replayed_ok = replayed
                    .pieces
                    .get(&(foid, offset))
                    .is_some_and(|p| p.intact && p.lr_seq == lr_seq && p.length == length);
                survived &= lr_seq <= checkpoint || replayed_ok;
            }
            if next != end || !survived {
                verdict.acked_lost += 1;
                if verdict.lost_examples.len() < LOST_EXAMPLES_MAX {
                    verdict.lost_examples.push(id);
                }
            }
        }
        verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{drive, CommitError, DriveConfig, SyncLog};
    use crate::crashdev::RecordingDevice;
    use crate::device::{DeviceError, MemDevice};
    use crate::platform::{with_host_log, HostOptions};
    use crate::rng::Xoshiro256;
    use crate::superblock::format as format_device;
    use std::time::Duration;

    const DEVICE_BYTES: usize = 8 * 1024 * 1024;
    const RECORD_BYTES: usize = 512;

    fn formatted() -> (MemDevice, Superblock, usize) {
        formatted_with(DEVICE_BYTES)
    }

    fn formatted_with(device_bytes: usize) -> (MemDevice, Superblock, usize) {
        let dev = MemDevice::zeroed(device_bytes);
        let mut sb = Superblock::fresh(device_bytes as u64, [1, 2, 54, 1]).unwrap();
        let slot = format_device(&dev, &mut sb).unwrap();
        (dev, sb, slot)
    }

    /// Run the real core on a recording device and check `crashes` crash
    /// states spread over the run. `lie` makes the log acknowledge a
    /// commit without waiting for it (a #16333-style bug) to prove the
    /// oracle catches loss.
    fn crash_run(crashes: u64, seed: u64, lie: bool) -> (Vec<Verdict>, u64) {
        let (dev, sb, slot) = formatted();
        let recorder = RecordingDevice::new(dev).unwrap();
        let ledger = Ledger::new(RECORD_BYTES);
        let observe = |seq: u64, block: &[u8]| ledger.observe_block(seq, block);
        let config = DriveConfig {
            threads: 3,
            duration: Duration::from_millis(300),
            record_bytes: RECORD_BYTES,
        };
        let ((), _) = with_host_log(
            &recorder,
            sb,
            slot,
            HostOptions::for_direct(false, 0),
            Some(&observe),
            |log| {
                struct Liar<'l, L: SyncLog>(&'l L, bool);
                impl<L: SyncLog> SyncLog for Liar<'_, L> {
                    fn commit(&self, id: RecordId, data: &[u8]) -> Result<(), CommitError> {
                        if self.1 && id.seq % 4 == 3 {
                            // Acknowledge without committing at all.
                            return Ok(());
                        }
                        self.0.commit(id, data)
                    }
                }
                drive(
                    &Liar(log, lie),
                    config,
                    &|committer, seq| {
                        ledger.ack(
                            RecordId {
                                committer: committer as u32,
                                seq,
                            },
                            recorder.mark(),
                        )
                    },
                    &mut |_| {},
                )
                .unwrap();
            },
        )
        .unwrap();
        assert_eq!(ledger.bad_blocks(), 0);
        let end = recorder.mark();
        let mut rng = Xoshiro256::new(seed);
        let mut points: Vec<CrashPoint> = (0..crashes)
            .map(|_| rng.below(end as u64 + 1) as CrashPoint)
            .collect();
        points.sort_unstable();
        let mut crasher = recorder.crasher();
        let verdicts = points
            .iter()
            .enumerate()
            .map(|(i, &at)| {
                let (image, _) = crasher.crash(at, seed ^ i as u64).unwrap();
                ledger.check_image(&image, at)
            })
            .collect();
        (verdicts, ledger.acked() as u64)
    }

    #[test]
    fn the_core_loses_nothing_acknowledged_across_crash_points() {
        let (verdicts, acked) = crash_run(40, 7, false);
        assert!(acked > 20, "workload too small: {acked} acks");
        let checked: u64 = verdicts.iter().map(|v| v.acked_checked).sum();
        let replayed: u64 = verdicts.iter().map(|v| v.replayed).sum();
        assert!(checked > 0 && replayed > 0, "{verdicts:?}");
        for verdict in &verdicts {
            assert!(verdict.ok(), "{verdict}");
        }
    }

    #[test]
    fn the_oracle_catches_acknowledgements_that_were_never_made_durable() {
        let (verdicts, _) = crash_run(10, 3, true);
        let lost: u64 = verdicts.iter().map(|v| v.acked_lost).sum();
        assert!(lost > 0, "lying log went unnoticed: {verdicts:?}");
    }

    #[test]
    fn full_replay_finds_every_record_and_a_damaged_block_loses_them() {
        // Large enough that the ring cannot wrap over the first blocks in
        // 100 ms, so the whole chain from the first head is still there.
        let (dev, sb, slot) = formatted_with(64 * 1024 * 1024);
        let ledger = Ledger::new(RECORD_BYTES);
        let observe = |seq: u64, block: &[u8]| ledger.observe_block(seq, block);
        let config = DriveConfig {
            threads: 2,
            duration: Duration::from_millis(100),
            record_bytes: RECORD_BYTES,
        };
        // Inside the run: the first persisted head, and the image once the
        // committers stopped (before the clean close).
        let (first, image) = with_host_log(
            &dev,
            sb,
            slot,
            HostOptions::for_direct(false, 0),
            Some(&observe),
            |log| {
                let Ok(Probe::Ours {
                    superblock: first, ..
                }) = superblock::probe(&dev)
                else {
                    panic!("no superblock at start");
                };
                drive(
                    log,
                    config,
                    &|c, s| {
                        ledger.ack(
                            RecordId {
                                committer: c as u32,
                                seq: s,
                            },
                            0,
                        )
                    },
                    &mut |_| {},
                )
                .unwrap();
                // Let the last flushes land.
                std::thread::sleep(Duration::from_millis(50));
                (first, dev.snapshot())
            },
        )
        .unwrap()
        .0;
        // Point the superblock back at the very first block with nothing
        // checkpointed: recovery must replay every acknowledged record.
        let with_first_head = |image: Vec<u8>| {
            let d = MemDevice::from_image(image);
            let mut sb = first;
            sb.checkpoint_lr_seq = 0;
            crate::superblock::format(&d, &mut sb).unwrap();
            d
        };
        let verdict = ledger.check_image(&with_first_head(image.clone()), 0);
        assert!(verdict.ok(), "{verdict}");
        assert_eq!(verdict.acked_checked, ledger.acked() as u64);
        assert!(
            verdict.replayed >= verdict.acked_checked && verdict.replayed > 0,
            "{verdict}"
        );
        // Damage one byte of record data in the first block: its checksum
        // fails, the chain ends there, and the acknowledged records are lost.
        let head = first.chain_head.expect("head");
        let mut damaged = image;
        damaged[head.offset_bytes as usize + 184 + 192 + 10] ^= 0xff;
        let verdict = ledger.check_image(&with_first_head(damaged), 0);
        assert!(verdict.acked_lost > 0, "{verdict}");
        assert_eq!(verdict.chain_end, "block-rejected");
    }

    /// A disk that starts failing mid-run: once `ok_writes` writes have
    /// completed, every write reports EIO, though its bytes still reach the
    /// device (a failed write may have landed, whole or torn; the crash
    /// images decide), and so does every flush after it.
    struct FailingWrites<'a> {
        inner: &'a dyn BlockIo,
        ok_writes: std::sync::atomic::AtomicU64,
        failed: std::sync::atomic::AtomicBool,
    }

    impl FailingWrites<'_> {
        fn eio(op: &'static str) -> DeviceError {
            DeviceError::Io {
                path: "failing".into(),
                op,
                source: std::io::Error::from_raw_os_error(libc::EIO),
            }
        }
    }

    impl BlockIo for FailingWrites<'_> {
        fn size_bytes(&self) -> u64 {
            self.inner.size_bytes()
        }
        fn sector_size_bytes(&self) -> u32 {
            self.inner.sector_size_bytes()
        }
        fn write_at(&self, offset_bytes: u64, buf: &[u8]) -> Result<(), DeviceError> {
            use std::sync::atomic::Ordering;
            self.inner.write_at(offset_bytes, buf)?;
            let left = self.ok_writes.load(Ordering::Relaxed);
            if left == 0 || self.failed.load(Ordering::Relaxed) {
                self.failed.store(true, Ordering::Relaxed);
                return Err(Self::eio("pwrite"));
            }
            self.ok_writes.store(left - 1, Ordering::Relaxed);
            Ok(())
        }
        fn read_at(&self, offset_bytes: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
            self.inner.read_at(offset_bytes, buf)
        }
        fn flush(&self) -> Result<(), DeviceError> {
            if self.failed.load(std::sync::atomic::Ordering::Relaxed) {
                return Err(Self::eio("fdatasync"));
            }
            self.inner.flush()
        }
    }

    #[test]
    fn failed_writes_fail_the_commits_and_every_ack_is_durable() {
        let (dev, sb, slot) = formatted();
        let recorder = RecordingDevice::new(dev).unwrap();
        let failing = FailingWrites {
            inner: &recorder,
            // The first superblock update, then some commits' worth.
            ok_writes: std::sync::atomic::AtomicU64::new(60),
            failed: std::sync::atomic::AtomicBool::new(false),
        };
        let ledger = Ledger::new(RECORD_BYTES);
        let observe = |seq: u64, block: &[u8]| ledger.observe_block(seq, block);
        let config = DriveConfig {
            threads: 4,
            duration: Duration::from_secs(10),
            record_bytes: RECORD_BYTES,
        };
        let began = std::time::Instant::now();
        let (result, end) = with_host_log(
            &failing,
            sb,
            slot,
            HostOptions::for_direct(false, 0),
            Some(&observe),
            |log| {
                drive(
                    log,
                    config,
                    &|c, s| {
                        ledger.ack(
                            RecordId {
                                committer: c as u32,
                                seq: s,
                            },
                            recorder.mark(),
                        )
                    },
                    &mut |_| {},
                )
            },
        )
        .unwrap();
        let error = result.expect_err("commits kept succeeding on a failing disk");
        assert!(error.to_string().contains("pwrite failed"), "{error}");
        // It stopped at the failure, not at the end of the 10 s run, and
        // the close says it could not checkpoint.
        assert!(began.elapsed() < Duration::from_secs(5));
        assert!(end.failure.is_some(), "{end:?}");
        assert!(ledger.acked() > 0, "no commit before the failure");
        // Every acknowledged record survives every power cut after the
        // failure, whichever failed writes landed. (Records of a failed
        // write that landed may replay: the ledger only learns blocks
        // whose writes succeeded, so they count as phantom here, and a
        // commit that failed may still replay, as in OpenZFS.)
        let at = recorder.mark();
        let mut crasher = recorder.crasher();
        for seed in 0..16 {
            let (image, _) = crasher.crash(at, seed).unwrap();
            let verdict = ledger.check_image(&image, at);
            assert!(verdict.superblock_error.is_none(), "{verdict}");
            assert_eq!(verdict.acked_lost, 0, "{verdict}");
            assert_eq!(verdict.corrupt, 0, "{verdict}");
            assert_eq!(verdict.out_of_order, 0, "{verdict}");
            assert!(verdict.acked_checked > 0, "{verdict}");
        }
    }

    #[test]
    fn replay_of_an_empty_log_is_empty() {
        let (dev, sb, _) = formatted();
        let replayed = replay(&dev, &sb);
        assert_eq!(replayed.chain_end, "empty-log");
        assert!(replayed.pieces.is_empty());
    }
}
