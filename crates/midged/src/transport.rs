//! The `[tls]` and `[websocket]` tables: TLS, WebSocket and WebSocket over
//! TLS listeners, turned into the server's transport listeners.
//!
//! ```toml
//! [tls]
//! listeners = ["0.0.0.0:8883"]     # default ["127.0.0.1:8883"] once `cert` is set
//! cert = "/etc/midge/server.pem"   # chain, PEM
//! key = "/etc/midge/server.key"    # PEM
//! client_ca = "/etc/midge/ca.pem"  # verify client certificates against it
//! require_client_cert = false
//! cn_as_username = false
//!
//! [websocket]
//! listeners = ["127.0.0.1:8080"]   # ws://, default ["127.0.0.1:8080"]
//! secure_listeners = []            # wss://, using the [tls] certificate
//! path = "/mqtt"
//! ```

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use midge_server::{Listener, ListenerKind, TlsOptions};
use serde::Deserialize;

/// The TLS listener used when `[tls]` has a certificate but no listeners.
const DEFAULT_TLS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8883);
/// The WebSocket listener used when `[websocket]` names none.
const DEFAULT_WS: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8080);
/// The WebSocket path used when `[websocket]` names none.
const DEFAULT_PATH: &str = "/mqtt";

/// Table `[tls]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TlsFileConfig {
    /// MQTT over TLS listeners.
    #[serde(default)]
    pub(crate) listeners: Option<Vec<SocketAddr>>,
    /// Certificate chain (PEM).
    #[serde(default)]
    pub(crate) cert: Option<PathBuf>,
    /// Private key (PEM).
    #[serde(default)]
    pub(crate) key: Option<PathBuf>,
    /// CA file for client certificates.
    #[serde(default)]
    pub(crate) client_ca: Option<PathBuf>,
    /// Mutual TLS: refuse clients without a valid certificate.
    #[serde(default)]
    pub(crate) require_client_cert: bool,
    /// The client certificate's CN as the MQTT user name.
    #[serde(default)]
    pub(crate) cn_as_username: bool,
}

/// Table `[websocket]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebSocketFileConfig {
    /// Plain WebSocket listeners.
    #[serde(default)]
    pub(crate) listeners: Option<Vec<SocketAddr>>,
    /// WebSocket over TLS listeners (with the `[tls]` certificate).
    #[serde(default)]
    pub(crate) secure_listeners: Option<Vec<SocketAddr>>,
    /// The HTTP path of the upgrade.
    #[serde(default)]
    pub(crate) path: Option<String>,
}

/// The transport listeners the two tables describe, TLS first, then ws,
/// then wss.
///
/// # Errors
/// A message naming the key: listeners that need a certificate without
/// one, a key without a certificate (or the reverse), a path not starting
/// with `/`, `require_client_cert` without `client_ca`.
pub(crate) fn listeners(
    tls: &TlsFileConfig,
    websocket: Option<&WebSocketFileConfig>,
) -> Result<Vec<Listener>, String> {
    let options = match (&tls.cert, &tls.key) {
        (Some(cert), Some(key)) => Some(TlsOptions {
            cert_chain: cert.clone(),
            key: key.clone(),
            client_ca: tls.client_ca.clone(),
            require_client_cert: tls.require_client_cert,
            cn_as_username: tls.cn_as_username,
        }),
        (None, None) => None,
        (Some(_), None) => return Err("[tls] cert is set but key is not".into()),
        (None, Some(_)) => return Err("[tls] key is set but cert is not".into()),
    };
    if tls.require_client_cert && tls.client_ca.is_none() {
        return Err("[tls] require_client_cert needs client_ca".into());
    }
    let mut out = Vec::new();
    let tls_addrs = match (&tls.listeners, &options) {
        (Some(addrs), _) => addrs.clone(),
        (None, Some(_)) => vec![DEFAULT_TLS],
        (None, None) => Vec::new(),
    };
    if !tls_addrs.is_empty() {
        let Some(options) = &options else {
            return Err("[tls] listeners need cert and key".into());
        };
        out.extend(tls_addrs.into_iter().map(|addr| Listener {
            addr,
            kind: ListenerKind::Tls(options.clone()),
        }));
    }
    let Some(ws) = websocket else {
        return Ok(out);
    };
    let path = ws.path.clone().unwrap_or_else(|| DEFAULT_PATH.to_owned());
    if !path.starts_with('/') {
        return Err(format!("[websocket] path {path:?} must start with `/`"));
    }
    let plain = ws.listeners.clone().unwrap_or_else(|| vec![DEFAULT_WS]);
    out.extend(plain.into_iter().map(|addr| Listener {
        addr,
        kind: ListenerKind::Ws { path: path.clone() },
    }));
    let secure = ws.secure_listeners.clone().unwrap_or_default();
    if !secure.is_empty() {
        let Some(options) = &options else {
            return Err("[websocket] secure_listeners need [tls] cert and key".into());
        };
        out.extend(secure.into_iter().map(|addr| Listener {
            addr,
            kind: ListenerKind::Wss {
                path: path.clone(),
                tls: options.clone(),
            },
        }));
    }
    Ok(out)
}

/// The listeners that carry passwords in clear: plain WebSocket.
pub(crate) fn plain_addrs(listeners: &[Listener]) -> Vec<SocketAddr> {
    listeners
        .iter()
        .filter(|l| matches!(l.kind, ListenerKind::Ws { .. } | ListenerKind::Tcp))
        .map(|l| l.addr)
        .collect()
}

/// The transport's name, for the start-up lines.
pub(crate) fn kind_name(kind: &ListenerKind) -> &'static str {
    match kind {
        ListenerKind::Tls(_) => "tls",
        ListenerKind::Ws { .. } => "ws",
        ListenerKind::Wss { .. } => "wss",
        _ => "tcp",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls(cert: bool) -> TlsFileConfig {
        TlsFileConfig {
            cert: cert.then(|| "c.pem".into()),
            key: cert.then(|| "k.pem".into()),
            ..TlsFileConfig::default()
        }
    }

    #[test]
    fn nothing_configured_means_no_transport_listener() {
        assert_eq!(listeners(&TlsFileConfig::default(), None), Ok(Vec::new()));
    }

    #[test]
    fn defaults_are_8883_8080_and_mqtt() {
        let got = listeners(&tls(true), Some(&WebSocketFileConfig::default())).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].addr, DEFAULT_TLS);
        assert!(matches!(got[0].kind, ListenerKind::Tls(_)));
        assert_eq!(got[1].addr, DEFAULT_WS);
        assert_eq!(
            got[1].kind,
            ListenerKind::Ws {
                path: "/mqtt".into()
            }
        );
    }

    #[test]
    fn wss_uses_the_tls_certificate_and_needs_one() {
        let ws = WebSocketFileConfig {
            listeners: Some(Vec::new()),
            secure_listeners: Some(vec!["0.0.0.0:8443".parse().unwrap()]),
            path: Some("/x".into()),
        };
        let got = listeners(&tls(true), Some(&ws)).unwrap();
        assert!(matches!(
            &got[1].kind,
            ListenerKind::Wss { path, tls } if path == "/x" && tls.cert_chain.as_path() == std::path::Path::new("c.pem")
        ));
        let err = listeners(&tls(false), Some(&ws)).unwrap_err();
        assert!(err.contains("secure_listeners"), "{err}");
    }

    #[test]
    fn inconsistent_tables_are_refused_with_the_key() {
        let half = TlsFileConfig {
            cert: Some("c.pem".into()),
            ..TlsFileConfig::default()
        };
        assert!(listeners(&half, None).unwrap_err().contains("key"));
        let no_cert = TlsFileConfig {
            listeners: Some(vec![DEFAULT_TLS]),
            ..TlsFileConfig::default()
        };
        assert!(listeners(&no_cert, None).unwrap_err().contains("cert"));
        let no_ca = TlsFileConfig {
            require_client_cert: true,
            ..tls(true)
        };
        assert!(listeners(&no_ca, None).unwrap_err().contains("client_ca"));
        let bad_path = WebSocketFileConfig {
            path: Some("mqtt".into()),
            ..WebSocketFileConfig::default()
        };
        assert!(listeners(&tls(false), Some(&bad_path))
            .unwrap_err()
            .contains("path"));
        // Turning the TLS listener off keeps the certificate for wss.
        let off = TlsFileConfig {
            listeners: Some(Vec::new()),
            ..tls(true)
        };
        assert_eq!(listeners(&off, None), Ok(Vec::new()));
    }
}
