//! What every service test needs: an in-process service on loopback with ephemeral ports and
//! a temporary data directory, a raw session service client that speaks the bytes a sender
//! would, a minimal NetBIOS name server, control socket calls, and bounded waits.
//!
//! Nothing here sleeps to let logic happen: every wait polls for an observable effect and
//! fails with a message after [`WAIT`], generous enough for a loaded two-core machine.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use messenger_core::config::Config;
use messenger_core::message::{InboxQuery, StoredMessage};
use messenger_ipc::{Client, Reply, Request};
use messengerd::service::Service;
use messengerd::{Settings, Sockets};
use netbios::nbns::{AddrEntry, NbFlags, NodeType, Packet, PacketKind};
use netbios::nbss::{frame_message, Framer, FramerMode, SessionPacket};
use netbios::smb::header::command;
use netbios::smb::messenger::{
    EndMessage, Request as SmbRequest, Response, SendMessage, StartMessage, TextBlock, Unsupported,
};
use netbios::smb::SmbHeader;
use netbios::{NetbiosName, QualifiedName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Longest wait for anything that should happen promptly (a reply, a registration, a commit,
/// the 2 s utmp poll). Only a broken service takes this long.
pub const WAIT: Duration = Duration::from_secs(30);
/// Pause between two looks at a polled condition.
pub const POLL: Duration = Duration::from_millis(20);

/// The computer name of the services under test.
pub const COMPUTER: &str = "TESTPC";
/// Their workgroup.
pub const WORKGROUP: &str = "TESTWG";

/// Routes the service's log to the test output when `RUST_LOG` asks for it.
pub fn init_logging() {
    if let Ok(filter) = std::env::var("RUST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// Polls `condition` until it holds; fails the test after [`WAIT`].
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// A temporary directory every user can traverse, so that the control socket and the data
/// directory in it are reachable by a service or client running as `nobody`.
pub fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("messengerd-test")
        .tempdir()
        .expect("temporary directory");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("make the temporary directory traversable");
    dir
}

/// Writes a utmp file with one login session per user.
pub fn write_utmp(path: &Path, users: &[&str]) {
    let mut data = Vec::new();
    for (i, user) in users.iter().enumerate() {
        let pid = 1000 + i as i32;
        data.extend_from_slice(&messengerd::host::utmp::encode_record(user, "", pid));
    }
    // Replace the file at once, as login programs do, so the service never reads half of it.
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, data).expect("write utmp");
    std::fs::rename(&tmp, path).expect("replace utmp");
}

/// How to start a [`TestService`].
pub struct Options {
    /// Loopback address to serve on.
    pub address: Ipv4Addr,
    /// Name service port; 0 picks one.
    pub name_port: u16,
    /// A name server to register with.
    pub wins: Option<Ipv4Addr>,
    /// Treat the main session listener as port 139: a session request must come first.
    pub session_request_required: bool,
    /// Also listen on a raw SMB port (`raw_session_ports`).
    pub raw_port: bool,
    /// Further configuration.
    pub configure: Box<dyn FnOnce(&mut Config) + Send>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            address: Ipv4Addr::LOCALHOST,
            name_port: 0,
            wins: None,
            session_request_required: false,
            raw_port: false,
            configure: Box::new(|_| {}),
        }
    }
}

impl Options {
    /// Options with `configure` applied to the configuration.
    pub fn configured(configure: impl FnOnce(&mut Config) + Send + 'static) -> Self {
        Self {
            configure: Box::new(configure),
            ..Self::default()
        }
    }
}

/// A service running in this process.
pub struct TestService {
    /// Its directory: `data/`, `control.sock`, `utmp`.
    pub dir: Arc<tempfile::TempDir>,
    /// Its shared state.
    pub service: Arc<Service>,
    tasks: TaskTracker,
    shutdown: CancellationToken,
    /// The main session listener.
    pub session: SocketAddr,
    /// The raw SMB listener, if asked for.
    pub raw_session: Option<SocketAddr>,
    /// The name service socket.
    pub name: SocketAddrV4,
    /// The datagram service socket.
    pub datagram: SocketAddr,
}

impl Drop for TestService {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestService {
    /// Starts a service in a new directory and waits until its computer name is usable.
    pub async fn start(options: Options) -> Self {
        Self::start_in(Arc::new(open_tempdir()), options).await
    }

    /// Starts a service in `dir` (reusing the data of an earlier one there).
    pub async fn start_in(dir: Arc<tempfile::TempDir>, options: Options) -> Self {
        init_logging();
        let utmp = dir.path().join("utmp");
        if !utmp.exists() {
            write_utmp(&utmp, &[]);
        }
        let mut config = Config {
            computer_name: Some(COMPUTER.into()),
            workgroup: Some(WORKGROUP.into()),
            data_dir: Some(dir.path().join("data")),
            control_socket: Some(dir.path().join("control.sock")),
            utmp_path: Some(utmp),
            listen_addresses: vec![options.address],
            name_port: Some(options.name_port),
            datagram_port: Some(0),
            session_port: Some(0),
            raw_session_ports: if options.raw_port {
                vec![0]
            } else {
                Vec::new()
            },
            wins_server: options.wins,
            ..Config::default()
        };
        config.policy.rate_limit = false;
        (options.configure)(&mut config);
        let mut settings = Settings::resolve(config).expect("settings");
        let mut sockets =
            Sockets::bind(&settings.config, &settings.control_socket).expect("bind sockets");
        if options.session_request_required {
            sockets.sessions[0].session_request_required = true;
        }
        let session = sockets.session_addr().expect("session listener");
        let raw_session = options
            .raw_port
            .then(|| sockets.sessions[1].listener.local_addr().expect("raw port"));
        let SocketAddr::V4(name) = sockets.name_addr().expect("name socket") else {
            panic!("the name service is IPv4");
        };
        let datagram = sockets.datagram_addr().expect("datagram socket");
        // The service's own sends (to names not ours) go to the ports it serves on, as they
        // would with the standard ports.
        settings.config.name_port = Some(name.port());
        settings.config.datagram_port = Some(datagram.port());
        settings.config.session_port = Some(session.port());
        let shutdown = CancellationToken::new();
        let running = messengerd::start(settings, sockets, shutdown.clone())
            .await
            .expect("service starts");
        let service = Self {
            dir,
            service: running.service,
            tasks: running.tasks,
            shutdown,
            session,
            raw_session,
            name,
            datagram,
        };
        let computer = service.service.settings().computer_name.clone();
        service.wait_for_name(&computer).await;
        service
    }

    /// Stops the service the way `run` does: tasks finish, names are released, the inbox
    /// writer stops.
    pub async fn stop(self) -> Arc<tempfile::TempDir> {
        self.shutdown.cancel();
        tokio::time::timeout(WAIT, self.tasks.wait())
            .await
            .expect("tasks stop in time");
        self.service.inbox().close();
        Arc::clone(&self.dir)
    }

    /// Stops the service as `run` does, but allowing its tasks only `grace`; returns how many
    /// it cut off.
    pub async fn stop_within(self, grace: Duration) -> usize {
        self.shutdown.cancel();
        let running = messengerd::Running {
            service: Arc::clone(&self.service),
            tasks: self.tasks.clone(),
        };
        messengerd::stop(&running, grace).await
    }

    /// Tasks of the service running now (listeners, connections, control calls, displays,
    /// message commands).
    pub fn task_count(&self) -> usize {
        self.tasks.len()
    }

    /// The control socket.
    pub fn control(&self) -> PathBuf {
        self.dir.path().join("control.sock")
    }

    /// The utmp file the service reads.
    pub fn utmp(&self) -> PathBuf {
        self.dir.path().join("utmp")
    }

    /// The inbox database file.
    pub fn inbox_file(&self) -> PathBuf {
        self.dir.path().join("data").join(messengerd::INBOX_FILE)
    }

    /// Whether `name<03>` is one of our names and usable.
    pub fn has_usable_name(&self, name: &str) -> bool {
        self.service.names().find_usable(name.as_bytes()).is_some()
    }

    /// Whether `name<03>` is in the name table in any state.
    pub fn has_name(&self, name: &str) -> bool {
        let wanted = NetbiosName::messenger(name).expect("valid name");
        self.service.names().get(&wanted).is_some()
    }

    /// Waits until `name<03>` is registered and usable.
    pub async fn wait_for_name(&self, name: &str) {
        wait_until(&format!("{name}<03> to be registered"), || {
            self.has_usable_name(name)
        })
        .await;
    }

    /// Every message in the inbox, oldest first.
    pub async fn messages(&self) -> Vec<StoredMessage> {
        self.service
            .inbox()
            .list(InboxQuery::default())
            .await
            .expect("list the inbox")
    }

    /// Waits until a message with `text` is in the inbox and returns it.
    pub async fn wait_for_message(&self, text: &str) -> StoredMessage {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(m) = self
                .messages()
                .await
                .into_iter()
                .find(|m| m.message.text == text)
            {
                return m;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for message {text:?}"
            );
            tokio::time::sleep(POLL).await;
        }
    }

    /// Occupies the inbox's writer thread until the returned hold is released: nothing is
    /// committed meanwhile. Returns once the writer is held.
    pub async fn hold_inbox_writer(&self) -> WriterHold {
        let (held_tx, held_rx) = tokio::sync::oneshot::channel();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let inbox = self.service.inbox().clone();
        let done = tokio::spawn(async move {
            inbox
                .with_store(move |_store| {
                    let _ = held_tx.send(());
                    let _ = release_rx.recv();
                    Ok(())
                })
                .await
                .expect("the holding job ran");
        });
        held_rx.await.expect("the writer runs the holding job");
        WriterHold {
            release: release_tx,
            done,
        }
    }

    /// Opens a connection to the main session listener (no session request yet).
    pub async fn connect(&self) -> RawSession {
        RawSession::connect(self.session).await
    }
}

/// The inbox writer held by [`TestService::hold_inbox_writer`].
pub struct WriterHold {
    release: std::sync::mpsc::Sender<()>,
    done: tokio::task::JoinHandle<()>,
}

impl WriterHold {
    /// Lets the writer go on, and waits until it has.
    pub async fn release(self) {
        let _ = self.release.send(());
        self.done.await.expect("the holding job ended");
    }
}

/// Texts of the messages in `messages`.
pub fn texts(messages: &[StoredMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.message.text.as_str()).collect()
}

/// One TCP connection to a session service, driven byte by byte like a sender.
pub struct RawSession {
    stream: TcpStream,
    framer: Framer,
    buf: Vec<u8>,
}

impl RawSession {
    /// Connects to `addr`.
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect in time")
            .expect("connect");
        Self::from_stream(stream)
    }

    /// Speaks over a connected stream (one made in another network namespace).
    pub fn from_stream(stream: TcpStream) -> Self {
        stream.set_nodelay(true).expect("nodelay");
        Self {
            stream,
            framer: Framer::new(FramerMode::SessionService, netbios::nbss::MAX_PAYLOAD_LEN),
            buf: vec![0; 4096],
        }
    }

    /// Sends a session request calling `called` (with its suffix) and returns the answer.
    pub async fn request_session(&mut self, called: NetbiosName) -> Option<SessionPacket> {
        let request = SessionPacket::SessionRequest {
            called: QualifiedName::new(called),
            calling: QualifiedName::new(NetbiosName::new(b"SENDERPC", 0).expect("name")),
        };
        self.write(&request.to_bytes().expect("encode")).await;
        self.next_packet().await
    }

    /// Sends a session request for `name<03>` and checks it is accepted.
    pub async fn establish(&mut self, name: &str) {
        let called = NetbiosName::messenger(name).expect("name");
        assert_eq!(
            self.request_session(called).await,
            Some(SessionPacket::PositiveResponse),
            "session request for {name}<03>"
        );
    }

    /// Whether nothing at all arrives on the connection for `wait`. Only for checking that
    /// something must *not* have happened yet: a correct service never sends within the
    /// window, so this cannot fail falsely; the window only bounds how late a wrong answer
    /// would still be caught.
    pub async fn silent_for(&mut self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.stream.read(&mut self.buf))
            .await
            .is_err()
    }

    /// Writes raw bytes.
    pub async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// Writes one SMB in a session message.
    pub async fn send(&mut self, request: &SmbRequest) {
        let smb = request.to_bytes().expect("encode SMB");
        self.write(&frame_message(&smb).expect("frame")).await;
    }

    /// The next session packet, or None once the service has closed the connection.
    pub async fn next_packet(&mut self) -> Option<SessionPacket> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(p) = self.framer.next_frame().expect("well-framed answer") {
                return Some(p);
            }
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut self.buf))
                .await
                .expect("an answer or a close in time")
                .unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.framer.push(&self.buf[..n]);
        }
    }

    /// The SMB response to the last request.
    pub async fn response(&mut self) -> Response {
        match self.next_packet().await {
            Some(SessionPacket::SessionMessage(smb)) => Response::decode(&smb).expect("response"),
            other => panic!("expected an SMB response, got {other:?}"),
        }
    }

    /// Sends `request` and returns its response.
    pub async fn call(&mut self, request: &SmbRequest) -> Response {
        self.send(request).await;
        self.response().await
    }

    /// Sends `request` and returns its response, or None if the connection fails first
    /// (for a service that may die at any moment).
    pub async fn try_call(&mut self, request: &SmbRequest) -> Option<Response> {
        let smb = request.to_bytes().expect("encode SMB");
        let framed = frame_message(&smb).expect("frame");
        self.stream.write_all(&framed).await.ok()?;
        loop {
            match self.framer.next_frame() {
                Ok(Some(SessionPacket::SessionMessage(smb))) => return Response::decode(&smb).ok(),
                Ok(Some(_)) | Err(_) => return None,
                Ok(None) => {}
            }
            let n = tokio::time::timeout(WAIT, self.stream.read(&mut self.buf))
                .await
                .ok()?
                .ok()?;
            if n == 0 {
                return None;
            }
            self.framer.push(&self.buf[..n]);
        }
    }

    /// Waits until the service closes the connection, with nothing more said.
    pub async fn expect_closed(&mut self) {
        let next = self.next_packet().await;
        assert_eq!(next, None, "expected the connection to be closed");
    }
}

/// 0xD0 from `from` to `to`.
pub fn d0(from: &str, to: &str, text: &str) -> SmbRequest {
    SmbRequest::Send(SendMessage::new(
        from.as_bytes().to_vec(),
        to.as_bytes().to_vec(),
        text.as_bytes().to_vec(),
    ))
}

/// 0xD5 from `from` to `to`.
pub fn d5(from: &str, to: &str) -> SmbRequest {
    SmbRequest::Start(StartMessage::new(
        from.as_bytes().to_vec(),
        to.as_bytes().to_vec(),
    ))
}

/// 0xD7 in group `group_id`.
pub fn d7(group_id: u16, text: &str) -> SmbRequest {
    SmbRequest::Text(TextBlock::new(group_id, text.as_bytes().to_vec()))
}

/// 0xD6 of group `group_id`.
pub fn d6(group_id: u16) -> SmbRequest {
    SmbRequest::End(EndMessage::new(group_id))
}

/// Any other command, with empty parameter and data blocks.
pub fn other_command(code: u8) -> SmbRequest {
    SmbRequest::Unsupported(Unsupported {
        header: SmbHeader::request(code),
        body: vec![0, 0, 0],
    })
}

/// The commands a messenger server does not serve: the obsolete broadcast and forwarding
/// commands and NEGOTIATE.
pub const UNSERVED_COMMANDS: [u8; 5] = [
    command::SEND_BROADCAST,
    command::FORWARD_NAME,
    command::CANCEL_FORWARD,
    command::GET_MACHINE_NAME,
    0x72,
];

/// Calls the control socket at `socket` as this process (root in CI).
pub async fn control_call(socket: &Path, request: Request) -> Reply {
    let socket = socket.to_path_buf();
    tokio::task::spawn_blocking(move || {
        Client::connect(&socket)
            .expect("connect to the control socket")
            .call(&request)
            .expect("control reply")
    })
    .await
    .expect("control call")
}

/// A NetBIOS name server on a loopback address: grants every registration except those of
/// names it says another node holds (answered with an end-node challenge naming that node),
/// and reports every release it is sent.
pub struct NameServer {
    /// Where it listens.
    pub addr: SocketAddrV4,
    releases: mpsc::UnboundedReceiver<NetbiosName>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for NameServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// TTL the name server grants: long enough that no refresh happens during a test.
const GRANTED_TTL: u32 = 3600;

impl NameServer {
    /// Starts at `addr` (port 0 picks one); `held` maps names to the node holding them.
    pub async fn start(addr: SocketAddrV4, held: Vec<(NetbiosName, Ipv4Addr)>) -> Self {
        let socket = UdpSocket::bind(addr).await.expect("bind the name server");
        let SocketAddr::V4(addr) = socket.local_addr().expect("address") else {
            unreachable!("bound to IPv4")
        };
        let (tx, releases) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 1500];
            loop {
                let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                let Ok(packet) = Packet::decode(&buf[..n]) else {
                    continue;
                };
                let Some(question) = packet.question().cloned() else {
                    continue;
                };
                let tid = packet.header.transaction_id;
                let entry = packet.addr_entries().first().copied().unwrap_or(AddrEntry {
                    flags: NbFlags::new(false, NodeType::H),
                    address: Ipv4Addr::UNSPECIFIED,
                });
                let reply = match packet.kind() {
                    PacketKind::NameRegistrationRequest
                    | PacketKind::NameOverwriteDemand
                    | PacketKind::NameRefreshRequest => {
                        match held.iter().find(|(n, _)| *n == question.name.name) {
                            Some((_, owner)) => Packet::end_node_challenge_response(
                                tid,
                                question.name,
                                GRANTED_TTL,
                                AddrEntry {
                                    flags: NbFlags::new(false, NodeType::B),
                                    address: *owner,
                                },
                            ),
                            None => Packet::positive_registration_response(
                                tid,
                                question.name,
                                GRANTED_TTL,
                                entry,
                            ),
                        }
                    }
                    PacketKind::NameReleaseRequest => {
                        let _ = tx.send(question.name.name);
                        Packet::release_response(
                            tid,
                            question.name,
                            entry,
                            netbios::nbns::Rcode::OK,
                        )
                    }
                    _ => continue,
                };
                let _ = socket.send_to(&reply.encode(), from).await;
            }
        });
        Self {
            addr,
            releases,
            task,
        }
    }

    /// Waits until a release of `name` arrives.
    pub async fn wait_for_release(&mut self, name: NetbiosName) {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let released = tokio::time::timeout_at(deadline, self.releases.recv())
                .await
                .unwrap_or_else(|_| panic!("no release of {name} in time"))
                .expect("name server running");
            if released == name {
                return;
            }
        }
    }
}

/// Asks the name service at `to` (from 127.0.0.2, not one of the service's own addresses)
/// and returns the answer, if any comes.
pub async fn ask_name_service(to: SocketAddrV4, request: &Packet) -> Option<Packet> {
    let socket = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), 0))
        .await
        .expect("bind a query socket");
    socket
        .send_to(&request.encode(), to)
        .await
        .expect("send a query");
    let mut buf = vec![0u8; 1500];
    loop {
        let received = tokio::time::timeout(Duration::from_secs(3), socket.recv_from(&mut buf))
            .await
            .ok()?;
        let Ok((n, _)) = received else { return None };
        let packet = Packet::decode(&buf[..n]).expect("decodable answer");
        if packet.header.transaction_id == request.header.transaction_id {
            return Some(packet);
        }
    }
}
