//! Finding messaging names on the network: the tokio driver of `netbios::nbns::NameService`
//! for name queries and node status requests.
//!
//! A sender holds no names, so it runs the state machine with an empty name table on an
//! ephemeral UDP port, one per interface, and only uses it to resolve:
//!
//! - `NAME<03>` ([`resolve_name`]): with a WINS server configured, a unicast query to it
//!   first, then broadcast queries on the interface (H-node order, [MS-NBTE] 3.1.4.2); without
//!   one, broadcast queries only (B-node). All interfaces are asked at once and the first
//!   positive answer wins. Replies to broadcasts come back unicast to the port we sent from.
//! - a host's names ([`node_status`]), for targets given as an address: what Windows'
//!   `NET SEND 10.0.0.5` does first (REFERENCE 3.2 step 5).
//!
//! The state machine addresses every request to port 137; the driver sends it to the
//! configured name port instead, so that tests and unusual setups can move the service.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::{Duration, Instant};

use netbios::name::{SUFFIX_MESSENGER, SUFFIX_WORKSTATION};
use netbios::nbns::{NameEvent, NameService, NameServiceConfig, NodeName, QueryError, RetryPolicy};
use netbios::NetbiosName;
use tokio::net::UdpSocket;
use tokio::task::JoinSet;

use crate::error::NetError;
use crate::iface::Interface;
use crate::{next_id, Settings};

/// Broadcast name queries sent before giving up: Windows' BcastNameQueryCount (KB Q120642),
/// the same as RFC 1002's BCAST_REQ_RETRY_COUNT.
pub const BROADCAST_QUERY_COUNT: u32 = netbios::nbns::BCAST_REQ_RETRY_COUNT;
/// Wait after each broadcast query: Windows' BcastQueryTimeout of 750 ms (KB Q120642), longer
/// than the RFC's 250 ms so that slow hosts on busy segments still make it (REFERENCE 2.4).
pub const BROADCAST_QUERY_INTERVAL: Duration = netbios::nbns::WINDOWS_BCAST_QUERY_TIMEOUT;
/// Unicast queries sent to the WINS server: UCAST_REQ_RETRY_COUNT (RFC 1002 s.6).
pub const WINS_QUERY_COUNT: u32 = netbios::nbns::UCAST_REQ_RETRY_COUNT;
/// Wait after each query to the WINS server: Windows' 1.5 s ([MS-NBTE] 3.1.2).
pub const WINS_QUERY_INTERVAL: Duration = netbios::nbns::WINDOWS_UCAST_REQ_RETRY_TIMEOUT;
/// Node status requests sent to a host: as for other unicast requests (RFC 1002 s.6).
pub const NODE_STATUS_COUNT: u32 = netbios::nbns::UCAST_REQ_RETRY_COUNT;
/// Wait after each node status request: Windows' unicast timing ([MS-NBTE] 3.1.2).
pub const NODE_STATUS_INTERVAL: Duration = netbios::nbns::WINDOWS_UCAST_REQ_RETRY_TIMEOUT;

/// Receive buffer: the largest UDP payload. A node status response listing 255 names is
/// about 4.6 KB, well over RFC 1002's 576-byte datagram guideline, so no smaller bound is
/// safe.
const RECV_BUF_LEN: usize = 65_535;

/// One name of a node status answer.
pub type NodeStatusName = NodeName;

/// The addresses holding `name` (normally `NAME<03>`), in the order they answered.
pub async fn resolve_name(
    settings: &Settings,
    name: NetbiosName,
) -> Result<Vec<Ipv4Addr>, NetError> {
    let not_found = || NetError::NameNotFound {
        name: settings.code_page.decode(name.name_bytes()),
    };
    if settings.interfaces.is_empty() {
        return Err(NetError::Interfaces(
            crate::iface::InterfaceError::NoInterface,
        ));
    }
    let mut tasks = JoinSet::new();
    for iface in &settings.interfaces {
        let driver = Driver::bind(settings, iface, false).await?;
        tasks.spawn(driver.query(name));
    }
    let mut last_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok(Ok(addrs)) if !addrs.is_empty() => {
                tasks.abort_all();
                return Ok(addrs);
            }
            Ok(Ok(_)) | Ok(Err(QueryError::NotFound)) => {}
            Ok(Err(other)) => last_error = Some(other),
            Err(join) => {
                tracing::warn!(error = %join, "name query task failed");
            }
        }
    }
    if let Some(e) = last_error {
        tracing::debug!(error = %e, "name query ended with an error");
    }
    Err(not_found())
}

/// The names the host at `addr` holds (node status, RFC 1002 4.2.17/18).
pub async fn node_status(
    settings: &Settings,
    addr: Ipv4Addr,
) -> Result<Vec<NodeStatusName>, NetError> {
    let peer = SocketAddr::V4(SocketAddrV4::new(addr, settings.name_port));
    // Not bound to one interface: the host may be anywhere the routing table reaches.
    let iface = Interface {
        name: String::new(),
        addr: Ipv4Addr::UNSPECIFIED,
        netmask: Ipv4Addr::UNSPECIFIED,
        broadcast: Ipv4Addr::UNSPECIFIED,
        loopback: false,
    };
    let driver = Driver::bind(settings, &iface, true).await?;
    match driver.node_status(addr).await {
        Ok(names) => Ok(names),
        Err(QueryError::NoResponse) => Err(NetError::Timeout {
            what: "waiting for the node status",
            peer,
            after: settings.timeouts.node_status_interval * settings.timeouts.node_status_count,
        }),
        Err(other) => Err(NetError::Protocol {
            peer,
            reason: other.to_string(),
        }),
    }
}

/// The messaging name to call on a host, from its node status: the `<03>` name of the computer
/// itself (the one that also appears as `NAME<00>`) if there is one, else the first usable
/// `<03>` name. Names in conflict or being released are skipped, and so are group names
/// (`<03>` names are always unique, [MS-MSRP] 3.1.1).
pub fn messenger_name(names: &[NodeStatusName]) -> Option<NetbiosName> {
    let usable: Vec<&NodeStatusName> = names
        .iter()
        .filter(|n| {
            n.name.suffix() == SUFFIX_MESSENGER
                && !n.flags.is_group()
                && !n.flags.is_conflict()
                && !n.flags.is_deregistering()
        })
        .collect();
    let computer = usable.iter().find(|n| {
        names.iter().any(|other| {
            other.name == n.name.with_suffix(SUFFIX_WORKSTATION) && !other.flags.is_group()
        })
    });
    computer.or(usable.first()).map(|n| n.name)
}

/// A name service state machine on its own UDP socket.
struct Driver {
    service: NameService,
    socket: UdpSocket,
}

impl Driver {
    /// Binds an ephemeral port on `iface` and sets up the state machine; `node_status` picks
    /// the retry policy for node status requests instead of the one for WINS.
    async fn bind(
        settings: &Settings,
        iface: &Interface,
        node_status: bool,
    ) -> Result<Self, NetError> {
        let local = SocketAddrV4::new(iface.addr, 0);
        let io = |what: &'static str| {
            move |source| NetError::Io {
                what,
                peer: SocketAddr::V4(local),
                source,
            }
        };
        let socket = UdpSocket::bind(local)
            .await
            .map_err(io("binding a name service socket"))?;
        socket
            .set_broadcast(true)
            .map_err(io("allowing broadcasts"))?;
        let local_port = socket
            .local_addr()
            .map_err(io("reading the socket's address"))?
            .port();
        let t = &settings.timeouts;
        let mut config = NameServiceConfig::new(iface.addr, iface.broadcast);
        config.local_port = local_port;
        config.peer_port = settings.name_port;
        config.scope = settings.scope.clone();
        config.first_transaction_id = next_id();
        config.query_broadcast = RetryPolicy {
            count: t.broadcast_query_count,
            interval: t.broadcast_query_interval,
        };
        config.unicast = if node_status {
            RetryPolicy {
                count: t.node_status_count,
                interval: t.node_status_interval,
            }
        } else {
            RetryPolicy {
                count: t.wins_query_count,
                interval: t.wins_query_interval,
            }
        };
        if let Some(wins) = settings.wins_server {
            config = config.with_wins(wins);
        }
        Ok(Self {
            service: NameService::new(config),
            socket,
        })
    }

    async fn query(mut self, name: NetbiosName) -> Result<Vec<Ipv4Addr>, QueryError> {
        let id = self.service.query(name, Instant::now());
        self.run(|event| match event {
            NameEvent::QueryResult {
                id: done, result, ..
            } if done == id => Some(result),
            _ => None,
        })
        .await
        .unwrap_or(Err(QueryError::NotFound))
    }

    async fn node_status(mut self, addr: Ipv4Addr) -> Result<Vec<NodeStatusName>, QueryError> {
        let id = self.service.node_status(addr, Instant::now());
        self.run(|event| match event {
            NameEvent::NodeStatus {
                id: done, result, ..
            } if done == id => Some(result.map(|status| status.names)),
            _ => None,
        })
        .await
        .unwrap_or(Err(QueryError::NoResponse))
    }

    /// Drives the state machine until `pick` takes an event, or nothing is left to wait for.
    async fn run<T>(&mut self, mut pick: impl FnMut(NameEvent) -> Option<T>) -> Option<T> {
        let mut buf = vec![0u8; RECV_BUF_LEN];
        loop {
            while let Some(t) = self.service.poll_transmit() {
                let to = t.destination;
                // A failed send (no route, interface gone) is like a lost datagram: the
                // retries and the final timeout deal with it.
                if let Err(e) = self.socket.send_to(&t.payload, to).await {
                    tracing::debug!(%to, error = %e, "name service send failed");
                }
            }
            while let Some(event) = self.service.poll_event() {
                if let Some(found) = pick(event) {
                    return Some(found);
                }
            }
            // Nothing left to wait for: the query ended without the event we want.
            let deadline = self.service.poll_timeout()?;
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((n, SocketAddr::V4(from))) => {
                        if let Err(e) = self.service.handle(Instant::now(), from, &buf[..n]) {
                            tracing::debug!(%from, error = %e, "undecodable name service datagram");
                        }
                    }
                    Ok(_) => {}
                    // ICMP port unreachable from an earlier send shows up here on Linux;
                    // the retries go on.
                    Err(e) => tracing::debug!(error = %e, "name service receive failed"),
                },
                () = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {
                    self.service.handle_timeout(Instant::now());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netbios::nbns::{NameFlags, NodeType};

    fn entry(name: &str, suffix: u8, group: bool) -> NodeStatusName {
        NodeStatusName {
            name: NetbiosName::new_uppercase(name.as_bytes(), suffix).unwrap(),
            flags: NameFlags::active(group, NodeType::B),
        }
    }

    #[test]
    fn the_computers_own_messenger_name_is_preferred() {
        let names = vec![
            entry("ALICE", 0x03, false),
            entry("HOSTA", 0x00, false),
            entry("HOSTA", 0x03, false),
            entry("WORKGROUP", 0x00, true),
        ];
        assert_eq!(
            messenger_name(&names).unwrap(),
            NetbiosName::messenger("hosta").unwrap()
        );
        let only_user = vec![entry("ALICE", 0x03, false), entry("WG", 0x00, true)];
        assert_eq!(
            messenger_name(&only_user).unwrap(),
            NetbiosName::messenger("alice").unwrap()
        );
        let mut conflicted = entry("BOB", 0x03, false);
        conflicted.flags = conflicted.flags.with_conflict();
        assert_eq!(messenger_name(&[conflicted, entry("X", 0x20, false)]), None);
    }
}
