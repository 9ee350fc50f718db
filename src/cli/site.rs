//! `darkport install | preflight | status`: the site operator's commands.

use std::path::PathBuf;

/// How to reach the site's nodes (shared by install, preflight and status).
#[derive(clap::Args, Debug, Clone)]
pub struct SiteArgs {
    /// Inventory file(s) (INI or YAML), merged in the order given.
    #[arg(short = 'i', long = "inventory", required = true)]
    pub inventory: Vec<PathBuf>,
    /// Limit to hosts matching this pattern (the registry hosts are always contacted).
    #[arg(short = 'l', long = "limit")]
    pub limit: Option<String>,
    /// Hosts worked on in parallel.
    #[arg(short = 'f', long, default_value_t = crate::transport::DEFAULT_FORKS)]
    pub forks: usize,
    /// known_hosts file to verify host keys against (default ~/.ssh/known_hosts).
    #[arg(long)]
    pub known_hosts: Option<PathBuf>,
    /// Accept and record keys of hosts not yet in known_hosts (never changed keys).
    #[arg(long)]
    pub accept_new_host_keys: bool,
    /// One JSON document with the results instead of text.
    #[arg(long)]
    pub json: bool,
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
    /// Only print what would happen (per node from -> to, blobs to send, migrations, playbooks).
    #[arg(long)]
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
    /// Only print what would happen (from -> to, the migrations undone, the playbook).
    #[arg(long)]
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
    /// Only report what would be removed.
    #[arg(long)]
    pub dry_run: bool,
    /// Directory of the site CA (accepted for symmetry with the other site commands).
    #[arg(long)]
    pub ca_dir: Option<PathBuf>,
}
