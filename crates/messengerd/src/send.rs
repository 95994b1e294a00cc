//! Sending on behalf of the command line (`Request::Send`): the router of outgoing messages.
//!
//! Each way out is a `messenger_core::transport::Transport`, asked whether it can reach the
//! recipient before it is used. Names of this computer are delivered locally, straight into
//! the inbox; anything else goes over NetBIOS through the same client code the command line
//! uses when no service runs (`messenger-net`). Broadcasts (`*`, `/DOMAIN`, `/USERS`) need root or the configured
//! broadcast group, and a broadcast to our own workgroup reaches our own users too. Who may
//! sign with which name and who may broadcast are the rules of `messenger_core::access`, the
//! same the command line applies when it sends without the service.
//!
//! Local users are rate-limited per uid as network sources are per address, with the same
//! `[policy]` numbers (`messages_per_second`, `message_burst`; off with `rate_limit = false`):
//! a person sends no faster from a shell here than from another computer, and without a
//! limit one local user could fill the inbox and everyone's terminals. Root is exempt: it can
//! stop the service or write the inbox anyway, and administrators' scripts announce to many.
//! An over-limit send is refused with ERROR_NOT_ENOUGH_QUOTA (1816).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use messenger_core::config::Config;
use messenger_core::message::{NewMessage, TransportKind};
use messenger_core::names::NameKind;
use messenger_core::nerr::{
    ERROR_ACCESS_DENIED, ERROR_INVALID_PARAMETER, ERROR_NOT_ENOUGH_QUOTA, NERR_BAD_RECEIVE,
    NERR_NAME_NOT_FOUND, NERR_NETWORK_ERROR,
};
use messenger_core::policy::RateLimiter;
use messenger_core::transport::{Delivery, Outgoing, Reach, Recipient, SendError, Transport};
use messenger_ipc::{IpcError, Reply, SendResult, SendTarget};
use messenger_net::NetBios;

use crate::caller::Caller;
use crate::control::error;
use crate::service::{lock, now_micros, Service};

/// Local users tracked by the send rate limit at once. The table forgets idle users first
/// when full (see `RateLimiter`), so this bounds memory (about 64 bytes a user), not who may
/// send; 4096 is more users than send at once on any shared host.
const MAX_RATE_LIMITED_USERS: usize = 4096;

/// The per-uid rate limit on local sends (see the module documentation).
pub struct LocalSendLimit {
    users: Option<Mutex<RateLimiter<u32>>>,
}

impl LocalSendLimit {
    /// The limit `config` asks for: `[policy] messages_per_second` after `message_burst`, or
    /// none with `rate_limit = false`.
    pub fn from_config(config: &Config) -> Self {
        let policy = &config.policy;
        Self {
            users: policy.rate_limit.then(|| {
                Mutex::new(RateLimiter::new(
                    policy.messages_per_second,
                    policy.message_burst,
                    MAX_RATE_LIMITED_USERS,
                ))
            }),
        }
    }

    /// Whether one more send by `caller` at `now` is within their rate; root always is.
    pub fn admits(&self, caller: &Caller, now: Instant) -> bool {
        match &self.users {
            Some(users) if !caller.is_root => lock(users).check_key(caller.uid, now),
            _ => true,
        }
    }
}

/// Handles a send request from `caller`.
pub async fn send(
    service: &Arc<Service>,
    caller: &Caller,
    target: SendTarget,
    from: Option<String>,
    text: String,
    allow_long: bool,
) -> Reply {
    let from = match from {
        Some(f) if !messenger_core::access::may_send_as(&caller.identity(), &f) => {
            return error(ERROR_ACCESS_DENIED, messenger_core::access::SEND_AS_REFUSED)
        }
        Some(f) => f,
        None => caller.user.clone(),
    };
    if text.trim().is_empty() {
        return error(ERROR_INVALID_PARAMETER, "The message is empty.");
    }
    if !service.local_sends.admits(caller, Instant::now()) {
        tracing::warn!(
            uid = caller.uid,
            "a local user is over the send rate; refused"
        );
        return error(
            ERROR_NOT_ENOUGH_QUOTA,
            "Too many messages in a short time; wait a moment and send again.",
        );
    }
    match target {
        SendTarget::Name { name } => {
            let typed = name.trim().to_uppercase();
            let outgoing = Outgoing {
                from,
                to: Recipient::Name(name),
                text,
                allow_long,
            };
            // A name of ours never leaves the computer; anything else goes to the first
            // network transport that can try it.
            let local = LocalDelivery { service };
            let result = if local.reach(&outgoing.to) == Reach::Local {
                local.send(&outgoing).await
            } else {
                let netbios = match netbios(service) {
                    Ok(t) => t,
                    Err(e) => return error(NERR_NETWORK_ERROR, e),
                };
                match netbios.send(&outgoing).await {
                    // What the caller typed is wrong (a name that is neither a messaging
                    // name nor a host): the request fails as a whole, as the command line
                    // reports it.
                    Err(e) if e.input => return Reply::Error(ipc_error(e)),
                    other => other,
                }
            };
            match result {
                Ok(d) => sent(d.recipient, None),
                Err(e) => sent(typed, Some(ipc_error(e))),
            }
        }
        SendTarget::Workgroup { name } => {
            if !caller.may_broadcast {
                return error(
                    ERROR_ACCESS_DENIED,
                    messenger_core::access::BROADCAST_REFUSED,
                );
            }
            let workgroup = name
                .unwrap_or_else(|| service.settings.workgroup.clone())
                .to_uppercase();
            let outgoing = Outgoing {
                from,
                to: Recipient::Workgroup(workgroup.clone()),
                text,
                allow_long,
            };
            let netbios = match netbios(service) {
                Ok(t) => t,
                Err(e) => return error(NERR_NETWORK_ERROR, e),
            };
            let network = match netbios.send(&outgoing).await {
                Err(e) if e.input => return Reply::Error(ipc_error(e)),
                other => other.map(|_| ()).map_err(ipc_error),
            };
            let mut results = vec![SendResult {
                recipient: workgroup,
                error: network.err(),
            }];
            // A broadcast to our own workgroup reaches our own users too.
            let local = LocalDelivery { service };
            if local.reach(&outgoing.to) == Reach::Local {
                if let Err(e) = local.send(&outgoing).await {
                    results.push(SendResult {
                        recipient: service.settings.computer_name.clone(),
                        error: Some(ipc_error(e)),
                    });
                }
            }
            Reply::Sent { results }
        }
        SendTarget::Users => {
            if !caller.may_broadcast {
                return error(
                    ERROR_ACCESS_DENIED,
                    "Only root and members of the broadcast group may send to every user.",
                );
            }
            let users: Vec<String> = {
                let sessions = service.sessions.read().unwrap_or_else(|e| e.into_inner());
                crate::utmp::users(&sessions).into_iter().collect()
            };
            if users.is_empty() {
                return error(NERR_NAME_NOT_FOUND, "Nobody is logged in to this computer.");
            }
            let to = service.settings.computer_name.clone();
            let result = deliver_locally(service, &from, &to, users.clone(), &text).await;
            Reply::Sent {
                results: users
                    .into_iter()
                    .map(|u| SendResult {
                        recipient: u,
                        error: result.clone().err(),
                    })
                    .collect(),
            }
        }
    }
}

fn sent(recipient: String, error: Option<IpcError>) -> Reply {
    Reply::Sent {
        results: vec![SendResult { recipient, error }],
    }
}

/// The NetBIOS transport with the service's configuration and interfaces.
fn netbios(service: &Service) -> Result<NetBios, String> {
    messenger_net::Settings::with_interfaces(
        &service.settings.config,
        &service.settings.computer_name,
        service.interfaces.clone(),
    )
    .map(NetBios::new)
    .map_err(|e| e.to_string())
}

fn ipc_error(e: SendError) -> IpcError {
    IpcError {
        code: e.code,
        message: e.message,
    }
}

/// Delivery to this computer's own names and workgroup, straight into the inbox.
struct LocalDelivery<'a> {
    service: &'a Arc<Service>,
}

impl LocalDelivery<'_> {
    /// The name of ours that `name` is, as shown, and the users it is for (none: everyone).
    fn find(&self, name: &str) -> Option<(String, Vec<String>)> {
        let parsed = messenger_core::names::parse_messaging_name(name).ok()?;
        let names = lock(&self.service.names);
        names.find_usable(parsed.name_bytes()).map(|e| {
            let recipients = match (&e.kind, &e.owner) {
                (NameKind::Computer, _) | (_, None) => Vec::new(),
                (_, Some(o)) => vec![o.name.clone()],
            };
            (messenger_core::names::display_name(&e.name), recipients)
        })
    }
}

impl Transport for LocalDelivery<'_> {
    fn name(&self) -> &'static str {
        "local"
    }

    fn reach(&self, to: &Recipient) -> Reach {
        let ours = match to {
            Recipient::Name(name) => self.find(name).is_some(),
            Recipient::Workgroup(workgroup) => *workgroup == self.service.settings.workgroup,
        };
        if ours {
            Reach::Local
        } else {
            Reach::Unreachable
        }
    }

    async fn send(&self, message: &Outgoing) -> Result<Delivery, SendError> {
        let (shown, recipients) = match &message.to {
            Recipient::Name(name) => self.find(name).ok_or_else(|| SendError {
                code: NERR_NAME_NOT_FOUND,
                message: format!("{} is no longer a name of this computer", name.trim()),
                input: false,
            })?,
            Recipient::Workgroup(workgroup) => (workgroup.clone(), Vec::new()),
        };
        deliver_locally(
            self.service,
            &message.from,
            &shown,
            recipients,
            &message.text,
        )
        .await
        .map_err(|e| SendError {
            code: e.code,
            message: e.message,
            input: false,
        })?;
        Ok(Delivery { recipient: shown })
    }
}

async fn deliver_locally(
    service: &Arc<Service>,
    from: &str,
    to: &str,
    recipients: Vec<String>,
    text: &str,
) -> Result<i64, IpcError> {
    let message = NewMessage {
        received_at: now_micros(),
        from: from.to_uppercase(),
        to: to.to_owned(),
        recipients,
        source: None,
        transport: TransportKind::Local,
        text: text.to_owned(),
        raw: text.as_bytes().to_vec(),
    };
    service
        .deliver(message, service.settings.computer_name.clone())
        .await
        .map_err(|_| IpcError {
            code: NERR_BAD_RECEIVE,
            message: "The inbox could not take the message.".into(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn caller(uid: u32) -> Caller {
        Caller {
            uid,
            gid: uid,
            user: format!("user{uid}"),
            is_root: uid == 0,
            may_broadcast: uid == 0,
        }
    }

    fn limited(per_second: f64, burst: u32) -> LocalSendLimit {
        let mut config = Config::default();
        config.policy.rate_limit = true;
        config.policy.messages_per_second = per_second;
        config.policy.message_burst = burst;
        LocalSendLimit::from_config(&config)
    }

    #[test]
    fn local_users_are_limited_each_on_their_own() {
        let limit = limited(1.0, 3);
        let t0 = Instant::now();
        let alice = caller(1000);
        let admitted = (0..10).filter(|_| limit.admits(&alice, t0)).count();
        assert_eq!(admitted, 3, "the burst, then nothing");
        // Another user's bucket is their own.
        assert!(limit.admits(&caller(1001), t0));
        // The rate refills.
        assert!(!limit.admits(&alice, t0 + Duration::from_millis(500)));
        assert!(limit.admits(&alice, t0 + Duration::from_secs(1)));
    }

    #[test]
    fn root_is_not_limited_and_rate_limit_false_limits_nobody() {
        let limit = limited(0.001, 1);
        let t0 = Instant::now();
        assert!((0..100).all(|_| limit.admits(&caller(0), t0)));
        let mut config = Config::default();
        config.policy.rate_limit = false;
        let off = LocalSendLimit::from_config(&config);
        assert!((0..100).all(|_| off.admits(&caller(1000), t0)));
    }
}
