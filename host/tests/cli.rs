//! The `rzil` binary on bad input: every case exits with status 2 and one
//! stderr line `rzil: error: ...` naming the problem, and never panics.
//! Plus the paths that work today (bench's naive half, dump of our
//! superblock, help).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const RZIL: &str = env!("CARGO_BIN_EXE_rzil");

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Longest any one `rzil` of these tests may take: far above the slowest
/// (a 2 s run), so only a hang reaches it.
const RZIL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

fn rzil(args: &[&str]) -> Output {
    output_within(Command::new(RZIL).args(args), args)
}

/// Run `command` to completion, failing the test (not hanging CI) if it
/// takes longer than [`RZIL_TIMEOUT`]: a hang is a defect the tests name.
fn output_within(command: &mut Command, args: &[&str]) -> Output {
    use std::io::Read;
    use std::process::Stdio;
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run rzil");
    // Drain both pipes meanwhile, so a chatty child cannot block on them.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let began = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for rzil") {
            break status;
        }
        if began.elapsed() > RZIL_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?}: no exit within {RZIL_TIMEOUT:?} (a hang)");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// Assert exit status 2 and exactly one stderr line that starts with
/// `rzil: error:` and contains every one of `needles`.
fn assert_error(args: &[&str], needles: &[&str]) {
    let out = rzil(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{args:?}: status; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: want one stderr line, got: {stderr}"
    );
    assert!(lines[0].starts_with("rzil: error: "), "{args:?}: {stderr}");
    for needle in needles {
        assert!(
            lines[0].contains(needle),
            "{args:?}: '{needle}' not in: {stderr}"
        );
    }
}

/// The first stdout line of `out`, parsed as JSON.
fn first_json(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().next().expect("some output")).expect("a JSON line")
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// A 4 MiB rzil device created through the CLI's own `--create`.
fn make_device(dir: &Path) -> PathBuf {
    let dev = dir.join("dev");
    let out = rzil(&[
        "bench",
        "--dev",
        path_str(&dev),
        "--create",
        "--size",
        "4M",
        "--threads",
        "1",
        "--seconds",
        "0.1",
        "--json",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    dev
}

#[test]
fn zero_threads_is_refused() {
    assert_error(&["run", "--threads", "0"], &["--threads", "at least 1"]);
    assert_error(
        &["bench", "--dev", "x", "--threads", "1,0,4"],
        &["--threads", "at least 1"],
    );
    assert_error(&["verify", "--dev", "x", "--threads", "0"], &["at least 1"]);
}

#[test]
fn unparsable_numbers_sizes_and_ranges_are_refused() {
    assert_error(
        &["run", "--record", "4Q"],
        &["--record", "unknown suffix 'Q'"],
    );
    assert_error(&["run", "--record", "0"], &["--record", "outside"]);
    assert_error(&["run", "--record", "1G"], &["--record", "outside"]);
    assert_error(
        &["run", "--seconds", "soon"],
        &["--seconds", "invalid duration"],
    );
    assert_error(&["run", "--seconds", "-1"], &["--seconds", "more than 0"]);
    assert_error(
        &["run", "--threads", "-4"],
        &["--threads", "invalid thread count '-4'"],
    );
    assert_error(
        &["run", "--threads", "many"],
        &["invalid thread count 'many'"],
    );
    assert_error(
        &["bench", "--dev", "x", "--threads", "1,,4"],
        &["invalid thread count"],
    );
    assert_error(
        &["bench", "--dev", "x", "--create", "--size", "12X"],
        &["--size", "invalid size '12X'"],
    );
    assert_error(
        &["verify", "--dev", "x", "--crashes", "0"],
        &["--crashes", "crash count"],
    );
    assert_error(&["verify", "--dev", "x", "--seed", "minus"], &["--seed"]);
    assert_error(
        &["sim", "--seeds", "9..3"],
        &["--seeds", "greater than the start"],
    );
    assert_error(
        &["sim", "--seeds", "a..b"],
        &["--seeds", "invalid seed range"],
    );
    assert_error(&["sim", "--seeds", "0..5", "--model", "zfs"], &["--model"]);
}

#[test]
fn usage_errors_are_one_line_with_status_2() {
    assert_error(&["bench"], &["--dev"]);
    assert_error(&["frobnicate"], &["frobnicate"]);
    assert_error(&["run", "--bogus"], &["--bogus"]);
    assert_error(&["bench", "--dev", "x", "--size", "64M"], &["--create"]);
    // No subcommand: help on stderr, status 2.
    let out = rzil(&[]);
    assert_eq!(out.status.code(), Some(2));
    // Help is not an error.
    let out = rzil(&["--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(
        help.contains("bench") && help.contains("Deterministic simulator"),
        "{help}"
    );
}

#[test]
fn missing_path_and_directory() {
    let dir = scratch("missing");
    let missing = dir.join("nope");
    for sub in ["bench", "verify"] {
        assert_error(
            &[sub, "--dev", path_str(&missing)],
            &["nope", "no such file", "--create"],
        );
        assert_error(&[sub, "--dev", path_str(&dir)], &["is a directory"]);
    }
    assert_error(&["run", "--dev", path_str(&missing)], &["no such file"]);
    assert_error(&["dump", path_str(&missing)], &["no such file"]);
    // dump has no --create: its error does not suggest one.
    let out = rzil(&["dump", path_str(&missing)]);
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("--create"),
        "{out:?}"
    );
    assert_error(&["dump", path_str(&dir)], &["is a directory"]);
    assert!(!missing.exists(), "a failed open must not create the file");
}

#[test]
fn read_only_device() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("readonly");
    let dev = make_device(&dir);
    std::fs::set_permissions(&dev, std::fs::Permissions::from_mode(0o444)).unwrap();
    assert_error(
        &["bench", "--dev", path_str(&dev), "--seconds", "0.1"],
        &["read-only"],
    );
    assert_error(&["run", "--dev", path_str(&dev)], &["read-only"]);
    // dump only reads, so a read-only device is fine for it.
    let out = rzil(&["dump", path_str(&dev)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_size_the_filesystem_cannot_hold_is_refused_at_once() {
    let dir = scratch("nospace");
    let dev = dir.join("huge");
    // Past ext4's largest file, and past any disk CI has: refused by
    // ftruncate (EFBIG) or the space reservation (ENOSPC), never written.
    // Past off_t, std refuses the size itself. Each names the problem.
    for size in ["1000T", "100T", "9223372036854775808"] {
        let out = rzil(&["bench", "--dev", path_str(&dev), "--create", "--size", size]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("larger than the filesystem allows")
                || stderr.contains("the filesystem has no room"),
            "--size {size}: {stderr}"
        );
        assert_error(
            &["bench", "--dev", path_str(&dev), "--create", "--size", size],
            &["huge"],
        );
        assert!(
            !dev.exists(),
            "a failed --create left {} behind",
            dev.display()
        );
    }
}

#[test]
fn too_small_device() {
    let dir = scratch("small");
    let dev = dir.join("small");
    std::fs::write(&dev, vec![0u8; 256 * 1024]).unwrap();
    assert_error(
        &["bench", "--dev", path_str(&dev)],
        &["too small", "256 KiB", "minimum is 2 MiB"],
    );
    assert_error(
        &[
            "bench",
            "--dev",
            path_str(&dir.join("new")),
            "--create",
            "--size",
            "1M",
        ],
        &["too small", "1 MiB"],
    );
    // The size named is the file's, not its size rounded down to 4 KiB.
    let odd = dir.join("odd");
    std::fs::write(&odd, vec![0u8; 6000]).unwrap();
    assert_error(
        &["bench", "--dev", path_str(&odd)],
        &["too small (6000 bytes)"],
    );
}

#[test]
fn device_holding_something_else_is_not_overwritten() {
    let dir = scratch("foreign");
    let dev = dir.join("ext4ish");
    let mut bytes = vec![0u8; 4 * 1024 * 1024];
    bytes[1024 + 56] = 0x53;
    bytes[1024 + 57] = 0xef;
    std::fs::write(&dev, &bytes).unwrap();
    assert_error(
        &["bench", "--dev", path_str(&dev)],
        &["ext2/3/4 filesystem", "without --create"],
    );
    assert_error(
        &["verify", "--dev", path_str(&dev)],
        &["ext2/3/4 filesystem"],
    );
    assert_eq!(
        std::fs::read(&dev).unwrap(),
        bytes,
        "refused device was modified"
    );
    // With --create it is formatted and usable.
    let out = rzil(&[
        "bench",
        "--dev",
        path_str(&dev),
        "--create",
        "--threads",
        "1",
        "--seconds",
        "0.1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn corrupt_superblock() {
    use std::os::unix::fs::FileExt;
    let dir = scratch("corrupt");
    let dev = make_device(&dir);
    let file = std::fs::OpenOptions::new().write(true).open(&dev).unwrap();
    // Flip a byte inside both copies (slot A at 0, slot B at 4096).
    for slot_offset in [0u64, 4096] {
        file.write_all_at(&[0xa5], slot_offset + 40).unwrap();
    }
    drop(file);
    for args in [
        vec!["bench", "--dev", path_str(&dev)],
        vec!["verify", "--dev", path_str(&dev)],
        vec!["dump", path_str(&dev)],
    ] {
        assert_error(&args, &["corrupt rzil superblock", "checksum mismatch"]);
    }
}

#[test]
fn one_torn_superblock_copy_is_survivable() {
    use std::os::unix::fs::FileExt;
    let dir = scratch("torn");
    let dev = make_device(&dir);
    let before = first_json(&rzil(&["dump", path_str(&dev), "--json"]));
    let newest_slot = if before["slot"] == "A" { 0u64 } else { 4096 };
    let file = std::fs::OpenOptions::new().write(true).open(&dev).unwrap();
    file.write_all_at(&[0u8; 100], newest_slot + 30).unwrap();
    drop(file);
    let out = rzil(&["dump", path_str(&dev), "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = first_json(&out);
    assert_ne!(after["slot"], before["slot"]);
    assert_eq!(
        after["generation"].as_u64().unwrap() + 1,
        before["generation"].as_u64().unwrap()
    );
}

#[test]
fn bench_reports_rzil_and_naive_figures_as_json_lines() {
    let dir = scratch("bench");
    let dev = dir.join("dev");
    let out = rzil(&[
        "bench",
        "--dev",
        path_str(&dev),
        "--create",
        "--size",
        "8M",
        "--threads",
        "1,3",
        "--seconds",
        "0.3",
        "--record",
        "4K",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("each stdout line is one JSON object"))
        .collect();
    assert_eq!(lines.len(), 2);
    for (line, threads) in lines.iter().zip([1, 3]) {
        assert_eq!(line["threads"], threads);
        assert_eq!(line["record_bytes"], 4096);
        for key in [
            "commits_per_s",
            "naive_commits_per_s",
            "flushes_per_commit",
            "ratio_vs_naive",
            "cpu_us_per_commit",
            "naive_cpu_us_per_commit",
        ] {
            assert!(line[key].as_f64().unwrap() > 0.0, "{key} in {line}");
        }
        for prefix in ["", "naive_"] {
            let p50 = line[format!("{prefix}p50_us")].as_f64().unwrap();
            let p99 = line[format!("{prefix}p99_us")].as_f64().unwrap();
            assert!(p99 >= p50 && p50 > 0.0, "{line}");
        }
        // The baseline flushes once per commit, by construction.
        assert_eq!(line["naive_flushes_per_commit"], 1.0);
        // Both rates are printed rounded to 0.01, so the ratio recomputed
        // from them carries up to 0.005/rate of relative error each (large
        // when the naive rate is small on a loaded machine): allow 1%.
        let ratio =
            line["commits_per_s"].as_f64().unwrap() / line["naive_commits_per_s"].as_f64().unwrap();
        let reported = line["ratio_vs_naive"].as_f64().unwrap();
        assert!(
            (ratio - reported).abs() <= 0.005 + 0.01 * reported,
            "{line}"
        );
    }
}

#[test]
fn dump_shows_the_superblock_and_walks_the_chain() {
    let dir = scratch("dump");
    let dev = make_device(&dir);
    let out = rzil(&["dump", path_str(&dev), "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sb = first_json(&out);
    assert_eq!(sb["kind"], "superblock");
    assert_eq!(sb["device_size_bytes"], 4 * 1024 * 1024);
    assert_eq!(sb["log_start_bytes"], 128 * 1024);
    // make_device ran a short bench, whose clean close checkpointed every
    // record: the head is the empty tail block, so the walk ends at once.
    assert!(sb["head_size_bytes"].as_u64().unwrap() >= 4096, "{sb}");
    assert!(sb["checkpoint_lr_seq"].as_u64().unwrap() > 0, "{sb}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let last: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["kind"], "chain_end");
    assert_eq!(last["records"], 0);
}

#[test]
fn sim_runs_seeds_and_names_bad_switches() {
    let v = json_line(&["sim", "--seeds", "0..2", "--json"]);
    assert_eq!(v["seeds_run"], 2, "{v}");
    assert_eq!(v["failures"], 0, "{v}");
    assert!(v["crash_states"].as_u64().unwrap() > 0, "{v}");
    assert_error(
        &["sim", "--seeds", "0..2", "--bug", "15233"],
        &["--model ozfs-2.2.0"],
    );
    assert_error(
        &[
            "sim",
            "--seeds",
            "0..2",
            "--model",
            "ozfs-2.2.0",
            "--bug",
            "99",
        ],
        &["--bug", "unknown bug"],
    );
    assert_error(
        &["sim", "--seeds", "0..2", "--faults", "gremlins"],
        &["--faults"],
    );
}

/// Parse the single JSON line of a successful command.
fn json_line(args: &[&str]) -> serde_json::Value {
    let out = rzil(args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{args:?}: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "{args:?}: want one JSON line, got: {stdout}"
    );
    serde_json::from_str(lines[0]).expect("stdout is one JSON object")
}

#[test]
fn run_commits_cuts_power_and_loses_nothing() {
    let dir = scratch("run");
    let dev = dir.join("dev");
    let run = json_line(&[
        "run",
        "--dev",
        path_str(&dev),
        "--create",
        "--size",
        "16M",
        "--threads",
        "4",
        "--seconds",
        "0.5",
        "--json",
    ]);
    assert!(run["commits"].as_u64().unwrap() > 0, "{run}");
    assert!(run["commits_per_s"].as_f64().unwrap() > 0.0);
    assert!(run["p99_us"].as_f64().unwrap() >= run["p50_us"].as_f64().unwrap());
    assert!(run["flushes_per_commit"].as_f64().unwrap() > 0.0);
    assert_eq!(run["crash_states_checked"], 16);
    assert_eq!(run["acked_records_lost"], 0);
    // The clean close left a log that dump can walk and a second run can
    // start on (after recovering it).
    let out = rzil(&["dump", path_str(&dev)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("chain:"));
    let again = json_line(&[
        "run",
        "--dev",
        path_str(&dev),
        "--threads",
        "1",
        "--seconds",
        "0.2",
        "--json",
    ]);
    assert_eq!(again["acked_records_lost"], 0);
}

#[test]
fn verify_explores_crash_states_and_loses_nothing() {
    let dir = scratch("verify");
    let dev = dir.join("dev");
    let verify = json_line(&[
        "verify",
        "--dev",
        path_str(&dev),
        "--create",
        "--size",
        "16M",
        "--crashes",
        "30",
        "--seed",
        "7",
        "--threads",
        "3",
        "--seconds",
        "0.3",
        "--json",
    ]);
    assert_eq!(verify["crash_states"], 30);
    assert_eq!(verify["seed"], 7);
    assert_eq!(verify["acked_records_lost"], 0, "{verify}");
    assert!(verify["commits"].as_u64().unwrap() > 0);
}

#[test]
fn output_into_a_closed_pipe_is_not_a_panic() {
    use std::io::Read;
    use std::process::Stdio;
    let dir = scratch("pipe");
    let dev = dir.join("dev");
    // A power cut for real: kill a run, so its chain (thousands of records,
    // far more dump output than a pipe buffer holds) is left unreplayed.
    let mut run = Command::new(RZIL)
        .args([
            "run",
            "--dev",
            path_str(&dev),
            "--create",
            "--size",
            "16M",
            "--seconds",
            "30",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    run.kill().unwrap();
    run.wait().unwrap();
    // Read a little of the dump, then close the pipe: rzil must end by
    // SIGPIPE (like any filter), not panic.
    let mut child = Command::new(RZIL)
        // JSON lines are the longer output: more certain to fill the pipe.
        .args(["dump", path_str(&dev), "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 64];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    // The killed run's records are still there for the next run to recover.
    let out = rzil(&[
        "run",
        "--dev",
        path_str(&dev),
        "--threads",
        "1",
        "--seconds",
        "0.2",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("recovered"), "{stderr}");
}

#[test]
fn dump_decodes_a_real_openzfs_block() {
    // A real OpenZFS 2.3.2 slim block committed with the format tests.
    let block =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/openzfs-zil/2.3.2-mf-ds4-3.bin");
    let out = rzil(&["dump", path_str(&block), "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    // zdb: 5 records, all inline TX_WRITEs, in a 4096-byte slim block.
    assert_eq!(lines[0]["kind"], "block");
    assert_eq!(lines[0]["size_bytes"], 4096);
    assert_eq!(lines[0]["checksum_ok"], true);
    assert_eq!(lines.len(), 6);
    assert!(
        lines[1..].iter().all(|r| r["txtype"] == "TX_WRITE"),
        "{lines:?}"
    );
}

/// 64 committers of 128 KiB records (WR_NEED_COPY, split across blocks)
/// keep lwbs closing while one thread issues: its issue chain has no
/// natural end. The core once dropped the READY lwb in hand when the chain
/// reached its bound (a debug assertion, a stalled log in release); it now
/// hands the chain off, and every commit must complete.
#[test]
fn many_committers_of_large_records_complete() {
    let dir = scratch("large-records");
    let dev = dir.join("dev");
    let run = json_line(&[
        "run",
        "--dev",
        path_str(&dev),
        "--create",
        "--threads",
        "64",
        "--seconds",
        "2",
        "--record",
        "128K",
        "--json",
    ]);
    assert_eq!(run["acked_records_lost"], 0);
}

/// `--kernel` needs rzil.ko, which only FreeBSD has: elsewhere it is one
/// clear line and status 2, for both subcommands that take it.
#[cfg(not(target_os = "freebsd"))]
#[test]
fn kernel_backend_outside_freebsd_is_a_clear_error() {
    let os = std::env::consts::OS;
    for sub in ["run", "bench"] {
        assert_error(
            &[sub, "--kernel", "/dev/rzilctl", "--provider", "md0"],
            &["--kernel drives the FreeBSD kernel module rzil.ko", os],
        );
        // The control device defaults to /dev/rzilctl.
        assert_error(
            &[sub, "--kernel", "--provider", "md0", "--json"],
            &["FreeBSD", os],
        );
    }
}

/// On FreeBSD, a control device that is not there names the likely cause.
#[cfg(target_os = "freebsd")]
#[test]
fn kernel_backend_without_the_module_says_so() {
    assert_error(
        &[
            "run",
            "--kernel",
            "/nonexistent/rzilctl",
            "--provider",
            "md0",
        ],
        &["/nonexistent/rzilctl", "is rzil.ko loaded?"],
    );
}

#[test]
fn kernel_backend_arguments_are_checked() {
    assert_error(&["run", "--provider", "md0"], &["--kernel"]);
    assert_error(&["run", "--kernel", "/dev/rzilctl"], &["--provider"]);
    assert_error(
        &[
            "run",
            "--kernel",
            "/dev/rzilctl",
            "--provider",
            "md0",
            "--dev",
            "x",
        ],
        &["--kernel", "--dev"],
    );
    assert_error(
        &["bench", "--kernel", "--provider", "md0", "--direct"],
        &["--kernel", "--direct"],
    );
    assert_error(
        &["run", "--kernel", "--provider", "md0", "--record", "8K"],
        &["--record 8192 bytes", "limit of 7680"],
    );
    let long = "x".repeat(64);
    assert_error(
        &["bench", "--kernel", "--provider", &long],
        &["--provider", "at most 63"],
    );
    // bench without a device needs --kernel.
    assert_error(&["bench"], &["--dev"]);
}

/// A report that cannot be written (`> /dev/full`: ENOSPC on every write)
/// is one error line and status 2, for each subcommand's output path, not
/// a `println!` panic (status 101). The device is left closed cleanly.
#[test]
fn a_stdout_that_cannot_be_written_is_an_error_not_a_panic() {
    let full = Path::new("/dev/full");
    if !full.exists() {
        return;
    }
    let dir = scratch("stdout-full");
    let dev = make_device(&dir);
    let dev = path_str(&dev);
    for args in [
        vec!["dump", dev],
        vec!["dump", dev, "--json"],
        vec!["run", "--dev", dev, "--threads", "1", "--seconds", "0.1"],
        vec![
            "bench",
            "--dev",
            dev,
            "--threads",
            "1",
            "--seconds",
            "0.1",
            "--json",
        ],
        vec!["sim", "--seeds", "0..1"],
    ] {
        let out = Command::new(RZIL)
            .args(&args)
            .stdout(std::fs::File::create(full).unwrap())
            .output()
            .expect("run rzil");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("rzil: error: writing the report to stdout: "),
            "{args:?}: {stderr}"
        );
    }
    // The runs above closed their logs before reporting: the device opens.
    let out = rzil(&["dump", dev]);
    assert_eq!(out.status.code(), Some(0));
}

/// A checksum-valid superblock whose checkpoint seq leaves no room to count
/// records up from it (corrupt or crafted): refused before anything is
/// written. It used to start a log whose record seqs overflowed: a panic in
/// a debug build, and in release seqs wrapped below the checkpoint, where
/// replay skips them as already applied (every acknowledged record lost).
#[test]
fn a_checkpoint_seq_that_would_wrap_is_refused() {
    use rzil_host::superblock::{Superblock, SLOT_OFFSETS_BYTES, SUPERBLOCK_BYTES};
    use std::os::unix::fs::FileExt;
    let dir = scratch("seq-wrap");
    let dev = make_device(&dir);
    let slot = if first_json(&rzil(&["dump", path_str(&dev), "--json"]))["slot"] == "A" {
        0
    } else {
        1
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&dev)
        .unwrap();
    let mut copy = [0u8; SUPERBLOCK_BYTES];
    file.read_exact_at(&mut copy, SLOT_OFFSETS_BYTES[slot])
        .unwrap();
    let mut superblock = Superblock::decode(&copy).unwrap();
    superblock.checkpoint_lr_seq = u64::MAX - 5;
    file.write_all_at(&superblock.encode(), SLOT_OFFSETS_BYTES[slot])
        .unwrap();
    drop(file);
    let before = std::fs::read(&dev).unwrap();
    for sub in ["run", "bench", "verify"] {
        assert_error(
            &[
                sub,
                "--dev",
                path_str(&dev),
                "--threads",
                "2",
                "--seconds",
                "0.2",
            ],
            &["first_lr_seq", "wrap"],
        );
    }
    assert!(
        std::fs::read(&dev).unwrap() == before,
        "refused device was modified"
    );
}

/// A negative number given to any numeric option is that option's error,
/// named, as `run --threads -4` already was; clap used to take it for an
/// unknown flag ("unexpected argument '-1' found", no option named).
#[test]
fn negative_values_name_their_option() {
    assert_error(
        &["bench", "--dev", "x", "--threads", "-1"],
        &["--threads", "invalid thread count '-1'"],
    );
    for sub in ["run", "bench", "verify"] {
        assert_error(
            &[sub, "--dev", "x", "--record", "-4096"],
            &["--record", "invalid size '-4096'"],
        );
        assert_error(
            &[sub, "--dev", "x", "--create", "--size", "-64"],
            &["--size", "invalid size '-64'"],
        );
    }
    assert_error(
        &["verify", "--dev", "x", "--crashes", "-1"],
        &["--crashes", "invalid crash count '-1'"],
    );
    assert_error(
        &["verify", "--dev", "x", "--seed", "-1"],
        &["--seed", "'-1'"],
    );
    assert_error(
        &["sim", "--seeds", "-3"],
        &["--seeds", "invalid seed range '-3'"],
    );
    // With a suffix it is no number to clap, which takes it for flags.
    assert_error(
        &["run", "--record", "-4K"],
        &["unexpected argument '-4'", "a negative value?"],
    );
}

/// A positive duration too short to be a run (1e-300 s is 0 ns) is refused,
/// not run for no time and reported as a success with 0 commits.
#[test]
fn a_duration_too_short_to_run_is_refused() {
    for sub in ["run", "bench", "verify"] {
        assert_error(
            &[sub, "--dev", "x", "--seconds", "1e-300"],
            &["--seconds", "under the minimum of 0.001 s"],
        );
    }
}

/// Start `rzil run` on `dev` with `args` for long, wait until its chain
/// holds records (as `dump` sees them), then kill it: a power cut with
/// acknowledged records left for the next run to recover. Polling, not a
/// fixed sleep: a loaded machine may take seconds to start committing.
fn killed_run(dev: &Path, args: &[&str]) {
    use std::process::Stdio;
    let mut run = Command::new(RZIL)
        .args(["run", "--dev", path_str(dev), "--seconds", "60"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let began = std::time::Instant::now();
    let has_records = || {
        let out = rzil(&["dump", path_str(dev), "--json"]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .any(|line| line["kind"] == "chain_end" && line["records"].as_u64() > Some(0))
    };
    while !has_records() {
        assert!(
            run.try_wait().unwrap().is_none(),
            "the run to kill ended early"
        );
        assert!(
            began.elapsed() < RZIL_TIMEOUT,
            "no records on {} in time",
            dev.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    run.kill().unwrap();
    run.wait().unwrap();
}

/// Recovery under `--direct`: a run killed mid-way leaves acknowledged
/// records that the next `--direct` run must replay. Replay read blocks
/// into an unaligned buffer, which O_DIRECT refuses, and took the failed
/// read for the chain's end: every record of the killed run was dropped,
/// silently. (Where the filesystem refuses O_DIRECT, both runs fall back
/// to buffered I/O and this checks recovery alone.)
#[test]
fn a_direct_run_recovers_the_records_of_a_killed_one() {
    let dir = scratch("direct-recovery");
    let dev = dir.join("dev");
    killed_run(&dev, &["--create", "--size", "16M", "--direct"]);
    let out = rzil(&[
        "run",
        "--dev",
        path_str(&dev),
        "--direct",
        "--threads",
        "1",
        "--seconds",
        "0.2",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("recovered"), "{stderr}");
}

/// `run` makes its default device's directory on first use; when it cannot
/// (a file named `target` is in the way), the error says what it tried.
/// It used to be the bare 'target: File exists (os error 17)'.
#[test]
fn a_default_device_whose_directory_cannot_be_made_is_named() {
    let dir = scratch("default-dir");
    std::fs::write(dir.join("target"), b"not a directory").unwrap();
    let out = output_within(
        Command::new(RZIL)
            .args(["run", "--seconds", "0.1"])
            .current_dir(&dir),
        &["run"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot make the directory of the default device target/rzil-run.dev")
            && stderr.contains("--dev"),
        "{stderr}"
    );
}

/// `--create --size` with a new size reformats a file. Over a log a killed
/// run left, that silently discarded every acknowledged record in it
/// (exit 0, nothing recovered); it is refused until a run has recovered
/// them, after which the resize goes ahead.
#[test]
fn a_resize_does_not_discard_records_not_yet_recovered() {
    let dir = scratch("resize");
    let dev = dir.join("dev");
    killed_run(&dev, &["--create", "--size", "16M"]);
    let before = std::fs::read(&dev).unwrap();
    let resize = [
        "run",
        "--dev",
        path_str(&dev),
        "--create",
        "--size",
        "32M",
        "--threads",
        "1",
        "--seconds",
        "0.1",
    ];
    assert_error(&resize, &["records not yet recovered", "without --size"]);
    assert!(
        std::fs::read(&dev).unwrap() == before,
        "refused device was modified"
    );
    // A run without --size recovers them; its clean close checkpoints.
    let out = rzil(
        &resize[..3]
            .iter()
            .chain(&resize[6..])
            .copied()
            .collect::<Vec<_>>(),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("recovered"), "{stderr}");
    let out = rzil(&resize);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::metadata(&dev).unwrap().len(), 32 * 1024 * 1024);
}

/// Two processes on one log would overwrite each other's blocks and
/// superblock updates (each one's crash check, modelling only its own
/// writes, reported 0 lost): a device open as a log elsewhere is refused.
#[test]
fn a_device_in_use_by_another_log_is_refused() {
    use rzil_host::device::{LogDevice, OpenOptionsLog};
    let dir = scratch("in-use");
    let dev = make_device(&dir);
    let held = LogDevice::open(&dev, OpenOptionsLog::default()).unwrap();
    for sub in ["run", "bench", "verify"] {
        assert_error(
            &[sub, "--dev", path_str(&dev), "--seconds", "0.1"],
            &["in use as a log by another process"],
        );
    }
    // Reading is not writing: dump still works.
    assert_eq!(rzil(&["dump", path_str(&dev)]).status.code(), Some(0));
    drop(held);
    let out = rzil(&[
        "run",
        "--dev",
        path_str(&dev),
        "--threads",
        "1",
        "--seconds",
        "0.1",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
