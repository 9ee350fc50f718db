//! `darkport run`: thin wrapper over `ops::run`.

use crate::cli::run::RunArgs;

pub fn run(a: RunArgs) -> anyhow::Result<i32> {
    crate::ops::run::run_playbook(&a)
}
