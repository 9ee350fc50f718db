//! The compose file a site deploys: every variable substituted (from the bundled `.env`), every
//! service's `image:` pinned to the site registry by the digest the bundle ships
//! (`REGISTRY/path@sha256:…`), so each node pulls exactly what was signed.
//!
//! The output is JSON (a subset of YAML that `docker compose`, `docker-compose` 1.x,
//! `podman-compose` and `docker stack deploy` all read) after one comment line; merge keys are
//! expanded and a literal `$` is written `$$` so the engine's own substitution leaves it alone.

use super::{interpolate, normalize_image, site_name, ComposeError};
use crate::digest::Digest;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// `text` (the compose file at `path`) with variables from `vars` substituted and every image
/// pinned: `digests` maps a site name (`dockercoins/rng:1.0.0`) to its manifest digest.
pub fn pin(
    text: &str,
    path: &Path,
    vars: &BTreeMap<String, String>,
    registry: &str,
    digests: &BTreeMap<String, Digest>,
) -> Result<String, ComposeError> {
    Ok(render(&pin_doc(text, path, vars, registry, digests)?))
}

/// The file a site deploys, as [`pin`] writes it: one comment line, then pretty JSON.
pub fn render(doc: &Value) -> String {
    let mut out = String::from(
        "# written by darkport: images pinned to the site registry by digest; do not edit\n",
    );
    out.push_str(&serde_json::to_string_pretty(doc).expect("json"));
    out.push('\n');
    out
}

/// [`pin`]'s document before it is written out (placement and data dirs change it further).
pub fn pin_doc(
    text: &str,
    path: &Path,
    vars: &BTreeMap<String, String>,
    registry: &str,
    digests: &BTreeMap<String, Digest>,
) -> Result<Value, ComposeError> {
    let invalid = |message: String| ComposeError::Invalid {
        path: path.into(),
        line: 0,
        message,
    };
    let mut doc: Value = super::read_yaml(text, path)?;
    substitute(&mut doc, vars).map_err(invalid)?;
    if let Some(services) = doc.get_mut("services").and_then(Value::as_object_mut) {
        for (name, svc) in services.iter_mut() {
            let Some(image) = svc.get_mut("image") else {
                continue;
            };
            let Some(reference) = image.as_str() else {
                return Err(invalid(format!("service {name:?}: image is not a string")));
            };
            let full = normalize_image(reference)
                .map_err(|m| invalid(format!("service {name:?}: image {reference:?}: {m}")))?;
            let site = site_name(&full);
            let digest = digests.get(site).ok_or_else(|| {
                invalid(format!(
                    "service {name:?}: image {site} is not in the bundle"
                ))
            })?;
            let repo = site.rsplit_once(':').map(|x| x.0).unwrap_or(site);
            *image = Value::String(format!("{registry}/{repo}@{digest}"));
        }
    }
    Ok(doc)
}

/// Substitute variables in every string value (keys are left as they are, as Compose does),
/// then escape what is left of `$` for the engine's own pass.
fn substitute(v: &mut Value, vars: &BTreeMap<String, String>) -> Result<(), String> {
    match v {
        Value::String(s) => {
            *s = interpolate(s, vars)?.replace('$', "$$");
        }
        Value::Array(a) => {
            for x in a {
                substitute(x, vars)?;
            }
        }
        Value::Object(m) => {
            for x in m.values_mut() {
                substitute(x, vars)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// Point every image pinned to `from` (`host:port`) at `to` instead: a node of an HA site
/// pulls from the registry the site assigned it, the digest stays the same.
pub fn repoint(doc: &mut Value, from: &str, to: &str) {
    let prefix = format!("{from}/");
    let Some(services) = doc.get_mut("services").and_then(Value::as_object_mut) else {
        return;
    };
    for svc in services.values_mut() {
        if let Some(Value::String(image)) = svc.get_mut("image") {
            if let Some(rest) = image.strip_prefix(&prefix) {
                *image = format!("{to}/{rest}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repoint_moves_only_images_of_the_given_registry() {
        let mut doc = serde_json::json!({"services": {
            "a": {"image": "10.0.0.1:5000/p/a@sha256:00"},
            "b": {"image": "10.0.0.10:5000/p/b@sha256:11"},
            "c": {"build": "."}
        }});
        repoint(&mut doc, "10.0.0.1:5000", "10.0.0.2:5000");
        assert_eq!(doc["services"]["a"]["image"], "10.0.0.2:5000/p/a@sha256:00");
        assert_eq!(
            doc["services"]["b"]["image"],
            "10.0.0.10:5000/p/b@sha256:11"
        );
        assert!(doc["services"]["c"].get("image").is_none());
    }

    #[test]
    fn images_are_pinned_and_variables_resolved() {
        let text = "x-s: &s\n  restart: always\nservices:\n  rng:\n    <<: *s\n    image: dockercoins/rng:${TAG}\n    command: [\"sh\", \"-c\", \"echo $$HOME ${GREETING:-hi}\"]\n  cache:\n    image: docker.io/library/redis\n";
        let vars: BTreeMap<_, _> = [("TAG".to_string(), "1.0.0".to_string())].into();
        let d1 = Digest::of(b"rng");
        let d2 = Digest::of(b"redis");
        let digests: BTreeMap<_, _> = [
            ("dockercoins/rng:1.0.0".to_string(), d1),
            ("library/redis:latest".to_string(), d2),
        ]
        .into();
        let out = pin(text, Path::new("c.yml"), &vars, "10.0.0.1:5000", &digests).unwrap();
        assert!(out.starts_with("# written by darkport"));
        let body: Value = serde_json::from_str(out.split_once('\n').unwrap().1).unwrap();
        let rng = &body["services"]["rng"];
        assert_eq!(rng["image"], format!("10.0.0.1:5000/dockercoins/rng@{d1}"));
        assert_eq!(rng["restart"], "always");
        assert_eq!(rng["command"][2], "echo $$HOME hi");
        assert_eq!(
            body["services"]["cache"]["image"],
            format!("10.0.0.1:5000/library/redis@{d2}")
        );
        // Read back as YAML, the file is the same document.
        let again: Value = serde_saphyr::from_str(&out).unwrap();
        assert_eq!(again, body);

        let e = pin(
            "services:\n  x:\n    image: other/x:1\n",
            Path::new("c.yml"),
            &vars,
            "r:5000",
            &digests,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("image other/x:1 is not in the bundle"), "{e}");
    }
}
