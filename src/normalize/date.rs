//! Lenient dates → `DateTime<Utc>`: RFC 3339 / ISO 8601 and RFC 822 with the usual breakage
//! (missing or wrong weekday, two-digit years, named zones such as MSK, missing seconds).
//! A date without an offset is read as UTC. Unreadable input gives `None`, never a panic.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc};

/// Parses a date as sources write it.
pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    if let Some(d) = iso_like(s) {
        return Some(d);
    }
    if let Ok(d) = DateTime::parse_from_rfc2822(s) {
        return Some(d.with_timezone(&Utc));
    }
    rfc822_lenient(s)
}

/// ISO 8601 variants: `2025-05-30T10:15:00` (no offset), `2025-05-30 10:15:00+05:00`,
/// `2025-05-30T10:15+0500`, `2025-05-30`.
fn iso_like(s: &str) -> Option<DateTime<Utc>> {
    let s = s.replacen(' ', "T", 1);
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%:z",
        "%Y-%m-%dT%H:%M%z",
    ] {
        if let Ok(d) = DateTime::parse_from_str(&s, fmt) {
            return Some(d.with_timezone(&Utc));
        }
    }
    let s = s.trim_end_matches(['Z', 'z']);
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(d) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(Utc.from_utc_datetime(&d));
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .map(|d| Utc.from_utc_datetime(&d.and_time(NaiveTime::MIN)))
}

fn month(name: &str) -> Option<u32> {
    let n = name.to_ascii_lowercase();
    let n = n.get(..3)?;
    let m = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ]
    .iter()
    .position(|m| *m == n)?;
    Some(m as u32 + 1)
}

/// Offset in seconds of a zone as RFC 822 and real feeds write it.
fn zone(z: &str) -> Option<i32> {
    let z = z.trim_matches(|c| c == '(' || c == ')');
    if let Some(sign) = z.chars().next().filter(|c| *c == '+' || *c == '-') {
        let digits: String = z[1..].chars().filter(char::is_ascii_digit).collect();
        let (h, m) = match digits.len() {
            4 => (
                digits[..2].parse::<i32>().ok()?,
                digits[2..].parse::<i32>().ok()?,
            ),
            2 | 1 => (digits.parse::<i32>().ok()?, 0),
            _ => return None,
        };
        let secs = h * 3600 + m * 60;
        return Some(if sign == '-' { -secs } else { secs });
    }
    let h = match z.to_ascii_uppercase().as_str() {
        "GMT" | "UT" | "UTC" | "Z" => 0,
        "EST" => -5,
        "EDT" => -4,
        "CST" => -6,
        "CDT" => -5,
        "MST" => -7,
        "MDT" => -6,
        "PST" => -8,
        "PDT" => -7,
        "MSK" => 3,
        "MSD" => 4,
        "CET" => 1,
        "CEST" => 2,
        "EET" => 2,
        "EEST" => 3,
        "BST" => 1,
        "IST" => 5,
        "JST" => 9,
        _ => return None,
    };
    Some(h * 3600)
}

/// RFC 822 by tokens: an optional (possibly wrong) weekday, day, month name, year (2 or 4
/// digits), time with optional seconds, optional zone.
fn rfc822_lenient(s: &str) -> Option<DateTime<Utc>> {
    let cleaned = s.replace(',', " ");
    let tokens: Vec<&str> = cleaned.split_whitespace().collect();
    // A leading weekday is skipped whatever it says: nobody checks it and it is often wrong.
    // No English weekday abbreviation is also a month's, so "May 30 2025" is not mistaken.
    let first = tokens.first()?;
    let i = usize::from(first.chars().next()?.is_alphabetic() && month(first).is_none());
    let (day, mon) = match (tokens.get(i)?, tokens.get(i + 1)?) {
        (d, m) if d.chars().all(|c| c.is_ascii_digit()) => (d.parse::<u32>().ok()?, month(m)?),
        // "May 30 2025" (US order)
        (m, d) => (d.parse::<u32>().ok()?, month(m)?),
    };
    let mut year: i32 = tokens.get(i + 2)?.parse().ok()?;
    if tokens.get(i + 2)?.len() <= 2 {
        year += if year < 50 { 2000 } else { 1900 };
    }
    let time = tokens.get(i + 3).copied().unwrap_or("00:00:00");
    let parts: Vec<u32> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let (h, m, sec) = match parts.as_slice() {
        [h, m] => (*h, *m, 0),
        [h, m, s] => (*h, *m, (*s).min(59)),
        _ => return None,
    };
    let offset = match tokens.get(i + 4) {
        Some(z) => zone(z)?,
        None => 0,
    };
    let naive = NaiveDate::from_ymd_opt(year, mon, day)?.and_hms_opt(h, m, sec)?;
    let local = FixedOffset::east_opt(offset)?
        .from_local_datetime(&naive)
        .single()?;
    Some(local.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        parse(s)
            .map(|d| d.to_rfc3339())
            .unwrap_or_else(|| "none".into())
    }

    #[test]
    fn formats() {
        let want = "2025-05-30T05:15:00+00:00";
        assert_eq!(p("Fri, 30 May 2025 10:15:00 +0500"), want);
        assert_eq!(p("2025-05-30T10:15:00+05:00"), want);
        assert_eq!(p("2025-05-30T05:15:00Z"), want);
        assert_eq!(p("2025-05-30 10:15:00+05:00"), want);
        assert_eq!(p("Mon, 30 May 2025 10:15:00 +0500"), want, "wrong weekday");
        assert_eq!(p("30 May 2025 10:15 +0500"), want, "no weekday, no seconds");
        assert_eq!(
            p("Fri, 30 May 25 08:15:00 MSK"),
            want,
            "two-digit year, MSK"
        );
        assert_eq!(p("Friday, 30 May 2025 05:15:00 GMT"), want);
        assert_eq!(p("2025-05-30T05:15:00"), want, "no offset: UTC");
        assert_eq!(p("2025-05-30"), "2025-05-30T00:00:00+00:00");
        assert_eq!(p("yesterday"), "none");
        assert_eq!(p("32 May 2025 10:00:00 GMT"), "none");
    }
}
