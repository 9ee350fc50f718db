//! Output of the site commands (install, preflight, upgrade, rollback, prune, status): step
//! lines and push progress while they run ([`SitePrinter`], the [`SiteReporter`] of the
//! terminal), and the per-node tables of their reports.

use super::bundle::BundleProgress;
use super::playbook::PlaybookPrinter;
use super::progress::Progress;
use super::{bytes, ProgressMode};
use crate::digest::Digest;
use crate::report::site::{
    DeployReport, InstallDone, InstallReport, NodeResult, PreflightReport, PreflightRow,
    PruneReport, PushProgress, PushReporter, RollbackPlanReport, RollbackReport, SiteReporter,
    StatusReport, UpgradePlan, UpgradeReport,
};
use crate::state::plan::{Phase, Scope};
use std::time::Duration;

pub struct SitePrinter {
    mode: ProgressMode,
    verify: BundleProgress,
    /// `--json`: stdout holds only the document, so step lines and play output go to stderr.
    json: bool,
    /// `-v` count, for the play output.
    verbosity: u8,
}

impl SitePrinter {
    /// Step lines and progress in `mode`; the bundle check shows its progress the same way.
    pub fn new(mode: ProgressMode) -> Self {
        SitePrinter {
            mode: mode.resolve(),
            verify: BundleProgress::new(mode),
            json: false,
            verbosity: 0,
        }
    }
    /// Play output at ansible-playbook's `-v` level `v`.
    pub fn with_verbosity(mut self, v: u8) -> Self {
        self.verbosity = v;
        self
    }
    /// Printing for `--json` (see the `json` field).
    pub fn for_json(mut self, json: bool) -> Self {
        self.json = json;
        self
    }
    /// The same, with the bundle check shown in `mode` (quiet for a plan).
    pub fn with_verify(mut self, mode: ProgressMode) -> Self {
        self.verify = BundleProgress::new(mode);
        self
    }
    pub fn quiet(&self) -> bool {
        self.mode == ProgressMode::Quiet
    }
}

impl SiteReporter for SitePrinter {
    /// One step line, on stdout with the play output and the recap (one stream to read or
    /// pipe); nothing in quiet mode.
    fn line(&self, msg: &str) {
        if self.quiet() {
            return;
        }
        if self.json {
            eprintln!("==> {msg}");
        } else {
            println!("==> {msg}");
        }
    }
    fn warn(&self, msg: &str) {
        eprintln!("{msg}");
    }
    fn push_progress(&self, total: u64) -> Box<dyn PushProgress + '_> {
        Box::new(PushBar {
            p: Progress::new(self.mode, "push", total, true),
        })
    }
    fn verify(&self) -> &dyn crate::bundle::Reporter {
        &self.verify
    }
    fn playbook(&self) -> Box<dyn crate::playbook::engine::Reporter + '_> {
        // Task output joins the step lines on stdout; with `--json` stdout is the document.
        let out: Box<dyn std::io::Write + Send> = if self.json {
            Box::new(std::io::stderr())
        } else {
            Box::new(std::io::stdout())
        };
        Box::new(PlaybookPrinter::new(false, out).with_verbosity(self.verbosity))
    }
}

struct PushBar {
    p: Progress,
}

impl PushReporter for PushBar {
    fn blob_started(&self, host: &str, digest: &Digest, _size: u64) {
        self.p.message(&format!("{host} {}", digest.short()));
    }
    fn blob_done(&self, _host: &str, _digest: &Digest, sent: u64, resumed_from: u64) {
        self.p.inc(sent + resumed_from);
    }
}

impl PushProgress for PushBar {
    fn finish(&self) {
        self.p.finish();
    }
}

fn preflight_result(r: &PreflightRow) -> String {
    if r.problems.is_empty() && r.corrupt_blobs > 0 {
        format!(
            "ok ({} stored blob(s) corrupt: sent again)",
            r.corrupt_blobs
        )
    } else if r.problems.is_empty() {
        "ok".to_string()
    } else {
        format!("FAIL: {}", r.problems.join("; "))
    }
}

/// The preflight table: one row per node.
pub fn preflight_table(rows: &[PreflightRow]) -> String {
    let mut out = format!(
        "{:<16} {:<8} {:<9} {:<7} {:>10} {:>10} {:>7}  RESULT\n",
        "HOST", "ROLE", "REACHABLE", "ARCH", "FREE", "NEEDS", "BLOBS"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<16} {:<8} {:<9} {:<7} {:>10} {:>10} {:>7}  {}\n",
            r.host,
            if r.registry { "registry" } else { "node" },
            if r.reachable { "yes" } else { "NO" },
            r.arch.as_deref().unwrap_or("-"),
            r.free_bytes.map(bytes).unwrap_or_else(|| "-".into()),
            bytes(r.needed_bytes),
            r.missing_blobs,
            preflight_result(r)
        ));
    }
    out
}

pub fn print_preflight(r: &PreflightReport) {
    print!("{}", preflight_table(&r.nodes));
    println!(
        "NEEDS: what the node lacks: the manifest and playbooks; on a registry host also the blobs \
it lacks and, if absent, this controller's darkport binary (registry hosts run it). FREE must \
exceed NEEDS by 64 MiB + 10%."
    );
}

/// The recap after an install.
pub fn install_recap(rows: &[NodeResult], took: Duration) -> String {
    let mut out = format!("\nINSTALL RECAP ({:.1}s)\n", took.as_secs_f64());
    for r in rows {
        let push = r
            .push
            .as_ref()
            .map(|p| {
                format!(
                    "blobs sent={} ({}) present={} resumed={}",
                    p.blobs_sent,
                    bytes(p.bytes_sent),
                    p.blobs_present,
                    bytes(p.bytes_resumed)
                )
            })
            .unwrap_or_default();
        match &r.error {
            None => out.push_str(&format!("{:<16} ok      {push}\n", r.host)),
            Some(e) => out.push_str(&format!("{:<16} FAILED  {e}\n", r.host)),
        }
    }
    out
}

fn print_done(d: &InstallDone) {
    print!(
        "{}",
        install_recap(&d.nodes, Duration::from_secs_f64(d.seconds))
    );
    if let Some(dep) = &d.deploy {
        print!("{}", deploy_table(dep));
    }
}

/// The deploy section of an install/upgrade: one line per service (and host, for `compose`).
pub fn deploy_table(d: &DeployReport) -> String {
    let mut out = format!(
        "\nDEPLOY {} {}{} on {} ({}{})\n",
        d.target,
        d.project,
        d.version
            .as_deref()
            .map(|v| format!(" {v}"))
            .unwrap_or_default(),
        d.hosts.join(", "),
        if d.converged {
            "converged"
        } else {
            "NOT converged"
        },
        d.seconds.map(|s| format!(", {s:.1}s")).unwrap_or_default()
    );
    if let Some(e) = &d.error {
        out.push_str(&format!("  error: {e}\n"));
    }
    for s in &d.services {
        let name = match &s.host {
            Some(h) => format!("{} @{h}", s.service),
            None => s.service.clone(),
        };
        let image = s.image.rsplit('/').next().unwrap_or(&s.image);
        let image = image
            .get(..image.find('@').map_or(image.len(), |i| i + 20))
            .unwrap_or(image);
        out.push_str(&format!(
            "{name:<24} {}/{} running  {image}{}{}\n",
            s.running,
            s.desired,
            s.update
                .as_deref()
                .filter(|u| *u != "completed")
                .map(|u| format!("  update {u}"))
                .unwrap_or_default(),
            s.error
                .as_deref()
                .map(|e| format!("  error: {e}"))
                .unwrap_or_default()
        ));
    }
    out
}

pub fn print_install(r: &InstallReport) {
    match r {
        InstallReport::Refused(x) => print!("{}", preflight_table(&x.nodes)),
        InstallReport::Done(d) => print_done(d),
    }
}

/// `upgrade --plan` as text.
pub fn upgrade_plan(p: &UpgradePlan) -> String {
    let mut out = format!("upgrade {} {} -> {}\n", p.product, p.from, p.to);
    for n in &p.nodes {
        let send = if n.registry {
            format!(
                "  send {} blob(s) + manifest and playbooks, {}",
                n.blobs_to_send,
                bytes(n.bytes_to_send)
            )
        } else {
            String::new()
        };
        out.push_str(&format!(
            "  {:<16} {} -> {}{send}\n",
            n.host,
            n.from.as_deref().unwrap_or("-"),
            p.to
        ));
    }
    out.push_str(&format!("  playbook   {}\n", p.playbook));
    if p.migrations.is_empty() {
        out.push_str("  migrations none\n");
    }
    for s in &p.migrations {
        out.push_str(&format!(
            "  migration  {} (introduced in {}, once per {}, {} the playbook{})\n",
            s.id,
            s.version,
            match s.scope {
                Scope::Site => "site",
                Scope::Node => "node",
            },
            match s.phase {
                Phase::Before => "before",
                Phase::After => "after",
            },
            if s.rerunnable { ", rerunnable" } else { "" }
        ));
    }
    out
}

/// An upgrade's report as text: the plan, or the preflight table of a refusal (a finished
/// upgrade says what it did on stderr while it runs).
pub fn print_upgrade(r: &UpgradeReport) {
    match r {
        UpgradeReport::Plan(p) => print!("{}", upgrade_plan(p)),
        UpgradeReport::Refused(x) => print!("{}", preflight_table(&x.nodes)),
        UpgradeReport::Done(d) => {
            if let Some(dep) = &d.deploy {
                print!("{}", deploy_table(dep));
            }
        }
        UpgradeReport::NothingToDo(_) => {}
    }
}

/// `rollback --plan` as text.
pub fn rollback_plan(p: &RollbackPlanReport) -> String {
    let mut out = format!(
        "rollback {} {} -> {}{}\n",
        p.product,
        p.from,
        p.to,
        if p.resuming { " (resuming)" } else { "" }
    );
    for s in &p.migrations {
        out.push_str(&format!(
            "  undo       {} (playbook {}, restore {})\n",
            s.id,
            s.rollback.as_deref().unwrap_or("-"),
            if s.backup.is_empty() {
                "nothing".to_string()
            } else {
                s.backup.join(", ")
            }
        ));
    }
    out.push_str(&format!(
        "  playbook   {} of {}\n",
        p.playbook.as_deref().unwrap_or("(none)"),
        p.to
    ));
    out
}

pub fn print_rollback(r: &RollbackReport) {
    match r {
        RollbackReport::Plan(p) => print!("{}", rollback_plan(p)),
        RollbackReport::Done(d) => {
            if let Some(dep) = &d.deploy {
                print!("{}", deploy_table(dep));
            }
        }
    }
}

/// What prune freed (or would free) per node.
pub fn prune_table(r: &PruneReport) -> String {
    let verb = if r.dry_run { "would free" } else { "freed" };
    let mut out = String::new();
    for n in &r.nodes {
        match &n.error {
            Some(e) => out.push_str(&format!("{:<16} FAILED: {e}\n", n.host)),
            None => out.push_str(&format!(
                "{:<16} {verb} {} ({} blob(s), {} partial upload(s), {} bundle dir(s), {} tag(s))\n",
                n.host,
                bytes(n.bytes),
                n.blobs,
                n.partial_uploads,
                n.bundle_dirs,
                n.tags
            )),
        }
    }
    out
}

pub fn print_prune(r: &PruneReport) {
    warn(&r.warnings);
    print!("{}", prune_table(r));
}

/// `darkport status` as text.
pub fn status_table(r: &StatusReport) -> String {
    let mut out = site_line(&r.site);
    for r in &r.nodes {
        if !r.reachable || r.error.is_some() {
            out.push_str(&format!(
                "{:<16} UNREACHABLE {}\n",
                r.host,
                r.error.as_deref().unwrap_or("")
            ));
            continue;
        }
        let ver = match (&r.product, &r.version) {
            (Some(p), Some(v)) => format!("{p} {v}"),
            _ => "nothing installed".into(),
        };
        out.push_str(&format!(
            "{:<16} {ver}  bundle {}  installed {}\n",
            r.host,
            r.bundle_digest
                .map(|d| d.short())
                .unwrap_or_else(|| "-".into()),
            r.installed_at.as_deref().unwrap_or("-")
        ));
        if let Some(reg) = &r.registry {
            out.push_str(&format!("{:<16}   registry {reg}\n", ""));
        }
        if let Some(op) = &r.operation {
            out.push_str(&format!("{:<16}   {op}\n", ""));
        }
        if !r.migrations.is_empty() {
            out.push_str(&format!(
                "{:<16}   migrations {}\n",
                "",
                r.migrations.join(", ")
            ));
        }
        out.push_str(&containers_line(r));
        if let Some(t) = r.history.last() {
            out.push_str(&format!(
                "{:<16}   last {} {}{} finished {}\n",
                "",
                t.action,
                t.from
                    .as_deref()
                    .map(|f| format!("{f} -> "))
                    .unwrap_or_default(),
                t.to,
                t.finished_at
            ));
        }
    }
    for d in &r.deploy {
        out.push_str(&deploy_table(d));
    }
    out
}

/// `site: dockercoins 1.1.0 on 3/3 nodes; previous 1.0.0 (rollback possible); 15/15 containers running`
fn site_line(s: &crate::report::site::SiteSummary) -> String {
    let mut l = match (&s.product, &s.version) {
        (Some(p), Some(v)) => format!("site: {p} {v} on {}/{} nodes", s.nodes_at_version, s.nodes),
        _ => format!("site: nothing installed on {} node(s)", s.nodes),
    };
    if let Some(p) = &s.previous {
        l.push_str(&format!(
            "; previous {p} ({})",
            if s.rollback_possible {
                "rollback possible"
            } else {
                "rollback not possible now"
            }
        ));
    }
    if s.containers > 0 {
        l.push_str(&format!(
            "; {}/{} containers running",
            s.containers_running, s.containers
        ));
    }
    l.push('\n');
    l
}

/// The product's containers on one node: running ones by name, the others with their status.
fn containers_line(r: &crate::report::site::StatusRow) -> String {
    if let Some(e) = &r.containers_error {
        return format!("{:<16}   containers unknown: {e}\n", "");
    }
    if r.containers.is_empty() {
        return String::new();
    }
    let up: Vec<&str> = r
        .containers
        .iter()
        .filter(|c| c.running)
        .map(|c| c.name.as_str())
        .collect();
    let mut l = format!("{:<16}   containers {} running", "", up.len());
    if !up.is_empty() {
        l.push_str(&format!(" ({})", up.join(", ")));
    }
    for c in r.containers.iter().filter(|c| !c.running) {
        l.push_str(&format!("; {} {}", c.name, c.status));
    }
    l.push('\n');
    l
}

pub fn print_uninstall(r: &crate::report::site::UninstallReport) {
    if r.check {
        println!(
            "would run {} on every node{}, then remove the site registry, its trust and darkport_root:",
            r.playbook
                .as_deref()
                .unwrap_or("no uninstall.yml (the containers of site-registry images are removed)"),
            if r.purge_data { " with darkport_purge_data=true" } else { "" }
        );
    }
    for n in &r.nodes {
        match &n.error {
            Some(e) => println!("{:<16} FAILED {e}", n.host),
            None if r.check => println!("{:<16} reachable", n.host),
            None => println!("{:<16} ok  {}", n.host, n.done.join("; ")),
        }
    }
}

pub fn print_status(r: &StatusReport) {
    warn(&r.warnings);
    print!("{}", status_table(r));
}

/// Warnings a report carries, on stderr as the site reporter prints them.
fn warn(warnings: &[String]) {
    for w in warnings {
        eprintln!("[WARNING]: {w}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::stack::ServiceState;
    use crate::report::site::{
        PlanNode, PlannedMigration, PruneRow, PushReport, StatusRow, UndoStep,
    };

    fn row(host: &str, registry: bool, problems: &[&str]) -> PreflightRow {
        let reachable = !problems.iter().any(|p| p.contains("unreachable"));
        PreflightRow {
            host: host.into(),
            registry,
            reachable,
            arch: reachable.then(|| "x86_64".into()),
            free_bytes: reachable.then_some(40 << 30),
            needed_bytes: if registry { 310 << 20 } else { 2 << 20 },
            missing_blobs: if registry { 14 } else { 0 },
            corrupt_blobs: 0,
            installed: None,
            problems: problems.iter().map(|p| p.to_string()).collect(),
        }
    }

    #[test]
    fn preflight_table() {
        let rows = vec![
            row("node1", true, &[]),
            row(
                "node2",
                false,
                &["only 1.0 GiB free on /var/lib/darkport, needs 2.0 MiB + margin"],
            ),
            row("node3", false, &["unreachable: connection refused"]),
        ];
        insta::assert_snapshot!(super::preflight_table(&rows));
    }

    #[test]
    fn install_recap() {
        let nodes = vec![
            NodeResult {
                host: "node1".into(),
                registry: true,
                ok: true,
                error: None,
                error_class: None,
                push: Some(PushReport {
                    host: "node1".into(),
                    blobs_sent: 14,
                    bytes_sent: 310 << 20,
                    blobs_present: 2,
                    ..Default::default()
                }),
            },
            NodeResult {
                host: "node2".into(),
                registry: false,
                ok: false,
                error: Some("seed: node2 unreachable: connection reset".into()),
                error_class: Some(crate::report::site::FailureClass::Unreachable),
                push: None,
            },
        ];
        insta::assert_snapshot!(super::install_recap(&nodes, Duration::from_millis(4200)));
    }

    #[test]
    fn status_table() {
        let r = StatusReport {
            warnings: vec![],
            ok: false,
            site: crate::report::site::SiteSummary {
                product: Some("coinshop".into()),
                version: Some("1.1.0".into()),
                nodes_at_version: 1,
                nodes: 2,
                previous: Some("1.0.0".into()),
                rollback_possible: false,
                containers_running: 1,
                containers: 2,
            },
            nodes: vec![
                StatusRow {
                    host: "node1".into(),
                    reachable: true,
                    error: None,
                    product: Some("coinshop".into()),
                    version: Some("1.1.0".into()),
                    bundle_digest: Some(Digest::of(b"bundle")),
                    installed_at: Some("2026-12-05T10:00:00Z".into()),
                    operation: None,
                    migrations: vec!["0001-split-coins".into()],
                    registry: Some("up at 10.0.0.1:5000".into()),
                    previous: Some("1.0.0".into()),
                    containers: vec![
                        crate::report::site::ContainerRow {
                            runtime: "docker".into(),
                            name: "coinshop-web".into(),
                            image: "10.0.0.1:5000/coinshop/web:1.1.0".into(),
                            running: true,
                            status: "Up 2 hours".into(),
                        },
                        crate::report::site::ContainerRow {
                            runtime: "docker".into(),
                            name: "coinshop-worker".into(),
                            image: "10.0.0.1:5000/coinshop/worker:1.1.0".into(),
                            running: false,
                            status: "Exited (1) 3 minutes ago".into(),
                        },
                    ],
                    containers_error: None,
                    history: vec![crate::state::Transition {
                        action: "upgrade".into(),
                        from: Some("1.0.0".into()),
                        to: "1.1.0".into(),
                        bundle_digest: Digest::of(b"bundle"),
                        started_at: "2026-12-05T09:59:00Z".into(),
                        finished_at: "2026-12-05T10:00:00Z".into(),
                    }],
                },
                StatusRow {
                    host: "node2".into(),
                    reachable: false,
                    error: Some("connection refused".into()),
                    product: None,
                    version: None,
                    bundle_digest: None,
                    installed_at: None,
                    operation: None,
                    migrations: vec![],
                    registry: None,
                    previous: None,
                    containers: vec![],
                    containers_error: None,
                    history: vec![],
                },
            ],
            deploy: vec![DeployReport {
                target: "swarm".into(),
                project: "coinshop".into(),
                hosts: vec!["web1".into()],
                version: Some("1.1.0".into()),
                converged: false,
                seconds: None,
                services: vec![
                    ServiceState {
                        service: "api".into(),
                        image: format!("10.0.0.1:5000/coinshop/api@{}", Digest::of(b"api")),
                        running: 2,
                        desired: 2,
                        ..Default::default()
                    },
                    ServiceState {
                        service: "worker".into(),
                        image: format!("10.0.0.1:5000/coinshop/worker@{}", Digest::of(b"w")),
                        running: 0,
                        desired: 1,
                        update: Some("rollback_completed".into()),
                        error: Some("task coinshop_worker.1: task: non-zero exit (3)".into()),
                        ..Default::default()
                    },
                ],
                error: None,
            }],
        };
        insta::assert_snapshot!(super::status_table(&r));
    }

    #[test]
    fn upgrade_and_rollback_plans() {
        let up = UpgradePlan {
            product: "coinshop".into(),
            from: "1.0.0".into(),
            to: "1.1.0".into(),
            playbook: "upgrade.yml".into(),
            migrations: vec![PlannedMigration {
                id: "0001-split-coins".into(),
                version: "1.1.0".into(),
                scope: Scope::Site,
                phase: Phase::Before,
                rerunnable: false,
                backup: vec!["/srv/coins".into()],
            }],
            nodes: vec![PlanNode {
                host: "node1".into(),
                from: Some("coinshop 1.0.0".into()),
                to: "coinshop 1.1.0".into(),
                registry: true,
                blobs_to_send: 3,
                corrupt_blobs: 0,
                bytes_to_send: 5 << 20,
            }],
        };
        let back = RollbackPlanReport {
            product: "coinshop".into(),
            from: "1.1.0".into(),
            to: "1.0.0".into(),
            resuming: true,
            migrations: vec![UndoStep {
                id: "0001-split-coins".into(),
                rollback: Some("rollback/0001.yml".into()),
                backup: vec![],
            }],
            playbook: Some("install.yml".into()),
            nodes: vec!["node1".into()],
        };
        insta::assert_snapshot!(format!("{}{}", upgrade_plan(&up), rollback_plan(&back)));
    }

    #[test]
    fn prune_table() {
        let r = PruneReport {
            warnings: vec![],
            ok: false,
            dry_run: true,
            nodes: vec![
                PruneRow {
                    host: "node1".into(),
                    registry: true,
                    blobs: 4,
                    partial_uploads: 1,
                    bundle_dirs: 1,
                    tags: 2,
                    bytes: 12 << 20,
                    error: None,
                },
                PruneRow {
                    host: "node2".into(),
                    error: Some("listing the blobs and bundles on node2 failed (exit 1)".into()),
                    ..Default::default()
                },
            ],
        };
        insta::assert_snapshot!(super::prune_table(&r));
    }
}
