//! `NET SEND *` and `NET SEND /DOMAIN[:X]`: one mailslot datagram per interface.
//!
//! The message is a write to `\MAILSLOT\MESSNGR` carried in a DIRECT_GROUP datagram to
//! `WORKGROUP<00>`, the group name every workstation of the workgroup or domain registers
//! (KB Q168893; REFERENCE 5.1–5.4), sent to each interface's broadcast address on the
//! datagram port. Nothing answers a mailslot datagram, so "sent" means "handed to the
//! network on at least one interface".

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use netbios::mailslot::{build_broadcast, MessengerMessage, SendParams};
use netbios::name::SUFFIX_WORKSTATION;
use netbios::{NetbiosName, QualifiedName};
use tokio::net::UdpSocket;

use crate::error::NetError;
use crate::iface::Interface;
use crate::{next_id, text, Settings};

/// What a broadcast reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastReport {
    /// The workgroup it was sent to, as on the wire (uppercased).
    pub workgroup: String,
    /// The addresses it was sent to.
    pub sent_to: Vec<SocketAddrV4>,
    /// Interfaces where sending failed, with the error, when at least one other worked.
    pub failed: Vec<(Ipv4Addr, String)>,
}

/// Sends `text` from `from` to every computer of `workgroup`.
pub async fn send_broadcast(
    settings: &Settings,
    workgroup: &str,
    from: &str,
    text: &str,
) -> Result<BroadcastReport, NetError> {
    let cp = settings.code_page;
    let text_bytes = text::encode_broadcast(text, cp)?;
    let from_bytes = text::encode_name(from, cp)?;
    let group_bytes = text::encode_name(workgroup, cp)?;
    let group =
        NetbiosName::new(&group_bytes, SUFFIX_WORKSTATION).map_err(|e| NetError::InvalidName {
            name: workgroup.to_owned(),
            reason: e.to_string(),
        })?;
    let destination = QualifiedName::with_scope(group, settings.scope.clone());
    let message =
        MessengerMessage::new(from_bytes, group_bytes.clone(), text_bytes).map_err(|e| {
            NetError::InvalidName {
                name: from.to_owned(),
                reason: e.to_string(),
            }
        })?;

    let mut report = BroadcastReport {
        workgroup: cp.decode(&group_bytes),
        sent_to: Vec::new(),
        failed: Vec::new(),
    };
    let mut last_error = None;
    for iface in &settings.interfaces {
        match send_on(settings, iface, &destination, &message).await {
            Ok(to) => report.sent_to.push(to),
            Err(e) => {
                tracing::warn!(interface = %iface.name, addr = %iface.addr, error = %e, "broadcast failed");
                report.failed.push((iface.addr, e.to_string()));
                last_error = Some(e);
            }
        }
    }
    match last_error {
        Some(e) if report.sent_to.is_empty() => Err(e),
        _ if report.sent_to.is_empty() => Err(NetError::Interfaces(
            crate::iface::InterfaceError::NoInterface,
        )),
        _ => Ok(report),
    }
}

async fn send_on(
    settings: &Settings,
    iface: &Interface,
    destination: &QualifiedName,
    message: &MessengerMessage,
) -> Result<SocketAddrV4, NetError> {
    let to = SocketAddrV4::new(iface.broadcast, settings.datagram_port);
    let peer = SocketAddr::V4(to);
    let params = SendParams::new(settings.source_name(), iface.addr, next_id());
    let datagram =
        build_broadcast(&params, destination, message).map_err(|e| NetError::TooLong {
            len: message.text.len(),
            max: text::BROADCAST_MAX_CHARS,
            unit: "bytes",
            hint: match e {
                netbios::mailslot::MailslotError::TooLong { .. } => " for a broadcast",
                _ => "",
            },
        })?;
    let bytes = datagram.encode().map_err(|e| NetError::Protocol {
        peer,
        reason: e.to_string(),
    })?;
    let io = |what: &'static str| move |source| NetError::Io { what, peer, source };
    // Bound to the interface's address so that the datagram leaves through it with its
    // address as the source, matching SOURCE_IP in the header.
    let socket = UdpSocket::bind(SocketAddrV4::new(iface.addr, 0))
        .await
        .map_err(io("binding a datagram socket"))?;
    socket
        .set_broadcast(true)
        .map_err(io("allowing broadcasts"))?;
    socket
        .send_to(&bytes, to)
        .await
        .map_err(io("sending the broadcast"))?;
    tracing::debug!(%to, len = bytes.len(), "broadcast sent");
    Ok(to)
}
