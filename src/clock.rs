//! Time and chance as the rest of the program sees them: wall-clock time from a monotonic
//! anchor, its RFC 3339 form, durations as the manifest writes them, and jitter.
//!
//! Throttles and backoffs must hold across restarts, so they are kept as wall-clock
//! timestamps (`SystemTime`). Within one process, [`Clock`] derives "now" from tokio's
//! monotonic clock plus the wall-clock reading taken at start, so a wall-clock jump during
//! a run cannot squeeze two calls together, and tests can drive time with tokio's paused
//! clock.

use std::time::{Duration, SystemTime};

/// `d` in milliseconds, rounded to two decimals (0.42, not 0.41792376), for logs people read.
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 100_000.0).round() / 100.0
}

/// The source of "now" for one process.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Clock {
    wall_at_start: SystemTime,
    mono_at_start: tokio::time::Instant,
}

impl Clock {
    /// Anchors the clock at the current wall-clock and monotonic readings.
    pub fn start() -> Self {
        Self {
            wall_at_start: SystemTime::now(),
            mono_at_start: tokio::time::Instant::now(),
        }
    }

    /// The current wall-clock time, advancing monotonically.
    pub fn now(&self) -> SystemTime {
        self.wall_at_start + self.mono_at_start.elapsed()
    }

    /// The monotonic instant at which the wall-clock time `at` is reached.
    pub fn instant_at(&self, at: SystemTime) -> tokio::time::Instant {
        let from_start = at
            .duration_since(self.wall_at_start)
            .unwrap_or(Duration::ZERO);
        self.mono_at_start + from_start
    }
}

/// Where jitter comes from: draws in `[0, 1)`. Random in production; fixed in tests, so
/// that every wait is exact.
#[derive(Clone, Debug)]
pub(crate) enum Jitter {
    /// Uniform random draws.
    Random(fastrand::Rng),
    /// Always this value (tests: every wait exact).
    #[cfg(test)]
    Fixed(f64),
}

impl Jitter {
    /// Random draws, seeded from the system.
    pub(crate) fn random() -> Self {
        Self::Random(fastrand::Rng::new())
    }

    /// The next draw, in `[0, 1)`.
    pub(crate) fn draw(&mut self) -> f64 {
        match self {
            Self::Random(rng) => rng.f64(),
            #[cfg(test)]
            Self::Fixed(value) => *value,
        }
    }
}

/// The last moment RFC 3339 can write (`9999-12-31T23:59:59.999Z`).
const LAST_WRITABLE: Duration = Duration::from_millis(253_402_300_799_999);

/// Formats a time as RFC 3339 in UTC with millisecond precision (`2026-01-02T03:04:05.678Z`).
/// A time outside what it can write (before 1970, after 9999) is written as the nearest
/// one it can, so a damaged state file never makes formatting panic.
pub fn rfc3339(at: SystemTime) -> String {
    let since_epoch = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .min(LAST_WRITABLE);
    humantime::format_rfc3339_millis(SystemTime::UNIX_EPOCH + since_epoch).to_string()
}

/// Serde adapter: `SystemTime` as an RFC 3339 UTC string.
pub mod serde_rfc3339 {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};
    use std::time::SystemTime;

    /// Writes the time as RFC 3339.
    pub fn serialize<S: Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::rfc3339(*at))
    }

    /// Reads an RFC 3339 time.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_rfc3339_weak(&text).map_err(D::Error::custom)
    }
}

/// Serde adapter: `Option<SystemTime>` as an RFC 3339 UTC string or `null`.
pub mod serde_rfc3339_opt {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};
    use std::time::SystemTime;

    /// Writes the time as RFC 3339, or `null`.
    pub fn serialize<S: Serializer>(at: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => s.serialize_str(&super::rfc3339(*at)),
            None => s.serialize_none(),
        }
    }

    /// Reads an RFC 3339 time or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => humantime::parse_rfc3339_weak(&text)
                .map(Some)
                .map_err(D::Error::custom),
            None => Ok(None),
        }
    }
}

/// The longest duration any setting takes. Bounding them where they are parsed keeps all
/// time arithmetic (`now + minInterval`, deadlines, timers) far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 24 * 3600);

/// Parses a duration written like `10s`, `5m`, `1h30m` or `250ms`, of at most
/// [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let duration = humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration ({e}); write it like 10s, 5m or 1h30m"))?;
    if duration > MAX_DURATION {
        return Err(format!(
            "`{text}` is longer than 366 days, the longest duration avatar-sync takes"
        ));
    }
    Ok(duration)
}

/// Formats a duration for people, like `10s` or `1h 30m`.
pub fn human_duration(d: Duration) -> String {
    // Whole milliseconds are enough for throttles and timeouts.
    let d = Duration::from_millis(d.as_millis().try_into().unwrap_or(u64::MAX));
    humantime::format_duration(d).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millis_are_rounded_to_two_decimals() {
        assert_eq!(millis(Duration::from_nanos(417_923)), 0.42);
        assert_eq!(millis(Duration::from_nanos(3_157_988)), 3.16);
        assert_eq!(millis(Duration::from_secs(2)), 2000.0);
        assert_eq!(millis(Duration::ZERO), 0.0);
    }

    #[test]
    fn durations_parse_as_the_contract_writes_them() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("ten seconds").is_err());
        assert!(parse_duration("10").is_err());
    }

    #[test]
    fn durations_past_the_bound_are_refused_and_name_it() {
        assert_eq!(parse_duration("366d"), Ok(MAX_DURATION));
        for huge in ["367d", "1000y", "18446744073709551615s"] {
            let e = parse_duration(huge).unwrap_err();
            assert!(e.contains("366 days"), "{huge}: {e}");
        }
    }

    #[test]
    fn times_past_year_9999_are_written_as_its_last_moment() {
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(400_000_000_000);
        assert_eq!(rfc3339(far), "9999-12-31T23:59:59.999Z");
        assert_eq!(rfc3339(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn rfc3339_round_trips_in_utc() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let text = rfc3339(at);
        assert_eq!(text, "2023-11-14T22:13:20.123Z");
        assert_eq!(humantime::parse_rfc3339_weak(&text).unwrap(), at);
    }
}
