//! Test vectors kept outside the crate: the hex dumps of the protocol reference and real
//! captures. They are read at test time, never copied into the project.

use std::net::{Ipv4Addr, SocketAddrV4};

/// The shared protocol material, relative to this crate.
const SHARED_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared");

fn read_shared(relative: &str) -> Vec<u8> {
    let path = format!("{SHARED_DIR}/{relative}");
    std::fs::read(&path).unwrap_or_else(|error| {
        panic!(
            "test vector {path} cannot be read ({error}); the shared protocol material must sit \
             in `shared/` next to the workspace directory"
        )
    })
}

/// The bytes of the hex dump in `shared/protocol/examples/<file>`: lines of a four-digit hex
/// offset, two spaces, up to sixteen hex bytes, two spaces and an ASCII rendering.
pub(crate) fn example(file: &str) -> Vec<u8> {
    let raw = read_shared(&format!("protocol/examples/{file}"));
    let text = String::from_utf8_lossy(&raw);
    let mut bytes = Vec::new();
    for line in text.lines() {
        let Some((offset, rest)) = line.split_once("  ") else {
            continue;
        };
        if offset.len() != 4 || !offset.bytes().all(|b| b.is_ascii_hexdigit()) {
            continue;
        }
        let expected_offset = usize::from_str_radix(offset, 16).expect("hex offset");
        assert_eq!(
            expected_offset,
            bytes.len(),
            "{file}: gap before line {line:?}"
        );
        let hex = rest.split("  ").next().unwrap_or_default();
        for token in hex.split_whitespace() {
            bytes.push(u8::from_str_radix(token, 16).expect("hex byte"));
        }
    }
    assert!(!bytes.is_empty(), "{file} holds no hex dump");
    bytes
}

/// A UDP datagram from a capture.
#[derive(Debug, Clone)]
pub(crate) struct CapturedDatagram {
    pub source: SocketAddrV4,
    pub destination: SocketAddrV4,
    pub payload: Vec<u8>,
}

/// The UDP datagrams of the classic-format (microsecond, little-endian) Ethernet pcap
/// `shared/captures/<file>`. Frames other than IPv4/UDP are skipped.
pub(crate) fn capture_udp(file: &str) -> Vec<CapturedDatagram> {
    const PCAP_MAGIC_LE: [u8; 4] = [0xD4, 0xC3, 0xB2, 0xA1];
    const GLOBAL_HEADER_LEN: usize = 24;
    const RECORD_HEADER_LEN: usize = 16;
    const ETHERNET_HEADER_LEN: usize = 14;
    const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
    const IP_PROTOCOL_UDP: u8 = 17;

    let data = read_shared(&format!("captures/{file}"));
    assert_eq!(
        data[..4],
        PCAP_MAGIC_LE,
        "{file} is not a little-endian pcap"
    );
    let u32_le = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().expect("4 bytes"));
    let mut datagrams = Vec::new();
    let mut pos = GLOBAL_HEADER_LEN;
    while pos + RECORD_HEADER_LEN <= data.len() {
        let captured = u32_le(pos + 8) as usize;
        let frame = &data[pos + RECORD_HEADER_LEN..pos + RECORD_HEADER_LEN + captured];
        pos += RECORD_HEADER_LEN + captured;
        if frame.len() < ETHERNET_HEADER_LEN || frame[12..14] != ETHERTYPE_IPV4 {
            continue;
        }
        let ip = &frame[ETHERNET_HEADER_LEN..];
        let header_len = usize::from(ip[0] & 0x0F) * 4;
        if ip[9] != IP_PROTOCOL_UDP {
            continue;
        }
        let addr = |at: usize| Ipv4Addr::new(ip[at], ip[at + 1], ip[at + 2], ip[at + 3]);
        let udp = &ip[header_len..];
        let port = |at: usize| u16::from_be_bytes([udp[at], udp[at + 1]]);
        let udp_len = usize::from(port(4));
        datagrams.push(CapturedDatagram {
            source: SocketAddrV4::new(addr(12), port(0)),
            destination: SocketAddrV4::new(addr(16), port(2)),
            payload: udp[8..udp_len].to_vec(),
        });
    }
    datagrams
}
