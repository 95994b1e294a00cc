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
    Host {
        /// The name as given, trimmed.
        host: String,
        /// Which rule of messaging names it breaks, for the error if DNS does not know it
        /// either.
        not_a_name: NotAName,
    },
}

/// Why a target is not a messaging name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotAName {
    /// The rule it breaks, in words.
    pub reason: String,
    /// Whether the rule is the length.
    pub too_long: bool,
}

impl NotAName {
    /// The error for `name` when no host of that name is found either.
    pub fn into_error(self, name: &str) -> NetError {
        NetError::NoSuchRecipient {
            name: name.to_owned(),
            reason: self.reason,
            too_long: self.too_long,
        }
    }
}

impl Target {
    /// Classifies `target` (see the module documentation).
    pub fn parse(target: &str, settings: &Settings) -> Target {
        let trimmed = target.trim();
        if let Ok(addr) = trimmed.parse::<Ipv4Addr>() {
            return Target::Address(addr);
        }
        let name = text::encode_name(trimmed, settings.code_page).and_then(|bytes| {
            NetbiosName::new(&bytes, SUFFIX_MESSENGER).map_err(|e| NetError::InvalidName {
                name: trimmed.to_owned(),
                reason: e.to_string(),
            })
        });
        match name {
            Ok(name) => Target::Name(name),
            Err(e) => Target::Host {
                host: trimmed.to_owned(),
                not_a_name: not_a_name(trimmed, e),
            },
        }
    }
}

/// Why `name` is not a messaging name, from the encoding error `e`. The length rule is
/// stated in characters, as the user typed them.
fn not_a_name(name: &str, e: NetError) -> NotAName {
    let chars = name.chars().count();
    let (reason, too_long) = if chars > netbios::name::MAX_NAME_CHARS {
        (
            format!(
                "it has {chars} characters; messaging names have at most {}",
                netbios::name::MAX_NAME_CHARS
            ),
            true,
        )
    } else {
        let reason = match e {
            NetError::InvalidName { reason, .. } => reason,
            other => other.to_string(),
        };
        (reason, false)
    };
    NotAName { reason, too_long }
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
            let name = name_at(settings, addr).await?;
            (name, vec![addr])
        }
        Target::Name(name) => match resolve_name(settings, name).await {
            Ok(addrs) => (name, addrs),
            Err(NetError::NameNotFound { .. }) => {
                let addr = dns_lookup(target).await.ok_or_else(not_found)?;
                (name_at(settings, addr).await?, vec![addr])
            }
            Err(e) => return Err(e),
        },
        Target::Host { host, not_a_name } => {
            let Some(addr) = dns_lookup(&host).await else {
                return Err(not_a_name.into_error(&host));
            };
            (name_at(settings, addr).await?, vec![addr])
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

/// Sends `text` from `from` to `user` on the computer at `addr`, as `NET SEND /USERS` does for
/// a client with a session to this server: calls `machine<03>` (the client's computer name,
/// which every messenger client holds) at that address with `user` as the DestinationName,
/// without a name lookup. When `machine` is unknown (empty) or not a NetBIOS name, the
/// client's `<03>` name is asked of it with a node status request. A client where `user` is
/// not a name (nobody of that name is logged in there: a guest session, or a server account
/// that is not the desktop's) refuses the message; it then goes to the computer name, which
/// reaches whoever uses the client.
pub async fn send_to_session(
    settings: &Settings,
    addr: Ipv4Addr,
    machine: &str,
    user: &str,
    from: &str,
    text: &str,
    limit: LengthLimit,
) -> Result<Delivered, NetError> {
    let text_bytes = text::encode_directed(text, settings.code_page, limit)?;
    let from_bytes = text::encode_sender(from, settings.code_page)?;
    let to_bytes = text::encode_sender(user, settings.code_page)?;
    let given = text::encode_name(machine, settings.code_page)
        .ok()
        .and_then(|bytes| NetbiosName::new(&bytes, SUFFIX_MESSENGER).ok());
    let called = match given {
        Some(name) => name,
        None => name_at(settings, addr).await?,
    };
    let mut message = Directed {
        called,
        from: from_bytes,
        to: to_bytes,
        text: text_bytes,
    };
    let at = SocketAddrV4::new(addr, settings.session_port);
    let form = match send_directed(settings, at, &message).await {
        Err(NetError::Refused { reason, .. }) if message.to != called.name_bytes() => {
            tracing::debug!(%at, user, reason, "the user's name refused; sending to the computer name");
            message.to = called.name_bytes().to_vec();
            send_directed(settings, at, &message).await?
        }
        other => other?,
    };
    Ok(Delivered {
        name: settings.code_page.decode(called.name_bytes()),
        address: at,
        form,
    })
}

/// The `<03>` name to call at `addr`, from its node status. A host that does not answer, or
/// answers without a messaging name, does not have the alias as far as Windows is concerned
/// (2273); the error says which of the two it was.
async fn name_at(settings: &Settings, addr: Ipv4Addr) -> Result<NetbiosName, NetError> {
    match node_status(settings, addr).await {
        Ok(names) => messenger_name(&names).ok_or(NetError::NoMessengerAt { addr }),
        Err(NetError::Timeout { after, .. }) => Err(NetError::NoAnswer { addr, after }),
        Err(e) => {
            tracing::debug!(%addr, error = %e, "node status failed");
            Err(e)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::with_interfaces(&messenger_core::config::Config::default(), "PC", Vec::new())
            .unwrap()
    }

    #[test]
    fn targets_that_are_not_names_carry_the_rule_they_break() {
        let s = settings();
        assert_eq!(
            Target::parse("10.0.0.5", &s),
            Target::Address(Ipv4Addr::new(10, 0, 0, 5))
        );
        assert_eq!(
            Target::parse(" bob ", &s),
            Target::Name(NetbiosName::messenger("bob").unwrap())
        );
        let Target::Host { host, not_a_name } = Target::parse("abcdefghijklmnopq", &s) else {
            panic!("a 17-character name is not a NetBIOS name");
        };
        assert_eq!(host, "abcdefghijklmnopq");
        assert!(not_a_name.too_long);
        let e = not_a_name.into_error(&host);
        assert_eq!(e.nerr(), messenger_core::nerr::ERROR_INVALID_PARAMETER);
        assert!(e.is_input_error());
        let text = e.to_string();
        assert!(
            text.contains("it has 17 characters; messaging names have at most 15"),
            "{text}"
        );
        assert!(!text.contains("<03>"), "{text}");

        let Target::Host { not_a_name, .. } = Target::parse("a?b", &s) else {
            panic!("'?' is not allowed in NetBIOS names");
        };
        assert!(!not_a_name.too_long);
        let e = not_a_name.into_error("a?b");
        assert_eq!(e.nerr(), messenger_core::nerr::ERROR_INVALID_NAME);
        assert!(e.to_string().contains("may not contain"), "{e}");
        // A dotted host name of more than 15 characters is a host, to be looked up.
        assert!(matches!(
            Target::parse("mail.example.org", &s),
            Target::Host { .. }
        ));
    }

    #[test]
    fn a_silent_address_says_so() {
        let e = NetError::NoAnswer {
            addr: Ipv4Addr::new(192, 0, 2, 7),
            after: std::time::Duration::from_millis(4500),
        };
        assert_eq!(e.nerr(), messenger_core::nerr::NERR_NAME_NOT_FOUND);
        assert!(!e.is_input_error());
        assert_eq!(
            e.to_string(),
            "the computer at 192.0.2.7 did not answer (no reply to the node status query within 4500 ms)"
        );
    }
}
