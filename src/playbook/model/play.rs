//! Loading plays and roles: play keywords, `roles:` entries, role directories and the
//! handlers roles bring.

use super::*;

/// A role entry loaded: the role, the task that runs it, its handlers (its dependencies'
/// included).
type RoleEntry = (Arc<RoleCtx>, Task, Vec<Task>);

impl Loader {
    pub(super) fn load_role(
        &self,
        name: &str,
        params: Map<String, Value>,
        tasks_from: Option<&str>,
        loc: &Loc,
    ) -> Result<RoleLoad, LoadError> {
        let path = self.find_role(name, loc)?;
        if let Some(i) = self.roles.iter().position(|(_, p)| *p == path) {
            let chain: Vec<&str> = self.roles[i..].iter().map(|(n, _)| n.as_str()).collect();
            return Err(invalid(
                loc,
                format!(
                    "a recursion loop was detected with the roles specified: {} -> {name} \
                     (a role must not depend on, or include, a role that leads back to it)",
                    chain.join(" -> ")
                ),
            ));
        }
        let mut sub = self.deeper();
        sub.depth = self.depth; // a role is no include: its files count their own depth
        sub.roles.push((name.to_string(), path.clone()));
        let vars_of = |sub: &str| -> Result<Map<String, Value>, LoadError> {
            match find_yaml(&path.join(sub), "main") {
                Some(p) => load_vars_file(&p),
                None => Ok(Map::new()),
            }
        };
        let rc = Arc::new(RoleCtx {
            name: name.rsplit('/').next().unwrap_or(name).to_string(),
            path: path.clone(),
            defaults: vars_of("defaults")?,
            vars: vars_of("vars")?,
            params,
        });
        let some = Some(rc.clone());
        // meta/main.yml dependencies run first, each (with its params) once per play.
        let (mut tasks, mut dep_handlers) = (Vec::new(), Vec::new());
        for dep in sub.dependencies(&path)? {
            if let Some((_, task, handlers)) = sub.load_play_role(&dep.0, &dep.1)? {
                tasks.push(task);
                dep_handlers.extend(handlers);
            }
        }
        match find_yaml(&path.join("tasks"), tasks_from.unwrap_or("main")) {
            Some(p) => tasks.extend(sub.load_task_file(&p, &some)?),
            None if tasks_from.is_some() => {
                return Err(invalid(
                    loc,
                    format!("role '{name}' has no tasks file '{}'", tasks_from.unwrap()),
                ))
            }
            None => {}
        }
        // Dependencies' handlers come first, as Ansible compiles them.
        let mut handlers = dep_handlers;
        if let Some(p) = find_yaml(&path.join("handlers"), "main") {
            handlers.extend(sub.load_task_file(&p, &some)?);
        }
        Ok((rc, tasks, handlers))
    }

    /// The directory of role `name`: `roles/<name>` or `<name>` beside the playbook.
    fn find_role(&self, name: &str, loc: &Loc) -> Result<PathBuf, LoadError> {
        let cands = [self.pb_dir.join("roles").join(name), self.pb_dir.join(name)];
        let Some(path) = cands.iter().find(|p| p.is_dir()) else {
            return Err(invalid(
                loc,
                format!(
                    "the role '{name}' was not found in {}",
                    cands
                        .iter()
                        .map(|p| p.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        Ok(path.clone())
    }

    /// The `dependencies:` entries of a role's `meta/main.yml`, with the file they are in.
    fn dependencies(&self, role: &Path) -> Result<Vec<(YNode, Arc<str>)>, LoadError> {
        let Some(p) = find_yaml(&role.join("meta"), "main") else {
            return Ok(vec![]);
        };
        let (file, node) = read_yaml(&p)?;
        match node.get("dependencies") {
            None => Ok(vec![]),
            Some(d) if matches!(d.v, YValue::Null) => Ok(vec![]),
            Some(d) => match d.as_seq() {
                Some(list) => Ok(list.iter().map(|n| (n.clone(), file.clone())).collect()),
                None => Err(invalid(
                    &loc_of(&file, d),
                    "dependencies must be a list of roles",
                )),
            },
        }
    }

    /// Whether a role's `meta/main.yml` says `allow_duplicates: true`.
    fn allows_duplicates(role: &Path) -> Result<bool, LoadError> {
        let Some(p) = find_yaml(&role.join("meta"), "main") else {
            return Ok(false);
        };
        let (_, node) = read_yaml(&p)?;
        Ok(node
            .get("allow_duplicates")
            .is_some_and(|v| matches!(v.v, YValue::Bool(true))))
    }

    pub(super) fn load_play(&self, node: &YNode, file: &Arc<str>) -> Result<Play, LoadError> {
        let loc = loc_of(file, node);
        let Some(map) = node.as_map() else {
            return Err(invalid(&loc, "a play must be a mapping"));
        };
        self.ran.borrow_mut().clear(); // roles run once per play
        for (k, _) in map {
            let key = k.key_string();
            if !PLAY_KEYWORDS.contains(&key.as_str()) {
                return Err(invalid(
                    &loc_of(file, k),
                    format!("'{key}' is not a valid attribute for a Play"),
                ));
            }
        }
        let hosts = node
            .get("hosts")
            .map(|h| h.to_json())
            .ok_or_else(|| invalid(&loc, "the field 'hosts' is required but was not set"))?;
        let mut play = Play {
            loc: loc.clone(),
            name: node
                .get("name")
                .map(|n| template::py_str(&n.to_json()))
                .unwrap_or_else(|| match &hosts {
                    Value::Array(a) => a.iter().map(template::py_str).collect::<Vec<_>>().join(","),
                    h => template::py_str(h),
                }),
            hosts,
            gather_facts: true,
            dir: self.pb_dir.clone(),
            kw: kw_from(map, file)?,
            ..Default::default()
        };
        // Task lists and roles load in the order they run (a role met again is left out, and
        // `handlers:` must not replace the handlers roles brought), the rest as written.
        const RUN_ORDER: [&str; 4] = ["pre_tasks", "roles", "tasks", "post_tasks"];
        for (k, v) in map {
            let k = k.key_string();
            if !RUN_ORDER.contains(&k.as_str()) {
                self.set_play_keyword(&mut play, &k, v, file)?;
            }
        }
        let mut roles_handlers = Vec::new();
        for key in RUN_ORDER {
            if let Some(v) = node.get(key) {
                if key == "roles" {
                    self.load_play_roles(&mut play, v, file, &mut roles_handlers)?;
                } else {
                    self.set_play_keyword(&mut play, key, v, file)?;
                }
            }
        }
        // Ansible's handler list: the `roles:` entries' (dependencies first), the play's
        // `handlers:`, then those of import_role (loaded with pre_tasks, post_tasks, tasks, in
        // that order) and of include_role (added as they run: pre_tasks, roles, tasks,
        // post_tasks). A name notifies the last one loaded with it.
        let (mut imported, mut included) = (Vec::new(), Vec::new());
        for list in [&play.pre_tasks, &play.post_tasks, &play.tasks] {
            role_handlers(list, false, &mut imported);
        }
        for list in [
            &play.pre_tasks,
            &play.role_tasks,
            &play.tasks,
            &play.post_tasks,
        ] {
            role_handlers(list, true, &mut included);
        }
        for list in [&play.pre_tasks, &play.post_tasks, &play.tasks] {
            import_role_names(list, &mut play.role_names);
        }
        let mut handlers = std::mem::take(&mut roles_handlers);
        handlers.append(&mut play.handlers);
        handlers.extend(imported);
        handlers.extend(included);
        play.handlers = handlers;
        play.uses_hostvars = play.vars.values().any(mentions_hostvars)
            || play.roles.iter().any(|r| {
                [&r.defaults, &r.vars, &r.params]
                    .iter()
                    .any(|m| m.values().any(mentions_hostvars))
            });
        Ok(play)
    }

    /// One play keyword stored on the play; task lists and roles load here.
    fn set_play_keyword(
        &self,
        play: &mut Play,
        key: &str,
        v: &YNode,
        file: &Arc<str>,
    ) -> Result<(), LoadError> {
        let base = self.pb_dir.clone();
        let j = v.to_json();
        let vloc = loc_of(file, v);
        match key {
            "vars" => match j {
                Value::Object(m) => {
                    check_templates(&Value::Object(m.clone()), &vloc)?;
                    play.vars = m
                }
                Value::Null => {}
                _ => return Err(invalid(&vloc, "vars must be a mapping")),
            },
            "vars_files" => play.vars_files = as_list(&j),
            "become" => play.become_ = Some(j),
            "become_user" => play.become_user = Some(j),
            "remote_user" => play.remote_user = Some(j),
            "connection" => play.connection = Some(j),
            "module_defaults" => play.module_defaults = Some(j),
            "gather_facts" => play.gather_facts = template::ansible_bool(&j),
            "gather_subset" => play.gather_subset = Some(j),
            "serial" => play.serial = Some(j),
            "environment" => play.environment = Some(j),
            "any_errors_fatal" => play.any_errors_fatal = template::ansible_bool(&j),
            "force_handlers" => play.force_handlers = template::ansible_bool(&j),
            "max_fail_percentage" => {
                play.max_fail_percentage = Some(match &j {
                    Value::Number(n) => n.as_f64().unwrap_or(100.0),
                    Value::String(s) => s.trim_end_matches('%').parse().unwrap_or(100.0),
                    _ => 100.0,
                })
            }
            "pre_tasks" => play.pre_tasks = self.load_task_list(v, file, &base, &None)?,
            "tasks" => play.tasks = self.load_task_list(v, file, &base, &None)?,
            "post_tasks" => play.post_tasks = self.load_task_list(v, file, &base, &None)?,
            "handlers" => play.handlers = self.load_task_list(v, file, &base, &None)?,
            _ => {}
        }
        Ok(())
    }

    /// The play's `roles:` list: each entry (its dependencies first) as a task of
    /// `role_tasks`, its variables in `roles`, its handlers into `handlers`.
    fn load_play_roles(
        &self,
        play: &mut Play,
        v: &YNode,
        file: &Arc<str>,
        handlers: &mut Vec<Task>,
    ) -> Result<(), LoadError> {
        for r in v.as_seq().unwrap_or(&[]) {
            // `role_names`: every entry as listed (twice if listed twice), without
            // the dependencies, by the role's name (a path's last component).
            let listed = match &r.v {
                YValue::Str(s) => Some(s.clone()),
                _ => r
                    .get("role")
                    .or_else(|| r.get("name"))
                    .map(|x| template::py_str(&x.to_json())),
            };
            if let Some(n) = listed {
                let n = n.trim_end_matches('/');
                play.role_names
                    .push(n.rsplit('/').next().unwrap_or(n).to_string());
            }
            // None: the same role with the same params is already in the play.
            if let Some((rc, task, hs)) = self.load_play_role(r, file)? {
                // Dependencies' defaults and vars are the play's too, theirs first.
                push_with_deps(&rc, &task, &mut play.roles);
                collect_deps(&task, true, &mut play.dependent_role_names);
                play.role_tasks.push(task);
                handlers.extend(hs);
            }
        }
        Ok(())
    }

    /// One `roles:` entry or `meta/main.yml` dependency (a name, or a mapping with `role:`
    /// plus params and keywords) as the role, the task that runs it and the role's handlers
    /// (its dependencies' included). `None` when the same role with the same params is
    /// already in the play and its meta does not say `allow_duplicates: true`: Ansible runs
    /// it once.
    fn load_play_role(&self, r: &YNode, file: &Arc<str>) -> Result<Option<RoleEntry>, LoadError> {
        let rloc = loc_of(file, r);
        let (name, mut params, mut kw) = match &r.v {
            YValue::Str(s) => (s.clone(), Map::new(), Kw::default()),
            YValue::Map(m) => {
                let name = r
                    .get("role")
                    .or_else(|| r.get("name"))
                    .map(|x| template::py_str(&x.to_json()))
                    .ok_or_else(|| invalid(&rloc, "role entry without 'role:'"))?;
                let kw = kw_from(m, file)?;
                let mut params = Map::new();
                for (pk, pv) in m {
                    let pk = pk.key_string();
                    if !BLOCK_KEYWORDS.contains(&pk.as_str()) && pk != "role" {
                        params.insert(pk, pv.to_json());
                    }
                }
                (name, params, kw)
            }
            _ => return Err(invalid(&rloc, "bad role entry")),
        };
        // Role `vars:` act as role params (high precedence), as in Ansible.
        for (vk, vv) in std::mem::take(&mut kw.vars) {
            params.insert(vk, vv);
        }
        let path = self.find_role(&name, &rloc)?;
        let key = format!("{}\n{}", path.display(), Value::Object(params.clone()));
        if self.ran.borrow().contains(&key) && !Self::allows_duplicates(&path)? {
            return Ok(None);
        }
        let (rc, tasks, handlers) = self.load_role(&name, params, None, &rloc)?;
        self.ran.borrow_mut().insert(key);
        let mut task = Task::empty(rloc, kw, None);
        task.name = Some(format!("role {name}"));
        task.kind = TaskKind::Role {
            role: rc.clone(),
            tasks,
        };
        Ok(Some((rc, task, handlers)))
    }
}

/// `rc` after the roles it depends on (the `Role` tasks its task runs first), depth first.
fn push_with_deps(rc: &Arc<RoleCtx>, task: &Task, out: &mut Vec<Arc<RoleCtx>>) {
    if let TaskKind::Role { tasks, .. } = &task.kind {
        for t in tasks {
            if let TaskKind::Role { role, .. } = &t.kind {
                push_with_deps(role, t, out);
            }
        }
    }
    out.push(rc.clone());
}

/// Handlers of the roles that tasks import (`dynamic` false) or include (true), found
/// through blocks and roles; a play role's own handlers (and its dependencies') are
/// already the play's.
fn role_handlers(tasks: &[Task], dynamic: bool, out: &mut Vec<Task>) {
    for t in tasks {
        match &t.kind {
            TaskKind::IncludeRole {
                tasks,
                handlers,
                dynamic: d,
                ..
            } => {
                if *d == dynamic {
                    out.extend(handlers.iter().cloned());
                }
                role_handlers(tasks, dynamic, out);
            }
            TaskKind::Block {
                block,
                rescue,
                always,
            } => {
                role_handlers(block, dynamic, out);
                role_handlers(rescue, dynamic, out);
                role_handlers(always, dynamic, out);
            }
            TaskKind::Role { tasks, .. } => role_handlers(tasks, dynamic, out),
            _ => {}
        }
    }
}

/// The roles `import_role` brings (they join the play's roles at load, as in Ansible).
fn import_role_names(tasks: &[Task], out: &mut Vec<String>) {
    for t in tasks {
        match &t.kind {
            TaskKind::IncludeRole {
                role,
                tasks,
                dynamic,
                ..
            } => {
                if !dynamic {
                    out.push(role.name.clone());
                }
                import_role_names(tasks, out);
            }
            TaskKind::Block {
                block,
                rescue,
                always,
            } => {
                import_role_names(block, out);
                import_role_names(rescue, out);
                import_role_names(always, out);
            }
            TaskKind::Role { tasks, .. } => import_role_names(tasks, out),
            _ => {}
        }
    }
}

/// The roles that role entries depend on (`meta/main.yml`, recursively; `top` is the entry
/// itself, which is not its own dependency): Ansible's `ansible_dependent_role_names`.
fn collect_deps(task: &Task, top: bool, out: &mut Vec<String>) {
    if let TaskKind::Role { role, tasks } = &task.kind {
        if !top && !out.contains(&role.name) {
            out.push(role.name.clone());
        }
        for t in tasks {
            collect_deps(t, false, out);
        }
    }
}
