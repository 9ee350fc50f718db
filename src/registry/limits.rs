//! Connection limits of `registry serve`, so idle or slow clients cannot hold its file
//! descriptors until nobody else gets in (docs/NODE-LAYOUT.md, "Limits").
//!
//! * **Idle timeout**: a connection that has not started a request (after the TLS handshake, or
//!   since its last response) within [`Limits::idle_timeout`] is closed.
//! * **Header timeout**: once the first byte of a request arrived, its whole head must arrive
//!   within [`Limits::header_timeout`] (one byte every few seconds does not keep it open); the
//!   TLS handshake has the same bound.
//! * **Header size**: a request head over [`Limits::max_header_bytes`] is answered 431.
//! * **Send timeout**: a response the client reads none of for [`Limits::send_timeout`] (its
//!   receive window stays full) is abandoned and the connection closed; a slow client that
//!   keeps reading, however slowly, is never cut.
//! * **Connection cap**: at most [`Limits::max_connections`] connections are open (handshakes
//!   included); a connection beyond it is closed at once (plain HTTP gets a 503 first), and the
//!   cap is lowered to what the open-files limit can hold.
//!
//! A request being answered (a blob streaming for minutes) is never timed out while the client
//! reads. The timeouts
//! live in [`Guarded`], the I/O wrapper every connection is read through: it knows whether
//! the connection waits for a request (idle), is receiving a head, or is busy answering one
//! ([`Watch`], moved to busy by the service and back to idle when the response body ends).

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// The limits; the defaults are the options' defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub idle_timeout: Duration,
    pub header_timeout: Duration,
    pub send_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            idle_timeout: Duration::from_secs(30),
            header_timeout: Duration::from_secs(15),
            send_timeout: Duration::from_secs(60),
            max_header_bytes: 32 * 1024,
            max_connections: 2048,
        }
    }
}

/// Descriptors kept aside from connections: the listener, logs, the index and password files.
const RESERVED_FDS: u64 = 64;

/// Raise the soft open-files limit to the hard one (as Go programs do at start); returns the
/// soft limit in force afterwards.
pub fn raise_nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 1024;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// How many connections `nofile` descriptors hold: each may use two (its socket and the blob
/// file it streams).
pub fn connections_for_fds(nofile: u64) -> usize {
    (nofile.saturating_sub(RESERVED_FDS) / 2).max(1) as usize
}

/// The open connections, at most `max`.
#[derive(Debug)]
pub struct Slots {
    open: AtomicUsize,
    max: usize,
}

/// One open connection; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot(Arc<Slots>);

impl Slots {
    pub fn new(max: usize) -> Arc<Slots> {
        Arc::new(Slots {
            open: AtomicUsize::new(0),
            max,
        })
    }

    /// A slot, or `None` when `max` connections are open.
    pub fn take(self: &Arc<Self>) -> Option<Slot> {
        self.open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.max).then_some(n + 1)
            })
            .ok()
            .map(|_| Slot(self.clone()))
    }

    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Counts events and says when to report them: at most once per `every` (the first one at
/// once), with how many happened since the last report. Keeps a flood out of the log.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    count: AtomicU64,
    last: Mutex<Option<Instant>>,
}

impl Throttle {
    pub fn new(every: Duration) -> Throttle {
        Throttle {
            every,
            count: AtomicU64::new(0),
            last: Mutex::new(None),
        }
    }

    /// One event; `Some(n)` when it is time to report the `n` events since the last report.
    pub fn hit(&self) -> Option<u64> {
        self.count.fetch_add(1, Ordering::AcqRel);
        let mut last = self.last.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if last.is_some_and(|t| now.duration_since(t) < self.every) {
            return None;
        }
        *last = Some(now);
        Some(self.count.swap(0, Ordering::AcqRel))
    }
}

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for a request to start.
    Idle,
    /// A request head is arriving.
    Head,
    /// A request is being answered.
    Busy,
}

#[derive(Debug)]
struct WatchState {
    phase: Phase,
    since: Instant,
    requests: u64,
    timed_out: Option<Phase>,
    /// The reader to wake when the connection turns idle (its deadline starts then).
    waker: Option<Waker>,
}

/// The phase of one connection, shared by its reader ([`Guarded`]) and its service.
#[derive(Debug)]
pub struct Watch(Mutex<WatchState>);

/// A request being answered; dropping it (the response body ended) makes the connection idle.
#[derive(Debug)]
pub struct Busy(Arc<Watch>);

impl Watch {
    pub fn new() -> Arc<Watch> {
        Arc::new(Watch(Mutex::new(WatchState {
            phase: Phase::Idle,
            since: Instant::now(),
            requests: 0,
            timed_out: None,
            waker: None,
        })))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, WatchState> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request head arrived whole: the connection is busy until the guard is dropped.
    pub fn request(self: &Arc<Self>) -> Busy {
        let mut s = self.state();
        s.phase = Phase::Busy;
        s.requests += 1;
        Busy(self.clone())
    }

    /// Requests started on this connection.
    pub fn requests(&self) -> u64 {
        self.state().requests
    }

    /// The phase whose timeout closed the connection, if one did.
    pub fn timed_out(&self) -> Option<Phase> {
        self.state().timed_out
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut s = self.0.state();
        s.phase = Phase::Idle;
        s.since = Instant::now();
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    }
}

/// A connection's I/O with the idle and header timeouts applied to its reads.
pub struct Guarded<IO> {
    io: IO,
    watch: Arc<Watch>,
    limits: Limits,
    timer: Pin<Box<Sleep>>,
    armed: Option<Instant>,
    /// Since when writes have made no progress, and the timer set for it.
    stalled: Option<Instant>,
    wtimer: Pin<Box<Sleep>>,
    _slot: Slot,
}

impl<IO> Guarded<IO> {
    pub fn new(io: IO, watch: Arc<Watch>, limits: Limits, slot: Slot) -> Guarded<IO> {
        Guarded {
            io,
            watch,
            limits,
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: None,
            stalled: None,
            wtimer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            _slot: slot,
        }
    }

    /// The read found no data: close on an expired deadline, else sleep until it.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let (phase, deadline) = {
            let mut s = self.watch.state();
            let limit = match s.phase {
                Phase::Idle => self.limits.idle_timeout,
                Phase::Head => self.limits.header_timeout,
                Phase::Busy => {
                    s.waker = Some(cx.waker().clone());
                    return Poll::Pending;
                }
            };
            (s.phase, s.since + limit)
        };
        if self.armed != Some(deadline) {
            self.timer.as_mut().reset(deadline);
            self.armed = Some(deadline);
        }
        if Instant::now() < deadline && self.timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.watch.state().timed_out = Some(phase);
        let what = match phase {
            Phase::Idle => format!("no request within {:?}", self.limits.idle_timeout),
            _ => format!(
                "request head not complete within {:?}",
                self.limits.header_timeout
            ),
        };
        Poll::Ready(Err(io::Error::new(io::ErrorKind::TimedOut, what)))
    }

    /// A write could not proceed: fail it once writes have made no progress for the send
    /// timeout, else wait (woken by the socket or by the timer).
    fn poll_stalled<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        let since = *self.stalled.get_or_insert_with(Instant::now);
        let deadline = since + self.limits.send_timeout;
        if self.wtimer.deadline() != deadline {
            self.wtimer.as_mut().reset(deadline);
        }
        if Instant::now() < deadline && self.wtimer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        self.watch.state().timed_out = Some(Phase::Busy);
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the client read nothing for {:?}", self.limits.send_timeout),
        )))
    }

    /// What a write returned: progress clears the stall, no progress may end it.
    fn wrote<T>(&mut self, r: Poll<io::Result<T>>, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending => self.poll_stalled(cx),
            r => {
                self.stalled = None;
                r
            }
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    let mut s = this.watch.state();
                    if s.phase == Phase::Idle {
                        s.phase = Phase::Head;
                        s.since = Instant::now();
                    }
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_deadline(cx),
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write(cx, buf);
        this.wrote(r, cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.wrote(r, cx)
    }
    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.io).poll_flush(cx);
        this.wrote(r, cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

/// A response body that keeps its connection busy until it ends (or is dropped).
pub struct TrackedBody {
    pub inner: axum::body::Body,
    pub busy: Busy,
}

impl hyper::body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;
    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }
    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }
    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn limits() -> Limits {
        Limits {
            idle_timeout: Duration::from_millis(300),
            header_timeout: Duration::from_millis(600),
            ..Limits::default()
        }
    }

    #[test]
    fn slots_cap_and_free() {
        let s = Slots::new(2);
        let a = s.take().unwrap();
        let _b = s.take().unwrap();
        assert!(s.take().is_none());
        drop(a);
        assert_eq!(s.open(), 1);
        assert!(s.take().is_some());
        assert_eq!(connections_for_fds(1024), 480);
        assert_eq!(connections_for_fds(10), 1);
    }

    #[test]
    fn throttle_reports_first_then_counts() {
        let t = Throttle::new(Duration::from_secs(3600));
        assert_eq!(t.hit(), Some(1));
        assert_eq!(t.hit(), None);
        assert_eq!(t.hit(), None);
    }

    #[tokio::test]
    async fn idle_and_slow_heads_time_out_busy_never() {
        // Idle: nothing arrives.
        let (a, _keep) = tokio::io::duplex(64);
        let w = Watch::new();
        let mut g = Guarded::new(a, w.clone(), limits(), Slots::new(9).take().unwrap());
        let e = g.read(&mut [0; 8]).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert_eq!(w.timed_out(), Some(Phase::Idle));
        // Slow head: one byte, then nothing; the header timeout counts from that byte.
        let (a, mut peer) = tokio::io::duplex(64);
        let w = Watch::new();
        let mut g = Guarded::new(a, w.clone(), limits(), Slots::new(9).take().unwrap());
        peer.write_all(b"G").await.unwrap();
        assert_eq!(g.read(&mut [0; 8]).await.unwrap(), 1);
        let t0 = Instant::now();
        g.read(&mut [0; 8]).await.unwrap_err();
        assert_eq!(w.timed_out(), Some(Phase::Head));
        assert!(t0.elapsed() >= Duration::from_millis(600));
        // Busy: no deadline until the response ends, then the idle one.
        let (a, _keep) = tokio::io::duplex(64);
        let w = Watch::new();
        let mut g = Guarded::new(a, w.clone(), limits(), Slots::new(9).take().unwrap());
        let busy = w.request();
        let read = tokio::spawn(async move { g.read(&mut [0; 8]).await.map_err(|e| e.kind()) });
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!read.is_finished());
        drop(busy);
        let t0 = Instant::now();
        assert_eq!(read.await.unwrap(), Err(io::ErrorKind::TimedOut));
        assert!(t0.elapsed() >= Duration::from_millis(300));
        assert_eq!(w.requests(), 1);
    }
}
