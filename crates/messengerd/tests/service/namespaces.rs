//! Socket activation on a host with two subnets: the real `messengerd`, handed wildcard
//! sockets as `messengerd.socket` hands them, in a network namespace of its own with two
//! interfaces, each a veth pair to a peer namespace on its own subnet. Everything runs in
//! namespaces the test creates and deletes (also when it fails); it needs root, and says
//! loudly that it was skipped otherwise.
//!
//! ```text
//!  peer A  10.231.1.2/24 --- 10.231.1.1/24  (service)  10.231.2.1/24 --- 10.231.2.2/24  peer B
//! ```

use std::net::{Ipv4Addr, SocketAddrV4, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use netbios::{NetbiosName, QualifiedName};

use crate::harness::*;
use crate::process::{log_filter, write_config_with, Daemon, BINARY, SOCKET_ACTIVATE};

/// NetBIOS's well-known ports, which the socket unit binds.
const NAME_PORT: u16 = 137;
const DATAGRAM_PORT: u16 = 138;
const SESSION_PORT: u16 = 139;

/// One subnet: the service's address on it and the peer's.
struct Subnet {
    peer_ns: String,
    service: Ipv4Addr,
    peer: Ipv4Addr,
    broadcast: Ipv4Addr,
}

/// The namespaces of one run, deleted when dropped (a failed assertion included).
struct Namespaces {
    names: Vec<String>,
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        for ns in &self.names {
            let _ = Command::new("ip")
                .args(["netns", "delete", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether this test can run here; says loudly why not.
fn can_run() -> bool {
    let why = if !nix::unistd::geteuid().is_root() {
        Some("needs root to create network namespaces")
    } else if Command::new("ip").arg("-V").output().is_err() {
        Some("ip (package iproute2) is not installed")
    } else if Command::new("nmblookup").arg("-V").output().is_err() {
        Some("nmblookup (package samba-common-bin) is not installed")
    } else if Command::new(SOCKET_ACTIVATE)
        .arg("--version")
        .output()
        .is_err()
    {
        Some("systemd-socket-activate (package systemd) is not installed")
    } else {
        None
    };
    if let Some(why) = why {
        eprintln!(
            "#### SKIPPED: socket activation on two subnets {why}; scripts/test as root runs it"
        );
    }
    why.is_none()
}

/// Runs `f` on a thread that has entered namespace `ns`: sockets it makes belong there, and
/// stay there wherever they are used afterwards.
fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let file = std::fs::File::open(format!("/run/netns/{ns}")).expect("namespace file");
    std::thread::spawn(move || {
        nix::sched::setns(file.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        f()
    })
    .join()
    .expect("thread in the namespace")
}

/// Builds the service namespace with one interface per subnet, each to a peer namespace.
fn build(service_ns: &str, subnets: &[Subnet]) {
    ip(&["netns", "add", service_ns]);
    ip(&["-n", service_ns, "link", "set", "lo", "up"]);
    for (i, s) in subnets.iter().enumerate() {
        let (ours, theirs) = (format!("svc{i}"), format!("peer{i}"));
        ip(&["netns", "add", &s.peer_ns]);
        ip(&["-n", &s.peer_ns, "link", "set", "lo", "up"]);
        ip(&[
            "-n", service_ns, "link", "add", &ours, "type", "veth", "peer", "name", &theirs,
            "netns", &s.peer_ns,
        ]);
        let cidr = |a: Ipv4Addr| format!("{a}/24");
        let brd = s.broadcast.to_string();
        ip(&[
            "-n",
            service_ns,
            "addr",
            "add",
            &cidr(s.service),
            "broadcast",
            &brd,
            "dev",
            &ours,
        ]);
        ip(&[
            "-n",
            &s.peer_ns,
            "addr",
            "add",
            &cidr(s.peer),
            "broadcast",
            &brd,
            "dev",
            &theirs,
        ]);
        ip(&["-n", service_ns, "link", "set", &ours, "up"]);
        ip(&["-n", &s.peer_ns, "link", "set", &theirs, "up"]);
    }
}

/// The address a name registration request (RFC 1002 4.2.2: opcode 5, a request) registers:
/// the NB_ADDRESS that ends it; `None` for any other packet.
fn registration_address(packet: &[u8]) -> Option<Ipv4Addr> {
    let flags = packet.get(2)?;
    let is_request = flags & 0x80 == 0;
    let opcode = (flags >> 3) & 0x0f;
    if !is_request || opcode != 5 || packet.len() < 4 {
        return None;
    }
    let tail: [u8; 4] = packet[packet.len() - 4..].try_into().ok()?;
    Some(Ipv4Addr::from(tail))
}

/// Waits until `listener` has heard a registration from `source` and returns the address it
/// registered.
fn registration_from(listener: &UdpSocket, source: Ipv4Addr) -> Ipv4Addr {
    let deadline = Instant::now() + WAIT;
    let mut buf = [0; 1500];
    listener
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    loop {
        assert!(
            Instant::now() < deadline,
            "no registration broadcast from {source}"
        );
        let Ok((n, from)) = listener.recv_from(&mut buf) else {
            continue;
        };
        if from.ip() == std::net::IpAddr::V4(source) && from.port() == NAME_PORT {
            if let Some(addr) = registration_address(&buf[..n]) {
                return addr;
            }
        }
    }
}

/// `nmblookup -B` from the peer namespace: the answering addresses for `name`.
fn nmblookup(dir: &tempfile::TempDir, subnet: &Subnet, name: &str) -> String {
    // A client configuration of its own, so that nothing of the host's Samba is read.
    let state = dir.path().join(format!("samba-{}", subnet.peer));
    std::fs::create_dir_all(&state).unwrap();
    let conf = state.join("smb.conf");
    std::fs::write(
        &conf,
        format!(
            "[global]\n  workgroup = {WORKGROUP}\n  name resolve order = bcast\n  \
             lock directory = {d}\n  state directory = {d}\n  cache directory = {d}\n  \
             private dir = {d}\n  log file = {d}/log\n",
            d = state.display()
        ),
    )
    .unwrap();
    let out = Command::new("ip")
        .args(["netns", "exec", &subnet.peer_ns, "nmblookup", "-s"])
        .arg(&conf)
        .args(["-B", &subnet.broadcast.to_string(), name])
        .output()
        .expect("run nmblookup");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The test network: the service's namespace and two subnets, each to a peer namespace.
struct Network {
    service_ns: String,
    subnets: [Subnet; 2],
    _namespaces: Namespaces,
}

impl Network {
    /// Builds it; `test` tells the namespaces of tests running at once apart.
    fn build(test: &str) -> Self {
        let tag = format!("{test}-{}", std::process::id());
        let service_ns = format!("msgd-svc-{tag}");
        let subnet = |name: &str, third: u8| Subnet {
            peer_ns: format!("msgd-{name}-{tag}"),
            service: Ipv4Addr::new(10, 231, third, 1),
            peer: Ipv4Addr::new(10, 231, third, 2),
            broadcast: Ipv4Addr::new(10, 231, third, 255),
        };
        let subnets = [subnet("a", 1), subnet("b", 2)];
        let namespaces = Namespaces {
            names: std::iter::once(service_ns.clone())
                .chain(subnets.iter().map(|s| s.peer_ns.clone()))
                .collect(),
        };
        build(&service_ns, &subnets);
        Self {
            service_ns,
            subnets,
            _namespaces: namespaces,
        }
    }

    /// Starts the launcher with messengerd.socket's sockets (TCP 139, then UDP 137 and 138,
    /// all on the wildcard) and `top_level` in the configuration; the service starts at the
    /// first connection.
    fn start(&self, top_level: &str) -> Daemon {
        let dir = open_tempdir();
        let config = write_config_with(&dir, top_level);
        let any = |port: u16| format!("--listen=0.0.0.0:{port}");
        let child = Command::new("ip")
            .args(["netns", "exec", &self.service_ns, SOCKET_ACTIVATE])
            .arg(any(SESSION_PORT))
            .arg(SOCKET_ACTIVATE)
            .arg("--datagram")
            .arg(any(NAME_PORT))
            .arg(any(DATAGRAM_PORT))
            .arg(BINARY)
            .arg("--config")
            .arg(&config)
            .arg("--log")
            .arg(log_filter())
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .spawn()
            .expect("start the launcher in the namespace");
        Daemon {
            child,
            dir,
            session: SocketAddrV4::new(self.subnets[0].service, SESSION_PORT),
        }
    }
}

/// A session service connection from `subnet`'s peer to the service's address there.
fn connect(subnet: &Subnet) -> RawSession {
    let to = SocketAddrV4::new(subnet.service, SESSION_PORT);
    let stream = in_ns(&subnet.peer_ns, move || {
        let deadline = Instant::now() + WAIT;
        loop {
            match TcpStream::connect(to) {
                Ok(stream) => return stream,
                Err(e) => assert!(Instant::now() < deadline, "connect to {to}: {e}"),
            }
            std::thread::sleep(POLL);
        }
    });
    stream.set_nonblocking(true).unwrap();
    RawSession::from_stream(tokio::net::TcpStream::from_std(stream).unwrap())
}

/// A mailslot broadcast of `text` to the workgroup from `subnet`'s peer.
fn broadcast_from(subnet: &Subnet, text: String) {
    let (peer, broadcast) = (subnet.peer, subnet.broadcast);
    in_ns(&subnet.peer_ns, move || {
        let socket = UdpSocket::bind((peer, 0)).unwrap();
        socket.set_broadcast(true).unwrap();
        let params = netbios::mailslot::SendParams::new(
            QualifiedName::new(NetbiosName::new(b"PEERPC", 0).unwrap()),
            peer,
            7,
        );
        let message =
            netbios::mailslot::MessengerMessage::new("PEERUSER", WORKGROUP, text.as_bytes())
                .unwrap();
        let datagram = netbios::mailslot::build_broadcast(
            &params,
            &QualifiedName::new(NetbiosName::new(WORKGROUP.as_bytes(), 0).unwrap()),
            &message,
        )
        .unwrap();
        socket
            .send_to(&datagram.encode().unwrap(), (broadcast, DATAGRAM_PORT))
            .unwrap();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_sockets_serve_two_subnets_each_from_its_own_address() {
    if !can_run() {
        return;
    }
    let net = Network::build("all");
    let subnets = &net.subnets;

    // Each peer listens on the name service port for the service's registrations.
    let listeners: Vec<UdpSocket> = subnets
        .iter()
        .map(|s| {
            in_ns(&s.peer_ns, || {
                let l = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, NAME_PORT)).expect("bind 137");
                l.set_broadcast(true).unwrap();
                l
            })
        })
        .collect();

    // Every interface (no listen_addresses), the default ports.
    let mut daemon = net.start("");

    // A directed message over TCP 139 from each subnet; the first connection starts the
    // service.
    for (i, s) in subnets.iter().enumerate() {
        let mut session = connect(s);
        if i == 0 {
            daemon.wait_until_ready().await;
        }
        session.establish(COMPUTER).await;
        let reply = session
            .call(&d0("PEER", COMPUTER, &format!("directed from {}", s.peer)))
            .await;
        assert!(reply.header.status.is_success(), "{reply:?}");
    }

    // The service's registrations went out on both subnets, from and for that subnet's
    // address.
    for (s, listener) in subnets.iter().zip(&listeners) {
        assert_eq!(registration_from(listener, s.service), s.service);
    }

    // A broadcast name query on each subnet is answered with that subnet's address.
    for s in subnets {
        let out = nmblookup(&daemon.dir, s, COMPUTER);
        let expected = format!("{} {COMPUTER}<00>", s.service);
        assert!(out.contains(&expected), "from {}: {out}", s.peer);
        let other = subnets.iter().find(|o| o.service != s.service).unwrap();
        assert!(
            !out.contains(&other.service.to_string()),
            "from {}: {out}",
            s.peer
        );
    }

    // A mailslot broadcast to the workgroup on each subnet.
    for s in subnets {
        broadcast_from(s, format!("broadcast from {}", s.peer));
    }

    // All four in the inbox, each from its subnet's peer.
    let mut got: Vec<_> = daemon
        .stored(4)
        .await
        .into_iter()
        .map(|m| (m.text, m.source.map(|a| a.ip())))
        .collect();
    got.sort();
    let mut expected = Vec::new();
    for s in subnets {
        let from = Some(std::net::IpAddr::V4(s.peer));
        expected.push((format!("broadcast from {}", s.peer), from));
        expected.push((format!("directed from {}", s.peer), from));
    }
    expected.sort();
    assert_eq!(got, expected);

    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let status = daemon.wait_for_exit().await;
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_sockets_serve_only_the_selected_interfaces() {
    if !can_run() {
        return;
    }
    let net = Network::build("one");
    let [a, b] = &net.subnets;
    let mut daemon = net.start(&format!("listen_addresses = [\"{}\"]", a.service));
    let mut session = connect(a);
    daemon.wait_until_ready().await;
    session.establish(COMPUTER).await;

    let out = nmblookup(&daemon.dir, a, COMPUTER);
    assert!(
        out.contains(&format!("{} {COMPUTER}<00>", a.service)),
        "{out}"
    );
    // Subnet B is not served: its query goes unanswered.
    let out = nmblookup(&daemon.dir, b, COMPUTER);
    assert!(!out.contains(&format!("{COMPUTER}<00>")), "{out}");

    // B's broadcast reaches the shared socket before A's, and is dropped: once A's is
    // stored, B's is gone.
    broadcast_from(b, "from the unserved subnet".into());
    broadcast_from(a, "from the served subnet".into());
    let texts: Vec<_> = daemon.stored(1).await.into_iter().map(|m| m.text).collect();
    assert_eq!(texts, ["from the served subnet"]);

    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    let status = daemon.wait_for_exit().await;
    assert!(status.success(), "{status}");
}
