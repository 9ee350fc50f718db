//! `darkport install`, `preflight` and `status`: a verified bundle onto every node of a site.
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

use crate::bundle::{Bundle, Manifest};
use crate::cli::site::{BundleTrustArgs, InstallArgs, PreflightArgs, SiteArgs, StatusArgs};
use crate::digest::Digest;
use crate::inventory::Inventory;
use crate::ops::external::{self, External, ExternalReport};
use crate::ops::push::{self, PushReport};
use crate::playbook::engine::{self, Connector, RunOptions};
use crate::playbook::model::Playbook;
use crate::registry::{tls, RepoIndex};
use crate::state::plan::{migration_action, MigrationAction, MigrationSpec, Phase, Scope};
use crate::state::{self, probe::NodeProbe, AppliedMigration, LockOwner, LockPolicy, NodeState};
use crate::transport::{
    self, shell_quote, ConnSpec, ConnectOpts, ExecOpts, ExecOutput, ReadSeek, Transport,
    TransportError, UploadOpts, UploadReport,
};
use crate::ui::{bytes, site::SitePrinter, ProgressMode};
use anyhow::{bail, Context};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Default `darkport_root`.
pub const DEFAULT_ROOT: &str = "/var/lib/darkport";
/// Default `darkport_registry_port`.
pub const DEFAULT_REGISTRY_PORT: u16 = 5000;
/// Free space kept on top of what a node needs: 64 MiB plus 10%.
const MARGIN_FIXED: u64 = 64 << 20;

/// A transport shared between the install flow and the playbook engine, so the whole run
/// uses one SSH session per host.
#[derive(Clone)]
pub struct Shared {
    name: String,
    t: Arc<Mutex<Box<dyn Transport>>>,
}

impl Shared {
    pub fn new(t: Box<dyn Transport>) -> Shared {
        Shared {
            name: t.host().to_string(),
            t: Arc::new(Mutex::new(t)),
        }
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, Box<dyn Transport>> {
        self.t.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Transport for Shared {
    fn host(&self) -> &str {
        &self.name
    }
    fn exec(&mut self, cmd: &str, opts: &ExecOpts) -> Result<ExecOutput, TransportError> {
        self.lock().exec(cmd, opts)
    }
    fn upload(
        &mut self,
        src: &mut dyn ReadSeek,
        size: u64,
        dest: &str,
        opts: &UploadOpts,
    ) -> Result<UploadReport, TransportError> {
        self.lock().upload(src, size, dest, opts)
    }
    fn download(&mut self, src: &str, dest: &mut dyn Write) -> Result<u64, TransportError> {
        self.lock().download(src, dest)
    }
    fn exec_streaming(
        &mut self,
        cmd: &str,
        stdin: &mut dyn std::io::Read,
        stdout: &mut dyn Write,
    ) -> Result<(i32, Vec<u8>), TransportError> {
        self.lock().exec_streaming(cmd, stdin, stdout)
    }
}

/// One node of the run.
pub struct Node {
    pub name: String,
    pub spec: ConnSpec,
    pub root: String,
    /// Serves the site registry (inventory group `registry`, default the first host).
    pub registry: bool,
    /// In the `--limit` selection (the install playbook runs here).
    pub selected: bool,
    /// `host:port` the registry on this node is reached at (registry hosts only).
    pub registry_addr: String,
    pub port: u16,
    /// Extra names for the registry certificate (`darkport_registry_names`).
    pub extra_names: Vec<String>,
    /// Prefix of the runtime trust directories (`darkport_trust_root`, default `/`).
    pub trust_root: String,
    pub t: Option<Shared>,
    pub probe: Option<NodeProbe>,
    pub state: Option<NodeState>,
    /// The first error that took this node out of the run.
    pub error: Option<String>,
    pub push: Option<PushReport>,
}

impl Node {
    pub(crate) fn t(&self) -> Shared {
        self.t.clone().expect("node without a transport")
    }
    pub(crate) fn alive(&self) -> bool {
        self.t.is_some() && self.error.is_none()
    }
    pub(crate) fn fail(&mut self, e: impl std::fmt::Display) {
        if self.error.is_none() {
            self.error = Some(e.to_string());
        }
    }
}

/// Run `f` on every alive node (of those `pick` selects), at most `forks` at a time; an error
/// takes that node out of the run.
pub(crate) fn par<F>(nodes: &mut [Node], forks: usize, pick: impl Fn(&Node) -> bool, f: F)
where
    F: Fn(&mut Node) -> anyhow::Result<()> + Sync,
{
    use std::sync::atomic::{AtomicUsize, Ordering};
    let cells: Vec<Mutex<&mut Node>> = nodes
        .iter_mut()
        .filter(|n| n.alive() && pick(n))
        .map(Mutex::new)
        .collect();
    let next = AtomicUsize::new(0);
    let workers = forks.max(1).min(cells.len());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= cells.len() {
                    break;
                }
                let mut g = cells[i].lock().unwrap();
                let n: &mut Node = &mut g;
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(n)));
                match r {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => n.fail(format!("{e:#}")),
                    Err(_) => n.fail("internal error (panic)"),
                }
            });
        }
    });
}

fn var_str(vars: &Map<String, Value>, k: &str) -> Option<String> {
    match vars.get(k)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        v => Some(v.to_string()),
    }
}

/// The site: inventory, nodes, connection options.
pub struct Site {
    /// Inventory loaded; nodes in inventory order.
    pub inv: Inventory,
    pub nodes: Vec<Node>,
    pub copts: ConnectOpts,
    pub forks: usize,
    pub limit: Option<String>,
    /// `registry: {external: URL}` in the inventory: images go to that registry, no node
    /// runs darkport's.
    pub external: Option<External>,
    pub external_report: Option<ExternalReport>,
    /// Wall time of each phase (`--json` reports it as `phases`).
    pub laps: Vec<(String, f64)>,
    lap_from: Instant,
}

impl Site {
    pub fn load(a: &SiteArgs) -> anyhow::Result<Site> {
        let inv = Inventory::load(&a.inventory)?;
        let all = inv.hosts();
        if all.is_empty() {
            bail!("the inventory has no hosts");
        }
        let selected: BTreeSet<String> = match &a.limit {
            Some(l) => {
                let s = inv.select_limited("all", Some(l))?.hosts;
                if s.is_empty() {
                    bail!("--limit {l:?} matches no host of the inventory");
                }
                s.into_iter().collect()
            }
            None => all.iter().cloned().collect(),
        };
        let external = External::from_var(inv.host_vars(&all[0]).get("registry"))
            .context("inventory variable `registry`")?;
        let mut registry: BTreeSet<String> = if inv.has_group("registry") {
            inv.select("registry")?.into_iter().collect()
        } else {
            BTreeSet::new()
        };
        if external.is_some() {
            registry.clear();
        } else if registry.is_empty() {
            registry.insert(all[0].clone());
        }
        let mut nodes = Vec::new();
        for h in &all {
            if !selected.contains(h) && !registry.contains(h) {
                continue;
            }
            let vars = inv.host_vars(h);
            let spec = ConnSpec::from_vars(h, &vars)?;
            let root = var_str(&vars, "darkport_root").unwrap_or_else(|| DEFAULT_ROOT.into());
            let port = match var_str(&vars, "darkport_registry_port") {
                Some(p) => p.parse::<u16>().map_err(|_| {
                    anyhow::anyhow!("host {h}: darkport_registry_port={p:?} is not a port number")
                })?,
                None => DEFAULT_REGISTRY_PORT,
            };
            let extra_names = var_str(&vars, "darkport_registry_names")
                .map(|s| {
                    s.split(',')
                        .map(|x| x.trim().to_string())
                        .filter(|x| !x.is_empty())
                        .collect()
                })
                .unwrap_or_default();
            nodes.push(Node {
                name: h.clone(),
                registry_addr: format!("{}:{port}", spec.host),
                port,
                spec,
                root,
                registry: registry.contains(h),
                selected: selected.contains(h),
                extra_names,
                trust_root: var_str(&vars, "darkport_trust_root").unwrap_or_else(|| "/".into()),
                t: None,
                probe: None,
                state: None,
                error: None,
                push: None,
            });
        }
        let mut copts = ConnectOpts::default();
        if let Some(k) = &a.known_hosts {
            copts.known_hosts = k.clone();
        }
        copts.accept_new_host_keys = a.accept_new_host_keys;
        Ok(Site {
            inv,
            nodes,
            copts,
            forks: a.forks.max(1),
            limit: a.limit.clone(),
            external,
            external_report: None,
            laps: Vec::new(),
            lap_from: Instant::now(),
        })
    }

    /// Open one session per node, in parallel; unreachable nodes get their error.
    pub fn connect(&mut self) {
        let specs: Vec<ConnSpec> = self.nodes.iter().map(|n| n.spec.clone()).collect();
        let copts = &self.copts;
        let res = transport::for_each_host(&specs, self.forks, |s| transport::connect(s, copts));
        for (n, (_, r)) in self.nodes.iter_mut().zip(res) {
            match r {
                Ok(t) => n.t = Some(Shared::new(t)),
                Err(e) => n.error = Some(e.to_string()),
            }
        }
    }

    /// Read every reachable node's `state.json`, in parallel (errors go to the node).
    pub(crate) fn read_states(&mut self) {
        par(
            &mut self.nodes,
            self.forks,
            |_| true,
            |n| {
                let mut t = n.t();
                n.state = state::read(&mut t, &n.root)?;
                Ok(())
            },
        );
    }

    /// The registry host that gets the blobs from the controller: the first one still alive.
    fn primary_registry(&self) -> Option<String> {
        self.nodes
            .iter()
            .find(|n| n.registry && n.alive())
            .map(|n| n.name.clone())
    }

    /// Record the time since the previous lap as phase `name`.
    pub fn lap(&mut self, name: &str) {
        self.laps
            .push((name.to_string(), self.lap_from.elapsed().as_secs_f64()));
        self.lap_from = Instant::now();
    }

    /// The laps as a JSON object, in order.
    pub fn phases_json(&self) -> Value {
        Value::Object(
            self.laps
                .iter()
                .map(|(k, v)| (k.clone(), json!((v * 1000.0).round() / 1000.0)))
                .collect(),
        )
    }

    fn registries(&self) -> Vec<&Node> {
        self.nodes.iter().filter(|n| n.registry).collect()
    }
}

pub(crate) fn open_bundle(b: &BundleTrustArgs, progress: ProgressMode) -> anyhow::Result<Bundle> {
    let trust = crate::ops::trust::resolve(&b.pubkey, b.allow_unsigned)?;
    let refuse = || {
        format!(
            "bundle {} refused: nothing was changed on any node",
            b.bundle.display()
        )
    };
    let bundle = Bundle::open(&b.bundle, &trust).with_context(refuse)?;
    bundle
        .verify_all(&crate::ui::bundle::BundleProgress::new(progress))
        .with_context(refuse)?;
    if bundle.signed_by().is_none() {
        eprintln!(
            "WARNING: {} is {} and is installed only because of --allow-unsigned",
            b.bundle.display(),
            if bundle.has_signature() {
                "signed by an untrusted key"
            } else {
                "UNSIGNED"
            }
        );
    }
    Ok(bundle)
}

/// What the preflight found on one node.
#[derive(Clone, Debug, Serialize)]
pub struct PreflightRow {
    pub host: String,
    pub registry: bool,
    pub reachable: bool,
    pub arch: Option<String>,
    pub free_bytes: Option<u64>,
    pub needed_bytes: u64,
    pub missing_blobs: usize,
    /// Stored blobs whose content does not match their digest (counted in `missing_blobs`:
    /// they are sent again).
    pub corrupt_blobs: usize,
    pub installed: Option<String>,
    pub problems: Vec<String>,
}

pub(crate) fn self_exe() -> anyhow::Result<(PathBuf, Digest, u64)> {
    let p = std::env::current_exe().context("locating the darkport binary")?;
    let f = std::fs::File::open(&p).with_context(|| format!("reading {}", p.display()))?;
    let size = f.metadata()?.len();
    let (d, _) =
        crate::digest::Digest::of_reader(f).with_context(|| format!("hashing {}", p.display()))?;
    Ok((p, d, size))
}

fn remote_bin(root: &str, d: &Digest) -> String {
    format!(
        "{}/bin/darkport-{}",
        root.trim_end_matches('/'),
        &d.hex()[..16]
    )
}

fn bundle_dir(root: &str, m: &Bundle) -> String {
    bundle_dir_of(root, &m.id())
}

/// `<root>/bundles/<bundle id hex>`: the signed manifest and the playbooks of one bundle.
pub(crate) fn bundle_dir_of(root: &str, id: &Digest) -> String {
    format!("{}/bundles/{}", root.trim_end_matches('/'), id.hex())
}

/// Probe every alive node and check it can take this bundle.
pub(crate) fn preflight(
    site: &mut Site,
    b: &Bundle,
    exe: &(PathBuf, Digest, u64),
    action: &str,
) -> Vec<PreflightRow> {
    let m = b.manifest();
    let playbook_bytes: u64 = m.playbooks.iter().map(|p| p.size).sum::<u64>() + 64 * 1024;
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
                let bin = shell_quote(&remote_bin(&n.root, &exe.1));
                p.exe_present = t
                    .exec(&format!("test -x {bin}"), &ExecOpts::default())?
                    .success();
            }
            n.probe = Some(p);
            n.state = state::read(&mut t, &n.root)?;
            // The lock: reported by preflight, taken by install.
            let q = shell_quote(&format!("{}/lock/owner", n.root.trim_end_matches('/')));
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
    let manifest_bytes = m.to_bytes().len() as u64;
    let mut rows = Vec::new();
    for n in &site.nodes {
        let mut row = PreflightRow {
            host: n.name.clone(),
            registry: n.registry,
            reachable: n.t.is_some(),
            arch: None,
            free_bytes: None,
            needed_bytes: 0,
            missing_blobs: 0,
            corrupt_blobs: 0,
            installed: None,
            problems: Vec::new(),
        };
        if let Some(e) = &n.error {
            row.problems.push(e.clone());
        }
        if let (Some(p), true) = (&n.probe, n.error.is_none()) {
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
            let mut need = playbook_bytes + manifest_bytes;
            row.corrupt_blobs = p.corrupt.len();
            if n.registry {
                let (mut absent_base, mut corrupt_base) = (0, 0);
                for be in &m.blobs {
                    if p.blobs.contains(&be.digest) {
                        continue;
                    }
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
                    need += exe.2;
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
        if let Some(st) = &n.state {
            if let (Some(prod), Some(v)) = (&st.product, &st.version) {
                row.installed = Some(format!("{prod} {v}"));
                if prod != &m.product {
                    row.problems
                        .push(format!("another product is installed here: {prod} {v}"));
                } else if v != &m.version && action == "install" {
                    row.problems.push(format!(
                        "{prod} {v} is installed; use `darkport upgrade` to move to {}",
                        m.version
                    ));
                }
            }
            if let Some(op) = &st.operation {
                if !(op.action == action && op.bundle_digest == b.id()) {
                    row.problems.push(format!(
                        "an unfinished {} to {} is in progress since {}",
                        op.action, op.to, op.started_at
                    ));
                }
            }
        }
        rows.push(row);
    }
    for (row, n) in rows.iter_mut().zip(&site.nodes) {
        if let Some(e) = &n.error {
            if !row.problems.contains(e) {
                row.problems.push(e.clone());
            }
        }
    }
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

/// Stop (printing the per-node table or JSON) when any node has a preflight problem.
pub(crate) fn refuse_on_problems(rows: &[PreflightRow], json: bool) -> anyhow::Result<()> {
    if rows.iter().all(|r| r.problems.is_empty()) {
        for r in rows.iter().filter(|r| r.corrupt_blobs > 0) {
            eprintln!(
                "{}: {} stored blob(s) do not match their digest: they are sent again",
                r.host, r.corrupt_blobs
            );
        }
        return Ok(());
    }
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"ok": false, "phase": "preflight", "nodes": rows})
            )?
        );
    } else {
        crate::ui::site::print_preflight(rows);
    }
    bail!("preflight failed: nothing was changed on any node");
}

pub fn preflight_only(a: &PreflightArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    let b = open_bundle(&a.bundle, progress)?;
    let exe = self_exe()?;
    let mut site = Site::load(&a.site)?;
    site.connect();
    let rows = preflight(&mut site, &b, &exe, "install");
    let ok = rows.iter().all(|r| r.problems.is_empty());
    if a.site.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"ok": ok, "bundle": b.id(), "nodes": rows}))?
        );
    } else {
        crate::ui::site::print_preflight(&rows);
    }
    Ok(if ok { 0 } else { 1 })
}

/// Per-node result of an install.
#[derive(Debug, Serialize)]
pub struct NodeResult {
    pub host: String,
    pub registry: bool,
    pub ok: bool,
    pub error: Option<String>,
    pub push: Option<PushReport>,
}

pub(crate) fn write_state(n: &mut Node) -> anyhow::Result<()> {
    let mut t = n.t();
    let st = n.state.as_ref().expect("state");
    state::write(&mut t, &n.root, st)?;
    crash_point(st);
    Ok(())
}

/// Fault injection for the crash tests: with `DARKPORT_CRASH_AT=STEP:started` (or `:finished`)
/// the controller dies, as a SIGKILL would leave it (no cleanup, lock held, sessions cut), right
/// after a node's journal recorded STEP so. Steps: `push`, `seed`, `trust`, `playbook`,
/// `migration:ID`, `migration-run` (a migration's playbook).
fn crash_point(st: &NodeState) {
    let Ok(at) = std::env::var("DARKPORT_CRASH_AT") else {
        return;
    };
    let Some((name, status)) = at.rsplit_once(':') else {
        return;
    };
    let hit = match st.step_status(name) {
        Some(state::StepStatus::Started) => status == "started",
        Some(state::StepStatus::Finished) => status == "finished",
        None => false,
    };
    if hit {
        eprintln!("DARKPORT_CRASH_AT={at}: the controller stops here");
        std::process::exit(137);
    }
}

pub(crate) fn step<F>(n: &mut Node, name: &str, f: F) -> anyhow::Result<()>
where
    F: FnOnce(&mut Node) -> anyhow::Result<()>,
{
    n.state.as_mut().unwrap().begin_step(name);
    write_state(n)?;
    f(n)?;
    n.state.as_mut().unwrap().finish_step(name);
    write_state(n)
}

pub(crate) fn become_for(n: &Node) -> Option<transport::Become> {
    if n.spec.become_default || n.spec.user != "root" {
        Some(n.spec.become_.clone())
    } else {
        None
    }
}

pub(crate) fn run_ok(
    t: &mut Shared,
    host: &str,
    what: &str,
    script: &str,
    opts: &ExecOpts,
) -> anyhow::Result<String> {
    let out = t.exec(script, opts)?;
    if !out.success() {
        bail!(
            "{what} on {host} failed (exit {}): {}",
            out.exit_code,
            out.stderr_str().trim()
        );
    }
    Ok(out.stdout_str())
}

/// Upload small files (name → bytes) to `dir` unless a `.complete` marker says they are there.
fn put_files(n: &Node, dir: &str, files: &[(String, Vec<u8>, u32)]) -> anyhow::Result<()> {
    let mut t = n.t();
    let marker = format!("{dir}/.complete");
    let out = t.exec(
        &format!("test -f {}", shell_quote(&marker)),
        &ExecOpts::default(),
    )?;
    if out.success() {
        return Ok(());
    }
    // One round trip for all of them; the marker is renamed into place last.
    let mut all: Vec<(String, Vec<u8>, u32)> = files
        .iter()
        .map(|(rel, data, mode)| (format!("{dir}/{rel}"), data.clone(), *mode))
        .collect();
    all.push((marker, Vec::new(), 0o644));
    state::write_many_atomic(&mut t, &all)?;
    Ok(())
}

pub fn install(a: &InstallArgs, progress: ProgressMode) -> anyhow::Result<i32> {
    let pr = SitePrinter::new(if a.site.json {
        ProgressMode::Quiet
    } else {
        progress
    });
    let started = Instant::now();
    // 1. The bundle, completely checked, before any node is contacted.
    let b = open_bundle(
        &a.bundle,
        if a.site.json {
            ProgressMode::Quiet
        } else {
            progress
        },
    )?;
    let m = b.manifest().clone();
    let extra_vars = crate::ops::run::parse_extra_vars(&a.extra_vars)?;
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let pbdir = tmp.path().join("playbooks");
    b.extract_playbooks(&pbdir)?;
    let install_yml = pbdir.join("install.yml");
    let playbook = if install_yml.exists() {
        Some(Playbook::load(&install_yml)?)
    } else {
        None
    };
    pr.line(&format!(
        "bundle {} {} ({}) verified{}",
        m.product,
        m.version,
        b.id().short(),
        b.signed_by()
            .map(|k| format!(", signed by {k}"))
            .unwrap_or_default()
    ));
    let exe = self_exe()?;
    let verified = started.elapsed().as_secs_f64();
    let mut site = Site::load(&a.site)?;
    site.laps.push(("verify".into(), verified));
    let ca_dir = a.ca_dir.clone().unwrap_or_else(|| default_ca_dir(&a.site));

    // 2. Connect and preflight: any problem stops here, before anything changes.
    site.connect();
    let rows = preflight(&mut site, &b, &exe, "install");
    refuse_on_problems(&rows, a.site.json)?;
    pr.line(&format!("preflight ok on {} node(s)", site.nodes.len()));

    // 3. Lock every node (inventory order), then journal the operation.
    let me = LockOwner::this_process("install");
    lock_all(&mut site, &me)?;
    site.lap("preflight");
    let result = ship_and_run(
        &mut site,
        &b,
        &m,
        &exe,
        &ca_dir,
        "install",
        playbook.as_ref(),
        &[],
        extra_vars,
        &pr,
    );
    unlock_all(&mut site, &me);
    let results: Vec<NodeResult> = site
        .nodes
        .iter()
        .map(|n| NodeResult {
            host: n.name.clone(),
            registry: n.registry,
            ok: n.error.is_none(),
            error: n.error.clone(),
            push: n.push.clone(),
        })
        .collect();
    let ok = result.is_ok() && results.iter().all(|r| r.ok);
    if a.site.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "ok": ok,
                "product": m.product,
                "version": m.version,
                "bundle_id": b.id(),
                "seconds": started.elapsed().as_secs_f64(),
                "nodes": results,
                "phases": site.phases_json(),
                "external_registry": site.external_report,
                "error": result.as_ref().err().map(|e| format!("{e:#}")),
            }))?
        );
    } else {
        crate::ui::site::print_install(&results, started.elapsed());
    }
    result?;
    if !ok {
        bail!("install of {} {} did not finish on every node; fix the nodes above and run the same command again (it resumes)", m.product, m.version);
    }
    Ok(0)
}

/// Take the lock on every node in inventory order; on a refusal, release what was taken.
pub(crate) fn lock_all(site: &mut Site, me: &LockOwner) -> anyhow::Result<()> {
    for i in 0..site.nodes.len() {
        let n = &site.nodes[i];
        let mut t = n.t();
        if let Err(e) = state::lock(&mut t, &n.root, me, LockPolicy::TakeOverStale) {
            let msg = e.to_string();
            unlock_all(site, me);
            bail!("cannot take the site lock: {msg}; nothing was changed");
        }
    }
    Ok(())
}

pub(crate) fn unlock_all(site: &mut Site, me: &LockOwner) {
    for n in site.nodes.iter_mut() {
        if let Some(t) = &n.t {
            let mut t = t.clone();
            let _ = state::unlock(&mut t, &n.root, me);
        }
    }
}

pub(crate) fn default_ca_dir(a: &SiteArgs) -> PathBuf {
    a.inventory
        .first()
        .and_then(|p| p.parent())
        .map(|p| {
            if p.as_os_str().is_empty() {
                Path::new(".")
            } else {
                p
            }
        })
        .unwrap_or(Path::new("."))
        .join("darkport-ca")
}

/// Steps 4-8 of an install or an upgrade: journal, push, seed, trust, the main playbook, the
/// migrations (each exactly once, journaled before and after), then the new version recorded.
#[allow(clippy::too_many_arguments)]
pub(crate) fn ship_and_run(
    site: &mut Site,
    b: &Bundle,
    m: &Manifest,
    exe: &(PathBuf, Digest, u64),
    ca_dir: &Path,
    action: &str,
    playbook: Option<&Playbook>,
    migrations: &[(MigrationSpec, Playbook)],
    extra_vars: Map<String, Value>,
    pr: &SitePrinter,
) -> anyhow::Result<()> {
    let forks = site.forks;
    // Journal.
    par(
        &mut site.nodes,
        forks,
        |_| true,
        |n| {
            let st = n.state.get_or_insert_with(NodeState::new);
            st.begin_operation(action, &m.version, b.id())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            write_state(n)
        },
    );

    // 4. Push.
    let wanted: BTreeSet<Digest> = m
        .blobs
        .iter()
        .filter(|x| x.present)
        .map(|x| x.digest)
        .collect();
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
    // The first registry host gets the blobs from here; the others copy them from it inside
    // the site once it serves them (falling back to a push from here).
    let primary_reg = site.primary_registry();
    let is_primary = |n: &Node| primary_reg.as_deref() == Some(n.name.as_str());
    let prog = pr.push_progress(
        site.nodes
            .iter()
            .filter(|n| is_primary(n))
            .map(|n| {
                n.probe
                    .as_ref()
                    .map(|p| {
                        m.blobs
                            .iter()
                            .filter(|x| x.present && !p.blobs.contains(&x.digest))
                            .map(|x| x.size)
                            .sum::<u64>()
                    })
                    .unwrap_or(0)
            })
            .sum(),
    );
    par(
        &mut site.nodes,
        forks,
        |_| true,
        |n| {
            step(n, "push", |n| {
                let mut t = n.t();
                if n.registry {
                    // The binary first: it serves the registry, and it receives the blobs.
                    let bin = remote_bin(&n.root, &exe.1);
                    let run_it = format!(
                        "if [ -x {q} ]; then {q} --version; else exit 100; fi",
                        q = shell_quote(&bin)
                    );
                    let mut v = t.exec(&run_it, &ExecOpts::default())?;
                    if v.exit_code == 100 {
                        let mut f = std::fs::File::open(&exe.0)?;
                        t.upload(
                            &mut f,
                            exe.2,
                            &bin,
                            &UploadOpts {
                                mode: Some(0o755),
                                sha256: Some(exe.1),
                                become_: None,
                            },
                        )?;
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
                    if is_primary(n) {
                        let present = n
                            .probe
                            .as_ref()
                            .map(|p| p.blobs.clone())
                            .unwrap_or_default();
                        let r = push::push_missing(
                            &mut t,
                            &n.root,
                            &wanted,
                            &present,
                            b,
                            &prog,
                            Some(&bin),
                        )?;
                        n.push = Some(r);
                    }
                }
                put_files(n, &bundle_dir(&n.root, b), &files)
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
    pr.line("push done");
    site.lap("push");
    // 5. Seed (or push into the external registry): the CA the nodes' runtimes must trust.
    let trust_pem = match site.external.clone() {
        Some(ext) => push_external(site, b, m, &ext, pr)?,
        None => Some(seed_site(site, b, m, exe, ca_dir, &wanted, pr)?),
    };

    // 6. Runtime trust on every node.
    let (registries, images) = site_images(site, m);
    if let Some(pem) = &trust_pem {
        par(
            &mut site.nodes,
            forks,
            |_| true,
            |n| step(n, "trust", |n| trust(n, &registries, pem)),
        );
    }
    site.lap("trust");
    run_playbooks(
        site,
        action,
        b,
        m,
        &registries,
        images,
        playbook,
        migrations,
        extra_vars,
        pr,
    )
}

/// Certificates from the site CA, the tag index and the registry service on the first
/// registry host, then the later ones (their blobs copied from the first). Returns the CA.
fn seed_site(
    site: &mut Site,
    b: &Bundle,
    m: &Manifest,
    exe: &(PathBuf, Digest, u64),
    ca_dir: &Path,
    wanted: &BTreeSet<Digest>,
    pr: &SitePrinter,
) -> anyhow::Result<Vec<u8>> {
    let forks = site.forks;
    let primary_reg = site.primary_registry();
    let is_primary = |n: &Node| primary_reg.as_deref() == Some(n.name.as_str());
    let ca = tls::init_ca(ca_dir, "darkport site CA")
        .with_context(|| format!("creating or opening the site CA in {}", ca_dir.display()))?;
    if ca.created {
        pr.line(&format!(
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
                fetch_or_push(n, m, b, exe, wanted, primary_addr.as_deref(), &ca_pem, pr)
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
    pr.line(&format!("site registry up at {}", registries.join(", ")));
    site.lap("seed");
    Ok(ca_pem)
}

/// A registry host after the first: copy the blobs it lacks from the first one (its darkport
/// binary fetches them over TLS, checking each digest); if that fails, push them from here.
#[allow(clippy::too_many_arguments)]
fn fetch_or_push(
    n: &mut Node,
    m: &Manifest,
    b: &Bundle,
    exe: &(PathBuf, Digest, u64),
    wanted: &BTreeSet<Digest>,
    primary: Option<&str>,
    ca_pem: &[u8],
    pr: &SitePrinter,
) -> anyhow::Result<()> {
    let present = n
        .probe
        .as_ref()
        .map(|p| p.blobs.clone())
        .unwrap_or_default();
    let missing: Vec<&Digest> = wanted.iter().filter(|d| !present.contains(d)).collect();
    let mut t = n.t();
    let mut report = PushReport {
        host: n.name.clone(),
        blobs_present: wanted.len() - missing.len(),
        ..Default::default()
    };
    if missing.is_empty() {
        n.push = Some(report);
        return Ok(());
    }
    // A repository that serves each blob (the source registry answers per repository).
    let mut repo_of: BTreeMap<Digest, &str> = BTreeMap::new();
    for i in &m.images {
        let repo = i.name.rsplit_once(':').map(|x| x.0).unwrap_or(&i.name);
        for d in &i.blobs {
            repo_of.entry(*d).or_insert(repo);
        }
    }
    let fetched = match primary {
        None => Err(anyhow::anyhow!("the first registry host is not serving")),
        Some(from) => (|| {
            let root = n.root.trim_end_matches('/');
            let ca = format!("{root}/registry/fetch-ca.crt");
            state::write_atomic(&mut t, &ca, ca_pem, 0o644)?;
            let mut cmd = format!(
                "{} registry fetch --root {} --from {} --ca {}",
                shell_quote(&remote_bin(&n.root, &exe.1)),
                shell_quote(root),
                shell_quote(from),
                shell_quote(&ca)
            );
            for d in &missing {
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
            let r: crate::registry::fetch::FetchReport =
                serde_json::from_slice(&out.stdout).context("fetch report")?;
            anyhow::Ok((from.to_string(), r))
        })(),
    };
    match fetched {
        Ok((from, r)) => {
            report.fetched_from = Some(from);
            report.blobs_fetched = r.fetched;
            report.bytes_fetched = r.bytes;
        }
        Err(e) => {
            pr.line(&format!(
                "{}: copying from the first registry host failed ({e:#}); sending the blobs from here",
                n.name
            ));
            report.fetch_error = Some(format!("{e:#}"));
            let bin = remote_bin(&n.root, &exe.1);
            let r = push::push_missing(&mut t, &n.root, wanted, &present, b, &(), Some(&bin))?;
            report.blobs_sent = r.blobs_sent;
            report.bytes_sent = r.bytes_sent;
            report.bytes_resumed = r.bytes_resumed;
        }
    }
    n.push = Some(report);
    Ok(())
}

/// With `registry: {external: URL}`: the images pushed into that registry from here (nothing
/// seeded on the nodes). Returns its CA, if one was given, for the nodes to trust.
fn push_external(
    site: &mut Site,
    b: &Bundle,
    m: &Manifest,
    ext: &External,
    pr: &SitePrinter,
) -> anyhow::Result<Option<Vec<u8>>> {
    let r = external::push(b, m, ext, &|l| pr.line(l))
        .with_context(|| format!("pushing the images into {}", ext.address()))?;
    pr.line(&format!(
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

/// The registries the nodes pull from (the first is `darkport_registry`) and each image of `m`
/// as the nodes pull it (`darkport_images`).
pub(crate) fn site_images(site: &Site, m: &Manifest) -> (Vec<String>, Map<String, Value>) {
    let registries: Vec<String> = match &site.external {
        Some(ext) => vec![ext.host.clone()],
        None => site
            .registries()
            .iter()
            .map(|n| n.registry_addr.clone())
            .collect(),
    };
    let images = m
        .images
        .iter()
        .map(|i| {
            let r = match &site.external {
                Some(ext) => ext.reference(&i.name),
                None => format!("{}/{}", registries[0], i.name),
            };
            (i.name.clone(), Value::String(r))
        })
        .collect();
    (registries, images)
}

/// The variables every darkport playbook gets (`darkport_registry`, `darkport_images`, …) for
/// the bundle `bundle_id` with manifest `m`, then the operator's extra vars.
pub(crate) fn playbook_vars(
    bundle_id: Digest,
    m: &Manifest,
    registries: &[String],
    images: Map<String, Value>,
    extra_vars: Map<String, Value>,
) -> Map<String, Value> {
    let digests: Map<String, Value> = m
        .images
        .iter()
        .map(|i| (i.name.clone(), Value::String(i.digest.to_string())))
        .collect();
    let mut vars = Map::new();
    vars.insert("darkport_product".into(), json!(m.product));
    vars.insert("darkport_version".into(), json!(m.version));
    vars.insert("darkport_bundle_id".into(), json!(bundle_id.to_string()));
    vars.insert("darkport_registry".into(), json!(registries[0]));
    vars.insert("darkport_registries".into(), json!(registries));
    vars.insert("darkport_images".into(), Value::Object(images));
    vars.insert("darkport_image_digests".into(), Value::Object(digests));
    vars.extend(extra_vars);
    vars
}

/// Steps 7-8: migrations before, the install/upgrade playbook, migrations after, then the
/// version recorded where everything finished.
#[allow(clippy::too_many_arguments)]
fn run_playbooks(
    site: &mut Site,
    action: &str,
    b: &Bundle,
    m: &Manifest,
    registries: &[String],
    images: Map<String, Value>,
    playbook: Option<&Playbook>,
    migrations: &[(MigrationSpec, Playbook)],
    extra_vars: Map<String, Value>,
    pr: &SitePrinter,
) -> anyhow::Result<()> {
    let forks = site.forks;
    let vars = playbook_vars(b.id(), m, registries, images, extra_vars);
    for (spec, pb) in migrations.iter().filter(|(s, _)| s.phase == Phase::Before) {
        run_migration(site, b, spec, pb, &vars, pr)?;
    }
    if let Some(pb) = playbook {
        let file = format!("{action}.yml");
        pr.line(&format!("running {file}"));
        run_step_playbook(site, pb, &vars, "playbook", &file, |n| n.selected);
    }
    for (spec, pb) in migrations.iter().filter(|(s, _)| s.phase == Phase::After) {
        run_migration(site, b, spec, pb, &vars, pr)?;
    }
    site.lap("playbooks");

    // 8. Done: the version is recorded only where everything finished.
    par(
        &mut site.nodes,
        forks,
        |n| n.selected || n.registry,
        |n| {
            n.state.as_mut().unwrap().complete_operation(&m.product);
            write_state(n)
        },
    );
    site.lap("record");
    Ok(())
}

/// Run one playbook on the selected alive nodes `pick` chooses, journaled as `step`; a node that
/// fails or becomes unreachable is taken out of the run.
pub(crate) fn run_step_playbook(
    site: &mut Site,
    pb: &Playbook,
    vars: &Map<String, Value>,
    step: &str,
    what: &str,
    pick: impl Fn(&Node) -> bool + Copy,
) -> Vec<String> {
    let forks = site.forks;
    let run_on: Vec<String> = site
        .nodes
        .iter()
        .filter(|n| n.selected && n.alive() && pick(n))
        .map(|n| n.name.clone())
        .collect();
    par(
        &mut site.nodes,
        forks,
        |n| n.selected && pick(n),
        |n| {
            n.state.as_mut().unwrap().begin_step(step);
            write_state(n)
        },
    );
    let pool: BTreeMap<String, Shared> = site
        .nodes
        .iter()
        .filter_map(|n| n.t.clone().map(|t| (n.name.clone(), t)))
        .collect();
    let hs = crate::ops::run::InvHosts {
        inv: &site.inv,
        limit: None,
        user: None,
        become_pass: None,
        only: Some(&run_on),
    };
    let conn = Pool {
        pool,
        opts: site.copts.clone(),
    };
    let opts = RunOptions {
        extra_vars: vars.clone(),
        forks,
        ..Default::default()
    };
    let printer = crate::ui::playbook::PlaybookPrinter::new(false, Box::new(std::io::stderr()));
    let summary = engine::run(pb, &hs, &conn, &opts, &printer);
    let mut ok = Vec::new();
    for n in site.nodes.iter_mut().filter(|n| run_on.contains(&n.name)) {
        match summary.stats.get(&n.name) {
            Some(s) if s.unreachable > 0 => {
                n.fail(format!("{} became unreachable during {what}", n.name))
            }
            Some(s) if s.failed > 0 => n.fail(format!("{what} failed on {}", n.name)),
            _ => ok.push(n.name.clone()),
        }
    }
    par(
        &mut site.nodes,
        forks,
        |n| ok.contains(&n.name),
        |n| {
            n.state.as_mut().unwrap().finish_step(step);
            write_state(n)
        },
    );
    ok
}

/// One migration, exactly once: per site on the first selected node (journaled on every
/// node), or on every node; finished ones are skipped, an unfinished non-rerunnable one stops.
fn run_migration(
    site: &mut Site,
    b: &Bundle,
    spec: &MigrationSpec,
    pb: &Playbook,
    vars: &Map<String, Value>,
    pr: &SitePrinter,
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
                pr.line(&format!(
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
        pr.line(&format!("migration {} already applied", spec.id));
        return Ok(());
    }
    pr.line(&format!("migration {} on {}", spec.id, targets.join(", ")));
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
                let mut t = n.t();
                let mut script = String::from("set -e\n");
                for p in &spec.backup {
                    let q = shell_quote(p);
                    let bq = shell_quote(&format!("{p}.darkport-backup-{}", spec.id));
                    script.push_str(&format!(
                    "if [ -e {q} ] && [ ! -e {bq} ]; then cp -a {q} {bq}.tmp && mv {bq}.tmp {bq}; fi\n"
                ));
                }
                run_ok(
                    &mut t,
                    &n.name,
                    "backing up before the migration",
                    &script,
                    &ExecOpts {
                        become_: become_for(n),
                        ..Default::default()
                    },
                )?;
                Ok(())
            },
        );
    }
    let what = format!("migration {}", spec.id);
    run_migration_playbook(site, pb, vars, spec, "migration-run", &what, &targets)?;
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
pub(crate) fn run_migration_playbook(
    site: &mut Site,
    pb: &Playbook,
    vars: &Map<String, Value>,
    spec: &MigrationSpec,
    step: &str,
    what: &str,
    targets: &[String],
) -> anyhow::Result<()> {
    let mut mvars = vars.clone();
    mvars.insert("darkport_migration_id".into(), json!(spec.id));
    let ok = run_step_playbook(site, pb, &mvars, step, what, |n| targets.contains(&n.name));
    if ok.len() != targets.len() {
        bail!(
            "{what} did not finish on {}; fix it and run the same command again",
            targets
                .iter()
                .filter(|t| !ok.contains(t))
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    Ok(())
}

/// Hands the engine the sessions the install already has open.
struct Pool {
    pool: BTreeMap<String, Shared>,
    opts: ConnectOpts,
}

impl Connector for Pool {
    fn connect(
        &self,
        host: &str,
        vars: &Map<String, Value>,
    ) -> Result<Box<dyn Transport>, TransportError> {
        if let Some(t) = self.pool.get(host) {
            return Ok(Box::new(t.clone()));
        }
        let spec = ConnSpec::from_vars(host, vars)?;
        transport::connect(&spec, &self.opts)
    }
}

fn seed(
    n: &mut Node,
    m: &Manifest,
    exe: &(PathBuf, Digest, u64),
    ca_dir: &Path,
    ca_pem: &[u8],
    tmp: &Path,
) -> anyhow::Result<()> {
    let mut t = n.t();
    let root = n.root.trim_end_matches('/').to_string();
    let tlsdir = format!("{root}/registry/tls");
    // Certificate: kept while it was issued by this CA for the same names.
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
    let mut restart = false;
    if cur.stdout != want {
        let out = tmp.join(&n.name);
        let info = tls::issue_server_cert(ca_dir, &names, &out)?;
        // `names` last: it says the files before it belong together.
        state::write_many_atomic(
            &mut t,
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
        restart = true;
    }
    merge_tags(&mut t, &n.name, &root, m)?;
    // The service.
    let bin = remote_bin(&root, &exe.1);
    let listen = match n.spec.host.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{}", n.port),
        Ok(ip) => format!("{ip}:{}", n.port),
        Err(_) => format!("0.0.0.0:{}", n.port),
    };
    let cmdline = format!(
        "{} registry serve --root {} --listen {} --tls-cert {tlsdir}/server.crt --tls-key {tlsdir}/server.key --progress plain",
        shell_quote(&bin),
        shell_quote(&root),
        listen
    );
    let systemd = n.probe.as_ref().map(|p| p.systemd).unwrap_or(false);
    let script = if systemd {
        format!(
            r#"set -e
u=/etc/systemd/system/darkport-registry.service
new=$(mktemp)
cat > "$new" <<'EOF'
[Unit]
Description=darkport site registry (pull-only OCI registry from {root})
After=network-online.target
[Service]
ExecStart={cmdline}
Restart=always
RestartSec=1
[Install]
WantedBy=multi-user.target
EOF
if ! cmp -s "$new" "$u"; then mv "$new" "$u"; systemctl daemon-reload; systemctl enable darkport-registry >/dev/null 2>&1; systemctl restart darkport-registry; else rm -f "$new"; fi
{restart_cmd}
systemctl start darkport-registry
"#,
            restart_cmd = if restart {
                "systemctl restart darkport-registry"
            } else {
                ""
            }
        )
    } else {
        // Supervised: a shell loop restarts the server when it exits; its command line is
        // kept beside it so a changed configuration restarts it.
        format!(
            r#"set -e
d={reg}
mkdir -p "$d"
cat > "$d/supervise.sh.new" <<'EOF'
#!/bin/sh
# darkport site registry, supervised: restarted one second after it exits.
while :; do
  {cmdline} >> {reg}/serve.log 2>&1
  sleep 1
done
EOF
pid=$(cat "$d/supervise.pid" 2>/dev/null || true)
running=0
if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then running=1; fi
if [ $running = 1 ] && cmp -s "$d/supervise.sh.new" "$d/supervise.sh" && [ {restart} = 0 ]; then
  rm -f "$d/supervise.sh.new"; exit 0
fi
if [ $running = 1 ]; then kill -TERM -- -"$pid" 2>/dev/null || kill "$pid" 2>/dev/null || true; sleep 0.3; fi
mv "$d/supervise.sh.new" "$d/supervise.sh"; chmod 755 "$d/supervise.sh"
setsid sh "$d/supervise.sh" </dev/null >/dev/null 2>&1 &
echo $! > "$d/supervise.pid"
"#,
            reg = shell_quote(&format!("{root}/registry")),
            restart = if restart { 1 } else { 0 }
        )
    };
    run_ok(
        &mut t,
        &n.name,
        "starting the registry",
        &script,
        &ExecOpts {
            become_: if systemd { become_for(n) } else { None },
            ..Default::default()
        },
    )?;
    wait_registry(&n.registry_addr, ca_pem, Duration::from_secs(20)).with_context(|| {
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
    let idx_path = format!("{}/registry/repositories.json", root.trim_end_matches('/'));
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

/// GET /v2/ over TLS trusting only the site CA; Ok when it answers 200 or 401.
pub fn check_registry(addr: &str, ca_pem: &[u8], timeout: Duration) -> anyhow::Result<u16> {
    use std::io::Read;
    use std::net::ToSocketAddrs;
    let sa = addr
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| anyhow::anyhow!("cannot resolve {addr}"))?;
    let tcp = std::net::TcpStream::connect_timeout(&sa, timeout)?;
    tcp.set_read_timeout(Some(timeout))?;
    tcp.set_write_timeout(Some(timeout))?;
    let ca = native_tls::Certificate::from_pem(ca_pem)?;
    let conn = native_tls::TlsConnector::builder()
        .add_root_certificate(ca)
        .disable_built_in_roots(true)
        .build()?;
    let host = addr
        .rsplit_once(':')
        .map(|x| x.0)
        .unwrap_or(addr)
        .trim_matches(['[', ']']);
    let mut s = conn
        .connect(host, tcp)
        .map_err(|e| anyhow::anyhow!("TLS: {e}"))?;
    write!(
        s,
        "GET /v2/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    let _ = s.take(4096).read_to_end(&mut buf);
    let head = String::from_utf8_lossy(&buf);
    let code: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("not an HTTP answer"))?;
    if code == 200 || code == 401 {
        Ok(code)
    } else {
        bail!("GET /v2/ answered {code}")
    }
}

fn wait_registry(addr: &str, ca_pem: &[u8], total: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + total;
    loop {
        match check_registry(addr, ca_pem, Duration::from_secs(3)) {
            Ok(_) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            // The server is up a few tens of milliseconds after its start: poll often.
            Err(_) => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// Make every runtime on the node trust the site CA for each registry address.
fn trust(n: &mut Node, registries: &[String], ca_pem: &[u8]) -> anyhow::Result<()> {
    let mut t = n.t();
    let pre = n.trust_root.trim_end_matches('/');
    let mut script = String::from("set -e\n");
    for r in registries {
        for d in [
            "etc/docker/certs.d",
            "etc/containers/certs.d",
            "etc/containerd/certs.d",
        ] {
            let dir = shell_quote(&format!("{pre}/{d}/{r}"));
            script.push_str(&format!(
                "mkdir -p {dir}; printf '%s' \"$CA\" > {dir}/ca.crt.tmp; mv -f {dir}/ca.crt.tmp {dir}/ca.crt\n"
            ));
        }
        // containerd tries the hosts in order, then `server`: this registry first, then the
        // other registry hosts of the site (HA: they serve the same digests).
        let dir = format!("{pre}/etc/containerd/certs.d/{r}");
        let mut toml =
            format!("# written by darkport: the site registry\nserver = \"https://{r}\"\n");
        for h in std::iter::once(r).chain(registries.iter().filter(|x| *x != r)) {
            toml.push_str(&format!(
                "\n[host.\"https://{h}\"]\n  capabilities = [\"pull\", \"resolve\"]\n  ca = \"{pre}/etc/containerd/certs.d/{h}/ca.crt\"\n"
            ));
        }
        script.push_str(&format!(
            "printf '%s' {} > {q}/hosts.toml.tmp; mv -f {q}/hosts.toml.tmp {q}/hosts.toml\n",
            shell_quote(&toml),
            q = shell_quote(&dir)
        ));
    }
    // podman/skopeo/buildah: each registry host mirrors the others, so a pull by any of their
    // names still works while one is down.
    if registries.len() > 1 {
        let mut conf = String::from(
            "# written by darkport: the site registries serve the same images; a pull falls back\n# to the others while one is down\n",
        );
        for r in registries {
            conf.push_str(&format!("\n[[registry]]\nlocation = \"{r}\"\n"));
            for m in registries.iter().filter(|x| *x != r) {
                conf.push_str(&format!("[[registry.mirror]]\nlocation = \"{m}\"\n"));
            }
        }
        let d = shell_quote(&format!("{pre}/etc/containers/registries.conf.d"));
        script.push_str(&format!(
            "mkdir -p {d}; printf '%s' {} > {d}/50-darkport.conf.tmp; mv -f {d}/50-darkport.conf.tmp {d}/50-darkport.conf\n",
            shell_quote(&conf)
        ));
    }
    run_ok(
        &mut t,
        &n.name,
        "installing the site CA for the container runtimes",
        &script,
        &ExecOpts {
            env: vec![("CA".into(), String::from_utf8_lossy(ca_pem).into_owned())],
            become_: become_for(n),
            ..Default::default()
        },
    )?;
    Ok(())
}

/// `darkport status`: one row per node.
#[derive(Debug, Serialize)]
pub struct StatusRow {
    pub host: String,
    pub reachable: bool,
    pub error: Option<String>,
    pub product: Option<String>,
    pub version: Option<String>,
    pub bundle_digest: Option<Digest>,
    pub installed_at: Option<String>,
    pub operation: Option<String>,
    pub migrations: Vec<String>,
    pub registry: Option<String>,
}

pub fn status(a: &StatusArgs) -> anyhow::Result<i32> {
    let mut site = Site::load(&a.site)?;
    site.connect();
    let ca_dir = a.ca_dir.clone().unwrap_or_else(|| default_ca_dir(&a.site));
    let ca_pem = std::fs::read(ca_dir.join(tls::CA_CERT)).ok();
    site.read_states();
    let rows: Vec<StatusRow> = site
        .nodes
        .iter()
        .map(|n| {
            let st = n.state.as_ref();
            StatusRow {
                host: n.name.clone(),
                reachable: n.t.is_some(),
                error: n.error.clone(),
                product: st.and_then(|s| s.product.clone()),
                version: st.and_then(|s| s.version.clone()),
                bundle_digest: st.and_then(|s| s.bundle_digest),
                installed_at: st.and_then(|s| s.installed_at.clone()),
                operation: st
                    .and_then(|s| s.operation.as_ref())
                    .map(|o| format!("unfinished {} to {} since {}", o.action, o.to, o.started_at)),
                migrations: st
                    .map(|s| s.migrations.iter().map(|m| m.id.clone()).collect())
                    .unwrap_or_default(),
                registry: n.registry.then(|| match (&ca_pem, n.t.is_some()) {
                    (Some(ca), true) => {
                        match check_registry(&n.registry_addr, ca, Duration::from_secs(3)) {
                            Ok(_) => format!("up at {}", n.registry_addr),
                            Err(e) => format!("DOWN at {}: {e}", n.registry_addr),
                        }
                    }
                    (None, _) => format!("unknown (no site CA in {})", ca_dir.display()),
                    (_, false) => "unknown (host unreachable)".into(),
                }),
            }
        })
        .collect();
    let ok = rows.iter().all(|r| r.reachable && r.error.is_none());
    if a.site.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({"ok": ok, "nodes": rows}))?
        );
    } else {
        crate::ui::site::print_status(&rows);
    }
    Ok(if ok { 0 } else { 1 })
}
