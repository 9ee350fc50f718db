//! A rollback's deploy: the previous version's files, kept on the nodes where they were
//! deployed (`DARKPORT_ROOT/deploy/PROJECT/VERSION/`, pinned and placed as they ran), handed
//! to the engine again (`docker stack deploy`, or `up -d --remove-orphans` on each compose
//! host) and followed until every service converges.

use super::status::{compose_rows, current, run};
use super::wait_converged;
use crate::compose::stack::{parse_swarm, swarm_script};
use crate::ops::site::{Node, Site};
use crate::report::site::{DeployReport, SiteReporter};
use crate::transport::shell_quote;
use anyhow::bail;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Deploy `version` of compose project `project` again where it is recorded as deployed.
pub(crate) fn redeploy(
    site: &mut Site,
    project: &str,
    version: &str,
    rep: &dyn SiteReporter,
) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut targets: Vec<(usize, String, Value)> = Vec::new();
    for (i, n) in site.nodes.iter().enumerate().filter(|(_, n)| n.alive()) {
        let Some(cur) = current(n)
            .into_iter()
            .find(|c| c.get("project").and_then(Value::as_str) == Some(project))
        else {
            continue;
        };
        let target = cur
            .get("target")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let dir = format!("{}/deploy/{project}/{version}", n.root);
        let files = cur.get("files").cloned().unwrap_or(json!([]));
        targets.push((
            i,
            target,
            json!({"dir": dir, "files": files, "project": project, "version": version}),
        ));
    }
    if targets.is_empty() {
        return Ok(());
    }
    let timeout = Duration::from_secs(super::DEFAULT_TIMEOUT);
    for (i, target, cur) in &targets {
        let n = &site.nodes[*i];
        rep.line(&format!(
            "deploy: {project} {version} again on {} ({target})",
            n.name
        ));
        run(n, &engine_script(target, cur, project)).map_err(|e| anyhow::anyhow!(e))?;
    }
    let nodes: Vec<&Node> = targets.iter().map(|(i, _, _)| &site.nodes[*i]).collect();
    let (rows, outcome) = wait_converged(timeout, rep, || {
        let mut rows = Vec::new();
        for ((_, target, cur), n) in targets.iter().zip(&nodes) {
            let r = match target.as_str() {
                "swarm" => run(n, &swarm_script(project)).map(|t| parse_swarm(&t, project)),
                _ => compose_rows(n, cur, project),
            };
            rows.extend(r.map_err(|e| anyhow::anyhow!(e))?);
        }
        Ok(rows)
    });
    let ok = outcome.is_ok();
    if ok {
        for ((_, target, cur), n) in targets.iter().zip(&nodes) {
            let dir = cur.get("dir").and_then(Value::as_str).unwrap_or("");
            super::write_current(n, project, version, target, dir, &kept_files(cur))?;
        }
    }
    site.deploy_report = Some(DeployReport {
        target: targets[0].1.clone(),
        project: project.to_string(),
        hosts: nodes.iter().map(|n| n.name.clone()).collect(),
        version: Some(version.to_string()),
        converged: ok,
        seconds: Some(started.elapsed().as_secs_f64()),
        services: rows,
        error: outcome.as_ref().err().map(|e| format!("{e:#}")),
    });
    if let Err(e) = outcome {
        bail!("{project} {version} deployed again, but: {e:#}");
    }
    Ok(())
}

/// The engine command that brings the kept files of `cur` up again.
fn engine_script(target: &str, cur: &Value, project: &str) -> String {
    let dir = cur.get("dir").and_then(Value::as_str).unwrap_or("");
    let files = kept_files(cur);
    let args = |flag: &str| {
        files
            .iter()
            .map(|f| format!("{flag} {}", shell_quote(f)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    match target {
        "swarm" => super::swarm::stack_deploy_script(dir, &args("-c"), project),
        _ => super::hosts::up_script(dir, &args("-f"), project),
    }
}

/// The compose files a `current.json` names.
fn kept_files(cur: &Value) -> Vec<&str> {
    cur.get("files")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}
