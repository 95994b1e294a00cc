//! Answers for names held on other subnets, as a WINS proxy does (`[nats] wins_proxy`).
//!
//! A Windows or Samba sender asks for `NAME<03>` by broadcast and hears nothing when NAME is
//! held on another subnet. With the proxy on, the service answers such a query with its own
//! address when the organisation's directory places NAME on another host; the sender then
//! connects here and the gateway (`transports::session`) forwards the message. Never for a
//! name held on this LAN: each host records its addresses in the directory, and the proxy
//! stays silent when the holder has an address on this interface's subnet (the holder
//! answers for itself). As a WINS proxy does, it decides from the directory alone: a sender
//! waits only a moment for broadcast answers (Samba's `nmblookup` a quarter of a second),
//! too short to ask the LAN first.
//!
//! This module decides; the name service task does the I/O: it hands over each broadcast
//! query for a `<03>` name that is not ours ([`WinsProxy::on_query`]), runs the directory
//! look-ups the proxy asks for, and sends the answers it returns. What is decided is
//! remembered for [`DECISION_TTL`], so a burst of queries for one name costs one look-up.

use std::collections::HashMap;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use netbios::{NetbiosName, QualifiedName};

/// How long a decision (answer, or stay silent) for a name holds before the directory and the
/// LAN are asked again: a name moves between hosts when its user logs in elsewhere, and
/// senders ask again after their own cache expires.
pub const DECISION_TTL: Duration = Duration::from_secs(30);

/// Time to live of the answers, in seconds, as the sender caches them: as long as a decision
/// holds.
pub const ANSWER_TTL_SECS: u32 = 30;

/// Most names being looked up at once. Every query costs a directory look-up, and anyone on
/// the LAN can send queries: beyond this, queries for new names go unanswered until earlier
/// look-ups finish.
pub const MAX_PENDING: usize = 32;

/// Most decisions remembered; the oldest is forgotten first.
pub const MAX_DECISIONS: usize = 1024;

/// Most senders waiting for one name's answer (a sender repeats its query a few times).
pub const MAX_WAITING_PER_NAME: usize = 16;

/// A sender waiting for an answer: where it asked from, its transaction id, and the name as it
/// asked (with its scope).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asker {
    /// Its address.
    pub from: SocketAddrV4,
    /// NAME_TRN_ID of its query.
    pub transaction_id: u16,
    /// The name it asked for.
    pub name: QualifiedName,
}

/// What the name service task does next for a query or a look-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing (decided silent, already being looked up, or over a bound).
    Nothing,
    /// Answer these askers with this host's address.
    Answer(Vec<Asker>),
    /// Ask the directory whether the name is held off this subnet; report with
    /// [`WinsProxy::on_directory`].
    LookUp(NetbiosName),
}

/// The proxy's state for one interface.
#[derive(Debug, Default)]
pub struct WinsProxy {
    /// Names being looked up, with who waits for the answer.
    pending: HashMap<NetbiosName, Vec<Asker>>,
    /// Name → (decided at, answer?).
    decided: HashMap<NetbiosName, (Instant, bool)>,
}

impl WinsProxy {
    /// A broadcast query for `asker.name`, a `<03>` name that is not ours.
    pub fn on_query(&mut self, asker: Asker, now: Instant) -> Step {
        let name = asker.name.name;
        if let Some((at, answer)) = self.decided.get(&name).copied() {
            if now.saturating_duration_since(at) < DECISION_TTL {
                return if answer {
                    Step::Answer(vec![asker])
                } else {
                    Step::Nothing
                };
            }
            self.decided.remove(&name);
        }
        if let Some(askers) = self.pending.get_mut(&name) {
            if askers.len() < MAX_WAITING_PER_NAME && !askers.contains(&asker) {
                askers.push(asker);
            }
            return Step::Nothing;
        }
        if self.pending.len() >= MAX_PENDING {
            return Step::Nothing;
        }
        self.pending.insert(name, vec![asker]);
        Step::LookUp(name)
    }

    /// The directory's answer for `name`: whether it is held off this subnet (then every
    /// waiting asker is answered).
    pub fn on_directory(&mut self, name: NetbiosName, answer: bool, now: Instant) -> Step {
        let Some(askers) = self.pending.remove(&name) else {
            return Step::Nothing;
        };
        self.decide(name, answer, now);
        if answer {
            Step::Answer(askers)
        } else {
            Step::Nothing
        }
    }

    fn decide(&mut self, name: NetbiosName, answer: bool, now: Instant) {
        if self.decided.len() >= MAX_DECISIONS {
            if let Some(oldest) = self
                .decided
                .iter()
                .min_by_key(|(_, (at, _))| *at)
                .map(|(n, _)| *n)
            {
                self.decided.remove(&oldest);
            }
        }
        self.decided.insert(name, (now, answer));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn asker(name: &str, tid: u16) -> Asker {
        Asker {
            from: SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 50), 137),
            transaction_id: tid,
            name: QualifiedName::new(NetbiosName::messenger(name).unwrap()),
        }
    }

    fn name(n: &str) -> NetbiosName {
        NetbiosName::messenger(n).unwrap()
    }

    /// Drives a name through a directory look-up that answers `answer`.
    fn settle(proxy: &mut WinsProxy, n: &str, answer: bool, now: Instant) -> Step {
        assert_eq!(proxy.on_query(asker(n, 1), now), Step::LookUp(name(n)));
        // A repeat while it is looked up waits with the first.
        assert_eq!(proxy.on_query(asker(n, 2), now), Step::Nothing);
        proxy.on_directory(name(n), answer, now)
    }

    #[test]
    fn a_name_held_on_another_subnet_is_answered_for_every_asker() {
        let now = Instant::now();
        let mut proxy = WinsProxy::default();
        let step = settle(&mut proxy, "FARAWAY", true, now);
        assert_eq!(
            step,
            Step::Answer(vec![asker("FARAWAY", 1), asker("FARAWAY", 2)])
        );
        // Decided: the next query is answered at once, until the decision is old.
        assert_eq!(
            proxy.on_query(asker("FARAWAY", 3), now + Duration::from_secs(1)),
            Step::Answer(vec![asker("FARAWAY", 3)])
        );
        assert_eq!(
            proxy.on_query(asker("FARAWAY", 4), now + DECISION_TTL),
            Step::LookUp(name("FARAWAY"))
        );
    }

    #[test]
    fn a_name_held_on_this_lan_or_in_no_directory_is_never_answered() {
        let now = Instant::now();
        let mut proxy = WinsProxy::default();
        assert_eq!(settle(&mut proxy, "NEIGHBOUR", false, now), Step::Nothing);
        assert_eq!(proxy.on_query(asker("NEIGHBOUR", 3), now), Step::Nothing);
        // A directory answer nobody waits for changes nothing.
        assert_eq!(proxy.on_directory(name("OTHER"), true, now), Step::Nothing);
    }

    #[test]
    fn look_ups_and_memory_are_bounded() {
        let now = Instant::now();
        let mut proxy = WinsProxy::default();
        for i in 0..MAX_PENDING {
            assert!(matches!(
                proxy.on_query(asker(&format!("N{i}"), 1), now),
                Step::LookUp(_)
            ));
        }
        assert_eq!(proxy.on_query(asker("ONEMORE", 1), now), Step::Nothing);
        for tid in 0..100 {
            proxy.on_query(asker("N0", tid), now);
        }
        let askers = &proxy.pending[&name("N0")];
        assert_eq!(askers.len(), MAX_WAITING_PER_NAME);
        for i in 0..MAX_DECISIONS + 5 {
            proxy.decide(
                name(&format!("D{i}")),
                false,
                now + Duration::from_millis(i as u64),
            );
        }
        assert_eq!(proxy.decided.len(), MAX_DECISIONS);
        assert!(
            !proxy.decided.contains_key(&name("D0")),
            "the oldest is forgotten"
        );
    }
}
