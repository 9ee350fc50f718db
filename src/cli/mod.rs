//! Command-line types only (clap). Each subcommand's behaviour lives in `commands/`.

pub mod bundle;
pub mod inventory;
pub mod registry;
pub mod run;
pub mod sbom;
pub mod site;
pub mod support;

use crate::ui::ProgressMode;
use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "darkport",
    version,
    about = "Ship a containerised product to dark sites: one signed bundle, agentless install and upgrade over SSH"
)]
pub struct Cli {
    /// Progress display: a bar on a TTY, plain lines otherwise.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto, global = true)]
    pub progress: ProgressMode,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print the sha256 digest and size of files (the hashing floor of every darkport operation).
    Hash(HashArgs),
    /// Show an Ansible inventory as darkport reads it (like `ansible-inventory`).
    Inventory(inventory::InventoryArgs),
    /// The embedded pull-only OCI registry and the site CA.
    Registry(registry::RegistryArgs),
    /// Generate a minisign key pair for signing bundles (PREFIX.key, PREFIX.pub).
    Keygen(bundle::KeygenArgs),
    /// Build one signed, deduplicated bundle from a bundle spec.
    BuildBundle(bundle::BuildBundleArgs),
    /// Check a bundle's signature and every member; exit 0 only if all is intact.
    Verify(bundle::VerifyArgs),
    /// Show what a bundle holds: product, images, blobs, dedup saving, delta base.
    Inspect(bundle::InspectArgs),
    /// Inventory of the OS packages in each image (SPDX 2.3, CycloneDX 1.5, table), read from
    /// the layers' package databases.
    Sbom(sbom::SbomArgs),
    /// Per-licence summary of the OS packages in each image; copyleft licences flagged.
    Licenses(sbom::LicensesArgs),
    /// Run an Ansible playbook against an inventory, agentless (like `ansible-playbook`).
    Run(run::RunArgs),
    /// Install a bundle on a site: verify, preflight, push blobs, seed the site registry, run
    /// the install playbook.
    Install(site::InstallArgs),
    /// Move a site to a new version: only new blobs travel; upgrade.yml and the data
    /// migrations run in order, each exactly once; an interrupted run resumes.
    Upgrade(site::UpgradeArgs),
    /// Undo the last upgrade: each migration's rollback playbook and backups in reverse order,
    /// then the previous version's images and install playbook.
    Rollback(site::RollbackArgs),
    /// Free the registry hosts of what neither the current nor the previous version needs.
    Prune(site::PruneArgs),
    /// Only the install checks: per node reachable, architecture, free space, lock, version.
    Preflight(site::PreflightArgs),
    /// Per node: reachable, product/version, bundle, registry up, migrations applied.
    Status(site::StatusArgs),
    /// Collect state, versions and recent logs from every node into one redacted tar.zst.
    SupportBundle(support::SupportBundleArgs),
}

#[derive(clap::Args, Debug)]
pub struct HashArgs {
    /// Files to hash, in parallel.
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
    /// One JSON object per file plus the throughput.
    #[arg(long)]
    pub json: bool,
}
