//! The broker server on tokio: [`Server`] is `midge_server::Server` over
//! [`TokioRuntime`](crate::TokioRuntime).

pub use midge_server::{
    Listener, ListenerKind, ServerHandle, ServerOptions, ServerStats,
    TlsOptions as ServerTlsOptions, TransportError,
};

/// The Midge broker server running on tokio (see `midge_server::Server`).
pub type Server = midge_server::Server<crate::TokioRuntime>;
