//! `darkport inventory`: show an Ansible inventory as darkport reads it.

use std::path::PathBuf;

/// Show an Ansible inventory the way `ansible-inventory` does (--list, --host, --graph).
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("action").required(true).args(["list", "host", "graph"])))]
pub struct InventoryArgs {
    /// Inventory source: INI or YAML file, a directory of them, or `host1,host2,`. Repeatable;
    /// later sources merge over earlier ones.
    #[arg(short = 'i', long = "inventory", required = true, value_name = "INV")]
    pub inventory: Vec<PathBuf>,
    /// Print every group and host with their variables (the `ansible-inventory --list` JSON).
    #[arg(long)]
    pub list: bool,
    /// Print the merged variables of one host.
    #[arg(long, value_name = "HOST")]
    pub host: Option<String>,
    /// Print the group tree (from GROUP, default `all`).
    #[arg(long)]
    pub graph: bool,
    /// With --graph: show variables too.
    #[arg(long = "vars", requires = "graph")]
    pub show_vars: bool,
    /// Only hosts matching this Ansible pattern (`web:&prod`, `all:!db1`, `@file`).
    #[arg(short = 'l', long, value_name = "PATTERN")]
    pub limit: Option<String>,
    /// Also read group_vars/ and host_vars/ next to this playbook directory.
    #[arg(long, value_name = "DIR")]
    pub playbook_dir: Option<PathBuf>,
    /// JSON output (the default for --list and --host; with --graph: group -> hosts).
    #[arg(long)]
    pub json: bool,
    /// The group to start --graph from.
    #[arg(value_name = "GROUP")]
    pub group: Option<String>,
}
