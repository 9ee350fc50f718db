//! `darkport run`: run an Ansible playbook.

use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Inventory file(s) (INI or YAML), merged in the order given.
    #[arg(short = 'i', long = "inventory")]
    pub inventory: Vec<PathBuf>,
    /// The playbook to run; with `-m`, the host pattern instead (as for `ansible`).
    pub playbook: PathBuf,
    /// Ad-hoc: run this one module on the hosts PLAYBOOK names as a pattern
    /// (`darkport run -i inv -m shell -a uptime web`).
    #[arg(short = 'm', long = "module-name", value_name = "MODULE")]
    pub module: Option<String>,
    /// The ad-hoc module's arguments (`k=v ...`, or the command line for command/shell).
    #[arg(short = 'a', long = "args", value_name = "ARGS", requires = "module")]
    pub args: Option<String>,
    /// Extra variables: `k=v k2=v2`, JSON/YAML `{"k": 1}`, or `@file.yml`. Highest precedence.
    #[arg(short = 'e', long = "extra-vars")]
    pub extra_vars: Vec<String>,
    /// Limit to hosts matching this pattern.
    #[arg(short = 'l', long = "limit")]
    pub limit: Option<String>,
    /// Only run tasks with these tags (comma separated).
    #[arg(short = 't', long = "tags")]
    pub tags: Vec<String>,
    /// Skip tasks with these tags (comma separated).
    #[arg(long = "skip-tags")]
    pub skip_tags: Vec<String>,
    /// Change nothing; report what would change.
    #[arg(short = 'C', long)]
    pub check: bool,
    /// Show file differences.
    #[arg(short = 'D', long)]
    pub diff: bool,
    /// Hosts worked on in parallel (default: ANSIBLE_FORKS, ansible.cfg's `forks`, else 64).
    #[arg(short = 'f', long)]
    pub forks: Option<usize>,
    /// One JSON event per line (task results and the recap) instead of Ansible-like text.
    #[arg(long)]
    pub json: bool,
    /// Only load and validate the playbook (YAML, modules, keywords, templates).
    #[arg(long)]
    pub syntax_check: bool,
    /// known_hosts file to verify host keys against (default ~/.ssh/known_hosts).
    #[arg(long)]
    pub known_hosts: Option<PathBuf>,
    /// Accept and record keys of hosts not yet in known_hosts (never changed keys).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// More detail, as for ansible-playbook: -v every task's result, -vv each task's
    /// file:line, -vvv each host's connection and the commands sent over it.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    #[command(flatten)]
    pub conn: crate::cli::site::ConnArgs,
}
