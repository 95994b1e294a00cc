//! The IPv4 interfaces NetBIOS traffic goes out on, and where each one's broadcasts go.
//!
//! NetBIOS over TCP/IP is IPv4-only (RFC 1001/1002) and B-node traffic — name queries and
//! `NET SEND *` datagrams — is sent to each subnet's directed-broadcast address, once per
//! interface, as Windows does per LANA (KB Q168893). Which interfaces count:
//!
//! - with `listen_addresses` configured, exactly the interfaces holding those addresses;
//! - otherwise every IPv4 interface that is up and not loopback;
//! - and if that leaves none (a machine or network namespace with only `lo`), the loopback
//!   addresses, so that a loopback-only setup still works.
//!
//! Loopback has no broadcast address (`lo` lacks `IFF_BROADCAST`). Linux would route
//! 127.255.255.255 as a broadcast, but only to sockets bound to the wildcard address, not to a
//! service bound to 127.0.0.1; so on loopback (and on point-to-point links) the "broadcast"
//! destination is the peer address itself, which reaches a service bound either way.

use std::net::Ipv4Addr;

use nix::ifaddrs::getifaddrs;
use nix::net::if_::InterfaceFlags;

/// One IPv4 address of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// The interface's name (`eth0`, `lo`).
    pub name: String,
    /// Our address on it; queries and datagrams are sent from here.
    pub addr: Ipv4Addr,
    /// Its netmask.
    pub netmask: Ipv4Addr,
    /// Where "broadcast to this subnet" goes: the directed-broadcast address, or for loopback
    /// and point-to-point links the single peer (see the module documentation).
    pub broadcast: Ipv4Addr,
    /// Whether this is a loopback address.
    pub loopback: bool,
}

/// Why the interfaces could not be listed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InterfaceError {
    /// `getifaddrs(3)` failed.
    #[error("cannot list network interfaces: {0}")]
    List(#[from] nix::Error),
    /// A configured listen address is not on any interface.
    #[error("the configured address {0} is not on any network interface")]
    NoSuchAddress(Ipv4Addr),
    /// Nothing to send on.
    #[error("no IPv4 network interface is up")]
    NoInterface,
}

impl Interface {
    /// An interface for one loopback address (tests, and loopback-only setups).
    pub fn loopback(addr: Ipv4Addr) -> Self {
        Self {
            name: "lo".to_owned(),
            addr,
            netmask: Ipv4Addr::new(255, 0, 0, 0),
            broadcast: addr,
            loopback: true,
        }
    }

    /// An interface with an address and a prefix length; the broadcast address is computed
    /// from them (for configurations that name a subnet rather than a system interface).
    pub fn from_prefix(name: &str, addr: Ipv4Addr, prefix_len: u8) -> Self {
        let bits = u32::from(prefix_len.min(32));
        let mask = if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        };
        let loopback = addr.is_loopback();
        Self {
            name: name.to_owned(),
            addr,
            netmask: Ipv4Addr::from(mask),
            broadcast: if loopback || bits >= 31 {
                addr
            } else {
                Ipv4Addr::from(u32::from(addr) | !mask)
            },
            loopback,
        }
    }

    /// Whether `addr` is on this interface's subnet.
    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        let mask = u32::from(self.netmask);
        u32::from(addr) & mask == u32::from(self.addr) & mask
    }
}

/// Every IPv4 address of every interface that is up, as the system reports it.
pub fn system_interfaces() -> Result<Vec<Interface>, InterfaceError> {
    let mut out: Vec<Interface> = Vec::new();
    for ifa in getifaddrs()? {
        if !ifa.flags.contains(InterfaceFlags::IFF_UP) {
            continue;
        }
        let Some(addr) = ifa
            .address
            .as_ref()
            .and_then(|a| a.as_sockaddr_in())
            .map(|a| a.ip())
        else {
            continue;
        };
        let netmask = ifa
            .netmask
            .as_ref()
            .and_then(|a| a.as_sockaddr_in())
            .map_or(Ipv4Addr::BROADCAST, |a| a.ip());
        let loopback = ifa.flags.contains(InterfaceFlags::IFF_LOOPBACK) || addr.is_loopback();
        // For IFF_BROADCAST interfaces getifaddrs fills in the broadcast address; for
        // point-to-point ones the same slot holds the peer. Either way it is where a B-node
        // "broadcast" must go; without one, fall back to the address itself (loopback).
        let broadcast = if loopback {
            addr
        } else if ifa.flags.contains(InterfaceFlags::IFF_BROADCAST) {
            ifa.broadcast
                .as_ref()
                .and_then(|a| a.as_sockaddr_in())
                .map(|a| a.ip())
                .unwrap_or_else(|| Ipv4Addr::from(u32::from(addr) | !u32::from(netmask)))
        } else {
            ifa.destination
                .as_ref()
                .and_then(|a| a.as_sockaddr_in())
                .map_or(addr, |a| a.ip())
        };
        let iface = Interface {
            name: ifa.interface_name.clone(),
            addr,
            netmask,
            broadcast,
            loopback,
        };
        if !out.contains(&iface) {
            out.push(iface);
        }
    }
    Ok(out)
}

/// The interfaces to use, chosen from `all` as the module documentation describes.
pub fn select(all: &[Interface], listen: &[Ipv4Addr]) -> Result<Vec<Interface>, InterfaceError> {
    if !listen.is_empty() {
        return listen
            .iter()
            .map(|&want| {
                all.iter()
                    .find(|i| i.addr == want)
                    .cloned()
                    // 127/8 is all ours on Linux even where only 127.0.0.1 is configured, so a
                    // test may listen on 127.0.0.2 without adding the address to `lo`.
                    .or_else(|| want.is_loopback().then(|| Interface::loopback(want)))
                    .ok_or(InterfaceError::NoSuchAddress(want))
            })
            .collect();
    }
    let outside: Vec<Interface> = all.iter().filter(|i| !i.loopback).cloned().collect();
    if !outside.is_empty() {
        return Ok(outside);
    }
    let loopback: Vec<Interface> = all.iter().filter(|i| i.loopback).cloned().collect();
    if loopback.is_empty() {
        return Err(InterfaceError::NoInterface);
    }
    Ok(loopback)
}

/// [`system_interfaces`] filtered by [`select`].
pub fn interfaces(listen: &[Ipv4Addr]) -> Result<Vec<Interface>, InterfaceError> {
    select(&system_interfaces()?, listen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eth(addr: [u8; 4], prefix: u8) -> Interface {
        Interface::from_prefix("eth0", Ipv4Addr::from(addr), prefix)
    }

    #[test]
    fn broadcast_is_computed_from_the_prefix() {
        let i = eth([192, 168, 1, 20], 24);
        assert_eq!(i.broadcast, Ipv4Addr::new(192, 168, 1, 255));
        assert_eq!(i.netmask, Ipv4Addr::new(255, 255, 255, 0));
        assert!(i.contains(Ipv4Addr::new(192, 168, 1, 7)));
        assert!(!i.contains(Ipv4Addr::new(192, 168, 2, 7)));
        assert_eq!(eth([10, 0, 0, 1], 32).broadcast, Ipv4Addr::new(10, 0, 0, 1));
        let lo = Interface::from_prefix("lo", Ipv4Addr::LOCALHOST, 8);
        assert!(lo.loopback);
        assert_eq!(lo.broadcast, Ipv4Addr::LOCALHOST);
    }

    #[test]
    fn selection_prefers_real_interfaces_and_falls_back_to_loopback() {
        let lo = Interface::loopback(Ipv4Addr::LOCALHOST);
        let e = eth([10, 1, 2, 3], 16);
        assert_eq!(
            select(&[lo.clone(), e.clone()], &[]).unwrap(),
            vec![e.clone()]
        );
        assert_eq!(
            select(std::slice::from_ref(&lo), &[]).unwrap(),
            vec![lo.clone()]
        );
        assert!(matches!(select(&[], &[]), Err(InterfaceError::NoInterface)));
        assert_eq!(
            select(&[lo.clone(), e.clone()], &[Ipv4Addr::LOCALHOST]).unwrap(),
            vec![lo]
        );
        let other_lo = select(std::slice::from_ref(&e), &[Ipv4Addr::new(127, 0, 0, 2)]).unwrap();
        assert_eq!(other_lo[0].broadcast, Ipv4Addr::new(127, 0, 0, 2));
        assert!(matches!(
            select(&[e], &[Ipv4Addr::new(10, 9, 9, 9)]),
            Err(InterfaceError::NoSuchAddress(_))
        ));
    }

    #[test]
    fn the_system_has_a_loopback_interface_with_itself_as_broadcast() {
        let all = system_interfaces().unwrap();
        let lo = all
            .iter()
            .find(|i| i.addr == Ipv4Addr::LOCALHOST)
            .expect("127.0.0.1 is configured");
        assert!(lo.loopback);
        assert_eq!(lo.broadcast, Ipv4Addr::LOCALHOST);
        let chosen = select(&all, &[Ipv4Addr::LOCALHOST]).unwrap();
        assert_eq!(chosen.len(), 1);
    }
}
