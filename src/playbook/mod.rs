//! The playbook engine: Ansible playbooks (the subset real install playbooks use) run over
//! darkport transports, with no Python on the nodes.
//!
//! - [`yaml`]: YAML as PyYAML reads it (YAML 1.1), with positions for error messages.
//! - [`template`]: Jinja2 via minijinja, configured like Ansible's templar.
//! - [`model`]: plays, tasks, blocks, roles; validation before any host is touched.
//! - [`engine`]: the linear strategy over [`engine::HostSource`] + [`engine::Connector`].
//! - [`modules`]: the modules, each a small POSIX shell snippet on the node.

pub mod engine;
pub mod model;
pub mod modules;
pub mod template;
pub mod yaml;
