//! Every packet of the recorded Samba captures must decode, and re-encode to the same bytes.
//!
//! The captures (shared/captures, described in its README) hold real traffic between Samba
//! 4.17 peers: name service registrations, queries and node status (UDP 137), browser
//! announcements as mailslot writes (UDP 138), and `smbclient -M` sessions (TCP 139 and, with
//! no session request, TCP 13139).

mod support;

use netbios::mailslot::{MailslotWrite, MessengerDatagram, MessengerMessage};
use netbios::nbdgm::{Datagram, DATAGRAM_PORT};
use netbios::nbns::{Packet, NAME_SERVICE_PORT};
use netbios::nbss::{Framer, FramerMode, SessionPacket, DEFAULT_MAX_FRAME_LEN, SESSION_PORT};
use netbios::smb::{Request, Response};
use support::{capture_files, load_capture, Capture, TcpStream};

/// The port `smbclient -M` was pointed at in the capture of SMB without a session request.
const DIRECT_SMB_PORT: u16 = 13139;

/// Counts of what the checks covered, so that a capture silently yielding nothing fails.
#[derive(Debug, Default)]
struct Seen {
    name_service: usize,
    datagrams: usize,
    mailslot_writes: usize,
    messenger_writes: usize,
    session_streams: usize,
    session_frames: usize,
    smb_requests: usize,
    smb_responses: usize,
}

/// UDP 138: each payload is one datagram; data-carrying datagrams whose user data is an SMB
/// carry a mailslot write. Both layers must re-encode to the captured bytes.
fn check_datagrams(capture: &Capture, seen: &mut Seen) {
    for packet in capture.udp_on(DATAGRAM_PORT) {
        let at = format!("{} frame {}", capture.name, packet.frame);
        let datagram = Datagram::decode(&packet.payload)
            .unwrap_or_else(|e| panic!("{at}: datagram does not decode: {e}"));
        assert_eq!(
            datagram.encode().expect("re-encodes"),
            packet.payload,
            "{at}: datagram re-encodes differently"
        );
        seen.datagrams += 1;
        let Some(message) = datagram.data_message() else {
            continue;
        };
        if !message.user_data.starts_with(b"\xFFSMB") {
            continue;
        }
        let write = MailslotWrite::decode(&message.user_data)
            .unwrap_or_else(|e| panic!("{at}: mailslot write does not decode: {e}"));
        assert_eq!(
            write.encode().expect("re-encodes"),
            message.user_data,
            "{at}: mailslot write re-encodes differently"
        );
        seen.mailslot_writes += 1;
        if write.is_messenger() {
            let payload = MessengerMessage::decode(&write.data)
                .unwrap_or_else(|e| panic!("{at}: messenger payload does not decode: {e}"));
            let via_datagram = MessengerDatagram::decode(&packet.payload)
                .unwrap_or_else(|e| panic!("{at}: {e}"))
                .expect("a messenger datagram");
            assert_eq!(via_datagram.message, payload);
            seen.messenger_writes += 1;
        } else {
            assert_eq!(MessengerDatagram::decode(&packet.payload), Ok(None), "{at}");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// UDP 137, name service.
// ---------------------------------------------------------------------------------------------

/// Every UDP 137 payload is one name service packet and re-encodes to the same bytes
/// (compression pointers included, as the sender wrote them).
fn check_name_service(capture: &Capture, seen: &mut Seen) {
    for packet in capture.udp_on(NAME_SERVICE_PORT) {
        let at = format!("{} frame {}", capture.name, packet.frame);
        let decoded = Packet::decode(&packet.payload)
            .unwrap_or_else(|e| panic!("{at}: name service packet does not decode: {e}"));
        assert_eq!(
            decoded.encode(),
            packet.payload,
            "{at}: name service packet re-encodes differently"
        );
        seen.name_service += 1;
    }
}

// ---------------------------------------------------------------------------------------------
// TCP 139 and 13139, session service + SMB.
// ---------------------------------------------------------------------------------------------

/// Feeds one direction of a connection to the session framer: every frame must decode, the
/// frames re-encoded one after the other must give back the stream, and each SMB must decode
/// (as a request towards the server, a response from it) and re-encode to the same bytes.
fn check_stream(capture: &Capture, stream: &TcpStream, server_port: u16, seen: &mut Seen) {
    let at = format!(
        "{} {}:{} -> {}:{}",
        capture.name, stream.src.0, stream.src.1, stream.dst.0, stream.dst.1
    );
    assert!(!stream.gap, "{at}: bytes missing from the capture");
    let mode = if server_port == SESSION_PORT {
        FramerMode::SessionService
    } else {
        FramerMode::DirectSmb
    };
    let to_server = stream.dst.1 == server_port;
    let mut framer = Framer::new(mode, DEFAULT_MAX_FRAME_LEN);
    framer.push(&stream.data);
    let mut re_encoded = Vec::new();
    while let Some(frame) = framer
        .next_frame()
        .unwrap_or_else(|e| panic!("{at}: session frame does not decode: {e}"))
    {
        let bytes = frame.to_bytes().expect("re-encodes");
        let frame_at = format!("{at}, frame at stream offset {}", re_encoded.len());
        re_encoded.extend_from_slice(&bytes);
        seen.session_frames += 1;
        let SessionPacket::SessionMessage(smb) = frame else {
            continue;
        };
        if to_server {
            let request = Request::decode(&smb)
                .unwrap_or_else(|e| panic!("{frame_at}: SMB request does not decode: {e}"));
            assert_eq!(
                request.to_bytes().expect("re-encodes"),
                smb,
                "{frame_at}: SMB request re-encodes differently"
            );
            seen.smb_requests += 1;
        } else {
            let response = Response::decode(&smb)
                .unwrap_or_else(|e| panic!("{frame_at}: SMB response does not decode: {e}"));
            assert_eq!(
                response.to_bytes(),
                smb,
                "{frame_at}: SMB response re-encodes differently"
            );
            seen.smb_responses += 1;
        }
    }
    assert_eq!(framer.buffered(), 0, "{at}: a partial frame is left over");
    assert_eq!(
        re_encoded, stream.data,
        "{at}: frames re-encode differently"
    );
    seen.session_streams += 1;
}

fn check_sessions(capture: &Capture, seen: &mut Seen) {
    for port in [SESSION_PORT, DIRECT_SMB_PORT] {
        for stream in capture.tcp_streams(port) {
            if !stream.data.is_empty() {
                check_stream(capture, &stream, port, seen);
            }
        }
    }
}

#[test]
fn every_packet_in_the_captures_round_trips() {
    let mut seen = Seen::default();
    for path in capture_files() {
        let capture = load_capture(&path);
        check_name_service(&capture, &mut seen);
        check_datagrams(&capture, &mut seen);
        check_sessions(&capture, &mut seen);
    }
    eprintln!("checked {seen:?}");
    assert!(
        seen.datagrams > 0,
        "no UDP 138 packets found in the captures"
    );
    assert!(seen.mailslot_writes > 0, "no mailslot writes found");
    assert!(seen.session_streams > 0, "no TCP sessions found");
    assert!(seen.smb_requests > 0, "no SMB requests found");
    assert!(seen.smb_responses > 0, "no SMB responses found");
}
