//! `darkport support-bundle`: thin wrapper over `ops::support`.

use crate::cli::support::SupportBundleArgs;
use crate::ops::support::ConnectOpts;
use crate::ops::support::{self, SupportOptions};
use crate::ui::support::SupportProgress;
use crate::ui::ProgressMode;
use std::time::Duration;

pub fn run(a: SupportBundleArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    // The inventory, forks and host key policy as every site command resolves them.
    let s = super::settings(
        &a.inventory,
        a.forks,
        &Default::default(),
        a.accept_new_host_keys,
    )?;
    let mut connect = ConnectOpts::default();
    if let Some(k) = &a.known_hosts {
        connect.known_hosts = k.clone();
    }
    connect.accept_new_host_keys = s.accept_new_host_keys;
    connect.connect_timeout = Duration::from_secs(a.connect_timeout.max(1));
    let opts = SupportOptions {
        inventory: s.inventory,
        output: a.output.clone().unwrap_or_else(support::default_output),
        lines: a.lines,
        limit: a.limit.clone(),
        containers: a.containers.clone(),
        forks: s.forks,
        connect,
    };
    let progress = if a.json {
        ProgressMode::Quiet
    } else {
        progress
    };
    let rep = support::collect(&opts, &SupportProgress::new(progress.resolve()))?;
    crate::ui::support::print_report(&rep, a.json);
    Ok(0)
}
