//! The one list of modules darkport knows. The loader validates task actions against it
//! (`lookup`), the engine asks it where a module runs, and node modules are dispatched
//! through the handler it holds: adding a module is one entry here.

use super::{cmd, edit, facts, files, system, transfer, Args, ModCtx, ModResult};
use crate::transport::Transport;

/// Runs a node module: its canonical name (one handler serves e.g. `command` and `shell`),
/// the host's transport, the context and the templated arguments.
pub type Handler = fn(&str, &mut dyn Transport, &ModCtx, &Args) -> ModResult;

/// Where a module runs.
#[derive(Clone, Copy)]
pub enum Runs {
    /// On the node, as shell over its transport.
    Node(Handler),
    /// On the controller, inside the engine: it reads or sets the task's variables.
    Controller,
    /// Shapes the task list itself (imports, includes, meta): the loader and the strategy.
    TaskList,
}

pub struct ModuleDef {
    pub name: &'static str,
    pub runs: Runs,
}

const fn node(name: &'static str, h: Handler) -> ModuleDef {
    ModuleDef {
        name,
        runs: Runs::Node(h),
    }
}

const fn controller(name: &'static str) -> ModuleDef {
    ModuleDef {
        name,
        runs: Runs::Controller,
    }
}

const fn task_list(name: &'static str) -> ModuleDef {
    ModuleDef {
        name,
        runs: Runs::TaskList,
    }
}

/// Every module, by canonical short name.
pub static MODULES: &[ModuleDef] = &[
    node("command", cmd::run),
    node("shell", cmd::run),
    node("raw", cmd::run),
    node("script", cmd::run),
    node("copy", |_, t, c, a| files::copy(t, c, a)),
    node("template", |_, t, c, a| files::template(t, c, a)),
    node("file", |_, t, c, a| files::file(t, c, a)),
    node("lineinfile", |_, t, c, a| edit::lineinfile(t, c, a)),
    node("blockinfile", |_, t, c, a| edit::blockinfile(t, c, a)),
    node("replace", |_, t, c, a| edit::replace(t, c, a)),
    node("ini_file", |_, t, c, a| edit::ini_file(t, c, a)),
    node("stat", |_, t, c, a| files::stat(t, c, a)),
    node("slurp", |_, t, c, a| files::slurp(t, c, a)),
    node("unarchive", |_, t, c, a| files::unarchive(t, c, a)),
    node("service", system::service),
    node("systemd", system::service),
    node("wait_for", |_, t, c, a| system::wait_for(t, c, a)),
    node("user", |_, t, c, a| system::user(t, c, a)),
    node("group", |_, t, c, a| system::group(t, c, a)),
    node("sysctl", |_, t, c, a| system::sysctl(t, c, a)),
    node("uri", |_, t, c, a| system::uri(t, c, a)),
    node("fetch", |_, t, c, a| transfer::fetch(t, c, a)),
    node("get_url", |_, t, c, a| transfer::get_url(t, c, a)),
    node("package", system::package),
    node("apt", system::package),
    node("dnf", system::package),
    node("setup", |_, t, c, a| facts::setup(t, c, a)),
    node("gather_facts", |_, t, c, a| facts::setup(t, c, a)),
    node("ping", |_, t, c, _| super::ping(t, c)),
    controller("set_fact"),
    controller("assert"),
    controller("fail"),
    controller("debug"),
    controller("pause"),
    controller("include_vars"),
    task_list("include_tasks"),
    task_list("import_tasks"),
    task_list("include_role"),
    task_list("import_role"),
    task_list("meta"),
];

/// The module a task's action names: `ansible.builtin.`/`ansible.legacy.` and a few
/// collection prefixes map onto the short names, as do Ansible's aliases.
pub fn lookup(name: &str) -> Option<&'static ModuleDef> {
    let short = [
        "ansible.builtin.",
        "ansible.legacy.",
        "ansible.posix.",
        "community.general.",
    ]
    .iter()
    .find_map(|p| name.strip_prefix(p))
    .unwrap_or(name);
    let short = match short {
        "systemd_service" => "systemd",
        "yum" => "dnf",
        other => other,
    };
    MODULES.iter().find(|m| m.name == short)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_prefixes_and_aliases_resolve_once() {
        assert_eq!(lookup("ansible.builtin.copy").unwrap().name, "copy");
        assert_eq!(lookup("systemd_service").unwrap().name, "systemd");
        assert_eq!(lookup("ansible.legacy.yum").unwrap().name, "dnf");
        assert!(matches!(lookup("debug").unwrap().runs, Runs::Controller));
        assert!(matches!(lookup("meta").unwrap().runs, Runs::TaskList));
        assert!(lookup("docker_container").is_none());
        let mut names: Vec<_> = MODULES.iter().map(|m| m.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), MODULES.len(), "a module is listed twice");
    }
}
