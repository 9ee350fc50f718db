//! The playbook engine: Ansible playbooks (the subset real install playbooks use) run over
//! darkport transports, with no Python on the nodes.
//!
//! - [`yaml`]: YAML as PyYAML reads it (YAML 1.1), with positions for error messages.
//! - [`template`]: Jinja2 via minijinja, configured like Ansible's templar (`mod`: env and
//!   rendering; `pyfmt`: Python-style printing; `filters`: filters, tests, lookups).
//! - [`model`]: plays, tasks, blocks, roles; validation before any host is touched
//!   (`args`: `k=v` strings; `task`: task lists; `play`: plays and roles).
//! - [`engine`]: the linear strategy over [`engine::HostSource`] + [`engine::Connector`]
//!   (`mod`: API and `run`; `strategy`: blocks, includes, meta; `executor`: one task on one
//!   host; `vars`, `loops`, `controller` (controller-side modules), `handlers`, `state`).
//! - [`modules`]: the modules, each a small POSIX shell snippet on the node; `registry`
//!   is the one list the loader validates against and the engine dispatches through.

pub mod engine;
pub mod model;
pub mod modules;
pub mod template;
pub mod yaml;
