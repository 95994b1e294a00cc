//! One interface's UDP endpoint for the name or the datagram service: where its task reads
//! the next datagram and sends through, whichever way the service got its sockets.
//!
//! - Bound by the service itself (see `sockets`): a socket bound to the interface address
//!   (unicast requests, and the source of everything we send) and one bound to the
//!   interface's broadcast address, read as one.
//! - Handed over by systemd, bound to the wildcard (see `activation`): one socket shared by
//!   every interface, read by one reader that hands this interface its datagrams, and written
//!   with `IP_PKTINFO` naming the interface and its address (see `pktinfo`).

use std::io;
use std::net::{SocketAddr, SocketAddrV4, UdpSocket};
use std::sync::Arc;

use tokio::sync::mpsc;

use crate::host::pktinfo::{Datagram, Served, SharedPort};

/// One datagram read by [`UdpEndpoint::recv`].
#[derive(Debug)]
pub struct Received<'a> {
    /// Its bytes.
    pub data: &'a [u8],
    /// Who sent it.
    pub from: SocketAddr,
}

/// The UDP endpoint of one service on one interface.
pub struct UdpEndpoint {
    inner: Inner,
}

enum Inner {
    Bound {
        unicast: tokio::net::UdpSocket,
        broadcast: Option<tokio::net::UdpSocket>,
        unicast_buf: Vec<u8>,
        broadcast_buf: Vec<u8>,
    },
    Shared {
        port: Arc<SharedPort>,
        served: Served,
        queue: mpsc::Receiver<Datagram>,
        current: Option<Datagram>,
    },
}

impl UdpEndpoint {
    /// Wraps bound, non-blocking sockets; datagrams longer than `max_len` are cut short (and
    /// then fail to decode).
    pub fn bound(
        unicast: UdpSocket,
        broadcast: Option<UdpSocket>,
        max_len: usize,
    ) -> io::Result<Self> {
        Ok(Self {
            inner: Inner::Bound {
                unicast: tokio::net::UdpSocket::from_std(unicast)?,
                broadcast: broadcast.map(tokio::net::UdpSocket::from_std).transpose()?,
                unicast_buf: vec![0; max_len],
                broadcast_buf: vec![0; max_len],
            },
        })
    }

    /// Interface `served`'s share of a wildcard socket: `queue` is what the reader of `port`
    /// hands it.
    pub fn shared(port: Arc<SharedPort>, served: Served, queue: mpsc::Receiver<Datagram>) -> Self {
        Self {
            inner: Inner::Shared {
                port,
                served,
                queue,
                current: None,
            },
        }
    }

    /// The port this endpoint receives on.
    pub fn local_port(&self) -> Option<u16> {
        match &self.inner {
            Inner::Bound { unicast, .. } => unicast.local_addr().ok().map(|a| a.port()),
            Inner::Shared { port, .. } => Some(port.local_port()),
        }
    }

    /// The next datagram for this interface, and who sent it.
    pub async fn recv(&mut self) -> io::Result<Received<'_>> {
        match &mut self.inner {
            Inner::Bound {
                unicast,
                broadcast,
                unicast_buf,
                broadcast_buf,
            } => {
                tokio::select! {
                    r = unicast.recv_from(unicast_buf) => {
                        let (n, from) = r?;
                        Ok(Received { data: &unicast_buf[..n], from })
                    }
                    r = recv_optional(broadcast.as_ref(), broadcast_buf) => {
                        let (n, from) = r?;
                        Ok(Received { data: &broadcast_buf[..n], from })
                    }
                }
            }
            Inner::Shared {
                served,
                queue,
                current,
                ..
            } => {
                // The reader ends only with the service; until then a closed queue waits.
                let Some(datagram) = queue.recv().await else {
                    return std::future::pending().await;
                };
                tracing::trace!(
                    from = %datagram.from,
                    to = %datagram.to,
                    broadcast = datagram.is_broadcast(&served.interface),
                    "datagram"
                );
                let datagram = current.insert(datagram);
                Ok(Received {
                    data: &datagram.data,
                    from: SocketAddr::V4(datagram.from),
                })
            }
        }
    }

    /// Sends `payload` to `to` from this interface's address.
    pub async fn send_to(&self, payload: &[u8], to: SocketAddrV4) -> io::Result<()> {
        match &self.inner {
            Inner::Bound { unicast, .. } => unicast
                .send_to(payload, SocketAddr::V4(to))
                .await
                .map(|_| ()),
            Inner::Shared { port, served, .. } => port.send_to(served, payload, to).await,
        }
    }
}

async fn recv_optional(
    socket: Option<&tokio::net::UdpSocket>,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// The name service and datagram endpoints of one interface.
pub struct InterfaceEndpoints {
    /// The interface.
    pub interface: messenger_net::iface::Interface,
    /// Its name service endpoint.
    pub name: UdpEndpoint,
    /// Its datagram service endpoint.
    pub datagram: UdpEndpoint,
}

/// Sets up the endpoints of every interface: on sockets of its own, or on shared wildcard
/// sockets, whose readers are spawned on `tasks` and stop at `shutdown`. `name_max` and
/// `datagram_max` are each service's longest datagram.
pub fn endpoints(
    own: Vec<crate::host::sockets::InterfaceSockets>,
    shared: Option<crate::host::sockets::SharedSockets>,
    name_max: usize,
    datagram_max: usize,
    tasks: &tokio_util::task::TaskTracker,
    shutdown: &tokio_util::sync::CancellationToken,
) -> io::Result<Vec<InterfaceEndpoints>> {
    let mut all = Vec::new();
    for s in own {
        all.push(InterfaceEndpoints {
            interface: s.interface,
            name: UdpEndpoint::bound(s.name, s.name_broadcast, name_max)?,
            datagram: UdpEndpoint::bound(s.datagram, s.datagram_broadcast, datagram_max)?,
        });
    }
    if let Some(shared) = shared {
        let served = shared
            .interfaces
            .into_iter()
            .map(Served::new)
            .collect::<io::Result<Vec<_>>>()?;
        let (name_port, names) = crate::host::pktinfo::start(
            shared.name,
            served.clone(),
            name_max,
            tasks,
            shutdown.clone(),
        )?;
        let (datagram_port, datagrams) = crate::host::pktinfo::start(
            shared.datagram,
            served.clone(),
            datagram_max,
            tasks,
            shutdown.clone(),
        )?;
        for ((s, n), d) in served.into_iter().zip(names).zip(datagrams) {
            all.push(InterfaceEndpoints {
                interface: s.interface.clone(),
                name: UdpEndpoint::shared(Arc::clone(&name_port), s.clone(), n),
                datagram: UdpEndpoint::shared(Arc::clone(&datagram_port), s, d),
            });
        }
    }
    Ok(all)
}
