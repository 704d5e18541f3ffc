//! MQTT over WebSocket (the spec's section 6), server side: the HTTP
//! upgrade with its path and sub-protocol checks, and [`WsStream`], which
//! turns binary messages into a byte stream.

use std::io;

use async_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use async_tungstenite::tungstenite::http::{HeaderValue, StatusCode};

use futures_lite::{AsyncRead, AsyncWrite};
pub(crate) use midge_runtime::ws::WsStream;
use midge_runtime::ws::{into_io, PROTOCOL_HEADER, SUBPROTOCOL};

/// Whether the upgrade request offers the `mqtt` sub-protocol among the
/// ones it lists (in one header or several).
fn offers_mqtt(request: &Request) -> bool {
    request
        .headers()
        .get_all(PROTOCOL_HEADER)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|offered| offered.trim() == SUBPROTOCOL)
}

fn refusal(status: StatusCode, why: &str) -> ErrorResponse {
    let mut response = ErrorResponse::new(Some(why.to_owned()));
    *response.status_mut() = status;
    response
}

/// Runs the WebSocket upgrade on `stream`: the request must name `path`
/// and offer the `mqtt` sub-protocol [MQTT-6.0.0-3], which the answer
/// selects [MQTT-6.0.0-4]. Anything else is answered with an HTTP error and
/// fails.
pub(super) async fn accept<S>(stream: S, path: &str) -> io::Result<WsStream<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // The error type is the HTTP answer tungstenite's callback asks for.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, mut response: Response| {
        if request.uri().path() != path {
            return Err(refusal(
                StatusCode::NOT_FOUND,
                "no MQTT endpoint at this path",
            ));
        }
        if !offers_mqtt(request) {
            return Err(refusal(
                StatusCode::BAD_REQUEST,
                "the mqtt sub-protocol is required",
            ));
        }
        response
            .headers_mut()
            .insert(PROTOCOL_HEADER, HeaderValue::from_static(SUBPROTOCOL));
        Ok(response)
    };
    let ws = async_tungstenite::accept_hdr_async(stream, callback)
        .await
        .map_err(into_io)?;
    Ok(WsStream::new(ws))
}
