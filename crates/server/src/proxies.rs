//! Which address a request came from when proxies stand in front: `--trusted-proxies` names the
//! proxies whose `X-Forwarded-For` is believed, only when the connecting peer is one of them, and
//! then the right-most hop that is not itself trusted is the client (every hop to its left could
//! have been written by that client). No application state here, so the configuration can hold
//! [`Cidr`]s without depending on the request layer.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use axum::http::HeaderMap;

/// One entry of `--trusted-proxies`: an address, or a network in CIDR notation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix)),
            None => (text, None),
        };
        let net = canonical(
            addr.parse::<IpAddr>()
                .map_err(|_| format!("{text:?} is not an IP address or a CIDR like 10.0.0.0/8"))?,
        );
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { net, prefix })
    }
}

/// Parses a comma- or space-separated list (the `KEYWARD_TRUSTED_PROXIES` form).
pub fn parse_list(text: &str) -> Result<Vec<Cidr>, String> {
    text.split([',', ' '])
        .filter(|s| !s.trim().is_empty())
        .map(str::parse)
        .collect()
}

/// `::ffff:1.2.3.4` is 1.2.3.4: the same client whichever socket family it arrived on.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// One `X-Forwarded-For` hop: a bare address, `1.2.3.4:port` or `[v6]:port`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    hop.parse::<SocketAddr>().ok().map(|s| canonical(s.ip()))
}

/// The client of a request whose TCP peer is `peer`.
pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[Cidr]) -> IpAddr {
    let peer = canonical(peer);
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    // Every X-Forwarded-For line in order, as one list (proxies may append a second header).
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match parse_hop(hop) {
            Some(ip) if is_trusted(ip) => client = ip,
            Some(ip) => return ip,
            // Garbage from the left of here is the client's own writing: stop at the last hop a
            // trusted proxy vouched for.
            None => return client,
        }
    }
    client
}

/// The key per-address limits count under. IPv6 clients usually hold a whole /64, so they are
/// counted per /64: otherwise rotating through it would sidestep every limit.
pub fn limit_key(ip: Option<IpAddr>) -> String {
    match ip.map(canonical) {
        Some(IpAddr::V4(v4)) => v4.to_string(),
        Some(IpAddr::V6(v6)) => {
            let net = u128::from(v6) & (u128::MAX << 64);
            format!("{}/64", Ipv6Addr::from(net))
        }
        None => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append("x-forwarded-for", v.parse().unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_peer() {
        let trusted = parse_list("10.0.0.0/8, 192.168.1.5").unwrap();
        let spoofed = headers(&["6.6.6.6"]);
        // An untrusted peer's header is ignored: it is the client itself.
        assert_eq!(
            resolve(ip("203.0.113.9"), &spoofed, &trusted),
            ip("203.0.113.9")
        );
        // From the proxy, the right-most untrusted hop is the client; what it prepended is not.
        let chain = headers(&["6.6.6.6, 198.51.100.7", "10.1.2.3"]);
        assert_eq!(
            resolve(ip("192.168.1.5"), &chain, &trusted),
            ip("198.51.100.7")
        );
        // No header from a trusted peer: the peer.
        assert_eq!(
            resolve(ip("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
        // Nothing trusted by default.
        assert_eq!(resolve(ip("10.0.0.1"), &spoofed, &[]), ip("10.0.0.1"));
        // Garbage to the left of a trusted hop does not become the client.
        let garbage = headers(&["not-an-ip, 10.9.9.9"]);
        assert_eq!(resolve(ip("10.0.0.1"), &garbage, &trusted), ip("10.9.9.9"));
        let ported = headers(&["[2001:db8::1]:4711", "198.51.100.8:80"]);
        assert_eq!(
            resolve(ip("10.0.0.1"), &ported, &trusted),
            ip("198.51.100.8")
        );
    }

    #[test]
    fn cidrs_parse_and_match() {
        let c: Cidr = "10.0.0.0/8".parse().unwrap();
        assert!(c.contains(ip("10.255.0.1")));
        assert!(!c.contains(ip("11.0.0.1")));
        assert!(c.contains(ip("::ffff:10.0.0.1")));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:1::1")));
        assert!(!v6.contains(ip("10.0.0.1")));
        let any: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(any.contains(ip("1.2.3.4")));
        assert!("10.0.0.0/33".parse::<Cidr>().is_err());
        assert!("proxy.example".parse::<Cidr>().is_err());
        assert_eq!(parse_list(" ").unwrap(), vec![]);
    }

    #[test]
    fn ipv6_clients_are_limited_per_64() {
        assert_eq!(
            limit_key(Some(ip("2001:db8:1:2:aaaa::1"))),
            limit_key(Some(ip("2001:db8:1:2:bbbb::2")))
        );
        assert_eq!(limit_key(Some(ip("::ffff:1.2.3.4"))), "1.2.3.4");
        assert_eq!(limit_key(None), "unknown");
    }
}
