//! `darkport install | preflight | status`: the site operator's commands.

use std::path::PathBuf;

/// How to reach the site's nodes (shared by install, preflight and status).
#[derive(clap::Args, Debug, Clone)]
pub struct SiteArgs {
    /// Inventory file(s) (INI or YAML), merged in the order given; default: ansible.cfg's
    /// `inventory` or ANSIBLE_INVENTORY.
    #[arg(short = 'i', long = "inventory")]
    pub inventory: Vec<PathBuf>,
    /// Limit to hosts matching this pattern (the registry hosts are always contacted).
    #[arg(short = 'l', long = "limit")]
    pub limit: Option<String>,
    /// Hosts worked on in parallel (default: ANSIBLE_FORKS, ansible.cfg's `forks`, else 64).
    #[arg(short = 'f', long)]
    pub forks: Option<usize>,
    /// known_hosts file to verify host keys against (default ~/.ssh/known_hosts).
    #[arg(long)]
    pub known_hosts: Option<PathBuf>,
    /// Accept and record keys of hosts not yet in known_hosts (never changed keys).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    #[command(flatten)]
    pub conn: ConnArgs,
    /// More detail in the play output, as for ansible-playbook: -v every task's result,
    /// -vv each task's file:line, -vvv each host's connection and the commands sent.
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// One JSON document with the results instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Ansible's connection options; each applies where the inventory sets nothing.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ConnArgs {
    /// Login user where the inventory sets no `ansible_user`.
    #[arg(short = 'u', long = "user", value_name = "USER")]
    pub user: Option<String>,
    /// SSH private key where the inventory sets no `ansible_ssh_private_key_file`.
    #[arg(long = "private-key", visible_alias = "key-file", value_name = "FILE")]
    pub private_key: Option<PathBuf>,
    /// Ask for the SSH password (where the inventory sets no `ansible_password`).
    #[arg(short = 'k', long = "ask-pass")]
    pub ask_pass: bool,
    /// Ask for the become (sudo) password.
    #[arg(short = 'K', long = "ask-become-pass")]
    pub ask_become_pass: bool,
}

/// Which bundle, and which keys it must be signed with.
#[derive(clap::Args, Debug, Clone)]
pub struct BundleTrustArgs {
    /// The bundle file (`PRODUCT-VERSION.darkport`).
    pub bundle: PathBuf,
    /// Trusted public key(s); default $DARKPORT_PUBKEY, ~/.config/darkport/trusted.pub,
    /// /etc/darkport/trusted.pub.
    #[arg(long, value_name = "PUB")]
    pub pubkey: Vec<PathBuf>,
    /// DANGEROUS: install a bundle whose signature is missing or not checked.
    #[arg(long)]
    pub allow_unsigned: bool,
}

#[derive(clap::Args, Debug)]
pub struct InstallArgs {
    #[command(flatten)]
    pub site: SiteArgs,
    #[command(flatten)]
    pub bundle: BundleTrustArgs,
    /// Extra variables for the install playbook: `k=v`, JSON/YAML mapping, or `@file`.
    #[arg(short = 'e', long = "extra-vars")]
    pub extra_vars: Vec<String>,
    /// Only the checks (the signature, then every node, as `darkport preflight`); nothing
    /// changes.
    #[arg(long, short = 'C')]
    pub check: bool,
    /// Directory of the site CA (created on first install and kept; back it up). Default:
    /// `darkport-ca/` next to the first inventory file.
    #[arg(long)]
    pub ca_dir: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct PreflightArgs {
    #[command(flatten)]
    pub site: SiteArgs,
    #[command(flatten)]
    pub bundle: BundleTrustArgs,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    pub site: SiteArgs,
    /// Directory of the site CA (to check the registries over TLS); default as for install.
    #[arg(long)]
    pub ca_dir: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct UpgradeArgs {
    #[command(flatten)]
    pub site: SiteArgs,
    #[command(flatten)]
    pub bundle: BundleTrustArgs,
    /// Only print what would happen (per node from -> to, blobs to send, migrations,
    /// playbooks); nothing changes. `--check` is the same, as in Ansible.
    #[arg(long, visible_alias = "check", short = 'C')]
    pub plan: bool,
    /// Accept nodes at different versions (resuming a partial upgrade).
    #[arg(long)]
    pub allow_mixed: bool,
    /// After an interrupted migration that is not re-runnable stopped the run: record this
    /// migration (its id, e.g. 0003-split-users) as done on the nodes where it started, without
    /// running it again. Check its data first; the upgrade then continues.
    #[arg(long, value_name = "MIGRATION", conflicts_with = "rerun")]
    pub mark_done: Option<String>,
    /// After an interrupted migration that is not re-runnable stopped the run, and its data
    /// was restored from the backup by hand: run this migration again from the start.
    #[arg(long, value_name = "MIGRATION")]
    pub rerun: Option<String>,
    /// Extra variables for the upgrade playbook and the migrations.
    #[arg(short = 'e', long = "extra-vars")]
    pub extra_vars: Vec<String>,
    /// Directory of the site CA (as for install).
    #[arg(long)]
    pub ca_dir: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct RollbackArgs {
    #[command(flatten)]
    pub site: SiteArgs,
    /// Only print what would happen (from -> to, the migrations undone, the playbook);
    /// nothing changes. `--check` is the same.
    #[arg(long, visible_alias = "check", short = 'C')]
    pub plan: bool,
    /// Extra variables for the rollback playbooks and the previous version's install playbook.
    #[arg(short = 'e', long = "extra-vars")]
    pub extra_vars: Vec<String>,
    /// Directory of the site CA (to check the registries answer afterwards); default as for
    /// install.
    #[arg(long)]
    pub ca_dir: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct PruneArgs {
    #[command(flatten)]
    pub site: SiteArgs,
    /// Only report what would be removed; nothing changes. `--check` is the same.
    #[arg(long, visible_alias = "check", short = 'C')]
    pub dry_run: bool,
    /// Directory of the site CA (accepted for symmetry with the other site commands).
    #[arg(long)]
    pub ca_dir: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
pub struct UninstallArgs {
    #[command(flatten)]
    pub site: SiteArgs,
    /// Also remove the product's data (the bundle's uninstall.yml gets
    /// `darkport_purge_data=true`; refused when the bundle has no uninstall.yml).
    #[arg(long)]
    pub purge_data: bool,
    /// Only say what would be done; nothing changes.
    #[arg(long, short = 'C')]
    pub check: bool,
    /// Extra variables for uninstall.yml.
    #[arg(short = 'e', long = "extra-vars")]
    pub extra_vars: Vec<String>,
    /// Directory of the site CA (accepted for symmetry with the other site commands; the CA
    /// on the controller is kept).
    #[arg(long)]
    pub ca_dir: Option<PathBuf>,
}
