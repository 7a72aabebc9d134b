//! The `rzil` command line: argument parsing (clap derive), validation,
//! output (human tables or one JSON object per line) and exit codes.
//!
//! Exit status: 0 on success, 2 on any bad input or failure, with exactly
//! one line `rzil: error: ...` on stderr naming the problem. Clap's own
//! usage errors are folded into the same one-line form.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use rzil_host::backend::{DriveConfig, Tick};
use rzil_host::device::{OpenOptionsLog, ReadOnlyDevice, DIRECT_IO_ALIGN_BYTES};
use rzil_host::naive::{self, NAIVE_RECORD_BYTES_MAX};
use rzil_host::superblock::{self, Probe};
use rzil_host::units::{self, format_size_bytes};
use rzil_host::volume::Volume;
use serde_json::json;

/// Most committer threads any subcommand starts.
pub const THREADS_MAX: usize = 1024;
/// Longest timed run, in seconds (a day).
pub const SECONDS_MAX: f64 = 86_400.0;
/// Most crash states one `verify` explores.
pub const CRASHES_MAX: u64 = 1_000_000;
/// Smallest record a workload commits.
pub const RECORD_BYTES_MIN: u64 = rzil_host::backend::RECORD_BYTES_MIN as u64;
/// Largest record: one maximum-size log block.
pub const RECORD_BYTES_MAX: u64 = NAIVE_RECORD_BYTES_MAX as u64;
/// Default device of `rzil run`, relative to the working directory (the
/// repository root under `make run`).
pub const RUN_DEVICE_DEFAULT: &str = "target/rzil-run.dev";
/// A job shows a progress bar only once it has run this long.
const PROGRESS_DELAY: Duration = Duration::from_secs(1);

/// Exit status for every error.
const EXIT_ERROR: u8 = 2;

const CORE_NOT_WIRED: &str =
    "core pipeline not wired yet (the lwb pipeline of issue #2 has no host platform yet)";

#[derive(Debug, Parser)]
#[command(
    name = "rzil",
    version,
    about = "The OpenZFS ZIL lwb write path in Rust, on files and block devices",
    long_about = "The OpenZFS ZIL lwb write path in Rust, on files and block devices.\n\n\
                  Every error prints one line `rzil: error: ...` and exits with status 2."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The main job: N committers of sync records for S seconds, then a
    /// simulated power cut, replay and verification.
    Run(RunArgs),
    /// rzil against the naive baseline (each thread pwrite + fdatasync),
    /// per thread count, on the same device in the same run.
    Bench(BenchArgs),
    /// Crash consistency: record every write and flush, cut power at many
    /// points, replay, and check that every acknowledged record survived.
    Verify(VerifyArgs),
    /// Decode a log chain, like `zdb -il`.
    Dump(DumpArgs),
    /// Deterministic simulator (not built yet: issue #5; exits with status 2).
    Sim(SimArgs),
}

/// How to open the device (shared by the subcommands that write).
#[derive(Debug, Args)]
struct DeviceArgs {
    /// Create the file if missing, or format over a device that holds
    /// something else (discarding it).
    #[arg(long)]
    create: bool,
    /// Size of a file made or resized by --create (e.g. 64M, 1G); on a
    /// block device, use only this much of it.
    #[arg(long, value_name = "SIZE", value_parser = parse_device_size, requires = "create")]
    size: Option<u64>,
    /// Use O_DIRECT (falls back to buffered I/O, with a note, where the
    /// filesystem refuses it).
    #[arg(long)]
    direct: bool,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// Log device: a file or block device (created on first use if it is
    /// the default).
    #[arg(long, value_name = "PATH", default_value = RUN_DEVICE_DEFAULT)]
    dev: PathBuf,
    /// Committer threads.
    #[arg(long, value_name = "N", default_value = "16", value_parser = parse_threads, allow_negative_numbers = true)]
    threads: usize,
    /// Seconds of commits before the power cut.
    #[arg(long, value_name = "S", default_value = "5", value_parser = parse_secs, allow_negative_numbers = true)]
    seconds: f64,
    /// Bytes per record (e.g. 4096 or 4K).
    #[arg(long, value_name = "BYTES", default_value = "4K", value_parser = parse_record)]
    record: u64,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Log device: a file or block device.
    #[arg(long, value_name = "PATH")]
    dev: PathBuf,
    /// Comma-separated committer counts.
    #[arg(long, value_name = "LIST", default_value = "1,4,16,64", value_parser = parse_threads_list)]
    threads: ThreadList,
    /// Seconds per measurement (each backend, each thread count).
    #[arg(long, value_name = "S", default_value = "5", value_parser = parse_secs, allow_negative_numbers = true)]
    seconds: f64,
    /// Bytes per record (e.g. 4096 or 4K).
    #[arg(long, value_name = "BYTES", default_value = "4K", value_parser = parse_record)]
    record: u64,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// Log device: a file or block device.
    #[arg(long, value_name = "PATH")]
    dev: PathBuf,
    /// Crash states to check.
    #[arg(long, value_name = "N", default_value = "100", value_parser = parse_crashes)]
    crashes: u64,
    /// Seed for the crash points and for which unflushed writes survive.
    #[arg(long, value_name = "S", default_value = "0")]
    seed: u64,
    /// Committer threads.
    #[arg(long, value_name = "N", default_value = "8", value_parser = parse_threads, allow_negative_numbers = true)]
    threads: usize,
    /// Seconds of recorded commits.
    #[arg(long, value_name = "S", default_value = "2", value_parser = parse_secs, allow_negative_numbers = true)]
    seconds: f64,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
}

#[derive(Debug, Args)]
struct DumpArgs {
    /// Device or file holding a log.
    #[arg(value_name = "PATH")]
    path: PathBuf,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Model {
    /// The rzil core.
    Rzil,
    /// The reference model of the OpenZFS 2.2.0 C lwb path.
    #[value(name = "ozfs-2.2.0")]
    Ozfs220,
}

#[derive(Debug, Args)]
struct SimArgs {
    /// Seed range A..B (B exclusive).
    #[arg(long, value_name = "A..B", value_parser = parse_seeds)]
    seeds: std::ops::Range<u64>,
    /// Which lwb path to simulate.
    #[arg(long, value_enum, default_value = "rzil")]
    model: Model,
    /// Historic bug switch to turn on (ozfs-2.2.0 model).
    #[arg(long, value_name = "NAME")]
    bug: Option<String>,
    /// Comma-separated fault kinds to inject.
    #[arg(long, value_name = "LIST")]
    faults: Option<String>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone)]
struct ThreadList(Vec<usize>);

fn parse_threads(text: &str) -> Result<usize, String> {
    units::parse_thread_count(text, THREADS_MAX)
}

fn parse_threads_list(text: &str) -> Result<ThreadList, String> {
    units::parse_thread_list(text, THREADS_MAX).map(ThreadList)
}

fn parse_secs(text: &str) -> Result<f64, String> {
    units::parse_seconds(text, SECONDS_MAX)
}

fn parse_seeds(text: &str) -> Result<std::ops::Range<u64>, String> {
    units::parse_seed_range(text)
}

fn parse_device_size(text: &str) -> Result<u64, String> {
    units::parse_size_bytes(text)
}

fn parse_record(text: &str) -> Result<u64, String> {
    let bytes = units::parse_size_bytes(text)?;
    if !(RECORD_BYTES_MIN..=RECORD_BYTES_MAX).contains(&bytes) {
        return Err(format!(
            "record size {bytes} bytes is outside {RECORD_BYTES_MIN}..={RECORD_BYTES_MAX}"
        ));
    }
    Ok(bytes)
}

fn parse_crashes(text: &str) -> Result<u64, String> {
    let count: u64 = text
        .trim()
        .parse()
        .map_err(|_| format!("invalid crash count '{text}': expected a whole number"))?;
    if count == 0 || count > CRASHES_MAX {
        return Err(format!(
            "crash count must be from 1 to {CRASHES_MAX} (got {count})"
        ));
    }
    Ok(count)
}

/// A failure to report: one line, exit status 2.
#[derive(Debug)]
struct Failure(String);

impl<E: std::fmt::Display> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure(error.to_string())
    }
}

type Outcome = Result<(), Failure>;

/// Parse the command line, run the subcommand, map the result to an exit
/// status.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return clap_error(error),
    };
    let outcome = match cli.command {
        Command::Run(args) => run(args),
        Command::Bench(args) => bench(args),
        Command::Verify(args) => verify(args),
        Command::Dump(args) => dump(args),
        Command::Sim(args) => sim(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => fail(&message),
    }
}

fn fail(message: &str) -> ExitCode {
    // Keep it to one line whatever the source error looked like.
    let line = message.lines().map(str::trim).collect::<Vec<_>>().join(" ");
    eprintln!("rzil: error: {line}");
    ExitCode::from(EXIT_ERROR)
}

fn note(message: &str) {
    eprintln!("rzil: note: {message}");
}

/// Help and version go to stdout with status 0; `rzil` with no subcommand
/// shows the help on stderr with status 2; every other clap error becomes
/// our one-line form.
fn clap_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = error.print();
            ExitCode::SUCCESS
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            ExitCode::from(EXIT_ERROR)
        }
        _ => {
            // The first paragraph names the problem (a missing-argument
            // error lists the arguments on the lines after its first).
            let rendered = error.render().to_string();
            let paragraph: Vec<&str> = rendered
                .lines()
                .take_while(|line| !line.trim().is_empty())
                .map(str::trim)
                .collect();
            let message = paragraph.join(" ");
            fail(message.strip_prefix("error: ").unwrap_or(&message))
        }
    }
}

fn open_options(args: &DeviceArgs) -> OpenOptionsLog {
    OpenOptionsLog {
        create: args.create,
        create_size_bytes: args.size,
        direct: args.direct,
    }
}

fn open_volume(path: &Path, args: &DeviceArgs) -> Result<Volume, Failure> {
    let volume = Volume::open(path, open_options(args))?;
    if let Some(reason) = volume.device.direct_fallback() {
        note(reason);
    }
    Ok(volume)
}

/// A progress bar on stderr, shown only when stdout is a terminal and only
/// once the job has run for [`PROGRESS_DELAY`].
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    enabled: bool,
    started: Instant,
    len: u64,
    template: &'static str,
}

impl Progress {
    fn new(len: u64, template: &'static str) -> Progress {
        Progress {
            bar: None,
            enabled: std::io::stdout().is_terminal(),
            started: Instant::now(),
            len,
            template,
        }
    }

    fn update(&mut self, pos: u64, message: String) {
        if !self.enabled || self.started.elapsed() < PROGRESS_DELAY {
            return;
        }
        let bar = self.bar.get_or_insert_with(|| {
            let style = indicatif::ProgressStyle::with_template(self.template)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            indicatif::ProgressBar::new(self.len).with_style(style)
        });
        bar.set_position(pos.min(self.len));
        bar.set_message(message);
    }

    fn finish(&mut self) {
        self.enabled = false;
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

fn timed_progress(seconds: f64, label: String) -> impl FnMut(Tick) {
    let mut progress = Progress::new((seconds * 1000.0) as u64, "{prefix} [{bar:30}] {msg}");
    move |tick: Tick| {
        progress.update(
            tick.elapsed.as_millis() as u64,
            format!("{label}: {} commits", tick.commits),
        );
        if tick.elapsed.as_secs_f64() >= seconds {
            progress.finish();
        }
    }
}

fn run(args: RunArgs) -> Outcome {
    let default_dev = args.dev == Path::new(RUN_DEVICE_DEFAULT);
    let mut device = DeviceArgs {
        create: args.device.create,
        size: args.device.size,
        direct: args.device.direct,
    };
    if default_dev && !args.dev.exists() {
        // The default device is ours to make: create it on first use.
        if let Some(parent) = args.dev.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Failure(format!("{}: {e}", parent.display())))?;
        }
        device.create = true;
    }
    let _volume = open_volume(&args.dev, &device)?;
    let _ = (args.threads, args.seconds, args.record, args.json);
    Err(Failure(format!("rzil run: {CORE_NOT_WIRED}")))
}

fn bench(args: BenchArgs) -> Outcome {
    let volume = open_volume(&args.dev, &args.device)?;
    let sb = volume.superblock;
    let region = sb.log_start_bytes..sb.log_end_bytes;
    let align = if volume.device.is_direct() {
        DIRECT_IO_ALIGN_BYTES
    } else {
        1
    };
    if !args.json {
        println!(
            "device {} ({}, {}, {} I/O); record {} bytes; {} s per measurement",
            args.dev.display(),
            volume.device.kind(),
            format_size_bytes(volume.device.size_bytes()),
            if volume.device.is_direct() {
                "O_DIRECT"
            } else {
                "buffered"
            },
            args.record,
            args.seconds
        );
        println!(
            "{:>7} {:>14} {:>9} {:>9} {:>8} {:>14} {:>9} {:>9} {:>7}",
            "threads",
            "commits/s",
            "p50_us",
            "p99_us",
            "fl/cmt",
            "naive/s",
            "nv_p50",
            "nv_p99",
            "ratio"
        );
    }
    for &threads in &args.threads.0 {
        let config = DriveConfig {
            threads,
            duration: Duration::from_secs_f64(args.seconds),
            record_bytes: args.record as usize,
        };
        // rzil and naive alternate per thread count, so drift in the
        // device (cache warm-up, background writeback) hits both alike.
        // The rzil half needs the core pipeline (issue #2).
        let mut tick = timed_progress(args.seconds, format!("naive, {threads} threads"));
        let report = naive::run_naive(&volume.device, region.clone(), config, align, &mut tick)
            .map_err(|e| Failure(format!("{}: naive baseline: {e}", args.dev.display())))?;
        let latency = &report.result.latency;
        let naive_per_s = report.result.commits_per_s();
        let naive_p50_us = latency.quantile_ns(0.5) as f64 / 1000.0;
        let naive_p99_us = latency.quantile_ns(0.99) as f64 / 1000.0;
        if args.json {
            println!(
                "{}",
                json!({
                    "threads": threads,
                    "record_bytes": args.record,
                    "commits_per_s": null,
                    "p50_us": null,
                    "p99_us": null,
                    "flushes_per_commit": null,
                    "naive_commits_per_s": round2(naive_per_s),
                    "naive_p50_us": round2(naive_p50_us),
                    "naive_p99_us": round2(naive_p99_us),
                    "naive_flushes_per_commit": round2(report.flushes_per_commit),
                    "naive_commits": report.result.commits,
                    "ratio_vs_naive": null,
                    "rzil_status": "not_wired",
                })
            );
        } else {
            println!(
                "{:>7} {:>14} {:>9} {:>9} {:>8} {:>14.1} {:>9.1} {:>9.1} {:>7}",
                threads, "-", "-", "-", "-", naive_per_s, naive_p50_us, naive_p99_us, "-"
            );
        }
    }
    note(&format!(
        "rzil bench measured only the naive baseline: {CORE_NOT_WIRED}"
    ));
    Ok(())
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn verify(args: VerifyArgs) -> Outcome {
    let _volume = open_volume(&args.dev, &args.device)?;
    let _ = (
        args.crashes,
        args.seed,
        args.threads,
        args.seconds,
        args.json,
    );
    Err(Failure(format!("rzil verify: {CORE_NOT_WIRED}")))
}

fn dump(args: DumpArgs) -> Outcome {
    let device = ReadOnlyDevice::open(&args.path)?;
    let probed =
        superblock::probe(&device).map_err(|e| Failure(format!("{}: {e}", args.path.display())))?;
    match probed {
        Probe::Ours { superblock, slot } => {
            let head = superblock.chain_head;
            if args.json {
                println!(
                    "{}",
                    json!({
                        "kind": "superblock",
                        "slot": if slot == 0 { "A" } else { "B" },
                        "generation": superblock.generation,
                        "device_size_bytes": superblock.device_size_bytes,
                        "log_start_bytes": superblock.log_start_bytes,
                        "log_end_bytes": superblock.log_end_bytes,
                        "head_offset_bytes": head.map(|h| h.offset_bytes),
                        "head_size_bytes": head.map(|h| h.size_bytes),
                        "verifier": superblock.chain_verifier.iter().map(|w| format!("{w:#018x}")).collect::<Vec<_>>(),
                        "checkpoint_lr_seq": superblock.checkpoint_lr_seq,
                    })
                );
            } else {
                println!(
                    "rzil superblock (slot {}): generation {}, log region {}..{}, checkpoint lr_seq {}",
                    if slot == 0 { "A" } else { "B" },
                    superblock.generation,
                    superblock.log_start_bytes,
                    superblock.log_end_bytes,
                    superblock.checkpoint_lr_seq
                );
                match head {
                    Some(h) => println!(
                        "chain head: offset {} size {} verifier {:#x} {:#x} objset {} seq {}",
                        h.offset_bytes,
                        h.size_bytes,
                        superblock.chain_verifier[0],
                        superblock.chain_verifier[1],
                        superblock.chain_verifier[2],
                        superblock.chain_verifier[3]
                    ),
                    None => println!("chain: empty"),
                }
            }
            if head.is_none() {
                return Ok(());
            }
            Err(Failure(format!(
                "{}: decoding the chain needs the rzil::format dump API (issue #3), not wired yet",
                args.path.display()
            )))
        }
        Probe::Blank | Probe::Foreign { .. } => Err(Failure(format!(
            "{}: no rzil superblock; decoding raw log blocks needs the rzil::format dump API (issue #3), not wired yet",
            args.path.display()
        ))),
    }
}

fn sim(args: SimArgs) -> Outcome {
    let _ = (args.seeds, args.model, args.bug, args.faults, args.json);
    Err(Failure(
        "rzil sim: not built yet (issue #5: the deterministic simulator)".into(),
    ))
}
