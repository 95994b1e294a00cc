//! Handing a stored message to everything that shows or forwards it.
//!
//! Every way a stored message goes on is a [`DeliverySink`], and the service gives each
//! stored message to all of them: the terminals of its recipients
//! ([`terminal::TerminalSink`]), the message command ([`command::CommandSink`]), and
//! whatever else follows messages (a desktop agent's stream, read receipts) as a peer of
//! these, without touching the receiving code.

pub(crate) mod command;
pub(crate) mod terminal;

use messenger_core::message::StoredMessage;

use crate::host::utmp::LoginSession;

/// A message just stored, as the sinks get it.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// The message with its inbox id (not yet read by anyone).
    pub stored: StoredMessage,
    /// The calling NetBIOS name of the sender's machine, when the session request gave one.
    pub machine: String,
}

/// Whom a stored message reaches now: the login sessions of its recipients, or of everyone
/// logged in for a message to everyone.
#[derive(Debug, Clone, Default)]
pub struct Audience {
    /// The sessions, as last read from the login records.
    pub sessions: Vec<LoginSession>,
}

impl Audience {
    /// The sessions among `all` that `recipients` reach (every one, for none: everyone).
    pub fn of(recipients: &[String], all: &[LoginSession]) -> Self {
        Self {
            sessions: all
                .iter()
                .filter(|s| reaches(recipients, s))
                .cloned()
                .collect(),
        }
    }
}

/// Whether a message for `recipients` (none: everyone) is for the user of `session`.
pub fn reaches(recipients: &[String], session: &LoginSession) -> bool {
    recipients.is_empty() || recipients.contains(&session.user)
}

/// Something a stored message is handed to. Sinks are called off the async runtime (they may
/// block briefly, as a terminal write does) and must not wait for long: a sink with slow
/// work starts it on the service's task tracker.
pub trait DeliverySink: Send + Sync {
    /// Whether this sink acts on a message nobody it is for is logged in to see (the message
    /// command does; terminals do not). When no sink does and no recipient is logged in, the
    /// service skips the hand-over altogether.
    fn acts_without_sessions(&self) -> bool {
        false
    }

    /// Hands `arrival` over for `audience`; returns the users who have now seen it, whose
    /// copy the service marks read.
    fn deliver(&self, arrival: &Arrival, audience: &Audience) -> Vec<String>;
}
