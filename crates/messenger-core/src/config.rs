//! The one configuration file of the service and the command line.
//!
//! Every key is optional: with no file at all the defaults make a working service for the
//! machine it runs on. Unknown keys are errors, not silently ignored, because a misspelt
//! `[policy]` key would otherwise quietly leave a network open.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use netbios::oem::CodePage;
use netbios::Scope;
use serde::Deserialize;

use crate::policy::Cidr;

/// Where the service looks for its configuration when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/messenger/messenger.toml";
/// The system service's control socket: where every user's command line finds the service
/// unless `control_socket` or `--socket` says otherwise. `/run` is writable by root only, so
/// nobody else can put something of their own at this path.
pub const SYSTEM_CONTROL_SOCKET: &str = "/run/messenger/control.sock";
/// The system service's data directory (systemd's `StateDirectory=messenger`).
pub const SYSTEM_DATA_DIR: &str = "/var/lib/messenger";
/// UDP port of the NetBIOS name service (RFC 1002 s.6 NAME_SERVICE_UDP_PORT).
pub const DEFAULT_NAME_PORT: u16 = 137;
/// UDP port of the NetBIOS datagram service (RFC 1002 s.6 DGM_SRVC_UDP_PORT).
pub const DEFAULT_DATAGRAM_PORT: u16 = 138;
/// TCP port of the NetBIOS session service (RFC 1002 s.6 SSN_SRVC_TCP_PORT).
pub const DEFAULT_SESSION_PORT: u16 = 139;
/// The workgroup Windows joins when nobody chose one.
pub const DEFAULT_WORKGROUP: &str = "WORKGROUP";
/// OEM code page of Western European DOS and Windows installations; the one most Messenger
/// peers used ([MS-MSRP] 3.2.4.1 says OEM, and CP850 is Windows' OEM page for those locales).
pub const DEFAULT_CODE_PAGE: CodePage = CodePage::Cp850;
/// Where logged-in users are listed (utmp(5)).
pub const DEFAULT_UTMP_PATH: &str = "/var/run/utmp";
/// Longest text a sender may send by default: the Windows limit ([MS-MSRP] 3.2.4.4, "652
/// bytes or less").
pub const WINDOWS_MAX_MESSAGE_LEN: usize = 652;
/// Longest text we accept: Samba's server and client buffer 1600 bytes (smbclient man page,
/// `-M`), and Samba senders must get through whole.
pub const DEFAULT_MAX_RECEIVE_LEN: usize = 1600;
/// Connections served at once, in all (anti-flood default, see [`Limits`]).
pub const DEFAULT_MAX_CONNECTIONS: usize = 1000;
/// Connections served at once from one source address.
pub const DEFAULT_MAX_CONNECTIONS_PER_SOURCE: usize = 32;
/// Seconds a new connection has to send its session request (or first SMB).
pub const DEFAULT_FIRST_REQUEST_TIMEOUT_SECS: u64 = 5;
/// Seconds a connection may go without progress on a message (a block taken, a message
/// stored); other SMBs do not count.
pub const DEFAULT_REQUEST_TIMEOUT_SECS: u64 = 30;
/// Seconds a connection may last at all: the protocol crate's cap (see
/// `netbios::smb::receiver::CONNECTION_LIFETIME` for its reasoning).
pub const DEFAULT_CONNECTION_LIFETIME_SECS: u64 =
    netbios::smb::receiver::CONNECTION_LIFETIME.as_secs();
/// SMB errors a connection may draw before it is closed: the protocol crate's budget (see
/// `netbios::smb::receiver::ERROR_BUDGET` for its reasoning).
pub const DEFAULT_MAX_ERRORS_PER_CONNECTION: u32 = netbios::smb::receiver::ERROR_BUDGET;
/// Messaging names one user may add. Windows keeps at most 256 names per LANA ([MS-MSRP]
/// note <9>); one user taking a tenth of that is already generous.
pub const DEFAULT_MAX_NAMES_PER_USER: usize = 16;
/// Messages per second one source may deliver after its burst is spent.
pub const DEFAULT_MESSAGES_PER_SECOND: f64 = 5.0;
/// Messages one source may deliver at once before the rate applies.
pub const DEFAULT_MESSAGE_BURST: u32 = 20;
/// Mailslot messages per second one source may deliver after its burst. The same as for
/// sessions: a person types no faster on one transport than on the other.
pub const DEFAULT_DATAGRAMS_PER_SECOND: f64 = DEFAULT_MESSAGES_PER_SECOND;
/// Mailslot messages one source may deliver at once.
pub const DEFAULT_DATAGRAM_BURST: u32 = DEFAULT_MESSAGE_BURST;
/// Mailslot messages per second from all sources together. A datagram's source address is
/// not verified (UDP, no handshake), so a flood with a new forged address per packet passes
/// every per-source limit; this cap bounds what such a flood can write to the inbox. Twenty
/// busy senders at the per-source rate fit under it.
pub const DEFAULT_GLOBAL_DATAGRAMS_PER_SECOND: f64 = 100.0;
/// Mailslot messages from all sources together at once before the global rate applies.
pub const DEFAULT_GLOBAL_DATAGRAM_BURST: u32 = 200;
/// Blocks one multi-block message may have: the protocol crate's limit (see
/// `netbios::smb::assembler::DEFAULT_MAX_BLOCKS` for its reasoning).
pub const DEFAULT_MAX_BLOCKS_PER_MESSAGE: usize = netbios::smb::assembler::DEFAULT_MAX_BLOCKS;

/// Days a message is kept before it is pruned. Three months covers a holiday's worth of
/// absence with room to spare; an inbox is a pager's history, not an archive.
pub const DEFAULT_RETENTION_MAX_AGE_DAYS: u64 = 90;
/// Messages kept per user (addressed to that user; messages for everyone count towards
/// `max_messages` only). Ten thousand is years of ordinary traffic, and bounds what one
/// flooded user's inbox costs every listing of it.
pub const DEFAULT_RETENTION_MAX_MESSAGES_PER_USER: u64 = 10_000;
/// Messages kept in all. A message takes at most about 4 KiB in the database (1600 bytes of
/// text, its raw copy and indexes), so this bounds the inbox file to about 2 GiB even with
/// the longest messages; typical ones take a tenth of that.
pub const DEFAULT_RETENTION_MAX_MESSAGES: u64 = 500_000;
/// Free space (MiB) the file system of the data directory must keep for the service to take
/// a message. Below it senders get ERRnoroom instead of the service filling the disk that
/// other programs (and the service's own WAL checkpoints) need.
pub const DEFAULT_MIN_FREE_DISK_MIB: u64 = 100;
/// Microseconds in a day, for `max_age_days`.
const MICROS_PER_DAY: i64 = 86_400 * 1_000_000;

/// Why a configuration file was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has a wrong key or value.
    #[error("{path}:{line}:{column}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A value parsed but is not acceptable.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
}

/// Where the service learns who is logged in (`login_sessions`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LoginSessions {
    /// systemd-logind when it answers on the system bus, else utmp; utmp whenever
    /// `utmp_path` is set, since naming a file says which list is meant.
    #[default]
    Auto,
    /// systemd-logind only (org.freedesktop.login1): graphical sessions included.
    Logind,
    /// utmp(5) only, as `who` reads it.
    Utmp,
}

/// The whole configuration. Field docs name the TOML key.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `computer_name`: this computer's NetBIOS name; default the host name's first label,
    /// uppercased and cut to 15 characters.
    pub computer_name: Option<String>,
    /// `workgroup`: the workgroup or domain (`NET SEND *` goes to its members).
    pub workgroup: Option<String>,
    /// `data_dir`: where the inbox lives.
    pub data_dir: Option<PathBuf>,
    /// `control_socket`: the Unix socket the command line talks to.
    pub control_socket: Option<PathBuf>,
    /// `message_command`: a command run for each message, with `%s` (file holding the text),
    /// `%f` (from), `%t` (to), `%m` (calling machine), `%I` (source address).
    pub message_command: Option<String>,
    /// `wins_server`: a NetBIOS name server to register with and ask first.
    pub wins_server: Option<Ipv4Addr>,
    /// `code_page`: OEM code page of text on the wire (see [`Config::code_page`]).
    #[serde(default, deserialize_with = "code_page")]
    pub code_page: Option<CodePage>,
    /// `scope`: NetBIOS scope ID; almost every network leaves it empty.
    #[serde(default, deserialize_with = "scope")]
    pub scope: Scope,
    /// `listen_addresses`: IPv4 addresses to serve on; default every IPv4 interface.
    #[serde(default)]
    pub listen_addresses: Vec<Ipv4Addr>,
    /// `name_port`: UDP port of the name service.
    pub name_port: Option<u16>,
    /// `datagram_port`: UDP port of the datagram service.
    pub datagram_port: Option<u16>,
    /// `session_port`: TCP port of the session service. On any port but 139 SMB frames are
    /// also accepted without a session request, as Samba does.
    pub session_port: Option<u16>,
    /// `raw_session_ports`: more TCP ports that take SMB frames without a session request.
    #[serde(default)]
    pub raw_session_ports: Vec<u16>,
    /// `utmp_path`: the file listing logged-in users.
    pub utmp_path: Option<PathBuf>,
    /// `login_sessions`: where logged-in users are learnt from (see [`LoginSessions`]).
    #[serde(default)]
    pub login_sessions: LoginSessions,
    /// `user`: account the service runs as once its ports are bound (when started as root).
    pub user: Option<String>,
    /// `max_message_len`: longest text received, in bytes.
    pub max_message_len: Option<usize>,
    /// `netbios`: serve the NetBIOS name, datagram and session services (UDP 137, UDP 138,
    /// TCP 139). `false` on a host where Samba's nmbd and smbd own those ports: the service
    /// then keeps the inbox, shows messages and serves the control socket, and smbd hands it
    /// messages through `messenger deliver`.
    pub netbios: Option<bool>,
    /// `samba_config`: the smb.conf whose `workgroup` is used when `workgroup` is not set here,
    /// whose `guest account` may deliver messages from smbd, and whose smbd's SMB sessions
    /// `/USERS` reaches.
    pub samba_config: Option<PathBuf>,
    /// `[policy]`: who may reach us.
    #[serde(default)]
    pub policy: Policy,
    /// `[limits]`: resource limits.
    #[serde(default)]
    pub limits: Limits,
    /// `[retention]`: how long and how many messages the inbox keeps.
    #[serde(default)]
    pub retention: Retention,
    /// `[nats]`: organisation-wide delivery over NATS JetStream; absent, the service uses
    /// NetBIOS only. Validated by the `messenger-nats` crate.
    pub nats: Option<NatsTable>,
}

/// `[nats]` as written. Only its shape is checked here; `messenger-nats` validates the values
/// (server addresses, files, that at most one credential is given).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NatsTable {
    /// `servers`: the cluster members to connect to (`nats://host:4222`, `tls://host:4222`).
    #[serde(default)]
    pub servers: Vec<String>,
    /// `credentials`: a `.creds` file (user JWT and NKey seed).
    pub credentials: Option<PathBuf>,
    /// `token`: an authentication token, instead of `credentials`.
    pub token: Option<String>,
    /// `user`: a user name, with `password`, instead of `credentials` or `token` (the form of
    /// a server configuration's `authorization { users = [...] }` with per-host permissions).
    pub user: Option<String>,
    /// `password`: the password of `user`.
    pub password: Option<String>,
    /// `wins_proxy`: answer broadcast name queries for names the directory places on another
    /// computer with this computer's address, so that Windows and Samba senders on this subnet
    /// find them and send here to be forwarded (default false).
    pub wins_proxy: Option<bool>,
    /// `tls_ca`: the CA certificate (PEM) the servers' certificates must chain to.
    pub tls_ca: Option<PathBuf>,
    /// `tls_cert`: this host's client certificate (PEM), with `tls_key`.
    pub tls_cert: Option<PathBuf>,
    /// `tls_key`: the private key (PEM) of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// `replicas`: copies JetStream keeps of the stream and the directory (1 to 5);
    /// default 3, which needs a cluster of at least 3 servers.
    pub replicas: Option<usize>,
    /// `directory_max_age_secs`: how long a directory entry lives without a refresh.
    pub directory_max_age_secs: Option<u64>,
    /// `retention_days`: how long a message waits in the stream for a host that is down or a
    /// user logged in nowhere; default 7. The stream is shared: configure every host alike
    /// (a host that connects brings the stream to its own value).
    pub retention_days: Option<u64>,
}

/// `[policy]`: what the service accepts and from whom.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// `allow`: source networks (CIDR) allowed to send to us; empty means private and local
    /// address space and the subnets of our interfaces (`policy::LOCAL_NETWORKS`).
    #[serde(deserialize_with = "networks")]
    pub allow: Vec<Cidr>,
    /// `deny`: source networks refused even if allowed.
    #[serde(deserialize_with = "networks")]
    pub deny: Vec<Cidr>,
    /// `rate_limit`: per-source rate limits on (benchmarks turn them off).
    pub rate_limit: bool,
    /// `messages_per_second`: sustained rate per source.
    pub messages_per_second: f64,
    /// `message_burst`: burst per source.
    pub message_burst: u32,
    /// `datagrams_per_second`: sustained rate of mailslot messages per source.
    pub datagrams_per_second: f64,
    /// `datagram_burst`: burst of mailslot messages per source.
    pub datagram_burst: u32,
    /// `global_datagrams_per_second`: sustained rate of mailslot messages from all sources
    /// together, against floods from forged addresses.
    pub global_datagrams_per_second: f64,
    /// `global_datagram_burst`: burst of mailslot messages from all sources together.
    pub global_datagram_burst: u32,
    /// `broadcast_sources`: source networks (CIDR) whose workgroup broadcasts (`NET SEND *`,
    /// `/DOMAIN`) we take; empty means every source the `allow` list admits.
    #[serde(deserialize_with = "networks")]
    pub broadcast_sources: Vec<Cidr>,
    /// `broadcast_group`: besides root, members of this group may send to `*`, `/DOMAIN` and
    /// `/USERS`.
    pub broadcast_group: Option<String>,
    /// `accept_broadcasts`: take `NET SEND *` broadcasts to our workgroup at all.
    pub accept_broadcasts: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            allow: Vec::new(),
            deny: Vec::new(),
            rate_limit: true,
            messages_per_second: DEFAULT_MESSAGES_PER_SECOND,
            message_burst: DEFAULT_MESSAGE_BURST,
            datagrams_per_second: DEFAULT_DATAGRAMS_PER_SECOND,
            datagram_burst: DEFAULT_DATAGRAM_BURST,
            global_datagrams_per_second: DEFAULT_GLOBAL_DATAGRAMS_PER_SECOND,
            global_datagram_burst: DEFAULT_GLOBAL_DATAGRAM_BURST,
            broadcast_sources: Vec::new(),
            broadcast_group: None,
            accept_broadcasts: true,
        }
    }
}

/// `[limits]`: resource bounds, so no peer can exhaust the service.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// `max_connections`.
    pub max_connections: usize,
    /// `max_connections_per_source`.
    pub max_connections_per_source: usize,
    /// `first_request_timeout_secs`.
    pub first_request_timeout_secs: u64,
    /// `request_timeout_secs`: time allowed without progress on a message.
    pub request_timeout_secs: u64,
    /// `connection_lifetime_secs`: time a connection may last at all.
    pub connection_lifetime_secs: u64,
    /// `max_errors_per_connection`: SMB errors a connection may draw before it is closed.
    pub max_errors_per_connection: u32,
    /// `max_names_per_user`.
    pub max_names_per_user: usize,
    /// `max_blocks_per_message`: 0xD7 blocks one multi-block message may have.
    pub max_blocks_per_message: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_connections_per_source: DEFAULT_MAX_CONNECTIONS_PER_SOURCE,
            first_request_timeout_secs: DEFAULT_FIRST_REQUEST_TIMEOUT_SECS,
            request_timeout_secs: DEFAULT_REQUEST_TIMEOUT_SECS,
            connection_lifetime_secs: DEFAULT_CONNECTION_LIFETIME_SECS,
            max_errors_per_connection: DEFAULT_MAX_ERRORS_PER_CONNECTION,
            max_names_per_user: DEFAULT_MAX_NAMES_PER_USER,
            max_blocks_per_message: DEFAULT_MAX_BLOCKS_PER_MESSAGE,
        }
    }
}

/// `[retention]`: the inbox does not grow without bound. Messages beyond these are pruned in
/// the background, oldest first; and the service refuses new messages while the disk is
/// nearly full. The counts and the age are at least 1 (refused with the file's line
/// otherwise): an inbox that keeps nothing would acknowledge messages and then lose them.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Retention {
    /// `max_age_days`: messages older than this many days are pruned.
    #[serde(deserialize_with = "at_least_one")]
    pub max_age_days: u64,
    /// `max_messages_per_user`: messages addressed to one user that are kept.
    #[serde(deserialize_with = "at_least_one")]
    pub max_messages_per_user: u64,
    /// `max_messages`: messages kept in all.
    #[serde(deserialize_with = "at_least_one")]
    pub max_messages: u64,
    /// `min_free_disk_mib`: below this much free space (MiB) on the data directory's file
    /// system new messages are refused with ERRnoroom; 0 turns the check off.
    pub min_free_disk_mib: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_age_days: DEFAULT_RETENTION_MAX_AGE_DAYS,
            max_messages_per_user: DEFAULT_RETENTION_MAX_MESSAGES_PER_USER,
            max_messages: DEFAULT_RETENTION_MAX_MESSAGES,
            min_free_disk_mib: DEFAULT_MIN_FREE_DISK_MIB,
        }
    }
}

impl Retention {
    /// Messages received before this time (unix microseconds) are past `max_age_days` at
    /// `now_micros`.
    pub fn age_cutoff_micros(&self, now_micros: i64) -> i64 {
        let age = i64::try_from(self.max_age_days)
            .unwrap_or(i64::MAX)
            .saturating_mul(MICROS_PER_DAY);
        now_micros.saturating_sub(age)
    }

    /// `min_free_disk_mib` in bytes.
    pub fn min_free_disk_bytes(&self) -> u64 {
        self.min_free_disk_mib.saturating_mul(1024 * 1024)
    }

    /// Whether `available_bytes` free on the data directory's file system is too little to
    /// take another message.
    pub fn disk_too_full(&self, available_bytes: u64) -> bool {
        available_bytes < self.min_free_disk_bytes()
    }
}

/// Deserializes a count that must be at least 1. Checked while parsing, not afterwards, so
/// that the error names the line of the value.
fn at_least_one<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    let value = u64::deserialize(d)?;
    if value == 0 {
        return Err(serde::de::Error::custom(
            "must be at least 1 (an inbox that keeps nothing would lose acknowledged messages)",
        ));
    }
    Ok(value)
}

// Values with a syntax of their own are parsed as the file is read, so that a mistake is
// reported with its line like any other, and every caller gets the typed value.

fn code_page<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<CodePage>, D::Error> {
    let name = String::deserialize(d)?;
    CodePage::from_name(&name)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

fn scope<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Scope, D::Error> {
    let text = String::deserialize(d)?;
    Scope::parse(&text).map_err(|e| serde::de::Error::custom(format!("invalid scope: {e}")))
}

fn networks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Cidr>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|n| {
            n.parse::<Cidr>()
                .map_err(|e| serde::de::Error::custom(format!("{n:?}: {e}")))
        })
        .collect()
}

/// Who is running the program, for defaults that differ between root and other users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoker {
    /// Effective uid is 0.
    pub is_root: bool,
    /// `$XDG_DATA_HOME`, or `$HOME/.local/share` (absolute paths only).
    pub data_home: Option<PathBuf>,
    /// The machine's host name.
    pub host_name: String,
}

impl Config {
    /// Parses TOML text; `path` names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|span| line_and_column(text, span.start))
                .unwrap_or((1, 1));
            ConfigError::Parse {
                path: path.to_owned(),
                line,
                column,
                message: e.message().to_owned(),
            }
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// Reads and parses a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Reads `path` if given; otherwise the default file if it exists; otherwise defaults.
    pub fn load_or_default(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            Some(p) => Self::load(p),
            None if Path::new(DEFAULT_CONFIG_PATH).exists() => {
                Self::load(Path::new(DEFAULT_CONFIG_PATH))
            }
            None => Ok(Self::default()),
        }
    }

    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_owned(),
            message,
        };
        for (key, value) in [
            ("computer_name", &self.computer_name),
            ("workgroup", &self.workgroup),
        ] {
            if let Some(v) = value {
                netbios::NetbiosName::new_uppercase(v.as_bytes(), 0)
                    .map_err(|e| invalid(format!("{key} = {v:?}: {e}")))?;
            }
        }
        for (key, value) in [
            ("name_port", self.name_port),
            ("datagram_port", self.datagram_port),
            ("session_port", self.session_port),
        ] {
            if value == Some(0) {
                return Err(invalid(format!("{key} must not be 0")));
            }
        }
        if self.max_message_len == Some(0) {
            return Err(invalid("max_message_len must be at least 1".into()));
        }
        for (key, rate) in [
            ("messages_per_second", self.policy.messages_per_second),
            ("datagrams_per_second", self.policy.datagrams_per_second),
            (
                "global_datagrams_per_second",
                self.policy.global_datagrams_per_second,
            ),
        ] {
            if !rate.is_finite() || rate <= 0.0 {
                return Err(invalid(format!(
                    "policy.{key} must be a number greater than 0"
                )));
            }
        }
        if self.limits.max_blocks_per_message == 0 {
            return Err(invalid(
                "limits.max_blocks_per_message must be at least 1".into(),
            ));
        }
        if self.limits.max_connections == 0 || self.limits.max_connections_per_source == 0 {
            return Err(invalid("connection limits must be at least 1".into()));
        }
        for (key, value) in [
            (
                "first_request_timeout_secs",
                self.limits.first_request_timeout_secs,
            ),
            ("request_timeout_secs", self.limits.request_timeout_secs),
            (
                "connection_lifetime_secs",
                self.limits.connection_lifetime_secs,
            ),
            (
                "max_errors_per_connection",
                u64::from(self.limits.max_errors_per_connection),
            ),
        ] {
            if value == 0 {
                return Err(invalid(format!("limits.{key} must be at least 1")));
            }
        }
        Ok(())
    }

    /// The NetBIOS computer name: `computer_name`, or the host name's first label,
    /// uppercased, cut to 15 characters.
    pub fn computer_name(&self, invoker: &Invoker) -> String {
        let raw = self.computer_name.clone().unwrap_or_else(|| {
            invoker
                .host_name
                .split('.')
                .next()
                .unwrap_or("LINUX")
                .to_owned()
        });
        let upper: String = raw.to_uppercase();
        upper.chars().take(netbios::name::MAX_NAME_CHARS).collect()
    }

    /// The workgroup, uppercased: `workgroup`, else the `workgroup` of Samba's smb.conf when
    /// there is one (so that on a Samba host `NET SEND *` reaches the workgroup its file
    /// server is in), else [`DEFAULT_WORKGROUP`].
    pub fn workgroup(&self) -> String {
        if let Some(w) = &self.workgroup {
            return w.to_uppercase();
        }
        self.samba()
            .and_then(|s| s.workgroup)
            .filter(|w| netbios::NetbiosName::new_uppercase(w.as_bytes(), 0).is_ok())
            .unwrap_or_else(|| DEFAULT_WORKGROUP.to_owned())
            .to_uppercase()
    }

    /// Whether the NetBIOS services are served (`netbios`, default true).
    pub fn netbios(&self) -> bool {
        self.netbios.unwrap_or(true)
    }

    /// The smb.conf to read: `samba_config`, else [`crate::samba::DEFAULT_SAMBA_CONFIG`].
    pub fn samba_config(&self) -> PathBuf {
        self.samba_config
            .clone()
            .unwrap_or_else(|| PathBuf::from(crate::samba::DEFAULT_SAMBA_CONFIG))
    }

    /// The globals of Samba's smb.conf on this host, if there is one.
    pub fn samba(&self) -> Option<crate::samba::SambaGlobals> {
        crate::samba::SambaGlobals::read(&self.samba_config())
    }

    /// Where the inbox lives: `data_dir`, else [`SYSTEM_DATA_DIR`] for root, else
    /// `$XDG_DATA_HOME/messenger` (or `$HOME/.local/share/messenger`). `None` for a user with
    /// neither variable: there is no private place to default to, and a shared one (the
    /// current or the temporary directory) would let other users plant files in the inbox's
    /// way.
    pub fn data_dir(&self, invoker: &Invoker) -> Option<PathBuf> {
        if let Some(d) = &self.data_dir {
            return Some(d.clone());
        }
        if invoker.is_root {
            return Some(PathBuf::from(SYSTEM_DATA_DIR));
        }
        invoker.data_home.as_ref().map(|h| h.join("messenger"))
    }

    /// The control socket: `control_socket`, else [`SYSTEM_CONTROL_SOCKET`], for every user.
    /// The system service serves all users on one socket; a service of one's own (started
    /// without root) must be given its own `control_socket`, and the command line pointed at
    /// it with the same configuration or `--socket`.
    pub fn control_socket(&self) -> PathBuf {
        self.control_socket
            .clone()
            .unwrap_or_else(|| PathBuf::from(SYSTEM_CONTROL_SOCKET))
    }

    /// The OEM code page: `code_page`, else [`DEFAULT_CODE_PAGE`].
    pub fn code_page(&self) -> CodePage {
        self.code_page.unwrap_or(DEFAULT_CODE_PAGE)
    }

    /// UDP port of the name service.
    pub fn name_port(&self) -> u16 {
        self.name_port.unwrap_or(DEFAULT_NAME_PORT)
    }

    /// UDP port of the datagram service.
    pub fn datagram_port(&self) -> u16 {
        self.datagram_port.unwrap_or(DEFAULT_DATAGRAM_PORT)
    }

    /// TCP port of the session service.
    pub fn session_port(&self) -> u16 {
        self.session_port.unwrap_or(DEFAULT_SESSION_PORT)
    }

    /// The utmp file.
    pub fn utmp_path(&self) -> PathBuf {
        self.utmp_path
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_UTMP_PATH))
    }

    /// Where login sessions come from: `login_sessions`, where `auto` with a `utmp_path`
    /// set means utmp.
    pub fn login_sessions(&self) -> LoginSessions {
        match (self.login_sessions, &self.utmp_path) {
            (LoginSessions::Auto, Some(_)) => LoginSessions::Utmp,
            (source, _) => source,
        }
    }

    /// Longest text received.
    pub fn max_message_len(&self) -> usize {
        self.max_message_len.unwrap_or(DEFAULT_MAX_RECEIVE_LEN)
    }
}

impl Invoker {
    /// The running process's view: effective uid, XDG variables, host name.
    pub fn from_environment(is_root: bool, host_name: String) -> Self {
        let absolute = |var| {
            std::env::var_os(var)
                .map(PathBuf::from)
                .filter(|p| p.is_absolute())
        };
        let data_home =
            absolute("XDG_DATA_HOME").or_else(|| absolute("HOME").map(|h| h.join(".local/share")));
        Self {
            is_root,
            data_home,
            host_name,
        }
    }
}

fn line_and_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |nl| before.len() - nl - 1)
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user() -> Invoker {
        Invoker {
            is_root: false,
            data_home: Some("/home/u/.local/share".into()),
            host_name: "build-box.example.org".into(),
        }
    }

    #[test]
    fn empty_file_gives_working_defaults() {
        let c = Config::parse("", "x.toml").unwrap();
        assert_eq!(c.computer_name(&user()), "BUILD-BOX");
        let no_samba = Config {
            samba_config: Some("/nonexistent/smb.conf".into()),
            ..c.clone()
        };
        assert_eq!(no_samba.workgroup(), "WORKGROUP");
        assert_eq!(c.session_port(), 139);
        assert_eq!(
            c.data_dir(&user()),
            Some(PathBuf::from("/home/u/.local/share/messenger"))
        );
        let root = Invoker {
            is_root: true,
            ..user()
        };
        assert_eq!(c.data_dir(&root), Some(PathBuf::from("/var/lib/messenger")));
        assert_eq!(
            c.control_socket(),
            PathBuf::from("/run/messenger/control.sock")
        );
        assert!(c.policy.rate_limit);
        assert!(c.policy.broadcast_sources.is_empty());
        assert_eq!(c.limits.max_connections, 1000);
        assert_eq!(c.limits.max_connections_per_source, 32);
        assert_eq!(c.limits.first_request_timeout_secs, 5);
        assert_eq!(c.limits.request_timeout_secs, 30);
    }

    /// The example configuration shipped in `packaging/` shows every key of `[policy]` and
    /// `[limits]` with its default as `#key = value`: uncommented, those lines must parse and
    /// give exactly the defaults, so the file cannot drift from the code. (Lines with `##` are
    /// examples of non-default values and stay comments.)
    #[test]
    fn packaged_example_config_shows_the_defaults() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../packaging/messenger.toml"
        );
        let text = std::fs::read_to_string(path).expect("packaging/messenger.toml");
        let as_is = Config::parse(&text, path).expect("the example parses as shipped");
        assert_eq!(as_is, Config::default(), "the example must change nothing");
        let uncommented: String = text
            .lines()
            .map(|l| match l.strip_prefix('#') {
                Some(rest)
                    if rest.split_once(" = ").is_some_and(|(key, _)| {
                        !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                    }) =>
                {
                    rest
                }
                _ => l,
            })
            .map(|l| format!("{l}\n"))
            .collect();
        let shown = Config::parse(&uncommented, path).expect("the shown defaults parse");
        assert_eq!(shown.policy, Policy::default());
        assert_eq!(shown.limits, Limits::default());
        assert_eq!(shown.retention, Retention::default());
        for key in [
            "allow",
            "deny",
            "rate_limit",
            "messages_per_second",
            "message_burst",
            "datagrams_per_second",
            "datagram_burst",
            "global_datagrams_per_second",
            "global_datagram_burst",
            "broadcast_sources",
            "broadcast_group",
            "accept_broadcasts",
            "max_connections",
            "max_connections_per_source",
            "first_request_timeout_secs",
            "request_timeout_secs",
            "connection_lifetime_secs",
            "max_errors_per_connection",
            "max_names_per_user",
            "max_blocks_per_message",
            "max_age_days",
            "max_messages_per_user",
            "max_messages",
            "min_free_disk_mib",
            "computer_name",
            "workgroup",
            "data_dir",
            "control_socket",
            "message_command",
            "wins_server",
            "code_page",
            "scope",
            "listen_addresses",
            "name_port",
            "datagram_port",
            "session_port",
            "raw_session_ports",
            "utmp_path",
            "login_sessions",
            "user",
            "max_message_len",
            "netbios",
            "samba_config",
        ] {
            assert!(
                text.contains(&format!("#{key} = ")) || text.contains(&format!("## {key} = ")),
                "{key} is not documented in {path}"
            );
        }
    }

    /// Every user's command line reaches the system service by default, and no default lies
    /// in a directory where other users may create entries (the current or temporary
    /// directory): a user with no home has no default inbox at all.
    #[test]
    fn defaults_never_lie_in_shared_directories() {
        let c = Config::default();
        let homeless = Invoker {
            data_home: None,
            ..user()
        };
        assert_eq!(c.data_dir(&homeless), None);
        assert_eq!(c.control_socket(), Path::new(SYSTEM_CONTROL_SOCKET));
        let temp = std::env::temp_dir();
        for invoker in [user(), homeless] {
            for path in c.data_dir(&invoker).into_iter().chain([c.control_socket()]) {
                assert!(path.is_absolute(), "{path:?}");
                assert!(!path.starts_with(&temp), "{path:?}");
            }
        }
        let own = Config::parse(
            "control_socket = \"/home/u/m.sock\"\ndata_dir = \"/home/u/m\"\n",
            "m",
        )
        .unwrap();
        assert_eq!(own.control_socket(), Path::new("/home/u/m.sock"));
        assert_eq!(own.data_dir(&user()), Some(PathBuf::from("/home/u/m")));
    }

    #[test]
    fn the_workgroup_comes_from_smb_conf_when_not_set_here() {
        let dir = tempfile::tempdir().unwrap();
        let smb = dir.path().join("smb.conf");
        let samba_config = format!("samba_config = {:?}\n", smb.display().to_string());
        let unset = Config::parse(&samba_config, "m").unwrap();
        assert_eq!(
            unset.workgroup(),
            DEFAULT_WORKGROUP,
            "no smb.conf: the default"
        );
        std::fs::write(&smb, "[global]\n   workgroup = sales\n").unwrap();
        assert_eq!(unset.workgroup(), "SALES");
        let set = Config::parse(&format!("{samba_config}workgroup = \"lab\"\n"), "m").unwrap();
        assert_eq!(set.workgroup(), "LAB", "our own setting wins");
        std::fs::write(&smb, "[global]\nworkgroup = NOT A VALID NETBIOS NAME\n").unwrap();
        assert_eq!(
            unset.workgroup(),
            DEFAULT_WORKGROUP,
            "an unusable one is ignored"
        );
    }

    #[test]
    fn errors_name_the_line() {
        let text = "workgroup = \"LAB\"\nsession_port = \"x\"\n";
        match Config::parse(text, "m.toml").unwrap_err() {
            ConfigError::Parse { line, path, .. } => {
                assert_eq!(line, 2);
                assert_eq!(path, "m.toml");
            }
            other => panic!("unexpected {other:?}"),
        }
        let err = Config::parse("\n\nsesion_port = 1\n", "m.toml").unwrap_err();
        assert!(err.to_string().starts_with("m.toml:3:"), "{err}");
        let err = Config::parse("[policy]\nrate_limt = false\n", "m.toml").unwrap_err();
        assert!(err.to_string().contains("m.toml:2:"), "{err}");
        // Values with a syntax of their own are checked as the file is read, with their line.
        for (text, line) in [
            ("workgroup = \"LAB\"\ncode_page = \"cp9999\"\n", 2),
            ("\n\n\nscope = \"..\"\n", 4),
            ("[policy]\n\ndeny = [\"10.0.0.0/33\"]\n", 3),
            ("[policy]\nbroadcast_sources = [\"lan\"]\n", 2),
            ("\nlogin_sessions = \"wtmp\"\n", 2),
        ] {
            match Config::parse(text, "m.toml").unwrap_err() {
                ConfigError::Parse { line: l, .. } => assert_eq!(l, line, "{text:?}"),
                other => panic!("{text:?}: unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn typed_values_are_parsed_once_at_load() {
        let c = Config::parse(
            "code_page = \"cp437\"\nscope = \"corp.example\"\n[policy]\nallow = [\"10.0.0.0/8\"]\n",
            "m",
        )
        .unwrap();
        assert_eq!(c.code_page(), CodePage::Cp437);
        assert_eq!(c.scope, Scope::parse("corp.example").unwrap());
        assert_eq!(c.policy.allow, vec!["10.0.0.0/8".parse::<Cidr>().unwrap()]);
        assert_eq!(Config::default().code_page(), DEFAULT_CODE_PAGE);
        assert_eq!(Config::default().scope, Scope::empty());
    }

    #[test]
    fn retention_keys_parse_and_zero_counts_are_refused_with_their_line() {
        let c = Config::parse(
            "[retention]\nmax_age_days = 7\nmax_messages_per_user = 50\nmax_messages = 900\nmin_free_disk_mib = 0\n",
            "m.toml",
        )
        .unwrap();
        assert_eq!(
            c.retention,
            Retention {
                max_age_days: 7,
                max_messages_per_user: 50,
                max_messages: 900,
                min_free_disk_mib: 0,
            }
        );
        assert!(!c.retention.disk_too_full(0));
        for key in ["max_age_days", "max_messages_per_user", "max_messages"] {
            let text = format!("workgroup = \"LAB\"\n[retention]\n{key} = 0\n");
            let err = Config::parse(&text, "m.toml").unwrap_err().to_string();
            assert!(err.starts_with("m.toml:3:"), "{key}: {err}");
            assert!(err.contains("at least 1"), "{key}: {err}");
        }
        let err = Config::parse("[retention]\nmax_age_days = -1\n", "m.toml").unwrap_err();
        assert!(err.to_string().starts_with("m.toml:2:"), "{err}");
        let err = Config::parse("[retention]\nkeep_days = 1\n", "m.toml").unwrap_err();
        assert!(err.to_string().starts_with("m.toml:2:"), "{err}");
    }

    #[test]
    fn retention_age_and_disk_thresholds() {
        let r = Retention {
            max_age_days: 2,
            min_free_disk_mib: 3,
            ..Retention::default()
        };
        assert_eq!(r.age_cutoff_micros(10 * MICROS_PER_DAY), 8 * MICROS_PER_DAY);
        assert_eq!(
            Retention {
                max_age_days: u64::MAX,
                ..r.clone()
            }
            .age_cutoff_micros(0),
            -i64::MAX
        );
        assert!(r.disk_too_full(3 * 1024 * 1024 - 1));
        assert!(!r.disk_too_full(3 * 1024 * 1024));
    }

    #[test]
    fn invalid_values_are_refused() {
        assert!(Config::parse("computer_name = \"WAY-TOO-LONG-A-NAME\"", "m").is_err());
        assert!(Config::parse("session_port = 0", "m").is_err());
        assert!(Config::parse("[policy]\nmessages_per_second = 0.0", "m").is_err());
        assert!(Config::parse("[policy]\ndatagrams_per_second = -1.0", "m").is_err());
        assert!(Config::parse("[policy]\nglobal_datagrams_per_second = nan", "m").is_err());
        assert!(Config::parse("[policy]\ndeny = [\"10.0.0.0/33\"]", "m").is_err());
        assert!(Config::parse("[policy]\nbroadcast_sources = [\"lan\"]", "m").is_err());
        assert!(Config::parse("[limits]\nmax_blocks_per_message = 0", "m").is_err());
        assert!(Config::parse("[limits]\nconnection_lifetime_secs = 0", "m").is_err());
        assert!(Config::parse("[limits]\nmax_errors_per_connection = 0", "m").is_err());
        assert!(Config::parse("[limits]\nrequest_timeout_secs = 0", "m").is_err());
        let ok = Config::parse(
            "computer_name = \"hosta\"\nsession_port = 13139\nlisten_addresses = [\"127.0.0.1\"]\n[policy]\nrate_limit = false\n",
            "m",
        )
        .unwrap();
        assert_eq!(ok.computer_name(&user()), "HOSTA");
        assert!(!ok.policy.rate_limit);
    }

    #[test]
    fn login_sessions_default_to_auto_and_a_named_utmp_file_means_utmp() {
        let c = Config::parse("", "m.toml").unwrap();
        assert_eq!(c.login_sessions(), LoginSessions::Auto);
        let c = Config::parse("utmp_path = \"/tmp/u\"\n", "m.toml").unwrap();
        assert_eq!(c.login_sessions(), LoginSessions::Utmp);
        let c = Config::parse(
            "utmp_path = \"/tmp/u\"\nlogin_sessions = \"logind\"\n",
            "m.toml",
        )
        .unwrap();
        assert_eq!(c.login_sessions(), LoginSessions::Logind);
    }
}
