//! Sending on behalf of the command line (`Request::Send`).
//!
//! Names of this computer are delivered locally, straight into the inbox; anything else goes
//! over the network through the same client code the command line uses when no service runs
//! (`messenger-net`). Broadcasts (`*`, `/DOMAIN`, `/USERS`) need root or the configured
//! broadcast group, and a broadcast to our own workgroup reaches our own users too.

use std::sync::Arc;

use messenger_core::message::{NewMessage, Transport};
use messenger_core::names::NameKind;
use messenger_core::nerr::{
    ERROR_ACCESS_DENIED, ERROR_INVALID_NAME, ERROR_INVALID_PARAMETER, NERR_BAD_RECEIVE,
    NERR_NAME_NOT_FOUND, NERR_NETWORK_ERROR,
};
use messenger_ipc::{IpcError, Reply, SendResult, SendTarget};
use messenger_net::LengthLimit;

use crate::control::{error, Caller};
use crate::service::{lock, now_micros, Service};

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
        Some(f) if f != caller.user && !caller.is_root => {
            return error(
                ERROR_ACCESS_DENIED,
                "Only root may send under another name.",
            )
        }
        Some(f) => f,
        None => caller.user.clone(),
    };
    if text.trim().is_empty() {
        return error(ERROR_INVALID_PARAMETER, "The message is empty.");
    }
    match target {
        SendTarget::Name { name } => {
            let local = messenger_core::names::parse_messaging_name(&name)
                .ok()
                .and_then(|n| {
                    let names = lock(&service.names);
                    names.find_usable(n.name_bytes()).map(|e| {
                        let recipients = match (&e.kind, &e.owner) {
                            (NameKind::Computer, _) | (_, None) => Vec::new(),
                            (_, Some(o)) => vec![o.name.clone()],
                        };
                        (messenger_core::names::display_name(&e.name), recipients)
                    })
                });
            if let Some((shown, recipients)) = local {
                let result = deliver_locally(service, &from, &shown, recipients, &text).await;
                return sent(shown, result.err());
            }
            let settings = match net_settings(service) {
                Ok(s) => s,
                Err(e) => return error(NERR_NETWORK_ERROR, e),
            };
            let limit = LengthLimit::from_allow_long(allow_long);
            match messenger_net::send_to(&settings, &name, &from, &text, limit).await {
                Ok(d) => sent(d.name, None),
                Err(e) => sent(
                    name.trim().to_uppercase(),
                    Some(IpcError {
                        code: e.nerr(),
                        message: e.to_string(),
                    }),
                ),
            }
        }
        SendTarget::Workgroup { name } => {
            if !caller.may_broadcast {
                return error(
                    ERROR_ACCESS_DENIED,
                    "Only root and members of the broadcast group may send to a whole workgroup.",
                );
            }
            let workgroup = name
                .unwrap_or_else(|| service.settings.workgroup.clone())
                .to_uppercase();
            let settings = match net_settings(service) {
                Ok(s) => s,
                Err(e) => return error(NERR_NETWORK_ERROR, e),
            };
            let network =
                messenger_net::broadcast::send_broadcast(&settings, &workgroup, &from, &text)
                    .await
                    .map(|_| ())
                    .map_err(|e| IpcError {
                        code: e.nerr(),
                        message: e.to_string(),
                    });
            if let Err(e) = &network {
                if e.code == ERROR_INVALID_PARAMETER || e.code == ERROR_INVALID_NAME {
                    return Reply::Error(e.clone());
                }
            }
            let mut results = vec![SendResult {
                recipient: workgroup.clone(),
                error: network.err(),
            }];
            if workgroup == service.settings.workgroup {
                let local = deliver_locally(service, &from, &workgroup, Vec::new(), &text).await;
                if let Err(e) = local {
                    results.push(SendResult {
                        recipient: service.settings.computer_name.clone(),
                        error: Some(e),
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

fn net_settings(service: &Service) -> Result<messenger_net::Settings, String> {
    messenger_net::Settings::with_interfaces(
        &service.settings.config,
        &service.settings.computer_name,
        service.interfaces.clone(),
    )
    .map_err(|e| e.to_string())
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
        transport: Transport::Local,
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
