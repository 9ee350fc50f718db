//! What the server tells its owner: one record per answered request, notices, and the
//! peer address a connection carries into its requests. Implemented by the UI (domain code
//! never prints); shared by the listener and the request handler.

use std::net::SocketAddr;
use std::time::Duration;

/// One answered request, for the request log.
#[derive(Debug)]
pub struct RequestRecord<'a> {
    pub peer: SocketAddr,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    /// `Content-Length` of the response (the body is still streaming when this is reported).
    pub bytes: Option<u64>,
    /// Time to the response head.
    pub elapsed: Duration,
    pub user: Option<&'a str>,
}

/// What the server reports; implemented by the UI (domain code never prints).
pub trait ServerEvents: Send + Sync + 'static {
    fn request(&self, r: &RequestRecord<'_>);
    /// Index reloads, corrupt blobs, TLS handshake failures, ...
    fn notice(&self, msg: &str);
}

/// The connection's remote address, for the request log.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);
