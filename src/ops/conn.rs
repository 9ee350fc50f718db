//! Connection settings from the command line, as Ansible's `-u`, `--private-key`, `-k` and `-K`
//! give them: each applies to the hosts whose inventory does not set it (inventory variables
//! win, as they do over ansible-playbook's options).

use serde_json::{Map, Value};
use std::path::PathBuf;

#[derive(Clone, Debug, Default)]
pub struct ConnDefaults {
    /// `-u USER`: the login user (`ansible_user`).
    pub user: Option<String>,
    /// `--private-key FILE` (`ansible_ssh_private_key_file`).
    pub private_key: Option<PathBuf>,
    /// `-k`: the SSH password, asked for by the command (`ansible_password`).
    pub password: Option<String>,
    /// `-K`: the become password, asked for by the command (`ansible_become_password`).
    pub become_pass: Option<String>,
}

impl ConnDefaults {
    /// The inventory variables these settings stand for.
    pub fn to_vars(&self) -> Map<String, Value> {
        let mut m = Map::new();
        let mut put = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                m.insert(k.to_string(), Value::String(v));
            }
        };
        put("ansible_user", self.user.clone());
        put(
            "ansible_ssh_private_key_file",
            self.private_key.as_ref().map(|p| p.display().to_string()),
        );
        put("ansible_password", self.password.clone());
        put("ansible_become_password", self.become_pass.clone());
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::Inventory;

    /// `-u` fills in where the inventory names no user; a host's own `ansible_user` wins.
    #[test]
    fn inventory_variables_win_over_command_line_defaults() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("hosts.ini");
        std::fs::write(&p, "a\nb ansible_user=admin\n").unwrap();
        let mut inv = Inventory::load(&[p]).unwrap();
        let c = ConnDefaults {
            user: Some("ops".into()),
            private_key: Some("/k/id".into()),
            ..Default::default()
        };
        inv.set_defaults(c.to_vars());
        assert_eq!(inv.host_vars("a")["ansible_user"], "ops");
        assert_eq!(inv.host_vars("b")["ansible_user"], "admin");
        assert_eq!(inv.host_vars("b")["ansible_ssh_private_key_file"], "/k/id");
        assert!(!inv.host_vars("a").contains_key("ansible_password"));
    }
}

/// What a site or run command works with once the command line, `ANSIBLE_*` and `ansible.cfg`
/// are merged (command line first), checked before anything slow starts.
#[derive(Clone, Debug)]
pub struct Settings {
    pub inventory: Vec<PathBuf>,
    pub forks: usize,
    pub conn: ConnDefaults,
    pub accept_new_host_keys: bool,
    /// What ansible.cfg handling ignored, for the command to show.
    pub warnings: Vec<String>,
}

/// The command line's values (`None`/empty: not given).
pub struct Given {
    pub inventory: Vec<PathBuf>,
    pub forks: Option<usize>,
    pub conn: ConnDefaults,
    pub accept_new_host_keys: bool,
}

/// Merge `g` with this process's Ansible configuration; a missing inventory file or an
/// unreadable private key is an error now, before a bundle is hashed or a node contacted.
pub fn settings(g: Given) -> anyhow::Result<Settings> {
    let cfg = crate::inventory::ansible_cfg::AnsibleCfg::load()?;
    merge(g, cfg)
}

fn merge(g: Given, cfg: crate::inventory::ansible_cfg::AnsibleCfg) -> anyhow::Result<Settings> {
    let inventory = if g.inventory.is_empty() {
        cfg.inventory
    } else {
        g.inventory
    };
    if inventory.is_empty() {
        anyhow::bail!(
            "no inventory: pass -i FILE (or set `inventory` in ansible.cfg, or ANSIBLE_INVENTORY)"
        );
    }
    for p in &inventory {
        // `host1,host2` is a host list, not a file.
        if !p.exists() && !p.to_string_lossy().contains(',') {
            anyhow::bail!("inventory {} does not exist", p.display());
        }
    }
    let mut conn = g.conn;
    conn.user = conn.user.or(cfg.remote_user);
    conn.private_key = conn.private_key.or(cfg.private_key_file);
    if let Some(k) = &conn.private_key {
        std::fs::File::open(k).map_err(|e| anyhow::anyhow!("private key {}: {e}", k.display()))?;
    }
    Ok(Settings {
        inventory,
        forks: g
            .forks
            .or(cfg.forks)
            .unwrap_or(crate::transport::DEFAULT_FORKS),
        conn,
        accept_new_host_keys: g.accept_new_host_keys || cfg.host_key_checking == Some(false),
        warnings: cfg.warnings,
    })
}

#[cfg(test)]
mod settings_tests {
    use super::*;
    use crate::inventory::ansible_cfg::AnsibleCfg;

    fn given(inv: &[&std::path::Path]) -> Given {
        Given {
            inventory: inv.iter().map(|p| p.to_path_buf()).collect(),
            forks: None,
            conn: ConnDefaults::default(),
            accept_new_host_keys: false,
        }
    }

    #[test]
    fn the_command_line_wins_and_cheap_checks_come_first() {
        let d = tempfile::tempdir().unwrap();
        let inv = d.path().join("hosts.ini");
        std::fs::write(&inv, "a\n").unwrap();
        let cfg = AnsibleCfg {
            inventory: vec![d.path().join("cfg.ini")],
            remote_user: Some("cfguser".into()),
            forks: Some(3),
            host_key_checking: Some(false),
            ..Default::default()
        };
        let mut g = given(&[&inv]);
        g.conn.user = Some("cli".into());
        let s = merge(g, cfg.clone()).unwrap();
        assert_eq!(s.inventory, vec![inv.clone()]);
        assert_eq!((s.forks, s.conn.user.as_deref()), (3, Some("cli")));
        assert!(s.accept_new_host_keys);
        // The inventory ansible.cfg names does not exist: said before anything else.
        let e = merge(given(&[]), cfg).unwrap_err().to_string();
        assert!(e.contains("cfg.ini does not exist"), "{e}");
        let e = merge(given(&[]), AnsibleCfg::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("no inventory: pass -i FILE"), "{e}");
        let mut g = given(&[&inv]);
        g.conn.private_key = Some(d.path().join("nokey"));
        let e = merge(g, AnsibleCfg::default()).unwrap_err().to_string();
        assert!(e.starts_with("private key ") && e.contains("nokey"), "{e}");
        assert_eq!(
            merge(
                given(&[std::path::Path::new("h1,h2")]),
                AnsibleCfg::default()
            )
            .unwrap()
            .forks,
            crate::transport::DEFAULT_FORKS
        );
    }
}
