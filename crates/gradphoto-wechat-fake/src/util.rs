//! Small helpers: random identifiers in WeChat's shapes, Beijing-time formatting, query parsing, HTML escaping.

use std::collections::HashMap;

use rand::Rng;

/// Wall-clock milliseconds since the Unix epoch.
pub(crate) fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

pub(crate) fn digits(n: usize) -> String {
    let mut rng = rand::rng();
    (0..n).map(|_| char::from(b'0' + rng.random_range(0..10u8))).collect()
}

pub(crate) fn hex(n: usize, upper: bool) -> String {
    let mut rng = rand::rng();
    let set: &[u8] = if upper { b"0123456789ABCDEF" } else { b"0123456789abcdef" };
    (0..n).map(|_| char::from(set[rng.random_range(0..16)])).collect()
}

/// A random UUID (version 4 layout): WeChat Pay's notification ids look like this.
pub(crate) fn uuid() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The request id the live official-account servers append to error messages.
pub(crate) fn rid() -> String {
    format!("{}-{}-{}", hex(8, false), hex(8, false), hex(8, false))
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { yoe + era * 400 + 1 } else { yoe + era * 400 }, m, d)
}

/// Beijing time (UTC+8, no daylight saving) of a Unix time: (y, mo, d, h, mi, s).
fn beijing(unix_s: i64) -> (i64, i64, i64, i64, i64, i64) {
    let local = unix_s + 8 * 3600;
    let (y, mo, d) = civil(local.div_euclid(86_400));
    let s = local.rem_euclid(86_400);
    (y, mo, d, s / 3600, s / 60 % 60, s % 60)
}

/// RFC 3339 in Beijing time, as WeChat Pay writes `success_time` and `create_time`: `2018-06-08T10:34:56+08:00`.
pub(crate) fn rfc3339(unix_s: i64) -> String {
    let (y, mo, d, h, mi, s) = beijing(unix_s);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}+08:00")
}

/// `yyyyMMddHHmmss` in Beijing time (inside prepay ids).
pub(crate) fn compact_time(unix_s: i64) -> String {
    let (y, mo, d, h, mi, s) = beijing(unix_s);
    format!("{y:04}{mo:02}{d:02}{h:02}{mi:02}{s:02}")
}

/// `yyyyMMdd` in Beijing time (inside transaction and refund ids).
pub(crate) fn compact_day(unix_s: i64) -> String {
    compact_time(unix_s)[..8].to_string()
}

/// A query string's parameters; the first of a repeated name wins. Never fails: odd input gives odd values,
/// which the handlers then refuse in WeChat's words.
pub(crate) fn params(query: Option<&str>) -> HashMap<String, String> {
    form(query.unwrap_or("").as_bytes())
}

pub(crate) fn form(bytes: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(bytes) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

pub(crate) fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Fen as yuan with two decimals.
pub(crate) fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let a = fen.unsigned_abs();
    format!("{sign}{}.{:02}", a / 100, a % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_time_formats() {
        // 2018-06-08T02:34:56Z is 10:34:56 in Beijing.
        assert_eq!(rfc3339(1_528_425_296), "2018-06-08T10:34:56+08:00");
        // Across the date line of UTC: 2023-12-31T20:00:00Z is already 2024-01-01 in Beijing.
        assert_eq!(rfc3339(1_704_052_800), "2024-01-01T04:00:00+08:00");
        assert_eq!(compact_time(1_528_425_296), "20180608103456");
        assert_eq!(compact_day(0), "19700101");
        assert_eq!(yuan(3000), "30.00");
        assert_eq!(yuan(5), "0.05");
    }

    #[test]
    fn identifiers_have_their_shapes() {
        let u = uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_eq!(rid().len(), 26);
        assert!(digits(10).bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(html_escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
        let p = params(Some("a=1&b=%E4%B8%AD&a=2&c"));
        assert_eq!((p["a"].as_str(), p["b"].as_str(), p["c"].as_str()), ("1", "中", ""));
    }
}
