//! `midge pub` and `midge sub` on the async client.

use std::collections::VecDeque;
use std::io::Write;
use std::time::Duration;

use bytes::Bytes;
use midge_client::{
    ClientError, ConnectOptions, Delivery, Message, Messages, Reconnect, TlsOptions,
};
use midge_codec::{LastWill, Topic};
use midge_session::ClientConfig;
use midge_tokio::{BrokerUrl, Scheme, TokioRuntime};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::time::Instant;

use crate::cli::{ConnArgs, PubArgs, SubArgs};
use crate::exit::{Exit, Failure};

/// The async client on tokio.
type Client = midge_client::Client<TokioRuntime>;

/// QoS 1/2 publications awaited at once by `pub -l`; below the session's
/// default queue limit, so `publish` never meets a full queue.
const MAX_PENDING: usize = 256;

/// Whether a TLS flag (--cafile, --cert, --insecure) is given.
fn tls_flags(conn: &ConnArgs) -> bool {
    conn.cafile.is_some() || conn.cert.is_some() || conn.insecure
}

/// The broker address and the topic an `-L` URL carries, if any. Without
/// `-L`, a TLS flag makes it `mqtts://` (default port 8883). With a ws://
/// or wss:// `-L`, the URL's path is the topic and `--ws-path` the HTTP
/// path.
fn broker(conn: &ConnArgs) -> Result<(BrokerUrl, Option<String>), Failure> {
    let Some(text) = &conn.url else {
        let mut url = BrokerUrl::tcp(conn.host.clone(), 1883);
        if tls_flags(conn) {
            url.scheme = Scheme::Mqtts;
        }
        url.port = conn.port.unwrap_or(url.scheme.default_port());
        return Ok((url, None));
    };
    let mut url: BrokerUrl = text
        .parse()
        .map_err(|e| Failure::new(Exit::Usage, format!("-L {text}: {e}")))?;
    let topic = url
        .path
        .strip_prefix('/')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| {
            Failure::new(
                Exit::Usage,
                format!("-L {text}: the URL names no topic (mqtt://host:port/topic)"),
            )
        })?;
    if url.scheme.is_websocket() {
        if !conn.ws_path.starts_with('/') {
            return Err(Failure::new(
                Exit::Usage,
                format!("--ws-path {:?} must start with /", conn.ws_path),
            ));
        }
        url.path.clone_from(&conn.ws_path);
    }
    Ok((url, Some(topic)))
}

/// The TLS settings of the flags.
fn tls_options(conn: &ConnArgs) -> TlsOptions {
    let mut tls = TlsOptions::default().with_insecure(conn.insecure);
    if let Some(ca) = &conn.cafile {
        tls = tls.with_ca_file(ca);
    }
    if let (Some(cert), Some(key)) = (&conn.cert, &conn.key) {
        tls = tls.with_client_cert(cert, key);
    }
    tls
}

/// The client id: `-i`, or the prefix followed by the process id.
fn client_id(conn: &ConnArgs, default_prefix: &str) -> String {
    conn.id.clone().unwrap_or_else(|| {
        let prefix = conn.id_prefix.as_deref().unwrap_or(default_prefix);
        format!("{prefix}{}", std::process::id())
    })
}

/// Connection options from the flags. No automatic reconnection: a lost
/// connection ends the command with exit code 3.
pub(crate) fn connect_options(
    conn: &ConnArgs,
    url: BrokerUrl,
    default_prefix: &str,
) -> Result<ConnectOptions, Failure> {
    let mut config = ClientConfig::new(client_id(conn, default_prefix))
        .with_clean_session(!conn.persistent)
        .with_keep_alive(conn.keep_alive);
    if let Some(user) = &conn.username {
        let password = conn.password.clone().map(Bytes::from);
        config = config.with_credentials(user.clone(), password);
    }
    if let (Some(topic), Some(payload)) = (&conn.will_topic, &conn.will_payload) {
        let topic = Topic::new(topic)
            .map_err(|e| Failure::new(Exit::Usage, format!("--will-topic {topic:?}: {e}")))?;
        config = config.with_will(LastWill {
            topic,
            message: Bytes::from(payload.clone()),
            qos: conn.will_qos,
            retain: conn.will_retain,
        });
    }
    if tls_flags(conn) && !url.scheme.is_tls() {
        return Err(Failure::new(
            Exit::Usage,
            format!(
                "--cafile, --cert and --insecure need a TLS address (mqtts:// or wss://), not {}://",
                url.scheme
            ),
        ));
    }
    Ok(ConnectOptions::from_url(url, String::new())
        .with_config(config)
        .with_tls(tls_options(conn))
        .with_reconnect(Reconnect::disabled()))
}

/// Runs `work` until it ends or the `-W` deadline passes (exit code 27).
async fn within<T>(
    (deadline, secs): (Option<Instant>, Option<u32>),
    work: impl std::future::Future<Output = Result<T, Failure>>,
) -> Result<T, Failure> {
    match deadline {
        None => work.await,
        Some(at) => match tokio::time::timeout_at(at, work).await {
            Ok(result) => result,
            Err(_) => Err(Failure::new(
                Exit::Timeout,
                format!("timed out after {} s (-W)", secs.unwrap_or_default()),
            )),
        },
    }
}

/// The `-W` deadline, and its seconds for messages.
fn deadline(conn: &ConnArgs) -> (Option<Instant>, Option<u32>) {
    let at = conn
        .timeout
        .map(|secs| Instant::now() + Duration::from_secs(u64::from(secs)));
    (at, conn.timeout)
}

/// Connects, logging the outcome.
async fn connect(options: ConnectOptions) -> Result<(Client, Messages), Failure> {
    let url = options.url.clone();
    tracing::debug!(
        "connecting to {}:{} as {:?}",
        url.host,
        url.port,
        options.config.client_id
    );
    let (client, messages) = Client::connect(options).await?;
    tracing::debug!(session_present = client.session_present(), "connected");
    Ok((client, messages))
}

/// How long a DISCONNECT may take to leave before the process exits anyway.
const DISCONNECT_WAIT: Duration = Duration::from_secs(5);

/// Sends DISCONNECT and waits (boundedly) for the connection to close.
async fn disconnect(client: &Client) {
    if tokio::time::timeout(DISCONNECT_WAIT, client.disconnect())
        .await
        .is_err()
    {
        tracing::warn!("the connection did not close in time");
    }
}

/// `midge pub`.
pub(crate) async fn publish(args: PubArgs) -> Result<(), Failure> {
    let deadline = deadline(&args.conn);
    let (url, url_topic) = broker(&args.conn)?;
    let topic = args.topic.clone().or(url_topic).ok_or_else(|| {
        Failure::new(
            Exit::Usage,
            "no topic: give -t TOPIC or -L mqtt://host/topic",
        )
    })?;
    // Read a single message before connecting, so a missing file costs no
    // connection.
    let single: Option<Bytes> = args.body.single()?.map(Bytes::from);
    let options = connect_options(&args.conn, url, "midge-pub-")?;
    let mut slot = None;
    let result = within(deadline, async {
        let (client, _messages) = connect(options).await?;
        let client = slot.insert(client);
        match single {
            Some(payload) => {
                let delivery = client.publish(&topic, payload, args.conn.qos, args.retain)?;
                delivery.await?;
                tracing::debug!("published to {topic}");
                Ok(())
            }
            None => publish_lines(client, &topic, &args).await,
        }
    })
    .await;
    if let Some(client) = slot {
        // Every message is acknowledged (or the result says otherwise), so
        // nothing is lost by closing now.
        disconnect(&client).await;
    }
    result
}

/// `pub -l`: one message per stdin line, each acknowledged before exit.
async fn publish_lines(client: &Client, topic: &str, args: &PubArgs) -> Result<(), Failure> {
    let mut stdin = BufReader::new(tokio::io::stdin());
    let mut pending: VecDeque<Delivery> = VecDeque::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        let read = stdin
            .read_until(b'\n', &mut line)
            .await
            .map_err(|e| Failure::new(Exit::Other, format!("cannot read stdin: {e}")))?;
        if read == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        if pending.len() >= MAX_PENDING {
            if let Some(oldest) = pending.pop_front() {
                oldest.await?;
            }
        }
        let delivery = client.publish(
            topic,
            Bytes::copy_from_slice(&line),
            args.conn.qos,
            args.retain,
        )?;
        pending.push_back(delivery);
    }
    for delivery in pending {
        delivery.await?;
    }
    Ok(())
}

/// Writes one message as a line: the payload, or `topic payload` with -v.
fn print_message(out: &mut impl Write, message: &Message, verbose: bool) -> std::io::Result<()> {
    if verbose {
        out.write_all(message.topic_str().as_bytes())?;
        out.write_all(b" ")?;
    }
    out.write_all(&message.payload)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// Completes on SIGINT or SIGTERM.
async fn interrupted() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// `midge sub`.
pub(crate) async fn subscribe(args: SubArgs) -> Result<(), Failure> {
    let deadline = deadline(&args.conn);
    let (url, url_topic) = broker(&args.conn)?;
    let filters: Vec<String> = url_topic.into_iter().chain(args.topics.clone()).collect();
    if filters.is_empty() {
        return Err(Failure::new(
            Exit::Usage,
            "no topic: give -t FILTER or -L mqtt://host/filter",
        ));
    }
    let options = connect_options(&args.conn, url, "midge-sub-")?;
    let mut slot = None;
    let result = within(deadline, async {
        let (client, mut messages) = connect(options).await?;
        let client = slot.insert(client);
        for filter in &filters {
            let granted = client.subscribe(filter, args.conn.qos).await?;
            tracing::debug!("subscribed to {filter}, granted QoS {}", granted as u8);
        }
        let mut received: u64 = 0;
        let stop = interrupted();
        tokio::pin!(stop);
        loop {
            let message = tokio::select! {
                message = messages.recv() => message,
                () = &mut stop => {
                    tracing::debug!("interrupted");
                    return Ok(());
                }
            };
            let Some(message) = message else {
                return Err(client.ended().unwrap_or(ClientError::ConnectionLost).into());
            };
            if args.no_retained && message.retain {
                continue;
            }
            print_message(&mut std::io::stdout().lock(), &message, args.verbose)
                .map_err(|e| Failure::new(Exit::Other, format!("cannot write stdout: {e}")))?;
            received = received.saturating_add(1);
            if args.count.is_some_and(|count| received >= count) {
                return Ok(());
            }
        }
    })
    .await;
    if let Some(client) = slot {
        disconnect(&client).await;
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn conn(args: &[&str]) -> ConnArgs {
        let mut all = vec!["midge", "sub"];
        all.extend_from_slice(args);
        match crate::cli::Cli::try_parse_from(all).unwrap().command {
            crate::cli::Command::Sub(s) => s.conn,
            _ => unreachable!("parsed sub"),
        }
    }

    #[test]
    fn url_carries_host_port_and_topic() {
        let c = conn(&["-L", "mqtt://broker.example:1999/a/b/+"]);
        let (url, topic) = broker(&c).unwrap();
        assert_eq!((url.host.as_str(), url.port), ("broker.example", 1999));
        assert_eq!(topic.as_deref(), Some("a/b/+"));
    }

    #[test]
    fn url_without_topic_is_a_usage_error() {
        let c = conn(&["-L", "mqtt://broker.example:1999"]);
        assert_eq!(broker(&c).unwrap_err().exit, Exit::Usage);
        let c = conn(&["-L", "mqtt://u:p@broker.example/t"]);
        assert_eq!(broker(&c).unwrap_err().exit, Exit::Usage);
    }

    #[test]
    fn host_and_port_without_url() {
        let c = conn(&["-h", "::1", "-p", "1884", "-t", "x"]);
        let (url, topic) = broker(&c).unwrap();
        assert_eq!((url.host.as_str(), url.port, topic), ("::1", 1884, None));
    }

    #[test]
    fn tls_flags_turn_tls_on_with_its_default_port() {
        let plain = conn(&["-t", "x"]);
        let (url, _) = broker(&plain).unwrap();
        assert_eq!((url.scheme, url.port), (Scheme::Mqtt, 1883));
        for flags in [
            &["-t", "x", "--cafile", "ca.pem"][..],
            &["-t", "x", "--insecure"],
            &["-t", "x", "--cert", "c.pem", "--key", "k.pem"],
        ] {
            let c = conn(flags);
            let (url, _) = broker(&c).unwrap();
            assert_eq!((url.scheme, url.port), (Scheme::Mqtts, 8883), "{flags:?}");
            let o = connect_options(&c, url, "p").unwrap();
            let tls = o.tls.unwrap();
            assert_eq!(tls.insecure, c.insecure);
            assert_eq!(tls.ca_file, c.cafile);
            assert_eq!(tls.cert, c.cert);
        }
        let c = conn(&["-t", "x", "--cafile", "ca.pem", "-p", "9999"]);
        assert_eq!(broker(&c).unwrap().0.port, 9999);
    }

    #[test]
    fn websocket_url_takes_the_topic_from_its_path_and_the_path_from_ws_path() {
        let c = conn(&["-L", "wss://b.example/room/1", "--ws-path", "/broker"]);
        let (url, topic) = broker(&c).unwrap();
        assert_eq!((url.scheme, url.port), (Scheme::Wss, 443));
        assert_eq!(
            (url.path.as_str(), topic.as_deref()),
            ("/broker", Some("room/1"))
        );
        let c = conn(&["-L", "ws://b.example:8080/t"]);
        assert_eq!(broker(&c).unwrap().0.path, "/mqtt");
        let c = conn(&["-L", "ws://b.example/t", "--ws-path", "mqtt"]);
        assert_eq!(broker(&c).unwrap_err().exit, Exit::Usage);
    }

    #[test]
    fn tls_flags_with_a_plain_url_are_a_usage_error() {
        let c = conn(&["-L", "mqtt://b.example/t", "--cafile", "ca.pem"]);
        let (url, _) = broker(&c).unwrap();
        assert_eq!(connect_options(&c, url, "p").unwrap_err().exit, Exit::Usage);
    }

    #[test]
    fn options_follow_the_flags() {
        let c = conn(&[
            "-t",
            "x",
            "-i",
            "me",
            "-c",
            "-k",
            "9",
            "-u",
            "user",
            "-P",
            "pw",
            "--will-topic",
            "w/t",
            "--will-payload",
            "bye",
            "--will-retain",
        ]);
        let (url, _) = broker(&c).unwrap();
        let o = connect_options(&c, url, "midge-sub-").unwrap();
        assert_eq!(o.config.client_id, "me");
        assert!(!o.config.clean_session);
        assert_eq!(o.config.keep_alive, 9);
        assert_eq!(o.config.username.as_deref(), Some("user"));
        assert_eq!(o.config.password.as_deref(), Some(&b"pw"[..]));
        let will = o.config.will.unwrap();
        assert_eq!(will.message, Bytes::from_static(b"bye"));
        assert!(will.retain);
        assert!(!o.reconnect.enabled);
    }

    #[test]
    fn generated_ids_use_the_prefix() {
        let c = conn(&["-t", "x", "--id-prefix", "probe-"]);
        assert_eq!(
            client_id(&c, "midge-sub-"),
            format!("probe-{}", std::process::id())
        );
        let c = conn(&["-t", "x"]);
        assert!(client_id(&c, "midge-sub-").starts_with("midge-sub-"));
    }

    #[test]
    fn will_topic_with_wildcard_is_refused() {
        let c = conn(&["-t", "x", "--will-topic", "a/#", "--will-payload", "p"]);
        let (url, _) = broker(&c).unwrap();
        assert_eq!(connect_options(&c, url, "p").unwrap_err().exit, Exit::Usage);
    }
}
