//! `darkport prune`: remove from every node what neither the current nor the previous
//! version needs: CAS blobs, bundle directories, stale `.part` uploads, and tags pointing
//! elsewhere. The kept versions are those each node's `state.json` records; their manifests are
//! read from the node's own `bundles/<id>/` (checked against the recorded digest).

use crate::digest::Digest;
use crate::ops::kept::read_manifest;
use crate::ops::seed::{image_tag, read_tags, write_tags};
use crate::ops::site::journal::locked;
use crate::ops::site::{par, Node, Site, SiteOptions};
use crate::ops::Outcome;
use crate::report::site::{PruneReport, PruneRow};
use crate::transport::{shell_quote, ExecOpts, Transport};
use anyhow::bail;
use std::collections::BTreeSet;
use std::sync::Mutex;

/// `darkport prune`.
pub struct PruneOptions {
    pub site: SiteOptions,
    /// Report what would go without removing anything.
    pub dry_run: bool,
}

/// Refuse while an install, upgrade or rollback is unfinished on some node.
pub(crate) fn refuse_if_busy(site: &Site) -> anyhow::Result<()> {
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
    Ok(())
}

/// Remove from every node what neither its current nor its previous version needs.
pub fn prune(o: &PruneOptions) -> anyhow::Result<Outcome<PruneReport>> {
    let mut site = Site::open_all(&o.site, "prune")?;
    refuse_if_busy(&site)?;
    let rows: Vec<Mutex<PruneRow>> = site
        .nodes
        .iter()
        .map(|n| {
            Mutex::new(PruneRow {
                host: n.name.clone(),
                registry: n.registry,
                ..Default::default()
            })
        })
        .collect();
    let names: Vec<String> = site.nodes.iter().map(|n| n.name.clone()).collect();
    let forks = site.forks;
    let dry = o.dry_run;
    locked(&mut site, "prune", |site| {
        par(
            &mut site.nodes,
            forks,
            |_| true,
            |n| {
                let i = names
                    .iter()
                    .position(|h| h == &n.name)
                    .expect("node of the site");
                let row = prune_node(n, dry)?;
                let mut g = rows[i].lock().expect("prune row");
                *g = PruneRow {
                    host: g.host.clone(),
                    registry: g.registry,
                    ..row
                };
                Ok(())
            },
        )
    })?;
    let mut rows: Vec<PruneRow> = rows
        .into_iter()
        .map(|m| m.into_inner().expect("prune row"))
        .collect();
    for (r, n) in rows.iter_mut().zip(&site.nodes) {
        r.error = n.error.clone();
    }
    let ok = rows.iter().all(|r| r.error.is_none());
    let report = PruneReport {
        warnings: site.warnings(),
        ok,
        dry_run: dry,
        nodes: rows,
    };
    Ok(if ok {
        Outcome::ok(report)
    } else {
        Outcome::failed(
            report,
            site.op_error(
                "prune did not finish on every node (see above); nothing it needs was removed"
                    .into(),
            ),
        )
    })
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
        let dir = n.layout().bundle_dir(id);
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
            let (repo, tag) = image_tag(&i.name);
            keep_tags.insert((repo.to_string(), tag.to_string()));
            keep_blobs.extend(i.blobs.iter().copied());
        }
    }
    // What is there: one line per CAS file and per bundle directory, with its size.
    let list = n.run_ok(
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
        let (idx_path, _, mut idx) = read_tags(&mut t, &n.name, &root)?;
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
            write_tags(&mut t, &idx_path, &idx)?;
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
