//! `darkport status` for a compose product: what each node records as deployed
//! (`deploy/PROJECT/current.json`), and what the engine says about each service now.

use super::wanted;
use crate::compose::stack::{
    compose_script, parse_compose, parse_swarm, swarm_script, verdict, Verdict,
};
use crate::ops::site::{Node, Site};
use crate::report::site::DeployReport;
use crate::transport::{shell_quote, ExecOpts, Transport};
use serde_json::Value;
use std::time::Duration;

/// The deployments the site's nodes record (`recorded`: each node's [`current`] files, read
/// with the rest of its status), each as its engine reports it now: one per Swarm stack (from
/// the manager that deployed it), one per compose project and host.
pub(crate) fn deployed(
    site: &Site,
    recorded: &std::collections::BTreeMap<String, Vec<Value>>,
) -> Vec<DeployReport> {
    let mut out: Vec<DeployReport> = Vec::new();
    for n in site.nodes.iter().filter(|n| n.alive()) {
        for cur in recorded.get(&n.name).into_iter().flatten() {
            let s = |k: &str| cur.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let (target, project) = (s("target"), s("project"));
            let services = match target.as_str() {
                "swarm" => run(n, &swarm_script(&project)).map(|t| parse_swarm(&t, &project)),
                "compose" => compose_rows(n, cur, &project),
                _ => continue,
            };
            let (services, error) = match services {
                Ok(rows) => (rows, None),
                Err(e) => (Vec::new(), Some(e)),
            };
            if let Some(r) = out
                .iter_mut()
                .find(|r| r.target == target && r.project == project && target == "compose")
            {
                r.hosts.push(n.name.clone());
                r.services.extend(services);
                r.converged = r.converged && verdict(&r.services) == Verdict::Converged;
                continue;
            }
            out.push(DeployReport {
                converged: error.is_none() && verdict(&services) == Verdict::Converged,
                target,
                project,
                version: Some(s("version")),
                hosts: vec![n.name.clone()],
                seconds: None,
                services,
                error,
            });
        }
    }
    out
}

pub(super) fn run(n: &Node, script: &str) -> Result<String, String> {
    let opts = ExecOpts {
        become_: n.become_(),
        timeout: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    n.run_ok("deploy status", script, &opts)
        .map_err(|e| format!("{e:#}"))
}

/// Every `current.json` under the node's `deploy/`.
pub(crate) fn current(n: &Node) -> Vec<Value> {
    let script = format!(
        "for f in {}/deploy/*/current.json; do [ -f \"$f\" ] && cat \"$f\" && echo; done; true",
        shell_quote(&n.root)
    );
    let mut t = n.t();
    let Ok(o) = t.exec(&script, &ExecOpts::default()) else {
        return Vec::new();
    };
    serde_json::Deserializer::from_str(&o.stdout_str())
        .into_iter::<Value>()
        .filter_map(Result::ok)
        .collect()
}

/// The compose project's containers on `n`, against the pinned files it was deployed from.
pub(super) fn compose_rows(
    n: &Node,
    cur: &Value,
    project: &str,
) -> Result<Vec<crate::compose::stack::ServiceState>, String> {
    let dir = cur.get("dir").and_then(Value::as_str).unwrap_or("");
    let mut docs = Vec::new();
    for f in cur
        .get("files")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let path = format!("{dir}/{}", f.as_str().unwrap_or(""));
        let text = run(n, &format!("cat {}", shell_quote(&path)))?;
        let body = text.split_once('\n').map(|x| x.1).unwrap_or("");
        docs.push(serde_json::from_str::<Value>(body).map_err(|e| format!("{path}: {e}"))?);
    }
    let want = wanted(&docs);
    run(n, &compose_script(project)).map(|t| parse_compose(&t, &n.name, &want))
}
