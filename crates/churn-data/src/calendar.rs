//! Calendar days as counts since 1970-01-01 (the Parquet/Arrow `Date` representation): parsing,
//! printing and month arithmetic, without a date library.

/// Milliseconds in a day.
pub const DAY_MS: i64 = 86_400_000;

/// Returns the day number of a civil date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i32, month: u32, day: u32) -> i32 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era =
        year_of_era as u32 * 365 + year_of_era as u32 / 4 - year_of_era as u32 / 100 + day_of_year;
    era * 146_097 + day_of_era as i32 - 719_468
}

/// Returns the civil date (year, month, day) of a day number.
pub fn civil_from_days(days: i32) -> (i32, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = (shifted - era * 146_097) as u32;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era as i32 + era * 400 + i32::from(month <= 2);
    (year, month, day)
}

/// Parses `YYYY-MM-DD` (years 1000 to 9999); `None` when the text is not a real date.
pub fn parse_date(text: &str) -> Option<i32> {
    let mut parts = text.trim().splitn(3, '-');
    let year: i32 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    if !(1000..=9999).contains(&year)
        || !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
    {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// Prints a day number as `YYYY-MM-DD`.
pub fn format_date(days: i32) -> String {
    let (year, month, day) = civil_from_days(days);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Returns the same day of the month `months` later, clamped to the month's last day.
pub fn add_months(days: i32, months: i32) -> i32 {
    let (year, month, day) = civil_from_days(days);
    let index = year * 12 + month as i32 - 1 + months;
    let (new_year, new_month) = (index.div_euclid(12), index.rem_euclid(12) as u32 + 1);
    days_from_civil(
        new_year,
        new_month,
        day.min(days_in_month(new_year, new_month)),
    )
}

/// Returns the day of the year, 0 for January 1st.
pub fn day_of_year(days: i32) -> u32 {
    let (year, _, _) = civil_from_days(days);
    (days - days_from_civil(year, 1, 1)) as u32
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip_and_match_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        // 2024-02-29 is day 19_782 (Python: `(date(2024, 2, 29) - date(1970, 1, 1)).days`).
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
        for days in -800_000..800_000 {
            let (year, month, day) = civil_from_days(days);
            assert_eq!(days_from_civil(year, month, day), days);
        }
    }

    #[test]
    fn dates_parse_print_and_step_by_month() {
        assert_eq!(
            parse_date("2025-01-31").map(format_date).as_deref(),
            Some("2025-01-31")
        );
        assert_eq!(parse_date("2025-02-29"), None);
        assert_eq!(parse_date("2025-13-01"), None);
        assert_eq!(parse_date("yesterday"), None);
        assert_eq!(parse_date("9999999-01-01"), None);
        let january_31 = parse_date("2024-01-31").unwrap();
        assert_eq!(format_date(add_months(january_31, 1)), "2024-02-29");
        assert_eq!(format_date(add_months(january_31, 13)), "2025-02-28");
        assert_eq!(format_date(add_months(january_31, -2)), "2023-11-30");
        assert_eq!(day_of_year(parse_date("2024-12-31").unwrap()), 365);
    }
}
