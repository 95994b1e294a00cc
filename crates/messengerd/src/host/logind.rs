//! Who is logged in, from systemd-logind (`org.freedesktop.login1` on the system bus).
//!
//! utmp lists terminal logins only: people on a GNOME, KDE or sway desktop are not in it, so
//! their names were never registered and nothing reached them. logind knows every session,
//! graphical ones included. The service lists the sessions (`ListSessions`), reads each one's
//! `Name`, `TTY`, `Type`, `Class`, `Remote`, `RemoteHost`, `State` and `Leader`, and lists
//! them again whenever logind announces `SessionNew` or `SessionRemoved`.
//!
//! Only user sessions count (class `user`, not greeters or lock screens), and not those that
//! are closing. A graphical session (`x11`, `wayland`, `mir`) keeps no terminal even when
//! logind names one: its virtual terminal is in graphics mode, and a message written there
//! would be marked read without anyone having seen it. The desktop agent shows messages in
//! such sessions.
//!
//! What logind reports is treated like a utmp record: a terminal name that would leave
//! `/dev` is dropped, and at most [`MAX_SESSIONS`] sessions are read.

use std::time::Duration;

use futures_lite::StreamExt;
use zbus::proxy::CacheProperties;
use zbus::zvariant::OwnedObjectPath;

use super::utmp::{LoginSession, MAX_SESSIONS};

/// logind's well-known name on the system bus.
pub const LOGIND_SERVICE: &str = "org.freedesktop.login1";

/// Longest wait for logind to list its sessions and answer for each. logind answers in
/// milliseconds; a bus that does not answer in this time is treated as one without logind,
/// so that a hung bus cannot stop the service from noticing logins by other means.
pub const LOGIND_TIMEOUT: Duration = Duration::from_secs(5);

#[zbus::proxy(
    interface = "org.freedesktop.login1.Manager",
    default_service = "org.freedesktop.login1",
    default_path = "/org/freedesktop/login1"
)]
trait Manager {
    /// Every session: id, uid, user name, seat, object path.
    fn list_sessions(&self) -> zbus::Result<Vec<(String, u32, String, String, OwnedObjectPath)>>;

    #[zbus(signal)]
    fn session_new(&self, session_id: String, object_path: OwnedObjectPath) -> zbus::Result<()>;

    #[zbus(signal)]
    fn session_removed(&self, session_id: String, object_path: OwnedObjectPath)
        -> zbus::Result<()>;
}

#[zbus::proxy(
    interface = "org.freedesktop.login1.Session",
    default_service = "org.freedesktop.login1"
)]
trait Session {
    #[zbus(property)]
    fn name(&self) -> zbus::Result<String>;

    #[zbus(property, name = "TTY")]
    fn tty(&self) -> zbus::Result<String>;

    #[zbus(property, name = "Type")]
    fn kind(&self) -> zbus::Result<String>;

    #[zbus(property)]
    fn class(&self) -> zbus::Result<String>;

    #[zbus(property)]
    fn remote(&self) -> zbus::Result<bool>;

    #[zbus(property)]
    fn remote_host(&self) -> zbus::Result<String>;

    #[zbus(property)]
    fn state(&self) -> zbus::Result<String>;

    #[zbus(property)]
    fn leader(&self) -> zbus::Result<u32>;
}

/// Why logind could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum LogindError {
    /// The bus or logind answered with an error, or not at all.
    #[error("systemd-logind: {0}")]
    Bus(#[from] zbus::Error),
    /// logind did not answer within [`LOGIND_TIMEOUT`].
    #[error("systemd-logind did not answer within {LOGIND_TIMEOUT:?}")]
    Timeout,
}

/// A connection to logind.
#[derive(Clone)]
pub struct Logind {
    connection: zbus::Connection,
    manager: ManagerProxy<'static>,
}

impl Logind {
    /// Connects to logind on the system bus (`DBUS_SYSTEM_BUS_ADDRESS`, else the standard
    /// socket) and checks that it answers.
    pub async fn connect() -> Result<Self, LogindError> {
        let connection = within(zbus::Connection::system()).await?;
        Self::on(connection).await
    }

    /// Uses logind on `connection`, once it has answered a listing.
    pub async fn on(connection: zbus::Connection) -> Result<Self, LogindError> {
        let manager = within(ManagerProxy::new(&connection)).await?;
        let logind = Self {
            connection,
            manager,
        };
        logind.sessions().await?;
        Ok(logind)
    }

    /// The user sessions logind has now, in logind's order.
    pub async fn sessions(&self) -> Result<Vec<LoginSession>, LogindError> {
        tokio::time::timeout(LOGIND_TIMEOUT, self.read_sessions())
            .await
            .map_err(|_| LogindError::Timeout)?
    }

    async fn read_sessions(&self) -> Result<Vec<LoginSession>, LogindError> {
        let listed = self.manager.list_sessions().await?;
        let mut sessions = Vec::new();
        for (_, _, _, seat, path) in listed.into_iter().take(MAX_SESSIONS) {
            // A session that ends while we read it is simply not there any more.
            match self.read_session(path, seat).await {
                Ok(Some(session)) => sessions.push(session),
                Ok(None) => {}
                Err(e) => tracing::debug!(error = %e, "skipping a logind session"),
            }
        }
        Ok(sessions)
    }

    async fn read_session(
        &self,
        path: OwnedObjectPath,
        seat: String,
    ) -> Result<Option<LoginSession>, zbus::Error> {
        let session = SessionProxy::builder(&self.connection)
            .path(path)?
            .cache_properties(CacheProperties::No)
            .build()
            .await?;
        let described = Described {
            name: session.name().await?,
            tty: session.tty().await?,
            kind: session.kind().await?,
            class: session.class().await?,
            remote: session.remote().await?,
            remote_host: session.remote_host().await?,
            state: session.state().await?,
            leader: session.leader().await?,
            seat,
        };
        Ok(described.to_login_session())
    }

    /// Waits until logind announces that a session began or ended. Returns an error when the
    /// announcements cannot be followed (the bus went away).
    pub async fn changes(&self) -> Result<SessionChanges, LogindError> {
        let new = within(self.manager.receive_session_new()).await?;
        let removed = within(self.manager.receive_session_removed()).await?;
        Ok(SessionChanges { new, removed })
    }
}

/// logind's announcements of sessions that began or ended.
pub struct SessionChanges {
    new: SessionNewStream,
    removed: SessionRemovedStream,
}

impl SessionChanges {
    /// The next announcement; `false` once the bus has gone away.
    pub async fn next(&mut self) -> bool {
        tokio::select! {
            n = self.new.next() => n.is_some(),
            r = self.removed.next() => r.is_some(),
        }
    }
}

async fn within<T>(
    call: impl std::future::Future<Output = zbus::Result<T>>,
) -> Result<T, LogindError> {
    tokio::time::timeout(LOGIND_TIMEOUT, call)
        .await
        .map_err(|_| LogindError::Timeout)?
        .map_err(LogindError::Bus)
}

/// A session as logind describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Described {
    name: String,
    tty: String,
    kind: String,
    class: String,
    remote: bool,
    remote_host: String,
    state: String,
    leader: u32,
    seat: String,
}

impl Described {
    /// The login session this is, if it is a user's session that is not closing.
    fn to_login_session(&self) -> Option<LoginSession> {
        if self.class != "user" || self.state == "closing" || self.name.is_empty() {
            return None;
        }
        let graphical = matches!(self.kind.as_str(), "x11" | "wayland" | "mir");
        let line = self.tty.strip_prefix("/dev/").unwrap_or(&self.tty);
        // As for utmp: a terminal name that walks out of /dev would point our writes at any
        // file.
        let line = if graphical || line.contains("..") || line.starts_with('/') {
            String::new()
        } else {
            line.to_owned()
        };
        Some(LoginSession {
            user: self.name.clone(),
            line,
            host: if self.remote {
                self.remote_host.clone()
            } else {
                String::new()
            },
            pid: i32::try_from(self.leader).unwrap_or(0),
            seat: self.seat.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tty_session() -> Described {
        Described {
            name: "alice".into(),
            tty: "pts/3".into(),
            kind: "tty".into(),
            class: "user".into(),
            remote: true,
            remote_host: "10.0.0.5".into(),
            state: "active".into(),
            leader: 4242,
            seat: String::new(),
        }
    }

    #[test]
    fn a_terminal_session_keeps_its_terminal_and_remote_host() {
        let s = tty_session().to_login_session().unwrap();
        assert_eq!(
            s,
            LoginSession {
                user: "alice".into(),
                line: "pts/3".into(),
                host: "10.0.0.5".into(),
                pid: 4242,
                seat: String::new(),
            }
        );
        let local = Described {
            tty: "/dev/tty2".into(),
            remote: false,
            ..tty_session()
        };
        let s = local.to_login_session().unwrap();
        assert_eq!((s.line.as_str(), s.host.as_str()), ("tty2", ""));
    }

    #[test]
    fn a_graphical_session_counts_but_has_no_terminal_to_write_to() {
        for kind in ["x11", "wayland", "mir"] {
            let d = Described {
                tty: "tty2".into(),
                kind: kind.into(),
                ..tty_session()
            };
            let s = d.to_login_session().unwrap();
            assert_eq!(s.user, "alice");
            assert_eq!(s.line, "", "{kind}");
        }
    }

    #[test]
    fn greeters_closing_sessions_and_escaping_terminals_are_left_out() {
        let greeter = Described {
            class: "greeter".into(),
            name: "gdm".into(),
            ..tty_session()
        };
        assert_eq!(greeter.to_login_session(), None);
        let closing = Described {
            state: "closing".into(),
            ..tty_session()
        };
        assert_eq!(closing.to_login_session(), None);
        for tty in ["../etc/passwd", "/dev/../etc/shadow", "//etc/passwd"] {
            let d = Described {
                tty: tty.into(),
                ..tty_session()
            };
            assert_eq!(d.to_login_session().unwrap().line, "", "{tty}");
        }
    }
}
