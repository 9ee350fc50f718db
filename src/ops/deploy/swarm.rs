//! The `swarm` target: `docker stack deploy` on the first inventory host of group
//! `swarm_managers` whose engine is an active Swarm manager, then the stack followed until
//! every service runs the pinned image on as many tasks as it asks for, or Swarm reports that
//! the update was rolled back or paused.

use super::{record_current, wait_converged, Deployed, Plan};
use crate::compose::place::strip_placement;
use crate::compose::stack::{parse_swarm, swarm_script};
use crate::ops::site::{Node, Site};
use crate::report::site::SiteReporter;
use crate::transport::{shell_quote, ExecOpts, Transport};
use anyhow::bail;
use std::time::Duration;

pub(super) fn deploy(
    site: &mut Site,
    plan: &Plan,
    rep: &dyn SiteReporter,
) -> anyhow::Result<Deployed> {
    let n = manager(site)?;
    rep.line(&format!(
        "deploy: stack {} {} on swarm manager {}",
        plan.project, plan.version, n.name
    ));
    let docs: Vec<_> = plan
        .files
        .iter()
        .map(|(_, d)| {
            let mut d = d.clone();
            strip_placement(&mut d);
            d
        })
        .collect();
    let dir = plan.dir(n);
    let mut t = n.t();
    crate::state::write_many_atomic(&mut t, &plan.node_files(&dir, &docs))?;
    let opts = ExecOpts {
        become_: n.become_(),
        timeout: Some(Duration::from_secs(600)),
        ..Default::default()
    };
    let script = stack_deploy_script(&dir, &plan.file_args("-c"), &plan.project);
    n.run_ok("docker stack deploy", &script, &opts)?;
    let look_opts = ExecOpts {
        become_: n.become_(),
        timeout: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    let (rows, outcome) = wait_converged(plan.timeout, rep, || {
        let out = n.run_ok(
            "docker service ls",
            &swarm_script(&plan.project),
            &look_opts,
        )?;
        Ok(parse_swarm(&out, &plan.project))
    });
    let outcome = match outcome {
        Ok(()) => record_current(n, plan, "swarm"),
        Err(e) => Err(e.context(format!(
            "stack {} {} on swarm manager {}",
            plan.project, plan.version, n.name
        ))),
    };
    Ok((vec![n.name.clone()], rows, outcome))
}

/// The first host of `swarm_managers` in this run whose engine manages an active Swarm.
fn manager(site: &Site) -> anyhow::Result<&Node> {
    let names = site.inv.select("swarm_managers")?;
    let mut why = Vec::new();
    for name in &names {
        let Some(n) = site.nodes.iter().find(|n| &n.name == name) else {
            continue;
        };
        if !n.alive() {
            why.push(format!(
                "{name}: {}",
                n.error.as_deref().unwrap_or("not connected")
            ));
            continue;
        }
        let opts = ExecOpts {
            become_: n.become_(),
            timeout: Some(Duration::from_secs(30)),
            ..Default::default()
        };
        let mut t = n.t();
        let out = t.exec(
            "docker info --format '{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}'",
            &opts,
        );
        match out {
            Ok(o) if o.success() && o.stdout_str().trim() == "active true" => return Ok(n),
            Ok(o) if o.success() => why.push(format!(
                "{name}: swarm state {:?} (not an active manager: `docker swarm init`, or join it as a manager)",
                o.stdout_str().trim()
            )),
            Ok(o) => why.push(format!("{name}: docker info: {}", o.stderr_str().trim())),
            Err(e) => why.push(format!("{name}: {e}")),
        }
    }
    if names.is_empty() {
        bail!("darkport_deploy=swarm: inventory group swarm_managers has no host");
    }
    bail!(
        "no host of group swarm_managers can deploy the stack: {}",
        why.join("; ")
    )
}

/// `docker stack deploy` of `files` (`-c F…`) in `dir` as stack `stack`. `--detach` exists from
/// Docker 26 on (and its default changes between versions): darkport follows the stack itself.
pub(super) fn stack_deploy_script(dir: &str, files: &str, stack: &str) -> String {
    format!(
        "cd {} && d=; if docker stack deploy --help 2>/dev/null | grep -q -- --detach; then d=--detach=true; fi; \
         docker stack deploy $d --with-registry-auth --prune {files} {}",
        shell_quote(dir),
        shell_quote(stack)
    )
}
