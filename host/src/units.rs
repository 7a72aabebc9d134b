//! Parsing of the sizes, durations, lists and ranges the command line takes.
//!
//! Every parser returns a one-line message naming what was wrong, because
//! the CLI prints it verbatim after `rzil: error:`.

/// One kibibyte, the unit behind the `K` suffix.
pub const KIB_BYTES: u64 = 1024;
/// One mebibyte, the unit behind the `M` suffix.
pub const MIB_BYTES: u64 = 1024 * KIB_BYTES;
/// One gibibyte, the unit behind the `G` suffix.
pub const GIB_BYTES: u64 = 1024 * MIB_BYTES;
/// One tebibyte, the unit behind the `T` suffix.
pub const TIB_BYTES: u64 = 1024 * GIB_BYTES;

/// Parse a byte size such as `4096`, `4K`, `64M`, `1G`, `1GiB` or `512B`.
/// Suffixes are binary (powers of 1024), case-insensitive.
pub fn parse_size_bytes(text: &str) -> Result<u64, String> {
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(
            "empty size (expected a number with an optional K/M/G/T suffix, e.g. 64M)".into(),
        );
    }
    let split = trimmed
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(trimmed.len());
    let (digits, suffix) = trimmed.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "invalid size '{text}': expected a number with an optional K/M/G/T suffix, e.g. 64M"
        ));
    }
    let multiplier_bytes = match suffix.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => KIB_BYTES,
        "m" | "mb" | "mib" => MIB_BYTES,
        "g" | "gb" | "gib" => GIB_BYTES,
        "t" | "tb" | "tib" => TIB_BYTES,
        _ => {
            return Err(format!(
                "invalid size '{text}': unknown suffix '{suffix}' (use K, M, G or T)"
            ))
        }
    };
    let value: u64 = digits
        .parse()
        .map_err(|_| format!("invalid size '{text}': number too large"))?;
    value
        .checked_mul(multiplier_bytes)
        .ok_or_else(|| format!("invalid size '{text}': too large"))
}

/// Render a byte count for messages: exact, with a binary suffix when it
/// divides evenly (`64 MiB`), else plain bytes.
pub fn format_size_bytes(size_bytes: u64) -> String {
    for (unit_bytes, name) in [
        (TIB_BYTES, "TiB"),
        (GIB_BYTES, "GiB"),
        (MIB_BYTES, "MiB"),
        (KIB_BYTES, "KiB"),
    ] {
        if size_bytes >= unit_bytes && size_bytes % unit_bytes == 0 {
            return format!("{} {name}", size_bytes / unit_bytes);
        }
    }
    format!("{size_bytes} bytes")
}

/// Parse a comma-separated list of thread counts (`1,4,16,64`), each within
/// `1..=threads_max`.
pub fn parse_thread_list(text: &str, threads_max: usize) -> Result<Vec<usize>, String> {
    let mut counts = Vec::new();
    for part in text.split(',') {
        counts.push(parse_thread_count(part, threads_max)?);
    }
    Ok(counts)
}

/// Parse one thread count within `1..=threads_max`.
pub fn parse_thread_count(text: &str, threads_max: usize) -> Result<usize, String> {
    let part = text.trim();
    let count: usize = part.parse().map_err(|_| {
        format!("invalid thread count '{part}': expected a whole number from 1 to {threads_max}")
    })?;
    if count == 0 {
        return Err("thread count must be at least 1 (got 0)".into());
    }
    if count > threads_max {
        return Err(format!(
            "thread count {count} is over the limit of {threads_max}"
        ));
    }
    Ok(count)
}

/// Parse a duration in seconds (`10`, `0.5`) within
/// `[seconds_min, seconds_max]` (`seconds_min` > 0).
pub fn parse_seconds(text: &str, seconds_min: f64, seconds_max: f64) -> Result<f64, String> {
    let part = text.trim();
    let seconds: f64 = part
        .parse()
        .map_err(|_| format!("invalid duration '{part}': expected seconds, e.g. 10 or 0.5"))?;
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(format!(
            "duration must be more than 0 seconds (got '{part}')"
        ));
    }
    // The text as given: an f64 displays 1e300 as all of its 301 digits.
    if seconds < seconds_min {
        return Err(format!(
            "duration '{part}' s is under the minimum of {seconds_min} s"
        ));
    }
    if seconds > seconds_max {
        return Err(format!(
            "duration '{part}' s is over the limit of {seconds_max} s"
        ));
    }
    Ok(seconds)
}

/// Parse a half-open seed range `A..B` (B > A), or a single seed `A`
/// meaning `A..A+1`.
pub fn parse_seed_range(text: &str) -> Result<std::ops::Range<u64>, String> {
    let part = text.trim();
    let parse_seed = |s: &str| -> Result<u64, String> {
        s.trim().parse::<u64>().map_err(|_| {
            format!("invalid seed range '{part}': expected A..B with whole numbers, e.g. 0..1000")
        })
    };
    match part.split_once("..") {
        Some((start, end)) => {
            let start = parse_seed(start)?;
            let end = parse_seed(end)?;
            if end <= start {
                return Err(format!(
                    "invalid seed range '{part}': the end must be greater than the start"
                ));
            }
            Ok(start..end)
        }
        None => {
            let start = parse_seed(part)?;
            let end = start
                .checked_add(1)
                .ok_or_else(|| format!("invalid seed range '{part}': seed too large"))?;
            Ok(start..end)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_binary_suffixes() {
        assert_eq!(parse_size_bytes("4096"), Ok(4096));
        assert_eq!(parse_size_bytes("4K"), Ok(4096));
        assert_eq!(parse_size_bytes("4kib"), Ok(4096));
        assert_eq!(parse_size_bytes("64M"), Ok(64 << 20));
        assert_eq!(parse_size_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_size_bytes(" 2T "), Ok(2 << 40));
        assert_eq!(parse_size_bytes("512B"), Ok(512));
    }

    #[test]
    fn bad_sizes_name_the_problem() {
        assert!(parse_size_bytes("").unwrap_err().contains("empty"));
        assert!(parse_size_bytes("M")
            .unwrap_err()
            .contains("invalid size 'M'"));
        assert!(parse_size_bytes("12Q")
            .unwrap_err()
            .contains("unknown suffix 'Q'"));
        assert!(parse_size_bytes("-5").unwrap_err().contains("invalid size"));
        assert!(parse_size_bytes("99999999999999999999")
            .unwrap_err()
            .contains("too large"));
        assert!(parse_size_bytes("99999999999T")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn sizes_format_exactly() {
        assert_eq!(format_size_bytes(64 << 20), "64 MiB");
        assert_eq!(format_size_bytes(4096), "4 KiB");
        assert_eq!(format_size_bytes(4097), "4097 bytes");
        assert_eq!(format_size_bytes(0), "0 bytes");
    }

    #[test]
    fn thread_lists_are_bounded() {
        assert_eq!(parse_thread_list("1,4,16,64", 1024), Ok(vec![1, 4, 16, 64]));
        assert!(parse_thread_list("1,0", 1024)
            .unwrap_err()
            .contains("at least 1"));
        assert!(parse_thread_list("1,,4", 1024)
            .unwrap_err()
            .contains("invalid thread count"));
        assert!(parse_thread_count("2000", 1024)
            .unwrap_err()
            .contains("over the limit"));
    }

    #[test]
    fn seconds_and_seed_ranges() {
        assert_eq!(parse_seconds("0.5", 0.001, 10.0), Ok(0.5));
        assert_eq!(parse_seconds("0.001", 0.001, 10.0), Ok(0.001));
        assert!(parse_seconds("0", 0.001, 10.0).is_err());
        assert!(parse_seconds("nan", 0.001, 10.0).is_err());
        // Positive, but a run of no time at all (1e-300 s is 0 ns).
        assert!(parse_seconds("1e-300", 0.001, 10.0)
            .unwrap_err()
            .contains("under the minimum of 0.001 s"));
        let huge = parse_seconds("1e300", 0.001, 10.0).unwrap_err();
        assert!(huge.contains("'1e300'") && huge.len() < 80, "{huge}");
        assert!(parse_seconds("11", 0.001, 10.0)
            .unwrap_err()
            .contains("over the limit"));
        assert_eq!(parse_seed_range("3..10"), Ok(3..10));
        assert_eq!(parse_seed_range("7"), Ok(7..8));
        assert!(parse_seed_range("10..3").unwrap_err().contains("greater"));
        assert!(parse_seed_range("a..b")
            .unwrap_err()
            .contains("invalid seed range"));
    }
}
