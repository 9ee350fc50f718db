//! The deploy step of an install or upgrade of a compose product: the bundle's compose files,
//! every image pinned to the site registry by digest, handed to the engine the site runs and
//! followed until every service converges (or the engine says why it will not).
//!
//! The target comes from the inventory (`darkport_deploy`):
//! - `swarm` (the default when the inventory has a `swarm_managers` group): the first manager
//!   of that group whose engine is an active Swarm manager runs `docker stack deploy`
//!   ([`swarm`]); Swarm schedules, scales and rolls the update.
//! - `compose` (the default otherwise): every host of the run that a service is placed on runs
//!   `docker compose` / `docker-compose` / `podman-compose` `up -d --remove-orphans`
//!   ([`hosts`]).
//! - `none`: the product's playbooks deploy it themselves.
//!
//! The files a deployment used stay on the node (`DARKPORT_ROOT/deploy/PROJECT/VERSION/`), and
//! `DARKPORT_ROOT/deploy/PROJECT/current.json` names the last one that converged.

mod hosts;
mod redeploy;
pub(crate) mod status;
pub(crate) use redeploy::redeploy;
mod swarm;

use crate::bundle::Bundle;
use crate::compose::stack::{verdict, ServiceState, Verdict};
use crate::compose::{parse_env_file, pin};
use crate::digest::Digest;
use crate::ops::site::{var_str, Node, Site};
use crate::report::site::{DeployReport, SiteReporter};
use anyhow::{bail, Context};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// Seconds to wait for convergence unless `darkport_deploy_timeout` says otherwise.
const DEFAULT_TIMEOUT: u64 = 300;

/// The deployment a bundle asks for on this site.
pub(crate) struct Plan {
    pub project: String,
    pub version: String,
    /// Each compose file (its name in the bundle's project directory) and its pinned document.
    pub files: Vec<(String, Value)>,
    /// The env files the services name (path relative to the project directory, bytes).
    pub env_files: Vec<(String, Vec<u8>)>,
    pub timeout: Duration,
    /// The registry the images are pinned to (`host:port`, or the external one).
    pub registry: String,
}

impl Plan {
    /// Where the files of this version go on a node.
    pub fn dir(&self, n: &Node) -> String {
        format!("{}/deploy/{}/{}", n.root, self.project, self.version)
    }
    /// `-f a -f b` (or `-c` for `docker stack deploy`).
    pub fn file_args(&self, flag: &str) -> String {
        self.files
            .iter()
            .map(|(rel, _)| format!("{flag} {}", crate::transport::shell_quote(rel)))
            .collect::<Vec<_>>()
            .join(" ")
    }
    /// The files a node gets: the pinned compose files (as given) and the env files.
    pub fn node_files(&self, dir: &str, docs: &[Value]) -> Vec<(String, Vec<u8>, u32)> {
        let mut out: Vec<(String, Vec<u8>, u32)> = self
            .files
            .iter()
            .zip(docs)
            .map(|((rel, _), d)| (format!("{dir}/{rel}"), pin::render(d).into_bytes(), 0o644))
            .collect();
        for (rel, data) in &self.env_files {
            out.push((format!("{dir}/{rel}"), data.clone(), 0o600));
        }
        out
    }
}

/// Each service's pinned image and desired count, from the last file that sets them.
pub(crate) fn wanted(docs: &[Value]) -> BTreeMap<String, (String, u32)> {
    let mut want: BTreeMap<String, (String, u32)> = BTreeMap::new();
    for d in docs {
        let Some(svcs) = d.get("services").and_then(Value::as_object) else {
            continue;
        };
        for (name, s) in svcs {
            let e = want.entry(name.clone()).or_insert((String::new(), 1));
            if let Some(i) = s.get("image").and_then(Value::as_str) {
                e.0 = i.to_string();
            }
            let n = s
                .pointer("/deploy/replicas")
                .or_else(|| s.get("scale"))
                .and_then(Value::as_u64);
            if let Some(n) = n {
                e.1 = n as u32;
            }
        }
    }
    want
}

/// The first selected host and its variables: the deploy settings are read from them.
fn first_selected(site: &Site) -> (String, serde_json::Map<String, Value>) {
    let first = site
        .nodes
        .iter()
        .find(|n| n.selected)
        .map(|n| n.name.clone())
        .unwrap_or_default();
    let vars = site.inv.host_vars(&first);
    (first, vars)
}

/// `swarm`, `compose` or `none`, from the inventory.
fn target(site: &Site) -> anyhow::Result<String> {
    let (first, vars) = first_selected(site);
    let t = var_str(&vars, "darkport_deploy").unwrap_or_else(|| {
        if site.inv.has_group("swarm_managers") {
            "swarm".into()
        } else {
            "compose".into()
        }
    });
    match t.as_str() {
        "swarm" | "compose" | "none" => Ok(t),
        other => bail!("host {first}: darkport_deploy={other:?}: give swarm, compose or none"),
    }
}

/// The pinned compose documents of bundle `b` for images served at `registry` (`host:port`,
/// or an external registry with its namespace).
pub(crate) fn plan(site: &Site, b: &Bundle, registry: &str) -> anyhow::Result<Option<Plan>> {
    let m = b.manifest();
    if m.compose.is_empty() {
        return Ok(None);
    }
    let read = |name: &str| -> anyhow::Result<Vec<u8>> {
        let mem = b
            .member(name)
            .with_context(|| format!("bundle member {name} is missing"))?;
        Ok(b.read_member(mem, 16 << 20)?)
    };
    let vars = match b.member("compose/.env") {
        Some(_) => parse_env_file(&String::from_utf8_lossy(&read("compose/.env")?)),
        None => BTreeMap::new(),
    };
    let digests: BTreeMap<String, Digest> = m
        .images
        .iter()
        .map(|i| (i.name.clone(), i.digest))
        .collect();
    let mut files = Vec::new();
    for c in &m.compose {
        let text = String::from_utf8(read(c)?).with_context(|| format!("{c} is not UTF-8"))?;
        let rel = c.strip_prefix("compose/").unwrap_or(c).to_string();
        let doc = pin::pin_doc(&text, Path::new(c), &vars, registry, &digests)?;
        files.push((rel, doc));
    }
    let env_files = m
        .files
        .iter()
        .filter(|f| f.path.starts_with("compose/") && f.path != "compose/.env")
        .filter(|f| !m.compose.contains(&f.path))
        .map(|f| {
            let rel = f
                .path
                .strip_prefix("compose/")
                .unwrap_or(&f.path)
                .to_string();
            read(&f.path).map(|d| (rel, d))
        })
        .collect::<anyhow::Result<_>>()?;
    let (_, vars) = first_selected(site);
    let timeout = match var_str(&vars, "darkport_deploy_timeout") {
        Some(t) => t.parse::<u64>().map_err(|_| {
            anyhow::anyhow!("darkport_deploy_timeout={t:?} is not a number of seconds")
        })?,
        None => DEFAULT_TIMEOUT,
    };
    Ok(Some(Plan {
        project: project_name(&m.product),
        version: m.version.clone(),
        files,
        env_files,
        timeout: Duration::from_secs(timeout),
        registry: registry.to_string(),
    }))
}

/// A stack/project name the engines accept: lower case letters, digits, `_` and `-`.
pub(crate) fn project_name(product: &str) -> String {
    let s: String = product
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    s.trim_start_matches(['-', '_']).to_string()
}

/// Deploy the compose product of bundle `b` (nothing for a playbook-only product).
pub(crate) fn deploy(
    site: &mut Site,
    b: &Bundle,
    registry: &str,
    rep: &dyn SiteReporter,
) -> anyhow::Result<()> {
    let Some(plan) = plan(site, b, registry)? else {
        return Ok(());
    };
    let started = Instant::now();
    let target = target(site)?;
    let result = match target.as_str() {
        "swarm" => swarm::deploy(site, &plan, rep),
        "compose" => hosts::deploy(site, &plan, rep),
        _ => {
            rep.line("darkport_deploy=none: the playbooks deploy the product");
            return Ok(());
        }
    };
    let (hosts, services, outcome) = result?;
    let converged = outcome.is_ok();
    site.deploy_report = Some(DeployReport {
        target,
        project: plan.project.clone(),
        hosts,
        version: Some(plan.version.clone()),
        converged,
        seconds: Some(started.elapsed().as_secs_f64()),
        services,
        error: None,
    });
    site.lap("deploy");
    outcome
}

/// What a target's deploy returns: the hosts it ran on, the services as last seen, and whether
/// they converged (the error says which did not and why).
pub(crate) type Deployed = (Vec<String>, Vec<ServiceState>, anyhow::Result<()>);

/// Poll `look` until the services converge and stay so for a second (a task that dies at
/// once is not taken for a running one), fail, or `timeout` passes.
pub(crate) fn wait_converged(
    timeout: Duration,
    rep: &dyn SiteReporter,
    mut look: impl FnMut() -> anyhow::Result<Vec<ServiceState>>,
) -> (Vec<ServiceState>, anyhow::Result<()>) {
    const STABLE: Duration = Duration::from_secs(1);
    let start = Instant::now();
    let mut converged_since: Option<Instant> = None;
    let mut last_said = Instant::now();
    loop {
        let rows = match look() {
            Ok(r) => r,
            Err(e) => return (Vec::new(), Err(e)),
        };
        match verdict(&rows) {
            Verdict::Converged => {
                let since = *converged_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= STABLE {
                    return (rows, Ok(()));
                }
            }
            Verdict::Failed(why) => return (rows, Err(anyhow::anyhow!("{why}"))),
            Verdict::Pending => converged_since = None,
        }
        if start.elapsed() >= timeout {
            let why = crate::compose::stack::pending_summary(&rows);
            return (
                rows,
                Err(anyhow::anyhow!(
                    "the services did not converge within {} s (darkport_deploy_timeout): {why}",
                    timeout.as_secs()
                )),
            );
        }
        if last_said.elapsed() >= Duration::from_secs(10) {
            last_said = Instant::now();
            rep.line(&format!(
                "deploy: waiting: {}",
                crate::compose::stack::pending_summary(&rows)
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Record on `n` that `plan`'s version is what runs (`deploy/PROJECT/current.json`).
pub(crate) fn record_current(n: &Node, plan: &Plan, target: &str) -> anyhow::Result<()> {
    let files: Vec<&str> = plan.files.iter().map(|(r, _)| r.as_str()).collect();
    write_current(
        n,
        &plan.project,
        &plan.version,
        target,
        &plan.dir(n),
        &files,
    )
}

/// Write `deploy/PROJECT/current.json` on `n`: what `status` and `redeploy` read.
pub(crate) fn write_current(
    n: &Node,
    project: &str,
    version: &str,
    target: &str,
    dir: &str,
    files: &[&str],
) -> anyhow::Result<()> {
    let body = serde_json::json!({
        "target": target,
        "project": project,
        "version": version,
        "dir": dir,
        "files": files,
    });
    let path = format!("{}/deploy/{project}/current.json", n.root);
    let mut t = n.t();
    crate::state::write_many_atomic(&mut t, &[(path, serde_json::to_vec_pretty(&body)?, 0o644)])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names_are_what_the_engines_accept() {
        assert_eq!(project_name("dockercoins"), "dockercoins");
        assert_eq!(project_name("Acme.Portal 2"), "acme_portal_2");
        assert_eq!(project_name("-x"), "x");
    }
}
