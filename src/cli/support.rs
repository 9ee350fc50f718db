//! `darkport support-bundle`: collect diagnostics from every node into one tar.zst.

use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct SupportBundleArgs {
    /// Inventory file(s) (INI or YAML), merged in the order given; default: ansible.cfg's
    /// `inventory` or ANSIBLE_INVENTORY.
    #[arg(short = 'i', long = "inventory")]
    pub inventory: Vec<PathBuf>,
    /// Output file (default `darkport-support-<UTC time>.tar.zst` in the current directory).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Last N lines of each log (darkport units, registry log, containers).
    #[arg(long, default_value_t = 200)]
    pub lines: usize,
    /// Only hosts matching this pattern.
    #[arg(short = 'l', long = "limit")]
    pub limit: Option<String>,
    /// Only containers whose name matches this regular expression (default: every container).
    #[arg(long)]
    pub containers: Option<String>,
    /// Hosts collected from in parallel (default: ANSIBLE_FORKS, ansible.cfg's `forks`, else 64).
    #[arg(short = 'f', long)]
    pub forks: Option<usize>,
    /// Seconds allowed to connect to one node before it counts as unreachable.
    #[arg(long, default_value_t = 10)]
    pub connect_timeout: u64,
    /// known_hosts file to verify host keys against (default ~/.ssh/known_hosts).
    #[arg(long)]
    pub known_hosts: Option<PathBuf>,
    /// Accept and record keys of hosts not yet in known_hosts (never changed keys).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// Print the index (nodes, files, unreachable nodes) as JSON.
    #[arg(long)]
    pub json: bool,
}
