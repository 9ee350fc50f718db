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

/// Connection parameters of one host, read from its merged inventory variables.
///
/// Variables: `ansible_host` (default: the inventory name), `ansible_port` (22), `ansible_user`
/// (default: `$USER`, else root), `ansible_password` / `ansible_ssh_pass`,
/// `ansible_ssh_private_key_file`, `darkport_ssh_key_passphrase` (else the
/// `DARKPORT_SSH_KEY_PASSPHRASE` environment variable) for an encrypted key, `ansible_become`,
/// `ansible_become_user`, `ansible_become_password` (or `ansible_become_pass`),
/// `ansible_connection` = `ssh` | `local` (also `paramiko`/`smart` as ssh).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnSpec {
    /// Inventory name.
    pub name: String,
    pub connection: Connection,
    /// Address to connect to.
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
}

impl ConnSpec {
    pub fn from_vars(host: &str, vars: &Map<String, Value>) -> Result<ConnSpec, TransportError> {
        let bad = |var: &str, v: &Value, why: &str| TransportError::Failed {
            host: host.to_string(),
            op: "reading connection variables".into(),
            msg: format!("{var}={v}: {why}"),
        };
        let s = |k: &str| -> Option<String> {
            match vars.get(k)? {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                v => Some(v.to_string()),
            }
        };
        let first = |ks: &[&str]| ks.iter().find_map(|k| s(k));
        let connection = match s("ansible_connection").as_deref() {
            None | Some("ssh") | Some("smart") | Some("paramiko") => Connection::Ssh,
            Some("local") => Connection::Local,
            Some(_) => {
                let v = &vars["ansible_connection"];
                return Err(bad("ansible_connection", v, "supported: ssh, local"));
            }
        };
        let port = match vars.get("ansible_port") {
            None | Some(Value::Null) => 22,
            Some(v) => {
                let n = match v {
                    Value::Number(n) => n.as_u64(),
                    Value::String(s) => s.trim().parse::<u64>().ok(),
                    _ => None,
                };
                match n {
                    Some(n) if (1..=65535).contains(&n) => n as u16,
                    _ => return Err(bad("ansible_port", v, "not a port number")),
                }
            }
        };
        let become_default = match vars.get("ansible_become") {
            None | Some(Value::Null) => false,
            Some(v) => parse_bool(v).ok_or_else(|| bad("ansible_become", v, "not a boolean"))?,
        };
        let user = s("ansible_user")
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "root".into());
        Ok(ConnSpec {
            name: host.to_string(),
            connection,
            host: s("ansible_host").unwrap_or_else(|| host.to_string()),
            port,
            user,
            password: first(&["ansible_password", "ansible_ssh_pass"]),
            key_file: s("ansible_ssh_private_key_file").map(|p| expand_home(&p)),
            key_passphrase: s("darkport_ssh_key_passphrase")
                .or_else(|| std::env::var("DARKPORT_SSH_KEY_PASSPHRASE").ok()),
            become_default,
            become_: Become {
                user: s("ansible_become_user"),
                password: first(&["ansible_become_password", "ansible_become_pass"]),
            },
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
