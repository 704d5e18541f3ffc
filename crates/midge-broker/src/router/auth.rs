//! [`Auth`]: the authentication and authorisation hook the router calls at
//! CONNECT, PUBLISH and SUBSCRIBE, and [`AllowAll`], the permissive default.

use midge_codec::ConnectReturnCode;

/// Decides who may connect, publish and subscribe.
///
/// The router calls it synchronously, so an implementation must answer from
/// what it holds (a table loaded beforehand, say); it must not block.
pub trait Auth {
    /// Called for every CONNECT before any session state is touched. An
    /// `Err` is sent as the CONNACK return code; `NotAuthorized` (0x05) and
    /// `BadUsernameOrPassword` (0x04) are the usual answers. An `Err` with
    /// `Accepted` is treated as `NotAuthorized`.
    ///
    /// # Errors
    /// The return code to refuse the connection with.
    fn connect(
        &mut self,
        client_id: &str,
        username: Option<&str>,
        password: Option<&[u8]>,
    ) -> Result<(), ConnectReturnCode>;

    /// Decides a CONNECT whose user name comes from a client certificate
    /// the transport has verified (see
    /// [`ConnectRequest::username_from_certificate`](crate::ConnectRequest::username_from_certificate)):
    /// the certificate is the credential, so no password is involved. The
    /// default asks [`Auth::connect`] with that name and no password, which
    /// accepts nothing an implementation with passwords would not; an
    /// implementation that trusts its certificate authority overrides it.
    ///
    /// # Errors
    /// As [`Auth::connect`].
    fn connect_certified(
        &mut self,
        client_id: &str,
        username: &str,
    ) -> Result<(), ConnectReturnCode> {
        self.connect(client_id, Some(username), None)
    }

    /// Whether the client may publish to `topic`. A denied message has been
    /// acknowledged by the session as usual (MQTT 3.1.1 has no way to say
    /// no); the router drops it and counts it in
    /// [`RouterStats::denied_publishes`](crate::router::RouterStats::denied_publishes).
    fn may_publish(&self, client_id: &str, username: Option<&str>, topic: &str) -> bool;

    /// Whether the client may subscribe to `filter` (the whole string, a
    /// `$share/...` prefix included). A denied filter is answered with the
    /// SUBACK failure code 0x80.
    fn may_subscribe(&self, client_id: &str, username: Option<&str>, filter: &str) -> bool;
}

/// Lets everyone connect, publish and subscribe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AllowAll;

impl Auth for AllowAll {
    fn connect(
        &mut self,
        _client_id: &str,
        _username: Option<&str>,
        _password: Option<&[u8]>,
    ) -> Result<(), ConnectReturnCode> {
        Ok(())
    }

    fn may_publish(&self, _client_id: &str, _username: Option<&str>, _topic: &str) -> bool {
        true
    }

    fn may_subscribe(&self, _client_id: &str, _username: Option<&str>, _filter: &str) -> bool {
        true
    }
}
