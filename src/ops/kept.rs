//! The bundles a node keeps under `<root>/bundles/<id>/` (signed manifest and playbooks):
//! fetched back by rollback and read by prune, each checked against the digest the node's
//! state records.

use crate::bundle::Manifest;
use crate::digest::Digest;
use crate::ops::site::Node;
use crate::transport::{shell_quote, ExecOpts, Transport};
use anyhow::{bail, Context};
use std::collections::BTreeSet;
use std::path::Path;

/// Fetch `<root>/bundles/<id>/` (manifest and playbooks) from a node into `dest`; the
/// manifest must hash to `id`.
pub(crate) fn fetch_bundle(n: &Node, id: &Digest, dest: &Path) -> anyhow::Result<Manifest> {
    let dir = n.layout().bundle_dir(id);
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

pub(crate) fn read_manifest(
    host: &str,
    dir: &str,
    data: &[u8],
    id: &Digest,
) -> anyhow::Result<Manifest> {
    if Digest::of(data) != *id {
        bail!("{host}: {dir}/darkport.json does not match the bundle digest its state records");
    }
    serde_json::from_slice(data).with_context(|| format!("{host}: {dir}/darkport.json"))
}
