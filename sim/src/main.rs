//! `rzil-sim`: the simulator's own command (the `rzil sim` subcommand of
//! the host crate calls the same [`rzil_sim::run`]).
//!
//! ```text
//! rzil-sim --seeds A..B [--model rzil|ozfs-2.2.0] [--bug NAME] [--faults LIST]
//!          [--steps N] [--stop-at-first] [--json] [--trace]
//! rzil-sim --help
//! ```

use rzil_sim::{run, BugName, FaultSet, Model, SimArgs};
use std::io::Write;
use std::process::ExitCode;

/// What `--help` prints: every argument [`parse`] accepts, with the
/// defaults and names taken from the library so they cannot drift.
fn usage() -> String {
    let bugs: Vec<&str> = BugName::ALL.iter().map(|b| b.name()).collect();
    format!(
        "\
usage: rzil-sim --seeds A..B [--model rzil|ozfs-2.2.0] [--bug NAME] [--faults LIST]
                [--steps N] [--stop-at-first] [--json] [--trace]

  --seeds A..B      seed range, B exclusive (default {seeds:?})
  --model MODEL     rzil (the core, default) or ozfs-2.2.0 (the OpenZFS 2.2.0 model)
  --bug NAME        historic bug switch, with --model ozfs-2.2.0: {bugs}
  --faults LIST     comma-separated, from: {faults} (default: default)
  --steps N         steps per seed before the final drain and power cut (default {steps})
  --stop-at-first   stop at the first failing seed
  --json            one JSON object per line
  --trace           print the last lines of every seed's trace, failing or not
  -h, --help        print this and exit

Exit status: 0 if no seed failed (or the faults make loss expected),
1 if a seed failed, 2 on bad arguments.
",
        seeds = SEEDS_DEFAULT,
        bugs = bugs.join(" "),
        faults = FaultSet::NAMES,
        steps = rzil_sim::STEPS_PER_SEED_DEFAULT,
    )
}

/// Seeds run when `--seeds` is not given.
const SEEDS_DEFAULT: std::ops::Range<u64> = 0..100;

fn parse_seeds(s: &str) -> Result<std::ops::Range<u64>, String> {
    let (a, b) = s
        .split_once("..")
        .ok_or_else(|| format!("--seeds {s:?}: expected A..B"))?;
    let a: u64 = a.parse().map_err(|_| format!("--seeds {s:?}: bad start"))?;
    let b: u64 = b.parse().map_err(|_| format!("--seeds {s:?}: bad end"))?;
    if a >= b {
        return Err(format!("--seeds {s:?}: empty range"));
    }
    Ok(a..b)
}

/// The parsed command line; `None` asks for the usage text.
fn parse(args: &[String]) -> Result<Option<(SimArgs, bool, bool)>, String> {
    let mut sim = SimArgs::new(SEEDS_DEFAULT, Model::Rzil);
    let mut json = false;
    let mut trace = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--seeds" => sim.seeds = parse_seeds(val()?)?,
            "--model" => sim.model = Model::parse(val()?)?,
            "--bug" => sim.bug = Some(BugName::parse(val()?)?),
            "--faults" => sim.faults = FaultSet::parse(val()?)?,
            "--steps" => {
                sim.steps_per_seed = val()?
                    .parse()
                    .map_err(|_| "--steps: not a number".to_string())?
            }
            "--stop-at-first" => sim.stop_at_first_failure = true,
            "--json" => json = true,
            "--trace" => trace = true,
            "-h" | "--help" => return Ok(None),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if sim.bug.is_some() && sim.model == Model::Rzil {
        // A bug switch names OpenZFS code; it applies to the ozfs model.
        return Err("--bug needs --model ozfs-2.2.0".into());
    }
    Ok(Some((sim, json, trace)))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (sim, json, trace) = match parse(&args) {
        Ok(Some(x)) => x,
        Ok(None) => {
            print!("{}", usage());
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("rzil-sim: {e}");
            return ExitCode::from(2);
        }
    };
    // A closed stdout (`| head`) is not an error worth a panic.
    let mut out = std::io::stdout().lock();
    if trace {
        // The last lines of each seed's trace, failing or not.
        for seed in sim.seeds.clone() {
            let o = rzil_sim::run_seed(&sim, seed, true);
            let _ = writeln!(out, "seed {seed}: {} steps, {:?}", o.steps, o.failure);
            for l in &o.trace {
                let _ = writeln!(out, "  {l}");
            }
        }
        return ExitCode::SUCCESS;
    }
    let rep = run(&sim);
    if json {
        let _ = writeln!(out, "{}", rep.to_json());
    } else {
        let _ = writeln!(
            out,
            "seeds {}..{}: {} run, {} steps, {} crash states, {} failures ({:.1} s)",
            sim.seeds.start,
            sim.seeds.end,
            rep.seeds_run,
            rep.steps,
            rep.crash_states,
            rep.failures,
            rep.elapsed_s
        );
        if let (Some(seed), Some(f)) = (rep.first_failing_seed, &rep.first_failure) {
            let _ = writeln!(out, "first failing seed {seed}: {f}");
            for l in &rep.trace {
                let _ = writeln!(out, "  {l}");
            }
        }
    }
    if rep.failures > 0 && !rep.expected_loss {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
