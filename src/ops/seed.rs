//! Steps 5 and 6 of an install or upgrade: the site registry seeded on its hosts (TLS from the
//! site CA, tag index, the service; later registry hosts copy their blobs from the first) or the
//! images pushed into an external registry; then every node's runtimes trust the CA.

use crate::bundle::{Bundle, Manifest};
use crate::digest::Digest;
use crate::node::service::{listen_addr, RegistryService};
use crate::node::{push, trust as node_trust};
use crate::ops::external::{self, External};
use crate::ops::site::journal::step;
use crate::ops::site::{par, Exe, Node, Shared, Site};
use crate::registry::{client, tls, RepoIndex};
use crate::report::bytes;
use crate::report::site::{PushReport, SiteReporter};
use crate::state;
use crate::transport::{shell_quote, ExecOpts, Transport};
use anyhow::{bail, Context};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

/// How long a starting registry may take to answer `/v2/`.
const REGISTRY_START: Duration = Duration::from_secs(20);

/// Certificates from the site CA, the tag index and the registry service on the first
/// registry host, then the later ones (their blobs copied from the first). Returns the CA.
pub(crate) fn seed_site(
    site: &mut Site,
    b: &Bundle,
    exe: &Exe,
    ca_dir: &Path,
    wanted: &BTreeSet<Digest>,
    rep: &dyn SiteReporter,
) -> anyhow::Result<Vec<u8>> {
    let m = b.manifest();
    let forks = site.forks;
    let primary_reg = site.primary_registry();
    let is_primary = |n: &Node| primary_reg.as_deref() == Some(n.name.as_str());
    let ca = tls::init_ca(ca_dir, "darkport site CA")
        .with_context(|| format!("creating or opening the site CA in {}", ca_dir.display()))?;
    if ca.created {
        rep.line(&format!(
            "created the site CA in {} (keep it and back it up)",
            ca_dir.display()
        ));
    }
    let ca_pem = std::fs::read(&ca.cert)?;
    let certs_tmp = tempfile::tempdir()?;
    let seed_step = |n: &mut Node| {
        step(n, "seed", |n| {
            seed(n, m, exe, ca_dir, &ca_pem, certs_tmp.path())
        })
    };
    par(&mut site.nodes, forks, |n| is_primary(n), seed_step);
    let primary_addr = site
        .nodes
        .iter()
        .find(|n| is_primary(n) && n.error.is_none())
        .map(|n| n.registry_addr.clone());
    par(
        &mut site.nodes,
        forks,
        |n| n.registry && !is_primary(n),
        |n| {
            step(n, "push", |n| {
                let from = primary_addr.as_deref();
                fetch_or_push(n, b, exe, wanted, from, &ca_pem, rep)
            })?;
            seed_step(n)
        },
    );
    if let Some(n) = site.nodes.iter().find(|n| n.registry && n.error.is_some()) {
        bail!(
            "seeding the registry on {} failed: {}",
            n.name,
            n.error.as_deref().unwrap_or("")
        );
    }
    let registries: Vec<String> = site
        .registries()
        .iter()
        .map(|n| n.registry_addr.clone())
        .collect();
    rep.line(&format!("site registry up at {}", registries.join(", ")));
    site.lap("seed");
    Ok(ca_pem)
}

/// A repository that serves each blob (the source registry answers per repository).
fn repo_of_blobs(m: &Manifest) -> BTreeMap<Digest, &str> {
    let mut repo_of: BTreeMap<Digest, &str> = BTreeMap::new();
    for i in &m.images {
        let repo = i.name.rsplit_once(':').map(|x| x.0).unwrap_or(&i.name);
        for d in &i.blobs {
            repo_of.entry(*d).or_insert(repo);
        }
    }
    repo_of
}

/// Copy `missing` from the registry at `from` with the node's darkport binary (`registry
/// fetch`, each digest checked).
fn fetch_from(
    n: &Node,
    m: &Manifest,
    exe: &Exe,
    missing: &[&Digest],
    from: &str,
    ca_pem: &[u8],
) -> anyhow::Result<crate::registry::fetch::FetchReport> {
    let mut t = n.t();
    let layout = n.layout();
    let ca = layout.fetch_ca();
    state::write_atomic(&mut t, &ca, ca_pem, 0o644)?;
    let mut cmd = format!(
        "{} registry fetch --root {} --from {} --ca {}",
        shell_quote(&layout.bin(&exe.digest)),
        shell_quote(layout.root()),
        shell_quote(from),
        shell_quote(&ca)
    );
    let repo_of = repo_of_blobs(m);
    for d in missing {
        let repo = repo_of
            .get(d)
            .with_context(|| format!("blob {d} belongs to no image"))?;
        cmd.push(' ');
        cmd.push_str(&shell_quote(&format!("{repo}@{d}")));
    }
    // As the uploads: the CAS belongs to the login user.
    let out = t.exec(&cmd, &ExecOpts::default())?;
    if !out.success() {
        bail!("{}", out.stderr_str().trim());
    }
    serde_json::from_slice(&out.stdout).context("fetch report")
}

/// A registry host after the first: copy the blobs it lacks from the first one (its darkport
/// binary fetches them over TLS, checking each digest); if that fails, push them from here.
fn fetch_or_push(
    n: &mut Node,
    b: &Bundle,
    exe: &Exe,
    wanted: &BTreeSet<Digest>,
    primary: Option<&str>,
    ca_pem: &[u8],
    rep: &dyn SiteReporter,
) -> anyhow::Result<()> {
    let present = n
        .probe
        .as_ref()
        .map(|p| p.blobs.clone())
        .unwrap_or_default();
    let all_missing: Vec<&Digest> = wanted.iter().filter(|d| !present.contains(d)).collect();
    let mut report = PushReport {
        host: n.name.clone(),
        blobs_present: wanted.len() - all_missing.len(),
        ..Default::default()
    };
    // The registry serves image blobs only: the bundle's SBOM documents (and any other blob
    // of no image) go from here, the images' blobs are copied inside the site.
    let repo_of = repo_of_blobs(b.manifest());
    let (missing, own): (Vec<&Digest>, Vec<&Digest>) = all_missing
        .into_iter()
        .partition(|d| repo_of.contains_key(*d));
    let own: BTreeSet<Digest> = own.into_iter().copied().collect();
    if !own.is_empty() {
        let bin = n.layout().bin(&exe.digest);
        let mut t = n.t();
        let r = push::push_missing(&mut t, &n.root, &own, &present, b, &(), Some(&bin))?;
        report.blobs_sent = r.blobs_sent;
        report.bytes_sent = r.bytes_sent;
        report.bytes_resumed = r.bytes_resumed;
    }
    if !missing.is_empty() {
        let fetched = match primary {
            None => Err(anyhow::anyhow!("the first registry host is not serving")),
            Some(from) => fetch_from(n, b.manifest(), exe, &missing, from, ca_pem)
                .map(|r| (from.to_string(), r)),
        };
        match fetched {
            Ok((from, r)) => {
                report.fetched_from = Some(from);
                report.blobs_fetched = r.fetched;
                report.bytes_fetched = r.bytes;
            }
            Err(e) => {
                rep.line(&format!(
                    "{}: copying from the first registry host failed ({e:#}); sending the blobs from here",
                    n.name
                ));
                report.fetch_error = Some(format!("{e:#}"));
                let bin = n.layout().bin(&exe.digest);
                let mut t = n.t();
                let have: BTreeSet<Digest> = present.union(&own).copied().collect();
                let r = push::push_missing(&mut t, &n.root, wanted, &have, b, &(), Some(&bin))?;
                report.blobs_sent += r.blobs_sent;
                report.bytes_sent += r.bytes_sent;
                report.bytes_resumed += r.bytes_resumed;
            }
        }
    }
    n.push = Some(report);
    Ok(())
}

/// With `registry: {external: URL}`: the images pushed into that registry from here (nothing
/// seeded on the nodes). Returns its CA, if one was given, for the nodes to trust.
pub(crate) fn push_external(
    site: &mut Site,
    b: &Bundle,
    ext: &External,
    rep: &dyn SiteReporter,
) -> anyhow::Result<Option<Vec<u8>>> {
    let r = external::push(b, b.manifest(), ext, &|l| rep.line(l))
        .with_context(|| format!("pushing the images into {}", ext.address()))?;
    rep.line(&format!(
        "external registry {}: {} blob(s) sent ({}), {} mounted, {} already there, {} manifest(s)",
        r.registry,
        r.blobs_sent,
        bytes(r.bytes_sent),
        r.blobs_mounted,
        r.blobs_present,
        r.manifests
    ));
    site.external_report = Some(r);
    ext.ca_pem()
}

/// The TLS files of a registry host: kept while they were issued by this CA for the same
/// names. Returns whether they were replaced (the server must restart).
fn server_cert(
    n: &Node,
    t: &mut Shared,
    ca_dir: &Path,
    ca_pem: &[u8],
    tmp: &Path,
) -> anyhow::Result<bool> {
    let tlsdir = n.layout().tls_dir();
    let mut names = vec![n.spec.host.clone(), n.name.clone()];
    names.extend(n.extra_names.iter().cloned());
    names.dedup();
    let names_line = names.join(",");
    let cur = t.exec(
        &format!("cat {0}/ca.crt {0}/names 2>/dev/null", shell_quote(&tlsdir)),
        &ExecOpts::default(),
    )?;
    let mut want = ca_pem.to_vec();
    want.extend_from_slice(names_line.as_bytes());
    if cur.stdout == want {
        return Ok(false);
    }
    let info = tls::issue_server_cert(ca_dir, &names, &tmp.join(&n.name))?;
    // `names` last: it says the files before it belong together.
    state::write_many_atomic(
        t,
        &[
            (
                format!("{tlsdir}/server.key"),
                std::fs::read(&info.key)?,
                0o600,
            ),
            (
                format!("{tlsdir}/server.crt"),
                std::fs::read(&info.cert)?,
                0o644,
            ),
            (format!("{tlsdir}/ca.crt"), ca_pem.to_vec(), 0o644),
            (
                format!("{tlsdir}/names"),
                names_line.as_bytes().to_vec(),
                0o644,
            ),
        ],
    )?;
    Ok(true)
}

/// Seed one registry host: TLS files, tag index, the service; then wait until it answers.
fn seed(
    n: &mut Node,
    m: &Manifest,
    exe: &Exe,
    ca_dir: &Path,
    ca_pem: &[u8],
    tmp: &Path,
) -> anyhow::Result<()> {
    let mut t = n.t();
    let restart = server_cert(n, &mut t, ca_dir, ca_pem, tmp)?;
    merge_tags(&mut t, &n.name, &n.root, m)?;
    let layout = n.layout();
    let bin = layout.bin(&exe.digest);
    let svc = RegistryService {
        bin: &bin,
        layout: &layout,
        listen: listen_addr(&n.spec.host, n.port),
        restart,
    };
    let systemd = n.probe.as_ref().map(|p| p.systemd).unwrap_or(false);
    let script = if systemd {
        svc.systemd_script()
    } else {
        svc.supervisor_script()
    };
    let opts = ExecOpts {
        become_: if systemd { n.become_() } else { None },
        ..Default::default()
    };
    n.run_ok("starting the registry", &script, &opts)?;
    client::wait_v2(&n.registry_addr, ca_pem, REGISTRY_START).with_context(|| {
        format!(
            "the registry on {} does not answer at https://{}/v2/",
            n.name, n.registry_addr
        )
    })?;
    Ok(())
}

/// Point the registry host's tag index at the images of `m`, keeping the other tags (an
/// earlier version's tags stay servable). Returns whether the file changed.
pub(crate) fn merge_tags(
    t: &mut Shared,
    host: &str,
    root: &str,
    m: &Manifest,
) -> anyhow::Result<bool> {
    let (idx_path, cur, mut idx) = read_tags(t, host, root)?;
    let before = idx.clone();
    for i in &m.images {
        let (repo, tag) = image_tag(&i.name);
        idx.set_tag(repo, tag, i.digest, &i.media_type);
    }
    let changed = idx != before || cur.is_empty();
    if changed {
        write_tags(t, &idx_path, &idx)?;
    }
    Ok(changed)
}

/// `repo:tag` of an image name (`latest` when it has none).
pub(crate) fn image_tag(name: &str) -> (&str, &str) {
    match name.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (name, "latest"),
    }
}

/// The tag index of a registry host: its path, the raw bytes (empty when missing), parsed.
pub(crate) fn read_tags(
    t: &mut Shared,
    host: &str,
    root: &str,
) -> anyhow::Result<(String, Vec<u8>, RepoIndex)> {
    let idx_path = crate::node::Layout::new(root).tag_index();
    let cur = t.exec(
        &format!("cat {} 2>/dev/null", shell_quote(&idx_path)),
        &ExecOpts::default(),
    )?;
    let idx = if cur.stdout.is_empty() {
        RepoIndex::default()
    } else {
        RepoIndex::parse(&cur.stdout, Path::new(&idx_path))
            .with_context(|| format!("reading {idx_path} on {host}"))?
    };
    Ok((idx_path, cur.stdout, idx))
}

pub(crate) fn write_tags(t: &mut Shared, idx_path: &str, idx: &RepoIndex) -> anyhow::Result<()> {
    let data = idx
        .to_bytes()
        .map_err(|e| anyhow::anyhow!("tag index: {e}"))?;
    state::write_atomic(t, idx_path, &data, 0o644)?;
    Ok(())
}

/// Make every runtime on the node trust the site CA for each registry address.
pub(crate) fn trust(n: &mut Node, registries: &[String], ca_pem: &[u8]) -> anyhow::Result<()> {
    let script = node_trust::runtime_trust_script(&n.trust_root, registries);
    let opts = ExecOpts {
        env: vec![(
            node_trust::CA_ENV.into(),
            String::from_utf8_lossy(ca_pem).into_owned(),
        )],
        become_: n.become_(),
        ..Default::default()
    };
    n.run_ok(
        "installing the site CA for the container runtimes",
        &script,
        &opts,
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names_split_into_repository_and_tag() {
        assert_eq!(image_tag("dockercoins/rng:1.0"), ("dockercoins/rng", "1.0"));
        assert_eq!(image_tag("rng"), ("rng", "latest"));
        assert_eq!(image_tag("reg:5000/rng"), ("reg:5000/rng", "latest"));
    }
}
