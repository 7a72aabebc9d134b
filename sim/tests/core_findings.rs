//! Bugs the simulator found in the core (`src/`). An open one is kept here
//! as a failing test, `#[ignore]`d so `make test` stays green (run with
//! `cargo test -p rzil-sim --test core_findings -- --ignored`); once fixed,
//! its test runs with the rest and guards the fix. None is open now.

use rzil::format::{self, Blkptr, BlockFormat, LrCommon, ZioCksum};
use rzil_sim::{run_seed, FaultSet, Model, SimArgs};

/// Fixed (liveness): a small itx pool used to leave every commit retrying
/// for good. A WR_NEED_COPY record that must be split needs one more itx
/// for its remainder; with the pool empty, `place` (src/zil.rs) gave up
/// and the round ended with the waiter unlinked, while the open tail kept
/// the itxs of the records already placed in it and nothing closed it
/// (seeds 998 and 2698 with a 12-itx pool). The core now closes a tail
/// holding records when a split finds the pool empty (its fill frees
/// them; the core's own test is `a_split_that_finds_the_itx_pool_empty_
/// closes_the_tail` in tests/lwb_pipeline.rs), and documents the least pool
/// that cannot deadlock, `rzil::limits::ITX_POOL_ITEMS_MIN`: more itxs
/// than the commit list can queue (`Config::commit_list_itxs_max`, which
/// a platform with a small pool lowers). Seed 593 had all 12 itxs queued
/// by its four committers, below that minimum, so the `itx-pool` fault now
/// gives the core a commit list one shorter than its pool.
///
/// This guard runs seeds under `itx-pool`: none may fail, and the pool
/// must run dry in some of them (the fault is not vacuous).
#[test]
fn commits_complete_when_the_itx_pool_runs_dry() {
    let mut args = SimArgs::new(0..1, Model::Rzil);
    args.faults = FaultSet::parse("default,itx-pool").unwrap();
    let mut dry = 0;
    for seed in 0..120 {
        let o = run_seed(&args, seed, true);
        assert_eq!(o.failure, None, "seed {seed}:\n{}", o.trace.join("\n"));
        let refusals = o
            .trace
            .iter()
            .filter_map(|l| l.split_once(" itx-pool refusals")?.0.rsplit(' ').next())
            .filter_map(|n| n.parse::<u64>().ok())
            .max()
            .unwrap_or(0);
        if refusals > 0 {
            dry += 1;
        }
    }
    assert!(dry >= 5, "the itx pool ran dry in {dry} of 120 seeds");
}

/// OpenZFS #15132 ("Replay blocks without next block pointer", 2.2.0):
/// when the next block cannot be allocated, the writer still stores the
/// next verifier (seq + 1) in the hole `zc_next_blk`, and
/// `zil_read_log_block` no longer rejects a hole next pointer (it keeps the
/// verifier comparison): the block's records are replayed and the chain
/// ends there. Before, the reader returned ECKSUM for `BP_IS_HOLE`.
/// `rzil::format::verify_block` rejected such a block with
/// `BlockError::NextIsHole`, so `rzil dump`, replay and the host's verify
/// dropped acknowledged records of a real OpenZFS chain that ends this way
/// — the pre-fix behaviour that the simulator's #15132 switch models.
/// Fixed in e8bb5e5 (a hole that carries the next verifier is accepted).
/// (rzil's own writer never writes a hole next pointer: it allocates the
/// successor's block at close.)
#[test]
fn a_block_without_next_pointer_is_replayed() {
    let verifier = ZioCksum::verifier(7, 8, 54, 1);
    let mut block = vec![0u8; 4096];
    let rec = LrCommon {
        txtype: format::TX_SETATTR,
        reclen: 64,
        txg: 5,
        seq: 1,
    };
    rec.encode(&mut block[format::ZIL_CHAIN_BYTES..]).unwrap();
    // What OpenZFS writes since #15132 when the next block could not be
    // allocated: a hole that still carries the next verifier.
    let mut next = Blkptr::HOLE;
    next.cksum = verifier.next_in_chain();
    format::seal_slim_block(&mut block, format::ZIL_CHAIN_BYTES + 64, &next, &verifier).unwrap();
    let vb = format::verify_block(&block, &verifier, BlockFormat::Slim)
        .expect("a block with a hole next pointer carries valid records");
    assert!(vb.next().is_hole());
    assert_eq!(vb.records().count(), 1);
}

/// Found by the audit that followed the interleaving work, then made
/// visible here: `durable_lr_seq` (`zl_commit_lr_seq`) counted the records
/// of an lwb that had deferred its flushes into the next one (#15278), so
/// it named records still in a volatile cache, and a checkpoint at it freed
/// their blocks. Fixed in ac264d0; its core test is
/// `durable_lr_seq_waits_for_the_flush_an_lwb_deferred`. The oracle now
/// checks every record at or below the core's `durable_lr_seq` in every
/// crash image: with the fix reverted, 384 of seeds 0..1000 fail (the
/// first, seed 3: "record 59 (lr_seq 65) is at or below the core's
/// durable_lr_seq 67 but lost after power cut").
#[test]
fn durable_lr_seq_names_only_durable_records() {
    let args = SimArgs::new(0..1, Model::Rzil);
    for seed in 0..40 {
        let o = run_seed(&args, seed, true);
        assert_eq!(o.failure, None, "seed {seed}:\n{}", o.trace.join("\n"));
    }
}
