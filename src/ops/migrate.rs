//! Data migrations: each declared in its playbook, applied exactly once per site or per node,
//! journaled before and after on every node it concerns; an interrupted one that is not
//! re-runnable stops the run until the operator decides (`--mark-done` / `--rerun`).
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

use crate::bundle::Bundle;
use crate::ops::playbooks::run_step_playbook;
use crate::ops::site::journal::write_state;
use crate::ops::site::{par, Node, Site};
use crate::playbook::model::Playbook;
use crate::report::site::SiteReporter;
use crate::state::plan::{self, migration_action, MigrationAction, MigrationSpec, Phase, Scope};
use crate::state::{self, AppliedMigration};
use crate::transport::{shell_quote, ExecOpts};
use anyhow::{bail, Context};
use semver::Version;
use serde_json::{json, Map, Value};
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

/// Shell: copy each `backup:` path aside before the migration runs (`PATH.darkport-backup-ID`),
/// or, for a path that does not exist yet, leave a marker (`PATH.darkport-absent-ID`) so a
/// rollback can restore its absence. Safe to run again: an existing backup or marker is kept
/// (a re-run after the migration started must not take its output for the original).
///
/// The product may still be writing the path (the migration's own playbook is what stops it),
/// so a file that is renamed or removed while `cp` walks the tree makes it fail; the copy is
/// then taken again from scratch, up to five times, before the node is failed with cp's error.
pub(crate) fn backup_script(spec: &MigrationSpec) -> String {
    let mut script = String::from("set -e\n");
    for p in &spec.backup {
        let q = shell_quote(p);
        let bq = shell_quote(&format!("{p}.darkport-backup-{}", spec.id));
        let absent = shell_quote(&format!("{p}.darkport-absent-{}", spec.id));
        script.push_str(&format!(
            "if [ ! -e {bq} ] && [ ! -e {absent} ]; then\n  if [ -e {q} ] || [ -L {q} ]; then\n    i=0\n    while :; do\n      rm -rf {bq}.tmp\n      if err=$(cp -a {q} {bq}.tmp 2>&1); then mv {bq}.tmp {bq}; break; fi\n      i=$((i + 1))\n      if [ $i -ge 5 ]; then rm -rf {bq}.tmp; echo \"$err\" >&2; exit 1; fi\n      sleep 0.2\n    done\n  else mkdir -p \"$(dirname {q})\" && : > {absent}; fi\nfi\n"
        ));
    }
    script
}

/// One migration, exactly once: per site on the first selected node (journaled on every
/// node), or on every node; finished ones are skipped, an unfinished non-rerunnable one stops.
pub(crate) fn run_migration(
    site: &mut Site,
    b: &Bundle,
    spec: &MigrationSpec,
    pb: &Playbook,
    vars: &Map<String, Value>,
    rep: &dyn SiteReporter,
) -> anyhow::Result<()> {
    let forks = site.forks;
    let step = spec.step_name();
    let alive: Vec<&Node> = site
        .nodes
        .iter()
        .filter(|n| n.selected && n.alive())
        .collect();
    let actions: Vec<(String, MigrationAction)> = alive
        .iter()
        .map(|n| {
            (
                n.name.clone(),
                migration_action(n.state.as_ref().unwrap(), spec),
            )
        })
        .collect();
    if let Some((h, MigrationAction::Stop(why))) = actions
        .iter()
        .find(|(_, a)| matches!(a, MigrationAction::Stop(_)))
    {
        bail!("on {h}: {why}");
    }
    let targets: Vec<String> = match spec.scope {
        Scope::Site => {
            if actions.iter().any(|(_, a)| *a == MigrationAction::Skip) {
                rep.line(&format!(
                    "migration {} already applied on this site",
                    spec.id
                ));
                return Ok(());
            }
            alive
                .first()
                .map(|n| vec![n.name.clone()])
                .unwrap_or_default()
        }
        Scope::Node => actions
            .iter()
            .filter(|(_, a)| *a != MigrationAction::Skip)
            .map(|(h, _)| h.clone())
            .collect(),
    };
    if targets.is_empty() {
        rep.line(&format!("migration {} already applied", spec.id));
        return Ok(());
    }
    rep.line(&format!("migration {} on {}", spec.id, targets.join(", ")));
    let journal_on = |n: &Node| match spec.scope {
        Scope::Site => true,
        Scope::Node => targets.contains(&n.name),
    };
    let started = state::now();
    par(
        &mut site.nodes,
        forks,
        |n| n.selected && journal_on(n),
        |n| {
            n.state.as_mut().unwrap().begin_step(&step);
            write_state(n)
        },
    );
    if !spec.backup.is_empty() {
        par(
            &mut site.nodes,
            forks,
            |n| targets.contains(&n.name),
            |n| {
                let script = backup_script(spec);
                let opts = ExecOpts {
                    become_: n.become_(),
                    ..Default::default()
                };
                n.run_ok("backing up before the migration", &script, &opts)?;
                Ok(())
            },
        );
    }
    let what = format!("migration {}", spec.id);
    run_migration_playbook(site, pb, vars, spec, "migration-run", &what, &targets, rep)?;
    let finished = state::now();
    par(
        &mut site.nodes,
        forks,
        |n| n.selected && journal_on(n),
        |n| {
            let st = n.state.as_mut().unwrap();
            st.finish_step(&step);
            if !st.migration_applied(&spec.id) {
                st.migrations.push(AppliedMigration {
                    id: spec.id.clone(),
                    bundle_digest: b.id(),
                    started_at: started.clone(),
                    finished_at: finished.clone(),
                    marked_done: false,
                });
            }
            write_state(n)
        },
    );
    Ok(())
}

/// What the operator decided about a migration that was interrupted and is not re-runnable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resolve {
    /// `--mark-done`: it completed; record it as applied without running it.
    Done,
    /// `--rerun`: the data was restored from the backup; run it again from the start.
    Rerun,
}

/// Apply the operator's decision on every selected node whose journal shows the migration
/// started and unfinished. Returns those nodes.
pub(crate) fn resolve_migration(
    site: &mut Site,
    b: &Bundle,
    spec: &MigrationSpec,
    how: Resolve,
) -> anyhow::Result<Vec<String>> {
    let step = spec.step_name();
    let mut hosts = Vec::new();
    for n in site.nodes.iter_mut().filter(|n| n.selected && n.alive()) {
        let Some(st) = n.state.as_mut() else { continue };
        if st.migration_applied(&spec.id)
            || st.step_status(&step) != Some(state::StepStatus::Started)
        {
            continue;
        }
        let op = st
            .operation
            .as_mut()
            .expect("a started step has an operation");
        match how {
            Resolve::Done => {
                let started = op
                    .steps
                    .iter()
                    .find(|s| s.name == step)
                    .map(|s| s.started_at.clone())
                    .unwrap_or_else(state::now);
                st.finish_step(&step);
                st.migrations.push(AppliedMigration {
                    id: spec.id.clone(),
                    bundle_digest: b.id(),
                    started_at: started,
                    finished_at: state::now(),
                    marked_done: true,
                });
            }
            Resolve::Rerun => op.steps.retain(|s| s.name != step),
        }
        write_state(n)?;
        hosts.push(n.name.clone());
    }
    if hosts.is_empty() {
        bail!(
            "migration {} is not started-and-unfinished on any reachable node; nothing was changed",
            spec.id
        );
    }
    Ok(hosts)
}

/// Run a migration's playbook (or its rollback) on `targets`, journaled as `step`, with
/// `darkport_migration_id` set; an error naming the targets where it did not finish.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_migration_playbook(
    site: &mut Site,
    pb: &Playbook,
    vars: &Map<String, Value>,
    spec: &MigrationSpec,
    step: &str,
    what: &str,
    targets: &[String],
    rep: &dyn SiteReporter,
) -> anyhow::Result<()> {
    let mut mvars = vars.clone();
    mvars.insert("darkport_migration_id".into(), json!(spec.id));
    let ok = run_step_playbook(
        site,
        pb,
        &mvars,
        step,
        what,
        |n| targets.contains(&n.name),
        rep,
    );
    if ok.len() != targets.len() {
        // Name each node with the reason it fell out (an earlier step may have failed it, and
        // then the playbook never ran there).
        let missing: Vec<String> = site
            .nodes
            .iter()
            .filter(|n| targets.contains(&n.name) && !ok.contains(&n.name))
            .map(|n| match &n.error {
                Some(e) => format!("{} ({e})", n.name),
                None => n.name.clone(),
            })
            .collect();
        bail!(
            "{what} did not finish on {}; fix it and run the same command again",
            missing.join(", ")
        );
    }
    Ok(())
}
