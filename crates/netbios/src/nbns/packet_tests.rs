//! Packet tests: the reference's hex examples, a real Samba capture, error offsets, and
//! property tests (round trips, no panics on any input).

use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::packet::*;
use super::NAME_SERVICE_PORT;
use crate::codec::DecodeErrorKind;
use crate::name::{NetbiosName, QualifiedName, Scope, SUFFIX_MESSENGER};
use crate::test_vectors::{capture_udp, example};

fn q(name: &str, suffix: u8) -> QualifiedName {
    QualifiedName::new(NetbiosName::new(name.as_bytes(), suffix).unwrap())
}

fn star() -> QualifiedName {
    QualifiedName::new(NetbiosName::star())
}

fn unique_b(address: [u8; 4]) -> AddrEntry {
    AddrEntry {
        flags: NbFlags::new(false, NodeType::B),
        address: Ipv4Addr::from(address),
    }
}

/// Decodes `bytes`, checks the kind and that re-encoding gives the same bytes.
fn decode_exact(bytes: &[u8], kind: PacketKind) -> Packet {
    let packet = Packet::decode(bytes).unwrap();
    assert_eq!(packet.kind(), kind, "{packet:#?}");
    assert_eq!(packet.encode(), bytes, "re-encoding differs");
    packet
}

#[test]
fn example_02_broadcast_name_query() {
    let bytes = example("02_nbns_name_query_bcast.txt");
    let packet = decode_exact(&bytes, PacketKind::NameQueryRequest);
    assert_eq!(packet.header.transaction_id, 0x8A31);
    assert_eq!(packet.header.flags_word(), 0x0110);
    assert!(packet.header.broadcast && packet.header.recursion_desired);
    let question = packet.question().unwrap();
    assert_eq!(question.name, q("BOB", SUFFIX_MESSENGER));
    assert_eq!(question.question_type, RrType::NB);
    assert_eq!(question.question_class, RrClass::IN);
    assert_eq!(
        Packet::name_query(0x8A31, q("BOB", SUFFIX_MESSENGER), true).encode(),
        bytes
    );
    let unicast = Packet::name_query(0x8A31, q("BOB", SUFFIX_MESSENGER), false);
    assert_eq!(unicast.header.flags_word(), 0x0100);
    assert_eq!(unicast.kind(), PacketKind::NameQueryRequest);
}

#[test]
fn example_03_positive_query_response() {
    let bytes = example("03_nbns_positive_query_response.txt");
    let packet = decode_exact(&bytes, PacketKind::PositiveNameQueryResponse);
    assert_eq!(packet.header.flags_word(), 0x8500);
    let answer = packet.answer().unwrap();
    assert_eq!(answer.name, q("BOB", SUFFIX_MESSENGER));
    assert_eq!(answer.ttl, 300_000);
    assert_eq!(answer.addr_entries(), &[unique_b([192, 168, 1, 20])]);
    let built = Packet::positive_query_response(
        0x8A31,
        q("BOB", SUFFIX_MESSENGER),
        300_000,
        vec![unique_b([192, 168, 1, 20])],
        false,
    );
    assert_eq!(built.encode(), bytes);
}

#[test]
fn example_04_negative_query_response() {
    let bytes = example("04_nbns_negative_query_response.txt");
    let packet = decode_exact(&bytes, PacketKind::NegativeNameQueryResponse);
    assert_eq!(packet.header.rcode, Rcode::NAM_ERR);
    let answer = packet.answer().unwrap();
    assert_eq!(answer.rr_type, RrType::NULL);
    assert_eq!(answer.rdata, RData::Null);
    assert_eq!(
        Packet::negative_query_response(0x8A32, q("BOB", SUFFIX_MESSENGER), Rcode::NAM_ERR)
            .encode(),
        bytes
    );
}

#[test]
fn example_05_broadcast_registration_with_pointer() {
    let bytes = example("05_nbns_registration_bcast.txt");
    let packet = decode_exact(&bytes, PacketKind::NameRegistrationRequest);
    assert_eq!(packet.header.flags_word(), 0x2910);
    let record = packet.record().unwrap();
    assert_eq!(record.name_form, NameForm::POINTER_TO_QUESTION);
    assert_eq!(record.name, q("ALICE", SUFFIX_MESSENGER));
    assert_eq!(record.ttl, 300_000);
    assert_eq!(packet.addr_entries(), &[unique_b([192, 168, 1, 10])]);
    let built = Packet::registration_request(
        0x1B01,
        q("ALICE", SUFFIX_MESSENGER),
        300_000,
        unique_b([192, 168, 1, 10]),
        true,
    );
    assert_eq!(built.encode(), bytes);
}

#[test]
fn example_06_negative_registration_response() {
    let bytes = example("06_nbns_negative_registration_response.txt");
    let packet = decode_exact(&bytes, PacketKind::NegativeNameRegistrationResponse);
    assert_eq!(packet.header.flags_word(), 0xAD86);
    assert_eq!(packet.header.rcode, Rcode::ACT_ERR);
    assert_eq!(packet.addr_entries(), &[unique_b([192, 168, 1, 99])]);
    let built = Packet::negative_registration_response(
        0x1B01,
        q("ALICE", SUFFIX_MESSENGER),
        0,
        unique_b([192, 168, 1, 99]),
        Rcode::ACT_ERR,
    );
    assert_eq!(built.encode(), bytes);
}

#[test]
fn example_07_node_status_request() {
    let bytes = example("07_nbns_node_status_request.txt");
    let packet = decode_exact(&bytes, PacketKind::NodeStatusRequest);
    assert_eq!(packet.header.flags_word(), 0x0000);
    assert!(packet.question().unwrap().name.name.is_star());
    assert_eq!(packet.question().unwrap().question_type, RrType::NBSTAT);
    assert_eq!(Packet::node_status_request(0x0042, star()).encode(), bytes);
}

#[test]
fn example_08_node_status_response() {
    let bytes = example("08_nbns_node_status_response.txt");
    let packet = decode_exact(&bytes, PacketKind::NodeStatusResponse);
    assert_eq!(packet.header.flags_word(), 0x8400);
    let status = packet.node_status().unwrap();
    let listed: Vec<String> = status
        .names
        .iter()
        .map(|n| format!("{} {:#06x}", n.name, n.flags.0))
        .collect();
    assert_eq!(
        listed,
        [
            "BOB<00> 0x0400",
            "WORKGROUP<00> 0x8400",
            "BOB<20> 0x0400",
            "BOB<03> 0x0400",
            "WORKGROUP<1e> 0x8400",
            "ADMINISTRATOR<03> 0x0400",
        ]
    );
    assert!(status.names[1].flags.is_group() && status.names[1].flags.is_active());
    assert_eq!(
        status.statistics.unit_id,
        [0x00, 0x0C, 0x29, 0x12, 0x34, 0x56]
    );

    let name = |n: &str, suffix: u8| NetbiosName::new(n.as_bytes(), suffix).unwrap();
    let unique = NameFlags::active(false, NodeType::B);
    let group = NameFlags::active(true, NodeType::B);
    let names = vec![
        NodeName {
            name: name("BOB", 0x00),
            flags: unique,
        },
        NodeName {
            name: name("WORKGROUP", 0x00),
            flags: group,
        },
        NodeName {
            name: name("BOB", 0x20),
            flags: unique,
        },
        NodeName {
            name: name("BOB", SUFFIX_MESSENGER),
            flags: unique,
        },
        NodeName {
            name: name("WORKGROUP", 0x1E),
            flags: group,
        },
        NodeName {
            name: name("ADMINISTRATOR", SUFFIX_MESSENGER),
            flags: unique,
        },
    ];
    let status = NodeStatus {
        names,
        statistics: Statistics::with_unit_id([0x00, 0x0C, 0x29, 0x12, 0x34, 0x56]),
    };
    assert_eq!(
        Packet::node_status_response(0x0042, star(), status).encode(),
        bytes
    );
}

#[test]
fn samba_capture_decodes_and_reencodes_exactly() {
    let datagrams: Vec<_> = capture_udp("samba-4.17-register-query-status-message.pcap")
        .into_iter()
        .filter(|d| {
            d.source.port() == NAME_SERVICE_PORT || d.destination.port() == NAME_SERVICE_PORT
        })
        .collect();
    assert!(datagrams.len() > 30, "expected nmbd's traffic");
    let mut kinds = std::collections::BTreeMap::new();
    for datagram in &datagrams {
        let packet = Packet::decode(&datagram.payload)
            .unwrap_or_else(|e| panic!("{datagram:?} does not decode: {e}"));
        assert_eq!(packet.encode(), datagram.payload, "{packet:#?}");
        *kinds.entry(format!("{:?}", packet.kind())).or_insert(0) += 1;
        if packet.kind() == PacketKind::NameRegistrationRequest {
            // nmbd writes RR_NAME as the pointer C0 0C.
            assert_eq!(
                packet.record().unwrap().name_form,
                NameForm::POINTER_TO_QUESTION
            );
            assert_eq!(packet.header.flags_word(), 0x2910);
        }
        if let Some(status) = packet.node_status() {
            let names: Vec<String> = status.names.iter().map(|n| n.name.to_string()).collect();
            assert_eq!(
                names,
                [
                    "SAMBAHOST<00>",
                    "SAMBAHOST<03>",
                    "SAMBAHOST<20>",
                    "TESTGROUP<00>",
                    "TESTGROUP<1e>"
                ]
            );
            assert!(status.names[3].flags.is_group());
            assert!(status.names.iter().all(|n| n.flags.is_active()));
        }
    }
    for kind in [
        "NameRegistrationRequest",
        "NameQueryRequest",
        "PositiveNameQueryResponse",
        "NodeStatusRequest",
        "NodeStatusResponse",
    ] {
        assert!(kinds.contains_key(kind), "no {kind} in {kinds:?}");
    }
}

#[test]
fn constructors_have_the_reference_flag_words_and_kinds() {
    let name = q("ALICE", SUFFIX_MESSENGER);
    let entry = unique_b([10, 0, 0, 1]);
    let cases = [
        (
            Packet::name_query(1, name.clone(), true),
            0x0110,
            PacketKind::NameQueryRequest,
        ),
        (
            Packet::positive_query_response(1, name.clone(), 0, vec![entry], true),
            0x8580,
            PacketKind::PositiveNameQueryResponse,
        ),
        (
            Packet::registration_request(1, name.clone(), 0, entry, false),
            0x2900,
            PacketKind::NameRegistrationRequest,
        ),
        (
            Packet::overwrite_demand(1, name.clone(), 0, entry, true),
            0x2810,
            PacketKind::NameOverwriteDemand,
        ),
        (
            Packet::refresh_request(1, name.clone(), 0, entry),
            0x4000,
            PacketKind::NameRefreshRequest,
        ),
        (
            Packet::multihomed_registration_request(1, name.clone(), 0, entry),
            0x7900,
            PacketKind::MultihomedNameRegistrationRequest,
        ),
        (
            Packet::positive_registration_response(1, name.clone(), 0, entry),
            0xAD80,
            PacketKind::PositiveNameRegistrationResponse,
        ),
        (
            Packet::negative_registration_response(1, name.clone(), 0, entry, Rcode::RFS_ERR),
            0xAD85,
            PacketKind::NegativeNameRegistrationResponse,
        ),
        (
            Packet::end_node_challenge_response(1, name.clone(), 0, entry),
            0xAD00,
            PacketKind::EndNodeChallengeRegistrationResponse,
        ),
        (
            Packet::conflict_demand(1, name.clone(), NodeType::H),
            0xAD87,
            PacketKind::NameConflictDemand,
        ),
        (
            Packet::release_request(1, name.clone(), entry, true),
            0x3010,
            PacketKind::NameReleaseRequest,
        ),
        (
            Packet::release_request(1, name.clone(), entry, false),
            0x3000,
            PacketKind::NameReleaseRequest,
        ),
        (
            Packet::release_response(1, name.clone(), entry, Rcode::OK),
            0xB400,
            PacketKind::PositiveNameReleaseResponse,
        ),
        (
            Packet::release_response(1, name.clone(), entry, Rcode::NAM_ERR),
            0xB403,
            PacketKind::NegativeNameReleaseResponse,
        ),
        (
            Packet::wack(1, name.clone(), 30, 0x2900),
            0xBC00,
            PacketKind::WaitForAcknowledgement,
        ),
    ];
    for (packet, flags, kind) in cases {
        assert_eq!(packet.header.flags_word(), flags, "{packet:?}");
        assert_eq!(packet.kind(), kind);
        let bytes = packet.encode();
        assert_eq!(Packet::decode(&bytes).unwrap(), packet);
    }
}

#[test]
fn registration_family_uses_the_question_pointer_and_wack_echoes_flags() {
    let name = q("ALICE", SUFFIX_MESSENGER);
    let entry = unique_b([10, 0, 0, 1]);
    for packet in [
        Packet::registration_request(7, name.clone(), 0, entry, true),
        Packet::overwrite_demand(7, name.clone(), 0, entry, true),
        Packet::refresh_request(7, name.clone(), 0, entry),
        Packet::multihomed_registration_request(7, name.clone(), 0, entry),
        Packet::release_request(7, name.clone(), entry, true),
    ] {
        let bytes = packet.encode();
        assert_eq!(bytes[12 + 34 + 4..12 + 34 + 6], [0xC0, 0x0C]);
        assert_eq!(bytes.len(), 68);
    }
    let wack = Packet::wack(7, name.clone(), 30, 0x2900).encode();
    assert_eq!(&wack[wack.len() - 4..], &[0x00, 0x02, 0x29, 0x00]);
    let demand = Packet::conflict_demand(7, name, NodeType::B).encode();
    assert_eq!(
        &demand[demand.len() - 12..],
        &[0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0]
    );
}

#[test]
fn refresh_opcode_nine_is_a_refresh_too() {
    let mut packet =
        Packet::refresh_request(3, q("ALICE", SUFFIX_MESSENGER), 0, unique_b([10, 0, 0, 1]));
    packet.header.opcode = Opcode::REFRESH_ALT;
    assert_eq!(packet.header.flags_word(), 0x4800);
    let decoded = Packet::decode(&packet.encode()).unwrap();
    assert_eq!(decoded.kind(), PacketKind::NameRefreshRequest);
    assert!(decoded.header.opcode.is_refresh());
    // A server answering a refresh with the refresh opcode is answering a registration.
    let mut answer = Packet::positive_registration_response(
        3,
        q("ALICE", SUFFIX_MESSENGER),
        60,
        unique_b([10, 0, 0, 1]),
    );
    answer.header.opcode = Opcode::REFRESH;
    assert_eq!(answer.kind(), PacketKind::PositiveNameRegistrationResponse);
}

#[test]
fn name_flags_of_node_status() {
    let flags = NameFlags::active(true, NodeType::H)
        .with_conflict()
        .with_deregistering();
    assert_eq!(flags.0, 0x8000 | 0x6000 | 0x0400 | 0x0800 | 0x1000);
    assert!(flags.is_group() && flags.is_conflict() && flags.is_deregistering());
    assert!(!flags.is_permanent());
    assert_eq!(flags.node_type(), NodeType::H);
    assert!(NameFlags::active(false, NodeType::B)
        .with_permanent()
        .is_permanent());
    for node_type in [NodeType::B, NodeType::P, NodeType::M, NodeType::H] {
        assert_eq!(NbFlags::new(false, node_type).node_type(), node_type);
    }
}

#[test]
fn malformed_input_is_reported_with_its_offset() {
    let good = example("05_nbns_registration_bcast.txt");

    let err = Packet::decode(&good[..5]).unwrap_err();
    assert_eq!(err.offset, 4);
    assert!(matches!(err.kind, DecodeErrorKind::Truncated { .. }));

    // Cut inside the additional record's RDATA.
    let err = Packet::decode(&good[..good.len() - 2]).unwrap_err();
    assert!(
        matches!(err.kind, DecodeErrorKind::Truncated { needed: 2 }),
        "{err}"
    );

    let mut reserved = good.clone();
    reserved[3] |= 0x20;
    let err = Packet::decode(&reserved).unwrap_err();
    assert_eq!(err.offset, 2);
    assert!(matches!(
        err.kind,
        DecodeErrorKind::InvalidValue {
            field: "reserved flag bits",
            ..
        }
    ));

    let mut huge = good.clone();
    huge[4..6].copy_from_slice(&[0xFF, 0xFF]);
    let err = Packet::decode(&huge).unwrap_err();
    assert!(matches!(
        err.kind,
        DecodeErrorKind::TooLong {
            field: "entry count",
            ..
        }
    ));

    let mut many = good.clone();
    many[4..6].copy_from_slice(&[0x00, 0x10]);
    let err = Packet::decode(&many).unwrap_err();
    assert!(
        matches!(err.kind, DecodeErrorKind::Truncated { .. }),
        "{err}"
    );

    // The RR_NAME pointer made to point forward, at itself.
    let mut forward = good.clone();
    forward[0x33] = 50;
    let err = Packet::decode(&forward).unwrap_err();
    assert_eq!(err.offset, 50);

    let mut bad_letter = good.clone();
    bad_letter[13] = b'Z';
    let err = Packet::decode(&bad_letter).unwrap_err();
    assert_eq!(err.offset, 13);
}

#[test]
fn unknown_rdata_and_trailing_bytes_survive() {
    let mut packet = Packet::positive_query_response(9, q("X", 0), 5, vec![], false);
    packet.answers[0].rdata = RData::Raw(vec![1, 2, 3]);
    packet.additional.push(ResourceRecord {
        name: q("Y", 0x20),
        name_form: NameForm::Full,
        rr_type: RrType(0x1234),
        rr_class: RrClass(3),
        ttl: 1,
        rdata: RData::Raw(vec![9; 10]),
    });
    packet.trailing = vec![0, 0];
    let bytes = packet.encode();
    let decoded = Packet::decode(&bytes).unwrap();
    assert_eq!(decoded, packet);
    assert_eq!(decoded.encode(), bytes);
}

#[test]
fn partially_compressed_names_keep_their_form() {
    let scoped = QualifiedName::with_scope(
        NetbiosName::messenger("FRED").unwrap(),
        Scope::parse("NETBIOS.COM").unwrap(),
    );
    let mut packet = Packet::name_query(1, scoped.clone(), false);
    // Second question: the first-level label written out, then a pointer to the question's
    // scope labels (at 12 + 1 + 32).
    packet.questions.push(Question {
        name: scoped,
        name_form: NameForm::Compressed {
            labels: 1,
            offset: 45,
        },
        question_type: RrType::NB,
        question_class: RrClass::IN,
    });
    let bytes = packet.encode();
    assert_eq!(Packet::decode(&bytes).unwrap(), packet);
}

fn arb_name() -> impl Strategy<Value = NetbiosName> {
    proptest::array::uniform16(any::<u8>()).prop_map(NetbiosName::from_raw)
}

fn arb_scope() -> impl Strategy<Value = Scope> {
    proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..12), 0..3)
        .prop_map(|labels| Scope::from_labels(labels).unwrap())
}

fn arb_qualified() -> impl Strategy<Value = QualifiedName> {
    (arb_name(), arb_scope()).prop_map(|(name, scope)| QualifiedName::with_scope(name, scope))
}

fn arb_entry() -> impl Strategy<Value = AddrEntry> {
    (any::<u16>(), any::<[u8; 4]>()).prop_map(|(flags, address)| AddrEntry {
        flags: NbFlags(flags),
        address: Ipv4Addr::from(address),
    })
}

fn arb_statistics() -> impl Strategy<Value = Statistics> {
    (
        any::<[u8; 6]>(),
        any::<u8>(),
        any::<u32>(),
        any::<[u16; 9]>(),
    )
        .prop_map(|(unit_id, jumpers, sends, words)| Statistics {
            unit_id,
            jumpers,
            test_result: jumpers.wrapping_add(1),
            version_number: words[0],
            period_of_statistics: words[1],
            number_of_crcs: words[2],
            number_alignment_errors: words[3],
            number_of_collisions: words[4],
            number_send_aborts: words[5],
            number_good_sends: sends,
            number_good_receives: sends.rotate_left(7),
            number_retransmits: words[6],
            number_no_resource_conditions: words[7],
            number_free_command_blocks: words[8],
            total_number_command_blocks: words[0] ^ words[8],
            max_total_number_command_blocks: words[1] ^ words[7],
            number_pending_sessions: words[2] ^ words[6],
            max_number_pending_sessions: words[3] ^ words[5],
            max_total_sessions_possible: words[4],
            session_data_packet_size: words[5].wrapping_add(1),
        })
}

fn arb_node_status() -> impl Strategy<Value = NodeStatus> {
    (
        proptest::collection::vec(
            (arb_name(), any::<u16>()).prop_map(|(name, flags)| NodeName {
                name,
                flags: NameFlags(flags),
            }),
            0..20,
        ),
        arb_statistics(),
    )
        .prop_map(|(names, statistics)| NodeStatus { names, statistics })
}

/// Record type and data pairs that decode back to the same variant.
fn arb_typed_rdata() -> impl Strategy<Value = (RrType, RData)> {
    prop_oneof![
        proptest::collection::vec(arb_entry(), 0..5).prop_map(|e| (RrType::NB, RData::Nb(e))),
        any::<u16>().prop_map(|f| (RrType::NB, RData::Wack { request_flags: f })),
        arb_node_status().prop_map(|s| (RrType::NBSTAT, RData::NodeStatus(s))),
        Just((RrType::NULL, RData::Null)),
        (
            any::<u16>().prop_filter("typed", |t| ![0x0A, 0x20, 0x21].contains(t)),
            proptest::collection::vec(any::<u8>(), 0..40)
        )
            .prop_map(|(t, raw)| (RrType(t), RData::Raw(raw))),
        proptest::collection::vec(any::<u8>(), 1..40)
            .prop_map(|raw| (RrType::NULL, RData::Raw(raw))),
    ]
}

fn arb_record(pointer_target: Option<QualifiedName>) -> impl Strategy<Value = ResourceRecord> {
    (
        arb_qualified(),
        any::<bool>(),
        any::<u16>(),
        any::<u32>(),
        arb_typed_rdata(),
    )
        .prop_map(move |(name, use_pointer, class, ttl, (rr_type, rdata))| {
            let (name, name_form) = match (&pointer_target, use_pointer) {
                (Some(target), true) => (target.clone(), NameForm::POINTER_TO_QUESTION),
                _ => (name, NameForm::Full),
            };
            ResourceRecord {
                name,
                name_form,
                rr_type,
                rr_class: RrClass(class),
                ttl,
                rdata,
            }
        })
}

fn arb_header() -> impl Strategy<Value = Header> {
    (any::<u16>(), any::<[bool; 6]>(), 0u8..16, 0u8..16).prop_map(|(id, bits, opcode, rcode)| {
        Header {
            transaction_id: id,
            response: bits[0],
            opcode: Opcode::new(opcode),
            authoritative_answer: bits[1],
            truncated: bits[2],
            recursion_desired: bits[3],
            recursion_available: bits[4],
            broadcast: bits[5],
            rcode: Rcode::new(rcode),
        }
    })
}

fn arb_packet() -> impl Strategy<Value = Packet> {
    (
        arb_header(),
        proptest::collection::vec((arb_qualified(), any::<u16>(), any::<u16>()), 0..3),
    )
        .prop_flat_map(|(header, questions)| {
            let questions: Vec<Question> = questions
                .into_iter()
                .map(|(name, t, c)| Question {
                    name,
                    name_form: NameForm::Full,
                    question_type: RrType(t),
                    question_class: RrClass(c),
                })
                .collect();
            let target = questions.first().map(|q| q.name.clone());
            let section = move || proptest::collection::vec(arb_record(target.clone()), 0..3);
            (
                Just(header),
                Just(questions),
                section(),
                section(),
                section(),
                proptest::collection::vec(any::<u8>(), 0..4),
            )
        })
        .prop_map(
            |(header, questions, answers, authority, additional, trailing)| Packet {
                header,
                questions,
                answers,
                authority,
                additional,
                trailing,
            },
        )
}

proptest! {
    #[test]
    fn any_packet_round_trips(packet in arb_packet()) {
        let bytes = packet.encode();
        let decoded = Packet::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &packet);
        prop_assert_eq!(decoded.encode(), bytes);
    }

    #[test]
    fn every_constructor_round_trips(
        id in any::<u16>(),
        name in arb_qualified(),
        ttl in any::<u32>(),
        entry in arb_entry(),
        entries in proptest::collection::vec(arb_entry(), 0..8),
        broadcast in any::<bool>(),
        rcode in 0u8..16,
        flags in any::<u16>(),
        status in arb_node_status(),
    ) {
        let rcode = Rcode::new(rcode);
        let packets = [
            Packet::name_query(id, name.clone(), broadcast),
            Packet::positive_query_response(id, name.clone(), ttl, entries, broadcast),
            Packet::negative_query_response(id, name.clone(), rcode),
            Packet::registration_request(id, name.clone(), ttl, entry, broadcast),
            Packet::overwrite_demand(id, name.clone(), ttl, entry, broadcast),
            Packet::refresh_request(id, name.clone(), ttl, entry),
            Packet::multihomed_registration_request(id, name.clone(), ttl, entry),
            Packet::positive_registration_response(id, name.clone(), ttl, entry),
            Packet::negative_registration_response(id, name.clone(), ttl, entry, rcode),
            Packet::end_node_challenge_response(id, name.clone(), ttl, entry),
            Packet::conflict_demand(id, name.clone(), NodeType::from_flags(flags)),
            Packet::release_request(id, name.clone(), entry, broadcast),
            Packet::release_response(id, name.clone(), entry, rcode),
            Packet::wack(id, name.clone(), ttl, flags),
            Packet::node_status_request(id, name.clone()),
            Packet::node_status_response(id, name, status),
        ];
        for packet in packets {
            let bytes = packet.encode();
            let decoded = Packet::decode(&bytes).unwrap();
            prop_assert_eq!(decoded.kind(), packet.kind());
            prop_assert_eq!(decoded, packet);
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(packet) = Packet::decode(&data) {
            let _ = packet.kind();
            // Whatever decodes re-encodes to the same bytes.
            prop_assert_eq!(packet.encode(), data);
        }
    }

    #[test]
    fn decoding_damaged_examples_never_panics(
        file in prop_oneof![
            Just("05_nbns_registration_bcast.txt"),
            Just("08_nbns_node_status_response.txt"),
            Just("03_nbns_positive_query_response.txt"),
        ],
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let mut data = example(file);
        for (at, value) in edits {
            let len = data.len();
            data[at % len] = value;
        }
        data.truncate(cut % (data.len() + 1));
        if let Ok(packet) = Packet::decode(&data) {
            prop_assert_eq!(packet.encode(), data);
        }
    }
}
