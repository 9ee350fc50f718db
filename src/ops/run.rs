//! `darkport run`: load and validate the playbook (nothing touches a host before that),
//! load the inventory (plus `group_vars/`/`host_vars/` next to the playbook), then run the
//! engine with one transport per host; what happens goes to the engine reporter.

use crate::inventory::Inventory;
use crate::playbook::engine::{self, Connector, HostSource, RunOptions};
use crate::playbook::model::{parse_kv, Playbook};
use crate::transport::{self, ConnectOpts, Transport, TransportError};
use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The inventory as the engine sees it, with `--limit` applied (and, for install/upgrade,
/// restricted to the nodes still in the run).
pub(crate) struct InvHosts<'a> {
    pub inv: &'a Inventory,
    pub limit: Option<&'a str>,
    pub only: Option<&'a [String]>,
}

impl HostSource for InvHosts<'_> {
    fn select(&self, pattern: &str) -> Result<Vec<String>, String> {
        self.inv
            .select_limited(pattern, self.limit)
            .map(|s| match self.only {
                Some(only) => s.hosts.into_iter().filter(|h| only.contains(h)).collect(),
                None => s.hosts,
            })
            .map_err(|e| e.to_string())
    }
    fn pattern_warnings(&self, pattern: &str) -> Vec<String> {
        self.inv
            .select_with_warnings(pattern)
            .map(|s| s.warnings)
            .unwrap_or_default()
    }
    fn host_vars(&self, host: &str) -> Map<String, Value> {
        self.inv.host_vars(host)
    }
    fn groups(&self) -> BTreeMap<String, Vec<String>> {
        self.inv.groups()
    }
    fn group_names(&self, host: &str) -> Vec<String> {
        self.inv.group_names(host)
    }
    fn all_hosts(&self) -> Vec<String> {
        self.inv.hosts()
    }
}

struct Conn {
    opts: ConnectOpts,
}

impl Connector for Conn {
    fn connect(
        &self,
        host: &str,
        vars: &Map<String, Value>,
    ) -> Result<Box<dyn Transport>, TransportError> {
        let spec = crate::inventory::connvars::conn_spec(host, vars)?;
        transport::connect(&spec, &self.opts)
    }
}

/// `-e` values: `k=v …`, a JSON/YAML mapping, or `@file`.
pub fn parse_extra_vars(items: &[String]) -> anyhow::Result<Map<String, Value>> {
    let mut out = Map::new();
    for it in items {
        let it = it.trim();
        if let Some(f) = it.strip_prefix('@') {
            let m = crate::playbook::model::load_vars_file(Path::new(f))
                .with_context(|| format!("reading extra vars file {f}"))?;
            out.extend(m);
        } else if it.starts_with('{') || it.starts_with('[') {
            let n = crate::playbook::yaml::load(it, "<extra vars>")?;
            match n.to_json() {
                Value::Object(m) => out.extend(m),
                _ => bail!("extra vars {it:?} must be a mapping"),
            }
        } else {
            let m = parse_kv(it, false);
            if m.contains_key("_raw_params") {
                bail!(
                    "invalid extra vars {it:?}: expected key=value, a JSON/YAML mapping or @file"
                );
            }
            out.extend(m);
        }
    }
    Ok(out)
}

fn split_list(v: &[String]) -> Vec<String> {
    v.iter()
        .flat_map(|s| s.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// `darkport run`: what ansible-playbook takes.
pub struct PlayOptions {
    pub inventory: Vec<PathBuf>,
    /// `-v` count (results, task paths, connections and commands).
    pub verbosity: u8,
    pub playbook: PathBuf,
    pub extra_vars: Vec<String>,
    pub limit: Option<String>,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    pub check: bool,
    pub diff: bool,
    pub forks: usize,
    /// Only load and validate the playbook.
    pub syntax_check: bool,
    pub known_hosts: Option<PathBuf>,
    pub accept_new_host_keys: bool,
    /// `-u`, `--private-key`, `-k`, `-K` (asked for by the command): where the inventory
    /// sets none.
    pub conn: crate::ops::conn::ConnDefaults,
    /// `-m MODULE [-a ARGS]`: one task on the hosts `playbook` names as a pattern (as the
    /// `ansible` command does), instead of a playbook file.
    pub adhoc: Option<AdHoc>,
}

/// An ad-hoc task: `darkport run -m shell -a 'uptime' web`.
#[derive(Clone, Debug)]
pub struct AdHoc {
    pub module: String,
    pub args: Option<String>,
}

/// The one-play playbook an ad-hoc task runs as, written to `dir`.
fn adhoc_playbook(dir: &std::path::Path, pattern: &str, a: &AdHoc) -> anyhow::Result<PathBuf> {
    let args = a.args.clone().map(Value::String).unwrap_or(Value::Null);
    let mut task = Map::new();
    let name = match &a.args {
        Some(x) => format!("{} {x}", a.module),
        None => a.module.clone(),
    };
    task.insert("name".into(), Value::String(name));
    task.insert(a.module.clone(), args);
    let play = serde_json::json!([{
        "name": format!("ad-hoc {}", a.module),
        "hosts": pattern,
        "gather_facts": false,
        "tasks": [Value::Object(task)],
    }]);
    // JSON is YAML: the loader reads it and reports a bad module as for a playbook.
    let p = dir.join("adhoc.yml");
    std::fs::write(&p, serde_json::to_string_pretty(&play)?)?;
    Ok(p)
}

/// What `darkport run` did.
#[derive(Debug, Serialize)]
pub struct PlayReport {
    pub playbook: PathBuf,
    /// `--syntax-check`: the playbook was only validated.
    pub syntax_checked: bool,
    pub ok: bool,
    /// Some host was unreachable (ansible-playbook exits 4 then, else 2 when one failed).
    pub unreachable: bool,
}

pub fn run_playbook(a: &PlayOptions, rep: &dyn engine::Reporter) -> anyhow::Result<PlayReport> {
    // 1. Everything detectable without a host: YAML, keywords, modules, template syntax.
    let tmp = tempfile::tempdir()?;
    let path = match &a.adhoc {
        Some(h) => adhoc_playbook(tmp.path(), &a.playbook.to_string_lossy(), h)?,
        None => a.playbook.clone(),
    };
    let pb = Playbook::load(&path)?;
    let extra_vars = parse_extra_vars(&a.extra_vars)?;
    if a.syntax_check {
        return Ok(PlayReport {
            playbook: a.playbook.clone(),
            syntax_checked: true,
            ok: true,
            unreachable: false,
        });
    }
    crate::playbook::model::check_vars_files(&pb)?;
    // 2. Inventory (+ group_vars/host_vars next to the playbook, which win).
    let mut inv = Inventory::load(&a.inventory)?;
    inv.set_defaults(a.conn.to_vars());
    if a.adhoc.is_none() {
        inv.add_playbook_vars(&pb.dir)?;
    }
    let hosts = InvHosts {
        inv: &inv,
        limit: a.limit.as_deref(),
        only: None,
    };
    if let Some(l) = &a.limit {
        let s = inv.select_limited("all", Some(l))?;
        if s.hosts.is_empty() {
            bail!("--limit {l:?} matches no host of the inventory");
        }
        for w in &s.warnings {
            rep.event(engine::Event::Warning(w));
        }
    }
    let mut copts = ConnectOpts::default();
    if let Some(k) = &a.known_hosts {
        copts.known_hosts = k.clone();
    }
    copts.accept_new_host_keys = a.accept_new_host_keys;
    let conn = Conn { opts: copts };
    let opts = RunOptions {
        extra_vars,
        tags: split_list(&a.tags),
        skip_tags: split_list(&a.skip_tags),
        check: a.check,
        diff: a.diff,
        forks: a.forks.max(1),
        verbosity: a.verbosity,
        ..Default::default()
    };
    let summary = engine::run(&pb, &hosts, &conn, &opts, rep);
    Ok(PlayReport {
        playbook: a.playbook.clone(),
        syntax_checked: false,
        ok: summary.success(),
        unreachable: summary.stats.values().any(|s| s.unreachable > 0),
    })
}
