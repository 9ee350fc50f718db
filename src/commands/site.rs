//! The site commands (install, preflight, status, upgrade, rollback, prune): clap arguments
//! into option structs, the op run with a terminal reporter, its report printed as text or
//! `--json`, the exit code from the report.

use crate::cli::site::{
    BundleTrustArgs, InstallArgs, PreflightArgs, PruneArgs, RollbackArgs, SiteArgs, StatusArgs,
    UninstallArgs, UpgradeArgs,
};
use crate::ops::install::{install as run_install, InstallOptions};
use crate::ops::prune::{prune as run_prune, PruneOptions};
use crate::ops::rollback::{rollback as run_rollback, RollbackOptions};
use crate::ops::site::{BundleTrust, SiteOptions};
use crate::ops::status::{status as run_status, StatusOptions};
use crate::ops::upgrade::{upgrade as run_upgrade, UpgradeOptions};
use crate::ops::{preflight, Outcome};
use crate::report::Verdict;
use crate::ui::site::{self as out, SitePrinter};
use crate::ui::{print_json, ProgressMode};
use serde::Serialize;

fn site_options(a: &SiteArgs) -> anyhow::Result<SiteOptions> {
    let s = super::settings(&a.inventory, a.forks, &a.conn, a.accept_new_host_keys)?;
    Ok(SiteOptions {
        inventory: s.inventory,
        limit: a.limit.clone(),
        forks: s.forks,
        known_hosts: a.known_hosts.clone(),
        accept_new_host_keys: s.accept_new_host_keys,
        conn: s.conn,
        verbosity: a.verbose,
    })
}

fn bundle_trust(a: &BundleTrustArgs) -> BundleTrust {
    BundleTrust {
        bundle: a.bundle.clone(),
        pubkeys: a.pubkey.clone(),
        allow_unsigned: a.allow_unsigned,
    }
}

/// Progress is off with `--json` (stdout is the document; stderr stays readable).
fn printer(a: &SiteArgs, progress: ProgressMode) -> SitePrinter {
    SitePrinter::new(if a.json {
        ProgressMode::Quiet
    } else {
        progress
    })
    .for_json(a.json)
    .with_verbosity(a.verbose)
}

/// Print a report (JSON or text), then exit 0 when it says the operation succeeded.
fn finish<R: Serialize + Verdict>(json: bool, report: &R, text: impl Fn(&R)) -> i32 {
    if json {
        print_json(report);
    } else {
        text(report);
    }
    if report.ok() {
        0
    } else {
        1
    }
}

/// As [`finish`], then the error that stopped the operation (after its report; with `--json`
/// inside the same document).
fn finish_outcome<R: Serialize + Verdict>(
    json: bool,
    o: Outcome<R>,
    text: impl Fn(&R),
) -> anyhow::Result<i32> {
    match o.error {
        Some(e) => {
            if json {
                crate::ui::json::print(&o.report, Some(&e));
            } else {
                text(&o.report);
            }
            Err(e)
        }
        None => Ok(finish(json, &o.report, text)),
    }
}

pub fn install(a: InstallArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    if a.check {
        let r = preflight::run(
            &site_options(&a.site)?,
            &bundle_trust(&a.bundle),
            &printer(&a.site, progress),
        )?;
        return Ok(finish(a.site.json, &r, out::print_preflight));
    }
    let o = InstallOptions {
        site: site_options(&a.site)?,
        bundle: bundle_trust(&a.bundle),
        extra_vars: a.extra_vars,
        ca_dir: a.ca_dir,
    };
    let r = run_install(&o, &printer(&a.site, progress))?;
    finish_outcome(a.site.json, r, out::print_install)
}

pub fn preflight(a: PreflightArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    let r = preflight::run(
        &site_options(&a.site)?,
        &bundle_trust(&a.bundle),
        &printer(&a.site, progress),
    )?;
    Ok(finish(a.site.json, &r, out::print_preflight))
}

pub fn status(a: StatusArgs) -> anyhow::Result<i32> {
    let o = StatusOptions {
        site: site_options(&a.site)?,
        ca_dir: a.ca_dir,
    };
    let r = run_status(&o)?;
    Ok(finish(a.site.json, &r, out::print_status))
}

pub fn upgrade(a: UpgradeArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    let verify = if a.site.json || a.plan {
        ProgressMode::Quiet
    } else {
        progress
    };
    let pr = printer(&a.site, progress).with_verify(verify);
    let o = UpgradeOptions {
        site: site_options(&a.site)?,
        bundle: bundle_trust(&a.bundle),
        plan: a.plan,
        allow_mixed: a.allow_mixed,
        mark_done: a.mark_done,
        rerun: a.rerun,
        extra_vars: a.extra_vars,
        ca_dir: a.ca_dir,
    };
    let r = run_upgrade(&o, &pr)?;
    finish_outcome(a.site.json, r, out::print_upgrade)
}

pub fn rollback(a: RollbackArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    let pr = printer(
        &a.site,
        if a.plan {
            ProgressMode::Quiet
        } else {
            progress
        },
    );
    let o = RollbackOptions {
        site: site_options(&a.site)?,
        plan: a.plan,
        extra_vars: a.extra_vars,
        ca_dir: a.ca_dir,
    };
    let r = run_rollback(&o, &pr)?;
    finish_outcome(a.site.json, r, out::print_rollback)
}

pub fn prune(a: PruneArgs) -> anyhow::Result<i32> {
    let o = PruneOptions {
        site: site_options(&a.site)?,
        dry_run: a.dry_run,
    };
    let r = run_prune(&o)?;
    finish_outcome(a.site.json, r, out::print_prune)
}

pub fn uninstall(a: UninstallArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    let o = crate::ops::uninstall::UninstallOptions {
        site: site_options(&a.site)?,
        purge_data: a.purge_data,
        check: a.check,
        extra_vars: a.extra_vars,
    };
    let r = crate::ops::uninstall::uninstall(&o, &printer(&a.site, progress))?;
    finish_outcome(a.site.json, r, out::print_uninstall)
}
