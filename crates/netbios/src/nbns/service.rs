//! The name service of one IPv4 interface as a deterministic state machine.
//!
//! [`NameService`] owns the interface's name table and every outstanding name service
//! transaction. It does no I/O and reads no clock: the caller feeds it received datagrams
//! ([`NameService::handle`]) and the time ([`NameService::handle_timeout`]), and drains what it
//! wants sent ([`NameService::poll_transmit`]), what happened ([`NameService::poll_event`]) and
//! when it next needs the time ([`NameService::poll_timeout`]).
//!
//! Behaviour (RFC 1001 15, RFC 1002 5.1, [MS-NBTE] 3.1):
//! - Registration: a B-node broadcasts a registration request [`BCAST_REQ_RETRY_COUNT`] times
//!   with one TRN_ID; any negative response makes the name a conflict; silence makes it ours,
//!   and we then broadcast an overwrite demand. With a WINS server (H-node) the request goes to
//!   the server first; its answer may be positive (refresh at half the granted TTL, with a
//!   floor), negative (conflict), a WACK (wait), or an end-node challenge (query the owner
//!   ourselves). A silent server makes us fall back to broadcast.
//! - Defence: a registration or overwrite of one of our registered unique names by another
//!   node gets a unicast ACT_ERR negative response. Names starting with `*` and names in
//!   conflict are not defended. A conflict demand puts our name in conflict.
//! - Answers: positive query responses for names we hold, negative ones to unicast queries for
//!   names we lack (never to broadcast queries), node status responses listing every name.
//! - Resolution: WINS first when configured, then broadcast; node status of a given host.
//!
//! [`BCAST_REQ_RETRY_COUNT`]: super::BCAST_REQ_RETRY_COUNT

use std::collections::{BTreeMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::packet::{
    AddrEntry, NameFlags, NbFlags, NodeName, NodeStatus, NodeType, Packet, PacketKind, Rcode,
    Statistics, MAX_NODE_STATUS_NAMES,
};
use super::{
    BCAST_REQ_RETRY_COUNT, BCAST_REQ_RETRY_TIMEOUT, BROADCAST_REGISTRATION_TTL,
    DEFAULT_NB_TTL_SECS, MAX_LOCAL_NAMES, MAX_WACK_WAIT, MIN_REFRESH_INTERVAL, NAME_SERVICE_PORT,
    UCAST_REQ_RETRY_COUNT, WINDOWS_UCAST_REQ_RETRY_TIMEOUT,
};
use crate::codec::DecodeError;
use crate::name::{NetbiosName, QualifiedName, Scope};

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

    fn sends(&self) -> u32 {
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

/// A datagram the service wants sent, from the configured local port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddrV4,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

/// Where one of our names stands, as `NET NAME` and `nbtstat -n` show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NameState {
    /// Claimed, waiting for objections.
    Registering,
    /// Ours: defended and answered for.
    Registered,
    /// Another node holds it; not used, not defended, listed with CNF.
    Conflict,
    /// Being released.
    Releasing,
}

/// One entry of the name table, for listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LocalNameInfo {
    /// The name.
    pub name: NetbiosName,
    /// Whether it is a group name.
    pub group: bool,
    /// Its state.
    pub state: NameState,
}

/// Identifies a resolution started by [`NameService::query`] or [`NameService::node_status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId(pub u64);

/// Why a resolution failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// Nobody holds the name: the WINS server said so, or no node answered the broadcasts.
    #[error("the name was not found")]
    NotFound,
    /// The host asked for its node status never answered.
    #[error("no response")]
    NoResponse,
    /// The host answered with something that is not a node status.
    #[error("the response was not understood")]
    InvalidResponse,
}

/// Why a name cannot be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum RegisterError {
    /// The name table is full.
    #[error("the name table is full ({limit} names)")]
    TableFull {
        /// The limit.
        limit: usize,
    },
    /// The name is already in the table as the other kind (unique versus group).
    #[error("the name is already registered as a {}", if *.group { "group name" } else { "unique name" })]
    KindMismatch {
        /// Whether the existing entry is a group name.
        group: bool,
    },
}

/// Something the caller should know about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameEvent {
    /// The name is ours.
    Registered(NetbiosName),
    /// Another node holds the name (it answered our registration negatively, or sent a
    /// conflict demand). `owner` is the address given as owner, else the objector's address.
    Conflict {
        /// The name.
        name: NetbiosName,
        /// Who objected.
        owner: Ipv4Addr,
    },
    /// The name was released and is no longer in the table.
    Released(NetbiosName),
    /// A name query finished.
    QueryResult {
        /// The query.
        id: QueryId,
        /// The name asked for.
        name: NetbiosName,
        /// The holders' addresses, without duplicates, in the order they answered.
        result: Result<Vec<Ipv4Addr>, QueryError>,
    },
    /// A node status request finished.
    NodeStatus {
        /// The request.
        id: QueryId,
        /// The host asked.
        address: Ipv4Addr,
        /// Its names and statistics.
        result: Result<NodeStatus, QueryError>,
    },
}

/// What a name is waiting for; drives the timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Nothing pending.
    Idle,
    /// Registration request sent to WINS `sent` times.
    WinsRegistration { sent: u32 },
    /// WINS acknowledged with a WACK; waiting for its final answer.
    WinsWaitAfterWack,
    /// WINS told us to challenge `owner` ourselves; name query sent `sent` times.
    Challenge {
        owner: Ipv4Addr,
        sent: u32,
        granted_ttl: u32,
    },
    /// Broadcast registration request sent `sent` times.
    BroadcastRegistration { sent: u32 },
    /// Registered; refresh with WINS when the deadline comes.
    RefreshDue,
    /// Refresh request sent to WINS `sent` times.
    Refreshing { sent: u32 },
    /// Release requests going out.
    Releasing {
        broadcasts_sent: u32,
        next_broadcast: Option<Instant>,
        wins_sent: u32,
        next_wins: Option<Instant>,
    },
}

#[derive(Debug, Clone)]
struct LocalName {
    group: bool,
    state: NameState,
    step: Step,
    /// TRN_ID of the last request sent for this name; responses must echo it.
    transaction_id: u16,
    deadline: Option<Instant>,
}

#[derive(Debug, Clone)]
enum QueryTarget {
    Name {
        name: NetbiosName,
        via_wins: bool,
        found: Vec<Ipv4Addr>,
    },
    NodeStatus {
        address: Ipv4Addr,
    },
}

#[derive(Debug, Clone)]
struct PendingQuery {
    target: QueryTarget,
    transaction_id: u16,
    sent: u32,
    deadline: Instant,
}

/// The name service of one IPv4 interface. See the module documentation.
#[derive(Debug)]
pub struct NameService {
    config: NameServiceConfig,
    names: BTreeMap<NetbiosName, LocalName>,
    queries: BTreeMap<QueryId, PendingQuery>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<NameEvent>,
    next_transaction_id: u16,
    next_query_id: u64,
}

impl NameService {
    /// A service with an empty name table.
    pub fn new(config: NameServiceConfig) -> Self {
        Self {
            next_transaction_id: config.first_transaction_id,
            config,
            names: BTreeMap::new(),
            queries: BTreeMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_query_id: 1,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &NameServiceConfig {
        &self.config
    }

    /// Every name in the table, in name order.
    pub fn names(&self) -> Vec<LocalNameInfo> {
        self.names
            .iter()
            .map(|(name, entry)| LocalNameInfo {
                name: *name,
                group: entry.group,
                state: entry.state,
            })
            .collect()
    }

    /// The state of `name`, if it is in the table.
    pub fn name_state(&self, name: &NetbiosName) -> Option<NameState> {
        self.names.get(name).map(|entry| entry.state)
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<NameEvent> {
        self.events.pop_front()
    }

    /// When [`NameService::handle_timeout`] should next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let names = self.names.values().filter_map(|entry| entry.deadline);
        let queries = self.queries.values().map(|query| query.deadline);
        names.chain(queries).min()
    }

    /// Whether nothing is pending but refreshes: no registration, release or query in flight.
    /// A daemon shutting down after [`NameService::release_all`] waits for this.
    pub fn is_idle(&self) -> bool {
        self.queries.is_empty()
            && self
                .names
                .values()
                .all(|entry| matches!(entry.step, Step::Idle | Step::RefreshDue))
    }

    /// Claims `name`. Registering a name already registered or being registered does
    /// nothing; a name in conflict or being released is claimed afresh. Names starting with
    /// `*` are registered locally only, without network traffic ([MS-NBTE] 3.1.4.1).
    pub fn register(
        &mut self,
        name: NetbiosName,
        group: bool,
        now: Instant,
    ) -> Result<(), RegisterError> {
        if let Some(entry) = self.names.get(&name) {
            if entry.group != group {
                return Err(RegisterError::KindMismatch { group: entry.group });
            }
            if matches!(entry.state, NameState::Registering | NameState::Registered) {
                return Ok(());
            }
        } else if self.names.len() >= MAX_LOCAL_NAMES {
            return Err(RegisterError::TableFull {
                limit: MAX_LOCAL_NAMES,
            });
        }
        if is_local_only(&name) {
            self.names.insert(
                name,
                LocalName {
                    group,
                    state: NameState::Registered,
                    step: Step::Idle,
                    transaction_id: 0,
                    deadline: None,
                },
            );
            self.events.push_back(NameEvent::Registered(name));
            return Ok(());
        }
        self.names.insert(
            name,
            LocalName {
                group,
                state: NameState::Registering,
                step: Step::Idle,
                transaction_id: 0,
                deadline: None,
            },
        );
        if self.config.wins_server.is_some() {
            self.start_wins_registration(name, now);
        } else {
            self.start_broadcast_registration(name, now);
        }
        Ok(())
    }

    /// Releases `name`: broadcasts release requests (and sends one to WINS, if configured)
    /// and then removes it, with a [`NameEvent::Released`]. Names never acquired (registering,
    /// in conflict, local-only) are removed at once. Returns whether the name was in the table.
    pub fn release(&mut self, name: &NetbiosName, now: Instant) -> bool {
        let Some(entry) = self.names.get(name) else {
            return false;
        };
        let group = entry.group;
        match entry.state {
            NameState::Releasing => return true,
            NameState::Registered if !is_local_only(name) => {}
            NameState::Registering | NameState::Conflict | NameState::Registered => {
                self.names.remove(name);
                self.events.push_back(NameEvent::Released(*name));
                return true;
            }
        }
        let transaction_id = self.allocate_transaction_id();
        let packet = Packet::release_request(
            transaction_id,
            self.qualified(*name),
            self.own_entry(group),
            true,
        );
        self.send(self.broadcast_destination(), &packet);
        let next_broadcast = (self.config.registration_broadcast.sends() > 1)
            .then(|| now + self.config.registration_broadcast.interval);
        let (wins_sent, next_wins) = match self.wins_destination() {
            Some(wins) => {
                let mut unicast = packet;
                unicast.header.broadcast = false;
                self.send(wins, &unicast);
                (1, Some(now + self.config.unicast.interval))
            }
            None => (0, None),
        };
        if let Some(entry) = self.names.get_mut(name) {
            entry.state = NameState::Releasing;
            entry.transaction_id = transaction_id;
            entry.step = Step::Releasing {
                broadcasts_sent: 1,
                next_broadcast,
                wins_sent,
                next_wins,
            };
        }
        self.finish_release_if_done(name);
        true
    }

    /// Releases every name, for shutdown. Keep driving the service until
    /// [`NameService::is_idle`] so that the retransmissions go out.
    pub fn release_all(&mut self, now: Instant) {
        let names: Vec<NetbiosName> = self.names.keys().copied().collect();
        for name in names {
            self.release(&name, now);
        }
    }

    /// Starts resolving `name` in our scope: WINS first if configured, then broadcast. The
    /// answer comes as [`NameEvent::QueryResult`] with the returned id. A unique name we hold
    /// ourselves resolves to our own address at once.
    pub fn query(&mut self, name: NetbiosName, now: Instant) -> QueryId {
        let id = self.allocate_query_id();
        let mut found = Vec::new();
        if let Some(entry) = self.names.get(&name) {
            if entry.state == NameState::Registered {
                if !entry.group {
                    self.events.push_back(NameEvent::QueryResult {
                        id,
                        name,
                        result: Ok(vec![self.config.local_address]),
                    });
                    return id;
                }
                found.push(self.config.local_address);
            }
        }
        let via_wins = self.config.wins_server.is_some();
        let transaction_id = self.allocate_transaction_id();
        let query = PendingQuery {
            target: QueryTarget::Name {
                name,
                via_wins,
                found,
            },
            transaction_id,
            sent: 0,
            deadline: now,
        };
        self.queries.insert(id, query);
        self.send_query(id, now);
        id
    }

    /// Asks the host at `address` for its names (what `nbtstat -A` does). The answer comes as
    /// [`NameEvent::NodeStatus`] with the returned id.
    pub fn node_status(&mut self, address: Ipv4Addr, now: Instant) -> QueryId {
        let id = self.allocate_query_id();
        let transaction_id = self.allocate_transaction_id();
        self.queries.insert(
            id,
            PendingQuery {
                target: QueryTarget::NodeStatus { address },
                transaction_id,
                sent: 0,
                deadline: now,
            },
        );
        self.send_query(id, now);
        id
    }

    /// Handles a datagram received on port 137 (or on the local port) from `from`. Datagrams
    /// that are our own broadcasts coming back are ignored; undecodable ones are reported and
    /// otherwise ignored.
    pub fn handle(
        &mut self,
        now: Instant,
        from: SocketAddrV4,
        datagram: &[u8],
    ) -> Result<(), DecodeError> {
        if from == SocketAddrV4::new(self.config.local_address, self.config.local_port) {
            return Ok(());
        }
        let packet = Packet::decode(datagram)?;
        match packet.kind() {
            PacketKind::NameQueryRequest => self.answer_name_query(from, &packet),
            PacketKind::NodeStatusRequest => self.answer_node_status(from, &packet),
            PacketKind::NameRegistrationRequest
            | PacketKind::NameOverwriteDemand
            | PacketKind::MultihomedNameRegistrationRequest => self.defend(from, &packet),
            PacketKind::PositiveNameQueryResponse | PacketKind::NegativeNameQueryResponse => {
                self.on_query_response(from, &packet, now);
            }
            PacketKind::NodeStatusResponse => self.on_node_status_response(from, &packet),
            PacketKind::PositiveNameRegistrationResponse
            | PacketKind::NegativeNameRegistrationResponse
            | PacketKind::EndNodeChallengeRegistrationResponse
            | PacketKind::WaitForAcknowledgement => {
                self.on_registration_response(from, &packet, now);
            }
            PacketKind::NameConflictDemand => self.on_conflict_demand(from, &packet),
            PacketKind::PositiveNameReleaseResponse | PacketKind::NegativeNameReleaseResponse => {
                self.on_release_response(from, &packet);
            }
            PacketKind::NameRefreshRequest
            | PacketKind::NameReleaseRequest
            | PacketKind::RedirectNameQueryResponse
            | PacketKind::Unknown => {}
        }
        Ok(())
    }

    /// Runs every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due_names: Vec<NetbiosName> = self
            .names
            .iter()
            .filter(|(_, entry)| entry.deadline.is_some_and(|deadline| deadline <= now))
            .map(|(name, _)| *name)
            .collect();
        for name in due_names {
            self.name_timeout(name, now);
        }
        let due_queries: Vec<QueryId> = self
            .queries
            .iter()
            .filter(|(_, query)| query.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due_queries {
            self.query_timeout(id, now);
        }
    }

    // ----- registration -----

    fn start_wins_registration(&mut self, name: NetbiosName, now: Instant) {
        let transaction_id = self.allocate_transaction_id();
        self.send_wins_registration(name, transaction_id);
        self.set_step(
            name,
            transaction_id,
            Step::WinsRegistration { sent: 1 },
            Some(now + self.config.unicast.interval),
        );
    }

    fn send_wins_registration(&mut self, name: NetbiosName, transaction_id: u16) {
        let (Some(wins), Some(entry)) = (self.wins_destination(), self.names.get(&name)) else {
            return;
        };
        let packet = Packet::registration_request(
            transaction_id,
            self.qualified(name),
            self.config.nb_ttl_secs,
            self.own_entry(entry.group),
            false,
        );
        self.send(wins, &packet);
    }

    fn start_broadcast_registration(&mut self, name: NetbiosName, now: Instant) {
        let transaction_id = self.allocate_transaction_id();
        self.send_broadcast_registration(name, transaction_id);
        self.set_step(
            name,
            transaction_id,
            Step::BroadcastRegistration { sent: 1 },
            Some(now + self.config.registration_broadcast.interval),
        );
    }

    fn send_broadcast_registration(&mut self, name: NetbiosName, transaction_id: u16) {
        let Some(entry) = self.names.get(&name) else {
            return;
        };
        let packet = Packet::registration_request(
            transaction_id,
            self.qualified(name),
            BROADCAST_REGISTRATION_TTL,
            self.own_entry(entry.group),
            true,
        );
        self.send(self.broadcast_destination(), &packet);
    }

    fn send_refresh(&mut self, name: NetbiosName, transaction_id: u16) {
        let (Some(wins), Some(entry)) = (self.wins_destination(), self.names.get(&name)) else {
            return;
        };
        let packet = Packet::refresh_request(
            transaction_id,
            self.qualified(name),
            self.config.nb_ttl_secs,
            self.own_entry(entry.group),
        );
        self.send(wins, &packet);
    }

    fn send_challenge_query(&mut self, name: NetbiosName, owner: Ipv4Addr, transaction_id: u16) {
        let packet = Packet::name_query(transaction_id, self.qualified(name), false);
        self.send(SocketAddrV4::new(owner, self.config.peer_port), &packet);
    }

    fn set_step(
        &mut self,
        name: NetbiosName,
        transaction_id: u16,
        step: Step,
        deadline: Option<Instant>,
    ) {
        if let Some(entry) = self.names.get_mut(&name) {
            entry.transaction_id = transaction_id;
            entry.step = step;
            entry.deadline = deadline;
        }
    }

    fn name_timeout(&mut self, name: NetbiosName, now: Instant) {
        let Some(entry) = self.names.get(&name) else {
            return;
        };
        let transaction_id = entry.transaction_id;
        let step = entry.step;
        match step {
            Step::Idle => self.set_step(name, transaction_id, Step::Idle, None),
            Step::WinsRegistration { sent } if sent < self.config.unicast.sends() => {
                self.send_wins_registration(name, transaction_id);
                let deadline = now + self.config.unicast.interval;
                let step = Step::WinsRegistration { sent: sent + 1 };
                self.set_step(name, transaction_id, step, Some(deadline));
            }
            // The server never answered, or never followed its WACK up: H-node falls back to
            // broadcast (RFC 1001 15.2 for M/H behaviour, [MS-NBTE] 3.1.4.1).
            Step::WinsRegistration { .. } | Step::WinsWaitAfterWack => {
                self.start_broadcast_registration(name, now);
            }
            Step::Challenge {
                owner,
                sent,
                granted_ttl,
            } => {
                if sent < self.config.unicast.sends() {
                    self.send_challenge_query(name, owner, transaction_id);
                    let step = Step::Challenge {
                        owner,
                        sent: sent + 1,
                        granted_ttl,
                    };
                    let deadline = now + self.config.unicast.interval;
                    self.set_step(name, transaction_id, step, Some(deadline));
                } else {
                    self.claim_after_challenge(name, granted_ttl, now);
                }
            }
            Step::BroadcastRegistration { sent }
                if sent < self.config.registration_broadcast.sends() =>
            {
                self.send_broadcast_registration(name, transaction_id);
                let deadline = now + self.config.registration_broadcast.interval;
                let step = Step::BroadcastRegistration { sent: sent + 1 };
                self.set_step(name, transaction_id, step, Some(deadline));
            }
            Step::BroadcastRegistration { .. } => self.broadcast_registration_succeeded(name, now),
            Step::RefreshDue => {
                let transaction_id = self.allocate_transaction_id();
                self.send_refresh(name, transaction_id);
                let deadline = now + self.config.unicast.interval;
                self.set_step(
                    name,
                    transaction_id,
                    Step::Refreshing { sent: 1 },
                    Some(deadline),
                );
            }
            Step::Refreshing { sent } if sent < self.config.unicast.sends() => {
                self.send_refresh(name, transaction_id);
                let deadline = now + self.config.unicast.interval;
                let step = Step::Refreshing { sent: sent + 1 };
                self.set_step(name, transaction_id, step, Some(deadline));
            }
            // The server is down; keep the name and try again later.
            Step::Refreshing { .. } => {
                let deadline = now + self.config.min_refresh_interval;
                self.set_step(name, transaction_id, Step::RefreshDue, Some(deadline));
            }
            Step::Releasing { .. } => self.release_timeout(name, now),
        }
    }

    /// Nobody objected to our broadcasts: the name is ours. Tell everyone with an overwrite
    /// demand (RFC 1002 5.1.1.1), keeping the TRN_ID so that a late objection still counts.
    fn broadcast_registration_succeeded(&mut self, name: NetbiosName, now: Instant) {
        let Some(entry) = self.names.get(&name) else {
            return;
        };
        let transaction_id = entry.transaction_id;
        let packet = Packet::overwrite_demand(
            transaction_id,
            self.qualified(name),
            BROADCAST_REGISTRATION_TTL,
            self.own_entry(entry.group),
            true,
        );
        self.send(self.broadcast_destination(), &packet);
        // With a WINS server that was silent, try it again later: a refresh of a name it does
        // not know registers it.
        let (step, deadline) = if self.config.wins_server.is_some() {
            (
                Step::RefreshDue,
                Some(now + self.config.min_refresh_interval),
            )
        } else {
            (Step::Idle, None)
        };
        self.mark_registered(name, transaction_id, step, deadline);
    }

    fn mark_registered(
        &mut self,
        name: NetbiosName,
        transaction_id: u16,
        step: Step,
        deadline: Option<Instant>,
    ) {
        let Some(entry) = self.names.get_mut(&name) else {
            return;
        };
        let newly = entry.state != NameState::Registered;
        entry.state = NameState::Registered;
        self.set_step(name, transaction_id, step, deadline);
        if newly {
            self.events.push_back(NameEvent::Registered(name));
        }
    }

    /// The name was granted by WINS for `ttl` seconds: schedule a refresh at half of it, with
    /// a floor; a TTL of zero is infinite (RFC 1002 4.2.2) and needs none.
    fn registered_with_wins(&mut self, name: NetbiosName, ttl: u32, now: Instant) {
        let transaction_id = self.names.get(&name).map_or(0, |e| e.transaction_id);
        let deadline = self.refresh_deadline(ttl, now);
        let step = if deadline.is_some() {
            Step::RefreshDue
        } else {
            Step::Idle
        };
        self.mark_registered(name, transaction_id, step, deadline);
    }

    fn refresh_deadline(&self, ttl: u32, now: Instant) -> Option<Instant> {
        if ttl == 0 {
            return None;
        }
        let half = Duration::from_secs(u64::from(ttl)) / 2;
        now.checked_add(half.max(self.config.min_refresh_interval))
    }

    /// WINS said to challenge the owner and the owner did not confirm: the name is ours. Tell
    /// the server with an overwrite demand (RFC 1002 5.1.2, end-node challenge).
    fn claim_after_challenge(&mut self, name: NetbiosName, granted_ttl: u32, now: Instant) {
        let (Some(wins), Some(entry)) = (self.wins_destination(), self.names.get(&name)) else {
            return;
        };
        let packet = Packet::overwrite_demand(
            entry.transaction_id,
            self.qualified(name),
            self.config.nb_ttl_secs,
            self.own_entry(entry.group),
            false,
        );
        self.send(wins, &packet);
        self.registered_with_wins(name, granted_ttl, now);
    }

    fn conflict(&mut self, name: NetbiosName, owner: Ipv4Addr) {
        let Some(entry) = self.names.get_mut(&name) else {
            return;
        };
        if matches!(entry.state, NameState::Conflict | NameState::Releasing) {
            return;
        }
        entry.state = NameState::Conflict;
        entry.step = Step::Idle;
        entry.deadline = None;
        self.events.push_back(NameEvent::Conflict { name, owner });
    }

    fn on_registration_response(&mut self, from: SocketAddrV4, packet: &Packet, now: Instant) {
        let Some(record) = packet.answer() else {
            return;
        };
        if record.name.scope != self.config.scope {
            return;
        }
        let name = record.name.name;
        let Some(entry) = self.names.get(&name) else {
            return;
        };
        if entry.transaction_id != packet.header.transaction_id {
            return;
        }
        let (step, transaction_id, state) = (entry.step, entry.transaction_id, entry.state);
        let from_wins = self.config.wins_server == Some(*from.ip());
        let owner = record
            .addr_entries()
            .first()
            .map(|e| e.address)
            .filter(|address| !address.is_unspecified())
            .unwrap_or(*from.ip());
        let kind = packet.kind();
        match (step, kind) {
            (Step::WinsRegistration { .. } | Step::WinsWaitAfterWack, _) if !from_wins => {}
            (Step::WinsRegistration { .. } | Step::WinsWaitAfterWack, _) => match kind {
                PacketKind::PositiveNameRegistrationResponse => {
                    self.registered_with_wins(name, record.ttl, now);
                }
                PacketKind::WaitForAcknowledgement => {
                    let wait = Duration::from_secs(u64::from(record.ttl)).min(MAX_WACK_WAIT);
                    self.set_step(
                        name,
                        transaction_id,
                        Step::WinsWaitAfterWack,
                        Some(now + wait),
                    );
                }
                PacketKind::EndNodeChallengeRegistrationResponse
                    if owner == self.config.local_address =>
                {
                    self.registered_with_wins(name, record.ttl, now);
                }
                PacketKind::EndNodeChallengeRegistrationResponse => {
                    let transaction_id = self.allocate_transaction_id();
                    self.send_challenge_query(name, owner, transaction_id);
                    let step = Step::Challenge {
                        owner,
                        sent: 1,
                        granted_ttl: record.ttl,
                    };
                    let deadline = now + self.config.unicast.interval;
                    self.set_step(name, transaction_id, step, Some(deadline));
                }
                _ => self.conflict(name, owner),
            },
            (Step::Refreshing { .. }, _) if !from_wins => {}
            (Step::Refreshing { .. }, PacketKind::PositiveNameRegistrationResponse) => {
                self.registered_with_wins(name, record.ttl, now);
            }
            (Step::Refreshing { .. }, PacketKind::WaitForAcknowledgement) => {
                let wait = Duration::from_secs(u64::from(record.ttl)).min(MAX_WACK_WAIT);
                if let Some(entry) = self.names.get_mut(&name) {
                    entry.deadline = Some(now + wait);
                }
            }
            (Step::Refreshing { .. }, PacketKind::NegativeNameRegistrationResponse) => {
                self.conflict(name, owner);
            }
            // A defence of the name, during broadcast registration or arriving late (after the
            // last retry, or in answer to our overwrite demand).
            (
                Step::BroadcastRegistration { .. } | Step::Idle | Step::RefreshDue,
                PacketKind::NegativeNameRegistrationResponse,
            ) if state != NameState::Releasing => self.conflict(name, owner),
            _ => {}
        }
    }

    fn on_conflict_demand(&mut self, from: SocketAddrV4, packet: &Packet) {
        let Some(subject) = packet.subject() else {
            return;
        };
        if subject.scope != self.config.scope || !self.names.contains_key(&subject.name) {
            return;
        }
        self.conflict(subject.name, *from.ip());
    }

    /// Another node claims a name: object if it is one of our registered unique names
    /// (RFC 1002 5.1.1.4, [MS-NBTE] 3.1.5.1).
    fn defend(&mut self, from: SocketAddrV4, packet: &Packet) {
        let Some(question) = packet.question() else {
            return;
        };
        if question.name.scope != self.config.scope {
            return;
        }
        let name = question.name.name;
        let Some(entry) = self.names.get(&name) else {
            return;
        };
        if entry.group || entry.state != NameState::Registered || is_local_only(&name) {
            return;
        }
        let response = Packet::negative_registration_response(
            packet.header.transaction_id,
            question.name.clone(),
            0,
            self.own_entry(false),
            Rcode::ACT_ERR,
        );
        self.send(from, &response);
    }

    // ----- answering -----

    fn answer_name_query(&mut self, from: SocketAddrV4, packet: &Packet) {
        let Some(question) = packet.question() else {
            return;
        };
        if question.name.scope != self.config.scope {
            return;
        }
        let transaction_id = packet.header.transaction_id;
        let held = self
            .names
            .get(&question.name.name)
            .filter(|entry| entry.state == NameState::Registered);
        let response = match held {
            Some(entry) => Packet::positive_query_response(
                transaction_id,
                question.name.clone(),
                self.config.nb_ttl_secs,
                vec![self.own_entry(entry.group)],
                false,
            ),
            // End nodes stay silent on broadcast queries for names they lack (RFC 1002
            // 5.1.1.2) but say no to unicast ones ([MS-NBTE] 4.1).
            None if packet.header.broadcast => return,
            None => Packet::negative_query_response(
                transaction_id,
                question.name.clone(),
                Rcode::NAM_ERR,
            ),
        };
        self.send(from, &response);
    }

    /// Answers unicast node status requests for `*` or any name in our table. Broadcast ones
    /// are ignored so that a wildcard status broadcast does not start a storm.
    fn answer_node_status(&mut self, from: SocketAddrV4, packet: &Packet) {
        let Some(question) = packet.question() else {
            return;
        };
        if packet.header.broadcast || question.name.scope != self.config.scope {
            return;
        }
        let asked = question.name.name;
        if !asked.is_star() && !self.names.contains_key(&asked) {
            return;
        }
        let node_type = self.config.node_type;
        let names = self
            .names
            .iter()
            .filter_map(|(name, entry)| {
                let flags = NameFlags::active(entry.group, node_type);
                let flags = match entry.state {
                    NameState::Registering => return None,
                    NameState::Registered => flags,
                    NameState::Conflict => flags.with_conflict(),
                    NameState::Releasing => flags.with_deregistering(),
                };
                Some(NodeName { name: *name, flags })
            })
            .collect::<Vec<_>>();
        // NUM_NAMES is one byte: when there are more names than fit, list the machine's own
        // names (group names, workstation and server names) before messaging names.
        let mut names = names;
        if names.len() > MAX_NODE_STATUS_NAMES {
            names.sort_by_key(|n| !n.flags.is_group() && n.name.suffix() == 0x03);
            names.truncate(MAX_NODE_STATUS_NAMES);
        }
        let status = NodeStatus {
            names,
            statistics: Statistics::with_unit_id(self.config.unit_id),
        };
        let response = Packet::node_status_response(
            packet.header.transaction_id,
            question.name.clone(),
            status,
        );
        self.send(from, &response);
    }

    // ----- resolution -----

    fn send_query(&mut self, id: QueryId, now: Instant) {
        let Some(query) = self.queries.get(&id) else {
            return;
        };
        let transaction_id = query.transaction_id;
        let (destination, packet, interval) = match &query.target {
            QueryTarget::Name { name, via_wins, .. } => {
                let qualified = self.qualified(*name);
                match self.wins_destination().filter(|_| *via_wins) {
                    Some(wins) => (
                        wins,
                        Packet::name_query(transaction_id, qualified, false),
                        self.config.unicast.interval,
                    ),
                    None => (
                        self.broadcast_destination(),
                        Packet::name_query(transaction_id, qualified, true),
                        self.config.query_broadcast.interval,
                    ),
                }
            }
            QueryTarget::NodeStatus { address } => (
                SocketAddrV4::new(*address, self.config.peer_port),
                Packet::node_status_request(transaction_id, self.qualified(NetbiosName::star())),
                self.config.unicast.interval,
            ),
        };
        self.send(destination, &packet);
        if let Some(query) = self.queries.get_mut(&id) {
            query.sent += 1;
            query.deadline = now + interval;
        }
    }

    fn query_timeout(&mut self, id: QueryId, now: Instant) {
        let Some(query) = self.queries.get(&id) else {
            return;
        };
        let sent = query.sent;
        match &query.target {
            QueryTarget::Name { via_wins: true, .. } => {
                if sent < self.config.unicast.sends() {
                    self.send_query(id, now);
                } else {
                    self.switch_query_to_broadcast(id, now);
                }
            }
            QueryTarget::Name { found, .. } => {
                if sent < self.config.query_broadcast.sends() {
                    self.send_query(id, now);
                } else {
                    let result = if found.is_empty() {
                        Err(QueryError::NotFound)
                    } else {
                        Ok(found.clone())
                    };
                    self.finish_name_query(id, result);
                }
            }
            QueryTarget::NodeStatus { address } => {
                if sent < self.config.unicast.sends() {
                    self.send_query(id, now);
                } else {
                    let address = *address;
                    self.queries.remove(&id);
                    self.events.push_back(NameEvent::NodeStatus {
                        id,
                        address,
                        result: Err(QueryError::NoResponse),
                    });
                }
            }
        }
    }

    fn switch_query_to_broadcast(&mut self, id: QueryId, now: Instant) {
        let transaction_id = self.allocate_transaction_id();
        if let Some(query) = self.queries.get_mut(&id) {
            if let QueryTarget::Name { via_wins, .. } = &mut query.target {
                *via_wins = false;
            }
            query.transaction_id = transaction_id;
            query.sent = 0;
        }
        self.send_query(id, now);
    }

    fn finish_name_query(&mut self, id: QueryId, result: Result<Vec<Ipv4Addr>, QueryError>) {
        if let Some(PendingQuery {
            target: QueryTarget::Name { name, .. },
            ..
        }) = self.queries.remove(&id)
        {
            self.events
                .push_back(NameEvent::QueryResult { id, name, result });
        }
    }

    fn on_query_response(&mut self, from: SocketAddrV4, packet: &Packet, now: Instant) {
        let Some(record) = packet.answer() else {
            return;
        };
        if record.name.scope != self.config.scope {
            return;
        }
        let transaction_id = packet.header.transaction_id;
        let positive = packet.kind() == PacketKind::PositiveNameQueryResponse;

        // The answer to an end-node challenge we are running for one of our names.
        if let Some(entry) = self.names.get(&record.name.name) {
            if let Step::Challenge {
                owner, granted_ttl, ..
            } = entry.step
            {
                if entry.transaction_id == transaction_id && *from.ip() == owner {
                    if positive {
                        self.conflict(record.name.name, owner);
                    } else {
                        self.claim_after_challenge(record.name.name, granted_ttl, now);
                    }
                    return;
                }
            }
        }

        let Some((id, via_wins)) =
            self.queries
                .iter()
                .find_map(|(id, query)| match &query.target {
                    QueryTarget::Name { name, via_wins, .. }
                        if query.transaction_id == transaction_id && *name == record.name.name =>
                    {
                        Some((*id, *via_wins))
                    }
                    _ => None,
                })
        else {
            return;
        };
        if via_wins {
            if self.config.wins_server != Some(*from.ip()) {
                return;
            }
            if positive {
                let addresses = unique_addresses(record.addr_entries());
                self.finish_name_query(id, Ok(addresses));
            } else if packet.header.rcode == Rcode::NAM_ERR {
                self.finish_name_query(id, Err(QueryError::NotFound));
            } else {
                // The server could not answer; ask the segment.
                self.switch_query_to_broadcast(id, now);
            }
            return;
        }
        if !positive {
            return;
        }
        let Some(PendingQuery {
            target: QueryTarget::Name { found, .. },
            ..
        }) = self.queries.get_mut(&id)
        else {
            return;
        };
        for entry in record.addr_entries() {
            if !found.contains(&entry.address) {
                found.push(entry.address);
            }
        }
        // A unique name has one holder: no need to wait for more answers.
        let unique = record.addr_entries().iter().any(|e| !e.flags.is_group());
        if unique && !found.is_empty() {
            let result = Ok(found.clone());
            self.finish_name_query(id, result);
        }
    }

    fn on_node_status_response(&mut self, from: SocketAddrV4, packet: &Packet) {
        let transaction_id = packet.header.transaction_id;
        let Some(id) = self
            .queries
            .iter()
            .find_map(|(id, query)| match query.target {
                QueryTarget::NodeStatus { address }
                    if address == *from.ip() && query.transaction_id == transaction_id =>
                {
                    Some(*id)
                }
                _ => None,
            })
        else {
            return;
        };
        self.queries.remove(&id);
        let result = packet
            .node_status()
            .cloned()
            .ok_or(QueryError::InvalidResponse);
        self.events.push_back(NameEvent::NodeStatus {
            id,
            address: *from.ip(),
            result,
        });
    }

    // ----- release -----

    fn release_timeout(&mut self, name: NetbiosName, now: Instant) {
        let Some(entry) = self.names.get(&name) else {
            return;
        };
        let Step::Releasing {
            mut broadcasts_sent,
            mut next_broadcast,
            mut wins_sent,
            mut next_wins,
        } = entry.step
        else {
            return;
        };
        let transaction_id = entry.transaction_id;
        let packet = Packet::release_request(
            transaction_id,
            self.qualified(name),
            self.own_entry(entry.group),
            true,
        );
        if next_broadcast.is_some_and(|at| at <= now) {
            self.send(self.broadcast_destination(), &packet);
            broadcasts_sent += 1;
            next_broadcast = (broadcasts_sent < self.config.registration_broadcast.sends())
                .then(|| now + self.config.registration_broadcast.interval);
        }
        if next_wins.is_some_and(|at| at <= now) {
            if wins_sent < self.config.unicast.sends() {
                if let Some(wins) = self.wins_destination() {
                    let mut unicast = packet;
                    unicast.header.broadcast = false;
                    self.send(wins, &unicast);
                }
                wins_sent += 1;
                next_wins = Some(now + self.config.unicast.interval);
            } else {
                next_wins = None;
            }
        }
        if let Some(entry) = self.names.get_mut(&name) {
            entry.step = Step::Releasing {
                broadcasts_sent,
                next_broadcast,
                wins_sent,
                next_wins,
            };
        }
        self.finish_release_if_done(&name);
    }

    fn on_release_response(&mut self, from: SocketAddrV4, packet: &Packet) {
        if self.config.wins_server != Some(*from.ip()) {
            return;
        }
        let Some(subject) = packet.subject() else {
            return;
        };
        let name = subject.name;
        let Some(entry) = self.names.get_mut(&name) else {
            return;
        };
        if entry.transaction_id != packet.header.transaction_id {
            return;
        }
        if let Step::Releasing { next_wins, .. } = &mut entry.step {
            *next_wins = None;
        }
        self.finish_release_if_done(&name);
    }

    /// Removes a releasing name once nothing is left to send, or else points its deadline at
    /// the next send.
    fn finish_release_if_done(&mut self, name: &NetbiosName) {
        let Some(entry) = self.names.get_mut(name) else {
            return;
        };
        let Step::Releasing {
            next_broadcast,
            next_wins,
            ..
        } = entry.step
        else {
            return;
        };
        entry.deadline = match (next_broadcast, next_wins) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if entry.deadline.is_none() {
            self.names.remove(name);
            self.events.push_back(NameEvent::Released(*name));
        }
    }

    // ----- small utilities -----

    fn allocate_transaction_id(&mut self) -> u16 {
        let id = self.next_transaction_id;
        self.next_transaction_id = self.next_transaction_id.wrapping_add(1);
        id
    }

    fn allocate_query_id(&mut self) -> QueryId {
        let id = QueryId(self.next_query_id);
        self.next_query_id += 1;
        id
    }

    fn qualified(&self, name: NetbiosName) -> QualifiedName {
        QualifiedName::with_scope(name, self.config.scope.clone())
    }

    fn own_entry(&self, group: bool) -> AddrEntry {
        AddrEntry {
            flags: NbFlags::new(group, self.config.node_type),
            address: self.config.local_address,
        }
    }

    fn broadcast_destination(&self) -> SocketAddrV4 {
        SocketAddrV4::new(self.config.broadcast_address, self.config.peer_port)
    }

    fn wins_destination(&self) -> Option<SocketAddrV4> {
        self.config
            .wins_server
            .map(|wins| SocketAddrV4::new(wins, self.config.peer_port))
    }

    fn send(&mut self, destination: SocketAddrV4, packet: &Packet) {
        self.transmits.push_back(Transmit {
            destination,
            payload: packet.encode(),
        });
    }
}

/// Names starting with `*` are registered locally and never defended on the network
/// ([MS-NBTE] 3.1.4.1).
fn is_local_only(name: &NetbiosName) -> bool {
    name.as_bytes()[0] == b'*'
}

fn unique_addresses(entries: &[AddrEntry]) -> Vec<Ipv4Addr> {
    let mut addresses = Vec::with_capacity(entries.len());
    for entry in entries {
        if !addresses.contains(&entry.address) {
            addresses.push(entry.address);
        }
    }
    addresses
}
