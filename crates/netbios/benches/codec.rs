//! Micro-benchmarks of the packets on the hot paths: name queries and their answers (the
//! name service answers one per datagram), session framing, the messenger SMBs, and a whole
//! multi-block message through the receiving state machine; and the name service's timers
//! with a crowded name table.

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use netbios::name::SUFFIX_MESSENGER;
use netbios::nbns::{AddrEntry, NameService, NameServiceConfig, NbFlags, NodeType, Packet};
use netbios::nbss::{self, Framer, FramerMode, SessionPacket, DEFAULT_MAX_FRAME_LEN};
use netbios::smb::{
    EndMessage, ReceiverConfig, ReceiverEvent, ReceiverSession, Request, Response, SendMessage,
    StartMessage, TextBlock,
};
use netbios::{NetbiosName, QualifiedName};

/// A text of the usual size: one 0xD7 block.
const TEXT: &[u8] = b"The build on server 4 is finished; results are in the usual place.";
/// A name time-to-live for the answer, as Windows sends it (300 000 s).
const TTL: u32 = 300_000;
/// Names in the crowded table: a shared host with many logged-in users, each with a `<03>`
/// name (well below `MAX_LOCAL_NAMES`).
const CROWDED_NAMES: usize = 10_000;

fn name() -> QualifiedName {
    QualifiedName::new(NetbiosName::new(b"BENCHHOST", SUFFIX_MESSENGER).expect("valid name"))
}

fn bench_name_service(c: &mut Criterion) {
    let query = Packet::name_query(0x1234, name(), false).encode();
    let answer = Packet::positive_query_response(
        0x1234,
        name(),
        TTL,
        vec![AddrEntry {
            flags: NbFlags::new(false, NodeType::B),
            address: std::net::Ipv4Addr::new(10, 0, 0, 1),
        }],
        false,
    );
    let mut g = c.benchmark_group("nbns");
    g.throughput(Throughput::Elements(1));
    g.bench_function("name query decode", |b| {
        b.iter(|| Packet::decode(black_box(&query)).expect("decodes"))
    });
    g.bench_function("name query encode", |b| {
        let packet = Packet::name_query(0x1234, name(), false);
        let mut out = Vec::with_capacity(64);
        b.iter(|| {
            out.clear();
            black_box(&packet).encode_into(&mut out);
            black_box(out.len())
        })
    });
    g.bench_function("positive answer encode", |b| {
        let mut out = Vec::with_capacity(128);
        b.iter(|| {
            out.clear();
            black_box(&answer).encode_into(&mut out);
            black_box(out.len())
        })
    });
    g.finish();
}

fn smb_frames() -> Vec<Vec<u8>> {
    let start = Request::Start(StartMessage::new(b"ALICE".to_vec(), b"BENCHHOST".to_vec()));
    let text = Request::Text(TextBlock::new(1, TEXT.to_vec()));
    let end = Request::End(EndMessage::new(1));
    [start, text, end]
        .iter()
        .map(|r| nbss::frame_message(&r.to_bytes().expect("encodes")).expect("frames"))
        .collect()
}

fn bench_session(c: &mut Criterion) {
    let send = Request::Send(SendMessage::new(
        b"ALICE".to_vec(),
        b"BENCHHOST".to_vec(),
        TEXT.to_vec(),
    ))
    .to_bytes()
    .expect("encodes");
    let text = Request::Text(TextBlock::new(1, TEXT.to_vec()))
        .to_bytes()
        .expect("encodes");
    let framed = nbss::frame_message(&send).expect("frames");
    let mut g = c.benchmark_group("smb");
    g.throughput(Throughput::Elements(1));
    g.bench_function("0xD0 decode", |b| {
        b.iter(|| Request::decode(black_box(&send)).expect("decodes"))
    });
    g.bench_function("0xD0 encode", |b| {
        let request = Request::decode(&send).expect("decodes");
        b.iter(|| black_box(&request).to_bytes().expect("encodes"))
    });
    g.bench_function("0xD7 decode", |b| {
        b.iter(|| Request::decode(black_box(&text)).expect("decodes"))
    });
    g.bench_function("0xD7 encode", |b| {
        let request = Request::decode(&text).expect("decodes");
        b.iter(|| black_box(&request).to_bytes().expect("encodes"))
    });
    g.bench_function("response encode", |b| {
        let header = *Request::decode(&send).expect("decodes").header();
        b.iter(|| Response::success(black_box(&header)).to_bytes())
    });
    g.bench_function("session message frame", |b| {
        b.iter(|| nbss::frame_message(black_box(&send)).expect("frames"))
    });
    g.bench_function("session message deframe", |b| {
        b.iter(|| {
            let mut framer = Framer::new(FramerMode::SessionService, DEFAULT_MAX_FRAME_LEN);
            framer.push(black_box(&framed));
            framer.next_frame().expect("frame")
        })
    });
    g.finish();
}

fn bench_receiver(c: &mut Criterion) {
    let request = SessionPacket::SessionRequest {
        called: name(),
        calling: QualifiedName::new(NetbiosName::new(b"ALICEPC", 0x00).expect("valid name")),
    }
    .to_bytes()
    .expect("encodes");
    let frames = smb_frames();
    let mut g = c.benchmark_group("receiver");
    g.throughput(Throughput::Elements(1));
    g.bench_function("session request + 0xD5/0xD7/0xD6", |b| {
        b.iter(|| {
            let now = Instant::now();
            let mut session = ReceiverSession::new(ReceiverConfig::session_port(), now);
            let mut delivered = 0;
            session.handle_bytes(now, &request);
            drain(&mut session, now, &mut delivered);
            for frame in &frames {
                session.handle_bytes(now, frame);
                drain(&mut session, now, &mut delivered);
            }
            assert_eq!(delivered, 1);
        })
    });
    g.finish();
}

fn drain(session: &mut ReceiverSession, now: Instant, delivered: &mut usize) {
    while let Some(event) = session.poll_event() {
        match event {
            ReceiverEvent::SessionRequested { .. } => session.accept_session(now, true),
            ReceiverEvent::Deliver(m) => {
                black_box(m);
                *delivered += 1;
                session.complete_delivery(now, Ok(()));
            }
            ReceiverEvent::Transmit(bytes) => {
                black_box(bytes);
            }
            ReceiverEvent::Close(_) => {}
        }
    }
}

/// A name service holding [`CROWDED_NAMES`] registered names, each with a refresh timer
/// running (its WINS server is silent, so every name was claimed by broadcast and waits to be
/// refreshed), and the time after the registrations.
fn crowded_name_service() -> (NameService, Instant) {
    let config = NameServiceConfig::new(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 255))
        .with_wins(Ipv4Addr::new(10, 0, 0, 2));
    let mut service = NameService::new(config);
    let mut now = Instant::now();
    for i in 0..CROWDED_NAMES {
        let name = NetbiosName::new(format!("USER{i:05}").as_bytes(), SUFFIX_MESSENGER)
            .expect("valid name");
        service
            .register(name, false, now)
            .expect("room in the table");
    }
    while let Some(deadline) = service.poll_timeout() {
        if !service
            .names()
            .iter()
            .any(|n| n.state != netbios::nbns::NameState::Registered)
        {
            break;
        }
        now = deadline;
        service.handle_timeout(now);
        while service.poll_transmit().is_some() {}
        while service.poll_event().is_some() {}
    }
    (service, now + Duration::from_secs(1))
}

fn bench_name_timers(c: &mut Criterion) {
    let (mut service, now) = crowded_name_service();
    let mut g = c.benchmark_group("nbns timers, 10000 names");
    g.throughput(Throughput::Elements(1));
    g.bench_function("poll_timeout", |b| {
        b.iter(|| black_box(&service).poll_timeout())
    });
    g.bench_function("handle_timeout, nothing due", |b| {
        b.iter(|| service.handle_timeout(black_box(now)))
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_name_service,
    bench_session,
    bench_receiver,
    bench_name_timers
);
criterion_main!(benches);
