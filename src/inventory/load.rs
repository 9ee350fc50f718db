//! Reading inventory sources: INI and YAML files, host lists, directories of sources, and
//! the `group_vars/` and `host_vars/` beside them.

use super::*;

impl Inventory {
    // ---- sources ----

    pub(super) fn parse_source(&mut self, src: &Path) -> Result<(), InventoryError> {
        if src.is_dir() {
            let mut entries: Vec<PathBuf> = std::fs::read_dir(src)
                .map_err(|e| InventoryError::Read {
                    path: src.to_path_buf(),
                    source: e,
                })?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .collect();
            entries.sort();
            for e in entries {
                let name = e
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if ignored_in_dir(&name) {
                    continue;
                }
                self.parse_source(&e)?;
            }
            return Ok(());
        }
        let bytes = std::fs::read(src).map_err(|e| InventoryError::Read {
            path: src.to_path_buf(),
            source: e,
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let upto = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            InventoryError::Parse {
                path: src.to_path_buf(),
                line: upto.iter().filter(|&&b| b == b'\n').count() + 1,
                col: None,
                msg: "not valid UTF-8".into(),
            }
        })?;
        let ext = src
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("yml") | Some("yaml") | Some("json") => self.parse_yaml_source(&text, src),
            Some("toml") => Err(InventoryError::Parse {
                path: src.to_path_buf(),
                line: 0,
                col: None,
                msg: "TOML inventories are not supported (use INI or YAML)".into(),
            }),
            None => {
                // Ansible tries YAML first, then INI.
                match yaml::parse(&text) {
                    Ok(Some(n)) if matches!(n.kind, yaml::Kind::Map(_)) => {
                        self.parse_yaml_source(&text, src)
                    }
                    _ => ini::parse(self, &text, src),
                }
            }
            Some(_) => ini::parse(self, &text, src),
        }
    }

    pub(super) fn parse_host_list(&mut self, list: &str) {
        for h in list.split(',') {
            let h = h.trim();
            if h.is_empty() {
                continue;
            }
            let (name, port) = hostpat::parse_address(h)
                .filter(|(n, _)| !n.contains('['))
                .unwrap_or_else(|| (h.to_string(), None));
            if !self.host_idx.contains_key(&name) {
                self.add_host(&name, Some(UNGROUPED), port, None);
            }
        }
    }

    pub(super) fn parse_yaml_source(
        &mut self,
        text: &str,
        path: &Path,
    ) -> Result<(), InventoryError> {
        let perr = |line: usize, col: Option<usize>, msg: String| InventoryError::Parse {
            path: path.to_path_buf(),
            line,
            col,
            msg,
        };
        let root = yaml::parse(text)
            .map_err(|e| perr(e.line, Some(e.col), format!("YAML error: {}", e.msg)))?;
        let Some(root) = root else {
            return Err(perr(0, None, "empty YAML inventory".into()));
        };
        let yaml::Kind::Map(top) = &root.kind else {
            return Err(perr(
                root.line,
                Some(root.col),
                format!(
                    "a YAML inventory must be a mapping of groups, not a {}",
                    root.type_name()
                ),
            ));
        };
        if top
            .iter()
            .any(|(k, _)| k.to_json() == Value::String("plugin".into()))
        {
            return Err(perr(
                root.line,
                Some(root.col),
                "inventory plugin configuration files are not supported".into(),
            ));
        }
        for (k, v) in top {
            self.yaml_group(k, v, path)?;
        }
        Ok(())
    }

    fn yaml_group(
        &mut self,
        key: &yaml::Node,
        data: &yaml::Node,
        path: &Path,
    ) -> Result<Option<usize>, InventoryError> {
        let perr = |n: &yaml::Node, msg: String| InventoryError::Parse {
            path: path.to_path_buf(),
            line: n.line,
            col: Some(n.col),
            msg,
        };
        let name = match key.to_json() {
            Value::String(s) if !s.is_empty() => s,
            other => {
                return Err(perr(
                    key,
                    format!("invalid group name {other}: a group name must be a non-empty string"),
                ))
            }
        };
        let entries: &[(yaml::Node, yaml::Node)] = match &data.kind {
            yaml::Kind::Map(kv) => kv,
            yaml::Kind::Scalar(Value::Null) => &[],
            _ => {
                self.warnings.push(format!(
                    "{}:{}: skipping '{name}' as this is not a valid group definition",
                    path.display(),
                    key.line
                ));
                return Ok(None);
            }
        };
        let g = self.add_group(&name);
        for (k, v) in entries {
            let section = match k.to_json() {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let is_section = matches!(section.as_str(), "vars" | "children" | "hosts");
            // a bare string means {string: null}
            let normalized = if is_section { bare_to_map(v) } else { None };
            let v = normalized.as_ref().unwrap_or(v);
            let kv = match &v.kind {
                yaml::Kind::Map(kv) => kv,
                yaml::Kind::Scalar(Value::Null) => continue,
                _ if is_section => {
                    return Err(perr(
                        v,
                        format!(
                            "invalid \"{section}\" entry for group \"{name}\": requires a mapping, found a {}",
                            v.type_name()
                        ),
                    ))
                }
                _ => {
                    self.warnings.push(format!(
                        "{}:{}: skipping key ({section}) in group ({name}) as it is not a mapping",
                        path.display(),
                        k.line
                    ));
                    continue;
                }
            };
            match section.as_str() {
                "vars" => {
                    for (vk, vv) in kv {
                        let key = yaml::key_string(&vk.to_json());
                        self.set_group_var(g, key, vv.to_json())
                            .map_err(|m| perr(vk, m))?;
                    }
                }
                "children" => {
                    for (ck, cv) in kv {
                        if let Some(c) = self.yaml_group(ck, cv, path)? {
                            self.add_child(g, c).map_err(|m| perr(ck, m))?;
                        }
                    }
                }
                "hosts" => self.yaml_hosts(g, kv, path)?,
                _ => {
                    self.warnings.push(format!(
                        "{}:{}: skipping unexpected key ({section}) in group ({name}), only \"vars\", \"children\" and \"hosts\" are valid",
                        path.display(),
                        k.line
                    ));
                }
            }
        }
        Ok(Some(g))
    }

    /// A group's `hosts:` mapping: host patterns (ranges expanded) with their variables.
    fn yaml_hosts(
        &mut self,
        g: usize,
        kv: &[(yaml::Node, yaml::Node)],
        path: &Path,
    ) -> Result<(), InventoryError> {
        let perr = |n: &yaml::Node, msg: String| InventoryError::Parse {
            path: path.to_path_buf(),
            line: n.line,
            col: Some(n.col),
            msg,
        };
        for (hk, hv) in kv {
            let pat = match hk.to_json() {
                Value::String(s) => s,
                other => {
                    return Err(perr(
                        hk,
                        format!("host pattern {other} must be a string (quote numbers)"),
                    ))
                }
            };
            let (names, port) = hostpat::expand_hostpattern(&pat)
                .map_err(|m| perr(hk, format!("bad host range: {m}")))?;
            let vars = match &hv.kind {
                yaml::Kind::Map(_) => hv.to_json(),
                yaml::Kind::Scalar(Value::Null) => Value::Object(Map::new()),
                _ => {
                    return Err(perr(
                        hv,
                        format!(
                            "variables of host {pat} must be a mapping, not a {}",
                            hv.type_name()
                        ),
                    ))
                }
            };
            for n in names {
                if n.is_empty() {
                    return Err(perr(hk, "empty host name".into()));
                }
                let h = self.add_host(&n, Some(g), port, Some(path));
                if let Value::Object(m) = &vars {
                    for (k, v) in m {
                        self.set_host_var(h, k.clone(), v.clone());
                    }
                }
            }
        }
        Ok(())
    }

    // ---- group_vars/ and host_vars/ ----

    pub(super) fn read_dir_vars(&self, dir: &Path) -> Result<DirVars, InventoryError> {
        let mut dv = DirVars::default();
        let gdir = dir.join("group_vars");
        if gdir.is_dir() {
            for g in &self.groups {
                if let Some(m) = load_vars_for(&gdir, &g.name)? {
                    dv.groups.insert(g.name.clone(), m);
                }
            }
        }
        let hdir = dir.join("host_vars");
        if hdir.is_dir() {
            for h in &self.hosts {
                if let Some(m) = load_vars_for(&hdir, &h.name)? {
                    dv.hosts.insert(h.name.clone(), m);
                }
            }
        }
        Ok(dv)
    }
}

/// The variables of `name` in `dir` (`name`, `name.yml`, `name.yaml`, `name.json` — the first
/// that exists; a directory is read recursively in name order). `None` when nothing exists.
fn load_vars_for(dir: &Path, name: &str) -> Result<Option<Map<String, Value>>, InventoryError> {
    if name.starts_with('/') || name.contains("..") {
        return Ok(None);
    }
    for ext in ["", ".yml", ".yaml", ".json"] {
        let p = dir.join(format!("{name}{ext}"));
        if !p.exists() {
            continue;
        }
        let files = if p.is_dir() {
            let mut v = Vec::new();
            vars_dir_files(&p, &mut v)?;
            v
        } else {
            vec![p]
        };
        let mut data = Map::new();
        for f in files {
            if let Some(m) = load_vars_file(&f)? {
                extend(&mut data, &m);
            }
        }
        return Ok(Some(data));
    }
    Ok(None)
}

fn vars_dir_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), InventoryError> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| InventoryError::Read {
            path: dir.to_path_buf(),
            source: e,
        })?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for n in names {
        if n.starts_with('.') || n.ends_with('~') {
            continue;
        }
        let p = dir.join(&n);
        let ext = Path::new(&n)
            .extension()
            .map(|e| format!(".{}", e.to_string_lossy()));
        if p.is_dir() && ext.is_none() {
            vars_dir_files(&p, out)?;
        } else if p.is_file()
            && ext
                .as_deref()
                .map_or(true, |e| matches!(e, ".yml" | ".yaml" | ".json"))
        {
            out.push(p);
        }
    }
    Ok(())
}

fn load_vars_file(path: &Path) -> Result<Option<Map<String, Value>>, InventoryError> {
    let text = crate::yaml_limits::read_to_string(path).map_err(|e| InventoryError::Read {
        path: path.to_path_buf(),
        source: e,
    })?;
    let verr = |line: usize, col: Option<usize>, msg: String| InventoryError::VarsFile {
        path: path.to_path_buf(),
        line,
        col,
        msg,
    };
    if text.starts_with("$ANSIBLE_VAULT;") {
        return Err(verr(
            1,
            None,
            "vault-encrypted files are not supported yet".into(),
        ));
    }
    let node = yaml::parse(&text)
        .map_err(|e| verr(e.line, Some(e.col), format!("YAML error: {}", e.msg)))?;
    match node {
        None => Ok(None),
        Some(n) => match n.to_json() {
            Value::Null => Ok(None),
            Value::Object(m) if m.is_empty() => Ok(None),
            Value::Object(m) => Ok(Some(m)),
            _ => Err(verr(
                n.line,
                Some(n.col),
                format!("variables must be a mapping, not a {}", n.type_name()),
            )),
        },
    }
}

/// Names Ansible skips when a directory is an inventory source.
fn ignored_in_dir(name: &str) -> bool {
    name.starts_with('.')
        || matches!(name, "host_vars" | "group_vars" | "vars_plugins")
        || [
            ".pyc", ".pyo", ".swp", ".bak", "~", ".rpm", ".md", ".txt", ".rst", ".orig", ".cfg",
            ".retry",
        ]
        .iter()
        .any(|e| name.ends_with(e))
}
