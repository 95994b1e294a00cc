//! Who is calling and which service they mean: the configuration, the control socket, the
//! login name, and a connection to the service when one runs.

use std::path::PathBuf;

use messenger_core::access::{Identity, SystemAccounts};
use messenger_core::config::{Config, Invoker};
use messenger_ipc::{Client, ClientError};

/// The resolved settings of one invocation.
#[derive(Debug)]
pub struct Context {
    /// `--config`, as given.
    pub config_path: Option<PathBuf>,
    /// `--socket`, as given.
    socket: Option<PathBuf>,
    /// The configuration, once loaded.
    config: std::cell::OnceCell<Config>,
}

/// The configuration could not be read: reported as a failure of the command.
#[derive(Debug)]
pub struct ConfigFailed(pub String);

impl Context {
    /// From the global options.
    pub fn new(config_path: Option<PathBuf>, socket: Option<PathBuf>) -> Self {
        Self {
            config_path,
            socket,
            config: std::cell::OnceCell::new(),
        }
    }

    /// The configuration: `--config`, else the default file if it exists, else defaults.
    pub fn config(&self) -> Result<&Config, ConfigFailed> {
        if let Some(c) = self.config.get() {
            return Ok(c);
        }
        let loaded = Config::load_or_default(self.config_path.as_deref())
            .map_err(|e| ConfigFailed(e.to_string()))?;
        Ok(self.config.get_or_init(|| loaded))
    }

    /// The caller as the configuration's defaults see them.
    fn invoker(&self) -> Invoker {
        let host = nix::unistd::gethostname()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "localhost".to_owned());
        Invoker::from_environment(nix::unistd::geteuid().is_root(), host)
    }

    /// The control socket: `--socket` (or `MESSENGER_SOCKET`), else the configuration's,
    /// else the system service's, the same for every user (see
    /// [`Config::control_socket`]).
    pub fn socket(&self) -> Result<PathBuf, ConfigFailed> {
        if let Some(s) = &self.socket {
            return Ok(s.clone());
        }
        Ok(self.config()?.control_socket())
    }

    /// Whether `--socket` (or `MESSENGER_SOCKET`) chose the socket.
    pub fn socket_overridden(&self) -> bool {
        self.socket.is_some()
    }

    /// This computer's NetBIOS name.
    pub fn computer_name(&self) -> Result<String, ConfigFailed> {
        Ok(self.config()?.computer_name(&self.invoker()))
    }

    /// A connection to the service, or why there is none.
    pub fn connect(&self) -> Result<Client, ConnectFailed> {
        let path = self.socket().map_err(ConnectFailed::Config)?;
        Client::connect(&path).map_err(ConnectFailed::Client)
    }
}

/// Why [`Context::connect`] failed.
#[derive(Debug)]
pub enum ConnectFailed {
    /// The configuration could not be read.
    Config(ConfigFailed),
    /// The socket did not answer.
    Client(ClientError),
}

impl ConnectFailed {
    /// Whether this means "the service is not running" (rather than a broken configuration).
    pub fn not_running(&self) -> bool {
        matches!(self, ConnectFailed::Client(ClientError::NotRunning { .. }))
    }
}

impl std::fmt::Display for ConnectFailed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConnectFailed::Config(c) => f.write_str(&c.0),
            ConnectFailed::Client(e) => write!(f, "{e}"),
        }
    }
}

/// Who runs this command, as the service would see them on its control socket: the
/// effective uid and gid, and the login name of that uid (the number when it has no account).
/// The rules of `messenger_core::access` judge this identity.
pub fn identity() -> Identity {
    SystemAccounts.identity(
        nix::unistd::geteuid().as_raw(),
        nix::unistd::getegid().as_raw(),
    )
}
