//! The NetBIOS Name Service (UDP port 137): packets and the per-interface name state machine.
//!
//! [`packet`] turns any well-formed name service datagram into a [`Packet`] and back, byte for
//! byte, and builds every packet a messenger host sends (RFC 1002 4.2, [MS-NBTE] 2.2.2).
//! [`service`] holds [`NameService`], a deterministic state machine in the style of
//! `quinn-proto`: the caller hands it datagrams and the current time, and polls it for datagrams
//! to send, events and the next timer. It registers and defends our names, answers name queries
//! and node status requests, refreshes names with a WINS server, releases names, and resolves
//! other hosts' names.
//!
//! Nothing here opens a socket or reads a clock, so two or more services can be run against
//! each other on a simulated network segment with a virtual clock.

use std::time::Duration;

pub mod packet;
pub mod service;

#[cfg(test)]
mod packet_tests;
#[cfg(test)]
mod service_tests;

pub use packet::{
    AddrEntry, Header, NameFlags, NameForm, NbFlags, NodeName, NodeStatus, NodeType, Opcode,
    Packet, PacketKind, Question, RData, Rcode, ResourceRecord, RrClass, RrType, Statistics,
};
pub use service::{
    LocalNameInfo, NameEvent, NameService, NameServiceConfig, NameState, QueryError, QueryId,
    RegisterError, RetryPolicy, Transmit,
};

/// UDP port of the name service, for requests and, from a server or end node, for replies
/// (RFC 1002 4.2.1, "UDP port 137").
pub const NAME_SERVICE_PORT: u16 = 137;

/// Time between retransmissions of a broadcast request (RFC 1002 s.6, BCAST_REQ_RETRY_TIMEOUT).
pub const BCAST_REQ_RETRY_TIMEOUT: Duration = Duration::from_millis(250);
/// How many times a broadcast request is sent in all (RFC 1002 s.6, BCAST_REQ_RETRY_COUNT).
pub const BCAST_REQ_RETRY_COUNT: u32 = 3;
/// Time between retransmissions of a unicast request to a name server (RFC 1002 s.6,
/// UCAST_REQ_RETRY_TIMEOUT).
pub const UCAST_REQ_RETRY_TIMEOUT: Duration = Duration::from_secs(5);
/// The unicast retry interval Windows uses instead of the RFC's five seconds ([MS-NBTE] 3.1.2,
/// NameSrvQueryTimeout default 1500 ms). This is the default here: a WINS server that answers
/// at all answers well within it, and a silent one should not hold a sender up for 15 seconds.
pub const WINDOWS_UCAST_REQ_RETRY_TIMEOUT: Duration = Duration::from_millis(1500);
/// How many times a unicast request is sent in all (RFC 1002 s.6, UCAST_REQ_RETRY_COUNT).
pub const UCAST_REQ_RETRY_COUNT: u32 = 3;
/// Windows' broadcast name query interval (KB Q120642, BcastQueryTimeout 750 ms), for callers
/// that want Windows timing instead of the RFC default.
pub const WINDOWS_BCAST_QUERY_TIMEOUT: Duration = Duration::from_millis(750);
/// Shortest interval between name refreshes with a WINS server, whatever TTL it grants
/// ([MS-NBTE] 3.1.4.1: the Refresh Timeout has a five-minute floor).
pub const MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Longest wait honoured from a WACK's TTL. RFC 1002 4.2.16 lets the server name any wait; a
/// hostile or broken one could stall a registration forever, so we cap it (our own limit; a
/// WINS challenge takes a few seconds).
pub const MAX_WACK_WAIT: Duration = Duration::from_secs(120);
/// TTL, in seconds, we ask a WINS server for and put in positive query responses: the value
/// Windows uses (REFERENCE 2.3, example 03: 300000 s, about 3.5 days).
pub const DEFAULT_NB_TTL_SECS: u32 = 300_000;
/// TTL of broadcast registrations and releases: zero, as in RFC 1002 5.1.1 and Samba nmbd;
/// receivers ignore the TTL of broadcast registrations.
pub const BROADCAST_REGISTRATION_TTL: u32 = 0;
/// Most names one interface holds. Windows allows 256 per LANA ([MS-MSRP] <9>), but a shared
/// Linux host registers a `USER<03>` name for every logged-in user and may have thousands;
/// this bound only keeps a runaway table from growing without limit. Node status responses
/// can list at most 255 of them (RFC 1002 4.2.18: NUM_NAMES is one byte); see
/// [`crate::nbns::packet::MAX_NODE_STATUS_NAMES`].
pub const MAX_LOCAL_NAMES: usize = 16_384;
