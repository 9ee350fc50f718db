//! Upgrade planning: which versions may upgrade to which, and which migrations run, in what
//! order, exactly once. Pure logic over node states and the bundle's migration list; the
//! upgrade flow in `ops/` executes the plan and journals each step in [`super::NodeState`].

use super::{NodeState, StepStatus};
use semver::{Version, VersionReq};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a migration runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Once per site, on one host (the first of the play's hosts).
    #[default]
    Site,
    /// On every node.
    Node,
}

/// When a migration runs relative to the upgrade playbook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Before `upgrade.yml`: the new images are on the site registry, the old services still
    /// run (a data migration stops what writes the old format, then converts).
    #[default]
    Before,
    /// After `upgrade.yml`: the new services run (a migration that needs them).
    After,
}

/// A data migration as declared in the bundle spec and carried in the signed manifest.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MigrationSpec {
    /// `NNNN-name`: the numeric prefix orders migrations.
    pub id: String,
    /// Playbook path inside the bundle's `playbooks/` tree, e.g. `migrations/0001-split.yml`.
    pub playbook: String,
    /// The product version that introduced this migration.
    pub version: Version,
    #[serde(default)]
    pub scope: Scope,
    #[serde(default)]
    pub phase: Phase,
    /// Safe to run again after a crash in the middle of it.
    #[serde(default)]
    pub rerunnable: bool,
    /// Paths copied aside on the node before the migration runs.
    #[serde(default)]
    pub backup: Vec<String>,
    /// Playbook that undoes it (used by `darkport rollback`).
    #[serde(default)]
    pub rollback: Option<String>,
}

impl MigrationSpec {
    /// The numeric order key from the `NNNN-` prefix.
    pub fn order(&self) -> Option<u32> {
        let (n, rest) = self.id.split_once('-')?;
        (n.len() == 4 && !rest.is_empty()).then(|| n.parse().ok())?
    }

    /// The journal step name of this migration.
    pub fn step_name(&self) -> String {
        format!("migration:{}", self.id)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("migration id {0:?} must look like NNNN-name (four digits, a dash, a name)")]
    BadMigrationId(String),
    #[error("migrations {0} and {1} have the same order number")]
    DuplicateOrder(String, String),
    #[error("{target} is older than the installed {installed}: downgrades are refused (use `darkport rollback` to return to the previous version)")]
    Downgrade { installed: Version, target: Version },
    #[error("the site runs {installed}, but this bundle upgrades only from {allowed}")]
    UnsupportedFrom { installed: Version, allowed: String },
    #[error(
        "nodes run different versions ({0}); finish the interrupted upgrade with --allow-mixed"
    )]
    MixedVersions(String),
    #[error("nothing is installed on {0}: use `darkport install`")]
    NotInstalled(String),
    #[error("node {host} has product {found}, this bundle is {expected}")]
    WrongProduct {
        host: String,
        expected: String,
        found: String,
    },
    #[error("version {0:?} recorded on {1} is not a semantic version")]
    BadVersion(String, String),
}

/// Check the migration list itself: ids well formed, order numbers unique.
pub fn validate(migrations: &[MigrationSpec]) -> Result<(), PlanError> {
    let mut seen: BTreeMap<u32, &str> = BTreeMap::new();
    for m in migrations {
        let n = m
            .order()
            .ok_or_else(|| PlanError::BadMigrationId(m.id.clone()))?;
        if let Some(prev) = seen.insert(n, &m.id) {
            return Err(PlanError::DuplicateOrder(prev.to_string(), m.id.clone()));
        }
    }
    Ok(())
}

/// The migrations an upgrade from `from` to `to` runs: introduced after `from`, up to and
/// including `to`, in order.
pub fn migrations_between<'a>(
    migrations: &'a [MigrationSpec],
    from: &Version,
    to: &Version,
) -> Vec<&'a MigrationSpec> {
    let mut v: Vec<&MigrationSpec> = migrations
        .iter()
        .filter(|m| &m.version > from && &m.version <= to)
        .collect();
    v.sort_by_key(|m| m.order());
    v
}

/// The version the site moves from, after checking every node agrees and the move is allowed.
/// `states` holds one entry per reachable node. Returns `None` when the site is already at
/// `target` with nothing in progress (a re-run: nothing to do).
pub fn check_upgrade(
    product: &str,
    states: &[(String, Option<NodeState>)],
    target: &Version,
    upgrades_from: &VersionReq,
    allow_mixed: bool,
) -> Result<Option<Version>, PlanError> {
    let mut versions: BTreeMap<Version, Vec<&str>> = BTreeMap::new();
    let mut in_progress_from: Option<Version> = None;
    for (host, st) in states {
        let st = st
            .as_ref()
            .filter(|s| s.version.is_some())
            .ok_or_else(|| PlanError::NotInstalled(host.clone()))?;
        let found = st.product.clone().unwrap_or_default();
        if found != product {
            return Err(PlanError::WrongProduct {
                host: host.clone(),
                expected: product.into(),
                found,
            });
        }
        let v_str = st.version.clone().unwrap_or_default();
        let v = Version::parse(&v_str).map_err(|_| PlanError::BadVersion(v_str, host.clone()))?;
        if let Some(op) = &st.operation {
            if op.to == target.to_string() {
                if let Some(f) = op.from.as_deref().and_then(|f| Version::parse(f).ok()) {
                    in_progress_from = Some(f);
                }
            }
        }
        versions.entry(v).or_default().push(host);
    }
    // Nodes already at the target (finished their batch) plus nodes still at the old version
    // are the normal shape of an interrupted rolling upgrade.
    let below: Vec<&Version> = versions.keys().filter(|v| *v != target).collect();
    let resuming = in_progress_from.is_some();
    let mixed_ok = below.len() <= 1
        && (below.is_empty() || !versions.contains_key(target) || allow_mixed || resuming);
    if !mixed_ok {
        let desc = versions
            .iter()
            .map(|(v, h)| format!("{v} on {}", h.join(", ")))
            .collect::<Vec<_>>()
            .join("; ");
        return Err(PlanError::MixedVersions(desc));
    }
    let from = match below.first() {
        Some(v) => (*v).clone(),
        None => match in_progress_from {
            // Every node shows the target version but the journal is still open somewhere.
            Some(f)
                if states
                    .iter()
                    .any(|(_, s)| s.as_ref().is_some_and(|s| s.operation.is_some())) =>
            {
                f
            }
            _ => return Ok(None),
        },
    };
    if &from > target {
        return Err(PlanError::Downgrade {
            installed: from,
            target: target.clone(),
        });
    }
    if !upgrades_from.matches(&from) {
        return Err(PlanError::UnsupportedFrom {
            installed: from,
            allowed: upgrades_from.to_string(),
        });
    }
    Ok(Some(from))
}

/// What to do with one migration on one node, given its journal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MigrationAction {
    /// Already finished: never again.
    Skip,
    Run,
    /// Started but not finished, and re-running it is safe.
    Rerun,
    /// Started but not finished, and it is not re-runnable: the operator must check.
    Stop(String),
}

pub fn migration_action(st: &NodeState, m: &MigrationSpec) -> MigrationAction {
    if st.migration_applied(&m.id) {
        return MigrationAction::Skip;
    }
    match st.step_status(&m.step_name()) {
        Some(StepStatus::Finished) => MigrationAction::Skip,
        None => MigrationAction::Run,
        Some(StepStatus::Started) if m.rerunnable => MigrationAction::Rerun,
        Some(StepStatus::Started) => MigrationAction::Stop(format!(
            "migration {} started earlier and did not finish, and it is not declared rerunnable: check the data it changes ({}): if the migration completed, run the upgrade again with --mark-done {id}; if not, restore the data from the backup and run it again with --rerun {id}",
            m.id,
            if m.backup.is_empty() { "no backup declared".to_string() } else { format!("backup of {}", m.backup.join(", ")) },
            id = m.id
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::Digest;

    fn mig(id: &str, v: &str) -> MigrationSpec {
        MigrationSpec {
            id: id.into(),
            playbook: format!("migrations/{id}.yml"),
            version: Version::parse(v).unwrap(),
            scope: Scope::Site,
            phase: Phase::Before,
            rerunnable: false,
            backup: vec![],
            rollback: None,
        }
    }

    fn installed(v: &str) -> Option<NodeState> {
        Some(NodeState {
            product: Some("p".into()),
            version: Some(v.into()),
            ..NodeState::new()
        })
    }

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn selects_migrations_in_range_in_order() {
        let all = vec![
            mig("0003-c", "2.0.0"),
            mig("0001-a", "1.1.0"),
            mig("0002-b", "1.1.0"),
            mig("0004-d", "3.0.0"),
        ];
        validate(&all).unwrap();
        let ids = |f: &str, t: &str| {
            migrations_between(&all, &v(f), &v(t))
                .iter()
                .map(|m| m.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("1.0.0", "2.0.0"), ["0001-a", "0002-b", "0003-c"]);
        assert_eq!(ids("1.1.0", "2.0.0"), ["0003-c"]);
        assert!(ids("2.0.0", "2.0.0").is_empty());
    }

    #[test]
    fn rejects_bad_ids() {
        assert_eq!(
            validate(&[mig("1-a", "1.0.0")]),
            Err(PlanError::BadMigrationId("1-a".into()))
        );
        assert!(matches!(
            validate(&[mig("0001-a", "1.0.0"), mig("0001-b", "1.0.0")]),
            Err(PlanError::DuplicateOrder(..))
        ));
    }

    #[test]
    fn upgrade_checks() {
        let req = VersionReq::parse(">=1.0.0, <1.1.0").unwrap();
        let s = |v: &[&str]| {
            v.iter()
                .enumerate()
                .map(|(i, v)| (format!("n{i}"), installed(v)))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            check_upgrade("p", &s(&["1.0.0", "1.0.0"]), &v("1.1.0"), &req, false),
            Ok(Some(v("1.0.0")))
        );
        assert_eq!(
            check_upgrade("p", &s(&["1.1.0", "1.1.0"]), &v("1.1.0"), &req, false),
            Ok(None)
        );
        assert!(matches!(
            check_upgrade("p", &s(&["1.2.0"]), &v("1.1.0"), &req, false),
            Err(PlanError::Downgrade { .. })
        ));
        assert!(matches!(
            check_upgrade("p", &s(&["0.9.0"]), &v("1.1.0"), &req, false),
            Err(PlanError::UnsupportedFrom { .. })
        ));
        assert!(matches!(
            check_upgrade("p", &s(&["1.0.0", "1.1.0"]), &v("1.1.0"), &req, false),
            Err(PlanError::MixedVersions(_))
        ));
        assert_eq!(
            check_upgrade("p", &s(&["1.0.0", "1.1.0"]), &v("1.1.0"), &req, true),
            Ok(Some(v("1.0.0")))
        );
        assert!(matches!(
            check_upgrade("q", &s(&["1.0.0"]), &v("1.1.0"), &req, false),
            Err(PlanError::WrongProduct { .. })
        ));
        let none = vec![("n0".to_string(), None)];
        assert_eq!(
            check_upgrade("p", &none, &v("1.1.0"), &req, false),
            Err(PlanError::NotInstalled("n0".into()))
        );
    }

    #[test]
    fn interrupted_rolling_upgrade_resumes_without_allow_mixed() {
        let req = VersionReq::parse(">=1.0.0").unwrap();
        let mut old = installed("1.0.0").unwrap();
        old.begin_operation("upgrade", "1.1.0", Digest::from_bytes([7; 32]))
            .unwrap();
        let states = vec![
            ("n0".to_string(), installed("1.1.0")),
            ("n1".to_string(), Some(old)),
        ];
        assert_eq!(
            check_upgrade("p", &states, &v("1.1.0"), &req, false),
            Ok(Some(v("1.0.0")))
        );
    }

    #[test]
    fn journal_decides_migration_actions() {
        let mut m = mig("0001-a", "1.1.0");
        let mut st = installed("1.0.0").unwrap();
        st.begin_operation("upgrade", "1.1.0", Digest::from_bytes([1; 32]))
            .unwrap();
        assert_eq!(migration_action(&st, &m), MigrationAction::Run);
        st.begin_step(&m.step_name());
        assert!(matches!(
            migration_action(&st, &m),
            MigrationAction::Stop(_)
        ));
        m.rerunnable = true;
        assert_eq!(migration_action(&st, &m), MigrationAction::Rerun);
        st.finish_step(&m.step_name());
        assert_eq!(migration_action(&st, &m), MigrationAction::Skip);
    }
}
