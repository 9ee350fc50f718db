//! `darkport completions SHELL` and `darkport man`: generated from the command line's own
//! definition, so they never drift from `--help`.

use crate::cli::{Cli, CompletionsArgs, ManArgs};
use anyhow::Context;
use clap::CommandFactory;

pub fn completions(a: CompletionsArgs) -> anyhow::Result<i32> {
    let mut cmd = Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "darkport", &mut std::io::stdout());
    Ok(0)
}

pub fn man(a: ManArgs) -> anyhow::Result<i32> {
    let cmd = Cli::command();
    match a.out {
        None => {
            clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(cmd, &dir)
                .with_context(|| format!("writing the manual pages to {}", dir.display()))?;
            eprintln!("wrote the manual pages to {}", dir.display());
        }
    }
    Ok(0)
}
