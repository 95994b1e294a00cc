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
//! Local users are rate-limited per uid (`crate::gate::LocalSendLimit`) as network sources are per address, with the same
//! `[policy]` numbers (`messages_per_second`, `message_burst`; off with `rate_limit = false`):
//! a person sends no faster from a shell here than from another computer, and without a
//! limit one local user could fill the inbox and everyone's terminals. Root is exempt: it can
//! stop the service or write the inbox anyway, and administrators' scripts announce to many.
//! An over-limit send is refused with ERROR_NOT_ENOUGH_QUOTA (1816).

use std::sync::Arc;
use std::time::Instant;

use messenger_core::message::{NewMessage, TransportKind};
use messenger_core::names::NameKind;
use messenger_core::nerr::{
    ERROR_ACCESS_DENIED, ERROR_INVALID_PARAMETER, ERROR_NOT_ENOUGH_QUOTA, NERR_BAD_RECEIVE,
    NERR_NAME_NOT_FOUND, NERR_NETWORK_ERROR,
};
use messenger_core::transport::{Delivery, Outgoing, Reach, Recipient, SendError, Transport};
use messenger_ipc::SendTarget;
use messenger_net::NetBios;

use crate::host::caller::Caller;
use crate::service::Service;
use crate::util::{lock, now_micros};

/// What became of one recipient of a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    /// The recipient as the sender should see it.
    pub recipient: String,
    /// Whether it reached them.
    pub result: Result<(), SendError>,
}

/// A send refused as a whole, before anything went out.
fn refused(code: u32, message: impl Into<String>) -> SendError {
    SendError {
        code,
        message: message.into(),
        input: true,
    }
}

/// Handles a send request from `caller`: the outcome for each recipient, or why the request
/// failed as a whole (not allowed, over the rate, an empty text, a name that cannot be one).
pub(crate) async fn send(
    service: &Arc<Service>,
    caller: &Caller,
    target: SendTarget,
    from: Option<String>,
    text: String,
    allow_long: bool,
) -> Result<Vec<Outcome>, SendError> {
    let from = match from {
        Some(f) if !messenger_core::access::may_send_as(&caller.identity(), &f) => {
            return Err(refused(
                ERROR_ACCESS_DENIED,
                messenger_core::access::SEND_AS_REFUSED,
            ))
        }
        Some(f) => f,
        None => caller.user.clone(),
    };
    if text.trim().is_empty() {
        return Err(refused(ERROR_INVALID_PARAMETER, "The message is empty."));
    }
    if !service.local_sends.admits(caller, Instant::now()) {
        tracing::warn!(
            uid = caller.uid,
            "a local user is over the send rate; refused"
        );
        return Err(refused(
            ERROR_NOT_ENOUGH_QUOTA,
            "Too many messages in a short time; wait a moment and send again.",
        ));
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
                    Err(e) => return Err(refused(NERR_NETWORK_ERROR, e)),
                };
                match netbios.send(&outgoing).await {
                    // What the caller typed is wrong (a name that is neither a messaging
                    // name nor a host): the request fails as a whole, as the command line
                    // reports it.
                    Err(e) if e.input => return Err(e),
                    other => other,
                }
            };
            Ok(vec![match result {
                Ok(d) => Outcome {
                    recipient: d.recipient,
                    result: Ok(()),
                },
                Err(e) => Outcome {
                    recipient: typed,
                    result: Err(e),
                },
            }])
        }
        SendTarget::Workgroup { name } => {
            if !caller.may_broadcast {
                return Err(refused(
                    ERROR_ACCESS_DENIED,
                    messenger_core::access::BROADCAST_REFUSED,
                ));
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
                Err(e) => return Err(refused(NERR_NETWORK_ERROR, e)),
            };
            let network = match netbios.send(&outgoing).await {
                Err(e) if e.input => return Err(e),
                other => other.map(|_| ()),
            };
            let mut outcomes = vec![Outcome {
                recipient: workgroup,
                result: network,
            }];
            // A broadcast to our own workgroup reaches our own users too.
            let local = LocalDelivery { service };
            if local.reach(&outgoing.to) == Reach::Local {
                if let Err(e) = local.send(&outgoing).await {
                    outcomes.push(Outcome {
                        recipient: service.settings.computer_name.clone(),
                        result: Err(e),
                    });
                }
            }
            Ok(outcomes)
        }
        SendTarget::Users => {
            if !caller.may_broadcast {
                return Err(refused(
                    ERROR_ACCESS_DENIED,
                    "Only root and members of the broadcast group may send to every user.",
                ));
            }
            let users: Vec<String> = {
                let sessions = service.sessions.read().unwrap_or_else(|e| e.into_inner());
                crate::host::utmp::users(&sessions).into_iter().collect()
            };
            if users.is_empty() {
                return Err(refused(
                    NERR_NAME_NOT_FOUND,
                    "Nobody is logged in to this computer.",
                ));
            }
            let to = service.settings.computer_name.clone();
            let result = deliver_locally(service, &from, &to, users.clone(), &text)
                .await
                .map(|_| ());
            Ok(users
                .into_iter()
                .map(|recipient| Outcome {
                    recipient,
                    result: result.clone(),
                })
                .collect())
        }
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
        .await?;
        Ok(Delivery { recipient: shown })
    }
}

async fn deliver_locally(
    service: &Arc<Service>,
    from: &str,
    to: &str,
    recipients: Vec<String>,
    text: &str,
) -> Result<i64, SendError> {
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
        .map_err(|_| SendError {
            code: NERR_BAD_RECEIVE,
            message: "The inbox could not take the message.".into(),
            input: false,
        })
}
