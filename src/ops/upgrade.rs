//! `darkport upgrade`: move a site from the version it runs to the bundle's version.
//!
//! Verify the bundle; read every node's state and refuse a downgrade, a from-version outside
//! `upgrades_from`, mixed versions (unless `--allow-mixed` or resuming), a delta bundle whose
//! base blobs the site lacks (preflight); then the install machinery (lock, push of the
//! missing blobs only, seed, trust), `playbooks/upgrade.yml` (or `install.yml` when the bundle
//! has no upgrade playbook) with the migrations introduced after the site's version, in order,
//! each exactly once (journaled in each node's `state.json`).
//!
//! A migration declares itself in the vars of its first play:
//! ```yaml
//! - hosts: all
//!   vars:
//!     darkport_migration: {version: 1.1.0, scope: site, rerunnable: false, backup: [/srv/app/data]}
//! ```
//! `scope: site` runs it once per site on the first node; `node` on every node. `phase: before`
//! (the default) runs it before the upgrade playbook, when the new images are already on the
//! site registry but the old services still run; `phase: after` once the playbook finished.

use crate::cli::site::UpgradeArgs;
use crate::ops::install::{self, Site};
use crate::playbook::model::Playbook;
use crate::state::plan::{self, MigrationSpec, Phase, Scope};
use crate::state::{self, LockOwner};
use crate::ui::{bytes, site::SitePrinter, ProgressMode};
use anyhow::{bail, Context};
use semver::{Version, VersionReq};
use serde_json::{json, Value};
use std::path::Path;

/// Read the `darkport_migration` declaration of a migration playbook.
pub fn migration_spec(rel: &str, pb: &Playbook) -> anyhow::Result<MigrationSpec> {
    let id = Path::new(rel)
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(rel)
        .to_string();
    let decl = pb
        .plays
        .first()
        .and_then(|p| p.vars.get("darkport_migration"))
        .cloned()
        .ok_or_else(|| {
            anyhow::anyhow!(
                "{rel}: the first play must declare vars.darkport_migration (version, scope)"
            )
        })?;
    let get = |k: &str| decl.get(k).cloned().unwrap_or(Value::Null);
    let version = match get("version") {
        Value::String(s) => Version::parse(&s)
            .with_context(|| format!("{rel}: darkport_migration.version {s:?}"))?,
        v => bail!("{rel}: darkport_migration.version must be a version string, not {v}"),
    };
    let scope = match get("scope").as_str() {
        None | Some("site") => Scope::Site,
        Some("node") => Scope::Node,
        Some(o) => bail!("{rel}: darkport_migration.scope must be site or node, not {o:?}"),
    };
    let phase = match get("phase").as_str() {
        None | Some("before") => Phase::Before,
        Some("after") => Phase::After,
        Some(o) => bail!("{rel}: darkport_migration.phase must be before or after, not {o:?}"),
    };
    let rerunnable = crate::inventory::ansible_bool(&get("rerunnable")).unwrap_or(false);
    let backup = match get("backup") {
        Value::Null => vec![],
        Value::Array(a) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        Value::String(s) => vec![s],
        v => bail!("{rel}: darkport_migration.backup must be a list of paths, not {v}"),
    };
    let spec = MigrationSpec {
        id,
        playbook: rel.to_string(),
        version,
        scope,
        phase,
        rerunnable,
        backup,
        rollback: get("rollback").as_str().map(String::from),
    };
    plan::validate(std::slice::from_ref(&spec)).map_err(|e| anyhow::anyhow!("{rel}: {e}"))?;
    Ok(spec)
}

pub fn upgrade(a: &UpgradeArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    let quiet = a.site.json || a.plan;
    let pr = SitePrinter::new(if a.site.json {
        ProgressMode::Quiet
    } else {
        progress
    });
    let b = install::open_bundle(
        &a.bundle,
        if quiet { ProgressMode::Quiet } else { progress },
    )?;
    let m = b.manifest().clone();
    let target =
        Version::parse(&m.version).with_context(|| format!("bundle version {:?}", m.version))?;
    let upgrades_from = match &m.upgrades_from {
        Some(r) => VersionReq::parse(r).with_context(|| format!("bundle upgrades_from {r:?}"))?,
        None => bail!(
            "{} {} declares no upgrades_from: it can only be installed, not upgraded to",
            m.product,
            m.version
        ),
    };
    let extra_vars = crate::ops::run::parse_extra_vars(&a.extra_vars)?;
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let pbdir = tmp.path().join("playbooks");
    b.extract_playbooks(&pbdir)?;
    let (main_name, main) = if pbdir.join("upgrade.yml").exists() {
        (
            "upgrade.yml",
            Some(Playbook::load(&pbdir.join("upgrade.yml"))?),
        )
    } else if pbdir.join("install.yml").exists() {
        (
            "install.yml",
            Some(Playbook::load(&pbdir.join("install.yml"))?),
        )
    } else {
        ("(none)", None)
    };
    let mut all_migrations = Vec::new();
    for rel in &m.migrations {
        let pb = Playbook::load(&pbdir.join(rel))?;
        all_migrations.push((migration_spec(rel, &pb)?, pb));
    }
    let exe = install::self_exe()?;
    let mut site = Site::load(&a.site)?;
    site.connect();
    let rows = install::preflight(&mut site, &b, &exe, "upgrade");
    let states: Vec<(String, Option<state::NodeState>)> = site
        .nodes
        .iter()
        .filter(|n| n.selected)
        .map(|n| (n.name.clone(), n.state.clone()))
        .collect();
    install::refuse_on_problems(&rows, a.site.json)?;
    let from = plan::check_upgrade(&m.product, &states, &target, &upgrades_from, a.allow_mixed)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("upgrade refused: nothing was changed on any node")?;
    let Some(from) = from else {
        pr.line(&format!(
            "the site already runs {} {}: nothing to do",
            m.product, m.version
        ));
        if a.site.json {
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &json!({"ok": true, "nothing_to_do": true, "version": m.version})
                )?
            );
        }
        return Ok(0);
    };
    let to_run: Vec<(MigrationSpec, Playbook)> = {
        let specs: Vec<MigrationSpec> = all_migrations.iter().map(|x| x.0.clone()).collect();
        let ids: Vec<String> = plan::migrations_between(&specs, &from, &target)
            .into_iter()
            .map(|s| s.id.clone())
            .collect();
        ids.iter()
            .filter_map(|id| all_migrations.iter().find(|x| &x.0.id == id).cloned())
            .collect()
    };
    if a.plan {
        let plan_nodes: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "host": r.host, "from": r.installed, "to": format!("{} {}", m.product, m.version),
                    "registry": r.registry, "blobs_to_send": r.missing_blobs, "corrupt_blobs": r.corrupt_blobs,
                    "bytes_to_send": if r.registry { r.needed_bytes } else { 0 },
                })
            })
            .collect();
        let migs: Vec<Value> = to_run
            .iter()
            .map(|(s, _)| json!({"id": s.id, "version": s.version.to_string(), "scope": s.scope, "rerunnable": s.rerunnable, "backup": s.backup}))
            .collect();
        if a.site.json {
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &json!({"from": from.to_string(), "to": m.version, "playbook": main_name, "migrations": migs, "nodes": plan_nodes})
                )?
            );
        } else {
            println!("upgrade {} {from} -> {}", m.product, m.version);
            for r in &rows {
                println!(
                    "  {:<16} {} -> {}{}",
                    r.host,
                    r.installed.as_deref().unwrap_or("-"),
                    m.version,
                    if r.registry {
                        format!(
                            "  send {} blob(s) + manifest and playbooks, {}",
                            r.missing_blobs,
                            bytes(r.needed_bytes)
                        )
                    } else {
                        String::new()
                    }
                );
            }
            println!("  playbook   {main_name}");
            if to_run.is_empty() {
                println!("  migrations none");
            }
            for (s, _) in &to_run {
                println!(
                    "  migration  {} (introduced in {}, once per {}, {} the playbook{})",
                    s.id,
                    s.version,
                    match s.scope {
                        Scope::Site => "site",
                        Scope::Node => "node",
                    },
                    match s.phase {
                        Phase::Before => "before",
                        Phase::After => "after",
                    },
                    if s.rerunnable { ", rerunnable" } else { "" }
                );
            }
        }
        return Ok(0);
    }
    let resolve = match (&a.mark_done, &a.rerun) {
        (Some(id), _) => Some((id, install::Resolve::Done)),
        (None, Some(id)) => Some((id, install::Resolve::Rerun)),
        (None, None) => None,
    };
    let resolve = match resolve {
        Some((id, how)) => Some((
            to_run
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
                })?,
            how,
        )),
        None => None,
    };
    pr.line(&format!("upgrade {} {from} -> {}", m.product, m.version));
    let ca_dir = a
        .ca_dir
        .clone()
        .unwrap_or_else(|| install::default_ca_dir(&a.site));
    let me = LockOwner::this_process("upgrade");
    install::lock_all(&mut site, &me)?;
    site.lap("preflight");
    if let Some((spec, how)) = &resolve {
        match install::resolve_migration(&mut site, &b, spec, *how) {
            Ok(hosts) => pr.line(&format!(
                "migration {}: {} on {} (operator's decision)",
                spec.id,
                match how {
                    install::Resolve::Done => "recorded as done",
                    install::Resolve::Rerun => "will run again",
                },
                hosts.join(", ")
            )),
            Err(e) => {
                install::unlock_all(&mut site, &me);
                return Err(e);
            }
        }
    }
    let r = install::ship_and_run(
        &mut site,
        &b,
        &m,
        &exe,
        &ca_dir,
        "upgrade",
        main.as_ref(),
        &to_run,
        extra_vars,
        &pr,
    );
    install::unlock_all(&mut site, &me);
    let failed: Vec<String> = site
        .nodes
        .iter()
        .filter_map(|n| n.error.as_ref().map(|e| format!("{}: {e}", n.name)))
        .collect();
    if a.site.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "ok": r.is_ok() && failed.is_empty(), "from": from.to_string(), "to": m.version,
                "migrations": to_run.iter().map(|x| x.0.id.clone()).collect::<Vec<_>>(),
                "nodes": site.nodes.iter().map(|n| json!({"host": n.name, "ok": n.error.is_none(), "error": n.error, "push": n.push})).collect::<Vec<_>>(),
                "phases": site.phases_json(),
                "external_registry": site.external_report,
                "error": r.as_ref().err().map(|e| format!("{e:#}")),
            }))?
        );
    }
    r?;
    if !failed.is_empty() {
        bail!(
            "upgrade to {} did not finish on: {}; run the same command again (it resumes)",
            m.version,
            failed.join("; ")
        );
    }
    pr.line(&format!("site upgraded to {} {}", m.product, m.version));
    Ok(0)
}
