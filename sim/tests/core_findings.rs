//! Bugs the simulator found in the core (`src/`). An open one is kept here
//! as a failing test, `#[ignore]`d so `make test` stays green (run with
//! `cargo test -p rzil-sim --test core_findings -- --ignored`); once fixed,
//! its test runs with the rest and guards the fix. None is open now.

use rzil::format::{self, Blkptr, BlockFormat, LrCommon, ZioCksum};

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
