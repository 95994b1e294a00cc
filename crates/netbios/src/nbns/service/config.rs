//! The configuration of one interface's name service and the retry timing of its requests.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::name::Scope;
use crate::nbns::packet::NodeType;
use crate::nbns::{
    BCAST_REQ_RETRY_COUNT, BCAST_REQ_RETRY_TIMEOUT, DEFAULT_NB_TTL_SECS, MIN_REFRESH_INTERVAL,
    NAME_SERVICE_PORT, UCAST_REQ_RETRY_COUNT, WINDOWS_UCAST_REQ_RETRY_TIMEOUT,
};

/// How often a request is sent and how long to wait after each send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Sends in all, the first included. Zero is treated as one.
    pub count: u32,
    /// Wait after each send before sending again or giving up.
    pub interval: Duration,
}

impl RetryPolicy {
    /// Broadcast requests per RFC 1002 s.6: 3 sends, 250 ms apart.
    pub const RFC_BROADCAST: Self = Self {
        count: BCAST_REQ_RETRY_COUNT,
        interval: BCAST_REQ_RETRY_TIMEOUT,
    };
    /// Unicast requests to a name server, Windows timing ([MS-NBTE] 3.1.2): 3 sends, 1.5 s
    /// apart.
    pub const WINDOWS_UNICAST: Self = Self {
        count: UCAST_REQ_RETRY_COUNT,
        interval: WINDOWS_UCAST_REQ_RETRY_TIMEOUT,
    };

    pub(super) fn sends(&self) -> u32 {
        self.count.max(1)
    }
}

/// Configuration of one interface's name service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameServiceConfig {
    /// Our IPv4 address on this interface: NB_ADDRESS of our names.
    pub local_address: Ipv4Addr,
    /// The UDP port our datagrams leave from (137 for the daemon; an ephemeral port for a
    /// client that only resolves). Datagrams from this address and port are our own broadcasts
    /// coming back and are ignored.
    pub local_port: u16,
    /// The UDP port other nodes' name services listen on: 137 everywhere (RFC 1002 s.6);
    /// tests that run several services on one host give them other ports.
    pub peer_port: u16,
    /// The subnet's broadcast address.
    pub broadcast_address: Ipv4Addr,
    /// The WINS server, if any; its presence makes us an H-node.
    pub wins_server: Option<Ipv4Addr>,
    /// The NetBIOS scope; names of other scopes are ignored.
    pub scope: Scope,
    /// Node type announced in NB_FLAGS and NAME_FLAGS.
    pub node_type: NodeType,
    /// UNIT_ID of node status responses (Windows puts the MAC address there).
    pub unit_id: [u8; 6],
    /// TTL in seconds we ask a WINS server for, and put in positive query responses.
    pub nb_ttl_secs: u32,
    /// First NAME_TRN_ID used; later ones count up from it. The caller seeds it (at random,
    /// typically) so that restarts do not reuse the same transaction ids.
    pub first_transaction_id: u16,
    /// Broadcast registrations and releases.
    pub registration_broadcast: RetryPolicy,
    /// Broadcast name queries (REFERENCE 2.4: RFC 250 ms by default, Windows 750 ms).
    pub query_broadcast: RetryPolicy,
    /// Unicast requests: to the WINS server, and node status requests.
    pub unicast: RetryPolicy,
    /// Shortest time between refreshes, whatever TTL the server grants.
    pub min_refresh_interval: Duration,
}

impl NameServiceConfig {
    /// A B-node on `local_address` sending from port 137, without WINS, in the empty scope,
    /// with RFC broadcast timing and Windows unicast timing.
    pub fn new(local_address: Ipv4Addr, broadcast_address: Ipv4Addr) -> Self {
        Self {
            local_address,
            local_port: NAME_SERVICE_PORT,
            peer_port: NAME_SERVICE_PORT,
            broadcast_address,
            wins_server: None,
            scope: Scope::empty(),
            node_type: NodeType::B,
            unit_id: [0; 6],
            nb_ttl_secs: DEFAULT_NB_TTL_SECS,
            first_transaction_id: 1,
            registration_broadcast: RetryPolicy::RFC_BROADCAST,
            query_broadcast: RetryPolicy::RFC_BROADCAST,
            unicast: RetryPolicy::WINDOWS_UNICAST,
            min_refresh_interval: MIN_REFRESH_INTERVAL,
        }
    }

    /// The same configuration with a WINS server, which makes the node an H-node.
    #[must_use]
    pub fn with_wins(mut self, wins_server: Ipv4Addr) -> Self {
        self.wins_server = Some(wins_server);
        self.node_type = NodeType::H;
        self
    }
}
