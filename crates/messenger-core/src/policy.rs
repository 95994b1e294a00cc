//! Who may send us messages, and how fast: source networks and per-source rate limits.
//!
//! The Messenger protocols have no authentication ([MS-MSRP] 5.1), which is how messenger spam
//! happened (KB 330904). What we can do is refuse sources outside the networks the
//! administrator allows and slow down any one source. Time is always passed in, so the limits
//! are tested with a virtual clock.
//!
//! By default we take messages from private and local address space and our own subnets
//! ([`LOCAL_NETWORKS`]): the spam of KB 330904 came from the internet, while the senders a
//! WINS server exists for are on other routed subnets of the same private network.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// An IP network in CIDR notation: `10.0.0.0/8`, `fe80::/10`; a bare address is a host
/// (`/32` or `/128`).
///
/// Host bits after the prefix are cleared when parsing (`10.1.2.3/8` is `10.0.0.0/8`), as
/// `ip route` does: an administrator who writes that means the network. IPv4-mapped IPv6
/// source addresses (`::ffff:10.1.2.3`, what a dual-stack socket reports) match IPv4 networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

/// Why a string is not a CIDR network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CidrError {
    /// The address part is not an IPv4 or IPv6 address.
    #[error("{0:?} is not an IP address")]
    Address(String),
    /// The prefix length is not a number within 0..=32 (IPv4) or 0..=128 (IPv6).
    #[error("{0:?} is not a valid prefix length")]
    Prefix(String),
}

impl Cidr {
    /// The network `addr/prefix`, host bits cleared.
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Self, CidrError> {
        let addr = addr.to_canonical();
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if prefix > max {
            return Err(CidrError::Prefix(prefix.to_string()));
        }
        let network = match addr {
            IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(prefix))),
            IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(prefix))),
        };
        Ok(Self { network, prefix })
    }

    /// The network address.
    pub fn network(&self) -> IpAddr {
        self.network
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(a)) => {
                u32::from(a) & mask32(self.prefix) == u32::from(net)
            }
            (IpAddr::V6(net), IpAddr::V6(a)) => {
                u128::from(a) & mask128(self.prefix) == u128::from(net)
            }
            _ => false,
        }
    }
}

fn mask32(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask128(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

impl FromStr for Cidr {
    type Err = CidrError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| CidrError::Address(addr.to_owned()))?;
        let prefix = match prefix {
            // Digits only: `u8::from_str` would also take "+8".
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse().map_err(|_| CidrError::Prefix(p.to_owned()))?
            }
            Some(p) => return Err(CidrError::Prefix(p.to_owned())),
            None if addr.to_canonical().is_ipv4() => 32,
            None => 128,
        };
        Self::new(addr, prefix)
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl TryFrom<String> for Cidr {
    type Error = CidrError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Cidr> for String {
    fn from(c: Cidr) -> Self {
        c.to_string()
    }
}

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Cidr {
    Cidr {
        network: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
        prefix,
    }
}

const fn v6(first: u16, prefix: u8) -> Cidr {
    Cidr {
        network: IpAddr::V6(Ipv6Addr::new(first, 0, 0, 0, 0, 0, 0, 0)),
        prefix,
    }
}

/// Address space that is never routed on the internet, admitted when `[policy] allow` is
/// empty (with our own subnets; see [`SourcePolicy::or_local_networks`]). Messenger spam came
/// from the internet (KB 330904); NetBIOS messaging is for a site's own network, which may
/// span routed subnets (that is what a WINS server is for) but lives in this space. A public
/// source is taken only when `allow` lists it.
pub const LOCAL_NETWORKS: [Cidr; 9] = [
    // RFC 1918 private networks.
    v4(10, 0, 0, 0, 8),
    v4(172, 16, 0, 0, 12),
    v4(192, 168, 0, 0, 16),
    // RFC 6598 shared address space (carrier-grade NAT, also used inside sites).
    v4(100, 64, 0, 0, 10),
    // RFC 3927 link-local.
    v4(169, 254, 0, 0, 16),
    // RFC 1122 loopback.
    v4(127, 0, 0, 0, 8),
    // RFC 4291 loopback ::1.
    Cidr {
        network: IpAddr::V6(Ipv6Addr::LOCALHOST),
        prefix: 128,
    },
    // RFC 4193 unique local addresses.
    v6(0xfc00, 7),
    // RFC 4291 link-local.
    v6(0xfe80, 10),
];

/// Which source addresses may send to us. `deny` wins over `allow`; an empty `allow` admits
/// every source not denied (the daemon fills an empty `allow` with
/// [`SourcePolicy::or_local_networks`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourcePolicy {
    /// Networks admitted.
    pub allow: Vec<Cidr>,
    /// Networks refused, even when also in `allow`.
    pub deny: Vec<Cidr>,
}

impl SourcePolicy {
    /// Parses the networks of a configuration file.
    pub fn parse<A: AsRef<str>, D: AsRef<str>>(allow: &[A], deny: &[D]) -> Result<Self, CidrError> {
        Ok(Self {
            allow: allow
                .iter()
                .map(|s| s.as_ref().parse())
                .collect::<Result<_, _>>()?,
            deny: deny
                .iter()
                .map(|s| s.as_ref().parse())
                .collect::<Result<_, _>>()?,
        })
    }

    /// This policy, with an empty `allow` replaced by the default: [`LOCAL_NETWORKS`] and
    /// `own_subnets` (the subnets of our interfaces, which may be public). A configured `allow`
    /// is kept as it is: it replaces the default, it does not add to it.
    pub fn or_local_networks(mut self, own_subnets: impl IntoIterator<Item = Cidr>) -> Self {
        if self.allow.is_empty() {
            self.allow.extend(LOCAL_NETWORKS);
            for subnet in own_subnets {
                if !self.allow.contains(&subnet) {
                    self.allow.push(subnet);
                }
            }
        }
        self
    }

    /// Whether `ip` may send to us.
    pub fn admits(&self, ip: IpAddr) -> bool {
        if self.deny.iter().any(|c| c.contains(ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|c| c.contains(ip))
    }
}

/// A token bucket: up to `burst` events at once, then `rate` per second on average.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket at `now`. A rate that is not positive and finite refills nothing, so only
    /// the burst is ever admitted; a burst of 0 admits nothing.
    pub fn new(rate_per_second: f64, burst: u32, now: Instant) -> Self {
        let rate = if rate_per_second.is_finite() && rate_per_second > 0.0 {
            rate_per_second
        } else {
            0.0
        };
        let burst = f64::from(burst);
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        // A `now` earlier than the last one (callers racing on the clock) refills nothing
        // rather than panicking or draining.
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if now > self.last {
            self.last = now;
        }
    }

    /// Takes one token if there is one: whether the event at `now` is admitted.
    pub fn try_take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whether the bucket would be full at `now`: its source has been quiet long enough that
    /// forgetting it changes nothing (a new bucket starts full).
    pub fn is_full_at(&self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * self.rate >= self.burst
    }
}

/// Source addresses tracked at once by a [`RateLimiter`] unless told otherwise. Each entry is
/// about 64 bytes, so the table stays under a megabyte even when a flood of forged sources
/// fills it; 16384 is far more than the hosts of any LAN that uses NetBIOS messaging.
pub const DEFAULT_MAX_TRACKED_SOURCES: usize = 16_384;

/// When the table is full and no source is idle, this fraction of the least recently seen
/// sources (1/8) is forgotten at once, so the cost of finding them is paid once per many new
/// sources instead of on every packet of a flood.
const EVICT_FRACTION: usize = 8;

/// Prefix length that keys an IPv6 source: one host usually owns a whole /64 (RFC 4291 2.5.1
/// interface identifiers, SLAAC privacy addresses), so keying by full address would let one
/// host use 2^64 buckets.
const IPV6_KEY_PREFIX: u8 = 64;

/// Prefix length that groups IPv4 sources into one network for the fair share of the global
/// datagram budget: a /24 is the usual LAN subnet, and the smallest block routed between
/// networks on the internet, so one flood, forged or not, usually stays within one.
const IPV4_NETWORK_PREFIX: u8 = 24;
/// Prefix length of one IPv6 network for the fair share: a /48 is one site's assignment
/// (RFC 6177), so one attacker may own all of it.
const IPV6_NETWORK_PREFIX: u8 = 48;
/// Parts the global datagram budget is shared in: one network may use at most this fraction
/// of it (a quarter), so a flood from one network, however many addresses it forges within it,
/// leaves three quarters to everyone else; it takes floods from four networks at once to
/// starve the rest. With the default global budget, one network still gets 25 messages a
/// second, five times what one person can send (the per-source rate).
pub const NETWORK_SHARES: u32 = 4;
/// Networks tracked by the fair share at once: as many as sources per limiter, each about 64
/// bytes. A flood spreading forged sources over more networks evicts the least recently seen.
pub const MAX_TRACKED_NETWORKS: usize = DEFAULT_MAX_TRACKED_SOURCES;

#[derive(Debug, Clone)]
struct Tracked {
    bucket: TokenBucket,
    last_seen: Instant,
}

/// Per-source token buckets with a bounded table.
///
/// Memory is bounded by `max_sources`: a flood of forged source addresses cannot grow it. When
/// the table is full, sources whose bucket has refilled (idle ones, which a fresh bucket would
/// treat the same) are forgotten first, then the least recently seen. A forged-source flood
/// can therefore push real sources out and give them a fresh burst; per-source limits cannot
/// stop such a flood anyway, which is why the daemon also has a global limit.
///
/// Sources are network addresses by default; the service also limits its local users with one
/// keyed by uid ([`RateLimiter::check_key`]).
#[derive(Debug, Clone)]
pub struct RateLimiter<K = IpAddr> {
    rate: f64,
    burst: u32,
    max_sources: usize,
    /// Prefix lengths that key an address source: (IPv4, IPv6); unused for other keys.
    key_prefixes: (u8, u8),
    sources: HashMap<K, Tracked>,
}

impl RateLimiter<IpAddr> {
    /// Like [`RateLimiter::new`], but one bucket for each network (IPv4 /24, IPv6 /48)
    /// instead of each source.
    pub fn per_network(rate_per_second: f64, burst: u32, max_networks: usize) -> Self {
        Self {
            key_prefixes: (IPV4_NETWORK_PREFIX, IPV6_NETWORK_PREFIX),
            ..Self::new(rate_per_second, burst, max_networks)
        }
    }

    /// Whether a message from `ip` at `now` is admitted.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> bool {
        let key = masked(ip, self.key_prefixes);
        self.check_key(key, now)
    }
}

impl<K: Hash + Eq> RateLimiter<K> {
    /// `rate` messages per second per source after a `burst`, tracking at most `max_sources`
    /// sources (at least 1). An IPv4 source is one address, an IPv6 source one /64.
    pub fn new(rate_per_second: f64, burst: u32, max_sources: usize) -> Self {
        Self {
            rate: rate_per_second,
            burst,
            max_sources: max_sources.max(1),
            key_prefixes: (32, IPV6_KEY_PREFIX),
            sources: HashMap::new(),
        }
    }

    /// Whether an event of the source `key` at `now` is admitted.
    pub fn check_key(&mut self, key: K, now: Instant) -> bool {
        if let Some(t) = self.sources.get_mut(&key) {
            t.last_seen = now;
            return t.bucket.try_take(now);
        }
        if self.sources.len() >= self.max_sources {
            self.evict(now);
        }
        let mut bucket = TokenBucket::new(self.rate, self.burst, now);
        let admitted = bucket.try_take(now);
        self.sources.insert(
            key,
            Tracked {
                bucket,
                last_seen: now,
            },
        );
        admitted
    }

    /// Sources tracked now.
    pub fn tracked(&self) -> usize {
        self.sources.len()
    }

    /// Forgets sources whose buckets are full at `now`. The daemon may call this from a
    /// periodic timer; [`RateLimiter::check`] also does it when the table is full.
    pub fn forget_idle(&mut self, now: Instant) {
        self.sources.retain(|_, t| !t.bucket.is_full_at(now));
    }

    fn evict(&mut self, now: Instant) {
        self.forget_idle(now);
        let target = self.max_sources - (self.max_sources / EVICT_FRACTION).max(1);
        if self.sources.len() <= target {
            return;
        }
        // Forget the least recently seen until `target` remain: find the cut-off time with a
        // linear-time selection rather than a sort.
        let mut seen: Vec<Instant> = self.sources.values().map(|t| t.last_seen).collect();
        let excess = self.sources.len() - target;
        let (_, cutoff, _) = seen.select_nth_unstable(excess - 1);
        let cutoff = *cutoff;
        let mut to_remove = excess;
        self.sources.retain(|_, t| {
            if to_remove > 0 && t.last_seen <= cutoff {
                to_remove -= 1;
                false
            } else {
                true
            }
        });
    }
}

/// The key `ip` is limited by: its network of `(ipv4, ipv6)` prefix length, IPv4 also when
/// mapped into IPv6.
fn masked(ip: IpAddr, (v4_prefix, v6_prefix): (u8, u8)) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(a) => IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask32(v4_prefix))),
        IpAddr::V6(a) => IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask128(v6_prefix))),
    }
}

/// Why a mailslot message was dropped by a [`DatagramBudget`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatagramLimit {
    /// Its source is over its own rate.
    Source,
    /// Its network (IPv4 /24, IPv6 /48) is over its share of the global rate.
    Network,
    /// All sources together are over the global rate.
    Global,
}

/// The rate limits on mailslot messages: per source, a global budget for all sources together,
/// and each network's fair share of that budget.
///
/// A datagram's source address is not verified, so a flood forging a new address per packet
/// passes every per-source limit; the global budget bounds what it can write to the inbox.
/// Alone, that budget would let one such flood starve every other sender, so it is shared:
/// one network (IPv4 /24, IPv6 /48) may use at most 1/[`NETWORK_SHARES`] of it. A message
/// refused by a narrower limit takes nothing from the wider ones, so one flooding source or
/// network cannot use up anyone else's share.
///
/// What this cannot stop: a forger who spreads spoofed sources over many networks (four or
/// more at full rate) uses the whole global budget, and other senders' mailslot messages are
/// then dropped until the flood stops. Directed messages over TCP are not affected (a
/// connection's source is verified by its handshake); with `broadcast_sources` set,
/// broadcasts from other sources are dropped before they reach this budget.
#[derive(Debug, Clone)]
pub struct DatagramBudget {
    sources: Option<RateLimiter>,
    networks: Option<RateLimiter>,
    global: Option<TokenBucket>,
}

impl DatagramBudget {
    /// `per_source` and `global` as (messages per second, burst); `None` is no limit. Each
    /// network's share is the global rate and burst divided by [`NETWORK_SHARES`] (a burst of
    /// at least 1). At most `max_sources` sources and [`MAX_TRACKED_NETWORKS`] networks are
    /// tracked.
    pub fn new(
        per_source: Option<(f64, u32)>,
        global: Option<(f64, u32)>,
        max_sources: usize,
        now: Instant,
    ) -> Self {
        Self {
            sources: per_source.map(|(rate, burst)| RateLimiter::new(rate, burst, max_sources)),
            networks: global.map(|(rate, burst)| {
                RateLimiter::per_network(
                    rate / f64::from(NETWORK_SHARES),
                    burst.div_ceil(NETWORK_SHARES),
                    MAX_TRACKED_NETWORKS,
                )
            }),
            global: global.map(|(rate, burst)| TokenBucket::new(rate, burst, now)),
        }
    }

    /// Whether a mailslot message from `ip` at `now` is admitted, or which limit drops it.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Result<(), DatagramLimit> {
        if let Some(sources) = &mut self.sources {
            if !sources.check(ip, now) {
                return Err(DatagramLimit::Source);
            }
        }
        // The network's token is taken before we know whether the global budget has one: when
        // everything is congested a network loses a token for a message that is then dropped,
        // which costs it only its own share.
        if let Some(networks) = &mut self.networks {
            if !networks.check(ip, now) {
                return Err(DatagramLimit::Network);
            }
        }
        if let Some(global) = &mut self.global {
            if !global.try_take(now) {
                return Err(DatagramLimit::Global);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn cidr_parse_and_display() {
        assert_eq!(
            "10.0.0.0/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            "10.1.2.3/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            "192.168.1.7".parse::<Cidr>().unwrap().to_string(),
            "192.168.1.7/32"
        );
        assert_eq!(
            "fe80::1/10".parse::<Cidr>().unwrap().to_string(),
            "fe80::/10"
        );
        assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
        assert_eq!(
            "0.0.0.0/0".parse::<Cidr>().unwrap().to_string(),
            "0.0.0.0/0"
        );
        assert_eq!("::/0".parse::<Cidr>().unwrap().to_string(), "::/0");
        // A mapped address in the configuration is its IPv4 network.
        assert_eq!(
            "::ffff:10.0.0.0/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "x/8",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "10.0.0.0/-1",
            "",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn cidr_contains() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.255.1.2")));
        assert!(c.contains(ip("::ffff:10.1.2.3")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(!c.contains(ip("::a00:1")));
        let all4: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all4.contains(ip("1.2.3.4")));
        assert!(!all4.contains(ip("2001:db8::1")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        let host: Cidr = "192.168.1.7".parse().unwrap();
        assert!(host.contains(ip("192.168.1.7")));
        assert!(!host.contains(ip("192.168.1.8")));
    }

    #[test]
    fn cidr_serde_is_a_string() {
        let c: Cidr = serde_json::from_str("\"172.16.0.0/12\"").unwrap();
        assert_eq!(serde_json::to_string(&c).unwrap(), "\"172.16.0.0/12\"");
        assert!(serde_json::from_str::<Cidr>("\"172.16.0.0/99\"").is_err());
    }

    #[test]
    fn deny_wins_over_allow() {
        let p = SourcePolicy::parse(&["10.0.0.0/8"], &["10.66.0.0/16"]).unwrap();
        assert!(p.admits(ip("10.1.1.1")));
        assert!(!p.admits(ip("10.66.1.1")));
        assert!(!p.admits(ip("192.168.1.1")));
        let open = SourcePolicy::parse::<&str, &str>(&[], &["203.0.113.0/24"]).unwrap();
        assert!(open.admits(ip("198.51.100.1")));
        assert!(!open.admits(ip("203.0.113.9")));
        assert!(!open.admits(ip("::ffff:203.0.113.9")));
        assert!(SourcePolicy::parse(&["bogus"], &[] as &[&str]).is_err());
    }

    #[test]
    fn local_networks_are_what_their_comments_say() {
        let expected = [
            "10.0.0.0/8",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "100.64.0.0/10",
            "169.254.0.0/16",
            "127.0.0.0/8",
            "::1/128",
            "fc00::/7",
            "fe80::/10",
        ];
        for (c, s) in LOCAL_NETWORKS.iter().zip(expected) {
            // Built by hand as constants: each must be what parsing gives.
            assert_eq!(*c, s.parse::<Cidr>().unwrap(), "{s}");
        }
        assert_eq!(LOCAL_NETWORKS.len(), expected.len());
    }

    #[test]
    fn default_allow_is_private_and_local_space_and_our_subnets() {
        let public_lan: Cidr = "198.51.100.0/24".parse().unwrap();
        let p = SourcePolicy::default().or_local_networks([public_lan]);
        for ok in [
            "10.1.2.3",
            "10.255.255.254",
            "172.16.0.1",
            "172.31.255.1",
            "192.168.44.5",
            "100.64.0.1",
            "100.127.255.254",
            "169.254.10.20",
            "127.0.0.1",
            "::ffff:10.9.8.7",
            "::1",
            "fd12:3456::1",
            "fc00::1",
            "fe80::1:2",
            // Our own subnet, though public.
            "198.51.100.77",
        ] {
            assert!(p.admits(ip(ok)), "{ok} must be admitted by default");
        }
        for refused in [
            "8.8.8.8",
            "203.0.113.9",
            "172.32.0.1",
            "172.15.255.255",
            "100.128.0.1",
            "100.63.255.255",
            "192.169.0.1",
            "11.0.0.1",
            "198.51.101.1",
            "::ffff:203.0.113.9",
            "2001:db8::1",
            "fec0::1",
        ] {
            assert!(
                !p.admits(ip(refused)),
                "{refused} must be refused by default"
            );
        }
    }

    #[test]
    fn a_configured_allow_replaces_the_default() {
        let p = SourcePolicy::parse(&["203.0.113.0/24"], &[] as &[&str])
            .unwrap()
            .or_local_networks(["192.168.7.0/24".parse().unwrap()]);
        assert!(p.admits(ip("203.0.113.9")));
        assert!(!p.admits(ip("10.1.2.3")));
        assert!(!p.admits(ip("192.168.7.5")));
        // Deny wins over the default too.
        let p = SourcePolicy::parse(&[] as &[&str], &["10.66.0.0/16"])
            .unwrap()
            .or_local_networks([]);
        assert!(p.admits(ip("10.1.1.1")));
        assert!(!p.admits(ip("10.66.1.1")));
    }

    #[test]
    fn bucket_allows_burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(2.0, 3, t0);
        assert!(b.try_take(t0));
        assert!(b.try_take(t0));
        assert!(b.try_take(t0));
        assert!(!b.try_take(t0));
        // Two per second: one token after half a second, not before.
        assert!(!b.try_take(t0 + Duration::from_millis(400)));
        assert!(b.try_take(t0 + Duration::from_millis(500)));
        assert!(!b.try_take(t0 + Duration::from_millis(500)));
        // Long idle refills only up to the burst.
        let later = t0 + Duration::from_secs(3600);
        assert!(b.is_full_at(later));
        assert_eq!((0..10).filter(|_| b.try_take(later)).count(), 3);
        // Time going backwards neither panics nor refills.
        assert!(!b.try_take(t0));
    }

    #[test]
    fn bucket_degenerate_rates() {
        let t0 = Instant::now();
        let mut none = TokenBucket::new(f64::NAN, 1, t0);
        assert!(none.try_take(t0));
        assert!(!none.try_take(t0 + Duration::from_secs(1000)));
        let mut zero = TokenBucket::new(5.0, 0, t0);
        assert!(!zero.try_take(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn limiter_limits_each_source_separately() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(1.0, 2, 100);
        let a = ip("10.0.0.1");
        let b = ip("10.0.0.2");
        assert!(l.check(a, t0));
        assert!(l.check(a, t0));
        assert!(!l.check(a, t0));
        assert!(l.check(b, t0));
        assert!(
            !l.check(ip("::ffff:10.0.0.1"), t0),
            "mapped address is the same source"
        );
        assert!(l.check(a, t0 + Duration::from_secs(1)));
        // Addresses in one IPv6 /64 share a bucket.
        assert!(l.check(ip("2001:db8::1"), t0));
        assert!(l.check(ip("2001:db8::2"), t0));
        assert!(!l.check(ip("2001:db8::3"), t0));
        assert!(l.check(ip("2001:db8:0:1::1"), t0));
    }

    #[test]
    fn forged_source_flood_cannot_grow_the_table() {
        let t0 = Instant::now();
        let max = 1000;
        let mut l = RateLimiter::new(1.0, 5, max);
        let mut now = t0;
        for i in 0u32..50_000 {
            now += Duration::from_micros(10);
            l.check(IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + i)), now);
            assert!(l.tracked() <= max);
        }
        // A source that is still sending when the table is full keeps its (empty) bucket:
        // eviction takes the least recently seen first.
        let mut l = RateLimiter::new(0.001, 1, 10);
        let busy = ip("192.0.2.1");
        assert!(l.check(busy, t0));
        for i in 0u32..100 {
            let t = t0 + Duration::from_millis(u64::from(i) + 1);
            l.check(IpAddr::V4(Ipv4Addr::from(0xC633_6400 + i)), t);
            assert!(!l.check(busy, t), "busy source must stay limited");
        }
    }

    #[test]
    fn any_key_can_be_limited_in_a_bounded_table() {
        let t0 = Instant::now();
        let mut uids: RateLimiter<u32> = RateLimiter::new(1.0, 2, 10);
        assert!(uids.check_key(1000, t0));
        assert!(uids.check_key(1000, t0));
        assert!(!uids.check_key(1000, t0));
        assert!(uids.check_key(1001, t0));
        assert!(uids.check_key(1000, t0 + Duration::from_secs(1)));
        for uid in 0..1000 {
            uids.check_key(uid, t0 + Duration::from_millis(u64::from(uid)));
            assert!(uids.tracked() <= 10);
        }
    }

    #[test]
    fn a_flood_from_one_network_does_not_starve_the_others() {
        let t0 = Instant::now();
        // Per source 5/s burst 20, global 100/s burst 200: the defaults.
        let mut budget = DatagramBudget::new(Some((5.0, 20)), Some((100.0, 200)), 1000, t0);
        // A flood forging every address of 10.0.0.0/24, each within its own per-source rate
        // for a while, for ten seconds of virtual time at 10 000 datagrams a second; its
        // per-source bursts alone (254 x 20) would empty the global budget many times over.
        // Meanwhile a host of another /24 broadcasts every second, and one of a third network
        // sends a burst of 10 at once every two seconds (what its own rate refills).
        let mut flood_taken = 0;
        let mut by_network = 0;
        for i in 0u32..100_000 {
            let now = t0 + Duration::from_micros(u64::from(i) * 100);
            let forged = IpAddr::V4(Ipv4Addr::from(0x0A00_0000 | (i % 254 + 1)));
            match budget.check(forged, now) {
                Ok(()) => flood_taken += 1,
                Err(DatagramLimit::Network) => by_network += 1,
                Err(_) => {}
            }
            if i % 10_000 == 5_000 {
                assert_eq!(budget.check(ip("10.0.1.5"), now), Ok(()), "at {i}");
            }
            if i % 20_000 == 7_000 {
                for n in 0..10 {
                    assert_eq!(budget.check(ip("192.168.9.9"), now), Ok(()), "{n} at {i}");
                }
            }
        }
        assert!(by_network > 0);
        // The flood got its network's share of the burst and of the rate, no more.
        let burst_share = 200_u32.div_ceil(NETWORK_SHARES) as usize;
        let rate_share = (10.0 * 100.0 / f64::from(NETWORK_SHARES)) as usize;
        assert!(flood_taken <= burst_share + rate_share + 1, "{flood_taken}");
    }

    #[test]
    fn forged_sources_over_many_networks_hit_the_global_budget() {
        // What the fair share cannot stop: one source per network, each within every narrower
        // limit, until the global budget is spent.
        let t0 = Instant::now();
        let mut budget = DatagramBudget::new(Some((0.001, 2)), Some((0.001, 8)), 1000, t0);
        for i in 0u32..8 {
            let forged = IpAddr::V4(Ipv4Addr::from(0x0A00_0001 + (i << 8)));
            assert_eq!(budget.check(forged, t0), Ok(()));
        }
        assert_eq!(
            budget.check(ip("192.168.1.1"), t0),
            Err(DatagramLimit::Global)
        );
    }

    #[test]
    fn narrower_limits_take_nothing_from_wider_ones() {
        let t0 = Instant::now();
        let mut budget = DatagramBudget::new(Some((0.001, 2)), Some((0.001, 8)), 1000, t0);
        // One source over its own rate: only its two messages count, for its network too.
        for _ in 0..100 {
            let _ = budget.check(ip("10.0.0.1"), t0);
        }
        assert_eq!(
            budget.check(ip("10.0.0.2"), t0),
            Err(DatagramLimit::Network)
        );
        // Its network over its share: the global budget keeps the other six.
        for i in 0u32..6 {
            let other = IpAddr::V4(Ipv4Addr::from(0x0A00_0101 + (i << 8)));
            assert_eq!(budget.check(other, t0), Ok(()), "{other}");
        }
        assert_eq!(budget.check(ip("10.9.0.1"), t0), Err(DatagramLimit::Global));
        // IPv6: one /48 is one network, whatever its /64s.
        let mut budget = DatagramBudget::new(None, Some((0.001, 8)), 1000, t0);
        assert_eq!(budget.check(ip("2001:db8:1:1::1"), t0), Ok(()));
        assert_eq!(budget.check(ip("2001:db8:1:2::1"), t0), Ok(()));
        assert_eq!(
            budget.check(ip("2001:db8:1:3::1"), t0),
            Err(DatagramLimit::Network)
        );
        assert_eq!(budget.check(ip("2001:db8:2::1"), t0), Ok(()));
        // No limits at all.
        let mut open = DatagramBudget::new(None, None, 1000, t0);
        for _ in 0..1000 {
            assert_eq!(open.check(ip("10.0.0.1"), t0), Ok(()));
        }
    }

    #[test]
    fn network_table_is_bounded() {
        let t0 = Instant::now();
        let mut l = RateLimiter::per_network(1.0, 5, 100);
        for i in 0u32..10_000 {
            l.check(IpAddr::V4(Ipv4Addr::from(i << 8)), t0);
            assert!(l.tracked() <= 100);
        }
        // Addresses of one /24 share one entry.
        let mut l = RateLimiter::per_network(1.0, 5, 100);
        for i in 0u32..256 {
            l.check(IpAddr::V4(Ipv4Addr::from(0x0A00_0000 + i)), t0);
        }
        assert_eq!(l.tracked(), 1);
    }

    #[test]
    fn idle_sources_are_forgotten() {
        let t0 = Instant::now();
        let mut l = RateLimiter::new(10.0, 2, 100);
        for i in 0u32..50 {
            l.check(IpAddr::V4(Ipv4Addr::from(i + 1)), t0);
        }
        assert_eq!(l.tracked(), 50);
        l.forget_idle(t0 + Duration::from_millis(50));
        assert_eq!(l.tracked(), 50, "one token of two refilled: not idle yet");
        l.forget_idle(t0 + Duration::from_millis(100));
        assert_eq!(l.tracked(), 0);
    }
}
