//! A send with an expiry (`messenger send --time`): what the control socket adds to a send so
//! that the sender learns what expired and where the expiry could not go.

use std::sync::Arc;

use messenger_ipc::{Receipt, SendTarget};

use crate::host::caller::Caller;
use crate::service::Service;
use crate::transports::outbound::{self, Outcome, SendOptions, SendReport};
use crate::util::now_micros;
use messenger_core::transport::SendError;

/// What a recipient beyond this computer is told: the expiry stays here, as `--wait` says of
/// receivers that only accept.
pub(crate) fn beyond_reach_notice(recipient: &str) -> String {
    format!(
        "The expiry applies only to this computer's service; {recipient} keeps the message \
         without one."
    )
}

/// Sends as `options` ask; with an expiry (`options.expire`) the sender also learns what
/// expired and which recipients keep the message without it. A sender who waits stops
/// waiting when the message expires, since nobody can read it any more; if it did expire,
/// the receipts say so.
pub(crate) async fn send(
    service: &Arc<Service>,
    caller: &Caller,
    target: SendTarget,
    text: String,
    mut options: SendOptions,
) -> Result<Vec<Outcome>, SendError> {
    let Some(after) = options.expire else {
        return Ok(outbound::send(service, caller, target, text, options)
            .await?
            .outcomes);
    };
    let waits_out_the_expiry = options.wait.is_some_and(|w| w >= after);
    if waits_out_the_expiry {
        options.wait = Some(after);
    }
    let beyond: fn(usize, &[i64]) -> bool = match &target {
        // The first outcome is the network's; this computer's copy has none unless it failed.
        SendTarget::Workgroup { .. } => |i, _| i == 0,
        SendTarget::Name { .. } => |_, stored| stored.is_empty(),
        SendTarget::Users => |_, _| false,
    };
    let SendReport {
        mut outcomes,
        stored_here: stored,
    } = outbound::send(service, caller, target, text, options).await?;
    // The wait ended at the expiry: settle it now rather than when the timer wakes, so the
    // answer does not depend on which of the two came first.
    let expired = waits_out_the_expiry && !stored.is_empty() && expired_any(service, &stored).await;
    for (i, outcome) in outcomes.iter_mut().enumerate() {
        if outcome.result.is_err() {
            continue;
        }
        if beyond(i, &stored) && !outcome.expiry_carried {
            let notice = beyond_reach_notice(&outcome.recipient);
            outcome.notice = Some(match outcome.notice.take() {
                Some(other) => format!("{other} {notice}"),
                None => notice,
            });
        } else if expired && outcome.receipt == Some(Receipt::NotReadInTime) {
            outcome.receipt = Some(Receipt::Expired);
        }
    }
    Ok(outcomes)
}

/// Settles what is due now and tells whether any of `ids` expired unread.
async fn expired_any(service: &Arc<Service>, ids: &[i64]) -> bool {
    if let Err(e) = service.inbox.expire_due(now_micros()).await {
        tracing::warn!(error = %e, "could not expire messages");
        return false;
    }
    let ids = ids.to_vec();
    service
        .inbox
        .read(move |s| {
            for id in ids {
                if s.get(id)?.is_some_and(|m| m.expired) {
                    return Ok(true);
                }
            }
            Ok(false)
        })
        .await
        .unwrap_or(false)
}
