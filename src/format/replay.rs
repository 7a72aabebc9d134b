//! Replay: hand every record after the last checkpoint, once and in order,
//! to a [`Replayer`] — OpenZFS's `zil_replay` / `zil_replay_log_record`.
//!
//! # Idempotence
//! A record is replayed only if its seq exceeds `zh_replay_seq` (and, for a
//! claimed chain, its txg is not below `zh_claim_txg`). The replayer's
//! contract is OpenZFS's: apply the record and make its seq the new
//! persistent replay seq *atomically* (OpenZFS does both in one txg through
//! `zl_replayed_seq`/`zh_replay_seq`). Then a crash anywhere during replay
//! leaves state = "records up to replay_seq applied", and a second replay
//! with the persisted replay_seq applies exactly the rest: the result equals
//! one uninterrupted replay.

use core::fmt;
use core::ops::ControlFlow;

use super::chain::{walk_chain, BlockInfo, BlockSource, ChainVisitor, WalkLimits, WalkSummary};
use super::consts::{TX_COMMIT, TX_MAX_TYPE};
use super::record::Record;
use super::types::ZilHeader;

/// The caller's side of replay.
pub trait Replayer {
    /// Why applying a record failed.
    type Error: fmt::Debug;

    /// Apply `record` and persist `record.info.common.seq` as the replay
    /// seq, atomically. Called once per record, in seq order.
    fn replay(&mut self, record: &Record<'_>) -> Result<(), Self::Error>;
}

/// Why replay stopped before the end of the chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplayFailure<R> {
    /// A record type outside `1..TX_MAX_TYPE` (OpenZFS: EINVAL).
    BadRecordType {
        /// The record's seq.
        seq: u64,
        /// Its txtype (TX_CI masked off).
        txtype: u64,
    },
    /// The replayer failed.
    Replayer {
        /// The record's seq.
        seq: u64,
        /// The replayer's error.
        error: R,
    },
}

/// What a replay did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplaySummary<E, R> {
    /// The walk (blocks, records, and how the chain ended).
    pub walk: WalkSummary<E>,
    /// Records handed to the replayer successfully.
    pub replayed: u64,
    /// Records skipped as already replayed or already committed.
    pub skipped: u64,
    /// Seq of the last record replayed successfully in this run.
    pub last_replayed_seq: Option<u64>,
    /// Set when replay stopped on a record.
    pub failure: Option<ReplayFailure<R>>,
}

struct ReplayVisitor<'r, R: Replayer> {
    replayer: &'r mut R,
    replay_seq: u64,
    claim_txg: u64,
    replayed: u64,
    skipped: u64,
    last: Option<u64>,
    failure: Option<ReplayFailure<R::Error>>,
}

impl<R: Replayer> ChainVisitor for ReplayVisitor<'_, R> {
    fn record(&mut self, _block: &BlockInfo, record: &Record<'_>) -> ControlFlow<()> {
        let c = record.info.common;
        if c.seq <= self.replay_seq || c.txg < self.claim_txg {
            self.skipped += 1;
            return ControlFlow::Continue(());
        }
        let txtype = c.record_type();
        if txtype == TX_COMMIT || txtype >= TX_MAX_TYPE {
            self.failure = Some(ReplayFailure::BadRecordType { seq: c.seq, txtype });
            return ControlFlow::Break(());
        }
        match self.replayer.replay(record) {
            Ok(()) => {
                self.replayed += 1;
                self.last = Some(c.seq);
                ControlFlow::Continue(())
            }
            Err(error) => {
                self.failure = Some(ReplayFailure::Replayer { seq: c.seq, error });
                ControlFlow::Break(())
            }
        }
    }
}

/// Replay the log `header` describes. `buf` holds one block at a time (at
/// least the largest block); `blocks_max` bounds the walk (see
/// [`super::chain::CHAIN_BLOCKS_MAX`]).
pub fn replay_log<S: BlockSource, R: Replayer>(
    source: &mut S,
    header: &ZilHeader,
    buf: &mut [u8],
    blocks_max: u64,
    replayer: &mut R,
) -> ReplaySummary<S::Error, R::Error> {
    let mut limits = WalkLimits::for_header(header);
    limits.blocks_max = blocks_max;
    let mut v = ReplayVisitor {
        replayer,
        replay_seq: header.replay_seq,
        claim_txg: header.claim_txg,
        replayed: 0,
        skipped: 0,
        last: None,
        failure: None,
    };
    let walk = walk_chain(source, &header.log, &limits, buf, &mut v);
    ReplaySummary {
        walk,
        replayed: v.replayed,
        skipped: v.skipped,
        last_replayed_seq: v.last,
        failure: v.failure,
    }
}
