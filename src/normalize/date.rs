//! Lenient dates → `DateTime<Utc>`, as sources really write them:
//!
//! * RFC 3339 / W3CDTF / ISO 8601: `2025-05-30T10:15:00+05:00`, no offset, a space for `T`,
//!   compact `20250530T101500Z`, `2025-05`, `2025`, broken offsets (`+00:0`);
//! * RFC 822 with the usual breakage: missing or wrong weekday, two-digit years, missing
//!   seconds, US order (`Dec 16 2023`), `PM`, named zones (MSK is +03:00, not UTC as feedparser
//!   reads it), `GMT+3`;
//! * month and weekday names in English, Russian (genitive `30 мая 2025`, nominative,
//!   abbreviations `30 янв. 2025 г.`), Ukrainian, Belarusian, Kazakh (with case endings),
//!   German, French, Spanish, Italian, Polish and Portuguese;
//! * numeric day-first dates: `30.05.2025 10:15`, `30/05/2025`, `30-05-2025`.
//!
//! A date without an offset is read in the source's `timezone` when one is configured, else as
//! UTC (as feedparser does). Unreadable input gives `None`, never a panic.

use std::sync::LazyLock;

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;
use regex::Regex;

/// Parses a date; a date without an offset is UTC.
pub fn parse(s: &str) -> Option<DateTime<Utc>> {
    parse_in(s, None)
}

/// Parses a date; a date without an offset is local time in `tz` (UTC when `None`).
pub fn parse_in(s: &str, tz: Option<Tz>) -> Option<DateTime<Utc>> {
    // Whole seconds: sub-second digits carry no meaning in feeds, and a leap second (:60)
    // becomes :59.
    parse_any(s, tz).and_then(|d| d.with_nanosecond(0))
}

fn parse_any(s: &str, tz: Option<Tz>) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.is_empty() || s.len() > 200 {
        return None;
    }
    if let Ok(d) = DateTime::parse_from_rfc3339(s) {
        return Some(d.with_timezone(&Utc));
    }
    if let Some(d) = iso(s, tz) {
        return Some(d);
    }
    if let Ok(d) = DateTime::parse_from_rfc2822(s) {
        return Some(d.with_timezone(&Utc));
    }
    by_tokens(s, tz)
}

/// Local time → UTC: with an offset when the source gave one, else in `tz`, else as UTC.
fn finish(naive: NaiveDateTime, offset: Option<i32>, tz: Option<Tz>) -> Option<DateTime<Utc>> {
    match (offset, tz) {
        (Some(secs), _) => Some(
            FixedOffset::east_opt(secs)?
                .from_local_datetime(&naive)
                .single()?
                .with_timezone(&Utc),
        ),
        // In a DST gap or overlap, the earlier reading.
        (None, Some(tz)) => Some(
            tz.from_local_datetime(&naive)
                .earliest()?
                .with_timezone(&Utc),
        ),
        (None, None) => Some(Utc.from_utc_datetime(&naive)),
    }
}

static ISO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?x)^
        (?P<y>\d{4}) (?: -?(?P<m>\d{2}) (?: -?(?P<d>\d{2}) )? )?
        (?: (?:[Tt]|\s+) (?P<H>\d{1,2}) :?(?P<M>\d{2}) (?: :?(?P<S>\d{2}) (?:[.,]\d+)? )? )?
        \s* (?P<z> [Zz] | UTC | GMT | [+-]\d{1,2}(?::?\d{0,2})? )?
        $",
    )
    .expect("the ISO 8601 pattern is valid")
});

/// W3CDTF / ISO 8601 forms RFC 3339 does not accept.
fn iso(s: &str, tz: Option<Tz>) -> Option<DateTime<Utc>> {
    let c = ISO.captures(s)?;
    let num = |k: &str, default: u32| {
        c.name(k)
            .map_or(Some(default), |m| m.as_str().parse::<u32>().ok())
    };
    let date = NaiveDate::from_ymd_opt(c["y"].parse().ok()?, num("m", 1)?, num("d", 1)?)?;
    let naive = date.and_hms_opt(num("H", 0)?, num("M", 0)?, num("S", 0)?.min(59))?;
    let offset = match c.name("z").map(|z| z.as_str()) {
        None => None,
        Some(z) => Some(offset(z)?),
    };
    finish(naive, offset, tz)
}

/// `+05:00`, `+0500`, `+05`, `+5`, `+530`, `+00:0`; `Z`, `UTC`, `GMT`.
fn offset(z: &str) -> Option<i32> {
    let z = z.trim();
    if matches!(z.to_ascii_uppercase().as_str(), "Z" | "UTC" | "GMT" | "UT") {
        return Some(0);
    }
    let sign = match z.chars().next()? {
        '+' => 1,
        '-' => -1,
        _ => return None,
    };
    let rest = &z[1..];
    let (h, m) = match rest.split_once(':') {
        Some((h, m)) => (h.parse::<i32>().ok()?, m.parse::<i32>().unwrap_or(0)),
        None if rest.len() <= 2 => (rest.parse::<i32>().ok()?, 0),
        None if rest.len() <= 4 => {
            let split = rest.len() - 2;
            (rest[..split].parse().ok()?, rest[split..].parse().ok()?)
        }
        None => return None,
    };
    if !(0..=14).contains(&h) || !(0..60).contains(&m) {
        return None;
    }
    Some(sign * (h * 3600 + m * 60))
}

/// Named zones real feeds use (RFC 822's plus common ones). Russian zones by their current
/// offsets (MSK = +03:00 since 2014).
fn named_zone(z: &str) -> Option<i32> {
    let h: f32 = match z {
        "gmt" | "ut" | "utc" | "z" | "wet" => 0.0,
        "est" => -5.0,
        "edt" => -4.0,
        "cst" => -6.0,
        "cdt" => -5.0,
        "mst" => -7.0,
        "mdt" => -6.0,
        "pst" => -8.0,
        "pdt" => -7.0,
        "akst" => -9.0,
        "akdt" => -8.0,
        "hst" => -10.0,
        "ast" => -4.0,
        "adt" => -3.0,
        "nst" => -3.5,
        "bst" | "cet" | "west" | "met" => 1.0,
        "cest" | "eet" | "mest" | "sast" => 2.0,
        "eest" | "msk" | "мск" | "trt" => 3.0,
        "msd" | "samt" | "gst" => 4.0,
        "yekt" | "pkt" => 5.0,
        "ist" => 5.5,
        "almt" | "omst" => 6.0,
        "krat" | "ict" | "wib" => 7.0,
        "awst" | "sgt" | "hkt" | "irkt" => 8.0,
        "jst" | "kst" | "yakt" => 9.0,
        "aest" | "vlat" => 10.0,
        "aedt" => 11.0,
        "nzst" => 12.0,
        "nzdt" => 13.0,
        _ => return None,
    };
    Some((h * 3600.0) as i32)
}

/// Month names by month, in the languages the module doc lists. A word is that month when it
/// starts with one of the stems (inflections: "мамырда", "января") or, being at least three
/// letters, is the start of one (abbreviations: "янв", "févr", "paź").
const MONTHS: [&[&str]; 12] = [
    &[
        "january",
        "janv",
        "janvier",
        "januar",
        "jänner",
        "enero",
        "gennaio",
        "stycz",
        "janeiro",
        "январ",
        "январь",
        "янв",
        "січ",
        "студз",
        "қаңтар",
    ],
    &[
        "february",
        "februar",
        "feber",
        "février",
        "fevrier",
        "febrero",
        "febbraio",
        "lut",
        "fevereiro",
        "феврал",
        "фев",
        "лют",
        "ақпан",
    ],
    &[
        "march",
        "märz",
        "mrz",
        "mars",
        "marzo",
        "marz",
        "marca",
        "março",
        "marco",
        "март",
        "берез",
        "сакав",
        "наурыз",
    ],
    &[
        "april",
        "avril",
        "abril",
        "aprile",
        "kwie",
        "апрел",
        "квіт",
        "крас",
        "сәуір",
        "сауір",
    ],
    &[
        "may",
        "mai",
        "mayo",
        "maggio",
        "maj",
        "maio",
        "мая",
        "май",
        "трав",
        "мамыр",
    ],
    &[
        "june",
        "juni",
        "juin",
        "junio",
        "giugno",
        "czerw",
        "junho",
        "июн",
        "черв",
        "чэрв",
        "маусым",
    ],
    &[
        "july",
        "juli",
        "juillet",
        "julio",
        "luglio",
        "lip",
        "julho",
        "июл",
        "лип",
        "ліп",
        "шілде",
    ],
    &[
        "august",
        "août",
        "aout",
        "agosto",
        "sierp",
        "август",
        "серп",
        "жні",
        "жнів",
        "тамыз",
    ],
    &[
        "september",
        "sept",
        "septembre",
        "septiembre",
        "setiembre",
        "settembre",
        "wrze",
        "wrześ",
        "setembro",
        "сентяб",
        "сент",
        "верес",
        "верас",
        "қыркүйек",
    ],
    &[
        "october",
        "oktober",
        "octobre",
        "octubre",
        "ottobre",
        "paźdz",
        "pazdz",
        "outubro",
        "октяб",
        "окт",
        "жовт",
        "кастр",
        "қазан",
    ],
    &[
        "november",
        "novembre",
        "noviembre",
        "listopad",
        "novembro",
        "ноябр",
        "ноя",
        "листоп",
        "ліст",
        "қараша",
    ],
    &[
        "december",
        "dezember",
        "décembre",
        "decembre",
        "diciembre",
        "dicembre",
        "grud",
        "dezembro",
        "декабр",
        "дек",
        "груд",
        "снеж",
        "желтоқсан",
    ],
];

/// Weekday abbreviations that are also a month's start ("mar" is Tuesday in Spanish, French
/// and Italian): when another month word is present, these are the weekday.
const WEEKDAY_CLASHES: &[&str] = &["mar"];

fn month(word: &str) -> Option<u32> {
    let word = word.trim_end_matches('.');
    let n = word.chars().count();
    let mut found: Option<u32> = None;
    for (i, stems) in MONTHS.iter().enumerate() {
        let hit = stems
            .iter()
            .any(|s| word.starts_with(s) || (n >= 3 && s.starts_with(word)));
        if hit {
            if found.is_some_and(|f| f != i as u32 + 1) {
                return None; // ambiguous ("jui": juin or juillet)
            }
            found = Some(i as u32 + 1);
        }
    }
    found
}

#[derive(Default)]
struct Parts {
    year: Option<i32>,
    month: Option<u32>,
    month_is_clash: bool,
    day: Option<u32>,
    time: Option<(u32, u32, u32)>,
    pm: Option<bool>,
    offset: Option<i32>,
}

fn year_of(s: &str) -> Option<i32> {
    let y: i32 = s.parse().ok()?;
    Some(match s.len() {
        4 => y,
        1 | 2 => y + if y < 50 { 2000 } else { 1900 },
        _ => return None,
    })
}

/// `10:15`, `10:15:00`, `10:15:00.123`, possibly followed by a zone (`10:15:00+0500`, `10:15Z`).
fn time_and_zone(t: &str, p: &mut Parts) -> Option<()> {
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == ':' || c == '.'))
        .unwrap_or(t.len());
    let (time, zone) = t.split_at(end);
    let fields: Vec<&str> = time.split(':').collect();
    let num = |s: &str| s.split('.').next()?.parse::<u32>().ok();
    let (h, m, s) = match fields.as_slice() {
        [h, m] => (num(h)?, num(m)?, 0),
        [h, m, s] => (num(h)?, num(m)?, num(s)?.min(59)),
        _ => return None,
    };
    p.time = Some((h, m, s));
    if !zone.is_empty() {
        p.offset = Some(offset(zone).or_else(|| named_zone(&zone.to_lowercase()))?);
    }
    Some(())
}

static NUMERIC_DATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(\d{1,4})([./-])(\d{1,2})[./-](\d{1,4})$")
        .expect("the numeric date pattern is valid")
});

/// `30.05.2025`, `30/05/25`, `2025/05/30`, `05/30/2025` (only when the day cannot be first).
fn numeric_date(t: &str, p: &mut Parts) -> Option<()> {
    let c = NUMERIC_DATE.captures(t)?;
    let (a, b, z) = (&c[1], &c[3], &c[4]);
    if a.len() == 4 {
        p.year = year_of(a);
        p.month = b.parse().ok();
        p.day = z.parse().ok();
        return Some(());
    }
    let (a_n, b_n): (u32, u32) = (a.parse().ok()?, b.parse().ok()?);
    // Day first, as Europe writes it; month first only when the second number cannot be a month.
    let (day, mon) = if b_n > 12 && a_n <= 12 {
        (b_n, a_n)
    } else {
        (a_n, b_n)
    };
    p.day = Some(day);
    p.month = Some(mon);
    p.year = year_of(z);
    Some(())
}

/// RFC 822 and the localized and numeric forms, token by token.
fn by_tokens(s: &str, tz: Option<Tz>) -> Option<DateTime<Utc>> {
    let lower = s.to_lowercase();
    let mut p = Parts::default();
    for raw in lower.split(|c: char| c.is_whitespace() || c == ',') {
        let t = raw.trim_matches(|c: char| c == '(' || c == ')' || c == '"');
        let t = t.trim_end_matches('.');
        if t.is_empty() {
            continue;
        }
        let first = t.chars().next()?;
        if first.is_ascii_digit() {
            if t.contains(':') {
                time_and_zone(t, &mut p)?;
            } else if t.contains(['.', '/', '-']) {
                let _ = numeric_date(t, &mut p);
            } else if let Ok(n) = t.parse::<u32>() {
                if t.len() == 4 {
                    p.year = Some(n as i32);
                } else if p.day.is_none() && t.len() <= 2 {
                    p.day = Some(n);
                } else if p.year.is_none() {
                    p.year = year_of(t);
                }
            }
            // Anything else numeric ("1st", "10h") is left out.
        } else if (first == '+' || first == '-') && t.len() > 1 {
            p.offset = Some(offset(t)?);
        } else if matches!(t.replace('.', "").as_str(), "am" | "pm") {
            p.pm = Some(t.starts_with('p'));
        } else if let Some(z) = named_zone(t) {
            p.offset = Some(z);
        } else if let Some((name, off)) = t
            .split_once(['+', '-'])
            .filter(|(n, _)| matches!(*n, "gmt" | "utc" | "ut"))
        {
            let _ = name;
            let sign = if t.contains('+') { "+" } else { "-" };
            p.offset = Some(offset(&format!("{sign}{off}"))?);
        } else if let Some(m) = month(t) {
            let clash = WEEKDAY_CLASHES.contains(&t);
            if p.month.is_none() || (p.month_is_clash && !clash) {
                p.month = Some(m);
                p.month_is_clash = clash;
            }
        }
        // Other words (weekdays, "г.", "года", "de", "at", "um") carry no date.
    }
    let (mut h, m, sec) = p.time.unwrap_or((0, 0, 0));
    match p.pm {
        Some(true) if h < 12 => h += 12,
        Some(false) if h == 12 => h = 0,
        _ => {}
    }
    let date = NaiveDate::from_ymd_opt(p.year?, p.month?, p.day?)?;
    finish(date.and_hms_opt(h, m, sec)?, p.offset, tz)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> String {
        parse(s)
            .map(|d| d.to_rfc3339())
            .unwrap_or_else(|| "none".into())
    }

    fn in_tz(s: &str, tz: &str) -> String {
        parse_in(s, Some(tz.parse().unwrap()))
            .map(|d| d.to_rfc3339())
            .unwrap_or_else(|| "none".into())
    }

    const WANT: &str = "2025-05-30T05:15:00+00:00";

    #[test]
    fn rfc822_variants() {
        for s in [
            "Fri, 30 May 2025 10:15:00 +0500",
            "Mon, 30 May 2025 10:15:00 +0500", // wrong weekday
            "30 May 2025 10:15 +0500",         // no weekday, no seconds
            "Fri, 30 May 25 08:15:00 MSK",     // two-digit year, MSK = +03:00
            "Friday, 30 May 2025 05:15:00 GMT",
            "Fri, 30 May 2025 05:15:00 UT",
            "Fri, 30 May 2025 08:15:00 GMT+3",
            "Fri, 30 May 2025 08:15:00 GMT+03:00",
            "Fri, 30 May 2025 01:15:00 EDT",
            "Fri, 30 May 2025 10:15:00 +05:00",
            "Fri 30 May 2025 10:15:00 +0500",
            "Fri, 30 May 2025 10:15:00+0500",
            "May 30, 2025 05:15:00 GMT",
            "Fri, May 30 2025 05:15:00 AM",
            "30 May 2025 05:15:00 (GMT)",
            "Fri, 30 May 2025 05:15:60 GMT", // leap second clamped
        ] {
            let want = if s.ends_with(":60 GMT") {
                "2025-05-30T05:15:59+00:00"
            } else {
                WANT
            };
            assert_eq!(p(s), want, "{s}");
        }
        // feedparser ignores PM here and says 02:02:33; 2:02 PM is 14:02.
        assert_eq!(
            p("Sat, Dec 16 2023 02:02:33 PM"),
            "2023-12-16T14:02:33+00:00"
        );
        assert_eq!(
            p("Sat, 16 Dec 2023 12:02:33 AM GMT"),
            "2023-12-16T00:02:33+00:00"
        );
    }

    #[test]
    fn iso_variants() {
        for s in [
            "2025-05-30T10:15:00+05:00",
            "2025-05-30T05:15:00Z",
            "2025-05-30T05:15:00.123Z",
            "2025-05-30 10:15:00+05:00",
            "2025-05-30T10:15+05:00",
            "2025-05-30T10:15:00+0500",
            "2025-05-30T10:15:00+05",
            "20250530T051500Z",
            "2025-05-30T05:15:00",
            "2025-05-30T05:15:00 UTC",
        ] {
            assert_eq!(p(s), WANT, "{s}");
        }
        assert_eq!(p("2017-06-13T03:18:00+00:0"), "2017-06-13T03:18:00+00:00");
        assert_eq!(p("2025-05-30"), "2025-05-30T00:00:00+00:00");
        assert_eq!(p("2025-05"), "2025-05-01T00:00:00+00:00");
        assert_eq!(p("2025"), "2025-01-01T00:00:00+00:00");
    }

    #[test]
    fn localized_names() {
        for s in [
            "Пт, 30 мая 2025 10:15:00 +0500",
            "30 мая 2025 10:15 +0500",
            "30 май 2025 10:15:00 +0500",
            "пятница, 30 мая 2025 г., 08:15 MSK",
            "30 травня 2025 10:15 +0500", // uk
            "Пт, 30 трав. 2025 10:15:00 +0500",
            "30 мая 2025 10:15 +0500",         // be (мая)
            "2025 жылғы 30 мамыр 10:15 +0500", // kk
            "30 мамырда 2025 10:15 +0500",
            "Fr, 30 Mai 2025 10:15:00 +0500",   // de
            "ven., 30 mai 2025 10:15:00 +0500", // fr
            "vie, 30 may 2025 10:15:00 +0500",  // es
            "30 de mayo de 2025 10:15 +0500",
            "ven, 30 maggio 2025 10:15:00 +0500", // it
            "pt., 30 maja 2025 10:15:00 +0500",   // pl
            "sex, 30 maio 2025 10:15:00 +0500",   // pt
            "30 de maio de 2025 10:15 +0500",
        ] {
            assert_eq!(p(s), WANT, "{s}");
        }
        for (s, want) in [
            ("3 января 2025 10:00 +0300", "2025-01-03T07:00:00+00:00"),
            ("3 янв. 2025 г. 10:00 +0300", "2025-01-03T07:00:00+00:00"),
            ("12 февраля 2025 00:00 +0300", "2025-02-11T21:00:00+00:00"),
            ("1 сентября 2024 12:00 +0300", "2024-09-01T09:00:00+00:00"),
            ("1 сент 2024 12:00 +0300", "2024-09-01T09:00:00+00:00"),
            ("5 грудня 2024 12:00 +0200", "2024-12-05T10:00:00+00:00"),
            ("5 снежня 2024 12:00 +0300", "2024-12-05T09:00:00+00:00"),
            ("5 желтоқсан 2024 12:00 +0500", "2024-12-05T07:00:00+00:00"),
            ("mar, 4 mars 2025 12:00 +0100", "2025-03-04T11:00:00+00:00"),
            (
                "mar., 4 févr. 2025 12:00 +0100",
                "2025-02-04T11:00:00+00:00",
            ),
            ("Di, 4 März 2025 12:00 +0100", "2025-03-04T11:00:00+00:00"),
            (
                "4 października 2025 12:00 +0200",
                "2025-10-04T10:00:00+00:00",
            ),
            (
                "4 de outubro de 2025 12:00 -0300",
                "2025-10-04T15:00:00+00:00",
            ),
            ("4 juillet 2025 12:00 +0200", "2025-07-04T10:00:00+00:00"),
            ("4 juin 2025 12:00 +0200", "2025-06-04T10:00:00+00:00"),
        ] {
            assert_eq!(p(s), want, "{s}");
        }
    }

    #[test]
    fn day_first_numeric_in_source_timezone() {
        assert_eq!(in_tz("30.05.2025 10:15", "Asia/Almaty"), WANT);
        assert_eq!(in_tz("30/05/2025 10:15:00", "Asia/Almaty"), WANT);
        assert_eq!(in_tz("30-05-2025 10:15", "Asia/Almaty"), WANT);
        assert_eq!(in_tz("30 мая 2025 08:15", "Europe/Moscow"), WANT);
        assert_eq!(in_tz("2025-05-30T08:15:00", "Europe/Moscow"), WANT);
        // An explicit offset beats the configured zone.
        assert_eq!(in_tz("30.05.2025 05:15 GMT", "Europe/Moscow"), WANT);
        // Without a configured zone, no offset means UTC.
        assert_eq!(p("30.05.2025 05:15"), WANT);
        assert_eq!(
            p("05/30/2025 05:15"),
            WANT,
            "month first only when unambiguous"
        );
        assert_eq!(p("2025/05/30 05:15"), WANT);
        // DST: Berlin is +02:00 in May, +01:00 in January.
        assert_eq!(in_tz("30.05.2025 07:15", "Europe/Berlin"), WANT);
        assert_eq!(
            in_tz("15.01.2025 07:15", "Europe/Berlin"),
            "2025-01-15T06:15:00+00:00"
        );
    }

    #[test]
    fn garbage_is_none() {
        for s in [
            "yesterday",
            "32 May 2025 10:00:00 GMT",
            "",
            "30 Foo 2025",
            "2025-13-01",
            "сегодня",
            "99:99",
        ] {
            assert_eq!(p(s), "none", "{s}");
        }
    }
}
