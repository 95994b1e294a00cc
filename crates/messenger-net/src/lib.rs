//! The network side of sending Messenger messages, shared by the service and the command line.
//!
//! The `netbios` crate knows the protocols but does no I/O; this crate drives its state
//! machines over tokio sockets:
//!
//! - [`iface`]: which IPv4 interfaces to use and where their broadcasts go;
//! - [`resolve`]: finding `NAME<03>` (WINS, then broadcast) and a host's names (node status);
//! - [`session`]: a directed message over the NetBIOS session service (TCP 139);
//! - [`broadcast`]: `NET SEND *` / `/DOMAIN` as a mailslot datagram (UDP 138);
//! - [`send`]: the whole of `NET SEND name`: resolve the target however it was given, then
//!   deliver.
//!
//! Every error carries the NET error number the user is shown ([`NetError::nerr`]).
#![forbid(unsafe_code)]

pub mod broadcast;
pub mod error;
pub mod iface;
pub mod resolve;
pub mod send;
pub mod session;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod text;
pub mod transport;

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use messenger_core::config::Config;
use netbios::name::SUFFIX_WORKSTATION;
use netbios::oem::CodePage;
use netbios::{NetbiosName, QualifiedName, Scope};

pub use broadcast::{send_broadcast, BroadcastReport};
pub use error::NetError;
pub use iface::{Interface, InterfaceError};
pub use resolve::{node_status, resolve_name, NodeStatusName};
pub use send::{send_to, send_to_session, Delivered, Target};
pub use session::{send_directed, SessionRequest};
pub use text::LengthLimit;
pub use transport::NetBios;

/// Everything a send needs to know about the network and this host.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Interfaces to query and broadcast on.
    pub interfaces: Vec<Interface>,
    /// A NetBIOS name server (WINS) to ask before broadcasting.
    pub wins_server: Option<Ipv4Addr>,
    /// UDP port of the name service on other hosts (137).
    pub name_port: u16,
    /// TCP port of the session service on other hosts (139).
    pub session_port: u16,
    /// UDP port of the datagram service on other hosts (138).
    pub datagram_port: u16,
    /// The NetBIOS scope; almost always empty.
    pub scope: Scope,
    /// OEM code page of text and names on the wire.
    pub code_page: CodePage,
    /// This computer's NetBIOS name with suffix 0x00: the calling name of session requests
    /// (as `smbclient -M` calls, REFERENCE 3.2) and the source name of datagrams
    /// ([MS-MAIL] 3.2.3).
    pub computer_name: NetbiosName,
    /// When to open the session with a session request.
    pub session_request: SessionRequest,
    /// Retry counts and timeouts.
    pub timeouts: Timeouts,
}

/// Retry counts and timeouts of the protocol exchanges. The defaults are the named constants
/// of [`resolve`] and [`session`]; tests shorten them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Wait between broadcast name queries.
    pub broadcast_query_interval: Duration,
    /// Broadcast name queries sent.
    pub broadcast_query_count: u32,
    /// Wait between unicast queries to the name server.
    pub wins_query_interval: Duration,
    /// Unicast queries sent to the name server.
    pub wins_query_count: u32,
    /// Wait between node status requests.
    pub node_status_interval: Duration,
    /// Node status requests sent.
    pub node_status_count: u32,
    /// Longest wait for a TCP connection to the session service.
    pub connect: Duration,
    /// Longest wait for each answer on a session.
    pub response: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            broadcast_query_interval: resolve::BROADCAST_QUERY_INTERVAL,
            broadcast_query_count: resolve::BROADCAST_QUERY_COUNT,
            wins_query_interval: resolve::WINS_QUERY_INTERVAL,
            wins_query_count: resolve::WINS_QUERY_COUNT,
            node_status_interval: resolve::NODE_STATUS_INTERVAL,
            node_status_count: resolve::NODE_STATUS_COUNT,
            connect: session::CONNECT_TIMEOUT,
            response: session::RESPONSE_TIMEOUT,
        }
    }
}

/// Why [`Settings::from_config`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    /// The computer name is not a NetBIOS name.
    #[error("invalid computer name {name:?}: {source}")]
    ComputerName {
        /// The name.
        name: String,
        /// Why.
        source: netbios::NameError,
    },
    /// The interfaces could not be listed.
    #[error(transparent)]
    Interfaces(#[from] InterfaceError),
}

impl Settings {
    /// Settings from the shared configuration, with `computer_name` as this host's name and
    /// the system's interfaces filtered by `listen_addresses`.
    pub fn from_config(config: &Config, computer_name: &str) -> Result<Self, SettingsError> {
        let interfaces = iface::interfaces(&config.listen_addresses)?;
        Self::with_interfaces(config, computer_name, interfaces)
    }

    /// Like [`Settings::from_config`] with the interfaces given.
    pub fn with_interfaces(
        config: &Config,
        computer_name: &str,
        interfaces: Vec<Interface>,
    ) -> Result<Self, SettingsError> {
        let code_page = config.code_page();
        let scope = config.scope.clone();
        let computer_name = NetbiosName::new(
            &code_page.uppercase(&code_page.encode_lossy(computer_name).bytes),
            SUFFIX_WORKSTATION,
        )
        .map_err(|source| SettingsError::ComputerName {
            name: computer_name.to_owned(),
            source,
        })?;
        Ok(Self {
            interfaces,
            wins_server: config.wins_server,
            name_port: config.name_port(),
            session_port: config.session_port(),
            datagram_port: config.datagram_port(),
            scope,
            code_page,
            computer_name,
            session_request: SessionRequest::Auto,
            timeouts: Timeouts::default(),
        })
    }

    /// `name` in our scope.
    pub fn qualify(&self, name: NetbiosName) -> QualifiedName {
        QualifiedName::with_scope(name, self.scope.clone())
    }

    /// Our `COMPUTER<00>` in our scope.
    pub fn source_name(&self) -> QualifiedName {
        self.qualify(self.computer_name)
    }
}

/// A fresh 16-bit id for a datagram or a name service transaction. Ids only have to differ
/// between transactions in flight, so a counter started at an unpredictable point is enough;
/// the start is taken from the clock and the process id so that two processes rarely
/// collide.
pub(crate) fn next_id() -> u16 {
    static NEXT: OnceLock<AtomicU16> = OnceLock::new();
    let counter = NEXT.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let seed = nanos ^ std::process::id().rotate_left(16);
        AtomicU16::new((seed ^ (seed >> 16)) as u16)
    });
    counter.fetch_add(1, Ordering::Relaxed)
}
