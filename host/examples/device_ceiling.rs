//! The device's own ceiling for N committers of R-byte sync records: what
//! any group commit on this file could reach if its CPU work were free.
//!
//! With N committers, each waiting for its one record to be durable, at
//! most N records are written and not yet flushed at any time. This
//! example lets the device have exactly that, with no log format, no
//! checksums, no wake-ups and no refill time: K flusher threads (K = 1, 2,
//! 4, ... N) each own N/K record slots, write all of them with one
//! `pwrite`, `fdatasync`, and go again at once; K = N is the naive
//! pattern without its per-record CPU work. Records counted are records
//! whose flush returned. Only the raw record bytes are written (rzil also
//! writes an lr_write_t header and a block tail per record), so the
//! figure is generous to any design.
//!
//! The naive baseline of `rzil bench` (N threads each `pwrite` +
//! `fdatasync`, with the bench's record fill) is measured in the same run,
//! before and after the sweep, and the last lines say whether the `rzil
//! bench` ratio target (issue #4: 7x naive at 64 committers) fits under
//! this run's ceiling.
//!
//! `cargo run --release -p rzil-host --example device_ceiling -- PATH [N] [SECONDS] [RECORD_BYTES] [direct]`
//! (`make bench-host-ceiling`). PATH is a scratch file: it is created or
//! resized to [`DEVICE_BYTES`] and overwritten. `direct` opens it with
//! `O_DIRECT` (both the sweep and the baseline), as `rzil bench --direct`
//! does; RECORD_BYTES must then be a multiple of 4096.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rzil_host::backend::{fill_pattern, DriveConfig};
use rzil_host::device::{AlignedBuf, BlockIo, LogDevice, OpenOptionsLog, DIRECT_IO_ALIGN_BYTES};
use rzil_host::naive;

/// Size the scratch file is made.
const DEVICE_BYTES: u64 = 256 << 20;
/// Committers when none is given.
const THREADS_DEFAULT: usize = 64;
/// Seconds per measurement when none are given.
const SECONDS_DEFAULT: f64 = 2.0;
/// Record bytes when none are given.
const RECORD_BYTES_DEFAULT: usize = 4096;
/// The ratio issue #4 asks of `rzil bench` at 64 committers.
const RATIO_TARGET: f64 = 7.0;

/// Records per second of `flushers` threads each writing `per_flush`
/// records of `record_bytes` with one `pwrite` and then `fdatasync`, for
/// `seconds`. Each thread cycles through its own slice of the device.
fn measure_batched(
    dev: &LogDevice,
    flushers: usize,
    per_flush: usize,
    record_bytes: usize,
    seconds: f64,
) -> Result<f64, String> {
    let write_bytes = per_flush * record_bytes;
    let slice_bytes = dev.size_bytes() / flushers as u64;
    if slice_bytes < write_bytes as u64 {
        return Err(format!(
            "{flushers} slices of {slice_bytes} bytes cannot hold {write_bytes}-byte writes"
        ));
    }
    let stop = AtomicBool::new(false);
    let records = AtomicU64::new(0);
    let began = Instant::now();
    let failed = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..flushers as u64)
            .map(|k| {
                let (stop, records) = (&stop, &records);
                scope.spawn(move || -> Result<(), String> {
                    let mut buf = AlignedBuf::zeroed(write_bytes);
                    fill_pattern(k + 1, 0, &mut buf[..]);
                    let start = k * slice_bytes;
                    let mut cursor = start;
                    while !stop.load(Ordering::Relaxed) {
                        if cursor + write_bytes as u64 > start + slice_bytes {
                            cursor = start;
                        }
                        dev.write_at(cursor, &buf[..]).map_err(|e| e.to_string())?;
                        dev.flush().map_err(|e| e.to_string())?;
                        records.fetch_add(per_flush as u64, Ordering::Relaxed);
                        cursor += write_bytes as u64;
                    }
                    Ok(())
                })
            })
            .collect();
        std::thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
        workers
            .into_iter()
            .filter_map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("a flusher panicked".into()))
                    .err()
            })
            .next()
    });
    if let Some(e) = failed {
        return Err(e);
    }
    Ok(records.load(Ordering::Relaxed) as f64 / began.elapsed().as_secs_f64())
}

/// Commits per second of `rzil bench`'s naive baseline.
fn measure_naive(
    dev: &LogDevice,
    threads: usize,
    record_bytes: usize,
    seconds: f64,
) -> Result<f64, String> {
    let config = DriveConfig {
        threads,
        duration: Duration::from_secs_f64(seconds),
        record_bytes,
    };
    let align = if dev.is_direct() {
        DIRECT_IO_ALIGN_BYTES
    } else {
        1
    };
    let report = naive::run_naive(dev, 0..dev.size_bytes(), config, align, &mut |_| {})
        .map_err(|e| e.to_string())?;
    Ok(report.result.commits_per_s())
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let path = PathBuf::from(
        args.next()
            .ok_or("usage: device_ceiling PATH [N] [SECONDS] [RECORD_BYTES]")?,
    );
    let threads: usize = match args.next() {
        Some(a) => a.parse().map_err(|_| format!("N: not a count: {a}"))?,
        None => THREADS_DEFAULT,
    };
    let seconds: f64 = match args.next() {
        Some(a) => a
            .parse()
            .map_err(|_| format!("SECONDS: not a number: {a}"))?,
        None => SECONDS_DEFAULT,
    };
    let record_bytes: usize = match args.next() {
        Some(a) => a
            .parse()
            .map_err(|_| format!("RECORD_BYTES: not a count: {a}"))?,
        None => RECORD_BYTES_DEFAULT,
    };
    let direct = match args.next().as_deref() {
        None => false,
        Some("direct") => true,
        Some(a) => {
            return Err(format!(
                "expected `direct` or nothing after RECORD_BYTES, not {a}"
            ))
        }
    };
    if direct && record_bytes % DIRECT_IO_ALIGN_BYTES != 0 {
        return Err(format!(
            "with direct, RECORD_BYTES must be a multiple of {DIRECT_IO_ALIGN_BYTES}"
        ));
    }
    if threads == 0 || !seconds.is_finite() || seconds <= 0.0 || record_bytes == 0 {
        return Err("N, SECONDS and RECORD_BYTES must be above zero".into());
    }
    let dev = LogDevice::open(
        &path,
        OpenOptionsLog {
            create: true,
            create_size_bytes: Some(DEVICE_BYTES),
            direct,
        },
    )
    .map_err(|e| e.to_string())?;
    if let Some(why) = dev.direct_fallback() {
        return Err(format!("O_DIRECT refused: {why}"));
    }

    println!(
        "{}: {threads} committers, {record_bytes}-byte records, {} I/O, {seconds} s each",
        path.display(),
        if direct { "O_DIRECT" } else { "buffered" }
    );
    let naive_before = measure_naive(&dev, threads, record_bytes, seconds)?;
    println!("{:>9} {:>10} {:>12}", "flushers", "per_flush", "records/s");
    let mut ceiling = (0.0f64, 0usize);
    let mut flushers = 1usize;
    while flushers <= threads {
        let per_flush = threads / flushers;
        let rate = measure_batched(&dev, flushers, per_flush, record_bytes, seconds)?;
        println!("{flushers:>9} {per_flush:>10} {rate:>12.0}");
        if rate > ceiling.0 {
            ceiling = (rate, flushers);
        }
        flushers *= 2;
    }
    let naive_after = measure_naive(&dev, threads, record_bytes, seconds)?;
    let naive = (naive_before + naive_after) / 2.0;
    println!(
        "naive baseline (rzil bench's): {naive_before:.0} before, {naive_after:.0} after the sweep, mean {naive:.0} commits/s"
    );
    println!(
        "device ceiling: {:.0} records/s ({} flushers), {:.2}x the naive baseline; \
         {RATIO_TARGET}x naive would be {:.0} commits/s: {}",
        ceiling.0,
        ceiling.1,
        ceiling.0 / naive.max(1.0),
        RATIO_TARGET * naive,
        if ceiling.0 >= RATIO_TARGET * naive {
            "under the ceiling"
        } else {
            "ABOVE the ceiling (no design can reach it on this device in this run)"
        }
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("device_ceiling: {e}");
        std::process::exit(2);
    }
}
