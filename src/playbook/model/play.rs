//! Loading plays and roles: play keywords, `roles:` entries, role directories and the
//! handlers roles bring.

use super::*;

impl Loader {
    pub(super) fn load_role(
        &self,
        name: &str,
        params: Map<String, Value>,
        tasks_from: Option<&str>,
        loc: &Loc,
    ) -> Result<RoleLoad, LoadError> {
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
        let tasks = match find_yaml(&path.join("tasks"), tasks_from.unwrap_or("main")) {
            Some(p) => self.load_task_file(&p, &some)?,
            None if tasks_from.is_some() => {
                return Err(invalid(
                    loc,
                    format!("role '{name}' has no tasks file '{}'", tasks_from.unwrap()),
                ))
            }
            None => vec![],
        };
        let handlers = match find_yaml(&path.join("handlers"), "main") {
            Some(p) => self.load_task_file(&p, &some)?,
            None => vec![],
        };
        Ok((rc, tasks, handlers))
    }

    pub(super) fn load_play(&self, node: &YNode, file: &Arc<str>) -> Result<Play, LoadError> {
        let loc = loc_of(file, node);
        let Some(map) = node.as_map() else {
            return Err(invalid(&loc, "a play must be a mapping"));
        };
        if node.get("import_playbook").is_some() {
            return Err(invalid(&loc, "import_playbook is not supported"));
        }
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
            kw: kw_from(map, file)?,
            ..Default::default()
        };
        for (k, v) in map {
            self.set_play_keyword(&mut play, &k.key_string(), v, file)?;
        }
        // Handlers from include_role/import_role tasks join the play's handlers.
        let mut extra = Vec::new();
        for list in [
            &play.pre_tasks,
            &play.role_tasks,
            &play.tasks,
            &play.post_tasks,
        ] {
            role_handlers(list, self, &mut extra)?;
        }
        play.handlers.extend(extra);
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
            "gather_facts" => play.gather_facts = template::ansible_bool(&j),
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
            "roles" => {
                for r in v.as_seq().unwrap_or(&[]) {
                    let (rc, task, handlers) = self.load_play_role(r, file)?;
                    play.roles.push(rc);
                    play.role_tasks.push(task);
                    play.handlers.extend(handlers);
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// One `roles:` entry (a name, or a mapping with `role:` plus params and keywords) as
    /// the role, the task that runs it and the role's handlers.
    fn load_play_role(
        &self,
        r: &YNode,
        file: &Arc<str>,
    ) -> Result<(Arc<RoleCtx>, Task, Vec<Task>), LoadError> {
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
        let (rc, tasks, handlers) = self.load_role(&name, params, None, &rloc)?;
        let mut task = Task::empty(rloc, kw, None);
        task.name = Some(format!("role {name}"));
        task.kind = TaskKind::Role {
            role: rc.clone(),
            tasks,
        };
        Ok((rc, task, handlers))
    }
}

/// Handlers of the roles that tasks include (include_role/import_role), found through
/// blocks and play roles; a play role's own handlers are already the play's.
fn role_handlers(tasks: &[Task], loader: &Loader, out: &mut Vec<Task>) -> Result<(), LoadError> {
    for t in tasks {
        match &t.kind {
            TaskKind::IncludeRole { role, .. } => {
                if let Some(p) = find_yaml(&role.path.join("handlers"), "main") {
                    out.extend(loader.load_task_file(&p, &Some(role.clone()))?);
                }
            }
            TaskKind::Block {
                block,
                rescue,
                always,
            } => {
                role_handlers(block, loader, out)?;
                role_handlers(rescue, loader, out)?;
                role_handlers(always, loader, out)?;
            }
            TaskKind::Role { tasks, .. } => role_handlers(tasks, loader, out)?,
            _ => {}
        }
    }
    Ok(())
}
