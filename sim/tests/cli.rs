//! The `rzil-sim` binary: `--help` lists exactly the arguments the parser
//! accepts, and the exit statuses are the ones it and sim/README.md state
//! (0 clean or expected loss, 1 a seed failed, 2 bad arguments).

use rzil_sim::{BugName, FaultSet};
use std::process::{Command, Output};

const SIM: &str = env!("CARGO_BIN_EXE_rzil-sim");

fn sim(args: &[&str]) -> Output {
    Command::new(SIM).args(args).output().expect("run rzil-sim")
}

/// Every option the parser takes, with arguments that make a short run.
const OPTIONS: &[(&str, &[&str])] = &[
    ("--seeds", &["--seeds", "0..1"]),
    ("--model", &["--model", "rzil"]),
    ("--bug", &["--model", "ozfs-2.2.0", "--bug", "15233"]),
    ("--faults", &["--faults", "none"]),
    ("--steps", &["--steps", "50"]),
    ("--stop-at-first", &["--stop-at-first"]),
    ("--json", &["--json"]),
    ("--trace", &["--trace"]),
    ("--help", &["--help"]),
];

fn help_text() -> String {
    let out = sim(&["--help"]);
    assert_eq!(out.status.code(), Some(0), "--help status");
    assert!(out.stderr.is_empty(), "--help wrote to stderr");
    String::from_utf8(out.stdout).expect("utf-8 help")
}

#[test]
fn help_lists_exactly_the_options_the_parser_accepts() {
    let help = help_text();
    assert_eq!(sim(&["-h"]).stdout, help.as_bytes(), "-h is --help");
    // The option lines: "  --name ..." or "  -h, --help ...".
    let mut listed: Vec<&str> = help
        .lines()
        .filter(|l| l.starts_with("  -"))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("--")))
        .collect();
    listed.sort_unstable();
    let mut known: Vec<&str> = OPTIONS.iter().map(|(name, _)| *name).collect();
    known.sort_unstable();
    assert_eq!(listed, known, "options in --help vs the parser's");
    for (name, args) in OPTIONS {
        // Each listed option is accepted (status 0, or 1 for a failing
        // seed of the bug switch), never "unknown argument" (status 2).
        let mut argv = vec!["--seeds", "2..3", "--steps", "50"];
        argv.extend_from_slice(args);
        let out = sim(&argv);
        assert_ne!(
            out.status.code(),
            Some(2),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn help_names_every_fault_and_bug_switch() {
    let help = help_text();
    for fault in FaultSet::NAMES.split(", ") {
        assert!(FaultSet::parse(fault).is_ok(), "{fault} parses");
        assert!(help.contains(fault), "--help names fault {fault}");
    }
    for bug in BugName::ALL {
        assert!(help.contains(bug.name()), "--help names bug {}", bug.name());
    }
}

#[test]
fn exit_statuses_are_as_documented() {
    let clean = sim(&["--seeds", "0..2", "--steps", "200", "--json"]);
    assert_eq!(clean.status.code(), Some(0), "clean sweep");
    let report: serde_json::Value = serde_json::from_slice(&clean.stdout).expect("one JSON object");
    assert_eq!(report["seeds_run"], 2);
    assert_eq!(report["failures"], 0);

    // sim/README.md's historic-bug example: seed 2 catches #15233.
    let bug = sim(&["--seeds", "2..3", "--model", "ozfs-2.2.0", "--bug", "15233"]);
    assert_eq!(bug.status.code(), Some(1), "a failing seed");
    assert!(String::from_utf8_lossy(&bug.stdout).contains("first failing seed 2"));

    let expected = sim(&["--seeds", "0..2", "--faults", "default,lying-flush"]);
    assert_eq!(expected.status.code(), Some(0), "expected loss");
    assert!(String::from_utf8_lossy(&expected.stdout).contains("EXPECTED LOSS"));

    for bad in [
        &["--bogus"][..],
        &["--seeds", "5..5"],
        &["--seeds"],
        &["--bug", "15233"],
        &["--faults", "nonsense"],
    ] {
        let out = sim(bad);
        assert_eq!(out.status.code(), Some(2), "{bad:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.starts_with("rzil-sim: "), "{bad:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{bad:?}: {stderr}");
    }
}
