//! Remote execution: a [`Transport`] per host (SSH via `ssh2`, or `local`), one session for
//! a whole run. Everything darkport does on a node goes through this trait, so a system-OpenSSH
//! backend can be added behind it if measurements ever demand it.

pub mod jump;
pub mod known_hosts;
pub mod local;
mod session;
pub mod spec;
pub mod ssh;

pub use spec::{ConnSpec, ConnectOpts, Connection, JumpHost, DEFAULT_FORKS};

use local::LocalTransport;
use ssh::SshTransport;

use std::io::{Read, Write};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The host could not be reached or the session died: the host counts as unreachable.
    #[error("host {host} is unreachable: {msg}")]
    Unreachable { host: String, msg: String },
    #[error("authentication to {host} failed: {msg}")]
    Auth { host: String, msg: String },
    #[error("host key of {host} is not trusted: {msg}")]
    HostKey { host: String, msg: String },
    #[error("command on {host} timed out after {secs:.1}s: {cmd}")]
    Timeout {
        host: String,
        cmd: String,
        secs: f64,
    },
    #[error("{op} on {host} failed: {msg}")]
    Failed {
        host: String,
        op: String,
        msg: String,
    },
    #[error("{op} on {host}: i/o error")]
    Io {
        host: String,
        op: String,
        #[source]
        source: std::io::Error,
    },
}

impl TransportError {
    /// True when the host must be treated as unreachable for the rest of the run.
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            TransportError::Unreachable { .. }
                | TransportError::Auth { .. }
                | TransportError::HostKey { .. }
        )
    }
}

/// Privilege escalation for one command (`become`): via `sudo`, optionally with a password.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Become {
    /// Target user (`ansible_become_user`, default root).
    pub user: Option<String>,
    /// Password fed to `sudo -S` (`ansible_become_password`).
    pub password: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct ExecOpts {
    /// Bytes written to the command's stdin, then stdin is closed.
    pub stdin: Option<Vec<u8>>,
    /// Kill the command (and report [`TransportError::Timeout`]) after this long.
    pub timeout: Option<Duration>,
    pub become_: Option<Become>,
    /// Extra environment for the command (exported in the remote shell).
    pub env: Vec<(String, String)>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: i32,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.exit_code == 0
    }
    pub fn stdout_str(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr_str(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

#[derive(Clone, Debug, Default)]
pub struct UploadOpts {
    /// File mode of the final file (octal bits), if set.
    pub mode: Option<u32>,
    /// Expected sha256 of the content, checked on the node before the rename into place.
    /// When `None`, the digest is computed while sending and still checked on the node.
    pub sha256: Option<crate::digest::Digest>,
    pub become_: Option<Become>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UploadReport {
    /// Bytes actually sent (less than the file size when an interrupted upload resumed).
    pub bytes_sent: u64,
    /// Bytes already present on the node from an earlier interrupted attempt.
    pub resumed_from: u64,
}

/// One open connection to one host. Implementations keep a single session for the whole
/// run; methods take `&mut self` so one thread drives one session.
pub trait Transport: Send {
    /// Inventory name of the host this transport talks to.
    fn host(&self) -> &str;

    /// Run `cmd` through the node's POSIX shell (`sh -c`).
    fn exec(&mut self, cmd: &str, opts: &ExecOpts) -> Result<ExecOutput, TransportError>;

    /// Run `cmd` with its stdin streamed from `stdin` as the command reads it (never held
    /// whole in memory) and its stdout handed to `stdout` as it arrives; returns the exit code
    /// and stderr, as the login user (no become). Meant for bulk data: a run that moves nothing
    /// for the stall timeout fails.
    fn exec_streaming(
        &mut self,
        cmd: &str,
        stdin: &mut dyn Read,
        stdout: &mut dyn Write,
    ) -> Result<(i32, Vec<u8>), TransportError>;

    /// Stream `size` bytes from `src` to `dest` on the node: written to `dest.part`, resumed if
    /// a partial `.part` exists, sha256-checked on the node, then renamed into place.
    fn upload(
        &mut self,
        src: &mut dyn ReadSeek,
        size: u64,
        dest: &str,
        opts: &UploadOpts,
    ) -> Result<UploadReport, TransportError>;

    /// Stream the remote file `src` into `dest`; returns the byte count.
    fn download(&mut self, src: &str, dest: &mut dyn Write) -> Result<u64, TransportError>;
}

/// `Read + Seek`, so an interrupted upload can resume from an offset.
pub trait ReadSeek: Read + std::io::Seek + Send {}
impl<T: Read + std::io::Seek + Send> ReadSeek for T {}

/// Quote a string for a POSIX shell (single quotes, `'` as `'\''`).
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_./=:@,+%".contains(&c))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// Shell that writes the command's stdin to `target` (a quoted path or `"$var"`) and fails,
/// removing it, unless exactly `len` bytes arrived. A controller killed while it sends closes
/// the channel, the remote `cat` then simply sees the input end: without this check a short
/// file would go on to be renamed into place as if complete.
pub fn stdin_to_file(target: &str, len: usize) -> String {
    format!(
        "{{ cat > {target} && [ \"$(($(wc -c < {target})))\" = {len} ]; }} || \
         {{ rm -f {target}; echo \"input for {target} ended early\" >&2; false; }}"
    )
}

/// Wrap `cmd` for `become` via sudo. With a password, sudo reads it from stdin (`-S`) and the
/// caller must prepend `password\n` to the command's stdin; `-p ''` keeps the prompt out of stderr.
pub fn become_wrap(cmd: &str, b: &Become) -> String {
    let user = b.user.as_deref().unwrap_or("root");
    let flag = if b.password.is_some() {
        "-S -p ''"
    } else {
        "-n"
    };
    format!(
        "sudo {flag} -H -u {} -- /bin/sh -c {}",
        shell_quote(user),
        shell_quote(cmd)
    )
}

/// Prefix `export K=V;` lines for an environment.
pub fn env_prefix(env: &[(String, String)]) -> String {
    env.iter()
        .map(|(k, v)| format!("export {k}={}; ", shell_quote(v)))
        .collect()
}

/// Open the one session this run uses for `spec`.
pub fn connect(spec: &ConnSpec, opts: &ConnectOpts) -> Result<Box<dyn Transport>, TransportError> {
    match spec.connection {
        Connection::Local => Ok(Box::new(LocalTransport::new(&spec.name))),
        Connection::Ssh => {
            // The host's own ssh options (`ansible_ssh_common_args`) win over the run's.
            let mut own;
            let opts = if spec.known_hosts.is_some() || spec.accept_new_host_keys.is_some() {
                own = opts.clone();
                if let Some(k) = &spec.known_hosts {
                    own.known_hosts = k.clone();
                }
                if let Some(a) = spec.accept_new_host_keys {
                    own.accept_new_host_keys = a;
                }
                &own
            } else {
                opts
            };
            Ok(Box::new(SshTransport::connect(spec, opts)?))
        }
    }
}

/// Run `f` for every host with at most `forks` in parallel (on [`crate::fanout::fanout`]);
/// one result per host, in input order. A panic in `f` becomes that host's error; the other
/// hosts carry on.
pub fn for_each_host<T, F>(
    hosts: &[ConnSpec],
    forks: usize,
    f: F,
) -> Vec<(String, Result<T, TransportError>)>
where
    T: Send,
    F: Fn(&ConnSpec) -> Result<T, TransportError> + Sync,
{
    let items: Vec<&ConnSpec> = hosts.iter().collect();
    crate::fanout::fanout(items, forks, |spec| f(spec))
        .into_iter()
        .map(|(spec, r)| {
            let r = r.unwrap_or_else(|p| {
                Err(TransportError::Failed {
                    host: spec.name.clone(),
                    op: "worker".into(),
                    msg: p.to_string(),
                })
            });
            (spec.name.clone(), r)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("abc/d.txt"), "abc/d.txt");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn stdin_to_file_refuses_short_input() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        let q = shell_quote(f.to_str().unwrap());
        let run = |input: &[u8], len: usize| {
            let mut t = local::LocalTransport::new("l");
            t.exec(
                &format!("set -e; {}; echo stored", stdin_to_file(&q, len)),
                &ExecOpts {
                    stdin: Some(input.to_vec()),
                    ..Default::default()
                },
            )
            .unwrap()
        };
        let o = run(b"hello", 5);
        assert!(o.success() && o.stdout_str().contains("stored"), "{o:?}");
        assert_eq!(std::fs::read(&f).unwrap(), b"hello");
        let o = run(b"hel", 5);
        assert!(!o.success() && !o.stdout_str().contains("stored"), "{o:?}");
        assert!(o.stderr_str().contains("ended early"), "{o:?}");
        assert!(!f.exists(), "the short file is removed");
        assert!(run(b"", 0).success());
    }

    #[test]
    fn become_wrapping() {
        let b = Become {
            user: None,
            password: None,
        };
        assert_eq!(
            become_wrap("id -u", &b),
            "sudo -n -H -u root -- /bin/sh -c 'id -u'"
        );
        let b = Become {
            user: Some("app".into()),
            password: Some("pw".into()),
        };
        assert!(become_wrap("true", &b).starts_with("sudo -S -p '' -H -u app"));
    }

    #[test]
    fn fan_out_keeps_order_bounds_parallelism_and_isolates_panics() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let hosts: Vec<ConnSpec> = (0..20)
            .map(|i| {
                crate::inventory::connvars::conn_spec(&format!("h{i}"), &Default::default())
                    .unwrap()
            })
            .collect();
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let r = for_each_host(&hosts, 4, |h| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(20));
            running.fetch_sub(1, Ordering::SeqCst);
            if h.name == "h7" {
                panic!("boom");
            }
            Ok(h.name.len())
        });
        assert_eq!(r.len(), 20);
        assert!(r
            .iter()
            .enumerate()
            .all(|(i, (n, _))| *n == format!("h{i}")));
        assert!(r[7].1.as_ref().unwrap_err().to_string().contains("boom"));
        assert_eq!(*r[12].1.as_ref().unwrap(), 3);
        assert!(peak.load(Ordering::SeqCst) <= 4);
        assert!(peak.load(Ordering::SeqCst) >= 2);
    }
}
