//! Test support: reading classic pcap files and the shared protocol example files.
//!
//! The reader understands what the recorded test captures use: classic pcap (not pcapng) in
//! either byte order, with microsecond or nanosecond timestamps; link types Ethernet, Linux
//! cooked capture (SLL), BSD loopback/null and raw IPv4; IPv4 (options skipped, fragments
//! ignored) carrying UDP or TCP. TCP payloads are gathered per direction in sequence order, so
//! that a stream decoder can be fed exactly what the application sent. Anything else in a
//! capture (ARP, IPv6, ICMP) is counted and skipped.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// Directory of the shared protocol reference material, relative to this crate.
pub const SHARED_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared");

/// Link type of Ethernet frames (LINKTYPE_ETHERNET).
const LINKTYPE_ETHERNET: u32 = 1;
/// BSD loopback: a 4-byte address family in host byte order (LINKTYPE_NULL).
const LINKTYPE_NULL: u32 = 0;
/// Raw IP without a link header (LINKTYPE_RAW, and the older DLT_RAW values).
const LINKTYPE_RAW: &[u32] = &[101, 12, 14];
/// Linux cooked capture v1, 16-byte header (LINKTYPE_LINUX_SLL).
const LINKTYPE_LINUX_SLL: u32 = 113;
/// Linux cooked capture v2, 20-byte header (LINKTYPE_LINUX_SLL2).
const LINKTYPE_LINUX_SLL2: u32 = 276;
/// OpenBSD loopback: like NULL but the family is big-endian (LINKTYPE_LOOP).
const LINKTYPE_LOOP: u32 = 108;

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_VLAN: u16 = 0x8100;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// One endpoint of a flow.
pub type Endpoint = (Ipv4Addr, u16);

/// A UDP datagram found in a capture.
#[derive(Debug, Clone)]
pub struct UdpPacket {
    /// Index of the frame in the file, from 1 as Wireshark counts.
    pub frame: usize,
    /// Sender.
    pub src: Endpoint,
    /// Receiver.
    pub dst: Endpoint,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

/// A TCP segment carrying data.
#[derive(Debug, Clone)]
pub struct TcpSegment {
    /// Index of the frame, from 1.
    pub frame: usize,
    /// Sender.
    pub src: Endpoint,
    /// Receiver.
    pub dst: Endpoint,
    /// Sequence number of the first payload byte.
    pub seq: u32,
    /// The TCP flags byte (SYN 0x02, FIN 0x01, RST 0x04).
    pub flags: u8,
    /// The payload.
    pub payload: Vec<u8>,
}

/// The bytes one side of a TCP connection sent, in order.
#[derive(Debug, Clone)]
pub struct TcpStream {
    /// Sender.
    pub src: Endpoint,
    /// Receiver.
    pub dst: Endpoint,
    /// Everything the sender sent, reassembled by sequence number. Retransmitted bytes appear
    /// once.
    pub data: Vec<u8>,
    /// Whether a gap was found (bytes missing from the capture).
    pub gap: bool,
}

/// What a capture file held.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    /// The file name, for messages.
    pub name: String,
    /// Every UDP datagram in IPv4.
    pub udp: Vec<UdpPacket>,
    /// Every TCP segment (with or without payload) in IPv4.
    pub tcp: Vec<TcpSegment>,
    /// Frames that were not IPv4 UDP or TCP.
    pub skipped: usize,
}

/// Why a capture could not be read.
#[derive(Debug)]
pub struct PcapError(pub String);

impl std::fmt::Display for PcapError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(msg: impl Into<String>) -> Result<T, PcapError> {
    Err(PcapError(msg.into()))
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Reads a classic pcap file from memory.
pub fn parse_pcap(name: &str, file: &[u8]) -> Result<Capture, PcapError> {
    let magic = file
        .get(..4)
        .ok_or_else(|| PcapError(format!("{name}: too short for a pcap header")))?;
    let big_endian = match magic {
        [0xD4, 0xC3, 0xB2, 0xA1] | [0x4D, 0x3C, 0xB2, 0xA1] => false,
        [0xA1, 0xB2, 0xC3, 0xD4] | [0xA1, 0xB2, 0x3C, 0x4D] => true,
        [0x0A, 0x0D, 0x0D, 0x0A] => return err(format!("{name}: pcapng is not supported")),
        _ => return err(format!("{name}: not a pcap file (magic {magic:02x?})")),
    };
    let u32_at = |at: usize| -> Option<u32> {
        let bytes: [u8; 4] = file.get(at..at + 4)?.try_into().ok()?;
        Some(if big_endian {
            u32::from_be_bytes(bytes)
        } else {
            u32::from_le_bytes(bytes)
        })
    };
    let linktype =
        u32_at(20).ok_or_else(|| PcapError(format!("{name}: truncated header")))? & 0x0FFF_FFFF;
    let mut capture = Capture {
        name: name.to_owned(),
        ..Capture::default()
    };
    let mut at = 24;
    let mut frame = 0;
    while at < file.len() {
        frame += 1;
        let (Some(incl_len), Some(_orig_len)) = (u32_at(at + 8), u32_at(at + 12)) else {
            return err(format!("{name}: truncated record header of frame {frame}"));
        };
        let start = at + 16;
        let end = start + incl_len as usize;
        let Some(data) = file.get(start..end) else {
            return err(format!("{name}: truncated frame {frame}"));
        };
        at = end;
        match link_payload(linktype, data, big_endian) {
            Some(ip) => {
                if !parse_ipv4(frame, ip, &mut capture) {
                    capture.skipped += 1;
                }
            }
            None => capture.skipped += 1,
        }
    }
    Ok(capture)
}

/// The IPv4 packet inside a link-layer frame, if it is one.
fn link_payload(linktype: u32, data: &[u8], file_big_endian: bool) -> Option<&[u8]> {
    match linktype {
        LINKTYPE_ETHERNET => {
            let mut ethertype = be16(data, 12)?;
            let mut offset = 14;
            while ethertype == ETHERTYPE_VLAN {
                ethertype = be16(data, offset + 2)?;
                offset += 4;
            }
            (ethertype == ETHERTYPE_IPV4).then(|| data.get(offset..))?
        }
        LINKTYPE_LINUX_SLL => (be16(data, 14)? == ETHERTYPE_IPV4).then(|| data.get(16..))?,
        LINKTYPE_LINUX_SLL2 => (be16(data, 0)? == ETHERTYPE_IPV4).then(|| data.get(20..))?,
        LINKTYPE_NULL | LINKTYPE_LOOP => {
            let raw: [u8; 4] = data.get(..4)?.try_into().ok()?;
            // NULL stores the family in the byte order of the capturing host, which is the
            // file's byte order; LOOP always big-endian. AF_INET is 2 everywhere.
            let family = if linktype == LINKTYPE_LOOP || file_big_endian {
                u32::from_be_bytes(raw)
            } else {
                u32::from_le_bytes(raw)
            };
            (family == 2).then(|| data.get(4..))?
        }
        lt if LINKTYPE_RAW.contains(&lt) => (data.first()? >> 4 == 4).then_some(data),
        _ => None,
    }
}

/// Adds the UDP datagram or TCP segment in `ip` to the capture; false if it is neither.
fn parse_ipv4(frame: usize, ip: &[u8], capture: &mut Capture) -> bool {
    let Some(&version_ihl) = ip.first() else {
        return false;
    };
    if version_ihl >> 4 != 4 {
        return false;
    }
    let ihl = usize::from(version_ihl & 0x0F) * 4;
    let Some(total_len) = be16(ip, 2) else {
        return false;
    };
    // Ethernet pads short frames: the IP total length says where the packet ends.
    let Some(packet) = ip.get(..usize::from(total_len)) else {
        return false;
    };
    let Some(flags_fragment) = be16(ip, 6) else {
        return false;
    };
    if flags_fragment & 0x3FFF != 0 {
        // An IP fragment; none of the test captures has one.
        return false;
    }
    let protocol = ip[9];
    let (Some(src), Some(dst)) = (be32(ip, 12), be32(ip, 16)) else {
        return false;
    };
    let (src, dst) = (Ipv4Addr::from(src), Ipv4Addr::from(dst));
    let Some(l4) = packet.get(ihl..) else {
        return false;
    };
    match protocol {
        IPPROTO_UDP => {
            let (Some(sport), Some(dport), Some(len)) = (be16(l4, 0), be16(l4, 2), be16(l4, 4))
            else {
                return false;
            };
            let Some(payload) = l4.get(8..usize::from(len)) else {
                return false;
            };
            capture.udp.push(UdpPacket {
                frame,
                src: (src, sport),
                dst: (dst, dport),
                payload: payload.to_vec(),
            });
            true
        }
        IPPROTO_TCP => {
            let (Some(sport), Some(dport), Some(seq)) = (be16(l4, 0), be16(l4, 2), be32(l4, 4))
            else {
                return false;
            };
            let Some(&offset_byte) = l4.get(12) else {
                return false;
            };
            let Some(&flags) = l4.get(13) else {
                return false;
            };
            let header_len = usize::from(offset_byte >> 4) * 4;
            let Some(payload) = l4.get(header_len..) else {
                return false;
            };
            capture.tcp.push(TcpSegment {
                frame,
                src: (src, sport),
                dst: (dst, dport),
                seq,
                flags,
                payload: payload.to_vec(),
            });
            true
        }
        _ => false,
    }
}

impl Capture {
    /// UDP datagrams to or from `port`.
    pub fn udp_on(&self, port: u16) -> impl Iterator<Item = &UdpPacket> {
        self.udp
            .iter()
            .filter(move |p| p.src.1 == port || p.dst.1 == port)
    }

    /// The byte streams of every TCP connection with `port` on one side, one per direction,
    /// in the order their first segment appears. Sequence numbers are followed from the SYN
    /// (or from the first segment seen); duplicate bytes are dropped.
    pub fn tcp_streams(&self, port: u16) -> Vec<TcpStream> {
        let mut order: Vec<(Endpoint, Endpoint)> = Vec::new();
        let mut segments: BTreeMap<(Endpoint, Endpoint), Vec<&TcpSegment>> = BTreeMap::new();
        for s in self
            .tcp
            .iter()
            .filter(|s| s.src.1 == port || s.dst.1 == port)
        {
            let key = (s.src, s.dst);
            if !segments.contains_key(&key) {
                order.push(key);
            }
            segments.entry(key).or_default().push(s);
        }
        order
            .into_iter()
            .map(|key| reassemble(key, &segments[&key]))
            .collect()
    }
}

fn reassemble(key: (Endpoint, Endpoint), segments: &[&TcpSegment]) -> TcpStream {
    const SYN: u8 = 0x02;
    let base = segments
        .iter()
        .find(|s| s.flags & SYN != 0)
        .map(|s| s.seq.wrapping_add(1))
        .unwrap_or_else(|| segments.first().map_or(0, |s| s.seq));
    let mut data: Vec<u8> = Vec::new();
    let mut gap = false;
    let mut sorted: Vec<(u32, &[u8])> = segments
        .iter()
        .filter(|s| !s.payload.is_empty())
        .map(|s| (s.seq.wrapping_sub(base), s.payload.as_slice()))
        .collect();
    sorted.sort_by_key(|&(rel, _)| rel);
    for (rel, payload) in sorted {
        let rel = rel as usize;
        let have = data.len();
        if rel > have {
            gap = true;
            continue;
        }
        let skip = have - rel;
        if skip < payload.len() {
            data.extend_from_slice(&payload[skip..]);
        }
    }
    TcpStream {
        src: key.0,
        dst: key.1,
        data,
        gap,
    }
}

/// Every `*.pcap` file in the shared captures directory, sorted by name. Panics with a clear
/// message if the directory is missing or empty, so a misplaced checkout fails loudly instead
/// of testing nothing.
pub fn capture_files() -> Vec<PathBuf> {
    let dir = Path::new(SHARED_DIR).join("captures");
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "the shared captures directory {} cannot be read ({e}); the tests need the \
             shared/ reference material next to the repository",
            dir.display()
        )
    });
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .pcap files in {}", dir.display());
    files
}

/// Reads and parses one capture file, panicking with the file name on any problem.
pub fn load_capture(path: &Path) -> Capture {
    let bytes = std::fs::read(path)
        .unwrap_or_else(|e| panic!("cannot read capture {}: {e}", path.display()));
    let name = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    parse_pcap(&name, &bytes).unwrap_or_else(|e| panic!("{e}"))
}

/// The bytes of a hex dump in `shared/protocol/examples/<file>`: lines of the form
/// `0000  11 02 5A ...  ascii`; comment lines (`#`) and the field breakdown that follows the
/// dump are ignored. Panics with a clear message if the file is missing.
pub fn example_bytes(file: &str) -> Vec<u8> {
    let path = Path::new(SHARED_DIR).join("protocol/examples").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "the protocol example {} cannot be read ({e}); the tests need the shared/ \
             reference material next to the repository",
            path.display()
        )
    });
    let mut out = Vec::new();
    let mut started = false;
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let Some(first) = words.next() else {
            if started {
                break;
            }
            continue;
        };
        let is_offset = first.len() == 4 && first.chars().all(|c| c.is_ascii_hexdigit());
        if !is_offset {
            if started {
                break;
            }
            continue;
        }
        let expected = usize::from_str_radix(first, 16).unwrap_or(usize::MAX);
        assert_eq!(
            expected,
            out.len(),
            "{}: offset column does not match the bytes read",
            path.display()
        );
        started = true;
        for word in words {
            if word.len() == 2 {
                if let Ok(b) = u8::from_str_radix(word, 16) {
                    out.push(b);
                    continue;
                }
            }
            // The ASCII column starts here.
            break;
        }
    }
    assert!(!out.is_empty(), "{}: no hex dump found", path.display());
    out
}

#[cfg(test)]
mod self_tests {
    use super::*;
    use netbios::nbdgm::DATAGRAM_PORT;
    use netbios::nbss::SESSION_PORT;

    fn frame_eth_udp(payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        let total = 20 + 8 + payload.len();
        f.extend_from_slice(&[
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            64,
            17,
            0,
            0,
        ]);
        f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 255]);
        let ulen = 8 + payload.len();
        f.extend_from_slice(&[0, 138, 0, 138, (ulen >> 8) as u8, ulen as u8, 0, 0]);
        f.extend_from_slice(payload);
        f
    }

    fn pcap(big_endian: bool, linktype: u32, frames: &[Vec<u8>]) -> Vec<u8> {
        let w32 = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let w16 = |v: u16| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut out = Vec::new();
        out.extend_from_slice(&w32(0xA1B2_C3D4));
        out.extend_from_slice(&w16(2));
        out.extend_from_slice(&w16(4));
        out.extend_from_slice(&w32(0));
        out.extend_from_slice(&w32(0));
        out.extend_from_slice(&w32(65535));
        out.extend_from_slice(&w32(linktype));
        for f in frames {
            out.extend_from_slice(&w32(0));
            out.extend_from_slice(&w32(0));
            out.extend_from_slice(&w32(f.len() as u32));
            out.extend_from_slice(&w32(f.len() as u32));
            out.extend_from_slice(f);
        }
        out
    }

    #[test]
    fn reads_both_byte_orders_and_cooked_frames() {
        let eth = frame_eth_udp(b"hello");
        for big in [false, true] {
            let c = parse_pcap(
                "t",
                &pcap(big, LINKTYPE_ETHERNET, std::slice::from_ref(&eth)),
            )
            .unwrap();
            assert_eq!(c.udp.len(), 1);
            assert_eq!(c.udp[0].payload, b"hello");
            assert_eq!(c.udp[0].dst, (Ipv4Addr::new(10, 0, 0, 255), DATAGRAM_PORT));
        }
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        sll.extend_from_slice(&eth[14..]);
        let c = parse_pcap("t", &pcap(false, LINKTYPE_LINUX_SLL, &[sll])).unwrap();
        assert_eq!(c.udp[0].payload, b"hello");
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(&eth[14..]);
        let c = parse_pcap("t", &pcap(false, LINKTYPE_NULL, &[null])).unwrap();
        assert_eq!(c.udp[0].payload, b"hello");
        assert!(parse_pcap("t", b"\x0A\x0D\x0D\x0Axxxx").is_err());
        let truncated = pcap(false, LINKTYPE_ETHERNET, &[eth]);
        assert!(parse_pcap("t", &truncated[..truncated.len() - 1]).is_err());
    }

    #[test]
    fn tcp_reassembly_drops_duplicates_and_orders_segments() {
        let a = (Ipv4Addr::new(1, 1, 1, 1), 1000);
        let b = (Ipv4Addr::new(2, 2, 2, 2), SESSION_PORT);
        let seg = |frame, seq, flags, payload: &[u8]| TcpSegment {
            frame,
            src: a,
            dst: b,
            seq,
            flags,
            payload: payload.to_vec(),
        };
        let capture = Capture {
            tcp: vec![
                seg(1, 99, 0x02, b""),
                seg(2, 104, 0x18, b"world"),
                seg(3, 100, 0x18, b"hell"),
                seg(4, 102, 0x18, b"llwo"),
            ],
            ..Capture::default()
        };
        let streams = capture.tcp_streams(SESSION_PORT);
        assert_eq!(streams.len(), 1);
        assert_eq!(streams[0].data, b"hellworld");
        assert!(!streams[0].gap);
    }
}
