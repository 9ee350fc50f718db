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

/// `--help`'s command list, grouped by who runs them (a unit test checks it names every
/// command).
const HELP_TEMPLATE: &str = "\
{before-help}{about-with-newline}
{usage-heading} {usage}

Release (where the images are):
  build-bundle    Build one signed, deduplicated bundle from a bundle spec
  verify          Check a bundle's signature and every member
  inspect         Show what a bundle holds: images, shared layers, delta base
  sbom            The OS packages of each image (SPDX, CycloneDX, table)
  licenses        Per-licence summary of those packages
  keygen          Generate the signing key pair

Site (on the dark site):
  preflight       Only the install checks, per node; changes nothing
  install         Verify, push blobs, seed the site registry, run the install playbook
  upgrade         Move the site to a new version (delta bundles, migrations exactly once)
  rollback        Undo the last upgrade
  prune           Free the nodes of what neither the current nor the previous version needs
  status          Per node: reachable, product and version, registry, migrations
  uninstall       Take the product and darkport's files off the site
  support-bundle  Collect state, versions and logs from every node into one redacted file

Tools:
  run             Run an Ansible playbook, agentless (like ansible-playbook)
  inventory       Show an inventory as darkport reads it (like ansible-inventory)
  registry        The embedded registry and the site CA
  hash            sha256 and size of files
  completions     Print a shell completion script
  man             Write the manual pages
  help            Print this message or the help of a command

Options:
{options}{after-help}";

#[derive(Parser, Debug)]
#[command(
    name = "darkport",
    version = crate::VERSION,
    about = "Ship a containerised product to dark sites: one signed bundle, agentless install and upgrade over SSH",
    help_template = HELP_TEMPLATE,
    after_help = "`darkport COMMAND --help` shows a command's options and examples."
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
    #[command(
        after_help = "Examples:\n  darkport hash dist/*.darkport\n  darkport hash --json big.tar"
    )]
    Hash(HashArgs),
    /// Show an Ansible inventory as darkport reads it (like `ansible-inventory`).
    #[command(
        after_help = "Examples:\n  darkport inventory -i inventory.ini --graph\n  darkport inventory -i inventory.ini --list\n  darkport inventory -i inventory.ini --host node2"
    )]
    Inventory(inventory::InventoryArgs),
    /// The embedded pull-only OCI registry and the site CA.
    #[command(
        after_help = "Examples:\n  darkport registry serve --root /var/lib/darkport --listen 127.0.0.1:5000"
    )]
    Registry(registry::RegistryArgs),
    /// Generate a minisign key pair for signing bundles (PREFIX.key, PREFIX.pub).
    #[command(
        after_help = "Examples:\n  darkport keygen --out release            # release.key (password prompted), release.pub\n  darkport keygen --no-password --out ci   # for a CI signer"
    )]
    Keygen(bundle::KeygenArgs),
    /// Build one signed, deduplicated bundle from a bundle spec.
    #[command(
        after_help = "Examples:\n  darkport build-bundle -f bundle/darkport.yaml -o dist/ --key release.key\n  darkport build-bundle -f v1.1.yaml -o dist/ --key release.key --since dist/app-1.0.0.darkport   # delta\n  darkport build-bundle -f darkport.yaml -o dist/ --key release.key --layer-compression zstd"
    )]
    BuildBundle(bundle::BuildBundleArgs),
    /// Check a bundle's signature and every member; exit 0 only if all is intact.
    #[command(
        after_help = "Examples:\n  darkport verify --pubkey release.pub app-1.0.0.darkport\n  darkport verify --json --pubkey release.pub app-1.0.0.darkport"
    )]
    Verify(bundle::VerifyArgs),
    /// Show what a bundle holds: product, images, blobs, dedup saving, delta base.
    #[command(
        after_help = "Examples:\n  darkport inspect --pubkey release.pub app-1.0.0.darkport\n  darkport inspect --json --pubkey release.pub app-1.0.0.darkport | jq .images\n  darkport inspect --html layers.html --pubkey release.pub app-1.0.0.darkport   # images x shared layers"
    )]
    Inspect(bundle::InspectArgs),
    /// Inventory of the OS packages in each image (SPDX 2.3, CycloneDX 1.5, table), read from
    /// the layers' package databases.
    #[command(
        after_help = "Examples:\n  darkport sbom --pubkey release.pub app-1.0.0.darkport --format table\n  darkport sbom --pubkey release.pub app-1.0.0.darkport --format spdx > app.spdx.json"
    )]
    Sbom(sbom::SbomArgs),
    /// Per-licence summary of the OS packages in each image; copyleft licences flagged.
    #[command(
        after_help = "Examples:\n  darkport licenses --pubkey release.pub app-1.0.0.darkport"
    )]
    Licenses(sbom::LicensesArgs),
    /// Run an Ansible playbook against an inventory, agentless (like `ansible-playbook`).
    #[command(
        after_help = "Examples:\n  darkport run -i inventory.ini site.yml\n  darkport run -i inventory.ini site.yml --check --diff -l web\n  darkport run -i inventory.ini site.yml -e version=1.2 -u ops -K\n  darkport run -i inventory.ini -m shell -a 'df -h /var' all     # ad hoc, as `ansible` does"
    )]
    Run(run::RunArgs),
    /// Install a bundle on a site: verify, preflight, push blobs, seed the site registry, run
    /// the install playbook.
    #[command(
        after_help = "Examples:\n  darkport install -i inventory.ini --pubkey release.pub app-1.0.0.darkport\n  darkport install --check -i inventory.ini --pubkey release.pub app-1.0.0.darkport   # checks only\n  darkport install -i inventory.ini -u ops --private-key ~/.ssh/site -K app-1.0.0.darkport"
    )]
    Install(site::InstallArgs),
    /// Move a site to a new version: only new blobs travel; upgrade.yml and the data
    /// migrations run in order, each exactly once; an interrupted run resumes.
    #[command(
        after_help = "Examples:\n  darkport upgrade --check -i inventory.ini --pubkey release.pub app-1.1.0-from-1.0.0.darkport\n  darkport upgrade -i inventory.ini --pubkey release.pub app-1.1.0-from-1.0.0.darkport"
    )]
    Upgrade(site::UpgradeArgs),
    /// Undo the last upgrade: each migration's rollback playbook and backups in reverse order,
    /// then the previous version's images and install playbook.
    #[command(
        after_help = "Examples:\n  darkport rollback --check -i inventory.ini\n  darkport rollback -i inventory.ini"
    )]
    Rollback(site::RollbackArgs),
    /// Free the registry hosts of what neither the current nor the previous version needs.
    #[command(
        after_help = "Examples:\n  darkport prune --check -i inventory.ini\n  darkport prune -i inventory.ini"
    )]
    Prune(site::PruneArgs),
    /// Only the install checks: per node reachable, architecture, free space, lock, version.
    #[command(
        after_help = "Examples:\n  darkport preflight -i inventory.ini --pubkey release.pub app-1.0.0.darkport\n  darkport preflight --json -i inventory.ini --pubkey release.pub app-1.0.0.darkport"
    )]
    Preflight(site::PreflightArgs),
    /// Take the product off the site: its uninstall.yml (or its containers removed), then the
    /// site registry, its trust and darkport_root; the product's data stays unless
    /// --purge-data.
    #[command(
        after_help = "Examples:\n  darkport uninstall --check -i inventory.ini\n  darkport uninstall -i inventory.ini\n  darkport uninstall -i inventory.ini --purge-data     # the bundle's uninstall.yml removes the data too"
    )]
    Uninstall(site::UninstallArgs),
    /// Per node: reachable, product/version, bundle, registry up, migrations applied.
    #[command(
        after_help = "Examples:\n  darkport status -i inventory.ini\n  darkport status --json -i inventory.ini"
    )]
    Status(site::StatusArgs),
    /// Collect state, versions and recent logs from every node into one redacted tar.zst.
    #[command(
        after_help = "Examples:\n  darkport support-bundle -i inventory.ini -o site-support.tar.zst\n  darkport support-bundle -i inventory.ini --lines 1000 --limit node3"
    )]
    SupportBundle(support::SupportBundleArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  darkport completions bash > /etc/bash_completion.d/darkport\n  darkport completions zsh > ~/.zfunc/_darkport"
    )]
    Completions(CompletionsArgs),
    /// Write the manual pages (darkport.1 and one per command).
    #[command(
        after_help = "Examples:\n  darkport man --out /usr/local/share/man/man1\n  darkport man | man -l -"
    )]
    Man(ManArgs),
}

#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Write darkport.1 and darkport-COMMAND.1 here; without it, darkport.1 goes to stdout.
    #[arg(long, value_name = "DIR")]
    pub out: Option<std::path::PathBuf>,
}

impl Command {
    /// The command's name when it prints one `--json` document (docs/JSON.md); commands
    /// whose JSON has another shape (`inventory` as ansible-inventory's, `run` and `hash` as
    /// JSON lines, `sbom` as SPDX/CycloneDX) are not among them.
    pub fn json_document(&self) -> Option<&'static str> {
        let (on, name) = match self {
            Command::Install(a) => (a.site.json, "install"),
            Command::Upgrade(a) => (a.site.json, "upgrade"),
            Command::Rollback(a) => (a.site.json, "rollback"),
            Command::Prune(a) => (a.site.json, "prune"),
            Command::Preflight(a) => (a.site.json, "preflight"),
            Command::Status(a) => (a.site.json, "status"),
            Command::Uninstall(a) => (a.site.json, "uninstall"),
            Command::BuildBundle(a) => (a.json, "build-bundle"),
            Command::Verify(a) => (a.json, "verify"),
            Command::Inspect(a) => (a.json, "inspect"),
            Command::SupportBundle(a) => (a.json, "support-bundle"),
            _ => (false, ""),
        };
        on.then_some(name)
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_grouped_help_names_every_command() {
        let help = Cli::command().render_help().to_string();
        for sub in Cli::command().get_subcommands() {
            let name = sub.get_name();
            assert!(
                help.lines()
                    .any(|l| l.trim_start().starts_with(&format!("{name} "))),
                "`{name}` is missing from the help template:\n{help}"
            );
            if name != "help" {
                assert!(
                    sub.get_after_help().is_some(),
                    "`{name}` has no Examples section"
                );
            }
        }
    }
}
