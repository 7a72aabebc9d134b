//! The historic-bug corpus: each switch in the OpenZFS 2.2.0 model is
//! caught within its seed bound, with the failure OpenZFS saw; the model
//! with every switch off and the real core pass the same seeds.

use rzil_sim::{run, run_seed, BugName, Model, SimArgs};

/// Find the first failing seed of `bug` below `bound`; check the failure
/// names `symptom`; check the fixed model passes every seed up to it and
/// the real core passes the failing seed.
fn caught(bug: BugName, bound: u64, symptom: &str) -> u64 {
    let mut args = SimArgs::new(0..bound, Model::Ozfs220);
    args.bug = Some(bug);
    args.stop_at_first_failure = true;
    let rep = run(&args);
    let seed = rep
        .first_failing_seed
        .unwrap_or_else(|| panic!("#{} not caught within {bound} seeds", bug.name()));
    let f = rep.first_failure.clone().unwrap();
    assert!(f.contains(symptom), "#{}: {f}", bug.name());
    assert!(!rep.trace.is_empty(), "a failing seed comes with its trace");
    let fixed = run(&SimArgs::new(0..seed + 1, Model::Ozfs220));
    assert_eq!(fixed.failures, 0, "fixed model: {:?}", fixed.first_failure);
    let real = run_seed(&SimArgs::new(0..1, Model::Rzil), seed, false);
    assert_eq!(real.failure, None, "real core on seed {seed}");
    seed
}

#[test]
fn pr15233_child_zio_read_after_root_issue() {
    let seed = caught(
        BugName::Pr15233,
        100,
        "read lwb_t->lwb_child_zio of freed lwb_t",
    );
    // The trace reads like the 2023 kgdb session.
    let mut args = SimArgs::new(seed..seed + 1, Model::Ozfs220);
    args.bug = Some(BugName::Pr15233);
    let rep = run(&args);
    let t = rep.trace.join("\n");
    assert!(t.contains("zil_lwb_write_issue"), "{t}");
    assert!(t.contains("zio_nowait(lwb") && t.contains("root)"), "{t}");
    assert!(t.contains("freed (zil_free_lwb"), "{t}");
    assert!(t.contains("0xdeadc0dedeadc0de"), "{t}");
    assert!(t.contains("txg_sync_thread"), "{t}");
}

#[test]
fn pr14959_lwb_touched_after_flush_done_and_unlock() {
    caught(BugName::Pr14959, 100, "zil_free_lwb");
}

#[test]
fn pr14999_issued_txg_read_after_unlock() {
    caught(
        BugName::Pr14999,
        100,
        "read lwb_t->lwb_issued_txg of freed lwb_t",
    );
}

#[test]
fn pr15228_waiter_reads_state_of_freed_lwb() {
    caught(
        BugName::Pr15228,
        100,
        "in zil_commit_waiter() read lwb_t->lwb_state of freed",
    );
}

#[test]
#[cfg_attr(
    debug_assertions,
    ignore = "thousands of seeds: run in release by `make test-sim`"
)]
fn pr15278_flush_deferred_into_unissued_lwb() {
    caught(BugName::Pr15278, 5000, "avl_is_empty(&lwb->lwb_vdev_tree)");
}

#[test]
fn pr15132_records_of_block_without_next_pointer_lost() {
    caught(BugName::Pr15132, 100, "lost after power cut");
}

#[test]
fn pr16308_unchecked_record_length() {
    caught(BugName::Pr16308, 10, "out-of-bounds read");
}

#[test]
fn pr17521_open_lwb_not_written_on_suspend() {
    caught(
        BugName::Pr17521,
        400,
        "VERIFY(list_is_empty(&lwb->lwb_itxs))",
    );
}

#[test]
fn pr16333_ack_without_durable_write() {
    caught(BugName::Pr16333, 200, "lost after power cut");
}
