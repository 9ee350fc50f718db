//! The `compose` target: on every host of the run a service is placed on
//! (`x-darkport-hosts:`, default every host), the engine the host has (`docker compose`,
//! `docker-compose` or `podman-compose`) brings the host's share of the product up with
//! `up -d --remove-orphans`; named volumes go under `darkport_data_dir` when the inventory
//! sets it. Restart policies are the file's own.

use super::{record_current, wait_converged, Deployed, Plan};
use crate::compose::pin::repoint;
use crate::compose::place::{bind_volumes, keep_services, placement, service_names};
use crate::compose::stack::{compose_script, parse_compose, ServiceState};
use crate::fanout::fanout;
use crate::ops::site::journal::step;
use crate::ops::site::{par, var_str, Node, Site};
use crate::report::site::SiteReporter;
use crate::transport::{shell_quote, ExecOpts};
use anyhow::bail;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// The engine the host has, as `$@` for the lines after it.
const ENGINE: &str = "if docker compose version >/dev/null 2>&1; then set -- docker compose; \
    elif command -v docker-compose >/dev/null 2>&1; then set -- docker-compose; \
    elif command -v podman-compose >/dev/null 2>&1; then set -- podman-compose; \
    else echo 'no compose engine here: install docker compose, docker-compose or podman-compose' >&2; exit 127; fi";

/// One host's share: its compose documents and the data directories to create.
struct Share {
    docs: Vec<Value>,
    dirs: Vec<String>,
    services: BTreeSet<String>,
}

/// The services each host of the run runs.
fn shares(site: &Site, plan: &Plan) -> anyhow::Result<BTreeMap<String, Share>> {
    let docs: Vec<Value> = plan.files.iter().map(|(_, d)| d.clone()).collect();
    let placed = placement(&docs).map_err(|e| anyhow::anyhow!("{}: {e}", plan.files[0].0))?;
    let hosts: Vec<&str> = site
        .nodes
        .iter()
        .filter(|n| n.selected && n.alive())
        .map(|n| n.name.as_str())
        .collect();
    let mut on: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (svc, patterns) in &placed {
        let mut any = false;
        for p in patterns {
            for h in site.inv.select(p)? {
                any |= hosts.contains(&h.as_str());
                on.entry(svc.clone()).or_default().insert(h);
            }
        }
        if !any {
            bail!("service {svc}: x-darkport-hosts {patterns:?} matches no host of this run");
        }
    }
    let all = service_names(&docs);
    let mut out = BTreeMap::new();
    for h in hosts {
        let services: BTreeSet<String> = all
            .iter()
            .filter(|s| on.get(*s).map_or(true, |hs| hs.contains(h)))
            .cloned()
            .collect();
        if services.is_empty() {
            continue;
        }
        let data_dir = var_str(&site.inv.host_vars(h), "darkport_data_dir");
        let mut dirs = Vec::new();
        let mine: Vec<Value> = docs
            .iter()
            .map(|d| {
                let mut d = d.clone();
                keep_services(&mut d, &services);
                if site.external.is_none() {
                    // An HA site: each host pulls from the registry assigned to it.
                    if let Some(to) = site.registry_order(h).first() {
                        repoint(&mut d, &plan.registry, to);
                    }
                }
                if let Some(dd) = &data_dir {
                    dirs.extend(bind_volumes(&mut d, &format!("{dd}/{}", plan.project)));
                }
                d
            })
            .collect();
        out.insert(
            h.to_string(),
            Share {
                docs: mine,
                dirs,
                services,
            },
        );
    }
    Ok(out)
}

pub(super) fn deploy(
    site: &mut Site,
    plan: &Plan,
    rep: &dyn SiteReporter,
) -> anyhow::Result<Deployed> {
    let shares = shares(site, plan)?;
    for (h, s) in &shares {
        let list: Vec<&str> = s.services.iter().map(String::as_str).collect();
        rep.line(&format!(
            "deploy: {} on {h}: {}",
            plan.project,
            list.join(", ")
        ));
    }
    par(
        &mut site.nodes,
        site.forks,
        |n| shares.contains_key(&n.name),
        |n| {
            let share = &shares[&n.name];
            step(n, "deploy", |n| {
                let dir = plan.dir(n);
                let mut t = n.t();
                crate::state::write_many_atomic(&mut t, &plan.node_files(&dir, &share.docs))?;
                let mkdirs: Vec<String> = share.dirs.iter().map(|d| shell_quote(d)).collect();
                let mk = if mkdirs.is_empty() {
                    String::new()
                } else {
                    format!("mkdir -p {} && ", mkdirs.join(" "))
                };
                let script = format!(
                    "{mk}{}",
                    up_script(&dir, &plan.file_args("-f"), &plan.project)
                );
                let opts = ExecOpts {
                    become_: n.become_(),
                    timeout: Some(Duration::from_secs(900)),
                    ..Default::default()
                };
                n.run_ok("compose up", &script, &opts).map(|_| ())
            })
        },
    );
    let up: Vec<String> = site
        .nodes
        .iter()
        .filter(|n| shares.contains_key(&n.name) && n.alive())
        .map(|n| n.name.clone())
        .collect();
    let (nodes, forks) = (&site.nodes, site.forks);
    // Every poll asks all the hosts at once (at most `forks` at a time), in inventory order.
    let (rows, outcome) = wait_converged(plan.timeout, rep, || {
        let polled = fanout(
            nodes.iter().filter(|n| up.contains(&n.name)).collect(),
            forks,
            |n: &mut &Node| poll_host(n, &shares[&n.name], &plan.project),
        );
        let mut rows = Vec::new();
        for (n, r) in polled {
            rows.extend(r.map_err(|p| anyhow::anyhow!("polling {}: {p}", n.name))??);
        }
        Ok(rows)
    });
    let outcome = outcome.and_then(|()| {
        for n in site.nodes.iter().filter(|n| up.contains(&n.name)) {
            record_current(n, plan, "compose")?;
        }
        Ok(())
    });
    let failed: Vec<String> = site
        .nodes
        .iter()
        .filter(|n| shares.contains_key(&n.name) && !up.contains(&n.name))
        .map(|n| n.name.clone())
        .collect();
    let outcome = match (outcome, failed.is_empty()) {
        (Ok(()), false) => Err(anyhow::anyhow!(
            "compose up failed on {}",
            failed.join(", ")
        )),
        (o, _) => o,
    };
    Ok((up, rows, outcome))
}

/// The state of the services of `share` on `n`, as its engine reports them.
fn poll_host(n: &Node, share: &Share, project: &str) -> anyhow::Result<Vec<ServiceState>> {
    let want: BTreeMap<_, _> = super::wanted(&share.docs)
        .into_iter()
        .filter(|(s, _)| share.services.contains(s))
        .collect();
    let opts = ExecOpts {
        become_: n.become_(),
        timeout: Some(Duration::from_secs(60)),
        ..Default::default()
    };
    let out = n.run_ok("docker ps", &compose_script(project), &opts)?;
    Ok(parse_compose(&out, &n.name, &want))
}

/// `ENGINE -p PROJECT -f F… up -d --remove-orphans` in `dir`, with the engine the host has.
pub(super) fn up_script(dir: &str, files: &str, project: &str) -> String {
    format!(
        "{ENGINE}\ncd {} && \"$@\" -p {} {files} up -d --remove-orphans",
        shell_quote(dir),
        shell_quote(project)
    )
}
