//! Who the client is when Cistern sits behind a load balancer or an
//! ingress: every connection then comes from the proxy, and the audit log
//! and the login throttle would see one address for everyone. For
//! connections from `--trusted-proxies`, the client is the right-most
//! address of `X-Forwarded-For` that is not itself a trusted proxy (each
//! proxy appends the address it saw, so entries left of that one are
//! whatever the client claimed). Connections from anywhere else keep their
//! socket's address, whatever they send.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// The networks whose `X-Forwarded-For` is believed; empty by default.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Arc<[IpNet]>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses and networks
    /// (`10.0.0.0/8, 192.168.1.7`).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => item
                    .parse::<IpAddr>()
                    .map(IpNet::from)
                    .map_err(|_| format!("{item:?} is neither an IP address nor a network"))?,
            };
            nets.push(net);
        }
        Ok(Self(nets.into()))
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client behind a connection from `peer` that sent `headers`.
    pub fn client(&self, peer: SocketAddr, headers: &http::HeaderMap) -> SocketAddr {
        if self.0.is_empty() || !self.trusts(peer.ip()) {
            return peer;
        }
        let mut client = peer;
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for entry in forwarded.into_iter().rev() {
            // An entry that is not an address ends what can be believed.
            let Ok(ip) = entry.parse::<IpAddr>() else {
                break;
            };
            client = SocketAddr::new(ip, 0);
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> http::HeaderMap {
        let mut map = http::HeaderMap::new();
        for value in values {
            map.append("x-forwarded-for", value.parse().unwrap());
        }
        map
    }

    fn client(trusted: &str, peer: &str, forwarded: &[&str]) -> String {
        let proxies = TrustedProxies::parse(trusted).unwrap();
        let peer: SocketAddr = peer.parse().unwrap();
        proxies.client(peer, &headers(forwarded)).ip().to_string()
    }

    #[test]
    fn only_trusted_proxies_are_believed_and_only_their_own_entries() {
        // Nobody trusted: the socket's address, whatever the header says.
        assert_eq!(client("", "10.0.0.5:4000", &["203.0.113.9"]), "10.0.0.5");
        // A connection from elsewhere cannot claim an address.
        assert_eq!(
            client("10.0.0.0/8", "198.51.100.4:4000", &["203.0.113.9"]),
            "198.51.100.4"
        );
        // Through the trusted proxy: the address it saw.
        assert_eq!(
            client("10.0.0.0/8", "10.0.0.5:4000", &["203.0.113.9"]),
            "203.0.113.9"
        );
        // A client that sends its own header cannot hide behind it: the
        // right-most untrusted entry is the one the proxy appended.
        assert_eq!(
            client("10.0.0.0/8", "10.0.0.5:4000", &["1.2.3.4, 203.0.113.9"]),
            "203.0.113.9"
        );
        // Two proxies (both trusted), in one header or in two.
        assert_eq!(
            client(
                "10.0.0.0/8, 192.168.1.7",
                "10.0.0.5:4000",
                &["203.0.113.9, 192.168.1.7"]
            ),
            "203.0.113.9"
        );
        assert_eq!(
            client(
                "10.0.0.0/8,192.168.1.7",
                "10.0.0.5:4000",
                &["203.0.113.9", "192.168.1.7"]
            ),
            "203.0.113.9"
        );
        // Garbage stops the walk at what was believed so far.
        assert_eq!(
            client(
                "10.0.0.0/8",
                "10.0.0.5:4000",
                &["203.0.113.9, nonsense, 10.0.0.9"]
            ),
            "10.0.0.9"
        );
        // No header: the proxy itself.
        assert_eq!(client("10.0.0.0/8", "10.0.0.5:4000", &[]), "10.0.0.5");
        // IPv4 peers on a dual-stack socket are matched as IPv4.
        assert_eq!(
            client("127.0.0.1", "[::ffff:127.0.0.1]:4000", &["2001:db8::1"]),
            "2001:db8::1"
        );
    }

    #[test]
    fn a_bad_list_is_refused() {
        assert!(TrustedProxies::parse("10.0.0.0/8, nope").is_err());
        assert!(TrustedProxies::parse("").unwrap().0.is_empty());
    }
}
