//! Calendar arithmetic for response dates (days since 1970-01-01, proleptic Gregorian).

use std::time::{SystemTime, UNIX_EPOCH};

/// Today's day number (UTC).
pub fn today() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| (d.as_secs() / 86_400) as i64)
        .unwrap_or(0)
}

/// (year, month, day) of a day number (H. Hinnant's `civil_from_days`).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// Day number of (year, month, day), or `None` when the date does not exist.
pub fn days_from_civil(y: i64, m: u32, d: u32) -> Option<i64> {
    if !(1..=12).contains(&m) || d == 0 || d > 31 {
        return None;
    }
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 } as i64;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    (civil(days) == (y, m, d)).then_some(days)
}

/// `YYYYMMDD`.
pub fn ymd_compact(days: i64) -> String {
    let (y, m, d) = civil(days);
    format!("{y:04}{m:02}{d:02}")
}

/// `YYYY-MM-DD`.
pub fn ymd_dashed(days: i64) -> String {
    let (y, m, d) = civil(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Parse `YYYY-MM-DD` or `YYYYMMDD`.
pub fn parse_ymd(s: &str) -> Option<i64> {
    let digits: String = s.chars().filter(|c| *c != '-').collect();
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let y = digits.get(0..4)?.parse().ok()?;
    let m = digits.get(4..6)?.parse().ok()?;
    let d = digits.get(6..8)?.parse().ok()?;
    days_from_civil(y, m, d)
}

/// 0 = Monday … 6 = Sunday.
pub fn weekday(days: i64) -> u32 {
    // 1970-01-01 was a Thursday (3).
    ((days + 3).rem_euclid(7)) as u32
}

/// Three-letter upper-case day name, as TimeInTransit answers it.
pub fn weekday_name(days: i64) -> &'static str {
    ["MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"][weekday(days) as usize]
}

/// The day `n` business days (Mon–Fri) after `days`.
pub fn add_business_days(mut days: i64, n: u32) -> i64 {
    let mut left = n;
    while left > 0 {
        days += 1;
        if weekday(days) < 5 {
            left -= 1;
        }
    }
    days
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_weekdays() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(
            parse_ymd("2024-02-29").map(ymd_compact).as_deref(),
            Some("20240229")
        );
        assert_eq!(parse_ymd("2023-02-29"), None);
        assert_eq!(parse_ymd("20190501").map(weekday_name), Some("WED"));
        // Friday 2019-05-03 + 1 business day = Monday 2019-05-06.
        let fri = parse_ymd("2019-05-03").unwrap_or_default();
        assert_eq!(ymd_dashed(add_business_days(fri, 1)), "2019-05-06");
    }
}
