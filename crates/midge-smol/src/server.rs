//! The broker server on smol: [`Server`] is `midge_server::Server` over
//! [`SmolRuntime`](crate::SmolRuntime).

pub use midge_server::{
    Listener, ListenerKind, ServerHandle, ServerOptions, ServerStats,
    TlsOptions as ServerTlsOptions, TransportError,
};

/// The Midge broker server running on smol (see `midge_server::Server`).
pub type Server = midge_server::Server<crate::SmolRuntime>;
