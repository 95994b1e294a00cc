//! Test-only readers for the test vectors kept outside the crate: the hex dumps of the
//! protocol reference's examples and the Samba captures (pcap files). They are read at test
//! time, never copied into the project, so tests check against the files themselves.

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

fn read_text(relative: &str) -> String {
    String::from_utf8(read_shared(relative)).expect("example files are UTF-8")
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

/// The hex bytes of one `OFFSET  hh hh ...  ascii` line, if it is one.
fn hex_dump_line(line: &str) -> Option<Vec<u8>> {
    let mut parts = line.splitn(3, "  ");
    let offset = parts.next()?;
    if offset.len() != 4 || !offset.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let hex = parts.next()?;
    hex.split_whitespace()
        .map(|t| u8::from_str_radix(t, 16).ok())
        .collect()
}

/// The bytes of a hex dump in an example file. With `section`, the dump under the first
/// `## ` heading that starts with it; without, the first dump in the file.
pub(crate) fn example_hex_block(file: &str, section: Option<&str>) -> Vec<u8> {
    let text = read_text(&format!("protocol/examples/{file}"));
    let mut in_section = section.is_none();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(heading) = line.strip_prefix("## ") {
            if !out.is_empty() {
                break;
            }
            in_section = section.is_some_and(|s| heading.starts_with(s));
            continue;
        }
        if !in_section {
            continue;
        }
        match hex_dump_line(line) {
            Some(bytes) => out.extend(bytes),
            None if !out.is_empty() => break,
            None => {}
        }
    }
    assert!(!out.is_empty(), "no hex dump {section:?} in example {file}");
    out
}

/// The `LABEL : hh hh ...` lines of an example file, as label and bytes.
pub(crate) fn example_lines(file: &str) -> Vec<(String, Vec<u8>)> {
    read_text(&format!("protocol/examples/{file}"))
        .lines()
        .filter_map(|line| {
            let (label, rest) = line.split_once(": ")?;
            let bytes: Vec<u8> = rest
                .split_whitespace()
                .map_while(|t| {
                    (t.len() == 2)
                        .then(|| u8::from_str_radix(t, 16).ok())
                        .flatten()
                })
                .collect();
            (!bytes.is_empty()).then(|| (label.trim().to_string(), bytes))
        })
        .collect()
}

/// One direction of one TCP connection in a capture: its bytes in order.
#[derive(Debug)]
pub(crate) struct TcpStream {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// The payload bytes concatenated.
    pub bytes: Vec<u8>,
}

/// The TCP payload streams of a capture (Ethernet, IPv4), one per direction and port pair.
/// The captures are loopback/veth recordings without loss or reordering, so concatenating
/// segments in file order reproduces each stream.
pub(crate) fn capture_tcp_streams(file: &str) -> Vec<TcpStream> {
    let data = read_shared(&format!("captures/{file}"));
    let magic = u32::from_le_bytes(data[..4].try_into().expect("pcap header"));
    let le = match magic {
        0xA1B2_C3D4 | 0xA1B2_3C4D => true,
        _ if magic.swap_bytes() == 0xA1B2_C3D4 || magic.swap_bytes() == 0xA1B2_3C4D => false,
        _ => panic!("{file} is not a pcap file"),
    };
    let u32_at = |b: &[u8], o: usize| {
        let a: [u8; 4] = b[o..o + 4].try_into().expect("4 bytes");
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    assert_eq!(u32_at(&data, 20), 1, "{file}: expected Ethernet link type");
    let mut streams: Vec<TcpStream> = Vec::new();
    let mut off = 24;
    while off + 16 <= data.len() {
        let incl = u32_at(&data, off + 8) as usize;
        let frame = &data[off + 16..off + 16 + incl];
        off += 16 + incl;
        let ip = &frame[14..];
        if u16::from_be_bytes([frame[12], frame[13]]) != 0x0800 || ip[9] != 6 {
            continue;
        }
        let ihl = usize::from(ip[0] & 0x0F) * 4;
        let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
        let tcp = &ip[ihl..total];
        let src_port = u16::from_be_bytes([tcp[0], tcp[1]]);
        let dst_port = u16::from_be_bytes([tcp[2], tcp[3]]);
        let payload = &tcp[usize::from(tcp[12] >> 4) * 4..];
        if payload.is_empty() {
            continue;
        }
        match streams
            .iter_mut()
            .find(|s| s.src_port == src_port && s.dst_port == dst_port)
        {
            Some(s) => s.bytes.extend_from_slice(payload),
            None => streams.push(TcpStream {
                src_port,
                dst_port,
                bytes: payload.to_vec(),
            }),
        }
    }
    streams
}

/// The TCP port smbd listened on in `samba-4.17-direct-tcp-message.pcap`, instead of 139 (the
/// capture's README: `smbclient -M` straight to that port, without a session request).
pub(crate) const DIRECT_TCP_CAPTURE_PORT: u16 = 13139;

/// The captures holding a messenger conversation.
pub(crate) const MESSENGER_CAPTURES: [&str; 3] = [
    "samba-4.17-register-query-status-message.pcap",
    "samba-4.17-multiblock-message.pcap",
    "samba-4.17-direct-tcp-message.pcap",
];
