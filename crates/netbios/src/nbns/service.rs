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
//!   names we lack (never to broadcast queries), and node status responses to unicast
//!   requests, listing the names registered, in conflict (CNF) or being released (DRG), but
//!   not those still being registered, and at most [`MAX_NODE_STATUS_NAMES`] of them.
//! - Resolution: WINS first when configured, then broadcast; node status of a given host.
//!
//! The parts are modules of their own: [`config`] holds the configuration; `local_name` the
//! state machine of one name of the table (registration, refresh, conflict, release), with its
//! own timer and response handling; `resolver` the state machine of our own queries; and
//! `responder` the answers to other nodes' queries and the defence of our names. This module
//! owns the table and routes each datagram and timer to the part it concerns.
//!
//! [`BCAST_REQ_RETRY_COUNT`]: super::BCAST_REQ_RETRY_COUNT
//! [`MAX_NODE_STATUS_NAMES`]: super::packet::MAX_NODE_STATUS_NAMES

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

use super::packet::{AddrEntry, NbFlags, NodeStatus, Packet, PacketKind};
use super::MAX_LOCAL_NAMES;
use crate::codec::DecodeError;
use crate::name::{NetbiosName, QualifiedName};

pub mod config;
mod local_name;
mod resolver;
mod responder;

pub use config::{NameServiceConfig, RetryPolicy};

use local_name::{is_local_only, Fate, LocalName};
use resolver::Resolver;

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

/// Our name table, in name order.
type NameTable = BTreeMap<NetbiosName, LocalName>;

/// This node as every part of the service sees it: the configuration, the transaction id
/// counter, and the queues of datagrams to send and events to report that all parts fill.
#[derive(Debug)]
struct Node {
    config: NameServiceConfig,
    next_transaction_id: u16,
    transmits: VecDeque<Transmit>,
    events: VecDeque<NameEvent>,
}

impl Node {
    fn allocate_transaction_id(&mut self) -> u16 {
        let id = self.next_transaction_id;
        self.next_transaction_id = self.next_transaction_id.wrapping_add(1);
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

    fn is_from_wins(&self, from: SocketAddrV4) -> bool {
        self.config.wins_server == Some(*from.ip())
    }

    fn send(&mut self, destination: SocketAddrV4, packet: &Packet) {
        self.transmits.push_back(Transmit {
            destination,
            payload: packet.encode(),
        });
    }
}

/// The name service of one IPv4 interface. See the module documentation.
#[derive(Debug)]
pub struct NameService {
    node: Node,
    names: NameTable,
    /// The running timers of the names, by deadline, so that finding the next one and the
    /// due ones does not walk the whole table. Kept in step with the entries' deadlines by
    /// [`NameService::insert_name`] and [`NameService::update_name`], the only ways entries
    /// enter the table or change.
    name_timers: BTreeSet<(Instant, NetbiosName)>,
    resolver: Resolver,
}

impl NameService {
    /// A service with an empty name table.
    pub fn new(config: NameServiceConfig) -> Self {
        Self {
            node: Node {
                next_transaction_id: config.first_transaction_id,
                config,
                transmits: VecDeque::new(),
                events: VecDeque::new(),
            },
            names: BTreeMap::new(),
            name_timers: BTreeSet::new(),
            resolver: Resolver::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &NameServiceConfig {
        &self.node.config
    }

    /// Every name in the table, in name order.
    pub fn names(&self) -> Vec<LocalNameInfo> {
        self.names
            .iter()
            .map(|(name, entry)| LocalNameInfo {
                name: *name,
                group: entry.group(),
                state: entry.state(),
            })
            .collect()
    }

    /// The state of `name`, if it is in the table.
    pub fn name_state(&self, name: &NetbiosName) -> Option<NameState> {
        self.names.get(name).map(LocalName::state)
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.node.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<NameEvent> {
        self.node.events.pop_front()
    }

    /// When [`NameService::handle_timeout`] should next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let names = self.name_timers.first().map(|(deadline, _)| *deadline);
        names.into_iter().chain(self.resolver.poll_timeout()).min()
    }

    /// Whether nothing is pending but refreshes: no registration, release or query in flight.
    /// A daemon shutting down after [`NameService::release_all`] waits for this.
    pub fn is_idle(&self) -> bool {
        self.resolver.is_idle() && self.names.values().all(LocalName::is_settled)
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
            if entry.group() != group {
                return Err(RegisterError::KindMismatch {
                    group: entry.group(),
                });
            }
            if matches!(
                entry.state(),
                NameState::Registering | NameState::Registered
            ) {
                return Ok(());
            }
        } else if self.names.len() >= MAX_LOCAL_NAMES {
            return Err(RegisterError::TableFull {
                limit: MAX_LOCAL_NAMES,
            });
        }
        if is_local_only(&name) {
            self.insert_name(name, LocalName::local_only(name, group));
            self.node.events.push_back(NameEvent::Registered(name));
            return Ok(());
        }
        let entry = LocalName::claim(name, group, &mut self.node, now);
        self.insert_name(name, entry);
        Ok(())
    }

    /// Releases `name`: broadcasts release requests (and sends one to WINS, if configured)
    /// and then removes it, with a [`NameEvent::Released`]. Names never acquired (registering,
    /// in conflict, local-only) are removed at once. Returns whether the name was in the table.
    pub fn release(&mut self, name: &NetbiosName, now: Instant) -> bool {
        self.update_name(name, |entry, node| entry.release(node, now))
            .is_some()
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
        let held_as_group = self
            .names
            .get(&name)
            .filter(|entry| entry.state() == NameState::Registered)
            .map(LocalName::group);
        self.resolver
            .query(name, held_as_group, &mut self.node, now)
    }

    /// Asks the host at `address` for its names (what `nbtstat -A` does). The answer comes as
    /// [`NameEvent::NodeStatus`] with the returned id.
    pub fn node_status(&mut self, address: Ipv4Addr, now: Instant) -> QueryId {
        self.resolver.node_status(address, &mut self.node, now)
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
        let config = &self.node.config;
        if from == SocketAddrV4::new(config.local_address, config.local_port) {
            return Ok(());
        }
        let packet = Packet::decode(datagram)?;
        let (names, node) = (&self.names, &mut self.node);
        match packet.kind() {
            PacketKind::NameQueryRequest => {
                responder::answer_name_query(names, node, from, &packet)
            }
            PacketKind::NodeStatusRequest => {
                responder::answer_node_status(names, node, from, &packet);
            }
            PacketKind::NameRegistrationRequest
            | PacketKind::NameOverwriteDemand
            | PacketKind::MultihomedNameRegistrationRequest => {
                responder::defend(names, node, from, &packet);
            }
            PacketKind::PositiveNameQueryResponse | PacketKind::NegativeNameQueryResponse => {
                self.on_query_response(from, &packet, now);
            }
            PacketKind::NodeStatusResponse => {
                self.resolver
                    .on_node_status_response(&mut self.node, from, &packet);
            }
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
        let mut due_names: Vec<NetbiosName> = self
            .name_timers
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .map(|(_, name)| *name)
            .collect();
        // Due names run in name order, whatever their deadlines, so that what they send and
        // the transaction ids they take do not depend on how close together they fell due.
        due_names.sort_unstable();
        for name in due_names {
            self.update_name(&name, |entry, node| entry.handle_timeout(node, now));
        }
        self.resolver.handle_timeout(&mut self.node, now);
    }

    /// Puts `entry` in the table as `name`, in place of any entry it had, with its timer.
    fn insert_name(&mut self, name: NetbiosName, entry: LocalName) {
        let deadline = entry.deadline();
        let old_deadline = self
            .names
            .insert(name, entry)
            .and_then(|old| old.deadline());
        self.move_name_timer(name, old_deadline, deadline);
    }

    /// Hands `name`'s entry, if there is one, to `input`, and removes the entry with a
    /// [`NameEvent::Released`] if the input leaves it released. Every input a name's state
    /// machine takes goes through here, which keeps its timer in step. Returns `None` if the
    /// name is not in the table.
    fn update_name(
        &mut self,
        name: &NetbiosName,
        input: impl FnOnce(&mut LocalName, &mut Node) -> Fate,
    ) -> Option<Fate> {
        let entry = self.names.get_mut(name)?;
        let before = entry.deadline();
        let fate = input(entry, &mut self.node);
        let after = match fate {
            Fate::Kept => entry.deadline(),
            Fate::Released => {
                self.names.remove(name);
                self.node.events.push_back(NameEvent::Released(*name));
                None
            }
        };
        self.move_name_timer(*name, before, after);
        Some(fate)
    }

    fn move_name_timer(&mut self, name: NetbiosName, from: Option<Instant>, to: Option<Instant>) {
        if from == to {
            return;
        }
        if let Some(deadline) = from {
            self.name_timers.remove(&(deadline, name));
        }
        if let Some(deadline) = to {
            self.name_timers.insert((deadline, name));
        }
    }

    /// A name query response: the answer to an end-node challenge one of our names is
    /// running, or else to one of our queries.
    fn on_query_response(&mut self, from: SocketAddrV4, packet: &Packet, now: Instant) {
        let Some(record) = packet.answer() else {
            return;
        };
        if record.name.scope != self.node.config.scope {
            return;
        }
        let transaction_id = packet.header.transaction_id;
        let positive = packet.kind() == PacketKind::PositiveNameQueryResponse;
        let mut challenge_answered = false;
        self.update_name(&record.name.name, |entry, node| {
            challenge_answered =
                entry.on_challenge_answer(node, from, transaction_id, positive, now);
            Fate::Kept
        });
        if !challenge_answered {
            self.resolver
                .on_query_response(&mut self.node, from, packet, record, now);
        }
    }

    fn on_registration_response(&mut self, from: SocketAddrV4, packet: &Packet, now: Instant) {
        let Some(record) = packet.answer() else {
            return;
        };
        if record.name.scope != self.node.config.scope {
            return;
        }
        self.update_name(&record.name.name, |entry, node| {
            entry.on_registration_response(node, from, packet, record, now);
            Fate::Kept
        });
    }

    fn on_conflict_demand(&mut self, from: SocketAddrV4, packet: &Packet) {
        let Some(subject) = packet.subject() else {
            return;
        };
        if subject.scope != self.node.config.scope {
            return;
        }
        self.update_name(&subject.name, |entry, node| {
            entry.conflict(node, *from.ip());
            Fate::Kept
        });
    }

    fn on_release_response(&mut self, from: SocketAddrV4, packet: &Packet) {
        if !self.node.is_from_wins(from) {
            return;
        }
        let Some(subject) = packet.subject() else {
            return;
        };
        self.update_name(&subject.name, |entry, _| entry.on_release_response(packet));
    }
}
