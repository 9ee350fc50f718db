//! `darkport rollback` and `darkport prune`.
//!
//! Rollback undoes the last finished upgrade of a site, from version V back to the `previous`
//! version P each node recorded. Everything it needs is on the nodes: each holds the signed
//! manifest and the playbooks of the bundles it received under `<root>/bundles/<id>/`, and
//! the manifests fetched from there are checked against the bundle digests in `state.json`.
//! Journaled as an operation `rollback` to P (a re-run resumes), in this order:
//! 1. for each migration V's upgrade applied, newest first: its `rollback` playbook (from V's
//!    bundle), then its backups moved back (`<path>.darkport-backup-<id>` → `<path>`, the
//!    current data kept as `<path>.darkport-rollback-<id>` until the move succeeded);
//! 2. the registry hosts' tag index points P's tags at P's images again;
//! 3. P's `install.yml` runs with P's `darkport_registry`/`darkport_images`/…;
//! 4. each node records P as its version, no previous, and drops V's migrations.
//!
//! Prune removes from every node what neither the current nor the previous version needs:
//! CAS blobs, bundle directories, stale `.part` uploads, and tags pointing elsewhere.

use crate::bundle::Manifest;
use crate::cli::site::{PruneArgs, RollbackArgs, SiteArgs};
use crate::digest::Digest;
use crate::ops::install::{self, par, Node, Site};
use crate::ops::upgrade::migration_spec;
use crate::playbook::model::Playbook;
use crate::registry::tls;
use crate::state::plan::{MigrationSpec, Scope};
use crate::state::{Installed, LockOwner, StepStatus};
use crate::transport::{shell_quote, ExecOpts, Transport};
use crate::ui::{bytes, site::SitePrinter, ProgressMode};
use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// Connect to every node and read its state; any unreachable node or unreadable state stops
/// the command before anything changed.
fn open_site(a: &SiteArgs, what: &str) -> anyhow::Result<Site> {
    let mut site = Site::load(a)?;
    site.connect();
    site.read_states();
    let bad: Vec<String> = site
        .nodes
        .iter()
        .filter_map(|n| n.error.as_ref().map(|e| format!("{}: {e}", n.name)))
        .collect();
    if !bad.is_empty() {
        bail!(
            "{what} refused: nothing was changed on any node\n  {}",
            bad.join("\n  ")
        );
    }
    Ok(site)
}

/// Fetch `<root>/bundles/<id>/` (manifest and playbooks) from a node into `dest`; the
/// manifest must hash to `id`.
fn fetch_bundle(n: &Node, id: &Digest, dest: &Path) -> anyhow::Result<Manifest> {
    let dir = install::bundle_dir_of(&n.root, id);
    let mut t = n.t();
    let out = t.exec(
        &format!(
            "cd {} && tar -cf - darkport.json $(test -d playbooks && echo playbooks)",
            shell_quote(&dir)
        ),
        &ExecOpts::default(),
    )?;
    if !out.success() {
        bail!(
            "{}: the bundle {} is not kept in {dir}: {}",
            n.name,
            id.short(),
            out.stderr_str().trim()
        );
    }
    std::fs::create_dir_all(dest)?;
    tar::Archive::new(&out.stdout[..])
        .unpack(dest)
        .with_context(|| format!("unpacking {dir} from {}", n.name))?;
    let m = read_manifest(
        &n.name,
        &dir,
        &std::fs::read(dest.join("darkport.json"))?,
        id,
    )?;
    // The playbooks are those the manifest names, byte for byte, and nothing else.
    let mut found = BTreeSet::new();
    list_files(&dest.join("playbooks"), "", &mut found)?;
    for e in &m.playbooks {
        let (d, _) = Digest::of_file(&dest.join("playbooks").join(&e.path))
            .with_context(|| format!("{}: {dir}/playbooks/{} is missing", n.name, e.path))?;
        if d != e.sha256 {
            bail!(
                "{}: {dir}/playbooks/{} does not match its manifest",
                n.name,
                e.path
            );
        }
        found.remove(&e.path);
    }
    if let Some(extra) = found.first() {
        bail!(
            "{}: {dir}/playbooks/{extra} is not in the bundle's manifest",
            n.name
        );
    }
    Ok(m)
}

/// Relative paths of the files below `dir` (none when it does not exist).
fn list_files(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) -> anyhow::Result<()> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd {
        let e = e?;
        let name = format!("{prefix}{}", e.file_name().to_string_lossy());
        if e.file_type()?.is_dir() {
            list_files(&e.path(), &format!("{name}/"), out)?;
        } else {
            out.insert(name);
        }
    }
    Ok(())
}

fn read_manifest(host: &str, dir: &str, data: &[u8], id: &Digest) -> anyhow::Result<Manifest> {
    if Digest::of(data) != *id {
        bail!("{host}: {dir}/darkport.json does not match the bundle digest its state records");
    }
    serde_json::from_slice(data).with_context(|| format!("{host}: {dir}/darkport.json"))
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
        let pb = Playbook::load(&pbdir.join(rel))?;
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
        let rpb = Playbook::load(&path)?;
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
/// the move succeeded. Safe to run again after an interruption.
fn restore_script(spec: &MigrationSpec) -> String {
    let mut s = String::from("set -e\n");
    for p in &spec.backup {
        let q = shell_quote(p);
        let b = shell_quote(&format!("{p}.darkport-backup-{}", spec.id));
        let aside = shell_quote(&format!("{p}.darkport-rollback-{}", spec.id));
        s.push_str(&format!(
            "if [ -e {b} ]; then\n  if [ -e {q} ] || [ -L {q} ]; then rm -rf {aside}; mv {q} {aside}; fi\n  mv {b} {q}\nfi\nrm -rf {aside}\n"
        ));
    }
    s
}

fn not_finished(n: &Node, step: &str) -> bool {
    n.state.as_ref().and_then(|s| s.step_status(step)) != Some(StepStatus::Finished)
}

pub fn rollback(a: &RollbackArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    let pr = SitePrinter::new(if a.site.json || a.plan {
        ProgressMode::Quiet
    } else {
        progress
    });
    let extra_vars = crate::ops::run::parse_extra_vars(&a.extra_vars)?;
    let mut site = open_site(&a.site, "rollback")?;
    let plan = check_rollback(&site)?;
    let (v, p) = (plan.from.clone(), plan.to.clone());
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let first = site
        .nodes
        .iter()
        .find(|n| n.selected)
        .unwrap_or(&site.nodes[0]);
    let mv = fetch_bundle(first, &v.bundle_digest, &tmp.path().join("v"))?;
    let mp = fetch_bundle(first, &p.bundle_digest, &tmp.path().join("p"))?;
    let undo = migrations_to_undo(&site, &mv, &v, &tmp.path().join("v"))?;
    let install_yml = tmp.path().join("p/playbooks/install.yml");
    let install_pb = if install_yml.is_file() {
        Some(Playbook::load(&install_yml)?)
    } else {
        None
    };
    let ids: Vec<String> = undo.iter().map(|(s, _)| s.id.clone()).collect();
    if a.plan {
        if a.site.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&json!({
                    "from": v.version, "to": p.version, "resuming": plan.resuming,
                    "migrations": undo.iter().map(|(s, _)| json!({"id": s.id, "rollback": s.rollback, "backup": s.backup})).collect::<Vec<_>>(),
                    "playbook": install_pb.as_ref().map(|_| "install.yml"),
                    "nodes": site.nodes.iter().map(|n| n.name.clone()).collect::<Vec<_>>(),
                }))?
            );
        } else {
            println!(
                "rollback {} {} -> {}{}",
                plan.product,
                v.version,
                p.version,
                if plan.resuming { " (resuming)" } else { "" }
            );
            for (s, _) in &undo {
                println!(
                    "  undo       {} (playbook {}, restore {})",
                    s.id,
                    s.rollback.as_deref().unwrap_or("-"),
                    if s.backup.is_empty() {
                        "nothing".to_string()
                    } else {
                        s.backup.join(", ")
                    }
                );
            }
            println!(
                "  playbook   {} of {}",
                if install_pb.is_some() {
                    "install.yml"
                } else {
                    "(none)"
                },
                p.version
            );
        }
        return Ok(0);
    }
    pr.line(&format!(
        "rollback {} {} -> {}",
        plan.product, v.version, p.version
    ));
    let me = LockOwner::this_process("rollback");
    install::lock_all(&mut site, &me)?;
    let r = run_rollback(
        &mut site,
        &plan,
        &mv,
        &mp,
        &undo,
        install_pb.as_ref(),
        extra_vars,
        &pr,
    );
    install::unlock_all(&mut site, &me);
    let ca_dir = a
        .ca_dir
        .clone()
        .unwrap_or_else(|| install::default_ca_dir(&a.site));
    let ca_pem = std::fs::read(ca_dir.join(tls::CA_CERT)).ok();
    let failed: Vec<String> = site
        .nodes
        .iter()
        .filter_map(|n| n.error.as_ref().map(|e| format!("{}: {e}", n.name)))
        .collect();
    if a.site.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "ok": r.is_ok() && failed.is_empty(), "from": v.version, "to": p.version,
                "migrations_undone": ids,
                "nodes": site.nodes.iter().map(|n| json!({"host": n.name, "ok": n.error.is_none(), "error": n.error})).collect::<Vec<_>>(),
                "error": r.as_ref().err().map(|e| format!("{e:#}")),
            }))?
        );
    }
    r?;
    if !failed.is_empty() {
        bail!(
            "rollback to {} did not finish on: {}; run the same command again (it resumes)",
            p.version,
            failed.join("; ")
        );
    }
    if let Some(ca) = &ca_pem {
        for n in site.nodes.iter().filter(|n| n.registry) {
            install::check_registry(&n.registry_addr, ca, Duration::from_secs(3)).with_context(
                || {
                    format!(
                        "after the rollback, the registry on {} does not answer",
                        n.name
                    )
                },
            )?;
        }
    }
    pr.line(&format!(
        "site rolled back to {} {}",
        plan.product, p.version
    ));
    Ok(0)
}

#[allow(clippy::too_many_arguments)]
fn run_rollback(
    site: &mut Site,
    plan: &RollbackPlan,
    mv: &Manifest,
    mp: &Manifest,
    undo: &[(MigrationSpec, Playbook)],
    install_pb: Option<&Playbook>,
    extra_vars: serde_json::Map<String, Value>,
    pr: &SitePrinter,
) -> anyhow::Result<()> {
    let forks = site.forks;
    let (v, p) = (&plan.from, &plan.to);
    par(
        &mut site.nodes,
        forks,
        |_| true,
        |n| {
            let st = n.state.as_mut().expect("state read");
            st.begin_operation("rollback", &p.version, p.bundle_digest)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            install::write_state(n)
        },
    );
    bail_on_errors(site, "starting the rollback")?;

    let (registries, images) = install::site_images(site, mv);
    let mut vvars =
        install::playbook_vars(v.bundle_digest, mv, &registries, images, extra_vars.clone());
    vvars.insert("darkport_rollback_to".into(), json!(p.version));
    for (spec, pb) in undo {
        let applied_here = |n: &Node| {
            n.state.as_ref().is_some_and(|s| {
                s.migrations
                    .iter()
                    .any(|m| m.id == spec.id && m.bundle_digest == v.bundle_digest)
            })
        };
        // 1a. The rollback playbook: once per site on the first node, or on every node
        // that applied the migration.
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
        if !targets.is_empty() {
            pr.line(&format!(
                "undo migration {}: {} on {}",
                spec.id,
                spec.rollback.as_deref().unwrap_or(""),
                targets.join(", ")
            ));
            let what = format!("the rollback of migration {}", spec.id);
            install::run_migration_playbook(site, pb, &vvars, spec, &step, &what, &targets)?;
        }
        // 1b. Its backups back into place (a no-op on nodes that hold none).
        if !spec.backup.is_empty() {
            let step = format!("restore:{}", spec.id);
            let script = restore_script(spec);
            par(
                &mut site.nodes,
                forks,
                |n| n.selected && not_finished(n, &step),
                |n| {
                    install::step(n, &step, |n| {
                        let mut t = n.t();
                        install::run_ok(
                            &mut t,
                            &n.name,
                            &format!("restoring the backups of migration {}", spec.id),
                            &script,
                            &ExecOpts {
                                become_: install::become_for(n),
                                ..Default::default()
                            },
                        )?;
                        Ok(())
                    })
                },
            );
            bail_on_errors(site, &format!("restoring the backups of {}", spec.id))?;
            pr.line(&format!(
                "migration {}: restored {}",
                spec.id,
                spec.backup.join(", ")
            ));
        }
    }

    // 2. P's tags on every registry host (an upgrade may have re-pointed a shared tag).
    if site.external.is_none() {
        let mut repointed = Vec::new();
        for n in site.nodes.iter_mut().filter(|n| n.registry && n.alive()) {
            let mut changed = false;
            let r = install::step(n, "tags", |n| {
                let mut t = n.t();
                changed = install::merge_tags(&mut t, &n.name, &n.root, mp)?;
                Ok(())
            });
            if let Err(e) = r {
                n.fail(format!("{e:#}"));
            } else if changed {
                repointed.push(n.name.clone());
            }
        }
        bail_on_errors(site, "restoring the previous version's tags")?;
        if !repointed.is_empty() {
            pr.line(&format!(
                "tags of {} restored on {}",
                p.version,
                repointed.join(", ")
            ));
        }
    }

    // 3. P's install playbook re-points the services at P's images.
    if let Some(pb) = install_pb {
        let (registries, images) = install::site_images(site, mp);
        let pvars = install::playbook_vars(p.bundle_digest, mp, &registries, images, extra_vars);
        pr.line(&format!("running install.yml of {}", p.version));
        install::run_step_playbook(
            site,
            pb,
            &pvars,
            "playbook",
            &format!("install.yml of {}", p.version),
            |n| not_finished(n, "playbook"),
        );
    }

    // 4. Recorded where everything finished.
    par(
        &mut site.nodes,
        forks,
        |_| true,
        |n| {
            n.state
                .as_mut()
                .unwrap()
                .complete_rollback(&plan.product, v.bundle_digest);
            install::write_state(n)
        },
    );
    Ok(())
}

fn bail_on_errors(site: &Site, what: &str) -> anyhow::Result<()> {
    let bad: Vec<String> = site
        .nodes
        .iter()
        .filter_map(|n| n.error.as_ref().map(|e| format!("{}: {e}", n.name)))
        .collect();
    if bad.is_empty() {
        Ok(())
    } else {
        bail!(
            "{what} failed: {}; run the same command again (it resumes)",
            bad.join("; ")
        )
    }
}

/// What prune removed (or, with `--dry-run`, would remove) on one node.
#[derive(Debug, Default, Serialize)]
pub struct PruneRow {
    pub host: String,
    pub registry: bool,
    pub blobs: usize,
    pub partial_uploads: usize,
    pub bundle_dirs: usize,
    pub tags: usize,
    pub bytes: u64,
    pub error: Option<String>,
}

pub fn prune(a: &PruneArgs) -> anyhow::Result<i32> {
    let mut site = open_site(&a.site, "prune")?;
    let busy: Vec<String> = site
        .nodes
        .iter()
        .filter_map(|n| {
            let op = n.state.as_ref()?.operation.as_ref()?;
            Some(format!(
                "{}: an unfinished {} to {} is in progress since {}",
                n.name, op.action, op.to, op.started_at
            ))
        })
        .collect();
    if !busy.is_empty() {
        bail!(
            "prune refused: nothing was changed on any node\n  {}",
            busy.join("\n  ")
        );
    }
    let me = LockOwner::this_process("prune");
    install::lock_all(&mut site, &me)?;
    let rows: Vec<std::sync::Mutex<PruneRow>> = site
        .nodes
        .iter()
        .map(|n| {
            std::sync::Mutex::new(PruneRow {
                host: n.name.clone(),
                registry: n.registry,
                ..Default::default()
            })
        })
        .collect();
    let names: Vec<String> = site.nodes.iter().map(|n| n.name.clone()).collect();
    let forks = site.forks;
    let dry = a.dry_run;
    par(
        &mut site.nodes,
        forks,
        |_| true,
        |n| {
            let i = names.iter().position(|h| h == &n.name).unwrap();
            let row = prune_node(n, dry)?;
            let mut g = rows[i].lock().unwrap();
            *g = PruneRow {
                host: g.host.clone(),
                registry: g.registry,
                ..row
            };
            Ok(())
        },
    );
    install::unlock_all(&mut site, &me);
    let mut rows: Vec<PruneRow> = rows.into_iter().map(|m| m.into_inner().unwrap()).collect();
    for (r, n) in rows.iter_mut().zip(&site.nodes) {
        r.error = n.error.clone();
    }
    let ok = rows.iter().all(|r| r.error.is_none());
    if a.site.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"ok": ok, "dry_run": dry, "nodes": rows}))?
        );
    } else {
        let verb = if dry { "would free" } else { "freed" };
        for r in &rows {
            match &r.error {
                Some(e) => println!("{:<16} FAILED: {e}", r.host),
                None => println!(
                    "{:<16} {verb} {} ({} blob(s), {} partial upload(s), {} bundle dir(s), {} tag(s))",
                    r.host,
                    bytes(r.bytes),
                    r.blobs,
                    r.partial_uploads,
                    r.bundle_dirs,
                    r.tags
                ),
            }
        }
    }
    if !ok {
        bail!("prune did not finish on every node (see above); nothing it needs was removed");
    }
    Ok(0)
}

/// Shell function `sz PATH`: bytes of the regular files in PATH (a file or a directory).
const SIZE_FN: &str =
    "sz() { find \"$1\" -type f -exec stat -c %s {} + | awk '{s+=$1} END {print s+0}'; }\n";

/// Prune one node: keep what the manifests of its current and previous bundles name.
fn prune_node(n: &mut Node, dry: bool) -> anyhow::Result<PruneRow> {
    let root = n.root.trim_end_matches('/').to_string();
    let st = n.state.clone().unwrap_or_default();
    let kept_ids: Vec<Digest> = st
        .bundle_digest
        .into_iter()
        .chain(st.previous.as_ref().map(|p| p.bundle_digest))
        .collect();
    let mut t = n.t();
    let mut keep_blobs: BTreeSet<Digest> = BTreeSet::new();
    let mut keep_manifests: BTreeSet<Digest> = BTreeSet::new();
    let mut keep_tags: BTreeSet<(String, String)> = BTreeSet::new();
    for id in &kept_ids {
        let dir = install::bundle_dir_of(&root, id);
        let out = t.exec(
            &format!("cat {}/darkport.json", shell_quote(&dir)),
            &ExecOpts::default(),
        )?;
        if !out.success() {
            bail!(
                "the manifest of bundle {} (a version in use) is missing from {dir}: nothing pruned here",
                id.short()
            );
        }
        let m = read_manifest(&n.name, &dir, &out.stdout, id)?;
        for b in &m.blobs {
            keep_blobs.insert(b.digest);
        }
        for i in &m.images {
            keep_blobs.insert(i.digest);
            keep_manifests.insert(i.digest);
            let (repo, tag) = install::image_tag(&i.name);
            keep_tags.insert((repo.to_string(), tag.to_string()));
            keep_blobs.extend(i.blobs.iter().copied());
        }
    }
    // What is there: one line per CAS file and per bundle directory, with its size.
    let list = install::run_ok(
        &mut t,
        &n.name,
        "listing the blobs and bundles",
        &format!(
            "cd {} || exit 0\n{SIZE_FN}for f in blobs/sha256/* bundles/*; do [ -e \"$f\" ] && printf '%s %s\\n' \"$(sz \"$f\")\" \"$f\"; done; true",
            shell_quote(&root)
        ),
        &ExecOpts::default(),
    )?;
    let mut row = PruneRow::default();
    let mut doomed: Vec<String> = Vec::new();
    for line in list.lines() {
        let Some((size, path)) = line.split_once(' ') else {
            continue;
        };
        let size: u64 = size.parse().unwrap_or(0);
        let gone = if let Some(name) = path.strip_prefix("blobs/sha256/") {
            if name.ends_with(".part") {
                row.partial_uploads += 1;
                true
            } else {
                match Digest::from_hex(name) {
                    Ok(d) if !keep_blobs.contains(&d) => {
                        row.blobs += 1;
                        true
                    }
                    _ => false,
                }
            }
        } else if let Some(name) = path.strip_prefix("bundles/") {
            let keep = kept_ids.iter().any(|d| d.hex() == name);
            if !keep {
                row.bundle_dirs += 1;
            }
            !keep
        } else {
            false
        };
        if gone {
            row.bytes += size;
            doomed.push(path.to_string());
        }
    }
    // Tags first (so the registry never names a removed manifest), then the files. A tag
    // stays when a kept version names it and it points at that version's manifest.
    if n.registry {
        let (idx_path, _, mut idx) = install::read_tags(&mut t, &n.name, &root)?;
        for (name, repo) in idx.repositories.iter_mut() {
            let before = repo.tags.len();
            repo.tags.retain(|tag, e| {
                keep_manifests.contains(&e.digest)
                    && keep_tags.contains(&(name.clone(), tag.clone()))
            });
            row.tags += before - repo.tags.len();
        }
        idx.repositories.retain(|_, r| !r.tags.is_empty());
        if row.tags > 0 && !dry {
            install::write_tags(&mut t, &idx_path, &idx)?;
        }
    }
    if !dry && !doomed.is_empty() {
        // Each size is measured again right before its file goes.
        let mut input = doomed.join("\n");
        input.push('\n');
        let out = t.exec(
            &format!(
                "cd {} || exit 1\n{SIZE_FN}while IFS= read -r f; do [ -e \"$f\" ] || continue; s=$(sz \"$f\"); rm -rf -- \"$f\" && echo \"$s\"; done",
                shell_quote(&root)
            ),
            &ExecOpts {
                stdin: Some(input.into_bytes()),
                ..Default::default()
            },
        )?;
        if !out.success() {
            bail!(
                "removing files under {root} failed: {}",
                out.stderr_str().trim()
            );
        }
        row.bytes = out
            .stdout_str()
            .lines()
            .filter_map(|l| l.trim().parse::<u64>().ok())
            .sum();
    }
    Ok(row)
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
}
