//! Tests of mailslot writes, the Messenger payload and the datagrams that carry them.

use super::*;
use crate::name::{NetbiosName, SUFFIX_MESSENGER};
use proptest::prelude::*;

fn name(n: &str, suffix: u8) -> QualifiedName {
    QualifiedName::new(NetbiosName::new_uppercase(n.as_bytes(), suffix).unwrap())
}

#[test]
fn new_write_aligns_data_to_four_bytes() {
    let w = MailslotWrite::new(
        MESSENGER_MAILSLOT,
        b"A\0B\0C\0".to_vec(),
        Default::default(),
    )
    .unwrap();
    assert_eq!(w.data_offset(), 88);
    assert_eq!(w.padding, vec![0]);
    let bytes = w.encode().unwrap();
    assert_eq!(MailslotWrite::decode(&bytes).unwrap(), w);
    assert_eq!(bytes[0x09], 0x18);
    assert_eq!(&bytes[0x1A..0x1C], &[0xFF, 0xFE]);
    assert!(w.is_messenger());
    assert!(MailslotWrite::new(b"\\PIPE\\X", vec![], Default::default()).is_err());
    assert!(MailslotWrite::new(b"\\MAILSLOT\\A\0B", vec![], Default::default()).is_err());
}

#[test]
fn samba_style_write_without_padding_decodes() {
    let mut w = MailslotWrite::new(
        b"\\mailslot\\messngr",
        b"x\0y\0z".to_vec(),
        Default::default(),
    )
    .unwrap();
    w.padding.clear();
    let bytes = w.encode().unwrap();
    assert_eq!(usize::from(bytes[57]), 70 + w.name.len());
    let back = MailslotWrite::decode(&bytes).unwrap();
    assert!(back.is_messenger());
    let m = MessengerMessage::decode(&back.data).unwrap();
    assert_eq!(m, MessengerMessage::new("x", "y", "z").unwrap());
}

#[test]
fn data_offset_and_count_are_bounded() {
    let w = MailslotWrite::new(MESSENGER_MAILSLOT, vec![1; 10], Default::default()).unwrap();
    let mut bytes = w.encode().unwrap();
    // DataCount one more than there is.
    bytes[55] = 11;
    assert!(matches!(
        MailslotWrite::decode(&bytes).unwrap_err().kind,
        DecodeErrorKind::Truncated { needed: 1 }
    ));
    // DataOffset into the name.
    bytes[55] = 10;
    bytes[57] = 70;
    let err = MailslotWrite::decode(&bytes).unwrap_err();
    assert_eq!(err.offset, 57);
    // ByteCount is ignored.
    let mut bytes = w.encode().unwrap();
    bytes[67] = 0xFF;
    bytes[68] = 0xFF;
    assert_eq!(MailslotWrite::decode(&bytes).unwrap().data, vec![1; 10]);
    // Wrong command and word count.
    let mut bad = w.encode().unwrap();
    bad[4] = 0x32;
    assert!(MailslotWrite::decode(&bad).is_err());
    let mut bad = w.encode().unwrap();
    bad[32] = 14;
    assert!(MailslotWrite::decode(&bad).is_err());
}

#[test]
fn messenger_payload_tolerates_missing_final_nul() {
    let m = MessengerMessage::decode(b"ALICE\0BOB\0hi there").unwrap();
    assert_eq!(m.text, b"hi there");
    let m = MessengerMessage::decode(b"ALICE\0BOB\0hi\0\0\0").unwrap();
    assert_eq!(m.text, b"hi");
    let m = MessengerMessage::decode(b"ALICE\0BOB\0").unwrap();
    assert_eq!(m.text, b"");
    assert!(MessengerMessage::decode(b"ALICE\0BOB").is_err());
    assert!(MessengerMessage::decode(b"").is_err());
    assert!(MessengerMessage::new("A\0", "B", "C").is_err());
}

#[test]
fn broadcast_builder_makes_a_direct_group_datagram() {
    let params = SendParams::new(name("alice", 0), Ipv4Addr::new(10, 0, 0, 1), 7);
    let message = MessengerMessage::new("ALICE", "WORKGROUP", "Lunch?").unwrap();
    let d = build_broadcast(&params, &name("workgroup", 0), &message).unwrap();
    assert_eq!(d.body.msg_type(), 0x11);
    assert_eq!(d.header.flags.0, 0x02);
    let bytes = d.encode().unwrap();
    let got = MessengerDatagram::decode(&bytes).unwrap().unwrap();
    assert_eq!(got.message, message);
    assert_eq!(got.addressing, Addressing::Group);
    assert_eq!(got.write.data_offset(), 88);
    assert_eq!(got.destination, name("workgroup", 0));

    let long = MessengerMessage::new("ALICE", "WORKGROUP", vec![b'x'; 129]).unwrap();
    assert!(matches!(
        build_broadcast(&params, &name("workgroup", 0), &long),
        Err(MailslotError::TooLong { limit: 128, .. })
    ));
    let ok = MessengerMessage::new("ALICE", "WORKGROUP", vec![b'x'; 128]).unwrap();
    assert!(build_broadcast(&params, &name("workgroup", 0), &ok).is_ok());
}

#[test]
fn directed_builder_enforces_the_size_limits() {
    let params = SendParams::new(name("alice", 0), Ipv4Addr::new(10, 0, 0, 1), 7);
    // With two unscoped names the datagram limit binds first: 576 - 14 - 68 - 88 bytes of
    // payload, of which "A\0B\0" and the final NUL take 5.
    let room = MAX_DATAGRAM_LENGTH - 14 - 68 - 88 - 5;
    let fits = MessengerMessage::new("A", "B", vec![b'x'; room]).unwrap();
    let d = build_directed(&params, &name("b", SUFFIX_MESSENGER), &fits).unwrap();
    assert_eq!(d.body.msg_type(), 0x10);
    assert_eq!(d.encode().unwrap().len(), MAX_DATAGRAM_LENGTH);
    let over = MessengerMessage::new("A", "B", vec![b'x'; room + 1]).unwrap();
    assert!(matches!(
        build_directed(&params, &name("b", SUFFIX_MESSENGER), &over),
        Err(MailslotError::TooLong {
            what: "the datagram",
            ..
        })
    ));
    let too_big = MessengerMessage::new("A", "B", vec![b'x'; MAX_MESSENGER_PAYLOAD - 4]).unwrap();
    assert!(matches!(
        build_directed(&params, &name("b", SUFFIX_MESSENGER), &too_big),
        Err(MailslotError::TooLong {
            limit: MAX_MESSENGER_PAYLOAD,
            ..
        })
    ));
}

#[test]
fn other_datagrams_are_not_messenger_messages() {
    let params = SendParams::new(name("alice", 0), Ipv4Addr::new(10, 0, 0, 1), 7);
    let mut d = build_directed(
        &params,
        &name("b", SUFFIX_MESSENGER),
        &MessengerMessage::default(),
    )
    .unwrap();
    if let DatagramBody::DirectUnique(m) = &mut d.body {
        let w = MailslotWrite::new(BROWSE_MAILSLOT, vec![1, 2, 3], Default::default()).unwrap();
        m.user_data = w.encode().unwrap();
    }
    assert_eq!(MessengerDatagram::decode(&d.encode().unwrap()), Ok(None));
    d.header.flags = DatagramFlags(0x03);
    assert!(MessengerDatagram::decode(&d.encode().unwrap()).is_err());
}

fn arb_write() -> impl Strategy<Value = MailslotWrite> {
    (
        (
            proptest::array::uniform32(any::<u8>()),
            any::<[u16; 10]>(),
            any::<[u8; 3]>(),
            any::<u32>(),
            any::<u16>(),
        ),
        "[A-Za-z0-9_\\\\]{0,40}",
        proptest::collection::vec(any::<u8>(), 0..4),
        proptest::collection::vec(any::<u8>(), 0..500),
        proptest::collection::vec(any::<u8>(), 0..4),
    )
        .prop_map(
            |((mut h, w, b, timeout, byte_count), suffix, padding, data, trailing)| {
                h[..4].copy_from_slice(&crate::smb::header::PROTOCOL_ID);
                h[4] = SMB_COM_TRANSACTION;
                let header = SmbHeader::decode(&mut Reader::new(&h)).unwrap();
                let mut name = b"\\MaIlSlOt\\".to_vec();
                name.extend_from_slice(suffix.as_bytes());
                MailslotWrite {
                    header,
                    words: TransactionWords {
                        total_parameter_count: w[0],
                        total_data_count: w[1],
                        max_parameter_count: w[2],
                        max_data_count: w[3],
                        max_setup_count: b[0],
                        reserved1: b[1],
                        flags: w[4],
                        timeout,
                        reserved2: w[5],
                        parameter_count: w[6],
                        parameter_offset: w[7],
                        reserved3: b[2],
                        priority: w[8],
                        class: w[9],
                    },
                    byte_count,
                    name,
                    padding,
                    data,
                    trailing,
                }
            },
        )
}

proptest! {
    #[test]
    fn mailslot_write_round_trips(w in arb_write()) {
        let bytes = w.encode().unwrap();
        prop_assert_eq!(bytes.len(), w.encoded_len());
        prop_assert_eq!(MailslotWrite::decode(&bytes).unwrap(), w);
    }

    #[test]
    fn messenger_message_round_trips(
        from in proptest::collection::vec(1u8.., 0..20),
        to in proptest::collection::vec(1u8.., 0..20),
        text in proptest::collection::vec(1u8.., 0..300),
    ) {
        let m = MessengerMessage::new(from, to, text).unwrap();
        prop_assert_eq!(MessengerMessage::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn built_datagrams_round_trip(
        text in proptest::collection::vec(1u8.., 0..=MAX_BROADCAST_TEXT_CHARS),
        id in any::<u16>(),
        minimal in any::<bool>(),
    ) {
        let mut params = SendParams::new(name("sender", 0), Ipv4Addr::new(10, 1, 2, 3), id);
        if minimal {
            params.style = TransactionStyle::Minimal;
        }
        let m = MessengerMessage::new("SENDER", "WORKGROUP", text).unwrap();
        let d = build_broadcast(&params, &name("workgroup", 0), &m).unwrap();
        let bytes = d.encode().unwrap();
        prop_assert_eq!(Datagram::decode(&bytes).unwrap(), d);
        let got = MessengerDatagram::decode(&bytes).unwrap().unwrap();
        prop_assert_eq!(got.message, m);
    }

    #[test]
    fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = MessengerMessage::decode(&data);
        if let Ok(w) = MailslotWrite::decode(&data) {
            prop_assert_eq!(w.encode().unwrap(), data.clone());
        }
        let _ = MessengerDatagram::decode(&data);
    }

    #[test]
    fn decoder_never_panics_on_plausible_writes(
        w in arb_write(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = w.encode().unwrap();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let len = cut.index(bytes.len() + 1);
        if let Ok(back) = MailslotWrite::decode(&bytes[..len]) {
            prop_assert_eq!(back.encode().unwrap(), &bytes[..len]);
        }
    }
}
