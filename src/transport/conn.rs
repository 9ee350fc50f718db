//! Connection parameters from inventory variables, [`connect`], and the parallel fan-out
//! [`for_each_host`].

use super::{local::LocalTransport, ssh::SshTransport, Become, Transport, TransportError};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::time::Duration;

/// `ansible_connection`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connection {
    Ssh,
    Local,
}

/// Connection parameters of one host, read from its merged inventory variables (the one parser
/// of them: [`crate::inventory::Inventory::connection`] uses it too).
///
/// Variables: `ansible_host` / `ansible_ssh_host` (default: the inventory name), `ansible_port`
/// / `ansible_ssh_port` (22), `ansible_user` / `ansible_ssh_user` (default: `$USER`, else root),
/// `ansible_password` / `ansible_ssh_pass` / `ansible_ssh_password`,
/// `ansible_ssh_private_key_file` / `ansible_private_key_file`, `darkport_ssh_key_passphrase`
/// (else the `DARKPORT_SSH_KEY_PASSPHRASE` environment variable) for an encrypted key,
/// `ansible_become`, `ansible_become_user`, `ansible_become_password` / `ansible_become_pass` /
/// `ansible_sudo_pass`, `ansible_connection` = `ssh` | `local` (also `paramiko`/`smart` as
/// ssh), and a jump host: `darkport_jump_host` (`[user@]host[:port]`), else `-o ProxyJump=…` or
/// `-J …` in `ansible_ssh_common_args` / `ansible_ssh_extra_args`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnSpec {
    /// Inventory name.
    pub name: String,
    pub connection: Connection,
    /// Address to connect to (as the jump host resolves it, when there is one).
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: Option<String>,
    pub key_file: Option<PathBuf>,
    pub key_passphrase: Option<String>,
    /// `ansible_become`: run every task via sudo unless the task says otherwise.
    pub become_default: bool,
    /// Become settings (user, password) used when a task becomes.
    pub become_: Become,
    /// Reach the host through this SSH jump host (bastion).
    pub jump: Option<JumpHost>,
}

/// An SSH jump host (OpenSSH `ProxyJump`): `[user@]host[:port]`. Without a user, the target's
/// user is used; authentication uses the target's credentials (key, agent, password).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct JumpHost {
    pub user: Option<String>,
    pub host: String,
    pub port: u16,
}

impl JumpHost {
    /// Parse `[ssh://][user@]host[:port]` (`[v6addr]:port` too). Several hops (`a,b`) are
    /// refused: only one jump host is supported.
    pub fn parse(s: &str) -> Result<JumpHost, String> {
        let t = s.trim();
        let t = t.strip_prefix("ssh://").unwrap_or(t);
        if t.contains(',') {
            return Err("only one jump host is supported, not a chain".into());
        }
        let (user, rest) = match t.rsplit_once('@') {
            Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
            Some(_) => return Err("empty user name".into()),
            None => (None, t),
        };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or("unclosed '['")?;
            match after.strip_prefix(':') {
                Some(p) => (h, Some(p)),
                None if after.is_empty() => (h, None),
                None => return Err(format!("unexpected {after:?} after the address")),
            }
        } else if rest.matches(':').count() == 1 {
            let (h, p) = rest.split_once(':').unwrap();
            (h, Some(p))
        } else {
            (rest, None)
        };
        if host.is_empty() || host.contains(char::is_whitespace) {
            return Err("no host name".into());
        }
        let port = match port {
            None => 22,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("{p:?} is not a TCP port")),
            },
        };
        Ok(JumpHost {
            user,
            host: host.to_string(),
            port,
        })
    }

    /// From OpenSSH command-line arguments (`ansible_ssh_common_args`): `-o ProxyJump=X`,
    /// `-o "ProxyJump X"`, `-oProxyJump=X`, `-J X`, `-JX`. `Ok(None)` when there is none or it
    /// is `none`. `ProxyCommand` is refused: the ssh2 transport cannot run one.
    pub fn from_ssh_args(args: &str) -> Result<Option<JumpHost>, String> {
        let words = crate::inventory::pylit::shlex_split(args)?;
        let mut found = None;
        let mut it = words.iter();
        while let Some(w) = it.next() {
            let value = if let Some(v) = w.strip_prefix("-J") {
                if v.is_empty() {
                    it.next().cloned()
                } else {
                    Some(v.to_string())
                }
            } else if let Some(o) = w.strip_prefix("-o") {
                let o = if o.is_empty() {
                    it.next().cloned().unwrap_or_default()
                } else {
                    o.to_string()
                };
                let (key, val) = o
                    .split_once(|c: char| c == '=' || c.is_whitespace())
                    .map(|(k, v)| (k.trim(), v.trim().trim_start_matches('=').trim()))
                    .unwrap_or((o.trim(), ""));
                if key.eq_ignore_ascii_case("ProxyCommand") && !val.eq_ignore_ascii_case("none") {
                    return Err(
                        "ProxyCommand is not supported by darkport's SSH transport; \
                         use -o ProxyJump=[user@]host[:port] or darkport_jump_host"
                            .into(),
                    );
                }
                key.eq_ignore_ascii_case("ProxyJump")
                    .then(|| val.to_string())
            } else {
                None
            };
            // OpenSSH uses the first value it is given.
            if let (Some(v), None) = (value, &found) {
                found = Some(v);
            }
        }
        match found {
            None => Ok(None),
            Some(v) if v.eq_ignore_ascii_case("none") => Ok(None),
            Some(v) if v.is_empty() => Err("ProxyJump without a host".into()),
            Some(v) => JumpHost::parse(&v).map(Some),
        }
    }
}

impl std::fmt::Display for JumpHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A connection variable with a value darkport cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}={value}: {why}")]
pub struct BadConnVar {
    pub var: String,
    pub value: String,
    pub why: String,
}

impl ConnSpec {
    /// [`ConnSpec::parse_vars`] with the error as a [`TransportError`] naming the host.
    pub fn from_vars(host: &str, vars: &Map<String, Value>) -> Result<ConnSpec, TransportError> {
        Self::parse_vars(host, vars).map_err(|e| TransportError::Failed {
            host: host.to_string(),
            op: "reading connection variables".into(),
            msg: e.to_string(),
        })
    }

    pub fn parse_vars(host: &str, vars: &Map<String, Value>) -> Result<ConnSpec, BadConnVar> {
        // The first of `names` that is set (and not null), as text.
        let first = |names: &[&str]| -> Option<(String, String)> {
            names.iter().find_map(|n| match vars.get(*n)? {
                Value::Null => None,
                Value::String(s) => Some((n.to_string(), s.clone())),
                v => Some((n.to_string(), v.to_string())),
            })
        };
        let text = |names: &[&str]| first(names).map(|(_, v)| v);
        let bad = |(var, value): (String, String), why: &str| BadConnVar {
            var,
            value,
            why: why.to_string(),
        };
        let connection = match first(&["ansible_connection"]) {
            None => Connection::Ssh,
            Some((_, v)) if ["ssh", "smart", "paramiko", "paramiko_ssh"].contains(&v.as_str()) => {
                Connection::Ssh
            }
            Some((_, v)) if v == "local" => Connection::Local,
            Some(kv) => return Err(bad(kv, "supported: ssh, local")),
        };
        let port = match first(&["ansible_port", "ansible_ssh_port"]) {
            None => 22,
            Some(kv) => match kv.1.trim().parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(bad(kv, "not a TCP port")),
            },
        };
        let become_default = match vars.get("ansible_become") {
            None | Some(Value::Null) => false,
            Some(v) => parse_bool(v).ok_or_else(|| {
                bad(
                    ("ansible_become".into(), text(&["ansible_become"]).unwrap()),
                    "not a boolean",
                )
            })?,
        };
        let user = text(&["ansible_user", "ansible_ssh_user"])
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "root".into());
        let jump = match first(&["darkport_jump_host"]) {
            Some(kv) if !kv.1.trim().is_empty() => {
                Some(JumpHost::parse(&kv.1).map_err(|why| bad(kv, &why))?)
            }
            _ => {
                let mut jump = None;
                for n in ["ansible_ssh_common_args", "ansible_ssh_extra_args"] {
                    if let Some(kv) = first(&[n]) {
                        if let Some(j) =
                            JumpHost::from_ssh_args(&kv.1).map_err(|why| bad(kv, &why))?
                        {
                            jump.get_or_insert(j);
                        }
                    }
                }
                jump
            }
        };
        Ok(ConnSpec {
            name: host.to_string(),
            connection,
            host: text(&["ansible_host", "ansible_ssh_host"]).unwrap_or_else(|| host.to_string()),
            port,
            user,
            password: text(&[
                "ansible_password",
                "ansible_ssh_pass",
                "ansible_ssh_password",
            ]),
            key_file: text(&["ansible_ssh_private_key_file", "ansible_private_key_file"])
                .map(|p| expand_home(&p)),
            key_passphrase: text(&["darkport_ssh_key_passphrase"])
                .or_else(|| std::env::var("DARKPORT_SSH_KEY_PASSPHRASE").ok()),
            become_default,
            become_: Become {
                user: text(&["ansible_become_user"]),
                password: text(&[
                    "ansible_become_password",
                    "ansible_become_pass",
                    "ansible_sudo_pass",
                ]),
            },
            jump,
        })
    }
}

/// Ansible's boolean spellings (yes/no, true/false, on/off, 1/0, y/n).
fn parse_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "yes" | "y" | "true" | "t" | "on" | "1" => Some(true),
            "no" | "n" | "false" | "f" | "off" | "0" | "" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

/// How to connect (same for every host of a run).
#[derive(Clone, Debug)]
pub struct ConnectOpts {
    /// OpenSSH known_hosts file (default `~/.ssh/known_hosts`).
    pub known_hosts: PathBuf,
    /// Record unknown host keys instead of refusing (`--accept-new-host-keys`). A changed key is
    /// refused regardless.
    pub accept_new_host_keys: bool,
    /// TCP connect + SSH handshake + authentication, each bounded by this.
    pub connect_timeout: Duration,
    /// ssh-agent socket (default: `SSH_AUTH_SOCK`); `None` disables agent authentication.
    pub agent_socket: Option<PathBuf>,
    /// A transfer (upload/download) in which no byte moved for this long fails as unreachable;
    /// also the TCP user timeout for unacknowledged data (default 60 s).
    pub stall_timeout: Duration,
}

impl Default for ConnectOpts {
    fn default() -> Self {
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/root"));
        ConnectOpts {
            known_hosts: home.join(".ssh/known_hosts"),
            accept_new_host_keys: false,
            connect_timeout: Duration::from_secs(10),
            agent_socket: std::env::var_os("SSH_AUTH_SOCK").map(PathBuf::from),
            stall_timeout: Duration::from_secs(60),
        }
    }
}

/// Open the one session this run uses for `spec`.
pub fn connect(spec: &ConnSpec, opts: &ConnectOpts) -> Result<Box<dyn Transport>, TransportError> {
    match spec.connection {
        Connection::Local => Ok(Box::new(LocalTransport::new(&spec.name))),
        Connection::Ssh => Ok(Box::new(SshTransport::connect(spec, opts)?)),
    }
}

/// Default `--forks`: sized for hundreds of hosts (threads mostly wait on the network).
pub const DEFAULT_FORKS: usize = 64;

/// Run `f` for every host with at most `forks` in parallel (threads); one result per host, in
/// input order. A panic in `f` becomes that host's error; the other hosts carry on.
pub fn for_each_host<T, F>(
    hosts: &[ConnSpec],
    forks: usize,
    f: F,
) -> Vec<(String, Result<T, TransportError>)>
where
    T: Send,
    F: Fn(&ConnSpec) -> Result<T, TransportError> + Sync,
{
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let n = hosts.len();
    let results: Vec<Mutex<Option<Result<T, TransportError>>>> =
        (0..n).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    let workers = forks.max(1).min(n);
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= n {
                    break;
                }
                let spec = &hosts[i];
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(spec)))
                    .unwrap_or_else(|p| {
                        let msg = p
                            .downcast_ref::<&str>()
                            .map(|s| s.to_string())
                            .or_else(|| p.downcast_ref::<String>().cloned())
                            .unwrap_or_else(|| "panic".into());
                        Err(TransportError::Failed {
                            host: spec.name.clone(),
                            op: "worker".into(),
                            msg: format!("internal error: {msg}"),
                        })
                    });
                *results[i].lock().unwrap() = Some(r);
            });
        }
    });
    hosts
        .iter()
        .zip(results)
        .map(|(h, r)| (h.name.clone(), r.into_inner().unwrap().unwrap()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn vars(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn spec_from_vars() {
        let s = ConnSpec::from_vars(
            "web1",
            &vars(json!({"ansible_host": "10.0.0.5", "ansible_port": "2222",
                "ansible_user": "ops", "ansible_ssh_pass": "pw", "ansible_become": "yes",
                "ansible_become_user": "app", "ansible_become_pass": "bpw",
                "ansible_ssh_private_key_file": "/k", "darkport_ssh_key_passphrase": "kp"})),
        )
        .unwrap();
        assert_eq!(s.host, "10.0.0.5");
        assert_eq!(s.port, 2222);
        assert_eq!(s.user, "ops");
        assert_eq!(s.password.as_deref(), Some("pw"));
        assert!(s.become_default);
        assert_eq!(s.become_.user.as_deref(), Some("app"));
        assert_eq!(s.become_.password.as_deref(), Some("bpw"));
        assert_eq!(s.key_file, Some(PathBuf::from("/k")));
        assert_eq!(s.key_passphrase.as_deref(), Some("kp"));
        assert_eq!(s.connection, Connection::Ssh);

        let s = ConnSpec::from_vars("db", &vars(json!({"ansible_port": 22}))).unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.become_default),
            ("db", 22, false)
        );
        let s = ConnSpec::from_vars("me", &vars(json!({"ansible_connection": "local"}))).unwrap();
        assert_eq!(s.connection, Connection::Local);
    }

    #[test]
    fn bad_vars_name_host_and_var() {
        for v in [
            json!({"ansible_port": "http"}),
            json!({"ansible_port": 70000}),
            json!({"ansible_connection": "winrm"}),
            json!({"ansible_become": "maybe"}),
        ] {
            let e = ConnSpec::from_vars("web1", &vars(v))
                .unwrap_err()
                .to_string();
            assert!(e.contains("web1") && e.contains("ansible_"), "{e}");
        }
    }

    #[test]
    fn jump_host_from_vars_and_ssh_args() {
        let j = |u: Option<&str>, h: &str, p: u16| {
            Some(JumpHost {
                user: u.map(String::from),
                host: h.into(),
                port: p,
            })
        };
        for (args, want) in [
            (
                "-o ProxyJump=ops@bastion:2222",
                j(Some("ops"), "bastion", 2222),
            ),
            ("-o UserKnownHostsFile=/k -oProxyJump=b", j(None, "b", 22)),
            (
                "-o 'ProxyJump ssh://a@[fe80::1]:23'",
                j(Some("a"), "fe80::1", 23),
            ),
            ("-J b:2 -o ProxyJump=c", j(None, "b", 2)),
            ("-Jx@10.0.0.1", j(Some("x"), "10.0.0.1", 22)),
            ("-o proxyjump=none", None),
            ("-o StrictHostKeyChecking=yes", None),
        ] {
            assert_eq!(JumpHost::from_ssh_args(args).unwrap(), want, "{args}");
        }
        let s = ConnSpec::from_vars(
            "web1",
            &vars(
                json!({"ansible_ssh_common_args": "-o ProxyJump=ops@bastion:2222",
                "darkport_jump_host": "root@b2"}),
            ),
        )
        .unwrap();
        assert_eq!(s.jump, j(Some("root"), "b2", 22));
        assert_eq!(s.jump.unwrap().to_string(), "root@b2:22");
        let s = ConnSpec::from_vars(
            "web1",
            &vars(json!({"ansible_ssh_extra_args": "-J bastion:2222"})),
        )
        .unwrap();
        assert_eq!(s.jump, j(None, "bastion", 2222));
        for v in [
            json!({"darkport_jump_host": "a,b"}),
            json!({"darkport_jump_host": "b:http"}),
            json!({"darkport_jump_host": "@b"}),
            json!({"ansible_ssh_common_args": "-o ProxyJump=a,b"}),
            json!({"ansible_ssh_common_args": "-o ProxyCommand='ssh -W %h:%p b'"}),
            json!({"ansible_ssh_common_args": "-o 'ProxyJump=b"}),
        ] {
            let e = ConnSpec::from_vars("web1", &vars(v.clone()))
                .unwrap_err()
                .to_string();
            let var = v.as_object().unwrap().keys().next().unwrap().clone();
            assert!(e.contains("web1") && e.contains(&var), "{e}");
        }
    }

    #[test]
    fn fan_out_keeps_order_bounds_parallelism_and_isolates_panics() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let hosts: Vec<ConnSpec> = (0..20)
            .map(|i| ConnSpec::from_vars(&format!("h{i}"), &Map::new()).unwrap())
            .collect();
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let r = for_each_host(&hosts, 4, |h| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(20));
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
