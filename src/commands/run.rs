//! `darkport run`: ansible-playbook's command line onto `ops::run`.

use crate::cli::run::RunArgs;
use crate::ops::run::{run_playbook, PlayOptions};
use crate::ui::playbook::PlaybookPrinter;

pub fn run(a: RunArgs) -> anyhow::Result<i32> {
    // --syntax-check asks for no password.
    let mut conn = a.conn.clone();
    if a.syntax_check {
        conn.ask_pass = false;
        conn.ask_become_pass = false;
    }
    let s = super::settings(&a.inventory, a.forks, &conn, a.accept_new_host_keys)?;
    let o = PlayOptions {
        inventory: s.inventory,
        playbook: a.playbook,
        extra_vars: a.extra_vars,
        limit: a.limit,
        tags: a.tags,
        skip_tags: a.skip_tags,
        check: a.check,
        diff: a.diff,
        forks: s.forks,
        verbosity: a.verbose,
        syntax_check: a.syntax_check,
        known_hosts: a.known_hosts,
        accept_new_host_keys: s.accept_new_host_keys,
        conn: s.conn,
        adhoc: a.module.map(|module| crate::ops::run::AdHoc {
            module,
            args: a.args,
        }),
    };
    let mut printer =
        PlaybookPrinter::new(a.json, Box::new(std::io::stdout())).with_verbosity(a.verbose);
    if let Some(m) = &o.adhoc {
        printer = printer.adhoc(&m.module);
    }
    let r = run_playbook(&o, &printer)?;
    if r.syntax_checked {
        println!("\nplaybook: {}", r.playbook.display());
    }
    // ansible-playbook's and ansible's exit codes: 4 when a host was unreachable, 2 when one
    // failed (1 stays for errors before any host ran: a bad playbook or inventory).
    Ok(match (r.ok, r.unreachable) {
        (true, _) => 0,
        (false, true) => 4,
        (false, false) => 2,
    })
}
