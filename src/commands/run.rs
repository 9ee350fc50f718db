//! `darkport run`: thin wrapper over `ops::run`.

use crate::cli::run::RunArgs;

pub fn run(_a: RunArgs) -> anyhow::Result<i32> {
    anyhow::bail!("WIP")
}
