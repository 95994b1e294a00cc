//! How long a receiving connection may hold its slot, on a virtual clock: only progress on a
//! message moves the idle deadline on, every connection ends at its lifetime cap, and a peer
//! that draws too many SMB errors is closed; legitimate senders (multi-block messages,
//! several messages on one connection) are served as before.

use std::time::{Duration, Instant};

use netbios::nbss::{frame_message, SessionPacket};
use netbios::smb::header::{command, dos, SmbHeader, SmbStatus};
use netbios::smb::receiver::{CONNECTION_LIFETIME, ERROR_BUDGET, IDLE_TIMEOUT};
use netbios::smb::{
    CloseReason, DeliveryError, EndMessage, ReceiverConfig, ReceiverEvent, ReceiverSession,
    Request, Response, SendMessage, StartMessage, TextBlock,
};
use netbios::{NetbiosName, QualifiedName};
use proptest::prelude::*;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
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

fn d7(text: &[u8]) -> Vec<u8> {
    frame(Request::Text(TextBlock::new(1, text.to_vec())))
}

fn d6() -> Vec<u8> {
    frame(Request::End(EndMessage::new(1)))
}

/// A valid SMB header with a command we do not serve (NEGOTIATE).
fn unsupported() -> Vec<u8> {
    let mut smb = Vec::new();
    SmbHeader::request(0x72).encode(&mut smb);
    smb.extend([0, 0, 0]);
    frame_message(&smb).unwrap()
}

/// A valid header with a body that does not decode (0xD7 with WordCount 0).
fn malformed_body() -> Vec<u8> {
    let mut smb = Vec::new();
    SmbHeader::request(command::SEND_TEXT_MB).encode(&mut smb);
    smb.extend([0, 4, 0, 1, 1, 0, b'x']);
    frame_message(&smb).unwrap()
}

const KEEP_ALIVE: [u8; 4] = [0x85, 0, 0, 0];

/// One connection on port 139 and the virtual clock it runs on.
struct Conn {
    rs: ReceiverSession,
    t0: Instant,
    now: Instant,
    delivered: Vec<Vec<u8>>,
    responses: Vec<Response>,
    closed: Option<CloseReason>,
    closed_at: Option<Instant>,
}

impl Conn {
    /// A connection accepted at `t0` whose session request was accepted at once.
    fn established(config: ReceiverConfig) -> Self {
        let t0 = Instant::now();
        let mut rs = ReceiverSession::new(config, t0);
        let request = SessionPacket::SessionRequest {
            called: QualifiedName::new(NetbiosName::new(b"BOB", 3).unwrap()),
            calling: QualifiedName::new(NetbiosName::new(b"ALICE", 0).unwrap()),
        };
        rs.handle_bytes(t0, &request.to_bytes().unwrap());
        assert!(matches!(
            rs.poll_event(),
            Some(ReceiverEvent::SessionRequested { .. })
        ));
        rs.accept_session(t0, true);
        assert_eq!(
            rs.poll_event(),
            Some(ReceiverEvent::Transmit(vec![0x82, 0, 0, 0]))
        );
        Self {
            rs,
            t0,
            now: t0,
            delivered: Vec::new(),
            responses: Vec::new(),
            closed: None,
            closed_at: None,
        }
    }

    /// Lets the clock run to `t0 + at`, firing the session's timer on the way as a caller
    /// would.
    fn advance_to(&mut self, at: Duration) {
        let target = self.t0 + at;
        while let Some(deadline) = self.rs.poll_timeout() {
            if deadline > target {
                break;
            }
            self.now = deadline;
            self.rs.handle_timeout(deadline);
            self.drain(|| Ok(()));
        }
        self.now = target;
    }

    /// Bytes from the peer at `t0 + at`; deliveries get `verdict`.
    fn send_with(
        &mut self,
        at: Duration,
        bytes: &[u8],
        verdict: impl Fn() -> Result<(), DeliveryError>,
    ) {
        self.advance_to(at);
        self.rs.handle_bytes(self.now, bytes);
        self.drain(verdict);
    }

    fn send(&mut self, at: Duration, bytes: &[u8]) {
        self.send_with(at, bytes, || Ok(()));
    }

    fn drain(&mut self, verdict: impl Fn() -> Result<(), DeliveryError>) {
        while let Some(event) = self.rs.poll_event() {
            match event {
                ReceiverEvent::Transmit(bytes) => {
                    if let Ok(SessionPacket::SessionMessage(smb)) = SessionPacket::decode(&bytes) {
                        self.responses.push(Response::decode(&smb).unwrap());
                    }
                }
                ReceiverEvent::Deliver(m) => {
                    let result = verdict();
                    if result.is_ok() {
                        self.delivered.push(m.text);
                    }
                    self.rs.complete_delivery(self.now, result);
                }
                ReceiverEvent::SessionRequested { .. } => panic!("a second session request"),
                ReceiverEvent::Close(reason) => {
                    assert!(self.closed.is_none(), "closed twice");
                    self.closed = Some(reason);
                    self.closed_at = Some(self.now);
                }
            }
        }
    }

    fn last_status(&self) -> SmbStatus {
        self.responses.last().expect("a response").header.status
    }
}

/// Config with an error budget too large to matter, to look at deadlines alone.
fn no_error_budget() -> ReceiverConfig {
    let mut config = ReceiverConfig::session_port();
    config.error_budget = u32::MAX;
    config
}

#[test]
fn smbs_that_make_no_progress_do_not_hold_the_connection() {
    // Each of these came every 29 s, for ever, and used to reset the 30 s idle deadline.
    let junk: [(&str, Vec<u8>); 5] = [
        ("unsupported command", unsupported()),
        ("malformed body", malformed_body()),
        ("block out of sequence", d7(b"orphan")),
        ("end out of sequence", d6()),
        ("keep-alive", KEEP_ALIVE.to_vec()),
    ];
    for (what, bytes) in junk {
        let mut c = Conn::established(no_error_budget());
        c.send(secs(29), &bytes);
        assert_eq!(c.closed, None, "{what}");
        assert_eq!(c.rs.poll_timeout(), Some(c.t0 + IDLE_TIMEOUT), "{what}");
        c.send(secs(29) + Duration::from_millis(900), &bytes);
        c.advance_to(IDLE_TIMEOUT);
        assert_eq!(c.closed, Some(CloseReason::Timeout), "{what}");
        assert!(c.rs.is_closed());
        // Whatever comes later is not served.
        c.send(IDLE_TIMEOUT + secs(1), &d0(b"late"));
        assert!(c.delivered.is_empty(), "{what}");
    }
}

#[test]
fn bytes_read_after_the_deadline_are_not_served() {
    // The caller's read may win the race against its timer: the session still refuses.
    let mut c = Conn::established(ReceiverConfig::session_port());
    c.now = c.t0 + IDLE_TIMEOUT + secs(5);
    c.rs.handle_bytes(c.now, &d0(b"late"));
    c.drain(|| Ok(()));
    assert_eq!(c.closed, Some(CloseReason::Timeout));
    assert!(c.delivered.is_empty());
}

#[test]
fn refused_deliveries_do_not_extend_the_deadline_but_storing_time_is_not_the_peers() {
    let mut c = Conn::established(ReceiverConfig::session_port());
    c.advance_to(secs(10));
    c.rs.handle_bytes(c.now, &d0(b"refused"));
    let Some(ReceiverEvent::Deliver(_)) = c.rs.poll_event() else {
        panic!("expected a delivery");
    };
    assert_eq!(c.rs.poll_timeout(), None, "the caller's time is not timed");
    // The caller took 15 s to refuse it: the peer gets that time back, no more.
    c.now = c.t0 + secs(25);
    c.rs.complete_delivery(c.now, Err(DeliveryError::NotOurName));
    c.drain(|| Ok(()));
    assert_eq!(c.last_status(), SmbStatus::errsrv(dos::ERR_ERROR));
    assert_eq!(c.rs.poll_timeout(), Some(c.t0 + IDLE_TIMEOUT + secs(15)));

    // A stored message is progress.
    c.send(secs(40), &d0(b"stored"));
    assert_eq!(c.delivered, vec![b"stored".to_vec()]);
    assert_eq!(c.rs.poll_timeout(), Some(c.t0 + secs(40) + IDLE_TIMEOUT));
}

#[test]
fn a_connection_is_closed_when_its_error_budget_is_spent() {
    let mut c = Conn::established(ReceiverConfig::session_port());
    for i in 1..ERROR_BUDGET {
        c.send(secs(1), &unsupported());
        assert_eq!(c.closed, None, "error {i}");
    }
    c.send(secs(1), &malformed_body());
    // The last error is still answered, then the connection goes.
    assert_eq!(c.responses.len(), ERROR_BUDGET as usize);
    assert_eq!(c.last_status(), SmbStatus::errsrv(dos::ERR_ERROR));
    assert_eq!(c.closed, Some(CloseReason::TooManyErrors));

    // Refused deliveries are not the sender's errors and do not count.
    let mut config = ReceiverConfig::session_port();
    config.error_budget = 2;
    let mut c = Conn::established(config);
    for _ in 0..10 {
        c.send_with(secs(1), &d0(b"x"), || Err(DeliveryError::MessagingOff));
    }
    assert_eq!(c.closed, None);
    c.send(secs(1), &unsupported());
    assert_eq!(c.closed, None);
    c.send(secs(1), &d7(b"orphan"));
    assert_eq!(c.closed, Some(CloseReason::TooManyErrors));
}

#[test]
fn progress_cannot_keep_a_connection_beyond_its_lifetime() {
    let mut config = ReceiverConfig::session_port();
    config.limits.max_blocks = usize::MAX;
    config.limits.max_message_len = usize::MAX;
    let mut c = Conn::established(config);
    c.send(secs(1), &d5());
    let mut at = secs(1);
    while c.closed.is_none() {
        at += secs(20);
        c.send(at, &d7(b"x"));
        if let Some(deadline) = c.rs.poll_timeout() {
            assert!(deadline <= c.t0 + CONNECTION_LIFETIME);
        }
    }
    assert_eq!(c.closed, Some(CloseReason::LifetimeOver));
    assert_eq!(c.closed_at, Some(c.t0 + CONNECTION_LIFETIME));
    assert!(c.delivered.is_empty());

    // Restarting a message in progress is no progress either.
    let mut c = Conn::established(ReceiverConfig::session_port());
    c.send(secs(1), &d5());
    c.send(secs(25), &d5());
    assert_eq!(c.rs.poll_timeout(), Some(c.t0 + secs(1) + IDLE_TIMEOUT));
}

#[test]
fn the_lifetime_is_configurable() {
    let mut config = ReceiverConfig::session_port();
    config.lifetime = secs(3);
    let mut c = Conn::established(config);
    assert_eq!(c.rs.poll_timeout(), Some(c.t0 + secs(3)));
    c.send(secs(2), &d0(b"in time"));
    c.advance_to(secs(3));
    assert_eq!(c.closed, Some(CloseReason::LifetimeOver));
    assert_eq!(c.delivered, vec![b"in time".to_vec()]);
}

#[test]
fn several_messages_and_long_multi_block_messages_on_one_connection() {
    let config = ReceiverConfig::session_port();
    let blocks = config.limits.max_blocks;
    let block_len = config.limits.max_message_len / blocks;
    let mut c = Conn::established(config);
    let mut at = Duration::ZERO;
    let mut expected = Vec::new();
    for round in 0..3u8 {
        at += secs(1);
        c.send(at, &d0(&[b'a' + round]));
        expected.push(vec![b'a' + round]);
        // A largest multi-block message, one block a second: slower than any real sender.
        at += secs(1);
        c.send(at, &d5());
        for _ in 0..blocks {
            at += Duration::from_millis(500);
            c.send(at, &d7(&vec![b'0' + round; block_len]));
            assert!(c.last_status().is_success());
        }
        at += secs(1);
        c.send(at, &d6());
        expected.push(vec![b'0' + round; block_len * blocks]);
        // One refused on the way: the sender may go on with the next.
        at += secs(1);
        c.send_with(at, &d0(b"refused"), || Err(DeliveryError::NotOurName));
    }
    assert_eq!(c.closed, None);
    assert_eq!(c.delivered, expected);
    assert!(at < CONNECTION_LIFETIME);
}

/// What a peer does next in the property test.
#[derive(Debug, Clone)]
enum Move {
    Single,
    Start,
    Block,
    End,
    Unsupported,
    Malformed,
    KeepAlive,
}

fn any_move() -> impl Strategy<Value = Move> {
    prop_oneof![
        Just(Move::Single),
        Just(Move::Start),
        Just(Move::Block),
        Just(Move::End),
        Just(Move::Unsupported),
        Just(Move::Malformed),
        Just(Move::KeepAlive),
    ]
}

proptest! {
    /// However a peer keeps itself busy, and whatever the caller answers, the connection is
    /// closed by its lifetime cap, and never asks to be woken after it.
    #[test]
    fn every_connection_ends_by_its_lifetime(
        moves in proptest::collection::vec(
            (any_move(), 0u64..IDLE_TIMEOUT.as_millis() as u64, any::<bool>()),
            0..200,
        ),
    ) {
        let mut c = Conn::established(ReceiverConfig::session_port());
        let mut at = Duration::ZERO;
        for (mv, gap_ms, accept) in moves {
            at += Duration::from_millis(gap_ms);
            let bytes = match mv {
                Move::Single => d0(b"m"),
                Move::Start => d5(),
                Move::Block => d7(b"b"),
                Move::End => d6(),
                Move::Unsupported => unsupported(),
                Move::Malformed => malformed_body(),
                Move::KeepAlive => KEEP_ALIVE.to_vec(),
            };
            c.send_with(at, &bytes, || if accept { Ok(()) } else { Err(DeliveryError::NoRoom) });
            if let Some(deadline) = c.rs.poll_timeout() {
                prop_assert!(deadline <= c.t0 + CONNECTION_LIFETIME);
            }
            if c.closed.is_some() {
                prop_assert!(c.closed_at.is_some_and(|t| t <= c.t0 + CONNECTION_LIFETIME));
                break;
            }
        }
        c.advance_to(CONNECTION_LIFETIME);
        prop_assert!(c.closed.is_some());
        prop_assert!(c.rs.poll_timeout().is_none());
    }
}
