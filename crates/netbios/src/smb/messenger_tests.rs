//! Tests of the messenger commands and their responses: layouts, limits, round trips and
//! the SMBs of the Samba captures.

use super::*;
use crate::nbss::{self, Framer, FramerMode, SessionPacket};
use crate::smb::header::{nt, SmbStatus, FLAGS2_NT_STATUS, FLAGS_REPLY};
use crate::test_vectors::{
    capture_tcp_streams, example_hex_block, DIRECT_TCP_CAPTURE_PORT, MESSENGER_CAPTURES,
};
use proptest::prelude::*;

#[test]
fn example_11_send_message() {
    let frame = example_hex_block("11_smb_send_message_0xD0.txt", None);
    let Ok(SessionPacket::SessionMessage(smb)) = SessionPacket::decode(&frame) else {
        panic!("example 11 is not one session message");
    };
    let request = Request::decode(&smb).unwrap();
    let expected = Request::Send(SendMessage::new(
        b"ALICE".to_vec(),
        b"BOB".to_vec(),
        b"Hello".to_vec(),
    ));
    assert_eq!(request, expected);
    assert_eq!(request.to_bytes().unwrap(), smb);
    assert_eq!(nbss::frame_message(&smb).unwrap(), frame);
}

#[test]
fn example_12_send_message_response() {
    let frame = example_hex_block("12_smb_send_message_response.txt", None);
    let smb = &frame[nbss::HEADER_LEN..];
    let response = Response::decode(smb).unwrap();
    assert_eq!(
        response,
        Response::success(&SmbHeader::request(command::SEND_MESSAGE))
    );
    assert_eq!(response.header.flags, FLAGS_REPLY);
    assert_eq!(response.to_bytes(), smb);
}

#[test]
fn example_13_multiblock_sequence() {
    let file = "13_smb_multiblock_sequence.txt";
    let d5 = example_hex_block(file, Some("D5 request"));
    assert_eq!(
        Request::decode(&d5).unwrap(),
        Request::Start(StartMessage::new(b"ALICE".to_vec(), b"BOB".to_vec()))
    );
    let d7 = example_hex_block(file, Some("D7 request"));
    assert_eq!(
        Request::decode(&d7).unwrap(),
        Request::Text(TextBlock::new(1, vec![b'X'; 128]))
    );
    let d6 = example_hex_block(file, Some("D6 request"));
    assert_eq!(
        Request::decode(&d6).unwrap(),
        Request::End(EndMessage::new(1))
    );
    for bytes in [&d5, &d7, &d6] {
        assert_eq!(&Request::decode(bytes).unwrap().to_bytes().unwrap(), bytes);
    }

    let d5r = example_hex_block(file, Some("D5 response"));
    let start = SmbHeader::request(command::SEND_START_MB);
    assert_eq!(
        Response::decode(&d5r).unwrap(),
        Response::start_accepted(&start, 1)
    );
    assert_eq!(Response::decode(&d5r).unwrap().group_id(), 1);
    for (section, cmd) in [
        ("D7 response", command::SEND_TEXT_MB),
        ("D6 response", command::SEND_END_MB),
    ] {
        let bytes = example_hex_block(file, Some(section));
        let response = Response::decode(&bytes).unwrap();
        assert_eq!(response, Response::success(&SmbHeader::request(cmd)));
        assert_eq!(response.to_bytes(), bytes);
    }
    assert_eq!(Response::start_accepted(&start, 1).to_bytes(), d5r);
}

/// Every SMB in the Samba captures decodes and re-encodes to the same bytes: requests from
/// `smbclient`, responses from smbd (Flags 0x80, Flags2 0x4003, PID echoed, WordCount 0
/// even for 0xD5).
#[test]
fn capture_smbs_round_trip_exactly() {
    let mut requests = 0;
    let mut responses = 0;
    for file in MESSENGER_CAPTURES {
        for stream in capture_tcp_streams(file) {
            let server_ports = [nbss::SESSION_PORT, DIRECT_TCP_CAPTURE_PORT];
            let to_server = server_ports.contains(&stream.dst_port);
            let from_server = server_ports.contains(&stream.src_port);
            if !to_server && !from_server {
                continue;
            }
            let mut framer = Framer::new(FramerMode::SessionService, nbss::MAX_PAYLOAD_LEN);
            framer.push(&stream.bytes);
            let mut reencoded = Vec::new();
            while let Some(packet) = framer.next_frame().unwrap() {
                if let SessionPacket::SessionMessage(smb) = &packet {
                    if to_server {
                        let request = Request::decode(smb).unwrap();
                        assert!(!matches!(request, Request::Unsupported(_)));
                        assert_eq!(&request.to_bytes().unwrap(), smb, "{file}");
                        requests += 1;
                    } else {
                        let response = Response::decode(smb).unwrap();
                        assert!(response.header.status.is_success());
                        assert_eq!(response.header.flags2, 0x4003);
                        assert_eq!(response.group_id(), 0, "Samba sends no group id");
                        assert_eq!(&response.to_bytes(), smb, "{file}");
                        responses += 1;
                    }
                }
                packet.encode(&mut reencoded).unwrap();
            }
            assert_eq!(framer.buffered(), 0, "{file}: trailing partial frame");
            assert_eq!(reencoded, stream.bytes, "{file}: stream re-encodes exactly");
        }
    }
    // 3 + 5 + 3 requests, each answered.
    assert_eq!((requests, responses), (11, 11));
}

#[test]
fn capture_text_blocks_carry_the_texts() {
    let stream = capture_tcp_streams("samba-4.17-direct-tcp-message.pcap")
        .into_iter()
        .find(|s| s.dst_port == 13139)
        .unwrap();
    let mut framer = Framer::new(FramerMode::DirectSmb, nbss::DEFAULT_MAX_FRAME_LEN);
    framer.push(&stream.bytes);
    let mut smbs = Vec::new();
    while let Some(SessionPacket::SessionMessage(smb)) = framer.next_frame().unwrap() {
        smbs.push(Request::decode(&smb).unwrap());
    }
    let [Request::Start(start), Request::Text(text), Request::End(end)] = &smbs[..] else {
        panic!("expected D5 D7 D6, got {smbs:?}");
    };
    assert_eq!(start.from, b"alice");
    assert_eq!(start.to, b"SAMBAHOST");
    assert_eq!(text.data, b"Meeting changed to 3 p.m\r\n");
    assert_eq!((text.group_id, end.group_id), (0, 0));
    assert_eq!(start.header.pid_low, 0x1B04);
}

#[test]
fn lenient_decoding() {
    // DataLength larger than the data: clamped to what is there.
    let mut smb = Request::Text(TextBlock::new(7, b"abc".to_vec()))
        .to_bytes()
        .unwrap();
    let len_at = HEADER_LEN + 6;
    smb[len_at] = 200;
    assert_eq!(
        Request::decode(&smb).unwrap(),
        Request::Text(TextBlock::new(7, b"abc".to_vec()))
    );
    // DataLength smaller than ByteCount allows: DataLength wins.
    smb[len_at] = 2;
    assert_eq!(
        Request::decode(&smb).unwrap(),
        Request::Text(TextBlock::new(7, b"ab".to_vec()))
    );
    // Wrong buffer-format bytes are ignored.
    let mut smb = Request::Send(SendMessage::new(
        b"A".to_vec(),
        b"B".to_vec(),
        b"t".to_vec(),
    ))
    .to_bytes()
    .unwrap();
    smb[HEADER_LEN + 3] = 0x02;
    assert!(matches!(Request::decode(&smb), Ok(Request::Send(_))));
    // 0xD7 without its group id word is malformed.
    let mut bad = header_bytes(&SmbHeader::request(command::SEND_TEXT_MB));
    bad.extend([0, 3, 0, 1, 0, 0]);
    assert!(Request::decode(&bad).is_err());
    // Strings are never read as Unicode, whatever Flags2 says.
    let mut header = SmbHeader::request(command::SEND_START_MB);
    header.flags2 = crate::smb::header::FLAGS2_UNICODE;
    let start = Request::Start(StartMessage {
        header,
        from: vec![0x8E, b'X'],
        to: b"BOB".to_vec(),
    });
    assert_eq!(Request::decode(&start.to_bytes().unwrap()).unwrap(), start);
}

#[test]
fn obsolete_and_unknown_commands_are_unsupported() {
    for cmd in [0xD1, 0xD2, 0xD3, 0xD4, 0x72, 0xFE] {
        let mut smb = header_bytes(&SmbHeader::request(cmd));
        smb.extend([0, 0, 0]);
        let request = Request::decode(&smb).unwrap();
        assert!(matches!(&request, Request::Unsupported(u) if u.header.command == cmd));
        assert_eq!(request.to_bytes().unwrap(), smb);
    }
    assert!(Request::decode(b"\xFESMB").is_err());
    assert!(Request::decode(b"\xFFSMB\xD0").is_err());
}

#[test]
fn error_responses_in_both_forms() {
    let req = SmbHeader::request(command::SEND_MESSAGE);
    let dos = Response::error(&req, SmbStatus::errsrv(dos::ERR_MSGOFF));
    let bytes = dos.to_bytes();
    assert_eq!(bytes[5..9], [0x02, 0x00, 0x52, 0x00]);
    assert_eq!(Response::decode(&bytes).unwrap(), dos);
    let nt_resp = Response::error(&req, SmbStatus::Nt(nt::REQUEST_NOT_ACCEPTED));
    let bytes = nt_resp.to_bytes();
    assert_eq!(bytes[5..9], [0xD0, 0x00, 0x00, 0xC0]);
    assert_eq!(
        u16::from_le_bytes([bytes[10], bytes[11]]) & FLAGS2_NT_STATUS,
        FLAGS2_NT_STATUS
    );
    assert_eq!(Response::decode(&bytes).unwrap(), nt_resp);
    assert_eq!(
        SmbStatus::Nt(nt::from_errsrv(dos::ERR_NOROOM)).errsrv_code(),
        Some(dos::ERR_NOROOM)
    );
    assert_eq!(SmbStatus::Nt(nt::INVALID_SMB).errsrv_code(), Some(1));
}

use crate::smb::header::dos;

fn header_bytes(header: &SmbHeader) -> Vec<u8> {
    let mut out = Vec::new();
    header.encode(&mut out);
    out
}

fn arb_status() -> impl Strategy<Value = SmbStatus> {
    prop_oneof![
        (any::<u8>(), any::<u8>(), any::<u16>()).prop_map(|(class, reserved, code)| {
            SmbStatus::Dos {
                class,
                reserved,
                code,
            }
        }),
        any::<u32>().prop_map(SmbStatus::Nt),
    ]
}

prop_compose! {
    fn arb_header(command: u8)(
        status in arb_status(),
        flags in any::<u8>(),
        flags2 in any::<u16>(),
        pid_high in any::<u16>(),
        security_features in any::<[u8; 8]>(),
        reserved in any::<u16>(),
        ids in any::<[u16; 4]>(),
    ) -> SmbHeader {
        // The NT-status bit always matches the status form on the wire.
        let flags2 = if status.is_nt() { flags2 | FLAGS2_NT_STATUS } else { flags2 & !FLAGS2_NT_STATUS };
        SmbHeader {
            command, status, flags, flags2, pid_high, security_features, reserved,
            tid: ids[0], pid_low: ids[1], uid: ids[2], mid: ids[3],
        }
    }
}

fn arb_name() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(1u8..=255, 0..=20)
}

fn arb_data() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=300)
}

fn arb_request() -> impl Strategy<Value = Request> {
    prop_oneof![
        (
            arb_header(command::SEND_MESSAGE),
            arb_name(),
            arb_name(),
            arb_data()
        )
            .prop_map(|(header, from, to, data)| Request::Send(SendMessage {
                header,
                from,
                to,
                data
            })),
        (arb_header(command::SEND_START_MB), arb_name(), arb_name())
            .prop_map(|(header, from, to)| Request::Start(StartMessage { header, from, to })),
        (arb_header(command::SEND_TEXT_MB), any::<u16>(), arb_data()).prop_map(
            |(header, group_id, data)| Request::Text(TextBlock {
                header,
                group_id,
                data
            })
        ),
        (arb_header(command::SEND_END_MB), any::<u16>())
            .prop_map(|(header, group_id)| Request::End(EndMessage { header, group_id })),
        (
            (0u8..=0xFF).prop_filter("not a messenger command", |c| {
                ![0xD0, 0xD5, 0xD6, 0xD7].contains(c)
            }),
            arb_data()
        )
            .prop_flat_map(|(cmd, body)| (arb_header(cmd), Just(body)))
            .prop_map(|(header, body)| Request::Unsupported(Unsupported { header, body })),
    ]
}

fn arb_response() -> impl Strategy<Value = Response> {
    (
        any::<u8>().prop_flat_map(arb_header),
        proptest::collection::vec(any::<u16>(), 0..4),
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(header, words, bytes)| Response {
            header,
            words,
            bytes,
        })
}

proptest! {
    #[test]
    fn requests_round_trip(request in arb_request()) {
        let bytes = request.to_bytes().unwrap();
        prop_assert_eq!(Request::decode(&bytes).unwrap(), request);
    }

    #[test]
    fn responses_round_trip(response in arb_response()) {
        prop_assert_eq!(Response::decode(&response.to_bytes()).unwrap(), response);
    }

    #[test]
    fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Request::decode(&data);
        let _ = Response::decode(&data);
    }

    #[test]
    fn decoders_never_panic_after_a_valid_header(
        command in prop_oneof![Just(0xD0u8), Just(0xD5), Just(0xD6), Just(0xD7), any::<u8>()],
        flags2 in any::<u16>(),
        body in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let mut header = SmbHeader::request(command);
        header.flags2 = flags2;
        let mut smb = header_bytes(&header);
        smb.extend(body);
        let _ = Request::decode(&smb);
        let _ = Response::decode(&smb);
    }
}
