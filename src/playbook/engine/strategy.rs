//! The linear strategy: task lists, blocks (rescue/always), includes, meta, tags, serial
//! batches and the fatal-error rules.

use super::*;

/// After a task: the play's `any_errors_fatal` with a host of the batch failed or
/// unreachable, or more of the batch failed than `max_fail_percentage` allows (failed hosts
/// only, as Ansible counts them), ends the batch: every host of it is marked failed (its
/// counts unchanged) and, all of the batch having failed, the run stops after it.
pub(super) fn check_fatal(pc: &PlayCtx, hosts: &mut BTreeMap<String, HostState>) -> bool {
    let n = pc.batch.len().max(1);
    let failed = pc.batch.iter().filter(|h| hosts[*h].failed).count();
    let unreachable = pc.batch.iter().filter(|h| hosts[*h].unreachable).count();
    let stop = (pc.play.any_errors_fatal && failed + unreachable > 0)
        || pc
            .play
            .max_fail_percentage
            .is_some_and(|p| (failed as f64) * 100.0 / (n as f64) > p);
    if stop {
        fail_batch(pc, hosts);
    }
    stop
}

/// Every host of the batch stops here, marked failed without a count (Ansible's
/// `any_errors_fatal`, `max_fail_percentage` and a failed `run_once` task).
pub(super) fn fail_batch(pc: &PlayCtx, hosts: &mut BTreeMap<String, HostState>) {
    for h in &pc.batch {
        if let Some(hs) = hosts.get_mut(h) {
            hs.ended = true;
            if !hs.unreachable {
                hs.failed = true;
            }
        }
    }
}

/// The task's `run_once` (inherited from its blocks).
pub(super) fn task_run_once(inh: &Inherit, task: &Task) -> bool {
    inh.last(&task.kw, |k| k.run_once.as_ref())
        .is_some_and(|v| template::ansible_bool(&v))
}

/// A failure of this task ends the batch: its `any_errors_fatal` (inherited, else the
/// play's) or its `run_once`, as Ansible's linear strategy decides.
fn fatal_task(pc: &PlayCtx, inh: &Inherit, task: &Task) -> bool {
    inh.last(&task.kw, |k| k.any_errors_fatal.as_ref())
        .map(|v| template::ansible_bool(&v))
        .unwrap_or(pc.play.any_errors_fatal)
        || task_run_once(inh, task)
}

pub(super) fn batches(play: &Play, hosts: &[String]) -> Vec<Vec<String>> {
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

pub(super) fn active_hosts(hosts: &BTreeMap<String, HostState>, batch: &[String]) -> Vec<String> {
    batch
        .iter()
        .filter(|h| {
            let s = &hosts[*h];
            !s.failed && !s.unreachable && !s.ended
        })
        .cloned()
        .collect()
}

pub(super) fn facts_task(play: &Play) -> Task {
    let kw = Kw {
        tags: vec!["always".into()],
        when: play.when.clone(),
        ..Default::default()
    };
    let mut task = Task::empty(play.loc.clone(), kw, None);
    task.name = Some("Gathering Facts".into());
    let args = match &play.gather_subset {
        Some(v) => json!({ "gather_subset": v }),
        None => json!({}),
    };
    task.kind = TaskKind::Module {
        module: "setup",
        args,
    };
    task
}

#[derive(Default)]
pub(super) struct ListResult {
    pub(super) failed: Vec<String>,
    pub(super) end_play: bool,
}

pub(super) fn run_list(
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
            TaskKind::Block { .. } => {
                if !tags_match(pc, inh, task) && !block_has_tagged(pc, inh, task) {
                    continue;
                }
                run_block(pc, hosts, task, inh, &active, &mut res);
            }
            TaskKind::Meta(_) => {
                if !tags_match(pc, inh, task) {
                    continue;
                }
                run_meta(pc, hosts, task, inh, &active, &mut res);
            }
            TaskKind::IncludeRole { dynamic: true, .. } => {
                if !tags_match(pc, inh, task) {
                    continue;
                }
                run_role_include(pc, hosts, task, inh, &active, &mut res);
            }
            TaskKind::Role { role, tasks: rt }
            | TaskKind::IncludeRole {
                role, tasks: rt, ..
            } => {
                // A role entry or import runs like a block: when a task inside matches the
                // tags (they inherit the entry's).
                if !tags_match(pc, inh, task) && !block_has_tagged(pc, inh, task) {
                    continue;
                }
                let mut sub = Inherit {
                    role: Some(role.clone()),
                    ..inh.push(&task.kw, None)
                };
                sub.roles.push(role.clone());
                let r = run_list(pc, hosts, rt, &sub, &active);
                res.failed.extend(r.failed);
                res.end_play |= r.end_play;
            }
            TaskKind::Include { .. } => {
                if !tags_match(pc, inh, task) {
                    continue;
                }
                run_include(pc, hosts, task, inh, &active, &mut res);
            }
            TaskKind::Module { .. } => {
                if !tags_match(pc, inh, task) {
                    continue;
                }
                let failed = run_task(pc, hosts, task, inh, &active);
                // A failure no rescue can catch counts at once (max_fail_percentage).
                if !inh.rescuable {
                    for h in &failed {
                        hosts.get_mut(h).unwrap().failed = true;
                    }
                }
                // A fatal failure a rescue catches is not fatal (the rescue runs).
                let fatal = !failed.is_empty() && !inh.rescuable && fatal_task(pc, inh, task);
                res.failed.extend(failed);
                if fatal {
                    fail_batch(pc, hosts);
                    res.end_play = true;
                    break;
                }
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

/// A block with its rescue and always sections (rescued hosts count as rescued, not failed).
fn run_block(
    pc: &PlayCtx,
    hosts: &mut BTreeMap<String, HostState>,
    task: &Task,
    inh: &Inherit,
    active: &[String],
    res: &mut ListResult,
) {
    let TaskKind::Block {
        block,
        rescue,
        always,
    } = &task.kind
    else {
        return;
    };
    let sub = inh.push(&task.kw, None);
    let mut in_block = sub.clone();
    in_block.rescuable |= !rescue.is_empty();
    let r = run_list(pc, hosts, block, &in_block, active);
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

/// `meta:` actions the strategy acts on.
fn run_meta(
    pc: &PlayCtx,
    hosts: &mut BTreeMap<String, HostState>,
    task: &Task,
    inh: &Inherit,
    active: &[String],
    res: &mut ListResult,
) {
    let TaskKind::Meta(what) = &task.kind else {
        return;
    };
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
            for h in active {
                hosts.get_mut(h).unwrap().ended = true;
            }
        }
        "end_host" => {
            // Only hosts whose `when` holds.
            for h in active {
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

pub(super) fn report_simple_fail(pc: &PlayCtx, hs: &mut HostState, task: &Task, msg: &str) {
    hs.stats.failed += 1;
    let r = HostResult {
        host: hs.name.clone(),
        task: task.display_name(),
        loc: task.loc.to_string(),
        status: Status::Failed,
        ignored: false,
        delegated_to: None,
        verbose: false,
        result: TaskResult::failed(format!("{}: {msg}", task.loc)),
        items: vec![],
    };
    pc.rep.event(Event::Result(&r));
}

pub(super) fn tags_match(pc: &PlayCtx, inh: &Inherit, task: &Task) -> bool {
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
pub(super) fn block_has_tagged(pc: &PlayCtx, inh: &Inherit, task: &Task) -> bool {
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
        TaskKind::Role { tasks, .. } => tasks
            .iter()
            .any(|t| tags_match(pc, &sub, t) || block_has_tagged(pc, &sub, t)),
        // An include_role is a task of its own: its tags decide (see `run_list`).
        TaskKind::IncludeRole {
            tasks,
            dynamic: false,
            ..
        } => tasks
            .iter()
            .any(|t| tags_match(pc, &sub, t) || block_has_tagged(pc, &sub, t)),
        _ => false,
    }
}

pub(super) fn all_when(inh: &Inherit, kw: &Kw) -> Vec<Value> {
    let mut w: Vec<Value> = inh.kws.iter().flat_map(|k| k.when.clone()).collect();
    w.extend(kw.when.iter().cloned());
    w
}

/// One loop item of an include: the loop variable name and its value.
pub(super) type LoopItem = Option<(String, Value)>;
