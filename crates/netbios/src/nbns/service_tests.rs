//! Name service state machine tests: several services on a simulated broadcast segment with
//! a virtual clock, and one service against a scripted WINS server.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::packet::*;
use super::service::*;
use super::NAME_SERVICE_PORT;
use crate::name::{NetbiosName, QualifiedName, SUFFIX_MESSENGER};

const BROADCAST: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 255);
const WINS: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn host(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, last)
}

fn messenger(name: &str) -> NetbiosName {
    NetbiosName::messenger(name).unwrap()
}

fn workgroup() -> NetbiosName {
    NetbiosName::new(b"WORKGROUP", 0x00).unwrap()
}

fn config(address: Ipv4Addr) -> NameServiceConfig {
    let mut config = NameServiceConfig::new(address, BROADCAST);
    config.first_transaction_id = u16::from(address.octets()[3]) << 8;
    config.unit_id = [2, 0, 0, 0, 0, address.octets()[3]];
    config
}

/// A datagram seen on the segment.
#[derive(Debug, Clone)]
struct Sent {
    at: Duration,
    from: SocketAddrV4,
    to: SocketAddrV4,
    packet: Packet,
}

struct Node {
    address: Ipv4Addr,
    service: NameService,
    events: Vec<NameEvent>,
}

/// A broadcast segment: a datagram to the broadcast address reaches every node (its sender
/// too, as on a real interface), one to a node's address reaches that node, anything else is
/// logged and lost.
struct Segment {
    base: Instant,
    now: Instant,
    nodes: Vec<Node>,
    log: Vec<Sent>,
}

impl Segment {
    fn new(configs: Vec<NameServiceConfig>) -> Self {
        let base = Instant::now();
        let nodes = configs
            .into_iter()
            .map(|config| Node {
                address: config.local_address,
                service: NameService::new(config),
                events: Vec::new(),
            })
            .collect();
        Self {
            base,
            now: base,
            nodes,
            log: Vec::new(),
        }
    }

    fn with_hosts(lasts: &[u8]) -> Self {
        Self::new(lasts.iter().map(|&l| config(host(l))).collect())
    }

    fn node(&mut self, address: Ipv4Addr) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.address == address)
            .expect("no such node")
    }

    fn service(&mut self, address: Ipv4Addr) -> &mut NameService {
        &mut self.node(address).service
    }

    fn elapsed(&self) -> Duration {
        self.now - self.base
    }

    /// Delivers datagrams until nobody has anything left to send.
    fn deliver(&mut self) {
        loop {
            let mut in_flight = Vec::new();
            for node in &mut self.nodes {
                let from = SocketAddrV4::new(node.address, node.service.config().local_port);
                while let Some(transmit) = node.service.poll_transmit() {
                    in_flight.push((from, transmit));
                }
            }
            if in_flight.is_empty() {
                break;
            }
            for (from, transmit) in in_flight {
                let packet = Packet::decode(&transmit.payload).expect("we send what we decode");
                self.log.push(Sent {
                    at: self.elapsed(),
                    from,
                    to: transmit.destination,
                    packet,
                });
                let now = self.now;
                for node in &mut self.nodes {
                    let to = *transmit.destination.ip();
                    if to == BROADCAST || to == node.address {
                        node.service.handle(now, from, &transmit.payload).unwrap();
                    }
                }
            }
        }
        self.collect_events();
    }

    fn collect_events(&mut self) {
        for node in &mut self.nodes {
            while let Some(event) = node.service.poll_event() {
                node.events.push(event);
            }
        }
    }

    /// Runs timers and traffic until `elapsed` after the start.
    fn run_until(&mut self, elapsed: Duration) {
        let end = self.base + elapsed;
        loop {
            self.deliver();
            let next = self
                .nodes
                .iter()
                .filter_map(|n| n.service.poll_timeout())
                .min();
            match next {
                Some(at) if at <= end => {
                    self.now = self.now.max(at);
                    let now = self.now;
                    for node in &mut self.nodes {
                        if node.service.poll_timeout().is_some_and(|t| t <= now) {
                            node.service.handle_timeout(now);
                        }
                    }
                }
                _ => break,
            }
        }
        self.now = self.now.max(end);
        self.deliver();
    }

    fn run_for(&mut self, duration: Duration) {
        let target = self.elapsed() + duration;
        self.run_until(target);
    }

    fn take_events(&mut self, address: Ipv4Addr) -> Vec<NameEvent> {
        std::mem::take(&mut self.node(address).events)
    }

    fn sent_by(&self, address: Ipv4Addr) -> Vec<&Sent> {
        self.log
            .iter()
            .filter(|s| *s.from.ip() == address)
            .collect()
    }
}

fn register(segment: &mut Segment, address: Ipv4Addr, name: NetbiosName, group: bool) {
    let now = segment.now;
    segment.service(address).register(name, group, now).unwrap();
}

fn query(segment: &mut Segment, address: Ipv4Addr, name: NetbiosName) -> QueryId {
    let now = segment.now;
    segment.service(address).query(name, now)
}

fn query_result(
    events: &[NameEvent],
    wanted: QueryId,
) -> Option<Result<Vec<Ipv4Addr>, QueryError>> {
    events.iter().find_map(|event| match event {
        NameEvent::QueryResult { id, result, .. } if *id == wanted => Some(result.clone()),
        _ => None,
    })
}

#[test]
fn registration_succeeds_when_nobody_objects() {
    let a = host(1);
    let mut segment = Segment::with_hosts(&[1, 2]);
    register(&mut segment, a, messenger("ALICE"), false);
    assert_eq!(
        segment.service(a).name_state(&messenger("ALICE")),
        Some(NameState::Registering)
    );
    segment.run_until(ms(749));
    assert!(segment.take_events(a).is_empty());
    segment.run_until(ms(750));
    assert_eq!(
        segment.take_events(a),
        [NameEvent::Registered(messenger("ALICE"))]
    );
    assert_eq!(
        segment.service(a).name_state(&messenger("ALICE")),
        Some(NameState::Registered)
    );

    let sent = segment.sent_by(a);
    let summary: Vec<(Duration, u16, u16, SocketAddrV4)> = sent
        .iter()
        .map(|s| {
            (
                s.at,
                s.packet.header.transaction_id,
                s.packet.header.flags_word(),
                s.to,
            )
        })
        .collect();
    let to_all = SocketAddrV4::new(BROADCAST, NAME_SERVICE_PORT);
    assert_eq!(
        summary,
        [
            (ms(0), 0x0100, 0x2910, to_all),
            (ms(250), 0x0100, 0x2910, to_all),
            (ms(500), 0x0100, 0x2910, to_all),
            // RFC 1002 5.1.1.1: nobody objected, so demand the name.
            (ms(750), 0x0100, 0x2810, to_all),
        ]
    );
    let request = &sent[0].packet;
    assert_eq!(request.addr_entries()[0].address, a);
    assert!(!request.addr_entries()[0].flags.is_group());
    assert_eq!(
        request.record().unwrap().name_form,
        NameForm::POINTER_TO_QUESTION
    );
    // Nobody answered anything: our own broadcasts came back and were ignored.
    assert!(segment.sent_by(host(2)).is_empty());
    assert!(segment.service(a).is_idle());
    assert_eq!(segment.service(a).poll_timeout(), None);
}

#[test]
fn second_claimant_gets_a_conflict_and_the_owner_keeps_the_name() {
    let (a, b, c) = (host(1), host(2), host(3));
    let mut segment = Segment::with_hosts(&[1, 2, 3]);
    register(&mut segment, a, messenger("ALICE"), false);
    segment.run_for(ms(1000));
    segment.take_events(a);

    register(&mut segment, b, messenger("ALICE"), false);
    segment.run_for(ms(1000));
    assert_eq!(
        segment.take_events(b),
        [NameEvent::Conflict {
            name: messenger("ALICE"),
            owner: a
        }]
    );
    assert!(segment.take_events(a).is_empty());
    assert_eq!(
        segment.service(a).name_state(&messenger("ALICE")),
        Some(NameState::Registered)
    );
    assert_eq!(
        segment.service(b).name_state(&messenger("ALICE")),
        Some(NameState::Conflict)
    );

    // The defence: unicast to the claimant's port, echoing its TRN_ID, naming the owner.
    let claim = segment.sent_by(b)[0].packet.header.transaction_id;
    let defences: Vec<&Sent> = segment
        .sent_by(a)
        .into_iter()
        .filter(|s| s.packet.kind() == PacketKind::NegativeNameRegistrationResponse)
        .collect();
    assert_eq!(defences.len(), 1, "B stops after the first objection");
    let defence = defences[0];
    assert_eq!(defence.to, SocketAddrV4::new(b, NAME_SERVICE_PORT));
    assert_eq!(defence.packet.header.flags_word(), 0xAD86);
    assert_eq!(defence.packet.header.transaction_id, claim);
    assert_eq!(defence.packet.addr_entries()[0].address, a);
    // B sent no overwrite demand.
    assert!(segment
        .sent_by(b)
        .iter()
        .all(|s| s.packet.kind() == PacketKind::NameRegistrationRequest));

    // C finds only A; B, in conflict, does not answer.
    let id = query(&mut segment, c, messenger("ALICE"));
    segment.run_for(ms(1000));
    assert_eq!(query_result(&segment.take_events(c), id), Some(Ok(vec![a])));
}

#[test]
fn group_names_are_shared_and_resolve_to_every_member() {
    let (a, b, c) = (host(1), host(2), host(3));
    let mut segment = Segment::with_hosts(&[1, 2, 3]);
    register(&mut segment, a, workgroup(), true);
    segment.run_for(ms(1000));
    register(&mut segment, b, workgroup(), true);
    segment.run_for(ms(1000));
    assert_eq!(segment.take_events(a), [NameEvent::Registered(workgroup())]);
    assert_eq!(segment.take_events(b), [NameEvent::Registered(workgroup())]);
    assert!(segment
        .log
        .iter()
        .all(|s| s.packet.kind() != PacketKind::NegativeNameRegistrationResponse));

    let id = query(&mut segment, c, workgroup());
    segment.run_for(ms(749));
    assert_eq!(
        query_result(&segment.take_events(c), id),
        None,
        "waits for all members"
    );
    segment.run_for(ms(1));
    let mut found = query_result(&segment.take_events(c), id).unwrap().unwrap();
    found.sort();
    assert_eq!(found, [a, b]);
    let answer = segment
        .log
        .iter()
        .find(|s| s.packet.kind() == PacketKind::PositiveNameQueryResponse)
        .unwrap();
    assert!(answer.packet.addr_entries()[0].flags.is_group());
}

#[test]
fn queries_are_answered_unicast_and_unknown_names_are_not_found() {
    let (a, c) = (host(1), host(3));
    let mut segment = Segment::with_hosts(&[1, 3]);
    register(&mut segment, a, messenger("ALICE"), false);
    segment.run_for(ms(1000));

    let started = segment.elapsed();
    let id = query(&mut segment, c, messenger("ALICE"));
    segment.run_for(ms(10));
    // A unique name: the first answer settles it.
    assert_eq!(query_result(&segment.take_events(c), id), Some(Ok(vec![a])));
    let answer = segment
        .log
        .iter()
        .find(|s| s.packet.kind() == PacketKind::PositiveNameQueryResponse)
        .unwrap();
    assert_eq!(answer.at, started);
    assert_eq!(answer.to, SocketAddrV4::new(c, NAME_SERVICE_PORT));
    assert_eq!(answer.packet.header.flags_word(), 0x8500);
    assert_eq!(answer.packet.addr_entries()[0].address, a);

    let log_len = segment.log.len();
    let id = query(&mut segment, c, messenger("NOBODY"));
    segment.run_for(ms(749));
    assert_eq!(query_result(&segment.take_events(c), id), None);
    segment.run_for(ms(1));
    assert_eq!(
        query_result(&segment.take_events(c), id),
        Some(Err(QueryError::NotFound))
    );
    // Three broadcasts, and A stayed silent about a name it lacks.
    let new: Vec<&Sent> = segment.log[log_len..].iter().collect();
    assert_eq!(new.len(), 3);
    assert!(new
        .iter()
        .all(|s| *s.from.ip() == c && s.packet.header.flags_word() == 0x0110));
}

#[test]
fn unicast_queries_for_names_we_lack_get_a_negative_answer() {
    let a = host(1);
    let mut service = NameService::new(config(a));
    let now = Instant::now();
    let asker = SocketAddrV4::new(host(9), 40000);
    let query = Packet::name_query(77, QualifiedName::new(messenger("NOBODY")), false);
    service.handle(now, asker, &query.encode()).unwrap();
    let transmit = service.poll_transmit().unwrap();
    assert_eq!(transmit.destination, asker);
    let answer = Packet::decode(&transmit.payload).unwrap();
    assert_eq!(answer.kind(), PacketKind::NegativeNameQueryResponse);
    assert_eq!(answer.header.flags_word(), 0x8583);
    assert_eq!(answer.header.transaction_id, 77);

    let broadcast = Packet::name_query(78, QualifiedName::new(messenger("NOBODY")), true);
    service.handle(now, asker, &broadcast.encode()).unwrap();
    assert_eq!(service.poll_transmit(), None);

    // Names of another scope are not ours to answer for.
    let scoped = QualifiedName::with_scope(
        messenger("NOBODY"),
        crate::name::Scope::parse("ELSEWHERE").unwrap(),
    );
    service
        .handle(now, asker, &Packet::name_query(79, scoped, false).encode())
        .unwrap();
    assert_eq!(service.poll_transmit(), None);
}

#[test]
fn node_status_lists_every_name_with_its_flags() {
    let (a, b, c) = (host(1), host(2), host(3));
    let mut segment = Segment::with_hosts(&[1, 2, 3]);
    register(&mut segment, b, messenger("BOB"), false);
    segment.run_for(ms(1000));
    register(&mut segment, a, messenger("ALICE"), false);
    register(&mut segment, a, workgroup(), true);
    register(&mut segment, a, messenger("BOB"), false);
    segment.run_for(ms(1000));
    assert_eq!(
        segment.service(a).name_state(&messenger("BOB")),
        Some(NameState::Conflict)
    );

    let now = segment.now;
    let id = segment.service(c).node_status(a, now);
    segment.run_for(ms(10));
    let events = segment.take_events(c);
    let Some(NameEvent::NodeStatus {
        id: got,
        address,
        result: Ok(status),
    }) = events.first()
    else {
        panic!("no node status in {events:?}");
    };
    assert_eq!((*got, *address), (id, a));
    let listed: Vec<(String, u16)> = status
        .names
        .iter()
        .map(|n| (n.name.to_string(), n.flags.0))
        .collect();
    assert_eq!(
        listed,
        [
            ("ALICE<03>".to_string(), 0x0400),
            ("BOB<03>".to_string(), 0x0400 | 0x0800),
            ("WORKGROUP<00>".to_string(), 0x8000 | 0x0400),
        ]
    );
    assert_eq!(status.statistics.unit_id, [2, 0, 0, 0, 0, 1]);
    let request = segment.sent_by(c)[0];
    assert_eq!(request.packet.kind(), PacketKind::NodeStatusRequest);
    assert!(request.packet.question().unwrap().name.name.is_star());
    assert_eq!(request.to, SocketAddrV4::new(a, NAME_SERVICE_PORT));
}

#[test]
fn node_status_of_a_crowded_host_lists_its_own_names_first() {
    let (a, c) = (host(1), host(3));
    let mut segment = Segment::with_hosts(&[1, 3]);
    // More users than a node status response can list (NUM_NAMES is one byte).
    for i in 0..300 {
        register(&mut segment, a, messenger(&format!("USER{i:03}")), false);
    }
    register(&mut segment, a, workgroup(), true);
    register(
        &mut segment,
        a,
        messenger("ZZHOST").with_suffix(0x00),
        false,
    );
    segment.run_for(ms(1500));
    let now = segment.now;
    segment.service(c).node_status(a, now);
    segment.run_for(ms(10));
    let events = segment.take_events(c);
    let Some(NameEvent::NodeStatus {
        result: Ok(status), ..
    }) = events.first()
    else {
        panic!("no node status in {events:?}");
    };
    assert_eq!(status.names.len(), 255);
    let listed: Vec<String> = status.names.iter().map(|n| n.name.to_string()).collect();
    assert!(listed.contains(&"WORKGROUP<00>".to_string()), "{listed:?}");
    assert!(listed.contains(&"ZZHOST<00>".to_string()), "{listed:?}");
}

#[test]
fn node_status_of_a_silent_host_fails_after_the_unicast_retries() {
    let c = host(3);
    let mut segment = Segment::with_hosts(&[3]);
    let now = segment.now;
    let id = segment.service(c).node_status(host(99), now);
    segment.run_for(ms(4499));
    assert!(segment.take_events(c).is_empty());
    segment.run_for(ms(1));
    assert_eq!(
        segment.take_events(c),
        [NameEvent::NodeStatus {
            id,
            address: host(99),
            result: Err(QueryError::NoResponse)
        }]
    );
    assert_eq!(segment.sent_by(c).len(), 3);
}

#[test]
fn released_names_are_no_longer_answered_and_can_be_claimed() {
    let (a, b, c) = (host(1), host(2), host(3));
    let mut segment = Segment::with_hosts(&[1, 2, 3]);
    register(&mut segment, a, messenger("ALICE"), false);
    segment.run_for(ms(1000));
    segment.take_events(a);

    let now = segment.now;
    let log_len = segment.log.len();
    assert!(segment.service(a).release(&messenger("ALICE"), now));
    assert_eq!(
        segment.service(a).name_state(&messenger("ALICE")),
        Some(NameState::Releasing)
    );
    segment.run_for(ms(499));
    assert!(segment.take_events(a).is_empty());
    segment.run_for(ms(1));
    assert_eq!(
        segment.take_events(a),
        [NameEvent::Released(messenger("ALICE"))]
    );
    assert_eq!(segment.service(a).name_state(&messenger("ALICE")), None);
    let releases: Vec<(Duration, u16)> = segment.log[log_len..]
        .iter()
        .map(|s| (s.at - segment.log[log_len].at, s.packet.header.flags_word()))
        .collect();
    assert_eq!(
        releases,
        [(ms(0), 0x3010), (ms(250), 0x3010), (ms(500), 0x3010)]
    );
    assert_eq!(segment.log[log_len].packet.record().unwrap().ttl, 0);

    let id = query(&mut segment, c, messenger("ALICE"));
    segment.run_for(ms(1000));
    assert_eq!(
        query_result(&segment.take_events(c), id),
        Some(Err(QueryError::NotFound))
    );

    register(&mut segment, b, messenger("ALICE"), false);
    segment.run_for(ms(1000));
    assert_eq!(
        segment.take_events(b),
        [NameEvent::Registered(messenger("ALICE"))]
    );
    assert!(!segment.service(a).release(&messenger("ALICE"), now));
}

#[test]
fn release_all_empties_the_table() {
    let a = host(1);
    let mut segment = Segment::with_hosts(&[1]);
    register(&mut segment, a, messenger("ALICE"), false);
    register(&mut segment, a, workgroup(), true);
    segment.run_for(ms(1000));
    register(&mut segment, a, messenger("LATE"), false);
    let now = segment.now;
    segment.service(a).release_all(now);
    assert!(!segment.service(a).is_idle());
    segment.run_for(ms(1000));
    assert!(segment.service(a).names().is_empty());
    assert!(segment.service(a).is_idle());
    let mut released: Vec<NameEvent> = segment
        .take_events(a)
        .into_iter()
        .filter(|e| matches!(e, NameEvent::Released(_)))
        .collect();
    released.sort_by_key(|e| format!("{e:?}"));
    assert_eq!(released.len(), 3);
}

#[test]
fn names_in_conflict_or_starting_with_a_star_are_not_defended() {
    let (a, b) = (host(1), host(2));
    let mut segment = Segment::with_hosts(&[1, 2]);
    let mut raw = *NetbiosName::new(b"XSMBSERVER", 0x20).unwrap().as_bytes();
    raw[0] = b'*';
    let starred = NetbiosName::from_raw(raw);
    register(&mut segment, a, starred, false);
    assert_eq!(segment.take_events(a), []);
    segment.collect_events();
    assert_eq!(segment.take_events(a), [NameEvent::Registered(starred)]);
    assert!(segment.log.is_empty() && segment.service(a).poll_transmit().is_none());

    register(&mut segment, a, messenger("ALICE"), false);
    segment.run_for(ms(1000));
    // A conflict demand from anywhere puts the name in conflict.
    let demand = Packet::conflict_demand(5, QualifiedName::new(messenger("ALICE")), NodeType::B);
    let now = segment.now;
    segment
        .service(a)
        .handle(
            now,
            SocketAddrV4::new(host(7), NAME_SERVICE_PORT),
            &demand.encode(),
        )
        .unwrap();
    segment.collect_events();
    assert_eq!(
        segment.take_events(a).last(),
        Some(&NameEvent::Conflict {
            name: messenger("ALICE"),
            owner: host(7)
        })
    );

    register(&mut segment, b, messenger("ALICE"), false);
    register(&mut segment, b, starred, false);
    segment.run_for(ms(1000));
    let events = segment.take_events(b);
    assert!(events.contains(&NameEvent::Registered(messenger("ALICE"))));
    assert!(events.contains(&NameEvent::Registered(starred)));
    assert!(segment
        .sent_by(a)
        .iter()
        .all(|s| s.packet.kind() != PacketKind::NegativeNameRegistrationResponse));
}

#[test]
fn own_broadcasts_are_ignored_but_other_local_sockets_are_not() {
    let a = host(1);
    let mut segment = Segment::with_hosts(&[1]);
    register(&mut segment, a, messenger("ALICE"), false);
    segment.run_for(ms(1000));
    let claim = Packet::registration_request(
        9,
        QualifiedName::new(messenger("ALICE")),
        0,
        AddrEntry {
            flags: NbFlags::new(false, NodeType::B),
            address: a,
        },
        true,
    )
    .encode();
    let now = segment.now;
    let service = segment.service(a);
    service
        .handle(now, SocketAddrV4::new(a, NAME_SERVICE_PORT), &claim)
        .unwrap();
    assert_eq!(service.poll_transmit(), None);
    service
        .handle(now, SocketAddrV4::new(a, 50000), &claim)
        .unwrap();
    let defence = service.poll_transmit().unwrap();
    assert_eq!(defence.destination, SocketAddrV4::new(a, 50000));
}

#[test]
fn a_late_objection_still_makes_a_conflict() {
    let (a, b) = (host(1), host(2));
    let mut service = NameService::new(config(a));
    let start = Instant::now();
    service.register(messenger("ALICE"), false, start).unwrap();
    let request = Packet::decode(&service.poll_transmit().unwrap().payload).unwrap();
    for step in [250, 500, 750] {
        service.handle_timeout(start + ms(step));
    }
    assert_eq!(
        service.poll_event(),
        Some(NameEvent::Registered(messenger("ALICE")))
    );
    let objection = Packet::negative_registration_response(
        request.header.transaction_id,
        QualifiedName::new(messenger("ALICE")),
        0,
        AddrEntry {
            flags: NbFlags::new(false, NodeType::B),
            address: b,
        },
        Rcode::ACT_ERR,
    );
    service
        .handle(
            start + ms(800),
            SocketAddrV4::new(b, NAME_SERVICE_PORT),
            &objection.encode(),
        )
        .unwrap();
    assert_eq!(
        service.poll_event(),
        Some(NameEvent::Conflict {
            name: messenger("ALICE"),
            owner: b
        })
    );
}

#[test]
fn unmatched_responses_and_garbage_are_ignored() {
    let c = host(3);
    let mut service = NameService::new(config(c));
    let now = Instant::now();
    let id = service.query(messenger("ALICE"), now);
    let request = Packet::decode(&service.poll_transmit().unwrap().payload).unwrap();
    let entry = AddrEntry {
        flags: NbFlags::new(false, NodeType::B),
        address: host(1),
    };
    let from = SocketAddrV4::new(host(1), NAME_SERVICE_PORT);
    let name = QualifiedName::new(messenger("ALICE"));
    let wrong_id = Packet::positive_query_response(
        request.header.transaction_id.wrapping_add(1),
        name.clone(),
        0,
        vec![entry],
        false,
    );
    service.handle(now, from, &wrong_id.encode()).unwrap();
    let wrong_name = Packet::positive_query_response(
        request.header.transaction_id,
        QualifiedName::new(messenger("BOB")),
        0,
        vec![entry],
        false,
    );
    service.handle(now, from, &wrong_name.encode()).unwrap();
    assert!(service.handle(now, from, &[0xFF; 5]).is_err());
    assert_eq!(service.poll_event(), None);
    let right = Packet::positive_query_response(
        request.header.transaction_id,
        name.clone(),
        0,
        vec![entry],
        false,
    );
    service.handle(now, from, &right.encode()).unwrap();
    assert_eq!(
        service.poll_event(),
        Some(NameEvent::QueryResult {
            id,
            name: messenger("ALICE"),
            result: Ok(vec![host(1)])
        })
    );
    // A repeat of the answer finds nothing waiting for it.
    service.handle(now, from, &right.encode()).unwrap();
    assert_eq!(service.poll_event(), None);
}

#[test]
fn query_timing_is_configurable() {
    let c = host(3);
    let mut config = config(c);
    config.query_broadcast = RetryPolicy {
        count: 2,
        interval: ms(750),
    };
    let mut segment = Segment::new(vec![config]);
    let id = query(&mut segment, c, messenger("NOBODY"));
    segment.run_for(ms(1499));
    assert_eq!(query_result(&segment.take_events(c), id), None);
    segment.run_for(ms(1));
    assert_eq!(
        query_result(&segment.take_events(c), id),
        Some(Err(QueryError::NotFound))
    );
    let times: Vec<Duration> = segment.log.iter().map(|s| s.at).collect();
    assert_eq!(times, [ms(0), ms(750)]);
}

#[test]
fn transaction_ids_count_up_from_the_seed_and_query_our_own_names_locally() {
    let a = host(1);
    let mut config = config(a);
    config.first_transaction_id = 0xFFFF;
    let mut service = NameService::new(config);
    let now = Instant::now();
    service.register(messenger("ALICE"), false, now).unwrap();
    service.register(messenger("BOB"), false, now).unwrap();
    let ids: Vec<u16> = std::iter::from_fn(|| service.poll_transmit())
        .map(|t| Packet::decode(&t.payload).unwrap().header.transaction_id)
        .collect();
    assert_eq!(ids, [0xFFFF, 0x0000]);
    for step in [250, 500, 750] {
        service.handle_timeout(now + ms(step));
    }
    while service.poll_event().is_some() {}
    let id = service.query(messenger("ALICE"), now + ms(800));
    assert_eq!(
        service.poll_event(),
        Some(NameEvent::QueryResult {
            id,
            name: messenger("ALICE"),
            result: Ok(vec![a])
        })
    );
}

#[test]
fn register_rejects_a_kind_change_and_a_full_table() {
    let mut service = NameService::new(config(host(1)));
    let now = Instant::now();
    service.register(workgroup(), true, now).unwrap();
    assert_eq!(
        service.register(workgroup(), false, now),
        Err(RegisterError::KindMismatch { group: true })
    );
    // Registering again is harmless.
    service.register(workgroup(), true, now).unwrap();
    for i in 1..super::MAX_LOCAL_NAMES {
        let name = NetbiosName::new(format!("N{i}").as_bytes(), SUFFIX_MESSENGER).unwrap();
        service.register(name, false, now).unwrap();
    }
    assert_eq!(
        service.register(messenger("ONEMORE"), false, now),
        Err(RegisterError::TableFull {
            limit: super::MAX_LOCAL_NAMES
        })
    );
}

// ----- WINS -----

fn wins_service() -> (NameService, Instant) {
    let config = config(host(1)).with_wins(WINS);
    assert_eq!(config.node_type, NodeType::H);
    (NameService::new(config), Instant::now())
}

fn wins_from() -> SocketAddrV4 {
    SocketAddrV4::new(WINS, NAME_SERVICE_PORT)
}

fn drain(service: &mut NameService) -> Vec<(SocketAddrV4, Packet)> {
    std::iter::from_fn(|| service.poll_transmit())
        .map(|t| (t.destination, Packet::decode(&t.payload).unwrap()))
        .collect()
}

fn own_entry() -> AddrEntry {
    AddrEntry {
        flags: NbFlags::new(false, NodeType::H),
        address: host(1),
    }
}

#[test]
fn wins_registration_with_wack_then_positive_schedules_refreshes() {
    let (mut service, start) = wins_service();
    let alice = QualifiedName::new(messenger("ALICE"));
    service.register(messenger("ALICE"), false, start).unwrap();
    let sent = drain(&mut service);
    assert_eq!(sent.len(), 1);
    let (to, request) = &sent[0];
    assert_eq!(*to, wins_from());
    assert_eq!(request.header.flags_word(), 0x2900);
    assert_eq!(request.record().unwrap().ttl, super::DEFAULT_NB_TTL_SECS);
    assert_eq!(request.addr_entries(), &[own_entry()]);
    let trn = request.header.transaction_id;

    // WACK: wait ten seconds without retransmitting.
    let wack = Packet::wack(trn, alice.clone(), 10, request.header.flags_word());
    service
        .handle(start + ms(100), wins_from(), &wack.encode())
        .unwrap();
    assert_eq!(service.poll_timeout(), Some(start + ms(10_100)));
    service.handle_timeout(start + ms(5_000));
    assert!(drain(&mut service).is_empty());

    let positive = Packet::positive_registration_response(trn, alice.clone(), 3600, own_entry());
    // The same answer from elsewhere does not count.
    service
        .handle(
            start + ms(6_000),
            SocketAddrV4::new(host(5), NAME_SERVICE_PORT),
            &positive.encode(),
        )
        .unwrap();
    assert_eq!(service.poll_event(), None);
    service
        .handle(start + ms(6_000), wins_from(), &positive.encode())
        .unwrap();
    assert_eq!(
        service.poll_event(),
        Some(NameEvent::Registered(messenger("ALICE")))
    );
    // Refresh at half the TTL.
    let refresh_at = start + ms(6_000) + Duration::from_secs(1800);
    assert_eq!(service.poll_timeout(), Some(refresh_at));
    service.handle_timeout(refresh_at);
    let sent = drain(&mut service);
    assert_eq!(sent.len(), 1);
    let (to, refresh) = &sent[0];
    assert_eq!(*to, wins_from());
    assert_eq!(refresh.kind(), PacketKind::NameRefreshRequest);
    assert_eq!(refresh.header.flags_word(), 0x4000);
    assert_eq!(
        refresh.record().unwrap().name_form,
        NameForm::POINTER_TO_QUESTION
    );

    // A short TTL is refreshed no more often than the floor.
    let mut granted = Packet::positive_registration_response(
        refresh.header.transaction_id,
        alice,
        60,
        own_entry(),
    );
    granted.header.opcode = Opcode::REFRESH;
    service
        .handle(refresh_at, wins_from(), &granted.encode())
        .unwrap();
    assert_eq!(service.poll_event(), None, "already registered");
    assert_eq!(
        service.poll_timeout(),
        Some(refresh_at + super::MIN_REFRESH_INTERVAL)
    );
    assert_eq!(
        service.name_state(&messenger("ALICE")),
        Some(NameState::Registered)
    );
}

#[test]
fn wins_negative_response_is_a_conflict() {
    let (mut service, start) = wins_service();
    service.register(messenger("ALICE"), false, start).unwrap();
    let (_, request) = drain(&mut service).remove(0);
    let owner = AddrEntry {
        flags: NbFlags::new(false, NodeType::H),
        address: host(42),
    };
    let negative = Packet::negative_registration_response(
        request.header.transaction_id,
        QualifiedName::new(messenger("ALICE")),
        0,
        owner,
        Rcode::ACT_ERR,
    );
    service
        .handle(start + ms(10), wins_from(), &negative.encode())
        .unwrap();
    assert_eq!(
        service.poll_event(),
        Some(NameEvent::Conflict {
            name: messenger("ALICE"),
            owner: host(42)
        })
    );
    assert_eq!(service.poll_timeout(), None);
}

#[test]
fn silent_wins_falls_back_to_broadcast() {
    let (mut service, start) = wins_service();
    service.register(messenger("ALICE"), false, start).unwrap();
    let mut timeline = Vec::new();
    let mut now = start;
    loop {
        for (to, packet) in drain(&mut service) {
            timeline.push((now - start, *to.ip(), packet.header.flags_word()));
        }
        if let Some(event) = service.poll_event() {
            assert_eq!(event, NameEvent::Registered(messenger("ALICE")));
            break;
        }
        now = service.poll_timeout().unwrap();
        service.handle_timeout(now);
    }
    assert_eq!(
        timeline,
        [
            (ms(0), WINS, 0x2900),
            (ms(1500), WINS, 0x2900),
            (ms(3000), WINS, 0x2900),
            (ms(4500), BROADCAST, 0x2910),
            (ms(4750), BROADCAST, 0x2910),
            (ms(5000), BROADCAST, 0x2910),
            (ms(5250), BROADCAST, 0x2810),
        ]
    );
    assert_eq!(now - start, ms(5250));
    // WINS is tried again later.
    assert_eq!(
        service.poll_timeout(),
        Some(now + super::MIN_REFRESH_INTERVAL)
    );
}

#[test]
fn wins_end_node_challenge_queries_the_owner() {
    let (mut service, start) = wins_service();
    let alice = QualifiedName::new(messenger("ALICE"));
    service.register(messenger("ALICE"), false, start).unwrap();
    let (_, request) = drain(&mut service).remove(0);
    let owner = AddrEntry {
        flags: NbFlags::new(false, NodeType::H),
        address: host(42),
    };
    let challenge = Packet::end_node_challenge_response(
        request.header.transaction_id,
        alice.clone(),
        900,
        owner,
    );
    service
        .handle(start, wins_from(), &challenge.encode())
        .unwrap();
    let (to, query) = drain(&mut service).remove(0);
    assert_eq!(to, SocketAddrV4::new(host(42), NAME_SERVICE_PORT));
    assert_eq!(query.kind(), PacketKind::NameQueryRequest);
    assert!(!query.header.broadcast);

    let confirmed =
        Packet::positive_query_response(query.header.transaction_id, alice, 0, vec![owner], false);
    service
        .handle(
            start + ms(5),
            SocketAddrV4::new(host(42), NAME_SERVICE_PORT),
            &confirmed.encode(),
        )
        .unwrap();
    assert_eq!(
        service.poll_event(),
        Some(NameEvent::Conflict {
            name: messenger("ALICE"),
            owner: host(42)
        })
    );
}

#[test]
fn wins_queries_positive_negative_and_silent() {
    let (mut service, start) = wins_service();
    let alice = QualifiedName::new(messenger("ALICE"));

    let id = service.query(messenger("ALICE"), start);
    let (to, request) = drain(&mut service).remove(0);
    assert_eq!((to, request.header.flags_word()), (wins_from(), 0x0100));
    let entries = vec![AddrEntry {
        flags: NbFlags::new(false, NodeType::H),
        address: host(42),
    }];
    let answer = Packet::positive_query_response(
        request.header.transaction_id,
        alice.clone(),
        60,
        entries,
        true,
    );
    service
        .handle(start, wins_from(), &answer.encode())
        .unwrap();
    assert_eq!(
        service.poll_event(),
        Some(NameEvent::QueryResult {
            id,
            name: messenger("ALICE"),
            result: Ok(vec![host(42)])
        })
    );

    let id = service.query(messenger("ALICE"), start);
    let (_, request) = drain(&mut service).remove(0);
    let negative =
        Packet::negative_query_response(request.header.transaction_id, alice, Rcode::NAM_ERR);
    service
        .handle(start, wins_from(), &negative.encode())
        .unwrap();
    assert_eq!(
        service.poll_event(),
        Some(NameEvent::QueryResult {
            id,
            name: messenger("ALICE"),
            result: Err(QueryError::NotFound)
        })
    );
    assert!(service.is_idle());

    // Silence: three unicast tries, then three broadcasts, then not found.
    let id = service.query(messenger("ALICE"), start);
    let mut timeline = Vec::new();
    let mut now = start;
    let result = loop {
        for (to, packet) in drain(&mut service) {
            timeline.push((now - start, *to.ip(), packet.header.flags_word()));
        }
        if let Some(event) = service.poll_event() {
            break event;
        }
        now = service.poll_timeout().unwrap();
        service.handle_timeout(now);
    };
    assert_eq!(
        result,
        NameEvent::QueryResult {
            id,
            name: messenger("ALICE"),
            result: Err(QueryError::NotFound)
        }
    );
    assert_eq!(
        timeline,
        [
            (ms(0), WINS, 0x0100),
            (ms(1500), WINS, 0x0100),
            (ms(3000), WINS, 0x0100),
            (ms(4500), BROADCAST, 0x0110),
            (ms(4750), BROADCAST, 0x0110),
            (ms(5000), BROADCAST, 0x0110),
        ]
    );
    assert_eq!(now - start, ms(5250));
}

#[test]
fn wins_release_goes_to_the_server_too() {
    let (mut service, start) = wins_service();
    let alice = QualifiedName::new(messenger("ALICE"));
    service.register(messenger("ALICE"), false, start).unwrap();
    let (_, request) = drain(&mut service).remove(0);
    let positive = Packet::positive_registration_response(
        request.header.transaction_id,
        alice.clone(),
        0,
        own_entry(),
    );
    service
        .handle(start, wins_from(), &positive.encode())
        .unwrap();
    assert_eq!(
        service.poll_event(),
        Some(NameEvent::Registered(messenger("ALICE")))
    );
    assert_eq!(
        service.poll_timeout(),
        None,
        "TTL 0 is infinite: no refresh"
    );

    service.release(&messenger("ALICE"), start);
    let sent = drain(&mut service);
    let summary: Vec<(Ipv4Addr, u16)> = sent
        .iter()
        .map(|(to, p)| (*to.ip(), p.header.flags_word()))
        .collect();
    assert_eq!(summary, [(BROADCAST, 0x3010), (WINS, 0x3000)]);
    let trn = sent[1].1.header.transaction_id;
    let released = Packet::release_response(trn, alice, own_entry(), Rcode::OK);
    service
        .handle(start + ms(10), wins_from(), &released.encode())
        .unwrap();
    assert_eq!(service.poll_event(), None, "broadcasts still to go");
    service.handle_timeout(start + ms(250));
    service.handle_timeout(start + ms(500));
    assert_eq!(
        service.poll_event(),
        Some(NameEvent::Released(messenger("ALICE")))
    );
    assert!(service.is_idle());
    assert_eq!(drain(&mut service).len(), 2);
}

#[test]
fn a_name_claimed_again_while_being_released_runs_only_its_new_timer() {
    let start = Instant::now();
    let mut service = NameService::new(config(host(1)));
    service.register(messenger("ALICE"), false, start).unwrap();
    let mut now = start;
    while service.poll_event().is_none() {
        now = service.poll_timeout().expect("a registration timer runs");
        service.handle_timeout(now);
    }
    assert_eq!(
        service.name_state(&messenger("ALICE")),
        Some(NameState::Registered)
    );
    drain(&mut service);

    // The release's next broadcast would be due at +250 ms; the new claim's first retry at
    // +350 ms. Only the latter may remain.
    service.release(&messenger("ALICE"), now);
    service
        .register(messenger("ALICE"), false, now + ms(100))
        .unwrap();
    drain(&mut service);
    assert_eq!(service.poll_timeout(), Some(now + ms(350)));
    service.handle_timeout(now + ms(250));
    assert!(drain(&mut service).is_empty());
    assert_eq!(service.poll_timeout(), Some(now + ms(350)));
}
