//! The site an operation works on: the inventory, one [`Node`] per host it touches (with its
//! session, probe, state and first error), and the fan-out over them ([`par`]).

pub mod journal;
mod shared;

pub use shared::Shared;

use crate::bundle::Bundle;
use crate::digest::Digest;
use crate::inventory::Inventory;
use crate::node::Layout;
use crate::ops::external::External;
use crate::report::site::{ExternalReport, FailureClass, NodeResult, PushReport, SiteReporter};
use crate::state::{self, probe::NodeProbe, NodeState};
use crate::transport::{self, shell_quote, ConnSpec, ConnectOpts, ExecOpts, Transport};
use anyhow::{bail, Context};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use crate::node::paths::DEFAULT_ROOT;
/// Default `darkport_registry_port`.
pub const DEFAULT_REGISTRY_PORT: u16 = 5000;

/// How to reach the site's nodes (every site operation takes one).
#[derive(Clone, Debug)]
pub struct SiteOptions {
    /// Inventory file(s), merged in order.
    pub inventory: Vec<PathBuf>,
    /// Only hosts matching this pattern (registry hosts are always contacted).
    pub limit: Option<String>,
    /// Hosts worked on in parallel.
    pub forks: usize,
    /// known_hosts file (default `~/.ssh/known_hosts`).
    pub known_hosts: Option<PathBuf>,
    /// Accept and record keys of hosts not yet known (never changed keys).
    pub accept_new_host_keys: bool,
    /// `-u`, `--private-key`, `-k`, `-K`: where the inventory sets none.
    pub conn: crate::ops::conn::ConnDefaults,
    /// `-v` count for the playbooks the operation runs.
    pub verbosity: u8,
}

impl SiteOptions {
    /// `darkport-ca/` next to the first inventory file: the site CA's default home.
    pub fn default_ca_dir(&self) -> PathBuf {
        self.inventory
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
}

/// Which bundle, and the keys it must be signed with.
#[derive(Clone, Debug)]
pub struct BundleTrust {
    pub bundle: PathBuf,
    pub pubkeys: Vec<PathBuf>,
    pub allow_unsigned: bool,
}

/// The controller's own darkport binary (registry hosts run it).
#[derive(Clone, Debug)]
pub struct Exe {
    pub path: PathBuf,
    pub digest: Digest,
    pub size: u64,
}

impl Exe {
    pub fn current() -> anyhow::Result<Exe> {
        let path = std::env::current_exe().context("locating the darkport binary")?;
        let f =
            std::fs::File::open(&path).with_context(|| format!("reading {}", path.display()))?;
        let (digest, size) =
            Digest::of_reader(f).with_context(|| format!("hashing {}", path.display()))?;
        Ok(Exe { path, digest, size })
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
    /// The container runtime that pulls the product here (`darkport_runtime`: `docker`,
    /// `podman`, `containerd`, or `none`); unset: every runtime found is checked.
    pub runtime: Option<String>,
    pub t: Option<Shared>,
    pub probe: Option<NodeProbe>,
    pub state: Option<NodeState>,
    /// The first error that took this node out of the run, and its class.
    pub error: Option<String>,
    pub error_class: Option<FailureClass>,
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
        self.fail_as(FailureClass::Failed, e);
    }
    /// Record the node's first error with its class.
    pub(crate) fn fail_as(&mut self, class: FailureClass, e: impl std::fmt::Display) {
        if self.error.is_none() {
            self.error = Some(e.to_string());
            self.error_class = Some(class);
        }
    }
    pub(crate) fn layout(&self) -> Layout {
        Layout::new(&self.root)
    }
    /// Become settings for commands that need root (login user is not root, or the
    /// inventory asks for become).
    pub(crate) fn become_(&self) -> Option<transport::Become> {
        if self.spec.become_default || self.spec.user != "root" {
            Some(self.spec.become_.clone())
        } else {
            None
        }
    }
    /// Run `script`; a non-zero exit is an error naming `what`, the host and stderr.
    pub(crate) fn run_ok(
        &self,
        what: &str,
        script: &str,
        opts: &ExecOpts,
    ) -> anyhow::Result<String> {
        let out = self.t().exec(script, opts)?;
        if !out.success() {
            bail!(
                "{what} on {} failed (exit {}): {}",
                self.name,
                out.exit_code,
                out.stderr_str().trim()
            );
        }
        Ok(out.stdout_str())
    }
    /// Upload small files (name → bytes) to `dir` unless a `.complete` marker says they are
    /// there: one round trip for all of them, the marker renamed into place last.
    pub(crate) fn put_files(
        &self,
        dir: &str,
        files: &[(String, Vec<u8>, u32)],
    ) -> anyhow::Result<()> {
        let mut t = self.t();
        let marker = format!("{dir}/.complete");
        let out = t.exec(
            &format!("test -f {}", shell_quote(&marker)),
            &ExecOpts::default(),
        )?;
        if out.success() {
            return Ok(());
        }
        let mut all: Vec<(String, Vec<u8>, u32)> = files
            .iter()
            .map(|(rel, data, mode)| (format!("{dir}/{rel}"), data.clone(), *mode))
            .collect();
        all.push((marker, Vec::new(), 0o644));
        state::write_many_atomic(&mut t, &all)?;
        Ok(())
    }
    /// The node's line in an install or upgrade report.
    pub(crate) fn result(&self) -> NodeResult {
        NodeResult {
            host: self.name.clone(),
            registry: self.registry,
            ok: self.error.is_none(),
            error: self.error.clone(),
            error_class: self.error_class,
            push: self.push.clone(),
        }
    }
}

/// Run `f` on every alive node (of those `pick` selects), at most `forks` at a time; an error
/// (or a panic) takes that node out of the run.
pub(crate) fn par<F>(nodes: &mut [Node], forks: usize, pick: impl Fn(&Node) -> bool, f: F)
where
    F: Fn(&mut Node) -> anyhow::Result<()> + Sync,
{
    let chosen: Vec<&mut Node> = nodes.iter_mut().filter(|n| n.alive() && pick(n)).collect();
    for (n, r) in crate::fanout::fanout(chosen, forks, |n| f(n)) {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => n.fail_as(classify(&e), format!("{e:#}")),
            Err(p) => n.fail_as(FailureClass::Internal, p),
        }
    }
}

/// The class of a node's error, from its chain.
pub(crate) fn classify(e: &anyhow::Error) -> FailureClass {
    for c in e.chain() {
        if c.is::<crate::report::Internal>() || c.is::<crate::fanout::Panicked>() {
            return FailureClass::Internal;
        }
        if let Some(t) = c.downcast_ref::<transport::TransportError>() {
            if t.is_unreachable() {
                return FailureClass::Unreachable;
            }
        }
    }
    FailureClass::Failed
}

pub(crate) fn var_str(vars: &Map<String, Value>, k: &str) -> Option<String> {
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
    pub verbosity: u8,
    pub limit: Option<String>,
    /// "Could not match supplied host pattern" for parts of `--limit` that name no host.
    pub limit_warnings: Vec<String>,
    /// `registry: {external: URL}` in the inventory: images go to that registry, no node
    /// runs darkport's.
    pub external: Option<External>,
    pub external_report: Option<ExternalReport>,
    /// What the compose deployment reported (install/upgrade of a compose product).
    pub deploy_report: Option<crate::report::site::DeployReport>,
    /// Wall time of each phase (`--json` reports it as `phases`).
    pub laps: Vec<(String, f64)>,
    lap_from: Instant,
}

/// The hosts the `--limit` selects (all without one), and Ansible's warnings for the parts
/// of it that match nothing; a limit that matches no host at all is an error, as it is for
/// ansible-playbook.
fn selected_hosts(
    inv: &Inventory,
    all: &[String],
    limit: Option<&str>,
) -> anyhow::Result<(BTreeSet<String>, Vec<String>)> {
    Ok(match limit {
        Some(l) => {
            let s = inv.select_limited("all", Some(l))?;
            if s.hosts.is_empty() {
                bail!("--limit {l:?} matches no host of the inventory");
            }
            (s.hosts.into_iter().collect(), s.warnings)
        }
        None => (all.iter().cloned().collect(), Vec::new()),
    })
}

/// The hosts that serve the site registry: group `registry`, else the first host; none with
/// an external registry.
fn registry_hosts(
    inv: &Inventory,
    all: &[String],
    external: bool,
) -> anyhow::Result<BTreeSet<String>> {
    let mut registry: BTreeSet<String> = if inv.has_group("registry") {
        inv.select("registry")?.into_iter().collect()
    } else {
        BTreeSet::new()
    };
    if external {
        registry.clear();
    } else if registry.is_empty() {
        registry.insert(all[0].clone());
    }
    Ok(registry)
}

/// A node as the inventory describes host `h`.
fn node_of(inv: &Inventory, h: &str, registry: bool, selected: bool) -> anyhow::Result<Node> {
    let vars = inv.host_vars(h);
    let spec = crate::inventory::connvars::conn_spec(h, &vars)?;
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
    Ok(Node {
        name: h.to_string(),
        registry_addr: format!("{}:{port}", spec.host),
        port,
        spec,
        root,
        registry,
        selected,
        extra_names,
        trust_root: var_str(&vars, "darkport_trust_root").unwrap_or_else(|| "/".into()),
        runtime: var_str(&vars, "darkport_runtime"),
        t: None,
        probe: None,
        state: None,
        error: None,
        error_class: None,
        push: None,
    })
}

impl Site {
    pub fn load(o: &SiteOptions) -> anyhow::Result<Site> {
        let mut inv = Inventory::load(&o.inventory)?;
        inv.set_defaults(o.conn.to_vars());
        let all = inv.hosts();
        if all.is_empty() {
            bail!("the inventory has no hosts");
        }
        let (selected, limit_warnings) = selected_hosts(&inv, &all, o.limit.as_deref())?;
        let external = External::from_var(inv.host_vars(&all[0]).get("registry"))
            .context("inventory variable `registry`")?;
        let registry = registry_hosts(&inv, &all, external.is_some())?;
        let mut nodes = Vec::new();
        for h in &all {
            if selected.contains(h) || registry.contains(h) {
                nodes.push(node_of(
                    &inv,
                    h,
                    registry.contains(h),
                    selected.contains(h),
                )?);
            }
        }
        let mut copts = ConnectOpts::default();
        if let Some(k) = &o.known_hosts {
            copts.known_hosts = k.clone();
        }
        copts.accept_new_host_keys = o.accept_new_host_keys;
        Ok(Site {
            inv,
            nodes,
            copts,
            forks: o.forks.max(1),
            verbosity: o.verbosity,
            limit: o.limit.clone(),
            limit_warnings,
            external,
            external_report: None,
            deploy_report: None,
            laps: Vec::new(),
            lap_from: Instant::now(),
        })
    }

    /// What reading the inventory warned about (shown by the ops through their reporter).
    pub(crate) fn warn_inventory(&self, rep: &dyn SiteReporter) {
        for w in self.warnings() {
            rep.warn(&format!("[WARNING]: {w}"));
        }
    }

    /// The inventory's warnings and those of `--limit`, for ops that report them instead.
    pub(crate) fn warnings(&self) -> Vec<String> {
        self.inv
            .warnings()
            .iter()
            .chain(&self.limit_warnings)
            .cloned()
            .collect()
    }

    /// Load, connect and read every node's state; any unreachable node or unreadable state
    /// stops `what` before anything changed.
    pub fn open_all(o: &SiteOptions, what: &str) -> anyhow::Result<Site> {
        let mut site = Site::load(o)?;
        site.connect();
        site.read_states();
        let bad = site.failures();
        if !bad.is_empty() {
            bail!(
                "{what} refused: nothing was changed on any node\n  {}",
                bad.join("\n  ")
            );
        }
        Ok(site)
    }

    /// An error when a node failed during `what` (a re-run resumes).
    pub(crate) fn check_all(&self, what: &str) -> anyhow::Result<()> {
        let bad = self.failures();
        if bad.is_empty() {
            Ok(())
        } else {
            bail!(
                "{what} failed: {}; run the same command again (it resumes)",
                bad.join("; ")
            )
        }
    }

    /// Open one session per node, in parallel; unreachable nodes get their error.
    pub fn connect(&mut self) {
        let specs: Vec<ConnSpec> = self.nodes.iter().map(|n| n.spec.clone()).collect();
        let copts = &self.copts;
        let res = transport::for_each_host(&specs, self.forks, |s| transport::connect(s, copts));
        for (n, (_, r)) in self.nodes.iter_mut().zip(res) {
            match r {
                Ok(t) => n.t = Some(Shared::new(t)),
                Err(e) => n.fail_as(FailureClass::Unreachable, e),
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
    pub(crate) fn primary_registry(&self) -> Option<String> {
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

    /// The laps as a JSON object.
    pub fn phases_json(&self) -> Value {
        Value::Object(
            self.laps
                .iter()
                .map(|(k, v)| (k.clone(), json!((v * 1000.0).round() / 1000.0)))
                .collect(),
        )
    }

    pub(crate) fn registries(&self) -> Vec<&Node> {
        self.nodes.iter().filter(|n| n.registry).collect()
    }

    /// `host:port` of every registry the nodes pull from: the external one, else each
    /// registry host.
    pub(crate) fn registry_addrs(&self) -> Vec<String> {
        match &self.external {
            Some(ext) => vec![ext.host.clone()],
            None => self
                .registries()
                .iter()
                .map(|n| n.registry_addr.clone())
                .collect(),
        }
    }

    /// The registries in the order node `name` tries them: a registry host its own registry
    /// first; any other node the registry `k mod R` for the `k`-th such node in inventory
    /// order, then the ones after it, wrapping round. With several registry hosts (HA) this
    /// spreads the site's pulls evenly over them and every node still falls back to the others.
    pub(crate) fn registry_order(&self, name: &str) -> Vec<String> {
        let all = self.registry_addrs();
        if self.external.is_some() || all.len() < 2 {
            return all;
        }
        let first = match self.nodes.iter().find(|n| n.name == name) {
            Some(n) if n.registry => self.registries().iter().position(|r| r.name == name),
            Some(_) => {
                let k = self
                    .nodes
                    .iter()
                    .filter(|n| !n.registry)
                    .position(|n| n.name == name);
                k.map(|k| k % all.len())
            }
            None => None,
        }
        .unwrap_or(0);
        all[first..].iter().chain(&all[..first]).cloned().collect()
    }

    /// An error for the whole operation: internal (exit 2) when a node hit a bug.
    pub(crate) fn op_error(&self, msg: String) -> anyhow::Error {
        if self
            .nodes
            .iter()
            .any(|n| n.error_class == Some(FailureClass::Internal))
        {
            anyhow::Error::new(crate::report::Internal(msg))
        } else {
            anyhow::anyhow!(msg)
        }
    }

    /// `host: error` of every node that failed.
    pub(crate) fn failures(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter_map(|n| n.error.as_ref().map(|e| format!("{}: {e}", n.name)))
            .collect()
    }
}

/// Open the bundle and check it completely (signature first, then every member) before any
/// node is contacted.
pub(crate) fn open_bundle(b: &BundleTrust, rep: &dyn SiteReporter) -> anyhow::Result<Bundle> {
    let trust = crate::ops::trust::resolve(&b.pubkeys, b.allow_unsigned)?;
    let refuse = || {
        format!(
            "bundle {} refused: nothing was changed on any node",
            b.bundle.display()
        )
    };
    let bundle = Bundle::open(&b.bundle, &trust).with_context(refuse)?;
    bundle.verify_all(rep.verify()).with_context(refuse)?;
    if bundle.signed_by().is_none() {
        rep.warn(&format!(
            "WARNING: {} is {} and is installed only because of --allow-unsigned",
            b.bundle.display(),
            if bundle.has_signature() {
                "signed by an untrusted key"
            } else {
                "UNSIGNED"
            }
        ));
    }
    Ok(bundle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::TransportError;

    #[test]
    fn a_node_error_is_classed_from_its_chain() {
        let down = anyhow::Error::new(TransportError::Unreachable {
            host: "n1".into(),
            msg: "connection refused".into(),
        })
        .context("pushing blobs");
        assert_eq!(classify(&down), FailureClass::Unreachable);
        let step = anyhow::Error::new(TransportError::Failed {
            host: "n1".into(),
            op: "mkdir".into(),
            msg: "No space left on device".into(),
        });
        assert_eq!(classify(&step), FailureClass::Failed);
        let bug = anyhow::Error::new(crate::fanout::Panicked("oops".into())).context("seed");
        assert_eq!(classify(&bug), FailureClass::Internal);
    }
}
