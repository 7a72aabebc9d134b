//! `rzil run|bench --kernel [CTLDEV] --provider NAME`: the same workloads
//! driven through the FreeBSD kernel module rzil.ko (see
//! `rzil_host::kernel` and kmod/README.md) instead of the core in this
//! process.

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use rzil_host::backend::{drive, DriveConfig, DriveResult};
use rzil_host::histogram::Histogram;
use rzil_host::kernel::abi::RZIL_RECORD_BYTES_MAX;
use rzil_host::kernel::{check_provider, with_kernel_log, ControlDevice, KernelEnd};
use rzil_host::units::format_size_bytes;
use serde_json::json;

use super::{latency_us, round2, timed_progress, BenchArgs, Failure, Outcome, RunArgs};

/// Why `rzil run --kernel` reports no power-cut check.
pub const CRASH_CHECK_SKIPPED: &str = "the module writes the log through GEOM, below this process, so rzil cannot record the writes and flushes to cut power under them; rzil run and rzil verify without --kernel check crash consistency of the same core";

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

pub fn run(args: &RunArgs, ctl_path: &Path, provider: &str) -> Outcome {
    check_args(args.record, provider)?;
    let ctl = ControlDevice::open(ctl_path)?;
    let config = DriveConfig {
        threads: args.threads,
        duration: Duration::from_secs_f64(args.seconds),
        record_bytes: args.record as usize,
    };
    let mut progress = timed_progress(
        args.seconds,
        format!("rzil run --kernel, {} threads", args.threads),
    );
    let (body, end) = with_kernel_log(&ctl, provider, args.threads, |log| {
        drive(log, config, &|_, _| {}, &mut progress)
    })?;
    let result = body.map_err(|e| body_failure(e, &end))?;
    clean(&end)?;
    let (flushes_per_commit, lwbs_issued, bytes_written, io_errors) = counters(&end, &result);
    let at = &end.attached;
    if args.json {
        println!(
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
        );
    } else {
        println!(
            "rzil run --kernel {} on {} (instance {}, {}, {}-byte sectors): {} threads, {}-byte records, {} s",
            ctl_path.display(),
            at.provider,
            at.instance,
            format_size_bytes(at.media_size_bytes),
            at.sector_size_bytes,
            args.threads,
            args.record,
            args.seconds
        );
        println!(
            "  {} commits, {:.0} commits/s, p50 {:.1} us, p99 {:.1} us, {:.3} flushes/commit, {} lwbs",
            result.commits,
            result.commits_per_s(),
            latency_us(&result, 0.5),
            latency_us(&result, 0.99),
            flushes_per_commit,
            lwbs_issued
        );
        println!(
            "  in the module: commit p50 {:.1} us, p99 {:.1} us; {} written, {} I/O errors",
            kernel_us(&end.kernel_latency, 0.5),
            kernel_us(&end.kernel_latency, 0.99),
            format_size_bytes(bytes_written),
            io_errors
        );
        println!("  power cut: not checked: {CRASH_CHECK_SKIPPED}");
    }
    if io_errors > 0 {
        return Err(Failure(format!(
            "{}: {io_errors} failed writes or flushes (see dmesg)",
            at.provider
        )));
    }
    Ok(())
}

pub fn bench(args: &BenchArgs, ctl_path: &Path, provider: &str) -> Outcome {
    check_args(args.record, provider)?;
    let ctl = ControlDevice::open(ctl_path)?;
    for (i, &threads) in args.threads.0.iter().enumerate() {
        let config = DriveConfig {
            threads,
            duration: Duration::from_secs_f64(args.seconds),
            record_bytes: args.record as usize,
        };
        let mut progress = timed_progress(args.seconds, format!("rzil.ko, {threads} threads"));
        // A fresh instance per thread count, as the userspace bench starts
        // a fresh log per slice.
        let (body, end) = with_kernel_log(&ctl, provider, threads, |log| {
            drive(log, config, &|_, _| {}, &mut progress)
        })?;
        let result = body.map_err(|e| body_failure(e, &end))?;
        clean(&end)?;
        let (flushes_per_commit, lwbs_issued, _, io_errors) = counters(&end, &result);
        if io_errors > 0 {
            return Err(Failure(format!(
                "{provider}: {io_errors} failed writes or flushes (see dmesg)"
            )));
        }
        let at = &end.attached;
        if args.json {
            println!(
                "{}",
                json!({
                    "backend": "kernel",
                    "provider": at.provider,
                    "threads": threads,
                    "record_bytes": args.record,
                    "commits": result.commits,
                    "commits_per_s": round2(result.commits_per_s()),
                    "p50_us": round2(latency_us(&result, 0.5)),
                    "p99_us": round2(latency_us(&result, 0.99)),
                    "kernel_p50_us": round2(kernel_us(&end.kernel_latency, 0.5)),
                    "kernel_p99_us": round2(kernel_us(&end.kernel_latency, 0.99)),
                    "flushes_per_commit": round2(flushes_per_commit),
                    "lwbs_issued": lwbs_issued,
                })
            );
            continue;
        }
        if i == 0 {
            println!(
                "rzil.ko via {} on {} ({}, {}-byte sectors); record {} bytes; {} s per measurement",
                ctl_path.display(),
                at.provider,
                format_size_bytes(at.media_size_bytes),
                at.sector_size_bytes,
                args.record,
                args.seconds
            );
            println!(
                "no naive baseline: the module holds {provider} exclusively while attached (rzil bench --dev /dev/{} measures it without the module)",
                provider.trim_start_matches("/dev/")
            );
            println!(
                "{:>7} {:>12} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}",
                "threads", "commits/s", "p50_us", "p99_us", "k_p50", "k_p99", "fl/cmt", "lwbs"
            );
        }
        println!(
            "{:>7} {:>12.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>8.3} {:>8}",
            threads,
            result.commits_per_s(),
            latency_us(&result, 0.5),
            latency_us(&result, 0.99),
            kernel_us(&end.kernel_latency, 0.5),
            kernel_us(&end.kernel_latency, 0.99),
            flushes_per_commit,
            lwbs_issued
        );
    }
    Ok(())
}
