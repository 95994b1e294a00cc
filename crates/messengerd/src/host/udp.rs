//! The two UDP sockets a service has on one interface, read as one.
//!
//! Each of the name and datagram services listens on the interface address (unicast requests,
//! and the source of everything we send) and on the interface's broadcast address (see
//! `sockets`); their tasks want "the next datagram, from either".

use std::io;
use std::net::{SocketAddr, UdpSocket};

/// A unicast socket and, on interfaces that have one, a broadcast socket.
pub struct UdpPair {
    /// Bound to the interface address; replies and requests go out through it.
    pub unicast: tokio::net::UdpSocket,
    broadcast: Option<tokio::net::UdpSocket>,
    unicast_buf: Vec<u8>,
    broadcast_buf: Vec<u8>,
}

impl UdpPair {
    /// Wraps bound, non-blocking sockets; datagrams longer than `max_len` are cut short (and
    /// then fail to decode).
    pub fn from_std(
        unicast: UdpSocket,
        broadcast: Option<UdpSocket>,
        max_len: usize,
    ) -> io::Result<Self> {
        Ok(Self {
            unicast: tokio::net::UdpSocket::from_std(unicast)?,
            broadcast: broadcast.map(tokio::net::UdpSocket::from_std).transpose()?,
            unicast_buf: vec![0; max_len],
            broadcast_buf: vec![0; max_len],
        })
    }

    /// The next datagram from either socket, and who sent it.
    pub async fn recv(&mut self) -> io::Result<(&[u8], SocketAddr)> {
        let Self {
            unicast,
            broadcast,
            unicast_buf,
            broadcast_buf,
        } = self;
        tokio::select! {
            r = unicast.recv_from(unicast_buf) => {
                let (n, from) = r?;
                Ok((&unicast_buf[..n], from))
            }
            r = recv_optional(broadcast.as_ref(), broadcast_buf) => {
                let (n, from) = r?;
                Ok((&broadcast_buf[..n], from))
            }
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
