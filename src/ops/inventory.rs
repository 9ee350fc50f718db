//! `darkport inventory`: what `ansible-inventory` shows for the same sources (`--list`,
//! `--host`, `--graph`), read with darkport's inventory parser.

use crate::inventory::Inventory;
use anyhow::{bail, Context};
use serde_json::Value;
use std::path::PathBuf;

pub struct InventoryOpts {
    pub sources: Vec<PathBuf>,
    /// Also read `group_vars/` and `host_vars/` beside this playbook directory.
    pub playbook_dir: Option<PathBuf>,
    /// `--host`: this host's merged variables.
    pub host: Option<String>,
    /// `--graph [GROUP]`: the group tree (as JSON groups when `json`).
    pub graph: Option<String>,
    pub json: bool,
    pub show_vars: bool,
    pub limit: Option<String>,
}

/// What was asked for.
pub enum InventoryView {
    HostVars(Value),
    Groups(Value),
    Graph(String),
    List(Value),
}

pub struct InventoryReport {
    /// Parser and `--limit` warnings, as ansible-inventory prints them.
    pub warnings: Vec<String>,
    pub view: InventoryView,
}

pub fn inventory(o: &InventoryOpts) -> anyhow::Result<InventoryReport> {
    let mut inv = Inventory::load(&o.sources).context("failed to load the inventory")?;
    if let Some(dir) = &o.playbook_dir {
        inv.add_playbook_vars(dir)
            .context("failed to load playbook group_vars/host_vars")?;
    }
    let mut warnings: Vec<String> = inv.warnings().to_vec();
    let view = if let Some(host) = &o.host {
        if !inv.has_host(host) {
            bail!("host {host:?} is not in the inventory");
        }
        InventoryView::HostVars(Value::Object(inv.host_vars(host)))
    } else if let Some(group) = &o.graph {
        if o.json {
            InventoryView::Groups(serde_json::to_value(inv.groups())?)
        } else {
            match inv.graph(group, o.show_vars) {
                Some(g) => InventoryView::Graph(g),
                None => bail!("--graph needs a group name; {group:?} is not a group"),
            }
        }
    } else {
        if let Some(limit) = &o.limit {
            warnings.extend(inv.select_limited("all", Some(limit))?.warnings);
        }
        InventoryView::List(inv.to_ansible_list_limited(o.limit.as_deref())?)
    };
    Ok(InventoryReport { warnings, view })
}
