//! Messages that Samba's smbd received for this host (`messenger deliver`, run as smbd's
//! `message command` where nmbd and smbd own the NetBIOS ports and the service runs with
//! `netbios = false`).
//!
//! Only root and the account smbd runs message commands as (smb.conf's `guest account`,
//! `nobody` by default) may deliver: anyone else could otherwise put words in a stranger's
//! mouth. What they hand over is still the network's text, and is treated like a message
//! that came over the session service: the source policy applies to its address, its
//! lengths are bounded as on the wire, and it is stored before the caller is answered.

use std::net::SocketAddr;
use std::sync::Arc;

use messenger_core::message::{NewMessage, TransportKind};
use messenger_core::names::NameKind;
use messenger_core::nerr::{ERROR_ACCESS_DENIED, ERROR_INVALID_PARAMETER, NERR_BAD_RECEIVE};
use messenger_ipc::{Delivery, Reply};

use crate::host::caller::Caller;
use crate::service::Service;
use crate::util::{lock, now_micros};

/// Longest sender, recipient or machine name taken. NetBIOS names have 15 characters; smbd
/// hands names through `fstring` buffers of 256 bytes, and a name longer than that is no name
/// smbd produced.
pub const MAX_DELIVERED_NAME_LEN: usize = 255;

/// Handles a `Deliver` request from `caller`.
pub async fn deliver(service: &Arc<Service>, caller: &Caller, delivery: Delivery) -> Reply {
    if !caller.is_root && !is_samba_guest(service, caller.uid).await {
        return Reply::error(
            ERROR_ACCESS_DENIED,
            format!(
                "Only root and Samba's guest account ({}) may deliver messages.",
                service.samba_guest_account()
            ),
        );
    }
    for (what, value) in [
        ("sender", &delivery.from),
        ("machine", &delivery.machine),
        ("recipient", delivery.to.as_ref().unwrap_or(&String::new())),
    ] {
        if value.len() > MAX_DELIVERED_NAME_LEN {
            return Reply::error(
                ERROR_INVALID_PARAMETER,
                format!("The {what} name is longer than {MAX_DELIVERED_NAME_LEN} bytes."),
            );
        }
    }
    let max = service.settings.config.max_message_len();
    if delivery.text.chars().count() > max {
        return Reply::error(
            ERROR_INVALID_PARAMETER,
            format!("The message is longer than {max} characters."),
        );
    }
    if !service.gate.admits_source(delivery.address) {
        tracing::info!(source = %delivery.address, "delivered message refused by the source policy");
        return Reply::error(
            ERROR_ACCESS_DENIED,
            format!(
                "Messages from {} are refused by this computer's policy.",
                delivery.address
            ),
        );
    }
    let (to, recipients) = destination(service, delivery.to.as_deref());
    let message = NewMessage {
        received_at: now_micros(),
        from: delivery.from,
        to,
        recipients,
        source: Some(SocketAddr::new(delivery.address, 0)),
        transport: TransportKind::Session,
        raw: service
            .settings
            .code_page
            .encode_lossy(&delivery.text)
            .bytes,
        text: delivery.text,
    };
    match service.deliver(message, delivery.machine, None).await {
        Ok(id) => Reply::Delivered { id },
        Err(_) => Reply::error(NERR_BAD_RECEIVE, "The inbox could not take the message."),
    }
}

/// Who gets a delivered message: the owner of the called name when it is a user's name or
/// alias of ours, else everyone on this computer (smbd took it for the host itself).
fn destination(service: &Service, called: Option<&str>) -> (String, Vec<String>) {
    let names = lock(&service.names);
    let found = called.and_then(|c| names.find_usable(c.as_bytes()));
    match found {
        Some(e) => {
            let recipients = match (&e.kind, &e.owner) {
                (NameKind::Computer, _) | (_, None) => Vec::new(),
                (_, Some(o)) => vec![o.name.clone()],
            };
            (messenger_core::names::display_name(&e.name), recipients)
        }
        None => (service.settings.computer_name.clone(), Vec::new()),
    }
}

/// Whether `uid` is the account smbd runs `message command` as. The account database may be
/// LDAP or sssd, so the lookup runs off the async runtime.
async fn is_samba_guest(service: &Service, uid: u32) -> bool {
    let account = service.samba_guest_account().to_owned();
    tokio::task::spawn_blocking(move || {
        nix::unistd::User::from_name(&account)
            .ok()
            .flatten()
            .is_some_and(|u| u.uid.as_raw() == uid)
    })
    .await
    .unwrap_or(false)
}
