//! The `[nats]` table, validated once.

use std::path::PathBuf;
use std::time::Duration;

use messenger_core::config::NatsTable;

/// Most servers a configuration may list: a cluster is 3 to 7 members and a client needs only
/// a few to find the rest; the bound keeps a mistaken list from becoming a connection storm.
pub const MAX_SERVERS: usize = 32;
/// Longest server address accepted, in bytes (a URL with a DNS name and port).
pub const MAX_SERVER_LEN: usize = 512;
/// Most replicas JetStream allows for a stream.
pub const MAX_REPLICAS: usize = 5;
/// Replicas when the configuration does not say: survives one node's loss with a quorum.
pub const DEFAULT_REPLICAS: usize = 3;
/// How long a directory entry lives without a refresh when the configuration does not say:
/// a host that disappears stops holding its names within this time.
pub const DEFAULT_DIRECTORY_MAX_AGE: Duration = Duration::from_secs(15 * 60);
/// The shortest directory lifetime accepted: JetStream expires messages on a timer and a
/// refresh needs a round trip, so shorter lifetimes would flap.
pub const MIN_DIRECTORY_MAX_AGE: Duration = Duration::from_secs(1);
/// How long a message waits for its host or user when the configuration does not say: a
/// host down for a week has been replaced, and a user away for longer will not miss it.
pub const DEFAULT_RETENTION: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// The longest retention accepted, in days: a year; the bound keeps a typo from keeping
/// every message on every replica for ever.
pub const MAX_RETENTION_DAYS: u64 = 366;
/// Seconds in a day.
const DAY_SECS: u64 = 24 * 60 * 60;
/// A directory entry is refreshed this many times per lifetime, so two refreshes can be lost
/// before the entry expires.
pub const REFRESHES_PER_MAX_AGE: u32 = 3;

/// Longest `user` or `password`, in bytes: far more than any account name or generated
/// password needs, and short enough to paste into a server's configuration.
pub const MAX_CREDENTIAL_LEN: usize = 256;

/// How the service authenticates to NATS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// No credentials (a cluster open on a trusted network).
    None,
    /// A `.creds` file.
    File(PathBuf),
    /// A token.
    Token(String),
    /// A user name and password.
    UserPassword {
        /// The user.
        user: String,
        /// Their password.
        password: String,
    },
}

/// TLS settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tls {
    /// The CA the servers' certificates chain to.
    pub ca: Option<PathBuf>,
    /// The client certificate and its key.
    pub client: Option<(PathBuf, PathBuf)>,
}

impl Tls {
    /// Whether TLS is configured at all.
    pub fn is_required(&self) -> bool {
        self.ca.is_some() || self.client.is_some()
    }
}

/// The validated `[nats]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsSettings {
    /// Cluster members, as `nats://`, `tls://`, `ws://` or `wss://` URLs or `host:port`.
    pub servers: Vec<String>,
    /// Authentication.
    pub credentials: Credentials,
    /// TLS.
    pub tls: Tls,
    /// Replicas of the stream and the directory bucket.
    pub replicas: usize,
    /// Lifetime of a directory entry without a refresh.
    pub directory_max_age: Duration,
    /// How long a message waits in the stream for its host or user.
    pub retention: Duration,
    /// Whether the service answers broadcast name queries for names held on other hosts
    /// (`wins_proxy`).
    pub wins_proxy: bool,
}

impl NatsSettings {
    /// Settings for `servers` with every default (tests and tools).
    pub fn new(servers: Vec<String>) -> Self {
        Self {
            servers,
            credentials: Credentials::None,
            tls: Tls::default(),
            replicas: DEFAULT_REPLICAS,
            directory_max_age: DEFAULT_DIRECTORY_MAX_AGE,
            retention: DEFAULT_RETENTION,
            wins_proxy: false,
        }
    }

    /// Validates the table as written.
    pub fn from_table(table: &NatsTable) -> Result<Self, NatsConfigError> {
        if table.servers.is_empty() {
            return Err(NatsConfigError::NoServers);
        }
        if table.servers.len() > MAX_SERVERS {
            return Err(NatsConfigError::TooManyServers(table.servers.len()));
        }
        for server in &table.servers {
            validate_server(server)?;
        }
        let user = match (&table.user, &table.password) {
            (Some(user), Some(password)) if !user.is_empty() && !password.is_empty() => {
                // Both go into the servers' configuration (`messengerd --nats-permissions`)
                // as quoted strings: nothing there may end the quote.
                let plain_user = user.len() <= MAX_CREDENTIAL_LEN
                    && user
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
                let plain_password = password.len() <= MAX_CREDENTIAL_LEN
                    && password
                        .chars()
                        .all(|c| !c.is_control() && c != '"' && c != '\\');
                if !plain_user || !plain_password {
                    return Err(NatsConfigError::BadUserOrPassword);
                }
                Some((user.clone(), password.clone()))
            }
            (None, None) => None,
            _ => return Err(NatsConfigError::UserWithoutPassword),
        };
        let credentials = match (&table.credentials, &table.token, user) {
            (Some(file), None, None) => Credentials::File(file.clone()),
            (None, Some(token), None) if token.is_empty() => {
                return Err(NatsConfigError::EmptyToken)
            }
            (None, Some(token), None) => Credentials::Token(token.clone()),
            (None, None, Some((user, password))) => Credentials::UserPassword { user, password },
            (None, None, None) => Credentials::None,
            _ => return Err(NatsConfigError::TwoCredentials),
        };
        let client = match (&table.tls_cert, &table.tls_key) {
            (Some(cert), Some(key)) => Some((cert.clone(), key.clone())),
            (None, None) => None,
            _ => return Err(NatsConfigError::CertWithoutKey),
        };
        let replicas = table.replicas.unwrap_or(DEFAULT_REPLICAS);
        if !(1..=MAX_REPLICAS).contains(&replicas) {
            return Err(NatsConfigError::Replicas(replicas));
        }
        let directory_max_age = table
            .directory_max_age_secs
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_DIRECTORY_MAX_AGE);
        if directory_max_age < MIN_DIRECTORY_MAX_AGE {
            return Err(NatsConfigError::MaxAgeTooShort);
        }
        let retention = match table.retention_days {
            None => DEFAULT_RETENTION,
            Some(days) if (1..=MAX_RETENTION_DAYS).contains(&days) => {
                Duration::from_secs(days * DAY_SECS)
            }
            Some(days) => return Err(NatsConfigError::Retention(days)),
        };
        Ok(Self {
            servers: table.servers.clone(),
            credentials,
            tls: Tls {
                ca: table.tls_ca.clone(),
                client,
            },
            replicas,
            directory_max_age,
            retention,
            wins_proxy: table.wins_proxy.unwrap_or(false),
        })
    }

    /// How often this host refreshes its directory entries.
    pub fn refresh_interval(&self) -> Duration {
        self.directory_max_age / REFRESHES_PER_MAX_AGE
    }
}

fn validate_server(server: &str) -> Result<(), NatsConfigError> {
    let bad = || NatsConfigError::BadServer(server.chars().take(MAX_SERVER_LEN).collect());
    if server.is_empty() || server.len() > MAX_SERVER_LEN {
        return Err(bad());
    }
    if server.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let rest = match server.split_once("://") {
        Some((scheme, rest)) => {
            if !matches!(scheme, "nats" | "tls" | "ws" | "wss") {
                return Err(bad());
            }
            rest
        }
        None => server,
    };
    // Credentials belong in `credentials` or `token`, where they are not logged with the
    // address.
    if rest.is_empty() || rest.contains('@') {
        return Err(bad());
    }
    server
        .parse::<async_nats::ServerAddr>()
        .map(|_| ())
        .map_err(|_| bad())
}

/// A `[nats]` table that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NatsConfigError {
    /// `servers` is empty.
    #[error("[nats] servers is empty: list at least one cluster member")]
    NoServers,
    /// Too many servers.
    #[error("[nats] servers lists {0} addresses; at most {MAX_SERVERS} are accepted")]
    TooManyServers(usize),
    /// A server address that does not parse.
    #[error("[nats] servers: {0:?} is not a NATS server address (nats://host:port, without user or password)")]
    BadServer(String),
    /// More than one of a credentials file, a token, a user.
    #[error("[nats] sets more than one of credentials, token and user; use one")]
    TwoCredentials,
    /// A user name with other characters than letters, digits, `.`, `_` and `-`, or a
    /// password with a quote, a backslash or a control character, or either too long.
    #[error(
        "[nats] user may hold letters, digits, '.', '_' and '-', password anything but quotes, \
         backslashes and control characters, each at most {MAX_CREDENTIAL_LEN} bytes"
    )]
    BadUserOrPassword,
    /// A user without a password, or the reverse, or either empty.
    #[error("[nats] user and password go together, and neither may be empty")]
    UserWithoutPassword,
    /// An empty token.
    #[error("[nats] token is empty")]
    EmptyToken,
    /// A client certificate without its key or the reverse.
    #[error("[nats] tls_cert and tls_key go together")]
    CertWithoutKey,
    /// Replicas out of range.
    #[error("[nats] replicas = {0}; JetStream keeps 1 to {MAX_REPLICAS}")]
    Replicas(usize),
    /// Directory lifetime too short.
    #[error("[nats] directory_max_age_secs must be at least 1")]
    MaxAgeTooShort,
    /// Retention out of range.
    #[error("[nats] retention_days = {0}; 1 to {MAX_RETENTION_DAYS} days are accepted")]
    Retention(u64),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(servers: &[&str]) -> NatsTable {
        NatsTable {
            servers: servers.iter().map(|s| (*s).to_owned()).collect(),
            ..NatsTable::default()
        }
    }

    #[test]
    fn a_plain_table_gets_the_defaults() {
        let s = NatsSettings::from_table(&table(&["nats://10.0.0.1:4222", "nats2:4222"])).unwrap();
        assert_eq!(s.replicas, DEFAULT_REPLICAS);
        assert_eq!(s.credentials, Credentials::None);
        assert!(!s.tls.is_required());
        assert!(s.refresh_interval() < s.directory_max_age);
    }

    #[test]
    fn bad_tables_are_refused() {
        assert_eq!(
            NatsSettings::from_table(&table(&[])),
            Err(NatsConfigError::NoServers)
        );
        for bad in [
            "",
            "http://x:1",
            "nats://user:pw@x:4222",
            "x 4222",
            "nats://",
        ] {
            assert!(
                matches!(
                    NatsSettings::from_table(&table(&[bad])),
                    Err(NatsConfigError::BadServer(_))
                ),
                "{bad:?}"
            );
        }
        let mut t = table(&["nats://x:4222"]);
        t.token = Some("t".into());
        t.credentials = Some("/c.creds".into());
        assert_eq!(
            NatsSettings::from_table(&t),
            Err(NatsConfigError::TwoCredentials)
        );
        let mut t = table(&["nats://x:4222"]);
        t.user = Some("sitea".into());
        assert_eq!(
            NatsSettings::from_table(&t),
            Err(NatsConfigError::UserWithoutPassword)
        );
        t.password = Some("pw".into());
        assert_eq!(
            NatsSettings::from_table(&t).unwrap().credentials,
            Credentials::UserPassword {
                user: "sitea".into(),
                password: "pw".into()
            }
        );
        t.token = Some("t".into());
        assert_eq!(
            NatsSettings::from_table(&t),
            Err(NatsConfigError::TwoCredentials)
        );
        t.token = None;
        for (user, password) in [
            ("a\"b", "pw"),
            ("a b", "pw"),
            ("sitea", "p\"w"),
            ("sitea", "p\nw"),
        ] {
            t.user = Some(user.into());
            t.password = Some(password.into());
            assert_eq!(
                NatsSettings::from_table(&t),
                Err(NatsConfigError::BadUserOrPassword),
                "{user:?} {password:?}"
            );
        }
        let mut t = table(&["nats://x:4222"]);
        t.tls_cert = Some("/c.pem".into());
        assert_eq!(
            NatsSettings::from_table(&t),
            Err(NatsConfigError::CertWithoutKey)
        );
        let mut t = table(&["nats://x:4222"]);
        t.replicas = Some(0);
        assert_eq!(
            NatsSettings::from_table(&t),
            Err(NatsConfigError::Replicas(0))
        );
        for days in [0, MAX_RETENTION_DAYS + 1] {
            let mut t = table(&["nats://x:4222"]);
            t.retention_days = Some(days);
            assert_eq!(
                NatsSettings::from_table(&t),
                Err(NatsConfigError::Retention(days))
            );
        }
    }

    #[test]
    fn retention_is_seven_days_unless_configured() {
        let s = NatsSettings::from_table(&table(&["nats://x:4222"])).unwrap();
        assert_eq!(s.retention, Duration::from_secs(7 * 24 * 60 * 60));
        let mut t = table(&["nats://x:4222"]);
        t.retention_days = Some(30);
        let s = NatsSettings::from_table(&t).unwrap();
        assert_eq!(s.retention, Duration::from_secs(30 * 24 * 60 * 60));
    }

    #[test]
    fn the_table_parses_from_the_configuration_file() {
        let config = messenger_core::config::Config::parse(
            "[nats]\nservers = [\"nats://127.0.0.1:4222\"]\ntoken = \"s3cret\"\nreplicas = 1\n",
            "messenger.toml",
        )
        .unwrap();
        let s = NatsSettings::from_table(config.nats.as_ref().unwrap()).unwrap();
        assert_eq!(s.credentials, Credentials::Token("s3cret".into()));
        assert_eq!(s.replicas, 1);
        let none = messenger_core::config::Config::parse("", "messenger.toml").unwrap();
        assert!(none.nats.is_none());
    }
}
