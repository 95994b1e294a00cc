//! Peers for tests, built from the `netbios` state machines on loopback with ephemeral ports:
//! a name service holding some names ([`NameResponder`]), a message server
//! ([`MessageReceiver`]) and a datagram listener ([`DatagramListener`]). Enabled by the
//! `test-support` feature; used by this crate's tests and by the command line's.
//!
//! Time is real (sockets are), but nothing sleeps for logic: every wait is for an event, with
//! a bounded timeout only so that a broken test fails instead of hanging.

use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use netbios::nbns::{NameEvent, NameService, NameServiceConfig, RetryPolicy, NAME_SERVICE_PORT};
use netbios::smb::{
    DeliveryError, IncomingMessage, ReceiverConfig, ReceiverEvent, ReceiverSession,
};
use netbios::NetbiosName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;

/// Longest a test peer waits for something that should happen at once.
pub const TEST_WAIT: Duration = Duration::from_secs(10);

/// A name service on 127.0.0.1 holding some names, answering queries and node status requests.
#[derive(Debug)]
pub struct NameResponder {
    /// The port it listens on: the senders' `name_port`.
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl NameResponder {
    /// Starts a responder at `addr` (a loopback address) holding `names` (unique), and waits
    /// until they are registered.
    pub async fn start(addr: Ipv4Addr, names: &[NetbiosName]) -> Self {
        let socket = UdpSocket::bind(SocketAddrV4::new(addr, 0))
            .await
            .expect("bind name responder");
        let port = socket.local_addr().expect("local addr").port();
        let mut config = NameServiceConfig::new(addr, addr);
        config.local_port = port;
        // One registration broadcast, briefly: nobody else is on this test segment.
        config.registration_broadcast = RetryPolicy {
            count: 1,
            interval: Duration::from_millis(5),
        };
        let mut service = NameService::new(config);
        let now = Instant::now();
        for name in names {
            service.register(*name, false, now).expect("register");
        }
        let (registered_tx, mut registered_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(drive_names(service, socket, registered_tx));
        let mut pending: HashSet<NetbiosName> = names.iter().copied().collect();
        while !pending.is_empty() {
            let name = tokio::time::timeout(TEST_WAIT, registered_rx.recv())
                .await
                .expect("names registered in time")
                .expect("responder running");
            pending.remove(&name);
        }
        Self { port, task }
    }
}

impl Drop for NameResponder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn drive_names(
    mut service: NameService,
    socket: UdpSocket,
    registered: mpsc::UnboundedSender<NetbiosName>,
) {
    let own_port = service.config().local_port;
    let mut buf = vec![0u8; 65_535];
    loop {
        while let Some(t) = service.poll_transmit() {
            let mut to = t.destination;
            // Registration broadcasts go to port 137; send them to ourselves instead (they
            // are ignored as our own), so that no real name service on this host sees them.
            if to.port() == NAME_SERVICE_PORT {
                to.set_port(own_port);
            }
            let _ = socket.send_to(&t.payload, to).await;
        }
        while let Some(event) = service.poll_event() {
            if let NameEvent::Registered(name) = event {
                let _ = registered.send(name);
            }
        }
        let deadline = service
            .poll_timeout()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                if let Ok((n, SocketAddr::V4(from))) = r {
                    let _ = service.handle(Instant::now(), from, &buf[..n]);
                }
            }
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                service.handle_timeout(Instant::now());
            }
        }
    }
}

/// How a [`MessageReceiver`] behaves.
#[derive(Debug, Clone)]
pub struct ReceiverBehaviour {
    /// Session settings (whether a session request is required).
    pub config: ReceiverConfig,
    /// Called names accepted in session requests; empty accepts any.
    pub names: Vec<NetbiosName>,
    /// What to answer to each complete message.
    pub verdict: Result<(), DeliveryError>,
    /// DestinationNames taken; a message to another gets `NotOurName` (and is not reported).
    /// Empty takes any.
    pub recipients: Vec<Vec<u8>>,
    /// Drop the connection when the first SMB is a bare 0xD0, as Samba's smbd does.
    pub like_samba: bool,
}

impl Default for ReceiverBehaviour {
    fn default() -> Self {
        Self {
            config: ReceiverConfig::direct_port(),
            names: Vec::new(),
            verdict: Ok(()),
            recipients: Vec::new(),
            like_samba: false,
        }
    }
}

/// A message server on 127.0.0.1 that reports each message it takes.
#[derive(Debug)]
pub struct MessageReceiver {
    /// The port it listens on: the senders' `session_port`.
    pub port: u16,
    messages: mpsc::UnboundedReceiver<IncomingMessage>,
    /// Connections dropped for a first 0xD0 (Samba behaviour).
    dropped: mpsc::UnboundedReceiver<()>,
    task: tokio::task::JoinHandle<()>,
}

impl MessageReceiver {
    /// Starts listening on 127.0.0.1.
    pub async fn start(behaviour: ReceiverBehaviour) -> Self {
        let listener = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind receiver");
        let port = listener.local_addr().expect("local addr").port();
        let (tx, messages) = mpsc::unbounded_channel();
        let (dropped_tx, dropped) = mpsc::unbounded_channel();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(
                    stream,
                    behaviour.clone(),
                    tx.clone(),
                    dropped_tx.clone(),
                ));
            }
        });
        Self {
            port,
            messages,
            dropped,
            task,
        }
    }

    /// The next message taken (waits a bounded time).
    pub async fn next_message(&mut self) -> IncomingMessage {
        tokio::time::timeout(TEST_WAIT, self.messages.recv())
            .await
            .expect("a message in time")
            .expect("receiver running")
    }

    /// A message if one has been taken already.
    pub fn try_message(&mut self) -> Option<IncomingMessage> {
        self.messages.try_recv().ok()
    }

    /// How many connections were dropped for a first 0xD0 so far.
    pub fn dropped_connections(&mut self) -> usize {
        let mut n = 0;
        while self.dropped.try_recv().is_ok() {
            n += 1;
        }
        n
    }
}

impl Drop for MessageReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether `bytes` hold a session message (NetBIOS type 0x00) whose SMB command is 0xD0.
fn starts_with_send_message(bytes: &[u8]) -> bool {
    bytes.len() > 8 && bytes[0] == 0x00 && &bytes[4..8] == b"\xFFSMB" && bytes[8] == 0xD0
}

async fn serve(
    mut stream: TcpStream,
    behaviour: ReceiverBehaviour,
    messages: mpsc::UnboundedSender<IncomingMessage>,
    dropped: mpsc::UnboundedSender<()>,
) {
    let mut session = ReceiverSession::new(behaviour.config, Instant::now());
    let mut buf = vec![0u8; 8192];
    let mut first_smb_seen = false;
    loop {
        while let Some(event) = session.poll_event() {
            match event {
                ReceiverEvent::Transmit(bytes) => {
                    if stream.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                ReceiverEvent::SessionRequested { called, .. } => {
                    let ok = behaviour.names.is_empty() || behaviour.names.contains(&called.name);
                    session.accept_session(Instant::now(), ok);
                }
                ReceiverEvent::Deliver(message) => {
                    let ours = behaviour.recipients.is_empty()
                        || behaviour.recipients.contains(&message.to);
                    if !ours {
                        session.complete_delivery(Instant::now(), Err(DeliveryError::NotOurName));
                        continue;
                    }
                    let _ = messages.send(message);
                    session.complete_delivery(Instant::now(), behaviour.verdict);
                }
                ReceiverEvent::Close(_) => return,
            }
        }
        let n = match stream.read(&mut buf).await {
            Ok(0) | Err(_) => {
                session.handle_eof();
                if session.is_closed() {
                    return;
                }
                continue;
            }
            Ok(n) => n,
        };
        if behaviour.like_samba && !first_smb_seen && buf[0] == 0x00 {
            first_smb_seen = true;
            if starts_with_send_message(&buf[..n]) {
                let _ = dropped.send(());
                return;
            }
        }
        session.handle_bytes(Instant::now(), &buf[..n]);
    }
}

/// A UDP socket on 127.0.0.1 standing in for the datagram service.
#[derive(Debug)]
pub struct DatagramListener {
    /// The port: the senders' `datagram_port`.
    pub port: u16,
    socket: UdpSocket,
}

impl DatagramListener {
    /// Binds 127.0.0.1 on an ephemeral port.
    pub async fn start() -> Self {
        let socket = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind datagram listener");
        let port = socket.local_addr().expect("local addr").port();
        Self { port, socket }
    }

    /// The next datagram (waits a bounded time).
    pub async fn next(&self) -> Vec<u8> {
        let mut buf = vec![0u8; 65_535];
        let (n, _) = tokio::time::timeout(TEST_WAIT, self.socket.recv_from(&mut buf))
            .await
            .expect("a datagram in time")
            .expect("receive");
        buf.truncate(n);
        buf
    }
}
