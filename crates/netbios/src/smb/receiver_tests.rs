//! Tests of the receiving side of a messenger connection ([`super::ReceiverSession`]),
//! driven with a virtual clock.

use super::*;
use crate::name::{NetbiosName, SUFFIX_MESSENGER};
use crate::nbss::frame_message;
use crate::smb::header::{command, FLAGS2_NT_STATUS};
use crate::smb::messenger::{EndMessage, SendMessage, StartMessage, TextBlock};
use crate::test_vectors::{capture_tcp_streams, DIRECT_TCP_CAPTURE_PORT};
use proptest::prelude::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn qn(name: &str, suffix: u8) -> QualifiedName {
    QualifiedName::new(NetbiosName::new(name.as_bytes(), suffix).unwrap())
}

fn session_request() -> Vec<u8> {
    SessionPacket::SessionRequest {
        called: qn("BOB", SUFFIX_MESSENGER),
        calling: qn("ALICE", 0),
    }
    .to_bytes()
    .unwrap()
}

fn frame(request: Request) -> Vec<u8> {
    frame_message(&request.to_bytes().unwrap()).unwrap()
}

fn d0(text: &[u8]) -> Vec<u8> {
    frame(Request::Send(SendMessage::new(
        b"ALICE".to_vec(),
        b"BOB".to_vec(),
        text.to_vec(),
    )))
}

fn d5() -> Vec<u8> {
    frame(Request::Start(StartMessage::new(
        b"ALICE".to_vec(),
        b"BOB".to_vec(),
    )))
}

fn d7(group_id: u16, text: &[u8]) -> Vec<u8> {
    frame(Request::Text(TextBlock::new(group_id, text.to_vec())))
}

fn d6(group_id: u16) -> Vec<u8> {
    frame(Request::End(EndMessage::new(group_id)))
}

fn events(rs: &mut ReceiverSession) -> Vec<ReceiverEvent> {
    std::iter::from_fn(|| rs.poll_event()).collect()
}

/// The SMB responses among `events`, decoded.
fn responses(events: &[ReceiverEvent]) -> Vec<Response> {
    events
        .iter()
        .filter_map(|e| match e {
            ReceiverEvent::Transmit(bytes) => match SessionPacket::decode(bytes).unwrap() {
                SessionPacket::SessionMessage(smb) => Some(Response::decode(&smb).unwrap()),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

fn only_response(events: &[ReceiverEvent]) -> Response {
    let mut r = responses(events);
    assert_eq!(r.len(), 1, "expected one response in {events:?}");
    r.remove(0)
}

/// A session on port 139 with its session request accepted.
fn established(now: Instant) -> ReceiverSession {
    let mut rs = ReceiverSession::new(ReceiverConfig::session_port(), now);
    rs.handle_bytes(now, &session_request());
    assert_eq!(
        events(&mut rs),
        vec![ReceiverEvent::SessionRequested {
            called: qn("BOB", SUFFIX_MESSENGER),
            calling: qn("ALICE", 0)
        }]
    );
    rs.accept_session(now, true);
    assert_eq!(
        events(&mut rs),
        vec![ReceiverEvent::Transmit(vec![0x82, 0, 0, 0])]
    );
    rs
}

fn errsrv(code: u16) -> SmbStatus {
    SmbStatus::errsrv(code)
}

#[test]
fn single_block_message_is_acknowledged_only_after_delivery() {
    let t0 = Instant::now();
    let mut rs = established(t0);
    let mut smb = Request::Send(SendMessage::new(
        b"ALICE".to_vec(),
        b"BOB".to_vec(),
        b"Hello\0".to_vec(),
    ));
    if let Request::Send(m) = &mut smb {
        m.header.mid = 77;
        m.header.pid_low = 0x1234;
    }
    rs.handle_bytes(t0, &frame(smb));
    let ev = events(&mut rs);
    assert_eq!(
        ev,
        vec![ReceiverEvent::Deliver(IncomingMessage {
            from: b"ALICE".to_vec(),
            to: b"BOB".to_vec(),
            text: b"Hello".to_vec(),
            called: Some(qn("BOB", SUFFIX_MESSENGER)),
            calling: Some(qn("ALICE", 0)),
            form: MessageForm::SingleBlock,
        })]
    );
    assert_eq!(
        rs.poll_timeout(),
        None,
        "no timeout while the caller stores"
    );
    rs.complete_delivery(t0 + secs(1), Ok(()));
    let response = only_response(&events(&mut rs));
    assert!(response.header.status.is_success());
    assert_eq!(response.header.command, command::SEND_MESSAGE);
    assert_eq!((response.header.mid, response.header.pid_low), (77, 0x1234));
    assert_eq!(rs.poll_timeout(), Some(t0 + secs(1) + IDLE_TIMEOUT));
}

#[test]
fn multi_block_message_with_group_ids() {
    let t0 = Instant::now();
    let mut rs = established(t0);
    rs.handle_bytes(t0, &d5());
    let start = only_response(&events(&mut rs));
    assert_eq!(start.words, vec![1], "WordCount 1 with a real group id");
    rs.handle_bytes(t0, &d7(1, &[b'X'; 128]));
    assert!(only_response(&events(&mut rs)).header.status.is_success());
    // A mismatched id (Samba's client sends 0) is tolerated.
    rs.handle_bytes(t0, &d7(0, b"tail"));
    assert!(only_response(&events(&mut rs)).header.status.is_success());
    rs.handle_bytes(t0, &d6(9));
    let ev = events(&mut rs);
    let [ReceiverEvent::Deliver(message)] = &ev[..] else {
        panic!("expected a delivery, got {ev:?}");
    };
    let mut expected = vec![b'X'; 128];
    expected.extend_from_slice(b"tail");
    assert_eq!(message.text, expected);
    assert_eq!(message.form, MessageForm::MultiBlock);
    rs.complete_delivery(t0, Ok(()));
    let end = only_response(&events(&mut rs));
    assert_eq!(end.header.command, command::SEND_END_MB);
    assert!(end.header.status.is_success());
    // The next message on the connection gets a new group id.
    rs.handle_bytes(t0, &d5());
    assert_eq!(only_response(&events(&mut rs)).group_id(), 2);
}

#[test]
fn rejected_session_gets_negative_response_and_close() {
    let t0 = Instant::now();
    let mut rs = ReceiverSession::new(ReceiverConfig::session_port(), t0);
    rs.handle_bytes(t0, &session_request());
    assert!(matches!(
        events(&mut rs)[..],
        [ReceiverEvent::SessionRequested { .. }]
    ));
    rs.accept_session(t0, false);
    assert_eq!(
        events(&mut rs),
        vec![
            ReceiverEvent::Transmit(vec![0x83, 0, 0, 1, 0x82]),
            ReceiverEvent::Close(CloseReason::SessionRejected)
        ]
    );
    assert!(rs.is_closed());
    rs.handle_bytes(t0, &d0(b"x"));
    assert_eq!(events(&mut rs), vec![]);
}

#[test]
fn session_request_policy() {
    let t0 = Instant::now();
    let mut rs = ReceiverSession::new(ReceiverConfig::session_port(), t0);
    rs.handle_bytes(t0, &d0(b"hi"));
    assert!(matches!(
        events(&mut rs)[..],
        [ReceiverEvent::Close(CloseReason::ProtocolViolation(_))]
    ));

    let mut rs = ReceiverSession::new(ReceiverConfig::direct_port(), t0);
    rs.handle_bytes(t0, &d0(b"hi"));
    let ev = events(&mut rs);
    assert!(
        matches!(&ev[..], [ReceiverEvent::Deliver(m)] if m.text == b"hi" && m.called.is_none())
    );

    // A second session request closes the connection.
    let mut rs = established(t0);
    rs.handle_bytes(t0, &session_request());
    assert!(matches!(
        events(&mut rs)[..],
        [ReceiverEvent::Close(CloseReason::ProtocolViolation(_))]
    ));
}

#[test]
fn out_of_sequence_blocks_get_an_error_and_the_connection_survives() {
    let t0 = Instant::now();
    let mut rs = established(t0);
    rs.handle_bytes(t0, &d7(1, b"orphan"));
    assert_eq!(
        only_response(&events(&mut rs)).header.status,
        errsrv(dos::ERR_ERROR)
    );
    rs.handle_bytes(t0, &d6(1));
    assert_eq!(
        only_response(&events(&mut rs)).header.status,
        errsrv(dos::ERR_ERROR)
    );
    rs.handle_bytes(t0, &d0(b"still here"));
    assert!(matches!(events(&mut rs)[..], [ReceiverEvent::Deliver(_)]));
}

#[test]
fn nt_status_when_the_sender_asks_for_it() {
    let t0 = Instant::now();
    let mut rs = established(t0);
    let mut block = TextBlock::new(1, b"x".to_vec());
    block.header.flags2 = FLAGS2_NT_STATUS;
    rs.handle_bytes(t0, &frame(Request::Text(block)));
    assert_eq!(
        only_response(&events(&mut rs)).header.status,
        SmbStatus::Nt(nt::INVALID_PARAMETER)
    );
}

#[test]
fn oversize_messages_get_no_room() {
    let t0 = Instant::now();
    let mut config = ReceiverConfig::session_port();
    config.limits.max_message_len = 200;
    let mut rs = ReceiverSession::new(config, t0);
    rs.handle_bytes(t0, &session_request());
    rs.accept_session(t0, true);
    events(&mut rs);
    rs.handle_bytes(t0, &d0(&[b'a'; 201]));
    assert_eq!(
        only_response(&events(&mut rs)).header.status,
        errsrv(dos::ERR_NOROOM)
    );
    rs.handle_bytes(t0, &d5());
    events(&mut rs);
    rs.handle_bytes(t0, &d7(1, &[b'a'; 128]));
    assert!(only_response(&events(&mut rs)).header.status.is_success());
    rs.handle_bytes(t0, &d7(1, &[b'a'; 128]));
    assert_eq!(
        only_response(&events(&mut rs)).header.status,
        errsrv(dos::ERR_NOROOM)
    );
    // The partial message was dropped: its end is out of sequence.
    rs.handle_bytes(t0, &d6(1));
    assert_eq!(
        only_response(&events(&mut rs)).header.status,
        errsrv(dos::ERR_ERROR)
    );
    // A block above the lenient block cap is refused too.
    rs.handle_bytes(t0, &d5());
    events(&mut rs);
    rs.handle_bytes(t0, &d7(1, &[b'a'; DEFAULT_BLOCK_CAP_PLUS_ONE]));
    assert_eq!(
        only_response(&events(&mut rs)).header.status,
        errsrv(dos::ERR_NOROOM)
    );
    assert!(!rs.is_closed());
}

const DEFAULT_BLOCK_CAP_PLUS_ONE: usize = super::super::assembler::DEFAULT_MAX_BLOCK_LEN + 1;

#[test]
fn unknown_and_obsolete_commands_get_bad_command() {
    let t0 = Instant::now();
    let mut rs = established(t0);
    for cmd in [0xD1, 0xD2, 0xD3, 0xD4, 0x72] {
        let mut smb = Vec::new();
        SmbHeader::request(cmd).encode(&mut smb);
        smb.extend([0, 0, 0]);
        rs.handle_bytes(t0, &frame_message(&smb).unwrap());
        let response = only_response(&events(&mut rs));
        assert_eq!(response.header.command, cmd);
        assert_eq!(response.header.status, errsrv(dos::ERR_SMBCMD));
    }
    let mut header = SmbHeader::request(0xD4);
    header.flags2 = FLAGS2_NT_STATUS;
    let mut smb = Vec::new();
    header.encode(&mut smb);
    smb.extend([0, 0, 0]);
    rs.handle_bytes(t0, &frame_message(&smb).unwrap());
    assert_eq!(
        only_response(&events(&mut rs)).header.status,
        SmbStatus::Nt(nt::SMB_BAD_COMMAND)
    );
    assert!(!rs.is_closed());
}

#[test]
fn malformed_smb_body_gets_an_error_but_garbage_closes() {
    let t0 = Instant::now();
    let mut rs = established(t0);
    // 0xD7 with WordCount 0: the Wireshark-style mistake.
    let mut smb = Vec::new();
    SmbHeader::request(command::SEND_TEXT_MB).encode(&mut smb);
    smb.extend([0, 4, 0, 1, 1, 0, b'x']);
    rs.handle_bytes(t0, &frame_message(&smb).unwrap());
    assert_eq!(
        only_response(&events(&mut rs)).header.status,
        errsrv(dos::ERR_ERROR)
    );
    assert!(!rs.is_closed());

    rs.handle_bytes(t0, &frame_message(b"GET / HTTP/1.0\r\n\r\n").unwrap());
    assert!(matches!(
        events(&mut rs)[..],
        [ReceiverEvent::Close(CloseReason::Malformed(_))]
    ));

    let mut rs = ReceiverSession::new(ReceiverConfig::direct_port(), t0);
    rs.handle_bytes(t0, b"GET / HTTP/1.0\r\n\r\n");
    assert!(matches!(
        events(&mut rs)[..],
        [ReceiverEvent::Close(CloseReason::Malformed(_))]
    ));
}

#[test]
fn delivery_errors_map_to_smb_errors() {
    let cases = [
        (DeliveryError::NoRoom, false, errsrv(dos::ERR_NOROOM)),
        (DeliveryError::MessagingOff, false, errsrv(dos::ERR_MSGOFF)),
        (DeliveryError::Paused, false, errsrv(dos::ERR_PAUSED)),
        (DeliveryError::NotOurName, false, errsrv(dos::ERR_ERROR)),
        (DeliveryError::NoRoom, true, SmbStatus::Nt(nt::DISK_FULL)),
        (
            DeliveryError::MessagingOff,
            true,
            SmbStatus::Nt(nt::REQUEST_NOT_ACCEPTED),
        ),
        (
            DeliveryError::Paused,
            true,
            SmbStatus::Nt(nt::SHARING_PAUSED),
        ),
        (
            DeliveryError::NotOurName,
            true,
            SmbStatus::Nt(nt::OBJECT_NAME_NOT_FOUND),
        ),
    ];
    for (err, nt_form, status) in cases {
        let t0 = Instant::now();
        let mut rs = established(t0);
        let mut m = SendMessage::new(b"A".to_vec(), b"B".to_vec(), b"t".to_vec());
        if nt_form {
            m.header.flags2 = FLAGS2_NT_STATUS;
        }
        rs.handle_bytes(t0, &frame(Request::Send(m)));
        assert!(matches!(events(&mut rs)[..], [ReceiverEvent::Deliver(_)]));
        rs.complete_delivery(t0, Err(err));
        assert_eq!(only_response(&events(&mut rs)).header.status, status);
        assert!(!rs.is_closed());
    }
}

#[test]
fn pipelined_requests_wait_for_the_delivery_answer() {
    let t0 = Instant::now();
    let mut rs = ReceiverSession::new(ReceiverConfig::session_port(), t0);
    let mut all = session_request();
    all.extend(d0(b"one"));
    all.extend([0x85, 0, 0, 0]);
    all.extend(d0(b"two"));
    rs.handle_bytes(t0, &all);
    assert!(matches!(
        events(&mut rs)[..],
        [ReceiverEvent::SessionRequested { .. }]
    ));
    rs.accept_session(t0, true);
    let ev = events(&mut rs);
    assert!(
        matches!(&ev[..], [ReceiverEvent::Transmit(_), ReceiverEvent::Deliver(m)] if m.text == b"one")
    );
    rs.complete_delivery(t0, Ok(()));
    let ev = events(&mut rs);
    assert!(
        matches!(&ev[..], [ReceiverEvent::Transmit(_), ReceiverEvent::Deliver(m)] if m.text == b"two")
    );
}

#[test]
fn peer_close_during_delivery_still_answers_then_closes() {
    let t0 = Instant::now();
    let mut rs = established(t0);
    rs.handle_bytes(t0, &d0(b"x"));
    events(&mut rs);
    rs.handle_eof();
    assert_eq!(events(&mut rs), vec![]);
    rs.complete_delivery(t0, Ok(()));
    let ev = events(&mut rs);
    assert!(matches!(
        &ev[..],
        [
            ReceiverEvent::Transmit(_),
            ReceiverEvent::Close(CloseReason::PeerClosed)
        ]
    ));
}

#[test]
fn first_request_timeout() {
    let t0 = Instant::now();
    let mut rs = ReceiverSession::new(ReceiverConfig::session_port(), t0);
    assert_eq!(rs.poll_timeout(), Some(t0 + FIRST_REQUEST_TIMEOUT));
    rs.handle_timeout(t0 + secs(4));
    assert_eq!(events(&mut rs), vec![]);
    // Keep-alives and partial frames do not extend it.
    rs.handle_bytes(t0 + secs(4), &[0x85, 0, 0, 0, 0x81, 0]);
    assert_eq!(rs.poll_timeout(), Some(t0 + FIRST_REQUEST_TIMEOUT));
    rs.handle_timeout(t0 + FIRST_REQUEST_TIMEOUT);
    assert_eq!(
        events(&mut rs),
        vec![ReceiverEvent::Close(CloseReason::Timeout)]
    );
    assert_eq!(rs.poll_timeout(), None);
}

#[test]
fn idle_timeout_between_smbs_and_slow_senders() {
    let t0 = Instant::now();
    let mut rs = established(t0);
    assert_eq!(rs.poll_timeout(), Some(t0 + IDLE_TIMEOUT));
    rs.handle_bytes(t0 + secs(10), &d5());
    events(&mut rs);
    assert_eq!(rs.poll_timeout(), Some(t0 + secs(10) + IDLE_TIMEOUT));
    // A sender trickling a block byte by byte does not reset the clock.
    let block = d7(1, b"slow");
    for (i, byte) in block[..block.len() - 1].iter().enumerate() {
        rs.handle_bytes(t0 + secs(11 + i as u64), std::slice::from_ref(byte));
    }
    rs.handle_timeout(t0 + secs(10) + IDLE_TIMEOUT);
    assert_eq!(
        events(&mut rs),
        vec![ReceiverEvent::Close(CloseReason::Timeout)]
    );
}

#[test]
fn replays_of_the_samba_captures_are_delivered() {
    for (file, port, config, text) in [
        (
            "samba-4.17-register-query-status-message.pcap",
            nbss::SESSION_PORT,
            ReceiverConfig::session_port(),
            &b"Server will shut down in 5 minutes.\r\n"[..],
        ),
        (
            "samba-4.17-direct-tcp-message.pcap",
            DIRECT_TCP_CAPTURE_PORT,
            ReceiverConfig::direct_port(),
            &b"Meeting changed to 3 p.m\r\n"[..],
        ),
    ] {
        let client = capture_tcp_streams(file)
            .into_iter()
            .find(|s| s.dst_port == port)
            .unwrap();
        let t0 = Instant::now();
        let mut rs = ReceiverSession::new(config, t0);
        rs.handle_bytes(t0, &client.bytes);
        let mut delivered = Vec::new();
        while let Some(event) = rs.poll_event() {
            match event {
                ReceiverEvent::SessionRequested { called, .. } => {
                    assert_eq!(called, qn("SAMBAHOST", SUFFIX_MESSENGER));
                    rs.accept_session(t0, true);
                }
                ReceiverEvent::Deliver(m) => {
                    delivered.push(m);
                    rs.complete_delivery(t0, Ok(()));
                }
                ReceiverEvent::Transmit(_) => {}
                ReceiverEvent::Close(reason) => panic!("{file}: closed: {reason:?}"),
            }
        }
        assert_eq!(delivered.len(), 1, "{file}");
        assert_eq!(delivered[0].text, text, "{file}");
        assert_eq!(delivered[0].to, b"SAMBAHOST", "{file}");
    }
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_input(
        data in proptest::collection::vec(any::<u8>(), 0..600),
        cuts in proptest::collection::vec(1usize..64, 0..20),
        direct in any::<bool>(),
        accept in any::<bool>(),
        prefix_valid in any::<bool>(),
    ) {
        let t0 = Instant::now();
        let config = if direct { ReceiverConfig::direct_port() } else { ReceiverConfig::session_port() };
        let mut rs = ReceiverSession::new(config, t0);
        let mut stream = Vec::new();
        if prefix_valid {
            stream.extend(session_request());
            stream.extend(d5());
        }
        stream.extend(data);
        let mut rest = &stream[..];
        let mut now = t0;
        for cut in cuts.into_iter().chain(std::iter::once(usize::MAX)) {
            let (chunk, tail) = rest.split_at(cut.min(rest.len()));
            rest = tail;
            now += Duration::from_millis(100);
            rs.handle_bytes(now, chunk);
            while let Some(event) = rs.poll_event() {
                match event {
                    ReceiverEvent::SessionRequested { .. } => rs.accept_session(now, accept),
                    ReceiverEvent::Deliver(_) => rs.complete_delivery(now, Ok(())),
                    _ => {}
                }
            }
        }
        rs.handle_timeout(now + IDLE_TIMEOUT);
        prop_assert!(rs.poll_timeout().is_none() || !rs.is_closed());
    }
}
