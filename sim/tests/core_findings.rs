//! Bugs the simulator found in the core (`src/`). An open one is kept here
//! as a failing test, `#[ignore]`d so `make test` stays green (run with
//! `cargo test -p rzil-sim --test core_findings -- --ignored`); once fixed,
//! its test runs with the rest and guards the fix. One is open: a commit
//! that never completes once a small itx pool is used up.

use rzil::format::{self, Blkptr, BlockFormat, LrCommon, ZioCksum};
use rzil_sim::{run_seed, FaultSet, Model, SimArgs};

/// Open (liveness): with a small itx pool (the `itx-pool` fault, 12
/// objects) every commit can end up retrying for good. When the record at
/// the head of the commit list is a WR_NEED_COPY write that must be split,
/// `place` (src/zil.rs) needs one more itx for the remainder; with the pool
/// empty it returns `Err(itx)`, and `commit_round` puts the record back,
/// calls `retry_unlinked` and ends the round with the waiter unlinked.
/// Every itx is held by records on the commit list or placed in the open
/// tail, and only the core frees them: the tail's are dropped by the fill
/// after a close, which comes from a record that does not fit (the split
/// was tried instead), `link_and_decide`'s fast close (never reached: the
/// round ends first) or `timeout_close` of a waiter linked to the tail
/// (none is: every waiter is unlinked). So each retry meets the same empty
/// pool: the final drain reports "a commit never completed (hang)".
///
/// Seed 998: the tail (lwb 4, 8 KiB, OPENED) holds records, the rest of
/// the 12 itxs are queued, four waiters unlinked. Closing a tail that has
/// records when the split cannot get an itx (as when the piece is below
/// `LWB_SPLIT_MIN_BYTES`) would free the tail's itxs after its fill.
/// Seed 593: the tail is NEW and all 12 itxs are queued: no close frees
/// anything; only a pool larger than what can be queued (the commit list
/// plus a tail's records) avoids it. The host's pool
/// (`ITX_POOL_OBJECTS_MAX` = `COMMIT_LIST_ITXS_MAX` + 4 × `LWB_ITXS_MAX`)
/// is that large and the kernel's itx zone is unbounded, so no shipped
/// platform is affected; the core documents no minimum itx pool (as
/// `LOG_SPACE_MIN_BYTES` is for log space). If the resolution is such a
/// documented minimum, the `itx-pool` fault's pool size goes with it and
/// these seeds with it.
#[test]
#[ignore = "open: a commit retries for good once a small itx pool is used up"]
fn a_commit_completes_when_a_split_finds_the_itx_pool_empty() {
    let mut args = SimArgs::new(0..1, Model::Rzil);
    args.faults = FaultSet::parse("default,itx-pool").unwrap();
    for seed in [998, 593] {
        let o = run_seed(&args, seed, true);
        assert_eq!(o.failure, None, "seed {seed}:\n{}", o.trace.join("\n"));
    }
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
