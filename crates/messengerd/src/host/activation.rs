//! Sockets handed over by systemd (socket activation, `packaging/systemd/messengerd.socket`),
//! so that the service never needs root to bind ports 137-139.
//!
//! systemd passes them as file descriptors 3, 4, ... with `LISTEN_FDS` and `LISTEN_PID`
//! (sd_listen_fds(3)); the `listenfd` crate reads those. Each descriptor must be an IPv4 UDP
//! socket on the configured name or datagram port or an IPv4 TCP listener on a configured
//! session port; anything else is refused with what it is and what was expected, as is a
//! configured port no descriptor serves.
//!
//! # Which interface a datagram came from
//!
//! When the service binds by itself it has, per interface, a socket bound to the interface
//! address and one bound to its broadcast address, so each name service task knows its
//! subnet (see `sockets`). A socket unit binds either way:
//!
//! - bound to an address (`ListenDatagram=192.0.2.10:137`): the sockets serve the interface
//!   holding it, alone (the other interfaces are not served);
//! - bound to the wildcard (`ListenDatagram=0.0.0.0:137`, the shipped unit): one socket per
//!   service gets the datagrams of every interface, and serves every interface the
//!   configuration selects (`listen_addresses`, else every IPv4 interface that is up). The
//!   service turns on `IP_PKTINFO`; one reader per socket reads with `recvmsg`, learns each
//!   datagram's receiving interface and the address it was sent to (a broadcast or one of
//!   ours), and hands it to that interface's name service or datagram task through a bounded
//!   queue; a datagram from an interface the service does not serve, or for a full queue, is
//!   dropped and counted. The tasks send through the same socket with an `IP_PKTINFO` control
//!   message naming the interface and its address, so answers, registrations and broadcasts
//!   leave from the right interface and address (see `pktinfo` and `udp`).
//!
//! What the service sends for `messenger send` (name queries, node status, mailslot
//! broadcasts, in `messenger-net`) goes out on sockets of its own, on ports the kernel picks
//! (broadcasts and queries bound to each interface's address), so it needs neither these
//! sockets nor root.
//!
//! The session service (TCP 139) has no such question: a connection knows both its ends.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::Path;

use messenger_core::config::Config;
use messenger_net::iface::Interface;
use socket2::SockRef;

use crate::host::sockets::{InterfaceSockets, SessionListener, SharedSockets, Sockets};

/// Why inherited sockets cannot be served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ActivationError {
    /// A descriptor is neither a UDP socket nor a TCP socket.
    #[error(
        "inherited socket {index} (fd {fd}) is neither an IPv4 UDP socket nor an IPv4 TCP \
         listener: {source}"
    )]
    NotASocket {
        /// Its position among the inherited sockets.
        index: usize,
        /// Its descriptor.
        fd: i32,
        /// What the check said.
        source: std::io::Error,
    },
    /// A descriptor's address could not be read, or is not IPv4.
    #[error("inherited socket {index} (fd {fd}) is not bound to an IPv4 address ({what})")]
    NotIpv4 {
        /// Its position among the inherited sockets.
        index: usize,
        /// Its descriptor.
        fd: i32,
        /// What it is bound to, or why that is unknown.
        what: String,
    },
    /// A TCP socket that is not listening (`Accept=yes` in the unit hands over connections).
    #[error(
        "inherited socket {index} (fd {fd}) is a TCP socket on {addr} that is not listening \
         (the socket unit must not set Accept=yes)"
    )]
    NotListening {
        /// Its position.
        index: usize,
        /// Its descriptor.
        fd: i32,
        /// Its address.
        addr: SocketAddr,
    },
    /// A socket on a port the configuration does not serve.
    #[error(
        "inherited socket {index} (fd {fd}) is {protocol} {addr}, which is not a configured \
         port (name service {name}/udp, datagram service {datagram}/udp, session service \
         {sessions}/tcp)"
    )]
    UnexpectedPort {
        /// Its position.
        index: usize,
        /// Its descriptor.
        fd: i32,
        /// `UDP` or `TCP`.
        protocol: &'static str,
        /// Its address.
        addr: SocketAddr,
        /// The configured name service port.
        name: u16,
        /// The configured datagram service port.
        datagram: u16,
        /// The configured session ports, comma-separated.
        sessions: String,
    },
    /// Two UDP sockets for the same service.
    #[error(
        "two inherited UDP sockets serve port {port} ({first} and {second}); the service takes \
         one per service"
    )]
    DuplicateUdp {
        /// The port.
        port: u16,
        /// The first socket's address.
        first: SocketAddr,
        /// The second's.
        second: SocketAddr,
    },
    /// A configured port has no inherited socket.
    #[error(
        "no inherited socket serves {what} ({port}/{protocol}); the socket unit must listen on \
         every port the configuration names"
    )]
    Missing {
        /// Which service.
        what: &'static str,
        /// Its port.
        port: u16,
        /// `udp` or `tcp`.
        protocol: &'static str,
    },
    /// The name and datagram sockets are bound to different addresses.
    #[error(
        "the inherited name service socket ({name}) and datagram socket ({datagram}) are bound \
         to different addresses"
    )]
    AddressMismatch {
        /// The name service socket's address.
        name: SocketAddr,
        /// The datagram socket's.
        datagram: SocketAddr,
    },
    /// A socket bound to an address no selected interface holds.
    #[error("the inherited sockets are bound to {0}, which no served interface holds")]
    NoSuchInterface(Ipv4Addr),
    /// Sockets were handed over, but the configuration turns NetBIOS off.
    #[error(
        "{0} sockets were inherited but the configuration says netbios = false; disable \
         messengerd.socket beside Samba"
    )]
    NetbiosOff(usize),
    /// A socket could not be made non-blocking.
    #[error("cannot set up inherited socket {addr}: {source}")]
    Setup {
        /// Its address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// One inherited socket, checked to be an IPv4 UDP socket or TCP listener.
#[derive(Debug)]
pub enum Inherited {
    /// A UDP socket.
    Udp(UdpSocket),
    /// A listening TCP socket.
    Tcp(TcpListener),
}

/// The sockets systemd handed over, if it handed over any (`LISTEN_FDS` for this process):
/// with them and a control socket bound at `control_path`, everything the service listens on.
/// `None` when the process was not socket-activated; the caller then binds as usual
/// ([`Sockets::bind`]).
pub fn from_env(
    config: &Config,
    control_path: &Path,
) -> Result<Option<Sockets>, crate::StartError> {
    let mut fds = listenfd::ListenFd::from_env();
    if fds.len() == 0 {
        return Ok(None);
    }
    let mut inherited = Vec::with_capacity(fds.len());
    for index in 0..fds.len() {
        let fd = listenfd_fd(index);
        let socket = match fds.take_udp_socket(index) {
            Ok(Some(udp)) => Inherited::Udp(udp),
            Ok(None) => continue,
            Err(_) => match fds.take_tcp_listener(index) {
                Ok(Some(tcp)) => Inherited::Tcp(tcp),
                Ok(None) => continue,
                Err(source) => {
                    return Err(ActivationError::NotASocket { index, fd, source }.into());
                }
            },
        };
        inherited.push(socket);
    }
    if !config.netbios() {
        return Err(ActivationError::NetbiosOff(inherited.len()).into());
    }
    let interfaces = messenger_net::iface::interfaces(&config.listen_addresses)?;
    let count = inherited.len();
    let (udp, sessions) = assign(config, &interfaces, inherited)?;
    let (own, shared) = match udp {
        Udp::Bound(one) => (vec![one], None),
        Udp::Shared(shared) => (Vec::new(), Some(shared)),
    };
    for interface in own
        .iter()
        .map(|s| &s.interface)
        .chain(shared.iter().flat_map(|s| s.interfaces.iter()))
    {
        tracing::info!(
            sockets = count,
            interface = %interface.name,
            addr = %interface.addr,
            shared = shared.is_some(),
            "serving an interface on the sockets systemd handed over"
        );
    }
    let control = crate::host::sockets::bind_control(control_path)?;
    Ok(Some(Sockets {
        interfaces: own,
        shared,
        sessions,
        control,
    }))
}

/// The descriptor of the `index`th inherited socket, for messages (systemd starts at 3).
fn listenfd_fd(index: usize) -> i32 {
    /// sd_listen_fds(3): SD_LISTEN_FDS_START.
    const SD_LISTEN_FDS_START: i32 = 3;
    SD_LISTEN_FDS_START.saturating_add(i32::try_from(index).unwrap_or(i32::MAX))
}

/// The inherited UDP sockets, sorted.
#[derive(Debug)]
pub enum Udp {
    /// Bound to an address: they serve the interface holding it.
    Bound(InterfaceSockets),
    /// Bound to the wildcard: they serve every selected interface.
    Shared(SharedSockets),
}

/// Sorts checked sockets into the services of `config`: one name service and one datagram
/// socket (same address), serving the interface holding their address or, bound to the
/// wildcard, all of `interfaces`; and the session listeners. Every socket must have a place
/// and every configured port a socket.
pub fn assign(
    config: &Config,
    interfaces: &[Interface],
    inherited: Vec<Inherited>,
) -> Result<(Udp, Vec<SessionListener>), ActivationError> {
    let name_port = config.name_port();
    let datagram_port = config.datagram_port();
    let mut session_ports = vec![config.session_port()];
    session_ports.extend(config.raw_session_ports.iter().copied());
    let unexpected = |index, protocol, addr| ActivationError::UnexpectedPort {
        index,
        fd: listenfd_fd(index),
        protocol,
        addr,
        name: name_port,
        datagram: datagram_port,
        sessions: session_ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(","),
    };

    let mut name: Option<(UdpSocket, SocketAddr)> = None;
    let mut datagram: Option<(UdpSocket, SocketAddr)> = None;
    let mut sessions = Vec::new();
    for (index, socket) in inherited.into_iter().enumerate() {
        let fd = listenfd_fd(index);
        let local = match &socket {
            Inherited::Udp(s) => s.local_addr(),
            Inherited::Tcp(l) => l.local_addr(),
        };
        let addr = match local {
            Ok(a @ SocketAddr::V4(_)) => a,
            Ok(other) => {
                return Err(ActivationError::NotIpv4 {
                    index,
                    fd,
                    what: other.to_string(),
                })
            }
            Err(e) => {
                return Err(ActivationError::NotIpv4 {
                    index,
                    fd,
                    what: e.to_string(),
                })
            }
        };
        let setup = |source| ActivationError::Setup { addr, source };
        match socket {
            Inherited::Udp(udp) => {
                let slot = if addr.port() == name_port {
                    &mut name
                } else if addr.port() == datagram_port {
                    &mut datagram
                } else {
                    return Err(unexpected(index, "UDP", addr));
                };
                if let Some((_, first)) = slot {
                    return Err(ActivationError::DuplicateUdp {
                        port: addr.port(),
                        first: *first,
                        second: addr,
                    });
                }
                udp.set_nonblocking(true).map_err(setup)?;
                // The unit says Broadcast=yes; a hand-made socket may not have.
                udp.set_broadcast(true).map_err(setup)?;
                *slot = Some((udp, addr));
            }
            Inherited::Tcp(listener) => {
                if !SockRef::from(&listener).is_listener().map_err(setup)? {
                    return Err(ActivationError::NotListening { index, fd, addr });
                }
                let Some(position) = session_ports.iter().position(|p| *p == addr.port()) else {
                    return Err(unexpected(index, "TCP", addr));
                };
                listener.set_nonblocking(true).map_err(setup)?;
                sessions.push(SessionListener {
                    listener,
                    session_request_required: position == 0
                        && addr.port() == netbios::nbss::SESSION_PORT,
                });
            }
        }
    }
    let missing = |what, port, protocol| ActivationError::Missing {
        what,
        port,
        protocol,
    };
    let (name, name_addr) = name.ok_or_else(|| missing("the name service", name_port, "udp"))?;
    let (datagram, datagram_addr) =
        datagram.ok_or_else(|| missing("the datagram service", datagram_port, "udp"))?;
    for port in &session_ports {
        let served = sessions
            .iter()
            .any(|s| s.listener.local_addr().is_ok_and(|a| a.port() == *port));
        if !served {
            return Err(missing("the session service", *port, "tcp"));
        }
    }
    if name_addr.ip() != datagram_addr.ip() {
        return Err(ActivationError::AddressMismatch {
            name: name_addr,
            datagram: datagram_addr,
        });
    }
    let udp = match served_interface(interfaces, name_addr)? {
        Served::One(interface) => Udp::Bound(InterfaceSockets {
            interface,
            name,
            name_broadcast: None,
            datagram,
            datagram_broadcast: None,
        }),
        Served::All(interfaces) => Udp::Shared(SharedSockets {
            interfaces,
            name,
            datagram,
        }),
    };
    Ok((udp, sessions))
}

/// What sockets bound to one address serve.
#[derive(Debug, PartialEq, Eq)]
enum Served {
    /// The interface holding the address.
    One(Interface),
    /// Every selected interface (the wildcard).
    All(Vec<Interface>),
}

/// The interfaces sockets bound to `addr` serve (see the module documentation).
fn served_interface(interfaces: &[Interface], addr: SocketAddr) -> Result<Served, ActivationError> {
    let SocketAddr::V4(addr) = addr else {
        unreachable!("checked to be IPv4 above")
    };
    let ip = *addr.ip();
    if ip.is_unspecified() {
        return Ok(Served::All(interfaces.to_vec()));
    }
    interfaces
        .iter()
        .find(|i| i.addr == ip)
        .cloned()
        .map(Served::One)
        .ok_or(ActivationError::NoSuchInterface(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOCAL: Ipv4Addr = Ipv4Addr::LOCALHOST;

    fn udp() -> (Inherited, u16) {
        let s = UdpSocket::bind((LOCAL, 0)).unwrap();
        let port = s.local_addr().unwrap().port();
        (Inherited::Udp(s), port)
    }

    fn tcp() -> (Inherited, u16) {
        let l = TcpListener::bind((LOCAL, 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        (Inherited::Tcp(l), port)
    }

    fn config(name: u16, datagram: u16, session: u16) -> Config {
        Config::parse(
            &format!("name_port = {name}\ndatagram_port = {datagram}\nsession_port = {session}\n"),
            "test",
        )
        .unwrap()
    }

    fn lo() -> Vec<Interface> {
        vec![Interface::loopback(LOCAL)]
    }

    #[test]
    fn sockets_are_sorted_by_port_in_any_order() {
        let (t, tp) = tcp();
        let (d, dp) = udp();
        let (n, np) = udp();
        let (udp, sessions) = assign(&config(np, dp, tp), &lo(), vec![t, d, n]).unwrap();
        let Udp::Bound(iface) = udp else {
            panic!("bound to 127.0.0.1: {udp:?}")
        };
        assert_eq!(iface.name.local_addr().unwrap().port(), np);
        assert_eq!(iface.datagram.local_addr().unwrap().port(), dp);
        assert_eq!(iface.interface.addr, LOCAL);
        assert_eq!(sessions.len(), 1);
        // Not port 139: SMB frames may come without a session request.
        assert!(!sessions[0].session_request_required);
    }

    #[test]
    fn a_socket_on_another_port_is_named_in_the_error() {
        let (t, tp) = tcp();
        let (d, dp) = udp();
        let (n, np) = udp();
        let (stray, sp) = udp();
        let err = assign(&config(np, dp, tp), &lo(), vec![n, d, t, stray]).unwrap_err();
        let text = err.to_string();
        assert!(matches!(
            err,
            ActivationError::UnexpectedPort {
                index: 3,
                fd: 6,
                ..
            }
        ));
        assert!(text.contains(&format!("UDP 127.0.0.1:{sp}")), "{text}");
        assert!(text.contains(&format!("{np}/udp")), "{text}");
    }

    #[test]
    fn a_tcp_socket_on_a_udp_port_is_refused() {
        let (t, tp) = tcp();
        let (d, dp) = udp();
        // The name service port given as TCP: a wrong type for that port.
        let (n, np) = tcp();
        let err = assign(&config(np, dp, tp), &lo(), vec![n, d, t]).unwrap_err();
        assert!(
            matches!(
                err,
                ActivationError::UnexpectedPort {
                    protocol: "TCP",
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn a_missing_service_is_named() {
        let (t, tp) = tcp();
        let (n, np) = udp();
        let err = assign(&config(np, np.wrapping_add(1), tp), &lo(), vec![n, t]).unwrap_err();
        assert!(
            matches!(
                err,
                ActivationError::Missing {
                    what: "the datagram service",
                    ..
                }
            ),
            "{err}"
        );
        let (d, dp) = udp();
        let (n, np) = udp();
        let err = assign(&config(np, dp, 139), &lo(), vec![n, d]).unwrap_err();
        assert!(err.to_string().contains("139/tcp"), "{err}");
    }

    #[test]
    fn a_tcp_socket_that_does_not_listen_is_refused() {
        let (d, dp) = udp();
        let (n, np) = udp();
        let bound =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        bound.bind(&SocketAddr::from((LOCAL, 0)).into()).unwrap();
        let tp = bound.local_addr().unwrap().as_socket().unwrap().port();
        let t = Inherited::Tcp(TcpListener::from(std::os::fd::OwnedFd::from(bound)));
        let err = assign(&config(np, dp, tp), &lo(), vec![n, d, t]).unwrap_err();
        assert!(matches!(err, ActivationError::NotListening { .. }), "{err}");
    }

    #[test]
    fn two_sockets_for_one_udp_service_are_refused() {
        let (t, tp) = tcp();
        let (n, np) = udp();
        let (d, dp) = udp();
        let again = UdpSocket::bind((Ipv4Addr::new(127, 0, 0, 2), np)).unwrap();
        let err = assign(
            &config(np, dp, tp),
            &lo(),
            vec![n, d, t, Inherited::Udp(again)],
        )
        .unwrap_err();
        assert!(matches!(err, ActivationError::DuplicateUdp { .. }), "{err}");
    }

    #[test]
    fn a_wildcard_socket_serves_every_selected_interface() {
        let eth = Interface::from_prefix("eth0", Ipv4Addr::new(192, 0, 2, 10), 24);
        let other = Interface::from_prefix("eth1", Ipv4Addr::new(198, 51, 100, 7), 24);
        let wildcard: SocketAddr = (Ipv4Addr::UNSPECIFIED, 137).into();
        let both = [eth.clone(), other.clone()];
        assert_eq!(
            served_interface(&both, wildcard).unwrap(),
            Served::All(both.to_vec())
        );
        // Bound to an address: the interface holding it, however many there are.
        let bound: SocketAddr = (Ipv4Addr::new(198, 51, 100, 7), 137).into();
        assert_eq!(
            served_interface(&both, bound).unwrap(),
            Served::One(other.clone())
        );
        let elsewhere: SocketAddr = (Ipv4Addr::new(203, 0, 113, 1), 137).into();
        assert!(matches!(
            served_interface(&[eth, other], elsewhere),
            Err(ActivationError::NoSuchInterface(_))
        ));
    }

    #[test]
    fn wildcard_sockets_are_shared_by_the_interfaces() {
        let (t, tp) = tcp();
        let wild = || {
            let s = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
            let port = s.local_addr().unwrap().port();
            (Inherited::Udp(s), port)
        };
        let (n, np) = wild();
        let (d, dp) = wild();
        let two = vec![
            Interface::loopback(LOCAL),
            Interface::loopback(Ipv4Addr::new(127, 0, 0, 2)),
        ];
        let (served, _) = assign(&config(np, dp, tp), &two, vec![n, d, t]).unwrap();
        let Udp::Shared(shared) = served else {
            panic!("bound to the wildcard: {served:?}")
        };
        assert_eq!(shared.interfaces, two);
        assert_eq!(shared.name.local_addr().unwrap().port(), np);
        assert_eq!(shared.datagram.local_addr().unwrap().port(), dp);
        // The name and datagram sockets must still agree on their address.
        let (t, tp) = tcp();
        let (n, np) = wild();
        let (d, dp) = udp();
        let err = assign(&config(np, dp, tp), &two, vec![n, d, t]).unwrap_err();
        assert!(
            matches!(err, ActivationError::AddressMismatch { .. }),
            "{err}"
        );
    }
}
