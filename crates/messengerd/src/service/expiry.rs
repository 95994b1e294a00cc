//! Messages that expire unless read in time (`messenger send --time`, msg.exe's /TIME).
//!
//! A local send that asks for an expiry runs inside [`with_expiry`]; whatever the send stores
//! in this computer's inbox while it runs is stored with that expiry (see
//! [`Service::deliver`](super::Service::deliver)), and the ids are handed back, so that the
//! control socket can tell the sender what expired and which recipients are beyond its reach
//! (a message that leaves this computer cannot carry an expiry). Messages that arrive from the
//! network never run inside it, so they never expire.
//!
//! The expiry itself is in the inbox, so it survives a restart: [`expire_on_time`] settles at
//! once what fell due while the service was down, then sleeps until the next expiry the
//! inbox holds (one timer, however many messages wait), waking early when a message with an
//! earlier expiry may have been stored.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::inbox::Inbox;
use crate::util::{lock, now_micros};

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

tokio::task_local! {
    static SEND_EXPIRY: SendExpiry;
}

/// The expiry of the send running on this task, and what it stored.
struct SendExpiry {
    after: Duration,
    /// Ids stored by this send: one per message it delivers here (a send delivers at most one
    /// copy to this computer per target, so this stays tiny).
    stored: Mutex<Vec<i64>>,
}

/// Runs `send` so that what it stores in this computer's inbox expires `after` it is stored
/// (none: never), and returns its output with the ids of the messages stored with an expiry.
pub(crate) async fn with_expiry<F: Future>(
    after: Option<Duration>,
    send: F,
) -> (F::Output, Vec<i64>) {
    let Some(after) = after else {
        return (send.await, Vec::new());
    };
    let expiry = SendExpiry {
        after,
        stored: Mutex::new(Vec::new()),
    };
    SEND_EXPIRY
        .scope(expiry, async {
            let output = send.await;
            let ids = SEND_EXPIRY.with(|e| std::mem::take(&mut *lock(&e.stored)));
            (output, ids)
        })
        .await
}

/// When a message stored at `received_at` (unix microseconds) by the send running on this
/// task expires; none outside [`with_expiry`].
pub(crate) fn expiry_of_this_send(received_at: i64) -> Option<i64> {
    SEND_EXPIRY
        .try_with(|e| {
            let after = i64::try_from(e.after.as_micros()).unwrap_or(i64::MAX);
            received_at.saturating_add(after)
        })
        .ok()
}

/// How long after storing the message the send running on this task asked it to expire;
/// none outside [`with_expiry`]. For a message that leaves this computer with its expiry
/// (over the organisation's network), to be stored with it there.
pub(crate) fn expiry_of_this_send_after() -> Option<Duration> {
    SEND_EXPIRY.try_with(|e| e.after).ok()
}

/// Notes that the send running on this task stored message `id` with its expiry.
pub(crate) fn stored_by_this_send(id: i64) {
    let _ = SEND_EXPIRY.try_with(|e| lock(&e.stored).push(id));
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

    #[tokio::test]
    async fn a_send_stores_with_its_expiry_only_inside_its_scope() {
        assert_eq!(expiry_of_this_send(NOW), None);
        stored_by_this_send(1); // outside any send: ignored
        let ((), ids) = with_expiry(Some(Duration::from_secs(60)), async {
            assert_eq!(expiry_of_this_send(NOW), Some(NOW + 60_000_000));
            stored_by_this_send(7);
        })
        .await;
        assert_eq!(ids, vec![7]);
        let ((), ids) = with_expiry(None, async {
            assert_eq!(expiry_of_this_send(NOW), None);
        })
        .await;
        assert!(ids.is_empty());
        // A spawned task is not part of the send.
        let ((), _) = with_expiry(Some(Duration::from_secs(1)), async {
            let inner = tokio::spawn(async { expiry_of_this_send(NOW) })
                .await
                .unwrap();
            assert_eq!(inner, None);
        })
        .await;
    }
}
