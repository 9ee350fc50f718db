//! Thin subcommand wrappers: CLI types in, ops called, results printed via `ui`.

mod build_bundle;
mod hash;
mod inspect;
mod inventory;
mod keygen;
mod registry;
mod run;
mod sbom;
mod site;
mod support;
mod verify;

use crate::cli::{Cli, Command};

/// Run one parsed command line; the returned code is the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Hash(a) => hash::run(a),
        Command::Inventory(a) => inventory::run(a),
        Command::Registry(a) => registry::run(a, cli.progress),
        Command::Keygen(a) => keygen::run(a),
        Command::BuildBundle(a) => build_bundle::run(a, cli.progress),
        Command::Verify(a) => verify::run(a, cli.progress),
        Command::Inspect(a) => inspect::run(a),
        Command::Sbom(a) => sbom::run_sbom(a, cli.progress),
        Command::Licenses(a) => sbom::run_licenses(a, cli.progress),
        Command::Run(a) => run::run(a),
        Command::Install(a) => site::install(a, cli.progress),
        Command::Upgrade(a) => site::upgrade(a, cli.progress),
        Command::Rollback(a) => site::rollback(a, cli.progress),
        Command::Prune(a) => site::prune(a),
        Command::Preflight(a) => site::preflight(a, cli.progress),
        Command::Status(a) => site::status(a),
        Command::SupportBundle(a) => support::run(a, cli.progress),
    }
}
