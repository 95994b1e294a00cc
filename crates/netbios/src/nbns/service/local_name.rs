//! One name of our table as a state machine of its own: registration (broadcast, or with a
//! WINS server including its WACKs and end-node challenges), refresh, conflict and release.
//!
//! A [`LocalName`] takes its inputs (its timer, the responses addressed to it, a conflict
//! demand, a release) from the service, which looks it up in the table, and sends and reports
//! through the shared [`Node`]. It tells the service, as a [`Fate`], when it has been released
//! and is to leave the table.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};

use super::{NameEvent, NameServiceConfig, NameState, Node};
use crate::name::NetbiosName;
use crate::nbns::packet::{Packet, PacketKind, ResourceRecord};
use crate::nbns::{BROADCAST_REGISTRATION_TTL, MAX_WACK_WAIT};

/// Names starting with `*` are registered locally and never defended on the network
/// ([MS-NBTE] 3.1.4.1).
pub(super) fn is_local_only(name: &NetbiosName) -> bool {
    name.as_bytes()[0] == b'*'
}

/// Whether a name stays in the table after an input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub(super) enum Fate {
    /// It stays.
    Kept,
    /// It has been released: the service removes it and reports [`NameEvent::Released`].
    Released,
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

/// One name of our table.
#[derive(Debug, Clone)]
pub(super) struct LocalName {
    name: NetbiosName,
    group: bool,
    state: NameState,
    step: Step,
    /// TRN_ID of the last request sent for this name; responses must echo it.
    transaction_id: u16,
    deadline: Option<Instant>,
}

impl LocalName {
    /// A name starting with `*`: ours at once, without network traffic.
    pub(super) fn local_only(name: NetbiosName, group: bool) -> Self {
        Self {
            name,
            group,
            state: NameState::Registered,
            step: Step::Idle,
            transaction_id: 0,
            deadline: None,
        }
    }

    /// A name being claimed: the first registration request goes out now, to the WINS server
    /// if there is one, else as a broadcast.
    pub(super) fn claim(name: NetbiosName, group: bool, node: &mut Node, now: Instant) -> Self {
        let mut entry = Self {
            name,
            group,
            state: NameState::Registering,
            step: Step::Idle,
            transaction_id: 0,
            deadline: None,
        };
        if node.config.wins_server.is_some() {
            entry.start_wins_registration(node, now);
        } else {
            entry.start_broadcast_registration(node, now);
        }
        entry
    }

    /// Whether it is a group name.
    pub(super) fn group(&self) -> bool {
        self.group
    }

    /// Where it stands.
    pub(super) fn state(&self) -> NameState {
        self.state
    }

    /// When its timer runs out, if it has one running.
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether nothing is in flight for it but, perhaps, a refresh that is not due yet.
    pub(super) fn is_settled(&self) -> bool {
        matches!(self.step, Step::Idle | Step::RefreshDue)
    }

    /// Starts releasing the name. A name never acquired (registering, in conflict,
    /// local-only) is released at once; one being released already carries on.
    pub(super) fn release(&mut self, node: &mut Node, now: Instant) -> Fate {
        match self.state {
            NameState::Releasing => return Fate::Kept,
            NameState::Registered if !is_local_only(&self.name) => {}
            NameState::Registering | NameState::Conflict | NameState::Registered => {
                return Fate::Released;
            }
        }
        let transaction_id = node.allocate_transaction_id();
        let packet = Packet::release_request(
            transaction_id,
            node.qualified(self.name),
            node.own_entry(self.group),
            true,
        );
        node.send(node.broadcast_destination(), &packet);
        let next_broadcast = (node.config.registration_broadcast.sends() > 1)
            .then(|| now + node.config.registration_broadcast.interval);
        let (wins_sent, next_wins) = match node.wins_destination() {
            Some(wins) => {
                let mut unicast = packet;
                unicast.header.broadcast = false;
                node.send(wins, &unicast);
                (1, Some(now + node.config.unicast.interval))
            }
            None => (0, None),
        };
        self.state = NameState::Releasing;
        self.transaction_id = transaction_id;
        self.step = Step::Releasing {
            broadcasts_sent: 1,
            next_broadcast,
            wins_sent,
            next_wins,
        };
        self.finish_release_if_done()
    }

    /// The timer ran out: retransmit, fall back, give up or move on, as the step says.
    pub(super) fn handle_timeout(&mut self, node: &mut Node, now: Instant) -> Fate {
        let transaction_id = self.transaction_id;
        let config = &node.config;
        match self.step {
            Step::Idle => self.set_step(transaction_id, Step::Idle, None),
            Step::WinsRegistration { sent } if sent < config.unicast.sends() => {
                let deadline = now + config.unicast.interval;
                self.send_wins_registration(node, transaction_id);
                let step = Step::WinsRegistration { sent: sent + 1 };
                self.set_step(transaction_id, step, Some(deadline));
            }
            // The server never answered, or never followed its WACK up: H-node falls back to
            // broadcast (RFC 1001 15.2 for M/H behaviour, [MS-NBTE] 3.1.4.1).
            Step::WinsRegistration { .. } | Step::WinsWaitAfterWack => {
                self.start_broadcast_registration(node, now);
            }
            Step::Challenge {
                owner,
                sent,
                granted_ttl,
            } => {
                if sent < config.unicast.sends() {
                    let deadline = now + config.unicast.interval;
                    self.send_challenge_query(node, owner, transaction_id);
                    let step = Step::Challenge {
                        owner,
                        sent: sent + 1,
                        granted_ttl,
                    };
                    self.set_step(transaction_id, step, Some(deadline));
                } else {
                    self.claim_after_challenge(node, granted_ttl, now);
                }
            }
            Step::BroadcastRegistration { sent }
                if sent < config.registration_broadcast.sends() =>
            {
                let deadline = now + config.registration_broadcast.interval;
                self.send_broadcast_registration(node, transaction_id);
                let step = Step::BroadcastRegistration { sent: sent + 1 };
                self.set_step(transaction_id, step, Some(deadline));
            }
            Step::BroadcastRegistration { .. } => self.broadcast_registration_succeeded(node, now),
            Step::RefreshDue => {
                let transaction_id = node.allocate_transaction_id();
                self.send_refresh(node, transaction_id);
                let deadline = now + node.config.unicast.interval;
                self.set_step(transaction_id, Step::Refreshing { sent: 1 }, Some(deadline));
            }
            Step::Refreshing { sent } if sent < config.unicast.sends() => {
                let deadline = now + config.unicast.interval;
                self.send_refresh(node, transaction_id);
                let step = Step::Refreshing { sent: sent + 1 };
                self.set_step(transaction_id, step, Some(deadline));
            }
            // The server is down; keep the name and try again later.
            Step::Refreshing { .. } => {
                let deadline = now + config.min_refresh_interval;
                self.set_step(transaction_id, Step::RefreshDue, Some(deadline));
            }
            Step::Releasing { .. } => return self.release_timeout(node, now),
        }
        Fate::Kept
    }

    /// A registration response (positive, negative, WACK or end-node challenge) whose answer
    /// names this name, in our scope.
    pub(super) fn on_registration_response(
        &mut self,
        node: &mut Node,
        from: SocketAddrV4,
        packet: &Packet,
        record: &ResourceRecord,
        now: Instant,
    ) {
        if self.transaction_id != packet.header.transaction_id {
            return;
        }
        let (step, transaction_id, state) = (self.step, self.transaction_id, self.state);
        let from_wins = node.is_from_wins(from);
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
                    self.registered_with_wins(node, record.ttl, now);
                }
                PacketKind::WaitForAcknowledgement => {
                    let wait = Duration::from_secs(u64::from(record.ttl)).min(MAX_WACK_WAIT);
                    self.set_step(transaction_id, Step::WinsWaitAfterWack, Some(now + wait));
                }
                PacketKind::EndNodeChallengeRegistrationResponse
                    if owner == node.config.local_address =>
                {
                    self.registered_with_wins(node, record.ttl, now);
                }
                PacketKind::EndNodeChallengeRegistrationResponse => {
                    let transaction_id = node.allocate_transaction_id();
                    self.send_challenge_query(node, owner, transaction_id);
                    let step = Step::Challenge {
                        owner,
                        sent: 1,
                        granted_ttl: record.ttl,
                    };
                    let deadline = now + node.config.unicast.interval;
                    self.set_step(transaction_id, step, Some(deadline));
                }
                _ => self.conflict(node, owner),
            },
            (Step::Refreshing { .. }, _) if !from_wins => {}
            (Step::Refreshing { .. }, PacketKind::PositiveNameRegistrationResponse) => {
                self.registered_with_wins(node, record.ttl, now);
            }
            (Step::Refreshing { .. }, PacketKind::WaitForAcknowledgement) => {
                let wait = Duration::from_secs(u64::from(record.ttl)).min(MAX_WACK_WAIT);
                self.deadline = Some(now + wait);
            }
            (Step::Refreshing { .. }, PacketKind::NegativeNameRegistrationResponse) => {
                self.conflict(node, owner);
            }
            // A defence of the name, during broadcast registration or arriving late (after the
            // last retry, or in answer to our overwrite demand).
            (
                Step::BroadcastRegistration { .. } | Step::Idle | Step::RefreshDue,
                PacketKind::NegativeNameRegistrationResponse,
            ) if state != NameState::Releasing => self.conflict(node, owner),
            _ => {}
        }
    }

    /// A name query response for this name. If it answers the end-node challenge we are
    /// running (same TRN_ID, from the challenged owner), the owner confirming makes the name
    /// a conflict and its denial makes it ours. Returns whether it was such an answer.
    pub(super) fn on_challenge_answer(
        &mut self,
        node: &mut Node,
        from: SocketAddrV4,
        transaction_id: u16,
        positive: bool,
        now: Instant,
    ) -> bool {
        let Step::Challenge {
            owner, granted_ttl, ..
        } = self.step
        else {
            return false;
        };
        if self.transaction_id != transaction_id || *from.ip() != owner {
            return false;
        }
        if positive {
            self.conflict(node, owner);
        } else {
            self.claim_after_challenge(node, granted_ttl, now);
        }
        true
    }

    /// A release response from the WINS server for this name: no more release requests to
    /// it.
    pub(super) fn on_release_response(&mut self, packet: &Packet) -> Fate {
        if self.transaction_id != packet.header.transaction_id {
            return Fate::Kept;
        }
        if let Step::Releasing { next_wins, .. } = &mut self.step {
            *next_wins = None;
        }
        self.finish_release_if_done()
    }

    /// Another node holds the name (`owner`, as it says or as we saw it): stop using and
    /// defending it. Names in conflict or being released already stay as they are.
    pub(super) fn conflict(&mut self, node: &mut Node, owner: Ipv4Addr) {
        if matches!(self.state, NameState::Conflict | NameState::Releasing) {
            return;
        }
        self.state = NameState::Conflict;
        self.step = Step::Idle;
        self.deadline = None;
        node.events.push_back(NameEvent::Conflict {
            name: self.name,
            owner,
        });
    }

    // ----- registration -----

    fn start_wins_registration(&mut self, node: &mut Node, now: Instant) {
        let transaction_id = node.allocate_transaction_id();
        self.send_wins_registration(node, transaction_id);
        let deadline = now + node.config.unicast.interval;
        self.set_step(
            transaction_id,
            Step::WinsRegistration { sent: 1 },
            Some(deadline),
        );
    }

    fn send_wins_registration(&self, node: &mut Node, transaction_id: u16) {
        let Some(wins) = node.wins_destination() else {
            return;
        };
        let packet = Packet::registration_request(
            transaction_id,
            node.qualified(self.name),
            node.config.nb_ttl_secs,
            node.own_entry(self.group),
            false,
        );
        node.send(wins, &packet);
    }

    fn start_broadcast_registration(&mut self, node: &mut Node, now: Instant) {
        let transaction_id = node.allocate_transaction_id();
        self.send_broadcast_registration(node, transaction_id);
        let deadline = now + node.config.registration_broadcast.interval;
        self.set_step(
            transaction_id,
            Step::BroadcastRegistration { sent: 1 },
            Some(deadline),
        );
    }

    fn send_broadcast_registration(&self, node: &mut Node, transaction_id: u16) {
        let packet = Packet::registration_request(
            transaction_id,
            node.qualified(self.name),
            BROADCAST_REGISTRATION_TTL,
            node.own_entry(self.group),
            true,
        );
        node.send(node.broadcast_destination(), &packet);
    }

    fn send_refresh(&self, node: &mut Node, transaction_id: u16) {
        let Some(wins) = node.wins_destination() else {
            return;
        };
        let packet = Packet::refresh_request(
            transaction_id,
            node.qualified(self.name),
            node.config.nb_ttl_secs,
            node.own_entry(self.group),
        );
        node.send(wins, &packet);
    }

    fn send_challenge_query(&self, node: &mut Node, owner: Ipv4Addr, transaction_id: u16) {
        let packet = Packet::name_query(transaction_id, node.qualified(self.name), false);
        node.send(SocketAddrV4::new(owner, node.config.peer_port), &packet);
    }

    fn set_step(&mut self, transaction_id: u16, step: Step, deadline: Option<Instant>) {
        self.transaction_id = transaction_id;
        self.step = step;
        self.deadline = deadline;
    }

    /// Nobody objected to our broadcasts: the name is ours. Tell everyone with an overwrite
    /// demand (RFC 1002 5.1.1.1), keeping the TRN_ID so that a late objection still counts.
    fn broadcast_registration_succeeded(&mut self, node: &mut Node, now: Instant) {
        let transaction_id = self.transaction_id;
        let packet = Packet::overwrite_demand(
            transaction_id,
            node.qualified(self.name),
            BROADCAST_REGISTRATION_TTL,
            node.own_entry(self.group),
            true,
        );
        node.send(node.broadcast_destination(), &packet);
        // With a WINS server that was silent, try it again later: a refresh of a name it does
        // not know registers it.
        let (step, deadline) = if node.config.wins_server.is_some() {
            (
                Step::RefreshDue,
                Some(now + node.config.min_refresh_interval),
            )
        } else {
            (Step::Idle, None)
        };
        self.mark_registered(node, transaction_id, step, deadline);
    }

    fn mark_registered(
        &mut self,
        node: &mut Node,
        transaction_id: u16,
        step: Step,
        deadline: Option<Instant>,
    ) {
        let newly = self.state != NameState::Registered;
        self.state = NameState::Registered;
        self.set_step(transaction_id, step, deadline);
        if newly {
            node.events.push_back(NameEvent::Registered(self.name));
        }
    }

    /// The name was granted by WINS for `ttl` seconds: schedule a refresh at half of it, with
    /// a floor; a TTL of zero is infinite (RFC 1002 4.2.2) and needs none.
    fn registered_with_wins(&mut self, node: &mut Node, ttl: u32, now: Instant) {
        let deadline = refresh_deadline(&node.config, ttl, now);
        let step = if deadline.is_some() {
            Step::RefreshDue
        } else {
            Step::Idle
        };
        self.mark_registered(node, self.transaction_id, step, deadline);
    }

    /// WINS said to challenge the owner and the owner did not confirm: the name is ours. Tell
    /// the server with an overwrite demand (RFC 1002 5.1.2, end-node challenge).
    fn claim_after_challenge(&mut self, node: &mut Node, granted_ttl: u32, now: Instant) {
        let Some(wins) = node.wins_destination() else {
            return;
        };
        let packet = Packet::overwrite_demand(
            self.transaction_id,
            node.qualified(self.name),
            node.config.nb_ttl_secs,
            node.own_entry(self.group),
            false,
        );
        node.send(wins, &packet);
        self.registered_with_wins(node, granted_ttl, now);
    }

    // ----- release -----

    fn release_timeout(&mut self, node: &mut Node, now: Instant) -> Fate {
        let Step::Releasing {
            mut broadcasts_sent,
            mut next_broadcast,
            mut wins_sent,
            mut next_wins,
        } = self.step
        else {
            return Fate::Kept;
        };
        let packet = Packet::release_request(
            self.transaction_id,
            node.qualified(self.name),
            node.own_entry(self.group),
            true,
        );
        let config = &node.config;
        let (broadcast_policy, unicast_policy) = (config.registration_broadcast, config.unicast);
        if next_broadcast.is_some_and(|at| at <= now) {
            node.send(node.broadcast_destination(), &packet);
            broadcasts_sent += 1;
            next_broadcast = (broadcasts_sent < broadcast_policy.sends())
                .then(|| now + broadcast_policy.interval);
        }
        if next_wins.is_some_and(|at| at <= now) {
            if wins_sent < unicast_policy.sends() {
                if let Some(wins) = node.wins_destination() {
                    let mut unicast = packet;
                    unicast.header.broadcast = false;
                    node.send(wins, &unicast);
                }
                wins_sent += 1;
                next_wins = Some(now + unicast_policy.interval);
            } else {
                next_wins = None;
            }
        }
        self.step = Step::Releasing {
            broadcasts_sent,
            next_broadcast,
            wins_sent,
            next_wins,
        };
        self.finish_release_if_done()
    }

    /// A releasing name is released once nothing is left to send; until then its deadline
    /// points at the next send.
    fn finish_release_if_done(&mut self) -> Fate {
        let Step::Releasing {
            next_broadcast,
            next_wins,
            ..
        } = self.step
        else {
            return Fate::Kept;
        };
        self.deadline = match (next_broadcast, next_wins) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if self.deadline.is_none() {
            Fate::Released
        } else {
            Fate::Kept
        }
    }
}

/// When to refresh a name WINS granted for `ttl` seconds: at half the TTL, but no sooner than
/// the configured floor; never for a TTL of zero, which is infinite (RFC 1002 4.2.2).
fn refresh_deadline(config: &NameServiceConfig, ttl: u32, now: Instant) -> Option<Instant> {
    if ttl == 0 {
        return None;
    }
    let half = Duration::from_secs(u64::from(ttl)) / 2;
    now.checked_add(half.max(config.min_refresh_interval))
}
