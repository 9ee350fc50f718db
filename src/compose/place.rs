//! Where the services of a pinned compose document run with the `compose` target (one engine
//! per host), and where their named volumes keep their data.
//!
//! A service's `x-darkport-hosts:` (an inventory pattern, or a list of them: groups, hosts,
//! `web*`, `all:!db`) names the hosts that run it; a service without it runs on every host the
//! deploy targets. The key is darkport's, so it is removed from what the engines read.

use serde_json::{Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// The extension key that places a service.
pub const HOSTS_KEY: &str = "x-darkport-hosts";

/// The inventory patterns each placed service names, read from every file in `-f` order (a
/// later file's key replaces an earlier one's). Services without the key are absent.
pub fn placement(docs: &[Value]) -> Result<BTreeMap<String, Vec<String>>, String> {
    let mut out = BTreeMap::new();
    for doc in docs {
        for (name, svc) in services(doc) {
            let Some(v) = svc.get(HOSTS_KEY) else {
                continue;
            };
            let patterns: Vec<String> = match v {
                Value::String(s) => vec![s.clone()],
                Value::Array(a) => a
                    .iter()
                    .map(|x| x.as_str().map(str::to_string))
                    .collect::<Option<_>>()
                    .ok_or_else(|| {
                        format!(
                            "service {name:?}: {HOSTS_KEY} must be a pattern or a list of patterns"
                        )
                    })?,
                _ => {
                    return Err(format!(
                        "service {name:?}: {HOSTS_KEY} must be a pattern or a list of patterns"
                    ))
                }
            };
            if patterns.is_empty() {
                return Err(format!("service {name:?}: {HOSTS_KEY} is empty"));
            }
            out.insert(name.clone(), patterns);
        }
    }
    Ok(out)
}

/// Every service name the documents define, sorted.
pub fn service_names(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .flat_map(|d| services(d).map(|(n, _)| n.clone()))
        .collect()
}

fn services(doc: &Value) -> impl Iterator<Item = (&String, &Value)> {
    doc.get("services")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.iter())
}

/// Keep only the services in `keep` (dropping `depends_on` entries that name a removed one)
/// and remove the placement key from the rest.
pub fn keep_services(doc: &mut Value, keep: &BTreeSet<String>) {
    let Some(svcs) = doc.get_mut("services").and_then(Value::as_object_mut) else {
        return;
    };
    svcs.retain(|name, _| keep.contains(name));
    for svc in svcs.values_mut() {
        let Some(m) = svc.as_object_mut() else {
            continue;
        };
        m.remove(HOSTS_KEY);
        match m.get_mut("depends_on") {
            Some(Value::Array(a)) => a.retain(|d| d.as_str().is_some_and(|d| keep.contains(d))),
            Some(Value::Object(o)) => o.retain(|d, _| keep.contains(d)),
            _ => {}
        }
        if m.get("depends_on").is_some_and(|d| {
            d.as_array().is_some_and(Vec::is_empty) || d.as_object().is_some_and(Map::is_empty)
        }) {
            m.remove("depends_on");
        }
    }
}

/// Remove the placement key from every service (the `swarm` target: Swarm places tasks).
pub fn strip_placement(doc: &mut Value) {
    if let Some(svcs) = doc.get_mut("services").and_then(Value::as_object_mut) {
        for svc in svcs.values_mut() {
            if let Some(m) = svc.as_object_mut() {
                m.remove(HOSTS_KEY);
            }
        }
    }
}

/// Put every named volume the file declares without a driver or `external` under `data_dir`
/// (`DATA_DIR/NAME`, a bind of the local driver). Returns the directories to create.
pub fn bind_volumes(doc: &mut Value, data_dir: &str) -> Vec<String> {
    let mut dirs = Vec::new();
    let Some(vols) = doc.get_mut("volumes").and_then(Value::as_object_mut) else {
        return dirs;
    };
    for (name, v) in vols.iter_mut() {
        if v.is_null() {
            *v = Value::Object(Map::new());
        }
        let Some(m) = v.as_object_mut() else {
            continue;
        };
        let external = m.get("external").is_some_and(|e| e != &Value::Bool(false));
        if external || m.contains_key("driver") || m.contains_key("driver_opts") {
            continue;
        }
        let dir = format!("{}/{name}", data_dir.trim_end_matches('/'));
        m.insert("driver".into(), "local".into());
        m.insert(
            "driver_opts".into(),
            serde_json::json!({"type": "none", "o": "bind", "device": dir}),
        );
        dirs.push(dir);
    }
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn placement_reads_patterns_and_later_files_win() {
        let a = json!({"services": {"db": {"image": "x", HOSTS_KEY: "db"}, "web": {"image": "y"}}});
        let b = json!({"services": {"db": {HOSTS_KEY: ["db1", "db2"]}}});
        let p = placement(&[a.clone(), b]).unwrap();
        assert_eq!(p["db"], ["db1", "db2"]);
        assert!(!p.contains_key("web"));
        let bad = json!({"services": {"db": {HOSTS_KEY: 3}}});
        assert!(placement(&[bad]).unwrap_err().contains("must be a pattern"));
        assert_eq!(
            service_names(&[a]).into_iter().collect::<Vec<_>>(),
            ["db", "web"]
        );
    }

    #[test]
    fn keep_services_prunes_dependencies_and_the_key() {
        let mut d = json!({"services": {
            "db": {"image": "x", HOSTS_KEY: "db"},
            "web": {"image": "y", "depends_on": ["db", "cache"]},
            "cache": {"image": "z"},
            "api": {"image": "w", "depends_on": {"db": {"condition": "service_started"}}}
        }});
        let keep: BTreeSet<String> = ["web".into(), "cache".into(), "api".into()].into();
        keep_services(&mut d, &keep);
        let s = d["services"].as_object().unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(d["services"]["web"]["depends_on"], json!(["cache"]));
        assert!(d["services"]["api"].get("depends_on").is_none());
        let mut e = json!({"services": {"db": {"image": "x", HOSTS_KEY: "db"}}});
        strip_placement(&mut e);
        assert_eq!(e, json!({"services": {"db": {"image": "x"}}}));
    }

    #[test]
    fn named_volumes_go_under_the_data_dir() {
        let mut d = json!({"volumes": {
            "data": null,
            "ext": {"external": true},
            "nfs": {"driver": "nfs"},
            "named": {"name": "custom"}
        }});
        let dirs = bind_volumes(&mut d, "/srv/dc/");
        assert_eq!(dirs, ["/srv/dc/data", "/srv/dc/named"]);
        assert_eq!(
            d["volumes"]["data"],
            json!({"driver": "local", "driver_opts": {"type": "none", "o": "bind", "device": "/srv/dc/data"}})
        );
        assert_eq!(d["volumes"]["ext"], json!({"external": true}));
        assert_eq!(d["volumes"]["nfs"], json!({"driver": "nfs"}));
    }
}
