//! How counts and spans of time read, on the pages and in messages: "1 item", "2 items",
//! never "1 items"; "5 minutes".

/// `n` and `noun`, the noun in the plural unless `n` is 1 (every noun the pages count takes
/// an "s").
pub fn count(n: impl Into<i64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A span of whole seconds in the largest unit that divides it: "5 minutes", "90 seconds".
pub fn duration(seconds: i32) -> String {
    match seconds {
        s if s > 0 && s % 3600 == 0 => count(s / 3600, "hour"),
        s if s > 0 && s % 60 == 0 => count(s / 60, "minute"),
        s => count(s, "second"),
    }
}

/// `bytes` in the largest binary unit that keeps the number below 1024: "72.5 MiB".
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        count(bytes as i64, "byte")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// An RFC 3339 time to the minute, as the lists show it: "2026-12-01 10:00".
pub fn moment(rfc3339: &str) -> String {
    rfc3339.replace('T', " ").chars().take(16).collect()
}

#[cfg(test)]
mod tests {
    use super::{count, duration, moment, size};

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(size(1), "1 byte");
        assert_eq!(size(1023), "1023 bytes");
        assert_eq!(size(1536), "1.5 KiB");
        assert_eq!(size(76_000_000), "72.5 MiB");
    }

    #[test]
    fn moments_read_to_the_minute() {
        assert_eq!(moment("2026-12-01T10:00:59.123Z"), "2026-12-01 10:00");
    }

    #[test]
    fn durations_take_the_largest_whole_unit() {
        assert_eq!(duration(300), "5 minutes");
        assert_eq!(duration(3600), "1 hour");
        assert_eq!(duration(90), "90 seconds");
        assert_eq!(duration(0), "0 seconds");
    }

    #[test]
    fn one_is_singular_and_the_rest_plural() {
        assert_eq!(count(1, "item"), "1 item");
        assert_eq!(count(0, "skip"), "0 skips");
        assert_eq!(count(7_i32, "prompt"), "7 prompts");
    }
}
