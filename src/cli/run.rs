//! `darkport run`: run an Ansible playbook.

use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Inventory file(s) (INI or YAML), merged in the order given.
    #[arg(short = 'i', long = "inventory", required = true)]
    pub inventory: Vec<PathBuf>,
    /// The playbook to run.
    pub playbook: PathBuf,
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
    /// Hosts worked on in parallel.
    #[arg(short = 'f', long, default_value_t = 10)]
    pub forks: usize,
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
    /// Remote user when the inventory sets none.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Ask for the become (sudo) password.
    #[arg(short = 'K', long)]
    pub ask_become_pass: bool,
}
