//! The `rzil` command line: argument parsing (clap derive), validation,
//! output (human tables or one JSON object per line) and exit codes.
//!
//! Exit status: 0 on success, 2 on any bad input or failure, with exactly
//! one line `rzil: error: ...` on stderr naming the problem. Clap's own
//! usage errors are folded into the same one-line form.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use rzil::format::{
    dump_block, dump_chain, infer_block, Blkptr, BlockInfo, ChainEnd, DumpSink, RecordInfo,
    WalkLimits,
};
use rzil_host::backend::{
    drive, drive_with, CountingDevice, DriveConfig, DriveResult, RecordId, Tick, DRIVE_STALL,
};
use rzil_host::cputime::process_cpu;
use rzil_host::crashdev::{CrashPoint, RecordingDevice, RECORDED_BYTES_MAX};
use rzil_host::device::{BlockIo, OpenOptionsLog, ReadOnlyDevice, DIRECT_IO_ALIGN_BYTES};
use rzil_host::naive::{self, NAIVE_RECORD_BYTES_MAX};
use rzil_host::platform::{with_host_log, HostEnd, HostOptions};
use rzil_host::rng::Xoshiro256;
use rzil_host::superblock::{self, Probe, Superblock};
use rzil_host::units::{self, format_size_bytes};
use rzil_host::verify::{self, Ledger, Verdict};
use rzil_host::volume::Volume;
use serde_json::json;

mod kernel;

/// Most committer threads any subcommand starts.
pub const THREADS_MAX: usize = 1024;
/// Longest timed run, in seconds (a day).
pub const SECONDS_MAX: f64 = 86_400.0;
/// Shortest timed run, in seconds: a shorter one measures only the start
/// of its threads, and below a nanosecond it has no duration at all (it
/// used to run for 0 s and report 0 commits as a success).
pub const SECONDS_MIN: f64 = 0.001;
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
    /// Deterministic simulator: seeded schedules, faults and power cuts on
    /// the core or the OpenZFS 2.2.0 model (status 2 if a seed fails).
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
    #[arg(long, value_name = "SIZE", value_parser = parse_device_size, requires = "create", allow_negative_numbers = true)]
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
    #[arg(long, value_name = "BYTES", default_value = "4K", value_parser = parse_record, allow_negative_numbers = true)]
    record: u64,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    kernel: kernel::KernelArgs,
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Log device: a file or block device.
    #[arg(long, value_name = "PATH", required_unless_present = "kernel")]
    dev: Option<PathBuf>,
    /// Comma-separated committer counts.
    #[arg(long, value_name = "LIST", default_value = "1,4,16,64", value_parser = parse_threads_list, allow_negative_numbers = true)]
    threads: ThreadList,
    /// Seconds per measurement (each backend, each thread count).
    #[arg(long, value_name = "S", default_value = "5", value_parser = parse_secs, allow_negative_numbers = true)]
    seconds: f64,
    /// Bytes per record (e.g. 4096 or 4K).
    #[arg(long, value_name = "BYTES", default_value = "4K", value_parser = parse_record, allow_negative_numbers = true)]
    record: u64,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    kernel: kernel::KernelArgs,
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// Log device: a file or block device.
    #[arg(long, value_name = "PATH")]
    dev: PathBuf,
    /// Crash states to check.
    #[arg(long, value_name = "N", default_value = "100", value_parser = parse_crashes, allow_negative_numbers = true)]
    crashes: u64,
    /// Seed for the crash points and for which unflushed writes survive.
    #[arg(
        long,
        value_name = "S",
        default_value = "0",
        allow_negative_numbers = true
    )]
    seed: u64,
    /// Committer threads.
    #[arg(long, value_name = "N", default_value = "8", value_parser = parse_threads, allow_negative_numbers = true)]
    threads: usize,
    /// Seconds of recorded commits.
    #[arg(long, value_name = "S", default_value = "2", value_parser = parse_secs, allow_negative_numbers = true)]
    seconds: f64,
    /// Bytes per record (e.g. 4096 or 4K).
    #[arg(long, value_name = "BYTES", default_value = "4K", value_parser = parse_record, allow_negative_numbers = true)]
    record: u64,
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
    #[arg(long, value_name = "A..B", value_parser = parse_seeds, allow_negative_numbers = true)]
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
    units::parse_seconds(text, SECONDS_MIN, SECONDS_MAX)
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
    // Not eprintln!, which panics when stderr cannot be written (a full
    // disk behind `2>file`): the status still says what happened.
    let _ = writeln!(std::io::stderr(), "rzil: error: {line}");
    ExitCode::from(EXIT_ERROR)
}

fn note(message: &str) {
    let _ = writeln!(std::io::stderr(), "rzil: note: {message}");
}

/// Print one report line on stdout, like `println!`, which would panic
/// when stdout cannot be written (`> /dev/full`, a full disk, EIO). A
/// broken pipe never gets here: SIGPIPE ends the process first (see
/// `main.rs`). Every report line is printed with no log open (a run's
/// figures after its log closed cleanly, dump and sim read only), so the
/// error ends the process at once, with the usual one line and status 2.
fn print_line(line: std::fmt::Arguments<'_>) {
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout
        .write_fmt(line)
        .and_then(|()| stdout.write_all(b"\n"))
    {
        drop(stdout);
        let _ = fail(&format!("writing the report to stdout: {error}"));
        std::process::exit(i32::from(EXIT_ERROR));
    }
}

/// `println!` for report lines: see [`print_line`].
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::cli::print_line(format_args!($($arg)*))
    };
}
pub(crate) use outln;

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
            let mut message = paragraph.join(" ");
            // '--record -4K' reaches clap as the flags '-4' and '-K' (a
            // negative number with a suffix is not a number to it): say
            // what the token probably was.
            let negative = |arg: &str| {
                let mut chars = arg.chars();
                chars.next() == Some('-') && chars.next().is_some_and(|c| c.is_ascii_digit())
            };
            if error.kind() == ErrorKind::UnknownArgument
                && error
                    .get(clap::error::ContextKind::InvalidArg)
                    .is_some_and(|arg| negative(&arg.to_string()))
            {
                message.push_str(" (a negative value? sizes, counts and durations are positive)");
            }
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
    let mut progress = Progress::new((seconds * 1000.0) as u64, "[{bar:30}] {msg}");
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

/// What recovery found on a volume before a new log starts on it.
struct Recovered {
    /// Records replayed from the previous chain (after its checkpoint).
    records: u64,
    /// Records a new log must number above.
    first_lr_seq: u64,
}

/// Recovery (as `zil_replay` at mount): replay whatever chain the
/// superblock names, so the new log's first superblock update, which
/// abandons that chain, loses nothing. Replayed records count as applied.
/// A chain block that cannot be read (an I/O error) is not the chain's end:
/// starting a new log then would discard every record after it, so that is
/// refused unless `create` says to discard them.
fn recover(
    device: &dyn BlockIo,
    superblock: &Superblock,
    path: &Path,
    quiet: bool,
    create: bool,
) -> Result<Recovered, Failure> {
    if superblock.chain_head.is_none() {
        return Ok(Recovered {
            records: 0,
            first_lr_seq: superblock.checkpoint_lr_seq,
        });
    }
    let replayed = verify::replay(device, superblock);
    if let Some(why) = &replayed.unreadable {
        if !create {
            return Err(Failure(format!(
                "{}: recovery could not read the previous log ({why}); refusing to start a new log, which would discard its records from that block on (give --create to discard them)",
                path.display()
            )));
        }
        if !quiet {
            note(&format!(
                "{}: discarding the previous log from an unreadable block on (--create): {why}",
                path.display()
            ));
        }
    }
    let records = replayed.pieces.len() as u64 + replayed.other_records;
    if records > 0 && !quiet {
        note(&format!(
            "recovered {records} records from the previous log on {} (chain end: {})",
            path.display(),
            replayed.chain_end
        ));
    }
    Ok(Recovered {
        records,
        first_lr_seq: superblock
            .checkpoint_lr_seq
            .max(replayed.last_lr_seq.unwrap_or(0)),
    })
}

/// A log whose commits all succeeded can still fail to close cleanly (its
/// last checkpoint could not be persisted): that is an error too.
fn unclean_close(dev: &Path, end: &HostEnd) -> Outcome {
    match &end.failure {
        Some(why) => Err(Failure(format!("{}: {why}", dev.display()))),
        None => Ok(()),
    }
}

/// `rzil verify` ends its recording once this much is recorded, leaving the
/// recorder room for the writes in flight and the final checkpoint.
pub const VERIFY_RECORDING_BYTES_MAX: usize = RECORDED_BYTES_MAX / 4 * 3;

/// `rzil bench` alternates rzil and the naive baseline in slices of at most
/// this long.
pub const BENCH_SLICE: Duration = Duration::from_secs(1);

/// How many crash images `rzil run` checks at its power cut.
pub const RUN_CRASH_STATES: u64 = 16;

fn latency_us(result: &DriveResult, q: f64) -> f64 {
    result.latency.quantile_ns(q) as f64 / 1000.0
}

fn run(args: RunArgs) -> Outcome {
    if let Some((ctl, provider)) = args.kernel.selected() {
        return kernel::run(&args, ctl, provider);
    }
    let default_dev = args.dev == Path::new(RUN_DEVICE_DEFAULT);
    let mut device = DeviceArgs {
        create: args.device.create,
        size: args.device.size,
        direct: args.device.direct,
    };
    if default_dev && !args.dev.exists() {
        // The default device is ours to make: create it on first use.
        if let Some(parent) = args.dev.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                Failure(format!(
                    "{}: cannot make the directory of the default device {RUN_DEVICE_DEFAULT} (give --dev PATH): {e}",
                    parent.display()
                ))
            })?;
        }
        device.create = true;
    }
    let volume = open_volume(&args.dev, &device)?;
    let recovered = recover(
        &volume.device,
        &volume.superblock,
        &args.dev,
        args.json,
        args.device.create,
    )?;
    let record_bytes = args.record as usize;
    let recorder = RecordingDevice::covering(&volume.device, volume.superblock.log_end_bytes)
        .map_err(|e| Failure(format!("{}: {e}", args.dev.display())))?;
    let counting = CountingDevice::new(&recorder);
    let ledger = Ledger::new(record_bytes);
    let observe = |seq: u64, block: &[u8]| ledger.observe_block(seq, block);
    let config = DriveConfig {
        threads: args.threads,
        duration: Duration::from_secs_f64(args.seconds),
        record_bytes,
    };
    let options = HostOptions::for_direct(volume.device.is_direct(), recovered.first_lr_seq);
    let mut progress = timed_progress(args.seconds, format!("rzil run, {} threads", args.threads));
    let (body, end) = with_host_log(
        &counting,
        volume.superblock,
        volume.slot,
        options,
        Some(&observe),
        |log| -> Result<(DriveResult, CrashPoint, u64), Failure> {
            let mut fold_error = None;
            let result = drive(
                log,
                config,
                &|committer, seq| {
                    ledger.ack(
                        RecordId {
                            committer: committer as u32,
                            seq,
                        },
                        recorder.mark(),
                    )
                },
                &mut |tick| {
                    progress(tick);
                    // The power cut comes at the end: keep memory to the
                    // unflushed window, and forget records a durable
                    // checkpoint already settled.
                    if let Err(error) = recorder.fold() {
                        fold_error.get_or_insert(error);
                    }
                    ledger.prune_through(log.checkpoint_lr_seq());
                },
            )
            .map_err(|e| Failure(format!("{}: {e}", args.dev.display())))?;
            if let Some(error) = fold_error {
                return Err(Failure(format!("crash recorder: {error}")));
            }
            let (_, flushes) = counting.counts();
            Ok((result, recorder.mark(), flushes))
        },
    )
    .map_err(|e| Failure(format!("{}: {e}", args.dev.display())))?;
    let (result, cut, flushes) = body?;
    unclean_close(&args.dev, &end)?;

    // The power cut: several images of the device at the end of the run,
    // each keeping a different seeded subset of the unflushed writes.
    let mut crasher = recorder.crasher();
    let mut lost = 0u64;
    let mut problems = Vec::new();
    for i in 0..RUN_CRASH_STATES {
        let (image, _) = crasher
            .crash(cut, i)
            .map_err(|e| Failure(format!("crash image: {e}")))?;
        let verdict = ledger.check_image(&image, cut);
        lost += verdict.acked_lost;
        if !verdict.ok() {
            problems.push(format!("crash state {i}: {verdict}"));
        }
    }
    let commits = result.commits;
    let flushes_per_commit = flushes as f64 / commits.max(1) as f64;
    if args.json {
        outln!(
            "{}",
            json!({
                "commits": commits,
                "commits_per_s": round2(result.commits_per_s()),
                "p50_us": round2(latency_us(&result, 0.5)),
                "p99_us": round2(latency_us(&result, 0.99)),
                "flushes_per_commit": round2(flushes_per_commit),
                "crash_states_checked": RUN_CRASH_STATES,
                "acked_records_lost": lost,
                "threads": args.threads,
                "record_bytes": record_bytes,
                "seconds": args.seconds,
                "lwbs_issued": end.core.lwbs_issued,
                "recovered_records": recovered.records,
                "direct_io": volume.device.is_direct(),
            })
        );
    } else {
        outln!(
            "rzil run on {} ({}, {} I/O): {} threads, {}-byte records, {} s",
            args.dev.display(),
            volume.device.kind(),
            if volume.device.is_direct() {
                "O_DIRECT"
            } else {
                "buffered"
            },
            args.threads,
            record_bytes,
            args.seconds
        );
        outln!(
            "  {commits} commits, {:.0} commits/s, p50 {:.1} us, p99 {:.1} us, {:.3} flushes/commit, {} lwbs",
            result.commits_per_s(),
            latency_us(&result, 0.5),
            latency_us(&result, 0.99),
            flushes_per_commit,
            end.core.lwbs_issued
        );
        outln!(
            "  power cut: {RUN_CRASH_STATES} crash states replayed and checked, {lost} acknowledged records lost"
        );
    }
    if ledger.bad_blocks() > 0 {
        return Err(Failure(format!(
            "{} written log blocks failed verification",
            ledger.bad_blocks()
        )));
    }
    if let Some(first) = problems.first() {
        return Err(Failure(format!(
            "crash check failed in {} of {RUN_CRASH_STATES} states; first: {first}",
            problems.len()
        )));
    }
    Ok(())
}

fn bench(args: BenchArgs) -> Outcome {
    if let Some((ctl, provider)) = args.kernel.selected() {
        return kernel::bench(&args, ctl, provider);
    }
    let Some(dev) = args.dev.as_deref() else {
        return Err(Failure("--dev PATH is required without --kernel".into()));
    };
    let volume = open_volume(dev, &args.device)?;
    let recovered = recover(
        &volume.device,
        &volume.superblock,
        dev,
        args.json,
        args.device.create,
    )?;
    let (mut superblock, mut slot) = (volume.superblock, volume.slot);
    let mut first_lr_seq = recovered.first_lr_seq;
    let region = superblock.log_start_bytes..superblock.log_end_bytes;
    let align = if volume.device.is_direct() {
        DIRECT_IO_ALIGN_BYTES
    } else {
        1
    };
    if !args.json {
        outln!(
            "device {} ({}, {}, {} I/O); record {} bytes; {} s per measurement",
            dev.display(),
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
        outln!(
            "{:>7} {:>12} {:>9} {:>9} {:>8} {:>7} {:>12} {:>9} {:>9} {:>7} {:>7}",
            "threads",
            "commits/s",
            "p50_us",
            "p99_us",
            "fl/cmt",
            "cpu_us",
            "naive/s",
            "nv_p50",
            "nv_p99",
            "nv_cpu",
            "ratio"
        );
    }
    for &threads in &args.threads.0 {
        let (mut flushes, mut lwbs_issued) = (0u64, 0u64);
        let measured = alternate(
            args.seconds,
            threads,
            args.record as usize,
            "rzil",
            |config, tick| {
                let counting = CountingDevice::new(&volume.device);
                let (slice, end) = with_host_log(
                    &counting,
                    superblock,
                    slot,
                    HostOptions::for_direct(volume.device.is_direct(), first_lr_seq),
                    None,
                    |log| drive(log, config, &|_, _| {}, tick),
                )
                .map_err(|e| Failure(format!("{}: {e}", dev.display())))?;
                let slice = slice.map_err(|e| Failure(format!("{}: rzil: {e}", dev.display())))?;
                unclean_close(dev, &end)?;
                (superblock, slot) = (end.superblock, end.slot);
                first_lr_seq = superblock.checkpoint_lr_seq;
                flushes += counting.counts().1;
                lwbs_issued += end.core.lwbs_issued;
                Ok(slice)
            },
            |config, tick| {
                naive::run_naive(&volume.device, region.clone(), config, align, tick)
                    .map_err(|e| Failure(format!("{}: naive baseline: {e}", dev.display())))
            },
        )?;
        let row = measured.row(threads, args.record, flushes, lwbs_issued);
        let (result, naive_result) = (&measured.result, &measured.naive);
        let (cpu_us, naive_cpu_us) = measured.cpu_us_per_commit();
        if args.json {
            let mut line = row.json();
            if let Some(keys) = line.as_object_mut() {
                keys.insert("cpu_us_per_commit".into(), json!(round2(cpu_us)));
                keys.insert(
                    "naive_cpu_us_per_commit".into(),
                    json!(round2(naive_cpu_us)),
                );
            }
            outln!("{line}");
        } else {
            outln!(
                "{:>7} {:>12.0} {:>9.1} {:>9.1} {:>8.3} {:>7.1} {:>12.0} {:>9.1} {:>9.1} {:>7.1} {:>7.2}",
                threads,
                result.commits_per_s(),
                latency_us(result, 0.5),
                latency_us(result, 0.99),
                row.flushes_per_commit(),
                cpu_us,
                naive_result.commits_per_s(),
                latency_us(naive_result, 0.5),
                latency_us(naive_result, 0.99),
                naive_cpu_us,
                row.ratio()
            );
        }
    }
    Ok(())
}

/// One thread count of `rzil bench`: the backend under test and the naive
/// baseline's figures.
struct Alternated {
    result: DriveResult,
    naive: DriveResult,
    naive_flushes: u64,
    /// CPU time this process used while the backend ran, and while the
    /// baseline did ([`process_cpu`]: the kernel's own threads are not in
    /// it, so with `--kernel` it misses the module's completions).
    cpu: Duration,
    naive_cpu: Duration,
}

impl Alternated {
    /// µs of this process's CPU per commit of the backend and of the
    /// baseline: with commits/s, what says whether a run was bound by the
    /// CPUs or by the device.
    fn cpu_us_per_commit(&self) -> (f64, f64) {
        let per = |cpu: Duration, commits: u64| cpu.as_secs_f64() * 1e6 / commits.max(1) as f64;
        (
            per(self.cpu, self.result.commits),
            per(self.naive_cpu, self.naive.commits),
        )
    }
}

impl Alternated {
    /// The figures of `rzil bench` for this thread count, given what the
    /// backend counted: its flushes and lwbs issued.
    fn row(
        &self,
        threads: usize,
        record_bytes: u64,
        flushes: u64,
        lwbs_issued: u64,
    ) -> BenchRow<'_> {
        BenchRow {
            threads,
            record_bytes,
            result: &self.result,
            naive: &self.naive,
            flushes,
            naive_flushes: self.naive_flushes,
            lwbs_issued,
        }
    }
}

/// Measure `backend` against `naive` at `threads` committers for `seconds`
/// each: they alternate in slices of at most [`BENCH_SLICE`] on the same
/// device, so drift in the device (other writers' journal commits,
/// background writeback) hits both alike. One progress display follows
/// both.
fn alternate(
    seconds: f64,
    threads: usize,
    record_bytes: usize,
    label: &str,
    mut backend: impl FnMut(DriveConfig, &mut dyn FnMut(Tick)) -> Result<DriveResult, Failure>,
    mut naive: impl FnMut(DriveConfig, &mut dyn FnMut(Tick)) -> Result<naive::NaiveReport, Failure>,
) -> Result<Alternated, Failure> {
    let slices = (seconds / BENCH_SLICE.as_secs_f64()).ceil().max(1.0) as u32;
    let config = DriveConfig {
        threads,
        duration: Duration::from_secs_f64(seconds / f64::from(slices)),
        record_bytes,
    };
    let mut progress = timed_progress(
        seconds * 2.0,
        format!("{label} vs naive, {threads} threads"),
    );
    let mut out = Alternated {
        result: DriveResult::default(),
        naive: DriveResult::default(),
        naive_flushes: 0,
        cpu: Duration::ZERO,
        naive_cpu: Duration::ZERO,
    };
    let mut done = Duration::ZERO;
    // One slice, its progress shown after what came before, and the CPU
    // this process used while it ran.
    fn slice<T>(
        progress: &mut dyn FnMut(Tick),
        before: Tick,
        run: impl FnOnce(&mut dyn FnMut(Tick)) -> Result<T, Failure>,
    ) -> Result<(T, Duration), Failure> {
        let cpu_before = process_cpu();
        let result = run(&mut |t: Tick| {
            progress(Tick {
                commits: before.commits + t.commits,
                elapsed: before.elapsed + t.elapsed,
            })
        })?;
        Ok((result, process_cpu().saturating_sub(cpu_before)))
    }
    for _ in 0..slices {
        let before = Tick {
            commits: out.result.commits,
            elapsed: done,
        };
        let (result, cpu) = slice(&mut progress, before, |tick| backend(config, tick))?;
        out.cpu += cpu;
        done += result.elapsed;
        out.result.merge(&result);

        let before = Tick {
            commits: out.result.commits,
            elapsed: done,
        };
        let (report, cpu) = slice(&mut progress, before, |tick| naive(config, tick))?;
        out.naive_cpu += cpu;
        done += report.result.elapsed;
        out.naive_flushes += report.flushes;
        out.naive.merge(&report.result);
    }
    Ok(out)
}

/// One thread count's figures of `rzil bench`: rzil (the userspace core or
/// the kernel module) against the naive baseline in the same run.
struct BenchRow<'a> {
    threads: usize,
    record_bytes: u64,
    result: &'a DriveResult,
    naive: &'a DriveResult,
    flushes: u64,
    naive_flushes: u64,
    lwbs_issued: u64,
}

impl BenchRow<'_> {
    fn flushes_per_commit(&self) -> f64 {
        self.flushes as f64 / self.result.commits.max(1) as f64
    }

    fn ratio(&self) -> f64 {
        self.result.commits_per_s() / self.naive.commits_per_s().max(f64::MIN_POSITIVE)
    }

    /// The stable JSON keys of a bench line, as an object (a backend may
    /// add keys of its own).
    fn json(&self) -> serde_json::Value {
        let naive_flushes_per_commit = self.naive_flushes as f64 / self.naive.commits.max(1) as f64;
        json!({
            "threads": self.threads,
            "record_bytes": self.record_bytes,
            "commits": self.result.commits,
            "commits_per_s": round2(self.result.commits_per_s()),
            "p50_us": round2(latency_us(self.result, 0.5)),
            "p99_us": round2(latency_us(self.result, 0.99)),
            "flushes_per_commit": round2(self.flushes_per_commit()),
            "lwbs_issued": self.lwbs_issued,
            "naive_commits": self.naive.commits,
            "naive_commits_per_s": round2(self.naive.commits_per_s()),
            "naive_p50_us": round2(latency_us(self.naive, 0.5)),
            "naive_p99_us": round2(latency_us(self.naive, 0.99)),
            "naive_flushes_per_commit": round2(naive_flushes_per_commit),
            "ratio_vs_naive": round2(self.ratio()),
        })
    }
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

fn verify(args: VerifyArgs) -> Outcome {
    let volume = open_volume(&args.dev, &args.device)?;
    let recovered = recover(
        &volume.device,
        &volume.superblock,
        &args.dev,
        args.json,
        args.device.create,
    )?;
    let record_bytes = args.record as usize;
    let recorder = RecordingDevice::covering(&volume.device, volume.superblock.log_end_bytes)
        .map_err(|e| Failure(format!("{}: {e}", args.dev.display())))?;
    let ledger = Ledger::new(record_bytes);
    let observe = |seq: u64, block: &[u8]| ledger.observe_block(seq, block);
    let config = DriveConfig {
        threads: args.threads,
        duration: Duration::from_secs_f64(args.seconds),
        record_bytes,
    };
    let mut progress = timed_progress(args.seconds, "recording".into());
    // Every write of the run is kept; end it early rather than overflow.
    let near_full = || recorder.live_bytes() >= VERIFY_RECORDING_BYTES_MAX;
    let (result, end) = with_host_log(
        &recorder,
        volume.superblock,
        volume.slot,
        HostOptions::for_direct(volume.device.is_direct(), recovered.first_lr_seq),
        Some(&observe),
        |log| {
            drive_with(
                log,
                config,
                DRIVE_STALL,
                &near_full,
                &|committer, seq| {
                    ledger.ack(
                        RecordId {
                            committer: committer as u32,
                            seq,
                        },
                        recorder.mark(),
                    )
                },
                &mut progress,
            )
        },
    )
    .map_err(|e| Failure(format!("{}: {e}", args.dev.display())))?;
    let result = result.map_err(|e| Failure(format!("{}: {e}", args.dev.display())))?;
    unclean_close(&args.dev, &end)?;
    if near_full() && !args.json {
        note(&format!(
            "recording ended after {:.1} s, at the crash recorder's bound of {}",
            result.elapsed.as_secs_f64(),
            format_size_bytes(VERIFY_RECORDING_BYTES_MAX as u64)
        ));
    }
    let events = recorder.mark();
    let mut rng = Xoshiro256::new(args.seed);
    let mut points: Vec<CrashPoint> = (0..args.crashes)
        .map(|_| rng.below(events as u64 + 1) as CrashPoint)
        .collect();
    points.sort_unstable();
    let mut crasher = recorder.crasher();
    let mut totals = Verdict::default();
    let mut failing = 0u64;
    let mut first_failure = None;
    let mut bar = Progress::new(args.crashes, "[{bar:30}] {pos}/{len} crash states {msg}");
    for (i, &at) in points.iter().enumerate() {
        let (image, _) = crasher
            .crash(
                at,
                args.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            )
            .map_err(|e| Failure(format!("crash image: {e}")))?;
        let verdict = ledger.check_image(&image, at);
        totals.acked_checked += verdict.acked_checked;
        totals.acked_lost += verdict.acked_lost;
        totals.corrupt += verdict.corrupt;
        totals.phantom += verdict.phantom;
        totals.out_of_order += verdict.out_of_order;
        totals.replayed += verdict.replayed;
        if !verdict.ok() {
            failing += 1;
            first_failure.get_or_insert(format!("crash state {i} at event {at}: {verdict}"));
        }
        bar.update(i as u64 + 1, format!("{} lost", totals.acked_lost));
    }
    bar.finish();
    if args.json {
        outln!(
            "{}",
            json!({
                "crash_states": args.crashes,
                "acked_records_lost": totals.acked_lost,
                "seed": args.seed,
                "commits": result.commits,
                "acked_checks": totals.acked_checked,
                "records_replayed": totals.replayed,
                "corrupt": totals.corrupt,
                "phantom": totals.phantom,
                "out_of_order": totals.out_of_order,
                "failing_states": failing,
                "events_recorded": events,
            })
        );
    } else {
        outln!(
            "rzil verify on {}: {} commits recorded ({} events), {} crash states (seed {})",
            args.dev.display(),
            result.commits,
            events,
            args.crashes,
            args.seed
        );
        outln!(
            "  {} acknowledged-record checks, {} records replayed; lost {}, corrupt {}, phantom {}, out of order {}",
            totals.acked_checked,
            totals.replayed,
            totals.acked_lost,
            totals.corrupt,
            totals.phantom,
            totals.out_of_order
        );
    }
    if ledger.bad_blocks() > 0 {
        return Err(Failure(format!(
            "{} written log blocks failed verification",
            ledger.bad_blocks()
        )));
    }
    match first_failure {
        Some(first) => Err(Failure(format!(
            "{failing} of {} crash states failed (seed {}); first: {first}",
            args.crashes, args.seed
        ))),
        None => Ok(()),
    }
}

/// Prints a chain or block as `zdb -il` does, or as JSON lines.
struct DumpPrinter {
    json: bool,
}

impl DumpSink for DumpPrinter {
    fn block(&mut self, block: &BlockInfo) {
        if self.json {
            outln!(
                "{}",
                json!({
                    "kind": "block",
                    "blk_seq": block.blk_seq,
                    "offset_bytes": block.bp.offset_bytes(),
                    "size_bytes": block.size_bytes,
                    "format": block.format.name(),
                    "nused_bytes": block.nused_bytes,
                    "checksum_ok": block.checksum_ok,
                    "error": block.error.map(|e| e.name()),
                    "records": block.record_count,
                })
            );
        } else {
            outln!("{block}");
        }
    }

    fn record(&mut self, record: &RecordInfo) {
        if self.json {
            let write = record.write;
            outln!(
                "{}",
                json!({
                    "kind": "record",
                    "txtype": record.txtype_name(),
                    "seq": record.common.seq,
                    "txg": record.common.txg,
                    "reclen": record.common.reclen,
                    "foid": write.map(|w| w.foid),
                    "offset": write.map(|w| w.offset),
                    "length": write.map(|w| w.length),
                    "write_kind": write.map(|w| w.kind.name()),
                })
            );
        } else {
            outln!("{record}");
        }
    }
}

fn dump(args: DumpArgs) -> Outcome {
    let device = ReadOnlyDevice::open(&args.path)?;
    dump_device(&device, &args.path, args.json)
}

/// `rzil dump` of an open device (any [`BlockIo`], so tests can fail its
/// reads).
fn dump_device(device: &dyn BlockIo, path: &Path, json: bool) -> Outcome {
    let probed =
        superblock::probe(device).map_err(|e| Failure(format!("{}: {e}", path.display())))?;
    let mut printer = DumpPrinter { json };
    match probed {
        Probe::Ours { superblock, slot } => {
            let head = superblock.chain_head;
            if json {
                outln!(
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
                outln!(
                    "rzil superblock (slot {}): generation {}, log region {}..{}, checkpoint lr_seq {}",
                    if slot == 0 { "A" } else { "B" },
                    superblock.generation,
                    superblock.log_start_bytes,
                    superblock.log_end_bytes,
                    superblock.checkpoint_lr_seq
                );
            }
            let Some(header) = verify::header_of(&superblock) else {
                if !json {
                    outln!("chain: empty");
                }
                return Ok(());
            };
            let mut buf = vec![0u8; rzil::format::ZIL_MAX_BLKSZ];
            let mut limits = WalkLimits::UNCLAIMED;
            limits.blocks_max = verify::blocks_max(&superblock);
            let summary = dump_chain(
                &mut verify::DeviceSource::new(device),
                &header.log,
                &limits,
                &mut buf,
                &mut printer,
            );
            let read_failed = matches!(summary.end, ChainEnd::ReadFailed { .. });
            if json {
                outln!(
                    "{}",
                    json!({
                        "kind": "chain_end",
                        "blocks_read": summary.blocks_read,
                        "blocks_accepted": summary.blocks_accepted,
                        "records": summary.records,
                        "end": summary.end.name(),
                    })
                );
            } else if summary.blocks_accepted == 0 && !read_failed {
                // The head is the block the next commit will write: after a
                // clean close (everything checkpointed) it holds old bytes.
                outln!(
                    "chain: empty (the head block has not been written since the last checkpoint; end: {})",
                    summary.end.name()
                );
            } else {
                outln!(
                    "chain: {} blocks read, {} accepted, {} records; end: {}",
                    summary.blocks_read,
                    summary.blocks_accepted,
                    summary.records,
                    summary.end
                );
            }
            // A block that cannot be read is an I/O error, not the
            // chain's end: the chain may go on past it.
            if let ChainEnd::ReadFailed { blk_seq, error } = &summary.end {
                return Err(Failure(format!(
                    "{}: log block seq {blk_seq} could not be read: {error}",
                    path.display()
                )));
            }
            Ok(())
        }
        Probe::Blank | Probe::Foreign { .. } => dump_lone_block(device, path, &mut printer),
    }
}

/// A file that is not an rzil device may be one raw log block (as zdb or a
/// test extracts them): infer its format and verifier and dump it.
fn dump_lone_block(device: &dyn BlockIo, path: &Path, printer: &mut DumpPrinter) -> Outcome {
    let size = device.size_bytes();
    let not_a_block = || {
        Failure(format!(
            "{}: not an rzil device, nor one OpenZFS log block whose verifier can be inferred (no log-block magic, or a hole next pointer)",
            path.display()
        ))
    };
    if size == 0 || size > rzil::format::ZIL_MAX_BLKSZ as u64 || size % 512 != 0 {
        return Err(not_a_block());
    }
    let mut block = vec![0u8; size as usize];
    device.read_at(0, &mut block)?;
    let (format, verifier) = infer_block(&block).ok_or_else(not_a_block)?;
    let bp = Blkptr::try_log_block(0, 0, size as u32, verifier, 0).map_err(|_| not_a_block())?;
    let info = dump_block(&block, &bp, format, printer);
    if info.error.is_some() {
        return Err(Failure(format!(
            "{}: log block rejected: {}",
            path.display(),
            info.error.map(|e| e.name()).unwrap_or("unknown")
        )));
    }
    Ok(())
}

/// `rzil sim`: the deterministic simulator (crate `rzil-sim`, issue #5).
fn sim(args: SimArgs) -> Outcome {
    let model = match args.model {
        Model::Rzil => rzil_sim::Model::Rzil,
        Model::Ozfs220 => rzil_sim::Model::Ozfs220,
    };
    let mut sim_args = rzil_sim::SimArgs::new(args.seeds.clone(), model);
    if let Some(name) = &args.bug {
        if matches!(args.model, Model::Rzil) {
            return Err(Failure(
                "--bug needs --model ozfs-2.2.0 (a bug switch names OpenZFS code)".into(),
            ));
        }
        sim_args.bug = Some(rzil_sim::BugName::parse(name).map_err(|e| format!("--bug: {e}"))?);
    }
    if let Some(list) = &args.faults {
        sim_args.faults = rzil_sim::FaultSet::parse(list).map_err(|e| format!("--faults: {e}"))?;
    }
    let rep = rzil_sim::run(&sim_args);
    if args.json {
        outln!("{}", rep.to_json());
    } else {
        outln!(
            "seeds {}..{}: {} run, {} steps, {} crash states, {} failures ({:.1} s)",
            args.seeds.start,
            args.seeds.end,
            rep.seeds_run,
            rep.steps,
            rep.crash_states,
            rep.failures,
            rep.elapsed_s
        );
        if let (Some(seed), Some(f)) = (rep.first_failing_seed, &rep.first_failure) {
            outln!("first failing seed {seed}: {f}");
            for line in &rep.trace {
                outln!("  {line}");
            }
        }
    }
    match rep.first_failing_seed {
        Some(seed) if !rep.expected_loss => Err(Failure(format!(
            "rzil sim: {} of {} seeds failed; replay the first with --seeds {seed}..{}",
            rep.failures,
            rep.seeds_run,
            seed + 1
        ))),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rzil_host::device::{DeviceError, MemDevice};

    /// A device whose reads past `readable_to_bytes` fail with EIO (a disk
    /// going bad under the log).
    struct FailingReads<'a> {
        inner: &'a MemDevice,
        readable_to_bytes: u64,
    }

    impl BlockIo for FailingReads<'_> {
        fn size_bytes(&self) -> u64 {
            self.inner.size_bytes()
        }
        fn sector_size_bytes(&self) -> u32 {
            self.inner.sector_size_bytes()
        }
        fn write_at(&self, offset_bytes: u64, buf: &[u8]) -> Result<(), DeviceError> {
            self.inner.write_at(offset_bytes, buf)
        }
        fn read_at(&self, offset_bytes: u64, buf: &mut [u8]) -> Result<(), DeviceError> {
            if offset_bytes > self.readable_to_bytes {
                return Err(DeviceError::Io {
                    path: "failing".into(),
                    op: "pread",
                    source: std::io::Error::from_raw_os_error(libc::EIO),
                });
            }
            self.inner.read_at(offset_bytes, buf)
        }
        fn flush(&self) -> Result<(), DeviceError> {
            self.inner.flush()
        }
    }

    /// A log cut off mid-run, with its superblock pointing at the chain's
    /// first block and nothing checkpointed: every record is to replay.
    fn crashed_log() -> (MemDevice, Superblock) {
        // Large enough that the ring cannot wrap over the first blocks.
        let size_bytes = 64 * 1024 * 1024;
        let dev = MemDevice::zeroed(size_bytes);
        let mut fresh = Superblock::fresh(size_bytes as u64, [1, 2, 54, 1]).unwrap();
        let slot = superblock::format(&dev, &mut fresh).unwrap();
        let config = DriveConfig {
            threads: 2,
            duration: Duration::from_millis(100),
            record_bytes: 4096,
        };
        let ((first, image), _) = with_host_log(
            &dev,
            fresh,
            slot,
            HostOptions::for_direct(false, 0),
            None,
            |log| {
                let Ok(Probe::Ours { superblock, .. }) = superblock::probe(&dev) else {
                    panic!("no superblock at the start of the run");
                };
                drive(log, config, &|_, _| {}, &mut |_| {}).unwrap();
                (superblock, dev.snapshot())
            },
        )
        .unwrap();
        let crashed = MemDevice::from_image(image);
        let mut superblock = first;
        superblock.checkpoint_lr_seq = 0;
        superblock::format(&crashed, &mut superblock).unwrap();
        (crashed, superblock)
    }

    #[test]
    fn recovery_refuses_to_start_a_new_log_over_a_chain_it_cannot_read() {
        let (crashed, superblock) = crashed_log();
        let path = Path::new("dev");
        let whole = recover(&crashed, &superblock, path, true, false).unwrap();
        assert!(whole.records > 10, "{} records", whole.records);
        // The first block reads, the rest fail: the walk stops at the
        // second block, which is not the chain's end. Starting a new log
        // there used to abandon every record after the first block.
        let head = superblock.chain_head.unwrap();
        let failing = FailingReads {
            inner: &crashed,
            readable_to_bytes: head.offset_bytes,
        };
        let Err(Failure(why)) = recover(&failing, &superblock, path, true, false) else {
            panic!("recovery went on past an unreadable log block");
        };
        assert!(
            why.contains("could not read the previous log") && why.contains("--create"),
            "{why}"
        );
        assert!(why.contains("Input/output error"), "{why}");
        // --create says to discard what cannot be read.
        let partial = recover(&failing, &superblock, path, true, true).unwrap();
        assert!(partial.records < whole.records);
    }

    #[test]
    fn dump_of_a_chain_it_cannot_read_to_the_end_is_an_error() {
        let (crashed, superblock) = crashed_log();
        let path = Path::new("dev");
        for json in [false, true] {
            dump_device(&crashed, path, json).unwrap();
            let failing = FailingReads {
                inner: &crashed,
                readable_to_bytes: superblock.chain_head.unwrap().offset_bytes,
            };
            // It used to print the chain up to the unreadable block as if
            // that were its end, and exit 0.
            let Err(Failure(why)) = dump_device(&failing, path, json) else {
                panic!("dump took an unreadable block for the chain's end");
            };
            assert!(
                why.contains("could not be read") && why.contains("Input/output error"),
                "{why}"
            );
        }
    }
}
