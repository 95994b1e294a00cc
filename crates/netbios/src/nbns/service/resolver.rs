//! Our own resolutions as a state machine: name queries (WINS first when configured, then
//! broadcast, as an H-node resolves) and node status requests to one host.
//!
//! Each resolution is a [`PendingQuery`] with its own TRN_ID, send count and deadline. The
//! resolver sends and reports through the shared [`Node`]; it knows nothing of the name table
//! except what the service tells it when a query starts.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Instant;

use super::{NameEvent, Node, QueryError, QueryId};
use crate::name::NetbiosName;
use crate::nbns::packet::{AddrEntry, Packet, PacketKind, Rcode, ResourceRecord};

/// What a resolution is after.
#[derive(Debug, Clone)]
enum QueryTarget {
    /// The holders of a name.
    Name {
        name: NetbiosName,
        /// Whether the question is with the WINS server rather than the segment.
        via_wins: bool,
        /// Holders heard from so far, in the order they answered.
        found: Vec<Ipv4Addr>,
    },
    /// The node status of one host.
    NodeStatus { address: Ipv4Addr },
}

/// One resolution in flight.
#[derive(Debug, Clone)]
struct PendingQuery {
    target: QueryTarget,
    /// TRN_ID of its requests; responses must echo it.
    transaction_id: u16,
    /// Requests sent with this TRN_ID.
    sent: u32,
    deadline: Instant,
}

/// Every resolution in flight.
#[derive(Debug)]
pub(super) struct Resolver {
    queries: BTreeMap<QueryId, PendingQuery>,
    /// The queries' deadlines, so that finding the next one and the due ones does not walk
    /// every query. Kept in step by [`Resolver::insert`], [`Resolver::set_deadline`] and
    /// [`Resolver::remove`], the only ways queries come, change deadline and go.
    timers: BTreeSet<(Instant, QueryId)>,
    next_query_id: u64,
}

impl Resolver {
    pub(super) fn new() -> Self {
        Self {
            queries: BTreeMap::new(),
            timers: BTreeSet::new(),
            next_query_id: 1,
        }
    }

    /// Whether no resolution is in flight.
    pub(super) fn is_idle(&self) -> bool {
        self.queries.is_empty()
    }

    /// The earliest deadline of the resolutions in flight.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(deadline, _)| *deadline)
    }

    /// Starts resolving `name`. `held_as_group` says whether we hold the name ourselves
    /// (registered), and as which kind: a unique name we hold resolves to our own address at
    /// once; a group name we hold counts us among its holders.
    pub(super) fn query(
        &mut self,
        name: NetbiosName,
        held_as_group: Option<bool>,
        node: &mut Node,
        now: Instant,
    ) -> QueryId {
        let id = self.allocate_query_id();
        let mut found = Vec::new();
        match held_as_group {
            Some(false) => {
                node.events.push_back(NameEvent::QueryResult {
                    id,
                    name,
                    result: Ok(vec![node.config.local_address]),
                });
                return id;
            }
            Some(true) => found.push(node.config.local_address),
            None => {}
        }
        let via_wins = node.config.wins_server.is_some();
        let transaction_id = node.allocate_transaction_id();
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
        self.insert(id, query);
        self.send_query(id, node, now);
        id
    }

    /// Asks the host at `address` for its node status.
    pub(super) fn node_status(
        &mut self,
        address: Ipv4Addr,
        node: &mut Node,
        now: Instant,
    ) -> QueryId {
        let id = self.allocate_query_id();
        let transaction_id = node.allocate_transaction_id();
        self.insert(
            id,
            PendingQuery {
                target: QueryTarget::NodeStatus { address },
                transaction_id,
                sent: 0,
                deadline: now,
            },
        );
        self.send_query(id, node, now);
        id
    }

    /// Runs the timers of the resolutions due at `now`.
    pub(super) fn handle_timeout(&mut self, node: &mut Node, now: Instant) {
        let mut due: Vec<QueryId> = self
            .timers
            .iter()
            .take_while(|(deadline, _)| *deadline <= now)
            .map(|(_, id)| *id)
            .collect();
        // Due queries run in the order they were started, whatever their deadlines.
        due.sort_unstable();
        for id in due {
            self.query_timeout(id, node, now);
        }
    }

    /// A name query response in our scope that is not the answer to one of our names'
    /// challenges: the answer to one of our name queries, if its TRN_ID and name match one.
    pub(super) fn on_query_response(
        &mut self,
        node: &mut Node,
        from: SocketAddrV4,
        packet: &Packet,
        record: &ResourceRecord,
        now: Instant,
    ) {
        let transaction_id = packet.header.transaction_id;
        let positive = packet.kind() == PacketKind::PositiveNameQueryResponse;
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
            if !node.is_from_wins(from) {
                return;
            }
            if positive {
                let addresses = unique_addresses(record.addr_entries());
                self.finish_name_query(id, node, Ok(addresses));
            } else if packet.header.rcode == Rcode::NAM_ERR {
                self.finish_name_query(id, node, Err(QueryError::NotFound));
            } else {
                // The server could not answer; ask the segment.
                self.switch_query_to_broadcast(id, node, now);
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
            self.finish_name_query(id, node, result);
        }
    }

    /// A node status response: the answer to one of our node status requests, if it comes
    /// from the host asked and echoes the TRN_ID.
    pub(super) fn on_node_status_response(
        &mut self,
        node: &mut Node,
        from: SocketAddrV4,
        packet: &Packet,
    ) {
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
        self.remove(id);
        let result = packet
            .node_status()
            .cloned()
            .ok_or(QueryError::InvalidResponse);
        node.events.push_back(NameEvent::NodeStatus {
            id,
            address: *from.ip(),
            result,
        });
    }

    fn insert(&mut self, id: QueryId, query: PendingQuery) {
        let _replaced = self.remove(id);
        self.timers.insert((query.deadline, id));
        self.queries.insert(id, query);
    }

    fn set_deadline(&mut self, id: QueryId, deadline: Instant) {
        if let Some(query) = self.queries.get_mut(&id) {
            self.timers.remove(&(query.deadline, id));
            query.deadline = deadline;
            self.timers.insert((deadline, id));
        }
    }

    fn remove(&mut self, id: QueryId) -> Option<PendingQuery> {
        let query = self.queries.remove(&id)?;
        self.timers.remove(&(query.deadline, id));
        Some(query)
    }

    fn allocate_query_id(&mut self) -> QueryId {
        let id = QueryId(self.next_query_id);
        self.next_query_id += 1;
        id
    }

    fn send_query(&mut self, id: QueryId, node: &mut Node, now: Instant) {
        let Some(query) = self.queries.get_mut(&id) else {
            return;
        };
        let transaction_id = query.transaction_id;
        let config = &node.config;
        let (destination, packet, interval) = match &query.target {
            QueryTarget::Name { name, via_wins, .. } => {
                let qualified = node.qualified(*name);
                match node.wins_destination().filter(|_| *via_wins) {
                    Some(wins) => (
                        wins,
                        Packet::name_query(transaction_id, qualified, false),
                        config.unicast.interval,
                    ),
                    None => (
                        node.broadcast_destination(),
                        Packet::name_query(transaction_id, qualified, true),
                        config.query_broadcast.interval,
                    ),
                }
            }
            QueryTarget::NodeStatus { address } => (
                SocketAddrV4::new(*address, config.peer_port),
                Packet::node_status_request(transaction_id, node.qualified(NetbiosName::star())),
                config.unicast.interval,
            ),
        };
        query.sent += 1;
        node.send(destination, &packet);
        self.set_deadline(id, now + interval);
    }

    fn query_timeout(&mut self, id: QueryId, node: &mut Node, now: Instant) {
        let Some(query) = self.queries.get(&id) else {
            return;
        };
        let sent = query.sent;
        let config = &node.config;
        match &query.target {
            QueryTarget::Name { via_wins: true, .. } => {
                if sent < config.unicast.sends() {
                    self.send_query(id, node, now);
                } else {
                    self.switch_query_to_broadcast(id, node, now);
                }
            }
            QueryTarget::Name { found, .. } => {
                if sent < config.query_broadcast.sends() {
                    self.send_query(id, node, now);
                } else {
                    let result = if found.is_empty() {
                        Err(QueryError::NotFound)
                    } else {
                        Ok(found.clone())
                    };
                    self.finish_name_query(id, node, result);
                }
            }
            QueryTarget::NodeStatus { address } => {
                if sent < config.unicast.sends() {
                    self.send_query(id, node, now);
                } else {
                    let address = *address;
                    self.remove(id);
                    node.events.push_back(NameEvent::NodeStatus {
                        id,
                        address,
                        result: Err(QueryError::NoResponse),
                    });
                }
            }
        }
    }

    /// Moves a name query from the WINS server to the segment, with a fresh TRN_ID.
    fn switch_query_to_broadcast(&mut self, id: QueryId, node: &mut Node, now: Instant) {
        let transaction_id = node.allocate_transaction_id();
        if let Some(query) = self.queries.get_mut(&id) {
            if let QueryTarget::Name { via_wins, .. } = &mut query.target {
                *via_wins = false;
            }
            query.transaction_id = transaction_id;
            query.sent = 0;
        }
        self.send_query(id, node, now);
    }

    fn finish_name_query(
        &mut self,
        id: QueryId,
        node: &mut Node,
        result: Result<Vec<Ipv4Addr>, QueryError>,
    ) {
        if let Some(PendingQuery {
            target: QueryTarget::Name { name, .. },
            ..
        }) = self.remove(id)
        {
            node.events
                .push_back(NameEvent::QueryResult { id, name, result });
        }
    }
}

/// The addresses of `entries`, without duplicates, in order.
fn unique_addresses(entries: &[AddrEntry]) -> Vec<Ipv4Addr> {
    let mut addresses = Vec::with_capacity(entries.len());
    for entry in entries {
        if !addresses.contains(&entry.address) {
            addresses.push(entry.address);
        }
    }
    addresses
}
