//! Connects to a broker, subscribes to `echo/in/#` and republishes every
//! message under `echo/out/…` from inside the message loop, until a message
//! with the payload `stop` arrives.
//!
//! ```text
//! cargo run -p midge-client --example echo -- mqtt://localhost:1883
//! ```

use midge_client::{Client, ClientError, ConnectOptions, QoS};
use midge_tokio::TokioRuntime;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), ClientError> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "mqtt://localhost:1883".into());
    let options = ConnectOptions::new(&url, "midge-echo")?.with_keep_alive(30);
    let (client, mut messages) = Client::<TokioRuntime>::connect(options).await?;
    let granted = client.subscribe("echo/in/#", QoS::AtLeastOnce).await?;
    println!("subscribed to echo/in/# with {granted:?}");

    while let Some(message) = messages.recv().await {
        if message.payload.as_ref() == b"stop" {
            break;
        }
        let topic = message.topic_str().replacen("echo/in", "echo/out", 1);
        // `publish` never waits, so this cannot deadlock; the delivery is
        // not awaited here, it completes in the background.
        drop(client.publish(&topic, message.payload, QoS::AtLeastOnce, false)?);
    }
    println!("{:?}", client.stats());
    client.disconnect().await
}
