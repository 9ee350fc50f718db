//! Playbook model and loader: plays, tasks, blocks, roles and static imports, validated up
//! front (unknown keywords, unknown modules, template syntax) with `file:line` locations.

use super::template;
use super::yaml::{self, YNode, YValue};
use serde_json::{Map, Value};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where something was written: `file:line`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Loc {
    pub file: Arc<str>,
    pub line: usize,
    pub col: usize,
}

impl fmt::Display for Loc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.col)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Yaml(#[from] yaml::YamlError),
    #[error("{loc}: {msg}")]
    Invalid { loc: Loc, msg: String },
}

fn invalid(loc: &Loc, msg: impl Into<String>) -> LoadError {
    LoadError::Invalid {
        loc: loc.clone(),
        msg: msg.into(),
    }
}

/// Canonical short module name for `name`, if it is one we implement (see
/// [`super::modules::registry`]).
pub fn canonical_module(name: &str) -> Option<&'static str> {
    super::modules::registry::lookup(name).map(|m| m.name)
}

const TASK_KEYWORDS: &[&str] = &[
    "name",
    "when",
    "loop",
    "loop_control",
    "register",
    "notify",
    "listen",
    "changed_when",
    "failed_when",
    "ignore_errors",
    "ignore_unreachable",
    "tags",
    "delegate_to",
    "delegate_facts",
    "run_once",
    "until",
    "retries",
    "delay",
    "vars",
    "args",
    "environment",
    "become",
    "become_user",
    "become_method",
    "become_flags",
    "check_mode",
    "diff",
    "no_log",
    "action",
    "local_action",
    "any_errors_fatal",
    "throttle",
    "timeout",
    "remote_user",
    "connection",
    "debugger",
    "collections",
    "module_defaults",
    "async",
    "poll",
];

const BLOCK_KEYWORDS: &[&str] = &[
    "block",
    "rescue",
    "always",
    "name",
    "when",
    "tags",
    "vars",
    "become",
    "become_user",
    "become_method",
    "environment",
    "ignore_errors",
    "check_mode",
    "diff",
    "no_log",
    "delegate_to",
    "run_once",
    "any_errors_fatal",
    "notify",
    "remote_user",
    "collections",
    "module_defaults",
    "throttle",
    "timeout",
    "connection",
];

const PLAY_KEYWORDS: &[&str] = &[
    "name",
    "hosts",
    "vars",
    "vars_files",
    "become",
    "become_user",
    "become_method",
    "remote_user",
    "gather_facts",
    "serial",
    "pre_tasks",
    "roles",
    "tasks",
    "post_tasks",
    "handlers",
    "environment",
    "any_errors_fatal",
    "max_fail_percentage",
    "force_handlers",
    "tags",
    "check_mode",
    "diff",
    "no_log",
    "ignore_errors",
    "strategy",
    "order",
    "throttle",
    "connection",
    "collections",
    "module_defaults",
    "timeout",
    "gather_subset",
];

/// Task keywords that hold bare Jinja expressions.
const EXPR_KEYWORDS: &[&str] = &["when", "changed_when", "failed_when", "until"];

#[derive(Clone, Debug, Default)]
pub struct RoleCtx {
    pub name: String,
    pub path: PathBuf,
    pub defaults: Map<String, Value>,
    pub vars: Map<String, Value>,
    pub params: Map<String, Value>,
}

/// Keywords shared by tasks and blocks (inherited from blocks to their tasks).
#[derive(Clone, Debug, Default)]
pub struct Kw {
    pub when: Vec<Value>,
    pub tags: Vec<String>,
    pub vars: Map<String, Value>,
    pub become_: Option<Value>,
    pub become_user: Option<Value>,
    pub environment: Option<Value>,
    pub ignore_errors: Option<Value>,
    pub check_mode: Option<Value>,
    pub diff: Option<Value>,
    pub no_log: Option<Value>,
    pub delegate_to: Option<Value>,
    pub run_once: Option<Value>,
    pub any_errors_fatal: Option<Value>,
}

#[derive(Clone, Debug)]
pub enum TaskKind {
    Module {
        module: &'static str,
        args: Value,
    },
    Block {
        block: Vec<Task>,
        rescue: Vec<Task>,
        always: Vec<Task>,
    },
    /// `include_tasks`: loaded when reached (the file name may be templated).
    Include {
        file: Value,
        base: PathBuf,
    },
    /// An entry of the play's `roles:` list (its handlers are already the play's).
    Role {
        role: Arc<RoleCtx>,
        tasks: Vec<Task>,
    },
    /// `include_role` / `import_role` with a templated or late role.
    IncludeRole {
        role: Arc<RoleCtx>,
        tasks: Vec<Task>,
    },
    Meta(String),
}

#[derive(Clone, Debug)]
pub struct Task {
    pub loc: Loc,
    pub name: Option<String>,
    pub kind: TaskKind,
    pub kw: Kw,
    pub loop_: Option<Value>,
    /// `with_<lookup>` name when the loop came from `with_*` (flattening rules differ).
    pub with: Option<String>,
    pub loop_control: Map<String, Value>,
    pub register: Option<String>,
    pub notify: Vec<String>,
    pub listen: Vec<String>,
    pub changed_when: Option<Value>,
    pub failed_when: Option<Value>,
    pub until: Option<Value>,
    pub retries: Option<Value>,
    pub delay: Option<Value>,
    pub role: Option<Arc<RoleCtx>>,
    /// The task's own fields mention `hostvars` (decided at load: the engine builds the
    /// costly all-hosts map only for such tasks).
    pub uses_hostvars: bool,
}

impl Kw {
    /// Any keyword value mentions `hostvars`.
    pub fn mentions_hostvars(&self) -> bool {
        self.when.iter().any(mentions_hostvars)
            || self.vars.values().any(mentions_hostvars)
            || [
                &self.become_,
                &self.become_user,
                &self.environment,
                &self.ignore_errors,
                &self.check_mode,
                &self.diff,
                &self.no_log,
                &self.delegate_to,
                &self.run_once,
                &self.any_errors_fatal,
            ]
            .into_iter()
            .flatten()
            .any(mentions_hostvars)
    }
}

/// A string anywhere inside `v` names `hostvars`.
pub fn mentions_hostvars(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains("hostvars"),
        Value::Array(a) => a.iter().any(mentions_hostvars),
        Value::Object(o) => o
            .iter()
            .any(|(k, v)| k.contains("hostvars") || mentions_hostvars(v)),
        _ => false,
    }
}

/// A task's own fields (not those it inherits) mention `hostvars`.
fn task_mentions_hostvars(t: &Task) -> bool {
    let own = match &t.kind {
        TaskKind::Module { args, .. } => mentions_hostvars(args),
        TaskKind::Include { file, .. } => mentions_hostvars(file),
        _ => false,
    };
    own || t.kw.mentions_hostvars()
        || t.name.as_deref().is_some_and(|n| n.contains("hostvars"))
        || t.loop_control.values().any(mentions_hostvars)
        || [
            &t.loop_,
            &t.changed_when,
            &t.failed_when,
            &t.until,
            &t.retries,
            &t.delay,
        ]
        .into_iter()
        .flatten()
        .any(mentions_hostvars)
}

impl Task {
    /// The name shown in `TASK [...]`.
    pub fn display_name(&self) -> String {
        let base = match (&self.name, &self.kind) {
            (Some(n), _) => n.clone(),
            (None, TaskKind::Module { module, .. }) => format!("ansible.builtin.{module}"),
            (None, TaskKind::Meta(_)) => "meta".into(),
            (None, TaskKind::Include { .. }) => "include_tasks".into(),
            (None, TaskKind::IncludeRole { .. }) => "include_role".into(),
            (None, TaskKind::Role { role, .. }) => format!("role {}", role.name),
            (None, TaskKind::Block { .. }) => "block".into(),
        };
        match &self.role {
            Some(r) => format!("{} : {base}", r.name),
            None => base,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Play {
    pub loc: Loc,
    pub name: String,
    pub hosts: Value,
    pub vars: Map<String, Value>,
    pub vars_files: Vec<Value>,
    pub become_: Option<Value>,
    pub become_user: Option<Value>,
    pub remote_user: Option<Value>,
    pub gather_facts: bool,
    pub serial: Option<Value>,
    pub pre_tasks: Vec<Task>,
    pub roles: Vec<Arc<RoleCtx>>,
    /// Role tasks (in role order), run between pre_tasks and tasks.
    pub role_tasks: Vec<Task>,
    pub tasks: Vec<Task>,
    pub post_tasks: Vec<Task>,
    pub handlers: Vec<Task>,
    pub environment: Option<Value>,
    pub any_errors_fatal: bool,
    pub max_fail_percentage: Option<f64>,
    pub force_handlers: bool,
    pub kw: Kw,
    /// Play vars or role variables mention `hostvars`.
    pub uses_hostvars: bool,
}

#[derive(Clone, Debug)]
pub struct Playbook {
    pub path: PathBuf,
    pub dir: PathBuf,
    pub plays: Vec<Play>,
}

struct Loader {
    pb_dir: PathBuf,
    depth: usize,
}

fn loc_of(file: &Arc<str>, n: &YNode) -> Loc {
    Loc {
        file: file.clone(),
        line: n.pos.line,
        col: n.pos.col,
    }
}

fn read_yaml(path: &Path) -> Result<(Arc<str>, YNode), LoadError> {
    let src = std::fs::read_to_string(path).map_err(|e| LoadError::Read {
        path: path.display().to_string(),
        source: e,
    })?;
    let file: Arc<str> = Arc::from(path.display().to_string());
    let node = yaml::load(&src, &file)?;
    Ok((file, node))
}

/// Load a YAML file of variables (vars_files, role defaults/vars, include_vars).
pub fn load_vars_file(path: &Path) -> Result<Map<String, Value>, LoadError> {
    let (file, n) = read_yaml(path)?;
    match n.to_json() {
        Value::Object(m) => Ok(m),
        Value::Null => Ok(Map::new()),
        _ => Err(invalid(
            &loc_of(&file, &n),
            "a variables file must contain a mapping",
        )),
    }
}

/// Find `name` with one of the YAML extensions (or as given).
fn find_yaml(dir: &Path, name: &str) -> Option<PathBuf> {
    for ext in ["", ".yml", ".yaml", ".json"] {
        let p = dir.join(format!("{name}{ext}"));
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

fn check_templates(v: &Value, loc: &Loc) -> Result<(), LoadError> {
    match v {
        Value::String(s) => template::check_syntax(s).map_err(|e| invalid(loc, e.msg)),
        Value::Array(a) => a.iter().try_for_each(|x| check_templates(x, loc)),
        Value::Object(o) => o.iter().try_for_each(|(k, x)| {
            template::check_syntax(k).map_err(|e| invalid(loc, e.msg))?;
            check_templates(x, loc)
        }),
        _ => Ok(()),
    }
}

fn check_exprs(v: &Value, loc: &Loc) -> Result<(), LoadError> {
    match v {
        Value::String(s) => {
            let s = s.trim();
            if s.starts_with("{{") && s.ends_with("}}") {
                template::check_syntax(s).map_err(|e| invalid(loc, e.msg))
            } else {
                template::check_expr(s).map_err(|e| invalid(loc, e.msg))
            }
        }
        Value::Array(a) => a.iter().try_for_each(|x| check_exprs(x, loc)),
        _ => Ok(()),
    }
}

fn as_list(v: &Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a.clone(),
        Value::Null => vec![],
        other => vec![other.clone()],
    }
}

fn str_list(v: &Value) -> Vec<String> {
    as_list(v)
        .into_iter()
        .flat_map(|x| match x {
            Value::String(s) => s
                .split(',')
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .collect::<Vec<_>>(),
            other => vec![template::py_str(&other)],
        })
        .collect()
}

/// Split `k=v k2="v 2"` free-form arguments the way Ansible's `split_args`/`parse_kv` do,
/// keeping quotes and Jinja blocks together.
pub fn split_args(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quote: Option<char> = None;
    let mut depth = 0i32;
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if depth == 0 && quote.is_none() && c.is_whitespace() {
            if !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
            }
            i += 1;
            continue;
        }
        if c == '\\' && quote.is_some() {
            if let Some(n) = next {
                cur.push(c);
                cur.push(n);
                i += 2;
                continue;
            }
        }
        if (c == '{' && (next == Some('{') || next == Some('%'))) && quote.is_none() {
            depth += 1;
            cur.push(c);
            cur.push(next.unwrap());
            i += 2;
            continue;
        }
        if ((c == '}' || c == '%') && next == Some('}')) && quote.is_none() && depth > 0 {
            depth -= 1;
            cur.push(c);
            cur.push('}');
            i += 2;
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            None if (c == '"' || c == '\'') && depth == 0 => quote = Some(c),
            _ => {}
        }
        cur.push(c);
        i += 1;
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Python `unicode_escape`-style decoding of the common escapes Ansible's `parse_kv` decodes.
fn decode_escapes(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = String::new();
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        if c == '\\' {
            match it.peek().copied() {
                Some('n') => {
                    it.next();
                    out.push('\n')
                }
                Some('t') => {
                    it.next();
                    out.push('\t')
                }
                Some('r') => {
                    it.next();
                    out.push('\r')
                }
                Some('\\') => {
                    it.next();
                    out.push('\\')
                }
                Some('\'') => {
                    it.next();
                    out.push('\'')
                }
                Some('"') => {
                    it.next();
                    out.push('"')
                }
                _ => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn unquote(s: &str) -> String {
    let b = s.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        let inner = &s[1..s.len() - 1];
        if b[0] == b'"' {
            return inner.replace("\\\"", "\"").replace("\\\\", "\\");
        }
        return inner.to_string();
    }
    s.to_string()
}

/// Parse free-form `k=v` arguments. For command-like modules, words that are not `k=v` of a
/// known option form `_raw_params`.
pub fn parse_kv(s: &str, free_form: bool) -> Map<String, Value> {
    const CMD_OPTS: &[&str] = &[
        "creates",
        "removes",
        "chdir",
        "executable",
        "warn",
        "stdin",
        "stdin_add_newline",
        "strip_empty_ends",
        "argv",
    ];
    let mut m = Map::new();
    let mut raw: Vec<String> = Vec::new();
    // Free-form text (a shell script) keeps its own line breaks and spacing: only the option
    // tokens are cut out of it, as Ansible does.
    let mut free_text = s.to_string();
    for tok in split_args(s) {
        let kv = tok.find('=').and_then(|i| {
            let k = &tok[..i];
            if !k.is_empty()
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && (!free_form || CMD_OPTS.contains(&k))
            {
                Some((k.to_string(), decode_escapes(&unquote(&tok[i + 1..]))))
            } else {
                None
            }
        });
        match kv {
            Some((k, v)) => {
                if free_form {
                    if let Some(i) = free_text.rfind(tok.as_str()) {
                        free_text.replace_range(i..i + tok.len(), "");
                    }
                }
                m.insert(k, Value::String(v));
            }
            None => raw.push(tok),
        }
    }
    if !raw.is_empty() {
        let text = if free_form && free_text.contains('\n') {
            free_text.trim().to_string()
        } else {
            raw.join(" ")
        };
        m.insert("_raw_params".into(), Value::String(text));
    }
    m
}

fn kw_from(map: &[(YNode, YNode)], file: &Arc<str>) -> Result<Kw, LoadError> {
    let mut kw = Kw::default();
    for (k, v) in map {
        let key = k.key_string();
        let j = v.to_json();
        let loc = loc_of(file, v);
        match key.as_str() {
            "when" => {
                check_exprs(&j, &loc)?;
                kw.when = as_list(&j);
            }
            "tags" => kw.tags = str_list(&j),
            "vars" => match j {
                Value::Object(m) => {
                    check_templates(&Value::Object(m.clone()), &loc)?;
                    kw.vars = m
                }
                Value::Null => {}
                _ => return Err(invalid(&loc, "vars must be a mapping")),
            },
            "become" => kw.become_ = Some(j),
            "become_user" => kw.become_user = Some(j),
            "environment" => kw.environment = Some(j),
            "ignore_errors" => kw.ignore_errors = Some(j),
            "check_mode" => kw.check_mode = Some(j),
            "diff" => kw.diff = Some(j),
            "no_log" => kw.no_log = Some(j),
            "delegate_to" => kw.delegate_to = Some(j),
            "run_once" => kw.run_once = Some(j),
            "any_errors_fatal" => kw.any_errors_fatal = Some(j),
            _ => {}
        }
    }
    Ok(kw)
}

impl Loader {
    fn load_task_list(
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

    fn load_task_file(
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
        let sub = Loader {
            pb_dir: self.pb_dir.clone(),
            depth: self.depth + 1,
        };
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
        let is_block = map.iter().any(|(k, _)| k.key_string() == "block");
        let kw = kw_from(map, file)?;
        let mut task = Task {
            loc: loc.clone(),
            name: None,
            kind: TaskKind::Meta("noop".into()),
            kw,
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
            role: role.clone(),
            uses_hostvars: false,
        };
        if let Some(n) = node.get("name") {
            let name = template::py_str(&n.to_json());
            template::check_syntax(&name).map_err(|e| invalid(&loc_of(file, n), e.msg))?;
            task.name = Some(name);
        }
        if is_block {
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
            return Ok(task);
        }
        let mut action: Option<(String, YNode)> = None;
        let mut extra_args = Map::new();
        for (k, v) in map {
            let key = k.key_string();
            let kloc = loc_of(file, k);
            let j = v.to_json();
            if let Some(lookup) = key.strip_prefix("with_") {
                if ![
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
                ]
                .contains(&lookup)
                {
                    return Err(invalid(&kloc, format!("unsupported loop '{key}'")));
                }
                check_templates(&j, &kloc)?;
                task.loop_ = Some(j);
                task.with = Some(lookup.to_string());
                continue;
            }
            if TASK_KEYWORDS.contains(&key.as_str()) {
                if EXPR_KEYWORDS.contains(&key.as_str()) {
                    check_exprs(&j, &kloc)?;
                } else if key != "name" {
                    check_templates(&j, &kloc)?;
                }
                match key.as_str() {
                    "loop" => task.loop_ = Some(j),
                    "loop_control" => {
                        if let Value::Object(m) = j {
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
                            extra_args = m
                        }
                    }
                    "action" | "local_action" => {
                        if action.is_some() {
                            return Err(invalid(&kloc, "conflicting action statements"));
                        }
                        // `action: module k=v` or `action: {module: x, ...}`
                        let (m, rest) = match &v.v {
                            YValue::Str(s) => {
                                let s = s.trim();
                                let (m, r) = s.split_once(char::is_whitespace).unwrap_or((s, ""));
                                (
                                    m.to_string(),
                                    YNode {
                                        v: YValue::Str(r.trim().to_string()),
                                        pos: v.pos,
                                    },
                                )
                            }
                            YValue::Map(entries) => {
                                let m = v
                                    .get("module")
                                    .and_then(|x| x.as_str())
                                    .unwrap_or("")
                                    .to_string();
                                let rest: Vec<(YNode, YNode)> = entries
                                    .iter()
                                    .filter(|(k, _)| k.key_string() != "module")
                                    .cloned()
                                    .collect();
                                (
                                    m,
                                    YNode {
                                        v: YValue::Map(rest),
                                        pos: v.pos,
                                    },
                                )
                            }
                            _ => return Err(invalid(&kloc, "bad action")),
                        };
                        if key == "local_action" {
                            task.kw.delegate_to = Some(Value::String("localhost".into()));
                        }
                        action = Some((m, rest));
                    }
                    "async" | "poll" | "throttle" | "timeout" | "remote_user" | "connection"
                    | "debugger" | "collections" | "module_defaults" | "delegate_facts"
                    | "ignore_unreachable" => {}
                    _ => {}
                }
                continue;
            }
            if canonical_module(&key).is_some() {
                if let Some((prev, _)) = &action {
                    return Err(invalid(
                        &kloc,
                        format!("conflicting action statements: '{key}' and '{}'", prev),
                    ));
                }
                action = Some((key, v.clone()));
                continue;
            }
            return Err(invalid(
                &kloc,
                format!("'{key}' is not a valid task keyword or a module darkport knows (couldn't resolve module/action '{key}')"),
            ));
        }
        let Some((mname, argnode)) = action else {
            return Err(invalid(&loc, "no module/action detected in task"));
        };
        let module = canonical_module(&mname)
            .ok_or_else(|| invalid(&loc, format!("couldn't resolve module/action '{mname}'")))?;
        let args_loc = loc_of(file, &argnode);
        let mut args: Map<String, Value> = match argnode.to_json() {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            Value::String(s) => {
                let cmdlike = matches!(module, "command" | "shell" | "raw" | "script");
                if matches!(
                    module,
                    "include_tasks" | "import_tasks" | "include_vars" | "meta"
                ) && !s.contains('=')
                {
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
        check_templates(&Value::Object(args.clone()), &args_loc)?;
        if module == "assert" {
            if let Some(that) = args.get("that") {
                check_exprs(&Value::Array(as_list(that)), &args_loc)?;
            } else {
                return Err(invalid(
                    &args_loc,
                    "assert: missing required argument 'that'",
                ));
            }
        }
        task.kind = match module {
            "meta" => {
                let what = args
                    .get("_raw_params")
                    .or_else(|| args.get("free_form"))
                    .map(template::py_str)
                    .unwrap_or_default();
                if ![
                    "flush_handlers",
                    "noop",
                    "end_play",
                    "end_host",
                    "clear_host_errors",
                    "refresh_inventory",
                    "clear_facts",
                    "end_batch",
                    "reset_connection",
                ]
                .contains(&what.as_str())
                {
                    return Err(invalid(&args_loc, format!("invalid meta action '{what}'")));
                }
                TaskKind::Meta(what)
            }
            "import_tasks" | "include_tasks" => {
                let f = args
                    .get("_raw_params")
                    .or_else(|| args.get("file"))
                    .cloned()
                    .ok_or_else(|| invalid(&args_loc, format!("{module}: no file given")))?;
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
                        }
                    }
                    _ => TaskKind::Include {
                        file: f,
                        base: base.to_path_buf(),
                    },
                }
            }
            "import_role" | "include_role" => {
                let name = args
                    .get("name")
                    .map(template::py_str)
                    .ok_or_else(|| invalid(&args_loc, format!("{module}: no role name given")))?;
                let tasks_from = args.get("tasks_from").map(template::py_str);
                let (rc, tasks, _handlers) =
                    self.load_role(&name, Map::new(), tasks_from.as_deref(), &args_loc)?;
                TaskKind::IncludeRole { role: rc, tasks }
            }
            _ => TaskKind::Module {
                module,
                args: Value::Object(args),
            },
        };
        task.uses_hostvars = task_mentions_hostvars(&task);
        Ok(task)
    }

    fn resolve_tasks_path(&self, name: &str, base: &Path, role: &Option<Arc<RoleCtx>>) -> PathBuf {
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

    fn load_role(
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

    fn load_play(&self, node: &YNode, file: &Arc<str>) -> Result<Play, LoadError> {
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
        let base = self.pb_dir.clone();
        for (k, v) in map {
            let key = k.key_string();
            let j = v.to_json();
            let vloc = loc_of(file, v);
            match key.as_str() {
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
                        play.roles.push(rc.clone());
                        play.role_tasks.push(Task {
                            loc: rloc.clone(),
                            name: Some(format!("role {name}")),
                            kind: TaskKind::Role {
                                role: rc.clone(),
                                tasks,
                            },
                            kw,
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
                            uses_hostvars: false,
                        });
                        play.handlers.extend(handlers);
                    }
                }
                _ => {}
            }
        }
        // Handlers from include_role/import_role tasks join the play's handlers.
        fn role_handlers(
            tasks: &[Task],
            loader: &Loader,
            out: &mut Vec<Task>,
        ) -> Result<(), LoadError> {
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
                    // A play role's own handlers are already the play's; roles it includes
                    // are not.
                    TaskKind::Role { tasks, .. } => role_handlers(tasks, loader, out)?,
                    _ => {}
                }
            }
            Ok(())
        }
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
}

impl Playbook {
    /// Load and validate a playbook file. Everything detectable without a host is checked here.
    pub fn load(path: &Path) -> Result<Playbook, LoadError> {
        let (file, node) = read_yaml(path)?;
        let dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let loader = Loader {
            pb_dir: dir.clone(),
            depth: 0,
        };
        let Some(items) = node.as_seq() else {
            return Err(invalid(
                &loc_of(&file, &node),
                "a playbook must be a list of plays",
            ));
        };
        let mut plays = Vec::new();
        for it in items {
            plays.push(loader.load_play(it, &file)?);
        }
        Ok(Playbook {
            path: path.to_path_buf(),
            dir,
            plays,
        })
    }

    /// Load a task file at run time (`include_tasks`).
    pub fn load_tasks(
        pb_dir: &Path,
        path: &Path,
        role: &Option<Arc<RoleCtx>>,
    ) -> Result<Vec<Task>, LoadError> {
        Loader {
            pb_dir: pb_dir.to_path_buf(),
            depth: 1,
        }
        .load_task_file(path, role)
    }
}

/// A loaded role: its context, its tasks and its handlers.
type RoleLoad = (Arc<RoleCtx>, Vec<Task>, Vec<Task>);

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, s: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, s).unwrap();
        p
    }

    #[test]
    fn role_entries_and_hostvars_use_are_decided_at_load() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "pb.yml",
            "- hosts: all\n  roles: [web]\n  tasks:\n    - debug: msg={{ hostvars['a'].x }}\n    - debug: msg=plain\n- hosts: all\n  vars:\n    peers: \"{{ groups.all | map('extract', hostvars) | list }}\"\n  tasks:\n    - debug: var=peers\n",
        );
        write(d.path(), "roles/web/tasks/main.yml", "- debug: msg=role\n");
        let pb = Playbook::load(&p).unwrap();
        let (first, second) = (&pb.plays[0], &pb.plays[1]);
        assert!(
            matches!(&first.role_tasks[0].kind, TaskKind::Role { role, tasks } if role.name == "web" && tasks.len() == 1)
        );
        assert_eq!(first.role_tasks[0].display_name(), "role web");
        assert!(first.tasks[0].uses_hostvars);
        assert!(!first.tasks[1].uses_hostvars);
        assert!(!first.uses_hostvars);
        assert!(second.uses_hostvars && !second.tasks[0].uses_hostvars);
    }

    #[test]
    fn kv_split() {
        assert_eq!(
            split_args("echo 'a b' \"{{ x | default('q r') }}\" creates=/tmp/x"),
            vec![
                "echo",
                "'a b'",
                "\"{{ x | default('q r') }}\"",
                "creates=/tmp/x"
            ]
        );
        let m = parse_kv("echo hi creates=/x chdir=/tmp", true);
        assert_eq!(m["_raw_params"], "echo hi");
        assert_eq!(m["creates"], "/x");
        let m = parse_kv("path=/a mode=0644 content='x y'", false);
        assert_eq!(m["content"], "x y");
        assert_eq!(m["mode"], "0644");
    }

    #[test]
    fn loads_and_validates() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "pb.yml",
            "- hosts: all\n  become: yes\n  roles: [web]\n  tasks:\n    - name: hi\n      debug: msg=hello\n    - ansible.builtin.command: echo {{ x }} creates=/x\n      when: x is defined\n    - block:\n        - import_tasks: more.yml\n      rescue:\n        - fail: msg=oops\n",
        );
        write(d.path(), "more.yml", "- shell: echo more\n");
        write(
            d.path(),
            "roles/web/tasks/main.yml",
            "- copy: content=x dest=/tmp/y\n  notify: restart\n",
        );
        write(
            d.path(),
            "roles/web/handlers/main.yml",
            "- name: restart\n  command: 'true'\n",
        );
        write(d.path(), "roles/web/defaults/main.yml", "port: 80\n");
        let pb = Playbook::load(&p).unwrap();
        let play = &pb.plays[0];
        assert_eq!(play.become_, Some(Value::Bool(true)));
        assert_eq!(play.roles[0].defaults["port"], 80);
        assert_eq!(play.handlers.len(), 1);
        assert_eq!(play.tasks.len(), 3);
        assert_eq!(play.tasks[1].loc.line, 7);
        match &play.tasks[1].kind {
            TaskKind::Module { module, args } => {
                assert_eq!(*module, "command");
                assert_eq!(args["_raw_params"], "echo {{ x }}");
            }
            _ => panic!(),
        }
    }

    #[test]
    fn errors_have_locations() {
        let d = tempfile::tempdir().unwrap();
        let cases = [
            (
                "- hosts: all\n  tasks:\n    - name: x\n      no_such_module: a=b\n",
                "pb.yml:4:7",
                "no_such_module",
            ),
            (
                "- hosts: all\n  tasks:\n    - debug: msg=x\n      whne: true\n",
                "pb.yml:4:7",
                "whne",
            ),
            (
                "- hosts: all\n  tasks:\n    - debug:\n        msg: \"{{ x }\"\n",
                "pb.yml:4:9",
                "syntax",
            ),
            (
                "- hosts: all\n  tasks:\n    - debug: msg=x\n      when: a ==\n",
                "pb.yml:4:13",
                "bad expression",
            ),
            (
                "- hosts: all\n  tasks:\n   - debug: msg=x\n  - x\n",
                "pb.yml:",
                "YAML",
            ),
            ("- hosts: all\n  taks: []\n", "pb.yml:2:3", "taks"),
        ];
        for (src, loc, what) in cases {
            let p = write(d.path(), "pb.yml", src);
            let e = Playbook::load(&p).unwrap_err().to_string();
            assert!(e.contains(loc) && e.contains(what), "{src:?} gave {e}");
        }
    }
}
