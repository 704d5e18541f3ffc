//! The async MQTT client on this runtime: [`Client`] is
//! [`midge_client::Client`] on [`crate::SmolRuntime`]; see `midge-client` for
//! the documentation. The same surface exists on the other runtime.

pub use midge_client::{
    ClientConfig, ClientError, ClientStats, ConnectOptions, ConnectReturnCode, Delivery, LastWill,
    Message, Messages, Protocol, QoS, Reconnect, SubscribeReturnCode, TlsOptions,
};

/// The async MQTT client on [`crate::SmolRuntime`].
pub type Client = midge_client::Client<crate::SmolRuntime>;

pub use midge_client::sn::{
    SnClientError, SnConnectOptions, SnGranted, SnMessage, SnMessages, SnPending, SnTopic,
};

/// The async MQTT-SN client on [`crate::SmolRuntime`]; see `midge_client::sn`.
pub type SnClient = midge_client::sn::SnClient<crate::SmolRuntime>;
