//! Cron schedules as Kubernetes accepts them (robfig/cron's standard
//! parser): five fields `minute hour day-of-month month day-of-week` with
//! `*`, `?`, ranges `a-b`, steps `*/n` and `a-b/n`, lists, month and day
//! names (JAN, MON), and the macros `@yearly`, `@annually`, `@monthly`,
//! `@weekly`, `@daily`, `@midnight`, `@hourly` and `@every <duration>`.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp, ToSpan};

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Five cron fields as bit sets.
    Cron(Fields),
    /// `@every`: a fixed period, whole seconds.
    Every(i64),
}

/// Bit sets of the allowed values of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fields {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    /// Day-of-month or day-of-week was `*`/`?`: then both must match,
    /// otherwise either may (cron's rule).
    dom_star: bool,
    dow_star: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// Parse a schedule; the error says which part is wrong.
pub fn parse(text: &str) -> Result<Schedule, String> {
    let text = text.trim();
    let standard = match text {
        "@yearly" | "@annually" => "0 0 1 1 *",
        "@monthly" => "0 0 1 * *",
        "@weekly" => "0 0 * * 0",
        "@daily" | "@midnight" => "0 0 * * *",
        "@hourly" => "0 * * * *",
        _ => text,
    };
    if let Some(d) = standard.strip_prefix("@every ") {
        let span: jiff::Span = d
            .trim()
            .parse()
            .map_err(|e| format!("failed to parse duration {d}: {e}"))?;
        let secs = SignedDuration::try_from(span)
            .map_err(|e| format!("bad duration {d}: {e}"))?
            .as_secs();
        if secs < 1 {
            return Err(format!("duration {d} must be at least one second"));
        }
        return Ok(Schedule::Every(secs));
    }
    if standard.starts_with('@') {
        return Err(format!("unrecognized descriptor: {standard}"));
    }
    let f: Vec<&str> = standard.split_whitespace().collect();
    if f.len() != 5 {
        return Err(format!(
            "expected exactly 5 fields, found {}: {text}",
            f.len()
        ));
    }
    let (dom, dom_star) = field(f[2], 1, 31, &[])?;
    let (mut dow, dow_star) = field(f[4], 0, 7, &DAYS)?;
    // 7 is Sunday too.
    if dow & (1 << 7) != 0 {
        dow = (dow | 1) & !(1 << 7);
    }
    Ok(Schedule::Cron(Fields {
        minute: field(f[0], 0, 59, &[])?.0,
        hour: field(f[1], 0, 23, &[])?.0,
        dom,
        month: field(f[3], 1, 12, &MONTHS)?.0,
        dow,
        dom_star,
        dow_star,
    }))
}

fn value(s: &str, min: u32, names: &[&str]) -> Result<u32, String> {
    let lower = s.to_ascii_lowercase();
    if let Some(i) = names.iter().position(|n| *n == lower) {
        return Ok(i as u32 + min);
    }
    s.parse()
        .map_err(|_| format!("failed to parse int from {s}"))
}

/// One field: its bits, and whether it was a bare `*` or `?`.
fn field(text: &str, min: u32, max: u32, names: &[&str]) -> Result<(u64, bool), String> {
    let mut bits = 0u64;
    let mut star = false;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                Some(
                    s.parse::<u32>()
                        .map_err(|_| format!("bad step in {part}"))?,
                ),
            ),
            None => (part, None),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            star |= step.is_none_or(|s| s == 1);
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a, min, names)?, value(b, min, names)?)
        } else {
            let v = value(range, min, names)?;
            // `a/n` runs from a to the end.
            (v, if step.is_some() { max } else { v })
        };
        let step = step.unwrap_or(1);
        if lo < min || hi > max || lo > hi || step == 0 {
            return Err(format!("{part} is out of range {min}-{max}"));
        }
        bits |= (lo..=hi).step_by(step as usize).fold(0, |b, v| b | 1 << v);
    }
    Ok((bits, star))
}

fn has(bits: u64, v: i8) -> bool {
    bits & (1 << v) != 0
}

impl Fields {
    fn day_matches(&self, dt: DateTime) -> bool {
        let dom = has(self.dom, dt.day());
        let dow = has(self.dow, dt.weekday().to_sunday_zero_offset());
        if self.dom_star || self.dow_star {
            dom && dow
        } else {
            dom || dow
        }
    }
}

impl Schedule {
    /// The first scheduled time strictly after `t`, in `tz`.
    pub fn next_after(&self, t: Timestamp, tz: &TimeZone) -> Option<Timestamp> {
        let f = match self {
            Schedule::Every(secs) => {
                let whole = Timestamp::from_second(t.as_second()).ok()?;
                return whole.checked_add(SignedDuration::from_secs(*secs)).ok();
            }
            Schedule::Cron(f) => f,
        };
        let start = tz.to_datetime(t);
        let mut dt = start
            .with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .ok()?
            .checked_add(1.minute())
            .ok()?;
        // Bounded: a schedule like "0 0 30 2 *" never fires.
        for _ in 0..100_000 {
            if !has(f.month, dt.month()) {
                dt = dt
                    .first_of_month()
                    .checked_add(1.month())
                    .ok()?
                    .start_of_day();
            } else if !f.day_matches(dt) {
                dt = dt.start_of_day().checked_add(1.day()).ok()?;
            } else if !has(f.hour, dt.hour()) {
                dt = dt
                    .with()
                    .minute(0)
                    .build()
                    .ok()?
                    .checked_add(1.hour())
                    .ok()?;
            } else if !has(f.minute, dt.minute()) {
                dt = dt.checked_add(1.minute()).ok()?;
            } else {
                let ts = tz.to_timestamp(dt).ok()?;
                if ts > t {
                    return Some(ts);
                }
                dt = dt.checked_add(1.minute()).ok()?;
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn next(s: &str, t: &str) -> String {
        parse(s)
            .unwrap()
            .next_after(at(t), &TimeZone::UTC)
            .unwrap()
            .to_string()
    }

    #[test]
    fn fields_steps_ranges_and_names() {
        assert_eq!(
            next("* * * * *", "2024-01-01T00:00:30Z"),
            "2024-01-01T00:01:00Z"
        );
        assert_eq!(
            next("*/15 * * * *", "2024-01-01T00:16:00Z"),
            "2024-01-01T00:30:00Z"
        );
        assert_eq!(
            next("0 9-17/4 * * *", "2024-01-01T09:00:00Z"),
            "2024-01-01T13:00:00Z"
        );
        assert_eq!(
            next("30 2 * * MON", "2024-01-01T03:00:00Z"),
            "2024-01-08T02:30:00Z"
        );
        assert_eq!(
            next("0 0 1 feb *", "2024-01-15T00:00:00Z"),
            "2024-02-01T00:00:00Z"
        );
        assert_eq!(
            next("0 0 * * 7", "2024-01-01T00:00:00Z"),
            "2024-01-07T00:00:00Z"
        );
        assert_eq!(
            next("5,10 * * * *", "2024-01-01T00:05:00Z"),
            "2024-01-01T00:10:00Z"
        );
        // Both days restricted: either matches (the 13th, or a Friday).
        assert_eq!(
            next("0 0 13 * 5", "2024-01-01T00:00:00Z"),
            "2024-01-05T00:00:00Z"
        );
    }

    #[test]
    fn macros() {
        assert_eq!(
            next("@hourly", "2024-01-01T00:10:00Z"),
            "2024-01-01T01:00:00Z"
        );
        assert_eq!(
            next("@daily", "2024-01-01T00:10:00Z"),
            "2024-01-02T00:00:00Z"
        );
        assert_eq!(
            next("@every 90s", "2024-01-01T00:00:00Z"),
            "2024-01-01T00:01:30Z"
        );
        assert_eq!(parse("@every 1h30m").unwrap(), Schedule::Every(5400));
    }

    #[test]
    fn rejects_bad_schedules() {
        for bad in [
            "",
            "* * * *",
            "60 * * * *",
            "* * * * * *",
            "@often",
            "a * * * *",
            "*/0 * * * *",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse("0 0 30 2 *")
                .unwrap()
                .next_after(at("2024-01-01T00:00:00Z"), &TimeZone::UTC),
            None
        );
    }
}
