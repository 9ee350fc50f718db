//! Dynamic includes (`include_tasks`, `include_role`): each is a task of its own. Its `when`
//! and loop decide per host (a false `when` is a skip, each loop item an `included` result);
//! what it brings inherits only its `vars`, the loop item and its `apply:` keywords (with
//! the enclosing blocks' keywords), as Ansible's dynamic parents pass nothing else down.

use super::*;

/// The hosts (each with its loop item) that take the include `task`: a false `when` is
/// reported as a skip, a condition or loop that fails fails the host.
fn include_targets(
    pc: &PlayCtx,
    hosts: &mut BTreeMap<String, HostState>,
    task: &Task,
    inh: &Inherit,
    active: &[String],
    res: &mut ListResult,
) -> Vec<(String, LoopItem)> {
    let mut out = Vec::new();
    for h in active {
        let vars = build_vars(pc, &hosts[h], inh, &task.kw, task.role.as_ref());
        let ctx = from_json(&Value::Object(vars));
        let when = all_when(inh, &task.kw);
        match eval_cond(&Value::Array(when.clone()), &ctx) {
            Ok(true) => {}
            Ok(false) => {
                let hs = hosts.get_mut(h).unwrap();
                hs.stats.skipped += 1;
                let r = include_result(
                    task,
                    h,
                    Status::Skipped,
                    TaskResult::skipped_by(when.last().cloned()),
                );
                pc.rep.event(Event::Result(&r));
                continue;
            }
            Err(e) => {
                report_simple_fail(pc, hosts.get_mut(h).unwrap(), task, &e.msg);
                res.failed.push(h.clone());
                continue;
            }
        }
        match &task.loop_ {
            None => out.push((h.clone(), None)),
            Some(l) => match loop_items(task, l, &ctx) {
                Ok(items) => {
                    let var = task
                        .loop_control
                        .get("loop_var")
                        .map(py_str)
                        .unwrap_or("item".into());
                    out.extend(
                        items
                            .into_iter()
                            .map(|i| (h.clone(), Some((var.clone(), i)))),
                    );
                }
                Err(e) => {
                    report_simple_fail(pc, hosts.get_mut(h).unwrap(), task, &e);
                    res.failed.push(h.clone());
                }
            },
        }
    }
    out
}

fn include_result(task: &Task, host: &str, status: Status, result: TaskResult) -> HostResult {
    HostResult {
        host: host.to_string(),
        task: task.display_name(),
        loc: task.loc.to_string(),
        status,
        ignored: false,
        delegated_to: None,
        verbose: false,
        result,
        items: vec![],
    }
}

/// `included: WHAT for host` (one per loop item): counted ok, as Ansible does.
fn report_included(pc: &PlayCtx, hs: &mut HostState, task: &Task, what: &str, it: &LoopItem) {
    hs.stats.ok += 1;
    let mut result = TaskResult::default();
    result.insert("included", Value::String(what.to_string()));
    if let Some((k, v)) = it {
        result.insert(k.clone(), v.clone());
    }
    let r = include_result(task, &hs.name, Status::Ok, result);
    pc.rep.event(Event::Result(&r));
}

/// What the included tasks inherit: the enclosing keywords, then the include's `vars` with
/// the loop item, then its `apply:` keywords.
fn included_inherit(inh: &Inherit, task: &Task, apply: &Option<Box<Kw>>, it: &LoopItem) -> Inherit {
    let mut vars = task.kw.vars.clone();
    if let Some((k, v)) = it {
        vars.insert(k.clone(), v.clone());
    }
    let mut sub = inh.push(
        &Kw {
            vars,
            ..Kw::default()
        },
        None,
    );
    if let Some(a) = apply {
        sub.kws.push((**a).clone());
    }
    sub
}

/// Hosts grouped by loop item, in the order first met.
fn by_item(members: Vec<(String, LoopItem)>) -> Vec<(LoopItem, Vec<String>)> {
    let mut out: Vec<(LoopItem, Vec<String>)> = vec![];
    for (h, it) in members {
        match out.iter_mut().find(|(i, _)| *i == it) {
            Some((_, v)) => v.push(h),
            None => out.push((it, vec![h])),
        }
    }
    out
}

/// `include_tasks`: hosts grouped by the file they resolve (and loop item), each group run.
pub(super) fn run_include(
    pc: &PlayCtx,
    hosts: &mut BTreeMap<String, HostState>,
    task: &Task,
    inh: &Inherit,
    active: &[String],
    res: &mut ListResult,
) {
    let TaskKind::Include { file, base, apply } = &task.kind else {
        return;
    };
    let mut groups: Vec<(PathBuf, Vec<(String, LoopItem)>)> = vec![];
    for (h, it) in include_targets(pc, hosts, task, inh, active, res) {
        let mut m = build_vars(pc, &hosts[&h], inh, &task.kw, task.role.as_ref());
        if let Some((k, v)) = &it {
            m.insert(k.clone(), v.clone());
        }
        let f = match template_value(file, &from_json(&Value::Object(m))) {
            Ok(v) => py_str(&v),
            Err(e) => {
                if !res.failed.contains(&h) {
                    report_simple_fail(pc, hosts.get_mut(&h).unwrap(), task, &e.msg);
                    res.failed.push(h.clone());
                }
                continue;
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
                pc.play.dir.join(&f),
                pc.pb.dir.join(&f),
            ];
            p = cands
                .iter()
                .find(|c| c.is_file())
                .cloned()
                .unwrap_or(cands[0].clone());
        }
        match groups.iter_mut().find(|(gp, _)| *gp == p) {
            Some((_, hs_)) => hs_.push((h, it)),
            None => groups.push((p, vec![(h, it)])),
        }
    }
    for (p, members) in &groups {
        for (h, it) in members {
            let what = p.display().to_string();
            report_included(pc, hosts.get_mut(h).unwrap(), task, &what, it);
        }
    }
    for (p, members) in groups {
        let tasks = match Playbook::load_tasks(&pc.play.dir, &p, &task.role, &inh.roles) {
            Ok(t) => t,
            Err(e) => {
                for (h, _) in &members {
                    report_simple_fail(pc, hosts.get_mut(h).unwrap(), task, &e.to_string());
                    res.failed.push(h.clone());
                }
                continue;
            }
        };
        for (it, who) in by_item(members) {
            let sub = included_inherit(inh, task, apply, &it);
            let r = run_list(pc, hosts, &tasks, &sub, &who);
            res.failed.extend(r.failed);
            res.end_play |= r.end_play;
        }
    }
}

/// `include_role`: the role joins `role_names` once per distinct loop item (all of them
/// before any runs, as Ansible processes the included files first), then its tasks run.
pub(super) fn run_role_include(
    pc: &PlayCtx,
    hosts: &mut BTreeMap<String, HostState>,
    task: &Task,
    inh: &Inherit,
    active: &[String],
    res: &mut ListResult,
) {
    let TaskKind::IncludeRole {
        role, tasks, apply, ..
    } = &task.kind
    else {
        return;
    };
    let members = include_targets(pc, hosts, task, inh, active, res);
    for (h, it) in &members {
        report_included(pc, hosts.get_mut(h).unwrap(), task, &role.name, it);
    }
    let groups = by_item(members);
    pc.role_names
        .lock()
        .unwrap()
        .extend(groups.iter().map(|_| role.name.clone()));
    for (it, who) in groups {
        let mut sub = included_inherit(inh, task, apply, &it);
        sub.role = Some(role.clone());
        sub.roles.push(role.clone());
        let r = run_list(pc, hosts, tasks, &sub, &who);
        res.failed.extend(r.failed);
        res.end_play |= r.end_play;
    }
}
