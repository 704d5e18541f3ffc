//! Broker addresses: `mqtt://host:port`, and the forms people type.

use std::fmt;
use std::str::FromStr;

/// The transport a [`BrokerUrl`] names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// MQTT over TCP (`mqtt://`, also `tcp://`), default port 1883.
    Mqtt,
    /// MQTT over TLS (`mqtts://`, also `ssl://` and `tls://`), default port 8883.
    Mqtts,
    /// MQTT over WebSocket (`ws://`), default port 80.
    Ws,
    /// MQTT over secure WebSocket (`wss://`), default port 443.
    Wss,
}

impl Scheme {
    /// The port used when the URL names none.
    #[must_use]
    pub const fn default_port(self) -> u16 {
        match self {
            Self::Mqtt => 1883,
            Self::Mqtts => 8883,
            Self::Ws => 80,
            Self::Wss => 443,
        }
    }

    /// The canonical scheme name, without `://`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Mqtt => "mqtt",
            Self::Mqtts => "mqtts",
            Self::Ws => "ws",
            Self::Wss => "wss",
        }
    }

    /// Whether the transport is encrypted.
    #[must_use]
    pub const fn is_tls(self) -> bool {
        matches!(self, Self::Mqtts | Self::Wss)
    }

    /// Whether the transport is WebSocket.
    #[must_use]
    pub const fn is_websocket(self) -> bool {
        matches!(self, Self::Ws | Self::Wss)
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a broker address did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UrlError {
    /// The scheme is not one of mqtt, mqtts, tcp, ssl, tls, ws, wss.
    #[error("unknown scheme `{0}` (expected mqtt://, mqtts://, ws:// or wss://)")]
    UnknownScheme(String),
    /// No host name or address.
    #[error("the address names no host")]
    MissingHost,
    /// The port is not a number from 1 to 65535.
    #[error("bad port `{0}` (expected 1 to 65535)")]
    BadPort(String),
    /// An IPv6 literal without its closing `]`.
    #[error("unclosed `[` in an IPv6 address")]
    UnclosedBracket,
    /// User information (`user:pass@`) in the URL: credentials go in their
    /// own options, not in an address that ends up in logs.
    #[error("credentials in the URL are not accepted; pass them as options")]
    Credentials,
}

/// A broker address: scheme, host, port and (for WebSocket) path.
///
/// Accepted forms: `mqtt://host:port`, `mqtt://host` (default port of the
/// scheme), `host:port`, `host` (MQTT over TCP), and IPv6 literals in
/// brackets (`mqtt://[::1]:1883`). `tcp://` is read as `mqtt://`, `ssl://`
/// and `tls://` as `mqtts://`. A WebSocket URL without a path gets `/mqtt`.
///
/// ```
/// use midge_runtime::{BrokerUrl, Scheme};
///
/// let url: BrokerUrl = "mqtt://[::1]:1884".parse().unwrap();
/// assert_eq!((url.scheme, url.host.as_str(), url.port), (Scheme::Mqtt, "::1", 1884));
/// let url: BrokerUrl = "localhost".parse().unwrap();
/// assert_eq!(url.to_string(), "mqtt://localhost:1883");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BrokerUrl {
    /// The transport.
    pub scheme: Scheme,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port.
    pub port: u16,
    /// The HTTP path for WebSocket; `/` for TCP transports, which ignore it.
    pub path: String,
}

impl BrokerUrl {
    /// MQTT over TCP to `host:port`.
    #[must_use]
    pub fn tcp(host: impl Into<String>, port: u16) -> Self {
        Self {
            scheme: Scheme::Mqtt,
            host: host.into(),
            port,
            path: "/".into(),
        }
    }
}

impl FromStr for BrokerUrl {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, UrlError> {
        let s = s.trim();
        let (scheme, rest) = match s.split_once("://") {
            Some((name, rest)) => (parse_scheme(name)?, rest),
            None => (Scheme::Mqtt, s),
        };
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(UrlError::Credentials);
        }
        let (host, port) = if let Some(inner) = authority.strip_prefix('[') {
            let (host, after) = inner.split_once(']').ok_or(UrlError::UnclosedBracket)?;
            let port = match after.strip_prefix(':') {
                Some(port) => Some(port),
                None if after.is_empty() => None,
                None => return Err(UrlError::BadPort(after.to_owned())),
            };
            (host, port)
        } else {
            match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            }
        };
        if host.is_empty() {
            return Err(UrlError::MissingHost);
        }
        let port = match port {
            None => scheme.default_port(),
            Some(text) => match text.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => return Err(UrlError::BadPort(text.to_owned())),
            },
        };
        let path = if path.is_empty() {
            if scheme.is_websocket() { "/mqtt" } else { "/" }.to_owned()
        } else {
            path.to_owned()
        };
        Ok(Self {
            scheme,
            host: host.to_owned(),
            port,
            path,
        })
    }
}

fn parse_scheme(name: &str) -> Result<Scheme, UrlError> {
    match name.to_ascii_lowercase().as_str() {
        "mqtt" | "tcp" => Ok(Scheme::Mqtt),
        "mqtts" | "ssl" | "tls" => Ok(Scheme::Mqtts),
        "ws" => Ok(Scheme::Ws),
        "wss" => Ok(Scheme::Wss),
        _ => Err(UrlError::UnknownScheme(name.to_owned())),
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://", self.scheme)?;
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        write!(f, ":{}", self.port)?;
        if self.scheme.is_websocket() {
            f.write_str(&self.path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<BrokerUrl, UrlError> {
        s.parse()
    }

    #[test]
    fn forms_people_type() {
        let url = parse("mqtt://broker.example:1884").unwrap();
        assert_eq!(url, BrokerUrl::tcp("broker.example", 1884));
        assert_eq!(parse("broker.example").unwrap().port, 1883);
        assert_eq!(
            parse("127.0.0.1:2000").unwrap(),
            BrokerUrl::tcp("127.0.0.1", 2000)
        );
        assert_eq!(parse("tcp://h").unwrap().scheme, Scheme::Mqtt);
        assert_eq!(parse("ssl://h").unwrap().port, 8883);
        assert_eq!(parse("MQTTS://h").unwrap().scheme, Scheme::Mqtts);
    }

    #[test]
    fn ipv6_literals() {
        let url = parse("mqtt://[::1]:1884").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 1884));
        assert_eq!(parse("[fe80::1]").unwrap().port, 1883);
        assert_eq!(url.to_string(), "mqtt://[::1]:1884");
        assert_eq!(parse("[::1"), Err(UrlError::UnclosedBracket));
        assert!(matches!(parse("[::1]x"), Err(UrlError::BadPort(_))));
    }

    #[test]
    fn websocket_paths() {
        let url = parse("ws://h").unwrap();
        assert_eq!((url.port, url.path.as_str()), (80, "/mqtt"));
        assert_eq!(parse("wss://h:8443/ws").unwrap().path, "/ws");
        assert_eq!(
            parse("wss://h:8443/ws").unwrap().to_string(),
            "wss://h:8443/ws"
        );
    }

    #[test]
    fn refusals() {
        assert_eq!(
            parse("http://h"),
            Err(UrlError::UnknownScheme("http".into()))
        );
        assert_eq!(parse("mqtt://"), Err(UrlError::MissingHost));
        assert_eq!(parse(":1883"), Err(UrlError::MissingHost));
        assert!(matches!(parse("h:0"), Err(UrlError::BadPort(_))));
        assert!(matches!(parse("h:65536"), Err(UrlError::BadPort(_))));
        assert!(matches!(parse("h:x"), Err(UrlError::BadPort(_))));
        assert_eq!(parse("mqtt://u:p@h"), Err(UrlError::Credentials));
    }
}
