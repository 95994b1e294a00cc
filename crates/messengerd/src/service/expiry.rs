//! Messages that expire unless read in time (`messenger send --time`, msg.exe's /TIME).
//!
//! A local send asks for an expiry in its options; the copies it stores in this computer's
//! inbox are stored with that expiry (see [`Service::deliver`](super::Service::deliver)) and
//! their ids come back with the send's outcomes, so that the control socket can tell the
//! sender what expired and which recipients are beyond its reach. A message to another host
//! of the organisation carries its expiry there; one that leaves over NetBIOS cannot.
//! Messages that arrive over NetBIOS never expire.
//!
//! The expiry itself is in the inbox, so it survives a restart: [`expire_on_time`] settles at
//! once what fell due while the service was down, then sleeps until the next expiry the
//! inbox holds (one timer, however many messages wait), waking early when a message with an
//! earlier expiry may have been stored.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::inbox::Inbox;
use crate::util::now_micros;

/// Messages settled per transaction on the writer: a burst of expiries (many sends with the
/// same `--time`) is settled in steps of a few milliseconds each, with arriving messages
/// committed between them, as pruning does.
pub const EXPIRE_BATCH: usize = 256;

/// Longest the expiry timer sleeps before it looks again, even when the next expiry is far:
/// the wall clock may be set forward meanwhile (the sleep follows the monotonic clock), and a
/// message then expires at most this late.
pub const MAX_EXPIRY_SLEEP: Duration = Duration::from_secs(60);

/// Pause after the inbox failed to settle expiries, before trying again: no busy loop on a
/// lasting error (a read-only or full disk), a short delay once it is over.
const EXPIRY_RETRY: Duration = Duration::from_secs(5);

/// When a message stored at `received_at` (unix microseconds) expires, `after` it is stored.
pub(crate) fn expires_at(received_at: i64, after: Duration) -> i64 {
    let after = i64::try_from(after.as_micros()).unwrap_or(i64::MAX);
    received_at.saturating_add(after)
}

/// Settles the expiries in `inbox` as they fall due, until `shutdown`: at once for those that
/// fell due while the service was down, then at each next expiry.
pub async fn expire_on_time(inbox: Inbox, shutdown: CancellationToken) {
    loop {
        let pause = match settle(&inbox).await {
            Ok(pause) => pause,
            Err(e) => {
                tracing::warn!(error = %e, "could not expire messages; trying again later");
                EXPIRY_RETRY
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = inbox.expiry_added() => {}
            _ = tokio::time::sleep(pause) => {}
        }
    }
}

/// Settles what is due and returns how long to sleep until the next expiry.
async fn settle(inbox: &Inbox) -> Result<Duration, messenger_store::StoreError> {
    let expired = inbox.expire_due(now_micros()).await?;
    if expired > 0 {
        tracing::info!(expired, "messages expired unread");
    }
    Ok(pause_before(inbox.next_expiry().await?, now_micros()))
}

/// How long the timer sleeps at `now_micros` when the next expiry is `next` (unix
/// microseconds): until it, at once if it is past, and never longer than
/// [`MAX_EXPIRY_SLEEP`].
fn pause_before(next: Option<i64>, now_micros: i64) -> Duration {
    match next {
        Some(at) => {
            let wait = u64::try_from(at.saturating_sub(now_micros)).unwrap_or(0);
            Duration::from_micros(wait).min(MAX_EXPIRY_SLEEP)
        }
        None => MAX_EXPIRY_SLEEP,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000_000_000;

    #[test]
    fn the_timer_sleeps_until_the_next_expiry_and_no_longer_than_its_cap() {
        assert_eq!(
            pause_before(Some(NOW + 1_500_000), NOW),
            Duration::from_millis(1500)
        );
        assert_eq!(pause_before(Some(NOW), NOW), Duration::ZERO);
        assert_eq!(pause_before(Some(NOW - 5_000_000), NOW), Duration::ZERO);
        assert_eq!(pause_before(Some(i64::MIN), NOW), Duration::ZERO);
        assert_eq!(pause_before(Some(i64::MAX), NOW), MAX_EXPIRY_SLEEP);
        assert_eq!(pause_before(None, NOW), MAX_EXPIRY_SLEEP);
    }

    #[test]
    fn an_expiry_counts_from_when_the_message_is_stored_and_never_overflows() {
        assert_eq!(expires_at(NOW, Duration::from_secs(60)), NOW + 60_000_000);
        assert_eq!(expires_at(NOW, Duration::ZERO), NOW);
        assert_eq!(expires_at(NOW, Duration::MAX), i64::MAX);
        assert_eq!(expires_at(i64::MAX - 1, Duration::from_secs(1)), i64::MAX);
    }
}
