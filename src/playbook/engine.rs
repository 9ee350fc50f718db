//! The executor: plays over hosts with Ansible's linear strategy (each task on every host of
//! the batch, in parallel up to `forks`, before the next task), one transport per host for
//! the whole run, variable precedence, handlers, blocks, loops, retries and the recap.
//!
//! Inputs are deliberately small: a [`HostSource`] (host selection and per-host inventory
//! variables), a [`Connector`] (one `Box<dyn Transport>` per host, opened on first use) and a
//! [`Reporter`] that receives [`Event`]s (only `ui/` prints).

use super::model::{Kw, Play, Playbook, RoleCtx, Task, TaskKind};
use super::modules::{self, ModCtx, ModError};
use super::template::{self, eval_cond, from_json, py_str, template_value, truthy, OMIT};
use crate::transport::{local::LocalTransport, Become, Transport, TransportError};
use minijinja::value::Value as JValue;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Hosts and their inventory variables (implemented over `inventory::Inventory` in `ops/`).
pub trait HostSource: Sync {
    /// Hosts matching an Ansible pattern, already restricted by `--limit`.
    fn select(&self, pattern: &str) -> Result<Vec<String>, String>;
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
    pub tags: Vec<String>,
    pub skip_tags: Vec<String>,
    pub check: bool,
    pub diff: bool,
    pub forks: usize,
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
    pub result: Map<String, Value>,
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
    pub result: Map<String, Value>,
    pub items: Vec<ItemResult>,
}

pub enum Event<'a> {
    PlayStart { name: &'a str },
    NoHosts { pattern: &'a str },
    TaskStart { name: &'a str, handler: bool },
    Result(&'a HostResult),
    Warning(&'a str),
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

const NO_LOG_MSG: &str =
    "the output has been hidden due to the fact that 'no_log: true' was specified for this result";

struct HostState {
    name: String,
    inv_vars: Map<String, Value>,
    facts: Map<String, Value>,
    include_vars: Map<String, Value>,
    set_facts: Map<String, Value>,
    vars_files: Map<String, Value>,
    transport: Option<Box<dyn Transport>>,
    failed: bool,
    unreachable: bool,
    ended: bool,
    notified: Vec<String>,
    stats: Stats,
    /// The last failed result and task name (for `ansible_failed_result` in rescue).
    last_failed: Option<(Value, String)>,
}

/// Read-only context of one play, shared by the worker threads.
struct PlayCtx<'a> {
    pb: &'a Playbook,
    play: &'a Play,
    opts: &'a RunOptions,
    inv: &'a dyn HostSource,
    conn: &'a dyn Connector,
    rep: &'a dyn Reporter,
    groups: Value,
    play_hosts: Vec<String>,
    batch: Vec<String>,
    delegates: Mutex<HashMap<String, Box<dyn Transport>>>,
}

/// Block/role keywords inherited by the tasks inside.
#[derive(Clone, Default)]
struct Inherit {
    kws: Vec<Kw>,
    role: Option<Arc<RoleCtx>>,
}

impl Inherit {
    fn push(&self, kw: &Kw, role: Option<Arc<RoleCtx>>) -> Inherit {
        let mut n = self.clone();
        n.kws.push(kw.clone());
        if role.is_some() {
            n.role = role;
        }
        n
    }
    fn last<F: Fn(&Kw) -> Option<&Value>>(&self, task: &Kw, f: F) -> Option<Value> {
        f(task)
            .or_else(|| self.kws.iter().rev().find_map(&f))
            .cloned()
    }
    fn tags(&self, task: &Kw, play: &Kw) -> HashSet<String> {
        let mut t: HashSet<String> = task.tags.iter().cloned().collect();
        for k in &self.kws {
            t.extend(k.tags.iter().cloned());
        }
        t.extend(play.tags.iter().cloned());
        t
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
    'plays: for play in &pb.plays {
        let pattern = match &play.hosts {
            Value::Array(a) => a.iter().map(py_str).collect::<Vec<_>>().join(","),
            v => py_str(v),
        };
        let ctx0 = from_json(&Value::Object(opts.extra_vars.clone()));
        let pattern = template::render_str(&pattern, &ctx0).unwrap_or(pattern);
        let name = template::render_str(&play.name, &ctx0).unwrap_or(play.name.clone());
        rep.event(Event::PlayStart { name: &name });
        let selected = match inv.select(&pattern) {
            Ok(h) => h,
            Err(e) => {
                rep.event(Event::Warning(&format!("play {name}: {e}")));
                vec![]
            }
        };
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
            hosts.entry(h.clone()).or_insert_with(|| HostState {
                name: h.clone(),
                inv_vars: inv.host_vars(h),
                facts: Map::new(),
                include_vars: Map::new(),
                set_facts: Map::new(),
                vars_files: Map::new(),
                transport: None,
                failed: false,
                unreachable: false,
                ended: false,
                notified: vec![],
                stats: Stats::default(),
                last_failed: None,
            });
        }
        for b in batches(play, &selected) {
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
            };
            for h in &b {
                let hs = hosts.get_mut(h).unwrap();
                hs.ended = false;
                hs.notified.clear();
                hs.vars_files = Map::new();
            }
            // vars_files, per host (names may be templated).
            if !play.vars_files.is_empty() {
                for h in &b {
                    let vars = {
                        let hs = &hosts[h];
                        build_vars(&pc, hs, &Inherit::default(), &Kw::default(), None)
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
                            let p = pb.dir.join(&f);
                            p.is_file().then_some(p)
                        });
                        match found {
                            Some(p) => match super::model::load_vars_file(&p) {
                                Ok(m) => hs.vars_files.extend(m),
                                Err(e) => {
                                    fail_host_now(&pc, hs, &format!("vars_files: {e}"));
                                }
                            },
                            None => fail_host_now(
                                &pc,
                                hs,
                                &format!("vars_files: none of {} found", py_str(vf)),
                            ),
                        }
                    }
                }
            }
            if play.gather_facts {
                let t = facts_task(play);
                let active = active_hosts(&hosts, &b);
                run_task(&pc, &mut hosts, &t, &Inherit::default(), &active);
                check_fatal(&pc, &mut hosts);
            }
            let sections: [Vec<&Task>; 3] = [
                play.pre_tasks.iter().collect(),
                play.role_tasks.iter().chain(play.tasks.iter()).collect(),
                play.post_tasks.iter().collect(),
            ];
            let mut end_play = false;
            for sec in sections {
                let active = active_hosts(&hosts, &b);
                if active.is_empty() || end_play {
                    break;
                }
                let owned: Vec<Task> = sec.into_iter().cloned().collect();
                let r = run_list(&pc, &mut hosts, &owned, &Inherit::default(), &active);
                for h in &r.failed {
                    if let Some(hs) = hosts.get_mut(h) {
                        hs.failed = true;
                    }
                }
                end_play |= r.end_play;
                flush_handlers(&pc, &mut hosts);
                if check_fatal(&pc, &mut hosts) {
                    break;
                }
            }
            if play.any_errors_fatal && b.iter().any(|h| hosts[h].failed || hosts[h].unreachable) {
                continue 'plays;
            }
        }
    }
    let stats: BTreeMap<String, Stats> = hosts
        .iter()
        .map(|(k, v)| (k.clone(), v.stats.clone()))
        .collect();
    rep.event(Event::Recap(&stats));
    RunSummary { stats }
}

fn fail_host_now(pc: &PlayCtx, hs: &mut HostState, msg: &str) {
    hs.failed = true;
    hs.stats.failed += 1;
    let r = HostResult {
        host: hs.name.clone(),
        task: "vars_files".into(),
        loc: pc.play.loc.to_string(),
        status: Status::Failed,
        ignored: false,
        delegated_to: None,
        verbose: false,
        result: json!({"failed": true, "msg": msg})
            .as_object()
            .unwrap()
            .clone(),
        items: vec![],
    };
    pc.rep.event(Event::Result(&r));
}

/// `any_errors_fatal` / `max_fail_percentage`: returns true when the play must stop.
fn check_fatal(pc: &PlayCtx, hosts: &mut BTreeMap<String, HostState>) -> bool {
    let n = pc.batch.len().max(1);
    let bad = pc
        .batch
        .iter()
        .filter(|h| hosts[*h].failed || hosts[*h].unreachable)
        .count();
    let stop = (pc.play.any_errors_fatal && bad > 0)
        || pc
            .play
            .max_fail_percentage
            .map(|p| (bad as f64) * 100.0 / (n as f64) > p)
            .unwrap_or(false);
    if stop {
        for h in &pc.batch {
            if let Some(hs) = hosts.get_mut(h) {
                hs.ended = true;
                if !hs.failed && !hs.unreachable && pc.play.any_errors_fatal {
                    hs.failed = true;
                }
            }
        }
    }
    stop
}

fn batches(play: &Play, hosts: &[String]) -> Vec<Vec<String>> {
    let sizes: Vec<Value> = match &play.serial {
        None => return vec![hosts.to_vec()],
        Some(Value::Array(a)) => a.clone(),
        Some(v) => vec![v.clone()],
    };
    let n = hosts.len();
    let size_of = |v: &Value| -> usize {
        let s = py_str(v);
        let k = if let Some(p) = s.strip_suffix('%') {
            ((p.trim().parse::<f64>().unwrap_or(100.0) / 100.0) * n as f64) as usize
        } else {
            s.trim().parse::<usize>().unwrap_or(n)
        };
        k.max(1)
    };
    let mut out = Vec::new();
    let mut i = 0;
    let mut idx = 0;
    while i < n {
        let sz = if sizes.is_empty() {
            n
        } else {
            size_of(&sizes[idx.min(sizes.len() - 1)])
        };
        out.push(hosts[i..(i + sz).min(n)].to_vec());
        i += sz;
        idx += 1;
    }
    out
}

fn active_hosts(hosts: &BTreeMap<String, HostState>, batch: &[String]) -> Vec<String> {
    batch
        .iter()
        .filter(|h| {
            let s = &hosts[*h];
            !s.failed && !s.unreachable && !s.ended
        })
        .cloned()
        .collect()
}

fn facts_task(play: &Play) -> Task {
    Task {
        loc: play.loc.clone(),
        name: Some("Gathering Facts".into()),
        kind: TaskKind::Module {
            module: "setup",
            args: json!({}),
        },
        kw: Kw {
            tags: vec!["always".into()],
            ..Default::default()
        },
        loop_: None,
        with: None,
        loop_control: Map::new(),
        register: None,
        notify: vec![],
        listen: vec![],
        changed_when: None,
        failed_when: None,
        until: None,
        retries: None,
        delay: None,
        role: None,
    }
}

#[derive(Default)]
struct ListResult {
    failed: Vec<String>,
    end_play: bool,
}

fn run_list(
    pc: &PlayCtx,
    hosts: &mut BTreeMap<String, HostState>,
    tasks: &[Task],
    inh: &Inherit,
    entering: &[String],
) -> ListResult {
    let mut res = ListResult::default();
    let mut active: Vec<String> = entering.to_vec();
    for task in tasks {
        active.retain(|h| {
            let s = &hosts[h];
            !s.unreachable && !s.ended && !res.failed.contains(h)
        });
        if active.is_empty() || res.end_play {
            break;
        }
        match &task.kind {
            TaskKind::Block {
                block,
                rescue,
                always,
            } => {
                if !tags_match(pc, inh, task) && !block_has_tagged(pc, inh, task) {
                    continue;
                }
                let sub = inh.push(&task.kw, None);
                // A role entry: the role context applies to its tasks.
                let sub = match block.first().and_then(|t| t.role.clone()) {
                    Some(r)
                        if task
                            .name
                            .as_deref()
                            .map(|n| n.starts_with("role "))
                            .unwrap_or(false) =>
                    {
                        Inherit {
                            role: Some(r),
                            ..sub
                        }
                    }
                    _ => sub,
                };
                let r = run_list(pc, hosts, block, &sub, &active);
                res.end_play |= r.end_play;
                let mut still_failed: Vec<String> = r.failed.clone();
                if !rescue.is_empty() && !r.failed.is_empty() {
                    let to_rescue: Vec<String> = r
                        .failed
                        .iter()
                        .filter(|h| !hosts[*h].unreachable)
                        .cloned()
                        .collect();
                    for h in &to_rescue {
                        let s = hosts.get_mut(h).unwrap();
                        s.stats.rescued += 1;
                        s.stats.failed = s.stats.failed.saturating_sub(1);
                        if let Some((r, t)) = s.last_failed.clone() {
                            s.set_facts.insert("ansible_failed_result".into(), r);
                            s.set_facts
                                .insert("ansible_failed_task".into(), json!({"name": t}));
                        }
                    }
                    let rr = run_list(pc, hosts, rescue, &sub, &to_rescue);
                    res.end_play |= rr.end_play;
                    still_failed = r
                        .failed
                        .iter()
                        .filter(|h| hosts[*h].unreachable || rr.failed.contains(h))
                        .cloned()
                        .collect();
                    for h in &rr.failed {
                        if !r.failed.contains(h) {
                            still_failed.push(h.clone())
                        }
                    }
                }
                if !always.is_empty() {
                    let who: Vec<String> = active
                        .iter()
                        .filter(|h| !hosts[*h].unreachable)
                        .cloned()
                        .collect();
                    let ar = run_list(pc, hosts, always, &sub, &who);
                    res.end_play |= ar.end_play;
                    for h in ar.failed {
                        if !still_failed.contains(&h) {
                            still_failed.push(h)
                        }
                    }
                }
                res.failed.extend(still_failed);
            }
            TaskKind::Meta(what) => {
                if !tags_match(pc, inh, task) {
                    continue;
                }
                match what.as_str() {
                    "flush_handlers" => {
                        pc.rep.event(Event::TaskStart {
                            name: "flush_handlers",
                            handler: false,
                        });
                        // Hosts that failed earlier in this list must not run handlers.
                        let failed_now: Vec<String> = res.failed.clone();
                        for h in &failed_now {
                            hosts.get_mut(h).unwrap().failed = true;
                        }
                        flush_handlers(pc, hosts);
                    }
                    "end_play" => {
                        res.end_play = true;
                        for h in &active {
                            hosts.get_mut(h).unwrap().ended = true;
                        }
                    }
                    "end_host" => {
                        // Only hosts whose `when` holds.
                        for h in &active {
                            let hs = &hosts[h];
                            let vars = build_vars(pc, hs, inh, &task.kw, task.role.as_ref());
                            let ctx = from_json(&Value::Object(vars));
                            let when = all_when(inh, &task.kw);
                            if eval_cond(&Value::Array(when), &ctx).unwrap_or(false) {
                                hosts.get_mut(h).unwrap().ended = true;
                            }
                        }
                    }
                    _ => {}
                }
            }
            TaskKind::IncludeRole { role, tasks: rt } => {
                if !tags_match(pc, inh, task) {
                    continue;
                }
                let sub = Inherit {
                    role: Some(role.clone()),
                    ..inh.push(&task.kw, None)
                };
                let r = run_list(pc, hosts, rt, &sub, &active);
                res.failed.extend(r.failed);
                res.end_play |= r.end_play;
            }
            TaskKind::Include { file, base } => {
                if !tags_match(pc, inh, task) {
                    continue;
                }
                // Group hosts by the resolved file (and loop items), then run each group.
                let mut groups: Vec<(PathBuf, Vec<(String, LoopItem)>)> = vec![];
                for h in &active {
                    let hs = &hosts[h];
                    let vars = build_vars(pc, hs, inh, &task.kw, task.role.as_ref());
                    let ctx = from_json(&Value::Object(vars));
                    let when = all_when(inh, &task.kw);
                    match eval_cond(&Value::Array(when), &ctx) {
                        Ok(true) => {}
                        Ok(false) => continue,
                        Err(e) => {
                            report_simple_fail(pc, hosts.get_mut(h).unwrap(), task, &e.msg);
                            res.failed.push(h.clone());
                            continue;
                        }
                    }
                    let items: Vec<Option<(String, Value)>> = match &task.loop_ {
                        None => vec![None],
                        Some(l) => match loop_items(task, l, &ctx) {
                            Ok(items) => {
                                let var = task
                                    .loop_control
                                    .get("loop_var")
                                    .map(py_str)
                                    .unwrap_or("item".into());
                                items.into_iter().map(|i| Some((var.clone(), i))).collect()
                            }
                            Err(e) => {
                                report_simple_fail(pc, hosts.get_mut(h).unwrap(), task, &e);
                                res.failed.push(h.clone());
                                continue;
                            }
                        },
                    };
                    for it in items {
                        let ctx2 = match &it {
                            Some((k, v)) => {
                                let mut m = build_vars(pc, hs, inh, &task.kw, task.role.as_ref());
                                m.insert(k.clone(), v.clone());
                                from_json(&Value::Object(m))
                            }
                            None => ctx.clone(),
                        };
                        let f = match template_value(file, &ctx2) {
                            Ok(v) => py_str(&v),
                            Err(e) => {
                                report_simple_fail(pc, hosts.get_mut(h).unwrap(), task, &e.msg);
                                res.failed.push(h.clone());
                                break;
                            }
                        };
                        let mut p = PathBuf::from(&f);
                        if p.is_relative() {
                            let cands = [
                                base.join(&f),
                                task.role
                                    .as_ref()
                                    .map(|r| r.path.join("tasks").join(&f))
                                    .unwrap_or_default(),
                                pc.pb.dir.join(&f),
                            ];
                            p = cands
                                .iter()
                                .find(|c| c.is_file())
                                .cloned()
                                .unwrap_or(cands[0].clone());
                        }
                        match groups.iter_mut().find(|(gp, _)| *gp == p) {
                            Some((_, hs_)) => hs_.push((h.clone(), it)),
                            None => groups.push((p, vec![(h.clone(), it)])),
                        }
                    }
                }
                for (p, members) in &groups {
                    for (h, it) in members {
                        let hs = hosts.get_mut(h).unwrap();
                        hs.stats.ok += 1;
                        let mut result = Map::new();
                        result.insert("included".into(), Value::String(p.display().to_string()));
                        if let Some((k, v)) = it {
                            result.insert(k.clone(), v.clone());
                        }
                        let r = HostResult {
                            host: h.clone(),
                            task: task.display_name(),
                            loc: task.loc.to_string(),
                            status: Status::Ok,
                            ignored: false,
                            delegated_to: None,
                            verbose: false,
                            result,
                            items: vec![],
                        };
                        pc.rep.event(Event::Result(&r));
                    }
                }
                for (p, members) in groups {
                    let tasks = match Playbook::load_tasks(&pc.pb.dir, &p, &task.role) {
                        Ok(t) => t,
                        Err(e) => {
                            for (h, _) in &members {
                                report_simple_fail(
                                    pc,
                                    hosts.get_mut(h).unwrap(),
                                    task,
                                    &e.to_string(),
                                );
                                res.failed.push(h.clone());
                            }
                            continue;
                        }
                    };
                    // Items become task vars of the included tasks.
                    let mut by_item: Vec<(LoopItem, Vec<String>)> = vec![];
                    for (h, it) in members {
                        match by_item.iter_mut().find(|(i, _)| *i == it) {
                            Some((_, v)) => v.push(h),
                            None => by_item.push((it, vec![h])),
                        }
                    }
                    for (it, hs_) in by_item {
                        let mut kw = task.kw.clone();
                        kw.when.clear();
                        if let Some((k, v)) = it {
                            kw.vars.insert(k, v);
                        }
                        let sub = inh.push(&kw, None);
                        let r = run_list(pc, hosts, &tasks, &sub, &hs_);
                        res.failed.extend(r.failed);
                        res.end_play |= r.end_play;
                    }
                }
            }
            TaskKind::Module { .. } => {
                if !tags_match(pc, inh, task) {
                    continue;
                }
                let failed = run_task(pc, hosts, task, inh, &active);
                res.failed.extend(failed);
            }
        }
        if check_fatal(pc, hosts) {
            // any_errors_fatal: everyone stops here.
            for h in &active {
                if !res.failed.contains(h) && hosts[h].failed {
                    res.failed.push(h.clone());
                }
            }
            res.end_play = true;
            break;
        }
    }
    res.failed.dedup();
    res
}

fn report_simple_fail(pc: &PlayCtx, hs: &mut HostState, task: &Task, msg: &str) {
    hs.stats.failed += 1;
    let r = HostResult {
        host: hs.name.clone(),
        task: task.display_name(),
        loc: task.loc.to_string(),
        status: Status::Failed,
        ignored: false,
        delegated_to: None,
        verbose: false,
        result: json!({"failed": true, "msg": format!("{}: {msg}", task.loc)})
            .as_object()
            .unwrap()
            .clone(),
        items: vec![],
    };
    pc.rep.event(Event::Result(&r));
}

fn tags_match(pc: &PlayCtx, inh: &Inherit, task: &Task) -> bool {
    let tags = inh.tags(&task.kw, &pc.play.kw);
    let only = &pc.opts.tags;
    let skip = &pc.opts.skip_tags;
    let has = |t: &str| tags.contains(t);
    if !skip.is_empty() {
        if skip.iter().any(|s| s == "all") && !has("always") {
            return false;
        }
        if skip.iter().any(|s| tags.contains(s)) {
            return false;
        }
        if skip.iter().any(|s| s == "tagged") && !tags.is_empty() && !has("always") {
            return false;
        }
        if skip.iter().any(|s| s == "untagged") && tags.is_empty() {
            return false;
        }
    }
    if has("always") && !skip.iter().any(|s| s == "always") {
        return true;
    }
    if only.is_empty() || only.iter().any(|t| t == "all") {
        return !has("never") || only.iter().any(|t| tags.contains(t));
    }
    only.iter().any(|t| {
        tags.contains(t)
            || (t == "tagged" && !tags.is_empty())
            || (t == "untagged" && tags.is_empty())
    })
}

/// A block runs when any task inside matches the tag selection.
fn block_has_tagged(pc: &PlayCtx, inh: &Inherit, task: &Task) -> bool {
    let sub = inh.push(&task.kw, None);
    match &task.kind {
        TaskKind::Block {
            block,
            rescue,
            always,
        } => block
            .iter()
            .chain(rescue)
            .chain(always)
            .any(|t| tags_match(pc, &sub, t) || block_has_tagged(pc, &sub, t)),
        TaskKind::IncludeRole { tasks, .. } => tasks.iter().any(|t| tags_match(pc, &sub, t)),
        _ => false,
    }
}

fn all_when(inh: &Inherit, kw: &Kw) -> Vec<Value> {
    let mut w: Vec<Value> = inh.kws.iter().flat_map(|k| k.when.clone()).collect();
    w.extend(kw.when.iter().cloned());
    w
}

/// Merge variables for one host at Ansible's precedence.
fn build_vars(
    pc: &PlayCtx,
    hs: &HostState,
    inh: &Inherit,
    task_kw: &Kw,
    task_role: Option<&Arc<RoleCtx>>,
) -> Map<String, Value> {
    let role = task_role.or(inh.role.as_ref());
    let mut m: Map<String, Value> = Map::new();
    let mut lazy: HashSet<String> = HashSet::new();
    let mut put = |m: &mut Map<String, Value>, src: &Map<String, Value>, is_lazy: bool| {
        for (k, v) in src {
            m.insert(k.clone(), v.clone());
            if is_lazy {
                lazy.insert(k.clone());
            } else {
                lazy.remove(k);
            }
        }
    };
    for r in &pc.play.roles {
        put(&mut m, &r.defaults, true);
    }
    if let Some(r) = role {
        put(&mut m, &r.defaults, true);
    }
    put(&mut m, &hs.inv_vars, true);
    put(&mut m, &hs.facts, false);
    put(&mut m, &pc.play.vars, true);
    put(&mut m, &hs.vars_files, true);
    for r in &pc.play.roles {
        put(&mut m, &r.vars, true);
    }
    if let Some(r) = role {
        put(&mut m, &r.vars, true);
    }
    for k in &inh.kws {
        put(&mut m, &k.vars, true);
    }
    put(&mut m, &task_kw.vars, true);
    put(&mut m, &hs.include_vars, true);
    put(&mut m, &hs.set_facts, false);
    if let Some(r) = role {
        put(&mut m, &r.params, true);
    }
    put(&mut m, &pc.opts.extra_vars, true);
    // Magic variables.
    let magic = json!({
        "inventory_hostname": hs.name,
        "inventory_hostname_short": hs.name.split('.').next().unwrap_or(&hs.name),
        "group_names": pc.inv.group_names(&hs.name),
        "groups": pc.groups,
        "playbook_dir": abs(&pc.pb.dir),
        "inventory_dir": Value::Null,
        "ansible_play_hosts": pc.play_hosts,
        "ansible_play_hosts_all": pc.play_hosts,
        "ansible_play_batch": pc.batch,
        "play_hosts": pc.batch,
        "ansible_play_name": pc.play.name,
        "ansible_check_mode": pc.opts.check,
        "ansible_diff_mode": pc.opts.diff,
        "ansible_run_tags": if pc.opts.tags.is_empty() { vec!["all".to_string()] } else { pc.opts.tags.clone() },
        "ansible_skip_tags": pc.opts.skip_tags,
        "ansible_version": {"full": "2.19.0", "major": 2, "minor": 19, "revision": 0, "string": "2.19.0 (darkport)"},
        "omit": OMIT,
    });
    for (k, v) in magic.as_object().unwrap() {
        m.insert(k.clone(), v.clone());
        lazy.remove(k);
    }
    if let Some(r) = role {
        m.insert("role_path".into(), Value::String(abs(&r.path)));
        m.insert("role_name".into(), Value::String(r.name.clone()));
    }
    if !hs.facts.contains_key("ansible_facts") {
        m.insert("ansible_facts".into(), Value::Object(Map::new()));
    }
    resolve_lazy(&mut m, &lazy);
    m
}

fn abs(p: &std::path::Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

fn has_template(v: &Value) -> bool {
    match v {
        Value::String(s) => template::is_template(s),
        Value::Array(a) => a.iter().any(has_template),
        Value::Object(o) => o.values().any(has_template),
        _ => false,
    }
}

/// Ansible templates variables when they are used; we resolve every templated variable up
/// front (a few passes for chains). Variables whose template fails are left out, so a use
/// of them reports them as undefined.
fn resolve_lazy(m: &mut Map<String, Value>, lazy: &HashSet<String>) {
    let mut pending: Vec<String> = lazy
        .iter()
        .filter(|k| m.get(*k).map(has_template).unwrap_or(false))
        .cloned()
        .collect();
    if pending.is_empty() {
        return;
    }
    pending.sort();
    for _ in 0..8 {
        let ctx = from_json(&Value::Object(m.clone()));
        let mut next = Vec::new();
        let mut progressed = false;
        for k in &pending {
            let v = &m[k.as_str()];
            match template_value(v, &ctx) {
                Ok(nv) => {
                    if has_template(&nv) && nv != *v {
                        progressed = true;
                        m.insert(k.clone(), nv);
                        next.push(k.clone());
                    } else if has_template(&nv) {
                        m.insert(k.clone(), nv);
                    } else {
                        progressed = true;
                        m.insert(k.clone(), nv);
                    }
                }
                Err(_) => next.push(k.clone()),
            }
        }
        pending = next;
        if pending.is_empty() || !progressed {
            break;
        }
    }
    for k in pending {
        m.remove(&k);
    }
}

fn hostvars_value(pc: &PlayCtx, hosts: &BTreeMap<String, HostState>) -> Value {
    let mut hv = Map::new();
    for h in pc.inv.all_hosts() {
        let mut m = match hosts.get(&h) {
            Some(hs) => {
                let mut m = hs.inv_vars.clone();
                m.extend(hs.facts.clone());
                m.extend(hs.vars_files.clone());
                m.extend(hs.include_vars.clone());
                m.extend(hs.set_facts.clone());
                m
            }
            None => pc.inv.host_vars(&h),
        };
        m.insert("inventory_hostname".into(), Value::String(h.clone()));
        m.insert("group_names".into(), json!(pc.inv.group_names(&h)));
        let ctx = from_json(&Value::Object(m.clone()));
        for (k, v) in m.clone() {
            if has_template(&v) {
                if let Ok(nv) = template_value(&v, &ctx) {
                    m.insert(k, nv);
                }
            }
        }
        hv.insert(h, Value::Object(m));
    }
    Value::Object(hv)
}

/// Run one module task on the given hosts in parallel; updates state and stats, reports
/// results, returns the hosts that failed.
fn run_task(
    pc: &PlayCtx,
    hosts: &mut BTreeMap<String, HostState>,
    task: &Task,
    inh: &Inherit,
    active: &[String],
) -> Vec<String> {
    let name = {
        let ctx = from_json(&Value::Object(pc.opts.extra_vars.clone()));
        let mut pv = pc.play.vars.clone();
        pv.extend(pc.opts.extra_vars.clone());
        let _ = ctx;
        let ctx = from_json(&Value::Object(pv));
        let n = task.display_name();
        template::render_str(&n, &ctx).unwrap_or(n)
    };
    pc.rep.event(Event::TaskStart {
        name: &name,
        handler: false,
    });
    let run_once = inh
        .last(&task.kw, |k| k.run_once.as_ref())
        .map(|v| template::ansible_bool(&v))
        .unwrap_or(false);
    let needs_hostvars = format!("{:?}{:?}", task, pc.play.vars).contains("hostvars")
        || pc
            .play
            .roles
            .iter()
            .any(|r| format!("{:?}", r).contains("hostvars"));
    let hostvars = if needs_hostvars {
        Some(hostvars_value(pc, hosts))
    } else {
        None
    };
    let targets: Vec<String> = if run_once {
        active.iter().take(1).cloned().collect()
    } else {
        active.to_vec()
    };
    let results: Mutex<Vec<(String, HostResult, HostEffects)>> = Mutex::new(vec![]);
    {
        let mut refs: Vec<&mut HostState> = hosts
            .iter_mut()
            .filter(|(k, _)| targets.contains(k))
            .map(|(_, v)| v)
            .collect();
        // Keep the play's host order.
        refs.sort_by_key(|h| targets.iter().position(|t| *t == h.name));
        let queue = Mutex::new(refs.into_iter());
        let workers = pc.opts.forks.max(1).min(targets.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| loop {
                    let next = queue.lock().unwrap().next();
                    let Some(hs) = next else { break };
                    let (r, eff) = exec_on_host(pc, hs, task, inh, &name, hostvars.as_ref());
                    pc.rep.event(Event::Result(&r));
                    results.lock().unwrap().push((hs.name.clone(), r, eff));
                });
            }
        });
    }
    let mut results = results.into_inner().unwrap();
    // run_once: the result applies to every host of the batch.
    if run_once {
        if let Some((_, r, eff)) = results.first().cloned() {
            for h in active.iter().skip(1) {
                let mut r2 = r.clone();
                r2.host = h.clone();
                results.push((h.clone(), r2, eff.clone()));
            }
        }
    }
    let mut failed = vec![];
    for (h, r, eff) in results {
        let hs = hosts.get_mut(&h).unwrap();
        apply_effects(hs, task, &r, eff);
        match r.status {
            Status::Unreachable => {
                hs.unreachable = true;
                hs.stats.unreachable += 1;
                failed.push(h);
            }
            Status::Failed if r.ignored => {
                hs.stats.ok += 1;
                hs.stats.ignored += 1;
                if r.result.get("changed").map(truthy).unwrap_or(false) {
                    hs.stats.changed += 1;
                }
            }
            Status::Failed => {
                hs.stats.failed += 1;
                hs.last_failed = Some((Value::Object(r.result.clone()), r.task.clone()));
                failed.push(h);
            }
            Status::Skipped => hs.stats.skipped += 1,
            Status::Ok => hs.stats.ok += 1,
            Status::Changed => {
                hs.stats.ok += 1;
                hs.stats.changed += 1;
            }
        }
    }
    failed
}

#[derive(Clone, Default)]
struct HostEffects {
    set_facts: Map<String, Value>,
    include_vars: Map<String, Value>,
    facts: Option<Map<String, Value>>,
    register: Option<Value>,
    notify: Vec<String>,
}

fn apply_effects(hs: &mut HostState, task: &Task, _r: &HostResult, eff: HostEffects) {
    if let Some(f) = eff.facts {
        hs.facts.extend(f);
    }
    hs.set_facts.extend(eff.set_facts);
    hs.include_vars.extend(eff.include_vars);
    if let (Some(name), Some(v)) = (&task.register, eff.register) {
        hs.set_facts.insert(name.clone(), v);
    }
    for n in eff.notify {
        if !hs.notified.contains(&n) {
            hs.notified.push(n);
        }
    }
}

fn result_status(r: &Map<String, Value>) -> Status {
    if r.get("unreachable").map(truthy).unwrap_or(false) {
        Status::Unreachable
    } else if r.get("failed").map(truthy).unwrap_or(false) {
        Status::Failed
    } else if r.get("skipped").map(truthy).unwrap_or(false) {
        Status::Skipped
    } else if r.get("changed").map(truthy).unwrap_or(false) {
        Status::Changed
    } else {
        Status::Ok
    }
}

fn loop_items(task: &Task, l: &Value, ctx: &JValue) -> Result<Vec<Value>, String> {
    let v = match l {
        Value::String(s) if !template::is_template(s) && task.with.is_none() => {
            return Err(format!(
                "Invalid data passed to 'loop', it requires a list, got this instead: {s}"
            ))
        }
        Value::String(s) if !template::is_template(s) && task.with.is_some() => {
            // `with_items: x` with a bare variable name (old style).
            template::eval_expr(s, ctx).unwrap_or(Value::String(s.clone()))
        }
        other => template_value(other, ctx).map_err(|e| e.msg)?,
    };
    let with = task.with.as_deref();
    Ok(match (with, v) {
        (Some("items"), Value::Array(a)) => a
            .into_iter()
            .flat_map(|x| match x {
                Value::Array(inner) => inner,
                o => vec![o],
            })
            .collect(),
        (Some("flattened"), Value::Array(a)) => {
            fn fl(a: Vec<Value>, out: &mut Vec<Value>) {
                for x in a {
                    match x {
                        Value::Array(i) => fl(i, out),
                        o => out.push(o),
                    }
                }
            }
            let mut out = vec![];
            fl(a, &mut out);
            out
        }
        (Some("dict"), Value::Object(m)) => m
            .into_iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect(),
        (Some("indexed_items"), Value::Array(a)) => a
            .into_iter()
            .enumerate()
            .map(|(i, x)| json!([i, x]))
            .collect(),
        (Some("together"), Value::Array(a)) => {
            let lists: Vec<Vec<Value>> = a
                .into_iter()
                .map(|x| match x {
                    Value::Array(i) => i,
                    o => vec![o],
                })
                .collect();
            let n = lists.iter().map(|l| l.len()).max().unwrap_or(0);
            (0..n)
                .map(|i| Value::Array(lists.iter().map(|l| l.get(i).cloned().unwrap_or(Value::Null)).collect()))
                .collect()
        }
        (Some("nested"), Value::Array(a)) => {
            let mut acc: Vec<Vec<Value>> = vec![vec![]];
            for l in a {
                let l = match l {
                    Value::Array(i) => i,
                    o => vec![o],
                };
                acc = acc
                    .into_iter()
                    .flat_map(|p| {
                        l.iter().map(move |x| {
                            let mut p2 = p.clone();
                            p2.push(x.clone());
                            p2
                        })
                    })
                    .collect();
            }
            acc.into_iter().map(Value::Array).collect()
        }
        (Some("sequence"), v) => {
            let s = py_str(&v);
            let kv = super::model::parse_kv(&s, false);
            let start: i64 = kv.get("start").map(py_str).and_then(|x| x.parse().ok()).unwrap_or(1);
            let end: i64 = kv.get("end").map(py_str).and_then(|x| x.parse().ok())
                .or_else(|| kv.get("count").map(py_str).and_then(|x| x.parse::<i64>().ok()).map(|c| start + c - 1))
                .unwrap_or(start);
            let stride: i64 = kv.get("stride").map(py_str).and_then(|x| x.parse().ok()).unwrap_or(1);
            let fmt = kv.get("format").map(py_str);
            let mut out = vec![];
            let mut i = start;
            while (stride > 0 && i <= end) || (stride < 0 && i >= end) {
                out.push(match &fmt {
                    Some(f) => Value::String(f.replace("%d", &i.to_string()).replace("%02d", &format!("{i:02}")).replace("%03d", &format!("{i:03}"))),
                    None => Value::String(i.to_string()),
                });
                i += stride;
                if stride == 0 {
                    break;
                }
            }
            out
        }
        (_, Value::Array(a)) => a,
        (Some(_), Value::Null) => vec![],
        (Some(_), o) => vec![o],
        (None, o) => {
            return Err(format!(
                "Invalid data passed to 'loop', it requires a list, got this instead: {}. Hint: If you passed a list/dict of just one element, try adding wantlist=True to your lookup invocation or use q/query instead of lookup.",
                py_str(&o)
            ))
        }
    })
}

/// Run a task (all its loop items, retries, conditions) on one host.
fn exec_on_host(
    pc: &PlayCtx,
    hs: &mut HostState,
    task: &Task,
    inh: &Inherit,
    name: &str,
    hostvars: Option<&Value>,
) -> (HostResult, HostEffects) {
    let mut eff = HostEffects::default();
    let mut vars = build_vars(pc, hs, inh, &task.kw, task.role.as_ref());
    if let Some(hv) = hostvars {
        vars.insert("hostvars".into(), hv.clone());
    }
    let no_log = inh
        .last(&task.kw, |k| k.no_log.as_ref())
        .map(|v| {
            template::ansible_bool(
                &template_value(&v, &from_json(&Value::Object(vars.clone()))).unwrap_or(v),
            )
        })
        .unwrap_or(false);
    let ignore_errors = inh
        .last(&task.kw, |k| k.ignore_errors.as_ref())
        .map(|v| {
            template::ansible_bool(
                &template_value(&v, &from_json(&Value::Object(vars.clone()))).unwrap_or(v),
            )
        })
        .unwrap_or(false);
    let when = all_when(inh, &task.kw);
    let mut hr = HostResult {
        host: hs.name.clone(),
        task: name.to_string(),
        loc: task.loc.to_string(),
        status: Status::Ok,
        ignored: false,
        delegated_to: None,
        verbose: false,
        result: Map::new(),
        items: vec![],
    };
    let finish = |mut hr: HostResult, mut result: Map<String, Value>, eff: HostEffects| {
        hr.status = result_status(&result);
        if hr.status == Status::Failed && ignore_errors {
            hr.ignored = true;
        }
        if no_log {
            let changed = result.get("changed").cloned().unwrap_or(Value::Bool(false));
            let failed = result.get("failed").cloned();
            let skipped = result.get("skipped").cloned();
            result = Map::new();
            result.insert("censored".into(), Value::String(NO_LOG_MSG.into()));
            result.insert("changed".into(), changed);
            if let Some(f) = failed {
                result.insert("failed".into(), f);
            }
            if let Some(s) = skipped {
                result.insert("skipped".into(), s);
            }
            for it in hr.items.iter_mut() {
                it.result = json!({"censored": NO_LOG_MSG}).as_object().unwrap().clone();
                it.label = "None".into();
            }
        }
        hr.result = result;
        (hr, eff)
    };
    match &task.loop_ {
        None => {
            let ctx = from_json(&Value::Object(vars.clone()));
            match eval_cond(&Value::Array(when.clone()), &ctx) {
                Ok(false) => {
                    let r = json!({"changed": false, "skipped": true, "skip_reason": "Conditional result was False", "false_condition": when.last().cloned().unwrap_or(Value::Null)});
                    let r = r.as_object().unwrap().clone();
                    eff.register = Some(Value::Object(r.clone()));
                    return finish(hr, r, eff);
                }
                Err(e) => {
                    let r = fail_map(&format!(
                        "{}: The conditional check failed: {}",
                        task.loc, e.msg
                    ));
                    eff.register = None;
                    return finish(hr, r, eff);
                }
                Ok(true) => {}
            }
            let (r, e2) = run_one(pc, hs, task, inh, &vars, &mut hr);
            eff = e2;
            if let Some(reg) = &task.register {
                let _ = reg;
                eff.register = Some(Value::Object(r.clone()));
            }
            let verbose = hr.verbose;
            let mut out = finish(hr, r, eff);
            out.0.verbose = verbose;
            if no_log {
                out.0.verbose = false;
            }
            out
        }
        Some(l) => {
            let ctx = from_json(&Value::Object(vars.clone()));
            let items = match loop_items(task, l, &ctx) {
                Ok(i) => i,
                Err(e) => return finish(hr, fail_map(&format!("{}: {e}", task.loc)), eff),
            };
            let lc = &task.loop_control;
            let loop_var = lc.get("loop_var").map(py_str).unwrap_or("item".into());
            let index_var = lc.get("index_var").map(py_str);
            let pause = lc
                .get("pause")
                .and_then(|v| v.as_f64().or_else(|| py_str(v).parse().ok()));
            let mut results: Vec<Value> = vec![];
            let mut any_changed = false;
            let mut any_failed = false;
            let mut all_skipped = true;
            let n = items.len();
            for (i, item) in items.into_iter().enumerate() {
                if i > 0 {
                    if let Some(p) = pause {
                        std::thread::sleep(Duration::from_secs_f64(p));
                    }
                }
                let mut iv = vars.clone();
                iv.insert(loop_var.clone(), item.clone());
                if let Some(ix) = &index_var {
                    iv.insert(ix.clone(), json!(i));
                }
                iv.insert(
                    "ansible_loop".into(),
                    json!({"index": i + 1, "index0": i, "first": i == 0, "last": i + 1 == n, "length": n, "revindex": n - i, "revindex0": n - i - 1}),
                );
                iv.insert("ansible_loop_var".into(), Value::String(loop_var.clone()));
                let ictx = from_json(&Value::Object(iv.clone()));
                let label = match lc.get("label") {
                    Some(l) => template_value(l, &ictx)
                        .map(|v| py_str(&v))
                        .unwrap_or_else(|_| py_str(l)),
                    None => py_str(&item),
                };
                let mut r = match eval_cond(&Value::Array(when.clone()), &ictx) {
                    Ok(false) => json!({"changed": false, "skipped": true, "skip_reason": "Conditional result was False", "false_condition": when.last().cloned().unwrap_or(Value::Null)}).as_object().unwrap().clone(),
                    Err(e) => fail_map(&format!("{}: The conditional check failed: {}", task.loc, e.msg)),
                    Ok(true) => {
                        let (r, e2) = run_one(pc, hs, task, inh, &iv, &mut hr);
                        eff.set_facts.extend(e2.set_facts);
                        eff.include_vars.extend(e2.include_vars);
                        if e2.facts.is_some() {
                            eff.facts = e2.facts;
                        }
                        for x in e2.notify {
                            if !eff.notify.contains(&x) {
                                eff.notify.push(x);
                            }
                        }
                        r
                    }
                };
                r.insert(loop_var.clone(), item.clone());
                r.insert("ansible_loop_var".into(), Value::String(loop_var.clone()));
                if let Some(ix) = &index_var {
                    r.insert("ansible_index_var".into(), Value::String(ix.clone()));
                    r.insert(ix.clone(), json!(i));
                }
                let st = result_status(&r);
                any_changed |= st == Status::Changed;
                any_failed |= st == Status::Failed;
                all_skipped &= st == Status::Skipped;
                hr.items.push(ItemResult {
                    status: st,
                    label,
                    result: r.clone(),
                });
                results.push(Value::Object(r));
                if st == Status::Unreachable {
                    return finish(
                        hr,
                        json!({"unreachable": true, "msg": "host became unreachable"})
                            .as_object()
                            .unwrap()
                            .clone(),
                        eff,
                    );
                }
            }
            let mut r = Map::new();
            r.insert("changed".into(), Value::Bool(any_changed));
            if any_failed {
                r.insert("failed".into(), Value::Bool(true));
                r.insert(
                    "msg".into(),
                    Value::String("One or more items failed".into()),
                );
            } else if all_skipped {
                r.insert("skipped".into(), Value::Bool(true));
                r.insert(
                    "msg".into(),
                    Value::String(if n == 0 {
                        "No items in the list".into()
                    } else {
                        "All items skipped".into()
                    }),
                );
            } else {
                r.insert("msg".into(), Value::String("All items completed".into()));
            }
            r.insert("results".into(), Value::Array(results));
            if any_changed {
                for n in notify_list(task, &ctx) {
                    if !eff.notify.contains(&n) {
                        eff.notify.push(n);
                    }
                }
            }
            eff.register = Some(Value::Object(r.clone()));
            finish(hr, r, eff)
        }
    }
}

fn fail_map(msg: &str) -> Map<String, Value> {
    json!({"failed": true, "changed": false, "msg": msg})
        .as_object()
        .unwrap()
        .clone()
}

fn notify_list(task: &Task, ctx: &JValue) -> Vec<String> {
    task.notify
        .iter()
        .map(|n| template::render_str(n, ctx).unwrap_or(n.clone()))
        .collect()
}

fn get_transport<'h>(
    pc: &PlayCtx,
    hs: &'h mut HostState,
    vars: &Map<String, Value>,
) -> Result<&'h mut Box<dyn Transport>, TransportError> {
    if hs.transport.is_none() {
        let mut cv = hs.inv_vars.clone();
        if !cv.contains_key("ansible_user") && !cv.contains_key("ansible_ssh_user") {
            if let Some(u) = &pc.play.remote_user {
                let u = template_value(u, &from_json(&Value::Object(vars.clone())))
                    .unwrap_or(u.clone());
                cv.insert("ansible_user".into(), u);
            }
        }
        hs.transport = Some(pc.conn.connect(&hs.name, &cv)?);
    }
    Ok(hs.transport.as_mut().unwrap())
}

/// One module invocation (one loop item): templating, delegation, become, retries,
/// changed_when/failed_when. Returns the result map.
fn run_one(
    pc: &PlayCtx,
    hs: &mut HostState,
    task: &Task,
    inh: &Inherit,
    vars: &Map<String, Value>,
    hr: &mut HostResult,
) -> (Map<String, Value>, HostEffects) {
    let mut eff = HostEffects::default();
    let TaskKind::Module { module, args } = &task.kind else {
        return (Map::new(), eff);
    };
    let ctx = from_json(&Value::Object(vars.clone()));
    let tv =
        |v: Option<Value>| -> Option<Value> { v.map(|v| template_value(&v, &ctx).unwrap_or(v)) };
    // Keyword resolution (innermost wins, then play, then inventory).
    let become_ = tv(inh.last(&task.kw, |k| k.become_.as_ref()))
        .or_else(|| tv(pc.play.become_.clone()))
        .or_else(|| vars.get("ansible_become").cloned())
        .map(|v| template::ansible_bool(&v))
        .unwrap_or(false);
    let become_user = tv(inh.last(&task.kw, |k| k.become_user.as_ref()))
        .or_else(|| tv(pc.play.become_user.clone()))
        .or_else(|| vars.get("ansible_become_user").cloned())
        .map(|v| py_str(&v));
    let become_pw = [
        "ansible_become_password",
        "ansible_become_pass",
        "ansible_sudo_pass",
    ]
    .iter()
    .find_map(|k| vars.get(*k))
    .map(py_str);
    let check = tv(inh.last(&task.kw, |k| k.check_mode.as_ref()))
        .map(|v| template::ansible_bool(&v))
        .unwrap_or(pc.opts.check);
    let diff = tv(inh.last(&task.kw, |k| k.diff.as_ref()))
        .map(|v| template::ansible_bool(&v))
        .unwrap_or(pc.opts.diff);
    let mut env: Vec<(String, String)> = vec![];
    for e in [pc.play.environment.clone()]
        .into_iter()
        .chain(inh.kws.iter().map(|k| k.environment.clone()))
        .chain([task.kw.environment.clone()])
        .flatten()
    {
        if let Ok(Value::Object(m)) = template_value(&e, &ctx) {
            for (k, v) in m {
                env.retain(|(x, _)| *x != k);
                env.push((k, py_str(&v)));
            }
        }
    }
    let delegate = tv(inh.last(&task.kw, |k| k.delegate_to.as_ref())).map(|v| py_str(&v));
    // Template the arguments (omit removes a parameter).
    let args = match template_args(module, args, &ctx) {
        Ok(a) => a,
        Err(e) => {
            return (
                fail_map(&format!(
                    "{}: the task includes an option with an undefined variable or a template error: {e}",
                    task.loc
                )),
                eff,
            )
        }
    };
    let retries = task
        .retries
        .as_ref()
        .map(|v| {
            py_str(&template_value(v, &ctx).unwrap_or(v.clone()))
                .parse::<u32>()
                .unwrap_or(3)
        })
        .unwrap_or(3);
    let delay = task
        .delay
        .as_ref()
        .map(|v| {
            py_str(&template_value(v, &ctx).unwrap_or(v.clone()))
                .parse::<f64>()
                .unwrap_or(5.0)
        })
        .unwrap_or(5.0);
    let attempts_max = if task.until.is_some() {
        retries.max(1)
    } else {
        1
    };
    let mut attempt = 0;
    let search = search_dirs(pc, task, inh);
    loop {
        attempt += 1;
        let mut r = match *module {
            "debug" => {
                hr.verbose = true;
                controller_debug(&args, &ctx)
            }
            "set_fact" => {
                let mut m = args.clone();
                m.remove("cacheable");
                eff.set_facts.extend(m.clone());
                json!({"changed": false, "ansible_facts": m})
                    .as_object()
                    .unwrap()
                    .clone()
            }
            "assert" => controller_assert(&args, &ctx, &task.loc),
            "fail" => {
                let msg = args
                    .get("msg")
                    .map(py_str)
                    .unwrap_or("Failed as requested from task".into());
                json!({"failed": true, "changed": false, "msg": msg})
                    .as_object()
                    .unwrap()
                    .clone()
            }
            "pause" => {
                let secs = args
                    .get("seconds")
                    .map(py_str)
                    .and_then(|s| s.parse::<f64>().ok())
                    .unwrap_or(0.0)
                    + args
                        .get("minutes")
                        .map(py_str)
                        .and_then(|s| s.parse::<f64>().ok())
                        .unwrap_or(0.0)
                        * 60.0;
                let start = Instant::now();
                if secs > 0.0 && !check {
                    std::thread::sleep(Duration::from_secs_f64(secs));
                }
                json!({"changed": false, "delta": start.elapsed().as_secs(), "stdout": format!("Paused for {} seconds", secs), "user_input": ""}).as_object().unwrap().clone()
            }
            "include_vars" => match controller_include_vars(&args, &search) {
                Ok((m, files)) => {
                    match args.get("name").map(py_str) {
                        Some(n) => {
                            eff.include_vars.insert(n, Value::Object(m.clone()));
                        }
                        None => eff.include_vars.extend(m.clone()),
                    }
                    json!({"changed": false, "ansible_facts": m, "ansible_included_var_files": files}).as_object().unwrap().clone()
                }
                Err(e) => fail_map(&e),
            },
            m => {
                let become_spec = become_.then(|| Become {
                    user: become_user.clone(),
                    password: become_pw.clone(),
                });
                let mut local;
                let mut delegated;
                let t: Result<&mut dyn Transport, TransportError> = match delegate.as_deref() {
                    Some(d) if d == "localhost" || d == "127.0.0.1" && d != hs.name => {
                        hr.delegated_to = Some(d.to_string());
                        local = LocalTransport::new(d);
                        Ok(&mut local as &mut dyn Transport)
                    }
                    Some(d) if d != hs.name => {
                        hr.delegated_to = Some(d.to_string());
                        let mut map = pc.delegates.lock().unwrap();
                        if !map.contains_key(d) {
                            match pc.conn.connect(d, &pc.inv.host_vars(d)) {
                                Ok(t) => {
                                    map.insert(d.to_string(), t);
                                }
                                Err(e) => {
                                    return (
                                        json!({"unreachable": true, "msg": e.to_string()})
                                            .as_object()
                                            .unwrap()
                                            .clone(),
                                        eff,
                                    )
                                }
                            }
                        }
                        delegated = map.remove(d).unwrap();
                        drop(map);
                        let mc = ModCtx {
                            check,
                            diff,
                            become_: become_spec.clone(),
                            env: env.clone(),
                            vars: &ctx,
                            search: &search,
                            host: d,
                        };
                        let r = modules::run(m, &mut *delegated, &mc, &args);
                        pc.delegates
                            .lock()
                            .unwrap()
                            .insert(d.to_string(), delegated);
                        let r = module_result(r);
                        if let Some(f) = r.get("ansible_facts").and_then(|f| f.as_object()) {
                            if m == "setup" {
                                eff.facts = Some(facts_vars(f));
                            }
                        }
                        return post_process(pc, task, r, vars, eff);
                    }
                    _ => get_transport(pc, hs, vars).map(|b| &mut **b as &mut dyn Transport),
                };
                match t {
                    Err(e) => json!({"unreachable": true, "msg": e.to_string()})
                        .as_object()
                        .unwrap()
                        .clone(),
                    Ok(t) => {
                        let mc = ModCtx {
                            check,
                            diff,
                            become_: become_spec,
                            env: env.clone(),
                            vars: &ctx,
                            search: &search,
                            host: &hr.host,
                        };
                        let r = module_result(modules::run(m, t, &mc, &args));
                        if m == "setup" {
                            if let Some(f) = r.get("ansible_facts").and_then(|f| f.as_object()) {
                                eff.facts = Some(facts_vars(f));
                            }
                        }
                        r
                    }
                }
            }
        };
        if r.get("unreachable").map(truthy).unwrap_or(false) {
            return (r, eff);
        }
        // As Ansible's task executor: a result without `failed` gets one (true only for a
        // nonzero `rc`), before until/changed_when/failed_when see it.
        if !r.contains_key("failed") && !r.get("skipped").map(truthy).unwrap_or(false) {
            let rc_failed = r
                .get("rc")
                .map(|v| !(v == &json!(0) || v == &json!("0")))
                .unwrap_or(false);
            r.insert("failed".into(), Value::Bool(rc_failed));
        }
        if let Some(until) = &task.until {
            let mut uv = vars.clone();
            if let Some(reg) = &task.register {
                uv.insert(reg.clone(), Value::Object(r.clone()));
            }
            let uctx = from_json(&Value::Object(uv));
            let ok = eval_cond(until, &uctx).unwrap_or(false);
            r.insert("attempts".into(), json!(attempt));
            if !ok && attempt < attempts_max {
                std::thread::sleep(Duration::from_secs_f64(delay));
                continue;
            }
            if !ok {
                r.insert("failed".into(), Value::Bool(true));
                if !r.contains_key("msg") {
                    r.insert("msg".into(), Value::String("Retries exceeded".into()));
                }
            }
        }
        return post_process(pc, task, r, vars, eff);
    }
}

fn post_process(
    _pc: &PlayCtx,
    task: &Task,
    mut r: Map<String, Value>,
    vars: &Map<String, Value>,
    mut eff: HostEffects,
) -> (Map<String, Value>, HostEffects) {
    if r.get("skipped").map(truthy).unwrap_or(false) {
        return (r, eff);
    }
    if task.changed_when.is_some() || task.failed_when.is_some() {
        let mut cv = vars.clone();
        if let Some(reg) = &task.register {
            cv.insert(reg.clone(), Value::Object(r.clone()));
        }
        let cctx = from_json(&Value::Object(cv));
        if let Some(cw) = &task.changed_when {
            match eval_cond(&Value::Array(super_list(cw)), &cctx) {
                Ok(b) => {
                    r.insert("changed".into(), Value::Bool(b));
                }
                Err(e) => {
                    r.insert("failed".into(), Value::Bool(true));
                    r.insert(
                        "msg".into(),
                        Value::String(format!("{}: changed_when: {}", task.loc, e.msg)),
                    );
                }
            }
        }
        if let Some(fw) = &task.failed_when {
            match eval_cond(&Value::Array(super_list(fw)), &cctx) {
                Ok(b) => {
                    r.insert("failed".into(), Value::Bool(b));
                    r.insert("failed_when_result".into(), Value::Bool(b));
                }
                Err(e) => {
                    r.insert("failed".into(), Value::Bool(true));
                    r.insert(
                        "msg".into(),
                        Value::String(format!("{}: failed_when: {}", task.loc, e.msg)),
                    );
                }
            }
        }
    }
    if r.get("changed").map(truthy).unwrap_or(false)
        && !r.get("failed").map(truthy).unwrap_or(false)
    {
        let ctx = from_json(&Value::Object(vars.clone()));
        eff.notify = notify_list(task, &ctx);
    }
    (r, eff)
}

fn super_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        o => vec![o.clone()],
    }
}

fn module_result(r: Result<Map<String, Value>, ModError>) -> Map<String, Value> {
    match r {
        Ok(m) => m,
        Err(ModError::Failed(msg)) => fail_map(&msg),
        Err(ModError::Transport(e)) if e.is_unreachable() => {
            json!({"unreachable": true, "msg": e.to_string()})
                .as_object()
                .unwrap()
                .clone()
        }
        Err(ModError::Transport(e)) => fail_map(&e.to_string()),
    }
}

/// `ansible_facts` → the variables Ansible injects (`ansible_*` plus `ansible_facts`).
fn facts_vars(f: &Map<String, Value>) -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in f {
        m.insert(format!("ansible_{k}"), v.clone());
    }
    m.insert("ansible_facts".into(), Value::Object(f.clone()));
    m
}

fn search_dirs(pc: &PlayCtx, task: &Task, inh: &Inherit) -> Vec<PathBuf> {
    let mut d = vec![];
    if let Some(r) = task.role.as_ref().or(inh.role.as_ref()) {
        d.push(r.path.clone());
    }
    d.push(pc.pb.dir.clone());
    d
}

fn strip_omit(v: Value) -> Option<Value> {
    match v {
        Value::String(s) if s == OMIT => None,
        Value::Object(m) => Some(Value::Object(
            m.into_iter()
                .filter_map(|(k, v)| strip_omit(v).map(|v| (k, v)))
                .collect(),
        )),
        Value::Array(a) => Some(Value::Array(a.into_iter().filter_map(strip_omit).collect())),
        o => Some(o),
    }
}

fn template_args(module: &str, args: &Value, ctx: &JValue) -> Result<Map<String, Value>, String> {
    let Value::Object(m) = args else {
        return Ok(Map::new());
    };
    let mut out = Map::new();
    for (k, v) in m {
        // `debug: var=` and `assert: that=` hold expressions, evaluated by the module.
        if (module == "debug" && k == "var") || (module == "assert" && k == "that") {
            out.insert(k.clone(), v.clone());
            continue;
        }
        let t = template_value(v, ctx).map_err(|e| e.msg)?;
        if let Some(t) = strip_omit(t) {
            out.insert(k.clone(), t);
        }
    }
    Ok(out)
}

fn controller_debug(args: &Map<String, Value>, ctx: &JValue) -> Map<String, Value> {
    let mut r = Map::new();
    if let Some(var) = args.get("var") {
        let name = py_str(var);
        let v = template::eval_expr(&name, ctx)
            .unwrap_or(Value::String("VARIABLE IS NOT DEFINED!".into()));
        r.insert(name, v);
    } else {
        r.insert(
            "msg".into(),
            args.get("msg")
                .cloned()
                .unwrap_or(Value::String("Hello world!".into())),
        );
    }
    r.insert("changed".into(), Value::Bool(false));
    r
}

fn controller_assert(
    args: &Map<String, Value>,
    ctx: &JValue,
    loc: &super::model::Loc,
) -> Map<String, Value> {
    let that = super_list(args.get("that").unwrap_or(&Value::Null));
    for cond in &that {
        match eval_cond(cond, ctx) {
            Ok(true) => {}
            Ok(false) => {
                let msg = args
                    .get("fail_msg")
                    .or_else(|| args.get("msg"))
                    .cloned()
                    .unwrap_or(Value::String("Assertion failed".into()));
                return json!({"failed": true, "changed": false, "assertion": cond, "evaluated_to": false, "msg": msg})
                    .as_object()
                    .unwrap()
                    .clone();
            }
            Err(e) => {
                return fail_map(&format!(
                    "{loc}: The conditional check '{}' failed: {}",
                    py_str(cond),
                    e.msg
                ))
            }
        }
    }
    let msg = args
        .get("success_msg")
        .cloned()
        .unwrap_or(Value::String("All assertions passed".into()));
    json!({"changed": false, "msg": msg})
        .as_object()
        .unwrap()
        .clone()
}

fn controller_include_vars(
    args: &Map<String, Value>,
    search: &[PathBuf],
) -> Result<(Map<String, Value>, Vec<String>), String> {
    let f = args
        .get("file")
        .or_else(|| args.get("_raw_params"))
        .map(py_str);
    let dir = args.get("dir").map(py_str);
    let mut files = vec![];
    if let Some(f) = f {
        let p = PathBuf::from(&f);
        let found = if p.is_absolute() {
            Some(p)
        } else {
            search
                .iter()
                .flat_map(|d| [d.join("vars").join(&f), d.join(&f)])
                .find(|c| c.is_file())
        };
        files.push(found.ok_or_else(|| format!("Could not find or access '{f}'"))?);
    } else if let Some(d) = dir {
        let p = PathBuf::from(&d);
        let base = if p.is_absolute() {
            p
        } else {
            search
                .iter()
                .flat_map(|s| [s.join("vars").join(&d), s.join(&d)])
                .find(|c| c.is_dir())
                .ok_or_else(|| format!("Could not find or access directory '{d}'"))?
        };
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&base)
            .map_err(|e| format!("{}: {e}", base.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yml" | "yaml" | "json")
                )
            })
            .collect();
        entries.sort();
        files.extend(entries);
    } else {
        return Err("include_vars: no file or dir given".into());
    }
    let mut m = Map::new();
    for f in &files {
        m.extend(super::model::load_vars_file(f).map_err(|e| e.to_string())?);
    }
    Ok((m, files.iter().map(|f| abs(f)).collect()))
}

fn flush_handlers(pc: &PlayCtx, hosts: &mut BTreeMap<String, HostState>) {
    let handlers = &pc.play.handlers;
    loop {
        let mut ran_any = false;
        for h in handlers {
            let hname = h.name.clone().unwrap_or_default();
            let who: Vec<String> = pc
                .batch
                .iter()
                .filter(|n| {
                    let s = &hosts[*n];
                    let ok = !s.unreachable && (pc.play.force_handlers || !s.failed);
                    ok && s.notified.iter().any(|x| {
                        *x == hname
                            || h.listen.contains(x)
                            || h.role
                                .as_ref()
                                .map(|r| format!("{} : {hname}", r.name) == *x)
                                .unwrap_or(false)
                    })
                })
                .cloned()
                .collect();
            if who.is_empty() {
                continue;
            }
            for n in &who {
                let s = hosts.get_mut(n).unwrap();
                s.notified.retain(|x| {
                    !(*x == hname
                        || h.listen.contains(x)
                        || h.role
                            .as_ref()
                            .map(|r| format!("{} : {hname}", r.name) == *x)
                            .unwrap_or(false))
                });
            }
            ran_any = true;
            pc.rep.event(Event::TaskStart {
                name: &h.display_name(),
                handler: true,
            });
            let failed = run_handler(pc, hosts, h, &who);
            for f in failed {
                hosts.get_mut(&f).unwrap().failed = true;
            }
        }
        // Handlers may notify other handlers.
        if !ran_any
            || !pc
                .batch
                .iter()
                .any(|n| !hosts[n].notified.is_empty() && !hosts[n].failed)
        {
            break;
        }
    }
    for n in &pc.batch {
        hosts.get_mut(n).unwrap().notified.clear();
    }
}

fn run_handler(
    pc: &PlayCtx,
    hosts: &mut BTreeMap<String, HostState>,
    h: &Task,
    who: &[String],
) -> Vec<String> {
    // Reuse run_task's machinery without printing a second TASK header.
    struct Quiet<'a>(&'a dyn Reporter);
    impl Reporter for Quiet<'_> {
        fn event(&self, ev: Event<'_>) {
            if !matches!(ev, Event::TaskStart { .. }) {
                self.0.event(ev)
            }
        }
    }
    let q = Quiet(pc.rep);
    let pc2 = PlayCtx {
        pb: pc.pb,
        play: pc.play,
        opts: pc.opts,
        inv: pc.inv,
        conn: pc.conn,
        rep: &q,
        groups: pc.groups.clone(),
        play_hosts: pc.play_hosts.clone(),
        batch: pc.batch.clone(),
        delegates: Mutex::new(HashMap::new()),
    };
    match &h.kind {
        TaskKind::Module { .. } => run_task(&pc2, hosts, h, &Inherit::default(), who),
        _ => {
            run_list(
                &pc2,
                hosts,
                std::slice::from_ref(h),
                &Inherit::default(),
                who,
            )
            .failed
        }
    }
}

/// One loop item of an include: the loop variable name and its value.
type LoopItem = Option<(String, Value)>;
