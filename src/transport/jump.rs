//! Jump hosts (OpenSSH `ProxyJump`) for the ssh2 transport.
//!
//! One SSH session per jump host (and credentials) for the whole run, shared by every target
//! behind it. A target's own SSH session runs over a `direct-tcpip` channel of that session:
//! libssh2 needs a socket, so the target session gets one end of a Unix socketpair, and one
//! pump thread per jump host drives the jump session (non-blocking, `poll(2)`) and copies
//! between the other ends and the channels. The jump session ends when the last target
//! session over it is gone.

use super::session::{open_session, tcp_connect, with_drop_retries, Peer};
use super::spec::{ConnSpec, ConnectOpts, JumpHost};
use super::TransportError;
use ssh2::{BlockDirections, Channel, Session};
use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::io::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// A jump host session, driven by its pump thread. Target sessions hold an `Arc` of it.
pub struct Bastion {
    requests: Mutex<Sender<Request>>,
    /// Written to (one byte) to wake the pump thread for a new request.
    wake: UnixStream,
    dead: Arc<AtomicBool>,
    label: String,
}

/// "Open a channel to host:port and give me my end of it."
struct Request {
    host: String,
    port: u16,
    reply: Sender<Result<UnixStream, String>>,
}

/// What identifies a shareable jump session: where, as whom, with which credentials and
/// which known_hosts.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    host: String,
    port: u16,
    user: String,
    key_file: Option<PathBuf>,
    password: Option<String>,
    known_hosts: PathBuf,
}

/// A jump host's slot: the live session, or the last failure to open one (reused for the
/// connect timeout, so hundreds of targets behind an unreachable jump host fail at once
/// instead of each waiting for it in turn).
enum Slot {
    Empty,
    Up(Weak<Bastion>),
    Failed(TransportError, Instant),
}

fn slots() -> &'static Mutex<HashMap<Key, Arc<Mutex<Slot>>>> {
    static SLOTS: OnceLock<Mutex<HashMap<Key, Arc<Mutex<Slot>>>>> = OnceLock::new();
    SLOTS.get_or_init(Default::default)
}

/// A socket to `spec.host:spec.port` through `jump`, and the jump session it depends on.
pub fn open(
    spec: &ConnSpec,
    jump: &JumpHost,
    opts: &ConnectOpts,
) -> Result<(UnixStream, Arc<Bastion>), TransportError> {
    let user = jump.user.clone().unwrap_or_else(|| spec.user.clone());
    let key = Key {
        host: jump.host.clone(),
        port: jump.port,
        user: user.clone(),
        key_file: spec.key_file.clone(),
        password: spec.password.clone(),
        known_hosts: opts.known_hosts.clone(),
    };
    let slot = slots()
        .lock()
        .unwrap()
        .entry(key)
        .or_insert_with(|| Arc::new(Mutex::new(Slot::Empty)))
        .clone();
    let bastion = {
        let mut slot = slot.lock().unwrap();
        let live = match &*slot {
            Slot::Up(w) => w.upgrade().filter(|b| !b.dead.load(Ordering::SeqCst)),
            Slot::Failed(e, at) if at.elapsed() < opts.connect_timeout => {
                return Err(renamed(e, &spec.name))
            }
            _ => None,
        };
        match live {
            Some(b) => b,
            None => match Bastion::connect(spec, jump, &user, opts) {
                Ok(b) => {
                    *slot = Slot::Up(Arc::downgrade(&b));
                    b
                }
                Err(e) => {
                    *slot = Slot::Failed(renamed(&e, &spec.name), Instant::now());
                    return Err(e);
                }
            },
        }
    };
    let stream = bastion
        .channel(&spec.host, spec.port, opts.connect_timeout)
        .map_err(|msg| TransportError::Unreachable {
            host: spec.name.clone(),
            msg: format!("{}: {msg}", bastion.label),
        })?;
    Ok((stream, bastion))
}

/// The same error for another host behind the same jump host.
fn renamed(e: &TransportError, host: &str) -> TransportError {
    let host = host.to_string();
    match e {
        TransportError::Unreachable { msg, .. } => TransportError::Unreachable {
            host,
            msg: msg.clone(),
        },
        TransportError::Auth { msg, .. } => TransportError::Auth {
            host,
            msg: msg.clone(),
        },
        TransportError::HostKey { msg, .. } => TransportError::HostKey {
            host,
            msg: msg.clone(),
        },
        other => TransportError::Unreachable {
            host,
            msg: other.to_string(),
        },
    }
}

impl Bastion {
    fn connect(
        spec: &ConnSpec,
        jump: &JumpHost,
        user: &str,
        opts: &ConnectOpts,
    ) -> Result<Arc<Bastion>, TransportError> {
        let label = format!("jump host {user}@{}:{}", jump.host, jump.port);
        let peer = Peer {
            host: &jump.host,
            port: jump.port,
            user,
            label: format!("{label}: "),
        };
        // A bastion takes every target's connection: bursts past its MaxStartups are retried.
        let (sess, fd) = with_drop_retries(opts, || {
            let tcp = tcp_connect(&jump.host, jump.port, opts).map_err(|msg| {
                TransportError::Unreachable {
                    host: spec.name.clone(),
                    msg: format!("{label}: {msg}"),
                }
            })?;
            let fd = tcp.as_raw_fd();
            Ok((open_session(tcp, &peer, spec, opts)?, fd))
        })?;
        sess.set_keepalive(false, 15);
        sess.set_timeout(0);
        sess.set_blocking(false);
        let (wake_rx, wake) = UnixStream::pair().map_err(|e| TransportError::Failed {
            host: spec.name.clone(),
            op: "socketpair".into(),
            msg: e.to_string(),
        })?;
        let _ = wake_rx.set_nonblocking(true);
        let (tx, rx) = mpsc::channel();
        let dead = Arc::new(AtomicBool::new(false));
        let pump = Pump {
            sess,
            fd,
            requests: rx,
            wake: wake_rx,
            opening: None,
            pipes: Vec::new(),
            dead: dead.clone(),
        };
        std::thread::Builder::new()
            .name(format!("jump {}", jump.host))
            .spawn(move || pump.run())
            .map_err(|e| TransportError::Failed {
                host: spec.name.clone(),
                op: "starting the jump host thread".into(),
                msg: e.to_string(),
            })?;
        Ok(Arc::new(Bastion {
            requests: Mutex::new(tx),
            wake,
            dead,
            label,
        }))
    }

    /// Ask the pump thread for a channel to `host:port`; wait at most `timeout`.
    fn channel(&self, host: &str, port: u16, timeout: Duration) -> Result<UnixStream, String> {
        let (reply, answer) = mpsc::channel();
        let req = Request {
            host: host.to_string(),
            port,
            reply,
        };
        let lost = || "the jump host session is gone".to_string();
        self.requests
            .lock()
            .unwrap()
            .send(req)
            .map_err(|_| lost())?;
        let _ = (&self.wake).write(&[1]);
        match answer.recv_timeout(timeout) {
            Ok(r) => r.map_err(|e| format!("cannot open a channel to {host}:{port}: {e}")),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
                "no channel to {host}:{port} within {}s",
                timeout.as_secs()
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(lost()),
        }
    }
}

/// One forwarded connection: a channel and our end of the target session's socket.
struct Pipe {
    ch: Channel,
    sock: UnixStream,
    /// Target → jump host bytes not yet accepted by the channel.
    up: Vec<u8>,
    up_at: usize,
    /// Jump host → target bytes not yet accepted by the socket.
    down: Vec<u8>,
    down_at: usize,
    sock_eof: bool,
    eof_sent: bool,
    ch_eof: bool,
    sock_shut: bool,
    /// Broken or finished: close the channel, then drop.
    closing: bool,
}

const BUF: usize = 64 * 1024;

impl Pipe {
    /// Move what can move without blocking; true when something did.
    fn step(&mut self, buf: &mut [u8]) -> bool {
        if self.closing {
            return false;
        }
        let mut moved = false;
        // target -> channel
        if self.up_at == self.up.len() && !self.sock_eof {
            match self.sock.read(buf) {
                Ok(0) => {
                    self.sock_eof = true;
                    moved = true;
                }
                Ok(n) => {
                    self.up.clear();
                    self.up.extend_from_slice(&buf[..n]);
                    self.up_at = 0;
                    moved = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => self.sock_eof = true,
            }
        }
        if self.up_at < self.up.len() {
            match self.ch.write(&self.up[self.up_at..]) {
                Ok(n) => {
                    self.up_at += n;
                    moved |= n > 0;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {
                    self.closing = true;
                    return true;
                }
            }
        } else if self.sock_eof && !self.eof_sent {
            match self.ch.send_eof() {
                Ok(()) => {
                    self.eof_sent = true;
                    moved = true;
                }
                Err(e) if io_again(&e) => {}
                Err(_) => self.eof_sent = true,
            }
        }
        // channel -> target
        if self.down_at == self.down.len() && !self.ch_eof {
            match self.ch.read(buf) {
                Ok(0) => {
                    if self.ch.eof() {
                        self.ch_eof = true;
                        moved = true;
                    }
                }
                Ok(n) => {
                    self.down.clear();
                    self.down.extend_from_slice(&buf[..n]);
                    self.down_at = 0;
                    moved = true;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => {
                    self.closing = true;
                    return true;
                }
            }
        }
        if self.down_at < self.down.len() {
            match self.sock.write(&self.down[self.down_at..]) {
                Ok(n) => {
                    self.down_at += n;
                    moved |= n > 0;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                // The target session is gone.
                Err(_) => {
                    self.closing = true;
                    return true;
                }
            }
        } else if self.ch_eof && !self.sock_shut {
            let _ = self.sock.shutdown(std::net::Shutdown::Write);
            self.sock_shut = true;
            moved = true;
        }
        if self.sock_eof && self.eof_sent && self.sock_shut {
            self.closing = true;
            moved = true;
        }
        moved
    }

    /// Poll events wanted on our socket end.
    fn events(&self) -> i16 {
        let mut ev = 0;
        if !self.closing && self.up_at == self.up.len() && !self.sock_eof {
            ev |= libc::POLLIN;
        }
        if !self.closing && self.down_at < self.down.len() {
            ev |= libc::POLLOUT;
        }
        ev
    }
}

fn io_again(e: &ssh2::Error) -> bool {
    e.code() == ssh2::ErrorCode::Session(-37)
}

struct Pump {
    sess: Session,
    fd: RawFd,
    requests: Receiver<Request>,
    wake: UnixStream,
    /// The channel being opened (libssh2 opens one direct-tcpip channel at a time).
    opening: Option<Request>,
    pipes: Vec<Pipe>,
    dead: Arc<AtomicBool>,
}

impl Pump {
    fn run(mut self) {
        let mut buf = vec![0u8; BUF];
        let mut queue: Vec<Request> = Vec::new();
        let mut no_more_requests = false;
        loop {
            loop {
                match self.requests.try_recv() {
                    Ok(r) => queue.push(r),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        no_more_requests = true;
                        break;
                    }
                }
            }
            if self.opening.is_none() && !queue.is_empty() {
                self.opening = Some(queue.remove(0));
            }
            if no_more_requests && self.opening.is_none() && self.pipes.is_empty() {
                break;
            }
            // Move data until nothing moves: a read on one channel may have queued packets of
            // another one inside libssh2, which poll(2) cannot see.
            loop {
                let mut moved = self.open_step();
                for p in &mut self.pipes {
                    moved |= p.step(&mut buf);
                }
                // A finished pipe stays until its channel close went out.
                self.pipes
                    .retain_mut(|p| !p.closing || matches!(p.ch.close(), Err(e) if io_again(&e)));
                if !moved {
                    break;
                }
            }
            if let Err(e) = self.sess.keepalive_send() {
                if !io_again(&e) {
                    self.fail(&format!("jump host session lost: {e}"), &mut queue);
                    return;
                }
            }
            if !self.wait() {
                self.fail("jump host connection closed", &mut queue);
                return;
            }
        }
        self.sess.set_blocking(true);
        self.sess.set_timeout(1000);
        let _ = self.sess.disconnect(None, "darkport done", None);
    }

    /// Try to open the requested channel; true when it was answered.
    fn open_step(&mut self) -> bool {
        let Some(req) = &self.opening else {
            return false;
        };
        let answer = match self.sess.channel_direct_tcpip(&req.host, req.port, None) {
            Err(e) if io_again(&e) => return false,
            Err(e) => Err(e.message().to_string()),
            Ok(ch) => match UnixStream::pair() {
                Err(e) => Err(format!("socketpair: {e}")),
                Ok((mine, theirs)) => {
                    let _ = mine.set_nonblocking(true);
                    self.pipes.push(Pipe {
                        ch,
                        sock: mine,
                        up: Vec::new(),
                        up_at: 0,
                        down: Vec::new(),
                        down_at: 0,
                        sock_eof: false,
                        eof_sent: false,
                        ch_eof: false,
                        sock_shut: false,
                        closing: false,
                    });
                    Ok(theirs)
                }
            },
        };
        let req = self.opening.take().unwrap();
        // The requester may have given up (timeout): then the pipe just ends.
        let _ = req.reply.send(answer);
        true
    }

    /// Wait for the jump host socket, a target socket or a new request (at most 1 s). False
    /// when the jump host connection is closed.
    fn wait(&mut self) -> bool {
        let mut ev = libc::POLLIN;
        if matches!(
            self.sess.block_directions(),
            BlockDirections::Outbound | BlockDirections::Both
        ) {
            ev |= libc::POLLOUT;
        }
        let mut fds = vec![
            libc::pollfd {
                fd: self.fd,
                events: ev,
                revents: 0,
            },
            libc::pollfd {
                fd: self.wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // Only sockets we wait on: a closed one would report its hang-up forever.
        for p in self.pipes.iter().filter(|p| p.events() != 0) {
            fds.push(libc::pollfd {
                fd: p.sock.as_raw_fd(),
                events: p.events(),
                revents: 0,
            });
        }
        // A channel being opened or closed advances only by retrying.
        let ms = if self.opening.is_some() || self.pipes.iter().any(|p| p.closing) {
            10
        } else {
            1000
        };
        // SAFETY: `fds` is a live Vec of initialised pollfds and the length passed is its
        // length. The count poll returns is not needed: every pipe is pumped again after the
        // wait (timeout and EINTR included) and `revents` is read below.
        let _ = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        let mut drain = [0u8; 64];
        while matches!((&self.wake).read(&mut drain), Ok(n) if n > 0) {}
        fds[0].revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) == 0
    }

    /// The jump session died: fail what waits, end every forwarded connection.
    fn fail(&mut self, msg: &str, queue: &mut Vec<Request>) {
        self.dead.store(true, Ordering::SeqCst);
        for r in self.opening.take().into_iter().chain(queue.drain(..)) {
            let _ = r.reply.send(Err(msg.to_string()));
        }
        // Dropping our socket ends makes every target session see its connection close.
        self.pipes.clear();
    }
}
