//! Variable precedence: the merged variables of one host for one task, and `hostvars`.

use super::*;

/// Merge variables for one host at Ansible's precedence.
pub(super) fn build_vars(
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
    if let Some(hv) = pc.opts.host_vars.get(&hs.name) {
        put(&mut m, hv, true);
    }
    // Magic variables.
    let role_names = pc.role_names.lock().unwrap().clone();
    let mut all_roles: Vec<&String> = role_names
        .iter()
        .chain(&pc.play.dependent_role_names)
        .collect();
    all_roles.sort();
    all_roles.dedup();
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
        "role_names": role_names,
        "ansible_play_role_names": role_names,
        "ansible_dependent_role_names": pc.play.dependent_role_names,
        "ansible_role_names": all_roles,
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

pub(super) fn abs(p: &std::path::Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

pub(super) fn has_template(v: &Value) -> bool {
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
pub(super) fn resolve_lazy(m: &mut Map<String, Value>, lazy: &HashSet<String>) {
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
                        // Renders to itself and is still a template: the variable refers to
                        // itself through a loop (`a: "{{ b }}"`, `b: "{{ a }}"`). It stays
                        // pending and ends undefined, so a task using it fails as in Ansible
                        // instead of printing its own template text.
                        next.push(k.clone());
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

pub(super) fn hostvars_value(pc: &PlayCtx, hosts: &BTreeMap<String, HostState>) -> Value {
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
        let short = h.split('.').next().unwrap_or(&h).to_string();
        m.insert("inventory_hostname_short".into(), Value::String(short));
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
