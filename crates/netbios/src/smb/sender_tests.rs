//! Tests of the sending side of a messenger connection ([`super::SenderSession`]), driven
//! with a virtual clock and checked against the Samba captures.

use super::*;
use crate::name::{NetbiosName, SUFFIX_MESSENGER};
use crate::smb::header::SmbHeader;
use crate::smb::receiver::{
    DeliveryError, IncomingMessage, ReceiverConfig, ReceiverEvent, ReceiverSession,
};
use crate::test_vectors::capture_tcp_streams;
use proptest::prelude::*;

fn qn(name: &str, suffix: u8) -> QualifiedName {
    QualifiedName::new(NetbiosName::new(name.as_bytes(), suffix).unwrap())
}

fn message(text: &[u8]) -> OutgoingMessage {
    OutgoingMessage {
        calling: qn("ALICE", 0),
        called: qn("BOB", SUFFIX_MESSENGER),
        from: b"ALICE".to_vec(),
        to: b"BOB".to_vec(),
        text: text.to_vec(),
    }
}

/// How the in-memory server behaves.
#[derive(Clone, Copy)]
struct Server {
    config: ReceiverConfig,
    /// Accept the session request.
    accept: bool,
    /// Close the connection when the first SMB is 0xD0, as Samba's smbd does.
    samba_d0_close: bool,
    /// What delivery reports.
    delivery: Result<(), DeliveryError>,
}

impl Default for Server {
    fn default() -> Self {
        Self {
            config: ReceiverConfig::session_port(),
            accept: true,
            samba_d0_close: false,
            delivery: Ok(()),
        }
    }
}

/// The SMB command in a session-message frame, if it is one.
fn smb_command(frame: &[u8]) -> Option<u8> {
    match SessionPacket::decode(frame).ok()? {
        SessionPacket::SessionMessage(smb) => smb.get(4).copied(),
        _ => None,
    }
}

/// Runs one connection between a sender and a receiver in memory, moving bytes both ways
/// until the sender has an outcome. Returns the outcome, the delivered messages and the
/// commands the sender sent.
fn run(
    msg: &OutgoingMessage,
    options: SenderOptions,
    server: Server,
) -> (SendOutcome, Vec<IncomingMessage>, Vec<u8>) {
    let now = Instant::now();
    let mut tx = SenderSession::new(msg.clone(), options, now).unwrap();
    let mut rx = ReceiverSession::new(server.config, now);
    let mut delivered = Vec::new();
    let mut commands = Vec::new();
    for _ in 0..10_000 {
        if let Some(outcome) = tx.outcome() {
            return (outcome.clone(), delivered, commands);
        }
        while let Some(bytes) = tx.poll_transmit() {
            if let Some(cmd) = smb_command(&bytes) {
                if server.samba_d0_close && commands.is_empty() && cmd == command::SEND_MESSAGE {
                    tx.handle_eof();
                    return (tx.outcome().unwrap().clone(), delivered, commands);
                }
                commands.push(cmd);
            }
            rx.handle_bytes(now, &bytes);
        }
        while let Some(event) = rx.poll_event() {
            match event {
                ReceiverEvent::Transmit(bytes) => tx.handle_bytes(now, &bytes),
                ReceiverEvent::SessionRequested { called, .. } => {
                    rx.accept_session(now, server.accept && called == msg.called)
                }
                ReceiverEvent::Deliver(m) => {
                    delivered.push(m);
                    rx.complete_delivery(now, server.delivery);
                }
                ReceiverEvent::Close(_) => tx.handle_eof(),
            }
        }
    }
    panic!("the conversation did not finish");
}

#[test]
fn short_text_goes_as_one_block() {
    let msg = message(b"Lunch?\x14At noon");
    let (outcome, delivered, commands) = run(&msg, SenderOptions::default(), Server::default());
    assert_eq!(outcome, SendOutcome::Delivered(MessageForm::SingleBlock));
    assert_eq!(commands, vec![command::SEND_MESSAGE]);
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].text, msg.text);
    assert_eq!(delivered[0].from, b"ALICE");
    assert_eq!(delivered[0].called, Some(qn("BOB", SUFFIX_MESSENGER)));
}

#[test]
fn long_text_goes_in_blocks_of_128() {
    let text: Vec<u8> = (0..300u32).map(|i| b'a' + (i % 26) as u8).collect();
    let msg = message(&text);
    let (outcome, delivered, commands) = run(&msg, SenderOptions::default(), Server::default());
    assert_eq!(outcome, SendOutcome::Delivered(MessageForm::MultiBlock));
    assert_eq!(commands, vec![0xD5, 0xD7, 0xD7, 0xD7, 0xD6]);
    assert_eq!(delivered[0].text, text);
    assert_eq!(delivered[0].form, MessageForm::MultiBlock);
}

#[test]
fn multi_block_can_be_forced_and_handles_empty_text() {
    let opts = SenderOptions::default().multi_block();
    let (outcome, delivered, commands) = run(&message(b"hi"), opts, Server::default());
    assert_eq!(outcome, SendOutcome::Delivered(MessageForm::MultiBlock));
    assert_eq!(commands, vec![0xD5, 0xD7, 0xD6]);
    assert_eq!(delivered[0].text, b"hi");
    let (outcome, delivered, commands) = run(&message(b""), opts, Server::default());
    assert_eq!(outcome, SendOutcome::Delivered(MessageForm::MultiBlock));
    assert_eq!(commands, vec![0xD5, 0xD6]);
    assert_eq!(delivered[0].text, b"");
}

#[test]
fn without_session_request_on_a_direct_port() {
    let opts = SenderOptions {
        session_request: false,
        ..SenderOptions::default()
    };
    let server = Server {
        config: ReceiverConfig::direct_port(),
        ..Server::default()
    };
    let (outcome, delivered, _) = run(&message(b"direct"), opts, server);
    assert_eq!(outcome, SendOutcome::Delivered(MessageForm::SingleBlock));
    assert_eq!(delivered[0].called, None);
}

#[test]
fn d0_closed_by_samba_is_retried_as_multi_block_on_a_new_connection() {
    let msg = message(b"short");
    let server = Server {
        samba_d0_close: true,
        ..Server::default()
    };
    let (outcome, delivered, _) = run(&msg, SenderOptions::default(), server);
    assert_eq!(outcome, SendOutcome::RetryMultiBlock);
    assert!(delivered.is_empty());
    let (outcome, delivered, commands) = run(&msg, SenderOptions::default().multi_block(), server);
    assert_eq!(outcome, SendOutcome::Delivered(MessageForm::MultiBlock));
    assert_eq!(commands, vec![0xD5, 0xD7, 0xD6]);
    assert_eq!(delivered[0].text, b"short");

    let no_retry = SenderOptions {
        retry_multi_block: false,
        ..SenderOptions::default()
    };
    let (outcome, _, _) = run(&msg, no_retry, server);
    assert_eq!(outcome, SendOutcome::Failed(SendError::ConnectionClosed));
}

#[test]
fn d0_unknown_to_the_server_falls_back_on_the_same_connection() {
    let now = Instant::now();
    let mut tx = SenderSession::new(message(b"x"), SenderOptions::default(), now).unwrap();
    tx.poll_transmit().unwrap();
    tx.handle_bytes(now, &[0x82, 0, 0, 0]);
    let d0 = tx.poll_transmit().unwrap();
    assert_eq!(smb_command(&d0), Some(command::SEND_MESSAGE));
    let refusal = Response::error(
        &SmbHeader::request(command::SEND_MESSAGE),
        SmbStatus::errsrv(dos::ERR_SMBCMD),
    );
    tx.handle_bytes(now, &nbss::frame_message(&refusal.to_bytes()).unwrap());
    assert_eq!(
        smb_command(&tx.poll_transmit().unwrap()),
        Some(command::SEND_START_MB)
    );
    assert!(!tx.is_finished());
}

#[test]
fn unknown_recipient_is_name_not_found() {
    let server = Server {
        accept: false,
        ..Server::default()
    };
    let (outcome, delivered, commands) = run(&message(b"x"), SenderOptions::default(), server);
    assert_eq!(outcome, SendOutcome::Failed(SendError::NameNotFound));
    assert!(delivered.is_empty() && commands.is_empty());
}

#[test]
fn delivery_errors_reach_the_sender_typed() {
    for (err, expected) in [
        (DeliveryError::NoRoom, SendError::NoRoom),
        (DeliveryError::MessagingOff, SendError::MessagingOff),
        (DeliveryError::Paused, SendError::Paused),
        (
            DeliveryError::NotOurName,
            SendError::Refused(SmbStatus::errsrv(dos::ERR_ERROR)),
        ),
    ] {
        for text in [&b"short"[..], &[b'y'; 200][..]] {
            let server = Server {
                delivery: Err(err),
                ..Server::default()
            };
            let (outcome, _, _) = run(&message(text), SenderOptions::default(), server);
            assert_eq!(outcome, SendOutcome::Failed(expected.clone()));
        }
    }
}

#[test]
fn oversize_text_is_refused_with_no_room() {
    let mut server = Server::default();
    server.config.limits.max_message_len = 256;
    let (outcome, delivered, commands) =
        run(&message(&[b'z'; 300]), SenderOptions::default(), server);
    assert_eq!(outcome, SendOutcome::Failed(SendError::NoRoom));
    assert!(delivered.is_empty());
    assert_eq!(commands, vec![0xD5, 0xD7, 0xD7, 0xD7]);
}

#[test]
fn nt_status_errors_are_mapped() {
    for (status, expected) in [
        (nt::SHARING_PAUSED, SendError::Paused),
        (nt::REQUEST_NOT_ACCEPTED, SendError::MessagingOff),
        (nt::DISK_FULL, SendError::NoRoom),
        (nt::OBJECT_NAME_NOT_FOUND, SendError::NotRecipient),
        (nt::from_errsrv(dos::ERR_RMUNS), SendError::TooManyNames),
        (
            nt::INVALID_PARAMETER,
            SendError::Refused(SmbStatus::Nt(nt::INVALID_PARAMETER)),
        ),
    ] {
        assert_eq!(status_error(SmbStatus::Nt(status)), expected);
    }
}

/// Our sender against smbd's recorded answers: positive session response, 0xD5 answered
/// with WordCount 0 (group id 0 is echoed), Flags2 0x4003, each 0xD7 and 0xD6 answered.
#[test]
fn sender_accepts_samba_responses_from_the_capture() {
    let server = capture_tcp_streams("samba-4.17-multiblock-message.pcap")
        .into_iter()
        .find(|s| s.src_port == nbss::SESSION_PORT)
        .unwrap();
    let mut frames = crate::nbss::Framer::new(FramerMode::SessionService, 1 << 16);
    frames.push(&server.bytes);
    let now = Instant::now();
    let text = vec![b'k'; 300];
    let opts = SenderOptions {
        block_len: 127,
        ..SenderOptions::default().multi_block()
    };
    let mut tx = SenderSession::new(message(&text), opts, now).unwrap();
    let mut sent = Vec::new();
    while let Some(packet) = frames.next_frame().unwrap() {
        while let Some(bytes) = tx.poll_transmit() {
            sent.push(bytes);
        }
        tx.handle_bytes(now, &packet.to_bytes().unwrap());
    }
    assert_eq!(
        tx.outcome(),
        Some(&SendOutcome::Delivered(MessageForm::MultiBlock))
    );
    let blocks: Vec<TextBlock> = sent
        .iter()
        .filter_map(|f| match SessionPacket::decode(f).ok()? {
            SessionPacket::SessionMessage(smb) => match Request::decode(&smb).ok()? {
                Request::Text(t) => Some(t),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(
        blocks.iter().map(|b| b.data.len()).collect::<Vec<_>>(),
        vec![127, 127, 46]
    );
    assert!(blocks.iter().all(|b| b.group_id == 0));
}

#[test]
fn group_id_from_the_start_response_is_echoed() {
    let now = Instant::now();
    let opts = SenderOptions {
        session_request: false,
        ..SenderOptions::default().multi_block()
    };
    let mut tx = SenderSession::new(message(b"abc"), opts, now).unwrap();
    assert_eq!(smb_command(&tx.poll_transmit().unwrap()), Some(0xD5));
    let start = Response::start_accepted(&SmbHeader::request(command::SEND_START_MB), 0x4242);
    tx.handle_bytes(now, &nbss::frame_message(&start.to_bytes()).unwrap());
    let SessionPacket::SessionMessage(smb) =
        SessionPacket::decode(&tx.poll_transmit().unwrap()).unwrap()
    else {
        panic!("expected a session message");
    };
    assert_eq!(
        Request::decode(&smb).unwrap(),
        Request::Text(TextBlock::new(0x4242, b"abc".to_vec()))
    );
}

#[test]
fn response_timeout_and_protocol_errors() {
    let now = Instant::now();
    let mut tx = SenderSession::new(message(b"x"), SenderOptions::default(), now).unwrap();
    assert_eq!(tx.poll_timeout(), Some(now + DEFAULT_RESPONSE_TIMEOUT));
    tx.handle_timeout(now + Duration::from_secs(29));
    assert!(!tx.is_finished());
    // Keep-alives do not count as an answer.
    tx.handle_bytes(now, &[0x85, 0, 0, 0]);
    tx.handle_timeout(now + DEFAULT_RESPONSE_TIMEOUT);
    assert_eq!(tx.outcome(), Some(&SendOutcome::Failed(SendError::Timeout)));

    let mut tx = SenderSession::new(message(b"x"), SenderOptions::default(), now).unwrap();
    tx.handle_bytes(now, &[0x84, 0, 0, 6, 10, 0, 0, 5, 0, 139]);
    assert_eq!(
        tx.outcome(),
        Some(&SendOutcome::Failed(SendError::Retargeted {
            addr: Ipv4Addr::new(10, 0, 0, 5),
            port: nbss::SESSION_PORT
        }))
    );

    let mut tx = SenderSession::new(message(b"x"), SenderOptions::default(), now).unwrap();
    tx.handle_bytes(now, &[0x83, 0, 0, 1, 0x83]);
    assert_eq!(
        tx.outcome(),
        Some(&SendOutcome::Failed(SendError::SessionRefused(
            NegativeCode::InsufficientResources
        )))
    );

    let mut tx = SenderSession::new(message(b"x"), SenderOptions::default(), now).unwrap();
    tx.handle_bytes(now, &[0x82, 0, 0, 0]);
    let wrong = Response::success(&SmbHeader::request(command::SEND_END_MB));
    tx.handle_bytes(now, &nbss::frame_message(&wrong.to_bytes()).unwrap());
    assert!(matches!(
        tx.outcome(),
        Some(SendOutcome::Failed(SendError::Protocol(_)))
    ));

    let mut bad = message(b"x");
    bad.from = b"AL\0ICE".to_vec();
    assert!(SenderSession::new(bad, SenderOptions::default(), now).is_err());
}

proptest! {
    #[test]
    fn sender_never_panics_on_arbitrary_responses(
        data in proptest::collection::vec(any::<u8>(), 0..400),
        cuts in proptest::collection::vec(1usize..64, 0..20),
        positive_first in any::<bool>(),
        session_request in any::<bool>(),
    ) {
        let now = Instant::now();
        let opts = SenderOptions { session_request, ..SenderOptions::default() };
        let mut tx = SenderSession::new(message(&[b'q'; 200]), opts, now).unwrap();
        let mut stream = Vec::new();
        if positive_first {
            stream.extend([0x82, 0, 0, 0]);
        }
        stream.extend(data);
        let mut rest = &stream[..];
        for cut in cuts.into_iter().chain(std::iter::once(usize::MAX)) {
            let (chunk, tail) = rest.split_at(cut.min(rest.len()));
            rest = tail;
            tx.handle_bytes(now, chunk);
            while tx.poll_transmit().is_some() {}
        }
        tx.handle_eof();
        prop_assert!(tx.is_finished());
    }

    #[test]
    fn any_text_round_trips_through_sender_and_receiver(
        text in proptest::collection::vec(1u8..=255, 0..1600),
        single in any::<bool>(),
        block_len in 1usize..=128,
    ) {
        let opts = SenderOptions {
            prefer_single_block: single,
            block_len,
            ..SenderOptions::default()
        };
        let mut server = Server::default();
        server.config.limits.max_blocks = 1600;
        let (outcome, delivered, _) = run(&message(&text), opts, server);
        prop_assert!(matches!(outcome, SendOutcome::Delivered(_)));
        prop_assert_eq!(&delivered[0].text, &text);
    }
}
