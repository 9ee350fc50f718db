//! `darkport status`: the site in one line (product, version on N/M nodes, previous version,
//! whether a rollback is possible), then per node: reachable, product/version, bundle,
//! unfinished operation, migrations, the registry answering over TLS, the product's
//! containers running or not, and the history of finished operations.

use crate::ops::site::{par, Node, Site, SiteOptions};
use crate::registry::{client, tls};
use crate::report::site::{ContainerRow, SiteSummary, StatusReport, StatusRow};
use crate::transport::{ExecOpts, Transport};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

pub struct StatusOptions {
    pub site: SiteOptions,
    /// The site CA's directory, to check the registries over TLS (default as for install).
    pub ca_dir: Option<PathBuf>,
}

pub(crate) type Containers = Result<Vec<ContainerRow>, String>;

pub fn status(o: &StatusOptions) -> anyhow::Result<StatusReport> {
    let mut site = Site::load(&o.site)?;
    site.connect();
    let ca_dir = o.ca_dir.clone().unwrap_or_else(|| o.site.default_ca_dir());
    let ca_pem = std::fs::read(ca_dir.join(tls::CA_CERT)).ok();
    site.read_states();
    let prefixes: Vec<String> = site
        .registry_addrs()
        .iter()
        .map(|r| format!("{r}/"))
        .collect();
    let found: Mutex<BTreeMap<String, Containers>> = Mutex::new(BTreeMap::new());
    let recorded = Mutex::new(BTreeMap::new());
    par(
        &mut site.nodes,
        site.forks,
        |_| true,
        |n| {
            let c = containers(n, &prefixes);
            found.lock().unwrap().insert(n.name.clone(), c);
            let d = crate::ops::deploy::status::current(n);
            recorded.lock().unwrap().insert(n.name.clone(), d);
            Ok(())
        },
    );
    let mut found = found.into_inner().unwrap();
    let rows: Vec<StatusRow> = site
        .nodes
        .iter()
        .map(|n| row(n, ca_pem.as_deref(), &ca_dir, found.remove(&n.name)))
        .collect();
    let deploy = crate::ops::deploy::status::deployed(&site, &recorded.into_inner().unwrap());
    let ok =
        rows.iter().all(|r| r.reachable && r.error.is_none()) && deploy.iter().all(|d| d.converged);
    Ok(StatusReport {
        ok,
        warnings: site.warnings(),
        site: summary(&site, &rows),
        nodes: rows,
        deploy,
    })
}

/// The product's containers on `n`: every container docker or podman lists whose image comes
/// from one of the site's registries (`prefixes`: `host:port/`).
pub(crate) fn containers(n: &Node, prefixes: &[String]) -> Containers {
    let script = r#"for r in docker podman; do
  if command -v $r >/dev/null 2>&1; then
    $r ps -a --format '{{.Names}}	{{.Image}}	{{.State}}	{{.Status}}' 2>/dev/null | sed "s/^/$r	/"
  fi
done"#;
    let out = n
        .t()
        .exec(
            script,
            &ExecOpts {
                become_: n.become_(),
                timeout: Some(Duration::from_secs(20)),
                ..Default::default()
            },
        )
        .map_err(|e| e.to_string())?;
    Ok(parse_ps(&out.stdout_str(), prefixes))
}

/// `RUNTIME\tNAME\tIMAGE\tSTATE\tSTATUS` lines, the product's only.
fn parse_ps(text: &str, prefixes: &[String]) -> Vec<ContainerRow> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.splitn(5, '\t').collect();
            let [rt, name, image, state, status] = f[..] else {
                return None;
            };
            prefixes
                .iter()
                .any(|p| image.starts_with(p.as_str()))
                .then(|| ContainerRow {
                    runtime: rt.to_string(),
                    name: name.to_string(),
                    image: image.to_string(),
                    running: state.eq_ignore_ascii_case("running"),
                    status: status.to_string(),
                })
        })
        .collect()
}

fn summary(site: &Site, rows: &[StatusRow]) -> SiteSummary {
    let mut versions: BTreeMap<(String, String), usize> = BTreeMap::new();
    for r in rows {
        if let (Some(p), Some(v)) = (&r.product, &r.version) {
            *versions.entry((p.clone(), v.clone())).or_default() += 1;
        }
    }
    let top = versions.iter().max_by_key(|(_, n)| **n);
    let prev: Vec<Option<&String>> = rows.iter().map(|r| r.previous.as_ref()).collect();
    let rollback_possible = !rows.is_empty()
        && prev.iter().all(|p| p.is_some() && *p == prev[0])
        && site
            .nodes
            .iter()
            .all(|n| n.state.as_ref().is_some_and(|s| s.operation.is_none()));
    let all: Vec<&ContainerRow> = rows.iter().flat_map(|r| &r.containers).collect();
    SiteSummary {
        product: top.map(|((p, _), _)| p.clone()),
        version: top.map(|((_, v), _)| v.clone()),
        nodes_at_version: top.map(|(_, n)| *n).unwrap_or(0),
        nodes: rows.len(),
        previous: prev.first().copied().flatten().cloned(),
        rollback_possible,
        containers_running: all.iter().filter(|c| c.running).count(),
        containers: all.len(),
    }
}

fn row(
    n: &Node,
    ca_pem: Option<&[u8]>,
    ca_dir: &Path,
    containers: Option<Containers>,
) -> StatusRow {
    let st = n.state.as_ref();
    let (containers, containers_error) = match containers {
        Some(Ok(c)) => (c, None),
        Some(Err(e)) => (vec![], Some(e)),
        None => (vec![], None),
    };
    StatusRow {
        host: n.name.clone(),
        reachable: n.t.is_some(),
        error: n.error.clone(),
        product: st.and_then(|s| s.product.clone()),
        version: st.and_then(|s| s.version.clone()),
        bundle_digest: st.and_then(|s| s.bundle_digest),
        installed_at: st.and_then(|s| s.installed_at.clone()),
        operation: st
            .and_then(|s| s.operation.as_ref())
            .map(|o| format!("unfinished {} to {} since {}", o.action, o.to, o.started_at)),
        migrations: st
            .map(|s| s.migrations.iter().map(|m| m.id.clone()).collect())
            .unwrap_or_default(),
        registry: n.registry.then(|| match (ca_pem, n.t.is_some()) {
            (Some(ca), true) => {
                match client::check_v2(&n.registry_addr, ca, Duration::from_secs(3)) {
                    Ok(_) => format!("up at {}", n.registry_addr),
                    Err(e) => format!("DOWN at {}: {e}", n.registry_addr),
                }
            }
            (None, _) => format!("unknown (no site CA in {})", ca_dir.display()),
            (_, false) => "unknown (host unreachable)".into(),
        }),
        previous: st
            .and_then(|s| s.previous.as_ref())
            .map(|p| p.version.clone()),
        containers,
        containers_error,
        history: st.map(|s| s.history.clone()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_containers_from_a_site_registry_are_the_products() {
        let ps = "docker\tdockercoins-rng\t10.0.0.1:5000/dockercoins/rng:1.0.0\trunning\tUp 2 hours\n\
docker\tother\tnginx:latest\trunning\tUp 1 day\n\
podman\tdockercoins-worker\t10.0.0.2:5000/dockercoins/worker@sha256:ab\texited\tExited (1) 3 minutes ago\n\
garbage line\n";
        let rows = parse_ps(ps, &["10.0.0.1:5000/".into(), "10.0.0.2:5000/".into()]);
        assert_eq!(rows.len(), 2);
        assert!(rows[0].running && rows[0].name == "dockercoins-rng");
        assert!(!rows[1].running && rows[1].runtime == "podman");
        assert_eq!(rows[1].status, "Exited (1) 3 minutes ago");
    }
}
