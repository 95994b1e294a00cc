//! The name service task of one interface (UDP 137): registers, defends and releases our
//! names, and answers name queries and node status requests, by driving the protocol crate's
//! [`NameService`] state machine with real sockets and the real clock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use messenger_core::config::DEFAULT_NAME_PORT;
use messenger_core::nerr;
use messenger_net::iface::Interface;
use netbios::name::SUFFIX_MESSENGER;
use netbios::nbns::packet::{AddrEntry, NbFlags, NodeType, Packet, PacketKind};
use netbios::nbns::service::{NameEvent, NameService, NameServiceConfig, RegisterError};
use netbios::NetbiosName;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::host::udp::UdpEndpoint;
use crate::service::{NameCommand, Service};
use crate::transports::wins_proxy::{self, Asker, Step, WinsProxy};
use crate::util::lock;

/// Largest name service datagram read. What arrives here (queries, registrations, releases,
/// their answers and node status requests) fits RFC 1002's 576-byte datagram guideline; the
/// Ethernet MTU leaves room for peers that pad or add records. A longer packet is cut short
/// and then refused by the decoder, which is all a datagram we never asked for deserves.
pub(crate) const MAX_PACKET: usize = 1500;
/// Longest time spent broadcasting releases at shutdown: three releases 250 ms apart (RFC 1002
/// s.6 BCAST_REQ_RETRY_COUNT, BCAST_REQ_RETRY_TIMEOUT) fit with room to spare.
const RELEASE_GRACE: Duration = Duration::from_secs(2);

/// Runs the name service of `interface` until `shutdown`, then releases every name.
pub async fn run(
    service: Arc<Service>,
    index: usize,
    interface: Interface,
    endpoint: UdpEndpoint,
    commands: mpsc::UnboundedReceiver<NameCommand>,
    shutdown: CancellationToken,
) {
    let span = tracing::info_span!("names", interface = %interface.name, addr = %interface.addr);
    serve(service, index, interface, endpoint, commands, shutdown)
        .instrument(span)
        .await
}

async fn serve(
    service: Arc<Service>,
    index: usize,
    interface: Interface,
    mut endpoint: UdpEndpoint,
    mut commands: mpsc::UnboundedReceiver<NameCommand>,
    shutdown: CancellationToken,
) {
    let local_port = endpoint.local_port().unwrap_or(DEFAULT_NAME_PORT);
    let config = &service.settings.config;
    let mut ns_config = NameServiceConfig::new(interface.addr, interface.broadcast);
    ns_config.local_port = local_port;
    // Peers listen on the port we serve on: 137 in production, another in tests.
    ns_config.peer_port = local_port;
    if let Some(wins) = config.wins_server {
        ns_config = ns_config.with_wins(wins);
    }
    ns_config.scope = config.scope.clone();
    ns_config.first_transaction_id = transaction_seed(index);
    let mut ns = NameService::new(ns_config);
    let mut proxy = Proxy::new(&service, &interface);

    loop {
        flush(&service, &mut ns, &endpoint).await;
        let deadline = ns
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(crate::util::no_deadline);
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep_until(deadline) => ns.handle_timeout(Instant::now()),
            cmd = commands.recv() => match cmd {
                Some(NameCommand::Register { name, group }) => {
                    if let Err(e) = ns.register(name, group, Instant::now()) {
                        tracing::warn!(%name, error = %e, "cannot register");
                        if name.suffix() == SUFFIX_MESSENGER {
                            let code = match e {
                                RegisterError::TableFull { .. } => nerr::NERR_TOO_MANY_NAMES,
                                _ => nerr::NERR_DUPLICATE_NAME,
                            };
                            lock(&service.names).fail(&name, code);
                        }
                    }
                }
                Some(NameCommand::Release { name }) => {
                    ns.release(&name, Instant::now());
                }
                None => break,
            },
            r = endpoint.recv() => {
                if let Ok(r) = r {
                    let (from, data) = (r.from, r.data.to_vec());
                    receive(&mut ns, from, &data);
                    if let Some(proxy) = proxy.as_mut() {
                        proxy.on_packet(&service, &ns, &endpoint, from, &data).await;
                    }
                }
            }
            Some((name, elsewhere)) = recv_looked_up(&mut proxy) => {
                if let Some(proxy) = proxy.as_mut() {
                    if let Step::Answer(askers) =
                        proxy.state.on_directory(name, elsewhere, Instant::now())
                    {
                        proxy.answer(&endpoint, askers).await;
                    }
                }
            }
        }
    }
    ns.release_all(Instant::now());
    let end = tokio::time::Instant::now() + RELEASE_GRACE;
    loop {
        flush(&service, &mut ns, &endpoint).await;
        let Some(next) = ns.poll_timeout() else { break };
        let next = tokio::time::Instant::from_std(next).min(end);
        if next >= end {
            break;
        }
        tokio::time::sleep_until(next).await;
        ns.handle_timeout(Instant::now());
    }
    flush(&service, &mut ns, &endpoint).await;
}

fn receive(ns: &mut NameService, from: SocketAddr, data: &[u8]) {
    let SocketAddr::V4(from) = from else { return };
    if let Err(e) = ns.handle(Instant::now(), from, data) {
        tracing::debug!(%from, error = %e, "malformed name service packet ignored");
    }
}

async fn flush(service: &Arc<Service>, ns: &mut NameService, endpoint: &UdpEndpoint) {
    while let Some(t) = ns.poll_transmit() {
        if let Err(e) = endpoint.send_to(&t.payload, t.destination).await {
            tracing::debug!(to = %t.destination, error = %e, "name service send failed");
        }
    }
    while let Some(event) = ns.poll_event() {
        match event {
            NameEvent::Registered(name) => {
                tracing::info!(%name, "name registered");
                if name.suffix() == SUFFIX_MESSENGER {
                    lock(&service.names).registered_on_one(&name);
                }
            }
            NameEvent::Conflict { name, owner } => {
                tracing::warn!(%name, %owner, "name conflict: another node holds this name; not using it");
                if name.suffix() == SUFFIX_MESSENGER {
                    lock(&service.names).conflict(&name);
                }
            }
            NameEvent::Released(name) => tracing::info!(%name, "name released"),
            other => tracing::debug!(?other, "name service event"),
        }
    }
}

/// A transaction-id seed that differs between restarts and interfaces, so a restarted service
/// does not reuse the ids of its previous run.
fn transaction_seed(index: usize) -> u16 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    (nanos as u16) ^ (std::process::id() as u16) ^ ((index as u16) << 12)
}

/// The WINS proxy of one interface (see `wins_proxy`), with what it needs for its I/O.
struct Proxy {
    state: WinsProxy,
    /// The interface: its address is the answer, its subnet where names answer for
    /// themselves.
    interface: Interface,
    /// Directory answers, from the look-up tasks.
    looked_up: mpsc::Receiver<(NetbiosName, bool)>,
    looked_up_tx: mpsc::Sender<(NetbiosName, bool)>,
}

impl Proxy {
    /// The proxy, when `[nats] wins_proxy` is on.
    fn new(service: &Service, interface: &Interface) -> Option<Self> {
        if !service.settings.nats.as_ref().is_some_and(|n| n.wins_proxy) {
            return None;
        }
        // At most MAX_PENDING look-ups run, each sending once: a send never waits.
        let (looked_up_tx, looked_up) = mpsc::channel(wins_proxy::MAX_PENDING);
        Some(Self {
            state: WinsProxy::default(),
            interface: interface.clone(),
            looked_up,
            looked_up_tx,
        })
    }

    /// A packet that reached the name service: a broadcast query from another node for a
    /// `<03>` name that is not ours goes to the proxy.
    async fn on_packet(
        &mut self,
        service: &Arc<Service>,
        ns: &NameService,
        endpoint: &UdpEndpoint,
        from: SocketAddr,
        data: &[u8],
    ) {
        let SocketAddr::V4(from) = from else { return };
        if service.addresses.contains(from.ip()) {
            return;
        }
        let Ok(packet) = Packet::decode(data) else {
            return;
        };
        if packet.kind() != PacketKind::NameQueryRequest || !packet.header.broadcast {
            return;
        }
        let Some(question) = packet.question() else {
            return;
        };
        let name = question.name.name;
        if name.suffix() != SUFFIX_MESSENGER
            || ns.name_state(&name).is_some()
            || lock(&service.names)
                .find_usable(name.name_bytes())
                .is_some()
        {
            return;
        }
        let asker = Asker {
            from,
            transaction_id: packet.header.transaction_id,
            name: question.name.clone(),
        };
        match self.state.on_query(asker, Instant::now()) {
            Step::Nothing => {}
            Step::Answer(askers) => self.answer(endpoint, askers).await,
            Step::LookUp(name) => {
                let (service, tx) = (Arc::clone(service), self.looked_up_tx.clone());
                let interface = self.interface.clone();
                service.tasks.clone().spawn(async move {
                    let answer = crate::transports::organisation::proxies_for(
                        &service,
                        name.name_bytes(),
                        &interface,
                    )
                    .await;
                    let _ = tx.send((name, answer)).await;
                });
            }
        }
    }

    /// Tells each asker that the name is here, at this interface's address.
    async fn answer(&self, endpoint: &UdpEndpoint, askers: Vec<Asker>) {
        for asker in askers {
            let entry = AddrEntry {
                flags: NbFlags::new(false, NodeType::B),
                address: self.interface.addr,
            };
            let response = Packet::positive_query_response(
                asker.transaction_id,
                asker.name.clone(),
                wins_proxy::ANSWER_TTL_SECS,
                vec![entry],
                false,
            );
            tracing::info!(name = %asker.name.name, to = %asker.from, "answered for a name held on another subnet (WINS proxy)");
            if let Err(e) = endpoint.send_to(&response.encode(), asker.from).await {
                tracing::debug!(to = %asker.from, error = %e, "proxy answer not sent");
            }
        }
    }
}

/// The next directory answer for the proxy; never, without one.
async fn recv_looked_up(proxy: &mut Option<Proxy>) -> Option<(NetbiosName, bool)> {
    match proxy {
        Some(proxy) => proxy.looked_up.recv().await,
        None => std::future::pending().await,
    }
}
