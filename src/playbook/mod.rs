//! The playbook engine: Ansible playbooks (the subset real install playbooks use) run over
//! darkport transports, with no Python on the nodes.
//!
//! - [`yaml`]: YAML as PyYAML reads it (YAML 1.1), with positions for error messages.
//! - [`template`]: Jinja2 via minijinja, configured like Ansible's templar.

pub mod model;
pub mod template;
pub mod yaml;
