//! Where to connect or listen: `tcp://host:port`, `unix:///path`,
//! `tls://host:port` or `udp://host:port`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::error::TransportError;

/// A parsed endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// TCP to a host name or IP address (IPv6 in brackets) and a port.
    Tcp {
        /// Host name, IPv4 address, or IPv6 address without brackets.
        host: String,
        /// Port (0 to let the OS choose when listening).
        port: u16,
    },
    /// A Unix domain socket path (on platforms without Unix sockets, a file
    /// holding the 127.0.0.1 port of the TCP fallback).
    Unix(PathBuf),
    /// TLS over TCP. Opened by a TLS connector or listener (crate
    /// netproto-transport-tls); the built-in transport refuses it.
    Tls {
        /// Host name (also the TLS server name unless configured otherwise),
        /// IPv4 address, or IPv6 address without brackets.
        host: String,
        /// Port (0 to let the OS choose when listening).
        port: u16,
    },
    /// Encrypted datagram sessions over UDP. Opened by the UDP carrier
    /// (crate netproto-transport-udp); the built-in transport refuses it.
    Udp {
        /// Host name, IPv4 address, or IPv6 address without brackets.
        host: String,
        /// Port (0 to let the OS choose when listening).
        port: u16,
    },
}

fn bad(input: &str, reason: &'static str) -> TransportError {
    TransportError::BadEndpoint {
        input: input.to_owned(),
        reason,
    }
}

impl FromStr for Endpoint {
    type Err = TransportError;

    fn from_str(input: &str) -> Result<Self, TransportError> {
        let (scheme, rest) = input
            .split_once("://")
            .ok_or_else(|| bad(input, "missing scheme: use tcp://host:port or unix:///path"))?;
        match scheme {
            "tcp" | "tls" | "udp" => {
                let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
                    let (host, tail) = v6
                        .split_once(']')
                        .ok_or_else(|| bad(input, "unclosed '[' in IPv6 address"))?;
                    let port = tail
                        .strip_prefix(':')
                        .ok_or_else(|| bad(input, "missing :port after IPv6 address"))?;
                    if host.parse::<std::net::Ipv6Addr>().is_err() {
                        return Err(bad(input, "invalid IPv6 address"));
                    }
                    (host, port)
                } else {
                    let (host, port) = rest
                        .rsplit_once(':')
                        .ok_or_else(|| bad(input, "missing :port"))?;
                    if host.contains(':') {
                        return Err(bad(
                            input,
                            "IPv6 addresses must be in brackets: tcp://[::1]:port",
                        ));
                    }
                    (host, port)
                };
                if host.is_empty() {
                    return Err(bad(input, "empty host"));
                }
                if host.contains('/') {
                    return Err(bad(input, "a TCP endpoint has no path"));
                }
                let port = port
                    .parse::<u16>()
                    .map_err(|_| bad(input, "port is not a number from 0 to 65535"))?;
                let host = host.to_owned();
                Ok(match scheme {
                    "tls" => Self::Tls { host, port },
                    "udp" => Self::Udp { host, port },
                    _ => Self::Tcp { host, port },
                })
            }
            "unix" => {
                if rest.is_empty() {
                    return Err(bad(input, "empty socket path"));
                }
                if !rest.starts_with('/') {
                    return Err(bad(input, "the socket path must be absolute: unix:///path"));
                }
                Ok(Self::Unix(PathBuf::from(rest)))
            }
            _ => Err(bad(
                input,
                "unknown scheme: use tcp://, unix://, tls:// or udp://",
            )),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp { host, port } if host.contains(':') => write!(f, "tcp://[{host}]:{port}"),
            Self::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Self::Unix(p) => write!(f, "unix://{}", p.display()),
            Self::Tls { host, port } if host.contains(':') => write!(f, "tls://[{host}]:{port}"),
            Self::Tls { host, port } => write!(f, "tls://{host}:{port}"),
            Self::Udp { host, port } if host.contains(':') => write!(f, "udp://[{host}]:{port}"),
            Self::Udp { host, port } => write!(f, "udp://{host}:{port}"),
        }
    }
}

impl Endpoint {
    /// The transport label bound into the handshake prologue.
    pub fn transport_label(&self) -> &'static str {
        match self {
            Self::Tcp { .. } => "tcp",
            Self::Unix(_) => "uds",
            Self::Tls { .. } => "tls",
            Self::Udp { .. } => "udp",
        }
    }

    /// The host and port of a network endpoint (`None` for Unix sockets).
    pub fn host_port(&self) -> Option<(&str, u16)> {
        match self {
            Self::Tcp { host, port } | Self::Tls { host, port } | Self::Udp { host, port } => {
                Some((host, *port))
            }
            Self::Unix(_) => None,
        }
    }

    /// The TCP endpoint under a TLS one (`None` for other kinds).
    pub fn tls_to_tcp(&self) -> Option<Self> {
        match self {
            Self::Tls { host, port } => Some(Self::Tcp {
                host: host.clone(),
                port: *port,
            }),
            _ => None,
        }
    }
}

/// The address a listener accepted a connection from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PeerAddr {
    /// A TCP peer.
    Tcp(std::net::SocketAddr),
    /// A Unix-socket peer (usually unnamed).
    Unix(Option<PathBuf>),
    /// A UDP peer (its address when the session's handshake completed).
    Udp(std::net::SocketAddr),
}

impl fmt::Display for PeerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Tcp(a) => write!(f, "{a}"),
            Self::Unix(Some(p)) => write!(f, "unix:{}", p.display()),
            Self::Unix(None) => f.write_str("unix:(unnamed)"),
            Self::Udp(a) => write!(f, "udp:{a}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for s in [
            "tcp://127.0.0.1:9000",
            "tcp://[::1]:80",
            "tcp://example.com:0",
            "unix:///tmp/x.sock",
            "tls://localhost:443",
            "tls://[::1]:9443",
            "udp://127.0.0.1:9000",
            "udp://[::1]:0",
        ] {
            let e: Endpoint = s.parse().unwrap();
            assert_eq!(e.to_string(), s);
        }
        let e: Endpoint = "tcp://[::1]:80".parse().unwrap();
        assert_eq!(
            e,
            Endpoint::Tcp {
                host: "::1".into(),
                port: 80
            }
        );
        let e: Endpoint = "tls://example.com:9443".parse().unwrap();
        assert_eq!(e.transport_label(), "tls");
        assert_eq!(
            e.tls_to_tcp().unwrap().to_string(),
            "tcp://example.com:9443"
        );
    }

    #[test]
    fn clear_errors() {
        let cases = [
            ("127.0.0.1:9000", "missing scheme"),
            ("ftp://1.2.3.4:5", "unknown scheme"),
            ("tcp://host", "missing :port"),
            ("tcp://host:99999", "port is not"),
            ("tcp://::1:80", "brackets"),
            ("tcp://[::1:80", "unclosed"),
            ("tcp://[zz]:80", "invalid IPv6"),
            ("tcp://:80", "empty host"),
            ("unix://relative.sock", "absolute"),
            ("unix://", "empty socket path"),
            ("tls://host", "missing :port"),
        ];
        for (input, reason) in cases {
            match input.parse::<Endpoint>() {
                Err(TransportError::BadEndpoint { reason: r, .. }) => {
                    assert!(r.contains(reason), "{input}: {r}");
                }
                other => panic!("{input}: {other:?}"),
            }
        }
    }
}
