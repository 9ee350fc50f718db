//! The parts of Ansible's configuration a darkport user reaches for: `ansible.cfg` found as
//! Ansible finds it (`$ANSIBLE_CONFIG`, `./ansible.cfg` unless the directory is world-writable,
//! `~/.ansible.cfg`, `/etc/ansible/ansible.cfg`; the first that exists, alone), its
//! `[defaults]` keys `inventory`, `remote_user`, `private_key_file`, `forks` and
//! `host_key_checking`, and the `ANSIBLE_*` variables that override them. Command-line options
//! override both.

use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnsibleCfg {
    /// The file read, if any.
    pub path: Option<PathBuf>,
    pub inventory: Vec<PathBuf>,
    pub remote_user: Option<String>,
    pub private_key_file: Option<PathBuf>,
    pub forks: Option<usize>,
    pub host_key_checking: Option<bool>,
    /// What was ignored, and why (Ansible warns about the same).
    pub warnings: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum CfgError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: {msg}")]
    Invalid {
        path: String,
        line: usize,
        msg: String,
    },
    #[error("{var}={value:?}: {msg}")]
    Env {
        var: &'static str,
        value: String,
        msg: String,
    },
}

/// Where the environment and the file system are read from (the process's own in
/// [`AnsibleCfg::load`]; fixed ones in tests).
pub struct Sources<'a> {
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub cwd: PathBuf,
    pub home: Option<PathBuf>,
}

impl AnsibleCfg {
    /// This process's configuration.
    pub fn load() -> Result<AnsibleCfg, CfgError> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        AnsibleCfg::load_from(&Sources {
            env: &env,
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            home: std::env::var_os("HOME").map(PathBuf::from),
        })
    }

    pub fn load_from(s: &Sources) -> Result<AnsibleCfg, CfgError> {
        let mut cfg = AnsibleCfg::default();
        if let Some(p) = find(s, &mut cfg.warnings) {
            cfg.read_file(&p, s.home.as_deref())?;
            cfg.path = Some(p);
        }
        cfg.apply_env(s)?;
        Ok(cfg)
    }

    fn read_file(&mut self, path: &Path, home: Option<&Path>) -> Result<(), CfgError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| CfgError::Read {
            path: shown.clone(),
            source: e,
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        let mut section = String::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.trim().to_string();
                continue;
            }
            let Some((k, v)) = line.split_once('=').or_else(|| line.split_once(':')) else {
                return Err(CfgError::Invalid {
                    path: shown,
                    line: i + 1,
                    msg: format!("expected `key = value`, found {line:?}"),
                });
            };
            if section != "defaults" {
                continue;
            }
            let (k, v) = (k.trim(), v.trim());
            let bad = |msg: String| CfgError::Invalid {
                path: shown.clone(),
                line: i + 1,
                msg,
            };
            match k {
                "inventory" | "hostfile" => {
                    self.inventory = v
                        .split(',')
                        .map(str::trim)
                        .filter(|x| !x.is_empty())
                        .map(|x| resolve(x, base, home))
                        .collect();
                }
                "remote_user" => self.remote_user = Some(v.to_string()),
                "private_key_file" => self.private_key_file = Some(resolve(v, base, home)),
                "forks" => {
                    self.forks = Some(parse_forks(v).map_err(bad)?);
                }
                "host_key_checking" => {
                    self.host_key_checking = Some(parse_bool(v).map_err(bad)?);
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn apply_env(&mut self, s: &Sources) -> Result<(), CfgError> {
        let env = |k: &str| (s.env)(k);
        if let Some(v) = env("ANSIBLE_INVENTORY") {
            self.inventory = v
                .split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(|x| resolve(x, &s.cwd, s.home.as_deref()))
                .collect();
        }
        if let Some(v) = env("ANSIBLE_REMOTE_USER") {
            self.remote_user = Some(v);
        }
        if let Some(v) = env("ANSIBLE_PRIVATE_KEY_FILE") {
            self.private_key_file = Some(resolve(&v, &s.cwd, s.home.as_deref()));
        }
        if let Some(v) = env("ANSIBLE_FORKS") {
            self.forks = Some(parse_forks(&v).map_err(|msg| CfgError::Env {
                var: "ANSIBLE_FORKS",
                value: v.clone(),
                msg,
            })?);
        }
        if let Some(v) = env("ANSIBLE_HOST_KEY_CHECKING") {
            self.host_key_checking = Some(parse_bool(&v).map_err(|msg| CfgError::Env {
                var: "ANSIBLE_HOST_KEY_CHECKING",
                value: v.clone(),
                msg,
            })?);
        }
        Ok(())
    }
}

/// The one file Ansible reads.
fn find(s: &Sources, warnings: &mut Vec<String>) -> Option<PathBuf> {
    if let Some(p) = (s.env)("ANSIBLE_CONFIG") {
        let p = PathBuf::from(p);
        let p = if p.is_dir() { p.join("ansible.cfg") } else { p };
        if p.is_file() {
            return Some(p);
        }
    }
    let here = s.cwd.join("ansible.cfg");
    if here.is_file() {
        if world_writable(&s.cwd) {
            warnings.push(format!(
                "ignoring {}: its directory is world writable (as Ansible does)",
                here.display()
            ));
        } else {
            return Some(here);
        }
    }
    if let Some(h) = &s.home {
        let p = h.join(".ansible.cfg");
        if p.is_file() {
            return Some(p);
        }
    }
    let etc = PathBuf::from("/etc/ansible/ansible.cfg");
    etc.is_file().then_some(etc)
}

fn world_writable(d: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(d).is_ok_and(|m| m.permissions().mode() & 0o002 != 0)
}

/// `~/x` from home, a relative path from `base`.
fn resolve(p: &str, base: &Path, home: Option<&Path>) -> PathBuf {
    if let (Some(rest), Some(h)) = (p.strip_prefix("~/"), home) {
        return h.join(rest);
    }
    let pb = PathBuf::from(p);
    if pb.is_absolute() {
        pb
    } else {
        base.join(pb)
    }
}

fn parse_forks(v: &str) -> Result<usize, String> {
    match v.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("forks must be a positive number, not {v:?}")),
    }
}

fn parse_bool(v: &str) -> Result<bool, String> {
    match v.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" | "y" | "t" => Ok(true),
        "0" | "false" | "no" | "off" | "n" | "f" => Ok(false),
        _ => Err(format!("expected a boolean (true/false), not {v:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load(env: &[(&str, &str)], cwd: &Path, home: Option<&Path>) -> Result<AnsibleCfg, CfgError> {
        let m: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let f = move |k: &str| m.get(k).cloned();
        AnsibleCfg::load_from(&Sources {
            env: &f,
            cwd: cwd.to_path_buf(),
            home: home.map(Path::to_path_buf),
        })
    }

    #[test]
    fn the_project_file_then_the_environment() {
        let d = tempfile::tempdir().unwrap();
        let proj = d.path().join("proj");
        std::fs::create_dir(&proj).unwrap();
        std::fs::write(
            proj.join("ansible.cfg"),
            "# site\n[defaults]\ninventory = hosts.ini, ~/more.ini\nremote_user = ops\nprivate_key_file = ~/.ssh/site\nforks = 25\nhost_key_checking = False\n\n[ssh_connection]\npipelining = True\n",
        )
        .unwrap();
        let home = d.path().join("home");
        let c = load(&[], &proj, Some(&home)).unwrap();
        assert_eq!(c.path, Some(proj.join("ansible.cfg")));
        assert_eq!(
            c.inventory,
            vec![proj.join("hosts.ini"), home.join("more.ini")]
        );
        assert_eq!(c.remote_user.as_deref(), Some("ops"));
        assert_eq!(c.private_key_file, Some(home.join(".ssh/site")));
        assert_eq!((c.forks, c.host_key_checking), (Some(25), Some(false)));
        let c = load(
            &[
                ("ANSIBLE_FORKS", "7"),
                ("ANSIBLE_REMOTE_USER", "deploy"),
                ("ANSIBLE_INVENTORY", "a.ini"),
            ],
            &proj,
            Some(&home),
        )
        .unwrap();
        assert_eq!(
            (c.forks, c.remote_user.as_deref()),
            (Some(7), Some("deploy"))
        );
        assert_eq!(c.inventory, vec![proj.join("a.ini")]);
    }

    #[test]
    fn bad_values_name_the_file_and_line_and_unsafe_directories_are_skipped() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("ansible.cfg"), "[defaults]\nforks = many\n").unwrap();
        let e = load(&[], d.path(), None).unwrap_err().to_string();
        assert!(
            e.ends_with("ansible.cfg:2: forks must be a positive number, not \"many\""),
            "{e}"
        );
        let e = load(
            &[("ANSIBLE_HOST_KEY_CHECKING", "maybe")],
            Path::new("/nonexistent"),
            None,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("ANSIBLE_HOST_KEY_CHECKING=\"maybe\""), "{e}");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let c = load(&[], d.path(), None).unwrap();
        assert!(c.warnings[0].contains("world writable"), "{:?}", c.warnings);
        assert_eq!(c.forks, None);
    }
}
