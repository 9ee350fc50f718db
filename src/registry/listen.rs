//! Accepting and serving connections for `registry serve`: the connection cap, the TLS
//! handshake (in each connection's own task, so a slow client never blocks the others), and one
//! HTTP/1.1 connection per client, read through [`Guarded`] so the limits of
//! [`super::limits`] apply. Graceful shutdown: stop accepting, close idle connections, let
//! requests in flight end.

use super::events::{Peer, ServerEvents};
use super::limits::{Guarded, Limits, Phase, Slot, Slots, Throttle, TrackedBody, Watch};
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::service::Service as _;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_native_tls::TlsAcceptor;

/// A plain or TLS connection.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_native_tls::TlsStream<TcpStream>>),
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// What a connection beyond the cap gets on plain HTTP before it is closed.
const BUSY_503: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
Content-Type: application/json\r\nContent-Length: 93\r\nConnection: close\r\n\r\n\
{\"errors\":[{\"code\":\"UNAVAILABLE\",\"message\":\"too many connections, retry later\",\"detail\":{}}]}";

/// Floods are logged at most this often (with a count).
const NOTICE_EVERY: Duration = Duration::from_secs(10);

/// What all connections share.
struct Ctx {
    app: Router,
    tls: Option<TlsAcceptor>,
    limits: Limits,
    events: Arc<dyn ServerEvents>,
    refused: Throttle,
    idle: Throttle,
    slow: Throttle,
    stalled: Throttle,
}

/// Accept on `tcp` and serve `app` until `shutdown` completes.
pub async fn serve<F>(
    tcp: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    limits: Limits,
    events: Arc<dyn ServerEvents>,
    shutdown: F,
) where
    F: Future<Output = ()> + Send + 'static,
{
    let ctx = Arc::new(Ctx {
        app,
        tls,
        limits,
        events,
        refused: Throttle::new(NOTICE_EVERY),
        idle: Throttle::new(NOTICE_EVERY),
        slow: Throttle::new(NOTICE_EVERY),
        stalled: Throttle::new(NOTICE_EVERY),
    });
    let slots = Slots::new(limits.max_connections);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = tcp.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    ctx.events.notice(&format!("accept failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Some(slot) = slots.take() else {
            refuse(&ctx, stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(
            ctx.clone(),
            stream,
            peer,
            slot,
            graceful.watcher(),
        ));
    }
    drop(tcp); // no new connections from here on
    graceful.shutdown().await;
}

/// Beyond the cap: a 503 if it fits the socket buffer now (plain HTTP), then close.
fn refuse(ctx: &Ctx, stream: TcpStream) {
    if ctx.tls.is_none() {
        let _ = stream.try_write(BUSY_503);
    }
    if let Some(n) = ctx.refused.hit() {
        ctx.events.notice(&format!(
            "refused {n} connection(s): {} are open (--max-connections; such notices come at \
             most every {}s)",
            ctx.limits.max_connections,
            NOTICE_EVERY.as_secs()
        ));
    }
}

async fn connection(
    ctx: Arc<Ctx>,
    stream: TcpStream,
    peer: SocketAddr,
    slot: Slot,
    watcher: Watcher,
) {
    let conn = match &ctx.tls {
        None => Conn::Plain(stream),
        Some(acc) => {
            match tokio::time::timeout(ctx.limits.header_timeout, acc.accept(stream)).await {
                Ok(Ok(s)) => Conn::Tls(Box::new(s)),
                Ok(Err(e)) => {
                    ctx.events
                        .notice(&format!("TLS handshake with {peer} failed: {e}"));
                    return;
                }
                Err(_) => {
                    ctx.events
                        .notice(&format!("TLS handshake with {peer} timed out"));
                    return;
                }
            }
        }
    };
    let watch = Watch::new();
    let io = TokioIo::new(Guarded::new(conn, watch.clone(), ctx.limits, slot));
    let app = hyper_util::service::TowerToHyperService::new(ctx.app.clone());
    let w = watch.clone();
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(Peer(peer)));
        let busy = w.request();
        let resp = app.call(req);
        async move {
            let resp = resp.await?;
            Ok::<_, std::convert::Infallible>(
                resp.map(|inner| axum::body::Body::new(TrackedBody { inner, busy })),
            )
        }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.header_read_timeout(None) // ours, in Guarded (hyper's would count idle time too)
        .max_header_size(ctx.limits.max_header_bytes);
    // An error here is the client going away or a timeout: nothing to report per connection.
    let _ = watcher.watch(http.serve_connection(io, svc)).await;
    match watch.timed_out() {
        Some(Phase::Idle) if watch.requests() == 0 => {
            if let Some(n) = ctx.idle.hit() {
                ctx.events.notice(&format!(
                    "closed {n} connection(s) that sent no request within {:?} (--idle-timeout)",
                    ctx.limits.idle_timeout
                ));
            }
        }
        Some(Phase::Head) => {
            if let Some(n) = ctx.slow.hit() {
                ctx.events.notice(&format!(
                    "closed {n} connection(s) whose request head did not arrive within {:?} \
                     (--header-timeout; last from {peer})",
                    ctx.limits.header_timeout
                ));
            }
        }
        Some(Phase::Busy) => {
            if let Some(n) = ctx.stalled.hit() {
                ctx.events.notice(&format!(
                    "closed {n} connection(s) whose client read none of its response for {:?} \
                     (--send-timeout; last from {peer})",
                    ctx.limits.send_timeout
                ));
            }
        }
        _ => {}
    }
}
