//! Why a send or a lookup failed, and which NET error number the user is shown for it.
//!
//! The mapping follows REFERENCE 4.8 (itself inferred from [MS-MSRP] and Samba): a recipient
//! that cannot be found or is not on the host we reached is 2273 `NERR_NameNotFound`; a
//! receiver that answers "paused" is 2281 `NERR_PausedRemote`; any other refusal after the
//! session was set up is 2282 `NERR_BadReceive`; a transport failure is 2136
//! `NERR_NetworkError`. Problems with what the user typed map to the Win32 errors Windows
//! gives for them (87 for a bad parameter, 123 for a bad name).

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use messenger_core::nerr;
use netbios::oem::Unmappable;

use crate::iface::InterfaceError;

/// What went wrong with a send, a name query or a node status query.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// Nobody answered for the name, or the host reached does not hold it.
    #[error("no computer on the network answers for {}<03>", .name.to_uppercase())]
    NameNotFound {
        /// The name as the user should see it.
        name: String,
    },
    /// The recipient is neither a messaging name nor a host name that resolves: what the user
    /// typed cannot reach anyone.
    #[error("{name:?} is not a messaging name ({reason}), nor a host name that resolves")]
    NoSuchRecipient {
        /// The recipient as given, trimmed.
        name: String,
        /// The rule of messaging names it breaks.
        reason: String,
        /// Whether the rule is the length (87, as Windows refuses over-long names) rather
        /// than the characters (123).
        too_long: bool,
    },
    /// A host given by address (or found in DNS) did not answer the node status request that
    /// asks it for its messaging name.
    #[error("the computer at {addr} did not answer (no reply to the node status query within {} ms)", .after.as_millis())]
    NoAnswer {
        /// The address.
        addr: std::net::Ipv4Addr,
        /// How long we waited.
        after: Duration,
    },
    /// A host answered but holds no messaging name: its Messenger service is not running.
    #[error("the computer at {addr} answered, but holds no messaging name (its Messenger service is not running)")]
    NoMessengerAt {
        /// The address.
        addr: std::net::Ipv4Addr,
    },
    /// The receiver has paused its Messenger service (SMB ERRSRV/ERRpaused).
    #[error("{recipient} has paused its Messenger service")]
    Paused {
        /// The recipient.
        recipient: String,
    },
    /// The receiver took the session but refused the message.
    #[error("{recipient} did not accept the message: {reason}")]
    Refused {
        /// The recipient.
        recipient: String,
        /// What it answered, in words.
        reason: String,
    },
    /// A socket operation failed.
    #[error("network error ({what}, {peer}): {source}")]
    Io {
        /// What we were doing.
        what: &'static str,
        /// With whom.
        peer: SocketAddr,
        /// The system's error.
        source: io::Error,
    },
    /// The peer did not answer in time.
    #[error("no answer from {peer} within {} ms ({what})", .after.as_millis())]
    Timeout {
        /// What we were waiting for.
        what: &'static str,
        /// From whom.
        peer: SocketAddr,
        /// How long we waited.
        after: Duration,
    },
    /// The peer sent something that is not the protocol.
    #[error("{peer} sent an invalid answer: {reason}")]
    Protocol {
        /// Who.
        peer: SocketAddr,
        /// What was wrong.
        reason: String,
    },
    /// The interfaces could not be listed, or none is usable.
    #[error(transparent)]
    Interfaces(#[from] InterfaceError),
    /// The text is longer than allowed.
    #[error("the message is {len} {unit} long; the limit is {max}{hint}")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
        /// `bytes` or `characters`.
        unit: &'static str,
        /// How to get past the limit, if there is a way.
        hint: &'static str,
    },
    /// The text is empty.
    #[error("the message is empty")]
    Empty,
    /// The text has a character the OEM code page cannot represent.
    #[error(transparent)]
    Unmappable(#[from] Unmappable),
    /// A name (recipient, sender, workgroup) is not a valid NetBIOS name.
    #[error("{name:?} is not a valid NetBIOS name: {reason}")]
    InvalidName {
        /// The name as given.
        name: String,
        /// Why.
        reason: String,
    },
}

impl NetError {
    /// The NET error number to show (`NET HELPMSG n`).
    pub fn nerr(&self) -> u32 {
        match self {
            NetError::NameNotFound { .. }
            | NetError::NoAnswer { .. }
            | NetError::NoMessengerAt { .. } => nerr::NERR_NAME_NOT_FOUND,
            NetError::NoSuchRecipient { too_long: true, .. } => nerr::ERROR_INVALID_PARAMETER,
            NetError::NoSuchRecipient { .. } => nerr::ERROR_INVALID_NAME,
            NetError::Paused { .. } => nerr::NERR_PAUSED_REMOTE,
            NetError::Refused { .. } | NetError::Protocol { .. } => nerr::NERR_BAD_RECEIVE,
            NetError::Io { .. } | NetError::Timeout { .. } | NetError::Interfaces(_) => {
                nerr::NERR_NETWORK_ERROR
            }
            NetError::TooLong { .. } | NetError::Empty | NetError::Unmappable(_) => {
                nerr::ERROR_INVALID_PARAMETER
            }
            NetError::InvalidName { .. } => nerr::ERROR_INVALID_NAME,
        }
    }

    /// Whether the error is in what the caller asked for (text, names) rather than in the
    /// network: the command line reports those as usage errors.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            NetError::TooLong { .. }
                | NetError::Empty
                | NetError::Unmappable(_)
                | NetError::InvalidName { .. }
                | NetError::NoSuchRecipient { .. }
        )
    }
}
