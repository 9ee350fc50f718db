//! Thin subcommand wrappers: CLI types in, ops called, results printed via `ui`.

mod build_bundle;
mod docs;
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

use crate::cli::{site::ConnArgs, Cli, Command};
use crate::ops::conn::ConnDefaults;
use anyhow::Context;

/// The command line merged with ansible.cfg and `ANSIBLE_*` (warnings shown), checked.
pub(crate) fn settings(
    inventory: &[std::path::PathBuf],
    forks: Option<usize>,
    conn: &ConnArgs,
    accept_new_host_keys: bool,
) -> anyhow::Result<crate::ops::conn::Settings> {
    let s = crate::ops::conn::settings(crate::ops::conn::Given {
        inventory: inventory.to_vec(),
        forks,
        conn: conn_defaults(conn)?,
        accept_new_host_keys,
    })?;
    for w in &s.warnings {
        eprintln!("[WARNING]: {w}");
    }
    Ok(s)
}

/// `-u`, `--private-key`, `-k`, `-K` as connection defaults; the passwords are asked for here.
pub(crate) fn conn_defaults(a: &ConnArgs) -> anyhow::Result<ConnDefaults> {
    let ask = |prompt: &str| {
        rpassword::prompt_password(prompt).with_context(|| format!("reading the {prompt}"))
    };
    Ok(ConnDefaults {
        user: a.user.clone(),
        private_key: a.private_key.clone(),
        password: if a.ask_pass {
            Some(ask("SSH password: ")?)
        } else {
            None
        },
        become_pass: if a.ask_become_pass {
            Some(ask("BECOME password: ")?)
        } else {
            None
        },
    })
}

/// Run one parsed command line; the returned code is the process exit code.
pub fn run(cli: Cli) -> anyhow::Result<i32> {
    if let Some(name) = cli.command.json_document() {
        crate::ui::json::enable(name);
    }
    match cli.command {
        Command::Hash(a) => hash::run(a),
        Command::Inventory(a) => inventory::run(a),
        Command::Registry(a) => registry::run(a, cli.progress),
        Command::Keygen(a) => keygen::run(a),
        Command::BuildBundle(a) => build_bundle::run(a, cli.progress),
        Command::Verify(a) => verify::run(a, cli.progress),
        Command::Inspect(a) => inspect::run(a, cli.progress),
        Command::Sbom(a) => sbom::run_sbom(a, cli.progress),
        Command::Licenses(a) => sbom::run_licenses(a, cli.progress),
        Command::Run(a) => run::run(a),
        Command::Install(a) => site::install(a, cli.progress),
        Command::Upgrade(a) => site::upgrade(a, cli.progress),
        Command::Rollback(a) => site::rollback(a, cli.progress),
        Command::Prune(a) => site::prune(a),
        Command::Preflight(a) => site::preflight(a, cli.progress),
        Command::Status(a) => site::status(a),
        Command::Uninstall(a) => site::uninstall(a, cli.progress),
        Command::SupportBundle(a) => support::run(a, cli.progress),
        Command::Completions(a) => docs::completions(a),
        Command::Man(a) => docs::man(a),
    }
}
