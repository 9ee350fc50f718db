//! Playbook model and loader: plays, tasks, blocks, roles and static imports, validated up
//! front (unknown keywords, unknown modules, template syntax) with `file:line` locations.

use super::template;
use super::yaml::{self, YNode, YValue};
use serde_json::{Map, Value};
use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

mod args;
mod imports;
mod play;
mod task;

pub use args::{parse_kv, split_args};
use imports::{abs_path, load_plays};

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
    /// `module_defaults:` (a mapping, or a list of them: module name → default arguments).
    pub module_defaults: Option<Value>,
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
    /// `include_tasks`: loaded when reached (the file name may be templated). The included
    /// tasks inherit only the include's `vars` and its `apply:` keywords.
    Include {
        file: Value,
        base: PathBuf,
        apply: Option<Box<Kw>>,
    },
    /// An entry of the play's `roles:` list (its handlers are already the play's).
    Role {
        role: Arc<RoleCtx>,
        tasks: Vec<Task>,
    },
    /// `import_role` (static: the role's tasks inherit the task's keywords) or
    /// `include_role` (`dynamic`: a task of its own, its `when` and loop decide per host,
    /// the role's tasks inherit only its `vars` and `apply:` keywords).
    IncludeRole {
        role: Arc<RoleCtx>,
        tasks: Vec<Task>,
        /// The role's handlers and its dependencies' (they join the play's).
        handlers: Vec<Task>,
        dynamic: bool,
        apply: Option<Box<Kw>>,
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
    /// A task with only its location, keywords and role set: a no-op until its kind and
    /// fields are filled in.
    pub fn empty(loc: Loc, kw: Kw, role: Option<Arc<RoleCtx>>) -> Task {
        Task {
            loc,
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
            role,
            uses_hostvars: false,
        }
    }

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
    /// The play's `connection:` keyword (`local`, `ssh`); a host's `ansible_connection` wins.
    pub connection: Option<Value>,
    /// The play's `module_defaults:`.
    pub module_defaults: Option<Value>,
    pub gather_facts: bool,
    /// The play's `gather_subset:` (handed to the setup of `gather_facts`).
    pub gather_subset: Option<Value>,
    pub serial: Option<Value>,
    pub pre_tasks: Vec<Task>,
    pub roles: Vec<Arc<RoleCtx>>,
    /// The names of the play's `roles:` entries as listed, then the roles of its
    /// `import_role` tasks (Ansible's `role_names`; `include_role` adds to it as it runs).
    pub role_names: Vec<String>,
    /// The roles the `roles:` entries depend on (`ansible_dependent_role_names`).
    pub dependent_role_names: Vec<String>,
    /// The directory of the file the play is in (another one for `import_playbook`).
    pub dir: PathBuf,
    /// The `when` of the `import_playbook` entries that brought the play (also on its
    /// fact gathering).
    pub when: Vec<Value>,
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
    /// The roles being loaded, outermost first (name as written, directory): meeting one of
    /// them again (a dependency or an include_role) is a loop.
    roles: Vec<(String, PathBuf)>,
    /// Roles (directory and params) already in the current play: a play role or dependency
    /// met again is left out, as Ansible runs a role once per play (see `play.rs`).
    ran: Rc<RefCell<HashSet<String>>>,
}

impl Loader {
    fn new(pb_dir: PathBuf, depth: usize) -> Loader {
        Loader {
            pb_dir,
            depth,
            roles: Vec::new(),
            ran: Rc::default(),
        }
    }

    /// A loader one include deeper, in the same roles and play.
    fn deeper(&self) -> Loader {
        Loader {
            pb_dir: self.pb_dir.clone(),
            depth: self.depth + 1,
            roles: self.roles.clone(),
            ran: self.ran.clone(),
        }
    }
}

fn loc_of(file: &Arc<str>, n: &YNode) -> Loc {
    Loc {
        file: file.clone(),
        line: n.pos.line,
        col: n.pos.col,
    }
}

fn read_yaml(path: &Path) -> Result<(Arc<str>, YNode), LoadError> {
    let src = crate::yaml_limits::read_to_string(path).map_err(|e| LoadError::Read {
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

fn kw_from(map: &[(YNode, YNode)], file: &Arc<str>) -> Result<Kw, LoadError> {
    kw_from_json(
        map.iter()
            .map(|(k, v)| (k.key_string(), v.to_json(), loc_of(file, v))),
    )
}

/// The keywords of (key, value, where) entries; other keys are left to the caller.
fn kw_from_json(entries: impl Iterator<Item = (String, Value, Loc)>) -> Result<Kw, LoadError> {
    let mut kw = Kw::default();
    for (key, j, loc) in entries {
        let loc = &loc;
        match key.as_str() {
            "when" => {
                check_exprs(&j, loc)?;
                kw.when = as_list(&j);
            }
            "tags" => kw.tags = str_list(&j),
            "vars" => match j {
                Value::Object(m) => {
                    check_templates(&Value::Object(m.clone()), loc)?;
                    kw.vars = m
                }
                Value::Null => {}
                _ => return Err(invalid(loc, "vars must be a mapping")),
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
            "module_defaults" => kw.module_defaults = Some(j),
            _ => {}
        }
    }
    Ok(kw)
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
        let mut plays = Vec::new();
        load_plays(&dir, &file, &node, &mut vec![abs_path(path)], &mut plays)?;
        Ok(Playbook {
            path: path.to_path_buf(),
            dir,
            plays,
        })
    }

    /// Load a task file at run time (`include_tasks`) inside the roles `running` (outermost
    /// first): a role it includes that leads back to one of them is a loop, refused here.
    pub fn load_tasks(
        pb_dir: &Path,
        path: &Path,
        role: &Option<Arc<RoleCtx>>,
        running: &[Arc<RoleCtx>],
    ) -> Result<Vec<Task>, LoadError> {
        let mut loader = Loader::new(pb_dir.to_path_buf(), 1);
        loader.roles = running
            .iter()
            .map(|r| (r.name.clone(), r.path.clone()))
            .collect();
        loader.load_task_file(path, role)
    }
}

/// A loaded role: its context, its tasks and its handlers.
type RoleLoad = (Arc<RoleCtx>, Vec<Task>, Vec<Task>);

/// The plays' `vars_files` that name a file without templating, read before any host is
/// touched: one that does not parse (or is an alias bomb) stops the run with its file:line,
/// as ansible-playbook stops on a parser error. Of a list of candidates only the one the run
/// would read is checked (the first that exists); templated names are read per host when the
/// play starts.
pub fn check_vars_files(pb: &Playbook) -> Result<(), LoadError> {
    for play in &pb.plays {
        for vf in &play.vars_files {
            let cands: Vec<&str> = match vf {
                Value::String(s) => vec![s.as_str()],
                Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
                _ => Vec::new(),
            };
            for name in cands {
                if name.contains("{{") || name.contains("{%") {
                    break;
                }
                let found = [play.dir.join(name), pb.dir.join(name)]
                    .into_iter()
                    .find(|p| p.is_file());
                if let Some(p) = found {
                    load_vars_file(&p)?;
                    break;
                }
            }
        }
    }
    Ok(())
}

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
