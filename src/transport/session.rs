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

/// SSH handshake over `stream`, host key check against known_hosts, authentication with the
/// credentials of `spec` as `peer.user`. The session is left blocking with the connect timeout.
/// Errors name `spec.name` (the inventory host) and start with `peer.label`.
pub(super) fn open_session<S: AsRawFd + 'static>(
    stream: S,
    peer: &Peer,
    spec: &ConnSpec,
    opts: &ConnectOpts,
) -> Result<Session, TransportError> {
    let name = &spec.name;
    let label = &peer.label;
    let unreachable = |msg: String| TransportError::Unreachable {
        host: name.clone(),
        msg: format!("{label}{msg}"),
    };
    let host_key = |msg: String| TransportError::HostKey {
        host: name.clone(),
        msg: format!("{label}{msg}"),
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
    sess.handshake()
        .map_err(|e| unreachable(format!("SSH handshake with {target}: {e}")))?;

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
