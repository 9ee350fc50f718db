//! What a connection is: the parameters of one host ([`ConnSpec`], its jump host) and how
//! every host of a run connects ([`ConnectOpts`]). Reading them from Ansible variables is
//! `crate::inventory::connvars`.

use super::Become;
use std::path::PathBuf;
use std::time::Duration;

/// `ansible_connection`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Connection {
    Ssh,
    Local,
}

/// Connection parameters of one host, read from its merged inventory variables by
/// `crate::inventory::connvars` (the one parser of them).
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
    /// `-o UserKnownHostsFile=…` in the host's ssh arguments: this known_hosts file instead
    /// of the run's.
    pub known_hosts: Option<PathBuf>,
    /// `-o StrictHostKeyChecking=…` in the host's ssh arguments: `Some(true)` for `no`,
    /// `off` or `accept-new` (record a key not yet known), `Some(false)` for `yes`/`ask`.
    /// A changed key is refused either way.
    pub accept_new_host_keys: Option<bool>,
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

/// Default `--forks`: sized for hundreds of hosts (threads mostly wait on the network).
pub const DEFAULT_FORKS: usize = 64;
