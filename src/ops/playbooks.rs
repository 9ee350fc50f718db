//! The bundle's playbooks on the site: the variables every darkport playbook gets, and one
//! playbook run over the sessions the operation already holds, journaled as a step.

use crate::bundle::{Bundle, Manifest};
use crate::digest::Digest;
use crate::ops::site::journal::write_state;
use crate::ops::site::{par, Node, Shared, Site};
use crate::playbook::engine::{self, Connector, RunOptions};
use crate::playbook::model::Playbook;
use crate::report::site::SiteReporter;
use crate::transport::{self, ConnectOpts, Transport, TransportError};
use anyhow::Context;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The playbooks of a bundle, extracted to a private temporary directory.
pub(crate) struct Extracted {
    _tmp: tempfile::TempDir,
    pub dir: PathBuf,
}

impl Extracted {
    pub fn from(b: &Bundle) -> anyhow::Result<Extracted> {
        let tmp = tempfile::tempdir().context("creating a temporary directory")?;
        let dir = tmp.path().join("playbooks");
        b.extract_playbooks(&dir)?;
        Ok(Extracted { _tmp: tmp, dir })
    }
    /// The first of `names` the bundle has, loaded: its name and the playbook.
    pub fn first_of(
        &self,
        names: &[&'static str],
    ) -> anyhow::Result<Option<(&'static str, Playbook)>> {
        for name in names {
            let p = self.dir.join(name);
            if p.exists() {
                return Ok(Some((name, self.load(name)?)));
            }
        }
        Ok(None)
    }
    /// Load `rel`; an error names the bundle member (`playbooks/…:line`), not the temporary
    /// directory it was extracted to.
    pub fn load(&self, rel: &str) -> anyhow::Result<Playbook> {
        load_member(&self.dir, rel)
    }
}

/// Load `dir/rel`, where `dir` is a bundle's `playbooks/` extracted to a temporary place: an
/// error names the bundle member (`playbooks/…:line`), not the temporary path.
pub(crate) fn load_member(dir: &Path, rel: &str) -> anyhow::Result<Playbook> {
    Playbook::load(&dir.join(rel)).map_err(|e| {
        let tmp = format!("{}/", dir.display());
        anyhow::anyhow!(
            "bundle member {}",
            e.to_string().replace(&tmp, "playbooks/")
        )
    })
}

/// Load the bundle member `dir/rel` (see [`load_member`]) if it exists.
pub(crate) fn load_if_present(dir: &Path, rel: &str) -> anyhow::Result<Option<Playbook>> {
    Ok(if dir.join(rel).is_file() {
        Some(load_member(dir, rel)?)
    } else {
        None
    })
}

/// The registries the nodes pull from (the first is `darkport_registry`) and each image of `m`
/// as the nodes pull it (`darkport_images`).
pub(crate) fn site_images(site: &Site, m: &Manifest) -> (Vec<String>, Map<String, Value>) {
    let registries = site.registry_addrs();
    let images = m
        .images
        .iter()
        .map(|i| {
            let r = match &site.external {
                Some(ext) => ext.reference(&i.name),
                None => format!("{}/{}", registries[0], i.name),
            };
            (i.name.clone(), Value::String(r))
        })
        .collect();
    (registries, images)
}

/// The variables every darkport playbook gets (`darkport_registry`, `darkport_images`, …) for
/// the bundle `bundle_id` with manifest `m`, then the operator's extra vars.
pub(crate) fn playbook_vars(
    bundle_id: Digest,
    m: &Manifest,
    registries: &[String],
    images: Map<String, Value>,
    extra_vars: Map<String, Value>,
) -> Map<String, Value> {
    let digests: Map<String, Value> = m
        .images
        .iter()
        .map(|i| (i.name.clone(), Value::String(i.digest.to_string())))
        .collect();
    let mut vars = Map::new();
    vars.insert("darkport_product".into(), json!(m.product));
    vars.insert("darkport_version".into(), json!(m.version));
    vars.insert("darkport_bundle_id".into(), json!(bundle_id.to_string()));
    vars.insert("darkport_registry".into(), json!(registries[0]));
    vars.insert("darkport_registries".into(), json!(registries));
    vars.insert("darkport_images".into(), Value::Object(images));
    vars.insert("darkport_image_digests".into(), Value::Object(digests));
    vars.extend(extra_vars);
    vars
}

/// Each node's registry variables where [`Site::registry_order`] gives it another first
/// registry than the site's default (HA sites): `darkport_registry`, `darkport_registries`
/// and `darkport_images` name that registry, so the site's pulls spread over its registry
/// hosts. Nothing is overridden when the operator set `darkport_registry` with `-e`.
pub(crate) fn node_registry_vars(
    site: &Site,
    vars: &Map<String, Value>,
    hosts: &[String],
) -> BTreeMap<String, Map<String, Value>> {
    let default = site.registry_addrs();
    let set_by_us = vars.get("darkport_registry").and_then(Value::as_str)
        == default.first().map(String::as_str);
    if site.external.is_some() || default.len() < 2 || !set_by_us {
        return BTreeMap::new();
    }
    let from = format!("{}/", default[0]);
    let images = vars.get("darkport_images").and_then(Value::as_object);
    hosts
        .iter()
        .filter_map(|h| {
            let order = site.registry_order(h);
            if order == default {
                return None;
            }
            let to = format!("{}/", order[0]);
            let mut m = Map::new();
            m.insert("darkport_registry".into(), json!(order[0]));
            m.insert("darkport_registries".into(), json!(order));
            if let Some(images) = images {
                // site_images wrote every value as `REGISTRY/name`.
                let moved = images.iter().map(|(k, v)| {
                    let r = match v.as_str().and_then(|s| s.strip_prefix(&from)) {
                        Some(rest) => json!(format!("{to}{rest}")),
                        None => v.clone(),
                    };
                    (k.clone(), r)
                });
                m.insert("darkport_images".into(), Value::Object(moved.collect()));
            }
            Some((h.clone(), m))
        })
        .collect()
}

/// Run one playbook on the selected alive nodes `pick` chooses, journaled as `step`; a node that
/// fails or becomes unreachable is taken out of the run. Returns the nodes where it finished.
pub(crate) fn run_step_playbook(
    site: &mut Site,
    pb: &Playbook,
    vars: &Map<String, Value>,
    step: &str,
    what: &str,
    pick: impl Fn(&Node) -> bool + Copy,
    rep: &dyn SiteReporter,
) -> Vec<String> {
    let forks = site.forks;
    let run_on: Vec<String> = site
        .nodes
        .iter()
        .filter(|n| n.selected && n.alive() && pick(n))
        .map(|n| n.name.clone())
        .collect();
    par(
        &mut site.nodes,
        forks,
        |n| n.selected && pick(n),
        |n| {
            n.state.as_mut().unwrap().begin_step(step);
            write_state(n)
        },
    );
    let pool: BTreeMap<String, Shared> = site
        .nodes
        .iter()
        .filter_map(|n| n.t.clone().map(|t| (n.name.clone(), t)))
        .collect();
    let hs = crate::ops::run::InvHosts {
        inv: &site.inv,
        limit: None,
        only: Some(&run_on),
    };
    let conn = Pool {
        pool,
        opts: site.copts.clone(),
    };
    let opts = RunOptions {
        extra_vars: vars.clone(),
        host_vars: node_registry_vars(site, vars, &run_on),
        forks,
        verbosity: site.verbosity,
        ..Default::default()
    };
    let printer = rep.playbook();
    let summary = engine::run(pb, &hs, &conn, &opts, printer.as_ref());
    let mut ok = Vec::new();
    for n in site.nodes.iter_mut().filter(|n| run_on.contains(&n.name)) {
        match summary.stats.get(&n.name) {
            Some(s) if s.unreachable > 0 => {
                n.fail(format!("{} became unreachable during {what}", n.name))
            }
            Some(s) if s.failed > 0 => n.fail(format!("{what} failed on {}", n.name)),
            _ => ok.push(n.name.clone()),
        }
    }
    par(
        &mut site.nodes,
        forks,
        |n| ok.contains(&n.name),
        |n| {
            n.state.as_mut().unwrap().finish_step(step);
            write_state(n)
        },
    );
    ok
}

/// Hands the engine the sessions the operation already has open.
struct Pool {
    pool: BTreeMap<String, Shared>,
    opts: ConnectOpts,
}

impl Connector for Pool {
    fn connect(
        &self,
        host: &str,
        vars: &Map<String, Value>,
    ) -> Result<Box<dyn Transport>, TransportError> {
        if let Some(t) = self.pool.get(host) {
            return Ok(Box::new(t.clone()));
        }
        let spec = crate::inventory::connvars::conn_spec(host, vars)?;
        transport::connect(&spec, &self.opts)
    }
}

#[cfg(test)]
mod member_tests {
    use super::*;

    #[test]
    fn a_load_error_names_the_bundle_member_not_the_temporary_directory() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(
            d.path().join("install.yml"),
            "- hosts: all\n  tasks:\n    - bogus_module: x=1\n",
        )
        .unwrap();
        let e = load_member(d.path(), "install.yml")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("bundle member playbooks/install.yml:3:"),
            "{e}"
        );
        assert!(!e.contains(&d.path().display().to_string()), "{e}");
    }
}
