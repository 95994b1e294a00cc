//! The mailslot examples of the protocol reference: the [MS-MAIL] section 4 capture (example
//! 00, SMB only) and a `NET SEND *` broadcast datagram (example 14).

mod support;

use std::net::Ipv4Addr;

use netbios::mailslot::{
    build_broadcast, Addressing, MailslotWrite, MessengerDatagram, MessengerMessage, SendParams,
    TransactionStyle, MESSENGER_MAILSLOT,
};
use netbios::nbdgm::{Datagram, DatagramBody, NodeType};
use netbios::{NetbiosName, QualifiedName};
use support::example_bytes;

fn name(n: &str, suffix: u8) -> QualifiedName {
    QualifiedName::new(NetbiosName::new(n.as_bytes(), suffix).expect("valid name"))
}

#[test]
fn ms_mail_capture_decodes_and_re_encodes() {
    let smb = example_bytes("00_ms-mail_spec_capture_mailslot_write.txt");
    assert_eq!(smb.len(), 0x8C);
    let write = MailslotWrite::decode(&smb).expect("decodes");
    assert_eq!(write.name, b"\\MAILSLOT\\test1\\sample_mailslot");
    assert_eq!(write.data, vec![0xCA; 36]);
    assert_eq!(write.data_offset(), 104);
    assert_eq!(write.padding, vec![0, 0, 0]);
    assert_eq!(write.byte_count, 71);
    assert_eq!(write.words.max_parameter_count, 2);
    assert_eq!(write.words.flags, 0x0002);
    assert_eq!(write.words.parameter_offset, 104);
    assert_eq!(write.words.class, 2);
    assert_eq!(write.header.flags, 0x18);
    assert_eq!(write.header.flags2, 0x0004);
    assert_eq!(write.header.pid_low, 0xFEFF);
    assert!(!write.is_messenger());
    assert_eq!(write.encode().expect("encodes"), smb);

    // The Windows style of the builder reproduces the capture's field values exactly.
    let built = MailslotWrite::new(&write.name, write.data.clone(), TransactionStyle::Windows)
        .expect("builds");
    assert_eq!(built.encode().expect("encodes"), smb);
}

#[test]
fn net_send_star_example_decodes_and_is_rebuilt_exactly() {
    let bytes = example_bytes("14_nbds_mailslot_messngr_broadcast.txt");
    assert_eq!(bytes.len(), 199);
    let datagram = Datagram::decode(&bytes).expect("decodes");
    assert_eq!(datagram.encode().expect("encodes"), bytes);
    assert!(matches!(datagram.body, DatagramBody::DirectGroup(_)));
    assert_eq!(datagram.header.flags.0, 0x02);
    assert_eq!(datagram.header.flags.node_type(), NodeType::Broadcast);
    assert_eq!(datagram.header.source_ip, Ipv4Addr::new(192, 168, 1, 10));
    assert!(!datagram.is_fragment());

    let got = MessengerDatagram::decode(&bytes)
        .expect("decodes")
        .expect("is a messenger datagram");
    assert_eq!(got.addressing, Addressing::Group);
    assert_eq!(got.source, name("ALICE", 0x00));
    assert_eq!(got.destination, name("WORKGROUP", 0x00));
    assert!(got.write.is_to(MESSENGER_MAILSLOT));
    assert_eq!(got.write.data_offset(), 88);
    let expected = MessengerMessage::new("ALICE", "WORKGROUP", "Meeting at 3").expect("valid");
    assert_eq!(got.message, expected);
    assert_eq!(got.write.encode().expect("encodes"), &bytes[0x52..]);

    // The example was made with only the required fields set: the minimal style.
    let mut params = SendParams::new(name("ALICE", 0x00), Ipv4Addr::new(192, 168, 1, 10), 0x5A5A);
    params.style = TransactionStyle::Minimal;
    let rebuilt = build_broadcast(&params, &name("WORKGROUP", 0x00), &expected).expect("builds");
    assert_eq!(rebuilt.encode().expect("encodes"), bytes);
}
