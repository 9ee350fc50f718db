//! One task on the hosts of a batch: the fan-out over forks, loops, conditions, retries,
//! delegation, become, changed_when/failed_when and the module call.

use super::*;

/// Run one module task on the given hosts in parallel; updates state and stats, reports
/// results, returns the hosts that failed.
pub(super) fn run_task(
    pc: &PlayCtx,
    hosts: &mut BTreeMap<String, HostState>,
    task: &Task,
    inh: &Inherit,
    active: &[String],
) -> Vec<String> {
    let name = {
        let mut pv = pc.play.vars.clone();
        pv.extend(pc.opts.extra_vars.clone());
        let ctx = from_json(&Value::Object(pv));
        let n = task.display_name();
        template::render_str(&n, &ctx).unwrap_or(n)
    };
    pc.rep.event(Event::TaskStart {
        name: &name,
        handler: false,
    });
    if pc.opts.verbosity >= 2 {
        pc.rep.event(Event::Verbose {
            host: "",
            msg: &format!("task path: {}:{}", task.loc.file, task.loc.line),
        });
    }
    let run_once = task_run_once(inh, task);
    // Decided at load time for the task and the play; inherited block keywords are few.
    let needs_hostvars = task.uses_hostvars
        || pc.play.uses_hostvars
        || inh.kws.iter().any(|k| k.mentions_hostvars());
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
    let mut refs: Vec<&mut HostState> = hosts
        .iter_mut()
        .filter(|(k, _)| targets.contains(k))
        .map(|(_, v)| v)
        .collect();
    // Keep the play's host order.
    refs.sort_by_key(|h| targets.iter().position(|t| *t == h.name));
    let ran = crate::fanout::fanout(refs, pc.opts.forks, |hs| {
        let (r, eff) = exec_on_host(pc, hs, task, inh, &name, hostvars.as_ref());
        pc.rep.event(Event::Result(&r));
        (r, eff)
    });
    let results: Vec<(String, HostResult, HostEffects)> = ran
        .into_iter()
        .map(|(hs, out)| {
            let (r, eff) = out.unwrap_or_else(|p| {
                // A bug in a module or the engine fails this host, not the run.
                let r = HostResult {
                    host: hs.name.clone(),
                    task: name.clone(),
                    loc: task.loc.to_string(),
                    status: Status::Failed,
                    ignored: false,
                    delegated_to: None,
                    verbose: false,
                    result: TaskResult::failed(p.to_string()),
                    items: vec![],
                };
                pc.rep.event(Event::Result(&r));
                (r, HostEffects::default())
            });
            (hs.name.clone(), r, eff)
        })
        .collect();
    // run_once: the registered value and the facts apply to every host of the batch; the
    // counts and notifications stay with the host that ran it (as Ansible keeps them).
    if run_once {
        if let Some((_, r, eff)) = results.first() {
            let shared = HostEffects {
                notify: Vec::new(),
                ..eff.clone()
            };
            for h in active.iter().skip(1) {
                if let Some(hs) = hosts.get_mut(h) {
                    apply_effects(hs, task, r, shared.clone());
                }
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
                if r.result.is_changed() {
                    hs.stats.changed += 1;
                }
            }
            Status::Failed => {
                hs.stats.failed += 1;
                hs.last_failed = Some((r.result.to_value(), r.task.clone()));
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

/// Run a task (all its loop items, retries, conditions) on one host.
pub(super) fn exec_on_host(
    pc: &PlayCtx,
    hs: &mut HostState,
    task: &Task,
    inh: &Inherit,
    name: &str,
    hostvars: Option<&Value>,
) -> (HostResult, HostEffects) {
    let mut vars = build_vars(pc, hs, inh, &task.kw, task.role.as_ref());
    if let Some(hv) = hostvars {
        vars.insert("hostvars".into(), hv.clone());
    }
    let flags = Flags {
        no_log: task_flag(inh.last(&task.kw, |k| k.no_log.as_ref()), &vars),
        ignore_errors: task_flag(inh.last(&task.kw, |k| k.ignore_errors.as_ref()), &vars),
    };
    let when = all_when(inh, &task.kw);
    let mut hr = HostResult {
        host: hs.name.clone(),
        task: name.to_string(),
        loc: task.loc.to_string(),
        status: Status::Ok,
        ignored: false,
        delegated_to: None,
        verbose: false,
        result: TaskResult::default(),
        items: vec![],
    };
    let Some(l) = &task.loop_ else {
        let mut eff = HostEffects::default();
        let ctx = from_json(&Value::Object(vars.clone()));
        let r = match eval_cond(&Value::Array(when.clone()), &ctx) {
            Ok(false) => {
                let r = TaskResult::skipped_by(when.last().cloned());
                eff.register = Some(r.to_value());
                r
            }
            Err(e) => TaskResult::failed(format!(
                "{}: The conditional check failed: {}",
                task.loc, e.msg
            )),
            Ok(true) => {
                let (r, e2) = run_one(pc, hs, task, inh, &vars, &mut hr);
                eff = e2;
                if task.register.is_some() {
                    eff.register = Some(r.to_value());
                }
                r
            }
        };
        let verbose = hr.verbose && !flags.no_log;
        let mut out = finish(hr, r, eff, flags);
        out.0.verbose = verbose;
        return out;
    };
    let (r, eff) = exec_loop(pc, hs, task, inh, &vars, &when, l, &mut hr);
    finish(hr, r, eff, flags)
}

/// `no_log` and `ignore_errors` of a task, templated.
#[derive(Clone, Copy)]
struct Flags {
    no_log: bool,
    ignore_errors: bool,
}

/// A boolean task keyword (inherited from blocks), templated against the task's vars.
fn task_flag(v: Option<Value>, vars: &Map<String, Value>) -> bool {
    v.map(|v| {
        let ctx = from_json(&Value::Object(vars.clone()));
        template::ansible_bool(&template_value(&v, &ctx).unwrap_or(v))
    })
    .unwrap_or(false)
}

/// The host's result from the task's result map: status, `ignore_errors`, and under
/// `no_log` only changed/failed/skipped survive (items censored too).
fn finish(
    mut hr: HostResult,
    mut result: TaskResult,
    eff: HostEffects,
    flags: Flags,
) -> (HostResult, HostEffects) {
    hr.status = result.status();
    if hr.status == Status::Failed && flags.ignore_errors {
        hr.ignored = true;
    }
    if flags.no_log {
        result = result.censored();
        for it in hr.items.iter_mut() {
            it.result = TaskResult::default();
            it.result
                .insert("censored", Value::String(NO_LOG_MSG.into()));
            it.label = "None".into();
        }
    }
    hr.result = result;
    (hr, eff)
}

/// Effects of one loop item folded into the task's: facts and vars add up, the last
/// gathered facts win, notifications are kept once each.
fn merge_item_effects(eff: &mut HostEffects, e2: HostEffects) {
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
}

/// Run a looped task: one `run_one` per item (with `loop_control` vars, label and pause),
/// then the summary result Ansible registers (`results`, changed/failed/skipped, `msg`).
#[allow(clippy::too_many_arguments)]
fn exec_loop(
    pc: &PlayCtx,
    hs: &mut HostState,
    task: &Task,
    inh: &Inherit,
    vars: &Map<String, Value>,
    when: &[Value],
    l: &Value,
    hr: &mut HostResult,
) -> (TaskResult, HostEffects) {
    let mut eff = HostEffects::default();
    let ctx = from_json(&Value::Object(vars.clone()));
    let items = match loop_items(task, l, &ctx) {
        Ok(i) => i,
        Err(e) => return (TaskResult::failed(format!("{}: {e}", task.loc)), eff),
    };
    let lc = &task.loop_control;
    let loop_var = lc.get("loop_var").map(py_str).unwrap_or("item".into());
    let index_var = lc.get("index_var").map(py_str);
    let pause = lc
        .get("pause")
        .and_then(|v| v.as_f64().or_else(|| py_str(v).parse().ok()));
    let mut results: Vec<Value> = vec![];
    let (mut any_changed, mut any_failed, mut all_skipped) = (false, false, true);
    let n = items.len();
    // `loop_control: extended` (Ansible defines `ansible_loop` only then): the position, and
    // the items around this one.
    let extended = lc.get("extended").is_some_and(template::ansible_bool);
    let all_items = if extended { items.clone() } else { Vec::new() };
    for (i, item) in items.into_iter().enumerate() {
        if let (true, Some(p)) = (i > 0, pause) {
            std::thread::sleep(Duration::from_secs_f64(p));
        }
        let mut iv = vars.clone();
        iv.insert(loop_var.clone(), item.clone());
        if let Some(ix) = &index_var {
            iv.insert(ix.clone(), json!(i));
            iv.insert("ansible_index_var".into(), Value::String(ix.clone()));
        }
        if extended {
            let mut l = json!({"index": i + 1, "index0": i, "first": i == 0, "last": i + 1 == n, "length": n, "revindex": n - i, "revindex0": n - i - 1});
            if lc
                .get("extended_allitems")
                .map_or(true, template::ansible_bool)
            {
                l["allitems"] = json!(all_items);
            }
            if i > 0 {
                l["previtem"] = all_items[i - 1].clone();
            }
            if i + 1 < n {
                l["nextitem"] = all_items[i + 1].clone();
            }
            iv.insert("ansible_loop".into(), l);
        }
        iv.insert("ansible_loop_var".into(), Value::String(loop_var.clone()));
        // As Ansible: `register` holds the previous item's result while the next one runs.
        if let (Some(reg), Some(prev)) = (&task.register, results.last()) {
            iv.insert(reg.clone(), prev.clone());
        }
        let ictx = from_json(&Value::Object(iv.clone()));
        let mut r = match eval_cond(&Value::Array(when.to_vec()), &ictx) {
            Ok(false) => TaskResult::skipped_by(when.last().cloned()),
            Err(e) => TaskResult::failed(format!(
                "{}: The conditional check failed: {}",
                task.loc, e.msg
            )),
            Ok(true) => {
                let (r, e2) = run_one(pc, hs, task, inh, &iv, hr);
                merge_item_effects(&mut eff, e2);
                r
            }
        };
        r.insert(loop_var.clone(), item.clone());
        r.insert("ansible_loop_var", Value::String(loop_var.clone()));
        if let Some(ix) = &index_var {
            r.insert("ansible_index_var", Value::String(ix.clone()));
            r.insert(ix.clone(), json!(i));
        }
        if let Some(l) = iv.get("ansible_loop") {
            r.insert("ansible_loop", l.clone());
        }
        // The label and `break_when` see this item's result under `register`.
        if let Some(reg) = &task.register {
            iv.insert(reg.clone(), r.to_value());
        }
        let ictx = from_json(&Value::Object(iv));
        let label = match lc.get("label") {
            Some(l) => template_value(l, &ictx)
                .map(|v| py_str(&v))
                .unwrap_or_else(|_| py_str(l)),
            None => py_str(&item),
        };
        let st = r.status();
        any_changed |= st == Status::Changed;
        any_failed |= st == Status::Failed;
        all_skipped &= st == Status::Skipped;
        hr.items.push(ItemResult {
            status: st,
            label,
            result: r.clone(),
        });
        results.push(r.to_value());
        if st == Status::Unreachable {
            return (TaskResult::unreachable("host became unreachable"), eff);
        }
        if let Some(bw) = lc.get("break_when") {
            let conds = match bw {
                Value::Array(a) => a.clone(),
                other => vec![other.clone()],
            };
            if eval_cond(&Value::Array(conds), &ictx).unwrap_or(false) {
                break;
            }
        }
    }
    let mut r = TaskResult::default();
    r.set_changed(any_changed);
    let msg = if any_failed {
        r.set_failed(true);
        "One or more items failed"
    } else if all_skipped {
        r.set_skipped();
        if n == 0 {
            "No items in the list"
        } else {
            "All items skipped"
        }
    } else {
        "All items completed"
    };
    r.set_msg(msg);
    r.insert("results", Value::Array(results));
    if any_changed {
        for n in notify_list(task, &ctx) {
            if !eff.notify.contains(&n) {
                eff.notify.push(n);
            }
        }
    }
    eff.register = Some(r.to_value());
    (r, eff)
}

pub(super) fn notify_list(task: &Task, ctx: &JValue) -> Vec<String> {
    task.notify
        .iter()
        .map(|n| template::render_str(n, ctx).unwrap_or(n.clone()))
        .collect()
}

pub(super) fn get_transport<'h>(
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
        // The play's `connection:` keyword, unless the host's variables set one (Ansible:
        // connection variables take precedence over the keyword).
        if !cv.contains_key("ansible_connection") {
            if let Some(c) = &pc.play.connection {
                let c = template_value(c, &from_json(&Value::Object(vars.clone())))
                    .unwrap_or(c.clone());
                cv.insert("ansible_connection".into(), c);
            }
        }
        if pc.opts.verbosity >= trace::TRACE_LEVEL {
            let msg = trace::connect_line(&hs.name, &cv);
            pc.rep.event(Event::Verbose {
                host: &hs.name,
                msg: &msg,
            });
        }
        hs.transport = Some(pc.conn.connect(&hs.name, &cv)?);
    }
    Ok(hs.transport.as_mut().unwrap())
}

/// One module invocation (one loop item): templating, delegation, become, retries,
/// changed_when/failed_when. Returns the result map.
pub(super) fn run_one(
    pc: &PlayCtx,
    hs: &mut HostState,
    task: &Task,
    inh: &Inherit,
    vars: &Map<String, Value>,
    hr: &mut HostResult,
) -> (TaskResult, HostEffects) {
    let mut eff = HostEffects::default();
    let TaskKind::Module { module, args } = &task.kind else {
        return (TaskResult::default(), eff);
    };
    let ctx = from_json(&Value::Object(vars.clone()));
    let kw = resolve_keywords(pc, task, inh, vars, &ctx);
    // `module_defaults` (play, then enclosing blocks, then the task) under the task's own
    // arguments, then templating (omit removes a parameter).
    let args = with_module_defaults(module, args, pc, inh, task);
    let args = match template_args(module, args.as_ref(), &ctx) {
        Ok(a) => a,
        Err(e) => {
            return (
                TaskResult::failed(format!(
                    "{}: the task includes an option with an undefined variable or a template error: {e}",
                    task.loc
                )),
                eff,
            )
        }
    };
    let attempts_max = if task.until.is_some() {
        kw.retries.max(1)
    } else {
        1
    };
    let search = search_dirs(pc, task, inh);
    let call = Call {
        module,
        args: &args,
        kw: &kw,
        ctx: &ctx,
        search: &search,
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut r = dispatch(pc, hs, task, vars, &call, &mut eff, hr);
        if r.is_unreachable() {
            return (r, eff);
        }
        // Before until/changed_when/failed_when see it.
        r.settle_failed_from_rc();
        if let Some(until) = &task.until {
            let mut uv = vars.clone();
            if let Some(reg) = &task.register {
                uv.insert(reg.clone(), r.to_value());
            }
            let uctx = from_json(&Value::Object(uv));
            let ok = eval_cond(until, &uctx).unwrap_or(false);
            r.insert("attempts", json!(attempt));
            if !ok && attempt < attempts_max {
                std::thread::sleep(Duration::from_secs_f64(kw.delay));
                continue;
            }
            if !ok {
                r.set_failed(true);
                r.default_msg("Retries exceeded");
            }
        }
        return post_process(pc, task, r, vars, eff);
    }
}

/// A task's keywords resolved for one host (innermost block wins, then the play, then
/// inventory variables), templated.
struct TaskKeywords {
    become_: Option<Become>,
    check: bool,
    diff: bool,
    env: Vec<(String, String)>,
    delegate: Option<String>,
    retries: u32,
    delay: f64,
    /// `-vvv` and not `no_log`: report each command sent to the host.
    trace: bool,
}

fn resolve_keywords(
    pc: &PlayCtx,
    task: &Task,
    inh: &Inherit,
    vars: &Map<String, Value>,
    ctx: &JValue,
) -> TaskKeywords {
    let tv =
        |v: Option<Value>| -> Option<Value> { v.map(|v| template_value(&v, ctx).unwrap_or(v)) };
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
    let mut env: Vec<(String, String)> = vec![];
    for e in [pc.play.environment.clone()]
        .into_iter()
        .chain(inh.kws.iter().map(|k| k.environment.clone()))
        .chain([task.kw.environment.clone()])
        .flatten()
    {
        if let Ok(Value::Object(m)) = template_value(&e, ctx) {
            for (k, v) in m {
                env.retain(|(x, _)| *x != k);
                env.push((k, py_str(&v)));
            }
        }
    }
    let number = |v: &Option<Value>| {
        v.as_ref()
            .map(|v| py_str(&template_value(v, ctx).unwrap_or(v.clone())))
    };
    TaskKeywords {
        become_: become_.then_some(Become {
            user: become_user,
            password: become_pw,
        }),
        check: tv(inh.last(&task.kw, |k| k.check_mode.as_ref()))
            .map(|v| template::ansible_bool(&v))
            .unwrap_or(pc.opts.check),
        diff: tv(inh.last(&task.kw, |k| k.diff.as_ref()))
            .map(|v| template::ansible_bool(&v))
            .unwrap_or(pc.opts.diff),
        env,
        delegate: tv(inh.last(&task.kw, |k| k.delegate_to.as_ref())).map(|v| py_str(&v)),
        retries: number(&task.retries)
            .map(|s| s.parse().unwrap_or(3))
            .unwrap_or(3),
        delay: number(&task.delay)
            .map(|s| s.parse().unwrap_or(5.0))
            .unwrap_or(5.0),
        trace: pc.opts.verbosity >= trace::TRACE_LEVEL
            && !task_flag(inh.last(&task.kw, |k| k.no_log.as_ref()), vars),
    }
}

/// One module call: the module, its templated args and the resolved keywords.
struct Call<'a> {
    module: &'a str,
    args: &'a Map<String, Value>,
    kw: &'a TaskKeywords,
    ctx: &'a JValue,
    search: &'a [PathBuf],
}

impl Call<'_> {
    fn mod_ctx<'a>(&'a self, host: &'a str) -> ModCtx<'a> {
        ModCtx {
            check: self.kw.check,
            diff: self.kw.diff,
            become_: self.kw.become_.clone(),
            env: self.kw.env.clone(),
            vars: self.ctx,
            search: self.search,
            host,
        }
    }
}

/// Run the module once where it belongs: on the controller, on the host's own
/// connection, on implicit localhost, or on the host it is delegated to.
fn dispatch(
    pc: &PlayCtx,
    hs: &mut HostState,
    task: &Task,
    vars: &Map<String, Value>,
    call: &Call,
    eff: &mut HostEffects,
    hr: &mut HostResult,
) -> TaskResult {
    let module = call.module;
    if let Some(modules::registry::Runs::Controller) =
        modules::registry::lookup(module).map(|d| d.runs)
    {
        let cc = ControllerCtx {
            vars: call.ctx,
            check: call.kw.check,
            search: call.search,
            loc: &task.loc,
        };
        return run_controller(module, call.args, &cc, eff, hr);
    }
    let r = match call.kw.delegate.as_deref() {
        // Ansible's implicit localhost: a local connection unless the inventory names the
        // host (then its own connection variables apply).
        Some(d) if d != hs.name && is_implicit_localhost(pc, d) => {
            hr.delegated_to = Some(d.to_string());
            let mut local = LocalTransport::new(d);
            run_module(pc, call, module, &mut local, &call.mod_ctx(&hr.host))
        }
        Some(d) if d != hs.name => {
            hr.delegated_to = Some(d.to_string());
            match run_delegated(pc, d, call) {
                Ok(r) => r,
                Err(e) => return TaskResult::unreachable(e.to_string()),
            }
        }
        _ => match get_transport(pc, hs, vars) {
            Err(e) => return TaskResult::unreachable(e.to_string()),
            Ok(t) => {
                let mc = call.mod_ctx(&hr.host);
                run_module(pc, call, module, &mut **t, &mc)
            }
        },
    };
    if module == "setup" {
        if let Some(f) = r.get("ansible_facts").and_then(|f| f.as_object()) {
            eff.facts = Some(facts_vars(f));
        }
    }
    r
}

/// Run the module on `d`'s connection (opened once per run and shared by every host that
/// delegates there; taken out of the pool while in use).
fn run_delegated(pc: &PlayCtx, d: &str, call: &Call) -> Result<TaskResult, TransportError> {
    let mut delegated = {
        let mut map = pc.delegates.lock().unwrap();
        match map.remove(d) {
            Some(t) => t,
            None => {
                let vars = pc.inv.host_vars(d);
                if pc.opts.verbosity >= trace::TRACE_LEVEL {
                    let msg = trace::connect_line(d, &vars);
                    pc.rep.event(Event::Verbose { host: d, msg: &msg });
                }
                pc.conn.connect(d, &vars)?
            }
        }
    };
    let r = run_module(pc, call, call.module, &mut *delegated, &call.mod_ctx(d));
    pc.delegates
        .lock()
        .unwrap()
        .insert(d.to_string(), delegated);
    Ok(r)
}

/// Run a module on `t`; at `-vvv` through a transport that reports each command.
fn run_module(
    pc: &PlayCtx,
    call: &Call,
    module: &str,
    t: &mut dyn Transport,
    mc: &ModCtx,
) -> TaskResult {
    let args = call.args;
    if call.kw.trace {
        let mut traced = trace::Traced {
            inner: t,
            rep: pc.rep,
        };
        module_result(modules::run(module, &mut traced, mc, args))
    } else {
        module_result(modules::run(module, t, mc, args))
    }
}

pub(super) fn post_process(
    _pc: &PlayCtx,
    task: &Task,
    mut r: TaskResult,
    vars: &Map<String, Value>,
    mut eff: HostEffects,
) -> (TaskResult, HostEffects) {
    if r.is_skipped() {
        return (r, eff);
    }
    if task.changed_when.is_some() || task.failed_when.is_some() {
        let mut cv = vars.clone();
        if let Some(reg) = &task.register {
            cv.insert(reg.clone(), r.to_value());
        }
        let cctx = from_json(&Value::Object(cv));
        if let Some(cw) = &task.changed_when {
            match eval_cond(&Value::Array(super_list(cw)), &cctx) {
                Ok(b) => r.set_changed(b),
                Err(e) => {
                    r.set_failed(true);
                    r.set_msg(format!("{}: changed_when: {}", task.loc, e.msg));
                }
            }
        }
        if let Some(fw) = &task.failed_when {
            match eval_cond(&Value::Array(super_list(fw)), &cctx) {
                Ok(b) => {
                    r.set_failed(b);
                    r.insert("failed_when_result", Value::Bool(b));
                }
                Err(e) => {
                    r.set_failed(true);
                    r.set_msg(format!("{}: failed_when: {}", task.loc, e.msg));
                }
            }
        }
    }
    if r.is_changed() && !r.is_failed() {
        let ctx = from_json(&Value::Object(vars.clone()));
        eff.notify = notify_list(task, &ctx);
    }
    (r, eff)
}

pub(super) fn super_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        o => vec![o.clone()],
    }
}

pub(super) fn module_result(r: Result<Map<String, Value>, ModError>) -> TaskResult {
    match r {
        Ok(m) => TaskResult::from_map(m),
        Err(ModError::Failed(msg)) => TaskResult::failed(msg),
        Err(ModError::Transport(e)) if e.is_unreachable() => TaskResult::unreachable(e.to_string()),
        Err(ModError::Transport(e)) => TaskResult::failed(e.to_string()),
    }
}

/// setup's `ansible_facts` → the variables Ansible injects: each fact under its own name
/// (`ansible_hostname`, `module_setup`) and all of them in `ansible_facts` without the
/// `ansible_` prefix (`ansible_facts.hostname`).
pub(super) fn facts_vars(f: &Map<String, Value>) -> Map<String, Value> {
    let mut m = f.clone();
    let clean: Map<String, Value> = f
        .iter()
        .map(|(k, v)| {
            (
                k.strip_prefix("ansible_").unwrap_or(k).to_string(),
                v.clone(),
            )
        })
        .collect();
    m.insert("ansible_facts".into(), Value::Object(clean));
    m
}

pub(super) fn search_dirs(pc: &PlayCtx, task: &Task, inh: &Inherit) -> Vec<PathBuf> {
    let mut d = vec![];
    if let Some(r) = task.role.as_ref().or(inh.role.as_ref()) {
        d.push(r.path.clone());
    }
    if pc.play.dir != pc.pb.dir {
        d.push(pc.play.dir.clone());
    }
    d.push(pc.pb.dir.clone());
    d
}

pub(super) fn strip_omit(v: Value) -> Option<Value> {
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

/// `args` with the `module_defaults` that name `module` (short or `ansible.builtin.`/
/// `ansible.legacy.` name) filled in where the task does not set them: the play's first,
/// then each enclosing block's, then the task's own, a later layer winning. Borrowed as it is
/// when no layer names the module (the usual case: no copy per task run).
fn with_module_defaults<'a>(
    module: &str,
    args: &'a Value,
    pc: &PlayCtx,
    inh: &Inherit,
    task: &Task,
) -> std::borrow::Cow<'a, Value> {
    let short = |n: &str| {
        n.strip_prefix("ansible.builtin.")
            .or_else(|| n.strip_prefix("ansible.legacy."))
            .unwrap_or(n)
            .to_string()
    };
    let mut layers = std::iter::once(&pc.play.module_defaults)
        .chain(inh.kws.iter().map(|k| &k.module_defaults))
        .chain(std::iter::once(&task.kw.module_defaults))
        .flatten()
        .peekable();
    if layers.peek().is_none() {
        return std::borrow::Cow::Borrowed(args);
    }
    let me = short(module);
    let mut defaults = Map::new();
    for layer in layers {
        let maps: Vec<&Map<String, Value>> = match layer {
            Value::Object(m) => vec![m],
            Value::Array(a) => a.iter().filter_map(Value::as_object).collect(),
            _ => vec![],
        };
        for m in maps {
            for (name, d) in m {
                if short(name) == me {
                    if let Some(d) = d.as_object() {
                        defaults.extend(d.iter().map(|(k, v)| (k.clone(), v.clone())));
                    }
                }
            }
        }
    }
    match args {
        Value::Object(a) if !defaults.is_empty() => {
            defaults.extend(a.iter().map(|(k, v)| (k.clone(), v.clone())));
            std::borrow::Cow::Owned(Value::Object(defaults))
        }
        _ => std::borrow::Cow::Borrowed(args),
    }
}

pub(super) fn template_args(
    module: &str,
    args: &Value,
    ctx: &JValue,
) -> Result<Map<String, Value>, String> {
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

/// `localhost` / `127.0.0.1` when the inventory does not define them: Ansible runs such a
/// delegation on the controller with a local connection.
fn is_implicit_localhost(pc: &PlayCtx, host: &str) -> bool {
    matches!(host, "localhost" | "127.0.0.1") && !pc.inv.all_hosts().iter().any(|h| h == host)
}
