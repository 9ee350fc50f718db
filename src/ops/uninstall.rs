//! `darkport uninstall`: take the product off the site. With every node reachable and no
//! operation unfinished: the installed bundle's `uninstall.yml` (if it has one) stops the
//! product on every node, told by `darkport_purge_data` whether to remove its data; without
//! one, every container whose image comes from a site registry is removed, and the data stays
//! wherever the product keeps it. Then every node loses what darkport put there: the registry
//! service, the runtimes' trust of the site registries, and `darkport_root`.

use crate::ops::kept::fetch_bundle;
use crate::ops::playbooks::{load_if_present, playbook_vars, run_step_playbook, site_images};
use crate::ops::prune::refuse_if_busy;
use crate::ops::site::{par, Site, SiteOptions};
use crate::ops::Outcome;
use crate::report::site::{SiteReporter, UninstallReport, UninstallRow};
use crate::transport::{shell_quote, ExecOpts};
use anyhow::{bail, Context};
use serde_json::json;
use std::sync::Mutex;

pub struct UninstallOptions {
    pub site: SiteOptions,
    /// Also remove the product's data (passed to `uninstall.yml` as `darkport_purge_data`).
    pub purge_data: bool,
    /// Only say what would be done.
    pub check: bool,
    pub extra_vars: Vec<String>,
}

/// Remove the product's containers on `n` (those `status` lists: images from the site's
/// registries, `prefixes` = `host:port/`), one line said per container removed.
fn remove_containers_script(n: &crate::ops::site::Node, prefixes: &[String]) -> String {
    match crate::ops::status::containers(n, prefixes) {
        Err(e) => format!(
            "echo {} >&2; exit 1",
            shell_quote(&format!("listing the containers: {e}"))
        ),
        Ok(rows) => {
            let mut s = String::from("set -e\n");
            for c in rows {
                let (rt, name) = (shell_quote(&c.runtime), shell_quote(&c.name));
                s.push_str(&format!(
                    "{rt} rm -f {name} >/dev/null\necho {}\n",
                    shell_quote(&format!("removed container {} ({})", c.name, c.runtime))
                ));
            }
            s
        }
    }
}

pub fn uninstall(
    o: &UninstallOptions,
    rep: &dyn SiteReporter,
) -> anyhow::Result<Outcome<UninstallReport>> {
    let extra = crate::ops::run::parse_extra_vars(&o.extra_vars)?;
    let mut site = Site::open_all(&o.site, "uninstall")?;
    site.warn_inventory(rep);
    refuse_if_busy(&site)?;
    for n in &site.nodes {
        crate::node::uninstall::root_is_removable(&n.root)
            .map_err(|e| anyhow::anyhow!("uninstall refused on {}: {e}", n.name))?;
    }
    // The installed bundle's playbooks, from the first node that has one.
    let tmp = tempfile::tempdir().context("creating a temporary directory")?;
    let installed = site
        .nodes
        .iter()
        .find_map(|n| n.state.as_ref()?.bundle_digest.map(|d| (n, d)));
    let (manifest, pb) = match installed {
        Some((n, d)) => {
            let m = fetch_bundle(n, &d, tmp.path())?;
            let pb = load_if_present(&tmp.path().join("playbooks"), "uninstall.yml")?;
            (Some((d, m)), pb)
        }
        None => (None, None),
    };
    if o.purge_data && pb.is_none() {
        bail!(
            "uninstall refused: --purge-data needs the bundle's playbooks/uninstall.yml (darkport does not know where the product keeps its data); nothing was changed"
        );
    }
    let playbook = pb.as_ref().map(|_| "uninstall.yml".to_string());
    let rows: Vec<UninstallRow> = site
        .nodes
        .iter()
        .map(|n| UninstallRow {
            host: n.name.clone(),
            ok: true,
            error: None,
            done: vec![],
        })
        .collect();
    if o.check {
        return Ok(Outcome::ok(UninstallReport {
            ok: true,
            check: true,
            purge_data: o.purge_data,
            playbook,
            nodes: rows,
        }));
    }
    let rows = Mutex::new(rows);
    // 1. The product stops.
    let (registries, images) = match &manifest {
        Some((_, m)) => site_images(&site, m),
        None => (site.registry_addrs(), Default::default()),
    };
    match (&pb, &manifest) {
        (Some(pb), Some((d, m))) => {
            let mut vars = playbook_vars(*d, m, &registries, images, extra);
            vars.insert("darkport_purge_data".into(), json!(o.purge_data));
            rep.line("running uninstall.yml");
            run_step_playbook(
                &mut site,
                pb,
                &vars,
                "uninstall",
                "uninstall.yml",
                |n| n.state.is_some(),
                rep,
            );
            site.check_all("uninstall.yml")?;
        }
        _ => {
            rep.line("no uninstall.yml: removing the containers of site-registry images; the product's data stays");
            let prefixes: Vec<String> = registries.iter().map(|r| format!("{r}/")).collect();
            run_everywhere(&mut site, &rows, "removing the product's containers", |n| {
                remove_containers_script(n, &prefixes)
            })?;
        }
    }
    // 2. What darkport put on every node.
    rep.line("removing the site registry, its trust and darkport_root");
    run_everywhere(&mut site, &rows, "removing darkport's files", |n| {
        crate::node::uninstall::remove_script(&n.layout(), &n.trust_root, &registries)
    })?;
    let mut rows = rows.into_inner().unwrap();
    for (r, n) in rows.iter_mut().zip(&site.nodes) {
        r.error = n.error.clone();
        r.ok = n.error.is_none();
    }
    let ok = rows.iter().all(|r| r.ok);
    let report = UninstallReport {
        ok,
        check: false,
        purge_data: o.purge_data,
        playbook,
        nodes: rows,
    };
    Ok(if ok {
        Outcome::ok(report)
    } else {
        Outcome::failed(
            report,
            site.op_error("uninstall did not finish on every node; run it again".into()),
        )
    })
}

/// Run `script(n)` (as root) on every node; its output lines join the node's row.
fn run_everywhere(
    site: &mut Site,
    rows: &Mutex<Vec<UninstallRow>>,
    what: &str,
    script: impl Fn(&crate::ops::site::Node) -> String + Sync,
) -> anyhow::Result<()> {
    let forks = site.forks;
    par(
        &mut site.nodes,
        forks,
        |_| true,
        |n| {
            let opts = ExecOpts {
                become_: n.become_(),
                ..Default::default()
            };
            let out = n.run_ok(what, &script(n), &opts)?;
            let mut rows = rows.lock().unwrap();
            if let Some(r) = rows.iter_mut().find(|r| r.host == n.name) {
                r.done.extend(out.lines().map(String::from));
            }
            Ok(())
        },
    );
    site.check_all(what)
}
