//! Why the service could not start: every failure before it serves, each with what the
//! administrator needs to fix it. `main` reports them; the library never exits on its own.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use messenger_store::StoreError;

/// A failure to set the service up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// No data directory is configured and none can be derived for this user.
    #[error(
        "data_dir is not set and there is no home directory ($XDG_DATA_HOME or $HOME) for a \
         per-user inbox; set data_dir in the configuration"
    )]
    NoDataDir,
    /// The interfaces could not be listed.
    #[error(transparent)]
    Interfaces(#[from] messenger_net::InterfaceError),
    /// The `[nats]` table is not valid.
    #[error("[nats] in the configuration: {0}")]
    Nats(#[from] messenger_nats::NatsConfigError),
    /// No interface is left to serve on.
    #[error("no IPv4 interface to serve on")]
    NoInterface,
    /// A network socket could not be set up.
    #[error("cannot bind {protocol} {addr}:{port}: {source}")]
    Bind {
        /// `UDP` or `TCP`.
        protocol: &'static str,
        /// The address.
        addr: Ipv4Addr,
        /// The port asked for (0: any).
        port: u16,
        /// Why.
        source: std::io::Error,
    },
    /// A UDP socket could not be served (made asynchronous, `IP_PKTINFO` turned on, an
    /// interface's index read).
    #[error("cannot serve the UDP sockets: {0}")]
    Udp(std::io::Error),
    /// The control socket's directory could not be created.
    #[error("cannot create {}: {source}{hint}", .dir.display())]
    ControlDir {
        /// The directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
        /// What a service without root must configure (empty for root).
        hint: &'static str,
    },
    /// Another service answers on the control socket.
    #[error("another Messenger service is already running on {} (NET HELPMSG 2271)", .0.display())]
    AlreadyRunning(PathBuf),
    /// The control socket could not be set up.
    #[error("cannot bind {}: {source}", .path.display())]
    Control {
        /// The socket's path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The inbox could not be opened or read.
    #[error("cannot open the inbox {}: {source}", .path.display())]
    Inbox {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: StoreError,
    },
    /// The names kept in the inbox could not be read.
    #[error("cannot read the stored names: {0}")]
    StoredNames(StoreError),
    /// An interface's subnet is not a network (a netmask that is not a prefix).
    #[error("an interface's subnet: {0}")]
    Subnet(#[from] messenger_core::policy::CidrError),
    /// The sockets systemd handed over cannot be served.
    #[error(transparent)]
    Activation(#[from] crate::host::activation::ActivationError),
    /// The computer name or the workgroup is not a NetBIOS name.
    #[error("{name:?} is not a NetBIOS name: {source}")]
    Name {
        /// The name.
        name: String,
        /// Why.
        source: netbios::NameError,
    },
}
