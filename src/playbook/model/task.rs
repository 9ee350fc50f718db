//! Loading task lists: blocks, keywords, the module entry and its arguments, static
//! imports resolved and dynamic includes validated.

use super::*;

/// The `loop_control` keys (Ansible's LoopControl attributes).
const LOOP_CONTROL: &[&str] = &[
    "loop_var",
    "index_var",
    "label",
    "pause",
    "extended",
    "extended_allitems",
    "break_when",
];

impl Loader {
    pub(super) fn load_task_list(
        &self,
        node: &YNode,
        file: &Arc<str>,
        base: &Path,
        role: &Option<Arc<RoleCtx>>,
    ) -> Result<Vec<Task>, LoadError> {
        match &node.v {
            YValue::Null => Ok(vec![]),
            YValue::Seq(items) => {
                let mut out = Vec::new();
                for it in items {
                    out.push(self.load_task(it, file, base, role)?);
                }
                Ok(out)
            }
            _ => Err(invalid(
                &loc_of(file, node),
                "a task list must be a YAML list",
            )),
        }
    }

    pub(super) fn load_task_file(
        &self,
        path: &Path,
        role: &Option<Arc<RoleCtx>>,
    ) -> Result<Vec<Task>, LoadError> {
        if self.depth > 20 {
            return Err(invalid(
                &Loc {
                    file: Arc::from(path.display().to_string()),
                    line: 1,
                    col: 1,
                },
                "task files include each other too deeply (a cycle?)",
            ));
        }
        let (file, node) = read_yaml(path)?;
        let sub = self.deeper();
        let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        sub.load_task_list(&node, &file, &base, role)
    }

    fn load_task(
        &self,
        node: &YNode,
        file: &Arc<str>,
        base: &Path,
        role: &Option<Arc<RoleCtx>>,
    ) -> Result<Task, LoadError> {
        let loc = loc_of(file, node);
        let Some(map) = node.as_map() else {
            return Err(invalid(&loc, "a task must be a mapping"));
        };
        let mut task = Task::empty(loc.clone(), kw_from(map, file)?, role.clone());
        if let Some(n) = node.get("name") {
            let name = template::py_str(&n.to_json());
            template::check_syntax(&name).map_err(|e| invalid(&loc_of(file, n), e.msg))?;
            task.name = Some(name);
        }
        if map.iter().any(|(k, _)| k.key_string() == "block") {
            return self.load_block(task, node, map, file, base, role);
        }
        let mut action: Option<(String, YNode)> = None;
        let mut extra_args = Map::new();
        for (k, v) in map {
            let key = k.key_string();
            let kloc = loc_of(file, k);
            if let Some(lookup) = key.strip_prefix("with_") {
                if !WITH_LOOKUPS.contains(&lookup) {
                    return Err(invalid(&kloc, format!("unsupported loop '{key}'")));
                }
                let j = v.to_json();
                check_templates(&j, &kloc)?;
                task.loop_ = Some(j);
                task.with = Some(lookup.to_string());
            } else if TASK_KEYWORDS.contains(&key.as_str()) {
                let slot = TaskSlots {
                    action: &mut action,
                    extra_args: &mut extra_args,
                };
                set_task_keyword(&mut task, &key, v, &kloc, slot)?;
            } else if canonical_module(&key).is_some() {
                if let Some((prev, _)) = &action {
                    return Err(invalid(
                        &kloc,
                        format!("conflicting action statements: '{key}' and '{}'", prev),
                    ));
                }
                action = Some((key, v.clone()));
            } else {
                return Err(invalid(
                    &kloc,
                    format!("'{key}' is not a valid task keyword or a module darkport knows (couldn't resolve module/action '{key}')"),
                ));
            }
        }
        let Some((mname, argnode)) = action else {
            return Err(invalid(&loc, "no module/action detected in task"));
        };
        let module = canonical_module(&mname)
            .ok_or_else(|| invalid(&loc, format!("couldn't resolve module/action '{mname}'")))?;
        let args_loc = loc_of(file, &argnode);
        let args = module_args(module, argnode.to_json(), extra_args);
        check_templates(&Value::Object(args.clone()), &args_loc)?;
        if module == "assert" {
            let Some(that) = args.get("that") else {
                return Err(invalid(
                    &args_loc,
                    "assert: missing required argument 'that'",
                ));
            };
            check_exprs(&Value::Array(as_list(that)), &args_loc)?;
        }
        if module.starts_with("import_") && task.loop_.is_some() {
            return Err(invalid(
                &loc,
                format!(
                    "you cannot use loops on '{module}' (it is static: use include_{})",
                    &module[7..]
                ),
            ));
        }
        task.kind = self.task_kind(module, args, &args_loc, base, role)?;
        task.uses_hostvars = task_mentions_hostvars(&task);
        Ok(task)
    }

    /// A `block:` task: only block keywords are allowed; its three lists load recursively.
    fn load_block(
        &self,
        mut task: Task,
        node: &YNode,
        map: &[(YNode, YNode)],
        file: &Arc<str>,
        base: &Path,
        role: &Option<Arc<RoleCtx>>,
    ) -> Result<Task, LoadError> {
        for (k, _) in map {
            let key = k.key_string();
            if !BLOCK_KEYWORDS.contains(&key.as_str()) {
                return Err(invalid(
                    &loc_of(file, k),
                    format!("'{key}' is not a valid attribute for a Block"),
                ));
            }
        }
        let get = |k: &str| -> Result<Vec<Task>, LoadError> {
            match node.get(k) {
                Some(n) => self.load_task_list(n, file, base, role),
                None => Ok(vec![]),
            }
        };
        task.kind = TaskKind::Block {
            block: get("block")?,
            rescue: get("rescue")?,
            always: get("always")?,
        };
        if let Some(n) = node.get("notify") {
            task.notify = str_list(&n.to_json());
        }
        Ok(task)
    }

    /// What a module entry becomes: meta actions and task includes/imports and role
    /// includes are resolved (static ones loaded now), everything else is a module call.
    fn task_kind(
        &self,
        module: &'static str,
        args: Map<String, Value>,
        args_loc: &Loc,
        base: &Path,
        role: &Option<Arc<RoleCtx>>,
    ) -> Result<TaskKind, LoadError> {
        Ok(match module {
            "meta" => {
                let what = args
                    .get("_raw_params")
                    .or_else(|| args.get("free_form"))
                    .map(template::py_str)
                    .unwrap_or_default();
                if !META_ACTIONS.contains(&what.as_str()) {
                    return Err(invalid(args_loc, format!("invalid meta action '{what}'")));
                }
                TaskKind::Meta(what)
            }
            "import_tasks" | "include_tasks" => {
                check_include_args(module, &args, &["file", "_raw_params", "apply"], args_loc)?;
                let apply = apply_kw(module, &args, args_loc)?;
                let f = args
                    .get("_raw_params")
                    .or_else(|| args.get("file"))
                    .cloned()
                    .ok_or_else(|| invalid(args_loc, format!("{module}: no file given")))?;
                match (&f, module) {
                    (Value::String(s), "import_tasks") if !template::is_template(s) => {
                        let p = self.resolve_tasks_path(s, base, role);
                        let tasks = self.load_task_file(&p, role)?;
                        TaskKind::Block {
                            block: tasks,
                            rescue: vec![],
                            always: vec![],
                        }
                    }
                    (Value::String(s), _) if !template::is_template(s) => {
                        // Validate now; run when reached.
                        let p = self.resolve_tasks_path(s, base, role);
                        self.load_task_file(&p, role)?;
                        TaskKind::Include {
                            file: Value::String(p.display().to_string()),
                            base: base.to_path_buf(),
                            apply,
                        }
                    }
                    _ => TaskKind::Include {
                        file: f,
                        base: base.to_path_buf(),
                        apply,
                    },
                }
            }
            "import_role" | "include_role" => {
                check_include_args(module, &args, ROLE_INCLUDE_ARGS, args_loc)?;
                let apply = apply_kw(module, &args, args_loc)?;
                let name = args
                    .get("name")
                    .or_else(|| args.get("role"))
                    .map(template::py_str)
                    .ok_or_else(|| invalid(args_loc, format!("{module}: no role name given")))?;
                let tasks_from = args.get("tasks_from").map(template::py_str);
                let (rc, tasks, handlers) =
                    self.load_role(&name, Map::new(), tasks_from.as_deref(), args_loc)?;
                TaskKind::IncludeRole {
                    role: rc,
                    tasks,
                    handlers,
                    dynamic: module == "include_role",
                    apply,
                }
            }
            _ => TaskKind::Module {
                module,
                args: Value::Object(args),
            },
        })
    }

    pub(super) fn resolve_tasks_path(
        &self,
        name: &str,
        base: &Path,
        role: &Option<Arc<RoleCtx>>,
    ) -> PathBuf {
        let p = Path::new(name);
        if p.is_absolute() {
            return p.to_path_buf();
        }
        let mut cands = vec![base.join(name)];
        if let Some(r) = role {
            cands.push(r.path.join("tasks").join(name));
        }
        cands.push(self.pb_dir.join(name));
        cands
            .iter()
            .find(|c| c.is_file())
            .cloned()
            .unwrap_or_else(|| cands[0].clone())
    }
}

/// The options of `include_role`/`import_role` darkport takes; `vars_from`,
/// `defaults_from`, `handlers_from` and `public` are refused at load (see [`check_include_args`]).
const ROLE_INCLUDE_ARGS: &[&str] = &[
    "name",
    "role",
    "tasks_from",
    "apply",
    "allow_duplicates",
    "rolespec_validate",
];

/// Refuse an include/import option that is not in `known`: one Ansible has but darkport
/// does not run is named as such, an unknown one as Ansible names it.
fn check_include_args(
    module: &str,
    args: &Map<String, Value>,
    known: &[&str],
    loc: &Loc,
) -> Result<(), LoadError> {
    const NOT_SUPPORTED: &[&str] = &["vars_from", "defaults_from", "handlers_from", "public"];
    for k in args.keys() {
        if known.contains(&k.as_str()) {
            continue;
        }
        if NOT_SUPPORTED.contains(&k.as_str()) {
            return Err(invalid(
                loc,
                format!("{module}: the option '{k}' is not supported by darkport"),
            ));
        }
        return Err(invalid(loc, format!("Invalid options for {module}: {k}")));
    }
    Ok(())
}

/// The `apply:` keywords of an include (only `include_*` take them, as in Ansible).
fn apply_kw(
    module: &str,
    args: &Map<String, Value>,
    loc: &Loc,
) -> Result<Option<Box<Kw>>, LoadError> {
    let Some(a) = args.get("apply") else {
        return Ok(None);
    };
    if module.starts_with("import_") {
        return Err(invalid(loc, format!("Invalid options for {module}: apply")));
    }
    let Value::Object(m) = a else {
        return Err(invalid(
            loc,
            format!(
                "Expected a dict for apply but got {} instead",
                match a {
                    Value::Array(_) => "list",
                    Value::String(_) => "str",
                    Value::Number(_) => "number",
                    Value::Bool(_) => "bool",
                    _ => "NoneType",
                }
            ),
        ));
    };
    for k in m.keys() {
        if !BLOCK_KEYWORDS.contains(&k.as_str())
            || matches!(k.as_str(), "block" | "rescue" | "always")
        {
            return Err(invalid(
                loc,
                format!("{module}: '{k}' is not a keyword apply can give the included tasks"),
            ));
        }
    }
    let kw = kw_from_json(m.iter().map(|(k, v)| (k.clone(), v.clone(), loc.clone())))?;
    Ok(Some(Box::new(kw)))
}

/// The `with_<lookup>` loops darkport runs.
const WITH_LOOKUPS: &[&str] = &[
    "items",
    "list",
    "dict",
    "indexed_items",
    "flattened",
    "sequence",
    "together",
    "nested",
    "fileglob",
    "subelements",
    "random_choice",
    "first_found",
    "lines",
    "file",
    "env",
    "inventory_hostnames",
];

/// The `meta:` actions Ansible defines.
const META_ACTIONS: &[&str] = &[
    "flush_handlers",
    "noop",
    "end_play",
    "end_host",
    "clear_host_errors",
    "refresh_inventory",
    "clear_facts",
    "end_batch",
    "reset_connection",
];

/// Where task keywords that are not fields of `Task` land while a task loads.
struct TaskSlots<'a> {
    action: &'a mut Option<(String, YNode)>,
    extra_args: &'a mut Map<String, Value>,
}

/// One task keyword: templates (or expressions) checked, then stored on the task.
fn set_task_keyword(
    task: &mut Task,
    key: &str,
    v: &YNode,
    kloc: &Loc,
    slot: TaskSlots<'_>,
) -> Result<(), LoadError> {
    let j = v.to_json();
    if EXPR_KEYWORDS.contains(&key) {
        check_exprs(&j, kloc)?;
    } else if key != "name" {
        check_templates(&j, kloc)?;
    }
    match key {
        "loop" => task.loop_ = Some(j),
        "loop_control" => {
            if let Value::Object(m) = j {
                if let Some(k) = m.keys().find(|k| !LOOP_CONTROL.contains(&k.as_str())) {
                    return Err(invalid(
                        kloc,
                        format!("'{k}' is not a valid attribute for a LoopControl"),
                    ));
                }
                task.loop_control = m
            }
        }
        "register" => task.register = Some(template::py_str(&j)),
        "notify" => task.notify = str_list(&j),
        "listen" => task.listen = str_list(&j),
        "changed_when" => task.changed_when = Some(j),
        "failed_when" => task.failed_when = Some(j),
        "until" => task.until = Some(j),
        "retries" => task.retries = Some(j),
        "delay" => task.delay = Some(j),
        "args" => {
            if let Value::Object(m) = j {
                *slot.extra_args = m
            }
        }
        "action" | "local_action" => {
            if slot.action.is_some() {
                return Err(invalid(kloc, "conflicting action statements"));
            }
            if key == "local_action" {
                task.kw.delegate_to = Some(Value::String("localhost".into()));
            }
            *slot.action = Some(split_action(v, kloc)?);
        }
        // Accepted and ignored: async, poll, throttle, timeout, remote_user, connection,
        // debugger, collections, module_defaults, delegate_facts, ignore_unreachable, and
        // the keywords `kw_from` already read.
        _ => {}
    }
    Ok(())
}

/// `action: module k=v` or `action: {module: x, ...}` into the module name and its args.
fn split_action(v: &YNode, kloc: &Loc) -> Result<(String, YNode), LoadError> {
    match &v.v {
        YValue::Str(s) => {
            let s = s.trim();
            let (m, r) = s.split_once(char::is_whitespace).unwrap_or((s, ""));
            let rest = YNode {
                v: YValue::Str(r.trim().to_string()),
                pos: v.pos,
            };
            Ok((m.to_string(), rest))
        }
        YValue::Map(entries) => {
            let m = v.get("module").and_then(|x| x.as_str()).unwrap_or("");
            let rest: Vec<(YNode, YNode)> = entries
                .iter()
                .filter(|(k, _)| k.key_string() != "module")
                .cloned()
                .collect();
            let rest = YNode {
                v: YValue::Map(rest),
                pos: v.pos,
            };
            Ok((m.to_string(), rest))
        }
        _ => Err(invalid(kloc, "bad action")),
    }
}

/// A module's arguments as a map: `k=v` strings parsed (free-form for command-like
/// modules and bare include/meta names), `args:` filling what the entry did not set.
fn module_args(module: &str, argv: Value, extra_args: Map<String, Value>) -> Map<String, Value> {
    let mut args = match argv {
        Value::Object(m) => m,
        Value::Null => Map::new(),
        Value::String(s) => {
            let cmdlike = matches!(module, "command" | "shell" | "raw" | "script");
            let bare = matches!(
                module,
                "include_tasks" | "import_tasks" | "include_vars" | "meta"
            ) && !s.contains('=');
            if bare {
                let mut m = Map::new();
                m.insert("_raw_params".into(), Value::String(s.trim().to_string()));
                m
            } else {
                parse_kv(&s, cmdlike)
            }
        }
        other => {
            let mut m = Map::new();
            m.insert("_raw_params".into(), other);
            m
        }
    };
    for (k, v) in extra_args {
        args.entry(k).or_insert(v);
    }
    args
}
