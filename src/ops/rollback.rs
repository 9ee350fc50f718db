//! `darkport rollback`: undo the last finished upgrade of a site, from version V back to the
//! `previous` version P each node recorded. Everything it needs is on the nodes: each holds the
//! signed manifest and the playbooks of the bundles it received under `<root>/bundles/<id>/`
//! (see [`crate::ops::kept`]). Journaled as an operation `rollback` to P (a re-run resumes),
//! in this order:
//! 1. for each migration V's upgrade applied, newest first: its `rollback` playbook (from V's
//!    bundle), then its backups moved back (`<path>.darkport-backup-<id>` → `<path>`, the
//!    current data kept as `<path>.darkport-rollback-<id>` until the move succeeded);
//! 2. the registry hosts' tag index points P's tags at P's images again;
//! 3. P's `install.yml` runs with P's `darkport_registry`/`darkport_images`/…;
//! 4. each node records P as its version, no previous, and drops V's migrations.

use crate::bundle::Manifest;
use crate::ops::kept::fetch_bundle;
use crate::ops::migrate::{migration_spec, run_migration_playbook};
use crate::ops::playbooks::{
    load_if_present, load_member, playbook_vars, run_step_playbook, site_images,
};
use crate::ops::seed::merge_tags;
use crate::ops::site::journal::{locked, step, write_state};
use crate::ops::site::{par, Node, Site, SiteOptions};
use crate::ops::Outcome;
use crate::playbook::model::Playbook;
use crate::registry::{client, tls};
use crate::report::site::{
    NodeOutcome, RollbackDone, RollbackPlanReport, RollbackReport, SiteReporter, UndoStep,
};
use crate::state::plan::{MigrationSpec, Scope};
use crate::state::{Installed, StepStatus};
use crate::transport::{shell_quote, ExecOpts};
use anyhow::{bail, Context};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `darkport rollback`.
pub struct RollbackOptions {
    pub site: SiteOptions,
    /// Only report what would happen.
    pub plan: bool,
    pub extra_vars: Vec<String>,
    pub ca_dir: Option<PathBuf>,
}

/// Where the site is and where a rollback takes it.
struct RollbackPlan {
    product: String,
    from: Installed,
    to: Installed,
    /// True when an interrupted rollback is resumed.
    resuming: bool,
}

fn check_rollback(site: &Site) -> anyhow::Result<RollbackPlan> {
    let mut plan: Option<RollbackPlan> = None;
    let mut problems = Vec::new();
    for n in &site.nodes {
        let Some(st) = &n.state else {
            problems.push(format!("{}: nothing is installed", n.name));
            continue;
        };
        let (Some(product), Some(v), Some(d)) = (&st.product, &st.version, st.bundle_digest) else {
            problems.push(format!("{}: no finished install", n.name));
            continue;
        };
        let Some(prev) = &st.previous else {
            problems.push(format!(
                "{}: {product} {v} records no previous version to go back to",
                n.name
            ));
            continue;
        };
        let mut resuming = false;
        if let Some(op) = &st.operation {
            if op.action == "rollback" && op.bundle_digest == prev.bundle_digest {
                resuming = true;
            } else {
                problems.push(format!(
                    "{}: an unfinished {} to {} is in progress since {}",
                    n.name, op.action, op.to, op.started_at
                ));
                continue;
            }
        }
        let here = RollbackPlan {
            product: product.clone(),
            from: Installed {
                version: v.clone(),
                bundle_digest: d,
            },
            to: prev.clone(),
            resuming,
        };
        match &mut plan {
            None => plan = Some(here),
            Some(p) if p.from == here.from && p.to == here.to && p.product == here.product => {
                p.resuming |= here.resuming;
            }
            Some(p) => problems.push(format!(
                "{}: at {} {} (previous {}), other nodes at {} {} (previous {})",
                n.name,
                here.product,
                here.from.version,
                here.to.version,
                p.product,
                p.from.version,
                p.to.version
            )),
        }
    }
    if !problems.is_empty() {
        bail!(
            "rollback refused: nothing was changed on any node\n  {}",
            problems.join("\n  ")
        );
    }
    plan.ok_or_else(|| anyhow::anyhow!("rollback: no node"))
}

/// The migrations V's upgrade applied on the site (recorded with V's bundle digest on some
/// node), newest first, each with its rollback playbook loaded.
fn migrations_to_undo(
    site: &Site,
    mv: &Manifest,
    v: &Installed,
    vdir: &Path,
) -> anyhow::Result<Vec<(MigrationSpec, Playbook)>> {
    let applied: BTreeSet<String> = site
        .nodes
        .iter()
        .filter_map(|n| n.state.as_ref())
        .flat_map(|s| s.migrations.iter())
        .filter(|m| m.bundle_digest == v.bundle_digest)
        .map(|m| m.id.clone())
        .collect();
    let pbdir = vdir.join("playbooks");
    let mut out = Vec::new();
    for rel in mv.migrations.iter().rev() {
        let pb = load_member(&pbdir, rel)?;
        let spec = migration_spec(rel, &pb)?;
        if !applied.contains(&spec.id) {
            continue;
        }
        let Some(rb) = &spec.rollback else {
            bail!(
                "rollback refused: migration {} (playbooks/{rel} of {} {}) declares no rollback playbook; nothing was changed",
                spec.id,
                mv.product,
                mv.version
            );
        };
        let path = pbdir.join(rb);
        if !path.is_file() {
            bail!(
                "rollback refused: migration {} names rollback: {rb}, which is not in the bundle's playbooks; nothing was changed",
                spec.id
            );
        }
        let rpb = load_member(&pbdir, rb)?;
        out.push((spec, rpb));
    }
    if let Some(id) = applied
        .iter()
        .find(|id| !out.iter().any(|(s, _)| &s.id == *id))
    {
        bail!(
            "rollback refused: migration {id} is recorded as applied by {} {} but is not in its bundle; nothing was changed",
            mv.product,
            mv.version
        );
    }
    Ok(out)
}

/// Shell: move each backup of migration `id` back into place, the current data aside until
/// the move succeeded; a path that did not exist before the migration (its absence marker,
/// see `migrate::backup_script`) is removed again. One line per path says which happened,
/// or that the path was left as is (no backup was taken). Safe to run again after an
/// interruption.
fn restore_script(spec: &MigrationSpec) -> String {
    let mut s = String::from("set -e\n");
    for p in &spec.backup {
        let q = shell_quote(p);
        let b = shell_quote(&format!("{p}.darkport-backup-{}", spec.id));
        let absent = shell_quote(&format!("{p}.darkport-absent-{}", spec.id));
        let aside = shell_quote(&format!("{p}.darkport-rollback-{}", spec.id));
        s.push_str(&format!(
            "if [ -e {b} ]; then\n  if [ -e {q} ] || [ -L {q} ]; then rm -rf {aside}; mv {q} {aside}; fi\n  mv {b} {q}\n  echo restored {q}\n\
elif [ -e {absent} ]; then\n  if [ -e {q} ] || [ -L {q} ]; then rm -rf {aside}; mv {q} {aside}; fi\n  rm -f {absent}\n  echo removed {q}: it did not exist before the migration\n\
else\n  echo left {q} as is: no backup of it was taken\nfi\nrm -rf {aside}\n"
        ));
    }
    s
}

fn not_finished(n: &Node, step: &str) -> bool {
    n.state.as_ref().and_then(|s| s.step_status(step)) != Some(StepStatus::Finished)
}

/// What a rollback needs, fetched back from the first node (kept until the rollback ends).
struct Prepared {
    plan: RollbackPlan,
    mv: Manifest,
    mp: Manifest,
    undo: Vec<(MigrationSpec, Playbook)>,
    install_pb: Option<Playbook>,
    _tmp: tempfile::TempDir,
}

fn prepare(site: &Site) -> anyhow::Result<Prepared> {
    let plan = check_rollback(site)?;
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let first = site
        .nodes
        .iter()
        .find(|n| n.selected)
        .unwrap_or(&site.nodes[0]);
    let mv = fetch_bundle(first, &plan.from.bundle_digest, &tmp.path().join("v"))?;
    let mp = fetch_bundle(first, &plan.to.bundle_digest, &tmp.path().join("p"))?;
    let undo = migrations_to_undo(site, &mv, &plan.from, &tmp.path().join("v"))?;
    let install_pb = load_if_present(&tmp.path().join("p/playbooks"), "install.yml")?;
    Ok(Prepared {
        plan,
        mv,
        mp,
        undo,
        install_pb,
        _tmp: tmp,
    })
}

fn plan_report(site: &Site, p: &Prepared) -> RollbackPlanReport {
    RollbackPlanReport {
        product: p.plan.product.clone(),
        from: p.plan.from.version.clone(),
        to: p.plan.to.version.clone(),
        resuming: p.plan.resuming,
        migrations: p
            .undo
            .iter()
            .map(|(s, _)| UndoStep {
                id: s.id.clone(),
                rollback: s.rollback.clone(),
                backup: s.backup.clone(),
            })
            .collect(),
        playbook: p.install_pb.as_ref().map(|_| "install.yml".to_string()),
        nodes: site.nodes.iter().map(|n| n.name.clone()).collect(),
    }
}

pub fn rollback(
    o: &RollbackOptions,
    rep: &dyn SiteReporter,
) -> anyhow::Result<Outcome<RollbackReport>> {
    let extra_vars = crate::ops::run::parse_extra_vars(&o.extra_vars)?;
    let mut site = Site::open_all(&o.site, "rollback")?;
    site.warn_inventory(rep);
    let prep = prepare(&site)?;
    if o.plan {
        return Ok(Outcome::ok(RollbackReport::Plan(plan_report(&site, &prep))));
    }
    let (v, p) = (&prep.plan.from, &prep.plan.to);
    rep.line(&format!(
        "rollback {} {} -> {}",
        prep.plan.product, v.version, p.version
    ));
    let r = locked(&mut site, "rollback", |site| {
        run_rollback(site, &prep, extra_vars, rep)
    })?;
    let failed = site.failures();
    let report = RollbackReport::Done(RollbackDone {
        ok: r.is_ok() && failed.is_empty(),
        from: v.version.clone(),
        to: p.version.clone(),
        migrations_undone: prep.undo.iter().map(|(s, _)| s.id.clone()).collect(),
        nodes: site
            .nodes
            .iter()
            .map(|n| NodeOutcome {
                host: n.name.clone(),
                ok: n.error.is_none(),
                error: n.error.clone(),
            })
            .collect(),
        deploy: site.deploy_report.clone(),
        error: r.as_ref().err().map(|e| format!("{e:#}")),
    });
    let error = match r {
        Err(e) => Some(e),
        Ok(()) if !failed.is_empty() => Some(site.op_error(format!(
            "rollback to {} did not finish on: {}; run the same command again (it resumes)",
            p.version,
            failed.join("; ")
        ))),
        Ok(()) => {
            let ca_dir = o.ca_dir.clone().unwrap_or_else(|| o.site.default_ca_dir());
            let checked = registries_answer(&site, &ca_dir);
            if checked.is_ok() {
                rep.line(&format!(
                    "site rolled back to {} {}",
                    prep.plan.product, p.version
                ));
            }
            checked.err()
        }
    };
    Ok(Outcome { report, error })
}

/// Every registry host answers `/v2/` (checked when the site CA is at hand).
fn registries_answer(site: &Site, ca_dir: &Path) -> anyhow::Result<()> {
    let Ok(ca) = std::fs::read(ca_dir.join(tls::CA_CERT)) else {
        return Ok(());
    };
    for n in site.nodes.iter().filter(|n| n.registry) {
        client::check_v2(&n.registry_addr, &ca, Duration::from_secs(3)).with_context(|| {
            format!(
                "after the rollback, the registry on {} does not answer",
                n.name
            )
        })?;
    }
    Ok(())
}

fn run_rollback(
    site: &mut Site,
    prep: &Prepared,
    extra_vars: Map<String, Value>,
    rep: &dyn SiteReporter,
) -> anyhow::Result<()> {
    let forks = site.forks;
    let (v, p) = (&prep.plan.from, &prep.plan.to);
    par(
        &mut site.nodes,
        forks,
        |_| true,
        |n| {
            let st = n.state.as_mut().expect("state read");
            st.begin_operation("rollback", &p.version, p.bundle_digest)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            write_state(n)
        },
    );
    site.check_all("starting the rollback")?;

    // 1. Each migration undone, newest first.
    let (registries, images) = site_images(site, &prep.mv);
    let mut vvars = playbook_vars(
        v.bundle_digest,
        &prep.mv,
        &registries,
        images,
        extra_vars.clone(),
    );
    vvars.insert("darkport_rollback_to".into(), json!(p.version));
    for (spec, pb) in &prep.undo {
        undo_migration(site, spec, pb, &vvars, v, rep)?;
        restore_backups(site, spec, rep)?;
    }
    // 2. P's tags on every registry host (an upgrade may have re-pointed a shared tag).
    restore_tags(site, &prep.mp, p, rep)?;
    // 3. P's install playbook re-points the services at P's images.
    if let Some(pb) = &prep.install_pb {
        let (registries, images) = site_images(site, &prep.mp);
        let pvars = playbook_vars(p.bundle_digest, &prep.mp, &registries, images, extra_vars);
        rep.line(&format!("running install.yml of {}", p.version));
        run_step_playbook(
            site,
            pb,
            &pvars,
            "playbook",
            &format!("install.yml of {}", p.version),
            |n| not_finished(n, "playbook"),
            rep,
        );
    }
    // 3b. A compose product: P's kept files deployed again (a Swarm rolls the services back).
    if !prep.mp.compose.is_empty() {
        let project = crate::ops::deploy::project_name(&prep.mp.product);
        crate::ops::deploy::redeploy(site, &project, &p.version, rep)?;
    }
    // 4. Recorded where everything finished.
    par(
        &mut site.nodes,
        forks,
        |_| true,
        |n| {
            n.state
                .as_mut()
                .expect("state read")
                .complete_rollback(&prep.plan.product, v.bundle_digest);
            write_state(n)
        },
    );
    Ok(())
}

/// The rollback playbook of one migration: once per site on the first node, or on every node
/// that applied the migration.
fn undo_migration(
    site: &mut Site,
    spec: &MigrationSpec,
    pb: &Playbook,
    vars: &Map<String, Value>,
    v: &Installed,
    rep: &dyn SiteReporter,
) -> anyhow::Result<()> {
    let applied_here = |n: &Node| {
        n.state.as_ref().is_some_and(|s| {
            s.migrations
                .iter()
                .any(|m| m.id == spec.id && m.bundle_digest == v.bundle_digest)
        })
    };
    let step = format!("rollback:{}", spec.id);
    let targets: Vec<String> = match spec.scope {
        Scope::Site => {
            if site.nodes.iter().any(|n| !not_finished(n, &step)) {
                vec![]
            } else {
                site.nodes
                    .iter()
                    .find(|n| n.selected && n.alive())
                    .map(|n| vec![n.name.clone()])
                    .unwrap_or_default()
            }
        }
        Scope::Node => site
            .nodes
            .iter()
            .filter(|n| n.selected && applied_here(n) && not_finished(n, &step))
            .map(|n| n.name.clone())
            .collect(),
    };
    if targets.is_empty() {
        return Ok(());
    }
    rep.line(&format!(
        "undo migration {}: {} on {}",
        spec.id,
        spec.rollback.as_deref().unwrap_or(""),
        targets.join(", ")
    ));
    let what = format!("the rollback of migration {}", spec.id);
    run_migration_playbook(site, pb, vars, spec, &step, &what, &targets, rep)
}

/// The backups of one migration moved back into place (a no-op on nodes that hold none).
fn restore_backups(
    site: &mut Site,
    spec: &MigrationSpec,
    rep: &dyn SiteReporter,
) -> anyhow::Result<()> {
    if spec.backup.is_empty() {
        return Ok(());
    }
    let forks = site.forks;
    let name = format!("restore:{}", spec.id);
    let script = restore_script(spec);
    let said = std::sync::Mutex::new(Vec::new());
    par(
        &mut site.nodes,
        forks,
        |n| n.selected && not_finished(n, &name),
        |n| {
            step(n, &name, |n| {
                let opts = ExecOpts {
                    become_: n.become_(),
                    ..Default::default()
                };
                let out = n.run_ok(
                    &format!("restoring the backups of migration {}", spec.id),
                    &script,
                    &opts,
                )?;
                let mut said = said.lock().unwrap();
                said.extend(out.lines().map(|l| format!("{}: {l}", n.name)));
                Ok(())
            })
        },
    );
    site.check_all(&format!("restoring the backups of {}", spec.id))?;
    for l in said.into_inner().unwrap() {
        rep.line(&format!("migration {}: {l}", spec.id));
    }
    Ok(())
}

/// Point the registry hosts' tags at the previous version's images again.
fn restore_tags(
    site: &mut Site,
    mp: &Manifest,
    p: &Installed,
    rep: &dyn SiteReporter,
) -> anyhow::Result<()> {
    if site.external.is_some() {
        return Ok(());
    }
    let mut repointed = Vec::new();
    for n in site.nodes.iter_mut().filter(|n| n.registry && n.alive()) {
        let mut changed = false;
        let r = step(n, "tags", |n| {
            let mut t = n.t();
            changed = merge_tags(&mut t, &n.name, &n.root, mp)?;
            Ok(())
        });
        if let Err(e) = r {
            n.fail(format!("{e:#}"));
        } else if changed {
            repointed.push(n.name.clone());
        }
    }
    site.check_all("restoring the previous version's tags")?;
    if !repointed.is_empty() {
        rep.line(&format!(
            "tags of {} restored on {}",
            p.version,
            repointed.join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::plan::Phase;
    use semver::Version;

    fn spec(path: &Path) -> MigrationSpec {
        MigrationSpec {
            id: "0001-x".into(),
            playbook: "migrations/0001-x.yml".into(),
            version: Version::new(1, 1, 0),
            scope: Scope::Node,
            phase: Phase::Before,
            rerunnable: false,
            backup: vec![path.to_str().unwrap().into()],
            rollback: Some("rollback/0001-x.yml".into()),
        }
    }

    fn sh(script: &str) {
        let st = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .status()
            .unwrap();
        assert!(st.success());
    }

    #[test]
    fn restore_moves_the_backup_back_and_survives_an_interruption() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("data");
        let backup = d.path().join("data.darkport-backup-0001-x");
        let aside = d.path().join("data.darkport-rollback-0001-x");
        let script = restore_script(&spec(&data));
        // Plain case: the backup replaces the migrated data, nothing is left beside it.
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("coins"), "{\"coins\": 4}\n").unwrap();
        std::fs::create_dir_all(&backup).unwrap();
        std::fs::write(backup.join("coins"), "4\n").unwrap();
        sh(&script);
        assert_eq!(std::fs::read_to_string(data.join("coins")).unwrap(), "4\n");
        assert!(!backup.exists() && !aside.exists());
        // Run again (a resumed rollback): nothing changes.
        sh(&script);
        assert_eq!(std::fs::read_to_string(data.join("coins")).unwrap(), "4\n");
        // Interrupted after the current data was moved aside: the re-run completes it.
        std::fs::rename(&data, &backup).unwrap();
        std::fs::create_dir_all(&aside).unwrap();
        std::fs::write(aside.join("coins"), "migrated\n").unwrap();
        sh(&script);
        assert_eq!(std::fs::read_to_string(data.join("coins")).unwrap(), "4\n");
        assert!(!backup.exists() && !aside.exists());
    }

    /// A path the migration created (absent before it) is absent again after the rollback.
    #[test]
    fn a_path_absent_before_the_migration_is_removed_again() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("new/data");
        let s = spec(&data);
        let marker = d.path().join("new/data.darkport-absent-0001-x");
        sh(&crate::ops::migrate::backup_script(&s));
        assert!(marker.exists() && !data.exists());
        // The migration creates the path; a re-run of the backup does not take it for the
        // original.
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("coins"), "migrated\n").unwrap();
        sh(&crate::ops::migrate::backup_script(&s));
        assert!(!d.path().join("new/data.darkport-backup-0001-x").exists());
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(restore_script(&s))
            .output()
            .unwrap();
        assert!(out.status.success());
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            said.contains("it did not exist before the migration"),
            "{said}"
        );
        assert!(!data.exists() && !marker.exists());
        // Neither a backup nor a marker: said plainly, the path left alone.
        std::fs::create_dir_all(&data).unwrap();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(restore_script(&s))
            .output()
            .unwrap();
        assert!(String::from_utf8_lossy(&out.stdout).contains("as is: no backup of it was taken"));
        assert!(data.exists());
    }

    /// A `cp` first on PATH that fails (as it does when the product renames a file while the
    /// tree is copied) the first `fails` times, then runs the real one.
    fn flaky_cp(dir: &Path, fails: u32) -> String {
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let count = dir.join("cp-calls");
        std::fs::write(
            bin.join("cp"),
            format!(
                "#!/bin/sh\nn=$(cat {c} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {c}\n\
                 if [ $n -le {fails} ]; then echo \"cp: cannot stat 'x.tmp': No such file or directory\" >&2; exit 1; fi\n\
                 exec /bin/cp \"$@\"\n",
                c = count.display()
            ),
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(bin.join("cp"), std::fs::Permissions::from_mode(0o755)).unwrap();
        format!("PATH={}:$PATH\n", bin.display())
    }

    /// The backup is taken while the product may still write the directory: a copy that
    /// fails because a file vanished is taken again, and the backup is complete.
    #[test]
    fn a_backup_that_races_a_writer_is_taken_again() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("coins"), "7\n").unwrap();
        let s = spec(&data);
        sh(&(flaky_cp(d.path(), 2) + &crate::ops::migrate::backup_script(&s)));
        let backup = d.path().join("data.darkport-backup-0001-x");
        assert_eq!(
            std::fs::read_to_string(backup.join("coins")).unwrap(),
            "7\n"
        );
        assert!(!d.path().join("data.darkport-backup-0001-x.tmp").exists());
    }

    /// A copy that keeps failing fails the step with cp's own words and leaves no half copy.
    #[test]
    fn a_backup_that_keeps_failing_says_why_and_leaves_nothing_half_done() {
        let d = tempfile::tempdir().unwrap();
        let data = d.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let s = spec(&data);
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(flaky_cp(d.path(), 99) + &crate::ops::migrate::backup_script(&s))
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot stat 'x.tmp'"));
        assert_eq!(
            std::fs::read_to_string(d.path().join("cp-calls"))
                .unwrap()
                .trim(),
            "5"
        );
        assert!(!d.path().join("data.darkport-backup-0001-x").exists());
        assert!(!d.path().join("data.darkport-backup-0001-x.tmp").exists());
    }
}
