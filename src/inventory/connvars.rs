//! Ansible's connection variables (`ansible_host`, `ansible_port`, `ansible_user`,
//! `ansible_ssh_private_key_file`, `ansible_become*`, `ansible_connection`, jump hosts in
//! `ansible_ssh_common_args` …) read into a [`ConnSpec`]. The inventory owns this mapping;
//! the transport only sees the parsed spec.

use super::ansible_bool;
use crate::transport::{Become, ConnSpec, Connection, JumpHost, TransportError};
use serde_json::{Map, Value};
use std::path::PathBuf;

/// A connection variable with a value darkport cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}={value}: {why}")]
pub struct BadConnVar {
    pub var: String,
    pub value: String,
    pub why: String,
}

/// [`parse_conn_vars`] with the error as a [`TransportError`] naming the host.
pub fn conn_spec(host: &str, vars: &Map<String, Value>) -> Result<ConnSpec, TransportError> {
    parse_conn_vars(host, vars).map_err(|e| TransportError::Failed {
        host: host.to_string(),
        op: "reading connection variables".into(),
        msg: e.to_string(),
    })
}

/// The connection of `host` from its merged variables. Variables: `ansible_host` /
/// `ansible_ssh_host` (default: the inventory name), `ansible_port` / `ansible_ssh_port`
/// (22), `ansible_user` / `ansible_ssh_user` (default: `$USER`, else root),
/// `ansible_password` / `ansible_ssh_pass` / `ansible_ssh_password`,
/// `ansible_ssh_private_key_file` / `ansible_private_key_file`, `darkport_ssh_key_passphrase`
/// (else the `DARKPORT_SSH_KEY_PASSPHRASE` environment variable) for an encrypted key,
/// `ansible_become`, `ansible_become_user`, `ansible_become_password` / `ansible_become_pass` /
/// `ansible_sudo_pass`, `ansible_connection` = `ssh` | `local` (also `paramiko`/`smart` as
/// ssh), and a jump host: `darkport_jump_host` (`[user@]host[:port]`), else `-o ProxyJump=…` or
/// `-J …` in `ansible_ssh_common_args` / `ansible_ssh_extra_args`.
pub fn parse_conn_vars(host: &str, vars: &Map<String, Value>) -> Result<ConnSpec, BadConnVar> {
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
        Some(v) => ansible_bool(v).ok_or_else(|| {
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
                    if let Some(j) = jump_from_ssh_args(&kv.1).map_err(|why| bad(kv, &why))? {
                        jump.get_or_insert(j);
                    }
                }
            }
            jump
        }
    };
    let mut hk = HostKeyOpts::default();
    for n in ["ansible_ssh_common_args", "ansible_ssh_extra_args"] {
        if let Some(kv) = first(&[n]) {
            let o = host_key_opts(&kv.1).map_err(|why| bad(kv.clone(), &why))?;
            hk.known_hosts = hk.known_hosts.or(o.known_hosts);
            hk.accept_new = hk.accept_new.or(o.accept_new);
        }
    }
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
        known_hosts: hk.known_hosts,
        accept_new_host_keys: hk.accept_new,
    })
}

/// `UserKnownHostsFile` and `StrictHostKeyChecking` from the host's ssh arguments.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct HostKeyOpts {
    pub known_hosts: Option<PathBuf>,
    pub accept_new: Option<bool>,
}

/// Read `-o UserKnownHostsFile=F` and `-o StrictHostKeyChecking=V` (also `-oK=V`, `-o "K V"`)
/// from OpenSSH arguments; the first value of each wins, as for ssh. Several files in
/// `UserKnownHostsFile` use the first.
pub fn host_key_opts(args: &str) -> Result<HostKeyOpts, String> {
    let mut out = HostKeyOpts::default();
    for (key, val) in ssh_options(args)? {
        if key.eq_ignore_ascii_case("UserKnownHostsFile") && out.known_hosts.is_none() {
            let first = val.split_whitespace().next().unwrap_or("");
            if first.is_empty() {
                return Err("UserKnownHostsFile without a file".into());
            }
            out.known_hosts = Some(expand_home(first));
        } else if key.eq_ignore_ascii_case("StrictHostKeyChecking") && out.accept_new.is_none() {
            out.accept_new = Some(match val.to_ascii_lowercase().as_str() {
                "no" | "off" | "accept-new" => true,
                "yes" | "ask" => false,
                _ => {
                    return Err(format!(
                        "StrictHostKeyChecking={val}: expected yes, no, accept-new, off or ask"
                    ))
                }
            });
        }
    }
    Ok(out)
}

/// Every `-o KEY=VALUE` (or `-oKEY=VALUE`, `-o "KEY VALUE"`) of OpenSSH arguments, in order;
/// `-J X` / `-JX` reads as `ProxyJump=X`.
fn ssh_options(args: &str) -> Result<Vec<(String, String)>, String> {
    let words = super::pylit::shlex_split(args)?;
    let mut out = Vec::new();
    let mut it = words.iter();
    while let Some(w) = it.next() {
        if let Some(v) = w.strip_prefix("-J") {
            let v = if v.is_empty() {
                it.next().cloned().unwrap_or_default()
            } else {
                v.to_string()
            };
            out.push(("ProxyJump".to_string(), v));
            continue;
        }
        let Some(o) = w.strip_prefix("-o") else {
            continue;
        };
        let o = if o.is_empty() {
            it.next().cloned().unwrap_or_default()
        } else {
            o.to_string()
        };
        let (k, v) = o
            .split_once(|c: char| c == '=' || c.is_whitespace())
            .map(|(k, v)| (k.trim(), v.trim().trim_start_matches('=').trim()))
            .unwrap_or((o.trim(), ""));
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// From OpenSSH command-line arguments (`ansible_ssh_common_args`): `-o ProxyJump=X`,
/// `-o "ProxyJump X"`, `-oProxyJump=X`, `-J X`, `-JX`. `Ok(None)` when there is none or it
/// is `none`. `ProxyCommand` is refused: the ssh2 transport cannot run one.
pub fn jump_from_ssh_args(args: &str) -> Result<Option<JumpHost>, String> {
    let mut found = None;
    for (key, val) in ssh_options(args)? {
        if key.eq_ignore_ascii_case("ProxyCommand") && !val.eq_ignore_ascii_case("none") {
            return Err(
                "ProxyCommand is not supported by darkport's SSH transport; \
                 use -o ProxyJump=[user@]host[:port] or darkport_jump_host"
                    .into(),
            );
        }
        // OpenSSH uses the first value it is given.
        if key.eq_ignore_ascii_case("ProxyJump") && found.is_none() {
            found = Some(val);
        }
    }
    match found {
        None => Ok(None),
        Some(v) if v.eq_ignore_ascii_case("none") => Ok(None),
        Some(v) if v.is_empty() => Err("ProxyJump without a host".into()),
        Some(v) => JumpHost::parse(&v).map(Some),
    }
}

fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ => PathBuf::from(p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::Connection;
    use serde_json::json;
    use std::path::PathBuf;

    fn vars(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn spec_from_vars() {
        let s = conn_spec(
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

        let s = conn_spec("db", &vars(json!({"ansible_port": 22}))).unwrap();
        assert_eq!(
            (s.host.as_str(), s.port, s.become_default),
            ("db", 22, false)
        );
        let s = conn_spec("me", &vars(json!({"ansible_connection": "local"}))).unwrap();
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
            let e = conn_spec("web1", &vars(v)).unwrap_err().to_string();
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
            assert_eq!(jump_from_ssh_args(args).unwrap(), want, "{args}");
        }
        let s = conn_spec(
            "web1",
            &vars(
                json!({"ansible_ssh_common_args": "-o ProxyJump=ops@bastion:2222",
                "darkport_jump_host": "root@b2"}),
            ),
        )
        .unwrap();
        assert_eq!(s.jump, j(Some("root"), "b2", 22));
        assert_eq!(s.jump.unwrap().to_string(), "root@b2:22");
        let s = conn_spec(
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
            let e = conn_spec("web1", &vars(v.clone())).unwrap_err().to_string();
            let var = v.as_object().unwrap().keys().next().unwrap().clone();
            assert!(e.contains("web1") && e.contains(&var), "{e}");
        }
    }

    #[test]
    fn known_hosts_file_and_strict_checking_from_ssh_args() {
        let o = host_key_opts(
            "-o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o ProxyJump=b",
        )
        .unwrap();
        assert_eq!(o.known_hosts, Some(PathBuf::from("/dev/null")));
        assert_eq!(o.accept_new, Some(true));
        let o = host_key_opts("-o 'UserKnownHostsFile /a /b' -oStrictHostKeyChecking=yes").unwrap();
        assert_eq!(
            (o.known_hosts, o.accept_new),
            (Some(PathBuf::from("/a")), Some(false))
        );
        // The first value wins, as for ssh.
        let o = host_key_opts("-o StrictHostKeyChecking=accept-new -o StrictHostKeyChecking=yes")
            .unwrap();
        assert_eq!(o.accept_new, Some(true));
        assert_eq!(host_key_opts("-C").unwrap(), HostKeyOpts::default());
        assert!(host_key_opts("-o StrictHostKeyChecking=maybe").is_err());
        // In the inventory: the extra args fill what the common args leave.
        let s = conn_spec(
            "web1",
            &vars(
                json!({"ansible_ssh_common_args": "-o UserKnownHostsFile=/k",
                "ansible_ssh_extra_args": "-o StrictHostKeyChecking=no"}),
            ),
        )
        .unwrap();
        assert_eq!(
            (s.known_hosts, s.accept_new_host_keys),
            (Some(PathBuf::from("/k")), Some(true))
        );
        let e = conn_spec(
            "web1",
            &vars(json!({"ansible_ssh_common_args": "-o StrictHostKeyChecking=maybe"})),
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("web1") && e.to_string().contains("StrictHostKeyChecking=maybe"),
            "{e}"
        );
    }
}
