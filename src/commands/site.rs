//! `darkport install | preflight | status`: thin wrappers over `ops::install`.

use crate::cli::site::{
    InstallArgs, PreflightArgs, PruneArgs, RollbackArgs, StatusArgs, UpgradeArgs,
};
use crate::ops::install;
use crate::ui::ProgressMode;

pub fn install(a: InstallArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    install::install(&a, progress)
}

pub fn preflight(a: PreflightArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    install::preflight_only(&a, progress)
}

pub fn status(a: StatusArgs) -> anyhow::Result<i32> {
    install::status(&a)
}

pub fn upgrade(a: UpgradeArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    crate::ops::upgrade::upgrade(&a, progress)
}

pub fn rollback(a: RollbackArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    crate::ops::rollback::rollback(&a, progress)
}

pub fn prune(a: PruneArgs) -> anyhow::Result<i32> {
    crate::ops::rollback::prune(&a)
}
