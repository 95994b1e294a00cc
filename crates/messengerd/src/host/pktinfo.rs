//! One wildcard UDP socket shared by every interface (socket activation): `IP_PKTINFO` says
//! on which interface each datagram arrived and to which address it was sent, and sets the
//! interface and source address of each datagram sent.
//!
//! A socket unit binds `0.0.0.0:137` and `0.0.0.0:138`; the service gets one socket per
//! service for all interfaces. A [`SharedPort`] reads its socket in one reader task, which
//! hands each datagram to the queue of the interface it belongs to (see [`route`]); each
//! interface's name service or datagram task reads its own queue and sends through
//! [`SharedPort::send_to`], which names the interface and its address in an `IP_PKTINFO`
//! control message. Nothing here knows NetBIOS.

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use messenger_net::iface::Interface;
use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    SockaddrIn,
};
use tokio::io::Interest;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Datagrams waiting in one interface's queue for its task. The tasks handle a datagram in
/// microseconds (the name service) or the time one inbox write takes (the datagram service);
/// 64 absorbs a subnet's burst of registrations at boot or a broadcast storm's first wave,
/// and bounds the memory to 64 x 1,500 bytes per interface and service. Beyond it the
/// datagram is dropped, as the kernel drops what overflows a socket's receive buffer.
pub const QUEUE_DEPTH: usize = 64;

/// A datagram as received on a shared socket, for one interface.
#[derive(Debug)]
pub struct Datagram {
    /// Its bytes (cut short at the reader's buffer length, as `recv_from` would).
    pub data: Vec<u8>,
    /// Who sent it.
    pub from: SocketAddrV4,
    /// The address it was sent to: the interface address (unicast) or a broadcast address.
    pub to: Ipv4Addr,
}

impl Datagram {
    /// Whether it was sent to a broadcast address rather than to one of ours.
    pub fn is_broadcast(&self, interface: &Interface) -> bool {
        self.to == Ipv4Addr::BROADCAST || (self.to == interface.broadcast && !interface.loopback)
    }
}

/// An interface served through a shared socket, as the reader routes by it.
#[derive(Debug, Clone)]
pub struct Served {
    /// The interface (address, broadcast address).
    pub interface: Interface,
    /// Its kernel index (`if_nametoindex`).
    pub index: u32,
}

impl Served {
    /// `interface` with its kernel index.
    pub fn new(interface: Interface) -> io::Result<Self> {
        let index = interface_index(&interface.name)?;
        Ok(Self { interface, index })
    }
}

/// The kernel index of interface `name`; an address label (`eth0:1`) names its interface.
fn interface_index(name: &str) -> io::Result<u32> {
    let base = name.split(':').next().unwrap_or(name);
    nix::net::if_::if_nametoindex(base).map_err(|e| {
        io::Error::new(
            io::ErrorKind::NotFound,
            format!("interface {name} has no index: {e}"),
        )
    })
}

/// Which of `served` a datagram that arrived on interface `ifindex`, sent to `to`, belongs to.
///
/// A datagram sent to one of our addresses belongs to the interface holding it, whichever
/// interface it came in on (as a socket bound to that address would get it, loopback
/// included); anything else (a broadcast) to the interface it arrived on, and when that
/// interface has several served addresses, to the one whose subnet's broadcast it is. `None`:
/// an interface the service does not serve.
pub fn route(served: &[Served], ifindex: u32, to: Ipv4Addr) -> Option<usize> {
    if let Some(i) = served.iter().position(|s| s.interface.addr == to) {
        return Some(i);
    }
    let mut on_link = served
        .iter()
        .enumerate()
        .filter(|(_, s)| s.index == ifindex);
    let first = on_link.next()?;
    let subnet = std::iter::once(first)
        .chain(on_link)
        .find(|(_, s)| s.interface.broadcast == to);
    Some(subnet.unwrap_or(first).0)
}

/// Turns on `IP_PKTINFO` on `socket`, so each datagram read carries its interface and
/// destination address.
pub fn enable(socket: &UdpSocket) -> io::Result<()> {
    setsockopt(socket, sockopt::Ipv4PacketInfo, &true).map_err(io::Error::from)
}

/// Reads one datagram into `buf` without blocking: its length, sender, receiving interface
/// index and destination address.
fn recv_with_info(
    socket: &impl AsRawFd,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddrV4, u32, Ipv4Addr)> {
    let mut control = nix::cmsg_space!(libc::in_pktinfo);
    let mut iov = [IoSliceMut::new(buf)];
    let msg = recvmsg::<SockaddrIn>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::MSG_DONTWAIT,
    )
    .map_err(io::Error::from)?;
    let from = msg
        .address
        .map(SocketAddrV4::from)
        .ok_or_else(|| io::Error::other("a datagram without a sender"))?;
    let mut info = None;
    for cmsg in msg.cmsgs().map_err(io::Error::from)? {
        if let ControlMessageOwned::Ipv4PacketInfo(pi) = cmsg {
            // ipi_addr: the destination in the IP header; ipi_spec_dst is the local address
            // the kernel would answer from, which for a broadcast is not what was sent to.
            let to = Ipv4Addr::from(u32::from_be(pi.ipi_addr.s_addr));
            info = Some((u32::try_from(pi.ipi_ifindex).unwrap_or(0), to));
        }
    }
    let (ifindex, to) = info.ok_or_else(|| io::Error::other("IP_PKTINFO is off"))?;
    Ok((msg.bytes, from, ifindex, to))
}

/// Sends `payload` to `to` without blocking, from `source` and, when `ifindex` is not 0, out
/// of that interface.
fn send_with_info(
    socket: &impl AsRawFd,
    payload: &[u8],
    to: SocketAddrV4,
    ifindex: u32,
    source: Ipv4Addr,
) -> io::Result<usize> {
    let info = libc::in_pktinfo {
        ipi_ifindex: i32::try_from(ifindex).unwrap_or(0),
        ipi_spec_dst: libc::in_addr {
            s_addr: u32::from(source).to_be(),
        },
        ipi_addr: libc::in_addr { s_addr: 0 },
    };
    let dest = SockaddrIn::from(to);
    sendmsg(
        socket.as_raw_fd(),
        &[IoSlice::new(payload)],
        &[ControlMessage::Ipv4PacketInfo(&info)],
        MsgFlags::MSG_DONTWAIT,
        Some(&dest),
    )
    .map_err(io::Error::from)
}

/// What a reader dropped, for the debug log.
#[derive(Debug, Default)]
pub struct Dropped {
    /// Datagrams from interfaces the service does not serve.
    pub unserved: AtomicU64,
    /// Datagrams for an interface whose queue was full.
    pub overflow: AtomicU64,
}

/// A wildcard socket shared by the interfaces in `served`.
#[derive(Debug)]
pub struct SharedPort {
    socket: tokio::net::UdpSocket,
    served: Vec<Served>,
    /// What the reader dropped.
    pub dropped: Dropped,
}

impl SharedPort {
    /// Wraps a bound, non-blocking wildcard socket and turns on `IP_PKTINFO`.
    fn new(socket: UdpSocket, served: Vec<Served>) -> io::Result<Self> {
        enable(&socket)?;
        Ok(Self {
            socket: tokio::net::UdpSocket::from_std(socket)?,
            served,
            dropped: Dropped::default(),
        })
    }

    /// The port it is bound to.
    pub fn local_port(&self) -> u16 {
        self.socket.local_addr().map_or(0, |a| a.port())
    }

    /// Sends `payload` to `to` for interface `served`: from its address, and out of it when
    /// `to` is on its subnet or a broadcast (a unicast beyond the subnet follows the routing
    /// table, as from a socket bound to that address).
    pub async fn send_to(
        &self,
        served: &Served,
        payload: &[u8],
        to: SocketAddrV4,
    ) -> io::Result<()> {
        let interface = &served.interface;
        let on_link = *to.ip() == Ipv4Addr::BROADCAST
            || *to.ip() == interface.broadcast
            || interface.contains(*to.ip());
        let ifindex = if on_link { served.index } else { 0 };
        self.socket
            .async_io(Interest::WRITABLE, || {
                send_with_info(&self.socket, payload, to, ifindex, interface.addr)
            })
            .await
            .map(|_| ())
    }

    /// Reads the socket until `shutdown`, handing each datagram to `queues[route(..)]`, at
    /// most `max_len` bytes of it.
    pub async fn read(
        self: Arc<Self>,
        queues: Vec<mpsc::Sender<Datagram>>,
        max_len: usize,
        shutdown: CancellationToken,
    ) {
        let mut buf = vec![0; max_len];
        let local = self.socket.local_addr().ok();
        loop {
            let received = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.socket.async_io(Interest::READABLE, || recv_with_info(&self.socket, &mut buf)) => r,
            };
            let (n, from, ifindex, to) = match received {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(?local, error = %e, "shared socket read failed");
                    continue;
                }
            };
            let Some(i) = route(&self.served, ifindex, to) else {
                let count = self.dropped.unserved.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::debug!(%from, %to, ifindex, count, "datagram from an interface not served dropped");
                continue;
            };
            let Some(queue) = queues.get(i) else { continue };
            let datagram = Datagram {
                data: buf[..n].to_vec(),
                from,
                to,
            };
            if let Err(mpsc::error::TrySendError::Full(_)) = queue.try_send(datagram) {
                let count = self.dropped.overflow.fetch_add(1, Ordering::Relaxed) + 1;
                tracing::debug!(%from, interface = %self.served[i].interface.name, count, "queue full: datagram dropped");
            }
        }
    }
}

/// Builds a shared port on `socket` for `served`, with one bounded queue per interface, and
/// spawns its reader on `tasks`; returns the port and, per interface of `served` in that
/// order, the queue its task reads.
pub fn start(
    socket: UdpSocket,
    served: Vec<Served>,
    max_len: usize,
    tasks: &tokio_util::task::TaskTracker,
    shutdown: CancellationToken,
) -> io::Result<(Arc<SharedPort>, Vec<mpsc::Receiver<Datagram>>)> {
    let count = served.len();
    let port = Arc::new(SharedPort::new(socket, served)?);
    let mut receivers = Vec::with_capacity(count);
    let mut senders = Vec::with_capacity(count);
    for _ in 0..count {
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        senders.push(tx);
        receivers.push(rx);
    }
    tasks.spawn(Arc::clone(&port).read(senders, max_len, shutdown));
    Ok((port, receivers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn served(name: &str, index: u32, addr: [u8; 4], prefix: u8) -> Served {
        Served {
            interface: Interface::from_prefix(name, Ipv4Addr::from(addr), prefix),
            index,
        }
    }

    #[test]
    fn unicast_goes_to_the_address_holder_and_broadcast_to_the_arrival_interface() {
        let list = [
            served("eth0", 2, [192, 0, 2, 10], 24),
            served("eth1", 3, [198, 51, 100, 7], 24),
            served("eth1:1", 3, [203, 0, 113, 5], 24),
        ];
        // Unicast to eth1's address, even arriving on eth0 or on lo (index 1).
        assert_eq!(route(&list, 2, Ipv4Addr::new(198, 51, 100, 7)), Some(1));
        assert_eq!(route(&list, 1, Ipv4Addr::new(192, 0, 2, 10)), Some(0));
        // Subnet broadcasts: the interface they arrived on, the subnet they were for.
        assert_eq!(route(&list, 2, Ipv4Addr::new(192, 0, 2, 255)), Some(0));
        assert_eq!(route(&list, 3, Ipv4Addr::new(198, 51, 100, 255)), Some(1));
        assert_eq!(route(&list, 3, Ipv4Addr::new(203, 0, 113, 255)), Some(2));
        // The limited broadcast: the first address of the arrival interface.
        assert_eq!(route(&list, 3, Ipv4Addr::BROADCAST), Some(1));
        // An interface not served.
        assert_eq!(route(&list, 9, Ipv4Addr::BROADCAST), None);
        assert_eq!(route(&list, 9, Ipv4Addr::new(10, 0, 0, 1)), None);
    }

    #[test]
    fn broadcast_is_told_from_unicast() {
        let eth = Interface::from_prefix("eth0", Ipv4Addr::new(192, 0, 2, 10), 24);
        let d = |to| Datagram {
            data: Vec::new(),
            from: SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 137),
            to,
        };
        assert!(d(Ipv4Addr::new(192, 0, 2, 255)).is_broadcast(&eth));
        assert!(d(Ipv4Addr::BROADCAST).is_broadcast(&eth));
        assert!(!d(Ipv4Addr::new(192, 0, 2, 10)).is_broadcast(&eth));
    }

    fn lo(addr: Ipv4Addr) -> Served {
        Served::new(Interface::loopback(addr)).unwrap()
    }

    fn wildcard() -> UdpSocket {
        let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        s.set_nonblocking(true).unwrap();
        s
    }

    #[tokio::test]
    async fn a_wildcard_socket_demultiplexes_by_destination_and_answers_from_it() {
        let tasks = tokio_util::task::TaskTracker::new();
        let stop = CancellationToken::new();
        let (a, b) = (Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2));
        let socket = wildcard();
        let port = socket.local_addr().unwrap().port();
        let list = vec![lo(a), lo(b)];
        let (shared, mut queues) = start(socket, list.clone(), 1500, &tasks, stop.clone()).unwrap();
        let peer = tokio::net::UdpSocket::bind((a, 0)).await.unwrap();
        let peer_addr = match peer.local_addr().unwrap() {
            SocketAddr::V4(v4) => v4,
            SocketAddr::V6(_) => unreachable!(),
        };
        peer.send_to(b"to b", (b, port)).await.unwrap();
        peer.send_to(b"to a", (a, port)).await.unwrap();
        let got = queues[1].recv().await.unwrap();
        assert_eq!(
            (got.data.as_slice(), got.to, got.from),
            (&b"to b"[..], b, peer_addr)
        );
        let got = queues[0].recv().await.unwrap();
        assert_eq!((got.data.as_slice(), got.to), (&b"to a"[..], a));
        // An answer for b leaves from b's address, not from the wildcard's choice.
        shared
            .send_to(&list[1], b"from b", peer_addr)
            .await
            .unwrap();
        let mut buf = [0; 16];
        let (n, from) = peer.recv_from(&mut buf).await.unwrap();
        assert_eq!(
            (&buf[..n], from),
            (&b"from b"[..], SocketAddr::from((b, port)))
        );
        stop.cancel();
        tasks.close();
        tasks.wait().await;
    }

    #[tokio::test]
    async fn a_full_queue_drops_without_stopping_the_reader_and_strangers_are_counted() {
        let tasks = tokio_util::task::TaskTracker::new();
        let stop = CancellationToken::new();
        let a = Ipv4Addr::new(127, 0, 0, 1);
        let socket = wildcard();
        let port = socket.local_addr().unwrap().port();
        // Served: 127.0.0.1 on an interface index no datagram arrives on, so a datagram to
        // 127.0.0.3 (arriving on lo) has no interface.
        let list = vec![Served {
            interface: Interface::loopback(a),
            index: u32::MAX,
        }];
        let (shared, mut queues) = start(socket, list, 1500, &tasks, stop.clone()).unwrap();
        let peer = UdpSocket::bind((a, 0)).unwrap();
        peer.send_to(b"stranger", (Ipv4Addr::new(127, 0, 0, 3), port))
            .unwrap();
        let total = QUEUE_DEPTH + 10;
        for i in 0..total {
            peer.send_to(format!("{i}").as_bytes(), (a, port)).unwrap();
        }
        // Wait until the reader has seen every datagram: queued, dropped or unserved.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while shared.dropped.overflow.load(Ordering::Relaxed) < 10
            || shared.dropped.unserved.load(Ordering::Relaxed) < 1
        {
            assert!(std::time::Instant::now() < deadline, "{:?}", shared.dropped);
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let mut queued = 0;
        while queues[0].try_recv().is_ok() {
            queued += 1;
        }
        assert_eq!(queued, QUEUE_DEPTH);
        // The reader still runs: a datagram after the overflow arrives.
        peer.send_to(b"after", (a, port)).unwrap();
        assert_eq!(queues[0].recv().await.unwrap().data, b"after");
        stop.cancel();
        tasks.close();
        tasks.wait().await;
    }
}
