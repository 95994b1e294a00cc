//! `NET SEND name`: from whatever the user typed to an acknowledged message.
//!
//! A target is tried, in order, as:
//!
//! 1. an IPv4 address: reached directly;
//! 2. a NetBIOS name: `NAME<03>` resolved through WINS and broadcast ([`resolve_name`]);
//! 3. a DNS host name (when it is not a valid NetBIOS name, or the NetBIOS lookup found
//!    nothing): resolved with the system resolver and reached directly.
//!
//! "Reached directly" means what Windows does for `NET SEND 10.0.0.5` (REFERENCE 3.2 step 5):
//! ask the host for its names with a node status request and call its `<03>` name. The
//! service's own names (delivered locally, without the network) are the caller's business:
//! the daemon checks them before calling this.
//!
//! [`resolve_name`]: crate::resolve::resolve_name

use std::net::{Ipv4Addr, SocketAddrV4};

use netbios::name::SUFFIX_MESSENGER;
use netbios::smb::MessageForm;
use netbios::NetbiosName;

use crate::error::NetError;
use crate::resolve::{messenger_name, node_status, resolve_name};
use crate::session::{send_directed, Directed};
use crate::text::{self, LengthLimit};
use crate::Settings;

/// How a target string is understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// An IPv4 address.
    Address(Ipv4Addr),
    /// A messaging name (`NAME<03>`, uppercased OEM); falls back to DNS if not found.
    Name(NetbiosName),
    /// Not a NetBIOS name: a DNS host name.
    Host(String),
}

impl Target {
    /// Classifies `target` (see the module documentation).
    pub fn parse(target: &str, settings: &Settings) -> Target {
        let trimmed = target.trim();
        if let Ok(addr) = trimmed.parse::<Ipv4Addr>() {
            return Target::Address(addr);
        }
        match text::encode_name(trimmed, settings.code_page)
            .ok()
            .and_then(|bytes| NetbiosName::new(&bytes, SUFFIX_MESSENGER).ok())
        {
            Some(name) => Target::Name(name),
            None => Target::Host(trimmed.to_owned()),
        }
    }
}

/// A delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The messaging name it was delivered to, as shown to users (`BOB`).
    pub name: String,
    /// The session service that acknowledged it.
    pub address: SocketAddrV4,
    /// Which SMB form carried it.
    pub form: MessageForm,
}

/// Sends `text` from `from` to `target`, as `NET SEND target text` does.
pub async fn send_to(
    settings: &Settings,
    target: &str,
    from: &str,
    text: &str,
    limit: LengthLimit,
) -> Result<Delivered, NetError> {
    let text_bytes = text::encode_directed(text, settings.code_page, limit)?;
    let from_bytes = text::encode_sender(from, settings.code_page)?;
    let not_found = || NetError::NameNotFound {
        name: target.trim().to_owned(),
    };
    let (name, addrs) = match Target::parse(target, settings) {
        Target::Address(addr) => {
            let name = name_at(settings, addr, target).await?;
            (name, vec![addr])
        }
        Target::Name(name) => match resolve_name(settings, name).await {
            Ok(addrs) => (name, addrs),
            Err(NetError::NameNotFound { .. }) => {
                let addr = dns_lookup(target).await.ok_or_else(not_found)?;
                (name_at(settings, addr, target).await?, vec![addr])
            }
            Err(e) => return Err(e),
        },
        Target::Host(host) => {
            let addr = dns_lookup(&host).await.ok_or_else(not_found)?;
            (name_at(settings, addr, target).await?, vec![addr])
        }
    };
    let message = Directed {
        called: name,
        from: from_bytes,
        to: name.name_bytes().to_vec(),
        text: text_bytes,
    };
    // A unique name has one holder, but a multihomed one answers with each of its addresses:
    // try them in turn, and report the last failure if none takes the message.
    let mut last_error = None;
    for addr in addrs {
        let at = SocketAddrV4::new(addr, settings.session_port);
        match send_directed(settings, at, &message).await {
            Ok(form) => {
                return Ok(Delivered {
                    name: settings.code_page.decode(name.name_bytes()),
                    address: at,
                    form,
                })
            }
            Err(e) => {
                tracing::debug!(%at, error = %e, "directed send failed");
                last_error = Some(e);
            }
        }
    }
    Err(last_error.unwrap_or_else(not_found))
}

/// The `<03>` name to call at `addr`, from its node status. A host that does not answer, or
/// holds no messaging name, does not have the alias as far as the user is concerned
/// (2273, as Windows reports an unknown target).
async fn name_at(
    settings: &Settings,
    addr: Ipv4Addr,
    target: &str,
) -> Result<NetbiosName, NetError> {
    let not_found = || NetError::NameNotFound {
        name: target.trim().to_owned(),
    };
    match node_status(settings, addr).await {
        Ok(names) => messenger_name(&names).ok_or_else(not_found),
        Err(e) => {
            tracing::debug!(%addr, error = %e, "node status failed");
            Err(not_found())
        }
    }
}

/// The first IPv4 address of `host` in DNS (or `/etc/hosts`), if any.
async fn dns_lookup(host: &str) -> Option<Ipv4Addr> {
    let host = host.trim();
    if host.is_empty() {
        return None;
    }
    let addrs = tokio::net::lookup_host((host, 0)).await.ok()?;
    addrs.into_iter().find_map(|a| match a {
        std::net::SocketAddr::V4(v4) => Some(*v4.ip()),
        std::net::SocketAddr::V6(_) => None,
    })
}
