//! Opening an SSH session to one server (a target or a jump host): TCP connect with
//! keepalive, the handshake with our cipher preference, the host key checked against
//! known_hosts, and authentication with key file, ssh-agent or password.

use super::known_hosts;
use super::spec::{ConnSpec, ConnectOpts};
use super::TransportError;
use ssh2::Session;
use std::io::ErrorKind;
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::io::{AsRawFd, RawFd};
use std::time::Duration;

/// Cipher preference (fast with AES-NI first), then libssh2's usual ones.
const CIPHERS: &str =
    "aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,\
aes128-ctr,aes192-ctr,aes256-ctr";
/// The SSH server a session is opened to: a target, or a jump host.
pub(super) struct Peer<'a> {
    /// Address and port, as known_hosts names them.
    pub host: &'a str,
    pub port: u16,
    pub user: &'a str,
    /// Prefix of error messages (empty for a target reached directly).
    pub label: String,
}

/// Resolve and connect, trying every address; keepalive and no-delay set.
pub(super) fn tcp_connect(host: &str, port: u16, opts: &ConnectOpts) -> Result<TcpStream, String> {
    let target = format!("{host}:{port}");
    let addrs: Vec<_> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve {target}: {e}"))?
        .collect();
    let mut last = format!("no address for {target}");
    for a in &addrs {
        match TcpStream::connect_timeout(a, opts.connect_timeout) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                set_keepalive(s.as_raw_fd(), opts.stall_timeout);
                return Ok(s);
            }
            Err(e) => last = format!("connect to {a}: {e}"),
        }
    }
    Err(last)
}

/// Why a session did not open; `dropped` when the server closed the connection before it
/// sent its banner, as OpenSSH does to connections past `MaxStartups` (worth another try).
#[derive(Debug)]
pub(super) struct OpenError {
    pub err: TransportError,
    pub dropped: bool,
}

impl From<TransportError> for OpenError {
    fn from(err: TransportError) -> Self {
        OpenError {
            err,
            dropped: false,
        }
    }
}

impl From<OpenError> for TransportError {
    fn from(e: OpenError) -> Self {
        e.err
    }
}

/// libssh2's codes for a socket that closed or failed while the banner was awaited.
const LIBSSH2_ERROR_BANNER_RECV: i32 = -2;
const LIBSSH2_ERROR_SOCKET_DISCONNECT: i32 = -13;
const LIBSSH2_ERROR_SOCKET_RECV: i32 = -43;

/// SSH handshake over `stream`, host key check against known_hosts, authentication with the
/// credentials of `spec` as `peer.user`. The session is left blocking with the connect timeout.
/// Errors name `spec.name` (the inventory host) and start with `peer.label`.
pub(super) fn open_session<S: AsRawFd + 'static>(
    stream: S,
    peer: &Peer,
    spec: &ConnSpec,
    opts: &ConnectOpts,
) -> Result<Session, OpenError> {
    let name = &spec.name;
    let label = &peer.label;
    let unreachable = |msg: String| TransportError::Unreachable {
        host: name.clone(),
        msg: format!("{label}{msg}"),
    };
    let host_key = |msg: String| {
        OpenError::from(TransportError::HostKey {
            host: name.clone(),
            msg: format!("{label}{msg}"),
        })
    };
    let target = format!("{}:{}", peer.host, peer.port);

    // What known_hosts says decides which host key algorithms we offer.
    let kh_text = match std::fs::read_to_string(&opts.known_hosts) {
        Ok(t) => t,
        Err(e) if e.kind() == ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(host_key(format!(
                "cannot read {}: {e}",
                opts.known_hosts.display()
            )))
        }
    };
    let entries = known_hosts::entries_for(&kh_text, peer.host, peer.port);

    let mut sess = Session::new().map_err(|e| unreachable(format!("libssh2: {e}")))?;
    sess.set_tcp_stream(stream);
    sess.set_timeout(opts.connect_timeout.as_millis().min(u32::MAX as u128) as u32);
    if let Some(pref) = entries.algorithm_pref() {
        let _ = sess.method_pref(ssh2::MethodType::HostKey, &pref);
    }
    // Bulk speed: AES-GCM (AES-NI) first; libssh2 drops names it does not support.
    for m in [ssh2::MethodType::CryptCs, ssh2::MethodType::CryptSc] {
        let _ = sess.method_pref(m, CIPHERS);
    }
    if let Err(e) = sess.handshake() {
        // No SSH banner arrived: nothing, or OpenSSH's "Exceeded MaxStartups" line instead.
        let no_banner = sess
            .banner()
            .map_or(true, |b| b.trim().is_empty() || b.contains("MaxStartups"));
        let dropped = no_banner
            && matches!(
                e.code(),
                ssh2::ErrorCode::Session(
                    LIBSSH2_ERROR_BANNER_RECV
                        | LIBSSH2_ERROR_SOCKET_DISCONNECT
                        | LIBSSH2_ERROR_SOCKET_RECV
                )
            );
        return Err(OpenError {
            err: unreachable(format!("SSH handshake with {target}: {e}")),
            dropped,
        });
    }

    // Host key check.
    let (blob, _) = sess
        .host_key()
        .ok_or_else(|| host_key("server sent no host key".into()))?;
    let blob = blob.to_vec();
    let lookup = known_hosts::lookup_name(peer.host, peer.port);
    let offered = known_hosts::fingerprint(&blob);
    let kh_path = opts.known_hosts.display();
    if entries.is_revoked(&blob) {
        return Err(host_key(format!(
            "host key {offered} of {lookup} is marked @revoked in {kh_path}"
        )));
    }
    if !entries.trusts(&blob) {
        let known: Vec<_> = entries.trusted().collect();
        if !known.is_empty() {
            let list = known
                .iter()
                .map(|k| {
                    format!(
                        "{} {} ({kh_path}:{})",
                        k.key_type,
                        known_hosts::fingerprint(&k.blob),
                        k.line
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
            return Err(host_key(format!(
                "HOST KEY CHANGED for {lookup}: it offers {} {offered}, known_hosts has {list}. \
                 This may be an attack; if the host was really reinstalled, remove the old \
                 line from {kh_path}",
                known_hosts::blob_key_type(&blob).unwrap_or_default()
            )));
        }
        if !opts.accept_new_host_keys {
            return Err(host_key(format!(
                "unknown host key for {lookup} ({} {offered}) not in {kh_path}; \
                 check the fingerprint and rerun with --accept-new-host-keys to record it",
                known_hosts::blob_key_type(&blob).unwrap_or_default()
            )));
        }
        known_hosts::append(&opts.known_hosts, peer.host, peer.port, &blob)
            .map_err(|e| host_key(format!("cannot record the host key in {kh_path}: {e}")))?;
    }

    authenticate(&sess, peer.user, spec, opts).map_err(|msg| TransportError::Auth {
        host: name.clone(),
        msg: format!("{label}{msg}"),
    })?;
    Ok(sess)
}

/// Run `attempt` again while it fails with a connection the server dropped before its banner
/// (`MaxStartups` on a busy host): exponential backoff from 50 ms to 2 s with jitter, at most
/// `DROP_TRIES` tries and never past three connect timeouts in all. The last error says how
/// often the server dropped the connection.
pub(super) fn with_drop_retries<T>(
    opts: &ConnectOpts,
    mut attempt: impl FnMut() -> Result<T, OpenError>,
) -> Result<T, TransportError> {
    const DROP_TRIES: u32 = 10;
    let deadline = std::time::Instant::now() + opts.connect_timeout * 3;
    let mut delay = Duration::from_millis(50);
    let mut seed = jitter_seed();
    for n in 1.. {
        match attempt() {
            Ok(t) => return Ok(t),
            Err(e) if !e.dropped => return Err(e.err),
            Err(e) => {
                // Sleep between half and all of `delay` (full jitter spreads a burst out).
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let pause = delay.mul_f64(0.5 + (seed % 1000) as f64 / 2000.0);
                if n >= DROP_TRIES || std::time::Instant::now() + pause > deadline {
                    return Err(with_hint(e.err, n));
                }
                std::thread::sleep(pause);
                delay = (delay * 2).min(Duration::from_secs(2));
            }
        }
    }
    unreachable!("the loop returns")
}

/// A seed that differs between threads and runs (no cryptographic need).
fn jitter_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    h.finish() | 1
}

fn with_hint(e: TransportError, tries: u32) -> TransportError {
    match e {
        TransportError::Unreachable { host, msg } => TransportError::Unreachable {
            host,
            msg: format!(
                "{msg} (the server closed the connection before its banner on all {tries} \
                 tries: its sshd may refuse bursts of connections, see MaxStartups)"
            ),
        },
        e => e,
    }
}

/// TCP keepalive and TCP_USER_TIMEOUT, so a vanished peer (cable cut, node gone without a
/// RST) ends the session instead of hanging it.
fn set_keepalive(fd: RawFd, user_timeout: Duration) {
    // SAFETY: `fd` is the open socket of the TcpStream the caller holds; `v` is a live i32
    // and the length passed is its size, as setsockopt(2) requires for these int options.
    let set = |level: i32, opt: i32, v: i32| unsafe {
        libc::setsockopt(
            fd,
            level,
            opt,
            &v as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, 15);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, 5);
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 4);
    let ms = user_timeout.as_millis().min(i32::MAX as u128) as i32;
    set(libc::IPPROTO_TCP, libc::TCP_USER_TIMEOUT, ms);
}

/// Key file (encrypted too), ssh-agent, then password — whatever the spec provides.
fn authenticate(
    sess: &Session,
    user: &str,
    spec: &ConnSpec,
    opts: &ConnectOpts,
) -> Result<(), String> {
    let mut tried = Vec::new();
    if let Some(key) = &spec.key_file {
        if !key.exists() {
            tried.push(format!("key file {}: not found", key.display()));
        } else {
            match sess.userauth_pubkey_file(user, None, key, spec.key_passphrase.as_deref()) {
                Ok(()) if sess.authenticated() => return Ok(()),
                Ok(()) => tried.push(format!("key {}: not accepted", key.display())),
                Err(e) => {
                    let hint = if spec.key_passphrase.is_none() && key_is_encrypted(key) {
                        " (the key is encrypted: set darkport_ssh_key_passphrase or DARKPORT_SSH_KEY_PASSPHRASE)"
                    } else {
                        ""
                    };
                    tried.push(format!("key {}: {}{hint}", key.display(), e.message()))
                }
            }
        }
    }
    if let Some(sock) = &opts.agent_socket {
        if spec.password.is_none() || spec.key_file.is_none() {
            match try_agent(sess, user, sock) {
                Ok(()) => return Ok(()),
                Err(e) => tried.push(format!("ssh-agent {}: {e}", sock.display())),
            }
        }
    }
    if let Some(pw) = &spec.password {
        match sess.userauth_password(user, pw) {
            Ok(()) if sess.authenticated() => return Ok(()),
            Ok(()) => tried.push("password: not accepted".into()),
            Err(e) => tried.push(format!("password: {}", e.message())),
        }
    }
    if tried.is_empty() {
        tried.push(
            "no credentials: set ansible_ssh_private_key_file or ansible_password, or run an ssh-agent"
                .into(),
        );
    }
    Err(format!("as user {user}: {}", tried.join("; ")))
}

fn key_is_encrypted(path: &std::path::Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    if text.contains("ENCRYPTED") {
        return true;
    }
    // openssh-key-v1: the cipher name follows the magic; "none" = not encrypted.
    let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map(|raw| raw.len() > 19 && !raw[19..].starts_with(b"none"))
        .unwrap_or(false)
}

fn try_agent(sess: &Session, user: &str, sock: &std::path::Path) -> Result<(), String> {
    let mut agent = sess.agent().map_err(|e| e.message().to_string())?;
    agent
        .set_identity_path(sock)
        .map_err(|e| e.message().to_string())?;
    agent.connect().map_err(|e| e.message().to_string())?;
    agent
        .list_identities()
        .map_err(|e| e.message().to_string())?;
    let ids = agent.identities().map_err(|e| e.message().to_string())?;
    if ids.is_empty() {
        return Err("the agent holds no keys".into());
    }
    for id in &ids {
        if agent.userauth(user, id).is_ok() && sess.authenticated() {
            let _ = agent.disconnect();
            return Ok(());
        }
    }
    let _ = agent.disconnect();
    Err(format!("none of its {} keys was accepted", ids.len()))
}
