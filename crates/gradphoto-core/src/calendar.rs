//! Civil dates without a time-zone database: EXIF dates carry no zone, and a day's precision is all recency needs.

/// Days since 1970-01-01 of the proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days since the epoch of an EXIF date "YYYY:MM:DD HH:MM:SS" (dashes also accepted); None when it is not a date.
pub fn exif_days(s: &str) -> Option<i64> {
    let date = s.get(..10)?;
    let mut parts = date.split([':', '-']);
    let year: i64 = parts.next()?.parse().ok()?;
    let month: u32 = parts.next()?.parse().ok()?;
    let day: u32 = parts.next()?.parse().ok()?;
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    if !(1900..=9999).contains(&year) || day == 0 || day > days_in_month {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(exif_days("2026:11:29 10:00:00"), Some(days_from_civil(2026, 11, 29)));
        assert_eq!(days_from_civil(2026, 11, 29) - days_from_civil(2025, 11, 29), 365);
        assert_eq!(exif_days("0000:00:00 00:00:00"), None);
        assert_eq!(exif_days("2023:02:29 00:00:00"), None);
        assert_eq!(exif_days("garbage"), None);
    }
}
