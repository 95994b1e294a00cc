//! The datagram service: `NET SEND *` and `/DOMAIN` broadcasts, and directed mailslot
//! messages, on UDP 138 (`\MAILSLOT\MESSNGR`).
//!
//! A datagram is taken only when it is addressed to our workgroup's group name with our
//! workgroup as the MESSNGR `To`, or to one of our own names; everything else is ignored, as
//! is anything from our own addresses (this computer's own broadcasts reach local users
//! through the send path, not by looping back).

use std::net::SocketAddr;
use std::sync::Arc;

use messenger_core::message::TransportKind;
use netbios::mailslot::MessengerDatagram;
use netbios::name::{SUFFIX_MESSENGER, SUFFIX_WORKSTATION};
use tokio_util::sync::CancellationToken;

use crate::host::udp::UdpEndpoint;
use crate::service::{Incoming, Service};

/// Largest datagram read: the RFC 1002 MAX_DATAGRAM_LENGTH is 576, but peers on Ethernet
/// send up to the MTU; anything longer is not a messenger datagram.
pub(crate) const MAX_DATAGRAM: usize = 1500;

/// Serves the datagram endpoint of one interface until `shutdown`.
pub async fn run(service: Arc<Service>, mut endpoint: UdpEndpoint, shutdown: CancellationToken) {
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = endpoint.recv() => r,
        };
        if let Ok(r) = received {
            handle(&service, r.data, r.from).await;
        }
    }
}

async fn handle(service: &Arc<Service>, data: &[u8], from: SocketAddr) {
    if let std::net::IpAddr::V4(ip) = from.ip() {
        if service.addresses.contains(&ip) {
            return;
        }
    }
    if !service.gate.admits_source(from.ip()) {
        tracing::info!(%from, "datagram from a source the policy refuses");
        return;
    }
    let datagram = match MessengerDatagram::decode(data) {
        Ok(Some(d)) => d,
        Ok(None) => return,
        Err(e) => {
            tracing::debug!(%from, error = %e, "malformed datagram ignored");
            return;
        }
    };
    let dest = datagram.destination.name;
    let to_workgroup = dest.suffix() == SUFFIX_WORKSTATION
        && dest
            .name_bytes()
            .eq_ignore_ascii_case(service.settings.workgroup.as_bytes());
    if !to_workgroup && !addressed_to_us(service, &dest) {
        tracing::debug!(%from, destination = %dest, "datagram for another name ignored");
        return;
    }
    if to_workgroup && !service.settings.config.policy.accept_broadcasts {
        tracing::info!(%from, "broadcast message ignored: accept_broadcasts = false");
        return;
    }
    if to_workgroup && !service.gate.admits_broadcast_from(from.ip()) {
        tracing::info!(%from, "broadcast message dropped: source not in [policy] broadcast_sources");
        return;
    }
    if let Err(limit) = service.gate.datagram_within_rate(from.ip()) {
        tracing::warn!(%from, ?limit, "mailslot message dropped: over its rate limit");
        return;
    }
    let incoming = Incoming {
        from: datagram.message.from,
        to: datagram.message.to,
        text: datagram.message.text,
        to_workgroup,
        source: Some(from),
        transport: TransportKind::Mailslot,
        calling_machine: messenger_core::names::display_name(&datagram.source.name),
    };
    if let Err(refusal) = service.accept_message(incoming).await {
        tracing::info!(%from, ?refusal, "mailslot message not taken");
    }
}

/// Whether a datagram's NetBIOS destination is one of this computer's own names: one of our
/// usable `<03>` names or `COMPUTER<00>` (REFERENCE 5.4). The MESSNGR `To` field alone does
/// not make a datagram ours: one sent to another workgroup or host is not for us, whatever
/// its `To` says.
fn addressed_to_us(service: &Service, dest: &netbios::NetbiosName) -> bool {
    match dest.suffix() {
        SUFFIX_MESSENGER => crate::util::lock(&service.names)
            .find_usable(dest.name_bytes())
            .is_some(),
        SUFFIX_WORKSTATION => dest
            .name_bytes()
            .eq_ignore_ascii_case(service.settings.computer_name.as_bytes()),
        _ => false,
    }
}
