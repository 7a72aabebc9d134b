//! `rzil run|bench --kernel [CTLDEV] --provider NAME`: the same workloads
//! driven through the FreeBSD kernel module rzil.ko (see
//! `rzil_host::kernel` and kmod/README.md) instead of the core in this
//! process.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::Args;
use rzil_host::backend::{drive_with, DriveConfig, DriveResult, Tick, DRIVE_STALL};
use rzil_host::device::{LogDevice, OpenOptionsLog, DIRECT_IO_ALIGN_BYTES};
use rzil_host::histogram::Histogram;
use rzil_host::kernel::abi::RZIL_RECORD_BYTES_MAX;
use rzil_host::kernel::{check_provider, with_kernel_log, Control, ControlDevice, KernelEnd};
use rzil_host::naive::{self, NaiveReport};
use rzil_host::units::format_size_bytes;
use serde_json::json;

use super::{alternate, latency_us, round2, timed_progress, BenchArgs, Failure, Outcome, RunArgs};

/// Why `rzil run --kernel` reports no power-cut check.
pub const CRASH_CHECK_SKIPPED: &str = "the module writes the log through GEOM, below this process, so rzil cannot record the writes and flushes to cut power under them; rzil run and rzil verify without --kernel check crash consistency of the same core";

/// Set by the first SIGINT of a `--kernel` run: the committers stop and the
/// instance is detached, instead of the process dying with the provider
/// still attached (instances outlive the process that attached them).
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_interrupt(_signal: libc::c_int) {
    INTERRUPTED.store(true, Ordering::Relaxed);
    // SAFETY: signal(2) is async-signal-safe; restoring the default makes
    // a second ^C end the process at once.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
    }
}

/// Route the first ^C to [`INTERRUPTED`].
fn catch_interrupt() {
    let handler: extern "C" fn(libc::c_int) = on_interrupt;
    // SAFETY: the handler only stores to an atomic and calls signal(2),
    // both async-signal-safe; it stays valid for the life of the process.
    unsafe {
        libc::signal(libc::SIGINT, handler as libc::sighandler_t);
    }
}

fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::Relaxed)
}

/// After a ^C: the instance is detached by now; say so and fail.
fn check_interrupted() -> Outcome {
    if interrupted() {
        return Err(Failure(
            "interrupted; the committers stopped and the instance was detached".into(),
        ));
    }
    Ok(())
}

/// The kernel backend's options, shared by `run` and `bench`.
#[derive(Debug, Args)]
pub struct KernelArgs {
    /// Drive the FreeBSD kernel module rzil.ko through its control device
    /// (default /dev/rzilctl) instead of the core in this process; needs
    /// --provider. FreeBSD only.
    #[arg(
        long,
        value_name = "CTLDEV",
        num_args = 0..=1,
        default_missing_value = rzil_host::kernel::CONTROL_DEVICE_DEFAULT,
        requires = "provider",
        conflicts_with_all = ["dev", "create", "size", "direct"]
    )]
    pub kernel: Option<PathBuf>,
    /// With --kernel: the GEOM provider the module attaches to and writes
    /// its log on (md0, ada1, ...); whatever it holds is overwritten.
    #[arg(long, value_name = "NAME", requires = "kernel")]
    pub provider: Option<String>,
}

impl KernelArgs {
    /// The control device and provider, when --kernel was given.
    pub fn selected(&self) -> Option<(&Path, &str)> {
        Some((self.kernel.as_deref()?, self.provider.as_deref()?))
    }
}

/// Checks that need no module: the record fits one `RZIL_IOC_APPEND`, the
/// provider name fits the ioctl.
fn check_args(record_bytes: u64, provider: &str) -> Outcome {
    if record_bytes > u64::from(RZIL_RECORD_BYTES_MAX) {
        return Err(Failure(format!(
            "--record {record_bytes} bytes is over the kernel module's limit of {RZIL_RECORD_BYTES_MAX} (RZIL_RECORD_BYTES_MAX, one WR_COPIED record)"
        )));
    }
    check_provider(provider)?;
    Ok(())
}

/// `end.failure` as an error (a run whose commits succeeded still fails if
/// the checkpointer, stats or detach did).
fn clean(end: &KernelEnd) -> Outcome {
    match &end.failure {
        Some(why) => Err(Failure(why.clone())),
        None => Ok(()),
    }
}

/// A failed body, with anything that went wrong after it.
fn body_failure(error: impl std::fmt::Display, end: &KernelEnd) -> Failure {
    match &end.failure {
        Some(also) => Failure(format!("{error}; then: {also}")),
        None => Failure(error.to_string()),
    }
}

fn kernel_us(latency: &Histogram, q: f64) -> f64 {
    latency.quantile_ns(q) as f64 / 1000.0
}

/// (flushes per commit, lwbs issued, bytes written, I/O errors) from the
/// module's counters.
fn counters(end: &KernelEnd, result: &DriveResult) -> (f64, u64, u64, u64) {
    let stats = end.stats.as_ref();
    let flushes = stats.map_or(0, |s| s.rs_flushes);
    (
        flushes as f64 / result.commits.max(1) as f64,
        stats.map_or(0, |s| s.rs_lwbs_issued),
        stats.map_or(0, |s| s.rs_bytes_written),
        stats.map_or(0, |s| s.rs_io_errors),
    )
}

/// Attach `provider`, run `config`'s committers through the module until
/// their time is up or a ^C, detach, and check that the instance ended
/// clean: one `run`, or one slice of a `bench`.
fn drive_kernel(
    ctl: &dyn Control,
    provider: &str,
    config: DriveConfig,
    on_tick: &mut dyn FnMut(Tick),
) -> Result<(DriveResult, KernelEnd), Failure> {
    let (body, end) = with_kernel_log(ctl, provider, config.threads, |log| {
        drive_with(log, config, DRIVE_STALL, &interrupted, &|_, _| {}, on_tick)
    })?;
    let result = body.map_err(|e| body_failure(e, &end))?;
    clean(&end)?;
    check_interrupted()?;
    Ok((result, end))
}

/// Where the report lines go: stdout, or a test's buffer.
type Out<'a> = &'a mut dyn FnMut(String);

pub fn run(args: &RunArgs, ctl_path: &Path, provider: &str) -> Outcome {
    check_args(args.record, provider)?;
    let ctl = ControlDevice::open(ctl_path)?;
    run_on(&ctl, args, ctl_path, provider, &mut |line| {
        super::outln!("{line}")
    })
}

fn run_on(
    ctl: &dyn Control,
    args: &RunArgs,
    ctl_path: &Path,
    provider: &str,
    out: Out<'_>,
) -> Outcome {
    let config = DriveConfig {
        threads: args.threads,
        duration: Duration::from_secs_f64(args.seconds),
        record_bytes: args.record as usize,
    };
    let mut progress = timed_progress(
        args.seconds,
        format!("rzil run --kernel, {} threads", args.threads),
    );
    let (result, end) = drive_kernel(ctl, provider, config, &mut progress)?;
    let (flushes_per_commit, lwbs_issued, bytes_written, io_errors) = counters(&end, &result);
    let at = &end.attached;
    if args.json {
        out(format!(
            "{}",
            json!({
                "backend": "kernel",
                "control_device": ctl_path.display().to_string(),
                "provider": at.provider,
                "instance": at.instance,
                "provider_size_bytes": at.media_size_bytes,
                "commits": result.commits,
                "commits_per_s": round2(result.commits_per_s()),
                "p50_us": round2(latency_us(&result, 0.5)),
                "p99_us": round2(latency_us(&result, 0.99)),
                "kernel_p50_us": round2(kernel_us(&end.kernel_latency, 0.5)),
                "kernel_p99_us": round2(kernel_us(&end.kernel_latency, 0.99)),
                "flushes_per_commit": round2(flushes_per_commit),
                "lwbs_issued": lwbs_issued,
                "bytes_written": bytes_written,
                "io_errors": io_errors,
                "threads": args.threads,
                "record_bytes": args.record,
                "seconds": args.seconds,
                "crash_check": "skipped",
                "crash_check_skipped_reason": CRASH_CHECK_SKIPPED,
                "crash_states_checked": 0,
                "acked_records_lost": null,
            })
        ));
    } else {
        out(format!(
            "rzil run --kernel {} on {} (instance {}, {}, {}-byte sectors): {} threads, {}-byte records, {} s",
            ctl_path.display(),
            at.provider,
            at.instance,
            format_size_bytes(at.media_size_bytes),
            at.sector_size_bytes,
            args.threads,
            args.record,
            args.seconds
        ));
        out(format!(
            "  {} commits, {:.0} commits/s, p50 {:.1} us, p99 {:.1} us, {:.3} flushes/commit, {} lwbs",
            result.commits,
            result.commits_per_s(),
            latency_us(&result, 0.5),
            latency_us(&result, 0.99),
            flushes_per_commit,
            lwbs_issued
        ));
        out(format!(
            "  in the module: commit p50 {:.1} us, p99 {:.1} us; {} written, {} I/O errors",
            kernel_us(&end.kernel_latency, 0.5),
            kernel_us(&end.kernel_latency, 0.99),
            format_size_bytes(bytes_written),
            io_errors
        ));
        out(format!("  power cut: not checked: {CRASH_CHECK_SKIPPED}"));
    }
    if io_errors > 0 {
        return Err(Failure(format!(
            "{}: {io_errors} failed writes or flushes (see dmesg)",
            at.provider
        )));
    }
    Ok(())
}

/// The provider as a user-space device, for the naive baseline.
fn provider_device(provider: &str) -> PathBuf {
    if provider.starts_with("/dev/") {
        PathBuf::from(provider)
    } else {
        Path::new("/dev").join(provider)
    }
}

/// One slice of the naive baseline (each committer pwrite + fsync) on the
/// provider itself, opened only while the module is detached from it: an
/// attached instance holds it exclusively. Writes are whole sectors, as a
/// disk device takes them.
fn naive_slice(
    path: &Path,
    config: DriveConfig,
    tick: &mut dyn FnMut(Tick),
) -> Result<NaiveReport, Failure> {
    let device = LogDevice::open(path, OpenOptionsLog::default())
        .map_err(|e| Failure(format!("naive baseline: {e}")))?;
    let sector_bytes = u64::from(device.sector_size_bytes().max(1));
    let region = 0..device.size_bytes() / sector_bytes * sector_bytes;
    let align = if device.is_direct() {
        DIRECT_IO_ALIGN_BYTES.max(sector_bytes as usize)
    } else {
        sector_bytes as usize
    };
    naive::run_naive(&device, region, config, align, tick)
        .map_err(|e| Failure(format!("{}: naive baseline: {e}", path.display())))
}

/// `rzil bench --kernel`: per thread count, the module and the naive
/// baseline on the same provider, alternating in slices of at most
/// [`BENCH_SLICE`](super::BENCH_SLICE) as the userspace bench does (a fresh instance per
/// slice, detached while the baseline runs).
pub fn bench(args: &BenchArgs, ctl_path: &Path, provider: &str) -> Outcome {
    check_args(args.record, provider)?;
    let ctl = ControlDevice::open(ctl_path)?;
    catch_interrupt();
    bench_on(
        &ctl,
        args,
        ctl_path,
        provider,
        &provider_device(provider),
        &mut |line| super::outln!("{line}"),
    )
}

fn bench_on(
    ctl: &dyn Control,
    args: &BenchArgs,
    ctl_path: &Path,
    provider: &str,
    naive_path: &Path,
    out: Out<'_>,
) -> Outcome {
    for (i, &threads) in args.threads.0.iter().enumerate() {
        let mut kernel_latency = Histogram::new();
        let (mut flushes, mut lwbs_issued) = (0u64, 0u64);
        let mut attached = None;
        let measured = alternate(
            args.seconds,
            threads,
            args.record as usize,
            "rzil.ko",
            |config, tick| {
                let (slice, end) = drive_kernel(ctl, provider, config, tick)?;
                let (_, lwbs, _, io_errors) = counters(&end, &slice);
                if io_errors > 0 {
                    return Err(Failure(format!(
                        "{provider}: {io_errors} failed writes or flushes (see dmesg)"
                    )));
                }
                flushes += end.stats.as_ref().map_or(0, |s| s.rs_flushes);
                lwbs_issued += lwbs;
                kernel_latency.merge(&end.kernel_latency);
                attached.get_or_insert(end.attached);
                Ok(slice)
            },
            |config, tick| naive_slice(naive_path, config, tick),
        )?;
        let row = measured.row(threads, args.record, flushes, lwbs_issued);
        let (result, naive_result) = (&measured.result, &measured.naive);
        let (flushes_per_commit, ratio) = (row.flushes_per_commit(), row.ratio());
        if args.json {
            let mut line = row.json();
            if let Some(keys) = line.as_object_mut() {
                keys.insert("backend".into(), json!("kernel"));
                keys.insert("provider".into(), json!(provider));
                keys.insert(
                    "kernel_p50_us".into(),
                    json!(round2(kernel_us(&kernel_latency, 0.5))),
                );
                keys.insert(
                    "kernel_p99_us".into(),
                    json!(round2(kernel_us(&kernel_latency, 0.99))),
                );
            }
            out(format!("{line}"));
            continue;
        }
        if i == 0 {
            if let Some(at) = &attached {
                out(format!(
                    "rzil.ko via {} on {} ({}, {}-byte sectors) vs naive on {}; record {} bytes; {} s per measurement",
                    ctl_path.display(),
                    at.provider,
                    format_size_bytes(at.media_size_bytes),
                    at.sector_size_bytes,
                    naive_path.display(),
                    args.record,
                    args.seconds
                ));
            }
            out(format!(
                "{:>7} {:>12} {:>9} {:>9} {:>9} {:>8} {:>12} {:>9} {:>9} {:>7}",
                "threads",
                "commits/s",
                "p50_us",
                "p99_us",
                "k_p99",
                "fl/cmt",
                "naive/s",
                "nv_p50",
                "nv_p99",
                "ratio"
            ));
        }
        out(format!(
            "{:>7} {:>12.0} {:>9.1} {:>9.1} {:>9.1} {:>8.3} {:>12.0} {:>9.1} {:>9.1} {:>7.2}",
            threads,
            result.commits_per_s(),
            latency_us(result, 0.5),
            latency_us(result, 0.99),
            kernel_us(&kernel_latency, 0.99),
            flushes_per_commit,
            naive_result.commits_per_s(),
            latency_us(naive_result, 0.5),
            latency_us(naive_result, 0.99),
            ratio
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    //! The reports of `run`/`bench --kernel`, with a stand-in for the
    //! module (the backend's own protocol is tested in
    //! rzil_host::kernel against models of the module and the real core).
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;
    use parking_lot::Mutex;
    use rzil_host::kernel::abi::RZIL_INSTANCES_MAX;
    use rzil_host::kernel::{Errno, Request};

    /// Accepts every well-formed request; counts commits and flushes.
    #[derive(Default)]
    struct Module {
        attached: Mutex<bool>,
        commits: Mutex<u64>,
        attaches: Mutex<u64>,
    }

    impl Control for Module {
        fn ioctl(&self, request: Request<'_>) -> Result<(), Errno> {
            match request {
                Request::Attach(ra) => {
                    let mut attached = self.attached.lock();
                    if *attached || ra.provider() != "md0" {
                        return Err(libc::EBUSY);
                    }
                    *attached = true;
                    *self.attaches.lock() += 1;
                    ra.ra_instance = RZIL_INSTANCES_MAX - 1;
                    ra.ra_media_size_bytes = 8 << 20;
                    ra.ra_sector_size_bytes = 512;
                }
                Request::Commit(rc) => {
                    *self.commits.lock() += 1;
                    rc.rc_latency_ns = 5_000;
                }
                Request::Stats(rs) => {
                    let commits = *self.commits.lock();
                    rs.rs_commits = commits;
                    rs.rs_flushes = commits / 2;
                    rs.rs_lwbs_issued = commits / 2;
                    rs.rs_bytes_written = commits * 4096;
                }
                Request::Detach(_) => *self.attached.lock() = false,
                Request::Append(_) | Request::Checkpoint(_) => {}
            }
            Ok(())
        }
    }

    fn parse(args: &[&str]) -> Command {
        let argv = std::iter::once("rzil").chain(args.iter().copied());
        Cli::try_parse_from(argv).expect("valid arguments").command
    }

    fn json_lines(lines: &[String]) -> Vec<serde_json::Value> {
        lines
            .iter()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    }

    #[test]
    fn run_reports_the_module_and_says_the_crash_check_was_skipped() {
        let Command::Run(args) = parse(&[
            "run",
            "--kernel",
            "--provider",
            "md0",
            "--threads",
            "2",
            "--seconds",
            "0.2",
            "--json",
        ]) else {
            unreachable!("a run command")
        };
        let (ctl, provider) = args.kernel.selected().expect("--kernel");
        assert_eq!(ctl, Path::new("/dev/rzilctl"));
        let module = Module::default();
        let mut lines = Vec::new();
        run_on(&module, &args, ctl, provider, &mut |l| lines.push(l)).unwrap();
        let report = &json_lines(&lines)[0];
        let commits = report["commits"].as_u64().unwrap();
        assert!(commits > 0);
        assert_eq!(commits, *module.commits.lock());
        assert_eq!(report["backend"], "kernel");
        assert_eq!(report["provider"], "md0");
        assert_eq!(report["instance"], RZIL_INSTANCES_MAX - 1);
        assert_eq!(report["kernel_p50_us"], 5.0);
        assert_eq!(report["crash_check"], "skipped");
        assert_eq!(report["crash_check_skipped_reason"], CRASH_CHECK_SKIPPED);
        assert_eq!(report["crash_states_checked"], 0);
        assert!(report["acked_records_lost"].is_null());
        let fpc = report["flushes_per_commit"].as_f64().unwrap();
        assert!((0.4..=0.5).contains(&fpc), "{fpc}");
        assert!(!*module.attached.lock(), "detached");

        // The table says the same in words.
        let Command::Run(args) = parse(&[
            "run",
            "--kernel",
            "/dev/rzilctl",
            "--provider",
            "md0",
            "--seconds",
            "0.1",
        ]) else {
            unreachable!("a run command")
        };
        let mut lines = Vec::new();
        run_on(&module, &args, ctl, provider, &mut |l| lines.push(l)).unwrap();
        assert!(lines[0].starts_with("rzil run --kernel /dev/rzilctl on md0 (instance 3, 8 MiB"));
        assert!(lines[3].starts_with("  power cut: not checked: the module writes the log"));
    }

    #[test]
    fn bench_alternates_the_module_with_the_naive_baseline() {
        let dir = std::env::temp_dir().join(format!("rzil-kbench-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let naive_dev = dir.join("md0");
        std::fs::write(&naive_dev, vec![0u8; 4 << 20]).unwrap();
        let Command::Bench(args) = parse(&[
            "bench",
            "--kernel",
            "--provider",
            "md0",
            "--threads",
            "1",
            "--seconds",
            "1.2",
            "--json",
        ]) else {
            unreachable!("a bench command")
        };
        let (ctl, provider) = args.kernel.selected().expect("--kernel");
        let module = Module::default();
        let mut lines = Vec::new();
        let outcome = bench_on(&module, &args, ctl, provider, &naive_dev, &mut |l| {
            lines.push(l)
        });
        let _ = std::fs::remove_dir_all(&dir);
        outcome.unwrap();
        let rows = json_lines(&lines);
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row["threads"], 1);
        assert_eq!(row["backend"], "kernel");
        assert_eq!(row["commits"].as_u64().unwrap(), *module.commits.lock());
        assert!(row["naive_commits"].as_u64().unwrap() > 0);
        assert!(row["ratio_vs_naive"].as_f64().unwrap() > 0.0);
        // 1.2 s is two slices of at most BENCH_SLICE, each on a fresh
        // instance, detached while the baseline ran.
        assert_eq!(*module.attaches.lock(), 2);
        assert!(!*module.attached.lock());
    }
}
