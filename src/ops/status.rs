//! `darkport status`: per node reachable, product/version, bundle, unfinished operation,
//! migrations applied, and whether its registry answers over TLS.

use crate::ops::site::{Node, Site, SiteOptions};
use crate::registry::{client, tls};
use crate::report::site::{StatusReport, StatusRow};
use std::path::{Path, PathBuf};
use std::time::Duration;

pub struct StatusOptions {
    pub site: SiteOptions,
    /// The site CA's directory, to check the registries over TLS (default as for install).
    pub ca_dir: Option<PathBuf>,
}

pub fn status(o: &StatusOptions) -> anyhow::Result<StatusReport> {
    let mut site = Site::load(&o.site)?;
    site.connect();
    let ca_dir = o.ca_dir.clone().unwrap_or_else(|| o.site.default_ca_dir());
    let ca_pem = std::fs::read(ca_dir.join(tls::CA_CERT)).ok();
    site.read_states();
    let rows: Vec<StatusRow> = site
        .nodes
        .iter()
        .map(|n| row(n, ca_pem.as_deref(), &ca_dir))
        .collect();
    let ok = rows.iter().all(|r| r.reachable && r.error.is_none());
    Ok(StatusReport { ok, nodes: rows })
}

fn row(n: &Node, ca_pem: Option<&[u8]>, ca_dir: &Path) -> StatusRow {
    let st = n.state.as_ref();
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
    }
}
