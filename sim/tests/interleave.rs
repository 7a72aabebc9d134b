//! Interleaving inside core calls: committers and completions park where
//! the core holds no lock, other actors run meanwhile, and a seed still
//! replays exactly.

use rzil_sim::{run, run_seed, Model, SimArgs};

/// Seeds on which the simulator found, by itself, the bug fixed in 1e82925
/// (`retry_unlinked`): with the old `leave_unlinked` (back-pressure in a
/// later round of a commit marked its already-linked waiter Unlinked),
/// seeds 0..2000 fail at 76 (step 59: "committer-1 acknowledged records
/// 1..=7, but record 6 (Copied, 4717 bytes) acknowledged but only 0 bytes
/// of it were ever submitted for writing"), 409 (step 197: an acknowledged
/// record lost after a power cut), 1064 (step 85, as 76) and 1842 (step
/// 704, as 409). Each needs a commit parked inside its fill while another
/// committer assigns, and a small lwb pool. With each: the step just past
/// the failure.
const RETRY_UNLINKED_SEEDS: [(u64, u32); 4] = [(76, 60), (409, 198), (1064, 86), (1842, 705)];

#[test]
fn the_seeds_that_found_the_relinked_waiter_pass_on_the_fixed_core() {
    for (seed, steps) in RETRY_UNLINKED_SEEDS {
        // The full run, and one cut just past the step where the old core
        // failed (the same schedule up to there, then the drain), whose
        // trace still shows the start of the seed.
        for steps in [rzil_sim::STEPS_PER_SEED_DEFAULT, steps] {
            let mut args = SimArgs::new(seed..seed + 1, Model::Rzil);
            args.steps_per_seed = steps;
            let o = run_seed(&args, seed, true);
            assert_eq!(
                o.failure,
                None,
                "seed {seed}, {steps} steps:\n{}",
                o.trace.join("\n")
            );
        }
    }
    // Seed 76's schedule: the small lwb pool, and a commit parked inside
    // the core while another committer assigned a record.
    let mut args = SimArgs::new(76..77, Model::Rzil);
    args.steps_per_seed = 60;
    let t = run_seed(&args, 76, true).trace;
    assert!(t[0].contains("lwb pool 4"), "{}", t[0]);
    let parked = t
        .iter()
        .position(|l| l.contains("commit parked at"))
        .expect("a commit parks");
    let resumed = t[parked..]
        .iter()
        .position(|l| l.contains("resume commit"))
        .expect("and is resumed")
        + parked;
    assert!(
        t[parked..resumed].iter().any(|l| l.contains("assign ")),
        "a record is assigned while the commit is parked:\n{}",
        t.join("\n")
    );
}

#[test]
fn an_interleaved_run_is_a_pure_function_of_its_seed() {
    let args = SimArgs::new(0..1, Model::Rzil);
    for seed in [76, 4, 9] {
        let a = run_seed(&args, seed, true);
        let b = run_seed(&args, seed, true);
        assert_eq!(a.steps, b.steps);
        assert_eq!(a.crash_states, b.crash_states);
        assert_eq!(a.failure, b.failure);
        assert_eq!(a.trace, b.trace);
    }
    // Calls really park, committers' and completions' alike.
    let t = run_seed(&args, 9, true).trace.join("\n");
    assert!(t.contains("parked at"), "{t}");
    let all: String = (0..6)
        .flat_map(|s| run_seed(&args, s, true).trace)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(all.contains("commit parked at"), "no commit parked");
    assert!(all.contains("io_done parked at"), "no completion parked");
    // A sweep's report is the same twice.
    let sweep = SimArgs::new(20..26, Model::Rzil);
    let (r1, r2) = (run(&sweep), run(&sweep));
    assert_eq!(
        (r1.steps, r1.crash_states, r1.failures),
        (r2.steps, r2.crash_states, r2.failures)
    );
}
