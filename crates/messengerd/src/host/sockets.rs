//! Binding every socket the service needs, before it gives up root.
//!
//! The service is handed its sockets already bound (as hickory-dns's server is): `main` binds
//! them as root and then drops privileges, and tests bind them on loopback with port 0 so that
//! many services run side by side.
//!
//! On each IPv4 interface two UDP sockets serve each of the name and datagram services: one
//! bound to the interface address (unicast requests and everything we send) and one bound to
//! the interface's broadcast address (Linux delivers a broadcast only to sockets bound to the
//! wildcard or to that broadcast address, and the wildcard would mix up interfaces).

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::unix::net::UnixListener;
use std::path::Path;

use messenger_core::config::Config;
use messenger_net::iface::Interface;
use nix::sys::stat::{umask, Mode};
use socket2::{Domain, Protocol, Socket, Type};

use crate::error::StartError;

/// Pending connections the kernel queues for the session port before we accept them.
const LISTEN_BACKLOG: i32 = 1024;

/// The UDP sockets of one interface.
#[derive(Debug)]
pub struct InterfaceSockets {
    /// The interface.
    pub interface: Interface,
    /// Name service, bound to the interface address.
    pub name: UdpSocket,
    /// Name service, bound to the broadcast address.
    pub name_broadcast: Option<UdpSocket>,
    /// Datagram service, bound to the interface address.
    pub datagram: UdpSocket,
    /// Datagram service, bound to the broadcast address.
    pub datagram_broadcast: Option<UdpSocket>,
}

/// The wildcard UDP sockets a socket unit hands over, one per service, shared by every
/// interface served (see `activation` and `pktinfo`).
#[derive(Debug)]
pub struct SharedSockets {
    /// The interfaces served, in order.
    pub interfaces: Vec<Interface>,
    /// Name service, bound to the wildcard address.
    pub name: UdpSocket,
    /// Datagram service, bound to the wildcard address.
    pub datagram: UdpSocket,
}

/// A TCP listener of the session service.
#[derive(Debug)]
pub struct SessionListener {
    /// The listener.
    pub listener: TcpListener,
    /// Whether a NetBIOS session request must come first (port 139); on other ports SMB frames
    /// may come straight away, as Samba allows.
    pub session_request_required: bool,
}

/// Everything the service listens on.
#[derive(Debug)]
pub struct Sockets {
    /// Per-interface UDP sockets.
    pub interfaces: Vec<InterfaceSockets>,
    /// Wildcard UDP sockets shared by interfaces (socket activation); `None` when bound here.
    pub shared: Option<SharedSockets>,
    /// Session service listeners.
    pub sessions: Vec<SessionListener>,
    /// The control socket.
    pub control: UnixListener,
}

impl Sockets {
    /// Binds every socket `config` asks for; `control_path` is the control socket.
    pub fn bind(config: &Config, control_path: &Path) -> Result<Self, StartError> {
        if !config.netbios() {
            // Beside Samba: nmbd and smbd own the NetBIOS ports, and messages arrive through
            // `messenger deliver`. Only the control socket is ours.
            return Ok(Self {
                interfaces: Vec::new(),
                shared: None,
                sessions: Vec::new(),
                control: bind_control(control_path)?,
            });
        }
        let interfaces = messenger_net::iface::interfaces(&config.listen_addresses)?;
        if interfaces.is_empty() {
            return Err(StartError::NoInterface);
        }
        let mut bound = Vec::new();
        for interface in interfaces {
            let name = bind_udp(interface.addr, config.name_port())?;
            let name_port = udp_port(&name, interface.addr)?;
            let datagram = bind_udp(interface.addr, config.datagram_port())?;
            let dgm_port = udp_port(&datagram, interface.addr)?;
            let has_broadcast = !interface.loopback && interface.broadcast != interface.addr;
            let (name_broadcast, datagram_broadcast) = if has_broadcast {
                (
                    Some(bind_udp(interface.broadcast, name_port)?),
                    Some(bind_udp(interface.broadcast, dgm_port)?),
                )
            } else {
                (None, None)
            };
            bound.push(InterfaceSockets {
                interface,
                name,
                name_broadcast,
                datagram,
                datagram_broadcast,
            });
        }
        let mut sessions = Vec::new();
        let addrs: Vec<Ipv4Addr> = bound.iter().map(|b| b.interface.addr).collect();
        let mut ports = vec![config.session_port()];
        ports.extend(config.raw_session_ports.iter().copied());
        for (i, port) in ports.into_iter().enumerate() {
            let mut actual = port;
            for addr in &addrs {
                let listener = bind_tcp(*addr, actual)?;
                // With port 0 every address must share the port the first one got.
                actual = listener
                    .local_addr()
                    .map_err(|source| StartError::Bind {
                        protocol: "TCP",
                        addr: *addr,
                        port: actual,
                        source,
                    })?
                    .port();
                sessions.push(SessionListener {
                    listener,
                    session_request_required: i == 0 && port == netbios::nbss::SESSION_PORT,
                });
            }
        }
        let control = bind_control(control_path)?;
        Ok(Self {
            interfaces: bound,
            shared: None,
            sessions,
            control,
        })
    }

    /// The local address of the first session listener (tests connect there).
    pub fn session_addr(&self) -> Option<SocketAddr> {
        self.sessions
            .first()
            .and_then(|s| s.listener.local_addr().ok())
    }

    /// The local address of the first name service socket.
    pub fn name_addr(&self) -> Option<SocketAddr> {
        self.first_udp_addr(|s| &s.name, |s| &s.name)
    }

    /// The local address of the first datagram service socket.
    pub fn datagram_addr(&self) -> Option<SocketAddr> {
        self.first_udp_addr(|s| &s.datagram, |s| &s.datagram)
    }

    /// The local address of the shared socket `shared` picks, or else of the first
    /// interface's socket `own` picks.
    fn first_udp_addr(
        &self,
        shared: fn(&SharedSockets) -> &UdpSocket,
        own: fn(&InterfaceSockets) -> &UdpSocket,
    ) -> Option<SocketAddr> {
        let socket = match &self.shared {
            Some(s) => shared(s),
            None => own(self.interfaces.first()?),
        };
        socket.local_addr().ok()
    }

    /// Every interface served, whether by sockets of its own or by shared ones.
    pub fn served_interfaces(&self) -> Vec<Interface> {
        let own = self.interfaces.iter().map(|s| s.interface.clone());
        let shared = self
            .shared
            .iter()
            .flat_map(|s| s.interfaces.iter().cloned());
        own.chain(shared).collect()
    }
}

fn bind_udp(addr: Ipv4Addr, port: u16) -> Result<UdpSocket, StartError> {
    let bind = || -> std::io::Result<UdpSocket> {
        let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
        // Two sockets (unicast and broadcast) share each port, as does a restarted service.
        socket.set_reuse_address(true)?;
        socket.set_broadcast(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&SocketAddr::V4(SocketAddrV4::new(addr, port)).into())?;
        Ok(socket.into())
    };
    bind().map_err(|source| StartError::Bind {
        protocol: "UDP",
        addr,
        port,
        source,
    })
}

fn udp_port(socket: &UdpSocket, addr: Ipv4Addr) -> Result<u16, StartError> {
    socket
        .local_addr()
        .map(|a| a.port())
        .map_err(|source| StartError::Bind {
            protocol: "UDP",
            addr,
            port: 0,
            source,
        })
}

fn bind_tcp(addr: Ipv4Addr, port: u16) -> Result<TcpListener, StartError> {
    let bind = || -> std::io::Result<TcpListener> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        socket.set_reuse_address(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&SocketAddr::V4(SocketAddrV4::new(addr, port)).into())?;
        socket.listen(LISTEN_BACKLOG)?;
        Ok(socket.into())
    };
    bind().map_err(|source| StartError::Bind {
        protocol: "TCP",
        addr,
        port,
        source,
    })
}

/// What to add to an error about the control socket's directory when the service runs
/// without root: the default is the system service's, which only root can create.
pub fn not_root_hint() -> &'static str {
    if nix::unistd::Uid::effective().is_root() {
        ""
    } else {
        " (a service started without root needs a control_socket of its own in the \
         configuration; the command line then needs the same configuration or --socket)"
    }
}

/// Runs `f` with the process's umask set to `mask`, restoring it afterwards. The umask is the
/// whole process's: every change of it goes through here, one at a time.
pub fn with_umask<R>(mask: u32, f: impl FnOnce() -> R) -> R {
    static UMASK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serialised = UMASK.lock().unwrap_or_else(|e| e.into_inner());
    let old = umask(Mode::from_bits_truncate(mask));
    let result = f();
    umask(old);
    result
}

/// Mode of the control socket: every user may connect, and the service checks each caller's
/// credentials itself (SO_PEERCRED). `bind` gives a socket `0777 & !umask`, hence this umask.
const CONTROL_SOCKET_UMASK: u32 = 0o111;

pub(crate) fn bind_control(path: &Path) -> Result<UnixListener, StartError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| StartError::ControlDir {
            dir: dir.to_owned(),
            source,
            hint: not_root_hint(),
        })?;
    }
    let failed = |source| StartError::Control {
        path: path.to_owned(),
        source,
    };
    // A socket left by a service that died is stale; a live one answers a connection. Whatever
    // else has the name is removed, never followed (unlink does not follow links).
    if std::fs::symlink_metadata(path).is_ok() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(StartError::AlreadyRunning(path.to_owned()));
        }
        std::fs::remove_file(path).map_err(failed)?;
    }
    // The mode comes from the umask at bind time: a chmod by path afterwards could be sent
    // through a link planted in the directory meanwhile. `main` binds before any other thread
    // exists; in tests, files other threads create meanwhile get this umask.
    let listener = with_umask(CONTROL_SOCKET_UMASK, || UnixListener::bind(path)).map_err(failed)?;
    listener.set_nonblocking(true).map_err(failed)?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_control_socket_is_open_to_every_user_without_a_chmod() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("control.sock");
        // A link to a file of ours where the socket goes: removed, not followed.
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"").unwrap();
        std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&victim, &path).unwrap();
        let _listener = bind_control(&path).unwrap();
        let mode = std::fs::symlink_metadata(&path)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o666);
        let victim_mode = std::fs::metadata(&victim).unwrap().permissions().mode();
        assert_eq!(victim_mode & 0o777, 0o600);
    }
}
