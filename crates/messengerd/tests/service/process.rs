//! The `messengerd` binary itself, where a real process must start, die or stop: checking a
//! configuration, losing nothing acknowledged to SIGKILL, stopping cleanly on SIGTERM; and
//! the message command, in-process.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use messenger_ipc::{Client, Reply, Request};
use messenger_store::Store;
use netbios::NetbiosName;

use crate::harness::*;

pub(crate) const BINARY: &str = env!("CARGO_BIN_EXE_messengerd");

/// A `messengerd` process, killed if a test ends without stopping it.
pub(crate) struct Daemon {
    pub(crate) child: Child,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) session: SocketAddrV4,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub(crate) fn log_filter() -> String {
    std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into())
}

/// Writes the configuration of a service on loopback with these ports into `dir`, with
/// `extra` appended to its top level; returns its path.
fn write_config(
    dir: &tempfile::TempDir,
    name_port: u16,
    datagram_port: u16,
    session_port: u16,
    extra: &str,
) -> PathBuf {
    write_config_with(
        dir,
        &format!(
            "listen_addresses = [\"127.0.0.1\"]\n\
             name_port = {name_port}\n\
             datagram_port = {datagram_port}\n\
             session_port = {session_port}\n\
             {extra}\n"
        ),
    )
}

/// Writes a test service's configuration into `dir`, with `top_level` (interfaces, ports)
/// added to its top level; returns its path.
pub(crate) fn write_config_with(dir: &tempfile::TempDir, top_level: &str) -> PathBuf {
    let utmp = dir.path().join("utmp");
    write_utmp(&utmp, &[]);
    let config = dir.path().join("messenger.toml");
    std::fs::write(
        &config,
        format!(
            "computer_name = \"{COMPUTER}\"\n\
             workgroup = \"{WORKGROUP}\"\n\
             data_dir = \"{data}\"\n\
             control_socket = \"{run}/control.sock\"\n\
             utmp_path = \"{utmp}\"\n\
             {top_level}\n\
             [policy]\n\
             rate_limit = false\n",
            data = dir.path().join("data").display(),
            run = dir.path().join("run").display(),
            utmp = utmp.display(),
        ),
    )
    .unwrap();
    config
}

impl Daemon {
    /// Starts the binary on loopback. `name_port` 0 picks a free one; `extra` is appended to
    /// the configuration's top level. Started as root, it gives up root for `nobody`, as in
    /// production, so the directory is traversable (see [`open_tempdir`]).
    async fn start(name_port: u16, extra: &str) -> Self {
        Self::start_with_env(name_port, extra, &[]).await
    }

    /// [`Daemon::start`] with `env` added to the process's environment.
    pub(crate) async fn start_with_env(name_port: u16, extra: &str, env: &[(&str, &str)]) -> Self {
        let dir = open_tempdir();
        let session = SocketAddrV4::new(Ipv4Addr::LOCALHOST, free_tcp_port());
        let name_port = if name_port == 0 {
            free_udp_port()
        } else {
            name_port
        };
        let config = write_config(&dir, name_port, free_udp_port(), session.port(), extra);
        let child = Command::new(BINARY)
            .arg("--config")
            .arg(&config)
            .arg("--log")
            .arg(log_filter())
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .spawn()
            .expect("start messengerd");
        let mut daemon = Self {
            child,
            dir,
            session,
        };
        daemon.wait_until_ready().await;
        daemon
    }

    pub(crate) fn control(&self) -> PathBuf {
        self.dir.path().join("run/control.sock")
    }

    fn pid_file(&self) -> PathBuf {
        self.dir.path().join("run/messengerd.pid")
    }

    pub(crate) fn inbox(&self) -> PathBuf {
        self.dir.path().join("data").join(messengerd::INBOX_FILE)
    }

    /// Waits until the inbox holds at least `count` messages and returns them.
    pub(crate) async fn stored(&self, count: usize) -> Vec<messenger_core::message::NewMessage> {
        let path = self.inbox();
        let deadline = Instant::now() + WAIT;
        loop {
            let path = path.clone();
            let got = tokio::task::spawn_blocking(move || {
                let store = Store::open(&path).expect("open the inbox");
                let listed = store.list(&Default::default()).expect("list");
                listed.into_iter().map(|m| m.message).collect::<Vec<_>>()
            })
            .await
            .unwrap();
            if got.len() >= count {
                return got;
            }
            let texts: Vec<_> = got.iter().map(|m| &m.text).collect();
            assert!(
                Instant::now() < deadline,
                "{count} messages stored, got {texts:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the control socket answers and the computer name is registered.
    pub(crate) async fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("messengerd exited early: {status}");
            }
            let socket = self.control();
            let names = tokio::task::spawn_blocking(move || {
                Client::connect(&socket).ok()?.call(&Request::NameList).ok()
            })
            .await
            .unwrap();
            if let Some(Reply::Names { names }) = names {
                if names
                    .iter()
                    .any(|n| n.name.trim() == COMPUTER && n.state == "registered")
                {
                    return;
                }
            }
            assert!(Instant::now() < deadline, "messengerd did not become ready");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, signal).expect("signal messengerd");
    }

    /// Waits for the process to exit and returns its status.
    pub(crate) async fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "messengerd did not exit");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

#[test]
fn check_config_reports_the_line_of_a_mistake() {
    let dir = open_tempdir();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "computer_name = \"PC\"\nworkgroup = \"WG\"\nsession_prot = 139\n",
    )
    .unwrap();
    let out = Command::new(BINARY)
        .arg("--config")
        .arg(&bad)
        .arg("--check-config")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("{}:3", bad.display())),
        "no file:line in {stderr:?}"
    );

    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "computer_name = \"PC\"\nworkgroup = \"WG\"\nsession_port = 1139\n[policy]\nrate_limit = false\n",
    )
    .unwrap();
    let out = Command::new(BINARY)
        .arg("--config")
        .arg(&good)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let missing = dir.path().join("missing.toml");
    let out = Command::new(BINARY)
        .arg("--config")
        .arg(&missing)
        .arg("--check-config")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
}

/// Sends messages one after another over one connection until the connection fails;
/// records the text of each message the service acknowledged.
async fn sender(addr: SocketAddrV4, id: usize, acked: Arc<Mutex<Vec<String>>>) {
    let mut session = RawSession::connect(SocketAddr::V4(addr)).await;
    for n in 0.. {
        let text = format!("sender {id} message {n}");
        match session.try_call(&d0("LOADER", COMPUTER, &text)).await {
            Some(r) if r.header.status.is_success() => acked.lock().unwrap().push(text),
            Some(r) => panic!("message refused: {r:?}"),
            None => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_loses_no_acknowledged_message() {
    let mut daemon = Daemon::start(0, "").await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let senders: Vec<_> = (0..6)
        .map(|id| tokio::spawn(sender(daemon.session, id, Arc::clone(&acked))))
        .collect();
    // Kill it in full flight.
    wait_until("a good number of acknowledged messages", || {
        acked.lock().unwrap().len() >= 150
    })
    .await;
    daemon.child.kill().expect("SIGKILL");
    daemon.child.wait().unwrap();
    for s in senders {
        tokio::time::timeout(WAIT, s)
            .await
            .expect("senders notice the death")
            .expect("sender");
    }
    let acked = acked.lock().unwrap().clone();

    let path = daemon.inbox();
    let stored = tokio::task::spawn_blocking(move || {
        let store = Store::open(&path).expect("reopen the inbox");
        store.integrity_check().expect("integrity");
        store.list(&Default::default()).expect("list")
    })
    .await
    .unwrap();
    let mut counts = std::collections::HashMap::new();
    for m in &stored {
        *counts.entry(m.message.text.clone()).or_insert(0) += 1;
    }
    for text in &acked {
        assert_eq!(
            counts.get(text).copied().unwrap_or(0),
            1,
            "acknowledged {text:?} is not there exactly once"
        );
    }
    assert!(
        counts.values().all(|&c| c == 1),
        "a message stored twice: {counts:?}"
    );
    assert!(stored.len() >= acked.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_cleanly_and_releases_names() {
    // The service registers with a name server we run, so that its releases come to us.
    let mut wins =
        NameServer::start(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 2), 0), vec![]).await;
    let port = wins.addr.port();
    let mut daemon = Daemon::start(port, &format!("wins_server = \"{}\"", wins.addr.ip())).await;
    assert!(daemon.pid_file().exists(), "pid file while running");
    let pid: u32 = std::fs::read_to_string(daemon.pid_file())
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, daemon.child.id());

    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    wins.wait_for_release(NetbiosName::messenger(COMPUTER).unwrap())
        .await;
    let status = daemon.wait_for_exit().await;
    assert_eq!(status.code(), Some(0), "exit status {status}");
    assert!(!daemon.pid_file().exists(), "pid file left behind");
    assert!(Client::connect(&daemon.control()).is_err());
    let path = daemon.inbox();
    Store::open_read_only(&path)
        .expect("inbox readable")
        .integrity_check()
        .expect("integrity");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_command_gets_every_substitution() {
    let out_dir = open_tempdir();
    let out = out_dir.path().join("out");
    let template = format!(
        "{{ echo %f; echo %t; echo %m; echo %I; cat %s; echo; echo 100%%; }} > {out}.tmp; \
         rm %s; mv {out}.tmp {out}",
        out = out.display()
    );
    let svc = TestService::start(Options {
        session_request_required: true,
        configure: Box::new(move |c| c.message_command = Some(template)),
        ..Options::default()
    })
    .await;
    let mut s = svc.connect().await;
    s.establish(COMPUTER).await;
    let r = s.call(&d0("ALICE", COMPUTER, "it's $(not run)")).await;
    assert!(r.header.status.is_success());
    wait_until("the message command's output", || out.exists()).await;
    let got = std::fs::read_to_string(&out).unwrap();
    assert_eq!(
        got,
        format!("ALICE\n{COMPUTER}\nSENDERPC\n127.0.0.1\nit's $(not run)\n100%\n")
    );
    // The spool file was handed over and removed by the command.
    let spool = svc.dir.path().join("data/spool");
    assert_eq!(std::fs::read_dir(spool).unwrap().count(), 0);
}

/// Connections and control calls are tasks of the service, so shutdown waits for them; a
/// message command that does not end within the grace period is cut off and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_waits_for_every_task_and_counts_what_it_cuts() {
    let gate_dir = open_tempdir();
    let gate = gate_dir.path().join("open");
    let started = gate_dir.path().join("started");
    let template = format!(
        "touch {s}; while [ ! -e {g} ]; do sleep 0.05; done",
        s = started.display(),
        g = gate.display()
    );
    let svc = TestService::start(Options {
        session_request_required: true,
        configure: Box::new(move |c| c.message_command = Some(template)),
        ..Options::default()
    })
    .await;
    let idle = svc.task_count();
    let mut s = svc.connect().await;
    s.establish(COMPUTER).await;
    wait_until("the connection to be a task", || svc.task_count() > idle).await;
    let with_connection = svc.task_count();
    let control = Client::connect(&svc.control()).expect("control socket");
    wait_until("the control call to be a task", || {
        svc.task_count() > with_connection
    })
    .await;
    drop(control);
    let r = s.call(&d0("ALICE", COMPUTER, "held up")).await;
    assert!(r.header.status.is_success());
    wait_until("the message command to start", || started.exists()).await;
    // The command waits for a gate that never opens during the grace period.
    let cut = svc.stop_within(Duration::from_millis(200)).await;
    assert!(cut >= 1, "the waiting message command was not counted");
    std::fs::write(&gate, b"").unwrap();
}

/// systemd's socket activation stand-in (package systemd), which hands its listening sockets
/// to the program it starts as `LISTEN_FDS`, passing through those it inherited itself.
pub(crate) const SOCKET_ACTIVATE: &str = "systemd-socket-activate";

/// Whether systemd-socket-activate can run; says loudly why the test cannot when not.
fn socket_activate_installed() -> bool {
    let ok = Command::new(SOCKET_ACTIVATE)
        .arg("--version")
        .output()
        .is_ok();
    if !ok {
        eprintln!(
            "#### SKIPPED: {SOCKET_ACTIVATE} is not installed (Debian package systemd); \
             scripts/test installs it"
        );
    }
    ok
}

/// The UDP sockets bound to `port` on 127.0.0.1, counted in /proc/net/udp.
fn udp_sockets_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/udp").expect("/proc/net/udp");
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| l.split_whitespace().nth(1) == Some(local.as_str()))
        .count()
}

/// Starts `messengerd` the way `messengerd.socket` does, with systemd-socket-activate:
/// the session port's TCP listener, then the name and datagram ports' UDP sockets. Returns
/// the launcher, which becomes messengerd when a connection arrives.
fn start_activated(
    dir: &tempfile::TempDir,
    config: &std::path::Path,
    session: u16,
    udp: [u16; 2],
) -> Child {
    let l = |port: u16| format!("--listen=127.0.0.1:{port}");
    Command::new(SOCKET_ACTIVATE)
        .arg(l(session))
        .arg(SOCKET_ACTIVATE)
        .arg("--datagram")
        .arg(l(udp[0]))
        .arg(l(udp[1]))
        .arg(BINARY)
        .arg("--config")
        .arg(config)
        .arg("--log")
        .arg(log_filter())
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("systemd-socket-activate (package systemd) runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_activation_serves_the_inherited_sockets() {
    if !socket_activate_installed() {
        return;
    }
    let dir = open_tempdir();
    let session = SocketAddrV4::new(Ipv4Addr::LOCALHOST, free_tcp_port());
    let (name_port, datagram_port) = (free_udp_port(), free_udp_port());
    let config = write_config(&dir, name_port, datagram_port, session.port(), "");
    let child = start_activated(&dir, &config, session.port(), [name_port, datagram_port]);
    let mut daemon = Daemon {
        child,
        dir,
        session,
    };
    // The launcher holds the ports and starts the service at the first connection, which the
    // service then accepts on the inherited listener: the message comes over it.
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(session).is_err() {
        assert!(Instant::now() < deadline, "the launcher does not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut first = RawSession::connect(SocketAddr::V4(session)).await;
    daemon.wait_until_ready().await;
    first.establish(COMPUTER).await;
    let reply = first
        .call(&d0("ADMIN", COMPUTER, "over the inherited listener"))
        .await;
    assert!(reply.header.status.is_success(), "{reply:?}");

    // A mailslot message to our name on the inherited datagram socket.
    let peer = tokio::net::UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), 0))
        .await
        .unwrap();
    let params = netbios::mailslot::SendParams::new(
        netbios::QualifiedName::new(NetbiosName::new(b"PEERPC", 0).unwrap()),
        Ipv4Addr::new(127, 0, 0, 2),
        7,
    );
    let message = netbios::mailslot::MessengerMessage::new(
        "PEERUSER",
        COMPUTER,
        "over the inherited datagram socket",
    )
    .unwrap();
    let datagram = netbios::mailslot::build_directed(
        &params,
        &netbios::QualifiedName::new(NetbiosName::messenger(COMPUTER).unwrap()),
        &message,
    )
    .unwrap();
    peer.send_to(
        &datagram.encode().unwrap(),
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, datagram_port),
    )
    .await
    .unwrap();

    let mut texts: Vec<String> = daemon.stored(2).await.into_iter().map(|m| m.text).collect();
    texts.sort();
    assert_eq!(
        texts,
        [
            "over the inherited datagram socket",
            "over the inherited listener"
        ]
    );
    // The service bound nothing of its own on the NetBIOS ports: one socket each, the
    // launcher's.
    assert_eq!(udp_sockets_on(name_port), 1, "name service port");
    assert_eq!(udp_sockets_on(datagram_port), 1, "datagram service port");

    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let status = daemon.wait_for_exit().await;
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inherited_socket_on_an_unconfigured_port_is_refused() {
    if !socket_activate_installed() {
        return;
    }
    let dir = open_tempdir();
    let session = free_tcp_port();
    let (name_port, datagram_port, stray) = (free_udp_port(), free_udp_port(), free_udp_port());
    let config = write_config(&dir, name_port, datagram_port, session, "");
    // The datagram service's socket on a port the configuration does not name.
    let mut child = start_activated(&dir, &config, session, [name_port, stray]);
    let deadline = Instant::now() + WAIT;
    loop {
        let _ = std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, session));
        if child.try_wait().unwrap().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "messengerd did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "inherited socket 2 (fd 5) is UDP 127.0.0.1:{stray}, which is not a configured port"
        )),
        "{stderr}"
    );
}
