//! Test-only readers for the shared protocol examples (hex dumps) and the Samba captures
//! (pcap files), so tests check against the files themselves rather than copies.

use std::path::PathBuf;

/// Directory of the protocol examples, relative to this crate.
const EXAMPLES_DIR: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/protocol/examples"
);
/// Directory of the capture files, relative to this crate.
const CAPTURES_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/captures");

fn read(dir: &str, file: &str) -> Vec<u8> {
    let path = PathBuf::from(dir).join(file);
    std::fs::read(&path).unwrap_or_else(|err| {
        panic!(
            "test vector {} is missing or unreadable ({err}); these tests need the shared \
             protocol examples and captures next to the repository",
            path.display()
        )
    })
}

fn read_text(dir: &str, file: &str) -> String {
    String::from_utf8(read(dir, file)).expect("example files are UTF-8")
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
    let text = read_text(EXAMPLES_DIR, file);
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
    read_text(EXAMPLES_DIR, file)
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
    let data = read(CAPTURES_DIR, file);
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

/// The captures holding a messenger conversation.
pub(crate) const MESSENGER_CAPTURES: [&str; 3] = [
    "samba-4.17-register-query-status-message.pcap",
    "samba-4.17-multiblock-message.pcap",
    "samba-4.17-direct-tcp-message.pcap",
];
