//! Small helpers every layer of the daemon uses: poisoning-tolerant locks, the wall clock in
//! the inbox's units, and the "no timer running" instant of the network tasks. Nothing here
//! knows about the service.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// Locks a mutex, recovering from poisoning: a panic elsewhere must not take names down.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Now, in microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

/// `micros` in RFC 3339, UTC.
pub fn rfc3339(micros: i64) -> String {
    match jiff::Timestamp::from_microsecond(micros) {
        Ok(ts) => ts.to_string(),
        Err(_) => String::new(),
    }
}

/// How far ahead a task waits when its state machine has no timer running: far enough to
/// cost nothing, near enough that a wait is never "forever" (tokio's timer wheel handles
/// instants about two years ahead at most); the task wakes for input before then anyway.
pub(crate) const NO_DEADLINE: Duration = Duration::from_secs(3600);

/// The instant to wait for when a state machine has no deadline (see [`NO_DEADLINE`]).
pub(crate) fn no_deadline() -> tokio::time::Instant {
    tokio::time::Instant::now() + NO_DEADLINE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_is_utc_and_out_of_range_is_empty() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_500_000), "1970-01-01T00:00:01.5Z");
        assert_eq!(rfc3339(i64::MAX), "");
    }

    #[test]
    fn a_poisoned_lock_is_still_usable() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = std::sync::Arc::clone(&m);
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }
}
