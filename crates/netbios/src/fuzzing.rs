//! The checks behind the fuzz targets, callable from ordinary tests too.
//!
//! Each function takes raw bytes and panics if an invariant breaks: a decoder must never
//! panic, whatever it is given; what it decodes must re-encode to something that decodes to
//! the same value (hickory-dns's round-trip fuzzing); the state machines must keep their
//! promises (limits, framing of what they send, no events after closing). The fuzz targets in
//! `fuzz/` are one-line calls of these, and `tests/fuzz_corpus.rs` replays the committed
//! corpus and every regression input through the same functions under `cargo test`, so a
//! crash found once stays fixed without anyone running the fuzzer.
//!
//! Structured inputs (assembler operations, session events) are read from the bytes by
//! [`Input`] rather than through the `arbitrary` crate, so that the corpus files replay here
//! without this crate depending on a fuzzing library.
//!
//! Built only with the `fuzzing` feature, which the fuzz crate and this crate's own tests
//! enable; not part of the stable API.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use crate::codec::Reader;
use crate::mailslot::{
    self, MailslotWrite, MessengerDatagram, MessengerMessage, SendParams, TransactionStyle,
};
use crate::name::{NetbiosName, QualifiedName, Scope, ENCODED_NAME_LEN, SUFFIX_MESSENGER};
use crate::nbdgm::Datagram;
use crate::nbns::packet::{AddrEntry, NbFlags, NodeType, Packet};
use crate::nbns::service::{NameService, NameServiceConfig};
use crate::nbns::NAME_SERVICE_PORT;
use crate::nbss::{self, Framer, FramerMode, SessionPacket};
use crate::smb::assembler::{AssemblerLimits, AssemblyError, MessageAssembler};
use crate::smb::messenger::{EndMessage, Request, Response, SendMessage, StartMessage, TextBlock};
use crate::smb::receiver::{DeliveryError, ReceiverConfig, ReceiverEvent, ReceiverSession};
use crate::smb::sender::{OutgoingMessage, SendOutcome, SenderOptions, SenderSession};

/// A fuzz target's check.
pub type Check = fn(&[u8]);

/// Every fuzz target, by the name of its directory under `fuzz/corpus/`, with its check.
pub const TARGETS: &[(&str, Check)] = &[
    ("nbns_packet", nbns_packet),
    ("nbns_service", nbns_service),
    ("nbss_packet", nbss_packet),
    ("nbss_framer", nbss_framer),
    ("smb_request", smb_request),
    ("smb_response", smb_response),
    ("nbdgm_datagram", nbdgm_datagram),
    ("mailslot", mailslot),
    ("name", name),
    ("assembler", assembler),
    ("receiver_session", receiver_session),
    ("sender_session", sender_session),
];

/// Upper bound on operations one input drives, so a long input cannot make one execution
/// slow enough for libFuzzer to call it a hang.
const MAX_OPS: usize = 512;

/// Structured values read from fuzz bytes; reads past the end give zeros, so every input is
/// a valid program.
#[derive(Debug)]
pub struct Input<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Input<'a> {
    /// Reads from `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, pos: 0 }
    }

    /// Whether everything has been read.
    pub fn is_empty(&self) -> bool {
        self.pos >= self.data.len()
    }

    /// The next byte, or 0.
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.pos).copied().unwrap_or(0);
        self.pos += 1;
        b
    }

    /// The next `n` bytes (fewer at the end).
    pub fn bytes(&mut self, n: usize) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.pos = start + n;
        &self.data[start..end]
    }

    /// A length byte, then that many bytes.
    pub fn chunk(&mut self) -> &'a [u8] {
        let n = usize::from(self.u8());
        self.bytes(n)
    }

    /// Everything not yet read.
    pub fn rest(&mut self) -> &'a [u8] {
        let start = self.pos.min(self.data.len());
        self.pos = self.data.len();
        &self.data[start..]
    }
}

/// Name service packets: decode, and for what decodes, encode and decode again.
pub fn nbns_packet(data: &[u8]) {
    let Ok(packet) = Packet::decode(data) else {
        return;
    };
    let _ = packet.kind();
    let encoded = packet.encode();
    let again = Packet::decode(&encoded).expect("a re-encoded packet decodes");
    assert_eq!(again, packet, "round trip changed the packet");
    assert_eq!(again.encode(), encoded, "encoding is not stable");
}

/// The name service state machine holding a few names, fed datagrams from peers.
pub fn nbns_service(data: &[u8]) {
    let mut input = Input::new(data);
    let local = Ipv4Addr::new(192, 0, 2, 1);
    let mut ns = NameService::new(NameServiceConfig::new(local, Ipv4Addr::new(192, 0, 2, 255)));
    let mut now = Instant::now();
    for (name, group) in [("HOST", false), ("ALICE", false), ("WORKGROUP", true)] {
        let n = NetbiosName::new(name.as_bytes(), SUFFIX_MESSENGER).expect("valid name");
        ns.register(n, group, now).expect("register");
    }
    let mut ops = 0;
    while !input.is_empty() && ops < MAX_OPS {
        ops += 1;
        match input.u8() % 4 {
            0 | 1 => {
                let last = input.u8();
                let port = u16::from(input.u8());
                let from =
                    SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, last), NAME_SERVICE_PORT + port);
                let datagram = input.chunk();
                let _ = ns.handle(now, from, datagram);
            }
            2 => {
                now += Duration::from_millis(u64::from(input.u8()) * 10);
                ns.handle_timeout(now);
            }
            _ => {
                let _ = ns.query(
                    NetbiosName::new(b"BOB", SUFFIX_MESSENGER).expect("name"),
                    now,
                );
            }
        }
        while let Some(t) = ns.poll_transmit() {
            // Everything we send must be a packet we can read back.
            Packet::decode(&t.payload).expect("the name service sends valid packets");
        }
        while ns.poll_event().is_some() {}
    }
}

/// Session service packets: decode, re-encode, decode again.
pub fn nbss_packet(data: &[u8]) {
    let Ok(packet) = SessionPacket::decode(data) else {
        return;
    };
    let encoded = packet
        .to_bytes()
        .expect("a decoded packet fits its length field");
    let again = SessionPacket::decode(&encoded).expect("a re-encoded packet decodes");
    assert_eq!(again, packet);
}

/// The framer gives the same frames, and fails at the same place, however the stream is cut
/// into reads.
pub fn nbss_framer(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = if input.u8() & 1 == 0 {
        FramerMode::SessionService
    } else {
        FramerMode::DirectSmb
    };
    let max = usize::from(input.u8()) * 64 + nbss::HEADER_LEN;
    let seed = input.u8();
    let stream = input.rest();

    let mut whole = Framer::new(mode, max);
    whole.push(stream);
    let expected = drain(&mut whole);

    let mut chunked = Framer::new(mode, max);
    let mut frames = Vec::new();
    let mut failed = false;
    let mut rest = stream;
    let mut step = seed;
    while !rest.is_empty() && !failed {
        // Chunk sizes from a small LCG on the seed: 1 to 32 bytes.
        step = step.wrapping_mul(37).wrapping_add(11);
        let n = usize::from(step % 32 + 1).min(rest.len());
        chunked.push(&rest[..n]);
        rest = &rest[n..];
        let (mut got, err) = drain(&mut chunked);
        frames.append(&mut got);
        failed = err;
    }
    if !failed {
        let (mut got, err) = drain(&mut chunked);
        frames.append(&mut got);
        failed = err;
    }
    assert_eq!((frames, failed), expected, "chunking changed the frames");
    for frame in &expected.0 {
        if let SessionPacket::SessionMessage(payload) = frame {
            assert!(payload.len() <= max, "a frame over the cap got through");
        }
    }
}

fn drain(framer: &mut Framer) -> (Vec<SessionPacket>, bool) {
    let mut frames = Vec::new();
    loop {
        match framer.next_frame() {
            Ok(Some(f)) => frames.push(f),
            Ok(None) => return (frames, false),
            Err(_) => return (frames, true),
        }
    }
}

/// Messenger SMB requests: decode, re-encode, decode again.
pub fn smb_request(data: &[u8]) {
    let Ok(request) = Request::decode(data) else {
        return;
    };
    let _ = request.header();
    let Ok(encoded) = request.to_bytes() else {
        return;
    };
    let again = Request::decode(&encoded).expect("a re-encoded request decodes");
    assert_eq!(again, request);
}

/// Messenger SMB responses: decode, re-encode, decode again.
pub fn smb_response(data: &[u8]) {
    let Ok(response) = Response::decode(data) else {
        return;
    };
    let _ = response.group_id();
    let encoded = response.to_bytes();
    let again = Response::decode(&encoded).expect("a re-encoded response decodes");
    assert_eq!(again, response);
}

/// Datagram service packets: decode, re-encode, decode again.
pub fn nbdgm_datagram(data: &[u8]) {
    let _ = Datagram::decode_prefix(data);
    let Ok(datagram) = Datagram::decode(data) else {
        return;
    };
    let _ = datagram.data_message();
    let Ok(encoded) = datagram.encode() else {
        return;
    };
    let again = Datagram::decode(&encoded).expect("a re-encoded datagram decodes");
    assert_eq!(again, datagram);
}

/// Mailslot writes, the MESSNGR payload, and whole Messenger datagrams.
pub fn mailslot(data: &[u8]) {
    let mut input = Input::new(data);
    let which = input.u8() % 3;
    let body = input.rest();
    match which {
        0 => {
            let Ok(write) = MailslotWrite::decode(body) else {
                return;
            };
            assert!(write.data_offset() <= body.len().max(write.encoded_len()));
            let Ok(encoded) = write.encode() else {
                return;
            };
            let again = MailslotWrite::decode(&encoded).expect("a re-encoded write decodes");
            assert_eq!(again.name, write.name);
            assert_eq!(again.data, write.data);
        }
        1 => {
            let Ok(message) = MessengerMessage::decode(body) else {
                return;
            };
            if message.from.contains(&0) || message.to.contains(&0) || message.text.contains(&0) {
                panic!("a decoded field holds a NUL: {message:?}");
            }
            let again = MessengerMessage::decode(&message.encode()).expect("re-encoded decodes");
            assert_eq!(again, message);
        }
        _ => {
            let Ok(Some(d)) = MessengerDatagram::decode(body) else {
                return;
            };
            assert!(d.write.is_messenger());
            let again = MessengerMessage::decode(&d.message.encode()).expect("payload decodes");
            assert_eq!(again, d.message);
        }
    }
}

/// Names: compressed decoding anywhere in a message, uncompressed and first-level decoding.
pub fn name(data: &[u8]) {
    let mut input = Input::new(data);
    let start = usize::from(input.u8());
    let msg = input.rest();
    if let Ok((name, end)) = QualifiedName::decode_compressed(msg, start) {
        assert!(end <= msg.len(), "end {end} past the message");
        check_name_round_trip(&name);
    }
    if let Ok(name) = QualifiedName::decode(&mut Reader::new(msg)) {
        check_name_round_trip(&name);
    }
    if let Some(encoded) = msg.get(..ENCODED_NAME_LEN) {
        if let Ok(n) = NetbiosName::from_first_level(encoded, 0) {
            let again = NetbiosName::from_first_level(&n.first_level(), 0).expect("re-encoded");
            assert_eq!(again, n);
        }
    }
}

fn check_name_round_trip(name: &QualifiedName) {
    let mut out = Vec::new();
    name.encode(&mut out);
    assert_eq!(out.len(), name.encoded_len());
    let again = QualifiedName::decode(&mut Reader::new(&out)).expect("a re-encoded name decodes");
    assert_eq!(&again, name);
    let (compressed, end) =
        QualifiedName::decode_compressed(&out, 0).expect("an uncompressed name decodes");
    assert_eq!(&compressed, name);
    assert_eq!(end, out.len());
}

/// The multi-block assembler against a model of what it must do: limits hold, blocks are
/// joined in order, nothing is delivered that was not started.
pub fn assembler(data: &[u8]) {
    let mut input = Input::new(data);
    let limits = AssemblerLimits {
        max_block_len: usize::from(input.u8()) + 1,
        max_message_len: usize::from(input.u8()) * 4,
        max_blocks: usize::from(input.u8() % 16),
    };
    let mut asm = MessageAssembler::new(limits);
    // The model: (from, to, text so far, blocks) of the message in progress.
    let mut model: Option<ModelMessage> = None;
    let mut ops = 0;
    while !input.is_empty() && ops < MAX_OPS {
        ops += 1;
        match input.u8() % 5 {
            0 => {
                let (from, to, text) = (input.chunk(), input.chunk(), input.chunk());
                let result = asm.single(from, to, text);
                let stripped = strip_nuls(text);
                if text.len() > limits.max_block_len || stripped.len() > limits.max_message_len {
                    assert!(result.is_err());
                } else {
                    let m = result.expect("a message within the limits is taken");
                    assert_eq!((m.from.as_slice(), m.to.as_slice()), (from, to));
                    assert_eq!(m.text, stripped);
                }
            }
            1 => {
                let (from, to) = (input.chunk(), input.chunk());
                asm.start(from, to);
                model = Some((from.to_vec(), to.to_vec(), Vec::new(), 0));
            }
            2 => {
                let block = input.chunk();
                let result = asm.text(block);
                let chunk = strip_nuls(block);
                let expect_ok = match &mut model {
                    None => false,
                    Some(_) if block.len() > limits.max_block_len => false,
                    Some((_, _, _, blocks)) if *blocks >= limits.max_blocks => false,
                    Some((_, _, text, _)) if text.len() + chunk.len() > limits.max_message_len => {
                        false
                    }
                    Some((_, _, text, blocks)) => {
                        text.extend_from_slice(&chunk);
                        *blocks += 1;
                        true
                    }
                };
                assert_eq!(result.is_ok(), expect_ok, "text block verdict: {result:?}");
                if !expect_ok {
                    model = None;
                }
            }
            3 => match (asm.end(), model.take()) {
                (Ok(m), Some((from, to, text, _))) => {
                    assert_eq!((m.from, m.to, m.text), (from, to, text));
                }
                (Err(AssemblyError::OutOfSequence), None) => {}
                (got, want) => panic!("end gave {got:?}, model {want:?}"),
            },
            _ => {
                asm.reset();
                model = None;
            }
        }
        assert_eq!(asm.in_progress(), model.is_some());
    }
}

/// The assembler model's message in progress: from, to, text so far, blocks.
type ModelMessage = (Vec<u8>, Vec<u8>, Vec<u8>, usize);

fn strip_nuls(data: &[u8]) -> Vec<u8> {
    let end = data.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    data[..end].to_vec()
}

/// One receiving connection driven by arbitrary reads, end of stream, time and the caller's
/// verdicts: it never panics, every frame it sends is valid framing, a delivered message
/// keeps to the limits, and nothing happens after it closed.
pub fn receiver_session(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let mut config = if flags & 1 == 0 {
        ReceiverConfig::session_port()
    } else {
        ReceiverConfig::direct_port()
    };
    config.limits.max_message_len = usize::from(input.u8()) * 8;
    config.limits.max_blocks = usize::from(input.u8() % 8) + 1;
    let mut now = Instant::now();
    let mut session = ReceiverSession::new(config, now);
    let mut closed = false;
    let mut ops = 0;
    while !input.is_empty() && ops < MAX_OPS {
        ops += 1;
        match input.u8() % 8 {
            0 => session.handle_eof(),
            1 => {
                now += Duration::from_secs(u64::from(input.u8()));
                session.handle_timeout(now);
            }
            _ => {
                let bytes = input.chunk();
                session.handle_bytes(now, bytes);
            }
        }
        while let Some(event) = session.poll_event() {
            assert!(!closed, "event after close: {event:?}");
            match event {
                ReceiverEvent::Transmit(bytes) => {
                    let packet = SessionPacket::decode(&bytes).expect("valid framing");
                    if let SessionPacket::SessionMessage(smb) = packet {
                        Response::decode(&smb).expect("a valid SMB response");
                    }
                }
                ReceiverEvent::SessionRequested { .. } => {
                    session.accept_session(now, input.u8() & 1 == 0);
                }
                ReceiverEvent::Deliver(message) => {
                    assert!(message.text.len() <= config.limits.max_message_len);
                    let result = match input.u8() % 5 {
                        0 => Err(DeliveryError::NoRoom),
                        1 => Err(DeliveryError::MessagingOff),
                        2 => Err(DeliveryError::NotOurName),
                        _ => Ok(()),
                    };
                    session.complete_delivery(now, result);
                }
                ReceiverEvent::Close(_) => closed = true,
            }
        }
        if closed {
            assert!(session.is_closed());
            assert!(session.poll_timeout().is_none());
        }
    }
}

/// A sending connection fed arbitrary responses: it never panics, everything it sends is a
/// valid frame, and once it has an outcome the outcome does not change.
pub fn sender_session(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let mut options = SenderOptions {
        session_request: flags & 1 == 0,
        prefer_single_block: flags & 2 == 0,
        retry_multi_block: flags & 4 == 0,
        block_len: usize::from(input.u8()) + 1,
        ..SenderOptions::default()
    };
    if flags & 8 != 0 {
        options.max_frame_len = 64;
    }
    let text = input.chunk().to_vec();
    let called = QualifiedName::new(NetbiosName::new(b"BOB", SUFFIX_MESSENGER).expect("name"));
    let calling = QualifiedName::new(NetbiosName::new(b"HOST", 0).expect("name"));
    let message = OutgoingMessage {
        calling,
        called,
        from: b"ALICE".to_vec(),
        to: b"BOB".to_vec(),
        text,
    };
    let mut now = Instant::now();
    let Ok(mut session) = SenderSession::new(message, options, now) else {
        return;
    };
    let mut outcome: Option<SendOutcome> = None;
    let mut ops = 0;
    loop {
        while let Some(bytes) = session.poll_transmit() {
            let packet = SessionPacket::decode(&bytes).expect("the sender sends valid frames");
            if let SessionPacket::SessionMessage(smb) = packet {
                Request::decode(&smb).expect("the sender sends valid requests");
            }
        }
        if let Some(o) = &outcome {
            assert_eq!(session.outcome(), Some(o), "the outcome changed");
        } else if let Some(o) = session.outcome() {
            outcome = Some(o.clone());
        }
        if input.is_empty() || ops >= MAX_OPS {
            break;
        }
        ops += 1;
        match input.u8() % 8 {
            0 => session.handle_eof(),
            1 => {
                now += Duration::from_secs(u64::from(input.u8()));
                session.handle_timeout(now);
            }
            _ => session.handle_bytes(now, input.chunk()),
        }
    }
}

/// Seed inputs for every target, built with this crate's own encoders from the packets of the
/// protocol reference (a name query, a registration, a session request, 0xD0 and the
/// multi-block sequence, a `NET SEND *` broadcast). `fuzz/corpus/` holds them; the
/// `fuzz_seeds` example writes them.
pub fn seed_corpus() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    let host = NetbiosName::new(b"HOST", 0).expect("name");
    let bob = NetbiosName::new(b"BOB", SUFFIX_MESSENGER).expect("name");
    let workgroup = NetbiosName::new(b"WORKGROUP", 0).expect("name");
    let bob_q = QualifiedName::new(bob);
    let entry = AddrEntry {
        flags: NbFlags::new(false, NodeType::B),
        address: Ipv4Addr::new(192, 168, 1, 10),
    };
    let query = Packet::name_query(0x1234, bob_q.clone(), true).encode();
    let registration = Packet::registration_request(0x4321, bob_q.clone(), 0, entry, true).encode();
    let positive =
        Packet::positive_query_response(7, bob_q.clone(), 300, vec![entry], false).encode();
    let status = Packet::node_status_request(9, QualifiedName::new(NetbiosName::star())).encode();
    let scoped = QualifiedName::with_scope(bob, Scope::parse("corp.example").expect("scope"));
    let mut scoped_name = Vec::new();
    scoped.encode(&mut scoped_name);

    let session_request = SessionPacket::SessionRequest {
        called: bob_q.clone(),
        calling: QualifiedName::new(host),
    }
    .to_bytes()
    .expect("frame");
    let single = Request::Send(SendMessage::new(
        b"ALICE".to_vec(),
        b"BOB".to_vec(),
        b"Lunch at 12?\x14Alice".to_vec(),
    ))
    .to_bytes()
    .expect("encode");
    let start = Request::Start(StartMessage::new(b"ALICE".to_vec(), b"BOB".to_vec()))
        .to_bytes()
        .expect("encode");
    let text = Request::Text(TextBlock::new(1, b"first block ".to_vec()))
        .to_bytes()
        .expect("encode");
    let end = Request::End(EndMessage::new(1)).to_bytes().expect("encode");
    let single_request = *Request::decode(&single)
        .expect("our own request decodes")
        .header();
    let ok = Response::success(&single_request).to_bytes();
    let started = Response::start_accepted(&single_request, 1).to_bytes();
    let frame = |smb: &[u8]| nbss::frame_message(smb).expect("frame");

    let mut conversation = session_request.clone();
    for smb in [&single, &start, &text, &end] {
        conversation.extend_from_slice(&frame(smb));
    }
    let mut direct = Vec::new();
    for smb in [&start, &text, &text, &end] {
        direct.extend_from_slice(&frame(smb));
    }
    // Receiver programs: flags, limits, then ops of "read a chunk" (op byte 2).
    let reads = |flags: u8, stream: &[u8]| {
        let mut program = vec![flags, 200, 7];
        for piece in stream.chunks(200) {
            program.push(2);
            program.push(piece.len() as u8);
            program.extend_from_slice(piece);
            // Accept the session and take the message, if asked.
            program.push(3);
        }
        program
    };
    let positive_frame = SessionPacket::PositiveResponse.to_bytes().expect("frame");
    let mut replies = positive_frame.clone();
    replies.extend_from_slice(&frame(&ok));
    let mut multi_replies = positive_frame;
    for r in [&started, &ok, &ok] {
        multi_replies.extend_from_slice(&frame(r));
    }
    let sender = |flags: u8, replies: &[u8]| {
        let mut program = vec![flags, 127, 12];
        program.extend_from_slice(b"Hello, Bob! ");
        for piece in replies.chunks(200) {
            program.push(2);
            program.push(piece.len() as u8);
            program.extend_from_slice(piece);
        }
        program
    };

    let params = SendParams::new(
        QualifiedName::new(host),
        Ipv4Addr::new(192, 168, 1, 10),
        0x55AA,
    );
    let broadcast_message =
        MessengerMessage::new(&b"ALICE"[..], &b"WORKGROUP"[..], &b"Fire drill at 3"[..])
            .expect("message");
    let broadcast =
        mailslot::build_broadcast(&params, &QualifiedName::new(workgroup), &broadcast_message)
            .expect("broadcast")
            .encode()
            .expect("encode");
    let directed_message =
        MessengerMessage::new(&b"ALICE"[..], &b"BOB"[..], &b"psst"[..]).expect("message");
    let directed = mailslot::build_directed(&params, &bob_q, &directed_message)
        .expect("directed")
        .encode()
        .expect("encode");
    let write = MailslotWrite::new(
        mailslot::MESSENGER_MAILSLOT,
        broadcast_message.encode(),
        TransactionStyle::Windows,
    )
    .expect("write")
    .encode()
    .expect("encode");
    let prefixed = |tag: u8, body: &[u8]| {
        let mut v = vec![tag];
        v.extend_from_slice(body);
        v
    };

    vec![
        ("nbns_packet", "name_query", query.clone()),
        ("nbns_packet", "registration", registration.clone()),
        ("nbns_packet", "positive_response", positive),
        ("nbns_packet", "node_status_request", status.clone()),
        ("nbns_service", "query_then_registration", {
            let mut p = vec![0, 20, 0, query.len() as u8];
            p.extend_from_slice(&query);
            p.extend_from_slice(&[0, 21, 0, registration.len() as u8]);
            p.extend_from_slice(&registration);
            p.extend_from_slice(&[2, 100, 1, 0, 22, 0, status.len() as u8]);
            p.extend_from_slice(&status);
            p
        }),
        ("nbss_packet", "session_request", session_request.clone()),
        ("nbss_packet", "session_message", frame(&single)),
        ("nbss_packet", "keep_alive", vec![0x85, 0, 0, 0]),
        (
            "nbss_packet",
            "negative_response",
            vec![0x83, 0, 0, 1, 0x82],
        ),
        (
            "nbss_framer",
            "conversation",
            prefixed_framer(0, &conversation),
        ),
        ("nbss_framer", "direct", prefixed_framer(1, &direct)),
        ("smb_request", "send_message", single.clone()),
        ("smb_request", "start", start.clone()),
        ("smb_request", "text", text.clone()),
        ("smb_request", "end", end.clone()),
        ("smb_response", "success", ok),
        ("smb_response", "start_accepted", started),
        ("nbdgm_datagram", "broadcast", broadcast.clone()),
        ("nbdgm_datagram", "directed", directed.clone()),
        ("mailslot", "write", prefixed(0, &write)),
        (
            "mailslot",
            "payload",
            prefixed(1, &broadcast_message.encode()),
        ),
        ("mailslot", "datagram", prefixed(2, &broadcast)),
        (
            "name",
            "compressed_in_registration",
            prefixed(12, &registration),
        ),
        ("name", "plain", prefixed(0, &query[12..])),
        ("name", "scoped", prefixed(0, &scoped_name)),
        ("assembler", "multi_block", {
            let mut p = vec![127, 200, 8, 1, 5];
            p.extend_from_slice(b"ALICE");
            p.push(3);
            p.extend_from_slice(b"BOB");
            for block in [&b"first "[..], b"second\0"] {
                p.push(2);
                p.push(block.len() as u8);
                p.extend_from_slice(block);
            }
            p.push(3);
            p.extend_from_slice(&[0, 1, b'A', 1, b'B', 2, b'h', b'i']);
            p
        }),
        ("receiver_session", "port_139", reads(0, &conversation)),
        ("receiver_session", "direct_port", reads(1, &direct)),
        ("sender_session", "single_block", sender(0, &replies)),
        ("sender_session", "multi_block", sender(2, &multi_replies)),
    ]
}

fn prefixed_framer(mode: u8, stream: &[u8]) -> Vec<u8> {
    let mut v = vec![mode, 32, 5];
    v.extend_from_slice(stream);
    v
}
