//! The seam between the service's outbound path and the networks it sends over.
//!
//! The service's router asks each [`Transport`] whether it can reach a recipient
//! ([`Transport::reach`], cheap and without I/O) and sends through the one that can
//! ([`Transport::send`]). NetBIOS (`messenger-net`) and the service's own local delivery
//! implement it; a transport to another kind of network implements it the same way. No async
//! runtime here: `send` returns a future that the caller's runtime drives.

use std::future::Future;

/// Whom an outgoing message is for, as the sender named them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// A messaging name or a host (name or address), as typed.
    Name(String),
    /// Every computer of a workgroup (`*`, `/DOMAIN[:name]`), uppercased.
    Workgroup(String),
}

/// A message on its way out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The sender's name as it is signed.
    pub from: String,
    /// Whom it is for.
    pub to: Recipient,
    /// The text, UTF-8, line breaks as `\n`.
    pub text: String,
    /// Whether the sender allows text longer than the classic limit (`/LONG`).
    pub allow_long: bool,
}

/// Whether a transport can try to deliver to a recipient. Answered without I/O, so it says
/// what the transport knows now, not whether the delivery will succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// The recipient is on this computer: delivery needs no network.
    Local,
    /// The transport can try over its network.
    Network,
    /// The transport cannot reach the recipient at all.
    Unreachable,
}

/// A delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The recipient as shown to the sender (`BOB`, the workgroup).
    pub recipient: String,
}

/// Why a send failed, with the NET error number the sender is shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// The NET error number (`NET HELPMSG n`).
    pub code: u32,
    /// What went wrong, for people.
    pub message: String,
    /// Whether the fault is in what the sender asked for (text, names) rather than in the
    /// network: such a send fails as a whole instead of being reported per recipient.
    pub input: bool,
}

/// A way of sending messages.
pub trait Transport: Send + Sync {
    /// A short name for logs (`netbios`, `local`).
    fn name(&self) -> &'static str;

    /// Whether this transport can try to deliver to `to`. No I/O.
    fn reach(&self, to: &Recipient) -> Reach;

    /// Delivers `message`.
    fn send(&self, message: &Outgoing) -> impl Future<Output = Result<Delivery, SendError>> + Send;
}
