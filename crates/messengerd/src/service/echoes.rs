//! One copy of a broadcast that arrives both by mailslot and over NATS.
//!
//! With `[nats]`, a broadcast sent by this project's service goes out twice: as a mailslot
//! datagram on the sender's subnets, and through JetStream to every host of the workgroup. A
//! host on the sender's subnet gets both, in either order. The mailslot copy carries no id,
//! so the two are matched by what they say: sender, workgroup and text. Each copy that
//! arrives one way cancels one unmatched copy that arrived the other way within
//! [`ECHO_WINDOW`]; a broadcast repeated on purpose (the same warning sent twice) arrives
//! twice each way and is stored twice.
//!
//! Texts are compared as the mailslot can carry them: the mailslot copy went through the OEM
//! code page (characters it lacks became `?`) and Windows' line breaks, the NATS copy did not.
//! So every character outside printable ASCII counts as `?`, and whitespace is ignored.
//!
//! The table lives in memory: a service restarted between the two copies stores both.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// How long a copy waits for its twin. The mailslot copy arrives within milliseconds; the
/// NATS copy too, unless this host's link to the cluster was down, in which case its
/// consumer catches up when the link is back. Ten minutes covers a brief outage without
/// keeping entries for long.
pub const ECHO_WINDOW: Duration = Duration::from_secs(10 * 60);

/// Most unmatched copies remembered: a LAN where Windows hosts broadcast (mailslot only)
/// leaves every one of their broadcasts unmatched. The oldest is forgotten first; at about
/// 300 bytes an entry, the table stays under a megabyte and a half.
pub const MAX_UNMATCHED: usize = 4096;

/// How a broadcast copy arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    /// A `\MAILSLOT\MESSNGR` datagram.
    Mailslot,
    /// The workgroup's NATS subject.
    Nats,
}

/// What identifies a broadcast across both ways (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint(String);

impl Fingerprint {
    /// The fingerprint of a broadcast from `from` to `workgroup` saying `text`.
    pub fn of(from: &str, workgroup: &str, text: &str) -> Self {
        let mut key = String::with_capacity(from.len() + workgroup.len() + text.len() + 2);
        for part in [from, workgroup] {
            key.push_str(&part.trim().to_ascii_uppercase());
            key.push('\0');
        }
        for c in text.chars() {
            match c {
                c if c.is_whitespace() || c == '\u{14}' => {}
                c if c.is_ascii_graphic() => key.push(c),
                _ => key.push('?'),
            }
        }
        Self(key)
    }
}

/// Broadcast copies not yet matched by their twin, oldest first.
#[derive(Debug, Default)]
pub struct BroadcastEchoes {
    unmatched: VecDeque<(Instant, Via, Fingerprint)>,
}

impl BroadcastEchoes {
    /// Whether a copy that arrived `via` at `now` should be stored: `false` when it is the
    /// twin of an unmatched copy that arrived the other way (which it then cancels).
    pub fn admit(&mut self, fingerprint: Fingerprint, via: Via, now: Instant) -> bool {
        while let Some((at, _, _)) = self.unmatched.front() {
            if now.saturating_duration_since(*at) > ECHO_WINDOW {
                self.unmatched.pop_front();
            } else {
                break;
            }
        }
        let twin = self
            .unmatched
            .iter()
            .position(|(_, v, f)| *v != via && *f == fingerprint);
        if let Some(i) = twin {
            self.unmatched.remove(i);
            return false;
        }
        if self.unmatched.len() >= MAX_UNMATCHED {
            self.unmatched.pop_front();
        }
        self.unmatched.push_back((now, via, fingerprint));
        true
    }

    /// How many copies wait for their twin.
    pub fn len(&self) -> usize {
        self.unmatched.len()
    }

    /// Whether no copy waits.
    pub fn is_empty(&self) -> bool {
        self.unmatched.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(text: &str) -> Fingerprint {
        Fingerprint::of("ADMIN", "OFFICE", text)
    }

    #[test]
    fn the_second_copy_is_dropped_whichever_way_comes_first() {
        let t = Instant::now();
        let mut echoes = BroadcastEchoes::default();
        assert!(echoes.admit(fp("down at 5"), Via::Mailslot, t));
        assert!(!echoes.admit(fp("down at 5"), Via::Nats, t));
        assert!(echoes.is_empty());
        assert!(echoes.admit(fp("up again"), Via::Nats, t));
        assert!(!echoes.admit(fp("up again"), Via::Mailslot, t));
        assert!(echoes.is_empty());
    }

    #[test]
    fn a_broadcast_repeated_on_purpose_is_stored_each_time() {
        let t = Instant::now();
        let mut echoes = BroadcastEchoes::default();
        // Twice by mailslot (two sends), then the two NATS copies: two stored, two dropped.
        assert!(echoes.admit(fp("5 minutes"), Via::Mailslot, t));
        assert!(echoes.admit(fp("5 minutes"), Via::Mailslot, t));
        assert!(!echoes.admit(fp("5 minutes"), Via::Nats, t));
        assert!(!echoes.admit(fp("5 minutes"), Via::Nats, t));
        // A third NATS copy has no twin left.
        assert!(echoes.admit(fp("5 minutes"), Via::Nats, t));
    }

    #[test]
    fn copies_are_matched_as_the_mailslot_carries_them() {
        // The OEM code page turned the euro sign into '?' and the line break into 0x14.
        let nats = Fingerprint::of("admin", "office", "Coffee: 2 €\nkitchen");
        let mailslot = Fingerprint::of("ADMIN", "OFFICE", "Coffee: 2 ?\u{14}kitchen");
        assert_eq!(nats, mailslot);
        assert_ne!(fp("a"), Fingerprint::of("OTHER", "OFFICE", "a"));
        assert_ne!(fp("a"), Fingerprint::of("ADMIN", "OTHERWG", "a"));
        assert_ne!(fp("a"), fp("b"));
    }

    #[test]
    fn a_copy_older_than_the_window_is_not_a_twin() {
        let t = Instant::now();
        let mut echoes = BroadcastEchoes::default();
        assert!(echoes.admit(fp("x"), Via::Mailslot, t));
        let later = t + ECHO_WINDOW + Duration::from_secs(1);
        assert!(echoes.admit(fp("x"), Via::Nats, later));
        // The old one is gone; the new one waits.
        assert_eq!(echoes.len(), 1);
    }

    #[test]
    fn the_table_is_bounded() {
        let t = Instant::now();
        let mut echoes = BroadcastEchoes::default();
        for i in 0..MAX_UNMATCHED + 10 {
            assert!(echoes.admit(fp(&i.to_string()), Via::Mailslot, t));
        }
        assert_eq!(echoes.len(), MAX_UNMATCHED);
        // The oldest were forgotten: their NATS copies are stored.
        assert!(echoes.admit(fp("0"), Via::Nats, t));
        assert!(!echoes.admit(fp(&(MAX_UNMATCHED + 9).to_string()), Via::Nats, t));
    }
}
