//! The datagram service: `\MAILSLOT\MESSNGR` writes to our workgroup and to our names are
//! stored; anything addressed elsewhere is ignored.

use std::net::Ipv4Addr;

use messenger_core::message::TransportKind;
use netbios::mailslot::{build_broadcast, build_directed, MessengerMessage, SendParams};
use netbios::{NetbiosName, QualifiedName};
use tokio::net::UdpSocket;

use crate::harness::*;

/// A host on the same segment: 127.0.0.2 (datagrams from the service's own address are its
/// own broadcasts and ignored).
const PEER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

pub struct Peer {
    socket: UdpSocket,
    params: SendParams,
}

impl Peer {
    pub async fn new() -> Self {
        let socket = UdpSocket::bind((PEER, 0)).await.unwrap();
        let source = QualifiedName::new(NetbiosName::new(b"PEERPC", 0).unwrap());
        Self {
            socket,
            params: SendParams::new(source, PEER, 7),
        }
    }

    /// Sends a MESSNGR write to the datagram name `destination` with `to` as its To field.
    pub async fn send(
        &mut self,
        svc: &TestService,
        destination: NetbiosName,
        group: bool,
        to: &str,
        text: &str,
    ) {
        self.params.datagram_id = self.params.datagram_id.wrapping_add(1);
        let message = MessengerMessage::new("PEERUSER", to, text).unwrap();
        let destination = QualifiedName::new(destination);
        let datagram = if group {
            build_broadcast(&self.params, &destination, &message)
        } else {
            build_directed(&self.params, &destination, &message)
        }
        .unwrap();
        self.socket
            .send_to(&datagram.encode().unwrap(), svc.datagram)
            .await
            .unwrap();
    }
}

pub fn workgroup(name: &str) -> NetbiosName {
    NetbiosName::new(name.as_bytes(), 0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailslot_messages_to_our_workgroup_and_names_are_stored() {
    let svc = TestService::start(Options::default()).await;
    let mut peer = Peer::new().await;

    peer.send(&svc, workgroup(WORKGROUP), true, WORKGROUP, "to everyone")
        .await;
    let m = svc.wait_for_message("to everyone").await;
    assert_eq!(m.message.transport, TransportKind::Mailslot);
    assert_eq!(m.message.from, "PEERUSER");
    assert_eq!(m.message.to, WORKGROUP);
    assert!(m.message.recipients.is_empty());
    assert_eq!(m.message.source.map(|s| s.ip()), Some(PEER.into()));

    let ours = NetbiosName::messenger(COMPUTER).unwrap();
    peer.send(&svc, ours, false, COMPUTER, "just to you").await;
    let m = svc.wait_for_message("just to you").await;
    assert_eq!(m.message.transport, TransportKind::Mailslot);
    assert_eq!(m.message.to, COMPUTER);

    // Addressed to the computer's workstation name, as some senders do.
    let workstation = NetbiosName::new(COMPUTER.as_bytes(), 0).unwrap();
    peer.send(&svc, workstation, false, COMPUTER, "to the workstation")
        .await;
    svc.wait_for_message("to the workstation").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mailslot_messages_addressed_elsewhere_are_ignored() {
    let svc = TestService::start(Options::default()).await;
    let mut peer = Peer::new().await;

    // Another workgroup's broadcast, whatever its To says.
    peer.send(
        &svc,
        workgroup("OTHERWG"),
        true,
        "OTHERWG",
        "other workgroup",
    )
    .await;
    peer.send(
        &svc,
        workgroup("OTHERWG"),
        true,
        COMPUTER,
        "other wg, our To",
    )
    .await;
    // Our workgroup, but To names someone else's workgroup.
    peer.send(&svc, workgroup(WORKGROUP), true, "OTHERWG", "wrong To")
        .await;
    // Someone else's name, directed.
    let stranger = NetbiosName::messenger("STRANGER").unwrap();
    peer.send(&svc, stranger, false, "STRANGER", "for a stranger")
        .await;
    peer.send(&svc, stranger, false, COMPUTER, "stranger, our To")
        .await;

    // Datagrams are handled in order: once this one is in, the others have been judged.
    peer.send(&svc, workgroup(WORKGROUP), true, WORKGROUP, "marker")
        .await;
    svc.wait_for_message("marker").await;
    assert_eq!(texts(&svc.messages().await), vec!["marker"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_are_ignored_when_switched_off() {
    let svc = TestService::start(Options::configured(|c| {
        c.policy.accept_broadcasts = false;
    }))
    .await;
    let mut peer = Peer::new().await;
    peer.send(&svc, workgroup(WORKGROUP), true, WORKGROUP, "broadcast")
        .await;
    let ours = NetbiosName::messenger(COMPUTER).unwrap();
    peer.send(&svc, ours, false, COMPUTER, "directed").await;
    svc.wait_for_message("directed").await;
    assert_eq!(texts(&svc.messages().await), vec!["directed"]);
}
