//! Sends, name queries and node status against in-test peers built from the `netbios` state
//! machines, on loopback with ephemeral ports.

use std::net::Ipv4Addr;
use std::time::Duration;

use messenger_core::config::Config;
use messenger_net::testing::{DatagramListener, MessageReceiver, NameResponder, ReceiverBehaviour};
use messenger_net::{
    node_status, resolve_name, send_broadcast, send_to, send_to_session, Interface, LengthLimit,
    NetError, SessionRequest, Settings,
};
use netbios::mailslot::{Addressing, MessengerDatagram};
use netbios::smb::{DeliveryError, MessageForm, ReceiverConfig};
use netbios::NetbiosName;

fn name(n: &str) -> NetbiosName {
    NetbiosName::messenger(n).unwrap()
}

/// Settings for a loopback-only network with the given ports and short retries, so that
/// "nobody answers" tests end quickly.
fn settings(name_port: u16, session_port: u16) -> Settings {
    let mut s = Settings::with_interfaces(
        &Config::default(),
        "sender",
        vec![Interface::loopback(Ipv4Addr::LOCALHOST)],
    )
    .unwrap();
    s.name_port = name_port;
    s.session_port = session_port;
    s.timeouts.broadcast_query_interval = Duration::from_millis(100);
    s.timeouts.node_status_interval = Duration::from_millis(100);
    s.timeouts.wins_query_interval = Duration::from_millis(100);
    s.timeouts.connect = Duration::from_secs(5);
    s.timeouts.response = Duration::from_secs(5);
    s
}

#[tokio::test]
async fn broadcast_query_finds_a_name_and_misses_others() {
    let responder = NameResponder::start(Ipv4Addr::LOCALHOST, &[name("bob")]).await;
    let s = settings(responder.port, 1);
    assert_eq!(
        resolve_name(&s, name("bob")).await.unwrap(),
        vec![Ipv4Addr::LOCALHOST]
    );
    let err = resolve_name(&s, name("nobody")).await.unwrap_err();
    assert!(matches!(err, NetError::NameNotFound { .. }), "{err}");
    assert_eq!(err.nerr(), 2273);
}

#[tokio::test]
async fn wins_is_asked_when_broadcasts_reach_nobody() {
    let wins = NameResponder::start(Ipv4Addr::LOCALHOST, &[name("carol")]).await;
    let mut s = settings(wins.port, 1);
    // The only interface's "broadcast" goes to 127.0.0.3, where nothing listens.
    s.interfaces = vec![Interface::loopback(Ipv4Addr::new(127, 0, 0, 3))];
    assert!(resolve_name(&s, name("carol")).await.is_err());
    s.wins_server = Some(Ipv4Addr::LOCALHOST);
    assert_eq!(
        resolve_name(&s, name("carol")).await.unwrap(),
        vec![Ipv4Addr::LOCALHOST]
    );
}

#[tokio::test]
async fn node_status_lists_the_names() {
    let responder = NameResponder::start(
        Ipv4Addr::LOCALHOST,
        &[
            name("alice"),
            name("hosta"),
            NetbiosName::new(b"HOSTA", 0x00).unwrap(),
        ],
    )
    .await;
    let s = settings(responder.port, 1);
    let names = node_status(&s, Ipv4Addr::LOCALHOST).await.unwrap();
    assert_eq!(names.len(), 3);
    assert_eq!(
        messenger_net::resolve::messenger_name(&names),
        Some(name("hosta"))
    );
}

#[tokio::test]
async fn node_status_of_a_silent_host_times_out() {
    let s = settings(1, 1);
    let err = node_status(&s, Ipv4Addr::new(127, 0, 0, 9))
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::Timeout { .. }), "{err}");
    assert_eq!(err.nerr(), 2136);
}

#[tokio::test]
async fn short_message_by_name_goes_as_one_block_with_crlf() {
    let responder = NameResponder::start(Ipv4Addr::LOCALHOST, &[name("bob")]).await;
    let mut receiver = MessageReceiver::start(ReceiverBehaviour::default()).await;
    let s = settings(responder.port, receiver.port);
    let delivered = send_to(&s, "bob", "alice", "hi\nthere", LengthLimit::Windows)
        .await
        .unwrap();
    assert_eq!(delivered.name, "BOB");
    assert_eq!(delivered.form, MessageForm::SingleBlock);
    let m = receiver.next_message().await;
    assert_eq!(m.from, b"ALICE");
    assert_eq!(m.to, b"BOB");
    assert_eq!(m.text, b"hi\r\nthere");
    assert_eq!(m.form, MessageForm::SingleBlock);
    // No session request on a port other than 139.
    assert_eq!(m.called, None);
}

#[tokio::test]
async fn long_message_goes_multi_block_in_the_code_page() {
    let responder = NameResponder::start(Ipv4Addr::LOCALHOST, &[name("bob")]).await;
    let mut receiver = MessageReceiver::start(ReceiverBehaviour::default()).await;
    let s = settings(responder.port, receiver.port);
    let text = "é".repeat(300);
    let delivered = send_to(&s, "BOB", "alice", &text, LengthLimit::Windows)
        .await
        .unwrap();
    assert_eq!(delivered.form, MessageForm::MultiBlock);
    let m = receiver.next_message().await;
    assert_eq!(m.text, vec![0x82; 300]);
}

#[tokio::test]
async fn a_receiver_that_drops_a_bare_d0_gets_the_multi_block_form() {
    let responder = NameResponder::start(Ipv4Addr::LOCALHOST, &[name("samba")]).await;
    let mut receiver = MessageReceiver::start(ReceiverBehaviour {
        like_samba: true,
        ..ReceiverBehaviour::default()
    })
    .await;
    let s = settings(responder.port, receiver.port);
    let delivered = send_to(&s, "samba", "alice", "short", LengthLimit::Windows)
        .await
        .unwrap();
    assert_eq!(delivered.form, MessageForm::MultiBlock);
    assert_eq!(receiver.next_message().await.text, b"short");
    assert_eq!(receiver.dropped_connections(), 1);
}

#[tokio::test]
async fn an_address_target_is_called_by_its_messenger_name() {
    let responder = NameResponder::start(
        Ipv4Addr::LOCALHOST,
        &[
            name("pc1"),
            NetbiosName::new(b"PC1", 0x00).unwrap(),
            name("dave"),
        ],
    )
    .await;
    let mut receiver = MessageReceiver::start(ReceiverBehaviour::default()).await;
    let s = settings(responder.port, receiver.port);
    let delivered = send_to(&s, "127.0.0.1", "alice", "by address", LengthLimit::Windows)
        .await
        .unwrap();
    assert_eq!(delivered.name, "PC1");
    assert_eq!(receiver.next_message().await.to, b"PC1");
    // A DNS name that is not a NetBIOS name, and that DNS does not know either: the error is
    // in what was typed, and says which rule of messaging names it breaks.
    let delivered = send_to(
        &s,
        "localhost.localdomain.invalid-but-long",
        "alice",
        "x",
        LengthLimit::Windows,
    )
    .await;
    match delivered {
        Err(e @ NetError::NoSuchRecipient { too_long: true, .. }) => {
            assert!(e.is_input_error());
            assert!(e.to_string().contains("at most 15"), "{e}");
        }
        other => panic!("expected an unknown recipient, got {other:?}"),
    }
}

#[tokio::test]
async fn a_session_client_is_called_by_its_machine_name_with_the_user_as_recipient() {
    // No name service at all: the machine name is known, so nothing is looked up.
    let mut receiver = MessageReceiver::start(ReceiverBehaviour {
        config: ReceiverConfig::session_port(),
        names: vec![name("client1")],
        ..ReceiverBehaviour::default()
    })
    .await;
    let mut s = settings(1, receiver.port);
    s.session_request = SessionRequest::Always;
    let delivered = send_to_session(
        &s,
        Ipv4Addr::LOCALHOST,
        "client1",
        "alice",
        "admin",
        "the server goes down",
        LengthLimit::Windows,
    )
    .await
    .unwrap();
    assert_eq!(delivered.name, "CLIENT1");
    let message = receiver.next_message().await;
    assert_eq!(message.to, b"ALICE");
    assert_eq!(message.from, b"ADMIN");

    // No NetBIOS name in the session (smbstatus showed the address): asked by node status.
    let responder = NameResponder::start(Ipv4Addr::LOCALHOST, &[name("client1")]).await;
    s.name_port = responder.port;
    let delivered = send_to_session(
        &s,
        Ipv4Addr::LOCALHOST,
        "",
        "bob",
        "admin",
        "x",
        LengthLimit::Windows,
    )
    .await
    .unwrap();
    assert_eq!(delivered.name, "CLIENT1");
    assert_eq!(receiver.next_message().await.to, b"BOB");
}

#[tokio::test]
async fn a_session_client_without_the_user_gets_it_for_its_computer_name() {
    let mut receiver = MessageReceiver::start(ReceiverBehaviour {
        config: ReceiverConfig::session_port(),
        names: vec![name("client1")],
        recipients: vec![b"CLIENT1".to_vec()],
        ..ReceiverBehaviour::default()
    })
    .await;
    let mut s = settings(1, receiver.port);
    s.session_request = SessionRequest::Always;
    send_to_session(
        &s,
        Ipv4Addr::LOCALHOST,
        "client1",
        "nobody",
        "admin",
        "x",
        LengthLimit::Windows,
    )
    .await
    .unwrap();
    let message = receiver.next_message().await;
    assert_eq!(message.to, b"CLIENT1");
    assert!(receiver.try_message().is_none(), "one copy only");
}

#[tokio::test]
async fn a_session_request_for_a_name_the_host_lacks_is_name_not_found() {
    let responder = NameResponder::start(Ipv4Addr::LOCALHOST, &[name("erin")]).await;
    let receiver = MessageReceiver::start(ReceiverBehaviour {
        config: ReceiverConfig::session_port(),
        names: vec![name("frank")],
        ..ReceiverBehaviour::default()
    })
    .await;
    let mut s = settings(responder.port, receiver.port);
    s.session_request = SessionRequest::Always;
    let err = send_to(&s, "erin", "alice", "x", LengthLimit::Windows)
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::NameNotFound { .. }), "{err}");
}

#[tokio::test]
async fn session_request_is_sent_when_configured() {
    let responder = NameResponder::start(Ipv4Addr::LOCALHOST, &[name("frank")]).await;
    let mut receiver = MessageReceiver::start(ReceiverBehaviour {
        config: ReceiverConfig::session_port(),
        names: vec![name("frank")],
        ..ReceiverBehaviour::default()
    })
    .await;
    let mut s = settings(responder.port, receiver.port);
    s.session_request = SessionRequest::Always;
    send_to(&s, "frank", "alice", "with a session", LengthLimit::Windows)
        .await
        .unwrap();
    let m = receiver.next_message().await;
    assert_eq!(m.called.unwrap().name, name("frank"));
    assert_eq!(
        m.calling.unwrap().name,
        NetbiosName::new(b"SENDER", 0x00).unwrap()
    );
}

#[tokio::test]
async fn paused_and_refusing_receivers_map_to_their_net_errors() {
    let responder = NameResponder::start(Ipv4Addr::LOCALHOST, &[name("gina")]).await;
    for (verdict, code) in [
        (DeliveryError::Paused, 2281),
        (DeliveryError::NoRoom, 2282),
        // Our senders do not ask for NT status, so "not our name" comes back as the generic
        // ERRSRV/ERRerror, which says no more than "not received".
        (DeliveryError::NotOurName, 2282),
    ] {
        let receiver = MessageReceiver::start(ReceiverBehaviour {
            verdict: Err(verdict),
            ..ReceiverBehaviour::default()
        })
        .await;
        let s = settings(responder.port, receiver.port);
        for text in ["short", &"long ".repeat(60)] {
            let err = send_to(&s, "gina", "alice", text, LengthLimit::Windows)
                .await
                .unwrap_err();
            assert_eq!(err.nerr(), code, "{verdict:?}: {err}");
        }
    }
}

#[tokio::test]
async fn nobody_listening_is_a_network_error() {
    let responder = NameResponder::start(Ipv4Addr::LOCALHOST, &[name("hank")]).await;
    // Bind and drop a listener to get a port that refuses connections.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let s = settings(responder.port, port);
    let err = send_to(&s, "hank", "alice", "x", LengthLimit::Windows)
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::Io { .. }), "{err}");
    assert_eq!(err.nerr(), 2136);
}

#[tokio::test]
async fn limits_and_code_page_are_checked_before_the_network() {
    let s = settings(1, 1);
    let long = "x".repeat(653);
    let err = send_to(&s, "bob", "alice", &long, LengthLimit::Windows)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        NetError::TooLong {
            len: 653,
            max: 652,
            ..
        }
    ));
    let err = send_to(&s, "bob", "alice", &"x".repeat(1601), LengthLimit::Long)
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::TooLong { max: 1600, .. }));
    let err = send_to(&s, "bob", "alice", "日本", LengthLimit::Windows)
        .await
        .unwrap_err();
    assert!(matches!(err, NetError::Unmappable(_)));
    assert!(err.is_input_error());
}

#[tokio::test]
async fn broadcast_is_a_mailslot_datagram_to_the_workgroup() {
    let listener = DatagramListener::start().await;
    let mut s = settings(1, 1);
    s.datagram_port = listener.port;
    let report = send_broadcast(&s, "workgroup", "alice", "lunch\nnow")
        .await
        .unwrap();
    assert_eq!(report.workgroup, "WORKGROUP");
    assert_eq!(report.sent_to.len(), 1);
    let bytes = listener.next().await;
    let d = MessengerDatagram::decode(&bytes).unwrap().unwrap();
    assert_eq!(d.addressing, Addressing::Group);
    assert_eq!(
        d.destination.name,
        NetbiosName::new(b"WORKGROUP", 0x00).unwrap()
    );
    assert_eq!(d.source.name, NetbiosName::new(b"SENDER", 0x00).unwrap());
    assert_eq!(d.header.source_ip, Ipv4Addr::LOCALHOST);
    assert_eq!(d.message.from, b"ALICE");
    assert_eq!(d.message.to, b"WORKGROUP");
    assert_eq!(d.message.text, b"lunch\x14now");
}

#[tokio::test]
async fn broadcasts_are_limited_to_128_characters() {
    let s = settings(1, 1);
    let err = send_broadcast(&s, "WORKGROUP", "alice", &"x".repeat(129))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        NetError::TooLong {
            len: 129,
            max: 128,
            ..
        }
    ));
}
