//! The Ansible inventory: INI and YAML sources, `group_vars/` and `host_vars/`, variable
//! precedence, host patterns, and the `ansible-inventory --list` JSON.
//!
//! The model follows ansible-core's own (`InventoryData`, `Group`, `Host`): groups and hosts
//! are kept in the order they were first seen; `all` and `ungrouped` always exist; after every
//! source is read, groups without a parent become children of `all` and hosts without a group
//! go to `ungrouped`. Behaviour was checked against `ansible-inventory` from ansible-core 2.19
//! (see `tests/inventory_compat.rs`). Differences that are on purpose:
//! - duplicate YAML keys are an error (Ansible warns and keeps the last);
//! - inventory scripts, inventory plugins (`plugin:` YAML files) and TOML are not supported;
//! - values are not templated here (`{{ … }}` stays text for the playbook engine).

pub mod ansible_cfg;
pub mod connvars;
mod hostpat;
mod ini;
mod load;
mod pattern;
pub mod pylit;
pub mod yaml;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::transport::ConnSpec;
use serde_json::{Map, Value};

pub use pattern::Selection;

/// Errors of the inventory module. Syntax errors carry `file:line` (and `:column` when known).
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    #[error("failed to read inventory source {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("inventory source {} does not exist", path.display())]
    Missing { path: PathBuf },
    #[error("failed to parse inventory {}: {msg}", location(path, *line, *col))]
    Parse {
        path: PathBuf,
        /// 1-based; 0 when the problem is not on one line.
        line: usize,
        col: Option<usize>,
        msg: String,
    },
    #[error("failed to read variables file {}: {msg}", location(path, *line, *col))]
    VarsFile {
        path: PathBuf,
        line: usize,
        col: Option<usize>,
        msg: String,
    },
    #[error("invalid host pattern {pattern:?}: {msg}")]
    Pattern { pattern: String, msg: String },
    #[error("host {host:?} is not in the inventory")]
    UnknownHost { host: String },
    #[error("invalid connection variable {var} for host {host}: {msg}")]
    ConnectionVar {
        host: String,
        var: String,
        msg: String,
    },
}

fn location(path: &Path, line: usize, col: Option<usize>) -> String {
    match (line, col) {
        (0, _) => path.display().to_string(),
        (l, Some(c)) => format!("{}:{l}:{c}", path.display()),
        (l, None) => format!("{}:{l}", path.display()),
    }
}

#[derive(Debug, Clone)]
struct Group {
    name: String,
    vars: Map<String, Value>,
    priority: i64,
    depth: usize,
    hosts: Vec<usize>,
    children: Vec<usize>,
    parents: Vec<usize>,
}

#[derive(Debug, Clone)]
struct Host {
    name: String,
    vars: Map<String, Value>,
    /// Groups the host was put in directly (ancestors are derived).
    groups: Vec<usize>,
    /// The inventory file where the host was first seen.
    source: Option<PathBuf>,
}

/// Variables found in one directory's `group_vars/` and `host_vars/`.
#[derive(Debug, Clone, Default)]
struct DirVars {
    groups: HashMap<String, Map<String, Value>>,
    hosts: HashMap<String, Map<String, Value>>,
}

/// A loaded inventory (one or more sources merged in order).
#[derive(Debug, Clone)]
pub struct Inventory {
    groups: Vec<Group>,
    group_idx: HashMap<String, usize>,
    hosts: Vec<Host>,
    host_idx: HashMap<String, usize>,
    inventory_dirs: Vec<PathBuf>,
    inventory_vars: Vec<DirVars>,
    playbook_vars: Vec<DirVars>,
    /// Command-line connection settings (`-u`, `--private-key`, …): below every inventory
    /// variable, as in Ansible, where `ansible_user` in the inventory wins over `-u`.
    defaults: Map<String, Value>,
    warnings: Vec<String>,
}

const ALL: usize = 0;
const UNGROUPED: usize = 1;

impl Default for Inventory {
    fn default() -> Self {
        Self::new()
    }
}

impl Inventory {
    /// An empty inventory: only the implicit `all` and `ungrouped` groups.
    pub fn new() -> Inventory {
        let mut inv = Inventory {
            groups: Vec::new(),
            group_idx: HashMap::new(),
            hosts: Vec::new(),
            host_idx: HashMap::new(),
            inventory_dirs: Vec::new(),
            inventory_vars: Vec::new(),
            playbook_vars: Vec::new(),
            defaults: Map::new(),
            warnings: Vec::new(),
        };
        inv.add_group("all");
        inv.add_group("ungrouped");
        inv.add_child(ALL, UNGROUPED).expect("fresh groups");
        inv
    }

    /// Load one or more sources (INI file, YAML file, a directory of them, or a `host1,host2`
    /// list), merged in order; `group_vars/` and `host_vars/` next to each source are read
    /// (files `.yml`/`.yaml`/`.json`/no extension, or directories of them).
    pub fn load(sources: &[PathBuf]) -> Result<Inventory, InventoryError> {
        let mut inv = Inventory::new();
        for src in sources {
            if src.exists() {
                inv.parse_source(src)?;
                let dir = if src.is_dir() {
                    src.clone()
                } else {
                    src.parent()
                        .map(|p| {
                            if p.as_os_str().is_empty() {
                                PathBuf::from(".")
                            } else {
                                p.to_path_buf()
                            }
                        })
                        .unwrap_or_else(|| PathBuf::from("."))
                };
                inv.inventory_dirs.push(dir);
            } else if src.to_string_lossy().contains(',') {
                inv.parse_host_list(&src.to_string_lossy());
            } else {
                return Err(InventoryError::Missing { path: src.clone() });
            }
        }
        inv.reconcile();
        let dirs = inv.inventory_dirs.clone();
        for d in &dirs {
            let dv = inv.read_dir_vars(d)?;
            inv.inventory_vars.push(dv);
        }
        Ok(inv)
    }

    /// Parse INI text as if it were the file `name` (for tests and tools).
    pub fn from_ini_str(src: &str, name: &Path) -> Result<Inventory, InventoryError> {
        let mut inv = Inventory::new();
        ini::parse(&mut inv, src, name)?;
        inv.reconcile();
        Ok(inv)
    }

    /// Parse YAML inventory text as if it were the file `name`.
    pub fn from_yaml_str(src: &str, name: &Path) -> Result<Inventory, InventoryError> {
        let mut inv = Inventory::new();
        inv.parse_yaml_source(src, name)?;
        inv.reconcile();
        Ok(inv)
    }

    /// `group_vars/` and `host_vars/` next to a playbook: higher precedence than the
    /// inventory-adjacent ones.
    pub fn add_playbook_vars(&mut self, playbook_dir: &Path) -> Result<(), InventoryError> {
        let dv = self.read_dir_vars(playbook_dir)?;
        self.playbook_vars.push(dv);
        Ok(())
    }

    /// Non-fatal problems found while loading (Ansible prints them as `[WARNING]`).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// All host names in inventory order (the order of the `all` pattern).
    pub fn hosts(&self) -> Vec<String> {
        self.group_hosts(ALL)
            .into_iter()
            .map(|h| self.hosts[h].name.clone())
            .collect()
    }

    /// Whether `name` is a host of this inventory.
    pub fn has_host(&self, name: &str) -> bool {
        self.host_idx.contains_key(name)
    }

    /// Whether `name` is a group of this inventory (`all` and `ungrouped` always are).
    pub fn has_group(&self, name: &str) -> bool {
        self.group_idx.contains_key(name)
    }

    /// Hosts matching an Ansible pattern (`all`, `*`, globs, `a:b`, `a,b`, `a:!b`, `a:&b`,
    /// `~regex`, `g[0]`, `g[1:3]`), in the order Ansible gives them. Names that match
    /// nothing are ignored (see [`Inventory::select_with_warnings`] for the warnings).
    pub fn select(&self, pattern: &str) -> Result<Vec<String>, InventoryError> {
        Ok(self.select_with_warnings(pattern)?.hosts)
    }

    /// Like [`Inventory::select`], also returning Ansible's "Could not match supplied host
    /// pattern, ignoring: X" warnings.
    pub fn select_with_warnings(&self, pattern: &str) -> Result<Selection, InventoryError> {
        pattern::select(self, pattern, None)
    }

    /// Hosts matching `pattern` and also `limit` (Ansible's `--limit`).
    pub fn select_limited(
        &self,
        pattern: &str,
        limit: Option<&str>,
    ) -> Result<Selection, InventoryError> {
        pattern::select(self, pattern, limit)
    }

    /// The merged variables of a host: `all` < parent group < child group < host (same-depth
    /// groups by `ansible_group_priority`, then name), with `group_vars/`/`host_vars/` files at
    /// Ansible's precedence (inventory ones, then playbook ones). Empty for an unknown host.
    /// Set the command-line defaults every host gets unless its inventory variables say
    /// otherwise (see the `defaults` field).
    pub fn set_defaults(&mut self, vars: Map<String, Value>) {
        self.defaults = vars;
    }

    pub fn host_vars(&self, host: &str) -> Map<String, Value> {
        let Some(&h) = self.host_idx.get(host) else {
            return Map::new();
        };
        let mut res = self.defaults.clone();
        extend(&mut res, &self.groups[ALL].vars);
        let sorted = self.sorted_groups_of(h);
        for &g in &sorted {
            extend(&mut res, &self.groups[g].vars);
        }
        for dv in self.inventory_vars.iter().chain(&self.playbook_vars) {
            if let Some(v) = dv.groups.get("all") {
                extend(&mut res, v);
            }
        }
        for dv in &self.inventory_vars {
            for &g in &sorted {
                if let Some(v) = dv.groups.get(&self.groups[g].name) {
                    extend(&mut res, v);
                }
            }
        }
        for dv in &self.playbook_vars {
            for &g in &sorted {
                if let Some(v) = dv.groups.get(&self.groups[g].name) {
                    extend(&mut res, v);
                }
            }
        }
        extend(&mut res, &self.hosts[h].vars);
        for dv in self.inventory_vars.iter().chain(&self.playbook_vars) {
            if let Some(v) = dv.hosts.get(host) {
                extend(&mut res, v);
            }
        }
        res
    }

    /// The inventory file a host was first read from.
    pub fn host_source(&self, host: &str) -> Option<&Path> {
        self.host_idx
            .get(host)
            .and_then(|&h| self.hosts[h].source.as_deref())
    }

    /// group name -> hosts (inventory order), including `all` and `ungrouped` (Ansible's
    /// `groups` magic variable).
    pub fn groups(&self) -> BTreeMap<String, Vec<String>> {
        (0..self.groups.len())
            .map(|g| {
                (
                    self.groups[g].name.clone(),
                    self.group_hosts(g)
                        .into_iter()
                        .map(|h| self.hosts[h].name.clone())
                        .collect(),
                )
            })
            .collect()
    }

    /// The direct child groups of a group, in inventory order.
    pub fn group_children(&self, group: &str) -> Vec<String> {
        self.group_idx
            .get(group)
            .map(|&g| {
                self.groups[g]
                    .children
                    .iter()
                    .map(|&c| self.groups[c].name.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The groups a host belongs to, directly or through a child group: Ansible's
    /// `group_names` magic variable (sorted, without `all`; a host in no group has
    /// `["ungrouped"]`, as `ansible -m debug -a var=group_names` shows).
    pub fn group_names(&self, host: &str) -> Vec<String> {
        let Some(&h) = self.host_idx.get(host) else {
            return Vec::new();
        };
        let mut names: Vec<String> = self
            .all_groups_of(h)
            .into_iter()
            .filter(|&g| g != ALL)
            .map(|g| self.groups[g].name.clone())
            .collect();
        names.sort();
        names
    }

    /// The `ansible-inventory --list` JSON.
    pub fn to_ansible_list(&self) -> Value {
        self.to_ansible_list_limited(None)
            .expect("no limit pattern, nothing to fail")
    }

    /// The `ansible-inventory --list --limit PATTERN` JSON.
    pub fn to_ansible_list_limited(&self, limit: Option<&str>) -> Result<Value, InventoryError> {
        let sel = self.select_limited("all", limit)?;
        let avail: HashSet<usize> = sel.hosts.iter().map(|n| self.host_idx[n]).collect();
        let mut out = Map::new();
        let mut seen = HashSet::new();
        self.format_group(ALL, &avail, &mut seen, &mut out);
        let mut hostvars = Map::new();
        for name in &sel.hosts {
            let hv = self.host_vars(name);
            if !hv.is_empty() {
                hostvars.insert(name.clone(), Value::Object(hv));
            }
        }
        let mut meta = Map::new();
        meta.insert("hostvars".into(), Value::Object(hostvars));
        meta.insert("profile".into(), Value::String("inventory_legacy".into()));
        out.insert("_meta".into(), Value::Object(meta));
        Ok(Value::Object(out))
    }

    /// `ansible-inventory --graph [GROUP]` text (with `--vars`: group and host variables).
    pub fn graph(&self, group: &str, with_vars: bool) -> Option<String> {
        let g = *self.group_idx.get(group)?;
        let mut lines = Vec::new();
        self.graph_group(g, 0, with_vars, &mut lines);
        Some(lines.join("\n"))
    }

    /// Connection settings of a host, from its merged variables (parsed by
    /// [`connvars::parse_conn_vars`], as every command that connects does).
    pub fn connection(&self, host: &str) -> Result<ConnSpec, InventoryError> {
        if !self.has_host(host) {
            return Err(InventoryError::UnknownHost {
                host: host.to_string(),
            });
        }
        connvars::parse_conn_vars(host, &self.host_vars(host)).map_err(|e| {
            InventoryError::ConnectionVar {
                host: host.to_string(),
                var: e.var,
                msg: format!("{}: {}", e.value, e.why),
            }
        })
    }

    // ---- model operations (mirroring ansible-core's InventoryData) ----

    fn add_group(&mut self, name: &str) -> usize {
        if let Some(&g) = self.group_idx.get(name) {
            return g;
        }
        let valid = name
            .chars()
            .enumerate()
            .all(|(i, c)| (c.is_alphanumeric() || c == '_') && !(i == 0 && c.is_numeric()));
        let warn = "Invalid characters were found in group names but not replaced".to_string();
        if !valid && !self.warnings.contains(&warn) {
            self.warnings.push(warn);
        }
        self.groups.push(Group {
            name: name.to_string(),
            vars: Map::new(),
            priority: 1,
            depth: 0,
            hosts: Vec::new(),
            children: Vec::new(),
            parents: Vec::new(),
        });
        let g = self.groups.len() - 1;
        self.group_idx.insert(name.to_string(), g);
        g
    }

    /// Add a host (if new) and put it in `group`. A port only counts when the host is new.
    fn add_host(
        &mut self,
        name: &str,
        group: Option<usize>,
        port: Option<u32>,
        source: Option<&Path>,
    ) -> usize {
        let h = match self.host_idx.get(name) {
            Some(&h) => h,
            None => {
                let mut vars = Map::new();
                if let Some(p) = port.filter(|&p| p != 0) {
                    vars.insert("ansible_port".into(), Value::from(p));
                }
                self.hosts.push(Host {
                    name: name.to_string(),
                    vars,
                    groups: Vec::new(),
                    source: source.map(Path::to_path_buf),
                });
                let h = self.hosts.len() - 1;
                self.host_idx.insert(name.to_string(), h);
                h
            }
        };
        if let Some(g) = group {
            self.add_host_to(g, h);
        }
        h
    }

    fn add_child(&mut self, parent: usize, child: usize) -> Result<(), String> {
        if parent == child {
            return Err(format!(
                "group '{}' cannot be a child of itself",
                self.groups[parent].name
            ));
        }
        if child == ALL {
            // Every group ends up under `all`, so `all` under another group is always a loop
            // (ansible-core fails on it when it reconciles); refused here, where the source
            // and line are known (`reconcile` relied on `all` having no parents).
            return Err(format!(
                "group 'all' cannot be a child of group '{}' (every group is under 'all': a recursive dependency loop)",
                self.groups[parent].name
            ));
        }
        if self.groups[parent].children.contains(&child) {
            return Ok(());
        }
        if self.ancestors(parent).contains(&child) {
            return Err(format!(
                "adding group '{}' as child to '{}' creates a cycle (a recursive dependency loop)",
                self.groups[child].name, self.groups[parent].name
            ));
        }
        self.groups[parent].children.push(child);
        if !self.groups[child].parents.contains(&parent) {
            self.groups[child].parents.push(parent);
        }
        Ok(())
    }

    fn set_group_var(&mut self, g: usize, key: String, value: Value) -> Result<(), String> {
        if key == "ansible_group_priority" {
            let p = match &value {
                Value::Number(n) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)),
                Value::String(s) => s.trim().parse::<i64>().ok(),
                Value::Bool(b) => Some(*b as i64),
                _ => None,
            };
            match p {
                Some(p) => self.groups[g].priority = p,
                None => return Err(format!("ansible_group_priority {value} is not an integer")),
            }
        } else {
            self.groups[g].vars.insert(key, value);
        }
        Ok(())
    }

    fn set_host_var(&mut self, h: usize, key: String, value: Value) {
        self.hosts[h].vars.insert(key, value);
    }

    fn ancestors(&self, g: usize) -> HashSet<usize> {
        let mut seen = HashSet::new();
        let mut stack: Vec<usize> = self.groups[g].parents.clone();
        while let Some(p) = stack.pop() {
            if seen.insert(p) {
                stack.extend(self.groups[p].parents.iter().copied());
            }
        }
        seen
    }

    /// The group and its descendants: itself, its children, then each further level.
    fn descendants_ordered(&self, g: usize) -> Vec<usize> {
        let mut ordered = vec![g];
        let mut seen: HashSet<usize> = HashSet::from([g]);
        let mut level: Vec<usize> = Vec::new();
        for &c in &self.groups[g].children {
            if seen.insert(c) {
                ordered.push(c);
                level.push(c);
            }
        }
        while !level.is_empty() {
            let mut next = Vec::new();
            for &l in &level {
                for &c in &self.groups[l].children {
                    if seen.insert(c) {
                        ordered.push(c);
                        next.push(c);
                    }
                }
            }
            level = next;
        }
        ordered
    }

    fn group_hosts(&self, g: usize) -> Vec<usize> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        for d in self.descendants_ordered(g) {
            for &h in &self.groups[d].hosts {
                if seen.insert(h) {
                    out.push(h);
                }
            }
        }
        out
    }

    fn all_groups_of(&self, h: usize) -> BTreeSet<usize> {
        let mut set = BTreeSet::new();
        for &g in &self.hosts[h].groups {
            set.insert(g);
            set.extend(self.ancestors(g));
        }
        set
    }

    /// Ansible's `sort_groups`: by depth, then priority, then name; without `all`.
    fn sorted_groups_of(&self, h: usize) -> Vec<usize> {
        let mut v: Vec<usize> = self
            .all_groups_of(h)
            .into_iter()
            .filter(|&g| g != ALL)
            .collect();
        v.sort_by(|&a, &b| {
            let (ga, gb) = (&self.groups[a], &self.groups[b]);
            (ga.depth, ga.priority, &ga.name).cmp(&(gb.depth, gb.priority, &gb.name))
        });
        v
    }

    /// After all sources: parentless groups join `all`, groupless hosts join `ungrouped`,
    /// hosts in another group leave `ungrouped`; depths are recomputed.
    fn reconcile(&mut self) {
        for g in 0..self.groups.len() {
            if g != ALL && self.groups[g].parents.is_empty() {
                self.add_child(ALL, g).expect("all has no parents");
            }
        }
        // Leaving `ungrouped` is one pass over its hosts at the end, not one per host.
        let mut leaving = HashSet::new();
        for h in 0..self.hosts.len() {
            let groups = self.all_groups_of(h);
            if groups.contains(&UNGROUPED) {
                if groups.iter().any(|&g| g != ALL && g != UNGROUPED) {
                    leaving.insert(h);
                    self.hosts[h].groups.retain(|&x| x != UNGROUPED);
                }
            } else if groups.iter().all(|&g| g == ALL) {
                self.add_host_to(UNGROUPED, h);
            }
        }
        if !leaving.is_empty() {
            self.groups[UNGROUPED]
                .hosts
                .retain(|x| !leaving.contains(x));
        }
        // depth = longest path from `all`
        let n = self.groups.len();
        let mut depth = vec![0usize; n];
        let mut order = Vec::new();
        let mut state = vec![0u8; n];
        fn visit(inv: &Inventory, g: usize, state: &mut [u8], order: &mut Vec<usize>) {
            if state[g] != 0 {
                return;
            }
            state[g] = 1;
            for &c in &inv.groups[g].children {
                visit(inv, c, state, order);
            }
            state[g] = 2;
            order.push(g);
        }
        for g in 0..n {
            visit(self, g, &mut state, &mut order);
        }
        for &g in order.iter().rev() {
            for &c in &self.groups[g].children {
                depth[c] = depth[c].max(depth[g] + 1);
            }
        }
        for (g, d) in depth.into_iter().enumerate() {
            self.groups[g].depth = d;
        }
    }

    /// Put host `h` in group `g` (once). Membership is looked up in the host's own list of
    /// groups (a few), not in the group's hosts (maybe 100,000s): `hosts[h].groups` and
    /// `groups[g].hosts` always change together.
    fn add_host_to(&mut self, g: usize, h: usize) {
        if !self.hosts[h].groups.contains(&g) {
            self.groups[g].hosts.push(h);
            self.hosts[h].groups.push(g);
        }
    }

    fn format_group(
        &self,
        g: usize,
        avail: &HashSet<usize>,
        seen: &mut HashSet<usize>,
        out: &mut Map<String, Value>,
    ) {
        let grp = &self.groups[g];
        let mut entry = Map::new();
        if g != ALL {
            let hosts: Vec<Value> = grp
                .hosts
                .iter()
                .filter(|h| avail.contains(h))
                .map(|&h| Value::String(self.hosts[h].name.clone()))
                .collect();
            if !hosts.is_empty() {
                entry.insert("hosts".into(), Value::Array(hosts));
            }
        }
        let mut children = Vec::new();
        for &c in &grp.children {
            children.push(Value::String(self.groups[c].name.clone()));
            if !seen.contains(&c) {
                self.format_group(c, avail, seen, out);
                seen.insert(c);
            }
        }
        if !children.is_empty() {
            entry.insert("children".into(), Value::Array(children));
        }
        if !entry.is_empty() {
            out.insert(grp.name.clone(), Value::Object(entry));
        }
    }

    fn graph_group(&self, g: usize, depth: usize, with_vars: bool, out: &mut Vec<String>) {
        let name = |s: String, d: usize| {
            if d == 0 {
                s
            } else {
                format!("{}--{s}", "  |".repeat(d))
            }
        };
        out.push(name(format!("@{}:", self.groups[g].name), depth));
        for &c in &self.groups[g].children {
            self.graph_group(c, depth + 1, with_vars, out);
        }
        if g != ALL {
            for &h in &self.groups[g].hosts {
                out.push(name(self.hosts[h].name.clone(), depth + 1));
                if with_vars {
                    let mut vars: Vec<(String, Value)> =
                        self.host_vars(&self.hosts[h].name).into_iter().collect();
                    vars.sort_by(|a, b| a.0.cmp(&b.0));
                    for (k, v) in vars {
                        out.push(name(format!("{{{k} = {}}}", display_value(&v)), depth + 2));
                    }
                }
            }
        }
        if with_vars {
            // like ansible-inventory: inline vars, then group_vars/ files, and the priority
            let grp = &self.groups[g];
            let mut merged = grp.vars.clone();
            for dv in self.inventory_vars.iter().chain(&self.playbook_vars) {
                if let Some(v) = dv.groups.get(&grp.name) {
                    extend(&mut merged, v);
                }
            }
            if grp.priority != 1 {
                merged.insert("ansible_group_priority".into(), Value::from(grp.priority));
            }
            let mut vars: Vec<(String, Value)> = merged.into_iter().collect();
            vars.sort_by(|a, b| a.0.cmp(&b.0));
            for (k, v) in vars {
                out.push(name(format!("{{{k} = {}}}", display_value(&v)), depth + 1));
            }
        }
    }
}

/// Python's `dict.update` (Ansible's `combine_vars` with `hash_behaviour=replace`).
fn extend(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (k, v) in from {
        into.insert(k.clone(), v.clone());
    }
}

/// A section written as a bare string (`hosts: web1`) as the mapping `{web1: null}`.
fn bare_to_map(v: &yaml::Node) -> Option<yaml::Node> {
    let yaml::Kind::Scalar(Value::String(s)) = &v.kind else {
        return None;
    };
    let node = |kind| yaml::Node {
        line: v.line,
        col: v.col,
        kind,
    };
    Some(node(yaml::Kind::Map(vec![(
        node(yaml::Kind::Scalar(Value::String(s.clone()))),
        node(yaml::Kind::Scalar(Value::Null)),
    )])))
}

/// Ansible's `boolean()` conversion.
pub fn ansible_bool(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::Number(n) => {
            let f = n.as_f64();
            if f == Some(1.0) {
                Some(true)
            } else if f == Some(0.0) {
                Some(false)
            } else {
                None
            }
        }
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" | "on" | "1" | "true" | "t" | "1.0" => Some(true),
            "n" | "no" | "off" | "0" | "false" | "f" | "0.0" | "" => Some(false),
            _ => None,
        },
        Value::Null => Some(false),
        _ => None,
    }
}

/// How Python prints a value inside `--graph --vars` (close enough: strings bare).
fn display_value(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
