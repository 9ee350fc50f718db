//! `darkport run`: ansible-playbook's command line onto `ops::run`.

use crate::cli::run::RunArgs;
use crate::ops::run::{run_playbook, PlayOptions};
use crate::ui::playbook::PlaybookPrinter;
use anyhow::Context;

pub fn run(a: RunArgs) -> anyhow::Result<i32> {
    let become_pass = if a.ask_become_pass && !a.syntax_check {
        Some(
            rpassword::prompt_password("BECOME password: ")
                .context("reading the become password")?,
        )
    } else {
        None
    };
    let o = PlayOptions {
        inventory: a.inventory,
        playbook: a.playbook,
        extra_vars: a.extra_vars,
        limit: a.limit,
        tags: a.tags,
        skip_tags: a.skip_tags,
        check: a.check,
        diff: a.diff,
        forks: a.forks,
        syntax_check: a.syntax_check,
        known_hosts: a.known_hosts,
        accept_new_host_keys: a.accept_new_host_keys,
        user: a.user,
        become_pass,
    };
    let printer = PlaybookPrinter::new(a.json, Box::new(std::io::stdout()));
    let r = run_playbook(&o, &printer)?;
    if r.syntax_checked {
        println!("\nplaybook: {}", r.playbook.display());
    }
    Ok(if r.ok { 0 } else { 1 })
}
