//! How a message's time is shown to people: in the local time zone as `YYYY-MM-DD HH:MM:SS`,
//! the same on a terminal, in `messenger inbox` and in a desktop notification.

use jiff::tz::TimeZone;
use jiff::Timestamp;

/// The layout of a shown time.
const LAYOUT: &str = "%Y-%m-%d %H:%M:%S";

fn shown(ts: Timestamp) -> String {
    ts.to_zoned(TimeZone::system()).strftime(LAYOUT).to_string()
}

/// `micros` (since the Unix epoch) as shown; `None` when out of range.
pub fn from_micros(micros: i64) -> Option<String> {
    Timestamp::from_microsecond(micros).ok().map(shown)
}

/// An RFC 3339 time (as the control socket sends it) as shown; `None` when it does not parse.
pub fn from_rfc3339(text: &str) -> Option<String> {
    text.parse::<Timestamp>().ok().map(shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_show_the_same_time_and_bad_input_shows_none() {
        let micros = 1_700_000_000_123_456;
        let rfc = Timestamp::from_microsecond(micros).unwrap().to_string();
        let shown = from_micros(micros).unwrap();
        assert_eq!(from_rfc3339(&rfc).as_deref(), Some(shown.as_str()));
        assert_eq!(shown.len(), "YYYY-MM-DD HH:MM:SS".len());
        assert_eq!(from_micros(i64::MAX), None);
        assert_eq!(from_rfc3339("yesterday"), None);
    }
}
