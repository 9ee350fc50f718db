//! `darkport install`: a verified bundle onto every node of a site.
//!
//! Order (each step only if the previous one succeeded everywhere it must):
//! 1. open the bundle (signature first) and hash every member, before any node is contacted;
//! 2. connect to every node (one session per host for the whole run) and preflight: reachable,
//!    architecture, free space for what it lacks (+ margin), lock free, product/version;
//! 3. lock every node; journal `install` in each node's `state.json`;
//! 4. push: registry hosts receive exactly the blobs they lack (verified on arrival) and the
//!    darkport binary; every node receives the signed manifest and the playbooks;
//! 5. seed: TLS certificate from the site CA, tag index, `darkport registry serve` as a systemd
//!    unit or a supervised process; wait until it answers `/v2/` over TLS;
//! 6. trust: every node's runtimes trust the site CA (docker/podman `certs.d`, containerd
//!    `hosts.toml`), no daemon restart;
//! 7. run `playbooks/install.yml` from the bundle with `darkport_registry`/`darkport_images`;
//! 8. record the installed version in each node's state, release the locks.
//!
//! A node that fails after preflight (down, full, ...) is reported and left out of the later
//! steps; the others finish. A re-run resumes: what is on the nodes is not sent again.
//! Steps 4-8 are shared with `upgrade` ([`ship_and_run`]).

use crate::bundle::Bundle;
use crate::digest::Digest;
use crate::node::push;
use crate::ops::migrate::run_migration;
use crate::ops::playbooks::{playbook_vars, run_step_playbook, site_images, Extracted};
use crate::ops::preflight::{self, preflight};
use crate::ops::seed::{push_external, seed_site, trust};
use crate::ops::site::journal::{locked, step, write_state};
use crate::ops::site::{open_bundle, par, BundleTrust, Exe, Node, Site, SiteOptions};
use crate::ops::Outcome;
use crate::playbook::model::Playbook;
use crate::report::site::{InstallDone, InstallReport, Refusal, SiteReporter};
use crate::state::plan::{MigrationSpec, Phase};
use crate::state::NodeState;
use crate::transport::{shell_quote, ExecOpts, Transport, UploadOpts};
use anyhow::{bail, Context};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// `darkport install`.
pub struct InstallOptions {
    pub site: SiteOptions,
    pub bundle: BundleTrust,
    /// `-e`: `k=v`, a JSON/YAML mapping, or `@file`.
    pub extra_vars: Vec<String>,
    /// The site CA's directory (default: `darkport-ca/` next to the first inventory file).
    pub ca_dir: Option<PathBuf>,
}

pub fn install(
    o: &InstallOptions,
    rep: &dyn SiteReporter,
) -> anyhow::Result<Outcome<InstallReport>> {
    let started = Instant::now();
    // 0. What is cheap to get wrong first (the inventory, -e), before a large bundle is hashed.
    let mut site = Site::load(&o.site)?;
    site.warn_inventory(rep);
    let extra_vars = crate::ops::run::parse_extra_vars(&o.extra_vars)?;
    // 1. The bundle, completely checked, before any node is contacted.
    let b = open_bundle(&o.bundle, rep)?;
    let m = b.manifest().clone();
    let pbs = Extracted::from(&b)?;
    let playbook = pbs.first_of(&["install.yml"])?;
    rep.line(&format!(
        "bundle {} {} ({}) verified{}",
        m.product,
        m.version,
        b.id().short(),
        b.signed_by()
            .map(|k| format!(", signed by {k}"))
            .unwrap_or_default()
    ));
    let exe = Exe::current()?;
    // From the inventory load (just after `started`) to here; the next lap starts now.
    site.lap("verify");
    let ca_dir = o.ca_dir.clone().unwrap_or_else(|| o.site.default_ca_dir());

    // 2. Connect and preflight: any problem stops here, before anything changes.
    site.connect();
    let rows = preflight(&mut site, &b, &exe, "install");
    if !preflight::passed(&rows, rep) {
        return Ok(Outcome::failed(
            InstallReport::Refused(Refusal::preflight(rows)),
            preflight::refused(),
        ));
    }
    rep.line(&format!("preflight ok on {} node(s)", site.nodes.len()));

    // 3-8. Locked: journal, push, seed, trust, playbook, record.
    let ship = Ship {
        b: &b,
        exe: &exe,
        ca_dir: &ca_dir,
        action: "install",
        playbook: playbook.as_ref().map(|(name, pb)| (*name, pb)),
        migrations: &[],
    };
    let result = locked(&mut site, "install", |site| {
        site.lap("preflight");
        ship_and_run(site, &ship, extra_vars, rep)
    })?;
    let nodes: Vec<_> = site.nodes.iter().map(Node::result).collect();
    let ok = result.is_ok() && nodes.iter().all(|r| r.ok);
    let report = InstallReport::Done(Box::new(InstallDone {
        ok,
        product: m.product.clone(),
        version: m.version.clone(),
        bundle_id: b.id(),
        seconds: started.elapsed().as_secs_f64(),
        nodes,
        phases: site.phases_json(),
        external_registry: site.external_report.clone(),
        deploy: site.deploy_report.clone(),
        error: result.as_ref().err().map(|e| format!("{e:#}")),
    }));
    let error = match result {
        Err(e) => Some(e),
        Ok(()) if !ok => Some(site.op_error(format!(
            "install of {} {} did not finish on every node; fix the nodes above and run the same command again (it resumes)",
            m.product,
            m.version
        ))),
        Ok(()) => None,
    };
    Ok(Outcome { report, error })
}

/// What steps 4-8 ship and run.
pub(crate) struct Ship<'a> {
    pub b: &'a Bundle,
    pub exe: &'a Exe,
    pub ca_dir: &'a Path,
    /// `install` or `upgrade` (the journal's operation).
    pub action: &'a str,
    /// The main playbook and its file name.
    pub playbook: Option<(&'a str, &'a Playbook)>,
    pub migrations: &'a [(MigrationSpec, Playbook)],
}

/// Steps 4-8 of an install or an upgrade: journal, push, seed, trust, the main playbook, the
/// migrations (each exactly once, journaled before and after), then the new version recorded.
pub(crate) fn ship_and_run(
    site: &mut Site,
    s: &Ship,
    extra_vars: Map<String, Value>,
    rep: &dyn SiteReporter,
) -> anyhow::Result<()> {
    let m = s.b.manifest();
    let (action, bundle_id) = (s.action, s.b.id());
    par(
        &mut site.nodes,
        site.forks,
        |_| true,
        |n| {
            let st = n.state.get_or_insert_with(NodeState::new);
            st.begin_operation(action, &m.version, bundle_id)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            write_state(n)
        },
    );
    let wanted: BTreeSet<Digest> = m
        .blobs
        .iter()
        .filter(|x| x.present)
        .map(|x| x.digest)
        .collect();
    push_all(site, s.b, s.exe, &wanted, rep)?;
    // 5. Seed (or push into the external registry): the CA the nodes' runtimes must trust.
    let trust_pem = match site.external.clone() {
        Some(ext) => push_external(site, s.b, &ext, rep)?,
        None => Some(seed_site(site, s.b, s.exe, s.ca_dir, &wanted, rep)?),
    };
    // 6. Runtime trust on every node.
    let (registries, images) = site_images(site, m);
    if let Some(pem) = &trust_pem {
        let order: BTreeMap<String, Vec<String>> = site
            .nodes
            .iter()
            .map(|n| (n.name.clone(), site.registry_order(&n.name)))
            .collect();
        par(
            &mut site.nodes,
            site.forks,
            |_| true,
            |n| step(n, "trust", |n| trust(n, &order[&n.name], pem)),
        );
    }
    site.lap("trust");
    // The compose deploy pins images to where the nodes pull them from.
    let pull_from = match &site.external {
        Some(ext) => ext.reference("").trim_end_matches('/').to_string(),
        None => registries[0].clone(),
    };
    let vars = playbook_vars(bundle_id, m, &registries, images, extra_vars);
    run_playbooks(site, s, &vars, &pull_from, rep)
}

/// The files every node keeps of the bundle: the signed manifest, its signature, the playbooks.
fn bundle_files(b: &Bundle) -> anyhow::Result<Vec<(String, Vec<u8>, u32)>> {
    let m = b.manifest();
    let mut files: Vec<(String, Vec<u8>, u32)> =
        vec![("darkport.json".into(), m.to_bytes(), 0o644)];
    if let Some(sig) = b.member(crate::bundle::SIGNATURE_NAME) {
        files.push((
            "darkport.json.minisig".into(),
            b.read_member(sig, 1 << 20)?,
            0o644,
        ));
    }
    for p in &m.playbooks {
        let mem = b.playbook(&p.path).context("playbook member")?;
        files.push((
            format!("playbooks/{}", p.path),
            b.read_member(mem, 64 << 20)?,
            p.mode,
        ));
    }
    Ok(files)
}

/// Place the controller's darkport binary on a registry host (unless it is there) and check
/// that it runs there.
fn place_binary(
    n: &Node,
    exe: &Exe,
    prog: &dyn crate::node::push::PushReporter,
) -> anyhow::Result<String> {
    let mut t = n.t();
    let bin = n.layout().bin(&exe.digest);
    let run_it = format!(
        "if [ -x {q} ]; then {q} --version; else exit 100; fi",
        q = shell_quote(&bin)
    );
    let mut v = t.exec(&run_it, &ExecOpts::default())?;
    if v.exit_code == 100 {
        let mut f = std::fs::File::open(&exe.path)?;
        let opts = UploadOpts {
            mode: Some(0o755),
            sha256: Some(exe.digest),
            become_: None,
        };
        prog.blob_started(&n.name, &exe.digest, exe.size);
        t.upload(&mut f, exe.size, &bin, &opts)?;
        prog.blob_done(&n.name, &exe.digest, exe.size, 0);
        v = t.exec(&run_it, &ExecOpts::default())?;
    }
    if !v.success() {
        bail!(
            "the darkport binary placed at {bin} does not run on {} (exit {}): {}; \
             a registry host runs the controller's own binary, so it needs the \
             controller's architecture and a C library at least as new",
            n.name,
            v.exit_code,
            v.stderr_str().trim()
        );
    }
    Ok(bin)
}

/// Step 4: the first registry host gets the binary and the blobs it lacks from here (the later
/// ones copy them from it inside the site once it serves them); every node gets the bundle's
/// manifest and playbooks.
fn push_all(
    site: &mut Site,
    b: &Bundle,
    exe: &Exe,
    wanted: &BTreeSet<Digest>,
    rep: &dyn SiteReporter,
) -> anyhow::Result<()> {
    let m = b.manifest();
    let files = bundle_files(b)?;
    let primary_reg = site.primary_registry();
    let is_primary = |n: &Node| primary_reg.as_deref() == Some(n.name.as_str());
    let to_send: u64 = site
        .nodes
        .iter()
        .filter(|n| is_primary(n))
        .filter_map(|n| n.probe.as_ref())
        .map(|p| {
            m.blobs
                .iter()
                .filter(|x| x.present && !p.blobs.contains(&x.digest))
                .map(|x| x.size)
                .sum::<u64>()
        })
        .sum();
    // The darkport binary each registry host lacks travels too (preflight's NEEDS counts it).
    let exe_bytes: u64 = site
        .nodes
        .iter()
        .filter(|n| n.registry && n.probe.as_ref().is_some_and(|p| !p.exe_present))
        .map(|_| exe.size)
        .sum();
    let prog = rep.push_progress(to_send + exe_bytes);
    par(
        &mut site.nodes,
        site.forks,
        |_| true,
        |n| {
            step(n, "push", |n| {
                if n.registry {
                    let bin = place_binary(n, exe, prog.as_ref())?;
                    if is_primary(n) {
                        let present = n
                            .probe
                            .as_ref()
                            .map(|p| p.blobs.clone())
                            .unwrap_or_default();
                        let mut t = n.t();
                        let r = push::push_missing(
                            &mut t,
                            &n.root,
                            wanted,
                            &present,
                            b,
                            prog.as_ref(),
                            Some(&bin),
                        )?;
                        n.push = Some(r);
                    }
                }
                n.put_files(&n.layout().bundle_dir(&b.id()), &files)
            })
        },
    );
    prog.finish();
    if let Some(n) = site.nodes.iter().find(|n| n.registry && n.error.is_some()) {
        bail!(
            "push to registry host {} failed: {}",
            n.name,
            n.error.as_deref().unwrap_or("")
        );
    }
    rep.line("push done");
    site.lap("push");
    Ok(())
}

/// Steps 7-8: migrations before, the install/upgrade playbook, the compose deploy, migrations
/// after, then the version recorded where everything finished.
fn run_playbooks(
    site: &mut Site,
    s: &Ship,
    vars: &Map<String, Value>,
    pull_from: &str,
    rep: &dyn SiteReporter,
) -> anyhow::Result<()> {
    for (spec, pb) in s
        .migrations
        .iter()
        .filter(|(x, _)| x.phase == Phase::Before)
    {
        run_migration(site, s.b, spec, pb, vars, rep)?;
    }
    if let Some((file, pb)) = s.playbook {
        rep.line(&format!("running {file}"));
        run_step_playbook(site, pb, vars, "playbook", file, |n| n.selected, rep);
    }
    // The compose product, after the main playbook (which may prepare the hosts) and before
    // the migrations that run after it (which may need the new services).
    crate::ops::deploy::deploy(site, s.b, pull_from, rep)?;
    for (spec, pb) in s.migrations.iter().filter(|(x, _)| x.phase == Phase::After) {
        run_migration(site, s.b, spec, pb, vars, rep)?;
    }
    site.lap("playbooks");
    // 8. Done: the version is recorded only where everything finished.
    let product = &s.b.manifest().product;
    par(
        &mut site.nodes,
        site.forks,
        |n| n.selected || n.registry,
        |n| {
            n.state.as_mut().unwrap().complete_operation(product);
            write_state(n)
        },
    );
    site.lap("record");
    Ok(())
}
