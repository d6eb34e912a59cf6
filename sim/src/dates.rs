//! Calendar helpers for response dates, on the `time` crate.

use time::macros::format_description;
use time::{Date, Duration, OffsetDateTime, Weekday};

/// Today (UTC).
pub fn today() -> Date {
    OffsetDateTime::now_utc().date()
}

/// `YYYYMMDD`.
pub fn ymd_compact(d: Date) -> String {
    d.format(format_description!("[year][month][day]"))
        .unwrap_or_default()
}

/// `YYYY-MM-DD`.
pub fn ymd_dashed(d: Date) -> String {
    d.format(format_description!("[year]-[month]-[day]"))
        .unwrap_or_default()
}

/// Parse `YYYY-MM-DD` or `YYYYMMDD`; `None` for anything else or a date that does not exist.
pub fn parse_ymd(s: &str) -> Option<Date> {
    Date::parse(s.trim(), format_description!("[year]-[month]-[day]"))
        .or_else(|_| Date::parse(s.trim(), format_description!("[year][month][day]")))
        .ok()
}

/// Three-letter upper-case day name, as TimeInTransit answers it.
pub fn weekday_name(d: Date) -> &'static str {
    match d.weekday() {
        Weekday::Monday => "MON",
        Weekday::Tuesday => "TUE",
        Weekday::Wednesday => "WED",
        Weekday::Thursday => "THU",
        Weekday::Friday => "FRI",
        Weekday::Saturday => "SAT",
        Weekday::Sunday => "SUN",
    }
}

/// The day `n` business days (Mon–Fri) after `d`.
pub fn add_business_days(mut d: Date, n: u32) -> Date {
    let mut left = n;
    while left > 0 {
        d = d.saturating_add(Duration::days(1));
        if !matches!(d.weekday(), Weekday::Saturday | Weekday::Sunday) {
            left -= 1;
        }
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_format_and_business_days() {
        assert_eq!(
            parse_ymd("2024-02-29").map(ymd_compact).as_deref(),
            Some("20240229")
        );
        assert_eq!(parse_ymd("2023-02-29"), None);
        assert_eq!(parse_ymd("20190501").map(weekday_name), Some("WED"));
        // Friday 2019-05-03 + 1 business day = Monday 2019-05-06.
        let fri = parse_ymd("2019-05-03").unwrap();
        assert_eq!(ymd_dashed(add_business_days(fri, 1)), "2019-05-06");
    }
}
