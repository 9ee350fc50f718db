//! The site operations' reports (install, preflight, upgrade, rollback, prune, status) and the
//! reporter they call while they run.

use super::Verdict;
use crate::digest::Digest;
pub use crate::node::push::{PushReport, PushReporter};
use serde::Serialize;
use serde_json::Value;

/// What a site operation says while it runs (implemented in `ui/`).
pub trait SiteReporter: Sync {
    /// One step line (`==> push done`).
    fn line(&self, msg: &str);
    /// Something the operator must see even when the run goes on.
    fn warn(&self, msg: &str);
    /// Progress of the blob push, over `total` bytes.
    fn push_progress(&self, total: u64) -> Box<dyn PushProgress + '_>;
    /// Progress of hashing the bundle's members.
    fn verify(&self) -> &dyn crate::bundle::Reporter;
    /// Output of one playbook run (a fresh reporter per run).
    fn playbook(&self) -> Box<dyn crate::playbook::engine::Reporter + '_>;
}

/// A push progress that is told when the push is over.
pub trait PushProgress: PushReporter {
    fn finish(&self);
}

impl PushProgress for () {
    fn finish(&self) {}
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

impl PreflightRow {
    pub fn ok(&self) -> bool {
        self.problems.is_empty()
    }
}

/// `darkport preflight`.
#[derive(Debug, Serialize)]
pub struct PreflightReport {
    pub ok: bool,
    pub bundle: Digest,
    pub nodes: Vec<PreflightRow>,
}

/// An install or upgrade stopped by its preflight: nothing changed.
#[derive(Debug, Serialize)]
pub struct Refusal {
    pub ok: bool,
    pub phase: &'static str,
    pub nodes: Vec<PreflightRow>,
}

impl Refusal {
    pub fn preflight(nodes: Vec<PreflightRow>) -> Refusal {
        Refusal {
            ok: false,
            phase: "preflight",
            nodes,
        }
    }
}

/// Why a node left a run: it could not be reached (or refused us), it failed a step (the
/// target's or the input's fault), or darkport hit a bug there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureClass {
    Unreachable,
    Failed,
    Internal,
}

/// Per-node result of an install or upgrade.
#[derive(Debug, Serialize)]
pub struct NodeResult {
    pub host: String,
    pub registry: bool,
    pub ok: bool,
    pub error: Option<String>,
    pub error_class: Option<FailureClass>,
    pub push: Option<PushReport>,
}

/// What pushing the images into an external registry did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ExternalReport {
    pub registry: String,
    pub blobs_sent: usize,
    pub bytes_sent: u64,
    pub blobs_present: usize,
    pub blobs_mounted: usize,
    /// Manifests and indexes pushed (each with its exact bytes), and their bytes.
    pub manifests: usize,
    pub manifest_bytes: u64,
}

/// An install that ran past its preflight.
#[derive(Debug, Serialize)]
pub struct InstallDone {
    pub ok: bool,
    pub product: String,
    pub version: String,
    pub bundle_id: Digest,
    pub seconds: f64,
    pub nodes: Vec<NodeResult>,
    /// Seconds per phase, in the order they ran.
    pub phases: Value,
    pub external_registry: Option<ExternalReport>,
    /// The compose product's deployment (absent for playbook-only products).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<DeployReport>,
    pub error: Option<String>,
}

/// A compose product deployed onto the site's engine.
#[derive(Clone, Debug, Serialize)]
pub struct DeployReport {
    /// `swarm` or `compose`.
    pub target: String,
    /// The stack (Swarm) or project (Compose) name.
    pub project: String,
    /// The Swarm manager that ran `docker stack deploy`; the hosts for `compose`.
    pub hosts: Vec<String>,
    /// The product version deployed (`status`: as the node records it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub converged: bool,
    /// How long the deploy took (install/upgrade only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds: Option<f64>,
    pub services: Vec<crate::compose::stack::ServiceState>,
    /// The engine could not be asked (`status`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `darkport install`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum InstallReport {
    Refused(Refusal),
    Done(Box<InstallDone>),
}

/// A migration as an upgrade plan lists it.
#[derive(Debug, Serialize)]
pub struct PlannedMigration {
    pub id: String,
    pub version: String,
    pub scope: crate::state::plan::Scope,
    pub phase: crate::state::plan::Phase,
    pub rerunnable: bool,
    pub backup: Vec<String>,
}

/// One node in an upgrade plan.
#[derive(Debug, Serialize)]
pub struct PlanNode {
    pub host: String,
    pub from: Option<String>,
    pub to: String,
    pub registry: bool,
    pub blobs_to_send: usize,
    pub corrupt_blobs: usize,
    pub bytes_to_send: u64,
}

/// `darkport upgrade --plan`.
#[derive(Debug, Serialize)]
pub struct UpgradePlan {
    #[serde(skip)]
    pub product: String,
    pub from: String,
    pub to: String,
    pub playbook: String,
    pub migrations: Vec<PlannedMigration>,
    pub nodes: Vec<PlanNode>,
}

/// An upgrade that ran past its preflight.
#[derive(Debug, Serialize)]
pub struct UpgradeDone {
    pub ok: bool,
    pub from: String,
    pub to: String,
    pub migrations: Vec<String>,
    pub nodes: Vec<NodeResult>,
    pub phases: Value,
    pub external_registry: Option<ExternalReport>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<DeployReport>,
    pub error: Option<String>,
}

/// The site already runs the bundle's version.
#[derive(Debug, Serialize)]
pub struct NothingToDo {
    pub ok: bool,
    pub nothing_to_do: bool,
    pub version: String,
}

/// `darkport upgrade`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum UpgradeReport {
    Refused(Refusal),
    NothingToDo(NothingToDo),
    Plan(UpgradePlan),
    Done(Box<UpgradeDone>),
}

/// A migration a rollback undoes.
#[derive(Debug, Serialize)]
pub struct UndoStep {
    pub id: String,
    pub rollback: Option<String>,
    pub backup: Vec<String>,
}

/// `darkport rollback --plan`.
#[derive(Debug, Serialize)]
pub struct RollbackPlanReport {
    #[serde(skip)]
    pub product: String,
    pub from: String,
    pub to: String,
    pub resuming: bool,
    pub migrations: Vec<UndoStep>,
    pub playbook: Option<String>,
    pub nodes: Vec<String>,
}

/// One node after a rollback.
#[derive(Debug, Serialize)]
pub struct NodeOutcome {
    pub host: String,
    pub ok: bool,
    pub error: Option<String>,
}

/// A rollback that ran.
#[derive(Debug, Serialize)]
pub struct RollbackDone {
    pub ok: bool,
    pub from: String,
    pub to: String,
    pub migrations_undone: Vec<String>,
    pub nodes: Vec<NodeOutcome>,
    /// The previous version's compose deployment, deployed again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deploy: Option<DeployReport>,
    pub error: Option<String>,
}

/// `darkport rollback`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum RollbackReport {
    Plan(RollbackPlanReport),
    Done(RollbackDone),
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

/// `darkport prune`.
#[derive(Debug, Serialize)]
pub struct PruneReport {
    pub ok: bool,
    /// What reading the inventory and `--limit` warned about (Ansible's wording).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub dry_run: bool,
    pub nodes: Vec<PruneRow>,
}

/// `darkport uninstall`: per node, what was done.
#[derive(Debug, Serialize)]
pub struct UninstallRow {
    pub host: String,
    pub ok: bool,
    pub error: Option<String>,
    /// One line per thing removed (containers, the registry service, darkport_root).
    pub done: Vec<String>,
}

/// `darkport uninstall`.
#[derive(Debug, Serialize)]
pub struct UninstallReport {
    pub ok: bool,
    /// `--check`: nothing was changed.
    pub check: bool,
    pub purge_data: bool,
    /// The bundle's `uninstall.yml` when it has one.
    pub playbook: Option<String>,
    pub nodes: Vec<UninstallRow>,
}

impl Verdict for UninstallReport {
    fn ok(&self) -> bool {
        self.ok
    }
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
    /// The version a rollback would return to.
    pub previous: Option<String>,
    /// The product's containers (image from a site registry), as docker/podman list them.
    pub containers: Vec<ContainerRow>,
    /// Why the containers could not be listed.
    pub containers_error: Option<String>,
    /// Every finished install, upgrade and rollback, oldest first.
    pub history: Vec<crate::state::Transition>,
}

/// One container of the product on a node.
#[derive(Debug, Serialize)]
pub struct ContainerRow {
    pub runtime: String,
    pub name: String,
    pub image: String,
    pub running: bool,
    /// As the runtime says it (`Up 3 hours`, `Exited (1) 2 minutes ago`).
    pub status: String,
}

/// `darkport status`: the site in one line.
#[derive(Debug, Serialize)]
pub struct SiteSummary {
    pub product: Option<String>,
    /// The version most nodes run.
    pub version: Option<String>,
    pub nodes_at_version: usize,
    pub nodes: usize,
    pub previous: Option<String>,
    /// Every node records the same previous version and none is mid-operation.
    pub rollback_possible: bool,
    pub containers_running: usize,
    pub containers: usize,
}

/// `darkport status`.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    pub ok: bool,
    /// What reading the inventory and `--limit` warned about (Ansible's wording).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    pub site: SiteSummary,
    /// The compose product's deployments, service by service (absent for playbook-only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deploy: Vec<DeployReport>,
    pub nodes: Vec<StatusRow>,
}

impl Verdict for PreflightReport {
    fn ok(&self) -> bool {
        self.ok
    }
}

impl Verdict for InstallReport {
    fn ok(&self) -> bool {
        match self {
            InstallReport::Refused(_) => false,
            InstallReport::Done(d) => d.ok,
        }
    }
}

impl Verdict for UpgradeReport {
    fn ok(&self) -> bool {
        match self {
            UpgradeReport::Refused(_) => false,
            UpgradeReport::Done(d) => d.ok,
            UpgradeReport::NothingToDo(_) | UpgradeReport::Plan(_) => true,
        }
    }
}

impl Verdict for RollbackReport {
    fn ok(&self) -> bool {
        match self {
            RollbackReport::Plan(_) => true,
            RollbackReport::Done(d) => d.ok,
        }
    }
}

impl Verdict for PruneReport {
    fn ok(&self) -> bool {
        self.ok
    }
}

impl Verdict for StatusReport {
    fn ok(&self) -> bool {
        self.ok
    }
}
