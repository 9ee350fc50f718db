//! The executor: plays over hosts with Ansible's linear strategy (each task on every host of
//! the batch, in parallel up to `forks`, before the next task), one transport per host for
//! the whole run, variable precedence, handlers, blocks, loops, retries and the recap.
//!
//! Inputs are deliberately small: a [`HostSource`] (host selection and per-host inventory
//! variables), a [`Connector`] (one `Box<dyn Transport>` per host, opened on first use) and a
//! [`Reporter`] that receives [`Event`]s (only `ui/` prints).

mod controller;
mod executor;
mod handlers;
mod includes;
mod loops;
mod result;
mod state;
mod strategy;
mod trace;
mod vars;

use super::modules::{self, ModCtx, ModError};
use super::template::{self, eval_cond, from_json, py_str, template_value, OMIT};
use crate::playbook::model::{Kw, Play, Playbook, RoleCtx, Task, TaskKind};
use crate::transport::{local::LocalTransport, Become, Transport, TransportError};
use controller::*;
use executor::*;
use handlers::*;
use includes::*;
use loops::*;
use minijinja::value::Value as JValue;
pub use result::TaskResult;
use result::NO_LOG_MSG;
use serde::Serialize;
use serde_json::{json, Map, Value};
use state::*;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strategy::*;
use vars::*;

/// Hosts and their inventory variables (implemented over `inventory::Inventory` in `ops/`).
pub trait HostSource: Sync {
    /// Hosts matching an Ansible pattern, already restricted by `--limit`.
    fn select(&self, pattern: &str) -> Result<Vec<String>, String>;
    /// Ansible's "Could not match supplied host pattern, ignoring: X" for a play's pattern.
    fn pattern_warnings(&self, _pattern: &str) -> Vec<String> {
        Vec::new()
    }
    /// Merged inventory variables of a host (group and host vars at Ansible precedence).
    fn host_vars(&self, host: &str) -> Map<String, Value>;
    fn groups(&self) -> BTreeMap<String, Vec<String>>;
    fn group_names(&self, host: &str) -> Vec<String>;
    fn all_hosts(&self) -> Vec<String>;
}

/// Opens the transport of a host from its variables (`ansible_host`, `ansible_user`, …).
pub trait Connector: Sync {
    fn connect(
        &self,
        host: &str,
        vars: &Map<String, Value>,
    ) -> Result<Box<dyn Transport>, TransportError>;
}

#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub extra_vars: Map<String, Value>,
    /// Per-host variables at the precedence of `extra_vars`, applied after them (darkport's
    /// operations give each node the registry it pulls from).
    pub host_vars: BTreeMap<String, Map<String, Value>>,
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    pub check: bool,
    pub diff: bool,
    pub forks: usize,
    /// `-v` count: 1 shows every result, 2 adds each task's file:line, 3 each host's
    /// connection and the commands sent over it.
    pub verbosity: u8,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Changed,
    Failed,
    Skipped,
    Unreachable,
}

#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Stats {
    pub ok: u32,
    pub changed: u32,
    pub unreachable: u32,
    pub failed: u32,
    pub skipped: u32,
    pub rescued: u32,
    pub ignored: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct ItemResult {
    pub status: Status,
    pub label: String,
    pub result: TaskResult,
}

/// The outcome of one task on one host.
#[derive(Clone, Debug, Serialize)]
pub struct HostResult {
    pub host: String,
    pub task: String,
    pub loc: String,
    pub status: Status,
    pub ignored: bool,
    pub delegated_to: Option<String>,
    /// Print the result body even when ok (debug).
    pub verbose: bool,
    pub result: TaskResult,
    pub items: Vec<ItemResult>,
}

pub enum Event<'a> {
    PlayStart {
        name: &'a str,
    },
    NoHosts {
        pattern: &'a str,
    },
    TaskStart {
        name: &'a str,
        handler: bool,
    },
    Result(&'a HostResult),
    Warning(&'a str),
    /// Detail shown at `-vv` and above (`host` empty when it is not about one host).
    Verbose {
        host: &'a str,
        msg: &'a str,
    },
    Recap(&'a BTreeMap<String, Stats>),
}

pub trait Reporter: Sync {
    fn event(&self, ev: Event<'_>);
}

/// What a run ended with.
#[derive(Debug, Default)]
pub struct RunSummary {
    pub stats: BTreeMap<String, Stats>,
}

impl RunSummary {
    /// True when no host failed or was unreachable.
    pub fn success(&self) -> bool {
        self.stats
            .values()
            .all(|s| s.failed == 0 && s.unreachable == 0)
    }
}

/// Run a loaded playbook. Never panics on host failures: they are in the summary.
pub fn run(
    pb: &Playbook,
    inv: &dyn HostSource,
    conn: &dyn Connector,
    opts: &RunOptions,
    rep: &dyn Reporter,
) -> RunSummary {
    let mut hosts: BTreeMap<String, HostState> = BTreeMap::new();
    let groups = serde_json::to_value(inv.groups()).unwrap_or(Value::Null);
    let mut stop = false;
    for play in &pb.plays {
        let pattern = match &play.hosts {
            Value::Array(a) => a.iter().map(py_str).collect::<Vec<_>>().join(","),
            v => py_str(v),
        };
        let ctx0 = from_json(&Value::Object(opts.extra_vars.clone()));
        let pattern = template::render_str(&pattern, &ctx0).unwrap_or(pattern);
        let name = template::render_str(&play.name, &ctx0).unwrap_or(play.name.clone());
        for w in inv.pattern_warnings(&pattern) {
            rep.event(Event::Warning(&w));
        }
        rep.event(Event::PlayStart { name: &name });
        let selected = match inv.select(&pattern) {
            Ok(h) => h,
            Err(e) => {
                rep.event(Event::Warning(&format!("play {name}: {e}")));
                vec![]
            }
        };
        // Batches are cut from every host the pattern selects; a host that failed or was
        // unreachable in an earlier play is then left out of its batch (as Ansible does).
        let all_selected = selected.clone();
        let selected: Vec<String> = selected
            .into_iter()
            .filter(|h| {
                hosts
                    .get(h)
                    .map(|s| !s.unreachable && !s.failed)
                    .unwrap_or(true)
            })
            .collect();
        if selected.is_empty() {
            rep.event(Event::NoHosts { pattern: &pattern });
            continue;
        }
        for h in &selected {
            hosts
                .entry(h.clone())
                .or_insert_with(|| HostState::new(h, inv.host_vars(h)));
        }
        let role_names = Arc::new(Mutex::new(play.role_names.clone()));
        for b in batches(play, &all_selected) {
            let b: Vec<String> = b.into_iter().filter(|h| selected.contains(h)).collect();
            if b.is_empty() {
                continue;
            }
            let pc = PlayCtx {
                pb,
                play,
                opts,
                inv,
                conn,
                rep,
                groups: groups.clone(),
                play_hosts: selected.clone(),
                batch: b.clone(),
                delegates: Mutex::new(HashMap::new()),
                role_names: role_names.clone(),
            };
            for h in &b {
                let hs = hosts.get_mut(h).unwrap();
                hs.ended = false;
                hs.notified.clear();
                hs.vars_files = Map::new();
            }
            load_vars_files(&pc, &mut hosts, &b);
            run_batch(&pc, &mut hosts, &b);
            // A batch that ended with every host failed or unreachable (any_errors_fatal,
            // max_fail_percentage, or each failing) ends the run: no later batch or play
            // runs, as ansible-playbook stops.
            if b.iter().all(|h| hosts[h].failed || hosts[h].unreachable) {
                stop = true;
                break;
            }
        }
        if stop {
            break;
        }
    }
    let stats: BTreeMap<String, Stats> = hosts
        .iter()
        .map(|(k, v)| (k.clone(), v.stats.clone()))
        .collect();
    rep.event(Event::Recap(&stats));
    RunSummary { stats }
}

/// Each batch host's `vars_files` (names may be templated; the first candidate that exists
/// is read). A file that is missing or does not parse fails that host.
fn load_vars_files(pc: &PlayCtx, hosts: &mut BTreeMap<String, HostState>, b: &[String]) {
    let (play, pb, rep) = (pc.play, pc.pb, pc.rep);
    if play.vars_files.is_empty() {
        return;
    }
    {
        for h in b {
            let vars = {
                let hs = &hosts[h];
                build_vars(pc, hs, &Inherit::default(), &Kw::default(), None)
            };
            let ctx = from_json(&Value::Object(vars));
            let hs = hosts.get_mut(h).unwrap();
            for vf in &play.vars_files {
                let cands = match template_value(vf, &ctx) {
                    Ok(Value::Array(a)) => a,
                    Ok(v) => vec![v],
                    Err(e) => {
                        rep.event(Event::Warning(&format!("vars_files: {e}")));
                        continue;
                    }
                };
                let found = cands.iter().map(py_str).find_map(|f| {
                    [play.dir.join(&f), pb.dir.join(&f)]
                        .into_iter()
                        .find(|p| p.is_file())
                });
                match found {
                    Some(p) => match crate::playbook::model::load_vars_file(&p) {
                        Ok(m) => hs.vars_files.extend(m),
                        Err(e) => {
                            fail_host_now(pc, hs, &format!("vars_files: {e}"));
                        }
                    },
                    None => {
                        fail_host_now(pc, hs, &format!("vars_files: none of {} found", py_str(vf)))
                    }
                }
            }
        }
    }
}

/// One batch of a play: facts, then pre_tasks, roles + tasks, post_tasks, each followed
/// by its handlers; stops when no host is left, on `end_play` or a fatal failure.
fn run_batch(pc: &PlayCtx, hosts: &mut BTreeMap<String, HostState>, b: &[String]) {
    let play = pc.play;
    if play.gather_facts {
        let t = facts_task(play);
        let active = active_hosts(hosts, b);
        for h in run_task(pc, hosts, &t, &Inherit::default(), &active) {
            hosts.get_mut(&h).unwrap().failed = true;
        }
        check_fatal(pc, hosts);
    }
    let sections: [Vec<&Task>; 3] = [
        play.pre_tasks.iter().collect(),
        play.role_tasks.iter().chain(play.tasks.iter()).collect(),
        play.post_tasks.iter().collect(),
    ];
    let mut end_play = false;
    for sec in sections {
        let active = active_hosts(hosts, b);
        if active.is_empty() || end_play {
            break;
        }
        let owned: Vec<Task> = sec.into_iter().cloned().collect();
        let r = run_list(pc, hosts, &owned, &Inherit::default(), &active);
        for h in &r.failed {
            if let Some(hs) = hosts.get_mut(h) {
                hs.failed = true;
            }
        }
        end_play |= r.end_play;
        flush_handlers(pc, hosts);
        if check_fatal(pc, hosts) {
            break;
        }
    }
}
