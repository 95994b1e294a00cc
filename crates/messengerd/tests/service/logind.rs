//! Login sessions from systemd-logind. These machines do not boot systemd, so the tests run a
//! private bus (a real dbus-daemon) with a small stand-in for logind's `org.freedesktop.login1`
//! objects; the service's client code is the production code, talking to whatever answers
//! that name on the bus it is given (`DBUS_SYSTEM_BUS_ADDRESS`).

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use messenger_ipc::{Client, Reply, Request};
use messengerd::host::logind::{Logind, LOGIND_SERVICE};
use messengerd::host::utmp::LoginSession;
use zbus::object_server::SignalEmitter;
use zbus::zvariant::{ObjectPath, OwnedObjectPath};

use crate::harness::*;

const MANAGER_PATH: &str = "/org/freedesktop/login1";

/// A dbus-daemon of our own, open to every local user (the service gives up root before it
/// connects).
struct PrivateBus {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl PrivateBus {
    /// Starts one, or says why the test cannot run (no dbus-daemon installed).
    fn start() -> Option<Self> {
        if Command::new("dbus-daemon")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!(
                "#### SKIPPED: dbus-daemon is not installed (Debian package dbus-daemon); \
                 scripts/test installs it"
            );
            return None;
        }
        let dir = open_tempdir();
        let socket = dir.path().join("system_bus_socket");
        let config = dir.path().join("bus.conf");
        std::fs::write(&config, bus_config(&socket)).unwrap();
        let child = Command::new("dbus-daemon")
            .arg("--nofork")
            .arg(format!("--config-file={}", config.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start dbus-daemon");
        let deadline = Instant::now() + WAIT;
        while !socket.exists() {
            assert!(Instant::now() < deadline, "dbus-daemon did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self {
            child,
            address: format!("unix:path={}", socket.display()),
            _dir: dir,
        })
    }

    async fn connect(&self) -> zbus::Connection {
        zbus::connection::Builder::address(self.address.as_str())
            .unwrap()
            .build()
            .await
            .expect("connect to the private bus")
    }
}

/// A bus that anyone on this computer may use, as the system bus is.
fn bus_config(socket: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*"/>
    <allow receive_sender="*"/>
  </policy>
</busconfig>
"#,
        socket.display()
    )
}

/// One session as the stand-in describes it.
#[derive(Clone)]
struct FakeSession {
    id: String,
    uid: u32,
    name: String,
    tty: String,
    kind: String,
    class: String,
    remote: bool,
    remote_host: String,
    state: String,
    leader: u32,
}

fn session(id: &str, name: &str, kind: &str, tty: &str) -> FakeSession {
    FakeSession {
        id: id.into(),
        uid: 65534,
        name: name.into(),
        tty: tty.into(),
        kind: kind.into(),
        class: "user".into(),
        remote: false,
        remote_host: String::new(),
        state: "active".into(),
        leader: 4000,
    }
}

fn session_path(id: &str) -> OwnedObjectPath {
    OwnedObjectPath::try_from(format!("{MANAGER_PATH}/session/_{id}")).unwrap()
}

struct Manager {
    sessions: Arc<Mutex<Vec<FakeSession>>>,
}

#[zbus::interface(name = "org.freedesktop.login1.Manager")]
impl Manager {
    fn list_sessions(&self) -> Vec<(String, u32, String, String, OwnedObjectPath)> {
        self.sessions
            .lock()
            .unwrap()
            .iter()
            .map(|s| {
                (
                    s.id.clone(),
                    s.uid,
                    s.name.clone(),
                    "seat0".to_owned(),
                    session_path(&s.id),
                )
            })
            .collect()
    }

    #[zbus(signal)]
    async fn session_new(
        emitter: &SignalEmitter<'_>,
        session_id: &str,
        object_path: ObjectPath<'_>,
    ) -> zbus::Result<()>;

    #[zbus(signal)]
    async fn session_removed(
        emitter: &SignalEmitter<'_>,
        session_id: &str,
        object_path: ObjectPath<'_>,
    ) -> zbus::Result<()>;
}

struct Session(FakeSession);

#[zbus::interface(name = "org.freedesktop.login1.Session")]
impl Session {
    #[zbus(property)]
    fn name(&self) -> String {
        self.0.name.clone()
    }

    #[zbus(property, name = "TTY")]
    fn tty(&self) -> String {
        self.0.tty.clone()
    }

    #[zbus(property, name = "Type")]
    fn kind(&self) -> String {
        self.0.kind.clone()
    }

    #[zbus(property)]
    fn class(&self) -> String {
        self.0.class.clone()
    }

    #[zbus(property)]
    fn remote(&self) -> bool {
        self.0.remote
    }

    #[zbus(property)]
    fn remote_host(&self) -> String {
        self.0.remote_host.clone()
    }

    #[zbus(property)]
    fn state(&self) -> String {
        self.0.state.clone()
    }

    #[zbus(property)]
    fn leader(&self) -> u32 {
        self.0.leader
    }
}

/// The stand-in for logind: owns `org.freedesktop.login1` on the private bus.
struct StandInLogind {
    connection: zbus::Connection,
    sessions: Arc<Mutex<Vec<FakeSession>>>,
}

impl StandInLogind {
    async fn start(bus: &PrivateBus) -> Self {
        let sessions = Arc::new(Mutex::new(Vec::new()));
        let connection = zbus::connection::Builder::address(bus.address.as_str())
            .unwrap()
            .name(LOGIND_SERVICE)
            .unwrap()
            .serve_at(
                MANAGER_PATH,
                Manager {
                    sessions: Arc::clone(&sessions),
                },
            )
            .unwrap()
            .build()
            .await
            .expect("serve the stand-in logind");
        Self {
            connection,
            sessions,
        }
    }

    /// A session begins: its object appears, then logind announces it.
    async fn log_in(&self, s: FakeSession) {
        let path = session_path(&s.id);
        self.connection
            .object_server()
            .at(&path, Session(s.clone()))
            .await
            .unwrap();
        self.sessions.lock().unwrap().push(s.clone());
        let emitter = SignalEmitter::new(&self.connection, MANAGER_PATH).unwrap();
        Manager::session_new(&emitter, &s.id, path.as_ref())
            .await
            .unwrap();
    }

    /// A session ends: logind announces it and its object goes.
    async fn log_out(&self, id: &str) {
        let path = session_path(id);
        self.sessions.lock().unwrap().retain(|s| s.id != id);
        let emitter = SignalEmitter::new(&self.connection, MANAGER_PATH).unwrap();
        Manager::session_removed(&emitter, id, path.as_ref())
            .await
            .unwrap();
        self.connection
            .object_server()
            .remove::<Session, _>(&path)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn sessions_are_read_from_logind_and_changes_are_announced() {
    let Some(bus) = PrivateBus::start() else {
        return;
    };
    let stand_in = StandInLogind::start(&bus).await;
    stand_in
        .log_in(session("1", "alice", "tty", "/dev/pts/4"))
        .await;
    let greeter = FakeSession {
        class: "greeter".into(),
        ..session("2", "gdm", "x11", "tty1")
    };
    stand_in.log_in(greeter).await;

    let logind = Logind::on(bus.connect().await)
        .await
        .expect("logind answers");
    assert_eq!(
        logind.sessions().await.unwrap(),
        vec![LoginSession {
            user: "alice".into(),
            line: "pts/4".into(),
            host: String::new(),
            pid: 4000,
            seat: "seat0".into(),
        }],
        "the greeter is not a user's session"
    );

    let mut changes = logind.changes().await.unwrap();
    stand_in
        .log_in(session("3", "bob", "wayland", "tty2"))
        .await;
    tokio::time::timeout(WAIT, changes.next())
        .await
        .expect("SessionNew is announced");
    let users: Vec<_> = logind
        .sessions()
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.user, s.line))
        .collect();
    assert_eq!(
        users,
        vec![
            ("alice".to_owned(), "pts/4".to_owned()),
            // A desktop session counts, but its virtual terminal is not written to.
            ("bob".to_owned(), String::new()),
        ]
    );
    stand_in.log_out("1").await;
    tokio::time::timeout(WAIT, changes.next())
        .await
        .expect("SessionRemoved is announced");
}

#[tokio::test]
async fn no_logind_on_the_bus_is_an_error_not_a_hang() {
    let Some(bus) = PrivateBus::start() else {
        return;
    };
    let started = Instant::now();
    assert!(Logind::on(bus.connect().await).await.is_err());
    assert!(started.elapsed() < WAIT);
}

/// Names of the service at `socket` as (name, kind).
async fn names(socket: &Path) -> Vec<(String, String)> {
    let socket = socket.to_owned();
    tokio::task::spawn_blocking(move || {
        let reply = Client::connect(&socket)
            .ok()?
            .call(&Request::NameList)
            .ok()?;
        match reply {
            Reply::Names { names } => Some(
                names
                    .into_iter()
                    .map(|n| (n.name.trim().to_owned(), n.kind))
                    .collect(),
            ),
            other => panic!("unexpected {other:?}"),
        }
    })
    .await
    .unwrap()
    .unwrap_or_default()
}

/// The real binary, told to take sessions from logind: a user logged in only to a desktop
/// (in no utmp) gets their name, and loses it when the session ends.
#[tokio::test]
async fn the_service_registers_users_of_desktop_sessions_from_logind() {
    let Some(bus) = PrivateBus::start() else {
        return;
    };
    let stand_in = StandInLogind::start(&bus).await;
    let daemon = crate::process::Daemon::start_with_env(
        0,
        "login_sessions = \"logind\"",
        &[("DBUS_SYSTEM_BUS_ADDRESS", bus.address.as_str())],
    )
    .await;
    let socket = daemon.control();
    stand_in
        .log_in(session("7", "nobody", "wayland", "tty2"))
        .await;
    let deadline = Instant::now() + WAIT;
    while !names(&socket)
        .await
        .contains(&("NOBODY".to_owned(), "user".to_owned()))
    {
        assert!(
            Instant::now() < deadline,
            "NOBODY was not registered: {:?}",
            names(&socket).await
        );
        tokio::time::sleep(POLL).await;
    }
    stand_in.log_out("7").await;
    let deadline = Instant::now() + WAIT;
    while names(&socket).await.iter().any(|(n, _)| n == "NOBODY") {
        assert!(Instant::now() < deadline, "NOBODY was not released");
        tokio::time::sleep(POLL).await;
    }
}

/// `/USERS` with sessions from logind: a user with a remote terminal session and a desktop
/// session is reported on both (terminal and remote host, seat), and gets one copy.
#[tokio::test]
async fn users_reports_each_logind_session_of_a_user() {
    let Some(bus) = PrivateBus::start() else {
        return;
    };
    let stand_in = StandInLogind::start(&bus).await;
    let daemon = crate::process::Daemon::start_with_env(
        0,
        "login_sessions = \"logind\"",
        &[("DBUS_SYSTEM_BUS_ADDRESS", bus.address.as_str())],
    )
    .await;
    let socket = daemon.control();
    stand_in
        .log_in(FakeSession {
            remote: true,
            remote_host: "198.51.100.4".into(),
            ..session("8", "nobody", "tty", "/dev/pts/9904")
        })
        .await;
    stand_in
        .log_in(session("9", "nobody", "wayland", "tty2"))
        .await;
    let deadline = Instant::now() + WAIT;
    loop {
        let reply = control_call(&socket, crate::users::to_users("from logind")).await;
        let lines = match &reply {
            Reply::Sent { .. } => crate::users::sent_to(reply),
            _ => Vec::new(),
        };
        // Until the service has read both sessions.
        if lines.len() == 2 {
            assert_eq!(
                lines,
                vec![
                    ("nobody on pts/9904 (from 198.51.100.4)".to_owned(), true),
                    ("nobody on seat0".to_owned(), true),
                ]
            );
            break;
        }
        assert!(Instant::now() < deadline, "sessions not read: {lines:?}");
        tokio::time::sleep(POLL).await;
    }
    // Each send stored one copy for the one user.
    let listed = control_call(
        &socket,
        Request::InboxList {
            unread_only: false,
            all_users: true,
            after_id: None,
            limit: None,
            last: None,
        },
    )
    .await;
    let Reply::Messages { messages, .. } = listed else {
        panic!("{listed:?}")
    };
    let last = messages.last().expect("a message");
    assert_eq!(last.text, "from logind");
    assert_eq!(
        last.audience,
        messenger_ipc::Audience::User,
        "one user's copy"
    );
}
