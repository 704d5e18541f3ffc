//! MQTT over WebSocket (the spec's section 6), client side: the HTTP
//! upgrade with its path and sub-protocol checks, and [`WsStream`], which
//! turns binary messages into a byte stream.

use async_tungstenite::tungstenite::client::IntoClientRequest;
use async_tungstenite::tungstenite::http::HeaderValue;
use midge_runtime::BrokerUrl;

use crate::ClientError;

use futures_lite::{AsyncRead, AsyncWrite};
pub(crate) use midge_runtime::ws::WsStream;
use midge_runtime::ws::{PROTOCOL_HEADER, SUBPROTOCOL};

/// Runs the WebSocket upgrade for `url` on `stream`, offering the `mqtt`
/// sub-protocol [MQTT-6.0.0-3] and insisting that the broker selects it
/// [MQTT-6.0.0-4].
pub(super) async fn connect<S>(stream: S, url: &BrokerUrl) -> Result<WsStream<S>, ClientError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let failed = |why: String| ClientError::WebSocket(why);
    let mut request = url
        .to_string()
        .into_client_request()
        .map_err(|e| failed(e.to_string()))?;
    request
        .headers_mut()
        .insert(PROTOCOL_HEADER, HeaderValue::from_static(SUBPROTOCOL));
    let (ws, response) = async_tungstenite::client_async(request, stream)
        .await
        .map_err(|e| failed(e.to_string()))?;
    let selected = response
        .headers()
        .get(PROTOCOL_HEADER)
        .and_then(|value| value.to_str().ok());
    if selected != Some(SUBPROTOCOL) {
        return Err(failed(format!(
            "the broker selected sub-protocol {selected:?}, not `mqtt`"
        )));
    }
    Ok(WsStream::new(ws))
}
