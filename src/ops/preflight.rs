//! Preflight: probe every node (reachable, architecture, free space, blobs, lock, state), then
//! decide per node, without touching it, whether it can take the bundle ([`evaluate`], pure).

use crate::bundle::{Bundle, Manifest};
use crate::digest::Digest;
use crate::node::runtime;
use crate::ops::site::{open_bundle, par, BundleTrust, Exe, Node, Site, SiteOptions};
use crate::report::bytes;
use crate::report::site::{PreflightReport, PreflightRow, SiteReporter};
use crate::state::{self, probe::NodeProbe, LockOwner, NodeState};
use crate::transport::{shell_quote, ExecOpts, Transport};
use std::collections::BTreeSet;

/// Free space kept on top of what a node needs: 64 MiB plus 10%.
const MARGIN_FIXED: u64 = 64 << 20;

/// What the bundle asks of every node.
pub(crate) struct Wanted<'a> {
    pub manifest: &'a Manifest,
    pub bundle_id: Digest,
    /// Size of the darkport binary a registry host receives when it lacks it.
    pub exe_size: u64,
    /// `install` or `upgrade`.
    pub action: &'a str,
}

/// What is known of one node after probing it.
pub(crate) struct Facts<'a> {
    pub host: &'a str,
    pub root: &'a str,
    pub registry: bool,
    pub reachable: bool,
    pub error: Option<&'a str>,
    pub probe: Option<&'a NodeProbe>,
    pub state: Option<&'a NodeState>,
    /// `darkport_runtime` from the inventory.
    pub runtime: Option<&'a str>,
}

impl<'a> Facts<'a> {
    fn of(n: &'a Node) -> Facts<'a> {
        Facts {
            host: &n.name,
            root: &n.root,
            registry: n.registry,
            reachable: n.t.is_some(),
            error: n.error.as_deref(),
            probe: n.probe.as_ref(),
            state: n.state.as_ref(),
            runtime: n.runtime.as_deref(),
        }
    }
}

/// Probe every alive node: architecture, free space, the stored blobs the bundle needs (hashed
/// again on registry hosts), the darkport binary, the state and the lock.
fn probe_nodes(site: &mut Site, m: &Manifest, exe: &Exe) {
    let wanted: BTreeSet<Digest> = m.blobs.iter().map(|x| x.digest).collect();
    par(
        &mut site.nodes,
        site.forks,
        |_| true,
        |n| {
            let mut t = n.t();
            let mut p = state::probe::probe(&mut t, &n.root)?;
            if n.registry {
                // A stored blob the bundle needs is trusted only after its content is checked:
                // a corrupt one is sent again (and the registry refuses to serve it meanwhile).
                state::probe::verify_blobs(&mut t, &n.root, &mut p, &wanted)?;
                let bin = shell_quote(&n.layout().bin(&exe.digest));
                p.exe_present = t
                    .exec(&format!("test -x {bin}"), &ExecOpts::default())?
                    .success();
            }
            n.probe = Some(p);
            n.state = state::read(&mut t, &n.root)?;
            // The lock: reported by preflight, taken by install.
            let q = shell_quote(&n.layout().lock_owner());
            let out = t.exec(
                &format!("cat {q} 2>/dev/null || true"),
                &ExecOpts::default(),
            )?;
            if let Ok(o) = serde_json::from_slice::<LockOwner>(&out.stdout) {
                if !o.is_stale_here() {
                    anyhow::bail!("the site lock is held by {o}");
                }
            }
            Ok(())
        },
    );
}

/// Probe every alive node and check it can take this bundle.
pub(crate) fn preflight(site: &mut Site, b: &Bundle, exe: &Exe, action: &str) -> Vec<PreflightRow> {
    let m = b.manifest();
    probe_nodes(site, m, exe);
    let want = Wanted {
        manifest: m,
        bundle_id: b.id(),
        exe_size: exe.size,
        action,
    };
    let mut rows: Vec<PreflightRow> = site
        .nodes
        .iter()
        .map(|n| evaluate(&Facts::of(n), &want))
        .collect();
    if let Some(ext) = &site.external {
        let check = ext.check();
        rows.push(PreflightRow {
            host: ext.address(),
            registry: true,
            reachable: check.is_ok(),
            arch: None,
            free_bytes: None,
            needed_bytes: m.stored_blob_bytes(),
            missing_blobs: m.blobs.iter().filter(|x| x.present).count(),
            corrupt_blobs: 0,
            installed: None,
            problems: check.err().map(|e| format!("{e:#}")).into_iter().collect(),
        });
    }
    rows
}

/// The preflight verdict for one node: what it needs and every problem that stops the run.
pub(crate) fn evaluate(n: &Facts, w: &Wanted) -> PreflightRow {
    let mut row = PreflightRow {
        host: n.host.to_string(),
        registry: n.registry,
        reachable: n.reachable,
        arch: None,
        free_bytes: None,
        needed_bytes: 0,
        missing_blobs: 0,
        corrupt_blobs: 0,
        installed: None,
        problems: Vec::new(),
    };
    if let Some(e) = n.error {
        row.problems.push(e.to_string());
    }
    if let (Some(p), None) = (n.probe, n.error) {
        check_capacity(&mut row, n, p, w);
        check_runtime(&mut row, n, p, w.manifest);
    }
    if let Some(st) = n.state {
        check_state(&mut row, st, w);
    }
    row
}

/// Architecture, the blobs a registry host lacks, and free space for them (+ margin).
fn check_capacity(row: &mut PreflightRow, n: &Facts, p: &NodeProbe, w: &Wanted) {
    let m = w.manifest;
    row.arch = Some(p.arch.clone());
    row.free_bytes = Some(p.free_bytes);
    let plat = format!("linux/{}", p.arch);
    if !m
        .platforms
        .iter()
        .any(|x| x == &plat || x.starts_with(&format!("{plat}/")))
    {
        row.problems.push(format!(
            "architecture {} ({}) is not among the bundle's platforms {}",
            p.arch,
            p.machine,
            m.platforms.join(", ")
        ));
    }
    let playbook_bytes: u64 = m.playbooks.iter().map(|p| p.size).sum::<u64>() + 64 * 1024;
    let mut need = playbook_bytes + m.to_bytes().len() as u64;
    row.corrupt_blobs = p.corrupt.len();
    if n.registry {
        let (mut absent_base, mut corrupt_base) = (0, 0);
        for be in m.blobs.iter().filter(|be| !p.blobs.contains(&be.digest)) {
            if be.present {
                need += be.size;
                row.missing_blobs += 1;
            } else if p.corrupt.contains(&be.digest) {
                corrupt_base += 1;
            } else {
                absent_base += 1;
            }
        }
        if corrupt_base > 0 {
            row.problems.push(format!(
                "{corrupt_base} stored blob(s) of the delta bundle's base are corrupt on this registry host and the delta cannot replace them; use the full bundle"
            ));
        }
        if absent_base > 0 {
            row.problems.push(format!(
                "delta bundle: {absent_base} blob(s) of its base bundle are not on this registry host; install the base bundle first"
            ));
        }
        if !p.exe_present {
            need += w.exe_size;
        }
    }
    row.needed_bytes = need;
    let want = need + need / 10 + MARGIN_FIXED;
    if p.free_bytes < want {
        row.problems.push(format!(
            "not enough free space under {}: {} free, {} needed ({} + margin)",
            n.root,
            bytes(p.free_bytes),
            bytes(want),
            bytes(need)
        ));
    }
}

/// Every layer compression of the bundle can be pulled by the runtime(s) that run the product
/// here (one problem per runtime, naming its version and what it needs).
fn check_runtime(row: &mut PreflightRow, n: &Facts, p: &NodeProbe, m: &Manifest) {
    // The SBOM documents (zstd-compressed, but no runtime pulls them) do not count.
    let types: BTreeSet<&str> = m
        .blobs
        .iter()
        .map(|b| b.media_type.as_str())
        .filter(|t| *t != crate::bundle::SBOM_MEDIA_TYPE)
        .collect();
    for rt in runtime::checked(n.runtime, &p.runtimes) {
        if !p.runtimes.iter().any(|f| f == rt) {
            row.problems.push(format!(
                "darkport_runtime={rt}, but {rt} was not found on this node (found: {})",
                if p.runtimes.is_empty() {
                    "none".to_string()
                } else {
                    p.runtimes.join(", ")
                }
            ));
            continue;
        }
        let Some(ver) = p.runtime_versions.get(rt) else {
            continue;
        };
        if let Some(why) = types.iter().find_map(|t| runtime::cannot_pull(rt, ver, t)) {
            row.problems.push(why);
        }
    }
}

/// Another product, another version (for install), or an unfinished other operation.
fn check_state(row: &mut PreflightRow, st: &NodeState, w: &Wanted) {
    let m = w.manifest;
    if let (Some(prod), Some(v)) = (&st.product, &st.version) {
        row.installed = Some(format!("{prod} {v}"));
        if prod != &m.product {
            row.problems
                .push(format!("another product is installed here: {prod} {v}"));
        } else if v != &m.version && w.action == "install" {
            row.problems.push(format!(
                "{prod} {v} is installed; use `darkport upgrade` to move to {}",
                m.version
            ));
        }
    }
    if let Some(op) = &st.operation {
        if !(op.action == w.action && op.bundle_digest == w.bundle_id) {
            row.problems.push(format!(
                "an unfinished {} to {} is in progress since {}",
                op.action, op.to, op.started_at
            ));
        }
    }
}

/// Warn about corrupt stored blobs (they are sent again) when every row passed; `false` when
/// any row has a problem.
pub(crate) fn passed(rows: &[PreflightRow], rep: &dyn SiteReporter) -> bool {
    if !rows.iter().all(PreflightRow::ok) {
        return false;
    }
    for r in rows.iter().filter(|r| r.corrupt_blobs > 0) {
        rep.warn(&format!(
            "{}: {} stored blob(s) do not match their digest: they are sent again",
            r.host, r.corrupt_blobs
        ));
    }
    true
}

/// The error an install or upgrade returns when its preflight refused.
pub(crate) fn refused() -> anyhow::Error {
    anyhow::anyhow!("preflight failed: nothing was changed on any node")
}

/// `darkport preflight`: only the checks.
pub fn run(
    site: &SiteOptions,
    bundle: &BundleTrust,
    rep: &dyn SiteReporter,
) -> anyhow::Result<PreflightReport> {
    let mut site = Site::load(site)?;
    site.warn_inventory(rep);
    let b = open_bundle(bundle, rep)?;
    let exe = Exe::current()?;
    site.connect();
    let rows = preflight(&mut site, &b, &exe, "install");
    Ok(PreflightReport {
        ok: rows.iter().all(PreflightRow::ok),
        bundle: b.id(),
        nodes: rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::manifest::BlobEntry;
    use crate::state::Operation;

    fn manifest(blobs: &[(u8, u64, bool)]) -> Manifest {
        Manifest {
            format: crate::bundle::FORMAT_V1.into(),
            product: "demo".into(),
            version: "1.0.0".into(),
            upgrades_from: None,
            platforms: vec!["linux/amd64".into()],
            created: None,
            images: vec![],
            blobs: blobs
                .iter()
                .map(|(b, size, present)| BlobEntry {
                    digest: Digest::of(&[*b]),
                    size: *size,
                    media_type: "application/vnd.oci.image.layer.v1.tar+gzip".into(),
                    present: *present,
                })
                .collect(),
            files: vec![],
            playbooks: vec![],
            migrations: vec![],
            delta_base: vec![],
            compose: vec![],
            sboms: vec![],
        }
    }

    fn probe(free: u64, have: &[u8]) -> NodeProbe {
        NodeProbe {
            machine: "x86_64".into(),
            arch: "amd64".into(),
            os: "debian 12".into(),
            free_bytes: free,
            systemd: false,
            runtimes: vec![],
            runtime_versions: Default::default(),
            blobs: have.iter().map(|b| Digest::of(&[*b])).collect(),
            corrupt: BTreeSet::new(),
            exe_present: true,
        }
    }

    fn facts<'a>(p: Option<&'a NodeProbe>, st: Option<&'a NodeState>) -> Facts<'a> {
        Facts {
            host: "n1",
            root: "/var/lib/darkport",
            registry: true,
            reachable: true,
            error: None,
            probe: p,
            state: st,
            runtime: None,
        }
    }

    fn wanted(m: &Manifest) -> Wanted<'_> {
        Wanted {
            manifest: m,
            bundle_id: Digest::of(b"bundle"),
            exe_size: 20 << 20,
            action: "install",
        }
    }

    #[test]
    fn a_registry_host_needs_the_blobs_it_lacks_plus_margin() {
        let m = manifest(&[(1, 100 << 20, true), (2, 50 << 20, true)]);
        let p = probe(10 << 30, &[1]);
        let row = evaluate(&facts(Some(&p), None), &wanted(&m));
        assert!(row.ok(), "{:?}", row.problems);
        assert_eq!(row.missing_blobs, 1);
        assert!(row.needed_bytes >= 50 << 20 && row.needed_bytes < 51 << 20);
        let small = probe(100 << 20, &[1]);
        let row = evaluate(&facts(Some(&small), None), &wanted(&m));
        assert!(row.problems[0].starts_with("not enough free space under /var/lib/darkport"));
    }

    #[test]
    fn a_delta_whose_base_is_missing_is_refused() {
        let m = manifest(&[(1, 10, false), (2, 10, true)]);
        let p = probe(10 << 30, &[]);
        let row = evaluate(&facts(Some(&p), None), &wanted(&m));
        assert_eq!(row.problems.len(), 1, "{:?}", row.problems);
        assert!(row.problems[0].contains("install the base bundle first"));
    }

    #[test]
    fn wrong_architecture_other_product_and_unfinished_operation() {
        let m = manifest(&[]);
        let mut p = probe(10 << 30, &[]);
        p.arch = "arm64".into();
        p.machine = "aarch64".into();
        let mut st = NodeState::new();
        st.product = Some("other".into());
        st.version = Some("1.0.0".into());
        st.operation = Some(Operation {
            action: "upgrade".into(),
            from: Some("1.0.0".into()),
            to: "2.0.0".into(),
            bundle_digest: Digest::of(b"other bundle"),
            started_at: "2026-01-01T00:00:00Z".into(),
            steps: vec![],
        });
        let row = evaluate(&facts(Some(&p), Some(&st)), &wanted(&m));
        assert_eq!(row.problems.len(), 3, "{:?}", row.problems);
        assert!(row.problems[0].contains("architecture arm64 (aarch64)"));
        assert!(row.problems[1].contains("another product is installed here: other 1.0.0"));
        assert!(row.problems[2].contains("an unfinished upgrade to 2.0.0"));
    }

    #[test]
    fn a_zstd_bundle_is_refused_where_the_runtime_cannot_pull_it() {
        let mut m = manifest(&[(1, 10, true)]);
        m.blobs[0].media_type = "application/vnd.oci.image.layer.v1.tar+zstd".into();
        let mut p = probe(10 << 30, &[]);
        p.runtimes = vec!["docker".into(), "podman".into(), "containerd".into()];
        p.runtime_versions = [("docker", "20.10.24+dfsg1"), ("podman", "4.3.1")]
            .into_iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        let row = evaluate(&facts(Some(&p), None), &wanted(&m));
        assert_eq!(row.problems.len(), 1, "{:?}", row.problems);
        assert!(row.problems[0].starts_with("docker 20.10.24+dfsg1 cannot pull zstd layers"));
        // The operator says podman runs the product here: docker's age does not matter.
        let mut f = facts(Some(&p), None);
        f.runtime = Some("podman");
        assert!(evaluate(&f, &wanted(&m)).ok());
        // A runtime named but absent is a problem of its own.
        f.runtime = Some("crio");
        let row = evaluate(&f, &wanted(&m));
        assert!(row.problems[0].contains("darkport_runtime=crio, but crio was not found"));
        // gzip layers: docker 20.10 pulls them, also beside a zstd-compressed SBOM blob.
        m.blobs[0].media_type = "application/vnd.oci.image.layer.v1.tar+gzip".into();
        m.blobs.push(crate::bundle::BlobEntry {
            digest: Digest::of(b"sbom"),
            size: 1,
            media_type: crate::bundle::SBOM_MEDIA_TYPE.into(),
            present: true,
        });
        m.blobs.sort_by_key(|b| b.digest);
        assert!(evaluate(&facts(Some(&p), None), &wanted(&m)).ok());
    }

    #[test]
    fn an_unreachable_node_reports_its_error_only() {
        let m = manifest(&[]);
        let mut f = facts(None, None);
        f.reachable = false;
        f.error = Some("connection refused");
        let row = evaluate(&f, &wanted(&m));
        assert_eq!(row.problems, vec!["connection refused".to_string()]);
        assert!(row.arch.is_none());
    }
}
