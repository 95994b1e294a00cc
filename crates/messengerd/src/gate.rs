//! Admission control for everything that reaches us from the network: which sources may send
//! at all, how many connections each may hold, how fast each may deliver, and whose
//! workgroup broadcasts we take.
//!
//! Policy, in the order it is applied:
//! 1. Source networks: `[policy] deny` refuses, then `allow` admits (default: private and
//!    local address space and our interfaces' subnets, see `policy::LOCAL_NETWORKS`). A refused TCP connection is closed at once, after a NEGATIVE
//!    SESSION RESPONSE 0x81 ("not listening for calling name") on port 139; we do not read
//!    its SMBs just to answer each with an error, since a refused source must cost us nothing.
//!    A refused datagram is dropped.
//! 2. Connection caps: at most `max_connections` in all and `max_connections_per_source`
//!    from one address; beyond them a connection gets 0x83 ("insufficient resources") and is
//!    closed. Together with the session's first-request and idle timeouts, its lifetime cap
//!    and its error budget, hundreds of idle or busy connections from one host hold at most
//!    its own share of slots, and only briefly.
//! 3. Rate limits (token buckets, on unless `rate_limit = false`): directed messages per
//!    source, mailslot messages per source, and mailslot messages from all sources together,
//!    shared fairly between networks (`policy::DatagramBudget`). A source's flood empties only
//!    its own bucket; the global bucket exists because a UDP source address is not verified
//!    and a forged-source flood passes every per-source limit, and its per-network shares keep
//!    a flood from one network from starving the others. A rate-limited directed message gets
//!    ERRmsgoff.
//! 4. Broadcast sources: workgroup broadcasts are taken only from `broadcast_sources`
//!    (default: every admitted source).
//!
//! 5. Local senders: users of this computer are rate-limited per uid with the same numbers
//!    ([`LocalSendLimit`]), root exempt.
//!
//! Every refusal is logged by the caller. Floods of refusals are not rate-limited here:
//! journald's own rate limit (RateLimitBurst) protects the log.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use messenger_core::config::Config;
use messenger_core::policy::{Cidr, DatagramBudget, RateLimiter, SourcePolicy};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::host::caller::Caller;
use crate::util::lock;

/// Sources tracked by each per-source rate limiter; see `RateLimiter` for why this bounds
/// memory (about 64 bytes a source). 4096 covers every host of a /20, far more than a LAN
/// where NetBIOS messaging is used.
const MAX_RATE_LIMITED_SOURCES: usize = 4096;

/// A token bucket's parameters: events per second after a burst.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    /// Sustained events per second.
    pub per_second: f64,
    /// Events at once.
    pub burst: u32,
}

/// What a [`Gate`] enforces, resolved from the configuration.
#[derive(Debug, Clone)]
pub struct GateSettings {
    /// Who may send to us at all.
    pub sources: SourcePolicy,
    /// Whose workgroup broadcasts we take; empty: every admitted source.
    pub broadcast_sources: Vec<Cidr>,
    /// Connections at once, in all.
    pub max_connections: usize,
    /// Connections at once from one address.
    pub max_connections_per_source: usize,
    /// Directed messages per source; `None`: unlimited.
    pub messages: Option<Rate>,
    /// Mailslot messages per source; `None`: unlimited.
    pub datagrams: Option<Rate>,
    /// Mailslot messages from all sources together; `None`: unlimited.
    pub global_datagrams: Option<Rate>,
}

impl GateSettings {
    /// The settings of `config`, with the default allow list built from `interfaces`.
    pub fn from_config(
        config: &Config,
        interfaces: &[messenger_net::iface::Interface],
    ) -> Result<Self, crate::error::StartError> {
        let policy = &config.policy;
        let broadcast_sources = policy.broadcast_sources.clone();
        let limited = |per_second, burst| policy.rate_limit.then_some(Rate { per_second, burst });
        Ok(Self {
            sources: source_policy(config, interfaces)?,
            broadcast_sources,
            max_connections: config.limits.max_connections,
            max_connections_per_source: config.limits.max_connections_per_source,
            messages: limited(policy.messages_per_second, policy.message_burst),
            datagrams: limited(policy.datagrams_per_second, policy.datagram_burst),
            global_datagrams: limited(
                policy.global_datagrams_per_second,
                policy.global_datagram_burst,
            ),
        })
    }
}

/// The source policy: the configured lists, or, when `allow` is empty, private and local
/// address space and the subnets of our interfaces (see
/// [`messenger_core::policy::LOCAL_NETWORKS`] for why).
pub fn source_policy(
    config: &Config,
    interfaces: &[messenger_net::iface::Interface],
) -> Result<SourcePolicy, crate::error::StartError> {
    let own_subnets = interfaces
        .iter()
        .map(|i| Cidr::new(IpAddr::V4(i.addr), u32::from(i.netmask).count_ones() as u8))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(SourcePolicy {
        allow: config.policy.allow.clone(),
        deny: config.policy.deny.clone(),
    }
    .or_local_networks(own_subnets))
}

/// Local users tracked by the send rate limit at once. The table forgets idle users first
/// when full (see `RateLimiter`), so this bounds memory (about 64 bytes a user), not who may
/// send; 4096 is more users than send at once on any shared host.
const MAX_RATE_LIMITED_USERS: usize = 4096;

/// The per-uid rate limit on local sends (see the module documentation).
pub struct LocalSendLimit {
    users: Option<Mutex<RateLimiter<u32>>>,
}

impl LocalSendLimit {
    /// The limit `config` asks for: `[policy] messages_per_second` after `message_burst`, or
    /// none with `rate_limit = false`.
    pub fn from_config(config: &Config) -> Self {
        let policy = &config.policy;
        Self {
            users: policy.rate_limit.then(|| {
                Mutex::new(RateLimiter::new(
                    policy.messages_per_second,
                    policy.message_burst,
                    MAX_RATE_LIMITED_USERS,
                ))
            }),
        }
    }

    /// Whether one more send by `caller` at `now` is within their rate; root always is.
    pub fn admits(&self, caller: &Caller, now: Instant) -> bool {
        match &self.users {
            Some(users) if !caller.is_root => lock(users).check_key(caller.uid, now),
            _ => true,
        }
    }
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The source policy refuses the address.
    Source,
    /// `max_connections` are open.
    TotalConnections,
    /// `max_connections_per_source` are open from this address.
    SourceConnections,
}

/// Why a mailslot message was dropped by the rate limits.
pub use messenger_core::policy::DatagramLimit as RateLimited;

/// Admission control shared by every listener.
pub struct Gate {
    permits: Arc<Semaphore>,
    /// Open connections per address. Bounded without a cap of its own: an entry exists only
    /// while one of the `max_connections` permits is held for its address.
    per_source: Mutex<HashMap<IpAddr, usize>>,
    max_per_source: usize,
    sources: SourcePolicy,
    broadcast_sources: Vec<Cidr>,
    messages: Option<Mutex<RateLimiter>>,
    datagrams: Mutex<DatagramBudget>,
}

/// A connection slot; frees itself when dropped.
pub struct Admission {
    gate: Arc<Gate>,
    ip: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut counts = lock(&self.gate.per_source);
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

impl Gate {
    /// A gate enforcing `settings`.
    pub fn new(settings: GateSettings) -> Self {
        let limiter = |r: Rate| {
            Mutex::new(RateLimiter::new(
                r.per_second,
                r.burst,
                MAX_RATE_LIMITED_SOURCES,
            ))
        };
        Self {
            permits: Arc::new(Semaphore::new(settings.max_connections)),
            per_source: Mutex::new(HashMap::new()),
            max_per_source: settings.max_connections_per_source,
            sources: settings.sources,
            broadcast_sources: settings.broadcast_sources,
            messages: settings.messages.map(limiter),
            datagrams: Mutex::new(DatagramBudget::new(
                settings.datagrams.map(|r| (r.per_second, r.burst)),
                settings.global_datagrams.map(|r| (r.per_second, r.burst)),
                MAX_RATE_LIMITED_SOURCES,
                Instant::now(),
            )),
        }
    }

    /// Whether `ip` may send to us at all.
    pub fn admits_source(&self, ip: IpAddr) -> bool {
        self.sources.admits(ip)
    }

    /// Takes a connection slot for `ip`, or says why not.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Admission, Refused> {
        let ip = ip.to_canonical();
        if !self.admits_source(ip) {
            return Err(Refused::Source);
        }
        let permit = Arc::clone(&self.permits)
            .try_acquire_owned()
            .map_err(|_| Refused::TotalConnections)?;
        let mut counts = lock(&self.per_source);
        let n = counts.entry(ip).or_insert(0);
        if *n >= self.max_per_source {
            return Err(Refused::SourceConnections);
        }
        *n += 1;
        Ok(Admission {
            gate: Arc::clone(self),
            ip,
            _permit: permit,
        })
    }

    /// Whether one more directed message from `ip` is within its rate.
    pub fn message_within_rate(&self, ip: IpAddr) -> bool {
        match &self.messages {
            Some(r) => lock(r).check(ip, Instant::now()),
            None => true,
        }
    }

    /// Whether one more mailslot message from `ip` is within its own rate, its network's
    /// share of the global rate, and the global rate (see `policy::DatagramBudget`).
    pub fn datagram_within_rate(&self, ip: IpAddr) -> Result<(), RateLimited> {
        lock(&self.datagrams).check(ip, Instant::now())
    }

    /// Whether we take workgroup broadcasts from `ip`.
    pub fn admits_broadcast_from(&self, ip: IpAddr) -> bool {
        self.broadcast_sources.is_empty() || self.broadcast_sources.iter().any(|c| c.contains(ip))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn settings() -> GateSettings {
        GateSettings {
            sources: SourcePolicy::parse(&["127.0.0.0/8"], &["127.0.0.66"]).unwrap(),
            broadcast_sources: Vec::new(),
            max_connections: 4,
            max_connections_per_source: 2,
            messages: Some(Rate {
                per_second: 0.001,
                burst: 2,
            }),
            datagrams: Some(Rate {
                per_second: 0.001,
                burst: 2,
            }),
            global_datagrams: Some(Rate {
                per_second: 0.001,
                burst: 5,
            }),
        }
    }

    #[test]
    fn connection_caps_per_source_and_in_all() {
        let gate = Arc::new(Gate::new(settings()));
        assert_eq!(gate.admit(ip("127.0.0.66")).err(), Some(Refused::Source));
        assert_eq!(gate.admit(ip("10.0.0.1")).err(), Some(Refused::Source));
        let a1 = gate.admit(ip("127.0.0.2")).unwrap();
        let _a2 = gate.admit(ip("127.0.0.2")).unwrap();
        assert_eq!(
            gate.admit(ip("127.0.0.2")).err(),
            Some(Refused::SourceConnections)
        );
        // A refused per-source attempt must not leak a global slot.
        let _b1 = gate.admit(ip("127.0.0.3")).unwrap();
        let _b2 = gate.admit(ip("::ffff:127.0.0.3")).unwrap();
        assert_eq!(
            gate.admit(ip("127.0.0.4")).err(),
            Some(Refused::TotalConnections)
        );
        drop(a1);
        assert!(gate.admit(ip("127.0.0.4")).is_ok());
    }

    #[test]
    fn datagram_floods_are_limited_per_source_per_network_and_globally() {
        // Global burst 5: a network's share is 2.
        let gate = Gate::new(settings());
        assert!(gate.datagram_within_rate(ip("127.0.0.2")).is_ok());
        assert!(gate.datagram_within_rate(ip("127.0.0.2")).is_ok());
        for _ in 0..100 {
            assert_eq!(
                gate.datagram_within_rate(ip("127.0.0.2")),
                Err(RateLimited::Source)
            );
        }
        // Its network has had its share; the flooding source used two global tokens, not a
        // hundred.
        assert_eq!(
            gate.datagram_within_rate(ip("127.0.0.3")),
            Err(RateLimited::Network)
        );
        assert!(gate.datagram_within_rate(ip("127.0.1.3")).is_ok());
        assert!(gate.datagram_within_rate(ip("127.0.2.4")).is_ok());
        assert!(gate.datagram_within_rate(ip("127.0.3.5")).is_ok());
        // Forged sources, each in a new network: only the global bucket stops them.
        assert_eq!(
            gate.datagram_within_rate(ip("127.0.4.6")),
            Err(RateLimited::Global)
        );
    }

    #[test]
    fn no_rate_limits_when_off() {
        let gate = Gate::new(GateSettings {
            messages: None,
            datagrams: None,
            global_datagrams: None,
            ..settings()
        });
        for _ in 0..1000 {
            assert!(gate.message_within_rate(ip("127.0.0.2")));
            assert!(gate.datagram_within_rate(ip("127.0.0.2")).is_ok());
        }
    }

    #[test]
    fn broadcast_sources() {
        let open = Gate::new(settings());
        assert!(open.admits_broadcast_from(ip("127.0.0.9")));
        let closed = Gate::new(GateSettings {
            broadcast_sources: vec!["127.0.0.10/32".parse().unwrap()],
            ..settings()
        });
        assert!(closed.admits_broadcast_from(ip("127.0.0.10")));
        assert!(!closed.admits_broadcast_from(ip("127.0.0.9")));
    }

    // Local senders.

    fn caller(uid: u32) -> Caller {
        Caller {
            uid,
            gid: uid,
            user: format!("user{uid}"),
            is_root: uid == 0,
            may_broadcast: uid == 0,
        }
    }

    fn limited(per_second: f64, burst: u32) -> LocalSendLimit {
        let mut config = Config::default();
        config.policy.rate_limit = true;
        config.policy.messages_per_second = per_second;
        config.policy.message_burst = burst;
        LocalSendLimit::from_config(&config)
    }

    #[test]
    fn local_users_are_limited_each_on_their_own() {
        let limit = limited(1.0, 3);
        let t0 = Instant::now();
        let alice = caller(1000);
        let admitted = (0..10).filter(|_| limit.admits(&alice, t0)).count();
        assert_eq!(admitted, 3, "the burst, then nothing");
        // Another user's bucket is their own.
        assert!(limit.admits(&caller(1001), t0));
        // The rate refills.
        assert!(!limit.admits(&alice, t0 + Duration::from_millis(500)));
        assert!(limit.admits(&alice, t0 + Duration::from_secs(1)));
    }

    #[test]
    fn root_is_not_limited_and_rate_limit_false_limits_nobody() {
        let limit = limited(0.001, 1);
        let t0 = Instant::now();
        assert!((0..100).all(|_| limit.admits(&caller(0), t0)));
        let mut config = Config::default();
        config.policy.rate_limit = false;
        let off = LocalSendLimit::from_config(&config);
        assert!((0..100).all(|_| off.admits(&caller(1000), t0)));
    }
}
