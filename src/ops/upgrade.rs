//! `darkport upgrade`: move a site from the version it runs to the bundle's version.
//!
//! Verify the bundle; read every node's state and refuse a downgrade, a from-version outside
//! `upgrades_from`, mixed versions (unless `--allow-mixed` or resuming), a delta bundle whose
//! base blobs the site lacks (preflight); then the install machinery (lock, push of the
//! missing blobs only, seed, trust), `playbooks/upgrade.yml` (or `install.yml` when the bundle
//! has no upgrade playbook) with the migrations introduced after the site's version, in order,
//! each exactly once (journaled in each node's `state.json`; see [`crate::ops::migrate`]).

use crate::bundle::{Bundle, Manifest};
use crate::ops::install::{ship_and_run, Ship};
use crate::ops::migrate::{migration_spec, resolve_migration, Resolve};
use crate::ops::playbooks::Extracted;
use crate::ops::preflight::{self, preflight};
use crate::ops::site::journal::locked;
use crate::ops::site::{open_bundle, BundleTrust, Exe, Node, Site, SiteOptions};
use crate::ops::Outcome;
use crate::playbook::model::Playbook;
use crate::report::site::{
    NothingToDo, PlanNode, PlannedMigration, PreflightRow, Refusal, SiteReporter, UpgradeDone,
    UpgradePlan, UpgradeReport,
};
use crate::state::plan::{self, MigrationSpec};
use crate::state::NodeState;
use anyhow::{bail, Context};
use semver::{Version, VersionReq};
use std::path::PathBuf;

/// `darkport upgrade`.
pub struct UpgradeOptions {
    pub site: SiteOptions,
    pub bundle: BundleTrust,
    /// Only report what would happen.
    pub plan: bool,
    /// Accept nodes at different versions (resuming a partial upgrade).
    pub allow_mixed: bool,
    /// Record this interrupted migration as done without running it again.
    pub mark_done: Option<String>,
    /// Run this interrupted migration again from the start (its data restored by hand).
    pub rerun: Option<String>,
    pub extra_vars: Vec<String>,
    pub ca_dir: Option<PathBuf>,
}

/// The bundle's version and the versions it may upgrade from.
fn versions(m: &Manifest) -> anyhow::Result<(Version, VersionReq)> {
    let target =
        Version::parse(&m.version).with_context(|| format!("bundle version {:?}", m.version))?;
    let from = match &m.upgrades_from {
        Some(r) => VersionReq::parse(r).with_context(|| format!("bundle upgrades_from {r:?}"))?,
        None => bail!(
            "{} {} declares no upgrades_from: it can only be installed, not upgraded to",
            m.product,
            m.version
        ),
    };
    Ok((target, from))
}

/// The bundle's playbooks: the main one (upgrade.yml, else install.yml) and every migration.
struct Playbooks {
    main: Option<(&'static str, Playbook)>,
    migrations: Vec<(MigrationSpec, Playbook)>,
}

fn load_playbooks(b: &Bundle) -> anyhow::Result<Playbooks> {
    let pbs = Extracted::from(b)?;
    let main = pbs.first_of(&["upgrade.yml", "install.yml"])?;
    let mut migrations = Vec::new();
    for rel in &b.manifest().migrations {
        let pb = pbs.load(rel)?;
        migrations.push((migration_spec(rel, &pb)?, pb));
    }
    Ok(Playbooks { main, migrations })
}

/// The migrations introduced after `from` up to `target`, in order.
fn migrations_to_run(
    all: &[(MigrationSpec, Playbook)],
    from: &Version,
    target: &Version,
) -> Vec<(MigrationSpec, Playbook)> {
    let specs: Vec<MigrationSpec> = all.iter().map(|x| x.0.clone()).collect();
    plan::migrations_between(&specs, from, target)
        .into_iter()
        .filter_map(|s| all.iter().find(|x| x.0.id == s.id).cloned())
        .collect()
}

/// The operator's `--mark-done` / `--rerun`, checked against the migrations this upgrade runs.
fn operator_decision(
    o: &UpgradeOptions,
    to_run: &[(MigrationSpec, Playbook)],
) -> anyhow::Result<Option<(MigrationSpec, Resolve)>> {
    let (id, how) = match (&o.mark_done, &o.rerun) {
        (Some(id), _) => (id, Resolve::Done),
        (None, Some(id)) => (id, Resolve::Rerun),
        (None, None) => return Ok(None),
    };
    let spec = to_run
        .iter()
        .find(|(s, _)| &s.id == id)
        .map(|(s, _)| s.clone())
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{id}: not a migration of this upgrade (it runs: {}); nothing was changed",
                to_run
                    .iter()
                    .map(|(s, _)| s.id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })?;
    Ok(Some((spec, how)))
}

fn plan_report(
    m: &Manifest,
    from: &Version,
    main: &str,
    to_run: &[(MigrationSpec, Playbook)],
    rows: &[PreflightRow],
) -> UpgradePlan {
    UpgradePlan {
        product: m.product.clone(),
        from: from.to_string(),
        to: m.version.clone(),
        playbook: main.to_string(),
        migrations: to_run
            .iter()
            .map(|(s, _)| PlannedMigration {
                id: s.id.clone(),
                version: s.version.to_string(),
                scope: s.scope,
                phase: s.phase,
                rerunnable: s.rerunnable,
                backup: s.backup.clone(),
            })
            .collect(),
        nodes: rows
            .iter()
            .map(|r| PlanNode {
                host: r.host.clone(),
                from: r.installed.clone(),
                to: format!("{} {}", m.product, m.version),
                registry: r.registry,
                blobs_to_send: r.missing_blobs,
                corrupt_blobs: r.corrupt_blobs,
                bytes_to_send: if r.registry { r.needed_bytes } else { 0 },
            })
            .collect(),
    }
}

pub fn upgrade(
    o: &UpgradeOptions,
    rep: &dyn SiteReporter,
) -> anyhow::Result<Outcome<UpgradeReport>> {
    // The inventory and -e first: cheap to get wrong, before a large bundle is hashed.
    let mut site = Site::load(&o.site)?;
    site.warn_inventory(rep);
    let extra_vars = crate::ops::run::parse_extra_vars(&o.extra_vars)?;
    let b = open_bundle(&o.bundle, rep)?;
    let m = b.manifest().clone();
    let (target, upgrades_from) = versions(&m)?;
    let pbs = load_playbooks(&b)?;
    let exe = Exe::current()?;
    site.lap("verify");
    site.connect();
    let rows = preflight(&mut site, &b, &exe, "upgrade");
    if !preflight::passed(&rows, rep) {
        return Ok(Outcome::failed(
            UpgradeReport::Refused(Refusal::preflight(rows)),
            preflight::refused(),
        ));
    }
    let states: Vec<(String, Option<NodeState>)> = site
        .nodes
        .iter()
        .filter(|n| n.selected)
        .map(|n| (n.name.clone(), n.state.clone()))
        .collect();
    let from = plan::check_upgrade(&m.product, &states, &target, &upgrades_from, o.allow_mixed)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("upgrade refused: nothing was changed on any node")?;
    let Some(from) = from else {
        rep.line(&format!(
            "the site already runs {} {}: nothing to do",
            m.product, m.version
        ));
        return Ok(Outcome::ok(UpgradeReport::NothingToDo(NothingToDo {
            ok: true,
            nothing_to_do: true,
            version: m.version.clone(),
        })));
    };
    let to_run = migrations_to_run(&pbs.migrations, &from, &target);
    let main_name = pbs.main.as_ref().map(|x| x.0).unwrap_or("(none)");
    if o.plan {
        let plan = plan_report(&m, &from, main_name, &to_run, &rows);
        return Ok(Outcome::ok(UpgradeReport::Plan(plan)));
    }
    let resolve = operator_decision(o, &to_run)?;
    rep.line(&format!("upgrade {} {from} -> {}", m.product, m.version));
    let ca_dir = o.ca_dir.clone().unwrap_or_else(|| o.site.default_ca_dir());
    let ship = Ship {
        b: &b,
        exe: &exe,
        ca_dir: &ca_dir,
        action: "upgrade",
        playbook: pbs.main.as_ref().map(|(name, pb)| (*name, pb)),
        migrations: &to_run,
    };
    let r = locked(&mut site, "upgrade", |site| {
        site.lap("preflight");
        if let Some((spec, how)) = &resolve {
            let hosts = resolve_migration(site, &b, spec, *how)?;
            rep.line(&format!(
                "migration {}: {} on {} (operator's decision)",
                spec.id,
                match how {
                    Resolve::Done => "recorded as done",
                    Resolve::Rerun => "will run again",
                },
                hosts.join(", ")
            ));
        }
        ship_and_run(site, &ship, extra_vars, rep)
    })?;
    let failed = site.failures();
    let report = UpgradeReport::Done(Box::new(UpgradeDone {
        ok: r.is_ok() && failed.is_empty(),
        from: from.to_string(),
        to: m.version.clone(),
        migrations: to_run.iter().map(|x| x.0.id.clone()).collect(),
        nodes: site.nodes.iter().map(Node::result).collect(),
        phases: site.phases_json(),
        external_registry: site.external_report.clone(),
        deploy: site.deploy_report.clone(),
        error: r.as_ref().err().map(|e| format!("{e:#}")),
    }));
    let error = match r {
        Err(e) => Some(e),
        Ok(()) if !failed.is_empty() => Some(site.op_error(format!(
            "upgrade to {} did not finish on: {}; run the same command again (it resumes)",
            m.version,
            failed.join("; ")
        ))),
        Ok(()) => {
            rep.line(&format!("site upgraded to {} {}", m.product, m.version));
            None
        }
    };
    Ok(Outcome { report, error })
}
